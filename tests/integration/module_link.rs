//! `rig module --link PATH` in real time over a pty at 300 baud: a conforming Python module
//! (plain pyserial) passes, and the Python `iec62056-21` client's run is recorded with the case
//! it fails (a third-party module in the loop).

use std::process::{Command, Stdio};

fn pyserial() -> bool {
    crate::util::peer_available(
        &["python3", "-c", "import serial"],
        "python3 with pyserial",
        "pip install pyserial",
    )
}

/// Starts `rig module --link` with `cases`, runs `module` (python script and its arguments) on
/// the link, and returns rig's exit code, the record and the script's output.
fn run_module(
    tag: &str,
    cases: &[&str],
    module: &[&str],
) -> (i32, serde_json::Value, std::process::Output) {
    run_module_with(tag, cases, &[], module)
}

/// [`run_module`] with more arguments for `rig module` (`rig_args`).
fn run_module_with(
    tag: &str,
    cases: &[&str],
    rig_args: &[&str],
    module: &[&str],
) -> (i32, serde_json::Value, std::process::Output) {
    let _serial = crate::util::realtime();
    let pid = std::process::id();
    let link = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-module-{tag}-{pid}"));
    let out = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("meter-rig-module-{tag}-{pid}-out"));
    let mut cmd = crate::util::rig();
    cmd.args([
        "module",
        "--link",
        link.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
    ]);
    for c in cases {
        cmd.args(["--case", c]);
    }
    cmd.args(rig_args);
    let mut rig = cmd
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .expect("start rig");
    crate::util::wait_for_path(&link);
    let mut py = Command::new("python3");
    py.arg(crate::util::path(module[0]))
        .arg(&link)
        .args(&module[1..]);
    let py = py
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("python");
    let status = rig.wait().unwrap();
    let _ = Command::new("kill").arg(py.id().to_string()).status();
    let py_out = py.wait_with_output().unwrap();
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("record.json")).unwrap()).unwrap();
    let _ = std::fs::remove_dir_all(&out);
    assert!(!link.exists(), "link left behind");
    (status.code().unwrap_or(-1), record, py_out)
}

fn verdicts(record: &serde_json::Value) -> Vec<(String, String, String)> {
    record["cases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap().to_string(),
                c["verdict"].as_str().unwrap().to_string(),
                c["message"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect()
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "real time (80 s) with python3 and pyserial (pip install pyserial); run with cargo test --features peers (.ci/run does)"
)]
fn a_conforming_python_module_passes_over_a_pty_at_300_baud() {
    if !pyserial() {
        return;
    }
    let (code, record, _) = run_module(
        "conforming",
        &["module.request", "module.patience"],
        &["tests/interop/module_conforming.py", "200"],
    );
    let v = verdicts(&record);
    assert_eq!(code, 0, "{v:?}");
    assert_eq!(v.len(), 2, "{v:?}");
    assert!(v.iter().all(|(_, verdict, _)| verdict == "pass"), "{v:?}");
    assert_eq!(record["capabilities"]["virtual_time"], false);
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "real time (20 s) with python3 and iec62056-21 (pip install iec62056-21 pyserial); run with cargo test --features peers (.ci/run does)"
)]
fn the_python_iec62056_21_client_as_a_module_fails_module_request_on_its_ack() {
    if !crate::util::peer_available(
        &["python3", "-c", "import iec62056_21, serial"],
        "python3 with iec62056-21 and pyserial",
        "pip install iec62056-21 pyserial",
    ) {
        return;
    }
    let (code, record, _) = run_module(
        "iec62056-21",
        &["module.request"],
        &["tests/interop/module_iec62056_21_client.py", "200"],
    );
    let v = verdicts(&record);
    // recorded: the package sends /?! CR LF, then acknowledges a mode A identification as if it
    // announced mode C (ACK 0 ' ' 0 CR LF) and crashes on the baud switch
    assert_eq!(code, 1, "{v:?}");
    let (id, verdict, message) = &v[0];
    assert_eq!((id.as_str(), verdict.as_str()), ("module.request", "fail"));
    assert!(message.contains("sent an acknowledgement"), "{message}");
}

/// `module.data` with the conforming Python module forwarding to a file and
/// `module_report.py FILE` as `--module-report`: returns rig's exit code and the case.
fn data_over_the_link(tag: &str, module_args: &[&str]) -> (i32, serde_json::Value) {
    let dir = crate::util::scratch(&format!("module-data-{tag}"));
    let file = dir.join("forwarded.jsonl");
    let report = format!(
        "python3 {} {}",
        crate::util::path("tests/interop/module_report.py").display(),
        file.display()
    );
    let mut module = vec!["tests/interop/module_conforming.py", "200", "--forward"];
    module.push(file.to_str().unwrap());
    module.extend_from_slice(module_args);
    let (code, record, _) = run_module_with(
        tag,
        &["module.data"],
        &["--module-report", &report],
        &module,
    );
    (code, record["cases"][0].clone())
}

#[test]
#[cfg_attr(
    not(feature = "peers"),
    ignore = "real time (2 × 65 s) with python3 and pyserial (pip install pyserial); run with cargo test --features peers (.ci/run does)"
)]
fn module_data_over_a_pty_with_a_python_module_report() {
    if !pyserial() {
        return;
    }
    let (code, case) = data_over_the_link("data-ok", &[]);
    assert_eq!(code, 0, "{case}");
    assert_eq!(case["verdict"], "pass", "{case}");
    let forwarded = case["measurements"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "good.forwarded")
        .and_then(|m| m["value"].as_f64())
        .unwrap();
    // one or more whole answers of 17 data sets
    assert!(forwarded >= 17.0 && forwarded % 17.0 == 0.0, "{case}");
    let (code, case) = data_over_the_link("data-bad-bcc", &["--forward-bad-bcc"]);
    assert_eq!(code, 1, "{case}");
    assert_eq!(case["verdict"], "fail", "{case}");
    assert!(
        case["message"]
            .as_str()
            .unwrap()
            .contains("BCC does not check"),
        "{case}"
    );
}
