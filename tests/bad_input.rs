//! Bad input of every kind gets a clear, typed error (and a one-line CLI error), never a panic.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use googlenet::preprocess::{self, ImageError};
use googlenet::weights::{self, LoadOptions, RawTensor, WeightsError};
use googlenet::{GoogLeNetConfig, Variant};

fn small_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| {
        image::Rgb([(x * 40) as u8, (y * 40) as u8, 128])
    });
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn empty_and_non_images_are_refused() {
    assert!(matches!(
        preprocess::prepare(&[], Variant::Bvlc),
        Err(ImageError::Empty)
    ));
    let text = b"this is a text file renamed to photo.jpg, not an image at all";
    let err = preprocess::prepare(text, Variant::Bvlc).unwrap_err();
    assert!(matches!(err, ImageError::UnknownFormat), "{err}");
    assert!(err.to_string().contains("JPEG, PNG, GIF, WebP or BMP"));
}

#[test]
fn truncated_images_are_refused() {
    let png = small_png(40, 30);
    let err = preprocess::prepare(&png[..png.len() / 2], Variant::Bvlc).unwrap_err();
    assert!(matches!(err, ImageError::Corrupt(_)), "{err}");
}

#[test]
fn decompression_bombs_are_refused_from_the_header() {
    // A PNG whose header claims 100000×100000 pixels (10 gigapixels) and holds no pixel data:
    // refused from the header alone, before any allocation for pixels.
    let png = common::png_header(100_000, 100_000);
    let err = preprocess::prepare(&png, Variant::Bvlc).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 100_000,
                height: 100_000
            }
        ),
        "{err}"
    );
}

#[test]
fn exif_orientation_is_applied() {
    // 40×20 PNG with an eXIf chunk saying "rotate 90° clockwise" (orientation 6).
    let png = small_png(40, 20);
    let mut exif = b"MM\x00\x2a\x00\x00\x00\x08".to_vec();
    exif.extend_from_slice(&1u16.to_be_bytes()); // one IFD entry
    exif.extend_from_slice(&0x0112u16.to_be_bytes()); // Orientation
    exif.extend_from_slice(&3u16.to_be_bytes()); // SHORT
    exif.extend_from_slice(&1u32.to_be_bytes());
    exif.extend_from_slice(&[0, 6, 0, 0]);
    exif.extend_from_slice(&0u32.to_be_bytes());
    let ihdr_end = 8 + 25;
    let mut rotated = png[..ihdr_end].to_vec();
    rotated.extend(common::png_chunk(b"eXIf", &exif));
    rotated.extend_from_slice(&png[ihdr_end..]);
    let img = preprocess::decode(&rotated).unwrap();
    assert_eq!((img.width(), img.height()), (20, 40));
    let p = preprocess::prepare(&rotated, Variant::Bvlc).unwrap();
    assert_eq!(p.original, (20, 40));
    assert_eq!(p.chw.len(), 3 * 224 * 224);
}

