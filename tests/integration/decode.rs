//! The mode A decoder and `rig decode`: the fixture table, the golden vector through the binary,
//! every single-bit flip of the on-wire capture, and property tests (round trip, no panics,
//! incremental equals one-shot).

use std::collections::BTreeSet;
use std::path::PathBuf;

use proptest::prelude::*;
use rstest::{fixture, rstest};

use meter_rig::iec62056::decoder::{
    decode, detect_parity, DecodeOptions, Decoder, Event, FindingKind, Mode, ParityMode, Severity,
};
use meter_rig::iec62056::{parity, BccRule, DataSet, Identification, Telegram, Value};
use meter_rig::time::Timestamp;

use crate::util::{code, path, run_rig};

const WORKED: &str = "fixtures/telegrams/kamstrup-351-worked-example.txt";
const WORKED_7E1: &str = "fixtures/telegrams/kamstrup-351-worked-example.7e1.bin";

/// One row of fixtures/telegrams/index.csv.
#[derive(Debug, Clone, serde::Deserialize)]
struct Row {
    file: String,
    mode: String,
    parity: String,
    bcc: String,
    expected_valid: bool,
    expected_readable: bool,
    expected_data_sets: usize,
    expected_kinds: String,
    tests: String,
}

impl Row {
    fn opts(&self) -> DecodeOptions {
        DecodeOptions {
            mode: match self.mode.as_str() {
                "strict" => Mode::Strict,
                "tolerant" => Mode::Tolerant,
                m => panic!("index.csv: unknown mode {m:?}"),
            },
            bcc_rule: self.bcc.parse().expect("index.csv: bcc"),
            parity: match self.parity.as_str() {
                "even" => ParityMode::Even,
                "none" => ParityMode::None,
                p => panic!("index.csv: unknown parity {p:?}"),
            },
        }
    }
    fn path(&self) -> PathBuf {
        path("fixtures/telegrams").join(&self.file)
    }
}

#[fixture]
fn index() -> Vec<Row> {
    let mut r = csv::Reader::from_path(path("fixtures/telegrams/index.csv")).expect("index.csv");
    let rows: Vec<Row> = r.deserialize().map(|x| x.expect("index.csv row")).collect();
    assert!(rows.len() >= 20, "index.csv has only {} rows", rows.len());
    rows
}

#[rstest]
#[case::strict("strict")]
#[case::tolerant("tolerant")]
fn fixtures_decode_as_indexed(index: Vec<Row>, #[case] mode: &str) {
    let mut n = 0;
    for row in index.iter().filter(|r| r.mode == mode) {
        n += 1;
        let bytes = std::fs::read(row.path()).expect("fixture");
        let d = decode(&bytes, row.opts());
        let ctx = format!(
            "{} ({} {} {}): {}",
            row.file, row.mode, row.parity, row.bcc, row.tests
        );
        assert_eq!(
            d.valid, row.expected_valid,
            "valid, {ctx}: {:#?}",
            d.findings
        );
        assert_eq!(d.readable, row.expected_readable, "readable, {ctx}");
        assert_eq!(
            d.data_sets.len(),
            row.expected_data_sets,
            "data sets, {ctx}"
        );
        let kinds: BTreeSet<&str> = d.findings.iter().map(|f| f.kind.name()).collect();
        let expected: BTreeSet<&str> = row
            .expected_kinds
            .split(';')
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(kinds, expected, "finding kinds, {ctx}: {:#?}", d.findings);
        if !row.expected_valid {
            // the verdict names the deviation: a violation with a message saying what was expected
            let v = d
                .findings
                .iter()
                .find(|f| f.severity == Severity::Violation)
                .unwrap_or_else(|| panic!("invalid without a violation, {ctx}"));
            assert!(v.message.contains("expect"), "{ctx}: {}", v.message);
        }
        for f in &d.findings {
            assert!(
                f.offset <= bytes.len(),
                "{ctx}: offset {} beyond input",
                f.offset
            );
            assert!(
                ["framing", "structure", "bcc", "content", "noise"].contains(&f.kind.category()),
                "{ctx}"
            );
        }
    }
    assert!(n >= 10, "only {n} {mode} rows");
}

