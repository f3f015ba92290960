//! `rig module`: the rig plays the meter and runs the `module` suite against the module under
//! test, with the records and exit codes of `rig run` (the same session and reporter).
//!
//! `--link PATH` serves the software meter (the meter file's, every fault knob) in real time on a
//! pty linked at PATH for a software module; `--port PATH` serves it on an existing serial port;
//! `--wiring FILE` serves it on pins (a meter-side wiring file, [`meter_rig::module::pins`]);
//! `--reference` runs the reference software module (rig run's own exchange, knobs from `--knobs
//! FILE`) in virtual time. `--module-report CMD` tells `module.data` what an external module
//! forwarded. SIGINT/SIGTERM stops the run after the window in hand (records `stopped`, exit 2).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use meter_rig::meter::config::MeterSpec;
use meter_rig::module::pty::PtyBench;
use meter_rig::module::reference::{ModuleKnobs, VirtualBench};
use meter_rig::module::report::ReportCommand;
use meter_rig::module::BenchTarget;
use meter_rig::module::{monitor, pins};
use meter_rig::pins::gpio::GpioBus;
use meter_rig::pins::pi::PiBus;
use meter_rig::pins::wiring::{BackendKind, ChipInventory, Wiring};
use meter_rig::pins::PinBus;
use meter_rig::report::{self, Progress, Reporter};
use meter_rig::serial::{Framing, ShutdownHandle};
use meter_rig::suite::registry::MODULE_CASES;
use meter_rig::suite::session::{self, Limits, Observer, StopReason, StopToken};
use meter_rig::suite::RunOptions;
use meter_rig::target::Target;

/// Arguments of `rig module`.
#[derive(Debug, Args)]
pub struct ModuleArgs {
    /// Serve the meter on a pty whose slave is linked at PATH (removed on exit); the module under
    /// test opens PATH as its serial port.
    #[arg(long, conflicts_with_all = ["reference", "port"])]
    pub link: Option<PathBuf>,
    /// Serve the meter on an existing serial port at PATH (300 baud; --framing soft7e1 by
    /// default: 7E1 on the line, parity seen both ways); the module under test is at the far
    /// end of the line.
    #[arg(long, conflicts_with = "reference")]
    pub port: Option<PathBuf>,
    /// Judge the reference software module in virtual time instead (see --knobs).
    #[arg(long)]
    pub reference: bool,
    /// Serve the meter on pins: a meter-side wiring file (`side = "meter"`,
    /// fixtures/wiring/meter-side.toml; wiring/README.md, "Module-vendor mode").
    #[arg(long, conflicts_with_all = ["link", "port", "reference"])]
    pub wiring: Option<PathBuf>,
    /// TOML file of the reference module's fault knobs (answer_wait_ms, char_wait_ms,
    /// retry_after_ms, tries, odd_parity, no_crlf, address, forwards_bad_bcc,
    /// forwards_bad_parity, the supply and drive tables); only with --reference.
    #[arg(long, requires = "reference")]
    pub knobs: Option<PathBuf>,
    /// Meter file: the meter the rig serves (default: the built-in healthy 351 Combi).
    #[arg(long)]
    pub meter: Option<PathBuf>,
    /// Run only this case (repeatable): module.request, module.patience, module.repetition,
    /// module.supply, module.data, module.tariff_drive, module.pulse_out.
    #[arg(long = "case")]
    pub cases: Vec<String>,
    /// Directory for record.json, junit.xml and measurements.csv.
    #[arg(long, default_value = "out")]
    pub out: PathBuf,
    /// Link framing: 7bit (plain 7-bit characters, as ordinary serial programs write them; the
    /// module's parity is then not observable) or soft7e1 (parity in bit 7, checked); the
    /// default is 7bit with --link and soft7e1 with --port, which also takes uart (a 7E1 port:
    /// the UART adds and strips parity, so it is not observable).
    #[arg(long, conflicts_with = "reference")]
    pub framing: Option<String>,
    /// Print one line per case on stderr (always on with --link, --port and --wiring, which run
    /// in real time).
    #[arg(long)]
    pub progress: bool,
    /// A command (run under sh -c) that prints what the module forwarded as JSON,
    /// {"values":[{"obis":"1.8.0","value":"0001234","unit":"kWh"}]}: run before module.data's
    /// first window and after each (RIG_MODULE_WINDOW=before|good|bad_bcc|bad_parity), it prints
    /// the values forwarded since its last run. Without it module.data is skipped (except
    /// with --reference, which reports its own).
    #[arg(long, value_name = "CMD")]
    pub module_report: Option<String>,
    /// How long one run of --module-report may take, seconds.
    #[arg(
        long,
        value_name = "S",
        default_value_t = 10.0,
        requires = "module_report"
    )]
    pub module_report_timeout: f64,
}

