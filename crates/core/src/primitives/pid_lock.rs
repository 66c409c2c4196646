//! PID lock: a file that names the process holding it, for single-instance guards such as the
//! SDK worker's `~/.qvac/.worker.lock`.
//!
//! Invariants:
//! - The file is created complete (written to a temp file, then hard-linked into place), so an
//!   empty or half-written lock file is never one of ours.
//! - It is taken from its holder only when the holder is provably dead (no such pid, or the pid
//!   now belongs to a process with another start time or boot). EPERM from `kill(pid, 0)` means
//!   alive; pid 1 is never provably dead. Empty or garbage content counts as held until the file
//!   is [`STALE_WINDOW`] old.
//! - A steal is a `rename` of our complete temp file over the stale one, done while holding an
//!   flock on the lock's directory and after re-checking that the stale file is still the one
//!   judged stale. Racing stealers therefore yield exactly one owner.
//! - One handle owns a lock file, and [`PidLock::release`] removes it once, and only while the
//!   file at the path is still the one that handle created: same file identity *and* the exact
//!   bytes it wrote, which include a random token. A freed inode that the filesystem hands to a
//!   waiter's new lock file at once (ext4 does) therefore never reads as ours. Releases, steals
//!   and takeovers all act under the directory guard, so none removes a file another just put
//!   in place.

use std::fmt;
use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use crate::platform;
use crate::private_file::TempFile;
use crate::process::{Liveness, ProcessIdentity};
use crate::retry::{retry, Attempt, CancelToken, RetryError, RetryPolicy};

/// Content that cannot name a holder becomes stealable once the file is this old.
pub const STALE_WINDOW: Duration = Duration::from_secs(30);

/// Who the lock file says holds it.
#[derive(Clone, Debug, PartialEq)]
pub enum LockHolder {
    /// The file names a process; `liveness` is what that process is now.
    Process {
        identity: ProcessIdentity,
        liveness: Liveness,
    },
    /// Empty or garbage content (a crash mid-write, a hand edit), last written `age` ago.
    Unreadable { age: Duration },
}

impl LockHolder {
    pub fn pid(&self) -> Option<i32> {
        match self {
            LockHolder::Process { identity, .. } => Some(identity.pid),
            LockHolder::Unreadable { .. } => None,
        }
    }

    pub fn is_alive(&self) -> bool {
        matches!(
            self,
            LockHolder::Process {
                liveness: Liveness::Alive,
                ..
            }
        )
    }

    /// How long until this holder becomes stealable by age alone: `Some` only for content that
    /// names no holder (nothing else would wake a waiter for it), zero once it is.
    pub fn stealable_in(&self) -> Option<Duration> {
        match self {
            LockHolder::Process { .. } => None,
            LockHolder::Unreadable { age } => Some(
                STALE_WINDOW
                    .saturating_sub(*age)
                    .saturating_add(Duration::from_millis(10)),
            ),
        }
    }

    /// Stealable: the holder is provably dead, or unreadable content outlived the window.
    pub fn is_stale(&self) -> bool {
        match self {
            LockHolder::Process { liveness, .. } => liveness.is_provably_dead(),
            LockHolder::Unreadable { age } => *age > STALE_WINDOW,
        }
    }

    fn parse(text: &str, age: Duration) -> Self {
        match ProcessIdentity::parse_record(text) {
            Some(identity) if identity.pid > 0 => LockHolder::Process {
                liveness: identity.liveness(),
                identity,
            },
            // pid 0 and negatives address process groups; such a file names no holder.
            _ => LockHolder::Unreadable { age },
        }
    }
}

/// The lock is held by someone else (or, not being re-entrant, by another handle of ours).
#[derive(Debug)]
pub struct HeldError {
    pub path: PathBuf,
    pub holder: LockHolder,
    /// Attempts made and time spent when waiting; 1 and zero for a single try.
    pub attempts: u32,
    pub elapsed: Duration,
    /// A stealer saw the holder dead but another process was taking the lock over.
    pub takeover_in_progress: bool,
}

