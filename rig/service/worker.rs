//! The hardware side of `rig serve`: one thread owns the target and alternates between the module
//! loop and conformance runs.
//!
//! The module loop reads the meter every interval, counts its output pulses and drives its tariff
//! inputs from a schedule, all on the target's clock. A run request pauses the loop, runs the
//! suites with the target to itself (writing the same records as `rig run`), then the loop
//! resumes and re-applies the schedule. Pulses the meter emits during a run are still counted:
//! the run sees the target through [`Tap`] (a ports-only layer), which counts the edges the suites
//! take.
//!
//! The HTTP side never touches the target: it reads [`Shared::status`] and sends [`Command`]s.
//! Stopping ([`Shared::request_stop`]) is honoured between rows and between cases: the readout in
//! hand or the case in hand finishes and is recorded, then the thread releases the target (safe
//! pin state) and returns. A run itself goes through the one run session
//! ([`crate::suite::session`]), like `rig run`'s: `DELETE /runs/{id}` ([`Shared::stop_run`]) and
//! the request's maximum run time stop it through its stop token.
//!
//! Wall-clock use here is limited to records (`time_utc`) and to throttling state writes; every
//! time that is judged or reported as a measurement comes from the target.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::evidence::capture::Captures;
use crate::iec62056::exchange::{AnswerRules, Conformance, Exchange, Listening};
use crate::iec62056::Request;
use crate::meter::config::MeterSpec;
use crate::report::{utc_now, Reporter, Summary};
use crate::suite::session::{self, Event, Limits, Observer, ObserverError, StopReason, StopToken};
use crate::suite::{self, RunOptions};
use crate::target::{Drive, Layer, Layered, ModulePorts, Port, Target, TargetError};
use crate::time::{TimeSource, Timestamp};
use crate::uart::Edge;

use super::pulses::PulseCounter;
use super::schedule::Schedule;
use super::store::{LoopState, Reading, Store};

/// How the module loop is configured.
#[derive(Debug, Clone)]
pub struct LoopConfig {
    /// The meter (software meter's build, or a real meter's expected configuration).
    pub spec: MeterSpec,
    /// Whether the meter file was given (the type number is then checked in runs).
    pub meter_given: bool,
    /// Time between readouts, on the target's clock.
    pub interval: Duration,
    /// Longest wait between two looks at commands and pulse edges, on the target's clock.
    pub poll: Duration,
    /// The tariff schedule, if any.
    pub schedule: Option<Schedule>,
    /// UTC seconds at target time zero: the meter's clock (for the schedule's times of day).
    pub epoch_s: i64,
}

/// What the loop is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum LoopPhase {
    /// Opening the target.
    Starting,
    /// Reading, counting, switching tariffs.
    Running,
    /// Paused while a run owns the target.
    PausedForRun,
    /// Finishing the row or case in hand before exiting.
    Stopping,
    /// Stopped; the target is released.
    Stopped,
}

/// The last run's outcome, for `/status`.
#[derive(Debug, Clone, Serialize)]
pub struct RunBrief {
    /// Run id.
    pub id: String,
    /// `done`, `stopped` (SIGTERM, `DELETE /runs/{id}`, the maximum run time, a vanished
    /// device) or `aborted` (records not writable).
    pub state: String,
    /// How the run ended (absent when it could not start).
    pub outcome: Option<session::Outcome>,
    /// Verdict counts.
    pub summary: Summary,
}

/// What `/status` and `/metrics` show; updated by the hardware thread.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// Target description.
    pub target: String,
    /// Meter profile and type number.
    pub meter: String,
    /// What the loop is doing.
    pub loop_state: LoopPhase,
    /// Readout interval, seconds of target time.
    pub interval_s: f64,
    /// The target's clock, seconds.
    pub target_time_s: f64,
    /// Whether time is virtual (the software meter).
    pub virtual_time: bool,
    /// Counters kept across restarts (pulses per port, readouts, failures, runs).
    pub counters: LoopState,
    /// The last readout.
    pub last_readout: Option<Reading>,
    /// The tariff the schedule selects now.
    pub tariff: Option<u8>,
    /// Id of the run in progress.
    pub current_run: Option<String>,
    /// Cases finished in the run in progress.
    pub current_run_cases: usize,
    /// The last finished run.
    pub last_run: Option<RunBrief>,
    /// The last device or storage error the loop met (it keeps going).
    pub last_error: Option<String>,
    /// When the service started (UTC).
    pub started_utc: String,
}

