//! The fine-tune loop: auxiliary losses weighted as configured, gradients only where training
//! is switched on, learning on a small generated data set, export and import.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use googlenet::train::{
    Example, FeatureCache, FinetuneConfig, Trainable, Trainer, TrunkToken, example_from_image,
};
use googlenet::weights::{self, LoadOptions, SaveInfo};
use googlenet::{GoogLeNet, GoogLeNetConfig, Variant, preprocess};

fn dataset(per_class: u32) -> (Vec<String>, Vec<Example>) {
    let examples = (0..2)
        .flat_map(|c| {
            (0..per_class).map(move |k| example_from_image(&common::two_classes(c, k), c))
        })
        .collect();
    (vec!["red disc".into(), "blue stripes".into()], examples)
}

fn bvlc(device: &Device) -> Option<GoogLeNet> {
    let shared = common::shared()?;
    let map = weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    Some(
        weights::load_model(&map, &LoadOptions::default(), device)
            .unwrap()
            .0,
    )
}

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

#[test]
fn heads_only_learns_two_generated_classes() {
    let device = Device::flex();
    let Some(model) = bvlc(&device) else { return };
    let (labels, examples) = dataset(6);
    let cfg = FinetuneConfig {
        seed: 7,
        ..Default::default()
    };
    let mut t = Trainer::new(model, examples.clone(), labels, cfg, &device).unwrap();
    let reports: Vec<_> = (0..30).map(|_| block_on(t.step()).unwrap()).collect();
    for r in &reports {
        // The total is exactly the configured mix of the three terms.
        let mix = r.main + 0.3 * r.aux1 + 0.3 * r.aux2;
        assert!(
            (r.loss - mix).abs() <= 1e-4 * mix.max(1.0),
            "step {}: {} vs {mix}",
            r.step,
            r.loss
        );
    }
    let first: f32 = reports[..5].iter().map(|r| r.loss).sum::<f32>() / 5.0;
    let last: f32 = reports[25..].iter().map(|r| r.loss).sum::<f32>() / 5.0;
    assert!(
        last < first * 0.7,
        "total loss should fall: first 5 steps {first}, last 5 {last}"
    );
    // Training accuracy of the fine-tuned model on every training image (centre view).
    let m = t.model();
    let correct = examples
        .iter()
        .filter(|e| {
            let crop = image::imageops::crop_imm(&*e.image, 16, 16, 224, 224).to_image();
            let x = Tensor::<4>::from_data(
                TensorData::new(
                    preprocess::normalize(&crop, Variant::Bvlc),
                    [1, 3, 224, 224],
                ),
                &device,
            );
            let logits = m.forward(x).into_data().try_to_vec::<f32>().unwrap();
            (logits[1] > logits[0]) as usize == e.label
        })
        .count();
    let acc = correct as f32 / examples.len() as f32;
    assert!(acc >= 0.9, "training accuracy {acc}");
}

#[test]
fn aux_weights_enter_the_total_exactly_and_can_be_switched_off() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (labels, examples) = dataset(3);
    for (weights, aux) in [([0.5, 0.1], true), ([0.3, 0.3], false)] {
        let cfg = FinetuneConfig {
            aux_weights: weights,
            aux,
            batch: 2,
            augment: false,
            ..Default::default()
        };
        let mut t = Trainer::new(
            model.clone(),
            examples.clone(),
            labels.clone(),
            cfg,
            &device,
        )
        .unwrap();
        let r = block_on(t.step()).unwrap();
        let want = if aux {
            r.main + weights[0] * r.aux1 + weights[1] * r.aux2
        } else {
            r.main
        };
        assert!(
            (r.loss - want).abs() <= 1e-5 * want.max(1.0),
            "{weights:?} aux={aux}: {} vs {want}",
            r.loss
        );
        assert!(
            r.aux1 > 0.0 && r.aux2 > 0.0,
            "aux terms are reported even when switched off"
        );
    }
}

/// Gradient norm of one parameter, or None when it got no gradient.
fn grad(g: &burn::optim::GradientsParams, p: &burn::module::Param<Tensor<4>>) -> Option<f32> {
    g.get::<4>(p.id).map(|t| t.abs().max().into_scalar::<f32>())
}

