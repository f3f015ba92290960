//! The meter as seen from the module connector: the readout model, order and configuration codes,
//! and the profiles that give every limit a clause.
//!
//! Pure data and arithmetic; the software meter in `crate::sim` and the suites in `crate::suite`
//! both read it. Nothing here does I/O.

pub mod readout;