/// State shared between the hardware thread and the HTTP side.
#[derive(Debug)]
pub struct Shared {
    /// What `/status` shows.
    pub status: Mutex<Status>,
    /// Set to stop: the row or case in hand finishes, then the thread releases the target.
    pub stop: AtomicBool,
    /// The stop token of the run claimed or in progress, with its id.
    run_stop: Mutex<Option<(String, StopToken)>>,
}

/// Why `DELETE /runs/{id}` could not stop a run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StopRunError {
    /// No such run is in progress (it finished, or never existed).
    #[error("run {0} is not in progress")]
    NotActive(String),
}

impl Shared {
    /// Shared state for a service about to open `target`.
    pub fn new(target: String, meter: String, interval: Duration, virtual_time: bool) -> Self {
        Shared {
            status: Mutex::new(Status {
                target,
                meter,
                loop_state: LoopPhase::Starting,
                interval_s: interval.as_secs_f64(),
                target_time_s: 0.0,
                virtual_time,
                counters: LoopState::default(),
                last_readout: None,
                tariff: None,
                current_run: None,
                current_run_cases: 0,
                last_run: None,
                last_error: None,
                started_utc: utc_now(),
            }),
            stop: AtomicBool::new(false),
            run_stop: Mutex::new(None),
        }
    }

    /// A copy of the status.
    pub fn snapshot(&self) -> Status {
        self.lock().clone()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Status> {
        self.status.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Marks run `id` as accepted if no run is active; returns the active run's id otherwise.
    /// The HTTP side calls this before sending [`Command::Run`], so a second request conflicts
    /// even before the hardware thread picks the first one up.
    pub fn claim_run(&self, id: &str) -> Result<(), String> {
        let mut s = self.lock();
        if let Some(cur) = &s.current_run {
            return Err(cur.clone());
        }
        s.current_run = Some(id.to_string());
        s.current_run_cases = 0;
        *self.run_stop.lock().unwrap_or_else(|p| p.into_inner()) =
            Some((id.to_string(), StopToken::new()));
        Ok(())
    }

    /// The stop token of run `id` (a fresh one when it was not claimed through
    /// [`Shared::claim_run`]).
    fn run_token(&self, id: &str) -> StopToken {
        let mut slot = self.run_stop.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some((cur, t)) if cur == id => t.clone(),
            _ => {
                let t = StopToken::new();
                *slot = Some((id.to_string(), t.clone()));
                t
            }
        }
    }

    /// `DELETE /runs/{id}`: asks run `id` to stop (the case in hand is cut at its next wait,
    /// the records say `stopped`).
    pub fn stop_run(&self, id: &str) -> Result<(), StopRunError> {
        self.stop_run_for(id, StopReason::Deleted)
    }

    /// Asks run `id` to stop for `reason` (the first reason given is kept): `DELETE /runs/{id}`
    /// and the service's wall-clock maximum run time. Errors when `id` is not in progress.
    pub fn stop_run_for(&self, id: &str, reason: StopReason) -> Result<(), StopRunError> {
        let active = self.lock().current_run.as_deref() == Some(id);
        let slot = self.run_stop.lock().unwrap_or_else(|p| p.into_inner());
        match &*slot {
            Some((cur, t)) if active && cur == id => {
                t.stop(reason);
                Ok(())
            }
            _ => Err(StopRunError::NotActive(id.to_string())),
        }
    }

    /// Stops the service: the loop ends after the row in hand; a run in progress finishes the
    /// case in hand (README: the unit allows a stop as long as the longest case) and stops there.
    pub fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        // `/status` says so at once, while the row or case in hand finishes
        let mut s = self.lock();
        if s.loop_state != LoopPhase::Stopped {
            s.loop_state = LoopPhase::Stopping;
        }
    }

    /// The id of the run claimed or in progress, if any (without copying the whole status).
    pub fn current_run(&self) -> Option<String> {
        self.lock().current_run.clone()
    }

    /// Undoes [`Shared::claim_run`] when the command could not be delivered.
    pub fn release_claim(&self, id: &str) {
        let mut s = self.lock();
        if s.current_run.as_deref() == Some(id) {
            s.current_run = None;
        }
    }
}

