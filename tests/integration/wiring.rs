//! `rig wiring check`: the default file passes, each broken fixture fails with its message.

use crate::util::{code, run_rig};

fn check(file: &str, extra: &[&str]) -> (i32, String, String) {
    let mut args = vec!["wiring", "check", file];
    args.extend_from_slice(extra);
    let o = run_rig(&args);
    (
        code(&o),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

#[test]
fn default_pi_wiring_is_sound() {
    let (c, out, err) = check("wiring/raspberry-pi.toml", &[]);
    assert_eq!(c, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("wiring/raspberry-pi.toml: ok (pi backend, KK 05"),
        "{out}"
    );
    // the same wiring fits KK 05 only among the pulse-in/A+-out configurations
    let (c, _, err) = check("wiring/raspberry-pi.toml", &["--kk", "06"]);
    assert_eq!(c, 2);
    assert!(
        err.contains("entry port1: role pulse_in is not possible with KK 06"),
        "{err}"
    );
}

#[rstest::rstest]
#[case::line_used_twice(
    "line-used-twice.toml",
    "entry port1.gpio: BCM 17 is already used by data_out.tap"
)]
#[case::tap_on_uart_pin(
    "tap-on-uart-pin.toml",
    "entry data_out: capture tap BCM 15 is the UART's own pin"
)]
#[case::role_not_in_kk(
    "role-not-in-kk.toml",
    "entry port2: role pulse_out is not possible with KK 01 (KK 01 makes port 2 (pin 3) tariff_in)"
)]
#[case::missing_polarity("missing-polarity.toml", "entry port1: optocoupler polarity missing")]
#[case::malformed(
    "malformed.toml",
    "malformed.toml:19:7: malformed wiring file: invalid table header"
)]
#[case::unknown_line(
    "unknown-line.toml",
    "entry port2.gpio: line 99 does not exist on the Pi's BCM GPIO (54 lines)"
)]
fn broken_wiring_is_rejected(#[case] file: &str, #[case] message: &str) {
    let path = format!("fixtures/wiring/{file}");
    let (c, out, err) = check(&path, &[]);
    assert_eq!(c, 2, "{path} accepted: {out}");
    assert!(err.contains(&path), "error does not name the file: {err}");
    assert!(err.contains(message), "expected {message:?} in: {err}");
}

#[test]
fn kk_option_rejects_a_port_role_the_configuration_cannot_have() {
    // KK 01 (4-tariff) has no pulse output
    let (c, _, err) = check("wiring/raspberry-pi.toml", &["--kk", "01"]);
    assert_eq!(c, 2);
    assert!(
        err.contains(
            "wiring/raspberry-pi.toml: entry port1: role pulse_in is not possible with KK 01"
        ),
        "{err}"
    );
    let (c, _, err) = check("wiring/raspberry-pi.toml", &["--kk", "42"]);
    assert_eq!(c, 2);
    assert!(
        err.contains("KK 42 is not a 351 Combi module I/O code"),
        "{err}"
    );
}

#[test]
fn unknown_chip_is_an_error_where_chips_exist_and_a_note_where_none_do() {
    let (c, out, err) = check("fixtures/wiring/unknown-chip.toml", &[]);
    let here = meter_rig::pins::wiring::ChipInventory::scan();
    if here.chips.is_empty() {
        assert_eq!(c, 0, "{out}{err}");
        assert!(
            err.contains("entry data_out.tap: note: gpiochip-does-not-exist line 0: not checked (no GPIO chips on this machine)"),
            "{err}"
        );
    } else {
        assert_eq!(c, 2, "{out}{err}");
        assert!(
            err.contains("unknown GPIO chip gpiochip-does-not-exist"),
            "{err}"
        );
    }
}