impl fmt::Display for HeldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = self.path.display();
        let clear = format!("rm -f {}", shell_quote(&self.path));
        match &self.holder {
            LockHolder::Process { identity, .. } if self.takeover_in_progress => write!(
                f,
                "lock {path} was held by pid {}, which is dead; another process is taking it over now. Try again.",
                identity.pid
            )?,
            LockHolder::Process { identity, .. } if identity.is_current_process() => write!(
                f,
                "lock {path} is already held by this process (pid {}); release that PidLock first.",
                identity.pid
            )?,
            LockHolder::Process {
                identity,
                liveness: Liveness::Foreign,
            } => write!(
                f,
                "lock {path} is held by pid {} on another machine ({}), which cannot be checked from here; it is never taken over. A lock directory shared between machines (a network home) needs one per machine. If no process holds it, clear it with: {clear}",
                identity.pid,
                identity.machine.as_deref().unwrap_or("unknown")
            )?,
            LockHolder::Process { identity, .. } if identity.pid == 1 => write!(
                f,
                "lock {path} names pid 1 (init), which is never treated as dead. If no process holds this lock, clear it with: {clear}"
            )?,
            LockHolder::Process { identity, .. } if identity.start_time.is_none() => write!(
                f,
                "lock {path} is held by pid {}, which is alive; the file records no start time, so a reused pid cannot be ruled out. If pid {} is not the holder, clear it with: {clear}",
                identity.pid, identity.pid
            )?,
            LockHolder::Process { identity, .. } => write!(
                f,
                "lock {path} is held by pid {}, which is alive. Stop that process or wait for it to release the lock.",
                identity.pid
            )?,
            LockHolder::Unreadable { age } => write!(
                f,
                "lock {path} names no holder (empty or damaged file, written {:.0} s ago); it becomes stealable after {} s. If no process holds it, clear it now with: {clear}",
                age.as_secs_f64(),
                STALE_WINDOW.as_secs()
            )?,
        }
        if self.attempts > 1 {
            write!(
                f,
                " (gave up after {} attempts over {} ms)",
                self.attempts,
                self.elapsed.as_millis()
            )?;
        }
        Ok(())
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PidLockError {
    #[error("{0}")]
    Held(Box<HeldError>),
    #[error("cannot {action} lock file {}: {source}{}", path.display(), io_hint(source))]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("waiting for lock {} was aborted", path.display())]
    Aborted { path: PathBuf },
}

impl PidLockError {
    /// True when the lock's directory does not exist (it was removed under us).
    pub fn is_missing_directory(&self) -> bool {
        matches!(self, PidLockError::Io { source, .. } if source.kind() == io::ErrorKind::NotFound)
    }

    pub fn code(&self) -> &'static str {
        match self {
            PidLockError::Held(_) => "LOCK_HELD",
            PidLockError::Io { .. } => "LOCK_IO",
            PidLockError::Aborted { .. } => "ABORT_ERR",
        }
    }
}

fn io_hint(err: &io::Error) -> &'static str {
    match err.kind() {
        io::ErrorKind::PermissionDenied => {
            " (check that this user can write to the lock's directory)"
        }
        io::ErrorKind::ReadOnlyFilesystem => " (the filesystem is read-only; choose another path)",
        _ => "",
    }
}

fn io_err<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> PidLockError + 'a {
    move |source| PidLockError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// Identifies one file (inode), so we never remove or replace a file we did not judge.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

impl FileId {
    fn of((dev, ino): (u64, u64)) -> Self {
        FileId { dev, ino }
    }
}

/// A held PID lock. Dropping it releases it.
#[derive(Debug)]
pub struct PidLock {
    path: PathBuf,
    file_id: FileId,
    /// Exactly what this handle wrote (the holder record and a random token).
    content: Vec<u8>,
    released: bool,
}

/// What a new lock file of `holder` holds: its identity record, then a token no other
/// acquisition writes (readers that parse the pid on line 1, as upstream does, skip it).
fn lock_content(holder: &ProcessIdentity) -> Vec<u8> {
    format!("{}lock={:016x}\n", holder.to_record(), fastrand::u64(..)).into_bytes()
}

