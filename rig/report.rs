//! Run records: `record.json` (authoritative), `junit.xml` (for CI) and `measurements.csv` (for
//! spreadsheets), written as cases finish, so that the three never lie about a run.
//!
//! **One snapshot, three files.** After every case the [`Reporter`] renders all three files from
//! one [`Record`] (the same cases, the same `run_id`, the same `snapshot` number). The three
//! temporary files are written and fsynced first, then renamed back to back in the order
//! `record.json`, `measurements.csv`, `junit.xml` (the directory is fsynced once, when a run
//! starts, not per snapshot). Linux has no
//! rename of three files at once, so a kill between two of those renames leaves the files one
//! snapshot apart; the order makes that readable: `record.json` is never behind, `junit.xml` is
//! never ahead, and each carries the run id and the snapshot number (JUnit as testsuite
//! properties `run.id`/`run.snapshot`/`run.state`, the CSV as columns `run`/`snapshot`). A
//! completed snapshot write leaves all three equal. The kill test in `tests/integration/run.rs`
//! kills `rig run` at 30 instants and checks exactly this.
//!
//! **A reused directory never mixes two runs.** [`Reporter::create`] takes an exclusive lock on
//! `DIR/.lock` (flock, holding the writer's pid) for the reporter's lifetime, so two runs cannot
//! write one directory; then it removes stale temporary files and the previous run's files,
//! `junit.xml` first and `record.json` last (so whatever a kill leaves belongs to one run and
//! `record.json` is present whenever another file is), and only then writes the new run's
//! first snapshot. (A fresh subdirectory per run flipped by a symlink would make the three files
//! change together, but `out/junit.xml` would then be a symlink, which not every CI artifact
//! upload follows.)
//!
//! **The state is in the record.** `state` is `running` while cases are recorded, `complete` or
//! `stopped` (ended early, `aborted` says why) at the end. A killed writer cannot say so itself:
//! a record whose state is `running` while no process holds `DIR/.lock` is `interrupted`, which
//! [`read_record`] reports and [`close_interrupted`] writes into all three files. Every case the
//! run selected but did not record (still to come, or never run because the run ended) is in
//! `junit.xml` as an error `not run: …` with the reason, and in the CSV with the verdict
//! `not_run`, so a short run is never green.
//!
//! **Observers.** The [`Reporter`] and the [`Progress`] lines are observers of the run session's
//! event stream ([`crate::suite::session`]): the reporter writes a snapshot on each `CaseDone`
//! and the final one on `RunEnded` (with the typed outcome in the record). The three files stay
//! one observer, because they must be rendered from one snapshot.
//!
//! This module renders, writes and reads records; it never decides the exit code (the caller
//! does, NOTES §5), never runs cases and never changes a verdict.

use std::collections::BTreeSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use quick_junit::{NonSuccessKind, Property, Report, TestCase, TestCaseStatus, TestSuite};
use serde::{Deserialize, Serialize};

use crate::evidence::{Attachment, Inbox, Series, SeriesCollector};
use crate::meter::calendar;
use crate::meter::profile::Clause;
use crate::suite::{
    self, fmt_num, CaseResult, Event, Measurement, Observer, ObserverError, Outcome, RunOptions,
    Verdict,
};
use crate::target::Capabilities;
use crate::time::TimeSource;

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

/// Errors writing or reading records. They name the file and the call that failed.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The records or data path is a file.
    #[error("{path} exists and is not a directory: choose another --out (a directory, or a path that does not exist yet)")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A file operation failed (the OS error is in the message, once).
    #[error("{path}: {call} failed: {os}")]
    Io {
        /// The file or directory.
        path: String,
        /// The operation.
        call: &'static str,
        /// What the OS said.
        os: io::Error,
    },
    /// The records directory could not be locked (another process writes there, or the lock
    /// file cannot be opened).
    #[error("cannot lock records directory {dir}: {source}; one run at a time writes a directory (wait for the other or choose another --out)")]
    Lock {
        /// The directory.
        dir: String,
        /// Why the lock was not taken.
        source: LockError,
    },
    /// A record could not be rendered as JSON, CSV or JUnit.
    #[error("rendering {file} failed: {source}")]
    Render {
        /// Which file.
        file: &'static str,
        /// The serialiser's error.
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// `record.json` is not a record.
    #[error("{path}: not a meter-rig record: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The parse error.
        source: serde_json::Error,
    },
}

fn io_err<'a>(path: &'a Path, call: &'static str) -> impl FnOnce(io::Error) -> RecordError + 'a {
    move |os| RecordError::Io {
        path: path.display().to_string(),
        call,
        os,
    }
}

fn render_err<E: std::error::Error + Send + Sync + 'static>(
    file: &'static str,
) -> impl FnOnce(E) -> RecordError {
    move |e| RecordError::Render {
        file,
        source: Box::new(e),
    }
}

/// Errors taking a [`PidLock`].
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Opening or locking the lock file failed.
    #[error("{path}: {call} failed: {source}")]
    Io {
        /// The lock file.
        path: String,
        /// The operation.
        call: &'static str,
        /// What the OS said.
        source: io::Error,
    },
    /// Another process holds the lock.
    #[error("{path} is held by {holder} (the directory is in use)")]
    Held {
        /// The lock file.
        path: String,
        /// `pid N` as the holder wrote it, or why that is unknown.
        holder: String,
    },
}

/// An exclusive advisory lock (`flock`) on a file that holds the owner's pid. The kernel
/// releases it when the lock is dropped or the process dies, kill -9 included.
#[derive(Debug)]
pub struct PidLock {
    _file: File,
}

