//! Direct CPU kernels for the inference path on burn-flex: Caffe's max pool and LRN in one
//! pass over memory each, planes (pool) or channels (LRN) spread over the rayon pool.
//!
//! The layers keep their tensor-op compositions (`pool.rs`, `lrn.rs`): those work under
//! autodiff (the fine-tune, Grad-CAM's tail) and on WebGPU. Here, when the input lives on
//! burn-flex without autodiff, the layer runs on the tensor's host buffer instead: burn's
//! `extension` feature hands out the primitive (`try_into_primitive::<Flex>`, an `Arc` clone, no
//! copy and no read of a device) and takes a new one back (`from_primitive`). The compositions
//! made about 15 memory passes per pool and 12 per LRN, each on one thread; they took 26 of
//! 115 ms at one thread natively (BENCHMARKS.md).

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{DispatchDevice, Flex};
use burn::tensor::{Bytes, DType, Shape, Tensor};

/// The tensor's burn-flex primitive, contiguous f32, when `x` is on burn-flex without autodiff.
fn flex_f32(x: &Tensor<4>) -> Option<FlexTensor> {
    if x.is_autodiff() || !matches!(x.device().as_dispatch(), DispatchDevice::Flex(_)) {
        return None;
    }
    let t = x.clone().try_into_primitive::<Flex>().ok()?;
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() })
}

fn from_vec(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    let t = FlexTensor::new(Bytes::from_elems(v), Layout::contiguous(Shape::from(shape.to_vec())), DType::F32);
    Tensor::from_primitive::<Flex>(t)
}

/// `f` over `(input, output)` chunk pairs, on the rayon pool where the build has one.
fn for_each_chunk(src: &[f32], src_len: usize, dst: &mut [f32], dst_len: usize, f: impl Fn(usize, &[f32], &mut [f32]) + Sync + Send) {
    #[cfg(any(not(target_family = "wasm"), feature = "engine-threads"))]
    {
        use rayon::prelude::*;
        dst.par_chunks_mut(dst_len).zip(src.par_chunks(src_len)).enumerate().for_each(|(i, (d, s))| f(i, s, d));
    }
    #[cfg(not(any(not(target_family = "wasm"), feature = "engine-threads")))]
    for (i, (d, s)) in dst.chunks_mut(dst_len).zip(src.chunks(src_len)).enumerate() {
        f(i, s, d);
    }
}

