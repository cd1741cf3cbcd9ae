//! Bounded, seeded fuzzing of the two parsers that take untrusted bytes: the weights reader
//! (`weights::read_bytes`, then `weights::load_model`) and the image path
//! (`preprocess::prepare`). Valid files are made here (plus the shared BVLC weights and
//! cat.jpg when present) and mutated a few thousand times: bit flips, bytes set to
//! interesting values, truncation, duplicated/deleted/spliced ranges, a wrong safetensors
//! header length, huge image dimensions. Every input must give `Ok` or `Err`, never a panic;
//! an `Ok` must be sane (finite tensors; a 3×224×224 finite image tensor).
//!
//! Everything is derived from fixed seeds, so a failure reproduces: its message names the
//! group, the base seed and the case number, and the input is written under
//! `target/tmp/fuzz-failures/`. `GOOGLENET_FUZZ_SEED=<u64>` runs other cases (for local
//! exploration; CI uses the fixed seed). Longer runs: the `cargo fuzz` targets in `fuzz/`.

mod common;

use std::cell::{Cell, RefCell};
use std::io::Cursor;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::PathBuf;

use burn::tensor::Device;
use googlenet::preprocess;
use googlenet::weights::{self, LoadOptions, SaveInfo};
use googlenet::{GoogLeNetConfig, Variant};

/// Mutations of a small safetensors file (a few tensors of the real model, cheap to parse).
const WEIGHT_CASES: u64 = 3000;
/// Mutations of a whole saved model (3-class seed variant, ~40 MB): header region mostly.
const MODEL_CASES: u64 = 200;
/// Mutations of the BVLC file's header region (first 64 kB), plus truncations.
const BVLC_CASES: u64 = 200;
/// Mutations of the small images made here (PNG, GIF, BMP, WebP, JPEG, progressive JPEG).
const IMAGE_CASES: u64 = 3500;
/// Mutations of the shared cat.jpg (a real photo, slower to decode).
const CAT_CASES: u64 = 500;

const BASE_SEED: u64 = 0x600D_F00D_2026_0001;

// ---------------------------------------------------------------------------------------
// Seeded generator

/// The crate's SplitMix64, plus the two draws mutations need.
use googlenet::rng::SplitMix64 as Rng;

trait Draw {
    fn chance(&mut self, percent: u64) -> bool;
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T;
}

impl Draw for Rng {
    fn chance(&mut self, percent: u64) -> bool {
        self.next_u64() % 100 < percent
    }
    fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len())]
    }
}

fn base_seed() -> u64 {
    std::env::var("GOOGLENET_FUZZ_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(BASE_SEED)
}

/// The generator for one case of a group: independent of the other cases, so a failing case
/// reproduces alone.
fn case_rng(base: u64, group: &str, case: u64) -> Rng {
    let g = group.bytes().fold(0xCBF2_9CE4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01B3)
    });
    let mut r = Rng::new(base ^ g ^ case.wrapping_mul(0xD1B5_4A32_D192_ED03));
    r.next_u64();
    r
}

// ---------------------------------------------------------------------------------------
// Mutations

const INTERESTING: [u8; 12] = [
    0x00, 0xFF, 0x80, b'"', b'{', b'}', b'[', b',', b'0', b'9', b'-', b' ',
];

/// Where mutations land: `0..focus` (the header region of a large file; the whole of a small one).
fn pos(rng: &mut Rng, len: usize, focus: usize) -> usize {
    rng.below(len.min(focus).max(1))
}

