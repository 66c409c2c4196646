//! OS specifics, one module per platform. Everything above this module is portable.
//!
//! Linux is built and tested. Other Unix systems compile with the portable fallbacks below
//! (no start time, no boot id, no flock holder lookup): liveness then rests on `kill(pid, 0)`
//! alone, which cannot tell a reused pid from the original holder.

// The only modules of this crate allowed `unsafe` (see lib.rs); every block says why it is sound.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod watch;
#[cfg(target_os = "linux")]
pub use linux::{
    boot_id, children_of, flock_holder_pid, machine_id, process_cmdline, process_group_alive,
    process_group_of, process_is_zombie, process_start_time, rename_noreplace,
    set_parent_death_signal, tcp_listener_pid,
};
#[cfg(target_os = "linux")]
pub use watch::ProcessHandle;

/// `_exit(code)`: ends the process at once, skipping atexit handlers and destructors (the
/// safety net uses it because the thread they would run on may be the stuck one).
#[allow(unsafe_code)]
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit only ends the process; no Rust invariant can be observed after it.
    unsafe { libc::_exit(code) }
}

#[cfg(not(target_os = "linux"))]
mod fallback {
    use std::fs::File;

    pub fn process_start_time(_pid: i32) -> Option<u64> {
        None
    }

    pub fn boot_id() -> Option<String> {
        None
    }

    /// No stable machine id known here (untested platforms): records name no machine.
    pub fn machine_id() -> Option<String> {
        None
    }

    pub fn flock_holder_pid(_file: &File) -> Option<i32> {
        None
    }

    pub fn process_is_zombie(_pid: i32) -> bool {
        false
    }

    pub fn tcp_listener_pid(_port: u16) -> Option<i32> {
        None
    }

    /// Check, then rename (untested platforms): a narrow race, never a wrong file.
    pub fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
        if to.exists() {
            return Err(std::io::ErrorKind::AlreadyExists.into());
        }
        std::fs::rename(from, to)
    }

    /// Without /proc the adopted children are not listed (untested platforms).
    pub fn children_of(_parent: i32) -> Vec<(i32, i32)> {
        vec![]
    }

    /// No portable way to read another process's command line: nothing is proven by it.
    pub fn process_cmdline(_pid: i32) -> Option<String> {
        None
    }

    /// No PR_SET_PDEATHSIG outside Linux: the runner's own stop path is relied on.
    pub fn set_parent_death_signal(_command: &mut tokio::process::Command) {}

    /// Needs `ps`-like facilities this fallback lacks.
    pub fn process_group_of(_pid: i32) -> Option<i32> {
        None
    }

    /// A process addressed by pid alone (no pidfd): signals go to the raw pid and exits are
    /// seen by polling, so a pid reused in between cannot be ruled out (untested platforms).
    pub struct ProcessHandle {
        pid: i32,
    }

    impl ProcessHandle {
        pub fn open(pid: i32) -> Option<ProcessHandle> {
            (pid > 1 && crate::process::pid_exists(pid) == Some(true))
                .then_some(ProcessHandle { pid })
        }

        pub fn signal(&self, signal: nix::sys::signal::Signal) -> bool {
            nix::sys::signal::kill(nix::unistd::Pid::from_raw(self.pid), signal).is_ok()
        }

        pub async fn exited(&self) {
            while crate::process::pid_exists(self.pid) == Some(true) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }

    /// Counts zombies too (no portable way to tell them apart).
    pub fn process_group_alive(pgid: i32) -> bool {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
    }
}
#[cfg(not(target_os = "linux"))]
pub use fallback::{
    boot_id, children_of, flock_holder_pid, machine_id, process_cmdline, process_group_alive,
    process_group_of, process_is_zombie, process_start_time, rename_noreplace,
    set_parent_death_signal, tcp_listener_pid, ProcessHandle,
};
