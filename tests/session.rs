//! The page's session rules, natively: what is refused before a model or an image, the
//! rollback of a failed step, the feature cache's trunk tokens, the base model kept for
//! before/after views, and the explain heads a model offers. The wasm facade (`web.rs`) only
//! converts values for these calls.

mod common;

use burn::tensor::Device;
use googlenet::error::ErrorKind;
use googlenet::explain::Head;
use googlenet::session::{Backend, ExplainHead, Image, ModelInfo, Session};
use googlenet::train::{FinetuneConfig, Trainable};
use googlenet::weights::{self, LoadOptions, SaveInfo};

fn block_on<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// What a test works with: the BVLC file, its class names and the cat photo.
struct Shared {
    bvlc: Vec<u8>,
    labels: String,
    cat: Vec<u8>,
}

fn shared() -> Option<Shared> {
    let dir = common::shared()?;
    let read = |p: &str| std::fs::read(dir.join(p)).unwrap_or_else(|e| panic!("{p}: {e}"));
    Some(Shared {
        bvlc: read("weights/bvlc_googlenet.safetensors"),
        labels: String::from_utf8(read("data/synset_words.txt")).unwrap(),
        cat: read("images/cat.jpg"),
    })
}

fn session() -> Session {
    block_on(Session::new(Device::flex(), Backend::Cpu)).expect("burn-flex computes")
}

/// The BVLC file with the last trunk convolution's weights (`inception_5b`'s pool projection)
/// replaced by `f` of each value: another trunk, as a file the page could load.
fn bvlc_with_last_conv(bvlc: &[u8], f: impl Fn(f32) -> f32) -> Vec<u8> {
    let device = Device::flex();
    let map = weights::read_bytes(bvlc).unwrap();
    let model = weights::load_model(&map, &LoadOptions::default(), &device)
        .unwrap()
        .0;
    let mut tensors: Vec<_> = weights::named_tensors(&model)
        .into_iter()
        .map(|(k, s, t)| (k, s, t.into_data().try_to_vec::<f32>().unwrap()))
        .collect();
    let (_, _, last) = tensors
        .iter_mut()
        .rev()
        .find(|(k, s, _)| k.contains("5b") && s.len() == 4)
        .expect("inception_5b has convolutions");
    last.iter_mut().for_each(|v| *v = f(*v));
    weights::write_safetensors(
        &model,
        tensors,
        &SaveInfo {
            labels: None,
            aux_trained: false,
        },
    )
    .unwrap()
}

/// The fine-tune tests' two classes, as pixels the browser decoded.
fn pixels(class: usize, k: u32) -> Image {
    let img = common::two_classes(class, k).to_rgba8();
    let (width, height) = img.dimensions();
    Image::Pixels {
        rgba: img.into_raw(),
        width,
        height,
    }
}

/// Two classes of three images each.
fn add_dataset(s: &Session) {
    for (class, name) in ["red disc", "blue stripes"].into_iter().enumerate() {
        let id = s.ft_add_class(name).unwrap();
        for k in 0..3 {
            s.ft_add_image(id, pixels(class, k)).unwrap();
        }
    }
}

/// A small, reproducible fine-tune.
fn config(trainable: Trainable) -> FinetuneConfig {
    FinetuneConfig {
        batch: 2,
        seed: 3,
        augment: false,
        trainable,
        ..Default::default()
    }
}

/// The error's message, after checking its kind.
fn refused<T>(r: Result<T, googlenet::error::Error>, kind: ErrorKind) -> String {
    let e = r.err().expect("refused");
    assert_eq!(e.kind(), kind, "{e}");
    e.to_string()
}

/// Every parameter's bits (NaN compares equal to itself here).
fn bits(model: &googlenet::GoogLeNet) -> Vec<(String, Vec<u32>)> {
    weights::named_tensors(model)
        .into_iter()
        .map(|(k, _, t)| {
            (
                k,
                t.into_data()
                    .try_to_vec::<f32>()
                    .unwrap()
                    .iter()
                    .map(|v| v.to_bits())
                    .collect(),
            )
        })
        .collect()
}

