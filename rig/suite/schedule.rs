//! Wait sharing: which queued case may run inside another case's passive wait.
//!
//! A case that drives no input and watches no output (its observation is the data line and the
//! meter's own clock: the hour counter's window, the month's logging date, the monotonic wait)
//! lets the session run other queued cases while it waits, when they fit in what is left of the
//! wait; it then waits the remainder. The engine ([`super::session`]) and the planner
//! ([`super::plan`]) take the same decision from this module, so `rig run --plan` predicts the
//! schedule the run executes. Pure: no I/O, no clock reads.
//!
//! What may not share (so every verdict stays what it is when the cases run one after another):
//! - a case that drives the meter's inputs (tariff, pulse in, max reset) gets the meter to
//!   itself: it neither runs inside another case's wait nor lends its own;
//! - a case that judges every exchange of the run (`readout.every_exchange`) runs last, alone;
//! - a case that watches the outputs lends no wait to another that watches them (the edges are
//!   taken off one queue per port: a nested case would take the outer one's pulses);
//! - a nested case must end before the outer one's next step, with a margin
//!   ([`margin_s`]), so the outer case's readouts fall where it placed them (a minute before a
//!   logging midnight must stay before it);
//! - one level only: a case running inside a wait lends none of its own.

use super::plan::Uses;

/// One queued case as the scheduler sees it at the moment of a wait.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    /// What it uses of the meter.
    pub uses: Uses,
    /// Its expected meter time if it starts now, seconds (its plan, [`super::plan::Wait`]).
    pub seconds: f64,
}

/// The margin a nested case keeps before the end of the wait it runs in, seconds: a tenth of its
/// expected time plus one readout (`readout_s`) and 10 s, so an answer slower than planned or a
/// plan a few percent short still ends before the outer case's next step.
pub fn margin_s(expected_s: f64, readout_s: f64) -> f64 {
    0.1 * expected_s + readout_s + 10.0
}

/// Whether a case using `host` may lend its wait to others.
pub fn lends(host: Uses) -> bool {
    !host.drives_inputs && !host.judges_run
}

/// Whether `c` may run inside a wait of a case using `host` from `now_s` until `until_s`
/// (seconds on the target's clock): it drives no input, does not judge the whole run, does not
/// watch the outputs the host watches, and ends with its margin before `until_s`.
pub fn fits(host: Uses, c: &Candidate, now_s: f64, until_s: f64, readout_s: f64) -> bool {
    let outputs_taken = host.watches_outputs && c.uses.watches_outputs;
    let may = lends(host) && !c.uses.drives_inputs && !c.uses.judges_run;
    may && !outputs_taken
        && c.seconds.is_finite()
        && now_s + c.seconds + margin_s(c.seconds, readout_s) <= until_s
}

/// The first of `queue` (in run order) that fits in the wait of a case using `host` from `now_s`
/// until `until_s`, by its index; `None` when none does.
pub fn pick(
    host: Uses,
    queue: &[Candidate],
    now_s: f64,
    until_s: f64,
    readout_s: f64,
) -> Option<usize> {
    queue
        .iter()
        .position(|c| fits(host, c, now_s, until_s, readout_s))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn c(uses: Uses, seconds: f64) -> Candidate {
        Candidate { uses, seconds }
    }

    #[test]
    fn cases_that_drive_inputs_neither_nest_nor_lend_their_wait() {
        let q = [c(Uses::INPUTS, 10.0)];
        assert_eq!(pick(Uses::LINE, &q, 0.0, 3600.0, 12.0), None);
        let q = [c(Uses::LINE, 10.0)];
        assert_eq!(pick(Uses::INPUTS, &q, 0.0, 3600.0, 12.0), None);
    }

    #[test]
    fn the_case_that_judges_the_whole_run_stays_last() {
        let q = [c(Uses::RUN, 0.0), c(Uses::LINE, 0.0)];
        assert_eq!(pick(Uses::LINE, &q, 0.0, 3600.0, 12.0), Some(1));
        assert_eq!(pick(Uses::RUN, &q[1..], 0.0, 3600.0, 12.0), None);
    }

    #[test]
    fn outputs_are_watched_by_one_case_at_a_time() {
        let q = [c(Uses::OUTPUTS, 100.0)];
        assert_eq!(pick(Uses::OUTPUTS, &q, 0.0, 3600.0, 12.0), None);
        assert_eq!(pick(Uses::LINE, &q, 0.0, 3600.0, 12.0), Some(0));
    }

    #[test]
    fn a_case_runs_inside_a_wait_only_when_it_ends_before_it_with_its_margin() {
        // 1000 s + 100 + 12 + 10 = 1122 s
        let q = [c(Uses::LINE, 1000.0)];
        assert_eq!(pick(Uses::LINE, &q, 0.0, 1122.0, 12.0), Some(0));
        assert_eq!(pick(Uses::LINE, &q, 0.0, 1121.9, 12.0), None);
        assert_eq!(pick(Uses::LINE, &q, 100.0, 1122.0, 12.0), None);
    }

    #[test]
    fn the_first_that_fits_in_run_order_goes_first() {
        let q = [
            c(Uses::LINE, 86_400.0),
            c(Uses::INPUTS, 60.0),
            c(Uses::OUTPUTS, 600.0),
            c(Uses::LINE, 60.0),
        ];
        assert_eq!(pick(Uses::LINE, &q, 0.0, 3600.0, 12.0), Some(2));
        assert_eq!(pick(Uses::LINE, &q, 0.0, 500.0, 12.0), Some(3));
        assert_eq!(pick(Uses::LINE, &q, 0.0, 50.0, 12.0), None);
    }
}
