//! `rig report`: rebuilds a run's `report.html` from its `record.json`, or compares two runs.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use meter_rig::evidence::html;
use meter_rig::report::read_record;

/// Arguments of `rig report`.
#[derive(Debug, Args)]
pub struct ReportArgs {
    /// The run directory (holding record.json; `rig run --out`, or `rig serve`'s DATA/runs/ID).
    pub run_dir: PathBuf,
    /// Another run directory: write a page comparing the two runs case by case and value by
    /// value instead (RUN_DIR is A, this is B).
    #[arg(long, value_name = "RUN_DIR")]
    pub compare: Option<PathBuf>,
    /// Where to write the page (default: RUN_DIR/report.html, or RUN_DIR/compare.html with
    /// --compare).
    #[arg(long, short)]
    pub output: Option<PathBuf>,
}

/// Runs `rig report`; prints the page's path.
pub fn run(args: ReportArgs) -> anyhow::Result<ExitCode> {
    let a = read_record(&args.run_dir)
        .with_context(|| format!("cannot read the run in {}", args.run_dir.display()))?;
    let (page, default) = match &args.compare {
        Some(other) => {
            let b = read_record(other)
                .with_context(|| format!("cannot read the run in {}", other.display()))?;
            (html::compare(&a, &b), "compare.html")
        }
        None => (html::render(&a, &mut BTreeMap::new()), html::REPORT),
    };
    let out = args.output.unwrap_or_else(|| args.run_dir.join(default));
    meter_rig::report::write_atomic(&out, page.as_bytes())
        .with_context(|| format!("cannot write {}", out.display()))?;
    println!("{}", out.display());
    Ok(ExitCode::SUCCESS)
}
