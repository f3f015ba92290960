//! `rig run --target serial:…` and `rig read` against `rig sim --link` over a pty, healthy and with
//! each readout fault knob, at 300 baud and at a faster baud; and a port pulled away mid-run.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use rstest::rstest;

use crate::util::{code, rig, run_rig};

struct Served {
    child: Child,
    link: PathBuf,
    dir: PathBuf,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Writes a meter file (default meter at `baud` with `faults`) and serves it on a pty.
fn serve(name: &str, baud: u32, faults: &str) -> Served {
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-srun-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let mut base =
        std::fs::read_to_string(crate::util::path("fixtures/meters/default.toml")).unwrap();
    base = base.replace("baud = 300", &format!("baud = {baud}"));
    if faults.contains("response_delay_ms") {
        base = base.replace("response_delay_ms = 150.0", "");
    }
    std::fs::write(dir.join("meter.toml"), format!("{base}\n{faults}\n")).unwrap();
    let link = dir.join("tty");
    let child = rig()
        .args([
            "sim",
            "--link",
            link.to_str().unwrap(),
            "--meter",
            dir.join("meter.toml").to_str().unwrap(),
        ])
        .stderr(Stdio::null())
        .spawn()
        .expect("start rig sim");
    crate::util::wait_for_path(&link);
    Served { child, link, dir }
}

fn run_readout(s: &Served) -> (i32, serde_json::Value, String) {
    run_readout_cases(s, &[])
}

/// `rig run --suite readout` over the served pty, only `cases` when given.
fn run_readout_cases(s: &Served, cases: &[&str]) -> (i32, serde_json::Value, String) {
    let out = s.dir.join("out");
    let target = format!("serial:{}", s.link.display());
    let meter = s.dir.join("meter.toml");
    let mut args = vec![
        "run",
        "--target",
        &target,
        "--meter",
        meter.to_str().unwrap(),
        "--suite",
        "readout",
        "--monotonic-wait",
        "1",
        "--out",
        out.to_str().unwrap(),
    ];
    for c in cases {
        args.extend(["--case", c]);
    }
    let o = run_rig(&args);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    let rec = std::fs::read_to_string(out.join("record.json"))
        .map(|t| serde_json::from_str(&t).unwrap())
        .unwrap_or(serde_json::Value::Null);
    (code(&o), rec, text)
}

/// What a healthy meter's readout case gives over a pty: bit rate and stop bits need edge times,
/// which a pty has not; a real-time target has no meter clock for truncation and no 4 h window
/// for the hours.
fn healthy_over_a_pty(id: &str) -> &'static str {
    const SKIPPED: [&str; 3] = [
        "readout.character_timing",
        "readout.hour_counter",
        "readout.truncation",
    ];
    if SKIPPED.contains(&id) {
        "skip"
    } else {
        "pass"
    }
}

