//! The suites that need the module's pins: `pulse_out`, `tariff`, `pulse_in`, `max_reset`.
//!
//! Pulse times come from edge timestamps on the meter's output ports; register values from
//! readouts. A case the meter's configuration (KK/Z3) makes meaningless is skipped with that
//! reason, and a target without pins skips them all, naming what is needed.

use std::time::Duration;

use super::plan::{PlanCtx, Wait};
use super::{fmt_num, Ctx, Judgement, Measurement, Readout, RunOptions, Shared};
use crate::meter::calendar;
use crate::meter::config::{MeterSpec, PulseBasis};
use crate::meter::io::{PortRole, TariffControl};
use crate::meter::profile::Clause;
use crate::target::{Drive, Port, TargetError};
use crate::time::{TimeSource, Timestamp};
use crate::uart::Edge;

fn io_text(ctx: &Ctx<'_>) -> String {
    let code = match ctx.spec.profile.io_table {
        crate::meter::profile::IoTable::Kk351 => "KK",
        crate::meter::profile::IoTable::Z3 => "Z3",
    };
    format!(
        "{code} {:02} ({})",
        ctx.spec.io.code, ctx.spec.io.description
    )
}

/// Output ports that carry energy pulses, with the register they count.
fn output_ports(ctx: &Ctx<'_>) -> Vec<(Port, &'static str)> {
    outputs_of(ctx.spec)
}

/// [`output_ports`] of a meter file.
pub(crate) fn outputs_of(spec: &MeterSpec) -> Vec<(Port, &'static str)> {
    Port::ALL
        .into_iter()
        .filter_map(|p| match spec.io.role(p) {
            PortRole::ActiveOut => Some((p, "1.8.0")),
            PortRole::ReactiveOut => Some((p, "3.8.0")),
            _ => None,
        })
        .collect()
}

/// Complete pulses (leading edge, trailing edge) in edges that start from an idle-high line.
fn pulses(edges: &[Edge]) -> Vec<(Timestamp, Timestamp)> {
    let mut out = Vec::new();
    let mut low_at: Option<Timestamp> = None;
    for e in edges {
        if e.level.is_low() {
            low_at = Some(e.t);
        } else if let Some(s) = low_at.take() {
            out.push((s, e.t));
        }
    }
    out
}

/// The modulus a register counts in: 10^(integer digits) from the readout layout (004,
/// "IEC61107 data request": 1.8.0 has 7 digits, so it shows 9999999 then 0000000); `None` for a
/// text register or an unknown address.
pub(crate) fn register_modulus(addr: &str) -> Option<f64> {
    match crate::meter::readout::spec(addr)?.format {
        crate::meter::readout::Format::Number { int, .. } => Some(10f64.powi(int as i32)),
        crate::meter::readout::Format::Text { .. } => None,
    }
}

/// `b − a` for a register read twice, in register units, modulo the register's digit count: the
/// signed difference of least magnitude (a 7-digit 9999998 → 0000003 is +5, 0000003 → 9999998
/// is −5). A counter cannot move by half its range between two readouts of a test.
pub(crate) fn register_step(addr: &str, a: f64, b: f64) -> f64 {
    let d = b - a;
    match register_modulus(addr) {
        Some(m) => {
            let s = d.rem_euclid(m);
            if s > m / 2.0 {
                s - m
            } else {
                s
            }
        }
        None => d,
    }
}

/// Whether a register rolled over between `a` and `b` (it went forward through 0).
pub(crate) fn rolled_over(addr: &str, a: f64, b: f64) -> bool {
    b < a && register_step(addr, a, b) >= 0.0
}

/// The step between two edge takes: short enough that no backend buffer fills (the software
/// meter keeps 4,000,000 edges per port; 60 s is at most about 2,000 edges), long enough to cost
/// little. Real backends are read every 250 ms (their kernel buffers are small).
fn drain_step(ctx: &Ctx<'_>) -> Duration {
    Duration::from_millis(if ctx.caps.virtual_time { 60_000 } else { 250 })
}

/// The rig's error when the backend dropped edges on `port` since its count was `before`: lost
/// pulses are the rig's failure, never the meter's.
fn dropped_error(
    ctx: &mut Ctx<'_>,
    port: Port,
    before: u64,
    clause: Clause,
) -> Result<Option<Judgement>, TargetError> {
    let now = ctx.ports()?.dropped_edges(port)?;
    Ok((now > before).then(|| {
        Judgement::error(
            clause,
            format!(
                "the rig lost {} edge(s) on {port}: the capture buffer overflowed (a rig error, \
                 not the meter's); nothing was judged",
                now - before
            ),
        )
    }))
}

/// Collects at least `n` complete pulses on `port`, waiting at most `max_wait`; `Err` is the
/// rig's error when edges were dropped on the way.
fn collect(
    ctx: &mut Ctx<'_>,
    port: Port,
    n: usize,
    max_wait: Duration,
    clause: Clause,
) -> Result<Result<Vec<(Timestamp, Timestamp)>, Judgement>, TargetError> {
    ctx.take_edges(port)?;
    let dropped = ctx.ports()?.dropped_edges(port)?;
    let start = ctx.target.now()?;
    let step = Duration::from_millis(if ctx.caps.virtual_time { 2000 } else { 250 });
    let mut edges = Vec::new();
    let mut found = 0;
    loop {
        let now = ctx.target.now()?;
        ctx.wait_until(now + step)?;
        let new = ctx.take_edges(port)?;
        found += new.iter().filter(|e| e.level.is_high()).count();
        edges.extend(new);
        if found >= n || ctx.target.now()?.saturating_since(start) >= max_wait {
            if let Some(j) = dropped_error(ctx, port, dropped, clause)? {
                return Ok(Err(j));
            }
            return Ok(Ok(pulses(&edges)));
        }
    }
}

/// The pulse rate the meter file's load and configuration promise on an output with role
/// `role`, pulses per second: constant (imp/kWh, P/Z24 basis) × the basis power (secondary, or
/// × the transformer ratio for true energy) of the lightest loaded step. `None` when the file
/// gives no load (a real meter's file usually does not).
fn expected_rate(ctx: &Ctx<'_>, role: PortRole) -> Option<f64> {
    expected_rate_of(ctx.spec, role)
}

/// [`expected_rate`] of a meter file.
pub(crate) fn expected_rate_of(spec: &MeterSpec, role: PortRole) -> Option<f64> {
    let mw = spec
        .load
        .steps
        .iter()
        .map(|s| match role {
            PortRole::ReactiveOut => s.reactive_mvar,
            _ => s.active_mw,
        })
        .filter(|&p| p > 0)
        .min()? as f64;
    let kw = match spec.pulse_basis {
        PulseBasis::Secondary => mw / 1e6,
        PulseBasis::Primary => mw / 1e6 * spec.ratio as f64,
    };
    Some(spec.pulse_constant as f64 * kw / 3600.0)
}

/// How long to wait for `n` pulses on `port`: four times their expected time at the meter file's
/// load (at least the old fixed wait: an hour simulated, 5 min real), or the whole
/// `--max-constant-window` when the load is unknown; never more than that window.
fn pulse_wait(ctx: &Ctx<'_>, port: Port, n: usize) -> Duration {
    pulse_wait_of(ctx.spec, ctx.opts, ctx.caps.virtual_time, port, n)
}

/// [`pulse_wait`] of a meter file and options.
pub(crate) fn pulse_wait_of(
    spec: &MeterSpec,
    opts: &RunOptions,
    virtual_time: bool,
    port: Port,
    n: usize,
) -> Duration {
    let floor = Duration::from_secs(if virtual_time { 3600 } else { 300 });
    let max = opts.max_constant_window;
    match expected_rate_of(spec, spec.io.role(port)) {
        Some(r) => Duration::from_secs_f64((4.0 * (n as f64 + 1.0) / r).min(max.as_secs_f64()))
            .max(floor)
            .min(max),
        None => max,
    }
}

