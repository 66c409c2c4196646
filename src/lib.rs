//! napi binding for `qvac-managed-core`: argument conversion, error mapping, handles that keep
//! held locks alive across the JS boundary. No logic lives here.

mod errors;
mod held;
mod locks;
mod retry;

use napi::bindgen_prelude::*;
use napi_derive::napi;

/// Registers the per-environment cleanup that releases every lock this environment still
/// holds when it is torn down (normal exit, worker thread end).
#[napi(module_exports)]
pub fn init(_exports: Object, env: Env) -> Result<()> {
    let env_id = held::EnvId::of(&env);
    env.add_env_cleanup_hook(env_id, held::release_env)?;
    Ok(())
}
