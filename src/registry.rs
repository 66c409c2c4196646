//! Binding for the managed-serve registry. `dir` overrides `~/.qvac/managed-serves` (tests,
//! tools); records cross the boundary as JSON text in upstream's field names.

use napi::Env;
use napi_derive::napi;
use qvac_managed_core::registry::{
    RecordState, Registry, RegistryError, StartFailure, StopOutcome, SweepReport,
};

use crate::errors::{self, NativeError};
use crate::held::{EnvId, HeldResource};
use crate::locks::{hold, LockOutcome};
use crate::outcome::outcome;

fn registry(dir: Option<String>) -> Result<Registry, RegistryError> {
    Registry::at_or_default(dir)
}

#[napi(object)]
pub struct ServeEntry {
    pub fleet_key: String,
    pub models: Vec<String>,
    #[napi(js_name = "baseURL")]
    pub base_url: String,
    pub host: String,
    pub port: u32,
    pub serve_pid: i32,
    pub runner_pid: i32,
    pub consumers: u32,
    pub started_at: String,
    pub idle_timeout_ms: f64,
}

outcome! { ListOutcome { serves: Vec<ServeEntry> } }

#[napi(catch_unwind)]
pub fn registry_list_serves(dir: Option<String>) -> ListOutcome {
    registry(dir)
        .and_then(|r| r.list_serves())
        .map(|serves| {
            serves
                .into_iter()
                .map(|s| ServeEntry {
                    fleet_key: s.fleet_key,
                    models: s.models,
                    base_url: s.base_url,
                    host: s.host,
                    port: s.port.into(),
                    serve_pid: s.serve_pid,
                    runner_pid: s.runner_pid,
                    consumers: u32::try_from(s.consumers).unwrap_or(u32::MAX),
                    started_at: s.started_at,
                    idle_timeout_ms: s.idle_timeout_ms,
                })
                .collect()
        })
        .into()
}

#[napi(object)]
pub struct NativeSweepReport {
    pub removed: Vec<String>,
    pub kept_untrusted: Vec<String>,
    pub stopped_orphans: Vec<String>,
    pub corrupt: Vec<String>,
    pub moved_aside: Vec<String>,
}

impl From<SweepReport> for NativeSweepReport {
    fn from(report: SweepReport) -> Self {
        let paths =
            |v: Vec<std::path::PathBuf>| v.into_iter().map(|p| p.display().to_string()).collect();
        NativeSweepReport {
            removed: paths(report.removed),
            kept_untrusted: paths(report.kept_untrusted),
            stopped_orphans: paths(report.stopped_orphans),
            corrupt: paths(report.corrupt),
            moved_aside: paths(report.moved_aside),
        }
    }
}

/// A record moved aside because its running serve could not be proven ours.
#[napi(object)]
pub struct NativeUnverifiedRecord {
    pub path: String,
    pub fleet_key: String,
    pub serve_pid: i32,
    pub serve_alive: bool,
    pub remove_with: String,
}

outcome! { UnverifiedOutcome { records: Vec<NativeUnverifiedRecord> } }

#[napi(catch_unwind)]
pub fn registry_list_unverified(dir: Option<String>) -> UnverifiedOutcome {
    registry(dir)
        .and_then(|r| r.unverified_records())
        .map(|records| {
            records
                .into_iter()
                .map(|u| NativeUnverifiedRecord {
                    remove_with: u.removal_hint(),
                    path: u.path.display().to_string(),
                    fleet_key: u.fleet_key,
                    serve_pid: u.serve_pid,
                    serve_alive: u.serve_alive,
                })
                .collect()
        })
        .into()
}

outcome! { SweepOutcome { report: NativeSweepReport } }

/// Sweeps off the JS thread (orphans are probed over HTTP and stopped with a grace).
#[napi(catch_unwind, ts_return_type = "Promise<SweepOutcome>")]
pub fn registry_sweep(
    env: &Env,
    dir: Option<String>,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'_, SweepOutcome>> {
    let registry = registry(dir);
    crate::guard::spawn(env, async move {
        let report = match registry {
            Ok(registry) => registry.sweep().await,
            Err(e) => Err(e),
        };
        Ok(report.map(NativeSweepReport::from).into())
    })
}

#[napi(object)]
pub struct NativeStopResult {
    /// A live serve was found and is gone now.
    pub stopped: bool,
    pub serve_pid: Option<i32>,
    pub runner_pid: Option<i32>,
    /// The serve outlived the grace and was killed.
    pub forced: bool,
}

outcome! { StopFleetOutcome { result: NativeStopResult } }

