//! The software meter against the data sheets' numbers, and each fault knob against the behaviour
//! it names.

use std::time::Duration;

use meter_rig::iec62056::{parity, AckOptionSelect, Request};
use meter_rig::meter::config::MeterSpec;
use meter_rig::sim::{SimTarget, SoftMeter};
use meter_rig::target::{Clock, DataLink, Drive, ModulePorts, Port, RecvEnd};
use meter_rig::time::Timestamp;
use meter_rig::uart::RxChar;

/// The default meter file with `extra` appended (it ends with `[faults]`, so knobs go there).
pub fn meter(extra: &str) -> MeterSpec {
    let mut base = default_text();
    if extra.contains("response_delay_ms") {
        base = base.replace("response_delay_ms = 150.0", "");
    }
    MeterSpec::from_toml(&format!("{base}\n{extra}"), "test", None).unwrap()
}

fn default_text() -> String {
    std::fs::read_to_string(crate::util::path("fixtures/meters/default.toml")).unwrap()
}

/// The default meter file with each `(from, to)` replaced once more.
fn replaced(pairs: &[(&str, &str)]) -> MeterSpec {
    let text = pairs
        .iter()
        .fold(default_text(), |t, (a, b)| t.replace(a, b));
    MeterSpec::from_toml(&text, "test", None).unwrap()
}

pub fn read_once(t: &mut SimTarget) -> (Timestamp, Vec<RxChar>, RecvEnd) {
    let req = parity::encode(&Request::general().encode());
    let end = t.send(&req).unwrap().t;
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
    let lows = edges.iter().filter(|e| e.level.is_low()).count();
    assert!((499..=500).contains(&lows), "{lows}");
    // 30 ms pulses (MM 01)
    for w in edges.windows(2).filter(|w| w[0].level.is_low()) {
        assert_eq!(w[1].t.0 - w[0].t.0, 30_000_000);
    }
    assert!(
        t.take_edges(Port::Port1).unwrap().is_empty(),
        "port 1 is pulse in under KK 05"
    );
}

#[test]
fn a_meter_without_pins_keeps_no_edges_but_the_same_pulses() {
    // rig sim --link: a pty has no pins, so the meter times and counts pulses but keeps no edges
    let mut kept = SoftMeter::new(meter(""));
    let mut dropped = SoftMeter::new(meter(""));
    dropped.set_keep_port_edges(false);
    for m in [&mut kept, &mut dropped] {
        m.advance(Timestamp::from_ms(60_000));
    }
    assert_eq!(kept.pulses_emitted(Port::Port2), 500);
    assert_eq!(dropped.pulses_emitted(Port::Port2), 500);
    let mut edges = Vec::new();
    kept.take_port_edges(Port::Port2, Timestamp(u64::MAX), &mut edges);
    assert_eq!(edges.len(), 1000);
    edges.clear();
    dropped.take_port_edges(Port::Port2, Timestamp(u64::MAX), &mut edges);
    assert!(edges.is_empty());
    assert_eq!(dropped.dropped_edges(Port::Port2), 0, "not an overflow");
}

#[test]
fn load_schedule_integrates_exactly_and_repeats() {
    let spec = MeterSpec::from_file(&crate::util::path("fixtures/meters/office-day.toml")).unwrap();
    assert_eq!(spec.ratio, 40);
    let mut m = SoftMeter::new(spec);
    m.advance(Timestamp::from_ms(2 * 86_400_000));
    // one day: 0.4·7 + 2.5·5 + 1.8·1 + 2.6·5 + 0.9·4 + 0.4·2 = 34.5 kWh secondary; ×40 true; two days
    let r = m.registers();
    assert_eq!(r.active_mkwh, 2 * 34_500 * 40);
    assert_eq!(r.hours, 48);
}

