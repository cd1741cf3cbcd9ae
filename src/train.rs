//! Fine-tuning with GoogLeNet's training trick (paper §5): in training the two auxiliary
//! classifiers (after 4a and 4d) add their losses, `loss = main + 0.3·aux1 + 0.3·aux2`; in
//! evaluation they are dropped. A custom loop on burn's autodiff (not burn-train) that the CLI
//! and the page's Worker drive step by step.

mod adam;

use std::collections::HashMap;
use std::sync::Arc;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{GradientsParams, ModuleOptimizer, SgdConfig, momentum::MomentumConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use image::RgbImage;
use serde::{Deserialize, Serialize};

use crate::labels::{LabelError, check_labels};
use crate::model::aux_head::{aux_pool, inception_aux};
use crate::model::config::{AUX_TAPS, INCEPTION_TABLE, STAGES, Stage};
use crate::model::{GoogLeNet, Variant};
use crate::preprocess::{self, INPUT_SIZE, ImageError};
use crate::rng::SplitMix64;

/// What a fine-tune accepts, stated once: the CLI, the page and the trainer all read this.
#[derive(Debug, Clone, Copy, Serialize)]
pub struct Limits {
    pub max_classes: usize,
    pub min_images_per_class: usize,
    pub max_images_per_class: usize,
    pub max_batch: usize,
    pub max_steps: usize,
    pub max_aux_weight: f32,
}

/// 10 classes × 30 images at 256×256 RGB is 59 MB of training images, which a browser tab
/// holds comfortably next to the model; 3 images per class is the least that generalises at all.
pub const LIMITS: Limits = Limits {
    max_classes: 10,
    min_images_per_class: 3,
    max_images_per_class: 30,
    max_batch: 64,
    max_steps: 500,
    max_aux_weight: 10.0,
};

/// The paper's weight of each auxiliary loss (§5: "weighted by 0.3").
pub const AUX_LOSS_WEIGHT: f32 = 0.3;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("need at least 2 classes, got {0}")]
    TooFewClasses(usize),
    #[error("{0} classes is too many; at most {max}", max = LIMITS.max_classes)]
    TooManyClasses(usize),
    #[error("class `{name}` has {}; every class needs at least {min}", crate::text::count(*count, "image", "images"), min = LIMITS.min_images_per_class)]
    TooFewImages { name: String, count: usize },
    #[error("class `{name}` already has {max} images, the limit", max = LIMITS.max_images_per_class)]
    TooManyImages { name: String },
    #[error("no class with id {0} (it was removed?)")]
    NoSuchClass(u32),
    #[error("{0}")]
    Config(String),
    /// A class name the saved model could not be loaded with: refused before training.
    #[error("{0}")]
    Label(#[from] LabelError),
    #[error("reading results from the device failed: {0}")]
    Device(String),
}

/// What trains; everything else is frozen (no gradients, BatchNorm on running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Trainable {
    /// The main classifier and both aux heads.
    Heads,
    /// The heads and the last N Inception blocks (1 = 5b only … 9 = all blocks).
    Blocks(usize),
    /// Everything, the stem included.
    All,
}

impl Trainable {
    pub fn parse(s: &str) -> Result<Self, TrainError> {
        match s {
            "heads" => Ok(Trainable::Heads),
            "all" => Ok(Trainable::All),
            _ => match s
                .strip_prefix("blocks:")
                .and_then(|n| n.parse::<usize>().ok())
            {
                Some(n) if (1..=INCEPTION_TABLE.len()).contains(&n) => Ok(Trainable::Blocks(n)),
                _ => Err(TrainError::Config(format!(
                    "`{s}`: expected heads, blocks:N (N = 1…9) or all"
                ))),
            },
        }
    }

    /// Index in [`STAGES`] of the first stage that trains (`STAGES.len()`: only the heads).
    pub fn first_stage(self) -> usize {
        match self {
            Trainable::Heads => STAGES.len(),
            Trainable::Blocks(n) => {
                Stage::Block(INCEPTION_TABLE.len() - n.min(INCEPTION_TABLE.len())).index()
            }
            Trainable::All => 0,
        }
    }
}

impl TryFrom<String> for Trainable {
    type Error = TrainError;
    fn try_from(s: String) -> Result<Self, TrainError> {
        Trainable::parse(&s)
    }
}

