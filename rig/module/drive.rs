//! What the reference software module drives into the meter's inputs: a tariff script on the
//! tariff inputs and pulses into the pulse input and the max-reset input, with fault knobs
//! ([`DriveKnobs`]).
//!
//! The reference module is built for the meter it is plugged into: it reads the meter file's KK
//! code to know which port is which input and inverts 000's tariff table
//! ([`crate::meter::sheet::tariff`]) to select a tariff. Healthy, it walks tariffs 1, 2, 3, 4, 1
//! (those the meter has) five seconds each, sends ten pulses of 50 ms with 50 ms gaps (the pulse
//! the rig itself sends in `pulse_in.count`) and presses max reset once for 500 ms. The knobs
//! bounce each tariff change and shorten pulses. [`script`] turns the knobs into timed port
//! changes; pure.

use crate::meter::io::{IoMap, PortRole, TariffControl};
use crate::target::{Drive, Port};
use crate::time::Timestamp;

/// When the reference module starts driving, ms after the window's start.
pub const DRIVE_START_MS: f64 = 1000.0;

/// The reference module's input drive; `Default` is conforming (and, where no clause gives a
/// limit, what an ordinary module does).
#[derive(Debug, Clone, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriveKnobs {
    /// Tariffs to select in turn (1–4); tariffs the meter does not have are left out.
    pub tariff_script: Vec<u8>,
    /// How long each tariff of the script is held, ms.
    pub tariff_dwell_ms: f64,
    /// Knob: extra flips of each tariff input at every change (a contact that bounces), each
    /// `bounce_ms` long; 0 changes cleanly.
    pub tariff_bounce: u32,
    /// The length of one bounce flip, ms.
    pub bounce_ms: f64,
    /// Pulses sent into the pulse input (KK pulse in).
    pub pulses: u32,
    /// Each pulse's active (low) time, ms; a knob for pulses too short to be seen.
    pub pulse_ms: f64,
    /// The released time between pulses, ms.
    pub pulse_gap_ms: f64,
    /// Presses of the max-reset (or debiting stop) input.
    pub max_resets: u32,
    /// Each press's active time, ms.
    pub max_reset_ms: f64,
}

impl Default for DriveKnobs {
    fn default() -> Self {
        DriveKnobs {
            tariff_script: vec![1, 2, 3, 4, 1],
            tariff_dwell_ms: 5000.0,
            tariff_bounce: 0,
            bounce_ms: 1.0,
            pulses: 10,
            pulse_ms: 50.0,
            pulse_gap_ms: 50.0,
            max_resets: 1,
            max_reset_ms: 500.0,
        }
    }
}

/// One change the module makes on a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortChange {
    /// When, from the window's start.
    pub t: Timestamp,
    /// Which port.
    pub port: Port,
    /// Driven active (pulled low) or released.
    pub drive: Drive,
}

fn at(ms: f64) -> Timestamp {
    Timestamp((ms.max(0.0) * 1e6).round() as u64)
}

/// The input levels (input 1, input 2 active) that select `tariff` in `control`'s table, by the
/// sheet's table; `None` when the table has no such tariff.
fn inputs_for(control: &TariffControl, tariff: u8) -> Option<(bool, bool)> {
    let TariffControl::Module {
        tariffs, inverted, ..
    } = *control
    else {
        return None;
    };
    let states: u8 = if tariffs == 2 { 2 } else { 4 };
    (0..states)
        .map(|s| (s & 1 == 1, s & 2 == 2))
        .find(|&(a, b)| crate::meter::sheet::tariff(tariffs, inverted, a, b) == tariff)
}

/// `port` set to `active` at `t_ms`, preceded by `bounce` flips of `bounce_ms` each.
fn bounced(out: &mut Vec<PortChange>, port: Port, active: bool, t_ms: f64, k: &DriveKnobs) {
    let mut t = t_ms;
    for _ in 0..k.tariff_bounce {
        for a in [active, !active] {
            out.push(PortChange {
                t: at(t),
                port,
                drive: Drive::from_active(a),
            });
            t += k.bounce_ms;
        }
    }
    out.push(PortChange {
        t: at(t),
        port,
        drive: Drive::from_active(active),
    });
}

