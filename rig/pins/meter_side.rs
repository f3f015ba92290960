//! The meter side of a wiring file: what `rig module` needs when the rig plays the meter and the
//! module under test plugs into it (004_d1f80f13afa7763c.txt, "Module interface", seen from the
//! meter).
//!
//! A wiring file says which side it is for with `side = "meter"` (the default, `module`, is the
//! rig as the plug-in module for `rig run`). The entries keep their names (pins) and the port
//! roles keep the meter's KK meaning; on the meter side every direction turns around:
//!
//! | entry | module side (`rig run`) | meter side (`rig module`) |
//! |---|---|---|
//! | `data_out` (pin 2) | read: UART RX, edges from `tap` | driven: UART TX or a `gpio` output; `tap` optional |
//! | `data_in` (pin 5) | driven: UART TX, `tap` records | read: edges from `tap` (required), UART RX optional |
//! | `port1`/`port2` inputs (tariff, pulse in, max reset, alarm, debiting stop) | driven | read as edges |
//! | `port1`/`port2` `pulse_out` | read as edges | driven from the meter model |
//! | `[supply_monitor]` | — | the INA228 in pin 6's 4.2 V supply, its ALERT on a GPIO |
//!
//! [`Wiring::require_side`] gives the typed error for a file of the wrong side; the meter-side
//! checks join [`Wiring::check`]'s list of problems. Pure.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::wiring::{GpioRef, Opto, Wiring, WiringError};

/// Which side of the module interface the rig plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Side {
    /// The rig is the plug-in module and tests a meter (`rig run`, `rig serve`).
    #[default]
    Module,
    /// The rig is the meter and tests a module (`rig module --wiring`).
    Meter,
}

impl Side {
    /// Whether this is the default, module side (for serde's `skip_serializing_if`).
    pub fn is_module(&self) -> bool {
        *self == Side::Module
    }
}

impl fmt::Display for Side {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Side::Module => "module",
            Side::Meter => "meter",
        })
    }
}

/// The current monitor in pin 6's supply (meter side): an INA228 on an I2C bus, its ALERT output
/// (asserted above 5 mA, 004 pin 6) on a GPIO input timed as an edge. Circuit: wiring/README.md,
/// "Module-vendor mode".
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SupplyMonitor {
    /// The chip: `ina228` (the driver in `rig/module/ina228.rs`).
    pub chip: String,
    /// The I2C bus device (`/dev/i2c-1`).
    pub i2c: String,
    /// The chip's 7-bit address (0x40 with A0 and A1 to ground).
    #[serde(default = "default_address")]
    pub address: u8,
    /// The shunt resistor, Ω (0.1 in wiring/README.md).
    pub shunt_ohm: f64,
    /// The GPIO input the ALERT line reaches through its optocoupler.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert: Option<GpioRef>,
    /// The ALERT path's optocoupler (ALERT is active low at the chip).
    #[serde(default)]
    pub opto: Opto,
}

fn default_address() -> u8 {
    0x40
}

/// The text of [`WiringError::WrongSide`].
pub fn wrong_side_text(found: &Side, needed: &Side) -> String {
    match (found, needed) {
        (Side::Module, Side::Meter) => "this wiring file is for `rig run` (module side); \
             `rig module` needs the meter-side roles: `side = \"meter\"`, [data_out] driven by \
             the rig (`uart` TX or a `gpio` output), [data_in] read (a `tap` for edges), the \
             ports' inputs read and pulse outputs driven, and [supply_monitor] for pin 6 \
             (wiring/README.md, \"Module-vendor mode\"; fixtures/wiring/meter-side.toml)"
            .into(),
        (Side::Meter, Side::Module) => "this wiring file is for `rig module` (meter side, \
             `side = \"meter\"`); `rig run`, `rig serve` and `rig calibrate` need the module \
             side: the rig reads data out and drives data in and the meter's inputs \
             (wiring/raspberry-pi.toml)"
            .into(),
        _ => format!("this wiring file is for the {found} side, as needed ({needed})"),
    }
}

impl Wiring {
    /// `Ok` when the file is for `needed`'s side.
    ///
    /// # Errors
    /// [`WiringError::WrongSide`], naming what the other side needs.
    pub fn require_side(&self, file: &str, needed: Side) -> Result<(), WiringError> {
        if self.side == needed {
            Ok(())
        } else {
            Err(WiringError::WrongSide {
                file: file.to_string(),
                found: self.side,
                needed,
            })
        }
    }

    /// The meter side's own GPIO references (data out's driving line, the ALERT input), for the
    /// line checks.
    pub(super) fn meter_side_refs<'a>(&'a self, refs: &mut Vec<(String, &'a GpioRef)>) {
        if let Some(g) = self.data_out.as_ref().and_then(|d| d.gpio.as_ref()) {
            refs.push(("data_out.gpio".into(), g));
        }
        if let Some(g) = self.supply_monitor.as_ref().and_then(|m| m.alert.as_ref()) {
            refs.push(("supply_monitor.alert".into(), g));
        }
    }

