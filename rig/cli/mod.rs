//! Subcommand implementations. Each module owns its clap `Args` and a `run` returning the exit
//! code; errors that reach `main` are setup errors (exit 2).

pub mod calibrate;
pub mod decode;
pub mod module;
pub mod read;
pub mod remote;
pub mod run;
pub mod serve;
pub mod sim;
pub mod targets;
pub mod wiring;

use std::path::Path;

use meter_rig::meter::config::MeterSpec;

/// The meter a subcommand works with: the meter file given, or the built-in healthy 351 Combi
/// (fixtures/meters/default.toml), with `--baud` overriding its line rate.
pub fn meter_spec(meter: Option<&Path>, baud: Option<u32>) -> anyhow::Result<MeterSpec> {
    let mut spec = match meter {
        Some(p) => MeterSpec::from_file(p)?,
        None => MeterSpec::builtin_default(),
    };
    if let Some(b) = baud {
        spec.baud = b;
    }
    Ok(spec)
}
