//! Evidence beside the records: VCD captures (read back with the `vcd` crate, decoded by
//! sigrok-cli's UART decoder to the characters the rig judged) and report.html (rendered in
//! headless Chromium; a stopped run says so at the top).
//!
//! The sigrok and Chromium tests need peer tools (`sigrok-cli`, Debian's `chromium`); without
//! `--features peers` they show as ignored with the reason, and with `METER_RIG_REQUIRE_PEERS=1`
//! (`.ci/run`) a missing tool fails them.

use std::path::{Path, PathBuf};
use std::process::Command;

use meter_rig::evidence::capture::{CaptureMode, Captures};
use meter_rig::evidence::html::HtmlReport;
use meter_rig::evidence::Inbox;
use meter_rig::meter::config::MeterSpec;
use meter_rig::report::{read_record, Reporter};
use meter_rig::sim::SimTarget;
use meter_rig::suite::session::{self, Event, Limits, Observer, ObserverError};
use meter_rig::suite::{RunOptions, Verdict};
use meter_rig::target::Target;
use sha2::{Digest, Sha256};

use crate::util;

fn tmp(name: &str) -> PathBuf {
    let d = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rig-evidence-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&d);
    d
}

/// The characters of every exchange, as the rig judged them (7-bit).
#[derive(Default)]
struct Chars(Vec<u8>);

impl Observer for Chars {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        if let Event::Exchange { exchange, .. } = e {
            self.0.extend(exchange.chars.iter().map(|c| c.byte & 0x7F));
        }
        Ok(())
    }
}

/// Runs `cases` against the software meter `spec` into `dir` with captures of `mode` and the
/// report; returns the characters of the run's exchanges.
fn run_into(dir: &Path, spec: &MeterSpec, cases: &[&str], mode: CaptureMode) -> Vec<u8> {
    let mut t = SimTarget::new(spec.clone());
    let mut opts = RunOptions::for_target(&t.capabilities());
    opts.cases = cases.iter().map(|c| c.to_string()).collect();
    let inbox = Inbox::new();
    let mut rep = Reporter::start(dir, &mut t, spec, &opts)
        .unwrap()
        .with_attachments(inbox.clone());
    let window = (spec.profile.response_min_ms, spec.profile.response_max_ms);
    let mut cap = Captures::new(dir, spec.baud, window, mode, inbox).unwrap();
    let mut html = HtmlReport::new(dir);
    let mut chars = Chars::default();
    let end = session::run(
        &mut t,
        spec,
        &opts,
        &Limits::default(),
        vec![&mut chars, &mut cap, &mut rep, &mut html],
    );
    assert!(end.observer_errors.is_empty(), "{:?}", end.observer_errors);
    chars.0
}

fn slow_meter(delay_ms: f64) -> MeterSpec {
    let text = std::fs::read_to_string(util::path("fixtures/meters/default.toml")).unwrap();
    let text = text.replace(
        "response_delay_ms = 150.0",
        &format!("response_delay_ms = {delay_ms}"),
    );
    assert!(
        text.contains(&format!("response_delay_ms = {delay_ms}")),
        "{text}"
    );
    MeterSpec::from_toml(&text, "slow", None).unwrap()
}

