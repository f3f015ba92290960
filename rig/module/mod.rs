//! Module-vendor mode: the rig plays the meter and judges the module under test.
//!
//! The interface specification (004_d1f80f13afa7763c.txt) is first a list of requirements for
//! modules: IEC 61107 mode A, the request `/?!` CR LF at 300 baud 7E1, and a meter that answers
//! 20–500 ms after the request. This module holds the pure side of judging a module: the
//! conversation on the data line as timed characters in both directions ([`WireLog`]), the meter
//! behaviour each case serves ([`Scenario`]), and the judgements (`judge_*`, timestamps in,
//! verdicts out). What carries the conversation is a [`ModuleBench`]: the reference software
//! module in virtual time ([its module](self::reference)) or a pty that a real module opens
//! ([`pty`]).

pub mod data;
pub mod drive;
pub mod ina228;
pub mod inputs;
pub mod monitor;
pub mod pins;
pub mod pty;
pub mod reference;
pub mod report;
pub mod supply;

use crate::iec62056::{parity, Request};
use crate::meter::config::{BccFault, MeterSpec};
use crate::target::{Clock, DataLink, RecvEnd, SentAt, Target, TargetError, Timing};
use crate::time::{TimeSource, Timestamp};
use crate::uart::RxChar;

/// Which way a character went.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Dir {
    /// From the module to the meter (module pin 5, the meter's data in).
    ToMeter,
    /// From the meter to the module (module pin 2, the meter's data out).
    FromMeter,
}

/// One character on the data line, with its times on the bench's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LineChar {
    /// Direction.
    pub dir: Dir,
    /// All eight bits as on the wire (soft 7E1: bit 7 is the parity bit).
    pub byte: u8,
    /// Start bit's falling edge.
    pub start: Timestamp,
    /// End of the stop bit.
    pub end: Timestamp,
    /// Whether the stop bit was high.
    pub stop_ok: bool,
}

/// The conversation of one scenario, in time order, and what the bench can observe of it.
#[derive(Debug, Clone, Default)]
pub struct WireLog {
    /// Every character, ordered by start.
    pub chars: Vec<LineChar>,
    /// Whether bit 7 carries the module's parity bit (false over a 7-bit pty: the rig cannot see
    /// the parity the module sends).
    pub parity_observable: bool,
    /// When the scenario's window ended.
    pub end: Timestamp,
}

/// One request of the module: a run of characters to the meter ending with LF (or the last
/// characters before the next meter character or the window's end).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleRequest {
    /// Its characters.
    pub chars: Vec<LineChar>,
}

impl ModuleRequest {
    /// The first start bit.
    pub fn start(&self) -> Timestamp {
        self.chars[0].start
    }
    /// The last stop bit's end.
    pub fn end(&self) -> Timestamp {
        self.chars[self.chars.len() - 1].end
    }
    /// The 7-bit characters.
    pub fn text(&self) -> Vec<u8> {
        self.chars.iter().map(|c| c.byte & 0x7F).collect()
    }
}

impl WireLog {
    /// The module's requests, in order: its characters to the meter, split after every LF and
    /// wherever it paused longer than the inter-character limit (the meter's characters in
    /// between do not split them: a module may talk over an answer).
    pub fn requests(&self) -> Vec<ModuleRequest> {
        let gap_ns = (INTER_CHAR_MS * 1e6) as u64;
        let mut out = Vec::new();
        let mut cur: Vec<LineChar> = Vec::new();
        for c in self.chars.iter().filter(|c| c.dir == Dir::ToMeter) {
            if cur
                .last()
                .is_some_and(|l| c.start.0.saturating_sub(l.end.0) > gap_ns)
            {
                out.push(ModuleRequest {
                    chars: std::mem::take(&mut cur),
                });
            }
            cur.push(*c);
            if c.byte & 0x7F == b'\n' {
                out.push(ModuleRequest {
                    chars: std::mem::take(&mut cur),
                });
            }
        }
        if !cur.is_empty() {
            out.push(ModuleRequest { chars: cur });
        }
        out
    }

