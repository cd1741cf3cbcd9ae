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
    serde_json::from_str(&std::fs::read_to_string(shared.join("images/expected_top5.json")).unwrap()).unwrap()
}

fn check(image: &str, got: &[(usize, f32)], want: &Value) {
    let want = want[image].as_array().unwrap();
    let want_idx: Vec<usize> = want.iter().map(|p| p["index"].as_u64().unwrap() as usize).collect();
    let want_p = want[0]["prob"].as_f64().unwrap() as f32;
    assert_eq!(got[0].0, want_idx[0], "{image}: top-1 {} expected {}", got[0].0, want_idx[0]);
    assert!((got[0].1 - want_p).abs() <= 0.02, "{image}: top-1 prob {} expected {want_p} ± 0.02", got[0].1);
    let overlap = got.iter().filter(|(i, _)| want_idx.contains(i)).count();
    assert!(overlap >= 4, "{image}: top-5 overlap {overlap} < 4: {got:?} vs {want_idx:?}");
}

#[test]
fn bvlc_weights_classify_the_test_photos_like_onnx_runtime() {
    let Some(shared) = common::shared() else { return };
    let device = Device::flex();
    let map = weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    let (model, report) = weights::load_model(&map, &LoadOptions::default(), &device).unwrap();
    assert_eq!(report.variant, Variant::Bvlc);
    assert_eq!(report.num_classes, 1000);
    assert_eq!(report.loaded, 116, "every tensor of the BVLC file is used");
    assert!(report.aux_fresh, "the BVLC release has no aux heads; they must be reported fresh");
    let model = model.valid();
    let labels = parse_labels(&std::fs::read_to_string(shared.join("data/synset_words.txt")).unwrap());
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
    let Some(shared) = common::shared() else { return };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["classify", "--json", "--top", "5", "--weights"])
        .arg(shared.join("weights/bvlc_googlenet.safetensors"))
        .arg("--labels")
        .arg(shared.join("data/synset_words.txt"))
        .arg(shared.join("images/cat.jpg"))
        .arg(shared.join("images/dog.jpg"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let json: Value = serde_json::from_slice(&out.stdout).unwrap();
    let want = expected(&shared);
    let results = json.as_array().unwrap();
    assert_eq!(results.len(), 2);
    for (r, image) in results.iter().zip(["cat.jpg", "dog.jpg"]) {
        assert!(r["image"].as_str().unwrap().ends_with(image));
        let top = r["top"].as_array().unwrap();
        assert_eq!(top.len(), 5);
        let got: Vec<(usize, f32)> =
            top.iter().map(|p| (p["index"].as_u64().unwrap() as usize, p["prob"].as_f64().unwrap() as f32)).collect();
        assert_eq!(top[0]["label"], want[image][0]["label"]);
        check(image, &got, &want);
    }
}