/// At least `need` complete pulses on `port` (aiming for `want`, waiting [`pulse_wait`]), or the
/// judgement that ends the case: inconclusive with too few, an error when edges were dropped.
fn gather(
    ctx: &mut Ctx<'_>,
    port: Port,
    want: usize,
    need: usize,
    clause: Clause,
) -> Result<Result<Vec<(Timestamp, Timestamp)>, Judgement>, TargetError> {
    let wait = pulse_wait(ctx, port, want);
    let p = match collect(ctx, port, want, wait, clause)? {
        Ok(p) => p,
        Err(j) => return Ok(Err(j)),
    };
    if p.len() < need {
        return Ok(Err(too_few_pulses(ctx, clause, port, p.len(), need, wait)));
    }
    Ok(Ok(p))
}

/// Inconclusive: fewer than `need` pulses on `port` in `waited`; says what would decide it.
fn too_few_pulses(
    ctx: &Ctx<'_>,
    clause: Clause,
    port: Port,
    got: usize,
    need: usize,
    waited: Duration,
) -> Judgement {
    let expected = expected_rate(ctx, ctx.spec.io.role(port)).map_or(String::new(), |r| {
        format!(
            " (about {} expected at the meter file's load)",
            fmt_num(r * waited.as_secs_f64())
        )
    });
    Judgement::inconclusive(
        clause,
        format!(
            "{got} pulse(s) on {port} in {} s at {} imp/kWh{expected}, {need} needed: is the \
             meter loaded? More load or a longer --max-constant-window would decide",
            waited.as_secs(),
            ctx.spec.pulse_constant
        ),
    )
}

fn no_outputs(ctx: &Ctx<'_>, clause: Clause) -> Judgement {
    Judgement::skip(
        clause,
        format!("{} has no pulse output on the module ports", io_text(ctx)),
    )
}

/// The `pulse_width` case.
pub(crate) fn pulse_width(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let outs = output_ports(ctx);
    if outs.is_empty() {
        return Ok(no_outputs(ctx, clause));
    }
    let nominal = ctx.spec.pulse_width_ms;
    let tol = ctx.spec.profile.pulse_width_tolerance_pct / 100.0;
    let (lo, hi) = (nominal * (1.0 - tol), nominal * (1.0 + tol));
    let u = 2.0 * ctx.caps.pin_uncertainty_ns as f64 / 1e6;
    let mut ms = Vec::new();
    let mut problems = Vec::new();
    for (port, _) in outs {
        let p = match gather(ctx, port, 20, 1, clause)? {
            Ok(p) => p,
            Err(j) => return Ok(j),
        };
        let w: Vec<f64> = p.iter().map(|(s, e)| e.diff_ns(*s) as f64 / 1e6).collect();
        let min = w.iter().copied().fold(f64::INFINITY, f64::min);
        let max = w.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        let n = port.number();
        ms.push(Measurement::new(
            &format!("port{n}.min_width"),
            min,
            "ms",
            Some(lo),
            Some(hi),
            TimeSource::Edge,
            u,
        ));
        ms.push(Measurement::new(
            &format!("port{n}.max_width"),
            max,
            "ms",
            Some(lo),
            Some(hi),
            TimeSource::Edge,
            u,
        ));
        ms.push(Measurement::info(
            &format!("port{n}.pulses"),
            w.len() as f64,
            "pulses",
            TimeSource::Edge,
            0.0,
        ));
        for (i, x) in w.iter().enumerate().filter(|(_, x)| **x < lo || **x > hi) {
            problems.push(format!(
                "{port} pulse {i}: {} ms outside {}–{} ms",
                fmt_num(*x),
                fmt_num(lo),
                fmt_num(hi)
            ));
        }
    }
    Ok(Judgement::from_problems(
        clause,
        problems,
        ms,
        format!(
            "every pulse within {} ms ±{} %",
            fmt_num(nominal),
            fmt_num(tol * 100.0)
        ),
    ))
}

/// The `pulse_pause` case.
pub(crate) fn pulse_pause(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let outs = output_ports(ctx);
    if outs.is_empty() {
        return Ok(no_outputs(ctx, clause));
    }
    let min_pause = ctx.spec.profile.min_pause_ms;
    let u = 2.0 * ctx.caps.pin_uncertainty_ns as f64 / 1e6;
    let mut ms = Vec::new();
    let mut problems = Vec::new();
    for (port, _) in outs {
        let p = match gather(ctx, port, 50, 2, clause)? {
            Ok(p) => p,
            Err(j) => return Ok(j),
        };
        let pauses: Vec<f64> = p
            .windows(2)
            .map(|w| w[1].0.diff_ns(w[0].1) as f64 / 1e6)
            .collect();
        let min = pauses.iter().copied().fold(f64::INFINITY, f64::min);
        ms.push(Measurement::new(
            &format!("port{}.min_pause", port.number()),
            min,
            "ms",
            Some(min_pause),
            None,
            TimeSource::Edge,
            u,
        ));
        for (i, x) in pauses.iter().enumerate().filter(|(_, x)| **x < min_pause) {
            problems.push(format!(
                "{port}: pause {i} is {} ms, at least {} ms required",
                fmt_num(*x),
                fmt_num(min_pause)
            ));
        }
    }
    Ok(Judgement::from_problems(
        clause,
        problems,
        ms,
        format!("every pause ≥ {} ms", fmt_num(min_pause)),
    ))
}

fn register(r: &Readout, addr: &str) -> Result<f64, String> {
    r.numbers()
        .get(addr)
        .copied()
        .ok_or_else(|| format!("{addr} missing from the readout"))
}

/// Pulses per register unit on an output: the configured constant (imp/kWh), divided by the
/// transformer ratio when pulses weigh verified (secondary) energy, since the registers show
/// true energy (000 "Module controlled pulse output", P; 003 Z24).
fn pulses_per_unit(spec: &crate::meter::config::MeterSpec) -> f64 {
    match spec.pulse_basis {
        PulseBasis::Secondary => spec.pulse_constant as f64 / spec.ratio as f64,
        PulseBasis::Primary => spec.pulse_constant as f64,
    }
}

/// Falling (leading) edges in `edges` after `after` and up to `upto`.
fn leading_edges(edges: &[Edge], after: Timestamp, upto: Option<Timestamp>) -> u64 {
    edges
        .iter()
        .filter(|e| e.level.is_low() && e.t > after && upto.is_none_or(|u| e.t <= u))
        .count() as u64
}

/// The `pulse_constant` case.
pub(crate) fn pulse_constant(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let outs = output_ports(ctx);
    if outs.is_empty() {
        return Ok(no_outputs(ctx, clause));
    }
    let mut all = Findings::default();
    // how much evidence decided each port's verdict, kept in the details of a pass and a fail
    let mut evidence = Vec::new();
    for (port, addr) in outs {
        match constant_on_port(ctx, clause, port, addr)? {
            Ok(f) => {
                all.ms.extend(f.ms);
                all.problems.extend(f.problems);
                evidence.extend(
                    f.msgs
                        .iter()
                        .filter(|m| m.contains("decided after"))
                        .cloned(),
                );
                all.msgs.extend(f.msgs);
            }
            Err(j) => return Ok(j),
        }
    }
    let mut j = Judgement::from_problems(clause, all.problems, all.ms, all.msgs.join("; "));
    j.details.extend(evidence);
    Ok(j)
}

/// What one port contributed to a case: measurements, problems and messages.
#[derive(Debug, Default)]
struct Findings {
    ms: Vec<Measurement>,
    problems: Vec<String>,
    msgs: Vec<String>,
}

/// Pulses counted on a port between two readouts, and the register's growth over them.
#[derive(Debug)]
struct Counted {
    /// Leading edges after the first readout's snapshot, up to the second's.
    pulses: f64,
    /// The register's growth, register units (modulo its digits).
    growth: f64,
    /// The two snapshot times.
    ta: Timestamp,
    tb: Timestamp,
    /// Whether the register rolled over through 0.
    rolled: bool,
    /// Whether an early check decided it before the full window ([`early_verdict`]).
    early: bool,
}

/// Register units of growth at which a meter without rate error is decided within class `a`
/// (fraction) at `k` pulses per unit, whatever the register's fractions at the two readouts:
/// the quantisation interval's upper end, (pulses + 1) / ((ΔR − 1) k) − 1, with up to ΔR + 1
/// units of pulses, comes within `a` from ΔR ≥ (2 + a + 1/k) / a; two units more for the
/// displayed growth lagging the pulses.
pub(crate) fn decided_units(a: f64, k: f64) -> f64 {
    ((2.0 + a + 1.0 / k) / a).ceil() + 2.0
}

