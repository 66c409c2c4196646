//! What every Unix (Linux and macOS) shares: signals by pid and by process group, `waitpid`,
//! permission bits and owners, and the user's home directory. The per-OS modules add what differs
//! (start times, zombies, event sources).

use std::fs::{self, DirBuilder, File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::sys::signal as nix_signal;
use nix::unistd::Pid;

use super::Signal;

impl Signal {
    fn to_nix(self) -> nix_signal::Signal {
        match self {
            Signal::Term => nix_signal::Signal::SIGTERM,
            Signal::Kill => nix_signal::Signal::SIGKILL,
        }
    }

    /// The signal number, for `pidfd_send_signal`.
    #[cfg(target_os = "linux")]
    pub(crate) fn number(self) -> i32 {
        self.to_nix() as i32
    }
}

/// `Some(true)` if a process has `pid` (EPERM counts), `Some(false)` if none, `None` for pids
/// that must never be probed (0 and negatives address process groups).
pub fn pid_exists(pid: i32) -> Option<bool> {
    if pid <= 0 {
        return None;
    }
    match nix_signal::kill(Pid::from_raw(pid), None) {
        Ok(()) | Err(Errno::EPERM) => Some(true),
        Err(_) => Some(false),
    }
}

/// `p_stat` of an exited, unreaped process (macOS `<sys/proc.h>`).
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) const SZOMB: u32 = 5;
#[cfg(target_os = "macos")]
const _: () = assert!(SZOMB == libc::SZOMB);

/// Whether a pid that `kill(pid, 0)` finds is a zombie, from what macOS's
/// `proc_pidinfo(PROC_PIDTBSDINFO)` answered for it: its `pbi_status`, or the errno it failed
/// with. ESRCH is a zombie (every `proc_pidinfo` flavour fails so for one, while `kill` still
/// finds it); EPERM is another user's live process (when not root), alive as `kill`'s EPERM is;
/// any other failure proves nothing, so the process is not taken for dead. Pure, so it is tested
/// on every Unix.
#[cfg_attr(not(target_os = "macos"), allow(dead_code))]
pub(crate) fn zombie_by_bsd_info(answer: Result<u32, Errno>) -> bool {
    match answer {
        Ok(status) => status == SZOMB,
        Err(Errno::ESRCH) => true,
        Err(_) => false,
    }
}

/// Signals `pid` itself. Only for a process whose pid cannot have been reused (our own child not
/// yet reaped) or just proven (the pidfd-less fallback of [`super::ProcessHandle`]).
pub fn signal_child(pid: i32, signal: Signal) -> bool {
    pid > 1 && nix_signal::kill(Pid::from_raw(pid), signal.to_nix()).is_ok()
}

/// Signals every member of process group `pgid` (a group we made, or whose leader we proved).
pub fn signal_group(pgid: i32, signal: Signal) -> bool {
    pgid > 1 && nix_signal::killpg(Pid::from_raw(pgid), signal.to_nix()).is_ok()
}

/// A `std` command leading a new process group (tests spawn with std).
#[cfg(test)]
pub fn std_own_process_group(command: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
}

/// Reaps, without blocking, every exited child of ours (or, with `group`, of that group): a
/// subreaper's adopted processes would stay zombies otherwise.
pub fn reap_exited_children(group: Option<i32>) {
    let target = Pid::from_raw(group.map_or(-1, |g| -g));
    while let Ok(status) =
        nix::sys::wait::waitpid(target, Some(nix::sys::wait::WaitPidFlag::WNOHANG))
    {
        if status == nix::sys::wait::WaitStatus::StillAlive {
            break;
        }
    }
}

/// The signal that ended a child, if one did.
pub fn exit_signal(status: &std::process::ExitStatus) -> Option<i32> {
    use std::os::unix::process::ExitStatusExt;
    status.signal()
}

/// `SIGKILL` for 9, as Node reports `signalCode`.
pub fn signal_name(number: i32) -> Option<&'static str> {
    nix_signal::Signal::try_from(number)
        .ok()
        .map(nix_signal::Signal::as_str)
}

/// Creates `dir` and any missing parents, each 0700 (before the umask).
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    DirBuilder::new().recursive(true).mode(0o700).create(dir)
}

/// Creates `dir` (one level; the parent must exist) with exactly 0700: the umask may have
/// narrowed it further, never widened it, and it is set exactly after.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    DirBuilder::new().mode(0o700).create(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Why an existing directory is not private to this user (another owner; group or others may
/// enter it), with the command that fixes it; `None` when it is.
pub fn private_dir_problem(dir: &Path, meta: &Metadata) -> Option<(String, String)> {
    let shown = dir.display();
    let me = current_user();
    if meta.uid() != me {
        return Some((
            format!(
                "it is owned by uid {}, not by this user (uid {me})",
                meta.uid()
            ),
            format!("chown {me} '{shown}' (or remove it)"),
        ));
    }
    let mode = meta.mode() & 0o777;
    (mode & 0o077 != 0).then(|| {
        (
            format!("its mode is {mode:04o}, so other users can reach the serves' API keys"),
            format!("chmod 700 '{shown}'"),
        )
    })
}

