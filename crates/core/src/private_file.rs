//! One home for writing private files (0600): complete temp files beside their target, atomic
//! replacement (temp + fsync + rename + directory fsync), and exclusive creation. Temp files are
//! named `<target>.<writer pid>.<8 hex>.tmp`; the registry sweep relies on that name to remove the
//! temp files of writers that died (see [`temp_writer_pid`]).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// A complete, fsynced file beside its target, removed on drop unless it was renamed over (or
/// hard-linked to) its target first.
#[derive(Debug)]
pub struct TempFile {
    path: PathBuf,
    identity: (u64, u64),
}

impl TempFile {
    /// Creates `<target>.<pid>.<hex>.tmp` exclusively with `mode` and writes `content` to disk.
    pub fn beside(target: &Path, content: &[u8], mode: u32) -> io::Result<TempFile> {
        let mut name = target.as_os_str().to_owned();
        name.push(format!(
            ".{}.{:08x}.tmp",
            std::process::id(),
            fastrand::u32(..)
        ));
        let path = PathBuf::from(name);
        let mut options = OpenOptions::new();
        options.write(true).create_new(true);
        let mut file = crate::platform::with_create_mode(&mut options, mode).open(&path)?;
        let temp = TempFile {
            identity: crate::platform::file_identity(&file)?,
            path,
        };
        file.write_all(content)?;
        file.sync_all()?;
        Ok(temp)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file as created ([`crate::platform::file_identity`]: it names the file after a link
    /// or rename too).
    pub fn identity(&self) -> (u64, u64) {
        self.identity
    }

    /// Renames it over `target` and fsyncs the directory, so the new content survives a crash.
    pub fn replace(self, target: &Path) -> io::Result<()> {
        crate::platform::retry_transient(|| fs::rename(&self.path, target))?;
        if let Some(dir) = target.parent().filter(|d| !d.as_os_str().is_empty()) {
            crate::platform::sync_dir(dir)?;
        }
        Ok(())
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        // After a hard link the target has its own name; after a rename this name is gone.
        let _ = fs::remove_file(&self.path);
    }
}

/// Replaces `path` atomically with `bytes`, mode 0600: readers see the old file or the new one,
/// never a torn one, and a crash leaves at most a temp file a sweep can remove.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    TempFile::beside(path, bytes, 0o600)?.replace(path)
}

/// Creates `path` (which must not exist) with mode 0600 and writes `bytes`.
pub fn create_new(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    let mut file = crate::platform::with_create_mode(&mut options, 0o600).open(path)?;
    file.write_all(bytes)
}

/// The writer pid in a temp file name made by [`TempFile::beside`] (`x.json.123.ab12cd34.tmp`
/// -> 123); `None` for any other name.
pub fn temp_writer_pid(name: &str) -> Option<i32> {
    let mut parts = name.rsplitn(4, '.');
    let (ext, _stamp, pid, rest) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    (ext == "tmp" && !rest.is_empty()).then_some(())?;
    pid.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn atomic_writes_are_private_and_leave_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!("two", fs::read_to_string(&path).unwrap());
        assert_eq!(
            0o600,
            crate::platform::mode_of(&fs::metadata(&path).unwrap())
        );
        assert_eq!(
            1,
            fs::read_dir(dir.path()).unwrap().count(),
            "no temp file left"
        );
    }

    #[test]
    fn temp_names_carry_the_writer_pid() {
        let dir = tempfile::tempdir().unwrap();
        let temp = TempFile::beside(&dir.path().join("k.lock"), b"x", 0o644).unwrap();
        let name = temp
            .path()
            .file_name()
            .unwrap()
            .to_str()
            .unwrap()
            .to_owned();
        assert_eq!(Some(std::process::id() as i32), temp_writer_pid(&name));
        assert_eq!(
            0o644,
            crate::platform::mode_of(&fs::metadata(temp.path()).unwrap())
        );
        let path = temp.path().to_owned();
        drop(temp);
        assert!(!path.exists(), "removed on drop");
        assert_eq!(None, temp_writer_pid("k.json"));
        assert_eq!(None, temp_writer_pid("x.12.tmp"));
        assert_eq!(Some(7), temp_writer_pid("a.json.7.0000abcd.tmp"));
    }

    #[test]
    fn create_new_refuses_an_existing_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("p");
        create_new(&path, b"1").unwrap();
        assert_eq!(
            io::ErrorKind::AlreadyExists,
            create_new(&path, b"2").unwrap_err().kind()
        );
        assert_eq!(
            0o600,
            crate::platform::mode_of(&fs::metadata(&path).unwrap())
        );
    }
}
