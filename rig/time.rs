//! Timestamps for edges, bytes and events.
//!
//! Every time the rig judges comes from a [`Timestamp`] attached to an edge or a byte by the
//! backend that observed it (the simulator's virtual clock, the kernel's CLOCK_MONOTONIC for GPIO
//! edges, or the serial-only contract of NOTES §3). Nothing in the pure modules reads a clock.
//!
//! A [`Timestamp`] is a count of nanoseconds from an epoch chosen by the backend; two timestamps
//! are only comparable when they come from the same backend session.

use std::fmt;
use std::ops::{Add, Sub};
use std::time::Duration;

/// Nanoseconds since a backend-defined epoch.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Hash,
    Default,
    serde::Serialize,
    serde::Deserialize,
)]
#[serde(transparent)]
pub struct Timestamp(pub u64);

impl Timestamp {
    /// The epoch itself.
    pub const ZERO: Timestamp = Timestamp(0);

    /// From nanoseconds.
    pub const fn from_ns(ns: u64) -> Self {
        Timestamp(ns)
    }
    /// From milliseconds.
    pub const fn from_ms(ms: u64) -> Self {
        Timestamp(ms * 1_000_000)
    }
    /// Nanoseconds since the epoch.
    pub const fn as_ns(self) -> u64 {
        self.0
    }
    /// Seconds since the epoch, as a float (for reports only).
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1e9
    }
    /// Signed difference `self - earlier` in nanoseconds.
    pub fn diff_ns(self, earlier: Timestamp) -> i64 {
        self.0 as i64 - earlier.0 as i64
    }
    /// Signed difference `self - earlier` in milliseconds.
    pub fn diff_ms(self, earlier: Timestamp) -> f64 {
        self.diff_ns(earlier) as f64 / 1e6
    }
    /// `self - earlier`, saturating at zero.
    pub fn saturating_since(self, earlier: Timestamp) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

impl Add<Duration> for Timestamp {
    type Output = Timestamp;
    fn add(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_add(d.as_nanos() as u64))
    }
}

impl Sub<Duration> for Timestamp {
    type Output = Timestamp;
    fn sub(self, d: Duration) -> Timestamp {
        Timestamp(self.0.saturating_sub(d.as_nanos() as u64))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:09} s",
            self.0 / 1_000_000_000,
            self.0 % 1_000_000_000
        )
    }
}

/// Where a measured time came from. Reported with every measurement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TimeSource {
    /// An edge timestamp: the simulator's virtual clock, or a kernel GPIO edge event.
    Edge,
    /// The serial-only contract of NOTES §3 (times inferred from when bytes crossed a port).
    Serial,
    /// A register value read from the meter (no time involved).
    Register,
}

impl fmt::Display for TimeSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TimeSource::Edge => "edge",
            TimeSource::Serial => "serial",
            TimeSource::Register => "register",
        })
    }
}

/// Duration of one bit at `baud`, in nanoseconds (rounded to the nearest ns).
pub fn bit_ns(baud: u32) -> u64 {
    (1_000_000_000u64 + baud as u64 / 2) / baud as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bit_time_at_300_baud() {
        assert_eq!(bit_ns(300), 3_333_333);
        assert_eq!(bit_ns(9600), 104_167);
    }

    #[test]
    fn arithmetic() {
        let t = Timestamp::from_ms(20);
        assert_eq!((t + Duration::from_millis(5)).as_ns(), 25_000_000);
        assert_eq!((t - Duration::from_millis(50)), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_ms(10).diff_ms(Timestamp::from_ms(30)),
            -20.0
        );
    }
}
