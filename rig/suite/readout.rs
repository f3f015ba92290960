//! The `readout` suite: the IEC 61107 mode A answer judged against 004_d1f80f13afa7763c.txt.
//!
//! One readout is taken and shared by the cases that judge a single answer (response time,
//! identification, framing, structure, BCC, registers, tariff sum); `monotonic` and `recovery`
//! take their own. Pure judgement over [`Readout`]s; the only I/O is through the target.

use std::time::Duration;

use super::{fmt_num, Ctx, Judgement, Measurement, Readout, Shared, Verdict, INTER_CHAR_LIMIT};
use crate::iec62056::decoder::{FindingKind, Severity};
use crate::iec62056::{parity, ReactionClass, Request};
use crate::meter::config::MeterSpec;
use crate::meter::profile::Clause;
use crate::meter::readout::COMBI_351;
use crate::target::{RecvEnd, TargetError};
use crate::time::TimeSource;
use crate::uart::RxChar;

/// The clause a case checks, from the meter's profile.
pub fn clause_for(id: &str, spec: &MeterSpec) -> Clause {
    let p = spec.profile;
    match id {
        "readout.response_time" | "readout.recovery" => p.response_clause,
        "readout.framing" => p.framing_clause,
        "readout.bcc" => p.bcc_clause,
        "readout.identification" | "readout.structure" | "readout.registers" => p.readout_clause,
        "readout.tariff_sum" | "tariff.table" => p.tariff_clause,
        "readout.monotonic" => p.registers_clause,
        "pulse_out.width" => p.pulse_width_clause,
        "pulse_out.pause" => p.pause_clause,
        "pulse_out.constant" => p.pulse_constant_clause,
        "pulse_in.count" | "max_reset.peak_reset" => p.io_clause,
        _ => p.readout_clause,
    }
}

fn first(ctx: &mut Ctx<'_>, shared: &mut Shared) -> Result<Readout, TargetError> {
    if shared.first.is_none() {
        shared.first = Some(ctx.readout());
    }
    shared.first.clone().expect("set above")
}

fn no_answer(ctx: &Ctx<'_>, clause: Clause) -> Judgement {
    Judgement::from_problems(
        clause,
        vec![format!(
            "no answer within {} ms of the request (limit {}–{} ms)",
            ctx.spec.profile.response_max_ms + 1000.0,
            ctx.spec.profile.response_min_ms,
            ctx.spec.profile.response_max_ms
        )],
        vec![],
        "",
    )
}

/// Runs one readout case.
pub fn run(ctx: &mut Ctx<'_>, shared: &mut Shared, id: &str) -> Result<Judgement, TargetError> {
    let clause = clause_for(id, ctx.spec);
    match id {
        "readout.monotonic" => return monotonic(ctx, shared, clause),
        "readout.recovery" => return recovery(ctx, clause),
        _ => {}
    }
    let r = first(ctx, shared)?;
    if r.chars.is_empty() {
        return Ok(no_answer(ctx, clause));
    }
    Ok(match id {
        "readout.response_time" => response_time(ctx, &r, clause),
        "readout.identification" => identification(ctx, &r, clause),
        "readout.framing" => framing(ctx, &r, clause),
        "readout.structure" => structure(&r, clause),
        "readout.bcc" => bcc(&r, clause),
        "readout.registers" => registers(&r, clause),
        "readout.tariff_sum" => tariff_sum(&r, clause),
        other => Judgement::error(clause, format!("unknown case {other}")),
    })
}

fn response_measurement(ctx: &Ctx<'_>, name: &str, r: &Readout) -> Option<Measurement> {
    let ns = r.response_ns()?;
    let p = ctx.spec.profile;
    // both ends of the interval carry the backend's uncertainty
    let u = 2.0 * ctx.caps.data_uncertainty_ns as f64 / 1e6;
    Some(Measurement::new(
        name,
        ns as f64 / 1e6,
        "ms",
        Some(p.response_min_ms),
        Some(p.response_max_ms),
        ctx.caps.data_timing,
        u,
    ))
}

fn response_time(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
    let Some(m) = response_measurement(ctx, "response_time", r) else {
        return no_answer(ctx, clause);
    };
    let msg = format!(
        "answer started {} ms after the request's last stop bit (limit {}, source {})",
        fmt_num(m.value),
        m.limit_text(),
        m.source
    );
    Judgement::from_problems(clause, vec![], vec![m.clone()], msg)
}