#[test]
fn gradients_reach_only_the_blocks_set_to_train_and_aux_shapes_4a_to_4d() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (labels, examples) = dataset(3);
    let batch = [(0, 0), (3, 0)];
    let trainer = |trainable, aux| {
        let cfg = FinetuneConfig {
            trainable,
            aux,
            batch: 2,
            augment: false,
            seed: 3,
            ..Default::default()
        };
        Trainer::new(
            model.clone(),
            examples.clone(),
            labels.clone(),
            cfg,
            &device,
        )
        .unwrap()
    };
    // The last 7 blocks (4a … 5b) train: 3b and below get nothing.
    let mut t = trainer(Trainable::Blocks(7), true);
    let g = t.gradients(&batch);
    let m = t.training_model().clone();
    assert!(
        grad(&g, &m.blocks[1].branch1.conv.weight).is_none(),
        "3b is frozen"
    );
    assert!(
        grad(&g, &m.conv1.conv.weight).is_none(),
        "the stem is frozen"
    );
    assert!(grad(&g, &m.blocks[2].branch1.conv.weight).unwrap() > 0.0);
    // Everything trains: gradients reach the stem.
    let mut all = trainer(Trainable::All, true);
    let g_all = all.gradients(&batch);
    assert!(grad(&g_all, &all.training_model().conv1.conv.weight).unwrap() > 0.0);
    assert!(grad(&g_all, &all.training_model().blocks[0].branch2.conv.weight).unwrap() > 0.0);
    // Aux off: 4a … 4d (below the aux heads' taps) get different gradients, 4e … 5b the same.
    // (The same trainer and batch: `gradients` leaves the seeded generator as it was, so the
    // dropout masks are the same too.)
    t.set_aux(false, [0.3, 0.3]).unwrap();
    let g_off = t.gradients(&batch);
    let m_off = t.training_model();
    // Differences relative to the gradient's size (threaded reductions may reorder sums).
    let rel = |a: Option<Tensor<4>>, b: Option<Tensor<4>>| {
        let (a, b) = (a.unwrap(), b.unwrap());
        let scale = b.clone().abs().max().into_scalar::<f32>();
        (a - b).abs().max().into_scalar::<f32>() / scale
    };
    for (name, on, off) in [
        (
            "4a",
            &m.blocks[2].branch2.conv.weight,
            &m_off.blocks[2].branch2.conv.weight,
        ),
        (
            "4d",
            &m.blocks[5].branch1.conv.weight,
            &m_off.blocks[5].branch1.conv.weight,
        ),
    ] {
        let d = rel(g.get::<4>(on.id), g_off.get::<4>(off.id));
        assert!(
            d > 1e-2,
            "{name}: aux on/off should change its gradient (relative diff {d})"
        );
    }
    let d = rel(
        g.get::<4>(m.blocks[8].branch1.conv.weight.id),
        g_off.get::<4>(m_off.blocks[8].branch1.conv.weight.id),
    );
    assert!(
        d <= 1e-4,
        "5b lies after both aux taps: its gradient must not change (relative diff {d})"
    );
}

#[test]
fn a_fine_tuned_file_round_trips_with_identical_logits() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (labels, examples) = dataset(3);
    let cfg = FinetuneConfig {
        batch: 2,
        ..Default::default()
    };
    let mut t = Trainer::new(model, examples, labels.clone(), cfg, &device).unwrap();
    block_on(t.step()).unwrap();
    let trained = t.model();
    let bytes = weights::save_model(
        &trained,
        &SaveInfo {
            labels: Some(labels.clone()),
            aux_trained: true,
        },
    )
    .unwrap();
    let (back, report) = weights::load_model(
        &weights::read_safetensors(&bytes).unwrap(),
        &LoadOptions::default(),
        &device,
    )
    .unwrap();
    assert_eq!(report.num_classes, 2);
    assert_eq!(report.labels, Some(labels));
    assert!(!report.aux_fresh);
    let x = Tensor::<4>::random(
        [1, 3, 224, 224],
        burn::tensor::Distribution::Normal(0.0, 1.0),
        &device,
    );
    let a = trained.forward_train(x.clone());
    let b = back.valid().forward_train(x);
    for (p, q) in [
        (a.main, b.main),
        (a.aux1.unwrap(), b.aux1.unwrap()),
        (a.aux2.unwrap(), b.aux2.unwrap()),
    ] {
        assert_eq!(
            p.into_data().try_to_vec::<f32>().unwrap(),
            q.into_data().try_to_vec::<f32>().unwrap()
        );
    }
}

