//! OS specifics, one module per platform: the only place in this crate that names `nix`,
//! `libc`, `rustix`, `windows-sys` or `std::os::*`. Everything above it is portable and uses the
//! contract re-exported here: [`Signal`], process identity facts, [`ProcessHandle`],
//! [`ProcessTree`] (a supervised child and all it starts), permission bits and file identities,
//! directory watches.
//!
//! `unix` holds what Linux and macOS share; `linux` (and `watch`, its event sources) is built
//! and tested; `macos` (sysctl/proc_pidinfo identity, kqueue) is built and linked here and run
//! only on macOS runners; `windows` (process handles, Job Objects, CTRL_BREAK and stop events,
//! `ReadDirectoryChangesW`) is built here and run under Wine. Other Unix systems compile with
//! the fallbacks below (no start time, no boot id, no flock holder lookup): liveness then rests
//! on `kill(pid, 0)` alone, which cannot tell a reused pid from the original holder.

use std::net::{IpAddr, Ipv6Addr};

/// Resident bytes of every descendant of `root` (not `root`): where a runner adopts what its
/// serve left behind (a Linux subreaper), its own descendants are the serve's whole footprint.
/// Elsewhere `None`: macOS re-parents such processes to launchd, and on Windows the serve's Job
/// Object holds them (the serve's tree is measured instead).
#[cfg(not(target_os = "linux"))]
pub fn descendants_resident_bytes(_root: i32) -> Option<u64> {
    None
}

/// What delivers directory changes here (named by `doctor`).
#[cfg(target_os = "linux")]
pub const DIR_EVENTS: &str = "inotify";
#[cfg(target_os = "macos")]
pub const DIR_EVENTS: &str = "kqueue EVFILT_VNODE";
#[cfg(windows)]
pub const DIR_EVENTS: &str = "ReadDirectoryChangesW";
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
pub const DIR_EVENTS: &str = "none on this OS";

/// What delivers process exits here (named by `doctor`).
#[cfg(target_os = "linux")]
pub const EXIT_EVENTS: &str = "pidfd, Linux 5.3+";
#[cfg(target_os = "macos")]
pub const EXIT_EVENTS: &str = "kqueue EVFILT_PROC";
#[cfg(windows)]
pub const EXIT_EVENTS: &str = "process handles";
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
pub const EXIT_EVENTS: &str = "none on this OS";

/// How a private directory is private here (named by `doctor`).
#[cfg(unix)]
pub const PRIVATE_DIR: &str = "0700, ours";
#[cfg(windows)]
pub const PRIVATE_DIR: &str = "owned by this user; ACL inherited from the profile";

/// The two ways we stop a process: ask (`Term`: SIGTERM) and force (`Kill`: SIGKILL).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signal {
    Term,
    Kill,
}

#[cfg(unix)]
mod unix;
#[cfg(unix)]
pub use unix::{
    create_private_dir, create_private_dir_all, dir_guard_file, exit_immediately, exit_signal,
    file_identity, file_identity_at, home_of_current_user, is_executable, pid_exists,
    private_dir_problem, reap_exited_children, retry_transient, signal_child, signal_group,
    signal_name, sync_dir, with_create_mode, ProcessTree, EXECUTABLE_SUFFIXES, NULL_DEVICE,
};
#[cfg(all(unix, test))]
pub use unix::{mode_of, set_mode, std_own_process_group};

// The only modules of this crate allowed `unsafe` (see lib.rs); every block says why it is sound.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
mod linux;
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
pub mod watch;
#[cfg(target_os = "linux")]
pub use linux::{
    boot_id, children_of, descendants_resident_bytes, flock_holder_pid, machine_id,
    physical_memory_bytes, process_cmdline, process_group_alive, process_group_of,
    process_is_zombie, process_start_time, rename_noreplace, serve_connections,
    set_parent_death_signal, tcp_connections_to_each, tcp_listener_pid, tree_resident_bytes,
};
#[cfg(target_os = "linux")]
pub use watch::{DirWatcher, ExitWatch, ProcessHandle};

