//! Issue 14: healthy meters never fail. Runs N randomized healthy meter files
//! (`meter_rig::sim::healthy`) through every suite against the software meter, as `rig run
//! --meter FILE` does, and prints how many ran, the verdict counts, the failures by kind and
//! every meter file with a case that did not pass or skip, as TOML to replay with
//! `rig run --meter FILE`.
//!
//! `cargo bench --bench healthy -- N SEED [--no-gaps]` (defaults: 1000 meters, seed 14).
//! Inter-character gaps are drawn up to `CHAR_GAP_MAX_MS` (1400 ms); `--no-gaps` draws none.
//! Exits non-zero when any case failed, errored or was inconclusive.

use std::collections::BTreeMap;
use std::time::Instant;

use meter_rig::sim::healthy::{self, Rng, CHAR_GAP_MAX_MS};
use meter_rig::suite::Verdict;

fn main() {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| a != "--bench")
        .collect();
    let no_gaps = args.iter().any(|a| a == "--no-gaps");
    let nums: Vec<u64> = args.iter().filter_map(|a| a.parse().ok()).collect();
    let n = nums.first().copied().unwrap_or(1000);
    let seed = nums.get(1).copied().unwrap_or(14);
    let gap = if no_gaps { 0.0 } else { CHAR_GAP_MAX_MS };
    println!("healthy meters: {n}, seed {seed}, char gaps up to {gap} ms");
    let mut rng = Rng::new(seed);
    let mut counts: BTreeMap<String, usize> = BTreeMap::new();
    let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
    let mut bad_meters = 0;
    let mut failed_meters = std::collections::BTreeSet::new();
    let start = Instant::now();
    for i in 0..n {
        let text = healthy::healthy_meter(&mut rng, gap);
        let name = format!("healthy-{seed}-{i}.toml");
        let cases = healthy::run_meter(&text, &name).unwrap_or_else(|e| panic!("{e}\n{text}"));
        let mut bad = Vec::new();
        for c in &cases {
            *counts.entry(c.verdict.to_string()).or_default() += 1;
            if !matches!(c.verdict, Verdict::Pass | Verdict::Skip) {
                *kinds.entry(format!("{} {}", c.id, c.verdict)).or_default() += 1;
                bad.push(format!("# {} {}: {}", c.id, c.verdict, c.message));
                if c.verdict != Verdict::Inconclusive {
                    failed_meters.insert(i);
                }
            }
        }
        if !bad.is_empty() {
            bad_meters += 1;
            println!(
                "---- {name} (meter {i} of seed {seed})\n{}\n{text}",
                bad.join("\n")
            );
        }
    }
    let cases: usize = counts.values().sum();
    println!(
        "ran {n} meters, {cases} cases in {:.1} s: {}",
        start.elapsed().as_secs_f64(),
        counts
            .iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!("meters with a case that did not pass or skip: {bad_meters}");
    println!(
        "meters with a failed or errored case: {} (inconclusive is not a false verdict: it says why)",
        failed_meters.len()
    );
    for (k, v) in &kinds {
        println!("  {v:6}  {k}");
    }
    assert!(
        failed_meters.is_empty(),
        "healthy meters must never fail or error (listed above)"
    );
}