/// A conformance run to execute.
#[derive(Debug, Clone)]
pub struct RunRequest {
    /// Run id (directory name under `runs/`), claimed with [`Shared::claim_run`].
    pub id: String,
    /// Suites (empty: all).
    pub suites: Vec<String>,
    /// Cases (empty: every case of the suites).
    pub cases: Vec<String>,
    /// Keep the software meter paced at the service's speed during the run (instead of virtual
    /// time), to watch a run or to interrupt it. No effect on real targets.
    pub paced: bool,
    /// Stop the run when this much time has passed on the target's clock.
    pub max_run_time: Option<Duration>,
}

/// Commands from the HTTP side.
#[derive(Debug)]
pub enum Command {
    /// Run suites now.
    Run(RunRequest),
}

/// A run's state from its record on disk: `running` (the active run), `done` (finished),
/// `stopped` (ended early on purpose or by a vanished device; the record's `outcome` says which)
/// or `interrupted` (the service died mid-run; the cases recorded are intact).
pub fn run_state(record: &serde_json::Value, active: bool) -> &'static str {
    if active {
        "running"
    } else if record["complete"] == serde_json::Value::Bool(true) {
        "done"
    } else if record["aborted"].is_string() {
        "stopped"
    } else {
        "interrupted"
    }
}

/// The module ports seen through a pulse counter: every edge taken from an output port is also
/// counted. It wraps only the ports ([`Layered`] passes the rest through).
#[derive(Debug)]
pub struct Tap<'a> {
    counters: &'a RefCell<BTreeMap<Port, PulseCounter>>,
}

impl Layer for Tap<'_> {
    fn take_edges(
        &mut self,
        inner: &mut dyn ModulePorts,
        port: Port,
    ) -> Result<Vec<Edge>, TargetError> {
        let edges = inner.take_edges(port)?;
        if let Some(c) = self.counters.borrow_mut().get_mut(&port) {
            c.push(&edges);
        }
        Ok(edges)
    }

    /// Counted like taken edges: the service's pulse totals include the hours a case drains.
    fn discard_edges(
        &mut self,
        inner: &mut dyn ModulePorts,
        port: Port,
    ) -> Result<u64, TargetError> {
        self.take_edges(inner, port).map(|e| e.len() as u64)
    }
}

fn sync_counters(
    counters: &RefCell<BTreeMap<Port, PulseCounter>>,
    state: &mut LoopState,
    shared: &Shared,
) {
    for (p, c) in counters.borrow().iter() {
        state.pulses.insert(port_key(*p), c.total);
    }
    shared.lock().counters = state.clone();
}

/// Keeps the service's state with each case of a run: the case count, the pulse totals counted
/// so far (saved, so a kill mid-run loses neither), and a shutdown asked between cases.
struct RunObserver<'a> {
    shared: &'a Shared,
    store: &'a Store,
    state: &'a mut LoopState,
    counters: &'a RefCell<BTreeMap<Port, PulseCounter>>,
    stop: StopToken,
}

impl Observer for RunObserver<'_> {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        if let Event::CaseDone { .. } = e {
            self.shared.lock().current_run_cases += 1;
            sync_counters(self.counters, self.state, self.shared);
            if self.shared.stop.load(Ordering::Relaxed) {
                self.stop.stop(StopReason::Shutdown);
            }
            self.store
                .save_state(self.state)
                .map_err(|e| ObserverError {
                    observer: "service state",
                    source: Box::new(e),
                })?;
        }
        Ok(())
    }
}

fn port_key(p: Port) -> String {
    format!("port{}", p.number())
}

/// The hardware thread's state.
#[derive(Debug)]
pub struct Worker<'a> {
    target: &'a mut dyn Target,
    cfg: LoopConfig,
    store: Store,
    shared: &'a Shared,
    pacing: Option<Arc<AtomicBool>>,
    state: LoopState,
    counters: RefCell<BTreeMap<Port, PulseCounter>>,
    applied: Option<u8>,
    next_readout: Timestamp,
    state_dirty: bool,
    last_save: Instant,
}