    /// The meter's characters after `t` and before `until`, in order.
    pub fn meter_between(&self, t: Timestamp, until: Timestamp) -> Vec<LineChar> {
        self.chars
            .iter()
            .filter(|c| c.dir == Dir::FromMeter && c.start >= t && c.start < until)
            .copied()
            .collect()
    }
}

/// The meter the rig serves for one case: the meter file's meter with the case's behaviour.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Scenario {
    /// The meter file's meter as it is (healthy by default): for `module.request`.
    AsConfigured,
    /// The slowest conforming meter: the answer starts at 499.9 ms and every line is followed by
    /// a 1500 ms pause (004 Note 1; the 1500 ms inter-character limit): for `module.patience`.
    Slowest,
    /// No answer at all: for `module.repetition`.
    Silent,
    /// A noise burst right before the answer: for `module.repetition`.
    Noise,
    /// A whole answer with a bad BCC: for `module.repetition`.
    BadBcc,
}

/// The slowest reaction 004 allows, as served: just inside Note 1's 500 ms.
pub const SLOWEST_REACTION_MS: f64 = 499.9;
/// The longest pause the rig serves after each line of the answer, ms: the inter-character limit
/// of IEC 62056-21 that the rig applies to meters (1500 ms).
pub const LONGEST_PAUSE_MS: f64 = 1500.0;
/// 004 Note 1's upper bound of the meter's reaction, ms.
pub const REACTION_MAX_MS: f64 = 500.0;
/// The inter-character limit, ms (IEC 62056-21, as `rig run` applies it to meters).
pub const INTER_CHAR_MS: f64 = 1500.0;

impl Scenario {
    /// The meter the rig serves: `base` with this scenario's behaviour.
    pub fn meter(self, base: &MeterSpec) -> MeterSpec {
        let mut s = base.clone();
        let f = &mut s.faults;
        match self {
            Scenario::AsConfigured => {}
            Scenario::Slowest => {
                f.response_delay_ms = Some(SLOWEST_REACTION_MS);
                f.line_pause_ms = Some(LONGEST_PAUSE_MS);
            }
            Scenario::Silent => f.silent = true,
            Scenario::Noise => f.noise_before_answer = vec![0x55, 0x00, 0x7F, 0x2A, 0x55, 0x00],
            Scenario::BadBcc => f.bcc = Some(BccFault::Corrupt),
        }
        s
    }
    /// How long the rig watches the module in this scenario, seconds.
    pub fn window_s(self) -> f64 {
        match self {
            Scenario::AsConfigured => 20.0,
            // 18 lines × 1.5 s plus the answer itself at 300 baud (about 40 s), and a module that
            // asks a few seconds into the window
            Scenario::Slowest => 60.0,
            Scenario::Silent => 20.0,
            // three whole answers (about 12 s each at 300 baud) and the waits between them
            Scenario::Noise | Scenario::BadBcc => 45.0,
        }
    }
}

