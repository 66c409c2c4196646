//! Linux: process start times from `/proc/<pid>/stat`, the boot id, and flock holders from
//! `/proc/locks`.

use std::fs::File;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::MetadataExt;
use std::sync::OnceLock;

/// The fields of `/proc/<pid>/stat` this crate uses (one reader for all of them).
struct ProcStat {
    /// Field 3: `R`, `S`, `Z` (zombie), `X` (dead), ...
    state: char,
    /// Field 4: the parent.
    ppid: i32,
    /// Field 5: the process group.
    pgrp: i32,
    /// Field 22: start time in clock ticks since boot.
    start_time: u64,
}

fn proc_stat(pid: i32) -> Option<ProcStat> {
    if pid <= 0 {
        return None;
    }
    // Our own through task/ (the main thread's file: the same state, parent, group and start):
    // qemu-user answers `/proc/self/stat` and `/proc/<own pid>/stat` itself, with another start
    // time (the calling thread's creation), so a process would misread its own identity.
    let path = if pid == std::process::id() as i32 {
        format!("/proc/{pid}/task/{pid}/stat")
    } else {
        format!("/proc/{pid}/stat")
    };
    let stat = read_proc_file(&path)?;
    // The command name (field 2) is parenthesised and may itself contain spaces or ')'.
    let mut fields = stat[stat.rfind(')')? + 1..].split_whitespace();
    // Counting from field 3 (state): ppid is field 4, pgrp field 5, starttime field 22.
    let state = fields.next()?.chars().next()?;
    let ppid = fields.next()?.parse().ok()?;
    let pgrp = fields.next()?.parse().ok()?;
    let start_time = fields.nth(16)?.parse().ok()?;
    Some(ProcStat {
        state,
        ppid,
        pgrp,
        start_time,
    })
}

/// A small `/proc` file read in one go: `fs::read_to_string` stats it (size 0) and then reads in
/// growing steps from 32 bytes, some nine system calls where four do (open, read, read, close).
/// Identity checks read `/proc/<pid>/stat` on every attach.
fn read_proc_file(path: &str) -> Option<String> {
    use std::io::Read;
    let mut file = std::fs::File::open(path).ok()?;
    let mut text = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    loop {
        match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => text.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(_) => return None,
        }
    }
    // The command name (in `stat`) may hold any bytes: never a reason to read nothing.
    Some(String::from_utf8_lossy(&text).into_owned())
}

/// Start time of `pid` in clock ticks since boot (field 22 of `/proc/<pid>/stat`).
///
/// Together with the boot id this names one process for the life of the machine: a pid that
/// is reused gets a different start time.
pub fn process_start_time(pid: i32) -> Option<u64> {
    proc_stat(pid).map(|stat| stat.start_time)
}

/// The process group of `pid`; `None` if there is no such process.
pub fn process_group_of(pid: i32) -> Option<i32> {
    proc_stat(pid).map(|stat| stat.pgrp)
}

/// True while any non-zombie process is in process group `pgid` (scans `/proc`). Zombies are
/// not counted: an orphan's zombie waits on an init that may never reap it, but it runs nothing.
pub fn process_group_alive(pgid: i32) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return fallback_group_alive(pgid);
    };
    entries.flatten().any(|entry| {
        let pid = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok());
        pid.and_then(proc_stat)
            .is_some_and(|stat| stat.pgrp == pgid && !matches!(stat.state, 'Z' | 'X'))
    })
}

/// The pid of a process listening on TCP `port` (any address), found through the socket inode
/// in `/proc/net/tcp{,6}` and the owners' `/proc/<pid>/fd` links; `None` if not visible to us.
pub fn tcp_listener_pid(port: u16) -> Option<i32> {
    let wanted = format!(":{port:04X}");
    let inode = ["/proc/net/tcp", "/proc/net/tcp6"]
        .iter()
        .find_map(|table| {
            let text = std::fs::read_to_string(table).ok()?;
            text.lines().skip(1).find_map(|line| {
                let fields: Vec<&str> = line.split_whitespace().collect();
                // local_address, ..., st (0A = LISTEN), ..., inode (field 9)
                (fields.len() > 9 && fields[1].ends_with(&wanted) && fields[3] == "0A")
                    .then(|| fields[9].to_owned())
            })
        })?;
    let target = format!("socket:[{inode}]");
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let fds = std::fs::read_dir(entry.path().join("fd")).ok()?;
            fds.flatten()
                .any(|fd| {
                    std::fs::read_link(fd.path()).is_ok_and(|l| l.to_string_lossy() == target)
                })
                .then_some(pid)
        })
}

