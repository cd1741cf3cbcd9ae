//! The wasm-bindgen facade: the only code the Web Worker calls. Bytes and plain JS values in
//! (`serde-wasm-bindgen`), plain JS values out; every error carries a `kind` (`input`,
//! `device`, `internal`) that the worker switches on. The work itself is in the library
//! (`inference`, `block_view`, `train`, `weights`, `preprocess`), where native tests reach it.

use std::cell::{Cell, RefCell};
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use js_sys::Promise;
use serde::{Deserialize, Serialize};
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::block_view;
use crate::error::{Error, ErrorKind};
use crate::explain::{self, Head};
use crate::inference::{self, Classification};
use crate::labels::{Prediction, parse_labels, top_probs};
use crate::model::summary::Summary;
use crate::model::{Activations, GoogLeNet, Variant};
use crate::preprocess::{self, INPUT_SIZE, Prepared};
use crate::train::{self, Dataset, FeatureCache, FinetuneConfig, LIMITS, Limits, StepReport, Trainable, Trainer};
use crate::weights::{self, LoadOptions, SaveInfo};

#[cfg(not(any(feature = "engine-cpu", feature = "engine-webgpu")))]
compile_error!("a browser build needs one engine feature: engine-cpu, engine-threads or engine-webgpu");

/// Which engine this build carries: `threads-relaxed`, `threads`, `cpu` or `webgpu`.
const ENGINE: &str = if cfg!(feature = "engine-threads-relaxed") {
    "threads-relaxed"
} else if cfg!(feature = "engine-threads") {
    "threads"
} else if cfg!(feature = "engine-cpu") {
    "cpu"
} else {
    "webgpu"
};

/// Starts the CPU engine's thread pool (`n` Web Workers sharing this instance's memory);
/// only in the threaded build, and only on a cross-origin isolated page.
#[cfg(feature = "engine-threads")]
pub use wasm_bindgen_rayon::init_thread_pool;

/// The engine this build carries (`threads-relaxed`, `threads`, `cpu` or `webgpu`).
#[wasm_bindgen]
pub fn engine() -> String {
    ENGINE.to_string()
}

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

/// A JS `Error` with the message and a `kind` property.
fn js_error(e: Error) -> JsValue {
    let kind = match e.kind() {
        ErrorKind::Input => "input",
        ErrorKind::Device => "device",
        ErrorKind::Internal => "internal",
    };
    let v: JsValue = JsError::new(&e.to_string()).into();
    // Setting a property on a fresh Error object cannot fail.
    let _ = js_sys::Reflect::set(&v, &"kind".into(), &kind.into());
    v
}

fn to_js<T: Serialize>(v: &T) -> Result<JsValue, JsValue> {
    // Maps as plain objects, so the page reads fields, not Map entries.
    let s = serde_wasm_bindgen::Serializer::json_compatible();
    v.serialize(&s).map_err(|e| js_error(Error::Request(format!("serialising a result: {e}"))))
}

fn not_ready(what: &str) -> Error {
    Error::NotReady(what.to_string())
}

/// An image as the worker hands it over: a file's bytes (decoded here, as the CLI does), or
/// pixels the browser decoded (formats the app does not read itself; see
/// `preprocess::known_format`).
#[derive(Deserialize)]
#[serde(untagged)]
enum ImageInput {
    Pixels { rgba: serde_bytes::ByteBuf, width: u32, height: u32 },
    File { bytes: serde_bytes::ByteBuf },
}

fn prepare(image: JsValue, variant: Variant) -> Result<Prepared, Error> {
    let input: ImageInput = serde_wasm_bindgen::from_value(image).map_err(|e| Error::Request(format!("image: {e}")))?;
    Ok(match input {
        ImageInput::File { bytes } => preprocess::prepare(&bytes, variant)?,
        ImageInput::Pixels { rgba, width, height } => preprocess::prepare_rgba(rgba.into_vec(), width, height, variant)?,
    })
}

