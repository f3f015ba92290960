//! Helpers shared by the bench binaries (`matrix`, `realtime`, `accuracy`, `memory`): the machine
//! a bench ran on, the built `rig` binary, a `rig sim --link` child process, `rig read` as a user
//! runs it, a seeded random source and scratch directories.
//!
//! Benches print figures and assert only correctness (a run passed, a readout decoded), never
//! speed; see `PERFORMANCE.md`.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use meter_rig::suite::{Event, Observer, ObserverError};

/// An observer that keeps nothing (the runner returns the cases anyway).
pub struct Null;

impl Observer for Null {
    fn event(&mut self, _: &Event<'_>) -> Result<(), ObserverError> {
        Ok(())
    }
}

/// The `rig` binary cargo built for this bench.
pub const RIG: &str = env!("CARGO_BIN_EXE_rig");

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn first_line(cmd: &str, args: &[&str]) -> Option<String> {
    let o = Command::new(cmd).args(args).output().ok()?;
    if !o.status.success() {
        return None;
    }
    String::from_utf8(o.stdout)
        .ok()?
        .lines()
        .next()
        .map(|s| s.trim().to_string())
}

fn read_trim(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

/// The 1, 5 and 15 minute load averages, as in /proc/loadavg.
pub fn load_average() -> String {
    read_trim("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "unknown".into())
}

/// Now, as `YYYY-MM-DD HH:MM:SS UTC`.
pub fn utc_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    let (y, m, d) = meter_rig::meter::calendar::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        s / 3600,
        s / 60 % 60,
        s % 60
    )
}

/// Prints the machine a bench runs on: CPU model, cores, load average, kernel, clock source,
/// rustc, the commit and the time. Every bench starts with this block.
pub fn print_machine(bench: &str) {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map(|(_, m)| m.trim().to_string())
        .unwrap_or_else(|| "unknown".into());
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let commit = first_line(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "rev-parse",
            "--short",
            "HEAD",
        ],
    )
    .unwrap_or_else(|| "unknown".into());
    let dirty = first_line(
        "git",
        &[
            "-C",
            env!("CARGO_MANIFEST_DIR"),
            "status",
            "--porcelain",
            "--untracked-files=no",
        ],
    )
    .is_some_and(|s| !s.is_empty());
    println!("== bench {bench}");
    println!("machine:   {model}, {cores} cores available");
    println!("load avg:  {} (1, 5, 15 min) at start", load_average());
    println!(
        "kernel:    {}, clocksource {}",
        read_trim("/proc/sys/kernel/osrelease").unwrap_or_else(|| "unknown".into()),
        read_trim("/sys/devices/system/clocksource/clocksource0/current_clocksource")
            .unwrap_or_else(|| "unknown".into())
    );
    println!(
        "toolchain: {}, profile {}",
        first_line("rustc", &["--version"]).unwrap_or_else(|| "rustc unknown".into()),
        if cfg!(debug_assertions) {
            "debug"
        } else {
            "release (bench)"
        }
    );
    println!(
        "commit:    {commit}{}, {}",
        if dirty { " (with local changes)" } else { "" },
        utc_now()
    );
    println!();
}

/// A scratch directory for this bench process, emptied first.
pub fn scratch(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("meter-rig-bench-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    std::fs::create_dir_all(&d).expect("create a scratch directory");
    d
}

/// The software meter's seeded generator (SplitMix64), so a run can be repeated with its printed
/// seed.
pub use meter_rig::sim::healthy::Rng;

/// A generator seeded from `METER_RIG_BENCH_SEED` if set, else from the clock; the seed is
/// printed.
pub fn rng_from_env() -> Rng {
    let seed = std::env::var("METER_RIG_BENCH_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
        });
    println!("seed:      {seed} (repeat with METER_RIG_BENCH_SEED={seed})");
    Rng::new(seed)
}

