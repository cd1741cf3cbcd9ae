//! Weight files in and out: the one place that knows tensor key names.
//!
//! Three naming schemes meet here:
//! - **Caffe** (`conv1/7x7_s2.weight`, `inception_3a/5x5_reduce.bias`, `loss3/classifier.*`):
//!   the BVLC release converted to safetensors (`../shared/weights`).
//! - **PyTorch** state-dict keys (`conv1.conv.weight`, `inception3a.branch2.0.bn.running_var`,
//!   `aux1.fc2.weight`, `fc.weight`): torchvision's `GoogLeNet` and the seed tutorial model.
//! - **Project** files are safetensors with the PyTorch keys for every variant (so PyTorch can
//!   read them back), plus metadata: `googlenet.variant`, `googlenet.num_classes`,
//!   `googlenet.transform_input`, `googlenet.aux_trained`, `googlenet.labels` (JSON array).
//!
//! Conv weights are OIHW and linear weights (out, in) in all three; burn's `Linear` stores
//! (in, out), so linear weights are transposed at this boundary.

use std::collections::{BTreeMap, BTreeSet};

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};

use crate::labels::{LabelError, check_labels};
use crate::model::basic_conv::BasicConv2d;
use crate::model::{GoogLeNet, GoogLeNetConfig, Inception, STAGES, Stage, Variant};
use crate::rng::SplitMix64;
use crate::text::count;

/// The largest weights file the CLI reads (checked before reading): the float32 BVLC release is
/// 28 MB, torchvision's with its aux heads 52 MB, and the same in float64 105 MB.
pub const MAX_FILE_BYTES: u64 = 256_000_000;

/// Everything that can be wrong with a weights file, each naming what was expected.
#[derive(Debug, thiserror::Error)]
pub enum WeightsError {
    #[error("cannot read {path}: {message}")]
    Io { path: String, message: String },
    /// The file itself: not a regular file, too large, unreadable.
    #[cfg(not(target_family = "wasm"))]
    #[error(transparent)]
    File(#[from] crate::files::FileError),
    #[error("not a valid safetensors file: {0}")]
    Safetensors(String),
    #[error("not a readable PyTorch checkpoint: {0}")]
    Pytorch(String),
    #[error("tensor `{key}` has dtype {dtype}; expected a floating-point tensor (F32, F16, BF16 or F64)")]
    DType { key: String, dtype: String },
    #[error("the weights file is empty: no tensors found")]
    Empty,
    #[error("the weights are for the `{found}` variant ({why}), but `{requested}` was requested")]
    WrongVariant { found: Variant, requested: Variant, why: String },
    #[error("missing tensor `{key}` (expected shape {expected:?}) for the `{variant}` network")]
    Missing { key: String, expected: Vec<usize>, variant: Variant },
    #[error("tensor `{key}` has shape {found:?}, expected {expected:?}")]
    Shape { key: String, found: Vec<usize>, expected: Vec<usize> },
    #[error("{} tensor(s) in the file are not part of the `{variant}` network: {}", keys.len(), keys.join(", "))]
    Unknown { keys: Vec<String>, variant: Variant },
    #[error("the classifier has {} (`{key}` is {shape:?}), but {} were requested", count(*found, "class", "classes"), count(*requested, "class", "classes"))]
    ClassCount { key: String, shape: Vec<usize>, found: usize, requested: usize },
    #[error("cannot find the classifier (`fc.weight` or `loss3/classifier.weight`) in the weights file")]
    NoClassifier,
    #[error("this is a PyTorch checkpoint (.pth), which the page cannot read; convert it first with `googlenet convert --from FILE.pth --to FILE.safetensors`")]
    NeedsConversion,
    #[error("bad metadata `{key}`: {message}")]
    Metadata { key: String, message: String },
    /// A class name that cannot be saved or shown (blank, control characters, too long).
    #[error("bad metadata `googlenet.labels`: {0}")]
    Label(#[from] LabelError),
    #[error("{}", non_finite_message(key, *index, *value))]
    NonFinite { key: String, index: usize, value: f64 },
    #[error("tensor `{key}` holds {value} at index {index}, beyond float16's range (±65504); keep this model in F32")]
    HalfRange { key: String, index: usize, value: f32 },
}

fn non_finite_message(key: &str, index: usize, value: f64) -> String {
    let (shown, why) = if value.is_nan() {
        ("NaN".to_string(), "every weight must be a finite number")
    } else if value.is_infinite() {
        (if value > 0.0 { "+Inf" } else { "-Inf" }.to_string(), "every weight must be a finite number")
    } else {
        (format!("{value:e}"), "every weight must be a finite number within f32's range, |x| < 3.4e38")
    };
    format!("tensor `{key}` holds {shown} at element {index}: the file is damaged ({why})")
}

/// A float tensor as it sits in a file, converted to f32.
#[derive(Debug, Clone, PartialEq)]
pub struct RawTensor {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

/// A file's tensors by key, plus its string metadata.
#[derive(Debug, Clone, Default)]
pub struct TensorMap {
    pub tensors: BTreeMap<String, RawTensor>,
    pub metadata: BTreeMap<String, String>,
}

/// Which scheme a file's keys follow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyScheme {
    Caffe,
    Pytorch,
}

/// What loading reports besides the model.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub variant: Variant,
    pub num_classes: usize,
    pub scheme: KeyScheme,
    /// Tensors copied into the model.
    pub loaded: usize,
    /// True when the file had no aux heads and they were freshly initialised.
    pub aux_fresh: bool,
    /// Class names stored in the file's metadata (fine-tuned files), if any.
    pub labels: Option<Vec<String>>,
}

/// Options for [`load_model`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The variant the caller wants; `None` accepts what the file says or implies.
    pub variant: Option<Variant>,
    /// A class count the caller insists on; `None` takes it from the classifier's shape.
    pub num_classes: Option<usize>,
    /// Override torchvision's `transform_input` (otherwise from metadata, else false).
    pub transform_input: Option<bool>,
}