/// Apply 1–4 stacked mutations to `buf`, positions within `0..focus`. `donors` are other
/// valid files to splice from.
fn mutate(rng: &mut Rng, buf: &mut Vec<u8>, focus: usize, donors: &[&[u8]]) -> Vec<&'static str> {
    let mut done = Vec::new();
    for _ in 0..1 + rng.below(4) {
        if buf.is_empty() {
            break;
        }
        let len = buf.len();
        match rng.below(9) {
            0 => {
                let p = pos(rng, len, focus);
                buf[p] ^= 1 << rng.below(8);
                done.push("bitflip");
            }
            1 => {
                let p = pos(rng, len, focus);
                buf[p] = *rng.pick(&INTERESTING);
                done.push("set");
            }
            2 => {
                let p = pos(rng, len, focus);
                buf[p] = rng.next_u64() as u8;
                done.push("random-byte");
            }
            3 => {
                let p = pos(rng, len, focus);
                buf.truncate(p);
                done.push("truncate");
            }
            4 => {
                // Duplicate a range: insert a copy of [a, a+n) at p.
                let a = pos(rng, len, focus);
                let n = 1 + rng.below(64.min(len - a));
                let p = pos(rng, len, focus);
                let copy = buf[a..a + n].to_vec();
                buf.splice(p..p, copy);
                done.push("duplicate");
            }
            5 => {
                let a = pos(rng, len, focus);
                let n = 1 + rng.below(64.min(len - a));
                buf.drain(a..a + n);
                done.push("delete");
            }
            6 => {
                // Splice: a range of another valid file over or into this one.
                let d = rng.pick(donors);
                if d.is_empty() {
                    continue;
                }
                let a = pos(rng, d.len(), focus);
                let n = 1 + rng.below(128.min(d.len() - a));
                let p = pos(rng, len, focus);
                if rng.chance(50) {
                    let end = (p + n).min(len);
                    buf.splice(p..end, d[a..a + n].iter().copied());
                    done.push("splice-over");
                } else {
                    buf.splice(p..p, d[a..a + n].iter().copied());
                    done.push("splice-in");
                }
            }
            7 => {
                let p = pos(rng, len, focus);
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
                buf.splice(p..p, bytes);
                done.push("insert-random");
            }
            _ => {
                // A run of one interesting byte (e.g. `{{{{` or zeros).
                let p = pos(rng, len, focus);
                let n = 1 + rng.below(32.min(len - p));
                let v = *rng.pick(&INTERESTING);
                buf[p..p + n].fill(v);
                done.push("fill");
            }
        }
    }
    done
}

/// Change a safetensors file's 8-byte header length by ±1..±8 (or set it to an extreme).
fn nudge_header_len(rng: &mut Rng, buf: &mut [u8]) {
    if buf.len() < 8 {
        return;
    }
    let n = u64::from_le_bytes(buf[..8].try_into().unwrap());
    let n = match rng.below(10) {
        0 => *rng.pick(&[
            0,
            u64::MAX,
            u64::MAX / 2,
            1 << 32,
            100_000_001,
            buf.len() as u64,
        ]),
        _ => {
            let d = 1 + rng.below(8) as u64;
            if rng.chance(50) {
                n.wrapping_add(d)
            } else {
                n.wrapping_sub(d)
            }
        }
    };
    buf[..8].copy_from_slice(&n.to_le_bytes());
}

// ---------------------------------------------------------------------------------------
// Running a case: panics caught, located and reported

thread_local! {
    /// Set while a fuzz case runs: its panic is recorded here instead of printed.
    static IN_CASE: Cell<bool> = const { Cell::new(false) };
    static PANIC_AT: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Install (once) a panic hook that records a fuzz case's panic message and location, and
/// leaves every other panic (assertion failures) to the default hook.
fn install_hook() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let default = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if IN_CASE.with(|c| c.get()) {
                let msg = info
                    .payload()
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| info.payload().downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "(non-string payload)".into());
                let at = info
                    .location()
                    .map(|l| format!("{}:{}:{}", l.file(), l.line(), l.column()))
                    .unwrap_or_default();
                PANIC_AT.with(|p| *p.borrow_mut() = Some(format!("panicked at {at}: {msg}")));
            } else {
                default(info);
            }
        }));
    });
}

/// Run `f`, turning a panic into `Err(where and why)`.
fn guarded<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    install_hook();
    IN_CASE.with(|c| c.set(true));
    let r = catch_unwind(AssertUnwindSafe(f));
    IN_CASE.with(|c| c.set(false));
    r.map_err(|_| {
        PANIC_AT
            .with(|p| p.borrow_mut().take())
            .unwrap_or_else(|| "panicked (no message)".into())
    })
}