fn view(s: &Session, block: usize, before: bool) -> serde_json::Value {
    serde_json::to_value(block_on(s.block_view(block, 3, before)).unwrap()).unwrap()
}

fn heads(info: &ModelInfo) -> Vec<(Head, usize, usize)> {
    info.explain
        .iter()
        .map(
            |&ExplainHead {
                 head,
                 default_block,
                 last_block,
             }| (head, default_block, last_block),
        )
        .collect()
}

#[test]
fn views_and_explanations_wait_for_a_model_and_an_image() {
    let Some(f) = shared() else { return };
    let s = session();
    assert_eq!(s.backend(), Backend::Cpu);

    // No model yet.
    let loading = "the model is still loading";
    assert_eq!(
        refused(
            block_on(s.classify(Image::File(f.cat.clone()), 5)),
            ErrorKind::Input
        ),
        loading
    );
    assert_eq!(
        refused(block_on(s.block_view(0, 3, false)), ErrorKind::Input),
        loading
    );
    assert_eq!(
        refused(block_on(s.explain(0, 6, Head::Main)), ErrorKind::Input),
        loading
    );
    assert_eq!(
        refused(block_on(s.export_weights()), ErrorKind::Input),
        loading
    );
    assert_eq!(
        refused(block_on(s.ft_step()), ErrorKind::Input),
        "the fine-tune has not started"
    );
    assert_eq!(
        refused(s.ft_apply(), ErrorKind::Input),
        "the fine-tune has not started"
    );

    // A refused file keeps the session as it was (still no model).
    assert!(s.load_weights(b"not weights", None, "").is_err());
    assert_eq!(
        refused(block_on(s.stage_times(1)), ErrorKind::Input),
        loading
    );

    // A model, no image yet.
    let info = s.load_weights(&f.bvlc, None, &f.labels).unwrap();
    assert!(!info.has_base && !info.labels_from_file && info.aux_fresh);
    assert_eq!(info.labels[281], "tabby, tabby cat");
    let no_image = |s: &Session| {
        assert_eq!(
            refused(block_on(s.block_view(3, 3, false)), ErrorKind::Input),
            "classify an image first to see its activations"
        );
        assert_eq!(
            refused(block_on(s.explain(281, 6, Head::Main)), ErrorKind::Input),
            "classify an image first, then ask why"
        );
        assert_eq!(
            refused(block_on(s.stage_times(1)), ErrorKind::Input),
            "classify an image first"
        );
    };
    no_image(&s);
    assert_eq!(
        refused(block_on(s.block_view(3, 3, true)), ErrorKind::Input),
        "no fine-tune has been applied"
    );

    // An image: its views and explanation (main head only: BVLC's aux heads are untrained).
    let c = block_on(s.classify(Image::File(f.cat.clone()), 5)).unwrap();
    assert_eq!(c.classification.top.len(), 5);
    assert!(c.classification.aux1.is_none());
    assert_eq!(view(&s, 3, false)["block"], "inception_4b");
    assert_eq!(
        refused(block_on(s.block_view(9, 3, false)), ErrorKind::Internal),
        "no block 9; expected 0…8"
    );
    let e = block_on(s.explain(281, 6, Head::Main)).unwrap();
    assert_eq!(
        (e.label.as_str(), e.layer),
        ("tabby, tabby cat", "inception_4e")
    );
    assert!(
        refused(block_on(s.explain(281, 2, Head::Aux1)), ErrorKind::Input)
            .starts_with("the aux heads hold no trained weights")
    );
    assert_eq!(
        block_on(s.stage_times(1)).unwrap().last().unwrap().stage,
        "head"
    );

    // Other weights: the last image was the old model's, so it is gone.
    s.load_weights(&f.bvlc, None, &f.labels).unwrap();
    no_image(&s);
}

