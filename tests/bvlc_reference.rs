//! The BVLC ImageNet weights on the test photos against ONNX Runtime's reference top-5
//! (`../shared/images/expected_top5.json`), through the library and through the CLI.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use googlenet::labels::{parse_labels, top_k};
use googlenet::weights::{self, LoadOptions};
use googlenet::{Variant, preprocess};
use serde_json::Value;

fn expected(shared: &std::path::Path) -> Value {
    serde_json::from_str(
        &std::fs::read_to_string(shared.join("images/expected_top5.json")).unwrap(),
    )
    .unwrap()
}

fn check(image: &str, got: &[(usize, f32)], want: &Value) {
    let want = want[image].as_array().unwrap();
    let want_idx: Vec<usize> = want
        .iter()
        .map(|p| p["index"].as_u64().unwrap() as usize)
        .collect();
    let want_p = want[0]["prob"].as_f64().unwrap() as f32;
    assert_eq!(
        got[0].0, want_idx[0],
        "{image}: top-1 {} expected {}",
        got[0].0, want_idx[0]
    );
    assert!(
        (got[0].1 - want_p).abs() <= 0.02,
        "{image}: top-1 prob {} expected {want_p} ± 0.02",
        got[0].1
    );
    let overlap = got.iter().filter(|(i, _)| want_idx.contains(i)).count();
    assert!(
        overlap >= 4,
        "{image}: top-5 overlap {overlap} < 4: {got:?} vs {want_idx:?}"
    );
}

#[test]
fn bvlc_weights_classify_the_test_photos_like_onnx_runtime() {
    let Some(shared) = common::shared() else {
        return;
    };
    let device = Device::flex();
    let map = weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    let (model, report) = weights::load_model(&map, &LoadOptions::default(), &device).unwrap();
    assert_eq!(report.variant, Variant::Bvlc);
    assert_eq!(report.num_classes, 1000);
    assert_eq!(report.loaded, 116, "every tensor of the BVLC file is used");
    assert!(
        report.aux_fresh,
        "the BVLC release has no aux heads; they must be reported fresh"
    );
    let model = model.valid();
    let labels =
        parse_labels(&std::fs::read_to_string(shared.join("data/synset_words.txt")).unwrap());
    let want = expected(&shared);
    for image in ["cat.jpg", "dog.jpg"] {
        let bytes = std::fs::read(shared.join("images").join(image)).unwrap();
        let p = preprocess::prepare(&bytes, Variant::Bvlc).unwrap();
        let x = Tensor::<4>::from_data(TensorData::new(p.chw, [1, 3, 224, 224]), &device);
        let logits = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let top = top_k(&logits, 5, &labels);
        assert_eq!(top[0].label, want[image][0]["label"].as_str().unwrap());
        let got: Vec<(usize, f32)> = top.iter().map(|p| (p.index, p.prob)).collect();
        check(image, &got, &want);
    }
}

#[test]
fn cli_classify_json_matches_the_reference() {
    let Some(shared) = common::shared() else {
        return;
    };
    let out = cli_classify(&shared, &[]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    check_cli_json(&shared, &out.stdout);
}

/// `googlenet [BACKEND ARGS] classify --json --top 5` of the two test photos with the BVLC weights.
fn cli_classify(shared: &std::path::Path, backend: &[&str]) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(backend)
        .args(["classify", "--json", "--top", "5", "--weights"])
        .arg(shared.join("weights/bvlc_googlenet.safetensors"))
        .arg("--labels")
        .arg(shared.join("data/synset_words.txt"))
        .arg(shared.join("images/cat.jpg"))
        .arg(shared.join("images/dog.jpg"))
        .output()
        .unwrap()
}

fn check_cli_json(shared: &std::path::Path, stdout: &[u8]) {
    let json: Value = serde_json::from_slice(stdout).unwrap();
    let want = expected(shared);
    let results = json.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, image) in results.iter().zip(["cat.jpg", "dog.jpg"]) {
        assert!(r["image"].as_str().unwrap().ends_with(image));
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        let got: Vec<(usize, f32)> = top
            .iter()
            .map(|p| {
                (
                    p["index"].as_u64().unwrap() as usize,
                    p["prob"].as_f64().unwrap() as f32,
                )
            })
            .collect();
        assert_eq!(top[0]["label"], want[image][0]["label"]);
        check(image, &got, &want);
    }
}

