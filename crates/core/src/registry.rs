//! The on-disk registry of managed serves, laid out exactly as `@qvac/ai-sdk-provider@0.7.0`
//! lays it out, so both implementations see (and share) each other's serves:
//!
//! ```text
//! ~/.qvac/managed-serves/            0700, ours (owner and mode are checked, never loosened)
//!   <key>.json                       the serve record, 0600, written tmp + fsync + rename
//!   <key>.lock                       spawn lock: created exclusively, holder pid on line 1
//!   <key>.consumers/<pid>.<8 hex>    one marker per live provider
//!   <key>.error                      last start failure: "CODE: message" + serve output tail
//! ```
//!
//! A record is trusted only if it parses with the right types, names its own key, its baseURL
//! points at its host:port, and its serve and runner pids are alive (and, where the record has
//! them, have the recorded start times). Anything else is ignored, and deleted only by
//! [`Registry::sweep`] once every process it names is provably dead.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, MetadataExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

use crate::http::parse_http_origin;
use crate::pid_lock::{PidLock, PidLockError};
use crate::process::{Liveness, ProcessIdentity};
use crate::retry::{CancelToken, RetryPolicy};

/// Upstream's window after which a runner-params handoff file is surely abandoned
/// (twice the default start timeout).
const RUNNER_PARAMS_STALE: Duration = Duration::from_secs(360);

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry directory {} is unsafe: {reason}. Fix it with: {fix}", dir.display())]
    Unsafe {
        dir: PathBuf,
        reason: String,
        fix: String,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot find the home directory: set $HOME")]
    NoHome,
    #[error(transparent)]
    Lock(#[from] PidLockError),
}

impl RegistryError {
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Unsafe { .. } => "REGISTRY_UNSAFE",
            RegistryError::Io { .. } | RegistryError::NoHome => "REGISTRY_IO",
            RegistryError::Lock(e) => e.code(),
        }
    }
}

fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// One serve as its runner publishes it. Field names are upstream's; the `Option` fields are
/// ours (upstream ignores them, and its records lack them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeRecord {
    pub fleet_key: String,
    pub api_key: String,
    pub serve_pid: i32,
    pub runner_pid: i32,
    pub port: u16,
    pub host: String,
    #[serde(rename = "baseURL")]
    pub base_url: String,
    pub config_path: String,
    pub started_at: String,
    #[serde(serialize_with = "js_number")]
    pub idle_timeout_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_start_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_start_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// Writes a whole number as JSON does in JS (`300000`, not `300000.0`).
