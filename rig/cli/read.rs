//! `rig read`: one readout (mode A, or mode C with `--mode auto|c`) over a serial port or pty, printed as a table, JSON or CSV.
//!
//! One exchange (`meter_rig::suite::exchange`, the same as `rig run` and `rig serve` use): sends
//! the request, listens while the meter keeps sending within the inter-character limit until the
//! BCC, and reports the identification, the data sets with their meaning, the BCC, the response
//! time (end of the request's stop bit → start of the identification's `/`, on the serial-only
//! contract with its uncertainty), every finding, and the judgement under the profile's rules
//! (`--meter`, default the 351 Combi). Exit 0 when the exchange conforms, 1 when it does not or
//! cannot be decided (a missing answer, an invalid telegram, a late answer, a receive the rig's own
//! limit ended), 2 on setup errors (the port missing, not permitted, busy: the message names the
//! port and the fix).

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use meter_rig::iec62056::decoder;
use meter_rig::iec62056::exchange::{
    AnswerEnd, AnswerRules, BaudSwitch, Conformance, Exchange, Listening, ReadMode,
};
use meter_rig::iec62056::{BccRule, Identification, Request};
use meter_rig::meter::readout;
use meter_rig::serial::{Framing, PortKind, SerialOptions, SerialTarget};
use meter_rig::suite;
use meter_rig::target::Target;
use meter_rig::time::TimeSource;
use meter_rig::uart::RxChar;

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
    /// The rig's limit for the whole answer, ms from the end of the request (default: long
    /// enough for every conforming answer: twice the 351's 359 characters, each followed by the
    /// 1500 ms the standard allows between characters). A receive this limit ends is reported
    /// as undecided, never as the meter's fault.
    #[arg(long, visible_alias = "answer-limit-ms")]
    pub timeout_ms: Option<u64>,
    /// The BCC rule to check (default: the profile's; the other is reported when it matches
    /// instead).
    #[arg(long)]
    pub bcc: Option<BccRule>,
    /// Meter file whose profile gives the rules the answer is judged by (response window, BCC
    /// rule); default: the 351 Combi's.
    #[arg(long)]
    pub meter: Option<PathBuf>,
    /// Overrides the port kind detected from the path (sets the timing uncertainty).
    #[arg(long, value_enum)]
    pub port_kind: Option<PortKind>,
    /// Protocol mode: `auto` (the identification's baud character decides), `a` (never
    /// acknowledge) or `c` (acknowledge a mode C identification with ACK 0 Z 0 and read the data
    /// message at the rate it announces, IEC 62056-21 §6.4.4). Default: the meter file's, as
    /// `rig run` and `rig serve` read it (`auto` for an optical port, `a` for the module
    /// interface), so the three judge one readout alike.
    #[arg(long)]
    pub mode: Option<ReadMode>,
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
    /// The profile's window, ms.
    limit_ms: (f64, f64),
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
    receive_end: AnswerEnd,
    /// The mode asked for (`--mode`).
    mode: ReadMode,
    /// The mode the identification announces and what the rig did about it.
    protocol_mode: Option<String>,
    /// The mode C acknowledgement and switch, when there was one.
    switch: Option<BaudSwitch>,
    /// The judgement under the profile's rules: the same as `rig run` and `rig serve` give.
    conformance: Conformance,
    /// Each broken rule (or why the exchange is undecided).
    problems: Vec<String>,
    /// The strict decoder found nothing wrong with the telegram itself.
    valid: bool,
    readable: bool,
    complete: bool,
    /// When the characters say the meter sends at another rate than `--baud`: which rate, and
    /// why (their spacing, or framing errors).
    #[serde(skip_serializing_if = "Option::is_none")]
    rate_hint: Option<String>,
}

/// Common serial rates, for naming the rate the characters' spacing matches.
const RATES: [u32; 8] = [300, 600, 1200, 2400, 4800, 9600, 19200, 38400];

