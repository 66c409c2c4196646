//! Binding for PidLock and FileLock. Acquired locks are kept in [`crate::held`] and named to JS
//! by a numeric handle.

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use qvac_managed_core::{FileLock, LockMode, PidLock};

use crate::errors::NativeError;
use crate::held::{self, EnvId, HeldResource};
use crate::outcome::outcome;
use crate::retry::{NativeCancelToken, RetryOptions};

outcome! {
    /// A lock attempt: `handle` when acquired, `error` when it failed, neither when a
    /// non-blocking try found the lock taken.
    LockOutcome { handle: u32 }
}

/// Keeps an acquired lock (or marker) in [`held`] and names it by handle.
pub fn hold<T, E>(
    env: EnvId,
    acquired: std::result::Result<T, E>,
    wrap: fn(T) -> HeldResource,
) -> LockOutcome
where
    E: Into<NativeError>,
{
    acquired.map(|lock| held::insert(env, wrap(lock))).into()
}

/// What `PidLock.inspect` reports.
#[napi(object)]
pub struct LockInspection {
    pub pid: Option<i32>,
    pub alive: bool,
    pub stale: bool,
}

outcome! { InspectOutcome { inspection: Option<LockInspection> } }

#[napi]
pub fn pid_lock_try_acquire(env: Env, path: String) -> LockOutcome {
    hold(
        EnvId::of(&env),
        PidLock::try_acquire(&PathBuf::from(path)),
        HeldResource::Pid,
    )
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
            Err(e) => return Ok(Err::<u32, _>(e).into()),
        };
        let acquired = PidLock::acquire(&PathBuf::from(path), &policy, &token).await;
        Ok(hold(owner, acquired, HeldResource::Pid))
    })
}

#[napi]
pub fn pid_lock_inspect(path: String) -> InspectOutcome {
    PidLock::inspect(&PathBuf::from(path))
        .map(|holder| {
            holder.map(|h| LockInspection {
                pid: h.pid(),
                alive: h.is_alive(),
                stale: h.is_stale(),
            })
        })
        .into()
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
        Ok(None) => LockOutcome {
            handle: None,
            error: None,
        },
        Ok(Some(lock)) => hold(
            EnvId::of(&env),
            Ok::<_, NativeError>(lock),
            HeldResource::File,
        ),
        Err(e) => Err::<u32, _>(e).into(),
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
            Err(e) => return Ok(Err::<u32, _>(e).into()),
        };
        let acquired = FileLock::acquire(&PathBuf::from(path), mode, &policy, &token).await;
        Ok(hold(owner, acquired, HeldResource::File))
    })
}

/// Releases a lock by handle. Idempotent: an unknown or already released handle is a no-op.
#[napi]
pub fn release_lock(handle: u32) -> Option<NativeError> {
    match held::take(handle)? {
        HeldResource::Pid(mut lock) => lock.release().err().map(NativeError::from),
        HeldResource::File(mut lock) => lock.release().err().map(NativeError::from),
        HeldResource::Consumer(mut marker) => {
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
