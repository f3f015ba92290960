//! `rig sim --link PATH`: the software meter in real time on a pseudo-terminal.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

use meter_rig::serial::{Framing, PtyServer};
use meter_rig::sim::SoftMeter;

/// Arguments of `rig sim`.
#[derive(Debug, Args)]
pub struct SimArgs {
    /// Path of the symlink to the pty's slave side (e.g. /tmp/meter); removed on exit.
    #[arg(long)]
    pub link: PathBuf,
    /// Meter file (default: the built-in healthy 351 Combi).
    #[arg(long)]
    pub meter: Option<PathBuf>,
    /// Line rate (default: the meter file's, 300 for the 351).
    #[arg(long)]
    pub baud: Option<u32>,
    /// soft7e1: parity carried in bit 7 (for rig read/run); seven-bit (or 7bit): plain 7-bit
    /// characters for ordinary clients (Python, terminal programs).
    #[arg(long, default_value = "soft7e1")]
    pub framing: String,
}

/// Runs `rig sim`.
pub fn run(args: SimArgs) -> anyhow::Result<ExitCode> {
    if let Some(b) = args.baud {
        if !(50..=115_200).contains(&b) {
            bail!("--baud {b}: outside 50–115200");
        }
    }
    let spec = super::meter_spec(args.meter.as_deref(), args.baud)?;
    let framing = match args.framing.as_str() {
        "soft7e1" => Framing::Soft7e1,
        "7bit" | "seven-bit" => Framing::SevenBit,
        other => bail!(
            "--framing {other:?}: expected soft7e1 (for rig read and rig run) or seven-bit (also \
             spelled 7bit; plain 7-bit characters for other programs)"
        ),
    };
    let name = spec.profile.name;
    let baud = spec.baud;
    // everything the server needs is built before the link appears: a client that opens the link
    // at once must find the server reading, or its request would be stamped late
    let mut meter = SoftMeter::new(spec);
    // a pty carries characters only: nothing can take the pulse-output edges
    meter.set_keep_port_edges(false);
    let mut server = PtyServer::open(&args.link, framing)
        .with_context(|| format!("cannot serve on {}", args.link.display()))?;
    server.install_signal_handlers()?;
    eprintln!(
        "rig sim: {name} on {} → {} at {baud} baud ({}); Ctrl-C or SIGTERM stops and removes the link",
        args.link.display(),
        server.slave_name(),
        framing.name()
    );
    let end = server.serve(&mut meter)?;
    eprintln!(
        "rig sim: stopped after {} in, {} out, {}",
        super::count(end.received as u64, "character", "characters"),
        super::count(end.transmitted as u64, "character", "characters"),
        super::count(meter.readouts() as u64, "answer", "answers")
    );
    Ok(ExitCode::SUCCESS)
}
