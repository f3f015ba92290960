//! Serial ports and pseudo-terminals: the serial backend of [`Target`] and the pty transport of
//! `rig sim --link`.
//!
//! What it is for: moving bytes between the rig and a meter's data port over a serial device
//! (`/dev/ttyUSB0`, `/dev/ttyAMA0`, a pty, …) and stamping them per the *serial-only timing
//! contract* of NOTES §3. What it must not do: interpret the protocol. It never checks parity, never
//! looks for `/`, STX or the BCC and never drops a byte; noise, echoes and breaks are data for the
//! decoder. The only protocol knowledge here is framing (where the parity bit travels).
//!
//! # Framing ([`Framing`])
//! - [`Framing::Soft7e1`] (default): the port is opened 8N1; 7E1 is done in software, so a byte
//!   carries its even-parity bit in bit 7 both ways (NOTES §2). [`DataLink::send`] already receives
//!   such bytes and writes them as they are; received bytes are handed over *unmasked* and the
//!   caller checks parity ([`Timing::parity_checked`] = true).
//! - [`Framing::Uart`]: the port is opened 7E1 and the UART adds and strips parity. Bit 7 is
//!   cleared before sending and after receiving (a pty ignores CS7, so the mask makes it behave like
//!   the UART). The driver does not report parity errors through this API, so parity is unchecked:
//!   `parity_checked = false`.
//! - [`Framing::SevenBit`]: plain 7-bit characters over an 8N1 port, as ordinary programs (Python,
//!   minicom) exchange them over a pty. Same masking as `Uart`; `parity_checked = false`. The pty
//!   server uses it to add parity for the meter and strip it from the meter's answer.
//!
//! # Timing (serial-only contract, NOTES §3)
//! Clock: CLOCK_MONOTONIC through [`Instant`]; a [`Timestamp`] is nanoseconds since an epoch taken
//! when the port was opened. `c` is one character time, 10 bits / baud (33.33 ms at 300 baud).
//! - Sending `n` bytes handed to the port at `t_handoff` ends at `t_handoff + n·c` (the end of the
//!   last stop bit): the bytes occupy the line back to back from the hand-off, or from the end of
//!   the previous write's last byte if that is later (bytes still leaving queue the new ones).
//! - A received byte is taken as seen at the end of its stop bit: `end` = when the read returned
//!   it, `start = end − c`. A read returning a burst of `n` bytes at `T` back-dates them, because
//!   they crossed the line one after the other before `T` ([`BurstStamper`]):
//!   `end_k = max(T − (n−1−k)·c, end_{k−1} + c)` for `k = 0..n`, where `end_{−1}` is the previous
//!   byte's end (if it was received on this port). The clamp keeps successive bytes at least one
//!   character apart even when a sender faster than the line rate (a pty) delivers them; it can then
//!   put a byte's end after `T`.
//! - The uncertainty reported in [`Timing::data_uncertainty_ns`] depends on the device
//!   ([`PortKind`]): pty ~1 ms (scheduling), USB adapter the FTDI latency timer (16 ms, or the
//!   value in sysfs), PL011 on a Pi its receive timeout of 32 bit times (106.7 ms at 300 baud).
//!
//! # Line faults
//! Faults are results, never hangs: every read has a timeout, [`DataLink::recv`] ends at its deadline
//! or after `max_gap` of silence. A port that disappears mid-read (USB unplugged: EIO/ENXIO; the
//! pty's master closed: hang-up) gives [`TargetError::Vanished`] naming the port.
//!
//! Breaks and framing errors: after opening, the rig sets PARMRK on the port (termios through
//! `nix`; serialport exposes no way to), so the kernel marks a break as `\377 \0 \0`, a character
//! with a framing error as `\377 \0 c`, and doubles a literal 0xFF. [`MarkDecoder`] undoes the
//! marking: a break arrives as `RxChar { byte: 0, stop_ok: false }` ([`RxChar::is_break`]), a
//! framing error as the character with `stop_ok: false`. Whether the marks come depends on the
//! driver (8250/PL011 and FTDI report them; a pty never has a break). If PARMRK cannot be set,
//! `stop_ok` is always true and a break is indistinguishable from a NUL. In [`Framing::Uart`] the
//! UART's parity check stays off (INPCK clear): parity errors are not reported.