// ---------------------------------------------------------------------------------------
// Key names

/// Caffe names of the stem convs, by PyTorch module name.
const CAFFE_STEM: [(&str, &str); 3] = [("conv1", "conv1/7x7_s2"), ("conv2", "conv2/3x3_reduce"), ("conv3", "conv2/3x3")];
/// Caffe names of an Inception block's convs, in the order of `Inception`'s fields.
const CAFFE_BRANCH: [(&str, &str); 6] = [
    ("branch1", "1x1"),
    ("branch2.0", "3x3_reduce"),
    ("branch2.1", "3x3"),
    ("branch3.0", "5x5_reduce"),
    ("branch3.1", "5x5"),
    ("branch4.1", "pool_proj"),
];
/// Caffe's train_val names of the aux heads' layers (`loss1/*` after 4a, `loss2/*` after 4d).
const CAFFE_AUX: [(&str, &str); 3] = [("conv.conv", "conv"), ("fc1", "fc"), ("fc2", "classifier")];

/// Translate a PyTorch key to Caffe's name, or `None` for tensors Caffe does not have
/// (BatchNorm).
pub fn caffe_key(pytorch_key: &str) -> Option<String> {
    let (module, param) = pytorch_key.rsplit_once('.')?;
    if !matches!(param, "weight" | "bias") {
        return None;
    }
    let layer = if let Some(m) = module.strip_suffix(".conv") {
        if let Some((_, c)) = CAFFE_STEM.iter().find(|(p, _)| *p == m) {
            c.to_string()
        } else if let Some(rest) = m.strip_prefix("inception") {
            let (block, branch) = rest.split_once('.')?;
            let (_, c) = CAFFE_BRANCH.iter().find(|(p, _)| *p == branch)?;
            format!("inception_{block}/{c}")
        } else {
            aux_caffe(module)?
        }
    } else if module == "fc" {
        "loss3/classifier".to_string()
    } else {
        aux_caffe(module)?
    };
    Some(format!("{layer}.{param}"))
}

fn aux_caffe(module: &str) -> Option<String> {
    let (head, rest) = module.split_once('.')?;
    let n = match head {
        "aux1" => 1,
        "aux2" => 2,
        _ => return None,
    };
    let (_, c) = CAFFE_AUX.iter().find(|(p, _)| *p == rest)?;
    Some(format!("loss{n}/{c}"))
}

// ---------------------------------------------------------------------------------------
// Walking the model's parameters by PyTorch key