impl From<Trainable> for String {
    fn from(t: Trainable) -> String {
        match t {
            Trainable::Heads => "heads".into(),
            Trainable::Blocks(n) => format!("blocks:{n}"),
            Trainable::All => "all".into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OptimizerKind {
    /// SGD with momentum 0.9 (the paper used asynchronous SGD with momentum 0.9).
    Sgd,
    Adam,
}

impl OptimizerKind {
    /// The learning rate a fine-tune with this optimizer takes unless told otherwise.
    pub fn default_lr(self) -> f64 {
        match self {
            OptimizerKind::Sgd => 1e-2,
            OptimizerKind::Adam => 1e-3,
        }
    }
}

/// One fine-tune's settings, for the CLI and the page alike (the page sends it as JSON;
/// unknown fields and values are refused, missing ones take these defaults).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FinetuneConfig {
    pub batch: usize,
    pub lr: f64,
    /// Weights of the aux1 (after 4a) and aux2 (after 4d) losses; the paper uses 0.3 each.
    pub aux_weights: [f32; 2],
    /// Include the aux losses at all.
    pub aux: bool,
    pub trainable: Trainable,
    pub optimizer: OptimizerKind,
    pub seed: u64,
    /// Random crops (5 positions) and horizontal flips.
    pub augment: bool,
}

impl Default for FinetuneConfig {
    fn default() -> Self {
        FinetuneConfig {
            batch: 8,
            lr: OptimizerKind::Adam.default_lr(),
            aux_weights: [AUX_LOSS_WEIGHT; 2],
            aux: true,
            trainable: Trainable::Heads,
            optimizer: OptimizerKind::Adam,
            seed: 0,
            augment: true,
        }
    }
}

/// One setting's value as the page (a JS value) or a JSON file gives it, kept as it came so
/// that a refusal can name it: `learning rate "fast"`, `seed -1`, `learning rate NaN`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(untagged)]
pub enum Setting {
    Bool(bool),
    /// A whole number that fits u64 (before `Number`, so a large seed keeps every digit).
    Whole(u64),
    Number(f64),
    Text(String),
    List(Vec<Setting>),
    Null,
}

impl std::fmt::Display for Setting {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Setting::Bool(b) => write!(f, "{b}"),
            Setting::Whole(n) => write!(f, "{n}"),
            Setting::Number(x) => write!(f, "{x}"),
            Setting::Text(t) => {
                // At most 40 characters of it, control characters made visible.
                let short: String = t.chars().take(40).collect();
                let more = if t.chars().count() > 40 { "…" } else { "" };
                write!(f, "\"{}{more}\"", crate::text::escape(&short))
            }
            Setting::List(items) => {
                write!(f, "[")?;
                for (i, v) in items.iter().enumerate() {
                    write!(f, "{}{v}", if i > 0 { ", " } else { "" })?;
                }
                write!(f, "]")
            }
            Setting::Null => write!(f, "null"),
        }
    }
}

impl Setting {
    fn whole(&self, what: &str, range: std::ops::RangeInclusive<u64>) -> Result<u64, TrainError> {
        let n = match *self {
            Setting::Whole(n) => Some(n),
            // A JS number: whole and exactly representable (≤ 2^53).
            Setting::Number(x)
                if x.fract() == 0.0 && (0.0..=9_007_199_254_740_992.0).contains(&x) =>
            {
                Some(x as u64)
            }
            _ => None,
        };
        match n {
            Some(n) if range.contains(&n) => Ok(n),
            _ => Err(TrainError::Config(format!(
                "{what} {self} is not a whole number in {}…{}",
                range.start(),
                range.end()
            ))),
        }
    }

    fn number(&self, what: &str) -> Result<f64, TrainError> {
        match *self {
            Setting::Whole(n) => Ok(n as f64),
            Setting::Number(x) if x.is_finite() => Ok(x),
            _ => Err(TrainError::Config(format!("{what} {self} is not a number"))),
        }
    }

    fn flag(&self, what: &str) -> Result<bool, TrainError> {
        match *self {
            Setting::Bool(b) => Ok(b),
            _ => Err(TrainError::Config(format!(
                "{what} {self} is not true or false"
            ))),
        }
    }

    fn text(&self, what: &str) -> Result<&str, TrainError> {
        match self {
            Setting::Text(t) => Ok(t),
            _ => Err(TrainError::Config(format!("{what} {self} is not text"))),
        }
    }
}

impl FinetuneConfig {
    /// The defaults for a fine-tune with `optimizer`, that optimizer's learning rate included.
    pub fn for_optimizer(optimizer: OptimizerKind) -> Self {
        FinetuneConfig {
            optimizer,
            lr: optimizer.default_lr(),
            ..FinetuneConfig::default()
        }
    }

    /// Settings as the page sends them (field → value; missing or null fields take the defaults),
    /// each refusal naming the setting and the value it got, then [`FinetuneConfig::check`].
    pub fn from_settings<'a>(
        settings: impl IntoIterator<Item = (&'a str, &'a Setting)>,
    ) -> Result<Self, TrainError> {
        let mut c = FinetuneConfig::default();
        for (key, v) in settings {
            // An absent value (`null`, or `undefined` from the page) takes the default.
            if *v == Setting::Null {
                continue;
            }
            match key {
                "batch" => c.batch = v.whole("batch size", 1..=LIMITS.max_batch as u64)? as usize,
                "lr" => {
                    c.lr = v.number("learning rate").map_err(|_| {
                        TrainError::Config(format!(
                            "learning rate {v} is not a number; expected one in (0, 1], e.g. 0.001"
                        ))
                    })?
                }
                "aux_weights" => {
                    let w = match v {
                        Setting::List(items) if items.len() == 2 => [
                            items[0].number("aux weight")?,
                            items[1].number("aux weight")?,
                        ],
                        _ => {
                            return Err(TrainError::Config(format!(
                                "aux weights {v} are not two numbers [aux1, aux2]"
                            )));
                        }
                    };
                    c.aux_weights = w.map(|x| x as f32);
                }
                "aux" => c.aux = v.flag("aux")?,
                "augment" => c.augment = v.flag("augment")?,
                "trainable" => c.trainable = Trainable::parse(v.text("trainable")?)?,
                "optimizer" => {
                    c.optimizer = match v.text("optimizer")? {
                        "adam" => OptimizerKind::Adam,
                        "sgd" => OptimizerKind::Sgd,
                        _ => {
                            return Err(TrainError::Config(format!(
                                "optimizer {v} is not adam or sgd"
                            )));
                        }
                    }
                }
                "seed" => c.seed = v.whole("seed", 0..=u64::MAX)?,
                other => {
                    return Err(TrainError::Config(format!(
                        "unknown setting `{}`; the settings are batch, lr, aux_weights, aux, augment, trainable, optimizer, seed",
                        crate::text::escape(other)
                    )));
                }
            }
        }
        c.check()?;
        Ok(c)
    }

    /// Every field in range, or a message that says which and what is allowed.
    pub fn check(&self) -> Result<(), TrainError> {
        let bad = |m: String| Err(TrainError::Config(m));
        if self.batch == 0 || self.batch > LIMITS.max_batch {
            return bad(format!(
                "batch size {} is out of range 1…{}",
                self.batch, LIMITS.max_batch
            ));
        }
        if !(self.lr.is_finite() && self.lr > 0.0 && self.lr <= 1.0) {
            return bad(format!("learning rate {} is out of range (0, 1]", self.lr));
        }
        if self
            .aux_weights
            .iter()
            .any(|w| !w.is_finite() || *w < 0.0 || *w > LIMITS.max_aux_weight)
        {
            return bad(format!(
                "aux weights {:?} must be in 0…{}",
                self.aux_weights, LIMITS.max_aux_weight
            ));
        }
        Ok(())
    }
}