pub mod compat;
pub mod pty;

use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serialport::{ClearBuffer, DataBits, FlowControl, Parity, SerialPort, StopBits, TTYPort};

use crate::target::{Clock, DataLink, RecvEnd, SentAt, Target, TargetError, Timing};
use crate::time::{bit_ns, TimeSource, Timestamp};
use crate::uart::RxChar;

pub use pty::{PtyServer, ServeEnd, ShutdownHandle};

/// How 7E1 characters travel over the port (see the module docs).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Framing {
    /// 8N1 port, even parity carried in bit 7 and checked by the rig (the default).
    #[default]
    #[value(name = "soft7e1")]
    Soft7e1,
    /// 7E1 port; the UART adds and strips parity, and parity errors go unreported.
    #[value(name = "uart")]
    Uart,
    /// 8N1 port carrying plain 7-bit characters without parity (ordinary pty clients).
    /// `7bit` is accepted too (as `rig sim --framing` spells it).
    #[value(name = "seven-bit", alias = "7bit")]
    SevenBit,
}

impl Framing {
    /// Whether the rig sees the parity bit and can check it.
    pub fn parity_checked(self) -> bool {
        matches!(self, Framing::Soft7e1)
    }
    /// Lower-case name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Framing::Soft7e1 => "soft7e1",
            Framing::Uart => "uart",
            Framing::SevenBit => "seven-bit",
        }
    }
}

impl std::fmt::Display for Framing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What kind of device a port is; it sets the timing uncertainty.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum PortKind {
    /// A pseudo-terminal (`/dev/pts/N`, or a symlink to one such as `rig sim --link`).
    Pty,
    /// A USB serial adapter (`/dev/ttyUSB*`, `/dev/ttyACM*`): FTDI-style latency timer.
    Usb,
    /// The Raspberry Pi's PL011 (`/dev/ttyAMA*`, `/dev/serial0`): receive timeout of 32 bit times.
    Pl011,
    /// A 16550-style UART (`/dev/ttyS*`): FIFO receive timeout of 4 character times.
    Uart16550,
    /// Anything else: assumed as slow as the PL011.
    Unknown,
}

impl PortKind {
    /// Guesses the kind from the path and what it resolves to.
    pub fn detect(path: &Path) -> PortKind {
        let given = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let resolved = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let real = resolved.file_name().and_then(|n| n.to_str()).unwrap_or("");
        if resolved.starts_with("/dev/pts") || path.starts_with("/dev/pts") {
            PortKind::Pty
        } else if real.starts_with("ttyUSB") || real.starts_with("ttyACM") {
            PortKind::Usb
        } else if real.starts_with("ttyAMA") || given.starts_with("serial") {
            PortKind::Pl011
        } else if real.starts_with("ttyS") {
            PortKind::Uart16550
        } else {
            PortKind::Unknown
        }
    }

    /// One-sided uncertainty of a byte's time on this kind of port at `baud`, in nanoseconds.
    /// `latency_ms` is a USB adapter's latency timer if known (default 16 ms).
    pub fn uncertainty_ns(self, baud: u32, latency_ms: Option<u64>) -> u64 {
        match self {
            PortKind::Pty => 1_000_000,
            PortKind::Usb => latency_ms.unwrap_or(16) * 1_000_000,
            PortKind::Pl011 | PortKind::Unknown => 32 * bit_ns(baud),
            PortKind::Uart16550 => 40 * bit_ns(baud),
        }
    }
}

/// How to open a serial port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SerialOptions {
    /// Line rate (300 for mode A).
    pub baud: u32,
    /// Where the parity bit travels.
    pub framing: Framing,
    /// Overrides the detected [`PortKind`].
    pub kind: Option<PortKind>,
}

impl Default for SerialOptions {
    fn default() -> Self {
        SerialOptions {
            baud: 300,
            framing: Framing::Soft7e1,
            kind: None,
        }
    }
}