/// Growths (register units, as the pulses promise) at which `pulse_out.constant` reads the
/// register before its full window of `full` units: 8, 16, 32, 64 (a meter clearly off), then
/// from [`decided_units`] doubling, all below `full`.
fn checkpoints(a: f64, k: f64, full: f64) -> Vec<f64> {
    let pass = decided_units(a, k);
    let mut v: Vec<f64> = [8.0, 16.0, 32.0, 64.0]
        .into_iter()
        .filter(|u| *u < pass.min(full))
        .collect();
    let mut u = pass;
    while u < full {
        v.push(u);
        u *= 2.0;
    }
    v
}

/// The verdict a window counted so far has already decided, from hard bounds: the register's
/// whole-unit quantisation (the true growth lies within ΔR ± 1) and one pulse at either end.
/// `Some(true)`: every rate error the bounds allow is within the class `a`, so the full window
/// of `full` units passes too; `Some(false)`: every one is outside what the full window allows
/// (class plus its quantisation), so it fails too; `None`: keep counting.
fn early_verdict(a: f64, k: f64, full: f64, c: &Counted) -> Option<bool> {
    let (n, dr) = (c.pulses, c.growth);
    if dr < 2.0 || full < 3.0 {
        return None;
    }
    let low = (n - 1.0) / ((dr + 1.0) * k) - 1.0;
    let high = (n + 1.0) / ((dr - 1.0) * k) - 1.0;
    let allowed = a + 2.0 * (1.0 + a) / (full - 1.0) + 1.0 / ((full - 1.0) * k);
    if low >= -a && high <= a {
        Some(true)
    } else if low > allowed || high < -allowed {
        Some(false)
    } else {
        None
    }
}

/// Counts pulses on `port` and the growth of `addr` over `window` between two readouts, draining
/// the edges in steps; at each growth of `checks` (register units the pulses promise, `k` pulses
/// per unit) it reads the register and stops early when `decided` says the count so far decides
/// the verdict. `Err` ends the case (inconclusive under 1 unit, or the rig's error).
fn constant_window(
    ctx: &mut Ctx<'_>,
    clause: Clause,
    (port, addr): (Port, &str),
    window: Duration,
    (k, mut checks): (f64, Vec<f64>),
    decided: &dyn Fn(&Counted) -> bool,
) -> Result<Result<Counted, Judgement>, TargetError> {
    ctx.take_edges(port)?;
    let dropped = ctx.ports()?.dropped_edges(port)?;
    let ra = ctx.readout()?;
    let ta = ra.snapshot_time();
    let mut count = 0u64;
    let end = ctx.target.now()? + window;
    let step = drain_step(ctx);
    let mut early = None;
    while ctx.target.now()? < end {
        let now = ctx.target.now()?;
        ctx.wait_until((now + step).min(end))?;
        count += leading_edges(&ctx.take_edges(port)?, ta, None);
        if checks.first().is_some_and(|u| count as f64 >= u * k) && ctx.target.now()? < end {
            checks.remove(0);
            let c = check(ctx, (port, addr), &ra, &mut count)?;
            if c.as_ref().is_some_and(decided) {
                early = c;
                break;
            }
        }
    }
    if let Some(j) = dropped_error(ctx, port, dropped, clause)? {
        return Ok(Err(j));
    }
    if let Some(c) = early {
        return Ok(Ok(c));
    }
    let rb = ctx.readout()?;
    let tb = rb.snapshot_time();
    count += leading_edges(&ctx.take_edges(port)?, ta, Some(tb));
    let (ea, eb) = match (register(&ra, addr), register(&rb, addr)) {
        (Ok(a), Ok(b)) => (a, b),
        (Err(e), _) | (_, Err(e)) => return Ok(Err(Judgement::error(clause, e))),
    };
    let growth = register_step(addr, ea, eb);
    if growth < 1.0 {
        return Ok(Err(Judgement::inconclusive(
            clause,
            format!(
                "{addr} grew by {} in {} s: at least 1 unit is needed to judge the constant \
                 against whole-unit registers; more load or a longer --max-constant-window would decide",
                fmt_num(growth),
                fmt_num(tb.diff_ns(ta) as f64 / 1e9)
            ),
        )));
    }
    Ok(Ok(Counted {
        pulses: count as f64,
        growth,
        ta,
        tb,
        rolled: rolled_over(addr, ea, eb),
        early: false,
    }))
}

/// One early check of [`constant_window`]: a readout, the pulses after `ra`'s snapshot up to
/// its own (`count` so far, raised by every pulse taken), and the register's growth; `None` when
/// a readout lacks the register (the full window then judges it).
fn check(
    ctx: &mut Ctx<'_>,
    (port, addr): (Port, &str),
    ra: &Readout,
    count: &mut u64,
) -> Result<Option<Counted>, TargetError> {
    let ta = ra.snapshot_time();
    let rb = ctx.readout()?;
    let tb = rb.snapshot_time();
    let edges = ctx.take_edges(port)?;
    let upto = *count + leading_edges(&edges, ta, Some(tb));
    *count += leading_edges(&edges, ta, None);
    let (Ok(ea), Ok(eb)) = (register(ra, addr), register(&rb, addr)) else {
        return Ok(None);
    };
    Ok(Some(Counted {
        pulses: upto as f64,
        growth: register_step(addr, ea, eb),
        ta,
        tb,
        rolled: rolled_over(addr, ea, eb),
        early: true,
    }))
}

/// `pulse_out.constant` on one port: a window sized from the measured rate for ≤ ¼-class
/// quantisation (bounded by `--max-constant-window`), then the pulses judged against it.
fn constant_on_port(
    ctx: &mut Ctx<'_>,
    clause: Clause,
    port: Port,
    addr: &str,
) -> Result<Result<Findings, Judgement>, TargetError> {
    let k = pulses_per_unit(ctx.spec);
    let a = ctx.spec.profile.accuracy_pct / 100.0;
    // rate from a few pulses sizes the window
    let p = match gather(ctx, port, 10, 2, clause)? {
        Ok(p) => p,
        Err(j) => return Ok(Err(j)),
    };
    let span = p.last().unwrap().0.diff_ns(p[0].0) as f64 / 1e9;
    let rate = (p.len() - 1) as f64 / span.max(1e-9);
    // quantisation of two whole-unit readings is ±1 unit: aim for 1/ΔR ≤ a/4
    let units_needed = (4.0 / a).ceil();
    let needed = Duration::from_secs_f64((units_needed * k / rate).min(1e9));
    let window = needed.min(ctx.opts.max_constant_window);
    // the units the window can reach at the measured rate
    let full = (window.as_secs_f64() * rate / k).min(units_needed);
    let spec = ctx.spec;
    // an early stop only where the bounds decide it and the judgement of the counts agrees
    let decided = |c: &Counted| {
        early_verdict(a, k, full, c)
            .is_some_and(|pass| judge_constant(spec, port, addr, c).problems.is_empty() == pass)
    };
    let checks = (k, checkpoints(a, k, full));
    let c = match constant_window(ctx, clause, (port, addr), window, checks, &decided)? {
        Ok(c) => c,
        Err(j) => return Ok(Err(j)),
    };
    let mut f = judge_constant(ctx.spec, port, addr, &c);
    f.ms.push(Measurement::info(
        &format!("port{}.planned_growth", port.number()),
        full.floor(),
        "kWh",
        TimeSource::Register,
        0.0,
    ));
    if c.early {
        f.msgs.push(format!(
            "{port}: decided after {} of the {} units planned: the quantisation bounds put the rate error {} the class",
            fmt_num(c.growth),
            fmt_num(full.floor()),
            if f.problems.is_empty() { "within" } else { "outside what the full window allows of" }
        ));
    }
    if window < needed {
        f.msgs.push(format!(
            "window capped at {} s (needed {} s for ≤{} % quantisation)",
            window.as_secs(),
            needed.as_secs(),
            fmt_num(a * 25.0)
        ));
    }
    Ok(Ok(f))
}

