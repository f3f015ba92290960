//! The `module` suite: the rig plays the meter and judges the module under test against the
//! requirements the interface specification sets for modules (004_d1f80f13afa7763c.txt,
//! "Construction requirements for non-Kamstrup modules" and "IEC61107 data request").
//!
//! Each case asks the target's [`ModuleBench`](crate::module::ModuleBench) to serve one [`Scenario`] of the meter file's
//! meter and judges the logged conversation with the pure judges of [`crate::module`]. A target
//! that is a meter (not a bench) skips every case with the reason: `rig module` runs them.

use super::{Ctx, Judgement, Measurement, Shared};
use crate::meter::profile::{Clause, SPEC_351};
use crate::module::{self, supply, Scenario, WireLog};
use crate::target::TargetError;
use crate::time::TimeSource;

/// `module.request`'s clause.
pub const REQUEST_CLAUSE: Clause = Clause {
    source: SPEC_351,
    section: "IEC61107 data request: To meter: /?![CR][LF]; 300 baud, 1 start bit, 7 data bits, even parity, 1 stop bit",
};
/// `module.patience`'s clause.
pub const PATIENCE_CLAUSE: Clause = Clause {
    source: SPEC_351,
    section: "IEC61107 data request, Note 1: response between 20 and 500 msec after request (the module waits for it, and for the whole answer to its BCC)",
};
/// `module.repetition`'s clause.
pub const REPETITION_CLAUSE: Clause = Clause {
    source: SPEC_351,
    section: "IEC61107 data request, Note 1: response up to 500 msec after request (a repeat sooner talks over the answer); spacing and count otherwise recorded, no clause limits them",
};

fn not_a_bench(ctx: &Ctx<'_>, clause: Clause) -> Judgement {
    Judgement::skip(
        clause,
        format!(
            "{} is a meter: the module suite judges a module the rig serves a meter to (rig module --link PATH | --port PATH)",
            ctx.target.describe()
        ),
    )
}

/// `module.supply`'s clause.
pub const SUPPLY_CLAUSE: Clause = Clause {
    source: SPEC_351,
    section: "Module interface, Pin 6 Supply: nominal voltage 4.2 V, average current 1 mA (average for 60 seconds), maximum current 5 mA",
};

/// How long `module.supply` watches the supply: three spans of 60 s.
pub const SUPPLY_WINDOW_S: u64 = 180;

fn observe(ctx: &mut Ctx<'_>, scenario: Scenario) -> Result<Option<WireLog>, TargetError> {
    ctx.check_stop()?;
    let meter = scenario.meter(ctx.spec);
    match ctx.target.try_as_module_bench() {
        Some(mut b) => b.observe(&meter, scenario.window_s()).map(Some),
        None => Ok(None),
    }
}

fn no_request(clause: Clause, scenario: Scenario) -> Judgement {
    Judgement::inconclusive(
        clause,
        format!(
            "the module sent no request in the {} s the rig served the meter ({scenario:?}); start the module, or check its wiring to the meter's data in (pin 5)",
            scenario.window_s()
        ),
    )
}

/// `module.request`: every request is `/?!` or `/?ADDRESS!` then CR LF, each character with even
/// parity and its stop bit (where the bench can see parity: not over a 7-bit pty).
///
/// # Errors
/// The bench's.
pub fn request(
    ctx: &mut Ctx<'_>,
    _: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let Some(log) = observe(ctx, Scenario::AsConfigured)? else {
        return Ok(not_a_bench(ctx, clause));
    };
    let reqs = log.requests();
    if reqs.is_empty() {
        return Ok(no_request(clause, Scenario::AsConfigured));
    }
    let problems: Vec<String> = reqs
        .iter()
        .flat_map(|r| module::request_problems(r, log.parity_observable))
        .collect();
    let ms = vec![Measurement::info(
        "requests",
        reqs.len() as f64,
        "count",
        TimeSource::Register,
        0.0,
    )];
    let mut j = Judgement::from_problems(
        clause,
        problems,
        ms,
        format!(
            "{} request(s) {:?}, framed 7E1",
            reqs.len(),
            String::from_utf8_lossy(&reqs[0].text())
        ),
    );
    if !log.parity_observable {
        j.details
            .push("parity not observable on this bench (a 7-bit pty carries no parity bit)".into());
    }
    Ok(j)
}

