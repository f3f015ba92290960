//! Tariff schedules for `rig serve`: which tariff the module selects at which time of day, and
//! the input levels that select it on a given meter.
//!
//! A schedule file is TOML:
//!
//! ```toml
//! # times of day on the meter's clock (UTC for real meters; the meter file's clock for the
//! # software meter), in order; the last switch of a day holds until the first of the next
//! [[switch]]
//! at = "06:00"
//! tariff = 2
//! [[switch]]
//! at = "22:00"
//! tariff = 1
//! ```
//!
//! Tariff numbers are resolved through the meter's tariff table (000, "Tariff control": normal or
//! inverted, 2 or 4 tariffs), so the same schedule drives a KK 01 and a KK 11 meter correctly.
//! Pure: no clock, no pins.

use std::path::Path;

use serde::Deserialize;

use crate::meter::io::TariffControl;
use crate::target::Port;

/// Errors in a schedule file or in applying it to a meter.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// The file could not be read.
    #[error("cannot read tariff schedule {path}: {detail}")]
    Read {
        /// The file.
        path: String,
        /// What the OS said.
        detail: String,
    },
    /// The file is not a valid schedule.
    #[error("tariff schedule {path}: {problem}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong and how to fix it.
        problem: String,
    },
    /// The meter cannot follow the schedule.
    #[error("tariff schedule {path}: {problem}")]
    Meter {
        /// The file.
        path: String,
        /// What the meter lacks.
        problem: String,
    },
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct File {
    #[serde(rename = "switch", default)]
    switches: Vec<RawSwitch>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSwitch {
    at: String,
    tariff: u8,
}

/// One switch: from `at` (seconds after midnight) the module selects `tariff`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Switch {
    /// Seconds after midnight.
    pub at: u32,
    /// Tariff 1–4.
    pub tariff: u8,
    /// Logical input levels that select it (input 1, input 2).
    pub inputs: (bool, bool),
}

/// A daily tariff schedule resolved against one meter's tariff control.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Schedule {
    /// Switches in time order (at least one).
    pub switches: Vec<Switch>,
    /// Input 1 and input 2 (if the meter has four tariffs).
    pub ports: (Port, Option<Port>),
}

fn parse_tod(s: &str) -> Option<u32> {
    let mut it = s.split(':');
    let h: u32 = it.next()?.parse().ok()?;
    let m: u32 = it.next()?.parse().ok()?;
    let sec: u32 = match it.next() {
        Some(x) => x.parse().ok()?,
        None => 0,
    };
    if it.next().is_some() || h > 23 || m > 59 || sec > 59 {
        return None;
    }
    Some(h * 3600 + m * 60 + sec)
}

