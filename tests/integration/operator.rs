//! The operator's path: every misuse gets a clear answer (issue 20). One test per kind of
//! trouble a user would notice: misconfiguration refused at once with every problem listed,
//! selections, stopping, output plumbing, stale port state, HTTP error shapes, messages and
//! records for people.

use crate::util::{code, run_rig, scratch};

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// An empty wiring file is refused by every command that takes one, before anything waits.
#[test]
fn an_empty_wiring_file_is_refused_at_once() {
    let dir = scratch("op-empty-wiring");
    let empty = dir.join("empty.toml");
    std::fs::write(&empty, "").unwrap();
    let e = empty.to_str().unwrap();
    let t0 = std::time::Instant::now();
    for args in [
        vec!["wiring", "check", e],
        vec![
            "run",
            "--target",
            &format!("gpio:{e}"),
            "--out",
            dir.join("out").to_str().unwrap(),
        ],
        vec![
            "serve",
            "--target",
            "gpio",
            "--wiring",
            e,
            "--listen",
            "127.0.0.1:0",
            "--data",
            dir.join("data").to_str().unwrap(),
        ],
    ] {
        let o = run_rig(&args);
        assert_eq!(
            code(&o),
            2,
            "{args:?} accepted an empty wiring file: {}",
            text(&o.stderr)
        );
        assert!(
            text(&o.stderr).contains("nothing is wired"),
            "{args:?}: {}",
            text(&o.stderr)
        );
    }
    assert!(
        t0.elapsed().as_secs() < 20,
        "refusing took {:?}",
        t0.elapsed()
    );
}

