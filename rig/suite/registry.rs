//! The typed case registry: every conformance case, in run order, with what it checks, the clause
//! it comes from, what it needs from the target, the measurements it declares and the function
//! that runs it.
//!
//! **Adding a case is one entry in [`CASES`] plus one function** (`fn(&mut Ctx, &mut Shared,
//! Clause) -> Result<Judgement, TargetError>`) and its failing and passing tests in
//! `tests/integration/suites.rs` (a test there checks that every id has both). The runner skips a
//! case whose needs the target does not meet, with the reason; `rig run --list` prints every
//! entry with the limits the given meter file resolves. Pure data; no I/O.

use serde::Serialize;

use super::plan::{self, PlanCtx, Uses, Wait};
use super::{mode_c, module, pins, readout, registers, Ctx, Judgement, Shared};
use crate::meter::config::MeterSpec;
use crate::meter::profile::{Clause, Profile};
use crate::target::{Capabilities, TargetError};

/// Runs a case.
pub type CaseFn = fn(&mut Ctx<'_>, &mut Shared, Clause) -> Result<Judgement, TargetError>;

/// What a case needs from the target.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Need {
    /// The module ports: drive the meter's inputs, capture its pulse outputs.
    ModulePorts,
}

impl Need {
    /// Whether `caps` meets the need.
    pub fn met_by(self, caps: &Capabilities) -> bool {
        match self {
            Need::ModulePorts => caps.pins,
        }
    }

    /// Why a target without it cannot run the case, and what would.
    pub fn missing(self, target: &str) -> String {
        match self {
            Need::ModulePorts => format!(
                "{target} has no pins: this case needs the module's ports (use --target gpio:WIRING or pi:WIRING, or the software meter)"
            ),
        }
    }
}

/// Units of declared measurements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Unit {
    /// Milliseconds.
    Ms,
    /// Percent.
    Percent,
    /// Characters on the line.
    Characters,
    /// Stop bits.
    Bits,
    /// Exchanges (request and answer).
    Exchanges,
    /// Data sets of a readout.
    DataSets,
    /// Kilowatt-hours.
    Kwh,
    /// Kilowatts.
    Kw,
    /// Pulses.
    Pulses,
    /// Register units (kWh, kvarh, h or counts: the register's own).
    RegisterUnits,
    /// Resets.
    Resets,
    /// Hours.
    Hours,
    /// A count of things (periods, events).
    Count,
    /// A line rate.
    Baud,
    /// Milliamperes (the module's supply current).
    MilliAmperes,
}

impl Unit {
    /// The unit as written in records.
    pub fn as_str(self) -> &'static str {
        match self {
            Unit::Ms => "ms",
            Unit::Percent => "%",
            Unit::Characters => "characters",
            Unit::Bits => "bits",
            Unit::Exchanges => "exchanges",
            Unit::DataSets => "data sets",
            Unit::Kwh => "kWh",
            Unit::Kw => "kW",
            Unit::Pulses => "pulses",
            Unit::RegisterUnits => "kWh/kvarh/h (the register's own)",
            Unit::Resets => "resets",
            Unit::Hours => "h",
            Unit::Count => "count",
            Unit::Baud => "baud",
            Unit::MilliAmperes => "mA",
        }
    }
}

/// A measurement a case declares before it runs: name (a `port{n}.` prefix per output port where
/// the case measures each), unit and the limits the meter's configuration resolves.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Declared {
    /// Name (`*` stands for a port number or a register address).
    pub name: &'static str,
    /// Unit.
    pub unit: Unit,
    /// Lower limit, inclusive.
    pub low: Option<f64>,
    /// Upper limit, inclusive.
    pub high: Option<f64>,
}

const fn d(name: &'static str, unit: Unit, low: Option<f64>, high: Option<f64>) -> Declared {
    Declared {
        name,
        unit,
        low,
        high,
    }
}

