//! The binary's OS specifics, beside core's `platform` module: what only the process that owns
//! itself may do — detach the runner from the short-lived `run` process (a fork on Unix; on
//! Windows, which cannot fork, a re-spawn of this binary), start a session, point its standard
//! streams at the log, become a subreaper, and install the stop requests' handlers (process-wide
//! effects never live in the crate the addon links). The only module of this crate allowed
//! `unsafe`.

pub use imp::*;

#[cfg(unix)]
mod imp {
    use std::fs::File;
    use std::io;
    use std::path::Path;

    use nix::unistd::{fork, ForkResult};

    /// Which side of a fork this process is on.
    pub enum Forked {
        /// The original process; the child's pid.
        Parent(i32),
        Child,
    }

    /// Unix detaches by forking after the handoff file is read (see [`fork_single_threaded`]).
    pub const DETACHES_BY_FORK: bool = true;

    /// `fork(2)`. Call it only while the process has a single thread (before any runtime
    /// starts).
    #[allow(unsafe_code)]
    pub fn fork_single_threaded() -> io::Result<Forked> {
        // SAFETY: callers fork before creating any thread (the runtime is built after the fork),
        // so the child cannot inherit a lock held by another thread.
        match unsafe { fork() }.map_err(io::Error::from)? {
            ForkResult::Parent { child } => Ok(Forked::Parent(child.as_raw())),
            ForkResult::Child => Ok(Forked::Child),
        }
    }

    /// Only Windows re-spawns (Unix forks).
    pub fn spawn_detached(_params: &Path) -> io::Result<u32> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// A session of its own (no controlling terminal; signals to the launcher's group miss it).
    pub fn new_session() {
        let _ = nix::unistd::setsid();
    }

    /// stdin from `null`; stdout and stderr to `log`.
    pub fn redirect_stdio(null: File, log: File) {
        let _ = nix::unistd::dup2_stdin(&null);
        let _ = nix::unistd::dup2_stdout(&log);
        let _ = nix::unistd::dup2_stderr(&log);
    }

    /// Orphaned grandchildren of the serve are re-parented to the runner, which reaps them
    /// while tearing the group down (Linux); elsewhere they go to init as usual.
    pub fn become_subreaper() {
        // Without it a serve that daemonizes is re-parented to init, out of our reach: say so.
        #[cfg(target_os = "linux")]
        if let Err(err) = nix::sys::prctl::set_child_subreaper(true) {
            tracing::warn!(%err, "cannot become a child subreaper; a serve that daemonizes would escape the runner");
        }
    }

    /// The requests to stop this process (SIGTERM, SIGINT). Must be created within a tokio
    /// runtime.
    pub struct StopRequests {
        term: tokio::signal::unix::Signal,
        int: tokio::signal::unix::Signal,
    }

    impl StopRequests {
        pub fn install() -> io::Result<StopRequests> {
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
}

#[cfg(windows)]
mod imp {
    use std::fs::File;
    use std::io;
    use std::os::windows::io::IntoRawHandle;
    use std::os::windows::process::CommandExt;
    use std::path::Path;
    use std::process::{Command, Stdio};

    use windows_sys::Win32::Foundation::{SetHandleInformation, HANDLE_FLAG_INHERIT};
    use windows_sys::Win32::System::Console::{
        GetStdHandle, SetStdHandle, STD_ERROR_HANDLE, STD_INPUT_HANDLE, STD_OUTPUT_HANDLE,
    };
    use windows_sys::Win32::System::Threading::{
        CREATE_BREAKAWAY_FROM_JOB, CREATE_NEW_PROCESS_GROUP, CREATE_NO_WINDOW,
    };

    /// Never built on Windows: the runner is re-spawned instead ([`spawn_detached`]).
    #[allow(dead_code)]
    pub enum Forked {
        Parent(i32),
        Child,
    }

    pub const DETACHES_BY_FORK: bool = false;

    pub fn fork_single_threaded() -> io::Result<Forked> {
        Err(io::ErrorKind::Unsupported.into())
    }

    /// Starts this binary again as the detached runner (`run --detached <params>`): a process
    /// group of its own with a console of its own that no window shows (the serve shares it, so
    /// CTRL_BREAK can reach the serve's group), out of the launcher's job where that job allows
    /// it, and none of the launcher's handles: its standard streams are made non-inheritable
    /// first, so the consumer reading them sees them close when this process exits.
    #[allow(unsafe_code)]
    pub fn spawn_detached(params: &Path) -> io::Result<u32> {
        for which in [STD_INPUT_HANDLE, STD_OUTPUT_HANDLE, STD_ERROR_HANDLE] {
            // SAFETY: changes a flag of this process's own standard handle (a null or invalid
            // handle makes the call fail harmlessly).
            unsafe { SetHandleInformation(GetStdHandle(which), HANDLE_FLAG_INHERIT, 0) };
        }
        let mut command = Command::new(std::env::current_exe()?);
        command
            .arg("run")
            .arg("--detached")
            .arg(params)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let flags = CREATE_NEW_PROCESS_GROUP | CREATE_NO_WINDOW;
        let child = command
            .creation_flags(flags | CREATE_BREAKAWAY_FROM_JOB)
            .spawn()
            // A job that forbids breaking away: the runner stays in it.
            .or_else(|_| command.creation_flags(flags).spawn())?;
        Ok(child.id())
    }

    /// Started in a group of its own by [`spawn_detached`].
    pub fn new_session() {}

    /// stdin from `null`; stdout and stderr to `log` (the handles stay open for the life of the
    /// process: the standard handles own them now).
    #[allow(unsafe_code)]
    pub fn redirect_stdio(null: File, log: File) {
        let out = log.try_clone().ok();
        // SAFETY: each handle is valid and handed to the process's standard handle table for
        // good (never closed by us).
        unsafe {
            SetStdHandle(STD_INPUT_HANDLE, null.into_raw_handle());
            if let Some(out) = out {
                SetStdHandle(STD_OUTPUT_HANDLE, out.into_raw_handle());
            }
            SetStdHandle(STD_ERROR_HANDLE, log.into_raw_handle());
        }
    }

    /// No subreaper on Windows: the serve's Job Object holds whatever it starts.
    pub fn become_subreaper() {}

    /// The requests to stop this process: CTRL_BREAK and CTRL_C on its console, and its stop
    /// event, which `qvac-managed stop` and consumers set from anywhere in the session. Must be
    /// created within a tokio runtime.
    pub struct StopRequests {
        brk: tokio::signal::windows::CtrlBreak,
        int: tokio::signal::windows::CtrlC,
        event: qvac_managed_core::platform::StopEvent,
    }

    impl StopRequests {
        pub fn install() -> io::Result<StopRequests> {
            Ok(StopRequests {
                brk: tokio::signal::windows::ctrl_break()?,
                int: tokio::signal::windows::ctrl_c()?,
                event: qvac_managed_core::platform::StopEvent::create()?,
            })
        }

        /// Resolves at the next request.
        pub async fn recv(&mut self) {
            tokio::select! {
                _ = self.brk.recv() => {}
                _ = self.int.recv() => {}
                _ = self.event.requested() => {}
            }
        }
    }
}
