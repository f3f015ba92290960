//! `rig read` end to end: the `rig` binary reading the software meter (or a fake) served over a
//! real pty.

use std::time::{Duration, Instant};

use meter_rig::serial::Framing;

use crate::serial::{serve_worked_example, FakeMeter, Served};

#[test]
fn rig_read_prints_the_worked_example() {
    let _serial = crate::util::realtime();
    let (link, stop, th) = serve_worked_example("read-table");
    let port = link.display().to_string();
    let o = crate::util::run_rig(&["read", "--port", &port, "--baud", "9600"]);
    let text = String::from_utf8_lossy(&o.stdout).into_owned();
    eprintln!("{text}{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(crate::util::code(&o), 0);
    for want in [
        "/KAM 685351A300100",
        "1.8.0",
        "0012658",
        "kWh",
        "Active energy",
        "Reactive energy",
        "'7' (0x37) ok (xor)",
        "source serial",
        "verdict         conforms",
    ] {
        assert!(text.contains(want), "missing {want:?}");
    }

    let o = crate::util::run_rig(&[
        "read", "--port", &port, "--baud", "9600", "--format", "json",
    ]);
    assert_eq!(crate::util::code(&o), 0);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["data_sets"].as_array().unwrap().len(), 17);
    assert_eq!(v["bcc"]["ok"], true);
    assert_eq!(v["response_time"]["source"], "serial");
    let mut times = vec![v["response_time"]["ms"].as_f64().unwrap()];
    times.extend(crate::util::read_response_times(&port, 9600, 2));
    crate::util::assert_response_accuracy(&times, 150.0, 2.0);

    let o = crate::util::run_rig(&["read", "--port", &port, "--baud", "9600", "--format", "csv"]);
    assert_eq!(crate::util::code(&o), 0);
    let csv = String::from_utf8_lossy(&o.stdout);
    assert!(csv.starts_with("address,value,unit,meaning\n0.0.0,00000000,,Customer number\n"));
    assert_eq!(csv.lines().count(), 18);
    stop.stop();
    th.join().unwrap();
}

#[test]
fn rig_read_exit_codes_for_no_answer_and_a_missing_port() {
    let served = Served::start(
        "read-silent",
        Framing::Soft7e1,
        FakeMeter::new(9600, Duration::ZERO, Vec::new()),
    );
    // the fake's answer is empty: no character ever comes back
    let start = Instant::now();
    let port = served.link.display().to_string();
    let o = crate::util::run_rig(&["read", "--port", &port, "--baud", "9600"]);
    assert_eq!(crate::util::code(&o), 1);
    assert!(String::from_utf8_lossy(&o.stdout).contains("no identification within"));
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "no-answer limit is 1.5 s"
    );

    let o = crate::util::run_rig(&["read", "--port", "/dev/meter-rig-missing"]);
    assert_eq!(crate::util::code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("/dev/meter-rig-missing") && err.contains("/dev/serial/by-id"),
        "{err}"
    );

    let o = crate::util::run_rig(&["read", "--port", &port, "--address", "bad/addr"]);
    assert_eq!(crate::util::code(&o), 2);
}

#[test]
fn rig_read_reports_a_bcc_by_the_other_rule_and_exits_1() {
    use meter_rig::iec62056::{parity, BccRule, DataSet, Identification, Telegram, Value};
    let t = Telegram {
        identification: Identification::kamstrup("MC"),
        data_sets: vec![DataSet::single("6.31", Value::with_unit("0109868", "h"))],
    };
    let (chars, _) = t.encode(BccRule::Sum);
    let served = Served::start(
        "read-sum",
        Framing::Soft7e1,
        FakeMeter::new(9600, Duration::from_millis(30), parity::encode(&chars)),
    );
    let port = served.link.display().to_string();
    let o = crate::util::run_rig(&["read", "--port", &port, "--baud", "9600"]);
    let text = String::from_utf8_lossy(&o.stdout);
    eprintln!("{text}");
    assert_eq!(crate::util::code(&o), 1);
    assert!(text.contains("matches the sum rule"), "{text}");
    assert!(text.contains("(not in the 351 readout)"), "{text}");
}

