//! One run session: the selected cases executed in order against one target, with a stop token,
//! a maximum run time, a typed [`Outcome`] and a stream of [`Event`]s to [`Observer`]s.
//!
//! `rig run` and `rig serve`'s runs both go through [`run`]: it emits `RunStarted`, runs each
//! selected case (emitting `CaseStarted`, every `Exchange`, the output `Edges` taken and every
//! input `Drive` as they happen, the case's `Finding`s and `CaseDone`), checks the [`StopToken`] and the maximum run time between cases and during
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

use super::plan::{self, PlanCtx};
use super::{
    schedule, selected, CaseDef, CaseResult, Ctx, ExchangeNote, Judgement, MeterSpec, RunOptions,
    Shared, Verdict,
};
use crate::iec62056::exchange::Exchange;
use crate::report::Summary;
use crate::target::{Drive, Port};
use crate::target::{Target, TargetError};
use crate::time::Timestamp;
use crate::uart::Edge;

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
    /// `rig serve`'s wall-clock maximum passed: the run's own (`max_wall_time_s`) or the
    /// service's (`--max-wall-time`), whichever is shorter. It ends a run whose client went away
    /// (a cancelled CI job) on the service's clock, whatever the target's clock does.
    MaxWallTime {
        /// The limit, seconds of wall-clock time from the request.
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
            StopReason::MaxWallTime { seconds } => write!(
                f,
                "stopped: the maximum run time of {} s passed on rig serve's wall clock \
                 (a client that went away, or a run longer than its max_wall_time_s or the \
                 service's --max-wall-time)",
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
        /// The case in whose passive wait it ran, when it did: its events reach the observers
        /// after that case is done (one case at a time), its target times say when it ran.
        within: Option<&'static str>,
    },
    /// A request was answered (or not): the timed characters and the judgement.
    Exchange {
        /// The case that made it.
        case: &'static str,
        /// The request, the timed answer, both decodes.
        exchange: &'a Exchange,
        /// The request's bytes as handed to the data line (with parity in bit 7), ending at
        /// `exchange.request_end`.
        sent: &'a [u8],
        /// The request's end, the answer's end and the judgement under the profile's rules.
        note: &'a ExchangeNote,
    },
    /// Edges a case took from a meter output (pulses), as levels at the module pin.
    Edges {
        /// The case that took them.
        case: &'static str,
        /// The output port.
        port: crate::target::Port,
        /// The edges, in time order.
        edges: &'a [crate::uart::Edge],
    },
    /// The rig drove a meter input (tariff, pulse in, max reset) on a port.
    Drive {
        /// The case that drove it.
        case: &'static str,
        /// The port.
        port: crate::target::Port,
        /// The sheet's logical level asked for (the pin level follows from the wiring).
        drive: crate::target::Drive,
        /// When, on the target's clock (after the backend set it).
        at: crate::time::Timestamp,
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
/// Each case runs in turn; the cases that ran inside its waits ([`share_wait`]) are recorded
/// right after it, their events delivered to the observers then (one case at a time), each
/// with its own target times.
fn run_cases(ctx: &mut Ctx<'_>, plan: &[&'static CaseDef]) -> (Vec<CaseResult>, CaseEnd) {
    let mut shared = Shared::default();
    let mut results = Vec::new();
    ctx.nest = Some(Box::new(Nest {
        queue: plan.to_vec(),
        host: None,
        done: vec![],
        vanished: None,
    }));
    let end = loop {
        let Some(def) = ctx.nest.as_mut().and_then(|n| n.next()) else {
            break CaseEnd::Next;
        };
        if ctx.check_stop().is_err() {
            break CaseEnd::Stopped;
        }
        ctx.case = def.id;
        let _ = ctx.events.event(&Event::CaseStarted {
            case: def,
            within: None,
        });
        let (r, end) = run_case(ctx, &mut shared, def);
        for d in &r.details {
            let _ = ctx.events.event(&Event::Finding {
                case: def.id,
                text: d,
            });
        }
        let _ = ctx.events.event(&Event::CaseDone { case: &r });
        results.push(r);
        let (done, vanished) = match ctx.nest.as_mut() {
            Some(n) => (std::mem::take(&mut n.done), n.vanished.take()),
            None => (vec![], None),
        };
        for (r, held) in done {
            held.replay(&mut *ctx.events);
            let _ = ctx.events.event(&Event::CaseDone { case: &r });
            results.push(r);
        }
        if !matches!(end, CaseEnd::Next) {
            break end;
        }
        if let Some(why) = vanished {
            break CaseEnd::Vanished(why);
        }
    };
    ctx.nest = None;
    (results, end)
}

/// The cases of a session not started yet, in run order, the case in hand (which may lend its
/// waits) and the cases that ran in its waits with their held events.
#[derive(Debug)]
pub(crate) struct Nest {
    queue: Vec<&'static CaseDef>,
    host: Option<&'static CaseDef>,
    done: Vec<(CaseResult, Held)>,
    vanished: Option<String>,
}

impl Nest {
    /// The next case to run in sequence, now the case in hand.
    fn next(&mut self) -> Option<&'static CaseDef> {
        let def = (!self.queue.is_empty()).then(|| self.queue.remove(0))?;
        self.host = Some(def);
        Some(def)
    }
}

