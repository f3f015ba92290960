//! Wiring files: what each module-interface pin is connected to on the rig.
//!
//! A wiring file is TOML with one table per module pin, named after the pin's function
//! (`gnd` = pin 1, `data_out` = pin 2, `port2` = pin 3, `port1` = pin 4, `data_in` = pin 5,
//! `supply` = pin 6; 004_d1f80f13afa7763c.txt, "Module interface"), plus `[[loopback]]` entries
//! used by `rig calibrate`. See `wiring/README.md` for the circuits and `wiring/raspberry-pi.toml`
//! for a complete example.
//!
//! Every optocoupler path must state `inverting = true|false`; a missing polarity is an error,
//! never a default. Calibrated delays (`rise_delay_ns`, `fall_delay_ns`, with spreads) are written
//! by `rig calibrate`. "Rise" and "fall" always name the level change **at the module pin**.
//!
//! [`Wiring::parse`] checks syntax and shape; [`Wiring::check`] checks consistency (a line used
//! twice, a tap on the UART's own pin, roles against a KK configuration, line numbers against the
//! chips present on this machine).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::meter::io::{IoCode, PortRole};
use crate::target::Port;
use crate::uart::Level;

pub use super::meter_side::{wrong_side_text, Side, SupplyMonitor};

/// The Raspberry Pi's primary UART pins (BCM numbering): TXD0/TXD1 and RXD0/RXD1.
pub const PI_UART_TX_BCM: u32 = 14;
/// See [`PI_UART_TX_BCM`].
pub const PI_UART_RX_BCM: u32 = 15;
/// The BCM GPIO count of the 40-pin header SoCs (lines 0..=53 on BCM2835..2711; 0..=27 on the
/// header).
pub const PI_BCM_LINES: u32 = 54;

/// Which backend drives the wiring.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum BackendKind {
    /// Any Linux board through the GPIO character device (`chip` + `line`).
    #[default]
    Gpio,
    /// Raspberry Pi through rppal (`bcm` numbers).
    Pi,
}

/// A GPIO line: `{ chip = "gpiochip0", line = 17 }` (character device), or `{ bcm = 17 }` (Pi).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GpioRef {
    /// Chip name (`gpiochip0`), path (`/dev/gpiochip0`), or label (`gpio-sim.0-node0`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub chip: Option<String>,
    /// Line offset on `chip`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<u32>,
    /// BCM GPIO number (Raspberry Pi).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bcm: Option<u32>,
}

impl GpioRef {
    /// A character-device line.
    pub fn cdev(chip: &str, line: u32) -> Self {
        GpioRef {
            chip: Some(chip.to_string()),
            line: Some(line),
            bcm: None,
        }
    }
    /// A BCM-numbered Pi line.
    pub fn bcm(n: u32) -> Self {
        GpioRef {
            chip: None,
            line: None,
            bcm: Some(n),
        }
    }
    /// The line as (chip, offset) once resolved: BCM numbers are lines of the Pi's `gpiochip0`.
    pub fn chip_line(&self) -> Option<(String, u32)> {
        match (&self.chip, self.line, self.bcm) {
            (Some(c), Some(l), None) => Some((c.clone(), l)),
            (None, None, Some(b)) => Some(("bcm".to_string(), b)),
            _ => None,
        }
    }
}

impl fmt::Display for GpioRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.chip, self.line, self.bcm) {
            (Some(c), Some(l), None) => write!(f, "{c} line {l}"),
            (None, None, Some(b)) => write!(f, "BCM {b}"),
            _ => write!(f, "(malformed gpio reference)"),
        }
    }
}

/// The optocoupler between a module pin and the rig.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Opto {
    /// Whether the rig-side level is the inverse of the module-pin level. Required.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inverting: Option<bool>,
    /// Calibrated delay (median) of a rising edge at the module pin, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise_delay_ns: Option<u64>,
    /// Calibrated delay (median) of a falling edge at the module pin, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall_delay_ns: Option<u64>,
    /// Spread (max − min over the calibration run, plus write-time uncertainty) of the rise delay, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rise_spread_ns: Option<u64>,
    /// Spread of the fall delay, ns.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fall_spread_ns: Option<u64>,
    /// Part number, for the record (`PC817`, `6N137`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<String>,
}

impl Opto {
    /// Polarity (panics never: unchecked wiring returns `false`; [`Wiring::check`] rejects it).
    pub fn is_inverting(&self) -> bool {
        self.inverting.unwrap_or(false)
    }
    /// Module-pin level from a rig-side level.
    pub fn pin_level(&self, rig_level: Level) -> Level {
        if self.is_inverting() {
            !rig_level
        } else {
            rig_level
        }
    }
    /// Calibrated delay for an edge to `pin_level` at the module pin, and its one-sided
    /// uncertainty (half the spread), both ns; zeros when uncalibrated.
    pub fn delay_for(&self, pin_level: Level) -> (u64, u64) {
        if pin_level.is_high() {
            (
                self.rise_delay_ns.unwrap_or(0),
                self.rise_spread_ns.unwrap_or(0).div_ceil(2),
            )
        } else {
            (
                self.fall_delay_ns.unwrap_or(0),
                self.fall_spread_ns.unwrap_or(0).div_ceil(2),
            )
        }
    }
}

