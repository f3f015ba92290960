//! `rig run`: every selected suite against a target, with records written as cases finish.
//!
//! This module parses options, opens the target and maps the run session's outcome
//! ([`meter_rig::suite::session`]) to the exit code; it holds no run logic of its own. The first
//! SIGINT/SIGTERM/SIGHUP asks the session to stop (the records then say `stopped`); a second one
//! puts the pins in safe state and exits at once (`meter_rig::pins::safe`).

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use meter_rig::evidence::capture::{CaptureMode, Captures};
use meter_rig::evidence::html::HtmlReport;
use meter_rig::evidence::Inbox;
use meter_rig::meter::config::MeterSpec;
use meter_rig::pins::safe;
use meter_rig::report::{self, Progress, Record, Reporter};
use meter_rig::sim::SimTarget;
use meter_rig::suite::session::{self, Limits, Observer, StopReason, StopToken};
use meter_rig::suite::{self, plan, CaseResult, RunOptions};
use meter_rig::target::{Capabilities, Target, Timing};
use meter_rig::time::TimeSource;

/// Arguments of `rig run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// What to test: `sim` (the built-in software meter, virtual time), `serial:PATH`,
    /// `gpio:WIRING.toml` or `pi:WIRING.toml`.
    #[arg(long, default_value = "sim")]
    pub target: String,
    /// Meter file: the software meter to build, or the expected configuration of a real meter.
    /// Default: the built-in healthy 351 Combi (fixtures/meters/default.toml).
    #[arg(long)]
    pub meter: Option<PathBuf>,
    /// Run this suite (repeatable): readout, pulse_out, tariff, pulse_in, max_reset,
    /// max_demand, logging. With --case, the run takes both (a union).
    #[arg(long = "suite")]
    pub suites: Vec<String>,
    /// Run this case (repeatable), e.g. readout.bcc; with --suite, in addition to its cases.
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Directory for record.json, junit.xml and measurements.csv.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Line rate for serial targets (default: the meter file's); refused for other targets.
    #[arg(long)]
    pub baud: Option<u32>,
    /// Serial framing: soft7e1 (parity checked by the rig) or uart (the UART's own 7E1).
    #[arg(long, default_value = "soft7e1")]
    pub framing: String,
    /// Print one line per case on stderr even in virtual time.
    #[arg(long)]
    pub progress: bool,
    /// Print the selected cases with their clause, needs and the limits this meter file
    /// resolves, without running anything.
    #[arg(long)]
    pub list: bool,
    /// Print the plan without running: each selected case's expected meter time and what it
    /// waits for (from the meter file; for a real meter its load is the bench's power), the
    /// total in sequence and with overlap, and the floor.
    #[arg(long)]
    pub plan: bool,
    /// Seconds between the readouts of readout.monotonic (default: 3600 simulated, 60 real).
    #[arg(long, value_name = "S")]
    pub monotonic_wait: Option<f64>,
    /// Seconds each input state is held in tariff.table (default: 600 simulated, 120 real).
    #[arg(long, value_name = "S")]
    pub tariff_dwell: Option<f64>,
    /// Longest window pulse_out.constant may take, and tariff.table may wait per input state for
    /// energy to register, seconds (default: 48 h simulated, 2 h real).
    #[arg(long, value_name = "S")]
    pub max_constant_window: Option<f64>,
    /// The rig's limit for one whole answer, seconds after the request (default: long enough for
    /// every conforming answer). An answer this limit cuts is inconclusive, never a failure.
    #[arg(long, value_name = "S")]
    pub answer_limit: Option<f64>,
    /// Stop the run after this many seconds on the target's clock (simulated seconds for the
    /// software meter); the records then say `stopped` and the cases left show as not run.
    #[arg(long, value_name = "S")]
    pub max_run_time: Option<f64>,
    /// Waveform captures OUT/captures/CASE.vcd: none, failed (failed and inconclusive cases) or
    /// all (every case that used a line).
    #[arg(long, default_value = "failed", value_name = "WHICH")]
    pub capture: CaptureMode,
    /// Do not write OUT/report.html.
    #[arg(long)]
    pub no_report: bool,
}

