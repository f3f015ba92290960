//! The `readout` suite: the IEC 61107 mode A answer judged against 004_d1f80f13afa7763c.txt.
//!
//! One readout is taken and shared by the cases that judge a single answer (response time,
//! identification, framing, structure, BCC, registers, tariff sum); `monotonic` and `recovery`
//! take their own. Pure judgement over [`Readout`]s; the only I/O is through the target.

use super::{
    fmt_num, Ctx, ExchangeNote, Judgement, Measurement, Readout, Shared, Verdict, INTER_CHAR_LIMIT,
};
use crate::iec62056::decoder::{FindingKind, Severity};
use crate::iec62056::exchange::AnswerEnd;
use crate::iec62056::{parity, ReactionClass, Request};
use crate::meter::profile::Clause;
use crate::meter::sheet;
use crate::target::TargetError;
use crate::time::TimeSource;

fn first(ctx: &mut Ctx<'_>, shared: &mut Shared) -> Result<Readout, TargetError> {
    if shared.first.is_none() {
        shared.first = Some(ctx.readout());
        ctx.first_readout = shared.first.clone();
    }
    let first = shared.first.clone().expect("set above");
    if let Ok(r) = &first {
        ctx.note_cut(r);
    }
    first
}

/// The exchange's own words for a missing answer (one definition for every path).
fn no_answer(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
    let a = r.assess(&ctx.answer_rules());
    Judgement::from_problems(clause, vec![a.reason().to_string()], vec![], "")
}

/// Wraps a judgement of the run's first answer as a case: one readout serves them all, and a
/// missing answer is judged by the exchange's own words.
/// `seen`: the case judges only the characters it saw (the start of the answer, its framing), so
/// an answer a rig-side limit cut still decides it; the others need the whole answer.
macro_rules! on_first_answer {
    ($(#[$doc:meta] $name:ident => $judge:ident($($ctx:ident)?) $($seen:ident)?;)*) => {$(
        #[$doc]
        pub(crate) fn $name(
            ctx: &mut Ctx<'_>,
            shared: &mut Shared,
            clause: Clause,
        ) -> Result<Judgement, TargetError> {
            let r = first(ctx, shared)?;
            $(on_first_answer!(@$seen ctx);)?
            if let AnswerEnd::NoAnswer { .. } = r.end {
                return Ok(no_answer(ctx, &r, clause));
            }
            Ok($judge($(on_first_answer!(@ctx $ctx, ctx),)? &r, clause))
        }
    )*};
    (@ctx $x:ident, $ctx:ident) => { $ctx };
    (@seen $ctx:ident) => { $ctx.cut = None };
}

on_first_answer! {
    /// `readout.response_time`.
    response_time => judge_response_time(ctx) seen;
    /// `readout.identification`.
    identification => judge_identification(ctx) seen;
    /// `readout.framing`.
    framing => judge_framing(ctx) seen;
    /// `readout.structure`.
    structure => judge_structure();
    /// `readout.bcc`.
    bcc => judge_bcc();
    /// `readout.registers`.
    registers => judge_registers();
    /// `readout.tariff_sum`.
    tariff_sum => judge_tariff_sum();
}

fn response_measurement(ctx: &Ctx<'_>, name: &str, r: &Readout) -> Option<Measurement> {
    let ns = r.response_ns()?;
    let p = ctx.spec.profile;
    // each end carries its own source and uncertainty: a request end the backend took from the
    // serial contract (an edge tap that missed bytes) makes the measurement serial
    Some(Measurement::new(
        name,
        ns as f64 / 1e6,
        "ms",
        Some(p.response_min_ms),
        Some(p.response_max_ms),
        r.response_source(),
        r.response_uncertainty_ms(),
    ))
}

fn judge_response_time(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
    let Some(m) = response_measurement(ctx, "response_time", r) else {
        return no_answer(ctx, r, clause);
    };
    let msg = format!(
        "the identification's '/' started {} ms after the request's last stop bit (limit {}, source {})",
        m.value_text(),
        m.limit_text(),
        m.source
    );
    let mut j = Judgement::from_problems(clause, vec![], vec![m.clone()], msg);
    j.details.extend(line_findings(r));
    j
}

/// Echo and noise before the identification: facts about the line, reported, never the start
/// of the answer.
fn line_findings(r: &Readout) -> Vec<String> {
    r.strict
        .findings
        .iter()
        .filter(|f| matches!(f.kind, FindingKind::Echo | FindingKind::Noise))
        .map(|f| format!("offset {}: {}", f.offset, f.message))
        .collect()
}