#[test]
fn corrupt_weight_files_are_refused() {
    let err = weights::read_safetensors(b"").unwrap_err();
    assert!(matches!(err, WeightsError::Safetensors(_)), "{err}");
    let err = weights::read_safetensors(b"\xff\xff\xff\xff\xff\xff\xff\x7fgarbage").unwrap_err();
    assert!(err.to_string().contains("exceeds the file size"), "{err}");
    let err = weights::read_safetensors(b"\x04\x00\x00\x00\x00\x00\x00\x00abcd").unwrap_err();
    assert!(err.to_string().contains("JSON"), "{err}");
    let Some(shared) = common::shared() else {
        return;
    };
    let bytes = std::fs::read(shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    let err = weights::read_safetensors(&bytes[..bytes.len() - 1000]).unwrap_err();
    assert!(err.to_string().contains("truncated"), "{err}");
}

fn bvlc_map() -> Option<weights::TensorMap> {
    let shared = common::shared()?;
    Some(weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap())
}

#[test]
fn missing_unknown_and_misshapen_tensors_are_named() {
    let Some(map) = bvlc_map() else { return };
    let device = Device::flex();
    let load = |m: &weights::TensorMap, o: LoadOptions| {
        weights::load_model(m, &o, &device).map(|_| ()).unwrap_err()
    };

    let mut m = map.clone();
    m.tensors.remove("inception_4c/5x5.weight");
    let err = load(&m, LoadOptions::default());
    assert!(
        matches!(&err, WeightsError::Missing { key, expected, .. } if key == "inception_4c/5x5.weight" && expected == &vec![64, 24, 5, 5]),
        "{err}"
    );

    let mut m = map.clone();
    m.tensors.insert(
        "inception_3a/3x3.weight".into(),
        RawTensor {
            shape: vec![128, 96, 5, 5],
            data: vec![0.0; 128 * 96 * 25],
        },
    );
    let err = load(&m, LoadOptions::default());
    assert_eq!(
        err.to_string(),
        "tensor `inception_3a/3x3.weight` has shape [128, 96, 5, 5], expected [128, 96, 3, 3]"
    );

    let mut m = map.clone();
    m.tensors.insert(
        "extra/layer.weight".into(),
        RawTensor {
            shape: vec![2],
            data: vec![0.0; 2],
        },
    );
    let err = load(&m, LoadOptions::default());
    assert!(
        matches!(&err, WeightsError::Unknown { keys, .. } if keys == &vec!["extra/layer.weight".to_string()]),
        "{err}"
    );

    let err = load(
        &map,
        LoadOptions {
            num_classes: Some(10),
            ..Default::default()
        },
    );
    assert!(
        matches!(
            err,
            WeightsError::ClassCount {
                found: 1000,
                requested: 10,
                ..
            }
        ),
        "{err}"
    );

    let err = load(
        &map,
        LoadOptions {
            variant: Some(Variant::Torchvision),
            ..Default::default()
        },
    );
    assert!(
        matches!(
            err,
            WeightsError::WrongVariant {
                found: Variant::Bvlc,
                requested: Variant::Torchvision,
                ..
            }
        ),
        "{err}"
    );
}

#[test]
fn a_torchvision_file_is_not_taken_for_bvlc() {
    let Some(shared) = common::shared() else {
        return;
    };
    let map = weights::read_file(&shared.join("reference/googlenet_torchvision_seed0_bncal.pth"))
        .unwrap();
    let err = weights::load_model(
        &map,
        &LoadOptions {
            variant: Some(Variant::Bvlc),
            ..Default::default()
        },
        &Device::flex(),
    )
    .map(|_| ())
    .unwrap_err();
    assert!(err.to_string().contains("BatchNorm"), "{err}");
}

#[test]
fn partial_aux_heads_are_an_error_absent_ones_a_fresh_init() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(3)
        .init(&device);
    // Untrained aux heads are not saved (random, and more than half of the file).
    let untrained =
        weights::read_safetensors(&weights::save_model(&model, &Default::default()).unwrap())
            .unwrap();
    assert!(
        !untrained.tensors.is_empty() && untrained.tensors.keys().all(|k| !k.starts_with("aux"))
    );
    let bytes = weights::save_model(
        &model,
        &weights::SaveInfo {
            aux_trained: true,
            ..Default::default()
        },
    )
    .unwrap();
    let map = weights::read_safetensors(&bytes).unwrap();
    assert!(map.tensors.contains_key("aux2.fc1.weight"));

    let mut no_aux = map.clone();
    no_aux.tensors.retain(|k, _| !k.starts_with("aux"));
    let (fresh, report) = weights::load_model(&no_aux, &LoadOptions::default(), &device).unwrap();
    assert!(report.aux_fresh);
    assert_eq!(report.num_classes, 3);
    // The heads the file lacks are drawn from a fixed seed: the same on every load, uniform
    // within burn's default bound ±1/√fan_in, and different between the two heads.
    let (again, _) = weights::load_model(&no_aux, &LoadOptions::default(), &device).unwrap();
    let values = |m: &googlenet::GoogLeNet, h: usize| {
        let a = m.aux_heads()[h].expect("the model keeps its aux heads");
        let v = |t: Tensor<2>| t.into_data().try_to_vec::<f32>().unwrap();
        [
            v(a.conv.conv.weight.val().flatten::<2>(1, 3)),
            v(a.fc1.weight.val()),
            v(a.fc2.weight.val()),
        ]
    };
    for h in 0..2 {
        let (a, b) = (values(&fresh, h), values(&again, h));
        assert_eq!(
            a,
            b,
            "aux{}: two loads of one file must draw the same fresh head",
            h + 1
        );
        // aux1 reads 4a (512 channels), aux2 reads 4d (528); then fc1 (2048 in) and fc2 (1024 in).
        for (w, fan_in) in a
            .iter()
            .zip([[512.0f32, 2048.0, 1024.0], [528.0, 2048.0, 1024.0]][h])
        {
            let bound = 1.0 / fan_in.sqrt();
            let (lo, hi) = w
                .iter()
                .fold((f32::MAX, f32::MIN), |(l, u), &x| (l.min(x), u.max(x)));
            assert!(
                lo >= -bound && hi <= bound && lo < -0.9 * bound && hi > 0.9 * bound,
                "aux{}: values in [{lo}, {hi}], bound {bound}",
                h + 1
            );
        }
    }
    assert_ne!(
        values(&fresh, 0)[1],
        values(&fresh, 1)[1],
        "the two heads are drawn one after the other, not alike"
    );

    let mut partial = map.clone();
    partial.tensors.remove("aux2.fc1.weight");
    let err = weights::load_model(&partial, &LoadOptions::default(), &device)
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, WeightsError::Missing { key, expected, .. } if key == "aux2.fc1.weight" && expected == &vec![1024, 2048]),
        "{err}"
    );
}

