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
    after_help = "Exit codes: 0 success (nothing failed, telegram valid); 1 a case failed or errored, or the \
                  telegram is invalid or missing; 2 usage or setup error (bad meter or wiring file, port \
                  missing, permission denied), with a message naming the cause and the fix."
)]
struct Cli {
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
    match run(cli) {
        Ok(code) => code,
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
        Command::Wiring(a) => cli::wiring::run(a),
        Command::Calibrate(a) => cli::calibrate::run(a),
    }
}
