//! The run plan: how much meter time each selected case is expected to take and why (what it
//! waits for), the total in sequence (every case one after another), the total as run (the
//! engine's schedule: cases that fit running inside the passive waits other cases lend,
//! [`super::schedule`]), the total with overlap (every case that drives no input sharing the
//! meter's time from the start) and the floor (the least meter time the observations need).
//!
//! Every case declares in [`super::registry`] a function that answers, for the meter file, the
//! run's options and the moment the case starts on the target's clock, a [`Wait`]: its expected
//! meter time, the least time its observation needs, the readouts it takes and the reason in
//! words ("the hour counter's window of 24 h", "the energy for 400 whole kWh at 240 kW",
//! "00:00 of day 01 from the meter's start"), and what it uses of the meter ([`Uses`]: inputs
//! driven, outputs watched) and the waits it lends ([`Wait::idle`]). [`plan`] walks the selection
//! in run order as the engine does; [`overlap`] is the ideal over those declarations. Pure: no
//! I/O, no clock reads.

use serde::Serialize;

use super::registry::CaseDef;
use super::{schedule, RunOptions};
use crate::meter::config::MeterSpec;
use crate::target::Capabilities;

/// Characters of a general request, `/?!` CR LF (IEC 62056-21 §6.3.1).
const REQUEST_CHARS: f64 = 5.0;
/// Characters of the 351's mode A answer: the identification (20) and the data message of the
/// 17 data sets of 004's layout (339): 359 in all (the worked example of 004).
const ANSWER_CHARS: f64 = 359.0;
/// Characters of the identification line, `/KAM` + the mode character + the 13-character type
/// number + CR LF.
const IDENT_CHARS: f64 = 20.0;
/// Characters of the mode C acknowledgement `ACK 0 Z 0` CR LF.
const ACK_CHARS: f64 = 6.0;

/// What a case uses of the meter besides the data line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Uses {
    /// It drives the meter's inputs (tariff, pulse in, max reset): it gets the meter to itself.
    pub drives_inputs: bool,
    /// It watches the meter's pulse outputs (their edges come off one queue per port: a case
    /// that watches them lends its waits to no other that does).
    pub watches_outputs: bool,
    /// It judges every exchange of the run: it runs last, never inside another case's wait.
    pub judges_run: bool,
}

impl Uses {
    /// Readouts only.
    pub const LINE: Uses = Uses {
        drives_inputs: false,
        watches_outputs: false,
        judges_run: false,
    };
    /// Readouts and the pulse outputs.
    pub const OUTPUTS: Uses = Uses {
        drives_inputs: false,
        watches_outputs: true,
        judges_run: false,
    };
    /// Readouts and the meter's inputs.
    pub const INPUTS: Uses = Uses {
        drives_inputs: true,
        watches_outputs: false,
        judges_run: false,
    };
    /// Every exchange of the run (judged last).
    pub const RUN: Uses = Uses {
        drives_inputs: false,
        watches_outputs: false,
        judges_run: true,
    };
}

/// What the planner knows when a case starts: the meter file, the options, the target's kind
/// and the moment on the target's clock.
#[derive(Debug, Clone, Copy)]
pub struct PlanCtx<'a> {
    /// The meter file (a real meter's expected configuration, its load the bench's power).
    pub spec: &'a MeterSpec,
    /// The run's options (windows, dwell, counts).
    pub opts: &'a RunOptions,
    /// Whether the target runs in virtual time (the software meter, whose clock is the file's
    /// `start`).
    pub virtual_time: bool,
    /// Whether the target has module ports.
    pub pins: bool,
    /// Target time at which the case starts, seconds from the run's start.
    pub now_s: f64,
    /// Readouts the run took before this case.
    pub readouts: u32,
}

