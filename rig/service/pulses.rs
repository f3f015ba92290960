//! Counting the meter's output pulses from timestamped port edges, for the module loop of
//! `rig serve`. Pure: edges in, counts out.
//!
//! Levels are at the module pin, as [`crate::target::Target::take_edges`] returns them: the line
//! idles high and a pulse pulls it low (000, "Module interface"). A pulse is counted at its
//! leading (falling) edge, so a pulse in progress when the counts are read is already counted.

use crate::time::Timestamp;
use crate::uart::Edge;

/// Pulse count of one output port.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PulseCounter {
    /// Pulses counted (leading edges), including those from earlier runs of the service.
    pub total: u64,
    /// Level after the last edge seen (`true` = idle high).
    #[serde(skip, default = "idle")]
    level: bool,
    /// Time of the last leading edge.
    #[serde(skip)]
    pub last_pulse: Option<Timestamp>,
    /// Width of the last completed pulse, ns.
    #[serde(skip)]
    pub last_width_ns: Option<u64>,
}

fn idle() -> bool {
    true
}

impl Default for PulseCounter {
    fn default() -> Self {
        PulseCounter::continuing(0)
    }
}

impl PulseCounter {
    /// A counter that continues from `total` (persisted by an earlier run of the service).
    pub fn continuing(total: u64) -> Self {
        PulseCounter {
            total,
            level: true,
            last_pulse: None,
            last_width_ns: None,
        }
    }

    /// Feeds edges in time order; returns how many pulses they started.
    pub fn push(&mut self, edges: &[Edge]) -> u64 {
        let before = self.total;
        for e in edges {
            if e.level == self.level {
                // a repeated level (glitch filtered upstream, or the first edge after start):
                // nothing changed at the pin
                continue;
            }
            if !e.level {
                self.total += 1;
                self.last_pulse = Some(e.t);
            } else if let Some(lead) = self.last_pulse {
                self.last_width_ns = Some(e.t.0.saturating_sub(lead.0));
            }
            self.level = e.level;
        }
        self.total - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(ms: u64, level: bool) -> Edge {
        Edge {
            t: Timestamp(ms * 1_000_000),
            level,
        }
    }

    #[test]
    fn counts_leading_edges_and_measures_widths() {
        let mut c = PulseCounter::continuing(10);
        assert_eq!(c.push(&[e(0, false), e(30, true), e(100, false)]), 2);
        assert_eq!(c.total, 12);
        assert_eq!(c.last_width_ns, Some(30_000_000));
        // the pulse in progress ends in the next batch; no double count
        assert_eq!(c.push(&[e(180, true)]), 0);
        assert_eq!(c.last_width_ns, Some(80_000_000));
        // repeated levels are not pulses
        assert_eq!(c.push(&[e(200, true), e(210, true)]), 0);
        assert_eq!(c.total, 12);
    }
}
