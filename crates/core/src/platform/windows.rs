//! Windows: processes by handle (a pid is never reused while a handle to it is open), identity
//! by creation time (`GetProcessTimes`), trees by Job Object, graceful stops by CTRL_BREAK or a
//! runner's named stop event, directory watches by `ReadDirectoryChangesW`, listeners from the
//! TCP table, and privacy by the directory's owner (new directories inherit the ACL of their
//! parent: below `%USERPROFILE%` and `%TEMP%`, the user, SYSTEM and Administrators only).
//!
//! What Windows does not have, and what stands in: no zombies and nothing to reap (exited
//! processes are gone once the last handle closes); no parent-death signal or subreaper (the
//! runner's Job Object, closed with the runner, kills the serve and everything it started); no
//! process groups to query (a stop goes to the tree held in the job); no command line of another
//! process or flock holder is read (nothing is proven by them here: see the README).

use std::ffi::{c_void, OsStr, OsString};
use std::fs::{self, File, Metadata, OpenOptions};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::windows::ffi::{OsStrExt, OsStringExt};
use std::os::windows::fs::OpenOptionsExt;
use std::os::windows::io::{AsRawHandle, FromRawHandle, OwnedHandle};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use windows_sys::Win32::Foundation::{
    GetLastError, ERROR_ACCESS_DENIED, ERROR_INSUFFICIENT_BUFFER, FILETIME, HANDLE,
    INVALID_HANDLE_VALUE, NO_ERROR, WAIT_OBJECT_0,
};
use windows_sys::Win32::Storage::FileSystem as fs_sys;
use windows_sys::Win32::System::Threading as th;

use super::Signal;

/// The exit code a forced stop gives (`TerminateProcess`), as a SIGKILL gives 137 in a shell.
const KILLED_EXIT_CODE: u32 = 1;

fn wide(text: &OsStr) -> Vec<u16> {
    text.encode_wide().chain(Some(0)).collect()
}

/// Takes ownership of a handle a Win32 call returned; `None` for the null or invalid handle.
fn owned(handle: HANDLE) -> Option<OwnedHandle> {
    if handle.is_null() || handle == INVALID_HANDLE_VALUE {
        return None;
    }
    // SAFETY: the handle was just returned to us by the system and nothing else owns it.
    Some(unsafe { OwnedHandle::from_raw_handle(handle) })
}

fn raw(handle: &OwnedHandle) -> HANDLE {
    handle.as_raw_handle()
}

/// `OpenProcess(access)` on `pid`, or the Win32 error.
fn open_process(pid: i32, access: u32) -> Result<OwnedHandle, u32> {
    if pid <= 0 {
        return Err(windows_sys::Win32::Foundation::ERROR_INVALID_PARAMETER);
    }
    // SAFETY: plain call; the returned handle is owned below.
    let handle = unsafe { th::OpenProcess(access, 0, pid as u32) };
    // SAFETY: reads this thread's last error, set by the call above.
    owned(handle).ok_or_else(|| unsafe { GetLastError() })
}

/// True once `handle` is signalled: a process has exited, an event is set (needs SYNCHRONIZE).
fn has_exited(handle: &OwnedHandle) -> bool {
    // SAFETY: a valid handle, a zero timeout.
    unsafe { th::WaitForSingleObject(raw(handle), 0) == WAIT_OBJECT_0 }
}

const QUERY: u32 = th::PROCESS_QUERY_LIMITED_INFORMATION | th::PROCESS_SYNCHRONIZE;

/// `Some(true)` while a process has `pid` (one we may not open counts), `Some(false)` when none
/// has or it has exited, `None` for pids that are never probed.
pub fn pid_exists(pid: i32) -> Option<bool> {
    if pid <= 0 {
        return None;
    }
    match open_process(pid, QUERY) {
        Ok(handle) => Some(!has_exited(&handle)),
        Err(ERROR_ACCESS_DENIED) => Some(true),
        Err(_) => Some(false),
    }
}

/// Exited, but still held open by someone: it runs nothing and never will (the nearest thing
/// Windows has to a zombie).
pub fn process_is_zombie(pid: i32) -> bool {
    open_process(pid, QUERY).is_ok_and(|h| has_exited(&h))
}

/// The name of the event a runner waits on for stop requests (`qvac-managed stop`, a consumer's
/// backstop): a console-less way to ask, since CTRL_BREAK reaches only processes on one's own
/// console. Local to the session, like the registry's user.
pub fn stop_event_name(pid: u32) -> String {
    format!("Local\\qvac-managed-stop-{pid}")
}

/// Asks `pid` to stop: through its stop event if it is a runner, else by CTRL_BREAK to it as a
/// process group (reaches it only when it leads a group on our console).
fn request_stop(pid: i32) -> bool {
    let name = wide(OsStr::new(&stop_event_name(pid as u32)));
    // SAFETY: a NUL-terminated name; the handle is owned below.
    let event = owned(unsafe { th::OpenEventW(th::EVENT_MODIFY_STATE, 0, name.as_ptr()) });
    if let Some(event) = event {
        // SAFETY: a valid event handle opened with EVENT_MODIFY_STATE.
        return unsafe { th::SetEvent(raw(&event)) != 0 };
    }
    // SAFETY: plain call.
    unsafe {
        windows_sys::Win32::System::Console::GenerateConsoleCtrlEvent(
            windows_sys::Win32::System::Console::CTRL_BREAK_EVENT,
            pid as u32,
        ) != 0
    }
}

fn terminate(handle: &OwnedHandle) -> bool {
    // SAFETY: a valid handle; TerminateProcess fails harmlessly without PROCESS_TERMINATE.
    !has_exited(handle) && unsafe { th::TerminateProcess(raw(handle), KILLED_EXIT_CODE) != 0 }
}

/// Signals `pid` itself: `Term` asks it to stop (its stop event, or CTRL_BREAK), `Kill` ends it
/// (`TerminateProcess`). Only for a process whose pid cannot have been reused.
pub fn signal_child(pid: i32, signal: Signal) -> bool {
    match signal {
        Signal::Term => pid > 1 && request_stop(pid),
        Signal::Kill => {
            open_process(pid, th::PROCESS_TERMINATE | QUERY).is_ok_and(|handle| terminate(&handle))
        }
    }
}