impl PidLock {
    /// Takes the lock on `path` (creating the file) without waiting, and writes this process's
    /// pid into it; fails with [`LockError::Held`] naming the holder's pid when it is taken.
    pub fn acquire(path: &Path) -> Result<PidLock, LockError> {
        let err = |call| {
            move |e: io::Error| LockError::Io {
                path: path.display().to_string(),
                call,
                source: e,
            }
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(err("open"))?;
        match rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockExclusive) {
            Ok(()) => {}
            Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
                let mut text = String::new();
                let _ = file.read_to_string(&mut text);
                let holder = match text.trim().parse::<u32>() {
                    Ok(pid) => format!("pid {pid}"),
                    Err(_) => "another process (its pid is not written yet)".into(),
                };
                return Err(LockError::Held {
                    path: path.display().to_string(),
                    holder,
                });
            }
            Err(e) => return Err(err("flock")(e.into())),
        }
        file.set_len(0).map_err(err("truncate"))?;
        writeln!(file, "{}", std::process::id()).map_err(err("write pid"))?;
        file.sync_data().map_err(err("fsync"))?;
        Ok(PidLock { _file: file })
    }

    /// Whether some process holds the lock on `path` (false when the file does not exist).
    pub fn is_held(path: &Path) -> bool {
        let Ok(file) = File::open(path) else {
            return false;
        };
        rustix::fs::flock(&file, rustix::fs::FlockOperation::NonBlockingLockShared).is_err()
    }
}

/// Serde for numbers that may be NaN (a target clock that could not be read): JSON has no NaN,
/// so it is written as `null` and read back as NaN.
mod num_or_null {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
        if x.is_finite() {
            s.serialize_f64(*x)
        } else {
            s.serialize_none()
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<f64, D::Error> {
        Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
    }

    /// The same for a pair.
    pub mod pair {
        use serde::{Deserialize, Deserializer, Serialize, Serializer};

        #[derive(Serialize, Deserialize)]
        struct N(#[serde(with = "super")] f64);

        pub fn serialize<S: Serializer>(x: &(f64, f64), s: S) -> Result<S::Ok, S::Error> {
            (N(x.0), N(x.1)).serialize(s)
        }

        pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<(f64, f64), D::Error> {
            let (a, b) = <(N, N)>::deserialize(d)?;
            Ok((a.0, b.0))
        }
    }
}

/// The record's view of [`Verdict`] (the suite's type serialises only). A new verdict makes this
/// fail to compile until it is listed here, so records never drop one.
#[derive(Serialize, Deserialize)]
#[serde(remote = "Verdict", rename_all = "lowercase")]
enum VerdictDef {
    Pass,
    Fail,
    Skip,
    Inconclusive,
    Error,
}

/// The record's view of [`Measurement`].
#[derive(Serialize, Deserialize)]
#[serde(remote = "Measurement")]
struct MeasurementDef {
    name: String,
    /// `null`: a declared measurement its case did not take (it errored).
    value: Option<f64>,
    unit: String,
    low: Option<f64>,
    high: Option<f64>,
    source: TimeSource,
    #[serde(with = "num_or_null")]
    uncertainty: f64,
    #[serde(with = "VerdictDef")]
    verdict: Verdict,
    marginal: bool,
}

/// Serde for `Vec<Measurement>` through [`MeasurementDef`].
mod measurements {
    use super::{Measurement, MeasurementDef};
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Serialize, Deserialize)]
    struct M(#[serde(with = "MeasurementDef")] Measurement);

    pub fn serialize<S: Serializer>(v: &[Measurement], s: S) -> Result<S::Ok, S::Error> {
        s.collect_seq(v.iter().map(|m| M(m.clone())))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Measurement>, D::Error> {
        Ok(Vec::<M>::deserialize(d)?.into_iter().map(|m| m.0).collect())
    }
}

/// The record's view of [`Capabilities`].
#[derive(Serialize, Deserialize)]
#[serde(remote = "Capabilities")]
struct CapabilitiesDef {
    data_timing: TimeSource,
    data_uncertainty_ns: u64,
    pins: bool,
    pin_uncertainty_ns: u64,
    parity_checked: bool,
    virtual_time: bool,
}

/// Counts of verdicts.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
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
        Summary::of_verdicts(cases.iter().map(|c| c.verdict))
    }

    /// Summary of a list of verdicts.
    pub fn of_verdicts(verdicts: impl IntoIterator<Item = Verdict>) -> Summary {
        let mut s = Summary::default();
        for v in verdicts {
            // every verdict has its own count: a new one needs a field here
            *match v {
                Verdict::Pass => &mut s.pass,
                Verdict::Fail => &mut s.fail,
                Verdict::Skip => &mut s.skip,
                Verdict::Inconclusive => &mut s.inconclusive,
                Verdict::Error => &mut s.error,
            } += 1;
        }
        s
    }

    /// Whether the run did not pass: a failure, an inconclusive case or an error (exit 1).
    pub fn not_passed(&self) -> bool {
        self.fail + self.inconclusive + self.error > 0
    }
}

/// Where a run stands. A record is written `running`; see the module doc for `interrupted`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// Cases are being recorded (or the writer was killed: [`read_record`] tells).
    #[default]
    Running,
    /// Every selected case was recorded and the run ended normally.
    Complete,
    /// The run ended early on purpose or on a device loss; `aborted` says why.
    Stopped,
    /// The writing process died before the run ended.
    Interrupted,
}

impl std::fmt::Display for RunState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            RunState::Running => "running",
            RunState::Complete => "complete",
            RunState::Stopped => "stopped",
            RunState::Interrupted => "interrupted",
        })
    }
}

/// A case the run selected, recorded or not.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedCase {
    /// Case id.
    pub id: String,
    /// Suite name.
    pub suite: String,
    /// What the case checks.
    pub title: String,
    /// The measurements it declares, with the limits the meter resolves (empty when the writer
    /// did not say): a case not run lists them with the value unset.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub measures: Vec<PlannedMeasure>,
}

/// A measurement a planned case declares ([`suite::Declared`], owned).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlannedMeasure {
    /// Name (`*` stands for a port number or a register address).
    pub name: String,
    /// Unit.
    pub unit: String,
    /// Lower limit, inclusive.
    pub low: Option<f64>,
    /// Upper limit, inclusive.
    pub high: Option<f64>,
}

