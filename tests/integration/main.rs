//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod serial;
mod sim;
mod util;