impl PlanCtx<'_> {
    /// One character on the meter's line at its initial rate, seconds (10 bits: 7E1).
    pub fn char_s(&self) -> f64 {
        10.0 / self.spec.baud.max(1) as f64
    }

    /// The request of a readout on the line, seconds: from its start to the end of its last stop
    /// bit, when the meter takes its snapshot.
    pub fn request_s(&self) -> f64 {
        REQUEST_CHARS * self.char_s()
    }

    /// One general readout, seconds: request, the meter's response delay and the answer (in mode
    /// C: the identification at the initial rate, the acknowledgement after the reaction time and
    /// the data message at the announced rate).
    pub fn readout_s(&self) -> f64 {
        let delay = self.spec.response_delay_ms() / 1e3;
        let c = self.char_s();
        match self.spec.mode_c_baud() {
            Some(b) => {
                let data = (ANSWER_CHARS - IDENT_CHARS) * 10.0 / b.max(1) as f64;
                // reaction time before the acknowledgement, the meter's own before the data
                self.request_s() + delay + IDENT_CHARS * c + 0.2 + ACK_CHARS * c + 0.65 + data
            }
            None => self.request_s() + delay + ANSWER_CHARS * c,
        }
    }
}

/// What one case waits for on the meter's clock.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Wait {
    /// Expected meter time, seconds.
    pub seconds: f64,
    /// The least meter time its observation needs for a verdict at the stated confidence on a
    /// conforming meter, seconds (equal to `seconds` for a fixed window).
    pub floor_s: f64,
    /// Readouts it takes of its own.
    pub readouts: u32,
    /// Whether it judges the run's first readout (taken by the first such case, shared by all).
    pub takes_first: bool,
    /// What it waits for, in words.
    pub reason: String,
    /// Its passive waits, in which it lends the meter to other cases ([`super::schedule`]):
    /// `(from, until)`, seconds on the target's clock (the case calls
    /// [`super::Ctx::share_wait`] with each `until`).
    pub idle: Vec<(f64, f64)>,
}

impl Wait {
    /// No meter time (the case skips, or judges what the run already saw).
    pub fn none(reason: impl Into<String>) -> Self {
        Wait {
            seconds: 0.0,
            floor_s: 0.0,
            readouts: 0,
            takes_first: false,
            reason: reason.into(),
            idle: vec![],
        }
    }

    /// A fixed `seconds` with `readouts` readouts of its own.
    pub fn fixed(seconds: f64, readouts: u32, reason: impl Into<String>) -> Self {
        Wait {
            seconds,
            floor_s: seconds,
            readouts,
            takes_first: false,
            reason: reason.into(),
            idle: vec![],
        }
    }

    /// Judges the run's first readout (and takes it if it is the first).
    pub fn first(reason: impl Into<String>) -> Self {
        Wait {
            takes_first: true,
            ..Wait::none(reason)
        }
    }

    /// The same, also judging the run's first readout.
    pub fn and_first(self) -> Self {
        Wait {
            takes_first: true,
            ..self
        }
    }

    /// The same with a floor below the expected time (an early decision).
    pub fn with_floor(self, floor_s: f64) -> Self {
        Wait { floor_s, ..self }
    }

    /// The same, lending the meter to other cases in the passive waits `idle` (`(from, until)`,
    /// seconds on the target's clock; empty or reversed ones are left out).
    pub fn lending(self, idle: impl IntoIterator<Item = (f64, f64)>) -> Self {
        Wait {
            idle: idle.into_iter().filter(|(a, b)| b > a).collect(),
            ..self
        }
    }
}

/// One case of the plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PlannedCase {
    /// Case id.
    pub id: &'static str,
    /// Target time at which it starts in sequence, seconds.
    pub start_s: f64,
    /// Expected meter time in sequence (its first readout included when it takes it), seconds.
    pub seconds: f64,
    /// The least meter time its observation needs, seconds.
    pub floor_s: f64,
    /// Whether it gets the meter to itself (it drives inputs).
    pub exclusive: bool,
    /// Whether it is skipped on this target (needs it does not meet).
    pub skipped: bool,
    /// What it waits for.
    pub reason: String,
    /// The case in whose passive wait it runs, when it shares one ([`super::schedule`]).
    pub nested_in: Option<&'static str>,
}

/// The plan of a run (empty by default: no case, no time).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Plan {
    /// The cases in the order they start as the engine runs them (a case that runs inside
    /// another's wait right after the one that lends it), each with its start and expected time.
    pub cases: Vec<PlannedCase>,
    /// One readout, seconds.
    pub readout_s: f64,
    /// Total with every case one after another, seconds.
    pub sequence_s: f64,
    /// Total as the engine runs the cases: one after another, the cases that fit running inside
    /// the passive waits of those that lend them ([`super::schedule`]), seconds.
    pub executed_s: f64,
    /// Total with overlap ([`overlap`]), seconds.
    pub overlap_s: f64,
    /// The floor: the overlap of every case's least time, seconds.
    pub floor_s: f64,
}

