//! Grad-CAM (`googlenet::explain`): its gradient against finite differences and against the
//! closed form at the last block, the map's assembly, and on a photo composed of two objects in
//! opposite corners, each class's evidence in its own object's corner. Also the CLI.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use googlenet::explain::{self, Head};
use googlenet::labels::parse_labels;
use googlenet::model::{GoogLeNetConfig, INCEPTION_TABLE};
use googlenet::rng::SplitMix64;
use googlenet::weights::{self, LoadOptions};
use googlenet::{GoogLeNet, Variant, preprocess};

fn vec4(t: Tensor<4>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

/// A small network: GoogLeNet with 5 classes and random weights, on a `side`×`side` input (at
/// 64: 4e is 4×4, 5a and 5b are 2×2; the aux heads need 224).
fn small_at(side: usize) -> (GoogLeNet, Tensor<4>) {
    let device = Device::flex();
    let shape_only = GoogLeNetConfig::new()
        .with_num_classes(5)
        .with_variant(Variant::Bvlc)
        .init(&device);
    // Weights from our own seeded generator (He-uniform), not burn's process-global one, so
    // every run checks the same network.
    let mut rng = SplitMix64::new(7);
    let tensors = weights::named_tensors(&shape_only)
        .into_iter()
        .map(|(k, shape, _)| {
            let n: usize = shape.iter().product();
            let bound = if shape.len() > 1 {
                (6.0 / shape[1..].iter().product::<usize>() as f32).sqrt()
            } else {
                0.05
            };
            (
                k,
                shape,
                (0..n).map(|_| (rng.unit() * 2.0 - 1.0) * bound).collect(),
            )
        })
        .collect();
    let bytes = weights::write_safetensors(
        &shape_only,
        tensors,
        &weights::SaveInfo {
            labels: None,
            aux_trained: true,
        },
    )
    .unwrap();
    let (model, _) = weights::load_model(
        &weights::read_bytes(&bytes).unwrap(),
        &LoadOptions::default(),
        &device,
    )
    .unwrap();
    let model = model.valid();
    let x: Vec<f32> = (0..3 * side * side)
        .map(|_| rng.unit() * 100.0 - 50.0)
        .collect();
    (
        model,
        Tensor::from_data(TensorData::new(x, [1, 3, side, side]), &device),
    )
}

fn small() -> (GoogLeNet, Tensor<4>) {
    small_at(64)
}

/// The score as a plain function of the block's output, for finite differences.
fn score_at(model: &GoogLeNet, a: &[f32], dims: [usize; 4], block: usize, class: usize) -> f64 {
    let t = Tensor::<4>::from_data(TensorData::new(a.to_vec(), dims), &Device::flex());
    explain::score_from_block(model, t, block, Head::Main, class)
        .into_data()
        .try_to_vec::<f32>()
        .unwrap()[0] as f64
}

#[test]
fn gradient_matches_finite_differences_on_a_small_network() {
    let (model, x) = small();
    // 4e (before maxpool4) and 5a. (Earlier blocks of this random network have gradients of
    // ~1e-5, below what f32 finite differences resolve.)
    for (block, class) in [(6, 3), (7, 1)] {
        let (a, g, _) =
            explain::block_gradient(&model, x.clone(), block, Head::Main, class).unwrap();
        let dims = a.dims();
        let (a, g) = (vec4(a), vec4(g));
        let scale = g.iter().fold(0f32, |m, v| m.max(v.abs()));
        assert!(
            scale > 0.0,
            "{}: the gradient is all zeros",
            INCEPTION_TABLE[block].name
        );
        // The largest gradients, and 12 positions spread over the tensor; only non-zero
        // elements: a zero (its ReLU did not fire) ties with other zeros in the max-pool
        // windows it is in, where no derivative exists and autodiff's tie-break is one of many
        // subgradients.
        let mut order: Vec<usize> = (0..g.len()).collect();
        order.sort_by(|&i, &j| g[j].abs().total_cmp(&g[i].abs()));
        let order: Vec<usize> = order.into_iter().filter(|&i| a[i] != 0.0).collect();
        let picks: Vec<usize> = order
            .iter()
            .take(8)
            .copied()
            .chain((0..12).map(|k| order[k * order.len() / 12]))
            .collect();
        let base = score_at(&model, &a, dims, block, class);
        // A step of 1% of the activations' typical size (small in a random network).
        let typical = a.iter().map(|v| v.abs()).sum::<f32>() / a.len() as f32;
        let mut central = 0;
        for i in picks {
            // The rest of the network is piecewise linear (ReLU, max pool). Where a step crosses a kink (a ReLU
            // switching, a max-pool winner changing) the one-sided slopes differ and autodiff
            // returns one of them. Everywhere else the central difference must agree.
            assert_ne!(a[i], 0.0);
            let slope = |d: f32| {
                let mut moved = a.clone();
                moved[i] += d;
                (score_at(&model, &moved, dims, block, class) - base) / d as f64
            };
            let eps = 1e-2 * typical;
            let (right, left) = (slope(eps), slope(-eps));
            let tol = 0.02 * scale as f64 + 0.05 * (g[i] as f64).abs();
            let gi = g[i] as f64;
            let kink = (right - left).abs() > tol;
            let ok = if (gi - (right + left) / 2.0).abs() <= tol {
                central += 1;
                true
            } else {
                kink && ((gi - right).abs() <= tol || (gi - left).abs() <= tol)
            };
            assert!(
                ok,
                "{} element {i} (value {}): autodiff {gi} vs finite differences {left} (left), {right} (right); largest |gradient| {scale}",
                INCEPTION_TABLE[block].name, a[i]
            );
        }
        assert!(
            central >= 15,
            "{}: only {central} of 20 elements away from a kink",
            INCEPTION_TABLE[block].name
        );
    }
}

/// At the last block the score is `fc(mean over h×w of A)`, so `∂y/∂A_c = W[class, c] / (h·w)`
/// exactly, and the map is `ReLU(Σ_c W[class, c]/(h·w) · A_c)`: Grad-CAM reduces to CAM.
#[test]
fn at_the_last_block_grad_cam_is_the_class_activation_map() {
    let (model, x) = small();
    let class = 2;
    let e = futures_lite::future::block_on(explain::grad_cam(
        &model,
        x.clone(),
        class,
        8,
        Head::Main,
        &[],
    ))
    .unwrap();
    let (a, g, _) = explain::block_gradient(&model, x, 8, Head::Main, class).unwrap();
    let [_, c, h, w] = a.dims();
    // burn's Linear stores (in, out).
    let wfc = model
        .fc
        .weight
        .val()
        .into_data()
        .try_to_vec::<f32>()
        .unwrap();
    let classes = model.num_classes();
    let (a, g) = (vec4(a), vec4(g));
    for ch in 0..c {
        let want = wfc[ch * classes + class] / (h * w) as f32;
        for p in 0..h * w {
            let got = g[ch * h * w + p];
            assert!(
                (got - want).abs() <= 1e-6 + 1e-4 * want.abs(),
                "channel {ch}: gradient {got}, expected {want}"
            );
        }
    }
    assert_eq!(e.layer, "inception_5b");
    assert_eq!(e.label, "class 2");
    assert_eq!((e.grid.len(), e.grid[0].len()), (h, w));
    for y in 0..h {
        for x in 0..w {
            let cam: f32 = (0..c)
                .map(|ch| wfc[ch * classes + class] / (h * w) as f32 * a[ch * h * w + y * w + x])
                .sum();
            let want = cam.max(0.0);
            let got = e.grid[y][x];
            assert!(got >= 0.0);
            assert!(
                (got - want).abs() <= 1e-4 * want.abs().max(1.0),
                "cell ({y}, {x}): {got}, expected {want}"
            );
        }
    }
}

#[test]
fn bad_requests_are_refused_with_what_was_expected() {
    let (model, x) = small();
    let run = |class, block, head| {
        futures_lite::future::block_on(explain::grad_cam(
            &model,
            x.clone(),
            class,
            block,
            head,
            &[],
        ))
    };
    let msg = |r: Result<_, googlenet::error::Error>| {
        r.map(|_: explain::Explanation| ()).unwrap_err().to_string()
    };
    assert!(msg(run(5, 6, Head::Main)).contains("classes 0…4"));
    assert!(msg(run(0, 9, Head::Main)).contains("expected 0…8"));
    // A fresh model built without aux heads.
    let bare = GoogLeNetConfig::new()
        .with_num_classes(5)
        .with_aux_logits(false)
        .init(&Device::flex())
        .valid();
    let r =
        futures_lite::future::block_on(explain::grad_cam(&bare, x.clone(), 0, 2, Head::Aux1, &[]));
    assert!(msg(r).contains("no aux1 head"));
    // aux1 reads 4a: nothing after it can explain it.
    assert!(msg(run(0, 6, Head::Aux1)).contains("pick a block up to inception_4a"));
    assert_eq!(explain::block_index("4e").unwrap(), 6);
    assert_eq!(explain::block_index("inception_3a").unwrap(), 0);
    assert!(
        explain::block_index("inception_9z")
            .unwrap_err()
            .to_string()
            .contains("inception_3a, inception_3b")
    );
}

/// The aux heads' explanations stop at their taps: aux2's gradient reaches 4b.
#[test]
fn aux_heads_are_explained_from_blocks_before_their_tap() {
    let (model, x) = small_at(224);
    let e = futures_lite::future::block_on(explain::grad_cam(&model, x, 1, 3, Head::Aux2, &[]))
        .unwrap();
    assert_eq!(e.layer, "inception_4b");
    assert!(e.grid.iter().flatten().all(|v| v.is_finite() && *v >= 0.0));
}

/// Two photos side by side in opposite corners of one image (the rest grey).
fn two_objects(shared: &std::path::Path) -> image::DynamicImage {
    let square = |name: &str| {
        let img =
            preprocess::decode(&std::fs::read(shared.join("images").join(name)).unwrap()).unwrap();
        preprocess::resize_shorter_and_center_crop_dynamic(&img, 224, 224)
    };
    let mut canvas = image::RgbImage::from_pixel(448, 448, image::Rgb([128, 128, 128]));
    image::imageops::overlay(&mut canvas, &square("cat.jpg"), 0, 0);
    image::imageops::overlay(&mut canvas, &square("dog.jpg"), 224, 224);
    image::DynamicImage::ImageRgb8(canvas)
}

/// Sum of the grid over the top-left and the bottom-right quarter (without the middle row and
/// column of an odd-sized grid).
fn corners(grid: &[Vec<f32>]) -> (f32, f32) {
    let (h, w) = (grid.len(), grid[0].len());
    let sum = |ys: std::ops::Range<usize>, xs: std::ops::Range<usize>| {
        ys.flat_map(|y| xs.clone().map(move |x| (y, x)))
            .map(|(y, x)| grid[y][x])
            .sum()
    };
    (
        sum(0..h / 2, 0..w / 2),
        sum(h.div_ceil(2)..h, w.div_ceil(2)..w),
    )
}

#[test]
fn each_class_lights_up_its_own_object() {
    let Some(shared) = common::shared() else {
        return;
    };
    let device = Device::flex();
    let map = weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    let (model, _) = weights::load_model(&map, &LoadOptions::default(), &device).unwrap();
    let model = model.valid();
    let labels =
        parse_labels(&std::fs::read_to_string(shared.join("data/synset_words.txt")).unwrap());
    let crop = preprocess::resize_crop(&two_objects(&shared));
    let x = Tensor::<4>::from_data(
        TensorData::new(
            preprocess::normalize(&crop, Variant::Bvlc),
            [1, 3, 224, 224],
        ),
        &device,
    );
    // Egyptian cat (top-left), Pembroke (bottom-right); on the default block (4e, 14×14) and
    // on 5a and 5b (7×7). (Earlier blocks are known to give noisier Grad-CAM maps: their
    // channels are less class-specific.)
    for block in [explain::DEFAULT_BLOCK, 7, 8] {
        let cat = futures_lite::future::block_on(explain::grad_cam(
            &model,
            x.clone(),
            285,
            block,
            Head::Main,
            &labels,
        ))
        .unwrap();
        let dog = futures_lite::future::block_on(explain::grad_cam(
            &model,
            x.clone(),
            263,
            block,
            Head::Main,
            &labels,
        ))
        .unwrap();
        assert_eq!(cat.label, "Egyptian cat");
        assert!(dog.label.starts_with("Pembroke"));
        let (cat_tl, cat_br) = corners(&cat.grid);
        let (dog_tl, dog_br) = corners(&dog.grid);
        assert!(
            cat_tl > 2.0 * cat_br,
            "{}: Egyptian cat's evidence top-left {cat_tl} vs bottom-right {cat_br}",
            cat.layer
        );
        assert!(
            dog_br > 2.0 * dog_tl,
            "{}: Pembroke's evidence bottom-right {dog_br} vs top-left {dog_tl}",
            dog.layer
        );
    }
}

#[test]
fn cli_explain_prints_the_grid_and_writes_the_overlay() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("googlenet-explain-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let png = dir.join("heat.png");
    let cat = shared.join("images/cat.jpg");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args([
            "explain",
            cat.to_str().unwrap(),
            "--class",
            "285",
            "--layer",
            "inception_4e",
            "--json",
            "--out",
            png.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["image"], cat.display().to_string());
    assert_eq!(v["class"], 285);
    assert_eq!(v["label"], "Egyptian cat");
    assert_eq!(v["layer"], "inception_4e");
    let grid = v["grid"].as_array().unwrap();
    assert_eq!(grid.len(), 14);
    let values: Vec<f64> = grid
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect();
    assert_eq!(values.len(), 14 * 14);
    assert!(values.iter().all(|&x| x >= 0.0) && values.iter().any(|&x| x > 0.0));
    let img = image::open(&png).unwrap();
    assert_eq!((img.width(), img.height()), (224, 224));
    // The overlay is the crop recoloured where the evidence is, not a blank or a copy.
    let crop = preprocess::resize_crop(&preprocess::decode(&std::fs::read(&cat).unwrap()).unwrap());
    let changed = img
        .to_rgb8()
        .pixels()
        .zip(crop.pixels())
        .filter(|(a, b)| a != b)
        .count();
    assert!(
        changed > 224 * 10 && changed < 224 * 224,
        "{changed} pixels differ from the crop"
    );

    // A class by name; bad classes and layers say what was expected.
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
            .args(args)
            .output()
            .unwrap()
    };
    let out = run(&["explain", cat.to_str().unwrap(), "--class", "egyptian cat"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("Egyptian cat (#285)"));
    for (args, want) in [
        (
            vec!["--class", "1000"],
            "class 1000 does not exist: this model has 1000 classes, 0…999",
        ),
        (vec!["--class", "corgi"], "did you mean"),
        (
            vec!["--class", "1", "--layer", "inception_9z"],
            "expected one of inception_3a",
        ),
        (
            vec!["--class", "1", "--head", "aux1"],
            "no trained aux heads",
        ),
        (
            vec!["--class", "1", "--head", "side"],
            "expected main, aux1 or aux2",
        ),
    ] {
        let mut all = vec!["explain", cat.to_str().unwrap()];
        all.extend(args);
        let out = run(&all);
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            !out.status.success() && err.contains(want),
            "{all:?}: expected an error with `{want}`, got {err}"
        );
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cli_explain_finds_classes_by_exact_name_and_refuses_ambiguous_ones() {
    let Some(shared) = common::shared() else {
        return;
    };
    let cat = shared.join("images/cat.jpg");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
            .arg("explain")
            .arg(&cat)
            .args(args)
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // "cardigan" is #474 (the sweater, exactly that name), not #264 "Cardigan, Cardigan Welsh
    // corgi", which the old lookup took because it came first.
    let (code, out, err) = run(&["--class", "cardigan"]);
    assert_eq!(code, Some(0), "{err}");
    assert!(
        out.starts_with(&format!("{}: cardigan (#474), logit", cat.display())),
        "{out}"
    );
    let (_, out, _) = run(&["--class", "Cardigan"]);
    assert!(
        out.contains(": Cardigan, Cardigan Welsh corgi (#264), logit"),
        "{out}"
    );
    // Two classes of one first name: an error that lists both, never a silent pick.
    for (name, a, b) in [("crane", 134, 517), ("maillot", 638, 639)] {
        let (code, out, err) = run(&["--class", name]);
        assert_eq!(code, Some(1), "{name}: {out}");
        assert!(out.is_empty(), "{name}: {out}");
        assert!(
            err.starts_with(&format!(
                "error: --class: `{name}` names 2 classes: #{a} {name}"
            )) && err.contains(&format!(", #{b} {name}")),
            "{err}"
        );
        assert!(
            err.trim_end()
                .ends_with("give the index of the one you mean"),
            "{err}"
        );
    }
    // A first name outranks a synonym: "missile" is #657, "projectile" (whose synonym is
    // "missile") is #744.
    let (_, out, _) = run(&["--class", "missile"]);
    assert!(out.contains(": missile (#657), logit"), "{out}");
    let (_, out, _) = run(&["--class", "projectile"]);
    assert!(out.contains(": projectile, missile (#744), logit"), "{out}");
}

#[test]
fn cli_explain_refuses_to_write_over_an_input() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("googlenet-explain-out-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let photo = dir.join("cat.png");
    std::fs::copy(shared.join("images/cat.jpg"), &photo).unwrap();
    let before = std::fs::read(&photo).unwrap();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args([
            "explain",
            photo.to_str().unwrap(),
            "--class",
            "285",
            "--out",
            photo.to_str().unwrap(),
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    let p = photo.display();
    assert_eq!(
        err.trim_end(),
        format!(
            "error: --out {p} is the same file as the image {p}: writing it would destroy that input; choose another path"
        )
    );
    assert_eq!(
        std::fs::read(&photo).unwrap(),
        before,
        "the photo is untouched"
    );
    std::fs::remove_dir_all(&dir).ok();
}
