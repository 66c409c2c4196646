//! The registry directory's safety: created 0700, and an existing one that is a symlink, owned by
//! another user or reachable by group/others is refused (never silently fixed) with the command
//! that fixes it, because it holds the serves' API keys.

use super::{io_err, Registry, RegistryError};
use crate::platform;
use std::fs;
use std::io;

impl Registry {
    /// Creates the directory (0700) if missing; refuses one that another user owns, that is a
    /// symlink or not a directory, or that group/others can access.
    pub fn ensure_dir(&self) -> Result<(), RegistryError> {
        if let Some(parent) = self.dir.parent() {
            platform::create_private_dir_all(parent).map_err(io_err("create", parent))?;
        }
        match platform::create_private_dir(&self.dir) {
            Ok(()) => return Ok(()),
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
        match platform::private_dir_problem(&self.dir, &meta) {
            Some((reason, fix)) => Err(unsafe_dir(reason, fix)),
            None => Ok(()),
        }
    }
}
