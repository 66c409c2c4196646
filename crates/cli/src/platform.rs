//! The binary's OS specifics, beside core's `platform` module: what only the process that owns
//! itself may do — fork the runner off the short-lived `run` process, start a session, point its
//! standard streams at the log, become a subreaper, and install the stop signals' handlers
//! (process-wide effects never live in the crate the addon links). The only module of this crate
//! allowed `unsafe`.

use std::fs::File;

use nix::unistd::{fork, ForkResult};

/// Which side of a fork this process is on.
pub enum Forked {
    /// The original process; the child's pid.
    Parent(i32),
    Child,
}

/// `fork(2)`. Call it only while the process has a single thread (before any runtime starts).
#[allow(unsafe_code)]
pub fn fork_single_threaded() -> nix::Result<Forked> {
    // SAFETY: callers fork before creating any thread (the runtime is built after the fork), so
    // the child cannot inherit a lock held by another thread.
    match unsafe { fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// A session of its own (no controlling terminal; signals to the launcher's group miss it).
pub fn new_session() {
    let _ = nix::unistd::setsid();
}

/// stdin from `null`; stdout and stderr to `log`.
pub fn redirect_stdio(null: &File, log: &File) {
    let _ = nix::unistd::dup2_stdin(null);
    let _ = nix::unistd::dup2_stdout(log);
    let _ = nix::unistd::dup2_stderr(log);
}

/// Orphaned grandchildren of the serve are re-parented to the runner, which reaps them while
/// tearing the group down (Linux); elsewhere they go to init as usual.
pub fn become_subreaper() {
    #[cfg(target_os = "linux")]
    let _ = nix::sys::prctl::set_child_subreaper(true);
}

/// The requests to stop this process (SIGTERM, SIGINT). Must be created within a tokio runtime.
pub struct StopRequests {
    term: tokio::signal::unix::Signal,
    int: tokio::signal::unix::Signal,
}

impl StopRequests {
    pub fn install() -> std::io::Result<StopRequests> {
        use tokio::signal::unix::{signal, SignalKind};
        Ok(StopRequests {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    /// Resolves at the next request.
    pub async fn recv(&mut self) {
        tokio::select! {
            _ = self.term.recv() => {}
            _ = self.int.recv() => {}
        }
    }
}
