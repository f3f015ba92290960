//! Run records: `record.json` (authoritative), `junit.xml` (for CI) and `measurements.csv` (for
//! spreadsheets), written incrementally.
//!
//! After every case the JSON and XML files are rewritten whole through a temporary file and an
//! atomic rename, and the case's CSV rows are appended and flushed, so a run killed half-way
//! leaves valid records of every case that finished. Records never decide the exit code; the
//! caller does (NOTES §5).

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde::Serialize;

use crate::meter::calendar;
use crate::suite::{fmt_num, CaseResult, CaseSink, Verdict};

/// A UTC wall-clock time as RFC 3339 (records only; no measurement uses it).
pub fn utc_now() -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    let secs = now.as_secs() as i64;
    let (y, m, d) = calendar::civil_from_days(secs.div_euclid(86_400));
    let s = secs.rem_euclid(86_400);
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:03}Z",
        s / 3600,
        s / 60 % 60,
        s % 60,
        now.subsec_millis()
    )
}

/// Counts of verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Summary {
    /// Passed.
    pub pass: usize,
    /// Failed.
    pub fail: usize,
    /// Skipped.
    pub skip: usize,
    /// Inconclusive: the observation could not decide.
    pub inconclusive: usize,
    /// Errors.
    pub error: usize,
}

impl Summary {
    /// Summary of `cases`.
    pub fn of(cases: &[CaseResult]) -> Summary {
        let mut s = Summary::default();
        for c in cases {
            match c.verdict {
                Verdict::Pass => s.pass += 1,
                Verdict::Fail => s.fail += 1,
                Verdict::Skip => s.skip += 1,
                Verdict::Inconclusive => s.inconclusive += 1,
                Verdict::Error => s.error += 1,
            }
        }
        s
    }

    /// Whether the run did not pass: a failure, an inconclusive case or an error (exit 1).
    pub fn not_passed(&self) -> bool {
        self.fail + self.inconclusive + self.error > 0
    }
}

/// The authoritative record of a run.
#[derive(Debug, Clone, Serialize)]
pub struct Record {
    /// Format version of this record.
    pub record_version: u32,
    /// rig version.
    pub rig_version: String,
    /// Target description.
    pub target: String,
    /// What the target can do and how well it times.
    pub capabilities: crate::target::Capabilities,
    /// Meter profile and configuration (the meter file, resolved).
    pub meter: serde_json::Value,
    /// Wall-clock start (UTC).
    pub started: String,
    /// Wall-clock end (UTC), set when the run finished.
    pub ended: Option<String>,
    /// Whether the run finished (false while running or when interrupted).
    pub complete: bool,
    /// Why the run ended early, if it did.
    pub aborted: Option<String>,
    /// Simulated (virtual) or target time covered, seconds.
    pub target_time_s: f64,
    /// Wall time of the run so far, seconds.
    pub wall_time_s: f64,
    /// Verdict counts.
    pub summary: Summary,
    /// Cases in run order.
    pub cases: Vec<CaseResult>,
}

impl Record {
    /// A record for a run that starts now against `target`, testing a meter described by `meter`.
    pub fn start(
        target: String,
        capabilities: crate::target::Capabilities,
        meter: serde_json::Value,
    ) -> Record {
        Record {
            record_version: 1,
            rig_version: env!("CARGO_PKG_VERSION").into(),
            target,
            capabilities,
            meter,
            started: utc_now(),
            ended: None,
            complete: false,
            aborted: None,
            target_time_s: 0.0,
            wall_time_s: 0.0,
            summary: Summary::default(),
            cases: vec![],
        }
    }
}

/// Writes the three records into a directory as cases finish.
#[derive(Debug)]
pub struct Reporter {
    dir: PathBuf,
    record: Record,
    csv: csv::Writer<File>,
    started: std::time::Instant,
    progress: bool,
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so a reader (or a
/// restart after a kill) sees the old file or the new one, never half of one.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_data()?;
    }
    fs::rename(&tmp, path)
}