/// `--backend wgpu` (a build with `--features wgpu`): burn's wgpu kernels give the reference
/// answers, and `bench` runs on them. CI runs this on Mesa's lavapipe, a Vulkan driver on the
/// CPU (scripts/test.sh). Where no adapter is usable it is skipped visibly, and fails under
/// `CI=true`.
#[cfg(feature = "wgpu")]
#[test]
fn cli_on_the_wgpu_backend_matches_the_reference() {
    let Some(shared) = common::shared() else {
        return;
    };
    let out = cli_classify(&shared, &["--backend", "wgpu"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if !out.status.success() && stderr.contains("no usable GPU") {
        common::skip(&format!(
            "{} (install a Vulkan driver, e.g. Debian's mesa-vulkan-drivers)",
            stderr.trim()
        ));
        return;
    }
    assert!(out.status.success(), "{stderr}");
    check_cli_json(&shared, &out.stdout);
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args([
            "--backend",
            "wgpu",
            "bench",
            "--warmup",
            "1",
            "--iters",
            "1",
            "--json",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    // The adapter that ran, by its own name (lavapipe: "llvmpipe (LLVM …) (a CPU adapter, not a GPU)").
    let backend = json["backend"].as_str().unwrap();
    assert!(
        backend.starts_with("burn-wgpu 0.22.1 on ") && backend.len() > "burn-wgpu 0.22.1 on ".len(),
        "{json}"
    );
    use std::io::Write;
    let _ = writeln!(std::io::stderr(), "the wgpu CLI test ran on {backend}");
    let ms = json["median_ms"].as_f64().unwrap();
    assert!(ms.is_finite() && ms > 0.0, "{json}");
}

/// The page's default download: the BVLC weights as float16 (`googlenet convert --dtype f16`),
/// computed in f32 after loading. On every shared photo the top-5 labels equal those of the f32
/// file; the largest logit difference is printed (BENCHMARKS.md records it).
#[test]
fn f16_weights_keep_every_top5_of_f32() {
    let Some(shared) = common::shared() else {
        return;
    };
    let device = Device::flex();
    let f32_path = shared.join("weights/bvlc_googlenet.safetensors");
    let (full, _) = weights::load_model(
        &weights::read_file(&f32_path).unwrap(),
        &LoadOptions::default(),
        &device,
    )
    .unwrap();
    let full = full.valid();
    let half_bytes = weights::save_model_as(
        &full,
        &weights::SaveInfo::default(),
        weights::StoreDtype::F16,
    )
    .unwrap();
    let f32_len = std::fs::metadata(&f32_path).unwrap().len() as usize;
    assert!(
        half_bytes.len() * 2 < f32_len + 64 * 1024,
        "f16 file {} bytes vs f32 {f32_len}",
        half_bytes.len()
    );
    let (half, report) = weights::load_model(
        &weights::read_bytes(&half_bytes).unwrap(),
        &LoadOptions::default(),
        &device,
    )
    .unwrap();
    assert_eq!(report.variant, Variant::Bvlc);
    let half = half.valid();
    let labels =
        parse_labels(&std::fs::read_to_string(shared.join("data/synset_words.txt")).unwrap());
    let mut images: Vec<_> = std::fs::read_dir(shared.join("images"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension()
                .is_some_and(|e| e == "jpg" || e == "jpeg" || e == "png")
        })
        .collect();
    images.sort();
    assert!(images.len() >= 2);
    let mut worst = 0f32;
    for path in &images {
        let p = preprocess::prepare(&std::fs::read(path).unwrap(), Variant::Bvlc).unwrap();
        let x = Tensor::<4>::from_data(TensorData::new(p.chw, [1, 3, 224, 224]), &device);
        let a = full
            .forward(x.clone())
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let b = half.forward(x).into_data().try_to_vec::<f32>().unwrap();
        let names = |l: &[f32]| {
            top_k(l, 5, &labels)
                .into_iter()
                .map(|p| p.label)
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&b),
            names(&a),
            "{}: top-5 with f16 weights differs from f32",
            path.display()
        );
        let diff = a
            .iter()
            .zip(&b)
            .fold(0f32, |m, (x, y)| m.max((x - y).abs()));
        let range = a.iter().fold(0f32, |m, x| m.max(x.abs()));
        assert!(
            diff < 0.01 * range,
            "{}: logits differ by {diff} (largest |logit| {range})",
            path.display()
        );
        worst = worst.max(diff);
    }
    use std::io::Write;
    let _ = writeln!(
        std::io::stderr(),
        "f16 vs f32 weights: largest logit difference {worst:.5} over {} photos",
        images.len()
    );
}

#[test]
fn f16_refuses_values_beyond_its_range_and_the_cli_converts() {
    let Some(shared) = common::shared() else {
        return;
    };
    let device = Device::flex();
    let model = googlenet::GoogLeNetConfig::new().init(&device);
    let mut tensors: Vec<_> = weights::named_tensors(&model)
        .into_iter()
        .map(|(k, shape, t)| (k, shape, t.into_data().try_to_vec::<f32>().unwrap()))
        .collect();
    tensors[3].2[17] = 1.0e6;
    let key = tensors[3].0.clone();
    let err = weights::write_safetensors_as(
        &model,
        tensors,
        &weights::SaveInfo::default(),
        weights::StoreDtype::F16,
    )
    .unwrap_err();
    assert!(
        err.to_string().contains(&format!(
            "`{key}` holds 1000000 at index 17, beyond float16's range"
        )),
        "{err}"
    );

    let dir = std::env::temp_dir().join(format!("googlenet-f16-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let out = dir.join("half.safetensors");
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["convert", "--dtype", "f16", "--from"])
        .arg(shared.join("weights/bvlc_googlenet.safetensors"))
        .arg("--to")
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    let bytes = std::fs::read(&out).unwrap();
    let header_len = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    let header: Value = serde_json::from_slice(&bytes[8..8 + header_len]).unwrap();
    assert_eq!(header["inception4e.branch2.1.conv.weight"]["dtype"], "F16");
    // The converted file classifies like the reference.
    let cls = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["classify", "--json", "--weights"])
        .arg(&out)
        .arg(shared.join("images/cat.jpg"))
        .output()
        .unwrap();
    assert!(
        cls.status.success(),
        "{}",
        String::from_utf8_lossy(&cls.stderr)
    );
    let json: Value = serde_json::from_slice(&cls.stdout).unwrap();
    assert_eq!(json[0]["top"][0]["label"], "Egyptian cat");
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["convert", "--dtype", "f8", "--from", "x", "--to", "y"])
        .output()
        .unwrap();
    assert!(String::from_utf8_lossy(&bad.stderr).contains("expected f32 or f16"));
    std::fs::remove_dir_all(&dir).ok();
}