impl<'a> Worker<'a> {
    /// A worker over an opened target. `pacing` is the software meter's pacing switch (see
    /// [`super::paced::Paced`]), `None` for real targets.
    pub fn new(
        target: &'a mut dyn Target,
        cfg: LoopConfig,
        store: Store,
        shared: &'a Shared,
        pacing: Option<Arc<AtomicBool>>,
    ) -> Result<Self, super::store::StoreError> {
        let state = store.load_state()?;
        let counters = Port::ALL
            .into_iter()
            .filter(|p| cfg.spec.io.role(*p).is_output())
            .map(|p| {
                let total = state.pulses.get(&port_key(p)).copied().unwrap_or(0);
                (p, PulseCounter::continuing(total))
            })
            .collect();
        shared.lock().counters = state.clone();
        Ok(Worker {
            target,
            cfg,
            store,
            shared,
            pacing,
            state,
            counters: RefCell::new(counters),
            applied: None,
            next_readout: Timestamp::ZERO,
            state_dirty: false,
            last_save: Instant::now(),
        })
    }

    fn note_error(&self, e: impl std::fmt::Display) {
        self.shared.lock().last_error = Some(format!("{} {e}", utc_now()));
    }

    /// Runs the module loop until [`Shared::stop`] is set, executing runs as they are requested.
    /// Releases the target (safe state) and saves the counters before returning.
    pub fn run(mut self, commands: &Receiver<Command>) {
        match self.target.now() {
            Ok(t) => self.next_readout = t,
            Err(e) => self.note_error(e),
        }
        {
            let mut s = self.shared.lock();
            if s.loop_state == LoopPhase::Starting {
                s.loop_state = LoopPhase::Running;
            }
        }
        while !self.shared.stop.load(Ordering::Relaxed) {
            match commands.try_recv() {
                Ok(Command::Run(req)) => {
                    self.conformance_run(req);
                    continue;
                }
                Err(TryRecvError::Empty) | Err(TryRecvError::Disconnected) => {}
            }
            if let Err(e) = self.step() {
                self.note_error(&e);
                // a failing device must not spin the loop
                std::thread::sleep(Duration::from_millis(200));
            }
        }
        self.shared.lock().loop_state = LoopPhase::Stopping;
        self.drain_pulses();
        self.save_state();
        if let Err(e) = self.target.release() {
            self.note_error(format!("releasing the target: {e}"));
        }
        self.shared.lock().loop_state = LoopPhase::Stopped;
    }

    fn now(&mut self) -> Result<Timestamp, TargetError> {
        let t = self.target.now()?;
        self.shared.lock().target_time_s = t.as_secs_f64();
        Ok(t)
    }

    /// One pass of the module loop: readout if due, tariff inputs, pulse edges, then a wait.
    fn step(&mut self) -> Result<(), TargetError> {
        let now = self.now()?;
        // switch first: a readout due at a switch time reads the registers after the switch
        let next_switch = self.apply_schedule(now)?;
        if now >= self.next_readout {
            self.readout();
            let iv = self.cfg.interval;
            self.next_readout = self.next_readout + iv;
            let now = self.now()?;
            if self.next_readout <= now {
                // a readout longer than the interval (300 baud, short interval): no backlog
                self.next_readout = now + iv;
            }
        }
        self.drain_pulses();
        if self.state_dirty && self.last_save.elapsed() >= Duration::from_secs(1) {
            self.save_state();
        }
        let mut wake = (now + self.cfg.poll).min(self.next_readout);
        if let Some(s) = next_switch {
            wake = wake.min(s);
        }
        self.target.wait_until(wake)
    }

    /// Drives the tariff inputs for the switch in force; returns when the next switch is due.
    fn apply_schedule(&mut self, now: Timestamp) -> Result<Option<Timestamp>, TargetError> {
        let Some(s) = &self.cfg.schedule else {
            return Ok(None);
        };
        let meter_s = self.cfg.epoch_s + (now.0 / 1_000_000_000) as i64;
        let tod = meter_s.rem_euclid(86_400) as u32;
        let sw = *s.active(tod);
        let levels = s.levels(&sw);
        let until = s.until_next(tod);
        if self.applied != Some(sw.tariff) {
            for (port, level) in levels {
                self.target
                    .module_ports()?
                    .set_input(port, Drive::from_active(level))?;
            }
            self.applied = Some(sw.tariff);
            self.shared.lock().tariff = Some(sw.tariff);
        }
        // the switch is due at the start of that second of the meter's clock
        let into_second = now.0 % 1_000_000_000;
        Ok(Some(Timestamp(
            now.0 - into_second + until as u64 * 1_000_000_000,
        )))
    }