/// The field case "a slow long answer": a 674-character answer is read whole and judged; a
/// receive the rig's own limit ends is undecided, names the option, and never blames the meter.
#[test]
fn rig_read_takes_a_long_answer_whole_and_owns_its_own_limit() {
    use meter_rig::iec62056::{parity, BccRule, DataSet, Identification, Telegram, Value};
    let t = Telegram {
        identification: Identification::kamstrup("685351A300100"),
        data_sets: (0..32)
            .map(|i| DataSet::single(format!("1.8.{i}"), Value::with_unit("0012658", "kWh")))
            .collect(),
    };
    let (chars, _) = t.encode(BccRule::Xor);
    assert!(
        (674..700).contains(&chars.len()),
        "about the field case's 674 characters: {}",
        chars.len()
    );
    let served = Served::start(
        "read-long",
        Framing::Soft7e1,
        FakeMeter::new(9600, Duration::from_millis(150), parity::encode(&chars)),
    );
    let port = served.link.display().to_string();
    let o = crate::util::run_rig(&[
        "read", "--port", &port, "--baud", "9600", "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(crate::util::code(&o), 0, "{v}");
    assert_eq!(v["conformance"], "conforms");
    assert_eq!(v["received_bytes"], chars.len());
    assert_eq!(v["data_sets"].as_array().unwrap().len(), 32);

    // about 700 ms on the line at 9600 baud: a 400 ms limit of the rig's cuts them
    let o = crate::util::run_rig(&[
        "read",
        "--port",
        &port,
        "--baud",
        "9600",
        "--timeout-ms",
        "400",
        "--format",
        "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(crate::util::code(&o), 1, "{v}");
    assert_eq!(v["conformance"], "undecided", "{v}");
    assert_eq!(v["receive_end"]["end"], "rig_limit", "{v}");
    let why = v["problems"][0].as_str().unwrap();
    assert!(
        why.contains("--answer-limit") && why.contains("still sending"),
        "{why}"
    );
}

/// `rig sim --link` serving `meter` (a fixture) on a link named after `name`.
fn sim_link(name: &str, meter: &str) -> crate::util::SimLink {
    let link = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-{name}-{}", std::process::id()));
    let meter = crate::util::path(meter);
    crate::util::SimLink::start(&link, &["--meter", meter.to_str().unwrap()])
}

#[test]
fn rig_read_mode_auto_reads_a_mode_c_meter_at_9600_after_the_switch() {
    let _serial = crate::util::realtime();
    let meter = "fixtures/meters/omnipower-optical.toml";
    let sim = sim_link("read-mode-c", meter);
    let port = sim.port();
    let m = crate::util::path(meter).display().to_string();
    let args = ["read", "--port", &port, "--meter", &m, "--format", "json"];
    let o = crate::util::run_rig(&[&args[..], &["--mode", "auto"]].concat());
    let v: serde_json::Value = serde_json::from_slice(&o.stdout)
        .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&o.stderr)));
    assert_eq!(crate::util::code(&o), 0, "{v:#}");
    assert_eq!(v["identification"]["mode_char"], "5");
    assert_eq!(v["switch"]["baud"], 9600);
    assert_eq!(v["switch"]["from_baud"], 300);
    assert_eq!(v["data_sets"].as_array().unwrap().len(), 17);
    assert_eq!(v["bcc"]["ok"], true);
    assert!(
        v["protocol_mode"]
            .as_str()
            .unwrap()
            .contains("switched 300 → 9600 baud"),
        "{v:#}"
    );
    // the switch on the serial contract: the meter's 250 ms, within its few ms over a pty
    let ack_end = v["switch"]["ack_end"].as_u64().unwrap();
    let data = v["switch"]["data_start"].as_u64().unwrap();
    let ms = (data - ack_end) as f64 / 1e6;
    assert!(
        (ms - 250.0).abs() < 40.0,
        "data message {ms} ms after the ACK"
    );

    // mode A against the same meter: only the identification, and the reason in the verdict
    let o = crate::util::run_rig(&[&args[..], &["--mode", "a"]].concat());
    assert_eq!(crate::util::code(&o), 1);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["switch"].is_null());
    let first = v["problems"][0].as_str().unwrap();
    assert!(
        first.contains("announces protocol mode C at 9600 baud") && first.contains("--mode auto"),
        "{first}"
    );
}

#[test]
fn rig_read_mode_auto_reads_a_mode_a_351_at_300() {
    let _serial = crate::util::realtime();
    let sim = sim_link("read-mode-a", "fixtures/meters/default.toml");
    let port = sim.port();
    let o = crate::util::run_rig(&[
        "read", "--port", &port, "--mode", "auto", "--format", "json",
    ]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(crate::util::code(&o), 0, "{v:#}");
    assert_eq!(v["baud"], 300);
    assert_eq!(v["identification"]["mode_char"], " ");
    assert!(v["switch"].is_null());
    assert!(v["protocol_mode"].is_null());
    assert_eq!(v["data_sets"].as_array().unwrap().len(), 17);
}

#[test]
fn rig_run_judges_mode_c_over_a_pty_through_the_serial_backend() {
    let _serial = crate::util::realtime();
    let meter = "fixtures/meters/omnipower-optical.toml";
    let m = crate::util::path(meter).display().to_string();
    let late = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-late-c-{}.toml", std::process::id()));
    let text = std::fs::read_to_string(&m).unwrap();
    std::fs::write(
        &late,
        text.replace("[faults]", "[faults]\nmode_c_switch_ms = 1600.0"),
    )
    .unwrap();
    for (file, code, want) in [
        (m.clone(), 0, "17 data sets read at 9600 baud"),
        (late.display().to_string(), 1, "data_after_ack = 160"),
    ] {
        let sim = sim_link("run-mode-c", &file);
        let out = crate::util::scratch("run-mode-c-out").display().to_string();
        let target = format!("serial:{}", sim.port());
        let o = crate::util::run_rig(&[
            "run", "--target", &target, "--meter", &m, "--suite", "mode_c", "--out", &out,
        ]);
        let text =
            String::from_utf8_lossy(&o.stdout).into_owned() + &String::from_utf8_lossy(&o.stderr);
        assert_eq!(crate::util::code(&o), code, "{text}");
        assert!(text.contains(want), "{want}: {text}");
        let record = std::fs::read_to_string(format!("{out}/record.json")).unwrap();
        assert!(record.contains("\"data_after_ack\""), "{record}");
        let _ = std::fs::remove_dir_all(&out);
    }
    let _ = std::fs::remove_file(&late);
}
