//! Linux: process start times from `/proc/<pid>/stat`, the boot id, and flock holders from
//! `/proc/locks`.

use std::fs::File;
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
    let stat = read_proc_file(&format!("/proc/{pid}/stat"))?;
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

/// Established TCP connections accepted on each of `ports` (the server side, from any process
/// and address), except those whose peer port is in `except_peers` (our own probe), from one
/// read of `/proc/net/tcp{,6}`; `None` when neither table can be read. A read walks the kernel's
/// whole TCP hash table (milliseconds of kernel time on a large machine, however few sockets
/// there are), so callers count only when it matters.
pub fn tcp_connections_to_each(ports: &[u16], except_peers: &[u16]) -> Option<Vec<u32>> {
    let port_of = |addr: &str| {
        addr.rsplit_once(':')
            .and_then(|(_, p)| u16::from_str_radix(p, 16).ok())
    };
    let mut readable = false;
    let mut counts = vec![0; ports.len()];
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        readable = true;
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            // local_address, rem_address, st (01 = ESTABLISHED)
            if fields.len() <= 3
                || fields[3] != "01"
                || port_of(fields[2]).is_none_or(|peer| except_peers.contains(&peer))
            {
                continue;
            }
            if let Some(at) =
                port_of(fields[1]).and_then(|local| ports.iter().position(|&p| p == local))
            {
                counts[at] += 1;
            }
        }
    }
    readable.then_some(counts)
}

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
        assert_eq!(None, tcp_listener_pid(port));
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
        assert_eq!(Some(1), tcp_connections_to(port, &[]));
        // Several ports in one read, each counted apart.
        let other = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let other_port = other.local_addr().unwrap().port();
        let c = std::net::TcpStream::connect(("127.0.0.1", other_port)).unwrap();
        let d = std::net::TcpStream::connect(("127.0.0.1", other_port)).unwrap();
        let _served = (other.accept().unwrap(), other.accept().unwrap());
        assert_eq!(
            Some(vec![1, 2, 0]),
            tcp_connections_to_each(&[port, other_port, 1], &[])
        );
        drop((b, c, d));
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