#[test]
fn a_failed_step_leaves_the_model_as_it_was() {
    let Some(f) = shared() else { return };
    let s = session();
    // A trunk whose last convolution overflows: every step's loss is NaN.
    let huge = bvlc_with_last_conv(&f.bvlc, |v| if v >= 0.0 { 3e38 } else { -3e38 });
    s.load_weights(&huge, None, "").unwrap();
    add_dataset(&s);
    s.ft_start(config(Trainable::Heads)).unwrap();
    let before = bits(&s.ft_model().unwrap());
    for _ in 0..2 {
        let e = refused(block_on(s.ft_step()), ErrorKind::Input);
        assert!(e.contains("(diverged): lower the learning rate"), "{e}");
        assert!(
            bits(&s.ft_model().expect("the fine-tune is still there")) == before,
            "a failed step must put the weights back"
        );
    }

    // A refused image leaves the fine-tune in place too.
    assert_eq!(
        refused(
            block_on(s.ft_predict(Image::File(b"not an image".to_vec()))),
            ErrorKind::Input
        )
        .split(':')
        .next(),
        Some("cannot use this image")
    );
    assert!(s.ft_model().is_some());
}

#[test]
fn a_replaced_model_invalidates_lent_features() {
    let Some(f) = shared() else { return };
    let cfg = config(Trainable::Heads);
    let first_loss = |replace: bool| {
        let s = session();
        s.load_weights(&f.bvlc, None, "").unwrap();
        add_dataset(&s);
        let p = block_on(s.ft_precompute(1, 64)).unwrap();
        assert_eq!((p.ready, p.wanted), (6, 6));
        s.ft_start(cfg.clone()).unwrap();
        if replace {
            // Another trunk: the features computed so far are not its, so they go ...
            s.load_weights(&bvlc_with_last_conv(&f.bvlc, |v| v * 2.0), None, "")
                .unwrap();
            let p = block_on(s.ft_precompute(1, 1)).unwrap();
            assert_eq!(
                (p.ready, p.wanted),
                (1, 6),
                "features of the replaced trunk must be dropped"
            );
            // ... and the new trunk's features are not lent to the fine-tune of the old one.
            block_on(s.ft_precompute(1, 64)).unwrap();
        }
        block_on(s.ft_step()).unwrap().loss
    };
    assert_eq!(
        first_loss(true),
        first_loss(false),
        "the step must train on its own trunk's features"
    );
}

#[test]
fn a_heads_only_fine_tune_applied_keeps_the_features() {
    let Some(f) = shared() else { return };
    let s = session();
    s.load_weights(&f.bvlc, None, "").unwrap();
    add_dataset(&s);
    let ready = |n| {
        let p = block_on(s.ft_precompute(1, n)).unwrap();
        (p.ready, p.wanted)
    };
    assert_eq!(ready(64), (6, 6));
    for (trainable, kept) in [(Trainable::Heads, true), (Trainable::Blocks(1), false)] {
        s.ft_start(config(trainable)).unwrap();
        block_on(s.ft_step()).unwrap();
        s.ft_apply().unwrap();
        let want = if kept { (6, 6) } else { (1, 6) };
        assert_eq!(
            ready(1),
            want,
            "{trainable:?}: the trunk is {}",
            if kept { "the same" } else { "another" }
        );
        ready(64);
    }

    // Heads only, but trained on a trunk that other weights have replaced since: the features
    // computed for those weights are not the applied model's.
    s.ft_start(config(Trainable::Heads)).unwrap();
    block_on(s.ft_step()).unwrap();
    s.load_weights(&bvlc_with_last_conv(&f.bvlc, |v| v * 2.0), None, "")
        .unwrap();
    assert_eq!(ready(64), (6, 6));
    s.ft_apply().unwrap();
    assert_eq!(
        ready(1),
        (1, 6),
        "the applied model's trunk is the one its fine-tune started from"
    );
}

