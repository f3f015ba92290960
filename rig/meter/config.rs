//! Meter files: a profile, its order and configuration codes, initial registers, a load and a
//! `[faults]` table, read from TOML (`fixtures/meters/*.toml`) and resolved into a [`MeterSpec`].
//!
//! The `[faults]` knob names are an interface: tests and users write them. A healthy meter sets
//! none of them except `response_delay_ms`. Unknown keys are errors, so a misspelt knob can never
//! make a defective meter look healthy. Parsing only; no simulation here.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::io::{IoMap, KK_351, Z3_OMNI};
use super::profile::{IoTable, Profile, ProfileId, HH_351, Z21_CT};
use super::readout::{self, Format};
use super::sheet;

/// A meter file that cannot be used; the message names the file, the field and the problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MeterFileError {
    /// The file could not be read.
    #[error("cannot read meter file {path}: {detail}")]
    Read {
        /// Path.
        path: String,
        /// OS error.
        detail: String,
    },
    /// The file is not valid TOML or has unknown/ill-typed keys.
    #[error("meter file {path}: {detail}")]
    Syntax {
        /// Path.
        path: String,
        /// Parser message (with line and column).
        detail: String,
    },
    /// A field has a value the data sheets do not allow.
    #[error("meter file {path}: {field}: {problem}")]
    Invalid {
        /// Path.
        path: String,
        /// Field.
        field: String,
        /// What is wrong and what is allowed.
        problem: String,
    },
}

/// The `[faults]` table: defects a software meter can be given.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Faults {
    /// Delay from the end of the request's stop bit to the start bit of `/`, ms (healthy: set).
    pub response_delay_ms: Option<f64>,
    /// BCC rule the meter uses ("xor", "sum") or "corrupt" (matches neither rule).
    pub bcc: Option<String>,
    /// Character index (0 = `/`) sent with the wrong parity bit.
    pub parity_error_at: Option<usize>,
    /// Character index sent with a low stop bit (framing error).
    pub stop_error_at: Option<usize>,
    /// Data sets left out of the answer.
    #[serde(default)]
    pub drop_data_sets: Vec<String>,
    /// Address → number of integer digits sent instead of the sheet's.
    #[serde(default)]
    pub digits: BTreeMap<String, u8>,
    /// Added to 1.8.0 only (breaks 1.8.0 = Σ 1.8.1–1.8.4), kWh.
    pub tariff_sum_offset_kwh: Option<f64>,
    /// Energy registers go back by this much after the first readout, kWh.
    pub energy_step_back_kwh: Option<f64>,
    /// Never answer.
    #[serde(default)]
    pub silent: bool,
    /// Stop transmitting after this many characters.
    pub truncate_after: Option<usize>,
    /// Idle time between characters of the answer, ms.
    pub char_gap_ms: Option<f64>,
    /// Pulse output length, ms (instead of MM's 30/80).
    pub pulse_width_ms: Option<f64>,
    /// Minimum pause between output pulses, ms (healthy: the profile's minimum).
    pub pulse_pause_ms: Option<f64>,
    /// Pulse output rate error, percent (+1.5 = 1.5 % too many pulses).
    pub pulse_constant_error_pct: Option<f64>,
    /// Register (1–4) each input state feeds, state index = in1 + 2·in2.
    pub tariff_map: Option<Vec<u8>>,
    /// Every Nth input pulse is not counted.
    pub pulse_input_miss_every: Option<u64>,
    /// The max-reset input does nothing.
    #[serde(default)]
    pub max_reset_ignored: bool,
    /// Identification line sent instead of `/KAM <type>` (without CR LF).
    pub identification: Option<String>,
    /// Line end of the data lines: "crlf" (healthy) or "lf".
    pub line_end: Option<String>,
    /// Leave out STX.
    #[serde(default)]
    pub omit_stx: bool,
    /// After noise or a request for another address, ignore requests for this long, ms.
    pub deaf_after_noise_ms: Option<f64>,
    /// 96.8.0 defect: "stuck" (never counts), "half" (one hour per two), "minutes" (counts
    /// minutes as hours).
    pub hour_counter: Option<String>,
    /// Peak (1.6.0/3.6.0) averaged over periods of this many minutes instead of J's.
    pub peak_period_min: Option<u32>,
    /// `false`: each period's average overwrites 1.6.0/3.6.0 (a lower one too) instead of the
    /// month's maximum being kept.
    pub peak_keep_max: Option<bool>,
    /// 1.6.0 computed from reactive power.
    #[serde(default)]
    pub peak_from_reactive: bool,
    /// 1.6.0 from secondary (terminal) power instead of primary (× the transformer ratio).
    #[serde(default)]
    pub peak_secondary: bool,
    /// 3.6.0 is never updated.
    #[serde(default)]
    pub reactive_peak_frozen: bool,
    /// At a reset (max reset, logging date) 3.6.0 is not moved to 3.6.0.1.
    #[serde(default)]
    pub last_month_reactive_not_moved: bool,
    /// No monthly move at the NN logging date.
    #[serde(default)]
    pub no_monthly_logging: bool,
    /// NN 00 (module controlled) still logs at midnight on the 1st.
    #[serde(default)]
    pub logging_on_first_when_nn00: bool,
    /// The max-reset input resets on its release edge instead of its assert edge.
    #[serde(default)]
    pub max_reset_on_release: bool,
    /// Energy registers (1.8.x, 3.8.0) rounded to the nearest kWh instead of truncated.
    #[serde(default)]
    pub round_energy: bool,
    /// 0.0.0 always `00000000` instead of the programmed customer number.
    #[serde(default)]
    pub customer_number_zero: bool,
}