/// A wiring file with several problems lists every one of them in one answer.
#[test]
fn a_wrong_wiring_file_lists_every_problem() {
    let dir = scratch("op-wrong-wiring");
    let f = dir.join("two-wrong.toml");
    // both ports with roles KK 01 does not give them, and a loopback on an entry not wired
    let good = std::fs::read_to_string(crate::util::path("wiring/raspberry-pi.toml")).unwrap();
    std::fs::write(&f, good + "\n[[loopback]]\nentry = \"nowhere\"\n").unwrap();
    let o = run_rig(&["wiring", "check", f.to_str().unwrap(), "--kk", "01"]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(
        err.contains("entry port1: role pulse_in is not possible with KK 01"),
        "{err}"
    );
    assert!(
        err.contains("entry port2: role pulse_out is not possible with KK 01"),
        "{err}"
    );
    assert!(
        err.contains("bad loopback: entry `nowhere` is not wired"),
        "{err}"
    );
    assert!(err.contains("3 problems:\n  - entry port1"), "{err}");
}

/// Options that would make a run judge the wrong thing are refused before it starts: `--baud`
/// against the software meter (the profile says 300), a readout interval shorter than a readout.
#[test]
fn options_that_misjudge_are_refused() {
    let dir = scratch("op-options");
    let o = run_rig(&[
        "run",
        "--baud",
        "9600",
        "--out",
        dir.join("out").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2, "{}", text(&o.stdout));
    assert!(
        text(&o.stderr).contains("--baud 9600 is for serial targets"),
        "{}",
        text(&o.stderr)
    );
    assert!(
        !dir.join("out/record.json").exists(),
        "a refused run wrote records"
    );
    let o = run_rig(&[
        "serve",
        "--interval",
        "1ms",
        "--listen",
        "127.0.0.1:0",
        "--data",
        dir.join("data").to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 2);
    let err = text(&o.stderr);
    assert!(
        err.contains("is shorter than one readout of this meter (300 baud"),
        "{err}"
    );
    assert!(err.contains("use at least 13s"), "{err}");
}

/// `--suite` and `--case` together select the union: the suite's cases and the named case.
#[test]
fn suite_and_case_select_their_union() {
    let dir = scratch("op-union");
    let out = dir.join("out");
    let o = run_rig(&[
        "run",
        "--suite",
        "pulse_in",
        "--case",
        "readout.bcc",
        "--out",
        out.to_str().unwrap(),
    ]);
    assert_eq!(code(&o), 0, "{}{}", text(&o.stdout), text(&o.stderr));
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
    let ids: Vec<&str> = rec["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["readout.bcc", "pulse_in.count"], "{ids:?}");
}

/// `rig serve` stops gracefully on SIGHUP as on SIGTERM, keeps answering `/status` with
/// `stopping` while the case in hand finishes, and a second signal exits at once.
#[test]
fn serve_honours_sighup_and_a_second_signal() {
    use crate::serve::Serve;
    use rustix::process::Signal;
    // SIGHUP: the graceful stop, exit 0
    let data = scratch("op-serve-hup");
    let mut s = Serve::start(&data, &["--sim-speed", "100", "--interval", "1m"]);
    s.signal(Signal::HUP);
    let (c, log) = s.exit();
    assert_eq!(c, Some(0), "{log}");
    assert!(log.contains("SIGHUP: stopping"), "{log}");
    // mid paced run: the port stays open with `stopping`, then a second signal exits at once
    let data = scratch("op-serve-twice");
    let mut s = Serve::start(&data, &["--sim-speed", "1", "--interval", "1m"]);
    let _id = start_slow_run_at(&s);
    s.signal(Signal::TERM);
    s.wait_for("stopping on /status", |s| {
        s.json("/status")["loop_state"] == "stopping"
    });
    let t0 = std::time::Instant::now();
    s.signal(Signal::INT);
    let (c, log) = s.exit();
    assert_eq!(c, Some(130), "{log}");
    assert!(
        t0.elapsed().as_secs() < 10,
        "second signal took {:?}",
        t0.elapsed()
    );
}

/// Starts a paced readout run that takes minutes at speed 1 and waits until it is running.
fn start_slow_run_at(s: &crate::serve::Serve) -> String {
    let id = s.start_run(r#"{"suites": ["readout"], "paced": true}"#);
    s.wait_for("the run in hand", |s| {
        s.json("/status")["loop_state"] == "paused_for_run"
    });
    id
}

/// A `rig run` stopped at once by a second signal says so and leaves records that say
/// `stopped` with the reason, never a `running` record with `aborted: null`.
#[test]
fn run_stopped_at_once_says_so_and_closes_its_records() {
    use rustix::process::{kill_process, Pid, Signal};
    use std::process::Stdio;
    let _rt = crate::util::realtime();
    let dir = scratch("op-run-twice");
    let link = dir.join("link");
    let sim = crate::util::SimLink::start(&link, &[]);
    let out = dir.join("out");
    let run = crate::util::rig()
        .args([
            "run",
            "--suite",
            "readout",
            "--out",
            out.to_str().unwrap(),
            "--target",
        ])
        .arg(format!("serial:{}", link.display()))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = Pid::from_raw(run.id() as i32).unwrap();
    // the first readout takes ~13 s at 300 baud: both signals land while it is in hand
    let t0 = std::time::Instant::now();
    while !out.join("record.json").exists() && t0.elapsed().as_secs() < 20 {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    kill_process(pid, Signal::INT).unwrap();
    std::thread::sleep(std::time::Duration::from_millis(500));
    kill_process(pid, Signal::INT).unwrap();
    let o = run.wait_with_output().unwrap();
    drop(sim);
    assert_eq!(o.status.code(), Some(130), "{}", text(&o.stderr));
    assert!(
        text(&o.stderr).contains("SIGINT again: pins in safe state, stopped at once"),
        "{}",
        text(&o.stderr)
    );
    let rec: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
    assert_eq!(rec["state"], "stopped", "{rec}");
    assert!(
        rec["aborted"]
            .as_str()
            .unwrap()
            .contains("second signal (SIGINT)"),
        "{rec}"
    );
    assert_eq!(rec["outcome"]["reason"]["signal"], "SIGINT", "{rec}");
}

/// Output into a reader that went away (`rig run | head`) ends quietly with no panic, as
/// ripgrep does: exit 0, nothing on stderr but what the command says anyway.
#[test]
fn a_broken_pipe_exits_quietly() {
    use std::process::Stdio;
    let dir = scratch("op-pipe");
    let out = dir.join("out");
    let telegram = crate::util::path("fixtures/telegrams/kamstrup-351-worked-example.txt");
    for args in [
        vec!["run", "--out", out.to_str().unwrap()],
        vec!["run", "--list"],
        vec!["decode", "--format", "json", telegram.to_str().unwrap()],
        vec!["wiring", "check", "wiring/raspberry-pi.toml"],
    ] {
        let mut child = crate::util::rig()
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        drop(child.stdout.take()); // the reader goes away before rig writes
        let o = child.wait_with_output().unwrap();
        let err = text(&o.stderr);
        assert_eq!(o.status.code(), Some(0), "{args:?}: {err}");
        assert!(
            !err.contains("panicked") && !err.contains("Broken pipe"),
            "{args:?}: {err}"
        );
    }
}

/// A real-time run whose stderr is a log, not a terminal, still says what it does: a line per
/// case and a heartbeat while a case is in hand (every minute; every second here).
#[test]
fn a_real_time_run_reports_progress_to_a_log() {
    let _rt = crate::util::realtime();
    let dir = scratch("op-progress");
    let link = dir.join("link");
    let sim = crate::util::SimLink::start(&link, &[]);
    let o = crate::util::rig()
        .args(["run", "--case", "readout.bcc", "--out"])
        .arg(dir.join("out"))
        .arg("--target")
        .arg(format!("serial:{}", link.display()))
        .env("METER_RIG_TEST_HEARTBEAT_S", "1")
        .output()
        .unwrap();
    drop(sim);
    let err = text(&o.stderr);
    assert_eq!(code(&o), 0, "{err}");
    // the plan first, then each line with the case's expected time and the ETA (issue 16)
    assert!(
        err.contains("plan for ") && err.contains("in sequence"),
        "{err}"
    );
    assert!(
        err.contains("rig: readout.bcc: started (expected "),
        "{err}"
    );
    assert!(err.contains("left in the case"), "{err}");
    assert!(err.contains("rig: readout.bcc: still running ("), "{err}");
    assert!(
        err.lines()
            .any(|l| l.contains("still running (") && l.contains("in the run")),
        "{err}"
    );
    assert!(err.contains("rig: readout.bcc: pass ("), "{err}");
}

/// A read that gave up leaves the rest of the answer on the line; the next read waits for the
/// line to be quiet and reads a healthy meter as healthy. A read at the wrong rate says which
/// rate the characters came at.
#[test]
fn stale_answers_are_flushed_and_a_wrong_rate_is_named() {
    let _rt = crate::util::realtime();
    let dir = scratch("op-stale");
    let link = dir.join("link");
    let sim = crate::util::SimLink::start(&link, &[]);
    let port = link.to_str().unwrap();
    let o = run_rig(&["read", "--port", port, "--timeout-ms", "2000"]);
    assert_eq!(code(&o), 1, "a cut read is undecided: {}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("--timeout-ms for rig read"),
        "{}",
        text(&o.stdout)
    );
    let o = run_rig(&["read", "--port", port]);
    assert_eq!(code(&o), 0, "the read after a cut one: {}", text(&o.stdout));
    assert!(
        text(&o.stdout).contains("received        359 bytes, complete"),
        "{}",
        text(&o.stdout)
    );
    let o = run_rig(&["read", "--port", port, "--baud", "9600"]);
    drop(sim);
    assert!(
        text(&o.stdout).contains("the meter likely sends at 300 baud (try --baud 300)"),
        "{}",
        text(&o.stdout)
    );
}

/// Every HTTP error is JSON with an `error` that names the problem in the API's terms (no
/// internal type names), and a run request must be a JSON object.
#[test]
fn http_errors_are_always_json() {
    use crate::serve::{http, Serve};
    let data = scratch("op-http");
    let s = Serve::start(&data, &["--sim-speed", "100", "--interval", "1m"]);
    let big = format!("{{\"suites\": [\"{}\"]}}", "x".repeat(3 << 20));
    for (method, path, body, status, needle) in [
        ("POST", "/runs", "[]", 400, "expected a JSON object"),
        (
            "POST",
            "/runs",
            r#"[["readout"],[],false]"#,
            400,
            "got an array",
        ),
        (
            "POST",
            "/runs",
            "{\"suites\": 7}",
            400,
            "malformed run request",
        ),
        (
            "DELETE",
            "/status",
            "",
            405,
            "DELETE is not allowed on /status",
        ),
        ("POST", "/runs", big.as_str(), 413, "too large"),
    ] {
        let (code, resp) = http(&s.addr, method, path, Some(body), None);
        assert_eq!(code, status, "{method} {path}: {resp}");
        let v: serde_json::Value = serde_json::from_str(&resp)
            .unwrap_or_else(|e| panic!("{method} {path}: not JSON ({e}): {resp}"));
        let msg = v["error"].as_str().unwrap();
        assert!(msg.contains(needle), "{method} {path}: {msg}");
        assert!(!msg.contains("RunBody"), "{msg}");
    }
}

/// Error messages name the problem in the user's terms: examples that work, both spellings of
/// a framing, the file's line and column, a path that is a file, no Rust type names.
#[test]
fn messages_speak_the_users_language() {
    let dir = scratch("op-messages");
    let file = dir.join("a-file");
    std::fs::write(&file, "").unwrap();
    let meter = std::fs::read_to_string(crate::util::path("fixtures/meters/default.toml"))
        .unwrap()
        .replace("kk = 5 ", "kk = \"five\" ");
    let bad_meter = dir.join("bad-type.toml");
    std::fs::write(&bad_meter, meter).unwrap();
    let sched = dir.join("schedule.toml");
    std::fs::write(&sched, "[[switch]]\nat = \"06:00\ntariff = 2\n").unwrap();
    let data = dir.join("data");
    let (f, m, s, d) = (
        file.to_str().unwrap(),
        bad_meter.to_str().unwrap(),
        sched.to_str().unwrap(),
        data.to_str().unwrap(),
    );
    for (args, want, not) in [
        (
            vec!["run", "--target", "serial:"],
            "--target serial:/dev/ttyUSB0",
            "raspberry-pi.toml",
        ),
        (
            vec!["run", "--target", "pi:"],
            "--target pi:wiring/raspberry-pi.toml",
            "/dev/ttyUSB0",
        ),
        (
            vec!["run", "--out", f],
            "exists and is not a directory: choose another --out",
            "os error 17",
        ),
        (
            vec!["serve", "--data", f, "--listen", "127.0.0.1:0"],
            "exists and is not a directory: choose another --data",
            "os error 17",
        ),
        (
            vec!["run", "--meter", m, "--out", d],
            "expected a whole number (0–255)",
            "u8",
        ),
        (
            vec![
                "serve",
                "--tariff-schedule",
                s,
                "--data",
                d,
                "--listen",
                "127.0.0.1:0",
            ],
            "schedule.toml:2:",
            "\u{0}",
        ),
        (
            vec!["sim", "--link", d, "--framing", "x"],
            "seven-bit (also spelled 7bit",
            "\u{0}",
        ),
        (
            vec!["read", "--port", f, "--framing", "x"],
            "seven-bit",
            "\u{0}",
        ),
    ] {
        let o = run_rig(&args);
        let err = text(&o.stderr);
        assert_eq!(code(&o), 2, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: want {want:?} in {err}");
        assert!(!err.contains(not), "{args:?}: {not:?} in {err}");
    }
    // a control character as the BCC is named with its code once, not `ETX (0x03) (0x03)`
    let telegram = std::fs::read(crate::util::path(
        "fixtures/telegrams/kamstrup-351-worked-example.txt",
    ))
    .unwrap();
    let etx = dir.join("bcc-is-etx.txt");
    std::fs::write(&etx, [&telegram[..telegram.len() - 1], &[0x03]].concat()).unwrap();
    let o = run_rig(&["decode", etx.to_str().unwrap()]);
    let out = text(&o.stdout) + &text(&o.stderr);
    assert!(
        out.contains("BCC received ETX (0x03); the xor rule expects '7' (0x37)"),
        "{out}"
    );
    assert!(!out.contains("(0x03) (0x03)"), "{out}");
    // both spellings of the plain 7-bit framing are accepted by read (the port is missing here)
    for spelling in ["7bit", "seven-bit"] {
        let o = run_rig(&["read", "--port", d, "--framing", spelling]);
        assert!(
            !text(&o.stderr).contains("invalid value"),
            "{spelling}: {}",
            text(&o.stderr)
        );
    }
}

/// The readings CSV is for spreadsheets: register cells are numbers, units are in the header,
/// and the meter's own clock has a column.
#[test]
fn readings_are_numbers_with_units_and_the_meter_clock() {
    use crate::serve::Serve;
    let data = scratch("op-readings");
    let s = Serve::start(&data, &["--sim-speed", "3600", "--interval", "15m"]);
    s.wait_for("two readouts", |s| {
        s.json("/status")["counters"]["readouts"].as_u64().unwrap() >= 2
    });
    drop(s);
    let file = std::fs::read_dir(data.join("readings"))
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let mut rd = csv::Reader::from_path(&file).unwrap();
    let h = rd.headers().unwrap().clone();
    let col = |name: &str| {
        h.iter()
            .position(|c| c == name)
            .unwrap_or_else(|| panic!("no column {name}: {h:?}"))
    };
    let (energy, peak, clock) = (col("1.8.0 [kWh]"), col("1.6.0 [kW]"), col("meter_time"));
    let row = rd.records().next().unwrap().unwrap();
    assert!(row[energy].parse::<f64>().is_ok(), "{:?}", &row[energy]);
    assert!(row[peak].parse::<f64>().is_ok(), "{:?}", &row[peak]);
    // the default meter's clock starts at its file's `start` (2026-01-01), not the wall clock
    assert!(
        row[clock].starts_with("2026-01-01T00:"),
        "{:?}",
        &row[clock]
    );
}

/// `cargo test` leaves nothing in /tmp: every test writes under Cargo's `target/tmp` (this
/// guards the sources, so a new test cannot bring the litter back unnoticed).
#[test]
fn tests_write_under_target_tmp_not_tmp() {
    let needle = ["std::env::", "temp_dir()"].concat();
    let mut offenders = Vec::new();
    let mut stack = vec![crate::util::path("rig"), crate::util::path("tests")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && std::fs::read_to_string(&p).unwrap().contains(&needle)
            {
                offenders.push(p.display().to_string());
            }
        }
    }
    assert!(offenders.is_empty(), "tests writing to /tmp: {offenders:?}");
}
