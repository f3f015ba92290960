//! The software meter against the data sheets' numbers, and each fault knob against the behaviour
//! it names.

use std::time::Duration;

use meter_rig::iec62056::{parity, Request};
use meter_rig::meter::config::MeterSpec;
use meter_rig::sim::{SimTarget, SoftMeter};
use meter_rig::target::{Port, RecvEnd, Target};
use meter_rig::time::Timestamp;
use meter_rig::uart::RxChar;

pub fn meter(extra: &str) -> MeterSpec {
    let base = std::fs::read_to_string(crate::util::path("fixtures/meters/default.toml")).unwrap();
    MeterSpec::from_toml(&format!("{base}\n{extra}"), "test", None).unwrap()
}

/// Meter file text with `[faults]` entries appended (the default file ends with `[faults]`).
pub fn with_faults(faults: &str) -> MeterSpec {
    meter(faults)
}

pub fn read_once(t: &mut SimTarget) -> (Timestamp, Vec<RxChar>, RecvEnd) {
    let req = parity::encode(&Request::general().encode());
    let end = t.send(&req).unwrap();
    let deadline = Timestamp(end.0 + 20_000_000_000);
    let (chars, how) = t
        .recv(
            deadline,
            Duration::from_millis(1500),
            &mut |c: &[RxChar]| c.len() >= 2 && c[c.len() - 2].byte & 0x7F == 0x03,
        )
        .unwrap();
    (end, chars, how)
}

#[test]
fn worked_example_reproduced_byte_for_byte() {
    // the default meter starts from the worked example's registers; read at once, before any
    // energy has accumulated to a whole kWh
    let golden = {
        let mut s = String::from("/KAM 685351A300100\r\n\x020.0.0(00000000)\r\n0.2.0(5000D1)\r\n");
        for l in [
            "1.8.0(0012658*kWh)",
            "1.8.1(0000886*kWh)",
            "1.8.2(0000854*kWh)",
            "1.8.3(0002375*kWh)",
            "1.8.4(0008543*kWh)",
            "3.8.0(0000129*kvarh)",
            "96.8.0(0000024*h)",
            "96.50.1(0001027)",
            "1.6.0(000023.4*kW)",
            "3.6.0(000001.5*kvar)",
            "1.6.0.1(000000.0*kW)",
            "3.6.0.1(000000.0*kvar)",
            "1.2.0(000057.0*kW)",
            "3.2.0(000003.2*kvar)",
        ] {
            s.push_str(l);
            s.push_str("\r\n");
        }
        s.push_str("0.1(0000000)!\r\n\x037");
        s.into_bytes()
    };
    assert_eq!(golden.len(), 359);
    let spec =
        MeterSpec::from_file(&crate::util::path("fixtures/meters/worked-example.toml")).unwrap();
    let mut t = SimTarget::new(spec);
    let (end, chars, how) = read_once(&mut t);
    assert_eq!(how, RecvEnd::Complete);
    let bytes: Vec<u8> = chars.iter().map(|c| c.byte & 0x7F).collect();
    assert_eq!(
        String::from_utf8_lossy(&bytes),
        String::from_utf8_lossy(&golden)
    );
    assert!(chars.iter().all(|c| parity::is_even(c.byte) && c.stop_ok));
    // response time exact: 150 ms from the end of LF's stop bit to the start bit of '/'
    assert_eq!(chars[0].start.0 - end.0, 150_000_000);
    // 359 characters back to back at 300 baud: 11.97 s
    let dur = chars.last().unwrap().end.0 - chars[0].start.0;
    assert_eq!(dur, 359 * 33_333_333);
}

#[test]
fn energy_integrates_exactly_through_the_transformer_ratio() {
    // 3000 W secondary × ratio 80 (HH 30 = 400/5) for 1 h = 240 kWh true
    let mut m = SoftMeter::new(meter(""));
    let before = m.registers();
    m.advance(Timestamp::from_ms(3_600_000));
    let after = m.registers();
    assert_eq!(after.active_mkwh - before.active_mkwh, 240_000);
    assert_eq!(after.reactive_mkvarh - before.reactive_mkvarh, 48_000);
    // communication tariff control: tariff 1 registers in parallel with the total
    assert_eq!(after.tariff_mkwh[0] - before.tariff_mkwh[0], 240_000);
    assert_eq!(after.hours - before.hours, 1);
}

#[test]
fn verified_pulses_are_10000_per_kwh_secondary() {
    // 3 kW secondary for 60 s = 0.05 kWh = 500 pulses at 10,000 imp/kWh (000 module pulse output)
    let mut t = SimTarget::new(meter(""));
    t.wait_until(Timestamp::from_ms(60_000)).unwrap();
    let edges = t.take_edges(Port::Port2).unwrap();
    let lows = edges.iter().filter(|e| !e.level).count();
    assert!((499..=500).contains(&lows), "{lows}");
    // 30 ms pulses (MM 01)
    for w in edges.windows(2).filter(|w| !w[0].level) {
        assert_eq!(w[1].t.0 - w[0].t.0, 30_000_000);
    }
    assert!(
        t.take_edges(Port::Port1).unwrap().is_empty(),
        "port 1 is pulse in under KK 05"
    );
}
