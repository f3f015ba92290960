//! Decoder throughput, side by side with the Python IEC 62056-21 parsers on the same bytes.
//!
//! What it is for: one command (`cargo bench --bench decode`) that measures the rig's decoder in
//! strict and tolerant mode, writes the very telegram corpora it decoded to a temporary folder,
//! runs `benches/peers/decode_peers.py` on them (the `iec62056-21` and `iec62056` packages, each
//! timed with `time.perf_counter`), checks that every parser read the same data sets, and prints
//! one table: MB/s per parser and corpus, and the rig's figure divided by the faster peer's.
//!
//! Corpora (7-bit characters, what all three parsers take):
//! - the 351 worked example fixture (`fixtures/telegrams/kamstrup-351-worked-example.txt`);
//! - a stream of 2000 synthetic 351 Combi answers with varying values;
//! - a stream of 200 synthetic MULTICAL-style answers (`/KAM MC`, four data sets with two-part
//!   addresses, the layout of `iec62056`'s own Kamstrup sample): the only kind `iec62056` reads.
//!
//! and, for the rig alone (the peers have no parity handling), the soft-7E1 captures of the first
//! two, and the 351 stream once more with the events collected. A stream is decoded the way a
//! reader does: one decoder, a new one after each BCC.
//!
//! Rounds interleave: every corpus through the rig in both modes (at least `ROUND` each), then
//! one round of the peers in a fresh Python process (its own check pass, then at least `ROUND`
//! per peer and corpus), `ROUNDS` times, so the rig and the peers meet the same load on this
//! shared machine. The table shows the best round and, in parentheses, the median; the ratios
//! divide best by best, since other work only ever slows a round down (the practice of Python's
//! `timeit`). Nothing here asserts a speed. It does assert that the rig decoded every corpus as
//! expected, and it leaves a peer out of the comparison (saying why) when the peer is missing,
//! rejects a corpus or read something other than the rig did. `harness = false`; no criterion.

use std::hint::black_box;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use meter_rig::iec62056::decoder::{decode, DecodeOptions, Decoded, Decoder, Mode, ParityMode};
use meter_rig::iec62056::{parity, BccRule, DataSet, Identification, Telegram, Value};
use meter_rig::time::Timestamp;
use serde_json::Value as Json;

const WORKED: &[u8] = include_bytes!("../fixtures/telegrams/kamstrup-351-worked-example.txt");
/// Rounds per case, and the least time one round runs.
const ROUNDS: usize = 7;
const ROUND: Duration = Duration::from_millis(300);
/// The peers, in table order, with the pip line that installs the version measured.
const PEERS: [(&str, &str); 2] = [
    ("iec62056-21", "pip install iec62056-21==0.0.2"),
    ("iec62056", "pip install iec62056==0.5.1"),
];

/// A stream of `n` 351-style telegrams with varying values, one after the other.
fn stream_351(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let data_sets = meter_rig::meter::readout::COMBI_351
            .iter()
            .enumerate()
            .map(|(k, spec)| {
                let raw = spec.format.format_number((i * 17 + k) as f64 * 1.37);
                DataSet::single(
                    spec.address,
                    Value {
                        raw,
                        unit: spec.unit.map(String::from),
                    },
                )
            })
            .collect();
        let t = Telegram {
            identification: Identification::kamstrup("685351A300100"),
            data_sets,
        };
        v.extend_from_slice(&t.encode(BccRule::Xor).0);
    }
    v
}

/// A stream of `n` MULTICAL-style telegrams: serial number, energy, volume, hours (the four
/// registers of `iec62056`'s sample `KAMSTRUP_MC66`), XOR BCC.
fn stream_multical(n: usize) -> Vec<u8> {
    let mut v = Vec::new();
    for i in 0..n {
        let x = i as f64;
        let t = Telegram {
            identification: Identification::kamstrup("MC"),
            data_sets: vec![
                DataSet::single("0.0", Value::new(format!("{:011}", 5_077_354 + i))),
                DataSet::single(
                    "6.8",
                    Value::with_unit(format!("{:08.2}", 433.65 + x), "GJ"),
                ),
                DataSet::single(
                    "6.26",
                    Value::with_unit(format!("{:08.2}", 3052.95 + x * 3.1), "m3"),
                ),
                DataSet::single("6.31", Value::with_unit(format!("{:07}", 109_868 + i), "h")),
            ],
        };
        v.extend_from_slice(&t.encode(BccRule::Xor).0);
    }
    v
}

