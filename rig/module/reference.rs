//! The reference software module: `rig run`'s own exchange ([`crate::suite::exchange_in`]) as a
//! module, talking to the software meter in virtual time, with fault knobs ([`ModuleKnobs`]).
//!
//! Healthy, it is a conforming module: it sends `/?!` CR LF in 7E1, waits for the answer as long
//! as the rig waits for a meter (the 1500 ms reaction and inter-character limits), and asks again
//! two seconds after an answer it could not use, three times at most. Each knob breaks one
//! promise, so each `module` case has a module it must fail. [`VirtualBench`] carries the
//! conversation and logs the wire as the meter sees it, every character in both directions,
//! and says what the module forwarded: the data sets of each answer whose BCC and parity check
//! ([`ModuleKnobs::forwards`]), for `module.data`.

use std::time::Duration;

use super::data::{Forwarded, ForwardedValue, ReportError};
use super::drive::{self, DriveKnobs};
use super::inputs::InputLog;
use super::supply::{CurrentTrace, SupplyLog, PEAK_MAX_MA};
use super::{Dir, LineChar, ModuleBench, WireLog};
use crate::iec62056::exchange::{AnswerRules, Conformance, Exchange, Listening, ReadMode};
use crate::iec62056::Request;
use crate::meter::config::MeterSpec;
use crate::sim::SimTarget;
use crate::target::{Clock, DataLink, ModulePorts, RecvEnd, SentAt, Target, TargetError, Timing};
use crate::time::Timestamp;
use crate::uart::{bit_start, Edge, Level, RxChar};

/// The reference module's behaviour; `Default` is a conforming module. Each field but `address`
/// is a fault knob.
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModuleKnobs {
    /// The device address of the request (`None`: the general request `/?!`).
    pub address: Option<String>,
    /// How long it waits for the first character after its request, ms (`None`: as the rig
    /// waits for a meter, 1500 ms and a character). Below 500 it gives up before a slow,
    /// conforming answer (`module.patience`), and with a short `retry_after_ms` repeats too soon.
    pub answer_wait_ms: Option<f64>,
    /// How long it waits after a character for the next, ms (`None`: 1500 ms and a character).
    /// Below 1500 it is impatient with a slow, conforming meter.
    pub char_wait_ms: Option<f64>,
    /// From giving up on an answer to asking again, ms.
    pub retry_after_ms: f64,
    /// Requests it sends at most until it has a valid answer.
    pub tries: u32,
    /// Sends odd parity instead of 7E1's even.
    pub odd_parity: bool,
    /// Leaves out the request's CR LF.
    pub no_crlf: bool,
    /// Its current on pin 6 (default: 0.5 mA with 3 mA peaks, conforming); a knob for the
    /// supply budget (e.g. `base_ma = 1.2`, or `peak_ma = 6`).
    pub supply: CurrentTrace,
    /// Forwards the values of a whole answer whose BCC does not check (healthy: nothing from
    /// it); the knob `module.data` fails against.
    pub forwards_bad_bcc: bool,
    /// Forwards the values of a whole answer with a parity error (healthy: nothing from it).
    pub forwards_bad_parity: bool,
    /// What it drives into the meter's inputs (`[drive]`: tariff script, pulses, max reset),
    /// with knobs for a bouncing tariff contact and short pulses.
    pub drive: DriveKnobs,
}

impl Default for ModuleKnobs {
    fn default() -> Self {
        ModuleKnobs {
            address: None,
            answer_wait_ms: None,
            char_wait_ms: None,
            retry_after_ms: 2000.0,
            tries: 3,
            odd_parity: false,
            no_crlf: false,
            supply: CurrentTrace::default(),
            forwards_bad_bcc: false,
            forwards_bad_parity: false,
            drive: DriveKnobs::default(),
        }
    }
}

impl ModuleKnobs {
    /// The request it sends (before the knobs that break its characters).
    pub fn request(&self) -> Request {
        match &self.address {
            Some(a) => Request::addressed(a.clone()),
            None => Request::general(),
        }
    }

    /// What it forwards from one exchange: the data sets of a whole answer (identification to
    /// BCC, no low stop bit) whose BCC and parity check, each as sent; `None` from any other
    /// answer (or, with `forwards_bad_bcc` / `forwards_bad_parity`, despite that defect).
    pub fn forwards(&self, ex: &Exchange) -> Option<Vec<ForwardedValue>> {
        let t = &ex.tolerant;
        let (parity_errors, stop_errors) = ex.framing_errors();
        let whole = t.identification.is_some() && t.complete && stop_errors.is_empty();
        let bcc = t.bcc.ok || self.forwards_bad_bcc;
        let parity = parity_errors.is_empty() || self.forwards_bad_parity;
        (whole && bcc && parity).then(|| {
            t.data_sets
                .iter()
                .filter_map(ForwardedValue::from_data_set)
                .collect()
        })
    }

    fn listening(&self, rules: &AnswerRules, char_ns: u64) -> Listening {
        let mut l = Listening::conforming(rules, char_ns, 0);
        if let Some(ms) = self.answer_wait_ms {
            l.first_wait = Duration::from_secs_f64(ms.max(0.0) / 1e3);
        }
        if let Some(ms) = self.char_wait_ms {
            l.silence = Duration::from_secs_f64(ms.max(0.0) / 1e3);
        }
        l
    }
}

/// The reference module with `knobs` against the software meter, in virtual time.
#[derive(Debug, Clone, Default)]
pub struct VirtualBench {
    /// The module's knobs.
    pub knobs: ModuleKnobs,
}