/// Failures of one test, reported together at the end.
#[derive(Default)]
struct Failures(Vec<String>);

impl Failures {
    fn add(
        &mut self,
        group: &str,
        base: u64,
        case: Option<u64>,
        ops: &[&str],
        input: &[u8],
        what: String,
    ) {
        let dir = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("fuzz-failures");
        let _ = std::fs::create_dir_all(&dir);
        let name = match case {
            Some(c) => format!("{group}-{base:#x}-{c}.bin"),
            None => format!("{group}-{base:#x}-unmutated.bin"),
        };
        let path = dir.join(name);
        let _ = std::fs::write(&path, input);
        let case = case.map_or("unmutated".to_string(), |c| format!("case {c}"));
        self.0.push(format!(
            "[{group}] seed {base:#x} {case} ({} bytes, mutations {ops:?}, input saved to {}): {what}",
            input.len(),
            path.display()
        ));
    }

    fn assert_none(&self, what: &str) {
        assert!(
            self.0.is_empty(),
            "{} {what} fuzz failure(s):\n{}",
            self.0.len(),
            self.0.join("\n")
        );
    }
}

// ---------------------------------------------------------------------------------------
// Weights

#[derive(Default, Debug)]
struct WeightStats {
    read_ok: u64,
    read_err: u64,
    load_ok: u64,
    load_err: u64,
}

/// One input through the weights path. `load`: also build a model when it parses.
fn check_weights(bytes: &[u8], load: bool, stats: &mut WeightStats) -> Result<(), String> {
    let map = match guarded(|| weights::read_bytes(bytes))? {
        Ok(map) => map,
        Err(_) => {
            stats.read_err += 1;
            return Ok(());
        }
    };
    stats.read_ok += 1;
    if let Some((key, _)) = map
        .tensors
        .iter()
        .find(|(_, t)| !t.data.iter().all(|v| v.is_finite()))
    {
        return Err(format!(
            "read_bytes accepted a non-finite value in tensor `{key}`"
        ));
    }
    if let Some((key, t)) = map
        .tensors
        .iter()
        .find(|(_, t)| t.shape.iter().product::<usize>() != t.data.len())
    {
        return Err(format!(
            "tensor `{key}`: shape {:?} but {} values",
            t.shape,
            t.data.len()
        ));
    }
    if load {
        match guarded(|| {
            weights::load_model(&map, &LoadOptions::default(), &Device::flex()).map(|_| ())
        })? {
            Ok(()) => stats.load_ok += 1,
            Err(_) => stats.load_err += 1,
        }
    }
    Ok(())
}

/// A small valid file in the project's format: a few of the real model's smaller tensors and
/// its metadata (`load_model` refuses it for the missing tensors, after parsing it all).
fn small_weights(model: &googlenet::GoogLeNet) -> Vec<u8> {
    let tensors: Vec<_> = weights::named_tensors(model)
        .into_iter()
        .filter(|(_, shape, _)| shape.iter().product::<usize>() <= 200)
        .take(6)
        .map(|(k, shape, t)| {
            let data = t.into_data().try_to_vec::<f32>().unwrap();
            (k, shape, data)
        })
        .collect();
    assert!(tensors.len() >= 3, "the model has small tensors to save");
    let info = SaveInfo {
        labels: Some(vec!["a".into(), "b".into(), "c".into()]),
        aux_trained: false,
    };
    weights::write_safetensors(model, tensors, &info).unwrap()
}

fn header_end(bytes: &[u8]) -> usize {
    8 + u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize
}

