//! The configuration matrix as a test: 275 healthy meters (351 KK × MM, OMNIPOWER Z3 × Z8, and
//! the logging axes J × NN × pulse basis)
//! through every case; each passes, or skips naming the I/O code. This is the oracle the
//! mutation runs use over the software meter (MUTATION.md): a planted defect is caught when some
//! healthy configuration stops passing.

use meter_rig::sim::healthy::{self, matrix};
use meter_rig::suite;

#[test]
fn every_configuration_of_the_matrix_passes_or_skips_with_its_code() {
    let mut bad = Vec::new();
    let meters = matrix();
    assert_eq!(meters.len(), 275);
    for m in &meters {
        let cases = healthy::run_meter(&m.text, &m.name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cases.len(), suite::case_ids().len(), "{}", m.name);
        for c in cases {
            let ok = m.accepts(&c);
            if !ok {
                bad.push(format!("{}: {} {}: {}", m.name, c.id, c.verdict, c.message));
            }
        }
    }
    assert!(bad.is_empty(), "{} cases:\n{}", bad.len(), bad.join("\n"));
}