/// What carries a module's conversation with the meter the rig serves.
pub trait ModuleBench {
    /// Serves `meter` to the module for `window_s` seconds (on the bench's clock) and returns the
    /// conversation.
    ///
    /// # Errors
    /// The bench's I/O (a vanished pty), a stop asked from outside.
    fn observe(&mut self, meter: &MeterSpec, window_s: f64) -> Result<WireLog, TargetError>;
    /// Watches the module's supply (pin 6) for `window_s` seconds: charge and alert edges from
    /// the current monitor ([`ina228`]). `None`: this bench has no current monitor.
    ///
    /// # Errors
    /// The monitor's I/O.
    fn supply(&mut self, _window_s: u64) -> Result<Option<supply::SupplyLog>, TargetError> {
        Ok(None)
    }
    /// Whether the bench can say what the module forwarded (`module.data`): the reference
    /// module can, an external one with `--module-report CMD` ([`report`]).
    fn reports_forwarded(&self) -> bool {
        false
    }
    /// Takes what the module forwarded before `module.data`'s first window (earlier cases), so
    /// that the first window's report holds only its own values.
    ///
    /// # Errors
    /// The report's ([`data::ReportError`]).
    fn forget_forwarded(&mut self) -> Result<(), data::ReportError> {
        Ok(())
    }
    /// [`ModuleBench::observe`], and what the module reports it forwarded in that window
    /// (`window` names it: `good`, `bad_bcc`, `bad_parity`).
    ///
    /// # Errors
    /// Outer: the bench's, as `observe`. Inner: why there is no report
    /// ([`data::ReportError::NotReported`] by default, or the report command's failure).
    #[allow(clippy::type_complexity)]
    fn observe_forwarded(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
        _window: &str,
    ) -> Result<(WireLog, Result<data::Forwarded, data::ReportError>), TargetError> {
        Ok((
            self.observe(meter, window_s)?,
            Err(data::ReportError::NotReported),
        ))
    }
    /// Serves `meter` for `window_s` seconds (on the bench's clock) and logs the levels the
    /// module drives on the meter's inputs (ports 1 and 2, pins 4 and 3) as edges
    /// ([`inputs::InputLog`]). `None`: this bench cannot see the module's pins (a pty).
    ///
    /// # Errors
    /// The bench's I/O (lost edges, a vanished line), a stop asked from outside.
    fn inputs(
        &mut self,
        _meter: &MeterSpec,
        _window_s: f64,
    ) -> Result<Option<inputs::InputLog>, TargetError> {
        Ok(None)
    }
}

/// What `module.request` found in one request.
pub fn request_problems(req: &ModuleRequest, parity_observable: bool) -> Vec<String> {
    let mut p = Vec::new();
    let text = req.text();
    if text.first() == Some(&0x06) {
        p.push(format!(
            "sent an acknowledgement {:?} (IEC 62056-21 mode C option select): 004 asks for mode \
             A, where the meter sends its data without one",
            String::from_utf8_lossy(&text)
        ));
    } else if let Err(e) = Request::parse(&text) {
        p.push(format!("request {:?}: {e}", String::from_utf8_lossy(&text)));
    }
    for (i, c) in req.chars.iter().enumerate() {
        if parity_observable && !parity::is_even(c.byte) {
            p.push(format!(
                "character {i} ({:?}) has odd parity (7E1 asks for even)",
                (c.byte & 0x7F) as char
            ));
        }
        if !c.stop_ok {
            p.push(format!(
                "character {i} ({:?}) has no stop bit",
                (c.byte & 0x7F) as char
            ));
        }
    }
    p
}

/// What `module.patience` found: for each request, a later request (or break) of the module
/// before the meter's answer to it had its BCC, while the meter was still within its limits (the
/// first character within 500 ms, the next within 1500 ms of the last). The answer's end is the
/// character after ETX. Also the time from the first request to its answer's BCC, ms.
pub fn patience_problems(log: &WireLog) -> (Vec<String>, Option<f64>) {
    let reqs = log.requests();
    let mut problems = Vec::new();
    let mut waited = None;
    for (i, r) in reqs.iter().enumerate() {
        let next = reqs.get(i + 1).map(|n| n.start());
        let answer = log.meter_between(r.end(), next.unwrap_or(log.end));
        let bcc_end = answer
            .iter()
            .position(|c| c.byte & 0x7F == 0x03)
            .and_then(|k| answer.get(k + 1))
            .map(|c| c.end);
        match (next, bcc_end, answer.first()) {
            (Some(n), None, Some(first))
                if n.diff_ms(answer[answer.len() - 1].end) < INTER_CHAR_MS =>
            {
                let last = answer[answer.len() - 1].end;
                problems.push(format!(
                    "request {} at {:.1} ms after request {} ended, while the answer that started \
                     {:.1} ms after it was still coming (last character {:.1} ms before the new \
                     request; the meter may pause up to {INTER_CHAR_MS} ms)",
                    i + 2,
                    n.diff_ms(r.end()),
                    i + 1,
                    first.start.diff_ms(r.end()),
                    n.diff_ms(last),
                ));
            }
            (Some(n), None, None) if n.diff_ms(r.end()) < REACTION_MAX_MS => {
                problems.push(format!(
                    "request {} at {:.1} ms after request {} ended, before the meter's slowest \
                     allowed reaction ({REACTION_MAX_MS} ms, 004 Note 1)",
                    i + 2,
                    n.diff_ms(r.end()),
                    i + 1,
                ));
            }
            (_, Some(b), _) if waited.is_none() => waited = Some(b.diff_ms(r.end())),
            _ => {}
        }
    }
    (problems, waited)
}

