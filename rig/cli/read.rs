//! `rig read`: one mode A readout over a serial port or pty, printed as a table, JSON or CSV.
//!
//! Sends the request, receives until the BCC (or silence), decodes tolerantly and reports the
//! identification, the data sets with their meaning, the BCC, the measured response time (end of
//! the request's stop bit → start of `/`, on the serial-only contract with its uncertainty) and
//! every finding. Exit 0 on a valid telegram, 1 on an invalid or missing answer, 2 on setup errors
//! (the port missing, not permitted, busy: the message names the port and the fix).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use meter_rig::iec62056::decoder::{self, DecodeOptions, Decoded, Decoder, ParityMode};
use meter_rig::iec62056::{parity, BccRule, Identification, Request};
use meter_rig::meter::readout;
use meter_rig::serial::{Framing, PortKind, SerialOptions, SerialTarget};
use meter_rig::target::{RecvEnd, Target};
use meter_rig::time::{TimeSource, Timestamp};
use meter_rig::uart::RxChar;

/// The 351 Combi's answer to `/?!` is 359 characters from `/` to the BCC (NOTES §1).
pub const EXPECTED_ANSWER_LEN: u64 = 359;
/// IEC 62056-21's limit for the reaction time and between characters.
pub const MAX_GAP: Duration = Duration::from_millis(1500);

/// Output format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputFormat {
    /// Human-readable.
    Table,
    /// One JSON object.
    Json,
    /// The data sets as CSV (address, value, unit, meaning); the summary goes to stderr.
    Csv,
}

/// Reads a meter once over a serial port or pty.
#[derive(Debug, clap::Args)]
pub struct ReadArgs {
    /// The serial device or pty link (e.g. /dev/ttyUSB0, /dev/serial/by-id/…, /tmp/meter).
    #[arg(long)]
    pub port: PathBuf,
    /// Line rate.
    #[arg(long, default_value_t = 300)]
    pub baud: u32,
    /// How 7E1 travels over the port.
    #[arg(long, value_enum, default_value_t = Framing::Soft7e1)]
    pub framing: Framing,
    /// Device address for `/?ADDRESS!` (default: the general request `/?!`).
    #[arg(long)]
    pub address: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
    pub format: OutputFormat,
    /// Overall limit for the answer, from the end of the request (default: the 351's 359
    /// characters at the line rate plus 1500 ms).
    #[arg(long)]
    pub timeout_ms: Option<u64>,
    /// The BCC rule to check (the other is reported when it matches instead).
    #[arg(long, default_value_t = BccRule::Xor)]
    pub bcc: BccRule,
    /// Overrides the port kind detected from the path (sets the timing uncertainty).
    #[arg(long, value_enum)]
    pub port_kind: Option<PortKind>,
}

/// One data set as reported.
#[derive(Debug, serde::Serialize)]
struct Row {
    address: String,
    value: String,
    unit: Option<String>,
    meaning: Option<&'static str>,
}

/// The measured response time.
#[derive(Debug, serde::Serialize)]
struct ResponseTime {
    ms: f64,
    source: TimeSource,
    uncertainty_ms: f64,
}

/// Everything `rig read` reports.
#[derive(Debug, serde::Serialize)]
struct Report {
    port: String,
    baud: u32,
    framing: Framing,
    request: String,
    identification: Option<Identification>,
    data_sets: Vec<Row>,
    bcc: decoder::BccReport,
    response_time: Option<ResponseTime>,
    findings: Vec<decoder::Finding>,
    received_bytes: usize,
    receive_end: RecvEnd,
    valid: bool,
    readable: bool,
    complete: bool,
}

