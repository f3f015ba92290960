//! A module under test on pins (`rig module --wiring FILE`): the rig plays the meter on the six
//! pins of the module interface, through a meter-side wiring file
//! ([`crate::pins::meter_side`]).
//!
//! The software meter answers what the module sends: the module's requests are read from the
//! data-in tap's edges (kernel timestamps, decoded by the software UART) and the meter's answer
//! goes out on data out through the wiring's UART TX (soft 7E1 at the meter's rate, written when
//! each character is due) or bit-banged on a GPIO output. The meter's pulse outputs (KK
//! `pulse_out` ports) are driven from the meter model; the module's drive on the meter's inputs
//! (tariff, pulse in, max reset) is read as edges into an [`InputLog`].
//!
//! Times: the module's characters and inputs from edge timestamps; the meter's own characters as
//! the meter scheduled them (the UART driver starts them a little later; a data-out `tap` in the
//! wiring would show by how much). Not built: reading the INA228 of `[supply_monitor]` over I2C,
//! so `module.supply` skips on this bench.

use std::collections::VecDeque;
use std::time::Duration;

use super::inputs::InputLog;
use super::{Dir, LineChar, ModuleBench, WireLog};
use crate::line::{CharPeer, ScheduledChar};
use crate::meter::config::MeterSpec;
use crate::pins::meter_side::Side;
use crate::pins::wiring::{ChipInventory, Opto, Role, Wiring, WiringError};
use crate::pins::{
    BusConfig, InputSpec, OutputSpec, PinBus, PinEdge, Signal, EVENT_BUFFER, QUEUE_LATENCY_NS,
};
use crate::serial::{Framing, SerialOptions, SerialTarget};
use crate::sim::SoftMeter;
use crate::target::{DataLink, Port, TargetError};
use crate::time::Timestamp;
use crate::uart::{frame_edges, Edge, Level, RxChar, TxFrame, UartRx};

/// How often the serving loop looks at the lines when nothing is due, ms.
const POLL_MS: u64 = 20;

/// The lines of a meter-side wiring file: the data-in tap and the ports' meter inputs as
/// edge-capture inputs; data out's GPIO and the `pulse_out` ports as outputs (inactive: the pin
/// released). An output is active when the module pin is pulled low, so its rig-side active level
/// is high exactly when the optocoupler inverts.
pub fn meter_side_bus(w: &Wiring) -> BusConfig {
    let mut c = BusConfig {
        consumer: "meter-rig-module".into(),
        event_buffer: Some(EVENT_BUFFER),
        ..BusConfig::default()
    };
    if let Some(t) = w.data_in.as_ref().and_then(|d| d.tap.clone()) {
        c.inputs.push(InputSpec {
            signal: Signal::DataIn,
            gpio: t,
        });
    }
    if let Some(d) = &w.data_out {
        if let Some(g) = d.gpio.clone() {
            c.outputs.push(OutputSpec {
                signal: Signal::DataOut,
                gpio: g,
                active_high: d.opto.is_inverting(),
            });
        }
    }
    for port in Port::ALL {
        let Some(p) = w.port(port) else { continue };
        let (Some(g), false) = (p.gpio.clone(), p.role == Role::Unused) else {
            continue;
        };
        if p.role == Role::PulseOut {
            c.outputs.push(OutputSpec {
                signal: Signal::Port(port),
                gpio: g,
                active_high: p.opto.is_inverting(),
            });
        } else {
            c.inputs.push(InputSpec {
                signal: Signal::Port(port),
                gpio: g,
            });
        }
    }
    c
}

/// Checks that `w` is a meter-side file fit for `meter` (its KK code), with the lines checked
/// against `chips` (what this machine has, [`ChipInventory::scan`]), every problem at once.
///
/// # Errors
/// [`WiringError::WrongSide`] for a module-side file; [`crate::pins::wiring::Wiring::check`]'s
/// problems otherwise.
pub fn check_wiring(
    file: &str,
    w: &Wiring,
    meter: &MeterSpec,
    chips: &ChipInventory,
) -> Result<(), WiringError> {
    w.require_side(file, Side::Meter)?;
    w.check(file, Some(meter.io_code()), chips)?;
    Ok(())
}

/// The software meter served on pins.
pub struct PinsBench<B: PinBus> {
    bus: B,
    wiring: Wiring,
    tx: Option<SerialTarget>,
    baud: u32,
}

impl<B: PinBus> std::fmt::Debug for PinsBench<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PinsBench({})", self.bus.describe())
    }
}