/// Windows has no process groups to signal as a whole: `Term` is CTRL_BREAK to the group
/// `pgid` leads on our console, `Kill` ends the leader (trees are ended through their
/// [`ProcessTree`]'s job).
pub fn signal_group(pgid: i32, signal: Signal) -> bool {
    signal_child(pgid, signal)
}

/// Groups cannot be listed on Windows: alive while the leader is.
pub fn process_group_alive(pgid: i32) -> bool {
    pid_exists(pgid) == Some(true)
}

/// Nothing to reap on Windows.
pub fn reap_exited_children(_group: Option<i32>) {}

/// Windows processes are not ended by signals.
pub fn exit_signal(_status: &std::process::ExitStatus) -> Option<i32> {
    None
}

/// The POSIX name of a signal number (as Node reports `signalCode`; SIGBREAK is Windows').
pub fn signal_name(number: i32) -> Option<&'static str> {
    Some(match number {
        2 => "SIGINT",
        9 => "SIGKILL",
        15 => "SIGTERM",
        21 => "SIGBREAK",
        _ => return None,
    })
}

/// The process group of `pid` cannot be read on Windows.
pub fn process_group_of(_pid: i32) -> Option<i32> {
    None
}

/// Creation time of `pid` (100 ns units since 1601, `GetProcessTimes`): with the pid it names
/// one process for the life of the machine, across reboots too.
pub fn process_start_time(pid: i32) -> Option<u64> {
    let handle = open_process(pid, th::PROCESS_QUERY_LIMITED_INFORMATION).ok()?;
    let zero = FILETIME {
        dwLowDateTime: 0,
        dwHighDateTime: 0,
    };
    let (mut created, mut exited, mut kernel, mut user) = (zero, zero, zero, zero);
    // SAFETY: a valid handle and four writable FILETIMEs.
    let ok = unsafe {
        th::GetProcessTimes(
            raw(&handle),
            &mut created,
            &mut exited,
            &mut kernel,
            &mut user,
        )
    };
    (ok != 0).then(|| (u64::from(created.dwHighDateTime) << 32) | u64::from(created.dwLowDateTime))
}

/// Not needed here: creation times are wall-clock instants, unique across boots.
pub fn boot_id() -> Option<String> {
    None
}

/// This installation's `MachineGuid` (HKLM\SOFTWARE\Microsoft\Cryptography).
pub fn machine_id() -> Option<String> {
    static MACHINE_ID: OnceLock<Option<String>> = OnceLock::new();
    MACHINE_ID.get_or_init(read_machine_guid).clone()
}

fn read_machine_guid() -> Option<String> {
    use windows_sys::Win32::System::Registry::{
        RegGetValueW, HKEY_LOCAL_MACHINE, RRF_RT_REG_SZ, RRF_SUBKEY_WOW6464KEY,
    };
    let key = wide(OsStr::new("SOFTWARE\\Microsoft\\Cryptography"));
    let value = wide(OsStr::new("MachineGuid"));
    let mut buf = [0u16; 128];
    let mut size = (buf.len() * 2) as u32;
    // SAFETY: NUL-terminated names; `size` is the byte length of `buf`.
    let status = unsafe {
        RegGetValueW(
            HKEY_LOCAL_MACHINE,
            key.as_ptr(),
            value.as_ptr(),
            RRF_RT_REG_SZ | RRF_SUBKEY_WOW6464KEY,
            std::ptr::null_mut(),
            buf.as_mut_ptr().cast(),
            &mut size,
        )
    };
    if status != NO_ERROR {
        return None;
    }
    let len = (size as usize / 2).min(buf.len());
    let id = String::from_utf16_lossy(&buf[..len])
        .trim_end_matches('\0')
        .trim()
        .to_owned();
    (!id.is_empty()).then_some(id)
}

/// Windows does not say who holds a `LockFileEx` lock.
pub fn flock_holder_pid(_file: &File) -> Option<i32> {
    None
}

/// The pid of a process listening on TCP `port` (IPv4 or IPv6), from the system's TCP tables.
pub fn tcp_listener_pid(port: u16) -> Option<i32> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID, TCP_TABLE_OWNER_PID_LISTENER,
    };
    use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
    let v4 = tcp_table(u32::from(AF_INET), TCP_TABLE_OWNER_PID_LISTENER)?;
    let found = rows::<MIB_TCPROW_OWNER_PID>(&v4)
        .find(|row| u16::from_be(row.dwLocalPort as u16) == port)
        .map(|row| row.dwOwningPid);
    let found = found.or_else(|| {
        let v6 = tcp_table(u32::from(AF_INET6), TCP_TABLE_OWNER_PID_LISTENER)?;
        let pid = rows::<MIB_TCP6ROW_OWNER_PID>(&v6)
            .find(|row| u16::from_be(row.dwLocalPort as u16) == port)
            .map(|row| row.dwOwningPid);
        pid
    });
    found.map(|pid| pid as i32)
}

/// One row of the system's TCP tables, as the connection counts need it.
struct TcpRow {
    local: SocketAddr,
    peer_port: u16,
    state: u32,
    owner: u32,
}

impl TcpRow {
    /// An established connection accepted on `endpoint` (its address as [`super::accepts_on`]
    /// matches it) whose peer port is not in `except_peers`.
    fn accepted_on(&self, endpoint: &SocketAddr, except_peers: &[u16]) -> bool {
        use windows_sys::Win32::NetworkManagement::IpHelper::MIB_TCP_STATE_ESTAB;
        self.state == MIB_TCP_STATE_ESTAB as u32
            && self.local.port() == endpoint.port()
            && super::accepts_on(endpoint.ip(), self.local.ip())
            && !except_peers.contains(&self.peer_port)
    }
}