/// The first SIGINT, SIGTERM or SIGHUP stops `stop` with the signal's name; the pins' safe-state
/// handler (graceful) then acts on the second, and before it exits the records in `out` are
/// closed as `stopped` and a line says so.
fn watch_signals(stop: StopToken, out: &std::path::Path) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let dir = out.to_path_buf();
    safe::on_forced_exit(move |signal| {
        let closed = report::close_stopped_at_once(&dir, signal);
        let what = match closed {
            Ok(_) => "the records say stopped and keep the cases finished".to_string(),
            Err(e) => format!("the records could not be closed: {e}"),
        };
        eprintln!(
            "rig: {signal} again: pins in safe state, stopped at once; {what} ({})",
            dir.display()
        );
    });
    // the graceful stop watches first, so no signal can be counted as the first and stop nothing
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])
        .context("watching SIGINT, SIGTERM and SIGHUP")?;
    safe::set_graceful_signals(true);
    safe::install_signal_handler().context("installing the signal handler")?;
    std::thread::Builder::new()
        .name("rig-run-stop".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = match sig {
                    SIGINT => "SIGINT",
                    SIGTERM => "SIGTERM",
                    _ => "SIGHUP",
                };
                eprintln!("rig: {name}: stopping after the step in hand (again: stop at once)");
                stop.stop(StopReason::Signal {
                    signal: name.into(),
                });
            }
        })
        .context("spawning the signal thread")?;
    Ok(())
}

fn secs(name: &str, v: Option<f64>) -> anyhow::Result<Option<std::time::Duration>> {
    match v {
        None => Ok(None),
        Some(x) if (0.0..1e7).contains(&x) => Ok(Some(std::time::Duration::from_secs_f64(x))),
        Some(x) => bail!("--{name} {x}: expected seconds ≥ 0"),
    }
}

/// Builds the target named by `--target`.
pub fn open_target(
    target: &str,
    spec: &MeterSpec,
    framing: &str,
) -> anyhow::Result<Box<dyn Target>> {
    let (kind, rest) = target.split_once(':').unwrap_or((target, ""));
    match kind {
        "sim" => {
            if !rest.is_empty() {
                bail!("--target sim takes no argument (use --meter FILE to choose the software meter)");
            }
            Ok(Box::new(SimTarget::new(spec.clone())))
        }
        "serial" | "gpio" | "pi" => super::targets::open(kind, rest, spec, framing),
        other => bail!("unknown target kind {other:?}: expected sim, serial:PATH, gpio:WIRING.toml or pi:WIRING.toml"),
    }
}