pub fn js_number<S: serde::Serializer>(value: &f64, serializer: S) -> Result<S::Ok, S::Error> {
    if value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0 {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

impl ServeRecord {
    pub fn serve_identity(&self) -> ProcessIdentity {
        self.identity(self.serve_pid, self.serve_start_time)
    }

    pub fn runner_identity(&self) -> ProcessIdentity {
        self.identity(self.runner_pid, self.runner_start_time)
    }

    /// Both its serve and its runner are provably gone (or were never valid pids): nothing
    /// the record names can still be running.
    pub fn is_gone(&self) -> bool {
        let gone = |l: Liveness| l.is_provably_dead() || l == Liveness::Invalid;
        gone(self.serve_identity().liveness()) && gone(self.runner_identity().liveness())
    }

    fn identity(&self, pid: i32, start_time: Option<u64>) -> ProcessIdentity {
        ProcessIdentity {
            pid,
            start_time,
            boot_id: self.boot_id.clone(),
        }
    }

    /// Checks that do not depend on processes: the record names `key` and a loopback-or-host
    /// URL that matches its own host and port (so a tampered record cannot redirect probes).
    fn check_shape(&self, key: &str) -> Result<(), String> {
        if self.fleet_key != key {
            return Err(format!(
                "names fleet {} but is stored as {key}",
                self.fleet_key
            ));
        }
        if self.api_key.is_empty() {
            return Err("has no apiKey".into());
        }
        if self.serve_pid <= 1 || self.runner_pid <= 1 {
            return Err("names pid 0 or 1".into());
        }
        match parse_http_origin(&self.base_url) {
            Some((host, port))
                if unbracket(&host) == unbracket(&self.host) && port == self.port =>
            {
                Ok(())
            }
            _ => Err(format!(
                "baseURL {} does not point at {}:{}",
                self.base_url, self.host, self.port
            )),
        }
    }
}

fn unbracket(host: &str) -> String {
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .to_ascii_lowercase()
}

/// What reading `<key>.json` found.
#[derive(Debug, PartialEq)]
pub enum RecordState {
    Missing,
    /// Unparseable, or fields of the wrong type.
    Corrupt(String),
    /// Parses, but a check failed; says which.
    Untrusted(Box<ServeRecord>, String),
    Trusted(Box<ServeRecord>),
}

/// The last start failure of a fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct StartFailure {
    pub code: String,
    pub message: String,
    pub output_tail: String,
}

impl StartFailure {
    const OUTPUT_MARK: &'static str = "\n--- serve output ---\n";

    /// Readable as plain text by upstream consumers, which show it whole.
    fn to_text(&self) -> String {
        let mut text = format!("{}: {}", self.code, self.message);
        if !self.output_tail.is_empty() {
            text.push_str(Self::OUTPUT_MARK);
            text.push_str(&self.output_tail);
        }
        text
    }

    /// The serve's exit code and signal name, for SERVE_EXITED failures (read back from the
    /// message the runner wrote: `... (code=3, signal=null).`).
    pub fn exit_status(&self) -> Option<(Option<i32>, Option<String>)> {
        let rest = &self.message[self.message.find("(code=")? + "(code=".len()..];
        let (code, rest) = rest.split_once(", signal=")?;
        let signal = rest.split(')').next()?;
        Some((
            code.parse().ok(),
            (signal != "null").then(|| signal.to_owned()),
        ))
    }

    /// Parses our format; upstream's plain message becomes SERVE_SPAWN_FAILED.
    fn from_text(text: &str) -> StartFailure {
        let (head, tail) = text.split_once(Self::OUTPUT_MARK).unwrap_or((text, ""));
        let coded = head.split_once(": ").filter(|(code, _)| {
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        let (code, message) = coded.unwrap_or(("SERVE_SPAWN_FAILED", head));
        StartFailure {
            code: code.to_owned(),
            message: message.trim().to_owned(),
            output_tail: tail.to_owned(),
        }
    }
}

/// A live provider's claim on a serve; removing it lets the runner's idle clock start.
#[derive(Debug)]
pub struct ConsumerMarker {
    path: PathBuf,
    removed: bool,
}

impl ConsumerMarker {
    /// `<pid>.<8 hex>`: the pid first, as upstream parses it.
    pub fn id(&self) -> &str {
        self.path.file_name().and_then(|n| n.to_str()).unwrap_or("")
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Removes the marker. Idempotent, never fails (a missing marker is the goal).
    pub fn remove(&mut self) {
        if !self.removed {
            self.removed = true;
            let _ = fs::remove_file(&self.path);
        }
    }
}

impl Drop for ConsumerMarker {
    fn drop(&mut self) {
        self.remove();
    }
}

/// One live serve, as `ps` and `listServes()` show it.
#[derive(Clone, Debug, PartialEq)]
pub struct ServeInfo {
    pub fleet_key: String,
    pub models: Vec<String>,
    pub base_url: String,
    pub host: String,
    pub port: u16,
    pub serve_pid: i32,
    pub runner_pid: i32,
    pub consumers: usize,
    pub started_at: String,
    pub idle_timeout_ms: f64,
}

/// What [`Registry::sweep`] did and saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepReport {
    /// Files and directories removed.
    pub removed: Vec<PathBuf>,
    /// Records kept because a process they name may be alive but the record is not trusted.
    pub kept_untrusted: Vec<PathBuf>,
    /// Records that do not parse; never removed (nothing proves their processes dead).
    pub corrupt: Vec<PathBuf>,
}

/// The registry directory. Every path it hands out is inside it.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// `$HOME/.qvac/managed-serves`, as upstream (Node's `os.homedir()`, which honours $HOME).
    pub fn default_location() -> Result<Registry, RegistryError> {
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                nix::unistd::User::from_uid(nix::unistd::geteuid())
                    .ok()
                    .flatten()
                    .map(|u| u.dir)
            })
            .ok_or(RegistryError::NoHome)?;
        Ok(Registry::at(home.join(".qvac").join("managed-serves")))
    }

    pub fn at(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.lock"))
    }

    pub fn consumers_dir(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.consumers"))
    }

    pub fn error_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.error"))
    }

    /// Creates the directory (0700) if missing; refuses one that another user owns, that is a
    /// symlink or not a directory, or that group/others can access.
    pub fn ensure_dir(&self) -> Result<(), RegistryError> {
        if let Some(parent) = self.dir.parent() {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(io_err("create", parent))?;
        }
        match fs::DirBuilder::new().mode(0o700).create(&self.dir) {
            Ok(()) => {
                // The umask may have narrowed more, never widened; set exactly 0700.
                fs::set_permissions(&self.dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("set permissions of", &self.dir))?;
                return Ok(());
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", &self.dir)(e)),
        }
        self.check_dir()
    }

    /// The safety checks of [`ensure_dir`](Self::ensure_dir) on an existing directory.
    pub fn check_dir(&self) -> Result<(), RegistryError> {
        let meta = fs::symlink_metadata(&self.dir).map_err(io_err("inspect", &self.dir))?;
        let dir = self.dir.display();
        let unsafe_dir = |reason: String, fix: String| RegistryError::Unsafe {
            dir: self.dir.clone(),
            reason,
            fix,
        };
        if meta.file_type().is_symlink() || !meta.is_dir() {
            return Err(unsafe_dir(
                "it is not a plain directory (a symlink or a file)".into(),
                format!("mv '{dir}' '{dir}.bak' (a new directory is created on next use)"),
            ));
        }
        let me = nix::unistd::geteuid().as_raw();
        if meta.uid() != me {
            return Err(unsafe_dir(
                format!(
                    "it is owned by uid {}, not by this user (uid {me})",
                    meta.uid()
                ),
                format!("chown {me} '{dir}' (or remove it)"),
            ));
        }
        let mode = meta.mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(unsafe_dir(
                format!("its mode is {mode:04o}, so other users can reach the serves' API keys"),
                format!("chmod 700 '{dir}'"),
            ));
        }
        Ok(())
    }

    /// Writes the record atomically (temp file, fsync, rename), mode 0600.
    pub fn write_record(&self, record: &ServeRecord) -> Result<(), RegistryError> {
        self.ensure_dir()?;
        let path = self.record_path(&record.fleet_key);
        let mut text = serde_json::to_string_pretty(record).expect("records serialise");
        text.push('\n');
        write_atomic(&path, text.as_bytes())
    }

    /// Reads and checks `<key>.json`; never deletes anything.
    pub fn read_record(&self, key: &str) -> Result<RecordState, RegistryError> {
        let path = self.record_path(key);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(RecordState::Missing),
            Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                return Ok(RecordState::Corrupt("not UTF-8 text".into()))
            }
            Err(e) => return Err(io_err("read", &path)(e)),
        };
        Ok(judge_record(key, &text))
    }

    /// Removes the private files (temp config dir, key file) a record names, if its serve and
    /// runner are both provably dead — before a new record replaces it and the path is lost.
    /// Returns the directory removed.
    pub fn clear_dead_serve_files(&self, record: &ServeRecord) -> Option<PathBuf> {
        if !record.is_gone() {
            return None;
        }
        let dir = owned_temp_config_dir(&record.config_path)?;
        fs::remove_dir_all(&dir).ok().map(|()| dir)
    }

    /// Removes the record file (the runner's cleanup). Missing is fine.
    pub fn remove_record(&self, key: &str) -> Result<(), RegistryError> {
        remove_file_if_present(&self.record_path(key))
    }

    /// One attempt at the spawn lock (0600, interoperable with upstream's).
    pub fn try_spawn_lock(&self, key: &str) -> Result<PidLock, RegistryError> {
        self.ensure_dir()?;
        Ok(PidLock::try_acquire_with_mode(&self.lock_path(key), 0o600)?)
    }

    /// Waits for the spawn lock under `policy`. Does not create the directory: a runner whose
    /// registry was removed gets an error rather than a re-created directory.
    pub async fn spawn_lock(
        &self,
        key: &str,
        policy: &RetryPolicy,
        cancel: &CancelToken,
    ) -> Result<PidLock, RegistryError> {
        Ok(PidLock::acquire_with_mode(&self.lock_path(key), 0o600, policy, cancel).await?)
    }

    /// Adds a marker for this process: `<key>.consumers/<pid>.<8 hex>`, holding our identity so
    /// a reused pid does not keep a serve alive.
    pub fn add_consumer(&self, key: &str) -> Result<ConsumerMarker, RegistryError> {
        self.ensure_dir()?;
        let dir = self.consumers_dir(key);
        let me = ProcessIdentity::current();
        let path = dir.join(format!("{}.{:08x}", me.pid, fastrand::u32(..)));
        // A failed start removes an empty consumers dir; if that races with us, make it again.
        let mut attempts = 0;
        let mut file = loop {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("set permissions of", &dir))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create", &dir)(e)),
            }
            match OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
            {
                Ok(file) => break file,
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(io_err("create consumer marker", &path)(e)),
            }
        };
        file.write_all(me.to_record().as_bytes())
            .map_err(io_err("write consumer marker", &path))?;
        Ok(ConsumerMarker {
            path,
            removed: false,
        })
    }

    /// Pids of live consumers. With `prune`, markers of provably dead processes (and names that
    /// carry no pid) are removed, as upstream's runner does.
    pub fn live_consumers(&self, key: &str, prune: bool) -> Result<Vec<i32>, RegistryError> {
        let dir = self.consumers_dir(key);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut live = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let alive = match leading_pid(&name) {
                Some(pid) if pid > 0 => {
                    let content = fs::read_to_string(entry.path()).unwrap_or_default();
                    let identity = ProcessIdentity::parse_record(&content)
                        .filter(|id| id.pid == pid)
                        .unwrap_or_else(|| ProcessIdentity::pid_only(pid));
                    (identity.liveness() == Liveness::Alive).then_some(pid)
                }
                _ => None,
            };
            match alive {
                Some(pid) => live.push(pid),
                None if prune => {
                    let _ = fs::remove_file(entry.path());
                }
                None => {}
            }
        }
        Ok(live)
    }

    /// Records the last start failure (0600, atomic).
    pub fn write_error(&self, key: &str, failure: &StartFailure) -> Result<(), RegistryError> {
        self.ensure_dir()?;
        write_atomic(&self.error_path(key), failure.to_text().as_bytes())
    }

    pub fn read_error(&self, key: &str) -> Result<Option<StartFailure>, RegistryError> {
        let path = self.error_path(key);
        match fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => Ok(Some(StartFailure::from_text(&text))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    pub fn clear_error(&self, key: &str) -> Result<(), RegistryError> {
        remove_file_if_present(&self.error_path(key))
    }

    /// Fleet keys that have a record file, trusted or not.
    fn record_keys(&self) -> Result<Vec<String>, RegistryError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("list", &self.dir)(e)),
        };
        let mut keys: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                let key = name.strip_suffix(".json")?;
                (!key.contains('.')).then(|| key.to_owned())
            })
            .collect();
        keys.sort();
        Ok(keys)
    }

    /// One entry per live serve (trusted record), including records upstream wrote.
    pub fn list_serves(&self) -> Result<Vec<ServeInfo>, RegistryError> {
        let mut serves = Vec::new();
        for key in self.record_keys()? {
            let RecordState::Trusted(record) = self.read_record(&key)? else {
                continue;
            };
            let models = record
                .models
                .clone()
                .unwrap_or_else(|| models_from_config(Path::new(&record.config_path)));
            serves.push(ServeInfo {
                consumers: self.live_consumers(&key, false)?.len(),
                fleet_key: key,
                models,
                base_url: record.base_url.clone(),
                host: record.host.clone(),
                port: record.port,
                serve_pid: record.serve_pid,
                runner_pid: record.runner_pid,
                started_at: record.started_at.clone(),
                idle_timeout_ms: record.idle_timeout_ms,
            });
        }
        Ok(serves)
    }

    /// Removes what belongs to provably dead serves and consumers, and nothing else: records
    /// whose serve and runner are both provably dead (with their temp config dir), dead
    /// consumers' markers, empty consumer dirs of fleets with no record, spawn locks of dead
    /// holders, temp files of dead writers, and abandoned runner-params files.
    pub fn sweep(&self) -> Result<SweepReport, RegistryError> {
        self.sweep_with(false)
    }

    /// What [`sweep`](Self::sweep) would remove, removing nothing.
    pub fn sweep_dry_run(&self) -> Result<SweepReport, RegistryError> {
        self.sweep_with(true)
    }

    fn sweep_with(&self, dry_run: bool) -> Result<SweepReport, RegistryError> {
        let remove_file = |path: &Path| -> Result<(), RegistryError> {
            if dry_run {
                Ok(())
            } else {
                remove_file_if_present(path)
            }
        };
        let mut report = SweepReport::default();
        if !self.dir.exists() {
            return Ok(report);
        }
        self.check_dir()?;
        for key in self.record_keys()? {
            let path = self.record_path(&key);
            let text = match fs::read_to_string(&path) {
                Ok(text) => text,
                Err(_) => continue,
            };
            match judge_record(&key, &text) {
                RecordState::Missing | RecordState::Trusted(_) => {}
                RecordState::Corrupt(_) => report.corrupt.push(path),
                RecordState::Untrusted(record, _) => {
                    if record.is_gone() && record.fleet_key == key {
                        remove_file(&path)?;
                        report.removed.push(path);
                        if let Some(config_dir) = owned_temp_config_dir(&record.config_path) {
                            if config_dir.exists()
                                && (dry_run || fs::remove_dir_all(&config_dir).is_ok())
                            {
                                report.removed.push(config_dir);
                            }
                        }
                    } else {
                        report.kept_untrusted.push(path);
                    }
                }
            }
        }
        let entries: Vec<_> = fs::read_dir(&self.dir)
            .map_err(io_err("list", &self.dir))?
            .flatten()
            .collect();
        for entry in entries {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(key) = name.strip_suffix(".consumers") {
                let before: Vec<PathBuf> = list_dir(&path);
                let live = self.live_consumers(key, !dry_run)?;
                let dead: Vec<PathBuf> = before
                    .into_iter()
                    .filter(|p| {
                        if dry_run {
                            !live.contains(&marker_pid(p))
                        } else {
                            !p.exists()
                        }
                    })
                    .collect();
                report.removed.extend(dead);
                if !self.record_path(key).exists()
                    && live.is_empty()
                    && (dry_run || fs::remove_dir(&path).is_ok())
                {
                    report.removed.push(path);
                }
            } else if name.ends_with(".lock") {
                let stale = if dry_run {
                    PidLock::inspect(&path)?.is_some_and(|h| h.is_stale())
                } else {
                    PidLock::clear_stale(&path)?
                };
                if stale {
                    report.removed.push(path);
                }
            } else if name.ends_with(".tmp") {
                if temp_writer_is_dead(&name) && (dry_run || fs::remove_file(&path).is_ok()) {
                    report.removed.push(path);
                }
            } else if name.ends_with(".runner-params.json")
                && older_than(&path, RUNNER_PARAMS_STALE)
                && (dry_run || fs::remove_file(&path).is_ok())
            {
                report.removed.push(path);
            }
        }
        Ok(report)
    }
}