impl PidLock {
    /// One attempt: takes the lock if it is free or stale, otherwise [`PidLockError::Held`].
    /// Creates the parent directory if missing. Never blocks on another process.
    pub fn try_acquire(path: &Path) -> Result<PidLock, PidLockError> {
        create_parent_dir(path)?;
        PidLock::try_acquire_with_mode(path, 0o644)
    }

    /// [`try_acquire`](Self::try_acquire) with the lock file's permission bits (the registry's
    /// spawn locks are 0600), in a directory that must already exist: the registry creates its
    /// directory with its own permissions, and a runner must not re-create one that was removed.
    pub fn try_acquire_with_mode(path: &Path, mode: u32) -> Result<PidLock, PidLockError> {
        let content = lock_content(&ProcessIdentity::current());
        let temp = TempFile::beside(path, &content, mode).map_err(io_err("create", path))?;
        let temp_id = FileId::of(temp.identity());
        let owned = || PidLock::owned(path, temp_id, content.clone());
        // A few rounds cover a holder file that vanishes or changes between our steps.
        let mut last_seen = None;
        for _ in 0..4 {
            match platform::retry_transient(|| fs::hard_link(temp.path(), path)) {
                Ok(()) => return Ok(owned()),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
                Err(e) => return Err(io_err("create", path)(e)),
            }
            let Some((holder, id, _)) = read_holder(path)? else {
                continue;
            };
            if !holder.is_stale() {
                return Err(held(path, holder, false));
            }
            match steal(path, &temp, id)? {
                Steal::Done => return Ok(owned()),
                Steal::Contended => return Err(held(path, holder, true)),
                Steal::Changed => last_seen = Some(holder),
            }
        }
        let holder = match read_holder(path)? {
            Some((holder, _, _)) => holder,
            None => last_seen.unwrap_or(LockHolder::Unreadable {
                age: Duration::ZERO,
            }),
        };
        Err(held(path, holder, false))
    }

    /// Retries [`try_acquire`](Self::try_acquire) under `policy` while the lock is held;
    /// other errors end at once. Cancelling `cancel` ends a pending wait immediately with
    /// [`PidLockError::Aborted`].
    pub async fn acquire(
        path: &Path,
        policy: &RetryPolicy,
        cancel: &CancelToken,
    ) -> Result<PidLock, PidLockError> {
        create_parent_dir(path)?;
        PidLock::acquire_with_mode(path, 0o644, policy, cancel).await
    }

    /// [`acquire`](Self::acquire) with the lock file's permission bits.
    pub async fn acquire_with_mode(
        path: &Path,
        mode: u32,
        policy: &RetryPolicy,
        cancel: &CancelToken,
    ) -> Result<PidLock, PidLockError> {
        let outcome = retry(policy, cancel, |_| async {
            match PidLock::try_acquire_with_mode(path, mode) {
                Ok(lock) => Attempt::Done(lock),
                Err(PidLockError::Held(held)) => Attempt::Retry(held),
                Err(other) => Attempt::Fail(other),
            }
        })
        .await;
        match outcome {
            Ok(lock) => Ok(lock),
            Err(RetryError::Failed(err)) => Err(err),
            Err(RetryError::Cancelled) => Err(PidLockError::Aborted {
                path: path.to_owned(),
            }),
            Err(RetryError::Exhausted {
                attempts,
                elapsed,
                last,
            }) => {
                let mut held = last;
                held.attempts = attempts;
                held.elapsed = elapsed;
                Err(PidLockError::Held(held))
            }
        }
    }

    /// Who holds the lock at `path` now, or `None` if there is no lock file.
    pub fn inspect(path: &Path) -> Result<Option<LockHolder>, PidLockError> {
        Ok(read_holder(path)?.map(|(holder, _, _)| holder))
    }

