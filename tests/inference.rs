//! What the page's classify and block views compute, checked natively: the one-pass
//! classification against the reference, the block view's numbers against direct computation,
//! and non-finite outputs refused instead of shown as "NaN%".

mod common;

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, TensorData};
use googlenet::block_view::{block_view, recorded_block};
use googlenet::error::{Error, ErrorKind};
use googlenet::inference;
use googlenet::labels::parse_labels;
use googlenet::weights::{self, LoadOptions};
use googlenet::{GoogLeNetConfig, Variant, preprocess};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

fn input(bytes: &[u8], variant: Variant, device: &Device) -> Tensor<4> {
    let p = preprocess::prepare(bytes, variant).unwrap();
    Tensor::from_data(TensorData::new(p.chw, [1, 3, 224, 224]), device)
}

#[test]
fn one_pass_classifies_like_the_reference_and_records_every_block() {
    let Some(shared) = common::shared() else {
        return;
    };
    let device = Device::flex();
    let map = weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    let model = weights::load_model(&map, &LoadOptions::default(), &device)
        .unwrap()
        .0
        .valid();
    let labels =
        parse_labels(&std::fs::read_to_string(shared.join("data/synset_words.txt")).unwrap());
    let expected: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(shared.join("images/expected_top5.json")).unwrap(),
    )
    .unwrap();
    let x = input(
        &std::fs::read(shared.join("images/cat.jpg")).unwrap(),
        Variant::Bvlc,
        &device,
    );
    let (c, acts) = block_on(inference::classify(
        &model,
        x.clone(),
        false,
        true,
        5,
        &labels,
    ))
    .unwrap();
    let acts = acts.expect("recorded");
    assert_eq!(
        c.top[0].label,
        expected["cat.jpg"][0]["label"].as_str().unwrap()
    );
    assert!((c.top[0].prob - expected["cat.jpg"][0]["prob"].as_f64().unwrap() as f32).abs() < 0.02);
    assert!(c.aux1.is_none(), "untrained aux heads are not shown");
    // The same logits as the plain forward.
    let plain = model.forward(x).into_data().try_to_vec::<f32>().unwrap();
    let best = plain
        .iter()
        .enumerate()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .unwrap()
        .0;
    assert_eq!(c.top[0].index, best);
    assert_eq!(acts.blocks.len(), 9);
    let names: Vec<&str> = acts.layers.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        [
            "conv1", "maxpool1", "lrn1", "conv2", "conv3", "lrn2", "maxpool2", "maxpool3",
            "maxpool4", "avgpool"
        ]
    );
}

#[test]
fn block_view_numbers_match_direct_computation() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let x = Tensor::<4>::random(
        [1, 3, 224, 224],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let (_, acts) = model.forward_with_activations(x);
    let branches = recorded_block(Some(&acts), 4).unwrap();
    let v = block_on(block_view(4, branches, 6)).unwrap();
    assert_eq!((v.block, v.h, v.w), ("inception_4c", 14, 14));
    assert_eq!(
        v.branches.iter().map(|b| b.count).collect::<Vec<_>>(),
        [128, 256, 64, 64]
    );
    for (b, t) in v.branches.iter().zip(branches) {
        assert_eq!(b.channels.len(), 6);
        assert_eq!(b.maps.len(), 6 * 14 * 14);
        assert!(
            b.means.windows(2).all(|w| w[0] >= w[1]),
            "strongest first: {:?}",
            b.means
        );
        // The first map is the strongest channel's activations.
        let ch = t
            .clone()
            .narrow(1, b.channels[0], 1)
            .flatten::<1>(0, 3)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        assert_eq!(&b.maps[..14 * 14], &ch[..]);
        let mean = ch.iter().sum::<f32>() / ch.len() as f32;
        assert!((mean - b.means[0]).abs() <= 1e-5 * mean.abs().max(1.0));
        // No channel outside the top k has a higher mean.
        let all = t
            .clone()
            .mean_dim(3)
            .mean_dim(2)
            .flatten::<1>(0, 3)
            .into_data()
            .try_to_vec::<f32>()
            .unwrap();
        let max = all.iter().copied().fold(f32::MIN, f32::max);
        assert_eq!(max, b.means[0]);
    }
    // Energy: each branch's mean square; heatmap: the mean over all 512 output channels.
    let e0 = branches[0].clone().square().mean().into_scalar::<f32>();
    assert!((v.energy[0] - e0).abs() <= 1e-5 * e0.max(1e-6));
    let cat = Tensor::cat(branches.to_vec(), 1);
    let h = cat
        .mean_dim(1)
        .flatten::<1>(0, 3)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let diff = h
        .iter()
        .zip(&v.heatmap)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(diff <= 1e-4, "heatmap differs by {diff}");
    // Asking for a block that does not exist, or before classifying, is an error, not a panic.
    assert!(matches!(
        recorded_block(Some(&acts), 9),
        Err(Error::Request(_))
    ));
    assert_eq!(
        recorded_block(None, 0).unwrap_err().kind(),
        ErrorKind::Input
    );
}

#[test]
fn non_finite_outputs_are_an_error_not_a_result() {
    let device = Device::flex();
    let mut model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(3)
        .init(&device);
    // Weights that overflow: finite in the file, infinite in the output.
    let w = model.fc.weight.val().ones_like().mul_scalar(f32::MAX);
    model.fc.weight = Param::from_tensor(w);
    let x = Tensor::<4>::ones([1, 3, 224, 224], &device);
    let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
    let err = block_on(inference::classify(
        &model.valid(),
        x,
        false,
        false,
        3,
        &labels,
    ))
    .unwrap_err();
    assert!(matches!(err, Error::NonFinite { .. }), "{err}");
    assert_eq!(err.kind(), ErrorKind::Input);
    assert!(err.to_string().contains("not usable"), "{err}");
}