/// [`Ctx::share_wait`]: while the case in hand waits until `t`, runs the queued cases that fit
/// ([`schedule::pick`], each evaluated by its plan at the moment), one after another, their
/// events held ([`Held`]) until the case in hand is done.
pub(crate) fn share_wait(ctx: &mut Ctx<'_>, t: Timestamp) -> Result<(), TargetError> {
    let Some(mut nest) = ctx.nest.take() else {
        return Ok(());
    };
    let r = lend(ctx, &mut nest, t);
    ctx.nest = Some(nest);
    r
}

fn lend(ctx: &mut Ctx<'_>, nest: &mut Nest, t: Timestamp) -> Result<(), TargetError> {
    let Some(host) = nest.host else {
        return Ok(());
    };
    if !schedule::lends(host.uses) || nest.vanished.is_some() {
        return Ok(());
    }
    let pc = PlanCtx {
        spec: ctx.spec,
        opts: ctx.opts,
        virtual_time: ctx.caps.virtual_time,
        pins: ctx.caps.pins,
        now_s: 0.0,
        readouts: 0,
    };
    let (readout_s, until) = (pc.readout_s(), t.as_secs_f64());
    loop {
        ctx.check_stop()?;
        let now = ctx.target.now()?.as_secs_f64();
        let (readouts, first_taken) = (ctx.log.len() as u32, ctx.first_readout.is_some());
        let cands: Vec<schedule::Candidate> = nest
            .queue
            .iter()
            .map(|d| schedule::Candidate {
                uses: d.uses,
                seconds: plan::expected_now(
                    d,
                    ctx.spec,
                    ctx.opts,
                    &ctx.caps,
                    now,
                    readouts,
                    first_taken,
                ),
            })
            .collect();
        let Some(i) = schedule::pick(host.uses, &cands, now, until, readout_s) else {
            return Ok(());
        };
        let def = nest.queue.remove(i);
        let (r, held, end) = run_held(ctx, def);
        nest.done.push((r, held));
        match end {
            CaseEnd::Next => {}
            CaseEnd::Stopped => return ctx.check_stop(),
            CaseEnd::Vanished(why) => {
                nest.vanished = Some(why);
                return Ok(());
            }
        }
    }
}

/// Runs `def` inside the wait of the case in hand, its events held; the case in hand's id and
/// cut are restored after it.
fn run_held(ctx: &mut Ctx<'_>, def: &'static CaseDef) -> (CaseResult, Held, CaseEnd) {
    let (case, cut) = (ctx.case, ctx.cut.take());
    ctx.held = Some(Held::default());
    ctx.case = def.id;
    let _ = ctx.sink().event(&Event::CaseStarted {
        case: def,
        within: Some(case),
    });
    let mut shared = Shared {
        first: ctx.first_readout.clone(),
    };
    let (r, end) = run_case(ctx, &mut shared, def);
    for d in &r.details {
        let _ = ctx.sink().event(&Event::Finding {
            case: def.id,
            text: d,
        });
    }
    let held = ctx.held.take().unwrap_or_default();
    (ctx.case, ctx.cut) = (case, cut);
    (r, held, end)
}

