//! `rig decode`: decodes a captured mode A answer from a file (or stdin) and reports the
//! identification, the data sets, the BCC and every finding, as a table or as JSON.
//!
//! Exit codes: 0 only when the telegram is valid under the chosen mode (identification, a
//! matching BCC, no violation); 1 when it is not (a wrong or missing BCC, a truncated telegram, a
//! parity error, a second telegram, …), with a one-line reason on standard error and in the
//! verdict line of the table or the `verdict`/`reason` fields of the JSON; 2 for usage errors
//! (unreadable file). The JSON also says whether the content could be read tolerantly
//! (`readable`), whatever the mode. A closed standard output (`rig decode … | head`) ends the
//! output quietly.
//!
//! In tolerant mode an input with several telegrams (a new `/` where a telegram could not go
//! on) lists each of them; see [`meter_rig::iec62056::decoder::Decoded::following`].
//!
//! `--parity auto` (the default) picks `even` when the input looks like a soft-7E1 capture: at
//! least one byte has bit 7 set and more than half of the bytes whose 7-bit value has an odd number
//! of ones carry bit 7 (where even parity puts it). Otherwise it picks `none` (7-bit input). See
//! [`meter_rig::iec62056::decoder::detect_parity`].

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, ValueEnum};
use serde_json::{json, Value as Json};

use meter_rig::iec62056::decoder::{
    decode, detect_parity, DecodeOptions, Decoded, Mode, ParityMode, Severity,
};
use meter_rig::iec62056::BccRule;
use meter_rig::meter::readout;

/// BCC rule on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum BccArg {
    /// Modulo-2 addition (IEC 62056-21, the 351 Combi sheet).
    Xor,
    /// 7-bit arithmetic sum (other Kamstrup meters).
    Sum,
}

/// Parity on the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ParityArg {
    /// Soft 7E1: parity in bit 7, checked and stripped.
    Even,
    /// 7-bit input.
    None,
    /// Even if the input looks like a soft-7E1 capture (some byte has bit 7 set and more than
    /// half of the bytes whose 7-bit value has an odd number of ones carry it), else none.
    Auto,
}

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum FormatArg {
    /// A readable listing.
    Table,
    /// One JSON object.
    Json,
}

/// Arguments of `rig decode`.
#[derive(Debug, Args)]
pub struct DecodeArgs {
    /// Judge conformance (every deviation fails); default is tolerant reading.
    #[arg(long)]
    pub strict: bool,
    /// BCC rule the meter profile expects.
    #[arg(long, value_enum, default_value_t = BccArg::Xor)]
    pub bcc: BccArg,
    /// How the bytes carry parity.
    #[arg(long, value_enum, default_value_t = ParityArg::Auto)]
    pub parity: ParityArg,
    /// Output format.
    #[arg(long, value_enum, default_value_t = FormatArg::Table)]
    pub format: FormatArg,
    /// The capture to decode, or `-` for standard input.
    pub file: PathBuf,
}

/// The verdict on a decode: pass only when valid; otherwise the first violation as the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verdict {
    /// The telegram is valid under the chosen mode (the exit code is 0 exactly then).
    pub pass: bool,
    /// Some telegram of the input could be read tolerantly (an identification and a data set).
    pub readable: bool,
    /// Why it fails, in one line (offset, kind, message); `None` when it passes.
    pub reason: Option<String>,
}

impl Verdict {
    /// The verdict on `d`, the decode of `bytes` under `opts`. `readable` comes from a tolerant
    /// decode of the same bytes (the same one when `opts` is tolerant).
    pub fn of(d: &Decoded, bytes: &[u8], opts: &DecodeOptions) -> Verdict {
        let readable = match opts.mode {
            Mode::Tolerant => d.telegrams().any(|t| t.readable),
            Mode::Strict => {
                let t = decode(
                    bytes,
                    DecodeOptions {
                        mode: Mode::Tolerant,
                        ..*opts
                    },
                );
                let any = t.telegrams().any(|t| t.readable);
                any
            }
        };
        let reason = (!d.valid).then(|| {
            match d
                .findings
                .iter()
                .find(|f| f.severity == Severity::Violation)
            {
                Some(f) => format!("@{} {}: {}", f.offset, f.kind.name(), f.message),
                None if d.identification.is_none() => "no identification".into(),
                None => "no matching BCC".into(),
            }
        });
        Verdict {
            pass: d.valid,
            readable,
            reason,
        }
    }
}

