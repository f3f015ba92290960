//! The module's supply (pin 6): the pure judgement of `module.supply` and a modelled current
//! trace for the reference module.
//!
//! 004_d1f80f13afa7763c.txt, "Module interface", pin 6: nominal voltage 4.2 V, average current
//! 1 mA (average for 60 seconds), maximum current 5 mA. The rig observes the supply the way the
//! INA228 ([`super::ina228`]) lets it: the charge accumulator read once a second (the chip
//! integrates every conversion, so the average misses nothing between reads) and the ALERT
//! output's edges, asserted while the current exceeds the 5 mA limit.

use crate::time::Timestamp;

/// 004's average limit, mA over 60 s.
pub const AVERAGE_MAX_MA: f64 = 1.0;
/// 004's maximum current, mA.
pub const PEAK_MAX_MA: f64 = 5.0;
/// The span of 004's average, s.
pub const AVERAGE_SPAN_S: u64 = 60;

/// What the rig saw of the supply: charge readings and the alert's edges.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SupplyLog {
    /// (time, charge since the start in coulombs), once a second, in order.
    pub charge: Vec<(Timestamp, f64)>,
    /// (time, asserted) of the ALERT output: asserted while the current exceeds `alert_limit_ma`.
    pub alerts: Vec<(Timestamp, bool)>,
    /// The alert's limit as the chip holds it, mA.
    pub alert_limit_ma: f64,
}

/// The judgement's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct SupplyFigures {
    /// The largest average over any 60 s between two readings, mA (None: under 60 s of readings).
    pub worst_average_ma: Option<f64>,
    /// How often the current went above the alert limit.
    pub peaks_over_limit: usize,
    /// The longest time above the limit, ms.
    pub longest_over_ms: f64,
}

/// The worst 60 s average and the alert's assertions in `log`.
pub fn figures(log: &SupplyLog) -> SupplyFigures {
    let span_ns = AVERAGE_SPAN_S * 1_000_000_000;
    let mut worst: Option<f64> = None;
    let mut j = 0;
    for &(t0, q0) in &log.charge {
        while j < log.charge.len() && log.charge[j].0 .0 < t0.0 + span_ns {
            j += 1;
        }
        let Some(&(t1, q1)) = log.charge.get(j) else {
            break;
        };
        let avg = (q1 - q0) / (t1.diff_ms(t0) / 1e3) * 1e3;
        worst = Some(worst.map_or(avg, |w: f64| w.max(avg)));
    }
    let mut peaks = 0;
    let mut longest = 0.0f64;
    let mut since = None;
    for &(t, on) in &log.alerts {
        match (on, since) {
            (true, None) => {
                peaks += 1;
                since = Some(t);
            }
            (false, Some(s)) => {
                longest = longest.max(t.diff_ms(s));
                since = None;
            }
            _ => {}
        }
    }
    SupplyFigures {
        worst_average_ma: worst,
        peaks_over_limit: peaks,
        longest_over_ms: longest,
    }
}

/// A modelled current trace: a steady draw with a peak of `peak_ma` for `peak_ms` every
/// `period_s` (a module that wakes to talk), starting with a peak at 0.
#[derive(Debug, Clone, Copy, PartialEq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CurrentTrace {
    /// Steady current, mA.
    pub base_ma: f64,
    /// Peak current, mA.
    pub peak_ma: f64,
    /// Peak length, ms.
    pub peak_ms: f64,
    /// Time from one peak to the next, s.
    pub period_s: f64,
}

impl Default for CurrentTrace {
    /// A conforming module: 0.5 mA steady, 3 mA for 100 ms every 15 s (0.52 mA on average).
    fn default() -> Self {
        CurrentTrace {
            base_ma: 0.5,
            peak_ma: 3.0,
            peak_ms: 100.0,
            period_s: 15.0,
        }
    }
}

impl CurrentTrace {
    /// What an INA228 with its alert at `alert_limit_ma` reports of this trace over `window_s`:
    /// the exact charge at every whole second and the alert's edges.
    pub fn observe(&self, window_s: u64, alert_limit_ma: f64) -> SupplyLog {
        let period_ns = (self.period_s * 1e9) as u64;
        let peak_ns = ((self.peak_ms * 1e6) as u64).min(period_ns);
        let charge_at = |t: u64| {
            let whole = t / period_ns.max(1);
            let part = t % period_ns.max(1);
            let peak_time = whole * peak_ns + part.min(peak_ns);
            let q_ma_ns =
                self.base_ma * t as f64 + (self.peak_ma - self.base_ma) * peak_time as f64;
            q_ma_ns / 1e12
        };
        let charge = (0..=window_s)
            .map(|s| {
                let t = s * 1_000_000_000;
                (Timestamp(t), charge_at(t))
            })
            .collect();
        let mut alerts = Vec::new();
        let end = window_s * 1_000_000_000;
        if self.peak_ma > alert_limit_ma && peak_ns > 0 {
            let mut t = 0;
            while t < end {
                alerts.push((Timestamp(t), true));
                alerts.push((Timestamp(t + peak_ns), false));
                t += period_ns.max(1);
            }
        }
        if self.base_ma > alert_limit_ma {
            alerts = vec![(Timestamp(0), true)];
        }
        SupplyLog {
            charge,
            alerts,
            alert_limit_ma,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trace(base_ma: f64, peak_ma: f64) -> SupplyFigures {
        let t = CurrentTrace {
            base_ma,
            peak_ma,
            peak_ms: 50.0,
            period_s: 10.0,
        };
        figures(&t.observe(180, PEAK_MAX_MA))
    }

    #[test]
    fn the_average_is_over_60_s_of_charge() {
        let f = trace(0.99, 0.99);
        assert!((f.worst_average_ma.unwrap() - 0.99).abs() < 1e-9);
        assert!(trace(1.01, 1.01).worst_average_ma.unwrap() > AVERAGE_MAX_MA);
        // the peaks count in the average: 0.5 + 4.5 × 0.05 / 10 = 0.5225 mA
        let f = trace(0.5, 5.0);
        assert!((f.worst_average_ma.unwrap() - 0.5225).abs() < 1e-6, "{f:?}");
    }

    #[test]
    fn peaks_above_the_limit_assert_the_alert_and_below_it_do_not() {
        assert_eq!(trace(0.5, 4.9).peaks_over_limit, 0);
        let f = trace(0.5, 5.1);
        assert_eq!(f.peaks_over_limit, 18);
        assert!((f.longest_over_ms - 50.0).abs() < 1e-9);
    }

    #[test]
    fn under_60_s_of_readings_gives_no_average() {
        let f = figures(&CurrentTrace::default().observe(30, PEAK_MAX_MA));
        assert_eq!(f.worst_average_ma, None);
    }
}
