//! The small traits at the hardware edge: what the suites need from a meter, whatever carries it.
//!
//! Backends implement [`Target`]: the in-process software meter in virtual time (`crate::sim`), a
//! serial port or pty (`crate::serial`), Linux GPIO through the character device, and the
//! Raspberry Pi through rppal. The suites are written once against this trait.
//!
//! The capabilities are small traits: a [`Clock`] and a [`DataLink`] every target has, and
//! [`ModulePorts`] that only backends with pins have, reached as an option
//! ([`Target::try_as_module_ports`], the probe-rs `try_as_*` habit). A backend without pins has no
//! pin methods to refuse; [`Capabilities::pins`] is derived from whether ports exist.
//!
//! Contract: every time a backend returns comes from an edge or byte timestamp on the backend's own
//! clock ([`Clock::now`]), never from when the program noticed it; a time whose source is not the
//! backend's usual one says so ([`SentAt`]). Virtual-time backends move the clock only inside
//! [`Clock::wait_until`], [`DataLink::send`] and [`DataLink::recv`].
//!
//! [`Layered`] lets an adapter change one thing (declared timing, what the ports return) and pass
//! the rest through, so adapters do not re-forward every method.
//!
//! This module must not judge anything nor do I/O itself: it is the boundary's vocabulary.

use std::sync::Arc;
use std::time::Duration;

use crate::time::{TimeSource, Timestamp};
pub use crate::uart::Level;
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

/// How well a backend times, as the backend declares it. [`Capabilities`] adds what it can do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Timing {
    /// Where data-line times come from.
    pub data_timing: TimeSource,
    /// Uncertainty of a data-line time, in nanoseconds (one side).
    pub data_uncertainty_ns: u64,
    /// Uncertainty of a pulse-port edge time, in nanoseconds (one side); 0 without ports.
    pub pin_uncertainty_ns: u64,
    /// Whether the rig's parity check applies (false with a UART's own 7E1 that does not report).
    pub parity_checked: bool,
    /// Whether time is virtual (a simulated day passes in milliseconds).
    pub virtual_time: bool,
}

/// What a backend can do and how well it can time: its [`Timing`] plus whether it has
/// [`ModulePorts`] (derived from [`Target::try_as_module_ports`], never declared separately).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Capabilities {
    /// Where data-line times come from.
    pub data_timing: TimeSource,
    /// Uncertainty of a data-line time, in nanoseconds (one side).
    pub data_uncertainty_ns: u64,
    /// Whether the backend has module ports: drives the meter's inputs and captures its pulse
    /// outputs. The record's field keeps its name `pins`.
    pub pins: bool,
    /// Uncertainty of a pulse-port edge time, in nanoseconds (one side).
    pub pin_uncertainty_ns: u64,
    /// Whether the rig's parity check applies (false with a UART's own 7E1 that does not report).
    pub parity_checked: bool,
    /// Whether time is virtual (a simulated day passes in milliseconds).
    pub virtual_time: bool,
}

impl Capabilities {
    /// A backend's `timing`, with module ports or without.
    pub fn new(timing: Timing, pins: bool) -> Self {
        let Timing {
            data_timing,
            data_uncertainty_ns,
            pin_uncertainty_ns,
            parity_checked,
            virtual_time,
        } = timing;
        Capabilities {
            data_timing,
            data_uncertainty_ns,
            pins,
            pin_uncertainty_ns,
            parity_checked,
            virtual_time,
        }
    }
}

/// The logical state the rig drives a meter input to, as the data sheet's tables write it:
/// `Active` is the tables' 1 (e.g. "tariff input 1 active"), `Inactive` their 0. The pin level it
/// takes follows from the wiring's polarity, never from this type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Drive {
    /// The sheet's logical 0: the input released.
    Inactive,
    /// The sheet's logical 1.
    Active,
}

