//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod util;
mod wiring;
