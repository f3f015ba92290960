//! Software UART: characters to timed line levels and back.
//!
//! One implementation serves every edge source: the simulated wire, and edges captured from GPIO
//! by the kernel. A frame is a start bit (low), eight bits LSB first and a stop bit (high). For
//! IEC 62056-21 mode A (7E1) the eighth bit is the even-parity bit, so the UART itself stays 8N1
//! and the codec checks parity ("soft 7E1", NOTES §2).
//!
//! This module is pure: it never reads a clock. The transmitter turns a byte and a start time into
//! edges; the receiver turns edges (and the knowledge that time has reached some instant) into
//! [`RxChar`]s stamped with the time of their start bit's falling edge.

use crate::time::Timestamp;

/// One level change on a line: at `t` the line became `level` (high = mark/idle).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Edge {
    /// When the line changed.
    pub t: Timestamp,
    /// The level after the change (a bool in JSON, `true` = high).
    pub level: Level,
}

/// A line level (at the module pin, after optocoupler polarity, for captured edges). In records and JSON a level is a
/// bool (`true` = high), as before it had a type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(from = "bool", into = "bool")]
pub enum Level {
    /// Low (space; a start bit; a pulse on an open-collector output).
    Low,
    /// High (mark; an idle line).
    High,
}

impl Level {
    /// `High` when `high`.
    pub const fn from_high(high: bool) -> Self {
        if high {
            Level::High
        } else {
            Level::Low
        }
    }
    /// Whether the level is high.
    pub const fn is_high(self) -> bool {
        matches!(self, Level::High)
    }
    /// Whether the level is low.
    pub const fn is_low(self) -> bool {
        matches!(self, Level::Low)
    }
}

impl From<bool> for Level {
    fn from(high: bool) -> Self {
        Level::from_high(high)
    }
}

impl From<Level> for bool {
    fn from(l: Level) -> bool {
        l.is_high()
    }
}

impl std::ops::Not for Level {
    type Output = Level;
    fn not(self) -> Level {
        Level::from_high(!self.is_high())
    }
}

/// Start of bit `k` (0 = start bit) of a frame that began at `start`, exact to the nanosecond
/// without accumulating rounding over a long frame.
pub fn bit_start(start: Timestamp, k: u32, baud: u32) -> Timestamp {
    Timestamp(start.0 + (k as u64 * 1_000_000_000 + baud as u64 / 2) / baud as u64)
}

/// Time one frame of `1 + 8 + stop_bits` bits occupies on the line.
pub fn frame_ns(baud: u32, stop_bits: u32) -> u64 {
    bit_start(Timestamp::ZERO, 9 + stop_bits, baud).0
}

/// Options of a transmitted frame; used to inject framing defects.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxFrame {
    /// Drive the (first) stop bit low: a framing error.
    pub bad_stop: bool,
    /// The sender's own bit rate, when its clock is off the nominal one (a fault).
    pub baud: Option<u32>,
}

/// The edges of one frame carrying `byte` (all eight bits), starting with the start bit's falling
/// edge at `start`, assuming the line is idle high before it. Returns the edges and the end of the
/// last stop bit. Only transitions are emitted.
pub fn frame_edges(
    byte: u8,
    start: Timestamp,
    baud: u32,
    stop_bits: u32,
    opts: TxFrame,
) -> (Vec<Edge>, Timestamp) {
    let mut levels = Vec::with_capacity(10);
    levels.push(false); // start bit
    for i in 0..8 {
        levels.push(byte >> i & 1 == 1);
    }
    for s in 0..stop_bits.max(1) {
        levels.push(!(s == 0 && opts.bad_stop));
    }
    let mut edges = Vec::new();
    let mut cur = true;
    for (k, &lvl) in levels.iter().enumerate() {
        if lvl != cur {
            edges.push(Edge {
                t: bit_start(start, k as u32, baud),
                level: Level::from_high(lvl),
            });
            cur = lvl;
        }
    }
    let end = bit_start(start, levels.len() as u32, baud);
    if !cur {
        // a low stop bit: release the line at the end of the frame
        edges.push(Edge {
            t: end,
            level: Level::High,
        });
    }
    (edges, end)
}

