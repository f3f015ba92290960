//! The 351 Combi readout: the 17 data sets of the mode A answer, in order, with their meaning,
//! digits, decimals and units (004_d1f80f13afa7763c.txt, "IEC61107 data request" and its example).
//!
//! Shared data: the software meter formats its answer from it and the `readout.registers` case
//! judges a meter against it. Pure data and formatting; no I/O.
//!
//! One discrepancy in the source: the request template lists `3.8.0(0000000*kWh)` for reactive
//! energy while the worked example sends `3.8.0(0000129*kvarh)`. The example is specific and
//! physically right, so the model expects `kvarh` and records the template's unit as an alias that
//! a strict check reports but does not fail on.

use crate::iec62056::{DataSet, Value};

/// What a register means, so the software meter knows what to put there.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Quantity {
    /// 0.0.0 customer number.
    CustomerNumber,
    /// 0.2.0 software type and revision.
    SoftwareRevision,
    /// 1.8.0 true active energy (primary), kWh.
    ActiveEnergy,
    /// 1.8.1–1.8.4 true active energy per tariff (1-based), kWh.
    ActiveEnergyTariff(u8),
    /// 3.8.0 true reactive energy, kvarh.
    ReactiveEnergy,
    /// 96.8.0 operating hour counter, h.
    HourCounter,
    /// 96.50.1 pulse input counter.
    PulseInput,
    /// 1.6.0 active peak power of the current month, kW.
    ActivePeak,
    /// 3.6.0 reactive peak power of the current month, kvar.
    ReactivePeak,
    /// 1.6.0.1 last month's active peak power, kW.
    LastMonthActivePeak,
    /// 3.6.0.1 last month's reactive peak power, kvar.
    LastMonthReactivePeak,
    /// 1.2.0 accumulated active peak power, kW.
    AccumulatedActivePeak,
    /// 3.2.0 accumulated reactive peak power, kvar.
    AccumulatedReactivePeak,
    /// 0.1 reset counter.
    ResetCounter,
}

/// How a value is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Format {
    /// A zero-padded decimal number with `int` integer digits and `dec` decimals (`.` mark).
    Number {
        /// Integer digits.
        int: u8,
        /// Decimals after the `.`.
        dec: u8,
    },
    /// `len` alphanumeric characters (the software revision `5000D1`).
    Text {
        /// Number of characters.
        len: u8,
    },
}

/// One data set of the readout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct RegisterSpec {
    /// The address.
    pub address: &'static str,
    /// What it is, in the sheet's words.
    pub meaning: &'static str,
    /// Value format.
    pub format: Format,
    /// Unit after `*`, or none.
    pub unit: Option<&'static str>,
    /// What the software meter puts there.
    pub quantity: Quantity,
}

const fn num(int: u8, dec: u8) -> Format {
    Format::Number { int, dec }
}

