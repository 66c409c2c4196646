//! What a runner says about its serve beyond the record (files of ours; upstream 0.7.0 neither
//! reads nor sweeps them, as they do not end in `.json`):
//!
//! - `<key>.health`: the watchdog's last probe, rewritten by the runner
//!   after every probe while the serve runs, removed when it ends (`ps` shows it).
//! - `<key>.exits`: how the fleet's last serves ended (crashed, hung, stopped, reaped; exit code
//!   or signal; the output tail), appended by each runner as its serve ends. Consumers read it to
//!   say why the serve they used exited, and to refuse a start while the fleet is in a crash
//!   loop; `qvac-managed reset` removes it. A private fleet (`<key>-priv-<pid>-<hex>`, a new key
//!   for every attach and respawn) writes to its shared key's ledger, so its crashes count
//!   toward the same cap; runners of several private fleets may write it at once, so every
//!   write is made under the registry's directory guard.
//!
//! Timestamps are wall-clock milliseconds since the Unix epoch: they are compared across
//! processes, which share no monotonic clock.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::{io_err, Registry, RegistryError};

/// How many exits `<key>.exits` keeps (the newest).
const EXITS_KEPT: usize = 32;
/// The output tail kept with each exit.
const EXIT_TAIL_LIMIT: usize = 4096;

/// Now, in milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// The watchdog's view of a running serve, as `<key>.health` holds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeHealth {
    pub serve_pid: i32,
    /// When the last probe ended (answered or not).
    pub last_probe_at: Option<u64>,
    /// Its HTTP status, when it was answered.
    pub last_probe_status: Option<u16>,
    /// How long it took.
    pub last_probe_ms: Option<u64>,
    /// Why it was not answered (timeout, refused, ...).
    pub last_probe_error: Option<String>,
    /// When the serve last answered anything (a probe, or becoming healthy).
    pub last_answer_at: Option<u64>,
    /// `serveHangTimeout` in force (0 = no watchdog).
    pub hang_timeout_ms: u64,
}

/// How a serve ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ExitKind {
    /// It exited on its own, or stopped listening.
    Crashed,
    /// It lived and accepted connections but answered nothing for `serveHangTimeout`.
    Hung,
    /// Someone stopped it (`stopServe`, `qvac-managed stop`, a signal to its runner).
    Stopped,
    /// Idle: its last consumer and connection were gone for `serveIdleTimeout`.
    Reaped,
    /// Idle, and stopped early to make room for another fleet under a memory budget.
    Evicted,
    /// Its process tree stayed above `serveMaxMemory` for [`MEMORY_CEILING_GRACE`]; stopped.
    ///
    /// [`MEMORY_CEILING_GRACE`]: super::MEMORY_CEILING_GRACE
    Memory,
}

impl ExitKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ExitKind::Crashed => "crashed",
            ExitKind::Hung => "hung",
            ExitKind::Stopped => "stopped",
            ExitKind::Reaped => "reaped",
            ExitKind::Evicted => "evicted",
            ExitKind::Memory => "memory",
        }
    }

    /// An exit the crash-loop cap counts: not asked for.
    pub fn is_unexpected(self) -> bool {
        matches!(self, ExitKind::Crashed | ExitKind::Hung | ExitKind::Memory)
    }
}

/// One serve's end, as `<key>.exits` holds it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeExit {
    pub serve_pid: i32,
    pub port: u16,
    pub kind: ExitKind,
    pub at: u64,
    pub code: Option<i32>,
    pub signal: Option<String>,
    #[serde(default)]
    pub output_tail: String,
    /// The start (its attempt id) whose serve this was: a consumer that started it and found it
    /// gone right after it became healthy reports this exit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<String>,
    /// When its runner published it (ms since the epoch): consumers that were waiting on that
    /// start when it ended know the exit is theirs to report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy_at: Option<u64>,
    /// The most resident memory its process tree was seen to use (bytes); `None` when never
    /// sampled. A later start of the fleet under a memory budget reserves this much.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub peak_bytes: Option<u64>,
}