#[test]
fn saved_files_round_trip_with_identical_logits() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Torchvision)
        .with_num_classes(4)
        .init(&device);
    let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let info = weights::SaveInfo {
        labels: Some(labels.clone()),
        aux_trained: true,
    };
    let bytes = weights::save_model(&model, &info).unwrap();
    let map = weights::read_safetensors(&bytes).unwrap();
    assert_eq!(map.metadata["googlenet.variant"], "torchvision");
    let (back, report) = weights::load_model(&map, &LoadOptions::default(), &device).unwrap();
    assert_eq!(report.variant, Variant::Torchvision);
    assert_eq!(report.labels, Some(labels));
    assert!(!report.aux_fresh);
    let x = Tensor::<4>::random(
        [1, 3, 224, 224],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let a = model
        .valid()
        .forward(x.clone())
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let b = back
        .valid()
        .forward(x)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    assert_eq!(a, b);
    // Metadata naming another variant is honoured and enforced.
    let err = weights::load_model(
        &map,
        &LoadOptions {
            variant: Some(Variant::Seed),
            ..Default::default()
        },
        &device,
    )
    .map(|_| ())
    .unwrap_err();
    assert!(matches!(err, WeightsError::WrongVariant { .. }), "{err}");
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = cli(args);
    assert_eq!(code, 1, "{args:?}: {err}");
    assert!(
        !err.contains("panicked") && !err.contains("internal error") && !err.contains("backtrace"),
        "{err}"
    );
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(
        err.starts_with("error: ") && err.contains(needle),
        "{args:?}: {err}"
    );
}

