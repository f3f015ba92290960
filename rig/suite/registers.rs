//! What the registers mean, not only how they are written: the hour counter's rate, the peaks
//! (max demand) over logging periods of length J, the move at a max reset and at the NN logging
//! date, whole-kWh truncation and the customer number (issue 13).
//!
//! Expectations come from the data sheets (`meter::sheet`, `meter::profile`) and from what the
//! meter file declares as the meter's environment: its load at the terminals (the reference a
//! test bench would apply) and its clock at virtual time zero. They never come from the software
//! meter's tables. Times come only from the target's clock and readout snapshots. A case that
//! needs something the module interface cannot show (the meter's clock, its register fractions,
//! an output port) skips and says so; an observation that cannot decide (no new peak in the
//! window, a peak below the 0.1 kW resolution) is inconclusive, never a pass.

use std::time::Duration;

use super::pins::register_step;
use super::plan::{human, PlanCtx, Wait};
use super::{fmt_num, Ctx, Judgement, Measurement, Readout, Shared, Verdict};
use crate::meter::calendar;
use crate::meter::config::{Load, MeterSpec, PulseBasis};
use crate::meter::io::PortRole;
use crate::meter::profile::{Clause, Profile, ProfileId, SHEET_351, SPEC_351};
use crate::meter::sheet;
use crate::target::{Drive, Port, TargetError};
use crate::time::{TimeSource, Timestamp};

/// The ids this module runs.
pub const IDS: [&str; 6] = [
    "readout.hour_counter",
    "readout.truncation",
    "readout.customer_number",
    "max_demand.peak",
    "max_demand.reset",
    "logging.monthly",
];

/// The clause each case checks, from the data sheet of `profile`'s meter: the 351 Combi's (000,
/// 004), or the OMNIPOWER's (002 three-phase, 003 CT), whose sheets name the registers (hour
/// counter, peak powers, accumulated peaks), the integration period Z4 and the debiting stop date
/// Z6 / interval Z7 but not the mode A readout: there the 351's layout is the assumption the
/// profile records.
pub fn clause_for(id: &str, profile: &Profile) -> Clause {
    if profile.id == ProfileId::Combi351 {
        return clause_351(id);
    }
    let source = profile.sources.first().copied().unwrap_or(SHEET_351);
    let section = match id {
        "readout.hour_counter" => "Permanent memory, Various: Hour counter (as 96.8.0 in h of the 351 mode A layout, assumed)",
        "readout.truncation" => "Permanent memory, Energy registers: Active positive primary energy A+ (whole kWh in the 351 mode A layout's 7 digits, assumed)",
        "readout.customer_number" => "Optical interface: meter number and other settings (as 0.0.0 of the 351 mode A layout, assumed)",
        "max_demand.peak" => "Permanent memory, Power registers: Peak power P+max / Q+max over Z4 Integration period",
        "max_demand.reset" => "Permanent memory, Power registers: Accumulated peak power P+max / Q+max at the end of a debiting period",
        _ => "Permanent memory: values stored at the end of a debiting period; Z6 Debiting stop date, Z7 Debiting logging interval",
    };
    Clause { source, section }
}

fn clause_351(id: &str) -> Clause {
    let section = match id {
        "readout.hour_counter" => "Display configurations, Operating hour counter: the number of hours the meter has been in operation (96.8.0 in h, 004)",
        "readout.truncation" => "Display: the total value for consumed energy in 7 digits (kWh) — a whole-kWh register shows completed kWh, it steps when the kWh is complete",
        "readout.customer_number" => "IEC61107 data request: 0.0.0(00000000) Customer number (000 Display configuration, Meter number: a separate programmed 8 digit number)",
        "max_demand.peak" => "Display configuration, Active/Reactive peak power: the highest power of the month averaged over the logging period J (primary value); Configuration 1 J",
        "max_demand.reset" => "KK Module i/o (Max reset) with Permanent memory b) Monthly data: peak to last month, accumulated peak (APK), reset counter 0.1 (004)",
        _ => "Permanent memory b) Monthly data saved at 00.00.00 on the configured day; Configuration 2 NN (00 = module controlled)",
    };
    let source = if id == "readout.customer_number" {
        SPEC_351
    } else {
        SHEET_351
    };
    Clause { source, section }
}

// ---------------------------------------------------------------------------------------------
// shared helpers

const NS_PER_S: u64 = 1_000_000_000;
/// mW·ns in one kWh.
const MWNS_PER_KWH: i128 = 3_600_000_000_000_000_000;

/// Register values of a readout, or an error judgement naming the missing ones.
fn values<const N: usize>(
    r: &Readout,
    addrs: [&str; N],
    clause: Clause,
) -> Result<[f64; N], Judgement> {
    let n = r.numbers();
    let missing: Vec<&str> = addrs
        .iter()
        .copied()
        .filter(|a| !n.contains_key(*a))
        .collect();
    if !missing.is_empty() {
        return Err(Judgement::error(
            clause,
            format!("{} missing from the readout", missing.join(", ")),
        ));
    }
    Ok(addrs.map(|a| n[a]))
}

/// A register value in tenths (the 0.1 kW resolution of 004's `000000.0`), exact.
fn tenths(x: f64) -> i64 {
    (x * 10.0).round() as i64
}

/// Skip for a target whose clock is not the meter's: the readout carries no date or time.
fn needs_meter_clock(ctx: &Ctx<'_>, clause: Clause, what: &str) -> Option<Judgement> {
    (!ctx.caps.virtual_time).then(|| {
        Judgement::skip(
            clause,
            format!(
                "{}: {what} needs the meter's clock, and the readout (004) carries no date or time; \
                 run it against the software meter, whose clock is the meter file's start",
                ctx.target.describe()
            ),
        )
    })
}

/// The meter's clock at virtual time `t`, unix seconds (software meter: the meter file's start).
fn meter_unix_s(spec: &MeterSpec, t: Timestamp) -> i64 {
    let s = spec.start;
    calendar::days_from_civil(s.year, s.month, s.day) * 86_400
        + s.secs as i64
        + (t.0 / NS_PER_S) as i64
}

/// The virtual time at which the meter's clock shows unix second `u` (≥ 0 assumed).
fn at_unix(spec: &MeterSpec, u: i64) -> Timestamp {
    let base = meter_unix_s(spec, Timestamp::ZERO);
    Timestamp(((u - base).max(0) as u64) * NS_PER_S)
}

/// Waits until `t` on the target's clock in steps of at most an hour, taking pulse edges off the
/// output ports as it goes (a month of pulses would otherwise pile up in the target). The wait is
/// lent to other cases first ([`Ctx::share_wait`]): the callers' plans declare it
/// ([`super::plan::Wait::idle`]).
fn wait_until(ctx: &mut Ctx<'_>, t: Timestamp) -> Result<(), TargetError> {
    // a passive wait: other cases that fit may run in it first
    ctx.share_wait(t)?;
    loop {
        let now = ctx.target.now()?;
        if now >= t {
            return Ok(());
        }
        let step = (now + Duration::from_secs(3600)).min(t);
        ctx.wait_until(step)?;
        if ctx.caps.pins {
            for p in Port::ALL {
                if ctx.spec.io.role(p).is_output() {
                    // a drain, not an observation: nothing goes to the observers
                    ctx.ports()?.discard_edges(p)?;
                }
            }
        }
    }
}