#[cfg(target_os = "macos")]
#[allow(unsafe_code)]
mod macos;
#[cfg(target_os = "macos")]
pub use macos::{
    boot_id, children_of, flock_holder_pid, machine_id, physical_memory_bytes, process_cmdline,
    process_group_alive, process_group_of, process_is_zombie, process_start_time, rename_noreplace,
    serve_connections, set_parent_death_signal, tcp_connections_to_each, tcp_listener_pid,
    tree_resident_bytes, DirWatcher, ExitWatch, ProcessHandle,
};

#[cfg(windows)]
#[allow(unsafe_code)]
mod windows;
#[cfg(windows)]
pub use windows::{
    boot_id, children_of, create_private_dir, create_private_dir_all, dir_guard_file,
    exit_immediately, exit_signal, file_identity, file_identity_at, flock_holder_pid,
    home_of_current_user, is_executable, machine_id, physical_memory_bytes, pid_exists,
    private_dir_problem, process_cmdline, process_group_alive, process_group_of, process_is_zombie,
    process_start_time, reap_exited_children, rename_noreplace, retry_transient, serve_connections,
    set_parent_death_signal, signal_child, signal_group, signal_name, stop_event_name, sync_dir,
    tcp_connections_to_each, tcp_listener_pid, tree_resident_bytes, with_create_mode, DirWatcher,
    ExitWatch, ProcessHandle, ProcessTree, StopEvent, EXECUTABLE_SUFFIXES, NULL_DEVICE,
};

#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
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

    pub fn tcp_connections_to_each(
        _endpoints: &[std::net::SocketAddr],
        _except_peers: &[u16],
    ) -> Option<Vec<u32>> {
        None
    }

    pub fn serve_connections(
        _serve_pid: i32,
        _addr: std::net::IpAddr,
        _port: u16,
        _except_peers: &[u16],
    ) -> Option<u32> {
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

    /// Not known on untested platforms: a percentage budget is refused there.
    pub fn physical_memory_bytes() -> Option<u64> {
        None
    }

    /// No portable way to read another process's resident size: not measured.
    pub fn tree_resident_bytes(_root: i32) -> Option<u64> {
        None
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

        pub fn signal(&self, signal: super::Signal) -> bool {
            super::signal_child(self.pid, signal)
        }

        pub async fn exited(&self) {
            while crate::process::pid_exists(self.pid) == Some(true) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }

    /// No directory events here: callers poll.
    pub struct DirWatcher;

    impl DirWatcher {
        pub fn new(_dir: &std::path::Path) -> Option<DirWatcher> {
            None
        }

        pub fn armed(&self) -> bool {
            false
        }

        pub async fn next_events(&mut self) -> Vec<Option<std::ffi::OsString>> {
            std::future::pending().await
        }
    }

    /// No exit events here: callers poll.
    pub struct ExitWatch;

    impl ExitWatch {
        pub fn open(_pid: i32) -> Option<ExitWatch> {
            None
        }

        pub fn supported() -> bool {
            false
        }

        pub async fn exited(&self) {
            std::future::pending().await
        }
    }

    /// Counts zombies too (no portable way to tell them apart).
    pub fn process_group_alive(pgid: i32) -> bool {
        nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
    }
}
#[cfg(all(unix, not(any(target_os = "linux", target_os = "macos"))))]
pub use fallback::{
    boot_id, children_of, flock_holder_pid, machine_id, physical_memory_bytes, process_cmdline,
    process_group_alive, process_group_of, process_is_zombie, process_start_time, rename_noreplace,
    serve_connections, set_parent_death_signal, tcp_connections_to_each, tcp_listener_pid,
    tree_resident_bytes, DirWatcher, ExitWatch, ProcessHandle,
};

/// Established TCP connections accepted on local `port` at any address (from any process),
/// except those whose peer port is in `except_peers`; `None` where they cannot be counted. One
/// read of the whole socket table: the runner's recount uses [`serve_connections`] instead, so
/// only the Linux table-reading tests use it.
#[cfg(all(test, target_os = "linux"))]
pub fn tcp_connections_to(port: u16, except_peers: &[u16]) -> Option<u32> {
    let any = std::net::SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), port);
    tcp_connections_to_each(&[any], except_peers).and_then(|counts| counts.first().copied())
}

