//! Evidence a person can look at, beside the records: waveform captures (`OUT/captures/CASE.vcd`,
//! [`capture`]) and a self-contained HTML test report (`OUT/report.html`, [`html`]).
//!
//! Both are observers of the run session's event stream ([`crate::suite::session`]), kept out
//! of the suite logic. What the report plots must be readable back from `record.json` (so
//! `rig report RUN_DIR` rebuilds the page), so the records writer keeps two more things per case,
//! collected here from the same events: the [`Series`] of observed values (the response time of
//! every exchange, every pulse width and pause) and the [`Attachment`]s the capture observer
//! wrote (path, media type, SHA-256).
//!
//! Pure: nothing here reads a clock; times are the target's timestamps of edges and characters.

pub mod capture;
pub mod html;
pub mod sources;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};

use crate::suite::Event;
use crate::target::Port;
use crate::time::Timestamp;
use crate::uart::{Edge, Level};

/// A file that goes with a case, listed in `record.json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attachment {
    /// Path relative to the run directory (`captures/readout.response_time.vcd`).
    pub path: String,
    /// Media type (`text/x-vcd` for a value change dump).
    pub media_type: String,
    /// SHA-256 of the file's bytes, lower-case hex.
    pub sha256: String,
    /// Size, bytes.
    pub bytes: u64,
}

/// Attachments written for cases and not yet recorded, by case id: the capture observer puts
/// them in on `CaseDone`, the records writer (after it in the observer list) takes them out for
/// the same `CaseDone`.
#[derive(Debug, Clone, Default)]
pub struct Inbox(Arc<Mutex<BTreeMap<String, Vec<Attachment>>>>);

impl Inbox {
    /// An empty inbox.
    pub fn new() -> Self {
        Inbox::default()
    }

    /// Files `a` under `case`.
    pub fn put(&self, case: &str, a: Attachment) {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.entry(case.to_string()).or_default().push(a);
    }

    /// Takes every attachment filed under `case`.
    pub fn take(&self, case: &str) -> Vec<Attachment> {
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        m.remove(case).unwrap_or_default()
    }
}

/// Observed values of one kind over a case, against their limits: what a plot shows.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Series {
    /// Name (`response_time`, `port2.width`, `port2.pause`).
    pub name: String,
    /// Unit of the values.
    pub unit: String,
    /// Lower limit, inclusive, when there is one.
    pub low: Option<f64>,
    /// Upper limit, inclusive, when there is one.
    pub high: Option<f64>,
    /// `[target time s, value]`, in time order: the first [`MAX_POINTS`] observations, and the
    /// lowest and the highest when they came later.
    pub points: Vec<[f64; 2]>,
    /// How many values were observed (more than `points` holds when it was cut).
    pub total: usize,
    /// The lowest and highest observation, while collecting.
    #[serde(skip)]
    extremes: Option<([f64; 2], [f64; 2])>,
}

/// The most points a series keeps (the record stays small; `total` counts the rest).
pub const MAX_POINTS: usize = 400;

impl Series {
    fn new(name: String, unit: &str, low: Option<f64>, high: Option<f64>) -> Self {
        Series {
            name,
            unit: unit.into(),
            low,
            high,
            points: vec![],
            total: 0,
            extremes: None,
        }
    }

    fn push(&mut self, t_s: f64, v: f64) {
        self.total += 1;
        let p = [t_s, v];
        if self.points.len() < MAX_POINTS {
            self.points.push(p);
        }
        let (lo, hi) = self.extremes.get_or_insert((p, p));
        if v < lo[1] {
            *lo = p;
        }
        if v > hi[1] {
            *hi = p;
        }
    }

    /// The points with the extremes added when the first [`MAX_POINTS`] did not hold them.
    fn close(mut self) -> Self {
        if let Some((lo, hi)) = self.extremes.take() {
            for p in [lo, hi] {
                if !self.points.contains(&p) {
                    self.points.push(p);
                }
            }
            self.points.sort_by(|a, b| a[0].total_cmp(&b[0]));
        }
        self
    }
}