/// What the page is told about the model in use.
#[derive(Serialize)]
struct ModelInfo {
    variant: Variant,
    num_classes: usize,
    tensors: usize,
    /// The aux heads hold no trained weights (the BVLC release has none): not shown.
    aux_fresh: bool,
    has_aux: bool,
    transform_input: bool,
    /// Class names came from the weights file (a fine-tuned model).
    labels_from_file: bool,
    /// A fine-tuned model whose starting point is kept for before/after block views.
    has_base: bool,
    summary: Summary,
    /// The class names, in the classifier's order (the explanation's class search).
    labels: Vec<String>,
    /// What can be explained: per head, the block explained by default and the last block
    /// whose output the head depends on. The aux heads only when they hold trained weights.
    explain: Vec<ExplainHead>,
}

#[derive(Serialize)]
struct ExplainHead {
    head: Head,
    default_block: usize,
    last_block: usize,
}

struct Loaded {
    model: GoogLeNet,
    labels: Vec<String>,
    aux_trained: bool,
    /// The last classified image's input and activations, for the block views.
    last: Option<(Tensor<4>, Activations)>,
    /// After a fine-tune is applied: the model it started from, for before/after views.
    base: Option<GoogLeNet>,
}

struct Inner {
    device: Device,
    backend: &'static str,
    loaded: RefCell<Option<Loaded>>,
    /// The fine-tune's classes and images.
    dataset: RefCell<Dataset>,
    /// The running fine-tune; taken out while a step runs (never borrowed across `.await`).
    trainer: RefCell<Option<Trainer>>,
    /// Counts the frozen layers of the models installed: which trunk the features below, and
    /// the trainer, belong to. A heads-only fine-tune, applied, keeps the trunk it started from,
    /// and with it the features.
    trunk_gen: Cell<u64>,
    trainer_gen: Cell<u64>,
    /// Heads-only features of the data set's views, filled while the page is idle
    /// (`ft_precompute`) and lent to the trainer for each step.
    features: RefCell<FeatureCache>,
}

/// One model on one device. Create it once per worker (WebGPU can be initialised only once).
#[wasm_bindgen]
pub struct Session {
    inner: Rc<Inner>,
}

#[derive(Serialize)]
struct ClassifyResult {
    #[serde(flatten)]
    c: Classification,
    ms_preprocess: f64,
}

#[derive(Serialize)]
struct Precomputed {
    ready: usize,
    wanted: usize,
}

#[derive(Serialize)]
struct Heldout {
    main: Vec<Prediction>,
    aux1: Vec<Prediction>,
    aux2: Vec<Prediction>,
}

#[derive(Serialize)]
struct FinetuneSettings {
    limits: Limits,
    defaults: FinetuneConfig,
    /// Side of the square each training image is kept at.
    example_side: u32,
    /// Views of each image with random crops and flips on (1 without).
    views: u8,
}

impl Inner {
    fn model(&self) -> Result<(GoogLeNet, Vec<String>, bool), Error> {
        let l = self.loaded.borrow();
        let l = l.as_ref().ok_or_else(|| not_ready("the model is still loading"))?;
        Ok((l.model.clone(), l.labels.clone(), l.aux_trained))
    }
}