/// Pulses against register growth: within class ± one register unit of quantisation ± a pulse.
fn judge_constant(
    spec: &crate::meter::config::MeterSpec,
    port: Port,
    addr: &str,
    c: &Counted,
) -> Findings {
    let k = pulses_per_unit(spec);
    let a = spec.profile.accuracy_pct / 100.0;
    let (count, dr, n) = (c.pulses, c.growth, port.number());
    let lo = ((dr - 1.0) * k * (1.0 - a) - 1.0).max(0.0);
    let hi = (dr + 1.0) * k * (1.0 + a) + 1.0;
    let err = (count / (dr * k) - 1.0) * 100.0;
    let mut f = Findings::default();
    f.ms.push(Measurement::new(
        &format!("port{n}.pulses"),
        count,
        "pulses",
        Some(lo.floor()),
        Some(hi.ceil()),
        TimeSource::Edge,
        1.0,
    ));
    f.ms.push(Measurement::info(
        &format!("port{n}.rate_error"),
        err,
        "%",
        TimeSource::Register,
        (1.0 / dr + 1.0 / count.max(1.0)) * 100.0,
    ));
    f.ms.push(Measurement::info(
        &format!("port{n}.register_growth"),
        dr,
        "kWh",
        TimeSource::Register,
        1.0,
    ));
    f.msgs.push(format!(
        "{port}: {count} pulses while {addr} grew {} in {} s (expected {} ±{} % class ± quantisation)",
        fmt_num(dr),
        fmt_num(c.tb.diff_ns(c.ta) as f64 / 1e9),
        fmt_num(dr * k),
        fmt_num(a * 100.0)
    ));
    if c.rolled {
        f.ms.push(Measurement::info(
            &format!("{addr}.rollover"),
            1.0,
            "rollovers",
            TimeSource::Register,
            0.0,
        ));
        f.msgs.push(format!(
            "{addr} rolled over through 0 (counted modulo its digits)"
        ));
    }
    if count < lo || count > hi {
        f.problems.push(format!(
            "{port}: {count} pulses while {addr} grew by {} → {} % off {} imp/kWh{} (allowed {}–{} pulses)",
            fmt_num(dr),
            fmt_num(err),
            spec.pulse_constant,
            if spec.pulse_basis == PulseBasis::Secondary { format!(" secondary, ratio {}", spec.ratio) } else { String::new() },
            lo.floor(),
            hi.ceil()
        ));
    }
    f
}

fn set_state(ctx: &mut Ctx<'_>, tc: &TariffControl, state: u8) -> Result<(), TargetError> {
    if let TariffControl::Module { input1, input2, .. } = *tc {
        ctx.ports()?
            .set_input(input1, Drive::from_active(state & 1 == 1))?;
        if let Some(p2) = input2 {
            ctx.ports()?
                .set_input(p2, Drive::from_active(state & 2 == 2))?;
        }
    }
    Ok(())
}

/// The `tariff_table` case.
pub(crate) fn tariff_table(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let tc = ctx.spec.io.tariff;
    let TariffControl::Module {
        tariffs, inverted, ..
    } = tc
    else {
        return Ok(Judgement::skip(
            clause,
            format!(
                "{}: tariffs by communication, no module tariff inputs",
                io_text(ctx)
            ),
        ));
    };
    let mut ms = Vec::new();
    let mut problems = Vec::new();
    for (state, expected) in tc.table() {
        set_state(ctx, &tc, state)?;
        let label = if tariffs == 2 {
            format!("in={}", state & 1)
        } else {
            format!("in1={} in2={}", state & 1, (state >> 1) & 1)
        };
        if let Some(j) = tariff_state(ctx, clause, state, expected, &label, &mut ms, &mut problems)?
        {
            set_state(ctx, &tc, 0)?;
            return Ok(j);
        }
    }
    set_state(ctx, &tc, 0)?;
    Ok(Judgement::from_problems(
        clause,
        problems,
        ms,
        format!(
            "{}-tariff {} table: every input state fed only its register",
            tariffs,
            if inverted { "inverted" } else { "normal" }
        ),
    ))
}

/// Growth of 1.8.0 and of 1.8.1–1.8.4 (kWh, `None` when missing) while one input state was
/// held, and how long it was held.
#[derive(Debug)]
struct TariffGrowth {
    total: Option<f64>,
    regs: [Option<f64>; 4],
    waited: Duration,
}

/// The registers 1.8.0 and 1.8.1–1.8.4 grew by (register units, modulo their digits) while one
/// input state was held: dwells until 1.8.0 has grown by 2 kWh (whole-kWh registers cannot tell
/// the selected register from the others with less), at most `--max-constant-window`.
fn tariff_growth(ctx: &mut Ctx<'_>) -> Result<TariffGrowth, TargetError> {
    ctx.wait(Duration::from_secs(1))?;
    let a = ctx.readout()?;
    let na = a.numbers();
    let started = ctx.target.now()?;
    let grow = |nb: &std::collections::BTreeMap<String, f64>, addr: &str| -> Option<f64> {
        Some(register_step(addr, *na.get(addr)?, *nb.get(addr)?))
    };
    loop {
        ctx.wait(ctx.opts.tariff_dwell)?;
        let b = ctx.readout()?;
        let nb = b.numbers();
        let total = grow(&nb, "1.8.0");
        let waited = b.snapshot_time().saturating_since(a.snapshot_time());
        let long = ctx.target.now()?.saturating_since(started) + ctx.opts.tariff_dwell
            > ctx.opts.max_constant_window;
        if total.is_none_or(|t| t >= 2.0) || long {
            let regs = ["1.8.1", "1.8.2", "1.8.3", "1.8.4"].map(|r| grow(&nb, r));
            return Ok(TariffGrowth {
                total,
                regs,
                waited,
            });
        }
    }
}

/// One input state of `tariff.table`: pushes its measurements and problems; `Some` ends the case.
fn tariff_state(
    ctx: &mut Ctx<'_>,
    clause: Clause,
    state: u8,
    expected: u8,
    label: &str,
    ms: &mut Vec<Measurement>,
    problems: &mut Vec<String>,
) -> Result<Option<Judgement>, TargetError> {
    let TariffGrowth {
        total,
        regs,
        waited,
    } = tariff_growth(ctx)?;
    let Some(total) = total else {
        problems.push(format!("{label}: 1.8.0 missing"));
        return Ok(None);
    };
    if total < 2.0 {
        return Ok(Some(Judgement::inconclusive(
            clause,
            format!(
                "{label}: 1.8.0 grew by {} kWh in {} s; 2 kWh decide which register counts \
                 (whole-kWh registers): is the meter loaded? More load or a longer \
                 --max-constant-window would decide",
                fmt_num(total),
                waited.as_secs()
            ),
        )));
    }
    let mut other = 0.0f64;
    for (i, g) in regs.iter().enumerate() {
        let addr = format!("1.8.{}", i + 1);
        let Some(g) = *g else {
            problems.push(format!("{label}: {addr} missing"));
            continue;
        };
        if i + 1 == expected as usize {
            ms.push(Measurement::new(
                &format!("state{state}.T{expected}_growth"),
                g,
                "kWh",
                Some(1.0),
                None,
                TimeSource::Register,
                1.0,
            ));
            if g < 1.0 {
                problems.push(format!("{label}: expected T{expected} ({addr}) to grow, it grew by {} while 1.8.0 grew by {}", fmt_num(g), fmt_num(total)));
            }
        } else if g != 0.0 {
            other += g.abs();
            problems.push(format!(
                "{label}: only T{expected} should grow, but T{} ({addr}) grew by {} kWh",
                i + 1,
                fmt_num(g)
            ));
        }
    }
    ms.push(Measurement::new(
        &format!("state{state}.other_growth"),
        other,
        "kWh",
        None,
        Some(0.0),
        TimeSource::Register,
        0.0,
    ));
    Ok(None)
}

