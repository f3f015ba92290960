//! Conformance suites: cases that judge a meter against the promises of its data sheets, with
//! measurements, limits, clauses and verdicts.
//!
//! The suites talk to the meter only through [`Target`], so the same code runs against the
//! software meter, a pty, a USB adapter and the Pi's pins. Limits come from the meter's profile
//! and configuration ([`MeterSpec`]), never from constants here. Times come from the target's edge
//! or byte timestamps. The suites never print and never write files: the runner hands every
//! finished case to a [`CaseSink`] (the reports) as soon as it is judged.

pub mod pins;
pub mod readout;
pub mod registers;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Serialize;

use crate::iec62056::decoder::{self, DecodeOptions, Decoded, Mode, ParityMode};
use crate::iec62056::{parity, Request};
use crate::meter::config::MeterSpec;
use crate::meter::profile::Clause;
use crate::target::{Capabilities, RecvEnd, Target, TargetError};
use crate::time::{TimeSource, Timestamp};
use crate::uart::RxChar;

/// A case's or a measurement's verdict.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Verdict {
    /// Within limits.
    Pass,
    /// Outside limits.
    Fail,
    /// Not applicable (the reason says why).
    Skip,
    /// The observation could not decide (too little energy in the window, a rig-side limit
    /// ended a receive): the meter is neither blamed nor cleared. Exits 1 like a failure, but
    /// records, JUnit and the summary say which.
    Inconclusive,
    /// Could not be judged (I/O failure, no data).
    Error,
}

impl std::fmt::Display for Verdict {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Verdict::Pass => "pass",
            Verdict::Fail => "fail",
            Verdict::Skip => "skip",
            Verdict::Inconclusive => "inconclusive",
            Verdict::Error => "error",
        })
    }
}

/// One measured quantity with its limits.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Measurement {
    /// Name, unique within the case.
    pub name: String,
    /// The value.
    pub value: f64,
    /// Unit.
    pub unit: String,
    /// Lower limit (inclusive), if any.
    pub low: Option<f64>,
    /// Upper limit (inclusive), if any.
    pub high: Option<f64>,
    /// Where the value came from.
    pub source: TimeSource,
    /// One-sided uncertainty, in `unit`.
    pub uncertainty: f64,
    /// Within limits or not.
    pub verdict: Verdict,
    /// Whether the value is within its uncertainty of a limit.
    pub marginal: bool,
}

impl Measurement {
    /// A measurement judged against `[low, high]`.
    pub fn new(
        name: &str,
        value: f64,
        unit: &str,
        low: Option<f64>,
        high: Option<f64>,
        source: TimeSource,
        uncertainty: f64,
    ) -> Self {
        let ok =
            value.is_finite() && low.is_none_or(|l| value >= l) && high.is_none_or(|h| value <= h);
        let marginal = ok
            && (low.is_some_and(|l| value - l < uncertainty)
                || high.is_some_and(|h| h - value < uncertainty));
        Measurement {
            name: name.into(),
            value,
            unit: unit.into(),
            low,
            high,
            source,
            uncertainty,
            verdict: if ok { Verdict::Pass } else { Verdict::Fail },
            marginal,
        }
    }

    /// A recorded value with no limit (information).
    pub fn info(name: &str, value: f64, unit: &str, source: TimeSource, uncertainty: f64) -> Self {
        Measurement::new(name, value, unit, None, None, source, uncertainty)
    }

    /// `[low, high]` as text.
    pub fn limit_text(&self) -> String {
        match (self.low, self.high) {
            (Some(l), Some(h)) => format!("{l}–{h} {}", self.unit),
            (Some(l), None) => format!("≥ {l} {}", self.unit),
            (None, Some(h)) => format!("≤ {h} {}", self.unit),
            (None, None) => "no limit".into(),
        }
    }
}

/// The outcome of one case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// Case id (`readout.response_time`, …): an interface, never renamed.
    pub id: String,
    /// Suite name.
    pub suite: String,
    /// What the case checks.
    pub title: String,
    /// The clause it checks.
    pub clause: Clause,
    /// Verdict.
    pub verdict: Verdict,
    /// Why it failed, was skipped or errored; what was seen when it passed.
    pub message: String,
    /// Measurements.
    pub measurements: Vec<Measurement>,
    /// Details (findings with offsets, per-state results).
    pub details: Vec<String>,
    /// Target time at start and end, seconds.
    pub target_time_s: (f64, f64),
    /// Wall time the case took, seconds.
    pub wall_time_s: f64,
}

