//! Binding for attaching to (or starting) a managed serve.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;
use qvac_managed_core::consumer::{self, RunnerLaunch};
use qvac_managed_core::managed_options;
use qvac_managed_core::process::ProcessIdentity;
use qvac_managed_core::registry::{Registry, StartOutputFollower};
use qvac_managed_core::serve_watch::serve_exited;
use qvac_managed_core::supervisor::OutputStream;

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
    /// The serve's start time as the OS gives it (decimal; `watchServeExit` proves the pid by it).
    pub serve_start_time: Option<String>,
}

/// A JS callback called from any thread with one string, that never keeps the process alive
/// (a weak threadsafe function: listeners never pin the event loop).
pub type WeakCallback = ThreadsafeFunction<String, (), String, Status, false, true>;

outcome! { EnsureOutcome { serve: AttachedServe } }

/// Validates the options (typed errors before anything is written), then attaches to the
/// fleet's serve or starts it, off the JS thread. `cancel` ends the attach with ABORT_ERR and
/// removes our marker; a start other consumers wait on goes on.
/// `on_output`, when given, is called with each output line of a start this call waits on, as
/// `o <line>` (stdout) or `e <line>` (stderr).
#[napi(catch_unwind, ts_return_type = "Promise<EnsureOutcome>")]
pub fn ensure_serve<'env>(
    env: &'env Env,
    request: EnsureServeRequest,
    cancel: &NativeCancelToken,
    #[napi(ts_arg_type = "((line: string) => void) | undefined | null")] on_output: Option<
        WeakCallback,
    >,
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
        let ensure =
            consumer::ensure_serve(&registry, &options, &fleet_key, &launch, avoid, &token);
        let attached = match &on_output {
            None => ensure.await,
            Some(callback) => {
                StartOutputFollower::new(&registry, &fleet_key)
                    .follow_while(ensure, |stream, line| {
                        let tag = if stream == OutputStream::Stdout {
                            'o'
                        } else {
                            'e'
                        };
                        callback.call(
                            format!("{tag} {line}"),
                            ThreadsafeFunctionCallMode::NonBlocking,
                        );
                    })
                    .await
            }
        };
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
                    serve_start_time: record.serve_start_time.map(|t| t.to_string()),
                }
            })
            .into())
    })
}

#[napi(object)]
pub struct WatchServeRequest {
    pub registry_dir: String,
    pub fleet_key: String,
    pub serve_pid: i32,
    /// As `AttachedServe.serveStartTime` gave it.
    pub serve_start_time: Option<String>,
    pub port: u32,
}

static WATCHES: Mutex<Option<HashMap<u32, napi::tokio::task::AbortHandle>>> = Mutex::new(None);
static NEXT_WATCH: AtomicU32 = AtomicU32::new(1);

/// Calls `callback` once, with the exit as JSON (`{ servePid, port, kind, at, code, signal,
/// outputTail }`), as soon as the serve exits. Never keeps the process alive. Returns an id for
/// `unwatchServeExit`.
#[napi(catch_unwind)]
pub fn watch_serve_exit(
    request: WatchServeRequest,
    #[napi(ts_arg_type = "(exitJson: string) => void")] callback: WeakCallback,
) -> u32 {
    let registry = Registry::at(&request.registry_dir);
    let mut serve = ProcessIdentity::pid_only(request.serve_pid);
    serve.start_time = request.serve_start_time.and_then(|t| t.parse().ok());
    let port = u16::try_from(request.port).unwrap_or(0);
    let key = request.fleet_key;
    let id = NEXT_WATCH.fetch_add(1, Ordering::Relaxed);
    let task = napi::bindgen_prelude::spawn(async move {
        let exit = serve_exited(&registry, &key, &serve, port).await;
        if let Ok(json) = serde_json::to_string(&exit) {
            callback.call(json, ThreadsafeFunctionCallMode::NonBlocking);
        }
        if let Ok(mut watches) = WATCHES.lock() {
            watches.get_or_insert_with(HashMap::new).remove(&id);
        }
    });
    if let Ok(mut watches) = WATCHES.lock() {
        if !task.is_finished() {
            watches
                .get_or_insert_with(HashMap::new)
                .insert(id, task.abort_handle());
        }
    }
    id
}

/// Stops a watch (no callback after this). Unknown or finished ids are ignored.
#[napi(catch_unwind)]
pub fn unwatch_serve_exit(id: u32) {
    if let Ok(mut watches) = WATCHES.lock() {
        if let Some(task) = watches.get_or_insert_with(HashMap::new).remove(&id) {
            task.abort();
        }
    }
}
