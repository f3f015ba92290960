//! `rig decode`: decodes a captured mode A answer from a file (or stdin) and reports the
//! identification, the data sets, the BCC and every finding, as a table or as JSON.
//!
//! Exit codes: 0 when the telegram is valid (`--strict`) or readable (tolerant, the default);
//! 1 when it is not; 2 for usage errors (unreadable file).
//!
//! `--parity auto` (the default) picks `even` when the input looks like a soft-7E1 capture: at
//! least one byte has bit 7 set and more than half of the bytes whose 7-bit value has an odd number
//! of ones carry bit 7 (where even parity puts it). Otherwise it picks `none` (7-bit input). See
//! [`meter_rig::iec62056::decoder::detect_parity`].

use std::io::Read;
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
    let pass = if args.strict { d.valid } else { d.readable };
    match args.format {
        FormatArg::Json => {
            let j = to_json(&d, &opts);
            println!("{}", serde_json::to_string_pretty(&j)?);
        }
        FormatArg::Table => print!("{}", table(&d, &opts, pass)),
    }
    Ok(if pass {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
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

/// The JSON record of a decode.
pub fn to_json(d: &Decoded, opts: &DecodeOptions) -> Json {
    json!({
        "mode": mode_name(opts.mode),
        "parity": parity_name(opts.parity),
        "valid": d.valid,
        "readable": d.readable,
        "complete": d.complete,
        "bytes": d.bytes,
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

/// The table listing of a decode.
pub fn table(d: &Decoded, opts: &DecodeOptions, pass: bool) -> String {
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
    match &d.identification {
        Some(i) => {
            let _ = writeln!(
                s,
                "identification: manufacturer {} mode char {:?} text {}",
                i.manufacturer, i.mode_char, i.text
            );
        }
        None => s.push_str("identification: none\n"),
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
                "  @{:<5} {:<9} {:<9} {:<16} {}",
                f.offset,
                severity_name(f.severity),
                f.kind.category(),
                f.kind.name(),
                f.message
            );
        }
    }
    let _ = writeln!(
        s,
        "verdict: {} (valid: {}, readable: {})",
        if pass { "PASS" } else { "FAIL" },
        d.valid,
        d.readable
    );
    s
}