/// The events of a case that ran inside another's wait, kept for the observers until the case
/// that lent the wait is done (`CaseDone` is the session's to send).
#[derive(Debug, Default)]
pub(crate) struct Held(Vec<HeldEvent>);

#[derive(Debug)]
enum HeldEvent {
    Started(&'static CaseDef, Option<&'static str>),
    Exchange {
        case: &'static str,
        exchange: Box<Exchange>,
        sent: Vec<u8>,
        note: ExchangeNote,
    },
    Edges {
        case: &'static str,
        port: Port,
        edges: Vec<Edge>,
    },
    Drive {
        case: &'static str,
        port: Port,
        drive: Drive,
        at: Timestamp,
    },
    Finding {
        case: &'static str,
        text: String,
    },
}

impl Observer for Held {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        let h = match e {
            Event::CaseStarted { case, within } => HeldEvent::Started(case, *within),
            Event::Exchange {
                case,
                exchange,
                sent,
                note,
            } => HeldEvent::Exchange {
                case,
                exchange: Box::new((*exchange).clone()),
                sent: sent.to_vec(),
                note: (*note).clone(),
            },
            Event::Edges { case, port, edges } => HeldEvent::Edges {
                case,
                port: *port,
                edges: edges.to_vec(),
            },
            Event::Drive {
                case,
                port,
                drive,
                at,
            } => HeldEvent::Drive {
                case,
                port: *port,
                drive: *drive,
                at: *at,
            },
            Event::Finding { case, text } => HeldEvent::Finding {
                case,
                text: text.to_string(),
            },
            Event::RunStarted { .. } | Event::CaseDone { .. } | Event::RunEnded { .. } => {
                return Ok(())
            }
        };
        self.0.push(h);
        Ok(())
    }
}