/// A readout taken when the target's clock shows `t` (or now, if later).
fn readout_at(ctx: &mut Ctx<'_>, t: Timestamp) -> Result<Readout, TargetError> {
    wait_until(ctx, t)?;
    ctx.readout()
}

/// Energy the declared load delivers at the meter terminals from virtual zero to `t`:
/// (active mW·ns, reactive mvar·ns), secondary.
fn declared_energy(load: &Load, t: u64) -> (i128, i128) {
    let within = |upto: u64, span_end: Option<u64>| -> (i128, i128) {
        let mut e = (0i128, 0i128);
        for (i, s) in load.steps.iter().enumerate() {
            if s.offset_ns >= upto {
                break;
            }
            let next = load.steps.get(i + 1).map(|n| n.offset_ns).or(span_end);
            let end = next.map_or(upto, |n| n.min(upto));
            let dt = (end - s.offset_ns) as i128;
            e.0 += s.active_mw as i128 * dt;
            e.1 += s.reactive_mvar as i128 * dt;
        }
        e
    };
    match load.repeat_ns {
        Some(r) if r > 0 => {
            let cycles = (t / r) as i128;
            let full = within(r, Some(r));
            let part = within(t % r, Some(r));
            (full.0 * cycles + part.0, full.1 * cycles + part.1)
        }
        _ => within(t, None),
    }
}

/// The active energy the declared load delivers from virtual zero to `t` ns: mW·ns, secondary.
pub(crate) fn declared_energy_of(load: &Load, t: u64) -> i128 {
    declared_energy(load, t).0
}

/// Average primary power over `[a, b)` from the declared load, truncated to the 0.1 kW display
/// step, in tenths of kW (active, reactive).
fn period_peak_tenths(spec: &MeterSpec, a: u64, b: u64) -> (i64, i64) {
    let (ea, ra) = declared_energy(&spec.load, a);
    let (eb, rb) = declared_energy(&spec.load, b);
    let len = (b - a) as i128;
    let ratio = spec.ratio as i128;
    // mW·ns × ratio / ns = primary mW; 100,000 mW = 0.1 kW
    let t = |e: i128| ((e * ratio / len) / 100_000) as i64;
    (t(eb - ea), t(rb - ra))
}

/// The logging (peak) period the sheet gives for the meter's J code, minutes (000 Configuration
/// 1, J; `meter::sheet`), not the value the software meter resolved for itself.
fn period_min(spec: &MeterSpec) -> u32 {
    let j = spec.codes.j.unwrap_or(2);
    sheet::J_PERIOD_MIN
        .iter()
        .find(|(code, _)| *code == j)
        .map_or(spec.logging_period_min, |r| r.1)
}

/// Logging-period boundaries (virtual ns) on the meter's clock ending in `(from, to]`, with the
/// start of each period: J minutes aligned to the meter's midnight.
fn periods_ending_in(spec: &MeterSpec, from: Timestamp, to: Timestamp) -> Vec<(u64, u64)> {
    let j = period_min(spec) as i64 * 60;
    let u0 = meter_unix_s(spec, from);
    let mut end = (u0.div_euclid(j) + 1) * j;
    let mut out = Vec::new();
    loop {
        let e = at_unix(spec, end);
        if e > to {
            return out;
        }
        if e > from && end - j >= meter_unix_s(spec, Timestamp::ZERO) {
            out.push((at_unix(spec, end - j).0, e.0));
        }
        end += j;
    }
}

/// The next logging-period boundary strictly after `t`.
fn next_boundary(spec: &MeterSpec, t: Timestamp) -> Timestamp {
    let j = period_min(spec) as i64 * 60;
    at_unix(spec, (meter_unix_s(spec, t).div_euclid(j) + 1) * j)
}

/// The next midnight on which the meter must log (NN ≥ 1), after `t`.
fn next_logging(spec: &MeterSpec, t: Timestamp) -> Option<Timestamp> {
    let nn = spec.logging_day;
    (nn != sheet::NN_MODULE_CONTROLLED)
        .then(|| at_unix(spec, calendar::next_logging(meter_unix_s(spec, t), nn)))
}

fn io_text(spec: &MeterSpec) -> String {
    let code = match spec.profile.io_table {
        crate::meter::profile::IoTable::Kk351 => "KK",
        crate::meter::profile::IoTable::Z3 => "Z3",
    };
    format!("{code} {:02} ({})", spec.io.code, spec.io.description)
}

/// A measurement on register values (no uncertainty beyond the display step `u`).
fn reg(name: &str, value: f64, unit: &str, lo: f64, hi: f64, u: f64) -> Measurement {
    Measurement::new(
        name,
        value,
        unit,
        Some(lo),
        Some(hi),
        TimeSource::Register,
        u,
    )
}

/// The verdict of measurements plus questions the observation could not decide.
/// Fail when a measurement fails; inconclusive when something the verdict rests on could not be
/// decided; otherwise pass.
fn judge(clause: Clause, ms: Vec<Measurement>, undecided: Vec<String>, ok: String) -> Judgement {
    let mut j = Judgement::from_problems(clause, vec![], ms, ok);
    if j.verdict == Verdict::Pass && !undecided.is_empty() {
        j.verdict = Verdict::Inconclusive;
        j.message = format!("{}; {}", undecided.join("; "), j.message);
    }
    j.details.extend(undecided);
    j
}

/// For cases that judge independent quantities (the active and the reactive peak): fail when a
/// measurement fails; pass on the quantities that could be decided, naming those that could
/// not (a reactive load below the display's 0.1 kvar step beside a decided active peak);
/// inconclusive when none could.
fn judge_each(
    clause: Clause,
    ms: Vec<Measurement>,
    undecided: Vec<String>,
    ok: String,
) -> Judgement {
    let decided = ms.iter().any(|m| m.low.is_some() || m.high.is_some());
    if !decided {
        return judge(clause, ms, undecided, ok);
    }
    let mut j = Judgement::from_problems(clause, vec![], ms, ok);
    if j.verdict == Verdict::Pass && !undecided.is_empty() {
        j.message = format!("{}; not decided: {}", j.message, undecided.join("; "));
    }
    j.details.extend(undecided);
    j
}

/// How long the longest answer of the run took, from the request's end to its last character
/// (a conforming meter may pause up to 1500 ms between characters: minutes per answer), plus a
/// second. Readouts placed around the meter's own events start this much earlier.
fn answer_span(ctx: &mut Ctx<'_>) -> Result<Duration, TargetError> {
    if ctx.log.is_empty() {
        ctx.readout()?;
    }
    let longest = ctx
        .log
        .iter()
        .map(|n| n.answer_end.saturating_since(n.request_end))
        .max()
        .unwrap_or_default();
    Ok(longest + Duration::from_secs(1))
}

