//! What a module drives into the meter's inputs (pins 3 and 4), read as the meter reads it.
//!
//! The module under test pulls the meter's port pins low (the sheet's logical "1", 000 "Tariff
//! control") to select a tariff, to send pulses into the pulse input, or to press max reset. The
//! bench logs the level at each port pin as timestamped edges ([`InputLog`]); the readers here
//! turn them into what the meter's KK code makes of them: the active tariff over time
//! ([`read_tariffs`], by the judge's transcription of 000's tariff tables in
//! [`crate::meter::sheet`]) and the pulses a pulse or max-reset input counts ([`read_pulses`], as
//! the software meter counts them: every change to active is one pulse).
//!
//! No source document gives a minimum pulse length, a maximum pulse rate or a debounce time for
//! the module inputs (004 "Module interface" gives pins 3/4 only levels — 0 V to the supply — a
//! 1 MΩ pull-up with 10 nF to ground, and 3 mA when low; 000 gives the tariff tables and the KK
//! roles). So the readers only measure; the `module.tariff_drive` and `module.pulse_out` cases
//! record their figures as information. Pure: timestamps in, readings out.

use crate::meter::io::{PortRole, TariffControl};
use crate::target::Port;
use crate::time::Timestamp;
use crate::uart::{Edge, Level};

/// The levels the module drove on both ports during one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputLog {
    /// Each port's level at `start` (index: port 1, port 2), at the meter's pin.
    pub initial: [Level; 2],
    /// Each port's edges in time order, at the meter's pin (low: the module asserts "1").
    pub edges: [Vec<Edge>; 2],
    /// The window's start.
    pub start: Timestamp,
    /// The window's end.
    pub end: Timestamp,
}

impl InputLog {
    /// A log of ports idle (high, released) from `start` to `end`.
    pub fn idle(start: Timestamp, end: Timestamp) -> Self {
        InputLog {
            initial: [Level::High; 2],
            edges: [Vec::new(), Vec::new()],
            start,
            end,
        }
    }

    /// Port `port`'s edges.
    pub fn port(&self, port: Port) -> &[Edge] {
        &self.edges[port as usize]
    }

    /// Whether `port` is driven active (low) just after `t` (edges at `t` included).
    fn active_at(&self, port: Port, t: Timestamp) -> bool {
        let level = self
            .port(port)
            .iter()
            .take_while(|e| e.t <= t)
            .last()
            .map_or(self.initial[port as usize], |e| e.level);
        level == Level::Low
    }
}

/// One stretch of time with one active tariff.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TariffSpan {
    /// When the meter's inputs started selecting `tariff`.
    pub from: Timestamp,
    /// When they stopped (the window's end for the last span).
    pub to: Timestamp,
    /// The tariff (1–4) 000's table gives for the inputs' levels.
    pub tariff: u8,
}

impl TariffSpan {
    /// Its length, ms.
    pub fn ms(&self) -> f64 {
        self.to.diff_ms(self.from)
    }
}

/// The active tariff over the window, as the meter reads its tariff inputs.
#[derive(Debug, Clone, PartialEq)]
pub struct TariffReading {
    /// The spans in time order; neighbours have different tariffs.
    pub spans: Vec<TariffSpan>,
}

impl TariffReading {
    /// How often the tariff changed.
    pub fn changes(&self) -> usize {
        self.spans.len().saturating_sub(1)
    }
    /// The shortest span between two changes, ms (`None`: fewer than two changes; the first and
    /// last spans are cut by the window, so they do not count).
    pub fn shortest_dwell_ms(&self) -> Option<f64> {
        let n = self.spans.len();
        if n < 3 {
            return None;
        }
        self.spans[1..n - 1]
            .iter()
            .map(TariffSpan::ms)
            .reduce(f64::min)
    }
    /// The tariffs in the order they became active, one entry per span.
    pub fn sequence(&self) -> Vec<u8> {
        self.spans.iter().map(|s| s.tariff).collect()
    }
}

