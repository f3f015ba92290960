//! The pty transport of `rig sim --link PATH`: a pseudo-terminal whose slave end is symlinked at
//! `PATH`, served in real time by any [`CharPeer`] (the software meter, or a test's fake).
//!
//! What it is for: making a character-level meter look like a real 300-baud line to programs that
//! open `PATH` as a serial port. What it must not do: interpret the protocol (it only moves
//! characters, adds or strips the parity bit per [`Framing`] and paces them).
//!
//! A pty has no line: whatever a client writes is readable at once, and whatever the server writes
//! drains instantly (NOTES §2). So the server applies the serial-only contract of NOTES §3 from the
//! line's side, which makes a client applying it too (such as [`super::SerialTarget`]) recover the
//! peer's exact timing:
//! - **Towards the peer.** A client hands its bytes to the pty in one write; the server reads them
//!   at that moment `T`, which is the hand-off, so the bytes then occupy the line back to back:
//!   byte `k`'s stop bit ends at `end_k = max(T_k, end_{k−1}) + c` (`c` = one character time,
//!   `T_k` the time of the read that returned it). This is exactly the client's
//!   `t_handoff + n·c`. Each byte is given to [`CharPeer::receive`] with that `end`, once the clock
//!   has reached it.
//! - **Towards the client.** Each character the peer schedules is written alone at the end of its
//!   stop bit ([`ScheduledChar::end`]), sleeping until then, so the client sees it when a real line
//!   would have delivered it and back-dates its start by one character.
//!
//! Framing: [`Framing::Soft7e1`] passes bytes unchanged both ways (the client does 7E1 in software);
//! [`Framing::SevenBit`] and [`Framing::Uart`] serve clients exchanging plain 7-bit characters: the
//! server adds even parity before the peer sees a byte and strips bit 7 from what the peer sends.
//!
//! The same server also serves an existing serial port ([`PtyServer::open_port`], `rig module
//! --port`): there the line is real, so what arrives is stamped at the read (back-dated for a
//! burst, [`BurstStamper`]) and each character is written at its start bit.
//!
//! Shutdown: [`ShutdownHandle::stop`] (tests), or SIGINT/SIGTERM after
//! [`PtyServer::install_signal_handlers`]. The link is removed on drop, and only if it still points
//! at this server's pty.

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serialport::{DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};

use super::{char_ns, map_io_error, BurstStamper, Framing};
use crate::iec62056::parity;
use crate::line::{CharPeer, ScheduledChar};
use crate::target::TargetError;
use crate::time::Timestamp;

/// Longest sleep of the serve loop: how often the peer advances and the stop flag is looked at.
const TICK: Duration = Duration::from_millis(10);

/// Stops a running [`PtyServer::serve`] from another thread.
#[derive(Debug, Clone, Default)]
pub struct ShutdownHandle(Arc<AtomicBool>);

impl ShutdownHandle {
    /// Asks the server to stop; `serve` returns within about 10 ms.
    pub fn stop(&self) {
        self.0.store(true, Ordering::SeqCst);
    }
    /// Whether a stop was requested.
    pub fn is_stopped(&self) -> bool {
        self.0.load(Ordering::SeqCst)
    }
}

/// What a finished [`PtyServer::serve`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
pub struct ServeEnd {
    /// Bytes read from clients and given to the peer.
    pub received: u64,
    /// Characters the peer sent and the server wrote.
    pub transmitted: u64,
    /// Characters dropped because no client was reading and the pty buffer was full.
    pub dropped: u64,
}

/// A pseudo-terminal pair with its slave symlinked at a path, serving a [`CharPeer`].
#[derive(Debug)]
pub struct PtyServer {
    link: PathBuf,
    slave_name: String,
    master: TTYPort,
    /// Held open so the master never sees a hang-up between clients (`None` on a real port).
    _slave: Option<TTYPort>,
    /// On a real serial port ([`PtyServer::open_port`]): stamps what arrives per the
    /// serial-only contract (a byte read at `T` ended at `T`), and characters are written at
    /// their start bit, since the UART then takes one character time to send them.
    line: Option<BurstStamper>,
    framing: Framing,
    epoch: Instant,
    stop: ShutdownHandle,
    signals: Vec<signal_hook::SigId>,
}