/// Runs `rig run`.
pub fn run(args: RunArgs) -> anyhow::Result<ExitCode> {
    super::baud_only_for_serial(&args.target, args.baud)?;
    let spec = super::meter_spec(args.meter.as_deref(), args.baud)?;
    for s in &args.suites {
        if !suite::suite_names().contains(&s.as_str()) {
            bail!(
                "unknown suite {s:?}: expected one of {}",
                suite::suite_names().join(", ")
            );
        }
    }
    for c in &args.cases {
        if !suite::case_ids().contains(&c.as_str()) {
            bail!(
                "unknown case {c:?}: expected one of {}",
                suite::case_ids().join(", ")
            );
        }
    }
    let selection = RunOptions {
        suites: args.suites.clone(),
        cases: args.cases.clone(),
        ..RunOptions::for_target(&SimTarget::new(spec.clone()).capabilities())
    };
    if suite::selected(&selection).is_empty() {
        bail!(
            "--suite {} --case {} selects no case: name a suite ({}) or a case (`rig run --list` lists them)",
            args.suites.join(","),
            args.cases.join(","),
            suite::suite_names().join(", ")
        );
    }
    if args.list {
        super::out(list(&spec, &selection))?;
        return Ok(ExitCode::SUCCESS);
    }
    if args.plan {
        let caps = planned_caps(&args.target, &spec)?;
        let opts = run_options(&args, &caps)?;
        let p = plan::plan(&spec, &opts, &caps, &suite::selected(&opts));
        super::out(p.text(&plan_title(&args.target, &spec)))?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut target = open_target(&args.target, &spec, &args.framing)?;
    let caps = target.capabilities();
    let opts = run_options(&args, &caps)?;
    let the_plan = plan::plan(&spec, &opts, &caps, &suite::selected(&opts));
    let limits = Limits {
        stop: StopToken::new(),
        max_run_time: secs("max-run-time", args.max_run_time)?,
    };
    let inbox = Inbox::new();
    let mut reporter = Reporter::start(&args.out, target.as_mut(), &spec, &opts)
        .with_context(|| format!("cannot write records to {}", args.out.display()))?
        .with_attachments(inbox.clone());
    let mut captures = Captures::new(
        &args.out,
        spec.baud,
        (spec.profile.response_min_ms, spec.profile.response_max_ms),
        args.capture,
        inbox,
    )
    .with_context(|| format!("cannot clear {}/captures", args.out.display()))?;
    let mut html = HtmlReport::new(&args.out);
    watch_signals(limits.stop.clone(), &args.out)?;
    let describe = target.describe();
    // the software meter's description already names the profile
    let meter = if describe.contains(spec.profile.name) {
        String::new()
    } else {
        format!(" ({})", spec.profile.name)
    };
    eprintln!("rig: {describe}{meter}, records in {}", args.out.display());
    let real_time = !caps.virtual_time;
    if real_time || args.progress {
        // a real meter's time is the cost: say what the run will take before it starts
        eprint!("{}", the_plan.text(&plan_title(&args.target, &spec)));
    }
    let mut progress = Progress::with_plan(the_plan.clone());
    let mut lines = LineProgress {
        plan: std::sync::Arc::new(the_plan),
        ..LineProgress::default()
    };
    // captures before the records (they file their attachments for the case), the page after
    let mut observers: Vec<&mut dyn Observer> = vec![&mut captures, &mut reporter];
    if !args.no_report {
        observers.push(&mut html);
    }
    let terminal = std::io::stderr().is_terminal();
    if terminal && (args.progress || !caps.virtual_time) {
        observers.push(&mut progress);
    } else if args.progress || !caps.virtual_time {
        // a log (CI, journald): whole lines, and a heartbeat while a case waits
        lines.heartbeat(heartbeat_every(), &args.out);
        observers.push(&mut lines);
    }
    let end = session::run(target.as_mut(), &spec, &opts, &limits, observers);
    if let Some(e) = end.observer_errors.first() {
        bail!("cannot write records to {}: {e}", args.out.display());
    }
    print_summary(reporter.record(), &end.cases, caps.virtual_time)?;
    if let Some(why) = end.outcome.ended_early() {
        eprintln!("rig: run {}: {why}", end.outcome.name());
    }
    Ok(ExitCode::from(end.outcome.exit_code()))
}

/// Test-only: seconds between heartbeat lines instead of 60. Never set it outside tests.
pub const TEST_HEARTBEAT_ENV: &str = "METER_RIG_TEST_HEARTBEAT_S";

fn heartbeat_every() -> std::time::Duration {
    let s = std::env::var(TEST_HEARTBEAT_ENV)
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .unwrap_or(60.0);
    std::time::Duration::from_secs_f64(s)
}

/// Progress for a log rather than a terminal: one whole line when a case starts and one when it
/// is judged, and from [`LineProgress::heartbeat`] a line at least every minute while a case is
/// in hand, so a CI log of a real-time run that takes hours is never silent.
#[derive(Debug, Default)]
struct LineProgress {
    /// The case in hand and when it started.
    current: std::sync::Arc<std::sync::Mutex<Option<(String, std::time::Instant)>>>,
    /// The run's plan: each line gives the ETA of the case and of the run from it.
    plan: std::sync::Arc<plan::Plan>,
}

impl LineProgress {
    /// Starts the heartbeat thread: every `every`, a line naming the case in hand and how long
    /// it has run. It ends with the process.
    fn heartbeat(&self, every: std::time::Duration, out: &std::path::Path) {
        let current = self.current.clone();
        let plan = self.plan.clone();
        let out = out.display().to_string();
        let _ = std::thread::Builder::new()
            .name("rig-run-heartbeat".into())
            .spawn(move || loop {
                std::thread::sleep(every);
                let now = current.lock().unwrap_or_else(|p| p.into_inner()).clone();
                if let Some((id, t0)) = now {
                    let took = t0.elapsed().as_secs_f64();
                    eprintln!(
                        "rig: {id}: still running ({took:.0} s of about {:.0} s; {}; records in {out})",
                        plan.expected(&id).unwrap_or(0.0),
                        plan.eta_text(&id, took)
                    );
                }
            });
    }

    fn set(&self, case: Option<&str>) {
        *self.current.lock().unwrap_or_else(|p| p.into_inner()) =
            case.map(|c| (c.to_string(), std::time::Instant::now()));
    }
}

impl Observer for LineProgress {
    fn event(&mut self, e: &session::Event<'_>) -> Result<(), session::ObserverError> {
        use session::Event;
        match e {
            Event::CaseStarted {
                case,
                within: Some(lender),
            } => eprintln!("rig: {}: ran inside {lender}'s wait", case.id),
            Event::CaseStarted { case, within: None } => {
                self.set(Some(case.id));
                eprintln!(
                    "rig: {}: started (expected {}; {})",
                    case.id,
                    plan::human(self.plan.expected(case.id).unwrap_or(0.0)),
                    self.plan.eta_text(case.id, 0.0)
                );
            }
            Event::CaseDone { case } => {
                self.set(None);
                eprintln!(
                    "rig: {}: {} ({:.1} s)",
                    case.id, case.verdict, case.wall_time_s
                );
            }
            _ => {}
        }
        Ok(())
    }
}

/// The capabilities `--target` will have, without opening it (`rig run --plan` touches no
/// port): the software meter's own; a real meter in real time, with module ports for `gpio:`
/// and `pi:`.
fn planned_caps(target: &str, spec: &MeterSpec) -> anyhow::Result<Capabilities> {
    let kind = target.split_once(':').map_or(target, |(k, _)| k);
    Ok(match kind {
        "sim" => SimTarget::new(spec.clone()).capabilities(),
        "serial" | "gpio" | "pi" => Capabilities::new(
            Timing {
                data_timing: TimeSource::Serial,
                data_uncertainty_ns: 0,
                pin_uncertainty_ns: 0,
                parity_checked: true,
                virtual_time: false,
            },
            kind != "serial",
        ),
        other => bail!("unknown target kind {other:?}: expected sim, serial:PATH, gpio:WIRING.toml or pi:WIRING.toml"),
    })
}

/// What a plan is for: the meter file and the target.
fn plan_title(target: &str, spec: &MeterSpec) -> String {
    format!(
        "{} ({}) on {target}",
        spec.path.as_deref().unwrap_or("the built-in default meter"),
        spec.profile.name
    )
}

/// The run's options from the arguments, with the target's defaults.
fn run_options(args: &RunArgs, caps: &Capabilities) -> anyhow::Result<RunOptions> {
    let mut opts = RunOptions::for_target(caps);
    opts.suites = args.suites.clone();
    opts.cases = args.cases.clone();
    opts.check_type_number = caps.virtual_time || args.meter.is_some();
    if let Some(d) = secs("monotonic-wait", args.monotonic_wait)? {
        opts.monotonic_wait = d;
    }
    if let Some(d) = secs("tariff-dwell", args.tariff_dwell)? {
        opts.tariff_dwell = d;
    }
    if let Some(d) = secs("max-constant-window", args.max_constant_window)? {
        opts.max_constant_window = d;
    }
    opts.answer_limit = secs("answer-limit", args.answer_limit)?;
    Ok(opts)
}

/// The summary table and the counts line on stdout.
fn print_summary(rec: &Record, cases: &[CaseResult], virtual_time: bool) -> std::io::Result<()> {
    super::out(report::summary_table(cases))?;
    let s = &rec.summary;
    super::out(format!(
        "{} passed, {} failed, {} inconclusive, {} skipped, {} errors — {:.3} s wall, {:.1} s {} time\n",
        s.pass,
        s.fail,
        s.inconclusive,
        s.skip,
        s.error,
        rec.wall_time_s,
        rec.target_time_s,
        if virtual_time {
            "simulated"
        } else {
            "target"
        }
    ))
}

/// `rig run --list`: every selected case with its clause, needs and declared measurements, the
/// limits resolved for `spec`.
fn list(spec: &MeterSpec, opts: &RunOptions) -> String {
    use std::fmt::Write;
    let mut out = format!(
        "{} cases for {} ({}):\n",
        suite::selected(opts).len(),
        spec.profile.name,
        spec.type_number
    );
    for c in suite::selected(opts) {
        let needs = if c.needs.is_empty() {
            "the data line".to_string()
        } else {
            c.needs
                .iter()
                .map(|n| format!("{n:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let _ = writeln!(out, "\n{}  ({})\n  checks: {}", c.id, needs, c.title);
        let _ = writeln!(out, "  clause: {}", (c.clause)(spec.profile));
        for m in (c.measures)(spec) {
            let limit = match (m.low, m.high) {
                (Some(l), Some(h)) => format!("{}–{}", suite::fmt_num(l), suite::fmt_num(h)),
                (Some(l), None) => format!("≥ {}", suite::fmt_num(l)),
                (None, Some(h)) => format!("≤ {}", suite::fmt_num(h)),
                (None, None) => "recorded".into(),
            };
            let _ = writeln!(out, "  {:<36} {:<14} {}", m.name, m.unit.as_str(), limit);
        }
    }
    out
}
