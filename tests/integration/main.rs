//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod gpio_sim;
mod util;
mod wiring;
