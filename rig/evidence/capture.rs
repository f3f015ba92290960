//! Waveform captures: for every failed or inconclusive case (every case with
//! [`CaptureMode::All`]), a value change dump `OUT/captures/CASE.vcd` with one wire per
//! module-interface line the case used, readable by sigrok/PulseView and GTKWave.
//!
//! Wires: `data_out` (meter → module, pin 2), `data_in` (module → meter, pin 5), `port1` (pin 4)
//! and `port2` (pin 3) as levels at the module pin (the meter's output edges), `port1_drive` and
//! `port2_drive` for a port the rig drives as a meter input (the sheet's logical level, 1 =
//! active: the pin level follows from the wiring's polarity), and `marker`, a string variable
//! naming the rig's instants (the request's end, the response window's limits, the answer's
//! start).
//! Timescale 1 µs, with an explicit `#0` carrying every initial value (sigrok's importer drops a
//! first edge without it); `#0` is a stated instant of the target's clock (a comment says which),
//! a little before the first thing captured, so importers do not fill hours of idle line.
//!
//! Where the times come from: the character and edge timestamps the verdict used. Each character
//! of `data_out` starts at its measured start-bit edge (exact in virtual time, kernel timestamps
//! on `gpio:`/`pi:`) and its bits are drawn at the sender's bit time measured from the
//! character's own edges (the nominal rate when none was measured); a character whose stop bit
//! was low is drawn so. `data_in` is the request as sent, ending at the request's end. On a
//! `serial:` target the characters are re-framed under the serial timing contract (a byte seen
//! at the end of its stop bit), and the file says so in a comment. Port levels are the captured
//! pulse edges from the case's start on (edges a case flushed that predate its start belong to no
//! case); drives are drawn when the backend had set them, on the target's clock.

use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use vcd::{IdCode, TimescaleUnit, Value, VarType};

use super::{Attachment, Inbox};
use crate::suite::{Event, ObserverError, Verdict};
use crate::time::{TimeSource, Timestamp};
use crate::uart::{frame_edges, frame_ns, Edge, RxChar, TxFrame};

/// Which cases get a capture.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum CaptureMode {
    /// None.
    None,
    /// Failed and inconclusive cases (the default).
    #[default]
    Failed,
    /// Every case that used a line.
    All,
}

impl std::str::FromStr for CaptureMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(CaptureMode::None),
            "failed" => Ok(CaptureMode::Failed),
            "all" => Ok(CaptureMode::All),
            _ => Err(format!(
                "--capture {s}: expected none, failed (failed and inconclusive cases) or all"
            )),
        }
    }
}

/// The media type of a capture.
pub const VCD_MEDIA_TYPE: &str = "text/x-vcd";

/// What one case put on the module's lines.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CaseLines {
    /// Meter → module, levels at the pin.
    pub data_out: Vec<Edge>,
    /// Module → meter, levels at the pin.
    pub data_in: Vec<Edge>,
    /// Port 1 and port 2 output edges.
    pub ports: [Vec<Edge>; 2],
    /// Port 1 and port 2 as inputs the rig drove: the sheet's logical level (high = active).
    pub drives: [Vec<Edge>; 2],
    /// The rig's instants, named.
    pub markers: Vec<(Timestamp, String)>,
    /// Whether any time came from the serial-only contract.
    pub serial: bool,
}

impl CaseLines {
    /// Whether the case used no line at all.
    pub fn is_empty(&self) -> bool {
        self.data_out.is_empty()
            && self.data_in.is_empty()
            && self.ports.iter().all(|p| p.is_empty())
            && self.drives.iter().all(|p| p.is_empty())
    }