// ---------------------------------------------------------------------------------------------
// readout.hour_counter

/// 96.8.0 against the target's clock over a window (24 h, or `--max-constant-window` if shorter;
/// a real-time target whose window is 4 h or less skips, naming the option):
/// a counter of whole hours moves by the elapsed hours E within ±1 h of quantisation, so the step
/// must lie in [E − 1, E + 1] h. Half rate, a stuck counter and minutes counted as hours all leave
/// that band once E > 4 h; a shorter window says which defects it cannot see.
pub(crate) fn hour_counter(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let window = Duration::from_secs(24 * 3600).min(ctx.opts.max_constant_window);
    if !ctx.caps.virtual_time && window <= Duration::from_secs(4 * 3600) {
        return Ok(Judgement::skip(
            clause,
            format!(
                "{}: telling half rate from full rate takes a window over 4 h on the target's clock; \
                 --max-constant-window allows {} s (raise it, e.g. to 24h, to run this case)",
                ctx.target.describe(),
                window.as_secs()
            ),
        ));
    }
    let a = ctx.readout()?;
    wait_until(ctx, a.snapshot_time() + window)?;
    let b = ctx.readout()?;
    let (ha, hb) = match (
        values(&a, ["96.8.0"], clause),
        values(&b, ["96.8.0"], clause),
    ) {
        (Ok([x]), Ok([y])) => (x, y),
        (Err(j), _) | (_, Err(j)) => return Ok(j),
    };
    let elapsed_h = b.snapshot_time().diff_ns(a.snapshot_time()) as f64 / 3.6e12;
    let step = (hb - ha).rem_euclid(10_000_000.0);
    let ms = vec![
        reg(
            "hour_counter_step",
            step,
            "h",
            elapsed_h - 1.0,
            elapsed_h + 1.0,
            1.0,
        ),
        Measurement::info("elapsed", elapsed_h, "h", ctx.caps.data_timing, 0.0),
    ];
    let mut undecided = vec![];
    if elapsed_h <= 4.0 {
        undecided.push(format!(
            "a {} h window cannot tell half rate from full rate (needs > 4 h: raise --max-constant-window)",
            fmt_num(elapsed_h)
        ));
    }
    let ok = format!(
        "96.8.0 moved {} h in {} h on the target's clock (±1 h quantisation)",
        fmt_num(step),
        fmt_num(elapsed_h)
    );
    Ok(judge(clause, ms, undecided, ok))
}

// ---------------------------------------------------------------------------------------------
// readout.customer_number

/// 0.0.0 equals the 8-digit customer number the meter file declares (the software meter, or a
/// real meter run with `--meter FILE`).
pub(crate) fn customer_number(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    if !ctx.opts.check_type_number {
        return Ok(Judgement::skip(
            clause,
            "no meter file declares this meter's customer number: give it with --meter FILE ([registers] \"0.0.0\")",
        ));
    }
    let Some(declared) = ctx.spec.registers.get("0.0.0").copied() else {
        return Ok(Judgement::skip(
            clause,
            "the meter file declares no customer number ([registers] \"0.0.0\")",
        ));
    };
    let r = ctx.readout()?;
    let sent = r
        .tolerant
        .data_sets
        .iter()
        .find(|d| d.address == "0.0.0")
        .and_then(|d| d.values.first())
        .map(|v| v.raw.clone());
    let want = format!("{:08}", declared as u64);
    let digits = sheet::data_set("0.0.0").map_or(8, |d| d.int as usize);
    let problems = match &sent {
        None => vec!["0.0.0 missing from the readout".to_string()],
        Some(s) if *s != want => vec![format!(
            "0.0.0 is {s:?}, the meter file declares {want:?} ({digits} digits, 004)"
        )],
        Some(_) => vec![],
    };
    Ok(Judgement::from_problems(
        clause,
        problems,
        vec![],
        format!("0.0.0 = {want}, as declared"),
    ))
}

// ---------------------------------------------------------------------------------------------
// readout.truncation

/// Whole-kWh truncation of 1.8.0: on the software meter the meter file declares the register at
/// its start (whole kWh) and the load, so the energy registered is known at every instant. A
/// readout taken when the register's fraction is about 0.6 must still show the lower whole kWh
/// (rounding shows the upper), and one at about 1.05 the next. The output pulses over the same
/// interval cross-check the declared load (class 1 plus one pulse); a mismatch is inconclusive.
pub(crate) fn truncation(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    if let Some(j) = needs_meter_clock(
        ctx,
        clause,
        "placing a readout against the register's fraction",
    ) {
        return Ok(j);
    }
    let spec = ctx.spec;
    let Some(init) = declared_whole_kwh(spec, "1.8.0") else {
        return Ok(Judgement::skip(
            clause,
            "the meter file declares 1.8.0 with a fraction: its start is not on a whole kWh",
        ));
    };
    // registered primary kWh (× 1000) at t, from the declared load
    let mkwh = |t: u64| {
        init as i128 * 1000
            + declared_energy(&spec.load, t).0 * spec.ratio as i128 * 1000 / MWNS_PER_KWH
    };
    let now = ctx.target.now()?;
    let Some((t_low, t_high)) = truncation_times(spec, init, ctx.opts, now) else {
        return Ok(Judgement::inconclusive(
            clause,
            format!(
                "the declared load does not register 1.05 kWh more within {} s (--max-constant-window)",
                ctx.opts.max_constant_window.as_secs()
            ),
        ));
    };
    let port = ctx
        .caps
        .pins
        .then(|| ctx.spec.io.find(|r| r == PortRole::ActiveOut))
        .flatten();
    // plain waits: the pulses between the two readouts are the cross-check
    ctx.wait_until(t_low)?;
    if let Some(p) = port {
        ctx.take_edges(p)?;
    }
    let a = ctx.readout()?;
    ctx.wait_until(t_high)?;
    let b = ctx.readout()?;
    let (ra, rb) = match (values(&a, ["1.8.0"], clause), values(&b, ["1.8.0"], clause)) {
        (Ok([x]), Ok([y])) => (x, y),
        (Err(j), _) | (_, Err(j)) => return Ok(j),
    };
    let (va, vb) = (mkwh(a.snapshot_time().0), mkwh(b.snapshot_time().0));
    let fa = (va % 1000) as f64 / 1000.0;
    // whole kWh registered: what a truncating register shows, in the register's 7 digits
    let whole = |v: i128| ((v / 1000).rem_euclid(10_000_000)) as f64;
    let (wa, wb) = (whole(va), whole(vb));
    let ms = vec![
        reg("register_at_fraction", ra, "kWh", wa, wa, 0.0),
        reg("register_after_step", rb, "kWh", wb, wb, 0.0),
        Measurement::info(
            "fraction_at_first_readout",
            fa,
            "kWh",
            TimeSource::Register,
            0.0,
        ),
    ];
    let mut undecided = vec![];
    if let Some(p) = port {
        let edges = ctx.take_edges(p)?;
        let span = (a.snapshot_time(), b.snapshot_time());
        let kwh = (vb - va) as f64 / 1000.0;
        undecided.extend(pulse_cross_check(spec, p, &edges, span, kwh));
    }
    let ok = format!(
        "1.8.0 showed {} kWh at {} kWh registered and stepped to {} by {} kWh (truncated, not rounded)",
        fmt_num(ra),
        fmt_num(va as f64 / 1000.0),
        fmt_num(rb),
        fmt_num(vb as f64 / 1000.0)
    );
    Ok(judge(clause, ms, undecided, ok))
}