/// A count from the environment variable `name`, or `default`.
pub fn env_count(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A `rig sim --link` child: the software meter in real time on a pty. Stopped with SIGTERM (so
/// it removes its link) when dropped.
pub struct SimChild {
    child: Option<Child>,
    stderr: Option<std::io::BufReader<std::process::ChildStderr>>,
    /// The line `rig sim` printed when it started serving.
    pub banner: String,
    /// The link clients open.
    pub link: PathBuf,
}

/// How long a started `rig sim` is given after its banner before anyone talks to it: the link
/// appears before the serve loop runs, and a request written before the server first reads would
/// be stamped when it is read, late (a start-up race of the bench, not a property of the rig).
const SETTLE: Duration = Duration::from_millis(100);

impl SimChild {
    /// Starts `rig sim --link LINK` with `extra` arguments, waits for its banner and the link, and
    /// lets it settle.
    pub fn start(link: &Path, extra: &[&str]) -> SimChild {
        SimChild::start_under(&[], link, extra)
    }

    /// [`SimChild::start`] run under a wrapper command (`wrap`, e.g. `["chrt", "-f", "10"]`).
    pub fn start_under(wrap: &[&str], link: &Path, extra: &[&str]) -> SimChild {
        use std::io::BufRead;
        let mut child = command(wrap)
            .arg("sim")
            .arg("--link")
            .arg(link)
            .args(extra)
            .current_dir(root())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn rig sim");
        let mut stderr = std::io::BufReader::new(child.stderr.take().expect("piped stderr"));
        let mut banner = String::new();
        let _ = stderr.read_line(&mut banner);
        if !(banner.starts_with("rig sim:") && link.exists()) {
            // no orphan left behind the panic (it may hold a real-time priority)
            let _ = child.kill();
            let _ = child.wait();
            panic!("rig sim did not start: {banner}");
        }
        std::thread::sleep(SETTLE);
        SimChild {
            child: Some(child),
            stderr: Some(stderr),
            banner,
            link: link.to_path_buf(),
        }
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, |c| c.id())
    }

    /// Stops the server with SIGTERM and returns its exit status and what it wrote on stderr
    /// after its banner.
    pub fn stop(mut self) -> (ExitStatus, String) {
        self.terminate().expect("running")
    }

    fn terminate(&mut self) -> Option<(ExitStatus, String)> {
        use std::io::Read;
        let mut child = self.child.take()?;
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        let mut rest = String::new();
        if let Some(mut e) = self.stderr.take() {
            let _ = e.read_to_string(&mut rest);
        }
        let status = child.wait().expect("wait for rig sim");
        Some((status, rest))
    }
}

impl Drop for SimChild {
    fn drop(&mut self) {
        self.terminate();
    }
}

/// `rig`, or `rig` run by the wrapper command `wrap` when it is not empty.
pub fn command(wrap: &[&str]) -> Command {
    match wrap {
        [] => Command::new(RIG),
        [w, rest @ ..] => {
            let mut c = Command::new(w);
            c.args(rest).arg(RIG);
            c
        }
    }
}

/// One `rig read --format json` as a user runs it: the wall time from spawning the process to its
/// exit, and the JSON report. Panics unless the readout was valid.
pub fn rig_read(port: &Path, baud: u32) -> (Duration, serde_json::Value) {
    rig_read_under(&[], port, baud)
}

/// [`rig_read`] run under a wrapper command (`wrap`, e.g. `["chrt", "-f", "10"]`).
pub fn rig_read_under(wrap: &[&str], port: &Path, baud: u32) -> (Duration, serde_json::Value) {
    rig_read_with(wrap, &[], port, baud)
}

/// [`rig_read_under`] with `extra` arguments after `rig read`'s own (e.g. `["--realtime"]`).
pub fn rig_read_with(
    wrap: &[&str],
    extra: &[&str],
    port: &Path,
    baud: u32,
) -> (Duration, serde_json::Value) {
    let t0 = Instant::now();
    let o = command(wrap)
        .arg("read")
        .arg("--port")
        .arg(port)
        .args(["--baud", &baud.to_string(), "--format", "json"])
        .args(extra)
        .stdin(Stdio::null())
        .output()
        .expect("run rig read");
    let wall = t0.elapsed();
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "rig read printed no JSON ({e}); status {}, stderr: {}",
            o.status,
            String::from_utf8_lossy(&o.stderr)
        )
    });
    assert!(
        o.status.success() && v["valid"] == true,
        "rig read did not decode a valid telegram: status {}, {}",
        o.status,
        String::from_utf8_lossy(&o.stdout)
    );
    (wall, v)
}

/// Minimum, median and maximum of `v` (sorted copy).
pub fn min_med_max(v: &[f64]) -> (f64, f64, f64) {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    (s[0], s[s.len() / 2], s[s.len() - 1])
}

/// `n` threads spinning in this process until dropped: CPU contention on demand, to see what the
/// kernel's scheduling does to real-time figures (`METER_RIG_BENCH_BUSY`).
pub struct Busy {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl Busy {
    /// Starts `n` spinning threads (none for 0).
    pub fn start(n: usize) -> Busy {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let threads = (0..n)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut x = 0u64;
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        x = std::hint::black_box(x.wrapping_add(1));
                    }
                })
            })
            .collect();
        Busy { stop, threads }
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}
