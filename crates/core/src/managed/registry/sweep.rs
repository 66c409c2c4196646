//! Sweeping: removing what belongs to provably dead serves and consumers, and stopping orphans,
//! and nothing else. [`Registry::sweep_plan`] looks and decides (a dry run is the plan);
//! [`Registry::apply_sweep`] acts on a plan, re-checking each record just before removing it,
//! since a new runner may have published in between.
//!
//! Orphans are handled as upstream 0.7.0 handles them, and a record that cannot be proven never
//! blocks its fleet ([`Registry::displace_record`]): a record whose runner is gone while its
//! serve pid runs is judged by what proves the serve ours — its
//! command line naming the record's config and port, its recorded start time, or an answer on
//! its own URL with its own key (keyless records anonymously). A serve proven ours is stopped
//! (the pid, and its group when it leads one) and its record and temp config go. Anything else
//! is never signalled: its record is moved aside to `<key>.<pid>.unverified` (listed by `ps`,
//! `gc` and `doctor`, removed by a sweep once its processes are gone) and the fleet starts
//! afresh. Consumer markers are kept, so a respawned serve sees the consumers still alive.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::record::{judge_record, owned_temp_config_dir};
use super::{
    fleet_key_of, io_err, remove_file_if_present, RecordState, Registry, RegistryError,
    ServeRecord, StartFailure,
};
use crate::pid_lock::PidLock;
use crate::private_file::temp_writer_pid;
use crate::process::Liveness;
use crate::process::ProcessIdentity;

/// Upstream's window after which a runner-params handoff file is surely abandoned
/// (twice the default start timeout).
const RUNNER_PARAMS_STALE: Duration = Duration::from_secs(360);

/// One thing a sweep removes.
#[derive(Clone, Debug, PartialEq)]
pub enum Removal {
    /// `<key>.json` whose serve and runner are both provably dead, with the temp config
    /// directory it names (when that is one a runner created).
    DeadRecord {
        key: String,
        path: PathBuf,
        config_dir: Option<PathBuf>,
    },
    /// A consumer marker of a dead process.
    DeadMarker(PathBuf),
    /// The consumers directory of a fleet with no record and no live consumer.
    EmptyConsumersDir(PathBuf),
    /// A spawn lock whose holder is provably dead.
    StaleLock(PathBuf),
    /// A temp file (or marker staging directory) whose writer is dead, an abandoned
    /// runner-params file, or a moved-aside record whose processes are gone.
    Leftover(PathBuf),
}

impl Removal {
    /// Every path this removal takes away.
    fn paths(&self) -> Vec<PathBuf> {
        match self {
            Removal::DeadRecord {
                path, config_dir, ..
            } => std::iter::once(path.clone())
                .chain(config_dir.clone())
                .collect(),
            Removal::DeadMarker(p)
            | Removal::EmptyConsumersDir(p)
            | Removal::StaleLock(p)
            | Removal::Leftover(p) => {
                vec![p.clone()]
            }
        }
    }
}

/// A record whose runner is gone or not provably its runner, while its serve pid still runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Orphan {
    pub key: String,
    pub path: PathBuf,
    pub record: ServeRecord,
}

/// How long an orphaned serve gets between SIGTERM and SIGKILL.
const ORPHAN_GRACE: Duration = Duration::from_secs(2);
/// How long an orphan's health probe may take.
const ORPHAN_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// What a sweep would do, decided without removing anything.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepPlan {
    pub removals: Vec<Removal>,
    /// Serves to prove ours and stop, or to move the record of aside.
    pub orphans: Vec<Orphan>,
    /// Records not trusted but owned by a live runner of ours (which restores them).
    pub kept_untrusted: Vec<PathBuf>,
    /// Records that do not parse; never removed (nothing proves their processes dead).
    pub corrupt: Vec<PathBuf>,
}

