//! `rig wiring check FILE [--kk NN]`: is a wiring file sound?
//!
//! Exit 0 when it is (notes, such as lines not checked because the chip is not on this machine,
//! go to stderr); exit 2 with a message naming the file, the entry and the problem otherwise.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};

use meter_rig::pins::wiring::{ChipInventory, Wiring};

/// `rig wiring …`
#[derive(Debug, Args)]
pub struct WiringArgs {
    #[command(subcommand)]
    cmd: WiringCmd,
}

#[derive(Debug, Subcommand)]
enum WiringCmd {
    /// Check a wiring file: polarity, lines used twice, taps, chips and lines, roles against KK.
    Check {
        /// The wiring file (TOML).
        file: PathBuf,
        /// The meter's KK module I/O code (00-19); overrides `kk` in the file.
        #[arg(long, value_parser = clap::value_parser!(u8).range(0..=99))]
        kk: Option<u8>,
    },
}

/// Runs `rig wiring`.
pub fn run(args: WiringArgs) -> anyhow::Result<ExitCode> {
    match args.cmd {
        WiringCmd::Check { file, kk } => {
            let name = file.display().to_string();
            let result = Wiring::load(&file)
                .and_then(|w| w.check(&name, kk, &ChipInventory::scan()).map(|n| (w, n)));
            match result {
                Ok((w, notes)) => {
                    for n in &notes {
                        eprintln!("{name}: entry {}: note: {}", n.entry, n.text);
                    }
                    let kk = kk.or(w.kk);
                    println!(
                        "{name}: ok ({} backend{}; {} optocoupler path(s), {} loopback(s))",
                        match w.backend {
                            meter_rig::pins::wiring::BackendKind::Gpio => "gpio",
                            meter_rig::pins::wiring::BackendKind::Pi => "pi",
                        },
                        kk.map(|k| format!(", KK {k:02}")).unwrap_or_default(),
                        w.optos().len(),
                        w.loopback.len()
                    );
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