/// Collects the [`Series`] of the case running, from `Exchange` and `Edges` events.
#[derive(Debug, Clone)]
pub struct SeriesCollector {
    response_ms: (f64, f64),
    series: Vec<Series>,
    /// Every exchange's response time in the run so far (for the cases that judge them all).
    run_responses: Series,
    /// The edges taken on each port in this case, judged at its end.
    edges: [Vec<Edge>; 2],
}

/// The start of a case on the target's clock from its record's seconds (zero when unknown),
/// a microsecond early so rounding never drops an edge at the start itself.
pub fn case_start(t0_s: f64) -> Timestamp {
    if t0_s.is_finite() && t0_s > 0.0 {
        Timestamp(((t0_s * 1e9).round() as u64).saturating_sub(1000))
    } else {
        Timestamp::ZERO
    }
}

/// The cases that judge every exchange of the run so far rather than their own: their plot
/// is the run's response times.
pub const RUN_WIDE: &[&str] = &["readout.every_exchange"];

impl SeriesCollector {
    /// A collector judging response times against `[min_ms, max_ms]` (the profile's window,
    /// 004 Note 1 for the 351 Combi).
    pub fn new(min_ms: f64, max_ms: f64) -> Self {
        SeriesCollector {
            response_ms: (min_ms, max_ms),
            series: vec![],
            run_responses: Series::new(
                "response_time (every exchange of the run)".into(),
                "ms",
                Some(min_ms),
                Some(max_ms),
            ),
            edges: [vec![], vec![]],
        }
    }

    fn series(&mut self, name: String, unit: &str) -> &mut Series {
        let i = match self.series.iter().position(|s| s.name == name) {
            Some(i) => i,
            None => {
                self.series.push(Series::new(name, unit, None, None));
                self.series.len() - 1
            }
        };
        &mut self.series[i]
    }

    /// Takes in one event of the run.
    pub fn event(&mut self, e: &Event<'_>) {
        match e {
            Event::CaseStarted { .. } => {
                self.series.clear();
                self.edges = [vec![], vec![]];
            }
            Event::Exchange { exchange, note, .. } => {
                let (lo, hi) = self.response_ms;
                let t = exchange.request_end.as_secs_f64();
                if let Some(ms) = note.assessment.response_ms {
                    let s = self.series("response_time".into(), "ms");
                    (s.low, s.high) = (Some(lo), Some(hi));
                    s.push(t, ms);
                    self.run_responses.push(t, ms);
                }
            }
            Event::Edges { port, edges, .. } => {
                self.edges[*port as usize].extend_from_slice(edges);
            }
            _ => {}
        }
    }

    /// Pulse widths (low time) and pauses (high time between pulses) from a port's edges at or
    /// after `since`: edges a case takes that predate its start (what earlier cases left, which
    /// it flushes) are not its evidence.
    fn pulses(&mut self, port: Port, since: Timestamp) {
        let n = port.number();
        let edges = std::mem::take(&mut self.edges[port as usize]);
        let mut prev: Option<Edge> = None;
        for e in edges.into_iter().filter(|e| e.t >= since) {
            if let Some(p) = prev {
                let ms = (e.t.as_ns() as f64 - p.t.as_ns() as f64) / 1e6;
                let t = p.t.as_secs_f64();
                match (p.level, e.level) {
                    (Level::Low, Level::High) => {
                        self.series(format!("port{n}.width"), "ms").push(t, ms)
                    }
                    (Level::High, Level::Low) => {
                        self.series(format!("port{n}.pause"), "ms").push(t, ms)
                    }
                    _ => {}
                }
            }
            prev = Some(e);
        }
    }