/// What a sweep did (or, for a dry run, would do) and saw.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct SweepReport {
    /// Files and directories removed.
    pub removed: Vec<PathBuf>,
    /// Records of orphaned serves that answered as ours and were stopped (for a dry run: the
    /// orphans that would be probed).
    pub stopped_orphans: Vec<PathBuf>,
    pub kept_untrusted: Vec<PathBuf>,
    pub corrupt: Vec<PathBuf>,
    /// Records moved aside by this sweep (their serve runs but could not be proven ours).
    pub moved_aside: Vec<PathBuf>,
}

/// What became of a record that stood in a new serve's way.
#[derive(Clone, Debug, PartialEq)]
pub enum Displaced {
    /// Nothing it names runs any more, or only a stranger at its runner pid: it may be replaced.
    Gone,
    /// Its serve was proven ours and is stopped.
    Stopped,
    /// Its serve runs but could not be proven ours (or would not stop): never signalled, and
    /// the record moved here so the fleet can start afresh.
    MovedAside(PathBuf),
    /// Its runner is alive and provably its runner: that runner owns (and restores) it.
    LiveRunner,
    /// Written on another machine sharing this registry: nothing about it can be checked here,
    /// so it is left alone (the fix is one registry per machine).
    OtherMachine(String),
}

/// A record moved aside (`<key>.<pid>.unverified`), as `ps`, `gc` and `doctor` list it.
#[derive(Clone, Debug, PartialEq)]
pub struct UnverifiedRecord {
    pub path: PathBuf,
    pub fleet_key: String,
    pub serve_pid: i32,
    /// The serve pid still names a running process (which was never signalled).
    pub serve_alive: bool,
}

impl UnverifiedRecord {
    /// What a user runs to remove it, once they have looked at the pid.
    pub fn removal_hint(&self) -> String {
        format!("rm {}", crate::pid_lock::shell_quote(&self.path))
    }
}

impl SweepPlan {
    /// The plan as a report: what a dry run shows.
    pub fn to_report(&self) -> SweepReport {
        SweepReport {
            removed: self.removals.iter().flat_map(Removal::paths).collect(),
            stopped_orphans: self.orphans.iter().map(|o| o.path.clone()).collect(),
            kept_untrusted: self.kept_untrusted.clone(),
            corrupt: self.corrupt.clone(),
            moved_aside: vec![],
        }
    }
}

impl Registry {
    /// Removes what belongs to provably dead serves and consumers, and nothing else: records
    /// whose serve and runner are both provably dead (with their temp config dir), dead
    /// consumers' markers, empty consumer dirs of fleets with no record, spawn locks of dead
    /// holders, temp files of dead writers, and abandoned runner-params files.
    pub async fn sweep(&self) -> Result<SweepReport, RegistryError> {
        let plan = self.sweep_plan()?;
        let mut report = self.apply_sweep(&plan)?;
        for orphan in &plan.orphans {
            match self
                .displace_record(&orphan.key, &orphan.record, ORPHAN_GRACE)
                .await
            {
                Displaced::Stopped => {
                    report.stopped_orphans.push(orphan.path.clone());
                    report.removed.extend(self.remove_stopped(orphan));
                }
                Displaced::MovedAside(to) => report.moved_aside.push(to),
                Displaced::LiveRunner | Displaced::OtherMachine(_) => {
                    report.kept_untrusted.push(orphan.path.clone())
                }
                Displaced::Gone => {}
            }
        }
        Ok(report)
    }

