//! Linux event sources for the consumer watch: inotify on a directory and a pidfd per process,
//! registered with tokio. Registration is `unsafe` in tokio (the fd must stay open while
//! registered), so it lives here with the other OS specifics.

use std::ffi::OsString;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify, WatchDescriptor};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use tokio::io::unix::AsyncFd;

/// `Inotify` exposes `AsFd`; tokio's `AsyncFd` wants `AsRawFd`.
pub struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

const DIR_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_CLOSE_WRITE)
    // Appends to a log (`logs --follow`); others filter by name and look again.
    .union(AddWatchFlags::IN_MODIFY)
    .union(AddWatchFlags::IN_DELETE_SELF)
    .union(AddWatchFlags::IN_MOVE_SELF);
/// On the parent, only what replaces or removes the watched directory's own entry.
const PARENT_EVENTS: AddWatchFlags = AddWatchFlags::IN_CREATE
    .union(AddWatchFlags::IN_DELETE)
    .union(AddWatchFlags::IN_MOVED_FROM)
    .union(AddWatchFlags::IN_MOVED_TO)
    .union(AddWatchFlags::IN_ONLYDIR);

/// An inotify watch on one directory that survives the directory being removed and re-created
/// (or a new one renamed into its place): the parent is watched for the directory's own name,
/// and the watch is re-armed on whatever directory holds the path now.
pub struct DirWatcher {
    fd: AsyncFd<InotifyFd>,
    dir: PathBuf,
    name: Option<OsString>,
    dir_wd: Option<WatchDescriptor>,
    parent_wd: Option<WatchDescriptor>,
}

impl DirWatcher {
    /// `None` where inotify is unavailable or neither the directory nor its parent exists.
    pub fn new(dir: &Path) -> Option<DirWatcher> {
        let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
        let dir_wd = inotify.add_watch(dir, DIR_EVENTS).ok();
        let parent_wd = dir
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .and_then(|parent| inotify.add_watch(parent, PARENT_EVENTS).ok());
        if dir_wd.is_none() && parent_wd.is_none() {
            return None;
        }
        // SAFETY: `InotifyFd` owns its descriptor and never closes or replaces it while registered.
        let fd = unsafe { AsyncFd::register(InotifyFd(inotify)).ok()? };
        Some(DirWatcher {
            fd,
            dir: dir.to_owned(),
            name: dir.file_name().map(OsString::from),
            dir_wd,
            parent_wd,
        })
    }

    /// True while some watch is armed (on the directory, or on its parent for its return).
    pub fn armed(&self) -> bool {
        self.dir_wd.is_some() || self.parent_wd.is_some()
    }

    /// Waits for the next batch of events; the names they are about (`None` for the directory
    /// itself: removed, replaced or re-created, after which the watch follows the new one).
    pub async fn next_events(&mut self) -> Vec<Option<OsString>> {
        loop {
            let Ok(mut guard) = self.fd.readable().await else {
                return std::future::pending().await;
            };
            let events = match guard.get_inner().0.read_events() {
                Ok(events) => events,
                Err(nix::errno::Errno::EAGAIN) => {
                    guard.clear_ready();
                    continue;
                }
                Err(_) => return std::future::pending().await,
            };
            if events.is_empty() {
                guard.clear_ready();
                continue;
            }
            drop(guard);
            let mut names = Vec::new();
            let mut rearm = false;
            for event in events {
                if Some(event.wd) == self.parent_wd {
                    if event.mask.contains(AddWatchFlags::IN_IGNORED) {
                        self.parent_wd = None;
                    } else if event.name.is_some() && event.name == self.name {
                        rearm = true;
                    }
                } else if Some(event.wd) == self.dir_wd {
                    if event.mask.intersects(
                        AddWatchFlags::IN_IGNORED
                            | AddWatchFlags::IN_DELETE_SELF
                            | AddWatchFlags::IN_MOVE_SELF,
                    ) {
                        rearm = true;
                    } else {
                        names.push(event.name);
                    }
                }
            }
            if rearm {
                self.rearm();
                names.push(None);
            }
            if !names.is_empty() {
                return names;
            }
        }
    }

    /// Points the directory watch at whatever directory has the path now (none if it is gone;
    /// the parent watch then waits for it to come back).
    fn rearm(&mut self) {
        let inotify = &self.fd.get_ref().0;
        if let Some(old) = self.dir_wd.take() {
            let _ = inotify.rm_watch(old);
        }
        self.dir_wd = inotify.add_watch(&self.dir, DIR_EVENTS).ok();
        if self.parent_wd.is_none() {
            if let Some(parent) = self.dir.parent() {
                self.parent_wd = inotify.add_watch(parent, PARENT_EVENTS).ok();
            }
        }
    }
}