    /// The series of case `id`: the response times of its exchanges, and the pulse widths and
    /// pauses it judges, with limits from its measurements (`portN.width` from
    /// `portN.min_width`, `portN.pause` from `portN.min_pause`); pulse series the case has no
    /// such measurement for are dropped (a width case does not judge pauses). A case in
    /// [`RUN_WIDE`] gets every exchange of the run instead.
    pub fn finish(&mut self, case: &crate::suite::CaseResult) -> Vec<Series> {
        let (id, measurements) = (case.id.as_str(), &case.measurements);
        let since = case_start(case.target_time_s.0);
        for p in Port::ALL {
            self.pulses(p, since);
        }
        let mut out = std::mem::take(&mut self.series);
        out.retain_mut(|s| {
            let Some((port, kind)) = s.name.split_once('.') else {
                return true;
            };
            let m = measurements
                .iter()
                .find(|m| m.name == format!("{port}.min_{kind}"));
            match m {
                Some(m) => {
                    (s.low, s.high) = (m.low, m.high);
                    true
                }
                None => false,
            }
        });
        if RUN_WIDE.contains(&id) && self.run_responses.total > 0 {
            out = vec![self.run_responses.clone()];
        }
        out.into_iter().map(Series::close).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::profile::Clause;
    use crate::suite::{CaseResult, Measurement, Verdict};
    use crate::time::TimeSource;

    fn edge(ms: u64, high: bool) -> Edge {
        Edge {
            t: Timestamp::from_ms(ms),
            level: Level::from_high(high),
        }
    }

    fn case(id: &str, t0_s: f64, measurements: Vec<Measurement>) -> CaseResult {
        CaseResult {
            id: id.into(),
            suite: "pulse_out".into(),
            title: String::new(),
            clause: Clause {
                source: "000_c06f58957f887af9.txt",
                section: "x",
            },
            verdict: Verdict::Pass,
            message: String::new(),
            measurements,
            details: vec![],
            target_time_s: (t0_s, t0_s + 10.0),
            wall_time_s: 0.0,
        }
    }

    /// Pulses a case flushed from before its start are not plotted; the ones after it are, with
    /// the limits of the case's own measurement; a series the case does not judge is dropped.
    #[test]
    fn a_case_plots_only_its_own_pulses_against_its_limits() {
        let mut c = SeriesCollector::new(20.0, 500.0);
        let def = &crate::suite::CASES[0];
        c.event(&Event::CaseStarted {
            case: def,
            within: None,
        });
        // a 50 ms pulse at 1 s (before the case started at 5 s), then 30 and 36 ms pulses
        let edges = [
            edge(1000, false),
            edge(1050, true),
            edge(6000, false),
            edge(6030, true),
            edge(6100, false),
            edge(6136, true),
        ];
        c.event(&Event::Edges {
            case: def.id,
            port: Port::Port2,
            edges: &edges,
        });
        let m = Measurement::new(
            "port2.min_width",
            30.0,
            "ms",
            Some(27.0),
            Some(33.0),
            TimeSource::Edge,
            0.0,
        );
        let s = c.finish(&case("pulse_out.width", 5.0, vec![m]));
        assert_eq!(s.len(), 1, "{s:?}");
        assert_eq!(s[0].name, "port2.width");
        assert_eq!(
            (s[0].low, s[0].high, s[0].total),
            (Some(27.0), Some(33.0), 2)
        );
        let widths: Vec<f64> = s[0].points.iter().map(|p| p[1]).collect();
        assert_eq!(widths, [30.0, 36.0]);
    }

    /// Past the first [`MAX_POINTS`], the lowest and the highest value are still plotted.
    #[test]
    fn a_long_series_keeps_its_extremes() {
        let mut s = Series::new("x".into(), "ms", None, None);
        for i in 0..MAX_POINTS + 100 {
            s.push(i as f64, if i == MAX_POINTS + 50 { 99.0 } else { 1.0 });
        }
        let s = s.close();
        assert_eq!(s.total, MAX_POINTS + 100);
        assert!(
            s.points.contains(&[(MAX_POINTS + 50) as f64, 99.0]),
            "{:?}",
            s.points.last()
        );
        assert!(s.points.windows(2).all(|w| w[0][0] <= w[1][0]));
    }
}