/// Receives each case as soon as it is judged (reports write it out at once).
pub trait CaseSink {
    /// A case finished.
    fn case_done(&mut self, case: &CaseResult) -> std::io::Result<()>;
    /// A case is starting (progress display).
    fn case_started(&mut self, _id: &str) {}
    /// Asked before each case: `true` ends the run there (the cases not started are not
    /// recorded). `rig serve` says so on SIGTERM, so the case in hand finishes and no other starts.
    fn should_stop(&mut self) -> bool {
        false
    }
}

/// Everything about the readout suite's reading of the meter.
#[derive(Debug, Clone)]
pub struct Readout {
    /// End of the request's last stop bit.
    pub request_end: Timestamp,
    /// The characters received, as on the wire.
    pub chars: Vec<RxChar>,
    /// Why receiving stopped.
    pub end: RecvEnd,
    /// Strict decode (conformance findings).
    pub strict: Decoded,
    /// Tolerant decode (content).
    pub tolerant: Decoded,
}

impl Readout {
    /// Response time in ns: start bit of the first character minus the request's end.
    pub fn response_ns(&self) -> Option<i64> {
        self.chars
            .first()
            .map(|c| c.start.diff_ns(self.request_end))
    }
    /// Register values by address (tolerant decode), as numbers.
    pub fn numbers(&self) -> BTreeMap<String, f64> {
        self.tolerant
            .data_sets
            .iter()
            .filter_map(|d| {
                d.values
                    .first()
                    .and_then(|v| v.number())
                    .map(|n| (d.address.clone(), n))
            })
            .collect()
    }
    /// When the meter took its register snapshot: the end of the request (the 351 builds the
    /// answer from the registers at the moment of the request).
    pub fn snapshot_time(&self) -> Timestamp {
        self.request_end
    }
}

/// Options of a run.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// Suites to run (empty: all).
    pub suites: Vec<String>,
    /// Cases to run (empty: every case of the selected suites).
    pub cases: Vec<String>,
    /// Time between the two readouts of `readout.monotonic`.
    pub monotonic_wait: Duration,
    /// Longest window `pulse_out.constant` may take, and the longest `tariff.table` waits per
    /// input state for 1.8.0 to grow by 2 kWh.
    pub max_constant_window: Duration,
    /// Dwell per input state in `tariff.table`.
    pub tariff_dwell: Duration,
    /// Pulses generated by `pulse_in.count`.
    pub pulse_in_count: u32,
    /// Whether the identification's type number must equal the meter file's (true for the
    /// software meter and when a meter file was given).
    pub check_type_number: bool,
}

impl RunOptions {
    /// Defaults for a target: long windows in virtual time cost nothing.
    pub fn for_target(caps: &Capabilities) -> Self {
        if caps.virtual_time {
            RunOptions {
                suites: vec![],
                cases: vec![],
                monotonic_wait: Duration::from_secs(3600),
                max_constant_window: Duration::from_secs(48 * 3600),
                tariff_dwell: Duration::from_secs(600),
                pulse_in_count: 50,
                check_type_number: true,
            }
        } else {
            RunOptions {
                suites: vec![],
                cases: vec![],
                monotonic_wait: Duration::from_secs(60),
                max_constant_window: Duration::from_secs(2 * 3600),
                tariff_dwell: Duration::from_secs(120),
                pulse_in_count: 20,
                check_type_number: false,
            }
        }
    }
}

/// What a case needs while it runs.
pub struct Ctx<'a> {
    /// The meter.
    pub target: &'a mut dyn Target,
    /// The meter's expected configuration.
    pub spec: &'a MeterSpec,
    /// Options.
    pub opts: &'a RunOptions,
    /// Capabilities of the target.
    pub caps: Capabilities,
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("target", &self.target.describe())
            .finish()
    }
}