impl Drive {
    /// `Active` when `active`.
    pub const fn from_active(active: bool) -> Self {
        if active {
            Drive::Active
        } else {
            Drive::Inactive
        }
    }
    /// Whether this is the sheet's logical 1.
    pub const fn is_active(self) -> bool {
        matches!(self, Drive::Active)
    }
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

/// Errors at the hardware edge. They name the device and the failing call, say how to fix what
/// can be fixed, and keep the underlying error as their `source()` where there is one (an OS
/// error as `Arc<std::io::Error>`, so errors stay `Clone`). Callers match on the variant, never
/// on the message.
#[derive(Debug, Clone, thiserror::Error)]
pub enum TargetError {
    /// The device disappeared (unplugged adapter, deleted pty).
    #[error("{device} vanished: {detail}")]
    Vanished {
        /// Device path or name.
        device: String,
        /// The failing call and what the OS said.
        detail: String,
        /// The OS error, when there is one.
        #[source]
        source: Option<Arc<std::io::Error>>,
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
        /// What the OS (or the device) said.
        detail: String,
        /// The OS error, when there is one.
        #[source]
        source: Option<Arc<std::io::Error>>,
    },
    /// The pin layer failed in a way none of the variants above names (a coarse clock, a write
    /// to a signal that is no output).
    #[error("{device}: {source}")]
    Pin {
        /// The bus (`gpio:…`, `pi`).
        device: String,
        /// What the pin layer said.
        #[source]
        source: crate::pins::PinError,
    },
    /// The backend has no transmitter for the request line (module pin 5).
    #[error("{target} cannot send: {hint}")]
    NoTransmitter {
        /// The target's description.
        target: String,
        /// What to wire or configure.
        hint: String,
    },
    /// The wiring lacks a line the call needs.
    #[error("{target}: {what}")]
    NotWired {
        /// The target's description.
        target: String,
        /// Which line is missing and what it is for.
        what: String,
    },
    /// `set_input` on a port the rig does not drive.
    #[error("{port} is {wiring}: not a meter input the rig drives")]
    PortNotDriven {
        /// The port.
        port: Port,
        /// How it is wired (`wired as pulse_out`, `not wired`).
        wiring: String,
    },
    /// A module-port call on a target without module ports (a case that needs them declares
    /// `Need::ModulePorts` and is skipped before it gets here).
    #[error("{target} has no module ports: use --target gpio:WIRING or pi:WIRING, or the software meter")]
    NoModulePorts {
        /// The target's description.
        target: String,
    },
    /// The run was asked to stop (signal, `DELETE /runs/{id}`, maximum run time) while a case
    /// waited; not the device's fault. Raised by the suites' waits, never by a backend.
    #[error("{reason}; the case was cut short")]
    Stopped {
        /// Why the run stops.
        reason: String,
    },
}

/// A backend's clock: the one source of every time it returns.
pub trait Clock {
    /// The backend's clock (virtual for the simulator, CLOCK_MONOTONIC for real backends).
    ///
    /// # Errors
    /// The backend's, e.g. [`TargetError::Io`] when the clock cannot be read.
    fn now(&mut self) -> Result<Timestamp, TargetError>;
    /// Lets time pass until `t` while capturing (virtual: jumps; real: sleeps). Returns at once
    /// when `t` has passed.
    ///
    /// # Errors
    /// The backend's, from capturing while it waits (a lost edge, a vanished device).
    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError>;
}

/// When a request's last stop bit ended, with where that time came from and how well it is known.
/// A backend whose usual source failed for this request (edge timing falling back to the serial
/// contract) says so here, so the measurement built on it records the fallback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SentAt {
    /// The end of the last byte's stop bit, on the backend's clock.
    pub t: Timestamp,
    /// Where `t` came from.
    pub source: TimeSource,
    /// One-sided uncertainty of `t`, ns.
    pub uncertainty_ns: u64,
}

