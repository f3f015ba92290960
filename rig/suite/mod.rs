//! Conformance suites: cases that judge a meter against the promises of its data sheets, with
//! measurements, limits, clauses and verdicts.
//!
//! The suites talk to the meter only through [`Target`], so the same code runs against the
//! software meter, a pty, a USB adapter and the Pi's pins. Limits come from the meter's profile
//! and configuration ([`MeterSpec`]), never from constants here. Times come from the target's edge
//! or byte timestamps. The suites never print and never write files: the run session
//! ([`session`]) emits every exchange and every judged case as an [`Event`] to its observers (the
//! reports) as it happens, and cuts waits short when the run is asked to stop.

pub mod mode_c;
pub mod module;
pub mod pins;
pub mod plan;
pub mod readout;
pub mod registers;
pub mod registry;
pub mod schedule;
pub mod session;

pub use registry::{CaseDef, Declared, Need, Unit, CASES};
pub use session::{
    Discard, Event, Limits, Observer, ObserverError, Outcome, StopReason, StopToken,
};

use std::time::Duration;

use serde::Serialize;

use crate::iec62056::exchange::{
    switch_min, AnswerEnd, AnswerRules, Assessment, BaudSwitch, Exchange, Listening, ReadMode,
    Receiver, RigLimit, TimingQuality, SWITCH_MAX,
};
use crate::iec62056::{parity, AckOptionSelect, Request};
use crate::meter::config::MeterSpec;
use crate::meter::profile::Clause;
use crate::target::{Capabilities, Drive, ModulePorts, Port, RecvEnd, Target, TargetError};
use crate::time::{TimeSource, Timestamp};
use crate::uart::{Edge, RxChar};

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
    /// The value; unset (`null` in JSON, an empty CSV cell) for a declared measurement of a case
    /// that errored before taking it.
    pub value: Option<f64>,
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
            value: Some(value),
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

    /// A declared measurement that was not taken (its case errored): value unset, verdict error.
    pub fn unset(d: &Declared) -> Self {
        Measurement {
            name: d.name.into(),
            value: None,
            unit: d.unit.as_str().into(),
            low: d.low,
            high: d.high,
            source: TimeSource::Register,
            uncertainty: 0.0,
            verdict: Verdict::Error,
            marginal: false,
        }
    }

    /// The value for messages: the number, or `unset`.
    pub fn value_text(&self) -> String {
        self.value.map_or_else(|| "unset".into(), fmt_num)
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

/// Adds to `taken` every measurement of `declared` it lacks, unset, so an errored case still
/// lists what it should have measured. A declared name with `*` (one per port or register)
/// is added as declared when no taken name matches it.
pub fn add_unset(taken: &mut Vec<Measurement>, declared: &[Declared]) {
    for d in declared {
        let matches = |m: &Measurement| match d.name.split_once('*') {
            Some((pre, post)) => m.name.starts_with(pre) && m.name.ends_with(post),
            None => m.name == d.name,
        };
        if !taken.iter().any(matches) {
            taken.push(Measurement::unset(d));
        }
    }
}

/// One readout as the suites see it: the exchange of [`crate::iec62056::exchange`].
pub type Readout = Exchange;

/// Sends `request` and listens for the answer as [`Listening`] allows, the one receive loop
/// behind every path (`rig run`'s cases, `rig read`, `rig serve`'s module loop), in mode A.
///
/// First it waits up to [`Listening::first_wait`] for a character, then goes on while characters
/// keep coming within [`Listening::silence`] until the decoder has the BCC, the total limit or the
/// character limit. Input left over from an earlier exchange is dropped first.
///
/// # Errors
/// The target's, unchanged (a vanished port, an I/O failure).
pub fn exchange(
    target: &mut dyn Target,
    request: &Request,
    rules: &AnswerRules,
    listen: &Listening,
) -> Result<Exchange, TargetError> {
    exchange_in(target, request, rules, listen, ReadMode::A, 0)
}

/// [`exchange`] in protocol mode `mode`, on a line at `baud` (the initial rate, needed only for
/// mode C). When the identification announces mode C and `mode` acknowledges it
/// ([`ReadMode::acknowledges`]), the rig waits the reaction time ([`switch_min`]) after the
/// identification, sends `ACK 0 Z 0` CR LF at the initial rate, switches both directions to the
/// announced rate when its last stop bit has left, and reads the data message at the new rate
/// (IEC 62056-21 §6.3.3, §6.4.4); the line goes back to `baud` afterwards. The exchange's
/// [`Exchange::switch`] records the acknowledgement and the data message's start.
///
/// # Errors
/// The target's, unchanged; a backend that cannot switch rates says so
/// ([`crate::target::DataLink::set_baud`]).
pub fn exchange_in(
    target: &mut dyn Target,
    request: &Request,
    rules: &AnswerRules,
    listen: &Listening,
    mode: ReadMode,
    baud: u32,
) -> Result<Exchange, TargetError> {
    let caps = target.capabilities();
    target.discard_input()?;
    let req = request.encode();
    let sent = target.send(&parity::encode(&req))?;
    let request_end = sent.t;
    let timing = TimingQuality {
        source: caps.data_timing,
        uncertainty_ns: caps.data_uncertainty_ns,
        parity_checked: caps.parity_checked,
        request_source: sent.source,
        request_uncertainty_ns: sent.uncertainty_ns,
    };
    let mut rx = Receiver::new(request_end, rules.bcc_rule, timing);
    let (first, _) = target.recv(
        request_end + listen.first_wait,
        listen.silence,
        &mut |c: &[RxChar]| !c.is_empty(),
    )?;
    if first.is_empty() {
        let waited_ms = target.now()?.diff_ms(request_end);
        return Ok(rx.finish(&req, AnswerEnd::NoAnswer { waited_ms }));
    }
    first.into_iter().for_each(|c| rx.push(c));
    let total = request_end + listen.total;
    let ack_due = |rx: &Receiver| {
        rx.identification_line()
            .is_some_and(|(id, _)| mode.acknowledges(id.announced_mode()))
    };
    let mut end = receive_until(target, &mut rx, listen, total, listen.silence, &ack_due)?;
    let mut switch = None;
    if !rx.is_complete() && ack_due(&rx) {
        let s = acknowledge(target, &rx, baud)?;
        let ack_end = s.ack_end;
        // the first character of the data message within the reaction limit after the
        // acknowledgement (the silence before it is the switch, not an inter-character gap),
        // then the rest of it as in mode A
        let first = |rx: &Receiver| rx_first_after(rx, ack_end).is_some();
        // listen twice the reaction limit, so a late switch is measured (and fails its limit)
        // rather than left to run into the next exchange
        let wait = (ack_end + listen.first_wait + SWITCH_MAX).min(total);
        let mut result = receive_until(target, &mut rx, listen, wait, listen.total, &first);
        if matches!(result, Ok(RecvEnd::Complete)) && first(&rx) {
            result = receive_until(target, &mut rx, listen, total, listen.silence, &|_| false);
        }
        let restore = target.set_baud(baud);
        end = result?;
        restore?;
        let data_start = rx_first_after(&rx, ack_end);
        switch = Some(BaudSwitch { data_start, ..s });
        if switch.as_ref().is_some_and(|s| s.data_start.is_none()) {
            end = RecvEnd::Gap;
        }
    }
    let answer_end = answer_end(target, &rx, listen, end, request_end)?;
    Ok(rx.finish(&req, answer_end).with_switch(switch))
}

/// Feeds `rx` until it is complete, `stop` says so, the character limit, `until`, or `gap` of
/// silence after the last character.
fn receive_until(
    target: &mut dyn Target,
    rx: &mut Receiver,
    listen: &Listening,
    until: Timestamp,
    gap: Duration,
    stop: &dyn Fn(&Receiver) -> bool,
) -> Result<RecvEnd, TargetError> {
    let done = |rx: &Receiver| rx.is_complete() || rx.len() >= listen.max_chars || stop(rx);
    if done(rx) {
        return Ok(RecvEnd::Complete);
    }
    let mut fed = 0;
    let (_, e) = target.recv(until, gap, &mut |c: &[RxChar]| {
        for ch in &c[fed..] {
            rx.push(*ch);
        }
        fed = c.len();
        done(rx)
    })?;
    Ok(e)
}

/// Sends the mode C acknowledgement for the identification `rx` holds, at the reaction time after
/// it, switches the line when it has left, and drops what arrived meanwhile (an optical head's
/// echo of it); `data_start` is left for the caller.
fn acknowledge(
    target: &mut dyn Target,
    rx: &Receiver,
    baud: u32,
) -> Result<BaudSwitch, TargetError> {
    let (id, ident_end) = rx
        .identification_line()
        .map(|(i, t)| (i.clone(), t))
        .expect("acknowledge is called after a mode C identification");
    let new = crate::iec62056::mode_c_baud(id.mode_char).unwrap_or(baud);
    let min = switch_min(&id);
    target.wait_until(ident_end + min)?;
    let ack = AckOptionSelect::readout(id.mode_char).encode();
    let sent = target.send(&parity::encode(&ack))?;
    target.set_baud(new)?;
    // what arrived while the rig sent its acknowledgement is its echo (an optical head returns
    // every character it sends) or line noise, not the meter's data message
    target.discard_input()?;
    Ok(BaudSwitch {
        baud_char: id.mode_char,
        baud: new,
        from_baud: baud,
        identification_end: ident_end,
        ack_end: sent.t,
        data_start: None,
        min,
        max: SWITCH_MAX,
    })
}

/// Start of the first character received after `t`.
fn rx_first_after(rx: &Receiver, t: Timestamp) -> Option<Timestamp> {
    rx.chars().iter().find(|c| c.start >= t).map(|c| c.start)
}

/// Why listening ended, from the receiver's state and the backend's end.
fn answer_end(
    target: &mut dyn Target,
    rx: &Receiver,
    listen: &Listening,
    end: RecvEnd,
    request_end: Timestamp,
) -> Result<AnswerEnd, TargetError> {
    Ok(if rx.is_complete() {
        AnswerEnd::Complete
    } else if end == RecvEnd::Complete {
        AnswerEnd::RigLimit {
            limit: RigLimit::Characters { count: rx.len() },
        }
    } else if end == RecvEnd::Deadline {
        AnswerEnd::RigLimit {
            limit: RigLimit::Time {
                seconds: listen.total.as_secs_f64(),
            },
        }
    } else if rx.identification_seen() {
        AnswerEnd::Silence {
            after_ms: listen.silence.as_secs_f64() * 1e3,
        }
    } else {
        AnswerEnd::NoAnswer {
            waited_ms: target.now()?.diff_ms(request_end),
        }
    })
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
    /// The rig-side limit for one whole answer, from the end of the request (`--answer-limit`;
    /// default: long enough for every conforming answer, [`Listening::conforming`]).
    pub answer_limit: Option<Duration>,
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
                answer_limit: None,
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
                answer_limit: None,
            }
        }
    }
}

