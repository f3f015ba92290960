//! `rig wiring check FILE [--kk NN | --meter FILE]`: is a wiring file sound?
//!
//! Exit 0 when it is (notes, such as lines not checked because the chip is not on this machine,
//! go to stderr); exit 2 with a message naming the file, the entry and the problem otherwise.
//! Port roles are checked against the meter's module I/O code: `--meter FILE` takes it from a
//! meter file's resolved spec (KK for the 351 Combi, Z3 for OMNIPOWER), `--kk NN` from the 351's
//! KK table, otherwise the wiring file's own `kk`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use meter_rig::meter::config::MeterSpec;
use meter_rig::meter::io::IoCode;
use meter_rig::pins::wiring::{BackendKind, ChipInventory, Wiring, WiringError};

/// `rig wiring …`
#[derive(Debug, Args)]
pub struct WiringArgs {
    #[command(subcommand)]
    cmd: WiringCmd,
}

#[derive(Debug, Subcommand)]
enum WiringCmd {
    /// Check a wiring file: polarity, lines used twice, taps, chips and lines, port roles against
    /// the meter's I/O code (KK or Z3).
    Check {
        /// The wiring file (TOML).
        file: PathBuf,
        /// The 351 Combi's KK module I/O code (00-19); overrides `kk` in the file.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=99), conflicts_with = "meter")]
        kk: Option<u8>,
        /// A meter file: check the port roles against its I/O code (KK for the 351 Combi, Z3 for
        /// OMNIPOWER meters); overrides `kk` in the wiring file.
        #[arg(long)]
        meter: Option<PathBuf>,
    },
}

/// The I/O code to check against, from `--kk` or `--meter`; `None` leaves the file's `kk`.
fn io_code(
    name: &str,
    kk: Option<u8>,
    meter: Option<&std::path::Path>,
) -> anyhow::Result<Option<IoCode>> {
    if let Some(m) = meter {
        return Ok(Some(MeterSpec::from_file(m)?.io_code()));
    }
    match kk {
        Some(k) => Ok(Some(IoCode::kk(k).ok_or_else(|| {
            WiringError::UnknownKk {
                file: name.to_string(),
                kk: k,
            }
        })?)),
        None => Ok(None),
    }
}

/// Runs `rig wiring`.
pub fn run(args: WiringArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        WiringCmd::Check { file, kk, meter } => {
            let name = file.display().to_string();
            let io = match io_code(&name, kk, meter.as_deref()) {
                Ok(io) => io,
                Err(e) => {
                    eprintln!("rig: wiring check failed: {e}");
                    return Ok(ExitCode::from(2));
                }
            };
            let result = Wiring::load(&file)
                .and_then(|w| w.check(&name, io, &ChipInventory::scan()).map(|n| (w, n)));
            match result {
                Ok((w, notes)) => {
                    for n in &notes {
                        eprintln!("{name}: entry {}: note: {}", n.entry, n.text);
                    }
                    let code = io
                        .map(|c| c.to_string())
                        .or_else(|| w.kk.map(|k| format!("KK {k:02}")));
                    super::out(format!(
                        "{name}: ok ({} backend{}; {} optocoupler path(s), {} loopback(s))\n",
                        match w.backend {
                            BackendKind::Gpio => "gpio",
                            BackendKind::Pi => "pi",
                        },
                        code.map(|c| format!(", {c}")).unwrap_or_default(),
                        w.optos().len(),
                        w.loopback.len()
                    ))?;
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("rig: wiring check failed: {e}");
                    Ok(ExitCode::from(2))
                }
            }
        }
    }
}