/// sigrok-cli's UART decoder over one wire of a VCD: the 7-bit characters.
fn sigrok_chars(vcd: &Path, wire: &str) -> Vec<u8> {
    let out = Command::new("sigrok-cli")
        .args(["-I", "vcd", "-i"])
        .arg(vcd)
        .args([
            "-P",
            &format!("uart:rx={wire}:baudrate=300:data_bits=7:parity=even"),
            "-A",
            "uart=rx-data",
        ])
        .output()
        .expect("run sigrok-cli");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| u8::from_str_radix(l.trim_start_matches("uart-1: "), 16).ok())
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs sigrok-cli (apt-get install sigrok-cli); run with cargo test --features peers (.ci/run does)"
)]
fn sigrok_decodes_the_captured_wire_to_the_characters_the_rig_judged() {
    if !util::peer_available(
        &["sigrok-cli", "--version"],
        "sigrok-cli",
        "apt-get install sigrok-cli",
    ) {
        return;
    }
    // a passing (150 ms) and a failing (620 ms) response time, both captured (--capture all)
    for (delay, verdict) in [(150.0, Verdict::Pass), (620.0, Verdict::Fail)] {
        let dir = tmp(&format!("sigrok-{delay}"));
        let spec = slow_meter(delay);
        let ours = run_into(&dir, &spec, &["readout.response_time"], CaptureMode::All);
        let rec = read_record(&dir).unwrap();
        let case = &rec.cases[0];
        assert_eq!(case.verdict, verdict, "{}", case.message);
        let vcd = dir.join("captures/readout.response_time.vcd");
        let theirs = sigrok_chars(&vcd, "data_out");
        assert_eq!(theirs.len(), 359, "{delay} ms");
        assert_eq!(theirs, ours, "{delay} ms");
        // the request on data in, as sent
        assert_eq!(sigrok_chars(&vcd, "data_in"), b"/?!\r\n".to_vec());
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// Every capture of a run reads back with the `vcd` crate: a 1 µs timescale, `#0` first with
/// an initial value for every variable, times in order; record.json lists each with its SHA-256.
#[test]
fn every_capture_reads_back_and_record_json_lists_it_with_its_hash() {
    let dir = tmp("readback");
    let spec = slow_meter(620.0);
    let cases = [
        "readout.response_time",
        "readout.monotonic",
        "pulse_out.width",
        "pulse_out.pause",
    ];
    run_into(&dir, &spec, &cases, CaptureMode::All);
    let rec = read_record(&dir).unwrap();
    let listed: Vec<_> = rec.cases.iter().flat_map(|c| &c.attachments).collect();
    assert_eq!(listed.len(), 4, "{listed:?}");
    for a in listed {
        let bytes = std::fs::read(dir.join(&a.path)).unwrap();
        let hash: String = Sha256::digest(&bytes)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_eq!(
            (a.sha256.as_str(), a.media_type.as_str()),
            (hash.as_str(), "text/x-vcd")
        );
        assert_eq!(a.bytes, bytes.len() as u64);
        let mut p = vcd::Parser::new(&bytes[..]);
        let h = p.parse_header().unwrap();
        assert_eq!(h.timescale, Some((1, vcd::TimescaleUnit::US)), "{}", a.path);
        let vars: Vec<_> = h
            .items
            .iter()
            .flat_map(|i| match i {
                vcd::ScopeItem::Scope(s) => s
                    .items
                    .iter()
                    .filter_map(|v| match v {
                        vcd::ScopeItem::Var(v) => Some(v.clone()),
                        _ => None,
                    })
                    .collect::<Vec<_>>(),
                _ => vec![],
            })
            .collect();
        assert!(vars.iter().any(|v| v.reference == "marker"), "{}", a.path);
        let mut last = None;
        let mut at_zero = std::collections::BTreeSet::new();
        let mut changes = 0;
        for cmd in p {
            match cmd.unwrap() {
                vcd::Command::Timestamp(t) => {
                    assert!(
                        last.is_none_or(|l| t > l),
                        "{}: #{t} after #{last:?}",
                        a.path
                    );
                    last = Some(t);
                }
                vcd::Command::ChangeScalar(id, _) | vcd::Command::ChangeString(id, _) => {
                    assert!(last.is_some(), "{}: a value before #0", a.path);
                    if last == Some(0) {
                        at_zero.insert(id);
                    }
                    changes += 1;
                }
                _ => {}
            }
        }
        assert_eq!(
            at_zero.len(),
            vars.len(),
            "{}: every initial value at #0",
            a.path
        );
        assert!(changes > vars.len(), "{}", a.path);
    }
    // only failed and inconclusive cases by default
    let dir2 = tmp("readback-failed");
    run_into(&dir2, &spec, &cases, CaptureMode::Failed);
    let rec = read_record(&dir2).unwrap();
    let with: Vec<_> = rec
        .cases
        .iter()
        .filter(|c| !c.attachments.is_empty())
        .map(|c| c.id.as_str())
        .collect();
    assert_eq!(with, ["readout.response_time"]);
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&dir2);
}

/// A run stopped half-way says so at the top of its report, and `rig report` rebuilds the page
/// byte for byte from record.json; `--compare` puts two runs side by side.
#[test]
fn a_stopped_run_says_so_and_rig_report_rebuilds_the_page() {
    let dir = tmp("stopped");
    let out = util::run_rig(&[
        "run",
        "--out",
        dir.to_str().unwrap(),
        "--max-run-time",
        "600",
        "--case",
        "readout.response_time",
        "--case",
        "readout.monotonic",
        "--case",
        "readout.bcc",
        "--suite",
        "readout",
    ]);
    assert_eq!(
        util::code(&out),
        2,
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let top = &page[..page.find("<h1>").unwrap()];
    assert!(
        top.contains("This run stopped half-way: stopped: the maximum run time of 600 s"),
        "{top}"
    );
    assert!(page.contains("not run"), "{page}");
    assert!(!page.contains("<script"), "no JavaScript");
    // nothing loaded from elsewhere: no link, image, source or CSS url; links stay in the run
    for needle in ["<link", "<img", " src=", "url(", "@import", "href=\"http"] {
        assert!(!page.contains(needle), "{needle} in the page");
    }
    std::fs::remove_file(dir.join("report.html")).unwrap();
    let o = util::run_rig(&["report", dir.to_str().unwrap()]);
    assert_eq!(util::code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        std::fs::read_to_string(dir.join("report.html")).unwrap(),
        page
    );

    let other = tmp("stopped-other");
    let o = util::run_rig(&[
        "run",
        "--out",
        other.to_str().unwrap(),
        "--meter",
        util::path("fixtures/meters/faulty-slow-sum-bcc.toml")
            .to_str()
            .unwrap(),
        "--suite",
        "readout",
        "--case",
        "readout.response_time",
        "--case",
        "readout.bcc",
    ]);
    assert_eq!(util::code(&o), 1);
    let o = util::run_rig(&[
        "report",
        dir.to_str().unwrap(),
        "--compare",
        other.to_str().unwrap(),
    ]);
    assert_eq!(util::code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let cmp = std::fs::read_to_string(dir.join("compare.html")).unwrap();
    assert!(
        cmp.contains("response_time") && cmp.contains("620 ms") && cmp.contains("150 ms"),
        "{cmp}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    let _ = std::fs::remove_dir_all(&other);
}

/// Pixels of a PNG as RGB(A) rows: (width, height, bytes per pixel, data).
fn png_pixels(path: &Path) -> (u32, u32, usize, Vec<u8>) {
    let dec = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size()];
    let info = r.next_frame(&mut buf).unwrap();
    buf.truncate(info.buffer_size());
    (info.width, info.height, info.color_type.samples(), buf)
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "needs chromium (apt-get install --no-install-recommends chromium); run with cargo test --features peers (.ci/run does)"
)]
fn the_report_of_a_failing_run_renders_in_chromium_with_the_failed_plot() {
    if !util::peer_available(
        &["chromium", "--version"],
        "chromium",
        "apt-get install --no-install-recommends chromium",
    ) {
        return;
    }
    let dir = tmp("chromium");
    let spec = slow_meter(620.0);
    run_into(
        &dir,
        &spec,
        &["readout.response_time", "readout.bcc"],
        CaptureMode::Failed,
    );
    let page = std::fs::read_to_string(dir.join("report.html")).unwrap();
    let failed = &page[page.find("id=\"readout.response_time\"").unwrap()..];
    assert!(
        failed.contains("<svg") && failed.contains("response_time [ms]"),
        "the failed case's plot"
    );
    let png = dir.join("report.png");
    let out = Command::new("chromium")
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            "--window-size=1000,2200",
        ])
        .arg(format!("--screenshot={}", png.display()))
        .arg(format!("file://{}", dir.join("report.html").display()))
        .output()
        .unwrap();
    assert!(png.exists(), "{}", String::from_utf8_lossy(&out.stderr));
    let (w, h, n, px) = png_pixels(&png);
    assert_eq!((w, h), (1000, 2200));
    let pixels: Vec<&[u8]> = px.chunks(n).collect();
    let white = pixels
        .iter()
        .filter(|p| p[0] > 245 && p[1] > 245 && p[2] > 245)
        .count();
    assert!(
        white < pixels.len() * 97 / 100,
        "the page is blank: {white} of {} white",
        pixels.len()
    );
    // the failed response time is a pure red dot in its plot (the badges are a darker red)
    let red = pixels
        .iter()
        .filter(|p| p[0] > 240 && p[1] < 20 && p[2] < 20)
        .count();
    assert!(
        red >= 12,
        "no red dot of the failed response time in the screenshot: {red} pixels"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

/// The inputs a case drives reach the captures through the event stream: tariff.table on a
/// 4-tariff meter (KK 01) drives both ports through every input state.
#[test]
fn the_inputs_a_case_drives_are_captured() {
    let dir = tmp("drives");
    let text = std::fs::read_to_string(util::path("fixtures/meters/default.toml")).unwrap();
    let kk = text
        .lines()
        .find(|l| l.starts_with("kk ="))
        .unwrap()
        .to_string();
    let spec = MeterSpec::from_toml(&text.replace(&kk, "kk = 1"), "kk01", None).unwrap();
    run_into(&dir, &spec, &["tariff.table"], CaptureMode::All);
    let rec = read_record(&dir).unwrap();
    assert_eq!(
        rec.cases[0].verdict,
        Verdict::Pass,
        "{}",
        rec.cases[0].message
    );
    let vcd = std::fs::read_to_string(dir.join("captures/tariff.table.vcd")).unwrap();
    for (name, code) in [("port1_drive", 'a'), ("port2_drive", 'b')] {
        assert!(
            vcd.contains(&format!("$var wire 1 {code} {name} $end")),
            "{vcd}"
        );
        let ups = vcd.lines().filter(|l| *l == format!("1{code}")).count();
        let downs = vcd.lines().filter(|l| *l == format!("0{code}")).count();
        // active and released again at least once each (the initial value is one of the downs)
        assert!(ups >= 1 && downs >= 2, "{name}: {ups} up, {downs} down");
    }
    let _ = std::fs::remove_dir_all(&dir);
}
