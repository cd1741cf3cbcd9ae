//! The build predicates as named cfgs (`cpu_kernels`, `thread_pool`), and the link arguments for
//! the threaded browser engine (`engine-threads`, built with +atomics; see
//! scripts/build-web.sh): one shared memory imported by every thread's instance, and the
//! thread-local-storage symbols wasm-bindgen's thread support initialises in each worker.

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let wasm =
        std::env::var("CARGO_CFG_TARGET_FAMILY").is_ok_and(|f| f.split(',').any(|f| f == "wasm"));
    let feature = |name: &str| std::env::var_os(format!("CARGO_FEATURE_{name}")).is_some();
    // Named cfgs for the two build predicates the library switches on (written once here):
    // `cpu_kernels`: the CPU convolution kernels on burn-flex exist (native, or a CPU engine in
    // the browser); `thread_pool`: they run on rayon's pool (native, or the threaded engine).
    println!("cargo::rustc-check-cfg=cfg(cpu_kernels)");
    println!("cargo::rustc-check-cfg=cfg(thread_pool)");
    if !wasm || feature("ENGINE_CPU") {
        println!("cargo::rustc-cfg=cpu_kernels");
    }
    if !wasm || feature("ENGINE_THREADS") {
        println!("cargo::rustc-cfg=thread_pool");
    }
    let atomics = std::env::var("CARGO_CFG_TARGET_FEATURE")
        .is_ok_and(|f| f.split(',').any(|f| f == "atomics"));
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