/// The rows of one snapshot of both TCP tables (IPv4, IPv6) of table class `class`; `None` if
/// neither can be read.
fn tcp_rows(class: i32) -> Option<Vec<TcpRow>> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        MIB_TCP6ROW_OWNER_PID, MIB_TCPROW_OWNER_PID,
    };
    use windows_sys::Win32::Networking::WinSock::{AF_INET, AF_INET6};
    // Ports are in network byte order in the low 16 bits; an IPv4 address is the in_addr's bytes.
    let port = |raw: u32| u16::from_be(raw as u16);
    let v4 = tcp_table(u32::from(AF_INET), class).map(|t| {
        rows::<MIB_TCPROW_OWNER_PID>(&t)
            .map(|r| TcpRow {
                local: SocketAddr::new(
                    Ipv4Addr::from(r.dwLocalAddr.to_ne_bytes()).into(),
                    port(r.dwLocalPort),
                ),
                peer_port: port(r.dwRemotePort),
                state: r.dwState,
                owner: r.dwOwningPid,
            })
            .collect::<Vec<_>>()
    });
    let v6 = tcp_table(u32::from(AF_INET6), class).map(|t| {
        rows::<MIB_TCP6ROW_OWNER_PID>(&t)
            .map(|r| TcpRow {
                local: SocketAddr::new(Ipv6Addr::from(r.ucLocalAddr).into(), port(r.dwLocalPort)),
                peer_port: port(r.dwRemotePort),
                state: r.dwState,
                owner: r.dwOwningPid,
            })
            .collect::<Vec<_>>()
    });
    if v4.is_none() && v6.is_none() {
        return None;
    }
    Some(v4.into_iter().chain(v6).flatten().collect())
}

/// Established TCP connections accepted on each of `endpoints` (from any process; an endpoint's
/// address as [`super::accepts_on`] matches it), except those whose peer port is in
/// `except_peers`, from one snapshot of the system's TCP tables; `None` if neither can be read.
pub fn tcp_connections_to_each(endpoints: &[SocketAddr], except_peers: &[u16]) -> Option<Vec<u32>> {
    use windows_sys::Win32::NetworkManagement::IpHelper::TCP_TABLE_OWNER_PID_CONNECTIONS;
    let rows = tcp_rows(TCP_TABLE_OWNER_PID_CONNECTIONS)?;
    Some(
        endpoints
            .iter()
            .map(|e| {
                rows.iter()
                    .filter(|r| r.accepted_on(e, except_peers))
                    .count() as u32
            })
            .collect(),
    )
}

/// Established TCP connections the serve `serve_pid` has accepted on `addr`:`port`, except
/// those whose peer port is in `except_peers`: the rows of one TCP table snapshot (listeners
/// and connections, `TCP_TABLE_OWNER_PID_ALL`) owned by the serve. When the serve itself holds
/// no listener there (its listener lives in another process), every owner's connections to that
/// address and port count. Windows has no per-process socket list: the snapshot's cost still
/// follows the machine's TCP table. `None` if the tables cannot be read.
pub fn serve_connections(
    serve_pid: i32,
    addr: IpAddr,
    port: u16,
    except_peers: &[u16],
) -> Option<u32> {
    use windows_sys::Win32::NetworkManagement::IpHelper::{
        MIB_TCP_STATE_LISTEN, TCP_TABLE_OWNER_PID_ALL,
    };
    let rows = tcp_rows(TCP_TABLE_OWNER_PID_ALL)?;
    let owner = u32::try_from(serve_pid).ok().filter(|&pid| {
        rows.iter().any(|r| {
            r.owner == pid
                && r.state == MIB_TCP_STATE_LISTEN as u32
                && r.local.port() == port
                && (super::accepts_on(r.local.ip(), addr) || super::accepts_on(addr, r.local.ip()))
        })
    });
    let endpoint = SocketAddr::new(addr, port);
    let count = rows
        .iter()
        .filter(|r| {
            owner.is_none_or(|pid| r.owner == pid) && r.accepted_on(&endpoint, except_peers)
        })
        .count();
    Some(count as u32)
}

/// One `GetExtendedTcpTable` snapshot: a count (u32) followed by rows, in a u64-aligned buffer.
fn tcp_table(family: u32, class: i32) -> Option<Vec<u64>> {
    use windows_sys::Win32::NetworkManagement::IpHelper::GetExtendedTcpTable;
    let mut size = 0u32;
    for _ in 0..4 {
        let mut buf = vec![0u64; (size as usize).div_ceil(8).max(1)];
        let mut len = (buf.len() * 8) as u32;
        // SAFETY: `buf` is writable for `len` bytes; the call writes at most that many.
        let status =
            unsafe { GetExtendedTcpTable(buf.as_mut_ptr().cast(), &mut len, 0, family, class, 0) };
        match status {
            NO_ERROR => return Some(buf),
            ERROR_INSUFFICIENT_BUFFER => size = len + 1024,
            _ => return None,
        }
    }
    None
}

/// The rows of a TCP table snapshot (the count, then rows aligned as the C struct lays them).
fn rows<Row: Copy>(table: &[u64]) -> impl Iterator<Item = Row> + '_ {
    let bytes = table.len() * 8;
    // SAFETY: the buffer starts with the row count, which the system wrote.
    let count = unsafe { *table.as_ptr().cast::<u32>() } as usize;
    let offset = std::mem::align_of::<Row>().max(4);
    let fits = (bytes.saturating_sub(offset)) / std::mem::size_of::<Row>();
    (0..count.min(fits)).map(move |i| {
        // SAFETY: row `i` lies inside the buffer (bounded by `fits`); read unaligned to be safe.
        unsafe {
            table
                .as_ptr()
                .cast::<u8>()
                .add(offset + i * std::mem::size_of::<Row>())
                .cast::<Row>()
                .read_unaligned()
        }
    })
}

