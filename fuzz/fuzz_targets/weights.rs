//! Any bytes through the weights reader: `Ok` or `Err`, never a panic; an accepted file has
//! only finite values and consistent shapes, and building a model from it never panics.
//! Seed the corpus (from the repository root) with small safetensors files, or with the real
//! one for depth: `mkdir -p fuzz/corpus/weights && cp ../shared/weights/bvlc_googlenet.safetensors
//! fuzz/corpus/weights/`, then `cargo +nightly fuzz run weights -- -max_len=30000000`.
#![no_main]

use burn::tensor::Device;
use googlenet::weights::{self, LoadOptions};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(map) = weights::read_bytes(data) else { return };
    for (key, t) in &map.tensors {
        assert!(t.data.iter().all(|v| v.is_finite()), "non-finite value accepted in `{key}`");
        assert_eq!(t.shape.iter().product::<usize>(), t.data.len(), "`{key}`: shape and length disagree");
    }
    let _ = weights::load_model(&map, &LoadOptions::default(), &Device::flex());
});