/// The standard's limit between characters (IEC 62056-21, referenced by 004 as IEC 61107).
pub const INTER_CHAR_LIMIT: Duration = Duration::from_millis(1500);

impl Ctx<'_> {
    /// One character time on this meter's line, ns.
    pub fn char_ns(&self) -> u64 {
        crate::uart::frame_ns(self.spec.baud, 1)
    }

    /// Sends a request (soft 7E1) and receives the answer until its BCC, judging nothing.
    /// Receiving allows a second past the response window for the first character, the line time
    /// of 400 characters, and gaps of up to twice the standard's inter-character limit (so a slow
    /// meter is measured, not cut off).
    pub fn readout_with(&mut self, request: &Request) -> Result<Readout, TargetError> {
        self.target.discard_input()?;
        let bytes = parity::encode(&request.encode());
        let request_end = self.target.send(&bytes)?;
        let first_deadline =
            request_end + Duration::from_millis(self.spec.profile.response_max_ms as u64 + 1000);
        // whole answer: 359 characters at the line rate, plus gaps
        let whole =
            first_deadline + Duration::from_nanos(self.char_ns() * 400) + INTER_CHAR_LIMIT * 2;
        let (chars, end) =
            self.target
                .recv(whole, INTER_CHAR_LIMIT * 2, &mut |c: &[RxChar]| {
                    let n = c.len();
                    n >= 2 && c[n - 2].byte & 0x7F == crate::iec62056::ETX
                })?;
        let parity_mode = if self.caps.parity_checked {
            ParityMode::Even
        } else {
            ParityMode::None
        };
        let rule = self.spec.profile.bcc_rule;
        let run = |mode| {
            let mut d = decoder::Decoder::new(DecodeOptions {
                mode,
                bcc_rule: rule,
                parity: parity_mode,
            });
            for c in &chars {
                let b = if self.caps.parity_checked {
                    c.byte
                } else {
                    c.byte & 0x7F
                };
                d.feed(b, c.start);
            }
            d.finish()
        };
        let strict = run(Mode::Strict);
        let tolerant = run(Mode::Tolerant);
        Ok(Readout {
            request_end,
            chars,
            end,
            strict,
            tolerant,
        })
    }

    /// A general readout.
    pub fn readout(&mut self) -> Result<Readout, TargetError> {
        self.readout_with(&Request::general())
    }

    /// Waits `d` on the target's clock.
    pub fn wait(&mut self, d: Duration) -> Result<(), TargetError> {
        let now = self.target.now()?;
        self.target.wait_until(now + d)
    }
}

/// A case's definition.
#[derive(Debug, Clone, Copy)]
pub struct CaseDef {
    /// Id.
    pub id: &'static str,
    /// What it checks.
    pub title: &'static str,
}

