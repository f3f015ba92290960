//! The gpio-sim guest's UART pair (ttyS1 ↔ ttyS2, joined by `.ci/gpio-sim/run.sh`): the whole rig
//! ([`RigTarget`]) against the software meter running in the guest, and `rig serve` with pins
//! over loopback TCP.
//!
//! The pair is a byte pipe (the emulated 8250 does not pace at the configured rate; measured by
//! [`the_uart_pair_is_an_unpaced_byte_pipe`]), so nothing is timed by it. The meter's side
//! ([`GuestMeter`]) learns of a request by reading ttyS2, drives the request's bit edges on the
//! data-in gpio-sim line (the rig's tap) at the UART rate and feeds the same edges to the software
//! meter's UART; it drives its answer's bit edges on the data-out gpio-sim line (the rig's tap)
//! at the times the software meter scheduled, and writes each answer byte to ttyS2 so that the
//! rig's UART receives it (the content cross-check). The rig times both ends from the kernel's
//! edge timestamps of those lines.
//!
//! Lines of the simulated chip used here: 0 data_out tap, 5 data_in tap, 2 port 1 (driven by the
//! rig), 1 port 2 (captured by the rig).

use std::io::{Read, Write};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::Value;

use meter_rig::meter::config::{MeterSpec, DEFAULT_METER};
use meter_rig::pins::gpio::GpioBus;
use meter_rig::pins::rig_target::RigTarget;
use meter_rig::pins::wiring::Wiring;
use meter_rig::pins::{monotonic_now, BusConfig, PinTarget};
use meter_rig::sim::SoftMeter;
use meter_rig::suite::{self, CaseResult, Event, Observer, ObserverError, RunOptions, Verdict};
use meter_rig::target::{Port, Target};
use meter_rig::time::{TimeSource, Timestamp};
use meter_rig::uart::{bit_start, frame_edges, Edge, TxFrame};

use super::{Sim, WRITE_SLACK_NS};
use crate::serve::{run_state, tmp, Serve};

const RIG_UART: &str = "/dev/ttyS1";
const METER_UART: &str = "/dev/ttyS2";
const DATA_OUT: u32 = 0;
const DATA_IN: u32 = 5;
const PORT1: u32 = 2;
const PORT2: u32 = 1;

/// Sleeps until `t`. A 300-baud bit is 3.3 ms; a sleep in the guest overshoots by 0.15–0.3 ms
/// (gpio_sim::pulse_widths_…), well inside half a bit. (Spinning instead starved the rig's
/// reader of the one vCPU.)
fn wait_to(t: Timestamp) {
    let now = monotonic_now();
    if t > now {
        std::thread::sleep(t.saturating_since(now));
    }
}

/// A gpio-sim input line's `pull` attribute, kept open: sysfs stores every write, so an edge costs
/// one write(2) instead of a path lookup, an open and a close under emulation.
struct Pull(std::fs::File);

impl Pull {
    fn open(sim: &Sim, line: u32) -> Pull {
        let p = sim.sysfs.join(format!("sim_gpio{line}/pull"));
        Pull(
            std::fs::OpenOptions::new()
                .write(true)
                .open(&p)
                .unwrap_or_else(|e| panic!("open {}: {e}", p.display())),
        )
    }

    /// Sets the pull; returns CLOCK_MONOTONIC just before the write.
    fn set(&mut self, high: bool) -> Timestamp {
        let before = monotonic_now();
        let v: &[u8] = if high { b"pull-up" } else { b"pull-down" };
        self.0.write_all(v).expect("write pull");
        before
    }
}

/// What the meter's driver did: per answer, the nominal end of the last request character before
/// it, the nominal start of its first character (the software meter's own schedule) and how late
/// the two start-bit edges they hang on were written (ns, summed); and how late it wrote its
/// latest-written data edge (a vCPU stall under TCG).
#[derive(Debug, Default)]
struct DriverLog {
    exchanges: Vec<(Timestamp, Timestamp, u64)>,
    late_ns: u64,
    /// Data edges written, and how many of them more than 1 ms late (a third of a bit).
    edges: u64,
    late_edges: u64,
}

