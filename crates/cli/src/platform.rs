//! The binary's one piece of `unsafe`: forking the runner off the short-lived `run` process
//! (the only module of this crate allowed `unsafe`).

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
