//! The whole rig as one [`Target`]: pins and edge-timed reception from a [`PinTarget`], requests
//! sent through the wiring's UART TX (data in, module pin 5).
//!
//! The request's end is taken from the data-in capture tap when the wiring has one (kernel edge
//! timestamps of the request as it reached the meter, decoded by the same software UART), and
//! from the serial-only contract otherwise, or when the tap missed bytes: the [`SentAt`] returned
//! then says `serial` with the serial uncertainty, so the measurement records the fallback. The
//! answer is always timed from the data-out tap. The UART's own reception of the answer is a
//! content cross-check: a mismatch with the edge decode is kept as a finding and printed.
//!
//! One timebase: the pins' (CLOCK_MONOTONIC since boot). The UART's clock counts from its own
//! epoch (the port's open), so every time crossing between the two goes through [`Rebase`]: the
//! serial fallback's [`SentAt`] into the pins' timebase, the cross-check's deadline into the
//! UART's. Mixing them once made the settle wait return at once (the tap never saw the request)
//! and the cross-check block until the answer's first byte (the data-out tap's event buffer
//! overflowed meanwhile); measured in the gpio-sim guest on the UART pair.
//!
//! It must not judge anything: I/O only through the two backends it wraps.

use std::time::Duration;

use super::{PinBus, PinTarget};
use crate::serial::{Framing, SerialOptions, SerialTarget};
use crate::target::{Clock, DataLink, ModulePorts, RecvEnd, SentAt, Target, TargetError, Timing};
use crate::time::{TimeSource, Timestamp};
use crate::uart::{frame_ns, Edge, RxChar, UartRx};

/// The constant offset between two clocks: `pins = serial + offset_ns`. Pure.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Rebase {
    /// Nanoseconds to add to a UART time to get the pins' time (negative when the UART's epoch is
    /// later than the pins' zero, which it never is on Linux, but the arithmetic does not care).
    pub offset_ns: i128,
}

impl Rebase {
    /// From one reading of each clock taken back to back (`pins` then `serial`).
    pub fn from_readings(pins: Timestamp, serial: Timestamp) -> Self {
        Rebase {
            offset_ns: pins.as_ns() as i128 - serial.as_ns() as i128,
        }
    }

    /// A UART time on the pins' clock (saturating at zero).
    pub fn to_pins(self, serial: Timestamp) -> Timestamp {
        Timestamp((serial.as_ns() as i128 + self.offset_ns).max(0) as u64)
    }

    /// A pins time on the UART's clock (saturating at zero).
    pub fn to_serial(self, pins: Timestamp) -> Timestamp {
        Timestamp((pins.as_ns() as i128 - self.offset_ns).max(0) as u64)
    }
}

/// Pins + UART TX.
#[derive(Debug)]
pub struct RigTarget<B: PinBus> {
    pins: PinTarget<B>,
    tx: Option<SerialTarget>,
    /// The UART's clock against the pins' (see the module docs).
    rebase: Rebase,
    baud: u32,
    has_tap: bool,
    /// Content mismatches between the UART and the edge decode, and fallbacks to serial timing.
    pub findings: Vec<String>,
}

impl<B: PinBus> RigTarget<B> {
    /// Wraps `pins`; opens the wiring's data-in UART (if any) at `baud`, 8N1 (soft 7E1), and
    /// relates its clock to the pins' clock.
    ///
    /// # Errors
    /// The UART's open errors ([`SerialTarget::open`]); a pins clock read failure.
    pub fn new(
        mut pins: PinTarget<B>,
        uart: Option<&str>,
        has_tap: bool,
        baud: u32,
    ) -> Result<Self, TargetError> {
        let mut tx = match uart {
            Some(dev) => Some(SerialTarget::open(
                dev,
                SerialOptions {
                    baud,
                    framing: Framing::Soft7e1,
                    kind: None,
                },
            )?),
            None => None,
        };
        let rebase = match tx.as_mut() {
            Some(t) => {
                let p = pins.now()?;
                Rebase::from_readings(p, t.now()?)
            }
            None => Rebase::default(),
        };
        Ok(RigTarget {
            pins,
            tx,
            rebase,
            baud,
            has_tap,
            findings: Vec::new(),
        })
    }