/// A data line (pin 2 data out, pin 5 data in).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct DataEntry {
    /// The rig's UART device: its RX for `data_out`, its TX for `data_in`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uart: Option<String>,
    /// The GPIO the UART's own pin is on (for the tap check). Defaults on the Pi to BCM 15 (RX)
    /// and BCM 14 (TX) for `/dev/serial0`, `/dev/ttyAMA0` and `/dev/ttyS0`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uart_pin: Option<GpioRef>,
    /// The edge-capture tap: a GPIO input wired in parallel with the UART line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tap: Option<GpioRef>,
    /// Meter side (`side = "meter"`), `data_out` only: a GPIO output that drives pin 2 in place
    /// of a UART TX (the rig bit-bangs the meter's answer).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio: Option<GpioRef>,
    /// The optocoupler between the module pin and the rig.
    #[serde(default)]
    pub opto: Opto,
}

/// What the meter's configuration makes a port (the KK table of 000_c06f58957f887af9.txt, the Z3
/// table of 002/003), as written in a wiring file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Tariff input: the rig drives it.
    TariffIn,
    /// Pulse input (counted in 96.50.1): the rig drives it.
    PulseIn,
    /// Pulse output (A+ / R+ out): the rig captures it.
    PulseOut,
    /// Max (peak power) reset input: the rig drives it.
    MaxReset,
    /// Alarm input: the rig drives it.
    AlarmIn,
    /// OMNIPOWER debiting stop pulse input (Z3 15): the rig drives it.
    DebitingStop,
    /// Not connected to anything on the rig.
    Unused,
}

impl Role {
    /// Whether the rig drives this port (a meter input).
    pub fn rig_drives(self) -> bool {
        matches!(
            self,
            Role::TariffIn | Role::PulseIn | Role::MaxReset | Role::AlarmIn | Role::DebitingStop
        )
    }
    /// snake_case name as in the file.
    pub fn name(self) -> &'static str {
        match self {
            Role::TariffIn => "tariff_in",
            Role::PulseIn => "pulse_in",
            Role::PulseOut => "pulse_out",
            Role::MaxReset => "max_reset",
            Role::AlarmIn => "alarm_in",
            Role::DebitingStop => "debiting_stop",
            Role::Unused => "unused",
        }
    }

    /// The wiring role of a port with the meter-side role `r`; `None` for "no function".
    /// Every pulse output (A+, R+, and OMNIPOWER's A-) is `pulse_out`: the rig captures it.
    pub fn of_port_role(r: PortRole) -> Option<Role> {
        match r {
            PortRole::None => None,
            PortRole::TariffIn => Some(Role::TariffIn),
            PortRole::PulseIn => Some(Role::PulseIn),
            PortRole::AlarmIn { .. } => Some(Role::AlarmIn),
            PortRole::MaxReset => Some(Role::MaxReset),
            PortRole::DebitingStop => Some(Role::DebitingStop),
            PortRole::ActiveOut | PortRole::ReactiveOut | PortRole::ExportOut => {
                Some(Role::PulseOut)
            }
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The roles (port 1, port 2) an I/O code gives, `None` for "no function" on that port. From the
/// meter model's tables ([`crate::meter::io::KK_351`], [`crate::meter::io::Z3_OMNI`]), the one
/// source of port roles.
pub fn io_roles(io: &IoCode) -> [Option<Role>; 2] {
    [
        Role::of_port_role(io.map.port1),
        Role::of_port_role(io.map.port2),
    ]
}

/// A pulse/I-O port (pin 4 port 1, pin 3 port 2).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PortEntry {
    /// What the meter's configuration makes this port.
    pub role: Role,
    /// The rig GPIO: an output for meter inputs, an edge-capture input for `pulse_out`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpio: Option<GpioRef>,
    /// The optocoupler.
    #[serde(default)]
    pub opto: Opto,
}

/// Pins 1 and 6: documentation only (where ground and the 4.2 V supply go).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PowerEntry {
    /// Free text: what the pin is connected to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

/// A calibration loopback: rig output → optocoupler → rig input.
///
/// For an entry the rig drives (`port1`/`port2` with a driven role, `data_in`), `drive` defaults
/// to that entry's GPIO and `sense` is a spare input watching the module side. For an entry the
/// rig captures (`data_out`, `pulse_out` ports), `sense` defaults to the entry's tap/GPIO and
/// `drive` is a spare output feeding the opto's LED in place of the meter.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Loopback {
    /// The entry whose optocoupler this loopback calibrates (`data_out`, `port1`, …).
    pub entry: String,
    /// The rig output that toggles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub drive: Option<GpioRef>,
    /// The rig input that sees the result.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sense: Option<GpioRef>,
    /// Whether the sense line reads the module-pin level inverted (a second opto); default false.
    #[serde(default)]
    pub sense_inverting: bool,
}

/// A whole wiring file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct Wiring {
    /// Free text describing the rig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Backend: `gpio` (character device) or `pi` (rppal).
    #[serde(default)]
    pub backend: BackendKind,
    /// Which side of the module interface the rig plays: `module` (`rig run`, the default) or
    /// `meter` (`rig module`: data out driven, data in and the port inputs read, pulse outputs
    /// driven, pin 6 supplied through `[supply_monitor]`).
    #[serde(default, skip_serializing_if = "Side::is_module")]
    pub side: Side,
    /// The meter configuration's KK code, when fixed for this rig.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kk: Option<u8>,
    /// Pin 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gnd: Option<PowerEntry>,
    /// Pin 2: the meter's data out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_out: Option<DataEntry>,
    /// Pin 3.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port2: Option<PortEntry>,
    /// Pin 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port1: Option<PortEntry>,
    /// Pin 5: the meter's data in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data_in: Option<DataEntry>,
    /// Pin 6.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supply: Option<PowerEntry>,
    /// Meter side only: the current monitor in pin 6's 4.2 V supply (an INA228 on I2C, its ALERT
    /// on a GPIO).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub supply_monitor: Option<SupplyMonitor>,
    /// Calibration loopbacks.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub loopback: Vec<Loopback>,
}