/// The software meter in the guest on ttyS2 and the data lines (see the module docs); `inputs`
/// are the gpio-sim lines of its input ports (port, line, whether the rig's opto inverts),
/// sampled between characters.
struct GuestMeter {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    log: Arc<Mutex<DriverLog>>,
}

impl GuestMeter {
    fn start(sim: &Sim, spec: MeterSpec, inputs: Vec<(Port, u32, bool)>) -> GuestMeter {
        sim.pull(DATA_OUT, true);
        sim.pull(DATA_IN, true);
        let mut port = serialport::new(METER_UART, spec.baud)
            .timeout(Duration::from_millis(20))
            .open_native()
            .unwrap_or_else(|e| panic!("open {METER_UART}: {e}"));
        let writer = port.try_clone_native().expect("clone ttyS2");
        let stop = Arc::new(AtomicBool::new(false));
        let log = Arc::new(Mutex::new(DriverLog::default()));
        let (tx, rx) = mpsc::channel::<u8>();
        let s = stop.clone();
        let reader = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            while !s.load(Ordering::Relaxed) {
                match port.read(&mut buf) {
                    Ok(n) => {
                        for b in &buf[..n] {
                            let _ = tx.send(*b);
                        }
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(e) => panic!("read {METER_UART}: {e}"),
                }
            }
        });
        let (s, l, sim) = (stop.clone(), log.clone(), sim.clone());
        let driver =
            std::thread::spawn(move || drive_meter(spec, &sim, inputs, rx, writer, &s, &l));
        GuestMeter {
            stop,
            threads: vec![reader, driver],
            log,
        }
    }

    fn stop(mut self) -> DriverLog {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            t.join().expect("guest meter thread panicked");
        }
        std::mem::take(&mut *self.log.lock().unwrap())
    }
}

/// A test that fails half-way still closes ttyS2 for the next one.
impl Drop for GuestMeter {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for t in std::mem::take(&mut self.threads) {
            let _ = t.join();
        }
    }
}

/// Drives `e` on `line` at its time; returns how late the write started.
fn drive(line: &mut Pull, e: Edge) -> u64 {
    wait_to(e.t);
    let before = line.set(e.level.is_high());
    before.as_ns().saturating_sub(e.t.as_ns())
}

fn note_late(log: &Mutex<DriverLog>, late_ns: u64) {
    let mut l = log.lock().unwrap();
    l.late_ns = l.late_ns.max(late_ns);
    l.edges += 1;
    l.late_edges += u64::from(late_ns > 1_000_000);
}