/// Fuzz one weights file: `cases` mutations within its first `focus` bytes (the rest of the
/// file follows unchanged, so the header's offsets still fit), plus plain truncations.
#[allow(clippy::too_many_arguments)]
fn fuzz_weights(
    group: &str,
    base: u64,
    file: &[u8],
    focus: usize,
    cases: u64,
    load: bool,
    donors: &[&[u8]],
    failures: &mut Failures,
) -> WeightStats {
    let mut stats = WeightStats::default();
    let focus = focus.min(file.len());
    if let Err(e) = check_weights(file, load, &mut stats) {
        failures.add(group, base, None, &[], file, e);
    }
    assert_eq!(
        stats.read_ok, 1,
        "[{group}] the unmutated file is accepted by read_bytes"
    );
    if load && file.len() > 100_000 {
        assert_eq!(stats.load_ok, 1, "[{group}] the unmutated model file loads");
    }
    stats = WeightStats::default();
    let hend = header_end(file);
    for case in 0..cases {
        let mut rng = case_rng(base, group, case);
        // Value-only edits load a whole model when the file is a whole model: a few of those.
        let values = load && rng.chance(if file.len() > 1 << 20 { 4 } else { 15 });
        let (input, ops): (Vec<u8>, Vec<&str>) = match if values { 10 } else { rng.below(10) } {
            // Truncation anywhere, or near the end of the header.
            0 => {
                let at = if rng.chance(50) {
                    rng.below(file.len())
                } else {
                    (hend + rng.below(64)).saturating_sub(32).min(file.len())
                };
                (file[..at].to_vec(), vec!["truncate-file"])
            }
            1 => {
                let mut head = file[..focus].to_vec();
                nudge_header_len(&mut rng, &mut head);
                let mut ops = vec!["header-len"];
                if rng.chance(30) {
                    ops.extend(mutate(&mut rng, &mut head, focus, donors));
                }
                head.extend_from_slice(&file[focus..]);
                (head, ops)
            }
            // Values only (same length, bytes just after the header): the structure stays
            // valid, so these reach load_model with a complete map.
            10 => {
                let mut head = file[..focus].to_vec();
                let region = hend..focus;
                for _ in 0..1 + rng.below(8) {
                    if region.is_empty() {
                        break;
                    }
                    let p = region.start + rng.below(region.len());
                    if rng.chance(50) {
                        head[p] ^= 1 << rng.below(8)
                    } else {
                        head[p] = *rng.pick(&INTERESTING)
                    }
                }
                head.extend_from_slice(&file[focus..]);
                (head, vec!["values"])
            }
            _ => {
                // Mostly inside the JSON header: that is where the parsing is.
                let region = if rng.chance(85) {
                    hend.min(focus)
                } else {
                    focus
                };
                let mut head = file[..focus].to_vec();
                let ops = mutate(&mut rng, &mut head, region, donors);
                head.extend_from_slice(&file[focus..]);
                (head, ops)
            }
        };
        if let Err(e) = check_weights(&input, load, &mut stats) {
            failures.add(group, base, Some(case), &ops, &input, e);
        }
    }
    eprintln!("[{group}] {cases} mutations: {stats:?}");
    stats
}

#[test]
fn fuzz_weights_reader() {
    let base = base_seed();
    let mut failures = Failures::default();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(3)
        .init(&Device::flex());
    let info = SaveInfo {
        labels: Some(vec!["a".into(), "b".into(), "c".into()]),
        aux_trained: false,
    };
    let full = weights::save_model(&model, &info).unwrap();
    let small = small_weights(&model);
    drop(model);
    let donors: [&[u8]; 2] = [&small, &full[..header_end(&full)]];

    // The small file: whole-file mutations, every parse complete, load attempted.
    let s = fuzz_weights(
        "weights-small",
        base,
        &small,
        usize::MAX,
        WEIGHT_CASES,
        true,
        &donors,
        &mut failures,
    );
    assert!(
        s.read_ok > 0 && s.read_err > 0,
        "both accepted and refused mutations of the small file: {s:?}"
    );
    assert!(s.read_err > s.read_ok, "most mutations are refused: {s:?}");
    assert!(s.load_err > 0, "load_model ran on accepted maps: {s:?}");

    // A whole saved model: its header (and a little data) mutated, each accepted map loaded.
    let focus = header_end(&full) + 4096;
    let m = fuzz_weights(
        "weights-model",
        base,
        &full,
        focus,
        MODEL_CASES,
        true,
        &donors,
        &mut failures,
    );
    assert!(
        m.read_ok > 0 && m.read_err > 0,
        "both accepted and refused mutations of the model file: {m:?}"
    );
    assert!(m.load_ok > 0, "some mutated model files load: {m:?}");
    drop(full);

    // The real BVLC file, when present: its header region only (parsing 28 MB per case is
    // what limits the count), each accepted map loaded.
    if let Some(dir) = common::shared() {
        let bvlc = std::fs::read(dir.join("weights/bvlc_googlenet.safetensors")).unwrap();
        let donors: [&[u8]; 2] = [&small, &bvlc[..header_end(&bvlc)]];
        let b = fuzz_weights(
            "weights-bvlc",
            base,
            &bvlc,
            64 * 1024,
            BVLC_CASES,
            true,
            &donors,
            &mut failures,
        );
        assert!(
            b.read_err > 0,
            "mutations of the BVLC header are refused: {b:?}"
        );
    }
    failures.assert_none("weights");
}

