//! Convolution + (BatchNorm) + ReLU: the unit every GoogLeNet layer is built from.

use burn::config::Config;
use burn::module::Module;
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, PaddingConfig2d};
use burn::tensor::{Device, Tensor, activation::relu};

/// A conv layer as each variant builds it: Caffe and the seed use conv with bias + ReLU;
/// torchvision's `BasicConv2d` uses conv without bias + BatchNorm(eps 1e-3) + ReLU.
#[derive(Config, Debug)]
pub struct BasicConv2dConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub kernel: usize,
    #[config(default = 1)]
    pub stride: usize,
    #[config(default = 0)]
    pub padding: usize,
    #[config(default = true)]
    pub bias: bool,
    /// BatchNorm epsilon; `None` for no BatchNorm.
    #[config(default = "None")]
    pub batch_norm_eps: Option<f64>,
}

#[derive(Module, Debug)]
pub struct BasicConv2d {
    pub conv: Conv2d,
    pub bn: Option<BatchNorm>,
}

impl BasicConv2dConfig {
    pub fn init(&self, device: &Device) -> BasicConv2d {
        let p = self.padding;
        let conv = Conv2dConfig::new([self.in_channels, self.out_channels], [self.kernel; 2])
            .with_stride([self.stride; 2])
            .with_padding(PaddingConfig2d::Explicit(p, p, p, p))
            .with_bias(self.bias)
            .init(device);
        let bn = self.batch_norm_eps.map(|eps| {
            BatchNormConfig::new(self.out_channels)
                .with_epsilon(eps)
                .init(device)
        });
        BasicConv2d { conv, bn }
    }
}

impl BasicConv2d {
    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, out_channels, h', w']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Inference on burn-flex: one direct GEMM kernel with the bias and ReLU fused.
        #[cfg(cpu_kernels)]
        if let Some(y) = self.forward_kernel(&x) {
            return y;
        }
        self.forward_composed(x)
    }

    /// This layer on `x` as a direct kernel (burn-flex inference, no BatchNorm); `None` where
    /// it does not apply.
    #[cfg(cpu_kernels)]
    pub fn direct(&self, x: &Tensor<4>) -> Option<super::kernels::Conv> {
        let c = &self.conv;
        let PaddingConfig2d::Explicit(top, left, bottom, right) = c.padding else {
            return None;
        };
        if !self.kernel_applies() {
            return None;
        }
        let bias = c.bias.as_ref().map(|b| b.val());
        super::kernels::Conv::new(
            x,
            &c.weight.val(),
            bias.as_ref(),
            c.stride,
            [top, left, bottom, right],
        )
    }

    /// Whether [`Self::direct`] can run this layer (on a burn-flex input without autodiff).
    pub fn kernel_applies(&self) -> bool {
        let c = &self.conv;
        self.bn.is_none()
            && c.dilation == [1, 1]
            && c.groups == 1
            && matches!(c.padding, PaddingConfig2d::Explicit(..))
    }

    #[cfg(cpu_kernels)]
    fn forward_kernel(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        Some(self.direct(x)?.output(true))
    }

    /// The same as burn's ops: under autodiff, on WebGPU, and with BatchNorm.
    pub fn forward_composed(&self, x: Tensor<4>) -> Tensor<4> {
        let x = self.conv.forward(x); // [batch, out, h', w']
        let x = match &self.bn {
            Some(bn) => bn.forward(x),
            None => x,
        };
        relu(x)
    }

    pub fn in_channels(&self) -> usize {
        self.conv.weight.shape().dims::<4>()[1]
    }

    pub fn out_channels(&self) -> usize {
        self.conv.weight.shape().dims::<4>()[0]
    }

    pub fn kernel(&self) -> usize {
        self.conv.kernel_size[0]
    }
}
