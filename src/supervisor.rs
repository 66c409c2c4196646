//! Binding for `spawnSupervised`: a child in its own process group, with readiness, an
//! intent-classified exit, and group stop. Running children are kept here (not only in JS
//! objects) and killed when their environment ends, so none outlives the process that
//! spawned it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, LazyLock, Mutex};

use napi::bindgen_prelude::*;
use napi_derive::napi;
use qvac_managed_core::supervisor::{
    ExitReport, NotReady, Supervised, SupervisedOptions as CoreOptions, SupervisorSpec,
};

use crate::errors::NativeError;
use crate::guard;
use crate::held::EnvId;
use crate::js_value::env_pairs;

#[napi(object)]
pub struct SupervisedOptions {
    pub command: String,
    pub args: Option<Vec<String>>,
    /// `[name, value]` pairs added to the inherited environment.
    pub env: Option<Vec<Vec<String>>>,
    pub cwd: Option<String>,
    /// Ready when `GET readyUrl` answers 2xx.
    pub ready_url: Option<String>,
    pub ready_bearer: Option<String>,
    /// Ready when a line of output contains this text.
    pub ready_line: Option<String>,
    pub start_timeout_ms: Option<f64>,
    pub grace_ms: Option<f64>,
    pub output_tail_bytes: Option<f64>,
    pub die_with_parent: Option<bool>,
}

fn spec(o: &SupervisedOptions) -> std::result::Result<SupervisorSpec, NativeError> {
    let options = CoreOptions {
        command: o.command.clone(),
        args: o.args.clone().unwrap_or_default(),
        env: env_pairs(o.env.clone().unwrap_or_default()),
        cwd: o.cwd.clone(),
        ready_url: o.ready_url.clone(),
        ready_bearer: o.ready_bearer.clone(),
        ready_line: o.ready_line.clone(),
        start_timeout_ms: o.start_timeout_ms,
        grace_ms: o.grace_ms,
        output_tail_bytes: o.output_tail_bytes,
        die_with_parent: o.die_with_parent.unwrap_or(false),
    };
    Ok(SupervisorSpec::from_options(options)?)
}

#[napi(object)]
pub struct NativeExitReport {
    /// 'stopped' | 'crashed' | 'failed-to-start' | 'start-timeout', by intent, never by timing:
    /// 'stopped' when we asked it to stop; 'start-timeout' when readiness did not pass within
    /// `startTimeoutMs` and we killed it; otherwise 'crashed' if its readiness had passed (with
    /// no `readyUrl`/`readyLine`, that is as soon as `spawn` returned: `sh -c 'exit 5'` is always
    /// 'crashed') and 'failed-to-start' if the ready line or HTTP 2xx it was given never came. A
    /// command that cannot be executed at all makes `spawn` throw instead.
    pub kind: String,
    pub code: Option<i32>,
    /// Signal name, e.g. 'SIGKILL'.
    pub signal: Option<String>,
    pub output_tail: String,
}

impl From<ExitReport> for NativeExitReport {
    fn from(r: ExitReport) -> Self {
        NativeExitReport {
            kind: r.kind.as_str().into(),
            code: r.code,
            signal: r.signal_name().map(str::to_owned),
            output_tail: r.output_tail,
        }
    }
}

/// Running children by handle, with the environment that spawned them.
type ChildTable = HashMap<u32, (EnvId, Arc<Supervised>)>;

static CHILDREN: LazyLock<Mutex<ChildTable>> = LazyLock::new(Default::default);
static NEXT_CHILD: AtomicU32 = AtomicU32::new(1);

fn children() -> std::sync::MutexGuard<'static, ChildTable> {
    CHILDREN.lock().unwrap_or_else(|p| p.into_inner())
}

/// Cleanup hook: kills the groups of every child the ending environment still runs.
pub fn kill_env_children(env: EnvId) {
    for (_, (owner, child)) in children().iter() {
        if *owner == env {
            child.kill_now();
        }
    }
}

