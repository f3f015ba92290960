//! A driver for the TI INA228 current monitor on embedded-hal 1.0 [`I2c`], for the module's
//! supply (module pin 6, 004_d1f80f13afa7763c.txt "Module interface": 4.2 V nominal, 1 mA average
//! over 60 s, 5 mA maximum).
//!
//! What it is for: `module.supply` needs the average over 60 s (from the chip's charge
//! accumulator, which integrates every conversion, so no peak between two reads is lost) and the
//! peaks (from the ALERT output, set to assert above a current limit through the shunt
//! over-limit threshold, timed as a GPIO edge by the pin layer). Bus: rppal's I2C or
//! linux-embedded-hal's `I2cdev`; tests: `embedded-hal-mock` register transactions.
//!
//! Register map (INA228 data sheet, SBOSA20): CONFIG 0x00 (bit 15 RST, bit 14 RSTACC, bit 4
//! ADCRANGE), ADC_CONFIG 0x01, SHUNT_CAL 0x02, CHARGE 0x0A (40-bit two's complement),
//! DIAG_ALRT 0x0B, SOVL 0x0C, MANUFACTURER_ID 0x3E (`TI`), DEVICE_ID 0x3F (0x228 in bits 15:4).
//! The INA226 has no charge accumulator; it is not supported (the average would need polling).

use embedded_hal::i2c::I2c;

const CONFIG: u8 = 0x00;
const ADC_CONFIG: u8 = 0x01;
const SHUNT_CAL: u8 = 0x02;
const CHARGE: u8 = 0x0A;
const DIAG_ALRT: u8 = 0x0B;
const SOVL: u8 = 0x0C;
const MANUFACTURER_ID: u8 = 0x3E;
const DEVICE_ID: u8 = 0x3F;

/// ADCRANGE = 0: ±163.84 mV full scale; the shunt voltage LSB is then 5 µV (SOVL's too).
const SOVL_LSB_V: f64 = 5e-6;
/// Continuous shunt and bus conversions, 1052 µs each, 64 averages (about 67 ms per result):
/// ADC_CONFIG MODE = 0xB, VBUSCT = VSHCT = 5 (1052 µs), VTCT = 0, AVG = 3 (64).
const ADC_CONTINUOUS: u16 = (0xB << 12) | (5 << 9) | (5 << 6) | 3;

/// Errors of the INA228 driver: the bus's, or a chip that is not an INA228.
#[derive(Debug, thiserror::Error)]
pub enum InaError<E: std::fmt::Debug> {
    /// The I2C transfer failed: check the address (0x40–0x4F by A0/A1), the wiring of SDA/SCL
    /// and that the chip is powered.
    #[error("I2C transfer with the INA228 failed ({0:?}): check its address (0x40–0x4F), SDA/SCL and its supply")]
    Bus(E),
    /// The chip answered with other IDs.
    #[error("the chip at the INA228's address reports manufacturer {manufacturer:#06x} device {device:#06x}, not TI (0x5449) INA228 (0x228x): check the address and the part")]
    NotIna228 {
        /// MANUFACTURER_ID.
        manufacturer: u16,
        /// DEVICE_ID.
        device: u16,
    },
    /// The shunt and current range give a calibration outside the register.
    #[error("shunt {shunt_ohm} Ω with a {max_ma} mA range needs SHUNT_CAL {cal}, outside 1–32767: choose a shunt so that max current × shunt ≤ 163 mV and ≥ ~1 mV")]
    Calibration {
        /// Shunt resistance, Ω.
        shunt_ohm: f64,
        /// Largest current measured, mA.
        max_ma: f64,
        /// The register value it needs.
        cal: f64,
    },
}

/// An INA228 on an I2C bus, calibrated for a shunt and a current range.
#[derive(Debug)]
pub struct Ina228<I> {
    i2c: I,
    address: u8,
    current_lsb_a: f64,
    shunt_ohm: f64,
}

impl<I: I2c> Ina228<I> {
    /// Checks the chip's IDs, resets it, and calibrates it for `shunt_ohm` and currents up to
    /// `max_ma` (CURRENT_LSB = max / 2^19; SHUNT_CAL = 13107.2 × 10^6 × CURRENT_LSB × R_SHUNT,
    /// ADCRANGE 0), then starts continuous conversions and clears the accumulators.
    ///
    /// # Errors
    /// [`InaError::Bus`] on a failed transfer, [`InaError::NotIna228`] on other IDs,
    /// [`InaError::Calibration`] when the shunt does not fit the range.
    pub fn new(
        i2c: I,
        address: u8,
        shunt_ohm: f64,
        max_ma: f64,
    ) -> Result<Self, InaError<I::Error>> {
        let current_lsb_a = max_ma / 1e3 / f64::from(1u32 << 19);
        let cal = (13107.2e6 * current_lsb_a * shunt_ohm).round();
        if !(1.0..=32767.0).contains(&cal) {
            return Err(InaError::Calibration {
                shunt_ohm,
                max_ma,
                cal,
            });
        }
        let mut ina = Ina228 {
            i2c,
            address,
            current_lsb_a,
            shunt_ohm,
        };
        let manufacturer = ina.read16(MANUFACTURER_ID)?;
        let device = ina.read16(DEVICE_ID)?;
        if manufacturer != 0x5449 || device >> 4 != 0x228 {
            return Err(InaError::NotIna228 {
                manufacturer,
                device,
            });
        }
        ina.write16(CONFIG, 1 << 15)?;
        ina.write16(SHUNT_CAL, cal as u16)?;
        ina.write16(ADC_CONFIG, ADC_CONTINUOUS)?;
        ina.reset_charge()?;
        Ok(ina)
    }