/// The active tariff over `log`'s window as a meter with tariff control `control` reads it
/// (000 "Tariff control": input 1 and, for 4 tariffs, input 2; "1" is a port pulled low).
/// `None` when the meter's tariffs are controlled by communication: it reads no module input.
pub fn read_tariffs(control: &TariffControl, log: &InputLog) -> Option<TariffReading> {
    let TariffControl::Module {
        tariffs,
        inverted,
        input1,
        input2,
    } = *control
    else {
        return None;
    };
    let tariff_at = |t: Timestamp| {
        let in1 = log.active_at(input1, t);
        let in2 = input2.is_some_and(|p| log.active_at(p, t));
        crate::meter::sheet::tariff(tariffs, inverted, in1, in2)
    };
    let mut times: Vec<Timestamp> = log
        .port(input1)
        .iter()
        .chain(input2.map_or(&[][..], |p| log.port(p)))
        .map(|e| e.t)
        .filter(|&t| t > log.start && t < log.end)
        .collect();
    times.sort();
    times.dedup();
    let mut spans = vec![TariffSpan {
        from: log.start,
        to: log.end,
        tariff: tariff_at(log.start),
    }];
    for t in times {
        let tariff = tariff_at(t);
        let last = spans.last_mut().expect("one span at least");
        if tariff != last.tariff {
            last.to = t;
            spans.push(TariffSpan {
                from: t,
                to: log.end,
                tariff,
            });
        }
    }
    Some(TariffReading { spans })
}

/// The pulses on one meter input, as the meter counts them.
#[derive(Debug, Clone, PartialEq)]
pub struct PulseReading {
    /// The port.
    pub port: Port,
    /// What the meter's KK code makes of the port (pulse in, max reset, debiting stop).
    pub role: PortRole,
    /// Pulses counted: changes to active (low) inside the window, as the software meter counts
    /// them.
    pub count: u64,
    /// Each whole pulse's active (low) time, ms, in order (a pulse still held at the window's
    /// end is counted but has no width).
    pub widths_ms: Vec<f64>,
    /// Each released (high) time between two pulses, ms, in order.
    pub gaps_ms: Vec<f64>,
}

impl PulseReading {
    /// The shortest pulse, ms.
    pub fn shortest_ms(&self) -> Option<f64> {
        self.widths_ms.iter().copied().reduce(f64::min)
    }
    /// The longest pulse, ms.
    pub fn longest_ms(&self) -> Option<f64> {
        self.widths_ms.iter().copied().reduce(f64::max)
    }
    /// The shortest gap between pulses, ms.
    pub fn shortest_gap_ms(&self) -> Option<f64> {
        self.gaps_ms.iter().copied().reduce(f64::min)
    }
    /// The shortest start-to-start period of two pulses, ms.
    pub fn shortest_period_ms(&self) -> Option<f64> {
        self.widths_ms
            .iter()
            .zip(&self.gaps_ms)
            .map(|(w, g)| w + g)
            .reduce(f64::min)
    }
}

/// The pulses on `port` (a meter input of `role`) in `log`'s window.
pub fn read_pulses(port: Port, role: PortRole, log: &InputLog) -> PulseReading {
    let mut r = PulseReading {
        port,
        role,
        count: 0,
        widths_ms: Vec::new(),
        gaps_ms: Vec::new(),
    };
    let mut level = log.initial[port as usize];
    let mut since = log.start;
    let mut pulses_begun = false;
    for e in log
        .port(port)
        .iter()
        .filter(|e| e.t >= log.start && e.t <= log.end)
    {
        if e.level == level {
            continue;
        }
        match e.level {
            Level::Low => {
                r.count += 1;
                if pulses_begun {
                    r.gaps_ms.push(e.t.diff_ms(since));
                }
            }
            Level::High if level == Level::Low && r.count > 0 => {
                r.widths_ms.push(e.t.diff_ms(since));
                pulses_begun = true;
            }
            Level::High => {}
        }
        level = e.level;
        since = e.t;
    }
    r
}

