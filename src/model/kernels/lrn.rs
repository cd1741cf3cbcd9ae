//! Caffe's cross-channel LRN in one pass over memory: one output channel per task, its
//! window's input planes read in place.

use super::schedule::for_each_chunk;
use super::{flex_f32, from_vec};
use burn::tensor::Tensor;

/// Caffe's cross-channel LRN: `x / (k + alpha/n · Σ x²)^beta`, the sum over the `n` channels
/// centred on each (clipped at the ends). `None` when `x` is not a burn-flex tensor without
/// autodiff.
pub fn lrn(x: &Tensor<4>, n: usize, alpha: f64, beta: f64, k: f64) -> Option<Tensor<4>> {
    let t = flex_f32(x)?;
    let src = t.as_slice::<f32>()?;
    let [b, c, h, w] = x.dims();
    let plane = h * w;
    let before = (n - 1) / 2;
    let after = n - 1 - before;
    let norm = Norm {
        scale: (alpha / n as f64) as f32,
        k: k as f32,
        beta: beta as f32,
        three_quarters: beta == 0.75,
    };
    let mut out = vec![0f32; b * c * plane];
    for_each_chunk(&mut out, plane, |i, dst| {
        let (bi, ci) = (i / c, i % c);
        let base = bi * c * plane;
        let channels = ci.saturating_sub(before)..(ci + after + 1).min(c);
        let mut sum = vec![0f32; plane];
        for cj in channels {
            for (acc, &v) in sum
                .iter_mut()
                .zip(&src[base + cj * plane..base + (cj + 1) * plane])
            {
                *acc += v * v;
            }
        }
        norm.apply(&src[base + ci * plane..base + (ci + 1) * plane], &sum, dst);
    });
    Some(from_vec(out, [b, c, h, w]))
}

/// `x / (k + scale · Σ x²)^beta`.
struct Norm {
    scale: f32,
    k: f32,
    beta: f32,
    three_quarters: bool,
}

impl Norm {
    /// `dst = own / (k + scale · sum)^beta`, elementwise. Separate loops per case, so each one
    /// vectorises (sqrt and div have SIMD forms, powf does not).
    fn apply(&self, own: &[f32], sum: &[f32], dst: &mut [f32]) {
        let Norm { scale, k, beta, .. } = *self;
        if self.three_quarters {
            // d^0.75 = sqrt(d) · sqrt(sqrt(d)), far cheaper than powf.
            for ((o, &v), &s2) in dst.iter_mut().zip(own).zip(sum) {
                let d = k + scale * s2;
                let r = d.sqrt();
                *o = v / (r * r.sqrt());
            }
        } else {
            for ((o, &v), &s2) in dst.iter_mut().zip(own).zip(sum) {
                *o = v / (k + scale * s2).powf(beta);
            }
        }
    }
}
