//! The current monitor in pin 6's supply on the meter side (`rig module --wiring`): the INA228
//! driver ([`super::ina228`]) on a Linux I2C bus, read for `module.supply`.
//!
//! The bus is the kernel's i2c-dev (`/dev/i2c-N`) through rppal's `I2c`, which implements
//! embedded-hal 1.0's `I2c` on any Linux board (it opens the device; it needs no Raspberry Pi).
//! The ALERT line is not read here: it is a GPIO input of the pins bench, timed as an edge.
//! [`CurrentMonitor`] is what the bench needs of a monitor, so tests can give it another.

use embedded_hal::i2c::I2c;

use super::ina228::Ina228;
use super::supply::PEAK_MAX_MA;
use crate::pins::wiring::SupplyMonitor;
use crate::target::TargetError;

/// The range the INA228 is calibrated for, mA (twice 004's 5 mA maximum).
pub const RANGE_MA: f64 = 10.0;

/// What the pins bench reads of a current monitor.
pub trait CurrentMonitor {
    /// Clears the charge accumulator: the charge counts from now.
    ///
    /// # Errors
    /// The bus's, as [`TargetError::Io`] naming the device.
    fn reset_charge(&mut self) -> Result<(), TargetError>;
    /// The charge since the last reset, coulombs.
    ///
    /// # Errors
    /// The bus's, as [`TargetError::Io`] naming the device.
    fn charge_c(&mut self) -> Result<f64, TargetError>;
    /// The current above which ALERT asserts, as the chip holds it, mA.
    fn alert_limit_ma(&self) -> f64;
}

/// An INA228 on an I2C bus, its ALERT set to assert above 004's 5 mA.
#[derive(Debug)]
pub struct Ina228Monitor<I> {
    ina: Ina228<I>,
    device: String,
    limit_ma: f64,
}

fn io_err(device: &str, call: &str, detail: String) -> TargetError {
    TargetError::Io {
        device: device.to_string(),
        call: call.to_string(),
        detail,
        source: None,
    }
}

impl<I: I2c> Ina228Monitor<I> {
    /// Checks, calibrates ([`RANGE_MA`]) and arms the INA228 at `address` on `i2c` (named
    /// `device` in errors) for a shunt of `shunt_ohm` Ω.
    ///
    /// # Errors
    /// [`TargetError::Io`] naming the device: a failed transfer, another chip, a shunt that does
    /// not fit the range (each with its fix, from [`super::ina228::InaError`]).
    pub fn new(i2c: I, device: &str, address: u8, shunt_ohm: f64) -> Result<Self, TargetError> {
        let mut ina = Ina228::new(i2c, address, shunt_ohm, RANGE_MA)
            .map_err(|e| io_err(device, "INA228 setup", e.to_string()))?;
        let limit_ma = ina
            .alert_above(PEAK_MAX_MA)
            .map_err(|e| io_err(device, "INA228 alert limit", e.to_string()))?;
        Ok(Ina228Monitor {
            ina,
            device: device.to_string(),
            limit_ma,
        })
    }
}

impl<I: I2c> CurrentMonitor for Ina228Monitor<I> {
    fn reset_charge(&mut self) -> Result<(), TargetError> {
        self.ina
            .reset_charge()
            .map_err(|e| io_err(&self.device, "INA228 reset charge", e.to_string()))
    }
    fn charge_c(&mut self) -> Result<f64, TargetError> {
        self.ina
            .charge_c()
            .map_err(|e| io_err(&self.device, "INA228 read charge", e.to_string()))
    }
    fn alert_limit_ma(&self) -> f64 {
        self.limit_ma
    }
}

/// The bus number of an i2c-dev path (`/dev/i2c-1` → 1).
///
/// # Errors
/// [`TargetError::Io`] naming the path and the form it needs.
pub fn bus_number(path: &str) -> Result<u8, TargetError> {
    path.strip_prefix("/dev/i2c-")
        .and_then(|n| n.parse().ok())
        .ok_or_else(|| {
            io_err(
                path,
                "parse the I2C bus",
                "give the i2c-dev device as /dev/i2c-N in [supply_monitor] `i2c` (enable the bus: dtparam=i2c_arm=on on a Pi, modprobe i2c-dev elsewhere)".into(),
            )
        })
}

/// Opens the monitor a meter-side wiring file's `[supply_monitor]` names.
///
/// # Errors
/// [`TargetError::Io`]: a path not of the form `/dev/i2c-N`, a bus that cannot be opened (with
/// the permission fix), the chip's errors.
pub fn open(m: &SupplyMonitor) -> Result<Ina228Monitor<rppal::i2c::I2c>, TargetError> {
    let bus = bus_number(&m.i2c)?;
    let i2c = rppal::i2c::I2c::with_bus(bus).map_err(|e| {
        io_err(
            &m.i2c,
            "open",
            format!(
                "{e}; check that the bus exists (i2cdetect -l) and that the user is in group i2c"
            ),
        )
    })?;
    Ina228Monitor::new(i2c, &m.i2c, m.address, m.shunt_ohm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    #[test]
    fn the_monitor_arms_the_alert_at_5_ma_and_reads_charge_naming_its_device() {
        let a = 0x40;
        let mut script = vec![
            T::write_read(a, vec![0x3E], vec![0x54, 0x49]),
            T::write_read(a, vec![0x3F], vec![0x22, 0x81]),
            T::write(a, vec![0x00, 0x80, 0x00]),
        ];
        // SHUNT_CAL for 0.1 Ω over 10 mA: 13107.2e6 × (10e-3 / 2^19) × 0.1 = 25
        script.push(T::write(a, vec![0x02, 0x00, 25]));
        script.push(T::write(a, vec![0x01, 0xBB, 0x43]));
        script.push(T::write(a, vec![0x00, 0x40, 0x00]));
        // SOVL = 5 mA × 0.1 Ω / 5 µV = 100
        script.push(T::write(a, vec![0x0C, 0x00, 100]));
        script.push(T::write(a, vec![0x0B, 0x00, 0x00]));
        // a charge of 2^19 LSB = 10 mA × 1 s = 0.01 C
        script.push(T::write_read(a, vec![0x0A], vec![0, 0, 0x08, 0, 0]));
        let mut i2c = Mock::new(&script);
        let mut m = Ina228Monitor::new(i2c.clone(), "/dev/i2c-1", a, 0.1).unwrap();
        assert!((m.alert_limit_ma() - 5.0).abs() < 1e-9);
        assert!((m.charge_c().unwrap() - 0.01).abs() < 1e-12);
        i2c.done();
        // another chip: the error names the device and the check
        let mut bad = Mock::new(&[
            T::write_read(a, vec![0x3E], vec![0x00, 0x00]),
            T::write_read(a, vec![0x3F], vec![0x00, 0x00]),
        ]);
        let e = Ina228Monitor::new(bad.clone(), "/dev/i2c-1", a, 0.1)
            .unwrap_err()
            .to_string();
        assert!(e.contains("/dev/i2c-1") && e.contains("not TI"), "{e}");
        bad.done();
    }

    #[test]
    fn the_bus_is_an_i2c_dev_path() {
        assert_eq!(bus_number("/dev/i2c-1").unwrap(), 1);
        let e = bus_number("/dev/ttyS0").unwrap_err().to_string();
        assert!(e.contains("/dev/i2c-N"), "{e}");
    }
}
