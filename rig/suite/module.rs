//! The `module` suite: the rig plays the meter and judges the module under test against the
//! requirements the interface specification sets for modules (004_d1f80f13afa7763c.txt,
//! "Construction requirements for non-Kamstrup modules" and "IEC61107 data request").
//!
//! `module.data` also asks what the module forwarded
//! ([`ModuleBench::observe_forwarded`](crate::module::ModuleBench::observe_forwarded)).
//!
//! Each case asks the target's [`ModuleBench`](crate::module::ModuleBench) to serve one [`Scenario`] of the meter file's
//! meter and judges the logged conversation with the pure judges of [`crate::module`]. A target
//! that is a meter (not a bench) skips every case with the reason: `rig module` runs them.

use super::{Ctx, Judgement, Measurement, Shared};
use crate::meter::io::{IoMap, PortRole, TariffControl};
use crate::meter::profile::{Clause, Profile, SPEC_351};
use crate::module::inputs::{self, InputLog};
use crate::module::{self, supply, Scenario, WireLog};
use crate::target::TargetError;
use crate::time::TimeSource;

/// A module case's clause in 004 (the 351's module interface), and the same marked as assumed for
/// a meter whose own sheets do not give the module interface (the OMNIPOWER profiles).
macro_rules! module_clause {
    ($own:ident, $assumed:ident, $section:literal) => {
        #[doc = concat!("004: `", $section, "`")]
        pub const $own: Clause = Clause {
            source: SPEC_351,
            section: $section,
        };
        #[doc = concat!("004, assumed for a meter whose sheets do not give the module interface: `", $section, "`")]
        pub const $assumed: Clause = Clause {
            source: SPEC_351,
            section: concat!($section, " (the 351 module interface, assumed for this meter)"),
        };
    };
}

/// `own` where the profile's sources include 004 (the 351), else `assumed`.
pub fn clause_for(p: &Profile, own: Clause, assumed: Clause) -> Clause {
    if p.sources.contains(&SPEC_351) {
        own
    } else {
        assumed
    }
}

// `module.request`'s clause
module_clause!(REQUEST_CLAUSE, REQUEST_CLAUSE_ASSUMED, "IEC61107 data request: To meter: /?![CR][LF]; 300 baud, 1 start bit, 7 data bits, even parity, 1 stop bit");
// `module.patience`'s clause
module_clause!(PATIENCE_CLAUSE, PATIENCE_CLAUSE_ASSUMED, "IEC61107 data request, Note 1: response between 20 and 500 msec after request (the module waits for it, and for the whole answer to its BCC)");
// `module.repetition`'s clause
module_clause!(REPETITION_CLAUSE, REPETITION_CLAUSE_ASSUMED, "IEC61107 data request, Note 1: response up to 500 msec after request (a repeat sooner talks over the answer); spacing and count otherwise recorded, no clause limits them");

fn not_a_bench(ctx: &Ctx<'_>, clause: Clause) -> Judgement {
    Judgement::skip(
        clause,
        format!(
            "{} is a meter: the module suite judges a module the rig serves a meter to (rig module --link PATH | --port PATH)",
            ctx.target.describe()
        ),
    )
}

// `module.supply`'s clause
module_clause!(SUPPLY_CLAUSE, SUPPLY_CLAUSE_ASSUMED, "Module interface, Pin 6 Supply: nominal voltage 4.2 V, average current 1 mA (average for 60 seconds), maximum current 5 mA");

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
            "the module sent no request in the {} s the rig served the meter; start the module (it must open the link or port the rig serves), or on pins check its wiring to the meter's data in (pin 5)",
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
            "{} request(s) {:?}, {}",
            reqs.len(),
            String::from_utf8_lossy(&reqs[0].text()),
            if log.parity_observable {
                "framed 7E1"
            } else {
                "7 data bits, stop bit (parity not observable on this link)"
            }
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

// `module.data`'s clause
module_clause!(DATA_CLAUSE, DATA_CLAUSE_ASSUMED, "IEC61107 data request: 7 data bits, even parity; [ETX][BCC], the BCC by 7 bit modulo 2 addition, STX excluded, ETX included (IEC 62056-21 mode A block check): the module forwards the data sets as the meter sent them, and nothing from an answer whose BCC or parity does not check");

/// One window of `module.data`: its name (also `RIG_MODULE_WINDOW` for `--module-report`), the
/// meter served and for how long.
struct DataWindow {
    name: &'static str,
    meter: crate::meter::config::MeterSpec,
    window_s: f64,
}

impl DataWindow {
    fn of(name: &'static str, scenario: Scenario, spec: &crate::meter::config::MeterSpec) -> Self {
        DataWindow {
            name,
            meter: scenario.meter(spec),
            window_s: scenario.window_s(),
        }
    }
}