/// One case.
#[derive(Debug, Clone, Copy)]
pub struct CaseDef {
    /// Id (`readout.response_time`): an interface, never renamed.
    pub id: &'static str,
    /// The suite it belongs to.
    pub suite: &'static str,
    /// What it checks.
    pub title: &'static str,
    /// The clause it checks, from the meter's profile.
    pub clause: fn(&Profile) -> Clause,
    /// What it needs from the target.
    pub needs: &'static [Need],
    /// What it uses of the meter: inputs driven, outputs watched (the planner lets cases that
    /// drive no input share the meter's time).
    pub uses: Uses,
    /// What it waits for on the meter's clock and how long, for the meter file, the options and
    /// the moment it starts ([`plan::Wait`]).
    pub plan: fn(&PlanCtx<'_>) -> Wait,
    /// The measurements it takes, with limits from the meter's configuration.
    pub measures: fn(&MeterSpec) -> Vec<Declared>,
    /// Runs it.
    pub run: CaseFn,
}

impl CaseDef {
    /// The first need `caps` does not meet.
    pub fn unmet(&self, caps: &Capabilities) -> Option<Need> {
        self.needs.iter().copied().find(|n| !n.met_by(caps))
    }
}

fn window(s: &MeterSpec) -> (Option<f64>, Option<f64>) {
    (
        Some(s.profile.response_min_ms),
        Some(s.profile.response_max_ms),
    )
}

fn width(s: &MeterSpec) -> (Option<f64>, Option<f64>) {
    let tol = s.profile.pulse_width_tolerance_pct / 100.0;
    (
        Some(s.pulse_width_ms * (1.0 - tol)),
        Some(s.pulse_width_ms * (1.0 + tol)),
    )
}

/// The first readout, or nothing on an optical port in mode C (the case skips there).
fn first_unless_mode_c(c: &PlanCtx<'_>) -> Wait {
    if c.spec.mode_c_baud().is_some() {
        Wait::none("skips: the optical port answers in mode C")
    } else {
        Wait::first("judges the first readout")
    }
}

/// One mode C exchange of its own, or nothing when the meter has no mode C to test.
fn mode_c_readout(c: &PlanCtx<'_>) -> Wait {
    if c.spec.mode_c_baud().is_some() {
        Wait::fixed(c.readout_s(), 1, "one mode C exchange")
    } else {
        Wait::none("skips: no mode C on this port")
    }
}

const GAP: f64 = 1500.0;
const PORTS: &[Need] = &[Need::ModulePorts];

/// Every case, in run order.
pub static CASES: &[CaseDef] = &[
    CaseDef {
        id: "readout.response_time",
        suite: "readout",
        title: "Answer starts 20–500 ms after the request",
        clause: |p| p.response_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::first("the run's first readout (judged by the readout cases)"),
        measures: |s| {
            let (lo, hi) = window(s);
            vec![d("response_time", Unit::Ms, lo, hi)]
        },
        run: readout::response_time,
    },
    CaseDef {
        id: "readout.identification",
        suite: "readout",
        title: "Identification /KAM, mode character, type number",
        clause: |p| p.readout_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |c| first_unless_mode_c(c),
        measures: |_| vec![],
        run: |ctx, shared, clause| match mode_c::module_only(ctx, clause) {
            Some(skip) => Ok(skip),
            None => readout::identification(ctx, shared, clause),
        },
    },
    CaseDef {
        id: "readout.framing",
        suite: "readout",
        title: "Parity and stop bit of every character; inter-character time",
        clause: |p| p.framing_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::first("judges the first readout"),
        measures: |_| {
            vec![
                d("parity_errors", Unit::Characters, None, Some(0.0)),
                d("stop_bit_errors", Unit::Characters, None, Some(0.0)),
                d("max_inter_char_gap", Unit::Ms, None, Some(GAP)),
                d("characters", Unit::Characters, None, None),
            ]
        },
        run: readout::framing,
    },
    CaseDef {
        id: "readout.structure",
        suite: "readout",
        title: "STX, CR LF line ends, '!', ETX and BCC present",
        clause: |p| p.readout_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::first("judges the first readout"),
        measures: |_| vec![],
        run: readout::structure,
    },
    CaseDef {
        id: "readout.bcc",
        suite: "readout",
        title: "BCC under the profile's rule",
        clause: |p| p.bcc_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::first("judges the first readout"),
        measures: |_| vec![],
        run: readout::bcc,
    },
    CaseDef {
        id: "readout.registers",
        suite: "readout",
        title: "All 17 data sets in order with their digits, decimals and units",
        clause: |p| p.readout_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::first("judges the first readout"),
        measures: |_| vec![d("data_sets", Unit::DataSets, Some(17.0), Some(17.0))],
        run: readout::registers,
    },
    CaseDef {
        id: "readout.tariff_sum",
        suite: "readout",
        title: "1.8.0 equals the sum of 1.8.1–1.8.4 within whole-kWh rounding",
        clause: |p| p.tariff_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::first("judges the first readout"),
        measures: |_| vec![d("total_minus_tariff_sum", Unit::Kwh, Some(0.0), Some(3.0))],
        run: readout::tariff_sum,
    },
    CaseDef {
        id: "readout.monotonic",
        suite: "readout",
        title: "Energy and hour counters never go back across readouts",
        clause: |p| p.registers_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |c| {
            let (w, r) = (c.opts.monotonic_wait.as_secs_f64(), c.readout_s());
            Wait::fixed(
                w + 2.0 * r,
                2,
                format!(
                    "a readout, {} (--monotonic-wait), a readout",
                    plan::human(w)
                ),
            )
            .and_first()
            .lending([(c.now_s + r, c.now_s + r + w)])
        },
        measures: |_| vec![d("*.min_step", Unit::RegisterUnits, Some(0.0), None)],
        run: readout::monotonic,
    },
    CaseDef {
        id: "readout.recovery",
        suite: "readout",
        title: "Answers a valid request after a foreign address and after noise",
        clause: |p| p.response_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |c| {
            // a request for another address (13 characters) and the silence the rig waits
            // out, 9 characters of noise, two readouts
            Wait::fixed(
                2.0 * c.readout_s() + 22.0 * c.char_s() + 1.5,
                2,
                "two readouts after a foreign address and after noise",
            )
        },
        // recorded, not judged: the window is readout.response_time's and every_exchange's
        measures: |_| {
            vec![
                d("response_after_foreign_address", Unit::Ms, None, None),
                d("response_after_noise", Unit::Ms, None, None),
            ]
        },
        run: readout::recovery,
    },
    CaseDef {
        id: "readout.character_timing",
        suite: "readout",
        title: "Bit rate within ±2 % and one stop bit, from the characters' edges",
        clause: |p| p.framing_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |c| first_unless_mode_c(c),
        measures: |_| {
            let t = readout::BAUD_TOLERANCE_PCT;
            vec![
                d("baud_error", Unit::Percent, Some(-t), Some(t)),
                d("stop_bits", Unit::Bits, Some(1.0), Some(1.0)),
            ]
        },
        run: |ctx, shared, clause| match mode_c::module_only(ctx, clause) {
            Some(skip) => Ok(skip),
            None => readout::character_timing(ctx, shared, clause),
        },
    },
    CaseDef {
        id: "readout.hour_counter",
        suite: "readout",
        title: "96.8.0 counts hours of the target's clock (±1 h quantisation)",
        clause: |p| registers::clause_for("readout.hour_counter", p),
        needs: &[],
        uses: Uses::LINE,
        plan: registers::plan_hour_counter,
        measures: |_| {
            vec![
                d("hour_counter_step", Unit::Hours, None, None),
                d("elapsed", Unit::Hours, None, None),
            ]
        },
        run: registers::hour_counter,
    },
    CaseDef {
        id: "readout.truncation",
        suite: "readout",
        title: "Energy registers show completed kWh (truncated, not rounded)",
        clause: |p| registers::clause_for("readout.truncation", p),
        needs: &[],
        uses: Uses::OUTPUTS,
        plan: registers::plan_truncation,
        measures: |_| {
            vec![
                d("register_at_fraction", Unit::Kwh, None, None),
                d("register_after_step", Unit::Kwh, None, None),
            ]
        },
        run: registers::truncation,
    },
    CaseDef {
        id: "readout.customer_number",
        suite: "readout",
        title: "0.0.0 is the programmed customer number",
        clause: |p| registers::clause_for("readout.customer_number", p),
        needs: &[],
        uses: Uses::LINE,
        plan: |c| {
            if c.opts.check_type_number && c.spec.registers.contains_key("0.0.0") {
                Wait::fixed(c.readout_s(), 1, "one readout")
            } else {
                Wait::none("skips: no customer number declared")
            }
        },
        measures: |_| vec![],
        run: registers::customer_number,
    },
    CaseDef {
        id: "pulse_out.width",
        suite: "pulse_out",
        title: "Pulse length 30 or 80 ms per MM, ±10 %",
        clause: |p| p.pulse_width_clause,
        needs: PORTS,
        uses: Uses::OUTPUTS,
        plan: |c| pins::plan_pulses(c, 20),
        measures: |s| {
            let (lo, hi) = width(s);
            vec![
                d("port*.min_width", Unit::Ms, lo, hi),
                d("port*.max_width", Unit::Ms, lo, hi),
                d("port*.pulses", Unit::Pulses, None, None),
            ]
        },
        run: pins::pulse_width,
    },
    CaseDef {
        id: "pulse_out.pause",
        suite: "pulse_out",
        title: "Pause between pulses",
        clause: |p| p.pause_clause,
        needs: PORTS,
        uses: Uses::OUTPUTS,
        plan: |c| pins::plan_pulses(c, 50),
        measures: |s| {
            vec![d(
                "port*.min_pause",
                Unit::Ms,
                Some(s.profile.min_pause_ms),
                None,
            )]
        },
        run: pins::pulse_pause,
    },
    CaseDef {
        id: "pulse_out.constant",
        suite: "pulse_out",
        title: "Pulses against the energy register, within the accuracy class",
        clause: |p| p.pulse_constant_clause,
        needs: PORTS,
        uses: Uses::OUTPUTS,
        plan: pins::plan_constant,
        measures: |_| {
            vec![
                d("port*.pulses", Unit::Pulses, None, None),
                d("port*.rate_error", Unit::Percent, None, None),
                d("port*.register_growth", Unit::Kwh, None, None),
                d("port*.planned_growth", Unit::Kwh, None, None),
            ]
        },
        run: pins::pulse_constant,
    },
    CaseDef {
        id: "tariff.table",
        suite: "tariff",
        title: "Every input state feeds only its tariff register",
        clause: |p| p.tariff_clause,
        needs: PORTS,
        uses: Uses::INPUTS,
        plan: pins::plan_tariff,
        measures: |_| {
            vec![
                d("state*.T*_growth", Unit::Kwh, Some(1.0), None),
                d("state*.other_growth", Unit::Kwh, None, Some(0.0)),
            ]
        },
        run: pins::tariff_table,
    },
    CaseDef {
        id: "pulse_in.count",
        suite: "pulse_in",
        title: "96.50.1 grows by exactly the pulses generated",
        clause: |p| p.io_clause,
        needs: PORTS,
        uses: Uses::INPUTS,
        plan: pins::plan_pulse_in,
        measures: |_| vec![d("counted", Unit::Pulses, None, None)],
        run: pins::pulse_in,
    },
    CaseDef {
        id: "logging.monthly",
        suite: "logging",
        title: "The monthly move at 00:00 of day NN and at no other midnight",
        clause: |p| registers::clause_for("logging.monthly", p),
        needs: &[],
        uses: Uses::LINE,
        plan: registers::plan_monthly,
        measures: |_| {
            vec![
                d("reset_counter_step", Unit::Resets, Some(1.0), Some(1.0)),
                d(
                    "reset_counter_step_ordinary_midnight",
                    Unit::Resets,
                    Some(0.0),
                    Some(0.0),
                ),
            ]
        },
        run: registers::monthly,
    },
    CaseDef {
        id: "max_demand.peak",
        suite: "max_demand",
        title: "1.6.0 / 3.6.0 are the month's highest primary averages over periods of J",
        clause: |p| registers::clause_for("max_demand.peak", p),
        needs: &[],
        uses: Uses::LINE,
        plan: registers::plan_peak,
        measures: |_| {
            vec![
                d("periods", Unit::Count, None, None),
                d("*.highest_period", Unit::Kw, None, None),
            ]
        },
        run: registers::peak,
    },
    CaseDef {
        id: "max_demand.reset",
        suite: "max_demand",
        title: "Max reset on the assert edge: peaks to last month, accumulated, 0.1 counts",
        clause: |p| registers::clause_for("max_demand.reset", p),
        needs: PORTS,
        uses: Uses::INPUTS,
        plan: registers::plan_max_reset,
        measures: |_| {
            vec![
                d("reset_counter_step", Unit::Resets, Some(1.0), Some(1.0)),
                d(
                    "reset_counter_step_on_release",
                    Unit::Resets,
                    Some(0.0),
                    Some(0.0),
                ),
            ]
        },
        run: registers::max_reset,
    },
    CaseDef {
        id: "max_reset.peak_reset",
        suite: "max_reset",
        title: "A max-reset input moves the peak to last month and counts the reset",
        clause: |p| p.io_clause,
        needs: PORTS,
        uses: Uses::INPUTS,
        plan: pins::plan_peak_reset,
        measures: |_| {
            vec![
                d("reset_counter_step", Unit::Resets, Some(1.0), Some(1.0)),
                d(
                    "last_month_peak_minus_peak_before",
                    Unit::Kw,
                    Some(0.0),
                    Some(0.0),
                ),
                d(
                    "accumulated_step_minus_peak",
                    Unit::Kw,
                    Some(-0.1001),
                    Some(0.1001),
                ),
                d("peak_after", Unit::Kw, None, None),
            ]
        },
        run: pins::max_reset,
    },
    CaseDef {
        id: "mode_c.identification",
        suite: "mode_c",
        title: "The optical port's identification announces mode C at a faster rate ('1'-'6')",
        clause: mode_c::clause,
        needs: &[],
        uses: Uses::LINE,
        plan: mode_c_readout,
        measures: |_| vec![d("announced_baud", Unit::Baud, None, None)],
        run: mode_c::identification,
    },
    CaseDef {
        id: "mode_c.switch",
        suite: "mode_c",
        title: "After ACK 0 Z 0 the data message starts at the new rate within the reaction time",
        clause: mode_c::clause,
        needs: &[],
        uses: Uses::LINE,
        plan: mode_c_readout,
        measures: |_| vec![d("data_after_ack", Unit::Ms, Some(200.0), Some(1500.0))],
        run: mode_c::switch,
    },
    CaseDef {
        id: "mode_c.readout",
        suite: "mode_c",
        title: "The data message read at the new rate is whole, framed and valid",
        clause: mode_c::clause,
        needs: &[],
        uses: Uses::LINE,
        plan: mode_c_readout,
        measures: |_| vec![d("data_sets", Unit::DataSets, None, None)],
        run: mode_c::readout,
    },
    // last: it judges every exchange the run made
    CaseDef {
        id: "readout.every_exchange",
        suite: "readout",
        title: "Every exchange of the run inside the response window, framed and valid",
        clause: |p| p.response_clause,
        needs: &[],
        uses: Uses::RUN,
        plan: |c| {
            let n = 3u32.saturating_sub(c.readouts);
            Wait::fixed(
                n as f64 * c.readout_s(),
                n,
                "judges every exchange of the run (readouts of its own until there are three)",
            )
        },
        measures: |s| {
            let (lo, hi) = window(s);
            vec![
                d("exchanges", Unit::Exchanges, None, None),
                d("nonconforming", Unit::Exchanges, None, Some(0.0)),
                d("min_response_time", Unit::Ms, lo, hi),
                d("max_response_time", Unit::Ms, lo, hi),
            ]
        },
        run: readout::every_exchange,
    },
];

/// The case with `id`.
pub fn find(id: &str) -> Option<&'static CaseDef> {
    CASES.iter().find(|c| c.id == id)
}