/// One declaration the scheduler sees.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Item {
    /// Expected meter time when it starts at the overlap's start, seconds (its first readout
    /// not included).
    pub seconds: f64,
    /// Its least time, seconds.
    pub floor_s: f64,
    /// Readouts of its own.
    pub readouts: u32,
    /// Whether it judges the run's first readout.
    pub takes_first: bool,
    /// Whether it drives inputs (gets the meter to itself).
    pub exclusive: bool,
}

/// Expected and least total meter time when the cases that drive inputs run one after another,
/// each with the meter to itself, and then every other case shares the meter's time: counting
/// pulses, watching the hour counter and waiting for a date do not conflict, but the data line
/// carries one readout at a time, so the shared part lasts at least its readouts end to end
/// (`readout_s` each, the run's first readout once). Returns `(expected, floor)`, seconds.
pub fn overlap(exclusive: &[Item], shared: &[Item], readout_s: f64) -> (f64, f64) {
    let ex: f64 = exclusive.iter().map(|i| i.seconds).sum();
    let ex_floor: f64 = exclusive.iter().map(|i| i.floor_s).sum();
    let first = if shared.iter().any(|i| i.takes_first) {
        readout_s
    } else {
        0.0
    };
    let line = first + shared.iter().map(|i| i.readouts as f64).sum::<f64>() * readout_s;
    let longest = shared.iter().map(|i| i.seconds).fold(0.0, f64::max) + first;
    let longest_floor = shared.iter().map(|i| i.floor_s).fold(0.0, f64::max) + first;
    (ex + longest.max(line), ex_floor + longest_floor.max(line))
}

/// The plan of `cases` (in run order) for `spec` with `opts` on a target with `caps`: each case
/// evaluated at the moment it starts in sequence (a case that judges the run's first readout and
/// takes it is evaluated after it); the overlap and floor from [`overlap`] in the better of two
/// orders (the cases that drive inputs before or after the shared ones), never above the
/// sequence. A case whose needs the target does not meet plans no time.
pub fn plan(
    spec: &MeterSpec,
    opts: &RunOptions,
    caps: &Capabilities,
    cases: &[&'static CaseDef],
) -> Plan {
    let p = Planner { spec, opts, caps };
    let readout_s = p.ctx(0.0, 0).readout_s();
    let (in_sequence, sequence_s) = p.in_sequence(cases, readout_s);
    let seq_floor: f64 = in_sequence.iter().map(|c| c.floor_s).sum();
    let (overlap_s, floor_s) = p.with_overlap(cases, readout_s);
    let (planned, executed_s) = p.executed(cases, readout_s);
    Plan {
        cases: planned,
        readout_s,
        sequence_s,
        executed_s,
        overlap_s: overlap_s.min(sequence_s),
        floor_s: floor_s.min(seq_floor),
    }
}

/// Expected meter time of `def` if it starts now (`now_s` on the target's clock, after
/// `readouts` readouts), as a candidate to run inside another case's wait: infinite when it
/// would take the run's first readout that is not taken yet (only a case in sequence takes it),
/// none when the target does not meet its needs.
pub fn expected_now(
    def: &CaseDef,
    spec: &MeterSpec,
    opts: &RunOptions,
    caps: &Capabilities,
    now_s: f64,
    readouts: u32,
    first_taken: bool,
) -> f64 {
    let w = Planner { spec, opts, caps }.wait(def, now_s, readouts);
    if w.takes_first && !first_taken {
        f64::INFINITY
    } else {
        w.seconds
    }
}

/// What [`plan`] plans for.
struct Planner<'a> {
    spec: &'a MeterSpec,
    opts: &'a RunOptions,
    caps: &'a Capabilities,
}