/// When `readout.truncation` reads (target time): where the registered energy from the declared
/// load passes the next whole kWh by 0.6 and by 1.05 kWh, within `--max-constant-window` of
/// `now`; `None` when the load does not get there.
fn truncation_times(
    spec: &MeterSpec,
    init: f64,
    opts: &super::RunOptions,
    now: Timestamp,
) -> Option<(Timestamp, Timestamp)> {
    let mkwh = |t: u64| {
        init as i128 * 1000
            + declared_energy(&spec.load, t).0 * spec.ratio as i128 * 1000 / MWNS_PER_KWH
    };
    let window = opts.max_constant_window.as_nanos() as u64;
    let whole = mkwh(now.0) / 1000 + 1;
    let at = |milli: i128| {
        first_time_reaching(now.0, now.0 + window, |t| mkwh(t) >= whole * 1000 + milli)
    };
    Some((Timestamp(at(600)?), Timestamp(at(1050)?)))
}

/// The whole kWh the meter file declares for `address` at its start (0 when not declared), or
/// `None` when it declares a fraction.
fn declared_whole_kwh(spec: &MeterSpec, address: &str) -> Option<f64> {
    match spec.registers.get(address) {
        None => Some(0.0),
        Some(v) => (v.fract() == 0.0).then_some(*v),
    }
}

/// Whether the pulses on `port` in `(ta, tb]` agree with `kwh` of registered (primary) energy
/// from the declared load, within class accuracy and one pulse; `Some(reason)` when they do not,
/// or when the output cannot carry that many pulses (30/80 ms pulses and 30 ms pauses).
fn pulse_cross_check(
    spec: &MeterSpec,
    port: Port,
    edges: &[crate::uart::Edge],
    (ta, tb): (Timestamp, Timestamp),
    kwh: f64,
) -> Option<String> {
    let pulses = edges
        .iter()
        .filter(|e| e.level.is_low() && e.t > ta && e.t <= tb)
        .count() as f64;
    // pulses per kWh of the register (registers show true energy)
    let k = match spec.pulse_basis {
        PulseBasis::Secondary => spec.pulse_constant as f64 / spec.ratio as f64,
        PulseBasis::Primary => spec.pulse_constant as f64,
    };
    let expect = kwh * k;
    let secs = tb.diff_ns(ta) as f64 / 1e9;
    let max_rate = 1000.0 / (spec.pulse_width_ms + spec.profile.min_pause_ms);
    if expect / secs > max_rate {
        return Some(format!(
            "{port} would need {} pulses/s, more than the {} pulses/s {} ms pulses and {} ms pauses allow: no pulse cross-check of the declared load",
            fmt_num(expect / secs),
            fmt_num(max_rate),
            fmt_num(spec.pulse_width_ms),
            fmt_num(spec.profile.min_pause_ms)
        ));
    }
    let a = spec.profile.accuracy_pct / 100.0;
    ((pulses - expect).abs() > expect * a + 1.0).then(|| {
        format!(
            "{port} gave {pulses} pulses where the declared load makes {}: the meter is not measuring the load its file declares",
            fmt_num(expect)
        )
    })
}