/// What a case needs while it runs. Cases wait through [`Ctx::wait`] and [`Ctx::wait_until`]
/// (never the target's `wait_until` directly), so a stop or the maximum run time cuts a long wait
/// short.
pub struct Ctx<'a> {
    /// The meter.
    pub target: &'a mut dyn Target,
    /// The meter's expected configuration.
    pub spec: &'a MeterSpec,
    /// Options.
    pub opts: &'a RunOptions,
    /// Capabilities of the target.
    pub caps: Capabilities,
    /// Every exchange of the run so far, judged.
    pub log: Vec<ExchangeNote>,
    /// Asked from outside to stop.
    pub stop: StopToken,
    /// The end of the maximum run time on the target's clock, and that time.
    pub deadline: Option<(Timestamp, Duration)>,
    /// Where exchanges are reported as they happen.
    pub events: &'a mut dyn Observer,
    /// The case running now.
    pub case: &'static str,
    /// Set when an answer the running case judges was cut by a rig-side limit
    /// (`--answer-limit`, `--timeout-ms`): what the limit was. The session then turns the case's
    /// fail or error into inconclusive, as the meter was still sending within its limits.
    pub cut: Option<String>,
    /// The run's first readout once a case took it (cases running inside another's wait judge
    /// it as the others do).
    pub first_readout: Option<Result<Readout, TargetError>>,
    /// The queue the session lends waits from ([`Ctx::share_wait`]); `None` outside a session
    /// and while a case runs inside another's wait (one level only).
    pub(crate) nest: Option<Box<session::Nest>>,
    /// While a case runs inside another's wait: its events, held for the observers until the
    /// case that lent the wait is done (observers see one case at a time).
    pub(crate) held: Option<session::Held>,
}