/// Renames `from` to `to` only if `to` does not exist (`MoveFileExW` without
/// `MOVEFILE_REPLACE_EXISTING`); files and directories alike.
pub fn rename_noreplace(from: &Path, to: &Path) -> io::Result<()> {
    let (from, to) = (wide(from.as_os_str()), wide(to.as_os_str()));
    // SAFETY: two NUL-terminated paths.
    if unsafe { fs_sys::MoveFileExW(from.as_ptr(), to.as_ptr(), 0) } != 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Working-set bytes of `root` and every descendant (at most 512 processes): the tree from one
/// process snapshot (parent ids), each process's `GetProcessMemoryInfo`. `None` when `root`
/// cannot be opened. A parent id can outlive its process and be reused: a child whose creation
/// time is before its parent's is not counted as its descendant.
pub fn tree_resident_bytes(root: i32) -> Option<u64> {
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Process32FirstW, Process32NextW, PROCESSENTRY32W,
        TH32CS_SNAPPROCESS,
    };
    let resident = |pid: i32| -> Option<u64> {
        use windows_sys::Win32::System::ProcessStatus::{
            GetProcessMemoryInfo, PROCESS_MEMORY_COUNTERS,
        };
        let process = open_process(pid, th::PROCESS_QUERY_LIMITED_INFORMATION).ok()?;
        // SAFETY: all-zero is valid for this plain C struct.
        let mut counters: PROCESS_MEMORY_COUNTERS = unsafe { std::mem::zeroed() };
        let size = std::mem::size_of::<PROCESS_MEMORY_COUNTERS>() as u32;
        // SAFETY: a valid process handle and a struct of the size given.
        let ok = unsafe { GetProcessMemoryInfo(raw(&process), &mut counters, size) } != 0;
        ok.then_some(counters.WorkingSetSize as u64)
    };
    let mut total = resident(root)?;
    // SAFETY: a system-wide process snapshot, owned below.
    let Some(snapshot) = owned(unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPPROCESS, 0) }) else {
        return Some(total);
    };
    let mut parents = Vec::new();
    // SAFETY: all-zero is valid for this plain C struct; dwSize is set as the API requires.
    let mut entry: PROCESSENTRY32W = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<PROCESSENTRY32W>() as u32;
    // SAFETY: a valid snapshot and a sized entry.
    let mut more = unsafe { Process32FirstW(raw(&snapshot), &mut entry) } != 0;
    while more {
        parents.push((entry.th32ProcessID as i32, entry.th32ParentProcessID as i32));
        // SAFETY: as above.
        more = unsafe { Process32NextW(raw(&snapshot), &mut entry) } != 0;
    }
    let mut tree = vec![root];
    let mut next = 0;
    while next < tree.len() && tree.len() < 512 {
        let parent = tree[next];
        next += 1;
        let born = process_start_time(parent);
        for &(pid, _) in parents
            .iter()
            .filter(|&&(pid, ppid)| ppid == parent && pid != parent)
        {
            if tree.contains(&pid) || process_start_time(pid) < born {
                continue;
            }
            tree.push(pid);
            total += resident(pid).unwrap_or(0);
        }
    }
    Some(total)
}

/// The machine's physical memory (`GlobalMemoryStatusEx`).
pub fn physical_memory_bytes() -> Option<u64> {
    use windows_sys::Win32::System::SystemInformation::{GlobalMemoryStatusEx, MEMORYSTATUSEX};
    // SAFETY: all-zero is valid for this plain C struct; dwLength is set as the API requires.
    let mut status: MEMORYSTATUSEX = unsafe { std::mem::zeroed() };
    status.dwLength = std::mem::size_of::<MEMORYSTATUSEX>() as u32;
    // SAFETY: a sized struct.
    (unsafe { GlobalMemoryStatusEx(&mut status) } != 0).then_some(status.ullTotalPhys)
}

/// Windows processes do not adopt orphans: a runner has nothing to list (its job holds the
/// serve's whole tree instead).
pub fn children_of(_parent: i32) -> Vec<(i32, i32)> {
    vec![]
}

/// Another process's command line is not read on Windows (it lives in that process's memory):
/// nothing is proven by it.
pub fn process_cmdline(_pid: i32) -> Option<String> {
    None
}

/// No parent-death signal on Windows: the [`ProcessTree`] job, closed with its owner, ends
/// the tree instead.
pub fn set_parent_death_signal(_command: &mut tokio::process::Command) {}

/// Creates `dir` and any missing parents. Windows gives new directories the ACL they inherit
/// from their parent; the registry and temp directories are the user's own.
pub fn create_private_dir_all(dir: &Path) -> io::Result<()> {
    fs::create_dir_all(dir)
}

/// Creates `dir` (one level; the parent must exist), inheriting its parent's ACL.
pub fn create_private_dir(dir: &Path) -> io::Result<()> {
    fs::create_dir(dir)
}

/// Why an existing directory is not this user's (another owner), with the command that fixes
/// it; `None` when its owner is this user (or the Administrators group, which owns what this
/// user's elevated processes create).
pub fn private_dir_problem(dir: &Path, _meta: &Metadata) -> Option<(String, String)> {
    let shown = dir.display();
    let owner = security::owner_of(dir)?;
    let me = security::current_user_sid()?;
    if owner == me || owner == security::ADMINISTRATORS {
        return None;
    }
    Some((
        format!("it is owned by {owner}, not by this user ({me})"),
        format!("takeown /F \"{shown}\" (or remove it)"),
    ))
}

/// Owners as SID strings (`S-1-5-21-...`).
mod security {
    use std::path::Path;

    use windows_sys::Win32::Foundation::{LocalFree, ERROR_SUCCESS};
    use windows_sys::Win32::Security::Authorization::{
        ConvertSidToStringSidW, GetNamedSecurityInfoW, SE_FILE_OBJECT,
    };
    use windows_sys::Win32::Security::{
        GetTokenInformation, TokenUser, OWNER_SECURITY_INFORMATION, PSID, TOKEN_QUERY, TOKEN_USER,
    };
    use windows_sys::Win32::System::Threading::{GetCurrentProcess, OpenProcessToken};

    /// BUILTIN\Administrators.
    pub const ADMINISTRATORS: &str = "S-1-5-32-544";

    fn sid_string(sid: PSID) -> Option<String> {
        let mut text: *mut u16 = std::ptr::null_mut();
        // SAFETY: `sid` is a valid SID; the string is freed with LocalFree below.
        if unsafe { ConvertSidToStringSidW(sid, &mut text) } == 0 || text.is_null() {
            return None;
        }
        // SAFETY: a NUL-terminated string the system allocated.
        let len = (0..).take_while(|&i| unsafe { *text.add(i) } != 0).count();
        // SAFETY: `len` u16s are readable at `text`.
        let out = String::from_utf16_lossy(unsafe { std::slice::from_raw_parts(text, len) });
        // SAFETY: allocated by ConvertSidToStringSidW, freed once.
        unsafe { LocalFree(text.cast()) };
        Some(out)
    }

    pub fn owner_of(path: &Path) -> Option<String> {
        let name = super::wide(path.as_os_str());
        let mut owner: PSID = std::ptr::null_mut();
        let mut descriptor = std::ptr::null_mut();
        // SAFETY: a NUL-terminated path; the descriptor (which holds `owner`) is freed below.
        let status = unsafe {
            GetNamedSecurityInfoW(
                name.as_ptr(),
                SE_FILE_OBJECT,
                OWNER_SECURITY_INFORMATION,
                &mut owner,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                std::ptr::null_mut(),
                &mut descriptor,
            )
        };
        if status != ERROR_SUCCESS {
            return None;
        }
        let text = sid_string(owner);
        // SAFETY: allocated by GetNamedSecurityInfoW, freed once.
        unsafe { LocalFree(descriptor) };
        text
    }