/// The first virtual time in `[from, to]` (1 ms resolution) where the monotone `reached` holds.
fn first_time_reaching(from: u64, to: u64, reached: impl Fn(u64) -> bool) -> Option<u64> {
    if !reached(to) {
        return None;
    }
    let (mut lo, mut hi) = (from, to);
    while hi - lo > 1_000_000 {
        let mid = lo + (hi - lo) / 2;
        if reached(mid) {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    Some(hi)
}

// ---------------------------------------------------------------------------------------------
// max_demand.peak

/// 1.6.0 and 3.6.0 over at least four whole logging periods of length J on the meter's clock:
/// after the window each must equal the month's maximum — the larger of its value before and the
/// highest period average of primary power the declared load gives — truncated to 0.1, with one
/// display step below allowed. A window whose highest period is not ≥ 0.2 above the peak already
/// shown cannot tell an update from none: inconclusive.
pub(crate) fn peak(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    if let Some(j) = needs_meter_clock(ctx, clause, "placing the logging periods") {
        return Ok(j);
    }
    let spec = ctx.spec;
    let j_len = Duration::from_secs(period_min(spec) as u64 * 60);
    let now = ctx.target.now()?;
    // a meter started mid-period averages a partial first period: start after it
    let mut start = now.max(next_boundary(spec, Timestamp::ZERO) + Duration::from_secs(1));
    if let Some(l) = next_logging(spec, start) {
        if l <= start + j_len * 5 + Duration::from_secs(60) {
            start = l + Duration::from_secs(1);
        }
    }
    let regs = ["1.6.0", "3.6.0"];
    let window_end = |t0: Timestamp| next_boundary(spec, t0) + j_len * 3 + Duration::from_secs(60);
    let mut a = readout_at(ctx, start)?;
    if let (Ok(p), Some(l)) = (
        values(&a, regs, clause),
        next_logging(spec, a.snapshot_time()),
    ) {
        let t0 = a.snapshot_time();
        let h = window_highest(spec, t0, window_end(t0));
        let l1 = l + Duration::from_secs(1);
        let after = window_highest(spec, l1, window_end(l1));
        if (h.0 < tenths(p[0]) + 2 || h.1 < tenths(p[1]) + 2) && (after.0 >= 2 || after.1 >= 2) {
            // the month's peak already covers what the load can show: a new month starts from
            // zero at the logging date (waiting for it is free in virtual time); a load too
            // small to show a peak even then is judged (undecided) without the wait
            a = readout_at(ctx, l1)?;
        }
    }
    let t0 = a.snapshot_time();
    let b = readout_at(ctx, window_end(t0))?;
    let (before, after) = match (values(&a, regs, clause), values(&b, regs, clause)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(j), _) | (_, Err(j)) => return Ok(j),
    };
    let periods = periods_ending_in(spec, t0, b.snapshot_time());
    let highest = window_highest(spec, t0, b.snapshot_time());
    let mut ms = vec![Measurement::info(
        "periods",
        periods.len() as f64,
        "periods",
        TimeSource::Register,
        0.0,
    )];
    let mut undecided = vec![];
    for (i, (addr, unit)) in [("1.6.0", "kW"), ("3.6.0", "kvar")].into_iter().enumerate() {
        let win = if i == 0 { highest.0 } else { highest.1 };
        let r0 = tenths(before[i]);
        ms.push(Measurement::info(
            &format!("{addr}.highest_period"),
            win as f64 / 10.0,
            unit,
            TimeSource::Register,
            0.1,
        ));
        if win < r0 + 2 {
            undecided.push(format!(
                "{addr}: no {}-min period rose 0.2 {unit} above the month's peak {} (highest {}), so an update cannot be told from none",
                period_min(spec),
                fmt_num(before[i]),
                fmt_num(win as f64 / 10.0)
            ));
            continue;
        }
        let want = r0.max(win);
        ms.push(reg(
            addr,
            after[i],
            unit,
            (want - 1) as f64 / 10.0,
            want as f64 / 10.0,
            0.1,
        ));
    }
    let ok = format!(
        "over {} periods of {} min: 1.6.0 {} → {} kW, 3.6.0 {} → {} kvar, the month's maximum of the primary period averages",
        periods.len(),
        period_min(spec),
        fmt_num(before[0]),
        fmt_num(after[0]),
        fmt_num(before[1]),
        fmt_num(after[1])
    );
    Ok(judge_each(clause, ms, undecided, ok))
}

/// The highest period averages (tenths of kW, kvar) of the periods ending in `(from, to]`.
fn window_highest(spec: &MeterSpec, from: Timestamp, to: Timestamp) -> (i64, i64) {
    periods_ending_in(spec, from, to)
        .iter()
        .fold((0, 0), |m, &(s, e)| {
            let p = period_peak_tenths(spec, s, e);
            (m.0.max(p.0), m.1.max(p.1))
        })
}

// ---------------------------------------------------------------------------------------------
// moves (max reset, logging date)

/// The seven registers a move touches, in this order.
const MOVE_REGS: [&str; 7] = [
    "1.6.0", "3.6.0", "1.6.0.1", "3.6.0.1", "1.2.0", "3.2.0", "0.1",
];

/// Judges a move between readouts `a` (before) and `b` (after): the peaks to move are
/// `moved` (tenths of kW / kvar, already including any period that ended in between); they
/// must appear in 1.6.0.1/3.6.0.1, add to 1.2.0/3.2.0, and 0.1 must count one.
fn judge_move(
    prefix: &str,
    before: &[f64; 7],
    after: &[f64; 7],
    moved: (i64, i64),
    ms: &mut Vec<Measurement>,
    undecided: &mut Vec<String>,
) {
    let step = register_step("0.1", before[6], after[6]);
    ms.push(reg(
        &format!("{prefix}reset_counter_step"),
        step,
        "resets",
        1.0,
        1.0,
        0.0,
    ));
    let rows = [
        ("1.6.0", "1.6.0.1", "1.2.0", "kW"),
        ("3.6.0", "3.6.0.1", "3.2.0", "kvar"),
    ];
    for (i, (peak, last, acc, unit)) in rows.into_iter().enumerate() {
        let m = if i == 0 { moved.0 } else { moved.1 };
        let name = |s: &str| format!("{prefix}{s}");
        ms.push(reg(
            &name(&format!("{peak}.after")),
            after[i],
            unit,
            0.0,
            0.0,
            0.1,
        ));
        if m == tenths(before[2 + i]) {
            undecided.push(format!(
                "{peak} to move ({} {unit}) equals {last} already: the move cannot be seen",
                fmt_num(m as f64 / 10.0)
            ));
        } else {
            let (lo, hi) = ((m - 1) as f64 / 10.0, m as f64 / 10.0);
            ms.push(reg(&name(last), after[2 + i], unit, lo, hi, 0.1));
        }
        // exact inside the meter and shown truncated, as is the peak it adds: two display steps
        // either way (in tenths, so no binary fraction decides)
        let (lo, hi) = ((m - 2) as f64 / 10.0, (m + 2) as f64 / 10.0);
        // the accumulated register rolls over at 999999.9 like any counter
        let grown = tenths(register_step(acc, before[4 + i], after[4 + i])) as f64 / 10.0;
        ms.push(reg(&name(&format!("{acc}.step")), grown, unit, lo, hi, 0.1));
    }
}

/// Asserts the max-reset input, reads while it is held, releases it and reads again.
fn press(ctx: &mut Ctx<'_>, port: Port) -> Result<(Readout, Readout), TargetError> {
    ctx.ports()?.set_input(port, Drive::Active)?;
    ctx.wait(Duration::from_secs(1))?;
    let held = ctx.readout()?;
    ctx.ports()?.set_input(port, Drive::Inactive)?;
    ctx.wait(Duration::from_secs(1))?;
    Ok((held, ctx.readout()?))
}

// ---------------------------------------------------------------------------------------------
// max_demand.reset

/// A max reset on the module input's assert edge: read just before, assert, read while it is
/// held (the move must have happened), release, read again (no second move on the release). When
/// the peaks to move equal 1.6.0.1/3.6.0.1 already (a steady load), a second press inside the same
/// logging period moves the zeroed peaks, which a move shows and a missing move does not.
pub(crate) fn max_reset(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    let spec = ctx.spec;
    let Some(port) = spec
        .io
        .find(|r| matches!(r, PortRole::MaxReset | PortRole::DebitingStop))
    else {
        return Ok(Judgement::skip(
            clause,
            format!("{} has no max-reset input", io_text(spec)),
        ));
    };
    if !ctx.caps.pins {
        return Ok(Judgement::skip(
            clause,
            format!(
                "{} has no pins: the max-reset input needs the module's ports",
                ctx.target.describe()
            ),
        ));
    }
    let j_len = Duration::from_secs(period_min(spec) as u64 * 60);
    let mut a = ctx.readout()?;
    if values(&a, ["1.6.0"], clause).is_ok_and(|[p]| p < 0.1) {
        // no peak to move yet: let a logging period complete
        ctx.wait(j_len + Duration::from_secs(1))?;
        a = ctx.readout()?;
    }
    if ctx.caps.virtual_time {
        // keep a period end (and so a logging date) out of the reset and the readout after it
        let now = ctx.target.now()?;
        let nb = next_boundary(spec, now);
        if nb < now + Duration::from_secs(180) + answer_span(ctx)? * 4 {
            wait_until(ctx, nb + Duration::from_secs(1))?;
            a = ctx.readout()?;
        }
    }
    let (b, c) = press(ctx, port)?;
    let (va, vb, vc) = match (
        values(&a, MOVE_REGS, clause),
        values(&b, MOVE_REGS, clause),
        values(&c, MOVE_REGS, clause),
    ) {
        (Ok(x), Ok(y), Ok(z)) => (x, y, z),
        (Err(j), _, _) | (_, Err(j), _) | (_, _, Err(j)) => return Ok(j),
    };
    let mut ms = vec![];
    let mut undecided = vec![];
    // a period that ended between the first readout and the press raised the peak that moved
    let between = if ctx.caps.virtual_time {
        window_highest(spec, a.snapshot_time(), b.snapshot_time())
    } else {
        (0, 0)
    };
    judge_move(
        "",
        &va,
        &vb,
        (tenths(va[0]).max(between.0), tenths(va[1]).max(between.1)),
        &mut ms,
        &mut undecided,
    );
    let again = vc[6] - vb[6];
    ms.push(reg(
        "reset_counter_step_on_release",
        again,
        "resets",
        0.0,
        0.0,
        0.0,
    ));
    if !undecided.is_empty() {
        // the zeroed peaks differ from what 1.6.0.1/3.6.0.1 now hold: a second press shows a move
        let (d, _) = press(ctx, port)?;
        let vd = match values(&d, MOVE_REGS, clause) {
            Ok(x) => x,
            Err(j) => return Ok(j),
        };
        undecided.clear();
        let between = if ctx.caps.virtual_time {
            window_highest(spec, c.snapshot_time(), d.snapshot_time())
        } else {
            (0, 0)
        };
        let moved = (tenths(vc[0]).max(between.0), tenths(vc[1]).max(between.1));
        judge_move("second.", &vc, &vd, moved, &mut ms, &mut undecided);
    }
    let ok = format!(
        "max reset asserted on {port}: 1.6.0 {} → 1.6.0.1 {}, 3.6.0 {} → 3.6.0.1 {}, 1.2.0 {} → {}, 3.2.0 {} → {}, 0.1 {} → {} (nothing more on release)",
        fmt_num(va[0]), fmt_num(vb[2]), fmt_num(va[1]), fmt_num(vb[3]),
        fmt_num(va[4]), fmt_num(vb[4]), fmt_num(va[5]), fmt_num(vb[5]), va[6], vb[6]
    );
    Ok(judge(clause, ms, undecided, ok))
}

// ---------------------------------------------------------------------------------------------
// logging.monthly

/// The monthly move at 00:00:00 of day NN, waited for on the meter's clock: readouts a minute
/// before and after that midnight (the period ending at midnight still belongs to the old
/// month), and around an ordinary midnight (the one before, or after when that has passed),
/// which must move nothing. NN 00 (module controlled): the midnight of the 1st must move nothing.
pub(crate) fn monthly(
    ctx: &mut Ctx<'_>,
    _shared: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    if let Some(j) = needs_meter_clock(ctx, clause, "waiting for the logging date") {
        return Ok(j);
    }
    let spec = ctx.spec;
    let span = answer_span(ctx)?;
    let now = ctx.target.now()?;
    let minute = Duration::from_secs(60);
    let early = minute + span;
    let day = Duration::from_secs(86_400);
    let Some((t, before)) = monthly_midnight(spec, now, span) else {
        return module_controlled(ctx, clause);
    };
    let ordinary = if before { t - day } else { t + day };
    let mut at = |x: Timestamp| readout_at(ctx, x);
    let (a, b, c, d) = if before {
        let (c, d) = (at(ordinary - early)?, at(ordinary + minute)?);
        (at(t - early)?, at(t + minute)?, c, d)
    } else {
        let (a, b) = (at(t - early)?, at(t + minute)?);
        (a, b, at(ordinary - early)?, at(ordinary + minute)?)
    };
    let vals = [&a, &b, &c, &d].map(|r| values(r, MOVE_REGS, clause));
    let v = match vals {
        [Ok(a), Ok(b), Ok(c), Ok(d)] => [a, b, c, d],
        [Err(j), ..] | [_, Err(j), ..] | [_, _, Err(j), _] | [_, _, _, Err(j)] => return Ok(j),
    };
    let j_len = period_min(spec) as u64 * 60 * NS_PER_S;
    // a meter started inside that period averages what it saw of it; every period ending between
    // the first readout and midnight (the one at midnight included) raises the peak that moves
    let last = period_peak_tenths(spec, t.0.saturating_sub(j_len), t.0);
    let between = window_highest(spec, a.snapshot_time(), t);
    let moved = (
        tenths(v[0][0]).max(last.0).max(between.0),
        tenths(v[0][1]).max(last.1).max(between.1),
    );
    let mut ms = vec![];
    let mut undecided = vec![];
    judge_move("", &v[0], &v[1], moved, &mut ms, &mut undecided);
    ms.push(reg(
        "reset_counter_step_ordinary_midnight",
        register_step("0.1", v[2][6], v[3][6]),
        "resets",
        0.0,
        0.0,
        0.0,
    ));
    ms.push(reg(
        "1.6.0.1.change_ordinary_midnight",
        v[3][2] - v[2][2],
        "kW",
        0.0,
        0.0,
        0.1,
    ));
    let date = calendar::civil_from_days(meter_unix_s(spec, t).div_euclid(86_400));
    let ok = format!(
        "NN {:02}: at {:04}-{:02}-{:02} 00:00 1.6.0 {} → 1.6.0.1 {}, 3.6.0 {} → 3.6.0.1 {}, 0.1 {} → {}; the midnight of the {} moved nothing",
        spec.logging_day, date.0, date.1, date.2,
        fmt_num(moved.0 as f64 / 10.0), fmt_num(v[1][2]), fmt_num(moved.1 as f64 / 10.0), fmt_num(v[1][3]), v[0][6], v[1][6],
        if before { "day before" } else { "day after" }
    );
    Ok(judge(clause, ms, undecided, ok))
}

/// The logging midnight `logging.monthly` waits for from `now` (answers up to `span` long), and
/// whether the ordinary midnight before it is still ahead (then it is read first, so the case
/// ends just after the move); `None` for NN 00 (module controlled).
fn monthly_midnight(spec: &MeterSpec, now: Timestamp, span: Duration) -> Option<(Timestamp, bool)> {
    let early = Duration::from_secs(60) + span;
    let day = Duration::from_secs(86_400);
    let t = next_logging(spec, now + early)?;
    Some((t, t.0 >= now.0 + (day + early * 2).as_nanos() as u64))
}

/// NN 00: the monthly data follow an external control unit, so the 1st's midnight moves nothing.
fn module_controlled(ctx: &mut Ctx<'_>, clause: Clause) -> Result<Judgement, TargetError> {
    let spec = ctx.spec;
    let minute = Duration::from_secs(60);
    let now = ctx.target.now()?;
    let first = at_unix(
        spec,
        calendar::next_logging(meter_unix_s(spec, now + minute), 1),
    );
    let early = minute + answer_span(ctx)?;
    let a = readout_at(ctx, first - early)?;
    let b = readout_at(ctx, first + minute)?;
    let (va, vb) = match (values(&a, MOVE_REGS, clause), values(&b, MOVE_REGS, clause)) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(j), _) | (_, Err(j)) => return Ok(j),
    };
    let ms = vec![
        reg(
            "reset_counter_step",
            register_step("0.1", va[6], vb[6]),
            "resets",
            0.0,
            0.0,
            0.0,
        ),
        reg("1.6.0.1.change", vb[2] - va[2], "kW", 0.0, 0.0, 0.1),
        reg("3.6.0.1.change", vb[3] - va[3], "kvar", 0.0, 0.0, 0.1),
        Measurement::new(
            "1.6.0.change",
            vb[0] - va[0],
            "kW",
            Some(0.0),
            None,
            TimeSource::Register,
            0.1,
        ),
    ];
    let date = calendar::civil_from_days(meter_unix_s(spec, first).div_euclid(86_400));
    Ok(judge(
        clause,
        ms,
        vec![],
        format!(
            "NN 00 (module controlled): {:04}-{:02}-{:02} 00:00 moved nothing (0.1 stayed {})",
            date.0, date.1, date.2, va[6]
        ),
    ))
}

