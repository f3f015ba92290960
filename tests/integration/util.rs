//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::path::PathBuf;
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A path under the repository root.
pub fn path(rel: &str) -> PathBuf {
    root().join(rel)
}

/// The built `rig` binary.
pub fn rig() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_rig"));
    c.current_dir(root());
    c
}

/// Runs `rig` with `args` and returns its output.
pub fn run_rig(args: &[&str]) -> Output {
    rig().args(args).output().expect("run rig")
}

/// Exit code of an output (panics on a signal).
pub fn code(o: &Output) -> i32 {
    o.status.code().expect("rig exited by signal")
}

/// Waits until `path` exists (a pty link created by `rig sim`), failing after 10 s.
pub fn wait_for_path(path: &std::path::Path) {
    let t0 = std::time::Instant::now();
    while !path.exists() {
        assert!(
            t0.elapsed() < std::time::Duration::from_secs(10),
            "{} did not appear",
            path.display()
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}