    /// Adds one exchange: `sent` (bytes with parity, ending at `request_end`), the received
    /// characters, the response window `[min_ms, max_ms]` and the measured response time.
    pub fn exchange(
        &mut self,
        baud: u32,
        sent: &[u8],
        request_end: Timestamp,
        chars: &[RxChar],
        window_ms: (f64, f64),
        response_ms: Option<f64>,
    ) {
        let frame = frame_ns(baud, 1);
        let first = request_end
            .as_ns()
            .saturating_sub(frame * sent.len() as u64);
        for (i, &b) in sent.iter().enumerate() {
            let start = Timestamp(first + frame * i as u64);
            self.data_in
                .extend(frame_edges(b, start, baud, 1, TxFrame::default()).0);
        }
        for c in chars {
            let rate = c
                .bit_ns
                .filter(|&ns| ns > 0)
                .map(|ns| ((1e9 / ns as f64).round() as u32).max(1));
            let opts = TxFrame {
                bad_stop: !c.stop_ok,
                baud: rate,
            };
            self.data_out
                .extend(frame_edges(c.byte, c.start, rate.unwrap_or(baud), 1, opts).0);
        }
        let at = |ms: f64| Timestamp(request_end.as_ns() + (ms * 1e6).round().max(0.0) as u64);
        self.markers.push((request_end, "request_end".into()));
        self.markers.push((
            at(window_ms.0),
            format!("window_opens_{}ms", fmt(window_ms.0)),
        ));
        if let Some(ms) = response_ms {
            self.markers
                .push((at(ms), format!("answer_start_{}ms", fmt(ms))));
        }
        self.markers.push((
            at(window_ms.1),
            format!("window_closes_{}ms", fmt(window_ms.1)),
        ));
    }
}

fn fmt(x: f64) -> String {
    crate::suite::fmt_num(x)
}

/// A VCD variable's changes.
struct Wire<'a> {
    name: &'static str,
    code: &'static str,
    edges: &'a [Edge],
}

/// The VCD of `lines`: the wires the case used, the markers, 1 µs timescale, `#0` with every
/// initial value. `comments` go into the header.
///
/// # Errors
/// Only the writer's (none for a `Vec`).
pub fn write_vcd(lines: &CaseLines, comments: &[String]) -> io::Result<Vec<u8>> {
    let mut w = vcd::Writer::new(Vec::new());
    let origin_ns = origin_ns(lines);
    w.comment(&format!(
        "#0 is the target's clock at {} s (ns {origin_ns}); times are the edge and character \
         timestamps the verdict used",
        crate::suite::fmt_num(origin_ns as f64 / 1e9)
    ))?;
    for c in comments {
        w.comment(c)?;
    }
    w.timescale(1, TimescaleUnit::US)?;
    w.add_module("module_interface")?;
    let used = lines.wires();
    let id = |code: &str| code.parse::<IdCode>().map_err(io::Error::other);
    for wire in &used {
        w.var_def(VarType::Wire, 1, id(wire.code)?, wire.name, None)?;
    }
    let marker = id("m")?;
    w.var_def(VarType::String, 1, marker, "marker", None)?;
    w.upscope()?;
    w.enddefinitions()?;
    // every initial value at #0: the level before the first edge
    w.timestamp(0)?;
    for wire in &used {
        let before = wire.edges.first().is_none_or(|e| !e.level.is_high());
        w.change_scalar(id(wire.code)?, level(before))?;
    }
    w.change_string(marker, "idle")?;
    let mut now = 0;
    for (t, k, ch) in changes(&used, lines, origin_ns) {
        if t != now {
            w.timestamp(t)?;
            now = t;
        }
        match ch {
            Change::Level(h) => w.change_scalar(id(used[k as usize].code)?, level(h))?,
            Change::Marker(s) => w.change_string(marker, &s)?,
        }
    }
    // a last timestamp a second on, so viewers show the line settle
    w.timestamp(now + 1_000_000)?;
    Ok(w.writer().clone())
}

/// The instant `#0` stands for, ns on the target's clock: 100 ms before the first change,
/// rounded down to a whole ms (before the clock's zero when the first change is at it).
fn origin_ns(lines: &CaseLines) -> i64 {
    let wires = lines.wires();
    let first = wires
        .iter()
        .filter_map(|w| w.edges.first().map(|e| e.t))
        .chain(lines.markers.iter().map(|m| m.0))
        .min()
        .unwrap_or(Timestamp::ZERO);
    (first.as_ns() as i64 - 100_000_000).div_euclid(1_000_000) * 1_000_000
}

