//! Windows: napi-sys (with `dyn-symbols`, which Windows builds enable in Cargo.toml) looks every
//! Node-API function up in the running executable with `GetProcAddress` — `node.exe`,
//! `bare.exe` or any other host — and keeps the pointers in its private table. This image's own
//! import of `GetProcAddress` is pointed at [`get_proc_address`] while the DLL initialises
//! (before the host calls `napi_register_module_v1`, which does the lookups), so the lookups of
//! the three functions return the definitions below and the host's are kept here. Every other
//! lookup, by this image's Rust runtime too, is answered by the real `GetProcAddress` unchanged.
//!
//! The import is found in this image's own import table (no other module is touched): every
//! slot whose import-name entry is `GetProcAddress`, or whose bound address is the one
//! `kernel32.dll` gives for it. If none is found the image calls Node-API unwrapped, as before
//! this module existed (fine in Node; in a host with the bugs, the bugs).

use std::ffi::{c_void, CStr};
use std::ptr;
use std::sync::atomic::{AtomicUsize, Ordering};

use napi::sys::{
    napi_env, napi_finalize, napi_status, napi_threadsafe_function,
    napi_threadsafe_function_call_js, napi_value,
};
use windows_sys::core::PCSTR;
use windows_sys::Win32::Foundation::{FARPROC, HMODULE};
use windows_sys::Win32::System::Diagnostics::Debug::{
    IMAGE_DIRECTORY_ENTRY_IMPORT, IMAGE_NT_HEADERS64,
};
use windows_sys::Win32::System::LibraryLoader::{
    GetModuleHandleExW, GetModuleHandleW, GetProcAddress, GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS,
    GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
};
use windows_sys::Win32::System::Memory::{VirtualProtect, PAGE_PROTECTION_FLAGS, PAGE_READWRITE};
use windows_sys::Win32::System::SystemServices::{
    IMAGE_DOS_HEADER, IMAGE_IMPORT_BY_NAME, IMAGE_IMPORT_DESCRIPTOR, IMAGE_ORDINAL_FLAG64,
};

use super::cleanup_hooks::{self, Hook, HookFn};
use super::tsfn_finalize::{self, CreateFn};

type GetProcAddressFn = unsafe extern "system" fn(HMODULE, PCSTR) -> FARPROC;

/// The real `GetProcAddress`, as this image's import table held it before routing.
static REAL_GET_PROC_ADDRESS: AtomicUsize = AtomicUsize::new(0);
/// The host's functions, as napi-sys's lookups found them (0: not looked up yet).
static HOST_CREATE: AtomicUsize = AtomicUsize::new(0);
static HOST_ADD_HOOK: AtomicUsize = AtomicUsize::new(0);
static HOST_REMOVE_HOOK: AtomicUsize = AtomicUsize::new(0);

/// Runs as the DLL initialises (the C runtime calls the `.CRT$XCU` entries, MSVC and MinGW
/// alike), before the host can call into the image.
#[used]
#[link_section = ".CRT$XCU"]
static ROUTE_AT_LOAD: unsafe extern "C" fn() = route;

unsafe extern "C" fn route() {
    // SAFETY: reads this image's own headers, which the loader mapped, and rewrites only its
    // own import slots, each with the page made writable first.
    unsafe { route_get_proc_address() };
}

/// Points every slot of this image's import table that holds `GetProcAddress` at
/// [`get_proc_address`]; returns how many.
///
/// # Safety
/// Called once, while the DLL initialises (no other thread calls into the image yet).
unsafe fn route_get_proc_address() -> usize {
    let mut module: HMODULE = ptr::null_mut();
    // SAFETY: `route` is an address inside this image; the handle is not reference-counted.
    let found = unsafe {
        GetModuleHandleExW(
            GET_MODULE_HANDLE_EX_FLAG_FROM_ADDRESS | GET_MODULE_HANDLE_EX_FLAG_UNCHANGED_REFCOUNT,
            route as *const () as _,
            &mut module,
        )
    };
    if found == 0 {
        return 0;
    }
    // SAFETY: a NUL-terminated wide string and a NUL-terminated name.
    let bound = unsafe {
        let kernel32 = GetModuleHandleW([107u16, 101, 114, 110, 101, 108, 51, 50, 0].as_ptr());
        GetProcAddress(kernel32, c"GetProcAddress".as_ptr().cast())
    }
    .map_or(0, |f| f as usize);
    let base = module as usize;
    let mut routed = 0;
    // SAFETY: `base` is this image's load address: its DOS and NT headers and the import
    // directory they point at are mapped and laid out as the PE format says.
    unsafe {
        let dos = &*(base as *const IMAGE_DOS_HEADER);
        let nt = &*((base + dos.e_lfanew as usize) as *const IMAGE_NT_HEADERS64);
        let dir = nt.OptionalHeader.DataDirectory[IMAGE_DIRECTORY_ENTRY_IMPORT as usize];
        if dir.VirtualAddress == 0 {
            return 0;
        }
        let mut desc = (base + dir.VirtualAddress as usize) as *const IMAGE_IMPORT_DESCRIPTOR;
        while (*desc).Name != 0 {
            let names = (*desc).Anonymous.OriginalFirstThunk as usize;
            let slots = (base + (*desc).FirstThunk as usize) as *mut usize;
            for i in 0.. {
                let slot = slots.add(i);
                if *slot == 0 {
                    break;
                }
                let by_name = names != 0 && {
                    let entry = *((base + names) as *const u64).add(i);
                    entry & IMAGE_ORDINAL_FLAG64 == 0 && {
                        let import = (base + entry as u32 as usize) as *const IMAGE_IMPORT_BY_NAME;
                        CStr::from_ptr((*import).Name.as_ptr().cast()) == c"GetProcAddress"
                    }
                };
                if (by_name || (bound != 0 && *slot == bound)) && redirect(slot) {
                    routed += 1;
                }
            }
            desc = desc.add(1);
        }
    }
    routed
}

