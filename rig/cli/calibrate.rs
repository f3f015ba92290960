//! `rig calibrate --wiring FILE`: measure optocoupler delays over the declared loopbacks.
//!
//! For each `[[loopback]]` the rig toggles the drive output `--count` times and takes the sense
//! input's kernel edge timestamps. The write time of each toggle is the midpoint of
//! CLOCK_MONOTONIC read just before and just after the set call; half that window is the write
//! uncertainty, added to the spread. Rise and fall (named by the level change at the module pin)
//! are measured separately; the median and spread (max − min + write uncertainty) are written back
//! into the entry's `opto` table, keeping the rest of the file as it was.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::Args;

use meter_rig::pins::calibrate::{calibrate_loopback, write_back};
use meter_rig::pins::wiring::{ChipInventory, Side, Wiring};

/// `rig calibrate …`
#[derive(Debug, Args)]
pub struct CalibrateArgs {
    /// The wiring file; updated in place unless `--dry-run`.
    #[arg(long)]
    wiring: PathBuf,
    /// Toggles per loopback (each gives one rise and one fall).
    #[arg(long, default_value_t = 50)]
    count: u32,
    /// Time each level is held, ms (long against the opto's delay and the 10 ms meter-side RC).
    #[arg(long, default_value_t = 5)]
    hold_ms: u64,
    /// Print the results without writing the file.
    #[arg(long)]
    dry_run: bool,
}

/// Runs `rig calibrate`.
pub fn run(args: CalibrateArgs) -> anyhow::Result<ExitCode> {
    let name = args.wiring.display().to_string();
    let w = Wiring::load(&args.wiring)?;
    // calibration loopbacks are defined for the module side's directions only
    w.require_side(&name, Side::Module)?;
    let notes = w.check(&name, None, &ChipInventory::scan())?;
    for n in notes {
        eprintln!("{name}: entry {}: note: {}", n.entry, n.text);
    }
    if w.loopback.is_empty() {
        eprintln!("rig: {name}: no [[loopback]] entries: nothing to calibrate");
        return Ok(ExitCode::from(2));
    }
    let mut text =
        std::fs::read_to_string(&args.wiring).with_context(|| format!("reading {name}"))?;
    for (i, lb) in w.loopback.iter().enumerate() {
        let r = calibrate_loopback(&w, i, args.count, Duration::from_millis(args.hold_ms))
            .with_context(|| format!("{name}: loopback[{i}] ({})", lb.entry))?;
        super::out(format!("{}: {r}\n", lb.entry))?;
        text = write_back(&text, &lb.entry, &r)
            .map_err(|e| anyhow::anyhow!("{name}: writing results for {}: {e}", lb.entry))?;
    }
    if args.dry_run {
        super::out(format!("dry run: {name} not changed\n"))?;
    } else {
        std::fs::write(&args.wiring, &text).with_context(|| format!("writing {name}"))?;
        super::out(format!("{name}: updated\n"))?;
    }
    Ok(ExitCode::SUCCESS)
}