impl Planner<'_> {
    fn ctx(&self, now_s: f64, readouts: u32) -> PlanCtx<'_> {
        PlanCtx {
            spec: self.spec,
            opts: self.opts,
            virtual_time: self.caps.virtual_time,
            pins: self.caps.pins,
            now_s,
            readouts,
        }
    }

    /// `c`'s wait when it starts at `now_s` after `readouts` readouts; none when the target
    /// does not meet its needs.
    fn wait(&self, c: &CaseDef, now_s: f64, readouts: u32) -> Wait {
        match c.unmet(self.caps) {
            Some(n) => Wait::none(n.missing("this target")),
            None => (c.plan)(&self.ctx(now_s, readouts)),
        }
    }

    /// Every case in run order, as the engine runs them, and the total, seconds.
    fn in_sequence(&self, cases: &[&'static CaseDef], readout_s: f64) -> (Vec<PlannedCase>, f64) {
        let (mut t, mut readouts, mut first_taken) = (0.0, 0u32, false);
        let mut planned = Vec::new();
        for c in cases {
            let w = self.wait(c, t, readouts);
            let first = w.takes_first && !first_taken;
            first_taken |= w.takes_first;
            let (seconds, floor_s) = if first {
                // the first readout comes before the case's own wait: evaluate it after that
                let w2 = self.wait(c, t + readout_s, readouts + 1);
                (w2.seconds + readout_s, w2.floor_s + readout_s)
            } else {
                (w.seconds, w.floor_s)
            };
            readouts += w.readouts + u32::from(first);
            planned.push(PlannedCase {
                id: c.id,
                start_s: t,
                seconds,
                floor_s,
                exclusive: c.uses.drives_inputs,
                skipped: c.unmet(self.caps).is_some(),
                reason: w.reason,
                nested_in: None,
            });
            t += seconds;
        }
        (planned, t)
    }

    /// `c` started at `t` after `readouts`, as in sequence: its wait (evaluated after the run's
    /// first readout when it takes it), its time and floor, and whether it took the first.
    fn at(
        &self,
        c: &CaseDef,
        t: f64,
        readouts: u32,
        first_taken: bool,
        readout_s: f64,
    ) -> (Wait, f64, f64, bool) {
        let w = self.wait(c, t, readouts);
        if w.takes_first && !first_taken {
            let w2 = self.wait(c, t + readout_s, readouts + 1);
            let (s, f) = (w2.seconds + readout_s, w2.floor_s + readout_s);
            (w2, s, f, true)
        } else {
            let (s, f) = (w.seconds, w.floor_s);
            (w, s, f, false)
        }
    }

    /// The cases as the engine runs them ([`super::session`]): in run order, each lending its
    /// passive waits ([`Wait::idle`]) to the first queued cases that fit ([`schedule::pick`]).
    /// Returns the cases in the order they start and the total, seconds.
    fn executed(&self, cases: &[&'static CaseDef], readout_s: f64) -> (Vec<PlannedCase>, f64) {
        let mut queue: Vec<&'static CaseDef> = cases.to_vec();
        let (mut t, mut readouts, mut first_taken) = (0.0, 0u32, false);
        let mut planned = Vec::new();
        while !queue.is_empty() {
            let c = queue.remove(0);
            let (w, seconds, floor_s, first) = self.at(c, t, readouts, first_taken, readout_s);
            first_taken |= first;
            readouts += w.readouts + u32::from(first);
            let skipped = c.unmet(self.caps).is_some();
            planned.push(self.planned(c, t, seconds, floor_s, w.reason, None));
            if !skipped && schedule::lends(c.uses) {
                for &(from, until) in &w.idle {
                    let mut now = from;
                    loop {
                        let cands: Vec<schedule::Candidate> = queue
                            .iter()
                            .map(|d| schedule::Candidate {
                                uses: d.uses,
                                seconds: expected_now(
                                    d,
                                    self.spec,
                                    self.opts,
                                    self.caps,
                                    now,
                                    readouts,
                                    first_taken,
                                ),
                            })
                            .collect();
                        let Some(i) = schedule::pick(c.uses, &cands, now, until, readout_s) else {
                            break;
                        };
                        let d = queue.remove(i);
                        let dw = self.wait(d, now, readouts);
                        readouts += dw.readouts;
                        let n = self.planned(d, now, dw.seconds, dw.floor_s, dw.reason, Some(c.id));
                        planned.push(n);
                        now += dw.seconds;
                    }
                }
            }
            t += seconds;
        }
        (planned, t)
    }

    fn planned(
        &self,
        c: &'static CaseDef,
        start_s: f64,
        seconds: f64,
        floor_s: f64,
        reason: String,
        nested_in: Option<&'static str>,
    ) -> PlannedCase {
        PlannedCase {
            id: c.id,
            start_s,
            seconds,
            floor_s,
            exclusive: c.uses.drives_inputs,
            skipped: c.unmet(self.caps).is_some(),
            reason,
            nested_in,
        }
    }

    /// The cases that drive inputs one after another from `from`: their total and items.
    fn exclusive(&self, cases: &[&'static CaseDef], from: f64) -> (f64, Vec<Item>) {
        let mut t = from;
        let mut items = Vec::new();
        for c in cases.iter().filter(|c| c.uses.drives_inputs) {
            let w = self.wait(c, t, 0);
            t += w.seconds;
            items.push(item(&w, true));
        }
        (t - from, items)
    }

    /// The other cases, all started at `from` after the run's first readout.
    fn shared(&self, cases: &[&'static CaseDef], from: f64, readout_s: f64) -> Vec<Item> {
        cases
            .iter()
            .filter(|c| !c.uses.drives_inputs)
            .map(|c| item(&self.wait(c, from + readout_s, 1), false))
            .collect()
    }

    /// (expected, floor) with overlap: the exclusive cases before or after the shared ones (a
    /// date-bound wait or a daily load profile makes the order matter), the better order.
    fn with_overlap(&self, cases: &[&'static CaseDef], readout_s: f64) -> (f64, f64) {
        let (t_ex, ex_first) = self.exclusive(cases, 0.0);
        let a = overlap(&ex_first, &self.shared(cases, t_ex, readout_s), readout_s);
        let sh_first = self.shared(cases, 0.0, readout_s);
        let (t_sh, _) = overlap(&[], &sh_first, readout_s);
        let (_, ex_last) = self.exclusive(cases, t_sh);
        let b = overlap(&ex_last, &sh_first, readout_s);
        (a.0.min(b.0), a.1.min(b.1))
    }
}

fn item(w: &Wait, exclusive: bool) -> Item {
    Item {
        seconds: w.seconds,
        floor_s: w.floor_s,
        readouts: w.readouts,
        takes_first: w.takes_first,
        exclusive,
    }
}

/// Seconds as text for people: `12.3 s`, `1 h 40 min`, `31 d 0 h`.
pub fn human(s: f64) -> String {
    if s < 120.0 {
        format!("{s:.1} s")
    } else if s < 3.0 * 3600.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 3.0 * 86_400.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.1} d", s / 86_400.0)
    }
}

impl Plan {
    /// The plan as text: one line per case (start, expected time, what it waits for), then the
    /// totals and the ratios to the floor.
    pub fn text(&self, title: &str) -> String {
        use std::fmt::Write;
        let mut out = format!("plan for {title} (one readout {:.1} s):\n", self.readout_s);
        for c in &self.cases {
            let mark = match (c.exclusive, c.nested_in) {
                (true, _) => " [inputs]".to_string(),
                (false, Some(host)) => format!(" [in {host}'s wait]"),
                (false, None) => String::new(),
            };
            let _ = writeln!(
                out,
                "  {:<28} {:>12.1} s  {:>9}{mark}  {}",
                c.id,
                c.seconds,
                human(c.seconds),
                c.reason
            );
        }
        let ratio = |x: f64| {
            if self.floor_s > 0.0 {
                x / self.floor_s
            } else {
                1.0
            }
        };
        let _ = writeln!(
            out,
            "in sequence  {:.1} s ({}), {:.3} × floor",
            self.sequence_s,
            human(self.sequence_s),
            ratio(self.sequence_s)
        );
        let _ = writeln!(
            out,
            "as run       {:.1} s ({}), {:.3} × floor: one after another, cases that fit running inside the passive waits of cases that lend them",
            self.executed_s,
            human(self.executed_s),
            ratio(self.executed_s)
        );
        let _ = writeln!(
            out,
            "with overlap {:.1} s ({}), {:.3} × floor",
            self.overlap_s,
            human(self.overlap_s),
            ratio(self.overlap_s)
        );
        let _ = writeln!(
            out,
            "floor        {:.1} s ({}): cases that drive inputs one after another, the rest sharing the meter, each for the least time its observation needs",
            self.floor_s,
            human(self.floor_s)
        );
        out
    }

    /// Expected meter time of `id` in sequence, seconds.
    pub fn expected(&self, id: &str) -> Option<f64> {
        self.cases.iter().find(|c| c.id == id).map(|c| c.seconds)
    }

    /// What is left when `id` has run for `elapsed_s`: (left of the case, left of the run as
    /// the engine runs it, [`Plan::executed_s`]), seconds. A case that runs over its expected
    /// time has nothing left by the plan, never a negative time.
    pub fn left(&self, id: &str, elapsed_s: f64) -> Option<(f64, f64)> {
        let c = self.cases.iter().find(|c| c.id == id)?;
        let case = (c.seconds - elapsed_s).max(0.0);
        let run = (self.executed_s - c.start_s - c.seconds.min(elapsed_s)).max(case);
        Some((case, run))
    }

    /// The ETA of `id` after `elapsed_s` and of the run, in words: `about 5.0 s left in the
    /// case, 100 min in the run`.
    /// A case past its expected time says so: `past the 60 min expected; 5.0 s in the run after
    /// it`.
    pub fn eta_text(&self, id: &str, elapsed_s: f64) -> String {
        match (self.left(id, elapsed_s), self.expected(id)) {
            (Some((_, run)), Some(e)) if elapsed_s > e && elapsed_s > 0.0 => format!(
                "past the {} expected; {} in the run after it",
                human(e),
                human(run)
            ),
            (Some((case, run)), _) => format!(
                "about {} left in the case, {} in the run",
                human(case),
                human(run)
            ),
            _ => "not in the plan".into(),
        }
    }

    /// Expected end of `id` as the engine runs it, seconds from the run's start.
    pub fn end_of(&self, id: &str) -> Option<f64> {
        self.cases
            .iter()
            .find(|c| c.id == id)
            .map(|c| c.start_s + c.seconds)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(seconds: f64, readouts: u32, exclusive: bool) -> Item {
        Item {
            seconds,
            floor_s: seconds / 2.0,
            readouts,
            takes_first: false,
            exclusive,
        }
    }

    #[test]
    fn exclusive_cases_add_and_shared_cases_take_the_longest() {
        let ex = [it(30.0, 2, true), it(100.0, 4, true)];
        let sh = [
            it(3600.0, 2, false),
            it(86_400.0, 2, false),
            it(10.0, 1, false),
        ];
        let (e, f) = overlap(&ex, &sh, 12.0);
        assert_eq!(e, 130.0 + 86_400.0);
        assert_eq!(f, 65.0 + 43_200.0);
    }

    #[test]
    fn the_data_line_carries_one_readout_at_a_time() {
        // 20 readouts of 12 s cannot share 100 s of waiting
        let sh: Vec<Item> = (0..10).map(|_| it(100.0, 2, false)).collect();
        let (e, f) = overlap(&[], &sh, 12.0);
        assert_eq!(e, 240.0);
        assert_eq!(f, 240.0);
    }

    #[test]
    fn the_first_readout_is_taken_once() {
        let mut a = it(0.0, 0, false);
        a.takes_first = true;
        let (e, _) = overlap(&[], &[a, a, a], 12.0);
        assert_eq!(e, 12.0);
    }

    #[test]
    fn the_eta_counts_the_case_in_hand_and_the_cases_after_it() {
        let c = |id, start_s, seconds| PlannedCase {
            id,
            start_s,
            seconds,
            floor_s: seconds,
            exclusive: false,
            skipped: false,
            reason: String::new(),
            nested_in: None,
        };
        let p = Plan {
            cases: vec![
                c("a", 0.0, 10.0),
                c("b", 10.0, 100.0),
                c("c", 110.0, 1000.0),
            ],
            readout_s: 12.0,
            sequence_s: 1110.0,
            executed_s: 1110.0,
            overlap_s: 1000.0,
            floor_s: 1000.0,
        };
        assert_eq!(p.left("b", 40.0), Some((60.0, 1060.0)));
        // over its time: nothing left of the case, the rest of the run as planned
        assert_eq!(p.left("b", 400.0), Some((0.0, 1000.0)));
        assert_eq!(p.left("x", 1.0), None);
        assert_eq!(
            p.eta_text("a", 4.0),
            "about 6.0 s left in the case, 18 min in the run"
        );
        assert_eq!(
            p.eta_text("b", 400.0),
            "past the 100.0 s expected; 17 min in the run after it"
        );
    }

    #[test]
    fn human_times_read_as_people_say_them() {
        assert_eq!(human(12.34), "12.3 s");
        assert_eq!(human(6000.0), "100 min");
        assert_eq!(human(86_400.0), "24.0 h");
        assert_eq!(human(31.0 * 86_400.0), "31.0 d");
    }

    /// A case that runs inside another's wait counts for the run's ETA from where it starts:
    /// what is left of the run is the run's end as executed.
    #[test]
    fn the_eta_of_a_case_in_another_cases_wait_is_the_runs_end() {
        let c = |id, start_s, seconds, nested_in| PlannedCase {
            id,
            start_s,
            seconds,
            floor_s: seconds,
            exclusive: false,
            skipped: false,
            reason: String::new(),
            nested_in,
        };
        let p = Plan {
            cases: vec![
                c("host", 0.0, 3600.0, None),
                c("inner", 100.0, 600.0, Some("host")),
                c("after", 3600.0, 60.0, None),
            ],
            readout_s: 12.0,
            sequence_s: 4260.0,
            executed_s: 3660.0,
            overlap_s: 3660.0,
            floor_s: 3660.0,
        };
        assert_eq!(p.left("inner", 100.0), Some((500.0, 3460.0)));
        assert_eq!(p.left("host", 0.0), Some((3600.0, 3660.0)));
        assert_eq!(p.end_of("inner"), Some(700.0));
    }

    /// The executed schedule: `readout.monotonic`'s hour holds `pulse_out.constant`'s 51 minutes
    /// on the default meter, no case that drives inputs runs inside a wait, and
    /// `readout.every_exchange` runs last.
    #[test]
    fn the_plan_runs_the_cases_that_fit_inside_the_waits_that_lend_them() {
        use crate::sim::SimTarget;
        use crate::target::Target;
        let spec = MeterSpec::builtin_default();
        let caps = SimTarget::new(spec.clone()).capabilities();
        let opts = RunOptions::for_target(&caps);
        let p = plan(&spec, &opts, &caps, &super::super::selected(&opts));
        let find = |id: &str| p.cases.iter().find(|c| c.id == id).unwrap();
        assert_eq!(
            find("pulse_out.constant").nested_in,
            Some("readout.monotonic")
        );
        assert!(p
            .cases
            .iter()
            .all(|c| !c.exclusive || c.nested_in.is_none()));
        assert_eq!(p.cases.last().unwrap().id, "readout.every_exchange");
        assert!(p.executed_s <= p.sequence_s);
        assert_eq!(p.cases.len(), super::super::selected(&opts).len());
    }

    /// `rig run --plan` agrees with the run's recorded meter time within 5 % for every fixture
    /// meter (as the engine runs the cases: the cases that fit inside the waits of others), the
    /// whole run and every case.
    /// Where a run and its plan disagree: a case's time (5 % or 2 s), the run's end (5 %; a
    /// lender ends after what ran in its wait) or a case's start (5 % of the run or 2 s).
    fn disagreements(name: &str, p: &Plan, cases: &[crate::suite::CaseResult]) -> Vec<String> {
        let mut bad = Vec::new();
        let ran = cases.iter().map(|r| r.target_time_s.1).fold(0.0, f64::max);
        if (p.executed_s / ran - 1.0).abs() > 0.05 {
            bad.push(format!("{name}: plan {} s, ran {ran} s", p.executed_s));
        }
        assert_eq!(p.cases.len(), cases.len(), "{name}");
        for c in &p.cases {
            let r = cases.iter().find(|r| r.id == c.id).unwrap();
            let took = r.target_time_s.1 - r.target_time_s.0;
            if (c.seconds - took).abs() > (0.05 * took).max(2.0) {
                bad.push(format!(
                    "{name} {}: plan {} s, ran {took} s ({}: {})",
                    c.id, c.seconds, r.verdict, r.message
                ));
            }
            if (c.start_s - r.target_time_s.0).abs() > (0.05 * ran).max(2.0) {
                bad.push(format!(
                    "{name} {}: plan starts at {} s, ran from {} s",
                    c.id, c.start_s, r.target_time_s.0
                ));
            }
        }
        bad
    }

    /// The plan of the default selection for `target`'s defaults, and the run it plans.
    fn plan_and_run(
        spec: &MeterSpec,
        target: &mut dyn crate::target::Target,
    ) -> (Plan, Vec<crate::suite::CaseResult>) {
        let caps = target.capabilities();
        let opts = RunOptions::for_target(&caps);
        let p = plan(spec, &opts, &caps, &super::super::selected(&opts));
        let cases = super::super::run(target, spec, &opts, &mut super::super::Discard);
        (p, cases)
    }

    #[test]
    fn the_plan_agrees_with_the_run_for_every_fixture_meter() {
        use crate::sim::SimTarget;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meters");
        let mut bad = Vec::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            let spec = MeterSpec::from_file(&path).unwrap();
            let mut target = SimTarget::new(spec.clone());
            let (p, cases) = plan_and_run(&spec, &mut target);
            bad.extend(disagreements(&path.display().to_string(), &p, &cases));
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }

    /// The software meter's clock, declared real (`virtual_time: false`): the run takes a real
    /// meter's defaults and skips what needs the meter's clock, as on a lab bench, while the
    /// software meter still answers in virtual time.
    struct AsRealMeter;

    impl crate::target::Layer for AsRealMeter {
        fn timing(&self, inner: crate::target::Timing) -> crate::target::Timing {
            crate::target::Timing {
                virtual_time: false,
                ..inner
            }
        }
    }

    /// A real meter on pins (the 351 of the default meter file, its load the bench's power):
    /// the plan's `as run` is what the engine does with a real meter's defaults, and the whole
    /// default run is under 75 minutes of meter time, within 1.15 × its floor (issue 16's goal
    /// for the bench it was written for: the month-bound cases skip without the meter's clock).
    #[test]
    fn the_default_run_on_a_real_meter_on_pins_is_under_75_minutes_and_as_planned() {
        use crate::sim::SimTarget;
        use crate::target::{Layered, Target};
        let spec = MeterSpec::builtin_default();
        let mut sim = SimTarget::new(spec.clone());
        let mut target = Layered::new(&mut sim, AsRealMeter);
        let caps = target.capabilities();
        assert!(!caps.virtual_time && caps.pins);
        let (p, cases) = plan_and_run(&spec, &mut target);
        let ran = cases.iter().map(|r| r.target_time_s.1).fold(0.0, f64::max);
        assert!(
            (p.executed_s / ran - 1.0).abs() <= 0.05,
            "plan {} s, ran {ran} s",
            p.executed_s
        );
        assert!(ran < 75.0 * 60.0, "{ran} s");
        assert!(
            ran <= 1.15 * p.floor_s,
            "{ran} s against a floor of {} s",
            p.floor_s
        );
        for c in &cases {
            assert_ne!(
                c.verdict,
                crate::suite::Verdict::Fail,
                "{} {}",
                c.id,
                c.message
            );
            assert_ne!(
                c.verdict,
                crate::suite::Verdict::Error,
                "{} {}",
                c.id,
                c.message
            );
        }
        eprintln!(
            "real meter on pins: ran {ran:.1} s, plan as run {:.1} s, floor {:.1} s",
            p.executed_s, p.floor_s
        );
    }

    /// Every fixture meter as a real meter on pins: the plan's `as run` is the run's meter time
    /// within 5 %.
    #[test]
    fn the_plan_agrees_with_a_real_meter_run_for_every_fixture_meter() {
        use crate::sim::SimTarget;
        use crate::target::Layered;
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meters");
        let mut bad = Vec::new();
        for f in std::fs::read_dir(dir).unwrap() {
            let path = f.unwrap().path();
            let spec = MeterSpec::from_file(&path).unwrap();
            let mut sim = SimTarget::new(spec.clone());
            let mut target = Layered::new(&mut sim, AsRealMeter);
            let (p, cases) = plan_and_run(&spec, &mut target);
            let ran = cases.iter().map(|r| r.target_time_s.1).fold(0.0, f64::max);
            eprintln!(
                "{}: ran {ran:.1} s, plan as run {:.1} s, floor {:.1} s",
                path.display(),
                p.executed_s,
                p.floor_s
            );
            bad.extend(disagreements(&path.display().to_string(), &p, &cases));
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