/// The longest one slice of a wait, so a stop is seen within it: one second of a real target's
/// clock, a minute of virtual time (a minute of wall time at most, when `rig serve` paces the
/// software meter to real time; more slices would slow the simulated runs for nothing).
fn wait_slice(virtual_time: bool) -> Duration {
    if virtual_time {
        Duration::from_secs(60)
    } else {
        Duration::from_secs(1)
    }
}

/// What the run keeps of each exchange: when, the response time and the judgement.
#[derive(Debug, Clone, PartialEq)]
pub struct ExchangeNote {
    /// The request's end on the target's clock.
    pub request_end: Timestamp,
    /// The end of the last character received (the request's end when none came).
    pub answer_end: Timestamp,
    /// The judgement under the profile's rules.
    pub assessment: Assessment,
    /// Where the response time came from (`serial` when either end did).
    pub response_source: TimeSource,
    /// One-sided uncertainty of the response time, ms.
    pub response_uncertainty_ms: f64,
}

impl ExchangeNote {
    /// The note of `ex` judged under `rules`.
    pub fn of(ex: &Exchange, rules: &AnswerRules) -> Self {
        ExchangeNote {
            request_end: ex.request_end,
            answer_end: ex.chars.last().map_or(ex.request_end, |c| c.end),
            assessment: ex.assess(rules),
            response_source: ex.response_source(),
            response_uncertainty_ms: ex.response_uncertainty_ms(),
        }
    }
}