/// A file anyone may run.
pub fn is_executable(meta: &Metadata) -> bool {
    meta.is_file() && meta.mode() & 0o111 != 0
}

/// Sets the permission bits of `path`.
#[cfg(test)]
pub fn set_mode(path: &Path, mode: u32) -> io::Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
}

/// The permission bits of a file.
#[cfg(test)]
pub fn mode_of(meta: &Metadata) -> u32 {
    meta.mode() & 0o7777
}

/// `options` creating files with `mode` (before the umask).
pub fn with_create_mode(options: &mut OpenOptions, mode: u32) -> &mut OpenOptions {
    options.mode(mode)
}

/// What names one open file on one filesystem (device, inode): a file replaced by another
/// (even with the same content) has another identity.
pub fn file_identity(file: &File) -> io::Result<(u64, u64)> {
    let meta = file.metadata()?;
    Ok((meta.dev(), meta.ino()))
}

/// [`file_identity`] of what `path` names now (without opening it: a FIFO would block).
pub fn file_identity_at(path: &Path) -> io::Result<(u64, u64)> {
    let meta = fs::metadata(path)?;
    Ok((meta.dev(), meta.ino()))
}

/// Makes a rename or link in `dir` durable (fsync of the directory).
pub fn sync_dir(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// What a [`crate::pid_lock`] takeover flocks: the lock's directory itself.
pub fn dir_guard_file(dir: &Path) -> io::Result<File> {
    File::open(dir)
}

/// The null device, for a detached process's standard streams.
pub const NULL_DEVICE: &str = "/dev/null";

/// What a command name may end with on PATH: only itself.
pub const EXECUTABLE_SUFFIXES: &[&str] = &[""];

/// Runs `op` once: Unix renames and removals do not fail on files others have open.
pub fn retry_transient<T>(op: impl FnOnce() -> io::Result<T>) -> io::Result<T> {
    op()
}

/// `_exit(code)`: ends the process at once, skipping atexit handlers and destructors.
#[allow(unsafe_code)]
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: _exit only ends the process; no Rust invariant can be observed after it.
    unsafe { libc::_exit(code) }
}

/// The tree a supervised child starts: a process group of its own (its pid is the group id),
/// signalled as a whole, alive while any non-zombie member is.
#[derive(Debug)]
pub struct ProcessTree {
    pgid: i32,
}

impl ProcessTree {
    /// Before spawning: the child leads a new process group.
    pub fn prepare(command: &mut tokio::process::Command) {
        command.process_group(0);
    }

    /// Right after spawning. `kill_on_close` is the Windows job's; Unix uses the parent-death
    /// signal instead (`set_parent_death_signal`).
    pub fn adopt(child: &tokio::process::Child, _kill_on_close: bool) -> io::Result<ProcessTree> {
        let pid = child
            .id()
            .ok_or_else(|| io::Error::other("the child has already been reaped"))?;
        Ok(ProcessTree { pgid: pid as i32 })
    }

    pub fn id(&self) -> i32 {
        self.pgid
    }

    /// Signals every member (the group is ours: ESRCH means it is already gone).
    pub fn signal(&self, signal: Signal) -> bool {
        signal_group(self.pgid, signal)
    }

    /// True while any non-zombie member runs.
    pub fn alive(&self) -> bool {
        super::process_group_alive(self.pgid)
    }

    /// Reaps exited members re-parented to us (a subreaper's), so none stays a zombie.
    pub fn reap(&self) {
        reap_exited_children(Some(self.pgid));
    }
}

/// The effective user of this process.
fn current_user() -> u32 {
    nix::unistd::geteuid().as_raw()
}

/// The home directory of this process's user from the password database (when `$HOME` is
/// unset).
pub fn home_of_current_user() -> Option<PathBuf> {
    nix::unistd::User::from_uid(nix::unistd::geteuid())
        .ok()
        .flatten()
        .map(|u| u.dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bsd_info_failure_is_a_zombie_only_for_esrch() {
        // SZOMB as macOS reports it; SRUN (2) and SSLEEP (3) run.
        assert!(zombie_by_bsd_info(Ok(SZOMB)));
        assert!(!zombie_by_bsd_info(Ok(2)));
        assert!(!zombie_by_bsd_info(Ok(3)));
        assert!(zombie_by_bsd_info(Err(Errno::ESRCH)));
        // Another user's process, when not root: alive, as kill(pid, 0)'s EPERM is.
        assert!(!zombie_by_bsd_info(Err(Errno::EPERM)));
        assert!(!zombie_by_bsd_info(Err(Errno::EINVAL)));
        assert!(!zombie_by_bsd_info(Err(Errno::ENOMEM)));
    }
}