    /// Clears the way for a new serve of `key` past `record` (not trusted, read from
    /// `<key>.json`), as the module doc says: a serve proven ours is stopped, anything else is
    /// never signalled and its record is moved aside.
    pub async fn displace_record(
        &self,
        key: &str,
        record: &ServeRecord,
        grace: Duration,
    ) -> Displaced {
        if let Some(machine) = record.other_machine() {
            return Displaced::OtherMachine(machine.to_owned());
        }
        if record.is_gone() {
            return Displaced::Gone;
        }
        // A runner about to publish may have the pid an older record names (reused): that
        // record's runner is not us, and is gone.
        let runner_elsewhere = record.runner_pid != std::process::id() as i32;
        if runner_elsewhere && record.runner_is_proven() {
            return Displaced::LiveRunner;
        }
        let serve = record.serve_identity();
        if serve.liveness() != Liveness::Alive {
            return Displaced::Gone;
        }
        // A live process at the runner pid that is not proven the runner may still be it (a
        // record without start times, an upstream runner): its serve is possibly in use, so it
        // is never signalled, only its record moved aside.
        let runner_possibly_live =
            runner_elsewhere && record.runner_identity().liveness() == Liveness::Alive;
        if !runner_possibly_live && serve_proven_ours(key, record).await {
            tracing::warn!(fleet = %key, serve = record.serve_pid, "stopping an orphaned serve (its runner is gone)");
            if crate::process::stop_process(&serve, grace).await {
                return Displaced::Stopped;
            }
            tracing::error!(fleet = %key, serve = record.serve_pid, "the orphaned serve did not stop; moving its record aside");
        }
        match self.move_aside(key, record) {
            Some(to) => {
                tracing::warn!(fleet = %key, serve = record.serve_pid, to = %to.display(), "a record names a running serve that cannot be proven ours; moved it aside and left the process alone");
                Displaced::MovedAside(to)
            }
            // Gone or replaced meanwhile: nothing stands in the way any more.
            None => Displaced::Gone,
        }
    }

    /// Why a start of `key` cannot go on: its record belongs to another machine sharing this
    /// registry, and what to do about it.
    pub fn shared_with_other_machine(&self, key: &str, machine: &str) -> StartFailure {
        StartFailure {
            code: "SERVE_SPAWN_FAILED".into(),
            message: format!(
                "{} belongs to a serve on another machine (machine id {machine}) that shares this registry directory, as a network home does; it cannot be checked or replaced from here. Give each machine its own registry: set QVAC_MANAGED_REGISTRY (or the registryDir option) to a local directory.",
                self.record_path(key).display()
            ),
            ..StartFailure::default()
        }
    }

    /// Renames `<key>.json` to `<key>.<pid>.unverified` if it holds `record`. The rename comes
    /// first and the check after (a runner may publish in between): a record that turns out not
    /// to be the one judged is put back, unless a newer one took its place (its runner restores
    /// its own record either way).
    fn move_aside(&self, key: &str, record: &ServeRecord) -> Option<PathBuf> {
        let from = self.record_path(key);
        if !holds_record(&from, record) {
            return None;
        }
        let to = self.unverified_path(key, record.serve_pid);
        fs::rename(&from, &to).ok()?;
        if holds_record(&to, record) {
            return Some(to);
        }
        if crate::platform::rename_noreplace(&to, &from).is_err() {
            let _ = fs::remove_file(&to);
        }
        None
    }

    fn unverified_path(&self, key: &str, serve_pid: i32) -> PathBuf {
        self.dir()
            .join(format!("{key}.{serve_pid}{UNVERIFIED_SUFFIX}"))
    }