/// The meter's driver loop (one thread: a request character, then due answer characters, then the
/// input ports, until `stop`).
fn drive_meter(
    spec: MeterSpec,
    sim: &Sim,
    inputs: Vec<(Port, u32, bool)>,
    rx: mpsc::Receiver<u8>,
    mut writer: serialport::TTYPort,
    stop: &AtomicBool,
    log: &Mutex<DriverLog>,
) {
    let baud = spec.baud;
    let bit = Duration::from_nanos(bit_start(Timestamp::ZERO, 1, baud).as_ns());
    let mut soft = SoftMeter::new(spec);
    soft.set_keep_port_edges(false);
    soft.advance(monotonic_now());
    let mut last_in: Vec<bool> = inputs.iter().map(|(_, l, _)| sim.value(*l)).collect();
    // (nominal end, lateness of its start edge) of the latest request character
    let (mut wire_free, mut request_end) = (Timestamp::ZERO, None::<(Timestamp, u64)>);
    let mut frames = Vec::new();
    let (mut data_in, mut data_out) = (Pull::open(sim, DATA_IN), Pull::open(sim, DATA_OUT));
    while !stop.load(Ordering::Relaxed) {
        let mut busy = false;
        // the rig's request, as it arrives on ttyS2: its bit edges on the data-in line at the
        // UART rate, decoded by the software meter's own UART from the same edges
        while let Ok(b) = rx.try_recv() {
            let (edges, end) = frame_edges(
                b,
                monotonic_now().max(wire_free),
                baud,
                1,
                TxFrame::default(),
            );
            let mut start_late = 0;
            for (k, e) in edges.into_iter().enumerate() {
                let late = drive(&mut data_in, e);
                note_late(log, late);
                if k == 0 {
                    start_late = late;
                }
                soft.data_in_edge(e);
            }
            wait_to(end);
            soft.advance(end);
            (wire_free, request_end, busy) = (end, Some((end, start_late)), true);
        }
        let now = monotonic_now();
        soft.advance(now);
        frames.clear();
        soft.take_frames(now + bit, &mut frames);
        for (c, f) in frames.drain(..) {
            let (edges, _) = frame_edges(c.byte, c.start, baud, 1, f);
            let mut start_late = 0;
            for (k, e) in edges.into_iter().enumerate() {
                let late = drive(&mut data_out, e);
                note_late(log, late);
                if k == 0 {
                    start_late = late;
                }
            }
            if let Some((r, req_late)) = request_end.take() {
                let ex = (r, c.start, req_late + start_late);
                log.lock().unwrap().exchanges.push(ex);
            }
            writer.write_all(&[c.byte]).expect("write ttyS2");
            busy = true;
        }
        let now = monotonic_now();
        for (i, (port, line, inverting)) in inputs.iter().enumerate() {
            let v = sim.value(*line);
            if v != last_in[i] {
                // the module pin's level: the rig's line through its opto
                soft.set_port_level(*port, v != *inverting, now);
                last_in[i] = v;
            }
        }
        if !busy {
            std::thread::sleep(Duration::from_micros(300));
        }
    }
}

/// The default meter (300 baud, mode A, 150 ms response delay) with KK `kk`.
fn spec(kk: u8) -> MeterSpec {
    let text = DEFAULT_METER.replace("kk = 5 ", &format!("kk = {kk} "));
    MeterSpec::from_toml(&text, "guest", None).unwrap()
}

/// The wiring of the whole rig on the simulated chip and the UART pair; `ports` adds port 1 as
/// the pulse input the rig drives and port 2 as the pulse output it captures (KK 05).
fn wiring_text(sim: &Sim, ports: bool) -> String {
    let c = &sim.chip;
    let mut t = format!(
        r#"backend = "gpio"
kk = 5
[data_out]
uart = "{RIG_UART}"
tap = {{ chip = "{c}", line = {DATA_OUT} }}
opto = {{ inverting = false }}
[data_in]
uart = "{RIG_UART}"
tap = {{ chip = "{c}", line = {DATA_IN} }}
opto = {{ inverting = false }}
"#
    );
    if ports {
        t.push_str(&format!(
            r#"[port1]
role = "pulse_in"
gpio = {{ chip = "{c}", line = {PORT1} }}
opto = {{ inverting = true }}
[port2]
role = "pulse_out"
gpio = {{ chip = "{c}", line = {PORT2} }}
opto = {{ inverting = false }}
"#
        ));
    }
    t
}

