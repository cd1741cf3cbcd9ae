//! What can be wrong with a weights file: one enum for reading, loading and writing.

use crate::labels::LabelError;
use crate::model::Variant;
use crate::text::count;

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
    #[error(
        "tensor `{key}` has dtype {dtype}; expected a floating-point tensor (F32, F16, BF16 or F64)"
    )]
    DType { key: String, dtype: String },
    #[error("the weights file is empty: no tensors found")]
    Empty,
    #[error("the weights are for the `{found}` variant ({why}), but `{requested}` was requested")]
    WrongVariant {
        found: Variant,
        requested: Variant,
        why: String,
    },
    #[error("missing tensor `{key}` (expected shape {expected:?}) for the `{variant}` network")]
    Missing {
        key: String,
        expected: Vec<usize>,
        variant: Variant,
    },
    #[error("tensor `{key}` has shape {found:?}, expected {expected:?}")]
    Shape {
        key: String,
        found: Vec<usize>,
        expected: Vec<usize>,
    },
    #[error("{} tensor(s) in the file are not part of the `{variant}` network: {}", keys.len(), keys.join(", "))]
    Unknown { keys: Vec<String>, variant: Variant },
    #[error("the classifier has {} (`{key}` is {shape:?}), but {} were requested", count(*found, "class", "classes"), count(*requested, "class", "classes"))]
    ClassCount {
        key: String,
        shape: Vec<usize>,
        found: usize,
        requested: usize,
    },
    #[error(
        "cannot find the classifier (`fc.weight` or `loss3/classifier.weight`) in the weights file"
    )]
    NoClassifier,
    #[error(
        "this is a PyTorch checkpoint (.pth), which the page cannot read; convert it first with `googlenet convert --from FILE.pth --to FILE.safetensors`"
    )]
    NeedsConversion,
    #[error("bad metadata `{key}`: {message}")]
    Metadata { key: String, message: String },
    /// A class name that cannot be saved or shown (blank, control characters, too long).
    #[error("bad metadata `googlenet.labels`: {0}")]
    Label(#[from] LabelError),
    #[error("{}", non_finite_message(key, *index, *value))]
    NonFinite {
        key: String,
        index: usize,
        value: f64,
    },
    #[error(
        "tensor `{key}` holds {value} at index {index}, beyond float16's range (±65504); keep this model in F32"
    )]
    HalfRange {
        key: String,
        index: usize,
        value: f32,
    },
}

fn non_finite_message(key: &str, index: usize, value: f64) -> String {
    let (shown, why) = if value.is_nan() {
        ("NaN".to_string(), "every weight must be a finite number")
    } else if value.is_infinite() {
        (
            if value > 0.0 { "+Inf" } else { "-Inf" }.to_string(),
            "every weight must be a finite number",
        )
    } else {
        (
            format!("{value:e}"),
            "every weight must be a finite number within f32's range, |x| < 3.4e38",
        )
    };
    format!("tensor `{key}` holds {shown} at element {index}: the file is damaged ({why})")
}
