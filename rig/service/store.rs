//! The service's data directory: what `rig serve` keeps across restarts and kill -9.
//!
//! ```text
//! DATA/
//!   lock                      flock held by the service for its lifetime; holds its pid
//!   readings/YYYY-MM-DD.csv   one row per readout (UTC date of the row), fsynced per row
//!   state.json                pulse totals and loop counters, rewritten atomically
//!   runs/ID/                  record.json, junit.xml, measurements.csv of each run (as `rig run`)
//! ```
//!
//! Only one process may use a data directory: [`Store::open`] takes an exclusive advisory lock on
//! `DATA/lock` before it writes anything and fails naming the holder's pid, and only then removes
//! a `state.tmp` a kill left behind. Every write is either an appended, fsynced CSV row or a
//! whole-file rewrite through a temporary file and a rename, so a power cut or kill -9 leaves the
//! last complete row and the last complete state. A torn last line (killed mid-write) is detected
//! on restart and cut off before appending. The readings' columns are fixed by the meter's
//! readout layout (the 17 data sets of [`COMBI_351`], in the order the meter sends them, then
//! `other_registers` for any address outside it), never by whichever readout came first.
//!
//! This module stores; it never talks to the target and never decides what a reading means.

use std::collections::BTreeMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::meter::readout::COMBI_351;
use crate::report::{write_atomic, LockError, PidLock};

/// A readout taken by the module loop.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Reading {
    /// Wall-clock time the row was written (UTC, RFC 3339); a record, not a measurement.
    pub time_utc: String,
    /// The target's clock at the end of the request, seconds.
    pub target_time_s: f64,
    /// The meter's clock at the end of the request (UTC, RFC 3339): the software meter's own
    /// calendar, or for a real meter the wall clock the target's clock maps to; empty when
    /// unknown. This is the clock the tariff schedule and the logging date follow.
    #[serde(default)]
    pub meter_time: String,
    /// Response time (first start bit minus end of request), ms, if the meter answered.
    pub response_ms: Option<f64>,
    /// Where `response_ms` came from (edge, serial, virtual) and its uncertainty, ms.
    pub timing: String,
    /// The answer conforms (strict decode: identification, BCC, no violation).
    pub valid: bool,
    /// Why the readout failed or what did not conform (empty when valid).
    pub problem: String,
    /// Register values as sent (`value*unit`), by address.
    pub registers: BTreeMap<String, String>,
}

/// Persistent counters of the module loop.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct LoopState {
    /// Pulses counted per output port (`port1`, `port2`) since the data directory was created.
    pub pulses: BTreeMap<String, u64>,
    /// Readouts taken.
    pub readouts: u64,
    /// Readouts that failed (no answer, invalid answer, device error).
    pub readout_failures: u64,
    /// Conformance runs started.
    pub runs: u64,
}

/// Errors of the data directory. They name the path.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The records or data path is a file.
    #[error("{path} exists and is not a directory: choose another --data (a directory, or a path that does not exist yet)")]
    NotADirectory {
        /// The path.
        path: String,
    },
    /// A file operation failed (the OS error is in the message, once).
    #[error("{path}: {call} failed: {os}")]
    Io {
        /// The path.
        path: String,
        /// The operation.
        call: &'static str,
        /// What the OS said.
        os: io::Error,
    },
    /// Another process uses the data directory.
    #[error(
        "cannot lock data directory {path}: {source}; one rig serve at a time uses it (stop the other or choose another --data)"
    )]
    Locked {
        /// The data directory.
        path: String,
        /// Why the lock was not taken (names the holder's pid).
        source: LockError,
    },
    /// state.json is not ours or is damaged.
    #[error(
        "{path}: not a meter-rig state file ({detail}); move it away to start the totals from zero"
    )]
    State {
        /// The path.
        path: String,
        /// The parse error.
        detail: String,
    },
}

fn io_err<'a>(path: &'a Path, call: &'static str) -> impl FnOnce(io::Error) -> StoreError + 'a {
    move |os| StoreError::Io {
        path: path.display().to_string(),
        call,
        os,
    }
}

/// Whether `id` is a run id this service could have made (letters, digits, `-`; no paths).
pub fn valid_run_id(id: &str) -> bool {
    !id.is_empty() && id.len() <= 64 && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// Directory of run `id` under data directory `root`.
pub fn run_dir(root: &Path, id: &str) -> PathBuf {
    root.join("runs").join(id)
}

/// Run ids under data directory `root`, oldest first.
pub fn run_ids(root: &Path) -> Vec<String> {
    let mut v: Vec<String> = fs::read_dir(root.join("runs"))
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| valid_run_id(n))
                .collect()
        })
        .unwrap_or_default();
    v.sort();
    v
}