impl<B: PinBus> PinsBench<B> {
    /// A bench on `bus` (opened with [`meter_side_bus`] of `wiring`, a checked meter-side
    /// file); opens data out's UART, if the wiring names one, at `baud`, soft 7E1.
    ///
    /// # Errors
    /// The UART's open errors.
    pub fn new(bus: B, wiring: Wiring, baud: u32) -> Result<Self, TargetError> {
        let tx = match wiring.data_out.as_ref().and_then(|d| d.uart.clone()) {
            Some(dev) => Some(SerialTarget::open(
                &dev,
                SerialOptions {
                    baud,
                    framing: Framing::Soft7e1,
                    kind: None,
                },
            )?),
            None => None,
        };
        Ok(PinsBench {
            bus,
            wiring,
            tx,
            baud,
        })
    }

    fn opto(&self, s: Signal) -> Opto {
        match s {
            Signal::DataIn => self.wiring.data_in.as_ref().map(|d| d.opto.clone()),
            Signal::Port(p) => self.wiring.port(p).map(|e| e.opto.clone()),
            _ => None,
        }
        .unwrap_or_default()
    }

    /// A rig-side edge as the level at the module pin, the optocoupler's delay taken off.
    fn to_pin(&self, e: &PinEdge) -> Edge {
        let o = self.opto(e.signal);
        let level = o.pin_level(e.level);
        Edge {
            t: Timestamp(e.t.as_ns().saturating_sub(o.delay_for(level).0)),
            level,
        }
    }

    /// The level at each port's pin now (released: high, for a port not read).
    fn port_levels(&mut self) -> Result<[Level; 2], TargetError> {
        let mut out = [Level::High; 2];
        for p in Port::ALL {
            let read = self.wiring.port(p).is_some_and(|e| {
                e.gpio.is_some() && e.role != Role::Unused && e.role != Role::PulseOut
            });
            if read {
                let rig = Level::from_high(self.bus.level(Signal::Port(p))?);
                out[p as usize] = self.opto(Signal::Port(p)).pin_level(rig);
            }
        }
        Ok(out)
    }

    /// Puts one of the meter's characters on data out: written to the UART when due, or
    /// bit-banged on data out's GPIO.
    fn transmit(&mut self, c: &ScheduledChar) -> Result<(), TargetError> {
        self.sleep_until(c.start)?;
        if let Some(tx) = self.tx.as_mut() {
            tx.send(&[c.byte])?;
            return Ok(());
        }
        let (edges, _) = frame_edges(c.byte, c.start, self.baud, 1, TxFrame::default());
        for e in edges {
            self.sleep_until(e.t)?;
            // active = the pin pulled low
            self.bus
                .set_output(Signal::DataOut, e.level == Level::Low)?;
        }
        Ok(())
    }

    fn sleep_until(&mut self, t: Timestamp) -> Result<(), TargetError> {
        let now = self.bus.now()?;
        if t > now {
            std::thread::sleep(t.saturating_since(now));
        }
        Ok(())
    }

    /// Drives the meter's pulse outputs as the meter model emitted them up to `now`.
    fn drive_outputs(
        &mut self,
        meter: &MeterSpec,
        m: &mut SoftMeter,
        now: Timestamp,
    ) -> Result<(), TargetError> {
        for p in Port::ALL {
            if !meter.io.role(p).is_output() {
                continue;
            }
            let mut edges = Vec::new();
            m.take_port_edges(p, now, &mut edges);
            if self
                .wiring
                .port(p)
                .is_some_and(|e| e.role == Role::PulseOut)
            {
                for e in edges {
                    self.bus
                        .set_output(Signal::Port(p), e.level == Level::Low)?;
                }
            }
        }
        Ok(())
    }
}

/// What one serving window saw.
struct Window {
    rx: UartRx,
    chars: Vec<LineChar>,
    inputs: InputLog,
    outgoing: VecDeque<ScheduledChar>,
}

impl Window {
    fn received(&mut self, got: Vec<RxChar>, m: &mut SoftMeter) {
        for c in got {
            self.chars.push(LineChar {
                dir: Dir::ToMeter,
                byte: c.byte,
                start: c.start,
                end: c.end,
                stop_ok: c.stop_ok,
            });
            m.receive(c.byte, c.end);
        }
    }
}

