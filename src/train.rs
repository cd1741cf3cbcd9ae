//! Fine-tuning with GoogLeNet's training trick (paper §5): in training the two auxiliary
//! classifiers (after 4a and 4d) add their losses, `loss = main + 0.3·aux1 + 0.3·aux2`; in
//! evaluation they are dropped. A custom loop on burn's autodiff (not burn-train) that the CLI
//! and the page's Worker drive step by step.

use std::collections::HashMap;

use burn::module::Module;
use burn::nn::LinearConfig;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer, SgdConfig, momentum::MomentumConfig};
use burn::tensor::{Device, Int, Tensor, TensorData};
use image::RgbImage;
use serde::Serialize;

use crate::model::aux_head::inception_aux;
use crate::model::config::{AUX1_AFTER, AUX2_AFTER, INCEPTION_TABLE};
use crate::model::{GoogLeNet, Variant};
use crate::preprocess::{self, INPUT_SIZE, ImageError};

/// Largest class count the page offers; the CLI accepts more.
pub const MAX_CLASSES: usize = 100;

#[derive(Debug, thiserror::Error)]
pub enum TrainError {
    #[error("need at least 2 classes, got {0}")]
    TooFewClasses(usize),
    #[error("class `{0}` has no images; every class needs at least one")]
    EmptyClass(String),
    #[error("{0}")]
    Config(String),
    #[error("reading results from the device failed: {0}")]
    Device(String),
}

/// What trains; everything else is frozen (no gradients, BatchNorm on running statistics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
            _ => match s.strip_prefix("blocks:").and_then(|n| n.parse::<usize>().ok()) {
                Some(n) if (1..=9).contains(&n) => Ok(Trainable::Blocks(n)),
                _ => Err(TrainError::Config(format!("`{s}`: expected heads, blocks:N (N = 1…9) or all"))),
            },
        }
    }

    /// Index of the first Inception block that trains (9 = none; 0 = all, stem too for `All`).
    pub fn first_block(self) -> usize {
        match self {
            Trainable::Heads => INCEPTION_TABLE.len(),
            Trainable::Blocks(n) => INCEPTION_TABLE.len() - n.min(INCEPTION_TABLE.len()),
            Trainable::All => 0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptimizerKind {
    /// SGD with momentum 0.9 (the paper used asynchronous SGD with momentum 0.9).
    Sgd,
    Adam,
}

#[derive(Debug, Clone)]
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
            lr: 1e-3,
            aux_weights: [0.3, 0.3],
            aux: true,
            trainable: Trainable::Heads,
            optimizer: OptimizerKind::Adam,
            seed: 0,
            augment: true,
        }
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
    pub image: RgbImage,
    pub label: usize,
}

const AUG_SIDE: u32 = 256;
/// 5 crop positions × 2 flips.
pub const AUG_VARIANTS: u8 = 10;

pub fn example_from_bytes(bytes: &[u8], label: usize) -> Result<Example, ImageError> {
    let img = preprocess::decode(bytes)?;
    Ok(example_from_image(&img, label))
}

pub fn example_from_image(img: &image::DynamicImage, label: usize) -> Example {
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let s = AUG_SIDE as f64 / w.min(h) as f64;
    let (nw, nh) = (((w as f64 * s).round() as u32).max(AUG_SIDE), ((h as f64 * s).round() as u32).max(AUG_SIDE));
    let resized = image::imageops::resize(&rgb, nw, nh, image::imageops::FilterType::Triangle);
    let image = image::imageops::crop_imm(&resized, (nw - AUG_SIDE) / 2, (nh - AUG_SIDE) / 2, AUG_SIDE, AUG_SIDE).to_image();
    Example { image, label }
}

/// The 224×224 view `v` of an example (0 = centre, unflipped).
fn augmented(e: &Example, v: u8, variant: Variant) -> Vec<f32> {
    let m = AUG_SIDE - INPUT_SIZE as u32;
    let (x, y) = [(m / 2, m / 2), (0, 0), (m, 0), (0, m), (m, m)][(v % 5) as usize];
    let mut crop = image::imageops::crop_imm(&e.image, x, y, INPUT_SIZE as u32, INPUT_SIZE as u32).to_image();
    if v >= 5 {
        image::imageops::flip_horizontal_in_place(&mut crop);
    }
    preprocess::normalize(&crop, variant)
}

/// SplitMix64: small, seedable, identical on every platform.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

