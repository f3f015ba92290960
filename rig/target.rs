//! The small trait at the hardware edge: what the suites need from a meter, whatever carries it.
//!
//! Backends implement [`Target`]: the in-process software meter in virtual time (`crate::sim`), a
//! serial port or pty (`crate::serial`), Linux GPIO through the character device, and the
//! Raspberry Pi through rppal. The suites are written once against this trait.
//!
//! Contract: every time a backend returns comes from an edge or byte timestamp on the backend's own
//! clock ([`Target::now`]), never from when the program noticed it. Virtual-time backends move the
//! clock only inside [`Target::wait_until`], [`Target::send`] and [`Target::recv`].

use std::time::Duration;

use crate::time::{TimeSource, Timestamp};
use crate::uart::{Edge, RxChar};

/// One of the two pulse/I-O ports of the module interface (004_d1f80f13afa7763c.txt, "Module
/// interface"): port 1 is pin 4, port 2 is pin 3. KK's "I/O 1" is port 1, "I/O 2" port 2.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Port {
    /// Port 1, module pin 4.
    Port1,
    /// Port 2, module pin 3.
    Port2,
}

impl Port {
    /// Both ports.
    pub const ALL: [Port; 2] = [Port::Port1, Port::Port2];
    /// The module connector pin.
    pub fn pin(self) -> u8 {
        match self {
            Port::Port1 => 4,
            Port::Port2 => 3,
        }
    }
    /// 1 or 2.
    pub fn number(self) -> u8 {
        match self {
            Port::Port1 => 1,
            Port::Port2 => 2,
        }
    }
}

impl std::fmt::Display for Port {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "port {} (pin {})", self.number(), self.pin())
    }
}

/// What a backend can do and how well it can time.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Where data-line times come from.
    pub data_timing: TimeSource,
    /// Uncertainty of a data-line time, in nanoseconds (one side).
    pub data_uncertainty_ns: u64,
    /// Whether the backend can drive the meter's inputs and capture its pulse outputs.
    pub pins: bool,
    /// Uncertainty of a pulse-port edge time, in nanoseconds (one side).
    pub pin_uncertainty_ns: u64,
    /// Whether the rig's parity check applies (false with a UART's own 7E1 that does not report).
    pub parity_checked: bool,
    /// Whether time is virtual (a simulated day passes in milliseconds).
    pub virtual_time: bool,
}

/// Why receiving stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RecvEnd {
    /// The caller's predicate said the message is complete.
    Complete,
    /// The overall deadline passed.
    Deadline,
    /// No character for the inter-character limit after the last one.
    Gap,
}

/// Errors at the hardware edge. They name the device and say how to fix what can be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// The device disappeared (unplugged adapter, deleted pty).
    #[error("{device} vanished: {detail}")]
    Vanished {
        /// Device path or name.
        device: String,
        /// What the OS said.
        detail: String,
    },
    /// Permission denied opening a device.
    #[error("permission denied opening {device}: {hint}")]
    Permission {
        /// Device path.
        device: String,
        /// How to fix it.
        hint: String,
    },
    /// The device is in use by another program.
    #[error("{device} is busy: {hint}")]
    Busy {
        /// Device path.
        device: String,
        /// How to fix it.
        hint: String,
    },
    /// The device does not exist.
    #[error("{device} not found: {hint}")]
    NotFound {
        /// Device path.
        device: String,
        /// How to fix it.
        hint: String,
    },
    /// Another I/O failure.
    #[error("{device}: {call} failed: {detail}")]
    Io {
        /// Device path or name.
        device: String,
        /// Which call failed.
        call: String,
        /// What the OS said.
        detail: String,
    },
    /// The backend cannot do this (e.g. drive pins over a plain serial port).
    #[error("{0}")]
    Unsupported(String),
    /// The run was asked to stop (signal, `DELETE /runs/{id}`, maximum run time) while a case
    /// waited; not the device's fault. Raised by the suites' waits, never by a backend.
    #[error("{reason}; the case was cut short")]
    Stopped {
        /// Why the run stops.
        reason: String,
    },
}

/// A meter reached through some backend.
pub trait Target {
    /// Short description for records (`sim:351-combi`, `serial:/dev/ttyUSB0`, …).
    fn describe(&self) -> String;
    /// What the backend can do.
    fn capabilities(&self) -> Capabilities;
    /// The backend's clock (virtual for the simulator, CLOCK_MONOTONIC for real backends).
    fn now(&mut self) -> Result<Timestamp, TargetError>;
    /// Lets time pass until `t` while capturing (virtual: jumps; real: sleeps).
    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError>;
    /// Sends bytes as they go on the wire (soft 7E1: parity in bit 7), starting now, back to back.
    /// Returns the end of the last byte's stop bit on the backend's clock.
    fn send(&mut self, bytes: &[u8]) -> Result<Timestamp, TargetError>;
    /// Receives characters from the meter's data-out line until `complete` returns true for the
    /// characters so far, until `deadline`, or until `max_gap` passes after the last character.
    /// Characters that arrived before the call and were not yet returned come first.
    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError>;
    /// Drops characters received so far and not yet returned.
    fn discard_input(&mut self) -> Result<(), TargetError>;
    /// Drives a meter input on `port` (tariff, pulse in, max reset): `active` is the logical 1 of
    /// the data sheet's tables. Backends without pins return [`TargetError::Unsupported`].
    fn set_input(&mut self, port: Port, active: bool) -> Result<(), TargetError>;
    /// Edges captured on `port` (a meter output) since the last call, as levels at the module pin
    /// (`true` = high; a pulse is low). Backends without pins return [`TargetError::Unsupported`].
    fn take_edges(&mut self, port: Port) -> Result<Vec<Edge>, TargetError>;
    /// Drops the edges captured on `port` so far, for a caller that only keeps the capture buffer
    /// from filling (hours of waiting); returns how many there were. Backends that can skip
    /// producing them (the software meter) override it.
    fn discard_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        self.take_edges(port).map(|e| e.len() as u64)
    }
    /// Output edges on `port` the backend has dropped since it started (a buffer that overflowed
    /// because nobody took them in time). A capture that spans a drop has lost pulses: that is the
    /// rig's failure, never the meter's. Backends that report drops otherwise (a sequence gap is a
    /// [`TargetError`]) or cannot drop return 0.
    fn dropped_edges(&mut self, _port: Port) -> Result<u64, TargetError> {
        Ok(0)
    }
    /// Puts every output the backend drives in its inactive state (safe state).
    fn release(&mut self) -> Result<(), TargetError> {
        Ok(())
    }
}

impl std::fmt::Debug for dyn Target + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.describe())
    }
}