/// What one window of `module.data` gave: the answers the meter sent and what the module
/// reported it forwarded, or the judgement that ends the case (no request, no report).
fn data_window(
    ctx: &mut Ctx<'_>,
    clause: Clause,
    w: &DataWindow,
) -> Result<Result<(WireLog, module::data::Forwarded), Judgement>, TargetError> {
    ctx.check_stop()?;
    let Some(mut bench) = ctx.target.try_as_module_bench() else {
        return Ok(Err(not_a_bench(ctx, clause)));
    };
    let (log, report) = bench.observe_forwarded(&w.meter, w.window_s, w.name)?;
    drop(bench);
    if log.requests().is_empty() {
        return Ok(Err(Judgement::inconclusive(
            clause,
            format!(
                "{}: the module sent no request in the {} s the rig served the meter; start the module, or check its wiring to the meter's data in (pin 5)",
                w.name, w.window_s
            ),
        )));
    }
    match report {
        Ok(f) => Ok(Ok((log, f))),
        Err(e) => Ok(Err(Judgement::inconclusive(
            clause,
            format!("{}: {e}", w.name),
        ))),
    }
}

/// Why a window of `module.data` cannot show anything (the case is then inconclusive): the
/// healthy window without an answer whose BCC and parity check, a bad one without any whole
/// answer.
fn data_window_unusable(name: &str, sent: &[module::data::SentAnswer]) -> Option<String> {
    if name == "good" && !sent.iter().any(|a| a.valid()) {
        return Some("good: the meter sent no whole answer whose BCC and parity check (a fault knob in the meter file? module.data needs a healthy answer first)".into());
    }
    if name != "good" && !sent.iter().any(|a| a.complete) {
        return Some(format!("{name}: the module broke off every answer before its BCC; nothing shows whether it would forward a whole bad one"));
    }
    None
}

/// Where `module.data`'s parity error goes: the first digit of 1.8.0's value in the answer of
/// `log` (index from the identification's `/`), else the middle of the answer.
fn parity_error_index(log: &WireLog) -> Option<usize> {
    let text: Vec<u8> = log
        .chars
        .iter()
        .filter(|c| c.dir == module::Dir::FromMeter)
        .map(|c| c.byte & 0x7F)
        .skip_while(|&b| b != b'/')
        .collect();
    let at = text.windows(6).position(|w| w == b"1.8.0(");
    at.map(|i| i + 6)
        .or_else(|| (text.len() > 2).then_some(text.len() / 2))
}

/// `module.data`: the module is served a healthy answer, then whole answers with a bad BCC (and,
/// where the link carries parity to the module, with a parity error in 1.8.0's value); what it
/// reports it forwarded (the reference module's own account, or `--module-report CMD`) equals
/// what the meter sent for the healthy answer and is empty for the bad ones
/// ([`module::data::data_problems`]). Skipped when the rig cannot learn what the module forwards.
///
/// # Errors
/// The bench's.
pub fn data(ctx: &mut Ctx<'_>, _: &mut Shared, clause: Clause) -> Result<Judgement, TargetError> {
    ctx.check_stop()?;
    let parity_seen = ctx.target.timing().parity_checked;
    let name = ctx.target.describe();
    let Some(mut bench) = ctx.target.try_as_module_bench() else {
        return Ok(not_a_bench(ctx, clause));
    };
    if !bench.reports_forwarded() {
        return Ok(Judgement::skip(
            clause,
            format!("{name}: the rig cannot see what the module forwards; give rig module --module-report CMD, a command that prints the forwarded values as JSON (README, For module vendors)"),
        ));
    }
    if let Err(e) = bench.forget_forwarded() {
        return Ok(Judgement::inconclusive(clause, format!("before: {e}")));
    }
    drop(bench);
    let rule = crate::iec62056::exchange::AnswerRules::from_profile(ctx.spec.profile).bcc_rule;
    let mut windows = vec![
        DataWindow::of("good", Scenario::AsConfigured, ctx.spec),
        DataWindow::of("bad_bcc", Scenario::BadBcc, ctx.spec),
    ];
    let (mut problems, mut ms, mut details) = (Vec::new(), Vec::new(), Vec::new());
    let mut i = 0;
    while let Some(w) = windows.get(i) {
        let (log, forwarded) = match data_window(ctx, clause, w)? {
            Ok(x) => x,
            Err(j) => return Ok(j),
        };
        let sent = module::data::sent_answers(&log, rule);
        if let Some(why) = data_window_unusable(w.name, &sent) {
            return Ok(Judgement::inconclusive(clause, why));
        }
        details.push(format!(
            "{}: the meter sent {} answer(s) ({} whose BCC and parity check); the module forwarded {} value(s)",
            w.name,
            sent.len(),
            sent.iter().filter(|a| a.valid()).count(),
            forwarded.values.len()
        ));
        let good = w.name == "good";
        let high = if good { None } else { Some(0.0) };
        let (name, n) = (
            format!("{}.forwarded", w.name),
            forwarded.values.len() as f64,
        );
        let src = TimeSource::Register;
        ms.push(Measurement::new(&name, n, "count", None, high, src, 0.0));
        problems.extend(
            module::data::data_problems(&sent, &forwarded)
                .into_iter()
                .map(|p| format!("{}: {p}", w.name)),
        );
        if good && parity_seen {
            let mut meter = Scenario::AsConfigured.meter(ctx.spec);
            meter.faults.parity_error_at = parity_error_index(&log);
            windows.push(DataWindow {
                name: "bad_parity",
                meter,
                window_s: Scenario::BadBcc.window_s(),
            });
        }
        i += 1;
    }
    if !parity_seen {
        details.push(
            "bad_parity: not served, this link carries no parity bit to the module (--framing soft7e1 does)".into(),
        );
    }
    let mut j = Judgement::from_problems(
        clause,
        problems,
        ms,
        if parity_seen {
            "forwarded the healthy answer's values as sent, nothing from a bad BCC or parity"
        } else {
            "forwarded the healthy answer's values as sent, nothing from a bad BCC (no parity error served: this link carries no parity bit)"
        },
    );
    j.details.extend(details);
    Ok(j)
}