impl Schedule {
    /// Reads and resolves a schedule file against `control`.
    pub fn load(path: &Path, control: &TariffControl) -> Result<Schedule, ScheduleError> {
        let p = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|e| ScheduleError::Read {
            path: p.clone(),
            detail: e.to_string(),
        })?;
        Schedule::parse(&p, &text, control)
    }

    /// Parses schedule text (`path` names it in errors) and resolves it against `control`.
    pub fn parse(
        path: &str,
        text: &str,
        control: &TariffControl,
    ) -> Result<Schedule, ScheduleError> {
        let invalid = |problem: String| ScheduleError::Invalid {
            path: path.into(),
            problem,
        };
        let file: File = toml::from_str(text).map_err(|e| {
            let at = e
                .span()
                .map(|sp| crate::meter::config::line_col(text, sp.start).to_string())
                .unwrap_or_default();
            ScheduleError::Invalid {
                path: format!("{path}{at}"),
                problem: crate::meter::config::toml_reason(&e, text),
            }
        })?;
        if file.switches.is_empty() {
            return Err(invalid(
                "no [[switch]] entries; add at least one, e.g. [[switch]] at = \"06:00\" tariff = 2"
                    .into(),
            ));
        }
        let TariffControl::Module {
            tariffs,
            input1,
            input2,
            ..
        } = *control
        else {
            return Err(ScheduleError::Meter {
                path: path.into(),
                problem: "this meter's tariff is controlled by communication, not by module inputs \
                          (its KK/Z3 code has no tariff input); drop --tariff-schedule or use a meter \
                          file with module tariff control (e.g. KK 01 or 11)"
                    .into(),
            });
        };
        let table = control.table();
        let mut switches = Vec::with_capacity(file.switches.len());
        for (i, s) in file.switches.iter().enumerate() {
            let at = parse_tod(&s.at).ok_or_else(|| {
                invalid(format!(
                    "switch {}: at = {:?} is not a time of day (expected HH:MM or HH:MM:SS)",
                    i + 1,
                    s.at
                ))
            })?;
            let state = table
                .iter()
                .find(|(_, t)| *t == s.tariff)
                .map(|(st, _)| *st)
                .ok_or_else(|| ScheduleError::Meter {
                    path: path.into(),
                    problem: format!(
                        "switch {}: tariff {} does not exist on this meter ({tariffs} tariffs)",
                        i + 1,
                        s.tariff
                    ),
                })?;
            if switches.iter().any(|w: &Switch| w.at == at) {
                return Err(invalid(format!(
                    "switch {}: two switches at {}",
                    i + 1,
                    s.at
                )));
            }
            switches.push(Switch {
                at,
                tariff: s.tariff,
                inputs: (state & 1 == 1, state & 2 == 2),
            });
        }
        switches.sort_by_key(|s| s.at);
        Ok(Schedule {
            switches,
            ports: (input1, input2),
        })
    }

    /// The switch in force at `secs_of_day` (the last one at or before it, wrapping to the
    /// previous day's last switch).
    pub fn active(&self, secs_of_day: u32) -> &Switch {
        self.switches
            .iter()
            .rev()
            .find(|s| s.at <= secs_of_day)
            .unwrap_or_else(|| self.switches.last().expect("a schedule has switches"))
    }

    /// Seconds from `secs_of_day` to the next switch (1..=86 400).
    pub fn until_next(&self, secs_of_day: u32) -> u32 {
        let next = self
            .switches
            .iter()
            .find(|s| s.at > secs_of_day)
            .map(|s| s.at)
            .unwrap_or(self.switches[0].at + 86_400);
        next - secs_of_day
    }

    /// The pin levels for `switch`: (port, logical level) for each tariff input.
    pub fn levels(&self, switch: &Switch) -> Vec<(Port, bool)> {
        let mut v = vec![(self.ports.0, switch.inputs.0)];
        if let Some(p2) = self.ports.1 {
            v.push((p2, switch.inputs.1));
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn four(inverted: bool) -> TariffControl {
        TariffControl::Module {
            tariffs: 4,
            inverted,
            input1: Port::Port1,
            input2: Some(Port::Port2),
        }
    }

    const DAY: &str =
        "[[switch]]\nat = \"22:00\"\ntariff = 1\n[[switch]]\nat = \"06:00\"\ntariff = 4\n";

    #[test]
    fn resolves_through_the_normal_and_inverted_tables() {
        let n = Schedule::parse("s", DAY, &four(false)).unwrap();
        assert_eq!(n.switches[0].at, 6 * 3600);
        assert_eq!(n.switches[0].inputs, (true, true));
        assert_eq!(n.switches[1].inputs, (false, false));
        let i = Schedule::parse("s", DAY, &four(true)).unwrap();
        assert_eq!(i.switches[0].inputs, (false, false));
        assert_eq!(i.switches[1].inputs, (true, true));
        for s in &n.switches {
            assert_eq!(four(false).tariff(s.inputs.0, s.inputs.1), s.tariff);
        }
    }

    #[test]
    fn active_switch_wraps_over_midnight() {
        let s = Schedule::parse("s", DAY, &four(false)).unwrap();
        assert_eq!(s.active(3600).tariff, 1);
        assert_eq!(s.active(6 * 3600).tariff, 4);
        assert_eq!(s.active(23 * 3600).tariff, 1);
        assert_eq!(s.until_next(3600), 5 * 3600);
        assert_eq!(s.until_next(23 * 3600), 7 * 3600);
    }

    #[test]
    fn bad_files_name_the_problem() {
        let two = TariffControl::Module {
            tariffs: 2,
            inverted: false,
            input1: Port::Port1,
            input2: None,
        };
        let e = Schedule::parse("s", DAY, &two).unwrap_err();
        assert!(e.to_string().contains("tariff 4 does not exist"), "{e}");
        let e = Schedule::parse("s", "[[switch]]\nat = \"25:00\"\ntariff = 1\n", &two).unwrap_err();
        assert!(e.to_string().contains("not a time of day"), "{e}");
        let e = Schedule::parse("s", "", &two).unwrap_err();
        assert!(e.to_string().contains("no [[switch]]"), "{e}");
        let e = Schedule::parse("s", DAY, &TariffControl::Communication).unwrap_err();
        assert!(matches!(e, ScheduleError::Meter { .. }));
        let e = Schedule::parse("s", "[[switch]]\nat = \"01:00\"\ntarif = 1\n", &two).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
    }
}