// ---------------------------------------------------------------------------------------
// Images

/// A small test picture: gradients plus noise, so every encoder has real work to do.
fn picture(rng: &mut Rng, w: u32, h: u32) -> image::RgbaImage {
    image::RgbaImage::from_fn(w, h, |x, y| {
        let n = rng.next_u64() as u8 & 0x1F;
        image::Rgba([
            (x * 255 / w) as u8 ^ n,
            (y * 255 / h) as u8,
            ((x + y) * 7) as u8 ^ n,
            200 + (n & 0x37),
        ])
    })
}

fn encode(img: &image::DynamicImage, format: image::ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format)
        .unwrap_or_else(|e| panic!("encoding a {format:?} seed: {e}"));
    out.into_inner()
}

/// The valid seed images, by name.
fn image_seeds() -> Vec<(&'static str, Vec<u8>)> {
    use image::{DynamicImage, ImageFormat as F, codecs::jpeg::JpegEncoder};
    let mut rng = Rng::new(0x5EED_1A6E);
    let rgba = DynamicImage::ImageRgba8(picture(&mut rng, 37, 23));
    let rgb = DynamicImage::ImageRgb8(rgba.to_rgb8());
    let grey16 = DynamicImage::ImageLuma16(rgba.to_luma16());
    let mut jpeg = Vec::new();
    JpegEncoder::new_with_quality(&mut jpeg, 85)
        .encode_image(&DynamicImage::ImageRgba8(picture(&mut rng, 45, 31)).to_rgb8())
        .unwrap();
    let mut seeds = vec![
        ("png", encode(&rgba, F::Png)),
        ("png16", encode(&grey16, F::Png)),
        ("gif", encode(&rgba, F::Gif)),
        ("bmp", encode(&rgb, F::Bmp)),
        ("webp", encode(&rgba, F::WebP)),
        ("jpeg", jpeg),
    ];
    let progressive =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/progressive.jpg");
    if let Ok(bytes) = std::fs::read(progressive) {
        seeds.push(("jpeg-progressive", bytes));
    }
    seeds
}

/// Recompute every PNG chunk's CRC, so that a mutation reaches the decoder instead of
/// stopping at the checksum.
fn fix_png_crcs(buf: &mut [u8]) {
    let mut i = 8;
    while i + 12 <= buf.len() {
        let len = u32::from_be_bytes(buf[i..i + 4].try_into().unwrap()) as usize;
        let Some(end) = (i + 8).checked_add(len).filter(|&e| e + 4 <= buf.len()) else {
            break;
        };
        let crc = common::crc32(&buf[i + 4..end]);
        buf[end..end + 4].copy_from_slice(&crc.to_be_bytes());
        i = end + 4;
    }
}