/// The target's module ports as a case uses them ([`Ctx::ports`]): every input the rig drives
/// and every output edge taken also goes to the run's observers (`Event::Drive`,
/// `Event::Edges`), so the evidence of a case never reaches around the event stream.
pub struct ObservedPorts<'c> {
    target: &'c mut dyn Target,
    events: &'c mut dyn Observer,
    case: &'static str,
}

impl std::fmt::Debug for ObservedPorts<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ObservedPorts")
            .field("case", &self.case)
            .finish()
    }
}

impl ObservedPorts<'_> {
    fn ports(&mut self) -> Result<&mut dyn ModulePorts, TargetError> {
        self.target.module_ports()
    }

    /// [`ModulePorts::set_input`], then an `Event::Drive` at the target's clock.
    ///
    /// # Errors
    /// The ports' and the clock's.
    pub fn set_input(&mut self, port: Port, drive: Drive) -> Result<(), TargetError> {
        self.ports()?.set_input(port, drive)?;
        let at = self.target.now()?;
        let _ = self.events.event(&Event::Drive {
            case: self.case,
            port,
            drive,
            at,
        });
        Ok(())
    }

    /// [`ModulePorts::take_edges`], the edges also reported as an `Event::Edges`.
    ///
    /// # Errors
    /// The ports'.
    pub fn take_edges(&mut self, port: Port) -> Result<Vec<Edge>, TargetError> {
        let edges = self.ports()?.take_edges(port)?;
        let _ = self.events.event(&Event::Edges {
            case: self.case,
            port,
            edges: &edges,
        });
        Ok(edges)
    }

    /// [`ModulePorts::discard_edges`] (nobody judges them: no event).
    ///
    /// # Errors
    /// The ports'.
    pub fn discard_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        self.ports()?.discard_edges(port)
    }

    /// [`ModulePorts::dropped_edges`].
    ///
    /// # Errors
    /// The ports'.
    pub fn dropped_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        self.ports()?.dropped_edges(port)
    }
}

