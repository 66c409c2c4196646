//! macOS: process identity from `proc_pidinfo(PROC_PIDTBSDINFO)` (start time in µs; a zombie
//! answers ESRCH while `kill(pid, 0)` still finds it), the boot session uuid, command lines by
//! `sysctl KERN_PROCARGS2`, children by `proc_listchildpids`, and kqueue for exits
//! (`EVFILT_PROC`/`NOTE_EXIT`) and directory changes (`EVFILT_VNODE` on an `O_EVTONLY` fd).
//!
//! Built and linked here, run only on macOS runners (the release workflow). What macOS lacks:
//! no parent-death signal and no subreaper — a serve whose runner is SIGKILLed keeps running
//! until the next attach or `gc` sweeps it as an orphan (its command line names its record's
//! config and port, which proves it ours); no flock holder, port owner or connection count yet
//! (`None`). Another user's process, which `proc_pidinfo` refuses (EPERM), is alive and has no
//! start time here.

use std::ffi::{CString, OsString};
use std::fs::File;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use rustix::event::kqueue::{self, Event, EventFilter, EventFlags, ProcessEvents, VnodeEvents};
use tokio::io::unix::AsyncFd;

use super::Signal;

/// `proc_bsdinfo` of `pid`, or the errno `proc_pidinfo` failed with: ESRCH for no such process
/// and for a zombie, EPERM for another user's process (unless we are root).
fn bsd_info(pid: i32) -> Result<libc::proc_bsdinfo, nix::errno::Errno> {
    use nix::errno::Errno;
    if pid <= 0 {
        return Err(Errno::ESRCH);
    }
    let mut info = std::mem::MaybeUninit::<libc::proc_bsdinfo>::zeroed();
    let size = std::mem::size_of::<libc::proc_bsdinfo>() as libc::c_int;
    Errno::clear();
    // SAFETY: the buffer is a zeroed proc_bsdinfo of exactly `size` bytes, which the kernel fills.
    let filled = unsafe {
        libc::proc_pidinfo(
            pid,
            libc::PROC_PIDTBSDINFO,
            0,
            info.as_mut_ptr().cast(),
            size,
        )
    };
    if filled == size {
        // SAFETY: a full-size answer means the kernel wrote the whole struct.
        return Ok(unsafe { info.assume_init() });
    }
    // libproc answers 0 with errno set by the failed call; a short answer (no errno) proves
    // nothing either way.
    let errno = Errno::last();
    Err(if filled <= 0 && errno != Errno::UnknownErrno {
        errno
    } else {
        Errno::EINVAL
    })
}

/// Start time of `pid` in µs since the epoch: with the boot session it names one process.
/// `None` for another user's process (EPERM): its identity is then its pid alone.
pub fn process_start_time(pid: i32) -> Option<u64> {
    bsd_info(pid)
        .ok()
        .map(|i| i.pbi_start_tvsec * 1_000_000 + i.pbi_start_tvusec)
}

/// Exited, not yet reaped: `kill(pid, 0)` finds it, `proc_pidinfo` does not (ESRCH) or says
/// SZOMB. Another user's process, which `proc_pidinfo` refuses (EPERM), is alive.
pub fn process_is_zombie(pid: i32) -> bool {
    if super::pid_exists(pid) != Some(true) {
        return false;
    }
    super::unix::zombie_by_bsd_info(bsd_info(pid).map(|i| i.pbi_status))
}

