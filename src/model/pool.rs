//! Max pooling with Caffe's ceil rounding, as separable maxima of shifted, subsampled slices.
//!
//! burn-flex's max pool always computes argmax indices through a generic 3-D kernel; the
//! fourteen max pools of GoogLeNet took about a quarter of its CPU time that way. Row maxima
//! then column maxima of `k` shifted views is the same function (max is separable) in a few
//! memory passes, on every backend and under autodiff.
//!
//! The pairwise maximum is `m + relu(v − m)`: on burn-flex that is about 20× faster than
//! `max_pair` over strided views, and equal to it within one rounding (the reference tests hold
//! at 1e-4). That form needs finite values, so the borders are padded by repeating the edge
//! instead of with −∞: every window still contains the element it repeats, so its maximum is
//! unchanged.

use burn::module::Module;
use burn::tensor::{Tensor, activation::relu};

#[derive(Module, Debug)]
pub struct MaxPool {
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    /// Round the output size up (Caffe; torchvision's `ceil_mode=True`).
    pub ceil: bool,
}

/// Output size along one axis (PyTorch's rule: the last window must start inside the input
/// or its left padding).
pub fn pool_out(size: usize, k: usize, s: usize, p: usize, ceil: bool) -> usize {
    let span = size + 2 * p - k;
    let mut out = if ceil { span.div_ceil(s) } else { span / s } + 1;
    if ceil && (out - 1) * s >= size + p {
        out -= 1;
    }
    out
}

impl MaxPool {
    pub fn new(kernel: usize, stride: usize, padding: usize, ceil: bool) -> Self {
        MaxPool {
            kernel,
            stride,
            padding,
            ceil,
        }
    }

    /// # Shapes
    /// - input: `[batch, channels, h, w]`
    /// - output: `[batch, channels, h', w']`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        // Inference on burn-flex: one direct pass (`kernels.rs`).
        #[cfg(cpu_kernels)]
        {
            let [_, _, h, w] = x.dims();
            let (k, s, p) = (self.kernel, self.stride, self.padding);
            let (oh, ow) = (
                pool_out(h, k, s, p, self.ceil),
                pool_out(w, k, s, p, self.ceil),
            );
            if let Some(y) = super::kernels::max_pool(&x, k, s, p, oh, ow) {
                return y;
            }
        }
        self.forward_composed(x)
    }

    /// The same as tensor ops: under autodiff and on WebGPU.
    pub fn forward_composed(&self, x: Tensor<4>) -> Tensor<4> {
        let [_, _, h, w] = x.dims();
        let (k, s, p) = (self.kernel, self.stride, self.padding);
        let (oh, ow) = (
            pool_out(h, k, s, p, self.ceil),
            pool_out(w, k, s, p, self.ceil),
        );
        // Pad (repeating the edge) so that every window fits.
        let need = |o: usize| (o - 1) * s + k;
        let bottom = need(oh).saturating_sub(h + p);
        let right = need(ow).saturating_sub(w + p);
        let x = edge_pad(edge_pad(x, 2, p, bottom), 3, p, right);
        let rows = reduce_axis(x, 2, k, s, oh); // [b, c, oh, w + pads]
        reduce_axis(rows, 3, k, s, ow) // [b, c, oh, ow]
    }
}

/// Repeat the first / last slice along `axis` `before` / `after` times. (`pad` with
/// `PadMode::Edge` does the same but took 5.8 ms on pool1's input where this takes 0.2.)
fn edge_pad(x: Tensor<4>, axis: usize, before: usize, after: usize) -> Tensor<4> {
    if before + after == 0 {
        return x;
    }
    let n = x.dims()[axis];
    let mut parts = Vec::with_capacity(3);
    if before > 0 {
        parts.push(x.clone().narrow(axis, 0, 1).repeat_dim(axis, before));
    }
    if after > 0 {
        let last = x.clone().narrow(axis, n - 1, 1).repeat_dim(axis, after);
        parts.push(x);
        parts.push(last);
    } else {
        parts.push(x);
    }
    Tensor::cat(parts, axis)
}

/// Max over windows of `k` along `axis` (2 or 3), stride `s`, keeping `out` positions: the
/// stride-1 running maximum of `k` shifted views, then one subsampling copy.
fn reduce_axis(x: Tensor<4>, axis: usize, k: usize, s: usize, out: usize) -> Tensor<4> {
    let span = (out - 1) * s + 1;
    let m = (1..k).fold(x.clone().narrow(axis, 0, span), |m, d| {
        let v = x.clone().narrow(axis, d, span);
        m.clone() + relu(v - m)
    });
    if s == 1 {
        return m;
    }
    // Keep every s-th position: pad to out·s, split the axis into (out, s), take index 0.
    let m = edge_pad(m, axis, 0, s - 1);
    let [b, c, h, w] = m.dims();
    if axis == 2 {
        let v: Tensor<5> = m.narrow(2, 0, out * s).reshape([b, c, out, s, w]);
        v.narrow(3, 0, 1).reshape([b, c, out, w])
    } else {
        let v: Tensor<5> = m.narrow(3, 0, out * s).reshape([b, c, h, out, s]);
        v.narrow(4, 0, 1).reshape([b, c, h, out])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use burn::tensor::module::max_pool2d;
    use burn::tensor::ops::MaxPoolOptions;
    use burn::tensor::{Device, Distribution};

    #[test]
    fn matches_burns_max_pool_with_ceil_mode() {
        let device = Device::flex();
        for (h, w, k, s, p) in [
            (112, 112, 3, 2, 0),
            (57, 30, 3, 2, 0),
            (28, 28, 3, 1, 1),
            (14, 14, 2, 2, 0),
            (7, 9, 3, 2, 1),
        ] {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
            let ours = MaxPool::new(k, s, p, true).forward(x.clone());
            let theirs = max_pool2d(
                x,
                MaxPoolOptions::new([k, k])
                    .with_stride([s, s])
                    .with_padding([p, p])
                    .with_ceil_mode(true),
            );
            assert_eq!(ours.dims(), theirs.dims(), "{h}x{w} k{k} s{s} p{p}");
            // Within a rounding of the exact maximum (see the module note).
            let diff: f32 = (ours - theirs).abs().max().into_scalar();
            assert!(diff <= 1e-6, "{h}x{w} k{k} s{s} p{p}: {diff}");
        }
    }

    #[test]
    fn output_sizes_round_up_like_caffe() {
        assert_eq!(pool_out(112, 3, 2, 0, true), 56);
        assert_eq!(pool_out(112, 3, 2, 0, false), 55);
        assert_eq!(pool_out(14, 2, 2, 0, true), 7);
        assert_eq!(pool_out(28, 3, 1, 1, true), 28);
    }
}
