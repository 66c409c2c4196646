//! Whether a pid is alive, and whether it is still the process we recorded.
//!
//! A pid alone does not name a process: pids are reused. A [`ProcessIdentity`] adds the start
//! time and boot id where the OS can tell them, so a recycled pid reads as [`Liveness::Reused`]
//! rather than alive. `kill(pid, 0)` answering EPERM means the process exists (it belongs to
//! someone else), so it counts as alive. Pids 0, 1 and negatives are never probed with a signal
//! (kill(0) and kill(-1) address groups); pid 1 is always alive.

use std::time::Duration;

use crate::platform::{self, Signal};

/// What a recorded identity says about the process now.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Liveness {
    /// The pid exists and, where we can tell, is the same process.
    Alive,
    /// No process has this pid.
    Dead,
    /// A process has this pid, but it started at another time or boot: the original is dead.
    Reused,
    /// Not a pid a process can hold (0 or negative).
    Invalid,
    /// Recorded on another machine (a registry on a network home shared between machines): it
    /// cannot be checked from here, so it is never taken for dead.
    Foreign,
}

impl Liveness {
    /// True when the recorded process is provably gone.
    pub fn is_provably_dead(self) -> bool {
        matches!(self, Liveness::Dead | Liveness::Reused)
    }
}

/// A process as recorded at one moment: pid plus, where known, start time and boot id.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessIdentity {
    pub pid: i32,
    /// Clock ticks since boot (Linux); `None` where the OS does not tell.
    pub start_time: Option<u64>,
    pub boot_id: Option<String>,
    /// The machine it runs on ([`platform::machine_id`]); `None` in records of older writers.
    pub machine: Option<String>,
}

impl ProcessIdentity {
    /// The calling process.
    pub fn current() -> Self {
        let pid = std::process::id() as i32;
        Self::of(pid).unwrap_or(ProcessIdentity {
            pid,
            start_time: None,
            boot_id: None,
            machine: platform::machine_id(),
        })
    }

    /// The process that has `pid` now, or `None` if there is none.
    pub fn of(pid: i32) -> Option<Self> {
        if pid_exists(pid) != Some(true) {
            return None;
        }
        Some(ProcessIdentity {
            pid,
            start_time: platform::process_start_time(pid),
            boot_id: platform::boot_id(),
            machine: platform::machine_id(),
        })
    }

    /// An identity known only by pid (e.g. read from a file written by an older tool).
    pub fn pid_only(pid: i32) -> Self {
        ProcessIdentity {
            pid,
            start_time: None,
            boot_id: None,
            machine: None,
        }
    }

    /// Compares this record with the process that has the pid now.
    pub fn liveness(&self) -> Liveness {
        if let (Some(recorded), Some(here)) = (&self.machine, platform::machine_id()) {
            if *recorded != here {
                return Liveness::Foreign;
            }
        }
        match pid_exists(self.pid) {
            None => return Liveness::Invalid,
            Some(false) => return Liveness::Dead,
            Some(true) => {}
        }
        if self.pid == 1 {
            return Liveness::Alive;
        }
        // Exited, not yet reaped (an orphan's zombie waits on init): it runs nothing.
        if platform::process_is_zombie(self.pid) {
            return Liveness::Dead;
        }
        if let (Some(recorded), Some(now)) = (&self.boot_id, platform::boot_id()) {
            if *recorded != now {
                return Liveness::Reused;
            }
        }
        if let (Some(recorded), Some(now)) =
            (self.start_time, platform::process_start_time(self.pid))
        {
            if recorded != now {
                return Liveness::Reused;
            }
        }
        Liveness::Alive
    }

    /// Sends `signal` to this process only if it still is this process: through a pidfd opened
    /// before the identity is re-checked, so a pid reused in between is never signalled.
    /// False when it was not sent.
    pub fn signal(&self, signal: Signal) -> bool {
        self.handle().is_ok_and(|handle| handle.signal(signal))
    }

    /// A handle on this very process: opened first, then the identity checked, so the handle
    /// cannot name a process that reused the pid. Otherwise what the pid is now (`Invalid` for
    /// pids 0, 1, negatives and our own, which are never signalled).
    fn handle(&self) -> Result<platform::ProcessHandle, Liveness> {
        if self.pid <= 1 || self.pid == std::process::id() as i32 {
            return Err(Liveness::Invalid);
        }
        let Some(handle) = platform::ProcessHandle::open(self.pid) else {
            return Err(self.liveness());
        };
        match self.liveness() {
            Liveness::Alive => Ok(handle),
            other => Err(other),
        }
    }