    fn drain_pulses(&mut self) {
        let ports: Vec<Port> = self.counters.borrow().keys().copied().collect();
        for p in ports {
            let Some(ports) = self.target.try_as_module_ports() else {
                // a serial-only target cannot see the pulse ports: no counter (totals an
                // earlier pin target saved stay in state.json untouched)
                if let Some(c) = self.counters.borrow_mut().remove(&p) {
                    if c.total == 0 {
                        self.state.pulses.remove(&port_key(p));
                    }
                }
                continue;
            };
            match ports.take_edges(p) {
                Ok(edges) => {
                    let mut counters = self.counters.borrow_mut();
                    let c = counters.get_mut(&p).expect("port has a counter");
                    if c.push(&edges) > 0 {
                        self.state_dirty = true;
                    }
                }
                Err(e) => self.note_error(format!("pulse edges on {p}: {e}")),
            }
        }
        self.sync_counters();
    }

    fn sync_counters(&mut self) {
        sync_counters(&self.counters, &mut self.state, self.shared);
    }

    fn save_state(&mut self) {
        self.sync_counters();
        match self.store.save_state(&self.state) {
            Ok(()) => {
                self.state_dirty = false;
                self.last_save = Instant::now();
            }
            Err(e) => self.note_error(e),
        }
    }

    /// One readout of the module loop, recorded as a row whatever happens. The answer is judged
    /// by the same exchange rules as `rig run` and `rig read` ([`Exchange::assess`]).
    fn readout(&mut self) {
        let caps = self.target.capabilities();
        let spec = &self.cfg.spec;
        let rules = AnswerRules::from_profile(spec.profile);
        let listen = Listening::conforming(
            &rules,
            crate::uart::frame_ns(spec.baud, 1),
            caps.data_uncertainty_ns,
        );
        let result = suite::exchange_in(
            &mut *self.target,
            &Request::general(),
            &rules,
            &listen,
            spec.read_mode(),
            spec.baud,
        );
        let timing = timing_text(
            caps.data_timing,
            caps.virtual_time,
            caps.data_uncertainty_ns as f64 / 1e6,
        );
        let reading = match result {
            // the response time's own source: a request end that fell back to serial says so
            Ok(ex) => {
                let timing = timing_text(
                    ex.response_source(),
                    caps.virtual_time,
                    ex.response_uncertainty_ms(),
                );
                reading_of(&ex, &rules, timing)
            }
            Err(e) => Reading {
                time_utc: utc_now(),
                meter_time: String::new(),
                target_time_s: self
                    .target
                    .now()
                    .map(|t| t.as_secs_f64())
                    .unwrap_or(f64::NAN),
                response_ms: None,
                timing,
                valid: false,
                problem: e.to_string(),
                registers: BTreeMap::new(),
            },
        };
        let mut reading = reading;
        if reading.target_time_s.is_finite() {
            reading.meter_time = meter_time(self.cfg.epoch_s, reading.target_time_s);
        }
        self.state.readouts += 1;
        if !reading.valid {
            self.state.readout_failures += 1;
        }
        if let Err(e) = self.store.append_reading(&reading) {
            self.note_error(e);
        }
        self.shared.lock().last_readout = Some(reading);
        self.save_state();
    }

    /// A conformance run with the target to itself; the loop resumes afterwards.
    fn conformance_run(&mut self, req: RunRequest) {
        {
            let mut s = self.shared.lock();
            s.loop_state = LoopPhase::PausedForRun;
            s.current_run = Some(req.id.clone());
        }
        let paced_before = self
            .pacing
            .as_ref()
            .map(|p| p.swap(req.paced, Ordering::Relaxed));
        self.state.runs += 1;
        self.save_state();
        let brief = self.execute(&req);
        if let (Some(p), Some(before)) = (&self.pacing, paced_before) {
            p.store(before, Ordering::Relaxed);
        }
        // the suites left the inputs inactive; the schedule takes them back
        self.applied = None;
        self.drain_pulses();
        self.save_state();
        let mut s = self.shared.lock();
        s.last_run = Some(brief);
        s.current_run = None;
        s.loop_state = if self.shared.stop.load(Ordering::SeqCst) {
            LoopPhase::Stopping
        } else {
            LoopPhase::Running
        };
    }