/// One character time (10 bits: start, 7 data, parity, stop) at `baud`, in nanoseconds.
pub fn char_ns(baud: u32) -> u64 {
    crate::uart::frame_ns(baud, 1)
}

/// Stamps received bytes per the serial-only contract (module docs): a burst read at `T` is
/// back-dated at the line rate, and successive bytes are never closer than one character time.
#[derive(Debug, Clone)]
pub struct BurstStamper {
    char_ns: u64,
    last_end: Option<Timestamp>,
}

impl BurstStamper {
    /// A stamper for `baud`.
    pub fn new(baud: u32) -> Self {
        BurstStamper {
            char_ns: char_ns(baud),
            last_end: None,
        }
    }
    /// Stamps `bytes`, all returned by one read at `t`, appending them to `out`.
    pub fn stamp(&mut self, bytes: &[u8], t: Timestamp, out: &mut impl Extend<RxChar>) {
        let frames: Vec<(u8, bool)> = bytes.iter().map(|&b| (b, true)).collect();
        self.stamp_frames(&frames, t, out);
    }
    /// Stamps characters with their stop-bit status (see [`MarkDecoder`]), all returned by one
    /// read at `t`.
    pub fn stamp_frames(
        &mut self,
        frames: &[(u8, bool)],
        t: Timestamp,
        out: &mut impl Extend<RxChar>,
    ) {
        let n = frames.len() as u64;
        for (k, &(byte, stop_ok)) in frames.iter().enumerate() {
            let back = (n - 1 - k as u64) * self.char_ns;
            let mut end = Timestamp(t.0.saturating_sub(back));
            if let Some(prev) = self.last_end {
                end = end.max(Timestamp(prev.0 + self.char_ns));
            }
            self.last_end = Some(end);
            out.extend(std::iter::once(RxChar {
                byte,
                start: Timestamp(end.0.saturating_sub(self.char_ns)),
                end,
                stop_ok,
                bit_ns: None,
            }));
        }
    }
    /// Forgets the previous byte (after input was discarded).
    pub fn reset(&mut self) {
        self.last_end = None;
    }
}

/// Undoes the kernel's PARMRK marking (`\377 \377` → 0xFF, `\377 \0 c` → `c` with a framing
/// error, `\377 \0 \0` → a break). Marks may straddle reads: the state carries over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MarkDecoder {
    state: u8,
}

impl MarkDecoder {
    /// Decodes `bytes` into characters with their stop-bit status, appending to `out`.
    pub fn push(&mut self, bytes: &[u8], out: &mut Vec<(u8, bool)>) {
        for &b in bytes {
            match (self.state, b) {
                (0, 0xFF) => self.state = 1,
                (0, _) => out.push((b, true)),
                (1, 0xFF) => {
                    out.push((0xFF, true));
                    self.state = 0;
                }
                (1, 0x00) => self.state = 2,
                (1, _) => {
                    // not a mark (cannot happen with PARMRK): keep both bytes
                    out.push((0xFF, true));
                    out.push((b, true));
                    self.state = 0;
                }
                (_, _) => {
                    out.push((b, false));
                    self.state = 0;
                }
            }
        }
    }
    /// Forgets a partial mark.
    pub fn reset(&mut self) {
        self.state = 0;
    }
}

/// Sets PARMRK (and clears IGNBRK, BRKINT, IGNPAR, INPCK, ISTRIP) so breaks and framing errors are
/// marked in the data. Returns whether it took.
fn enable_marks(fd: std::os::unix::io::RawFd) -> bool {
    use nix::sys::termios::{tcgetattr, tcsetattr, InputFlags, SetArg};
    let Ok(mut t) = tcgetattr(fd) else {
        return false;
    };
    t.input_flags.insert(InputFlags::PARMRK);
    t.input_flags.remove(
        InputFlags::IGNBRK
            | InputFlags::BRKINT
            | InputFlags::IGNPAR
            | InputFlags::INPCK
            | InputFlags::ISTRIP,
    );
    tcsetattr(fd, SetArg::TCSANOW, &t).is_ok()
        && tcgetattr(fd).is_ok_and(|t| t.input_flags.contains(InputFlags::PARMRK))
}

