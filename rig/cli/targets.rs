//! Opening hardware targets for `rig run` (serial ports and pins).

use anyhow::bail;

use meter_rig::meter::config::MeterSpec;
use meter_rig::pins::rig_target::RigTarget;
use meter_rig::pins::wiring::{ChipInventory, Wiring};
use meter_rig::pins::{open_bus, PinTarget};
use meter_rig::serial::{Framing, SerialOptions, SerialTarget};
use meter_rig::target::Target;

/// Opens a `serial:`, `gpio:` or `pi:` target.
pub fn open(
    kind: &str,
    rest: &str,
    spec: &MeterSpec,
    framing: &str,
) -> anyhow::Result<Box<dyn Target>> {
    if rest.is_empty() {
        bail!("--target {kind}: needs a path, e.g. {kind}:/dev/ttyUSB0 or {kind}:wiring/raspberry-pi.toml");
    }
    if kind == "serial" {
        // at the meter file's (or --baud's) line rate; times per the serial-only contract
        let framing = <Framing as clap::ValueEnum>::from_str(framing, true).map_err(|_| {
            anyhow::anyhow!("--framing {framing:?}: expected soft7e1, uart or seven-bit")
        })?;
        let opts = SerialOptions {
            baud: spec.baud,
            framing,
            kind: None,
        };
        return Ok(Box::new(SerialTarget::open(rest, opts)?));
    }
    // gpio: or pi: a wiring file; its backend must match the target kind
    let path = std::path::Path::new(rest);
    let wiring = Wiring::load(path)?;
    // port roles from the resolved meter spec (KK for the 351, Z3 for OMNIPOWER): one source
    wiring.check(rest, Some(spec.io_code()), &ChipInventory::scan())?;
    let backend = format!("{:?}", wiring.backend).to_lowercase();
    if backend != kind {
        bail!("--target {kind}:{rest}: the wiring file is for the {backend} backend; use --target {backend}:{rest}");
    }
    let bus = open_bus(&wiring)?;
    let uart = wiring.data_in.as_ref().and_then(|d| d.uart.clone());
    let has_tap = wiring.data_in.as_ref().is_some_and(|d| d.tap.is_some());
    let pins = PinTarget::new(bus, wiring, spec.baud);
    Ok(Box::new(RigTarget::new(
        pins,
        uart.as_deref(),
        has_tap,
        spec.baud,
    )?))
}