/// Every change after `#0` in time order: (µs, wire index or `u8::MAX` for the marker, change).
fn changes(used: &[Wire<'_>], lines: &CaseLines, origin_ns: i64) -> Vec<(u64, u8, Change)> {
    let mut changes: Vec<(u64, u8, Change)> = Vec::new();
    for (k, wire) in used.iter().enumerate() {
        for e in wire.edges {
            let c = Change::Level(e.level.is_high());
            changes.push((us(e.t, origin_ns), k as u8, c));
        }
    }
    for (t, name) in &lines.markers {
        changes.push((us(*t, origin_ns), u8::MAX, Change::Marker(name.clone())));
    }
    changes.sort_by_key(|c| (c.0, c.1));
    changes
}

impl CaseLines {
    /// The wires the case used, in the file's order. The identifiers are chosen by hand: none
    /// is `#`, which sigrok's importer takes for a timestamp.
    fn wires(&self) -> Vec<Wire<'_>> {
        let all: [(&'static str, &'static str, &[Edge]); 6] = [
            ("data_out", "o", &self.data_out),
            ("data_in", "i", &self.data_in),
            ("port1", "p", &self.ports[0]),
            ("port2", "q", &self.ports[1]),
            ("port1_drive", "a", &self.drives[0]),
            ("port2_drive", "b", &self.drives[1]),
        ];
        all.into_iter()
            .filter(|(_, _, edges)| !edges.is_empty())
            .map(|(name, code, edges)| Wire { name, code, edges })
            .collect()
    }
}

enum Change {
    Level(bool),
    Marker(String),
}

fn level(high: bool) -> Value {
    if high {
        Value::V1
    } else {
        Value::V0
    }
}

/// `t` in whole µs after `origin_ns`, rounded to the nearest.
fn us(t: Timestamp, origin_ns: i64) -> u64 {
    ((t.as_ns() as i64 - origin_ns).max(0) as u64 + 500) / 1000
}

/// The capture observer: collects each case's lines from the events and writes the VCD when the
/// case is done and [`CaptureMode`] asks for it; the attachment goes to the [`Inbox`].
#[derive(Debug)]
pub struct Captures {
    dir: PathBuf,
    baud: u32,
    window_ms: (f64, f64),
    mode: CaptureMode,
    lines: CaseLines,
    inbox: Inbox,
}