/// The cases `opts` selects, in run order (the selection `suite::run` makes), with the
/// measurements each declares for `spec` when it is given.
pub fn planned_cases(
    opts: &RunOptions,
    spec: Option<&crate::meter::config::MeterSpec>,
) -> Vec<PlannedCase> {
    suite::selected(opts)
        .into_iter()
        .map(|c| PlannedCase {
            id: c.id.into(),
            suite: c.suite.into(),
            title: c.title.into(),
            measures: spec.map_or_else(Vec::new, |s| {
                (c.measures)(s)
                    .into_iter()
                    .map(|d| PlannedMeasure {
                        name: d.name.into(),
                        unit: d.unit.as_str().into(),
                        low: d.low,
                        high: d.high,
                    })
                    .collect()
            }),
        })
        .collect()
}

/// A clause as recorded (owned, so records can be read back).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedClause {
    /// File name of the source document.
    pub source: String,
    /// Section, table or sentence in it.
    pub section: String,
}

impl std::fmt::Display for RecordedClause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} §{}", self.source, self.section)
    }
}

impl From<Clause> for RecordedClause {
    fn from(c: Clause) -> Self {
        RecordedClause {
            source: c.source.into(),
            section: c.section.into(),
        }
    }
}

/// One case as recorded: [`CaseResult`] with owned fields, written and read back the same way.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RecordedCase {
    /// Case id.
    pub id: String,
    /// Suite name.
    pub suite: String,
    /// What the case checks.
    pub title: String,
    /// The clause it checks.
    pub clause: RecordedClause,
    /// Verdict.
    #[serde(with = "VerdictDef")]
    pub verdict: Verdict,
    /// Why it failed, was skipped or errored; what was seen when it passed.
    pub message: String,
    /// Measurements.
    #[serde(with = "measurements")]
    pub measurements: Vec<Measurement>,
    /// Details.
    pub details: Vec<String>,
    /// Target time at start and end, seconds (`null`: the clock could not be read).
    #[serde(with = "num_or_null::pair")]
    pub target_time_s: (f64, f64),
    /// Wall time the case took, seconds.
    pub wall_time_s: f64,
    /// Files that go with the case (its waveform capture), relative to the run directory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// Observed values against their limits (every exchange's response time, every pulse
    /// width and pause), for the report's plots.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub series: Vec<Series>,
}

impl From<&CaseResult> for RecordedCase {
    fn from(c: &CaseResult) -> Self {
        RecordedCase {
            id: c.id.clone(),
            suite: c.suite.clone(),
            title: c.title.clone(),
            clause: c.clause.into(),
            verdict: c.verdict,
            message: c.message.clone(),
            measurements: c.measurements.clone(),
            details: c.details.clone(),
            target_time_s: c.target_time_s,
            wall_time_s: c.wall_time_s,
            attachments: vec![],
            series: vec![],
        }
    }
}

/// The authoritative record of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Format version of this record.
    pub record_version: u32,
    /// This run's id, also in every row of `measurements.csv` and in `junit.xml`.
    #[serde(default)] // absent in version 1 records
    pub run_id: String,
    /// Number of this snapshot of the run (1 when the run starts, +1 per case and at the end),
    /// also in the other two files.
    #[serde(default)] // absent in version 1 records
    pub snapshot: u64,
    /// Where the run stands.
    #[serde(default)] // absent in version 1 records
    pub state: RunState,
    /// Process that wrote the record.
    #[serde(default)] // absent in version 1 records
    pub writer_pid: u32,
    /// rig version.
    pub rig_version: String,
    /// Target description.
    pub target: String,
    /// What the target can do and how well it times.
    #[serde(with = "CapabilitiesDef")]
    pub capabilities: Capabilities,
    /// Meter profile and configuration (the meter file, resolved).
    pub meter: serde_json::Value,
    /// Wall-clock start (UTC).
    pub started: String,
    /// Wall-clock end (UTC), set when the run finished.
    pub ended: Option<String>,
    /// Whether the run finished with every selected case (`state` is `complete`).
    pub complete: bool,
    /// Why the run ended early, if it did (`state` is `stopped`).
    pub aborted: Option<String>,
    /// How the run ended, typed (`passed`, `failed`, `inconclusive`, `stopped` with the reason,
    /// `interrupted` with the reason); absent while it runs and in older records.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub outcome: Option<Outcome>,
    /// Simulated (virtual) or target time covered, seconds.
    #[serde(with = "num_or_null")]
    pub target_time_s: f64,
    /// Wall time of the run so far, seconds.
    pub wall_time_s: f64,
    /// Verdict counts of the recorded cases.
    pub summary: Summary,
    /// The cases the run selected, in run order (empty when the writer did not say).
    #[serde(default)]
    pub planned: Vec<PlannedCase>,
    /// Cases recorded, in run order.
    pub cases: Vec<RecordedCase>,
}

/// A run id unique on this machine: start time, pid and a per-process count.
fn new_run_id(started: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(1);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let compact: String = started.chars().filter(|c| *c != '-' && *c != ':').collect();
    format!("{compact}-{}-{n}", std::process::id())
}

impl Record {
    /// A record for a run that starts now against `target`, testing a meter described by `meter`.
    pub fn start(target: String, capabilities: Capabilities, meter: serde_json::Value) -> Record {
        let started = utc_now();
        Record {
            record_version: 2,
            run_id: new_run_id(&started),
            snapshot: 0,
            state: RunState::Running,
            writer_pid: std::process::id(),
            rig_version: env!("CARGO_PKG_VERSION").into(),
            target,
            capabilities,
            meter,
            started,
            ended: None,
            complete: false,
            aborted: None,
            outcome: None,
            target_time_s: 0.0,
            wall_time_s: 0.0,
            summary: Summary::default(),
            planned: vec![],
            cases: vec![],
        }
    }

    /// The same record, knowing which cases `opts` selects (so cases not run show as not run).
    pub fn with_plan(mut self, opts: &RunOptions) -> Record {
        self.planned = planned_cases(opts, None);
        self
    }

