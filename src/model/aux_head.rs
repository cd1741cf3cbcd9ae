//! The auxiliary classifiers attached to 4a and 4d during training (paper §5).

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::{adaptive_avg_pool2d, avg_pool2d};
use burn::tensor::ops::AvgPoolOptions;
use burn::tensor::{Device, Tensor, activation::relu};

use super::basic_conv::{BasicConv2d, BasicConv2dConfig};
use super::config::{AuxPool, VariantSpec};
use super::googlenet::{Dropout, no_dropout};

/// Paper: 5×5/3 average pool → 1×1 conv 128 + ReLU → FC 1024 + ReLU → dropout 0.7 → FC.
#[derive(Module, Debug)]
pub struct InceptionAux {
    pub conv: BasicConv2d,
    pub fc1: Linear,
    pub fc2: Linear,
    /// Dropout probabilities on the flattened conv output (seed model only) and after fc1
    /// (paper: 0.7), applied by the trainer.
    #[module(skip)]
    pub dropout_before_fc1: f64,
    #[module(skip)]
    pub dropout: f64,
    #[module(skip)]
    pub pool: AuxPool,
}

pub fn inception_aux(
    in_channels: usize,
    num_classes: usize,
    v: &VariantSpec,
    device: &Device,
) -> InceptionAux {
    InceptionAux {
        conv: BasicConv2dConfig::new(in_channels, 128, 1)
            .with_bias(v.conv_bias)
            .with_batch_norm_eps(v.batch_norm_eps)
            .init(device),
        fc1: LinearConfig::new(128 * 4 * 4, 1024).init(device),
        fc2: LinearConfig::new(1024, num_classes).init(device),
        dropout_before_fc1: v.aux_dropout_before_fc1,
        dropout: v.aux_dropout_after_fc1,
        pool: v.aux_pool,
    }
}

/// An aux head's pooling (no parameters), also for a model whose heads are not built yet.
pub fn aux_pool(pool: AuxPool, x: Tensor<4>) -> Tensor<4> {
    match pool {
        AuxPool::Avg5Stride3 => avg_pool2d(x, AvgPoolOptions::new([5, 5]).with_stride([3, 3])),
        AuxPool::Adaptive4 => adaptive_avg_pool2d(x, [4, 4]),
    }
}

impl InceptionAux {
    /// # Shapes
    /// - input: `[batch, in_channels, 14, 14]`
    /// - output: `[batch, num_classes]`
    ///
    /// (Evaluation: no dropout.)
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.forward_pooled(self.pool(x), &mut no_dropout)
    }

    /// The head's parameter-free first step: `[batch, in, 14, 14]` → `[batch, in, 4, 4]`.
    pub fn pool(&self, x: Tensor<4>) -> Tensor<4> {
        aux_pool(self.pool, x)
    }

    /// The rest of the head, from the pooled `[batch, in, 4, 4]`.
    pub fn forward_pooled(&self, x: Tensor<4>, dropout: Dropout<'_>) -> Tensor<2> {
        let x = self.conv.forward(x); // [batch, 128, 4, 4]
        let x: Tensor<2> = x.flatten(1, 3); // [batch, 2048]
        let x = dropout(x, self.dropout_before_fc1);
        let x = relu(self.fc1.forward(x)); // [batch, 1024]
        let x = dropout(x, self.dropout);
        self.fc2.forward(x) // [batch, num_classes]
    }

    pub fn num_classes(&self) -> usize {
        self.fc2.weight.shape().dims::<2>()[1]
    }
}