/// Maps an error from opening `device` to a [`TargetError`] with the fix.
pub fn map_open_error(device: &str, e: &serialport::Error) -> TargetError {
    use serialport::ErrorKind as K;
    let device = device.to_string();
    let desc = e.description.clone();
    match e.kind {
        K::Io(io::ErrorKind::NotFound) => TargetError::NotFound {
            hint: not_found_hint(),
            device,
        },
        K::Io(io::ErrorKind::PermissionDenied) => TargetError::Permission {
            hint: "add your user to the group owning the device (usually `dialout`: \
                   `sudo usermod -aG dialout $USER`, then log in again), or install a udev rule \
                   giving it access (e.g. `SUBSYSTEM==\"tty\", ATTRS{idVendor}==\"0403\", \
                   MODE=\"0660\", GROUP=\"dialout\"` in /etc/udev/rules.d/)"
                .into(),
            device,
        },
        K::NoDevice => TargetError::Busy {
            hint: format!(
                "{desc}; another program has it open (find it with `fuser -v {device}` or \
                 `lsof {device}`: a ModemManager, getty, minicom or another rig) and stop it"
            ),
            device,
        },
        _ if desc.contains("No such device") => TargetError::NotFound {
            hint: format!("{desc}; {}", not_found_hint()),
            device,
        },
        _ if desc.contains("Inappropriate ioctl") || desc.contains("typewriter") => {
            TargetError::Io {
                call: "open".into(),
                detail: format!("{desc}: not a serial device (a tty) — check the path"),
                device,
                source: None,
            }
        }
        _ => TargetError::Io {
            call: "open".into(),
            detail: desc,
            device,
            source: None,
        },
    }
}

fn not_found_hint() -> String {
    let mut ports: Vec<String> = std::fs::read_dir("/dev/serial/by-id")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .map(|e| e.path().display().to_string())
                .collect()
        })
        .unwrap_or_default();
    ports.sort();
    if ports.is_empty() {
        "check the cable and the path; /dev/serial/by-id/ lists no USB serial adapters \
         (plain UARTs are /dev/ttyS*, /dev/ttyAMA*, /dev/serial0)"
            .into()
    } else {
        format!(
            "check the path; adapters present in /dev/serial/by-id/: {}",
            ports.join(", ")
        )
    }
}

/// Maps an I/O error during `call` on an open port to a [`TargetError`]: hang-ups, EIO, ENXIO and
/// ENODEV mean the device went away.
pub fn map_io_error(device: &str, call: &str, e: io::Error) -> TargetError {
    let text = e.to_string();
    let vanished = matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe | io::ErrorKind::UnexpectedEof | io::ErrorKind::NotFound
    ) || matches!(e.raw_os_error(), Some(5 | 6 | 19)) // EIO, ENXIO, ENODEV (Linux)
        || text.contains("I/O error")
        || text.contains("No such device");
    if vanished {
        TargetError::Vanished {
            device: device.to_string(),
            detail: format!("{call}: {text} (unplugged adapter, or the pty's other side closed)"),
            source: Some(std::sync::Arc::new(e)),
        }
    } else {
        TargetError::io(device, call, e)
    }
}

/// Longest single wait inside [`SerialTarget::recv`], so a vanished path is noticed promptly.
const POLL_SLICE: Duration = Duration::from_millis(50);

/// A meter reached through a serial port or pty, timed per the serial-only contract.
#[derive(Debug)]
pub struct SerialTarget {
    device: String,
    port: TTYPort,
    opts: SerialOptions,
    kind: PortKind,
    uncertainty_ns: u64,
    epoch: Instant,
    stamper: BurstStamper,
    marks: Option<MarkDecoder>,
    pending: VecDeque<RxChar>,
    /// End of the last byte of the previous write on the wire: bytes written before it are still
    /// leaving, and the next write's bytes queue behind them.
    tx_free_at: Timestamp,
}

