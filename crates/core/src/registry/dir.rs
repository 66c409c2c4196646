//! The registry directory's safety: created 0700, and an existing one that is a symlink, owned by
//! another user or reachable by group/others is refused (never silently fixed) with the command
//! that fixes it, because it holds the serves' API keys.

use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, MetadataExt, PermissionsExt};

use super::{io_err, Registry, RegistryError};

impl Registry {
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
}
