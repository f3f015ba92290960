//! Opening hardware targets for `rig run` (serial ports and pins).

use anyhow::bail;

use meter_rig::meter::config::MeterSpec;
use meter_rig::target::Target;

use super::run::RunArgs;

/// Opens a `serial:`, `gpio:` or `pi:` target.
pub fn open(
    kind: &str,
    rest: &str,
    _spec: &MeterSpec,
    _args: &RunArgs,
) -> anyhow::Result<Box<dyn Target>> {
    if rest.is_empty() {
        bail!("--target {kind}: needs a path, e.g. {kind}:/dev/ttyUSB0 or {kind}:wiring/raspberry-pi.toml");
    }
    bail!("--target {kind}:{rest}: this backend is not built into this binary yet")
}