/// Runs `rig decode`.
pub fn run(args: DecodeArgs) -> anyhow::Result<ExitCode> {
    let bytes = if args.file.as_os_str() == "-" {
        let mut v = Vec::new();
        std::io::stdin()
            .read_to_end(&mut v)
            .context("cannot read standard input")?;
        v
    } else {
        std::fs::read(&args.file).with_context(|| format!("cannot read {}", args.file.display()))?
    };
    let parity = match args.parity {
        ParityArg::Even => ParityMode::Even,
        ParityArg::None => ParityMode::None,
        ParityArg::Auto => detect_parity(&bytes),
    };
    let opts = DecodeOptions {
        mode: if args.strict {
            Mode::Strict
        } else {
            Mode::Tolerant
        },
        bcc_rule: match args.bcc {
            BccArg::Xor => BccRule::Xor,
            BccArg::Sum => BccRule::Sum,
        },
        parity,
    };
    let d = decode(&bytes, opts);
    let verdict = Verdict::of(&d, &bytes, &opts);
    let text = match args.format {
        FormatArg::Json => {
            let j = to_json(&d, &opts, &verdict);
            serde_json::to_string_pretty(&j)? + "\n"
        }
        FormatArg::Table => table(&d, &opts, &verdict),
    };
    write_quietly(&mut std::io::stdout().lock(), text.as_bytes())
        .context("cannot write to standard output")?;
    if let Some(r) = &verdict.reason {
        // best effort: a closed standard error is no reason to fail differently
        let _ = writeln!(std::io::stderr(), "rig decode: FAIL: {r}");
    }
    Ok(if verdict.pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Writes `bytes` and flushes; a reader that went away (broken pipe, `rig decode … | head`) is
/// not an error: the rest of the output is dropped quietly, as ripgrep does.
pub fn write_quietly(w: &mut impl Write, bytes: &[u8]) -> std::io::Result<()> {
    match w.write_all(bytes).and_then(|()| w.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r,
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Strict => "strict",
        Mode::Tolerant => "tolerant",
    }
}

fn parity_name(p: ParityMode) -> &'static str {
    match p {
        ParityMode::Even => "even",
        ParityMode::None => "none",
    }
}

fn severity_name(s: Severity) -> &'static str {
    match s {
        Severity::Violation => "violation",
        Severity::Info => "info",
    }
}

/// The JSON record of a decode: the first telegram's fields, the verdict (`valid`, `verdict`
/// `"pass"`/`"fail"`, `reason`), `readable` (the content could be read tolerantly), the number
/// of `telegrams` and the ones after the first in `following` (same fields per telegram).
pub fn to_json(d: &Decoded, opts: &DecodeOptions, verdict: &Verdict) -> Json {
    let mut j = telegram_json(d);
    let top = json!({
        "mode": mode_name(opts.mode),
        "parity": parity_name(opts.parity),
        "verdict": if verdict.pass { "pass" } else { "fail" },
        "reason": verdict.reason,
        "valid": d.valid,
        "readable": verdict.readable,
        "bytes": d.bytes,
        "telegrams": 1 + d.following.len(),
        "following": d.following.iter().map(telegram_json).collect::<Vec<_>>(),
    });
    if let (Some(j), Json::Object(top)) = (j.as_object_mut(), top) {
        j.extend(top);
    }
    j
}