/// Runs `rig read`.
pub fn run(args: ReadArgs) -> anyhow::Result<ExitCode> {
    let request = match &args.address {
        Some(a) => Request::addressed(a.clone()),
        None => Request::general(),
    };
    let req_chars = request.encode();
    Request::parse(&req_chars).context("--address")?;
    if args.baud == 0 {
        anyhow::bail!("--baud must be positive");
    }
    let mut target = SerialTarget::open(
        &args.port,
        SerialOptions {
            baud: args.baud,
            framing: args.framing,
            kind: args.port_kind,
        },
    )?;
    let caps = target.capabilities();
    let opts = DecodeOptions::tolerant(
        args.bcc,
        if caps.parity_checked {
            ParityMode::Even
        } else {
            ParityMode::None
        },
    );

    let t_req = target.send(&parity::encode(&req_chars))?;
    let uncertainty = Duration::from_nanos(caps.data_uncertainty_ns);
    let deadline = match args.timeout_ms {
        Some(ms) => t_req + Duration::from_millis(ms),
        None => {
            t_req
                + Duration::from_nanos(EXPECTED_ANSWER_LEN * target.char_ns())
                + MAX_GAP
                + uncertainty
        }
    };
    let (chars, end) = receive(&mut target, t_req, deadline, uncertainty, opts)?;
    let decoded = decode(&chars, opts);
    let report = build_report(&args, &request, &decoded, &chars, end, t_req, &caps);
    print(&report, args.format)?;
    Ok(ExitCode::from(if report.valid { 0 } else { 1 }))
}

/// Receives the answer: the first character within the reaction-time limit (1500 ms plus the
/// port's uncertainty), then until the decoder has seen the BCC, the deadline or 1500 ms of silence.
fn receive(
    target: &mut SerialTarget,
    t_req: Timestamp,
    deadline: Timestamp,
    uncertainty: Duration,
    opts: DecodeOptions,
) -> anyhow::Result<(Vec<RxChar>, RecvEnd)> {
    let first_deadline = deadline.min(t_req + MAX_GAP + uncertainty);
    let (mut chars, end) = target.recv(first_deadline, MAX_GAP, &mut |cs| !cs.is_empty())?;
    if chars.is_empty() {
        return Ok((chars, end));
    }
    // a decoder fed as characters arrive says when the BCC is in
    let mut dec = Decoder::new(opts);
    for c in &chars {
        dec.feed(c.byte, c.start);
    }
    if dec.is_complete() {
        return Ok((chars, RecvEnd::Complete));
    }
    let mut fed = 0;
    let (rest, end) = target.recv(deadline, MAX_GAP, &mut |cs| {
        for c in &cs[fed..] {
            dec.feed(c.byte, c.start);
        }
        fed = cs.len();
        dec.is_complete()
    })?;
    chars.extend(rest);
    Ok((chars, end))
}

/// The decode step: the received bytes, each stamped with the start of its start bit.
fn decode(chars: &[RxChar], opts: DecodeOptions) -> Decoded {
    let mut dec = Decoder::new(opts);
    for c in chars {
        dec.feed(c.byte, c.start);
    }
    dec.finish()
}

fn build_report(
    args: &ReadArgs,
    request: &Request,
    d: &Decoded,
    chars: &[RxChar],
    end: RecvEnd,
    t_req: Timestamp,
    caps: &meter_rig::target::Capabilities,
) -> Report {
    let data_sets = d
        .data_sets
        .iter()
        .map(|ds| Row {
            address: ds.address.clone(),
            value: ds
                .values
                .iter()
                .map(|v| v.raw.clone())
                .collect::<Vec<_>>()
                .join(" "),
            unit: ds.values.iter().find_map(|v| v.unit.clone()),
            meaning: readout::spec(&ds.address).map(|s| s.meaning),
        })
        .collect();
    let response_time = d.timing.identification_start.map(|t| ResponseTime {
        ms: t.diff_ms(t_req),
        source: caps.data_timing,
        uncertainty_ms: caps.data_uncertainty_ns as f64 / 1e6,
    });
    Report {
        port: args.port.display().to_string(),
        baud: args.baud,
        framing: args.framing,
        request: String::from_utf8_lossy(&request.encode())
            .trim_end()
            .to_string(),
        identification: d.identification.clone(),
        data_sets,
        bcc: d.bcc,
        response_time,
        findings: d.findings.clone(),
        received_bytes: chars.len(),
        receive_end: end,
        valid: d.valid && d.readable,
        readable: d.readable,
        complete: d.complete,
    }
}

fn char_name(b: u8) -> String {
    if b.is_ascii_graphic() {
        format!("'{}' (0x{b:02X})", b as char)
    } else {
        format!("0x{b:02X}")
    }
}

