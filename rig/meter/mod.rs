//! The meter as seen from the module connector: the readout model, order and configuration codes,
//! module I/O tables, and the profiles that give every limit a clause.
//!
//! Pure data and arithmetic; the software meter in `crate::sim` and the suites in `crate::suite`
//! both read it. Nothing here does I/O except [`config::MeterSpec::from_file`] reading its file.

pub mod calendar;
pub mod config;
pub mod io;
pub mod profile;
pub mod readout;
pub mod sheet;
