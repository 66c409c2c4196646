//! Starting a fleet under a machine-wide memory budget (`memoryBudget`,
//! `QVAC_MANAGED_MEMORY_BUDGET`), across every process that shares the registry, with no daemon.
//!
//! Decided by the consumer that starts the fleet, while it holds the fleet's spawn lock, under
//! `memory-budget.lock` (one decision at a time per registry; held only while deciding and
//! evicting, never across a serve's start, never on a warm attach):
//! 1. The need: the peak recorded at the fleet's last exit, else an estimate — the sum of its
//!    models' file sizes (the catalog's `expectedSize`, generated from the upstream package)
//!    plus [`ESTIMATE_OVERHEAD`] for the serve itself.
//! 2. In use: every other fleet that holds memory — a live serve (its runner's latest sample,
//!    or its reservation while that is larger), or a start in progress (its reservation).
//! 3. If need + in use fits, the need is reserved in `<key>.mem` (the runner keeps the figure)
//!    and the start goes on. If not, idle fleets (no consumer, no connection at the runner's
//!    last look, not pinned, ours to stop) are the candidates, least recently used first. If
//!    evicting all of them would not make room, nothing is evicted: SERVE_MEMORY_BUDGET at once.
//!    Else they are evicted one by one until it fits: the runner reaps at once, exactly as at
//!    its idle deadline (a consumer that attached meanwhile, or a connection, calls it off), and
//!    the eviction is awaited until the runner — and so the serve — is gone.
//!
//! A reservation outlives neither its holder nor its fleet: a `<key>.mem` counts only while its
//! fleet's record is trusted or its spawn lock is held by a live process.

use std::time::{Duration, Instant};

use crate::file_lock::{FileLock, LockMode};
use crate::managed_options::ModelSpec;
use crate::memory_size::format_bytes;
use crate::pid_lock::PidLock;
use crate::process::ProcessIdentity;
use crate::registry::{RecordState, Registry, RegistryError, ServeMemory};
use crate::retry::{CancelToken, RetryPolicy};

/// What a serve itself is estimated to take beyond its model files.
pub const ESTIMATE_OVERHEAD: u64 = 256 << 20;

/// How long one eviction is awaited (the runner stops its serve with its grace, then exits).
const EVICTION_BOUND: Duration = Duration::from_secs(30);

/// Where a fleet's need came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NeedSource {
    /// The peak recorded when its last serve ended.
    LastPeak,
    /// The catalog's model sizes plus [`ESTIMATE_OVERHEAD`].
    Estimate,
}

/// One fleet holding memory, as SERVE_MEMORY_BUDGET's `heldBy` lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct FleetUse {
    pub fleet: String,
    pub models: Vec<String>,
    pub rss_bytes: u64,
    pub consumers: u32,
    pub connections: u32,
    pub pinned: bool,
    /// Idle since (ms since the epoch), at its runner's last look; `None` while in use.
    pub idle_since: Option<u64>,
    /// The runner that would evict it; `None` for a start in progress or a serve not ours.
    pub runner_pid: Option<i32>,
}

impl FleetUse {
    /// Ours to stop, not pinned, no consumer marker now and no connection at its runner's last
    /// look (the runner checks both again before it reaps).
    fn evictable(&self) -> bool {
        self.runner_pid.is_some() && !self.pinned && self.consumers == 0 && self.connections == 0
    }
}

/// The start does not fit, even with every idle fleet evicted.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
#[error("{}", refusal_message(self))]
pub struct BudgetRefusal {
    pub fleet_key: String,
    pub need_bytes: u64,
    pub need_source: NeedSource,
    pub budget_bytes: u64,
    pub held_by: Vec<FleetUse>,
}

fn refusal_message(r: &BudgetRefusal) -> String {
    let held: u64 = r.held_by.iter().map(|f| f.rss_bytes).sum();
    let need = match r.need_source {
        NeedSource::LastPeak => "its last serve's peak",
        NeedSource::Estimate => "estimated from its model files",
    };
    let mut text = format!(
        "starting fleet {} needs {} ({need}), and {} of the {} memory budget is held by fleets that cannot be evicted (in use, pinned, or starting or stopping)",
        r.fleet_key,
        format_bytes(r.need_bytes),
        format_bytes(held),
        format_bytes(r.budget_bytes)
    );
    if r.need_bytes > r.budget_bytes {
        text.push_str(". It cannot fit even alone: raise `memoryBudget` (or QVAC_MANAGED_MEMORY_BUDGET) above its need, or use smaller models");
    } else {
        let in_use: Vec<String> = r
            .held_by
            .iter()
            .map(|f| {
                let why = if f.pinned {
                    "pinned".to_owned()
                } else if f.runner_pid.is_none() {
                    "starting or stopping".to_owned()
                } else {
                    format!(
                        "{} consumer(s), {} connection(s)",
                        f.consumers, f.connections
                    )
                };
                format!(
                    "{} [{}] {} ({why})",
                    f.fleet,
                    f.models.join(", "),
                    format_bytes(f.rss_bytes)
                )
            })
            .collect();
        text.push_str(&format!(
            ": {}. Close a provider using one of them (or `qvac-managed unpin` a pinned one), or raise `memoryBudget` (or QVAC_MANAGED_MEMORY_BUDGET)",
            in_use.join("; ")
        ));
    }
    text
}

