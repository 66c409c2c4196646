//! Linux: build.rs links the addon with `--wrap=<name>` for the three functions, so the image's
//! references to `<name>` (napi-sys's included) bind to `__wrap_<name>` below, and
//! `__real_<name>` binds to the host's `<name>`. GNU ld, gold and lld all do this for ELF.

use std::ffi::c_void;

use napi::sys::{
    napi_env, napi_finalize, napi_status, napi_threadsafe_function,
    napi_threadsafe_function_call_js, napi_value,
};

use super::cleanup_hooks::{self, Hook};
use super::tsfn_finalize;

extern "C" {
    fn __real_napi_create_threadsafe_function(
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
    ) -> napi_status;
    fn __real_napi_add_env_cleanup_hook(env: napi_env, fun: Hook, arg: *mut c_void) -> napi_status;
    fn __real_napi_remove_env_cleanup_hook(
        env: napi_env,
        fun: Hook,
        arg: *mut c_void,
    ) -> napi_status;
}

/// `napi_create_threadsafe_function` for this image: see [`tsfn_finalize`].
///
/// # Safety
/// As `napi_create_threadsafe_function`.
#[no_mangle]
#[allow(clippy::too_many_arguments)] // Node-API's signature
pub unsafe extern "C" fn __wrap_napi_create_threadsafe_function(
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
    // SAFETY: the caller's arguments, forwarded to the host's function.
    unsafe {
        tsfn_finalize::create(
            __real_napi_create_threadsafe_function,
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
pub unsafe extern "C" fn __wrap_napi_add_env_cleanup_hook(
    env: napi_env,
    fun: Hook,
    arg: *mut c_void,
) -> napi_status {
    // SAFETY: the caller's arguments, forwarded to the host's function.
    unsafe { cleanup_hooks::add(__real_napi_add_env_cleanup_hook, env, fun, arg) }
}

/// `napi_remove_env_cleanup_hook` for this image: see [`cleanup_hooks`].
///
/// # Safety
/// As `napi_remove_env_cleanup_hook`.
#[no_mangle]
pub unsafe extern "C" fn __wrap_napi_remove_env_cleanup_hook(
    env: napi_env,
    fun: Hook,
    arg: *mut c_void,
) -> napi_status {
    // SAFETY: the caller's arguments, forwarded to the host's function.
    unsafe { cleanup_hooks::remove(__real_napi_remove_env_cleanup_hook, env, fun, arg) }
}
