//! The configuration matrix as a test: 216 healthy meters (351 KK × MM, OMNIPOWER Z3 × Z8)
//! through every case; each passes, or skips naming the I/O code. This is the oracle the
//! mutation runs use over the software meter (MUTATION.md): a planted defect is caught when some
//! healthy configuration stops passing.

use meter_rig::sim::healthy::{self, matrix};
use meter_rig::suite::{self, Verdict};

#[test]
fn every_configuration_of_the_matrix_passes_or_skips_with_its_code() {
    let mut bad = Vec::new();
    let meters = matrix();
    assert_eq!(meters.len(), 216);
    for m in &meters {
        let cases = healthy::run_meter(&m.text, &m.name).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(cases.len(), suite::case_ids().len(), "{}", m.name);
        for c in cases {
            let ok = match c.verdict {
                Verdict::Pass => true,
                Verdict::Skip => c.message.contains(&m.io_label),
                _ => false,
            };
            if !ok {
                bad.push(format!("{}: {} {}: {}", m.name, c.id, c.verdict, c.message));
            }
        }
    }
    assert!(bad.is_empty(), "{} cases:\n{}", bad.len(), bad.join("\n"));
}
