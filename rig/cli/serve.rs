//! `rig serve`: the module emulator as a service, with an HTTP API for status, readings and
//! conformance runs.
//!
//! One hardware thread owns the target ([`meter_rig::service::worker`]); the HTTP server (axum on
//! a single-threaded tokio runtime) only reads the shared status, reads records from the data
//! directory and queues runs. Exit codes: 0 after SIGTERM/SIGINT (the row or case in hand
//! finished, records written, pins released); 1 if the hardware thread died; 2 setup errors.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::time::Duration;

use anyhow::{bail, Context};
use axum::body::Bytes;
use axum::extract::{Path as UrlPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use serde::Deserialize;
use serde_json::json;

use meter_rig::meter::calendar;
use meter_rig::meter::config::MeterSpec;
use meter_rig::pins::safe;
use meter_rig::service::paced::Paced;
use meter_rig::service::schedule::Schedule;
use meter_rig::service::store::{self, Store};
use meter_rig::service::worker::{self, Command, LoopConfig, RunRequest, Shared, Worker};
use meter_rig::sim::SimTarget;
use meter_rig::suite;
use meter_rig::suite::session::StopReason;
use meter_rig::target::Target;

/// Arguments of `rig serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// What to play the module for: `sim` (the software meter, paced to real time × --sim-speed),
    /// `serial:PATH`, `gpio[:WIRING.toml]` or `pi[:WIRING.toml]`.
    #[arg(long, default_value = "sim")]
    pub target: String,
    /// Meter file (the software meter to build, or the expected configuration of a real meter).
    #[arg(long)]
    pub meter: Option<PathBuf>,
    /// Wiring file for `--target gpio` or `--target pi`.
    #[arg(long)]
    pub wiring: Option<PathBuf>,
    /// Address to listen on. Anything but a loopback address needs --token-file.
    #[arg(long, default_value = "127.0.0.1:8061")]
    pub listen: String,
    /// Data directory: readings/, state.json, runs/.
    #[arg(long, default_value = "rig-data")]
    pub data: PathBuf,
    /// Time between readouts (e.g. 15m, 30s, 1h, 900), on the meter's clock.
    #[arg(long, default_value = "15m", value_parser = parse_duration)]
    pub interval: Duration,
    /// Tariff schedule (TOML, `[[switch]] at = "06:00" tariff = 2`) driven on the tariff inputs.
    #[arg(long)]
    pub tariff_schedule: Option<PathBuf>,
    /// File holding the API token; every request must then send `Authorization: Bearer TOKEN`.
    #[arg(long)]
    pub token_file: Option<PathBuf>,
    /// Software meter only: how many times faster than real time its module loop runs.
    #[arg(long, default_value_t = 1.0)]
    pub sim_speed: f64,
    /// Line rate for serial targets (default: the meter file's); refused for other targets.
    #[arg(long)]
    pub baud: Option<u32>,
    /// Serial framing: soft7e1 or uart.
    #[arg(long, default_value = "soft7e1")]
    pub framing: String,
    /// This rig's name (1–40 letters, digits, `-`), the prefix of its run ids
    /// (`NAME-20261121T101530Z`) so ids stay unique across rigs. Default: the host name.
    #[arg(long)]
    pub name: Option<String>,
    /// Longest a run may take on the service's wall clock, from its request (e.g. 6h, 90m):
    /// a run whose client went away ends there by itself, its records saying why. A request's
    /// `max_wall_time_s` may only shorten it. The default is above the longest full run on a
    /// real meter (readout.hour_counter's 24 h plus pulse_out.constant's 2 h 15 min).
    #[arg(long, default_value = "48h", value_parser = parse_duration)]
    pub max_wall_time: Duration,
}

