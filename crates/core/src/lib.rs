//! The lifecycle of local QVAC processes, as plain Rust.
//!
//! Nothing here knows about Node: the napi binding at the workspace root converts types and
//! maps errors, the `qvac-managed` binary drives the runner. Every concept has one module.

//!
//! Two products, two trees: [`managed`] (the shared serve) and [`primitives`] (what it is built
//! on, exported on their own); beside them what both use ([`platform`], the only home of OS
//! specifics, [`dir_watch`], [`http`], [`js_value`], [`options`], [`private_file`]). Every module
//! is also reachable at the crate root by its own name.

pub mod dir_watch;
pub mod http;
pub mod js_value;
pub mod managed;
pub mod options;
pub mod platform;
pub mod primitives;
pub mod private_file;

pub use managed::{
    budget, catalog, consumer, consumer_watch, launch, managed_options, memory_size, registry,
    serve_start, serve_watch,
};
pub use primitives::{file_lock, pid_lock, process, retry, safety_net, supervisor};

pub use file_lock::{FileLock, FileLockError, LockMode};
pub use pid_lock::{LockHolder, PidLock, PidLockError};
pub use process::{Liveness, ProcessIdentity};
pub use retry::{Backoff, CancelToken, RetryError, RetryPolicy};