fn judge_identification(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
    let mut problems = Vec::new();
    let mut details = Vec::new();
    for f in r.strict.findings.iter().filter(|f| {
        matches!(
            f.kind,
            FindingKind::Identification | FindingKind::LowerCaseThird
        )
    }) {
        match f.severity {
            Severity::Violation => problems.push(format!("offset {}: {}", f.offset, f.message)),
            Severity::Info => details.push(format!("offset {}: {}", f.offset, f.message)),
        }
    }
    match &r.tolerant.identification {
        None => problems.push("no identification line".into()),
        Some(id) => {
            if id.manufacturer != crate::meter::sheet::MANUFACTURER {
                problems.push(format!(
                    "manufacturer {:?}, 004 shows \"KAM\"",
                    id.manufacturer
                ));
            }
            if id.mode_char != ' ' {
                problems.push(format!(
                    "fifth character {:?}, 004 shows a space (mode A, no baud switch)",
                    id.mode_char
                ));
            }
            if ctx.opts.check_type_number && id.text != ctx.spec.type_number {
                problems.push(format!(
                    "type number {:?}, the meter file says {:?}",
                    id.text, ctx.spec.type_number
                ));
            }
            if id.reaction_class() == ReactionClass::Standard200ms {
                details.push(format!(
                    "fact: the manufacturer's third letter {:?} is upper case, so IEC 62056-21 would expect an answer after 200 ms; the profile's window {}–{} ms applies",
                    id.manufacturer.chars().nth(2).unwrap_or(' '),
                    ctx.spec.profile.response_min_ms,
                    ctx.spec.profile.response_max_ms
                ));
            }
        }
    }
    let ok = match &r.tolerant.identification {
        Some(id) => format!("/{}{}{}", id.manufacturer, id.mode_char, id.text),
        None => String::new(),
    };
    let mut j = Judgement::from_problems(clause, problems, vec![], ok);
    j.details.extend(details);
    j
}

fn judge_framing(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
    let mut problems = Vec::new();
    let (parity_errors, stop_errors) = r.framing_errors();
    for &i in &parity_errors {
        let c = r.chars[i];
        problems.push(format!(
            "character {i} (0x{:02X} {:?}): parity bit wrong (even parity expected)",
            c.byte & 0x7F,
            (c.byte & 0x7F) as char
        ));
    }
    for &i in &stop_errors {
        problems.push(format!(
            "character {i} (0x{:02X}): stop bit low (framing error)",
            r.chars[i].byte & 0x7F
        ));
    }
    let u = r.gap_uncertainty_ms();
    let src = ctx.caps.data_timing;
    // an answer that stopped before its BCC: the silence after its last character is a gap too
    let silence = match r.end {
        AnswerEnd::Silence { after_ms } => {
            problems.push(format!(
                "silent for more than {} ms after character {} before the BCC",
                INTER_CHAR_LIMIT.as_millis(),
                r.chars.len().saturating_sub(1)
            ));
            after_ms
        }
        _ => 0.0,
    };
    let count = |name: &str, n: usize| {
        Measurement::new(name, n as f64, "characters", None, Some(0.0), src, 0.0)
    };
    let ms = vec![
        count("parity_errors", parity_errors.len()),
        count("stop_bit_errors", stop_errors.len()),
        Measurement::new(
            "max_inter_char_gap",
            (r.max_gap_ns() as f64 / 1e6).max(silence),
            "ms",
            None,
            Some(INTER_CHAR_LIMIT.as_millis() as f64),
            src,
            u,
        ),
        Measurement::info(
            "characters",
            r.answer().len() as f64,
            "characters",
            src,
            0.0,
        ),
    ];
    let n = r.answer().len();
    // a rate other than the profile's (a meter file's `baud`, `--baud`) is said, not hidden
    let base = if ctx.spec.baud == ctx.spec.profile.baud {
        format!("{} baud", ctx.spec.baud)
    } else {
        format!(
            "{} baud (not the profile's {} baud: the meter file or --baud set it)",
            ctx.spec.baud, ctx.spec.profile.baud
        )
    };
    let rate = match &r.switch {
        Some(sw) => format!("{base}, then {} after the mode C switch", sw.baud),
        None => base,
    };
    let ok = if ctx.caps.parity_checked {
        format!("{n} characters, 7E1 at {rate}, every parity and stop bit correct")
    } else {
        format!("{n} characters; parity unchecked (the UART's own 7E1 does not report it); stop bits correct")
    };
    Judgement::from_problems(clause, problems, ms, ok)
}

