//! The on-disk registry of managed serves, laid out exactly as `@qvac/ai-sdk-provider@0.7.0`
//! lays it out, so both implementations see (and share) each other's serves:
//!
//! ```text
//! ~/.qvac/managed-serves/            0700, ours (owner and mode are checked, never loosened)
//!   <key>.json                       the serve record, 0600, written tmp + fsync + rename
//!   <key>.lock                       spawn lock: created exclusively, holder pid on line 1
//!   <key>.consumers/<pid>.<8 hex>    one marker per live provider
//!   <key>.error                      last start failure: "CODE: message" + exit status + output tail
//!   <key>.log                        the runner's log
//!   <key>.health                     ours: the watchdog's last probe
//!   <key>.exits                      ours: how the fleet's last serves ended (crash-loop cap)
//!   <key>.start-output               ours: the serve's output lines while its start is in progress
//!   <key>.mem                        ours: the serve tree's resident memory (now, peak), a reservation
//!   <key>.pin                        ours: never evicted under a memory budget
//!   <key>.evict                      ours: a request to the runner to evict its idle serve
//!   memory-budget.lock               ours: one memory-budget decision at a time
//! ```
//!
//! A record is trusted only if it parses with the right types, names its own key, its baseURL
//! points at its host:port, and its serve and runner pids are alive (and, where the record has
//! them, have the recorded start times). Anything else is ignored, and deleted only by
//! [`Registry::sweep`] once every process it names is provably dead.
//!
//! One concept per module: [`dir`] (directory safety), [`record`] (records and trust),
//! [`start_failure`], [`consumers`] (markers), [`sweep`].

mod consumers;
mod dir;
mod memory;
mod record;
mod serve_state;
mod start_failure;
mod start_output;
mod stop;
mod sweep;

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

pub use consumers::ConsumerMarker;
pub use memory::{ServeMemory, MEMORY_CEILING_GRACE, MEMORY_SAMPLE_INTERVAL};
pub use record::{js_number_value, RecordState, ServeInfo, ServeRecord};
pub use serve_state::{now_ms, CrashLoop, ExitKind, ServeExit, ServeHealth};
pub use start_failure::StartFailure;
pub use start_output::{StartOutput, StartOutputFollower};
pub use stop::StopOutcome;
pub use sweep::{Displaced, SweepPlan, SweepReport, UnverifiedRecord};

use crate::pid_lock::{PidLock, PidLockError};
use crate::retry::{CancelToken, RetryPolicy};

#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("registry directory {} is unsafe: {reason}. Fix it with: {fix}", dir.display())]
    Unsafe {
        dir: PathBuf,
        reason: String,
        fix: String,
    },
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("cannot find the home directory: set $HOME")]
    NoHome,
    #[error(transparent)]
    Lock(#[from] PidLockError),
}

impl RegistryError {
    pub fn code(&self) -> &'static str {
        match self {
            RegistryError::Unsafe { .. } => "REGISTRY_UNSAFE",
            RegistryError::Io { .. } | RegistryError::NoHome => "REGISTRY_IO",
            RegistryError::Lock(e) => e.code(),
        }
    }
}

