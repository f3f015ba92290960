//! Safe state: every rig output back at its inactive level whenever the rig stops driving it.
//!
//! An [`OutputBank`] owns the outputs of one bus (generic over `embedded_hal::digital::OutputPin`,
//! so gpiocdev lines and rppal pins share it) and registers a "drive everything inactive" action
//! in a process-wide registry. The action runs:
//! - on [`Drop`] of the bank (normal exit, error return, and panic with unwinding),
//! - from a signal thread on SIGINT, SIGTERM and SIGHUP ([`install_signal_handler`]), which then
//!   exits with status 128 + signal number.
//!
//! After driving the inactive level the action holds it for [`RELEASE_HOLD`] before the line is
//! released: the meter's inputs are filtered by 1 MΩ / 10 nF (τ = 10 ms), so the meter must see the
//! inactive level settle before the rig's pin floats (a released Pi pin becomes an input with
//! whatever bias it had, which may leave an optocoupler LED half on).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Once};
use std::time::Duration;

use embedded_hal::digital::OutputPin;

use super::{PinError, Signal};

/// How long the inactive level is held before lines are released.
pub const RELEASE_HOLD: Duration = Duration::from_millis(20);

type Action = Arc<dyn Fn() + Send + Sync>;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);
static REGISTRY: Mutex<BTreeMap<u64, Action>> = Mutex::new(BTreeMap::new());
static SIGNALS: Once = Once::new();
static GRACEFUL: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
static SEEN: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// What the process does last when a signal stops it at once (after the safe state, before the
/// exit): `rig run` closes its records as `stopped` and says so.
type ExitHook = Box<dyn Fn(&'static str) + Send + Sync>;
static ON_FORCED_EXIT: Mutex<Option<ExitHook>> = Mutex::new(None);

/// Sets what runs when a signal stops the process at once, after every output is in safe state
/// and before the exit; it gets the signal's name (`SIGINT`, `SIGTERM`, `SIGHUP`). One hook per
/// process; a second call replaces the first.
pub fn on_forced_exit(hook: impl Fn(&'static str) + Send + Sync + 'static) {
    *ON_FORCED_EXIT.lock().unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
}

fn signal_name(sig: i32) -> &'static str {
    match sig {
        signal_hook::consts::SIGINT => "SIGINT",
        signal_hook::consts::SIGTERM => "SIGTERM",
        _ => "SIGHUP",
    }
}

/// Hands the first SIGINT/SIGTERM/SIGHUP to the caller instead of exiting at once: `rig serve`
/// finishes the row or case in hand and releases its pins itself. A second signal still puts
/// every output in safe state and exits at once (an operator who insists).
pub fn set_graceful_signals(on: bool) {
    GRACEFUL.store(on, Ordering::SeqCst);
}

fn register(a: Action) -> u64 {
    let id = NEXT_ID.fetch_add(1, Ordering::Relaxed);
    REGISTRY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .insert(id, a);
    id
}

fn unregister(id: u64) {
    REGISTRY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .remove(&id);
}

/// Runs every registered safe-state action (what the signal thread does before exiting).
pub fn run_all() {
    let actions: Vec<Action> = REGISTRY
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .values()
        .cloned()
        .collect();
    for a in actions {
        a();
    }
}

/// Starts (once per process) the threads that put outputs in safe state on SIGINT, SIGTERM and
/// SIGHUP, then exit with 128 + signal. Called by every bus at open.
///
/// Each signal writes to its own pipe (self-pipe, `signal_hook::low_level::pipe`; no UNIX
/// sockets needed, so it also works in the minimal CI kernel); a thread per signal blocks on the
/// read end and does the work outside signal context.
pub fn install_signal_handler() -> Result<(), PinError> {
    let mut result = Ok(());
    SIGNALS.call_once(|| {
        use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
        for sig in [SIGINT, SIGTERM, SIGHUP] {
            if let Err(e) = watch(sig) {
                result = Err(e);
                return;
            }
        }
    });
    result
}

fn watch(sig: i32) -> Result<(), PinError> {
    use std::io::Read;
    let err = |call: &str, detail: String| PinError::Io {
        device: "process".into(),
        call: call.into(),
        detail,
    };
    let (r, w) = rustix::pipe::pipe().map_err(|e| err("pipe", e.to_string()))?;
    signal_hook::low_level::pipe::register(sig, w)
        .map_err(|e| err(&format!("register signal {sig}"), e.to_string()))?;
    let mut r = std::fs::File::from(r);
    std::thread::Builder::new()
        .name(format!("pins-safe-state-{sig}"))
        .spawn(move || {
            let mut b = [0u8; 1];
            while r.read(&mut b).is_ok() {
                // counted across the three signals: SIGINT then SIGTERM is a second signal too
                let seen = SEEN.fetch_add(1, Ordering::SeqCst) + 1;
                if GRACEFUL.load(Ordering::SeqCst) && seen == 1 {
                    continue;
                }
                run_all();
                if let Some(hook) = ON_FORCED_EXIT
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .as_ref()
                {
                    hook(signal_name(sig));
                }
                std::process::exit(128 + sig);
            }
        })
        .map_err(|e| err("spawn safe-state signal thread", e.to_string()))?;
    Ok(())
}

/// One output with its active level.
#[derive(Debug)]
pub struct Driven<P> {
    pin: P,
    active_high: bool,
}

impl<P: OutputPin> Driven<P> {
    /// Wraps a pin; does not touch it.
    pub fn new(pin: P, active_high: bool) -> Self {
        Driven { pin, active_high }
    }
    /// Drives active or inactive.
    pub fn set(&mut self, active: bool) -> Result<(), P::Error> {
        if active == self.active_high {
            self.pin.set_high()
        } else {
            self.pin.set_low()
        }
    }
}

type Shared<P> = Arc<Mutex<Vec<(Signal, Driven<P>)>>>;

/// The outputs of one bus, registered for safe state.
#[derive(Debug)]
pub struct OutputBank<P: OutputPin + Send + 'static> {
    outs: Shared<P>,
    id: u64,
    device: String,
}

