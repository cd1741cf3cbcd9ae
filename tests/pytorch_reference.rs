//! The torchvision and seed variants against PyTorch: logits (eval and training forward) and
//! every block's branch outputs, from the fixtures in `../shared/reference`.

mod common;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use googlenet::model::INCEPTION_TABLE;
use googlenet::weights::{self, LoadOptions};
use googlenet::{GoogLeNet, Variant};

const TOL: f32 = 1e-4;

struct Case {
    variant: Variant,
    pth: &'static str,
    npz: &'static str,
    classes: usize,
    eval_inputs: &'static [&'static str],
    train_inputs: &'static [&'static str],
}

const CASES: [Case; 2] = [
    Case {
        variant: Variant::Torchvision,
        pth: "googlenet_torchvision_seed0_bncal.pth",
        npz: "fixtures_torchvision_seed0_bncal.npz",
        classes: 1000,
        eval_inputs: &["x_b1", "x_b2", "x_sin"],
        train_inputs: &["x_b1", "x_b2"],
    },
    Case {
        variant: Variant::Seed,
        pth: "googlenet_seed_variant_s0_c5.pth",
        npz: "fixtures_seed_variant_s0_c5.npz",
        classes: 5,
        eval_inputs: &["x_b1", "x_b2"],
        train_inputs: &["x_b2"],
    },
];

fn to_tensor(a: &googlenet::npy::Array, device: &Device) -> Tensor<4> {
    let s: [usize; 4] = a.shape.clone().try_into().expect("NCHW");
    Tensor::from_data(TensorData::new(a.data.clone(), s), device)
}

fn values<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data().try_to_vec::<f32>().unwrap()
}

fn load(case: &Case, shared: &std::path::Path, device: &Device) -> GoogLeNet {
    let map = weights::read_file(&shared.join("reference").join(case.pth)).unwrap();
    let opts = LoadOptions {
        variant: Some(case.variant),
        ..Default::default()
    };
    let (model, report) = weights::load_model(&map, &opts, device).unwrap();
    // The class count comes from the file (the seed fixture is a 5-class model).
    assert_eq!(report.num_classes, case.classes);
    assert!(!report.aux_fresh, "the PyTorch files carry aux heads");
    model
}

#[test]
fn eval_logits_and_branch_outputs_match_pytorch() {
    let Some(shared) = common::shared() else {
        return;
    };
    let device = Device::flex();
    for case in &CASES {
        let fx = common::read_npz(&shared.join("reference").join(case.npz));
        let model = load(case, &shared, &device).valid();
        for input in case.eval_inputs {
            let x = to_tensor(&fx[&format!("input.{input}")], &device);
            let want = &fx[&format!("eval.logits.{input}")];
            let got = values(model.forward(x));
            let err = common::rel_err(&got, &want.data);
            assert!(
                err <= TOL,
                "{:?} eval logits {input}: rel err {err}",
                case.variant
            );
        }
        // Every stem layer and every block's four branches, on x_b1.
        let x = to_tensor(&fx["input.x_b1"], &device);
        let (logits, acts) = model.forward_with_activations(x);
        assert_eq!(logits.dims(), [1, case.classes]);
        let mut checked = 0;
        for (name, t) in &acts.layers {
            let want = &fx[&format!("eval.act.x_b1.{name}")];
            assert_eq!(t.dims().to_vec(), want.shape, "{name} shape");
            let err = common::rel_err(&values(t.clone()), &want.data);
            assert!(err <= TOL, "{:?} {name}: rel err {err}", case.variant);
            checked += 1;
        }
        assert_eq!(
            checked, 8,
            "conv1, maxpool1, conv2, conv3, maxpool2, maxpool3, maxpool4, avgpool"
        );
        assert_eq!(acts.blocks.len(), 9);
        for (i, branches) in acts.blocks.iter().enumerate() {
            let block = INCEPTION_TABLE[i].name.replace('_', "");
            for (j, t) in branches.iter().enumerate() {
                let key = format!("eval.act.x_b1.{block}.branch{}", j + 1);
                let want = &fx[&key];
                assert_eq!(t.dims().to_vec(), want.shape, "{key} shape");
                let err = common::rel_err(&values(t.clone()), &want.data);
                assert!(err <= TOL, "{:?} {key}: rel err {err}", case.variant);
            }
            // The block output is the concatenation of its branches.
            let cat = Tensor::cat(branches.to_vec(), 1);
            let want = &fx[&format!("eval.act.x_b1.{block}")];
            assert!(
                common::rel_err(&values(cat), &want.data) <= TOL,
                "{block} output"
            );
        }
    }
}