/// A problem in a wiring file. `entry` names the table (`data_out`, `port1`, `loopback[0]`, …).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WiringError {
    /// The file could not be read.
    #[error("{file}: cannot read: {detail}")]
    Read {
        /// The file.
        file: String,
        /// What the OS said.
        detail: String,
    },
    /// Not valid TOML, or the wrong shape.
    #[error("{file}:{line}:{column}: malformed wiring file: {detail}")]
    Malformed {
        /// The file.
        file: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What the parser said.
        detail: String,
    },
    /// An optocoupler without `inverting`.
    #[error("{file}: entry {entry}: optocoupler polarity missing: set `inverting = true` or `inverting = false` in [{entry}.opto]")]
    MissingPolarity {
        /// The file.
        file: String,
        /// The table.
        entry: String,
    },
    /// A GPIO reference that is neither `{chip, line}` nor `{bcm}`, or the wrong kind for the
    /// backend.
    #[error("{file}: entry {entry}: bad gpio reference: {detail}")]
    BadGpioRef {
        /// The file.
        file: String,
        /// The table.
        entry: String,
        /// What is wrong.
        detail: String,
    },
    /// The same GPIO line appears in two places.
    #[error("{file}: entry {entry}: {line} is already used by {first}")]
    LineUsedTwice {
        /// The file.
        file: String,
        /// The second use.
        entry: String,
        /// The line.
        line: String,
        /// The first use.
        first: String,
    },
    /// A capture tap on the pin the UART itself uses.
    #[error("{file}: entry {entry}: capture tap {line} is the UART's own pin; wire the tap to a spare GPIO in parallel with the UART line")]
    TapOnUartPin {
        /// The file.
        file: String,
        /// The table.
        entry: String,
        /// The line.
        line: String,
    },
    /// A chip that does not exist on this machine.
    #[error("{file}: entry {entry}: unknown GPIO chip {chip} (chips here: {present})")]
    UnknownChip {
        /// The file.
        file: String,
        /// The table.
        entry: String,
        /// The chip as written.
        chip: String,
        /// Chips found on this machine.
        present: String,
    },
    /// A line beyond the chip's line count.
    #[error("{file}: entry {entry}: line {line} does not exist on {chip} ({num_lines} lines)")]
    UnknownLine {
        /// The file.
        file: String,
        /// The table.
        entry: String,
        /// The chip.
        chip: String,
        /// The line as written.
        line: u32,
        /// Lines the chip has.
        num_lines: u32,
    },
    /// Port roles the meter configuration cannot have: every port that is wrong, not only the
    /// first.
    #[error("{file}: {}", join_role_problems(.problems))]
    RolesNotPossible {
        /// The file.
        file: String,
        /// One per wrong port, in port order.
        problems: Vec<RoleProblem>,
    },
    /// A KK code outside 00–19.
    #[error("{file}: KK {kk:02} is not a 351 Combi module I/O code (00-19)")]
    UnknownKk {
        /// The file.
        file: String,
        /// The code.
        kk: u8,
    },
    /// A port with a role other than `unused` but no GPIO.
    #[error("{file}: entry {entry}: role {role} needs a `gpio`")]
    MissingGpio {
        /// The file.
        file: String,
        /// The table.
        entry: String,
        /// The role.
        role: Role,
    },
    /// A file that wires none of the module pins: every case would wait for lines that are not
    /// there.
    #[error("{file}: nothing is wired: the file has none of [data_out], [data_in], [port1], [port2]; start from wiring/raspberry-pi.toml (wiring/README.md explains each entry)")]
    NothingWired {
        /// The file.
        file: String,
    },
    /// A port the meter's I/O code gives a function that the file leaves unwired, so its cases
    /// would wait for edges that cannot come.
    #[error("{file}: entry {entry}: {code} makes {entry} {role}, but the file does not wire it: add [{entry}] with role = \"{role}\", a `gpio` and its `opto`, or check the meter's code (--kk, --meter)")]
    PortNotWired {
        /// The file.
        file: String,
        /// The table (`port1`, `port2`).
        entry: String,
        /// The role the I/O code gives the port.
        role: Role,
        /// The I/O code (`KK 01`, `Z3 16`).
        code: String,
    },
    /// More than one problem: every one, in file order, so one edit fixes them all.
    #[error("{file}: {} problems:\n{}", count_problems(.problems), join_problems(.file, .problems))]
    Several {
        /// The file.
        file: String,
        /// Each problem (none of them `Several`).
        problems: Vec<WiringError>,
    },
    /// A wiring file for the other side of the module interface than the command plays.
    #[error("{file}: {}", wrong_side_text(.found, .needed))]
    WrongSide {
        /// The file.
        file: String,
        /// The side the file is for.
        found: Side,
        /// The side the command needs.
        needed: Side,
    },
    /// A meter-side entry that cannot do what `rig module` needs of it.
    #[error("{file}: entry {entry}: {detail}")]
    MeterSide {
        /// The file.
        file: String,
        /// The table (`data_out`, `data_in`, `supply_monitor`, …).
        entry: String,
        /// What is wrong and how to fix it.
        detail: String,
    },
    /// A loopback that does not fit its entry.
    #[error("{file}: entry {entry}: bad loopback: {detail}")]
    BadLoopback {
        /// The file.
        file: String,
        /// The loopback (`loopback[0]`).
        entry: String,
        /// What is wrong.
        detail: String,
    },
}

/// One port whose role the meter's I/O code does not give it.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("entry {entry}: role {role} is not possible with {code} ({expected})")]
pub struct RoleProblem {
    /// The table (`port1`, `port2`).
    pub entry: String,
    /// Role as written.
    pub role: Role,
    /// The I/O code (`KK 01`, `Z3 16`).
    pub code: String,
    /// What the code gives that port.
    pub expected: String,
}