#[test]
fn cli_errors_are_one_line() {
    let dir = std::env::temp_dir().join(format!("googlenet-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let fake = dir.join("photo.jpg");
    std::fs::write(&fake, "not an image").unwrap();
    let junk = dir.join("junk.safetensors");
    std::fs::write(&junk, b"\x10\x00\x00\x00\x00\x00\x00\x00{not json at all}").unwrap();
    let npy = dir.join("x.npy");
    std::fs::write(&npy, googlenet::npy::write(&[1, 3, 10, 10], &[0.0; 300])).unwrap();
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();

    assert_one_line_error(
        &["classify", "--weights", &s(&junk), &s(&fake)],
        "not a valid safetensors file",
    );
    assert_one_line_error(
        &[
            "classify",
            "--weights",
            "/nonexistent/w.safetensors",
            &s(&fake),
        ],
        "cannot read",
    );
    assert_one_line_error(
        &[
            "logits",
            "--weights",
            &s(&junk),
            "--input",
            &s(&fake),
            "--out",
            "/tmp/o.npy",
        ],
        "not a .npy file",
    );
    assert_one_line_error(
        &[
            "logits",
            "--weights",
            &s(&junk),
            "--input",
            &s(&npy),
            "--out",
            "/tmp/o.npy",
        ],
        "expected shape [N≥1, 3, H, W]",
    );
    assert_one_line_error(
        &["convert", "--from", &s(&fake), "--to", "/tmp/o.safetensors"],
        "safetensors",
    );
    let (code, _, err) = cli(&["inspect", "--variant", "alexnet"]);
    assert_eq!(code, 2, "clap usage error");
    assert!(err.contains("unknown variant `alexnet`"), "{err}");
    if let Some(shared) = common::shared() {
        let w = s(&shared.join("weights/bvlc_googlenet.safetensors"));
        assert_one_line_error(
            &["classify", "--weights", &w, &s(&fake)],
            "not an image this app can read",
        );
        assert_one_line_error(
            &[
                "classify",
                "--weights",
                &w,
                "--variant",
                "torchvision",
                &s(&fake),
            ],
            "`bvlc` variant",
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Round two: every input bounded before it is read, decoders within the budget

#[path = "common/peak.rs"]
mod peak;

/// Bits into bytes, least significant first (deflate's order); Huffman codes go in most
/// significant bit first.
#[derive(Default)]
struct Bits {
    out: Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits {
    fn put(&mut self, value: u32, len: u32) {
        self.acc |= (value as u64) << self.n;
        self.n += len;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }
    fn code(&mut self, code: u32, len: u32) {
        self.put(code.reverse_bits() >> (32 - len), len);
    }
    fn finish(mut self) -> Vec<u8> {
        if self.n > 0 {
            self.out.push(self.acc as u8);
        }
        self.out
    }
}

/// A zlib stream that inflates to `1 + 258 · matches` zero bytes in about 13 bits per 258: one
/// fixed-Huffman block, a literal 0, then that many copies of "258 bytes from 1 back".
fn zlib_zeros(matches: usize) -> (Vec<u8>, u64) {
    let mut b = Bits::default();
    b.put(1, 1); // BFINAL
    b.put(1, 2); // BTYPE = fixed Huffman
    b.code(0x30, 8); // literal 0
    for _ in 0..matches {
        b.code(0xC0 + (285 - 280), 8); // length 258
        b.code(0, 5); // distance 1
    }
    b.code(0, 7); // end of block
    let n = 1 + 258 * matches as u64;
    let adler = ((n % 65521) << 16) | 1; // all zeros: a = 1, b = n · 1
    let mut z = vec![0x78, 0x01];
    z.extend(b.finish());
    z.extend_from_slice(&(adler as u32).to_be_bytes());
    (z, n)
}

/// `png` with `chunk` inserted after its IHDR.
fn with_chunk_after_ihdr(png: &[u8], chunk: Vec<u8>) -> Vec<u8> {
    let ihdr_end = 8 + 25;
    [&png[..ihdr_end], &chunk, &png[ihdr_end..]].concat()
}

#[test]
fn compressed_png_chunks_are_never_inflated() {
    // A colour profile or text chunk of zeros that inflates to 310 MB from 1.9 MB (issue 21: a
    // 1.1 MB iCCP chunk took 1.1 GB in the CLI; a 4.3 MB one overflowed the page's 32-bit
    // address space, "capacity overflow", a panic that restarted the worker). Pixels are
    // decoded without colour management (as Pillow decodes them for torchvision), so the chunks
    // are dropped unread and the pixels are the plain file's.
    let png = small_png(40, 30);
    let plain = preprocess::decode(&png).unwrap().to_rgb8();
    let (zeros, inflated) = zlib_zeros(1_200_000);
    assert!(
        inflated > 300_000_000 && zeros.len() < 2_000_000,
        "{inflated} from {}",
        zeros.len()
    );
    let cases: [(&[u8; 4], Vec<u8>); 3] = [
        (b"iCCP", [b"sRGB\0\0".as_slice(), &zeros].concat()),
        (b"zTXt", [b"Comment\0\0".as_slice(), &zeros].concat()),
        (
            b"iTXt",
            [b"Comment\0\x01\0en\0\0".as_slice(), &zeros].concat(),
        ),
    ];
    for (kind, data) in cases {
        let hostile = with_chunk_after_ihdr(&png, common::png_chunk(kind, &data));
        let (img, peak) = peak::peak_heap(|| preprocess::decode(&hostile));
        let name = String::from_utf8_lossy(kind);
        let img = img.unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(
            img.to_rgb8(),
            plain,
            "{name}: the pixels are the plain file's"
        );
        // The budget: the file (and one copy without the chunk), the pixels, the inflater.
        let budget = 2 * hostile.len() + (1 << 20);
        assert!(
            peak < budget,
            "{name}: {peak} bytes at the peak, budget {budget}"
        );
    }
}

fn progressive_fixture() -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/progressive.jpg"),
    )
    .unwrap()
}

/// `jpeg` with its last scan (SOS header and entropy-coded data) repeated `copies` more times
/// before the EOI.
fn with_repeated_last_scan(jpeg: &[u8], copies: usize) -> Vec<u8> {
    let eoi = jpeg.len() - 2;
    assert_eq!(&jpeg[eoi..], [0xFF, 0xD9]);
    let sos = jpeg.windows(2).rposition(|w| w == [0xFF, 0xDA]).unwrap();
    let scan = &jpeg[sos..eoi];
    let mut out = jpeg[..eoi].to_vec();
    for _ in 0..copies {
        out.extend_from_slice(scan);
    }
    out.extend_from_slice(&[0xFF, 0xD9]);
    out
}

/// `jpeg` with its frame header claiming `width`×`height`.
fn with_frame_size(jpeg: &[u8], width: u16, height: u16) -> Vec<u8> {
    let sof = jpeg.windows(2).position(|w| w == [0xFF, 0xC2]).unwrap();
    let mut out = jpeg.to_vec();
    out[sof + 5..sof + 7].copy_from_slice(&height.to_be_bytes());
    out[sof + 7..sof + 9].copy_from_slice(&width.to_be_bytes());
    out
}

#[test]
fn progressive_scan_bombs_are_refused_before_decoding() {
    // The fixture: 48×32, 4:2:0, libjpeg's 10-scan script; its scans decode its 36 blocks
    // (24 luma, 6 + 6 chroma) 192 times, 5.3 passes. Its last scan refines the 24 luma blocks.
    let jpeg = progressive_fixture();
    assert!(preprocess::decode(&jpeg).is_ok());

    // Thousands of scans (issue 21: 8,180 scans at 40 MP took 10–28 s against 2.2 s for an
    // ordinary file), counted from the markers: refused before any decoder runs, at the cost
    // of reading the bytes once, whatever size the header claims.
    let bomb = with_repeated_last_scan(&jpeg, 5000);
    for (what, bytes) in [
        ("48×32", bomb.clone()),
        ("8000×5000", with_frame_size(&bomb, 8000, 5000)),
    ] {
        let (r, peak) = peak::peak_heap(|| preprocess::decode(&bytes));
        let err = r.unwrap_err();
        assert!(
            matches!(err, ImageError::TooManyScans { scans: 5010 }),
            "{what}: {err}"
        );
        assert!(
            peak < 64 << 10,
            "{what}: {peak} bytes at the peak: nothing is allocated for pixels"
        );
        assert_eq!(
            err.to_string(),
            "the JPEG has 5,010 scans; the limit is 500 (an ordinary progressive JPEG has about 10): re-save it as an \
             ordinary JPEG or a PNG"
        );
    }

    // Under the scan limit, but 300 more luma scans: 192 + 300 × 24 = 7,392 block decodes,
    // 205 passes over the 36 blocks, against a limit of 100 passes (proportional to the pixels).
    let heavy = with_repeated_last_scan(&jpeg, 300);
    let (r, peak) = peak::peak_heap(|| preprocess::decode(&heavy));
    let err = r.unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::ScanWork {
                visits: 7392,
                blocks: 36
            }
        ),
        "{err}"
    );
    assert!(peak < 64 << 10, "{peak} bytes at the peak");
    assert!(err.to_string().starts_with("the JPEG's scans decode its 36 blocks 7,392 times in all, 205.3 times each; the limit is 100"), "{err}");
    // The same script at 40 megapixels is refused the same way, from the same arithmetic.
    let err = preprocess::decode(&with_frame_size(&heavy, 8000, 5000)).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::ScanWork {
                blocks: 938_000,
                ..
            }
        ),
        "{err}"
    );
    // 100 passes is the limit, not less: 135 more luma scans is 3,432 decodes, 95.3 passes.
    let err = preprocess::decode(&with_repeated_last_scan(&jpeg, 135)).err();
    assert!(
        !matches!(
            err,
            Some(ImageError::ScanWork { .. } | ImageError::TooManyScans { .. })
        ),
        "{err:?}"
    );
}