impl PtyServer {
    /// Opens a pty pair and symlinks its slave at `link`. Fails if `link` exists and is not a stale
    /// symlink (one whose target is gone); a stale one is replaced.
    pub fn open(link: impl AsRef<Path>, framing: Framing) -> Result<PtyServer, TargetError> {
        let link = link.as_ref().to_path_buf();
        let name = link.display().to_string();
        let (master, slave) = TTYPort::pair().map_err(|e| TargetError::Io {
            device: name.clone(),
            call: "openpty".into(),
            detail: format!("{e} (is /dev/ptmx available?)"),
            source: None,
        })?;
        let slave_name = slave.name().ok_or_else(|| TargetError::Io {
            device: name.clone(),
            call: "ptsname".into(),
            detail: "the pty has no slave name".into(),
            source: None,
        })?;
        make_link(&link, &slave_name)?;
        Ok(PtyServer {
            link,
            slave_name,
            master,
            _slave: Some(slave),
            line: None,
            framing,
            epoch: Instant::now(),
            stop: ShutdownHandle::default(),
            signals: Vec::new(),
        })
    }

    /// Serves on an existing serial port (`rig module --port`): `device` opened raw at `baud`,
    /// 8N1 for [`Framing::Soft7e1`] and [`Framing::SevenBit`], 7E1 for [`Framing::Uart`], no flow
    /// control. No link is made; [`PtyServer::link`] and [`PtyServer::slave_name`] give the
    /// device. A module at the far end of the line is the client.
    ///
    /// # Errors
    /// The port's open errors ([`super::map_open_error`]: missing device, permission, busy), a
    /// zero baud rate.
    pub fn open_port(
        device: impl AsRef<Path>,
        framing: Framing,
        baud: u32,
    ) -> Result<PtyServer, TargetError> {
        let path = device.as_ref();
        let name = path.display().to_string();
        if baud == 0 {
            return Err(TargetError::Io {
                device: name,
                call: "open".into(),
                detail: "baud rate must be positive".into(),
                source: None,
            });
        }
        let (bits, parity) = match framing {
            Framing::Soft7e1 | Framing::SevenBit => (DataBits::Eight, Parity::None),
            Framing::Uart => (DataBits::Seven, Parity::Even),
        };
        let port = match serialport::new(name.clone(), baud)
            .data_bits(bits)
            .parity(parity)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(TICK)
            .open_native()
        {
            Ok(port) => port,
            Err(e) if super::compat::lacks_termios2(&e) => {
                super::compat::open_with_tcsets(path, baud, framing)?
            }
            Err(e) => return Err(super::map_open_error(&name, &e)),
        };
        Ok(PtyServer {
            link: path.to_path_buf(),
            slave_name: name,
            master: port,
            _slave: None,
            line: Some(BurstStamper::new(baud)),
            framing,
            epoch: Instant::now(),
            stop: ShutdownHandle::default(),
            signals: Vec::new(),
        })
    }

    /// The symlink clients open.
    pub fn link(&self) -> &Path {
        &self.link
    }
    /// The pty's slave device (`/dev/pts/N`).
    pub fn slave_name(&self) -> &str {
        &self.slave_name
    }
    /// A handle that stops [`PtyServer::serve`].
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// Makes SIGINT (Ctrl-C) and SIGTERM stop [`PtyServer::serve`], which then returns so the
    /// caller can drop the server (removing the link) and exit cleanly. A second Ctrl-C while
    /// stopping exits at once (status 130). The handlers are unregistered on drop.
    pub fn install_signal_handlers(&mut self) -> Result<(), TargetError> {
        use signal_hook::consts::{SIGINT, SIGTERM};
        for sig in [SIGINT, SIGTERM] {
            let err =
                |e: io::Error| TargetError::io(self.link.display().to_string(), "sigaction", e);
            let id =
                signal_hook::flag::register_conditional_shutdown(sig, 130, self.stop.0.clone())
                    .map_err(err)?;
            self.signals.push(id);
            let id = signal_hook::flag::register(sig, self.stop.0.clone()).map_err(err)?;
            self.signals.push(id);
        }
        Ok(())
    }

