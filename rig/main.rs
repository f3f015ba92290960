//! The `rig` command line.
//!
//! Exit codes (documented in README.md): 0 success / everything passed or valid; 1 a case failed
//! or a telegram is invalid; 2 usage or setup error (bad file, missing port, wrong wiring).

mod cli;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Hardware-in-the-loop test rig and module emulator for Kamstrup 351 Combi meters.
#[derive(Debug, Parser)]
#[command(
    name = "rig",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 success (nothing failed, telegram valid); 1 a case failed, was inconclusive \
                  or errored, or the telegram is invalid, missing or undecided; 2 usage or setup error (bad \
                  meter or wiring file, port missing, permission denied, a selection of no case) or a run \
                  that ended early (stopped, interrupted), with a message naming the cause and the fix."
)]
struct Cli {
    /// Run under SCHED_FIFO at PRIORITY (1–99, default 10) with memory locked, so the process
    /// never waits behind ordinary processes for a core; needs CAP_SYS_NICE and CAP_IPC_LOCK (or
    /// an unlimited locked-memory limit). Refused with the reason when they are missing.
    #[arg(
        long,
        global = true,
        value_name = "PRIORITY",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "10"
    )]
    realtime: Option<u8>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Read a meter once over a serial port or pty and print the readout.
    Read(cli::read::ReadArgs),
    /// Run conformance suites against a meter (default: the built-in software meter).
    Run(cli::run::RunArgs),
    /// Play the module around the clock and run suites on request over HTTP (the Pi service).
    Serve(cli::serve::ServeArgs),
    /// Talk to a rig serve: `rig remote run --url URL --suite S` (exit codes as `rig run`).
    Remote(cli::remote::RemoteArgs),
    /// Play the meter to a module under test and judge the module (the module suite).
    Module(cli::module::ModuleArgs),
    /// Serve the software meter in real time on a pseudo-terminal linked at PATH.
    Sim(cli::sim::SimArgs),
    /// Decode a captured mode A answer (identification, data sets, BCC, findings).
    Decode(cli::decode::DecodeArgs),
    /// Rebuild a run's report.html from its record.json, or compare two runs.
    Report(cli::report::ReportArgs),
    /// Wiring files: check one.
    Wiring(cli::wiring::WiringArgs),
    /// Measure optocoupler delays over the wiring file's loopbacks and write them back.
    Calibrate(cli::calibrate::CalibrateArgs),
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    if let Some(priority) = cli.realtime {
        // first, before any other thread exists: threads started later inherit the policy.
        // Silent on success (stderr's first line stays each command's own, e.g. rig sim's banner;
        // `chrt -p PID` shows the policy); an error exits 2 with the cause and the fix.
        if let Err(e) = meter_rig::realtime::enter(priority) {
            eprintln!("rig: error: {e}");
            return ExitCode::from(2);
        }
    }
    match run(cli) {
        Ok(code) => code,
        // a reader that went away (`rig read … | head`) ends the output quietly, as ripgrep does
        Err(e) if cli::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("rig: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Read(args) => cli::read::run(args),
        Command::Run(a) => cli::run::run(a),
        Command::Serve(a) => cli::serve::run(a),
        Command::Sim(a) => cli::sim::run(a),
        Command::Module(a) => cli::module::run(a),
        Command::Remote(a) => cli::remote::run(a),
        Command::Decode(args) => cli::decode::run(args),
        Command::Report(a) => cli::report::run(a),
        Command::Wiring(a) => cli::wiring::run(a),
        Command::Calibrate(a) => cli::calibrate::run(a),
    }
}