    pub fn current_user_sid() -> Option<String> {
        let mut token = std::ptr::null_mut();
        // SAFETY: the pseudo handle of this process; the token is owned below.
        if unsafe { OpenProcessToken(GetCurrentProcess(), TOKEN_QUERY, &mut token) } == 0 {
            return None;
        }
        let token = super::owned(token)?;
        let mut buf = vec![0u64; 64];
        let mut len = 0u32;
        // SAFETY: `buf` is writable for its byte length; TOKEN_USER is written at its start.
        let ok = unsafe {
            GetTokenInformation(
                super::raw(&token),
                TokenUser,
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                &mut len,
            )
        };
        if ok == 0 {
            return None;
        }
        // SAFETY: the call succeeded, so a TOKEN_USER lies at the (u64-aligned) start of `buf`.
        let user = unsafe { &*buf.as_ptr().cast::<TOKEN_USER>() };
        sid_string(user.User.Sid)
    }
}

/// Any regular file: what runs is decided by its extension (see [`EXECUTABLE_SUFFIXES`]).
pub fn is_executable(meta: &Metadata) -> bool {
    meta.is_file()
}

/// What a command name may end with on PATH (`qvac` is `qvac.cmd` when npm installed it).
pub const EXECUTABLE_SUFFIXES: &[&str] = &[".exe", ".cmd", ".bat", ".com", ""];

/// Permission bits do not exist on Windows: files take their directory's ACL.
pub fn with_create_mode(options: &mut OpenOptions, _mode: u32) -> &mut OpenOptions {
    options
}

/// (volume serial number, file index) of an open file: what names one file on one volume.
pub fn file_identity(file: &File) -> io::Result<(u64, u64)> {
    use fs_sys::{GetFileInformationByHandle, BY_HANDLE_FILE_INFORMATION};
    // SAFETY: all-zero is a valid value of this plain C struct.
    let mut info: BY_HANDLE_FILE_INFORMATION = unsafe { std::mem::zeroed() };
    // SAFETY: a valid open handle and a writable struct.
    if unsafe { GetFileInformationByHandle(file.as_raw_handle(), &mut info) } == 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((
        u64::from(info.dwVolumeSerialNumber),
        (u64::from(info.nFileIndexHigh) << 32) | u64::from(info.nFileIndexLow),
    ))
}

/// [`file_identity`] of what `path` names now (a file or a directory), opened without
/// blocking anyone else's rename or delete.
pub fn file_identity_at(path: &Path) -> io::Result<(u64, u64)> {
    let file = OpenOptions::new()
        .access_mode(fs_sys::FILE_READ_ATTRIBUTES)
        .share_mode(fs_sys::FILE_SHARE_READ | fs_sys::FILE_SHARE_WRITE | fs_sys::FILE_SHARE_DELETE)
        .custom_flags(fs_sys::FILE_FLAG_BACKUP_SEMANTICS)
        .open(path)?;
    file_identity(&file)
}

/// Makes a rename or link in `dir` durable: NTFS journals its metadata, nothing to do.
pub fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}

/// The file a [`crate::pid_lock`] takeover locks: directories cannot be locked on Windows, so a
/// file beside the locks stands for their directory (it is never removed).
pub fn dir_guard_file(dir: &Path) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(dir.join(".pid-lock-guard"))
}

/// The null device, for a detached process's standard streams.
pub const NULL_DEVICE: &str = "NUL";

/// The user's profile directory (`%USERPROFILE%`, as Node's `os.homedir()` falls back to).
pub fn home_of_current_user() -> Option<PathBuf> {
    std::env::var_os("USERPROFILE")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .or_else(|| {
            let drive = std::env::var_os("HOMEDRIVE")?;
            let mut path = PathBuf::from(drive);
            path.push(std::env::var_os("HOMEPATH")?);
            Some(path)
        })
}

/// Antivirus scanners and indexers open new files briefly without sharing them: a rename,
/// link or removal in that moment fails with a sharing violation. `op` is retried for up to
/// ~1 s on those errors only.
pub fn retry_transient<T>(mut op: impl FnMut() -> io::Result<T>) -> io::Result<T> {
    const SHARING_VIOLATION: i32 = 32;
    const LOCK_VIOLATION: i32 = 33;
    let mut delay = std::time::Duration::from_millis(1);
    for _ in 0..12 {
        match op() {
            Err(e)
                if matches!(e.raw_os_error(), Some(SHARING_VIOLATION | LOCK_VIOLATION))
                    || e.raw_os_error() == Some(ERROR_ACCESS_DENIED as i32) =>
            {
                std::thread::sleep(delay);
                delay = (delay * 2).min(std::time::Duration::from_millis(200));
            }
            other => return other,
        }
    }
    op()
}

/// `_exit`: ends this process at once, running nothing (`TerminateProcess` on itself).
pub fn exit_immediately(code: i32) -> ! {
    // SAFETY: ends the current process; nothing after it runs.
    unsafe { th::TerminateProcess(th::GetCurrentProcess(), code as u32) };
    std::process::abort()
}