/// Every case, by suite, in run order. The ids are an interface.
pub const SUITES: &[(&str, &[CaseDef])] = &[
    (
        "readout",
        &[
            CaseDef {
                id: "readout.response_time",
                title: "Answer starts 20–500 ms after the request",
            },
            CaseDef {
                id: "readout.identification",
                title: "Identification /KAM, mode character, type number",
            },
            CaseDef {
                id: "readout.framing",
                title: "Parity and stop bit of every character; inter-character time",
            },
            CaseDef {
                id: "readout.structure",
                title: "STX, CR LF line ends, '!', ETX and BCC present",
            },
            CaseDef {
                id: "readout.bcc",
                title: "BCC under the profile's rule",
            },
            CaseDef {
                id: "readout.registers",
                title: "All 17 data sets in order with their digits, decimals and units",
            },
            CaseDef {
                id: "readout.tariff_sum",
                title: "1.8.0 equals the sum of 1.8.1–1.8.4 within whole-kWh rounding",
            },
            CaseDef {
                id: "readout.monotonic",
                title: "Energy and hour counters never go back across readouts",
            },
            CaseDef {
                id: "readout.recovery",
                title: "Answers a valid request after a foreign address and after noise",
            },
            CaseDef {
                id: "readout.hour_counter",
                title: "96.8.0 counts hours of the target's clock (±1 h quantisation)",
            },
            CaseDef {
                id: "readout.truncation",
                title: "Energy registers show completed kWh (truncated, not rounded)",
            },
            CaseDef {
                id: "readout.customer_number",
                title: "0.0.0 is the programmed customer number",
            },
        ],
    ),
    (
        "pulse_out",
        &[
            CaseDef {
                id: "pulse_out.width",
                title: "Pulse length 30 or 80 ms per MM, ±10 %",
            },
            CaseDef {
                id: "pulse_out.pause",
                title: "Pause between pulses",
            },
            CaseDef {
                id: "pulse_out.constant",
                title: "Pulses against the energy register, within the accuracy class",
            },
        ],
    ),
    (
        "tariff",
        &[CaseDef {
            id: "tariff.table",
            title: "Every input state feeds only its tariff register",
        }],
    ),
    (
        "pulse_in",
        &[CaseDef {
            id: "pulse_in.count",
            title: "96.50.1 grows by exactly the pulses generated",
        }],
    ),
    (
        "logging",
        &[CaseDef {
            id: "logging.monthly",
            title: "The monthly move at 00:00 of day NN and at no other midnight",
        }],
    ),
    (
        "max_demand",
        &[
            CaseDef {
                id: "max_demand.peak",
                title: "1.6.0 / 3.6.0 are the month's highest primary averages over periods of J",
            },
            CaseDef {
                id: "max_demand.reset",
                title: "Max reset on the assert edge: peaks to last month, accumulated, 0.1 counts",
            },
        ],
    ),
    (
        "max_reset",
        &[CaseDef {
            id: "max_reset.peak_reset",
            title: "A max-reset input moves the peak to last month and counts the reset",
        }],
    ),
];

/// Every case id, in run order.
pub fn case_ids() -> Vec<&'static str> {
    SUITES
        .iter()
        .flat_map(|(_, cases)| cases.iter().map(|c| c.id))
        .collect()
}

/// Names of all suites.
pub fn suite_names() -> Vec<&'static str> {
    SUITES.iter().map(|(n, _)| *n).collect()
}

/// A case's judgement before the runner stamps ids and times on it.
#[derive(Debug, Clone)]
pub struct Judgement {
    /// Clause checked.
    pub clause: Clause,
    /// Verdict (overridden to Fail when a measurement fails).
    pub verdict: Verdict,
    /// Message.
    pub message: String,
    /// Measurements.
    pub measurements: Vec<Measurement>,
    /// Details.
    pub details: Vec<String>,
}

impl Judgement {
    /// Verdict from the measurements: fail when any fails.
    pub fn from_measurements(
        clause: Clause,
        measurements: Vec<Measurement>,
        message: impl Into<String>,
    ) -> Self {
        let fail = measurements.iter().any(|m| m.verdict == Verdict::Fail);
        Judgement {
            clause,
            verdict: if fail { Verdict::Fail } else { Verdict::Pass },
            message: message.into(),
            measurements,
            details: vec![],
        }
    }
    /// A skip with its reason.
    pub fn skip(clause: Clause, reason: impl Into<String>) -> Self {
        Judgement {
            clause,
            verdict: Verdict::Skip,
            message: reason.into(),
            measurements: vec![],
            details: vec![],
        }
    }
    /// Inconclusive: the observation could not decide; `reason` says why and what would decide
    /// it (a longer window, a higher load, the option that raises a rig-side limit).
    pub fn inconclusive(clause: Clause, reason: impl Into<String>) -> Self {
        Judgement {
            clause,
            verdict: Verdict::Inconclusive,
            message: reason.into(),
            measurements: vec![],
            details: vec![],
        }
    }
    /// An error (could not judge).
    pub fn error(clause: Clause, reason: impl Into<String>) -> Self {
        Judgement {
            clause,
            verdict: Verdict::Error,
            message: reason.into(),
            measurements: vec![],
            details: vec![],
        }
    }
    /// A verdict from a list of problems: pass when empty.
    pub fn from_problems(
        clause: Clause,
        problems: Vec<String>,
        measurements: Vec<Measurement>,
        ok_message: impl Into<String>,
    ) -> Self {
        let mfail = measurements.iter().any(|m| m.verdict == Verdict::Fail);
        if problems.is_empty() && !mfail {
            Judgement {
                clause,
                verdict: Verdict::Pass,
                message: ok_message.into(),
                measurements,
                details: vec![],
            }
        } else {
            let mut msg: Vec<String> = problems.iter().take(3).cloned().collect();
            for m in measurements.iter().filter(|m| m.verdict == Verdict::Fail) {
                msg.push(format!(
                    "{} = {} {} outside {}",
                    m.name,
                    fmt_num(m.value),
                    m.unit,
                    m.limit_text()
                ));
            }
            if problems.len() > 3 {
                msg.push(format!("… and {} more", problems.len() - 3));
            }
            Judgement {
                clause,
                verdict: Verdict::Fail,
                message: msg.join("; "),
                measurements,
                details: problems,
            }
        }
    }
}