/// One step's numbers, as the CLI log and the page's chart show them. `main`, `aux1` and
/// `aux2` are the unweighted cross-entropies; `loss` is the weighted total that was minimised.
#[derive(Debug, Clone, Serialize)]
pub struct StepReport {
    pub step: usize,
    pub loss: f32,
    pub main: f32,
    pub aux1: f32,
    pub aux2: f32,
    pub acc: f32,
    pub ms: f64,
}

/// A training image, resized (shorter side 256) and centre-cropped to 256×256, ready for
/// 224×224 augmentation crops.
#[derive(Debug, Clone)]
pub struct Example {
    /// Shared: a data set, a trainer and a restarted trainer hold the same pixels.
    pub image: Arc<RgbImage>,
    pub label: usize,
}

/// Side of the square a training image is kept at (the evaluation resize, then 224 crops).
pub const EXAMPLE_SIDE: u32 = 256;
/// 5 crop positions × 2 flips.
pub const AUG_VARIANTS: u8 = 10;

pub fn example_from_bytes(bytes: &[u8], label: usize) -> Result<Example, ImageError> {
    let img = preprocess::decode(bytes)?;
    Ok(example_from_image(&img, label))
}

pub fn example_from_image(img: &image::DynamicImage, label: usize) -> Example {
    // The evaluation transform's resize (Pillow-exact), to a 256×256 square for the crops.
    let image = preprocess::resize_shorter_and_center_crop_dynamic(img, EXAMPLE_SIDE, EXAMPLE_SIDE);
    Example {
        image: Arc::new(image),
        label,
    }
}

/// The 224×224 view `v` of an example (0 = centre, unflipped).
fn augmented(e: &Example, v: u8, variant: Variant) -> Vec<f32> {
    augmented_image(&e.image, v, variant)
}

fn augmented_image(image: &RgbImage, v: u8, variant: Variant) -> Vec<f32> {
    let m = EXAMPLE_SIDE - INPUT_SIZE as u32;
    let (x, y) = [(m / 2, m / 2), (0, 0), (m, 0), (0, m), (m, m)][(v % 5) as usize];
    let mut crop =
        image::imageops::crop_imm(image, x, y, INPUT_SIZE as u32, INPUT_SIZE as u32).to_image();
    if v >= 5 {
        image::imageops::flip_horizontal_in_place(&mut crop);
    }
    preprocess::normalize(&crop, variant)
}

/// The trainer's generator; what it draws beyond `rng.rs`'s basics is here.
type Rng = SplitMix64;

impl SplitMix64 {
    /// Inverted dropout with a mask from this generator: each element is zeroed with
    /// probability `p`, the rest scaled by 1/(1-p).
    fn dropout(&mut self, x: Tensor<2>, p: f64) -> Tensor<2> {
        if p <= 0.0 {
            return x;
        }
        let dims = x.dims();
        let keep = 1.0 / (1.0 - p) as f32;
        let mask: Vec<f32> = (0..dims[0] * dims[1])
            .map(|_| if self.unit() as f64 >= p { keep } else { 0.0 })
            .collect();
        let mask = Tensor::<2>::from_data(TensorData::new(mask, dims), &x.device());
        x * mask
    }
}

/// What the frozen part of the network produces for a batch: the pooled inputs of the aux
/// heads whose taps lie in it, and the trunk's output where training starts (globally pooled
/// when only the heads train). Computed on the plain device, without a graph.
#[derive(Clone)]
struct Features {
    aux: [Option<Tensor<4>>; 2],
    trunk: Tensor<4>,
}

impl Features {
    /// One per image of the batch.
    fn split(self) -> Vec<Features> {
        let n = self.trunk.dims()[0];
        let one = |t: &Tensor<4>, j: usize| t.clone().narrow(0, j, 1);
        (0..n)
            .map(|j| Features {
                aux: [0, 1].map(|h| self.aux[h].as_ref().map(|t| one(t, j))),
                trunk: one(&self.trunk, j),
            })
            .collect()
    }

    /// A batch from single images' features (every tap present).
    fn cat(f: Vec<Features>) -> Features {
        let pick =
            |get: &dyn Fn(&Features) -> Tensor<4>| Tensor::cat(f.iter().map(get).collect(), 0);
        Features {
            aux: [0, 1].map(|h| {
                Some(pick(&|f: &Features| {
                    f.aux[h].clone().expect("all taps are frozen")
                }))
            }),
            trunk: pick(&|f| f.trunk.clone()),
        }
    }
}

