//! Caffe's max pool in one pass over memory: per output row, the elementwise maximum of the
//! window's input rows (contiguous, vectorised), then the maximum of each horizontal window.

use super::schedule::for_each_chunk;
use super::{flex_f32, from_vec};
use burn::tensor::Tensor;
use std::ops::Range;

/// Max pool with window `k`, stride `s`, padding `p`, output `oh × ow` (the caller's rounding).
/// Windows are clipped to the input, as Caffe does (the padding never wins a maximum).
/// `None` when `x` is not a burn-flex tensor without autodiff.
pub fn max_pool(
    x: &Tensor<4>,
    k: usize,
    s: usize,
    p: usize,
    oh: usize,
    ow: usize,
) -> Option<Tensor<4>> {
    let t = flex_f32(x)?;
    let src = t.as_slice::<f32>()?;
    let [b, c, h, w] = x.dims();
    let mut out = vec![0f32; b * c * oh * ow];
    // Output columns whose window lies wholly inside the row: no clipping, fixed offsets.
    let inner_lo = p.div_ceil(s).min(ow);
    let inner_hi = if w + p >= k {
        ((w + p - k) / s + 1).min(ow)
    } else {
        0
    }
    .max(inner_lo);
    let pool = Pool {
        k,
        s,
        p,
        h,
        w,
        oh,
        ow,
        inner: inner_lo..inner_hi,
    };
    for_each_chunk(&mut out, oh * ow, |i, dst| {
        pool.plane(&src[i * h * w..(i + 1) * h * w], dst)
    });
    Some(from_vec(out, [b, c, oh, ow]))
}

/// One max pool on `h × w` planes.
struct Pool {
    k: usize,
    s: usize,
    p: usize,
    h: usize,
    w: usize,
    oh: usize,
    ow: usize,
    /// Output columns whose window lies wholly inside the row.
    inner: Range<usize>,
}

impl Pool {
    /// One plane (`h × w`) into `dst` (`oh × ow`).
    fn plane(&self, plane: &[f32], dst: &mut [f32]) {
        let Pool {
            k,
            s,
            p,
            h,
            w,
            oh,
            ow,
            ..
        } = *self;
        let mut row = vec![f32::NEG_INFINITY; w];
        for oy in 0..oh {
            // Rows of the window, clipped to the input: their elementwise maximum first.
            let y0 = (oy * s).saturating_sub(p);
            let y1 = (oy * s + k).saturating_sub(p).min(h);
            row.copy_from_slice(&plane[y0 * w..y0 * w + w]);
            for y in y0 + 1..y1 {
                for (m, &v) in row.iter_mut().zip(&plane[y * w..y * w + w]) {
                    *m = max(*m, v);
                }
            }
            self.across(&row, &mut dst[oy * ow..oy * ow + ow]);
        }
    }

    /// The maximum of each horizontal window of `row` (the window rows' maximum) into `out`.
    fn across(&self, row: &[f32], out: &mut [f32]) {
        let Pool { k, s, p, w, ow, .. } = *self;
        let (inner_lo, inner_hi) = (self.inner.start, self.inner.end);
        let clipped = |ox: usize| {
            let x0 = (ox * s).saturating_sub(p);
            let x1 = (ox * s + k).saturating_sub(p).min(w);
            row[x0..x1]
                .iter()
                .fold(f32::NEG_INFINITY, |m, &v| max(m, v))
        };
        for ox in (0..inner_lo).chain(inner_hi..ow) {
            out[ox] = clipped(ox);
        }
        let inner = &mut out[inner_lo..inner_hi];
        let first = (inner_lo * s).wrapping_sub(p);
        if s == 1 {
            // Shifted copies of the row, maxed elementwise (vectorised).
            inner.copy_from_slice(&row[first..first + inner.len()]);
            for kx in 1..k {
                for (o, &v) in inner.iter_mut().zip(&row[first + kx..]) {
                    *o = max(*o, v);
                }
            }
        } else {
            for (i, o) in inner.iter_mut().enumerate() {
                let window = &row[first + i * s..first + i * s + k];
                *o = window[1..].iter().fold(window[0], |m, &v| max(m, v));
            }
        }
    }
}

/// The larger of two values, as one `maxps` (`f32::max`'s NaN rule costs a blend). The inputs
/// are finite: the weights are checked at load and images are 8-bit.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}