    /// True when the record names this very process (same pid, same start).
    pub fn is_current_process(&self) -> bool {
        self.pid == std::process::id() as i32 && self.liveness() == Liveness::Alive
    }

    /// The record as text: the pid alone on the first line (readers that parse an int keep
    /// working), then `key=value` lines.
    pub fn to_record(&self) -> String {
        let mut out = format!("{}\n", self.pid);
        if let Some(start) = self.start_time {
            out.push_str(&format!("start={start}\n"));
        }
        if let Some(boot) = &self.boot_id {
            out.push_str(&format!("boot={boot}\n"));
        }
        if let Some(machine) = &self.machine {
            out.push_str(&format!("machine={machine}\n"));
        }
        out
    }

    /// Parses [`to_record`](Self::to_record) output, and plain `"<pid>"` from older writers.
    /// Returns `None` for empty or garbage text.
    pub fn parse_record(text: &str) -> Option<Self> {
        let mut lines = text.lines();
        let pid: i32 = lines.next()?.trim().parse().ok()?;
        let mut identity = ProcessIdentity::pid_only(pid);
        for line in lines {
            match line.split_once('=') {
                Some(("start", v)) => identity.start_time = v.trim().parse().ok(),
                Some(("boot", v)) => identity.boot_id = Some(v.trim().to_owned()),
                Some(("machine", v)) => identity.machine = Some(v.trim().to_owned()),
                _ => {}
            }
        }
        Some(identity)
    }
}