/// The problems of [`WiringError::Several`], one a line without the file's name; each wrong
/// port role on its own line.
fn join_problems(file: &str, problems: &[WiringError]) -> String {
    let prefix = format!("{file}: ");
    let mut v = Vec::new();
    for p in problems {
        match p {
            WiringError::RolesNotPossible { problems, .. } => {
                v.extend(problems.iter().map(|r| format!("  - {r}")));
            }
            p => {
                let s = p.to_string();
                v.push(format!("  - {}", s.strip_prefix(&prefix).unwrap_or(&s)));
            }
        }
    }
    v.join("\n")
}

fn count_problems(problems: &[WiringError]) -> usize {
    problems
        .iter()
        .map(|p| match p {
            WiringError::RolesNotPossible { problems, .. } => problems.len(),
            _ => 1,
        })
        .sum()
}

fn join_role_problems(problems: &[RoleProblem]) -> String {
    let v: Vec<String> = problems.iter().map(ToString::to_string).collect();
    v.join("; ")
}

/// A note from [`Wiring::check`] that is not an error (e.g. a line not checked on this machine).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WiringNote {
    /// The table.
    pub entry: String,
    /// The note.
    pub text: String,
}

/// The GPIO chips present on a machine: name → (label, line count). Lookups accept a name
/// (`gpiochip0`), a path (`/dev/gpiochip0`) or a label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChipInventory {
    /// name → (label, num_lines).
    pub chips: BTreeMap<String, (String, u32)>,
}

impl ChipInventory {
    /// The chips of this machine through the character device (empty if there is no GPIO).
    pub fn scan() -> Self {
        let mut chips = BTreeMap::new();
        if let Ok(paths) = gpiocdev::chip::chips() {
            for p in paths {
                if let Ok(c) = gpiocdev::chip::Chip::from_path(&p) {
                    if let Ok(info) = c.info() {
                        chips.insert(info.name, (info.label, info.num_lines));
                    }
                }
            }
        }
        ChipInventory { chips }
    }
    /// Finds a chip by name, path or label: (name, num_lines).
    pub fn find(&self, chip: &str) -> Option<(String, u32)> {
        let name = chip.strip_prefix("/dev/").unwrap_or(chip);
        if let Some((_, n)) = self.chips.get(name) {
            return Some((name.to_string(), *n));
        }
        self.chips
            .iter()
            .find(|(_, (label, _))| label == chip)
            .map(|(n, (_, l))| (n.clone(), *l))
    }
}

/// Where a TOML span starts, as 1-based line and column.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, col)
}

