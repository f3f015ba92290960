//! `rig run` as a user runs it: exit codes, the three records, and records that stay valid when
//! a run is cut short.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

use meter_rig::meter::config::MeterSpec;
use meter_rig::report::{self, Record, Reporter, RunState};
use meter_rig::sim::SimTarget;
use meter_rig::suite::{self, Event, Observer, ObserverError, RunOptions};
use meter_rig::target::Target;

use crate::util::{code, run_rig};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-test-{}-{name}", std::process::id()));
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
    // whole lines: a shell prompt or the next tool's output does not start on the counts line
    assert!(stdout.ends_with("time\n"), "{stdout:?}");
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

/// An observer that dies (like a killed process) after `n` cases, leaving whatever was written.
struct DieAfter {
    inner: Reporter,
    n: usize,
}
impl Observer for DieAfter {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        if let Event::CaseDone { .. } = e {
            if self.n == 0 {
                return Ok(());
            }
            self.n -= 1;
            return self.inner.event(e);
        }
        Ok(())
    }
}

#[test]
fn records_of_finished_cases_stay_valid_when_the_run_is_cut_short() {
    let out = tmp("cut");
    let spec = MeterSpec::builtin_default();
    let mut t = SimTarget::new(spec.clone());
    let opts = RunOptions::for_target(&t.capabilities());
    let record =
        Record::start(t.describe(), t.capabilities(), serde_json::Value::Null).with_plan(&opts);
    let mut sink = DieAfter {
        inner: Reporter::create(&out, record).unwrap(),
        n: 4,
    };
    suite::run(&mut t, &spec, &opts, &mut sink);
    // the writer is still alive: the run reads as running
    assert_eq!(report::read_record(&out).unwrap().state, RunState::Running);
    drop(sink);
    // never finished, writer gone: the files hold exactly the four cases that were recorded,
    // the record reads as interrupted and JUnit shows the others as not run
    let rec = report::read_record(&out).unwrap();
    assert_eq!(rec.state, RunState::Interrupted);
    assert!(!rec.complete);
    assert_eq!(rec.cases.len(), 4);
    let report = quick_junit::Report::deserialize_from_str(
        &fs::read_to_string(out.join("junit.xml")).unwrap(),
    )
    .unwrap();
    let all = suite::case_ids().len();
    assert_eq!(report.tests, all);
    assert_eq!(report.errors, all - 4);
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(out.join("measurements.csv"))
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    assert_eq!(rows.iter().filter(|r| &r[2] == "not_run").count(), all - 4);
    assert!(rows.iter().all(|r| r[13] == rec.run_id));
}

/// What one of the three files says about the run: run id, snapshot, recorded case ids and
/// every case id it lists (recorded or not run).
#[derive(Debug, PartialEq)]
struct View {
    run: String,
    snapshot: u64,
    recorded: BTreeSet<String>,
    listed: BTreeSet<String>,
}

fn record_view(r: &Record) -> View {
    let recorded: BTreeSet<String> = r.cases.iter().map(|c| c.id.clone()).collect();
    let mut listed = recorded.clone();
    listed.extend(r.unrun().map(|p| p.id.clone()));
    View {
        run: r.run_id.clone(),
        snapshot: r.snapshot,
        recorded,
        listed,
    }
}

/// The CSV's view, parsed independently of the library (None when it has no rows).
fn csv_view(path: &Path) -> Option<View> {
    let rows: Vec<csv::StringRecord> = csv::Reader::from_path(path)
        .unwrap()
        .records()
        .map(|r| r.unwrap())
        .collect();
    let first = rows.first()?;
    let (run, snapshot) = (first[13].to_string(), first[14].to_string());
    for r in &rows {
        assert_eq!(
            (&r[13], &r[14]),
            (run.as_str(), snapshot.as_str()),
            "{rows:?}"
        );
    }
    Some(View {
        run,
        snapshot: snapshot.parse().unwrap(),
        recorded: rows
            .iter()
            .filter(|r| &r[2] != "not_run")
            .map(|r| r[0].to_string())
            .collect(),
        listed: rows.iter().map(|r| r[0].to_string()).collect(),
    })
}