/// One row of `/proc/net/tcp{,6}` as the counts need it.
struct TcpRow {
    local: SocketAddr,
    peer_port: u16,
    established: bool,
}

/// Parses a row: `sl local_address rem_address st ...`, addresses as hex `ADDR:PORT` where ADDR
/// is the kernel's `__be32` words printed in host order (8 hex digits for IPv4, 32 for IPv6).
fn parse_tcp_row(line: &str) -> Option<TcpRow> {
    let mut fields = line.split_whitespace().skip(1);
    let (local, peer, state) = (fields.next()?, fields.next()?, fields.next()?);
    let hex_port = |addr: &str| {
        let (ip, port) = addr.rsplit_once(':')?;
        Some((ip.to_owned(), u16::from_str_radix(port, 16).ok()?))
    };
    let (local_ip, local_port) = hex_port(local)?;
    let (_, peer_port) = hex_port(peer)?;
    let word = |hex: &str| u32::from_str_radix(hex, 16).ok().map(u32::to_ne_bytes);
    let ip = match local_ip.len() {
        8 => IpAddr::V4(Ipv4Addr::from(word(&local_ip)?)),
        32 => {
            let mut bytes = [0u8; 16];
            for (i, chunk) in bytes.chunks_mut(4).enumerate() {
                chunk.copy_from_slice(&word(local_ip.get(i * 8..i * 8 + 8)?)?);
            }
            IpAddr::V6(Ipv6Addr::from(bytes))
        }
        _ => return None,
    };
    Some(TcpRow {
        local: SocketAddr::new(ip, local_port),
        peer_port,
        // 01 = TCP_ESTABLISHED
        established: state == "01",
    })
}

/// Established TCP connections accepted on each of `endpoints` (the server side, from any
/// process; an endpoint's address as [`super::accepts_on`] matches it), except those whose peer
/// port is in `except_peers` (our own probe), from one read of `/proc/net/tcp{,6}`; `None` when
/// neither table can be read. A read walks the kernel's whole TCP hash table (milliseconds of
/// kernel time on a large machine, however few sockets there are), so callers count only when
/// it matters.
pub fn tcp_connections_to_each(endpoints: &[SocketAddr], except_peers: &[u16]) -> Option<Vec<u32>> {
    let mut readable = false;
    let mut counts = vec![0; endpoints.len()];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        for row in text.lines().skip(1).filter_map(parse_tcp_row) {
            if !row.established || except_peers.contains(&row.peer_port) {
                continue;
            }
            for (count, e) in counts.iter_mut().zip(endpoints) {
                if e.port() == row.local.port() && super::accepts_on(e.ip(), row.local.ip()) {
                    *count += 1;
                }
            }
        }
    }
    readable.then_some(counts)
}

/// Established TCP connections the serve tree of `serve_pid` has accepted on `addr`:`port`,
/// except those whose peer port is in `except_peers`, found through the tree's own sockets
/// (see [`serve_tree_connections`]); where that cannot be done, from one read of the socket
/// table ([`tcp_connections_to_each`], any owner). `None` when neither can count.
pub fn serve_connections(
    serve_pid: i32,
    addr: IpAddr,
    port: u16,
    except_peers: &[u16],
) -> Option<u32> {
    serve_tree_connections(serve_pid, addr, port, except_peers).or_else(|| {
        tcp_connections_to_each(&[SocketAddr::new(addr, port)], except_peers)
            .and_then(|counts| counts.first().copied())
    })
}

/// At most this many processes of a serve tree are looked at.
const SERVE_TREE_LIMIT: usize = 64;

