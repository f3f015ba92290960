//! Subcommand implementations. Each module owns its clap `Args` and a `run` returning the exit
//! code; errors that reach `main` are setup errors (exit 2).

pub mod calibrate;
pub mod decode;
pub mod read;
pub mod run;
pub mod serve;
pub mod sim;
pub mod targets;
pub mod wiring;