    /// What a meter-side file must have, and what a module-side file must not: every problem.
    pub(super) fn check_meter_side(&self, file: &str, problems: &mut Vec<WiringError>) {
        let problem = |entry: &str, detail: &str| WiringError::MeterSide {
            file: file.to_string(),
            entry: entry.to_string(),
            detail: detail.to_string(),
        };
        if self.side == Side::Module {
            if self.supply_monitor.is_some() {
                problems.push(problem(
                    "supply_monitor",
                    "a supply monitor is part of the meter side: add `side = \"meter\"` for rig module, or remove [supply_monitor]",
                ));
            }
            if self.data_out.as_ref().is_some_and(|d| d.gpio.is_some()) {
                problems.push(problem(
                    "data_out",
                    "`gpio` drives data out on the meter side only: add `side = \"meter\"` for rig module; on the module side the rig reads data out (`uart` RX, `tap`)",
                ));
            }
            return;
        }
        match &self.data_out {
            Some(d) if d.uart.is_some() && d.gpio.is_some() => problems.push(problem(
                "data_out",
                "both `uart` and `gpio` drive pin 2: keep one",
            )),
            Some(d) if d.uart.is_none() && d.gpio.is_none() => problems.push(problem(
                "data_out",
                "the rig drives data out on the meter side: give the UART whose TX drives pin 2 (`uart = \"/dev/serial0\"`) or a GPIO output (`gpio = …`)",
            )),
            _ => {}
        }
        if self.data_in.as_ref().is_some_and(|d| d.tap.is_none()) {
            problems.push(problem(
                "data_in",
                "the rig reads the module's requests from edges on the meter side: add a `tap` (a GPIO input on the data in optocoupler's output)",
            ));
        }
        if let Some(m) = &self.supply_monitor {
            if m.chip != "ina228" {
                problems.push(problem(
                    "supply_monitor",
                    &format!(
                        "chip {:?}: the rig has a driver for \"ina228\" only",
                        m.chip
                    ),
                ));
            }
            if !(m.shunt_ohm.is_finite() && m.shunt_ohm > 0.0) {
                problems.push(problem(
                    "supply_monitor",
                    &format!("shunt_ohm = {}: give the shunt's resistance in Ω (0.1 in wiring/README.md)", m.shunt_ohm),
                ));
            }
            if m.alert.is_some() && m.opto.inverting.is_none() {
                problems.push(WiringError::MissingPolarity {
                    file: file.to_string(),
                    entry: "supply_monitor".into(),
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::wiring::{ChipInventory, Wiring, WiringError};
    use super::*;

    fn fixture(name: &str) -> (String, Wiring) {
        let p = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/wiring")
            .join(name);
        (p.display().to_string(), Wiring::load(&p).unwrap())
    }

    #[test]
    fn the_meter_side_fixture_checks_against_its_kk() {
        let (f, w) = fixture("meter-side.toml");
        assert_eq!(w.side, Side::Meter);
        w.require_side(&f, Side::Meter).unwrap();
        w.check(&f, None, &ChipInventory::default()).unwrap();
        let m = w.supply_monitor.as_ref().unwrap();
        assert_eq!((m.address, m.shunt_ohm), (0x40, 0.1));
        // the directions turn around: the rig reads the tariff input and drives the pulse output
        assert_eq!(w.entry_is_driven("data_out"), Some(true));
        assert_eq!(w.entry_is_driven("data_in"), Some(false));
        assert_eq!(w.entry_is_driven("port2"), Some(false));
        assert_eq!(w.entry_is_driven("port1"), Some(false));
    }

    #[test]
    fn a_file_of_the_wrong_side_is_refused_with_what_the_command_needs() {
        let pi = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wiring/raspberry-pi.toml");
        let w = Wiring::load(&pi).unwrap();
        let e = w.require_side("pi.toml", Side::Meter).unwrap_err();
        let text = e.to_string();
        assert!(matches!(e, WiringError::WrongSide { .. }));
        assert!(
            text.contains("this wiring file is for `rig run` (module side); `rig module` needs the meter-side roles"),
            "{text}"
        );
        let (f, w) = fixture("meter-side.toml");
        let text = w.require_side(&f, Side::Module).unwrap_err().to_string();
        assert!(text.contains("is for `rig module` (meter side"), "{text}");
    }

    #[test]
    fn meter_side_problems_are_listed_together() {
        let text = r#"
side = "meter"
backend = "gpio"
[data_out]
opto = { inverting = false }
[data_in]
uart = "/dev/ttyS1"
opto = { inverting = false }
[supply_monitor]
chip = "ina226"
i2c = "/dev/i2c-1"
shunt_ohm = 0.0
alert = { chip = "gpiochip0", line = 9 }
"#;
        let w = Wiring::parse("m.toml", text).unwrap();
        let e = w
            .check("m.toml", None, &ChipInventory::default())
            .unwrap_err();
        let WiringError::Several { problems, .. } = &e else {
            panic!("{e}")
        };
        assert_eq!(problems.len(), 5, "{e}");
        let s = e.to_string();
        for needle in [
            "drives data out",
            "add a `tap`",
            "\"ina228\" only",
            "shunt_ohm",
            "supply_monitor.opto",
        ] {
            assert!(s.contains(needle), "{needle}: {s}");
        }
        // meter-side entries in a module-side file
        let w = Wiring::parse("m.toml", &text.replace("side = \"meter\"", "")).unwrap();
        let s = w
            .check("m.toml", None, &ChipInventory::default())
            .unwrap_err()
            .to_string();
        assert!(
            s.contains("supply monitor is part of the meter side"),
            "{s}"
        );
    }
}