/// JUnit's view, parsed independently of the library (None when it has no testsuite). Also
/// checks that every case not recorded is an error, never a pass or a skip.
fn junit_view(path: &Path) -> Option<View> {
    let xml = fs::read_to_string(path).unwrap();
    let report = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let props: BTreeMap<String, String> = report
        .test_suites
        .iter()
        .flat_map(|s| s.properties.iter())
        .map(|p| (p.name.to_string(), p.value.to_string()))
        .collect();
    let run = props.get("run.id")?.clone();
    let mut v = View {
        run,
        snapshot: props["run.snapshot"].parse().unwrap(),
        recorded: BTreeSet::new(),
        listed: BTreeSet::new(),
    };
    for tc in report.test_suites.iter().flat_map(|s| s.test_cases.iter()) {
        let id = tc.name.to_string();
        if props[&format!("{id}.verdict")] == "not_run" {
            assert!(
                matches!(&tc.status, quick_junit::TestCaseStatus::NonSuccess { kind: quick_junit::NonSuccessKind::Error, message: Some(m), .. } if m.starts_with("not run: ")),
                "{id}: {xml}"
            );
        } else {
            v.recorded.insert(id.clone());
        }
        v.listed.insert(id);
    }
    Some(v)
}

/// How a killed run's directory looked.
#[derive(Debug, Default)]
struct Seen {
    empty: usize,
    mid_run: usize,
    complete: usize,
    one_snapshot_apart: usize,
}

/// Checks that the three files in `dir` describe one run and one snapshot, or (a kill between
/// two renames) that `record.json` is one snapshot ahead of the files after it, never behind.
fn check_one_run(dir: &Path, seen: &mut Seen) {
    let [rec_p, csv_p, junit_p] =
        ["record.json", "measurements.csv", "junit.xml"].map(|f| dir.join(f));
    // written and cleared in the order record → csv → junit, removed junit → csv → record
    assert!(
        !junit_p.exists() || csv_p.exists(),
        "junit.xml without measurements.csv"
    );
    assert!(
        !csv_p.exists() || rec_p.exists(),
        "measurements.csv without record.json"
    );
    if !rec_p.exists() {
        seen.empty += 1;
        return;
    }
    let rec = report::read_record(dir).unwrap();
    let r = record_view(&rec);
    let views: Vec<View> = [
        csv_p.exists().then(|| csv_view(&csv_p)).flatten(),
        junit_p.exists().then(|| junit_view(&junit_p)).flatten(),
    ]
    .into_iter()
    .flatten()
    .collect();
    let mut apart = false;
    for v in &views {
        assert_eq!(v.run, r.run, "files of two runs in one directory");
        assert_eq!(v.listed, r.listed, "{v:?} vs {r:?}");
        if v.snapshot == r.snapshot {
            assert_eq!(v.recorded, r.recorded);
        } else {
            assert_eq!(v.snapshot + 1, r.snapshot, "{v:?} vs {r:?}");
            assert!(v.recorded.is_subset(&r.recorded) && r.recorded.len() - v.recorded.len() <= 1);
            apart = true;
        }
    }
    if views.len() == 2 {
        assert!(
            views[1].snapshot <= views[0].snapshot,
            "junit.xml ahead of the CSV"
        );
    }
    seen.one_snapshot_apart += usize::from(apart);
    match rec.state {
        RunState::Complete => seen.complete += 1,
        RunState::Interrupted => {
            // all recorded but killed before the end still reads as interrupted
            assert!(
                rec.cases.len() <= suite::case_ids().len() && !rec.complete && rec.ended.is_none()
            );
            seen.mid_run += 1;
        }
        s => panic!("a killed run reads as {s}"),
    }
}