fn verdict(rec: &serde_json::Value, id: &str) -> String {
    rec["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == id)
        .map(|c| c["verdict"].as_str().unwrap().to_string())
        .unwrap_or_default()
}

#[test]
fn healthy_meter_passes_the_readout_suite_at_300_baud() {
    let _serial = crate::util::realtime();
    let s = serve("healthy300", 300, "");
    let (c, rec, text) = run_readout(&s);
    assert_eq!(c, 0, "{text}");
    for case in rec["cases"].as_array().unwrap() {
        let want = healthy_over_a_pty(case["id"].as_str().unwrap());
        assert_eq!(case["verdict"], want, "{text}");
    }
    let m = &rec["cases"][0]["measurements"][0];
    assert_eq!(m["source"], "serial");
    // the response time of three exchanges, judged on their median (one may be descheduled)
    let recovery = rec["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "readout.recovery")
        .unwrap();
    let mut times = vec![m["value"].as_f64().unwrap()];
    for r in recovery["measurements"].as_array().unwrap() {
        times.push(r["value"].as_f64().unwrap());
    }
    crate::util::assert_response_accuracy(&times, 150.0, 2.0);
    // pins suites are not run over a plain serial port; asking for them skips with the reason
    assert_eq!(rec["capabilities"]["pins"], false);
}

/// The field case "pauses between lines": a conforming meter pausing 500 ms after every line
/// (each gap well under the 1500 ms inter-character limit) is read whole and passes.
#[test]
fn a_meter_pausing_after_every_line_passes_the_readout_suite() {
    let s = serve("linepause", 9600, "line_pause_ms = 500.0");
    let (c, rec, text) = run_readout(&s);
    assert_eq!(c, 0, "{text}");
    for case in rec["cases"].as_array().unwrap() {
        let want = healthy_over_a_pty(case["id"].as_str().unwrap());
        assert_eq!(case["verdict"], want, "{text}");
    }
    let framing = rec["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["id"] == "readout.framing")
        .unwrap();
    let gap = framing["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "max_inter_char_gap")
        .unwrap()["value"]
        .as_f64()
        .unwrap();
    assert!(
        (495.0..520.0).contains(&gap),
        "longest gap {gap} ms for 500 ms pauses"
    );
}

#[rstest]
#[case::healthy("", "", 0)]
#[case::too_fast("response_delay_ms = 5.0", "readout.response_time", 1)]
#[case::too_slow("response_delay_ms = 600.0", "readout.response_time", 1)]
#[case::silent("silent = true", "readout.response_time", 1)]
#[case::identification("identification = \"/KAX 685351A300100\"", "readout.identification", 1)]
#[case::parity("parity_error_at = 30", "readout.framing", 1)]
#[case::gap("char_gap_ms = 1600.0", "readout.framing", 1)]
#[case::line_end("line_end = \"lf\"", "readout.structure", 1)]
#[case::no_stx("omit_stx = true", "readout.structure", 1)]
#[case::truncated("truncate_after = 200", "readout.structure", 1)]
#[case::bcc_sum("bcc = \"sum\"\ntariff_sum_offset_kwh = 1.0", "readout.bcc", 1)]
#[case::bcc_corrupt("bcc = \"corrupt\"", "readout.bcc", 1)]
#[case::dropped("drop_data_sets = [\"1.2.0\"]", "readout.registers", 1)]
#[case::digits("digits = { \"96.8.0\" = 5 }", "readout.registers", 1)]
#[case::tariff_sum("tariff_sum_offset_kwh = 5.0", "readout.tariff_sum", 1)]
#[case::step_back("energy_step_back_kwh = 3.0", "readout.monotonic", 1)]
#[case::deaf("deaf_after_noise_ms = 3000.0", "readout.recovery", 1)]
fn readout_faults_over_a_pty(
    #[case] faults: &str,
    #[case] case_id: &str,
    #[case] exit: i32,
    #[values(300, 9600)] baud: u32,
) {
    // a distinct directory per case: FNV-1a over the knob text and the case id
    let key = faults
        .bytes()
        .chain(case_id.bytes())
        .fold(0xcbf29ce484222325u64, |h, b| {
            (h ^ b as u64).wrapping_mul(0x100000001b3)
        });
    let s = serve(&format!("f{baud}-{key:016x}"), baud, faults);
    // at 9600 baud the whole readout suite runs; at 300 baud (12 s a readout) the named case
    let (c, rec, text) = match (baud, case_id) {
        (9600, _) => run_readout(&s),
        (_, "") => run_readout_cases(&s, &["readout.bcc"]),
        (_, id) => run_readout_cases(&s, &[id]),
    };
    assert_eq!(c, exit, "{text}");
    if !case_id.is_empty() {
        assert_eq!(verdict(&rec, case_id), "fail", "{text}");
    }
}

#[test]
fn rig_read_prints_the_17_registers_and_a_response_within_2_ms() {
    let _serial = crate::util::realtime();
    let s = serve("read300", 300, "");
    let o = run_rig(&[
        "read",
        "--port",
        s.link.to_str().unwrap(),
        "--format",
        "json",
    ]);
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stderr));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let text = v.to_string();
    for spec in meter_rig::meter::readout::COMBI_351 {
        assert!(
            text.contains(&format!("\"{}\"", spec.address)),
            "{} missing: {text}",
            spec.address
        );
    }
    assert_eq!(v["response_time"]["source"], "serial");
    // two more readouts: accuracy is judged on the median of three
    let mut times = vec![v["response_time"]["ms"]
        .as_f64()
        .expect("response time in the JSON")];
    times.extend(crate::util::read_response_times(
        s.link.to_str().unwrap(),
        300,
        2,
    ));
    crate::util::assert_response_accuracy(&times, 150.0, 2.0);
}

fn wait_for_cases(path: &Path, n: usize, limit: Duration) {
    let t0 = Instant::now();
    loop {
        let done = std::fs::read_to_string(path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .map(|v| v["cases"].as_array().map_or(0, |a| a.len()))
            .unwrap_or(0);
        if done >= n || t0.elapsed() > limit {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn pulling_the_port_away_mid_run_ends_with_a_message_and_a_valid_record() {
    let mut s = serve("vanish", 9600, "");
    let out = s.dir.join("out");
    let mut run = rig()
        .args([
            "run",
            "--target",
            &format!("serial:{}", s.link.display()),
            "--suite",
            "readout",
            "--monotonic-wait",
            "5",
            "--out",
            out.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // after the first cases are recorded, kill the meter: the pty goes away with its link
    wait_for_cases(&out.join("record.json"), 2, Duration::from_secs(30));
    let _ = std::process::Command::new("kill")
        .arg("-9")
        .arg(s.child.id().to_string())
        .status();
    let _ = s.child.wait();
    let _ = std::fs::remove_file(&s.link);
    let t0 = Instant::now();
    let status = loop {
        if let Some(st) = run.try_wait().unwrap() {
            break st;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "rig run hung after the port vanished"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    let o = run.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert!(
        matches!(status.code(), Some(1) | Some(2)),
        "{status:?} {text}"
    );
    assert!(
        text.contains(s.link.to_str().unwrap()) || text.contains("/dev/pts"),
        "message names the port: {text}"
    );
    let rec: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("record.json")).unwrap())
            .expect("record.json still parses");
    assert!(rec["cases"].as_array().unwrap().len() >= 2);
}

#[rstest]
#[case::healthy("", 0, "conforms")]
#[case::bcc_sum("bcc = \"sum\"\ntariff_sum_offset_kwh = 1.0", 1, "sum rule")]
#[case::parity("parity_error_at = 12", 1, "arity")]
#[case::silent("silent = true", 1, "no identification")]
#[case::truncated("truncate_after = 150", 1, "truncated")]
fn rig_read_judges_the_telegram(
    #[case] faults: &str,
    #[case] exit: i32,
    #[case] says: &str,
    #[values(300, 9600)] baud: u32,
) {
    let key = faults.bytes().fold(0xcbf29ce484222325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100000001b3)
    });
    let s = serve(&format!("read{baud}-{key:016x}"), baud, faults);
    let o = run_rig(&[
        "read",
        "--port",
        s.link.to_str().unwrap(),
        "--baud",
        &baud.to_string(),
    ]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    );
    assert_eq!(code(&o), exit, "{text}");
    assert!(
        text.to_lowercase().contains(&says.to_lowercase()),
        "expected {says:?} in: {text}"
    );
}
