//! Opt-in real-time scheduling (`rig --realtime[=PRIORITY] …`): `SCHED_FIFO` and locked memory.
//!
//! What it is for: the serial backend stamps a received byte when its read returns (NOTES §3,
//! `serial` module docs), so every millisecond the process waits for a core is a millisecond of
//! error in a response time. On a loaded machine that wait was 2–4 ms (measured with
//! `perf sched`); under `SCHED_FIFO` the rig runs before every ordinary process as soon as its
//! read is ready. Locking memory (`mlockall(MCL_CURRENT | MCL_FUTURE)`) keeps a page fault from
//! adding a disk wait to the same path.
//!
//! [`enter`] is called once at the start of `main`, before any other thread exists; threads
//! started later (tokio's, the signal thread, the pin watchers) inherit the policy from the
//! thread that creates them (`PTHREAD_INHERIT_SCHED`, the default).
//!
//! Permissions: `SCHED_FIFO` needs `CAP_SYS_NICE` (or an `RLIMIT_RTPRIO` of at least the
//! priority); locking memory needs `CAP_IPC_LOCK` or an unlimited `RLIMIT_MEMLOCK` (with a finite
//! limit, `MCL_FUTURE` would make later allocations fail once the limit is reached, so it is
//! refused up front). The systemd unit (`wiring/systemd/meter-rig.service`) grants both. Without
//! them [`enter`] fails with a [`RealtimeError`] naming the missing capability and the fix; it
//! never falls back silently.

use std::fmt;

use rustix::mm::{mlockall, MlockAllFlags};
use rustix::process::{getrlimit, Resource};
use rustix::thread::{capabilities, CapabilitySet};
use thread_priority::{
    set_thread_priority_and_policy, thread_native_id, RealtimeThreadSchedulePolicy, ThreadPriority,
    ThreadPriorityValue, ThreadSchedulePolicy,
};

/// The `SCHED_FIFO` priority of `--realtime` without a value: the one the accuracy bench measured
/// with `chrt -f 10`; below the kernel's threaded interrupt handlers (`SCHED_FIFO` 50), so the
/// UART's and the GPIO chip's interrupts still run first.
pub const DEFAULT_PRIORITY: u8 = 10;

/// Why the real-time mode could not be entered. Every message names the cause and the fix.
#[derive(Debug, thiserror::Error)]
pub enum RealtimeError {
    /// The priority is outside `SCHED_FIFO`'s 1–99.
    #[error(
        "--realtime={priority}: SCHED_FIFO priorities run from 1 to 99; give one in that range \
         (default {DEFAULT_PRIORITY})"
    )]
    Priority {
        /// The priority asked for.
        priority: u8,
    },
    /// `sched_setscheduler` refused: the process lacks `CAP_SYS_NICE`.
    #[error(
        "--realtime: SCHED_FIFO at priority {priority} is not permitted: the process lacks \
         CAP_SYS_NICE (and its RLIMIT_RTPRIO is {rtprio}); run it as root, grant the capability \
         (`sudo setcap cap_sys_nice,cap_ipc_lock+ep /usr/local/bin/rig`, or \
         `AmbientCapabilities=CAP_SYS_NICE CAP_IPC_LOCK` in the systemd unit), or leave out \
         --realtime"
    )]
    NotPermitted {
        /// The priority asked for.
        priority: u8,
        /// The soft `RLIMIT_RTPRIO` (`unlimited` or a number).
        rtprio: String,
    },
    /// Another failure of `pthread_setschedparam` (its error number).
    #[error("--realtime: setting SCHED_FIFO at priority {priority} failed: {detail}")]
    Sched {
        /// The priority asked for.
        priority: u8,
        /// What the call reported.
        detail: String,
    },
    /// Memory cannot be locked whole: no `CAP_IPC_LOCK` and a finite `RLIMIT_MEMLOCK`.
    #[error(
        "--realtime: locking memory needs CAP_IPC_LOCK or an unlimited locked-memory limit, and \
         the limit is {limit_kib} KiB without the capability; raise it (`ulimit -l unlimited`, \
         `LimitMEMLOCK=infinity` in the systemd unit) or grant CAP_IPC_LOCK"
    )]
    MemlockLimit {
        /// The soft `RLIMIT_MEMLOCK` in KiB.
        limit_kib: u64,
    },
    /// `mlockall` itself failed (e.g. not enough memory to lock).
    #[error("--realtime: mlockall(MCL_CURRENT | MCL_FUTURE) failed: {source}")]
    Mlock {
        /// The system error.
        #[source]
        source: std::io::Error,
    },
}

/// The real-time mode in force: what [`enter`] set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Realtime {
    /// The `SCHED_FIFO` priority (1–99).
    pub priority: u8,
}