/// One repeat of the module: the spacing to the request before it and what the meter had done.
#[derive(Debug, Clone, PartialEq)]
pub struct Repeat {
    /// From the end of the earlier request to the start of this one, ms.
    pub after_request_ms: f64,
    /// From the meter's last character to the start of this one, ms (None: the meter said nothing).
    pub after_meter_ms: Option<f64>,
    /// The limit this repeat broke, if any.
    pub too_soon: Option<String>,
}

/// The module's repeats and the stated limits they keep or break: a repeat within 004 Note 1's
/// 500 ms after a request that got no character yet, or within the 1500 ms inter-character limit
/// after the last character of an answer without its BCC, talks over a meter that may still
/// answer. After a whole answer (even one with a bad BCC) no clause gives a limit.
pub fn repeats(log: &WireLog) -> Vec<Repeat> {
    let reqs = log.requests();
    let mut out = Vec::new();
    for w in reqs.windows(2) {
        let (a, b) = (&w[0], &w[1]);
        let answer = log.meter_between(a.end(), b.start());
        let after_request_ms = b.start().diff_ms(a.end());
        let whole = answer
            .iter()
            .position(|c| c.byte & 0x7F == 0x03)
            .is_some_and(|k| k + 1 < answer.len());
        let after_meter_ms = answer.last().map(|c| b.start().diff_ms(c.end));
        let too_soon = match after_meter_ms {
            None if after_request_ms < REACTION_MAX_MS => Some(format!(
                "asked again {after_request_ms:.1} ms after its request, while the meter may \
                 answer up to {REACTION_MAX_MS} ms after it (004 Note 1)"
            )),
            Some(m) if !whole && m < INTER_CHAR_MS => Some(format!(
                "asked again {m:.1} ms after the meter's last character of an unfinished answer \
                 (the meter may pause up to {INTER_CHAR_MS} ms between characters)"
            )),
            _ => None,
        };
        out.push(Repeat {
            after_request_ms,
            after_meter_ms,
            too_soon,
        });
    }
    out
}

/// A [`ModuleBench`] as a [`Target`], so the run session (`crate::suite::session`) runs the
/// `module` suite with the records and exit codes of `rig run`. Its clock is the sum of the
/// windows served so far; it has no data link of its own (the bench carries the conversation).
pub struct BenchTarget {
    bench: Box<dyn ModuleBench>,
    name: String,
    virtual_time: bool,
    parity_checked: bool,
    now: Timestamp,
    report: Option<report::ReportCommand>,
}

impl std::fmt::Debug for BenchTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "BenchTarget({})", self.name)
    }
}

impl BenchTarget {
    /// `bench`, described as `name` in records (`module:reference`, `module:link:/tmp/meter`).
    pub fn new(bench: Box<dyn ModuleBench>, name: impl Into<String>, virtual_time: bool) -> Self {
        BenchTarget {
            bench,
            name: name.into(),
            virtual_time,
            parity_checked: virtual_time,
            now: Timestamp::ZERO,
            report: None,
        }
    }

