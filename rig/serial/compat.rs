//! Opening a serial port where the kernel interface lacks `termios2`.
//!
//! What it is for: `serialport` configures a Linux port through the `TCGETS2`/`TCSETS2` ioctls
//! (`struct termios2`, for arbitrary line rates). Some environments answer those with `ENOSYS`
//! while the classic `TCGETS`/`TCSETS` work: qemu-user 7.2 (Debian bookworm's
//! `qemu-user-static`), which `.ci/aarch64/run.sh` uses to run the aarch64 build's tests. There
//! [`open_with_tcsets`] opens and configures the port itself with the classic calls (through
//! `nix`, i.e. libc's `tcsetattr`) and hands the descriptor to [`TTYPort`], which then only reads,
//! writes, polls and flushes it (no further `termios2` call on the paths the rig uses).
//!
//! The price: only the standard line rates of `<termios.h>` (50 … 4 000 000 baud) can be set;
//! any other rate is refused with the reason. On a real Pi or PC the first path (`serialport`)
//! succeeds and this module is never used.

use std::fs::OpenOptions;
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::io::{AsRawFd, FromRawFd, IntoRawFd};
use std::path::Path;

use nix::errno::Errno;
use nix::fcntl::{fcntl, FcntlArg, OFlag};
use nix::sys::termios::{self, BaudRate, ControlFlags, InputFlags, SetArg};
use serialport::TTYPort;

use super::Framing;
use crate::target::TargetError;

/// Whether `e` (from `serialport`'s open) is the kernel interface refusing `termios2`: the call
/// returned `ENOSYS` ("Function not implemented"), which `serialport` reports as kind `Unknown`.
pub fn lacks_termios2(e: &serialport::Error) -> bool {
    e.kind == serialport::ErrorKind::Unknown && e.description == Errno::ENOSYS.desc()
}

/// The `<termios.h>` constant for `baud` (bits per second), if it is a standard rate.
pub fn standard_rate(baud: u32) -> Option<BaudRate> {
    use BaudRate as B;
    Some(match baud {
        50 => B::B50,
        75 => B::B75,
        110 => B::B110,
        134 => B::B134,
        150 => B::B150,
        200 => B::B200,
        300 => B::B300,
        600 => B::B600,
        1200 => B::B1200,
        1800 => B::B1800,
        2400 => B::B2400,
        4800 => B::B4800,
        9600 => B::B9600,
        19200 => B::B19200,
        38400 => B::B38400,
        57600 => B::B57600,
        115200 => B::B115200,
        230400 => B::B230400,
        460800 => B::B460800,
        921600 => B::B921600,
        _ => return None,
    })
}