/// Resolves once `handle` (a process or an event) is signalled, through a registered wait on
/// the system's thread pool: no thread of ours blocks, and dropping the future unregisters it.
async fn signalled(handle: &OwnedHandle) {
    type Slot = Mutex<Option<tokio::sync::oneshot::Sender<()>>>;
    unsafe extern "system" fn fire(context: *mut c_void, _timed_out: bool) {
        // SAFETY: `context` is the `Slot` below, freed only after the wait is unregistered.
        let slot = unsafe { &*context.cast::<Slot>() };
        if let Some(tx) = slot.lock().ok().and_then(|mut s| s.take()) {
            let _ = tx.send(());
        }
    }
    struct Registration {
        wait: HANDLE,
        slot: *mut Slot,
    }
    // SAFETY: the wait handle may be unregistered from any thread, and the slot is a Mutex.
    unsafe impl Send for Registration {}
    impl Drop for Registration {
        fn drop(&mut self) {
            // SAFETY: INVALID_HANDLE_VALUE makes UnregisterWaitEx wait for a running callback,
            // so the slot is not in use when it is freed.
            unsafe {
                th::UnregisterWaitEx(self.wait, INVALID_HANDLE_VALUE);
                drop(Box::from_raw(self.slot));
            }
        }
    }
    if has_exited(handle) {
        return;
    }
    // Registered by a plain function, so no raw pointer is held across the await.
    fn register(
        handle: &OwnedHandle,
    ) -> Option<(Registration, tokio::sync::oneshot::Receiver<()>)> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let slot: *mut Slot = Box::into_raw(Box::new(Mutex::new(Some(tx))));
        let mut wait: HANDLE = std::ptr::null_mut();
        // SAFETY: `handle` outlives the registration (both end with the future that awaits
        // it); `slot` is freed by the registration's drop after unregistering.
        let ok = unsafe {
            th::RegisterWaitForSingleObject(
                &mut wait,
                raw(handle),
                Some(fire),
                slot.cast_const().cast(),
                th::INFINITE,
                th::WT_EXECUTEONLYONCE,
            )
        };
        if ok == 0 {
            // SAFETY: never registered, so never shared.
            drop(unsafe { Box::from_raw(slot) });
            return None;
        }
        Some((Registration { wait, slot }, rx))
    }
    match register(handle) {
        Some((_registration, rx)) => {
            let _ = rx.await;
        }
        None => {
            while !has_exited(handle) {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    }
}

/// One process pinned by a handle: its pid cannot be reused while the handle is open, so an
/// identity checked after opening stays true for every signal sent through it.
pub struct ProcessHandle {
    pid: i32,
    handle: OwnedHandle,
}

impl ProcessHandle {
    /// `None` when there is no such process (or it may not be opened).
    pub fn open(pid: i32) -> Option<ProcessHandle> {
        if pid <= 1 {
            return None;
        }
        let handle = open_process(pid, QUERY | th::PROCESS_TERMINATE)
            .or_else(|_| open_process(pid, QUERY))
            .ok()?;
        Some(ProcessHandle { pid, handle })
    }

    /// `Term` asks it to stop (a runner's stop event, else CTRL_BREAK to its group on our
    /// console); `Kill` ends it. False once it has exited.
    pub fn signal(&self, signal: Signal) -> bool {
        if has_exited(&self.handle) {
            return false;
        }
        match signal {
            Signal::Term => request_stop(self.pid),
            Signal::Kill => terminate(&self.handle),
        }
    }

    /// Resolves when the process exits.
    pub async fn exited(&self) {
        signalled(&self.handle).await
    }
}

/// The exit of one process, as an event (a wait on its handle).
pub struct ExitWatch(OwnedHandle);

impl ExitWatch {
    pub fn open(pid: i32) -> Option<ExitWatch> {
        open_process(pid, th::PROCESS_SYNCHRONIZE)
            .ok()
            .map(ExitWatch)
    }

    pub fn supported() -> bool {
        true
    }

    pub async fn exited(&self) {
        signalled(&self.0).await
    }
}

/// A runner's stop requests from other processes: the named event [`stop_event_name`] of this
/// process, which [`ProcessHandle::signal`] sets for `Term`.
pub struct StopEvent(OwnedHandle);

impl StopEvent {
    pub fn create() -> io::Result<StopEvent> {
        let name = wide(OsStr::new(&stop_event_name(std::process::id())));
        // SAFETY: a NUL-terminated name; manual reset, initially not set.
        let event = unsafe { th::CreateEventW(std::ptr::null(), 1, 0, name.as_ptr()) };
        owned(event)
            .map(StopEvent)
            .ok_or_else(io::Error::last_os_error)
    }

    /// Resolves once someone asked this process to stop.
    pub async fn requested(&self) {
        signalled(&self.0).await
    }
}

/// The tree a supervised child starts: a Job Object the child is put in before it runs (it is
/// created suspended, assigned, then resumed), so everything it starts is in it too. `Term` is
/// CTRL_BREAK to its console process group, `Kill` terminates the whole job; with
/// `kill_on_close` the job dies with its last handle, i.e. with this process.
pub struct ProcessTree {
    pid: i32,
    process: Option<OwnedHandle>,
    job: Option<OwnedHandle>,
}

impl std::fmt::Debug for ProcessTree {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessTree")
            .field("pid", &self.pid)
            .field("job", &self.job.is_some())
            .finish()
    }
}

impl ProcessTree {
    /// Before spawning: a process group of its own (for CTRL_BREAK) and suspended, so that it
    /// runs nothing before it is in its job.
    pub fn prepare(command: &mut tokio::process::Command) {
        command.creation_flags(th::CREATE_NEW_PROCESS_GROUP | th::CREATE_SUSPENDED);
    }

    /// Right after spawning: puts the child in a new job and lets it run. If the job cannot be
    /// made (an old system forbidding nested jobs), the child runs without one: its tree is
    /// then its leader alone.
    pub fn adopt(child: &tokio::process::Child, kill_on_close: bool) -> io::Result<ProcessTree> {
        let pid = child.id().map_or(0, |p| p as i32);
        let process = child
            .raw_handle()
            .and_then(|h| {
                let mut dup: HANDLE = std::ptr::null_mut();
                // SAFETY: duplicates the child's handle (valid while `child` lives) for us.
                let ok = unsafe {
                    windows_sys::Win32::Foundation::DuplicateHandle(
                        th::GetCurrentProcess(),
                        h,
                        th::GetCurrentProcess(),
                        &mut dup,
                        0,
                        0,
                        windows_sys::Win32::Foundation::DUPLICATE_SAME_ACCESS,
                    )
                };
                (ok != 0).then_some(dup)
            })
            .and_then(owned);
        let job = process
            .as_ref()
            .and_then(|process| new_job(process, kill_on_close));
        if job.is_none() {
            tracing::warn!(
                pid,
                "could not put the child in a Job Object; only the child itself will be stopped"
            );
        }
        resume_threads(pid as u32);
        Ok(ProcessTree { pid, process, job })
    }

    pub fn id(&self) -> i32 {
        self.pid
    }