#[wasm_bindgen]
impl Session {
    /// `backend`: `"webgpu"` (burn's wgpu backend, in the WebGPU build) or `"cpu"` (burn-flex,
    /// in the CPU builds). Each build has one engine; asking for the other is an error that
    /// names the build to load instead.
    pub fn create(backend: String) -> Promise {
        future_to_promise(async move {
            let device = match backend.as_str() {
                #[cfg(feature = "engine-webgpu")]
                "webgpu" => Device::wgpu_options()
                    .init_async()
                    .await
                    .map_err(|e| js_error(Error::Device(format!("WebGPU initialisation failed: {e:?}"))))?,
                #[cfg(feature = "engine-cpu")]
                "cpu" => Device::flex(),
                // (The arm for this build's own backend comes first.)
                #[allow(unreachable_patterns)]
                other @ ("webgpu" | "cpu") => {
                    return Err(js_error(Error::Request(format!(
                        "this is the {ENGINE} engine build; the `{other}` backend is in another build"
                    ))));
                }
                other => return Err(js_error(Error::Request(format!("unknown backend `{other}`; expected webgpu or cpu")))),
            };
            let backend = if backend == "webgpu" { "webgpu" } else { "cpu" };
            // Run one tiny op so a broken device fails here, not in the first classification.
            let probe = Tensor::<1>::from_floats([1.0, 2.0], &device).mul_scalar(2.0);
            let v = inference::read(probe).await.map_err(js_error)?;
            if v != [2.0, 4.0] {
                return Err(js_error(Error::Device(format!("the device computed 1×2, 2×2 as {v:?}"))));
            }
            let inner = Inner {
                device,
                backend,
                loaded: RefCell::new(None),
                dataset: RefCell::default(),
                trainer: RefCell::new(None),
                trunk_gen: Cell::new(0),
                trainer_gen: Cell::new(0),
                features: RefCell::default(),
            };
            Ok(Session { inner: Rc::new(inner) }.into())
        })
    }

    /// Whether the app decodes this file itself (else the worker asks the browser).
    pub fn known_format(bytes: &[u8]) -> bool {
        preprocess::known_format(bytes)
    }

    /// Test hook (`?fault=trap`): a Rust panic, which traps the wasm instance as a real bug
    /// would (the wasm build aborts on panic).
    pub fn simulate_panic(&self) {
        panic!("simulated panic (test hook ?fault=trap)");
    }

    /// The largest image accepted, in pixels (`preprocess::MAX_PIXELS`).
    pub fn max_pixels() -> f64 {
        preprocess::MAX_PIXELS as f64
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend.to_string()
    }

    /// Load a safetensors file (Caffe, PyTorch or project key names), validated whole before
    /// it replaces the model in use. `variant` may be empty to take it from the file; `labels`
    /// is a synset_words.txt-style list (may be empty). Returns the model info.
    pub fn load_weights(&self, bytes: &[u8], variant: String, labels: String) -> Result<JsValue, JsValue> {
        let variant = match variant.as_str() {
            "" => None,
            v => Some(Variant::parse(v).ok_or_else(|| js_error(Error::Request(format!("unknown variant `{v}`"))))?),
        };
        let map = weights::read_bytes(bytes).map_err(|e| js_error(e.into()))?;
        let opts = LoadOptions { variant, ..Default::default() };
        let (model, report) = weights::load_model(&map, &opts, &self.inner.device).map_err(|e| js_error(e.into()))?;
        let from_file = report.labels.is_some();
        let names = report.labels.clone().unwrap_or_else(|| parse_labels(&labels));
        self.install(model.valid(), names, !report.aux_fresh, from_file, None, false)
    }