fn tariff_changes(io: &IoMap, k: &DriveKnobs, out: &mut Vec<PortChange>) {
    let TariffControl::Module { input1, input2, .. } = io.tariff else {
        return;
    };
    let mut now = (false, false);
    let steps = k
        .tariff_script
        .iter()
        .filter_map(|&t| inputs_for(&io.tariff, t));
    for (i, (a, b)) in steps.enumerate() {
        let t = DRIVE_START_MS + i as f64 * k.tariff_dwell_ms;
        if a != now.0 {
            bounced(out, input1, a, t, k);
        }
        if let Some(p2) = input2.filter(|_| b != now.1) {
            bounced(out, p2, b, t, k);
        }
        now = (a, b);
    }
}

fn pulse_train(out: &mut Vec<PortChange>, port: Port, n: u32, on_ms: f64, off_ms: f64) {
    for i in 0..n {
        let t = DRIVE_START_MS + i as f64 * (on_ms + off_ms);
        out.push(PortChange {
            t: at(t),
            port,
            drive: Drive::Active,
        });
        out.push(PortChange {
            t: at(t + on_ms),
            port,
            drive: Drive::Inactive,
        });
    }
}

/// The module's changes on the meter's inputs for a meter with I/O map `io`, in time order: the
/// tariff script on its tariff inputs, the pulses on its pulse input, the presses on its max-reset
/// (or debiting stop) input. Ports the KK code makes outputs or leaves unused are not driven.
pub fn script(io: &IoMap, k: &DriveKnobs) -> Vec<PortChange> {
    let mut out = Vec::new();
    tariff_changes(io, k, &mut out);
    for p in Port::ALL {
        match io.role(p) {
            PortRole::PulseIn => pulse_train(&mut out, p, k.pulses, k.pulse_ms, k.pulse_gap_ms),
            PortRole::MaxReset | PortRole::DebitingStop => {
                pulse_train(&mut out, p, k.max_resets, k.max_reset_ms, k.max_reset_ms)
            }
            _ => {}
        }
    }
    out.sort_by_key(|c| c.t);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kk(code: u8) -> IoMap {
        crate::meter::io::IoCode::kk(code).unwrap().map
    }

    #[test]
    fn the_healthy_script_walks_the_meters_tariffs_and_pulses_its_inputs() {
        // KK 01: 4-tariff on ports 1 and 2; tariffs 1 2 3 4 1 take input states 00 10 01 11 00
        let s = script(&kk(1), &DriveKnobs::default());
        let p1: Vec<_> = s.iter().filter(|c| c.port == Port::Port1).collect();
        let p2: Vec<_> = s.iter().filter(|c| c.port == Port::Port2).collect();
        assert_eq!(p1.len(), 4, "{p1:?}");
        assert_eq!(p1[0].t, at(6000.0));
        assert_eq!(p1[0].drive, Drive::Active);
        assert_eq!(p2.len(), 2, "{p2:?}");
        assert_eq!(p2[0].t, at(11_000.0));
        // KK 05: pulse in on port 1, A+ out on port 2 (not driven), no tariff inputs
        let s = script(&kk(5), &DriveKnobs::default());
        assert_eq!(s.len(), 20);
        assert!(s.iter().all(|c| c.port == Port::Port1));
        // KK 15: max reset on port 1 pressed once, 2-tariff on port 2: tariffs 1 2 1
        let s = script(&kk(15), &DriveKnobs::default());
        assert_eq!(s.iter().filter(|c| c.port == Port::Port1).count(), 2);
        assert_eq!(s.iter().filter(|c| c.port == Port::Port2).count(), 2);
    }

    #[test]
    fn a_bounce_adds_two_flips_per_bounce_at_every_change() {
        let k = DriveKnobs {
            tariff_bounce: 3,
            ..DriveKnobs::default()
        };
        // KK 15: tariff 2 at 6 s, back to 1 at 11 s; 7 changes each
        let s: Vec<_> = script(&kk(15), &k)
            .into_iter()
            .filter(|c| c.port == Port::Port2)
            .collect();
        assert_eq!(s.len(), 14);
        assert_eq!(s[6].t, at(6006.0));
        assert_eq!(s[6].drive, Drive::Active);
    }
}
