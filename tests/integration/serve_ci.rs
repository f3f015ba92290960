//! `rig serve` as a shared rig (issue 18): the rig's name in run ids, who asked for a run, the
//! wall-clock maximum run time that ends a run its client abandoned, `GET /health`, and the
//! README's CI recipe (`contrib/ci/rig-run.sh`, curl and jq) against a local service.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::serve::{run_state, tmp, Serve};
use crate::util;

/// The default meter with `faults` as its `[faults]` table.
fn meter_with(dir: &Path, name: &str, faults: &str) -> PathBuf {
    let text = std::fs::read_to_string(util::path("fixtures/meters/default.toml")).unwrap();
    let (head, _) = text.split_once("[faults]").unwrap();
    let p = dir.join(name);
    std::fs::write(&p, format!("{head}[faults]\n{faults}\n")).unwrap();
    p
}

#[test]
fn run_ids_carry_the_rig_name_and_runs_record_who_asked() {
    let data = tmp("ci-names");
    let s = Serve::start(&data, &["--name", "lab3-pi7", "--sim-speed", "3600"]);
    let (code, body) = s.req(
        "POST",
        "/runs",
        Some(
            r#"{"cases": ["readout.response_time"], "requested_by": "https://ci.example/jobs/42"}"#,
        ),
    );
    assert_eq!(code, 202, "{body}");
    let id = serde_json::from_str::<Value>(&body).unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(id.starts_with("lab3-pi7-20"), "{id}");
    s.wait_for("the run", |s| run_state(s, &id) == "done");
    let view = s.json(&format!("/runs/{id}"));
    assert_eq!(view["requested_by"], "https://ci.example/jobs/42", "{view}");
    assert_eq!(view["request"]["rig"], "lab3-pi7", "{view}");
    assert_eq!(view["request"]["cases"][0], "readout.response_time");
    let list = s.json("/runs");
    assert_eq!(
        list["runs"][0]["requested_by"],
        "https://ci.example/jobs/42"
    );
    // the request file sits next to the run's records
    let req: Value = serde_json::from_slice(
        &std::fs::read(data.join("runs").join(&id).join("request.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(req["id"], id.as_str());
    for bad in [
        r#"{"requested_by": "line\nbreak"}"#,
        r#"{"max_wall_time_s": -1}"#,
        r#"{"max_wall_time_s": "soon"}"#,
    ] {
        assert_eq!(s.req("POST", "/runs", Some(bad)).0, 400, "{bad}");
    }
    let long = format!(r#"{{"requested_by": "{}"}}"#, "x".repeat(201));
    assert_eq!(s.req("POST", "/runs", Some(&long)).0, 400);
}

#[test]
fn a_rig_name_that_cannot_prefix_run_ids_is_refused() {
    let data = tmp("ci-bad-name");
    let o = util::run_rig(&[
        "serve",
        "--listen",
        "127.0.0.1:0",
        "--data",
        data.to_str().unwrap(),
        "--name",
        "lab 3/pi",
    ]);
    assert_eq!(util::code(&o), 2);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("--name") && err.contains("letters, digits"),
        "{err}"
    );
}

/// A paced run (100× real time: the readout suite takes over 36 s) whose client never comes
/// back: the service ends it at its wall-clock maximum, and the record says why.
fn abandoned_run_ends_at(extra: &[&str], body: &str, limit_s: f64) {
    let data = tmp(&format!(
        "ci-abandoned-{}",
        limit_s as u32 + extra.len() as u32
    ));
    let mut args = vec!["--sim-speed", "100", "--interval", "1m"];
    args.extend_from_slice(extra);
    let s = Serve::start(&data, &args);
    let t0 = Instant::now();
    let id = s.start_run(body);
    // the client goes away: nobody polls, nobody deletes
    s.wait_for("the run to end", |s| run_state(s, &id) != "running");
    let took = t0.elapsed().as_secs_f64();
    let view = s.json(&format!("/runs/{id}"));
    assert_eq!(view["state"], "stopped", "{view}");
    assert_eq!(view["outcome"]["reason"]["by"], "max_wall_time", "{view}");
    assert_eq!(view["outcome"]["reason"]["seconds"], limit_s, "{view}");
    let aborted = view["aborted"].as_str().unwrap();
    assert!(aborted.contains("wall clock"), "{aborted}");
    assert_eq!(view["request"]["max_wall_time_s"], limit_s);
    // it ended at the limit, not before, and within a wait slice and a case after it
    assert!(took >= limit_s, "ended after {took} s");
    assert!(took < limit_s + 10.0, "ended after {took} s");
    let planned = view["planned"].as_array().unwrap().len();
    assert!(view["cases"].as_array().unwrap().len() < planned);
    // the rig is free again
    assert_eq!(s.json("/health")["run"], Value::Null);
}

#[test]
fn a_run_whose_client_went_away_ends_at_its_max_wall_time() {
    abandoned_run_ends_at(
        &[],
        r#"{"suites": ["readout"], "paced": true, "max_wall_time_s": 2}"#,
        2.0,
    );
}

#[test]
fn the_services_max_wall_time_caps_every_run() {
    abandoned_run_ends_at(
        &["--max-wall-time", "3s"],
        r#"{"suites": ["readout"], "paced": true, "max_wall_time_s": 86400}"#,
        3.0,
    );
}

#[test]
fn health_says_whether_the_target_answers() {
    // healthy: ok once the first readout is in
    let data = tmp("ci-health");
    let s = Serve::start(&data, &["--name", "h1", "--sim-speed", "3600"]);
    s.wait_for("a readout", |s| s.req("GET", "/health", None).0 == 200);
    let h = s.json("/health");
    assert_eq!(h["ok"], true, "{h}");
    assert_eq!(h["target_answers"], true, "{h}");
    assert_eq!(h["rig"], "h1");
    drop(s);
    // a meter that answers wrongly is still healthy: the suites judge it
    let dir = tmp("ci-health-meters");
    let late = meter_with(
        &dir,
        "late.toml",
        "response_delay_ms = 620.0\nbcc = \"sum\"",
    );
    let s = Serve::start(
        &tmp("ci-health-late"),
        &["--sim-speed", "3600", "--meter", late.to_str().unwrap()],
    );
    s.wait_for("a readout", |s| s.req("GET", "/health", None).0 == 200);
    let h = s.json("/health");
    assert_eq!(
        (h["target_answers"].clone(), h["conforms"].clone()),
        (Value::Bool(true), Value::Bool(false)),
        "{h}"
    );
    drop(s);
    // a silent meter: 503 with the reason
    let silent = meter_with(&dir, "silent.toml", "silent = true");
    let s = Serve::start(
        &tmp("ci-health-silent"),
        &["--sim-speed", "3600", "--meter", silent.to_str().unwrap()],
    );
    s.wait_for("a failed readout", |s| {
        s.json("/status")["counters"]["readouts"]
            .as_u64()
            .unwrap_or(0)
            > 0
    });
    let (code, body) = s.req("GET", "/health", None);
    assert_eq!(code, 503, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(h["ok"], false);
    assert_eq!(h["target_answers"], false);
    assert!(
        h["reason"].as_str().unwrap().contains("did not answer"),
        "{h}"
    );
}

#[test]
fn health_is_503_before_the_first_readout() {
    // at real time a 300-baud readout takes about 12 s: the first is not in yet
    let s = Serve::start(&tmp("ci-health-early"), &["--sim-speed", "1"]);
    s.wait_for("the loop", |s| {
        s.json("/status")["loop_state"] != "starting"
    });
    let (code, body) = s.req("GET", "/health", None);
    assert_eq!(code, 503, "{body}");
    let h: Value = serde_json::from_str(&body).unwrap();
    assert!(
        h["reason"].as_str().unwrap().contains("no readout yet"),
        "{h}"
    );
}

// ---- the README's CI recipes: contrib/ci/rig-run.sh (curl and jq) and `rig remote run` ----

/// The two CI clients; they take the same arguments and exit as `rig run`.
#[derive(Clone, Copy, Debug)]
enum Client {
    Script,
    Remote,
}

fn recipe_tools() -> bool {
    util::peer_available(&["jq", "--version"], "jq", "apt-get install jq")
        && util::peer_available(&["curl", "--version"], "curl", "apt-get install curl")
}

fn client(kind: Client, s: &Serve, out: &Path, args: &[&str]) -> Command {
    let mut c = match kind {
        Client::Script => {
            let mut c = Command::new("bash");
            c.arg(util::path("contrib/ci/rig-run.sh"));
            c
        }
        Client::Remote => {
            let mut c = util::rig();
            c.args(["remote", "run"]);
            c
        }
    };
    c.args(["--url", &format!("http://{}", s.addr), "--out"])
        .arg(out)
        .args(args)
        .env("CI_JOB_URL", "https://gitlab.example/lab/-/jobs/7");
    c
}

/// A line of the client's output naming `case` with the verdict `fail`.
fn names_failure(text: &str, case: &str) -> bool {
    text.lines().any(|l| l.contains(case) && l.contains("fail"))
}

fn passes_a_healthy_rig_and_fails_a_defective_one(kind: Client) {
    let dir = tmp(&format!("ci-recipe-{kind:?}"));
    let s = Serve::start(
        &dir.join("healthy"),
        &["--name", "rig-a", "--sim-speed", "3600"],
    );
    let o = client(kind, &s, &dir.join("out-a"), &["--suite", "readout"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string() + &String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(0), "{text}");
    let junit = std::fs::read_to_string(dir.join("out-a/junit.xml")).unwrap();
    assert!(
        quick_junit::Report::deserialize_from_str(&junit)
            .unwrap()
            .tests
            > 0
    );
    let rec: Value =
        serde_json::from_slice(&std::fs::read(dir.join("out-a/record.json")).unwrap()).unwrap();
    assert_eq!(rec["requested_by"], "https://gitlab.example/lab/-/jobs/7");
    assert!(rec["id"].as_str().unwrap().starts_with("rig-a-"));
    // an unknown suite: the rig refuses, exit 2 as rig run's usage errors
    let o = client(kind, &s, &dir.join("out-x"), &["--suite", "nonsense"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("unknown suite"));
    drop(s);

    let faulty = util::path("fixtures/meters/faulty-slow-sum-bcc.toml");
    let s = Serve::start(
        &dir.join("defective"),
        &["--sim-speed", "3600", "--meter", faulty.to_str().unwrap()],
    );
    let o = client(kind, &s, &dir.join("out-b"), &["--suite", "readout"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&o.stdout).to_string();
    assert_eq!(o.status.code(), Some(1), "{text}");
    assert!(names_failure(&text, "readout.bcc"), "{text}");
    assert!(names_failure(&text, "readout.response_time"), "{text}");
}

fn cancelled_stops_its_run_and_killed_leaves_it_to_the_wall_limit(kind: Client) {
    let dir = tmp(&format!("ci-recipe-cancel-{kind:?}"));
    let s = Serve::start(
        &dir.join("data"),
        &["--sim-speed", "100", "--interval", "1m"],
    );
    let running = |s: &Serve| {
        s.json("/runs")["runs"]
            .as_array()
            .and_then(|r| r.last().cloned())
            .filter(|r| r["state"] == "running")
            .map(|r| r["id"].as_str().unwrap().to_string())
    };
    // a cancelled job (SIGTERM): the client stops its run and exits 2
    let mut child = client(
        kind,
        &s,
        &dir.join("out"),
        &["--suite", "readout", "--paced"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    s.wait_for("the run", |s| running(s).is_some());
    let id = running(&s).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(2));
    s.wait_for("the run to end", |s| run_state(s, &id) != "running");
    assert_eq!(
        s.json(&format!("/runs/{id}"))["outcome"]["reason"]["by"],
        "deleted"
    );
    // a killed job (SIGKILL): nobody deletes; the rig ends the run at its max_wall_time_s
    let mut child = client(
        kind,
        &s,
        &dir.join("out2"),
        &["--suite", "readout", "--paced", "--max-wall-time", "2"],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    s.wait_for("the second run", |s| running(s).is_some_and(|r| r != id));
    let id2 = running(&s).unwrap();
    child.kill().unwrap();
    let _ = child.wait();
    s.wait_for("the run to end", |s| run_state(s, &id2) != "running");
    let view = s.json(&format!("/runs/{id2}"));
    assert_eq!(view["outcome"]["reason"]["by"], "max_wall_time", "{view}");
    assert_eq!(view["outcome"]["reason"]["seconds"], 2.0, "{view}");
}

#[test]
fn rig_remote_run_passes_a_healthy_rig_and_fails_a_defective_one() {
    passes_a_healthy_rig_and_fails_a_defective_one(Client::Remote);
}

#[test]
fn rig_remote_run_cancelled_stops_its_run_and_killed_leaves_it_to_the_wall_limit() {
    cancelled_stops_its_run_and_killed_leaves_it_to_the_wall_limit(Client::Remote);
}

#[test]
fn rig_remote_run_cannot_reach_a_rig_and_exits_2() {
    let o = util::run_rig(&[
        "remote",
        "run",
        "--url",
        "http://127.0.0.1:1",
        "--suite",
        "readout",
    ]);
    assert_eq!(util::code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("cannot reach"));
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs curl and jq (apt-get install curl jq); run with cargo test --features peers (.ci/run does)"
)]
fn the_readme_ci_recipe_passes_a_healthy_rig_and_fails_a_defective_one() {
    if recipe_tools() {
        passes_a_healthy_rig_and_fails_a_defective_one(Client::Script);
    }
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs curl and jq (apt-get install curl jq); run with cargo test --features peers (.ci/run does)"
)]
fn the_readme_ci_recipe_cancelled_stops_its_run_and_killed_leaves_it_to_the_wall_limit() {
    if recipe_tools() {
        cancelled_stops_its_run_and_killed_leaves_it_to_the_wall_limit(Client::Script);
    }
}

#[test]
fn rig_remote_run_sends_the_token_of_its_token_file() {
    let dir = tmp("ci-remote-token");
    let token = dir.join("token");
    std::fs::write(&token, "abcdefghijklmnopqrstuvwx\n").unwrap();
    let s = Serve::start(
        &dir.join("data"),
        &[
            "--sim-speed",
            "3600",
            "--token-file",
            token.to_str().unwrap(),
        ],
    );
    let args = ["--case", "readout.identification"];
    let o = client(Client::Remote, &s, &dir.join("out"), &args)
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("HTTP 401"));
    let mut with = args.to_vec();
    with.extend(["--token-file", token.to_str().unwrap()]);
    let o = client(Client::Remote, &s, &dir.join("out"), &with)
        .output()
        .unwrap();
    assert_eq!(
        o.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}