fn rgb_noise(w: usize, h: usize) -> Vec<u8> {
    let mut rng = googlenet::rng::SplitMix64::new(7);
    (0..w * h * 3).map(|_| rng.next_u64() as u8).collect()
}

#[test]
fn unsupported_and_damaged_inputs_are_worded_differently() {
    // Valid files of formats the app does not read: "unsupported", never "damaged".
    let mut tiff = b"II*\0\x08\0\0\0".to_vec();
    tiff.extend_from_slice(&[0; 16]);
    let err = preprocess::decode(&tiff).unwrap_err();
    assert!(
        matches!(&err, ImageError::Unsupported(f) if f == "TIFF"),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "unsupported image format: TIFF (this app reads JPEG, PNG, GIF, WebP and BMP; convert it to one of those)"
    );
    let heic = b"\0\0\0\x18ftypheic\0\0\0\0mif1heic".to_vec();
    assert!(
        matches!(preprocess::decode(&heic), Err(ImageError::Unsupported(f)) if f == "HEIC/HEIF")
    );
    // Arithmetic-coded JPEG (SOF9) is decoded (libjpeg-turbo has the coder), to the same pixels
    // as the Huffman-coded file of the same coefficients.
    use libjpeg_turbo_rs::{PixelFormat, Subsampling};
    let px = rgb_noise(40, 24);
    let arith =
        libjpeg_turbo_rs::compress_arithmetic(&px, 40, 24, PixelFormat::Rgb, 90, Subsampling::S420)
            .unwrap();
    assert!(arith.windows(2).any(|w| w == [0xFF, 0xC9]), "an SOF9 frame");
    let huffman =
        libjpeg_turbo_rs::compress(&px, 40, 24, PixelFormat::Rgb, 90, Subsampling::S420).unwrap();
    let a = preprocess::decode(&arith).unwrap_or_else(|e| panic!("arithmetic JPEG: {e}"));
    assert_eq!(a.to_rgb8(), preprocess::decode(&huffman).unwrap().to_rgb8());
    // Cut short, it is damaged, and said to be.
    let err = preprocess::decode(&arith[..arith.len() / 2]).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("the image file is damaged or truncated: the JPEG data ends early"),
        "{err}"
    );
}

