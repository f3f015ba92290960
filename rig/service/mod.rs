//! `rig serve`, the library half: the module loop and run scheduling behind the HTTP API.
//!
//! On a Raspberry Pi in a lab the rig plays the plug-in module day and night: it reads the meter
//! every interval, counts the meter's output pulses, drives the tariff inputs on a schedule, keeps
//! all of it in a data directory that survives restarts, and runs conformance suites on request
//! with the hardware to itself.
//!
//! - [`worker`]: the hardware thread (module loop, runs, stop handling);
//! - [`store`]: the data directory (daily readings CSV, pulse totals, run records);
//! - [`schedule`]: tariff schedules resolved against the meter's tariff table;
//! - [`pulses`]: pulse counting from port edges;
//! - [`paced`]: the software meter held to real time (or a multiple of it).
//!
//! No HTTP and no async here: the binary (`rig/cli/serve.rs`) owns the server and talks to the
//! hardware thread through [`worker::Shared`] and [`worker::Command`].

pub mod paced;
pub mod pulses;
pub mod schedule;
pub mod store;
pub mod worker;