/// A new run id from the UTC time `utc` (`2026-11-21T10:15:30.123Z` → `20261121T101530Z`),
/// unique under `root` (`-2`, `-3` … within one second).
pub fn new_run_id(root: &Path, utc: &str) -> String {
    let base: String = utc
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect::<String>()
        + "Z";
    let mut id = base.clone();
    let mut n = 2;
    while run_dir(root, &id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// Whether `name` can name a rig in run ids: 1–40 ASCII letters, digits and `-`.
pub fn valid_rig_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 40
        && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
}

/// A new run id of rig `rig` from the UTC time `utc` (`lab3-pi7`, `2026-11-21T10:15:30.123Z` →
/// `lab3-pi7-20261121T101530Z`), unique under `root` (`-2`, `-3` … within one second), so ids
/// from many rigs collected in one CI system never collide. `rig` must pass
/// [`valid_rig_name`].
pub fn new_named_run_id(root: &Path, rig: &str, utc: &str) -> String {
    let stamp: String = utc
        .chars()
        .take(19)
        .filter(|c| c.is_ascii_alphanumeric())
        .collect();
    let base = format!("{rig}-{stamp}Z");
    let mut id = base.clone();
    let mut n = 2;
    while run_dir(root, &id).exists() {
        id = format!("{base}-{n}");
        n += 1;
    }
    id
}

/// The data directory.
#[derive(Debug)]
pub struct Store {
    root: PathBuf,
    /// Open readings file: (date, header, file).
    readings: Option<(String, Vec<String>, File)>,
    lock: Arc<PidLock>,
}

impl Store {
    /// Opens (creating) the data directory and locks it for this process (see the module doc).
    pub fn open(root: &Path) -> Result<Store, StoreError> {
        if root.exists() && !root.is_dir() {
            return Err(StoreError::NotADirectory {
                path: root.display().to_string(),
            });
        }
        fs::create_dir_all(root).map_err(io_err(root, "create directory"))?;
        let lock = PidLock::acquire(&root.join("lock")).map_err(|source| StoreError::Locked {
            path: root.display().to_string(),
            source,
        })?;
        let tmp = root.join("state.tmp");
        match fs::remove_file(&tmp) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                return Err(io_err(&tmp, "remove stale temporary file")(e))
            }
            _ => {}
        }
        for d in [root.join("readings"), root.join("runs")] {
            fs::create_dir_all(&d).map_err(io_err(&d, "create directory"))?;
        }
        Ok(Store {
            root: root.to_path_buf(),
            readings: None,
            lock: Arc::new(lock),
        })
    }

    /// The data directory's lock: keep a clone to hold it after the store is dropped (the
    /// service holds it until the process exits).
    pub fn lock(&self) -> Arc<PidLock> {
        self.lock.clone()
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Directory of run `id`.
    pub fn run_dir(&self, id: &str) -> PathBuf {
        run_dir(&self.root, id)
    }

    /// Loads state.json (default when absent).
    pub fn load_state(&self) -> Result<LoopState, StoreError> {
        let p = self.root.join("state.json");
        match fs::read(&p) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| StoreError::State {
                path: p.display().to_string(),
                detail: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(LoopState::default()),
            Err(e) => Err(io_err(&p, "read")(e)),
        }
    }

    /// Rewrites state.json atomically.
    pub fn save_state(&self, s: &LoopState) -> Result<(), StoreError> {
        let p = self.root.join("state.json");
        let json = serde_json::to_vec_pretty(s).expect("state serialises");
        write_atomic(&p, &json).map_err(io_err(&p, "write"))
    }

    /// Appends `r` to `readings/DATE.csv` (DATE from `r.time_utc`) and fsyncs it. A new file
    /// gets the [`readings_header`]; an existing file keeps its own header (older versions wrote
    /// other layouts). A register the reading lacks is left empty; one the header lacks goes to
    /// `other_registers` as `address=value` (dropped only under an old header without that
    /// column). Returns the file written.
    pub fn append_reading(&mut self, r: &Reading) -> Result<PathBuf, StoreError> {
        let date: String = r.time_utc.chars().take(10).collect();
        let path = self.root.join("readings").join(format!("{date}.csv"));
        if self
            .readings
            .as_ref()
            .map(|(d, _, _)| d != &date)
            .unwrap_or(true)
        {
            self.readings = None;
            let (header, file) = open_readings(&path)?;
            self.readings = Some((date, header, file));
        }
        let (_, header, file) = self.readings.as_mut().expect("opened above");
        let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
        let mut row = vec![
            r.time_utc.clone(),
            r.meter_time.clone(),
            r.target_time_s.to_string(),
            r.response_ms.map(|x| format!("{x:.3}")).unwrap_or_default(),
            r.timing.clone(),
            r.valid.to_string(),
            r.problem.clone(),
        ];
        let columns: Vec<&str> = header.iter().map(|h| column_address(h)).collect();
        for (h, a) in header.iter().zip(&columns).skip(FIXED.len()) {
            if *a == OTHER {
                let other: Vec<String> = r
                    .registers
                    .iter()
                    .filter(|(k, _)| !columns.contains(&k.as_str()))
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect();
                row.push(other.join(" "));
            } else {
                let v = r.registers.get(*a).map(String::as_str).unwrap_or_default();
                row.push(cell_value(h, a, v));
            }
        }
        w.write_record(&row).expect("csv into memory");
        let bytes = w.into_inner().expect("csv into memory");
        file.write_all(&bytes).map_err(io_err(&path, "append"))?;
        file.sync_data().map_err(io_err(&path, "fsync"))?;
        Ok(path)
    }
}