fn judge_record(key: &str, text: &str) -> RecordState {
    let record: ServeRecord = match serde_json::from_str(text) {
        Ok(record) => record,
        Err(e) => return RecordState::Corrupt(e.to_string()),
    };
    if let Err(reason) = record.check_shape(key) {
        return RecordState::Untrusted(Box::new(record), reason);
    }
    for (what, identity) in [
        ("serve", record.serve_identity()),
        ("runner", record.runner_identity()),
    ] {
        let liveness = identity.liveness();
        if liveness != Liveness::Alive {
            let reason = format!("its {what} (pid {}) is {liveness:?}", identity.pid);
            return RecordState::Untrusted(Box::new(record), reason);
        }
    }
    RecordState::Trusted(Box::new(record))
}

fn marker_pid(path: &Path) -> i32 {
    path.file_name()
        .and_then(|n| n.to_str())
        .and_then(leading_pid)
        .unwrap_or(0)
}

/// `parseInt`-style leading pid of a marker name (`"123.ab12cd34"` -> 123).
fn leading_pid(name: &str) -> Option<i32> {
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

/// The aliases of a serve config file, for records that do not carry `models`.
fn models_from_config(path: &Path) -> Vec<String> {
    let Ok(text) = fs::read_to_string(path) else {
        return vec![];
    };
    let Ok(value) = serde_json::from_str::<serde_json::Value>(&text) else {
        return vec![];
    };
    value["serve"]["models"]
        .as_object()
        .map(|m| m.keys().cloned().collect())
        .unwrap_or_default()
}

/// The temp directory a record's config lives in, only if it is one a runner created
/// (`<tmp>/qvac-managed-*`): a tampered `configPath` never makes us remove anything else.
fn owned_temp_config_dir(config_path: &str) -> Option<PathBuf> {
    let dir = Path::new(config_path).parent()?;
    let name = dir.file_name()?.to_str()?;
    let tmp = std::env::temp_dir();
    let in_tmp = dir.parent() == Some(tmp.as_path()) || dir.parent() == Some(Path::new("/tmp"));
    (in_tmp && name.starts_with("qvac-managed-") && !name.contains("..")).then(|| dir.to_owned())
}

/// Temp files are `<final>.<writer pid>.<stamp>.tmp`; removable once that writer is dead.
fn temp_writer_is_dead(name: &str) -> bool {
    let parts: Vec<&str> = name.rsplitn(4, '.').collect();
    // parts: ["tmp", stamp, pid, rest]
    parts.len() == 4
        && parts[2].parse::<i32>().is_ok_and(|pid| {
            pid > 1 && ProcessIdentity::pid_only(pid).liveness().is_provably_dead()
        })
}

fn older_than(path: &Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|mtime| SystemTime::now().duration_since(mtime).ok())
        .is_some_and(|elapsed| elapsed > age)
}