    /// Removes the lock file at `path` if it is stale (holder provably dead, or unreadable past
    /// the window); returns whether it did. Done under the same directory guard as a takeover,
    /// after re-checking the file, so a fresh lock that replaced the stale one is never removed.
    pub fn clear_stale(path: &Path) -> Result<bool, PidLockError> {
        let Some((holder, id, _)) = read_holder(path)? else {
            return Ok(false);
        };
        if !holder.is_stale() {
            return Ok(false);
        }
        let Some(_guard) = DirGuard::try_lock(path)? else {
            return Ok(false);
        };
        match read_holder(path)? {
            Some((holder, now, _)) if now == id && holder.is_stale() => {
                platform::retry_transient(|| fs::remove_file(path))
                    .map_err(io_err("remove stale", path))?;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// Takes the lock over from `from` (the process that started us and holds it for us): the
    /// file is atomically replaced by one naming this process, under the same directory guard a
    /// steal takes, and only while it still names `from` — alive or not — or is missing (`from`
    /// let go of it, e.g. its caller gave up). `Ok(None)` when it names anyone else (someone
    /// proved `from` dead and took the lock first): the caller must not go on as the owner.
    /// The handle returned is the lock's one owner from then on.
    pub fn take_over_from(
        path: &Path,
        from: &ProcessIdentity,
        mode: u32,
    ) -> Result<Option<PidLock>, PidLockError> {
        let content = lock_content(&ProcessIdentity::current());
        let temp = TempFile::beside(path, &content, mode).map_err(io_err("take over", path))?;
        let temp_id = FileId::of(temp.identity());
        let Some(_guard) = DirGuard::lock_briefly(path)? else {
            return Err(io_err("take over", path)(io::Error::new(
                io::ErrorKind::WouldBlock,
                "the lock directory stayed guarded by another process",
            )));
        };
        match read_holder(path)? {
            Some((LockHolder::Process { identity, .. }, _, _))
                if identity.pid == from.pid && identity.start_time == from.start_time =>
            {
                platform::retry_transient(|| fs::rename(temp.path(), path))
                    .map_err(io_err("take over", path))?;
                Ok(Some(PidLock::owned(path, temp_id, content)))
            }
            // Released by the starter before we got here (it gave up): the start is ours
            // to finish, so the lock is taken like a free one.
            None => match platform::retry_transient(|| fs::hard_link(temp.path(), path)) {
                Ok(()) => Ok(Some(PidLock::owned(path, temp_id, content))),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(None),
                Err(e) => Err(io_err("take over", path)(e)),
            },
            _ => Ok(None),
        }
    }

    /// Removes the lock file if it is still the one this handle created (same file, same bytes;
    /// see the module doc). Once: later calls, and the drop after one, do nothing.
    pub fn release(&mut self) -> Result<(), PidLockError> {
        if self.released {
            return Ok(());
        }
        self.released = true;
        // Under the guard, so no steal or takeover replaces the file between our look and the
        // removal. A guard held past the bound (a stopped process) is not waited out: nothing
        // but a steal of a *dead* holder replaces a live holder's file, and we are alive.
        let _guard = DirGuard::lock_briefly(&self.path).ok().flatten();
        match read_holder(&self.path)? {
            Some((_, id, content)) if id == self.file_id && content == self.content => {
                match platform::retry_transient(|| fs::remove_file(&self.path)) {
                    Ok(()) => Ok(()),
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    Err(e) => Err(io_err("remove", &self.path)(e)),
                }
            }
            // Gone, or another file now (someone who proved us dead took it, or a new holder's
            // file on a reused inode): nothing of ours to remove.
            _ => Ok(()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn owned(path: &Path, file_id: FileId, content: Vec<u8>) -> PidLock {
        PidLock {
            path: path.to_owned(),
            file_id,
            content,
            released: false,
        }
    }
}

impl Drop for PidLock {
    fn drop(&mut self) {
        let _ = self.release();
    }
}

/// `mkdir -p` of the lock's directory, for the public entry points (the registry makes its own).
fn create_parent_dir(path: &Path) -> Result<(), PidLockError> {
    match path.parent().filter(|p| !p.as_os_str().is_empty()) {
        Some(parent) => fs::create_dir_all(parent).map_err(io_err("create the directory of", path)),
        None => Ok(()),
    }
}

fn held(path: &Path, holder: LockHolder, takeover_in_progress: bool) -> PidLockError {
    PidLockError::Held(Box::new(HeldError {
        path: path.to_owned(),
        holder,
        attempts: 1,
        elapsed: Duration::ZERO,
        takeover_in_progress,
    }))
}

/// Reads holder, file identity and raw content from one open descriptor, so all three describe
/// the same file.
fn read_holder(path: &Path) -> Result<Option<(LockHolder, FileId, Vec<u8>)>, PidLockError> {
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io_err("read", path)(e)),
    };
    let meta = file.metadata().map_err(io_err("read", path))?;
    let id = platform::file_identity(&file).map_err(io_err("read", path))?;
    let mut bytes = Vec::new();
    Read::by_ref(&mut file)
        .take(4096)
        .read_to_end(&mut bytes)
        .map_err(io_err("read", path))?;
    let age = meta
        .modified()
        .ok()
        .and_then(|mtime| SystemTime::now().duration_since(mtime).ok())
        .unwrap_or(Duration::ZERO);
    let holder = LockHolder::parse(&String::from_utf8_lossy(&bytes), age);
    Ok(Some((holder, FileId::of(id), bytes)))
}

enum Steal {
    Done,
    /// Another process is stealing right now.
    Contended,
    /// The file is no longer the one judged stale.
    Changed,
}

/// Replaces the stale file `judged` at `path` by our temp file, under the directory flock.
fn steal(path: &Path, temp: &TempFile, judged: FileId) -> Result<Steal, PidLockError> {
    let Some(_guard) = DirGuard::try_lock(path)? else {
        return Ok(Steal::Contended);
    };
    match read_holder(path)? {
        Some((holder, id, _)) if id == judged && holder.is_stale() => {}
        _ => return Ok(Steal::Changed),
    }
    platform::retry_transient(|| fs::rename(temp.path(), path))
        .map_err(io_err("replace stale", path))?;
    Ok(Steal::Done)
}

/// An flock on the lock's directory (on Windows, on a file beside the locks standing for it),
/// held while a stale lock file is replaced or removed so that only one process acts on it.
/// Closing the descriptor (drop) releases it.
struct DirGuard(#[allow(dead_code)] File);

impl DirGuard {
    /// [`try_lock`](Self::try_lock) for up to ~200 ms: the guard is held only for a few system
    /// calls at a time, so a short bounded wait covers it. `None` when it stayed held.
    fn lock_briefly(path: &Path) -> Result<Option<DirGuard>, PidLockError> {
        for _ in 0..200 {
            if let Some(guard) = DirGuard::try_lock(path)? {
                return Ok(Some(guard));
            }
            std::thread::sleep(Duration::from_millis(1));
        }
        Ok(None)
    }

    /// `None` when another process holds the guard right now.
    fn try_lock(path: &Path) -> Result<Option<DirGuard>, PidLockError> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(Path::new("."));
        let guard = platform::dir_guard_file(dir).map_err(io_err("open the directory of", path))?;
        match fs4::FileExt::try_lock(&guard) {
            Ok(()) => Ok(Some(DirGuard(guard))),
            Err(fs4::TryLockError::WouldBlock) => Ok(None),
            Err(fs4::TryLockError::Error(e)) => Err(io_err("lock the directory of", path)(e)),
        }
    }
}

/// Quotes a path for a POSIX shell command the user can paste.
pub(crate) fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn dead_pid() -> i32 {
        let mut child = Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    fn set_age(path: &Path, age: Duration) {
        let file = File::options().write(true).open(path).unwrap();
        file.set_modified(SystemTime::now() - age).unwrap();
    }

    #[test]
    fn a_started_process_takes_the_lock_over_only_from_its_starter() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spawn.lock");
        // A starter that died before handing the lock over: still taken over (no one stole it).
        let starter = ProcessIdentity::pid_only(dead_pid());
        fs::write(&path, starter.to_record()).unwrap();
        let lock = PidLock::take_over_from(&path, &starter, 0o600)
            .unwrap()
            .expect("taken over from the starter");
        assert!(PidLock::inspect(&path).unwrap().unwrap().is_alive());
        drop(lock);
        assert!(!path.exists(), "released like any lock");
        // Someone else holds it (the starter was proven dead and the lock taken): not ours.
        let mut other = Command::new("sleep").arg("30").spawn().unwrap();
        let holder = ProcessIdentity::of(other.id() as i32).unwrap();
        fs::write(&path, holder.to_record()).unwrap();
        assert!(PidLock::take_over_from(&path, &starter, 0o600)
            .unwrap()
            .is_none());
        assert_eq!(
            Some(holder.pid),
            PidLock::inspect(&path).unwrap().unwrap().pid(),
            "left to its holder"
        );
        other.kill().unwrap();
        other.wait().unwrap();
        // Released by the starter (it gave up): taken like a free lock.
        fs::remove_file(&path).unwrap();
        let lock = PidLock::take_over_from(&path, &starter, 0o600)
            .unwrap()
            .expect("a missing lock is ours to take");
        assert!(PidLock::inspect(&path).unwrap().unwrap().is_alive());
        drop(lock);
    }

    #[test]
    fn acquire_release_and_reacquire() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/worker.lock");
        let mut lock = PidLock::try_acquire(&path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert_eq!(std::process::id().to_string(), text.lines().next().unwrap());
        // Not re-entrant: a second handle in the same process is refused.
        match PidLock::try_acquire(&path) {
            Err(PidLockError::Held(held)) => {
                assert!(held.holder.is_alive());
                assert!(held.to_string().contains("already held by this process"));
            }
            other => panic!("{other:?}"),
        }
        lock.release().unwrap();
        lock.release().unwrap();
        assert!(!path.exists());
        drop(PidLock::try_acquire(&path).unwrap());
        assert!(!path.exists(), "drop releases");
        let leftovers: Vec<_> = fs::read_dir(path.parent().unwrap()).unwrap().collect();
        assert!(leftovers.is_empty(), "no temp files left: {leftovers:?}");
    }

    #[test]
    fn dead_and_reused_holders_are_stolen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        let lock = PidLock::try_acquire(&path).unwrap();
        drop(lock);

        // Our own pid with another start time: the recorded process is gone.
        let mut reused = ProcessIdentity::current();
        reused.start_time = reused.start_time.map(|s| s.wrapping_sub(1));
        fs::write(&path, reused.to_record()).unwrap();
        assert!(PidLock::inspect(&path).unwrap().unwrap().is_stale());
        let _lock = PidLock::try_acquire(&path).unwrap();
        assert!(PidLock::inspect(&path).unwrap().unwrap().is_alive());
    }

    #[test]
    fn init_and_group_pids_are_never_stolen_while_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.lock");
        fs::write(&path, "1\nstart=1\n").unwrap();
        let err = PidLock::try_acquire(&path).unwrap_err();
        assert_eq!("LOCK_HELD", err.code());
        assert!(err.to_string().contains("rm -f '"), "{err}");
        set_age(&path, Duration::from_secs(3600));
        assert!(
            PidLock::try_acquire(&path).is_err(),
            "pid 1 is held however old"
        );

        for content in ["0\n", "-1\n", "", "\u{0}garbage"] {
            fs::write(&path, content).unwrap();
            let holder = PidLock::inspect(&path).unwrap().unwrap();
            assert_eq!(None, holder.pid(), "{content:?}");
            assert!(!holder.is_stale());
            assert!(PidLock::try_acquire(&path).is_err());
            set_age(&path, STALE_WINDOW + Duration::from_secs(1));
            drop(PidLock::try_acquire(&path).expect("stealable after the window"));
        }
    }

    #[test]
    fn clear_stale_removes_only_stale_files_and_mode_is_applied() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.lock");
        fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        assert!(PidLock::clear_stale(&path).unwrap());
        assert!(!path.exists());
        assert!(!PidLock::clear_stale(&path).unwrap());
        let lock = PidLock::try_acquire_with_mode(&path, 0o600).unwrap();
        assert_eq!(
            0o600,
            crate::platform::mode_of(&fs::metadata(&path).unwrap())
        );
        assert!(
            !PidLock::clear_stale(&path).unwrap(),
            "a live holder's lock stays"
        );
        assert!(path.exists());
        drop(lock);
    }

