//! Environment cleanup hooks, removed only when the host accepted them.
//!
//! Node-API returns `napi_ok` for removing a hook that is not registered; Bare aborts the
//! process. So [`add`] records every `(env, hook, arg)` the host accepted, and [`remove`]
//! forwards only a recorded one, answering `napi_ok` itself otherwise. A hook that ran at
//! teardown stays recorded: removing it afterwards is forwarded, which both hosts accept (Bare
//! keeps its index of drained hooks). Entries of torn-down environments are not purged: a hook
//! that purged them would have to run after every other hook, which depends on the host's
//! order; what stays is a few entries per environment ever torn down.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::sync::{Mutex, MutexGuard, PoisonError};

use napi::sys::{napi_env, napi_status, Status};

pub type Hook = Option<unsafe extern "C" fn(arg: *mut c_void)>;

/// `napi_add_env_cleanup_hook` / `napi_remove_env_cleanup_hook` as the host exports them.
pub type HookFn = unsafe extern "C" fn(napi_env, Hook, *mut c_void) -> napi_status;

/// `(env, hook, arg)` of every hook the host accepted and that was not removed since.
static ADDED: Mutex<BTreeSet<(usize, usize, usize)>> = Mutex::new(BTreeSet::new());

fn added() -> MutexGuard<'static, BTreeSet<(usize, usize, usize)>> {
    // A panic cannot happen while the set is held; a poisoned set is still a correct one.
    ADDED.lock().unwrap_or_else(PoisonError::into_inner)
}

fn key(env: napi_env, hook: Hook, arg: *mut c_void) -> (usize, usize, usize) {
    (env as usize, hook.map_or(0, |f| f as usize), arg as usize)
}

/// `napi_add_env_cleanup_hook` through `real`, recording the hook if the host accepted it.
///
/// # Safety
/// As `napi_add_env_cleanup_hook`; `real` is the host's function.
pub unsafe fn add(real: HookFn, env: napi_env, hook: Hook, arg: *mut c_void) -> napi_status {
    // SAFETY: the caller's arguments, forwarded as given.
    let status = unsafe { real(env, hook, arg) };
    if status == Status::napi_ok {
        added().insert(key(env, hook, arg));
    }
    status
}

/// `napi_remove_env_cleanup_hook` through `real` for a recorded hook; `napi_ok`, as Node-API
/// answers, for any other.
///
/// # Safety
/// As `napi_remove_env_cleanup_hook`; `real` is the host's function.
pub unsafe fn remove(real: HookFn, env: napi_env, hook: Hook, arg: *mut c_void) -> napi_status {
    if !added().remove(&key(env, hook, arg)) {
        return Status::napi_ok;
    }
    // SAFETY: the caller's arguments, forwarded as given, for a hook the host accepted.
    unsafe { real(env, hook, arg) }
}

/// [`add`] (`adding`) or [`remove`] through a host function found by address (macOS `dlsym`,
/// Windows `GetProcAddress`); `napi_generic_failure` when none was found.
///
/// # Safety
/// As `napi_add_env_cleanup_hook` / `napi_remove_env_cleanup_hook`; `host`, when present, is the
/// address of the host's export of that name, which has Node-API's signature.
#[cfg(any(target_os = "macos", windows))]
pub unsafe fn via(
    host: Option<usize>,
    adding: bool,
    env: napi_env,
    hook: Hook,
    arg: *mut c_void,
) -> napi_status {
    let Some(host) = host else {
        return Status::napi_generic_failure;
    };
    // SAFETY: the address of the host's export, whose signature `HookFn` is.
    let real = unsafe { std::mem::transmute::<usize, HookFn>(host) };
    // SAFETY: the caller's arguments, forwarded to the host's function.
    unsafe {
        if adding {
            add(real, env, hook, arg)
        } else {
            remove(real, env, hook, arg)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;

    thread_local! {
        /// What the fake host saw: `true` for an add, `false` for a remove.
        static SEEN: RefCell<Vec<(bool, usize)>> = const { RefCell::new(Vec::new()) };
    }

    unsafe extern "C" fn host_add(_env: napi_env, _hook: Hook, arg: *mut c_void) -> napi_status {
        SEEN.with(|s| s.borrow_mut().push((true, arg as usize)));
        Status::napi_ok
    }

    unsafe extern "C" fn host_add_fails(
        _env: napi_env,
        _hook: Hook,
        _arg: *mut c_void,
    ) -> napi_status {
        Status::napi_invalid_arg
    }

    unsafe extern "C" fn host_remove(_env: napi_env, _hook: Hook, arg: *mut c_void) -> napi_status {
        SEEN.with(|s| s.borrow_mut().push((false, arg as usize)));
        Status::napi_ok
    }

    unsafe extern "C" fn hook(_arg: *mut c_void) {}

    fn env() -> napi_env {
        0xe000 as napi_env
    }

    #[test]
    fn only_hooks_the_host_accepted_are_removed_there() {
        let (a, b, c) = (
            0xa1 as *mut c_void,
            0xa2 as *mut c_void,
            0xa3 as *mut c_void,
        );
        // SAFETY: the fake hosts only record their arguments.
        unsafe {
            assert_eq!(add(host_add, env(), Some(hook), a), Status::napi_ok);
            assert_eq!(
                add(host_add_fails, env(), Some(hook), c),
                Status::napi_invalid_arg
            );
            assert_eq!(remove(host_remove, env(), Some(hook), b), Status::napi_ok);
            assert_eq!(remove(host_remove, env(), Some(hook), c), Status::napi_ok);
            assert_eq!(remove(host_remove, env(), Some(hook), a), Status::napi_ok);
            assert_eq!(remove(host_remove, env(), Some(hook), a), Status::napi_ok);
        }
        let seen = SEEN.with(|s| s.borrow_mut().drain(..).collect::<Vec<_>>());
        assert_eq!(seen, vec![(true, 0xa1), (false, 0xa1)]);
    }
}