const FIXED: [&str; 7] = [
    "time_utc",
    "meter_time",
    "target_time_s",
    "response_ms",
    "timing",
    "valid",
    "problem",
];

/// The column of registers outside the readout layout.
const OTHER: &str = "other_registers";

/// The readings header: the fixed columns, the 17 data-set addresses of the readout layout in
/// the meter's order, each with its unit where it has one (`1.8.0 [kWh]`, so the cells are plain
/// numbers a spreadsheet reads), and `other_registers`.
pub fn readings_header() -> Vec<String> {
    FIXED
        .iter()
        .map(|f| f.to_string())
        .chain(COMBI_351.iter().map(|r| match r.unit {
            Some(u) => format!("{} [{u}]", r.address),
            None => r.address.to_string(),
        }))
        .chain([OTHER.to_string()])
        .collect()
}

/// The address of a register column: `1.8.0 [kWh]` → `1.8.0` (older files name it bare).
fn column_address(header: &str) -> &str {
    header.split(" [").next().unwrap_or(header)
}

/// A register's cell: the number alone when the value carries the unit its column names
/// (`0012658*kWh` under `1.8.0 [kWh]` → `12658`, leading zeros dropped, decimals kept); as sent
/// otherwise (another unit, text, a bare-address column of an older file).
fn cell_value(header: &str, address: &str, value: &str) -> String {
    let Some(unit) = header
        .strip_prefix(address)
        .and_then(|r| r.strip_prefix(" ["))
        .and_then(|r| r.strip_suffix(']'))
    else {
        return value.to_string();
    };
    match value.strip_suffix(unit).and_then(|v| v.strip_suffix('*')) {
        Some(num) if !num.is_empty() && num.bytes().all(|b| b.is_ascii_digit() || b == b'.') => {
            let t = num.trim_start_matches('0');
            if t.is_empty() || t.starts_with('.') {
                format!("0{t}")
            } else {
                t.to_string()
            }
        }
        _ => value.to_string(),
    }
}

