//! Opening hardware targets for `rig run` (serial ports and pins).

use anyhow::bail;

use meter_rig::meter::config::MeterSpec;
use meter_rig::pins::rig_target::RigTarget;
use meter_rig::pins::wiring::{ChipInventory, Side, Wiring};
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
        match kind {
            "serial" => bail!(
                "--target serial: needs the port, e.g. --target serial:/dev/ttyUSB0 (or a pty \
                 link made by `rig sim --link PATH`)"
            ),
            _ => bail!(
                "--target {kind}: needs a wiring file, e.g. --target {kind}:wiring/raspberry-pi.toml \
                 (rig serve also takes --target {kind} --wiring FILE)"
            ),
        }
    }
    if kind == "serial" {
        // at the meter file's (or --baud's) line rate; times per the serial-only contract
        let framing = <Framing as clap::ValueEnum>::from_str(framing, true).map_err(|_| {
            anyhow::anyhow!(
                "--framing {framing:?}: expected soft7e1 (parity checked by the rig), uart (the \
                 UART's own 7E1) or seven-bit (also spelled 7bit)"
            )
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
    wiring.require_side(rest, Side::Module)?;
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