impl Faults {
    /// Names of the knobs that are set, other than `response_delay_ms`.
    pub fn active(&self) -> Vec<&'static str> {
        let mut v = Vec::new();
        macro_rules! opt {
            ($($f:ident),*) => { $( if self.$f.is_some() { v.push(stringify!($f)); } )* };
        }
        opt!(
            bcc,
            parity_error_at,
            stop_error_at,
            tariff_sum_offset_kwh,
            energy_step_back_kwh,
            truncate_after,
            char_gap_ms,
            pulse_width_ms,
            pulse_pause_ms,
            pulse_constant_error_pct,
            tariff_map,
            pulse_input_miss_every,
            identification,
            line_end,
            deaf_after_noise_ms,
            hour_counter,
            peak_period_min,
            peak_keep_max
        );
        if !self.drop_data_sets.is_empty() {
            v.push("drop_data_sets");
        }
        if !self.digits.is_empty() {
            v.push("digits");
        }
        if self.silent {
            v.push("silent");
        }
        if self.max_reset_ignored {
            v.push("max_reset_ignored");
        }
        macro_rules! flag {
            ($($f:ident),*) => { $( if self.$f { v.push(stringify!($f)); } )* };
        }
        flag!(
            omit_stx,
            peak_from_reactive,
            peak_secondary,
            reactive_peak_frozen,
            last_month_reactive_not_moved,
            no_monthly_logging,
            logging_on_first_when_nn00,
            max_reset_on_release,
            round_energy,
            customer_number_zero
        );
        v
    }
}

