//! Real-time pacing for the software meter under `rig serve`: a [`Target`] adapter that lets
//! virtual time pass no faster than `speed` × the wall clock.
//!
//! The module loop of a service plays the module around the clock, so against the software meter
//! it must not race through simulated days; a conformance run, on the other hand, runs in virtual
//! time (seconds for hours). The switch between the two is a shared flag the service flips
//! around each run; whenever pacing resumes it re-anchors, so time skipped by a virtual-time run is
//! not "caught up" with a sleep.
//!
//! This is a backend adapter: it reads the wall clock and sleeps, and only to pace. Times it
//! returns are the inner target's (virtual) timestamps, unchanged.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::target::{Clock, DataLink, ModulePorts, RecvEnd, SentAt, Target, TargetError, Timing};
use crate::time::Timestamp;
use crate::uart::RxChar;

/// A target whose clock is held to `speed` × real time while `enabled` is set.
#[derive(Debug)]
pub struct Paced<T> {
    inner: T,
    speed: f64,
    enabled: Arc<AtomicBool>,
    anchor: Option<(Timestamp, Instant)>,
}

impl<T: Target> Paced<T> {
    /// Paces `inner` at `speed` (1.0 = real time, 60.0 = a minute per second) while `enabled`.
    pub fn new(inner: T, speed: f64, enabled: Arc<AtomicBool>) -> Self {
        Paced {
            inner,
            speed: speed.max(1e-6),
            enabled,
            anchor: None,
        }
    }

    fn pace(&mut self) -> Result<(), TargetError> {
        if !self.enabled.load(Ordering::Relaxed) {
            self.anchor = None;
            return Ok(());
        }
        let now = self.inner.now()?;
        match self.anchor {
            None => self.anchor = Some((now, Instant::now())),
            Some((t0, w0)) => {
                let due =
                    w0 + Duration::from_secs_f64(now.diff_ns(t0).max(0) as f64 / 1e9 / self.speed);
                let wall = Instant::now();
                if due > wall {
                    std::thread::sleep(due - wall);
                }
            }
        }
        Ok(())
    }
}

/// Paces only the clock and the data link; the module ports are the inner target's own.
impl<T: Target> Target for Paced<T> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn timing(&self) -> Timing {
        self.inner.timing()
    }
    fn try_as_module_ports(&mut self) -> Option<&mut dyn ModulePorts> {
        self.inner.try_as_module_ports()
    }
}

impl<T: Target> Clock for Paced<T> {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        self.inner.now()
    }
    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        self.inner.wait_until(t)?;
        self.pace()
    }
}

impl<T: Target> DataLink for Paced<T> {
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
        self.inner.send(bytes)
    }
    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        let r = self.inner.recv(deadline, max_gap, complete)?;
        self.pace()?;
        Ok(r)
    }
    fn discard_input(&mut self) -> Result<(), TargetError> {
        self.inner.discard_input()
    }
    fn set_baud(&mut self, baud: u32) -> Result<(), TargetError> {
        self.inner.set_baud(baud)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::config::MeterSpec;
    use crate::sim::SimTarget;

    #[test]
    fn holds_virtual_time_to_the_speed_only_while_enabled() {
        let on = Arc::new(AtomicBool::new(true));
        let mut p = Paced::new(
            SimTarget::new(MeterSpec::builtin_default()),
            100.0,
            on.clone(),
        );
        let w = Instant::now();
        p.wait_until(Timestamp(0)).unwrap();
        p.wait_until(Timestamp(5_000_000_000)).unwrap(); // 5 s at 100× = 50 ms
        assert!(
            w.elapsed() >= Duration::from_millis(50),
            "{:?}",
            w.elapsed()
        );
        on.store(false, Ordering::Relaxed);
        let w = Instant::now();
        p.wait_until(Timestamp(3_600_000_000_000)).unwrap(); // an hour, unpaced
                                                             // re-enabled: anchors at the new time, no catch-up sleep for the skipped hour (36 s)
        on.store(true, Ordering::Relaxed);
        p.wait_until(Timestamp(3_600_000_000_000)).unwrap();
        p.wait_until(Timestamp(3_600_001_000_000)).unwrap();
        assert!(w.elapsed() < Duration::from_secs(10), "{:?}", w.elapsed());
        assert_eq!(p.now().unwrap(), Timestamp(3_600_001_000_000));
    }
}
