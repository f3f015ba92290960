//! Optocoupler delay calibration over a loopback (rig output → opto → rig input).
//!
//! Pure parts ([`summarize`], [`write_back`]) are tested everywhere; [`calibrate_loopback`] needs
//! the wired loopback.

use std::fmt;
use std::time::Duration;

use super::wiring::{BackendKind, Wiring};
use super::{monotonic_now, BusConfig, InputSpec, OutputSpec, PinBus, PinError, Signal};
use crate::time::Timestamp;

/// One toggle: when it was written (before/after the set call), which module-pin level it made,
/// and when the sense edge came.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sample {
    /// CLOCK_MONOTONIC just before the set call.
    pub before: Timestamp,
    /// Just after.
    pub after: Timestamp,
    /// Module-pin level after the toggle.
    pub pin_level: bool,
    /// Kernel timestamp of the sense edge.
    pub edge: Timestamp,
}

/// Median and spread of one direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DelayStat {
    /// Median delay, ns.
    pub median_ns: u64,
    /// max − min of the delays plus the largest write-time window, ns.
    pub spread_ns: u64,
    /// Samples.
    pub n: usize,
}

/// Calibration of one loopback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CalResult {
    /// Rising edges at the module pin.
    pub rise: DelayStat,
    /// Falling edges at the module pin.
    pub fall: DelayStat,
}

impl fmt::Display for CalResult {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "rise {} ns (spread {} ns, n={}), fall {} ns (spread {} ns, n={})",
            self.rise.median_ns,
            self.rise.spread_ns,
            self.rise.n,
            self.fall.median_ns,
            self.fall.spread_ns,
            self.fall.n
        )
    }
}

fn stat(samples: &[&Sample]) -> Option<DelayStat> {
    if samples.is_empty() {
        return None;
    }
    let mut d: Vec<u64> = samples
        .iter()
        .map(|s| {
            let mid = s.before.as_ns() + (s.after.as_ns() - s.before.as_ns()) / 2;
            s.edge.as_ns().saturating_sub(mid)
        })
        .collect();
    d.sort_unstable();
    let median = if d.len() % 2 == 1 {
        d[d.len() / 2]
    } else {
        (d[d.len() / 2 - 1] + d[d.len() / 2]) / 2
    };
    let window = samples
        .iter()
        .map(|s| s.after.as_ns() - s.before.as_ns())
        .max()
        .unwrap_or(0);
    Some(DelayStat {
        median_ns: median,
        spread_ns: d[d.len() - 1] - d[0] + window,
        n: d.len(),
    })
}

/// Median and spread per direction; `None` unless both directions have samples.
pub fn summarize(samples: &[Sample]) -> Option<CalResult> {
    let rise: Vec<&Sample> = samples.iter().filter(|s| s.pin_level).collect();
    let fall: Vec<&Sample> = samples.iter().filter(|s| !s.pin_level).collect();
    Some(CalResult {
        rise: stat(&rise)?,
        fall: stat(&fall)?,
    })
}

/// Why calibration results could not be written into a wiring file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WriteBackError {
    /// The file is not valid TOML.
    #[error("not valid TOML: {0}")]
    Toml(String),
    /// The entry has no `opto` table to write into.
    #[error("no [{0}.opto] table to write the delays into")]
    NoOpto(String),
}

/// Writes `r` into `[entry.opto]` (inline or standard table) of the TOML `text`, keeping
/// everything else (comments, order, formatting) as it was.
pub fn write_back(text: &str, entry: &str, r: &CalResult) -> Result<String, WriteBackError> {
    let mut doc: toml_edit::DocumentMut = text
        .parse()
        .map_err(|e| WriteBackError::Toml(format!("{e}")))?;
    let opto = doc
        .get_mut(entry)
        .and_then(|e| e.as_table_like_mut())
        .and_then(|t| t.get_mut("opto"))
        .and_then(|o| o.as_table_like_mut())
        .ok_or_else(|| WriteBackError::NoOpto(entry.to_string()))?;
    for (k, v) in [
        ("rise_delay_ns", r.rise.median_ns),
        ("fall_delay_ns", r.fall.median_ns),
        ("rise_spread_ns", r.rise.spread_ns),
        ("fall_spread_ns", r.fall.spread_ns),
    ] {
        opto.insert(k, toml_edit::value(v as i64));
    }
    Ok(doc.to_string())
}

