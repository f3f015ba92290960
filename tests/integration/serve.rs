//! `rig serve`: the module loop in virtual time (library), and the service as a process against
//! the software meter: every endpoint, 400/401/404/409, a run to completion, SIGTERM mid-run, and
//! kill -9 mid-run followed by a restart.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::sync::atomic::Ordering;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use rstest::rstest;
use serde_json::Value;

use meter_rig::meter::config::MeterSpec;
use meter_rig::meter::readout::COMBI_351;
use meter_rig::service::schedule::Schedule;
use meter_rig::service::store::{Reading, Store};
use meter_rig::service::worker::{Command, LoopConfig, RunRequest, Shared, Worker};
use meter_rig::sim::SimTarget;
use meter_rig::target::Port;

use crate::util;

pub(crate) fn tmp(name: &str) -> PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rig-serve-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).unwrap();
    d
}

/// The default meter with `kk` replaced.
fn meter_text(kk: u8) -> String {
    std::fs::read_to_string(util::path("fixtures/meters/default.toml"))
        .unwrap()
        .replace("kk = 5 ", &format!("kk = {kk} "))
}

/// Runs the module loop over `spec` in virtual time (no pacing) until `hours` of meter time have
/// passed, sending `commands` first. Returns the shared state and the software meter.
fn run_loop(
    spec: MeterSpec,
    schedule: Option<Schedule>,
    data: &Path,
    hours: f64,
    commands: Vec<Command>,
) -> (Shared, SimTarget) {
    let mut sim = SimTarget::new(spec.clone());
    let shared = Shared::new("sim".into(), "test".into(), Duration::from_secs(900), true);
    let cfg = LoopConfig {
        spec,
        meter_given: true,
        interval: Duration::from_secs(900),
        poll: Duration::from_secs(60),
        schedule,
        epoch_s: 0, // the meter clock starts at midnight
    };
    let (tx, rx) = mpsc::channel();
    for c in commands {
        let Command::Run(r) = &c;
        shared.claim_run(&r.id).unwrap();
        tx.send(c).unwrap();
    }
    std::thread::scope(|s| {
        let sim = &mut sim;
        let (cfg, shared) = (cfg, &shared);
        s.spawn(move || {
            let w = Worker::new(sim, cfg, Store::open(data).unwrap(), shared, None).unwrap();
            w.run(&rx);
        });
        let limit = hours * 3600.0;
        let t0 = Instant::now();
        while shared.snapshot().target_time_s < limit {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "the loop did not reach {hours} h"
            );
            std::thread::sleep(Duration::from_millis(1));
        }
        shared.stop.store(true, Ordering::SeqCst);
    });
    (shared, sim)
}