/// The count by the serve tree's own sockets: for every `socket:[inode]` in `/proc/<pid>/fd` of
/// the serve and its descendants (each socket once), a duplicate by `pidfd_getfd` (Linux 5.6+;
/// ptrace-attach permission, which a parent of the same user has unless Yama's scope is 2 or
/// more or a seccomp filter refuses it), then `getsockname` and `TCP_INFO`. The cost follows the
/// tree's descriptors (tens of system calls for a serve with a few sockets), not the machine's
/// socket table. `None` when a descriptor cannot be duplicated, or when no process of the tree
/// listens on `port` (its listener lives elsewhere, e.g. a serve that daemonized, so its
/// connections may too). A connection still in the listener's accept queue is not counted
/// until the serve accepts it.
///
/// A duplicate shares the socket with the serve for a few microseconds: a close by the serve in
/// that window takes effect when ours closes (and an epoll registration of it lingers until
/// then, which epoll users, libuv included, meet as a spurious event for a closed descriptor).
fn serve_tree_connections(
    serve_pid: i32,
    addr: IpAddr,
    port: u16,
    except_peers: &[u16],
) -> Option<u32> {
    use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
    if serve_pid <= 1 {
        return None;
    }
    let mut seen = std::collections::HashSet::new();
    let mut listening = false;
    let mut count = 0;
    for (i, pid) in process_tree(serve_pid, SERVE_TREE_LIMIT)
        .into_iter()
        .enumerate()
    {
        let pidfd = match pidfd_open(Pid::from_raw(pid)?, PidfdFlags::empty()) {
            Ok(fd) => fd,
            // A descendant that exited since it was listed.
            Err(rustix::io::Errno::SRCH) if i > 0 => continue,
            Err(_) => return None,
        };
        let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
            if i == 0 {
                return None;
            }
            continue;
        };
        for entry in fds.flatten() {
            let Ok(target) = std::fs::read_link(entry.path()) else {
                continue;
            };
            let target = target.as_os_str().as_encoded_bytes();
            let Some(inode) = target
                .strip_prefix(b"socket:[")
                .and_then(|t| t.strip_suffix(b"]"))
            else {
                continue;
            };
            // One socket shared by several descriptors or processes counts once.
            if !seen.insert(inode.to_vec()) {
                continue;
            }
            let Some(fd) = entry.file_name().to_str().and_then(|n| n.parse().ok()) else {
                continue;
            };
            let socket = match pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty()) {
                Ok(socket) => socket,
                // Closed since the listing (EBADF), or the process is gone (ESRCH).
                Err(rustix::io::Errno::BADF | rustix::io::Errno::SRCH) => continue,
                Err(_) => return None,
            };
            match accepted_on(&socket, port) {
                // The serve's listener: at `addr`, or at an address that covers it or it covers.
                Some(Accepted::Listener(bound))
                    if super::accepts_on(bound, addr) || super::accepts_on(addr, bound) =>
                {
                    listening = true
                }
                Some(Accepted::Connection { local, peer_port })
                    if super::accepts_on(addr, local) && !except_peers.contains(&peer_port) =>
                {
                    count += 1
                }
                _ => {}
            }
        }
    }
    listening.then_some(count)
}

/// What a socket on a given local port is.
enum Accepted {
    /// Listening on the port, bound to this address.
    Listener(IpAddr),
    /// An established connection whose local end is `local`:port.
    Connection { local: IpAddr, peer_port: u16 },
}

/// What `socket` is if it is a TCP socket on local `port` (listening or established); `None`
/// for anything else (another port or family, a connection closing or closed).
fn accepted_on(socket: &std::os::fd::OwnedFd, port: u16) -> Option<Accepted> {
    use std::os::fd::AsRawFd;
    let local = SocketAddr::try_from(rustix::net::getsockname(socket).ok()?).ok()?;
    if local.port() != port {
        return None;
    }
    let mut info = std::mem::MaybeUninit::<libc::tcp_info>::zeroed();
    let mut len = std::mem::size_of::<libc::tcp_info>() as libc::socklen_t;
    // SAFETY: `info` is a zeroed tcp_info of `len` bytes; the kernel writes at most `len` bytes
    // (fewer from an older kernel, or qemu-user, which passes 4) and stores the length written.
    let rc = unsafe {
        libc::getsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_TCP,
            libc::TCP_INFO,
            info.as_mut_ptr().cast(),
            &mut len,
        )
    };
    if rc != 0 || len < 1 {
        return None;
    }
    // SAFETY: zero-initialised, and the kernel filled its first `len` (>= 1) bytes.
    let state = unsafe { info.assume_init() }.tcpi_state;
    // include/net/tcp_states.h (libc does not name them).
    const TCP_ESTABLISHED: u8 = 1;
    const TCP_LISTEN: u8 = 10;
    match state {
        TCP_LISTEN => Some(Accepted::Listener(local.ip())),
        TCP_ESTABLISHED => {
            let peer = SocketAddr::try_from(rustix::net::getpeername(socket).ok()??).ok()?;
            Some(Accepted::Connection {
                local: local.ip(),
                peer_port: peer.port(),
            })
        }
        _ => None,
    }
}