impl ModuleBench for VirtualBench {
    fn observe(&mut self, meter: &MeterSpec, window_s: f64) -> Result<WireLog, TargetError> {
        self.run(meter, window_s).map(|(log, _)| log)
    }

    fn supply(&mut self, window_s: u64) -> Result<Option<SupplyLog>, TargetError> {
        Ok(Some(self.supply_log(window_s)))
    }

    fn reports_forwarded(&self) -> bool {
        true
    }

    fn observe_forwarded(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
        _window: &str,
    ) -> Result<(WireLog, Result<Forwarded, ReportError>), TargetError> {
        let (log, values) = self.run(meter, window_s)?;
        Ok((log, Ok(Forwarded { values })))
    }

    fn inputs(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<Option<InputLog>, TargetError> {
        let end = Timestamp::ZERO + Duration::from_secs_f64(window_s);
        let mut sim = SimTarget::new(meter.clone());
        let mut log = InputLog::idle(Timestamp::ZERO, end);
        for c in drive::script(&meter.io, &self.knobs.drive) {
            if c.t >= end {
                break;
            }
            // the software meter sees every change as the module makes it (its input model);
            // the log is what the bench's edge capture would see at the pin
            sim.wait_until(c.t)?;
            sim.set_input(c.port, c.drive)?;
            log.edges[c.port as usize].push(Edge {
                t: c.t,
                level: Level::from_high(!c.drive.is_active()),
            });
        }
        sim.wait_until(end)?;
        Ok(Some(log))
    }
}

impl VirtualBench {
    /// Serves `meter` to the module for `window_s` seconds of virtual time: the conversation,
    /// and the values the module forwarded ([`ModuleKnobs::forwards`]) in it.
    fn run(
        &self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<(WireLog, Vec<ForwardedValue>), TargetError> {
        let rules = AnswerRules::from_profile(meter.profile);
        let baud = meter.baud;
        let char_ns = bit_start(Timestamp::ZERO, 10, baud).0;
        let mut tap = Tap {
            inner: SimTarget::new(meter.clone()),
            knobs: self.knobs.clone(),
            log: Vec::new(),
            char_ns,
        };
        let end = Timestamp::ZERO + Duration::from_secs_f64(window_s);
        let listen = self.knobs.listening(&rules, char_ns);
        let request = self.knobs.request();
        let mut forwarded = Vec::new();
        for _ in 0..self.knobs.tries {
            if tap.now()? >= end {
                break;
            }
            let ex =
                crate::suite::exchange_in(&mut tap, &request, &rules, &listen, ReadMode::A, baud)?;
            forwarded.extend(self.knobs.forwards(&ex).unwrap_or_default());
            if ex.assess(&rules).conformance == Conformance::Conforms {
                break;
            }
            let again = tap.now()? + Duration::from_secs_f64(self.knobs.retry_after_ms / 1e3);
            tap.wait_until(again)?;
        }
        let now = tap.now()?;
        tap.wait_until(end.max(now))?;
        tap.drain()?;
        let mut chars = tap.log;
        chars.sort_by_key(|c| c.start);
        let log = WireLog {
            chars,
            parity_observable: true,
            end: tap.inner.now()?,
        };
        Ok((log, forwarded))
    }
}

impl VirtualBench {
    fn supply_log(&self, window_s: u64) -> SupplyLog {
        self.knobs.supply.observe(window_s, PEAK_MAX_MA)
    }
}

/// The module's side of the software meter's wire: applies the knobs to what the module sends
/// and logs every character in both directions.
struct Tap {
    inner: SimTarget,
    knobs: ModuleKnobs,
    log: Vec<LineChar>,
    char_ns: u64,
}

impl Tap {
    fn note_rx(&mut self, chars: &[RxChar]) {
        self.log.extend(chars.iter().map(|c| LineChar {
            dir: Dir::FromMeter,
            byte: c.byte,
            start: c.start,
            end: c.end,
            stop_ok: c.stop_ok,
        }));
    }

    /// Logs what the meter sent that the module has not read (it is on the wire all the same).
    fn drain(&mut self) -> Result<(), TargetError> {
        let now = self.inner.now()?;
        let (got, _) = self.inner.recv(now, Duration::ZERO, &mut |_| false)?;
        self.note_rx(&got);
        Ok(())
    }
}

impl Clock for Tap {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        self.inner.now()
    }
    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        self.inner.wait_until(t)
    }
}

impl DataLink for Tap {
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
        let mut out: Vec<u8> = bytes.to_vec();
        if self.knobs.no_crlf {
            while out
                .last()
                .is_some_and(|b| matches!(b & 0x7F, b'\r' | b'\n'))
            {
                out.pop();
            }
        }
        if self.knobs.odd_parity {
            out.iter_mut().for_each(|b| *b ^= 0x80);
        }
        let sent = self.inner.send(&out)?;
        let n = out.len() as u64;
        for (k, &b) in out.iter().enumerate() {
            let end = Timestamp(sent.t.0 - (n - 1 - k as u64) * self.char_ns);
            self.log.push(LineChar {
                dir: Dir::ToMeter,
                byte: b,
                start: Timestamp(end.0 - self.char_ns),
                end,
                stop_ok: true,
            });
        }
        Ok(sent)
    }

    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        let (got, end) = self.inner.recv(deadline, max_gap, complete)?;
        self.note_rx(&got);
        Ok((got, end))
    }

    fn discard_input(&mut self) -> Result<(), TargetError> {
        self.drain()
    }
}

impl Target for Tap {
    fn describe(&self) -> String {
        "reference-module".into()
    }
    fn timing(&self) -> Timing {
        self.inner.timing()
    }
}