    /// [`Record::with_plan`], each planned case with the measurements it declares for `spec`.
    pub fn with_declared_plan(
        mut self,
        opts: &RunOptions,
        spec: &crate::meter::config::MeterSpec,
    ) -> Record {
        self.planned = planned_cases(opts, Some(spec));
        self
    }

    /// Selected cases not recorded, in run order.
    pub fn unrun(&self) -> impl Iterator<Item = &PlannedCase> {
        let done: BTreeSet<&str> = self.cases.iter().map(|c| c.id.as_str()).collect();
        self.planned
            .iter()
            .filter(move |p| !done.contains(p.id.as_str()))
    }

    /// Why the cases of [`Record::unrun`] were not run, from the run's state.
    pub fn not_run_reason(&self) -> String {
        match self.state {
            RunState::Running => format!(
                "not run: run {} had not reached this case when its records were written \
                 (state running; if no process holds the records' .lock, it was killed)",
                self.run_id
            ),
            RunState::Complete => "not run: the run ended without it".into(),
            RunState::Stopped => format!(
                "not run: the run stopped early: {}",
                self.aborted.as_deref().unwrap_or("no reason recorded")
            ),
            RunState::Interrupted => {
                "not run: the run was interrupted (its process died) before this case".into()
            }
        }
    }
}

/// Reads `DIR/record.json` back. A record written `running` whose writer no longer holds
/// `DIR/.lock` is returned as [`RunState::Interrupted`].
pub fn read_record(dir: &Path) -> Result<Record, RecordError> {
    let mut r = read_raw(dir)?;
    if r.state == RunState::Running && !PidLock::is_held(&dir.join(LOCK)) {
        r.state = RunState::Interrupted;
    }
    Ok(r)
}

const RECORD: &str = "record.json";
const CSV: &str = "measurements.csv";
const JUNIT: &str = "junit.xml";
const LOCK: &str = ".lock";

/// Renders `r` as the three files and replaces them in `dir` (see the module doc for the order).
fn write_three(dir: &Path, r: &Record) -> Result<(), RecordError> {
    let json = serde_json::to_vec_pretty(r).map_err(render_err(RECORD))?;
    let csv = measurements_csv(r).map_err(render_err(CSV))?;
    let xml = junit(r).map_err(render_err(JUNIT))?;
    // every temporary file written and fsynced first, then three renames back to back: a
    // kill can only fall between two renames for the time of a rename system call
    let files = [(RECORD, json), (CSV, csv), (JUNIT, xml.into_bytes())];
    for (name, bytes) in &files {
        let tmp = dir.join(name).with_extension("tmp");
        write_synced(&tmp, bytes).map_err(io_err(&tmp, "write and fsync"))?;
    }
    for (name, _) in &files {
        let p = dir.join(name);
        fs::rename(p.with_extension("tmp"), &p).map_err(io_err(&p, "rename"))?;
    }
    // no directory fsync per snapshot: the renames' order is what keeps the files consistent
    // after a kill, and it cost a quarter of the run's I/O time (17 fsyncs in the default run)
    Ok(())
}

/// Removes the three files' temporary files, then (with `files`) the files themselves, in the
/// order junit.xml, measurements.csv, record.json.
fn clear(dir: &Path, files: bool) -> Result<(), RecordError> {
    for name in [JUNIT, CSV, RECORD] {
        let p = dir.join(name);
        remove(&p.with_extension("tmp"))?;
        if files {
            remove(&p)?;
        }
    }
    sync_dir(dir)
}

/// `DIR/record.json` as written. A version 1 record (before `state`) gets its state from
/// `complete` and `aborted`.
fn read_raw(dir: &Path) -> Result<Record, RecordError> {
    let path = dir.join(RECORD);
    let bytes = fs::read(&path).map_err(io_err(&path, "read"))?;
    let mut r: Record = serde_json::from_slice(&bytes).map_err(|source| RecordError::Parse {
        path: path.display().to_string(),
        source,
    })?;
    if r.record_version < 2 {
        r.state = match (r.complete, &r.aborted) {
            (true, _) => RunState::Complete,
            (false, Some(_)) => RunState::Stopped,
            (false, None) => RunState::Interrupted,
        };
    }
    Ok(r)
}

/// Closes the records of a run whose writer died (`rig serve` does this at start for its runs):
/// under the directory's lock, a record still `running` becomes `interrupted` and all three files
/// are rewritten from it as the next snapshot, so they agree again and JUnit says why the cases
/// left were not run; stale temporary files go. Returns whether it closed a run. A directory
/// whose writer is alive, or without a record, is left alone.
pub fn close_interrupted(dir: &Path) -> Result<bool, RecordError> {
    let _lock = match PidLock::acquire(&dir.join(LOCK)) {
        Ok(l) => l,
        Err(LockError::Held { .. }) => return Ok(false),
        Err(source) => {
            return Err(RecordError::Lock {
                dir: dir.display().to_string(),
                source,
            })
        }
    };
    clear(dir, false)?;
    if !dir.join(RECORD).exists() {
        return Ok(false);
    }
    let mut r = read_raw(dir)?;
    if r.state != RunState::Running {
        return Ok(false);
    }
    r.state = RunState::Interrupted;
    r.snapshot += 1;
    write_three(dir, &r)?;
    Ok(true)
}

/// Closes the records of this process's own run when a signal stops it at once (the second
/// signal): the record becomes `stopped` with `aborted` saying why and the outcome `stopped` by
/// the signal, and all three files are rewritten as the next snapshot, so the cases left show as
/// not run. The caller holds the directory's lock (its [`Reporter`]); a record that is no longer
/// `running` is left alone. Returns whether it closed the run.
pub fn close_stopped_at_once(dir: &Path, signal: &str) -> Result<bool, RecordError> {
    if !dir.join(RECORD).exists() {
        return Ok(false);
    }
    let mut r = read_raw(dir)?;
    if r.state != RunState::Running {
        return Ok(false);
    }
    r.state = RunState::Stopped;
    r.ended = Some(utc_now());
    r.aborted = Some(format!(
        "stopped at once by a second signal ({signal}); the case in hand was not recorded"
    ));
    r.outcome = Some(Outcome::Stopped {
        reason: crate::suite::session::StopReason::Signal {
            signal: signal.to_string(),
        },
    });
    r.snapshot += 1;
    write_three(dir, &r)?;
    Ok(true)
}