    /// Clears the charge (and energy) accumulators (CONFIG RSTACC); the next average starts now.
    ///
    /// # Errors
    /// [`InaError::Bus`].
    pub fn reset_charge(&mut self) -> Result<(), InaError<I::Error>> {
        self.write16(CONFIG, 1 << 14)
    }

    /// The charge since the last reset, coulombs (CHARGE × CURRENT_LSB; negative when current
    /// flowed backwards).
    ///
    /// # Errors
    /// [`InaError::Bus`].
    pub fn charge_c(&mut self) -> Result<f64, InaError<I::Error>> {
        let mut b = [0u8; 5];
        self.i2c
            .write_read(self.address, &[CHARGE], &mut b)
            .map_err(InaError::Bus)?;
        let raw = b.iter().fold(0i64, |acc, &x| (acc << 8) | i64::from(x));
        // sign-extend 40 bits
        let raw = (raw << 24) >> 24;
        Ok(raw as f64 * self.current_lsb_a)
    }

    /// Makes ALERT assert (active low, transparent: it follows the comparison) while the current
    /// exceeds `limit_ma`, through the shunt over-limit threshold (SOVL = limit × R / 5 µV).
    /// Returns the limit the register holds, mA (rounded down to its step).
    ///
    /// # Errors
    /// [`InaError::Bus`].
    pub fn alert_above(&mut self, limit_ma: f64) -> Result<f64, InaError<I::Error>> {
        let sovl = (limit_ma / 1e3 * self.shunt_ohm / SOVL_LSB_V)
            .floor()
            .clamp(0.0, 32767.0);
        self.write16(SOVL, sovl as u16)?;
        // DIAG_ALRT: ALATCH = 0 (transparent), APOL = 0 (active low), SLOWALERT = 0
        self.write16(DIAG_ALRT, 0)?;
        Ok(sovl * SOVL_LSB_V / self.shunt_ohm * 1e3)
    }

    /// The bus back (for tests and for reuse).
    pub fn release(self) -> I {
        self.i2c
    }

    fn read16(&mut self, reg: u8) -> Result<u16, InaError<I::Error>> {
        let mut b = [0u8; 2];
        self.i2c
            .write_read(self.address, &[reg], &mut b)
            .map_err(InaError::Bus)?;
        Ok(u16::from_be_bytes(b))
    }

    fn write16(&mut self, reg: u8, v: u16) -> Result<(), InaError<I::Error>> {
        let [hi, lo] = v.to_be_bytes();
        self.i2c
            .write(self.address, &[reg, hi, lo])
            .map_err(InaError::Bus)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use embedded_hal_mock::eh1::i2c::{Mock, Transaction as T};

    const A: u8 = 0x40;

    /// 0.1 Ω shunt, 10 mA range: CURRENT_LSB = 10 mA / 2^19, SHUNT_CAL = round(13107.2e6 ×
    /// 1.9073e-8 × 0.1) = 25.
    fn setup() -> Vec<T> {
        vec![
            T::write_read(A, vec![0x3E], vec![0x54, 0x49]),
            T::write_read(A, vec![0x3F], vec![0x22, 0x81]),
            T::write(A, vec![0x00, 0x80, 0x00]),
            T::write(A, vec![0x02, 0x00, 25]),
            T::write(A, vec![0x01, 0xBB, 0x43]),
            T::write(A, vec![0x00, 0x40, 0x00]),
        ]
    }

    #[test]
    fn calibrates_reads_charge_and_sets_the_alert_limit() {
        let mut t = setup();
        // 60 s at 1 mA = 0.06 C = 0.06 / (0.01 / 2^19) = 3145728 LSB
        t.push(T::write_read(
            A,
            vec![0x0A],
            vec![0x00, 0x00, 0x30, 0x00, 0x00],
        ));
        // a negative charge: -1 LSB
        t.push(T::write_read(
            A,
            vec![0x0A],
            vec![0xFF, 0xFF, 0xFF, 0xFF, 0xFF],
        ));
        // 5 mA × 0.1 Ω = 500 µV = 100 × 5 µV
        t.push(T::write(A, vec![0x0C, 0x00, 100]));
        t.push(T::write(A, vec![0x0B, 0x00, 0x00]));
        let mut ina = Ina228::new(Mock::new(&t), A, 0.1, 10.0).unwrap();
        let q = ina.charge_c().unwrap();
        assert!((q - 0.06).abs() < 1e-9, "{q}");
        assert!(ina.charge_c().unwrap() < 0.0);
        let limit = ina.alert_above(5.0).unwrap();
        assert!((limit - 5.0).abs() < 1e-9, "{limit}");
        ina.release().done();
    }

    #[test]
    fn another_chip_is_named() {
        let t = vec![
            T::write_read(A, vec![0x3E], vec![0x54, 0x49]),
            T::write_read(A, vec![0x3F], vec![0x22, 0x60]),
        ];
        let mut m = Mock::new(&t);
        let e = Ina228::new(m.clone(), A, 0.1, 10.0).unwrap_err();
        assert!(
            matches!(e, InaError::NotIna228 { device: 0x2260, .. }),
            "{e}"
        );
        m.done();
    }

    #[test]
    fn a_shunt_that_does_not_fit_the_range_is_refused_before_any_transfer() {
        let mut m = Mock::new(&[]);
        let e = Ina228::new(m.clone(), A, 1e-6, 10.0).unwrap_err();
        assert!(e.to_string().contains("SHUNT_CAL"), "{e}");
        m.done();
    }
}
