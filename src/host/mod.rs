//! Host facts: where the JS host's Node-API differs from Node's, and how this addon copes.
//!
//! Bare (1.31.0 and 1.33.4 measured; `__test__/bare/probe/` reports what a host does) differs
//! from Node-API in two calls napi-rs relies on:
//! 1. a threadsafe function's finalizer is called as `(env, context, finalize_data)`; Node-API
//!    passes `(env, finalize_data, context)`. napi-rs frees its state from `finalize_data`, so
//!    in Bare it frees the wrong pointer (the first settled promise crashes the process);
//! 2. `napi_remove_env_cleanup_hook` for a hook that was never added aborts the process; Node
//!    returns `napi_ok`.
//!
//! Every call this image makes to `napi_create_threadsafe_function`,
//! `napi_add_env_cleanup_hook` and `napi_remove_env_cleanup_hook` (napi-rs's included) goes
//! through [`tsfn_finalize`] and [`cleanup_hooks`], which decide per call from what the host
//! does, never from which host it is: a finalizer is matched to the box this image handed the
//! host, whichever argument it arrives in, and a remove is forwarded only for a hook the host
//! accepted. Node, and a Bare that fixes either bug, go through them unchanged.
//!
//! The image's calls reach these wrappers in a way that is an OS fact, one file each:
//! - Linux ([`linux`]): napi-sys calls Node-API by symbol (napi's default features are off,
//!   Cargo.toml) and the linker's `--wrap` (build.rs) renames the image's references to
//!   `__wrap_napi_*`, defined there, which reach the host's functions as `__real_napi_*`.
//! - macOS ([`macos`]): by symbol too; the functions are defined in this image under their
//!   Node-API names, which the linker binds the image's own references to; the host's are
//!   found with `dlsym`.
//! - Windows ([`windows`]): napi-sys has `dyn-symbols` on (Cargo.toml), so the image imports
//!   nothing from `node.exe` (a name `bare.exe` is not) and looks every function up in the
//!   running executable with `GetProcAddress`; this image's own `GetProcAddress` import is
//!   routed through a function that hands out the wrappers for the three names.
//!
//! [`threadsafe_function_counts`] reports what the host did (the `nodeApiHostReport()` export), so the tests see which order
//! each host uses and that the calls went through here.

// The only `unsafe` of the binding: calls through C function pointers handed over by the host.
#![allow(unsafe_code)]

mod cleanup_hooks;
mod tsfn_finalize;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
#[cfg(windows)]
mod windows;

/// What the host did with this image's threadsafe functions so far: `(created, finalized in
/// Node-API's order, finalized in the swapped order)`.
pub use tsfn_finalize::counts as threadsafe_function_counts;