/// Frozen-trunk features of one augmented view, when only the heads train: the pooled inputs
/// of aux1, aux2 and the main classifier. Computed once, reused every time the view recurs.
#[derive(Clone)]
struct Features {
    aux1: Tensor<4>,
    aux2: Tensor<4>,
    main: Tensor<4>,
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
    /// On the autodiff device; frozen parts have no gradients.
    model: GoogLeNet,
    /// A plain-device copy of the (unchanging) frozen trunk.
    frozen: GoogLeNet,
    optim: ModuleOptimizer,
    cfg: FinetuneConfig,
    device: Device,
    examples: Vec<Example>,
    labels: Vec<String>,
    rng: Rng,
    step: usize,
    cache: HashMap<(usize, u8), Features>,
}

fn check_config(cfg: &FinetuneConfig) -> Result<(), TrainError> {
    let bad = |m: String| Err(TrainError::Config(m));
    if cfg.batch == 0 || cfg.batch > 64 {
        return bad(format!("batch size {} is out of range 1…64", cfg.batch));
    }
    if !(cfg.lr.is_finite() && cfg.lr > 0.0 && cfg.lr <= 1.0) {
        return bad(format!("learning rate {} is out of range (0, 1]", cfg.lr));
    }
    if cfg.aux_weights.iter().any(|w| !w.is_finite() || *w < 0.0 || *w > 10.0) {
        return bad(format!("aux weights {:?} must be in 0…10", cfg.aux_weights));
    }
    Ok(())
}

impl Trainer {
    /// Prepare `model` for fine-tuning on `examples` (labels index `labels`): new main and aux
    /// output layers for the new class count (aux heads are created if absent), everything
    /// outside `cfg.trainable` frozen. `device` is the plain device; training runs on its
    /// autodiff twin.
    pub fn new(model: GoogLeNet, examples: Vec<Example>, labels: Vec<String>, cfg: FinetuneConfig, device: &Device) -> Result<Self, TrainError> {
        check_config(&cfg)?;
        let n = labels.len();
        if n < 2 {
            return Err(TrainError::TooFewClasses(n));
        }
        if n > MAX_CLASSES * 10 {
            return Err(TrainError::Config(format!("{n} classes is too many")));
        }
        for (i, name) in labels.iter().enumerate() {
            if !examples.iter().any(|e| e.label == i) {
                return Err(TrainError::EmptyClass(name.clone()));
            }
        }
        if let Some(e) = examples.iter().find(|e| e.label >= n) {
            return Err(TrainError::Config(format!("example labelled {} but only {n} classes", e.label)));
        }
        let device = device.clone().without_autodiff();
        let ad = device.clone().autodiff();
        // Seed first: the fresh heads below come from this generator too.
        device.seed(cfg.seed);
        ad.seed(cfg.seed);
        let mut model = model.to_device(&device);
        let spec = model.variant.spec();
        // New class count: fresh main classifier and aux output layers.
        model.fc = LinearConfig::new(1024, n).init(&device);
        for (slot, after) in [(&mut model.aux1, AUX1_AFTER), (&mut model.aux2, AUX2_AFTER)] {
            match slot {
                Some(h) => h.fc2 = LinearConfig::new(1024, n).init(&device),
                None => *slot = Some(inception_aux(INCEPTION_TABLE[after].out_channels(), n, &spec, &device)),
            }
        }
        let frozen = model.valid();
        let mut model = model.to_device(&ad).train();
        let first = cfg.trainable.first_block();
        if cfg.trainable != Trainable::All {
            model.conv1 = model.conv1.freeze();
            model.conv2 = model.conv2.freeze();
            model.conv3 = model.conv3.freeze();
            for i in 0..first {
                freeze_block(&mut model, i);
            }
        }
        let optim = match cfg.optimizer {
            OptimizerKind::Adam => AdamConfig::new().init(),
            OptimizerKind::Sgd => SgdConfig::new().with_momentum(Some(MomentumConfig::new().with_dampening(0.0))).init(),
        };
        let rng = Rng(cfg.seed);
        Ok(Trainer { model, frozen, optim, cfg, device: ad, examples, labels, rng, step: 0, cache: HashMap::new() })
    }