/// `root` and its descendants, breadth first, at most `limit` of them, from each thread's
/// `/proc/<pid>/task/<tid>/children` (a child is listed under the thread that forked it).
fn process_tree(root: i32, limit: usize) -> Vec<i32> {
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() && tree.len() < limit {
        let pid = tree[next];
        next += 1;
        let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
            continue;
        };
        for task in tasks.flatten() {
            let tid = task.file_name();
            let Some(children) = read_proc_file(&format!(
                "/proc/{pid}/task/{}/children",
                tid.to_string_lossy()
            )) else {
                continue;
            };
            tree.extend(
                children
                    .split_whitespace()
                    .filter_map(|c| c.parse::<i32>().ok()),
            );
        }
    }
    tree.truncate(limit);
    tree
}

/// Resident bytes of `root` and every descendant (at most [`TREE_LIMIT`] processes): the
/// second field of each one's `/proc/<pid>/statm` (one read per process, found through the
/// `children` files, never a scan of `/proc`). `None` when `root` is gone.
pub fn tree_resident_bytes(root: i32) -> Option<u64> {
    resident_bytes_of(root, true)
}

/// Resident bytes of every descendant of `root`, not `root` itself: for a runner (a subreaper),
/// its serve's tree and whatever the serve left behind by daemonizing (re-parented to the
/// runner). `None` when `root` is gone.
pub fn descendants_resident_bytes(root: i32) -> Option<u64> {
    resident_bytes_of(root, false)
}

fn resident_bytes_of(root: i32, with_root: bool) -> Option<u64> {
    let page = rustix::param::page_size() as u64;
    let mut total = None;
    for pid in process_tree(root, TREE_LIMIT)
        .into_iter()
        .filter(|&pid| with_root || pid != root)
    {
        let resident = read_proc_file(&format!("/proc/{pid}/statm"))
            .and_then(|statm| statm.split_whitespace().nth(1)?.parse::<u64>().ok());
        if let Some(pages) = resident {
            *total.get_or_insert(0) += pages * page;
        } else if pid == root {
            return None;
        }
    }
    if !with_root && total.is_none() && std::fs::metadata(format!("/proc/{root}")).is_ok() {
        return Some(0);
    }
    total
}

/// The machine's physical memory (`MemTotal` of `/proc/meminfo`).
pub fn physical_memory_bytes() -> Option<u64> {
    let meminfo = read_proc_file("/proc/meminfo")?;
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024)
}

/// The most processes of one serve's tree that are looked at.
const TREE_LIMIT: usize = 512;

fn fallback_group_alive(pgid: i32) -> bool {
    nix::sys::signal::killpg(nix::unistd::Pid::from_raw(pgid), None).is_ok()
}

/// Running (non-zombie) children of `parent`, each with its process group: what a subreaper
/// has adopted from a serve that daemonized.
pub fn children_of(parent: i32) -> Vec<(i32, i32)> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return vec![];
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_str()?.parse::<i32>().ok()?;
            let stat = proc_stat(pid)?;
            (stat.ppid == parent && !matches!(stat.state, 'Z' | 'X')).then_some((pid, stat.pgrp))
        })
        .collect()
}

/// True when `pid` is a zombie: exited, waiting to be reaped. It runs nothing and never will.
pub fn process_is_zombie(pid: i32) -> bool {
    proc_stat(pid).is_some_and(|stat| matches!(stat.state, 'Z' | 'X'))
}

/// The command line of `pid`, arguments joined by spaces; `None` if it is not visible.
pub fn process_cmdline(pid: i32) -> Option<String> {
    if pid <= 0 {
        return None;
    }
    let raw = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    Some(
        String::from_utf8_lossy(&raw)
            .replace('\0', " ")
            .trim_end()
            .to_owned(),
    )
}

