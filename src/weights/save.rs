//! Writing the project's safetensors files: PyTorch keys, the project's metadata, F32 or F16.

use super::names::{META_AUX, META_CLASSES, META_LABELS, META_TRANSFORM, META_VARIANT, is_aux_key};
#[cfg(not(target_family = "wasm"))]
use super::slots::named_tensors;
use super::{StoreDtype, WeightsError};
use crate::labels::check_labels;
use crate::model::GoogLeNet;

/// Metadata written with a model.
#[derive(Debug, Clone, Default)]
pub struct SaveInfo {
    pub labels: Option<Vec<String>>,
    /// Whether the aux heads hold trained weights.
    pub aux_trained: bool,
}

/// Serialise tensors (already read to the host, in file layout) as F32 safetensors with the
/// project's metadata.
pub fn write_safetensors(
    model: &GoogLeNet,
    tensors: Vec<(String, Vec<usize>, Vec<f32>)>,
    info: &SaveInfo,
) -> Result<Vec<u8>, WeightsError> {
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
        put(
            META_LABELS,
            serde_json::to_string(l).expect("strings serialise"),
        );
    }
    let mut header = serde_json::Map::new();
    header.insert("__metadata__".into(), serde_json::Value::Object(meta));
    let mut offset = 0usize;
    for (k, shape, data) in &tensors {
        let len = data.len() * dtype.float().size();
        header.insert(
            k.clone(),
            serde_json::json!({"dtype": dtype.float().name(), "shape": shape, "data_offsets": [offset, offset + len]}),
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
            StoreDtype::F32 => data
                .iter()
                .for_each(|v| out.extend_from_slice(&v.to_le_bytes())),
            StoreDtype::F16 => {
                for (index, &v) in data.iter().enumerate() {
                    let half = half::f16::from_f32(v);
                    if !half.is_finite() {
                        return Err(WeightsError::HalfRange {
                            key: key.clone(),
                            index,
                            value: v,
                        });
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
pub fn save_model_as(
    model: &GoogLeNet,
    info: &SaveInfo,
    dtype: StoreDtype,
) -> Result<Vec<u8>, WeightsError> {
    let tensors = named_tensors(model)
        .into_iter()
        .map(|(k, shape, t)| {
            let data = t
                .into_data()
                .try_to_vec::<f32>()
                .expect("model tensors are f32");
            (k, shape, data)
        })
        .collect();
    write_safetensors_as(model, tensors, info, dtype)
}