/// Kills the groups of the children the calling environment spawned, and only those (its 'exit'
/// path; a worker thread's end must not kill the main thread's children).
#[napi(catch_unwind)]
pub fn kill_env_supervised(env: Env) {
    kill_env_children(EnvId::of(&env));
}

/// Kills every supervised child's group, of every environment: only for the end of the process
/// (the main thread's 'exit', the safety net; Bun tears down no worker environment when the
/// process exits).
#[napi(catch_unwind)]
pub fn kill_process_supervised() {
    kill_all_supervised();
}

/// Kills every supervised child's group, of every environment (see `kill_process_supervised`).
pub fn kill_all_supervised() {
    for (_, (_, child)) in children().iter() {
        child.kill_now();
    }
}

/// `null` if the options are valid, else the INVALID_OPTION error to throw.
#[napi(catch_unwind)]
pub fn check_supervised_options(options: SupervisedOptions) -> Option<NativeError> {
    spec(&options).err()
}

#[napi(js_name = "NativeSupervised")]
pub struct NativeSupervised {
    id: u32,
    child: Arc<Supervised>,
}

#[napi]
impl NativeSupervised {
    /// Spawns; throws if the command cannot be executed (not found, not executable, bad `cwd`):
    /// such a command never yields an exit report (call `checkSupervisedOptions` first).
    #[napi(catch_unwind, factory)]
    pub fn spawn(env: Env, options: SupervisedOptions) -> Result<Self> {
        let spec = spec(&options).map_err(|e| Error::new(Status::InvalidArg, e.message))?;
        let child = within_runtime_if_available(|| Supervised::spawn(spec))
            .map(Arc::new)
            .map_err(|e| Error::new(Status::GenericFailure, e.to_string()))?;
        let id = NEXT_CHILD.fetch_add(1, Ordering::Relaxed);
        children().insert(id, (EnvId::of(&env), child.clone()));
        // Forget it once it is gone, so the table only holds running children.
        let watched = child.clone();
        napi::bindgen_prelude::spawn(async move {
            watched.exited().await;
            children().remove(&id);
        });
        Ok(NativeSupervised { id, child })
    }

    #[napi(catch_unwind, getter)]
    pub fn pid(&self) -> i32 {
        self.child.pid()
    }

    /// Resolves `null` once the child is ready, or how it ended if it never became ready.
    #[napi(catch_unwind, ts_return_type = "Promise<NativeExitReport | null>")]
    pub fn ready<'env>(
        &self,
        env: &'env Env,
    ) -> Result<PromiseRaw<'env, Option<NativeExitReport>>> {
        let child = self.child.clone();
        guard::spawn(env, async move {
            Ok(match child.ready().await {
                Ok(()) => None,
                Err(NotReady::Exited(report)) | Err(NotReady::TimedOut(report)) => {
                    Some(report.into())
                }
            })
        })
    }

    #[napi(catch_unwind, ts_return_type = "Promise<NativeExitReport>")]
    pub fn exited<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, NativeExitReport>> {
        let child = self.child.clone();
        guard::spawn(env, async move { Ok(child.exited().await.into()) })
    }

    /// SIGTERM to the group, SIGKILL after `graceMs` (default: the spawn option), resolves when
    /// the whole group is gone. Idempotent.
    #[napi(catch_unwind, ts_return_type = "Promise<NativeExitReport>")]
    pub fn stop<'env>(
        &self,
        env: &'env Env,
        grace_ms: Option<f64>,
    ) -> Result<PromiseRaw<'env, NativeExitReport>> {
        let child = self.child.clone();
        let grace = grace_ms.map(qvac_managed_core::options::millis_saturating);
        guard::spawn(env, async move { Ok(child.stop(grace).await.into()) })
    }

    #[napi(catch_unwind)]
    pub fn output_tail(&self) -> String {
        self.child.output_tail()
    }

    #[napi(catch_unwind, getter)]
    pub fn handle(&self) -> u32 {
        self.id
    }
}
