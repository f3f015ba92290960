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
    /// Line rate for serial targets (default: the meter file's).
    #[arg(long)]
    pub baud: Option<u32>,
    /// Serial framing: soft7e1 or uart.
    #[arg(long, default_value = "soft7e1")]
    pub framing: String,
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

/// The target the hardware thread opened, with the software meter's pacing switch.
type Opened = (Box<dyn Target>, Option<Arc<AtomicBool>>);

#[derive(Clone)]
struct App {
    shared: Arc<Shared>,
    commands: Arc<Mutex<mpsc::Sender<Command>>>,
    root: PathBuf,
    token: Option<Arc<String>>,
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
}

async fn post_run(State(app): State<App>, body: Bytes) -> Response {
    let body: RunBody = if body.iter().all(u8::is_ascii_whitespace) {
        return error(
            StatusCode::BAD_REQUEST,
            "empty body: send JSON such as {\"suites\": [\"readout\"]} ({\"suites\": []} runs every suite)",
        );
    } else {
        match serde_json::from_slice(&body) {
            Ok(b) => b,
            Err(e) => {
                return error(
                    StatusCode::BAD_REQUEST,
                    format!("malformed run request: {e}; expected {{\"suites\": [..], \"cases\": [..], \"paced\": false, \"max_run_time_s\": null}}"),
                )
            }
        }
    };
    for s in &body.suites {
        if !suite::suite_names().contains(&s.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown suite {s:?}: expected one of {}",
                    suite::suite_names().join(", ")
                ),
            );
        }
    }
    for c in &body.cases {
        if !suite::case_ids().contains(&c.as_str()) {
            return error(
                StatusCode::BAD_REQUEST,
                format!(
                    "unknown case {c:?}: expected one of {}",
                    suite::case_ids().join(", ")
                ),
            );
        }
    }
    let max_run_time = match body.max_run_time_s {
        None => None,
        Some(x) if x.is_finite() && (0.0..1e7).contains(&x) => Some(Duration::from_secs_f64(x)),
        Some(x) => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("max_run_time_s {x}: expected seconds ≥ 0"),
            )
        }
    };
    if app.shared.stop.load(Ordering::Relaxed) {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "the service is shutting down",
        );
    }
    let id = store::new_run_id(&app.root, &meter_rig::report::utc_now());
    if let Err(active) = app.shared.claim_run(&id) {
        return error(
            StatusCode::CONFLICT,
            format!("run {active} is in progress; one run at a time (GET /runs/{active})"),
        );
    }
    let cmd = Command::Run(RunRequest {
        id: id.clone(),
        suites: body.suites,
        cases: body.cases,
        paced: body.paced,
        max_run_time,
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
    if let Some(o) = rec.as_object_mut() {
        o.insert("id".into(), json!(id));
        o.insert("state".into(), json!(state));
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
        .map(|r| json!({ "id": r["id"], "state": r["state"], "summary": r["summary"], "started": r["started"] }))
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
        "no such endpoint: GET /status, /readings/latest, /runs, /runs/{id}, /runs/{id}/junit.xml, /metrics; POST /runs; DELETE /runs/{id}",
    )
}

fn router(app: App) -> Router {
    Router::new()
        .route("/status", get(status))
        .route("/readings/latest", get(latest))
        .route("/runs", post(post_run).get(list_runs))
        .route("/runs/{id}", get(get_run).delete(delete_run))
        .route("/runs/{id}/junit.xml", get(get_junit))
        .route("/runs/{id}/report.html", get(get_report))
        .route("/runs/{id}/captures/{file}", get(get_capture))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .layer(middleware::from_fn_with_state(app.clone(), auth))
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

/// Runs `rig serve`.
pub fn run(args: ServeArgs) -> anyhow::Result<ExitCode> {
    let spec = super::meter_spec(args.meter.as_deref(), args.baud)?;
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
    let is_sim = kind == "sim";
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
    // pins: the first SIGTERM is ours (finish the case in hand); a second forces safe state
    safe::set_graceful_signals(true);

    let shared = Arc::new(Shared::new(
        target_arg.clone(),
        format!("{} {}", spec.profile.name, spec.type_number),
        args.interval,
        is_sim,
    ));
    let (cmd_tx, cmd_rx) = mpsc::channel::<Command>();
    let (ready_tx, ready_rx) = mpsc::sync_channel::<Result<String, String>>(1);
    let (done_tx, done_rx) = tokio::sync::oneshot::channel::<()>();
    let framing = args.framing.clone();
    let sim_speed = args.sim_speed;
    let worker_shared = shared.clone();
    let hw = std::thread::Builder::new()
        .name("rig-hardware".into())
        .spawn(move || {
            let opened: anyhow::Result<Opened> = if is_sim {
                let on = Arc::new(AtomicBool::new(true));
                Ok((
                    Box::new(Paced::new(
                        SimTarget::new(spec.clone()),
                        sim_speed,
                        on.clone(),
                    )),
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
            worker_shared
                .status
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .target = describe.clone();
            match Worker::new(target.as_mut(), cfg, store, &worker_shared, pacing) {
                Ok(w) => {
                    let _ = ready_tx.send(Ok(describe));
                    w.run(&cmd_rx);
                }
                Err(e) => {
                    let _ = target.release();
                    let _ = ready_tx.send(Err(e.to_string()));
                }
            }
            let _ = done_tx.send(());
        })
        .context("cannot start the hardware thread")?;
    let describe = match ready_rx.recv() {
        Ok(Ok(d)) => d,
        Ok(Err(e)) => {
            let _ = hw.join();
            bail!("{e}");
        }
        Err(_) => {
            let _ = hw.join();
            bail!("the hardware thread ended while opening the target");
        }
    };

    let app = App {
        shared: shared.clone(),
        commands: Arc::new(Mutex::new(cmd_tx)),
        root,
        token,
    };
    let http_shared = shared.clone();
    let outcome = rt.block_on(async move {
        let addr = listener.local_addr().context("listening socket")?;
        eprintln!(
            "rig serve: {describe}, readout every {:?}, data in {}; listening on http://{addr}",
            args.interval,
            args.data.display()
        );
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .context("cannot watch SIGTERM")?;
        let mut int = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
            .context("cannot watch SIGINT")?;
        let stop_shared = http_shared;
        let (worker_died_tx, worker_died_rx) = tokio::sync::oneshot::channel::<bool>();
        let shutdown = async move {
            let died = tokio::select! {
                _ = term.recv() => false,
                _ = int.recv() => false,
                _ = done_rx => true,
            };
            stop_shared.request_stop();
            eprintln!("rig serve: stopping: finishing the row or case in hand");
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
    let died = match outcome {
        Ok(d) => d,
        Err(e) => {
            return Err(e);
        }
    };
    if died || joined.is_err() {
        eprintln!("rig serve: the hardware thread stopped unexpectedly; see /status last_error");
        return Ok(ExitCode::from(1));
    }
    let s = shared.snapshot();
    eprintln!(
        "rig serve: stopped; {} readouts, pulses {:?}, target released",
        s.counters.readouts, s.counters.pulses
    );
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