#[test]
fn the_first_base_model_is_kept_until_other_weights_load() {
    let Some(f) = shared() else { return };
    let s = session();
    s.load_weights(&f.bvlc, None, &f.labels).unwrap();
    let cat = || Image::File(f.cat.clone());
    block_on(s.classify(cat(), 5)).unwrap();
    let loaded = view(&s, 8, false);
    add_dataset(&s);
    // Training inception_5b: its output is no longer the loaded model's.
    s.ft_start(FinetuneConfig {
        lr: 1e-2,
        ..config(Trainable::Blocks(1))
    })
    .unwrap();
    let mut tuned = Vec::new();
    for _ in 0..2 {
        block_on(s.ft_step()).unwrap();
        let info = s.ft_apply().unwrap();
        assert!(info.has_base && info.labels_from_file);
        assert_eq!(info.labels, ["red disc", "blue stripes"]);
        block_on(s.classify(cat(), 2)).unwrap();
        assert_eq!(
            view(&s, 8, true),
            loaded,
            "before: the model the first fine-tune started from"
        );
        tuned.push(view(&s, 8, false));
    }
    assert_ne!(tuned[0], loaded, "the fine-tune changed inception_5b");
    assert_ne!(
        tuned[1], tuned[0],
        "the second apply holds the later weights"
    );

    // Other weights replace the model and its base; the fine-tune goes on, and applying it
    // again starts from the model loaded last.
    let info = s.load_weights(&f.bvlc, None, &f.labels).unwrap();
    assert!(!info.has_base && !info.labels_from_file);
    block_on(s.classify(cat(), 5)).unwrap();
    assert_eq!(
        refused(block_on(s.block_view(8, 3, true)), ErrorKind::Input),
        "no fine-tune has been applied"
    );
    block_on(s.ft_step()).unwrap();
    assert!(s.ft_apply().unwrap().has_base);
    block_on(s.classify(cat(), 2)).unwrap();
    assert_eq!(view(&s, 8, true), loaded);
}

#[test]
fn explain_heads_follow_the_aux_heads_training() {
    let Some(f) = shared() else { return };
    let s = session();
    let info = s.load_weights(&f.bvlc, None, "").unwrap();
    // The main head: 4e by default (the last 14×14 block), up to 5b.
    assert_eq!(heads(&info), [(Head::Main, 6, 8)]);
    add_dataset(&s);

    // Aux losses off: the aux heads stay untrained and are not offered.
    s.ft_start(FinetuneConfig {
        aux: false,
        ..config(Trainable::Heads)
    })
    .unwrap();
    block_on(s.ft_step()).unwrap();
    let info = s.ft_apply().unwrap();
    assert!(info.aux_fresh);
    assert_eq!(heads(&info), [(Head::Main, 6, 8)]);

    // On: each aux head explains up to its tap (aux1 after 4a, aux2 after 4d).
    s.ft_start(config(Trainable::Heads)).unwrap();
    block_on(s.ft_step()).unwrap();
    let info = s.ft_apply().unwrap();
    assert!(!info.aux_fresh);
    assert_eq!(
        heads(&info),
        [(Head::Main, 6, 8), (Head::Aux1, 2, 2), (Head::Aux2, 5, 5)]
    );
    block_on(s.classify(pixels(0, 0), 2)).unwrap();
    assert_eq!(
        block_on(s.explain(0, 2, Head::Aux1)).unwrap().layer,
        "inception_4a"
    );

    // Exported and loaded again, the model keeps its classes and trained aux heads.
    let bytes = block_on(s.export_weights()).unwrap();
    let again = session().load_weights(&bytes, None, "").unwrap();
    assert!(again.labels_from_file && !again.aux_fresh);
    assert_eq!(again.labels, ["red disc", "blue stripes"]);
    assert_eq!(heads(&again), heads(&info));
}