/// This machine's id (`/etc/machine-id`, else D-Bus's copy): what tells a process recorded on
/// another machine sharing the registry (a network home) from ours. `None` where neither exists
/// (many containers): a host name is no stand-in, since a renamed host or a new container would
/// then read every earlier record of its own as another machine's, forever.
pub fn machine_id() -> Option<String> {
    static MACHINE_ID: OnceLock<Option<String>> = OnceLock::new();
    MACHINE_ID
        .get_or_init(|| {
            ["/etc/machine-id", "/var/lib/dbus/machine-id"]
                .iter()
                .find_map(|path| {
                    let id = std::fs::read_to_string(path).ok()?.trim().to_owned();
                    (!id.is_empty()).then_some(id)
                })
        })
        .clone()
}

/// This boot's id; it changes on every reboot, so a start time from another boot never matches.
pub fn boot_id() -> Option<String> {
    static BOOT_ID: OnceLock<Option<String>> = OnceLock::new();
    BOOT_ID
        .get_or_init(|| {
            std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .clone()
}

/// The pid that holds an flock on `file`, as `/proc/locks` reports it.
///
/// `/proc/locks` names the file by `major:minor:inode` (hex device numbers). The pid is the
/// process that took the lock; a child that inherited the descriptor would not be shown.
pub fn flock_holder_pid(file: &File) -> Option<i32> {
    let meta = file.metadata().ok()?;
    let dev = meta.dev();
    let wanted = (
        nix::sys::stat::major(dev),
        nix::sys::stat::minor(dev),
        meta.ino(),
    );
    let locks = std::fs::read_to_string("/proc/locks").ok()?;
    locks
        .lines()
        .find_map(|line| parse_locks_line(line, wanted))
}

/// Parses `1: FLOCK  ADVISORY  WRITE 1234 08:01:5678 0 EOF`; blocked waiters (`1: -> FLOCK ...`)
/// are skipped because they do not hold the lock.
fn parse_locks_line(line: &str, wanted: (u64, u64, u64)) -> Option<i32> {
    let fields: Vec<&str> = line.split_whitespace().collect();
    if fields.len() < 6 || fields[1] != "FLOCK" {
        return None;
    }
    let pid: i32 = fields[4].parse().ok()?;
    let mut id = fields[5].split(':');
    let major = u64::from_str_radix(id.next()?, 16).ok()?;
    let minor = u64::from_str_radix(id.next()?, 16).ok()?;
    let ino: u64 = id.next()?.parse().ok()?;
    ((major, minor, ino) == wanted).then_some(pid)
}

/// Renames `from` to `to` only if `to` does not exist (RENAME_NOREPLACE): a directory put in
/// place this way never replaces another, even an empty one someone watches.
pub fn rename_noreplace(from: &std::path::Path, to: &std::path::Path) -> std::io::Result<()> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, from, CWD, to, RenameFlags::NOREPLACE) {
        // A filesystem without renameat2 flags: check, then rename (a narrow race, not a wrong file).
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) if to.exists() => {
            Err(std::io::ErrorKind::AlreadyExists.into())
        }
        Err(rustix::io::Errno::INVAL | rustix::io::Errno::NOSYS) => std::fs::rename(from, to),
        other => other.map_err(std::io::Error::from),
    }
}