    pub fn signal(&self, signal: Signal) -> bool {
        match (signal, &self.job, &self.process) {
            (Signal::Term, _, _) => request_stop(self.pid),
            (Signal::Kill, Some(job), _) => {
                // SAFETY: a valid job handle.
                unsafe {
                    windows_sys::Win32::System::JobObjects::TerminateJobObject(
                        raw(job),
                        KILLED_EXIT_CODE,
                    ) != 0
                }
            }
            (Signal::Kill, None, Some(process)) => terminate(process),
            (Signal::Kill, None, None) => signal_child(self.pid, Signal::Kill),
        }
    }

    /// True while any process of the tree runs.
    pub fn alive(&self) -> bool {
        use windows_sys::Win32::System::JobObjects::{
            JobObjectBasicAccountingInformation, QueryInformationJobObject,
            JOBOBJECT_BASIC_ACCOUNTING_INFORMATION,
        };
        match (&self.job, &self.process) {
            (Some(job), _) => {
                // SAFETY: all-zero is valid for this plain C struct.
                let mut info: JOBOBJECT_BASIC_ACCOUNTING_INFORMATION =
                    unsafe { std::mem::zeroed() };
                // SAFETY: a valid job handle and a writable struct of the stated size.
                let ok = unsafe {
                    QueryInformationJobObject(
                        raw(job),
                        JobObjectBasicAccountingInformation,
                        (&mut info as *mut JOBOBJECT_BASIC_ACCOUNTING_INFORMATION).cast(),
                        std::mem::size_of::<JOBOBJECT_BASIC_ACCOUNTING_INFORMATION>() as u32,
                        std::ptr::null_mut(),
                    )
                };
                ok != 0 && info.ActiveProcesses > 0
            }
            (None, Some(process)) => !has_exited(process),
            (None, None) => pid_exists(self.pid) == Some(true),
        }
    }

    /// Nothing to reap on Windows.
    pub fn reap(&self) {}
}

fn new_job(process: &OwnedHandle, kill_on_close: bool) -> Option<OwnedHandle> {
    use windows_sys::Win32::System::JobObjects::{
        AssignProcessToJobObject, CreateJobObjectW, JobObjectExtendedLimitInformation,
        SetInformationJobObject, JOBOBJECT_EXTENDED_LIMIT_INFORMATION,
        JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE,
    };
    // SAFETY: an anonymous job with default security; owned below.
    let job = owned(unsafe { CreateJobObjectW(std::ptr::null(), std::ptr::null()) })?;
    if kill_on_close {
        // SAFETY: all-zero is valid for this plain C struct.
        let mut limits: JOBOBJECT_EXTENDED_LIMIT_INFORMATION = unsafe { std::mem::zeroed() };
        limits.BasicLimitInformation.LimitFlags = JOB_OBJECT_LIMIT_KILL_ON_JOB_CLOSE;
        // SAFETY: a valid job handle and a struct of the stated size.
        let ok = unsafe {
            SetInformationJobObject(
                raw(&job),
                JobObjectExtendedLimitInformation,
                (&limits as *const JOBOBJECT_EXTENDED_LIMIT_INFORMATION).cast(),
                std::mem::size_of::<JOBOBJECT_EXTENDED_LIMIT_INFORMATION>() as u32,
            )
        };
        if ok == 0 {
            return None;
        }
    }
    // SAFETY: valid job and process handles.
    (unsafe { AssignProcessToJobObject(raw(&job), raw(process)) } != 0).then_some(job)
}

/// Resumes every thread of a process created suspended (its main thread: std does not hand
/// out the thread handle, so it is found in a thread snapshot).
fn resume_threads(pid: u32) {
    use windows_sys::Win32::System::Diagnostics::ToolHelp::{
        CreateToolhelp32Snapshot, Thread32First, Thread32Next, TH32CS_SNAPTHREAD, THREADENTRY32,
    };
    // SAFETY: a system-wide thread snapshot, owned below.
    let Some(snapshot) = owned(unsafe { CreateToolhelp32Snapshot(TH32CS_SNAPTHREAD, 0) }) else {
        return;
    };
    // SAFETY: all-zero is valid for this plain C struct; dwSize is set as the API requires.
    let mut entry: THREADENTRY32 = unsafe { std::mem::zeroed() };
    entry.dwSize = std::mem::size_of::<THREADENTRY32>() as u32;
    // SAFETY: a valid snapshot and a sized entry.
    let mut more = unsafe { Thread32First(raw(&snapshot), &mut entry) } != 0;
    while more {
        if entry.th32OwnerProcessID == pid {
            // SAFETY: opens one thread of our own child; owned below.
            let thread =
                owned(unsafe { th::OpenThread(th::THREAD_SUSPEND_RESUME, 0, entry.th32ThreadID) });
            if let Some(thread) = thread {
                // SAFETY: a valid thread handle with THREAD_SUSPEND_RESUME.
                unsafe { th::ResumeThread(raw(&thread)) };
            }
        }
        // SAFETY: as above.
        more = unsafe { Thread32Next(raw(&snapshot), &mut entry) } != 0;
    }
}

/// A watch on one directory by `ReadDirectoryChangesW` (overlapped, on a thread of its own),
/// following the directory through removal and re-creation: while it is missing the watch is
/// not armed and is re-opened every 100 ms; each re-arm reports the directory itself (`None`).
pub struct DirWatcher {
    events: tokio::sync::mpsc::UnboundedReceiver<Option<OsString>>,
    armed: Arc<AtomicBool>,
    stop: Arc<OwnedHandle>,
}

impl DirWatcher {
    /// `None` when neither the directory nor its parent exists.
    pub fn new(dir: &Path) -> Option<DirWatcher> {
        if !dir.is_dir() && !dir.parent().is_some_and(Path::is_dir) {
            return None;
        }
        // SAFETY: an anonymous manual-reset event, owned below.
        let stop = Arc::new(owned(unsafe {
            th::CreateEventW(std::ptr::null(), 1, 0, std::ptr::null())
        })?);
        let armed = Arc::new(AtomicBool::new(false));
        let (tx, events) = tokio::sync::mpsc::unbounded_channel();
        let first = open_dir(dir);
        armed.store(first.is_some(), Ordering::SeqCst);
        let (thread_stop, thread_armed, dir) = (stop.clone(), armed.clone(), dir.to_owned());
        std::thread::Builder::new()
            .name("qvac-dir-watch".into())
            .spawn(move || watch_loop(&dir, first, &tx, &thread_stop, &thread_armed))
            .ok()?;
        Some(DirWatcher {
            events,
            armed,
            stop,
        })
    }