impl<B: PinBus> PinsBench<B> {
    /// Serves `meter` for `window_s` seconds: the conversation and the module's input drive.
    fn serve(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<(WireLog, InputLog), TargetError> {
        let start = self.bus.now()?;
        let until = start + Duration::from_secs_f64(window_s);
        let mut m = SoftMeter::new(meter.clone());
        m.advance(start);
        let mut w = Window {
            rx: UartRx::new(meter.baud),
            chars: Vec::new(),
            inputs: InputLog::idle(start, until),
            outgoing: VecDeque::new(),
        };
        w.inputs.initial = self.port_levels()?;
        loop {
            let now = self.bus.now()?;
            if now >= until {
                break;
            }
            let due = w.outgoing.front().map(|c| c.start);
            let poll = now + Duration::from_millis(POLL_MS);
            let deadline = [Some(until), due, Some(poll)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(poll);
            let mut got = Vec::new();
            for e in self.bus.read_edges(deadline)? {
                let pin = self.to_pin(&e);
                match e.signal {
                    Signal::DataIn => w.rx.push(pin, &mut got),
                    Signal::Port(p) => w.inputs.edges[p as usize].push(pin),
                    _ => {}
                }
            }
            let now = self.bus.now()?;
            w.rx.advance(
                Timestamp(now.as_ns().saturating_sub(QUEUE_LATENCY_NS)),
                &mut got,
            );
            w.received(got, &mut m);
            m.advance(now);
            self.drive_outputs(meter, &mut m, now)?;
            // what the meter has to say from now to the next poll
            w.outgoing
                .extend(m.take_transmit(now + Duration::from_millis(POLL_MS)));
            while let Some(c) = w.outgoing.front().copied().filter(|c| c.start <= now) {
                w.outgoing.pop_front();
                self.transmit(&c)?;
                w.chars.push(LineChar {
                    dir: Dir::FromMeter,
                    byte: c.byte,
                    start: c.start,
                    end: c.end,
                    stop_ok: true,
                });
            }
        }
        let _ = self.bus.set_output(Signal::DataOut, false);
        w.chars.sort_by_key(|c| c.start);
        let wire = WireLog {
            chars: w.chars,
            parity_observable: true,
            end: until,
        };
        Ok((wire, w.inputs))
    }
}

impl<B: PinBus> ModuleBench for PinsBench<B> {
    fn observe(&mut self, meter: &MeterSpec, window_s: f64) -> Result<WireLog, TargetError> {
        self.serve(meter, window_s).map(|(w, _)| w)
    }

    fn inputs(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
    ) -> Result<Option<InputLog>, TargetError> {
        let read = Port::ALL.into_iter().any(|p| {
            meter.io.role(p).is_input()
                && self
                    .wiring
                    .port(p)
                    .is_some_and(|e| e.gpio.is_some() && e.role != Role::Unused)
        });
        if !read {
            return Ok(None);
        }
        self.serve(meter, window_s).map(|(_, i)| Some(i))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_side_bus_reads_inputs_and_drives_data_out_and_pulse_outputs() {
        let w = Wiring::parse(
            "t",
            r#"
side = "meter"
backend = "gpio"
kk = 11
[data_out]
gpio = { chip = "c", line = 0 }
opto = { inverting = true }
[data_in]
tap = { chip = "c", line = 1 }
opto = { inverting = false }
[port1]
role = "tariff_in"
gpio = { chip = "c", line = 2 }
opto = { inverting = false }
[port2]
role = "pulse_out"
gpio = { chip = "c", line = 3 }
opto = { inverting = false }
"#,
        )
        .unwrap();
        let c = meter_side_bus(&w);
        let ins: Vec<Signal> = c.inputs.iter().map(|i| i.signal).collect();
        assert_eq!(ins, vec![Signal::DataIn, Signal::Port(Port::Port1)]);
        let outs: Vec<(Signal, bool)> = c
            .outputs
            .iter()
            .map(|o| (o.signal, o.active_high))
            .collect();
        assert_eq!(
            outs,
            vec![(Signal::DataOut, true), (Signal::Port(Port::Port2), false)]
        );
        let mut spec = MeterSpec::builtin_default();
        spec.io = crate::meter::io::IoCode::kk(11).unwrap().map;
        check_wiring("t", &w, &spec, &ChipInventory::default()).unwrap();
        // the module-side default file is refused with what rig module needs
        let pi = Wiring::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("wiring/raspberry-pi.toml"),
        )
        .unwrap();
        let e = check_wiring("pi", &pi, &spec, &ChipInventory::default()).unwrap_err();
        assert!(matches!(e, WiringError::WrongSide { .. }), "{e}");
    }
}