/// A parameter slot of the model.
enum Slot<'a> {
    Conv(&'a mut Param<Tensor<4>>),
    /// burn layout (in, out); files hold (out, in).
    Linear(&'a mut Param<Tensor<2>>),
    Vector(&'a mut Param<Tensor<1>>),
    Running(&'a mut RunningState<Tensor<1>>),
}

impl Slot<'_> {
    /// Shape as the files store it. Read without initialising a lazy parameter: a fresh model's
    /// random initial values (7M for BVLC, 6M more for new aux heads) would be drawn only to be
    /// replaced by the file's, which was most of a page start's weight loading.
    fn file_shape(&self) -> Vec<usize> {
        match self {
            Slot::Conv(p) => p.lazy_shape().dims::<4>().to_vec(),
            Slot::Linear(p) => {
                let [i, o] = p.lazy_shape().dims::<2>();
                vec![o, i]
            }
            Slot::Vector(p) => p.lazy_shape().dims::<1>().to_vec(),
            Slot::Running(r) => r.value().dims().to_vec(),
        }
    }

    fn set(self, t: &RawTensor, device: &Device) {
        let data = |shape: Vec<usize>| TensorData::new(t.data.clone(), shape);
        match self {
            Slot::Conv(p) => *p = Param::from_tensor(Tensor::from_data(data(t.shape.clone()), device)),
            Slot::Linear(p) => {
                // Transpose on the host: a contiguous (in, out) matrix, as burn's own init
                // makes, so a saved and reloaded model computes bit for bit the same.
                let (o, i) = (t.shape[0], t.shape[1]);
                let mut w = vec![0f32; o * i];
                for r in 0..o {
                    for c in 0..i {
                        w[c * o + r] = t.data[r * i + c];
                    }
                }
                *p = Param::from_tensor(Tensor::from_data(TensorData::new(w, [i, o]), device));
            }
            Slot::Vector(p) => *p = Param::from_tensor(Tensor::from_data(data(t.shape.clone()), device)),
            Slot::Running(r) => *r = RunningState::new(Tensor::from_data(data(t.shape.clone()), device)),
        }
    }

    /// The value in file layout, flattened (read it with `into_data` / `into_data_async`).
    fn flat(self) -> Tensor<1> {
        match self {
            Slot::Conv(p) => p.val().flatten(0, 3),
            Slot::Linear(p) => p.val().transpose().flatten(0, 1),
            Slot::Vector(p) => p.val(),
            Slot::Running(r) => r.value(),
        }
    }
}

fn visit_conv(prefix: &str, c: &mut BasicConv2d, f: &mut dyn FnMut(String, Slot<'_>)) {
    f(format!("{prefix}.conv.weight"), Slot::Conv(&mut c.conv.weight));
    if let Some(b) = &mut c.conv.bias {
        f(format!("{prefix}.conv.bias"), Slot::Vector(b));
    }
    if let Some(bn) = &mut c.bn {
        f(format!("{prefix}.bn.weight"), Slot::Vector(&mut bn.gamma));
        f(format!("{prefix}.bn.bias"), Slot::Vector(&mut bn.beta));
        f(format!("{prefix}.bn.running_mean"), Slot::Running(&mut bn.running_mean));
        f(format!("{prefix}.bn.running_var"), Slot::Running(&mut bn.running_var));
    }
}

fn visit_linear(prefix: &str, l: &mut burn::nn::Linear, f: &mut dyn FnMut(String, Slot<'_>)) {
    f(format!("{prefix}.weight"), Slot::Linear(&mut l.weight));
    if let Some(b) = &mut l.bias {
        f(format!("{prefix}.bias"), Slot::Vector(b));
    }
}

fn visit_block(prefix: &str, b: &mut Inception, f: &mut dyn FnMut(String, Slot<'_>)) {
    let convs = [
        &mut b.branch1, &mut b.branch2_reduce, &mut b.branch2, &mut b.branch3_reduce,
        &mut b.branch3, &mut b.branch4,
    ];
    for ((name, _), c) in CAFFE_BRANCH.iter().zip(convs) {
        visit_conv(&format!("{prefix}.{name}"), c, f);
    }
}

/// Every parameter (and BatchNorm running statistic) of the model, by PyTorch key, in
/// stage order.
fn visit(model: &mut GoogLeNet, f: &mut dyn FnMut(String, Slot<'_>)) {
    for stage in STAGES {
        let name = stage.name();
        match stage {
            Stage::Conv1 => visit_conv(name, &mut model.conv1, f),
            Stage::Conv2 => visit_conv(name, &mut model.conv2, f),
            Stage::Conv3 => visit_conv(name, &mut model.conv3, f),
            // PyTorch's module is `inception3a` where Caffe's layer is `inception_3a`.
            Stage::Block(i) => visit_block(&name.replace('_', ""), &mut model.blocks[i], f),
            _ => {}
        }
    }
    for (name, aux) in [("aux1", &mut model.aux1), ("aux2", &mut model.aux2)] {
        if let Some(a) = aux {
            visit_conv(&format!("{name}.conv"), &mut a.conv, f);
            visit_linear(&format!("{name}.fc1"), &mut a.fc1, f);
            visit_linear(&format!("{name}.fc2"), &mut a.fc2, f);
        }
    }
    visit_linear("fc", &mut model.fc, f);
}

/// The model's keys and file-layout shapes, in walk order.
pub fn expected_keys(model: &GoogLeNet) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    visit(&mut model.clone(), &mut |k, s| out.push((k, s.file_shape())));
    out
}

/// The model's tensors in file layout, flattened, by PyTorch key. Read each with
/// `into_data()` natively or `into_data_async()` on wasm, then [`write_safetensors`].
pub fn named_tensors(model: &GoogLeNet) -> Vec<(String, Vec<usize>, Tensor<1>)> {
    let mut out = Vec::new();
    visit(&mut model.clone(), &mut |k, s| {
        let shape = s.file_shape();
        out.push((k, shape, s.flat()))
    });
    out
}

// ---------------------------------------------------------------------------------------
// Reading files

/// Decode safetensors bytes (any float dtype, converted to f32).
///
/// The container is parsed and validated by the `safetensors` crate, the format's reference
/// implementation: a well-formed header, and tensor byte ranges that tile the data section
/// exactly (no gap, no overlap, nothing after the last tensor, each range the size its shape
/// and dtype need). When it refuses a file, the header is looked at again to say precisely
/// what is wrong. Then every tensor must have a float dtype and every value must be finite.
pub fn read_safetensors(bytes: &[u8]) -> Result<TensorMap, WeightsError> {
    let (header_len, meta) =
        safetensors::SafeTensors::read_metadata(bytes).map_err(|e| explain_safetensors(bytes, e))?;
    let data = &bytes[8 + header_len..];
    let mut map = TensorMap::default();
    if let Some(m) = meta.metadata() {
        map.metadata.extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // In file order, so that of several bad tensors the first in the file is named.
    for key in meta.offset_keys() {
        let info = meta.info(&key).expect("offset_keys lists the header's tensors");
        let Some(dtype) = float_dtype(info.dtype) else {
            return Err(WeightsError::DType { key, dtype: format!("{:?}", info.dtype) });
        };
        let (start, end) = info.data_offsets;
        let values = decode_floats(&data[start..end], dtype, &key)?;
        map.tensors.insert(key, RawTensor { shape: info.shape.clone(), data: values });
    }
    if map.tensors.is_empty() {
        return Err(WeightsError::Empty);
    }
    Ok(map)
}

/// Our name for an accepted (floating-point) dtype.
fn float_dtype(d: safetensors::Dtype) -> Option<&'static str> {
    use safetensors::Dtype;
    match d {
        Dtype::F32 => Some("F32"),
        Dtype::F16 => Some("F16"),
        Dtype::BF16 => Some("BF16"),
        Dtype::F64 => Some("F64"),
        _ => None,
    }
}

/// Safetensors' own limit on the header's size.
const MAX_HEADER: usize = 100_000_000;

/// Turn the `safetensors` crate's refusal into a message that says what was expected, by
/// reading the header again where the crate's error does not carry the details.
fn explain_safetensors(bytes: &[u8], e: safetensors::SafeTensorError) -> WeightsError {
    let bad = |m: String| WeightsError::Safetensors(m);
    if bytes.len() < 8 {
        return bad(format!(
            "{} bytes is too short for a header (a safetensors file starts with an 8-byte header length)",
            bytes.len()
        ));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let room = (bytes.len() - 8) as u64;
    if n > room {
        return bad(format!("header length {n} exceeds the file size {} (truncated or not safetensors)", bytes.len()));
    }
    if n > MAX_HEADER as u64 {
        return bad(format!("header length {n} exceeds safetensors' limit of {MAX_HEADER} bytes"));
    }
    let header = &bytes[8..8 + n as usize];
    let data_len = bytes.len() - 8 - n as usize;
    let json = match std::str::from_utf8(header).map_err(|e| e.to_string()).and_then(|s| {
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s).map_err(|e| e.to_string())
    }) {
        Ok(j) => j,
        Err(msg) => {
            return bad(format!(
                "the {n}-byte header is not a JSON object ({msg}): the header length is wrong or this is not a safetensors file"
            ));
        }
    };
    // Each entry as the crate reads it.
    let mut tensors = Vec::new();
    for (key, v) in &json {
        if key == "__metadata__" {
            let Some(obj) = v.as_object() else {
                return bad(format!("`__metadata__` must be a JSON object of strings, found {v}"));
            };
            if let Some((k, v)) = obj.iter().find(|(_, v)| !v.is_string()) {
                return bad(format!("metadata `{k}` must be a string, found {v}"));
            }
            continue;
        }
        if let Some(d) = v.get("dtype").and_then(|d| d.as_str())
            && serde_json::from_value::<safetensors::Dtype>(serde_json::Value::String(d.into())).is_err()
        {
            return WeightsError::DType { key: key.clone(), dtype: d.to_string() };
        }
        match serde_json::from_value::<safetensors::tensor::TensorInfo>(v.clone()) {
            Ok(info) => tensors.push((key.clone(), info)),
            Err(err) => {
                return bad(format!(
                    "tensor `{key}` must be {{\"dtype\": ..., \"shape\": [...], \"data_offsets\": [start, end]}} ({err}), found {v}"
                ));
            }
        }
    }
    // The crate's checks, in its order: ranges sorted by offset must follow each other from
    // byte 0, each as long as its shape and dtype need, the last ending at the end of the file.
    tensors.sort_by(|(ka, a), (kb, b)| a.data_offsets.cmp(&b.data_offsets).then(ka.cmp(kb)));
    let mut end = 0usize;
    let mut prev: Option<&str> = None;
    for (key, info) in &tensors {
        let (s, e) = info.data_offsets;
        if e < s {
            return bad(format!("tensor `{key}` has data_offsets [{s}, {e}]: the end is before the start"));
        }
        if s != end {
            let what = if s < end { "overlap" } else { "gap" };
            let after = match prev {
                Some(p) => format!("the previous tensor `{p}` ended at {end}"),
                None => "the data section starts at 0".to_string(),
            };
            return bad(format!(
                "tensor `{key}` spans bytes {s}..{e} but {after} ({what} of {} bytes): byte ranges must tile the data section without gaps or overlaps",
                s.abs_diff(end)
            ));
        }
        let dtype = format!("{:?}", info.dtype);
        let bits = info.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)).and_then(|n| n.checked_mul(info.dtype.bitsize()));
        let Some(bits) = bits else {
            return bad(format!("tensor `{key}` has shape {:?}: its size overflows", info.shape));
        };
        if bits % 8 != 0 {
            return WeightsError::DType { key: key.clone(), dtype };
        }
        if e - s != bits / 8 {
            return bad(format!(
                "tensor `{key}` ({dtype} {:?}) spans bytes {s}..{e}, {} bytes, but its shape and dtype need {} bytes",
                info.shape,
                e - s,
                bits / 8
            ));
        }
        end = e;
        prev = Some(key);
    }
    if end != data_len {
        return data_len_error(data_len, end);
    }
    // Not reached for any failure we know of; keep the crate's own words.
    bad(e.to_string())
}

/// Convert raw little-endian floats to f32 and check that every value is finite (an f64 beyond
/// f32's range counts as not finite). One pass; the failure is located only on the error path.
fn decode_floats(raw: &[u8], dtype: &str, key: &str) -> Result<Vec<f32>, WeightsError> {
    fn convert<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f32) -> (Vec<f32>, bool) {
        let mut finite = true;
        let v = raw
            .chunks_exact(N)
            .map(|c| {
                let x = f(c.try_into().expect("N bytes"));
                finite &= x.is_finite();
                x
            })
            .collect();
        (v, finite)
    }
    let (values, finite) = match dtype {
        "F32" => convert::<4>(raw, f32::from_le_bytes),
        "F64" => convert::<8>(raw, |b| f64::from_le_bytes(b) as f32),
        "F16" => convert::<2>(raw, |b| half::f16::from_le_bytes(b).to_f32()),
        "BF16" => convert::<2>(raw, |b| half::bf16::from_le_bytes(b).to_f32()),
        _ => unreachable!("dtype checked by the caller"),
    };
    if !finite {
        let index = values.iter().position(|v| !v.is_finite()).expect("a non-finite value");
        // Report the value as the file holds it (an F64 overflow shows its real magnitude).
        let value = match dtype {
            "F64" => f64::from_le_bytes(raw[index * 8..index * 8 + 8].try_into().expect("8 bytes")),
            _ => values[index] as f64,
        };
        return Err(WeightsError::NonFinite { key: key.to_string(), index, value });
    }
    Ok(values)
}

/// Read a PyTorch `.pth` state dict (native only: the reader needs a file).
#[cfg(not(target_family = "wasm"))]
pub fn read_pytorch(path: &std::path::Path) -> Result<TensorMap, WeightsError> {
    use burn_store::pytorch_reader::DType;
    let reader = match burn_store::pytorch::PytorchReader::new(path) {
        Ok(r) => r,
        Err(e) => {
            // zip 9.8 (under burn-store's reader) rejects some archives written by
            // torch.save: torch always appends zip64 end records, and with those present the
            // reader looks for the central directory at the wrong place. When the classic end
            // record is complete, the same archive without the zip64 records is standard.
            let bytes = crate::files::read(path, crate::files::WEIGHTS)?;
            let Some(fixed) = without_zip64_trailer(&bytes) else {
                return Err(WeightsError::Pytorch(e.to_string()));
            };
            // A name of this call's own: two reads at once (tests run in threads, one process)
            // must never write, read or remove each other's copy.
            static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp = std::env::temp_dir().join(format!("googlenet-{}-{call}.pth", std::process::id()));
            std::fs::write(&tmp, fixed).map_err(|e| WeightsError::Io { path: tmp.display().to_string(), message: e.to_string() })?;
            let r = burn_store::pytorch::PytorchReader::new(&tmp).map_err(|e| WeightsError::Pytorch(e.to_string()));
            std::fs::remove_file(&tmp).ok();
            r?
        }
    };
    let mut map = TensorMap::default();
    for (key, t) in reader.into_tensors() {
        let dtype = match t.dtype() {
            DType::F32 => "F32",
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F64 => "F64",
            // BatchNorm's step counter: not a parameter of inference or of our training.
            _ if key.ends_with("num_batches_tracked") => continue,
            other => return Err(WeightsError::DType { key, dtype: format!("{other:?}") }),
        };
        let raw = t.read().map_err(|e| WeightsError::Pytorch(e.to_string()))?;
        let shape = t.shape().to_vec();
        let elem = if dtype == "F64" { 8 } else if dtype == "F32" { 4 } else { 2 };
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel.and_then(|n| n.checked_mul(elem)) != Some(raw.len()) {
            return Err(WeightsError::Pytorch(format!(
                "tensor `{key}` ({dtype} {shape:?}) has {} bytes of data, not the size its shape needs",
                raw.len()
            )));
        }
        let data = decode_floats(&raw, dtype, &key)?;
        map.tensors.insert(key, RawTensor { shape, data });
    }
    if map.tensors.is_empty() {
        return Err(WeightsError::Empty);
    }
    Ok(map)
}

/// The archive with its zip64 end-of-central-directory record and locator removed, when the
/// classic end record alone describes it completely (no field saturated).
#[cfg(not(target_family = "wasm"))]
fn without_zip64_trailer(bytes: &[u8]) -> Option<Vec<u8>> {
    let rfind = |hay: &[u8], sig: &[u8]| hay.windows(sig.len()).rposition(|w| w == sig);
    let tail_start = bytes.len().saturating_sub(64 * 1024 + 22);
    let eocd = tail_start + rfind(&bytes[tail_start..], b"PK\x05\x06")?;
    let z64 = tail_start + rfind(&bytes[tail_start..eocd], b"PK\x06\x06")?;
    let rec = bytes.get(eocd..eocd + 22)?;
    let u16_at = |o: usize| u16::from_le_bytes([rec[o], rec[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(rec[o..o + 4].try_into().expect("4 bytes"));
    if u16_at(10) == 0xFFFF || u32_at(12) == 0xFFFF_FFFF || u32_at(16) == 0xFFFF_FFFF {
        return None;
    }
    Some([&bytes[..z64], &bytes[eocd..]].concat())
}

/// A PyTorch checkpoint is a zip (PK\x03\x04) or a legacy pickle (0x80, protocol 2…5). A
/// safetensors file can start with 0x80 too (the low byte of its header length), so the pickle
/// test applies only to bytes that are not valid safetensors.
fn is_pytorch(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || (bytes.first() == Some(&0x80) && matches!(bytes.get(1), Some(2..=5)) && read_safetensors(bytes).is_err())
}

/// Read weights from bytes (the page): safetensors. A PyTorch checkpoint is recognised and
/// refused with what to do, since its reader needs a file.
pub fn read_bytes(bytes: &[u8]) -> Result<TensorMap, WeightsError> {
    if is_pytorch(bytes) {
        return Err(WeightsError::NeedsConversion);
    }
    read_safetensors(bytes)
}

/// Read a weights file by its content: safetensors or a PyTorch checkpoint (zip or legacy
/// pickle), within [`MAX_FILE_BYTES`] and checked before it is read (`files::open`). A
/// safetensors file's header is read first: it states how long the file must be, so a file
/// with bytes after its last tensor, or cut short, is refused having read only the header.
#[cfg(not(target_family = "wasm"))]
pub fn read_file(path: &std::path::Path) -> Result<TensorMap, WeightsError> {
    use std::io::Read;

    use crate::files::{self, FileError};
    let io = |e: std::io::Error| FileError::Read { path: crate::text::path(path), message: e.to_string() };
    // The kind of file now, its size once the header has said what it should be.
    let (mut file, size) = files::open(path, files::Budget { max_bytes: u64::MAX, ..files::WEIGHTS })?;
    let too_large = || FileError::TooLarge { path: crate::text::path(path), what: files::WEIGHTS.what, size, limit: MAX_FILE_BYTES };
    if size == 0 {
        return Err(WeightsError::Io { path: crate::text::path(path), message: "the file is empty".into() });
    }
    let mut bytes = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut bytes).map_err(io)?;
    if bytes.starts_with(b"PK\x03\x04") {
        if size > MAX_FILE_BYTES {
            return Err(too_large().into());
        }
        return read_pytorch(path);
    }
    let header_len = (bytes.len() == 8).then(|| u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
    if let Some(n) = header_len.filter(|&n| n <= MAX_HEADER as u64 && n <= size - 8 && bytes[0] != 0x80) {
        (&mut file).take(n).read_to_end(&mut bytes).map_err(io)?;
        if let Some(end) = safetensors_data_end(&bytes[8..]) {
            let data_len = size - 8 - n;
            if data_len != end {
                return Err(data_len_error(data_len as usize, end as usize));
            }
        }
    }
    if size > MAX_FILE_BYTES {
        return Err(too_large().into());
    }
    files::read_rest(path, &mut file, files::WEIGHTS, &mut bytes)?;
    if is_pytorch(&bytes) {
        return read_pytorch(path);
    }
    read_safetensors(&bytes)
}

/// Where a safetensors header says the data section ends (the largest `data_offsets` end), if
/// the header is JSON that says so; `None` leaves the judgement to [`read_safetensors`].
#[cfg(not(target_family = "wasm"))]
fn safetensors_data_end(header: &[u8]) -> Option<u64> {
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    json.iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .try_fold(0u64, |m, e| Some(m.max(e?)))
}

/// The data section's length disagrees with the tensors' byte ranges.
fn data_len_error(data_len: usize, end: usize) -> WeightsError {
    let why = if data_len == end + 1 {
        "the header length is wrong or a stray byte follows the last tensor".to_string()
    } else if data_len > end {
        format!("the header length is wrong or {} stray bytes follow the last tensor", data_len - end)
    } else {
        "the header length is wrong or the file is truncated".to_string()
    };
    WeightsError::Safetensors(format!("the data section has {data_len} bytes but the tensors cover {end}: {why}"))
}

// ---------------------------------------------------------------------------------------
// Building a model from a file

const META_VARIANT: &str = "googlenet.variant";
const META_CLASSES: &str = "googlenet.num_classes";
const META_TRANSFORM: &str = "googlenet.transform_input";
const META_AUX: &str = "googlenet.aux_trained";
const META_LABELS: &str = "googlenet.labels";
/// Every `googlenet.*` metadata key; other `googlenet.` keys are refused as likely typos.
const META_KEYS: [&str; 5] = [META_VARIANT, META_CLASSES, META_TRANSFORM, META_AUX, META_LABELS];

impl TensorMap {
    pub fn scheme(&self) -> KeyScheme {
        if self.tensors.keys().any(|k| k.contains('/')) { KeyScheme::Caffe } else { KeyScheme::Pytorch }
    }

    /// The variant the file itself implies, and why.
    fn implied_variant(&self) -> Result<Option<(Variant, String)>, WeightsError> {
        if let Some(v) = self.metadata.get(META_VARIANT) {
            let variant = Variant::parse(v).ok_or_else(|| WeightsError::Metadata {
                key: META_VARIANT.into(),
                message: format!("`{v}` is not one of bvlc, torchvision, seed"),
            })?;
            return Ok(Some((variant, format!("its metadata says {META_VARIANT}={v}"))));
        }
        if self.scheme() == KeyScheme::Caffe {
            return Ok(Some((Variant::Bvlc, "Caffe layer names".into())));
        }
        if self.tensors.keys().any(|k| k.contains(".bn.")) {
            return Ok(Some((Variant::Torchvision, "it has BatchNorm layers".into())));
        }
        // conv + bias without BatchNorm: the seed model, or the BVLC network under PyTorch
        // names; both fit the same tensors.
        Ok(None)
    }

    /// The classifier's class count, from `fc.weight` / `loss3/classifier.weight`.
    fn classifier(&self) -> Result<(String, Vec<usize>), WeightsError> {
        for key in ["fc.weight", "loss3/classifier.weight"] {
            if let Some(t) = self.tensors.get(key) {
                return Ok((key.to_string(), t.shape.clone()));
            }
        }
        Err(WeightsError::NoClassifier)
    }

    /// The project's metadata, each key well-formed or absent (what can be checked without
    /// the classifier); returns the class count and the labels it states.
    fn check_metadata(&self) -> Result<(Option<usize>, Option<Vec<String>>), WeightsError> {
        let err = |key: &str, message: String| WeightsError::Metadata { key: key.into(), message };
        if let Some(k) = self.metadata.keys().find(|k| k.starts_with("googlenet.") && !META_KEYS.contains(&k.as_str())) {
            return Err(err(k, format!("unknown key; the known googlenet.* keys are {}", META_KEYS.join(", "))));
        }
        self.implied_variant()?;
        self.flag(META_TRANSFORM)?;
        self.flag(META_AUX)?;
        let classes = match self.metadata.get(META_CLASSES) {
            Some(v) => {
                let n = Some(v)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .filter(|&n| n > 0);
                Some(n.ok_or_else(|| err(META_CLASSES, format!("`{v}` is not a positive integer (the classifier's class count, e.g. \"1000\")")))?)
            }
            None => None,
        };
        let labels = match self.metadata.get(META_LABELS) {
            Some(s) => {
                let l = serde_json::from_str::<Vec<String>>(s)
                    .map_err(|e| err(META_LABELS, format!("expected a JSON array of strings (one class name per class): {e}")))?;
                check_labels(&l)?;
                Some(l)
            }
            None => None,
        };
        Ok((classes, labels))
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, WeightsError> {
        self.metadata
            .get(key)
            .map(|v| match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(WeightsError::Metadata { key: key.into(), message: format!("`{other}` is not true/false") }),
            })
            .transpose()
    }
}

/// Build a model from a file's tensors, checking every key and shape.
pub fn load_model(map: &TensorMap, opts: &LoadOptions, device: &Device) -> Result<(GoogLeNet, LoadReport), WeightsError> {
    let (meta_classes, labels) = map.check_metadata()?;
    let implied = map.implied_variant()?;
    let variant = match (opts.variant, implied) {
        (Some(req), Some((found, why))) if req != found => {
            // The seed model and BVLC share every tensor; only explicit metadata tells them
            // apart, and a caller may knowingly run one as the other.
            let interchangeable = matches!((req, found), (Variant::Bvlc, Variant::Seed) | (Variant::Seed, Variant::Bvlc))
                && map.scheme() == KeyScheme::Pytorch
                && !map.metadata.contains_key(META_VARIANT);
            if !interchangeable {
                return Err(WeightsError::WrongVariant { found, requested: req, why });
            }
            req
        }
        (Some(req), _) => req,
        (None, Some((found, _))) => found,
        (None, None) => Variant::Seed,
    };
    let (cls_key, cls_shape) = map.classifier()?;
    if cls_shape.len() != 2 || cls_shape[1] != 1024 {
        return Err(WeightsError::Shape { key: cls_key, found: cls_shape, expected: vec![opts.num_classes.unwrap_or(1000), 1024] });
    }
    let num_classes = cls_shape[0];
    if num_classes == 0 {
        return Err(WeightsError::Shape { key: cls_key, found: cls_shape, expected: vec![opts.num_classes.unwrap_or(1000), 1024] });
    }
    if let Some(n) = meta_classes
        && n != num_classes
    {
        return Err(WeightsError::Metadata {
            key: META_CLASSES.into(),
            message: format!(
                "says {} but the classifier `{cls_key}` is {cls_shape:?}, {}: the metadata and the tensors disagree",
                count(n, "class", "classes"),
                count(num_classes, "class", "classes")
            ),
        });
    }
    if let Some(l) = &labels
        && l.len() != num_classes
    {
        return Err(WeightsError::Metadata {
            key: META_LABELS.into(),
            message: format!("{} for a {num_classes}-class classifier (`{cls_key}` is {cls_shape:?})", count(l.len(), "label", "labels")),
        });
    }
    if let Some(req) = opts.num_classes
        && req != num_classes
    {
        return Err(WeightsError::ClassCount { key: cls_key, shape: cls_shape, found: num_classes, requested: req });
    }
    let transform_input = match opts.transform_input {
        Some(t) => t,
        None => map.flag(META_TRANSFORM)?.unwrap_or(false),
    };
    let config = GoogLeNetConfig::new().with_variant(variant).with_num_classes(num_classes).with_transform_input(transform_input);
    let mut model = config.init(device);
    let scheme = map.scheme();
    let source_key = |k: &str| match scheme {
        KeyScheme::Pytorch => Some(k.to_string()),
        KeyScheme::Caffe => caffe_key(k),
    };
    let is_aux = is_aux_key;
    let aux_present = expected_keys(&model)
        .iter()
        .filter(|(k, _)| is_aux(k))
        .any(|(k, _)| source_key(k).is_some_and(|s| map.tensors.contains_key(&s)));

    // Check everything before touching the model, so errors name the first real problem.
    let mut used = BTreeSet::new();
    let mut error = None;
    let mut loaded = 0;
    visit(&mut model, &mut |key, slot| {
        if error.is_some() || (is_aux(&key) && !aux_present) {
            return;
        }
        let expected = slot.file_shape();
        let Some(src) = source_key(&key) else {
            error = Some(WeightsError::Missing { key, expected, variant });
            return;
        };
        let Some(t) = map.tensors.get(&src) else {
            error = Some(WeightsError::Missing { key: src, expected, variant });
            return;
        };
        if t.shape != expected {
            error = Some(WeightsError::Shape { key: src, found: t.shape.clone(), expected });
            return;
        }
        slot.set(t, device);
        used.insert(src);
        loaded += 1;
    });
    if let Some(e) = error {
        return Err(e);
    }
    let unknown: Vec<String> = map.tensors.keys().filter(|k| !used.contains(*k)).cloned().collect();
    if !unknown.is_empty() {
        return Err(WeightsError::Unknown { keys: unknown, variant });
    }
    // Heads the file lacks are fresh: drawn from a fixed seed, so every load of a file gives the
    // same model (and fine-tunes from it are reproducible), and fast (burn's generator took most
    // of a page start's weight loading).
    if !aux_present {
        let mut rng = SplitMix64::new(FRESH_AUX_SEED);
        for head in [&mut model.aux1, &mut model.aux2].into_iter().flatten() {
            rng.aux_head(head, device);
        }
    }
    // A file we wrote says whether its aux heads were ever trained; otherwise, present heads
    // are taken as trained.
    let aux_fresh = !aux_present || map.flag(META_AUX)? == Some(false);
    Ok((model, LoadReport { variant, num_classes, scheme, loaded, aux_fresh, labels }))
}

/// The generator seed of the aux heads a loaded file lacks.
const FRESH_AUX_SEED: u64 = 0xA0C5_11EA_D5EE_D001;

/// A key of an aux head's tensor (project and PyTorch names).
fn is_aux_key(k: &str) -> bool {
    k.starts_with("aux1.") || k.starts_with("aux2.")
}

// ---------------------------------------------------------------------------------------
// Writing files

/// Metadata written with a model.
#[derive(Debug, Clone, Default)]
pub struct SaveInfo {
    pub labels: Option<Vec<String>>,
    /// Whether the aux heads hold trained weights.
    pub aux_trained: bool,
}

/// How a saved file stores its values. F16 halves the download; values are computed in f32
/// after loading either way.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreDtype {
    #[default]
    F32,
    F16,
}

impl StoreDtype {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Some(Self::F32),
            "f16" | "float16" | "half" => Some(Self::F16),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
        }
    }

    fn size(self) -> usize {
        match self {
            Self::F32 => 4,
            Self::F16 => 2,
        }
    }
}

/// Serialise tensors (already read to the host, in file layout) as F32 safetensors with the
/// project's metadata.
pub fn write_safetensors(model: &GoogLeNet, tensors: Vec<(String, Vec<usize>, Vec<f32>)>, info: &SaveInfo) -> Result<Vec<u8>, WeightsError> {
    write_safetensors_as(model, tensors, info, StoreDtype::F32)
}

/// Serialise tensors as safetensors in `dtype`. F16 refuses a value beyond its range rather
/// than store an infinity (which the loader would then refuse with a less helpful message).
/// Aux heads that were never trained are left out: they are random, the loader initialises
/// them afresh when absent, and they would be more than half of the file. Labels the loader
/// would refuse (blank, control characters, too long: [`check_labels`]) are refused here, so
/// no file is written that cannot be read back.
pub fn write_safetensors_as(
    model: &GoogLeNet,
    mut tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    info: &SaveInfo,
    dtype: StoreDtype,
) -> Result<Vec<u8>, WeightsError> {
    if let Some(l) = &info.labels {
        check_labels(l)?;
    }
    if !info.aux_trained {
        tensors.retain(|(k, _, _)| !is_aux_key(k));
    }
    let mut meta = serde_json::Map::new();
    let mut put = |k: &str, v: String| meta.insert(k.to_string(), serde_json::Value::String(v));
    put(META_VARIANT, model.variant.to_string());
    put(META_CLASSES, model.num_classes().to_string());
    put(META_TRANSFORM, model.transform_input.to_string());
    put(META_AUX, info.aux_trained.to_string());
    put("format", "pt".into());
    if let Some(l) = &info.labels {
        put(META_LABELS, serde_json::to_string(l).expect("strings serialise"));
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut offset = 0usize;
    for (k, shape, data) in &tensors {
        let len = data.len() * dtype.size();
        header.insert(
            k.clone(),
            serde_json::json!({"dtype": dtype.name(), "shape": shape, "data_offsets": [offset, offset + len]}),
        );
        offset += len;
    }
    let mut h = serde_json::to_vec(&serde_json::Value::Object(header)).expect("JSON serialises");
    while !h.len().is_multiple_of(8) {
        h.push(b' ');
    }
    let mut out = Vec::with_capacity(8 + h.len() + offset);
    out.extend_from_slice(&(h.len() as u64).to_le_bytes());
    out.extend_from_slice(&h);
    for (key, _, data) in &tensors {
        match dtype {
            StoreDtype::F32 => data.iter().for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            StoreDtype::F16 => {
                for (index, &v) in data.iter().enumerate() {
                    let half = half::f16::from_f32(v);
                    if !half.is_finite() {
                        return Err(WeightsError::HalfRange { key: key.clone(), index, value: v });
                    }
                    out.extend_from_slice(&half.to_le_bytes());
                }
            }
        }
    }
    Ok(out)
}

/// Save a model as the project's F32 safetensors (native: reads tensors synchronously).
#[cfg(not(target_family = "wasm"))]
pub fn save_model(model: &GoogLeNet, info: &SaveInfo) -> Result<Vec<u8>, WeightsError> {
    save_model_as(model, info, StoreDtype::F32)
}

/// Save a model as the project's safetensors in `dtype` (native).
#[cfg(not(target_family = "wasm"))]
pub fn save_model_as(model: &GoogLeNet, info: &SaveInfo, dtype: StoreDtype) -> Result<Vec<u8>, WeightsError> {
    let tensors = named_tensors(model)
        .into_iter()
        .map(|(k, shape, t)| {
            let data = t.into_data().try_to_vec::<f32>().expect("model tensors are f32");
            (k, shape, data)
        })
        .collect();
    write_safetensors_as(model, tensors, info, dtype)
}

#[cfg(test)]
mod tests {
    use super::caffe_key;

    #[test]
    fn caffe_names() {
        assert_eq!(caffe_key("conv1.conv.weight").as_deref(), Some("conv1/7x7_s2.weight"));
        assert_eq!(caffe_key("conv3.conv.bias").as_deref(), Some("conv2/3x3.bias"));
        assert_eq!(caffe_key("inception4e.branch3.0.conv.weight").as_deref(), Some("inception_4e/5x5_reduce.weight"));
        assert_eq!(caffe_key("inception5b.branch4.1.conv.bias").as_deref(), Some("inception_5b/pool_proj.bias"));
        assert_eq!(caffe_key("fc.weight").as_deref(), Some("loss3/classifier.weight"));
        assert_eq!(caffe_key("aux2.fc2.bias").as_deref(), Some("loss2/classifier.bias"));
        assert_eq!(caffe_key("aux1.conv.conv.weight").as_deref(), Some("loss1/conv.weight"));
        assert_eq!(caffe_key("conv1.bn.weight"), None);
    }
}