/// Opens `path` raw at `baud` with `framing`'s character format (8N1, or 7E1 for
/// [`Framing::Uart`]), no flow control, blocking reads, through `TCGETS`/`TCSETS` only.
///
/// # Errors
/// - [`TargetError::NotFound`] / [`TargetError::Permission`] when the device cannot be opened;
/// - [`TargetError::Io`] naming the call (`open`, `tcgetattr`, `tcsetattr`, `fcntl`) that failed,
///   or, for a line rate that is not a standard `<termios.h>` rate, the fix (use a standard rate,
///   or a kernel interface with `termios2`).
pub fn open_with_tcsets(path: &Path, baud: u32, framing: Framing) -> Result<TTYPort, TargetError> {
    let device = path.display().to_string();
    let rate = standard_rate(baud).ok_or_else(|| TargetError::Io {
        device: device.clone(),
        call: "tcsetattr".into(),
        detail: format!(
            "{baud} baud is not a standard rate, and this kernel interface has no termios2 \
             (TCSETS2 gave ENOSYS, as under qemu-user 7.2) to set other rates: use a standard \
             rate (300, 600, 1200, 2400, 4800, 9600, …) or run on the board itself"
        ),
        source: None,
    })?;
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags((OFlag::O_NOCTTY | OFlag::O_NONBLOCK).bits())
        .open(path)
        .map_err(|e| open_error(&device, e))?;
    let fd = file.as_raw_fd();
    let io = |call: &str, e: Errno| TargetError::io(device.clone(), call, e.into());
    let mut t = termios::tcgetattr(fd).map_err(|e| io("tcgetattr", e))?;
    termios::cfmakeraw(&mut t);
    t.control_flags.remove(
        ControlFlags::CSIZE
            | ControlFlags::PARENB
            | ControlFlags::PARODD
            | ControlFlags::CSTOPB
            | ControlFlags::CRTSCTS,
    );
    t.control_flags |= ControlFlags::CREAD | ControlFlags::CLOCAL;
    t.control_flags |= match framing {
        Framing::Uart => ControlFlags::CS7 | ControlFlags::PARENB,
        Framing::Soft7e1 | Framing::SevenBit => ControlFlags::CS8,
    };
    t.input_flags
        .remove(InputFlags::IXON | InputFlags::IXOFF | InputFlags::IXANY);
    set_speed(&mut t, rate);
    termios::tcsetattr(fd, SetArg::TCSANOW, &t).map_err(|e| io("tcsetattr", e))?;
    // blocking from here on: TTYPort polls with its timeout before each read
    fcntl(fd, FcntlArg::F_SETFL(OFlag::empty())).map_err(|e| io("fcntl", e))?;
    let raw = file.into_raw_fd();
    // SAFETY: `raw` is an open tty descriptor that this function owns (taken out of `file`, which
    // no longer closes it); the TTYPort takes sole ownership and closes it when dropped.
    #[allow(unsafe_code)]
    let port = unsafe { TTYPort::from_raw_fd(raw) };
    Ok(port)
}

/// Changes the line rate of the open port `fd` (`device` for messages) to `baud` through
/// `TCGETS`/`TCSETS` only, keeping every other setting: the mid-exchange switch of mode C where
/// `serialport`'s `set_baud_rate` meets the same `ENOSYS` as its open.
///
/// # Errors
/// [`TargetError::Io`] naming the failing call, or, for a rate that is not a standard
/// `<termios.h>` rate, the fix.
pub fn set_rate_with_tcsets(
    fd: std::os::unix::io::RawFd,
    device: &str,
    baud: u32,
) -> Result<(), TargetError> {
    let rate = standard_rate(baud).ok_or_else(|| TargetError::Io {
        device: device.into(),
        call: "tcsetattr".into(),
        detail: format!(
            "{baud} baud is not a standard rate, and this kernel interface has no termios2 \
             (TCSETS2 gave ENOSYS, as under qemu-user 7.2): use a standard rate"
        ),
        source: None,
    })?;
    let io = |call: &str, e: Errno| TargetError::io(device.to_string(), call, e.into());
    let mut t = termios::tcgetattr(fd).map_err(|e| io("tcgetattr", e))?;
    set_speed(&mut t, rate);
    termios::tcsetattr(fd, SetArg::TCSADRAIN, &t).map_err(|e| io("tcsetattr", e))
}

/// Puts `rate` into the `CBAUD` bits of `t`'s control flags, which `TCSETS` reads: libc's
/// `cfsetspeed` and its kin are bound to versioned glibc symbols (`cfsetspeed@GLIBC_2.2.5`) that a
/// static build (the gpio-sim guest's test binary) cannot link.
fn set_speed(t: &mut termios::Termios, rate: BaudRate) {
    t.control_flags.remove(ControlFlags::CBAUD);
    t.control_flags.insert(ControlFlags::from_bits_truncate(
        rate as nix::libc::tcflag_t,
    ));
}

/// The `CBAUD` bits of `t`: its line rate as a `<termios.h>` constant's value.
#[cfg(test)]
fn speed_bits(t: &termios::Termios) -> nix::libc::tcflag_t {
    (t.control_flags & ControlFlags::CBAUD).bits()
}

