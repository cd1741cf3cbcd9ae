//! The Winograd weights `U = G g Gᵀ` of a filter bank, and the cache that computes them once
//! per model.

use burn::backend::flex::FlexTensor;
use std::sync::{Arc, Mutex};

/// The Winograd weights `U = G g Gᵀ` of a `[cout, cin, 3, 3]` filter bank, as 16 matrices
/// `[16][cout][cin]` (element `(ξ, ν)` of every 4×4 `U` in matrix `4ξ + ν`), the GEMMs' left
/// operands.
pub(super) fn transform(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
    let mut u = vec![0f32; 16 * cout * cin];
    let plane = cout * cin;
    for (f, g) in weight.chunks_exact(9).enumerate() {
        // G g: 4×3, then (G g) Gᵀ: 4×4. G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]].
        let mut gg = [[0f32; 3]; 4];
        for c in 0..3 {
            let (a, b, d) = (g[c], g[3 + c], g[6 + c]);
            gg[0][c] = a;
            gg[1][c] = 0.5 * (a + b + d);
            gg[2][c] = 0.5 * (a - b + d);
            gg[3][c] = d;
        }
        for (r, row) in gg.iter().enumerate() {
            let [a, b, d] = *row;
            let t = [a, 0.5 * (a + b + d), 0.5 * (a - b + d), d];
            for (c, v) in t.into_iter().enumerate() {
                u[(4 * r + c) * plane + f] = v;
            }
        }
    }
    u
}

/// Transformed weights kept per weight buffer, so a model's are computed once, on its first
/// forward, not on every call: the entry holds a clone of the weight tensor, which keeps that
/// buffer alive and shared (burn-flex writes in place only into unshared buffers), so a buffer
/// address seen again is the same, unchanged weights. Least recently used first; bounded.
struct Cache {
    entries: Vec<CacheEntry>,
}

struct CacheEntry {
    weight: FlexTensor,
    /// The weights' `[cout, cin]`.
    dims: [usize; 2],
    u: Arc<Vec<f32>>,
}

/// Transformed weights kept at most (BVLC GoogLeNet's take 14 MiB; a fine-tuned model and the
/// model it started from both fit).
const CACHE_BYTES: usize = 48 << 20;

static CACHE: Mutex<Cache> = Mutex::new(Cache {
    entries: Vec::new(),
});

fn same_buffer(a: &FlexTensor, b: &FlexTensor) -> bool {
    match (a.as_slice::<f32>(), b.as_slice::<f32>()) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}

/// [`transform`] of `weight` (contiguous f32), from the cache when it has them.
pub(in crate::model::kernels) fn cached(
    weight: &FlexTensor,
    cout: usize,
    cin: usize,
) -> Arc<Vec<f32>> {
    {
        let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = cache
            .entries
            .iter()
            .position(|e| same_buffer(&e.weight, weight) && e.dims == [cout, cin])
        {
            let entry = cache.entries.remove(i);
            let u = entry.u.clone();
            cache.entries.push(entry);
            return u;
        }
    }
    // Outside the lock: two threads may both compute the same weights; each result is right.
    let u = Arc::new(transform(
        weight.as_slice::<f32>().expect("contiguous f32 weights"),
        cout,
        cin,
    ));
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.entries.push(CacheEntry {
        weight: weight.clone(),
        dims: [cout, cin],
        u: u.clone(),
    });
    while cache.entries.iter().map(|e| e.u.len() * 4).sum::<usize>() > CACHE_BYTES
        && cache.entries.len() > 1
    {
        cache.entries.remove(0);
    }
    u
}