/// The `pulse_in` case.
pub(crate) fn pulse_in(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let Some(port) = ctx.spec.io.find(|r| r == PortRole::PulseIn) else {
        return Ok(Judgement::skip(
            clause,
            format!("{} has no pulse input", io_text(ctx)),
        ));
    };
    let n = ctx.opts.pulse_in_count;
    let a = ctx.readout()?;
    // S0 pulses (DIN 43864): at least 30 ms on and 30 ms off; the rig uses 50/50 ms
    for _ in 0..n {
        ctx.ports()?.set_input(port, Drive::Active)?;
        ctx.wait(Duration::from_millis(50))?;
        ctx.ports()?.set_input(port, Drive::Inactive)?;
        ctx.wait(Duration::from_millis(50))?;
    }
    let b = ctx.readout()?;
    let (x, y) = match (register(&a, "96.50.1"), register(&b, "96.50.1")) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => return Ok(Judgement::error(clause, e)),
    };
    let counted = register_step("96.50.1", x, y);
    let m = Measurement::new(
        "counted",
        counted,
        "pulses",
        Some(n as f64),
        Some(n as f64),
        TimeSource::Register,
        0.0,
    );
    Ok(Judgement::from_problems(
        clause,
        vec![],
        vec![m],
        format!(
            "{n} pulses generated on {port}, 96.50.1 grew by {}",
            fmt_num(counted)
        ),
    ))
}

/// Target time just after the meter's next logging-period end that is neither the logging
/// date's midnight (NN) nor followed by it within a period, so a readout, a max reset and a
/// readout fit between the meter's own periodic events. Only for the software meter (virtual
/// time), whose clock is the meter file's `start` at target time 0 (000 Configuration 2: J
/// logging period, NN logging date); `None` for a real meter, whose clock the rig cannot see.
fn quiet_start(ctx: &mut Ctx<'_>) -> Result<Option<Timestamp>, TargetError> {
    if !ctx.caps.virtual_time {
        return Ok(None);
    }
    let now = ctx.target.now()?;
    Ok(Some(quiet_start_at(ctx.spec, now)))
}

/// [`quiet_start`] from target time `now`.
fn quiet_start_at(spec: &MeterSpec, now: Timestamp) -> Timestamp {
    let start = calendar::days_from_civil(spec.start.year, spec.start.month, spec.start.day)
        * 86_400
        + spec.start.secs as i64;
    let period = spec.logging_period_min as i64 * 60;
    let now = start + (now.0 / 1_000_000_000) as i64;
    // the next period end strictly after now
    let mut end = (now.div_euclid(period) + 1) * period;
    if spec.logging_day != 0 {
        let midnight = calendar::next_logging(end - 1, spec.logging_day);
        if midnight <= end + period {
            end = midnight + period;
        }
    }
    Timestamp::ZERO + Duration::from_secs((end - start) as u64 + 1)
}

/// A readout with a non-zero 1.6.0 taken at a quiet moment ([`quiet_start`]), waiting logging
/// periods for a peak (bounded by `--max-constant-window`); `Err` ends the case.
fn readout_with_peak(
    ctx: &mut Ctx<'_>,
    clause: Clause,
) -> Result<Result<Readout, Judgement>, TargetError> {
    let started = ctx.target.now()?;
    let period = Duration::from_secs(ctx.spec.logging_period_min as u64 * 60);
    loop {
        if let Some(t) = quiet_start(ctx)? {
            ctx.wait_until(t)?;
        }
        let a = ctx.readout()?;
        match register(&a, "1.6.0") {
            Ok(p) if p > 0.0 => return Ok(Ok(a)),
            Ok(_) => {}
            Err(e) => return Ok(Err(Judgement::error(clause, e))),
        }
        let waited = ctx.target.now()?.saturating_since(started);
        if waited + period > ctx.opts.max_constant_window {
            return Ok(Err(Judgement::inconclusive(
                clause,
                format!(
                    "1.6.0 stayed 0 kW for {} s ({} logging periods): the load's peak is below \
                     the register's 0.1 kW resolution, so a reset cannot be seen to move it; a \
                     load of at least 0.1 kW (true) or a longer --max-constant-window would decide",
                    waited.as_secs(),
                    waited.as_secs() / period.as_secs().max(1)
                ),
            )));
        }
        if !ctx.caps.virtual_time {
            ctx.wait(period + Duration::from_secs(1))?;
        }
    }
}

/// Registers of a max-reset readout: 1.6.0, 1.6.0.1, 1.2.0, 0.1.
fn peak_registers(r: &Readout) -> Result<[f64; 4], String> {
    Ok([
        register(r, "1.6.0")?,
        register(r, "1.6.0.1")?,
        register(r, "1.2.0")?,
        register(r, "0.1")?,
    ])
}

/// Attempts at `max_reset.peak_reset` when the meter's own events got in the way.
const PEAK_RESET_ATTEMPTS: usize = 3;

/// The `max_reset` case.
pub(crate) fn max_reset(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let Some(port) = ctx
        .spec
        .io
        .find(|r| matches!(r, PortRole::MaxReset | PortRole::DebitingStop))
    else {
        return Ok(Judgement::skip(
            clause,
            format!("{} has no max-reset input", io_text(ctx)),
        ));
    };
    let mut retries = Vec::new();
    loop {
        let a = match readout_with_peak(ctx, clause)? {
            Ok(a) => a,
            Err(j) => return Ok(j),
        };
        ctx.ports()?.set_input(port, Drive::Active)?;
        ctx.wait(Duration::from_millis(200))?;
        ctx.ports()?.set_input(port, Drive::Inactive)?;
        ctx.wait(Duration::from_secs(1))?;
        let b = ctx.readout()?;
        let (before, after) = match (peak_registers(&a), peak_registers(&b)) {
            (Ok(x), Ok(y)) => (x, y),
            (Err(e), _) | (_, Err(e)) => return Ok(Judgement::error(clause, e)),
        };
        // the meter's own events between the readouts: its monthly reset (0.1 moved by 2) or a
        // logging-period end that raised the peak before the input reset it
        let resets = register_step("0.1", before[3], after[3]);
        let own = if resets >= 2.0 {
            Some("0.1 moved by 2: the meter's monthly reset (NN) fell between the readouts")
        } else if after[1] > before[0] {
            Some("1.6.0.1 above the peak read before the reset: a logging period ended between")
        } else {
            None
        };
        match own {
            Some(why) if retries.len() + 1 < PEAK_RESET_ATTEMPTS => retries.push(why.to_string()),
            _ => {
                let mut j = judge_peak_reset(clause, port, before, after);
                j.details = retries;
                return Ok(j);
            }
        }
    }
}

/// The verdict of one max reset from the registers read before and after it.
fn judge_peak_reset(clause: Clause, port: Port, before: [f64; 4], after: [f64; 4]) -> Judgement {
    let [peak, _, acc, resets] = before;
    let [peak2, last2, acc2, resets2] = after;
    let ms = vec![
        Measurement::new(
            "reset_counter_step",
            register_step("0.1", resets, resets2),
            "resets",
            Some(1.0),
            Some(1.0),
            TimeSource::Register,
            0.0,
        ),
        Measurement::new(
            "last_month_peak_minus_peak_before",
            last2 - peak,
            "kW",
            Some(-0.0),
            Some(0.0),
            TimeSource::Register,
            0.0,
        ),
        // the accumulated register is exact inside the meter and shown truncated to 0.1 kW
        Measurement::new(
            "accumulated_step_minus_peak",
            register_step("1.2.0", acc, acc2) - peak,
            "kW",
            Some(-0.1001),
            Some(0.1001),
            TimeSource::Register,
            0.1,
        ),
        Measurement::info("peak_after", peak2, "kW", TimeSource::Register, 0.1),
    ];
    Judgement::from_measurements(
        clause,
        ms,
        format!(
            "max reset on {port}: 1.6.0 {} → {} kW, 1.6.0.1 → {}, 1.2.0 {} → {}, 0.1 {} → {}",
            fmt_num(peak),
            fmt_num(peak2),
            fmt_num(last2),
            fmt_num(acc),
            fmt_num(acc2),
            resets,
            resets2
        ),
    )
}

// ---------------------------------------------------------------------------------------------
// plans: the meter time each case is expected to take ([`super::plan`])

