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
//! accepted. Node, and a Bare that fixes either bug, go through them unchanged. This needs
//! napi-sys to call Node-API by symbol, as it does with napi's default features off
//! (Cargo.toml); with `dyn-symbols` it would call through its own table, around these.
//!
//! How the calls are routed there is an OS fact, one file each:
//! - Linux ([`linux`]): the linker's `--wrap` (build.rs) renames the image's references to
//!   `__wrap_napi_*`, defined there, which reach the host's functions as `__real_napi_*`.
//! - macOS ([`macos`]): the functions are defined in this image under their Node-API names,
//!   which the linker binds the image's own references to; the host's are found with `dlsym`.
//! - Windows: not routed. napi-sys on MSVC calls Node-API through its own private table of
//!   `GetProcAddress` pointers, which no code outside napi-sys can reach; the GNU build (the
//!   one tested here under Wine) imports them from `node.exe` by name, which `bare.exe` is not.
//!   Node on Windows needs nothing. Bare on Windows is not supported: the MSVC build looks
//!   Node-API up in the running executable, so in `bare.exe` it would call Bare's functions
//!   unwrapped and meet both bugs (not tried).

// The only `unsafe` of the binding: calls through C function pointers handed over by the host.
#![allow(unsafe_code)]

#[cfg(any(target_os = "linux", target_os = "macos"))]
mod cleanup_hooks;
#[cfg(any(target_os = "linux", target_os = "macos"))]
mod tsfn_finalize;

#[cfg(target_os = "linux")]
mod linux;
#[cfg(target_os = "macos")]
mod macos;