/// How long `module.tariff_drive` and `module.pulse_out` watch the module's inputs, seconds.
pub const DRIVE_WINDOW_S: f64 = 30.0;

/// Why the two input cases only record: the sources give no limit for the module's drive.
const NO_INPUT_LIMIT: &str = "informational: no source document limits the timing of the \
     module's drive into the meter's inputs (004 Module interface gives pins 3/4 levels, a 1 MΩ \
     pull-up with 10 nF and 3 mA low; 000 the tariff tables and KK roles), so nothing here fails";

fn io_text(ctx: &Ctx<'_>) -> String {
    format!("{} ({})", ctx.spec.io_code(), ctx.spec.io.description)
}

/// The levels the module drove on the meter's inputs for [`DRIVE_WINDOW_S`]; `Err` is the
/// judgement that ends the case (not a bench, or a bench that cannot see the pins).
fn input_log(
    ctx: &mut Ctx<'_>,
    clause: Clause,
) -> Result<Result<InputLog, Judgement>, TargetError> {
    ctx.check_stop()?;
    let Some(mut bench) = ctx.target.try_as_module_bench() else {
        return Ok(Err(not_a_bench(ctx, clause)));
    };
    let log = bench.inputs(ctx.spec, DRIVE_WINDOW_S)?;
    drop(bench);
    Ok(log.ok_or_else(|| {
        Judgement::skip(
            clause,
            format!(
                "{} cannot see the module's pins 3 and 4: wire them as the meter's inputs (rig module --wiring FILE, wiring/README.md)",
                ctx.target.describe()
            ),
        )
    }))
}

/// `module.tariff_drive`: the tariff the meter reads from the levels the module drives on its
/// tariff inputs (000 "Tariff control", by the meter's KK code), over [`DRIVE_WINDOW_S`]. The
/// sequence, the changes and the shortest dwell between two changes are recorded; informational
/// (no clause limits them). Skips for a meter whose tariffs are controlled by communication.
///
/// # Errors
/// The bench's.
pub fn tariff_drive(
    ctx: &mut Ctx<'_>,
    _: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    if ctx.target.try_as_module_bench().is_none() {
        return Ok(not_a_bench(ctx, clause));
    }
    if ctx.spec.io.tariff == TariffControl::Communication {
        return Ok(Judgement::skip(
            clause,
            format!(
                "{}: tariffs by communication, the meter reads no tariff input from the module",
                io_text(ctx)
            ),
        ));
    }
    let log = match input_log(ctx, clause)? {
        Ok(l) => l,
        Err(j) => return Ok(j),
    };
    let r = inputs::read_tariffs(&ctx.spec.io.tariff, &log).expect("module tariff control");
    let src = TimeSource::Edge;
    let mut used = r.sequence();
    used.sort_unstable();
    used.dedup();
    let mut ms = vec![
        Measurement::info("tariff_changes", r.changes() as f64, "count", src, 0.0),
        Measurement::info("tariffs_used", used.len() as f64, "count", src, 0.0),
    ];
    if let Some(d) = r.shortest_dwell_ms() {
        ms.push(Measurement::info("shortest_dwell", d, "ms", src, 0.0));
    }
    let seq: Vec<String> = r.sequence().iter().map(u8::to_string).collect();
    let mut seq_text = seq.iter().take(12).cloned().collect::<Vec<_>>().join(" → ");
    if seq.len() > 12 {
        seq_text.push_str(" → …");
    }
    let mut j = Judgement::from_problems(
        clause,
        vec![],
        ms,
        format!(
            "{}: the meter read tariff {seq_text} ({} change(s){}); {NO_INPUT_LIMIT}",
            io_text(ctx),
            r.changes(),
            r.shortest_dwell_ms()
                .map(|d| format!(", shortest dwell {} ms", super::fmt_num(d)))
                .unwrap_or_default()
        ),
    );
    j.details.extend(r.spans.iter().take(20).map(|s| {
        format!(
            "tariff {} from {:.3} s to {:.3} s",
            s.tariff,
            s.from.as_secs_f64(),
            s.to.as_secs_f64()
        )
    }));
    Ok(j)
}