#[test]
fn peak_is_the_highest_period_average_and_the_logging_date_moves_it() {
    // office day starts 2026-01-30; logging on the 1st (NN 01): at 2026-02-01 00:00 the month's
    // peak becomes last month's, is added to the accumulated peak, and 0.1 counts it
    let spec = MeterSpec::from_file(&crate::util::path("fixtures/meters/office-day.toml")).unwrap();
    let mut m = SoftMeter::new(spec);
    m.advance(Timestamp::from_ms(86_400_000));
    let r = m.registers();
    // highest 15-minute average: 2.6 kW secondary × 40 = 104 kW
    assert_eq!(r.peak.0, 104_000);
    assert_eq!(r.reset_counter, 0);
    m.advance(Timestamp::from_ms(2 * 86_400_000 + 1));
    let r = m.registers();
    assert_eq!(r.last_month_peak.0, 104_000);
    assert_eq!(r.accumulated_peak.0, 104_000);
    assert_eq!(r.reset_counter, 1);
    assert_eq!(
        r.peak.0, 0,
        "the new month's first period has not ended yet"
    );
}

#[rstest::rstest]
#[case::kk01_00(1, false, false, 1)]
#[case::kk01_10(1, true, false, 2)]
#[case::kk01_01(1, false, true, 3)]
#[case::kk01_11(1, true, true, 4)]
#[case::kk02_11(2, true, true, 1)]
#[case::kk02_01(2, false, true, 2)]
#[case::kk02_10(2, true, false, 3)]
#[case::kk02_00(2, false, false, 4)]
#[case::kk07_0(7, false, false, 1)]
#[case::kk07_1(7, true, false, 2)]
#[case::kk08_1(8, true, false, 1)]
#[case::kk08_0(8, false, false, 2)]
fn tariff_inputs_select_the_sheets_register(
    #[case] kk: u8,
    #[case] in1: bool,
    #[case] in2: bool,
    #[case] tariff: usize,
) {
    // 000 "Tariff control": inputs are port 1 (input 1) and port 2 (input 2); "1" pulls the pin low
    let mut t = SimTarget::new(replaced(&[("kk = 5 ", &format!("kk = {kk} "))]));
    t.set_input(Port::Port1, Drive::from_active(in1)).unwrap();
    t.set_input(Port::Port2, Drive::from_active(in2)).unwrap();
    let before = t.meter().registers();
    t.wait_until(Timestamp::from_ms(600_000)).unwrap();
    let after = t.meter().registers();
    for k in 0..4 {
        let grew = after.tariff_mkwh[k] > before.tariff_mkwh[k];
        assert_eq!(
            grew,
            k + 1 == tariff,
            "KK {kk:02} in1={in1} in2={in2}: T{} grew={grew}",
            k + 1
        );
    }
    assert_eq!(after.active_tariff as usize, tariff);
}

#[test]
fn pulse_input_counts_and_max_reset_resets() {
    let spec = replaced(&[("kk = 5 ", "kk = 15 ")]);
    let mut t = SimTarget::new(spec);
    let r0 = t.meter().registers();
    assert_eq!(
        r0.peak.0, 23_400,
        "1.6.0 starts at the worked example's 23.4 kW"
    );
    // max reset on port 1 (KK 15): peak → last month, accumulated += peak, 0.1 += 1
    t.set_input(Port::Port1, Drive::Active).unwrap();
    t.wait_until(Timestamp::from_ms(100)).unwrap();
    t.set_input(Port::Port1, Drive::Inactive).unwrap();
    let r = t.meter().registers();
    assert_eq!(
        (
            r.peak.0,
            r.last_month_peak.0,
            r.accumulated_peak.0,
            r.reset_counter
        ),
        (0, 23_400, 57_000 + 23_400, 1)
    );
    // pulse input under KK 05 on port 1 counts leading edges
    let mut t = SimTarget::new(meter(""));
    let c0 = t.meter().registers().pulse_input;
    for k in 0..7u64 {
        t.wait_until(Timestamp::from_ms(100 * k)).unwrap();
        t.set_input(Port::Port1, Drive::Active).unwrap();
        t.wait_until(Timestamp::from_ms(100 * k + 50)).unwrap();
        t.set_input(Port::Port1, Drive::Inactive).unwrap();
    }
    assert_eq!(t.meter().registers().pulse_input - c0, 7);
}

