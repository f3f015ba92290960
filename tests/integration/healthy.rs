//! Issue 14: healthy meters never fail. A seeded sample of randomized healthy meter files
//! (`meter_rig::sim::healthy`) through every suite against the software meter; thousands run
//! with `cargo bench --bench healthy -- N SEED`.

use meter_rig::sim::healthy::{self, Rng, CHAR_GAP_MAX_MS};
use meter_rig::suite::Verdict;

/// The sample's seed: a failure here replays with `cargo bench --bench healthy -- 60 14`, which
/// prints the failing meter files.
const SEED: u64 = 14;
/// Meters in the sample (a few seconds in a debug build).
const METERS: usize = 60;

#[test]
fn randomized_healthy_meters_never_fail_or_error() {
    let mut rng = Rng::new(SEED);
    let mut counts = [0usize; 5];
    let mut bad = Vec::new();
    for i in 0..METERS {
        let text = healthy::healthy_meter(&mut rng, CHAR_GAP_MAX_MS);
        let cases = healthy::run_meter(&text, &format!("healthy-{SEED}-{i}"))
            .unwrap_or_else(|e| panic!("{e}\n{text}"));
        assert_eq!(
            cases.len(),
            meter_rig::suite::case_ids().len(),
            "meter {i}: every case recorded\n{text}"
        );
        for c in &cases {
            counts[c.verdict as usize] += 1;
            if c.verdict == Verdict::Inconclusive {
                // not a false verdict: the observation could not decide, and says why
                println!(
                    "meter {i} of seed {SEED}: {} inconclusive: {}",
                    c.id, c.message
                );
            } else if !matches!(c.verdict, Verdict::Pass | Verdict::Skip) {
                bad.push(format!(
                    "meter {i} of seed {SEED}: {} {}: {}\n{text}",
                    c.id, c.verdict, c.message
                ));
            }
        }
    }
    println!(
        "{METERS} healthy meters (seed {SEED}): {} pass, {} fail, {} skip, {} inconclusive, {} error",
        counts[Verdict::Pass as usize],
        counts[Verdict::Fail as usize],
        counts[Verdict::Skip as usize],
        counts[Verdict::Inconclusive as usize],
        counts[Verdict::Error as usize]
    );
    assert!(counts[Verdict::Pass as usize] > METERS * 5, "{counts:?}");
    // an undecidable observation is rare: a steady load hiding a move while slow answers let the
    // meter's own period end fall between two presses
    assert!(
        counts[Verdict::Inconclusive as usize] * 20 <= METERS,
        "{counts:?}"
    );
    assert!(
        bad.is_empty(),
        "{} cases failed or errored on a healthy meter:\n{}",
        bad.len(),
        bad.join("\n")
    );
}
