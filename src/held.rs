//! What this process holds for JS — PID locks, file locks and consumer markers — lives here, not
//! in JS objects, so nothing is released by garbage collection of a handle the app dropped; they go
//! on `release()` or when the Node environment (main thread or worker) that took them ends.
//!
//! Every entry names its environment: an environment's end releases its own entries and never
//! another's (a worker thread's exit must not drop the main thread's locks).

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{LazyLock, Mutex};

use napi::Env;
use qvac_managed_core::registry::ConsumerMarker;
use qvac_managed_core::{FileLock, PidLock};

pub enum HeldResource {
    Pid(PidLock),
    File(FileLock),
    Consumer(ConsumerMarker),
}

/// The Node environment (main thread or a worker) that took a lock.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct EnvId(usize);

impl EnvId {
    pub fn of(env: &Env) -> Self {
        EnvId(env.raw() as usize)
    }
}

#[derive(Default)]
struct Table {
    /// Environments that loaded the addon and have not ended.
    live: HashSet<EnvId>,
    entries: HashMap<u32, (EnvId, HeldResource)>,
}

static HELD: LazyLock<Mutex<Table>> = LazyLock::new(Default::default);
static NEXT_HANDLE: AtomicU32 = AtomicU32::new(1);

fn table() -> std::sync::MutexGuard<'static, Table> {
    // A panic while holding the map cannot leave it inconsistent: entries are whole values.
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Called when the addon loads in an environment.
pub fn env_started(env: EnvId) {
    table().live.insert(env);
}

/// Keeps `lock` for `env` and names it by handle. A lock that an off-thread acquire finishes
/// after its environment ended is released at once: nobody is left to release it.
pub fn insert(env: EnvId, lock: HeldResource) -> u32 {
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    let orphan = {
        let mut table = table();
        if table.live.contains(&env) {
            table.entries.insert(handle, (env, lock));
            None
        } else {
            Some(lock)
        }
    };
    drop(orphan);
    handle
}

/// Removes the lock from the table; the caller releases it (to report errors) or drops it.
pub fn take(handle: u32) -> Option<HeldResource> {
    table().entries.remove(&handle).map(|(_, lock)| lock)
}

pub fn is_held(handle: u32) -> bool {
    table().entries.contains_key(&handle)
}

/// Drops (and so releases) every lock and marker `env` holds. With `ended`, the environment
/// is gone (its cleanup hook): later acquires that finish for it are released at once.
pub fn release_env(env: EnvId, ended: bool) {
    let ours: Vec<HeldResource> = {
        let mut table = table();
        if ended {
            table.live.remove(&env);
        }
        let handles: Vec<u32> = table
            .entries
            .iter()
            .filter(|(_, (owner, _))| *owner == env)
            .map(|(handle, _)| *handle)
            .collect();
        handles
            .into_iter()
            .filter_map(|h| table.entries.remove(&h).map(|(_, lock)| lock))
            .collect()
    };
    // Released outside the table lock: removing files must not block other environments.
    drop(ours);
}

/// Drops every lock and marker of every environment; only for the end of the process (the main
/// thread's 'exit', the safety net).
pub fn release_all() {
    let all: Vec<HeldResource> = table().entries.drain().map(|(_, (_, lock))| lock).collect();
    drop(all);
}
