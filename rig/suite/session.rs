//! One run session: the selected cases executed in order against one target, with a stop token,
//! a maximum run time, a typed [`Outcome`] and a stream of [`Event`]s to [`Observer`]s.
//!
//! `rig run` and `rig serve`'s runs both go through [`run`]: it emits `RunStarted`, runs each
//! selected case (emitting `CaseStarted`, every `Exchange` as it happens, the case's `Finding`s
//! and `CaseDone`), checks the [`StopToken`] and the maximum run time between cases and during
//! the cases' waits ([`super::Ctx::wait_until`] waits in slices), and ends with `RunEnded`
//! carrying the outcome. A vanished device is recognised by its type
//! ([`TargetError::Vanished`]), never by words in a message.
//!
//! The records (JSON, JUnit, CSV) and the progress lines are observers (`crate::report`); this
//! module must not format files, print, or read a wall clock for anything it judges: the maximum
//! run time is measured on the target's clock (virtual time for the software meter). Observer
//! failures do not stop a run; they are returned in [`SessionEnd::observer_errors`] for the
//! caller to show.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{
    selected, CaseDef, CaseResult, Ctx, ExchangeNote, Judgement, MeterSpec, RunOptions, Shared,
    Verdict,
};
use crate::iec62056::exchange::Exchange;
use crate::report::Summary;
use crate::target::{Target, TargetError};

/// Why a run was stopped on purpose.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "by", rename_all = "snake_case")]
pub enum StopReason {
    /// The operator sent a signal (SIGINT or SIGTERM) to `rig run`.
    Signal {
        /// The signal's name.
        signal: String,
    },
    /// `DELETE /runs/{id}` on `rig serve`.
    Deleted,
    /// `rig serve` is shutting down (SIGTERM or SIGINT to the service).
    Shutdown,
    /// The maximum run time passed on the target's clock.
    MaxRunTime {
        /// The limit, seconds.
        seconds: f64,
    },
}

impl std::fmt::Display for StopReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StopReason::Signal { signal } => write!(f, "stopped by the operator ({signal})"),
            StopReason::Deleted => f.write_str("stopped by DELETE /runs/{id}"),
            StopReason::Shutdown => f.write_str("stopped: rig serve is shutting down"),
            StopReason::MaxRunTime { seconds } => write!(
                f,
                "stopped: the maximum run time of {} s passed on the target's clock",
                super::fmt_num(*seconds)
            ),
        }
    }
}

/// Asks a running session to stop; cloned into whatever may ask (a signal thread, an HTTP
/// handler). The first reason given is kept.
#[derive(Debug, Clone, Default)]
pub struct StopToken(Arc<Mutex<Option<StopReason>>>);

impl StopToken {
    /// A token nobody has used.
    pub fn new() -> Self {
        StopToken::default()
    }

    /// Asks to stop for `reason`; returns false when a stop was already asked (that reason stays).
    pub fn stop(&self, reason: StopReason) -> bool {
        let mut r = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if r.is_some() {
            return false;
        }
        *r = Some(reason);
        true
    }

    /// Why a stop was asked, if it was.
    pub fn reason(&self) -> Option<StopReason> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum Outcome {
    /// Every selected case ran; none failed, was inconclusive or errored.
    Passed,
    /// Every selected case ran; at least one failed or errored.
    Failed,
    /// Every selected case ran; none failed, but at least one could not decide.
    Inconclusive,
    /// Stopped on purpose before every case ran.
    Stopped {
        /// Why.
        reason: StopReason,
    },
    /// Cut short by the rig's side: the device vanished (or the process died, as read back).
    Interrupted {
        /// Why.
        reason: String,
    },
}

impl Outcome {
    /// The outcome of a run that recorded every case with these counts.
    pub fn of_summary(s: &Summary) -> Outcome {
        if s.fail + s.error > 0 {
            Outcome::Failed
        } else if s.inconclusive > 0 {
            Outcome::Inconclusive
        } else {
            Outcome::Passed
        }
    }

    /// `rig run`'s exit code: 0 passed; 1 failed or inconclusive; 2 stopped or interrupted.
    pub fn exit_code(&self) -> u8 {
        match self {
            Outcome::Passed => 0,
            Outcome::Failed | Outcome::Inconclusive => 1,
            Outcome::Stopped { .. } | Outcome::Interrupted { .. } => 2,
        }
    }