/// Which rate the meter likely sends at when it is not `baud`: from the median spacing of
/// back-to-back characters (a slower meter's characters come further apart than `baud`'s
/// character time), or from framing errors on most characters (a UART at the wrong rate).
/// `profile_baud` is what the meter's profile says. Pure.
fn rate_hint(chars: &[RxChar], baud: u32, profile_baud: u32) -> Option<String> {
    if chars.len() >= 4 && chars.iter().filter(|c| !c.stop_ok).count() * 2 >= chars.len() {
        let bad = chars.iter().filter(|c| !c.stop_ok).count();
        let try_rate = if profile_baud == baud {
            "300, 2400 or 9600".to_string()
        } else {
            profile_baud.to_string()
        };
        return Some(format!(
            "{bad} of {} characters had a framing error at {baud} baud: the meter likely sends \
             at another rate (its profile says {profile_baud}); try --baud {try_rate}",
            chars.len()
        ));
    }
    if chars.len() < 8 {
        return None;
    }
    let mut gaps: Vec<u64> = chars
        .windows(2)
        .map(|w| w[1].end.0.saturating_sub(w[0].end.0))
        .collect();
    gaps.sort_unstable();
    let median = gaps[gaps.len() / 2];
    let own = meter_rig::serial::char_ns(baud);
    if median < own * 3 / 2 {
        return None;
    }
    let implied = 10e9 / median as f64;
    let likely = RATES.into_iter().min_by(|a, b| {
        (f64::from(*a) - implied)
            .abs()
            .total_cmp(&(f64::from(*b) - implied).abs())
    })?;
    (likely != baud && (f64::from(likely) - implied).abs() < 0.1 * f64::from(likely)).then(|| {
        format!(
            "the characters came {:.1} ms apart, the character time of {likely} baud, not \
             {baud}: the meter likely sends at {likely} baud (try --baud {likely})",
            median as f64 / 1e6
        )
    })
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
    let spec = super::meter_spec(args.meter.as_deref(), Some(args.baud))?;
    let mut target = SerialTarget::open(
        &args.port,
        SerialOptions {
            baud: args.baud,
            framing: args.framing,
            kind: args.port_kind,
        },
    )?;
    let caps = target.capabilities();
    let mut rules = AnswerRules::from_profile(spec.profile);
    rules.bcc_rule = args.bcc.unwrap_or(rules.bcc_rule);
    let mut listen = Listening::conforming(&rules, target.char_ns(), caps.data_uncertainty_ns);
    if let Some(ms) = args.timeout_ms {
        listen = listen.with_total(Duration::from_millis(ms));
    }
    let mode = args.mode.unwrap_or_else(|| spec.read_mode());
    let ex = suite::exchange_in(&mut target, &request, &rules, &listen, mode, args.baud)?;
    let report = build_report(&args, mode, &ex, &rules, spec.profile.baud);
    print(&report, args.format)?;
    Ok(ExitCode::from(
        if report.conformance == Conformance::Conforms {
            0
        } else {
            1
        },
    ))
}

fn build_report(
    args: &ReadArgs,
    mode: ReadMode,
    ex: &Exchange,
    rules: &AnswerRules,
    profile_baud: u32,
) -> Report {
    let d = &ex.tolerant;
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
    let a = ex.assess(rules);
    let response_time = a.response_ms.map(|ms| ResponseTime {
        ms,
        source: ex.response_source(),
        uncertainty_ms: ex.response_uncertainty_ms(),
        limit_ms: (rules.response_min_ms, rules.response_max_ms),
    });
    Report {
        port: args.port.display().to_string(),
        baud: args.baud,
        framing: args.framing,
        request: ex.request.clone(),
        identification: d.identification.clone(),
        data_sets,
        bcc: ex.strict.bcc,
        response_time,
        findings: ex.strict.findings.clone(),
        received_bytes: ex.chars.len(),
        receive_end: ex.end,
        mode,
        protocol_mode: ex.mode_finding(),
        switch: ex.switch.clone(),
        conformance: a.conformance,
        problems: a.problems,
        valid: ex.strict.valid,
        readable: d.readable,
        complete: d.complete,
        // after a mode C switch the characters come at the announced rate, not at --baud
        rate_hint: ex
            .switch
            .is_none()
            .then(|| rate_hint(&ex.chars, args.baud, profile_baud))
            .flatten(),
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
                "{:.1} ms ± {:.1} ms (limit {}–{} ms; source {}; end of request stop bit → start of '/')",
                t.ms, t.uncertainty_ms, t.limit_ms.0, t.limit_ms.1, t.source
            ),
            None => "no '/' received".into(),
        },
    ));
    v.push(("BCC".into(), bcc_line(r)));
    v.push((
        "mode".into(),
        r.protocol_mode
            .clone()
            .unwrap_or_else(|| "protocol mode A".into()),
    ));
    v.push((
        "received".into(),
        format!("{} bytes, {}", r.received_bytes, r.receive_end),
    ));
    if let Some(h) = &r.rate_hint {
        v.push(("hint".into(), h.clone()));
    }
    v.push((
        "verdict".into(),
        match r.conformance {
            Conformance::Conforms => "conforms".into(),
            Conformance::Violates => format!("does not conform: {}", r.problems.join("; ")),
            Conformance::Undecided => r.problems.join("; "),
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

#[cfg(test)]
mod tests {
    use super::*;
    use meter_rig::time::Timestamp;

    /// Characters `gap_ns` apart, with the stop bit `ok` or not.
    fn chars(n: u64, gap_ns: u64, ok: bool) -> Vec<RxChar> {
        (1..=n)
            .map(|i| RxChar {
                byte: b'0',
                start: Timestamp(i * gap_ns - 1_000),
                end: Timestamp(i * gap_ns),
                stop_ok: ok,
                bit_ns: None,
            })
            .collect()
    }

    #[test]
    fn a_wrong_rate_is_named() {
        // 300 baud characters (33.3 ms) read at 9600
        let h = rate_hint(&chars(20, 33_333_333, true), 9600, 300).unwrap();
        assert!(
            h.contains("likely sends at 300 baud (try --baud 300)"),
            "{h}"
        );
        // framing errors on every character
        let h = rate_hint(&chars(20, 1_041_667, false), 9600, 300).unwrap();
        assert!(
            h.contains("20 of 20 characters had a framing error at 9600 baud"),
            "{h}"
        );
        assert!(h.contains("try --baud 300"), "{h}");
        // the right rate: no hint
        assert_eq!(rate_hint(&chars(20, 33_333_333, true), 300, 300), None);
        assert_eq!(rate_hint(&chars(20, 1_041_667, true), 9600, 300), None);
    }
}
