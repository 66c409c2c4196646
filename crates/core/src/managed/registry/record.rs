//! Serve records (`<key>.json`): the format upstream writes and reads, and the checks that decide
//! whether one is trusted. A record is trusted only if it parses with the right types, names its
//! own key, points its baseURL at its own host:port, and names live serve and runner pids (with
//! matching start times where recorded).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{io_err, remove_file_if_present, Registry, RegistryError};
use crate::http::parse_http_origin;
use crate::private_file;
use crate::process::{Liveness, ProcessIdentity};

/// One serve as its runner publishes it. Field names are upstream's; the `Option` fields are
/// ours (upstream ignores them, and its records lack them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeRecord {
    pub fleet_key: String,
    /// Empty in records of providers that predate managed auth (keyless: never trusted, but
    /// swept as upstream sweeps them).
    #[serde(default)]
    pub api_key: String,
    pub serve_pid: i32,
    pub runner_pid: i32,
    pub port: u16,
    pub host: String,
    #[serde(rename = "baseURL")]
    pub base_url: String,
    pub config_path: String,
    pub started_at: String,
    #[serde(serialize_with = "serialize_js_number")]
    pub idle_timeout_ms: f64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub serve_start_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runner_start_time: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub boot_id: Option<String>,
    /// The machine the serve and runner run on: a record written by another machine sharing
    /// this registry is never taken for dead, swept or replaced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub machine_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub models: Option<Vec<String>>,
}

/// Serde serializer: a whole number as JS's JSON writes it (`300000`, not `300000.0`).
pub fn serialize_js_number<S: serde::Serializer>(
    value: &f64,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    if is_safe_integer(*value) {
        serializer.serialize_i64(*value as i64)
    } else {
        serializer.serialize_f64(*value)
    }
}

/// A number as a JSON value, written as [`serialize_js_number`] writes it.
pub fn js_number_value(value: f64) -> serde_json::Value {
    if is_safe_integer(value) {
        serde_json::Value::from(value as i64)
    } else {
        serde_json::Number::from_f64(value)
            .map_or(serde_json::Value::Null, serde_json::Value::Number)
    }
}

