//! Sweeping: removing what belongs to provably dead serves and consumers, and stopping orphans,
//! and nothing else. [`Registry::sweep_plan`] looks and decides (a dry run is the plan);
//! [`Registry::apply_sweep`] acts on a plan, re-checking each record just before removing it,
//! since a new runner may have published in between.
//!
//! Orphans are handled as upstream 0.7.0 handles them: a record whose runner is provably dead
//! while its serve still runs is probed on its own URL with its own key (keyless records
//! anonymously); a serve that answers as ours is stopped (its group: SIGTERM, SIGKILL after a
//! grace) and its record and temp config go. One that does not answer is left alone, record kept.
//! Consumer markers are kept, so a respawned serve sees the consumers still alive.

use std::fs;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use super::record::{judge_record, owned_temp_config_dir};
use super::{io_err, remove_file_if_present, RecordState, Registry, RegistryError, ServeRecord};
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
    /// A temp file (or marker staging directory) whose writer is dead, or an abandoned
    /// runner-params file.
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

/// A record whose runner is provably dead while its serve still runs.
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
    /// Serves to probe and, if they answer as ours, stop.
    pub orphans: Vec<Orphan>,
    /// Records kept because a process they name may be alive but the record is not trusted.
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
}

impl SweepPlan {
    /// The plan as a report: what a dry run shows.
    pub fn to_report(&self) -> SweepReport {
        SweepReport {
            removed: self.removals.iter().flat_map(Removal::paths).collect(),
            stopped_orphans: self.orphans.iter().map(|o| o.path.clone()).collect(),
            kept_untrusted: self.kept_untrusted.clone(),
            corrupt: self.corrupt.clone(),
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
            match self.stop_orphan(orphan).await {
                Some(removed) => {
                    report.stopped_orphans.push(orphan.path.clone());
                    report.removed.extend(removed);
                }
                None => report.kept_untrusted.push(orphan.path.clone()),
            }
        }
        Ok(report)
    }

    /// Probes one orphan and, if it answers as ours, stops its group and removes its record and
    /// temp config; the paths removed. `None` when it was left alone.
    async fn stop_orphan(&self, orphan: &Orphan) -> Option<Vec<PathBuf>> {
        let record = &orphan.record;
        let key = (!record.api_key.is_empty()).then_some(record.api_key.as_str());
        let url = format!("{}/models", record.base_url);
        let status = crate::http::probe(&url, key, ORPHAN_PROBE_TIMEOUT)
            .await
            .ok()?;
        if !(200..300).contains(&status) {
            return None;
        }
        tracing::warn!(fleet = %orphan.key, serve = record.serve_pid, "stopping an orphaned serve (its runner is gone)");
        // A detached serve leads its own process group.
        crate::process::stop_group(record.serve_pid, ORPHAN_GRACE).await;
        // Only the record we judged goes: a runner may have published a new one meanwhile.
        let still_same = fs::read_to_string(&orphan.path)
            .ok()
            .and_then(|text| serde_json::from_str::<ServeRecord>(&text).ok())
            .is_some_and(|now| {
                now.serve_pid == record.serve_pid && now.runner_pid == record.runner_pid
            });
        let mut removed = vec![];
        if still_same && fs::remove_file(&orphan.path).is_ok() {
            removed.push(orphan.path.clone());
        }
        if let Some(dir) = owned_temp_config_dir(&record.config_path) {
            if fs::remove_dir_all(&dir).is_ok() {
                removed.push(dir);
            }
        }
        Some(removed)
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
                RecordState::Untrusted(record, _) if is_orphan(&key, &record) => {
                    plan.orphans.push(Orphan {
                        key,
                        path,
                        record: *record,
                    });
                }
                RecordState::Untrusted(..) => plan.kept_untrusted.push(path),
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
                let has_record = self.record_path(key).exists() && !dead_records.contains(&key);
                if !has_record && markers.live.is_empty() {
                    rest.push(Removal::EmptyConsumersDir(path));
                }
            } else if name.ends_with(".lock") {
                if PidLock::inspect(&path)?.is_some_and(|h| h.is_stale()) {
                    rest.push(Removal::StaleLock(path));
                }
            } else if temp_writer_pid(&name).is_some_and(|pid| {
                pid > 1 && ProcessIdentity::pid_only(pid).liveness().is_provably_dead()
            }) || (name.ends_with(".runner-params.json")
                && older_than(&path, RUNNER_PARAMS_STALE))
            {
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

/// Its runner is provably dead, its serve runs, and its shape is sound enough to probe.
fn is_orphan(key: &str, record: &ServeRecord) -> bool {
    let runner = record.runner_identity().liveness();
    let runner_dead = runner.is_provably_dead() || runner == Liveness::Invalid;
    runner_dead
        && record.serve_identity().liveness() == Liveness::Alive
        && record.check_shape_keyless(key).is_ok()
}

fn older_than(path: &std::path::Path, age: Duration) -> bool {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|mtime| SystemTime::now().duration_since(mtime).ok())
        .is_some_and(|elapsed| elapsed > age)
}
