//! Consumer markers (`<key>.consumers/<pid>.<8 hex>`): one per live provider, holding its process
//! identity so a reused pid does not keep a serve alive. The runner reaps a serve once none is
//! left; markers of provably dead processes are pruned.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{io_err, Registry, RegistryError};
use crate::private_file;
use crate::process::{Liveness, ProcessIdentity};

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

/// The markers of one fleet, judged.
#[derive(Debug, Default)]
pub(crate) struct Markers {
    /// Pids of live consumers.
    pub live: Vec<i32>,
    /// Markers of provably dead processes, and names that carry no pid.
    pub dead: Vec<PathBuf>,
}

impl Registry {
    /// Adds a marker for this process: `<key>.consumers/<pid>.<8 hex>`, holding our identity so
    /// a reused pid does not keep a serve alive.
    pub fn add_consumer(&self, key: &str) -> Result<ConsumerMarker, RegistryError> {
        self.ensure_dir()?;
        let dir = self.consumers_dir(key);
        let me = ProcessIdentity::current();
        let name = format!("{}.{:08x}", me.pid, fastrand::u32(..));
        let path = dir.join(&name);
        // The marker is written complete in a private staging directory first, so a write that
        // fails (a full disk) never leaves an empty marker that would count as a consumer.
        let staging = self.dir().join(format!(
            "{key}.consumers.{}.{:08x}.tmp",
            me.pid,
            fastrand::u32(..)
        ));
        let staged = crate::platform::create_private_dir(&staging).and_then(|()| {
            private_file::create_new(&staging.join(&name), me.to_record().as_bytes())
        });
        if let Err(e) = staged {
            let _ = fs::remove_dir_all(&staging);
            return Err(io_err("write consumer marker", &path)(e));
        }
        let placed = place_marker(&staging, &name, &dir);
        let _ = fs::remove_dir_all(&staging);
        placed.map_err(io_err("create consumer marker", &path))?;
        Ok(ConsumerMarker {
            path,
            removed: false,
        })
    }

    /// Pids of live consumers. With `prune`, markers of provably dead processes (and names that
    /// carry no pid) are removed, as upstream's runner does.
    pub fn live_consumers(&self, key: &str, prune: bool) -> Result<Vec<i32>, RegistryError> {
        let markers = self.markers(key)?;
        if prune {
            for dead in &markers.dead {
                let _ = fs::remove_file(dead);
            }
        }
        Ok(markers.live)
    }

    /// Every marker of the fleet, live or dead; removes nothing.
    pub(crate) fn markers(&self, key: &str) -> Result<Markers, RegistryError> {
        let dir = self.consumers_dir(key);
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Markers::default()),
            Err(e) => return Err(io_err("list", &dir)(e)),
        };
        let mut markers = Markers::default();
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let alive = match leading_pid(&name) {
                Some(pid) if pid > 0 => {
                    let content = fs::read_to_string(entry.path()).unwrap_or_default();
                    let identity = ProcessIdentity::parse_record(&content)
                        .filter(|id| id.pid == pid)
                        .unwrap_or_else(|| ProcessIdentity::pid_only(pid));
                    // Another machine's consumer (a shared network home) cannot be checked
                    // from here: kept and counted, never pruned as dead.
                    matches!(identity.liveness(), Liveness::Alive | Liveness::Foreign)
                        .then_some(pid)
                }
                _ => None,
            };
            match alive {
                Some(pid) => markers.live.push(pid),
                None => markers.dead.push(entry.path()),
            }
        }
        Ok(markers)
    }
}

/// Moves the staged marker into the consumers directory. An empty consumers directory may be
/// removed at any moment (by a sweep, which every slow-path attach runs, or by a failed start), so
/// when there is none, the staging directory — already holding the marker, so never empty — is
/// put in its place, without ever replacing one that appeared meanwhile.
fn place_marker(staging: &Path, name: &str, dir: &Path) -> io::Result<()> {
    for _ in 0..10 {
        match fs::rename(staging.join(name), dir.join(name)) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        match crate::platform::rename_noreplace(staging, dir) {
            Ok(()) => return Ok(()),
            // Another consumer put one there first: move the marker into it.
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::AlreadyExists | io::ErrorKind::DirectoryNotEmpty
                ) => {}
            Err(e) => return Err(e),
        }
    }
    Err(io::Error::other(
        "the consumers directory kept changing under us",
    ))
}

/// `parseInt`-style leading pid of a marker name (`"123.ab12cd34"` -> 123).
fn leading_pid(name: &str) -> Option<i32> {
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