    pub fn armed(&self) -> bool {
        self.armed.load(Ordering::SeqCst)
    }

    /// The next batch of changed names (`None`: the directory itself, after which it is
    /// watched again).
    pub async fn next_events(&mut self) -> Vec<Option<OsString>> {
        let Some(first) = self.events.recv().await else {
            return std::future::pending().await;
        };
        let mut names = vec![first];
        while let Ok(name) = self.events.try_recv() {
            names.push(name);
        }
        names
    }
}

impl Drop for DirWatcher {
    fn drop(&mut self) {
        // SAFETY: a valid event handle; the thread sees it and ends.
        unsafe { th::SetEvent(raw(&self.stop)) };
    }
}

fn open_dir(dir: &Path) -> Option<OwnedHandle> {
    let name = wide(dir.as_os_str());
    // SAFETY: a NUL-terminated path; the handle is owned below.
    owned(unsafe {
        fs_sys::CreateFileW(
            name.as_ptr(),
            fs_sys::FILE_LIST_DIRECTORY,
            fs_sys::FILE_SHARE_READ | fs_sys::FILE_SHARE_WRITE | fs_sys::FILE_SHARE_DELETE,
            std::ptr::null(),
            fs_sys::OPEN_EXISTING,
            fs_sys::FILE_FLAG_BACKUP_SEMANTICS | fs_sys::FILE_FLAG_OVERLAPPED,
            std::ptr::null_mut(),
        )
    })
}

type Events = tokio::sync::mpsc::UnboundedSender<Option<OsString>>;

fn watch_loop(
    dir: &Path,
    mut handle: Option<OwnedHandle>,
    tx: &Events,
    stop: &OwnedHandle,
    armed: &AtomicBool,
) {
    loop {
        if let Some(h) = handle.take() {
            armed.store(true, Ordering::SeqCst);
            if !read_changes(&h, tx, stop) {
                return;
            }
            armed.store(false, Ordering::SeqCst);
            if tx.send(None).is_err() {
                return;
            }
        }
        // SAFETY: a valid event; waits up to 100 ms for a stop.
        if unsafe { th::WaitForSingleObject(raw(stop), 100) } == WAIT_OBJECT_0 {
            return;
        }
        handle = open_dir(dir);
        if handle.is_some() && tx.send(None).is_err() {
            return;
        }
    }
}

/// Reads changes until the directory goes (true: re-open it) or a stop (false).
fn read_changes(dir: &OwnedHandle, tx: &Events, stop: &OwnedHandle) -> bool {
    use windows_sys::Win32::System::IO::{CancelIoEx, GetOverlappedResult, OVERLAPPED};
    // SAFETY: an anonymous manual-reset event for the overlapped reads, owned below.
    let Some(done) = owned(unsafe { th::CreateEventW(std::ptr::null(), 1, 0, std::ptr::null()) })
    else {
        return true;
    };
    let mut buf = vec![0u64; 8 * 1024];
    let filter = fs_sys::FILE_NOTIFY_CHANGE_FILE_NAME
        | fs_sys::FILE_NOTIFY_CHANGE_DIR_NAME
        | fs_sys::FILE_NOTIFY_CHANGE_LAST_WRITE
        | fs_sys::FILE_NOTIFY_CHANGE_SIZE;
    loop {
        // SAFETY: all-zero is a valid OVERLAPPED; the event is set as the completion signal.
        let mut overlapped: OVERLAPPED = unsafe { std::mem::zeroed() };
        overlapped.hEvent = raw(&done);
        // SAFETY: `buf` and `overlapped` stay in place until the read completes or is
        // cancelled and waited for below.
        let started = unsafe {
            fs_sys::ReadDirectoryChangesW(
                raw(dir),
                buf.as_mut_ptr().cast(),
                (buf.len() * 8) as u32,
                0,
                filter,
                std::ptr::null_mut(),
                &mut overlapped,
                None,
            )
        };
        if started == 0 {
            return true;
        }
        let waits = [raw(&done), raw(stop)];
        // SAFETY: two valid handles.
        let woke = unsafe { th::WaitForMultipleObjects(2, waits.as_ptr(), 0, th::INFINITE) };
        let mut bytes = 0u32;
        if woke != WAIT_OBJECT_0 {
            // SAFETY: cancels our own read, then waits for it so `buf` is free again.
            unsafe {
                CancelIoEx(raw(dir), &overlapped);
                GetOverlappedResult(raw(dir), &overlapped, &mut bytes, 1);
            }
            return false;
        }
        // SAFETY: the read has completed (its event is set).
        if unsafe { GetOverlappedResult(raw(dir), &overlapped, &mut bytes, 0) } == 0 {
            return true;
        }
        let names = if bytes == 0 {
            // The buffer overflowed: anything may have changed.
            vec![None]
        } else {
            parse_notifications(&buf, bytes as usize)
        };
        for name in names {
            if tx.send(name).is_err() {
                return false;
            }
        }
    }
}

/// The names in a `FILE_NOTIFY_INFORMATION` chain.
fn parse_notifications(buf: &[u64], len: usize) -> Vec<Option<OsString>> {
    // NextEntryOffset, Action, FileNameLength (bytes), then the name in UTF-16.
    const HEADER: usize = 12;
    let bytes = buf.len() * 8;
    let base = buf.as_ptr().cast::<u8>();
    let read_u32 = |at: usize| {
        // SAFETY: callers check `at + 4 <= len <= bytes`.
        unsafe { base.add(at).cast::<u32>().read_unaligned() }
    };
    let mut names = Vec::new();
    let mut at = 0usize;
    while at + HEADER <= len.min(bytes) {
        let next = read_u32(at) as usize;
        let name_len = read_u32(at + 8) as usize;
        if at + HEADER + name_len > len.min(bytes) {
            break;
        }
        // SAFETY: `name_len` bytes at `at + HEADER` are inside the filled part of the buffer.
        let units: Vec<u16> = (0..name_len / 2)
            .map(|i| unsafe { base.add(at + HEADER + i * 2).cast::<u16>().read_unaligned() })
            .collect();
        names.push(Some(OsString::from_wide(&units)));
        if next == 0 {
            break;
        }
        at += next;
    }
    names
}
