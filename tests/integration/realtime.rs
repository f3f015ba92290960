//! `rig --realtime`: SCHED_FIFO at the stated priority with memory locked, and a typed refusal
//! naming CAP_SYS_NICE when the process lacks it (rig/realtime.rs).

use std::process::{Command, Stdio};

use crate::util::{self, code, rig};

/// Whether this machine lets a process take SCHED_FIFO (root with CAP_SYS_NICE, as in CI).
fn fifo_permitted() -> bool {
    Command::new("chrt")
        .args(["-f", "10", "true"])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// `rig` with `args`, run without CAP_SYS_NICE: through `setpriv` dropping it from the bounding
/// set where the process has it, as it is where it does not.
fn rig_without_sys_nice(args: &[&str]) -> std::process::Output {
    let r = rig();
    let mut c = if fifo_permitted() {
        let mut c = Command::new("setpriv");
        c.args(["--bounding-set=-sys_nice", "--inh-caps=-sys_nice"])
            .arg(r.get_program())
            .args(r.get_args());
        c
    } else {
        r
    };
    c.current_dir(util::root())
        .args(args)
        .output()
        .expect("run")
}

/// Fields of /proc/PID/task/TID/stat after the command name: (rt_priority, policy).
fn sched_of(stat: &str) -> (u32, u32) {
    let rest = &stat[stat.rfind(')').expect("comm") + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    // fields 40 and 41 of proc(5); `rest` starts at field 3
    (f[40 - 3].parse().unwrap(), f[41 - 3].parse().unwrap())
}

#[test]
fn without_cap_sys_nice_the_mode_is_refused_with_the_capability_and_the_fix() {
    let o = rig_without_sys_nice(&["--realtime", "run", "--list"]);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(code(&o), 2, "stderr: {err}");
    assert!(err.contains("CAP_SYS_NICE"), "{err}");
    assert!(err.contains("AmbientCapabilities"), "{err}");
    assert!(
        o.stdout.is_empty(),
        "nothing ran: {}",
        String::from_utf8_lossy(&o.stdout)
    );
}

#[test]
fn a_priority_outside_1_to_99_is_a_usage_error() {
    let o = util::run_rig(&["--realtime=0", "run", "--list"]);
    assert_eq!(code(&o), 2);
    assert!(String::from_utf8_lossy(&o.stderr).contains("from 1 to 99"));
}

#[test]
fn rig_sim_with_realtime_runs_under_sched_fifo_at_the_priority_with_memory_locked() {
    if !fifo_permitted() {
        // the refusal is the behaviour to see here
        let o = util::run_rig(&["--realtime=12", "run", "--list"]);
        assert_eq!(code(&o), 2);
        assert!(String::from_utf8_lossy(&o.stderr).contains("CAP_SYS_NICE"));
        return;
    }
    let link = std::path::PathBuf::from(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("rig-rt-{}", std::process::id()));
    let _ = std::fs::remove_file(&link);
    let mut child = rig()
        .args(["sim", "--link", link.to_str().unwrap(), "--realtime=12"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    util::wait_for_path(&link);
    // a read over the pty: the threads it wakes are the process's too
    let times = util::read_response_times(link.to_str().unwrap(), 300, 1);
    let pid = child.id();
    let main = std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/stat")).unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let tasks: Vec<(u32, u32)> = std::fs::read_dir(format!("/proc/{pid}/task"))
        .unwrap()
        .filter_map(|t| std::fs::read_to_string(t.ok()?.path().join("stat")).ok())
        .map(|s| sched_of(&s))
        .collect();
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    );
    let _ = child.wait();
    assert_eq!(times.len(), 1);
    // SCHED_FIFO is policy 1
    assert_eq!(sched_of(&main), (12, 1), "main thread: {main}");
    let locked_kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmLck:"))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .expect("VmLck in /proc/PID/status");
    assert!(locked_kb > 0, "memory locked: {status}");
    // threads started after `enter` inherit the policy (an emulator's own threads do not count)
    if std::env::var_os("METER_RIG_RUNNER").is_none() {
        assert!(
            tasks.iter().all(|&t| t == (12, 1)),
            "every thread under SCHED_FIFO 12: {tasks:?}"
        );
    }
}
