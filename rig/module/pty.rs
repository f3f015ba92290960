//! A module under test on a pty link: the rig serves the software meter in real time on a
//! pseudo-terminal (the transport of `rig sim --link`) and logs the conversation for the
//! `module` suite. A software module (a vendor's firmware build, a Python script, a third-party
//! reader) opens the link as its serial port. [`PtyBench::open_port`] serves the same on an
//! existing serial port instead, for a module on a real line (`rig module --port`).
//!
//! Times are the pty server's serial-only contract (NOTES §3): a character the module writes
//! ends one character time after the server read it, back to back with the one before. Over a
//! 7-bit link ([`Framing::SevenBit`]) the module's parity is not on the line: the server adds even
//! parity itself, and the log says parity is not observable. Between the windows of two cases
//! the link is not read: what the module writes then is stamped when the next window starts.

use std::path::Path;
use std::time::Duration;

use super::{Dir, LineChar, ModuleBench, WireLog};
use crate::line::{CharPeer, ScheduledChar};
use crate::meter::config::MeterSpec;
use crate::serial::{char_ns, Framing, PtyServer, ShutdownHandle};
use crate::sim::SoftMeter;
use crate::target::TargetError;
use crate::time::Timestamp;

/// The software meter served on a pty link to a module under test.
#[derive(Debug)]
pub struct PtyBench {
    server: PtyServer,
    framing: Framing,
}

impl PtyBench {
    /// Opens the pty and links its slave at `link` (see [`PtyServer::open`]).
    ///
    /// # Errors
    /// [`PtyServer::open`]'s: no `/dev/ptmx`, `link` exists and is not a stale symlink.
    pub fn open(link: &Path, framing: Framing) -> Result<PtyBench, TargetError> {
        Ok(PtyBench {
            server: PtyServer::open(link, framing)?,
            framing,
        })
    }

    /// Serves on an existing serial port at `baud` (`rig module --port`; see
    /// [`PtyServer::open_port`]): the module under test is at the far end of the line.
    ///
    /// # Errors
    /// [`PtyServer::open_port`]'s: a missing device, no permission, a port in use.
    pub fn open_port(device: &Path, framing: Framing, baud: u32) -> Result<PtyBench, TargetError> {
        Ok(PtyBench {
            server: PtyServer::open_port(device, framing, baud)?,
            framing,
        })
    }

    /// The pty's slave device (the port's device with [`PtyBench::open_port`]).
    pub fn slave_name(&self) -> &str {
        self.server.slave_name()
    }

    /// A handle that ends the window in hand and every later one (SIGINT, SIGTERM, tests).
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.server.shutdown_handle()
    }
}

/// The software meter, logging what passes.
struct Logged<'a> {
    meter: &'a mut SoftMeter,
    log: Vec<LineChar>,
    char_ns: u64,
}

impl CharPeer for Logged<'_> {
    fn baud(&self) -> u32 {
        self.meter.baud()
    }
    fn receive(&mut self, byte: u8, end: Timestamp) {
        self.log.push(LineChar {
            dir: Dir::ToMeter,
            byte,
            start: Timestamp(end.0.saturating_sub(self.char_ns)),
            end,
            stop_ok: true,
        });
        self.meter.receive(byte, end);
    }
    fn advance(&mut self, now: Timestamp) {
        self.meter.advance(now);
    }
    fn take_transmit(&mut self, until: Timestamp) -> Vec<ScheduledChar> {
        let out = self.meter.take_transmit(until);
        self.log.extend(out.iter().map(|c| LineChar {
            dir: Dir::FromMeter,
            byte: c.byte,
            start: c.start,
            end: c.end,
            stop_ok: true,
        }));
        out
    }
    fn next_transmit(&self) -> Option<Timestamp> {
        self.meter.next_transmit()
    }
}

impl ModuleBench for PtyBench {
    fn observe(&mut self, meter: &MeterSpec, window_s: f64) -> Result<WireLog, TargetError> {
        let start = self.server.now();
        let mut m = SoftMeter::new(meter.clone());
        // a pty carries characters only: nothing can take the pulse-output edges
        m.set_keep_port_edges(false);
        m.advance(start);
        let mut peer = Logged {
            char_ns: char_ns(meter.baud),
            meter: &mut m,
            log: Vec::new(),
        };
        let until = start + Duration::from_secs_f64(window_s);
        self.server.serve_until(&mut peer, Some(until))?;
        if self.server.shutdown_handle().is_stopped() {
            return Err(TargetError::Stopped {
                reason: "stopped by a signal while serving the meter".into(),
            });
        }
        let mut chars = peer.log;
        chars.sort_by_key(|c| c.start);
        Ok(WireLog {
            chars,
            parity_observable: self.framing == Framing::Soft7e1,
            end: self.server.now(),
        })
    }
}