/// The fleet's need: its last serve's peak, else the estimate.
pub fn need_of(registry: &Registry, key: &str, models: &[ModelSpec]) -> (u64, NeedSource) {
    let last_peak = registry
        .read_exits(key)
        .into_iter()
        .rev()
        .find_map(|e| e.peak_bytes.filter(|&p| p > 0));
    match last_peak {
        Some(peak) => (peak, NeedSource::LastPeak),
        None => (estimate(models), NeedSource::Estimate),
    }
}

/// The catalog's file sizes of `models` plus [`ESTIMATE_OVERHEAD`]; a model the catalog does
/// not size (a custom source) counts for nothing.
pub fn estimate(models: &[ModelSpec]) -> u64 {
    ESTIMATE_OVERHEAD
        + models
            .iter()
            .filter_map(|m| crate::catalog::model_size(&m.name))
            .sum::<u64>()
}

/// Every fleet other than `except` that holds memory now (see the module doc).
pub fn fleets_in_use(registry: &Registry, except: &str) -> Result<Vec<FleetUse>, RegistryError> {
    let mut keys = registry.record_keys()?;
    keys.extend(registry.fleets_with_memory()?);
    keys.sort();
    keys.dedup();
    let mut fleets = Vec::new();
    for key in keys.into_iter().filter(|k| k != except) {
        let memory = registry.read_memory(&key);
        let consumers = registry
            .live_consumers(&key, false)
            .unwrap_or_default()
            .len() as u32;
        match registry.read_record(&key)? {
            RecordState::Trusted(record) => {
                let ours = memory
                    .as_ref()
                    .filter(|m| m.serve_pid == Some(record.serve_pid));
                let rss = match ours {
                    Some(m) => m.held_bytes(),
                    // Not sampled by a runner of ours (yet): measured now.
                    None => crate::platform::tree_resident_bytes(record.serve_pid)
                        .unwrap_or(0)
                        .max(memory.as_ref().map_or(0, ServeMemory::held_bytes)),
                };
                fleets.push(FleetUse {
                    models: record.models.clone().unwrap_or_default(),
                    rss_bytes: rss,
                    consumers,
                    connections: ours.map_or(0, |m| m.connections),
                    pinned: registry.is_pinned(&key),
                    idle_since: ours.and_then(|m| m.idle_since),
                    runner_pid: ours.map(|_| record.runner_pid),
                    fleet: key,
                });
            }
            _ => {
                // A start in progress (its reservation), or a serve being stopped or reaped (its
                // last sample: it is resident until it is gone), while a live process holds the
                // fleet's spawn lock.
                let Some(memory) = memory.filter(|m| m.held_bytes() > 0) else {
                    continue;
                };
                let starting = PidLock::inspect(&registry.lock_path(&key))
                    .ok()
                    .flatten()
                    .is_some_and(|holder| holder.is_alive());
                if starting {
                    fleets.push(FleetUse {
                        models: memory.models.clone(),
                        rss_bytes: memory.held_bytes(),
                        consumers,
                        connections: 0,
                        pinned: registry.is_pinned(&key),
                        idle_since: None,
                        runner_pid: None,
                        fleet: key,
                    });
                }
            }
        }
    }
    Ok(fleets)
}