fn drive_inactive<P: OutputPin>(outs: &Mutex<Vec<(Signal, Driven<P>)>>) -> Vec<String> {
    let mut failed = Vec::new();
    let mut g = outs.lock().unwrap_or_else(|p| p.into_inner());
    for (s, d) in g.iter_mut() {
        if let Err(e) = d.set(false) {
            failed.push(format!("{s}: {e:?}"));
        }
    }
    failed
}

impl<P: OutputPin + Send + 'static> OutputBank<P> {
    /// Takes the outputs, drives them inactive and registers the safe-state action.
    pub fn new(device: &str, outs: Vec<(Signal, Driven<P>)>) -> Result<Self, PinError> {
        install_signal_handler()?;
        let outs: Shared<P> = Arc::new(Mutex::new(outs));
        let failed = drive_inactive(&outs);
        if !failed.is_empty() {
            return Err(PinError::Io {
                device: device.into(),
                call: "set inactive at open".into(),
                detail: failed.join(", "),
            });
        }
        let o2 = outs.clone();
        let id = register(Arc::new(move || {
            let _ = drive_inactive(&o2);
            std::thread::sleep(RELEASE_HOLD);
        }));
        Ok(OutputBank {
            outs,
            id,
            device: device.into(),
        })
    }

    /// Drives `signal` active or inactive.
    pub fn set(&self, signal: Signal, active: bool) -> Result<(), PinError> {
        let mut g = self.outs.lock().unwrap_or_else(|p| p.into_inner());
        let (_, d) = g
            .iter_mut()
            .find(|(s, _)| *s == signal)
            .ok_or(PinError::NotAnOutput(signal))?;
        d.set(active).map_err(|e| PinError::Io {
            device: self.device.clone(),
            call: format!(
                "set {signal} {}",
                if active { "active" } else { "inactive" }
            ),
            detail: format!("{e:?}"),
        })
    }

    /// Drives every output inactive.
    pub fn all_inactive(&self) -> Result<(), PinError> {
        let failed = drive_inactive(&self.outs);
        if failed.is_empty() {
            Ok(())
        } else {
            Err(PinError::Io {
                device: self.device.clone(),
                call: "set all inactive".into(),
                detail: failed.join(", "),
            })
        }
    }

    /// The signals of this bank.
    pub fn signals(&self) -> Vec<Signal> {
        let g = self.outs.lock().unwrap_or_else(|p| p.into_inner());
        g.iter().map(|(s, _)| *s).collect()
    }
}

impl<P: OutputPin + Send + 'static> Drop for OutputBank<P> {
    fn drop(&mut self) {
        unregister(self.id);
        let _ = drive_inactive(&self.outs);
        std::thread::sleep(RELEASE_HOLD);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::convert::Infallible;

    /// A pin that records its level in a shared cell.
    #[derive(Debug, Clone)]
    struct Probe(Arc<Mutex<Vec<bool>>>);

    impl embedded_hal::digital::ErrorType for Probe {
        type Error = Infallible;
    }
    impl OutputPin for Probe {
        fn set_low(&mut self) -> Result<(), Infallible> {
            self.0.lock().unwrap().push(false);
            Ok(())
        }
        fn set_high(&mut self) -> Result<(), Infallible> {
            self.0.lock().unwrap().push(true);
            Ok(())
        }
    }

    /// Levels with repeats merged (another test's `run_all` may add an extra inactive write).
    fn seen(levels: &Arc<Mutex<Vec<bool>>>) -> Vec<bool> {
        let mut v = levels.lock().unwrap().clone();
        v.dedup();
        v
    }

    fn bank(active_high: bool) -> (OutputBank<Probe>, Arc<Mutex<Vec<bool>>>) {
        let levels = Arc::new(Mutex::new(Vec::new()));
        let b = OutputBank::new(
            "probe",
            vec![(
                Signal::Port(crate::target::Port::Port1),
                Driven::new(Probe(levels.clone()), active_high),
            )],
        )
        .unwrap();
        (b, levels)
    }

    #[test]
    fn inactive_at_open_and_on_drop() {
        let (b, levels) = bank(false);
        b.set(Signal::Port(crate::target::Port::Port1), true)
            .unwrap();
        assert_eq!(
            b.set(Signal::DataOut, true),
            Err(PinError::NotAnOutput(Signal::DataOut))
        );
        drop(b);
        // open: inactive (high, since active is low), active (low), drop: inactive (high)
        assert_eq!(seen(&levels), vec![true, false, true]);
    }

    #[test]
    fn inactive_after_panic() {
        let (b, levels) = bank(true);
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
            b.set(Signal::Port(crate::target::Port::Port1), true)
                .unwrap();
            panic!("test panic while driving");
        }));
        assert!(r.is_err());
        assert_eq!(seen(&levels), vec![false, true, false]);
    }

    #[test]
    fn run_all_drives_registered_banks_inactive() {
        let (b, levels) = bank(true);
        b.set(Signal::Port(crate::target::Port::Port1), true)
            .unwrap();
        run_all();
        assert_eq!(levels.lock().unwrap().last(), Some(&false));
        drop(b);
    }
}