/// Test-only: milliseconds to sleep before each case, so tests can kill a run between cases
/// at chosen instants. Never set it outside tests.
pub const TEST_CASE_DELAY_ENV: &str = "METER_RIG_TEST_CASE_DELAY_MS";

/// Writes the three records into a directory as cases finish.
#[derive(Debug)]
pub struct Reporter {
    dir: PathBuf,
    record: Record,
    started: std::time::Instant,
    test_case_delay: Option<Duration>,
    series: Option<SeriesCollector>,
    inbox: Option<Inbox>,
    _lock: PidLock,
}

/// Writes `bytes` to `path` through a temporary file, fsync and rename, so a reader (or a
/// restart after a kill) sees the old file or the new one, never half of one. The temporary
/// file is `path` with the extension `tmp`.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    write_synced(&tmp, bytes)?;
    fs::rename(&tmp, path)
}

/// Creates (or truncates) `path` with `bytes` and fsyncs it.
fn write_synced(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut f = File::create(path)?;
    f.write_all(bytes)?;
    f.sync_data()
}

/// Removes `path`; absent is fine.
fn remove(path: &Path) -> Result<(), RecordError> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_err(path, "remove")(e)),
        _ => Ok(()),
    }
}

/// fsyncs a directory, so renames and removals in it survive a power cut.
fn sync_dir(dir: &Path) -> Result<(), RecordError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir, "fsync directory"))
}

impl Reporter {
    /// Creates `dir` (and parents), locks it, removes the previous run's records and stale
    /// temporary files, and writes this run's first snapshot.
    pub fn create(dir: &Path, record: Record) -> Result<Reporter, RecordError> {
        if dir.exists() && !dir.is_dir() {
            return Err(RecordError::NotADirectory {
                path: dir.display().to_string(),
            });
        }
        fs::create_dir_all(dir).map_err(io_err(dir, "create directory"))?;
        let lock = PidLock::acquire(&dir.join(LOCK)).map_err(|source| RecordError::Lock {
            dir: dir.display().to_string(),
            source,
        })?;
        // junit.xml first, record.json last: a kill here leaves files of one run only
        clear(dir, true)?;
        let test_case_delay = std::env::var(TEST_CASE_DELAY_ENV)
            .ok()
            .and_then(|v| v.parse::<u64>().ok())
            .map(Duration::from_millis);
        let mut r = Reporter {
            dir: dir.to_path_buf(),
            record,
            started: std::time::Instant::now(),
            test_case_delay,
            series: None,
            inbox: None,
            _lock: lock,
        };
        r.write_snapshot()?;
        Ok(r)
    }

    /// The records of a run about to start against `target`: the record names the target, its
    /// capabilities, the meter's resolved configuration and the cases `opts` selects, then
    /// [`Reporter::create`] takes `dir`. The one start of `rig run` and `rig serve`'s runs.
    pub fn start(
        dir: &Path,
        target: &mut dyn crate::target::Target,
        spec: &crate::meter::config::MeterSpec,
        opts: &RunOptions,
    ) -> Result<Reporter, RecordError> {
        let meter = serde_json::to_value(spec).map_err(render_err(RECORD))?;
        let record = Record::start(target.describe(), target.capabilities(), meter)
            .with_declared_plan(opts, spec);
        let mut r = Reporter::create(dir, record)?;
        r.series = Some(SeriesCollector::new(
            spec.profile.response_min_ms,
            spec.profile.response_max_ms,
        ));
        Ok(r)
    }

    /// Records the attachments the capture observer files in `inbox` with each case (the
    /// capture observer must come before the reporter in the session's observer list).
    pub fn with_attachments(mut self, inbox: Inbox) -> Self {
        self.inbox = Some(inbox);
        self
    }

    /// The record so far.
    pub fn record(&self) -> &Record {
        &self.record
    }

    /// Writes the next snapshot: all three files rendered from the record as it is now.
    fn write_snapshot(&mut self) -> Result<(), RecordError> {
        self.record.snapshot += 1;
        self.record.wall_time_s = self.started.elapsed().as_secs_f64();
        write_three(&self.dir, &self.record)
    }

    /// Marks the run finished (`complete`, or `stopped` with the reason) and writes the final
    /// records.
    pub fn finish(
        &mut self,
        target_time_s: f64,
        aborted: Option<String>,
    ) -> Result<(), RecordError> {
        self.record.ended = Some(utc_now());
        self.record.state = if aborted.is_some() {
            RunState::Stopped
        } else {
            RunState::Complete
        };
        self.record.complete = aborted.is_none();
        self.record.aborted = aborted;
        self.record.target_time_s = target_time_s;
        self.write_snapshot()
    }
}

impl Reporter {
    /// Records one finished case and writes the next snapshot.
    pub fn case_done(&mut self, case: &CaseResult) -> Result<(), RecordError> {
        let mut rc = RecordedCase::from(case);
        if let Some(c) = &mut self.series {
            rc.series = c.finish(case);
        }
        if let Some(i) = &self.inbox {
            rc.attachments = i.take(&case.id);
        }
        self.record.cases.push(rc);
        self.record.summary = Summary::of_verdicts(self.record.cases.iter().map(|c| c.verdict));
        self.record.target_time_s = case.target_time_s.1;
        self.write_snapshot()
    }
}

/// The records as an observer: a snapshot after every case, the final one when the run ends
/// (`complete`, or `stopped` with the outcome's reason).
impl Observer for Reporter {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        if let Some(c) = &mut self.series {
            c.event(e);
        }
        let r = match e {
            Event::CaseStarted { .. } => {
                if let Some(d) = self.test_case_delay {
                    std::thread::sleep(d);
                }
                Ok(())
            }
            Event::CaseDone { case } => self.case_done(case),
            Event::RunEnded {
                outcome,
                target_time_s,
            } => {
                self.record.outcome = Some((*outcome).clone());
                self.finish(*target_time_s, outcome.ended_early())
            }
            _ => Ok(()),
        };
        r.map_err(|e| ObserverError {
            observer: "records",
            source: Box::new(e),
        })
    }
}

