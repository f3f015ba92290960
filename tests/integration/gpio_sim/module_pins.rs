//! `rig module` on pins against gpio-sim: the rig plays a KK 13 meter (pulse in on port 1,
//! 2-tariff on port 2) on the simulated chip; this test plays the module by driving line pulls.
//! Lines: 4 port 1 (read), 5 data in tap (read), 6 data out (driven), 7 port 2 (read).

use std::time::Duration;

use super::{monotonic_now, with_meter, Sim};
use meter_rig::meter::config::MeterSpec;
use meter_rig::meter::io::{IoCode, PortRole};
use meter_rig::module::inputs::{read_pulses, read_tariffs};
use meter_rig::module::pins::{meter_side_bus, PinsBench};
use meter_rig::module::{Dir, ModuleBench};
use meter_rig::pins::gpio::GpioBus;
use meter_rig::pins::wiring::Wiring;
use meter_rig::target::Port;
use meter_rig::uart::{frame_edges, TxFrame};

fn meter(baud: u32) -> MeterSpec {
    let mut s = MeterSpec::builtin_default();
    s.io = IoCode::kk(13).unwrap().map;
    s.baud = baud;
    s
}

fn bench(sim: &Sim, baud: u32) -> PinsBench<GpioBus> {
    let c = &sim.chip;
    let w = Wiring::parse(
        "gpio-sim-meter-side",
        &format!(
            r#"
side = "meter"
backend = "gpio"
kk = 13
[data_out]
gpio = {{ chip = "{c}", line = 6 }}
opto = {{ inverting = false }}
[data_in]
tap = {{ chip = "{c}", line = 5 }}
opto = {{ inverting = false }}
[port1]
role = "pulse_in"
gpio = {{ chip = "{c}", line = 4 }}
opto = {{ inverting = false }}
[port2]
role = "tariff_in"
gpio = {{ chip = "{c}", line = 7 }}
opto = {{ inverting = false }}
"#
        ),
    )
    .unwrap();
    let spec = meter(baud);
    meter_rig::module::pins::check_wiring(
        "gpio-sim-meter-side",
        &w,
        &spec,
        &meter_rig::pins::wiring::ChipInventory::scan(),
    )
    .unwrap();
    let bus = GpioBus::open(&meter_side_bus(&w)).unwrap();
    PinsBench::new(bus, w, baud).unwrap()
}

#[test]
#[cfg_attr(
    not(feature = "gpio-sim"),
    ignore = "needs the kernel's gpio-sim in the qemu guest: bash .ci/gpio-sim/run.sh (builds with --features gpio-sim)"
)]
fn the_meter_on_pins_reads_the_modules_tariff_level_and_pulses_from_edges() {
    let Some(sim) = Sim::get(
        "module_pins::the_meter_on_pins_reads_the_modules_tariff_level_and_pulses_from_edges",
    ) else {
        return;
    };
    for line in [4, 5, 7] {
        sim.pull(line, true);
    }
    let mut b = bench(&sim, 300);
    let spec = meter(300);
    let log = with_meter(
        &sim,
        |sim| {
            std::thread::sleep(Duration::from_millis(200));
            // tariff 2: port 2 pulled low and held
            sim.pull(7, false);
            // five pulses of 30 ms with 30 ms gaps into the pulse input
            for _ in 0..5 {
                sim.pull(4, false);
                std::thread::sleep(Duration::from_millis(30));
                sim.pull(4, true);
                std::thread::sleep(Duration::from_millis(30));
            }
        },
        || b.inputs(&spec, 1.5).unwrap().expect("pins are read"),
    );
    let tariffs = read_tariffs(&spec.io.tariff, &log).unwrap();
    assert_eq!(tariffs.sequence(), vec![1, 2], "{log:?}");
    let p = read_pulses(Port::Port1, PortRole::PulseIn, &log);
    assert_eq!(p.count, 5, "{log:?}");
    // widths from kernel timestamps: at least the 30 ms slept, plus the emulator's overshoot
    for w in &p.widths_ms {
        assert!((29.0..80.0).contains(w), "{:?}", p.widths_ms);
    }
    println!(
        "module_pins: tariff 2 from {:.1} ms, pulse widths {:?} ms",
        tariffs.spans[1].from.diff_ms(log.start),
        p.widths_ms
    );
    sim.pull(7, true);
}

#[test]
#[cfg_attr(
    not(feature = "gpio-sim"),
    ignore = "needs the kernel's gpio-sim in the qemu guest: bash .ci/gpio-sim/run.sh (builds with --features gpio-sim)"
)]
fn the_meter_on_pins_decodes_the_modules_request_from_the_data_in_tap_and_answers() {
    let Some(sim) = Sim::get(
        "module_pins::the_meter_on_pins_decodes_the_modules_request_from_the_data_in_tap_and_answers",
    ) else {
        return;
    };
    // 50 baud (20 ms bits): sleep overshoot under emulation cannot corrupt a bit
    const BAUD: u32 = 50;
    sim.pull(5, true);
    let mut b = bench(&sim, BAUD);
    let spec = meter(BAUD);
    let wire = with_meter(
        &sim,
        |sim| {
            let mut start = monotonic_now() + Duration::from_millis(200);
            for &c in b"/?!\r\n" {
                let byte = meter_rig::iec62056::parity::add_even(c);
                let (edges, end) = frame_edges(byte, start, BAUD, 1, TxFrame::default());
                for e in edges {
                    let now = monotonic_now();
                    if e.t > now {
                        std::thread::sleep(e.t.saturating_since(now));
                    }
                    sim.pull(5, e.level.is_high());
                }
                start = end;
            }
        },
        || b.observe(&spec, 3.0).unwrap(),
    );
    let reqs = wire.requests();
    assert_eq!(reqs.len(), 1, "{:?}", wire.chars);
    assert_eq!(reqs[0].text(), b"/?!\r\n");
    // the meter answered on data out: its first character within the 351's 20–500 ms
    let first = wire
        .chars
        .iter()
        .find(|c| c.dir == Dir::FromMeter)
        .expect("an answer");
    assert_eq!(first.byte & 0x7F, b'/');
    let reaction = first.start.diff_ms(reqs[0].end());
    assert!((20.0..=500.0).contains(&reaction), "{reaction} ms");
    println!("module_pins: request decoded from edges, answer at {reaction:.1} ms");
}
