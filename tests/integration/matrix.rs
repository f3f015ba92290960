//! The configuration matrix as a test: 275 healthy meters (351 KK × MM, OMNIPOWER Z3 × Z8, and
//! the logging axes J × NN × pulse basis)
//! through every case; each passes, or skips naming the I/O code. This is the oracle the
//! mutation runs use over the software meter (MUTATION.md): a planted defect is caught when some
//! healthy configuration stops passing.

use meter_rig::sim::healthy::{self, matrix, MatrixMeter};
use meter_rig::suite;

#[test]
fn every_configuration_of_the_matrix_passes_or_skips_with_its_code() {
    let meters = matrix();
    assert_eq!(meters.len(), 275);
    // two threads: the mutation runs (MUTATION.md) wait for this test once per mutant
    let half = |ms: &[MatrixMeter]| -> Vec<String> {
        let mut bad = Vec::new();
        for m in ms {
            let cases = healthy::run_meter(&m.text, &m.name).unwrap_or_else(|e| panic!("{e}"));
            assert_eq!(cases.len(), suite::case_ids().len(), "{}", m.name);
            for c in cases.iter().filter(|c| !m.accepts(c)) {
                bad.push(format!("{}: {} {}: {}", m.name, c.id, c.verdict, c.message));
            }
        }
        bad
    };
    let (a, b) = meters.split_at(meters.len() / 2);
    let bad = std::thread::scope(|s| {
        let other = s.spawn(|| half(b));
        let mut v = half(a);
        v.extend(other.join().unwrap());
        v
    });
    assert!(bad.is_empty(), "{} cases:\n{}", bad.len(), bad.join("\n"));
}

/// The office's daily load schedule (load steps through the day, repeating) under the I/O codes
/// with tariff inputs, pulse outputs and both: the matrix's meters all have a constant load.
#[test]
fn a_scheduled_load_passes_under_tariff_and_pulse_codes() {
    let dir = crate::util::path("fixtures/meters");
    let base = std::fs::read_to_string(dir.join("office-day.toml")).unwrap();
    // the two lines replaced below, or the meters would silently stay the fixture's
    assert!(
        base.contains("kk = 1 "),
        "office-day.toml no longer sets `kk = 1 `"
    );
    assert!(
        base.contains("start = \"2026-01-30T00:00:00\""),
        "office-day.toml's start moved"
    );
    let mut bad = Vec::new();
    for kk in [1u8, 5, 6, 11] {
        // from the 2nd of January: the first logging date comes after a month of the daily
        // load, while 1.6.0.1 is still 0 (each month of a repeating day has the same peak, so
        // a later move would not show)
        let text = base.replace("kk = 1 ", &format!("kk = {kk} ")).replace(
            "start = \"2026-01-30T00:00:00\"",
            "start = \"2026-01-02T00:00:00\"",
        );
        let m = MatrixMeter {
            name: format!("office-day KK {kk:02}"),
            io_label: format!("KK {kk:02}"),
            text,
        };
        let cases =
            healthy::run_meter_in(&m.text, &m.name, Some(&dir)).unwrap_or_else(|e| panic!("{e}"));
        let passed = cases
            .iter()
            .filter(|c| c.verdict == suite::Verdict::Pass)
            .count();
        assert!(passed >= 14, "{}: {passed} passed", m.name);
        for c in cases.iter().filter(|c| !m.accepts(c)) {
            bad.push(format!("{}: {} {}: {}", m.name, c.id, c.verdict, c.message));
        }
    }
    assert!(bad.is_empty(), "{} cases:\n{}", bad.len(), bad.join("\n"));
}