fn judge_structure(r: &Readout, clause: Clause) -> Judgement {
    let problems: Vec<String> = r
        .decoder_violations()
        .filter(|f| {
            f.kind.category() == "structure" && f.kind != FindingKind::Identification
                || f.kind == FindingKind::MissingBcc
        })
        .map(|f| format!("offset {}: {}", f.offset, f.message))
        .collect();
    let mut j = Judgement::from_problems(
        clause,
        problems,
        vec![],
        "identification, STX, CR LF line ends, '!', ETX and BCC in place",
    );
    match r.end {
        AnswerEnd::Silence { after_ms } if j.verdict == Verdict::Pass => {
            j.verdict = Verdict::Fail;
            j.message = format!(
                "the answer stopped after {} characters: silent for {} ms before its BCC",
                r.answer().len(),
                fmt_num(after_ms)
            );
        }
        AnswerEnd::RigLimit { limit } if j.verdict == Verdict::Pass => {
            j.verdict = Verdict::Inconclusive;
            j.message =
                format!("undecided: {limit}; the meter was still sending within its limits");
        }
        _ => {}
    }
    j
}

fn judge_bcc(r: &Readout, clause: Clause) -> Judgement {
    let b = &r.strict.bcc;
    let show = |x: u8| format!("0x{x:02X} {:?}", x as char);
    match b.received {
        None => Judgement::from_problems(clause, vec!["no BCC received".into()], vec![], ""),
        Some(rx) if b.ok => Judgement::from_problems(
            clause,
            vec![],
            vec![],
            format!("BCC {} matches the {} rule", show(rx), b.rule),
        ),
        Some(rx) => {
            let other = b.rule.other();
            let other_val = if other == crate::iec62056::BccRule::Xor {
                b.xor
            } else {
                b.sum
            };
            let verdict_other = if other_val == rx {
                format!(
                    "it matches the {other} rule instead: the meter computes its BCC by {other}"
                )
            } else {
                format!(
                    "the {other} rule gives {} and does not match either",
                    show(other_val)
                )
            };
            let expected = if b.rule == crate::iec62056::BccRule::Xor {
                b.xor
            } else {
                b.sum
            };
            Judgement::from_problems(
                clause,
                vec![format!(
                    "BCC {} received, the {} rule gives {}; {verdict_other}",
                    show(rx),
                    b.rule,
                    show(expected)
                )],
                vec![],
                "",
            )
        }
    }
}

fn judge_registers(r: &Readout, clause: Clause) -> Judgement {
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let got = &r.tolerant.data_sets;
    let mut gi = 0usize;
    // judged by the judge's own transcription of 004 (`meter::sheet`), never by the table the
    // software meter formats its answer from
    for (ei, spec) in sheet::DATA_SETS.iter().enumerate() {
        match got.iter().position(|d| d.address == spec.address) {
            None => problems.push(format!("{} (004 line {}) missing", spec.address, spec.line)),
            Some(pos) => {
                if pos != gi {
                    problems.push(format!(
                        "{} is data set {} of the answer, 004 puts it at {}",
                        spec.address,
                        pos + 1,
                        ei + 1
                    ));
                }
                gi = pos + 1;
                if let Err(e) = spec.check(&got[pos]) {
                    let alias = spec.address == "3.8.0"
                        && got[pos].values.first().and_then(|v| v.unit.as_deref()) == Some("kWh");
                    if alias {
                        details.push("3.8.0 sent with unit kWh: 004's template says kWh, its example kvarh (accepted)".into());
                    } else {
                        problems.push(e.to_string());
                    }
                }
            }
        }
    }
    for d in got {
        if sheet::data_set(&d.address).is_none() {
            problems.push(format!(
                "{} is not one of the 17 data sets of 004",
                d.address
            ));
        }
    }
    let ms = vec![Measurement::new(
        "data_sets",
        got.len() as f64,
        "data sets",
        Some(17.0),
        Some(17.0),
        TimeSource::Register,
        0.0,
    )];
    let mut j = Judgement::from_problems(
        clause,
        problems,
        ms,
        "all 17 data sets in order with the digits, decimals and units of 004",
    );
    j.details.extend(details);
    j
}