impl ServeExit {
    /// The start failure a consumer reports for a serve that ended right after it became
    /// healthy (before the consumer could use it): SERVE_STOPPED when it was stopped (stopServe,
    /// `qvac-managed stop`, a signal to its runner), else SERVE_EXITED; with its exit status and
    /// output.
    pub fn as_start_failure(&self) -> super::StartFailure {
        let status = format!(
            "code={}, signal={}",
            self.code.map_or("null".to_owned(), |c| c.to_string()),
            self.signal.as_deref().unwrap_or("null")
        );
        let (code, message) = match self.kind {
            ExitKind::Stopped => (
                "SERVE_STOPPED",
                format!("the serve was stopped right after it became healthy, before it could be used (stopServe(), `qvac-managed stop`, or a signal to its runner; {status}). Create the provider again, or retry the request, to start it afresh."),
            ),
            ExitKind::Memory => (
                "SERVE_EXITED",
                format!("qvac serve was stopped by its runner right after becoming healthy: its process tree stayed above `serveMaxMemory` ({status}). Raise `serveMaxMemory` or use smaller models."),
            ),
            _ => (
                "SERVE_EXITED",
                format!("qvac serve exited right after becoming healthy ({status})."),
            ),
        };
        super::StartFailure {
            code: code.into(),
            message,
            output_tail: self.output_tail.clone(),
            exit_code: self.code,
            signal: self.signal.clone(),
            attempt: self.attempt.clone(),
        }
    }
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct ExitHistory {
    exits: Vec<ServeExit>,
}

/// A fleet whose serve crashed too often: no start until `retry_after` has passed.
#[derive(Clone, Debug, PartialEq)]
pub struct CrashLoop {
    /// Unexpected exits within the window.
    pub restarts: u32,
    pub window: Duration,
    /// Until the window no longer holds more than the cap.
    pub retry_after: Duration,
    /// The last crash's output.
    pub output_tail: String,
}

impl Registry {
    /// `<key>.health`.
    pub fn health_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join(format!("{key}.health"))
    }

    /// `<key>.exits`; for a private fleet, its shared key's (see the module doc).
    pub fn exits_path(&self, key: &str) -> std::path::PathBuf {
        let ledger = key.split_once("-priv-").map_or(key, |(shared, _)| shared);
        self.dir.join(format!("{ledger}.exits"))
    }

    pub fn write_health(&self, key: &str, health: &ServeHealth) -> Result<(), RegistryError> {
        write_json(&self.health_path(key), health)
    }

    /// The health a runner last wrote for `key`; `None` when there is none (or it is unreadable).
    pub fn read_health(&self, key: &str) -> Option<ServeHealth> {
        let text = std::fs::read(self.health_path(key)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn remove_health(&self, key: &str) {
        let _ = std::fs::remove_file(self.health_path(key));
    }

    /// Adds `exit` to `<key>.exits` (the newest [`EXITS_KEPT`] are kept). The read-modify-replace
    /// is made under the directory guard, so concurrent writers (private fleets sharing a
    /// ledger) lose nothing.
    pub fn record_exit(&self, key: &str, exit: &ServeExit) -> Result<(), RegistryError> {
        let _guard = self.guard()?;
        let mut history = self.read_history(key);
        let mut exit = exit.clone();
        if exit.output_tail.len() > EXIT_TAIL_LIMIT {
            let mut cut = exit.output_tail.len() - EXIT_TAIL_LIMIT;
            while !exit.output_tail.is_char_boundary(cut) {
                cut += 1;
            }
            exit.output_tail = exit.output_tail[cut..].to_owned();
        }
        history.exits.push(exit);
        let excess = history.exits.len().saturating_sub(EXITS_KEPT);
        history.exits.drain(..excess);
        write_json(&self.exits_path(key), &history)
    }

    /// The fleet's recorded exits, oldest first (empty when none or unreadable).
    pub fn read_exits(&self, key: &str) -> Vec<ServeExit> {
        self.read_history(key).exits
    }

    fn read_history(&self, key: &str) -> ExitHistory {
        std::fs::read(self.exits_path(key))
            .ok()
            .and_then(|text| serde_json::from_slice(&text).ok())
            .unwrap_or_default()
    }

    /// The recorded end of serve `serve_pid` of this fleet, if its runner wrote it.
    pub fn exit_of(&self, key: &str, serve_pid: i32) -> Option<ServeExit> {
        self.read_exits(key)
            .into_iter()
            .rev()
            .find(|e| e.serve_pid == serve_pid)
    }

    /// The fleet is in a crash loop when more than `max_restarts` unexpected exits fall in the
    /// last `window`; it is held until enough of them age out of it.
    pub fn crash_loop(&self, key: &str, max_restarts: u32, window: Duration) -> Option<CrashLoop> {
        crash_loop_at(&self.read_exits(key), max_restarts, window, now_ms())
    }

    /// The keys of every fleet with recorded exits (`<key>.exits`), sorted.
    pub fn fleets_with_exits(&self) -> Result<Vec<String>, RegistryError> {
        self.keys_with_suffix(".exits")
    }

    /// Forgets the fleet's exits (and so its crash loop). True when there was something to forget.
    pub fn reset_exits(&self, key: &str) -> Result<bool, RegistryError> {
        let path = self.exits_path(key);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("remove", &path)(e)),
        }
    }
}

/// Writes `value` as JSON to `path` atomically (temp file, rename), 0600.
pub(super) fn write_json(
    path: &std::path::Path,
    value: &impl Serialize,
) -> Result<(), RegistryError> {
    let json = serde_json::to_vec(value).expect("plain data serialises");
    crate::private_file::write_atomic(path, &json).map_err(io_err("write", path))
}