fn list_dir(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.path()).collect())
        .unwrap_or_default()
}

fn remove_file_if_present(path: &Path) -> Result<(), RegistryError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

/// Temp file (0600) beside `path`, fsync, rename over `path`, fsync the directory.
fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RegistryError> {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(
        ".{}.{:08x}.tmp",
        std::process::id(),
        fastrand::u32(..)
    ));
    let temp = PathBuf::from(name);
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&temp, path)?;
        if let Some(dir) = path.parent() {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    })();
    result.map_err(|source| {
        let _ = fs::remove_file(&temp);
        RegistryError::Io {
            action: "write",
            path: path.to_owned(),
            source,
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn registry() -> (tempfile::TempDir, Registry) {
        let home = tempfile::tempdir().unwrap();
        let reg = Registry::at(home.path().join(".qvac/managed-serves"));
        (home, reg)
    }

    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    fn record(key: &str, serve_pid: i32, runner_pid: i32) -> ServeRecord {
        ServeRecord {
            fleet_key: key.into(),
            api_key: "k".repeat(43),
            serve_pid,
            runner_pid,
            port: 41000,
            host: "127.0.0.1".into(),
            base_url: "http://127.0.0.1:41000/v1".into(),
            config_path: "/nonexistent/qvac.config.json".into(),
            started_at: "2026-11-24T00:00:00.000Z".into(),
            idle_timeout_ms: 300000.0,
            serve_start_time: None,
            runner_start_time: None,
            boot_id: None,
            models: Some(vec!["qwen3.5-9b".into()]),
        }
    }

    #[test]
    fn dir_is_created_0700_and_unsafe_dirs_are_refused() {
        let (_home, reg) = registry();
        reg.ensure_dir().unwrap();
        assert_eq!(0o700, fs::metadata(reg.dir()).unwrap().mode() & 0o777);
        fs::set_permissions(reg.dir(), fs::Permissions::from_mode(0o755)).unwrap();
        let err = reg.ensure_dir().unwrap_err();
        assert_eq!("REGISTRY_UNSAFE", err.code());
        assert!(err.to_string().contains("chmod 700"), "{err}");
        assert_eq!(
            0o755,
            fs::metadata(reg.dir()).unwrap().mode() & 0o777,
            "never loosened or fixed silently"
        );
    }

    #[test]
    fn records_round_trip_and_are_trusted_only_when_sound() {
        let (_home, reg) = registry();
        let me = std::process::id() as i32;
        let rec = record("aaaaaaaaaaaaaaaa", me, me);
        reg.write_record(&rec).unwrap();
        let path = reg.record_path("aaaaaaaaaaaaaaaa");
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("\"idleTimeoutMs\": 300000,"));
        assert_eq!(0o600, fs::metadata(&path).unwrap().mode() & 0o777);
        assert_eq!(
            RecordState::Trusted(Box::new(rec.clone())),
            reg.read_record("aaaaaaaaaaaaaaaa").unwrap()
        );

        let untrusted = |r: ServeRecord| {
            reg.write_record(&r).unwrap();
            matches!(
                reg.read_record(&r.fleet_key).unwrap(),
                RecordState::Untrusted(..)
            )
        };
        assert!(untrusted(ServeRecord {
            base_url: "http://10.0.0.1:41000/v1".into(),
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            serve_pid: dead_pid(),
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            runner_pid: 1,
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            api_key: String::new(),
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            serve_start_time: Some(1),
            ..rec.clone()
        }));

        fs::write(
            &path,
            "{\"fleetKey\": \"aaaaaaaaaaaaaaaa\", \"servePid\": \"12\"",
        )
        .unwrap();
        assert!(matches!(
            reg.read_record("aaaaaaaaaaaaaaaa").unwrap(),
            RecordState::Corrupt(_)
        ));
        // Stored under another key: tampered.
        fs::write(
            reg.record_path("bbbbbbbbbbbbbbbb"),
            serde_json::to_string(&rec).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            reg.read_record("bbbbbbbbbbbbbbbb").unwrap(),
            RecordState::Untrusted(..)
        ));
    }

    #[test]
    fn consumers_are_listed_live_and_dead_ones_pruned() {
        let (_home, reg) = registry();
        let key = "cccccccccccccccc";
        let mut mine = reg.add_consumer(key).unwrap();
        assert!(mine.id().starts_with(&format!("{}.", std::process::id())));
        let dir = reg.consumers_dir(key);
        assert_eq!(0o700, fs::metadata(&dir).unwrap().mode() & 0o777);
        fs::write(dir.join(format!("{}.deadbeef", dead_pid())), "").unwrap();
        fs::write(dir.join("garbage"), "").unwrap();
        assert_eq!(
            vec![std::process::id() as i32],
            reg.live_consumers(key, false).unwrap()
        );
        assert_eq!(3, fs::read_dir(&dir).unwrap().count());
        reg.live_consumers(key, true).unwrap();
        assert_eq!(1, fs::read_dir(&dir).unwrap().count());
        mine.remove();
        mine.remove();
        assert!(reg.live_consumers(key, false).unwrap().is_empty());
    }

    #[test]
    fn error_files_round_trip_and_read_upstream_text() {
        let (_home, reg) = registry();
        let failure = StartFailure {
            code: "SERVE_EXITED".into(),
            message: "qvac serve exited before becoming healthy (code=1, signal=null).".into(),
            output_tail: "boom\nline 2".into(),
        };
        reg.write_error("k", &failure).unwrap();
        assert_eq!(Some(failure.clone()), reg.read_error("k").unwrap());
        assert_eq!(Some((Some(1), None)), failure.exit_status());
        fs::write(
            reg.error_path("u"),
            "qvac serve did not become healthy: x\n",
        )
        .unwrap();
        let upstream = reg.read_error("u").unwrap().unwrap();
        assert_eq!("SERVE_SPAWN_FAILED", upstream.code);
        assert_eq!("qvac serve did not become healthy: x", upstream.message);
        reg.clear_error("k").unwrap();
        assert_eq!(None, reg.read_error("k").unwrap());
    }

    #[test]
    fn sweep_removes_only_what_is_provably_dead() {
        let (_home, reg) = registry();
        let me = std::process::id() as i32;
        let live = record("1111111111111111", me, me);
        reg.write_record(&live).unwrap();
        let _marker = reg.add_consumer(&live.fleet_key).unwrap();
        let dead = record("2222222222222222", dead_pid(), dead_pid());
        reg.write_record(&dead).unwrap();
        let half = record("3333333333333333", dead_pid(), me); // runner alive: it cleans up
        reg.write_record(&half).unwrap();
        fs::write(reg.record_path("4444444444444444"), "not json").unwrap();
        fs::write(
            reg.lock_path("5555555555555555"),
            format!("{}\n", dead_pid()),
        )
        .unwrap();
        fs::write(reg.lock_path("6666666666666666"), format!("{me}\n")).unwrap();
        let stale_tmp = reg
            .dir()
            .join(format!("7777777777777777.json.{}.123.tmp", dead_pid()));
        fs::write(&stale_tmp, "{}").unwrap();
        fs::create_dir(reg.consumers_dir("8888888888888888")).unwrap();
        fs::write(
            reg.consumers_dir("8888888888888888")
                .join(format!("{}.00000000", dead_pid())),
            "",
        )
        .unwrap();

        let planned = reg.sweep_dry_run().unwrap();
        assert!(
            reg.record_path(&dead.fleet_key).exists(),
            "a dry run removes nothing"
        );
        assert!(reg.lock_path("5555555555555555").exists());
        let report = reg.sweep().unwrap();
        let sorted = |mut v: Vec<PathBuf>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(planned.removed.clone()),
            sorted(report.removed.clone()),
            "the dry run lists exactly what is removed"
        );
        assert!(reg.record_path(&live.fleet_key).exists());
        assert_eq!(1, reg.live_consumers(&live.fleet_key, false).unwrap().len());
        assert!(!reg.record_path(&dead.fleet_key).exists());
        assert!(reg.record_path(&half.fleet_key).exists());
        assert!(
            reg.record_path("4444444444444444").exists(),
            "corrupt records are reported, not removed"
        );
        assert_eq!(vec![reg.record_path("4444444444444444")], report.corrupt);
        assert!(!reg.lock_path("5555555555555555").exists());
        assert!(reg.lock_path("6666666666666666").exists());
        assert!(!stale_tmp.exists());
        assert!(!reg.consumers_dir("8888888888888888").exists());
        assert!(report.removed.contains(&reg.record_path(&dead.fleet_key)));
    }

    #[test]
    fn temp_config_dirs_outside_tmp_are_never_ours() {
        assert!(owned_temp_config_dir("/tmp/qvac-managed-abc/qvac.config.json").is_some());
        assert!(owned_temp_config_dir("/home/me/qvac-managed-abc/qvac.config.json").is_none());
        assert!(owned_temp_config_dir("/tmp/other/qvac.config.json").is_none());
        assert!(owned_temp_config_dir("/qvac.config.json").is_none());
    }
}