// The connection counts, one function per OS above:
//
// `serve_connections(serve_pid, addr, port, except_peers) -> Option<u32>`: established TCP
// connections the serve has accepted on `addr`:`port` (see [`accepts_on`]), except those whose
// peer port is in `except_peers` (the runner's own probe); `None` where they cannot be counted.
// Linux: by the serve tree's own sockets (`pidfd_getfd`; the caller must be allowed to ptrace
// the serve, as its parent is), a cost that follows the serve's descriptors, not the machine's
// socket table (tens of µs against a Node serve, where one table read costs ~3 ms here).
// Windows: the serve's own rows of one `GetExtendedTcpTable` snapshot. macOS: `None` (not
// counted yet; the idle clock counts consumers only). Where the serve (tree) holds no listener
// on `port` (a serve that daemonized, or handed its listener on), or its sockets cannot be
// duplicated, every owner's connections to that address and port count, from the table.
// `serve_pid` must be proven (the runner's own unreaped child): its sockets are the ones counted.
//
// `tcp_connections_to_each(endpoints, except_peers) -> Option<Vec<u32>>`: the same count for
// each of `endpoints` from one read of the machine's socket table, for any owner (`ps`).

/// True when a socket with local address `local` was accepted by a listener bound to `bound`:
/// the same address (an IPv4-mapped IPv6 address counts as its IPv4 one), or any IPv4 address
/// for `0.0.0.0`, any address at all for `::` (a dual-stack listener).
pub fn accepts_on(bound: IpAddr, local: IpAddr) -> bool {
    match (bound.to_canonical(), local.to_canonical()) {
        (IpAddr::V6(b), _) if b.is_unspecified() => true,
        (IpAddr::V4(b), IpAddr::V4(_)) if b.is_unspecified() => true,
        (b, l) => b == l,
    }
}

/// The address a serve started with `--host host` listens on, for the connection counts: the
/// address itself when `host` is one (brackets allowed), otherwise (a name such as `localhost`,
/// whose resolution the serve made) `::`, which [`accepts_on`] matches on any address.
pub fn bound_address(host: &str) -> IpAddr {
    let literal = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    literal.parse().unwrap_or(IpAddr::V6(Ipv6Addr::UNSPECIFIED))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_listener_accepts_on_its_own_address_or_any_for_unspecified() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(accepts_on(ip("127.0.0.1"), ip("127.0.0.1")));
        assert!(!accepts_on(ip("127.0.0.1"), ip("127.0.0.2")));
        assert!(accepts_on(ip("127.0.0.1"), ip("::ffff:127.0.0.1")));
        assert!(accepts_on(ip("::ffff:127.0.0.1"), ip("127.0.0.1")));
        assert!(!accepts_on(ip("127.0.0.1"), ip("::1")));
        assert!(accepts_on(ip("0.0.0.0"), ip("10.1.2.3")));
        assert!(accepts_on(ip("0.0.0.0"), ip("::ffff:10.1.2.3")));
        assert!(!accepts_on(ip("0.0.0.0"), ip("::1")));
        assert!(accepts_on(ip("::"), ip("::1")));
        assert!(accepts_on(ip("::"), ip("127.0.0.1")));
        assert!(!accepts_on(ip("::1"), ip("127.0.0.1")));
    }

    #[test]
    fn a_hosts_bound_address() {
        assert_eq!(
            "127.0.0.1".parse::<IpAddr>().unwrap(),
            bound_address("127.0.0.1")
        );
        assert_eq!("::1".parse::<IpAddr>().unwrap(), bound_address("[::1]"));
        assert_eq!("::1".parse::<IpAddr>().unwrap(), bound_address("::1"));
        assert!(bound_address("localhost").is_unspecified());
        assert!(accepts_on(
            bound_address("localhost"),
            "127.0.0.1".parse().unwrap()
        ));
    }
}