/// Parses `15m`, `30s`, `1h`, `2d`, `250ms` or plain seconds.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (num, unit) = s.split_at(split);
    let x: f64 = num
        .parse()
        .map_err(|_| format!("{s:?}: expected a duration such as 15m, 30s, 1h or 900"))?;
    let k = match unit.trim() {
        "" | "s" => 1.0,
        "ms" => 1e-3,
        "m" | "min" => 60.0,
        "h" => 3600.0,
        "d" => 86_400.0,
        u => return Err(format!("{s:?}: unknown unit {u:?} (use ms, s, m, h or d)")),
    };
    let secs = x * k;
    if !(0.001..=31.0 * 86_400.0).contains(&secs) {
        return Err(format!("{s:?}: expected between 1 ms and 31 days"));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// The shortest `--interval` for `spec`: one whole readout at its line rate (the request, the
/// longest conforming response time of 500 ms, and the healthy answer's characters at 10 bits
/// each), rounded up to a whole second.
fn shortest_interval(spec: &MeterSpec) -> Duration {
    let chars = meter_rig::sim::SoftMeter::new(spec.clone())
        .answer_chars()
        .len()
        + 5;
    let secs = chars as f64 * 10.0 / f64::from(spec.baud) + 0.5;
    Duration::from_secs(secs.ceil() as u64)
}

/// Refuses an `--interval` shorter than one readout, which would read the meter back to back.
fn check_interval(interval: Duration, spec: &MeterSpec) -> anyhow::Result<()> {
    let min = shortest_interval(spec);
    if interval < min {
        bail!(
            "--interval {:?} is shorter than one readout of this meter ({} baud: about {} s for              the request, the answer and its response time); use at least {}s (the meter logs              every 15m, the default)",
            interval,
            spec.baud,
            min.as_secs(),
            min.as_secs()
        );
    }
    Ok(())
}

/// The target the hardware thread opened, with the software meter's pacing switch.
type Opened = (Box<dyn Target>, Option<Arc<AtomicBool>>);

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    commands: Arc<Mutex<mpsc::Sender<Command>>>,
    root: PathBuf,
    token: Option<Arc<String>>,
    /// The rig's name, the prefix of its run ids.
    name: Arc<String>,
    /// The service's wall-clock maximum run time (`--max-wall-time`).
    max_wall: Duration,
}

fn error(status: StatusCode, msg: impl Into<String>) -> Response {
    (status, Json(json!({ "error": msg.into() }))).into_response()
}

/// Constant-time comparison, so a wrong token does not leak its common prefix through timing.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(app): State<App>, req: Request, next: Next) -> Response {
    if let Some(token) = &app.token {
        let given = req
            .headers()
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        if !given.is_some_and(|g| same(g.trim().as_bytes(), token.as_bytes())) {
            let mut r = error(
                StatusCode::UNAUTHORIZED,
                "missing or wrong token: send `Authorization: Bearer TOKEN` with the token from --token-file",
            );
            r.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            return r;
        }
    }
    next.run(req).await
}

async fn status(State(app): State<App>) -> Response {
    Json(app.shared.snapshot()).into_response()
}

/// `GET /health`: 200 when the service can take a run and the target answered its last readout
/// (or a run owns the target now), else 503; both with `{"ok", "rig", "loop_state",
/// "target_answers", "conforms", "run", "last_readout_age_s", "reason"}`. For labgrid's and
/// CI's health checks: a meter that answers wrongly is healthy here (the suites judge it).
async fn health(State(app): State<App>) -> Response {
    let h = health_of(&app.shared.snapshot(), &app.name);
    let code = if h["ok"] == json!(true) {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(h)).into_response()
}

/// The health verdict from the service's status: the loop's state and the last readout's
/// answer. `last_readout_age_s` (on the target's clock) is information, not a verdict: right
/// after a long run the last readout is old until the loop's next one.
fn health_of(s: &worker::Status, rig: &str) -> serde_json::Value {
    let last = s.last_readout.as_ref();
    let age = last.map(|r| s.target_time_s - r.target_time_s);
    let answered = last.map(|r| r.response_ms.is_some());
    let reason = match (s.loop_state, &s.current_run, last) {
        (worker::LoopPhase::Starting, ..) => Some("the target is being opened".to_string()),
        (worker::LoopPhase::Stopping | worker::LoopPhase::Stopped, ..) => {
            Some("the service is stopping".into())
        }
        (_, Some(_), _) => None,
        (_, None, None) => Some(
            "no readout yet: the first is taken at start (a 300-baud readout takes about 12 s)"
                .into(),
        ),
        (_, None, Some(r)) if r.response_ms.is_none() => Some(format!(
            "the target did not answer the last readout: {}",
            r.problem
        )),
        _ => None,
    };
    json!({
        "ok": reason.is_none(),
        "rig": rig,
        "loop_state": s.loop_state,
        "target_answers": answered,
        "conforms": last.map(|r| r.valid),
        "run": s.current_run,
        "last_readout_age_s": age,
        "reason": reason,
    })
}