/// The JSON of one telegram.
fn telegram_json(d: &Decoded) -> Json {
    json!({
        "valid": d.valid,
        "readable": d.readable,
        "complete": d.complete,
        "identification_offset": d.identification_offset,
        "range": [d.range.start, d.range.end],
        "identification": d.identification.as_ref().map(|i| json!({
            "manufacturer": i.manufacturer,
            "mode_char": i.mode_char.to_string(),
            "text": i.text,
        })),
        "data_sets": d.data_sets.iter().map(|ds| json!({
            "address": ds.address,
            "values": ds.values.iter().map(|v| json!({
                "raw": v.raw,
                "number": v.number(),
                "unit": v.unit,
            })).collect::<Vec<_>>(),
        })).collect::<Vec<_>>(),
        "bcc": {
            "received": d.bcc.received,
            "xor": d.bcc.xor,
            "sum": d.bcc.sum,
            "rule": d.bcc.rule.name(),
            "ok": d.bcc.ok,
        },
        "findings": d.findings.iter().map(|f| json!({
            "offset": f.offset,
            "kind": f.kind.name(),
            "category": f.kind.category(),
            "severity": severity_name(f.severity),
            "clause": f.kind.clause(),
            "message": f.message,
        })).collect::<Vec<_>>(),
        "timing": d.timing,
    })
}

fn show_byte(b: Option<u8>) -> String {
    match b {
        Some(b) if (0x21..0x7F).contains(&b) => format!("'{}' (0x{b:02X})", b as char),
        Some(b) => format!("0x{b:02X}"),
        None => "none".into(),
    }
}

/// The table listing of a decode: each telegram (identification, data sets, BCC, findings),
/// then the verdict line with the reason when it fails.
pub fn table(d: &Decoded, opts: &DecodeOptions, verdict: &Verdict) -> String {
    use std::fmt::Write;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "mode {}, parity {}, BCC rule {}, {} bytes",
        mode_name(opts.mode),
        parity_name(opts.parity),
        opts.bcc_rule,
        d.bytes
    );
    let n = 1 + d.following.len();
    for (k, t) in d.telegrams().enumerate() {
        if n > 1 {
            let _ = writeln!(
                s,
                "telegram {} of {n}: bytes {}..{}",
                k + 1,
                t.range.start,
                t.range.end
            );
        }
        telegram_table(&mut s, t);
    }
    let _ = write!(
        s,
        "verdict: {} (valid: {}, readable: {})",
        if verdict.pass { "PASS" } else { "FAIL" },
        d.valid,
        verdict.readable
    );
    match &verdict.reason {
        Some(r) => {
            let _ = writeln!(s, ": {r}");
        }
        None => s.push('\n'),
    }
    s
}

/// One telegram's lines of the table.
fn telegram_table(s: &mut String, d: &Decoded) {
    use std::fmt::Write;
    match (&d.identification, d.identification_offset) {
        (Some(i), at) => {
            let _ = writeln!(
                s,
                "identification{}: manufacturer {} mode char {:?} text {}",
                at.map_or(String::new(), |o| format!(" at offset {o}")),
                i.manufacturer,
                i.mode_char,
                i.text
            );
        }
        (None, _) => s.push_str("identification: none\n"),
    }
    let _ = writeln!(s, "{:<10} {:<18} {:<6} meaning", "address", "value", "unit");
    for ds in &d.data_sets {
        let meaning = readout::spec(&ds.address).map_or("", |r| r.meaning);
        for (i, v) in ds.values.iter().enumerate() {
            let addr = if i == 0 { ds.address.as_str() } else { "" };
            let m = if i == 0 { meaning } else { "" };
            let _ = writeln!(
                s,
                "{:<10} {:<18} {:<6} {}",
                addr,
                v.raw,
                v.unit.as_deref().unwrap_or(""),
                m
            );
        }
    }
    let b = &d.bcc;
    let _ = writeln!(
        s,
        "BCC: received {}, xor {}, sum {}, rule {}: {}",
        show_byte(b.received),
        show_byte(Some(b.xor)),
        show_byte(Some(b.sum)),
        b.rule,
        if b.ok { "ok" } else { "MISMATCH" }
    );
    if d.findings.is_empty() {
        s.push_str("findings: none\n");
    } else {
        let _ = writeln!(s, "findings: {}", d.findings.len());
        for f in &d.findings {
            let _ = writeln!(
                s,
                "  @{:<5} {:<9} {:<9} {:<17} {}",
                f.offset,
                severity_name(f.severity),
                f.kind.category(),
                f.kind.name(),
                f.message
            );
        }
    }
}
