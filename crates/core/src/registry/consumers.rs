//! Consumer markers (`<key>.consumers/<pid>.<8 hex>`): one per live provider, holding its process
//! identity so a reused pid does not keep a serve alive. The runner reaps a serve once none is
//! left; markers of provably dead processes are pruned.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use super::{io_err, Registry, RegistryError};
use crate::private_file::TempFile;
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
        let path = dir.join(format!("{}.{:08x}", me.pid, fastrand::u32(..)));
        // The marker is written complete beside the consumers dir and renamed into it, so a write
        // that fails (a full disk) never leaves an empty marker that would count as a consumer.
        let staging = self.dir().join(format!("{key}.marker"));
        let temp = TempFile::beside_unsynced(&staging, me.to_record().as_bytes(), 0o600)
            .map_err(io_err("write consumer marker", &path))?;
        // A failed start removes an empty consumers dir; if that races with us, make it again.
        let mut attempts = 0;
        loop {
            match fs::DirBuilder::new().mode(0o700).create(&dir) {
                Ok(()) => fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
                    .map_err(io_err("set permissions of", &dir))?,
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create", &dir)(e)),
            }
            match fs::rename(temp.path(), &path) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::NotFound && attempts < 3 => attempts += 1,
                Err(e) => return Err(io_err("create consumer marker", &path)(e)),
            }
        }
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
                    (identity.liveness() == Liveness::Alive).then_some(pid)
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

/// `parseInt`-style leading pid of a marker name (`"123.ab12cd34"` -> 123).
fn leading_pid(name: &str) -> Option<i32> {
    let digits: String = name.chars().take_while(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}