/// Meter time [`collect`] takes for `n` pulses on `port`: steps of 2 s (virtual) or 250 ms until
/// `n` pulses at the meter file's load, at most [`pulse_wait_of`].
fn collect_s(pc: &PlanCtx<'_>, port: Port, n: usize) -> f64 {
    let step = if pc.virtual_time { 2.0 } else { 0.25 };
    let max = pulse_wait_of(pc.spec, pc.opts, pc.virtual_time, port, n).as_secs_f64();
    let need = match expected_rate_of(pc.spec, pc.spec.io.role(port)) {
        Some(r) if r > 0.0 => (n as f64 / r).min(max),
        _ => max,
    };
    (need / step).ceil().max(1.0) * step
}

/// The pulses per second text of the file's load on `port`.
fn rate_text(pc: &PlanCtx<'_>, port: Port) -> String {
    expected_rate_of(pc.spec, pc.spec.io.role(port)).map_or_else(
        || "an unknown rate (no load in the meter file)".into(),
        |r| format!("{} pulses/s", fmt_num(r)),
    )
}

/// `pulse_out.width` (`n` 20) and `pulse_out.pause` (`n` 50): `n` pulses on every output.
pub(crate) fn plan_pulses(pc: &PlanCtx<'_>, n: usize) -> Wait {
    let outs = outputs_of(pc.spec);
    if outs.is_empty() {
        return Wait::none("skips: no pulse output on the module ports");
    }
    let s = outs.iter().map(|(p, _)| collect_s(pc, *p, n)).sum();
    let why: Vec<String> = outs
        .iter()
        .map(|(p, _)| format!("{n} pulses on {p} at {}", rate_text(pc, *p)))
        .collect();
    Wait::fixed(s, 0, why.join(", "))
}

/// `pulse_out.constant`: on every output, ten pulses to measure the rate, then the window for
/// 4/class whole units of the register (≤ ¼-class quantisation) between two readouts.
pub(crate) fn plan_constant(pc: &PlanCtx<'_>) -> Wait {
    let outs = outputs_of(pc.spec);
    if outs.is_empty() {
        return Wait::none("skips: no pulse output on the module ports");
    }
    let k = pulses_per_unit(pc.spec);
    let a = pc.spec.profile.accuracy_pct / 100.0;
    let units = (4.0 / a).ceil();
    let max = pc.opts.max_constant_window.as_secs_f64();
    let (mut s, mut why) = (0.0, Vec::new());
    let step = if pc.virtual_time { 60.0 } else { 0.25 };
    let (r, q) = (pc.readout_s(), pc.request_s());
    for (port, addr) in &outs {
        let gather = collect_s(pc, *port, 10);
        match expected_rate_of(pc.spec, pc.spec.io.role(*port)) {
            Some(rate) if rate > 0.0 => {
                let window = (units * k / rate).min(max);
                let full = (window * rate / k).min(units);
                let decided = decided_units(a, k);
                // a meter within class is decided at the first check past `decided` units:
                // drained in steps from the end of the first readout, then read
                let wait = if decided < full {
                    let from_ta = decided * k / rate;
                    ((from_ta - (r - q)) / step).ceil().max(1.0) * step
                } else {
                    window
                };
                s += gather + r + wait + r;
                why.push(format!(
                    "the energy for {} whole units of {addr} on {port} at {} ({} pulses per unit), where a meter within class is decided (at most {} units)",
                    fmt_num(decided.min(full)),
                    rate_text(pc, *port),
                    fmt_num(k),
                    fmt_num(full.floor())
                ));
            }
            _ => {
                s += gather + max + 2.0 * r;
                why.push(format!(
                    "--max-constant-window on {port}: the meter file gives no load to size it"
                ));
            }
        }
    }
    Wait::fixed(s, 2 * outs.len() as u32, why.join(", "))
}

/// `tariff.table`: per input state, readouts until 1.8.0 grew by 2 whole kWh (dwells of
/// `--tariff-dwell`), from the declared load.
pub(crate) fn plan_tariff(pc: &PlanCtx<'_>) -> Wait {
    let tc = pc.spec.io.tariff;
    if !matches!(tc, TariffControl::Module { .. }) {
        return Wait::none("skips: tariffs by communication, no module tariff inputs");
    }
    let (r, q) = (pc.readout_s(), pc.request_s());
    let dwell = pc.opts.tariff_dwell.as_secs_f64();
    let max = pc.opts.max_constant_window.as_secs_f64();
    let init = pc.spec.registers.get("1.8.0").copied().unwrap_or(0.0);
    let kwh = |t: f64| {
        let e = super::registers::declared_energy_of(&pc.spec.load, (t.max(0.0) * 1e9) as u64);
        (init + e as f64 * pc.spec.ratio as f64 / 3.6e18).floor()
    };
    let (mut t, mut n) = (pc.now_s, 0);
    for _ in tc.table() {
        t += 1.0;
        let ta = t + q;
        t += r;
        let started = t;
        n += 1;
        for _ in 0..100_000 {
            t += dwell;
            let tb = t + q;
            t += r;
            n += 1;
            if kwh(tb) - kwh(ta) >= 2.0 || t - started + dwell > max {
                break;
            }
        }
    }
    Wait::fixed(
        t - pc.now_s,
        n,
        format!(
            "every input state held until 1.8.0 grows by 2 whole kWh, in dwells of {} s",
            fmt_num(dwell)
        ),
    )
}

/// `pulse_in.count`: a readout, the pulses (50 ms on, 50 ms off), a readout.
pub(crate) fn plan_pulse_in(pc: &PlanCtx<'_>) -> Wait {
    if pc.spec.io.find(|r| r == PortRole::PulseIn).is_none() {
        return Wait::none("skips: no pulse input");
    }
    let n = pc.opts.pulse_in_count;
    Wait::fixed(
        2.0 * pc.readout_s() + n as f64 * 0.1,
        2,
        format!("{n} pulses of 100 ms between two readouts"),
    )
}

/// `max_reset.peak_reset`: to the next quiet period end (software meter), a readout, the press,
/// a readout.
pub(crate) fn plan_peak_reset(pc: &PlanCtx<'_>) -> Wait {
    if pc
        .spec
        .io
        .find(|r| matches!(r, PortRole::MaxReset | PortRole::DebitingStop))
        .is_none()
    {
        return Wait::none("skips: no max-reset input");
    }
    let now = Timestamp((pc.now_s * 1e9) as u64);
    if pc.virtual_time {
        let quiet = quiet_start_at(pc.spec, now).0 as f64 / 1e9 - pc.now_s;
        return Wait::fixed(
            quiet + 2.0 * pc.readout_s() + 1.2,
            2,
            "the next logging-period end away from the logging date, then a max reset between two readouts",
        );
    }
    // a real meter: its clock unseen, the first readout comes at once; after `max_demand.reset`
    // pressed the input earlier in this run, 1.6.0 reads 0 until the next period end, and the
    // case reads again one period (and a second) later
    let earlier_press = super::selected(pc.opts).iter().any(|c| {
        c.id == "max_demand.reset" && (c.plan)(&PlanCtx { now_s: 0.0, ..*pc }).seconds > 0.0
    });
    if earlier_press {
        let period = pc.spec.logging_period_min as f64 * 60.0 + 1.0;
        Wait::fixed(
            3.0 * pc.readout_s() + period + 1.2,
            3,
            "a readout (1.6.0 still 0 after max_demand.reset's press), a logging period, then a max reset between two readouts",
        )
    } else {
        Wait::fixed(
            2.0 * pc.readout_s() + 1.2,
            2,
            "a max reset between two readouts",
        )
    }
}

#[cfg(test)]
mod tests {
    //! Regression tests for issue 14 ("healthy meters never fail"): each holds the value a
    //! healthy meter must get where the rig used to blame it.

    use super::*;
    use crate::meter::config::MeterSpec;
    use crate::sim::SimTarget;
    use crate::suite::{self, CaseResult, RunOptions, Verdict};
    use crate::target::{Clock, Layer, Layered, ModulePorts, Target, Timing};

    use crate::suite::Discard as Null;