impl std::fmt::Debug for Ctx<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("target", &self.target.describe())
            .finish()
    }
}

pub use crate::iec62056::exchange::INTER_CHAR_LIMIT;

impl<'a> Ctx<'a> {
    /// A context over `target` with an empty exchange log.
    pub fn new(target: &'a mut dyn Target, spec: &'a MeterSpec, opts: &'a RunOptions) -> Self {
        let caps = target.capabilities();
        Ctx {
            target,
            spec,
            opts,
            caps,
            log: Vec::new(),
            stop: StopToken::new(),
            deadline: None,
            // a zero-sized observer: leaking it allocates nothing
            events: Box::leak(Box::new(Discard)),
            case: "",
            cut: None,
            first_readout: None,
            nest: None,
            held: None,
        }
    }

    /// Where the running case's events go: the run's observers, or the hold of a case running
    /// inside another's wait.
    fn sink(&mut self) -> &mut dyn Observer {
        match &mut self.held {
            Some(h) => h,
            None => &mut *self.events,
        }
    }

    /// Lends the running case's passive wait until `t` (target clock) to other queued cases:
    /// the session runs each that fits ([`schedule::pick`]: no inputs driven, no outputs the
    /// running case watches, ending with a margin before `t`) and returns; the caller then waits
    /// the remainder. Does nothing outside a session, inside a case that itself runs in another's
    /// wait, and for a case that drives inputs or judges the whole run.
    ///
    /// # Errors
    /// [`TargetError::Stopped`] when the run was stopped while a case ran in the wait; the
    /// target's clock errors.
    pub fn share_wait(&mut self, t: Timestamp) -> Result<(), TargetError> {
        session::share_wait(self, t)
    }