#[test]
fn training_forward_matches_pytorch_main_aux2_aux1() {
    let Some(shared) = common::shared() else {
        return;
    };
    // Batch statistics in BatchNorm need the autodiff device (burn's training mode).
    let device = Device::flex().autodiff();
    for case in &CASES {
        let fx = common::read_npz(&shared.join("reference").join(case.npz));
        let model = load(case, &shared, &device);
        for input in case.train_inputs {
            let x = to_tensor(&fx[&format!("input.{input}")], &device);
            let out = model.forward_train(x);
            let outputs = [
                ("logits", Some(out.main)),
                ("aux2", out.aux2),
                ("aux1", out.aux1),
            ];
            for (name, t) in outputs {
                let t = t.unwrap_or_else(|| panic!("{name} missing from the training forward"));
                let want = &fx[&format!("train.{name}.{input}")];
                assert_eq!(t.dims().to_vec(), want.shape);
                let err = common::rel_err(&values(t), &want.data);
                assert!(
                    err <= TOL,
                    "{:?} train {name} {input}: rel err {err}",
                    case.variant
                );
            }
        }
    }
}

#[test]
fn eval_forward_never_runs_the_aux_heads() {
    let device = Device::flex();
    // Aux heads built for 7 input channels cannot run on 4a's 512-channel output: any call
    // panics. The eval forward must not touch them; the training forward must.
    let mut model = googlenet::GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .init(&device);
    let spec = Variant::Seed.spec();
    model.aux1 = Some(googlenet::model::aux_head::inception_aux(
        7, 1000, &spec, &device,
    ));
    model.aux2 = Some(googlenet::model::aux_head::inception_aux(
        7, 1000, &spec, &device,
    ));
    let x = Tensor::<4>::zeros([1, 3, 224, 224], &device);
    let out = model.valid().forward(x.clone());
    assert_eq!(out.dims(), [1, 1000]);
    let train = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| model.forward_train(x)));
    assert!(
        train.is_err(),
        "the training forward should have run the (broken) aux heads"
    );
}

#[test]
fn cli_logits_eval_and_train_match_pytorch() {
    let Some(shared) = common::shared() else {
        return;
    };
    let case = &CASES[1];
    let fx = common::read_npz(&shared.join("reference").join(case.npz));
    let dir = std::env::temp_dir().join(format!("googlenet-logits-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let x = &fx["input.x_b2"];
    std::fs::write(dir.join("x.npy"), googlenet::npy::write(&x.shape, &x.data)).unwrap();
    let run = |train: bool| {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"));
        cmd.args(["logits", "--variant", "seed", "--weights"])
            .arg(shared.join("reference").join(case.pth))
            .arg("--input")
            .arg(dir.join("x.npy"))
            .arg("--out")
            .arg(dir.join(if train { "train.npy" } else { "eval.npy" }));
        if train {
            cmd.arg("--train");
        }
        let out = cmd.output().unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    run(false);
    run(true);
    let read = |name: &str| googlenet::npy::read(&std::fs::read(dir.join(name)).unwrap()).unwrap();
    for (file, key) in [
        ("eval.npy", "eval.logits.x_b2"),
        ("train.npy", "train.logits.x_b2"),
        ("train.aux2.npy", "train.aux2.x_b2"),
        ("train.aux1.npy", "train.aux1.x_b2"),
    ] {
        let got = read(file);
        assert_eq!(got.shape, vec![2, 5], "{file}");
        let err = common::rel_err(&got.data, &fx[key].data);
        assert!(err <= TOL, "{file} vs {key}: rel err {err}");
    }
    std::fs::remove_dir_all(&dir).ok();
}

/// torch.save's archives may go through a rewritten temporary copy (the torchvision file's zip64
/// end records, which the zip reader misplaces): four threads reading each file at once must
/// each get all of it, never another's half-written or removed copy.
#[test]
fn each_pth_read_by_four_threads_at_once() {
    let Some(shared) = common::shared() else {
        return;
    };
    for case in &CASES {
        let path = shared.join("reference").join(case.pth);
        let counts: Vec<usize> = std::thread::scope(|s| {
            let reads: Vec<_> = (0..4)
                .map(|_| s.spawn(|| weights::read_file(&path).map(|m| m.tensors.len())))
                .collect();
            reads
                .into_iter()
                .map(|r| {
                    r.join()
                        .unwrap()
                        .unwrap_or_else(|e| panic!("{}: {e}", case.pth))
                })
                .collect()
        });
        assert!(counts[0] > 100, "{}: {counts:?}", case.pth);
        assert!(
            counts.iter().all(|&c| c == counts[0]),
            "{}: {counts:?}",
            case.pth
        );
    }
}
