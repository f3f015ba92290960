//! Module-vendor mode on pins, without hardware: the meter-side wiring file checks, and a wiring
//! file of the wrong side is refused by each command with what it needs.

use crate::util::{code, run_rig};

const METER_SIDE: &str = "fixtures/wiring/meter-side.toml";
const MODULE_SIDE: &str = "wiring/raspberry-pi.toml";

fn root(rel: &str) -> String {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(rel)
        .display()
        .to_string()
}

#[test]
fn rig_wiring_check_accepts_the_meter_side_fixture() {
    let o = run_rig(&["wiring", "check", &root(METER_SIDE)]);
    let out = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 0, "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("ok"), "{out}");
    // its ports are KK 13's: a KK 05 meter has no tariff input on port 2
    let o = run_rig(&["wiring", "check", &root(METER_SIDE), "--kk", "5"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("tariff_in"));
}

#[test]
fn rig_run_refuses_a_meter_side_wiring_file_naming_the_side() {
    let o = run_rig(&["run", "--target", &format!("pi:{}", root(METER_SIDE))]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("is for `rig module` (meter side"), "{err}");
    let o = run_rig(&["calibrate", "--wiring", &root(METER_SIDE)]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("meter side"));
    // the module-side file is still accepted by the check
    assert_eq!(code(&run_rig(&["wiring", "check", &root(MODULE_SIDE)])), 0);
}