/// A character received by the software UART (or by a serial port under the serial-only contract).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RxChar {
    /// All eight bits as received (for 7E1: bit 7 is the parity bit).
    pub byte: u8,
    /// Falling edge of the start bit.
    pub start: Timestamp,
    /// End of the stop bit (start + 10 bit times).
    pub end: Timestamp,
    /// Whether the stop bit was high at its sampling point.
    pub stop_ok: bool,
    /// The sender's bit time, ns, measured from this character's own edges (the last edge
    /// inside the frame, k whole bits after the start bit's edge): only receivers that see edges
    /// know it; `None` for bytes from a serial port.
    pub bit_ns: Option<u64>,
}

impl RxChar {
    /// A break: all bits low including the stop bit.
    pub fn is_break(&self) -> bool {
        self.byte == 0 && !self.stop_ok
    }
}

#[derive(Debug, Clone, Copy)]
struct Frame {
    t0: Timestamp,
    next_sample: u32,
    value: u16,
    /// The last edge inside the frame after the start bit's.
    last_edge: Option<Timestamp>,
}

/// Edge-driven UART receiver sampling at mid-bit, with a start-bit glitch check.
#[derive(Debug, Clone)]
pub struct UartRx {
    baud: u32,
    level: bool,
    last_t: Timestamp,
    frame: Option<Frame>,
    /// A frame ended with a low stop bit; wait for the line to go high before the next start.
    wait_idle: bool,
}

impl UartRx {
    /// A receiver for `baud`, line assumed idle high.
    pub fn new(baud: u32) -> Self {
        UartRx {
            baud,
            level: true,
            last_t: Timestamp::ZERO,
            frame: None,
            wait_idle: false,
        }
    }

    /// The line rate.
    pub fn baud(&self) -> u32 {
        self.baud
    }

    /// Whether a frame is in progress.
    pub fn busy(&self) -> bool {
        self.frame.is_some()
    }

    /// End of the frame in progress (start + 10 bit times), if any: by then it will have been
    /// sampled completely.
    pub fn pending_end(&self) -> Option<Timestamp> {
        self.frame.map(|f| bit_start(f.t0, 10, self.baud))
    }

    fn sample_time(&self, f: &Frame, k: u32) -> Timestamp {
        // middle of bit k: start + (k + 1/2) bits
        Timestamp(
            f.t0.0
                + ((2 * k as u64 + 1) * 1_000_000_000 + self.baud as u64) / (2 * self.baud as u64),
        )
    }

    /// The sender's bit time from the frame's last edge: that edge lies a whole number of the
    /// sender's bits after the start edge, the nearest whole number of nominal bits.
    fn measured_bit(&self, f: &Frame) -> Option<u64> {
        let dt = f.last_edge?.0.checked_sub(f.t0.0)?;
        let nominal = 1e9 / self.baud as f64;
        let k = (dt as f64 / nominal).round();
        (k >= 1.0).then(|| (dt as f64 / k).round() as u64)
    }

    /// Process every sampling point strictly before `t` using the current level.
    fn sample_until(&mut self, t: Timestamp, out: &mut Vec<RxChar>) {
        while let Some(mut f) = self.frame {
            let ts = self.sample_time(&f, f.next_sample);
            if ts >= t {
                self.frame = Some(f);
                return;
            }
            let k = f.next_sample;
            if k == 0 {
                if self.level {
                    // glitch: the start bit did not last until mid-bit
                    self.frame = None;
                    return;
                }
            } else if (1..=8).contains(&k) {
                if self.level {
                    f.value |= 1 << (k - 1);
                }
            } else {
                let stop_ok = self.level;
                out.push(RxChar {
                    byte: f.value as u8,
                    start: f.t0,
                    end: bit_start(f.t0, 10, self.baud),
                    stop_ok,
                    bit_ns: self.measured_bit(&f),
                });
                self.frame = None;
                self.wait_idle = !stop_ok;
                return;
            }
            f.next_sample += 1;
            self.frame = Some(f);
        }
    }

