//! The pure judges on hand-made conversations.

use super::*;
use crate::meter::config::MeterSpec;

const CHAR_NS: u64 = 33_333_333;

fn ms(x: f64) -> Timestamp {
    Timestamp((x * 1e6) as u64)
}

/// Characters of `text` in direction `dir`, back to back from `start_ms`, with even parity.
fn chars(dir: Dir, text: &[u8], start_ms: f64) -> Vec<LineChar> {
    let mut t = ms(start_ms);
    text.iter()
        .map(|&b| {
            let c = LineChar {
                dir,
                byte: parity::add_even(b),
                start: t,
                end: Timestamp(t.0 + CHAR_NS),
                stop_ok: true,
            };
            t = c.end;
            c
        })
        .collect()
}

fn log(parts: Vec<Vec<LineChar>>, end_ms: f64) -> WireLog {
    let mut chars: Vec<LineChar> = parts.into_iter().flatten().collect();
    chars.sort_by_key(|c| c.start);
    WireLog {
        chars,
        parity_observable: true,
        end: ms(end_ms),
    }
}

#[test]
fn requests_split_at_lf_and_at_a_pause_not_at_the_meter() {
    let l = log(
        vec![
            chars(Dir::ToMeter, b"/?!\r\n/?!\r\n", 0.0),
            chars(Dir::FromMeter, b"/K", 1000.0),
            chars(Dir::ToMeter, b"/?", 2000.0),
        ],
        3000.0,
    );
    let r = l.requests();
    assert_eq!(r.len(), 3);
    assert_eq!(r[0].text(), b"/?!\r\n");
    assert_eq!(r[2].text(), b"/?");
    // an acknowledgement sent while the meter still talks stays one message
    let l = log(
        vec![
            chars(Dir::FromMeter, b"/KAM 1\r\n\x020.0.0(1)", 0.0),
            chars(Dir::ToMeter, b"\x060 0\r\n", 300.0),
        ],
        3000.0,
    );
    let r = l.requests();
    assert_eq!(r.len(), 1);
    let p = request_problems(&r[0], true);
    assert!(p[0].contains("acknowledgement"), "{p:?}");
}

#[test]
fn request_problems_name_parity_stop_and_form() {
    let mut r = ModuleRequest {
        chars: chars(Dir::ToMeter, b"/?!\r\n", 0.0),
    };
    assert!(request_problems(&r, true).is_empty());
    r.chars[0].byte ^= 0x80;
    r.chars[1].stop_ok = false;
    let p = request_problems(&r, true);
    assert_eq!(p.len(), 2, "{p:?}");
    assert!(request_problems(&r, false)
        .iter()
        .all(|s| !s.contains("parity")));
    let bad = ModuleRequest {
        chars: chars(Dir::ToMeter, b"/?!", 0.0),
    };
    assert!(request_problems(&bad, true)[0].contains("CR LF"));
}

#[test]
fn a_repeat_at_499_9_ms_after_a_silent_request_is_too_soon_and_at_500_1_is_not() {
    let req = chars(Dir::ToMeter, b"/?!\r\n", 0.0);
    let req_end = req[4].end.0 as f64 / 1e6;
    for (after, flagged) in [(499.9, true), (500.1, false)] {
        let l = log(
            vec![
                req.clone(),
                chars(Dir::ToMeter, b"/?!\r\n", req_end + after),
            ],
            5000.0,
        );
        let r = repeats(&l);
        assert_eq!(r.len(), 1);
        assert_eq!(r[0].too_soon.is_some(), flagged, "{after}: {r:?}");
    }
}

#[test]
fn a_repeat_during_an_unfinished_answer_is_too_soon_and_after_a_whole_one_is_not() {
    let req = chars(Dir::ToMeter, b"/?!\r\n", 0.0);
    let part = chars(Dir::FromMeter, b"/KAM 1\r\n\x020.0.0(1)\r\n", 300.0);
    let last = part.last().unwrap().end.0 as f64 / 1e6;
    let l = log(
        vec![
            req.clone(),
            part.clone(),
            chars(Dir::ToMeter, b"/?!\r\n", last + 1499.0),
        ],
        9000.0,
    );
    assert!(repeats(&l)[0].too_soon.is_some());
    assert_eq!(patience_problems(&l).0.len(), 1);
    let whole = chars(Dir::FromMeter, b"/KAM 1\r\n\x020.0.0(1)!\r\n\x03Z", 300.0);
    let last = whole.last().unwrap().end.0 as f64 / 1e6;
    let l = log(
        vec![req, whole, chars(Dir::ToMeter, b"/?!\r\n", last + 10.0)],
        9000.0,
    );
    assert!(repeats(&l)[0].too_soon.is_none());
    let (p, waited) = patience_problems(&l);
    assert!(p.is_empty(), "{p:?}");
    assert!(waited.unwrap() > 300.0);
}

#[test]
fn a_repeat_after_the_meter_broke_off_for_more_than_1500_ms_is_no_impatience() {
    let req = chars(Dir::ToMeter, b"/?!\r\n", 0.0);
    let part = chars(Dir::FromMeter, b"/KAM 1\r\n", 300.0);
    let last = part.last().unwrap().end.0 as f64 / 1e6;
    let l = log(
        vec![req, part, chars(Dir::ToMeter, b"/?!\r\n", last + 1600.0)],
        9000.0,
    );
    assert!(patience_problems(&l).0.is_empty());
    assert!(repeats(&l)[0].too_soon.is_none());
}

fn forwarded(bench: &mut reference::VirtualBench, meter: &MeterSpec) -> Vec<data::ForwardedValue> {
    let (_, f) = bench.observe_forwarded(meter, 45.0, "test").unwrap();
    f.unwrap().values
}

#[test]
fn the_reference_module_forwards_a_good_answer_as_sent_and_nothing_from_a_bad_bcc() {
    let spec = MeterSpec::builtin_default();
    let mut b = reference::VirtualBench::default();
    let good = forwarded(&mut b, &spec);
    // one answer, its 17 data sets
    assert_eq!(good.len(), 17, "{good:?}");
    let e = good.iter().find(|v| v.obis == "1.8.0").unwrap();
    assert_eq!(e.unit.as_deref(), Some("kWh"));
    assert_eq!(e.value.len(), 7, "{e:?}");
    let bad = Scenario::BadBcc.meter(&spec);
    assert!(forwarded(&mut b, &bad).is_empty());
    // the knob: the values of each of its three tries
    b.knobs.forwards_bad_bcc = true;
    assert_eq!(forwarded(&mut b, &bad).len(), 3 * 17);
}

#[test]
fn the_reference_module_forwards_nothing_from_a_parity_error_unless_its_knob_says() {
    let mut spec = MeterSpec::builtin_default();
    spec.faults.parity_error_at = Some(60);
    let mut b = reference::VirtualBench::default();
    assert!(forwarded(&mut b, &spec).is_empty());
    b.knobs.forwards_bad_parity = true;
    assert_eq!(forwarded(&mut b, &spec).len(), 3 * 17);
    // the BCC knob does not forward a parity error
    b.knobs = reference::ModuleKnobs {
        forwards_bad_bcc: true,
        ..Default::default()
    };
    assert!(forwarded(&mut b, &spec).is_empty());
}