pub(crate) fn io_err<'a>(
    action: &'static str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> RegistryError + 'a {
    move |source| RegistryError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// The environment variable that moves the default registry.
pub const REGISTRY_ENV: &str = "QVAC_MANAGED_REGISTRY";

/// The registry directory. Every path it hands out is inside it.
#[derive(Clone, Debug)]
pub struct Registry {
    dir: PathBuf,
}

impl Registry {
    /// `$QVAC_MANAGED_REGISTRY` when set (one registry per machine where the home directory is
    /// shared between machines), else `$HOME/.qvac/managed-serves`, as upstream (Node's
    /// `os.homedir()`, which honours $HOME).
    pub fn default_location() -> Result<Registry, RegistryError> {
        if let Some(dir) = std::env::var_os(REGISTRY_ENV).filter(|d| !d.is_empty()) {
            // Relative to the working directory, as the TS layer resolves it.
            let dir = std::path::absolute(&dir).unwrap_or_else(|_| PathBuf::from(dir));
            return Ok(Registry::at(dir));
        }
        let home = std::env::var_os("HOME")
            .filter(|h| !h.is_empty())
            .map(PathBuf::from)
            .or_else(crate::platform::home_of_current_user)
            .ok_or(RegistryError::NoHome)?;
        Ok(Registry::at(home.join(".qvac").join("managed-serves")))
    }

    pub fn at(dir: impl Into<PathBuf>) -> Registry {
        Registry { dir: dir.into() }
    }

    /// `dir` when given, else [`default_location`](Self::default_location).
    pub fn at_or_default(dir: Option<impl Into<PathBuf>>) -> Result<Registry, RegistryError> {
        match dir {
            Some(dir) => Ok(Registry::at(dir)),
            None => Registry::default_location(),
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn record_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.json"))
    }

    pub fn lock_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.lock"))
    }

    pub fn consumers_dir(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.consumers"))
    }

    /// `<key>.error`: the last start failure (upstream's name for the file).
    pub fn start_failure_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.error"))
    }

    /// `<key>.log`: the runner's log.
    pub fn log_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.log"))
    }

    /// A private fleet's key (`reuse: false` or a pinned port): `<key>-priv-<pid>-<hex>`, used
    /// by one provider once, so nothing of it is worth keeping after its runner ends.
    pub fn is_private_key(key: &str) -> bool {
        key.contains("-priv-")
    }

    /// Removes a fleet's runner logs (`<key>.log`, `<key>.log.1`) and last start failure: what a
    /// private fleet's runner leaves when it ends (a failed start keeps them for its consumer).
    /// Its exits stay: they are in its shared key's ledger, which the crash-loop cap reads.
    pub fn remove_fleet_logs(&self, key: &str) {
        let log = self.log_path(key);
        for path in [
            log.with_extension("log.1"),
            log,
            self.start_failure_path(key),
            self.health_path(key),
            self.start_output_path(key),
            self.memory_path(key),
            self.evict_path(key),
        ] {
            let _ = remove_file_if_present(&path);
        }
    }

    /// The registry's directory guard (the flock a lock takeover holds): held for a short
    /// read-modify-replace that several processes may make at once. Waits while another holds it.
    pub(crate) fn guard(&self) -> Result<std::fs::File, RegistryError> {
        let file = crate::platform::dir_guard_file(&self.dir).map_err(io_err("open", &self.dir))?;
        fs4::FileExt::lock(&file).map_err(io_err("lock", &self.dir))?;
        Ok(file)
    }

    /// One attempt at the spawn lock (0600, interoperable with upstream's).
    pub fn try_spawn_lock(&self, key: &str) -> Result<PidLock, RegistryError> {
        self.ensure_dir()?;
        Ok(PidLock::try_acquire_with_mode(&self.lock_path(key), 0o600)?)
    }

    /// Waits for the spawn lock under `policy`. Does not create the directory: a runner whose
    /// registry was removed gets an error rather than a re-created directory.
    pub async fn spawn_lock(
        &self,
        key: &str,
        policy: &RetryPolicy,
        cancel: &CancelToken,
    ) -> Result<PidLock, RegistryError> {
        Ok(PidLock::acquire_with_mode(&self.lock_path(key), 0o600, policy, cancel).await?)
    }

    /// Fleet keys that have a record file, trusted or not.
    pub(crate) fn record_keys(&self) -> Result<Vec<String>, RegistryError> {
        self.keys_with_suffix(".json")
    }

    /// Fleet keys that have a `<key><suffix>` file, sorted.
    pub(crate) fn keys_with_suffix(&self, suffix: &str) -> Result<Vec<String>, RegistryError> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("list", &self.dir)(e)),
        };
        let mut keys: Vec<String> = entries
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                fleet_key_of(&name, &[suffix]).map(str::to_owned)
            })
            .collect();
        keys.sort();
        Ok(keys)
    }
}

/// The fleet key of a registry file named `<key><suffix>` for one of `suffixes`. Fleet keys have
/// no dots, so `<key>.<pid>.<hex>.runner-params.json` and the like never count.
pub fn fleet_key_of<'a>(name: &'a str, suffixes: &[&str]) -> Option<&'a str> {
    suffixes
        .iter()
        .find_map(|suffix| name.strip_suffix(suffix))
        .filter(|key| !key.is_empty() && !key.contains('.'))
}