#[test]
#[cfg_attr(
    not(feature = "gpio-sim"),
    ignore = "needs the kernel's gpio-sim in the qemu guest: bash .ci/gpio-sim/run.sh (builds with --features gpio-sim)"
)]
fn the_uart_pair_is_an_unpaced_byte_pipe() {
    let Some(_sim) = Sim::get("the_uart_pair_is_an_unpaced_byte_pipe") else {
        return;
    };
    let open = |p: &str| {
        serialport::new(p, 300)
            .timeout(Duration::from_millis(100))
            .open_native()
            .unwrap_or_else(|e| panic!("open {p}: {e}"))
    };
    let (mut a, mut b) = (open(RIG_UART), open(METER_UART));
    let sent: Vec<u8> = (0..30u8).map(|i| b'A' + i % 26).collect();
    let t0 = monotonic_now();
    a.write_all(&sent).unwrap();
    let written = monotonic_now();
    let mut got = Vec::new();
    let mut buf = [0u8; 64];
    while got.len() < sent.len() {
        match b.read(&mut buf) {
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {
                assert!(
                    monotonic_now().diff_ns(t0) < 5_000_000_000,
                    "only {got:?} arrived"
                );
            }
            Err(e) => panic!("read: {e}"),
        }
    }
    let arrived = monotonic_now();
    assert_eq!(got, sent, "ttyS1 -> ttyS2 carries the bytes unchanged");
    // 30 characters of 10 bits at 300 baud take 1000 ms on a wire
    println!(
        "uart pair: 30 bytes at 300 baud (1000 ms on a wire): write returned after {} ms, all \
         arrived after {} ms",
        written.diff_ns(t0) / 1_000_000,
        arrived.diff_ns(t0) / 1_000_000
    );
}

/// Prints every finished case with its measurements (they go into the closing note).
struct Print;

impl Observer for Print {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        if let Event::CaseDone { case: c } = e {
            println!("uart pair: {} {}: {}", c.id, c.verdict, c.message);
            for m in &c.measurements {
                println!(
                    "uart pair:   {} = {} {} [{}] source {}",
                    m.name,
                    m.value_text(),
                    m.unit,
                    m.limit_text(),
                    m.source
                );
            }
        }
        Ok(())
    }
}

/// One run of the `readout` suite through [`RigTarget`] against the guest meter: the cases, the
/// driver's log and the rig's cross-check findings.
fn run_readout(sim: &Sim) -> (Vec<CaseResult>, DriverLog, Vec<String>) {
    let spec = spec(5);
    let meter = GuestMeter::start(sim, spec.clone(), vec![]);
    let w = Wiring::parse("uart-pair", &wiring_text(sim, false)).unwrap();
    let bus = GpioBus::open(&BusConfig::from_wiring(&w)).unwrap();
    let pins = PinTarget::new(bus, w, spec.baud);
    let mut target = RigTarget::new(pins, Some(RIG_UART), true, spec.baud).unwrap();
    let mut opts = RunOptions::for_target(&target.capabilities());
    opts.suites = vec!["readout".into()];
    opts.monotonic_wait = Duration::from_secs(5);
    let cases = suite::run(&mut target, &spec, &opts, &mut Print);
    let findings = std::mem::take(&mut target.findings);
    drop(target);
    (cases, meter.stop(), findings)
}

/// The rig's response time of `case` (ms, from kernel edge timestamps) against the meter's own
/// schedule for the same exchange (ms): equal within the drive lateness and the write slack.
fn check_response(cases: &[CaseResult], log: &DriverLog) {
    let c = cases
        .iter()
        .find(|c| c.id == "readout.response_time")
        .expect("readout.response_time ran");
    let m = &c.measurements[0];
    assert_eq!(m.source, TimeSource::Edge, "timed from the taps: {c:?}");
    let rig_ms = m.value.expect("a response time");
    let (req_end, ans_start, late) = log.exchanges[0];
    let meter_ms = ans_start.diff_ns(req_end) as f64 / 1e6;
    // both ends hang on one start-bit edge each: their write lateness plus the kernel's
    // timestamping slack after a write
    let tol_ms = (late + 2 * WRITE_SLACK_NS) as f64 / 1e6;
    println!(
        "uart pair: response time {rig_ms:.3} ms from kernel edge timestamps (data_in tap: request \
         end; data_out tap: '/' start bit), meter's schedule {meter_ms:.3} ms, tolerance \
         {tol_ms:.3} ms; {} exchanges, answers (ms after request end): {:?}",
        log.exchanges.len(),
        log.exchanges
            .iter()
            .map(|(r, a, _)| a.diff_ns(*r) / 1_000_000)
            .collect::<Vec<_>>()
    );
    assert!(
        (rig_ms - meter_ms).abs() <= tol_ms,
        "rig measured {rig_ms} ms, the meter scheduled {meter_ms} ms (tolerance {tol_ms} ms)"
    );
}