#[test]
fn bad_fine_tune_setups_are_refused() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (labels, examples) = dataset(3);
    let only_first: Vec<Example> = examples.iter().filter(|e| e.label == 0).cloned().collect();
    let err = Trainer::new(
        model.clone(),
        only_first,
        labels.clone(),
        FinetuneConfig::default(),
        &device,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("blue stripes"), "{err}");
    let err = Trainer::new(
        model.clone(),
        examples.clone(),
        vec!["one".into()],
        FinetuneConfig::default(),
        &device,
    )
    .err()
    .unwrap();
    assert!(err.to_string().contains("at least 2 classes"), "{err}");
    let cfg = FinetuneConfig {
        lr: -1.0,
        ..Default::default()
    };
    assert!(Trainer::new(model, examples, labels, cfg, &device).is_err());
    assert!(Trainable::parse("blocks:12").is_err());
    assert_eq!(Trainable::parse("blocks:3").unwrap(), Trainable::Blocks(3));
}

#[test]
fn cli_finetune_writes_a_log_and_a_file_classify_reads_back() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("googlenet-ft-{}", std::process::id()));
    for (c, name) in ["red", "blue"].iter().enumerate() {
        std::fs::create_dir_all(dir.join("data").join(name)).unwrap();
        for k in 0..3 {
            common::two_classes(c, k)
                .save(dir.join("data").join(name).join(format!("{k}.png")))
                .unwrap();
        }
    }
    let bin = env!("CARGO_BIN_EXE_googlenet");
    let out = std::process::Command::new(bin)
        .args([
            "finetune",
            "--steps",
            "12",
            "--batch",
            "4",
            "--seed",
            "1",
            "--weights",
        ])
        .arg(shared.join("weights/bvlc_googlenet.safetensors"))
        .arg("--data")
        .arg(dir.join("data"))
        .arg("--out")
        .arg(dir.join("ft.safetensors"))
        .arg("--log")
        .arg(dir.join("steps.jsonl"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let log = std::fs::read_to_string(dir.join("steps.jsonl")).unwrap();
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 12);
    for key in ["step", "loss", "main", "aux1", "aux2", "acc"] {
        assert!(lines[0].get(key).is_some(), "log line lacks {key}");
    }
    // Class names come from the folders (sorted: blue, red) via the file's metadata.
    common::two_classes(0, 9)
        .save(dir.join("test-red.png"))
        .unwrap();
    let out = std::process::Command::new(bin)
        .args(["classify", "--json", "--top", "2", "--weights"])
        .arg(dir.join("ft.safetensors"))
        .arg(dir.join("test-red.png"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let names: Vec<&str> = v[0]["top"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["label"].as_str().unwrap())
        .collect();
    assert_eq!(names.len(), 2);
    assert!(
        names.contains(&"red") && names.contains(&"blue"),
        "{names:?}"
    );
    assert_eq!(names[0], "red", "a red disc after 12 steps");
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn a_seeded_fine_tune_is_reproducible_while_others_draw_random_numbers() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (labels, examples) = dataset(3);
    // Something else in the process keeps drawing from burn's global generator meanwhile.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let noise = {
        let (stop, device) = (stop.clone(), device.clone());
        std::thread::spawn(move || {
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let _ = Tensor::<2>::random([64, 64], burn::tensor::Distribution::Default, &device)
                    .into_data();
            }
        })
    };
    let trainer = |seed| {
        let cfg = FinetuneConfig {
            batch: 2,
            seed,
            ..Default::default()
        };
        Trainer::new(
            model.clone(),
            examples.clone(),
            labels.clone(),
            cfg,
            &device,
        )
        .unwrap()
    };
    let run = || {
        let mut t = trainer(11);
        (0..3)
            .map(|_| block_on(t.step()).unwrap())
            .map(|r| (r.loss, r.main, r.aux1, r.aux2))
            .collect::<Vec<_>>()
    };
    let (a, b) = (run(), run());
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    noise.join().unwrap();
    assert_eq!(a, b, "same seed, same data: the same losses step for step");
    let other = block_on(trainer(12).step()).unwrap().loss;
    assert_ne!(other, a[0].0, "another seed gives other heads and batches");
}