pub(crate) fn remove_file_if_present(path: &Path) -> Result<(), RegistryError> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err("remove", path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;
    use std::path::PathBuf;

    fn registry() -> (tempfile::TempDir, Registry) {
        let home = tempfile::tempdir().unwrap();
        let reg = Registry::at(home.path().join(".qvac/managed-serves"));
        (home, reg)
    }

    fn dead_pid() -> i32 {
        let mut child = std::process::Command::new("true").spawn().unwrap();
        let pid = child.id() as i32;
        child.wait().unwrap();
        pid
    }

    fn record(key: &str, serve_pid: i32, runner_pid: i32) -> ServeRecord {
        ServeRecord {
            fleet_key: key.into(),
            api_key: "k".repeat(43),
            serve_pid,
            runner_pid,
            port: 41000,
            host: "127.0.0.1".into(),
            base_url: "http://127.0.0.1:41000/v1".into(),
            config_path: "/nonexistent/qvac.config.json".into(),
            started_at: "2026-11-24T00:00:00.000Z".into(),
            idle_timeout_ms: 300000.0,
            serve_start_time: None,
            runner_start_time: None,
            boot_id: None,
            machine_id: None,
            models: Some(vec!["qwen3.5-9b".into()]),
        }
    }

    #[tokio::test]
    async fn another_machines_record_is_never_swept_or_replaced() {
        let (_home, reg) = registry();
        // Its pids are dead here; on its own machine they may well run.
        let mut foreign = record("2222222222222222", dead_pid(), dead_pid());
        foreign.machine_id = Some("another-machine".into());
        reg.write_record(&foreign).unwrap();
        let report = reg.sweep().await.unwrap();
        assert!(report.removed.is_empty(), "{report:?}");
        assert_eq!(
            vec![reg.record_path(&foreign.fleet_key)],
            report.kept_untrusted
        );
        assert_eq!(
            sweep::Displaced::OtherMachine("another-machine".into()),
            reg.displace_record(&foreign.fleet_key, &foreign, std::time::Duration::ZERO)
                .await
        );
        assert!(reg.record_path(&foreign.fleet_key).exists());
        // A spawn lock held by a process of another machine is never taken over.
        let mut holder = crate::process::ProcessIdentity::pid_only(dead_pid());
        holder.machine = Some("another-machine".into());
        fs::write(reg.lock_path("k"), holder.to_record()).unwrap();
        let err = reg.try_spawn_lock("k").unwrap_err();
        assert!(err.to_string().contains("on another machine"), "{err}");
    }

    #[test]
    fn dir_is_created_0700_and_unsafe_dirs_are_refused() {
        let (_home, reg) = registry();
        reg.ensure_dir().unwrap();
        assert_eq!(
            0o700,
            crate::platform::mode_of(&fs::metadata(reg.dir()).unwrap())
        );
        crate::platform::set_mode(reg.dir(), 0o755).unwrap();
        let err = reg.ensure_dir().unwrap_err();
        assert_eq!("REGISTRY_UNSAFE", err.code());
        assert!(err.to_string().contains("chmod 700"), "{err}");
        assert_eq!(
            0o755,
            crate::platform::mode_of(&fs::metadata(reg.dir()).unwrap()),
            "never loosened or fixed silently"
        );
    }

    #[test]
    fn records_round_trip_and_are_trusted_only_when_sound() {
        let (_home, reg) = registry();
        let me = std::process::id() as i32;
        let rec = record("aaaaaaaaaaaaaaaa", me, me);
        reg.write_record(&rec).unwrap();
        let path = reg.record_path("aaaaaaaaaaaaaaaa");
        assert!(fs::read_to_string(&path)
            .unwrap()
            .contains("\"idleTimeoutMs\": 300000,"));
        assert_eq!(
            0o600,
            crate::platform::mode_of(&fs::metadata(&path).unwrap())
        );
        assert_eq!(
            RecordState::Trusted(Box::new(rec.clone())),
            reg.read_record("aaaaaaaaaaaaaaaa").unwrap()
        );

        let untrusted = |r: ServeRecord| {
            reg.write_record(&r).unwrap();
            matches!(
                reg.read_record(&r.fleet_key).unwrap(),
                RecordState::Untrusted(..)
            )
        };
        assert!(untrusted(ServeRecord {
            base_url: "http://10.0.0.1:41000/v1".into(),
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            serve_pid: dead_pid(),
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            runner_pid: 1,
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            api_key: String::new(),
            ..rec.clone()
        }));
        assert!(untrusted(ServeRecord {
            serve_start_time: Some(1),
            ..rec.clone()
        }));

        fs::write(
            &path,
            "{\"fleetKey\": \"aaaaaaaaaaaaaaaa\", \"servePid\": \"12\"",
        )
        .unwrap();
        assert!(matches!(
            reg.read_record("aaaaaaaaaaaaaaaa").unwrap(),
            RecordState::Corrupt(_)
        ));
        // Stored under another key: tampered.
        fs::write(
            reg.record_path("bbbbbbbbbbbbbbbb"),
            serde_json::to_string(&rec).unwrap(),
        )
        .unwrap();
        assert!(matches!(
            reg.read_record("bbbbbbbbbbbbbbbb").unwrap(),
            RecordState::Untrusted(..)
        ));
    }

    #[test]
    fn consumers_are_listed_live_and_dead_ones_pruned() {
        let (_home, reg) = registry();
        let key = "cccccccccccccccc";
        let mut mine = reg.add_consumer(key).unwrap();
        assert!(mine.id().starts_with(&format!("{}.", std::process::id())));
        let dir = reg.consumers_dir(key);
        assert_eq!(
            0o700,
            crate::platform::mode_of(&fs::metadata(&dir).unwrap())
        );
        fs::write(dir.join(format!("{}.deadbeef", dead_pid())), "").unwrap();
        fs::write(dir.join("garbage"), "").unwrap();
        assert_eq!(
            vec![std::process::id() as i32],
            reg.live_consumers(key, false).unwrap()
        );
        assert_eq!(3, fs::read_dir(&dir).unwrap().count());
        reg.live_consumers(key, true).unwrap();
        assert_eq!(1, fs::read_dir(&dir).unwrap().count());
        mine.remove();
        mine.remove();
        assert!(reg.live_consumers(key, false).unwrap().is_empty());
    }

    #[test]
    fn markers_are_placed_while_the_empty_consumers_dir_is_being_removed() {
        // A sweep (every slow-path attach runs one) or a failed start removes an empty consumers
        // dir; a consumer that has just made that dir must make it again instead of failing.
        let (_home, reg) = registry();
        reg.ensure_dir().unwrap();
        let key = "ffffffffffffffff";
        let dir = reg.consumers_dir(key);
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let remover = {
            let (dir, stop) = (dir.clone(), stop.clone());
            std::thread::spawn(move || {
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let _ = fs::remove_dir(&dir);
                    std::thread::yield_now();
                }
            })
        };
        for _ in 0..3000 {
            let mut marker = reg
                .add_consumer(key)
                .expect("a marker despite concurrent removals");
            marker.remove();
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        remover.join().unwrap();
    }

    #[test]
    fn error_files_round_trip_and_read_upstream_text() {
        let (_home, reg) = registry();
        let failure = StartFailure {
            code: "SERVE_EXITED".into(),
            message: "qvac serve exited before becoming healthy (code=1, signal=null).".into(),
            output_tail: "boom\nline 2".into(),
            exit_code: Some(1),
            signal: None,
            attempt: Some("4242.0badf00d".into()),
        };
        reg.write_start_failure("k", &failure).unwrap();
        assert_eq!(Some(failure.clone()), reg.read_start_failure("k").unwrap());
        let signalled = StartFailure {
            exit_code: None,
            signal: Some("SIGKILL".into()),
            output_tail: String::new(),
            ..failure.clone()
        };
        reg.write_start_failure("s", &signalled).unwrap();
        assert_eq!(Some(signalled), reg.read_start_failure("s").unwrap());
        fs::write(
            reg.start_failure_path("u"),
            "qvac serve did not become healthy: x\n",
        )
        .unwrap();
        let upstream = reg.read_start_failure("u").unwrap().unwrap();
        assert_eq!("SERVE_SPAWN_FAILED", upstream.code);
        assert_eq!("qvac serve did not become healthy: x", upstream.message);
        assert_eq!((None, None), (upstream.exit_code, upstream.signal));
        // Upstream's text names no attempt: the file's identity stands in, and a rewrite of the
        // same text still reads as another failure.
        let first = upstream.attempt.clone().expect("an attempt from the file");
        assert!(first.starts_with("file:"));
        std::thread::sleep(std::time::Duration::from_millis(20));
        let tmp = reg.dir().join("u.rewrite");
        fs::write(&tmp, "qvac serve did not become healthy: x\n").unwrap();
        fs::rename(&tmp, reg.start_failure_path("u")).unwrap();
        let again = reg.read_start_failure("u").unwrap().unwrap();
        assert_ne!(Some(first), again.attempt);
        reg.clear_start_failure("k").unwrap();
        assert_eq!(None, reg.read_start_failure("k").unwrap());
    }

    #[tokio::test]
    async fn sweep_removes_only_what_is_provably_dead() {
        let (_home, reg) = registry();
        let me = std::process::id() as i32;
        let live = record("1111111111111111", me, me);
        reg.write_record(&live).unwrap();
        let _marker = reg.add_consumer(&live.fleet_key).unwrap();
        let dead = record("2222222222222222", dead_pid(), dead_pid());
        reg.write_record(&dead).unwrap();
        let half = record("3333333333333333", dead_pid(), me); // runner alive: it cleans up
        reg.write_record(&half).unwrap();
        fs::write(reg.record_path("4444444444444444"), "not json").unwrap();
        fs::write(
            reg.lock_path("5555555555555555"),
            format!("{}\n", dead_pid()),
        )
        .unwrap();
        fs::write(reg.lock_path("6666666666666666"), format!("{me}\n")).unwrap();
        let stale_tmp = reg
            .dir()
            .join(format!("7777777777777777.json.{}.123.tmp", dead_pid()));
        fs::write(&stale_tmp, "{}").unwrap();
        // A marker staging directory left by a consumer that died while attaching.
        let stale_staging = reg.dir().join(format!(
            "7777777777777777.consumers.{}.00000001.tmp",
            dead_pid()
        ));
        fs::create_dir(&stale_staging).unwrap();
        fs::write(stale_staging.join("1.00000001"), "").unwrap();
        fs::create_dir(reg.consumers_dir("8888888888888888")).unwrap();
        fs::write(
            reg.consumers_dir("8888888888888888")
                .join(format!("{}.00000000", dead_pid())),
            "",
        )
        .unwrap();

        let planned = reg.sweep_dry_run().unwrap();
        assert!(
            reg.record_path(&dead.fleet_key).exists(),
            "a dry run removes nothing"
        );
        assert!(reg.lock_path("5555555555555555").exists());
        let report = reg.sweep().await.unwrap();
        let sorted = |mut v: Vec<PathBuf>| {
            v.sort();
            v
        };
        assert_eq!(
            sorted(planned.removed.clone()),
            sorted(report.removed.clone()),
            "the dry run lists exactly what is removed"
        );
        assert!(reg.record_path(&live.fleet_key).exists());
        assert_eq!(1, reg.live_consumers(&live.fleet_key, false).unwrap().len());
        assert!(!reg.record_path(&dead.fleet_key).exists());
        assert!(reg.record_path(&half.fleet_key).exists());
        assert!(
            reg.record_path("4444444444444444").exists(),
            "corrupt records are reported, not removed"
        );
        assert_eq!(vec![reg.record_path("4444444444444444")], report.corrupt);
        assert!(!reg.lock_path("5555555555555555").exists());
        assert!(reg.lock_path("6666666666666666").exists());
        assert!(!stale_tmp.exists());
        assert!(!stale_staging.exists());
        assert!(!reg.consumers_dir("8888888888888888").exists());
        assert!(report.removed.contains(&reg.record_path(&dead.fleet_key)));
    }

    #[test]
    fn temp_config_dirs_outside_tmp_are_never_ours() {
        assert!(record::owned_temp_config_dir("/tmp/qvac-managed-abc/qvac.config.json").is_some());
        assert!(
            record::owned_temp_config_dir("/home/me/qvac-managed-abc/qvac.config.json").is_none()
        );
        assert!(record::owned_temp_config_dir("/tmp/other/qvac.config.json").is_none());
        assert!(record::owned_temp_config_dir("/qvac.config.json").is_none());
    }
}