impl Held {
    /// Sends the held events to `to`, in order.
    fn replay(self, to: &mut dyn Observer) {
        for h in &self.0 {
            let e = match h {
                HeldEvent::Started(case, within) => Event::CaseStarted {
                    case,
                    within: *within,
                },
                HeldEvent::Exchange {
                    case,
                    exchange,
                    sent,
                    note,
                } => Event::Exchange {
                    case,
                    exchange,
                    sent,
                    note,
                },
                HeldEvent::Edges { case, port, edges } => Event::Edges {
                    case,
                    port: *port,
                    edges,
                },
                HeldEvent::Drive {
                    case,
                    port,
                    drive,
                    at,
                } => Event::Drive {
                    case,
                    port: *port,
                    drive: *drive,
                    at: *at,
                },
                HeldEvent::Finding { case, text } => Event::Finding { case, text },
            };
            let _ = to.event(&e);
        }
    }
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
    ctx.cut = None;
    let mut j = match def.unmet(&ctx.caps) {
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
    if matches!(end, CaseEnd::Next) {
        undecided_when_cut(&mut j, ctx.cut.take());
    }
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

/// A case that failed or errored on an answer a rig-side limit cut (`--answer-limit`,
/// `--timeout-ms`) is inconclusive: the meter was still sending within its limits, so what the
/// case missed is the rig's, never the meter's. The message keeps what the case would have said.
fn undecided_when_cut(j: &mut Judgement, cut: Option<String>) {
    let failed = j.verdict == Verdict::Error
        || j.verdict == Verdict::Fail
        || j.measurements.iter().any(|m| m.verdict == Verdict::Fail);
    if let (true, Some(limit)) = (failed, cut) {
        j.message = format!(
            "undecided: {limit}; the meter was still sending within its limits (the case saw: {} {})",
            j.verdict, j.message
        );
        j.verdict = Verdict::Inconclusive;
        for m in &mut j.measurements {
            if m.verdict == Verdict::Fail {
                m.verdict = Verdict::Inconclusive;
            }
        }
    }
}

pub(super) fn target_secs(ctx: &mut Ctx<'_>) -> f64 {
    ctx.target
        .now()
        .map(|t| t.as_secs_f64())
        .unwrap_or(f64::NAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{self, Record, Reporter, RunState};
    use crate::sim::SimTarget;
    use crate::target::{Clock, DataLink, ModulePorts, RecvEnd, SentAt, Timing};
    use crate::time::Timestamp;
    use crate::uart::RxChar;
    use quick_junit::{NonSuccessKind, Report, TestCaseStatus};

    /// The software meter, whose data line vanishes at the `n`th request.
    struct VanishAt {
        sim: SimTarget,
        n: usize,
    }

    impl Clock for VanishAt {
        fn now(&mut self) -> Result<Timestamp, TargetError> {
            self.sim.now()
        }
        fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
            self.sim.wait_until(t)
        }
    }

    impl DataLink for VanishAt {
        fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
            self.n = self.n.saturating_sub(1);
            if self.n == 0 {
                return Err(TargetError::Vanished {
                    device: "test-port".into(),
                    detail: "unplugged".into(),
                    source: None,
                });
            }
            self.sim.send(bytes)
        }
        fn recv(
            &mut self,
            deadline: Timestamp,
            max_gap: Duration,
            complete: &mut dyn FnMut(&[RxChar]) -> bool,
        ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
            self.sim.recv(deadline, max_gap, complete)
        }
        fn discard_input(&mut self) -> Result<(), TargetError> {
            self.sim.discard_input()
        }
    }

    impl Target for VanishAt {
        fn describe(&self) -> String {
            self.sim.describe()
        }
        fn timing(&self) -> Timing {
            self.sim.timing()
        }
        fn try_as_module_ports(&mut self) -> Option<&mut dyn ModulePorts> {
            self.sim.try_as_module_ports()
        }
    }

    fn spec(fixture: &str) -> MeterSpec {
        let path = format!("{}/fixtures/meters/{fixture}", env!("CARGO_MANIFEST_DIR"));
        MeterSpec::from_toml(&std::fs::read_to_string(&path).unwrap(), &path, None).unwrap()
    }

    /// Options selecting `cases` (all of the readout and register suites they belong to).
    fn opts(cases: &[&str]) -> RunOptions {
        let mut o =
            RunOptions::for_target(&SimTarget::new(MeterSpec::builtin_default()).capabilities());
        o.cases = cases.iter().map(|c| c.to_string()).collect();
        o
    }

    const QUICK: [&str; 4] = [
        "readout.response_time",
        "readout.identification",
        "readout.bcc",
        "readout.monotonic",
    ];

    fn session(
        t: &mut dyn Target,
        spec: &MeterSpec,
        o: &RunOptions,
        limits: &Limits,
        dir: &std::path::Path,
    ) -> (SessionEnd, Record) {
        let _ = std::fs::remove_dir_all(dir);
        let mut rep = Reporter::start(dir, t, spec, o).unwrap();
        let end = run(t, spec, o, limits, vec![&mut rep]);
        assert!(end.observer_errors.is_empty(), "{:?}", end.observer_errors);
        (end, report::read_record(dir).unwrap())
    }

    fn tmp(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tmp")
            .join(format!("rig-session-{name}-{}", std::process::id()))
    }

    /// JUnit's counts, and how many testcases are errors of type `not_run`.
    fn junit_counts(dir: &std::path::Path) -> (usize, usize, usize) {
        let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
        let r = Report::deserialize_from_str(&xml).unwrap();
        let not_run = r
            .test_suites
            .iter()
            .flat_map(|s| &s.test_cases)
            .filter(|c| {
                matches!(&c.status, TestCaseStatus::NonSuccess { kind: NonSuccessKind::Error, ty: Some(t), .. } if t.as_str() == "not_run")
            })
            .count();
        (r.tests, r.errors, not_run)
    }

    #[test]
    fn each_outcome_is_reached_and_gives_its_exit_code() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&QUICK);
        let dir = tmp("outcomes");
        let mut t = SimTarget::new(healthy.clone());
        let (end, rec) = session(&mut t, &healthy, &o, &Limits::default(), &dir);
        assert_eq!(
            (end.outcome.clone(), end.outcome.exit_code()),
            (Outcome::Passed, 0)
        );
        assert_eq!(rec.outcome, Some(Outcome::Passed));
        assert_eq!(rec.state, RunState::Complete);