/// `module.patience`: against the slowest conforming meter (answer at 499.9 ms, a 1500 ms pause
/// after every line) the module sends no new request before the answer's BCC.
///
/// # Errors
/// The bench's.
pub fn patience(
    ctx: &mut Ctx<'_>,
    _: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let Some(log) = observe(ctx, Scenario::Slowest)? else {
        return Ok(not_a_bench(ctx, clause));
    };
    if log.requests().is_empty() {
        return Ok(no_request(clause, Scenario::Slowest));
    }
    let (problems, waited) = module::patience_problems(&log);
    let mut ms = vec![Measurement::info(
        "served_reaction",
        module::SLOWEST_REACTION_MS,
        "ms",
        TimeSource::Edge,
        0.0,
    )];
    if let Some(w) = waited {
        ms.push(Measurement::info(
            "request_to_bcc",
            w,
            "ms",
            TimeSource::Edge,
            0.0,
        ));
    } else if problems.is_empty() {
        return Ok(Judgement::inconclusive(
            clause,
            "no answer reached its BCC in the window: the module stopped the exchange another way (a break?)",
        ));
    }
    Ok(Judgement::from_problems(
        clause,
        problems,
        ms,
        "waited for the answer at 499.9 ms with 1500 ms pauses to its BCC",
    ))
}

/// `module.repetition`: after silence, a noise burst before the answer and a bad BCC, when and how
/// often the module asks again; fails only on a repeat inside the meter's reaction window or an
/// unfinished answer's inter-character limit ([`module::repeats`]).
///
/// # Errors
/// The bench's.
pub fn repetition(
    ctx: &mut Ctx<'_>,
    _: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let mut problems = Vec::new();
    let mut ms = Vec::new();
    for (name, sc) in [
        ("silent", Scenario::Silent),
        ("noise", Scenario::Noise),
        ("bad_bcc", Scenario::BadBcc),
    ] {
        let Some(log) = observe(ctx, sc)? else {
            return Ok(not_a_bench(ctx, clause));
        };
        let n = log.requests().len();
        if n == 0 {
            return Ok(no_request(clause, sc));
        }
        let reps = module::repeats(&log);
        let src = TimeSource::Edge;
        ms.push(Measurement::info(
            &format!("{name}.requests"),
            n as f64,
            "count",
            src,
            0.0,
        ));
        if let Some(min) = reps.iter().map(|r| r.after_request_ms).reduce(f64::min) {
            ms.push(Measurement::info(
                &format!("{name}.min_spacing"),
                min,
                "ms",
                src,
                0.0,
            ));
        }
        problems.extend(
            reps.iter()
                .filter_map(|r| r.too_soon.as_ref())
                .map(|t| format!("{name}: {t}")),
        );
    }
    Ok(Judgement::from_problems(
        clause,
        problems,
        ms,
        "no repeat inside the meter's reaction window or an unfinished answer",
    ))
}

/// `module.supply`: the module's current on pin 6, at most 1 mA averaged over any 60 s (from
/// the current monitor's charge accumulator) and never above 5 mA (its alert output).
///
/// # Errors
/// The bench's.
pub fn supply(ctx: &mut Ctx<'_>, _: &mut Shared, clause: Clause) -> Result<Judgement, TargetError> {
    ctx.check_stop()?;
    let Some(mut bench) = ctx.target.try_as_module_bench() else {
        return Ok(not_a_bench(ctx, clause));
    };
    let Some(log) = bench.supply(SUPPLY_WINDOW_S)? else {
        drop(bench);
        return Ok(Judgement::skip(
            clause,
            format!(
                "{} has no current monitor on the module's supply: wire an INA228 in pin 6's supply (wiring/README.md, module-vendor mode)",
                ctx.target.describe()
            ),
        ));
    };
    drop(bench);
    let f = supply::figures(&log);
    let Some(avg) = f.worst_average_ma else {
        return Ok(Judgement::inconclusive(
            clause,
            "under 60 s of charge readings: the average of 004 needs 60 s",
        ));
    };
    let src = TimeSource::Register;
    let ms = vec![
        Measurement::new(
            "average_60s",
            avg,
            "mA",
            None,
            Some(supply::AVERAGE_MAX_MA),
            src,
            0.0,
        ),
        Measurement::new(
            "peaks_over_5ma",
            f.peaks_over_limit as f64,
            "count",
            None,
            Some(0.0),
            TimeSource::Edge,
            0.0,
        ),
        Measurement::info(
            "longest_over_5ma",
            f.longest_over_ms,
            "ms",
            TimeSource::Edge,
            0.0,
        ),
    ];
    Ok(Judgement::from_problems(
        clause,
        vec![],
        ms,
        format!(
            "{} mA worst 60 s average, no current above {} mA",
            super::fmt_num(avg),
            super::fmt_num(log.alert_limit_ma)
        ),
    ))
}