    #[test]
    fn release_removes_only_the_file_this_handle_wrote() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.lock");
        let mut lock = PidLock::try_acquire(&path).unwrap();
        let written = fs::read_to_string(&path).unwrap();
        assert!(written.contains("\nlock="), "a token line: {written:?}");
        assert_eq!(
            std::process::id().to_string(),
            written.lines().next().unwrap(),
            "the pid stays alone on line 1 (upstream parses it)"
        );
        // The same file (inode) with other bytes: what a freed inode reused by a waiter's new
        // lock looks like to a late release. Not ours.
        let other = format!(
            "{}lock=00000000000000ff\n",
            ProcessIdentity::current().to_record()
        );
        File::options()
            .write(true)
            .truncate(true)
            .open(&path)
            .and_then(|mut f| std::io::Write::write_all(&mut f, other.as_bytes()))
            .unwrap();
        lock.release().unwrap();
        assert_eq!(other, fs::read_to_string(&path).unwrap(), "left in place");
        fs::remove_file(&path).unwrap();

        // Released once: a new holder's lock (another acquisition, even by this process) is
        // never removed by the old handle's second release or its drop.
        let mut first = PidLock::try_acquire(&path).unwrap();
        first.release().unwrap();
        let second = PidLock::try_acquire(&path).unwrap();
        first.release().unwrap();
        drop(first);
        assert!(path.exists(), "the second acquisition's file stays");
        drop(second);
        assert!(!path.exists());
    }

    #[test]
    fn a_waiter_never_loses_its_new_lock_to_the_old_holders_late_release() {
        // Many rounds of: a holder releases while waiters race for the lock; whatever the
        // filesystem does with the freed inode, exactly one waiter holds it afterwards and
        // nothing removes its file until it releases it.
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.lock");
        for _ in 0..200 {
            let mut holder = PidLock::try_acquire(&path).unwrap();
            let barrier = std::sync::Barrier::new(5);
            let owners: Vec<PidLock> = std::thread::scope(|s| {
                let waiters: Vec<_> = (0..4)
                    .map(|_| {
                        s.spawn(|| {
                            barrier.wait();
                            (0..50).find_map(|_| match PidLock::try_acquire(&path) {
                                Ok(lock) => Some(lock),
                                Err(_) => {
                                    std::thread::yield_now();
                                    None
                                }
                            })
                        })
                    })
                    .collect();
                barrier.wait();
                holder.release().unwrap();
                // The late second release (what the runner's exit did): must be a no-op.
                holder.release().unwrap();
                drop(holder);
                waiters
                    .into_iter()
                    .filter_map(|h| h.join().unwrap())
                    .collect()
            });
            assert!(owners.len() <= 1, "{} owners at once", owners.len());
            if let Some(owner) = owners.into_iter().next() {
                assert!(path.exists(), "the new owner's file is in place");
                drop(owner);
            }
            assert!(!path.exists());
        }
    }

    #[test]
    fn racing_stealers_yield_one_owner() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("race.lock");
        fs::write(&path, format!("{}\n", dead_pid())).unwrap();
        let barrier = std::sync::Barrier::new(16);
        let owners: Vec<PidLock> = std::thread::scope(|s| {
            let handles: Vec<_> = (0..16)
                .map(|_| {
                    s.spawn(|| {
                        barrier.wait();
                        PidLock::try_acquire(&path).ok()
                    })
                })
                .collect();
            handles
                .into_iter()
                .filter_map(|h| h.join().unwrap())
                .collect()
        });
        assert_eq!(1, owners.len());
    }

    #[tokio::test]
    async fn waiting_acquire_reports_attempts_and_can_be_cancelled() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.lock");
        fs::write(&path, "1\n").unwrap();
        let policy = RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(5),
            jitter: 0.0,
            ..RetryPolicy::default()
        };
        match PidLock::acquire(&path, &policy, &CancelToken::new()).await {
            Err(PidLockError::Held(held)) => {
                assert_eq!(3, held.attempts);
                assert!(held.to_string().contains("after 3 attempts"));
            }
            other => panic!("{other:?}"),
        }
        let cancel = CancelToken::new();
        cancel.cancel();
        let err = PidLock::acquire(&path, &policy, &cancel).await.unwrap_err();
        assert_eq!("ABORT_ERR", err.code());
    }
}
