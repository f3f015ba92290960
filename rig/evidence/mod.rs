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
    /// `[target time s, value]`, in time order: the first [`MAX_POINTS`] observations.
    pub points: Vec<[f64; 2]>,
    /// How many values were observed (more than `points` holds when it was cut).
    pub total: usize,
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
        }
    }

    fn push(&mut self, t_s: f64, v: f64) {
        self.total += 1;
        if self.points.len() < MAX_POINTS {
            self.points.push([t_s, v]);
        }
    }
}

/// Collects the [`Series`] of the case running, from `Exchange` and `Edges` events.
#[derive(Debug, Clone)]
pub struct SeriesCollector {
    response_ms: (f64, f64),
    series: Vec<Series>,
    /// The last edge seen on each port in this case (a pulse may straddle two takes).
    last_edge: [Option<Edge>; 2],
}

impl SeriesCollector {
    /// A collector judging response times against `[min_ms, max_ms]` (the profile's window,
    /// 004 Note 1 for the 351 Combi).
    pub fn new(min_ms: f64, max_ms: f64) -> Self {
        SeriesCollector {
            response_ms: (min_ms, max_ms),
            series: vec![],
            last_edge: [None, None],
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
                self.last_edge = [None, None];
            }
            Event::Exchange { exchange, note, .. } => {
                let (lo, hi) = self.response_ms;
                let t = exchange.request_end.as_secs_f64();
                if let Some(ms) = note.assessment.response_ms {
                    let s = self.series("response_time".into(), "ms");
                    (s.low, s.high) = (Some(lo), Some(hi));
                    s.push(t, ms);
                }
            }
            Event::Edges { port, edges, .. } => self.edges(*port, edges),
            _ => {}
        }
    }

    /// Pulse widths (low time) and pauses (high time between pulses) from a port's edges.
    fn edges(&mut self, port: Port, edges: &[Edge]) {
        let i = port as usize;
        let n = port.number();
        for e in edges {
            if let Some(prev) = self.last_edge[i] {
                let ms = (e.t.as_ns() as f64 - prev.t.as_ns() as f64) / 1e6;
                let t = prev.t.as_secs_f64();
                match (prev.level, e.level) {
                    (Level::Low, Level::High) => self.series(format!("port{n}.width"), "ms").push(t, ms),
                    (Level::High, Level::Low) => self.series(format!("port{n}.pause"), "ms").push(t, ms),
                    _ => {}
                }
            }
            self.last_edge[i] = Some(*e);
        }
    }

    /// The case's series, with limits taken from its measurements where the series has none:
    /// `portN.width` from `portN.min_width`, `portN.pause` from `portN.min_pause`.
    pub fn finish(&mut self, measurements: &[crate::suite::Measurement]) -> Vec<Series> {
        let mut out = std::mem::take(&mut self.series);
        for s in &mut out {
            let (port, kind) = s.name.split_once('.').unwrap_or(("", ""));
            let m = measurements
                .iter()
                .find(|m| m.name == format!("{port}.min_{kind}"));
            if let (Some(m), None, None) = (m, s.low, s.high) {
                (s.low, s.high) = (m.low, m.high);
            }
        }
        out
    }
}
