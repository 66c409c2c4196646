//! The one mapping from core errors to the plain error objects the TS layer turns into classes.
//!
//! Domain failures (lock held, timeout, bad option) travel as values, not thrown napi errors,
//! because napi errors carry only a status and a message and these need their fields.

use napi_derive::napi;
use qvac_managed_core::consumer::EnsureError;
use qvac_managed_core::managed_options::OptionsError;
use qvac_managed_core::options::InvalidOption;
use qvac_managed_core::pid_lock::HeldError;
use qvac_managed_core::registry::RegistryError;
use qvac_managed_core::{FileLockError, PidLockError};

/// An error as the TS layer receives it; `code` picks the JS class.
#[napi(object)]
#[derive(Default)]
pub struct NativeError {
    pub code: String,
    pub message: String,
    pub path: Option<String>,
    pub holder_pid: Option<i32>,
    pub holder_alive: Option<bool>,
    pub attempts: Option<u32>,
    pub elapsed_ms: Option<f64>,
    pub option: Option<String>,
    /// The model names an UNKNOWN_MODEL / DUPLICATE_MODEL / MULTIPLE_DEFAULTS error is about.
    pub models: Option<Vec<String>>,
    /// The serve's last output, for start failures.
    pub output_tail: Option<String>,
    /// SERVE_EXITED: the serve's exit code and signal name.
    pub exit_code: Option<i32>,
    pub signal: Option<String>,
    /// SERVE_CRASH_LOOP: unexpected exits in the window, the window, and when a start is allowed.
    pub restarts: Option<u32>,
    pub window_ms: Option<f64>,
    pub retry_after_ms: Option<f64>,
    /// SERVE_MEMORY_BUDGET: the start's need, the budget, and the fleets holding memory that
    /// cannot be evicted (in use, pinned, starting).
    pub need_bytes: Option<f64>,
    pub budget_bytes: Option<f64>,
    pub held_by: Option<Vec<NativeFleetMemory>>,
}

/// One fleet of SERVE_MEMORY_BUDGET's `heldBy`.
#[napi(object)]
pub struct NativeFleetMemory {
    pub fleet: String,
    pub models: Vec<String>,
    pub rss_bytes: f64,
    pub consumers: u32,
    pub connections: u32,
    pub pinned: bool,
}

/// INVALID_OPTION for input the binding itself could not read (`option` names it).
pub fn invalid_option(option: &str, message: String) -> NativeError {
    NativeError {
        code: "INVALID_OPTION".into(),
        message,
        option: Some(option.into()),
        ..Default::default()
    }
}

impl From<InvalidOption> for NativeError {
    fn from(err: InvalidOption) -> Self {
        NativeError {
            code: err.code().into(),
            message: err.to_string(),
            option: Some(err.option.clone()),
            ..Default::default()
        }
    }
}

impl From<PidLockError> for NativeError {
    fn from(err: PidLockError) -> Self {
        let mut native = NativeError {
            code: err.code().into(),
            message: err.to_string(),
            ..Default::default()
        };
        match &err {
            PidLockError::Held(held) => {
                let HeldError {
                    path,
                    holder,
                    attempts,
                    elapsed,
                    ..
                } = held.as_ref();
                native.path = Some(path.display().to_string());
                native.holder_pid = holder.pid();
                native.holder_alive = Some(holder.is_alive());
                native.attempts = Some(*attempts);
                native.elapsed_ms = Some(elapsed.as_secs_f64() * 1000.0);
            }
            PidLockError::Io { path, .. } | PidLockError::Aborted { path } => {
                native.path = Some(path.display().to_string());
            }
        }
        native
    }
}

impl From<FileLockError> for NativeError {
    fn from(err: FileLockError) -> Self {
        let mut native = NativeError {
            code: err.code().into(),
            message: err.to_string(),
            ..Default::default()
        };
        match &err {
            FileLockError::Timeout {
                path,
                attempts,
                elapsed,
                holder_pid,
            } => {
                native.path = Some(path.display().to_string());
                native.attempts = Some(*attempts);
                native.elapsed_ms = Some(elapsed.as_secs_f64() * 1000.0);
                native.holder_pid = *holder_pid;
            }
            FileLockError::Io { path, .. } | FileLockError::Aborted { path } => {
                native.path = Some(path.display().to_string());
            }
        }
        native
    }
}

impl From<OptionsError> for NativeError {
    fn from(err: OptionsError) -> Self {
        match err {
            OptionsError::Invalid(invalid) => invalid.into(),
            other => NativeError {
                code: other.code().into(),
                message: other.to_string(),
                models: Some(other.models().to_vec()),
                ..Default::default()
            },
        }
    }
}

impl From<RegistryError> for NativeError {
    fn from(err: RegistryError) -> Self {
        match err {
            RegistryError::Lock(lock) => lock.into(),
            other => {
                let path = match &other {
                    RegistryError::Unsafe { dir, .. } => Some(dir.display().to_string()),
                    RegistryError::Io { path, .. } => Some(path.display().to_string()),
                    _ => None,
                };
                NativeError {
                    code: other.code().into(),
                    message: other.to_string(),
                    path,
                    ..Default::default()
                }
            }
        }
    }
}

impl From<EnsureError> for NativeError {
    fn from(err: EnsureError) -> Self {
        match err {
            EnsureError::Registry(registry) => registry.into(),
            EnsureError::MemoryBudget(ref refusal) => NativeError {
                code: err.code(),
                message: err.to_string(),
                need_bytes: Some(refusal.need_bytes as f64),
                budget_bytes: Some(refusal.budget_bytes as f64),
                held_by: Some(
                    refusal
                        .held_by
                        .iter()
                        .map(|f| NativeFleetMemory {
                            fleet: f.fleet.clone(),
                            models: f.models.clone(),
                            rss_bytes: f.rss_bytes as f64,
                            consumers: f.consumers,
                            connections: f.connections,
                            pinned: f.pinned,
                        })
                        .collect(),
                ),
                ..Default::default()
            },
            EnsureError::Invalid(invalid) => invalid.into(),
            EnsureError::CrashLoop { ref crash_loop, .. } => NativeError {
                code: err.code(),
                message: err.to_string(),
                output_tail: err.output_tail().map(str::to_owned),
                restarts: Some(crash_loop.restarts),
                window_ms: Some(crash_loop.window.as_millis() as f64),
                retry_after_ms: Some(crash_loop.retry_after.as_millis() as f64),
                ..Default::default()
            },
            other => {
                let (exit_code, signal) = other.exit_status().unwrap_or_default();
                NativeError {
                    code: other.code(),
                    output_tail: other.output_tail().map(str::to_owned),
                    message: other.to_string(),
                    exit_code,
                    signal,
                    ..Default::default()
                }
            }
        }
    }
}
