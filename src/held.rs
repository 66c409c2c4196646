//! What this process holds for JS — PID locks, file locks and consumer markers — lives here, not
//! in JS objects, so nothing is released by garbage collection of a handle the app dropped; they go
//! on `release()` or when their environment (or the process) ends.

use std::collections::HashMap;
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
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct EnvId(usize);

impl EnvId {
    pub fn of(env: &Env) -> Self {
        EnvId(env.raw() as usize)
    }
}

static HELD: LazyLock<Mutex<HashMap<u32, (EnvId, HeldResource)>>> = LazyLock::new(Default::default);
static NEXT_HANDLE: AtomicU32 = AtomicU32::new(1);

fn held() -> std::sync::MutexGuard<'static, HashMap<u32, (EnvId, HeldResource)>> {
    // A panic while holding the map cannot leave it inconsistent: entries are whole values.
    HELD.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

pub fn insert(env: EnvId, lock: HeldResource) -> u32 {
    let handle = NEXT_HANDLE.fetch_add(1, Ordering::Relaxed);
    held().insert(handle, (env, lock));
    handle
}

/// Removes the lock from the table; the caller releases it (to report errors) or drops it.
pub fn take(handle: u32) -> Option<HeldResource> {
    held().remove(&handle).map(|(_, lock)| lock)
}

pub fn is_held(handle: u32) -> bool {
    held().contains_key(&handle)
}

/// Cleanup hook: drops (and so releases) every lock the ending environment holds.
pub fn release_env(env: EnvId) {
    let ours: Vec<HeldResource> = {
        let mut table = held();
        let handles: Vec<u32> = table
            .iter()
            .filter(|(_, (owner, _))| *owner == env)
            .map(|(handle, _)| *handle)
            .collect();
        handles
            .into_iter()
            .filter_map(|h| table.remove(&h).map(|(_, lock)| lock))
            .collect()
    };
    drop(ours);
}

/// Drops every lock and marker of every environment; for the process 'exit' path.
pub fn release_all() {
    let all: Vec<HeldResource> = held().drain().map(|(_, (_, lock))| lock).collect();
    drop(all);
}
