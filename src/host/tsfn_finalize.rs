//! A threadsafe function's finalizer, called in whichever argument order the host uses.
//!
//! [`create`] hands the host a [`Finalizer`] box as `finalize_data` and [`finalize`] as the
//! callback, and leaves `context` as the caller gave it. When the host calls `finalize(env, a,
//! b)`, the box is whichever of `a` and `b` is a box still registered here whose recorded
//! context is the other one: `a` in Node-API's order, `b` in Bare's. The caller's callback then
//! gets `(env, finalize_data, context)` as Node-API promises.
//!
//! Why the recorded context is checked too: by finalize time `context` may be freed and its
//! address reused by another live box, so "`a` is a live box" alone can misread Bare's order.
//! A match on both cannot be misread that way: the caller's context was valid when its function
//! was created, so it was not one of our boxes then, and a later box records its own caller's
//! context. If both readings fit anyway (only for pointers already dangling at creation) or
//! neither does, the callback is not called: a leak rather than a guess. A registered box is
//! alive (freed only after leaving the registry, under its lock), so the checks read only
//! memory we own.
//!
//! Bare also calls the finalizer without a HandleScope (Node opens one). Nothing is done about
//! that: the finalizers napi-rs registers create no JS values.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use napi::sys::{
    napi_env, napi_finalize, napi_status, napi_threadsafe_function,
    napi_threadsafe_function_call_js, napi_value, Status,
};

/// `napi_create_threadsafe_function` as the host exports it.
pub type CreateFn = unsafe extern "C" fn(
    napi_env,
    napi_value,
    napi_value,
    napi_value,
    usize,
    usize,
    *mut c_void,
    napi_finalize,
    *mut c_void,
    napi_threadsafe_function_call_js,
    *mut napi_threadsafe_function,
) -> napi_status;

type FinalizeCb = unsafe extern "C" fn(napi_env, *mut c_void, *mut c_void);

/// What the caller asked the host to call at finalization.
struct Finalizer {
    cb: FinalizeCb,
    data: *mut c_void,
    context: *mut c_void,
}

/// Addresses of the boxes handed to the host and not finalized yet.
static LIVE: Mutex<BTreeSet<usize>> = Mutex::new(BTreeSet::new());

/// Functions created through [`create`] with a finalizer, and finalizers matched in each order.
static CREATED: AtomicU64 = AtomicU64::new(0);
static IN_NODE_API_ORDER: AtomicU64 = AtomicU64::new(0);
static IN_SWAPPED_ORDER: AtomicU64 = AtomicU64::new(0);

/// What this process's host has done so far: `(created, finalized in Node-API's order,
/// finalized in the swapped order)`. `created == 0` after a promise settled means the calls do
/// not go through here.
pub fn counts() -> (u64, u64, u64) {
    (
        CREATED.load(Ordering::Relaxed),
        IN_NODE_API_ORDER.load(Ordering::Relaxed),
        IN_SWAPPED_ORDER.load(Ordering::Relaxed),
    )
}

fn live() -> MutexGuard<'static, BTreeSet<usize>> {
    // A panic cannot happen while the set is held; a poisoned set is still a correct one.
    LIVE.lock().unwrap_or_else(PoisonError::into_inner)
}

/// `napi_create_threadsafe_function` through `real`, with the finalizer routed through
/// [`finalize`]. Without a finalizer the call is forwarded unchanged.
///
/// # Safety
/// As `napi_create_threadsafe_function`; `real` is the host's function.
#[allow(clippy::too_many_arguments)] // Node-API's signature
pub unsafe fn create(
    real: CreateFn,
    env: napi_env,
    func: napi_value,
    async_resource: napi_value,
    async_resource_name: napi_value,
    max_queue_size: usize,
    initial_thread_count: usize,
    finalize_data: *mut c_void,
    finalize_cb: napi_finalize,
    context: *mut c_void,
    call_js_cb: napi_threadsafe_function_call_js,
    result: *mut napi_threadsafe_function,
) -> napi_status {
    let Some(cb) = finalize_cb else {
        // SAFETY: the caller's arguments, forwarded as given.
        return unsafe {
            real(
                env,
                func,
                async_resource,
                async_resource_name,
                max_queue_size,
                initial_thread_count,
                finalize_data,
                finalize_cb,
                context,
                call_js_cb,
                result,
            )
        };
    };
    let boxed = Box::into_raw(Box::new(Finalizer {
        cb,
        data: finalize_data,
        context,
    }));
    live().insert(boxed as usize);
    // SAFETY: the caller's arguments, with our box and trampoline in place of the finalizer;
    // the box stays alive until `finalize` takes it out of `LIVE`.
    let status = unsafe {
        real(
            env,
            func,
            async_resource,
            async_resource_name,
            max_queue_size,
            initial_thread_count,
            boxed.cast(),
            Some(finalize),
            context,
            call_js_cb,
            result,
        )
    };
    if status == Status::napi_ok {
        CREATED.fetch_add(1, Ordering::Relaxed);
    }
    // A failed create never finalizes; free the box unless a host finalized it anyway.
    if status != Status::napi_ok && live().remove(&(boxed as usize)) {
        // SAFETY: `boxed` came from `Box::into_raw` above and has just left `LIVE`, so nothing
        // else can free it.
        drop(unsafe { Box::from_raw(boxed) });
    }
    status
}

