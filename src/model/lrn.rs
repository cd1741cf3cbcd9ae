//! Local response normalisation across channels, as Caffe computes it (`pool1/norm1`,
//! `conv2/norm2`): `x / (k + alpha/n · Σ x²)^beta`, the sum over `n` neighbouring channels
//! (zero-padded at the ends).
//!
//! burn has `LocalResponseNorm`, but it transposes to channels-last and average-pools, which
//! made the two LRNs a quarter of GoogLeNet's CPU time. Here the window sum is `n` shifted
//! channel slices of the squared input (contiguous in NCHW), and for the paper's beta = 0.75
//! the power is `sqrt(s) · sqrt(sqrt(s))`, both much cheaper than `powf`.

use burn::module::Module;
use burn::tensor::Tensor;

#[derive(Module, Debug)]
pub struct Lrn {
    pub size: usize,
    pub alpha: f64,
    pub beta: f64,
    pub k: f64,
}

impl Lrn {
    /// The paper's (and Caffe's) setting: size 5, alpha 1e-4, beta 0.75, k 1.
    pub fn caffe() -> Self {
        Lrn {
            size: 5,
            alpha: 1e-4,
            beta: 0.75,
            k: 1.0,
        }
    }

    /// # Shapes
    /// - input: `[batch, channels, h, w]`
    /// - output: the same
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Inference on burn-flex: one direct pass (`kernels.rs`).
        #[cfg(cpu_kernels)]
        if let Some(y) = super::kernels::lrn(&x, self.size, self.alpha, self.beta, self.k) {
            return y;
        }
        self.forward_composed(x)
    }

    /// The same as tensor ops: under autodiff and on WebGPU.
    pub fn forward_composed(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let before = (self.size - 1) / 2;
        let after = self.size - 1 - before;
        let sq = x.clone().square(); // [b, c, h, w]
        let device = x.device();
        let padded = Tensor::cat(
            vec![
                Tensor::zeros([b, before, h, w], &device),
                sq,
                Tensor::zeros([b, after, h, w], &device),
            ],
            1,
        ); // [b, c + size - 1, h, w]
        let mut sum = padded.clone().narrow(1, 0, c);
        for d in 1..self.size {
            sum = sum + padded.clone().narrow(1, d, c);
        }
        let s = sum
            .mul_scalar(self.alpha / self.size as f64)
            .add_scalar(self.k); // [b, c, h, w]
        let denom = if self.beta == 0.75 {
            s.clone().sqrt() * s.sqrt().sqrt()
        } else {
            s.powf_scalar(self.beta)
        };
        x / denom
    }
}

#[cfg(test)]
mod tests {
    use super::Lrn;
    use burn::nn::LocalResponseNormConfig;
    use burn::tensor::{Device, Distribution, Tensor};

    #[test]
    fn matches_burns_local_response_norm() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 7, 5, 3], Distribution::Normal(0.0, 30.0), &device);
        for beta in [0.75, 0.6] {
            let ours = Lrn {
                beta,
                ..Lrn::caffe()
            }
            .forward(x.clone());
            let theirs = LocalResponseNormConfig::new(5)
                .with_alpha(1e-4)
                .with_beta(beta)
                .with_k(1.0)
                .init()
                .forward(x.clone());
            let diff: f32 = (ours - theirs).abs().max().into_scalar();
            assert!(diff < 1e-4, "beta {beta}: max diff {diff}");
        }
    }
}
