//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod decode;
mod evidence;
mod gpio_sim;
mod healthy;
mod interop;
mod matrix;
mod module;
mod module_link;
mod module_pins;
mod module_port;
mod operator;
#[cfg(feature = "pi-hardware")]
mod pi_hardware;
mod read;
mod realtime;
mod run;
mod serial;
mod serial_run;
mod serve;
mod serve_ci;
mod sigrok;
mod sim;
mod suites;
mod util;
mod wiring;