#[test]
fn calibrate_refuses_cleanly_without_loopbacks_or_hardware() {
    // no loopbacks: nothing to calibrate
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-cal-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let f = dir.join("no-loopback.toml");
    std::fs::write(
        &f,
        "backend = \"pi\"\n[port1]\nrole = \"tariff_in\"\ngpio = { bcm = 17 }\nopto = { inverting = true }\n",
    )
    .unwrap();
    let o = run_rig(&["calibrate", "--wiring", f.to_str().unwrap(), "--dry-run"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("no [[loopback]] entries"));
    // the default Pi wiring on a machine that is not a Pi: rppal says so, the file is untouched
    let before = std::fs::read_to_string(crate::util::path("wiring/raspberry-pi.toml")).unwrap();
    let o = run_rig(&[
        "calibrate",
        "--wiring",
        "wiring/raspberry-pi.toml",
        "--count",
        "2",
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    if meter_rig::pins::pi::PiBus::open(&meter_rig::pins::BusConfig::default()).is_err() {
        assert_eq!(code(&o), 2, "{err}");
        assert!(
            err.contains("loopback[0] (port1)") && err.contains("rppal: Gpio::new failed"),
            "{err}"
        );
        let after = std::fs::read_to_string(crate::util::path("wiring/raspberry-pi.toml")).unwrap();
        assert_eq!(before, after);
    } else {
        println!("SKIPPED: running on a Raspberry Pi; see pi_hardware tests");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn kk_option_reports_every_wrong_role_not_only_the_first() {
    // KK 01 (4-tariff) makes both ports tariff inputs: port 1 (pulse_in) and port 2 (pulse_out)
    // of the Pi wiring are both wrong, and both are named
    let (c, _, err) = check("wiring/raspberry-pi.toml", &["--kk", "01"]);
    assert_eq!(c, 2);
    assert!(
        err.contains(
            "entry port1: role pulse_in is not possible with KK 01 (KK 01 makes port 1 (pin 4) tariff_in)"
        ) && err.contains(
            "entry port2: role pulse_out is not possible with KK 01 (KK 01 makes port 2 (pin 3) tariff_in)"
        ),
        "{err}"
    );
}

/// Issue 12: roles come from the meter file's resolved spec, so an OMNIPOWER's Z3 code is read
/// from the Z3 table, not the 351's KK table.
#[test]
fn meter_option_checks_an_omnipower_z3_16_wiring_against_the_z3_table() {
    let meter = "fixtures/meters/omnipower-z3-16.toml";
    let (c, out, err) = check("fixtures/wiring/omnipower-z3-16.toml", &["--meter", meter]);
    assert_eq!(c, 0, "stdout: {out}\nstderr: {err}");
    assert!(
        out.contains("fixtures/wiring/omnipower-z3-16.toml: ok (pi backend, Z3 16;"),
        "{out}"
    );
    // read as a 351 KK 16 (max reset / 2-tariff inverted) the same wiring is wrong on both ports
    let (c, _, err) = check("fixtures/wiring/omnipower-z3-16.toml", &["--kk", "16"]);
    assert_eq!(c, 2);
    assert!(
        err.contains("entry port1: role pulse_out is not possible with KK 16")
            && err.contains("entry port2: role pulse_out is not possible with KK 16"),
        "{err}"
    );
}

#[test]
fn meter_option_refuses_a_wrong_role_for_z3_16() {
    // the Pi wiring drives port 1 as a pulse input; Z3 16 makes it the A- pulse output
    let (c, _, err) = check(
        "wiring/raspberry-pi.toml",
        &["--meter", "fixtures/meters/omnipower-z3-16.toml"],
    );
    assert_eq!(c, 2);
    assert!(
        err.contains(
            "wiring/raspberry-pi.toml: entry port1: role pulse_in is not possible with Z3 16 (Z3 16 makes port 1 (pin 4) pulse_out)"
        ) && !err.contains("entry port2"),
        "{err}"
    );
}

#[test]
fn meter_option_with_a_bad_meter_file_or_with_kk_is_a_usage_error() {
    let bad = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-wiring-{}.toml", std::process::id()));
    std::fs::write(&bad, "profile = \"omnipower-3ph\"\n[config]\nz3 = 17\n").unwrap();
    let (c, _, err) = check(
        "wiring/raspberry-pi.toml",
        &["--meter", bad.to_str().unwrap()],
    );
    let _ = std::fs::remove_file(&bad);
    assert_eq!(c, 2);
    assert!(err.contains("config.z3: 17 is not modelled"), "{err}");
    let (c, _, err) = check(
        "wiring/raspberry-pi.toml",
        &["--kk", "05", "--meter", "fixtures/meters/default.toml"],
    );
    assert_eq!(c, 2);
    assert!(err.contains("cannot be used with"), "{err}");
}