/// The `module` suite: the rig serves the meter and judges the module under test (`rig module`).
/// Selected only by name ([`super::selected`]), so `rig run` never runs it against a meter.
pub static MODULE_CASES: &[CaseDef] = &[
    CaseDef {
        id: "module.request",
        suite: "module",
        title:
            "The module's request: /?! or /?ADDRESS! then CR LF, 7E1 (even parity, one stop bit)",
        clause: |p| module::clause_for(p, module::REQUEST_CLAUSE, module::REQUEST_CLAUSE_ASSUMED),
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |_| vec![d("requests", Unit::Count, None, None)],
        run: module::request,
    },
    CaseDef {
        id: "module.patience",
        suite: "module",
        title: "The module waits for an answer at 499.9 ms with 1500 ms pauses, to its BCC",
        clause: |p| module::clause_for(p, module::PATIENCE_CLAUSE, module::PATIENCE_CLAUSE_ASSUMED),
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |_| {
            vec![
                d("served_reaction", Unit::Ms, None, None),
                d("request_to_bcc", Unit::Ms, None, None),
            ]
        },
        run: module::patience,
    },
    CaseDef {
        id: "module.repetition",
        suite: "module",
        title: "When and how often the module asks again after silence, noise and a bad BCC",
        clause: |p| {
            module::clause_for(
                p,
                module::REPETITION_CLAUSE,
                module::REPETITION_CLAUSE_ASSUMED,
            )
        },
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |_| {
            vec![
                d("silent.requests", Unit::Count, None, None),
                d("silent.min_spacing", Unit::Ms, None, None),
                d("noise.requests", Unit::Count, None, None),
                d("noise.min_spacing", Unit::Ms, None, None),
                d("bad_bcc.requests", Unit::Count, None, None),
                d("bad_bcc.min_spacing", Unit::Ms, None, None),
            ]
        },
        run: module::repetition,
    },
    CaseDef {
        id: "module.supply",
        suite: "module",
        title: "Pin 6: at most 1 mA averaged over 60 s, never above 5 mA",
        clause: |p| module::clause_for(p, module::SUPPLY_CLAUSE, module::SUPPLY_CLAUSE_ASSUMED),
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |_| {
            vec![
                d("average_60s", Unit::MilliAmperes, None, Some(1.0)),
                d("peaks_over_5ma", Unit::Count, None, Some(0.0)),
                d("longest_over_5ma", Unit::Ms, None, None),
            ]
        },
        run: module::supply,
    },
    CaseDef {
        id: "module.data",
        suite: "module",
        title: "The module forwards what the meter sent, and nothing from a bad BCC or parity",
        clause: |p| module::clause_for(p, module::DATA_CLAUSE, module::DATA_CLAUSE_ASSUMED),
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |_| {
            vec![
                d("good.forwarded", Unit::Count, None, None),
                d("bad_bcc.forwarded", Unit::Count, None, Some(0.0)),
                d("bad_parity.forwarded", Unit::Count, None, Some(0.0)),
            ]
        },
        run: module::data,
    },
    CaseDef {
        id: "module.tariff_drive",
        suite: "module",
        title: "The tariff the meter reads from the module's tariff inputs (informational)",
        clause: |p| p.tariff_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |_| {
            vec![
                d("tariff_changes", Unit::Count, None, None),
                d("tariffs_used", Unit::Count, None, None),
                d("shortest_dwell", Unit::Ms, None, None),
            ]
        },
        run: module::tariff_drive,
    },
    CaseDef {
        id: "module.pulse_out",
        suite: "module",
        title: "The pulses the meter counts from the module's pulse and max-reset drive (informational)",
        clause: |p| p.io_clause,
        needs: &[],
        uses: Uses::LINE,
        plan: |_| Wait::none("judges the module under test (rig module), not the meter"),
        measures: |s| {
            module::pulse_out_measures(&s.io)
                .into_iter()
                .map(|(name, count)| d(name, if count { Unit::Pulses } else { Unit::Ms }, None, None))
                .collect()
        },
        run: module::pulse_out,
    },
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_unique_and_prefixed_by_their_suite() {
        for (i, c) in CASES.iter().enumerate() {
            assert!(c.id.starts_with(&format!("{}.", c.suite)), "{}", c.id);
            assert!(CASES[..i].iter().all(|o| o.id != c.id), "{} twice", c.id);
        }
    }

    #[test]
    fn every_declared_limit_is_ordered_for_every_profile() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meters");
        for f in std::fs::read_dir(dir).unwrap() {
            let spec = MeterSpec::from_file(&f.unwrap().path()).unwrap();
            for c in CASES {
                for m in (c.measures)(&spec) {
                    if let (Some(l), Some(h)) = (m.low, m.high) {
                        assert!(l <= h, "{} {}: {l} > {h}", c.id, m.name);
                    }
                }
            }
        }
    }

    /// A case cites the data sheet of the profile's meter, or says which 351 clause it assumes
    /// (the OMNIPOWER sheets do not give the mode A readout).
    #[test]
    fn every_clause_cites_the_profiles_sheet_or_names_its_assumption() {
        use crate::meter::profile::{COMBI_351, OMNIPOWER_3PH, OMNIPOWER_CT};
        let mut bad = Vec::new();
        for p in [&COMBI_351, &OMNIPOWER_3PH, &OMNIPOWER_CT] {
            for c in CASES.iter().chain(MODULE_CASES) {
                let clause = (c.clause)(p);
                if !(p.sources.contains(&clause.source) || clause.section.contains("assumed")) {
                    bad.push(format!(
                        "{} for {}: {} {}",
                        c.id, p.name, clause.source, clause.section
                    ));
                }
            }
        }
        assert!(bad.is_empty(), "{}", bad.join("\n"));
    }
}