/// The binary agrees with the table: exit 0 exactly when the telegram is valid under the chosen
/// mode; otherwise exit 1 with one line on standard error naming the reason.
#[rstest]
fn binary_exit_codes_follow_index(index: Vec<Row>) {
    for row in &index {
        let file = row.path();
        let file = file.to_str().expect("utf-8 path");
        let mut args = vec!["decode", "--bcc", row.bcc.as_str(), "--parity", &row.parity];
        if row.mode == "strict" {
            args.push("--strict");
        }
        args.push(file);
        let o = run_rig(&args);
        let pass = row.expected_valid;
        assert_eq!(
            code(&o),
            if pass { 0 } else { 1 },
            "{} {:?}: {}",
            row.file,
            args,
            String::from_utf8_lossy(&o.stdout)
        );
        let err = String::from_utf8_lossy(&o.stderr);
        if pass {
            assert_eq!(err, "", "{}", row.file);
        } else {
            assert_eq!(err.lines().count(), 1, "{}: {err}", row.file);
            assert!(
                err.starts_with("rig decode: FAIL: @"),
                "{}: {err}",
                row.file
            );
            let out = String::from_utf8_lossy(&o.stdout);
            let last = out.lines().last().unwrap_or("");
            assert!(last.starts_with("verdict: FAIL"), "{}: {last}", row.file);
            assert!(last.ends_with(err.trim_start_matches("rig decode: FAIL").trim_end()));
        }
    }
}

#[rstest]
fn every_fixture_is_indexed(index: Vec<Row>) {
    let listed: BTreeSet<String> = index.iter().map(|r| r.file.clone()).collect();
    let mut n = 0;
    for dir in ["", "field/"] {
        for e in std::fs::read_dir(path("fixtures/telegrams").join(dir)).expect("dir") {
            let name = e.expect("entry").file_name().to_string_lossy().into_owned();
            if name.ends_with(".txt") || name.ends_with(".bin") {
                let name = format!("{dir}{name}");
                assert!(listed.contains(&name), "{name} is not in index.csv");
                n += 1;
            }
        }
    }
    assert!(n >= 23, "{n}");
}

/// The field cases are the reports in ../shared/field-cases, byte for byte.
#[test]
fn field_fixtures_are_the_field_cases() {
    let shared = path("../shared/field-cases");
    if !shared.exists() {
        eprintln!("SKIPPED: {} not present", shared.display());
        return;
    }
    for name in [
        "two-telegrams-no-etx.bin",
        "broken-then-complete.bin",
        "chars-after-end.bin",
        "unit-inside-value.bin",
    ] {
        let ours = std::fs::read(path("fixtures/telegrams/field").join(name)).expect("fixture");
        let theirs = std::fs::read(shared.join(name)).expect("field case");
        assert_eq!(ours, theirs, "{name}");
    }
}

const FIELD: &str = "fixtures/telegrams/field";