/// The meter inputs of `io` that count pulses (pulse in, max reset, debiting stop), by port.
pub fn pulse_inputs(io: &crate::meter::io::IoMap) -> Vec<(Port, PortRole)> {
    Port::ALL
        .into_iter()
        .map(|p| (p, io.role(p)))
        .filter(|(_, r)| {
            matches!(
                r,
                PortRole::PulseIn | PortRole::MaxReset | PortRole::DebitingStop
            )
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(x: f64) -> Timestamp {
        Timestamp((x * 1e6) as u64)
    }
    fn edge(t: f64, level: Level) -> Edge {
        Edge { t: ms(t), level }
    }
    /// Pulses low at each `(start, width)`, ms.
    fn pulses(p: &[(f64, f64)]) -> Vec<Edge> {
        p.iter()
            .flat_map(|&(s, w)| [edge(s, Level::Low), edge(s + w, Level::High)])
            .collect()
    }

    fn two_tariff(inverted: bool) -> TariffControl {
        TariffControl::Module {
            tariffs: 2,
            inverted,
            input1: Port::Port2,
            input2: None,
        }
    }

    #[test]
    fn a_2_tariff_input_held_low_reads_tariff_2_and_inverted_tariff_1() {
        let mut log = InputLog::idle(ms(0.0), ms(10_000.0));
        log.edges[1] = vec![edge(4000.0, Level::Low)];
        let r = read_tariffs(&two_tariff(false), &log).unwrap();
        assert_eq!(r.sequence(), vec![1, 2]);
        assert_eq!(r.spans[1].from, ms(4000.0));
        assert_eq!(r.changes(), 1);
        assert_eq!(r.shortest_dwell_ms(), None);
        let r = read_tariffs(&two_tariff(true), &log).unwrap();
        assert_eq!(r.sequence(), vec![2, 1]);
        // port 1 is not this meter's tariff input: edges there change nothing
        let mut other = InputLog::idle(ms(0.0), ms(10_000.0));
        other.edges[0] = pulses(&[(100.0, 50.0)]);
        let r = read_tariffs(&two_tariff(false), &other).unwrap();
        assert_eq!(r.sequence(), vec![1]);
        assert!(read_tariffs(&TariffControl::Communication, &log).is_none());
    }

    #[test]
    fn a_4_tariff_walk_reads_the_sheets_table_and_a_bounce_shows_as_short_dwells() {
        let four = TariffControl::Module {
            tariffs: 4,
            inverted: false,
            input1: Port::Port1,
            input2: Some(Port::Port2),
        };
        let mut log = InputLog::idle(ms(0.0), ms(20_000.0));
        // input 1 low 5–10 s and 15–20 s, input 2 low 10–20 s: tariffs 1, 2, 3, 4
        log.edges[0] = vec![
            edge(5000.0, Level::Low),
            edge(10_000.0, Level::High),
            edge(15_000.0, Level::Low),
        ];
        log.edges[1] = vec![edge(10_000.0, Level::Low)];
        let r = read_tariffs(&four, &log).unwrap();
        assert_eq!(r.sequence(), vec![1, 2, 3, 4]);
        assert_eq!(r.shortest_dwell_ms(), Some(5000.0));
        // the change to 2 bounces: low 1 ms, high 1 ms, then low
        log.edges[0].splice(
            0..1,
            [
                edge(5000.0, Level::Low),
                edge(5001.0, Level::High),
                edge(5002.0, Level::Low),
            ],
        );
        let r = read_tariffs(&four, &log).unwrap();
        assert_eq!(r.sequence(), vec![1, 2, 1, 2, 3, 4]);
        assert_eq!(r.changes(), 5);
        assert!((r.shortest_dwell_ms().unwrap() - 1.0).abs() < 1e-9);
    }

    #[test]
    fn pulses_count_every_change_to_active_with_widths_gaps_and_rate() {
        let mut log = InputLog::idle(ms(0.0), ms(1000.0));
        log.edges[0] = pulses(&[(100.0, 50.0), (200.0, 50.0), (300.0, 2.0)]);
        log.edges[0].push(edge(900.0, Level::Low)); // held at the end: counted, no width
        let r = read_pulses(Port::Port1, PortRole::PulseIn, &log);
        assert_eq!(r.count, 4);
        assert_eq!(r.widths_ms, vec![50.0, 50.0, 2.0]);
        assert_eq!(r.gaps_ms, vec![50.0, 50.0, 598.0]);
        assert_eq!(r.shortest_ms(), Some(2.0));
        assert_eq!(r.longest_ms(), Some(50.0));
        assert_eq!(r.shortest_gap_ms(), Some(50.0));
        assert_eq!(r.shortest_period_ms(), Some(100.0));
        // a port already low at the start is not a pulse until it is released and pulled again
        let mut held = InputLog::idle(ms(0.0), ms(1000.0));
        held.initial[0] = Level::Low;
        held.edges[0] = vec![edge(100.0, Level::High), edge(200.0, Level::Low)];
        let r = read_pulses(Port::Port1, PortRole::MaxReset, &held);
        assert_eq!(r.count, 1);
        assert!(r.widths_ms.is_empty());
    }

    #[test]
    fn pulse_inputs_follow_the_kk_table() {
        let kk = |c| crate::meter::io::IoCode::kk(c).unwrap().map;
        assert_eq!(pulse_inputs(&kk(5)), vec![(Port::Port1, PortRole::PulseIn)]);
        assert_eq!(
            pulse_inputs(&kk(15)),
            vec![(Port::Port1, PortRole::MaxReset)]
        );
        assert!(pulse_inputs(&kk(1)).is_empty());
    }
}