#[test]
fn features_computed_ahead_are_the_ones_steps_use() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let other = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (labels, examples) = dataset(3);
    let images: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
    let cfg = FinetuneConfig {
        batch: 4,
        seed: 5,
        augment: false,
        trainable: Trainable::Heads,
        ..Default::default()
    };
    let run = |cache: Option<&mut FeatureCache>| {
        let mut t = Trainer::new(
            model.clone(),
            examples.clone(),
            labels.clone(),
            cfg.clone(),
            &device,
        )
        .unwrap();
        if let Some(c) = cache {
            t.swap_cache(c);
        }
        (0..3)
            .map(|_| block_on(t.step()).unwrap().loss)
            .collect::<Vec<_>>()
    };
    let plain = run(None);

    // Filled ahead, a few views per call, centre crops first: progress is reported, and a call
    // with nothing left does no work.
    let (one, two) = (
        TrunkToken::default().next(),
        TrunkToken::default().next().next(),
    );
    let mut ahead = FeatureCache::default();
    ahead.for_trunk(one);
    assert_eq!(
        ahead.precompute(&model, &images, 1, 4, &device).progress(),
        (4, 6)
    );
    assert_eq!(
        ahead.precompute(&model, &images, 1, 4, &device).progress(),
        (6, 6)
    );
    assert_eq!(
        ahead.precompute(&model, &images, 1, 4, &device).progress(),
        (6, 6)
    );
    assert_eq!(ahead.len(), 6);
    assert_eq!(
        run(Some(&mut ahead)),
        plain,
        "features computed ahead must train exactly like features computed in the steps"
    );

    // The steps read the cache: features of another model change the losses.
    let mut wrong = FeatureCache::default();
    wrong.precompute(&other, &images, 1, 6, &device);
    assert_ne!(
        run(Some(&mut wrong)),
        plain,
        "the steps must take their features from the cache they are lent"
    );

    // Another trunk's token empties it; images that left the data set leave it.
    let mut c = FeatureCache::default();
    c.for_trunk(one);
    c.precompute(&model, &images, 2, 12, &device);
    assert_eq!(c.len(), 12);
    c.retain_images(&images[..2]);
    assert_eq!(c.len(), 4, "two images × two views remain");
    c.for_trunk(one);
    assert_eq!(c.len(), 4, "the same trunk keeps its features");
    c.for_trunk(two);
    assert!(c.is_empty(), "features of another model are dropped");
}

#[test]
fn labels_that_could_not_be_loaded_are_refused_before_training() {
    let device = Device::flex();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let (_, examples) = dataset(3);
    for (labels, want) in [
        (
            vec![" ".to_string(), "blue stripes".into()],
            "label 0 is blank: every class needs a name",
        ),
        (
            vec!["red".into(), "dog\r\n99.99% cat".into()],
            "label 1 (`dog\\r\\n99.99% cat`) holds a control character (at character 3)",
        ),
        (
            vec!["red".into(), "x".repeat(201)],
            "label 1 is 201 characters long; the limit is 200",
        ),
    ] {
        let err = Trainer::new(
            model.clone(),
            examples.clone(),
            labels,
            FinetuneConfig::default(),
            &device,
        )
        .err()
        .unwrap();
        assert!(
            matches!(err, googlenet::train::TrainError::Label(_)),
            "{err}"
        );
        assert!(err.to_string().starts_with(want), "{err}");
    }
    // Counts agree with their nouns.
    let one: Vec<Example> = examples
        .iter()
        .filter(|e| e.label == 0)
        .take(1)
        .chain(examples.iter().filter(|e| e.label == 1))
        .cloned()
        .collect();
    let err = Trainer::new(
        model,
        one,
        vec!["red".into(), "blue".into()],
        FinetuneConfig::default(),
        &device,
    )
    .err()
    .unwrap();
    assert_eq!(
        err.to_string(),
        "class `red` has 1 image; every class needs at least 3"
    );
}

/// A fine-tune data set of `names` (3 generated images each) under `dir/data`.
fn data_folder(dir: &std::path::Path, names: &[&str]) -> std::path::PathBuf {
    let data = dir.join("data");
    for (c, name) in names.iter().enumerate() {
        std::fs::create_dir_all(data.join(name)).unwrap();
        for k in 0..3 {
            common::two_classes(c % 2, k)
                .save(data.join(name).join(format!("{k}.png")))
                .unwrap();
        }
    }
    data
}