    fn clock(&self) -> Timestamp {
        Timestamp(self.epoch.elapsed().as_nanos() as u64)
    }

    /// Serves `peer` in real time until stopped (see the module docs for the timing rules). Clients
    /// may open and close the link any number of times meanwhile.
    pub fn serve(&mut self, peer: &mut dyn CharPeer) -> Result<ServeEnd, TargetError> {
        self.serve_until(peer, None)
    }

    /// The server's clock: time since the pty was opened (the time base of the peer).
    pub fn now(&self) -> Timestamp {
        self.clock()
    }

    /// [`PtyServer::serve`] until the server's clock ([`PtyServer::now`]) reaches `until` (or a
    /// stop), for a caller that serves a peer for a window and then judges what it saw
    /// (`rig module`). Characters read but not yet due and characters the peer scheduled but
    /// not yet written are dropped at the end of the window.
    pub fn serve_until(
        &mut self,
        peer: &mut dyn CharPeer,
        until: Option<Timestamp>,
    ) -> Result<ServeEnd, TargetError> {
        let device = self.link.display().to_string();
        let c = char_ns(peer.baud());
        let mut stats = ServeEnd::default();
        let mut line_free = Timestamp::ZERO;
        let mut rx: VecDeque<(u8, Timestamp)> = VecDeque::new();
        let mut tx: VecDeque<ScheduledChar> = VecDeque::new();
        let mut buf = [0u8; 256];
        loop {
            let now = self.clock();
            if self.stop.is_stopped() || until.is_some_and(|u| now >= u) {
                return Ok(stats);
            }
            while let Some(&(byte, end)) = rx.front() {
                if end > now {
                    break;
                }
                rx.pop_front();
                peer.advance(end);
                peer.receive(byte, end);
                stats.received += 1;
            }
            peer.advance(now);
            tx.extend(peer.take_transmit(now));
            while let Some(ch) = tx.front().copied() {
                if self.due(&ch) > self.clock() {
                    break;
                }
                tx.pop_front();
                let byte = match self.framing {
                    Framing::Soft7e1 => ch.byte,
                    Framing::SevenBit | Framing::Uart => ch.byte & 0x7F,
                };
                if self.write_one(byte, &device)? {
                    stats.transmitted += 1;
                } else {
                    stats.dropped += 1;
                }
            }
            // sleep (waiting for input) until the next thing to do
            let mut wake = until.map_or(now + TICK, |u| u.min(now + TICK));
            if let Some(ch) = tx.front() {
                wake = wake.min(self.due(ch));
            }
            if let Some(&(_, end)) = rx.front() {
                wake = wake.min(end);
            }
            if let Some(start) = peer.next_transmit() {
                wake = wake.min(start);
            }
            let now = self.clock();
            if wake <= now {
                continue;
            }
            self.master
                .set_timeout(wake.saturating_since(now))
                .map_err(|e| super::map_open_error(&device, &e))?;
            match self.master.read(&mut buf) {
                Ok(n) => {
                    let t = self.clock();
                    self.queue_rx(&buf[..n], t, c, &mut line_free, &mut rx);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) => {}
                Err(e) => return Err(map_io_error(&device, "read", e)),
            }
        }
    }