    /// Switch the aux losses on or off and set their weights, between steps.
    pub fn set_aux(&mut self, aux: bool, weights: [f32; 2]) -> Result<(), TrainError> {
        let cfg = FinetuneConfig { aux, aux_weights: weights, ..self.cfg.clone() };
        check_config(&cfg)?;
        self.cfg = cfg;
        Ok(())
    }

    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    pub fn config(&self) -> &FinetuneConfig {
        &self.cfg
    }

    /// The model as trained so far, for evaluation (plain device, dropout off).
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
                let v = if self.cfg.augment { self.rng.below(AUG_VARIANTS as usize) as u8 } else { 0 };
                (i, v)
            })
            .collect()
    }

    fn input(&self, batch: &[(usize, u8)], device: &Device) -> Tensor<4> {
        let s = INPUT_SIZE;
        let variant = self.model.variant;
        let data: Vec<f32> = batch.iter().flat_map(|&(i, v)| augmented(&self.examples[i], v, variant)).collect();
        Tensor::from_data(TensorData::new(data, [batch.len(), 3, s, s]), device)
    }

    fn targets(&self, batch: &[(usize, u8)]) -> Tensor<1, Int> {
        let t: Vec<i64> = batch.iter().map(|&(i, _)| self.examples[i].label as i64).collect();
        Tensor::from_data(TensorData::new(t, [batch.len()]), &self.device)
    }

    /// Heads only: the frozen trunk's pooled features for each view, cached.
    fn head_features(&mut self, batch: &[(usize, u8)]) -> Features {
        let missing: Vec<(usize, u8)> = {
            let mut m: Vec<_> = batch.iter().copied().filter(|k| !self.cache.contains_key(k)).collect();
            m.sort();
            m.dedup();
            m
        };
        if !missing.is_empty() {
            let plain = self.device.clone().without_autodiff();
            let x = self.input(&missing, &plain);
            let f = &self.frozen;
            let mut x = f.stem(x);
            let (mut a1, mut a2) = (None, None);
            for i in 0..INCEPTION_TABLE.len() {
                x = f.block_at(i, x);
                if i == AUX1_AFTER {
                    a1 = Some(f.aux1.as_ref().expect("aux heads created in new()").pool(x.clone()));
                }
                if i == AUX2_AFTER {
                    a2 = Some(f.aux2.as_ref().expect("aux heads created in new()").pool(x.clone()));
                }
            }
            let main = f.global_pool(x);
            let (a1, a2) = (a1.expect("block 4a ran"), a2.expect("block 4d ran"));
            for (j, key) in missing.iter().enumerate() {
                let one = |t: &Tensor<4>| t.clone().narrow(0, j, 1);
                self.cache.insert(*key, Features { aux1: one(&a1), aux2: one(&a2), main: one(&main) });
            }
        }
        let pick = |get: fn(&Features) -> &Tensor<4>| {
            Tensor::cat(batch.iter().map(|k| get(&self.cache[k]).clone()).collect(), 0).autodiff()
        };
        Features { aux1: pick(|f| &f.aux1), aux2: pick(|f| &f.aux2), main: pick(|f| &f.main) }
    }

    /// Forward and loss terms for one batch (the autodiff graph is kept for `backward`).
    pub fn losses(&mut self, batch: &[(usize, u8)]) -> Losses {
        let y = self.targets(batch);
        let first = self.cfg.trainable.first_block();
        let (main, aux1, aux2) = if first == INCEPTION_TABLE.len() {
            let f = self.head_features(batch);
            let m = &self.model;
            (
                m.classify_pooled(f.main),
                m.aux1.as_ref().expect("aux heads created in new()").forward_pooled(f.aux1),
                m.aux2.as_ref().expect("aux heads created in new()").forward_pooled(f.aux2),
            )
        } else {
            // The frozen prefix runs on the plain device (no graph), the rest with autodiff.
            let plain = self.device.clone().without_autodiff();
            let trains_stem = self.cfg.trainable == Trainable::All;
            let m = &self.model;
            let mut x = if trains_stem {
                m.stem(self.input(batch, &self.device))
            } else {
                self.frozen.stem(self.input(batch, &plain))
            };
            if !trains_stem && first == 0 {
                x = x.autodiff();
            }
            let (mut a1, mut a2) = (None, None);
            for i in 0..INCEPTION_TABLE.len() {
                x = if i < first && !trains_stem { self.frozen.block_at(i, x) } else { m.block_at(i, x) };
                if i + 1 == first && !trains_stem {
                    x = x.detach().autodiff();
                }
                if i == AUX1_AFTER {
                    a1 = Some(m.aux1.as_ref().expect("aux heads created in new()").forward(x.clone().autodiff()));
                }
                if i == AUX2_AFTER {
                    a2 = Some(m.aux2.as_ref().expect("aux heads created in new()").forward(x.clone().autodiff()));
                }
            }
            (m.classify_pooled(m.global_pool(x)), a1.expect("4a ran"), a2.expect("4d ran"))
        };
        let ce = CrossEntropyLossConfig::new().init(&self.device);
        let l_main = ce.forward(main.clone(), y.clone());
        let l_aux1 = ce.forward(aux1, y.clone());
        let l_aux2 = ce.forward(aux2, y);
        let total = if self.cfg.aux {
            l_main.clone() + l_aux1.clone().mul_scalar(self.cfg.aux_weights[0]) + l_aux2.clone().mul_scalar(self.cfg.aux_weights[1])
        } else {
            l_main.clone()
        };
        Losses { total, main: l_main, aux1: l_aux1, aux2: l_aux2, logits: main }
    }

    /// Gradients of the total loss for one batch (without an optimiser step), by parameter.
    pub fn gradients(&mut self, batch: &[(usize, u8)]) -> GradientsParams {
        let l = self.losses(batch);
        GradientsParams::from_grads(l.total.backward(), &self.model)
    }

    /// One optimisation step on the next sampled batch.
    pub async fn step(&mut self) -> Result<StepReport, TrainError> {
        let t0 = now_ms();
        let batch = self.sample();
        let labels: Vec<usize> = batch.iter().map(|&(i, _)| self.examples[i].label).collect();
        let l = self.losses(&batch);
        let scalars = Tensor::cat(vec![l.total.clone().detach(), l.main.detach(), l.aux1.detach(), l.aux2.detach()], 0);
        let logits = l.logits.clone().detach();
        let grads = GradientsParams::from_grads(l.total.backward(), &self.model);
        self.model = self.optim.step(self.cfg.lr, self.model.clone(), grads);
        let s = read(scalars).await?;
        let n = self.labels.len();
        let logits = read(logits.flatten(0, 1)).await?;
        let correct = logits
            .chunks(n)
            .zip(&labels)
            .filter(|(row, y)| row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(i, _)| i) == Some(**y))
            .count();
        self.step += 1;
        Ok(StepReport {
            step: self.step,
            loss: s[0],
            main: s[1],
            aux1: s[2],
            aux2: s[3],
            acc: correct as f32 / batch.len() as f32,
            ms: now_ms() - t0,
        })
    }

    /// Main and aux predictions of the current model for one image (probabilities), e.g. a
    /// held-out image shown beside the training curves.
    pub async fn predict(&self, chw: Vec<f32>) -> Result<[Vec<f32>; 3], TrainError> {
        let plain = self.device.clone().without_autodiff();
        let s = INPUT_SIZE;
        let x = Tensor::<4>::from_data(TensorData::new(chw, [1, 3, s, s]), &plain);
        let out = self.model().forward_train(x);
        let soft = |t: Tensor<2>| burn::tensor::activation::softmax(t, 1).flatten(0, 1);
        let main = read(soft(out.main)).await?;
        let aux2 = read(soft(out.aux2.expect("aux heads exist"))).await?;
        let aux1 = read(soft(out.aux1.expect("aux heads exist"))).await?;
        Ok([main, aux1, aux2])
    }
}

fn freeze_block(model: &mut GoogLeNet, i: usize) {
    let b = match i {
        0 => &mut model.inception3a,
        1 => &mut model.inception3b,
        2 => &mut model.inception4a,
        3 => &mut model.inception4b,
        4 => &mut model.inception4c,
        5 => &mut model.inception4d,
        6 => &mut model.inception4e,
        7 => &mut model.inception5a,
        _ => &mut model.inception5b,
    };
    *b = b.clone().freeze();
}

async fn read(t: Tensor<1>) -> Result<Vec<f32>, TrainError> {
    let d = t.into_data_async().await.map_err(|e| TrainError::Device(format!("{e:?}")))?;
    d.try_to_vec::<f32>().map_err(|e| TrainError::Device(format!("{e:?}")))
}

#[cfg(not(target_family = "wasm"))]
fn now_ms() -> f64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64() * 1e3).unwrap_or(0.0)
}

#[cfg(target_family = "wasm")]
fn now_ms() -> f64 {
    js_sys::Date::now()
}
