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
use crate::weights::{self, LoadOptions, LoadReport};

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
}

struct Inner {
    device: Device,
    backend: &'static str,
    loaded: RefCell<Option<Loaded>>,
}

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
    summary: crate::model::summary::Summary,
}

#[derive(Serialize)]
struct ClassifyJs {
    top: Vec<Prediction>,
    aux1: Option<Vec<Prediction>>,
    aux2: Option<Vec<Prediction>>,
    /// Mean squared activation of each block's four branches (the branch's share of the
    /// block's activation energy), per block in order 3a … 5b.
    energy: Vec<[f32; 4]>,
    ms_preprocess: f64,
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
            let inner = Rc::new(Inner { device, backend, loaded: RefCell::new(None) });
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
            summary: model.summary(preprocess::INPUT_SIZE),
        };
        let out = serde_json::to_string(&js).expect("serialisable");
        *self.inner.loaded.borrow_mut() = Some(Loaded { model, report, labels: names, acts: None });
        Ok(out)
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
            let (logits, acts) = model.forward_with_activations(x.clone());
            let logits = read(logits.flatten(0, 1)).await?;
            let (aux1, aux2) = if aux_trained {
                let out = model.forward_train(x);
                let a1 = read(out.aux1.expect("has aux").flatten(0, 1)).await?;
                let a2 = read(out.aux2.expect("has aux").flatten(0, 1)).await?;
                (Some(top_k(&a1, top, &labels)), Some(top_k(&a2, top, &labels)))
            } else {
                (None, None)
            };
            // Per-branch energy of every block, in one read.
            let energies: Vec<Tensor<1>> = acts
                .blocks
                .iter()
                .flat_map(|b| b.iter().map(|t| t.clone().square().mean().reshape([1])))
                .collect();
            let e = read(Tensor::cat(energies, 0)).await?;
            let t2 = now();
            let energy = e.chunks(4).map(|c| [c[0], c[1], c[2], c[3]]).collect();
            let out = ClassifyJs {
                top: top_k(&logits, top, &labels),
                aux1,
                aux2,
                energy,
                ms_preprocess: t1 - t0,
                ms_forward: t2 - t1,
            };
            if let Some(l) = inner.loaded.borrow_mut().as_mut() {
                l.acts = Some(acts);
            }
            Ok(JsValue::from_str(&serde_json::to_string(&out).expect("serialisable")))
        })
    }

    /// Feature maps of one block's four branches for the last image: for each branch, the
    /// `k` channels with the highest mean activation. Resolves to an object
    /// `{ block, h, w, branches: [{ name, channels: [..], means: [..], maps: Float32Array }],
    ///    heatmap: Float32Array }` where `maps` is `k × h × w` and `heatmap` (`h × w`) is the
    /// block output's mean over all channels.
    pub fn block_view(&self, block: usize, k: usize) -> Promise {
        let inner = self.inner.clone();
        future_to_promise(async move {
            if block >= BLOCK_NAMES.len() {
                return Err(err("unknown block", format!("{block}; expected 0..9")));
            }
            let branches = {
                let l = inner.loaded.borrow();
                let acts = l.as_ref().and_then(|l| l.acts.as_ref()).ok_or_else(|| err("no activations", "classify an image first"))?;
                acts.blocks[block].clone()
            };
            let [_, _, h, w] = branches[0].dims();
            let out = js_sys::Object::new();
            let set = |o: &js_sys::Object, k: &str, v: &JsValue| js_sys::Reflect::set(o, &k.into(), v).map(|_| ());
            set(&out, "block", &BLOCK_NAMES[block].into())?;
            set(&out, "h", &(h as u32).into())?;
            set(&out, "w", &(w as u32).into())?;
            let list = js_sys::Array::new();
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
}

fn serde_wasm<T: Serialize>(v: &T) -> JsValue {
    js_sys::JSON::parse(&serde_json::to_string(v).expect("serialisable")).expect("valid JSON")
}