#[test]
#[cfg_attr(
    not(feature = "gpio-sim"),
    ignore = "needs the kernel's gpio-sim in the qemu guest: bash .ci/gpio-sim/run.sh (builds with --features gpio-sim)"
)]
fn readout_suite_through_rig_target_and_the_uart_pair() {
    let Some(sim) = Sim::get("readout_suite_through_rig_target_and_the_uart_pair") else {
        return;
    };
    // Under TCG on one vCPU the meter's driver writes some edges late (measured: 5–7 % of the
    // data edges over 1 ms, the latest 8–50 ms); past half a bit (1.67 ms at 300 baud) the line
    // really carries a distorted character and the rig reporting it is the rig telling the truth.
    // So: every case must run; a case that does not pass is accepted only when the meter wrote an
    // edge over half a bit late in that run (printed); the response time must pass, timed from
    // the kernel's edges, equal to the meter's own schedule (up to three runs for one whose '/'
    // and request were not distorted).
    let half_bit_ns = 1_666_667;
    for attempt in 1..=3 {
        let (cases, log, findings) = run_readout(&sim);
        println!(
            "uart pair: attempt {attempt}: {} cases, latest meter edge written {} µs after its \
             time, {} of {} data edges over 1 ms late, cross-check findings {findings:?}",
            cases.len(),
            log.late_ns / 1000,
            log.late_edges,
            log.edges
        );
        assert_eq!(cases.len(), 14, "every readout case ran: {cases:?}");
        let bad: Vec<&CaseResult> = cases
            .iter()
            .filter(|c| !matches!(c.verdict, Verdict::Pass | Verdict::Skip))
            .collect();
        if let Some(c) = bad.first() {
            assert!(
                log.late_ns > half_bit_ns,
                "{}: {} without a distorted line: {} {:?}",
                c.id,
                c.verdict,
                c.message,
                c.details
            );
            println!(
                "uart pair: attempt {attempt}: {} case(s) not passed on a line the emulator \
                 distorted: {:?}",
                bad.len(),
                bad.iter().map(|c| c.id.as_str()).collect::<Vec<_>>()
            );
        }
        let response = cases.iter().find(|c| c.id == "readout.response_time");
        if response.is_some_and(|c| c.verdict == Verdict::Pass) || attempt == 3 {
            check_response(&cases, &log);
            return;
        }
    }
}

