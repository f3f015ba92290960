//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod decode;
mod gpio_sim;
mod healthy;
mod interop;
mod matrix;
#[cfg(feature = "pi-hardware")]
mod pi_hardware;
mod read;
mod realtime;
mod run;
mod serial;
mod serial_run;
mod serve;
mod sigrok;
mod sim;
mod suites;
mod util;
mod wiring;
