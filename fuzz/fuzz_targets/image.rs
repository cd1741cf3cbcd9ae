//! Any bytes through the image path (`preprocess::prepare`: format sniffing, size limits,
//! completeness checks, libjpeg-turbo-rs or `image`'s decoders, resize and crop): `Ok` with a
//! finite 3×224×224 tensor, or `Err`, never a panic. Seed the corpus (from the repository
//! root) with small images: `mkdir -p fuzz/corpus/image && cp tests/fixtures/*.jpg
//! tests/fixtures/synth_100x60.png fuzz/corpus/image/`, then `cargo +nightly fuzz run image`.
#![no_main]

use googlenet::Variant;
use googlenet::preprocess::{self, INPUT_SIZE};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = preprocess::prepare(data, Variant::Bvlc) {
        assert_eq!(p.chw.len(), 3 * INPUT_SIZE * INPUT_SIZE);
        assert!(p.chw.iter().all(|v| v.is_finite()), "non-finite input value");
    }
});