/// The stages `STAGES[..split]` of `model` on `x` (plain device, no graph), with the aux heads'
/// pooling for the taps among them, globally pooled when they are all of the trunk.
fn frozen_features(model: &GoogLeNet, x: Tensor<4>, split: usize) -> Features {
    let pool = model.variant.spec().aux_pool;
    let mut aux = [None, None];
    let x = model.trunk(x, 0..split, &mut |o| {
        if let Some(h) = o.stage.aux_tap() {
            aux[h] = Some(aux_pool(pool, o.output.clone()));
        }
    });
    let trunk = if split == STAGES.len() {
        model.global_pool(x)
    } else {
        x
    };
    Features { aux, trunk }
}

/// Most (image, view) feature sets a [`FeatureCache`] keeps: about 70 KB each for BVLC, so
/// about 70 MB (every view of 100 images). Beyond it the oldest go first.
pub const MAX_CACHED_VIEWS: usize = 1000;

/// Which frozen trunk (the stages a heads-only fine-tune does not train) a set of features
/// came from: a token its owner hands out, one per trunk it installs, and only ever compared.
/// (The session counts its models; a heads-only fine-tune, applied, keeps its token.)
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TrunkToken(u64);

impl TrunkToken {
    /// The token for the next trunk installed after this one.
    pub fn next(self) -> Self {
        TrunkToken(self.0 + 1)
    }
}

/// The frozen trunk's features per (image, view) for heads-only fine-tunes: the trunk is most
/// of a step until every view has been seen once, so they are computed once, kept across runs
/// on the same model, and can be filled ahead of a run ([`precompute`](Self::precompute)),
/// e.g. while the page waits for the user. An entry holds its image, so the image's address,
/// its key, is never reused while it is here.
#[derive(Default)]
pub struct FeatureCache {
    /// Which frozen trunk the features came from.
    trunk: TrunkToken,
    entries: HashMap<(usize, u8), (Arc<RgbImage>, Features)>,
    /// Insertion order, for eviction.
    order: std::collections::VecDeque<(usize, u8)>,
}

impl FeatureCache {
    fn key(image: &Arc<RgbImage>, v: u8) -> (usize, u8) {
        (Arc::as_ptr(image) as usize, v)
    }

