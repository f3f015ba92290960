//! `rig run` as a user runs it: exit codes, the three records, and records that stay valid when
//! a run is cut short.

use std::fs;

use meter_rig::meter::config::MeterSpec;
use meter_rig::report::{Record, Reporter};
use meter_rig::sim::SimTarget;
use meter_rig::suite::{self, CaseResult, CaseSink, RunOptions};
use meter_rig::target::Target;

use crate::util::{code, run_rig};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("meter-rig-test-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&d);
    d
}

#[test]
fn default_run_passes_and_writes_three_records() {
    let out = tmp("default");
    let o = run_rig(&["run", "--out", out.to_str().unwrap()]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(
        code(&o),
        0,
        "{stdout}\n{}",
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        stdout.contains("readout.response_time") && stdout.contains("0 failed"),
        "{stdout}"
    );
    let rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(rec["complete"], true);
    assert_eq!(
        rec["cases"].as_array().unwrap().len(),
        meter_rig::suite::case_ids().len()
    );
    assert_eq!(rec["meter"]["profile"]["name"], "Kamstrup 351 Combi");
    let m = &rec["cases"][0]["measurements"][0];
    assert_eq!(m["name"], "response_time");
    assert_eq!(m["source"], "edge");
    assert_eq!(m["value"], 150.0);
    let xml = fs::read_to_string(out.join("junit.xml")).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("junit parses");
    assert_eq!(report.tests, meter_rig::suite::case_ids().len());
    assert!(xml.contains("classname=\"readout\"") && xml.contains("response_time=150 ms"));
    let mut csv = csv::Reader::from_path(out.join("measurements.csv")).unwrap();
    let rows: Vec<csv::StringRecord> = csv.records().map(|r| r.unwrap()).collect();
    assert!(rows.len() > 20);
    assert!(rows
        .iter()
        .any(|r| &r[0] == "readout.response_time" && &r[4] == "150" && &r[8] == "edge"));
}

#[test]
fn failing_meter_exits_1_and_junit_names_value_limit_and_clause() {
    let out = tmp("failing");
    let o = run_rig(&[
        "run",
        "--meter",
        "fixtures/meters/faulty-slow-sum-bcc.toml",
        "--suite",
        "readout",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 1, "{}", String::from_utf8_lossy(&o.stdout));
    let xml = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        xml.contains("response_time = 620 ms outside 20–500 ms"),
        "{xml}"
    );
    assert!(xml.contains("004_d1f80f13afa7763c.txt"), "{xml}");
    assert!(xml.contains("matches the sum rule instead"), "{xml}");
}

#[test]
fn usage_and_setup_errors_exit_2_naming_the_cause() {
    let o = run_rig(&["run", "--meter", "fixtures/meters/does-not-exist.toml"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("does-not-exist.toml"));
    let o = run_rig(&["run", "--suite", "nonsense"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown suite \"nonsense\""));
    let o = run_rig(&["run", "--target", "carrier-pigeon:1"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown target kind"));
    let o = run_rig(&["run", "--bogus-flag"]);
    assert_eq!(code(&o), 2);
    let bad = tmp("badmeter.toml");
    fs::write(
        &bad,
        "profile = \"351-combi\"\n[faults]\nresponse_dleay_ms = 5\n",
    )
    .unwrap();
    let o = run_rig(&["run", "--meter", bad.to_str().unwrap()]);
    assert_eq!(code(&o), 2);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.contains("response_dleay_ms") && e.contains("badmeter.toml"),
        "{e}"
    );
}

/// Issues 14 and 12: fuzzed meter files that panicked or hung `rig run`, and a register that was
/// silently cut to 7 digits, are refused up front: exit 2 from `rig run`, `rig sim` and
/// `rig serve`, naming the file, the line and column, the field, the value and the range.
#[rstest::rstest]
#[case::digits_128(
    "[faults]\ndigits = { \"1.8.0\" = 128 }\n",
    "badmeter.toml:3:22: faults.digits.1.8.0 = 128 is outside 1–16"
)]
#[case::digits_255_with_a_decimal(
    "[faults]\ndigits = { \"1.6.0\" = 255 }\n",
    "badmeter.toml:3:22: faults.digits.1.6.0 = 255 is outside 1–16"
)]
#[case::load_1_8e13_w(
    "[load]\nactive_w = 1.8e13\n",
    "badmeter.toml:3:12: load.active_w = 18000000000000 is outside 0–4554 W (3 × 253 V × 6 A"
)]
#[case::register_beyond_7_digits(
    "[registers]\n\"1.8.0\" = 123456789012\n",
    "badmeter.toml:3:11: registers.1.8.0 = 123456789012 is outside 0–9999999 (7 digits of 1.8.0"
)]
#[case::response_delay_nan(
    "[faults]\nresponse_delay_ms = nan\n",
    "badmeter.toml:3:21: faults.response_delay_ms = NaN is outside 0–60000 ms"
)]
#[case::code_out_of_its_table(
    "[config]\nkk = 20\n",
    "badmeter.toml:3:6: config.kk: 20 is not modelled: expected KK 00–19"
)]
fn bad_meter_files_exit_2_naming_field_value_and_range(#[case] body: &str, #[case] message: &str) {
    // one directory per case (cases run in parallel): named after the field
    let field = message
        .split_whitespace()
        .nth(1)
        .unwrap_or("x")
        .trim_end_matches(':');
    let dir = tmp(&format!("bad-{field}"));
    fs::create_dir_all(&dir).unwrap();
    let bad = dir.join("badmeter.toml");
    fs::write(&bad, format!("profile = \"351-combi\"\n{body}")).unwrap();
    let bad = bad.to_str().unwrap();
    let link = dir.join("pty");
    for args in [
        vec!["run", "--meter", bad, "--out", dir.to_str().unwrap()],
        vec!["sim", "--meter", bad, "--link", link.to_str().unwrap()],
        vec![
            "serve",
            "--meter",
            bad,
            "--data",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ],
    ] {
        let o = run_rig(&args);
        let e = String::from_utf8_lossy(&o.stderr);
        assert_eq!(code(&o), 2, "{args:?}: {e}");
        assert!(
            e.contains(message),
            "{args:?}: expected {message:?} in: {e}"
        );
    }
    let _ = fs::remove_dir_all(&dir);
}