impl Reporter {
    /// Creates `dir` (and parents) and starts the records; `progress` prints a line per case to
    /// stderr.
    pub fn create(dir: &Path, record: Record, progress: bool) -> io::Result<Reporter> {
        fs::create_dir_all(dir)?;
        let mut csv = csv::Writer::from_writer(File::create(dir.join("measurements.csv"))?);
        csv.write_record([
            "case",
            "suite",
            "case_verdict",
            "measurement",
            "value",
            "unit",
            "low",
            "high",
            "source",
            "uncertainty",
            "verdict",
            "marginal",
            "clause",
        ])?;
        csv.flush()?;
        let r = Reporter {
            dir: dir.to_path_buf(),
            record,
            csv,
            started: std::time::Instant::now(),
            progress,
        };
        r.flush_documents()?;
        Ok(r)
    }

    /// The record so far.
    pub fn record(&self) -> &Record {
        &self.record
    }

    fn flush_documents(&self) -> io::Result<()> {
        let json = serde_json::to_vec_pretty(&self.record).map_err(io::Error::other)?;
        write_atomic(&self.dir.join("record.json"), &json)?;
        let xml = junit(&self.record).map_err(|e| io::Error::other(e.to_string()))?;
        write_atomic(&self.dir.join("junit.xml"), xml.as_bytes())
    }

    /// Marks the run finished (or aborted) and writes the final records.
    pub fn finish(&mut self, target_time_s: f64, aborted: Option<String>) -> io::Result<()> {
        self.record.ended = Some(utc_now());
        self.record.complete = aborted.is_none();
        self.record.aborted = aborted;
        self.record.target_time_s = target_time_s;
        self.record.wall_time_s = self.started.elapsed().as_secs_f64();
        self.csv.flush()?;
        self.flush_documents()
    }
}

impl CaseSink for Reporter {
    fn case_started(&mut self, id: &str) {
        if self.progress {
            eprint!("  {id:<26} … ");
            let _ = io::stderr().flush();
        }
    }

    fn case_done(&mut self, case: &CaseResult) -> io::Result<()> {
        if self.progress {
            eprintln!("{} ({:.1} s)", case.verdict, case.wall_time_s);
        }
        for m in &case.measurements {
            self.csv.write_record([
                case.id.clone(),
                case.suite.clone(),
                case.verdict.to_string(),
                m.name.clone(),
                m.value.to_string(),
                m.unit.clone(),
                m.low.map(|x| x.to_string()).unwrap_or_default(),
                m.high.map(|x| x.to_string()).unwrap_or_default(),
                m.source.to_string(),
                m.uncertainty.to_string(),
                m.verdict.to_string(),
                m.marginal.to_string(),
                case.clause.to_string(),
            ])?;
        }
        self.csv.flush()?;
        self.record.cases.push(case.clone());
        self.record.summary = Summary::of(&self.record.cases);
        self.record.target_time_s = case.target_time_s.1;
        self.record.wall_time_s = self.started.elapsed().as_secs_f64();
        self.flush_documents()
    }
}