/// Stops a process that is not our child (an orphaned serve), as upstream does: SIGTERM to the
/// process — and to its group when it leads one — then SIGKILL to both after `grace`. True only
/// once the process is gone (and, when it led a group, every member of it); false when it
/// could not be stopped or `process` is not provably that process (pids 0, 1, -1 and our own
/// are refused; a pid now held by another process is never signalled).
///
/// Signals go through a pidfd opened *before* the identity check, so the process checked is
/// the process signalled. Its exit is awaited on the pidfd; a group's other members, which
/// have no pidfd of their own, are looked at every 10 ms once the leader is gone.
pub async fn stop_process(process: &ProcessIdentity, grace: Duration) -> bool {
    let pid = process.pid;
    let handle = match process.handle() {
        Ok(handle) => handle,
        Err(now) => return now.is_provably_dead(),
    };
    let leads_group = platform::process_group_of(pid) == Some(pid);
    let send = |signal: Signal| {
        handle.signal(signal);
        if leads_group {
            platform::signal_group(pid, signal);
        }
    };
    let gone = || async {
        handle.exited().await;
        while leads_group && platform::process_group_alive(pid) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    send(Signal::Term);
    if tokio::time::timeout(grace, gone()).await.is_ok() {
        return true;
    }
    send(Signal::Kill);
    tokio::time::timeout(KILL_WAIT, gone()).await.is_ok()
}

/// How long a SIGKILLed process may take to be gone before a stop reports failure.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Stops every running child of this process (a subreaper adopts what a daemonizing serve left):
/// a child leading its own group has the group stopped, any other child alone. How many there were.
pub async fn stop_adopted_children(grace: std::time::Duration) -> usize {
    let me = std::process::id() as i32;
    let children = crate::platform::children_of(me);
    for &(pid, pgrp) in &children {
        match ProcessIdentity::of(pid) {
            Some(child) if pgrp == pid => {
                stop_process(&child, grace).await;
            }
            // Our child until we reap it below: its pid cannot be reused in between.
            _ => {
                platform::signal_child(pid, Signal::Kill);
            }
        }
    }
    // Reap them (we are their parent now), so none lingers as a zombie.
    platform::reap_exited_children(None);
    children.len()
}

/// Resolves when `pid` exits (a pidfd on Linux); never for `None`. Where no pidfd can be opened,
/// it resolves after a short interval instead, so callers look again.
pub async fn exited(pid: Option<i32>) {
    let Some(pid) = pid.filter(|&p| p > 1) else {
        return std::future::pending().await;
    };
    if let Some(watch) = platform::ExitWatch::open(pid) {
        watch.exited().await;
        return;
    }
    tokio::time::sleep(std::time::Duration::from_millis(50)).await
}

pub use platform::pid_exists;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn current_process_is_alive_and_round_trips() {
        let me = ProcessIdentity::current();
        assert_eq!(Liveness::Alive, me.liveness());
        assert!(me.is_current_process());
        let parsed = ProcessIdentity::parse_record(&me.to_record()).unwrap();
        assert_eq!(me, parsed);
    }

    #[test]
    fn reused_pid_is_detected_by_start_time() {
        let mut me = ProcessIdentity::current();
        me.start_time = me.start_time.map(|s| s + 1);
        assert_eq!(Liveness::Reused, me.liveness());
        assert!(!me.is_current_process());
        let mut other_boot = ProcessIdentity::current();
        other_boot.boot_id = Some("not-this-boot".into());
        assert_eq!(Liveness::Reused, other_boot.liveness());
    }

    #[test]
    fn another_machines_process_is_never_taken_for_dead() {
        let mut elsewhere = ProcessIdentity::current();
        assert!(elsewhere.machine.is_some(), "this machine has an id");
        elsewhere.machine = Some("another-machine".into());
        // Even with a boot id and start time that do not match here (another kernel).
        elsewhere.boot_id = Some("another-boot".into());
        assert_eq!(Liveness::Foreign, elsewhere.liveness());
        assert!(!elsewhere.liveness().is_provably_dead());
        let parsed = ProcessIdentity::parse_record(&elsewhere.to_record()).unwrap();
        assert_eq!(elsewhere, parsed);
        assert!(!elsewhere.signal(Signal::Term));
    }

    #[test]
    fn dead_invalid_and_init() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        assert_eq!(Liveness::Dead, ProcessIdentity::pid_only(pid).liveness());
        assert_eq!(Liveness::Invalid, ProcessIdentity::pid_only(0).liveness());
        assert_eq!(Liveness::Invalid, ProcessIdentity::pid_only(-1).liveness());
        assert_eq!(None, pid_exists(0));
        // pid 1 is alive whether kill() says OK (root) or EPERM (anyone else).
        let mut init = ProcessIdentity::pid_only(1);
        init.start_time = Some(u64::MAX);
        assert_eq!(Liveness::Alive, init.liveness());
    }

    #[test]
    fn a_zombie_is_dead() {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(std::time::Duration::from_millis(100)); // exited, not reaped
        assert_eq!(
            Some(true),
            pid_exists(pid),
            "kill(pid, 0) still succeeds on a zombie"
        );
        assert_eq!(Liveness::Dead, ProcessIdentity::pid_only(pid).liveness());
        child.wait().unwrap();
    }

    #[tokio::test]
    async fn stops_a_process_that_leads_no_group() {
        // Spawned without a group of its own: it shares ours, so only its pid may be signalled.
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        assert_ne!(Some(pid), platform::process_group_of(pid));
        let identity = ProcessIdentity::of(pid).unwrap();
        assert!(stop_process(&identity, Duration::from_secs(2)).await);
        let ended_by = platform::exit_signal(&child.wait().unwrap());
        assert_eq!(Some("SIGTERM"), ended_by.and_then(platform::signal_name));
    }

    #[tokio::test]
    async fn stops_a_group_that_ignores_sigterm_and_refuses_a_reused_pid() {
        let mut command = std::process::Command::new("sh");
        command.args(["-c", "trap '' TERM; sleep 30 & wait"]);
        platform::std_own_process_group(&mut command);
        let mut child = command.spawn().unwrap();
        let pid = child.id() as i32;
        std::thread::sleep(Duration::from_millis(100));
        let mut reused = ProcessIdentity::of(pid).unwrap();
        reused.start_time = reused.start_time.map(|t| t + 1);
        assert!(
            stop_process(&reused, Duration::from_millis(100)).await,
            "the recorded process is gone"
        );
        assert!(
            platform::process_group_alive(pid),
            "a reused pid is never signalled"
        );
        let identity = ProcessIdentity::of(pid).unwrap();
        assert!(stop_process(&identity, Duration::from_millis(200)).await);
        assert!(
            !platform::process_group_alive(pid),
            "the whole group is gone"
        );
        child.wait().unwrap();
        assert!(!stop_process(&ProcessIdentity::pid_only(1), Duration::ZERO).await);
    }

    #[test]
    fn parses_old_and_garbage_records() {
        assert_eq!(
            Some(ProcessIdentity::pid_only(42)),
            ProcessIdentity::parse_record("42\n")
        );
        assert_eq!(
            Some(ProcessIdentity::pid_only(42)),
            ProcessIdentity::parse_record("42")
        );
        assert_eq!(None, ProcessIdentity::parse_record(""));
        assert_eq!(None, ProcessIdentity::parse_record("\u{0}\u{0}garbage"));
        assert_eq!(None, ProcessIdentity::parse_record("12abc"));
    }
}