    /// `Err(TargetError::Stopped)` when the run was asked to stop or its maximum run time has
    /// passed on the target's clock (which then becomes the stop's reason).
    pub fn check_stop(&mut self) -> Result<(), TargetError> {
        if let Some((end, max)) = self.deadline {
            if self.stop.reason().is_none() && self.target.now()? >= end {
                self.stop.stop(StopReason::MaxRunTime {
                    seconds: max.as_secs_f64(),
                });
            }
        }
        match self.stop.reason() {
            Some(r) => Err(TargetError::Stopped {
                reason: r.to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Waits until `t` on the target's clock in slices, checking for a stop between them.
    pub fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        let slice = wait_slice(self.caps.virtual_time);
        loop {
            self.check_stop()?;
            let now = self.target.now()?;
            if now >= t {
                return Ok(());
            }
            let mut next = (now + slice).min(t);
            if let Some((end, _)) = self.deadline {
                next = next.min(end.max(now));
            }
            self.target.wait_until(next)?;
            if next >= t {
                return self.check_stop();
            }
        }
    }

    /// One character time on this meter's line, ns.
    pub fn char_ns(&self) -> u64 {
        crate::uart::frame_ns(self.spec.baud, 1)
    }

    /// The rules this meter's answers are judged by (its profile's).
    pub fn answer_rules(&self) -> AnswerRules {
        AnswerRules::from_profile(self.spec.profile)
    }

    /// How long the rig listens for an answer: every conforming answer finishes, and
    /// `--answer-limit` sets the total.
    pub fn listening(&self) -> Listening {
        let l = Listening::conforming(
            &self.answer_rules(),
            self.char_ns(),
            self.caps.data_uncertainty_ns,
        );
        match self.opts.answer_limit {
            Some(t) => l.with_total(t),
            None => l,
        }
    }

    /// Sends a request and receives the answer ([`exchange`]); the exchange is kept in the run's
    /// log, so cases can judge every exchange of the run.
    pub fn readout_with(&mut self, request: &Request) -> Result<Readout, TargetError> {
        self.readout_in(request, self.spec.read_mode())
    }

    /// [`Ctx::readout_with`] in protocol mode `mode` ([`exchange_in`], from the meter file's
    /// line rate).
    pub fn readout_in(
        &mut self,
        request: &Request,
        mode: ReadMode,
    ) -> Result<Readout, TargetError> {
        let (rules, listen) = (self.answer_rules(), self.listening());
        let ex = exchange_in(self.target, request, &rules, &listen, mode, self.spec.baud)?;
        let note = ExchangeNote::of(&ex, &rules);
        let sent = crate::iec62056::parity::encode(&request.encode());
        let case = self.case;
        let _ = self.sink().event(&Event::Exchange {
            case,
            exchange: &ex,
            sent: &sent,
            note: &note,
        });
        self.log.push(note);
        self.note_cut(&ex);
        Ok(ex)
    }

    /// Records that the running case judges `ex`: if a rig-side limit cut it, the case cannot
    /// blame the meter for what it did not see ([`Ctx::cut`]).
    pub fn note_cut(&mut self, ex: &Readout) {
        if let AnswerEnd::RigLimit { limit } = &ex.end {
            self.cut = Some(limit.to_string());
        }
    }

    /// The target's module ports. A case that uses them declares `Need::ModulePorts` and is
    /// skipped on a target without them.
    ///
    /// # Errors
    /// [`TargetError::NoModulePorts`] when the target has none (a case that forgot its need).
    pub fn ports(&mut self) -> Result<ObservedPorts<'_>, TargetError> {
        self.target.module_ports()?;
        let events: &mut dyn Observer = match &mut self.held {
            Some(h) => h,
            None => &mut *self.events,
        };
        Ok(ObservedPorts {
            target: &mut *self.target,
            events,
            case: self.case,
        })
    }

    /// Edges captured on a meter output since the last take ([`ModulePorts::take_edges`]),
    /// also reported to the run's observers as they are taken.
    ///
    /// # Errors
    /// The ports' errors; [`TargetError::NoModulePorts`] on a target without them.
    pub fn take_edges(&mut self, port: Port) -> Result<Vec<Edge>, TargetError> {
        self.ports()?.take_edges(port)
    }

    /// A general readout.
    pub fn readout(&mut self) -> Result<Readout, TargetError> {
        self.readout_with(&Request::general())
    }

    /// Waits `d` on the target's clock.
    pub fn wait(&mut self, d: Duration) -> Result<(), TargetError> {
        let now = self.target.now()?;
        self.wait_until(now + d)
    }
}

/// Every case id, in run order.
pub fn case_ids() -> Vec<&'static str> {
    CASES.iter().map(|c| c.id).collect()
}

/// Names of all suites, in run order.
pub fn suite_names() -> Vec<&'static str> {
    let mut v: Vec<&'static str> = Vec::new();
    for c in CASES {
        if !v.contains(&c.suite) {
            v.push(c.suite);
        }
    }
    v
}

/// The cases `opts` selects, in run order: every case when neither suites nor cases are named,
/// otherwise the union of the named suites' cases and the named cases (`--suite pulse_out --case
/// readout.bcc` runs the pulse_out suite and readout.bcc).
///
/// The `module` suite ([`registry::MODULE_CASES`]) is selected only by name (the suite
/// `module` or a case id, as `rig module` does): it judges a module, not the meter `rig run`
/// tests.
pub fn selected(opts: &RunOptions) -> Vec<&'static CaseDef> {
    let all = opts.suites.is_empty() && opts.cases.is_empty();
    let named = |c: &&CaseDef| {
        opts.suites.iter().any(|s| s == c.suite) || opts.cases.iter().any(|i| i == c.id)
    };
    CASES
        .iter()
        .filter(|c| all || named(c))
        .chain(registry::MODULE_CASES.iter().filter(named))
        .collect()
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
                    m.value_text(),
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

/// Runs the selected suites against `target` to the end (no stop, no time limit), emitting every
/// event to `observer`, and returns the recorded cases: [`session::run`] with default limits.
pub fn run(
    target: &mut dyn Target,
    spec: &MeterSpec,
    opts: &RunOptions,
    observer: &mut dyn Observer,
) -> Vec<CaseResult> {
    session::run(target, spec, opts, &Limits::default(), vec![observer]).cases
}