/// A pidfd for `pid` (readable once the process exits), or `None` where unsupported.
fn pidfd(pid: i32) -> Option<AsyncFd<OwnedFd>> {
    let pid = Pid::from_raw(pid)?;
    register_pidfd(pidfd_open(pid, PidfdFlags::NONBLOCK).ok()?)
}

/// Registers a pidfd with tokio (within a runtime).
fn register_pidfd(fd: OwnedFd) -> Option<AsyncFd<OwnedFd>> {
    // SAFETY: `fd` is owned by the registration and stays open for as long as it lives.
    unsafe { AsyncFd::register(fd).ok() }
}

pub fn pidfd_supported() -> bool {
    pidfd(std::process::id() as i32).is_some()
}

/// The exit of one process, as an event (a pidfd registered with tokio). Must be opened within
/// a tokio runtime.
pub struct ExitWatch(AsyncFd<OwnedFd>);

impl ExitWatch {
    /// `None` when there is no such process or pidfds are unavailable (callers then poll).
    pub fn open(pid: i32) -> Option<ExitWatch> {
        pidfd(pid).map(ExitWatch)
    }

    /// Whether exits can be watched by event here.
    pub fn supported() -> bool {
        pidfd_supported()
    }

    /// Resolves once the process has exited.
    pub async fn exited(&self) {
        let _ = self.0.readable().await;
    }
}

/// One process pinned by a pidfd: once opened, the pid cannot name another process for as long
/// as the handle lives, so an identity checked after opening stays true for every signal sent
/// through it (no check-then-kill race with pid reuse). Where pidfds are unavailable (kernels
/// before 5.3, a seccomp filter), it falls back to the pid itself: signals by `kill` and exits
/// seen by polling, as on platforms without pidfds.
pub struct ProcessHandle {
    pid: i32,
    fd: Option<OwnedFd>,
}

impl ProcessHandle {
    /// `None` when there is no such process. Needs no runtime.
    pub fn open(pid: i32) -> Option<ProcessHandle> {
        let raw = Pid::from_raw(pid)?;
        match pidfd_open(raw, PidfdFlags::NONBLOCK) {
            Ok(fd) => Some(ProcessHandle { pid, fd: Some(fd) }),
            Err(rustix::io::Errno::SRCH) => None,
            Err(_) => ProcessHandle::by_pid(pid),
        }
    }

    /// The fallback: the process addressed by its pid alone.
    pub(crate) fn by_pid(pid: i32) -> Option<ProcessHandle> {
        (pid > 1 && crate::process::pid_exists(pid) == Some(true))
            .then_some(ProcessHandle { pid, fd: None })
    }

    /// Sends `signal` to this very process (`pidfd_send_signal`, or `kill` without a pidfd);
    /// false once it has exited.
    pub fn signal(&self, signal: super::Signal) -> bool {
        let Some(fd) = &self.fd else {
            return super::signal_child(self.pid, signal);
        };
        // rustix takes its own Signal type; the numbers are the kernel's.
        let Some(signal) = rustix::process::Signal::from_named_raw(signal.number()) else {
            return false;
        };
        rustix::process::pidfd_send_signal(fd, signal).is_ok()
    }

    /// Resolves when the process exits (it is then a zombie or gone). Must be awaited within a
    /// tokio runtime; without a registered pidfd it looks every 20 ms instead.
    pub async fn exited(&self) {
        // A duplicate of the pidfd names the same process and is owned by the registration.
        let registered = self
            .fd
            .as_ref()
            .and_then(|fd| fd.try_clone().ok())
            .and_then(register_pidfd);
        if let Some(fd) = registered {
            let _ = fd.readable().await;
            return;
        }
        while !self.has_exited() {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    fn has_exited(&self) -> bool {
        if let Some(fd) = &self.fd {
            let mut poll = [rustix::event::PollFd::new(fd, rustix::event::PollFlags::IN)];
            return rustix::event::poll(&mut poll, Some(&rustix::time::Timespec::default()))
                .is_ok_and(|n| n > 0);
        }
        crate::process::pid_exists(self.pid) != Some(true)
            || super::linux::process_is_zombie(self.pid)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn without_a_pidfd_signals_and_exits_go_by_pid() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let handle = ProcessHandle::by_pid(child.id() as i32).unwrap();
        assert!(handle.fd.is_none());
        assert!(handle.signal(super::super::Signal::Term));
        tokio::time::timeout(std::time::Duration::from_secs(5), handle.exited())
            .await
            .expect("the exit is seen by polling");
        child.wait().unwrap();
    }
}
