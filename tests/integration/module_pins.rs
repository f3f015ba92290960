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

#[test]
fn rig_module_wiring_refuses_a_module_side_file_and_roles_its_meter_cannot_have() {
    let out = crate::util::scratch("module-pins");
    let out = out.to_str().unwrap();
    let o = run_rig(&["module", "--wiring", &root(MODULE_SIDE), "--out", out]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("this wiring file is for `rig run` (module side); `rig module` needs the meter-side roles"),
        "{err}"
    );
    // the default meter is KK 05: port 2 is its A+ output, not the tariff input the file reads
    let o = run_rig(&["module", "--wiring", &root(METER_SIDE), "--out", out]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("role tariff_in is not possible with KK 05"),
        "{err}"
    );
    // one module under test at a time
    let o = run_rig(&["module", "--wiring", &root(METER_SIDE), "--reference"]);
    assert_eq!(code(&o), 2);
    assert!(!std::path::Path::new(out).join("record.json").exists());
}

#[test]
fn rig_module_wiring_names_the_i2c_bus_it_cannot_open() {
    let dir = crate::util::scratch("module-i2c");
    std::fs::create_dir_all(&dir).unwrap();
    // the default meter with KK 13, the fixture's code
    let meter = dir.join("kk13.toml");
    let text = std::fs::read_to_string(root("fixtures/meters/default.toml")).unwrap();
    let text: String = text
        .lines()
        .map(|l| if l.starts_with("kk =") { "kk = 13" } else { l })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&meter, text).unwrap();
    // the fixture on a bus no machine has
    let wiring = dir.join("meter-side.toml");
    let w = std::fs::read_to_string(root(METER_SIDE)).unwrap();
    std::fs::write(&wiring, w.replace("/dev/i2c-1", "/dev/i2c-250")).unwrap();
    let o = run_rig(&[
        "module",
        "--wiring",
        wiring.to_str().unwrap(),
        "--meter",
        meter.to_str().unwrap(),
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains("/dev/i2c-250") && err.contains("i2cdetect"),
        "{err}"
    );
    let _ = std::fs::remove_dir_all(&dir);
}