#[test]
fn pulse_constants_and_lengths_follow_the_configuration() {
    // P = 2: true energy at a configured constant (1–100,000 imp/kWh); MM 02: 80 ms pulses
    let mut t = SimTarget::new(replaced(&[
        ("p = 1 ", "p = 2\npulse_constant = 50 "),
        ("mm = 1 ", "mm = 2 "),
    ]));
    // 3 kW × 80 = 240 kW true for 60 s = 4 kWh = 200 pulses at 50 imp/kWh
    t.wait_until(Timestamp::from_ms(60_000)).unwrap();
    let e = t.take_edges(Port::Port2).unwrap();
    assert_eq!(e.iter().filter(|e| e.level.is_low()).count(), 200);
    assert!(e
        .windows(2)
        .filter(|w| w[0].level.is_low())
        .all(|w| w[1].t.0 - w[0].t.0 == 80_000_000));
}

/// Each knob changes only what it names: compare a faulty meter's answer with a healthy one's.
#[rstest::rstest]
#[case::parity("parity_error_at = 40", "parity")]
#[case::drop("drop_data_sets = [\"96.50.1\"]", "drop")]
#[case::digits("digits = { \"1.8.0\" = 6 }", "digits")]
#[case::offset("tariff_sum_offset_kwh = 2.0", "offset")]
#[case::truncate("truncate_after = 100", "truncate")]
#[case::bcc("bcc = \"corrupt\"", "bcc")]
fn each_fault_knob_changes_only_what_it_names(#[case] knob: &str, #[case] what: &str) {
    let read = |spec: MeterSpec| {
        let mut t = SimTarget::new(spec);
        let (_, chars, _) = read_once(&mut t);
        chars.iter().map(|c| c.byte).collect::<Vec<u8>>()
    };
    let healthy = read(meter(""));
    let faulty = read(meter(knob));
    let h7: Vec<u8> = healthy.iter().map(|b| b & 0x7F).collect();
    let f7: Vec<u8> = faulty.iter().map(|b| b & 0x7F).collect();
    match what {
        "parity" => {
            assert_eq!(h7, f7);
            let diff: Vec<usize> = (0..healthy.len())
                .filter(|&i| healthy[i] != faulty[i])
                .collect();
            assert_eq!(diff, vec![40]);
        }
        "drop" => {
            let line = b"96.50.1(0001027)\r\n";
            let pos = h7.windows(line.len()).position(|w| w == line).unwrap();
            let mut expect = h7.clone();
            expect.drain(pos..pos + line.len());
            assert_eq!(
                f7[..f7.len() - 1],
                expect[..expect.len() - 1],
                "only the data set (and the BCC) differ"
            );
        }
        "digits" => {
            let a = String::from_utf8_lossy(&h7).replace("1.8.0(0012658*kWh)", "1.8.0(012658*kWh)");
            assert_eq!(&a.as_bytes()[..a.len() - 1], &f7[..f7.len() - 1]);
        }
        "offset" => {
            let a =
                String::from_utf8_lossy(&h7).replace("1.8.0(0012658*kWh)", "1.8.0(0012660*kWh)");
            assert_eq!(&a.as_bytes()[..a.len() - 1], &f7[..f7.len() - 1]);
        }
        "truncate" => assert_eq!(&h7[..100], &f7[..]),
        "bcc" => {
            assert_eq!(h7[..h7.len() - 1], f7[..f7.len() - 1]);
            assert_ne!(h7.last(), f7.last());
        }
        _ => unreachable!(),
    }
}

#[test]
fn timing_knobs_move_exactly_the_named_time() {
    let mut t = SimTarget::new(meter("char_gap_ms = 5.0"));
    let (end, chars, _) = read_once(&mut t);
    assert_eq!(chars[0].start.0 - end.0, 150_000_000);
    assert!(chars
        .windows(2)
        .all(|w| w[1].start.0 - w[0].end.0 == 5_000_000));
    let mut t = SimTarget::new(meter("response_delay_ms = 19.9"));
    let (end, chars, _) = read_once(&mut t);
    assert_eq!(chars[0].start.0 - end.0, 19_900_000);
    let mut t = SimTarget::new(meter("silent = true"));
    let (_, chars, how) = read_once(&mut t);
    assert!(chars.is_empty());
    assert_eq!(how, RecvEnd::Deadline);
}

