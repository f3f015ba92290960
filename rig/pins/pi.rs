//! The `pi` backend: a Raspberry Pi through rppal, lines addressed by BCM number.
//!
//! Inputs use `InputPin::set_async_interrupt(Trigger::Both, None, …)`: rppal requests both-edge
//! events from the GPIO character device and hands each event (kernel timestamp, per-line
//! `seqno`, trigger) to a callback thread, which forwards it here over a channel. No debounce is
//! configured (NOTES §3). rppal numbers events per line only, so each line is its own sequence
//! stream for the gap check. Outputs go through the same [`OutputBank`] as the `gpio` backend
//! (rppal's `OutputPin` implements `embedded_hal::digital::OutputPin`); rppal's own
//! reset-on-drop is disabled so the bank's inactive level is what stays on the pin.
//!
//! rppal refuses to start on anything but a Raspberry Pi (it identifies the SoC), so this backend
//! cannot run under qemu/gpio-sim. Its hardware tests are behind the `pi-hardware` cargo feature
//! and `METER_RIG_PI_WIRING` (see `wiring/README.md`).

use std::collections::BTreeMap;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};

use rppal::gpio::{Gpio, InputPin, Trigger};

use super::safe::{Driven, OutputBank};
use super::{monotonic_now, BusConfig, PinBus, PinEdge, PinError, Signal};
use crate::time::Timestamp;
use crate::uart::Level;

/// A bus on the Pi's GPIO.
#[derive(Debug)]
pub struct PiBus {
    outputs: OutputBank<rppal::gpio::OutputPin>,
    inputs: BTreeMap<Signal, InputPin>,
    rx: Receiver<PinEdge>,
}

fn rppal_err(call: &str, e: rppal::gpio::Error) -> PinError {
    let hint = match e {
        rppal::gpio::Error::PermissionDenied(_) => {
            "; add the user to group `gpio` (see crate::pins docs)"
        }
        rppal::gpio::Error::UnknownModel => "; rppal only runs on a Raspberry Pi",
        _ => "",
    };
    PinError::Open {
        device: "rppal".into(),
        call: call.into(),
        detail: format!("{e}{hint}"),
    }
}

impl PiBus {
    /// Opens the BCM lines of `cfg`; outputs inactive from the start.
    pub fn open(cfg: &BusConfig) -> Result<Self, PinError> {
        let bcm = |g: &super::wiring::GpioRef| -> Result<u8, PinError> {
            g.bcm
                .filter(|&n| n < 64)
                .map(|n| n as u8)
                .ok_or_else(|| PinError::Wiring(format!("{g}: the pi backend needs `bcm = N`")))
        };
        super::check_clock()?;
        let gpio = Gpio::new().map_err(|e| rppal_err("Gpio::new", e))?;
        let mut outs = Vec::new();
        for o in &cfg.outputs {
            let n = bcm(&o.gpio)?;
            let pin = gpio
                .get(n)
                .map_err(|e| rppal_err(&format!("get BCM {n}"), e))?;
            let mut p = if o.active_high {
                pin.into_output_low()
            } else {
                pin.into_output_high()
            };
            p.set_reset_on_drop(false);
            outs.push((o.signal, Driven::new(p, o.active_high)));
        }
        let outputs = OutputBank::new("rppal", outs)?;
        let (tx, rx) = channel();
        let mut inputs = BTreeMap::new();
        for (stream, i) in cfg.inputs.iter().enumerate() {
            let n = bcm(&i.gpio)?;
            let mut p = gpio
                .get(n)
                .map_err(|e| rppal_err(&format!("get BCM {n}"), e))?
                .into_input();
            let tx = tx.clone();
            let signal = i.signal;
            p.set_async_interrupt(Trigger::Both, None, move |ev| {
                let _ = tx.send(PinEdge {
                    signal,
                    t: Timestamp(ev.timestamp.as_nanos() as u64),
                    level: Level::from_high(ev.trigger == Trigger::RisingEdge),
                    stream: stream as u16,
                    seqno: ev.seqno,
                    line_seqno: ev.seqno,
                });
            })
            .map_err(|e| rppal_err(&format!("set_async_interrupt BCM {n}"), e))?;
            inputs.insert(i.signal, p);
        }
        Ok(PiBus {
            outputs,
            inputs,
            rx,
        })
    }
}

impl PinBus for PiBus {
    fn describe(&self) -> String {
        "pi:rppal".into()
    }

    fn set_output(&mut self, signal: Signal, active: bool) -> Result<(), PinError> {
        self.outputs.set(signal, active)
    }

    fn read_edges(&mut self, deadline: Timestamp) -> Result<Vec<PinEdge>, PinError> {
        let mut out: Vec<PinEdge> = self.rx.try_iter().collect();
        if out.is_empty() {
            let left = deadline.saturating_since(monotonic_now());
            match self.rx.recv_timeout(left) {
                Ok(e) => {
                    out.push(e);
                    out.extend(self.rx.try_iter());
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(PinError::Io {
                        device: "rppal".into(),
                        call: "interrupt callback channel".into(),
                        detail: "all interrupt threads stopped".into(),
                    })
                }
            }
        }
        out.sort_by_key(|e| e.t);
        Ok(out)
    }

    fn now(&self) -> Result<Timestamp, PinError> {
        Ok(monotonic_now())
    }

    fn level(&mut self, signal: Signal) -> Result<bool, PinError> {
        self.inputs
            .get(&signal)
            .map(|p| p.is_high())
            .ok_or_else(|| PinError::Wiring(format!("{signal} is not an input of this bus")))
    }

    fn all_inactive(&mut self) -> Result<(), PinError> {
        self.outputs.all_inactive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pi_bus_refuses_cleanly_off_a_pi() {
        // On a Pi this opens nothing (empty config) and succeeds; elsewhere rppal says why not.
        match PiBus::open(&BusConfig::default()) {
            Ok(_) => println!("pi_bus_refuses_cleanly_off_a_pi: running on a Pi, opened empty bus"),
            Err(e) => assert!(
                matches!(&e, PinError::Open { device, call, .. } if device == "rppal" && call == "Gpio::new"),
                "{e}"
            ),
        }
    }
}