    fn execute(&mut self, req: &RunRequest) -> RunBrief {
        let dir = self.store.run_dir(&req.id);
        let caps = self.target.capabilities();
        let mut opts = RunOptions::for_target(&caps);
        opts.suites = req.suites.clone();
        opts.cases = req.cases.clone();
        opts.check_type_number = caps.virtual_time || self.cfg.meter_given;
        let inbox = crate::evidence::Inbox::new();
        let spec = &self.cfg.spec;
        let started = Reporter::start(&dir, &mut *self.target, spec, &opts).and_then(|r| {
            let window = (spec.profile.response_min_ms, spec.profile.response_max_ms);
            let mode = crate::evidence::capture::CaptureMode::Failed;
            let c = Captures::new(&dir, spec.baud, window, mode, inbox.clone()).map_err(|e| {
                crate::report::RecordError::Io {
                    path: dir.join("captures").display().to_string(),
                    call: "remove old captures",
                    os: e,
                }
            })?;
            Ok((r.with_attachments(inbox), c))
        });
        let (mut reporter, mut captures) = match started {
            Ok(r) => r,
            Err(e) => {
                self.note_error(format!("run {}: {e}", req.id));
                return RunBrief {
                    id: req.id.clone(),
                    state: "aborted".into(),
                    outcome: None,
                    summary: Summary::default(),
                };
            }
        };
        let limits = Limits {
            stop: self.shared.run_token(&req.id),
            max_run_time: req.max_run_time,
        };
        if self.shared.stop.load(Ordering::Relaxed) {
            limits.stop.stop(StopReason::Shutdown);
        }
        let mut obs = RunObserver {
            shared: self.shared,
            store: &self.store,
            state: &mut self.state,
            counters: &self.counters,
            stop: limits.stop.clone(),
        };
        let mut html = crate::evidence::html::HtmlReport::new(&dir);
        let mut tap = Layered::new(
            &mut *self.target,
            Tap {
                counters: &self.counters,
            },
        );
        let end = session::run(
            &mut tap,
            &self.cfg.spec,
            &opts,
            &limits,
            // captures file their attachments before the records; the page reads the records
            vec![&mut captures, &mut reporter, &mut html, &mut obs],
        );
        drop(obs);
        for e in &end.observer_errors {
            self.note_error(format!("run {}: {e}", req.id));
        }
        let state = if end.outcome.ended_early().is_some() {
            "stopped"
        } else {
            "done"
        };
        RunBrief {
            id: req.id.clone(),
            state: state.into(),
            outcome: Some(end.outcome),
            summary: reporter.record().summary.clone(),
        }
    }
}

/// `edge (virtual) ±0 ms`: where a reading's time came from and its one-sided uncertainty.
fn timing_text(source: TimeSource, virtual_time: bool, uncertainty_ms: f64) -> String {
    let v = if virtual_time { " (virtual)" } else { "" };
    format!("{source}{v} ±{uncertainty_ms} ms")
}

/// The meter's clock as RFC 3339 UTC: `epoch_s` (UTC seconds at the target's time zero) plus
/// `target_s`, to the millisecond.
fn meter_time(epoch_s: i64, target_s: f64) -> String {
    let ms = (epoch_s as f64 * 1000.0 + target_s * 1000.0).round() as i64;
    let secs = ms.div_euclid(1000);
    let (y, m, d) = crate::meter::calendar::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        ms.rem_euclid(1000)
    )
}

/// The row of one module-loop readout: conforming only when the exchange keeps every rule.
fn reading_of(ex: &Exchange, rules: &AnswerRules, timing: String) -> Reading {
    let registers = ex
        .tolerant
        .data_sets
        .iter()
        .map(|d| {
            let v: Vec<String> = d
                .values
                .iter()
                .map(|v| match &v.unit {
                    Some(u) => format!("{}*{u}", v.raw),
                    None => v.raw.clone(),
                })
                .collect();
            (d.address.clone(), v.join(")("))
        })
        .collect();
    let a = ex.assess(rules);
    Reading {
        time_utc: utc_now(),
        meter_time: String::new(),
        target_time_s: ex.request_end.as_secs_f64(),
        response_ms: a.response_ms,
        timing,
        valid: a.conformance == Conformance::Conforms,
        problem: a.reason().to_string(),
        registers,
    }
}