impl Wiring {
    /// Reads and parses a file (shape only; call [`Wiring::check`] for consistency).
    pub fn load(path: &Path) -> Result<Wiring, WiringError> {
        let file = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| WiringError::Read {
            file: file.clone(),
            detail: e.to_string(),
        })?;
        Wiring::parse(&file, &text)
    }

    /// Parses TOML text; `file` names it in errors.
    pub fn parse(file: &str, text: &str) -> Result<Wiring, WiringError> {
        toml::from_str(text).map_err(|e: toml::de::Error| {
            let (line, column) = e.span().map_or((0, 0), |s| line_col(text, s.start));
            WiringError::Malformed {
                file: file.to_string(),
                line,
                column,
                detail: crate::meter::config::toml_reason(&e, text),
            }
        })
    }

    /// The port entry for `port`.
    pub fn port(&self, port: Port) -> Option<&PortEntry> {
        match port {
            Port::Port1 => self.port1.as_ref(),
            Port::Port2 => self.port2.as_ref(),
        }
    }

    /// The entry name and optocoupler of every table that has one.
    pub fn optos(&self) -> Vec<(&'static str, &Opto)> {
        let mut v = Vec::new();
        if let Some(d) = &self.data_out {
            v.push(("data_out", &d.opto));
        }
        if let Some(p) = &self.port2 {
            if p.role != Role::Unused {
                v.push(("port2", &p.opto));
            }
        }
        if let Some(p) = &self.port1 {
            if p.role != Role::Unused {
                v.push(("port1", &p.opto));
            }
        }
        if let Some(d) = &self.data_in {
            v.push(("data_in", &d.opto));
        }
        v
    }

    /// Whether the rig drives entry `name` (vs. captures it); `None` for an unknown entry.
    pub fn entry_is_driven(&self, name: &str) -> Option<bool> {
        let driven = match name {
            "data_out" => self.data_out.as_ref().map(|_| false),
            "data_in" => self.data_in.as_ref().map(|_| true),
            "port1" => self.port1.as_ref().map(|p| p.role.rig_drives()),
            "port2" => self.port2.as_ref().map(|p| p.role.rig_drives()),
            _ => None,
        };
        // the meter side turns every direction around (an unused port is driven by nobody)
        match (self.side, name) {
            (Side::Meter, "port1" | "port2") => {
                let role = self
                    .port(if name == "port1" {
                        Port::Port1
                    } else {
                        Port::Port2
                    })?
                    .role;
                Some(role == Role::PulseOut)
            }
            (Side::Meter, _) => driven.map(|d| !d),
            (Side::Module, _) => driven,
        }
    }

    /// The GPIO of entry `name`: a port's `gpio`, a data line's `tap`.
    pub fn entry_gpio(&self, name: &str) -> Option<&GpioRef> {
        match name {
            "data_out" => self.data_out.as_ref()?.tap.as_ref(),
            "data_in" => self.data_in.as_ref()?.tap.as_ref(),
            "port1" => self.port1.as_ref()?.gpio.as_ref(),
            "port2" => self.port2.as_ref()?.gpio.as_ref(),
            _ => None,
        }
    }

    /// The polarity of entry `name`'s optocoupler (`None` if the entry has none).
    pub fn opto_inverting(&self, name: &str) -> Option<bool> {
        self.optos()
            .into_iter()
            .find(|(n, _)| *n == name)
            .map(|(_, o)| o.is_inverting())
    }

    /// Mutable optocoupler of entry `name`.
    pub fn opto_mut(&mut self, name: &str) -> Option<&mut Opto> {
        match name {
            "data_out" => Some(&mut self.data_out.as_mut()?.opto),
            "data_in" => Some(&mut self.data_in.as_mut()?.opto),
            "port1" => Some(&mut self.port1.as_mut()?.opto),
            "port2" => Some(&mut self.port2.as_mut()?.opto),
            _ => None,
        }
    }

    /// Checks consistency. `io` is the meter's module I/O code (from a meter file's resolved
    /// spec, or `--kk`) and overrides the file's `kk`. `chips` is what exists on this machine:
    /// lines on chips that exist are checked against the line count; otherwise a note says they
    /// were only checked syntactically. Returns notes on success; otherwise every problem at
    /// once: the one problem itself, or [`WiringError::Several`] listing each in file order. A
    /// file that wires no module pin ([`WiringError::NothingWired`]) and a port the I/O code uses
    /// but the file leaves unwired ([`WiringError::PortNotWired`]) are problems too.
    pub fn check(
        &self,
        file: &str,
        io: Option<IoCode>,
        chips: &ChipInventory,
    ) -> Result<Vec<WiringNote>, WiringError> {
        let mut notes = Vec::new();
        let mut problems = Vec::new();
        if self.data_out.is_none()
            && self.data_in.is_none()
            && self.port1.is_none()
            && self.port2.is_none()
        {
            problems.push(WiringError::NothingWired {
                file: file.to_string(),
            });
        }
        self.check_polarity(file, &mut problems);
        self.check_meter_side(file, &mut problems);
        let refs = self.gpio_refs(file, &mut problems);
        self.check_lines(file, &refs, chips, &mut notes, &mut problems);
        self.check_taps(file, &mut problems);
        let io = match (io, self.kk) {
            (Some(io), _) => Some(io),
            (None, Some(kk)) => {
                let io = IoCode::kk(kk);
                if io.is_none() {
                    problems.push(WiringError::UnknownKk {
                        file: file.to_string(),
                        kk,
                    });
                }
                io
            }
            (None, None) => None,
        };
        if let Some(io) = io {
            if let Err(e) = self.check_roles(file, &io) {
                problems.push(e);
            }
            if !problems
                .iter()
                .any(|p| matches!(p, WiringError::NothingWired { .. }))
            {
                self.check_ports_wired(file, &io, &mut problems);
            }
        }
        self.check_loopbacks(file, &mut problems);
        match problems.len() {
            0 => Ok(notes),
            1 => Err(problems.remove(0)),
            _ => Err(WiringError::Several {
                file: file.to_string(),
                problems,
            }),
        }
    }

    /// Every optocoupler states its polarity.
    fn check_polarity(&self, file: &str, problems: &mut Vec<WiringError>) {
        for (entry, _) in self
            .optos()
            .into_iter()
            .filter(|(_, o)| o.inverting.is_none())
        {
            problems.push(WiringError::MissingPolarity {
                file: file.to_string(),
                entry: entry.to_string(),
            });
        }
    }

    /// Every port the I/O code gives a function is in the file with a role other than `unused`.
    fn check_ports_wired(&self, file: &str, io: &IoCode, problems: &mut Vec<WiringError>) {
        let roles = io_roles(io);
        for (port, idx) in [(Port::Port1, 0), (Port::Port2, 1)] {
            let Some(role) = roles[idx] else { continue };
            if self.port(port).is_none_or(|p| p.role == Role::Unused) {
                problems.push(WiringError::PortNotWired {
                    file: file.to_string(),
                    entry: format!("port{}", port.number()),
                    role,
                    code: io.to_string(),
                });
            }
        }
    }

    /// Every GPIO reference, in file order, named by its entry; a used port needs one.
    fn gpio_refs(&self, file: &str, problems: &mut Vec<WiringError>) -> Vec<(String, &GpioRef)> {
        let mut refs: Vec<(String, &GpioRef)> = Vec::new();
        if let Some(g) = self.data_out.as_ref().and_then(|d| d.tap.as_ref()) {
            refs.push(("data_out.tap".into(), g));
        }
        for (name, p) in [("port2", &self.port2), ("port1", &self.port1)] {
            let Some(p) = p else { continue };
            match (&p.gpio, p.role) {
                (Some(g), _) => refs.push((format!("{name}.gpio"), g)),
                (None, Role::Unused) => {}
                (None, role) => problems.push(WiringError::MissingGpio {
                    file: file.to_string(),
                    entry: name.to_string(),
                    role,
                }),
            }
        }
        if let Some(g) = self.data_in.as_ref().and_then(|d| d.tap.as_ref()) {
            refs.push(("data_in.tap".into(), g));
        }
        self.meter_side_refs(&mut refs);
        for (i, lb) in self.loopback.iter().enumerate() {
            if let Some(g) = &lb.drive {
                refs.push((format!("loopback[{i}].drive"), g));
            }
            if let Some(g) = &lb.sense {
                refs.push((format!("loopback[{i}].sense"), g));
            }
        }
        refs
    }

    /// Each reference is well formed for the backend, exists, and is used once.
    fn check_lines(
        &self,
        file: &str,
        refs: &[(String, &GpioRef)],
        chips: &ChipInventory,
        notes: &mut Vec<WiringNote>,
        problems: &mut Vec<WiringError>,
    ) {
        let mut seen: BTreeMap<(String, u32), String> = BTreeMap::new();
        for (entry, g) in refs {
            let (canon, line) = match self.resolve_line(file, entry, g, chips, notes) {
                Ok(r) => r,
                Err(e) => {
                    problems.push(e);
                    continue;
                }
            };
            if let Some(first) = seen.get(&(canon.clone(), line)) {
                problems.push(WiringError::LineUsedTwice {
                    file: file.to_string(),
                    entry: entry.clone(),
                    line: g.to_string(),
                    first: first.clone(),
                });
                continue;
            }
            seen.insert((canon, line), entry.clone());
        }
    }

    /// One reference resolved to (canonical chip name, line), so two spellings of a line collide.
    fn resolve_line(
        &self,
        file: &str,
        entry: &str,
        g: &GpioRef,
        chips: &ChipInventory,
        notes: &mut Vec<WiringNote>,
    ) -> Result<(String, u32), WiringError> {
        let bad = |detail: &str| WiringError::BadGpioRef {
            file: file.to_string(),
            entry: entry.to_string(),
            detail: detail.into(),
        };
        let Some((chip, line)) = g.chip_line() else {
            return Err(bad("give either `chip` and `line`, or `bcm`"));
        };
        match (self.backend, g.bcm.is_some()) {
            (BackendKind::Pi, false) => {
                return Err(bad("backend \"pi\" takes BCM numbers (`bcm = N`)"))
            }
            (BackendKind::Gpio, true) => return Err(bad(
                "backend \"gpio\" takes `chip` and `line`; use backend = \"pi\" for BCM numbers",
            )),
            _ => {}
        }
        let unknown_line = |chip: String, num_lines: u32| WiringError::UnknownLine {
            file: file.to_string(),
            entry: entry.to_string(),
            chip,
            line,
            num_lines,
        };
        if g.bcm.is_some() {
            if line >= PI_BCM_LINES {
                return Err(unknown_line("the Pi's BCM GPIO".into(), PI_BCM_LINES));
            }
            return Ok((chip, line));
        }
        if let Some((name, n)) = chips.find(&chip) {
            if line >= n {
                return Err(unknown_line(name, n));
            }
            return Ok((name, line));
        }
        if !chips.chips.is_empty() {
            return Err(WiringError::UnknownChip {
                file: file.to_string(),
                entry: entry.to_string(),
                chip: chip.clone(),
                present: chips.chips.keys().cloned().collect::<Vec<_>>().join(", "),
            });
        }
        notes.push(WiringNote {
            entry: entry.to_string(),
            text: format!("{g}: not checked (no GPIO chips on this machine); syntax only"),
        });
        Ok((
            chip.strip_prefix("/dev/").unwrap_or(&chip).to_string(),
            line,
        ))
    }

    /// No capture tap sits on the UART's own pin.
    fn check_taps(&self, file: &str, problems: &mut Vec<WiringError>) {
        // on the meter side the UART's TX drives data out and its RX reads data in
        let (out_pin, in_pin) = match self.side {
            Side::Module => (PI_UART_RX_BCM, PI_UART_TX_BCM),
            Side::Meter => (PI_UART_TX_BCM, PI_UART_RX_BCM),
        };
        for (name, d, pi_default) in [
            ("data_out", &self.data_out, out_pin),
            ("data_in", &self.data_in, in_pin),
        ] {
            let Some(d) = d else { continue };
            let own = d.uart_pin.clone().or_else(|| {
                let pi_uart = matches!(
                    d.uart.as_deref(),
                    Some("/dev/serial0" | "/dev/ttyAMA0" | "/dev/ttyS0")
                );
                (self.backend == BackendKind::Pi && pi_uart).then(|| GpioRef::bcm(pi_default))
            });
            if let (Some(own), Some(tap)) = (own, &d.tap) {
                if own.chip_line() == tap.chip_line() {
                    problems.push(WiringError::TapOnUartPin {
                        file: file.to_string(),
                        entry: name.to_string(),
                        line: tap.to_string(),
                    });
                }
            }
        }
    }

    /// Every used port has the role the I/O code gives it; all wrong ports are reported.
    fn check_roles(&self, file: &str, io: &IoCode) -> Result<(), WiringError> {
        let roles = io_roles(io);
        let mut problems = Vec::new();
        for (port, idx) in [(Port::Port1, 0), (Port::Port2, 1)] {
            let Some(p) = self.port(port) else { continue };
            if p.role == Role::Unused || roles[idx] == Some(p.role) {
                continue;
            }
            let expected = match roles[idx] {
                Some(r) => format!("{io} makes {port} {r}"),
                None => format!("{io} gives {port} no function"),
            };
            problems.push(RoleProblem {
                entry: format!("port{}", port.number()),
                role: p.role,
                code: io.to_string(),
                expected,
            });
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(WiringError::RolesNotPossible {
                file: file.to_string(),
                problems,
            })
        }
    }

    /// Each loopback names a wired entry and has both a drive output and a sense input.
    fn check_loopbacks(&self, file: &str, problems: &mut Vec<WiringError>) {
        for (i, lb) in self.loopback.iter().enumerate() {
            let bad = |detail: String| WiringError::BadLoopback {
                file: file.to_string(),
                entry: format!("loopback[{i}]"),
                detail,
            };
            let Some(driven) = self.entry_is_driven(&lb.entry) else {
                problems.push(bad(format!("entry `{}` is not wired", lb.entry)));
                continue;
            };
            let own = self.entry_gpio(&lb.entry);
            let (drive, sense) = if driven {
                (lb.drive.as_ref().or(own), lb.sense.as_ref())
            } else {
                (lb.drive.as_ref(), lb.sense.as_ref().or(own))
            };
            if drive.is_none() || sense.is_none() {
                problems.push(bad(format!(
                    "needs both a drive output and a sense input (entry `{}` is {} by the rig)",
                    lb.entry,
                    if driven { "driven" } else { "captured" }
                )));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
backend = "gpio"
[data_out]
uart = "/dev/ttyUSB0"
tap = { chip = "gpiochip0", line = 0 }
opto = { inverting = true }
[port1]
role = "pulse_in"
gpio = { chip = "gpiochip0", line = 1 }
opto = { inverting = false }
[port2]
role = "pulse_out"
gpio = { chip = "gpiochip0", line = 2 }
opto = { inverting = true, rise_delay_ns = 15000, fall_delay_ns = 60000, rise_spread_ns = 2000 }
"#;

    fn chips(n: u32) -> ChipInventory {
        let mut c = ChipInventory::default();
        c.chips
            .insert("gpiochip0".into(), ("gpio-sim.0-node0".into(), n));
        c
    }

    #[test]
    fn good_file_checks_and_kk05_fits() {
        let w = Wiring::parse("t.toml", GOOD).unwrap();
        assert_eq!(w.check("t.toml", IoCode::kk(5), &chips(8)), Ok(vec![]));
        let notes = w.check("t.toml", None, &ChipInventory::default()).unwrap();
        assert_eq!(notes.len(), 3);
        assert!(notes[0].text.contains("not checked"));
    }

    #[test]
    fn kk01_has_no_pulse_output() {
        let w = Wiring::parse("t.toml", GOOD).unwrap();
        let e = w.check("t.toml", IoCode::kk(1), &chips(8)).unwrap_err();
        // both ports are wrong for KK 01 (4-tariff), and both are reported
        assert_eq!(
            e,
            WiringError::RolesNotPossible {
                file: "t.toml".into(),
                problems: vec![
                    RoleProblem {
                        entry: "port1".into(),
                        role: Role::PulseIn,
                        code: "KK 01".into(),
                        expected: "KK 01 makes port 1 (pin 4) tariff_in".into(),
                    },
                    RoleProblem {
                        entry: "port2".into(),
                        role: Role::PulseOut,
                        code: "KK 01".into(),
                        expected: "KK 01 makes port 2 (pin 3) tariff_in".into(),
                    },
                ],
            }
        );
        assert_eq!(
            e.to_string(),
            "t.toml: entry port1: role pulse_in is not possible with KK 01 (KK 01 makes port 1 \
             (pin 4) tariff_in); entry port2: role pulse_out is not possible with KK 01 (KK 01 \
             makes port 2 (pin 3) tariff_in)"
        );
    }

    /// Issue 12: an OMNIPOWER's Z3 code was looked up in the 351's KK table, so a correct Z3 16
    /// (A- out / A+ out) wiring was refused as "not possible with KK 16".
    #[test]
    fn omnipower_z3_16_takes_its_roles_from_the_z3_table() {
        let z3_16 = GOOD.replace("role = \"pulse_in\"", "role = \"pulse_out\"");
        let w = Wiring::parse("t.toml", &z3_16).unwrap();
        assert_eq!(w.check("t.toml", IoCode::z3(16), &chips(8)), Ok(vec![]));
        // the same wiring is wrong for KK 16 (max reset / 2-tariff inverted)
        let e = w.check("t.toml", IoCode::kk(16), &chips(8)).unwrap_err();
        assert!(
            matches!(&e, WiringError::RolesNotPossible { problems, .. } if problems.len() == 2),
            "{e}"
        );
        // a wrong role for Z3 16: port 1 is A- out, not a pulse input
        let w = Wiring::parse("t.toml", GOOD).unwrap();
        let e = w.check("t.toml", IoCode::z3(16), &chips(8)).unwrap_err();
        assert_eq!(
            e.to_string(),
            "t.toml: entry port1: role pulse_in is not possible with Z3 16 (Z3 16 makes port 1 \
             (pin 4) pulse_out)"
        );
        // Z3 15: debiting stop pulse in on port 1, no function on port 2
        let z3_15 = GOOD
            .replace("role = \"pulse_in\"", "role = \"debiting_stop\"")
            .replace("role = \"pulse_out\"", "role = \"unused\"");
        let w = Wiring::parse("t.toml", &z3_15).unwrap();
        assert_eq!(w.check("t.toml", IoCode::z3(15), &chips(8)), Ok(vec![]));
        let w = Wiring::parse("t.toml", GOOD).unwrap();
        let e = w.check("t.toml", IoCode::z3(15), &chips(8)).unwrap_err();
        assert!(e.to_string().contains("entry port2: role pulse_out is not possible with Z3 15 (Z3 15 gives port 2 (pin 3) no function)"), "{e}");
    }

    #[test]
    fn the_files_kk_is_used_without_a_code_and_overridden_by_one() {
        let w = Wiring::parse("t.toml", &format!("kk = 5\n{GOOD}")).unwrap();
        assert_eq!(w.check("t.toml", None, &chips(8)), Ok(vec![]));
        assert!(w.check("t.toml", IoCode::kk(1), &chips(8)).is_err());
        let w = Wiring::parse("t.toml", &format!("kk = 42\n{GOOD}")).unwrap();
        assert_eq!(
            w.check("t.toml", None, &chips(8)),
            Err(WiringError::UnknownKk {
                file: "t.toml".into(),
                kk: 42
            })
        );
    }

    #[test]
    fn every_problem_is_listed_at_once() {
        // a missing polarity, a line used twice and a role KK 01 does not give, in one file
        let text = GOOD
            .replace("opto = { inverting = false }", "opto = {}")
            .replace("line = 2 }", "line = 0 }");
        let w = Wiring::parse("t.toml", &text).unwrap();
        let e = w.check("t.toml", IoCode::kk(1), &chips(8)).unwrap_err();
        let WiringError::Several { problems, .. } = &e else {
            panic!("expected every problem, got {e}");
        };
        assert!(problems
            .iter()
            .any(|p| matches!(p, WiringError::MissingPolarity { .. })));
        assert!(problems
            .iter()
            .any(|p| matches!(p, WiringError::LineUsedTwice { .. })));
        assert!(problems
            .iter()
            .any(|p| matches!(p, WiringError::RolesNotPossible { .. })));
        assert!(e.to_string().contains("problems:\n  - "), "{e}");
    }

    #[test]
    fn an_empty_file_and_an_unwired_port_are_refused() {
        let w = Wiring::parse("empty.toml", "").unwrap();
        let e = w.check("empty.toml", None, &chips(8)).unwrap_err();
        assert!(matches!(e, WiringError::NothingWired { .. }), "{e}");
        // KK 05 makes port 1 pulse_in and port 2 pulse_out: a file with only port 2 misses port 1
        let only2 = r#"
[data_out]
uart = "/dev/ttyUSB0"
opto = { inverting = true }
[port2]
role = "pulse_out"
gpio = { chip = "gpiochip0", line = 2 }
opto = { inverting = true }
"#;
        let w = Wiring::parse("t.toml", only2).unwrap();
        let e = w.check("t.toml", IoCode::kk(5), &chips(8)).unwrap_err();
        assert!(
            matches!(&e, WiringError::PortNotWired { entry, .. } if entry == "port1"),
            "{e}"
        );
    }

    #[test]
    fn line_count_is_checked_when_the_chip_exists() {
        let w = Wiring::parse("t.toml", GOOD).unwrap();
        let e = w.check("t.toml", None, &chips(2)).unwrap_err();
        assert!(matches!(
            e,
            WiringError::UnknownLine {
                line: 2,
                num_lines: 2,
                ..
            }
        ));
        let mut other = ChipInventory::default();
        other.chips.insert("gpiochip1".into(), ("x".into(), 8));
        let e = w.check("t.toml", None, &other).unwrap_err();
        // every reference to the missing chip is listed, not only the first
        assert!(
            matches!(&e, WiringError::Several { problems, .. }
                if problems.len() == 3
                    && problems.iter().all(|p| matches!(p, WiringError::UnknownChip { .. }))),
            "{e}"
        );
        // a label works as well as a name
        let w2 = Wiring::parse(
            "t.toml",
            &GOOD.replace("\"gpiochip0\"", "\"gpio-sim.0-node0\""),
        )
        .unwrap();
        assert_eq!(w2.check("t.toml", None, &chips(8)), Ok(vec![]));
    }

    #[test]
    fn malformed_toml_has_line_and_column() {
        let e = Wiring::parse("t.toml", "backend = \"gpio\"\n[port1\n").unwrap_err();
        match e {
            WiringError::Malformed { line, column, .. } => assert_eq!((line, column), (2, 7)),
            other => panic!("{other:?}"),
        }
    }

    /// Found by fuzzing (`wiring_file`): a control character in a comment gave a `Malformed`
    /// error with an empty message.
    #[test]
    fn malformed_detail_is_never_empty() {
        let text = "# a comment with a \u{1} in it\nbackend = \"gpio\"\n";
        let e = Wiring::parse("t.toml", text).unwrap_err();
        let WiringError::Malformed {
            line,
            column,
            detail,
            ..
        } = &e
        else {
            panic!("{e:?}");
        };
        assert_eq!(
            (*line, *column, detail.as_str()),
            (1, 20, "unexpected character '\\u{1}'")
        );
        let e = crate::meter::config::MeterSpec::from_toml(text, "m.toml", None).unwrap_err();
        assert!(
            e.to_string().ends_with("unexpected character '\\u{1}'"),
            "{e}"
        );
    }

    #[test]
    fn delays_by_pin_level() {
        let w = Wiring::parse("t.toml", GOOD).unwrap();
        let o = &w.port2.as_ref().unwrap().opto;
        assert_eq!(o.delay_for(Level::High), (15000, 1000));
        assert_eq!(o.delay_for(Level::Low), (60000, 0));
        assert_eq!(o.pin_level(Level::Low), Level::High);
    }

    #[test]
    fn roles_come_from_the_meter_models_tables() {
        use crate::meter::io::{KK_351, Z3_OMNI};
        assert!((0..=19).all(|k| IoCode::kk(k).is_some()));
        assert_eq!(IoCode::kk(20), None);
        assert!((0..=16).all(|k| IoCode::z3(k).is_some()));
        assert_eq!(IoCode::z3(17), None);
        assert_eq!(io_roles(&IoCode::kk(6).unwrap()), [Some(Role::PulseOut); 2]);
        assert_eq!(
            io_roles(&IoCode::z3(16).unwrap()),
            [Some(Role::PulseOut); 2]
        );
        assert_eq!(io_roles(&IoCode::kk(0).unwrap()), [None, None]);
        // every role a table gives is one the rig drives exactly when the meter reads it
        for m in KK_351.iter().chain(Z3_OMNI.iter()) {
            for r in [m.port1, m.port2] {
                if let Some(role) = Role::of_port_role(r) {
                    assert_eq!(role.rig_drives(), r.is_input(), "{m:?}");
                }
            }
        }
    }
}