fn our_tmp_files(dir: &Path) -> Vec<String> {
    fs::read_dir(dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok()?.file_name().into_string().ok())
                .filter(|n| n.ends_with(".tmp"))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn kill_9_at_30_instants_leaves_three_files_of_one_run_and_snapshot() {
    let out = tmp("kills");
    let paced = || {
        crate::util::rig()
            .args(["run", "--out", out.to_str().unwrap()])
            .env(report::TEST_CASE_DELAY_ENV, "30")
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap()
    };
    // how long a whole paced run takes here (0.8-1.1 s on the 2-core development machine)
    let t0 = std::time::Instant::now();
    assert!(paced().wait().unwrap().success());
    let whole = t0.elapsed();
    let mut seen = Seen::default();
    for i in 0..30u32 {
        let mut child = paced();
        // spread over the start, every case and the end (the last 1/6 after it)
        std::thread::sleep(whole * i / 25);
        child.kill().unwrap();
        child.wait().unwrap();
        check_one_run(&out, &mut seen);
        // closing the killed run's records (as rig serve does at start) makes them agree exactly
        if report::close_interrupted(&out).unwrap() {
            let mut closed = Seen::default();
            check_one_run(&out, &mut closed);
            assert_eq!((closed.one_snapshot_apart, closed.mid_run), (0, 1));
            let xml = fs::read_to_string(out.join("junit.xml")).unwrap();
            assert!(xml.contains("name=\"run.state\" value=\"interrupted\""));
        }
        for t in our_tmp_files(&out) {
            assert!(
                ["record.tmp", "measurements.tmp", "junit.tmp"].contains(&t.as_str()),
                "{t}"
            );
        }
    }
    eprintln!("30 kills over {whole:?}: {seen:?}");
    assert!(seen.mid_run >= 5, "too few kills landed mid-run: {seen:?}");
    // what a kill leaves, and stale temporaries, do not survive the next start
    for t in ["record.tmp", "measurements.tmp", "junit.tmp"] {
        fs::write(out.join(t), b"stale").unwrap();
    }
    let before = report::read_record(&out).ok().map(|r| r.run_id);
    let o = run_rig(&["run", "--out", out.to_str().unwrap()]);
    assert_eq!(code(&o), 0);
    assert_eq!(our_tmp_files(&out), Vec::<String>::new());
    let mut last = Seen::default();
    check_one_run(&out, &mut last);
    assert_eq!(last.complete, 1);
    let rec = report::read_record(&out).unwrap();
    assert_ne!(Some(rec.run_id), before);
    assert_eq!(rec.cases.len(), suite::case_ids().len());
}

#[test]
fn a_second_run_into_a_directory_in_use_exits_2_naming_the_pid() {
    let out = tmp("in-use");
    let mut t = SimTarget::new(MeterSpec::builtin_default());
    let record = Record::start(t.describe(), t.capabilities(), serde_json::Value::Null);
    let held = Reporter::create(&out, record).unwrap();
    let o = run_rig(&["run", "--out", out.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(
        err.contains(&format!("held by pid {}", std::process::id())),
        "{err}"
    );
    // the refused run left the holder's records alone
    assert_eq!(
        report::read_record(&out).unwrap().run_id,
        held.record().run_id
    );
}

/// `rig run --list` prints every case with its clause and the limits each fixture meter file
/// resolves, without running anything.
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
}

/// JUnit's total and the testcases that are errors of type `not_run`, from `dir/junit.xml`.
fn junit_not_run(dir: &Path) -> (usize, usize) {
    let xml = fs::read_to_string(dir.join("junit.xml")).unwrap();
    let r = quick_junit::Report::deserialize_from_str(&xml).unwrap();
    let not_run = r
        .test_suites
        .iter()
        .flat_map(|s| &s.test_cases)
        .filter(|c| {
            matches!(&c.status, quick_junit::TestCaseStatus::NonSuccess { kind: quick_junit::NonSuccessKind::Error, ty: Some(t), .. } if t.as_str() == "not_run")
        })
        .count();
    (r.tests, not_run)
}

#[test]
fn max_run_time_stops_the_run_with_exit_2_and_junit_shows_the_rest_not_run() {
    let out = tmp("max-run-time");
    let o = run_rig(&[
        "run",
        "--suite",
        "readout",
        "--max-run-time",
        "1800",
        "--out",
        out.to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "{err}");
    assert!(err.contains("maximum run time of 1800 s"), "{err}");
    let rec = report::read_record(&out).unwrap();
    assert_eq!(rec.state, RunState::Stopped);
    assert!(matches!(
        rec.outcome,
        Some(suite::Outcome::Stopped {
            reason: suite::StopReason::MaxRunTime { .. }
        })
    ));
    let (tests, not_run) = junit_not_run(&out);
    assert_eq!(tests, rec.planned.len());
    assert_eq!(not_run, rec.planned.len() - rec.cases.len());
    assert!(not_run > 0);
    let _ = fs::remove_dir_all(&out);
}

/// Starts `rig run` with a pause before each case, waits until `cases` are recorded, then sends
/// `signals` SIGINTs; returns the exit status and stderr.
fn signalled_run(out: &Path, cases: usize, signals: usize) -> (std::process::ExitStatus, String) {
    signalled_run_paused(out, cases, signals, 400)
}

/// [`signalled_run`] with a pause of `pause_ms` before each case: the step in hand when the
/// signals come, long enough that a loaded machine still delivers the second signal inside it.
fn signalled_run_paused(
    out: &Path,
    cases: usize,
    signals: usize,
    pause_ms: u32,
) -> (std::process::ExitStatus, String) {
    use std::io::Read;
    let mut child = crate::util::rig()
        .args(["run", "--out", out.to_str().unwrap()])
        .env(report::TEST_CASE_DELAY_ENV, pause_ms.to_string())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = std::time::Instant::now();
    while report::read_record(out).map_or(0, |r| r.cases.len()) < cases {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(60),
            "no cases"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    // the observers after the records (the HTML report, the captures) still work on the case
    // just recorded: signal once the next case's pause has surely begun
    std::thread::sleep(std::time::Duration::from_millis(u64::from(pause_ms) / 5));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    for _ in 0..signals {
        rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
        // apart enough that the kernel delivers two signals, not one pending twice
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let st = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (st, err)
}

#[test]
fn sigint_stops_after_the_step_in_hand_and_a_second_exits_at_once() {
    let out = tmp("sigint");
    let (st, err) = signalled_run(&out, 2, 1);
    assert_eq!(st.code(), Some(2), "{err}");
    let rec = report::read_record(&out).unwrap();
    assert_eq!(rec.state, RunState::Stopped, "{err}");
    assert!(
        rec.aborted.as_deref().unwrap().contains("SIGINT"),
        "{:?}",
        rec.aborted
    );
    let (tests, not_run) = junit_not_run(&out);
    assert_eq!(tests, suite::case_ids().len());
    assert!(not_run >= 1 && not_run == tests - rec.cases.len(), "{err}");

    // a second signal does not wait for the step in hand: 128 + SIGINT, records as they were
    let out2 = tmp("sigint-twice");
    let (st, err) = signalled_run_paused(&out2, 1, 2, 5000);
    assert_eq!(st.code(), Some(130), "{err:?}");
    let _ = fs::remove_dir_all(&out);
    let _ = fs::remove_dir_all(&out2);
}

/// A failed case names where its limit is written, by document title and section, on the
/// terminal under the case and in JUnit's text (beside the file name records carry).
#[test]
fn a_failed_case_names_its_clause_by_document_on_the_terminal_and_in_junit() {
    let out = tmp("clause-named");
    let meter = crate::util::path("fixtures/meters/faulty-slow-sum-bcc.toml");
    let o = run_rig(&[
        "run",
        "--meter",
        meter.to_str().unwrap(),
        "--case",
        "readout.response_time",
        "--out",
        out.to_str().unwrap(),
    ]);
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert_eq!(code(&o), 1, "{stdout}");
    let title = "clause: Kamstrup 351 Combi communication interface specification (Kamstrup A/S)";
    assert!(stdout.contains(title), "{stdout}");
    assert!(
        stdout.contains("Note 1: response between 20 and 500"),
        "{stdout}"
    );
    let xml = fs::read_to_string(out.join("junit.xml")).unwrap();
    assert!(
        xml.contains(title) && xml.contains("(004_d1f80f13afa7763c.txt)"),
        "{xml}"
    );
    let _ = fs::remove_dir_all(&out);
}

/// `rig run --plan` prints each case's expected meter time and why, the totals and the floor,
/// runs nothing, and its total as run (cases sharing the waits of others) agrees with the
/// recorded `target_time_s` of the run within 5 % for every fixture meter (issue 16).
#[test]
fn the_plan_printed_agrees_with_the_run_for_every_fixture_meter() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/meters");
    for f in fs::read_dir(dir).unwrap() {
        let meter = f.unwrap().path();
        let name = meter.file_stem().unwrap().to_string_lossy().to_string();
        let out = tmp(&format!("plan-{name}"));
        let m = meter.to_str().unwrap();
        let p = run_rig(&[
            "run",
            "--plan",
            "--meter",
            m,
            "--out",
            out.to_str().unwrap(),
        ]);
        let stdout = String::from_utf8_lossy(&p.stdout).to_string();
        assert_eq!(code(&p), 0, "{name}: {stdout}");
        assert!(!out.exists(), "{name}: --plan wrote records");
        for id in meter_rig::suite::case_ids() {
            assert!(stdout.contains(id), "{name}: {id} missing\n{stdout}");
        }
        let total = |label: &str| -> f64 {
            let line = stdout
                .lines()
                .find(|l| l.starts_with(label))
                .unwrap_or_else(|| panic!("{name}: no {label:?} line\n{stdout}"));
            line[label.len()..]
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .unwrap()
        };
        let (seq, floor) = (total("in sequence"), total("floor"));
        let executed = total("as run");
        assert!(
            floor > 0.0 && floor <= executed && executed <= seq,
            "{name}: floor {floor}, as run {executed}, sequence {seq}"
        );
        let r = run_rig(&["run", "--meter", m, "--out", out.to_str().unwrap()]);
        assert!(
            code(&r) <= 1,
            "{name}: {}",
            String::from_utf8_lossy(&r.stderr)
        );
        let rec: serde_json::Value =
            serde_json::from_str(&fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
        let ran = rec["target_time_s"].as_f64().unwrap();
        assert!(
            (executed / ran - 1.0).abs() <= 0.05,
            "{name}: plan {executed} s, run {ran} s"
        );
    }
}