/// Makes the child SIGKILLed when this thread's process dies (PR_SET_PDEATHSIG), re-checking
/// after the prctl in case the parent died before it took effect.
pub fn set_parent_death_signal(command: &mut tokio::process::Command) {
    use nix::sys::signal::Signal;
    let parent = std::process::id() as i32;
    // SAFETY: only async-signal-safe calls (prctl, getppid, raise) run between fork and exec.
    unsafe {
        command.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(Signal::SIGKILL).map_err(std::io::Error::from)?;
            if nix::unistd::getppid().as_raw() != parent {
                let _ = nix::sys::signal::raise(Signal::SIGKILL);
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn start_time_of_self_is_stable_and_of_missing_pid_is_none() {
        let me = std::process::id() as i32;
        let first = process_start_time(me).expect("own start time");
        assert_eq!(Some(first), process_start_time(me));
        assert_eq!(None, process_start_time(0));
        assert_eq!(None, process_start_time(i32::MAX));
    }

    #[test]
    fn group_liveness_sees_members_and_ignores_zombies() {
        use std::os::unix::process::CommandExt;
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .process_group(0)
            .spawn()
            .unwrap();
        let pgid = child.id() as i32;
        assert!(process_group_alive(pgid));
        child.kill().unwrap();
        // Not yet reaped: a zombie, which does not count.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!process_group_alive(pgid));
        child.wait().unwrap();
    }

    #[test]
    fn finds_the_listener_of_a_port() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(Some(std::process::id() as i32), tcp_listener_pid(port));
        drop(listener);
        settles(None, || tcp_listener_pid(port));
    }

    /// Waits (up to 10 s) until `now()` gives `want`. A socket dropped here stays open while a
    /// child that another test is spawning holds its copy, between fork and exec.
    fn settles<T: PartialEq + std::fmt::Debug>(want: T, now: impl Fn() -> T) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let seen = now();
            if seen == want {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "still {seen:?}, want {want:?}"
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    #[test]
    fn counts_the_connections_to_a_port() {
        use crate::platform::tcp_connections_to;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        assert_eq!(Some(0), tcp_connections_to(port, &[]));
        let a = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let b = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let (served_a, _) = listener.accept().unwrap();
        let (_served_b, _) = listener.accept().unwrap();
        assert_eq!(Some(2), tcp_connections_to(port, &[]));
        let a_port = a.local_addr().unwrap().port();
        assert_eq!(Some(1), tcp_connections_to(port, &[a_port]));
        drop(a);
        drop(served_a);
        settles(Some(1), || tcp_connections_to(port, &[]));
        // Several ports in one read, each counted apart.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other_port = other.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", other_port)).unwrap();
        let d = std::net::TcpStream::connect(("127.0.0.1", other_port)).unwrap();
        let _served = (other.accept().unwrap(), other.accept().unwrap());
        let at = |port| SocketAddr::from(([127, 0, 0, 1], port));
        assert_eq!(
            Some(vec![1, 2, 0]),
            tcp_connections_to_each(&[at(port), at(other_port), at(1)], &[])
        );
        drop((b, c, d));
    }

    #[test]
    #[cfg(target_endian = "little")]
    fn parses_socket_table_rows() {
        // 127.0.0.1:8080 <- 127.0.0.1:40000, ESTABLISHED (as a little-endian kernel prints it).
        let v4 = "   0: 0100007F:1F90 0100007F:9C40 01 00000000:00000000 00:00000000 00000000  1000        0 12345 1 0000000000000000 20 4 30 10 -1";
        let row = parse_tcp_row(v4).unwrap();
        assert_eq!(SocketAddr::from(([127, 0, 0, 1], 8080)), row.local);
        assert_eq!(40000, row.peer_port);
        assert!(row.established);
        // ::ffff:10.0.0.2:8080, LISTEN.
        let v6 = "   1: 0000000000000000FFFF00000200000A:1F90 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000  1000        0 1 1 0000000000000000 100 0 0 10 0";
        let row = parse_tcp_row(v6).unwrap();
        assert_eq!("::ffff:10.0.0.2".parse::<IpAddr>().unwrap(), row.local.ip());
        assert!(!row.established);
        assert!(parse_tcp_row("  sl  local_address rem_address   st").is_none());
    }

    /// Set in the environment of [`serve_helper_child`]'s process.
    const SERVE_HELPER: &str = "QVAC_TEST_SERVE_HELPER";

    /// Not a test of its own: in a child started by the test below (with [`SERVE_HELPER`] set),
    /// a stand-in serve that listens on 127.0.0.1, prints its port, accepts and holds every
    /// connection, and exits when its stdin closes.
    #[test]
    fn serve_helper_child() {
        use std::io::{Read, Write};
        if std::env::var_os(SERVE_HELPER).is_none() {
            return;
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(|| {
            let _ = std::io::stdin().read_to_end(&mut Vec::new());
            std::process::exit(0);
        });
        println!("port={port}");
        std::io::stdout().flush().unwrap();
        let mut held = Vec::new();
        for stream in listener.incoming() {
            held.push(stream.unwrap());
        }
    }

    #[test]
    fn counts_a_serves_own_connections_by_its_sockets() {
        use std::io::{BufRead, BufReader};
        use std::net::{TcpListener, TcpStream};
        use std::process::{Command, Stdio};
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "platform::linux::tests::serve_helper_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env(SERVE_HELPER, "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            // libtest prints `test <name> ... ` before the test's own output on the same line.
            let port = stdout.lines().find_map(|line| {
                line.ok()?
                    .rsplit_once("port=")?
                    .1
                    .trim()
                    .parse::<u16>()
                    .ok()
            });
            let _ = tx.send(port);
        });
        let Ok(Some(port)) = rx.recv_timeout(std::time::Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the helper printed no port");
        };
        let serve = child.id() as i32;
        let here: IpAddr = Ipv4Addr::LOCALHOST.into();
        // Accepted connections count once the serve has accepted them (and closed ones once
        // closed everywhere): wait for that.
        let settles_at = |want: u32, except: &[u16]| {
            settles(Some(want), || {
                serve_tree_connections(serve, here, port, except)
            })
        };
        settles_at(0, &[]);

        // An unrelated listener on the same port at another address, in another process (this
        // one), with a client: not the serve's.
        let unrelated = TcpListener::bind(("127.0.0.2", port)).unwrap();
        let _unrelated_client = TcpStream::connect(("127.0.0.2", port)).unwrap();
        let _unrelated_served = unrelated.accept().unwrap();
        assert_eq!(Some(0), serve_tree_connections(serve, here, port, &[]));
        assert_eq!(Some(0), serve_connections(serve, here, port, &[]));
        let at = |ip: &str| SocketAddr::new(ip.parse().unwrap(), port);
        assert_eq!(
            Some(vec![0, 1, 1]),
            tcp_connections_to_each(&[at("127.0.0.1"), at("127.0.0.2"), at("::")], &[]),
            "the table read filters by address too"
        );

        let a = TcpStream::connect(("127.0.0.1", port)).unwrap();
        settles_at(1, &[]);
        let b = TcpStream::connect(("127.0.0.1", port)).unwrap();
        settles_at(2, &[]);
        let b_port = b.local_addr().unwrap().port();
        assert_eq!(
            Some(1),
            serve_tree_connections(serve, here, port, &[b_port]),
            "the except list leaves a peer out"
        );
        assert_eq!(Some(2), serve_connections(serve, here, port, &[]));
        // A serve name (`::` matches any address) counts the same.
        assert_eq!(
            Some(2),
            serve_tree_connections(serve, super::super::bound_address("localhost"), port, &[])
        );
        // Without a listener of that address and port in its tree (as for a serve that
        // daemonized), the count falls back to the table, any owner: the same two.
        let mut elsewhere = Command::new("sleep").arg("30").spawn().unwrap();
        let other = elsewhere.id() as i32;
        assert_eq!(None, serve_tree_connections(other, here, port, &[]));
        assert_eq!(Some(2), serve_connections(other, here, port, &[]));
        elsewhere.kill().unwrap();
        elsewhere.wait().unwrap();

        drop(a);
        settles_at(1, &[]);
        drop(b);
        settles_at(0, &[]);
        drop(child.stdin.take());
        child.wait().unwrap();
    }

    #[test]
    fn boot_id_is_present() {
        assert!(boot_id().is_some_and(|b| b.len() >= 32));
    }

    #[test]
    fn parses_proc_locks_lines() {
        let line = "3: FLOCK  ADVISORY  WRITE 4242 fd:01:123456 0 EOF";
        assert_eq!(Some(4242), parse_locks_line(line, (0xfd, 0x01, 123456)));
        assert_eq!(None, parse_locks_line(line, (0xfd, 0x01, 1)));
        let waiter = "3: -> FLOCK  ADVISORY  WRITE 4243 fd:01:123456 0 EOF";
        assert_eq!(None, parse_locks_line(waiter, (0xfd, 0x01, 123456)));
        let posix = "1: POSIX  ADVISORY  WRITE 99 fd:01:123456 0 EOF";
        assert_eq!(None, parse_locks_line(posix, (0xfd, 0x01, 123456)));
    }
}