        let faulty = spec("faulty-slow-sum-bcc.toml");
        let mut t = SimTarget::new(faulty.clone());
        let (end, _) = session(&mut t, &faulty, &o, &Limits::default(), &dir);
        assert_eq!(
            (end.outcome.clone(), end.outcome.exit_code()),
            (Outcome::Failed, 1)
        );

        // a window of two hours cannot tell a counter at half rate from a healthy one
        let mut cut = opts(&["readout.hour_counter"]);
        cut.max_constant_window = Duration::from_secs(2 * 3600);
        let mut t = SimTarget::new(healthy.clone());
        let (end, _) = session(&mut t, &healthy, &cut, &Limits::default(), &dir);
        let seen: Vec<_> = end
            .cases
            .iter()
            .map(|c| (&c.id, c.verdict, &c.message))
            .collect();
        assert_eq!(
            (end.outcome.clone(), end.outcome.exit_code()),
            (Outcome::Inconclusive, 1),
            "{seen:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_stop_asked_before_a_case_leaves_the_rest_not_run_in_junit() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&QUICK);
        let dir = tmp("stopped");
        let limits = Limits::default();
        limits.stop.stop(StopReason::Deleted);
        let mut t = SimTarget::new(healthy.clone());
        let (end, rec) = session(&mut t, &healthy, &o, &limits, &dir);
        let want = Outcome::Stopped {
            reason: StopReason::Deleted,
        };
        assert_eq!(
            (end.outcome.clone(), end.outcome.exit_code()),
            (want.clone(), 2)
        );
        assert_eq!((rec.state, rec.outcome), (RunState::Stopped, Some(want)));
        assert!(rec.cases.is_empty());
        assert_eq!(junit_counts(&dir), (QUICK.len(), QUICK.len(), QUICK.len()));
        let xml = std::fs::read_to_string(dir.join("junit.xml")).unwrap();
        assert!(xml.contains("stopped by DELETE /runs/{id}"), "{xml}");
        // the cases not run list what they would have measured, unset, in the CSV
        let csv = std::fs::read_to_string(dir.join("measurements.csv")).unwrap();
        let planned: usize = rec.planned.iter().map(|p| p.measures.len().max(1)).sum();
        assert_eq!(csv.matches(",not_run,").count(), planned, "{csv}");
        assert!(rec.planned.iter().any(|p| !p.measures.is_empty()));
        for p in &rec.planned {
            for m in &p.measures {
                let row = format!("{},{},not_run,{},,{},", p.id, p.suite, m.name, m.unit);
                assert!(csv.contains(&row), "{row} in {csv}");
            }
        }
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_maximum_run_time_cuts_a_wait_and_stops_the_run() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&QUICK);
        let dir = tmp("max-run-time");
        // readout.monotonic waits an hour of meter time between readouts: 10 minutes cut it
        let limits = Limits {
            max_run_time: Some(Duration::from_secs(600)),
            ..Limits::default()
        };
        let mut t = SimTarget::new(healthy.clone());
        let (end, rec) = session(&mut t, &healthy, &o, &limits, &dir);
        let want = Outcome::Stopped {
            reason: StopReason::MaxRunTime { seconds: 600.0 },
        };
        assert_eq!((end.outcome.clone(), end.outcome.exit_code()), (want, 2));
        // cut at the deadline, not after the hour
        assert!(
            (600.0..700.0).contains(&end.target_time_s),
            "{}",
            end.target_time_s
        );
        let cut = rec.cases.last().unwrap();
        assert_eq!(
            (cut.id.as_str(), cut.verdict),
            ("readout.monotonic", Verdict::Error)
        );
        assert!(
            cut.message.contains("maximum run time of 600 s"),
            "{}",
            cut.message
        );
        // the cut case lists what it should have measured, unset
        assert!(!cut.measurements.is_empty());
        assert!(
            cut.measurements.iter().all(|m| m.value.is_none()),
            "{:?}",
            cut.measurements
        );
        let (tests, errors, not_run) = junit_counts(&dir);
        assert_eq!(
            (tests, not_run),
            (QUICK.len(), QUICK.len() - rec.cases.len())
        );
        assert!(errors > not_run, "the cut case is an error too");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_vanished_device_interrupts_the_run_and_its_case_lists_unset_measurements() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&["readout.monotonic", "pulse_out.width", "tariff.table"]);
        let dir = tmp("vanished");
        let mut t = VanishAt {
            sim: SimTarget::new(healthy.clone()),
            n: 2,
        };
        let (end, rec) = session(&mut t, &healthy, &o, &Limits::default(), &dir);
        let Outcome::Interrupted { reason } = &end.outcome else {
            panic!("{:?}", end.outcome)
        };
        assert!(reason.contains("test-port vanished"), "{reason}");
        assert_eq!(end.outcome.exit_code(), 2);
        assert_eq!(rec.state, RunState::Stopped);
        let c = &rec.cases[0];
        assert_eq!(
            (c.id.as_str(), c.verdict),
            ("readout.monotonic", Verdict::Error)
        );
        let declared = (crate::suite::CASES
            .iter()
            .find(|d| d.id == c.id)
            .unwrap()
            .measures)(&healthy);
        assert!(!declared.is_empty());
        for d in &declared {
            let m = c.measurements.iter().find(|m| m.name == d.name).unwrap();
            assert_eq!((m.value, m.unit.as_str()), (None, d.unit.as_str()));
        }
        let json = std::fs::read_to_string(dir.join("record.json")).unwrap();
        assert!(json.contains("\"value\": null"), "{json}");
        let csv = std::fs::read_to_string(dir.join("measurements.csv")).unwrap();
        let name = declared[0].name;
        assert!(
            csv.contains(&format!("readout.monotonic,readout,error,{name},,")),
            "{csv}"
        );
        assert_eq!(junit_counts(&dir), (3, 3, 2));
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// Counts events by kind.
    #[derive(Default)]
    struct Count(std::collections::BTreeMap<&'static str, usize>);

    impl Observer for Count {
        fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
            let k = match e {
                Event::RunStarted { .. } => "run_started",
                Event::CaseStarted { .. } => "case_started",
                Event::Exchange { note, .. } => {
                    assert!(note.assessment.response_ms.is_some());
                    "exchange"
                }
                Event::Edges { edges, .. } => {
                    if edges.is_empty() {
                        return Ok(());
                    }
                    "edges"
                }
                Event::Finding { .. } => "finding",
                Event::Drive { .. } => "drive",
                Event::CaseDone { .. } => "case_done",
                Event::RunEnded { .. } => "run_ended",
            };
            *self.0.entry(k).or_default() += 1;
            Ok(())
        }
    }

    /// Records the order of the events: (kind, case).
    #[derive(Default)]
    struct Order(Vec<(&'static str, String)>);

    impl Observer for Order {
        fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
            let (k, c) = match e {
                Event::CaseStarted { case, .. } => ("started", case.id.to_string()),
                Event::Exchange { case, .. } => ("exchange", case.to_string()),
                Event::Edges { case, .. } => ("edges", case.to_string()),
                Event::Drive { case, .. } => ("drive", case.to_string()),
                Event::Finding { case, .. } => ("finding", case.to_string()),
                Event::CaseDone { case } => ("done", case.id.clone()),
                _ => return Ok(()),
            };
            self.0.push((k, c));
            Ok(())
        }
    }

    /// A case that runs inside another's wait is recorded after it, its events between its own
    /// CaseStarted and CaseDone (observers see one case at a time), its target times inside the
    /// lender's; a case that drives inputs and the case that judges the whole run do not.
    #[test]
    fn cases_inside_a_wait_reach_the_observers_one_at_a_time_after_the_lender() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&[
            "readout.response_time",
            "readout.monotonic",
            "readout.customer_number",
            "pulse_out.width",
            "pulse_in.count",
            "readout.every_exchange",
        ]);
        let mut t = SimTarget::new(healthy.clone());
        let mut seen = Order::default();
        let end = run(&mut t, &healthy, &o, &Limits::default(), vec![&mut seen]);
        assert_eq!(end.outcome, Outcome::Passed, "{:?}", end.cases);
        let ids: Vec<&str> = end.cases.iter().map(|c| c.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "readout.response_time",
                "readout.monotonic",
                "readout.customer_number",
                "pulse_out.width",
                "pulse_in.count",
                "readout.every_exchange"
            ]
        );
        let span = |id: &str| end.cases.iter().find(|c| c.id == id).unwrap().target_time_s;
        let host = span("readout.monotonic");
        for id in ["readout.customer_number", "pulse_out.width"] {
            let (a, b) = span(id);
            assert!(host.0 < a && b < host.1, "{id} {a}–{b} in {host:?}");
        }
        assert!(span("pulse_in.count").0 >= host.1);
        assert!(span("readout.every_exchange").0 >= span("pulse_in.count").1);
        // one case at a time, each event between its case's start and end
        let mut open: Option<String> = None;
        for (k, c) in &seen.0 {
            match *k {
                "started" => {
                    assert!(open.is_none(), "{c} started inside {open:?}");
                    open = Some(c.clone());
                }
                "done" => {
                    assert_eq!(open.as_deref(), Some(c.as_str()));
                    open = None;
                }
                _ => assert_eq!(open.as_deref(), Some(c.as_str()), "{k}"),
            }
        }
        // the whole-run judge saw every exchange, those made inside the wait too
        let every = end.cases.last().unwrap();
        let n = every
            .measurements
            .iter()
            .find(|m| m.name == "exchanges")
            .unwrap();
        let made = seen.0.iter().filter(|(k, _)| *k == "exchange").count();
        assert_eq!(n.value, Some(made as f64));
    }

    /// A stop asked while a case runs inside another's wait stops both, recorded as errors
    /// with the reason, and nothing after them starts.
    #[test]
    fn a_stop_inside_a_lent_wait_stops_the_lender_too() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&[
            "readout.response_time",
            "readout.monotonic",
            "pulse_out.constant",
            "readout.every_exchange",
        ]);
        let dir = tmp("stop-nested");
        // pulse_out.constant runs in readout.monotonic's hour: 20 minutes cut it
        let limits = Limits {
            max_run_time: Some(Duration::from_secs(1200)),
            ..Limits::default()
        };
        let mut t = SimTarget::new(healthy.clone());
        let (end, rec) = session(&mut t, &healthy, &o, &limits, &dir);
        assert!(matches!(end.outcome, Outcome::Stopped { .. }));
        let got: Vec<(&str, Verdict)> = rec
            .cases
            .iter()
            .map(|c| (c.id.as_str(), c.verdict))
            .collect();
        assert_eq!(
            got,
            [
                ("readout.response_time", Verdict::Pass),
                ("readout.monotonic", Verdict::Error),
                ("pulse_out.constant", Verdict::Error)
            ]
        );
        assert!(rec.cases[2].message.contains("maximum run time"));
        assert_eq!(junit_counts(&dir).2, 1, "every_exchange not run");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn observers_see_every_exchange_and_the_edges_taken_in_order() {
        let healthy = MeterSpec::builtin_default();
        let o = opts(&[
            "readout.response_time",
            "readout.monotonic",
            "pulse_out.width",
        ]);
        let mut t = SimTarget::new(healthy.clone());
        let (mut a, mut b) = (Count::default(), Count::default());
        let end = run(
            &mut t,
            &healthy,
            &o,
            &Limits::default(),
            vec![&mut a, &mut b],
        );
        assert_eq!(end.outcome, Outcome::Passed);
        let n = |k| a.0.get(k).copied().unwrap_or(0);
        assert_eq!(
            (
                n("run_started"),
                n("case_started"),
                n("case_done"),
                n("run_ended")
            ),
            (1, 3, 3, 1)
        );
        // the first readout is shared by response_time and monotonic, which takes two more
        assert_eq!(n("exchange"), 3, "{:?}", a.0);
        assert!(n("edges") >= 1, "{:?}", a.0);
        assert_eq!(a.0, b.0);
    }
}