/// Decodes a stream the way a reader does (`rig read`): a new decoder after each complete
/// telegram, each byte fed with [`Decoder::feed`], or, with `events`, with [`Decoder::push`]
/// collecting the events (cleared after each byte). Calls `each` with every telegram's summary.
fn decode_stream(bytes: &[u8], opts: DecodeOptions, events: bool, mut each: impl FnMut(Decoded)) {
    let mut d = Decoder::new(opts);
    let mut out = Vec::new();
    for (i, &b) in bytes.iter().enumerate() {
        if events {
            d.push(b, Timestamp(i as u64), &mut out);
            out.clear();
        } else {
            d.feed(b, Timestamp(i as u64));
        }
        if d.is_complete() {
            each(std::mem::replace(&mut d, Decoder::new(opts)).finish());
        }
    }
    if d.bytes_seen() > 0 {
        each(d.finish());
    }
}

/// Decodes a corpus: one-shot for a single telegram, as a stream otherwise.
fn decode_corpus(c: &Corpus, opts: DecodeOptions, each: impl FnMut(Decoded)) {
    if c.telegrams == 1 && !c.events {
        let mut each = each;
        each(decode(&c.bytes, opts));
    } else {
        decode_stream(&c.bytes, opts, c.events, each);
    }
}

/// What a parser read from a corpus, to compare the peers with the rig.
#[derive(Debug, Default)]
struct Read {
    telegrams: usize,
    data_sets: usize,
    value_sum: f64,
    last: Option<(String, Value)>,
    all_valid: bool,
}

fn read_rig(c: &Corpus, opts: DecodeOptions) -> Read {
    let mut r = Read {
        all_valid: true,
        ..Read::default()
    };
    decode_corpus(c, opts, |d| {
        r.telegrams += 1;
        r.all_valid &= d.valid;
        r.data_sets += d.data_sets.len();
        for ds in &d.data_sets {
            if let Some(x) = ds.values.first().and_then(Value::number) {
                r.value_sum += x;
            }
        }
        if let Some(ds) = d.data_sets.last() {
            r.last = ds.values.first().map(|v| (ds.address.clone(), v.clone()));
        }
    });
    r
}

/// One timing round: runs `f` (which decodes `bytes` bytes) until at least `ROUND` has passed;
/// MB/s.
fn round(bytes: usize, mut f: impl FnMut() -> usize) -> f64 {
    let start = Instant::now();
    let mut iters = 0u64;
    while iters == 0 || start.elapsed() < ROUND {
        black_box(f());
        iters += 1;
    }
    bytes as f64 * iters as f64 / start.elapsed().as_secs_f64() / 1e6
}

fn median(v: &[f64]) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(f64::total_cmp);
    s[s.len() / 2]
}

/// A figure with three significant digits or more (0.0213, 4.87, 31.2, 215).
fn fig(x: f64) -> String {
    let decimals = if x >= 100.0 {
        0
    } else if x >= 10.0 {
        1
    } else if x >= 1.0 {
        2
    } else {
        (2 - x.log10().floor() as i32).clamp(3, 6) as usize
    };
    format!("{x:.decimals$}")
}

fn best(v: &[f64]) -> f64 {
    v.iter().copied().fold(0.0, f64::max)
}

/// `best (median)` of per-round MB/s.
fn show(v: &[f64]) -> String {
    format!("{} ({})", fig(best(v)), fig(median(v)))
}

struct Corpus {
    /// Name passed to the peer script (`NAME=FILE`).
    key: &'static str,
    label: String,
    bytes: Vec<u8>,
    telegrams: usize,
    data_sets: usize,
    parity: ParityMode,
    /// Rig only: push with events collected instead of feed.
    events: bool,
}

impl Corpus {
    /// Whether the peers get this corpus too (7-bit, the rig's plain reading path).
    fn shared(&self) -> bool {
        self.parity == ParityMode::None && !self.events
    }
}

/// The rig's figures for one corpus.
struct RigRow {
    strict: Vec<f64>,
    tolerant: Vec<f64>,
    read: Read,
}