    /// Records moved aside by [`displace_record`](Self::displace_record), oldest first by name.
    pub fn unverified_records(&self) -> Result<Vec<UnverifiedRecord>, RegistryError> {
        let entries = match fs::read_dir(self.dir()) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(vec![]),
            Err(e) => return Err(io_err("list", self.dir())(e)),
        };
        let mut found: Vec<UnverifiedRecord> = entries
            .flatten()
            .filter_map(|entry| {
                let name = entry.file_name().to_str()?.to_owned();
                let stem = name.strip_suffix(UNVERIFIED_SUFFIX)?;
                let (key, pid) = stem.rsplit_once('.')?;
                let serve_pid: i32 = pid.parse().ok()?;
                Some(UnverifiedRecord {
                    path: entry.path(),
                    fleet_key: key.to_owned(),
                    serve_pid,
                    serve_alive: ServeRecord::read_file(&entry.path())
                        .is_some_and(|r| !r.is_gone()),
                })
            })
            .collect();
        found.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(found)
    }

    /// After an orphan was stopped: its record (if still the one judged) and temp config go.
    fn remove_stopped(&self, orphan: &Orphan) -> Vec<PathBuf> {
        let mut removed = vec![];
        if holds_record(&orphan.path, &orphan.record) && fs::remove_file(&orphan.path).is_ok() {
            removed.push(orphan.path.clone());
        }
        if let Some(dir) = owned_temp_config_dir(&orphan.record.config_path) {
            if fs::remove_dir_all(&dir).is_ok() {
                removed.push(dir);
            }
        }
        removed
    }

    /// What [`sweep`](Self::sweep) would remove, removing nothing.
    pub fn sweep_dry_run(&self) -> Result<SweepReport, RegistryError> {
        Ok(self.sweep_plan()?.to_report())
    }

    pub fn sweep_plan(&self) -> Result<SweepPlan, RegistryError> {
        let mut plan = SweepPlan::default();
        if !self.dir().exists() {
            return Ok(plan);
        }
        self.check_dir()?;
        for key in self.record_keys()? {
            let path = self.record_path(&key);
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            match judge_record(&key, &text) {
                RecordState::Missing | RecordState::Trusted(_) => {}
                RecordState::Corrupt(_) => plan.corrupt.push(path),
                RecordState::Untrusted(record, _)
                    if record.is_gone() && record.fleet_key == key =>
                {
                    let config_dir =
                        owned_temp_config_dir(&record.config_path).filter(|d| d.exists());
                    plan.removals.push(Removal::DeadRecord {
                        key,
                        path,
                        config_dir,
                    });
                }
                RecordState::Untrusted(record, _)
                    if record.runner_is_proven() || record.other_machine().is_some() =>
                {
                    plan.kept_untrusted.push(path)
                }
                RecordState::Untrusted(record, _)
                    if record.serve_identity().liveness() == Liveness::Alive =>
                {
                    plan.orphans.push(Orphan {
                        key,
                        path,
                        record: *record,
                    });
                }
                // Only a stranger at its runner pid: replaced when its fleet next starts.
                RecordState::Untrusted(..) => {}
            }
        }
        let dead_records: Vec<&str> = plan
            .removals
            .iter()
            .filter_map(|r| match r {
                Removal::DeadRecord { key, .. } => Some(key.as_str()),
                _ => None,
            })
            .collect();
        // A record that stays after this sweep: its fleet still has (or had) a runner.
        let has_record = |key: &str| self.record_path(key).exists() && !dead_records.contains(&key);
        let mut rest = Vec::new();
        for entry in fs::read_dir(self.dir())
            .map_err(io_err("list", self.dir()))?
            .flatten()
        {
            let name = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path();
            if let Some(key) = name.strip_suffix(".consumers") {
                let markers = self.markers(key)?;
                rest.extend(markers.dead.into_iter().map(Removal::DeadMarker));
                if !has_record(key) && markers.live.is_empty() {
                    rest.push(Removal::EmptyConsumersDir(path));
                }
            } else if name.ends_with(".lock") {
                if PidLock::inspect(&path)?.is_some_and(|h| h.is_stale()) {
                    rest.push(Removal::StaleLock(path));
                }
            } else if let Some(key) =
                fleet_key_of(&name, &[".health", ".start-output", ".mem", ".evict"])
            {
                // A runner's own files (and a start's memory reservation), left by a runner or
                // consumer that was killed: no record (or only a dead one) and no spawn lock held
                // by a live process means no runner and no start. (`<key>.pin` is the user's.)
                let lock = self.lock_path(key);
                let lock_held = lock.exists()
                    && !PidLock::inspect(&lock)?.is_some_and(|holder| holder.is_stale());
                if !has_record(key) && !lock_held {
                    rest.push(Removal::Leftover(path));
                }
            } else if is_leftover(&name, &path) {
                rest.push(Removal::Leftover(path));
            }
        }
        plan.removals.extend(rest);
        Ok(plan)
    }

    /// Carries out `plan`. A record is re-judged first and kept if it no longer is provably dead;
    /// a lock is removed only if it is still stale; a consumers directory only if it is empty.
    pub fn apply_sweep(&self, plan: &SweepPlan) -> Result<SweepReport, RegistryError> {
        let mut report = SweepReport {
            removed: vec![],
            stopped_orphans: vec![],
            kept_untrusted: plan.kept_untrusted.clone(),
            corrupt: plan.corrupt.clone(),
            moved_aside: vec![],
        };
        for removal in &plan.removals {
            match removal {
                Removal::DeadRecord {
                    key,
                    path,
                    config_dir,
                } => {
                    let still_dead = fs::read_to_string(path).is_ok_and(|text| {
                        matches!(judge_record(key, &text), RecordState::Untrusted(r, _) if r.is_gone())
                    });
                    if !still_dead {
                        continue;
                    }
                    remove_file_if_present(path)?;
                    report.removed.push(path.clone());
                    if let Some(dir) = config_dir {
                        if fs::remove_dir_all(dir).is_ok() {
                            report.removed.push(dir.clone());
                        }
                    }
                }
                Removal::DeadMarker(path) => {
                    if fs::remove_file(path).is_ok() {
                        report.removed.push(path.clone());
                    }
                }
                Removal::Leftover(path) => {
                    // A dead writer's temp file, or its marker staging directory.
                    if fs::remove_file(path)
                        .or_else(|_| fs::remove_dir_all(path))
                        .is_ok()
                    {
                        report.removed.push(path.clone());
                    }
                }
                Removal::EmptyConsumersDir(path) => {
                    if fs::remove_dir(path).is_ok() {
                        report.removed.push(path.clone());
                    }
                }
                Removal::StaleLock(path) => {
                    if PidLock::clear_stale(path)? {
                        report.removed.push(path.clone());
                    }
                }
            }
        }
        Ok(report)
    }
}

