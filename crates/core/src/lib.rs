//! The lifecycle of local QVAC processes, as plain Rust.
//!
//! Nothing here knows about Node: the napi binding at the workspace root converts types and
//! maps errors, the `qvac-managed` binary drives the runner. Every concept has one module.

pub mod catalog;
pub mod consumer;
pub mod consumer_watch;
pub mod dir_watch;
pub mod file_lock;
pub mod http;
pub mod js_value;
pub mod launch;
pub mod managed_options;
pub mod options;
pub mod pid_lock;
mod platform;
pub mod private_file;
pub mod process;
pub mod registry;
pub mod retry;
pub mod safety_net;
pub mod serve_start;
pub mod supervisor;

pub use file_lock::{FileLock, FileLockError, LockMode};
pub use pid_lock::{LockHolder, PidLock, PidLockError};
pub use process::{Liveness, ProcessIdentity};
pub use retry::{Backoff, CancelToken, RetryError, RetryPolicy};