    /// Classify an image (`{bytes}` or `{rgba, width, height}`): top `top` of the main head
    /// and, when trained, of the aux heads, in one forward pass.
    pub fn classify(&self, image: JsValue, top: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t0 = crate::clock::now_ms();
            let (model, labels, aux_trained) = inner.model().map_err(js_error)?;
            let p = prepare(image, model.variant).map_err(js_error)?;
            let ms_preprocess = crate::clock::now_ms() - t0;
            let s = INPUT_SIZE;
            let x = Tensor::<4>::from_data(TensorData::new(p.chw, [1, 3, s, s]), &inner.device);
            let (c, acts) = inference::classify(&model, x.clone(), aux_trained, true, top, &labels).await.map_err(js_error)?;
            if let (Some(l), Some(acts)) = (inner.loaded.borrow_mut().as_mut(), acts) {
                l.last = Some((x, acts));
            }
            to_js(&ClassifyResult { c, ms_preprocess })
        })
    }

    /// Where a forward's time goes on the last classified image: `inference::stage_times`, as
    /// `[{stage, ms}]`. For `bench/browser.mjs`, as `googlenet bench --layers` natively.
    pub fn stage_times(&self, iters: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (model, _, _) = inner.model().map_err(js_error)?;
            let x = {
                let l = inner.loaded.borrow();
                let last = l.as_ref().and_then(|l| l.last.as_ref());
                last.map(|(x, _)| x.clone()).ok_or_else(|| js_error(not_ready("classify an image first")))?
            };
            let rows = inference::stage_times(&model, x, iters.clamp(1, 100)).await;
            to_js(&rows)
        })
    }

    /// One block's four branches on the last image: energy shares, the `k` strongest channels
    /// of each branch with their maps, and the heatmap (see `block_view::BlockView`). With
    /// `before`, the same view from the model a fine-tune started from.
    pub fn block_view(&self, block: usize, k: usize, before: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let branches = {
                let l = inner.loaded.borrow();
                let l = l.as_ref().ok_or_else(|| js_error(not_ready("the model is still loading")))?;
                let last = l.last.as_ref();
                if before {
                    let base = l.base.as_ref().ok_or_else(|| js_error(not_ready("no fine-tune has been applied")))?;
                    let (x, _) = last.ok_or_else(|| js_error(not_ready("classify an image first to see its activations")))?;
                    let (_, acts) = base.forward_all(x.clone(), false, true);
                    block_view::recorded_block(acts.as_ref(), block).map_err(js_error)?.clone()
                } else {
                    block_view::recorded_block(last.map(|(_, a)| a), block).map_err(js_error)?.clone()
                }
            };
            to_js(&block_view::block_view(block, &branches, k).await.map_err(js_error)?)
        })
    }

    /// Grad-CAM on the last classified image: where block `block` holds the evidence for
    /// `class` under `head` (`main`, `aux1`, `aux2`). Resolves to an `explain::Explanation`.
    pub fn explain(&self, class: usize, block: usize, head: String) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let head = Head::parse(&head).ok_or_else(|| js_error(Error::Request(format!("unknown head `{head}`; expected main, aux1 or aux2"))))?;
            let (model, x, labels) = {
                let l = inner.loaded.borrow();
                let l = l.as_ref().ok_or_else(|| js_error(not_ready("the model is still loading")))?;
                let (x, _) = l.last.as_ref().ok_or_else(|| js_error(not_ready("classify an image first, then ask why")))?;
                if head != Head::Main && !l.aux_trained {
                    return Err(js_error(not_ready("the aux heads hold no trained weights; fine-tune with the aux losses on and apply the result first")));
                }
                (l.model.clone(), x.clone(), l.labels.clone())
            };
            to_js(&explain::grad_cam(&model, x, class, block, head, &labels).await.map_err(js_error)?)
        })
    }

    /// The fine-tune's limits and default settings.
    pub fn finetune_settings(&self) -> Result<JsValue, JsValue> {
        to_js(&FinetuneSettings { limits: LIMITS, defaults: FinetuneConfig::default(), example_side: train::EXAMPLE_SIDE, views: train::AUG_VARIANTS })
    }

    /// Add a class; returns its id (stable while other classes come and go).
    pub fn ft_add_class(&self, name: String) -> Result<u32, JsValue> {
        self.inner.dataset.borrow_mut().add_class(&name).map_err(|e| js_error(e.into()))
    }

    pub fn ft_rename(&self, id: u32, name: String) -> Result<(), JsValue> {
        self.inner.dataset.borrow_mut().rename(id, &name).map_err(|e| js_error(e.into()))
    }

    pub fn ft_remove_class(&self, id: u32) -> Result<(), JsValue> {
        self.inner.dataset.borrow_mut().remove_class(id).map_err(|e| js_error(e.into()))
    }

    /// Add one image (`{bytes}` or `{rgba, width, height}`) to class `id`; returns the class's
    /// image count.
    pub fn ft_add_image(&self, id: u32, image: JsValue) -> Result<usize, JsValue> {
        let input: ImageInput = serde_wasm_bindgen::from_value(image).map_err(|e| js_error(Error::Request(format!("image: {e}"))))?;
        let img = match input {
            ImageInput::File { bytes } => preprocess::decode(&bytes),
            ImageInput::Pixels { rgba, width, height } => preprocess::from_rgba(rgba.into_vec(), width, height),
        }
        .map_err(|e| js_error(e.into()))?;
        let e = train::example_from_image(&img, 0);
        self.inner.dataset.borrow_mut().add_image(id, e.image).map_err(|e| js_error(e.into()))
    }

    /// The classes as the worker holds them: `[{id, name, images}]`.
    pub fn ft_classes(&self) -> Result<JsValue, JsValue> {
        to_js(&self.inner.dataset.borrow().classes())
    }

    /// Start a fine-tune of the model in use on the classes so far. `config` is a
    /// `FinetuneConfig` object; unknown fields or values are refused.
    pub fn ft_start(&self, config: JsValue) -> Result<(), JsValue> {
        // Read as plain values first, so that a refusal names the value it got.
        let settings: std::collections::BTreeMap<String, train::Setting> = serde_wasm_bindgen::from_value(config)
            .map_err(|e| js_error(Error::Request(format!("fine-tune settings: {e}"))))?;
        let cfg = FinetuneConfig::from_settings(settings.iter().map(|(k, v)| (k.as_str(), v))).map_err(|e| js_error(e.into()))?;
        let (labels, examples) = self.inner.dataset.borrow().training_set().map_err(|e| js_error(e.into()))?;
        let (model, _, _) = self.inner.model().map_err(js_error)?;
        let images: Vec<_> = examples.iter().map(|e| e.image.clone()).collect();
        let t = Trainer::new(model, examples, labels, cfg, &self.inner.device).map_err(|e| js_error(e.into()))?;
        *self.inner.trainer.borrow_mut() = Some(t);
        self.inner.trainer_gen.set(self.inner.trunk_gen.get());
        self.inner.features.borrow_mut().retain_images(&images);
        Ok(())
    }

    /// Heads-only features for the data set, ahead of a run: computes the next `n` missing
    /// views (every image's centre crop first, then its other `views - 1` crops and flips)
    /// with the model in use, and returns `{ready, wanted}`. The page calls it while idle, so
    /// a run that starts later finds the trunk's work done.
    pub fn ft_precompute(&self, views: u8, n: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let p = {
                let (model, _, _) = inner.model().map_err(js_error)?;
                let images = inner.dataset.borrow().images();
                let mut cache = inner.features.borrow_mut();
                cache.for_model(inner.trunk_gen.get());
                cache.retain_images(&images);
                cache.precompute(&model, &images, views, n.clamp(1, LIMITS.max_batch), &inner.device)
            };
            // On WebGPU the forward runs after this returns: wait for it, so that the page's
            // next request (a classification) is not queued behind a backlog of them.
            if let Some(t) = p.computed {
                inference::read(t).await.map_err(js_error)?;
            }
            to_js(&Precomputed { ready: p.ready, wanted: p.wanted })
        })
    }

    /// One training step; resolves to its report. On failure the trainer keeps its last good
    /// weights.
    pub fn ft_step(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mut t = inner.trainer.borrow_mut().take().ok_or_else(|| js_error(not_ready("the fine-tune has not started")))?;
            let before = t.training_model().clone();
            // The idle-time features are lent for the step (the request queue runs nothing else
            // meanwhile), if they belong to the model this fine-tune started from.
            {
                let mut cache = inner.features.borrow_mut();
                cache.for_model(inner.trainer_gen.get());
                t.swap_cache(&mut cache);
            }
            let r: Result<StepReport, Error> = t.step().await.map_err(Error::from);
            t.swap_cache(&mut inner.features.borrow_mut());
            if r.is_err() {
                t.restore(before);
            }
            *inner.trainer.borrow_mut() = Some(t);
            to_js(&r.map_err(js_error)?)
        })
    }

    /// Main, aux1 and aux2 predictions (top 3 each) of the model being trained for one image
    /// (`{bytes}` or `{rgba, width, height}`).
    pub fn ft_predict(&self, image: JsValue) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t = inner.trainer.borrow_mut().take().ok_or_else(|| js_error(not_ready("the fine-tune has not started")))?;
            let labels = t.labels().to_vec();
            let r = match prepare(image, t.training_model().variant) {
                Ok(p) => t.predict(p.chw).await.map_err(Error::from),
                Err(e) => Err(e),
            };
            *inner.trainer.borrow_mut() = Some(t);
            let [main, aux1, aux2] = r.map_err(js_error)?;
            let top = |p: &[f32]| top_probs(p, 3, &labels);
            to_js(&Heldout { main: top(&main), aux1: top(&aux1), aux2: top(&aux2) })
        })
    }

    /// Make the fine-tuned model the one that classifies (and whose blocks the explorer
    /// shows). Returns the model info.
    pub fn ft_apply(&self) -> Result<JsValue, JsValue> {
        let (model, labels, aux, heads_only) = {
            let t = self.inner.trainer.borrow();
            let t = t.as_ref().ok_or_else(|| js_error(not_ready("the fine-tune has not started")))?;
            (t.model(), t.labels().to_vec(), t.config().aux, t.config().trainable == Trainable::Heads)
        };
        // Keep the model the fine-tune started from (the first one, over repeated applies).
        let base = self.inner.loaded.borrow().as_ref().map(|l| l.base.clone().unwrap_or_else(|| l.model.clone()));
        // Only the heads trained, from the trunk in use: the features computed so far still hold.
        let same_trunk = heads_only && self.inner.trainer_gen.get() == self.inner.trunk_gen.get();
        self.install(model, labels, aux, true, base, same_trunk)
    }

    /// The model in use (e.g. fine-tuned) as the project's safetensors, with its class names.
    pub fn export_weights(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (model, labels, aux_trained) = inner.model().map_err(js_error)?;
            let mut tensors = Vec::new();
            for (k, shape, t) in weights::named_tensors(&model) {
                tensors.push((k, shape, inference::read(t).await.map_err(js_error)?));
            }
            let bytes = weights::write_safetensors(&model, tensors, &SaveInfo { labels: Some(labels), aux_trained }).map_err(|e| js_error(e.into()))?;
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}

impl Session {
    /// Make `model` the one in use. `same_trunk`: its frozen layers are those of the model in
    /// use (a heads-only fine-tune of it), so the features computed from them are kept.
    fn install(&self, model: GoogLeNet, mut labels: Vec<String>, aux_trained: bool, labels_from_file: bool, base: Option<GoogLeNet>, same_trunk: bool) -> Result<JsValue, JsValue> {
        let n = model.num_classes();
        if labels.len() != n {
            labels = (0..n).map(|i| format!("class {i}")).collect();
        }
        let heads = if aux_trained && model.has_aux() { vec![Head::Main, Head::Aux1, Head::Aux2] } else { vec![Head::Main] };
        let info = ModelInfo {
            explain: heads.into_iter().map(|head| ExplainHead { head, default_block: head.default_block(), last_block: head.last_block() }).collect(),
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
        let out = to_js(&info)?;
        if !same_trunk {
            self.inner.trunk_gen.set(self.inner.trunk_gen.get() + 1);
        }
        *self.inner.loaded.borrow_mut() = Some(Loaded { model, labels, aux_trained, last: None, base });
        Ok(out)
    }
}