    /// Queues `bytes`, read at `t`, for the peer with the ends of their stop bits: on a pty back
    /// to back from the read (`line_free`: the end of the last one), on a real port per the
    /// serial-only contract ([`BurstStamper`]). Parity is added where the link carries none.
    fn queue_rx(
        &mut self,
        bytes: &[u8],
        t: Timestamp,
        c: u64,
        line_free: &mut Timestamp,
        rx: &mut VecDeque<(u8, Timestamp)>,
    ) {
        let framing = self.framing;
        let with_parity = |b: u8| match framing {
            Framing::Soft7e1 => b,
            Framing::SevenBit | Framing::Uart => parity::add_even(b),
        };
        if let Some(st) = self.line.as_mut() {
            let mut stamped: Vec<crate::uart::RxChar> = Vec::new();
            st.stamp(bytes, t, &mut stamped);
            rx.extend(stamped.iter().map(|r| (with_parity(r.byte), r.end)));
            return;
        }
        for &b in bytes {
            let end = Timestamp(t.max(*line_free).0 + c);
            *line_free = end;
            rx.push_back((with_parity(b), end));
        }
    }

    /// When a scheduled character is written: at the end of its stop bit on a pty (it arrives at
    /// once), at its start bit on a real port (the UART sends it in one character time).
    fn due(&self, ch: &ScheduledChar) -> Timestamp {
        if self.line.is_some() {
            ch.start
        } else {
            ch.end
        }
    }

    /// Writes one byte; `false` if it had to be dropped (nobody reading, buffer full).
    fn write_one(&mut self, byte: u8, device: &str) -> Result<bool, TargetError> {
        self.master
            .set_timeout(Duration::from_millis(5))
            .map_err(|e| super::map_open_error(device, &e))?;
        match self.master.write(&[byte]) {
            Ok(1) => Ok(true),
            Ok(_) => Ok(false),
            Err(e) if e.kind() == io::ErrorKind::TimedOut => Ok(false),
            Err(e) => Err(map_io_error(device, "write", e)),
        }
    }
}

impl Drop for PtyServer {
    fn drop(&mut self) {
        for id in self.signals.drain(..) {
            signal_hook::low_level::unregister(id);
        }
        // only a link this server made (never a port it was given)
        if self._slave.is_some()
            && std::fs::read_link(&self.link).is_ok_and(|t| t == Path::new(&self.slave_name))
        {
            let _ = std::fs::remove_file(&self.link);
        }
    }
}

/// Symlinks `target` at `link`, replacing a stale symlink and refusing anything else.
fn make_link(link: &Path, target: &str) -> Result<(), TargetError> {
    let device = link.display().to_string();
    match std::fs::symlink_metadata(link) {
        Ok(md) if md.file_type().is_symlink() => {
            if std::fs::metadata(link).is_ok() {
                let to = std::fs::read_link(link)
                    .map(|p| p.display().to_string())
                    .unwrap_or_default();
                return Err(TargetError::Busy {
                    device,
                    hint: format!(
                        "the link exists and points at live {to}; another `rig sim --link` may be \
                         serving it: stop it, or remove the link if nothing uses it"
                    ),
                });
            }
            std::fs::remove_file(link)
                .map_err(|e| TargetError::io(device.clone(), "unlink (stale link)", e))?;
        }
        Ok(_) => {
            return Err(TargetError::Io {
                device,
                call: "symlink".into(),
                detail: "the path exists and is not a symlink; choose another --link path".into(),
                source: None,
            })
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(TargetError::io(device, "lstat", e)),
    }
    std::os::unix::fs::symlink(target, link).map_err(|e| match e.kind() {
        io::ErrorKind::PermissionDenied => TargetError::Permission {
            device: device.clone(),
            hint: "choose a --link path in a directory you can write (e.g. /tmp/meter)".into(),
        },
        io::ErrorKind::NotFound => TargetError::Io {
            device: device.clone(),
            call: "symlink".into(),
            detail: "the --link path's directory does not exist: create it, or choose a path in \
                     an existing directory (e.g. /tmp/meter)"
                .into(),
            source: Some(std::sync::Arc::new(e)),
        },
        _ => TargetError::io(device.clone(), "symlink", e),
    })
}