fn judge_tariff_sum(r: &Readout, clause: Clause) -> Judgement {
    let n = r.numbers();
    let addrs = ["1.8.0", "1.8.1", "1.8.2", "1.8.3", "1.8.4"];
    let missing: Vec<&str> = addrs
        .iter()
        .copied()
        .filter(|a| !n.contains_key(*a))
        .collect();
    if !missing.is_empty() {
        return Judgement::from_problems(
            clause,
            vec![format!(
                "cannot compare: {} missing or not numeric",
                missing.join(", ")
            )],
            vec![],
            "",
        );
    }
    let total = n["1.8.0"];
    let sum: f64 = addrs[1..].iter().map(|a| n[*a]).sum();
    // each register shows whole kWh, truncated, modulo 10^7 (7 digits: 9999999 rolls over to
    // 0000000): 1.8.0 − Σ, taken modulo the registers' range, lies in [0, tariffs − 1]
    let diff = super::pins::register_step("1.8.0", sum, total);
    let mut ms = vec![Measurement::new(
        "total_minus_tariff_sum",
        diff,
        "kWh",
        Some(0.0),
        Some(3.0),
        TimeSource::Register,
        0.0,
    )];
    let rolled = total - sum != diff;
    if rolled {
        ms.push(Measurement::info(
            "rollover",
            1.0,
            "rollovers",
            TimeSource::Register,
            0.0,
        ));
    }
    let msg = format!(
        "1.8.0 = {} kWh, 1.8.1–1.8.4 sum to {} kWh{} (whole-kWh truncation allows 0–3)",
        fmt_num(total),
        fmt_num(sum),
        if rolled {
            " (compared modulo 10^7: a register rolled over)"
        } else {
            ""
        }
    );
    Judgement::from_measurements(clause, ms, msg)
}

/// `readout.monotonic`: three readouts, counters never go back.
pub(crate) fn monotonic(
    ctx: &mut Ctx<'_>,
    shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let a = first(ctx, shared)?;
    let b = ctx.readout()?;
    // a passive wait, lent to other cases that fit (its plan declares it)
    let until = ctx.target.now()? + ctx.opts.monotonic_wait;
    ctx.share_wait(until)?;
    ctx.wait_until(until)?;
    let c = ctx.readout()?;
    let counters = [
        "1.8.0", "1.8.1", "1.8.2", "1.8.3", "1.8.4", "3.8.0", "96.8.0",
    ];
    let (na, nb, nc) = (a.numbers(), b.numbers(), c.numbers());
    let mut ms = Vec::new();
    let mut problems = Vec::new();
    let mut notes: Vec<String> = Vec::new();
    for addr in counters {
        let vals: Vec<Option<f64>> = [&na, &nb, &nc]
            .iter()
            .map(|m| m.get(addr).copied())
            .collect();
        if vals.iter().any(|v| v.is_none()) {
            problems.push(format!("{addr} missing from a readout"));
            continue;
        }
        let v: Vec<f64> = vals.into_iter().flatten().collect();
        // counters compare modulo their digit count (004 layout): 9999999 → 0000000 is a step
        // forward, reported as information
        let d1 = super::pins::register_step(addr, v[0], v[1]);
        let d2 = super::pins::register_step(addr, v[1], v[2]);
        let step = d1.min(d2);
        // in the register's own unit (kWh, kvarh, h), from 004's layout
        let unit = crate::meter::readout::spec(addr)
            .and_then(|s| s.unit)
            .unwrap_or("register units");
        ms.push(Measurement::new(
            &format!("{addr}.min_step"),
            step,
            unit,
            Some(0.0),
            None,
            TimeSource::Register,
            0.0,
        ));
        let rollovers = usize::from(super::pins::rolled_over(addr, v[0], v[1]))
            + usize::from(super::pins::rolled_over(addr, v[1], v[2]));
        if rollovers > 0 {
            ms.push(Measurement::info(
                &format!("{addr}.rollover"),
                rollovers as f64,
                "rollovers",
                TimeSource::Register,
                0.0,
            ));
            notes.push(format!("{addr} rolled over through 0"));
        }
        if step < 0.0 {
            problems.push(format!(
                "{addr} went back: {} → {} → {}",
                fmt_num(v[0]),
                fmt_num(v[1]),
                fmt_num(v[2])
            ));
        }
    }
    let span = c.request_end.diff_ns(a.request_end) as f64 / 1e9;
    Ok(Judgement::from_problems(
        clause,
        problems,
        ms,
        format!(
            "three readouts over {} s: no counter went back{}",
            fmt_num(span),
            if notes.is_empty() {
                String::new()
            } else {
                format!(" ({})", notes.join(", "))
            }
        ),
    ))
}