impl fmt::Display for Realtime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SCHED_FIFO at priority {}, memory locked (current and future)",
            self.priority
        )
    }
}

/// Puts the calling thread under `SCHED_FIFO` at `priority` and locks the process's memory.
/// Call it before starting other threads (see the module docs).
///
/// # Errors
/// [`RealtimeError::Priority`] outside 1–99; [`RealtimeError::NotPermitted`] without
/// `CAP_SYS_NICE`; [`RealtimeError::MemlockLimit`] without `CAP_IPC_LOCK` and with a finite
/// locked-memory limit; [`RealtimeError::Sched`] / [`RealtimeError::Mlock`] for other failures of
/// the calls. On an error after the policy was set, the policy stays (the caller exits).
pub fn enter(priority: u8) -> Result<Realtime, RealtimeError> {
    if !(1..=99).contains(&priority) {
        return Err(RealtimeError::Priority { priority });
    }
    let value = ThreadPriorityValue::try_from(priority)
        .map_err(|_| RealtimeError::Priority { priority })?;
    set_thread_priority_and_policy(
        thread_native_id(),
        ThreadPriority::Crossplatform(value),
        ThreadSchedulePolicy::Realtime(RealtimeThreadSchedulePolicy::Fifo),
    )
    .map_err(|e| sched_error(priority, e))?;
    check_memlock(has_capability(CapabilitySet::IPC_LOCK), memlock_limit())?;
    mlockall(MlockAllFlags::CURRENT | MlockAllFlags::FUTURE)
        .map_err(|e| RealtimeError::Mlock { source: e.into() })?;
    Ok(Realtime { priority })
}

/// The typed error for a failure of `pthread_setschedparam` (`EPERM` is the missing capability).
fn sched_error(priority: u8, e: thread_priority::Error) -> RealtimeError {
    match e {
        thread_priority::Error::OS(code) if code == rustix::io::Errno::PERM.raw_os_error() => {
            RealtimeError::NotPermitted {
                priority,
                rtprio: getrlimit(Resource::Rtprio)
                    .current
                    .map_or_else(|| "unlimited".into(), |v| v.to_string()),
            }
        }
        e => RealtimeError::Sched {
            priority,
            detail: e.to_string(),
        },
    }
}

/// Whether the calling thread's effective set holds `cap` (false when it cannot be read).
fn has_capability(cap: CapabilitySet) -> bool {
    capabilities(None).is_ok_and(|c| c.effective.contains(cap))
}

/// The soft locked-memory limit in bytes (`None`: unlimited).
fn memlock_limit() -> Option<u64> {
    getrlimit(Resource::Memlock).current
}

/// Whether `mlockall(MCL_FUTURE)` is safe to ask for: with `CAP_IPC_LOCK` or no limit, yes; with
/// a finite limit and no capability, later allocations would fail at the limit, so refuse.
fn check_memlock(ipc_lock: bool, limit_bytes: Option<u64>) -> Result<(), RealtimeError> {
    match (ipc_lock, limit_bytes) {
        (true, _) | (false, None) => Ok(()),
        (false, Some(bytes)) => Err(RealtimeError::MemlockLimit {
            limit_kib: bytes / 1024,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn priorities_outside_1_to_99_are_refused_with_the_range() {
        for p in [0u8, 100, 255] {
            let e = enter(p).unwrap_err();
            assert!(matches!(e, RealtimeError::Priority { priority } if priority == p));
            assert!(e.to_string().contains("from 1 to 99"), "{e}");
        }
    }

    #[test]
    fn eperm_from_the_scheduler_names_cap_sys_nice_and_the_fix() {
        let e = sched_error(10, thread_priority::Error::OS(1));
        let msg = e.to_string();
        assert!(matches!(
            e,
            RealtimeError::NotPermitted { priority: 10, .. }
        ));
        for want in [
            "CAP_SYS_NICE",
            "RLIMIT_RTPRIO",
            "setcap",
            "AmbientCapabilities",
        ] {
            assert!(msg.contains(want), "{want} missing in: {msg}");
        }
        let other = sched_error(10, thread_priority::Error::OS(22));
        assert!(matches!(other, RealtimeError::Sched { .. }), "{other:?}");
    }

    #[test]
    fn memory_is_locked_only_with_the_capability_or_no_limit() {
        assert!(check_memlock(true, Some(8 << 20)).is_ok());
        assert!(check_memlock(false, None).is_ok());
        let e = check_memlock(false, Some(8 << 20)).unwrap_err();
        assert!(matches!(e, RealtimeError::MemlockLimit { limit_kib: 8192 }));
        assert!(e.to_string().contains("LimitMEMLOCK=infinity"), "{e}");
    }
}