fn identification(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
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
            if id.manufacturer != "KAM" {
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

fn framing(ctx: &Ctx<'_>, r: &Readout, clause: Clause) -> Judgement {
    let mut problems = Vec::new();
    let mut parity_errors = 0usize;
    let mut stop_errors = 0usize;
    for (i, c) in r.chars.iter().enumerate() {
        if ctx.caps.parity_checked && !parity::is_even(c.byte) {
            parity_errors += 1;
            problems.push(format!(
                "character {i} (0x{:02X} {:?}): parity bit wrong (even parity expected)",
                c.byte & 0x7F,
                (c.byte & 0x7F) as char
            ));
        }
        if !c.stop_ok {
            stop_errors += 1;
            problems.push(format!(
                "character {i} (0x{:02X}): stop bit low (framing error)",
                c.byte & 0x7F
            ));
        }
    }
    let gap = r
        .chars
        .windows(2)
        .map(|w| w[1].start.diff_ns(w[0].end))
        .max()
        .unwrap_or(0)
        .max(0);
    let u = 2.0 * ctx.caps.data_uncertainty_ns as f64 / 1e6;
    let ms = vec![
        Measurement::new(
            "parity_errors",
            parity_errors as f64,
            "characters",
            None,
            Some(0.0),
            ctx.caps.data_timing,
            0.0,
        ),
        Measurement::new(
            "stop_bit_errors",
            stop_errors as f64,
            "characters",
            None,
            Some(0.0),
            ctx.caps.data_timing,
            0.0,
        ),
        Measurement::new(
            "max_inter_char_gap",
            gap as f64 / 1e6,
            "ms",
            None,
            Some(INTER_CHAR_LIMIT.as_millis() as f64),
            ctx.caps.data_timing,
            u,
        ),
        Measurement::info(
            "characters",
            r.chars.len() as f64,
            "characters",
            ctx.caps.data_timing,
            0.0,
        ),
    ];
    let mut ok = format!(
        "{} characters, 7E1 at {} baud, every parity and stop bit correct",
        r.chars.len(),
        ctx.spec.baud
    );
    if !ctx.caps.parity_checked {
        ok = format!("{} characters; parity unchecked (the UART's own 7E1 does not report it); stop bits correct", r.chars.len());
    }
    Judgement::from_problems(clause, problems, ms, ok)
}

fn structure(r: &Readout, clause: Clause) -> Judgement {
    let problems: Vec<String> = r
        .strict
        .findings
        .iter()
        .filter(|f| f.severity == Severity::Violation)
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
    if r.end != RecvEnd::Complete && j.verdict == Verdict::Pass {
        j.verdict = Verdict::Fail;
        j.message = format!("answer incomplete: receiving ended by {:?}", r.end);
    }
    j
}

fn bcc(r: &Readout, clause: Clause) -> Judgement {
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

fn registers(r: &Readout, clause: Clause) -> Judgement {
    let mut problems = Vec::new();
    let mut details = Vec::new();
    let got = &r.tolerant.data_sets;
    let mut gi = 0usize;
    for (ei, spec) in COMBI_351.iter().enumerate() {
        match got.iter().position(|d| d.address == spec.address) {
            None => problems.push(format!("{} ({}) missing", spec.address, spec.meaning)),
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
        if !COMBI_351.iter().any(|s| s.address == d.address) {
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

fn tariff_sum(r: &Readout, clause: Clause) -> Judgement {
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

fn monotonic(
    ctx: &mut Ctx<'_>,
    shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let a = first(ctx, shared)?;
    let b = ctx.readout()?;
    ctx.wait(ctx.opts.monotonic_wait)?;
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
        ms.push(Measurement::new(
            &format!("{addr}.min_step"),
            step,
            "register units",
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

fn recovery(ctx: &mut Ctx<'_>, clause: Clause) -> Result<Judgement, TargetError> {
    let mut problems = Vec::new();
    let mut ms = Vec::new();
    // (a) a request for another address: the meter must stay silent, then answer a valid request
    let other = if ctx.spec.address == "99999998" {
        "99999997"
    } else {
        "99999998"
    };
    ctx.target.discard_input()?;
    let end = ctx
        .target
        .send(&parity::encode(&Request::addressed(other).encode()))?;
    let quiet_until = end + Duration::from_millis(ctx.spec.profile.response_max_ms as u64 + 500);
    let (chars, _) = ctx.target.recv(
        quiet_until,
        Duration::from_millis(200),
        &mut |_: &[RxChar]| false,
    )?;
    if !chars.is_empty() {
        problems.push(format!("answered a request for address {other} ({} characters); only the addressed meter may answer", chars.len()));
        // let the unwanted answer finish before going on
        let now = ctx.target.now()?;
        let _ = ctx.target.recv(
            now + Duration::from_secs(30),
            INTER_CHAR_LIMIT,
            &mut |c: &[RxChar]| c.len() >= 2 && c[c.len() - 2].byte & 0x7F == 3,
        )?;
    }
    let r = ctx.readout()?;
    match response_measurement(ctx, "response_after_foreign_address", &r) {
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
    match response_measurement(ctx, "response_after_noise", &r) {
        Some(m) => ms.push(m),
        None => problems.push("no answer to a valid request sent right after noise".into()),
    }
    Ok(Judgement::from_problems(clause, problems, ms, "silent for a foreign address; answered the next valid request inside the window after it and after noise"))
}