/// A number for messages: at most 3 decimals, no trailing zeros.
pub fn fmt_num(x: f64) -> String {
    let s = format!("{x:.3}");
    let s = s.trim_end_matches('0').trim_end_matches('.');
    s.to_string()
}

/// State shared between the cases of a run (the readout suite reads once and judges many times).
#[derive(Debug, Default)]
pub struct Shared {
    /// The first readout, if it was taken.
    pub first: Option<Result<Readout, TargetError>>,
}

/// Runs the selected suites against `target`, handing each case to `sink` as soon as it is
/// judged. Returns all cases. A target error inside a case makes that case an error and the run
/// goes on; a vanished device ends the run after recording the case.
pub fn run(
    target: &mut dyn Target,
    spec: &MeterSpec,
    opts: &RunOptions,
    sink: &mut dyn CaseSink,
) -> Vec<CaseResult> {
    let caps = target.capabilities();
    let mut ctx = Ctx {
        target,
        spec,
        opts,
        caps,
    };
    let mut shared = Shared::default();
    let mut results = Vec::new();
    let mut vanished: Option<String> = None;
    'suites: for (suite, cases) in SUITES {
        if !opts.suites.is_empty() && !opts.suites.iter().any(|s| s == suite) {
            continue;
        }
        for def in cases.iter() {
            if !opts.cases.is_empty() && !opts.cases.iter().any(|c| c == def.id) {
                continue;
            }
            if sink.should_stop() {
                break 'suites;
            }
            sink.case_started(def.id);
            let wall = std::time::Instant::now();
            let t0 = ctx
                .target
                .now()
                .map(|t| t.as_secs_f64())
                .unwrap_or(f64::NAN);
            let j = match &vanished {
                Some(v) => {
                    Judgement::error(readout::clause_for(def.id, spec), format!("not run: {v}"))
                }
                None => run_case(&mut ctx, &mut shared, def.id),
            };
            if j.verdict == Verdict::Error && j.message.contains("vanished") && vanished.is_none() {
                vanished = Some(j.message.clone());
            }
            let t1 = ctx
                .target
                .now()
                .map(|t| t.as_secs_f64())
                .unwrap_or(f64::NAN);
            let verdict = if j.verdict == Verdict::Pass
                && j.measurements.iter().any(|m| m.verdict == Verdict::Fail)
            {
                Verdict::Fail
            } else {
                j.verdict
            };
            let r = CaseResult {
                id: def.id.into(),
                suite: (*suite).into(),
                title: def.title.into(),
                clause: j.clause,
                verdict,
                message: j.message,
                measurements: j.measurements,
                details: j.details,
                target_time_s: (t0, t1),
                wall_time_s: wall.elapsed().as_secs_f64(),
            };
            if let Err(e) = sink.case_done(&r) {
                eprintln!("rig: warning: could not write the result of {}: {e}", r.id);
            }
            results.push(r);
        }
    }
    let _ = ctx.target.release();
    results
}

fn run_case(ctx: &mut Ctx<'_>, shared: &mut Shared, id: &str) -> Judgement {
    let r = match id.split('.').next() {
        _ if registers::handles(id) => registers::run(ctx, id),
        Some("readout") => readout::run(ctx, shared, id),
        _ => pins::run(ctx, id),
    };
    match r {
        Ok(j) => j,
        Err(e) if registers::handles(id) => {
            Judgement::error(registers::clause_for(id), e.to_string())
        }
        Err(e) => Judgement::error(readout::clause_for(id, ctx.spec), e.to_string()),
    }
}
