//! `--module-report CMD`: how the rig learns what an external module forwarded, for
//! `module.data`.
//!
//! The rig runs `CMD` under `sh -c` once before `module.data`'s first window (what it prints
//! then, the values forwarded during earlier cases, is parsed and set aside) and once after each
//! window. Each run prints, on stdout, the values the module forwarded since the previous run as
//! JSON ([`Forwarded`]): `{"values":[{"obis":"1.8.0","value":"0001234","unit":"kWh"}]}`. The
//! environment says which run it is: `RIG_MODULE_CASE` (`module.data`) and `RIG_MODULE_WINDOW`
//! (`before`, then `good`, `bad_bcc`, `bad_parity`). A run that cannot start, exits non-zero,
//! takes longer than its timeout or prints anything else is a [`ReportError`], never a pass.

use std::io::Read;
use std::os::unix::process::CommandExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::data::{Forwarded, ReportError};

/// How long one run of the command may take by default.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// A `--module-report` command.
#[derive(Debug, Clone)]
pub struct ReportCommand {
    /// The shell command.
    pub command: String,
    /// How long one run may take before it is killed.
    pub timeout: Duration,
}

impl ReportCommand {
    /// `command` with the [`DEFAULT_TIMEOUT`].
    pub fn new(command: impl Into<String>) -> Self {
        ReportCommand {
            command: command.into(),
            timeout: DEFAULT_TIMEOUT,
        }
    }

    /// Runs the command for `window` (the value of `RIG_MODULE_WINDOW`) and parses its report.
    ///
    /// # Errors
    /// [`ReportError::Spawn`], [`ReportError::Timeout`] (the command is killed),
    /// [`ReportError::Failed`] (non-zero exit, with the end of its stderr),
    /// [`ReportError::BadJson`].
    pub fn run(&self, window: &str) -> Result<Forwarded, ReportError> {
        let spawn = |source| ReportError::Spawn {
            command: self.command.clone(),
            source,
        };
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(&self.command)
            .env("RIG_MODULE_CASE", "module.data")
            .env("RIG_MODULE_WINDOW", window)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // its own process group, so a timeout ends what the shell started too
            .process_group(0)
            .spawn()
            .map_err(spawn)?;
        let out = reader(child.stdout.take());
        let err = reader(child.stderr.take());
        let deadline = Instant::now() + self.timeout;
        let status = loop {
            if let Some(s) = child.try_wait().map_err(spawn)? {
                break s;
            }
            if Instant::now() >= deadline {
                // the process group of our own child (it leads it), by its id
                let pgid = rustix::process::Pid::from_child(&child);
                let _ = rustix::process::kill_process_group(pgid, rustix::process::Signal::KILL);
                let _ = child.kill();
                let _ = child.wait();
                return Err(ReportError::Timeout {
                    command: self.command.clone(),
                    timeout_s: self.timeout.as_secs_f64(),
                });
            }
            std::thread::sleep(Duration::from_millis(10));
        };
        let stdout = out.join().unwrap_or_default();
        let stderr = err.join().unwrap_or_default();
        if !status.success() {
            let tail: String = stderr.trim().chars().rev().take(300).collect();
            return Err(ReportError::Failed {
                command: self.command.clone(),
                status: status.to_string(),
                stderr: tail.chars().rev().collect(),
            });
        }
        Forwarded::parse(&self.command, &stdout)
    }
}

/// Reads a pipe to its end on a thread (so a chatty command cannot block on a full pipe).
fn reader<R: Read + Send + 'static>(pipe: Option<R>) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut s = String::new();
        if let Some(mut p) = pipe {
            let mut buf = Vec::new();
            let _ = p.read_to_end(&mut buf);
            s = String::from_utf8_lossy(&buf).into_owned();
        }
        s
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_command_prints_the_report_and_sees_its_window() {
        let c = ReportCommand::new(
            r#"printf '{"values":[{"obis":"1.8.0","value":"%s"}]}' "$RIG_MODULE_WINDOW""#,
        );
        let f = c.run("good").unwrap();
        assert_eq!(f.values[0].value, "good");
    }

    #[test]
    fn failure_timeout_and_bad_json_are_typed_errors() {
        let e = ReportCommand::new("echo broken >&2; exit 3")
            .run("good")
            .unwrap_err();
        assert!(matches!(e, ReportError::Failed { .. }), "{e}");
        assert!(e.to_string().contains("broken"), "{e}");
        let mut slow = ReportCommand::new("sleep 5");
        slow.timeout = Duration::from_millis(200);
        let t = Instant::now();
        let e = slow.run("good").unwrap_err();
        assert!(matches!(e, ReportError::Timeout { .. }), "{e}");
        assert!(t.elapsed() < Duration::from_secs(3));
        let e = ReportCommand::new("echo '{\"values\": 5}'")
            .run("good")
            .unwrap_err();
        assert!(matches!(e, ReportError::BadJson { .. }), "{e}");
    }
}
