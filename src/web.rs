//! The wasm-bindgen facade: the only code the Web Worker calls. It takes bytes and returns
//! plain data (JSON strings and `Float32Array`s); every tensor read is `into_data_async`.

use std::cell::RefCell;
use std::rc::Rc;

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData};
use js_sys::{Float32Array, Promise};
use serde::Serialize;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::future_to_promise;

use crate::labels::{Prediction, parse_labels, top_k};
use crate::model::{Activations, BLOCK_NAMES, BRANCH_NAMES, GoogLeNet, Variant};
use crate::preprocess;
use crate::train::{Example, FinetuneConfig, OptimizerKind, Trainable, Trainer};
use crate::weights::{self, LoadOptions, LoadReport, SaveInfo};

#[wasm_bindgen(start)]
pub fn start() {
    console_error_panic_hook::set_once();
}

fn err(context: &str, e: impl std::fmt::Display) -> JsValue {
    JsError::new(&format!("{context}: {e}")).into()
}

async fn read(t: Tensor<1>) -> Result<Vec<f32>, JsValue> {
    let data = t.into_data_async().await.map_err(|e| err("reading a tensor from the device", format!("{e:?}")))?;
    data.try_to_vec::<f32>().map_err(|e| err("reading a tensor from the device", format!("{e:?}")))
}

struct Loaded {
    model: GoogLeNet,
    report: LoadReport,
    labels: Vec<String>,
    /// The last classified image's activations, for the block views.
    acts: Option<Activations>,
    /// The last classified image's input tensor.
    input: Option<Tensor<4>>,
    /// After a fine-tune is applied: the model it started from, for before/after views.
    base: Option<GoogLeNet>,
}

struct Inner {
    device: Device,
    backend: &'static str,
    loaded: RefCell<Option<Loaded>>,
    /// Fine-tune images added so far.
    examples: RefCell<Vec<Example>>,
    /// The running fine-tune; taken out while a step runs (never borrowed across `.await`).
    trainer: RefCell<Option<Trainer>>,
}

/// The page's stated limits: what the fine-tune accepts, said up front.
pub const FT_MAX_CLASSES: usize = 10;
pub const FT_MAX_IMAGES_PER_CLASS: usize = 30;
pub const FT_MIN_IMAGES_PER_CLASS: usize = 3;

/// One model on one device. Create it once per worker (WebGPU can be initialised only once).
#[wasm_bindgen]
pub struct Session {
    inner: Rc<Inner>,
}

#[derive(Serialize)]
struct ReportJs<'a> {
    variant: &'a str,
    num_classes: usize,
    tensors: usize,
    aux_fresh: bool,
    has_aux: bool,
    transform_input: bool,
    labels_from_file: bool,
    /// A fine-tuned model whose starting point is kept for before/after block views.
    has_base: bool,
    summary: crate::model::summary::Summary,
}

#[derive(Serialize)]
struct ClassifyJs {
    top: Vec<Prediction>,
    aux1: Option<Vec<Prediction>>,
    aux2: Option<Vec<Prediction>>,
    ms_preprocess: f64,
    /// The main forward and the read of its logits (aux heads, when shown, come after).
    ms_forward: f64,
}

fn now() -> f64 {
    js_sys::Date::now()
}

#[wasm_bindgen]
impl Session {
    /// `backend`: `"webgpu"` (burn's wgpu backend) or `"cpu"` (burn-flex in wasm).
    pub fn create(backend: String) -> Promise {
        future_to_promise(async move {
            let (device, backend) = match backend.as_str() {
                "webgpu" => {
                    let d = Device::wgpu_options()
                        .init_async()
                        .await
                        .map_err(|e| err("WebGPU initialisation failed", format!("{e:?}")))?;
                    (d, "webgpu")
                }
                "cpu" => (Device::flex(), "cpu"),
                other => return Err(err("unknown backend", format!("`{other}`; expected webgpu or cpu"))),
            };
            // Run one tiny op so a broken device fails here, not in the first classification.
            let probe = Tensor::<1>::from_floats([1.0, 2.0], &device).mul_scalar(2.0);
            let v = read(probe).await?;
            if v != [2.0, 4.0] {
                return Err(err("the device computed 1×2, 2×2 wrong", format!("{v:?}")));
            }
            let inner = Rc::new(Inner {
                device,
                backend,
                loaded: RefCell::new(None),
                examples: RefCell::new(Vec::new()),
                trainer: RefCell::new(None),
            });
            Ok(Session { inner }.into())
        })
    }

