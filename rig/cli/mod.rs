//! Subcommand implementations. Each module owns its clap `Args` and a `run` returning the exit
//! code; errors that reach `main` are setup errors (exit 2).

pub mod calibrate;
pub mod decode;
pub mod module;
pub mod read;
pub mod remote;
pub mod report;
pub mod run;
pub mod serve;
pub mod sim;
pub mod targets;
pub mod wiring;

use std::path::Path;

/// Writes `text` to stdout; a reader that went away (`rig run | head`) ends the output quietly,
/// as ripgrep does, instead of a panic (see [`decode::write_quietly`]).
pub fn out(text: impl AsRef<str>) -> std::io::Result<()> {
    decode::write_quietly(&mut std::io::stdout().lock(), text.as_ref().as_bytes())
}

/// `n` and the noun, plural unless `n` is 1: `1 readout`, `2 readouts`.
pub fn count(n: u64, one: &str, many: &str) -> String {
    format!("{n} {}", if n == 1 { one } else { many })
}

/// Whether `e` is a write to a reader that went away (a broken pipe), anywhere in its chain.
pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<serde_json::Error>()
                .and_then(|j| j.io_error_kind())
                .is_some_and(|k| k == std::io::ErrorKind::BrokenPipe)
            || c.downcast_ref::<csv::Error>().is_some_and(|e| {
                matches!(e.kind(), csv::ErrorKind::Io(io) if io.kind() == std::io::ErrorKind::BrokenPipe)
            })
    })
}

use meter_rig::meter::config::MeterSpec;

/// Refuses `--baud` for a target other than `serial:`: the software meter and the pin targets
/// run at the meter file's rate, and a silent override would judge the meter at a rate its data
/// sheet does not give.
pub fn baud_only_for_serial(target: &str, baud: Option<u32>) -> anyhow::Result<()> {
    if let Some(b) = baud {
        if !target.starts_with("serial:") {
            anyhow::bail!(
                "--baud {b} is for serial targets (--target serial:PATH); --target {target} runs \
                 at the meter file's rate: set `baud = {b}` in the meter file (--meter) to try \
                 another rate"
            );
        }
    }
    Ok(())
}

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