/// `readout.recovery`: silent for a foreign address, answers after it and after noise.
pub(crate) fn recovery(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let mut problems = Vec::new();
    let mut ms = Vec::new();
    // (a) a request for another address: the meter must stay silent, then answer a valid request
    let other = if ctx.spec.address == "99999998" {
        "99999997"
    } else {
        "99999998"
    };
    // one exchange, so an echo of the request is not taken for an answer
    let foreign = ctx.readout_with(&Request::addressed(other))?;
    ctx.log.pop(); // silence is the right answer here: not an exchange to judge
    if let Some(i) = foreign.identification_index() {
        problems.push(format!(
            "answered a request for address {other} ({} characters from its '/'); only the addressed meter may answer",
            foreign.chars.len() - i
        ));
    }
    let r = ctx.readout()?;
    match answer_measurement("response_after_foreign_address", &r) {
        Some(m) => ms.push(m),
        None => {
            problems.push("no answer to a valid request after a request for another address".into())
        }
    }
    // (b) noise on the line, then a valid request straight after it
    ctx.target.discard_input()?;
    let noise: Vec<u8> = vec![
        0x00,
        0xFF,
        0x7F,
        parity::add_even(b'x'),
        0x55,
        parity::add_even(b'?'),
        parity::add_even(b'!'),
        parity::add_even(b'\r'),
        parity::add_even(b'\n'),
    ];
    ctx.target.send(&noise)?;
    let r = ctx.readout()?;
    match answer_measurement("response_after_noise", &r) {
        Some(m) => ms.push(m),
        None => problems.push("no answer to a valid request sent right after noise".into()),
    }
    Ok(Judgement::from_problems(clause, problems, ms, "silent for a foreign address; answered the next valid request after it and after noise (the response window is readout.response_time's and readout.every_exchange's to judge)"))
}

/// The response time of an answer `readout.recovery` needs only to exist: recorded, not judged
/// against the window, which `readout.response_time` and `readout.every_exchange` already judge
/// (a merely slow meter fails those, not recovery a second time).
fn answer_measurement(name: &str, r: &Readout) -> Option<Measurement> {
    let ns = r.response_ns()?;
    Some(Measurement::info(
        name,
        ns as f64 / 1e6,
        "ms",
        r.response_source(),
        r.response_uncertainty_ms(),
    ))
}

/// The bit-rate tolerance the rig holds a meter's transmitter to, percent either way. 004 gives
/// 300 baud and no tolerance; ±2 % is half of the sampling margin of a 10-bit frame (a receiver
/// sampling mid-bit tolerates about ±5 % between both ends), the usual budget for one end.
pub const BAUD_TOLERANCE_PCT: f64 = 2.0;

/// Median of `v` (sorted in place); `None` when empty.
fn median(v: &mut [f64]) -> Option<f64> {
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied()
}