    /// A healthy 351 meter file: `config` and `registers` lines, `active_w` W at the terminals.
    fn meter(start: &str, config: &str, registers: &str, active_w: f64) -> MeterSpec {
        let text = format!(
            "profile = \"351-combi\"\nstart = \"{start}\"\n[config]\n{config}\n\
             [registers]\n\"0.2.0\" = \"5000D1\"\n{registers}\n\
             [load]\nactive_w = {active_w}\nreactive_var = {}\n[faults]\nresponse_delay_ms = 150.0\n",
            active_w / 5.0
        );
        MeterSpec::from_toml(&text, "test", None).unwrap_or_else(|e| panic!("{e}\n{text}"))
    }

    /// The software meter seen as the rig sees a real meter (no virtual time, so no meter
    /// clock), or as a backend that drops one edge every time its edges are taken.
    #[derive(Debug)]
    struct Seen {
        real: bool,
        drops: u64,
        dropping: bool,
    }

    impl Layer for Seen {
        fn timing(&self, inner: Timing) -> Timing {
            Timing {
                virtual_time: !self.real,
                ..inner
            }
        }
        fn take_edges(
            &mut self,
            inner: &mut dyn ModulePorts,
            port: Port,
        ) -> Result<Vec<Edge>, TargetError> {
            self.drops += u64::from(self.dropping);
            inner.take_edges(port)
        }
        fn dropped_edges(
            &mut self,
            inner: &mut dyn ModulePorts,
            port: Port,
        ) -> Result<u64, TargetError> {
            Ok(self.drops + inner.dropped_edges(port)?)
        }
    }

    fn run_on(
        t: &mut dyn Target,
        spec: &MeterSpec,
        id: &str,
        tweak: impl Fn(&mut RunOptions),
    ) -> CaseResult {
        let mut opts = RunOptions::for_target(&t.capabilities());
        opts.cases = vec![id.into()];
        tweak(&mut opts);
        let mut cases = suite::run(t, spec, &opts, &mut Null);
        assert_eq!(cases.len(), 1, "{id}");
        cases.remove(0)
    }

    fn run_case(spec: &MeterSpec, id: &str) -> CaseResult {
        run_on(&mut SimTarget::new(spec.clone()), spec, id, |_| {})
    }

    fn measured(c: &CaseResult, name: &str) -> f64 {
        c.measurements
            .iter()
            .find(|m| m.name == name)
            .unwrap_or_else(|| panic!("{name} not in {:?}", c.measurements))
            .value
            .unwrap()
    }

    fn counted(pulses: f64, growth: f64) -> Counted {
        Counted {
            pulses,
            growth,
            ta: Timestamp::ZERO,
            tb: Timestamp::ZERO,
            rolled: false,
            early: true,
        }
    }

    #[test]
    fn an_early_verdict_needs_the_quantisation_bounds_to_decide_it() {
        let (a, k, full) = (0.01, 125.0, 400.0);
        // no rate error: undecided at 50 units (±2 %), decided within class at 204
        assert_eq!(early_verdict(a, k, full, &counted(6250.0, 50.0)), None);
        assert_eq!(
            early_verdict(a, k, full, &counted(25_500.0, 204.0)),
            Some(true)
        );
        // the worst fraction at 204 units still decides
        assert_eq!(
            early_verdict(a, k, full, &counted(205.0 * k, 204.0)),
            Some(true)
        );
        // 5 % fast: outside what the full window allows after 30 units
        assert_eq!(
            early_verdict(a, k, full, &counted(30.0 * k * 1.05, 30.0)),
            Some(false)
        );
        assert_eq!(
            early_verdict(a, k, full, &counted(30.0 * k * 0.95, 30.0)),
            Some(false)
        );
        // just inside (0.9 %) and just outside (1.5 %) the class: only the full window decides
        for e in [0.009, 0.015, -0.015] {
            for dr in [50.0, 100.0, 204.0, 300.0] {
                let c = counted(dr * k * (1.0 + e), dr);
                assert_eq!(early_verdict(a, k, full, &c), None, "{e} at {dr}");
            }
        }
        assert_eq!(checkpoints(a, k, full), vec![8.0, 16.0, 32.0, 64.0, 204.0]);
        assert_eq!(checkpoints(a, k, 30.0), vec![8.0, 16.0]);
    }