fn rows(data: &Path) -> Vec<csv::StringRecord> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(data.join("readings"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    let mut v = Vec::new();
    for f in files {
        let mut rd = csv::Reader::from_path(&f).unwrap();
        for r in rd.records() {
            v.push(r.unwrap_or_else(|e| panic!("{}: {e}", f.display())));
        }
    }
    v
}

fn header(data: &Path) -> csv::StringRecord {
    let f = std::fs::read_dir(data.join("readings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    csv::Reader::from_path(f)
        .unwrap()
        .headers()
        .unwrap()
        .clone()
}

#[rstest]
#[case::normal_table(1)]
#[case::inverted_table(2)]
fn module_loop_drives_the_tariff_schedule(#[case] kk: u8) {
    let data = tmp(&format!("tariff-{kk}"));
    let spec = MeterSpec::from_toml(&meter_text(kk), "test", None).unwrap();
    let text = "[[switch]]\nat = \"06:00\"\ntariff = 3\n[[switch]]\nat = \"22:00\"\ntariff = 1\n";
    let sched = Schedule::parse("test", text, &spec.io.tariff).unwrap();
    let (shared, _) = run_loop(spec, Some(sched), &data, 24.5, vec![]);
    let h = header(&data);
    let col = |name: &str| h.iter().position(|c| c == name).unwrap();
    let regs = ["1.8.1 [kWh]", "1.8.2 [kWh]", "1.8.3 [kWh]", "1.8.4 [kWh]"].map(col);
    let t = col("target_time_s");
    let rows = rows(&data);
    assert!(rows.len() >= 96, "{} rows", rows.len());
    for w in rows.windows(2) {
        let start_h = w[0][t].parse::<f64>().unwrap() / 3600.0 % 24.0;
        let expected = if (6.0..22.0).contains(&start_h.floor()) {
            3
        } else {
            1
        };
        for (k, &c) in regs.iter().enumerate() {
            let d = w[1][c].parse::<i64>().unwrap() - w[0][c].parse::<i64>().unwrap();
            if k + 1 == expected {
                // 3 kW × ratio 80 for 15 minutes: 60 kWh
                assert!(
                    (59..=61).contains(&d),
                    "tariff {expected} at {start_h:.2} h: +{d}"
                );
            } else {
                assert!(d <= 1, "tariff {} grew by {d} at {start_h:.2} h", k + 1);
            }
        }
    }
    assert_eq!(shared.snapshot().tariff, Some(1));
}

#[test]
fn module_loop_counts_every_pulse_including_during_a_run() {
    let data = tmp("pulses");
    let spec = MeterSpec::builtin_default();
    let run = Command::Run(RunRequest {
        id: "r1".into(),
        suites: vec!["readout".into(), "pulse_out".into()],
        cases: vec![],
        paced: false,
        max_run_time: None,
    });
    // the readout suite takes about 27 h of meter time (readout.hour_counter watches 24 h): the
    // loop runs past it so it reads after the run too
    let (shared, sim) = run_loop(spec, None, &data, 32.0, vec![run]);
    let s = shared.snapshot();
    let emitted = sim.meter().pulses_emitted(Port::Port2);
    let counted = s.counters.pulses["port2"];
    assert!(emitted > 10_000, "{emitted}");
    assert_eq!(counted, emitted, "counted vs emitted by the software meter");
    let saved = Store::open(&data).unwrap().load_state().unwrap();
    assert_eq!(saved.pulses["port2"], counted);
    let run = s.last_run.expect("the run finished");
    assert_eq!(run.state, "done");
    assert!(
        run.summary.pass > 5 && run.summary.fail == 0,
        "{:?}",
        run.summary
    );
    assert!(data.join("runs/r1/junit.xml").exists());
    // rows continue after the run; the failures counter is honest
    assert_eq!(s.counters.readout_failures, 0);
    // (the run took hours of meter time; the loop read before and after it)
    assert!(s.counters.readouts >= 8, "{}", s.counters.readouts);
    assert_eq!(rows(&data).len() as u64, s.counters.readouts);
}

// ---- the service as a process -------------------------------------------------------------

pub(crate) struct Serve {
    child: Child,
    pub(crate) addr: String,
    log: mpsc::Receiver<String>,
}

impl Serve {
    pub(crate) fn start(data: &Path, extra: &[&str]) -> Serve {
        let mut child = util::rig()
            .args(["serve", "--listen", "127.0.0.1:0", "--data"])
            .arg(data)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, log) = mpsc::channel();
        let err = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for l in BufReader::new(err).lines().map_while(Result::ok) {
                let _ = tx.send(l);
            }
        });
        let t0 = Instant::now();
        loop {
            let line = log
                .recv_timeout(Duration::from_secs(60).saturating_sub(t0.elapsed()))
                .unwrap_or_else(|_| panic!("rig serve did not start: {:?}", child.try_wait()));
            if let Some(a) = line.split("listening on http://").nth(1) {
                return Serve {
                    child,
                    addr: a.trim().to_string(),
                    log,
                };
            }
        }
    }

    pub(crate) fn req(&self, method: &str, path: &str, body: Option<&str>) -> (u16, String) {
        http(&self.addr, method, path, body, None)
    }

    /// POSTs a run request that must be accepted; returns the run id.
    pub(crate) fn start_run(&self, body: &str) -> String {
        let (code, resp) = self.req("POST", "/runs", Some(body));
        assert_eq!(code, 202, "{body}: {resp}");
        serde_json::from_str::<Value>(&resp).unwrap()["id"]
            .as_str()
            .unwrap()
            .to_string()
    }

    /// Starts a run, waits for it to finish, and returns its record.
    fn finished_run(&self, body: &str) -> Value {
        let id = self.start_run(body);
        self.wait_for("the run", |s| run_state(s, &id) == "done");
        self.json(&format!("/runs/{id}"))
    }

    pub(crate) fn json(&self, path: &str) -> Value {
        let (code, body) = self.req("GET", path, None);
        assert_eq!(code, 200, "GET {path}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    pub(crate) fn wait_for(&self, what: &str, mut pred: impl FnMut(&Serve) -> bool) {
        let t0 = Instant::now();
        while !pred(self) {
            assert!(
                t0.elapsed() < Duration::from_secs(120),
                "timed out waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub(crate) fn signal(&mut self, sig: rustix::process::Signal) {
        let pid = rustix::process::Pid::from_raw(self.child.id() as i32).unwrap();
        rustix::process::kill_process(pid, sig).unwrap();
    }

    /// Waits for the exit code; returns it with the rest of stderr.
    pub(crate) fn exit(mut self) -> (Option<i32>, String) {
        let st = self.child.wait().unwrap();
        let mut rest = String::new();
        while let Ok(l) = self.log.recv_timeout(Duration::from_secs(2)) {
            rest.push_str(&l);
            rest.push('\n');
        }
        (st.code(), rest)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A minimal HTTP/1.1 client (one request per connection).
pub(crate) fn http(
    addr: &str,
    method: &str,
    path: &str,
    body: Option<&str>,
    token: Option<&str>,
) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let body = body.unwrap_or("");
    let auth = token
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let text = String::from_utf8_lossy(&raw).to_string();
    let (head, rest) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head.split(' ').nth(1).unwrap().parse().unwrap();
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        let mut out = String::new();
        let mut r = rest;
        while let Some((len, tail)) = r.split_once("\r\n") {
            let n = usize::from_str_radix(len.trim(), 16).unwrap_or(0);
            if n == 0 {
                break;
            }
            out.push_str(&tail[..n]);
            r = &tail[n + 2..];
        }
        out
    } else {
        rest.to_string()
    };
    (code, body)
}

pub(crate) fn run_state(s: &Serve, id: &str) -> String {
    s.json(&format!("/runs/{id}"))["state"]
        .as_str()
        .unwrap()
        .to_string()
}

#[test]
fn serve_answers_every_endpoint_and_runs_a_suite_to_completion() {
    let data = tmp("endpoints");
    let mut s = Serve::start(&data, &["--sim-speed", "3600", "--interval", "15m"]);
    s.wait_for("the first readout", |s| {
        s.req("GET", "/readings/latest", None).0 == 200
    });
    let latest = s.json("/readings/latest");
    assert_eq!(latest["valid"], true, "{latest}");
    assert_eq!(latest["response_ms"], 150.0);
    assert!(latest["registers"]["1.8.0"]
        .as_str()
        .unwrap()
        .ends_with("*kWh"));
    let st = s.json("/status");
    assert_eq!(st["loop_state"], "running");
    assert_eq!(st["target"], "sim:Kamstrup 351 Combi");
    assert!(st["current_run"].is_null());

    // a run to completion, records as rig run writes them
    let rec = s.finished_run(r#"{"suites": ["readout", "pulse_out"]}"#);
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["complete"], true);
    assert_eq!(rec["summary"]["fail"], 0, "{}", rec["summary"]);
    assert!(
        rec["summary"]["pass"].as_u64().unwrap() >= 10,
        "{}",
        rec["summary"]
    );
    let (code, xml) = s.req("GET", &format!("/runs/{id}/junit.xml"), None);
    assert_eq!(code, 200);
    assert!(
        xml.contains("<testsuites") && xml.contains("readout.bcc"),
        "{xml}"
    );
    let list = s.json("/runs");
    assert_eq!(list["runs"][0]["id"], id.as_str());
    assert!(data
        .join("runs")
        .join(&id)
        .join("measurements.csv")
        .exists());

    // one run at a time: a paced run lasts long enough to be in the way
    let paced = s.start_run(r#"{"cases": ["readout.monotonic"], "paced": true}"#);
    let (code, body) = s.req("POST", "/runs", Some(r#"{"suites": ["readout"]}"#));
    assert_eq!(code, 409, "{body}");
    assert!(body.contains(&paced), "{body}");
    assert_eq!(run_state(&s, &paced), "running");
    s.wait_for("the loop to pause", |s| {
        s.json("/status")["loop_state"] == "paused_for_run"
    });
    s.wait_for("the paced run", |s| run_state(s, &paced) == "done");

    // bad requests: 400 with a message naming the problem
    for (body, needle) in [
        ("{\"suites\": [\"readout\"", "malformed"),
        ("", "empty body"),
        ("{\"suites\": [\"speed\"]}", "unknown suite \\\"speed\\\""),
        ("{\"cases\": [\"readout.nope\"]}", "unknown case"),
        ("{\"suite\": [\"readout\"]}", "unknown field"),
        ("[1, 2]", "malformed"),
    ] {
        let (code, resp) = s.req("POST", "/runs", Some(body));
        assert_eq!(code, 400, "{body}: {resp}");
        assert!(resp.contains(needle), "{body}: {resp}");
    }
    // unknown ids and paths: 404
    for p in [
        "/runs/20990101T000000Z",
        "/runs/..%2F..%2Fetc",
        "/runs/20990101T000000Z/junit.xml",
        "/nope",
    ] {
        assert_eq!(s.req("GET", p, None).0, 404, "{p}");
    }

    let m = s.req("GET", "/metrics", None).1;
    for needle in [
        "meter_rig_readouts_total ",
        "meter_rig_readout_failures_total 0",
        "meter_rig_pulses_total{port=\"2\"} ",
        "meter_rig_last_response_seconds 0.15",
        "meter_rig_runs_total 2",
        "meter_rig_run_active 0",
    ] {
        assert!(m.contains(needle), "{needle} in\n{m}");
    }

    s.signal(rustix::process::Signal::TERM);
    let (code, log) = s.exit();
    assert_eq!(code, Some(0), "{log}");
    assert!(log.contains("stopped;"), "{log}");
    let state = Store::open(&data).unwrap().load_state().unwrap();
    assert!(state.pulses["port2"] > 0 && state.readouts > 0, "{state:?}");
}

#[test]
fn serve_beyond_loopback_needs_a_token_on_every_request() {
    let data = tmp("token");
    refused(&data, &["--listen", "0.0.0.0:0"], "--token-file");
    let tok = data.join("token");
    std::fs::write(&tok, "short\n").unwrap();
    refused(
        &data,
        &["--token-file", tok.to_str().unwrap()],
        "at least 16",
    );

    std::fs::write(&tok, "0123456789abcdef-token\n").unwrap();
    let s = Serve::start(
        &data,
        &["--token-file", tok.to_str().unwrap(), "--sim-speed", "60"],
    );
    let port = s.addr.rsplit(':').next().unwrap().to_string();
    let addr = format!("127.0.0.1:{port}");
    for path in ["/status", "/metrics", "/runs", "/nope"] {
        assert_eq!(http(&addr, "GET", path, None, None).0, 401, "{path}");
        assert_eq!(
            http(&addr, "GET", path, None, Some("0123456789abcdef-tokex")).0,
            401,
            "{path}"
        );
    }
    assert_eq!(
        http(&addr, "POST", "/runs", Some("{}"), None).0,
        401,
        "a run without the token"
    );
    assert_eq!(
        http(
            &addr,
            "GET",
            "/status",
            None,
            Some("0123456789abcdef-token")
        )
        .0,
        200
    );
}

#[test]
fn serve_refuses_a_schedule_the_meter_cannot_follow() {
    let data = tmp("sched");
    let f = data.join("s.toml");
    std::fs::write(&f, "[[switch]]\nat = \"06:00\"\ntariff = 2\n").unwrap();
    // the default meter (KK 05) has no tariff inputs
    refused(
        &data,
        &["--tariff-schedule", f.to_str().unwrap()],
        "controlled by communication",
    );
    refused(
        &data,
        &["--wiring", "wiring/raspberry-pi.toml"],
        "--wiring is for",
    );
    refused(&data, &["--interval", "15 parsecs"], "unknown unit");
    refused(&data, &["--sim-speed", "0"], "expected a number > 0");
}

/// `rig serve --data DATA ARGS` must refuse to start: exit 2, `needle` in the message.
fn refused(data: &Path, args: &[&str], needle: &str) {
    let mut all = vec!["serve", "--data", data.to_str().unwrap()];
    all.extend_from_slice(args);
    let o = util::run_rig(&all);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(util::code(&o), 2, "{args:?}: {err}");
    assert!(err.contains(needle), "{args:?}: {err}");
}

fn start_slow_run(s: &Serve) -> String {
    // paced at 100× the readout suite takes over 36 s (readout.monotonic waits an hour)
    let id = s.start_run(r#"{"suites": ["readout", "pulse_out"], "paced": true}"#);
    s.wait_for("two finished cases", |s| {
        s.json(&format!("/runs/{id}"))["cases"]
            .as_array()
            .is_some_and(|c| c.len() >= 2)
    });
    id
}

#[test]
fn serve_sigterm_mid_run_finishes_the_case_in_hand_and_exits_0() {
    let data = tmp("sigterm");
    let mut s = Serve::start(&data, &["--sim-speed", "100", "--interval", "1m"]);
    let id = start_slow_run(&s);
    s.signal(rustix::process::Signal::TERM);
    let (code, log) = s.exit();
    assert_eq!(code, Some(0), "{log}");
    let rec: Value = serde_json::from_slice(
        &std::fs::read(data.join("runs").join(&id).join("record.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["complete"], false);
    assert!(
        rec["aborted"].as_str().unwrap().contains("shutting down"),
        "{rec}"
    );
    let n = rec["cases"].as_array().unwrap().len();
    assert!((2..17).contains(&n), "{n} cases");
    // after a restart the run shows as stopped, with its cases
    let s = Serve::start(&data, &["--sim-speed", "100", "--interval", "1m"]);
    let view = s.json(&format!("/runs/{id}"));
    assert_eq!(view["state"], "stopped");
    assert_eq!(view["cases"].as_array().unwrap().len(), n);
}

#[test]
fn delete_stops_a_run_in_progress_and_the_records_say_stopped() {
    let data = tmp("delete");
    let s = Serve::start(&data, &["--sim-speed", "100", "--interval", "1m"]);
    assert_eq!(s.req("DELETE", "/runs/20990101T000000Z", None).0, 404);
    let id = start_slow_run(&s);
    let (code, body) = s.req("DELETE", &format!("/runs/{id}"), None);
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "stopping"
    );
    s.wait_for("the run to end", |s| run_state(s, &id) != "running");
    let view = s.json(&format!("/runs/{id}"));
    assert_eq!(view["state"], "stopped", "{view}");
    assert_eq!(view["outcome"]["outcome"], "stopped", "{view}");
    assert_eq!(view["outcome"]["reason"]["by"], "deleted", "{view}");
    let recorded = view["cases"].as_array().unwrap().len();
    let planned = view["planned"].as_array().unwrap().len();
    assert!(recorded < planned, "{recorded} of {planned}");
    let junit = s.req("GET", &format!("/runs/{id}/junit.xml"), None).1;
    let report = quick_junit::Report::deserialize_from_str(&junit).unwrap();
    assert_eq!(report.tests, planned);
    assert!(report.errors >= planned - recorded, "{junit}");
    // a finished run cannot be stopped again
    let (code, body) = s.req("DELETE", &format!("/runs/{id}"), None);
    assert_eq!(code, 409, "{body}");
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap()["state"],
        "stopped"
    );
}

#[test]
fn a_run_request_with_a_maximum_run_time_stops_there() {
    let data = tmp("max-run-time");
    let s = Serve::start(&data, &["--interval", "1m"]);
    let id = s.start_run(r#"{"suites": ["readout"], "max_run_time_s": 1800}"#);
    s.wait_for("the run to end", |s| run_state(s, &id) != "running");
    let view = s.json(&format!("/runs/{id}"));
    assert_eq!(view["state"], "stopped", "{view}");
    assert_eq!(view["outcome"]["reason"]["by"], "max_run_time", "{view}");
    assert_eq!(
        s.req("POST", "/runs", Some(r#"{"max_run_time_s": -1}"#)).0,
        400
    );
}

#[test]
fn serve_killed_mid_run_keeps_readings_cases_and_pulse_totals() {
    let data = tmp("kill9");
    let args = ["--sim-speed", "100", "--interval", "1m"];
    let mut s = Serve::start(&data, &args);
    s.wait_for("three readouts", |s| {
        s.json("/status")["counters"]["readouts"].as_u64().unwrap() >= 3
    });
    let id = start_slow_run(&s);
    s.signal(rustix::process::Signal::KILL);
    let _ = s.exit();

    // what the killed service left: whole rows, whole records, saved totals
    let rows_before = rows(&data);
    assert!(rows_before.len() >= 3, "{} rows", rows_before.len());
    for r in &rows_before {
        assert_eq!(r[5].to_string(), "true", "{r:?}");
    }
    let rec: Value = serde_json::from_slice(
        &std::fs::read(data.join("runs").join(&id).join("record.json")).unwrap(),
    )
    .unwrap();
    let cases_before = rec["cases"].as_array().unwrap().clone();
    assert!(cases_before.len() >= 2);
    assert_eq!(rec["complete"], false);
    let saved = Store::open(&data).unwrap().load_state().unwrap();
    let pulses_before = saved.pulses["port2"];
    assert!(pulses_before > 0);
    // what a kill mid-save leaves behind goes at the next start
    std::fs::write(data.join("state.tmp"), b"{\"torn").unwrap();
    let run_dir = data.join("runs").join(&id);
    std::fs::write(run_dir.join("junit.tmp"), b"<torn").unwrap();

    let s = Serve::start(&data, &args);
    assert!(!data.join("state.tmp").exists() && !run_dir.join("junit.tmp").exists());
    let view = s.json(&format!("/runs/{id}"));
    assert_eq!(view["state"], "interrupted");
    assert_eq!(view["cases"].as_array().unwrap(), &cases_before);
    let (code, xml) = s.req("GET", &format!("/runs/{id}/junit.xml"), None);
    assert_eq!(code, 200);
    assert!(xml.contains("readout."), "{xml}");
    // the restart closed the run's records: all three files say interrupted, as one snapshot
    let dir = data.join("runs").join(&id);
    let rec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("record.json")).unwrap()).unwrap();
    assert_eq!(rec["state"], "interrupted");
    assert_eq!(rec["cases"].as_array().unwrap(), &cases_before);
    let snapshot = rec["snapshot"].as_u64().unwrap();
    assert!(
        xml.contains("name=\"run.state\" value=\"interrupted\"")
            && xml.contains(&format!("name=\"run.snapshot\" value=\"{snapshot}\"")),
        "{xml}"
    );
    let csv = std::fs::read_to_string(dir.join("measurements.csv")).unwrap();
    assert!(
        csv.lines()
            .skip(1)
            .all(|l| l.ends_with(&format!(",{snapshot}"))),
        "{csv}"
    );
    assert!(std::fs::read_dir(&dir).unwrap().all(|e| !e
        .unwrap()
        .file_name()
        .to_string_lossy()
        .ends_with(".tmp")));
    // totals continue from what was saved, and keep counting
    let st = s.json("/status");
    assert!(st["counters"]["pulses"]["port2"].as_u64().unwrap() >= pulses_before);
    s.wait_for("more pulses and rows", |s| {
        let st = s.json("/status");
        st["counters"]["pulses"]["port2"].as_u64().unwrap() > pulses_before
            && st["counters"]["readouts"].as_u64().unwrap() > saved.readouts
    });
    let rows_after = rows(&data);
    assert!(rows_after.len() > rows_before.len());
    for (a, b) in rows_before.iter().zip(&rows_after) {
        assert_eq!(a, b, "a row written before the kill changed");
    }
    // a new run is accepted: the interrupted one does not block the service
    let rec = s.finished_run(r#"{"cases": ["readout.bcc"]}"#);
    assert_eq!(rec["summary"]["pass"], 1, "{}", rec["summary"]);
}

#[test]
fn serve_reads_a_meter_over_a_pty_and_survives_the_port_vanishing() {
    let _serial = util::realtime();
    let data = tmp("pty");
    let meter = data.join("meter.toml");
    std::fs::write(
        &meter,
        std::fs::read_to_string(util::path("fixtures/meters/default.toml"))
            .unwrap()
            .replace("baud = 300", "baud = 9600"),
    )
    .unwrap();
    let link = data.join("tty");
    struct Killed(Child);
    impl Drop for Killed {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let mut sim = Killed(
        util::rig()
            .args(["sim", "--link", link.to_str().unwrap(), "--meter"])
            .arg(&meter)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    util::wait_for_path(&link);
    let target = format!("serial:{}", link.display());
    let s = Serve::start(
        &data,
        &[
            "--target",
            &target,
            "--meter",
            meter.to_str().unwrap(),
            "--interval",
            "2s",
        ],
    );
    s.wait_for("two readouts", |s| {
        s.json("/status")["counters"]["readouts"].as_u64().unwrap() >= 2
    });
    let r = s.json("/readings/latest");
    assert_eq!(r["valid"], true, "{r}");
    assert!(r["timing"].as_str().unwrap().starts_with("serial"), "{r}");
    let ms = r["response_ms"].as_f64().unwrap();
    assert!((140.0..175.0).contains(&ms), "{ms} ms for a configured 150");
    // no pins on a serial port: no pulse counters, and the pin suites skip
    assert_eq!(
        s.json("/status")["counters"]["pulses"],
        serde_json::json!({})
    );
    let rec = s.finished_run(r#"{"cases": ["readout.bcc", "pulse_out.width"]}"#);
    assert_eq!(rec["summary"]["pass"], 1, "{}", rec["summary"]);
    assert_eq!(rec["summary"]["skip"], 1, "{}", rec["summary"]);

    // the meter goes away: rows say why, the service keeps serving
    let before = s.json("/status")["counters"]["readout_failures"]
        .as_u64()
        .unwrap();
    let _ = sim.0.kill();
    let _ = sim.0.wait();
    s.wait_for("a failed readout", |s| {
        s.json("/status")["counters"]["readout_failures"]
            .as_u64()
            .unwrap()
            > before
    });
    let r = s.json("/readings/latest");
    assert_eq!(r["valid"], false);
    assert!(!r["problem"].as_str().unwrap().is_empty(), "{r}");
    assert_eq!(s.req("GET", "/metrics", None).0, 200);
}

/// A meter file: the default meter at `baud` with `faults` in its `[faults]` table.
fn faulty_meter(dir: &Path, baud: u32, faults: &str) -> PathBuf {
    let mut text = std::fs::read_to_string(util::path("fixtures/meters/default.toml"))
        .unwrap()
        .replace("baud = 300", &format!("baud = {baud}"));
    if faults.contains("response_delay_ms") {
        text = text.replace("response_delay_ms = 150.0", "");
    }
    let p = dir.join("meter.toml");
    std::fs::write(&p, format!("{text}\n{faults}\n")).unwrap();
    p
}

/// The field cases "echo" and "noise before '/'" (shared/field-cases/README.md): `rig run`,
/// `rig read` and `rig serve` give the same response time — to the identification's `/` — and
/// every path judges the exchange conforming.
#[rstest]
#[case::echo("response_delay_ms = 250.0\necho_request = true", 250.0)]
#[case::noise("response_delay_ms = 150.0\nnoise_before_answer = [0x7F]", 150.0)]
fn every_path_times_the_answer_from_its_slash(#[case] faults: &str, #[case] want_ms: f64) {
    let _serial = util::realtime();
    let data = tmp(&format!("paths-{}", want_ms as u32));
    let meter = faulty_meter(&data, 9600, faults);

    // rig run on the software meter: exact, in virtual time
    let out = data.join("out");
    let o = util::run_rig(&[
        "run",
        "--meter",
        meter.to_str().unwrap(),
        "--suite",
        "readout",
        "--out",
        out.to_str().unwrap(),
    ]);
    let rec: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(util::code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
    let m = &rec["cases"][0]["measurements"][0];
    assert_eq!(rec["cases"][0]["id"], "readout.response_time");
    assert_eq!(m["value"].as_f64().unwrap(), want_ms, "{m}");

    // rig serve's module loop on the software meter: the same number, exactly
    let serve_sim = Serve::start(
        &data.join("sim-data"),
        &[
            "--meter",
            meter.to_str().unwrap(),
            "--interval",
            "15m",
            "--sim-speed",
            "3600",
        ],
    );
    serve_sim.wait_for("a readout", |s| {
        s.req("GET", "/readings/latest", None).0 == 200
    });
    let r = serve_sim.json("/readings/latest");
    assert_eq!(r["valid"], true, "{r}");
    assert_eq!(r["response_ms"].as_f64().unwrap(), want_ms, "{r}");
    drop(serve_sim);

    // over a pty: rig read and rig serve, within the serial contract's uncertainty
    let link = data.join("tty");
    let mut sim = util::rig()
        .args(["sim", "--link", link.to_str().unwrap(), "--meter"])
        .arg(&meter)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    util::wait_for_path(&link);
    let port = link.display().to_string();
    let times = util::read_response_times(&port, 9600, 3);
    util::assert_response_accuracy(&times, want_ms, 2.0);
    let target = format!("serial:{port}");
    let s = Serve::start(
        &data.join("pty-data"),
        &[
            "--target",
            &target,
            "--meter",
            meter.to_str().unwrap(),
            "--interval",
            "2s",
        ],
    );
    s.wait_for("a readout", |s| {
        s.req("GET", "/readings/latest", None).0 == 200
    });
    let r = s.json("/readings/latest");
    assert_eq!(r["valid"], true, "{r}");
    let ms = r["response_ms"].as_f64().unwrap();
    assert!((ms - want_ms).abs() < 10.0, "{ms} ms for {want_ms}");
    drop(s);
    let _ = sim.kill();
    let _ = sim.wait();
}

/// A meter answering 600 ms after the request (004 Note 1: at most 500 ms): the module loop
/// records every readout as not conforming, says why, and counts it in `/metrics`.
#[test]
fn serve_counts_late_answers_as_readout_failures() {
    let data = tmp("late");
    let meter = faulty_meter(&data, 300, "response_delay_ms = 600.0");
    let s = Serve::start(
        &data.join("data"),
        &[
            "--meter",
            meter.to_str().unwrap(),
            "--interval",
            "15m",
            "--sim-speed",
            "3600",
        ],
    );
    s.wait_for("two readouts", |s| {
        s.json("/status")["counters"]["readouts"].as_u64().unwrap() >= 2
    });
    let r = s.json("/readings/latest");
    assert_eq!(r["valid"], false, "{r}");
    assert_eq!(r["response_ms"].as_f64().unwrap(), 600.0, "{r}");
    assert!(
        r["problem"]
            .as_str()
            .unwrap()
            .contains("600 ms after the request (limit 20–500 ms)"),
        "{r}"
    );
    let (_, metrics) = s.req("GET", "/metrics", None);
    let failures: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("meter_rig_readout_failures_total "))
        .unwrap_or_else(|| panic!("no failure counter in {metrics}"))
        .trim()
        .parse()
        .unwrap();
    assert!(failures >= 2, "{metrics}");
}

fn reading(time_utc: &str, registers: BTreeMap<String, String>) -> Reading {
    Reading {
        time_utc: time_utc.into(),
        meter_time: String::new(),
        target_time_s: 0.0,
        response_ms: None,
        timing: "edge ±0 ms".into(),
        valid: !registers.is_empty(),
        problem: if registers.is_empty() {
            "no answer".into()
        } else {
            String::new()
        },
        registers,
    }
}

#[test]
fn readings_keep_every_register_when_the_days_first_readout_fails() {
    let data = tmp("first-fails");
    let mut store = Store::open(&data).unwrap();
    let day = "2026-11-21T00:00:00.000Z";
    store
        .append_reading(&reading(day, BTreeMap::new()))
        .unwrap();
    let mut regs: BTreeMap<String, String> = COMBI_351
        .iter()
        .enumerate()
        .map(|(i, r)| (r.address.to_string(), format!("{i}")))
        .collect();
    regs.insert("9.9.9".into(), "7*kWh".into());
    store
        .append_reading(&reading("2026-11-21T00:15:00.000Z", regs))
        .unwrap();
    // the header is the readout layout, whatever the first row held
    let h = header(&data);
    let addrs: Vec<&str> = h
        .iter()
        .skip(7)
        .map(|c| c.split(" [").next().unwrap())
        .collect();
    let mut expected: Vec<&str> = COMBI_351.iter().map(|r| r.address).collect();
    expected.push("other_registers");
    assert_eq!(addrs, expected);
    let rows = rows(&data);
    assert_eq!(rows.len(), 2);
    assert!(rows[0].iter().skip(7).all(str::is_empty), "{:?}", rows[0]);
    for (i, r) in COMBI_351.iter().enumerate() {
        let col = h
            .iter()
            .position(|c| c.split(" [").next() == Some(r.address))
            .unwrap();
        assert_eq!(&rows[1][col], i.to_string().as_str(), "{}", r.address);
    }
    // an address outside the layout is kept, not dropped
    assert_eq!(&rows[1][7 + 17], "9.9.9=7*kWh");
}

/// Runs `rig ARGS` that must exit by itself within 60 s (a service that starts instead fails
/// the test rather than hanging it); returns the exit code and stderr.
fn must_exit(args: &[&str]) -> (i32, String) {
    let mut child = util::rig()
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if t0.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("rig {args:?} did not exit: it started");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status.code().expect("exited by a signal"), err)
}

#[test]
fn a_second_service_on_one_data_directory_exits_2_naming_the_first() {
    let data = tmp("two");
    let s = Serve::start(&data, &["--sim-speed", "3600", "--interval", "15m"]);
    s.wait_for("the first readout", |s| {
        s.req("GET", "/readings/latest", None).0 == 200
    });
    let pid = s.child.id();
    let (code, err) = must_exit(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("is in use") && err.contains(&format!("held by pid {pid}")),
        "{err}"
    );
    // the refused service left the first one's lock as it was
    assert_eq!(
        std::fs::read_to_string(data.join("lock")).unwrap().trim(),
        pid.to_string()
    );
    // the store refuses the same way inside one process
    let e = Store::open(&data).unwrap_err().to_string();
    assert!(e.contains(&format!("pid {pid}")), "{e}");
    // once the first has stopped, the directory is free again
    let mut s = s;
    s.signal(rustix::process::Signal::TERM);
    let (code, log) = s.exit();
    assert_eq!(code, Some(0), "{log}");
    let s = Serve::start(&data, &["--sim-speed", "3600"]);
    assert!(s.json("/status")["loop_state"].is_string());
}

#[test]
fn a_service_that_cannot_listen_writes_nothing() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let parent = tmp("cannot-listen");
    let data = parent.join("data");
    let (code, err) = must_exit(&["serve", "--listen", &addr, "--data", data.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
    assert!(
        !data.exists(),
        "the data directory was created before listening"
    );
    // nor in a data directory another service holds: its lock and files stay as they were
    let s = Serve::start(&data, &["--sim-speed", "60"]);
    let lock = std::fs::read(data.join("lock")).unwrap();
    let (code, err) = must_exit(&["serve", "--listen", &addr, "--data", data.to_str().unwrap()]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot listen"), "{err}");
    assert_eq!(std::fs::read(data.join("lock")).unwrap(), lock);
    drop(s);
}

/// A run's report page and its captures over HTTP: `GET /runs/{id}/report.html` and
/// `GET /runs/{id}/captures/{file}` (the file record.json lists); a name outside the captures
/// directory is 404.
#[test]
fn serve_serves_a_runs_report_and_its_captures() {
    let data = tmp("evidence");
    let meter = util::path("fixtures/meters/faulty-slow-sum-bcc.toml");
    let s = Serve::start(
        &data,
        &["--sim-speed", "3600", "--meter", meter.to_str().unwrap()],
    );
    let rec = s.finished_run(r#"{"cases": ["readout.response_time"]}"#);
    let id = rec["id"].as_str().unwrap().to_string();
    assert_eq!(rec["summary"]["fail"], 1, "{}", rec["summary"]);
    let (code, page) = s.req("GET", &format!("/runs/{id}/report.html"), None);
    assert_eq!(code, 200, "{page}");
    assert!(
        page.starts_with("<!DOCTYPE html>") && page.contains("readout.response_time"),
        "{page}"
    );
    let path = rec["cases"][0]["attachments"][0]["path"].as_str().unwrap();
    assert_eq!(path, "captures/readout.response_time.vcd");
    let (code, vcd) = s.req("GET", &format!("/runs/{id}/{path}"), None);
    assert_eq!(code, 200, "{vcd}");
    assert!(
        vcd.contains("$timescale 1 us $end") && vcd.contains("data_out"),
        "{vcd}"
    );
    assert!(
        page.contains(&format!("href=\"{path}\"")),
        "the page links the capture"
    );
    for bad in [
        "..%2Frecord.json",
        "record.json",
        "nothing.vcd",
        ".hidden.vcd",
    ] {
        let (code, _) = s.req("GET", &format!("/runs/{id}/captures/{bad}"), None);
        assert_eq!(code, 404, "{bad}");
    }
    let (code, _) = s.req("GET", "/runs/nope/report.html", None);
    assert_eq!(code, 404);
}