/// The `[config]` table: order and configuration codes as printed on the meter.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigCodes {
    /// 351 HH: transformer ratio code (000, Configuration 1).
    pub hh: Option<u8>,
    /// 351 J / OMNIPOWER Z4: logging period code (1: 5, 2: 15, 3: 30, 4: 60 min).
    pub j: Option<u8>,
    /// 351 KK: module I/O code 00–19.
    pub kk: Option<u8>,
    /// 351 MM: 01/03 → 30 ms, 02/04 → 80 ms.
    pub mm: Option<u8>,
    /// 351 NN / OMNIPOWER Z6: logging date, day of month (00 = module controlled).
    pub nn: Option<u8>,
    /// 351 P: pulse output basis, 1 verified (secondary), 2 true (primary).
    pub p: Option<u8>,
    /// Pulse constant for true-energy weighting, imp/kWh (P = 2 or Z24 = 1).
    pub pulse_constant: Option<u32>,
    /// 351 Q: pulse input unit, 1 kWh, 2 m³, 3 l, 4 none.
    pub q: Option<u8>,
    /// OMNIPOWER Z3: primary module configuration.
    pub z3: Option<u8>,
    /// OMNIPOWER Z8: 1/2 → 30 ms, 3/4 → 80 ms.
    pub z8: Option<u8>,
    /// OMNIPOWER CT Z21: transformer ratio.
    pub z21: Option<u32>,
    /// OMNIPOWER CT Z24: 0 secondary, 1 primary pulse basis.
    pub z24: Option<u8>,
}

/// The `[load]` table: what the meter measures, on its secondary (terminal) side.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadFile {
    /// Constant active power at the meter terminals, W.
    #[serde(default)]
    pub active_w: f64,
    /// Constant reactive power at the meter terminals, var.
    #[serde(default)]
    pub reactive_var: f64,
    /// A CSV schedule (`offset_s,active_w,reactive_var`), relative to the meter file.
    pub schedule: Option<PathBuf>,
    /// Repeat the schedule with this period, s.
    pub repeat_s: Option<f64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MeterFile {
    profile: ProfileId,
    type_number: Option<String>,
    address: Option<String>,
    baud: Option<u32>,
    start: Option<String>,
    #[serde(default)]
    config: ConfigCodes,
    #[serde(default)]
    registers: BTreeMap<String, toml::Value>,
    load: Option<LoadFile>,
    #[serde(default)]
    faults: Faults,
}

/// Pulse output weighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PulseBasis {
    /// Verified (secondary) energy.
    Secondary,
    /// True (primary) energy.
    Primary,
}

/// One step of a load schedule.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LoadStep {
    /// Offset from the start of the schedule, ns.
    pub offset_ns: u64,
    /// Active power, mW (secondary).
    pub active_mw: i64,
    /// Reactive power, mvar (secondary).
    pub reactive_mvar: i64,
}

/// A resolved load: piecewise-constant power from `steps[0].offset_ns == 0` on.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Load {
    /// Steps in time order; the first starts at 0.
    pub steps: Vec<LoadStep>,
    /// Repeat period, ns.
    pub repeat_ns: Option<u64>,
}

/// A civil date-time (the meter's clock at virtual time zero).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Civil {
    /// Year.
    pub year: i32,
    /// Month 1–12.
    pub month: u8,
    /// Day 1–31.
    pub day: u8,
    /// Seconds since midnight.
    pub secs: u32,
}

/// A meter file resolved against its profile: everything the software meter and the suites need.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MeterSpec {
    /// Where it came from.
    pub path: Option<String>,
    /// The profile.
    pub profile: &'static Profile,
    /// Identification text (type number).
    pub type_number: String,
    /// Device address answered in `/?ADDRESS!` requests.
    pub address: String,
    /// Line rate.
    pub baud: u32,
    /// Meter clock at virtual time zero.
    pub start: Civil,
    /// The codes as written.
    pub codes: ConfigCodes,
    /// Primary/secondary current ratio (x/5 → x/5).
    pub ratio: u32,
    /// Logging (peak) period, minutes.
    pub logging_period_min: u32,
    /// Module I/O.
    pub io: IoMap,
    /// Pulse output length, ms (from MM/Z8).
    pub pulse_width_ms: f64,
    /// Pulse output weighting.
    pub pulse_basis: PulseBasis,
    /// Pulse output constant, imp/kWh in the weighting's energy.
    pub pulse_constant: u32,
    /// Logging day of month (0 = module controlled).
    pub logging_day: u8,
    /// Pulse input unit code (Q).
    pub pulse_input_unit: u8,
    /// Initial register values, as numbers (kWh, kW, counts), by address.
    pub registers: BTreeMap<String, f64>,
    /// Initial text registers (0.2.0).
    pub text_registers: BTreeMap<String, String>,
    /// The load.
    pub load: Load,
    /// Defects.
    pub faults: Faults,
}