/// [`Registry::crash_loop`] at `now` (ms since the epoch).
pub fn crash_loop_at(
    exits: &[ServeExit],
    max_restarts: u32,
    window: Duration,
    now: u64,
) -> Option<CrashLoop> {
    let window_ms = window.as_millis() as u64;
    let since = now.saturating_sub(window_ms);
    let recent: Vec<&ServeExit> = exits
        .iter()
        .filter(|e| e.kind.is_unexpected() && e.at >= since && e.at <= now)
        .collect();
    let count = recent.len() as u32;
    if count <= max_restarts {
        return None;
    }
    // Starts are allowed again once only `max_restarts` of them remain in the window: when the
    // (count - max_restarts)-th oldest leaves it.
    let mut times: Vec<u64> = recent.iter().map(|e| e.at).collect();
    times.sort_unstable();
    let leaves_at = times[(count - max_restarts - 1) as usize] + window_ms;
    Some(CrashLoop {
        restarts: count,
        window,
        retry_after: Duration::from_millis(leaves_at.saturating_sub(now).max(1)),
        output_tail: recent
            .iter()
            .max_by_key(|e| e.at)
            .map(|e| e.output_tail.clone())
            .unwrap_or_default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn exit(kind: ExitKind, at: u64) -> ServeExit {
        ServeExit {
            serve_pid: 1,
            port: 1,
            kind,
            at,
            code: Some(1),
            signal: None,
            output_tail: format!("tail {at}"),
            attempt: None,
            healthy_at: None,
            peak_bytes: None,
        }
    }

    #[test]
    fn a_serve_stopped_for_its_memory_counts_toward_the_crash_loop_and_an_eviction_does_not() {
        let w = Duration::from_secs(60);
        let now = 1_000_000;
        let memory: Vec<ServeExit> = (0..3).map(|i| exit(ExitKind::Memory, now - i)).collect();
        assert_eq!(
            crash_loop_at(&memory, 2, w, now).map(|c| c.restarts),
            Some(3)
        );
        let evicted: Vec<ServeExit> = (0..3).map(|i| exit(ExitKind::Evicted, now - i)).collect();
        assert_eq!(crash_loop_at(&evicted, 2, w, now), None);
    }

    #[test]
    fn crash_loop_counts_unexpected_exits_in_the_window() {
        let w = Duration::from_secs(60);
        let now = 1_000_000;
        let exits: Vec<ServeExit> = (0..3)
            .map(|i| exit(ExitKind::Crashed, now - 10_000 + i))
            .chain([
                exit(ExitKind::Stopped, now - 5),
                exit(ExitKind::Reaped, now - 4),
            ])
            .collect();
        assert_eq!(None, crash_loop_at(&exits, 3, w, now));
        let looped = crash_loop_at(&exits, 2, w, now).unwrap();
        assert_eq!(3, looped.restarts);
        assert_eq!("tail 990002", looped.output_tail);
        // The oldest crash (at now-10000) leaves the window in 50 s; then 2 remain: allowed.
        assert_eq!(Duration::from_millis(50_000), looped.retry_after);
        // Hung counts too; old exits do not.
        let exits = [
            exit(ExitKind::Hung, now - 1),
            exit(ExitKind::Crashed, now - 70_000),
        ];
        assert!(crash_loop_at(&exits, 0, w, now).is_some());
        assert_eq!(None, crash_loop_at(&exits, 1, w, now));
    }

    #[test]
    fn exits_are_kept_bounded_and_found_by_pid() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path());
        assert!(reg.read_exits("k").is_empty());
        for i in 0..40 {
            let mut e = exit(ExitKind::Crashed, 1000 + i);
            e.serve_pid = i as i32;
            e.output_tail = "x".repeat(10_000);
            reg.record_exit("k", &e).unwrap();
        }
        let exits = reg.read_exits("k");
        assert_eq!(EXITS_KEPT, exits.len());
        assert_eq!(39, exits.last().unwrap().serve_pid);
        assert_eq!(EXIT_TAIL_LIMIT, exits[0].output_tail.len());
        assert_eq!(Some(1039), reg.exit_of("k", 39).map(|e| e.at));
        assert_eq!(None, reg.exit_of("k", 1));
        assert!(reg.reset_exits("k").unwrap());
        assert!(!reg.reset_exits("k").unwrap());
    }

    #[test]
    fn health_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let reg = Registry::at(dir.path());
        let health = ServeHealth {
            serve_pid: 7,
            last_probe_at: Some(5),
            last_probe_status: Some(200),
            ..ServeHealth::default()
        };
        reg.write_health("k", &health).unwrap();
        assert_eq!(Some(health), reg.read_health("k"));
        reg.remove_health("k");
        assert_eq!(None, reg.read_health("k"));
    }
}
