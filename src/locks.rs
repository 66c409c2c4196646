//! Binding for PidLock and FileLock. Acquired locks are kept in [`crate::held`] and named to JS
//! by a numeric handle.

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use qvac_managed_core::{FileLock, LockMode, PidLock};

use crate::errors::NativeError;
use crate::held::{self, EnvId, HeldLock};
use crate::retry::{NativeCancelToken, RetryOptions};

/// A lock attempt: `handle` when acquired, `error` when it failed, neither when a non-blocking
/// try found the lock taken.
#[napi(object)]
pub struct LockOutcome {
    pub handle: Option<u32>,
    pub error: Option<NativeError>,
}

impl LockOutcome {
    pub fn acquired(env: EnvId, lock: HeldLock) -> Self {
        LockOutcome {
            handle: Some(held::insert(env, lock)),
            error: None,
        }
    }

    pub fn failed(error: impl Into<NativeError>) -> Self {
        LockOutcome {
            handle: None,
            error: Some(error.into()),
        }
    }
}

/// What `PidLock.inspect` reports.
#[napi(object)]
pub struct LockInspection {
    pub pid: Option<i32>,
    pub alive: bool,
    pub stale: bool,
}

#[napi(object)]
pub struct InspectOutcome {
    pub inspection: Option<LockInspection>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn pid_lock_try_acquire(env: Env, path: String) -> LockOutcome {
    match PidLock::try_acquire(&PathBuf::from(path)) {
        Ok(lock) => LockOutcome::acquired(EnvId::of(&env), HeldLock::Pid(lock)),
        Err(e) => LockOutcome::failed(e),
    }
}

#[napi(ts_return_type = "Promise<LockOutcome>")]
pub fn pid_lock_acquire<'env>(
    env: &'env Env,
    path: String,
    wait: RetryOptions,
    cancel: &NativeCancelToken,
) -> Result<PromiseRaw<'env, LockOutcome>> {
    let owner = EnvId::of(env);
    let token = cancel.token();
    let policy = wait.policy();
    env.spawn_future(async move {
        let policy = match policy {
            Ok(policy) => policy,
            Err(e) => return Ok(LockOutcome::failed(e)),
        };
        Ok(
            match PidLock::acquire(&PathBuf::from(path), &policy, &token).await {
                Ok(lock) => LockOutcome::acquired(owner, HeldLock::Pid(lock)),
                Err(e) => LockOutcome::failed(e),
            },
        )
    })
}

#[napi]
pub fn pid_lock_inspect(path: String) -> InspectOutcome {
    match PidLock::inspect(&PathBuf::from(path)) {
        Ok(holder) => InspectOutcome {
            inspection: holder.map(|h| LockInspection {
                pid: h.pid(),
                alive: h.is_alive(),
                stale: h.is_stale(),
            }),
            error: None,
        },
        Err(e) => InspectOutcome {
            inspection: None,
            error: Some(e.into()),
        },
    }
}

fn mode(shared: Option<bool>) -> LockMode {
    if shared.unwrap_or(false) {
        LockMode::Shared
    } else {
        LockMode::Exclusive
    }
}

#[napi]
pub fn file_lock_try_acquire(env: Env, path: String, shared: Option<bool>) -> LockOutcome {
    match FileLock::try_acquire(&PathBuf::from(path), mode(shared)) {
        Ok(Some(lock)) => LockOutcome::acquired(EnvId::of(&env), HeldLock::File(lock)),
        Ok(None) => LockOutcome {
            handle: None,
            error: None,
        },
        Err(e) => LockOutcome::failed(e),
    }
}

#[napi(ts_return_type = "Promise<LockOutcome>")]
pub fn file_lock_acquire<'env>(
    env: &'env Env,
    path: String,
    shared: Option<bool>,
    wait: RetryOptions,
    cancel: &NativeCancelToken,
) -> Result<PromiseRaw<'env, LockOutcome>> {
    let owner = EnvId::of(env);
    let token = cancel.token();
    let policy = wait.policy();
    let mode = mode(shared);
    env.spawn_future(async move {
        let policy = match policy {
            Ok(policy) => policy,
            Err(e) => return Ok(LockOutcome::failed(e)),
        };
        Ok(
            match FileLock::acquire(&PathBuf::from(path), mode, &policy, &token).await {
                Ok(lock) => LockOutcome::acquired(owner, HeldLock::File(lock)),
                Err(e) => LockOutcome::failed(e),
            },
        )
    })
}

/// Releases a lock by handle. Idempotent: an unknown or already released handle is a no-op.
#[napi]
pub fn release_lock(handle: u32) -> Option<NativeError> {
    match held::take(handle)? {
        HeldLock::Pid(mut lock) => lock.release().err().map(NativeError::from),
        HeldLock::File(mut lock) => lock.release().err().map(NativeError::from),
        HeldLock::Consumer(mut marker) => {
            marker.remove();
            None
        }
    }
}

#[napi]
pub fn is_lock_held(handle: u32) -> bool {
    held::is_held(handle)
}

/// Releases every lock this process holds, from any environment (the 'exit' path).
#[napi]
pub fn release_all_locks() {
    held::release_all();
}