fn invalid(path: &str, field: &str, problem: impl Into<String>) -> MeterFileError {
    MeterFileError::Invalid {
        path: path.into(),
        field: field.into(),
        problem: problem.into(),
    }
}

fn parse_civil(s: &str) -> Option<Civil> {
    // YYYY-MM-DDTHH:MM:SS
    let (d, t) = s.split_once(['T', ' ']).unwrap_or((s, "00:00:00"));
    let mut dp = d.split('-');
    let year = dp.next()?.parse().ok()?;
    let month: u8 = dp.next()?.parse().ok()?;
    let day: u8 = dp.next()?.parse().ok()?;
    let mut tp = t.split(':');
    let h: u32 = tp.next()?.parse().ok()?;
    let m: u32 = tp.next().unwrap_or("0").parse().ok()?;
    let sec: u32 = tp.next().unwrap_or("0").parse().ok()?;
    if !(1..=12).contains(&month)
        || day == 0
        || day > crate::meter::calendar::days_in_month(year, month)
        || h > 23
        || m > 59
        || sec > 59
    {
        return None;
    }
    Some(Civil {
        year,
        month,
        day,
        secs: h * 3600 + m * 60 + sec,
    })
}

/// Reads a load schedule CSV (`offset_s,active_w,reactive_var`, header required).
pub fn read_schedule(path: &Path) -> Result<Vec<LoadStep>, String> {
    let mut rdr =
        csv::Reader::from_path(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut steps = Vec::new();
    for (i, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("{}: row {}: {e}", path.display(), i + 2))?;
        let get = |k: usize, name: &str| -> Result<f64, String> {
            rec.get(k)
                .ok_or_else(|| format!("{}: row {}: missing {name}", path.display(), i + 2))?
                .trim()
                .parse::<f64>()
                .map_err(|e| format!("{}: row {}: {name}: {e}", path.display(), i + 2))
        };
        let off = get(0, "offset_s")?;
        let p = get(1, "active_w")?;
        let q = get(2, "reactive_var").unwrap_or(0.0);
        if !(off >= 0.0 && p.is_finite() && q.is_finite()) {
            return Err(format!(
                "{}: row {}: offset must be ≥ 0 and powers finite",
                path.display(),
                i + 2
            ));
        }
        steps.push(LoadStep {
            offset_ns: (off * 1e9).round() as u64,
            active_mw: (p * 1000.0).round() as i64,
            reactive_mvar: (q * 1000.0).round() as i64,
        });
    }
    if steps.is_empty() {
        return Err(format!("{}: no rows", path.display()));
    }
    if steps.windows(2).any(|w| w[1].offset_ns <= w[0].offset_ns) {
        return Err(format!("{}: offsets must increase", path.display()));
    }
    if steps[0].offset_ns != 0 {
        steps.insert(
            0,
            LoadStep {
                offset_ns: 0,
                active_mw: 0,
                reactive_mvar: 0,
            },
        );
    }
    Ok(steps)
}

impl MeterSpec {
    /// Reads and resolves a meter file.
    pub fn from_file(path: &Path) -> Result<MeterSpec, MeterFileError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| MeterFileError::Read {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        let mut spec = Self::from_toml(&text, &p, path.parent())?;
        spec.path = Some(p);
        Ok(spec)
    }

    /// The built-in default meter: a healthy 351 Combi (`fixtures/meters/default.toml`).
    pub fn builtin_default() -> MeterSpec {
        Self::from_toml(DEFAULT_METER, "<built-in default meter>", None)
            .expect("built-in meter file is valid")
    }