fn cli(args: &[&std::ffi::OsStr]) -> (i32, String) {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn cli_finetune_refuses_what_would_lose_work_before_training() {
    let Some(shared) = common::shared() else {
        return;
    };
    let dir = std::env::temp_dir().join(format!("googlenet-ft-refuse-{}", std::process::id()));
    std::fs::remove_dir_all(&dir).ok();
    let os = |s: &str| std::ffi::OsString::from(s);
    // A class folder named " ": the model would be saved with a blank label that no loader
    // accepts (issue 21: it trained, wrote the file, and classify then refused it).
    let data = data_folder(&dir, &[" ", "blue"]);
    let out = dir.join("ft.safetensors");
    let w = shared.join("weights/bvlc_googlenet.safetensors");
    // One step of batch 2 from the shared weights, unless `extra` says otherwise.
    let args = |data: &std::path::Path, extra: &[std::ffi::OsString]| {
        let mut a = vec![
            os("finetune"),
            os("--data"),
            data.into(),
            os("--out"),
            out.clone().into(),
        ];
        for (key, value) in [
            ("--steps", os("1")),
            ("--batch", os("2")),
            ("--weights", w.clone().into()),
        ] {
            if !extra.contains(&os(key)) {
                a.extend([os(key), value]);
            }
        }
        a.extend_from_slice(extra);
        a
    };
    let a = args(&data, &[]);
    let (code, err) = cli(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
    assert_eq!(code, 1, "{err}");
    assert_eq!(
        err.trim_end(),
        format!(
            "error: class folder {}: label 0 is blank: every class needs a name",
            data.join(" ").display()
        )
    );
    assert!(!out.exists(), "nothing trained, nothing written");

    // --log onto the weights (issue 21: it truncated them to 252 bytes and exited 0), or onto
    // a training image, or --out onto --log: refused before any work, the inputs intact.
    std::fs::remove_dir_all(&dir).unwrap();
    let data = data_folder(&dir, &["red", "blue"]);
    let weights_copy = dir.join("w.safetensors");
    std::fs::copy(&w, &weights_copy).unwrap();
    let before = std::fs::read(&weights_copy).unwrap();
    let image = data.join("red/0.png");
    for (extra, want) in [
        (
            vec![
                os("--weights"),
                weights_copy.clone().into(),
                os("--log"),
                weights_copy.clone().into(),
            ],
            format!(
                "--log {0} is the same file as --weights {0}",
                weights_copy.display()
            ),
        ),
        (
            vec![os("--log"), image.clone().into()],
            format!(
                "--log {0} is the same file as a training image {0}",
                image.display()
            ),
        ),
        (
            vec![os("--log"), out.clone().into()],
            format!(
                "error: --out {0} and --log {0} are the same file: give each output a path of its own",
                out.display()
            ),
        ),
    ] {
        std::fs::write(&out, b"x").unwrap();
        let a = args(&data, &extra);
        let (code, err) = cli(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
        assert_eq!(code, 1, "{extra:?}: {err}");
        assert!(err.contains(&want), "{extra:?}: {err}");
        std::fs::remove_file(&out).unwrap();
    }
    assert_eq!(std::fs::read(&weights_copy).unwrap(), before);

    // Settings name the value they got.
    for (extra, code_want, want) in [
        (
            vec![os("--lr"), os("fast")],
            2,
            "learning rate `fast` is not a number; expected one in (0, 1], e.g. 0.001",
        ),
        (
            vec![os("--lr"), os("NaN")],
            1,
            "error: learning rate NaN is out of range (0, 1]",
        ),
        (
            vec![os("--seed"), os("-1")],
            2,
            "seed `-1` is not a whole number in 0…18446744073709551615",
        ),
        (
            vec![os("--steps"), os("0")],
            1,
            "error: --steps 0 is out of range 1…500",
        ),
    ] {
        let a = args(&data, &extra);
        let (code, err) = cli(&a.iter().map(|s| s.as_os_str()).collect::<Vec<_>>());
        assert_eq!(code, code_want, "{extra:?}: {err}");
        assert!(err.contains(want), "{extra:?}: {err}");
    }
    assert!(!out.exists());
    std::fs::remove_dir_all(&dir).ok();
}