/// The CLI with its memory bounded (2 GB of address space: the budgets plus the model, far
/// below what an unbounded read of the inputs below would take) and a guard against a read
/// that would block for ever: either ends the process, and the test then fails on its
/// status and message.
fn cli_bounded(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new("sh")
        .arg("-c")
        .arg("ulimit -v 2000000 && exec timeout -s KILL 300 \"$0\" \"$@\"")
        .arg(env!("CARGO_BIN_EXE_googlenet"))
        .args(args)
        .env("MALLOC_ARENA_MAX", "2")
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("googlenet-{name}-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A sparse file of `len` bytes starting with `head` (no disk, no time to make).
fn sparse_file(path: &std::path::Path, head: &[u8], len: u64) {
    std::fs::write(path, head).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(path)
        .unwrap()
        .set_len(len)
        .unwrap();
}

#[test]
fn the_cli_checks_an_input_before_reading_it() {
    let Some(shared) = common::shared() else {
        return;
    };
    let w = shared.join("weights/bvlc_googlenet.safetensors");
    let w = w.to_str().unwrap();
    let dir = temp_dir("unread");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let fifo = dir.join("pipe.jpg");
    assert!(
        std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .unwrap()
            .success()
    );
    let big_pdf = dir.join("big.pdf");
    sparse_file(&big_pdf, b"%PDF-1.7\n", 2_000_000_000);
    let big_jpeg = dir.join("big.jpg");
    sparse_file(
        &big_jpeg,
        &[0xFF, 0xD8, 0xFF, 0xE0, 0, 16, b'J', b'F', b'I', b'F', 0],
        2_000_000_000,
    );
    let cases: [(Vec<String>, String); 7] = [
        (vec!["/dev/zero".into()], "error: /dev/zero is a character device, not a regular file: give the path of an image".into()),
        (vec![s(&fifo)], format!("error: {} is a FIFO (named pipe), not a regular file: give the path of an image", s(&fifo))),
        (vec![s(&dir)], format!("error: {} is a directory, not a regular file: give the path of an image", s(&dir))),
        (vec![s(&big_pdf)], format!("error: {}: not an image this app can read (expected JPEG, PNG, GIF, WebP or BMP)", s(&big_pdf))),
        (
            vec![s(&big_jpeg)],
            format!("error: {} is 2,000,000,000 bytes; the limit for an image is 200,000,000 bytes", s(&big_jpeg)),
        ),
        (
            vec!["--labels".into(), "/dev/zero".into(), s(&big_pdf)],
            "error: /dev/zero is a character device, not a regular file: give the path of a labels file".into(),
        ),
        (vec!["--labels".into(), s(&big_pdf), s(&big_pdf)], format!("error: {} is 2,000,000,000 bytes; the limit for a labels file is 4,000,000 bytes", s(&big_pdf))),
    ];
    for (extra, want) in cases {
        let mut args = vec!["classify", "--weights", w];
        args.extend(extra.iter().map(String::as_str));
        let (code, _, err) = cli_bounded(&args);
        assert_eq!((code, err.trim_end()), (1, want.as_str()), "{extra:?}");
    }
    // Weights: /dev/zero, and a valid file with 300 MB after its last tensor, refused from its
    // header and its size without reading the 300 MB.
    let (code, _, err) = cli_bounded(&["classify", "--weights", "/dev/zero", &s(&big_pdf)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains(
            "/dev/zero is a character device, not a regular file: give the path of a weights file"
        ),
        "{err}"
    );
    let trailing = dir.join("trailing.safetensors");
    std::fs::copy(w, &trailing).unwrap();
    let len = std::fs::metadata(&trailing).unwrap().len();
    std::fs::OpenOptions::new()
        .write(true)
        .open(&trailing)
        .unwrap()
        .set_len(len + 300_000_000)
        .unwrap();
    let (code, _, err) = cli_bounded(&["classify", "--weights", &s(&trailing), &s(&big_pdf)]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("the header length is wrong or 300000000 stray bytes follow the last tensor"),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn weights_are_refused_from_their_header_without_reading_the_rest() {
    // A valid small file with 100 MB after its last tensor (within the size limit): refused
    // having read the header only; and past the size limit, from the size.
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(3)
        .init(&device);
    let bytes = weights::save_model(&model, &Default::default()).unwrap();
    let dir = temp_dir("trailing");
    let path = dir.join("w.safetensors");
    std::fs::write(&path, &bytes).unwrap();
    let (map, whole) = peak::peak_heap(|| weights::read_file(&path));
    assert!(map.is_ok());
    for (extra, what) in [(100_000_000u64, "header"), (300_000_000, "header")] {
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(bytes.len() as u64 + extra)
            .unwrap();
        let (r, peak) = peak::peak_heap(|| weights::read_file(&path));
        let err = r.map(|_| ()).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("{extra} stray bytes follow the last tensor")),
            "{what}: {err}"
        );
        assert!(
            peak < (1 << 20) && peak * 10 < whole,
            "{what}: {peak} bytes at the peak, {whole} for the whole file"
        );
    }
    // A file whose header cannot be read as one is refused by size before reading.
    sparse_file(&path, b"garbage!", weights::MAX_FILE_BYTES + 1);
    let (r, peak) = peak::peak_heap(|| weights::read_file(&path));
    let err = r.map(|_| ()).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "{} is 256,000,001 bytes; the limit for a weights file is 256,000,000 bytes",
            path.display()
        )
    );
    assert!(peak < 1 << 20, "{peak}");
    std::fs::remove_dir_all(&dir).ok();
}

// ---------------------------------------------------------------------------------------------
// Round two: no lost work, nothing a file holds printed raw

#[test]
fn one_bad_file_loses_none_of_the_good_ones() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = temp_dir("streaming");
    let bad = dir.join("bad.pdf");
    std::fs::write(&bad, "%PDF-1.7 not an image").unwrap();
    let (cat, dog) = (shared.join("images/cat.jpg"), shared.join("images/dog.jpg"));
    let w = shared.join("weights/bvlc_googlenet.safetensors");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let want_err = format!(
        "error: {0}: not an image this app can read (expected JPEG, PNG, GIF, WebP or BMP)\nerror: 1 of 3 images could not be \
         classified: {0}",
        s(&bad)
    );
    // Text: both photos' results, the bad file named on stderr, exit status 1.
    let (code, out, err) = cli(&[
        "classify",
        "--top",
        "1",
        "--weights",
        &s(&w),
        &s(&cat),
        &s(&bad),
        &s(&dog),
    ]);
    assert_eq!((code, err.trim_end()), (1, want_err.as_str()));
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 4, "{out}");
    assert_eq!((lines[0], lines[2]), (s(&cat).as_str(), s(&dog).as_str()));
    assert!(
        lines[1].ends_with("  Egyptian cat (#285)")
            && lines[3].ends_with("  Pembroke, Pembroke Welsh corgi (#263)"),
        "{out}"
    );
    // JSON: still one valid array, of the two that worked.
    let (code, out, err) = cli(&[
        "classify",
        "--json",
        "--top",
        "1",
        "--weights",
        &s(&w),
        &s(&cat),
        &s(&bad),
        &s(&dog),
    ]);
    assert_eq!((code, err.trim_end()), (1, want_err.as_str()));
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    let images: Vec<&str> = v
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["image"].as_str().unwrap())
        .collect();
    assert_eq!(images, [s(&cat), s(&dog)]);
    assert_eq!(v[1]["top"][0]["index"], 263);
    // Only the bad file: its one line, no summary.
    let (code, out, err) = cli(&["classify", "--json", "--weights", &s(&w), &s(&bad)]);
    assert_eq!(
        (code, out.trim_end(), err.lines().count()),
        (1, "[\n]", 1),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn results_are_printed_as_soon_as_they_are_known() {
    use std::io::BufRead;
    let Some(shared) = common::shared() else {
        return;
    };
    let cat = shared.join("images/cat.jpg");
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["classify", "--json", "--top", "1", "--weights"])
        .arg(shared.join("weights/bvlc_googlenet.safetensors"))
        .args(std::iter::repeat_n(&cat, 30))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    assert_eq!(lines.next().unwrap().unwrap(), "[");
    let first = lines.next().unwrap().unwrap();
    // The first image's result arrives while 29 are still to be classified.
    let running = child.try_wait().unwrap().is_none();
    let v: serde_json::Value = serde_json::from_str(&first).unwrap();
    assert_eq!(v["top"][0]["label"], "Egyptian cat");
    let rest: Vec<String> = lines.map(Result::unwrap).collect();
    assert!(child.wait().unwrap().success());
    assert!(
        running,
        "the first result came only once the process had ended"
    );
    let all: serde_json::Value =
        serde_json::from_str(&format!("[\n{first}\n{}", rest.join("\n"))).unwrap();
    assert_eq!(all.as_array().unwrap().len(), 30);
}

