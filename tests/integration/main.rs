//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod decode;
mod interop;
mod read;
mod run;
mod serial;
mod serial_run;
mod sim;
mod suites;
mod util;
