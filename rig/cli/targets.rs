//! Opening hardware targets for `rig run` (serial ports and pins).

use anyhow::bail;

use meter_rig::meter::config::MeterSpec;
use meter_rig::serial::{Framing, SerialOptions, SerialTarget};
use meter_rig::target::Target;

use super::run::RunArgs;

/// Opens a `serial:`, `gpio:` or `pi:` target.
pub fn open(
    kind: &str,
    rest: &str,
    spec: &MeterSpec,
    args: &RunArgs,
) -> anyhow::Result<Box<dyn Target>> {
    if rest.is_empty() {
        bail!("--target {kind}: needs a path, e.g. {kind}:/dev/ttyUSB0 or {kind}:wiring/raspberry-pi.toml");
    }
    if kind == "serial" {
        // at the meter file's (or --baud's) line rate; times per the serial-only contract
        let framing =
            <Framing as clap::ValueEnum>::from_str(&args.framing, true).map_err(|_| {
                anyhow::anyhow!(
                    "--framing {:?}: expected soft7e1, uart or seven-bit",
                    args.framing
                )
            })?;
        let opts = SerialOptions {
            baud: spec.baud,
            framing,
            kind: None,
        };
        return Ok(Box::new(SerialTarget::open(rest, opts)?));
    }
    bail!("--target {kind}:{rest}: this backend is not built into this binary yet")
}