    /// Emptied unless it holds the features of the trunk `trunk` stands for.
    pub fn for_trunk(&mut self, trunk: TrunkToken) {
        if self.trunk != trunk {
            *self = FeatureCache {
                trunk,
                ..Default::default()
            };
        }
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    fn get(&self, image: &Arc<RgbImage>, v: u8) -> Option<&Features> {
        self.entries.get(&Self::key(image, v)).map(|e| &e.1)
    }

    fn insert(&mut self, image: Arc<RgbImage>, v: u8, f: Features) {
        let key = Self::key(&image, v);
        while self.entries.len() >= MAX_CACHED_VIEWS {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.entries.remove(&old);
        }
        if self.entries.insert(key, (image, f)).is_none() {
            self.order.push_back(key);
        }
    }

    /// Keep only the features of these images (the others left the data set).
    pub fn retain_images(&mut self, images: &[Arc<RgbImage>]) {
        let keep: std::collections::HashSet<usize> =
            images.iter().map(|i| Arc::as_ptr(i) as usize).collect();
        self.entries.retain(|k, _| keep.contains(&k.0));
        let entries = &self.entries;
        self.order.retain(|k| entries.contains_key(k));
    }

    /// Compute the features of the next `n` views that `model` would need for `images` with
    /// `views` views each (1: the centre crop only; [`AUG_VARIANTS`]: every crop and flip),
    /// in one forward: every image's centre first, then the next view of each.
    pub fn precompute(
        &mut self,
        model: &GoogLeNet,
        images: &[Arc<RgbImage>],
        views: u8,
        n: usize,
        device: &Device,
    ) -> Precomputed {
        let views = views.clamp(1, AUG_VARIANTS);
        let wanted: Vec<(usize, u8)> = (0..views)
            .flat_map(|v| (0..images.len()).map(move |i| (i, v)))
            .take(MAX_CACHED_VIEWS)
            .collect();
        let todo: Vec<(usize, u8)> = wanted
            .iter()
            .copied()
            .filter(|&(i, v)| self.get(&images[i], v).is_none())
            .take(n)
            .collect();
        let mut computed = None;
        if !todo.is_empty() {
            let data: Vec<f32> = todo
                .iter()
                .flat_map(|&(i, v)| augmented_image(&images[i], v, model.variant))
                .collect();
            let x = Tensor::from_data(
                TensorData::new(data, [todo.len(), 3, INPUT_SIZE, INPUT_SIZE]),
                &device.clone().without_autodiff(),
            );
            let f = frozen_features(model, x, STAGES.len());
            computed = Some(f.trunk.clone().flatten(0, 3));
            for (f, &(i, v)) in f.split().into_iter().zip(&todo) {
                self.insert(images[i].clone(), v, f);
            }
        }
        let ready = wanted
            .iter()
            .filter(|&&(i, v)| self.get(&images[i], v).is_some())
            .count();
        Precomputed {
            ready,
            wanted: wanted.len(),
            computed,
        }
    }
}

/// What [`FeatureCache::precompute`] did.
pub struct Precomputed {
    /// Wanted views whose features are ready.
    pub ready: usize,
    /// Views wanted (every image × views, capped at [`MAX_CACHED_VIEWS`]).
    pub wanted: usize,
    /// The trunk's pooled output for the views just computed, if any: reading it waits for a
    /// device that runs asynchronously (WebGPU), so the caller's next request is not queued
    /// behind a backlog of forwards.
    pub computed: Option<Tensor<1>>,
}

impl Precomputed {
    pub fn progress(&self) -> (usize, usize) {
        (self.ready, self.wanted)
    }
}

/// The loss terms of one forward, still on the device.
pub struct Losses {
    pub total: Tensor<1>,
    pub main: Tensor<1>,
    pub aux1: Tensor<1>,
    pub aux2: Tensor<1>,
    pub logits: Tensor<2>,
}

pub struct Trainer {
    /// On the autodiff device; frozen stages have no gradients.
    model: GoogLeNet,
    /// A plain-device copy of the (unchanging) frozen stages.
    frozen: GoogLeNet,
    optim: ModuleOptimizer,
    cfg: FinetuneConfig,
    device: Device,
    examples: Vec<Example>,
    labels: Vec<String>,
    /// Batches, augmentations, dropout masks and fresh heads all come from this seeded
    /// generator, so a fine-tune is reproducible whatever else the process does.
    rng: Rng,
    step: usize,
    /// Heads only: the frozen features of each (example, view), computed once.
    cache: FeatureCache,
}

/// Check a training set against [`LIMITS`]: names each offending class.
pub fn check_set(labels: &[String], examples: &[Example]) -> Result<(), TrainError> {
    // The names first: they are saved with the model, and a name the loader refuses would
    // make the whole fine-tune's work unloadable.
    check_labels(labels)?;
    let n = labels.len();
    if n < 2 {
        return Err(TrainError::TooFewClasses(n));
    }
    if n > LIMITS.max_classes {
        return Err(TrainError::TooManyClasses(n));
    }
    if let Some(e) = examples.iter().find(|e| e.label >= n) {
        return Err(TrainError::Config(format!(
            "example labelled {} but only {n} classes",
            e.label
        )));
    }
    for (i, name) in labels.iter().enumerate() {
        let count = examples.iter().filter(|e| e.label == i).count();
        if count < LIMITS.min_images_per_class {
            return Err(TrainError::TooFewImages {
                name: name.clone(),
                count,
            });
        }
        if count > LIMITS.max_images_per_class {
            return Err(TrainError::TooManyImages { name: name.clone() });
        }
    }
    Ok(())
}

impl Trainer {
    /// Prepare `model` for fine-tuning on `examples` (labels index `labels`): new main and aux
    /// output layers for the new class count (aux heads are created if absent), everything
    /// before `cfg.trainable` frozen. `device` is the plain device; training runs on its
    /// autodiff twin.
    pub fn new(
        model: GoogLeNet,
        examples: Vec<Example>,
        labels: Vec<String>,
        cfg: FinetuneConfig,
        device: &Device,
    ) -> Result<Self, TrainError> {
        cfg.check()?;
        check_set(&labels, &examples)?;
        let n = labels.len();
        let device = device.clone().without_autodiff();
        let ad = device.clone().autodiff();
        let mut rng = Rng::new(cfg.seed);
        let mut model = model.to_device(&device);
        let spec = model.variant.spec();
        // New class count: fresh main classifier and aux output layers, from our generator.
        model.fc = rng.linear(1024, n, &device);
        for (h, slot) in [&mut model.aux1, &mut model.aux2].into_iter().enumerate() {
            // An absent head is drawn whole (conv, fc1, fc2); a present one gets a new fc2.
            match slot {
                None => {
                    let Stage::Block(after) = AUX_TAPS[h] else {
                        unreachable!("aux heads read Inception blocks")
                    };
                    let mut head =
                        inception_aux(INCEPTION_TABLE[after].out_channels(), n, &spec, &device);
                    rng.aux_head(&mut head, &device);
                    *slot = Some(head);
                }
                Some(head) => head.fc2 = rng.linear(1024, n, &device),
            }
        }
        let frozen = model.valid();
        let mut model = model.to_device(&ad).train();
        for stage in &STAGES[..cfg.trainable.first_stage()] {
            model.freeze_stage(*stage);
        }
        let optim = match cfg.optimizer {
            OptimizerKind::Adam => adam::optimizer(),
            OptimizerKind::Sgd => SgdConfig::new()
                .with_momentum(Some(MomentumConfig::new().with_dampening(0.0)))
                .init(),
        };
        Ok(Trainer {
            model,
            frozen,
            optim,
            cfg,
            device: ad,
            examples,
            labels,
            rng,
            step: 0,
            cache: FeatureCache::default(),
        })
    }