impl SerialTarget {
    /// Opens `path` with `opts`: 8N1 (soft 7E1 / seven-bit) or 7E1 (UART), raw, no flow control,
    /// exclusive; discards stale input. The clock's epoch is taken here.
    pub fn open(path: impl AsRef<Path>, opts: SerialOptions) -> Result<SerialTarget, TargetError> {
        let path = path.as_ref();
        let device = path.display().to_string();
        if opts.baud == 0 {
            return Err(TargetError::Io {
                device,
                call: "open".into(),
                detail: "baud rate must be positive".into(),
                source: None,
            });
        }
        let (bits, parity) = match opts.framing {
            Framing::Soft7e1 | Framing::SevenBit => (DataBits::Eight, Parity::None),
            Framing::Uart => (DataBits::Seven, Parity::Even),
        };
        let mut port = match serialport::new(device.clone(), opts.baud)
            .data_bits(bits)
            .parity(parity)
            .stop_bits(StopBits::One)
            .flow_control(FlowControl::None)
            .timeout(POLL_SLICE)
            .open_native()
        {
            Ok(port) => port,
            // no termios2 here (qemu-user 7.2): the classic TCSETS path (module `compat`)
            Err(e) if compat::lacks_termios2(&e) => {
                compat::open_with_tcsets(path, opts.baud, opts.framing)?
            }
            Err(e) => return Err(map_open_error(&device, &e)),
        };
        port.set_timeout(POLL_SLICE)
            .map_err(|e| map_open_error(&device, &e))?;
        port.clear(ClearBuffer::Input)
            .map_err(|e| map_open_error(&device, &e))?;
        // the rest of an answer an earlier process gave up on may still be arriving
        settle(&mut port, &device, opts.baud)?;
        let marks =
            enable_marks(std::os::unix::io::AsRawFd::as_raw_fd(&port)).then(MarkDecoder::default);
        let kind = opts.kind.unwrap_or_else(|| PortKind::detect(path));
        let latency = if kind == PortKind::Usb {
            usb_latency_ms(path)
        } else {
            None
        };
        Ok(SerialTarget {
            uncertainty_ns: kind.uncertainty_ns(opts.baud, latency),
            device,
            port,
            kind,
            epoch: Instant::now(),
            stamper: BurstStamper::new(opts.baud),
            marks,
            pending: VecDeque::new(),
            tx_free_at: Timestamp::ZERO,
            opts,
        })
    }

    /// The device path as given.
    pub fn device(&self) -> &str {
        &self.device
    }
    /// The port kind used for the uncertainty.
    pub fn kind(&self) -> PortKind {
        self.kind
    }
    /// The options it was opened with.
    pub fn options(&self) -> &SerialOptions {
        &self.opts
    }
    /// Whether breaks and framing errors are reported (PARMRK took; see the module docs).
    pub fn reports_line_errors(&self) -> bool {
        self.marks.is_some()
    }
    /// One character time in nanoseconds.
    pub fn char_ns(&self) -> u64 {
        char_ns(self.opts.baud)
    }

    fn clock(&self) -> Timestamp {
        Timestamp(self.epoch.elapsed().as_nanos() as u64)
    }
}

/// A USB adapter's latency timer from sysfs (FTDI: `/sys/bus/usb-serial/devices/ttyUSB0/`).
/// Reads and drops input until the line has been quiet for three character times (at least
/// 20 ms), at most for a whole answer's time (512 characters) plus 2 s, so a meter still sending
/// the rest of an answer the rig gave up on finishes before the next request. Leaves the port's
/// read timeout at the poll slice.
fn settle(port: &mut TTYPort, device: &str, baud: u32) -> Result<(), TargetError> {
    let c = Duration::from_nanos(char_ns(baud));
    let quiet = (c * 3).max(Duration::from_millis(20));
    let cap = c * 512 + Duration::from_secs(2);
    let t0 = Instant::now();
    let mut buf = [0u8; 256];
    port.set_timeout(quiet)
        .map_err(|e| map_open_error(device, &e))?;
    let res = loop {
        if t0.elapsed() >= cap {
            break Ok(());
        }
        match port.read(&mut buf) {
            Ok(0) => break Ok(()),
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::TimedOut => break Ok(()),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => break Err(map_io_error(device, "read", e)),
        }
    };
    let _ = port.set_timeout(POLL_SLICE);
    res
}

