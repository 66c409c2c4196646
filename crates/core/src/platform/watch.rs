//! Linux event sources for the consumer watch: inotify on a directory and a pidfd per process,
//! registered with tokio. Registration is `unsafe` in tokio (the fd must stay open while
//! registered), so it lives here with the other OS specifics.

use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::Path;

use nix::sys::inotify::{AddWatchFlags, InitFlags, Inotify};
use rustix::process::{pidfd_open, Pid, PidfdFlags};
use tokio::io::unix::AsyncFd;

/// `Inotify` exposes `AsFd`; tokio's `AsyncFd` wants `AsRawFd`.
pub struct InotifyFd(Inotify);

impl AsRawFd for InotifyFd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_fd().as_raw_fd()
    }
}

pub fn watch_dir(dir: &Path) -> Option<AsyncFd<InotifyFd>> {
    let inotify = Inotify::init(InitFlags::IN_NONBLOCK | InitFlags::IN_CLOEXEC).ok()?;
    inotify
        .add_watch(
            dir,
            AddWatchFlags::IN_CREATE
                | AddWatchFlags::IN_DELETE
                | AddWatchFlags::IN_MOVED_FROM
                | AddWatchFlags::IN_MOVED_TO
                | AddWatchFlags::IN_CLOSE_WRITE
                | AddWatchFlags::IN_DELETE_SELF,
        )
        .ok()?;
    // SAFETY: `InotifyFd` owns its descriptor and never closes or replaces it while registered.
    unsafe { AsyncFd::register(InotifyFd(inotify)).ok() }
}

/// Waits for the next batch of events; the names they are about (`None` for the directory
/// itself, e.g. when it is deleted).
pub async fn next_events(inotify: &AsyncFd<InotifyFd>) -> Vec<Option<std::ffi::OsString>> {
    loop {
        let Ok(mut guard) = inotify.readable().await else {
            return std::future::pending().await;
        };
        match guard.get_inner().0.read_events() {
            Ok(events) if !events.is_empty() => {
                return events.into_iter().map(|e| e.name).collect()
            }
            Ok(_) => guard.clear_ready(),
            Err(nix::errno::Errno::EAGAIN) => guard.clear_ready(),
            Err(_) => return std::future::pending().await,
        }
    }
}

/// A pidfd for `pid` (readable once the process exits), or `None` where unsupported.
pub fn pidfd(pid: i32) -> Option<AsyncFd<OwnedFd>> {
    let pid = Pid::from_raw(pid)?;
    let fd = pidfd_open(pid, PidfdFlags::NONBLOCK).ok()?;
    // SAFETY: `fd` is owned by the registration and stays open for as long as it lives.
    unsafe { AsyncFd::register(fd).ok() }
}

pub fn pidfd_supported() -> bool {
    pidfd(std::process::id() as i32).is_some()
}