async fn latest(State(app): State<App>) -> Response {
    match app.shared.snapshot().last_readout {
        Some(r) => Json(r).into_response(),
        None => error(StatusCode::NOT_FOUND, "no readout yet"),
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RunBody {
    #[serde(default)]
    suites: Vec<String>,
    #[serde(default)]
    cases: Vec<String>,
    #[serde(default)]
    paced: bool,
    /// Stop the run after this many seconds on the target's clock.
    #[serde(default)]
    max_run_time_s: Option<f64>,
    /// Stop the run after this many seconds on the service's wall clock (at most
    /// `--max-wall-time`).
    #[serde(default)]
    max_wall_time_s: Option<f64>,
    /// Who asked (free text, e.g. a CI job URL), recorded with the run.
    #[serde(default)]
    requested_by: Option<String>,
}

/// Longest `requested_by`, characters.
const REQUESTED_BY_MAX: usize = 200;

/// A run request that passed every check.
struct Checked {
    body: RunBody,
    max_run_time: Option<Duration>,
    max_wall: Duration,
}

/// Seconds ≥ 0 (below ten million) as a duration; `None` for anything else.
fn seconds(x: f64) -> Option<Duration> {
    (x.is_finite() && (0.0..1e7).contains(&x)).then(|| Duration::from_secs_f64(x))
}

/// Checks a parsed run request: known suites and cases, limits ≥ 0, a printable
/// `requested_by`. The wall-clock limit is the request's or the service's, whichever is shorter.
/// Errors are the 400 answer's message.
fn check_run(body: RunBody, service_max_wall: Duration) -> Result<Checked, String> {
    let bad = |m: String| Err(m);
    for s in &body.suites {
        if !suite::suite_names().contains(&s.as_str()) {
            return bad(format!(
                "unknown suite {s:?}: expected one of {}",
                suite::suite_names().join(", ")
            ));
        }
    }
    for c in &body.cases {
        if !suite::case_ids().contains(&c.as_str()) {
            return bad(format!(
                "unknown case {c:?}: expected one of {}",
                suite::case_ids().join(", ")
            ));
        }
    }
    let max_run_time = match body.max_run_time_s {
        None => None,
        Some(x) => match seconds(x) {
            Some(d) => Some(d),
            None => return bad(format!("max_run_time_s {x}: expected seconds ≥ 0")),
        },
    };
    let max_wall = match body.max_wall_time_s {
        None => service_max_wall,
        Some(x) => match seconds(x) {
            Some(d) => d.min(service_max_wall),
            None => return bad(format!("max_wall_time_s {x}: expected seconds ≥ 0")),
        },
    };
    if let Some(who) = &body.requested_by {
        if who.chars().count() > REQUESTED_BY_MAX || who.chars().any(char::is_control) {
            return bad(format!(
                "requested_by: expected at most {REQUESTED_BY_MAX} characters without control \
                 characters (e.g. a CI job URL), got {} characters",
                who.chars().count()
            ));
        }
    }
    Ok(Checked {
        body,
        max_run_time,
        max_wall,
    })
}

/// Writes `runs/ID/request.json`: who asked for the run, when (UTC), on which rig, with what
/// selection and limits. `GET /runs/{id}` shows it as `request` (and `requested_by`).
fn write_request(app: &App, id: &str, c: &Checked) -> std::io::Result<()> {
    let dir = store::run_dir(&app.root, id);
    std::fs::create_dir_all(&dir)?;
    let req = json!({
        "id": id,
        "rig": app.name.as_str(),
        "requested_by": c.body.requested_by,
        "received_utc": meter_rig::report::utc_now(),
        "suites": c.body.suites,
        "cases": c.body.cases,
        "paced": c.body.paced,
        "max_run_time_s": c.max_run_time.map(|d| d.as_secs_f64()),
        "max_wall_time_s": c.max_wall.as_secs_f64(),
    });
    let bytes = serde_json::to_vec_pretty(&req).expect("request serialises");
    meter_rig::report::write_atomic(&dir.join("request.json"), &bytes)
}

/// Ends run `id` at `limit` on the wall clock if it is still in progress then (a client that
/// went away cannot leave the rig taken). The watch looks once a minute whether the run is still
/// the current one and ends with it, so finished runs leave no timers behind.
fn watch_wall_time(shared: Arc<Shared>, id: String, limit: Duration) {
    tokio::spawn(async move {
        let end = tokio::time::Instant::now() + limit;
        loop {
            let now = tokio::time::Instant::now();
            if now >= end {
                break;
            }
            tokio::time::sleep((end - now).min(Duration::from_secs(60))).await;
            if shared.current_run().as_deref() != Some(id.as_str()) {
                return;
            }
        }
        let reason = StopReason::MaxWallTime {
            seconds: limit.as_secs_f64(),
        };
        if shared.stop_run_for(&id, reason).is_ok() {
            eprintln!(
                "rig serve: run {id} reached its maximum run time of {} s (wall clock); stopping it",
                limit.as_secs_f64()
            );
        }
    });
}

/// The shape of a run request, for error messages.
const RUN_BODY_SHAPE: &str =
    "{\"suites\": [\"readout\"], \"cases\": [], \"paced\": false, \"max_run_time_s\": null}";

/// Parses a run request strictly: a JSON object with only the known fields (`[]` or an array
/// of the fields' values is malformed, although serde would read a struct from a sequence).
fn parse_run_body(body: &[u8]) -> Result<RunBody, String> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(format!(
            "empty body: send a JSON object such as {RUN_BODY_SHAPE} ({{\"suites\": []}} runs every suite)"
        ));
    }
    let value: serde_json::Value = serde_json::from_slice(body)
        .map_err(|e| format!("malformed run request: not JSON ({e}); expected {RUN_BODY_SHAPE}"))?;
    if !value.is_object() {
        return Err(format!(
            "malformed run request: expected a JSON object such as {RUN_BODY_SHAPE}, got {}",
            json_kind(&value)
        ));
    }
    serde_json::from_value(value)
        .map_err(|e| format!("malformed run request: {e}; expected {RUN_BODY_SHAPE}"))
}

