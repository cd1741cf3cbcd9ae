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
    skip(&format!(
        "the shared data (weights, images, PyTorch fixtures) is missing at {}; see README.md 'Weights' to get \
         them, or set GOOGLENET_SHARED",
        dir.display()
    ));
    None
}

/// A test that cannot run on this machine: a visible skip, or under `CI=true` (where everything
/// is installed) a failure.
pub fn skip(why: &str) {
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true, but {why}");
    }
    // Straight to the stderr handle: the test harness captures `eprintln!` of passing tests,
    // and a skip must be seen.
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED {}: {why}",
        std::thread::current().name().unwrap_or("a test")
    );
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
        out.insert(
            name.clone(),
            npy::read(&bytes).unwrap_or_else(|e| panic!("{name}: {e}")),
        );
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

/// CRC-32 as PNG chunks use it.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in data {
        crc ^= b as u32;
        for _ in 0..8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One PNG chunk: length, type, data, CRC.
pub fn png_chunk(kind: &[u8; 4], data: &[u8]) -> Vec<u8> {
    let mut body = kind.to_vec();
    body.extend_from_slice(data);
    let mut c = (data.len() as u32).to_be_bytes().to_vec();
    c.extend_from_slice(&body);
    c.extend_from_slice(&crc32(&body).to_be_bytes());
    c
}

/// A PNG whose header claims `width`×`height` RGB pixels and that holds no pixel data (a
/// decompression bomb, as far as the header goes).
pub fn png_header(width: u32, height: u32) -> Vec<u8> {
    let mut ihdr = width.to_be_bytes().to_vec();
    ihdr.extend_from_slice(&height.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]);
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    png.extend(png_chunk(b"IHDR", &ihdr));
    png.extend(png_chunk(
        b"IDAT",
        &[0x78, 0x9c, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01],
    ));
    png.extend(png_chunk(b"IEND", &[]));
    png
}

/// Two classes that differ in colour and shape: reddish discs (class 0) and bluish stripes
/// (class 1), with noise; `k` varies the width and the noise. The fine-tune and session tests'
/// data set.
pub fn two_classes(class: usize, k: u32) -> image::DynamicImage {
    let mut seed = 1 + class as u32 * 1000 + k * 7919;
    let mut noise = move || {
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        (seed % 40) as u8
    };
    let (w, h) = (96 + k * 8, 96);
    image::DynamicImage::ImageRgb8(image::RgbImage::from_fn(w, h, |x, y| {
        let n = noise();
        if class == 0 {
            let (dx, dy) = (x as i32 - (w / 2) as i32, y as i32 - 48);
            if dx * dx + dy * dy < 900 {
                image::Rgb([200 + n / 2, 40 + n, 30 + n])
            } else {
                image::Rgb([230 - n, 210 - n, 190])
            }
        } else if (x / 8) % 2 == 0 {
            image::Rgb([30 + n, 60 + n, 200 + n / 2])
        } else {
            image::Rgb([220 - n, 230 - n, 240 - n])
        }
    }))
}
