//! The integration-test binary: one binary, one module per area, shared helpers in `util`.

mod gpio_sim;
#[cfg(feature = "pi-hardware")]
mod pi_hardware;
mod util;
mod wiring;