/// Runs loopback `index` of `w` on real lines: `count` toggles, `hold` per level.
pub fn calibrate_loopback(
    w: &Wiring,
    index: usize,
    count: u32,
    hold: Duration,
) -> Result<CalResult, PinError> {
    let lb = w
        .loopback
        .get(index)
        .ok_or_else(|| PinError::Wiring(format!("no loopback[{index}]")))?;
    let driven = w
        .entry_is_driven(&lb.entry)
        .ok_or_else(|| PinError::Wiring(format!("entry {} is not wired", lb.entry)))?;
    let own = w.entry_gpio(&lb.entry).cloned();
    let (drive, sense) = if driven {
        (lb.drive.clone().or(own), lb.sense.clone())
    } else {
        (lb.drive.clone(), lb.sense.clone().or(own))
    };
    let (Some(drive), Some(sense)) = (drive, sense) else {
        return Err(PinError::Wiring(format!(
            "loopback[{index}] needs a drive and a sense line"
        )));
    };
    let inverting = w
        .opto_inverting(&lb.entry)
        .ok_or_else(|| PinError::Wiring(format!("entry {} has no opto", lb.entry)))?;
    let cfg = BusConfig {
        inputs: vec![InputSpec {
            signal: Signal::Loop(1),
            gpio: sense,
        }],
        outputs: vec![OutputSpec {
            signal: Signal::Loop(0),
            gpio: drive,
            active_high: true,
        }],
        event_buffer: None,
        consumer: "meter-rig calibrate".into(),
    };
    let mut bus: Box<dyn PinBus> = match w.backend {
        BackendKind::Gpio => Box::new(super::gpio::GpioBus::open(&cfg)?),
        BackendKind::Pi => Box::new(super::pi::PiBus::open(&cfg)?),
    };
    run_toggles(&mut *bus, count, hold, |drive_high| {
        if driven {
            drive_high ^ inverting
        } else {
            drive_high
        }
    })
}

/// Toggles `Signal::Loop(0)` and pairs each write with the next `Signal::Loop(1)` edge.
pub fn run_toggles(
    bus: &mut dyn PinBus,
    count: u32,
    hold: Duration,
    pin_level_of: impl Fn(bool) -> bool,
) -> Result<CalResult, PinError> {
    std::thread::sleep(hold);
    let _ = bus.read_edges(monotonic_now())?; // drop anything from the open
    let mut samples = Vec::new();
    for i in 0..count * 2 {
        let high = i % 2 == 0;
        let before = monotonic_now();
        bus.set_output(Signal::Loop(0), high)?;
        let after = monotonic_now();
        let deadline = after + hold;
        let mut edge = None;
        while monotonic_now() < deadline {
            for e in bus.read_edges(deadline)? {
                if e.signal == Signal::Loop(1) && edge.is_none() {
                    edge = Some(e.t);
                }
            }
        }
        let Some(edge) = edge else {
            return Err(PinError::Io {
                device: bus.describe(),
                call: format!("loopback toggle {i}"),
                detail: format!(
                    "no sense edge within {} ms of driving {}: check the loopback wiring",
                    hold.as_millis(),
                    if high { "high" } else { "low" }
                ),
            });
        };
        samples.push(Sample {
            before,
            after,
            pin_level: pin_level_of(high),
            edge,
        });
    }
    bus.all_inactive()?;
    summarize(&samples).ok_or_else(|| PinError::Io {
        device: bus.describe(),
        call: "calibrate".into(),
        detail: "not enough samples".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(before: u64, after: u64, pin_level: bool, edge: u64) -> Sample {
        Sample {
            before: Timestamp(before),
            after: Timestamp(after),
            pin_level,
            edge: Timestamp(edge),
        }
    }

    #[test]
    fn rise_and_fall_are_separate_with_write_window_in_spread() {
        let r = summarize(&[
            s(0, 1000, true, 10_500),            // 10 µs
            s(100_000, 100_200, false, 180_100), // 80 µs
            s(200_000, 201_000, true, 212_500),  // 12 µs
            s(300_000, 300_200, false, 390_100), // 90 µs
            s(400_000, 401_000, true, 411_500),  // 11 µs
        ])
        .unwrap();
        assert_eq!(
            r.rise,
            DelayStat {
                median_ns: 11_000,
                spread_ns: 2_000 + 1_000,
                n: 3
            }
        );
        assert_eq!(
            r.fall,
            DelayStat {
                median_ns: 85_000,
                spread_ns: 10_000 + 200,
                n: 2
            }
        );
        assert_eq!(summarize(&[s(0, 1, true, 5)]), None);
    }

    #[test]
    fn write_back_keeps_the_rest_of_the_file() {
        let text = "# my rig\n[port1]\nrole = \"tariff_in\" # comment\nopto = { inverting = true }\n\n[data_out.opto]\ninverting = false\n";
        let r = CalResult {
            rise: DelayStat {
                median_ns: 1,
                spread_ns: 2,
                n: 1,
            },
            fall: DelayStat {
                median_ns: 3,
                spread_ns: 4,
                n: 1,
            },
        };
        let out = write_back(text, "port1", &r).unwrap();
        assert!(out.starts_with("# my rig\n[port1]\nrole = \"tariff_in\" # comment\n"));
        assert!(out.contains("rise_delay_ns = 1"), "{out}");
        let out = write_back(&out, "data_out", &r).unwrap();
        assert!(
            out.contains(
                "[data_out.opto]\ninverting = false\nrise_delay_ns = 1\nfall_delay_ns = 3\n"
            ),
            "{out}"
        );
        let w = Wiring::parse("t", &out).unwrap();
        assert_eq!(w.port1.unwrap().opto.fall_spread_ns, Some(4));
        assert_eq!(
            write_back(text, "port2", &r),
            Err(WriteBackError::NoOpto("port2".into()))
        );
    }
}