/// Max pool with window `k`, stride `s`, padding `p`, output `oh × ow` (the caller's rounding).
/// Windows are clipped to the input, as Caffe does (the padding never wins a maximum).
/// `None` when `x` is not a burn-flex tensor without autodiff.
pub fn max_pool(x: &Tensor<4>, k: usize, s: usize, p: usize, oh: usize, ow: usize) -> Option<Tensor<4>> {
    let t = flex_f32(x)?;
    let src = t.as_slice::<f32>()?;
    let [b, c, h, w] = x.dims();
    let mut out = vec![0f32; b * c * oh * ow];
    for_each_chunk(src, h * w, &mut out, oh * ow, |_, plane, dst| {
        let mut row = vec![f32::NEG_INFINITY; w];
        for oy in 0..oh {
            // Rows of the window, clipped to the input: their elementwise maximum first
            // (contiguous, vectorised), then the maximum of each horizontal window of it.
            let y0 = (oy * s).saturating_sub(p);
            let y1 = (oy * s + k).saturating_sub(p).min(h);
            row.copy_from_slice(&plane[y0 * w..y0 * w + w]);
            for y in y0 + 1..y1 {
                for (m, &v) in row.iter_mut().zip(&plane[y * w..y * w + w]) {
                    *m = m.max(v);
                }
            }
            for (ox, o) in dst[oy * ow..oy * ow + ow].iter_mut().enumerate() {
                let x0 = (ox * s).saturating_sub(p);
                let x1 = (ox * s + k).saturating_sub(p).min(w);
                *o = row[x0..x1].iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v));
            }
        }
    });
    Some(from_vec(out, [b, c, oh, ow]))
}

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
    let (scale, k) = ((alpha / n as f64) as f32, k as f32);
    let three_quarters = beta == 0.75;
    let beta = beta as f32;
    let mut out = vec![0f32; b * c * plane];
    // One output channel per task; its window's input planes are read in place.
    let channels: Vec<(usize, usize)> = (0..b).flat_map(|bi| (0..c).map(move |ci| (bi, ci))).collect();
    let run = |(bi, ci): (usize, usize), dst: &mut [f32]| {
        let base = bi * c * plane;
        let lo = ci.saturating_sub(before);
        let hi = (ci + after + 1).min(c);
        let mut sum = vec![0f32; plane];
        for cj in lo..hi {
            for (acc, &v) in sum.iter_mut().zip(&src[base + cj * plane..base + (cj + 1) * plane]) {
                *acc += v * v;
            }
        }
        let own = &src[base + ci * plane..base + (ci + 1) * plane];
        for ((o, &v), &s2) in dst.iter_mut().zip(own).zip(&sum) {
            let d = k + scale * s2;
            // beta = 0.75 (the paper's): d^0.75 = sqrt(d) · sqrt(sqrt(d)), far cheaper than powf.
            let denom = if three_quarters { d.sqrt() * d.sqrt().sqrt() } else { d.powf(beta) };
            *o = v / denom;
        }
    };
    #[cfg(any(not(target_family = "wasm"), feature = "engine-threads"))]
    {
        use rayon::prelude::*;
        out.par_chunks_mut(plane).zip(channels.into_par_iter()).for_each(|(d, bc)| run(bc, d));
    }
    #[cfg(not(any(not(target_family = "wasm"), feature = "engine-threads")))]
    for (d, bc) in out.chunks_mut(plane).zip(channels) {
        run(bc, d);
    }
    Some(from_vec(out, [b, c, h, w]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::lrn::Lrn;
    use crate::model::pool::{MaxPool, pool_out};
    use burn::tensor::{Device, Distribution};

    fn max_abs(a: Tensor<4>, b: Tensor<4>) -> f32 {
        (a - b).abs().max().into_scalar()
    }

    #[test]
    fn max_pool_kernel_equals_the_composition() {
        let device = Device::flex();
        for (h, w, k, s, p) in [(112, 112, 3, 2, 0), (57, 30, 3, 2, 0), (28, 28, 3, 1, 1), (14, 14, 2, 2, 0), (7, 9, 3, 2, 1), (3, 5, 3, 2, 0)] {
            let x = Tensor::<4>::random([2, 3, h, w], Distribution::Normal(0.0, 1.0), &device);
            let (oh, ow) = (pool_out(h, k, s, p, true), pool_out(w, k, s, p, true));
            let fast = max_pool(&x, k, s, p, oh, ow).expect("a flex tensor");
            let composed = MaxPool::new(k, s, p, true).forward_composed(x.clone());
            assert_eq!(fast.dims(), composed.dims());
            let d = max_abs(fast, composed);
            assert!(d <= 1e-6, "{h}x{w} k{k} s{s} p{p}: {d}");
        }
    }

    #[test]
    fn lrn_kernel_equals_the_composition() {
        let device = Device::flex();
        let x = Tensor::<4>::random([2, 9, 5, 3], Distribution::Normal(0.0, 30.0), &device);
        for beta in [0.75, 0.6] {
            let layer = Lrn { beta, ..Lrn::caffe() };
            let fast = lrn(&x, layer.size, layer.alpha, layer.beta, layer.k).expect("a flex tensor");
            let d = max_abs(fast, layer.forward_composed(x.clone()));
            assert!(d < 1e-5, "beta {beta}: {d}");
        }
    }

    #[test]
    fn autodiff_tensors_take_the_composition() {
        let x = Tensor::<4>::random([1, 2, 6, 6], Distribution::Normal(0.0, 1.0), &Device::flex()).autodiff();
        assert!(max_pool(&x, 3, 2, 0, 3, 3).is_none());
        assert!(lrn(&x, 5, 1e-4, 0.75, 1.0).is_none());
    }
}