/// Maps an error of `open(2)` on `device` to the typed error with the fix.
fn open_error(device: &str, e: std::io::Error) -> TargetError {
    let kind = match e.kind() {
        std::io::ErrorKind::NotFound => serialport::ErrorKind::Io(std::io::ErrorKind::NotFound),
        std::io::ErrorKind::PermissionDenied => {
            serialport::ErrorKind::Io(std::io::ErrorKind::PermissionDenied)
        }
        _ => return TargetError::io(device, "open", e),
    };
    super::map_open_error(device, &serialport::Error::new(kind, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serialport::SerialPort;
    use std::io::{Read, Write};
    use std::time::Duration;

    #[test]
    fn enosys_from_the_open_is_recognised_and_other_errors_are_not() {
        let enosys: serialport::Error = Errno::ENOSYS.into();
        assert!(lacks_termios2(&enosys));
        let enotty: serialport::Error = Errno::ENOTTY.into();
        assert!(!lacks_termios2(&enotty));
        let missing: serialport::Error = Errno::ENOENT.into();
        assert!(!lacks_termios2(&missing));
    }

    #[test]
    fn standard_rates_map_and_others_are_refused_with_the_reason() {
        assert_eq!(standard_rate(300), Some(BaudRate::B300));
        assert_eq!(standard_rate(9600), Some(BaudRate::B9600));
        assert_eq!(standard_rate(250), None);
        let (_master, slave) = TTYPort::pair().expect("a pty pair");
        let name = slave.name().expect("slave name");
        let e = open_with_tcsets(Path::new(&name), 250, Framing::Soft7e1).unwrap_err();
        assert!(e.to_string().contains("not a standard rate"), "{e}");
    }

    #[test]
    fn a_pty_opened_through_tcsets_is_raw_at_the_rate_and_carries_bytes_both_ways() {
        let (mut master, slave) = TTYPort::pair().expect("a pty pair");
        let name = slave.name().expect("slave name");
        let mut port = open_with_tcsets(Path::new(&name), 300, Framing::Soft7e1).unwrap();
        let t = termios::tcgetattr(port.as_raw_fd()).unwrap();
        assert_eq!(speed_bits(&t), BaudRate::B300 as nix::libc::tcflag_t);
        assert!(t.control_flags.contains(ControlFlags::CS8));
        assert!(!t.local_flags.contains(termios::LocalFlags::ICANON));
        // raw: CR and a parity-carrying byte arrive unchanged, no line buffering
        master.write_all(b"/?!\r\n\xAF").unwrap();
        port.set_timeout(Duration::from_secs(2)).unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 16];
        while got.len() < 6 {
            let n = port.read(&mut buf).unwrap();
            got.extend_from_slice(&buf[..n]);
        }
        assert_eq!(got, b"/?!\r\n\xAF");
        port.write_all(b"ACK").unwrap();
        master.set_timeout(Duration::from_secs(2)).unwrap();
        let mut back = [0u8; 3];
        master.read_exact(&mut back).unwrap();
        assert_eq!(&back, b"ACK");
    }

    #[test]
    fn the_rate_switches_through_tcsets_and_the_character_format_stays() {
        let (_master, slave) = TTYPort::pair().expect("a pty pair");
        let name = slave.name().expect("slave name");
        let port = open_with_tcsets(Path::new(&name), 300, Framing::Soft7e1).unwrap();
        let before = termios::tcgetattr(port.as_raw_fd()).unwrap();
        set_rate_with_tcsets(port.as_raw_fd(), &name, 9600).unwrap();
        let t = termios::tcgetattr(port.as_raw_fd()).unwrap();
        assert_eq!(speed_bits(&t), BaudRate::B9600 as nix::libc::tcflag_t);
        let format = ControlFlags::CSIZE | ControlFlags::PARENB | ControlFlags::CSTOPB;
        assert_eq!(t.control_flags & format, before.control_flags & format);
        assert_eq!(t.local_flags, before.local_flags);
        let e = set_rate_with_tcsets(port.as_raw_fd(), &name, 9601).unwrap_err();
        assert!(e.to_string().contains("not a standard rate"), "{e}");
    }

    #[test]
    fn a_missing_device_is_not_found_with_the_hint() {
        let e =
            open_with_tcsets(Path::new("/dev/rig-no-such-port"), 300, Framing::Uart).unwrap_err();
        assert!(matches!(e, TargetError::NotFound { .. }), "{e:?}");
    }
}
