//! The wasm-bindgen facade: the only code the Web Worker calls. Bytes and plain JS values in
//! (`serde-wasm-bindgen` into the library's types), plain JS values out; every error carries a
//! `kind` (`input`, `device`, `internal`) that the worker switches on. Each method converts its
//! arguments, calls [`session::Session`] (where the rules are, and native tests reach them) and
//! converts the answer; nothing else happens here.

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasm_bindgen::prelude::*;

use crate::error::{Error, ErrorKind};
use crate::explain::Head;
use crate::model::Variant;
use crate::preprocess;
use crate::session::{self, Backend, Image};
use crate::train::{FinetuneConfig, Setting};

#[cfg(not(any(feature = "engine-cpu", feature = "engine-webgpu")))]
compile_error!(
    "a browser build needs one engine feature: engine-cpu, engine-threads or engine-webgpu"
);

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

/// The one way out of every method: a library result as a plain JS value (maps as plain
/// objects, so the page reads fields, not Map entries), or its error as a JS `Error` with its
/// kind.
fn reply<T: Serialize>(r: Result<T, impl Into<Error>>) -> Result<JsValue, JsValue> {
    let v = r.map_err(|e| js_error(e.into()))?;
    let s = serde_wasm_bindgen::Serializer::json_compatible();
    v.serialize(&s)
        .map_err(|e| js_error(Error::Request(format!("serialising a result: {e}"))))
}

/// A JS value as `T`, or a request error worded by `refused` (given the value as text).
fn arg<T: DeserializeOwned>(
    v: JsValue,
    refused: impl FnOnce(&str) -> String,
) -> Result<T, JsValue> {
    serde_wasm_bindgen::from_value(v.clone()).map_err(|_| {
        let text = v.as_string().unwrap_or_else(|| format!("{v:?}"));
        js_error(Error::Request(refused(&text)))
    })
}

/// An image as the worker hands it over: `{bytes}` (a file, decoded in Rust as the CLI does)
/// or `{rgba, width, height}` (pixels the browser decoded).
#[derive(serde::Deserialize)]
#[serde(untagged)]
enum ImageInput {
    Pixels {
        rgba: serde_bytes::ByteBuf,
        width: u32,
        height: u32,
    },
    File {
        bytes: serde_bytes::ByteBuf,
    },
}

fn image(v: JsValue) -> Result<Image, JsValue> {
    let input = serde_wasm_bindgen::from_value(v)
        .map_err(|e| js_error(Error::Request(format!("image: {e}"))))?;
    Ok(match input {
        ImageInput::File { bytes } => Image::File(bytes.into_vec()),
        ImageInput::Pixels {
            rgba,
            width,
            height,
        } => Image::Pixels {
            rgba: rgba.into_vec(),
            width,
            height,
        },
    })
}

/// One model on one device. Create it once per worker (WebGPU can be initialised only once).
#[wasm_bindgen]
pub struct Session {
    inner: session::Session,
}

#[wasm_bindgen]
impl Session {
    /// `backend`: `"webgpu"` (burn's wgpu backend, in the WebGPU build) or `"cpu"` (burn-flex,
    /// in the CPU builds). Each build has one engine; asking for the other is an error that
    /// names the build to load instead.
    pub async fn create(backend: JsValue) -> Result<Session, JsValue> {
        let backend: Backend = arg(backend, |v| {
            format!("unknown backend `{v}`; expected webgpu or cpu")
        })?;
        let device = match backend {
            #[cfg(feature = "engine-webgpu")]
            Backend::Webgpu => burn::tensor::Device::wgpu_options()
                .init_async()
                .await
                .map_err(|e| {
                    js_error(Error::Device(format!(
                        "WebGPU initialisation failed: {e:?}"
                    )))
                })?,
            #[cfg(feature = "engine-cpu")]
            Backend::Cpu => burn::tensor::Device::flex(),
            // (The arm for this build's own backend comes first.)
            #[allow(unreachable_patterns)]
            other => {
                let other = other.name();
                return Err(js_error(Error::Request(format!(
                    "this is the {ENGINE} engine build; the `{other}` backend is in another build"
                ))));
            }
        };
        let inner = session::Session::new(device, backend)
            .await
            .map_err(js_error)?;
        Ok(Session { inner })
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
        self.inner.backend().name().to_string()
    }

    /// Load a safetensors file; `variant` may be empty to take it from the file; `labels` is a
    /// synset_words.txt-style list (may be empty). Returns the model info.
    pub fn load_weights(
        &self,
        bytes: &[u8],
        variant: JsValue,
        labels: String,
    ) -> Result<JsValue, JsValue> {
        let variant: Option<Variant> = match variant.as_string().as_deref() {
            Some("") => None,
            _ => Some(arg(variant, |v| format!("unknown variant `{v}`"))?),
        };
        reply(self.inner.load_weights(bytes, variant, &labels))
    }

