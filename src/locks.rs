//! Binding for PidLock and FileLock. Acquired locks are kept in [`crate::held`] and named to JS
//! by a numeric handle.

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use qvac_managed_core::{FileLock, LockMode, PidLock};

use crate::errors::NativeError;
use crate::guard;
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

/// One attempt, off the JS thread (it writes and fsyncs the lock file).
#[napi(catch_unwind, ts_return_type = "Promise<LockOutcome>")]
pub fn pid_lock_try_acquire(env: &Env, path: String) -> Result<PromiseRaw<'_, LockOutcome>> {
    let owner = EnvId::of(env);
    guard::spawn(env, async move {
        let acquired = PidLock::try_acquire(&PathBuf::from(path));
        Ok(hold(owner, acquired, HeldResource::Pid))
    })
}

#[napi(catch_unwind, ts_return_type = "Promise<LockOutcome>")]
pub fn pid_lock_acquire<'env>(
    env: &'env Env,
    path: String,
    wait: RetryOptions,
    cancel: &NativeCancelToken,
) -> Result<PromiseRaw<'env, LockOutcome>> {
    let owner = EnvId::of(env);
    let token = cancel.token();
    let policy = wait.policy();
    guard::spawn(env, async move {
        let policy = match policy {
            Ok(policy) => policy,
            Err(e) => return Ok(Err::<u32, _>(e).into()),
        };
        let acquired = PidLock::acquire(&PathBuf::from(path), &policy, &token).await;
        Ok(hold(owner, acquired, HeldResource::Pid))
    })
}

#[napi(catch_unwind)]
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

#[napi(catch_unwind)]
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

#[napi(catch_unwind, ts_return_type = "Promise<LockOutcome>")]
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
    guard::spawn(env, async move {
        let policy = match policy {
            Ok(policy) => policy,
            Err(e) => return Ok(Err::<u32, _>(e).into()),
        };
        let acquired = FileLock::acquire(&PathBuf::from(path), mode, &policy, &token).await;
        Ok(hold(owner, acquired, HeldResource::File))
    })
}

/// Releases a lock by handle. Idempotent: an unknown or already released handle is a no-op.
#[napi(catch_unwind)]
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

#[napi(catch_unwind)]
pub fn is_lock_held(handle: u32) -> bool {
    held::is_held(handle)
}

/// Releases every lock and marker the calling environment holds, and only those (its 'exit'
/// path: Node emits 'exit' in worker threads too, and a worker's end must not touch the main
/// thread's locks). The environment may go on: locks it takes later are kept as usual.
#[napi(catch_unwind)]
pub fn release_env_locks(env: Env) {
    held::release_env(EnvId::of(&env), false);
}

/// Releases every lock and marker of every environment: only for the end of the process (the
/// main thread's 'exit'; Bun tears down no worker environment when the process exits).
#[napi(catch_unwind)]
pub fn release_process_locks() {
    held::release_all();
}
