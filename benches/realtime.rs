//! Issue 7 part 2: a real-time readout over a pty against the wire limit.
//!
//! `cargo bench --bench realtime` starts `rig sim --link` (the built-in meter: 300 baud, 150 ms
//! response delay), then times `rig read --port LINK --format json` as a user runs it, from
//! spawning the process to its exit, and divides by the wire limit:
//!
//! ```text
//! limit = (request characters + answer characters) × 10 bits / baud + response delay
//! ```
//!
//! The limit starts when the request starts: a real line must carry the request (`/?!` CR LF, 5
//! characters, 167 ms at 300 baud) before the meter can even begin its delay, and `rig read`
//! cannot have an answer sooner than that. The answer characters are those `rig read` received and
//! decoded (`/` to the BCC, 359 for the 351). Everything else the wall time holds — process start,
//! opening the port, decoding, printing, exit, and the pty's scheduling — is overhead against
//! the limit. Three repetitions at 300 baud (`METER_RIG_BENCH_REPS`), then five at 9600 baud
//! for information (the same fixed overhead against a 24× shorter limit).
//!
//! `METER_RIG_BENCH_BUSY=N` spins N threads throughout, to see the figures under CPU contention.
//!
//! Asserts only that every readout decoded a valid telegram.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;
use std::time::Instant;

use meter_rig::iec62056::Request;
use meter_rig::meter::config::MeterSpec;

use common::{env_count, rig_read, SimChild, RIG};

/// Times `reps` readouts at `baud`; returns the worst ratio.
fn readouts(link: &std::path::Path, baud: u32, delay_ms: f64, reps: usize) -> f64 {
    let request = Request::general().encode();
    let mut worst: f64 = 0.0;
    for i in 0..reps {
        let (wall, v) = rig_read(link, baud);
        let answer = v["received_bytes"].as_u64().expect("received_bytes") as usize;
        let chars = request.len() + answer;
        let limit = chars as f64 * 10.0 / baud as f64 + delay_ms / 1e3;
        let ratio = wall.as_secs_f64() / limit;
        worst = worst.max(ratio);
        println!(
            "  {baud} baud #{}: wall {:.4} s, limit {limit:.4} s ({} request + {answer} answer chars × 10 bits / {baud} + {delay_ms} ms), over by {:.1} ms, ratio {ratio:.5} (response time measured by rig read: {:.3} ms)",
            i + 1,
            wall.as_secs_f64(),
            request.len(),
            (wall.as_secs_f64() - limit) * 1e3,
            v["response_time"]["ms"].as_f64().unwrap_or(f64::NAN)
        );
    }
    worst
}

fn main() {
    common::print_machine("realtime (issue 7 part 2)");
    let spec = MeterSpec::builtin_default();
    let delay = spec.response_delay_ms();
    let dir = common::scratch("realtime");
    let reps = env_count("METER_RIG_BENCH_REPS", 3);
    // optional CPU contention: spinning threads competing for the cores
    let busy_n = env_count("METER_RIG_BENCH_BUSY", 0);
    let _busy = common::Busy::start(busy_n);
    if busy_n > 0 {
        println!(
            "(METER_RIG_BENCH_BUSY={busy_n}: {busy_n} threads of this process spin on the {} cores throughout)",
            std::thread::available_parallelism().map_or(0, |n| n.get())
        );
    }

    // the fixed cost of starting and ending the process, for scale
    let mut start_ms = Vec::new();
    for _ in 0..5 {
        let t0 = Instant::now();
        let o = Command::new(RIG).arg("--version").output().expect("rig");
        assert!(o.status.success());
        start_ms.push(t0.elapsed().as_secs_f64() * 1e3);
    }
    let (lo, med, _) = common::min_med_max(&start_ms);
    println!("process start and exit (`rig --version`): {lo:.2} ms best, {med:.2} ms median");

    println!(
        "rig read against rig sim --link, built-in meter ({} baud, {delay} ms response delay):",
        spec.baud
    );
    let sim = SimChild::start(&dir.join("meter300"), &[]);
    let worst = readouts(&sim.link, spec.baud, delay, reps);
    let (status, err) = sim.stop();
    assert!(status.success(), "rig sim: {status} {err}");
    println!(
        "  worst ratio at {} baud: {worst:.5} (target <= 1.01)",
        spec.baud
    );

    println!("the same at 9600 baud (information: fixed overhead against a shorter limit):");
    let sim = SimChild::start(&dir.join("meter9600"), &["--baud", "9600"]);
    let worst = readouts(&sim.link, 9600, delay, 5);
    let (status, err) = sim.stop();
    assert!(status.success(), "rig sim: {status} {err}");
    println!("  worst ratio at 9600 baud: {worst:.5}");
    println!("load avg:  {} at end", common::load_average());
    let _ = std::fs::remove_dir_all(&dir);
}