/// The first SIGINT or SIGTERM stops the session and ends the window in hand.
fn watch_signals(stop: StopToken, window: Option<ShutdownHandle>) -> anyhow::Result<()> {
    use signal_hook::consts::{SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM])
        .context("watching SIGINT and SIGTERM")?;
    std::thread::Builder::new()
        .name("rig-module-stop".into())
        .spawn(move || {
            if let Some(sig) = signals.forever().next() {
                let name = if sig == SIGINT { "SIGINT" } else { "SIGTERM" };
                eprintln!("rig module: {name}: stopping after the window in hand");
                stop.stop(StopReason::Signal {
                    signal: name.into(),
                });
                if let Some(w) = &window {
                    w.stop();
                }
            }
        })
        .context("spawning the signal thread")?;
    Ok(())
}

/// The bench of `--wiring FILE`: the meter served on the file's pins, after the meter-side
/// checks (a module-side file is refused naming what `rig module` needs).
fn open_wiring_bench(
    path: &std::path::Path,
    spec: &MeterSpec,
) -> anyhow::Result<(BenchTarget, Option<ShutdownHandle>)> {
    let file = path.display().to_string();
    let wiring = Wiring::load(path)?;
    pins::check_wiring(&file, &wiring, spec, &ChipInventory::scan())?;
    let monitor = match &wiring.supply_monitor {
        Some(m) => Some(monitor::open(m)?),
        None => {
            eprintln!("rig module: {file}: no [supply_monitor]: module.supply skips");
            None
        }
    };
    let cfg = pins::meter_side_bus(&wiring);
    let (bus, kind): (Box<dyn PinBus + Send>, &str) = match wiring.backend {
        BackendKind::Gpio => (Box::new(GpioBus::open(&cfg)?), "gpio"),
        BackendKind::Pi => (Box::new(PiBus::open(&cfg)?), "pi"),
    };
    let mut bench = pins::PinsBench::new(bus, wiring, spec.baud)?;
    if let Some(m) = monitor {
        bench = bench.with_monitor(Box::new(m));
    }
    eprintln!("rig module: serving the meter on the pins of {file} ({kind} backend)");
    let handle = bench.shutdown_handle();
    let target = BenchTarget::new(Box::new(bench), format!("module:{kind}:{file}"), false)
        .with_parity_checked(true);
    Ok((target, Some(handle)))
}

fn open_bench(
    args: &ModuleArgs,
    baud: u32,
) -> anyhow::Result<(BenchTarget, Option<ShutdownHandle>)> {
    if let Some(link) = &args.link {
        let framing = match args.framing.as_deref().unwrap_or("7bit") {
            "soft7e1" => Framing::Soft7e1,
            "7bit" | "seven-bit" => Framing::SevenBit,
            other => bail!("--framing {other:?}: expected 7bit or soft7e1"),
        };
        let bench = PtyBench::open(link, framing)
            .with_context(|| format!("cannot serve on {}", link.display()))?;
        let handle = bench.shutdown_handle();
        eprintln!(
            "rig module: serving the meter on {} → {} ({}); the module under test opens the link",
            link.display(),
            bench.slave_name(),
            framing.name()
        );
        let name = format!("module:link:{}", link.display());
        let target = BenchTarget::new(Box::new(bench), name, false)
            .with_parity_checked(framing == Framing::Soft7e1);
        return Ok((target, Some(handle)));
    }
    if let Some(port) = &args.port {
        return open_port(port, args.framing.as_deref(), baud);
    }
    if !args.reference {
        bail!("rig module needs the module under test: --link PATH (a software module on a pty), --port PATH (a module on a serial port), --wiring FILE (a module on pins) or --reference (the reference module)");
    }
    let knobs = match &args.knobs {
        None => ModuleKnobs::default(),
        Some(p) => {
            let text = std::fs::read_to_string(p)
                .with_context(|| format!("cannot read the knobs file {}", p.display()))?;
            toml::from_str(&text).with_context(|| format!("knobs file {}", p.display()))?
        }
    };
    let bench = VirtualBench { knobs };
    Ok((
        BenchTarget::new(Box::new(bench), "module:reference", true),
        None,
    ))
}

