//! SplitMix64: a small seedable generator, identical on every platform, for what must be
//! reproducible from a seed (fine-tune batches, augmentation, dropout, fresh heads; the fuzz
//! tests' mutations). burn's generator is global to the process; this one is owned.

use burn::module::Param;
use burn::nn::Linear;
use burn::tensor::{Device, Tensor, TensorData};

use crate::model::aux_head::InceptionAux;
use crate::model::basic_conv::BasicConv2d;

#[derive(Debug, Clone)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f32 {
        (self.next_u64() >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// Fresh layers drawn from the generator, as burn's default initialiser makes them (uniform
/// ±1/√fan_in for weights and biases), but reproducible and far faster than burn's
/// process-global generator (which drew a page start's new aux heads for 180 ms of wasm).
impl SplitMix64 {
    /// `n` values uniform in [-bound, bound).
    pub fn uniform(&mut self, n: usize, bound: f32) -> Vec<f32> {
        (0..n).map(|_| (self.unit() * 2.0 - 1.0) * bound).collect()
    }

    /// A fresh linear layer `d_in → d_out`.
    pub fn linear(&mut self, d_in: usize, d_out: usize, device: &Device) -> Linear {
        let b = 1.0 / (d_in as f32).sqrt();
        Linear {
            weight: Param::from_tensor(Tensor::from_data(
                TensorData::new(self.uniform(d_in * d_out, b), [d_in, d_out]),
                device,
            )),
            bias: Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(self.uniform(d_out, b), [d_out]),
                device,
            ))),
        }
    }

    /// Re-draw every layer of an aux head (conv, fc1, fc2), at the sizes it has.
    pub fn aux_head(&mut self, head: &mut InceptionAux, device: &Device) {
        self.conv(&mut head.conv, device);
        let [i, o] = head.fc1.weight.lazy_shape().dims::<2>();
        let classes = head.fc2.weight.lazy_shape().dims::<2>()[1];
        head.fc1 = self.linear(i, o, device);
        head.fc2 = self.linear(o, classes, device);
    }

    /// Re-draw a conv layer's weights and bias.
    pub fn conv(&mut self, c: &mut BasicConv2d, device: &Device) {
        let dims = c.conv.weight.lazy_shape().dims::<4>();
        let b = 1.0 / ((dims[1] * dims[2] * dims[3]) as f32).sqrt();
        c.conv.weight = Param::from_tensor(Tensor::from_data(
            TensorData::new(self.uniform(dims.iter().product(), b), dims),
            device,
        ));
        if c.conv.bias.is_some() {
            c.conv.bias = Some(Param::from_tensor(Tensor::from_data(
                TensorData::new(self.uniform(dims[0], b), [dims[0]]),
                device,
            )));
        }
    }
}
