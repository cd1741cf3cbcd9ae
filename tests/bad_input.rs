//! Bad input of every kind gets a clear, typed error (and a one-line CLI error), never a panic.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use googlenet::preprocess::{self, ImageError};
use googlenet::weights::{self, LoadOptions, RawTensor, WeightsError};
use googlenet::{GoogLeNetConfig, Variant};

fn small_png(w: u32, h: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 40) as u8, (y * 40) as u8, 128]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, image::ImageFormat::Png).unwrap();
    out.into_inner()
}

#[test]
fn empty_and_non_images_are_refused() {
    assert!(matches!(preprocess::prepare(&[], Variant::Bvlc), Err(ImageError::Empty)));
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
    assert!(matches!(err, ImageError::TooLarge { width: 100_000, height: 100_000 }), "{err}");
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
    let Some(shared) = common::shared() else { return };
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
    let load = |m: &weights::TensorMap, o: LoadOptions| weights::load_model(m, &o, &device).map(|_| ()).unwrap_err();

    let mut m = map.clone();
    m.tensors.remove("inception_4c/5x5.weight");
    let err = load(&m, LoadOptions::default());
    assert!(matches!(&err, WeightsError::Missing { key, expected, .. } if key == "inception_4c/5x5.weight" && expected == &vec![64, 24, 5, 5]), "{err}");

    let mut m = map.clone();
    m.tensors.insert("inception_3a/3x3.weight".into(), RawTensor { shape: vec![128, 96, 5, 5], data: vec![0.0; 128 * 96 * 25] });
    let err = load(&m, LoadOptions::default());
    assert_eq!(err.to_string(), "tensor `inception_3a/3x3.weight` has shape [128, 96, 5, 5], expected [128, 96, 3, 3]");

    let mut m = map.clone();
    m.tensors.insert("extra/layer.weight".into(), RawTensor { shape: vec![2], data: vec![0.0; 2] });
    let err = load(&m, LoadOptions::default());
    assert!(matches!(&err, WeightsError::Unknown { keys, .. } if keys == &vec!["extra/layer.weight".to_string()]), "{err}");

    let err = load(&map, LoadOptions { num_classes: Some(10), ..Default::default() });
    assert!(matches!(err, WeightsError::ClassCount { found: 1000, requested: 10, .. }), "{err}");

    let err = load(&map, LoadOptions { variant: Some(Variant::Torchvision), ..Default::default() });
    assert!(matches!(err, WeightsError::WrongVariant { found: Variant::Bvlc, requested: Variant::Torchvision, .. }), "{err}");
}

#[test]
fn a_torchvision_file_is_not_taken_for_bvlc() {
    let Some(shared) = common::shared() else { return };
    let map = weights::read_file(&shared.join("reference/googlenet_torchvision_seed0_bncal.pth")).unwrap();
    let err = weights::load_model(&map, &LoadOptions { variant: Some(Variant::Bvlc), ..Default::default() }, &Device::flex())
        .map(|_| ())
        .unwrap_err();
    assert!(err.to_string().contains("BatchNorm"), "{err}");
}

#[test]
fn partial_aux_heads_are_an_error_absent_ones_a_fresh_init() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new().with_variant(Variant::Seed).with_num_classes(3).init(&device);
    // Untrained aux heads are not saved (random, and more than half of the file).
    let untrained = weights::read_safetensors(&weights::save_model(&model, &Default::default()).unwrap()).unwrap();
    assert!(!untrained.tensors.is_empty() && untrained.tensors.keys().all(|k| !k.starts_with("aux")));
    let bytes = weights::save_model(&model, &weights::SaveInfo { aux_trained: true, ..Default::default() }).unwrap();
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
        [v(a.conv.conv.weight.val().flatten::<2>(1, 3)), v(a.fc1.weight.val()), v(a.fc2.weight.val())]
    };
    for h in 0..2 {
        let (a, b) = (values(&fresh, h), values(&again, h));
        assert_eq!(a, b, "aux{}: two loads of one file must draw the same fresh head", h + 1);
        // aux1 reads 4a (512 channels), aux2 reads 4d (528); then fc1 (2048 in) and fc2 (1024 in).
        for (w, fan_in) in a.iter().zip([[512.0f32, 2048.0, 1024.0], [528.0, 2048.0, 1024.0]][h]) {
            let bound = 1.0 / fan_in.sqrt();
            let (lo, hi) = w.iter().fold((f32::MAX, f32::MIN), |(l, u), &x| (l.min(x), u.max(x)));
            assert!(lo >= -bound && hi <= bound && lo < -0.9 * bound && hi > 0.9 * bound, "aux{}: values in [{lo}, {hi}], bound {bound}", h + 1);
        }
    }
    assert_ne!(values(&fresh, 0)[1], values(&fresh, 1)[1], "the two heads are drawn one after the other, not alike");

    let mut partial = map.clone();
    partial.tensors.remove("aux2.fc1.weight");
    let err = weights::load_model(&partial, &LoadOptions::default(), &device).map(|_| ()).unwrap_err();
    assert!(matches!(&err, WeightsError::Missing { key, expected, .. } if key == "aux2.fc1.weight" && expected == &vec![1024, 2048]), "{err}");
}