fn machine() -> Vec<String> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .map(|r| r.trim_start_matches([' ', '\t', ':']))
        })
        .unwrap_or("unknown CPU")
        .to_string();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let rustc = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .arg("--version")
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|| "rustc: unknown".into());
    vec![
        format!("CPU: {model}, {cores} core(s) available"),
        format!(
            "rustc: {rustc}, profile {}",
            if cfg!(debug_assertions) {
                "debug (!)"
            } else {
                "release (cargo bench)"
            }
        ),
    ]
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "unknown".into())
}

/// Writes the corpora the peers get; returns the script's `NAME=FILE` arguments.
fn write_corpora(dir: &Path, corpora: &[&Corpus]) -> Result<Vec<String>, String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    corpora
        .iter()
        .map(|c| {
            let file = dir.join(format!("{}.bin", c.key));
            std::fs::write(&file, &c.bytes)
                .map_err(|e| format!("writing {}: {e}", file.display()))?;
            Ok(format!("{}={}", c.key, file.display()))
        })
        .collect()
}

/// Runs one round of the peer script in a fresh Python process (its own check pass, then one
/// timed round per peer and corpus); `Err` says why no peer figures are available.
fn run_peers(corpus_args: &[String]) -> Result<Json, String> {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/peers/decode_peers.py");
    let python = std::env::var("PYTHON").unwrap_or_else(|_| "python3".into());
    let out = Command::new(&python)
        .arg(&script)
        .arg("--rounds")
        .arg("1")
        .arg("--round-secs")
        .arg(ROUND.as_secs_f64().to_string())
        .args(corpus_args)
        .output()
        .map_err(|e| format!("could not run {python} {}: {e}", script.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{python} {} failed ({}): {}",
            script.display(),
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("peer script printed no JSON: {e}"))
}

/// A peer's rounds on one corpus over all runs of the script, or why it is not compared.
fn peer_rounds(
    runs: &[Result<Json, String>],
    peer: &str,
    corpus: &Corpus,
    rig: &Read,
) -> Result<Vec<f64>, String> {
    let mut all = Vec::new();
    for run in runs {
        let j = run.as_ref().map_err(|_| "not run".to_string())?;
        all.extend(peer_result(j, peer, corpus, rig)?);
    }
    Ok(all)
}

/// A peer's result on one corpus: its per-round MB/s, or why it is not in the comparison.
fn peer_result(peers: &Json, peer: &str, corpus: &Corpus, rig: &Read) -> Result<Vec<f64>, String> {
    let p = &peers["peers"][peer];
    if p["installed"] != Json::Bool(true) {
        return Err("not installed".into());
    }
    let r = &p["corpora"][corpus.key];
    if r["ok"] != Json::Bool(true) {
        return Err(format!(
            "rejects it: {}",
            r["error"].as_str().unwrap_or("?")
        ));
    }
    let n = |k: &str| r[k].as_u64().unwrap_or(u64::MAX) as usize;
    if n("answers") != rig.telegrams || n("data_sets") != rig.data_sets {
        return Err(format!(
            "MISMATCH: read {} answers / {} data sets, the rig {} / {}",
            n("answers"),
            n("data_sets"),
            rig.telegrams,
            rig.data_sets
        ));
    }
    let sum: Option<f64> = r["value_sum"].as_str().and_then(|s| s.parse().ok());
    if sum != Some(rig.value_sum) {
        return Err(format!(
            "MISMATCH: values sum to {}, the rig's to {}",
            r["value_sum"], rig.value_sum
        ));
    }
    let (addr, val) = rig.last.as_ref().ok_or("rig read no data set")?;
    let last = &r["last"];
    let same_value = match &last[1] {
        Json::String(s) => *s == val.raw || Value::new(s.clone()).number() == val.number(),
        Json::Number(x) => x.as_f64() == val.number(),
        _ => false,
    };
    if last[0].as_str() != Some(addr) || last[2].as_str() != val.unit.as_deref() || !same_value {
        return Err(format!(
            "MISMATCH: last data set {last}, the rig's {addr}({}*{:?})",
            val.raw, val.unit
        ));
    }
    let mbps: Vec<f64> = r["mbps"]
        .as_array()
        .map(|a| a.iter().filter_map(Json::as_f64).collect())
        .unwrap_or_default();
    if mbps.is_empty() {
        return Err("no timing".into());
    }
    Ok(mbps)
}

fn main() {
    let load_before = load_average();
    let worked_7e1 = parity::encode(WORKED);
    let s351 = stream_351(2000);
    let s351_7e1 = parity::encode(&s351);
    let corpora = [
        Corpus {
            key: "worked",
            label: "351 worked example (fixture)".into(),
            bytes: WORKED.to_vec(),
            telegrams: 1,
            data_sets: 17,
            parity: ParityMode::None,
            events: false,
        },
        Corpus {
            key: "stream351",
            label: "2000 × 351 answers".into(),
            bytes: s351.clone(),
            telegrams: 2000,
            data_sets: 2000 * 17,
            parity: ParityMode::None,
            events: false,
        },
        Corpus {
            key: "multical",
            label: "200 × MULTICAL-style answers".into(),
            bytes: stream_multical(200),
            telegrams: 200,
            data_sets: 200 * 4,
            parity: ParityMode::None,
            events: false,
        },
        Corpus {
            key: "worked7e1",
            label: "351 worked example, soft 7E1 (rig only)".into(),
            bytes: worked_7e1,
            telegrams: 1,
            data_sets: 17,
            parity: ParityMode::Even,
            events: false,
        },
        Corpus {
            key: "stream351e",
            label: "2000 × 351 answers, soft 7E1 (rig only)".into(),
            bytes: s351_7e1,
            telegrams: 2000,
            data_sets: 2000 * 17,
            parity: ParityMode::Even,
            events: false,
        },
        Corpus {
            key: "stream351ev",
            label: "2000 × 351 answers, events collected (rig only)".into(),
            bytes: s351.clone(),
            telegrams: 2000,
            data_sets: 2000 * 17,
            parity: ParityMode::None,
            events: true,
        },
    ];

    // the rig: check what it reads
    let mut rig = Vec::new();
    for c in &corpora {
        let strict = DecodeOptions::strict(BccRule::Xor, c.parity);
        let tolerant = DecodeOptions::tolerant(BccRule::Xor, c.parity);
        let read = read_rig(c, strict);
        let read_t = read_rig(c, tolerant);
        assert!(read.all_valid && read_t.all_valid, "{}: not valid", c.label);
        assert_eq!((read.telegrams, read.data_sets), (c.telegrams, c.data_sets));
        assert_eq!(
            (read_t.telegrams, read_t.data_sets),
            (c.telegrams, c.data_sets)
        );
        assert_eq!(read.value_sum, read_t.value_sum);
        rig.push(RigRow {
            strict: Vec::new(),
            tolerant: Vec::new(),
            read,
        });
    }
    let dir = std::env::temp_dir().join(format!("meter-rig-decode-bench-{}", std::process::id()));
    let shared: Vec<&Corpus> = corpora.iter().filter(|c| c.shared()).collect();
    let corpus_args = write_corpora(&dir, &shared);

    // rounds, interleaved so that the rig and the peers meet the same load: every corpus through
    // the rig in both modes, then one round of the peers on the same bytes, ROUNDS times
    let mut peer_runs = Vec::new();
    let mut load_1min = Vec::new();
    for _ in 0..ROUNDS {
        for (c, r) in corpora.iter().zip(rig.iter_mut()) {
            for (mode, out) in [
                (Mode::Strict, &mut r.strict),
                (Mode::Tolerant, &mut r.tolerant),
            ] {
                let opts = DecodeOptions {
                    mode,
                    bcc_rule: BccRule::Xor,
                    parity: c.parity,
                };
                let f = || {
                    let mut n = 0;
                    decode_corpus(c, opts, |d| n += black_box(d).data_sets.len());
                    n
                };
                if out.is_empty() {
                    for _ in 0..3 {
                        black_box(f()); // warm up
                    }
                }
                out.push(round(c.bytes.len(), f));
            }
        }
        peer_runs.push(
            corpus_args
                .as_ref()
                .map_err(Clone::clone)
                .and_then(|a| run_peers(a)),
        );
        load_1min.push(load_average().split(' ').next().unwrap_or("?").to_string());
    }
    let _ = std::fs::remove_dir_all(&dir);
    let load_after = load_average();
    // versions and checks from the first run that answered; the first error otherwise
    let peers: Result<&Json, &String> = peer_runs
        .iter()
        .find_map(|r| r.as_ref().ok())
        .ok_or_else(|| peer_runs[0].as_ref().err().unwrap());

    println!(
        "# Decoder throughput against the Python peers (MB/s: best of {ROUNDS} rounds of ≥ {} ms, interleaved rig / peers; (median))",
        ROUND.as_millis()
    );
    println!();
    for l in machine() {
        println!("- {l}");
    }
    let ver = |p: &str, k: &str| -> String {
        peers
            .as_ref()
            .ok()
            .and_then(|j| j["peers"][p][k].as_str().map(String::from))
            .unwrap_or_else(|| "not installed".into())
    };
    match &peers {
        Ok(j) => println!(
            "- Python: {} {}; iec62056-21 {}; iec62056 {} (lark {})",
            j["implementation"].as_str().unwrap_or("?"),
            j["python"].as_str().unwrap_or("?"),
            ver("iec62056-21", "version"),
            ver("iec62056", "version"),
            ver("iec62056", "lark"),
        ),
        Err(e) => println!("- Python peers not run: {e}"),
    }
    println!(
        "- load average (1, 5, 15 min): {load_before} at start, {load_after} at the end; 1 min after each round: {}",
        load_1min.join(", ")
    );
    println!();
    println!("| corpus | bytes | rig strict | rig tolerant | iec62056-21 | iec62056 | strict ÷ faster peer | tolerant ÷ faster peer |");
    println!("|---|---:|---:|---:|---:|---:|---:|---:|");
    let mut notes = Vec::new();
    for (c, r) in corpora.iter().zip(&rig) {
        let mut cells = Vec::new();
        let mut faster: Option<(f64, &str)> = None;
        for (peer, _) in PEERS {
            if !c.shared() {
                cells.push("n/a".to_string());
                continue;
            }
            match peer_rounds(&peer_runs, peer, c, &r.read) {
                Ok(v) => {
                    let m = best(&v);
                    if faster.is_none_or(|(b, _)| m > b) {
                        faster = Some((m, peer));
                    }
                    cells.push(show(&v));
                }
                Err(e) => {
                    cells.push("—".into());
                    // a missing peer or Python is said once, below
                    if e != "not installed" && e != "not run" {
                        notes.push(format!("{peer} on {}: {e}", c.label));
                    }
                }
            }
        }
        let ratio = |v: &[f64]| match faster {
            Some((b, p)) => format!("{}× ({p})", fig(best(v) / b)),
            None => "—".into(),
        };
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            c.label,
            c.bytes.len(),
            show(&r.strict),
            show(&r.tolerant),
            cells[0],
            cells[1],
            ratio(&r.strict),
            ratio(&r.tolerant)
        );
    }
    println!();
    println!("Checks (untimed pass before the timing):");
    for (c, r) in corpora.iter().zip(&rig) {
        let (addr, val) = r
            .read
            .last
            .clone()
            .unwrap_or_else(|| (String::new(), Value::new("")));
        println!(
            "- {}: rig read {} answer(s), {} data sets, all valid in both modes; values sum to {}; last {addr}({}{})",
            c.label,
            r.read.telegrams,
            r.read.data_sets,
            r.read.value_sum,
            val.raw,
            val.unit.map(|u| format!("*{u}")).unwrap_or_default()
        );
        if let (Ok(j), true) = (&peers, c.shared()) {
            for (peer, _) in PEERS {
                let x = &j["peers"][peer]["corpora"][c.key];
                if x["ok"] == Json::Bool(true) {
                    println!(
                        "  - {peer}: {} answer(s), {} data sets, values sum to {}, last {}, identification {}",
                        x["answers"],
                        x["data_sets"],
                        x["value_sum"].as_str().unwrap_or("?"),
                        x["last"],
                        x["ident"]
                    );
                }
            }
        }
    }
    match &peers {
        Ok(j) => {
            for (peer, pip) in PEERS {
                if j["peers"][peer]["installed"] != Json::Bool(true) {
                    notes.push(format!("{peer} is not installed: {pip}"));
                }
            }
        }
        Err(_) => notes.push(format!(
            "the peers were not run; they need python3 (or PYTHON=...) with: {}; {}",
            PEERS[0].1, PEERS[1].1
        )),
    }
    if !notes.is_empty() {
        println!();
        println!("Not compared:");
        for n in &notes {
            println!("- {n}");
        }
    }
}