/// Makes room for `key` under `budget_bytes` and reserves it (see the module doc). The caller
/// holds the fleet's spawn lock. On success the reservation is in `<key>.mem`; the caller
/// removes it with [`release_reservation`] if the start fails.
pub async fn admit(
    registry: &Registry,
    key: &str,
    models: &[ModelSpec],
    budget_bytes: u64,
) -> Result<(), AdmitError> {
    let (need, source) = need_of(registry, key, models);
    let refusal = |held_by: Vec<FleetUse>| BudgetRefusal {
        fleet_key: key.to_owned(),
        need_bytes: need,
        need_source: source,
        budget_bytes,
        held_by,
    };
    if need > budget_bytes {
        let held = fleets_in_use(registry, key)?;
        return Err(AdmitError::Refused(refusal(held)));
    }
    let _decision = budget_lock(registry).await?;
    let mut called_off = Vec::new();
    loop {
        let fleets = fleets_in_use(registry, key)?;
        let used: u64 = fleets.iter().map(|f| f.rss_bytes).sum();
        if need + used <= budget_bytes {
            break;
        }
        let mut candidates: Vec<&FleetUse> = fleets
            .iter()
            .filter(|f| f.evictable() && !called_off.contains(&f.fleet))
            .collect();
        // Least recently used first: idle the longest (a fleet whose runner has not written its
        // idle time yet became idle just now).
        let now = crate::registry::now_ms();
        candidates.sort_by_key(|f| (f.idle_since.unwrap_or(now), f.fleet.clone()));
        let freeable: u64 = candidates.iter().map(|f| f.rss_bytes).sum();
        if need + used - freeable > budget_bytes {
            let kept = fleets
                .iter()
                .filter(|f| !candidates.iter().any(|c| c.fleet == f.fleet))
                .cloned()
                .collect();
            return Err(AdmitError::Refused(refusal(kept)));
        }
        let victim = candidates[0];
        tracing::info!(fleet = %victim.fleet, rss = victim.rss_bytes, for_fleet = key, "evicting an idle fleet to make room under the memory budget");
        if !evict(registry, victim).await? {
            called_off.push(victim.fleet.clone());
        }
    }
    let reservation = ServeMemory {
        reserved_bytes: need,
        reserved_by: Some(std::process::id() as i32),
        models: models.iter().map(|m| m.name.clone()).collect(),
        ..ServeMemory::default()
    };
    registry.write_memory(key, &reservation)?;
    Ok(())
}

/// Removes this process's reservation for `key` (a start that failed), if it is still ours.
pub fn release_reservation(registry: &Registry, key: &str) {
    let mine = registry
        .read_memory(key)
        .is_some_and(|m| m.serve_pid.is_none() && m.reserved_by == Some(std::process::id() as i32));
    if mine {
        registry.remove_memory(key);
    }
}

/// Asks `fleet`'s runner to evict it and waits: true when the runner is gone, false when it
/// called the eviction off (someone attached or connected) or did not answer in time.
async fn evict(registry: &Registry, fleet: &FleetUse) -> Result<bool, RegistryError> {
    let Some(runner) = fleet.runner_pid else {
        return Ok(false);
    };
    let runner = ProcessIdentity::of(runner);
    registry.request_eviction(&fleet.fleet)?;
    let deadline = Instant::now() + EVICTION_BOUND;
    loop {
        let gone = runner
            .as_ref()
            .is_none_or(|r| r.liveness().is_provably_dead());
        if gone {
            registry.clear_eviction(&fleet.fleet);
            return Ok(true);
        }
        if !registry.eviction_requested(&fleet.fleet) {
            tracing::info!(fleet = %fleet.fleet, "the eviction was called off: the fleet is in use again");
            return Ok(false);
        }
        if Instant::now() >= deadline {
            registry.clear_eviction(&fleet.fleet);
            tracing::warn!(fleet = %fleet.fleet, "the fleet's runner did not evict it in time");
            return Ok(false);
        }
        tokio::select! {
            _ = crate::process::exited(runner.as_ref().map(|r| r.pid)) => {}
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
        }
    }
}

/// `memory-budget.lock`, waited for (another decision, with its evictions, is brief). An flock:
/// the kernel releases it when its holder dies, however it dies, and its content means nothing.
async fn budget_lock(registry: &Registry) -> Result<FileLock, RegistryError> {
    let policy = RetryPolicy {
        attempts: 100_000,
        base_delay: Duration::from_millis(2),
        max_delay: Duration::from_millis(20),
        deadline: Some(EVICTION_BOUND * 2),
        jitter: 0.5,
    };
    let path = registry.budget_lock_path();
    FileLock::acquire(&path, LockMode::Exclusive, &policy, &CancelToken::new())
        .await
        .map_err(|err| RegistryError::Io {
            action: "lock",
            path,
            source: std::io::Error::other(err.to_string()),
        })
}

#[derive(Debug, thiserror::Error)]
pub enum AdmitError {
    #[error(transparent)]
    Refused(BudgetRefusal),
    #[error(transparent)]
    Registry(#[from] RegistryError),
}