/// A dimension worth trying: huge, at the limits, zero, or modest.
fn dimension(rng: &mut Rng, max: u32) -> u32 {
    let v = match rng.below(8) {
        0 => 0,
        1 => 1,
        2 => max,
        3 => max / 2 + 1,
        4 => 6325, // 6325² ≈ 40.0 megapixels, just over the limit
        5 => 100_000,
        6 => 1 + rng.below(3000) as u32,
        _ => 1 << (10 + rng.below(22)),
    };
    v.min(max)
}

/// Set the dimensions a format's header states (PNG IHDR, with or without a fixed CRC; JPEG
/// SOFn; GIF screen and image descriptor; BMP info header; WebP VP8L/VP8X).
fn edit_dimensions(rng: &mut Rng, buf: &mut [u8]) -> &'static str {
    let (w, h) = (dimension(rng, u32::MAX), dimension(rng, u32::MAX));
    if buf.starts_with(b"\x89PNG") && buf.len() >= 33 {
        buf[16..20].copy_from_slice(&w.to_be_bytes());
        buf[20..24].copy_from_slice(&h.to_be_bytes());
        if rng.chance(75) {
            let crc = common::crc32(&buf[12..29]);
            buf[29..33].copy_from_slice(&crc.to_be_bytes());
            return "png-ihdr-size+crc";
        }
        return "png-ihdr-size";
    }
    if buf.starts_with(&[0xFF, 0xD8]) {
        // The first SOFn marker (C0–CF except C4 DHT, C8 JPG, CC DAC).
        let sof = (2..buf.len().saturating_sub(9)).find(|&i| {
            buf[i] == 0xFF
                && matches!(buf[i + 1], 0xC0..=0xCF)
                && !matches!(buf[i + 1], 0xC4 | 0xC8 | 0xCC)
        });
        if let Some(i) = sof {
            let (w, h) = (dimension(rng, 0xFFFF) as u16, dimension(rng, 0xFFFF) as u16);
            buf[i + 5..i + 7].copy_from_slice(&h.to_be_bytes());
            buf[i + 7..i + 9].copy_from_slice(&w.to_be_bytes());
            return "jpeg-sof-size";
        }
        return "jpeg-no-sof";
    }
    if buf.starts_with(b"GIF") && buf.len() >= 10 {
        let (w, h) = (dimension(rng, 0xFFFF) as u16, dimension(rng, 0xFFFF) as u16);
        buf[6..8].copy_from_slice(&w.to_le_bytes());
        buf[8..10].copy_from_slice(&h.to_le_bytes());
        if let Some(i) = buf
            .iter()
            .position(|&b| b == 0x2C)
            .filter(|i| i + 9 <= buf.len() && rng.chance(50))
        {
            buf[i + 5..i + 7].copy_from_slice(&w.to_le_bytes());
            buf[i + 7..i + 9].copy_from_slice(&h.to_le_bytes());
        }
        return "gif-size";
    }
    if buf.starts_with(b"BM") && buf.len() >= 26 {
        let h = if rng.chance(30) {
            (h as i32).wrapping_neg()
        } else {
            h as i32
        };
        buf[18..22].copy_from_slice(&w.to_le_bytes());
        buf[22..26].copy_from_slice(&h.to_le_bytes());
        return "bmp-size";
    }
    if buf.starts_with(b"RIFF") && buf.len() >= 30 {
        if &buf[12..16] == b"VP8L" && buf.len() >= 25 {
            // 14-bit width-1 and height-1 after the 0x2F signature byte.
            let bits = ((w.wrapping_sub(1)) & 0x3FFF)
                | (((h.wrapping_sub(1)) & 0x3FFF) << 14)
                | (u32::from_le_bytes(buf[21..25].try_into().unwrap()) & !0x0FFF_FFFF);
            buf[21..25].copy_from_slice(&bits.to_le_bytes());
            return "webp-vp8l-size";
        }
        // VP8X: 24-bit canvas width-1 and height-1.
        buf[24..27].copy_from_slice(&w.wrapping_sub(1).to_le_bytes()[..3]);
        buf[27..30].copy_from_slice(&h.wrapping_sub(1).to_le_bytes()[..3]);
        return "webp-canvas-size";
    }
    "no-dimensions"
}

