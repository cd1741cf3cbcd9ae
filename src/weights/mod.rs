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
//!
//! One file per job: `names` (Caffe and PyTorch keys, metadata keys), `slots` (which parameter
//! a key names, the Linear transpose), `dtype` (the float dtypes files hold), `safetensors`
//! and `pytorch` (reading each format), `load` (format sniffing and building a model), `save`
//! (writing), `error`.

use std::collections::BTreeMap;

mod dtype;
mod error;
mod load;
mod names;
#[cfg(not(target_family = "wasm"))]
mod pytorch;
mod safetensors;
mod save;
mod slots;

pub use dtype::{FloatDtype, StoreDtype};
pub use error::WeightsError;
#[cfg(not(target_family = "wasm"))]
pub use load::read_file;
pub use load::{LoadOptions, LoadReport, load_model, read_bytes};
pub use names::caffe_key;
#[cfg(not(target_family = "wasm"))]
pub use pytorch::read_pytorch;
pub use safetensors::read_safetensors;
pub use save::{SaveInfo, write_safetensors, write_safetensors_as};
#[cfg(not(target_family = "wasm"))]
pub use save::{save_model, save_model_as};
pub use slots::{expected_keys, named_tensors};

/// The largest weights file the CLI reads (checked before reading): the float32 BVLC release is
/// 28 MB, torchvision's with its aux heads 52 MB, and the same in float64 105 MB.
pub const MAX_FILE_BYTES: u64 = 256_000_000;

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
