//! The `rig` command line. See `README.md` for the commands and exit codes.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("rig: no command yet");
    ExitCode::from(2)
}