/// One line per case on stderr as the run goes (`rig run --progress`, or a terminal on a real
/// target), and how the run ended.
/// With a plan, each line says the case's expected meter time and what is left of the run.
#[derive(Debug, Default)]
pub struct Progress {
    plan: Option<crate::suite::plan::Plan>,
}

impl Progress {
    /// Progress that gives each case's expected time and the run's ETA from `plan`.
    pub fn with_plan(plan: crate::suite::plan::Plan) -> Self {
        Progress { plan: Some(plan) }
    }
}

impl Observer for Progress {
    fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
        match e {
            Event::CaseStarted {
                case,
                within: Some(lender),
            } => {
                eprint!("  {:<26} (inside {lender}'s wait) … ", case.id);
                let _ = io::stderr().flush();
            }
            Event::CaseStarted { case, within: None } => {
                match self.plan.as_ref().and_then(|p| p.left(case.id, 0.0)) {
                    Some((c, run)) => eprint!(
                        "  {:<26} (about {}; run {} left) … ",
                        case.id,
                        crate::suite::plan::human(c),
                        crate::suite::plan::human(run)
                    ),
                    None => eprint!("  {:<26} … ", case.id),
                }
                let _ = io::stderr().flush();
            }
            Event::CaseDone { case } => {
                eprintln!("{} ({:.1} s)", case.verdict, case.wall_time_s)
            }
            Event::RunEnded { outcome, .. } => match outcome.ended_early() {
                Some(why) => eprintln!("  run {}: {why}", outcome.name()),
                None => eprintln!("  run {}", outcome.name()),
            },
            _ => {}
        }
        Ok(())
    }
}

