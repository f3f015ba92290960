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
        suite::case_ids().len()
    );
    assert_eq!(rec["meter"]["profile"]["name"], "Kamstrup 351 Combi");
    let m = &rec["cases"][0]["measurements"][0];
    assert_eq!(m["name"], "response_time");
    assert_eq!(m["source"], "edge");
    assert_eq!(m["value"], 150.0);
    let xml = fs::read_to_string(out.join("junit.xml")).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).expect("junit parses");
    assert_eq!(report.tests, suite::case_ids().len());
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