#[test]
fn control_characters_from_files_are_printed_escaped() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = temp_dir("escape");
    // A file name that would forge a result line and recolour the terminal.
    let name = "x\u{1b}[31m\r\n  99.99%  Egyptian cat (#285)\u{202e}.jpg";
    let photo = dir.join(name);
    std::fs::copy(shared.join("images/dog.jpg"), &photo).unwrap();
    let missing = dir.join("gone\u{1b}[2J.jpg");
    let w = shared.join("weights/bvlc_googlenet.safetensors");
    let (code, out, err) = cli(&[
        "classify",
        "--top",
        "1",
        "--weights",
        w.to_str().unwrap(),
        photo.to_str().unwrap(),
        missing.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    for text in [&out, &err] {
        assert!(
            !text.contains(['\u{1b}', '\r', '\u{202e}']),
            "raw control characters: {text:?}"
        );
    }
    let shown = format!(
        "{}/x\\u{{1b}}[31m\\r\\n  99.99%  Egyptian cat (#285)\\u{{202e}}.jpg",
        dir.display()
    );
    assert_eq!(out.lines().next(), Some(shown.as_str()), "{out}");
    assert_eq!(
        out.lines().count(),
        2,
        "one result line, no forged one: {out}"
    );
    assert!(out.contains("Pembroke"), "{out}");
    assert!(
        err.starts_with(&format!(
            "error: cannot read {}/gone\\u{{1b}}[2J.jpg: ",
            dir.display()
        )),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}

/// A small valid weights file (3-class seed variant).
fn small_weights(path: &std::path::Path) -> Vec<u8> {
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(3)
        .init(&Device::flex());
    let bytes = weights::save_model(&model, &Default::default()).unwrap();
    std::fs::write(path, &bytes).unwrap();
    bytes
}

#[cfg(unix)]
fn inode(p: &std::path::Path) -> u64 {
    use std::os::unix::fs::MetadataExt;
    std::fs::metadata(p).unwrap().ino()
}

#[cfg(unix)]
#[test]
fn outputs_never_overwrite_inputs_and_replace_files_whole() {
    let dir = temp_dir("outputs");
    let s = |p: &std::path::Path| p.to_str().unwrap().to_string();
    let w = dir.join("w.safetensors");
    let original = small_weights(&w);
    let link = dir.join("link.safetensors");
    std::fs::hard_link(&w, &link).unwrap();
    // convert onto its own source, by the same path or another link to the file: refused
    // before any work, the source intact.
    for to in [&w, &link] {
        let (code, _, err) = cli(&["convert", "--from", &s(&w), "--to", &s(to)]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(
            err.trim_end(),
            format!(
                "error: --to {} is the same file as --from {}: writing it would destroy that input; choose another path",
                s(to),
                s(&w)
            )
        );
        assert_eq!(std::fs::read(&w).unwrap(), original);
    }
    // logits: --out (or one of its aux files) onto --input or --weights.
    let x = dir.join("x.npy");
    std::fs::write(
        &x,
        googlenet::npy::write(&[1, 3, 96, 96], &vec![0.0; 3 * 96 * 96]),
    )
    .unwrap();
    for (out, input) in [(&x, "--input"), (&w, "--weights")] {
        let (code, _, err) = cli(&[
            "logits",
            "--weights",
            &s(&w),
            "--input",
            &s(&x),
            "--out",
            &s(out),
        ]);
        assert_eq!(code, 1, "{err}");
        assert!(
            err.contains(&format!("is the same file as {input} ")),
            "{err}"
        );
    }
    assert_eq!(std::fs::read(&w).unwrap(), original);
    // --train writes OUT, OUT.aux2.npy and OUT.aux1.npy: each is checked.
    let aux = dir.join("y.aux1.npy");
    std::fs::hard_link(&x, &aux).unwrap();
    let (code, _, err) = cli(&[
        "logits",
        "--weights",
        &s(&w),
        "--input",
        &s(&x),
        "--train",
        "--out",
        &s(&dir.join("y.npy")),
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: --out (aux1) {} is the same file as --input {}: writing it would destroy that input; choose another path",
            s(&aux),
            s(&x)
        )
    );
    // A good convert replaces the destination through a new file (renamed over it), not by
    // truncating it in place, and leaves no temporary file behind.
    let dest = dir.join("out.safetensors");
    std::fs::write(&dest, b"the previous file").unwrap();
    let before = inode(&dest);
    let (code, _, err) = cli(&[
        "convert",
        "--from",
        &s(&w),
        "--to",
        &s(&dest),
        "--dtype",
        "f16",
    ]);
    assert_eq!(code, 0, "{err}");
    assert_ne!(
        inode(&dest),
        before,
        "replaced by a rename, not rewritten in place"
    );
    assert!(weights::read_file(&dest).is_ok());
    let mut names: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names,
        [
            "link.safetensors",
            "out.safetensors",
            "w.safetensors",
            "x.npy",
            "y.aux1.npy"
        ]
    );
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn an_output_that_fails_leaves_the_destination_as_it_was() {
    use googlenet::files::{self, Output};
    let dir = temp_dir("atomic");
    let dest = dir.join("model.safetensors");
    std::fs::write(&dest, b"the previous model").unwrap();
    // Dropped before its commit (an error on the way): nothing changes, nothing is left.
    let mut out = Output::create(&dest).unwrap();
    out.write_all(b"half a new mod").unwrap();
    drop(out);
    assert_eq!(std::fs::read(&dest).unwrap(), b"the previous model");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // Committed: the new content, whole.
    files::write(&dest, b"the new model").unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), b"the new model");
    assert_eq!(std::fs::read_dir(&dir).unwrap().count(), 1);
    // A destination in a folder that does not exist: an error naming it, before any write.
    let err = files::write(&dir.join("no/such/dir/x"), b"x")
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with(&format!("cannot write {}/no/such/dir/x: ", dir.display())),
        "{err}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
