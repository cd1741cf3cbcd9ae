//! Link arguments for the threaded browser engine (`engine-threads`, built with +atomics; see
//! scripts/build-web.sh): one shared memory imported by every thread's instance, and the
//! thread-local-storage symbols wasm-bindgen's thread support initialises in each worker.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let wasm = std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "wasm"));
    let atomics = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "atomics"));
    if wasm && atomics {
        for arg in [
            "--shared-memory",
            "--import-memory",
            "--export=__wasm_init_tls",
            "--export=__tls_size",
            "--export=__tls_align",
            "--export=__tls_base",
        ] {
            println!("cargo:rustc-cdylib-link-arg={arg}");
        }
    }
}