#[test]
fn saved_files_round_trip_with_identical_logits() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new().with_variant(Variant::Torchvision).with_num_classes(4).init(&device);
    let labels: Vec<String> = ["a", "b", "c", "d"].map(String::from).to_vec();
    let info = weights::SaveInfo { labels: Some(labels.clone()), aux_trained: true };
    let bytes = weights::save_model(&model, &info).unwrap();
    let map = weights::read_safetensors(&bytes).unwrap();
    assert_eq!(map.metadata["googlenet.variant"], "torchvision");
    let (back, report) = weights::load_model(&map, &LoadOptions::default(), &device).unwrap();
    assert_eq!(report.variant, Variant::Torchvision);
    assert_eq!(report.labels, Some(labels));
    assert!(!report.aux_fresh);
    let x = Tensor::<4>::random([1, 3, 224, 224], burn::tensor::Distribution::Normal(0.0, 1.0), &device);
    let a = model.valid().forward(x.clone()).into_data().try_to_vec::<f32>().unwrap();
    let b = back.valid().forward(x).into_data().try_to_vec::<f32>().unwrap();
    assert_eq!(a, b);
    // Metadata naming another variant is honoured and enforced.
    let err = weights::load_model(&map, &LoadOptions { variant: Some(Variant::Seed), ..Default::default() }, &device)
        .map(|_| ())
        .unwrap_err();
    assert!(matches!(err, WeightsError::WrongVariant { .. }), "{err}");
}

fn cli(args: &[&str]) -> (i32, String, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet")).args(args).output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn assert_one_line_error(args: &[&str], needle: &str) {
    let (code, _, err) = cli(args);
    assert_eq!(code, 1, "{args:?}: {err}");
    assert!(!err.contains("panicked") && !err.contains("internal error") && !err.contains("backtrace"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "one line: {err}");
    assert!(err.starts_with("error: ") && err.contains(needle), "{args:?}: {err}");
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

    assert_one_line_error(&["classify", "--weights", &s(&junk), &s(&fake)], "not a valid safetensors file");
    assert_one_line_error(&["classify", "--weights", "/nonexistent/w.safetensors", &s(&fake)], "cannot read");
    assert_one_line_error(&["logits", "--weights", &s(&junk), "--input", &s(&fake), "--out", "/tmp/o.npy"], "not a .npy file");
    assert_one_line_error(&["logits", "--weights", &s(&junk), "--input", &s(&npy), "--out", "/tmp/o.npy"], "expected shape [N≥1, 3, H, W]");
    assert_one_line_error(&["convert", "--from", &s(&fake), "--to", "/tmp/o.safetensors"], "safetensors");
    let (code, _, err) = cli(&["inspect", "--variant", "alexnet"]);
    assert_eq!(code, 2, "clap usage error");
    assert!(err.contains("unknown variant `alexnet`"), "{err}");
    if let Some(shared) = common::shared() {
        let w = s(&shared.join("weights/bvlc_googlenet.safetensors"));
        assert_one_line_error(&["classify", "--weights", &w, &s(&fake)], "not an image this app can read");
        assert_one_line_error(&["classify", "--weights", &w, "--variant", "torchvision", &s(&fake)], "`bvlc` variant");
    }
    std::fs::remove_dir_all(&dir).ok();
}