    /// Why the run ended early (the record's `aborted`), when it did.
    pub fn ended_early(&self) -> Option<String> {
        match self {
            Outcome::Stopped { reason } => Some(reason.to_string()),
            Outcome::Interrupted { reason } => Some(format!("interrupted: {reason}")),
            _ => None,
        }
    }

    /// One word: `passed`, `failed`, `inconclusive`, `stopped` or `interrupted`.
    pub fn name(&self) -> &'static str {
        match self {
            Outcome::Passed => "passed",
            Outcome::Failed => "failed",
            Outcome::Inconclusive => "inconclusive",
            Outcome::Stopped { .. } => "stopped",
            Outcome::Interrupted { .. } => "interrupted",
        }
    }
}

/// What happens in a run, in order. Observers see each as it happens.
#[derive(Debug)]
pub enum Event<'a> {
    /// The run starts with these cases, in run order.
    RunStarted {
        /// The target's description.
        target: &'a str,
        /// The selected cases.
        plan: &'a [&'static CaseDef],
    },
    /// A case starts.
    CaseStarted {
        /// The case.
        case: &'static CaseDef,
    },
    /// A request was answered (or not): the timed characters and the judgement.
    Exchange {
        /// The case that made it.
        case: &'static str,
        /// The request, the timed answer, both decodes.
        exchange: &'a Exchange,
        /// The request's end, the answer's end and the judgement under the profile's rules.
        note: &'a ExchangeNote,
    },
    /// A finding of a case (a detail that goes with its verdict).
    Finding {
        /// The case.
        case: &'static str,
        /// What was found.
        text: &'a str,
    },
    /// A case is judged.
    CaseDone {
        /// The result.
        case: &'a CaseResult,
    },
    /// The run ended.
    RunEnded {
        /// How.
        outcome: &'a Outcome,
        /// The target's clock at the end, seconds (NaN when it could not be read).
        target_time_s: f64,
    },
}

/// An observer's failure (a record that could not be written), named by the observer.
#[derive(Debug, thiserror::Error)]
#[error("{observer}: {source}")]
pub struct ObserverError {
    /// Which observer.
    pub observer: &'static str,
    /// What failed.
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync>,
}

/// Sees every event of a run.
pub trait Observer {
    /// One event. An error is reported to the caller; the run goes on.
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError>;
}

/// An observer that ignores everything.
#[derive(Debug, Default, Clone, Copy)]
pub struct Discard;

impl Observer for Discard {
    fn event(&mut self, _: &Event<'_>) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// Several observers, each seeing every event in order; errors are kept, not returned.
pub struct Fanout<'a> {
    observers: Vec<&'a mut dyn Observer>,
    /// Errors the observers returned, in order.
    pub errors: Vec<String>,
}

impl std::fmt::Debug for Fanout<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Fanout")
            .field("observers", &self.observers.len())
            .finish()
    }
}

impl<'a> Fanout<'a> {
    /// Every event goes to each of `observers`.
    pub fn new(observers: Vec<&'a mut dyn Observer>) -> Self {
        Fanout {
            observers,
            errors: vec![],
        }
    }
}

impl Observer for Fanout<'_> {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        for o in &mut self.observers {
            if let Err(err) = o.event(e) {
                self.errors.push(err.to_string());
            }
        }
        Ok(())
    }
}

/// What a session leaves.
#[derive(Debug)]
pub struct SessionEnd {
    /// How the run ended.
    pub outcome: Outcome,
    /// Every case recorded, in run order.
    pub cases: Vec<CaseResult>,
    /// The target's clock at the end, seconds (NaN when it could not be read).
    pub target_time_s: f64,
    /// Errors observers returned (a record that could not be written), in order.
    pub observer_errors: Vec<String>,
}

/// How a session is bounded.
#[derive(Debug, Clone, Default)]
pub struct Limits {
    /// Asked from outside (signal, HTTP) to stop.
    pub stop: StopToken,
    /// The longest the run may take on the target's clock.
    pub max_run_time: Option<Duration>,
}

