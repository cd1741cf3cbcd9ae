//! The page's session: one model on one device, and everything the page does with it. It owns
//! the model in use (with the last classified image and its activations, for the block views),
//! the model a fine-tune started from, the fine-tune's data set and trainer, and the
//! heads-only features computed while the page is idle. The rules that tie these together live
//! here, where native tests reach them (`tests/session.rs`); `web.rs` only converts JS values
//! to and from these calls.
//!
//! Every method takes `&self`: a step or a read awaits the device, and the page may not hold
//! `&mut` across `.await` (the wasm facade borrows the session for as long as a call runs).
//! State is borrowed briefly inside a call, never across an `.await`.

use std::cell::{Cell, RefCell};

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::block_view::{self, BlockView};
use crate::error::Error;
use crate::explain::{self, Explanation, Head};
use crate::inference::{self, Classification, StageTime};
use crate::labels::{Prediction, parse_labels, top_probs};
use crate::model::summary::Summary;
use crate::model::{Activations, GoogLeNet, Variant};
use crate::preprocess::{self, INPUT_SIZE, Prepared};
use crate::train::{
    self, ClassInfo, Dataset, FeatureCache, FinetuneConfig, LIMITS, Limits, StepReport, Trainable,
    Trainer, TrunkToken,
};
use crate::weights::{self, LoadOptions, SaveInfo};

/// The backends the page names: burn's wgpu backend (the WebGPU build) or burn-flex (the CPU
/// builds, and natively).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Backend {
    Webgpu,
    Cpu,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Webgpu => "webgpu",
            Backend::Cpu => "cpu",
        }
    }
}

/// An image as the page hands it over: a file's bytes (decoded here, as the CLI does), or
/// pixels the browser decoded (formats the app does not read itself; see
/// `preprocess::known_format`).
pub enum Image {
    File(Vec<u8>),
    Pixels {
        rgba: Vec<u8>,
        width: u32,
        height: u32,
    },
}

impl Image {
    /// The network's input for `variant`.
    fn prepare(self, variant: Variant) -> Result<Prepared, Error> {
        Ok(match self {
            Image::File(bytes) => preprocess::prepare(&bytes, variant)?,
            Image::Pixels {
                rgba,
                width,
                height,
            } => preprocess::prepare_rgba(rgba, width, height, variant)?,
        })
    }

    fn decode(self) -> Result<image::DynamicImage, Error> {
        Ok(match self {
            Image::File(bytes) => preprocess::decode(&bytes)?,
            Image::Pixels {
                rgba,
                width,
                height,
            } => preprocess::from_rgba(rgba, width, height)?,
        })
    }
}

/// What the page is told about the model in use.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    pub variant: Variant,
    pub num_classes: usize,
    pub tensors: usize,
    /// The aux heads hold no trained weights (the BVLC release has none): not shown.
    pub aux_fresh: bool,
    pub has_aux: bool,
    pub transform_input: bool,
    /// Class names came from the weights file (a fine-tuned model).
    pub labels_from_file: bool,
    /// A fine-tuned model whose starting point is kept for before/after block views.
    pub has_base: bool,
    pub summary: Summary,
    /// The class names, in the classifier's order (the explanation's class search).
    pub labels: Vec<String>,
    /// What can be explained: per head, the block explained by default and the last block
    /// whose output the head depends on.
    pub explain: Vec<ExplainHead>,
}

/// One head that can be explained, and its blocks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExplainHead {
    pub head: Head,
    pub default_block: usize,
    pub last_block: usize,
}

/// The heads a model's explanations can use: the main head, and the aux heads only when they
/// exist and hold trained weights (an untrained head's evidence means nothing).
pub fn explain_heads(model: &GoogLeNet, aux_trained: bool) -> Vec<ExplainHead> {
    let heads = if aux_trained && model.has_aux() {
        vec![Head::Main, Head::Aux1, Head::Aux2]
    } else {
        vec![Head::Main]
    };
    heads
        .into_iter()
        .map(|head| ExplainHead {
            head,
            default_block: head.default_block(),
            last_block: head.last_block(),
        })
        .collect()
}