/// Points one import slot at [`get_proc_address`], keeping the first real address it held.
///
/// # Safety
/// `slot` is an import slot of this image holding `GetProcAddress`.
unsafe fn redirect(slot: *mut usize) -> bool {
    let ours = get_proc_address as GetProcAddressFn as usize;
    // SAFETY: the slot is mapped; made writable for the one write, then restored.
    unsafe {
        let held = *slot;
        if held == ours {
            return false;
        }
        let mut old: PAGE_PROTECTION_FLAGS = 0;
        if VirtualProtect(slot.cast(), size_of::<usize>(), PAGE_READWRITE, &mut old) == 0 {
            return false;
        }
        let _ =
            REAL_GET_PROC_ADDRESS.compare_exchange(0, held, Ordering::AcqRel, Ordering::Acquire);
        slot.write_volatile(ours);
        VirtualProtect(slot.cast(), size_of::<usize>(), old, &mut old);
    }
    true
}

/// `GetProcAddress` for this image: the three functions resolve to the definitions below (the
/// host's are kept), every other lookup is the real one's answer.
unsafe extern "system" fn get_proc_address(module: HMODULE, name: PCSTR) -> FARPROC {
    let real = REAL_GET_PROC_ADDRESS.load(Ordering::Acquire);
    // SAFETY: `real` is the address the import slot held before routing: the real function.
    let found = unsafe { std::mem::transmute::<usize, GetProcAddressFn>(real)(module, name) };
    // An ordinal lookup passes a number below 0x10000, not a name.
    if (name as usize) >> 16 == 0 {
        return found;
    }
    let Some(host) = found else {
        return found;
    };
    // SAFETY: a name lookup's argument is a NUL-terminated string, as for the real function.
    let (cache, ours) = match unsafe { CStr::from_ptr(name.cast()) }.to_bytes() {
        b"napi_create_threadsafe_function" => (
            &HOST_CREATE,
            create_threadsafe_function as CreateFn as usize,
        ),
        b"napi_add_env_cleanup_hook" => (&HOST_ADD_HOOK, add_env_cleanup_hook as HookFn as usize),
        b"napi_remove_env_cleanup_hook" => (
            &HOST_REMOVE_HOOK,
            remove_env_cleanup_hook as HookFn as usize,
        ),
        _ => return found,
    };
    cache.store(host as usize, Ordering::Release);
    // SAFETY: one of this image's functions, returned as the untyped pointer callers cast back
    // to the Node-API signature it has.
    Some(unsafe { std::mem::transmute::<usize, unsafe extern "system" fn() -> isize>(ours) })
}

/// The host function kept in `cache`, if napi-sys's lookup found one.
fn host(cache: &AtomicUsize) -> Option<usize> {
    Some(cache.load(Ordering::Acquire)).filter(|&f| f != 0)
}

/// `napi_create_threadsafe_function` for this image: see [`tsfn_finalize`].
#[allow(clippy::too_many_arguments)] // Node-API's signature
unsafe extern "C" fn create_threadsafe_function(
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
    // SAFETY: the caller's arguments, forwarded to the host's export of this name.
    unsafe {
        tsfn_finalize::create_via(
            host(&HOST_CREATE),
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
unsafe extern "C" fn add_env_cleanup_hook(
    env: napi_env,
    fun: Hook,
    arg: *mut c_void,
) -> napi_status {
    // SAFETY: the caller's arguments, forwarded to the host's export of this name.
    unsafe { cleanup_hooks::via(host(&HOST_ADD_HOOK), true, env, fun, arg) }
}

/// `napi_remove_env_cleanup_hook` for this image: see [`cleanup_hooks`].
unsafe extern "C" fn remove_env_cleanup_hook(
    env: napi_env,
    fun: Hook,
    arg: *mut c_void,
) -> napi_status {
    // SAFETY: the caller's arguments, forwarded to the host's export of this name.
    unsafe { cleanup_hooks::via(host(&HOST_REMOVE_HOOK), false, env, fun, arg) }
}