/// A sink that dies (like a killed process) after `n` cases, leaving whatever was written.
struct DieAfter {
    inner: Reporter,
    n: usize,
}
impl CaseSink for DieAfter {
    fn case_done(&mut self, c: &CaseResult) -> std::io::Result<()> {
        if self.n == 0 {
            return Ok(());
        }
        self.n -= 1;
        self.inner.case_done(c)
    }
}

#[test]
fn records_of_finished_cases_stay_valid_when_the_run_is_cut_short() {
    let out = tmp("cut");
    let spec = MeterSpec::builtin_default();
    let mut t = SimTarget::new(spec.clone());
    let opts = RunOptions::for_target(&t.capabilities());
    let record = Record::start(t.describe(), t.capabilities(), serde_json::Value::Null);
    let mut sink = DieAfter {
        inner: Reporter::create(&out, record, false).unwrap(),
        n: 4,
    };
    suite::run(&mut t, &spec, &opts, &mut sink);
    // never finished: the files hold exactly the four cases that were recorded
    let rec: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(rec["complete"], false);
    assert_eq!(rec["cases"].as_array().unwrap().len(), 4);
    let report = quick_junit::Report::deserialize_from_str(
        &fs::read_to_string(out.join("junit.xml")).unwrap(),
    )
    .unwrap();
    assert_eq!(report.tests, 4);
    let rows = csv::Reader::from_path(out.join("measurements.csv"))
        .unwrap()
        .records()
        .count();
    assert!(rows >= 4);
}

/// `rig run --list` prints every case with its clause and the limits each fixture meter file
/// resolves, without running anything; a selection that selects nothing is a usage error.
#[test]
fn list_prints_every_case_with_its_limits_for_each_fixture_meter() {
    for f in std::fs::read_dir(crate::util::path("fixtures/meters")).unwrap() {
        let f = f.unwrap().path();
        let o = crate::util::run_rig(&["run", "--list", "--meter", f.to_str().unwrap()]);
        let text = String::from_utf8_lossy(&o.stdout);
        assert_eq!(crate::util::code(&o), 0, "{}: {text}", f.display());
        for id in meter_rig::suite::case_ids() {
            assert!(text.contains(id), "{}: {id} missing", f.display());
        }
        assert!(text.contains("clause: 004_d1f80f13afa7763c.txt"), "{text}");
        assert!(text.contains("response_time                        ms             20–500"));
    }
    let o = crate::util::run_rig(&["run", "--case", "readout.bcc", "--suite", "pulse_out"]);
    assert_eq!(crate::util::code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("selects no case"));
}