fn usb_latency_ms(path: &Path) -> Option<u64> {
    let real = std::fs::canonicalize(path).ok()?;
    let name = real.file_name()?.to_str()?;
    let p = PathBuf::from(format!("/sys/bus/usb-serial/devices/{name}/latency_timer"));
    std::fs::read_to_string(p).ok()?.trim().parse().ok()
}

impl Target for SerialTarget {
    fn describe(&self) -> String {
        format!("serial:{}", self.device)
    }

    fn timing(&self) -> Timing {
        Timing {
            data_timing: TimeSource::Serial,
            data_uncertainty_ns: self.uncertainty_ns,
            pin_uncertainty_ns: 0,
            parity_checked: self.opts.framing.parity_checked(),
            virtual_time: false,
        }
    }
}

impl Clock for SerialTarget {
    fn now(&mut self) -> Result<Timestamp, TargetError> {
        Ok(self.clock())
    }

    fn wait_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        let now = self.clock();
        if t > now {
            std::thread::sleep(t.saturating_since(now));
        }
        Ok(())
    }
}

impl DataLink for SerialTarget {
    fn send(&mut self, bytes: &[u8]) -> Result<SentAt, TargetError> {
        let data: Vec<u8> = match self.opts.framing {
            Framing::Soft7e1 => bytes.to_vec(),
            Framing::Uart | Framing::SevenBit => bytes.iter().map(|b| b & 0x7F).collect(),
        };
        // a write may wait for buffer space on a real UART: allow the line time and a second
        let budget =
            Duration::from_nanos(self.char_ns() * data.len() as u64 * 2) + Duration::from_secs(1);
        self.port
            .set_timeout(budget)
            .map_err(|e| map_open_error(&self.device, &e))?;
        let t_handoff = self.clock();
        let res = self.port.write_all(&data);
        let _ = self.port.set_timeout(POLL_SLICE);
        res.map_err(|e| map_io_error(&self.device, "write", e))?;
        // the bytes leave back to back from the handoff, or after the previous write's last
        // byte if that is still on the wire (noise sent right before a request)
        let start = t_handoff.max(self.tx_free_at);
        let end = Timestamp(start.0 + self.char_ns() * data.len() as u64);
        self.tx_free_at = end;
        Ok(SentAt {
            t: end,
            source: TimeSource::Serial,
            uncertainty_ns: self.uncertainty_ns,
        })
    }