fn json_kind(v: &serde_json::Value) -> &'static str {
    match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

/// Every error answer is JSON (`{"error": …}`), also those axum makes itself: 405 (with the
/// Allow header), 413 (a body over the limit), 415 and the like, which are plain text or empty.
async fn json_errors(req: Request, next: Next) -> Response {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let resp = next.run(req).await;
    let status = resp.status();
    let is_json = resp
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|v| v.as_bytes().starts_with(b"application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return resp;
    }
    let msg = match status {
        // axum adds the Allow header after this layer
        StatusCode::METHOD_NOT_ALLOWED => format!(
            "{method} is not allowed on {path} (the Allow header lists the methods it takes)"
        ),
        StatusCode::PAYLOAD_TOO_LARGE => {
            format!(
                "the request body is too large for {path} (a run request is a small JSON object)"
            )
        }
        s => format!(
            "{method} {path}: {}",
            s.canonical_reason().unwrap_or("request refused")
        ),
    };
    error(status, msg)
}

async fn post_run(State(app): State<App>, body: Bytes) -> Response {
    let body = match parse_run_body(&body) {
        Ok(b) => b,
        Err(msg) => return error(StatusCode::BAD_REQUEST, msg),
    };
    let checked = match check_run(body, app.max_wall) {
        Ok(c) => c,
        Err(m) => return error(StatusCode::BAD_REQUEST, m),
    };
    if app.shared.stop.load(Ordering::Relaxed) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down",
        );
    }
    let id = store::new_named_run_id(&app.root, &app.name, &meter_rig::report::utc_now());
    if let Err(active) = app.shared.claim_run(&id) {
        return error(
            StatusCode::CONFLICT,
            format!("run {active} is in progress; one run at a time (GET /runs/{active})"),
        );
    }
    if let Err(e) = write_request(&app, &id, &checked) {
        app.shared.release_claim(&id);
        return error(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("cannot write the run's request.json under --data: {e}"),
        );
    }
    let max_wall = checked.max_wall;
    let body = checked.body;
    let cmd = Command::Run(RunRequest {
        id: id.clone(),
        suites: body.suites,
        cases: body.cases,
        paced: body.paced,
        max_run_time: checked.max_run_time,
    });
    let sent = app
        .commands
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send(cmd);
    if sent.is_err() {
        app.shared.release_claim(&id);
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the hardware thread has stopped",
        );
    }
    watch_wall_time(app.shared.clone(), id.clone(), max_wall);
    (
        StatusCode::ACCEPTED,
        [(header::LOCATION, format!("/runs/{id}"))],
        Json(json!({ "id": id, "state": "running", "url": format!("/runs/{id}") })),
    )
        .into_response()
}

