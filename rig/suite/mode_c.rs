//! The `mode_c` suite: the optical port's IEC 62056-21 protocol mode C, which the OMNIPOWER sheets
//! offer as Z18 "Mode A and C" (002_2f062e5fcd422fbd.txt, 003_d5a047765b630495.txt).
//!
//! Each case takes its own mode C exchange ([`super::exchange_in`] with [`ReadMode::C`]): the
//! request at the initial rate, the identification whose fifth character announces the rate,
//! `ACK 0 Z 0` CR LF from the rig at the reaction time after it, both sides switching, and the
//! data message at the new rate. The switch is timed from the end of the acknowledgement's last
//! stop bit to the start bit of the data message's first character (edges in virtual time on
//! the software meter). A meter whose profile or port has no mode C skips every case with the
//! reason. Pure judgement; the only I/O is through the target.

use super::{Ctx, Judgement, Measurement, Readout, Shared};
use crate::iec62056::exchange::{AnswerEnd, Conformance, ReadMode};
use crate::iec62056::{AnnouncedMode, Request};
use crate::meter::config::MeterPort;
use crate::meter::profile::{Clause, Profile};
use crate::target::TargetError;

/// The clause of every `mode_c` case: the profile's mode C clause, or the sheet that gives the
/// meter mode A only.
pub fn clause(p: &Profile) -> Clause {
    match p.mode_c {
        Some(m) => m.clause,
        None => Clause {
            source: p.sources[0],
            section: "no optical mode C in the sheets: the module interface speaks mode A (IEC61107 data request, 300 baud)",
        },
    }
}

/// Why the meter has no mode C to test, if it has none.
fn no_mode_c(ctx: &Ctx<'_>) -> Option<String> {
    match (ctx.spec.profile.mode_c, ctx.spec.port) {
        (None, _) => Some(format!(
            "the {} has no optical mode C in its sheets (mode A only)",
            ctx.spec.profile.name
        )),
        (Some(_), MeterPort::Module) => Some(format!(
            "the meter file reads the {}'s module interface (mode A); set port = \"optical\" to test mode C (Z18)",
            ctx.spec.profile.name
        )),
        (Some(_), MeterPort::Optical) => None,
    }
}

/// The skip of a `readout` case that judges the module interface's mode A answer (004: a space
/// as the fifth character, 300 baud throughout) on an optical port that answers in mode C; the
/// `mode_c` suite judges those there. `None` on the module interface.
pub fn module_only(ctx: &Ctx<'_>, clause: Clause) -> Option<Judgement> {
    ctx.spec.mode_c_baud().map(|b| {
        Judgement::skip(
            clause,
            format!(
                "the optical port answers in mode C (baud character and {b} baud after the switch): 004's module-interface rule does not apply; the mode_c suite judges them"
            ),
        )
    })
}

/// One mode C exchange, or the skip that replaces it.
fn mode_c_readout(
    ctx: &mut Ctx<'_>,
    clause: Clause,
) -> Result<Result<Readout, Judgement>, TargetError> {
    if let Some(why) = no_mode_c(ctx) {
        return Ok(Err(Judgement::skip(clause, why)));
    }
    let r = ctx.readout_in(&Request::general(), ReadMode::C)?;
    if let AnswerEnd::NoAnswer { .. } = r.end {
        let a = r.assess(&ctx.answer_rules());
        return Ok(Err(Judgement::from_problems(
            clause,
            vec![a.reason().to_string()],
            vec![],
            "",
        )));
    }
    Ok(Ok(r))
}

/// `mode_c.identification`: the fifth character announces mode C, with a rate of the table
/// above the initial one.
pub(crate) fn identification(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let r = match mode_c_readout(ctx, clause)? {
        Ok(r) => r,
        Err(j) => return Ok(j),
    };
    let Some(id) = r.tolerant.identification.as_ref() else {
        return Ok(Judgement::from_problems(
            clause,
            vec!["no complete identification line".into()],
            vec![],
            "",
        ));
    };
    let mode = id.announced_mode();
    let (problems, ms) = match mode {
        AnnouncedMode::C { baud } if baud > ctx.spec.baud => (
            vec![],
            vec![Measurement::info(
                "announced_baud",
                f64::from(baud),
                "baud",
                crate::time::TimeSource::Register,
                0.0,
            )],
        ),
        AnnouncedMode::C { baud } => (
            vec![format!(
                "baud character {:?} announces mode C at {baud} baud, no faster than the initial {} baud",
                id.mode_char, ctx.spec.baud
            )],
            vec![],
        ),
        m => (
            vec![format!(
                "baud character {:?} announces {m}; the optical port offers mode C (expected '1'-'6', IEC 62056-21 §6.3.14)",
                id.mode_char
            )],
            vec![],
        ),
    };
    let msg = format!("baud character {:?} announces {mode}", id.mode_char);
    Ok(Judgement::from_problems(clause, problems, ms, msg))
}

/// `mode_c.switch`: the data message starts at the new rate within the reaction time after the
/// acknowledgement (200–1500 ms; 20 ms with a lower-case third letter).
pub(crate) fn switch(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let r = match mode_c_readout(ctx, clause)? {
        Ok(r) => r,
        Err(j) => return Ok(j),
    };
    let Some(sw) = r.switch.clone() else {
        return Ok(Judgement::from_problems(
            clause,
            vec![r
                .mode_finding()
                .unwrap_or_else(|| "the rig sent no acknowledgement".into())],
            vec![],
            "",
        ));
    };
    let Some(ns) = sw.data_after_ack_ns() else {
        return Ok(Judgement::from_problems(clause, sw.problems(), vec![], ""));
    };
    let m = Measurement::new(
        "data_after_ack",
        ns as f64 / 1e6,
        "ms",
        Some(sw.min.as_secs_f64() * 1e3),
        Some(sw.max.as_secs_f64() * 1e3),
        r.response_source(),
        r.response_uncertainty_ms(),
    );
    let msg = format!(
        "the data message's first start bit came {} ms after the acknowledgement's last stop bit, at {} baud (limit {})",
        m.value_text(),
        sw.baud,
        m.limit_text()
    );
    Ok(Judgement::from_problems(clause, vec![], vec![m], msg))
}

/// `mode_c.readout`: the data message read at the new rate is whole and conforms (framing, STX to
/// BCC, the profile's BCC rule).
pub(crate) fn readout(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let r = match mode_c_readout(ctx, clause)? {
        Ok(r) => r,
        Err(j) => return Ok(j),
    };
    let a = r.assess(&ctx.answer_rules());
    let mut problems = Vec::new();
    if r.switch.is_none() {
        problems.extend(r.mode_finding());
    }
    if a.conformance != Conformance::Conforms {
        problems.extend(a.problems.iter().cloned());
    }
    let sets = r.tolerant.data_sets.len();
    let baud = r.switch.as_ref().map_or(ctx.spec.baud, |s| s.baud);
    let m = Measurement::info(
        "data_sets",
        sets as f64,
        "data sets",
        crate::time::TimeSource::Register,
        0.0,
    );
    let msg =
        format!("{sets} data sets read at {baud} baud after the switch, BCC and framing correct");
    let mut j = Judgement::from_problems(clause, problems, vec![m], msg);
    j.details.extend(r.mode_finding());
    Ok(j)
}