#[derive(Default, Debug)]
struct ImageStats {
    ok: u64,
    err: u64,
}

fn check_image(bytes: &[u8], stats: &mut ImageStats) -> Result<(), String> {
    match guarded(|| preprocess::prepare(bytes, Variant::Bvlc))? {
        Err(_) => stats.err += 1,
        Ok(p) => {
            stats.ok += 1;
            let n = 3 * preprocess::INPUT_SIZE * preprocess::INPUT_SIZE;
            if p.chw.len() != n {
                return Err(format!("Ok with {} values, expected {n}", p.chw.len()));
            }
            if let Some(i) = p.chw.iter().position(|v| !v.is_finite()) {
                return Err(format!("Ok with a non-finite value {} at {i}", p.chw[i]));
            }
        }
    }
    Ok(())
}

fn fuzz_image(
    group: &str,
    base: u64,
    seed: &[u8],
    cases: u64,
    donors: &[&[u8]],
    failures: &mut Failures,
) -> ImageStats {
    let mut stats = ImageStats::default();
    if let Err(e) = check_image(seed, &mut stats) {
        failures.add(group, base, None, &[], seed, e);
    }
    assert_eq!(stats.ok, 1, "[{group}] the unmutated image is accepted");
    stats = ImageStats::default();
    for case in 0..cases {
        let mut rng = case_rng(base, group, case);
        let mut input = seed.to_vec();
        let mut ops = Vec::new();
        if rng.chance(12) {
            ops.push(edit_dimensions(&mut rng, &mut input));
            if rng.chance(30) {
                ops.extend(mutate(&mut rng, &mut input, usize::MAX, donors));
            }
        } else if rng.chance(8) {
            let at = rng.below(input.len());
            input.truncate(at);
            ops.push("truncate-file");
        } else {
            // Half the time near the start, where the headers are.
            let focus = if rng.chance(50) { 64 } else { usize::MAX };
            ops = mutate(&mut rng, &mut input, focus, donors);
        }
        if input.starts_with(b"\x89PNG") && rng.chance(70) {
            fix_png_crcs(&mut input);
            ops.push("png-crcs-fixed");
        }
        if let Err(e) = check_image(&input, &mut stats) {
            failures.add(group, base, Some(case), &ops, &input, e);
        }
    }
    eprintln!("[{group}] {cases} mutations: {stats:?}");
    stats
}

#[test]
fn fuzz_image_path() {
    let base = base_seed();
    let mut failures = Failures::default();
    let seeds = image_seeds();
    let donors: Vec<&[u8]> = seeds.iter().map(|(_, b)| b.as_slice()).collect();
    let per_seed = IMAGE_CASES / seeds.len() as u64;
    let mut total = ImageStats::default();
    for (name, bytes) in &seeds {
        let s = fuzz_image(
            &format!("image-{name}"),
            base,
            bytes,
            per_seed,
            &donors,
            &mut failures,
        );
        assert!(
            s.err > 0,
            "[image-{name}] some mutations are refused: {s:?}"
        );
        total.ok += s.ok;
        total.err += s.err;
    }
    assert!(
        total.ok > 0 && total.err > 0,
        "both accepted and refused image mutations: {total:?}"
    );

    if let Some(dir) = common::shared() {
        let cat = std::fs::read(dir.join("images/cat.jpg")).unwrap();
        let s = fuzz_image("image-cat", base, &cat, CAT_CASES, &donors, &mut failures);
        assert!(
            s.ok > 0 && s.err > 0,
            "[image-cat] both accepted and refused mutations: {s:?}"
        );
    }
    failures.assert_none("image");
}

/// The harness itself: a panic inside a case is caught and located, not lost.
#[test]
fn guard_reports_panics() {
    let e = guarded(|| -> () { panic!("boom {}", 42) }).unwrap_err();
    assert!(e.contains("boom 42") && e.contains("fuzz.rs"), "{e}");
    assert_eq!(guarded(|| 7), Ok(7));
}
