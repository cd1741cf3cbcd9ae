//! The two conversions between the host and the network that every caller needs, written once:
//! a prepared image as the network's input, and a tensor read back to the host (always
//! `into_data_async`, the only read WebGPU allows).

use burn::tensor::{Device, Tensor, TensorData};

use crate::preprocess::INPUT_SIZE;

/// A prepared image (`[3, 224, 224]` values, `preprocess::Prepared::chw`) as the network's
/// input, batch 1: `[1, 3, 224, 224]`.
pub fn image_input(chw: Vec<f32>, device: &Device) -> Tensor<4> {
    let s = INPUT_SIZE;
    Tensor::<4>::from_data(TensorData::new(chw, [1, 3, s, s]), device)
}

/// A rank-1 tensor's values on the host; the error is the backend's, as text, for the caller
/// to wrap in its own error.
pub async fn read_f32(t: Tensor<1>) -> Result<Vec<f32>, String> {
    let d = t.into_data_async().await.map_err(|e| format!("{e:?}"))?;
    d.try_to_vec::<f32>().map_err(|e| format!("{e:?}"))
}
