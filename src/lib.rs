//! napi binding for `qvac-managed-core`: argument conversion, error mapping, handles that keep
//! held locks alive across the JS boundary. No logic lives here.

// NativeError is the plain object handed to JS; it is built once per failed call, so its size
// on the error path does not matter.
#![allow(clippy::result_large_err)]

mod errors;
mod guard;
mod held;
mod host;
mod js_value;
mod locks;
mod managed;
mod outcome;
mod registry;
mod retry;
mod serve;
mod shutdown;
mod supervisor;

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Registers the per-environment cleanup that releases every lock and marker this environment
/// still holds, and kills the groups of its supervised children, when it is torn down (normal
/// exit, worker thread end). Each environment's cleanup touches only what it acquired.
#[napi(module_exports)]
pub fn init(_exports: Object, env: Env) -> Result<()> {
    let env_id = held::EnvId::of(&env);
    held::env_started(env_id);
    env.add_env_cleanup_hook(env_id, |id| guard::contain(|| held::release_env(id, true)))?;
    env.add_env_cleanup_hook(env_id, |id| {
        guard::contain(|| supervisor::kill_env_children(id))
    })?;
    Ok(())
}