/// The JUnit view of a record: one testcase per case (classname = suite, name = case id);
/// failures whose text names value, limit and clause; measurements as properties and again as
/// `key=value` lines in system-out (GitLab ignores properties, NOTES §5); skips as skipped.
pub fn junit(r: &Record) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("meter-rig");
    let mut suites: Vec<TestSuite> = Vec::new();
    for c in &r.cases {
        if !suites.iter().any(|s| s.name.as_str() == c.suite) {
            let mut s = TestSuite::new(c.suite.clone());
            s.add_property(Property::new("target", r.target.clone()));
            suites.push(s);
        }
        let status = match c.verdict {
            Verdict::Pass => TestCaseStatus::success(),
            Verdict::Skip => {
                let mut s = TestCaseStatus::skipped();
                s.set_message(c.message.clone());
                s
            }
            Verdict::Fail | Verdict::Error | Verdict::Inconclusive => {
                let kind = if c.verdict == Verdict::Fail {
                    NonSuccessKind::Failure
                } else {
                    NonSuccessKind::Error
                };
                let mut s = TestCaseStatus::non_success(kind);
                // JUnit has no "inconclusive": an error whose type and message say so
                if c.verdict == Verdict::Inconclusive {
                    s.set_type("inconclusive");
                    s.set_message(format!("inconclusive: {}", c.message));
                } else {
                    s.set_message(c.message.clone());
                }
                let mut text = format!("{}\nclause: {}\n", c.message, c.clause);
                for m in c.measurements.iter().filter(|m| m.verdict == Verdict::Fail) {
                    text.push_str(&format!(
                        "{} = {} {} (limit {}; source {}, ±{} {})\n",
                        m.name,
                        fmt_num(m.value),
                        m.unit,
                        m.limit_text(),
                        m.source,
                        fmt_num(m.uncertainty),
                        m.unit
                    ));
                }
                for d in &c.details {
                    text.push_str(d);
                    text.push('\n');
                }
                s.set_description(text);
                s
            }
        };
        let mut tc = TestCase::new(c.id.clone(), status);
        tc.set_classname(c.suite.clone());
        tc.set_time(Duration::from_secs_f64(c.wall_time_s.max(0.0)));
        // properties live on the testsuite, keyed by case id (the common schema has none on a
        // testcase; Jenkins reads them there); system-out repeats them for GitLab (NOTES §5)
        let mut props = vec![
            Property::new(format!("{}.clause", c.id), c.clause.to_string()),
            Property::new(format!("{}.verdict", c.id), c.verdict.to_string()),
        ];
        let mut out = format!("clause={}\nverdict={}\n", c.clause, c.verdict);
        for m in &c.measurements {
            props.push(Property::new(
                format!("{}.{}", c.id, m.name),
                format!("{} {}", m.value, m.unit),
            ));
            props.push(Property::new(
                format!("{}.{}.limit", c.id, m.name),
                m.limit_text(),
            ));
            out.push_str(&format!(
                "{}={} {} low={} high={} source={} uncertainty={} verdict={}\n",
                m.name,
                m.value,
                m.unit,
                m.low.map(|x| x.to_string()).unwrap_or_default(),
                m.high.map(|x| x.to_string()).unwrap_or_default(),
                m.source,
                m.uncertainty,
                m.verdict
            ));
        }
        for d in c.details.iter().take(50) {
            out.push_str(&format!("detail={d}\n"));
        }
        tc.set_system_out(out);
        let suite = suites
            .iter_mut()
            .find(|s| s.name.as_str() == c.suite)
            .expect("suite added above");
        suite.add_properties(props);
        suite.add_test_case(tc);
    }
    report.add_test_suites(suites);
    // quick-junit always writes testsuite@disabled, which the common schema does not declare
    Ok(strip_attr(&report.to_string()?, "disabled"))
}

/// Removes every ` NAME="…"` attribute from serialised XML (attribute values never contain a raw
/// quote, so the next `"` closes it).
fn strip_attr(xml: &str, name: &str) -> String {
    let pat = format!(" {name}=\"");
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(i) = rest.find(&pat) {
        out.push_str(&rest[..i]);
        let after = &rest[i + pat.len()..];
        rest = after.find('"').map_or("", |j| &after[j + 1..]);
    }
    out.push_str(rest);
    out
}

/// A plain-text summary table of cases.
pub fn summary_table(cases: &[CaseResult]) -> String {
    let mut s = String::new();
    let w = cases.iter().map(|c| c.id.len()).max().unwrap_or(10).max(10);
    s.push_str(&format!(
        "{:<w$}  {:<7} {}\n",
        "case", "verdict", "measured / reason"
    ));
    for c in cases {
        let mut msg = c.message.clone();
        if msg.chars().count() > 110 {
            msg = msg.chars().take(107).collect::<String>() + "…";
        }
        s.push_str(&format!(
            "{:<w$}  {:<7} {}\n",
            c.id,
            c.verdict.to_string().to_uppercase(),
            msg
        ));
    }
    s
}
