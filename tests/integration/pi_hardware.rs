//! Raspberry Pi hardware tests (cargo feature `pi-hardware`, and `METER_RIG_PI_WIRING=FILE`).
//!
//! Needs a Pi wired as the file says, with the loopbacks of `wiring/README.md` in place of the
//! meter. Without the variable each test prints `SKIPPED pi_hardware::…` and checks nothing.

use std::time::Duration;

use meter_rig::pins::calibrate::calibrate_loopback;
use meter_rig::pins::wiring::{BackendKind, ChipInventory, Wiring};
use meter_rig::pins::{BusConfig, PinBus};

fn wiring(test: &str) -> Option<(String, Wiring)> {
    let Ok(file) = std::env::var("METER_RIG_PI_WIRING") else {
        println!("SKIPPED pi_hardware::{test}: METER_RIG_PI_WIRING not set");
        return None;
    };
    let w = Wiring::load(std::path::Path::new(&file)).expect("load wiring");
    w.check(&file, None, &ChipInventory::scan())
        .expect("wiring check");
    assert_eq!(w.backend, BackendKind::Pi, "{file}: backend must be \"pi\"");
    Some((file, w))
}

#[test]
fn pi_bus_opens_with_outputs_inactive_and_releases() {
    let Some((_, w)) = wiring("pi_bus_opens_with_outputs_inactive_and_releases") else {
        return;
    };
    let cfg = BusConfig::from_wiring(&w);
    let mut bus = meter_rig::pins::pi::PiBus::open(&cfg).expect("open pi bus");
    for o in &cfg.outputs {
        bus.set_output(o.signal, true).unwrap();
        bus.set_output(o.signal, false).unwrap();
    }
    bus.all_inactive().unwrap();
    let now = bus.now().unwrap();
    assert!(now.as_ns() > 0);
}

#[test]
fn pi_loopbacks_calibrate() {
    let Some((_, w)) = wiring("pi_loopbacks_calibrate") else {
        return;
    };
    assert!(
        !w.loopback.is_empty(),
        "the wiring file declares no loopbacks"
    );
    for i in 0..w.loopback.len() {
        let r = calibrate_loopback(&w, i, 20, Duration::from_millis(5)).expect("calibrate");
        println!("loopback[{i}] ({}): {r}", w.loopback[i].entry);
        assert_eq!((r.rise.n, r.fall.n), (20, 20));
        // an optocoupler delay is positive and far below the 5 ms hold
        assert!(r.rise.median_ns > 0 && r.rise.median_ns < 5_000_000);
        assert!(r.fall.median_ns > 0 && r.fall.median_ns < 5_000_000);
    }
}