    /// Parses and resolves meter-file text; `base` resolves relative schedule paths.
    pub fn from_toml(
        text: &str,
        path: &str,
        base: Option<&Path>,
    ) -> Result<MeterSpec, MeterFileError> {
        let f: MeterFile = toml::from_str(text).map_err(|e| MeterFileError::Syntax {
            path: path.into(),
            detail: e.to_string(),
        })?;
        let profile = f.profile.profile();
        let c = &f.config;
        let ratio = match profile.id {
            ProfileId::Combi351 => {
                let hh = c.hh.unwrap_or(0);
                let amps = HH_351.iter().find(|(code, _)| *code == hh).map(|(_, a)| *a).ok_or_else(|| {
                    invalid(path, "config.hh", format!("{hh:02} is not an HH code of the 351 Combi (000 Configuration 1: 00, 02, 05 … 95)"))
                })?;
                amps / 5
            }
            ProfileId::OmnipowerCt => {
                let z = c.z21.unwrap_or(1);
                if !Z21_CT.contains(&z) {
                    return Err(invalid(path, "config.z21", format!("{z} is not a Z21 ratio of the OMNIPOWER CT (003: 1, 2, 3, 4, 10 … 600)")));
                }
                z
            }
            ProfileId::OmnipowerThreePhase => {
                if c.z21.is_some() || c.hh.is_some() {
                    return Err(invalid(
                        path,
                        "config",
                        "the OMNIPOWER three-phase meter is direct connected: no transformer ratio",
                    ));
                }
                1
            }
        };
        let j = c.j.unwrap_or(2);
        let logging_period_min = match (profile.id, j) {
            (ProfileId::Combi351, 1) => 5,
            (_, 2) => 15,
            (_, 3) => 30,
            (_, 4) => 60,
            _ => {
                return Err(invalid(
                    path,
                    "config.j",
                    format!(
                    "{j} is not a logging period code (1: 5 min (351 only), 2: 15, 3: 30, 4: 60)"
                ),
                ))
            }
        };
        let (io, io_field) = match profile.io_table {
            IoTable::Kk351 => {
                if c.z3.is_some() {
                    return Err(invalid(path, "config.z3", "the 351 Combi uses KK, not Z3"));
                }
                let kk = c.kk.unwrap_or(0);
                (
                    KK_351.get(kk as usize).copied(),
                    ("config.kk", kk, "KK 00–19 (000 KK Module i/o)"),
                )
            }
            IoTable::Z3 => {
                if c.kk.is_some() {
                    return Err(invalid(
                        path,
                        "config.kk",
                        "OMNIPOWER meters use Z3, not KK",
                    ));
                }
                let z3 = c.z3.unwrap_or(0);
                (
                    Z3_OMNI.get(z3 as usize).copied(),
                    (
                        "config.z3",
                        z3,
                        "Z3 00–16 (002/003 Z3; 17–29 drive relays the model does not cover)",
                    ),
                )
            }
        };
        let io = io.ok_or_else(|| {
            invalid(
                path,
                io_field.0,
                format!("{:02} is not modelled: expected {}", io_field.1, io_field.2),
            )
        })?;
        // what the suites expect: the judge's transcription of MM / Z8 (`meter::sheet`)
        let (pulse_code, pulse_field, pulse_codes) = match profile.io_table {
            IoTable::Kk351 => (c.mm.unwrap_or(1), "config.mm", "an MM code (01–04)"),
            IoTable::Z3 => (c.z8.unwrap_or(1), "config.z8", "a Z8 code (1–4)"),
        };
        let pulse_width_ms = sheet::pulse_length_ms(profile.id, pulse_code).ok_or_else(|| {
            invalid(
                path,
                pulse_field,
                format!("{pulse_code:02} is not {pulse_codes}"),
            )
        })?;
        let pulse_basis = match profile.id {
            ProfileId::Combi351 => match c.p.unwrap_or(1) {
                1 => PulseBasis::Secondary,
                2 => PulseBasis::Primary,
                p => {
                    return Err(invalid(
                        path,
                        "config.p",
                        format!("{p} is not a P code (1 verified, 2 true)"),
                    ))
                }
            },
            ProfileId::OmnipowerCt => match c.z24.unwrap_or(0) {
                0 => PulseBasis::Secondary,
                1 => PulseBasis::Primary,
                z => {
                    return Err(invalid(
                        path,
                        "config.z24",
                        format!("{z} is not a Z24 code (0 secondary, 1 primary)"),
                    ))
                }
            },
            ProfileId::OmnipowerThreePhase => PulseBasis::Secondary,
        };
        let pulse_constant = match pulse_basis {
            PulseBasis::Secondary => {
                // the judge's value (`meter::sheet`); the software meter uses its profile's
                let (k, _) = sheet::secondary_pulse_constant(profile.id);
                if c.pulse_constant.is_some_and(|x| x != k) {
                    return Err(invalid(
                        path,
                        "config.pulse_constant",
                        format!(
                            "verified-energy pulses are fixed at {k} imp/kWh ({})",
                            profile.pulse_constant_clause
                        ),
                    ));
                }
                k
            }
            PulseBasis::Primary => {
                let k = c.pulse_constant.ok_or_else(|| {
                    invalid(
                        path,
                        "config.pulse_constant",
                        "required when pulses are weighted by true energy",
                    )
                })?;
                let (lo, hi) = profile.primary_pulse_constant_range;
                if !(lo..=hi).contains(&k) {
                    return Err(invalid(
                        path,
                        "config.pulse_constant",
                        format!(
                            "{k} outside {lo}–{hi} imp/kWh ({})",
                            profile.pulse_constant_clause
                        ),
                    ));
                }
                k
            }
        };
        let logging_day = c.nn.unwrap_or(1);
        if logging_day > 28 {
            return Err(invalid(
                path,
                "config.nn",
                format!("{logging_day} is not a logging date (00 module controlled, 01–28)"),
            ));
        }
        let q = c.q.unwrap_or(4);
        if !(1..=4).contains(&q) {
            return Err(invalid(
                path,
                "config.q",
                format!("{q} is not a Q code (1 kWh, 2 m³, 3 l, 4 none)"),
            ));
        }
        let mut registers = BTreeMap::new();
        let mut text_registers = BTreeMap::new();
        for (addr, v) in &f.registers {
            let spec = readout::spec(addr).ok_or_else(|| {
                invalid(
                    path,
                    &format!("registers.{addr}"),
                    "not one of the 17 data sets of the readout",
                )
            })?;
            match (spec.format, v) {
                (Format::Text { len }, toml::Value::String(s)) => {
                    if !spec.format.matches(s) {
                        return Err(invalid(
                            path,
                            &format!("registers.{addr}"),
                            format!("{s:?} is not {len} alphanumeric characters"),
                        ));
                    }
                    text_registers.insert(addr.clone(), s.clone());
                }
                (Format::Number { .. }, toml::Value::String(s)) => {
                    let n: f64 = s.trim().parse().map_err(|_| {
                        invalid(
                            path,
                            &format!("registers.{addr}"),
                            format!("{s:?} is not a number"),
                        )
                    })?;
                    registers.insert(addr.clone(), n);
                }
                (Format::Number { .. }, toml::Value::Integer(i)) => {
                    registers.insert(addr.clone(), *i as f64);
                }
                (Format::Number { .. }, toml::Value::Float(x)) => {
                    registers.insert(addr.clone(), *x);
                }
                _ => return Err(invalid(path, &format!("registers.{addr}"), "wrong type")),
            }
            if registers
                .get(addr)
                .is_some_and(|x| !x.is_finite() || *x < 0.0)
            {
                return Err(invalid(
                    path,
                    &format!("registers.{addr}"),
                    "must be a non-negative number",
                ));
            }
        }
        let lf = f.load.unwrap_or(LoadFile {
            active_w: 0.0,
            reactive_var: 0.0,
            schedule: None,
            repeat_s: None,
        });
        let load = match &lf.schedule {
            Some(s) => {
                let sp = base.map(|b| b.join(s)).unwrap_or_else(|| s.clone());
                let steps = read_schedule(&sp).map_err(|e| invalid(path, "load.schedule", e))?;
                let repeat_ns = lf.repeat_s.map(|r| (r * 1e9) as u64);
                if let Some(r) = repeat_ns {
                    if steps.last().is_some_and(|l| l.offset_ns >= r) {
                        return Err(invalid(path, "load.repeat_s", "shorter than the schedule"));
                    }
                }
                Load { steps, repeat_ns }
            }
            None => {
                if !(lf.active_w.is_finite()
                    && lf.reactive_var.is_finite()
                    && lf.active_w >= 0.0
                    && lf.reactive_var >= 0.0)
                {
                    return Err(invalid(
                        path,
                        "load",
                        "powers must be finite and ≥ 0 (the model registers import only)",
                    ));
                }
                Load {
                    steps: vec![LoadStep {
                        offset_ns: 0,
                        active_mw: (lf.active_w * 1000.0).round() as i64,
                        reactive_mvar: (lf.reactive_var * 1000.0).round() as i64,
                    }],
                    repeat_ns: None,
                }
            }
        };
        if load
            .steps
            .iter()
            .any(|s| s.active_mw < 0 || s.reactive_mvar < 0)
        {
            return Err(invalid(
                path,
                "load",
                "powers must be ≥ 0 (the model registers import only)",
            ));
        }
        let faults = f.faults;
        if let Some(b) = &faults.bcc {
            if !matches!(b.as_str(), "xor" | "sum" | "corrupt") {
                return Err(invalid(
                    path,
                    "faults.bcc",
                    format!("{b:?}: expected \"xor\", \"sum\" or \"corrupt\""),
                ));
            }
        }
        if let Some(m) = &faults.tariff_map {
            if m.len() != 4 || m.iter().any(|&r| !(1..=4).contains(&r)) {
                return Err(invalid(
                    path,
                    "faults.tariff_map",
                    "four registers 1–4, one per input state (in1 + 2·in2)",
                ));
            }
        }
        if let Some(l) = &faults.line_end {
            if !matches!(l.as_str(), "crlf" | "lf") {
                return Err(invalid(path, "faults.line_end", "\"crlf\" or \"lf\""));
            }
        }
        if let Some(h) = &faults.hour_counter {
            if !matches!(h.as_str(), "stuck" | "half" | "minutes") {
                return Err(invalid(
                    path,
                    "faults.hour_counter",
                    format!("{h:?}: expected \"stuck\", \"half\" or \"minutes\""),
                ));
            }
        }
        if faults.peak_period_min.is_some_and(|m| m == 0 || m > 1440) {
            return Err(invalid(path, "faults.peak_period_min", "minutes 1–1440"));
        }
        if faults.pulse_input_miss_every == Some(0) {
            return Err(invalid(
                path,
                "faults.pulse_input_miss_every",
                "must be ≥ 1",
            ));
        }
        for (name, v) in [
            ("response_delay_ms", faults.response_delay_ms),
            ("char_gap_ms", faults.char_gap_ms),
            ("pulse_width_ms", faults.pulse_width_ms),
            ("pulse_pause_ms", faults.pulse_pause_ms),
            ("deaf_after_noise_ms", faults.deaf_after_noise_ms),
        ] {
            if v.is_some_and(|x| !(x.is_finite() && x >= 0.0)) {
                return Err(invalid(
                    path,
                    &format!("faults.{name}"),
                    "must be a finite number ≥ 0",
                ));
            }
        }
        for a in faults.drop_data_sets.iter().chain(faults.digits.keys()) {
            if readout::spec(a).is_none() {
                return Err(invalid(
                    path,
                    "faults",
                    format!("{a:?} is not one of the 17 data sets"),
                ));
            }
        }
        let start = match &f.start {
            Some(s) => parse_civil(s).ok_or_else(|| {
                invalid(
                    path,
                    "start",
                    format!("{s:?}: expected YYYY-MM-DDTHH:MM:SS"),
                )
            })?,
            None => Civil {
                year: 2026,
                month: 1,
                day: 1,
                secs: 0,
            },
        };
        let baud = f.baud.unwrap_or(profile.baud);
        if !(50..=115_200).contains(&baud) {
            return Err(invalid(path, "baud", format!("{baud} outside 50–115200")));
        }
        let type_number = f.type_number.unwrap_or_else(|| "685351A300100".into());
        if type_number.len() > 16
            || !type_number
                .bytes()
                .all(|b| b.is_ascii_graphic() && b != b'/' && b != b'!')
        {
            return Err(invalid(
                path,
                "type_number",
                "printable ASCII without '/' or '!', at most 16 characters",
            ));
        }
        let customer = registers
            .get("0.0.0")
            .map(|n| format!("{:08}", *n as u64))
            .unwrap_or_else(|| "00000000".into());
        Ok(MeterSpec {
            path: None,
            profile,
            type_number,
            address: f.address.unwrap_or(customer),
            baud,
            start,
            codes: f.config,
            ratio,
            logging_period_min,
            io,
            pulse_width_ms,
            pulse_basis,
            pulse_constant,
            logging_day,
            pulse_input_unit: q,
            registers,
            text_registers,
            load,
            faults,
        })
    }