/// Runs the cases `opts` selects against `target`, emitting every event to `observers`, until
/// the last case, a stop, the maximum run time or a vanished device.
pub fn run(
    target: &mut dyn Target,
    spec: &MeterSpec,
    opts: &RunOptions,
    limits: &Limits,
    observers: Vec<&mut dyn Observer>,
) -> SessionEnd {
    let mut fan = Fanout::new(observers);
    let plan = selected(opts);
    let describe = target.describe();
    let _ = fan.event(&Event::RunStarted {
        target: &describe,
        plan: &plan,
    });
    let mut ctx = Ctx::new(target, spec, opts);
    ctx.stop = limits.stop.clone();
    ctx.events = &mut fan;
    if let (Some(max), Ok(now)) = (limits.max_run_time, ctx.target.now()) {
        ctx.deadline = Some((now + max, max));
    }
    let (cases, cut) = run_cases(&mut ctx, &plan);
    let target_time_s = target_secs(&mut ctx);
    let _ = ctx.target.release();
    let outcome = match cut {
        CaseEnd::Vanished(reason) => Outcome::Interrupted { reason },
        CaseEnd::Stopped => Outcome::Stopped {
            reason: ctx.stop.reason().unwrap_or(StopReason::Shutdown),
        },
        CaseEnd::Next => Outcome::of_summary(&Summary::of(&cases)),
    };
    drop(ctx);
    let _ = fan.event(&Event::RunEnded {
        outcome: &outcome,
        target_time_s,
    });
    SessionEnd {
        outcome,
        cases,
        target_time_s,
        observer_errors: fan.errors,
    }
}

/// The case loop: returns the recorded cases and how the loop ended (`Next`: every case ran).
fn run_cases(ctx: &mut Ctx<'_>, plan: &[&'static CaseDef]) -> (Vec<CaseResult>, CaseEnd) {
    let mut shared = Shared::default();
    let mut results = Vec::new();
    for def in plan {
        if ctx.check_stop().is_err() {
            return (results, CaseEnd::Stopped);
        }
        ctx.case = def.id;
        let _ = ctx.events.event(&Event::CaseStarted { case: def });
        let (r, end) = run_case(ctx, &mut shared, def);
        for d in &r.details {
            let _ = ctx.events.event(&Event::Finding {
                case: def.id,
                text: d,
            });
        }
        let _ = ctx.events.event(&Event::CaseDone { case: &r });
        results.push(r);
        if !matches!(end, CaseEnd::Next) {
            return (results, end);
        }
    }
    (results, CaseEnd::Next)
}

enum CaseEnd {
    Next,
    Stopped,
    Vanished(String),
}

/// One case, judged and stamped with ids and times.
fn run_case(
    ctx: &mut Ctx<'_>,
    shared: &mut Shared,
    def: &'static CaseDef,
) -> (CaseResult, CaseEnd) {
    let wall = std::time::Instant::now();
    let t0 = target_secs(ctx);
    let clause = (def.clause)(ctx.spec.profile);
    let mut end = CaseEnd::Next;
    let j = match def.unmet(&ctx.caps) {
        Some(need) => Judgement::skip(clause, need.missing(&ctx.target.describe())),
        None => match (def.run)(ctx, shared, clause) {
            Ok(j) => j,
            Err(e) => {
                end = match &e {
                    TargetError::Vanished { .. } => CaseEnd::Vanished(e.to_string()),
                    TargetError::Stopped { .. } => CaseEnd::Stopped,
                    _ => CaseEnd::Next,
                };
                Judgement::error(clause, e.to_string())
            }
        },
    };
    let t1 = target_secs(ctx);
    let verdict = if j.verdict == Verdict::Pass
        && j.measurements.iter().any(|m| m.verdict == Verdict::Fail)
    {
        Verdict::Fail
    } else {
        j.verdict
    };
    let mut measurements = j.measurements;
    if verdict == Verdict::Error {
        super::add_unset(&mut measurements, &(def.measures)(ctx.spec));
    }
    let r = CaseResult {
        id: def.id.into(),
        suite: def.suite.into(),
        title: def.title.into(),
        clause: j.clause,
        verdict,
        message: j.message,
        measurements,
        details: j.details,
        target_time_s: (t0, t1),
        wall_time_s: wall.elapsed().as_secs_f64(),
    };
    (r, end)
}

pub(super) fn target_secs(ctx: &mut Ctx<'_>) -> f64 {
    ctx.target
        .now()
        .map(|t| t.as_secs_f64())
        .unwrap_or(f64::NAN)
}
