//! Binding for attaching to (or starting) a managed serve.

use std::path::PathBuf;

use napi::bindgen_prelude::*;
use napi_derive::napi;
use qvac_managed_core::consumer::{self, RunnerLaunch};
use qvac_managed_core::managed_options;
use qvac_managed_core::registry::Registry;

use crate::errors::NativeError;
use crate::guard;
use crate::held::{self, EnvId, HeldResource};
use crate::js_value::{decode, env_pairs};
use crate::outcome::outcome;
use crate::retry::NativeCancelToken;

#[napi(object)]
pub struct EnsureServeRequest {
    /// The managed options as the TS layer's tagged JSON.
    pub options: String,
    /// The `qvac-managed` binary.
    pub runner_path: String,
    pub project_dir: Option<String>,
    pub node_path: Option<String>,
    pub grace_ms: Option<f64>,
    /// Overrides `~/.qvac/managed-serves`.
    pub registry_dir: Option<String>,
    /// The runner's environment as `[name, value]` pairs (the caller's `process.env`).
    pub env: Option<Vec<Vec<String>>>,
    /// A serve the caller just failed to reach (connection refused): never returned again.
    pub avoid_serve_pid: Option<i32>,
}

#[napi(object)]
pub struct AttachedServe {
    pub fleet_key: String,
    #[napi(js_name = "baseURL")]
    pub base_url: String,
    pub port: u32,
    pub serve_pid: i32,
    pub runner_pid: i32,
    pub api_key: String,
    /// The consumer marker; `releaseLock(handle)` removes it.
    pub handle: u32,
    pub spawned: bool,
}

outcome! { EnsureOutcome { serve: AttachedServe } }

/// Validates the options (typed errors before anything is written), then attaches to the
/// fleet's serve or starts it, off the JS thread. `cancel` ends the attach with ABORT_ERR and
/// removes our marker; a start other consumers wait on goes on.
#[napi(catch_unwind, ts_return_type = "Promise<EnsureOutcome>")]
pub fn ensure_serve<'env>(
    env: &'env Env,
    request: EnsureServeRequest,
    cancel: &NativeCancelToken,
) -> Result<PromiseRaw<'env, EnsureOutcome>> {
    let owner = EnvId::of(env);
    let token = cancel.token();
    let avoid = request.avoid_serve_pid;
    let checked = decode(&request.options)
        .and_then(|value| managed_options::validate(&value).map_err(NativeError::from))
        .and_then(|options| {
            let registry = Registry::at_or_default(request.registry_dir.as_deref())?;
            Ok((options, registry))
        });
    let launch = RunnerLaunch {
        runner_path: PathBuf::from(&request.runner_path),
        project_dir: request.project_dir,
        node_path: request.node_path,
        grace_ms: request.grace_ms,
        env: request.env.map(env_pairs),
    };
    guard::spawn(env, async move {
        let (options, registry) = match checked {
            Ok(checked) => checked,
            Err(error) => return Ok(Err::<AttachedServe, _>(error).into()),
        };
        let fleet_key = consumer::fleet_key_for(&options);
        let attached =
            consumer::ensure_serve(&registry, &options, &fleet_key, &launch, avoid, &token).await;
        Ok(attached
            .map(|attached| {
                let record = attached.record;
                AttachedServe {
                    fleet_key: attached.fleet_key,
                    base_url: record.base_url,
                    port: record.port.into(),
                    serve_pid: record.serve_pid,
                    runner_pid: record.runner_pid,
                    api_key: record.api_key,
                    handle: held::insert(owner, HeldResource::Consumer(attached.marker)),
                    spawned: attached.spawned,
                }
            })
            .into())
    })
}
