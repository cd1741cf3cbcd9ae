//! `inspect`'s numbers, computed from the built model, against the published ones.

use burn::tensor::Device;
use googlenet::{GoogLeNetConfig, Variant};

fn summary(v: Variant) -> googlenet::model::summary::Summary {
    GoogLeNetConfig::new()
        .with_variant(v)
        .init(&Device::flex())
        .summary(224)
}

#[test]
fn torchvision_totals_match_torchvision() {
    let s = summary(Variant::Torchvision);
    // torchvision's model card: 6,624,904 parameters, 1.498 GFLOPS (multiply-adds).
    assert_eq!(s.main_params, 6_624_904);
    assert_eq!(format!("{:.3}", s.main_macs as f64 / 1e9), "1.498");
}

#[test]
fn bvlc_totals_match_the_caffe_release() {
    let s = summary(Variant::Bvlc);
    // The 116 tensors of bvlc_googlenet.caffemodel hold 6,998,552 numbers.
    assert_eq!(s.main_params, 6_998_552);
    assert!(
        s.aux_params > 0,
        "aux heads exist (untrained) in the bvlc variant"
    );
}

#[test]
fn block_shapes_and_channel_split() {
    let s = summary(Variant::Bvlc);
    let b3a = &s.blocks[0];
    assert_eq!(b3a.name, "inception_3a");
    assert_eq!(b3a.input, [192, 28, 28]);
    assert_eq!(b3a.output, [256, 28, 28]);
    assert_eq!(b3a.split, [64, 128, 32, 32]);
    assert_eq!(b3a.table, [64, 96, 128, 16, 32, 32]);
    let outs: Vec<[usize; 3]> = s.blocks.iter().map(|b| b.output).collect();
    assert_eq!(
        outs,
        vec![
            [256, 28, 28],
            [480, 28, 28],
            [512, 14, 14],
            [512, 14, 14],
            [512, 14, 14],
            [528, 14, 14],
            [832, 14, 14],
            [832, 7, 7],
            [1024, 7, 7]
        ]
    );
}

#[test]
fn one_by_one_reductions_are_computed_per_block() {
    // torchvision's "5x5" branch of 4b is a 3x3 conv: 512→64 directly costs 294,912 weights;
    // through the 1x1 reduction to 24 channels, 512·24 + 24·64·9 = 26,112.
    let tv = summary(Variant::Torchvision);
    let b4b = tv.blocks.iter().find(|b| b.name == "inception_4b").unwrap();
    let s = &b4b.savings[1];
    assert_eq!(
        (s.kernel, s.in_channels, s.reduce_to, s.out_channels),
        (3, 512, 24, 64)
    );
    assert_eq!(s.params_without_reduction, 294_912);
    assert_eq!(s.params_with_reduction, 26_112);
    assert_eq!(s.macs_without_reduction, 294_912 * 14 * 14);
    // With the paper's real 5x5: 512·64·25 = 819,200 vs 512·24 + 24·64·25 = 50,688.
    let bvlc = summary(Variant::Bvlc);
    let s = &bvlc.blocks[3].savings[1];
    assert_eq!(
        (s.params_without_reduction, s.params_with_reduction),
        (819_200, 50_688)
    );
}

#[test]
fn cli_inspect_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["inspect", "--variant", "torchvision", "--json"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["main_params"], 6_624_904);
    assert_eq!(v["blocks"][0]["output"], serde_json::json!([256, 28, 28]));
    let text = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["inspect"])
        .output()
        .unwrap();
    let text = String::from_utf8(text.stdout).unwrap();
    assert!(
        text.contains("inception_3a: 28×28×192 → 28×28×256 = 64 + 128 + 32 + 32"),
        "{text}"
    );
}

#[test]
fn the_network_map_follows_the_stage_list_and_reads_each_pool_from_the_model() {
    let names = |v: Variant| {
        summary(v)
            .map
            .iter()
            .map(|r| r.name.clone())
            .collect::<Vec<_>>()
            .join(" ")
    };
    assert_eq!(
        names(Variant::Bvlc),
        "input conv1 maxpool1 lrn1 conv2 conv3 lrn2 maxpool2 inception_3a inception_3b maxpool3 inception_4a aux1 \
         inception_4b inception_4c inception_4d aux2 inception_4e maxpool4 inception_5a inception_5b avgpool fc → softmax"
    );
    let tv = summary(Variant::Torchvision);
    assert!(
        !names(Variant::Torchvision).contains("lrn"),
        "torchvision has no LRN"
    );
    let pool4 = tv.map.iter().find(|r| r.name == "maxpool4").unwrap();
    assert_eq!(
        pool4.detail, "max pool 2×2 / 2, rounding up",
        "torchvision's maxpool4 is 2×2"
    );
    assert_eq!(pool4.output, [832, 7, 7]);
    let bvlc = summary(Variant::Bvlc);
    assert_eq!(
        bvlc.map
            .iter()
            .find(|r| r.name == "maxpool4")
            .unwrap()
            .detail,
        "max pool 3×3 / 2, rounding up"
    );
    let aux1 = bvlc.map.iter().find(|r| r.name == "aux1").unwrap();
    assert_eq!(
        aux1.detail,
        "5×5 / 3 average pool → 1×1 conv 128 → FC 1024 → FC 1000; training only"
    );
    assert_eq!(
        bvlc.map
            .iter()
            .filter(|r| r.kind == "block")
            .map(|r| r.block.unwrap())
            .collect::<Vec<_>>(),
        (0..9).collect::<Vec<_>>()
    );
}
