//! Soak of `rig serve`'s module loop: a simulated day against the software meter, printing the
//! service's resident memory as the day passes. Prints figures; asserts only that the service
//! read the meter and counted pulses, and that it stopped cleanly on SIGTERM.
//!
//! `cargo bench --bench serve_soak` runs `rig serve --sim-speed 3600 --interval 15m` (a simulated
//! hour per second: 96 readouts and about 720,000 counted pulses in 24 s) and samples `VmRSS`
//! from /proc every twelfth of the soak. `SOAK_HOURS=96 SOAK_SPEED=14400` runs four days in the
//! same wall time.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn get(addr: &str, path: &str) -> serde_json::Value {
    let mut s = TcpStream::connect(addr).expect("connect to rig serve");
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    let body = text.split_once("\r\n\r\n").map(|x| x.1).unwrap_or("");
    serde_json::from_str(body).unwrap_or(serde_json::Value::Null)
}

fn proc_kib(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(key))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

fn main() {
    let hours: f64 = std::env::var("SOAK_HOURS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(24.0);
    let speed = std::env::var("SOAK_SPEED").unwrap_or_else(|_| "3600".into());
    let data = std::env::temp_dir().join(format!("rig-soak-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&data);
    let mut child = Command::new(env!("CARGO_BIN_EXE_rig"))
        .args(["serve", "--sim-speed", &speed, "--interval", "15m"])
        .args(["--listen", "127.0.0.1:0", "--data"])
        .arg(&data)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start rig serve");
    let pid = child.id();
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let addr = loop {
        let l = lines
            .next()
            .expect("rig serve printed its address")
            .unwrap();
        if let Some(a) = l.split("listening on http://").nth(1) {
            break a.trim().to_string();
        }
    };
    std::thread::spawn(move || for _ in lines {});
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::fs::read_to_string("/proc/loadavg")
            .unwrap_or_default()
            .trim()
    );
    println!("rig serve --sim-speed {speed} --interval 15m (pid {pid}) for {hours} simulated hours; sampling /proc/{pid}/status");
    println!(
        "{:>10} {:>9} {:>11} {:>10}",
        "sim time h", "readouts", "pulses", "VmRSS KiB"
    );
    let wall = Instant::now();
    let (mut t0, mut rss0) = (None, 0);
    let mut next_h = 0.0;
    let mut rss_end = 0;
    let status = loop {
        let status = get(&addr, "/status");
        let t = status["target_time_s"].as_f64().unwrap_or(0.0);
        let readouts = status["counters"]["readouts"].as_u64().unwrap_or(0);
        if t0.is_none() && readouts >= 1 {
            t0 = Some(t);
            rss0 = proc_kib(pid, "VmRSS:");
        }
        if let Some(t0) = t0 {
            let h = (t - t0) / 3600.0;
            if h >= next_h {
                rss_end = proc_kib(pid, "VmRSS:");
                println!(
                    "{h:>10.1} {readouts:>9} {:>11} {rss_end:>10}",
                    status["counters"]["pulses"]["port2"]
                );
                next_h += (hours / 12.0).max(0.5);
            }
            if h >= hours {
                break status;
            }
        }
        assert!(
            wall.elapsed() < Duration::from_secs(600),
            "the soak did not finish"
        );
        std::thread::sleep(Duration::from_millis(250));
    };
    let hwm = proc_kib(pid, "VmHWM:");
    let _ = Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status();
    let st = child.wait().unwrap();
    let readouts = status["counters"]["readouts"].as_u64().unwrap_or(0);
    let failures = status["counters"]["readout_failures"].as_u64().unwrap_or(1);
    assert!(readouts as f64 >= hours * 4.0 && failures == 0, "{status}");
    assert!(st.success(), "rig serve exit: {st}");
    println!(
        "RSS at start {rss0} KiB, after {hours} simulated hours {rss_end} KiB ({:+} KiB); peak {hwm} KiB; \
         {readouts} readouts, 0 failures, {:.1} s wall",
        rss_end as i64 - rss0 as i64,
        wall.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&data);
}