/// [`create`] through a host function found by address (macOS `dlsym`, Windows
/// `GetProcAddress`); `napi_generic_failure` when none was found.
///
/// # Safety
/// As `napi_create_threadsafe_function`; `host`, when present, is the address of the host's
/// export of that name, which has Node-API's signature.
#[cfg(any(target_os = "macos", windows))]
#[allow(clippy::too_many_arguments)] // Node-API's signature
pub unsafe fn create_via(
    host: Option<usize>,
    env: napi_env,
    func: napi_value,
    async_resource: napi_value,
    async_resource_name: napi_value,
    max_queue_size: usize,
    initial_thread_count: usize,
    finalize_data: *mut c_void,
    finalize_cb: napi_finalize,
    context: *mut c_void,
    call_js_cb: napi_threadsafe_function_call_js,
    result: *mut napi_threadsafe_function,
) -> napi_status {
    let Some(host) = host else {
        return Status::napi_generic_failure;
    };
    // SAFETY: the address of the host's export, whose signature `CreateFn` is; the caller's
    // arguments forwarded to it.
    unsafe {
        create(
            std::mem::transmute::<usize, CreateFn>(host),
            env,
            func,
            async_resource,
            async_resource_name,
            max_queue_size,
            initial_thread_count,
            finalize_data,
            finalize_cb,
            context,
            call_js_cb,
            result,
        )
    }
}

/// The finalizer the host calls, in either order; see the module doc.
unsafe extern "C" fn finalize(env: napi_env, a: *mut c_void, b: *mut c_void) {
    let Some(finalizer) = claim(a, b) else {
        return;
    };
    // SAFETY: the caller's finalizer with the arguments it registered, in Node-API's order,
    // called once: its box has left `LIVE`. Called outside the lock: it may create or finalize
    // other threadsafe functions.
    unsafe { (finalizer.cb)(env, finalizer.data, finalizer.context) };
}