// ---------------------------------------------------------------------------------------------
// plans: the meter time each case is expected to take ([`super::plan`])

fn at_s(s: f64) -> Timestamp {
    Timestamp((s.max(0.0) * 1e9) as u64)
}

fn s_of(t: Timestamp) -> f64 {
    t.0 as f64 / 1e9
}

/// The declared load's first step at the meter terminals times the ratio: primary kW.
fn primary_kw(spec: &MeterSpec) -> f64 {
    spec.load.steps.first().map_or(0.0, |s| s.active_mw as f64) / 1e6 * spec.ratio as f64
}

fn date_text(spec: &MeterSpec, t: Timestamp) -> String {
    let (y, m, d) = calendar::civil_from_days(meter_unix_s(spec, t).div_euclid(86_400));
    format!("{y:04}-{m:02}-{d:02}")
}

/// The month's peaks (tenths of kW, kvar) the meter shows at `t` by the declared load: the file's
/// 1.6.0/3.6.0 until the first logging midnight, zero after each, raised by every logging period
/// that ended since.
fn month_peak_tenths(spec: &MeterSpec, t: Timestamp) -> (i64, i64) {
    let mut from = Timestamp::ZERO;
    let mut init = (
        tenths(spec.registers.get("1.6.0").copied().unwrap_or(0.0)),
        tenths(spec.registers.get("3.6.0").copied().unwrap_or(0.0)),
    );
    while let Some(l) = next_logging(spec, from).filter(|l| *l <= t) {
        from = l;
        init = (0, 0);
    }
    let h = window_highest(spec, from, t);
    (init.0.max(h.0), init.1.max(h.1))
}