/// Levels of `line` over time, deduplicated, into `seen` until `stop`.
fn watch_line(
    sim: &Sim,
    line: u32,
    seen: Arc<Mutex<Vec<bool>>>,
    stop: Arc<AtomicBool>,
) -> JoinHandle<()> {
    let sim = sim.clone();
    std::thread::spawn(move || {
        let mut last = sim.value(line);
        seen.lock().unwrap().push(last);
        while !stop.load(Ordering::Relaxed) {
            let v = sim.value(line);
            if v != last {
                seen.lock().unwrap().push(v);
                last = v;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        let v = sim.value(line);
        if v != last {
            seen.lock().unwrap().push(v);
        }
    })
}

fn write(dir: &Path, name: &str, text: &str) -> String {
    let p = dir.join(name);
    std::fs::write(&p, text).unwrap();
    p.to_string_lossy().into_owned()
}

#[test]
#[cfg_attr(
    not(feature = "gpio-sim"),
    ignore = "needs the kernel's gpio-sim in the qemu guest: bash .ci/gpio-sim/run.sh (builds with --features gpio-sim)"
)]
fn rig_serve_with_pins_over_loopback_finishes_the_case_on_sigterm_and_leaves_pins_safe() {
    let Some(sim) = Sim::get(
        "rig_serve_with_pins_over_loopback_finishes_the_case_on_sigterm_and_leaves_pins_safe",
    ) else {
        return;
    };
    let files = tmp("guest-pins-files");
    let data = tmp("guest-pins");
    let wiring = write(&files, "wiring.toml", &wiring_text(&sim, true));
    let meter_file = write(&files, "meter.toml", DEFAULT_METER);
    // port 1 (inverting opto: active = rig line high, safe = low) is pulled to its active
    // level, so a low read back can only be the safe level the rig drives, and the release at
    // the service's exit shows as the return to high; port 2 (the meter's output) idles high
    sim.pull(PORT1, true);
    sim.pull(PORT2, true);
    let meter = GuestMeter::start(&sim, spec(5), vec![(Port::Port1, PORT1, true)]);
    let stop = Arc::new(AtomicBool::new(false));
    let seen = Arc::new(Mutex::new(Vec::new()));
    let watcher = watch_line(&sim, PORT1, seen.clone(), stop.clone());
    let mut s = Serve::start(
        &data,
        &[
            "--target",
            "gpio",
            "--wiring",
            &wiring,
            "--meter",
            &meter_file,
        ],
    );
    // in the registry's order: response_time (one readout), pulse_in.count (a readout, 20 pulses
    // on port 1, a readout), logging.monthly (skips at once on a real-time target). SIGTERM once
    // the rig is driving pulses on port 1 (seen on the line itself): pulse_in.count is the case in
    // hand, and logging.monthly never starts
    let id =
        s.start_run(r#"{"cases": ["readout.response_time", "pulse_in.count", "logging.monthly"]}"#);
    s.wait_for("pulse_in.count driving port 1", |_| {
        // pull, safe at open, then at least two pulses (active, safe, active)
        seen.lock().unwrap().len() >= 5
    });
    assert_eq!(run_state(&s, &id), "running");
    s.signal(rustix::process::Signal::TERM);
    let (code, log) = s.exit();
    stop.store(true, Ordering::Relaxed);
    watcher.join().unwrap();
    let levels = seen.lock().unwrap().clone();
    let driver = meter.stop();
    println!(
        "rig serve with pins: exit {code:?}, port 1 levels {levels:?}, meter exchanges {}, \
         latest edge {} µs late, {} of {} edges over 1 ms late",
        driver.exchanges.len(),
        driver.late_ns / 1000,
        driver.late_edges,
        driver.edges
    );
    assert_eq!(code, Some(0), "{log}");
    let rec: Value = serde_json::from_slice(
        &std::fs::read(data.join("runs").join(&id).join("record.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(rec["complete"], false, "{rec}");
    assert!(
        rec["aborted"].as_str().unwrap().contains("shutting down"),
        "{rec}"
    );
    // the case in hand finished and was recorded; the one after it never started
    let cases = rec["cases"].as_array().unwrap();
    for c in cases {
        println!(
            "rig serve with pins: {} {} {}",
            c["id"], c["verdict"], c["message"]
        );
    }
    let ids: Vec<&str> = cases.iter().filter_map(|c| c["id"].as_str()).collect();
    assert_eq!(ids, ["readout.response_time", "pulse_in.count"], "{rec}");
    // pulled high before the service; driven low (safe) at open; 20 pulses high while driving;
    // low (safe) when the case in hand ended; high again only once the process released the line
    assert_eq!(levels.first(), Some(&true), "{levels:?}");
    assert_eq!(
        levels.len(),
        2 + 2 * 20 + 1,
        "safe, 20 pulses, released: {levels:?}"
    );
    assert_eq!(&levels[levels.len() - 2..], &[false, true], "{levels:?}");
    assert!(sim.value(PORT1), "released after exit: reads the pull");
}