    /// Switch the aux losses on or off and set their weights, between steps.
    pub fn set_aux(&mut self, aux: bool, weights: [f32; 2]) -> Result<(), TrainError> {
        let cfg = FinetuneConfig {
            aux,
            aux_weights: weights,
            ..self.cfg.clone()
        };
        cfg.check()?;
        self.cfg = cfg;
        Ok(())
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn config(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// The model as trained so far, for evaluation (plain device).
    pub fn model(&self) -> GoogLeNet {
        self.model.valid()
    }

    /// Put back weights saved before a failed step (the optimiser state is kept).
    pub fn restore(&mut self, model: GoogLeNet) {
        self.model = model;
    }

    /// The training model itself (autodiff device), e.g. to inspect parameters.
    pub fn training_model(&self) -> &GoogLeNet {
        &self.model
    }

    /// The next batch: example indices and augmentation views, from the seeded generator.
    fn sample(&mut self) -> Vec<(usize, u8)> {
        (0..self.cfg.batch)
            .map(|_| {
                let i = self.rng.below(self.examples.len());
                let v = if self.cfg.augment {
                    self.rng.below(AUG_VARIANTS as usize) as u8
                } else {
                    0
                };
                (i, v)
            })
            .collect()
    }

    fn input(&self, batch: &[(usize, u8)], device: &Device) -> Tensor<4> {
        let s = INPUT_SIZE;
        let variant = self.model.variant;
        let data: Vec<f32> = batch
            .iter()
            .flat_map(|&(i, v)| augmented(&self.examples[i], v, variant))
            .collect();
        Tensor::from_data(TensorData::new(data, [batch.len(), 3, s, s]), device)
    }

    fn targets(&self, batch: &[(usize, u8)]) -> Tensor<1, Int> {
        let t: Vec<i64> = batch
            .iter()
            .map(|&(i, _)| self.examples[i].label as i64)
            .collect();
        Tensor::from_data(TensorData::new(t, [batch.len()]), &self.device)
    }

    /// The frozen stages `STAGES[..split]` on the plain device, with the aux heads' pooling
    /// for the taps among them.
    fn frozen_features(&self, batch: &[(usize, u8)], split: usize) -> Features {
        let x = self.input(batch, &self.device.clone().without_autodiff());
        frozen_features(&self.frozen, x, split)
    }

    /// Heads only: the frozen features of each view, from the cache (computing the missing
    /// ones in one batch).
    fn cached_features(&mut self, batch: &[(usize, u8)]) -> Features {
        let mut feats: Vec<Option<Features>> = batch
            .iter()
            .map(|&(i, v)| self.cache.get(&self.examples[i].image, v).cloned())
            .collect();
        let mut missing: Vec<(usize, u8)> = batch
            .iter()
            .zip(&feats)
            .filter(|(_, f)| f.is_none())
            .map(|(k, _)| *k)
            .collect();
        missing.sort();
        missing.dedup();
        if !missing.is_empty() {
            let f = self.frozen_features(&missing, STAGES.len());
            for (f, &(i, v)) in f.split().into_iter().zip(&missing) {
                for (slot, _) in feats.iter_mut().zip(batch).filter(|(_, k)| **k == (i, v)) {
                    *slot = Some(f.clone());
                }
                self.cache.insert(self.examples[i].image.clone(), v, f);
            }
        }
        Features::cat(
            feats
                .into_iter()
                .map(|f| f.expect("cached or computed above"))
                .collect(),
        )
    }

    /// Lend the trainer a feature cache for heads-only steps (e.g. one filled ahead of the run
    /// by [`FeatureCache::precompute`] on this trainer's model), getting back the one it held.
    pub fn swap_cache(&mut self, cache: &mut FeatureCache) {
        std::mem::swap(&mut self.cache, cache);
    }

    /// Forward and loss terms for one batch (the autodiff graph is kept for `backward`): the
    /// frozen stages without a graph, then the trainable ones and the heads with autodiff and
    /// seeded dropout.
    pub fn losses(&mut self, batch: &[(usize, u8)]) -> Losses {
        let y = self.targets(batch);
        let split = self.cfg.trainable.first_stage();
        let f = if split == STAGES.len() {
            self.cached_features(batch)
        } else {
            self.frozen_features(batch, split)
        };
        let (m, rng) = (&self.model, &mut self.rng);
        let heads = m
            .aux_heads()
            .map(|h| h.expect("aux heads created in new()"));
        let mut drop = |x: Tensor<2>, p: f64| rng.dropout(x, p);
        let mut aux: [Option<Tensor<2>>; 2] = [None, None];
        for (h, pooled) in f.aux.into_iter().enumerate() {
            if let Some(p) = pooled {
                aux[h] = Some(heads[h].forward_pooled(p.autodiff(), &mut drop));
            }
        }
        let x = m.trunk(f.trunk.autodiff(), split..STAGES.len(), &mut |o| {
            if let Some(h) = o.stage.aux_tap() {
                aux[h] = Some(heads[h].forward_pooled(heads[h].pool(o.output.clone()), &mut drop));
            }
        });
        let main = m.head(x, &mut drop);
        let [aux1, aux2] =
            aux.map(|a| a.expect("every aux tap lies in the frozen or the trained stages"));
        let ce = CrossEntropyLossConfig::new().init(&self.device);
        let l_main = ce.forward(main.clone(), y.clone());
        let l_aux1 = ce.forward(aux1, y.clone());
        let l_aux2 = ce.forward(aux2, y);
        let total = if self.cfg.aux {
            l_main.clone()
                + l_aux1.clone().mul_scalar(self.cfg.aux_weights[0])
                + l_aux2.clone().mul_scalar(self.cfg.aux_weights[1])
        } else {
            l_main.clone()
        };
        Losses {
            total,
            main: l_main,
            aux1: l_aux1,
            aux2: l_aux2,
            logits: main,
        }
    }

    /// Gradients of the total loss for one batch (without an optimiser step), by parameter.
    /// The generator is left as it was, so repeated calls see the same dropout masks.
    pub fn gradients(&mut self, batch: &[(usize, u8)]) -> GradientsParams {
        let rng = self.rng.clone();
        let l = self.losses(batch);
        self.rng = rng;
        GradientsParams::from_grads(l.total.backward(), &self.model)
    }

    /// One optimisation step on the next sampled batch.
    pub async fn step(&mut self) -> Result<StepReport, TrainError> {
        let t0 = crate::clock::now_ms();
        let batch = self.sample();
        let labels: Vec<usize> = batch.iter().map(|&(i, _)| self.examples[i].label).collect();
        let l = self.losses(&batch);
        let scalars = Tensor::cat(
            vec![
                l.total.clone().detach(),
                l.main.detach(),
                l.aux1.detach(),
                l.aux2.detach(),
            ],
            0,
        );
        let logits = l.logits.clone().detach();
        let grads = GradientsParams::from_grads(l.total.backward(), &self.model);
        self.model = self.optim.step(self.cfg.lr, self.model.clone(), grads);
        let s = read(scalars).await?;
        if let Some(bad) = s.iter().find(|v| !v.is_finite()) {
            return Err(TrainError::Config(format!(
                "the loss became {bad} (diverged): lower the learning rate (now {}) and start again",
                self.cfg.lr
            )));
        }
        let n = self.labels.len();
        let logits = read(logits.flatten(0, 1)).await?;
        let correct = logits
            .chunks(n)
            .zip(&labels)
            .filter(|(row, y)| crate::labels::argmax(row) == Some(**y))
            .count();
        self.step += 1;
        Ok(StepReport {
            step: self.step,
            loss: s[0],
            main: s[1],
            aux1: s[2],
            aux2: s[3],
            acc: correct as f32 / batch.len() as f32,
            ms: crate::clock::now_ms() - t0,
        })
    }

    /// Main and aux probabilities of the current model for one image (`[3, 224, 224]`), e.g. a
    /// held-out image shown beside the training curves.
    pub async fn predict(&self, chw: Vec<f32>) -> Result<[Vec<f32>; 3], TrainError> {
        let plain = self.device.clone().without_autodiff();
        let x = crate::readback::image_input(chw, &plain);
        let (out, _) = self.model().forward_all(x, true, false);
        let soft = |t: Tensor<2>| burn::tensor::activation::softmax(t, 1).flatten(0, 1);
        let main = read(soft(out.main)).await?;
        let aux1 = read(soft(out.aux1.expect("aux heads exist"))).await?;
        let aux2 = read(soft(out.aux2.expect("aux heads exist"))).await?;
        Ok([main, aux1, aux2])
    }
}

async fn read(t: Tensor<1>) -> Result<Vec<f32>, TrainError> {
    crate::readback::read_f32(t)
        .await
        .map_err(TrainError::Device)
}

/// One class of a [`Dataset`]: a stable id (positions shift when a class is removed; ids do
/// not), the name the user typed, and its images.
#[derive(Debug, Clone, Serialize)]
pub struct ClassInfo {
    pub id: u32,
    pub name: String,
    pub images: usize,
}

/// The fine-tune's training images by class, as the page builds it up: classes are added,
/// renamed and removed by id, images added to a class by id. [`Dataset::training_set`] turns
/// it into labels and examples in class order, naming any class that falls short.
#[derive(Debug, Clone, Default)]
pub struct Dataset {
    classes: Vec<(u32, String, Vec<Arc<RgbImage>>)>,
    next_id: u32,
}

impl Dataset {
    pub fn add_class(&mut self, name: &str) -> Result<u32, TrainError> {
        if self.classes.len() >= LIMITS.max_classes {
            return Err(TrainError::TooManyClasses(self.classes.len() + 1));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.classes.push((id, name.to_string(), Vec::new()));
        Ok(id)
    }

    fn class(&mut self, id: u32) -> Result<&mut (u32, String, Vec<Arc<RgbImage>>), TrainError> {
        self.classes
            .iter_mut()
            .find(|c| c.0 == id)
            .ok_or(TrainError::NoSuchClass(id))
    }

    pub fn rename(&mut self, id: u32, name: &str) -> Result<(), TrainError> {
        self.class(id)?.1 = name.to_string();
        Ok(())
    }

    pub fn remove_class(&mut self, id: u32) -> Result<(), TrainError> {
        self.class(id)?;
        self.classes.retain(|c| c.0 != id);
        Ok(())
    }

    /// Add a training image (already resized, see [`example_from_bytes`]) to class `id`.
    pub fn add_image(&mut self, id: u32, image: Arc<RgbImage>) -> Result<usize, TrainError> {
        let c = self.class(id)?;
        if c.2.len() >= LIMITS.max_images_per_class {
            return Err(TrainError::TooManyImages { name: c.1.clone() });
        }
        c.2.push(image);
        Ok(c.2.len())
    }

    /// Every image, in class order (as [`training_set`](Self::training_set) lists them).
    pub fn images(&self) -> Vec<Arc<RgbImage>> {
        self.classes
            .iter()
            .flat_map(|c| c.2.iter().cloned())
            .collect()
    }

    pub fn classes(&self) -> Vec<ClassInfo> {
        self.classes
            .iter()
            .map(|(id, name, images)| ClassInfo {
                id: *id,
                name: name.clone(),
                images: images.len(),
            })
            .collect()
    }

    /// Labels and examples in class order (label = position), after checking every class
    /// has a name and enough images.
    pub fn training_set(&self) -> Result<(Vec<String>, Vec<Example>), TrainError> {
        let labels: Vec<String> = self
            .classes
            .iter()
            .map(|c| c.1.trim().to_string())
            .collect();
        if let Some(i) = labels.iter().position(String::is_empty) {
            return Err(TrainError::Config(format!(
                "class {} has no name; type one",
                i + 1
            )));
        }
        if let Some((i, name)) = labels
            .iter()
            .enumerate()
            .find(|(i, n)| labels[..*i].contains(n))
        {
            return Err(TrainError::Config(format!(
                "two classes are named `{name}` (class {}); names must differ",
                i + 1
            )));
        }
        let examples: Vec<Example> = self
            .classes
            .iter()
            .enumerate()
            .flat_map(|(label, c)| {
                c.2.iter().map(move |image| Example {
                    image: image.clone(),
                    label,
                })
            })
            .collect();
        check_set(&labels, &examples)?;
        Ok((labels, examples))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn img() -> Arc<RgbImage> {
        Arc::new(RgbImage::new(EXAMPLE_SIDE, EXAMPLE_SIDE))
    }

    #[test]
    fn classes_keep_their_ids_and_shortfalls_name_the_right_class() {
        let mut d = Dataset::default();
        let ids: Vec<u32> = ["cats", "dogs", "", "birds"]
            .iter()
            .map(|n| d.add_class(n).unwrap())
            .collect();
        for &id in &[ids[0], ids[1], ids[3]] {
            for _ in 0..LIMITS.min_images_per_class {
                d.add_image(id, img()).unwrap();
            }
        }
        // The empty third class is named by its position, not confused with another.
        let err = d.training_set().unwrap_err().to_string();
        assert!(err.contains("class 3 has no name"), "{err}");
        d.rename(ids[2], "fish").unwrap();
        let err = d.training_set().unwrap_err().to_string();
        assert!(err.contains("`fish` has 0 image"), "{err}");
        // Removing it keeps the others' images with their own classes.
        d.remove_class(ids[2]).unwrap();
        let (labels, examples) = d.training_set().unwrap();
        assert_eq!(labels, ["cats", "dogs", "birds"]);
        assert_eq!(
            examples.iter().filter(|e| e.label == 2).count(),
            LIMITS.min_images_per_class
        );
        assert!(matches!(
            d.add_image(ids[2], img()),
            Err(TrainError::NoSuchClass(_))
        ));
        assert_eq!(d.classes()[2].id, ids[3]);
    }

    #[test]
    fn limits_are_enforced() {
        let mut d = Dataset::default();
        for i in 0..LIMITS.max_classes {
            d.add_class(&format!("c{i}")).unwrap();
        }
        assert!(matches!(
            d.add_class("one too many"),
            Err(TrainError::TooManyClasses(_))
        ));
        for _ in 0..LIMITS.max_images_per_class {
            d.add_image(0, img()).unwrap();
        }
        assert!(
            d.add_image(0, img())
                .unwrap_err()
                .to_string()
                .contains("`c0` already has 30")
        );
        d.rename(1, "c0").unwrap();
        assert!(
            d.training_set()
                .unwrap_err()
                .to_string()
                .contains("named `c0`")
        );
    }

    fn settings(json: &str) -> Result<FinetuneConfig, String> {
        let map: std::collections::BTreeMap<String, Setting> = serde_json::from_str(json).unwrap();
        FinetuneConfig::from_settings(map.iter().map(|(k, v)| (k.as_str(), v)))
            .map_err(|e| e.to_string())
    }

    #[test]
    fn every_refused_setting_names_the_value_it_got() {
        let ok = settings(r#"{"batch": 4, "lr": 0.01, "optimizer": "sgd", "trainable": "blocks:2", "seed": 18446744073709551615, "aux_weights": [0.3, 1]}"#).unwrap();
        assert_eq!(
            (
                ok.batch,
                ok.lr,
                ok.optimizer,
                ok.trainable,
                ok.seed,
                ok.aux_weights
            ),
            (
                4,
                0.01,
                OptimizerKind::Sgd,
                Trainable::Blocks(2),
                u64::MAX,
                [0.3, 1.0]
            )
        );
        assert_eq!(
            settings(r#"{"lr": "fast"}"#).unwrap_err(),
            "learning rate \"fast\" is not a number; expected one in (0, 1], e.g. 0.001"
        );
        assert_eq!(
            settings(r#"{"lr": 0}"#).unwrap_err(),
            "learning rate 0 is out of range (0, 1]"
        );
        assert_eq!(
            settings(r#"{"seed": -1}"#).unwrap_err(),
            "seed -1 is not a whole number in 0…18446744073709551615"
        );
        assert_eq!(
            settings(r#"{"seed": 1.5}"#).unwrap_err(),
            "seed 1.5 is not a whole number in 0…18446744073709551615"
        );
        assert_eq!(
            settings(r#"{"batch": 65}"#).unwrap_err(),
            "batch size 65 is not a whole number in 1…64"
        );
        assert_eq!(
            settings(r#"{"aux": "yes"}"#).unwrap_err(),
            "aux \"yes\" is not true or false"
        );
        assert_eq!(
            settings(r#"{"optimizer": "rmsprop"}"#).unwrap_err(),
            "optimizer \"rmsprop\" is not adam or sgd"
        );
        assert_eq!(
            settings(r#"{"aux_weights": [0.3]}"#).unwrap_err(),
            "aux weights [0.3] are not two numbers [aux1, aux2]"
        );
        assert!(
            settings(r#"{"batchsize": 4}"#)
                .unwrap_err()
                .starts_with("unknown setting `batchsize`")
        );
        // A JS NaN (Number("fast")) arrives as a number: named as NaN, never as 0.
        let nan = Setting::Number(f64::NAN);
        let err = FinetuneConfig::from_settings([("lr", &nan)])
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "learning rate NaN is not a number; expected one in (0, 1], e.g. 0.001"
        );
    }

    #[test]
    fn configs_reject_unknown_fields_and_values() {
        let ok: FinetuneConfig =
            serde_json::from_str(r#"{"batch": 4, "optimizer": "sgd", "trainable": "blocks:2"}"#)
                .unwrap();
        assert_eq!(
            (ok.batch, ok.optimizer, ok.trainable, ok.lr),
            (4, OptimizerKind::Sgd, Trainable::Blocks(2), 1e-3)
        );
        for bad in [
            r#"{"optimizer": "rmsprop"}"#,
            r#"{"trainable": "blocks:12"}"#,
            r#"{"batchsize": 4}"#,
            r#"{"aux": "yes"}"#,
        ] {
            assert!(
                serde_json::from_str::<FinetuneConfig>(bad).is_err(),
                "{bad} was accepted"
            );
        }
        assert!(
            FinetuneConfig {
                batch: 0,
                ..Default::default()
            }
            .check()
            .is_err()
        );
    }
}