impl Captures {
    /// Captures into `run_dir/captures/` for a line at `baud` with the response window
    /// `[min_ms, max_ms]`; attachments are filed in `inbox`.
    /// The previous run's captures in that directory are removed first, so a reused directory
    /// never mixes two runs (call it after the records writer holds the directory's lock).
    ///
    /// # Errors
    /// The old captures cannot be removed.
    pub fn new(
        run_dir: &Path,
        baud: u32,
        window_ms: (f64, f64),
        mode: CaptureMode,
        inbox: Inbox,
    ) -> io::Result<Self> {
        let dir = run_dir.join("captures");
        match std::fs::remove_dir_all(&dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
        Ok(Captures {
            dir,
            baud,
            window_ms,
            mode,
            lines: CaseLines::default(),
            inbox,
        })
    }

    fn wanted(&self, v: Verdict) -> bool {
        match self.mode {
            CaptureMode::None => false,
            CaptureMode::Failed => matches!(v, Verdict::Fail | Verdict::Inconclusive),
            CaptureMode::All => true,
        }
    }

    /// Writes `captures/CASE.vcd` and returns its attachment.
    fn write(&self, case: &str) -> io::Result<Attachment> {
        let mut comments = vec![format!(
            "meter-rig {} capture of case {case}",
            env!("CARGO_PKG_VERSION")
        )];
        if self.lines.serial {
            comments.push(
                "serial target: characters re-framed under the serial timing contract (a byte \
                 is taken as seen at the end of its stop bit; the request ends one character \
                 time per byte after it was handed to the port); bit edges are not measured"
                    .into(),
            );
        }
        let bytes = write_vcd(&self.lines, &comments)?;
        std::fs::create_dir_all(&self.dir)?;
        let name = format!("{case}.vcd");
        crate::report::write_atomic(&self.dir.join(&name), &bytes)?;
        Ok(Attachment {
            path: format!("captures/{name}"),
            media_type: VCD_MEDIA_TYPE.into(),
            sha256: hex(&Sha256::digest(&bytes)),
            bytes: bytes.len() as u64,
        })
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

impl crate::suite::Observer for Captures {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        match e {
            Event::CaseStarted { .. } => self.lines = CaseLines::default(),
            Event::Exchange {
                exchange,
                note,
                sent,
                ..
            } if self.mode != CaptureMode::None => {
                self.lines.serial |= exchange.timing.source == TimeSource::Serial
                    || exchange.timing.request_source == TimeSource::Serial;
                self.lines.exchange(
                    self.baud,
                    sent,
                    exchange.request_end,
                    &exchange.chars,
                    self.window_ms,
                    note.assessment.response_ms,
                );
            }
            Event::Edges { port, edges, .. } if self.mode != CaptureMode::None => {
                self.lines.ports[*port as usize].extend_from_slice(edges);
            }
            Event::Drive {
                port, drive, at, ..
            } if self.mode != CaptureMode::None => {
                let d = &mut self.lines.drives[*port as usize];
                let level = crate::uart::Level::from_high(drive.is_active());
                // an input is inactive until the rig first drives it active
                if d.last().map_or(drive.is_active(), |e| e.level != level) {
                    d.push(Edge { t: *at, level });
                }
            }
            Event::CaseDone { case } => {
                // edges taken that predate the case (what earlier cases left) are not its own
                let since = super::case_start(case.target_time_s.0);
                for p in &mut self.lines.ports {
                    p.retain(|e| e.t >= since);
                }
                if self.wanted(case.verdict) && !self.lines.is_empty() {
                    let a = self.write(&case.id).map_err(|source| ObserverError {
                        observer: "captures",
                        source: Box::new(source),
                    })?;
                    self.inbox.put(&case.id, a);
                }
                self.lines = CaseLines::default();
            }
            _ => {}
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The request ends at the request's end, the answer's character starts at its measured
    /// start edge, the markers sit at the window's limits, all in µs after the stated `#0`.
    #[test]
    fn a_capture_puts_every_edge_where_the_verdict_saw_it() {
        let baud = 300;
        let request_end = Timestamp::from_ms(1000);
        // '/' (0x2F, even parity: five ones → parity bit set) starting 150 ms after the request
        let start = Timestamp::from_ms(1150);
        let c = RxChar {
            byte: 0xAF,
            start,
            end: Timestamp(start.as_ns() + frame_ns(baud, 1)),
            stop_ok: true,
            bit_ns: None,
        };
        let mut lines = CaseLines::default();
        let sent = crate::iec62056::parity::encode(b"/?!\r\n");
        lines.exchange(baud, &sent, request_end, &[c], (20.0, 500.0), Some(150.0));
        let text = String::from_utf8(write_vcd(&lines, &[]).unwrap()).unwrap();
        // #0 is 100 ms before the request's first start bit (5 characters before its end)
        let first = 1_000_000_000 - 5 * frame_ns(baud, 1);
        let origin = (first as i64 - 100_000_000).div_euclid(1_000_000) * 1_000_000;
        let at = |ms: u64| format!("#{}\n", (ms as i64 * 1_000_000 - origin) / 1000);
        for (ms, what) in [
            (1000, "srequest_end m"),
            (1020, "swindow_opens_20ms m"),
            (1150, "0o"),
            (1150, "sanswer_start_150ms m"),
            (1500, "swindow_closes_500ms m"),
        ] {
            let i = text
                .find(&at(ms))
                .unwrap_or_else(|| panic!("no {} in {text}", at(ms)));
            let block = &text[i + at(ms).len()..];
            let block = &block[..block.find('#').unwrap_or(block.len())];
            assert!(
                block.lines().any(|l| l == what),
                "{what} at {ms} ms: {block:?}"
            );
        }
        // the request's last stop bit ends at the request's end: data in is high from there
        assert_eq!(
            lines.data_in.last().unwrap().level,
            crate::uart::Level::High
        );
        assert!(lines.data_in.last().unwrap().t < request_end);
        assert!(text.contains("$timescale 1 us $end"));
        assert!(text.find("#0\n").unwrap() < text.find("1o").unwrap());
    }
}
