//! Fuzz target: arbitrary text as a wiring file. Every input either parses or gives a
//! `Malformed` error with a line and column inside the text; a file that parses is checked
//! against no code, every KK code 00–19 and every Z3 code 00–16, on a machine without GPIO and on
//! one with a small chip. Whenever the check accepts the ports for a code, the software meter
//! configured with that code must give each used port the same role (one source of roles), the
//! bus configuration the pin target would open has one line per driven or captured port, and the
//! meter answers a short readout in virtual time.
#![no_main]

use libfuzzer_sys::fuzz_target;
use meter_rig::meter::config::MeterSpec;
use meter_rig::meter::io::IoCode;
use meter_rig::meter::profile::IoTable;
use meter_rig::pins::wiring::{ChipInventory, Role, Wiring, WiringError};
use meter_rig::pins::BusConfig;
use meter_rig::sim::SimTarget;
use meter_rig::suite::{Ctx, RunOptions};
use meter_rig::target::{Port, Target};

fn meter_for(code: &IoCode) -> MeterSpec {
    let (profile, key) = match code.table {
        IoTable::Kk351 => ("351-combi", "kk"),
        IoTable::Z3 => ("omnipower-3ph", "z3"),
    };
    let text = format!(
        "profile = \"{profile}\"\n[config]\n{key} = {}\n[load]\nactive_w = 3000.0\n",
        code.map.code
    );
    MeterSpec::from_toml(&text, "fuzz-meter.toml", None).expect("a meter for every table code")
}

fn short_readout(spec: &MeterSpec) {
    let mut target = SimTarget::new(spec.clone());
    let caps = target.capabilities();
    let opts = RunOptions::for_target(&caps);
    let mut ctx = Ctx {
        target: &mut target,
        spec,
        opts: &opts,
        caps: caps.clone(),
    };
    let r = ctx.readout().expect("the software meter answers");
    assert!(r.strict.valid, "a healthy meter's readout is valid");
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let w = match Wiring::parse("fuzz.toml", text) {
        Ok(w) => w,
        Err(WiringError::Malformed {
            line,
            column,
            detail,
            ..
        }) => {
            assert!(!detail.is_empty());
            assert!(line <= text.lines().count() + 1 && (line == 0) == (column == 0));
            return;
        }
        Err(e) => panic!("parse gives only Malformed: {e}"),
    };
    let mut chip = ChipInventory::default();
    chip.chips
        .insert("gpiochip0".into(), ("gpio-sim.0-node0".into(), 8));
    let codes = (0..=19u8)
        .filter_map(IoCode::kk)
        .chain((0..=16u8).filter_map(IoCode::z3));
    let mut readout_done = false;
    for chips in [ChipInventory::default(), chip] {
        let _ = w.check("fuzz.toml", None, &chips);
        for code in codes.clone() {
            match w.check("fuzz.toml", Some(code), &chips) {
                Ok(_) => {
                    let spec = meter_for(&code);
                    for port in Port::ALL {
                        let Some(p) = w.port(port) else { continue };
                        if p.role != Role::Unused {
                            assert_eq!(Role::of_port_role(spec.io.role(port)), Some(p.role));
                        }
                    }
                    let bus = BusConfig::from_wiring(&w);
                    let used = Port::ALL
                        .iter()
                        .filter(|&&port| w.port(port).is_some_and(|p| p.role != Role::Unused))
                        .count();
                    let taps = [&w.data_out, &w.data_in]
                        .iter()
                        .filter(|d| d.as_ref().is_some_and(|d| d.tap.is_some()))
                        .count();
                    assert_eq!(bus.inputs.len() + bus.outputs.len(), used + taps);
                    if !readout_done {
                        short_readout(&spec);
                        readout_done = true;
                    }
                }
                Err(WiringError::RolesNotPossible { problems, file }) => {
                    assert_eq!(file, "fuzz.toml");
                    assert!((1..=2).contains(&problems.len()));
                    for p in &problems {
                        assert_eq!(p.code, code.to_string());
                        assert_ne!(p.role, Role::Unused);
                    }
                }
                Err(e) => assert!(!e.to_string().is_empty()),
            }
        }
    }
});