/// A file no live process needs: a moved-aside record whose processes are gone, a temp file (or
/// marker staging directory) of a dead writer, or an abandoned runner-params file.
fn is_leftover(name: &str, path: &std::path::Path) -> bool {
    if name.ends_with(UNVERIFIED_SUFFIX) {
        // A file that does not parse names nothing known: removed.
        return ServeRecord::read_file(path).is_none_or(|record| record.is_gone());
    }
    temp_writer_pid(name)
        .is_some_and(|pid| pid > 1 && ProcessIdentity::pid_only(pid).liveness().is_provably_dead())
        || (name.ends_with(".runner-params.json") && older_than(path, RUNNER_PARAMS_STALE))
}

/// Moved-aside records end in this; not `.json`, so no reader of records (ours or upstream's)
/// ever takes one for a live serve.
const UNVERIFIED_SUFFIX: &str = ".unverified";

/// `path` still holds `record` (same serve and runner): nobody replaced it since it was judged.
fn holds_record(path: &std::path::Path, record: &ServeRecord) -> bool {
    ServeRecord::read_file(path)
        .is_some_and(|now| now.serve_pid == record.serve_pid && now.runner_pid == record.runner_pid)
}

/// What proves a running serve pid is the serve `record` names, not a stranger that reuses
/// the pid: its command line (config path and port), its recorded start time, or — the pid
/// listening on the record's port — an answer on its own URL with its own key (keyless records
/// anonymously), as upstream probes.
async fn serve_proven_ours(key: &str, record: &ServeRecord) -> bool {
    if record.serve_cmdline_proven() || record.serve_start_time.is_some() {
        return true;
    }
    if record.check_shape_keyless(key).is_err() {
        // Its URL may point anywhere: never probed.
        return false;
    }
    // An answer proves what listens on the port, not who has the pid: the listener must be the
    // recorded pid (or in the group it leads), or a stranger that reuses the pid would be stopped.
    let listener = crate::platform::tcp_listener_pid(record.port);
    let listens = listener.is_some_and(|pid| {
        pid == record.serve_pid || crate::platform::process_group_of(pid) == Some(record.serve_pid)
    });
    if !listens {
        return false;
    }
    let api_key = (!record.api_key.is_empty()).then_some(record.api_key.as_str());
    let url = format!("{}/models", record.base_url);
    crate::http::probe(&url, api_key, ORPHAN_PROBE_TIMEOUT)
        .await
        .is_ok_and(|status| (200..300).contains(&status))
}

fn older_than(path: &std::path::Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|mtime| SystemTime::now().duration_since(mtime).ok())
        .is_some_and(|elapsed| elapsed > age)
}