/// The 17 data sets of the 351 Combi readout, in the order the meter sends them.
pub const COMBI_351: [RegisterSpec; 17] = [
    RegisterSpec {
        address: "0.0.0",
        meaning: "Customer number",
        format: num(8, 0),
        unit: None,
        quantity: Quantity::CustomerNumber,
    },
    RegisterSpec {
        address: "0.2.0",
        meaning: "Software type and revision",
        format: Format::Text { len: 6 },
        unit: None,
        quantity: Quantity::SoftwareRevision,
    },
    RegisterSpec {
        address: "1.8.0",
        meaning: "Active energy",
        format: num(7, 0),
        unit: Some("kWh"),
        quantity: Quantity::ActiveEnergy,
    },
    RegisterSpec {
        address: "1.8.1",
        meaning: "Active energy - tariff 1",
        format: num(7, 0),
        unit: Some("kWh"),
        quantity: Quantity::ActiveEnergyTariff(1),
    },
    RegisterSpec {
        address: "1.8.2",
        meaning: "Active energy - tariff 2",
        format: num(7, 0),
        unit: Some("kWh"),
        quantity: Quantity::ActiveEnergyTariff(2),
    },
    RegisterSpec {
        address: "1.8.3",
        meaning: "Active energy - tariff 3",
        format: num(7, 0),
        unit: Some("kWh"),
        quantity: Quantity::ActiveEnergyTariff(3),
    },
    RegisterSpec {
        address: "1.8.4",
        meaning: "Active energy - tariff 4",
        format: num(7, 0),
        unit: Some("kWh"),
        quantity: Quantity::ActiveEnergyTariff(4),
    },
    RegisterSpec {
        address: "3.8.0",
        meaning: "Reactive energy",
        format: num(7, 0),
        unit: Some("kvarh"),
        quantity: Quantity::ReactiveEnergy,
    },
    RegisterSpec {
        address: "96.8.0",
        meaning: "Hour counter",
        format: num(7, 0),
        unit: Some("h"),
        quantity: Quantity::HourCounter,
    },
    RegisterSpec {
        address: "96.50.1",
        meaning: "Pulse input",
        format: num(7, 0),
        unit: None,
        quantity: Quantity::PulseInput,
    },
    RegisterSpec {
        address: "1.6.0",
        meaning: "Active peak power",
        format: num(6, 1),
        unit: Some("kW"),
        quantity: Quantity::ActivePeak,
    },
    RegisterSpec {
        address: "3.6.0",
        meaning: "Reactive peak power",
        format: num(6, 1),
        unit: Some("kvar"),
        quantity: Quantity::ReactivePeak,
    },
    RegisterSpec {
        address: "1.6.0.1",
        meaning: "Last month active peak power",
        format: num(6, 1),
        unit: Some("kW"),
        quantity: Quantity::LastMonthActivePeak,
    },
    RegisterSpec {
        address: "3.6.0.1",
        meaning: "Last month reactive peak power",
        format: num(6, 1),
        unit: Some("kvar"),
        quantity: Quantity::LastMonthReactivePeak,
    },
    RegisterSpec {
        address: "1.2.0",
        meaning: "Active peak power accumulated",
        format: num(6, 1),
        unit: Some("kW"),
        quantity: Quantity::AccumulatedActivePeak,
    },
    RegisterSpec {
        address: "3.2.0",
        meaning: "Reactive peak power accumulated",
        format: num(6, 1),
        unit: Some("kvar"),
        quantity: Quantity::AccumulatedReactivePeak,
    },
    RegisterSpec {
        address: "0.1",
        meaning: "Reset counter",
        format: num(7, 0),
        unit: None,
        quantity: Quantity::ResetCounter,
    },
];

/// The source of this model, for clauses.
pub const SOURCE: &str = "004_d1f80f13afa7763c.txt";

/// A value that does not match its register's format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormatError {
    /// Wrong number of characters or digits.
    #[error("{address}: value {raw:?} should be {expected}")]
    Shape {
        /// Register.
        address: String,
        /// What was sent.
        raw: String,
        /// What the sheet shows.
        expected: String,
    },
    /// Wrong or missing unit.
    #[error("{address}: unit {got:?} should be {expected:?}")]
    Unit {
        /// Register.
        address: String,
        /// Unit sent.
        got: Option<String>,
        /// Unit the sheet shows.
        expected: Option<String>,
    },
    /// More or fewer than one value.
    #[error("{address}: {count} values, the sheet shows one")]
    ValueCount {
        /// Register.
        address: String,
        /// How many were sent.
        count: usize,
    },
}

impl Format {
    /// Human description: `7 digits`, `6.1 digits`, `6 characters`.
    pub fn describe(&self) -> String {
        match *self {
            Format::Number { int, dec: 0 } => format!("{int} digits"),
            Format::Number { int, dec } => format!(
                "{int}.{dec} digits (e.g. {}.{})",
                "0".repeat(int as usize),
                "0".repeat(dec as usize)
            ),
            Format::Text { len } => format!("{len} alphanumeric characters"),
        }
    }

    /// Formats a non-negative number, truncating (a register never rounds up), wrapping at the
    /// register's width like a mechanical counter.
    ///
    /// Never panics, whatever the format and value (defence in depth: meter files are validated
    /// before a format gets here): NaN and negative values read 0, values beyond `u128` saturate,
    /// and a width beyond 38 digits (where `10^width` no longer fits a `u128`) does not wrap, it
    /// only pads.
    pub fn format_number(&self, value: f64) -> String {
        match *self {
            Format::Number { int, dec } => {
                let width = int as usize + dec as usize;
                let scale = 10f64.powi(i32::from(dec));
                // NaN.max(0.0) is 0.0; `as u128` saturates an infinity
                let scaled = (value.max(0.0) * scale + 1e-9).floor() as u128;
                let scaled = match u32::try_from(width)
                    .ok()
                    .and_then(|w| 10u128.checked_pow(w))
                {
                    Some(modulo) => scaled % modulo,
                    None => scaled,
                };
                let digits = format!("{scaled:0width$}");
                if dec == 0 {
                    digits
                } else {
                    // at least `width` characters, so the split is inside the string
                    let (a, b) = digits.split_at(digits.len() - dec as usize);
                    format!("{a}.{b}")
                }
            }
            Format::Text { .. } => format!("{value}"),
        }
    }