/// Stops fleet `fleet_key`'s serve and runner for everyone (off the JS thread); resolves once
/// both are gone. A runner that cannot be proven, or processes that outlive a kill, are errors.
#[napi(catch_unwind, ts_return_type = "Promise<StopFleetOutcome>")]
pub fn registry_stop_fleet(
    env: &Env,
    dir: Option<String>,
    fleet_key: String,
    grace_ms: f64,
) -> napi::Result<napi::bindgen_prelude::PromiseRaw<'_, StopFleetOutcome>> {
    let registry = registry(dir);
    let grace = qvac_managed_core::options::millis_saturating(grace_ms);
    crate::guard::spawn(env, async move {
        let outcome = match registry {
            Ok(registry) => registry.stop_fleet(&fleet_key, grace).await,
            Err(e) => Err(e),
        };
        let result = outcome
            .map_err(NativeError::from)
            .and_then(|outcome| match outcome {
                StopOutcome::NotRunning => Ok(NativeStopResult {
                    stopped: false,
                    serve_pid: None,
                    runner_pid: None,
                    forced: false,
                }),
                StopOutcome::Stopped {
                    serve_pid,
                    runner_pid,
                    forced,
                    ..
                } => Ok(NativeStopResult {
                    stopped: true,
                    serve_pid: Some(serve_pid),
                    runner_pid: Some(runner_pid),
                    forced,
                }),
                StopOutcome::StoppedStarting { runner_pid, .. } => Ok(NativeStopResult {
                    stopped: true,
                    serve_pid: None,
                    runner_pid: Some(runner_pid),
                    forced: false,
                }),
                StopOutcome::NotProven { .. } | StopOutcome::StillRunning { .. } => {
                    Err(NativeError {
                        code: "SERVE_STOP_FAILED".into(),
                        message: format!(
                            "fleet {fleet_key}: {}",
                            outcome.failure(&fleet_key).unwrap_or_default()
                        ),
                        ..Default::default()
                    })
                }
            });
        Ok(result.into())
    })
}

#[napi(object)]
pub struct NativeRecordRead {
    /// 'missing' | 'corrupt' | 'untrusted' | 'trusted'
    pub state: String,
    pub reason: Option<String>,
    pub record_json: Option<String>,
}

impl From<RecordState> for NativeRecordRead {
    fn from(state: RecordState) -> Self {
        let (state, reason, record) = match state {
            RecordState::Missing => ("missing", None, None),
            RecordState::Corrupt(reason) => ("corrupt", Some(reason), None),
            RecordState::Untrusted(record, reason) => ("untrusted", Some(reason), Some(record)),
            RecordState::Trusted(record) => ("trusted", None, Some(record)),
        };
        NativeRecordRead {
            state: state.into(),
            reason,
            record_json: record.and_then(|r| serde_json::to_string(&r).ok()),
        }
    }
}

outcome! { RecordOutcome { read: NativeRecordRead } }

#[napi(catch_unwind)]
pub fn registry_read_record(dir: Option<String>, fleet_key: String) -> RecordOutcome {
    registry(dir)
        .and_then(|r| r.read_record(&fleet_key))
        .map(NativeRecordRead::from)
        .into()
}

#[napi(catch_unwind)]
pub fn registry_write_record(dir: Option<String>, record_json: String) -> Option<NativeError> {
    let record = match serde_json::from_str(&record_json) {
        Ok(record) => record,
        Err(e) => {
            return Some(errors::invalid_option(
                "record",
                format!("invalid serve record: {e}"),
            ))
        }
    };
    registry(dir)
        .and_then(|r| r.write_record(&record))
        .err()
        .map(NativeError::from)
}

/// One attempt at `<key>.lock`; the handle is released with `releaseLock`.
#[napi(catch_unwind)]
pub fn registry_try_spawn_lock(env: Env, dir: Option<String>, fleet_key: String) -> LockOutcome {
    hold(
        EnvId::of(&env),
        registry(dir).and_then(|r| r.try_spawn_lock(&fleet_key)),
        HeldResource::Pid,
    )
}

#[napi(object)]
pub struct NativeConsumer {
    /// Released with `releaseLock(handle)` (or at exit).
    pub handle: u32,
    /// The marker's name, `<pid>.<8 hex>`.
    pub id: String,
}

outcome! { ConsumerOutcome { consumer: NativeConsumer } }

/// Adds this process's marker; removed by `releaseLock(handle)` or at exit.
#[napi(catch_unwind)]
pub fn registry_add_consumer(env: Env, dir: Option<String>, fleet_key: String) -> ConsumerOutcome {
    registry(dir)
        .and_then(|r| r.add_consumer(&fleet_key))
        .map(|marker| NativeConsumer {
            id: marker.id().to_owned(),
            handle: crate::held::insert(EnvId::of(&env), HeldResource::Consumer(marker)),
        })
        .into()
}

outcome! { ConsumersOutcome { pids: Vec<i32> } }

#[napi(catch_unwind)]
pub fn registry_live_consumers(
    dir: Option<String>,
    fleet_key: String,
    prune: bool,
) -> ConsumersOutcome {
    registry(dir)
        .and_then(|r| r.live_consumers(&fleet_key, prune))
        .into()
}

#[napi(object)]
pub struct NativeStartFailure {
    pub code: String,
    pub message: String,
    pub output_tail: String,
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
}

outcome! { StartFailureOutcome { failure: Option<NativeStartFailure> } }

#[napi(catch_unwind)]
pub fn registry_read_start_failure(dir: Option<String>, fleet_key: String) -> StartFailureOutcome {
    registry(dir)
        .and_then(|r| r.read_start_failure(&fleet_key))
        .map(|failure| {
            failure.map(|f| NativeStartFailure {
                code: f.code,
                message: f.message,
                output_tail: f.output_tail,
                exit_code: f.exit_code,
                signal: f.signal,
            })
        })
        .into()
}

#[napi(catch_unwind)]
pub fn registry_write_start_failure(
    dir: Option<String>,
    fleet_key: String,
    failure: NativeStartFailure,
) -> Option<NativeError> {
    let failure = StartFailure {
        code: failure.code,
        message: failure.message,
        output_tail: failure.output_tail,
        exit_code: failure.exit_code,
        signal: failure.signal,
        attempt: None,
    };
    registry(dir)
        .and_then(|r| r.write_start_failure(&fleet_key, &failure))
        .err()
        .map(NativeError::from)
}
