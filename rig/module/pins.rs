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
//! wiring would show by how much). With a current monitor ([`super::monitor`], the wiring's
//! `[supply_monitor]`) the supply is read once a second while the meter is served, and its ALERT
//! line is timed as an edge, for `module.supply`.

use std::collections::VecDeque;
use std::time::Duration;

use super::inputs::InputLog;
use super::monitor::CurrentMonitor;
use super::supply::SupplyLog;
use super::{Dir, LineChar, ModuleBench, WireLog};
use crate::line::{CharPeer, ScheduledChar};
use crate::meter::config::MeterSpec;
use crate::pins::meter_side::Side;
use crate::pins::wiring::{ChipInventory, Opto, Role, Wiring, WiringError};
use crate::pins::{
    BusConfig, InputSpec, OutputSpec, PinBus, PinEdge, Signal, EVENT_BUFFER, QUEUE_LATENCY_NS,
};
use crate::serial::{Framing, SerialOptions, SerialTarget, ShutdownHandle};
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
    if let Some(g) = w.supply_monitor.as_ref().and_then(|m| m.alert.clone()) {
        c.inputs.push(InputSpec {
            signal: Signal::SupplyAlert,
            gpio: g,
        });
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
    monitor: Option<Box<dyn CurrentMonitor>>,
    /// The meter served last (the supply is watched while serving it).
    last_meter: Option<MeterSpec>,
    stop: ShutdownHandle,
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
            monitor: None,
            last_meter: None,
            stop: ShutdownHandle::default(),
        })
    }

    /// A handle that ends the window in hand (within a poll, 20 ms) and every later one: SIGINT,
    /// SIGTERM.
    pub fn shutdown_handle(&self) -> ShutdownHandle {
        self.stop.clone()
    }

    /// The same, with `monitor` in pin 6's supply (its ALERT on the wiring's
    /// `supply_monitor.alert` line): `module.supply` is judged from it.
    pub fn with_monitor(mut self, monitor: Box<dyn CurrentMonitor>) -> Self {
        self.monitor = Some(monitor);
        self
    }

    fn opto(&self, s: Signal) -> Opto {
        match s {
            Signal::DataIn => self.wiring.data_in.as_ref().map(|d| d.opto.clone()),
            Signal::Port(p) => self.wiring.port(p).map(|e| e.opto.clone()),
            Signal::SupplyAlert => self.wiring.supply_monitor.as_ref().map(|m| m.opto.clone()),
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
    /// The supply's charge readings and ALERT edges, when asked for.
    supply: Option<SupplyLog>,
    /// When the charge is read next.
    next_charge: Timestamp,
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
    /// Serves `meter` for `window_s` seconds: the conversation, the module's input drive and,
    /// with `supply`, the supply monitor's readings (once a second) and ALERT edges.
    fn serve(
        &mut self,
        meter: &MeterSpec,
        window_s: f64,
        supply: bool,
    ) -> Result<Window, TargetError> {
        self.last_meter = Some(meter.clone());
        let start = self.bus.now()?;
        let until = start + Duration::from_secs_f64(window_s);
        let mut m = SoftMeter::new(meter.clone());
        m.advance(start);
        let mut w = Window {
            rx: UartRx::new(meter.baud),
            chars: Vec::new(),
            inputs: InputLog::idle(start, until),
            outgoing: VecDeque::new(),
            supply: None,
            next_charge: start,
        };
        w.inputs.initial = self.port_levels()?;
        if let (true, Some(mon)) = (supply, self.monitor.as_mut()) {
            mon.reset_charge()?;
            w.supply = Some(SupplyLog {
                alert_limit_ma: mon.alert_limit_ma(),
                ..SupplyLog::default()
            });
        }
        loop {
            let now = self.bus.now()?;
            if now >= until {
                break;
            }
            if self.stop.is_stopped() {
                let _ = self.bus.set_output(Signal::DataOut, false);
                return Err(TargetError::Stopped {
                    reason: "stopped by a signal while serving the meter on pins".into(),
                });
            }
            self.step(meter, &mut m, &mut w, now, until)?;
        }
        let _ = self.bus.set_output(Signal::DataOut, false);
        w.chars.sort_by_key(|c| c.start);
        Ok(w)
    }

    /// One turn of the serving loop at `now`: edges in, the meter's characters and pulses out,
    /// a charge reading when one is due.
    fn step(
        &mut self,
        meter: &MeterSpec,
        m: &mut SoftMeter,
        w: &mut Window,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<(), TargetError> {
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
            match (e.signal, w.supply.as_mut()) {
                (Signal::DataIn, _) => w.rx.push(pin, &mut got),
                (Signal::Port(p), _) => w.inputs.edges[p as usize].push(pin),
                // ALERT is active low at the chip
                (Signal::SupplyAlert, Some(s)) => s.alerts.push((pin.t, pin.level == Level::Low)),
                _ => {}
            }
        }
        let now = self.bus.now()?;
        w.rx.advance(
            Timestamp(now.as_ns().saturating_sub(QUEUE_LATENCY_NS)),
            &mut got,
        );
        w.received(got, m);
        m.advance(now);
        self.drive_outputs(meter, m, now)?;
        if let (Some(s), Some(mon)) = (w.supply.as_mut(), self.monitor.as_mut()) {
            if now >= w.next_charge {
                s.charge.push((now, mon.charge_c()?));
                w.next_charge = w.next_charge + Duration::from_secs(1);
            }
        }
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
        Ok(())
    }
}

impl<B: PinBus> ModuleBench for PinsBench<B> {
    fn observe(&mut self, meter: &MeterSpec, window_s: f64) -> Result<WireLog, TargetError> {
        let w = self.serve(meter, window_s, false)?;
        Ok(WireLog {
            chars: w.chars,
            parity_observable: true,
            end: w.inputs.end,
        })
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
        self.serve(meter, window_s, false).map(|w| Some(w.inputs))
    }

    fn supply(&mut self, window_s: u64) -> Result<Option<SupplyLog>, TargetError> {
        if self.monitor.is_none() {
            return Ok(None);
        }
        // the module keeps its meter while its supply is watched: the meter file's, as served
        // last, or the built-in one
        let meter = self
            .last_meter
            .clone()
            .unwrap_or_else(MeterSpec::builtin_default);
        self.serve(&meter, window_s as f64, true).map(|w| w.supply)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pins::{monotonic_now, PinError};

    /// A bus on the monotonic clock that plays back `edges` (offsets from its creation, ms, and
    /// rig-side levels) as they fall due.
    #[derive(Debug)]
    struct Playback {
        t0: Timestamp,
        edges: Vec<(Signal, u64, bool)>,
        seqno: u32,
    }

    impl PinBus for Playback {
        fn describe(&self) -> String {
            "playback".into()
        }
        fn set_output(&mut self, _: Signal, _: bool) -> Result<(), PinError> {
            Ok(())
        }
        fn read_edges(&mut self, deadline: Timestamp) -> Result<Vec<PinEdge>, PinError> {
            let now = monotonic_now();
            if deadline > now {
                std::thread::sleep(deadline.saturating_since(now));
            }
            let t0 = self.t0;
            let (due, later): (Vec<_>, Vec<_>) = self
                .edges
                .iter()
                .partition(|(_, ms, _)| t0 + Duration::from_millis(*ms) <= deadline);
            self.edges = later;
            Ok(due
                .into_iter()
                .map(|(signal, ms, high)| {
                    self.seqno += 1;
                    PinEdge {
                        signal,
                        t: t0 + Duration::from_millis(ms),
                        level: Level::from_high(high),
                        stream: 0,
                        seqno: self.seqno,
                        line_seqno: self.seqno,
                    }
                })
                .collect())
        }
        fn now(&self) -> Result<Timestamp, PinError> {
            Ok(monotonic_now())
        }
        fn level(&mut self, _: Signal) -> Result<bool, PinError> {
            Ok(true)
        }
        fn all_inactive(&mut self) -> Result<(), PinError> {
            Ok(())
        }
    }

    /// 0.5 mA from the start: the charge grows by 0.5 mC a second.
    struct Steady(Timestamp);

    impl CurrentMonitor for Steady {
        fn reset_charge(&mut self) -> Result<(), TargetError> {
            self.0 = monotonic_now();
            Ok(())
        }
        fn charge_c(&mut self) -> Result<f64, TargetError> {
            Ok(monotonic_now().diff_ms(self.0) / 1e3 * 0.5e-3)
        }
        fn alert_limit_ma(&self) -> f64 {
            5.0
        }
    }

    const KK13: &str = r#"
side = "meter"
backend = "gpio"
kk = 13
[data_out]
gpio = { chip = "c", line = 0 }
opto = { inverting = false }
[data_in]
tap = { chip = "c", line = 1 }
opto = { inverting = false }
[port1]
role = "pulse_in"
gpio = { chip = "c", line = 2 }
opto = { inverting = false }
[port2]
role = "tariff_in"
gpio = { chip = "c", line = 3 }
opto = { inverting = true }
[supply_monitor]
chip = "ina228"
i2c = "/dev/i2c-1"
shunt_ohm = 0.1
alert = { chip = "c", line = 4 }
opto = { inverting = false }
"#;

    #[test]
    fn the_pins_bench_reads_the_supply_once_a_second_and_alert_edges_while_serving() {
        let w = Wiring::parse("t", KK13).unwrap();
        let bus = Playback {
            t0: monotonic_now(),
            // ALERT low (asserted) 300–320 ms; port 2 through an inverting opto: the rig reads
            // high when the module pulls the pin low (tariff 2) at 400 ms
            edges: vec![
                (Signal::SupplyAlert, 300, false),
                (Signal::SupplyAlert, 320, true),
                (Signal::Port(Port::Port2), 400, true),
            ],
            seqno: 0,
        };
        let mut b = PinsBench::new(bus, w, 300)
            .unwrap()
            .with_monitor(Box::new(Steady(monotonic_now())));
        let log = b.supply(2).unwrap().expect("a monitor");
        assert!((2..=3).contains(&log.charge.len()), "{:?}", log.charge);
        let (t, q) = log.charge[1];
        assert!(
            (q / t.diff_ms(log.charge[0].0) * 1e3 - 0.5e-3).abs() < 0.05e-3,
            "{q}"
        );
        let alerts: Vec<bool> = log.alerts.iter().map(|a| a.1).collect();
        assert_eq!(alerts, vec![true, false]);
        let ms = log.alerts[1].0.diff_ms(log.alerts[0].0);
        assert!((ms - 20.0).abs() < 1e-6, "{ms}");
        assert_eq!(log.alert_limit_ma, 5.0);
        // without a monitor the bench says it has none
        let w = Wiring::parse("t", KK13).unwrap();
        let bus = Playback {
            t0: monotonic_now(),
            edges: vec![],
            seqno: 0,
        };
        assert!(PinsBench::new(bus, w, 300)
            .unwrap()
            .supply(1)
            .unwrap()
            .is_none());
        // a stop ends the window in hand
        let w = Wiring::parse("t", KK13).unwrap();
        let bus = Playback {
            t0: monotonic_now(),
            edges: vec![],
            seqno: 0,
        };
        let mut b = PinsBench::new(bus, w, 300).unwrap();
        b.shutdown_handle().stop();
        let spec = MeterSpec::builtin_default();
        assert!(matches!(
            b.observe(&spec, 60.0),
            Err(TargetError::Stopped { .. })
        ));
    }

    #[test]
    fn the_pins_bench_reads_the_tariff_input_through_its_opto() {
        let w = Wiring::parse("t", KK13).unwrap();
        let bus = Playback {
            t0: monotonic_now(),
            edges: vec![(Signal::Port(Port::Port2), 100, false)],
            seqno: 0,
        };
        let mut b = PinsBench::new(bus, w, 300).unwrap();
        let mut spec = MeterSpec::builtin_default();
        spec.io = crate::meter::io::IoCode::kk(13).unwrap().map;
        let log = b.inputs(&spec, 0.3).unwrap().expect("pins are read");
        let t = crate::module::inputs::read_tariffs(&spec.io.tariff, &log).unwrap();
        // the rig's line reads high at the start and the opto inverts: the pin is low, tariff 2;
        // at 100 ms the rig's line goes low, the pin is released: tariff 1
        assert_eq!(t.sequence(), vec![2, 1]);
    }

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