    /// Whether `raw` has exactly this format.
    pub fn matches(&self, raw: &str) -> bool {
        match *self {
            Format::Number { int, dec } => {
                let (a, b) = match raw.split_once('.') {
                    Some((a, b)) => (a, Some(b)),
                    None => (raw, None),
                };
                let ok_a = a.len() == int as usize && a.bytes().all(|c| c.is_ascii_digit());
                let ok_b = match (dec, b) {
                    (0, None) => true,
                    (d, Some(b)) if d > 0 => {
                        b.len() == d as usize && b.bytes().all(|c| c.is_ascii_digit())
                    }
                    _ => false,
                };
                ok_a && ok_b
            }
            Format::Text { len } => {
                raw.len() == len as usize && raw.bytes().all(|c| c.is_ascii_alphanumeric())
            }
        }
    }
}

impl RegisterSpec {
    /// Checks one data set against this spec.
    pub fn check(&self, ds: &DataSet) -> Result<(), FormatError> {
        if ds.values.len() != 1 {
            return Err(FormatError::ValueCount {
                address: ds.address.clone(),
                count: ds.values.len(),
            });
        }
        let v = &ds.values[0];
        if !self.format.matches(&v.raw) {
            return Err(FormatError::Shape {
                address: ds.address.clone(),
                raw: v.raw.clone(),
                expected: self.format.describe(),
            });
        }
        if v.unit.as_deref() != self.unit {
            return Err(FormatError::Unit {
                address: ds.address.clone(),
                got: v.unit.clone(),
                expected: self.unit.map(str::to_owned),
            });
        }
        Ok(())
    }

    /// The data set for a number in this register's format and unit.
    pub fn data_set(&self, raw: String) -> DataSet {
        DataSet::single(
            self.address,
            Value {
                raw,
                unit: self.unit.map(str::to_owned),
            },
        )
    }
}

/// Looks a register up by address.
pub fn spec(address: &str) -> Option<&'static RegisterSpec> {
    COMBI_351.iter().find(|s| s.address == address)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seventeen_in_order() {
        assert_eq!(COMBI_351.len(), 17);
        assert_eq!(COMBI_351[0].address, "0.0.0");
        assert_eq!(COMBI_351[16].address, "0.1");
    }

    #[test]
    fn formats() {
        let kw = num(6, 1);
        assert_eq!(kw.format_number(23.4), "000023.4");
        assert!(kw.matches("000023.4"));
        assert!(!kw.matches("00023.4"));
        assert!(!kw.matches("0000234"));
        let kwh = num(7, 0);
        assert_eq!(kwh.format_number(12658.99), "0012658");
        assert_eq!(kwh.format_number(12_345_678.0), "2345678");
        assert!(kwh.matches("0012658"));
        assert!(!kwh.matches("012658"));
        assert!(!kwh.matches("0012658.0"));
        assert!(Format::Text { len: 6 }.matches("5000D1"));
    }

    /// Issue 14: `digits` ≥ 128 made the modulo 10^width wrap to 0 (remainder by zero), and 255
    /// integer digits with a decimal overflowed `int + dec` as a u8. Formatting never panics now.
    #[test]
    fn format_number_never_panics_at_any_width_or_value() {
        for int in [0u8, 1, 7, 38, 39, 127, 128, 200, 255] {
            for dec in [0u8, 1, 2, 255] {
                let f = num(int, dec);
                for v in [
                    0.0,
                    1.5,
                    12_345_678.9,
                    -3.0,
                    f64::NAN,
                    f64::INFINITY,
                    f64::MAX,
                ] {
                    let s = f.format_number(v);
                    let digits = s.bytes().filter(u8::is_ascii_digit).count();
                    assert!(
                        digits >= int as usize + dec as usize,
                        "{int}.{dec} {v}: {s}"
                    );
                }
            }
        }
        assert_eq!(
            num(40, 0).format_number(12.0),
            format!("{}12", "0".repeat(38))
        );
        assert_eq!(num(255, 1).format_number(2.5).len(), 257);
        assert_eq!(num(7, 0).format_number(f64::NAN), "0000000");
    }
}
