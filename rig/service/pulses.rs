//! Counting the meter's output pulses from timestamped port edges, for the module loop of
//! `rig serve`. Pure: edges in, counts out.
//!
//! Levels are at the module pin, as [`crate::target::ModulePorts::take_edges`] returns them: the line
//! idles high and a pulse pulls it low (000, "Module interface"). A pulse is counted at its
//! leading (falling) edge, so a pulse in progress when the counts are read is already counted.

use crate::uart::{Edge, Level};

/// Pulse count of one output port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PulseCounter {
    /// Pulses counted (leading edges), including those from earlier runs of the service.
    pub total: u64,
    /// Level after the last edge seen (idle high).
    level: Level,
}

impl PulseCounter {
    /// A counter that continues from `total` (persisted by an earlier run of the service).
    pub fn continuing(total: u64) -> Self {
        PulseCounter {
            total,
            level: Level::High,
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
            if e.level.is_low() {
                self.total += 1;
            }
            self.level = e.level;
        }
        self.total - before
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    fn e(ms: u64, high: bool) -> Edge {
        Edge {
            t: Timestamp(ms * 1_000_000),
            level: Level::from_high(high),
        }
    }

    #[test]
    fn counts_leading_edges_once() {
        let mut c = PulseCounter::continuing(10);
        assert_eq!(c.push(&[e(0, false), e(30, true), e(100, false)]), 2);
        assert_eq!(c.total, 12);
        // the pulse in progress ends in the next batch; no double count
        assert_eq!(c.push(&[e(180, true)]), 0);
        // repeated levels are not pulses
        assert_eq!(c.push(&[e(200, true), e(210, true)]), 0);
        assert_eq!(c.total, 12);
    }
}