/// One classification, with the time its image took to prepare.
#[derive(Debug, Clone, Serialize)]
pub struct ClassifyResult {
    #[serde(flatten)]
    pub classification: Classification,
    pub ms_preprocess: f64,
}

/// How far the idle-time features are: `ready` of the `wanted` views.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PrecomputeProgress {
    pub ready: usize,
    pub wanted: usize,
}

/// The model being trained on one held-out image: the top 3 of each head.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Heldout {
    pub main: Vec<Prediction>,
    pub aux1: Vec<Prediction>,
    pub aux2: Vec<Prediction>,
}

/// The fine-tune's limits and defaults, as the page's form shows them.
#[derive(Debug, Clone, Serialize)]
pub struct FinetuneSettings {
    pub limits: Limits,
    pub defaults: FinetuneConfig,
    /// Side of the square each training image is kept at.
    pub example_side: u32,
    /// Views of each image with random crops and flips on (1 without).
    pub views: u8,
}

/// The last classified image: its input and every stage's output, for the block views.
struct LastImage {
    input: Tensor<4>,
    activations: Activations,
}

/// The model that classifies, and what goes with it.
struct InUse {
    model: GoogLeNet,
    labels: Vec<String>,
    aux_trained: bool,
    last: Option<LastImage>,
    /// After a fine-tune is applied: the model it started from, for before/after views.
    base: Option<GoogLeNet>,
}

/// A model about to become the one in use.
struct Install {
    model: GoogLeNet,
    labels: Vec<String>,
    aux_trained: bool,
    labels_from_file: bool,
    base: Option<GoogLeNet>,
    /// Its frozen layers are those of the model in use (a heads-only fine-tune of it), so the
    /// features computed from them still hold.
    same_trunk: bool,
}

fn not_ready(what: &str) -> Error {
    Error::NotReady(what.to_string())
}

/// One model on one device. Create it once per worker (WebGPU can be initialised only once).
pub struct Session {
    device: Device,
    backend: Backend,
    in_use: RefCell<Option<InUse>>,
    /// The fine-tune's classes and images.
    dataset: RefCell<Dataset>,
    /// The running fine-tune; taken out while a step runs (never borrowed across `.await`).
    trainer: RefCell<Option<Trainer>>,
    /// The frozen trunk of the model in use, and the one the trainer started from. A
    /// heads-only fine-tune, applied, keeps the trunk it started from, and with it the
    /// features.
    trunk: Cell<TrunkToken>,
    trainer_trunk: Cell<TrunkToken>,
    /// Heads-only features of the data set's views, filled while the page is idle
    /// ([`ft_precompute`](Self::ft_precompute)) and lent to the trainer for each step.
    features: RefCell<FeatureCache>,
}