    /// The end of the request's last stop bit from the data-in tap, when it captured every byte.
    fn tapped_end(&mut self, n: usize) -> Option<Timestamp> {
        let edges: Vec<Edge> = self.pins.take_data_in_edges();
        let mut rx = UartRx::new(self.baud);
        let mut chars = Vec::new();
        for e in edges {
            rx.push(e, &mut chars);
        }
        let last = chars.last().map(|c| c.end)?;
        rx.advance(Timestamp(last.as_ns() + 1_000_000_000), &mut chars);
        (chars.len() >= n).then(|| chars[chars.len() - 1].end)
    }
}

impl<B: PinBus> Target for RigTarget<B> {
    fn describe(&self) -> String {
        match &self.tx {
            Some(t) => format!("{} + {}", self.pins.describe(), t.device()),
            None => self.pins.describe(),
        }
    }

    fn timing(&self) -> Timing {
        self.pins.timing()
    }

    fn try_as_module_ports(&mut self) -> Option<&mut dyn ModulePorts> {
        Some(&mut self.pins)
    }
}

impl<B: PinBus> Clock for RigTarget<B> {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        self.pins.now()
    }

    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        self.pins.wait_until(t)
    }
}

impl<B: PinBus> DataLink for RigTarget<B> {
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
        let Some(tx) = self.tx.as_mut() else {
            return Err(TargetError::NoTransmitter {
                target: self.pins.describe(),
                hint: "the wiring's data_in has no uart: add `uart = \"/dev/serial0\"` (or the adapter) under [data_in]".into(),
            });
        };
        self.pins.take_data_in_edges();
        let mut serial = tx.send(bytes)?;
        serial.t = self.rebase.to_pins(serial.t);
        if !self.has_tap {
            return Ok(serial);
        }
        // let the tap see the whole request (plus a character of slack), then take its edges
        let settle = serial.t + Duration::from_nanos(2 * frame_ns(self.baud, 1));
        self.pins.wait_until(settle)?;
        match self.tapped_end(bytes.len()) {
            Some(t) => Ok(SentAt {
                t,
                source: TimeSource::Edge,
                uncertainty_ns: self.pins.data_in_uncertainty_ns(),
            }),
            None => {
                // the fallback travels with the time: the measurement records serial timing
                self.findings.push(format!("data_in tap did not capture all {} request bytes; request end from the serial contract", bytes.len()));
                Ok(serial)
            }
        }
    }

    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        let (chars, end) = self.pins.recv(deadline, max_gap, complete)?;
        if let Some(tx) = self.tx.as_mut() {
            // the UART received the same answer: compare content (deadline on the UART's clock)
            let now = self.rebase.to_serial(self.pins.now()?);
            let (uart, _) = tx.recv(
                now + Duration::from_millis(50),
                Duration::from_millis(20),
                &mut |c: &[RxChar]| c.len() >= chars.len(),
            )?;
            let a: Vec<u8> = chars.iter().map(|c| c.byte).collect();
            let b: Vec<u8> = uart.iter().map(|c| c.byte).collect();
            if !b.is_empty() && a != b {
                let at = a
                    .iter()
                    .zip(&b)
                    .position(|(x, y)| x != y)
                    .unwrap_or(a.len().min(b.len()));
                let msg = format!(
                    "UART read differs from the edge decode at byte {at} ({} vs {} bytes)",
                    b.len(),
                    a.len()
                );
                eprintln!("rig: cross-check: {msg}");
                self.findings.push(msg);
            }
        }
        Ok((chars, end))
    }

    fn discard_input(&mut self) -> Result<(), TargetError> {
        if let Some(tx) = self.tx.as_mut() {
            tx.discard_input()?;
        }
        self.pins.discard_input()
    }
}