/// The OMNIPOWER on its optical port: sends `/?!` CR LF, reads the mode C identification, lets
/// `after_id` pass from the identification's last stop bit, sends `first` (if any) and then
/// `ACK 0 5 0` CR LF, switches to 9600 baud and returns whether a data message (STX) came.
fn mode_c_data_after_ack(after_id: Duration, first: Option<u8>) -> bool {
    let text = std::fs::read_to_string(crate::util::path("fixtures/meters/omnipower-optical.toml"))
        .unwrap();
    let mut t = SimTarget::new(MeterSpec::from_toml(&text, "optical", None).unwrap());
    let req = parity::encode(&Request::general().encode());
    let end = t.send(&req).unwrap().t;
    let (id, _) = t
        .recv(
            Timestamp(end.0 + 5_000_000_000),
            Duration::from_millis(1500),
            &mut |c: &[RxChar]| c.last().is_some_and(|c| c.byte & 0x7F == b'\n'),
        )
        .unwrap();
    let id_end = id.last().expect("an identification").end;
    assert_eq!(
        id[4].byte & 0x7F,
        b'5',
        "the identification announces 9600 baud"
    );
    t.wait_until(Timestamp(id_end.0 + after_id.as_nanos() as u64))
        .unwrap();
    if let Some(c) = first {
        t.send(&parity::encode(&[c])).unwrap();
    }
    let ack = AckOptionSelect::readout('5').encode();
    let sent = t.send(&parity::encode(&ack)).unwrap().t;
    t.set_baud(9600).unwrap();
    let (data, _) = t
        .recv(
            Timestamp(sent.0 + 4_000_000_000),
            Duration::from_millis(1600),
            &mut |c: &[RxChar]| c.iter().any(|c| c.byte & 0x7F == 0x03),
        )
        .unwrap();
    data.iter().any(|c| c.byte & 0x7F == 0x02)
}

#[test]
fn a_mode_c_meter_gives_up_on_a_late_or_foreign_acknowledgement() {
    // IEC 62056-21 §6.4.4 (mode C): the meter waits 1.5 s after its identification for the
    // acknowledgement (the software meter: until the first character's stop bit, 1.5 s + one
    // character); past that, or after any other character, it goes back to its initial state
    assert!(mode_c_data_after_ack(Duration::from_millis(650), None));
    assert!(
        mode_c_data_after_ack(Duration::from_millis(1500), None),
        "an acknowledgement starting 1.5 s after the identification is in time"
    );
    // to the nanosecond: the first character's stop bit (33 333 333 ns at 300 baud) ends exactly
    // at the wait's end (1.5 s + 33 333 334 ns) when it starts 1 ns past 1.5 s, and is taken;
    // 1 ns later it is not
    assert!(mode_c_data_after_ack(
        Duration::from_nanos(1_500_000_001),
        None
    ));
    assert!(!mode_c_data_after_ack(
        Duration::from_nanos(1_500_000_002),
        None
    ));
    assert!(
        !mode_c_data_after_ack(Duration::from_millis(1501), None),
        "one starting 1.501 s after it is late: no data message"
    );
    assert!(!mode_c_data_after_ack(Duration::from_secs(10), None));
    assert!(
        !mode_c_data_after_ack(Duration::from_millis(300), Some(b'X')),
        "a foreign character first: the acknowledgement after it is not taken"
    );
}
#[test]
fn the_clock_stands_at_the_last_stop_bit_when_an_answer_completes() {
    // virtual time moves no further than the rig has waited: recv returns when its condition
    // holds, not at its deadline (the rig's next action, e.g. a mode C acknowledgement 200 ms
    // after the identification, must happen when it would on a real line)
    let mut t = SimTarget::new(meter(""));
    let (end, chars, how) = read_once(&mut t);
    assert_eq!(how, RecvEnd::Complete);
    assert_eq!(t.now().unwrap(), chars.last().unwrap().end);
    assert!(t.now().unwrap().0 < end.0 + 20_000_000_000);
}
