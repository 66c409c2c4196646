//! Binding for the managed-serve registry. `dir` overrides `~/.qvac/managed-serves` (tests,
//! tools); records cross the boundary as JSON text in upstream's field names.

use std::path::PathBuf;

use napi::Env;
use napi_derive::napi;
use qvac_managed_core::registry::{RecordState, Registry, ServeRecord, StartFailure};

use crate::errors::NativeError;
use crate::held::{self, EnvId, HeldLock};
use crate::locks::LockOutcome;

fn registry(dir: Option<String>) -> Result<Registry, NativeError> {
    match dir {
        Some(dir) => Ok(Registry::at(PathBuf::from(dir))),
        None => Registry::default_location().map_err(NativeError::from),
    }
}

#[napi(object)]
pub struct DirOutcome {
    pub dir: Option<String>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn registry_default_dir() -> DirOutcome {
    match registry(None) {
        Ok(r) => DirOutcome {
            dir: Some(r.dir().display().to_string()),
            error: None,
        },
        Err(e) => DirOutcome {
            dir: None,
            error: Some(e),
        },
    }
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

#[napi(object)]
pub struct ListOutcome {
    pub serves: Option<Vec<ServeEntry>>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn registry_list_serves(dir: Option<String>) -> ListOutcome {
    let listed = registry(dir).and_then(|r| r.list_serves().map_err(NativeError::from));
    match listed {
        Ok(serves) => ListOutcome {
            serves: Some(
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
                        consumers: s.consumers as u32,
                        started_at: s.started_at,
                        idle_timeout_ms: s.idle_timeout_ms,
                    })
                    .collect(),
            ),
            error: None,
        },
        Err(e) => ListOutcome {
            serves: None,
            error: Some(e),
        },
    }
}

#[napi(object)]
pub struct SweepOutcome {
    pub removed: Vec<String>,
    pub kept_untrusted: Vec<String>,
    pub corrupt: Vec<String>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn registry_sweep(dir: Option<String>) -> SweepOutcome {
    let paths = |v: Vec<PathBuf>| v.into_iter().map(|p| p.display().to_string()).collect();
    match registry(dir).and_then(|r| r.sweep().map_err(NativeError::from)) {
        Ok(report) => SweepOutcome {
            removed: paths(report.removed),
            kept_untrusted: paths(report.kept_untrusted),
            corrupt: paths(report.corrupt),
            error: None,
        },
        Err(e) => SweepOutcome {
            removed: vec![],
            kept_untrusted: vec![],
            corrupt: vec![],
            error: Some(e),
        },
    }
}

#[napi(object)]
pub struct RecordOutcome {
    /// 'missing' | 'corrupt' | 'untrusted' | 'trusted'
    pub state: String,
    pub reason: Option<String>,
    pub record_json: Option<String>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn registry_read_record(dir: Option<String>, fleet_key: String) -> RecordOutcome {
    let outcome =
        |state: &str, reason: Option<String>, record: Option<&ServeRecord>| RecordOutcome {
            state: state.into(),
            reason,
            record_json: record.and_then(|r| serde_json::to_string(r).ok()),
            error: None,
        };
    match registry(dir).and_then(|r| r.read_record(&fleet_key).map_err(NativeError::from)) {
        Ok(RecordState::Missing) => outcome("missing", None, None),
        Ok(RecordState::Corrupt(reason)) => outcome("corrupt", Some(reason), None),
        Ok(RecordState::Untrusted(record, reason)) => {
            outcome("untrusted", Some(reason), Some(&record))
        }
        Ok(RecordState::Trusted(record)) => outcome("trusted", None, Some(&record)),
        Err(e) => RecordOutcome {
            state: "error".into(),
            reason: None,
            record_json: None,
            error: Some(e),
        },
    }
}

#[napi]
pub fn registry_write_record(dir: Option<String>, record_json: String) -> Option<NativeError> {
    let record: ServeRecord = match serde_json::from_str(&record_json) {
        Ok(record) => record,
        Err(e) => {
            return Some(NativeError {
                code: "INVALID_OPTION".into(),
                message: format!("invalid serve record: {e}"),
                ..Default::default()
            })
        }
    };
    registry(dir)
        .and_then(|r| r.write_record(&record).map_err(NativeError::from))
        .err()
}

/// One attempt at `<key>.lock`; the handle is released with `releaseLock`.
#[napi]
pub fn registry_try_spawn_lock(env: Env, dir: Option<String>, fleet_key: String) -> LockOutcome {
    match registry(dir).and_then(|r| r.try_spawn_lock(&fleet_key).map_err(NativeError::from)) {
        Ok(lock) => LockOutcome::acquired(EnvId::of(&env), HeldLock::Pid(lock)),
        Err(e) => LockOutcome::failed(e),
    }
}

#[napi(object)]
pub struct ConsumerOutcome {
    pub handle: Option<u32>,
    pub id: Option<String>,
    pub error: Option<NativeError>,
}

/// Adds this process's marker; removed by `releaseLock(handle)` or at exit.
#[napi]
pub fn registry_add_consumer(env: Env, dir: Option<String>, fleet_key: String) -> ConsumerOutcome {
    match registry(dir).and_then(|r| r.add_consumer(&fleet_key).map_err(NativeError::from)) {
        Ok(marker) => ConsumerOutcome {
            id: Some(marker.id().to_owned()),
            handle: Some(held::insert(EnvId::of(&env), HeldLock::Consumer(marker))),
            error: None,
        },
        Err(e) => ConsumerOutcome {
            handle: None,
            id: None,
            error: Some(e),
        },
    }
}

#[napi(object)]
pub struct ConsumersOutcome {
    pub pids: Vec<i32>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn registry_live_consumers(
    dir: Option<String>,
    fleet_key: String,
    prune: bool,
) -> ConsumersOutcome {
    match registry(dir).and_then(|r| {
        r.live_consumers(&fleet_key, prune)
            .map_err(NativeError::from)
    }) {
        Ok(pids) => ConsumersOutcome { pids, error: None },
        Err(e) => ConsumersOutcome {
            pids: vec![],
            error: Some(e),
        },
    }
}

#[napi(object)]
pub struct NativeStartFailure {
    pub code: String,
    pub message: String,
    pub output_tail: String,
}

#[napi(object)]
pub struct StartFailureOutcome {
    pub failure: Option<NativeStartFailure>,
    pub error: Option<NativeError>,
}

#[napi]
pub fn registry_read_start_failure(dir: Option<String>, fleet_key: String) -> StartFailureOutcome {
    match registry(dir).and_then(|r| r.read_error(&fleet_key).map_err(NativeError::from)) {
        Ok(failure) => StartFailureOutcome {
            failure: failure.map(|f| NativeStartFailure {
                code: f.code,
                message: f.message,
                output_tail: f.output_tail,
            }),
            error: None,
        },
        Err(e) => StartFailureOutcome {
            failure: None,
            error: Some(e),
        },
    }
}

#[napi]
pub fn registry_write_start_failure(
    dir: Option<String>,
    fleet_key: String,
    failure: NativeStartFailure,
) -> Option<NativeError> {
    let failure = StartFailure {
        code: failure.code,
        message: failure.message,
        output_tail: failure.output_tail,
    };
    registry(dir)
        .and_then(|r| {
            r.write_error(&fleet_key, &failure)
                .map_err(NativeError::from)
        })
        .err()
}