    /// The same, learning what the module forwarded from `command` (`--module-report`; it
    /// replaces what the bench itself reports).
    pub fn with_report(mut self, command: report::ReportCommand) -> Self {
        self.report = Some(command);
        self
    }

    /// The same, declaring whether the module's parity is observable (a soft 7E1 link: yes; a
    /// 7-bit pty: no). Default: only in virtual time.
    pub fn with_parity_checked(mut self, checked: bool) -> Self {
        self.parity_checked = checked;
        self
    }
}

struct Windowed<'a> {
    inner: &'a mut dyn ModuleBench,
    now: &'a mut Timestamp,
    report: Option<&'a report::ReportCommand>,
}

impl ModuleBench for Windowed<'_> {
    fn observe(&mut self, meter: &MeterSpec, window_s: f64) -> Result<WireLog, TargetError> {
        let log = self.inner.observe(meter, window_s)?;
        *self.now = *self.now + std::time::Duration::from_secs_f64(window_s);
        Ok(log)
    }
    fn supply(&mut self, window_s: u64) -> Result<Option<supply::SupplyLog>, TargetError> {
        let log = self.inner.supply(window_s)?;
        *self.now = *self.now + std::time::Duration::from_secs(window_s);
        Ok(log)
    }
    fn reports_forwarded(&self) -> bool {
        self.report.is_some() || self.inner.reports_forwarded()
    }
    fn forget_forwarded(&mut self) -> Result<(), data::ReportError> {
        match self.report {
            Some(cmd) => cmd.run("before").map(drop),
            None => self.inner.forget_forwarded(),
        }
    }
    fn observe_forwarded(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
        window: &str,
    ) -> Result<(WireLog, Result<data::Forwarded, data::ReportError>), TargetError> {
        let out = match self.report {
            Some(cmd) => {
                let log = self.inner.observe(meter, window_s)?;
                (log, cmd.run(window))
            }
            None => self.inner.observe_forwarded(meter, window_s, window)?,
        };
        *self.now = *self.now + std::time::Duration::from_secs_f64(window_s);
        Ok(out)
    }
    fn inputs(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<Option<inputs::InputLog>, TargetError> {
        let log = self.inner.inputs(meter, window_s)?;
        *self.now = *self.now + std::time::Duration::from_secs_f64(window_s);
        Ok(log)
    }
}

impl Clock for BenchTarget {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        Ok(self.now)
    }
    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        self.now = self.now.max(t);
        Ok(())
    }
}

impl DataLink for BenchTarget {
    fn send(&mut self, _: &[u8]) -> Result<SentAt, TargetError> {
        Err(TargetError::NoTransmitter {
            target: self.name.clone(),
            hint: "a module bench serves the meter; it reads no meter (use rig run)".into(),
        })
    }
    fn recv(
        &mut self,
        _: Timestamp,
        _: std::time::Duration,
        _: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        Ok((vec![], RecvEnd::Deadline))
    }
    fn discard_input(&mut self) -> Result<(), TargetError> {
        Ok(())
    }
}

impl Target for BenchTarget {
    fn describe(&self) -> String {
        self.name.clone()
    }
    fn timing(&self) -> Timing {
        Timing {
            data_timing: if self.virtual_time {
                TimeSource::Edge
            } else {
                TimeSource::Serial
            },
            data_uncertainty_ns: 0,
            pin_uncertainty_ns: 0,
            parity_checked: self.parity_checked,
            virtual_time: self.virtual_time,
        }
    }
    fn try_as_module_bench(&mut self) -> Option<Box<dyn ModuleBench + '_>> {
        Some(Box::new(Windowed {
            inner: self.bench.as_mut(),
            now: &mut self.now,
            report: self.report.as_ref(),
        }))
    }
}

#[cfg(test)]
mod tests;
