//! Shared helpers for the integration tests: where `../shared` is, and reading its fixtures.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::Read;
use std::path::PathBuf;

use googlenet::npy;

/// The shared data folder, or `None` (with a printed reason) when it is absent. Under
/// `CI=true` a missing folder fails the test instead of skipping it.
pub fn shared() -> Option<PathBuf> {
    let dir = std::env::var("GOOGLENET_SHARED")
        .map(PathBuf::from)
        .unwrap_or_else(|_| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"));
    if dir.join("weights/bvlc_googlenet.safetensors").is_file() {
        return Some(dir);
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but the shared data is missing at {} (set GOOGLENET_SHARED)", dir.display());
    }
    // Straight to the stderr handle: the test harness captures `eprintln!` of passing tests,
    // and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: needs the shared data (weights, images, PyTorch fixtures) at {}; see README.md \
         'Weights' to get them, or set GOOGLENET_SHARED",
        std::thread::current().name().unwrap_or("a test"),
        dir.display()
    );
    None
}

/// Every array of an `.npz` file (numpy's uncompressed or compressed zip of `.npy`s).
pub fn read_npz(path: &std::path::Path) -> HashMap<String, npy::Array> {
    let file = std::fs::File::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut zip = zip::ZipArchive::new(file).expect("npz is a zip");
    let mut out = HashMap::new();
    for i in 0..zip.len() {
        let mut f = zip.by_index(i).unwrap();
        let name = f.name().unwrap().trim_end_matches(".npy").to_string();
        let mut bytes = Vec::new();
        f.read_to_end(&mut bytes).unwrap();
        out.insert(name.clone(), npy::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")));
    }
    out
}

/// max |a - b| / max |b|: the error relative to the reference's scale.
pub fn rel_err(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "length mismatch");
    let scale = b.iter().fold(0f32, |m, x| m.max(x.abs())).max(1e-12);
    let diff = a.iter().zip(b).fold(0f32, |m, (x, y)| m.max((x - y).abs()));
    diff / scale
}
