//! What a fleet's serve costs in memory, and what a memory budget needs beside the record (files
//! of ours; upstream 0.7.0 neither reads nor sweeps them):
//!
//! - `<key>.mem`: the serve's whole process tree, resident bytes now and at peak, rewritten by
//!   its runner every [`MEMORY_SAMPLE_INTERVAL`] with the connections it saw and since when the
//!   fleet has been idle (no consumer, no connection). Before the runner exists, the consumer
//!   starting the fleet under a budget writes the room it reserved (`reservedBytes`); the runner
//!   keeps that figure. Removed when the runner ends.
//! - `<key>.pin`: the fleet is never evicted to make room (`pin: true`, `qvac-managed pin`);
//!   kept until `qvac-managed unpin`.
//! - `<key>.evict`: a consumer under a budget asks the fleet's runner to reap its idle serve now;
//!   the runner does so exactly as at its idle deadline (consumers and connections checked again
//!   under the spawn lock), or removes the file to call the eviction off.
//! - `memory-budget.lock`: one budget decision at a time per registry (an flock, released by the
//!   kernel when its holder dies).

use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::serve_state::write_json;
use super::{remove_file_if_present, Registry, RegistryError};

/// How often a runner samples its serve's memory.
pub const MEMORY_SAMPLE_INTERVAL: Duration = Duration::from_secs(2);
/// How long a serve's tree may stay above `serveMaxMemory` before its runner stops it.
pub const MEMORY_CEILING_GRACE: Duration = Duration::from_secs(10);

/// A fleet's memory, as `<key>.mem` holds it.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ServeMemory {
    /// The serve sampled; `None` while only a reservation is written.
    #[serde(default)]
    pub serve_pid: Option<i32>,
    /// Resident bytes of the serve and all its descendants at the last sample.
    #[serde(default)]
    pub current_bytes: u64,
    /// The most seen since the serve started.
    #[serde(default)]
    pub peak_bytes: u64,
    /// When the last sample was taken (ms since the epoch).
    #[serde(default)]
    pub sampled_at: Option<u64>,
    /// The room the start reserved under a budget (0: started without one).
    #[serde(default)]
    pub reserved_bytes: u64,
    /// Who reserved it (the starting consumer's pid), while no runner has taken the file over.
    #[serde(default)]
    pub reserved_by: Option<i32>,
    /// Connections to the serve the runner saw at its last look (it counts them while no
    /// consumer is attached; consumers are read from their markers, which are current).
    #[serde(default)]
    pub connections: u32,
    /// Since when the fleet had neither consumers nor connections (ms since the epoch); `None`
    /// while in use.
    #[serde(default)]
    pub idle_since: Option<u64>,
    /// The fleet's models (a budget refusal names them while no record does).
    #[serde(default)]
    pub models: Vec<String>,
}

impl ServeMemory {
    /// What the fleet counts for against a budget: its reservation until it has grown past it.
    pub fn held_bytes(&self) -> u64 {
        self.current_bytes.max(self.reserved_bytes)
    }
}

impl Registry {
    /// `<key>.mem`.
    pub fn memory_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join(format!("{key}.mem"))
    }

    /// `<key>.pin`.
    pub fn pin_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join(format!("{key}.pin"))
    }

    /// `<key>.evict`.
    pub fn evict_path(&self, key: &str) -> std::path::PathBuf {
        self.dir.join(format!("{key}.evict"))
    }

    /// `memory-budget.lock`.
    pub fn budget_lock_path(&self) -> std::path::PathBuf {
        self.dir.join("memory-budget.lock")
    }

    pub fn write_memory(&self, key: &str, memory: &ServeMemory) -> Result<(), RegistryError> {
        write_json(&self.memory_path(key), memory)
    }

    /// `<key>.mem`, if present and readable.
    pub fn read_memory(&self, key: &str) -> Option<ServeMemory> {
        let text = std::fs::read(self.memory_path(key)).ok()?;
        serde_json::from_slice(&text).ok()
    }

    pub fn remove_memory(&self, key: &str) {
        let _ = remove_file_if_present(&self.memory_path(key));
    }

    /// Fleets with a `<key>.mem`, sorted.
    pub fn fleets_with_memory(&self) -> Result<Vec<String>, RegistryError> {
        self.keys_with_suffix(".mem")
    }

    pub fn is_pinned(&self, key: &str) -> bool {
        self.pin_path(key).exists()
    }

    /// Pins (`true`) or unpins the fleet; true when that changed anything.
    pub fn set_pinned(&self, key: &str, pinned: bool) -> Result<bool, RegistryError> {
        let path = self.pin_path(key);
        if pinned {
            if path.exists() {
                return Ok(false);
            }
            self.ensure_dir()?;
            crate::private_file::write_atomic(&path, b"pinned\n")
                .map_err(super::io_err("write", &path))?;
            Ok(true)
        } else {
            match std::fs::remove_file(&path) {
                Ok(()) => Ok(true),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(false),
                Err(e) => Err(super::io_err("remove", &path)(e)),
            }
        }
    }

    /// Asks the fleet's runner to evict its serve (see the module doc).
    pub fn request_eviction(&self, key: &str) -> Result<(), RegistryError> {
        let path = self.evict_path(key);
        let text = format!("{}\n", std::process::id());
        crate::private_file::write_atomic(&path, text.as_bytes())
            .map_err(super::io_err("write", &path))
    }

    pub fn eviction_requested(&self, key: &str) -> bool {
        self.evict_path(key).exists()
    }

    pub fn clear_eviction(&self, key: &str) {
        let _ = remove_file_if_present(&self.evict_path(key));
    }
}
