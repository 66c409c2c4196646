//! flock-based file lock: held by an open descriptor, so the kernel releases it when the holder
//! dies, however it dies.
//!
//! The descriptor is opened close-on-exec, so children never inherit the lock. Waiting is done
//! by [`retry`](crate::retry::retry) with backoff (flock never blocks a thread), and can be
//! cancelled. The lock file is left in place on release: removing it would let a waiter that
//! already opened the old inode and a newcomer on a fresh inode both "hold" the lock.

use std::fs::{self, File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::platform;
use crate::retry::{retry, Attempt, CancelToken, RetryError, RetryPolicy};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LockMode {
    Exclusive,
    Shared,
}

#[derive(Debug, thiserror::Error)]
pub enum FileLockError {
    #[error(
        "lock {} is still held{} after {attempts} attempts over {} ms; stop the holder or wait longer (deadlineMs, attempts)",
        path.display(),
        holder_pid.map(|p| format!(" by pid {p}")).unwrap_or_default(),
        elapsed.as_millis()
    )]
    Timeout {
        path: PathBuf,
        attempts: u32,
        elapsed: Duration,
        /// The holder as the OS reports it (Linux `/proc/locks`), when it can tell.
        holder_pid: Option<i32>,
    },
    #[error("cannot {action} lock file {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("waiting for lock {} was aborted", path.display())]
    Aborted { path: PathBuf },
}

impl FileLockError {
    pub fn code(&self) -> &'static str {
        match self {
            FileLockError::Timeout { .. } => "LOCK_TIMEOUT",
            FileLockError::Io { .. } => "LOCK_IO",
            FileLockError::Aborted { .. } => "ABORT_ERR",
        }
    }
}

/// A held flock. Dropping it releases it.
#[derive(Debug)]
pub struct FileLock {
    file: Option<File>,
    path: PathBuf,
    mode: LockMode,
}

impl FileLock {
    /// Takes the lock if it is free now; `Ok(None)` if another descriptor holds it. Never blocks.
    pub fn try_acquire(path: &Path, mode: LockMode) -> Result<Option<FileLock>, FileLockError> {
        let io_err = |action| {
            move |source| FileLockError::Io {
                action,
                path: path.to_owned(),
                source,
            }
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            fs::create_dir_all(parent).map_err(io_err("create the directory of"))?;
        }
        // std opens with O_CLOEXEC on every Unix: spawned children never inherit the lock.
        let mut options = OpenOptions::new();
        options.read(true).write(true).create(true).truncate(false);
        let file = crate::platform::with_create_mode(&mut options, 0o600)
            .open(path)
            .map_err(io_err("open"))?;
        let attempt = match mode {
            LockMode::Exclusive => fs4::FileExt::try_lock(&file),
            LockMode::Shared => fs4::FileExt::try_lock_shared(&file),
        };
        match attempt {
            Ok(()) => Ok(Some(FileLock {
                file: Some(file),
                path: path.to_owned(),
                mode,
            })),
            Err(fs4::TryLockError::WouldBlock) => Ok(None),
            Err(fs4::TryLockError::Error(e)) => Err(io_err("lock")(e)),
        }
    }

    /// Retries [`try_acquire`](Self::try_acquire) under `policy`. Ends with
    /// [`FileLockError::Timeout`] when the budget is spent, or [`FileLockError::Aborted`]
    /// as soon as `cancel` fires.
    pub async fn acquire(
        path: &Path,
        mode: LockMode,
        policy: &RetryPolicy,
        cancel: &CancelToken,
    ) -> Result<FileLock, FileLockError> {
        let outcome = retry(policy, cancel, |_| async {
            match FileLock::try_acquire(path, mode) {
                Ok(Some(lock)) => Attempt::Done(lock),
                Ok(None) => Attempt::Retry(()),
                Err(e) => Attempt::Fail(e),
            }
        })
        .await;
        match outcome {
            Ok(lock) => Ok(lock),
            Err(RetryError::Failed(e)) => Err(e),
            Err(RetryError::Cancelled) => Err(FileLockError::Aborted {
                path: path.to_owned(),
            }),
            Err(RetryError::Exhausted {
                attempts, elapsed, ..
            }) => Err(FileLockError::Timeout {
                path: path.to_owned(),
                attempts,
                elapsed,
                holder_pid: holder_pid(path),
            }),
        }
    }

    /// Unlocks and closes. Idempotent.
    pub fn release(&mut self) -> Result<(), FileLockError> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        fs4::FileExt::unlock(&file).map_err(|source| FileLockError::Io {
            action: "unlock",
            path: self.path.clone(),
            source,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn mode(&self) -> LockMode {
        self.mode
    }

    pub fn is_held(&self) -> bool {
        self.file.is_some()
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// The pid holding an flock on `path`, where the OS can tell.
pub fn holder_pid(path: &Path) -> Option<i32> {
    platform::flock_holder_pid(&File::open(path).ok()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exclusive_excludes_and_release_frees() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/registry.lock");
        let mut first = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        // flock is per open file description: a second open in the same process contends.
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_none());
        assert!(FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .is_none());
        assert_eq!(Some(std::process::id() as i32), holder_pid(&path));
        first.release().unwrap();
        first.release().unwrap();
        assert!(!first.is_held());
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_some());
    }

    #[test]
    fn shared_locks_coexist() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.lock");
        let _a = FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .unwrap();
        let _b = FileLock::try_acquire(&path, LockMode::Shared)
            .unwrap()
            .unwrap();
        assert!(FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .is_none());
    }

    #[tokio::test]
    async fn acquire_times_out_with_attempts_and_holder() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        let _held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        let policy = RetryPolicy {
            attempts: 4,
            base_delay: Duration::from_millis(2),
            ..RetryPolicy::default()
        };
        let err = FileLock::acquire(&path, LockMode::Exclusive, &policy, &CancelToken::new())
            .await
            .unwrap_err();
        match &err {
            FileLockError::Timeout {
                attempts,
                holder_pid,
                ..
            } => {
                assert_eq!(4, *attempts);
                assert_eq!(Some(std::process::id() as i32), *holder_pid);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!("LOCK_TIMEOUT", err.code());
    }

    #[tokio::test]
    async fn acquire_gets_the_lock_once_it_is_freed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("h.lock");
        let held = FileLock::try_acquire(&path, LockMode::Exclusive)
            .unwrap()
            .unwrap();
        let releaser = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            drop(held);
        });
        let policy = RetryPolicy {
            base_delay: Duration::from_millis(10),
            max_delay: Duration::from_millis(20),
            ..RetryPolicy::default()
        };
        let lock = FileLock::acquire(&path, LockMode::Exclusive, &policy, &CancelToken::new())
            .await
            .unwrap();
        assert!(lock.is_held());
        releaser.await.unwrap();
    }

    #[test]
    fn unwritable_location_is_an_io_error() {
        let err =
            FileLock::try_acquire(Path::new("/proc/qvac-no-such/x.lock"), LockMode::Exclusive)
                .unwrap_err();
        assert_eq!("LOCK_IO", err.code());
        assert!(err.to_string().contains("/proc/qvac-no-such/x.lock"));
    }
}
