/// Node-API functions whose calls from this image go through `src/host/` (see there why).
const HOST_WRAPPED: [&str; 3] = [
    "napi_create_threadsafe_function",
    "napi_add_env_cleanup_hook",
    "napi_remove_env_cleanup_hook",
];

fn main() {
    napi_build::setup();
    // On Linux the linker routes them (src/host/linux.rs); macOS defines them in the image
    // (src/host/macos.rs); Windows is not routed (src/host/mod.rs says why).
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        for name in HOST_WRAPPED {
            println!("cargo:rustc-cdylib-link-arg=-Wl,--wrap={name}");
        }
    }
}