/// The CSV view of a record: one row per measurement of each recorded case (one row with empty
/// measurement columns for a case without any), then for each selected case not run
/// (`case_verdict` = `not_run`) one row per measurement it declares with the value empty (one
/// bare row when it declares none); every row carries the run id and snapshot number.
pub fn measurements_csv(r: &Record) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record([
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
        "run",
        "snapshot",
    ])?;
    let snapshot = r.snapshot.to_string();
    let opt = |x: Option<f64>| x.map(|x| x.to_string()).unwrap_or_default();
    for c in &r.cases {
        let head = [c.id.clone(), c.suite.clone(), c.verdict.to_string()];
        let tail = [c.clause.to_string(), r.run_id.clone(), snapshot.clone()];
        let rows: Vec<[String; 9]> = c
            .measurements
            .iter()
            .map(|m| {
                [
                    m.name.clone(),
                    opt(m.value),
                    m.unit.clone(),
                    opt(m.low),
                    opt(m.high),
                    m.source.to_string(),
                    m.uncertainty.to_string(),
                    m.verdict.to_string(),
                    m.marginal.to_string(),
                ]
            })
            .collect();
        let empty = [[""; 9].map(String::from)];
        let rows = if rows.is_empty() {
            &empty[..]
        } else {
            &rows[..]
        };
        for m in rows {
            w.write_record(head.iter().chain(m).chain(&tail))?;
        }
    }
    for p in r.unrun() {
        let head = [p.id.clone(), p.suite.clone(), "not_run".into()];
        let tail = [r.run_id.clone(), snapshot.clone()];
        // one row per declared measurement, value unset; one bare row when none is declared
        let mut rows: Vec<[String; 10]> = p
            .measures
            .iter()
            .map(|m| {
                let mut row = [(); 10].map(|_| String::new());
                row[0] = m.name.clone();
                row[2] = m.unit.clone();
                row[3] = opt(m.low);
                row[4] = opt(m.high);
                row
            })
            .collect();
        if rows.is_empty() {
            rows.push([(); 10].map(|_| String::new()));
        }
        for m in &rows {
            w.write_record(head.iter().chain(m).chain(&tail))?;
        }
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

/// The JUnit view of a record: one testcase per case (classname = suite, name = case id);
/// failures whose text names value, limit and clause; measurements as properties and again as
/// `key=value` lines in system-out (GitLab ignores properties, NOTES §5); skips as skipped; every
/// selected case not recorded as an error `not run: …`; the run id, snapshot and state as
/// properties of every testsuite.
pub fn junit(r: &Record) -> Result<String, quick_junit::SerializeError> {
    let mut report = Report::new("meter-rig");
    let mut suites: Vec<TestSuite> = Vec::new();
    let reason = r.not_run_reason();
    let cases = r
        .cases
        .iter()
        .map(|c| (c.suite.as_str(), recorded_testcase(c)))
        .chain(
            r.unrun()
                .map(|p| (p.suite.as_str(), not_run_testcase(p, &reason))),
        );
    for (suite, (tc, props)) in cases {
        let i = match suites.iter().position(|s| s.name.as_str() == suite) {
            Some(i) => i,
            None => {
                let mut s = TestSuite::new(suite.to_string());
                s.add_properties([
                    Property::new("target", r.target.clone()),
                    Property::new("run.id", r.run_id.clone()),
                    Property::new("run.snapshot", r.snapshot.to_string()),
                    Property::new("run.state", r.state.to_string()),
                ]);
                suites.push(s);
                suites.len() - 1
            }
        };
        suites[i].add_properties(props);
        suites[i].add_test_case(tc);
    }
    report.add_test_suites(suites);
    // quick-junit always writes testsuite@disabled, which the common schema does not declare
    Ok(strip_attr(&report.to_string()?, "disabled"))
}

/// A recorded case's JUnit status: the one place a verdict becomes a JUnit outcome.
fn case_status(c: &RecordedCase) -> TestCaseStatus {
    let kind = match c.verdict {
        Verdict::Pass => return TestCaseStatus::success(),
        Verdict::Skip => {
            let mut s = TestCaseStatus::skipped();
            s.set_message(c.message.clone());
            return s;
        }
        Verdict::Fail => NonSuccessKind::Failure,
        Verdict::Error | Verdict::Inconclusive => NonSuccessKind::Error,
    };
    let mut s = TestCaseStatus::non_success(kind);
    // JUnit has no "inconclusive": an error whose type and message say so
    if c.verdict == Verdict::Inconclusive {
        s.set_type("inconclusive");
        s.set_message(format!("inconclusive: {}", c.message));
    } else {
        s.set_message(c.message.clone());
    }
    let mut text = format!(
        "{}\nclause: {} ({})\n",
        c.message,
        crate::evidence::sources::cite(&c.clause.source, &c.clause.section),
        c.clause.source
    );
    for m in c.measurements.iter().filter(|m| m.verdict == Verdict::Fail) {
        text.push_str(&format!(
            "{} = {} {} (limit {}; source {}, ±{} {})\n",
            m.name,
            m.value_text(),
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

/// A recorded case as a testcase, with its testsuite properties (keyed by case id: the common
/// schema has none on a testcase; Jenkins reads them there) and system-out for GitLab.
fn recorded_testcase(c: &RecordedCase) -> (TestCase, Vec<Property>) {
    let mut tc = TestCase::new(c.id.clone(), case_status(c));
    tc.set_classname(c.suite.clone());
    tc.set_time(Duration::from_secs_f64(c.wall_time_s.max(0.0)));
    let mut props = vec![
        Property::new(format!("{}.clause", c.id), c.clause.to_string()),
        Property::new(format!("{}.verdict", c.id), c.verdict.to_string()),
    ];
    let mut out = format!("clause={}\nverdict={}\n", c.clause, c.verdict);
    for m in &c.measurements {
        props.push(Property::new(
            format!("{}.{}", c.id, m.name),
            format!("{} {}", m.value_text(), m.unit),
        ));
        props.push(Property::new(
            format!("{}.{}.limit", c.id, m.name),
            m.limit_text(),
        ));
        out.push_str(&format!(
            "{}={} {} low={} high={} source={} uncertainty={} verdict={}\n",
            m.name,
            m.value.map(|x| x.to_string()).unwrap_or_default(),
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
    (tc, props)
}

/// A selected case that was not run, as an error naming why.
fn not_run_testcase(p: &PlannedCase, reason: &str) -> (TestCase, Vec<Property>) {
    let mut s = TestCaseStatus::non_success(NonSuccessKind::Error);
    s.set_message(reason.to_string());
    s.set_type("not_run");
    let mut tc = TestCase::new(p.id.clone(), s);
    tc.set_classname(p.suite.clone());
    let mut out = String::from("verdict=not_run\n");
    for m in &p.measures {
        out.push_str(&format!(
            "{}= {} low={} high={} verdict=not_run\n",
            m.name,
            m.unit,
            m.low.map(|x| x.to_string()).unwrap_or_default(),
            m.high.map(|x| x.to_string()).unwrap_or_default(),
        ));
    }
    tc.set_system_out(out);
    let props = vec![Property::new(format!("{}.verdict", p.id), "not_run")];
    (tc, props)
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
    let indent = " ".repeat(w + 2 + 8);
    for c in cases {
        // long reasons wrap at word boundaries under their column, never cut mid-word
        let lines = wrap_words(&c.message, 100);
        s.push_str(&format!(
            "{:<w$}  {:<7} {}\n",
            c.id,
            c.verdict.to_string().to_uppercase(),
            lines.first().map(String::as_str).unwrap_or("")
        ));
        for l in lines.iter().skip(1) {
            s.push_str(&format!("{indent}{l}\n"));
        }
        // a verdict against the meter names where its limit is written
        if matches!(c.verdict, Verdict::Fail | Verdict::Inconclusive) {
            let clause = crate::evidence::sources::cite(c.clause.source, c.clause.section);
            for l in wrap_words(&format!("clause: {clause}"), 100) {
                s.push_str(&format!("{indent}{l}\n"));
            }
        }
    }
    s
}

/// Splits `text` into lines of at most `width` characters at spaces (a longer word gets a line
/// of its own, whole).
fn wrap_words(text: &str, width: usize) -> Vec<String> {
    let mut lines: Vec<String> = Vec::new();
    let mut cur = String::new();
    for word in text.split_whitespace() {
        if !cur.is_empty() && cur.chars().count() + 1 + word.chars().count() > width {
            lines.push(std::mem::take(&mut cur));
        }
        if !cur.is_empty() {
            cur.push(' ');
        }
        cur.push_str(word);
    }
    if !cur.is_empty() || lines.is_empty() {
        lines.push(cur);
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::meter::config::MeterSpec;
    use crate::sim::SimTarget;
    use crate::target::Target;

    #[test]
    fn long_reasons_wrap_at_words() {
        let text = "word ".repeat(50);
        let lines = wrap_words(text.trim(), 100);
        assert!(lines.len() > 1);
        assert!(lines.iter().all(|l| l.len() <= 100 && !l.ends_with(' ')));
        assert_eq!(lines.join(" "), text.trim());
        assert_eq!(wrap_words("", 100), vec![String::new()]);
    }

    fn tmp(name: &str) -> PathBuf {
        let d = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tmp")
            .join(format!("rig-report-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&d);
        d
    }

    /// The options of [`readout_run`].
    fn readout_opts() -> RunOptions {
        let mut t = SimTarget::new(MeterSpec::builtin_default());
        let mut opts = RunOptions::for_target(&t.capabilities());
        opts.suites = vec!["readout".into(), "max_reset".into()];
        opts
    }

    /// How many cases [`readout_run`] selects.
    fn run_cases() -> usize {
        suite::selected(&readout_opts()).len()
    }

    /// Runs the readout suite against the software meter into `dir`, leaving the reporter open.
    fn readout_run(dir: &Path) -> Reporter {
        let spec = MeterSpec::builtin_default();
        let mut t = SimTarget::new(spec.clone());
        let opts = readout_opts();
        let record = Record::start(t.describe(), t.capabilities(), serde_json::json!({"k": 1}))
            .with_plan(&opts);
        let mut rep = Reporter::create(dir, record).unwrap();
        suite::run(&mut t, &spec, &opts, &mut NoEnd(&mut rep));
        rep
    }

    /// Passes every event but the run's end to the reporter, so the run stays open.
    struct NoEnd<'a>(&'a mut Reporter);

    impl Observer for NoEnd<'_> {
        fn event(&mut self, e: &Event<'_>) -> Result<(), ObserverError> {
            match e {
                Event::RunEnded { .. } => Ok(()),
                _ => self.0.event(e),
            }
        }
    }

    #[test]
    fn record_json_reads_back_as_the_record_written() {
        let dir = tmp("roundtrip");
        let mut rep = readout_run(&dir);
        rep.finish(12.5, None).unwrap();
        let back = read_record(&dir).unwrap();
        assert_eq!(&back, rep.record());
        assert_eq!(back.state, RunState::Complete);
        assert_eq!(back.cases.len(), run_cases());
        assert!(back.cases.iter().any(|c| !c.measurements.is_empty()));
        // and writes back byte for byte
        let bytes = fs::read(dir.join(RECORD)).unwrap();
        assert_eq!(serde_json::to_vec_pretty(&back).unwrap(), bytes);
        // a clock that could not be read is null in JSON and NaN again when read back
        let mut r = back.clone();
        r.cases[0].target_time_s = (f64::NAN, 3.0);
        r.target_time_s = f64::NAN;
        let json = serde_json::to_string(&r).unwrap();
        assert!(json.contains("\"target_time_s\":[null,3.0]"), "{json}");
        let again: Record = serde_json::from_str(&json).unwrap();
        assert!(again.cases[0].target_time_s.0.is_nan() && again.target_time_s.is_nan());
        assert_eq!(again.cases[0].target_time_s.1, 3.0);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn version_1_records_read_back_with_their_state() {
        let dir = tmp("v1");
        let mut rep = readout_run(&dir);
        rep.finish(1.0, None).unwrap();
        drop(rep);
        let mut v: serde_json::Value =
            serde_json::from_slice(&fs::read(dir.join(RECORD)).unwrap()).unwrap();
        let o = v.as_object_mut().unwrap();
        for k in ["run_id", "snapshot", "state", "writer_pid", "planned"] {
            o.remove(k);
        }
        o.insert("record_version".into(), 1.into());
        for (complete, aborted, state) in [
            (true, serde_json::Value::Null, RunState::Complete),
            (false, "device vanished".into(), RunState::Stopped),
            (false, serde_json::Value::Null, RunState::Interrupted),
        ] {
            v["complete"] = complete.into();
            v["aborted"] = aborted;
            fs::write(dir.join(RECORD), serde_json::to_vec(&v).unwrap()).unwrap();
            let r = read_record(&dir).unwrap();
            assert_eq!((r.state, r.cases.len()), (state, run_cases()));
            // an old record is never rewritten as if it were running
            assert!(!close_interrupted(&dir).unwrap());
        }
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_second_writer_is_refused_and_a_dead_one_reads_as_interrupted() {
        let dir = tmp("lock");
        let rep = readout_run(&dir);
        let rec = Record::start(
            "x".into(),
            rep.record().capabilities.clone(),
            serde_json::Value::Null,
        );
        let e = Reporter::create(&dir, rec.clone()).unwrap_err().to_string();
        assert!(
            e.contains(&format!("held by pid {}", std::process::id())) && e.contains("--out"),
            "{e}"
        );
        // the refused writer touched nothing
        assert_eq!(read_record(&dir).unwrap().run_id, rep.record().run_id);
        assert_eq!(read_record(&dir).unwrap().state, RunState::Running);
        drop(rep); // like a kill: the lock goes, the state stays `running` on disk
        let back = read_record(&dir).unwrap();
        assert_eq!(back.state, RunState::Interrupted);
        // the next run takes the directory over and clears the last one's files
        fs::write(dir.join("record.tmp"), b"stale").unwrap();
        fs::write(dir.join("junit.tmp"), b"stale").unwrap();
        let _rep2 = Reporter::create(&dir, rec).unwrap();
        assert!(!dir.join("record.tmp").exists() && !dir.join("junit.tmp").exists());
        let now = read_record(&dir).unwrap();
        assert_ne!(now.run_id, back.run_id);
        assert!(now.cases.is_empty());
        let csv = fs::read_to_string(dir.join(CSV)).unwrap();
        assert!(!csv.contains(&back.run_id), "{csv}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn cases_not_run_are_errors_in_junit_and_not_run_in_the_csv() {
        let dir = tmp("unrun");
        let mut rep = readout_run(&dir);
        // pretend the run stopped after three cases
        rep.record.cases.truncate(3);
        rep.finish(1.0, Some("stopped: test".into())).unwrap();
        let r = read_record(&dir).unwrap();
        assert_eq!(r.state, RunState::Stopped);
        assert_eq!(r.unrun().count(), run_cases() - 3);
        let xml = fs::read_to_string(dir.join(JUNIT)).unwrap();
        let report = Report::deserialize_from_str(&xml).unwrap();
        let unrun = run_cases() - 3;
        assert_eq!(report.tests, run_cases());
        assert!(report.errors >= unrun, "{xml}");
        assert_eq!(
            xml.matches("not run: the run stopped early: stopped: test")
                .count(),
            unrun,
            "{xml}"
        );
        assert!(xml.contains(&format!("name=\"run.id\" value=\"{}\"", r.run_id)));
        assert!(xml.contains("name=\"run.state\" value=\"stopped\""));
        let csv = fs::read_to_string(dir.join(CSV)).unwrap();
        assert_eq!(csv.matches(",not_run,").count(), unrun, "{csv}");
        assert!(
            csv.contains("max_reset.peak_reset,max_reset,not_run"),
            "{csv}"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