/// The meter's data port: the request line to the meter (module pin 5) and the answer line from
/// it, as timed characters.
pub trait DataLink {
    /// Sends bytes as they go on the wire (soft 7E1: parity in bit 7), starting now, back to back.
    /// Returns the end of the last byte's stop bit on the backend's clock, with its source.
    ///
    /// # Errors
    /// The backend's: an I/O failure, a vanished device, [`TargetError::NoTransmitter`] when the
    /// backend has no transmitter wired.
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError>;
    /// Receives characters from the meter's data-out line until `complete` returns true for the
    /// characters so far, until `deadline`, or until `max_gap` passes after the last character.
    /// Characters that arrived before the call and were not yet returned come first.
    ///
    /// # Errors
    /// The backend's: an I/O failure, a vanished device, lost edges.
    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError>;
    /// Drops characters received so far and not yet returned.
    ///
    /// # Errors
    /// The backend's, from reading what is pending.
    fn discard_input(&mut self) -> Result<(), TargetError>;
    /// Switches the line rate of both directions to `baud` from now on, for protocol mode C
    /// (IEC 62056-21 §6.4.4: both sides change rate after the acknowledgement/option select
    /// message). A write still leaving the port leaves at the old rate first. Characters
    /// already received keep their times.
    ///
    /// # Errors
    /// By default [`TargetError::Io`] naming the backend: it cannot switch rates mid-exchange
    /// (read such a meter in mode A, `rig read --mode a`, or through a serial port). A backend's
    /// own I/O errors otherwise.
    fn set_baud(&mut self, baud: u32) -> Result<(), TargetError> {
        Err(TargetError::Io {
            device: "this backend".into(),
            call: format!("set_baud({baud})"),
            detail: "it cannot switch its line rate mid-exchange (protocol mode C); use a serial \
                     port or the software meter, or read in mode A (--mode a)"
                .into(),
            source: None,
        })
    }
}

/// The module's two pulse/I-O ports: drive the meter's inputs, capture its outputs' edges.
/// Only backends with pins implement it; the suites reach it through
/// [`Target::try_as_module_ports`].
pub trait ModulePorts {
    /// Drives a meter input on `port` (tariff, pulse in, max reset) to `drive`.
    ///
    /// # Errors
    /// [`TargetError::PortNotDriven`] when `port` is not wired as an input the rig drives; the
    /// backend's I/O errors.
    fn set_input(&mut self, port: Port, drive: Drive) -> Result<(), TargetError>;
    /// Edges captured on `port` (a meter output) since the last call, in time order, as levels at
    /// the module pin (a pulse is [`Level::Low`]).
    ///
    /// # Errors
    /// The backend's: I/O, a sequence gap in the kernel's events.
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
    ///
    /// # Errors
    /// The backend's.
    fn dropped_edges(&mut self, _port: Port) -> Result<u64, TargetError> {
        Ok(0)
    }
    /// Puts every output the backend drives in its inactive state (safe state).
    ///
    /// # Errors
    /// The backend's I/O errors.
    fn release(&mut self) -> Result<(), TargetError> {
        Ok(())
    }
}

/// A meter reached through some backend: always a clock and a data link; module ports when the
/// backend has pins (a serial port has none, so it has no pin methods to refuse).
pub trait Target: Clock + DataLink {
    /// Short description for records (`sim:351-combi`, `serial:/dev/ttyUSB0`, …).
    fn describe(&self) -> String;
    /// How well the backend times.
    fn timing(&self) -> Timing;
    /// The module ports, when the backend has them.
    fn try_as_module_ports(&mut self) -> Option<&mut dyn ModulePorts> {
        None
    }
    /// The module under test, when this target is a bench that serves a meter to a module
    /// (`rig module`) rather than a meter: the `module` suite judges it.
    fn try_as_module_bench(&mut self) -> Option<Box<dyn crate::module::ModuleBench + '_>> {
        None
    }
    /// The module ports, for a caller that cannot go on without them.
    ///
    /// # Errors
    /// [`TargetError::NoModulePorts`] naming the target when it has none.
    fn module_ports(&mut self) -> Result<&mut dyn ModulePorts, TargetError> {
        let name = self.describe();
        self.try_as_module_ports().ok_or_else(|| no_ports(name))
    }
    /// What the backend can do: [`Target::timing`] and whether it has module ports.
    fn capabilities(&mut self) -> Capabilities {
        let pins = self.try_as_module_ports().is_some();
        Capabilities::new(self.timing(), pins)
    }
    /// Puts every output in its safe state: [`ModulePorts::release`] when there are ports.
    ///
    /// # Errors
    /// The ports' I/O errors.
    fn release(&mut self) -> Result<(), TargetError> {
        match self.try_as_module_ports() {
            Some(p) => p.release(),
            None => Ok(()),
        }
    }
}

