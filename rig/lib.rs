//! meter-rig: a hardware-in-the-loop test rig and module emulator for Kamstrup 351 Combi and
//! OMNIPOWER electricity meters, speaking IEC 62056-21 mode A over the 6-pin module interface.
//!
//! Layers, from the bottom:
//! - [`time`]: timestamps; every time the rig judges comes from an edge or a byte, never a clock.
//! - [`uart`]: the software UART between characters and timed edges.
//! - [`iec62056`]: the sans-I/O protocol codec (request, identification, data message, BCC).
//! - [`meter`]: the readout model, order codes and profiles shared by the simulator and suites.
//! - [`module`]: module-vendor mode, the rig playing the meter to a module under test.
//! - [`service`]: the module loop and run scheduling of `rig serve`.

pub mod evidence;
pub mod iec62056;
pub mod line;
pub mod meter;
pub mod module;
pub mod pins;
pub mod realtime;
pub mod report;
pub mod serial;
pub mod service;
pub mod sim;
pub mod suite;
pub mod target;
pub mod time;
pub mod uart;