    /// Feed one edge. Edges must come in time order; an edge that does not change the level is
    /// ignored. Characters whose stop bit was sampled before `e.t` are appended to `out`.
    pub fn push(&mut self, e: Edge, out: &mut Vec<RxChar>) {
        let t = if e.t < self.last_t { self.last_t } else { e.t };
        self.sample_until(t, out);
        self.last_t = t;
        if e.level.is_high() == self.level {
            return;
        }
        self.level = e.level.is_high();
        if let Some(f) = self.frame.as_mut() {
            f.last_edge = Some(t);
        }
        if self.level {
            self.wait_idle = false;
        } else if self.frame.is_none() && !self.wait_idle {
            self.frame = Some(Frame {
                t0: t,
                next_sample: 0,
                value: 0,
                last_edge: None,
            });
        }
    }

    /// Tell the receiver that no edge happened before `t`; completes frames sampled by then.
    pub fn advance(&mut self, t: Timestamp, out: &mut Vec<RxChar>) {
        if t > self.last_t {
            self.sample_until(t, out);
            self.last_t = t;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(bytes: &[u8], baud: u32) -> Vec<RxChar> {
        let mut rx = UartRx::new(baud);
        let mut out = Vec::new();
        let mut t = Timestamp::from_ms(1);
        for &b in bytes {
            let (edges, end) = frame_edges(b, t, baud, 1, TxFrame::default());
            for e in edges {
                rx.push(e, &mut out);
            }
            t = end;
        }
        rx.advance(Timestamp(t.0 + 1_000_000_000), &mut out);
        out
    }

    #[test]
    fn every_byte_roundtrips_at_300_and_9600() {
        let all: Vec<u8> = (0..=255).collect();
        for baud in [300, 9600] {
            let got = roundtrip(&all, baud);
            assert_eq!(got.iter().map(|c| c.byte).collect::<Vec<_>>(), all);
            assert!(got.iter().all(|c| c.stop_ok));
            // back-to-back frames: each start is the previous end
            for w in got.windows(2) {
                assert_eq!(w[0].end, w[1].start);
            }
        }
    }

    #[test]
    fn frame_timing_is_exact() {
        let (edges, end) = frame_edges(0x00, Timestamp::ZERO, 300, 1, TxFrame::default());
        assert_eq!(
            edges,
            vec![
                Edge {
                    t: Timestamp::ZERO,
                    level: Level::Low
                },
                Edge {
                    t: Timestamp(30_000_000),
                    level: Level::High
                }
            ]
        );
        assert_eq!(end, Timestamp(33_333_333));
        assert_eq!(frame_ns(300, 1), 33_333_333);
    }

    #[test]
    fn bad_stop_bit_is_reported_and_receiver_resyncs() {
        let mut rx = UartRx::new(300);
        let mut out = Vec::new();
        let (e1, end1) = frame_edges(
            b'A',
            Timestamp::ZERO,
            300,
            1,
            TxFrame {
                bad_stop: true,
                baud: None,
            },
        );
        let (e2, _) = frame_edges(
            b'B',
            Timestamp(end1.0 + 10_000_000),
            300,
            1,
            TxFrame::default(),
        );
        for e in e1.into_iter().chain(e2) {
            rx.push(e, &mut out);
        }
        rx.advance(Timestamp::from_ms(200), &mut out);
        assert_eq!(out.len(), 2);
        assert_eq!((out[0].byte, out[0].stop_ok), (b'A', false));
        assert_eq!((out[1].byte, out[1].stop_ok), (b'B', true));
    }

    #[test]
    fn short_glitch_is_not_a_start_bit() {
        let mut rx = UartRx::new(300);
        let mut out = Vec::new();
        rx.push(
            Edge {
                t: Timestamp::from_ms(1),
                level: Level::Low,
            },
            &mut out,
        );
        rx.push(
            Edge {
                t: Timestamp(1_000_000 + 100_000),
                level: Level::High,
            },
            &mut out,
        );
        rx.advance(Timestamp::from_ms(100), &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn break_is_recognised() {
        let mut rx = UartRx::new(300);
        let mut out = Vec::new();
        rx.push(
            Edge {
                t: Timestamp::from_ms(1),
                level: Level::Low,
            },
            &mut out,
        );
        rx.advance(Timestamp::from_ms(100), &mut out);
        assert_eq!(out.len(), 1);
        assert!(out[0].is_break());
    }
}