/// `--port PATH`: the meter served on an existing serial port at `baud`.
fn open_port(
    port: &std::path::Path,
    framing: Option<&str>,
    baud: u32,
) -> anyhow::Result<(BenchTarget, Option<ShutdownHandle>)> {
    let framing = match framing.unwrap_or("soft7e1") {
        "soft7e1" => Framing::Soft7e1,
        "uart" => Framing::Uart,
        "7bit" | "seven-bit" => Framing::SevenBit,
        other => bail!("--framing {other:?}: expected soft7e1, uart or 7bit"),
    };
    let bench = PtyBench::open_port(port, framing, baud)
        .with_context(|| format!("cannot serve the meter on {}", port.display()))?;
    let handle = bench.shutdown_handle();
    eprintln!(
        "rig module: serving the meter on {} at {baud} baud ({}); the module under test is at the far end",
        port.display(),
        framing.name()
    );
    let name = format!("module:port:{}", port.display());
    let target = BenchTarget::new(Box::new(bench), name, false)
        .with_parity_checked(framing == Framing::Soft7e1);
    Ok((target, Some(handle)))
}

/// `--module-report CMD` with its timeout, checked.
fn report_command(args: &ModuleArgs) -> anyhow::Result<Option<ReportCommand>> {
    let Some(cmd) = &args.module_report else {
        return Ok(None);
    };
    let s = args.module_report_timeout;
    if !(s.is_finite() && s > 0.0) {
        bail!("--module-report-timeout {s}: expected a positive number of seconds");
    }
    let mut report = ReportCommand::new(cmd.clone());
    report.timeout = std::time::Duration::from_secs_f64(s);
    Ok(Some(report))
}

/// Runs `rig module`.
pub fn run(args: ModuleArgs) -> anyhow::Result<ExitCode> {
    let spec = super::meter_spec(args.meter.as_deref(), None)?;
    let ids: Vec<&str> = MODULE_CASES.iter().map(|c| c.id).collect();
    for c in &args.cases {
        if !ids.contains(&c.as_str()) {
            bail!("unknown case {c:?}: expected one of {}", ids.join(", "));
        }
    }
    let report = report_command(&args)?;
    let (mut target, window) = match &args.wiring {
        Some(w) => open_wiring_bench(w, &spec)?,
        None => open_bench(&args, spec.baud)?,
    };
    if let Some(report) = report {
        target = target.with_report(report);
    }
    let caps = target.capabilities();
    let mut opts = RunOptions::for_target(&caps);
    // the whole suite, or only the cases named (a case id selects a module case by itself)
    if args.cases.is_empty() {
        opts.suites = vec!["module".into()];
    }
    opts.cases = args.cases.clone();
    let limits = Limits {
        stop: StopToken::new(),
        max_run_time: None,
    };
    let mut reporter = Reporter::start(&args.out, &mut target, &spec, &opts)
        .with_context(|| format!("cannot write records to {}", args.out.display()))?;
    watch_signals(limits.stop.clone(), window)?;
    let mut progress = Progress::default();
    // the page after the records, as rig run writes it
    let mut html = meter_rig::evidence::html::HtmlReport::new(&args.out);
    let mut observers: Vec<&mut dyn Observer> = vec![&mut reporter, &mut html];
    if args.progress || !caps.virtual_time {
        observers.push(&mut progress);
    }
    let end = session::run(&mut target, &spec, &opts, &limits, observers);
    if let Some(e) = end.observer_errors.first() {
        bail!("cannot write records to {}: {e}", args.out.display());
    }
    super::out(report::summary_table(&end.cases))?;
    let s = &reporter.record().summary;
    super::out(format!(
        "{} passed, {} failed, {} inconclusive, {} skipped, {} errors\n",
        s.pass, s.fail, s.inconclusive, s.skip, s.error
    ))?;
    if let Some(why) = end.outcome.ended_early() {
        eprintln!("rig module: run {}: {why}", end.outcome.name());
    }
    Ok(ExitCode::from(end.outcome.exit_code()))
}