/// two-telegrams-no-etx.bin, tolerant: both telegrams read, the second from offset 31; every
/// byte belongs to one of them.
#[test]
fn field_two_telegrams_without_etx_through_binary() {
    let f = format!("{FIELD}/two-telegrams-no-etx.bin");
    let (c, j) = json_of(&["decode", "--format", "json", &f]);
    assert_eq!(c, 1, "{j:#}");
    assert_eq!(
        (j["verdict"].as_str(), j["readable"].as_bool()),
        (Some("fail"), Some(true))
    );
    assert_eq!(j["telegrams"], 2);
    assert_eq!(j["range"], serde_json::json!([0, 31]));
    let second = &j["following"][0];
    assert_eq!(second["identification_offset"], 31);
    assert_eq!(second["range"], serde_json::json!([31, 62]));
    assert_eq!(j["data_sets"][0]["values"][0]["number"], 12.0);
    assert_eq!(second["data_sets"][0]["values"][0]["number"], 13.0);
    let new_id: Vec<&serde_json::Value> = j["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["kind"] == "new_identification")
        .collect();
    assert_eq!(new_id.len(), 1);
    assert_eq!(new_id[0]["offset"], 31);
    assert!(new_id[0]["clause"]
        .as_str()
        .is_some_and(|c| c.contains("004")));
}

/// broken-then-complete.bin, tolerant: the second telegram is read with its BCC 'a' correct;
/// the first is broken at the new '/' (offset 30); the input as a whole fails.
#[test]
fn field_broken_then_complete_through_binary() {
    let f = format!("{FIELD}/broken-then-complete.bin");
    let (c, j) = json_of(&["decode", "--format", "json", &f]);
    assert_eq!(c, 1, "{j:#}");
    assert_eq!(j["findings"][0]["kind"], "new_identification");
    assert_eq!(j["findings"][0]["offset"], 30);
    assert_eq!(j["complete"], false);
    let second = &j["following"][0];
    assert_eq!(second["valid"], true);
    assert_eq!(second["bcc"]["ok"], true);
    assert_eq!(second["bcc"]["received"], u64::from(b'a'));
    assert_eq!(second["data_sets"][0]["values"][0]["raw"], "000013");
    let o = run_rig(&["decode", &f]);
    let table = String::from_utf8_lossy(&o.stdout);
    assert!(table.contains("telegram 2 of 2: bytes 30..62"), "{table}");
}

/// chars-after-end.bin: exactly one finding for "7E" between '!' and CR LF, none about ETX.
#[test]
fn field_chars_after_end_through_binary() {
    let f = format!("{FIELD}/chars-after-end.bin");
    for strict in [false, true] {
        let mut args = vec!["decode", "--format", "json"];
        if strict {
            args.push("--strict");
        }
        args.push(&f);
        let (c, j) = json_of(&args);
        assert_eq!(c, 1, "{j:#}");
        let fs = j["findings"].as_array().expect("findings");
        let between: Vec<_> = fs
            .iter()
            .filter(|f| f["offset"].as_u64() >= Some(30))
            .collect();
        assert_eq!(between.len(), 1, "{j:#}");
        assert_eq!(between[0]["kind"], "chars_after_end");
        for f in fs {
            let m = f["message"].as_str().unwrap_or("");
            assert!(!m.contains("ETX") && !m.contains("after '!' CR LF"), "{m}");
        }
        assert_eq!(j["bcc"]["ok"], true);
    }
}

/// unit-inside-value.bin: tolerant reads 4321 kWh and names the quirk; strict fails on it.
#[test]
fn field_unit_inside_value_through_binary() {
    let f = format!("{FIELD}/unit-inside-value.bin");
    let (c, j) = json_of(&["decode", "--format", "json", &f]);
    assert_eq!(c, 1);
    let v = &j["data_sets"][0]["values"][0];
    assert_eq!(
        (v["number"].as_f64(), v["unit"].as_str()),
        (Some(4321.0), Some("kWh"))
    );
    assert!(j["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .any(|f| f["kind"] == "unit_inside_value" && f["offset"] == 25));
    let o = run_rig(&["decode", "--strict", &f]);
    assert_eq!(code(&o), 1);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("unit_inside_value") && e.contains("'*'"), "{e}");
}

/// The echo of the request and the noise before '/': the identification offset is the '/'.
#[rstest]
#[case::echo("quirk-echo.txt", 5, "echo")]
#[case::noise("quirk-noise.txt", 4, "noise")]
fn echo_and_noise_leave_the_identification_offset_at_the_slash(
    #[case] file: &str,
    #[case] at: u64,
    #[case] kind: &str,
) {
    let f = format!("fixtures/telegrams/{file}");
    let (c, j) = json_of(&["decode", "--format", "json", &f]);
    assert_eq!(c, 1, "{j:#}");
    assert_eq!(j["identification_offset"], at);
    assert_eq!(j["timing"]["identification_start"], at);
    let kinds: Vec<&str> = j["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["kind"].as_str())
        .collect();
    assert_eq!(kinds, [kind]);
    assert_eq!(j["readable"], true);
}

/// Tolerant mode no longer passes a wrong BCC, a truncated telegram or a parity error: exit 1,
/// the reason on standard error, `verdict` "fail" in the JSON, `readable` still true.
#[rstest]
#[case::wrong_bcc("wrong-bcc.txt", "bcc_mismatch")]
#[case::truncated("truncated.txt", "truncated")]
#[case::parity("parity-error.7e1.bin", "parity")]
fn tolerant_fails_an_invalid_telegram(#[case] file: &str, #[case] kind: &str) {
    let f = format!("fixtures/telegrams/{file}");
    let o = run_rig(&["decode", &f]);
    assert_eq!(code(&o), 1);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(
        e.starts_with("rig decode: FAIL: @") && e.contains(kind),
        "{e}"
    );
    let (c, j) = json_of(&["decode", "--format", "json", &f]);
    assert_eq!(c, 1);
    assert_eq!(
        (
            j["verdict"].as_str(),
            j["valid"].as_bool(),
            j["readable"].as_bool()
        ),
        (Some("fail"), Some(false), Some(true))
    );
    assert!(
        j["reason"].as_str().is_some_and(|r| r.contains(kind)),
        "{j:#}"
    );
    let (_, j) = json_of(&["decode", "--format", "json", "--strict", &f]);
    assert_eq!(j["verdict"], "fail");
}

/// `readable` says whether the content could be read tolerantly, also under --strict.
#[test]
fn strict_json_says_whether_it_is_readable() {
    let (c, j) = json_of(&[
        "decode",
        "--strict",
        "--format",
        "json",
        "fixtures/telegrams/quirk-lf-only.txt",
    ]);
    assert_eq!(c, 1);
    assert_eq!(j["data_sets"].as_array().map(Vec::len), Some(0));
    assert_eq!(j["readable"], true);
    let (c, j) = json_of(&["decode", "--format", "json", WORKED]);
    assert_eq!(c, 0);
    assert_eq!(
        (j["verdict"].as_str(), j["reason"].is_null()),
        (Some("pass"), true)
    );
}

/// `rig decode … | head`: a reader that closes the pipe early ends the output quietly, no panic.
#[test]
fn closed_stdout_ends_quietly() {
    // a valid telegram whose table is far larger than a pipe buffer (64 KiB)
    let t = Telegram {
        identification: Identification::kamstrup("1"),
        data_sets: (0..4000)
            .map(|i| DataSet::single(format!("1.8.{i}"), Value::with_unit("0012658", "kWh")))
            .collect(),
    };
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rig-decode-pipe-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let f = dir.join("big.txt");
    std::fs::write(&f, t.encode(BccRule::Xor).0).expect("write");
    let mut child = crate::util::rig()
        .args(["decode", f.to_str().expect("path")])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Read;
        let mut out = child.stdout.take().expect("stdout");
        let mut first = [0u8; 64];
        out.read_exact(&mut first).expect("some output");
        // dropping `out` closes the read end, as `head` does
    }
    let o = child.wait_with_output().expect("wait");
    let _ = std::fs::remove_dir_all(&dir);
    let e = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 0, "{e}");
    assert_eq!(e, "");
}

#[test]
fn golden_vector_files() {
    let txt = std::fs::read(path(WORKED)).expect("fixture");
    assert_eq!(txt.len(), 359);
    assert_eq!(txt.last(), Some(&b'7'));
    let bin = std::fs::read(path(WORKED_7E1)).expect("fixture");
    assert_eq!(bin, parity::encode(&txt));
    assert_eq!(detect_parity(&bin), ParityMode::Even);
    assert_eq!(detect_parity(&txt), ParityMode::None);
}

fn json_of(args: &[&str]) -> (i32, serde_json::Value) {
    let o = run_rig(args);
    let j = serde_json::from_slice(&o.stdout).unwrap_or_else(|e| {
        panic!(
            "{args:?}: not JSON ({e}): {}",
            String::from_utf8_lossy(&o.stdout)
        )
    });
    (code(&o), j)
}

#[rstest]
#[case::xor("xor")]
#[case::sum("sum")]
fn strict_worked_example_through_binary(#[case] rule: &str) {
    for file in [WORKED, WORKED_7E1] {
        let (c, j) = json_of(&[
            "decode", "--strict", "--bcc", rule, "--format", "json", file,
        ]);
        assert_eq!(c, 0, "{file} {rule}: {j:#}");
        assert_eq!(j["valid"], true);
        assert_eq!(j["bcc"]["received"], 0x37);
        assert_eq!(j["bcc"]["rule"], rule);
        assert_eq!(j["bcc"]["ok"], true);
        assert_eq!(j["identification"]["manufacturer"], "KAM");
        assert_eq!(j["identification"]["mode_char"], " ");
        assert_eq!(j["identification"]["text"], "685351A300100");
        let ds = j["data_sets"].as_array().expect("data_sets");
        assert_eq!(ds.len(), 17);
        assert_eq!(ds[2]["address"], "1.8.0");
        assert_eq!(ds[2]["values"][0]["raw"], "0012658");
        assert_eq!(ds[2]["values"][0]["number"], 12658.0);
        assert_eq!(ds[2]["values"][0]["unit"], "kWh");
        assert_eq!(ds[1]["values"][0]["number"], serde_json::Value::Null);
        assert_eq!(ds[16]["values"][0]["unit"], serde_json::Value::Null);
        assert_eq!(j["findings"].as_array().map(Vec::len), Some(0));
    }
}

#[test]
fn table_lists_meaning_bcc_and_findings() {
    let o = run_rig(&["decode", "fixtures/telegrams/multical-sum-bcc.txt"]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("BCC: received"), "{s}");
    assert!(s.contains("bcc_mismatch"), "{s}");
    assert!(s.contains("the sum rule matches"), "{s}");
    let o = run_rig(&["decode", WORKED]);
    let s = String::from_utf8_lossy(&o.stdout);
    assert!(s.contains("Active energy - tariff 1"), "{s}");
    assert!(s.contains("findings: none"), "{s}");
    assert_eq!(code(&o), 0);
}

#[test]
fn json_findings_carry_offset_kind_severity() {
    let (c, j) = json_of(&[
        "decode",
        "--strict",
        "--format",
        "json",
        "fixtures/telegrams/wrong-bcc.txt",
    ]);
    assert_eq!(c, 1);
    assert_eq!(j["valid"], false);
    let f = &j["findings"][0];
    assert_eq!(f["offset"], 358);
    assert_eq!(f["kind"], "bcc_mismatch");
    assert_eq!(f["category"], "bcc");
    assert_eq!(f["severity"], "violation");
    assert!(f["clause"].as_str().is_some_and(|c| c.contains("BCC")));
    assert!(f["message"].as_str().is_some_and(|m| m.contains("expects")));
}

#[test]
fn missing_file_is_a_usage_error_naming_the_file() {
    let o = run_rig(&["decode", "no/such/capture.bin"]);
    assert_eq!(code(&o), 2);
    let e = String::from_utf8_lossy(&o.stderr);
    assert!(e.contains("no/such/capture.bin"), "{e}");
}

#[test]
fn bad_option_is_a_usage_error() {
    let o = run_rig(&["decode", "--bcc", "crc", WORKED]);
    assert_eq!(code(&o), 2);
}

/// Every single-bit flip of every byte of the 7E1 capture breaks that byte's parity: strict
/// decoding fails with a finding at exactly that offset.
#[test]
fn every_bit_flip_of_the_capture_is_found_at_its_offset() {
    let cap = std::fs::read(path(WORKED_7E1)).expect("fixture");
    let opts = DecodeOptions::strict(BccRule::Xor, ParityMode::Even);
    assert!(decode(&cap, opts).valid);
    let mut n = 0;
    for i in 0..cap.len() {
        for bit in 0..8 {
            let mut v = cap.clone();
            v[i] ^= 1 << bit;
            assert_eq!(detect_parity(&v), ParityMode::Even, "byte {i} bit {bit}");
            let d = decode(&v, opts);
            assert!(!d.valid, "byte {i} bit {bit}");
            assert!(
                d.findings
                    .iter()
                    .any(|f| f.offset == i && f.severity == Severity::Violation),
                "byte {i} bit {bit}: {:#?}",
                d.findings
            );
            n += 1;
        }
    }
    assert_eq!(n, 359 * 8);
}

#[rstest]
#[case(0, 0)]
#[case(19, 7)]
#[case(150, 3)]
#[case(357, 0)]
#[case(358, 6)]
fn bit_flip_spot_checks_through_binary(#[case] byte: usize, #[case] bit: u8) {
    let mut cap = std::fs::read(path(WORKED_7E1)).expect("fixture");
    cap[byte] ^= 1 << bit;
    let dir = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rig-decode-flip-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("tmp");
    let f = dir.join(format!("flip-{byte}-{bit}.bin"));
    std::fs::write(&f, &cap).expect("write");
    let (c, j) = json_of(&[
        "decode",
        "--strict",
        "--format",
        "json",
        f.to_str().expect("path"),
    ]);
    let _ = std::fs::remove_file(&f);
    assert_eq!(c, 1, "{j:#}");
    assert_eq!(j["parity"], "even");
    let offsets: Vec<u64> = j["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["offset"].as_u64())
        .collect();
    assert!(offsets.contains(&(byte as u64)), "{j:#}");
}

#[test]
fn stdin_is_read_with_dash() {
    let txt = std::fs::read(path(WORKED)).expect("fixture");
    let mut child = crate::util::rig()
        .args(["decode", "--strict", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().expect("stdin");
        stdin.write_all(&txt).expect("write");
    }
    let o = child.wait_with_output().expect("wait");
    assert_eq!(code(&o), 0, "{}", String::from_utf8_lossy(&o.stdout));
}

// ---------------------------------------------------------------- property tests

fn ident_strategy() -> impl Strategy<Value = Identification> {
    ("[A-Za-z]{3}", "[ 0-9A-Z]", "[0-9A-Za-z]{0,16}").prop_map(|(m, c, t)| Identification {
        manufacturer: m,
        mode_char: c.chars().next().unwrap_or(' '),
        text: t,
    })
}

fn value_strategy() -> impl Strategy<Value = Value> {
    (
        "[0-9A-Za-z.:+_-]{1,32}",
        proptest::option::of("[A-Za-z0-9%]{1,16}"),
    )
        .prop_filter("comma-free", |(r, _)| !r.contains(','))
        .prop_map(|(raw, unit)| Value { raw, unit })
}

fn data_set_strategy() -> impl Strategy<Value = DataSet> {
    (
        "[0-9A-Za-z.:_-]{1,16}",
        proptest::collection::vec(value_strategy(), 1..4),
    )
        .prop_map(|(address, values)| DataSet { address, values })
}

fn telegram_strategy() -> impl Strategy<Value = Telegram> {
    (
        ident_strategy(),
        proptest::collection::vec(data_set_strategy(), 1..24),
    )
        .prop_map(|(identification, data_sets)| Telegram {
            identification,
            data_sets,
        })
}

fn events_of(bytes: &[u8], opts: DecodeOptions, chunk: usize) -> (Vec<Event>, bool) {
    let mut d = Decoder::new(opts);
    let mut out = Vec::new();
    let mut complete_at = None;
    for (i, part) in bytes.chunks(chunk.max(1)).enumerate() {
        for (j, &b) in part.iter().enumerate() {
            let k = i * chunk.max(1) + j;
            d.push(b, Timestamp(k as u64), &mut out);
            if complete_at.is_none() && d.is_complete() {
                complete_at = Some(k);
            }
        }
    }
    let complete = d.is_complete();
    let one_shot = decode(bytes, opts);
    let fin = d.finish();
    assert_eq!(fin, one_shot);
    (out, complete)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn encode_decode_round_trip(t in telegram_strategy(), sum in any::<bool>(), with_parity in any::<bool>()) {
        let rule = if sum { BccRule::Sum } else { BccRule::Xor };
        let (chars, layout) = t.encode(rule);
        let (bytes, par) = if with_parity {
            (parity::encode(&chars), ParityMode::Even)
        } else {
            (chars.clone(), ParityMode::None)
        };
        for mode in [Mode::Strict, Mode::Tolerant] {
            let d = decode(&bytes, DecodeOptions { mode, bcc_rule: rule, parity: par });
            let violations: Vec<_> = d.findings.iter().filter(|f| f.severity == Severity::Violation).collect();
            prop_assert!(violations.is_empty(), "{:?}", violations);
            prop_assert!(d.valid);
            prop_assert!(d.complete);
            prop_assert_eq!(d.identification.as_ref(), Some(&t.identification));
            prop_assert_eq!(&d.data_sets, &t.data_sets);
            prop_assert_eq!(d.bcc.received, Some(chars[layout.bcc]));
            prop_assert_eq!(d.timing.data_sets.len(), t.data_sets.len());
            prop_assert_eq!(d.timing.etx, Some(Timestamp(layout.etx as u64)));
            prop_assert_eq!(d.timing.stx, Some(Timestamp(layout.stx as u64)));
        }
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        for mode in [Mode::Strict, Mode::Tolerant] {
            for par in [ParityMode::Even, ParityMode::None] {
                for rule in [BccRule::Xor, BccRule::Sum] {
                    let d = decode(&bytes, DecodeOptions { mode, bcc_rule: rule, parity: par });
                    prop_assert_eq!(d.bytes, bytes.len());
                    // every byte belongs to exactly one telegram
                    let mut at = 0;
                    for t in d.telegrams() {
                        prop_assert_eq!(t.range.start, at);
                        prop_assert!(t.following.is_empty() || std::ptr::eq(t, &d));
                        at = t.range.end;
                    }
                    prop_assert_eq!(at, bytes.len());
                    prop_assert!(d.following.is_empty() || !d.valid);
                    if d.valid { prop_assert!(d.complete && d.bcc.ok); }
                    for f in &d.findings { prop_assert!(f.offset <= bytes.len()); }
                }
            }
        }
    }

    /// Mutated telegrams (a realistic neighbourhood of valid input) never panic either.
    #[test]
    fn mutated_telegrams_never_panic(t in telegram_strategy(), edits in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..8)) {
        let (mut bytes, _) = t.encode(BccRule::Xor);
        for (i, b) in edits {
            let n = bytes.len();
            match b % 3 {
                0 => bytes[i % n] = b,
                1 => { bytes.remove(i % n); }
                _ => bytes.insert(i % (n + 1), b),
            }
            if bytes.is_empty() { break; }
        }
        for mode in [Mode::Strict, Mode::Tolerant] {
            let d = decode(&bytes, DecodeOptions { mode, bcc_rule: BccRule::Xor, parity: ParityMode::None });
            prop_assert_eq!(d.bytes, bytes.len());
        }
    }

    #[test]
    fn incremental_equals_one_shot(t in telegram_strategy(), noise in proptest::collection::vec(any::<u8>().prop_filter("no '/'", |b| b & 0x7F != b'/'), 0..20), chunk in 1usize..64, strict in any::<bool>()) {
        let (chars, _) = t.encode(BccRule::Xor);
        let mut bytes = noise.clone();
        bytes.extend_from_slice(&chars);
        let opts = DecodeOptions {
            mode: if strict { Mode::Strict } else { Mode::Tolerant },
            bcc_rule: BccRule::Xor,
            parity: ParityMode::None,
        };
        let (events, _complete) = events_of(&bytes, opts, chunk);
        let one = decode(&bytes, opts);
        // the events carry the same data sets and findings as the summary
        let ds: Vec<DataSet> = events.iter().filter_map(|e| match e {
            Event::DataSet { data_set, .. } => Some(data_set.clone()),
            _ => None,
        }).collect();
        prop_assert_eq!(&ds, &one.data_sets);
        let fs: Vec<_> = events.iter().filter_map(|e| match e {
            Event::Finding(f) => Some(f.clone()),
            _ => None,
        }).collect();
        prop_assert_eq!(&fs[..], &one.findings[..fs.len()]);
        if !strict {
            prop_assert!(one.readable);
        }
    }
}

#[test]
fn events_arrive_as_elements_complete() {
    let txt = std::fs::read(path(WORKED)).expect("fixture");
    let mut d = Decoder::new(DecodeOptions::strict(BccRule::Xor, ParityMode::None));
    let mut out = Vec::new();
    let mut first_ds_at = None;
    for (i, &b) in txt.iter().enumerate() {
        d.push(b, Timestamp::from_ms(i as u64 * 33), &mut out);
        if first_ds_at.is_none() && out.iter().any(|e| matches!(e, Event::DataSet { .. })) {
            first_ds_at = Some(i);
        }
        assert_eq!(d.is_complete(), i == txt.len() - 1, "byte {i}");
    }
    // the first data set completes at the CR after its ')' (offset 20 STX, 21.. "0.0.0(00000000)")
    assert_eq!(first_ds_at, Some(36));
    assert!(matches!(
        out[0],
        Event::IdentificationStart { offset: 0, .. }
    ));
    assert!(matches!(
        out.last(),
        Some(Event::Bcc { received: b'7', .. })
    ));
    let kinds: Vec<&str> = out
        .iter()
        .map(|e| match e {
            Event::IdentificationStart { .. } => "start",
            Event::Identification { .. } => "ident",
            Event::Stx { .. } => "stx",
            Event::DataSet { .. } => "ds",
            Event::End { .. } => "end",
            Event::Etx { .. } => "etx",
            Event::Bcc { .. } => "bcc",
            Event::Finding(_) => "finding",
        })
        .collect();
    let mut expected = vec!["start", "ident", "stx"];
    expected.extend(std::iter::repeat_n("ds", 17));
    expected.extend(["end", "etx", "bcc"]);
    assert_eq!(kinds, expected);
    let dec = d.finish();
    assert_eq!(dec.timing.identification_start, Some(Timestamp::ZERO));
    assert_eq!(dec.timing.bcc, Some(Timestamp::from_ms(358 * 33)));
    assert_eq!(dec.timing.data_sets.len(), 17);
}

#[test]
fn bcc_mismatch_says_whether_the_other_rule_matches() {
    let bytes = std::fs::read(path("fixtures/telegrams/multical-sum-bcc.txt")).expect("fixture");
    let d = decode(
        &bytes,
        DecodeOptions::strict(BccRule::Xor, ParityMode::None),
    );
    assert!(d.findings.iter().any(|f| f.kind
        == FindingKind::BccMismatch {
            other_rule_matches: true
        }));
    let bytes = std::fs::read(path("fixtures/telegrams/wrong-bcc.txt")).expect("fixture");
    let d = decode(
        &bytes,
        DecodeOptions::strict(BccRule::Sum, ParityMode::None),
    );
    assert!(d.findings.iter().any(|f| f.kind
        == FindingKind::BccMismatch {
            other_rule_matches: false
        }));
}
