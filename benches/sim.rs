//! Software-meter benchmarks: prints figures, asserts nothing about speed.
//!
//! `cargo bench --bench sim` runs:
//! - a simulated 24 h of the default meter with a readout every 15 minutes (96 readouts, every
//!   answer decoded), reporting wall time and the virtual/real speed-up;
//! - the default `rig run` suite set in-process, reporting wall and simulated time.
//!
//! It starts with the machine it ran on (`benches/common`).

#[path = "common/mod.rs"]
mod common;

use std::time::{Duration, Instant};

use meter_rig::iec62056::decoder::{decode, DecodeOptions, ParityMode};
use meter_rig::iec62056::{parity, BccRule, Request};
use meter_rig::meter::config::MeterSpec;
use meter_rig::sim::SimTarget;
use meter_rig::suite::{self, Discard as Null, RunOptions};
use meter_rig::target::{Clock, DataLink, Target};
use meter_rig::time::Timestamp;
use meter_rig::uart::RxChar;

fn day_with_readouts() -> (Duration, usize, u64) {
    let spec = MeterSpec::builtin_default();
    let mut t = SimTarget::new(spec);
    let req = parity::encode(&Request::general().encode());
    let start = Instant::now();
    let mut ok = 0;
    let mut chars = 0u64;
    for k in 0..96u64 {
        t.wait_until(Timestamp(k * 15 * 60 * 1_000_000_000))
            .unwrap();
        let end = t.send(&req).unwrap().t;
        let (c, _) = t
            .recv(
                end + Duration::from_secs(20),
                Duration::from_millis(1500),
                &mut |c: &[RxChar]| c.len() >= 2 && c[c.len() - 2].byte & 0x7F == 3,
            )
            .unwrap();
        chars += c.len() as u64;
        let bytes: Vec<u8> = c.iter().map(|x| x.byte).collect();
        if decode(
            &bytes,
            DecodeOptions::strict(BccRule::Xor, ParityMode::Even),
        )
        .valid
        {
            ok += 1;
        }
    }
    t.wait_until(Timestamp(24 * 3600 * 1_000_000_000)).unwrap();
    (start.elapsed(), ok, chars)
}

/// Peak resident set size of this process, from /proc (Linux), in KiB.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn main() {
    common::print_machine("sim");
    let runs = 5;
    let mut best = Duration::MAX;
    let mut ok = 0;
    let mut chars = 0;
    for _ in 0..runs {
        let (d, o, c) = day_with_readouts();
        best = best.min(d);
        ok = o;
        chars = c;
    }
    println!("sim/24h_15min_readouts: {:.1} ms wall (best of {runs}), {ok}/96 valid readouts, {chars} characters, speed-up {:.0}x real time", best.as_secs_f64() * 1e3, 86_400.0 / best.as_secs_f64());

    let spec = MeterSpec::builtin_default();
    let mut best = Duration::MAX;
    let mut sim_s = 0.0;
    let mut passed = 0;
    for _ in 0..runs {
        let mut t = SimTarget::new(spec.clone());
        let opts = RunOptions::for_target(&t.capabilities());
        let start = Instant::now();
        let cases = suite::run(&mut t, &spec, &opts, &mut Null);
        best = best.min(start.elapsed());
        sim_s = t.now().unwrap().as_secs_f64();
        passed = cases
            .iter()
            .filter(|c| c.verdict == suite::Verdict::Pass)
            .count();
    }
    println!(
        "sim/default_run: {:.1} ms wall (best of {runs}), {:.0} s simulated, {passed}/{} passed",
        best.as_secs_f64() * 1e3,
        sim_s,
        suite::case_ids().len()
    );
    if let Some(kib) = peak_rss_kib() {
        println!(
            "sim/peak_rss: {:.1} MiB for the whole bench process",
            kib as f64 / 1024.0
        );
    }
}