    fn recv(
        &mut self,
        deadline: Timestamp,
        max_gap: Duration,
        complete: &mut dyn FnMut(&[RxChar]) -> bool,
    ) -> Result<(Vec<RxChar>, RecvEnd), TargetError> {
        let mut out: Vec<RxChar> = Vec::new();
        let mut buf = [0u8; 256];
        loop {
            while let Some(c) = self.pending.pop_front() {
                out.push(c);
                if complete(&out) {
                    return Ok((out, RecvEnd::Complete));
                }
            }
            let now = self.clock();
            if now >= deadline {
                return Ok((out, RecvEnd::Deadline));
            }
            let mut until = deadline;
            if let Some(last) = out.last() {
                let gap_end = last.end + max_gap;
                if now >= gap_end {
                    return Ok((out, RecvEnd::Gap));
                }
                until = until.min(gap_end);
            }
            let wait = until
                .saturating_since(now)
                .clamp(Duration::from_micros(100), POLL_SLICE);
            self.port
                .set_timeout(wait)
                .map_err(|e| map_open_error(&self.device, &e))?;
            match self.port.read(&mut buf) {
                Ok(0) => {
                    return Err(TargetError::Vanished {
                        device: self.device.clone(),
                        detail: "read: end of file (the other side hung up)".into(),
                        source: None,
                    })
                }
                Ok(n) => {
                    let t = self.clock();
                    let mut frames = Vec::with_capacity(n);
                    match &mut self.marks {
                        Some(m) => m.push(&buf[..n], &mut frames),
                        None => frames.extend(buf[..n].iter().map(|&b| (b, true))),
                    }
                    if self.opts.framing != Framing::Soft7e1 {
                        for f in &mut frames {
                            f.0 &= 0x7F;
                        }
                    }
                    self.stamper.stamp_frames(&frames, t, &mut self.pending);
                }
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::TimedOut | io::ErrorKind::Interrupted
                    ) =>
                {
                    // a pty whose link was deleted keeps working while its master is open; a
                    // vanished *device node* of a real adapter shows up here first
                    if self.kind != PortKind::Pty && !Path::new(&self.device).exists() {
                        return Err(TargetError::Vanished {
                            device: self.device.clone(),
                            detail: "the device node disappeared".into(),
                            source: None,
                        });
                    }
                }
                Err(e) => return Err(map_io_error(&self.device, "read", e)),
            }
        }
    }

    fn set_baud(&mut self, baud: u32) -> Result<(), TargetError> {
        if baud == 0 {
            return Err(TargetError::Io {
                device: self.device.clone(),
                call: "set_baud".into(),
                detail: "baud rate must be positive".into(),
                source: None,
            });
        }
        // the bytes of the last write leave at the old rate first (tcdrain, then the line time
        // the serial contract gives them)
        self.port
            .flush()
            .map_err(|e| map_io_error(&self.device, "tcdrain", e))?;
        self.wait_until(self.tx_free_at)?;
        match self.port.set_baud_rate(baud) {
            Ok(()) => {}
            // no termios2 here (qemu-user 7.2): the classic TCSETS path, as at the open
            Err(e) if compat::lacks_termios2(&e) => compat::set_rate_with_tcsets(
                std::os::unix::io::AsRawFd::as_raw_fd(&self.port),
                &self.device,
                baud,
            )?,
            Err(e) => return Err(map_open_error(&self.device, &e)),
        }
        self.opts.baud = baud;
        self.stamper = BurstStamper::new(baud);
        let latency = (self.kind == PortKind::Usb)
            .then(|| usb_latency_ms(Path::new(&self.device)))
            .flatten();
        self.uncertainty_ns = self.kind.uncertainty_ns(baud, latency);
        Ok(())
    }

    /// Drops what was received and not taken; when bytes are waiting in the port (the rest of
    /// an answer the rig gave up on), first waits until the line is quiet, so the next request
    /// is answered on a clean line: three quiet character times, at most a whole answer's time.
    fn discard_input(&mut self) -> Result<(), TargetError> {
        self.pending.clear();
        self.stamper.reset();
        if let Some(m) = &mut self.marks {
            m.reset();
        }
        let waiting = self
            .port
            .bytes_to_read()
            .map_err(|e| map_open_error(&self.device, &e))?;
        if waiting > 0 {
            settle(&mut self.port, &self.device, self.opts.baud)?;
        }
        self.port
            .clear(ClearBuffer::Input)
            .map_err(|e| map_open_error(&self.device, &e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_is_back_dated_at_line_rate() {
        let mut s = BurstStamper::new(300);
        let c = char_ns(300);
        let mut out = Vec::new();
        let t = Timestamp::from_ms(1000);
        s.stamp(b"abc", t, &mut out);
        assert_eq!(out[2].end, t);
        assert_eq!(out[1].end, Timestamp(t.0 - c));
        assert_eq!(out[0].end, Timestamp(t.0 - 2 * c));
        assert_eq!(out[0].start, Timestamp(t.0 - 3 * c));
        // a byte read 1 ms later cannot have ended less than one character after the last
        s.stamp(b"d", Timestamp(t.0 + 1_000_000), &mut out);
        assert_eq!(out[3].end, Timestamp(t.0 + c));
        // a burst straight after: clamped forward byte by byte
        s.stamp(b"ef", Timestamp(t.0 + c + 1), &mut out);
        assert_eq!(out[4].end, Timestamp(t.0 + 2 * c));
        assert_eq!(out[5].end, Timestamp(t.0 + 3 * c));
        for w in out.windows(2) {
            assert!(w[1].end.0 - w[0].end.0 >= c);
        }
    }

    #[test]
    fn single_bytes_keep_their_arrival_time() {
        let mut s = BurstStamper::new(9600);
        let mut out = Vec::new();
        s.stamp(b"/", Timestamp::from_ms(10), &mut out);
        s.stamp(b"K", Timestamp::from_ms(20), &mut out);
        assert_eq!(out[0].end, Timestamp::from_ms(10));
        assert_eq!(out[1].end, Timestamp::from_ms(20));
        assert_eq!(out[1].start, Timestamp(20_000_000 - char_ns(9600)));
    }

    #[test]
    fn marks_are_undone_across_reads() {
        let mut m = MarkDecoder::default();
        let mut out = Vec::new();
        m.push(&[b'A', 0xFF, 0xFF, 0xFF], &mut out);
        m.push(&[0x00, 0x00, 0xFF, 0x00, b'B', b'C'], &mut out);
        assert_eq!(
            out,
            vec![
                (b'A', true),
                (0xFF, true),
                (0x00, false), // break
                (b'B', false), // framing error
                (b'C', true)
            ]
        );
        let mut s = BurstStamper::new(300);
        let mut chars: Vec<RxChar> = Vec::new();
        s.stamp_frames(&out[2..3], Timestamp::from_ms(100), &mut chars);
        assert!(chars[0].is_break());
    }

    #[test]
    fn port_kind_from_path() {
        assert_eq!(PortKind::detect(Path::new("/dev/pts/7")), PortKind::Pty);
        assert_eq!(PortKind::detect(Path::new("/dev/ttyUSB0")), PortKind::Usb);
        assert_eq!(PortKind::detect(Path::new("/dev/ttyACM1")), PortKind::Usb);
        assert_eq!(PortKind::detect(Path::new("/dev/ttyAMA0")), PortKind::Pl011);
        assert_eq!(PortKind::detect(Path::new("/dev/serial0")), PortKind::Pl011);
        assert_eq!(
            PortKind::detect(Path::new("/dev/ttyS0")),
            PortKind::Uart16550
        );
        assert_eq!(PortKind::Pl011.uncertainty_ns(300, None), 106_666_656);
        assert_eq!(PortKind::Usb.uncertainty_ns(300, None), 16_000_000);
        assert_eq!(PortKind::Usb.uncertainty_ns(300, Some(1)), 1_000_000);
    }

    #[test]
    fn open_errors_carry_the_fix() {
        let e = serialport::Error::new(
            serialport::ErrorKind::Io(io::ErrorKind::PermissionDenied),
            "Permission denied",
        );
        let m = map_open_error("/dev/ttyUSB0", &e);
        assert!(matches!(&m, TargetError::Permission { device, hint }
            if device == "/dev/ttyUSB0" && hint.contains("dialout") && hint.contains("udev")));
        let e = serialport::Error::new(serialport::ErrorKind::NoDevice, "busy");
        assert!(
            matches!(map_open_error("/dev/x", &e), TargetError::Busy { hint, .. }
            if hint.contains("fuser"))
        );
        let e = serialport::Error::new(
            serialport::ErrorKind::Io(io::ErrorKind::NotFound),
            "No such file or directory",
        );
        assert!(
            matches!(map_open_error("/dev/x", &e), TargetError::NotFound { hint, .. }
            if hint.contains("/dev/serial/by-id"))
        );
        let e = io::Error::new(io::ErrorKind::BrokenPipe, "Broken pipe");
        let v = map_io_error("/dev/x", "read", e);
        assert!(matches!(v, TargetError::Vanished { .. }));
        // the OS error stays reachable as the source, typed (shared, so errors stay `Clone`)
        let source = std::error::Error::source(&v).expect("a source");
        assert_eq!(
            source
                .downcast_ref::<std::sync::Arc<io::Error>>()
                .map(|e| e.kind()),
            Some(io::ErrorKind::BrokenPipe)
        );
        let e = io::Error::from_raw_os_error(5);
        assert!(matches!(
            map_io_error("/dev/x", "read", e),
            TargetError::Vanished { .. }
        ));
    }
}