    /// The configured response delay (healthy meters set it; default 150 ms).
    pub fn response_delay_ms(&self) -> f64 {
        self.faults.response_delay_ms.unwrap_or(150.0)
    }
}

/// The default meter: a healthy 351 Combi with a 400/5 A transformer, KK 05 (pulse in / A+ out),
/// 30 ms pulses on verified energy, and the worked example's registers as its starting point.
pub const DEFAULT_METER: &str = include_str!("../../fixtures/meters/default.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_meter_resolves() {
        let m = MeterSpec::builtin_default();
        assert_eq!(m.profile.id, ProfileId::Combi351);
        assert_eq!(m.ratio, 80);
        assert_eq!(m.io.code, 5);
        assert!(m.faults.active().is_empty(), "{:?}", m.faults.active());
    }

    #[test]
    fn errors_name_field_and_problem() {
        let e = MeterSpec::from_toml(
            "profile = \"351-combi\"\n[config]\nhh = 3\n",
            "m.toml",
            None,
        )
        .unwrap_err();
        assert!(
            e.to_string().contains("config.hh") && e.to_string().contains("03"),
            "{e}"
        );
        let e = MeterSpec::from_toml(
            "profile = \"351-combi\"\n[faults]\nresponse_dleay_ms = 3\n",
            "m.toml",
            None,
        )
        .unwrap_err();
        assert!(
            matches!(e, MeterFileError::Syntax { .. })
                && e.to_string().contains("response_dleay_ms"),
            "{e}"
        );
        let e = MeterSpec::from_toml("profile = \"351-combi\"\n[config]\np = 2\n", "m.toml", None)
            .unwrap_err();
        assert!(e.to_string().contains("pulse_constant"), "{e}");
        let e = MeterSpec::from_toml(
            "profile = \"omnipower-ct\"\n[config]\nz21 = 7\n",
            "m.toml",
            None,
        )
        .unwrap_err();
        assert!(e.to_string().contains("z21"), "{e}");
    }

    #[test]
    fn transformer_ratios() {
        for (hh, amps) in HH_351 {
            let m = MeterSpec::from_toml(
                &format!("profile = \"351-combi\"\n[config]\nhh = {hh}\n"),
                "m",
                None,
            )
            .unwrap();
            assert_eq!(m.ratio * 5, amps);
        }
        let m = MeterSpec::from_toml(
            "profile = \"omnipower-ct\"\n[config]\nz21 = 600\n",
            "m",
            None,
        )
        .unwrap();
        assert_eq!(m.ratio, 600);
        assert_eq!(m.pulse_constant, 5000);
        let m = MeterSpec::from_toml("profile = \"omnipower-3ph\"\n", "m", None).unwrap();
        assert_eq!((m.ratio, m.pulse_constant), (1, 1000));
    }
}