    #[wasm_bindgen(getter)]
    pub fn backend(&self) -> String {
        self.inner.backend.to_string()
    }

    /// Load a safetensors file (Caffe, PyTorch or project key names). `variant` may be empty
    /// to take it from the file. `labels` is a synset_words.txt-style list (may be empty).
    /// Returns the load report and the model summary as JSON.
    pub fn load_weights(&self, bytes: &[u8], variant: String, labels: String) -> Result<String, JsValue> {
        if bytes.starts_with(b"PK\x03\x04") || bytes.first() == Some(&0x80) {
            return Err(err(
                "cannot load this file",
                "it is a PyTorch .pth checkpoint; convert it with `googlenet convert --from FILE.pth --to FILE.safetensors` first",
            ));
        }
        let map = weights::read_safetensors(bytes).map_err(|e| err("invalid weights file", e))?;
        let variant = match variant.as_str() {
            "" => None,
            v => Some(Variant::parse(v).ok_or_else(|| err("unknown variant", v))?),
        };
        let opts = LoadOptions { variant, ..Default::default() };
        let (model, report) = weights::load_model(&map, &opts, &self.inner.device).map_err(|e| err("invalid weights file", e))?;
        let model = model.valid();
        self.install(model, report, &labels, None)
    }

    /// Classify an image file's bytes. Resolves to JSON (see `ClassifyJs`).
    pub fn classify(&self, image: Vec<u8>, top: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t0 = now();
            let (model, variant, labels, aux_trained) = {
                let l = inner.loaded.borrow();
                let l = l.as_ref().ok_or_else(|| err("no model", "load weights first"))?;
                (l.model.clone(), l.report.variant, l.labels.clone(), !l.report.aux_fresh && l.model.has_aux())
            };
            let p = preprocess::prepare(&image, variant).map_err(|e| err("cannot use this image", e))?;
            let t1 = now();
            let s = preprocess::INPUT_SIZE;
            let x = Tensor::<4>::from_data(TensorData::new(p.chw, [1, 3, s, s]), &inner.device);
            let x_keep = x.clone();
            let (logits, acts) = model.forward_with_activations(x.clone());
            let logits = read(logits.flatten(0, 1)).await?;
            let t2 = now();
            let (aux1, aux2) = if aux_trained {
                let out = model.forward_train(x);
                let a1 = read(out.aux1.expect("has aux").flatten(0, 1)).await?;
                let a2 = read(out.aux2.expect("has aux").flatten(0, 1)).await?;
                (Some(top_k(&a1, top, &labels)), Some(top_k(&a2, top, &labels)))
            } else {
                (None, None)
            };
            let out = ClassifyJs {
                top: top_k(&logits, top, &labels),
                aux1,
                aux2,
                ms_preprocess: t1 - t0,
                ms_forward: t2 - t1,
            };
            if let Some(l) = inner.loaded.borrow_mut().as_mut() {
                l.acts = Some(acts);
                l.input = Some(x_keep);
            }
            Ok(JsValue::from_str(&serde_json::to_string(&out).expect("serialisable")))
        })
    }

    /// Feature maps of one block's four branches for the last image: for each branch, the
    /// `k` channels with the highest mean activation. Resolves to an object
    /// `{ block, h, w, energy: [4], branches: [{ name, channels: [..], means: [..], maps: Float32Array }],
    ///    heatmap: Float32Array }` where `maps` is `k × h × w`, `energy` each branch's mean
    /// squared activation and `heatmap` (`h × w`) the block output's mean over all channels.
    ///
    /// With `before`, the same view from the model a fine-tune started from (the last image
    /// run through it), to compare a block's branches before and after fine-tuning.
    pub fn block_view(&self, block: usize, k: usize, before: bool) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if block >= BLOCK_NAMES.len() {
                return Err(err("unknown block", format!("{block}; expected 0..9")));
            }
            let branches = {
                let l = inner.loaded.borrow();
                let l = l.as_ref().ok_or_else(|| err("no model", "load weights first"))?;
                let acts = l.acts.as_ref().ok_or_else(|| err("no activations", "classify an image first"))?;
                if before {
                    let base = l.base.as_ref().ok_or_else(|| err("no activations", "no fine-tune applied"))?;
                    let x = l.input.clone().ok_or_else(|| err("no activations", "classify an image first"))?;
                    base.forward_with_activations(x).1.blocks[block].clone()
                } else {
                    acts.blocks[block].clone()
                }
            };
            let [_, _, h, w] = branches[0].dims();
            let out = js_sys::Object::new();
            let set = |o: &js_sys::Object, k: &str, v: &JsValue| js_sys::Reflect::set(o, &k.into(), v).map(|_| ());
            set(&out, "block", &BLOCK_NAMES[block].into())?;
            set(&out, "h", &(h as u32).into())?;
            set(&out, "w", &(w as u32).into())?;
            let list = js_sys::Array::new();
            // Mean squared activation of each branch: its share of the block's energy.
            let energy = read(Tensor::cat(branches.iter().map(|t| t.clone().square().mean().reshape([1])).collect(), 0)).await?;
            set(&out, "energy", &serde_wasm(&energy))?;
            let mut heat: Option<Tensor<2>> = None;
            let mut channels_total = 0;
            for (i, t) in branches.iter().enumerate() {
                let [_, c, _, _] = t.dims();
                channels_total += c;
                let means = read(t.clone().mean_dim(3).mean_dim(2).reshape([c])).await?;
                let mut idx: Vec<usize> = (0..c).collect();
                idx.sort_by(|&a, &b| means[b].total_cmp(&means[a]));
                idx.truncate(k.min(c));
                let sel = Tensor::<1, Int>::from_data(TensorData::new(idx.iter().map(|&i| i as i32).collect::<Vec<_>>(), [idx.len()]), &inner.device);
                let maps = read(t.clone().select(1, sel).flatten(0, 3)).await?;
                let sum: Tensor<2> = t.clone().sum_dim(1).reshape([h, w]);
                heat = Some(match heat {
                    Some(acc) => acc + sum,
                    None => sum,
                });
                let b = js_sys::Object::new();
                set(&b, "name", &BRANCH_NAMES[i].into())?;
                set(&b, "channels", &serde_wasm(&idx))?;
                set(&b, "means", &serde_wasm(&idx.iter().map(|&j| means[j]).collect::<Vec<_>>()))?;
                set(&b, "count", &(c as u32).into())?;
                set(&b, "maps", &Float32Array::from(maps.as_slice()).into())?;
                list.push(&b);
            }
            set(&out, "branches", &list)?;
            let heat = read(heat.expect("four branches").div_scalar(channels_total as f32).flatten(0, 1)).await?;
            set(&out, "heatmap", &Float32Array::from(heat.as_slice()).into())?;
            Ok(out.into())
        })
    }

    /// The fine-tune limits, as JSON `{max_classes, max_images_per_class, min_images_per_class}`.
    pub fn finetune_limits(&self) -> String {
        serde_json::json!({
            "max_classes": FT_MAX_CLASSES,
            "max_images_per_class": FT_MAX_IMAGES_PER_CLASS,
            "min_images_per_class": FT_MIN_IMAGES_PER_CLASS,
        })
        .to_string()
    }

    /// Forget the fine-tune images and any running fine-tune.
    pub fn finetune_reset(&self) {
        self.inner.examples.borrow_mut().clear();
        *self.inner.trainer.borrow_mut() = None;
    }

    /// Add one image to class `label` of the fine-tune set.
    pub fn finetune_add(&self, image: &[u8], label: usize) -> Result<(), JsValue> {
        if label >= FT_MAX_CLASSES {
            return Err(err("too many classes", format!("class {label}; at most {FT_MAX_CLASSES}")));
        }
        let count = self.inner.examples.borrow().iter().filter(|e| e.label == label).count();
        if count >= FT_MAX_IMAGES_PER_CLASS {
            return Err(err("too many images", format!("class {label} already has {FT_MAX_IMAGES_PER_CLASS}, the limit")));
        }
        let e = crate::train::example_from_bytes(image, label).map_err(|e| err("cannot use this image", e))?;
        self.inner.examples.borrow_mut().push(e);
        Ok(())
    }

    /// Start a fine-tune of the loaded model. `labels`: JSON array of class names;
    /// `config`: JSON `{batch, lr, aux, aux1, aux2, train: "heads"|"blocks:N"|"all",
    /// optimizer: "adam"|"sgd", seed, augment}`.
    pub fn finetune_start(&self, labels: String, config: String) -> Result<(), JsValue> {
        let labels: Vec<String> = serde_json::from_str(&labels).map_err(|e| err("labels", e))?;
        if labels.len() < 2 || labels.len() > FT_MAX_CLASSES {
            return Err(err("fine-tune", format!("{} classes; need 2 to {FT_MAX_CLASSES}", labels.len())));
        }
        let c: serde_json::Value = serde_json::from_str(&config).map_err(|e| err("config", e))?;
        let num = |k: &str, d: f64| c.get(k).and_then(|v| v.as_f64()).unwrap_or(d);
        let cfg = FinetuneConfig {
            batch: num("batch", 8.0) as usize,
            lr: num("lr", 1e-3),
            aux: c.get("aux").and_then(|v| v.as_bool()).unwrap_or(true),
            aux_weights: [num("aux1", 0.3) as f32, num("aux2", 0.3) as f32],
            trainable: Trainable::parse(c.get("train").and_then(|v| v.as_str()).unwrap_or("heads")).map_err(|e| err("config", e))?,
            optimizer: if c.get("optimizer").and_then(|v| v.as_str()) == Some("sgd") { OptimizerKind::Sgd } else { OptimizerKind::Adam },
            seed: num("seed", 0.0) as u64,
            augment: c.get("augment").and_then(|v| v.as_bool()).unwrap_or(true),
        };
        let examples = self.inner.examples.borrow().clone();
        for (i, name) in labels.iter().enumerate() {
            let n = examples.iter().filter(|e| e.label == i).count();
            if n < FT_MIN_IMAGES_PER_CLASS {
                return Err(err("fine-tune", format!("class `{name}` has {n} images; at least {FT_MIN_IMAGES_PER_CLASS} needed")));
            }
        }
        let model = {
            let l = self.inner.loaded.borrow();
            l.as_ref().ok_or_else(|| err("no model", "load weights first"))?.model.clone()
        };
        let t = Trainer::new(model, examples, labels, cfg, &self.inner.device).map_err(|e| err("fine-tune", e))?;
        *self.inner.trainer.borrow_mut() = Some(t);
        Ok(())
    }

    /// One training step. Resolves to the step's JSON report `{step, loss, main, aux1, aux2,
    /// acc, ms}`. On failure the trainer keeps its last good weights.
    pub fn finetune_step(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let mut t = inner.trainer.borrow_mut().take().ok_or_else(|| err("fine-tune", "not started"))?;
            let before = t.training_model().clone();
            let r = t.step().await;
            let out = match r {
                Ok(rep) => Ok(JsValue::from_str(&serde_json::to_string(&rep).expect("serialisable"))),
                Err(e) => {
                    t.restore(before);
                    Err(err("training step failed", e))
                }
            };
            *inner.trainer.borrow_mut() = Some(t);
            out
        })
    }

    /// Main, aux1 and aux2 predictions of the model being trained for one image, as JSON
    /// `{main: [..], aux1: [..], aux2: [..]}` (top 3 each).
    pub fn finetune_predict(&self, image: Vec<u8>) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let t = inner.trainer.borrow_mut().take().ok_or_else(|| err("fine-tune", "not started"))?;
            let labels = t.labels().to_vec();
            let variant = t.training_model().variant;
            let r = match preprocess::prepare(&image, variant) {
                Ok(p) => t.predict(p.chw).await.map_err(|e| err("prediction failed", e)),
                Err(e) => Err(err("cannot use this image", e)),
            };
            *inner.trainer.borrow_mut() = Some(t);
            let [main, aux1, aux2] = r?;
            let top = |p: &[f32]| {
                let mut idx: Vec<usize> = (0..p.len()).collect();
                idx.sort_by(|&a, &b| p[b].total_cmp(&p[a]));
                idx.into_iter().take(3).map(|i| Prediction { index: i, label: labels[i].clone(), prob: p[i] }).collect::<Vec<_>>()
            };
            let out = serde_json::json!({"main": top(&main), "aux1": top(&aux1), "aux2": top(&aux2)});
            Ok(JsValue::from_str(&out.to_string()))
        })
    }

    /// Make the fine-tuned model the one that classifies (and whose blocks the explorer
    /// shows). Returns the same JSON as `load_weights`.
    pub fn finetune_apply(&self) -> Result<String, JsValue> {
        let (model, labels, aux) = {
            let t = self.inner.trainer.borrow();
            let t = t.as_ref().ok_or_else(|| err("fine-tune", "not started"))?;
            (t.model(), t.labels().to_vec(), t.config().aux)
        };
        let variant = model.variant;
        let report = LoadReport {
            variant,
            num_classes: labels.len(),
            scheme: weights::KeyScheme::Pytorch,
            loaded: weights::expected_keys(&model).len(),
            aux_fresh: !aux,
            labels: Some(labels),
        };
        // Keep the model the fine-tune started from (the first one, over repeated applies).
        let base = {
            let l = self.inner.loaded.borrow();
            l.as_ref().map(|l| l.base.clone().unwrap_or_else(|| l.model.clone()))
        };
        self.install(model, report, "", base)
    }

    /// The loaded (e.g. fine-tuned) model as the project's safetensors, with its class names.
    pub fn export_weights(&self) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            let (model, labels, aux_fresh) = {
                let l = inner.loaded.borrow();
                let l = l.as_ref().ok_or_else(|| err("no model", "load weights first"))?;
                (l.model.clone(), l.labels.clone(), l.report.aux_fresh)
            };
            let mut tensors = Vec::new();
            for (k, shape, t) in weights::named_tensors(&model) {
                tensors.push((k, shape, read(t).await?));
            }
            let info = SaveInfo { labels: Some(labels), aux_trained: !aux_fresh };
            let bytes = weights::write_safetensors(&model, tensors, &info);
            Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
        })
    }
}

impl Session {
    fn install(&self, model: GoogLeNet, report: LoadReport, labels: &str, base: Option<GoogLeNet>) -> Result<String, JsValue> {
        let mut names = report.labels.clone().unwrap_or_default();
        if names.is_empty() {
            names = parse_labels(&labels);
        }
        if names.len() != report.num_classes {
            names = (0..report.num_classes).map(|i| format!("class {i}")).collect();
        }
        let js = ReportJs {
            variant: report.variant.name(),
            num_classes: report.num_classes,
            tensors: report.loaded,
            aux_fresh: report.aux_fresh,
            has_aux: model.has_aux(),
            transform_input: model.transform_input,
            labels_from_file: report.labels.is_some(),
            has_base: base.is_some(),
            summary: model.summary(preprocess::INPUT_SIZE),
        };
        let out = serde_json::to_string(&js).expect("serialisable");
        *self.inner.loaded.borrow_mut() = Some(Loaded { model, report, labels: names, acts: None, input: None, base });
        Ok(out)
    }
}

fn serde_wasm<T: Serialize>(v: &T) -> JsValue {
    js_sys::JSON::parse(&serde_json::to_string(v).expect("serialisable")).expect("valid JSON")
}