/// `Number.isSafeInteger` (whole and within ±(2^53 - 1)).
fn is_safe_integer(value: f64) -> bool {
    value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0
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

    /// The recorded runner provably is this record's runner: its pid and start time match, or
    /// (records without start times, as upstream writes them) its command line names this fleet's
    /// key (both runners are started with `<key>.<pid>.<hex>.runner-params.json`). Only then may
    /// it be signalled on the record's behalf.
    pub fn runner_is_proven(&self) -> bool {
        let identity = self.runner_identity();
        if identity.liveness() != Liveness::Alive {
            return false;
        }
        if self.runner_start_time.is_some() {
            return true;
        }
        crate::platform::process_cmdline(self.runner_pid)
            .is_some_and(|cmdline| cmdline.contains(&self.fleet_key))
    }

    /// The record a file holds, whatever its trust (`None` if it is missing or does not parse):
    /// for comparing what is on disk with a record already judged.
    pub fn read_file(path: &Path) -> Option<ServeRecord> {
        serde_json::from_str(&fs::read_to_string(path).ok()?).ok()
    }

    /// The machine it was written on, when that is not this one.
    pub fn other_machine(&self) -> Option<&str> {
        let here = crate::platform::machine_id();
        self.machine_id
            .as_deref()
            .filter(|recorded| here.as_deref().is_some_and(|h| h != *recorded))
    }

    /// The serve pid's command line names this record's config file and port: it is the serve
    /// a runner started from this record (ours or upstream's pass both on argv), even when it
    /// no longer answers. The only proof that lets a silent orphan be stopped.
    pub fn serve_cmdline_proven(&self) -> bool {
        if self.config_path.is_empty() || self.serve_pid <= 1 {
            return false;
        }
        let port = format!("--port {}", self.port);
        crate::platform::process_cmdline(self.serve_pid).is_some_and(|cmdline| {
            cmdline.contains(&self.config_path)
                && cmdline.match_indices(&port).any(|(at, _)| {
                    !cmdline[at + port.len()..].starts_with(|c: char| c.is_ascii_digit())
                })
        })
    }

    fn identity(&self, pid: i32, start_time: Option<u64>) -> ProcessIdentity {
        ProcessIdentity {
            pid,
            start_time,
            boot_id: self.boot_id.clone(),
            machine: self.machine_id.clone(),
        }
    }

    /// Checks that do not depend on processes: the record names `key` and a loopback-or-host
    /// URL that matches its own host and port (so a tampered record cannot redirect probes).
    fn check_shape(&self, key: &str) -> Result<(), String> {
        self.check_shape_keyless(key)?;
        if self.api_key.is_empty() {
            return Err("has no apiKey".into());
        }
        Ok(())
    }

    /// [`check_shape`](Self::check_shape) without requiring an API key: what a sweep needs to
    /// probe a record safely (its URL cannot point anywhere but its own host and port).
    pub(crate) fn check_shape_keyless(&self, key: &str) -> Result<(), String> {
        if self.fleet_key != key {
            return Err(format!(
                "names fleet {} but is stored as {key}",
                self.fleet_key
            ));
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
    /// The runner's watchdog view (ours; none for upstream's serves or before the first probe).
    pub health: Option<super::ServeHealth>,
    /// The runner's last memory sample of this serve's tree (ours; none for upstream's serves).
    pub memory: Option<super::ServeMemory>,
    /// Never evicted under a memory budget (`<key>.pin`).
    pub pinned: bool,
}

impl Registry {
    /// Writes the record atomically (temp file, fsync, rename), mode 0600.
    pub fn write_record(&self, record: &ServeRecord) -> Result<(), RegistryError> {
        self.ensure_dir()?;
        self.rewrite_record(record)
    }

    /// [`write_record`](Self::write_record) into a directory that must already exist: a runner
    /// restoring its record never re-creates a registry that was removed.
    pub fn rewrite_record(&self, record: &ServeRecord) -> Result<(), RegistryError> {
        let path = self.record_path(&record.fleet_key);
        let mut text = serde_json::to_string_pretty(record).expect("records serialise");
        text.push('\n');
        private_file::write_atomic(&path, text.as_bytes()).map_err(io_err("write", &path))
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

    /// Removes `<key>.json` only while it holds exactly `record` (what its runner published):
    /// a record another runner put there since is never removed by name.
    pub fn remove_own_record(&self, record: &ServeRecord) -> Result<(), RegistryError> {
        let path = self.record_path(&record.fleet_key);
        if ServeRecord::read_file(&path).as_ref() != Some(record) {
            return Ok(());
        }
        remove_file_if_present(&path)
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
            let health = self
                .read_health(&key)
                .filter(|h| h.serve_pid == record.serve_pid);
            let memory = self
                .read_memory(&key)
                .filter(|m| m.serve_pid == Some(record.serve_pid) && m.sampled_at.is_some());
            serves.push(ServeInfo {
                consumers: self.live_consumers(&key, false)?.len(),
                memory,
                pinned: self.is_pinned(&key),
                fleet_key: key,
                models,
                base_url: record.base_url.clone(),
                host: record.host.clone(),
                port: record.port,
                serve_pid: record.serve_pid,
                runner_pid: record.runner_pid,
                started_at: record.started_at.clone(),
                idle_timeout_ms: record.idle_timeout_ms,
                health,
            });
        }
        Ok(serves)
    }
}

pub(crate) fn judge_record(key: &str, text: &str) -> RecordState {
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
pub(crate) fn owned_temp_config_dir(config_path: &str) -> Option<PathBuf> {
    let dir = Path::new(config_path).parent()?;
    let name = dir.file_name()?.to_str()?;
    let tmp = std::env::temp_dir();
    let in_tmp = dir.parent() == Some(tmp.as_path()) || dir.parent() == Some(Path::new("/tmp"));
    (in_tmp && name.starts_with("qvac-managed-") && !name.contains("..")).then(|| dir.to_owned())
}
