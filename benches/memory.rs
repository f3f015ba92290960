//! Issue 7 part 5: peak memory (RSS) of `rig run` and `rig sim`.
//!
//! `cargo bench --bench memory` measures:
//! - the default `rig run` (5 runs): the peak RSS from `getrusage(RUSAGE_CHILDREN)` in a wrapper
//!   process (this bench binary re-run with `METER_RIG_BENCH_RSS_WRAP` set) that has no other
//!   child, so the figure is that one process's `ru_maxrss`;
//! - `rig sim --link` at 9600 baud: `VmHWM` (peak RSS so far) and `VmRSS` from
//!   `/proc/PID/status` right after start and after 10 and 50 `rig read`s
//!   (`METER_RIG_BENCH_READOUTS`);
//! - what a long-running software meter holds: a `SoftMeter` at the default load advanced through
//!   24 h of virtual time in this process (as `rig sim` would be after a day), RSS before and
//!   after and the pulse-output edges it holds.
//!
//! Asserts only correctness: the runs pass, the readouts decode.

#[path = "common/mod.rs"]
mod common;

use std::process::Command;

use meter_rig::meter::config::MeterSpec;
use meter_rig::sim::SoftMeter;
use meter_rig::target::Port;
use meter_rig::time::Timestamp;

use common::{env_count, rig_read, SimChild, RIG};

const WRAP: &str = "METER_RIG_BENCH_RSS_WRAP";

/// Wrapper mode: runs the command in our arguments, then prints its peak RSS and exits with its
/// status.
fn wrapper() -> ! {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let status = Command::new(&args[0])
        .args(&args[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .status()
        .expect("run the measured command");
    let usage = nix::sys::resource::getrusage(nix::sys::resource::UsageWho::RUSAGE_CHILDREN)
        .expect("getrusage");
    println!("maxrss_kib {}", usage.max_rss());
    std::process::exit(status.code().unwrap_or(128));
}

/// Peak RSS in KiB of `args` run to completion, and whether it succeeded.
fn peak_rss_of(args: &[&str]) -> (u64, bool) {
    let me = std::env::current_exe().expect("current_exe");
    let o = Command::new(me)
        .env(WRAP, "1")
        .args(args)
        .output()
        .expect("run the wrapper");
    let text = String::from_utf8_lossy(&o.stdout);
    let kib = text
        .lines()
        .find_map(|l| l.strip_prefix("maxrss_kib "))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or_else(|| panic!("the wrapper printed no figure: {text}"));
    (kib, o.status.success())
}

/// `VmHWM` and `VmRSS` of a process, in KiB.
fn status_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc/PID/status");
    let field = |name: &str| -> u64 {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0)
    };
    (field("VmHWM:"), field("VmRSS:"))
}

fn own_rss_kib() -> u64 {
    status_kib(std::process::id()).1
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn rig_run() {
    let dir = common::scratch("memory-run");
    let mut figures = Vec::new();
    for i in 0..5 {
        let out = dir.join(format!("out{i}"));
        let (kib, ok) = peak_rss_of(&[RIG, "run", "--out", out.to_str().unwrap()]);
        assert!(ok, "rig run failed");
        figures.push(kib as f64);
    }
    let (lo, med, hi) = common::min_med_max(&figures);
    println!(
        "default `rig run` (getrusage RUSAGE_CHILDREN, 5 runs): peak RSS {:.1} MiB median ({:.1}–{:.1} MiB)",
        med / 1024.0,
        lo / 1024.0,
        hi / 1024.0
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn rig_sim() {
    let dir = common::scratch("memory-sim");
    let n = env_count("METER_RIG_BENCH_READOUTS", 50);
    let sim = SimChild::start(&dir.join("meter"), &["--baud", "9600"]);
    let pid = sim.pid();
    let (h0, r0) = status_kib(pid);
    println!("`rig sim --link` at 9600 baud (/proc/{{pid}}/status):");
    println!(
        "  after start:        VmHWM {:.1} MiB, VmRSS {:.1} MiB",
        mib(h0),
        mib(r0)
    );
    for i in 1..=n {
        rig_read(&sim.link, 9600);
        if i == 10 || i == n {
            let (h, r) = status_kib(pid);
            println!(
                "  after {i:>3} readouts: VmHWM {:.1} MiB, VmRSS {:.1} MiB",
                mib(h),
                mib(r)
            );
        }
    }
    let (status, err) = sim.stop();
    assert!(status.success(), "rig sim: {status} {err}");
    let _ = std::fs::remove_dir_all(&dir);
}

/// A software meter at the default load through a day of virtual time, advanced in one-second
/// steps as the pty server's loop would, with its edges kept (as [`SimTarget`] needs them) or not
/// (as `rig sim` runs it: a pty has no pins). Returns the RSS growth in KiB and the edges held.
///
/// [`SimTarget`]: meter_rig::sim::SimTarget
fn day_of_meter(keep: bool) -> (u64, u64, usize, u64) {
    let spec = MeterSpec::builtin_default();
    let before = own_rss_kib();
    let mut m = SoftMeter::new(spec);
    m.set_keep_port_edges(keep);
    for s in 1..=86_400u64 {
        m.advance(Timestamp(s * 1_000_000_000));
    }
    let after = own_rss_kib();
    let mut held = 0;
    for p in Port::ALL {
        let mut v = Vec::new();
        m.take_port_edges(p, Timestamp(u64::MAX), &mut v);
        held += v.len();
    }
    (before, after, held, m.pulses_emitted(Port::Port2))
}

fn long_running_meter() {
    println!(
        "a software meter left running for 24 h (virtual) at the default load, in this process:"
    );
    // edges dropped first, so the kept ones' allocation cannot hide in its figure
    for (keep, how) in [
        (false, "edges not kept (rig sim)"),
        (true, "edges kept (SimTarget)"),
    ] {
        let (before, after, held, pulses) = day_of_meter(keep);
        println!(
            "  {how:<25} RSS {:.1} → {:.1} MiB (+{:.1} MiB); {held} edges held, {pulses} pulses emitted",
            mib(before),
            mib(after),
            mib(after.saturating_sub(before)),
        );
    }
}

fn main() {
    if std::env::var_os(WRAP).is_some() {
        wrapper();
    }
    common::print_machine("memory (issue 7 part 5)");
    rig_run();
    rig_sim();
    long_running_meter();
    println!("load avg:  {} at end", common::load_average());
}