fn read_record(app: &App, id: &str) -> Option<serde_json::Value> {
    let bytes = std::fs::read(store::run_dir(&app.root, id).join("record.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

fn run_view(app: &App, id: &str) -> Option<serde_json::Value> {
    let active = app.shared.snapshot().current_run.as_deref() == Some(id);
    let mut rec = match read_record(app, id) {
        Some(r) => r,
        None if active => json!({ "cases": [] }),
        None => return None,
    };
    let state = worker::run_state(&rec, active);
    let request: Option<serde_json::Value> =
        std::fs::read(store::run_dir(&app.root, id).join("request.json"))
            .ok()
            .and_then(|b| serde_json::from_slice(&b).ok());
    if let Some(o) = rec.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.insert("state".into(), json!(state));
        if let Some(req) = request {
            o.insert("requested_by".into(), req["requested_by"].clone());
            o.insert("request".into(), req);
        }
    }
    Some(rec)
}

async fn get_run(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    if !store::valid_run_id(&id) {
        return error(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    }
    match run_view(&app, &id) {
        Some(v) => Json(v).into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no run {id:?} (GET /runs lists them)"),
        ),
    }
}

/// `DELETE /runs/{id}`: asks the run in progress to stop (202 with `stopping`); 409 when it
/// already ended (with its state), 404 for an unknown id.
async fn delete_run(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    if !store::valid_run_id(&id) {
        return error(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    }
    if app.shared.stop_run(&id).is_ok() {
        return (
            StatusCode::ACCEPTED,
            Json(json!({ "id": id, "state": "stopping", "url": format!("/runs/{id}") })),
        )
            .into_response();
    }
    match run_view(&app, &id) {
        Some(v) => (
            StatusCode::CONFLICT,
            Json(json!({
                "id": id,
                "state": v["state"],
                "error": format!("run {id} is not in progress (state {})", v["state"]),
            })),
        )
            .into_response(),
        None => error(
            StatusCode::NOT_FOUND,
            format!("no run {id:?} (GET /runs lists them)"),
        ),
    }
}

async fn list_runs(State(app): State<App>) -> Response {
    let runs: Vec<serde_json::Value> = store::run_ids(&app.root)
        .iter()
        .filter_map(|id| run_view(&app, id))
        .map(|r| json!({ "id": r["id"], "state": r["state"], "summary": r["summary"], "started": r["started"], "requested_by": r["requested_by"] }))
        .collect();
    Json(json!({ "runs": runs })).into_response()
}

async fn get_junit(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    if !store::valid_run_id(&id) {
        return error(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    }
    match std::fs::read(store::run_dir(&app.root, &id).join("junit.xml")) {
        Ok(b) => (
            [(header::CONTENT_TYPE, "application/xml; charset=utf-8")],
            b,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            format!("no junit.xml for run {id:?}"),
        ),
    }
}

/// Prometheus text exposition (format 0.0.4).
fn metrics_text(s: &worker::Status) -> String {
    use std::fmt::Write;
    let mut o = String::new();
    let mut metric = |name: &str, kind: &str, help: &str, lines: Vec<(String, String)>| {
        let _ = writeln!(o, "# HELP {name} {help}\n# TYPE {name} {kind}");
        for (labels, v) in lines {
            let _ = writeln!(o, "{name}{labels} {v}");
        }
    };
    let c = &s.counters;
    metric(
        "meter_rig_readouts_total",
        "counter",
        "Readouts taken by the module loop (kept across restarts).",
        vec![(String::new(), c.readouts.to_string())],
    );
    metric(
        "meter_rig_readout_failures_total",
        "counter",
        "Readouts with no answer, a non-conforming answer or a device error.",
        vec![(String::new(), c.readout_failures.to_string())],
    );
    metric(
        "meter_rig_pulses_total",
        "counter",
        "Meter output pulses counted per port (kept across restarts).",
        c.pulses
            .iter()
            .map(|(p, n)| {
                (
                    format!("{{port=\"{}\"}}", p.trim_start_matches("port")),
                    n.to_string(),
                )
            })
            .collect(),
    );
    metric(
        "meter_rig_last_response_seconds",
        "gauge",
        "Response time of the last readout (first start bit minus end of request).",
        s.last_readout
            .as_ref()
            .and_then(|r| r.response_ms)
            .map(|ms| vec![(String::new(), format!("{}", ms / 1000.0))])
            .unwrap_or_default(),
    );
    metric(
        "meter_rig_runs_total",
        "counter",
        "Conformance runs started (kept across restarts).",
        vec![(String::new(), c.runs.to_string())],
    );
    metric(
        "meter_rig_run_active",
        "gauge",
        "1 while a conformance run owns the target.",
        vec![(String::new(), u8::from(s.current_run.is_some()).to_string())],
    );
    if let Some(r) = &s.last_run {
        metric(
            "meter_rig_last_run_cases",
            "gauge",
            "Cases of the last finished run, by verdict.",
            [
                ("pass", r.summary.pass),
                ("fail", r.summary.fail),
                ("skip", r.summary.skip),
                ("inconclusive", r.summary.inconclusive),
                ("error", r.summary.error),
            ]
            .iter()
            .map(|(v, n)| (format!("{{verdict=\"{v}\"}}"), n.to_string()))
            .collect(),
        );
    }
    metric(
        "meter_rig_target_time_seconds",
        "gauge",
        "The target's clock (virtual for the software meter).",
        vec![(String::new(), format!("{}", s.target_time_s))],
    );
    o
}

/// `GET /runs/{id}/report.html`: the run's report page (written as the run goes).
async fn get_report(State(app): State<App>, UrlPath(id): UrlPath<String>) -> Response {
    if !store::valid_run_id(&id) {
        return error(StatusCode::NOT_FOUND, format!("no run {id:?}"));
    }
    match std::fs::read(store::run_dir(&app.root, &id).join("report.html")) {
        Ok(b) => ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], b).into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            format!("no report.html for run {id:?}"),
        ),
    }
}

/// `GET /runs/{id}/captures/{file}`: one waveform capture of the run (`CASE.vcd`); a name
/// that is not a plain `.vcd` file name is 404, so nothing outside `captures/` is served.
async fn get_capture(
    State(app): State<App>,
    UrlPath((id, file)): UrlPath<(String, String)>,
) -> Response {
    let plain = file.ends_with(".vcd")
        && !file.starts_with('.')
        && file
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if !store::valid_run_id(&id) || !plain {
        return error(
            StatusCode::NOT_FOUND,
            format!("no capture {file:?} of run {id:?}"),
        );
    }
    let path = store::run_dir(&app.root, &id).join("captures").join(&file);
    match std::fs::read(path) {
        Ok(b) => (
            [(
                header::CONTENT_TYPE,
                meter_rig::evidence::capture::VCD_MEDIA_TYPE,
            )],
            b,
        )
            .into_response(),
        Err(_) => error(
            StatusCode::NOT_FOUND,
            format!("no capture {file:?} of run {id:?} (record.json lists its attachments)"),
        ),
    }
}

async fn metrics(State(app): State<App>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        metrics_text(&app.shared.snapshot()),
    )
        .into_response()
}