/// Takes out of [`LIVE`] the box among `a` and `b` whose recorded context is the other one.
fn claim(a: *mut c_void, b: *mut c_void) -> Option<Box<Finalizer>> {
    let mut live = live();
    let fits = |mine: *mut c_void, other: *mut c_void| {
        // SAFETY: an address in `LIVE` is a `Finalizer` box not freed yet (it is freed only
        // after leaving `LIVE`, and we hold the lock); `&&` reads it only then.
        live.contains(&(mine as usize)) && unsafe { (*mine.cast::<Finalizer>()).context } == other
    };
    let (ours, order) = match (fits(a, b), fits(b, a)) {
        (true, false) => (a, &IN_NODE_API_ORDER),
        (false, true) => (b, &IN_SWAPPED_ORDER),
        _ => return None,
    };
    order.fetch_add(1, Ordering::Relaxed);
    live.remove(&(ours as usize));
    // SAFETY: `ours` is a box from `create`'s `Box::into_raw`, just removed from `LIVE`, so
    // this is the only owner.
    Some(unsafe { Box::from_raw(ours.cast::<Finalizer>()) })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::RefCell;
    use std::ptr;

    thread_local! {
        /// The finalizer and data the fake host was given; the finalizer calls seen.
        static HOST: RefCell<Option<(FinalizeCb, usize)>> = const { RefCell::new(None) };
        static CALLS: RefCell<Vec<(usize, usize)>> = const { RefCell::new(Vec::new()) };
    }

    unsafe extern "C" fn host_create(
        _env: napi_env,
        _func: napi_value,
        _resource: napi_value,
        _name: napi_value,
        _queue: usize,
        _threads: usize,
        finalize_data: *mut c_void,
        finalize_cb: napi_finalize,
        _context: *mut c_void,
        _call_js: napi_threadsafe_function_call_js,
        _result: *mut napi_threadsafe_function,
    ) -> napi_status {
        HOST.with(|h| *h.borrow_mut() = finalize_cb.map(|cb| (cb, finalize_data as usize)));
        Status::napi_ok
    }

    unsafe extern "C" fn host_create_fails(
        env: napi_env,
        func: napi_value,
        resource: napi_value,
        name: napi_value,
        queue: usize,
        threads: usize,
        finalize_data: *mut c_void,
        finalize_cb: napi_finalize,
        context: *mut c_void,
        call_js: napi_threadsafe_function_call_js,
        result: *mut napi_threadsafe_function,
    ) -> napi_status {
        // SAFETY: the fake host above, which only records its arguments.
        unsafe {
            host_create(
                env,
                func,
                resource,
                name,
                queue,
                threads,
                finalize_data,
                finalize_cb,
                context,
                call_js,
                result,
            )
        };
        Status::napi_generic_failure
    }

    unsafe extern "C" fn user_finalize(_env: napi_env, data: *mut c_void, context: *mut c_void) {
        CALLS.with(|c| c.borrow_mut().push((data as usize, context as usize)));
    }

    /// Creates through `host` with `data` and `context`; returns what the host was handed.
    fn create_with(
        host: CreateFn,
        data: usize,
        context: usize,
    ) -> (napi_status, FinalizeCb, usize) {
        // SAFETY: the fake hosts only record their arguments.
        let status = unsafe {
            create(
                host,
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                ptr::null_mut(),
                0,
                1,
                data as *mut c_void,
                Some(user_finalize),
                context as *mut c_void,
                None,
                ptr::null_mut(),
            )
        };
        let (cb, handed) = HOST
            .with(|h| h.borrow_mut().take())
            .expect("host was called");
        (status, cb, handed)
    }

    fn calls() -> Vec<(usize, usize)> {
        CALLS.with(|c| c.borrow_mut().drain(..).collect())
    }

    fn call(cb: FinalizeCb, a: usize, b: usize) {
        // SAFETY: our trampoline, with the arguments a host would pass.
        unsafe { cb(ptr::null_mut(), a as *mut c_void, b as *mut c_void) };
    }

    #[test]
    fn either_order_reaches_the_callback_in_node_api_order_once() {
        let (_, cb, boxed) = create_with(host_create, 0xd000, 0xc000);
        assert_ne!(
            boxed, 0xd000,
            "the host gets our box, not the caller's data"
        );
        call(cb, boxed, 0xc000); // Node-API's order
        call(cb, boxed, 0xc000); // a second call finds no live box
        assert_eq!(calls(), vec![(0xd000, 0xc000)]);

        let (_, cb, boxed) = create_with(host_create, 0xd008, 0xc008);
        call(cb, 0xc008, boxed); // Bare's order
        assert_eq!(calls(), vec![(0xd008, 0xc008)]);
    }

    #[test]
    fn a_context_whose_address_is_another_live_box_is_not_mistaken_for_ours() {
        // The second function's context is a freed pointer whose address the first box reuses.
        let (_, _, first) = create_with(host_create, 0xd100, 0xc100);
        let (_, cb, second) = create_with(host_create, 0xd108, first);
        call(cb, first, second); // Bare's order: the first argument is a live box, not ours
        assert_eq!(calls(), vec![(0xd108, first)]);
        call(cb, first, 0xc100);
        assert_eq!(calls(), vec![(0xd100, 0xc100)]);
    }

    #[test]
    fn pointers_that_are_not_ours_call_nothing() {
        let (_, cb, boxed) = create_with(host_create, 0xd200, 0xc200);
        call(cb, 0xd200, 0xc200);
        call(cb, boxed, 0xbad);
        assert!(calls().is_empty());
        call(cb, boxed, 0xc200);
        assert_eq!(calls(), vec![(0xd200, 0xc200)]);
    }

    #[test]
    fn a_failed_create_takes_its_box_back() {
        let (status, cb, boxed) = create_with(host_create_fails, 0xd300, 0xc300);
        assert_eq!(status, Status::napi_generic_failure);
        call(cb, boxed, 0xc300); // freed: no longer a live box

        assert!(calls().is_empty());
    }
}
