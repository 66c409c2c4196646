//! macOS: the three functions are defined here under their Node-API names. The linker binds
//! the image's own references (napi-sys's included) to a definition inside the image, so they
//! land here; the host's functions are found with `dlsym(RTLD_DEFAULT, <name>)`, which
//! searches the loaded images in load order (the host's executable, which exports Node-API,
//! first). A lookup that finds this image's own definition, or nothing, is refused with
//! `napi_generic_failure` rather than called.

use std::ffi::{c_char, c_void, CStr};
use std::sync::OnceLock;

use napi::sys::{
    napi_env, napi_finalize, napi_status, napi_threadsafe_function,
    napi_threadsafe_function_call_js, napi_value,
};

use super::cleanup_hooks::{self, Hook, HookFn};
use super::tsfn_finalize::{self, CreateFn};

extern "C" {
    fn dlsym(handle: *mut c_void, symbol: *const c_char) -> *mut c_void;
}

/// `RTLD_DEFAULT` in Darwin's `<dlfcn.h>`: `((void *) -2)`.
const RTLD_DEFAULT: *mut c_void = -2isize as *mut c_void;

/// The host's function named `name`, looked up once; `None` if it is missing or is `ours`.
fn host_fn(cache: &OnceLock<usize>, name: &CStr, ours: usize) -> Option<usize> {
    let found = *cache.get_or_init(|| {
        // SAFETY: `name` is NUL-terminated; dlsym only reads it.
        let found = unsafe { dlsym(RTLD_DEFAULT, name.as_ptr()) } as usize;
        if found == ours {
            0
        } else {
            found
        }
    });
    (found != 0).then_some(found)
}

/// `napi_create_threadsafe_function` for this image: see [`tsfn_finalize`].
///
/// # Safety
/// As `napi_create_threadsafe_function`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // Node-API's signature
pub unsafe extern "C" fn napi_create_threadsafe_function(
    env: napi_env,
    func: napi_value,
    async_resource: napi_value,
    async_resource_name: napi_value,
    max_queue_size: usize,
    initial_thread_count: usize,
    thread_finalize_data: *mut c_void,
    thread_finalize_cb: napi_finalize,
    context: *mut c_void,
    call_js_cb: napi_threadsafe_function_call_js,
    result: *mut napi_threadsafe_function,
) -> napi_status {
    static HOST: OnceLock<usize> = OnceLock::new();
    let host = host_fn(
        &HOST,
        c"napi_create_threadsafe_function",
        napi_create_threadsafe_function as CreateFn as usize,
    );
    // SAFETY: the caller's arguments, forwarded to the host's export of this name.
    unsafe {
        tsfn_finalize::create_via(
            host,
            env,
            func,
            async_resource,
            async_resource_name,
            max_queue_size,
            initial_thread_count,
            thread_finalize_data,
            thread_finalize_cb,
            context,
            call_js_cb,
            result,
        )
    }
}

/// `napi_add_env_cleanup_hook` for this image: see [`cleanup_hooks`].
///
/// # Safety
/// As `napi_add_env_cleanup_hook`.
#[no_mangle]
pub unsafe extern "C" fn napi_add_env_cleanup_hook(
    env: napi_env,
    fun: Hook,
    arg: *mut c_void,
) -> napi_status {
    static HOST: OnceLock<usize> = OnceLock::new();
    let host = host_fn(
        &HOST,
        c"napi_add_env_cleanup_hook",
        napi_add_env_cleanup_hook as HookFn as usize,
    );
    // SAFETY: the caller's arguments, forwarded to the host's export of this name.
    unsafe { cleanup_hooks::via(host, true, env, fun, arg) }
}

/// `napi_remove_env_cleanup_hook` for this image: see [`cleanup_hooks`].
///
/// # Safety
/// As `napi_remove_env_cleanup_hook`.
#[no_mangle]
pub unsafe extern "C" fn napi_remove_env_cleanup_hook(
    env: napi_env,
    fun: Hook,
    arg: *mut c_void,
) -> napi_status {
    static HOST: OnceLock<usize> = OnceLock::new();
    let host = host_fn(
        &HOST,
        c"napi_remove_env_cleanup_hook",
        napi_remove_env_cleanup_hook as HookFn as usize,
    );
    // SAFETY: the caller's arguments, forwarded to the host's export of this name.
    unsafe { cleanup_hooks::via(host, false, env, fun, arg) }
}