    #[test]
    fn a_constant_clearly_off_is_decided_early_and_the_record_says_after_how_much() {
        let mut s = meter("2026-01-10T10:00:00", "hh = 30\nkk = 5", "", 3000.0);
        s.faults.pulse_constant_error_pct = Some(5.0);
        let c = run_case(&s, "pulse_out.constant");
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.message);
        let growth = measured(&c, "port2.register_growth");
        assert!((8.0..70.0).contains(&growth), "{growth}");
        assert_eq!(measured(&c, "port2.planned_growth"), 400.0);
        assert!(
            c.details.iter().any(|d| d.contains("decided after 8")),
            "{:?}",
            c.details
        );
        // a healthy one is decided within class at about half the planned window
        s.faults.pulse_constant_error_pct = None;
        let c = run_case(&s, "pulse_out.constant");
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
        let growth = measured(&c, "port2.register_growth");
        assert!((200.0..215.0).contains(&growth), "{growth}");
    }

    #[test]
    fn register_steps_are_taken_modulo_the_digits() {
        assert_eq!(register_step("1.8.0", 9_999_998.0, 3.0), 5.0);
        assert_eq!(register_step("1.8.0", 3.0, 9_999_998.0), -5.0);
        assert_eq!(register_step("1.8.0", 10.0, 12.0), 2.0);
        assert!(rolled_over("1.8.0", 9_999_998.0, 3.0));
        assert!(!rolled_over("1.8.0", 3.0, 9_999_998.0));
        assert!((register_step("1.2.0", 999_999.9, 0.4) - 0.5).abs() < 1e-6);
    }

    const ROLLING: &str = "\"1.8.0\" = 9999990\n\"1.8.1\" = 9999990\n\"1.8.2\" = 0\n\"1.8.3\" = 0\n\"1.8.4\" = 0\n\"3.8.0\" = 9999999\n\"96.8.0\" = 9999999\n";

    #[test]
    fn a_register_rolling_over_passes_monotonic_and_tariff_sum_as_information() {
        // 3 kW × ratio 80 = 240 kWh per hour: 1.8.0 rolls over during the monotonic wait
        let s = meter("2026-01-10T10:00:00", "hh = 30\nkk = 5", ROLLING, 3000.0);
        let c = run_case(&s, "readout.monotonic");
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
        assert_eq!(measured(&c, "1.8.0.rollover"), 1.0);
        assert!(measured(&c, "1.8.0.min_step") >= 0.0);
        assert!(c.message.contains("rolled over"), "{}", c.message);
        // 1.8.0 already rolled past 9999999 while the tariffs have not: 0000000 against a sum of
        // 4999999 + 5000001
        let regs = "\"1.8.0\" = 0\n\"1.8.1\" = 4999999\n\"1.8.2\" = 5000001\n\"1.8.3\" = 0\n\"1.8.4\" = 0\n";
        let s = meter("2026-01-10T10:00:00", "hh = 30\nkk = 5", regs, 3000.0);
        let c = run_case(&s, "readout.tariff_sum");
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
        assert_eq!(measured(&c, "total_minus_tariff_sum"), 0.0);
        assert_eq!(measured(&c, "rollover"), 1.0);
    }

    #[test]
    fn a_register_rolling_over_does_not_stop_the_pin_cases() {
        // KK 11: 2-tariff / A+ out; 1.8.0 and 1.8.1 roll over within the windows
        let s = meter("2026-01-10T10:00:00", "hh = 30\nkk = 11", ROLLING, 3000.0);
        let c = run_case(&s, "pulse_out.constant");
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
        assert_eq!(measured(&c, "1.8.0.rollover"), 1.0);
        // decided within class early, past the rollover
        let growth = measured(&c, "port2.register_growth");
        assert!(growth > 200.0, "{growth}");
        let c = run_case(&s, "tariff.table");
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
        assert!(measured(&c, "state0.T1_growth") >= 2.0);
    }

    #[test]
    fn a_high_load_loses_no_pulse_to_the_edge_buffer() {
        // HH 00 (ratio 1), P 1: 10,000 imp/kWh at 4.5 kW is 12.5 pulses/s, inside Imax; the
        // 48 h window is 2.16 million pulses, 4.32 million edges: more than the 4 million the
        // software meter keeps, so a single wait lost pulses and failed the meter
        let s = meter("2026-01-10T10:00:00", "hh = 0\nkk = 5\nmm = 1", "", 4500.0);
        let mut t = SimTarget::new(s.clone());
        let c = run_on(&mut t, &s, "pulse_out.constant", |_| {});
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
        assert_eq!(t.dropped_edges(Port::Port2).unwrap(), 0);
        let pulses = measured(&c, "port2.pulses");
        assert!(pulses > 2_000_000.0, "{pulses}");
        // every pulse counted: the count is within one register unit (1 kWh) of the growth
        let growth = measured(&c, "port2.register_growth");
        assert!(
            (pulses - growth * 10_000.0).abs() <= 10_000.0,
            "{pulses} for {growth} kWh"
        );
    }

    #[test]
    fn the_software_meter_reports_the_edges_it_dropped() {
        let s = meter("2026-01-10T10:00:00", "hh = 0\nkk = 5\nmm = 1", "", 4500.0);
        let mut t = SimTarget::new(s);
        // 46 h in one wait: 2.07 million pulses, 4.14 million edges, 4 million kept
        t.wait_until(Timestamp::ZERO + Duration::from_secs(46 * 3600))
            .unwrap();
        let dropped = t.dropped_edges(Port::Port2).unwrap();
        assert!(dropped > 100_000, "{dropped}");
        // those kept, but for the last pulse's trailing edge, not due yet
        assert!(t.take_edges(Port::Port2).unwrap().len() >= 3_999_999);
    }

    #[test]
    fn a_dropped_edge_is_the_rigs_error_never_the_meters_failure() {
        let s = meter("2026-01-10T10:00:00", "hh = 30\nkk = 5", "", 3000.0);
        for id in ["pulse_out.width", "pulse_out.constant"] {
            let mut sim = SimTarget::new(s.clone());
            let mut t = Layered::new(
                &mut sim,
                Seen {
                    real: false,
                    drops: 0,
                    dropping: true,
                },
            );
            let c = run_on(&mut t, &s, id, |_| {});
            assert_eq!(c.verdict, Verdict::Error, "{id}: {}", c.message);
            assert!(
                c.message.contains("lost") && c.message.contains("not the meter's"),
                "{id}: {}",
                c.message
            );
        }
    }

    #[test]
    fn small_pulse_constants_wait_as_long_as_the_constant_needs() {
        // P 2 at 1 imp/kWh, ratio 1, 1 kW: a pulse an hour (the fixed 3600 s wait saw at most
        // one and errored "is the meter loaded?")
        let s = meter(
            "2026-01-10T10:00:00",
            "hh = 0\nkk = 5\np = 2\npulse_constant = 1",
            "",
            1000.0,
        );
        for id in ["pulse_out.width", "pulse_out.pause", "pulse_out.constant"] {
            let c = run_case(&s, id);
            assert_eq!(c.verdict, Verdict::Pass, "{id}: {}", c.message);
        }
        // the wait follows the constant: 21 pulses at 1 per hour, ×4, within the 48 h window
        let mut sim = SimTarget::new(s.clone());
        let opts = RunOptions::for_target(&sim.capabilities());
        let ctx = Ctx::new(&mut sim, &s, &opts);
        assert!(ctx.caps.virtual_time);
        assert_eq!(
            pulse_wait(&ctx, Port::Port2, 20),
            Duration::from_secs(48 * 3600)
        );
        assert_eq!(expected_rate(&ctx, PortRole::ActiveOut), Some(1.0 / 3600.0));
    }

    #[test]
    fn too_little_energy_in_the_longest_window_is_inconclusive() {
        // HH 00, 3 kW: 1 kWh takes 20 min; a 60 s window cannot show one whole kWh
        let s = meter("2026-01-10T10:00:00", "hh = 0\nkk = 11", "", 3000.0);
        let c = run_on(
            &mut SimTarget::new(s.clone()),
            &s,
            "pulse_out.constant",
            |o| o.max_constant_window = Duration::from_secs(60),
        );
        assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.message);
        assert!(c.message.contains("--max-constant-window"), "{}", c.message);
        let c = run_on(&mut SimTarget::new(s.clone()), &s, "tariff.table", |o| {
            o.max_constant_window = Duration::from_secs(1200)
        });
        assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.message);
        assert!(c.message.contains("2 kWh"), "{}", c.message);
    }

    /// KK 17 (max reset / A+ out), J 2 (15 min), NN 1, with a peak to reset.
    const MAX_RESET: &str = "hh = 30\nj = 2\nkk = 17\nnn = 1";
    const PEAKS: &str =
        "\"1.6.0\" = 0.1\n\"1.6.0.1\" = 5.0\n\"1.2.0\" = 100.0\n\"0.1\" = 9999999\n";

    #[test]
    fn the_meters_own_midnight_and_period_end_do_not_fail_the_max_reset() {
        // NN 1 midnight 10 s after the start, inside the first readout; then a period end
        // 5 s after the start with 240 kW raising the 0.1 kW peak before the input resets it
        for start in ["2026-01-31T23:59:50", "2026-01-20T10:44:55"] {
            let s = meter(start, MAX_RESET, PEAKS, 3000.0);
            let c = run_case(&s, "max_reset.peak_reset");
            assert_eq!(c.verdict, Verdict::Pass, "{start}: {}", c.message);
            assert_eq!(measured(&c, "reset_counter_step"), 1.0, "{start}");
            assert_eq!(measured(&c, "last_month_peak_minus_peak_before"), 0.0);
            // and on a target whose clock the rig cannot see, by re-trying
            let mut sim = SimTarget::new(s.clone());
            let mut t = Layered::new(
                &mut sim,
                Seen {
                    real: true,
                    drops: 0,
                    dropping: false,
                },
            );
            let c = run_on(&mut t, &s, "max_reset.peak_reset", |_| {});
            assert_eq!(c.verdict, Verdict::Pass, "{start} (real): {}", c.message);
            assert_eq!(measured(&c, "reset_counter_step"), 1.0, "{start}");
            assert_eq!(c.details.len(), 1, "one re-try: {:?}", c.details);
        }
    }

    #[test]
    fn a_max_reset_the_meter_ignores_still_fails() {
        let text = format!(
            "profile = \"351-combi\"\nstart = \"2026-01-31T23:59:50\"\n[config]\n{MAX_RESET}\n\
             [registers]\n{PEAKS}\n[load]\nactive_w = 3000.0\n[faults]\nmax_reset_ignored = true\n"
        );
        let s = MeterSpec::from_toml(&text, "test", None).unwrap();
        let c = run_case(&s, "max_reset.peak_reset");
        assert_eq!(c.verdict, Verdict::Fail, "{}", c.message);
        assert_eq!(measured(&c, "reset_counter_step"), 0.0);
    }

    #[test]
    fn a_peak_below_the_registers_resolution_is_inconclusive_after_a_bounded_wait() {
        // HH 00, 50 W: the peak is 0.05 kW and shows 0.0 however long the case waits
        let s = meter(
            "2026-01-10T10:00:00",
            "hh = 0\nj = 2\nkk = 17\nnn = 0",
            "\"1.6.0\" = 0.0\n",
            50.0,
        );
        let mut t = SimTarget::new(s.clone());
        let c = run_on(&mut t, &s, "max_reset.peak_reset", |o| {
            o.max_constant_window = Duration::from_secs(6 * 3600)
        });
        assert_eq!(c.verdict, Verdict::Inconclusive, "{}", c.message);
        assert!(c.message.contains("0.1 kW"), "{}", c.message);
        let waited = c.target_time_s.1 - c.target_time_s.0;
        assert!((5.0 * 3600.0..=6.5 * 3600.0).contains(&waited), "{waited}");
        // 200 W: the first period shows 0.2 kW and the case judges it
        let s = meter(
            "2026-01-10T10:00:00",
            "hh = 0\nj = 2\nkk = 17\nnn = 0",
            "\"1.6.0\" = 0.0\n",
            200.0,
        );
        let c = run_case(&s, "max_reset.peak_reset");
        assert_eq!(c.verdict, Verdict::Pass, "{}", c.message);
    }
}
