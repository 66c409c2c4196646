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

/// `nodeApiHostReport()`: what this process's JS host did with the addon's threadsafe functions (src/host/): how many
/// were created through the workaround, and in which argument order the host called their
/// finalizers. A diagnostic: `created` stays 0 only if the calls do not go through it.
#[napi(object)]
pub struct NodeApiHostReport {
    pub threadsafe_functions_created: f64,
    pub finalized_in_node_api_order: f64,
    pub finalized_in_swapped_order: f64,
}

#[napi]
pub fn node_api_host_report() -> NodeApiHostReport {
    let (created, node_api_order, swapped_order) = host::threadsafe_function_counts();
    NodeApiHostReport {
        threadsafe_functions_created: created as f64,
        finalized_in_node_api_order: node_api_order as f64,
        finalized_in_swapped_order: swapped_order as f64,
    }
}