async fn not_found() -> Response {
    error(
        StatusCode::NOT_FOUND,
        "no such endpoint: GET /status, /health, /readings/latest, /runs, /runs/{id}, /runs/{id}/junit.xml, /runs/{id}/report.html, /runs/{id}/captures/{file}, /metrics; POST /runs; DELETE /runs/{id}",
    )
}

fn router(app: App) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/health", get(health))
        .route("/readings/latest", get(latest))
        .route("/runs", post(post_run).get(list_runs))
        .route("/runs/{id}", get(get_run).delete(delete_run))
        .route("/runs/{id}/junit.xml", get(get_junit))
        .route("/runs/{id}/report.html", get(get_report))
        .route("/runs/{id}/captures/{file}", get(get_capture))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), auth))
        .layer(middleware::from_fn(json_errors))
        .with_state(app)
}

fn read_token(path: &Path) -> anyhow::Result<String> {
    let t = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read --token-file {}", path.display()))?;
    let t = t.trim().to_string();
    if t.len() < 16 || t.chars().any(|c| c.is_whitespace() || c.is_control()) {
        bail!(
            "--token-file {}: the token must be one line of at least 16 non-space characters \
             (e.g. `head -c 24 /dev/urandom | base64 > {}`)",
            path.display(),
            path.display()
        );
    }
    Ok(t)
}