/// `readout.hour_counter`: a readout, the window on the target's clock, a readout.
pub(crate) fn plan_hour_counter(pc: &PlanCtx<'_>) -> Wait {
    let window = Duration::from_secs(24 * 3600).min(pc.opts.max_constant_window);
    if !pc.virtual_time && window <= Duration::from_secs(4 * 3600) {
        return Wait::none("skips: a window of 4 h or less cannot tell half rate from full rate");
    }
    let w = window.as_secs_f64();
    let (q, r) = (pc.request_s(), pc.readout_s());
    Wait::fixed(
        w + q + r,
        2,
        format!(
            "the hour counter over {} on the target's clock (over 4 h tells half rate from full)",
            human(w)
        ),
    )
    .lending([(pc.now_s + r, pc.now_s + q + w)])
}

/// `readout.truncation`: until the registered energy is 1.05 kWh past the next whole kWh.
pub(crate) fn plan_truncation(pc: &PlanCtx<'_>) -> Wait {
    if !pc.virtual_time {
        return Wait::none("skips: placing a readout needs the meter's clock");
    }
    let Some(init) = declared_whole_kwh(pc.spec, "1.8.0") else {
        return Wait::none("skips: 1.8.0 declared with a fraction");
    };
    match truncation_times(pc.spec, init, pc.opts, at_s(pc.now_s)) {
        Some((low, high)) => Wait::fixed(
            s_of(high).max(s_of(low) + pc.readout_s()) - pc.now_s + pc.readout_s(),
            2,
            format!(
                "the energy for 1.05 kWh past the next whole kWh at {} kW (primary, ratio {})",
                fmt_num(primary_kw(pc.spec)),
                pc.spec.ratio
            ),
        ),
        None => {
            Wait::none("inconclusive at once: the load does not register 1.05 kWh in the window")
        }
    }
}

/// `logging.monthly`: until a minute past 00:00 of day NN (and the ordinary midnight beside it).
pub(crate) fn plan_monthly(pc: &PlanCtx<'_>) -> Wait {
    if !pc.virtual_time {
        return Wait::none("skips: waiting for the logging date needs the meter's clock");
    }
    let spec = pc.spec;
    let r = pc.readout_s();
    // answer_span reads once when the run has no exchange yet
    let (t0, own) = if pc.readouts == 0 {
        (pc.now_s + r, 1)
    } else {
        (pc.now_s, 0)
    };
    let span = Duration::from_secs_f64(r - pc.request_s() + 1.0);
    let minute = Duration::from_secs(60);
    let now = at_s(t0);
    let early = s_of(at_s(60.0) + span);
    // readouts at these moments, in order; the waits before them are lent to other cases
    let mut reads: Vec<f64> = vec![];
    let (end, readouts, reason) = match monthly_midnight(spec, now, span) {
        Some((t, before)) => {
            let (ts, day) = (s_of(t), 86_400.0);
            let ordinary = if before { ts - day } else { ts + day };
            reads = if before {
                vec![ordinary - early, ordinary + 60.0, ts - early, ts + 60.0]
            } else {
                vec![ts - early, ts + 60.0, ordinary - early, ordinary + 60.0]
            };
            let end = if before {
                t
            } else {
                t + Duration::from_secs(86_400)
            } + minute;
            let why = format!(
                "00:00 of day {:02} ({}) on the meter's clock from its start {:04}-{:02}-{:02}",
                spec.logging_day,
                date_text(spec, t),
                spec.start.year,
                spec.start.month,
                spec.start.day
            );
            (end, 4, why)
        }
        None => {
            let first = at_unix(
                spec,
                calendar::next_logging(meter_unix_s(spec, now + minute), 1),
            );
            let why = format!("00:00 of the 1st ({}), NN 00", date_text(spec, first));
            reads = vec![s_of(first) - early, s_of(first) + 60.0];
            (first + minute, 2, why)
        }
    };
    let mut from = t0;
    let idle: Vec<(f64, f64)> = reads
        .iter()
        .map(|&at| {
            let w = (from, at);
            from = at.max(from) + r;
            w
        })
        .collect();
    Wait::fixed(s_of(end) + r - pc.now_s, readouts + own, reason).lending(idle)
}

