//! Start failures (`<key>.error`): why a fleet's serve did not start, written by the runner and
//! read by every consumer waiting on that start. Plain text that upstream consumers show whole:
//!
//! ```text
//! SERVE_EXITED: qvac serve exited before becoming healthy (code=3, signal=null).
//! --- exit status ---
//! code=3 signal=null
//! --- serve output ---
//! <the serve's last output>
//! ```
//!
//! The exit status is its own section, so the fields never have to be parsed out of the message.
//! An `--- attempt ---` section names the start that failed (the id the starting consumer gave
//! its runner): consumers judge a failure by the attempt it names, never by a timestamp.

use std::fs;
use std::io;

use super::{io_err, remove_file_if_present, Registry, RegistryError};
use crate::{platform, private_file};

/// The last start failure of a fleet.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct StartFailure {
    pub code: String,
    pub message: String,
    pub output_tail: String,
    /// The serve's exit code, when it exited before becoming healthy.
    pub exit_code: Option<i32>,
    /// The signal that ended the serve (`SIGKILL`), when one did.
    pub signal: Option<String>,
    /// The start that failed. Read from a file without one (upstream's), it is the file's own
    /// identity (inode and change time), so a rewrite still reads as another failure.
    pub attempt: Option<String>,
}

const EXIT_MARK: &str = "\n--- exit status ---\n";
const ATTEMPT_MARK: &str = "\n--- attempt ---\n";
const OUTPUT_MARK: &str = "\n--- serve output ---\n";

impl StartFailure {
    fn to_text(&self) -> String {
        let mut text = format!("{}: {}", self.code, self.message);
        if self.exit_code.is_some() || self.signal.is_some() {
            text.push_str(EXIT_MARK);
            let code = self
                .exit_code
                .map_or_else(|| "null".to_owned(), |c| c.to_string());
            text.push_str(&format!(
                "code={code} signal={}",
                self.signal.as_deref().unwrap_or("null")
            ));
        }
        if let Some(attempt) = &self.attempt {
            text.push_str(ATTEMPT_MARK);
            text.push_str(attempt);
        }
        if !self.output_tail.is_empty() {
            text.push_str(OUTPUT_MARK);
            text.push_str(&self.output_tail);
        }
        text
    }

    /// Parses our format; upstream's plain message becomes SERVE_SPAWN_FAILED.
    fn from_text(text: &str) -> StartFailure {
        let (head, output_tail) = text.split_once(OUTPUT_MARK).unwrap_or((text, ""));
        let (head, attempt) = match head.split_once(ATTEMPT_MARK) {
            Some((head, attempt)) => (head, Some(attempt.trim().to_owned())),
            None => (head, None),
        };
        let (head, status) = head.split_once(EXIT_MARK).unwrap_or((head, ""));
        let coded = head.split_once(": ").filter(|(code, _)| {
            !code.is_empty() && code.chars().all(|c| c.is_ascii_uppercase() || c == '_')
        });
        let (code, message) = coded.unwrap_or(("SERVE_SPAWN_FAILED", head));
        let field = |name: &str| {
            status
                .split_whitespace()
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .filter(|v| *v != "null")
        };
        StartFailure {
            code: code.to_owned(),
            message: message.trim().to_owned(),
            output_tail: output_tail.to_owned(),
            exit_code: field("code").and_then(|c| c.parse().ok()),
            signal: field("signal").map(str::to_owned),
            attempt: attempt.filter(|a| !a.is_empty()),
        }
    }
}

impl Registry {
    /// Records the last start failure (0600, atomic).
    pub fn write_start_failure(
        &self,
        key: &str,
        failure: &StartFailure,
    ) -> Result<(), RegistryError> {
        self.ensure_dir()?;
        let path = self.start_failure_path(key);
        private_file::write_atomic(&path, failure.to_text().as_bytes())
            .map_err(io_err("write", &path))
    }

    pub fn read_start_failure(&self, key: &str) -> Result<Option<StartFailure>, RegistryError> {
        let path = self.start_failure_path(key);
        match fs::read_to_string(&path) {
            Ok(text) if text.trim().is_empty() => Ok(None),
            Ok(text) => {
                let mut failure = StartFailure::from_text(&text);
                if failure.attempt.is_none() {
                    failure.attempt = fs::metadata(&path).ok().map(|m| {
                        let (dev, ino) = platform::file_identity_at(&path).unwrap_or_default();
                        let written = m
                            .modified()
                            .ok()
                            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                            .map_or(0, |d| d.as_nanos());
                        format!("file:{dev}:{ino}:{written}")
                    });
                }
                Ok(Some(failure))
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(io_err("read", &path)(e)),
        }
    }

    pub fn clear_start_failure(&self, key: &str) -> Result<(), RegistryError> {
        remove_file_if_present(&self.start_failure_path(key))
    }

    /// The identity of `<key>.error` as it is now, to remove exactly that file later.
    pub fn start_failure_file(&self, key: &str) -> Option<(u64, u64)> {
        platform::file_identity_at(&self.start_failure_path(key)).ok()
    }

    /// Removes `<key>.error` only if it is still the file `file` names: it is moved out of the
    /// way first and looked at, and put back if a newer failure took its place meanwhile.
    pub fn clear_start_failure_file(&self, key: &str, file: (u64, u64)) {
        let path = self.start_failure_path(key);
        let aside = self.dir().join(format!(
            "{key}.error.{}.{:08x}.tmp",
            std::process::id(),
            fastrand::u32(..)
        ));
        if fs::rename(&path, &aside).is_err() {
            return;
        }
        // A newer failure is put back unless an even newer one is there already.
        let judged = platform::file_identity_at(&aside).is_ok_and(|id| id == file);
        if judged || crate::platform::rename_noreplace(&aside, &path).is_err() {
            let _ = fs::remove_file(&aside);
        }
    }
}