fn sysctl_string(name: &str) -> Option<String> {
    let name = CString::new(name).ok()?;
    let mut buf = [0u8; 256];
    let mut len = buf.len();
    // SAFETY: `buf` has `len` writable bytes; the kernel writes at most that and updates `len`.
    let rc = unsafe {
        libc::sysctlbyname(
            name.as_ptr(),
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 {
        return None;
    }
    let text = String::from_utf8_lossy(&buf[..len.min(buf.len())]);
    let text = text.trim_end_matches('\0').trim();
    (!text.is_empty()).then(|| text.to_owned())
}

/// This boot's session uuid (`kern.bootsessionuuid`): changes on every boot.
pub fn boot_id() -> Option<String> {
    static BOOT: OnceLock<Option<String>> = OnceLock::new();
    BOOT.get_or_init(|| sysctl_string("kern.bootsessionuuid"))
        .clone()
}

/// No stable machine id without IOKit's IOPlatformUUID (not read yet): records name no machine.
pub fn machine_id() -> Option<String> {
    None
}

/// The command line of `pid` (`KERN_PROCARGS2`: argc, the executable path, then the arguments),
/// arguments joined by spaces; `None` if not visible (another user's, or a zombie).
pub fn process_cmdline(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let mut mib = [libc::CTL_KERN, libc::KERN_PROCARGS2, pid];
    let mut buf = vec![0u8; 256 * 1024];
    let mut len = buf.len();
    // SAFETY: `buf` has `len` writable bytes and `mib` names three valid levels.
    let rc = unsafe {
        libc::sysctl(
            mib.as_mut_ptr(),
            3,
            buf.as_mut_ptr().cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    if rc != 0 || len < 4 {
        return None;
    }
    let buf = &buf[..len];
    let argc = i32::from_ne_bytes(buf[..4].try_into().ok()?).max(0) as usize;
    // After argc: the executable path, NUL padding, then argc NUL-terminated arguments.
    let rest = &buf[4..];
    let path_end = rest.iter().position(|&b| b == 0)?;
    let args_start = path_end + rest[path_end..].iter().position(|&b| b != 0)?;
    let args: Vec<String> = rest[args_start..]
        .split(|&b| b == 0)
        .take(argc)
        .map(|a| String::from_utf8_lossy(a).into_owned())
        .collect();
    Some(args.join(" "))
}

/// The process group of `pid`.
pub fn process_group_of(pid: i32) -> Option<i32> {
    nix::unistd::getpgid(Some(nix::unistd::Pid::from_raw(pid)))
        .ok()
        .map(|p| p.as_raw())
}

/// True while any process is in group `pgid` (zombies included: macOS cannot tell them apart
/// here without walking every process).
pub fn process_group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// Running children of `parent`, each with its process group (`proc_listchildpids`).
pub fn children_of(parent: i32) -> Vec<(i32, i32)> {
    let mut pids = vec![0 as libc::pid_t; 1024];
    let bytes = (pids.len() * std::mem::size_of::<libc::pid_t>()) as libc::c_int;
    // SAFETY: `pids` has room for `bytes` bytes of pids; the kernel writes at most that.
    let n = unsafe { libc::proc_listchildpids(parent, pids.as_mut_ptr().cast(), bytes) };
    if n <= 0 {
        return vec![];
    }
    pids.truncate(n as usize);
    pids.into_iter()
        .filter(|&pid| pid > 0 && !process_is_zombie(pid))
        .filter_map(|pid| process_group_of(pid).map(|g| (pid, g)))
        .collect()
}

/// Resident bytes of `root` and every descendant (at most 512 processes), from
/// `proc_pidinfo(PROC_PIDTASKINFO)`'s `pti_resident_size` for each, the tree walked by
/// `proc_listchildpids`. `None` when `root` is gone or not ours to read.
pub fn tree_resident_bytes(root: i32) -> Option<u64> {
    let resident = |pid: i32| -> Option<u64> {
        let mut info = std::mem::MaybeUninit::<libc::proc_taskinfo>::zeroed();
        let size = std::mem::size_of::<libc::proc_taskinfo>() as libc::c_int;
        // SAFETY: `info` has room for `size` bytes, which is all the kernel writes.
        let n = unsafe {
            libc::proc_pidinfo(
                pid,
                libc::PROC_PIDTASKINFO,
                0,
                info.as_mut_ptr().cast(),
                size,
            )
        };
        // SAFETY: the kernel filled the whole struct when it returned its size.
        (n == size).then(|| unsafe { info.assume_init() }.pti_resident_size)
    };
    let mut total = resident(root)?;
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() && tree.len() < 512 {
        let pid = tree[next];
        next += 1;
        for (child, _) in children_of(pid) {
            tree.push(child);
            total += resident(child).unwrap_or(0);
        }
    }
    Some(total)
}

/// The machine's physical memory (`sysctl hw.memsize`).
pub fn physical_memory_bytes() -> Option<u64> {
    let mut bytes: u64 = 0;
    let mut len = std::mem::size_of::<u64>();
    // SAFETY: a NUL-terminated name and a u64 with its size, which is what hw.memsize holds.
    let rc = unsafe {
        libc::sysctlbyname(
            c"hw.memsize".as_ptr(),
            (&mut bytes as *mut u64).cast(),
            &mut len,
            std::ptr::null_mut(),
            0,
        )
    };
    (rc == 0 && bytes > 0).then_some(bytes)
}

/// No API names an flock holder on macOS.
pub fn flock_holder_pid(_file: &File) -> Option<i32> {
    None
}

/// Not looked up yet (`proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` would tell).
pub fn tcp_listener_pid(_port: u16) -> Option<i32> {
    None
}

/// Not counted on macOS yet (it needs `proc_pidfdinfo(PROC_PIDFDSOCKETINFO)` over the serves'
/// sockets, whose `socket_fdinfo` libc does not define): `ps` shows no count.
pub fn tcp_connections_to_each(
    _endpoints: &[std::net::SocketAddr],
    _except_peers: &[u16],
) -> Option<Vec<u32>> {
    None
}

/// Not counted on macOS yet (as [`tcp_connections_to_each`]): the idle clock there counts
/// consumers only, as upstream's does.
pub fn serve_connections(
    _serve_pid: i32,
    _addr: std::net::IpAddr,
    _port: u16,
    _except_peers: &[u16],
) -> Option<u32> {
    None
}

/// `renameatx_np(RENAME_EXCL)`: never replaces an existing entry.
pub fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE).map_err(std::io::Error::from)
}

/// No parent-death signal on macOS: a serve outlives a SIGKILLed runner until the next sweep
/// stops it as an orphan.
pub fn set_parent_death_signal(_command: &mut tokio::process::Command) {}

/// A kqueue registered with tokio: readable while an event is pending.
struct Kqueue(OwnedFd);

impl AsRawFd for Kqueue {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

fn register(kq: OwnedFd) -> Option<AsyncFd<Kqueue>> {
    // SAFETY: `Kqueue` owns its descriptor and never closes or replaces it while registered.
    unsafe { AsyncFd::register(Kqueue(kq)).ok() }
}

/// Adds `filter` to `kq` (no events read).
fn add(kq: &OwnedFd, filter: EventFilter) -> std::io::Result<()> {
    let change = [Event::new(
        filter,
        EventFlags::ADD | EventFlags::CLEAR,
        std::ptr::null_mut(),
    )];
    let mut out: Vec<Event> = Vec::with_capacity(0);
    // SAFETY: the descriptors named in `change` (a pid, or a directory fd owned by the caller's
    // watcher) stay valid for as long as the kqueue is used with them.
    unsafe { kqueue::kevent(kq.as_fd(), &change, &mut out, Some(Duration::ZERO)) }
        .map(|_| ())
        .map_err(std::io::Error::from)
}

/// Reads the pending events (without blocking).
fn drain(kq: &OwnedFd) -> Vec<Event> {
    let mut out: Vec<Event> = Vec::with_capacity(16);
    // SAFETY: no changes are submitted; the event list only receives.
    let _ = unsafe { kqueue::kevent(kq.as_fd(), &[], &mut out, Some(Duration::ZERO)) };
    out
}

/// The exit of one process, as an event (`EVFILT_PROC`/`NOTE_EXIT`). Within a tokio runtime.
pub struct ExitWatch {
    kq: AsyncFd<Kqueue>,
}

impl ExitWatch {
    /// `None` when there is no such process (ESRCH at registration) or kqueue fails.
    pub fn open(pid: i32) -> Option<ExitWatch> {
        let kq = kqueue::kqueue().ok()?;
        let pid = rustix::process::Pid::from_raw(pid)?;
        add(
            &kq,
            EventFilter::Proc {
                pid,
                flags: ProcessEvents::EXIT,
            },
        )
        .ok()?;
        Some(ExitWatch { kq: register(kq)? })
    }

    pub fn supported() -> bool {
        kqueue::kqueue().is_ok()
    }

    pub async fn exited(&self) {
        let _ = self.kq.readable().await;
    }
}

/// A process addressed by pid (macOS has no pidfd): signals go to the pid right after the
/// caller's identity check, and exits are awaited by kqueue.
pub struct ProcessHandle {
    pid: i32,
}

impl ProcessHandle {
    pub fn open(pid: i32) -> Option<ProcessHandle> {
        (pid > 1 && super::pid_exists(pid) == Some(true)).then_some(ProcessHandle { pid })
    }

    pub fn signal(&self, signal: Signal) -> bool {
        super::signal_child(self.pid, signal)
    }

    pub async fn exited(&self) {
        if let Some(watch) = ExitWatch::open(self.pid) {
            watch.exited().await;
            return;
        }
        while super::pid_exists(self.pid) == Some(true) && !process_is_zombie(self.pid) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

const DIR_EVENTS: VnodeEvents = VnodeEvents::WRITE
    .union(VnodeEvents::DELETE)
    .union(VnodeEvents::RENAME)
    .union(VnodeEvents::REVOKE);

/// A directory watched by kqueue (`EVFILT_VNODE` on an `O_EVTONLY` fd): immediate, unlike
/// FSEvents. kqueue does not say which entry changed, so every event reads as "the directory
/// changed" and callers look again. The parent is watched too, so a directory that is removed
/// and re-created is followed.
pub struct DirWatcher {
    kq: AsyncFd<Kqueue>,
    dir: PathBuf,
    dir_fd: Option<OwnedFd>,
    parent_fd: Option<OwnedFd>,
}

/// An event-only descriptor: it does not keep the volume busy (O_RDONLY is 0, so `read`
/// adds nothing to `O_EVTONLY`).
fn open_evtonly(path: &Path) -> Option<OwnedFd> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_EVTONLY)
        .open(path)
        .ok()
        .map(OwnedFd::from)
}

impl DirWatcher {
    pub fn new(dir: &Path) -> Option<DirWatcher> {
        let kq = kqueue::kqueue().ok()?;
        let mut watcher = DirWatcher {
            kq: register(kq)?,
            dir: dir.to_owned(),
            dir_fd: None,
            parent_fd: None,
        };
        watcher.rearm();
        watcher.armed().then_some(watcher)
    }

    pub fn armed(&self) -> bool {
        self.dir_fd.is_some() || self.parent_fd.is_some()
    }

    fn rearm(&mut self) {
        let kq = &self.kq.get_ref().0;
        self.dir_fd = open_evtonly(&self.dir).filter(|fd| {
            add(
                kq,
                EventFilter::Vnode {
                    vnode: fd.as_raw_fd(),
                    flags: DIR_EVENTS,
                },
            )
            .is_ok()
        });
        if self.parent_fd.is_none() {
            self.parent_fd = self.dir.parent().and_then(open_evtonly).filter(|fd| {
                add(
                    kq,
                    EventFilter::Vnode {
                        vnode: fd.as_raw_fd(),
                        flags: VnodeEvents::WRITE,
                    },
                )
                .is_ok()
            });
        }
    }

    pub async fn next_events(&mut self) -> Vec<Option<OsString>> {
        loop {
            let Ok(mut guard) = self.kq.readable().await else {
                return std::future::pending().await;
            };
            let events = drain(&guard.get_inner().0);
            if events.is_empty() {
                guard.clear_ready();
                continue;
            }
            drop(guard);
            // The directory itself went (or something in the parent changed, which may be its
            // return): follow whatever directory has the path now.
            self.rearm();
            return vec![None];
        }
    }
}