/// `max_demand.peak`: four logging periods after a quiet start, or after the next logging date
/// when the month's peak already covers what the load can show.
pub(crate) fn plan_peak(pc: &PlanCtx<'_>) -> Wait {
    if !pc.virtual_time {
        return Wait::none("skips: placing the logging periods needs the meter's clock");
    }
    let spec = pc.spec;
    let (r, q) = (pc.readout_s(), pc.request_s());
    let j_len = Duration::from_secs(period_min(spec) as u64 * 60);
    let now = at_s(pc.now_s);
    let mut start = now.max(next_boundary(spec, Timestamp::ZERO) + Duration::from_secs(1));
    if let Some(l) = next_logging(spec, start) {
        if l <= start + j_len * 5 + Duration::from_secs(60) {
            start = l + Duration::from_secs(1);
        }
    }
    let window_end = |t0: Timestamp| next_boundary(spec, t0) + j_len * 3 + Duration::from_secs(60);
    let mut t0 = start + Duration::from_secs_f64(q);
    let mut readouts = 2;
    let mut reason = format!("four logging periods of {} min", period_min(spec));
    // the first readout at `start`, the next (if any) at the logging date, the last at the
    // window's end: the waits before them are lent to other cases
    let mut idle = vec![(pc.now_s, s_of(start))];
    let a_end = start + Duration::from_secs_f64(r);
    if let Some(l) = next_logging(spec, t0).filter(|&l| waits_for_logging_date(spec, t0, l)) {
        let at = (l + Duration::from_secs(1)).max(a_end);
        idle.push((s_of(a_end), s_of(at)));
        t0 = at + Duration::from_secs_f64(q);
        readouts = 3;
        reason = format!(
            "the logging date {} (the month's peak already covers the load's), then four periods of {} min",
            date_text(spec, l),
            period_min(spec)
        );
    }
    idle.push((s_of(t0) - q + r, s_of(window_end(t0))));
    Wait::fixed(s_of(window_end(t0)) + r - pc.now_s, readouts, reason).lending(idle)
}

/// Whether `max_demand.peak`, reading at `t0`, waits for the logging date `l`: the month's peak
/// (as the declared load and the file give it) already covers what the window can show, and a
/// new month from zero at `l` gives a window that can show a peak (≥ 0.2 in either quantity;
/// with a load too small for any, waiting a month decides nothing more).
fn waits_for_logging_date(spec: &MeterSpec, t0: Timestamp, l: Timestamp) -> bool {
    let window_end = |t: Timestamp| {
        next_boundary(spec, t) + Duration::from_secs(period_min(spec) as u64 * 60 * 3 + 60)
    };
    let h = window_highest(spec, t0, window_end(t0));
    let p = month_peak_tenths(spec, t0);
    let after_start = l + Duration::from_secs(1);
    let after = window_highest(spec, after_start, window_end(after_start));
    (h.0 < p.0 + 2 || h.1 < p.1 + 2) && (after.0 >= 2 || after.1 >= 2)
}

/// `max_demand.reset`: readouts before, while the input is held and after, away from a period
/// end; a second press when the load is steady (the moved peak equals last month's).
pub(crate) fn plan_max_reset(pc: &PlanCtx<'_>) -> Wait {
    let spec = pc.spec;
    if spec
        .io
        .find(|r| matches!(r, PortRole::MaxReset | PortRole::DebitingStop))
        .is_none()
    {
        return Wait::none(format!("skips: {} has no max-reset input", io_text(spec)));
    }
    let (r, q) = (pc.readout_s(), pc.request_s());
    let j = period_min(spec) as f64 * 60.0;
    let mut t = pc.now_s + r;
    let mut n = 1;
    if pc.virtual_time && month_peak_tenths(spec, at_s(pc.now_s + q)).0 < 1 {
        t += j + 1.0 + r;
        n += 1;
    }
    if pc.virtual_time {
        let nb = s_of(next_boundary(spec, at_s(t)));
        if nb < t + 180.0 + 4.0 * (r - q + 1.0) {
            t = t.max(nb + 1.0) + r;
            n += 1;
        }
    }
    t += 2.0 * (1.0 + r);
    n += 2;
    let steady = spec.load.steps.len() == 1
        && next_logging(spec, Timestamp::ZERO).is_some_and(|l| s_of(l) < pc.now_s);
    if pc.virtual_time && steady {
        t += 2.0 * (1.0 + r);
        n += 2;
    }
    Wait::fixed(
        t - pc.now_s,
        n,
        "a max reset: readouts before it, while the input is held and after (a second press under a steady load)",
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::config::LoadStep;

    fn burst() -> Load {
        let step = |s: u64, w: i64| LoadStep {
            offset_ns: s * NS_PER_S,
            active_mw: w * 1000,
            reactive_mvar: 0,
        };
        Load {
            steps: vec![step(0, 100), step(900, 3000), step(1200, 100)],
            repeat_ns: Some(3600 * NS_PER_S),
        }
    }

    #[test]
    fn declared_energy_integrates_a_repeating_schedule() {
        let l = burst();
        // one hour: 100 W × 3300 s + 3000 W × 300 s = 1.23 MJ = 1.23e18 mW·ns
        let hour = 1_230_000_000_000_000_000i128;
        assert_eq!(declared_energy(&l, 3600 * NS_PER_S).0, hour);
        assert_eq!(declared_energy(&l, 7200 * NS_PER_S).0, 2 * hour);
        // into the second hour's burst by 100 s: 100 W × 900 s + 3000 W × 100 s
        let part = (100_000 * 900 + 3_000_000 * 100) * NS_PER_S as i128;
        assert_eq!(declared_energy(&l, 4600 * NS_PER_S).0, hour + part);
    }

    /// `max_demand.peak` waits for the logging date when the month's peak covers the load and
    /// a new month could show a peak; without load nothing could, so it does not wait a month.
    #[test]
    fn the_peak_waits_for_the_logging_date_only_when_a_new_month_can_show_a_peak() {
        let spec = MeterSpec::builtin_default();
        // a steady load: its first period set the month's peak, a new month starts from zero
        let t0 = Timestamp(3 * 3600 * NS_PER_S);
        let l = next_logging(&spec, t0).unwrap();
        assert!(waits_for_logging_date(&spec, t0, l));
        let mut idle = spec.clone();
        idle.load = Load {
            steps: vec![],
            repeat_ns: None,
        };
        assert!(!waits_for_logging_date(&idle, t0, l));
    }

    #[test]
    fn periods_and_their_peaks_follow_the_meter_clock() {
        let mut spec = MeterSpec::builtin_default();
        spec.load = burst();
        // 15-min periods from the meter's midnight start; the one holding the burst
        let p = periods_ending_in(&spec, Timestamp(NS_PER_S), Timestamp(3600 * NS_PER_S));
        assert_eq!(p.len(), 4);
        assert_eq!(p[1], (900 * NS_PER_S, 1800 * NS_PER_S));
        // (3000 × 300 + 100 × 600) / 900 W × 80 = 85.33 kW → 853 tenths
        assert_eq!(period_peak_tenths(&spec, p[1].0, p[1].1).0, 853);
        assert_eq!(period_peak_tenths(&spec, p[0].0, p[0].1).0, 80);
        assert_eq!(
            window_highest(&spec, Timestamp(NS_PER_S), Timestamp(3600 * NS_PER_S)).0,
            853
        );
    }
}