/// The measurement prefix of a pulse-counting input.
fn role_name(role: PortRole) -> &'static str {
    match role {
        PortRole::MaxReset => "max_reset",
        PortRole::DebitingStop => "debiting_stop",
        _ => "pulse_in",
    }
}

/// The measurements `module.pulse_out` takes for a meter with I/O map `io`: for each pulse
/// input, its count (pulses) and shortest pulse, gap and period (ms).
pub fn pulse_out_measures(io: &IoMap) -> Vec<(&'static str, bool)> {
    const PULSE_IN: [&str; 4] = [
        "pulse_in.count",
        "pulse_in.shortest",
        "pulse_in.shortest_gap",
        "pulse_in.shortest_period",
    ];
    const MAX_RESET: [&str; 4] = [
        "max_reset.count",
        "max_reset.shortest",
        "max_reset.shortest_gap",
        "max_reset.shortest_period",
    ];
    const DEBITING_STOP: [&str; 4] = [
        "debiting_stop.count",
        "debiting_stop.shortest",
        "debiting_stop.shortest_gap",
        "debiting_stop.shortest_period",
    ];
    inputs::pulse_inputs(io)
        .into_iter()
        .flat_map(|(_, role)| match role {
            PortRole::MaxReset => MAX_RESET,
            PortRole::DebitingStop => DEBITING_STOP,
            _ => PULSE_IN,
        })
        .map(|name| (name, name.ends_with(".count")))
        .collect()
}

fn pulse_measurements(r: &inputs::PulseReading) -> Vec<Measurement> {
    let n = role_name(r.role);
    let src = TimeSource::Edge;
    let mut ms = vec![Measurement::info(
        &format!("{n}.count"),
        r.count as f64,
        "pulses",
        src,
        0.0,
    )];
    for (name, v) in [
        ("shortest", r.shortest_ms()),
        ("shortest_gap", r.shortest_gap_ms()),
        ("shortest_period", r.shortest_period_ms()),
    ] {
        if let Some(v) = v {
            ms.push(Measurement::info(&format!("{n}.{name}"), v, "ms", src, 0.0));
        }
    }
    ms
}

/// `module.pulse_out`: the pulses the module drives into the meter's pulse input and max-reset
/// (or debiting stop) input, counted as the meter counts them (every change to active, the
/// software meter's input model) with the shortest pulse, gap and period, over
/// [`DRIVE_WINDOW_S`]; informational (no clause gives a minimum pulse length or a maximum rate for
/// the module inputs). Skips for a KK code without such inputs.
///
/// # Errors
/// The bench's.
pub fn pulse_out(
    ctx: &mut Ctx<'_>,
    _: &mut Shared,
    clause: Clause,
) -> Result<Judgement, TargetError> {
    if ctx.target.try_as_module_bench().is_none() {
        return Ok(not_a_bench(ctx, clause));
    }
    let ports = inputs::pulse_inputs(&ctx.spec.io);
    if ports.is_empty() {
        return Ok(Judgement::skip(
            clause,
            format!(
                "{} has no pulse input or max-reset input for the module to drive",
                io_text(ctx)
            ),
        ));
    }
    let log = match input_log(ctx, clause)? {
        Ok(l) => l,
        Err(j) => return Ok(j),
    };
    let readings: Vec<_> = ports
        .iter()
        .map(|&(p, role)| inputs::read_pulses(p, role, &log))
        .collect();
    let ms = readings.iter().flat_map(pulse_measurements).collect();
    let said: Vec<String> = readings
        .iter()
        .map(|r| {
            format!(
                "{} on {} counted {}{}",
                role_name(r.role),
                r.port,
                r.count,
                r.shortest_ms()
                    .map(|w| format!(" (shortest {} ms)", super::fmt_num(w)))
                    .unwrap_or_default()
            )
        })
        .collect();
    Ok(Judgement::from_problems(
        clause,
        vec![],
        ms,
        format!("{}: {}; {NO_INPUT_LIMIT}", io_text(ctx), said.join(", ")),
    ))
}