/// `readout.character_timing`: the meter's bit rate, from the edges inside every answer
/// character, and its stop bits, from the spacing of characters sent back to back (004: 300
/// baud, 1 stop bit). Needs edge timestamps: over a serial port character times are inferred
/// from the line rate itself. Cannot see: a second stop bit when every character is followed
/// by a pause (the idle line looks the same), or a pause of exactly one bit after every
/// character (it looks like a second stop bit, and is judged as one).
pub(crate) fn character_timing(
    ctx: &mut Ctx<'_>,
    shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let r = first(ctx, shared)?;
    // judged on the characters seen: a cut answer still decides it
    ctx.cut = None;
    let mut bits: Vec<f64> = r
        .answer()
        .iter()
        .filter_map(|c| c.bit_ns)
        .map(|b| b as f64)
        .collect();
    let Some(bit) = median(&mut bits) else {
        return Ok(Judgement::skip(
            clause,
            format!(
                "{} gives no edge times inside characters (serial-only timing): bit rate and stop bits need edge timestamps (--target gpio:WIRING or pi:WIRING, or the software meter)",
                ctx.target.describe()
            ),
        ));
    };
    let src = ctx.caps.data_timing;
    let nominal = 1e9 / ctx.spec.baud as f64;
    // the edge sits k ≤ 9 bits after the start edge; both carry the backend's uncertainty
    let u_pct = 2.0 * ctx.caps.data_uncertainty_ns as f64 / (9.0 * nominal) * 100.0;
    let err = (nominal / bit - 1.0) * 100.0;
    let tol = BAUD_TOLERANCE_PCT;
    let mut ms = vec![Measurement::new(
        "baud_error",
        err,
        "%",
        Some(-tol),
        Some(tol),
        src,
        u_pct,
    )];
    // frames sent back to back: start-to-start is 9 + stop bits of the sender's bits
    let mut spacing: Vec<f64> = r
        .answer()
        .windows(2)
        .map(|w| w[1].start.diff_ns(w[0].start) as f64 / bit - 9.0)
        .filter(|s| *s < 3.0)
        .collect();
    let mut details = Vec::new();
    match median(&mut spacing) {
        Some(s) if (s - 2.0).abs() <= 0.05 => ms.push(Measurement::new(
            "stop_bits", 2.0, "bits", Some(1.0), Some(1.0), src, 0.0,
        )),
        // one stop bit, then a pause of s − 1 bits (allowed); less than one is a short stop bit
        Some(s) => ms.push(Measurement::new(
            "stop_bits",
            if s >= 0.95 { 1.0 } else { s },
            "bits",
            Some(1.0),
            Some(1.0),
            src,
            0.0,
        )),
        None => details.push(
            "stop bits not observable: a pause follows every character, and a second stop bit looks like the idle line".into(),
        ),
    }
    let msg = format!(
        "{} characters: the meter's bit is {} ns ({} baud nominal: {} ns)",
        bits.len(),
        fmt_num(bit),
        ctx.spec.baud,
        fmt_num(nominal)
    );
    let mut j = Judgement::from_measurements(clause, ms, msg);
    j.details = details;
    Ok(j)
}

/// `readout.every_exchange`: every exchange of the run kept the response window and framing,
/// not only the first (004 Note 1 promises it for every request). Takes readouts of its own
/// until the run has at least three.
pub(crate) fn every_exchange(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    while ctx.log.len() < 3 {
        ctx.readout()?;
    }
    let src = ctx.caps.data_timing;
    let mut problems = Vec::new();
    let mut undecided = Vec::new();
    for (i, n) in ctx.log.iter().enumerate() {
        use crate::iec62056::exchange::Conformance;
        let what = || {
            format!(
                "exchange {} (request ending at {}): {}",
                i + 1,
                n.request_end,
                n.assessment.problems.join("; ")
            )
        };
        match n.assessment.conformance {
            Conformance::Conforms => {}
            Conformance::Violates => problems.push(what()),
            Conformance::Undecided => undecided.push(what()),
        }
    }
    // each extreme carries the source and uncertainty of its own exchange (a request end that
    // fell back to serial timing makes that one serial)
    let timed: Vec<(f64, &ExchangeNote)> = ctx
        .log
        .iter()
        .filter_map(|n| n.assessment.response_ms.map(|t| (t, n)))
        .collect();
    let p = ctx.spec.profile;
    let mut ms = vec![
        Measurement::info("exchanges", ctx.log.len() as f64, "exchanges", src, 0.0),
        Measurement::new(
            "nonconforming",
            problems.len() as f64,
            "exchanges",
            None,
            Some(0.0),
            src,
            0.0,
        ),
    ];
    let lo = timed.iter().min_by(|a, b| a.0.total_cmp(&b.0));
    let hi = timed.iter().max_by(|a, b| a.0.total_cmp(&b.0));
    for (name, extreme) in [("min_response_time", lo), ("max_response_time", hi)] {
        if let Some(&(t, n)) = extreme {
            ms.push(Measurement::new(
                name,
                t,
                "ms",
                Some(p.response_min_ms),
                Some(p.response_max_ms),
                n.response_source,
                n.response_uncertainty_ms,
            ));
        }
    }
    let ok = format!(
        "all {} exchanges of the run answered inside {}–{} ms with correct framing and a valid telegram",
        ctx.log.len(),
        fmt_num(p.response_min_ms),
        fmt_num(p.response_max_ms)
    );
    if let (true, Some(first)) = (problems.is_empty(), undecided.first()) {
        let mut j = Judgement::inconclusive(
            clause,
            format!(
                "{} of {} exchanges undecided (a rig-side limit cut them) and none breaks the window or the framing; {first}",
                undecided.len(),
                ctx.log.len()
            ),
        );
        j.measurements = ms;
        return Ok(j);
    }
    Ok(Judgement::from_problems(clause, problems, ms, ok))
}