fn bcc_line(r: &Report) -> String {
    let b = &r.bcc;
    let other = b.rule.other();
    let other_value = match other {
        BccRule::Xor => b.xor,
        BccRule::Sum => b.sum,
    };
    match b.received {
        None => format!(
            "missing (expected {} by {})",
            char_name(b.expected()),
            b.rule
        ),
        Some(got) if b.ok => format!("{} ok ({})", char_name(got), b.rule),
        Some(got) if got == other_value => format!(
            "{} wrong under {} (expected {}); it matches the {} rule: the meter computes {}",
            char_name(got),
            b.rule,
            char_name(b.expected()),
            other,
            other
        ),
        Some(got) => format!(
            "{} wrong (expected {} by {}, {} by {})",
            char_name(got),
            char_name(b.expected()),
            b.rule,
            char_name(other_value),
            other
        ),
    }
}

fn summary_lines(r: &Report) -> Vec<(String, String)> {
    let mut v = vec![(
        "port".to_string(),
        format!("{} ({} baud, {})", r.port, r.baud, r.framing),
    )];
    v.push(("request".into(), r.request.clone()));
    v.push((
        "identification".into(),
        match &r.identification {
            Some(id) => format!("/{}{}{}", id.manufacturer, id.mode_char, id.text),
            None => "none".into(),
        },
    ));
    v.push((
        "response time".into(),
        match &r.response_time {
            Some(t) => format!(
                "{:.1} ms ± {:.1} ms (source {}; end of request stop bit → start of '/')",
                t.ms, t.uncertainty_ms, t.source
            ),
            None => "no '/' received".into(),
        },
    ));
    v.push(("BCC".into(), bcc_line(r)));
    v.push((
        "received".into(),
        format!("{} bytes, ended: {:?}", r.received_bytes, r.receive_end),
    ));
    v.push((
        "verdict".into(),
        if r.valid {
            "valid".into()
        } else if r.received_bytes == 0 {
            "no answer".into()
        } else if r.readable {
            "readable but not valid".into()
        } else {
            "invalid".into()
        },
    ));
    v
}

fn print(r: &Report, format: OutputFormat) -> anyhow::Result<()> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match format {
        OutputFormat::Json => {
            serde_json::to_writer_pretty(&mut out, r)?;
            writeln!(out)?;
        }
        OutputFormat::Csv => {
            let mut w = csv::Writer::from_writer(&mut out);
            w.write_record(["address", "value", "unit", "meaning"])?;
            for row in &r.data_sets {
                w.write_record([
                    row.address.as_str(),
                    row.value.as_str(),
                    row.unit.as_deref().unwrap_or(""),
                    row.meaning.unwrap_or(""),
                ])?;
            }
            w.flush()?;
            let mut err = std::io::stderr().lock();
            for (k, v) in summary_lines(r) {
                writeln!(err, "{k:<15} {v}")?;
            }
            print_findings(&mut err, r)?;
        }
        OutputFormat::Table => {
            let lines = summary_lines(r);
            for (k, v) in &lines[..4] {
                writeln!(out, "{k:<15} {v}")?;
            }
            writeln!(out)?;
            let aw = r
                .data_sets
                .iter()
                .map(|d| d.address.len())
                .max()
                .unwrap_or(0)
                .max(7);
            let vw = r
                .data_sets
                .iter()
                .map(|d| d.value.len())
                .max()
                .unwrap_or(0)
                .max(5);
            writeln!(
                out,
                "{:<aw$}  {:>vw$}  {:<6}  meaning",
                "address", "value", "unit"
            )?;
            for d in &r.data_sets {
                writeln!(
                    out,
                    "{:<aw$}  {:>vw$}  {:<6}  {}",
                    d.address,
                    d.value,
                    d.unit.as_deref().unwrap_or(""),
                    d.meaning.unwrap_or("(not in the 351 readout)")
                )?;
            }
            writeln!(out)?;
            for (k, v) in &lines[4..] {
                writeln!(out, "{k:<15} {v}")?;
            }
            print_findings(&mut out, r)?;
        }
    }
    Ok(())
}

fn print_findings(out: &mut impl Write, r: &Report) -> std::io::Result<()> {
    if r.findings.is_empty() {
        return writeln!(out, "{:<15} none", "findings");
    }
    writeln!(out, "findings")?;
    for f in &r.findings {
        writeln!(
            out,
            "  @{:<5} {:<9} {:<18} {}",
            f.offset,
            format!("{:?}", f.severity).to_lowercase(),
            f.kind.name(),
            f.message
        )?;
    }
    Ok(())
}