impl Session {
    /// A session on `device`, after one tiny op shows it computes: a broken device fails
    /// here, not in the first classification.
    pub async fn new(device: Device, backend: Backend) -> Result<Self, Error> {
        let probe = Tensor::<1>::from_floats([1.0, 2.0], &device).mul_scalar(2.0);
        let v = inference::read(probe).await?;
        if v != [2.0, 4.0] {
            return Err(Error::Device(format!(
                "the device computed 1×2, 2×2 as {v:?}"
            )));
        }
        Ok(Session {
            device,
            backend,
            in_use: RefCell::new(None),
            dataset: RefCell::default(),
            trainer: RefCell::new(None),
            trunk: Cell::default(),
            trainer_trunk: Cell::default(),
            features: RefCell::default(),
        })
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The model in use, its labels and whether its aux heads are trained.
    fn model(&self) -> Result<(GoogLeNet, Vec<String>, bool), Error> {
        let m = self.in_use.borrow();
        let m = m
            .as_ref()
            .ok_or_else(|| not_ready("the model is still loading"))?;
        Ok((m.model.clone(), m.labels.clone(), m.aux_trained))
    }

    /// Load a safetensors file (Caffe, PyTorch or project key names), validated whole before
    /// it replaces the model in use; a refused file keeps the model as it was. `variant`:
    /// `None` takes it from the file. `labels` is a synset_words.txt-style list (may be empty),
    /// used when the file names no classes.
    pub fn load_weights(
        &self,
        bytes: &[u8],
        variant: Option<Variant>,
        labels: &str,
    ) -> Result<ModelInfo, Error> {
        let map = weights::read_bytes(bytes)?;
        let opts = LoadOptions {
            variant,
            ..Default::default()
        };
        let (model, report) = weights::load_model(&map, &opts, &self.device)?;
        let labels_from_file = report.labels.is_some();
        let labels = report
            .labels
            .clone()
            .unwrap_or_else(|| parse_labels(labels));
        // A loaded model is a new trunk and starts over: no base, no last image.
        Ok(self.install(Install {
            model: model.valid(),
            labels,
            aux_trained: !report.aux_fresh,
            labels_from_file,
            base: None,
            same_trunk: false,
        }))
    }

    /// Classify an image: top `top` of the main head and, when trained, of the aux heads, in
    /// one forward pass that records every stage for the block views.
    pub async fn classify(&self, image: Image, top: usize) -> Result<ClassifyResult, Error> {
        let t0 = crate::clock::now_ms();
        let (model, labels, aux_trained) = self.model()?;
        let p = image.prepare(model.variant)?;
        let ms_preprocess = crate::clock::now_ms() - t0;
        let x = crate::readback::image_input(p.chw, &self.device);
        let (classification, acts) =
            inference::classify(&model, x.clone(), aux_trained, true, top, &labels).await?;
        if let (Some(m), Some(activations)) = (self.in_use.borrow_mut().as_mut(), acts) {
            m.last = Some(LastImage {
                input: x,
                activations,
            });
        }
        Ok(ClassifyResult {
            classification,
            ms_preprocess,
        })
    }

    /// Where a forward's time goes on the last classified image (`inference::stage_times`,
    /// `iters` clamped to 1…100).
    pub async fn stage_times(&self, iters: usize) -> Result<Vec<StageTime>, Error> {
        let (model, _, _) = self.model()?;
        let x = {
            let m = self.in_use.borrow();
            let last = m.as_ref().and_then(|m| m.last.as_ref());
            last.map(|l| l.input.clone())
                .ok_or_else(|| not_ready("classify an image first"))?
        };
        Ok(inference::stage_times(&model, x, iters.clamp(1, 100)).await)
    }

    /// One block's four branches on the last image (see `block_view::BlockView`), with the `k`
    /// strongest channels of each. With `before`, the same view from the model a fine-tune
    /// started from.
    pub async fn block_view(
        &self,
        block: usize,
        k: usize,
        before: bool,
    ) -> Result<BlockView, Error> {
        let branches = {
            let m = self.in_use.borrow();
            let m = m
                .as_ref()
                .ok_or_else(|| not_ready("the model is still loading"))?;
            let last = m.last.as_ref();
            if before {
                let base = m
                    .base
                    .as_ref()
                    .ok_or_else(|| not_ready("no fine-tune has been applied"))?;
                let last = last
                    .ok_or_else(|| not_ready("classify an image first to see its activations"))?;
                let (_, acts) = base.forward_all(last.input.clone(), false, true);
                block_view::recorded_block(acts.as_ref(), block)?.clone()
            } else {
                block_view::recorded_block(last.map(|l| &l.activations), block)?.clone()
            }
        };
        block_view::block_view(block, &branches, k).await
    }

    /// Grad-CAM on the last classified image: where block `block` holds the evidence for
    /// `class` under `head`. The aux heads only when they hold trained weights.
    pub async fn explain(
        &self,
        class: usize,
        block: usize,
        head: Head,
    ) -> Result<Explanation, Error> {
        let (model, x, labels) = {
            let m = self.in_use.borrow();
            let m = m
                .as_ref()
                .ok_or_else(|| not_ready("the model is still loading"))?;
            let last = m
                .last
                .as_ref()
                .ok_or_else(|| not_ready("classify an image first, then ask why"))?;
            if head != Head::Main && !m.aux_trained {
                return Err(not_ready(
                    "the aux heads hold no trained weights; fine-tune with the aux losses on and apply the result first",
                ));
            }
            (m.model.clone(), last.input.clone(), m.labels.clone())
        };
        explain::grad_cam(&model, x, class, block, head, &labels).await
    }

    /// The fine-tune's limits and default settings.
    pub fn finetune_settings() -> FinetuneSettings {
        FinetuneSettings {
            limits: LIMITS,
            defaults: FinetuneConfig::default(),
            example_side: train::EXAMPLE_SIDE,
            views: train::AUG_VARIANTS,
        }
    }

    /// Add a class; returns its id (stable while other classes come and go).
    pub fn ft_add_class(&self, name: &str) -> Result<u32, Error> {
        Ok(self.dataset.borrow_mut().add_class(name)?)
    }

    pub fn ft_rename(&self, id: u32, name: &str) -> Result<(), Error> {
        Ok(self.dataset.borrow_mut().rename(id, name)?)
    }

    pub fn ft_remove_class(&self, id: u32) -> Result<(), Error> {
        Ok(self.dataset.borrow_mut().remove_class(id)?)
    }

    /// Add one image to class `id`; returns the class's image count.
    pub fn ft_add_image(&self, id: u32, image: Image) -> Result<usize, Error> {
        let e = train::example_from_image(&image.decode()?, 0);
        Ok(self.dataset.borrow_mut().add_image(id, e.image)?)
    }

    /// The classes as the session holds them.
    pub fn ft_classes(&self) -> Vec<ClassInfo> {
        self.dataset.borrow().classes()
    }

    /// Start a fine-tune of the model in use on the classes so far, replacing any running one.
    pub fn ft_start(&self, cfg: FinetuneConfig) -> Result<(), Error> {
        let (labels, examples) = self.dataset.borrow().training_set()?;
        let (model, _, _) = self.model()?;
        let images: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
        let t = Trainer::new(model, examples, labels, cfg, &self.device)?;
        *self.trainer.borrow_mut() = Some(t);
        self.trainer_trunk.set(self.trunk.get());
        self.features.borrow_mut().retain_images(&images);
        Ok(())
    }

    /// Heads-only features for the data set, ahead of a run: computes the next `n` missing
    /// views (every image's centre crop first, then its other `views - 1` crops and flips)
    /// with the model in use. The page calls it while idle, so a run that starts later finds
    /// the trunk's work done.
    pub async fn ft_precompute(&self, views: u8, n: usize) -> Result<PrecomputeProgress, Error> {
        let p = {
            let (model, _, _) = self.model()?;
            let images = self.dataset.borrow().images();
            let mut cache = self.features.borrow_mut();
            cache.for_trunk(self.trunk.get());
            cache.retain_images(&images);
            cache.precompute(
                &model,
                &images,
                views,
                n.clamp(1, LIMITS.max_batch),
                &self.device,
            )
        };
        // On WebGPU the forward runs after this returns: wait for it, so that the page's
        // next request (a classification) is not queued behind a backlog of them.
        if let Some(t) = p.computed {
            inference::read(t).await?;
        }
        Ok(PrecomputeProgress {
            ready: p.ready,
            wanted: p.wanted,
        })
    }

    /// One training step. On failure the trainer keeps the weights it had before the step
    /// (the optimiser state is kept).
    pub async fn ft_step(&self) -> Result<StepReport, Error> {
        let mut t = self
            .trainer
            .borrow_mut()
            .take()
            .ok_or_else(|| not_ready("the fine-tune has not started"))?;
        let before = t.training_model().clone();
        // The idle-time features are lent for the step (the page's requests run one at a
        // time), if they belong to the trunk this fine-tune started from.
        {
            let mut cache = self.features.borrow_mut();
            cache.for_trunk(self.trainer_trunk.get());
            t.swap_cache(&mut cache);
        }
        let r = t.step().await.map_err(Error::from);
        t.swap_cache(&mut self.features.borrow_mut());
        if r.is_err() {
            t.restore(before);
        }
        *self.trainer.borrow_mut() = Some(t);
        r
    }

    /// The model being trained on one image: main, aux1 and aux2, top 3 each. A refused image
    /// leaves the fine-tune as it was.
    pub async fn ft_predict(&self, image: Image) -> Result<Heldout, Error> {
        let t = self
            .trainer
            .borrow_mut()
            .take()
            .ok_or_else(|| not_ready("the fine-tune has not started"))?;
        let labels = t.labels().to_vec();
        let r = match image.prepare(t.training_model().variant) {
            Ok(p) => t.predict(p.chw).await.map_err(Error::from),
            Err(e) => Err(e),
        };
        *self.trainer.borrow_mut() = Some(t);
        let [main, aux1, aux2] = r?;
        let top = |p: &[f32]| top_probs(p, 3, &labels);
        Ok(Heldout {
            main: top(&main),
            aux1: top(&aux1),
            aux2: top(&aux2),
        })
    }

    /// The model as the fine-tune has trained it so far (plain device), if one has started.
    pub fn ft_model(&self) -> Option<GoogLeNet> {
        self.trainer.borrow().as_ref().map(Trainer::model)
    }

    /// Make the fine-tuned model the one that classifies (and whose blocks the views show).
    /// The fine-tune goes on from where it is.
    pub fn ft_apply(&self) -> Result<ModelInfo, Error> {
        let (model, labels, aux_trained, heads_only) = {
            let t = self.trainer.borrow();
            let t = t
                .as_ref()
                .ok_or_else(|| not_ready("the fine-tune has not started"))?;
            (
                t.model(),
                t.labels().to_vec(),
                t.config().aux,
                t.config().trainable == Trainable::Heads,
            )
        };
        // Keep the model the fine-tune started from (the first one, over repeated applies).
        let base = self
            .in_use
            .borrow()
            .as_ref()
            .map(|m| m.base.clone().unwrap_or_else(|| m.model.clone()));
        // Only the heads trained, from the trunk in use: the features computed so far still hold.
        let same_trunk = heads_only && self.trainer_trunk.get() == self.trunk.get();
        Ok(self.install(Install {
            model,
            labels,
            aux_trained,
            labels_from_file: true,
            base,
            same_trunk,
        }))
    }

    /// The model in use (e.g. fine-tuned) as the project's safetensors, with its class names.
    pub async fn export_weights(&self) -> Result<Vec<u8>, Error> {
        let (model, labels, aux_trained) = self.model()?;
        let mut tensors = Vec::new();
        for (k, shape, t) in weights::named_tensors(&model) {
            tensors.push((k, shape, inference::read(t).await?));
        }
        Ok(weights::write_safetensors(
            &model,
            tensors,
            &SaveInfo {
                labels: Some(labels),
                aux_trained,
            },
        )?)
    }

    /// Make a model the one in use: class names filled in when they do not match its
    /// classifier, the last image dropped (its activations are another model's), and a new
    /// trunk token unless its frozen layers are those of the model in use.
    fn install(&self, new: Install) -> ModelInfo {
        let Install {
            model,
            mut labels,
            aux_trained,
            labels_from_file,
            base,
            same_trunk,
        } = new;
        let n = model.num_classes();
        if labels.len() != n {
            labels = (0..n).map(|i| format!("class {i}")).collect();
        }
        let info = ModelInfo {
            explain: explain_heads(&model, aux_trained),
            labels: labels.clone(),
            variant: model.variant,
            num_classes: n,
            tensors: weights::expected_keys(&model).len(),
            aux_fresh: !aux_trained,
            has_aux: model.has_aux(),
            transform_input: model.transform_input,
            labels_from_file,
            has_base: base.is_some(),
            summary: model.summary(INPUT_SIZE),
        };
        if !same_trunk {
            self.trunk.set(self.trunk.get().next());
        }
        *self.in_use.borrow_mut() = Some(InUse {
            model,
            labels,
            aux_trained,
            last: None,
            base,
        });
        info
    }
}