/// Opens a readings file for appending: reads its header if it exists (cutting a torn last line
/// left by a kill mid-write), or creates it with [`readings_header`].
fn open_readings(path: &Path) -> Result<(Vec<String>, File), StoreError> {
    let mut f = OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(path)
        .map_err(io_err(path, "open"))?;
    let mut text = Vec::new();
    f.read_to_end(&mut text).map_err(io_err(path, "read"))?;
    if !text.is_empty() {
        if !text.ends_with(b"\n") {
            let keep = text.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1);
            f.set_len(keep as u64)
                .map_err(io_err(path, "truncate torn row"))?;
            f.seek(SeekFrom::End(0)).map_err(io_err(path, "seek"))?;
            text.truncate(keep);
        }
        let mut rd = csv::ReaderBuilder::new()
            .has_headers(false)
            .from_reader(text.as_slice());
        if let Some(Ok(h)) = rd.records().next() {
            let header: Vec<String> = h.iter().map(str::to_string).collect();
            if header.iter().take(FIXED.len()).eq(FIXED.iter()) {
                return Ok((header, f));
            }
        }
        // not our header (or only a torn header): keep the file, start a fresh header line so
        // the rows below it are still readable as their own table
    }
    let header = readings_header();
    let mut w = csv::WriterBuilder::new().from_writer(Vec::new());
    w.write_record(&header).expect("csv into memory");
    let bytes = w.into_inner().expect("csv into memory");
    f.write_all(&bytes).map_err(io_err(path, "write header"))?;
    f.sync_data().map_err(io_err(path, "fsync"))?;
    Ok((header, f))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reading(t: &str, v: &str) -> Reading {
        Reading {
            time_utc: t.into(),
            meter_time: String::new(),
            target_time_s: 1.5,
            response_ms: Some(150.0),
            timing: "virtual ±0 ms".into(),
            valid: true,
            problem: String::new(),
            registers: [("1.8.0".to_string(), v.to_string())].into(),
        }
    }

    #[test]
    fn register_cells_are_numbers_under_a_unit_header() {
        assert_eq!(cell_value("1.8.0 [kWh]", "1.8.0", "0012658*kWh"), "12658");
        assert_eq!(cell_value("1.6.0 [kW]", "1.6.0", "000.0*kW"), "0.0");
        assert_eq!(cell_value("1.6.0 [kW]", "1.6.0", "012.5*kW"), "12.5");
        // another unit, or a column of an older file: as sent
        assert_eq!(cell_value("1.8.0 [kWh]", "1.8.0", "12*Wh"), "12*Wh");
        assert_eq!(cell_value("1.8.0", "1.8.0", "0012658*kWh"), "0012658*kWh");
        assert_eq!(column_address("1.8.0 [kWh]"), "1.8.0");
        let h = readings_header();
        assert_eq!(h[1], "meter_time");
        assert!(h.contains(&"1.8.0 [kWh]".to_string()), "{h:?}");
        assert!(h.contains(&"0.0.0".to_string()), "{h:?}");
    }

    #[test]
    fn rows_survive_a_torn_write_and_reopen() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tmp")
            .join(format!("rig-store-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let mut s = Store::open(&dir).unwrap();
        let p = s
            .append_reading(&reading("2026-11-21T10:00:00.000Z", "1*kWh"))
            .unwrap();
        drop(s);
        // a kill mid-row leaves half a line
        OpenOptions::new()
            .append(true)
            .open(&p)
            .unwrap()
            .write_all(b"2026-11-21T10:15")
            .unwrap();
        let mut s = Store::open(&dir).unwrap();
        s.append_reading(&reading("2026-11-21T10:30:00.000Z", "2*kWh"))
            .unwrap();
        let mut rd = csv::Reader::from_path(&p).unwrap();
        let rows: Vec<csv::StringRecord> = rd.records().map(|r| r.unwrap()).collect();
        assert_eq!(rows.len(), 2);
        let col = readings_header()
            .iter()
            .position(|c| c == "1.8.0 [kWh]")
            .unwrap();
        assert_eq!(&rows[1][col], "2");
        // another day, another file
        let p2 = s
            .append_reading(&reading("2026-11-22T00:00:00.000Z", "3*kWh"))
            .unwrap();
        assert_ne!(p, p2);
        let st = LoopState {
            pulses: [("port1".into(), 7)].into(),
            ..Default::default()
        };
        s.save_state(&st).unwrap();
        assert_eq!(s.load_state().unwrap(), st);
        assert_eq!(
            new_run_id(&dir, "2026-11-21T10:00:00.000Z"),
            "20261121T100000Z"
        );
        fs::create_dir_all(s.run_dir("20261121T100000Z")).unwrap();
        assert_eq!(
            new_run_id(&dir, "2026-11-21T10:00:00.000Z"),
            "20261121T100000Z-2"
        );
        assert!(!valid_run_id("../etc"));
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn named_run_ids_carry_the_rig_and_stay_unique() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("target/tmp")
            .join(format!("meter-rig-named-ids-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        let id = new_named_run_id(&dir, "lab3-pi7", "2026-11-21T10:00:00.000Z");
        assert_eq!(id, "lab3-pi7-20261121T100000Z");
        assert!(valid_run_id(&id));
        fs::create_dir_all(run_dir(&dir, &id)).unwrap();
        assert_eq!(
            new_named_run_id(&dir, "lab3-pi7", "2026-11-21T10:00:00.000Z"),
            "lab3-pi7-20261121T100000Z-2"
        );
        // another rig at the same second gets its own id
        assert_eq!(
            new_named_run_id(&dir, "lab3-pi8", "2026-11-21T10:00:00.000Z"),
            "lab3-pi8-20261121T100000Z"
        );
        assert!(valid_rig_name("lab3-pi7"));
        assert!(!valid_rig_name(""));
        assert!(!valid_rig_name("lab 3"));
        assert!(!valid_rig_name("../x"));
        assert!(!valid_rig_name(&"a".repeat(41)));
        let _ = fs::remove_dir_all(&dir);
    }
}