/// The rig's name: `--name`, checked, or the host name made fit for run ids.
fn rig_name(given: Option<&str>) -> anyhow::Result<String> {
    if let Some(n) = given {
        if !store::valid_rig_name(n) {
            bail!("--name {n:?}: expected 1–40 letters, digits or `-` (it prefixes run ids), e.g. lab3-pi7");
        }
        return Ok(n.to_string());
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap_or_default();
    let mut n: String = host
        .trim()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .take(40)
        .collect();
    n = n.trim_matches('-').to_string();
    Ok(if store::valid_rig_name(&n) {
        n
    } else {
        "rig".into()
    })
}

/// UTC seconds at the target's time zero: the software meter's clock start, or for real targets
/// the wall clock's offset from CLOCK_MONOTONIC (their clock).
fn epoch_for(is_sim: bool, spec: &MeterSpec) -> i64 {
    if is_sim {
        calendar::days_from_civil(spec.start.year, spec.start.month, spec.start.day) * 86_400
            + spec.start.secs as i64
    } else {
        let wall = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs() as i64;
        wall - (meter_rig::pins::monotonic_now().0 / 1_000_000_000) as i64
    }
}

/// SIGTERM, SIGINT and SIGHUP, as async streams for the graceful stop.
type StopSignals = [(tokio::signal::unix::Signal, &'static str); 3];

fn watch_stop_signals() -> anyhow::Result<StopSignals> {
    use tokio::signal::unix::{signal, SignalKind};
    let watch = |kind: SignalKind, name: &'static str| {
        signal(kind)
            .map(|s| (s, name))
            .with_context(|| format!("cannot watch {name}"))
    };
    Ok([
        watch(SignalKind::terminate(), "SIGTERM")?,
        watch(SignalKind::interrupt(), "SIGINT")?,
        watch(SignalKind::hangup(), "SIGHUP")?,
    ])
}

/// Waits for the first stop signal or the hardware thread's end. On a signal: asks the loop to
/// stop (`/status` says `stopping`) and keeps the HTTP server answering until the row or case in
/// hand is finished and the target released; a second signal is the safe-state handler's (pins
/// safe, exit at once with 128 + the signal). Returns whether the hardware thread ended on its
/// own (it died).
async fn wait_then_stop(
    signals: StopSignals,
    mut done: tokio::sync::oneshot::Receiver<()>,
    shared: &Shared,
) -> bool {
    let [(mut term, _), (mut int, _), (mut hup, _)] = signals;
    let name = tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
        _ = hup.recv() => "SIGHUP",
        _ = &mut done => return true,
    };
    shared.request_stop();
    eprintln!(
        "rig serve: {name}: stopping: finishing the row or case in hand (a second signal stops at once)"
    );
    let _ = done.await;
    false
}

/// Takes the port, then the data directory (locked for the life of the process; see
/// [`Store::open`]), so a service that cannot listen writes nothing there; then closes the
/// records of runs a killed service left `running`.
fn listen_then_open(
    rt: &tokio::runtime::Runtime,
    listen: SocketAddr,
    data: &Path,
) -> anyhow::Result<(tokio::net::TcpListener, Store)> {
    let listener = rt
        .block_on(tokio::net::TcpListener::bind(listen))
        .with_context(|| {
            format!("cannot listen on {listen} (in use? try another --listen port)")
        })?;
    let store =
        Store::open(data).with_context(|| format!("cannot use --data {}", data.display()))?;
    let root = store.root();
    for id in store::run_ids(root) {
        match meter_rig::report::close_interrupted(&store::run_dir(root, &id)) {
            Ok(true) => eprintln!("rig serve: run {id} was interrupted (the service died mid-run)"),
            Ok(false) => {}
            Err(e) => eprintln!("rig serve: warning: run {id}: {e}"),
        }
    }
    Ok((listener, store))
}

/// What `rig serve`'s options resolve to, checked before anything is opened.
struct ServeSetup {
    spec: MeterSpec,
    name: String,
    listen: SocketAddr,
    token: Option<Arc<String>>,
    schedule: Option<Schedule>,
    /// `--target`, with `--wiring` folded in (`gpio:FILE`, `pi:FILE`).
    target_arg: String,
    is_sim: bool,
}

/// Checks every option of `args` and resolves the meter file, the token and the schedule.
fn check_options(args: &ServeArgs) -> anyhow::Result<ServeSetup> {
    super::baud_only_for_serial(&args.target, args.baud)?;
    let spec = super::meter_spec(args.meter.as_deref(), args.baud)?;
    let name = rig_name(args.name.as_deref())?;
    let listen: SocketAddr = args.listen.parse().with_context(|| {
        format!(
            "--listen {:?}: expected ADDRESS:PORT, e.g. 127.0.0.1:8061",
            args.listen
        )
    })?;
    let token = match &args.token_file {
        Some(p) => Some(Arc::new(read_token(p)?)),
        None if !listen.ip().is_loopback() => bail!(
            "--listen {listen}: listening beyond this machine needs --token-file FILE \
             (requests must then send `Authorization: Bearer TOKEN`); or listen on 127.0.0.1"
        ),
        None => None,
    };
    check_interval(args.interval, &spec)?;
    if !(args.sim_speed.is_finite() && args.sim_speed > 0.0) {
        bail!("--sim-speed {}: expected a number > 0", args.sim_speed);
    }
    let schedule = match &args.tariff_schedule {
        Some(p) => Some(Schedule::load(p, &spec.io.tariff)?),
        None => None,
    };
    let (kind, rest) = args.target.split_once(':').unwrap_or((&args.target, ""));
    let target_arg = match (kind, rest, &args.wiring) {
        ("gpio" | "pi", "", Some(w)) => format!("{kind}:{}", w.display()),
        (_, _, Some(_)) if kind != "gpio" && kind != "pi" => {
            bail!("--wiring is for --target gpio or pi, not {kind}")
        }
        _ => args.target.clone(),
    };
    Ok(ServeSetup {
        spec,
        name,
        listen,
        token,
        schedule,
        is_sim: kind == "sim",
        target_arg,
    })
}

/// The hardware thread's inputs: what to open and how, and the loop it runs.
struct Hardware {
    target_arg: String,
    spec: MeterSpec,
    framing: String,
    sim_speed: f64,
    is_sim: bool,
    cfg: LoopConfig,
    store: Store,
}

/// Starts the hardware thread: it opens the target, runs the module loop on `commands` and
/// signals `done` when it ends. Returns once the target is open, with the thread and the
/// target's description.
///
/// # Errors
/// The target or the loop could not be opened (the thread has ended), or the thread could not
/// be started.
fn start_hardware(
    hw: Hardware,
    shared: Arc<Shared>,
    commands: mpsc::Receiver<Command>,
    done: tokio::sync::oneshot::Sender<()>,
) -> anyhow::Result<(std::thread::JoinHandle<()>, String)> {
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<String, String>>(1);
    let thread = std::thread::Builder::new()
        .name("rig-hardware".into())
        .spawn(move || {
            let Hardware {
                target_arg,
                spec,
                framing,
                sim_speed,
                is_sim,
                cfg,
                store,
            } = hw;
            let opened: anyhow::Result<Opened> = if is_sim {
                let on = Arc::new(AtomicBool::new(true));
                Ok((
                    Box::new(Paced::new(SimTarget::new(spec), sim_speed, on.clone())),
                    Some(on),
                ))
            } else {
                super::run::open_target(&target_arg, &spec, &framing).map(|t| (t, None))
            };
            let (mut target, pacing) = match opened {
                Ok(t) => t,
                Err(e) => {
                    let _ = ready_tx.send(Err(format!("{e:#}")));
                    return;
                }
            };
            let describe = target.describe();
            shared
                .status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .target = describe.clone();
            match Worker::new(target.as_mut(), cfg, store, &shared, pacing) {
                Ok(w) => {
                    let _ = ready_tx.send(Ok(describe));
                    w.run(&commands);
                }
                Err(e) => {
                    let _ = target.release();
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
            let _ = done.send(());
        })
        .context("cannot start the hardware thread")?;
    match ready_rx.recv() {
        Ok(Ok(d)) => Ok((thread, d)),
        Ok(Err(e)) => {
            let _ = thread.join();
            bail!("{e}")
        }
        Err(_) => {
            let _ = thread.join();
            bail!("the hardware thread ended while opening the target")
        }
    }
}

/// The last line of a graceful stop: what the loop did, and that the target is released.
fn say_stopped(shared: &Shared) {
    let s = shared.snapshot();
    let pulses: Vec<String> = s
        .counters
        .pulses
        .iter()
        .map(|(port, n)| format!("{port} {}", super::count(*n, "pulse", "pulses")))
        .collect();
    eprintln!(
        "rig serve: stopped; {}{}, target released",
        super::count(s.counters.readouts, "readout", "readouts"),
        if pulses.is_empty() {
            String::new()
        } else {
            format!(", {}", pulses.join(", "))
        }
    );
}

/// Runs `rig serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let ServeSetup {
        spec,
        name,
        listen,
        token,
        schedule,
        target_arg,
        is_sim,
    } = check_options(&args)?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let (listener, store) = listen_then_open(&rt, listen, &args.data)?;
    let _data_lock = store.lock();
    let root = store.root().to_path_buf();
    let poll = if is_sim {
        Duration::from_secs_f64((0.1 * args.sim_speed).min(3600.0))
    } else {
        Duration::from_millis(100)
    };
    let cfg = LoopConfig {
        spec: spec.clone(),
        meter_given: args.meter.is_some(),
        interval: args.interval,
        poll,
        schedule,
        epoch_s: epoch_for(is_sim, &spec),
    };
    // the graceful stop watches its signals before anything can receive one: a signal that came
    // between the safe-state handler and these would count as the first and stop nothing
    let signals = {
        let _runtime = rt.enter();
        watch_stop_signals()?
    };
    // the first SIGTERM/SIGINT/SIGHUP is ours (finish the case in hand); a second puts the pins
    // in safe state and exits at once, whatever the target (also the software meter)
    safe::set_graceful_signals(true);
    safe::install_signal_handler().context("installing the signal handler")?;

    let shared = Arc::new(Shared::new(
        target_arg.clone(),
        format!("{} {}", spec.profile.name, spec.type_number),
        args.interval,
        is_sim,
    ));
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let hardware = Hardware {
        target_arg,
        spec,
        framing: args.framing.clone(),
        sim_speed: args.sim_speed,
        is_sim,
        cfg,
        store,
    };
    let (hw, describe) = start_hardware(hardware, shared.clone(), cmd_rx, done_tx)?;

    let app = App {
        shared: shared.clone(),
        commands: Arc::new(Mutex::new(cmd_tx)),
        root,
        token,
        name: Arc::new(name),
        max_wall: args.max_wall_time,
    };
    let http_shared = shared.clone();
    let outcome = rt.block_on(async move {
        let addr = listener.local_addr().context("listening socket")?;
        eprintln!(
            "rig serve: {describe}, readout every {:?}, data in {}; listening on http://{addr}",
            args.interval,
            args.data.display()
        );
        let (worker_died_tx, worker_died_rx) = tokio::sync::oneshot::channel::<bool>();
        let shutdown = async move {
            let died = wait_then_stop(signals, done_rx, &http_shared).await;
            let _ = worker_died_tx.send(died);
        };
        axum::serve(listener, router(app))
            .with_graceful_shutdown(shutdown)
            .await
            .context("HTTP server")?;
        Ok::<bool, anyhow::Error>(worker_died_rx.await.unwrap_or(true))
    });
    shared.request_stop();
    let joined = hw.join();
    if outcome? || joined.is_err() {
        eprintln!("rig serve: the hardware thread stopped unexpectedly; see /status last_error");
        return Ok(ExitCode::from(1));
    }
    say_stopped(&shared);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("900"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert!(parse_duration("15 parsecs").is_err());
        assert!(parse_duration("0").is_err());
    }

    #[test]
    fn tokens_compare_whole() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"abcd"));
    }
}