/// A target seen through a [`Layer`]: what the layer changes (its declared timing, what its
/// module ports return) goes through it, everything else passes through, so an adapter that
/// touches only the ports (the service's edge counter) implements [`Layer`] and not the whole
/// [`Target`]. Clock and data link are forwarded here once.
#[derive(Debug)]
pub struct Layered<'a, L> {
    inner: &'a mut dyn Target,
    layer: L,
}

impl<'a, L: Layer> Layered<'a, L> {
    /// `inner`, its module ports seen through `layer`.
    pub fn new(inner: &'a mut dyn Target, layer: L) -> Self {
        Layered { inner, layer }
    }
}

/// What an adapter of [`Layered`] changes. Each method gets the inner target's value or ports;
/// the defaults pass through.
pub trait Layer {
    /// The timing the layered target declares.
    fn timing(&self, inner: Timing) -> Timing {
        inner
    }
    /// [`ModulePorts::take_edges`] through this layer.
    ///
    /// # Errors
    /// The inner ports'.
    fn take_edges(
        &mut self,
        inner: &mut dyn ModulePorts,
        port: Port,
    ) -> Result<Vec<Edge>, TargetError> {
        inner.take_edges(port)
    }
    /// [`ModulePorts::discard_edges`] through this layer (a layer that counts what passes takes
    /// the edges instead).
    ///
    /// # Errors
    /// The inner ports'.
    fn discard_edges(
        &mut self,
        inner: &mut dyn ModulePorts,
        port: Port,
    ) -> Result<u64, TargetError> {
        inner.discard_edges(port)
    }
    /// [`ModulePorts::dropped_edges`] through this layer.
    ///
    /// # Errors
    /// The inner ports'.
    fn dropped_edges(
        &mut self,
        inner: &mut dyn ModulePorts,
        port: Port,
    ) -> Result<u64, TargetError> {
        inner.dropped_edges(port)
    }
}

impl<L> Clock for Layered<'_, L> {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        self.inner.now()
    }
    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        self.inner.wait_until(t)
    }
}

impl<L> DataLink for Layered<'_, L> {
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
        self.inner.send(bytes)
    }
    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        self.inner.recv(deadline, max_gap, complete)
    }
    fn discard_input(&mut self) -> Result<(), TargetError> {
        self.inner.discard_input()
    }
    fn set_baud(&mut self, baud: u32) -> Result<(), TargetError> {
        self.inner.set_baud(baud)
    }
}

impl<L: Layer> ModulePorts for Layered<'_, L> {
    fn set_input(&mut self, port: Port, drive: Drive) -> Result<(), TargetError> {
        self.inner.module_ports()?.set_input(port, drive)
    }
    fn take_edges(&mut self, port: Port) -> Result<Vec<Edge>, TargetError> {
        self.layer.take_edges(self.inner.module_ports()?, port)
    }
    fn discard_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        self.layer.discard_edges(self.inner.module_ports()?, port)
    }
    fn dropped_edges(&mut self, port: Port) -> Result<u64, TargetError> {
        self.layer.dropped_edges(self.inner.module_ports()?, port)
    }
    fn release(&mut self) -> Result<(), TargetError> {
        self.inner.module_ports()?.release()
    }
}

impl<L: Layer> Target for Layered<'_, L> {
    fn describe(&self) -> String {
        self.inner.describe()
    }
    fn timing(&self) -> Timing {
        self.layer.timing(self.inner.timing())
    }
    fn try_as_module_ports(&mut self) -> Option<&mut dyn ModulePorts> {
        if self.inner.try_as_module_ports().is_some() {
            Some(self)
        } else {
            None
        }
    }
}

impl TargetError {
    /// An [`TargetError::Io`] from an OS error: `call` on `device` failed with `e`, kept as the
    /// source.
    pub fn io(device: impl Into<String>, call: impl Into<String>, e: std::io::Error) -> Self {
        TargetError::Io {
            device: device.into(),
            call: call.into(),
            detail: e.to_string(),
            source: Some(Arc::new(e)),
        }
    }
}

/// The error for a port call on a target without module ports.
pub fn no_ports(target: String) -> TargetError {
    TargetError::NoModulePorts { target }
}

impl std::fmt::Debug for dyn Target + '_ {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Target({})", self.describe())
    }
}