    /// Classify an image (`{bytes}` or `{rgba, width, height}`): top `top` of the main head
    /// and, when trained, of the aux heads, in one forward pass.
    pub async fn classify(&self, image: JsValue, top: usize) -> Result<JsValue, JsValue> {
        reply(self.inner.classify(self::image(image)?, top).await)
    }

    /// Where a forward's time goes on the last classified image, as `[{stage, ms}]`. For
    /// `bench/browser.mjs`, as `googlenet bench --layers` natively.
    pub async fn stage_times(&self, iters: usize) -> Result<JsValue, JsValue> {
        reply(self.inner.stage_times(iters).await)
    }

    /// One block's four branches on the last image (see `block_view::BlockView`); with
    /// `before`, from the model a fine-tune started from.
    pub async fn block_view(
        &self,
        block: usize,
        k: usize,
        before: bool,
    ) -> Result<JsValue, JsValue> {
        reply(self.inner.block_view(block, k, before).await)
    }

    /// Grad-CAM on the last classified image for `class` under `head` (`main`, `aux1`,
    /// `aux2`) at block `block`. Resolves to an `explain::Explanation`.
    pub async fn explain(
        &self,
        class: usize,
        block: usize,
        head: JsValue,
    ) -> Result<JsValue, JsValue> {
        let head: Head = arg(head, |h| {
            format!("unknown head `{h}`; expected main, aux1 or aux2")
        })?;
        reply(self.inner.explain(class, block, head).await)
    }

    /// The fine-tune's limits and default settings.
    pub fn finetune_settings(&self) -> Result<JsValue, JsValue> {
        reply(Ok::<_, Error>(session::Session::finetune_settings()))
    }

    /// Add a class; returns its id (stable while other classes come and go).
    pub fn ft_add_class(&self, name: String) -> Result<u32, JsValue> {
        self.inner.ft_add_class(&name).map_err(js_error)
    }

    pub fn ft_rename(&self, id: u32, name: String) -> Result<(), JsValue> {
        self.inner.ft_rename(id, &name).map_err(js_error)
    }

    pub fn ft_remove_class(&self, id: u32) -> Result<(), JsValue> {
        self.inner.ft_remove_class(id).map_err(js_error)
    }

    /// Add one image (`{bytes}` or `{rgba, width, height}`) to class `id`; returns the class's
    /// image count.
    pub fn ft_add_image(&self, id: u32, image: JsValue) -> Result<usize, JsValue> {
        self.inner
            .ft_add_image(id, self::image(image)?)
            .map_err(js_error)
    }

    /// The classes as the worker holds them: `[{id, name, images}]`.
    pub fn ft_classes(&self) -> Result<JsValue, JsValue> {
        reply(Ok::<_, Error>(self.inner.ft_classes()))
    }

    /// Start a fine-tune of the model in use on the classes so far. `config` is a
    /// `FinetuneConfig` object; unknown fields or values are refused.
    pub fn ft_start(&self, config: JsValue) -> Result<(), JsValue> {
        // Read as plain values first, so that a refusal names the value it got.
        let settings: std::collections::BTreeMap<String, Setting> =
            serde_wasm_bindgen::from_value(config)
                .map_err(|e| js_error(Error::Request(format!("fine-tune settings: {e}"))))?;
        let cfg = FinetuneConfig::from_settings(settings.iter().map(|(k, v)| (k.as_str(), v)))
            .map_err(|e| js_error(e.into()))?;
        self.inner.ft_start(cfg).map_err(js_error)
    }

    /// Heads-only features for the next `n` missing views, ahead of a run; `{ready, wanted}`.
    pub async fn ft_precompute(&self, views: u8, n: usize) -> Result<JsValue, JsValue> {
        reply(self.inner.ft_precompute(views, n).await)
    }

    /// One training step; resolves to its report. On failure the trainer keeps its last good
    /// weights.
    pub async fn ft_step(&self) -> Result<JsValue, JsValue> {
        reply(self.inner.ft_step().await)
    }

    /// Main, aux1 and aux2 predictions (top 3 each) of the model being trained for one image
    /// (`{bytes}` or `{rgba, width, height}`).
    pub async fn ft_predict(&self, image: JsValue) -> Result<JsValue, JsValue> {
        reply(self.inner.ft_predict(self::image(image)?).await)
    }

    /// Make the fine-tuned model the one that classifies. Returns the model info.
    pub fn ft_apply(&self) -> Result<JsValue, JsValue> {
        reply(self.inner.ft_apply())
    }

    /// The model in use (e.g. fine-tuned) as the project's safetensors, with its class names.
    pub async fn export_weights(&self) -> Result<JsValue, JsValue> {
        let bytes = self.inner.export_weights().await.map_err(js_error)?;
        Ok(js_sys::Uint8Array::from(bytes.as_slice()).into())
    }
}
