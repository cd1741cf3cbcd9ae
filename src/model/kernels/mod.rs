//! Direct CPU kernels for the inference path on burn-flex: the convolutions (im2col tiles and
//! `gemm`, bias and ReLU fused, an Inception block's branches writing into one output; the
//! 3×3 layers on 14×14 and larger planes as Winograd F(2×2, 3×3), their transformed weights
//! computed once per model), Caffe's max pool and LRN (one pass over memory each), all spread
//! over the rayon pool.
//!
//! The layers keep their tensor-op compositions (`basic_conv.rs`, `pool.rs`, `lrn.rs`): those
//! work under autodiff (the fine-tune, Grad-CAM's tail) and on WebGPU. Here, when the input
//! lives on burn-flex without autodiff, the layer runs on the tensor's host buffer instead:
//! burn's `extension` feature hands out the primitive (`try_into_primitive::<Flex>`, an `Arc`
//! clone, no copy and no read of a device) and takes a new one back (`from_primitive`).
//! BENCHMARKS.md has what each step saved.

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{DispatchDevice, Flex};
use burn::tensor::{Bytes, DType, Shape, Tensor};
use std::ops::Range;

/// The tensor's burn-flex primitive, contiguous f32, when `x` is on burn-flex without autodiff.
fn flex_f32<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if !flex_inference(x) {
        return None;
    }
    let t = x.clone().try_into_primitive::<Flex>().ok()?;
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(if t.as_slice::<f32>().is_some() { t } else { t.to_contiguous() })
}

/// Whether `x` is on burn-flex without autodiff, where these kernels run.
pub fn flex_inference<const D: usize>(x: &Tensor<D>) -> bool {
    !x.is_autodiff() && matches!(x.device().as_dispatch(), DispatchDevice::Flex(_))
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

/// A convolution's geometry for one image: `[cin, h, w]` in, `[cout, oh, ow]` out.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConvGeom {
    pub cin: usize,
    pub h: usize,
    pub w: usize,
    pub cout: usize,
    pub kh: usize,
    pub kw: usize,
    pub stride: [usize; 2],
    /// Top and left padding (bottom and right are implied by `oh`, `ow`).
    pub pad: [usize; 2],
    pub oh: usize,
    pub ow: usize,
}

impl ConvGeom {
    /// Rows of the im2col matrix: `cin · kh · kw`, the weights' row length.
    fn depth(&self) -> usize {
        self.cin * self.kh * self.kw
    }

    fn positions(&self) -> usize {
        self.oh * self.ow
    }

    /// A 1×1 stride-1 unpadded conv: the input itself is the GEMM's right operand.
    fn pointwise(&self) -> bool {
        self.kh == 1 && self.kw == 1 && self.stride == [1, 1] && self.pad == [0, 0] && self.oh == self.h && self.ow == self.w
    }
}

/// A pointer rayon tasks share to write disjoint elements of one output buffer.
#[derive(Clone, Copy)]
struct Out(*mut f32);
// SAFETY: every task writes its own rows × columns of the output; none reads another's.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `at` elements on (a method, so closures capture the `Send` wrapper).
    fn at(self, at: usize) -> *mut f32 {
        self.0.wrapping_add(at)
    }
}

/// Columns per GEMM tile, and the number of row chunks each tile is split into, for a conv of
/// `batch` images (`batch · positions` output columns, `cout` rows) on `threads` threads.
/// gemm packs the weights on every call, so tiles are as wide as the cache allows: a tile's
/// im2col block (`depth × cols`) stays around 1 MiB. A 1×1 conv reads its input in place (no
/// im2col), one image per tile, where a plane has 512 positions or more; on smaller planes (the
/// 14×14 and 7×7 blocks) tiles span images, so a batch makes wider, faster GEMMs.
fn plan(g: &ConvGeom, batch: usize, threads: usize) -> (usize, usize) {
    let n = g.positions();
    let target = if g.pointwise() && (batch == 1 || n >= 512) { n } else { (262_144 / g.depth().max(1)).clamp(128, 1024) };
    let total = batch * n;
    let tiles = total.div_ceil(target).max(1);
    (total.div_ceil(tiles), row_chunks(tiles, g.cout, threads))
}

/// Chunks of output channels per column chunk: with too few column chunks for the threads (the
/// 7×7 and 14×14 blocks), the output channels are split too (16 at least per chunk).
fn row_chunks(column_chunks: usize, cout: usize, threads: usize) -> usize {
    let want = 2 * threads;
    if threads > 1 && column_chunks < want { want.div_ceil(column_chunks).min(cout / 16).max(1) } else { 1 }
}

/// `task(columns, rows)` over the blocks of an `n`-column × `m`-row output: columns in chunks of
/// `cols`, rows in `row_chunks` chunks (empty ones skipped), on the rayon pool where the build
/// has one and there is more than one block.
fn for_each_block(n: usize, cols: usize, m: usize, row_chunks: usize, task: impl Fn(Range<usize>, Range<usize>) + Sync + Send) {
    let rows = m.div_ceil(row_chunks);
    let tasks = n.div_ceil(cols) * row_chunks;
    let block = |t: usize| {
        let (n0, m0) = ((t / row_chunks) * cols, (t % row_chunks) * rows);
        let (n1, m1) = ((n0 + cols).min(n), (m0 + rows).min(m));
        if m0 < m1 {
            task(n0..n1, m0..m1);
        }
    };
    #[cfg(any(not(target_family = "wasm"), feature = "engine-threads"))]
    if tasks > 1 {
        use rayon::prelude::*;
        (0..tasks).into_par_iter().for_each(block);
        return;
    }
    (0..tasks).for_each(block);
}

thread_local! {
    /// Each thread's im2col block, kept between calls.
    static COLUMNS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The first `len` elements of a thread's scratch buffer, grown (never shrunk) to hold them.
fn scratch(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}

/// im2col for output positions `n0..n1` of one image: row `(ci, ky, kx)` of `col` (row `r`
/// starts at `r · ld`) holds, in its first `n1 - n0` elements, the input value each position's
/// window reads there, 0 in the padding.
fn im2col(src: &[f32], g: &ConvGeom, n0: usize, n1: usize, col: &mut [f32], ld: usize) {
    let cols = n1 - n0;
    let [sy, sx] = g.stride;
    let [py, px] = g.pad;
    let mut row = 0;
    for ci in 0..g.cin {
        let plane = &src[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                let dst = &mut col[row * ld..row * ld + cols];
                row += 1;
                // Output columns whose input column `ox·sx + kx − px` is inside the image.
                let lo = px.saturating_sub(kx).div_ceil(sx).min(g.ow);
                let hi = if g.w + px > kx { (g.w + px - kx).div_ceil(sx).min(g.ow) } else { 0 }.max(lo);
                let mut n = n0;
                while n < n1 {
                    let (oy, ox0) = (n / g.ow, n % g.ow);
                    let ox1 = g.ow.min(ox0 + n1 - n);
                    let out = &mut dst[n - n0..n - n0 + ox1 - ox0];
                    n += ox1 - ox0;
                    let iy = (oy * sy + ky).wrapping_sub(py);
                    if iy >= g.h {
                        out.fill(0.0);
                        continue;
                    }
                    let line = &plane[iy * g.w..(iy + 1) * g.w];
                    let (a, b) = (lo.clamp(ox0, ox1), hi.clamp(ox0, ox1));
                    out[..a - ox0].fill(0.0);
                    out[b - ox0..].fill(0.0);
                    let inside = &mut out[a - ox0..b - ox0];
                    if inside.is_empty() {
                        continue;
                    }
                    let ix0 = a * sx + kx - px;
                    if sx == 1 {
                        inside.copy_from_slice(&line[ix0..ix0 + inside.len()]);
                    } else {
                        for (o, v) in inside.iter_mut().zip(line[ix0..].iter().step_by(sx)) {
                            *o = *v;
                        }
                    }
                }
            }
        }
    }
}

thread_local! {
    /// Each thread's output tile for tiles that span images, kept between calls.
    static TILE: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The pieces of global output columns `c0..c1` (image-major, `n` per image) by image:
/// `(image, first position, end position, offset within c0..c1)`.
fn pieces(c0: usize, c1: usize, n: usize) -> impl Iterator<Item = (usize, usize, usize, usize)> {
    (c0 / n..c1.div_ceil(n)).map(move |i| {
        let (a, b) = (c0.max(i * n) - i * n, c1.min((i + 1) * n) - i * n);
        (i, a, b, i * n + a - c0)
    })
}

/// The convolution of `batch` images (`src`, `[batch, cin, h, w]`), `+ bias`, then ReLU if
/// `relu`: image `i`'s output channel `co` is written at `dst + i · image_stride + co · oh·ow`
/// (so `dst` may point into a larger tensor, e.g. one branch of a block). A tile inside one
/// image is written in place; one that spans images (small planes) goes through a tile buffer.
///
/// # Safety
/// `dst` must be valid for those `batch · cout · oh·ow` writes, which nothing else reads or
/// writes meanwhile.
#[allow(clippy::too_many_arguments)]
unsafe fn conv_images(src: &[f32], g: &ConvGeom, batch: usize, weight: &[f32], bias: Option<&[f32]>, relu: bool, dst: Out, image_stride: usize, threads: usize) {
    let (n, k, m) = (g.positions(), g.depth(), g.cout);
    let image = g.cin * g.h * g.w;
    let (cols, row_chunks) = plan(g, batch, threads);
    for_each_block(batch * n, cols, m, row_chunks, |Range { start: c0, end: c1 }, Range { start: m0, end: m1 }| {
        let width = c1 - c0;
        let gemm = |out: *mut f32, out_rs: usize, rhs: *const f32, rhs_rs: usize| unsafe {
            gemm::gemm(
                m1 - m0,
                width,
                k,
                out,
                1,
                out_rs as isize,
                bias.is_some(),
                weight.as_ptr().add(m0 * k),
                1,
                k as isize,
                rhs,
                1,
                rhs_rs as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                gemm::Parallelism::None,
            )
        };
        let (i, n0) = (c0 / n, c0 % n);
        if n0 + width <= n {
            // One image's positions n0..n1: straight into the output.
            let (src, base) = (&src[i * image..(i + 1) * image], i * image_stride);
            // SAFETY: rows m0..m1, columns n0..n1 of image i's output belong to this task alone.
            let out = |co: usize| unsafe { std::slice::from_raw_parts_mut(dst.at(base + co * n + n0), width) };
            if let Some(bias) = bias {
                for co in m0..m1 {
                    out(co).fill(bias[co]);
                }
            }
            if g.pointwise() {
                gemm(dst.at(base + m0 * n + n0), n, src.as_ptr().wrapping_add(n0), n);
            } else {
                COLUMNS.with_borrow_mut(|col| {
                    let col = scratch(col, k * width);
                    im2col(src, g, n0, n0 + width, col, width);
                    gemm(dst.at(base + m0 * n + n0), n, col.as_ptr(), width);
                });
            }
            if relu {
                for co in m0..m1 {
                    for v in out(co) {
                        *v = relu_nan(*v);
                    }
                }
            }
            return;
        }
        // Columns of several images: im2col piece by piece into one block, the product into
        // the tile buffer, then bias and ReLU on the way out.
        COLUMNS.with_borrow_mut(|col| {
            TILE.with_borrow_mut(|tile| {
                let (col, tile) = (scratch(col, k * width), scratch(tile, (m1 - m0) * width));
                for (i, a, b, at) in pieces(c0, c1, n) {
                    im2col(&src[i * image..(i + 1) * image], g, a, b, &mut col[at..], width);
                }
                if let Some(bias) = bias {
                    for (row, b) in tile.chunks_exact_mut(width).zip(&bias[m0..m1]) {
                        row.fill(*b);
                    }
                }
                gemm(tile.as_mut_ptr(), width, col.as_ptr(), width);
                for (i, a, b, at) in pieces(c0, c1, n) {
                    for (co, row) in (m0..m1).zip(tile.chunks_exact(width)) {
                        // SAFETY: positions a..b of image i, channel co, are this task's alone.
                        let out = unsafe { std::slice::from_raw_parts_mut(dst.at(i * image_stride + co * n + a), b - a) };
                        for (o, v) in out.iter_mut().zip(&row[at..at + b - a]) {
                            *o = activate(*v, relu);
                        }
                    }
                }
            })
        });
    });
}

/// Whether `g` is a 3×3, stride-1 convolution that keeps the image size (pad 1): every 3×3
/// layer of GoogLeNet, run as Winograd F(2×2, 3×3) (see [`winograd_images`]).
fn winograd_applies(g: &ConvGeom) -> bool {
    g.kh == 3 && g.kw == 3 && g.stride == [1, 1] && g.pad == [1, 1] && g.oh == g.h && g.ow == g.w && g.h * g.w >= WINOGRAD_MIN_PLANE
}

/// Smaller planes (the 7×7 blocks) keep the direct GEMM: their 2×2 tiles cover an 8×8 plane
/// and the weight transform is as large as the work it saves.
const WINOGRAD_MIN_PLANE: usize = 14 * 14;

/// The Winograd weights `U = G g Gᵀ` of a `[cout, cin, 3, 3]` filter bank, as 16 matrices
/// `[16][cout][cin]` (element `(ξ, ν)` of every 4×4 `U` in matrix `4ξ + ν`), the GEMMs' left
/// operands.
fn winograd_weights(weight: &[f32], cout: usize, cin: usize) -> Vec<f32> {
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
struct WinogradCache {
    /// (weights, their `[cout, cin]`, the transform).
    entries: Vec<(FlexTensor, [usize; 2], std::sync::Arc<Vec<f32>>)>,
}

/// Transformed weights kept at most (BVLC GoogLeNet's take 14 MiB; a fine-tuned model and the
/// model it started from both fit).
const WINOGRAD_CACHE_BYTES: usize = 48 << 20;

static WINOGRAD_CACHE: std::sync::Mutex<WinogradCache> = std::sync::Mutex::new(WinogradCache { entries: Vec::new() });

fn same_buffer(a: &FlexTensor, b: &FlexTensor) -> bool {
    match (a.as_slice::<f32>(), b.as_slice::<f32>()) {
        (Some(a), Some(b)) => std::ptr::eq(a, b),
        _ => false,
    }
}

/// [`winograd_weights`] of `weight` (contiguous f32), from the cache when it has them.
fn winograd_weights_cached(weight: &FlexTensor, cout: usize, cin: usize) -> std::sync::Arc<Vec<f32>> {
    {
        let mut cache = WINOGRAD_CACHE.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(i) = cache.entries.iter().position(|(w, dims, _)| same_buffer(w, weight) && *dims == [cout, cin]) {
            let entry = cache.entries.remove(i);
            let u = entry.2.clone();
            cache.entries.push(entry);
            return u;
        }
    }
    // Outside the lock: two threads may both compute the same weights; each result is right.
    let u = std::sync::Arc::new(winograd_weights(weight.as_slice::<f32>().expect("contiguous f32 weights"), cout, cin));
    let mut cache = WINOGRAD_CACHE.lock().unwrap_or_else(|e| e.into_inner());
    cache.entries.push((weight.clone(), [cout, cin], u.clone()));
    while cache.entries.iter().map(|(_, _, u)| u.len() * 4).sum::<usize>() > WINOGRAD_CACHE_BYTES && cache.entries.len() > 1 {
        cache.entries.remove(0);
    }
    u
}

thread_local! {
    /// Each thread's Winograd input and product matrices, kept between calls.
    static WINOGRAD: std::cell::RefCell<(Vec<f32>, Vec<f32>, Vec<f32>)> = const { std::cell::RefCell::new((Vec::new(), Vec::new(), Vec::new())) };
}

/// Tiles (2×2 output blocks) in all, tiles per task and row chunks, for `batch` images: the 16
/// input matrices of a chunk (`16 · cin · tiles`) stay near 1 MiB; a chunk may span images.
fn winograd_plan(g: &ConvGeom, batch: usize, threads: usize) -> (usize, usize, usize) {
    let tiles = batch * g.h.div_ceil(2) * g.w.div_ceil(2);
    let chunk = (16_384 / g.cin.max(1)).clamp(16, 256).min(tiles);
    let chunks = tiles.div_ceil(chunk);
    (tiles, tiles.div_ceil(chunks), row_chunks(chunks, g.cout, threads))
}

/// The tiles `t0..t1` (image-major, then row-major over each image's grid, `th` rows of `tw`)
/// as row segments: `(image, tile row, first tile column, end tile column, index of the first
/// tile within t0..t1)`.
fn segments(t0: usize, t1: usize, th: usize, tw: usize) -> impl Iterator<Item = (usize, usize, usize, usize, usize)> {
    let mut t = t0;
    std::iter::from_fn(move || {
        if t >= t1 {
            return None;
        }
        let (img, rest) = (t / (th * tw), t % (th * tw));
        let (ty, tx0) = (rest / tw, rest % tw);
        let tx1 = tw.min(tx0 + t1 - t);
        let seg = (img, ty, tx0, tx1, t - t0);
        t += tx1 - tx0;
        Some(seg)
    })
}

/// The 3×3 stride-1 pad-1 convolution of `batch` images as Winograd F(2×2, 3×3) (Lavin & Gray
/// 2015): each 2×2 output block is `Aᵀ [Σ_ci U ⊙ (Bᵀ d B)] A` over its 4×4 input block `d`, so
/// 16 GEMMs of `[cout × cin]·[cin × tiles]` replace one of `[cout × 9·cin]·[9·cin × 4·tiles]`:
/// 2.25× fewer multiply-adds. The tiles of all images are one column space, so a batch of
/// small planes makes wider GEMMs. `u` is [`winograd_weights`]; bias and ReLU are applied as
/// each block is written. Same contract as [`conv_images`].
#[allow(clippy::too_many_arguments)]
unsafe fn winograd_images(src: &[f32], g: &ConvGeom, batch: usize, u: &[f32], bias: Option<&[f32]>, relu: bool, dst: Out, image_stride: usize, threads: usize) {
    let (h, w, cin, cout) = (g.h, g.w, g.cin, g.cout);
    let (th, tw) = (h.div_ceil(2), w.div_ceil(2));
    let image = cin * h * w;
    let (tiles, chunk, row_chunks) = winograd_plan(g, batch, threads);
    for_each_block(tiles, chunk, cout, row_chunks, |Range { start: t0, end: t1 }, Range { start: m0, end: m1 }| {
        let n = t1 - t0;
        let m = m1 - m0;
        WINOGRAD.with_borrow_mut(|(v, prod, rowbuf)| {
            let (v, prod) = (scratch(v, 16 * cin * n), scratch(prod, 16 * m * n));
            // V = Bᵀ d B for every (ci, tile): matrix 4ξ+ν, row ci, column tile. Bᵀ =
            // [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]]. Tile rows at a time: first Bᵀ d
            // down the columns of four image rows (elementwise over the row, vectorised),
            // then · B across each tile's four columns.
            // Four image rows, zero-padded: column xx is image column xx − 1; the borders stay 0.
            let span = 2 * tw + 2;
            rowbuf.clear();
            rowbuf.resize(8 * span, 0.0);
            let (pad, bd) = rowbuf.split_at_mut(4 * span);
            for ci in 0..cin {
                for (img, ty, tx0, tx1, j0) in segments(t0, t1, th, tw) {
                    let plane = &src[img * image + ci * h * w..img * image + (ci + 1) * h * w];
                    for r in 0..4 {
                        let row = &mut pad[r * span + 1..r * span + 1 + w];
                        match (2 * ty + r).checked_sub(1) {
                            Some(y) if y < h => row.copy_from_slice(&plane[y * w..(y + 1) * w]),
                            _ => row.fill(0.0),
                        }
                    }
                    // Bᵀ d down each padded column (elementwise, vectorised).
                    let (x0, x1) = (2 * tx0, 2 * tx1 + 2);
                    let (p0, rest) = pad.split_at(span);
                    let (p1, rest) = rest.split_at(span);
                    let (p2, p3) = rest.split_at(span);
                    let (b0, rest) = bd.split_at_mut(span);
                    let (b1, rest) = rest.split_at_mut(span);
                    let (b2, b3) = rest.split_at_mut(span);
                    for xx in x0..x1 {
                        let (d0, d1, d2, d3) = (p0[xx], p1[xx], p2[xx], p3[xx]);
                        b0[xx] = d0 - d2;
                        b1[xx] = d1 + d2;
                        b2[xx] = d2 - d1;
                        b3[xx] = d1 - d3;
                    }
                    // · B across each tile's four columns, into row ci of matrices 4r..4r+3.
                    let len = tx1 - tx0;
                    for (r, b) in [&*b0, &*b1, &*b2, &*b3].into_iter().enumerate() {
                        let at = (4 * r * cin + ci) * n + j0;
                        let step = cin * n;
                        assert!(at + 3 * step + len <= v.len() && 2 * tx1 + 2 <= b.len());
                        // SAFETY: the four row segments and the columns read are in bounds
                        // (checked just above), and the four segments are disjoint.
                        unsafe {
                            let (v0, b) = (v.as_mut_ptr().add(at), b.as_ptr().add(2 * tx0));
                            for k in 0..len {
                                let (e0, o0, e1, o1) = (*b.add(2 * k), *b.add(2 * k + 1), *b.add(2 * k + 2), *b.add(2 * k + 3));
                                *v0.add(k) = e0 - e1;
                                *v0.add(step + k) = o0 + e1;
                                *v0.add(2 * step + k) = e1 - o0;
                                *v0.add(3 * step + k) = o0 - o1;
                            }
                        }
                    }
                }
            }
            for e in 0..16 {
                // SAFETY: the matrices are in bounds of `u`, `v` and `prod`.
                unsafe {
                    gemm::gemm(
                        m,
                        n,
                        cin,
                        prod.as_mut_ptr().add(e * m * n),
                        1,
                        n as isize,
                        false,
                        u.as_ptr().add((e * cout + m0) * cin),
                        1,
                        cin as isize,
                        v.as_ptr().add(e * cin * n),
                        1,
                        n as isize,
                        1.0,
                        1.0,
                        false,
                        false,
                        false,
                        gemm::Parallelism::None,
                    )
                };
            }
            // Y = Aᵀ M A, Aᵀ = [[1,1,1,0],[0,1,−1,−1]], + bias, ReLU, written straight into the
            // output; the last column and row of an odd-sized image are clipped.
            let mn = m * n;
            assert!(16 * mn <= prod.len());
            for co in 0..m {
                let b = bias.map_or(0.0, |b| b[m0 + co]);
                for (img, ty, tx0, tx1, j0) in segments(t0, t1, th, tw) {
                    let len = tx1 - tx0;
                    // Tiles with both columns inside the image; the last one may have one.
                    let full = if 2 * tx1 <= w { len } else { len - 1 };
                    let (y, second) = (2 * ty, 2 * ty + 1 < h);
                    // SAFETY: products 16·m·n are in bounds (asserted); the output columns
                    // 2·tx0 ≤ x < min(2·tx1, w) of rows y and y+1 < h of channel m0+co are this
                    // task's alone, inside the output (the caller's contract).
                    unsafe {
                        let pr = prod.as_ptr().add(co * n + j0);
                        let top = dst.at(img * image_stride + (m0 + co) * h * w + y * w + 2 * tx0);
                        let bottom = top.wrapping_add(w);
                        let tile = |k: usize| {
                            let q = |e: usize| *pr.add(e * mn + k);
                            let (a0, a1, a2, a3) = (q(0) + q(4) + q(8), q(1) + q(5) + q(9), q(2) + q(6) + q(10), q(3) + q(7) + q(11));
                            let (c0, c1, c2, c3) = (q(4) - q(8) - q(12), q(5) - q(9) - q(13), q(6) - q(10) - q(14), q(7) - q(11) - q(15));
                            [a0 + a1 + a2 + b, a1 - a2 - a3 + b, c0 + c1 + c2 + b, c1 - c2 - c3 + b].map(|v| activate(v, relu))
                        };
                        for k in 0..full {
                            let [y00, y01, y10, y11] = tile(k);
                            *top.add(2 * k) = y00;
                            *top.add(2 * k + 1) = y01;
                            if second {
                                *bottom.add(2 * k) = y10;
                                *bottom.add(2 * k + 1) = y11;
                            }
                        }
                        if full < len {
                            let [y00, _, y10, _] = tile(full);
                            *top.add(2 * full) = y00;
                            if second {
                                *bottom.add(2 * full) = y10;
                            }
                        }
                    }
                }
            }
        });
    });
}
fn threads() -> usize {
    #[cfg(any(not(target_family = "wasm"), feature = "engine-threads"))]
    return rayon::current_num_threads();
    #[allow(unreachable_code)]
    1
}

/// A convolution ready to run on burn-flex buffers: `relu(conv2d(x, weight) + bias)` (ReLU
/// only if asked), dilation 1, one group. The weights' `[cout, cin, kh, kw]` buffer is the
/// GEMM's left operand as it is (no packing); each tile of output positions builds its im2col
/// block straight from NCHW, and the bias and ReLU are applied on the tile while it is in cache.
/// 3×3 stride-1 pad-1 layers on planes of 14×14 or more take [`winograd_images`] instead.
pub struct Conv {
    x: FlexTensor,
    weight: FlexTensor,
    bias: Option<FlexTensor>,
    g: ConvGeom,
    batch: usize,
}

impl Conv {
    /// `None` when the tensors are not burn-flex f32 without autodiff, or do not fit together.
    /// `pad` is `[top, left, bottom, right]`.
    pub fn new(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, stride: [usize; 2], pad: [usize; 4]) -> Option<Conv> {
        let [batch, cin, h, w] = x.dims();
        let [cout, wcin, kh, kw] = weight.dims();
        if wcin != cin || h + pad[0] + pad[2] < kh || w + pad[1] + pad[3] < kw || stride.contains(&0) {
            return None;
        }
        if bias.is_some_and(|b| b.dims() != [cout]) {
            return None;
        }
        let oh = (h + pad[0] + pad[2] - kh) / stride[0] + 1;
        let ow = (w + pad[1] + pad[3] - kw) / stride[1] + 1;
        let bias = match bias {
            Some(b) => Some(flex_f32(b)?),
            None => None,
        };
        Some(Conv {
            x: flex_f32(x)?,
            weight: flex_f32(weight)?,
            bias,
            g: ConvGeom { cin, h, w, cout, kh, kw, stride, pad: [pad[0], pad[1]], oh, ow },
            batch,
        })
    }

    /// `[batch, cout, oh, ow]`.
    pub fn out_dims(&self) -> [usize; 4] {
        [self.batch, self.g.cout, self.g.oh, self.g.ow]
    }

    /// The output as a new tensor.
    pub fn output(&self, relu: bool) -> Tensor<4> {
        let dims = self.out_dims();
        let mut out = vec![0f32; dims.iter().product()];
        // SAFETY: `out` is the whole `[batch, cout, oh, ow]` output, owned here.
        unsafe { self.run(relu, Out(out.as_mut_ptr()), dims[1] * dims[2] * dims[3]) };
        from_vec(out, dims)
    }

    /// Image `i`'s output channel `co` goes to `dst + i · image_stride + co · oh·ow`.
    ///
    /// # Safety
    /// Those `batch · cout · oh·ow` elements must be valid for writes that nothing else reads
    /// or writes meanwhile.
    unsafe fn run(&self, relu: bool, dst: Out, image_stride: usize) {
        let g = &self.g;
        let (Some(src), Some(weight)) = (self.x.as_slice::<f32>(), self.weight.as_slice::<f32>()) else {
            unreachable!("flex_f32 made both contiguous f32");
        };
        let bias = self.bias.as_ref().and_then(|b| b.as_slice::<f32>());
        if self.batch == 0 {
            return;
        }
        let threads = threads();
        if winograd_applies(g) {
            let u = winograd_weights_cached(&self.weight, g.cout, g.cin);
            // SAFETY: the caller's contract.
            unsafe { winograd_images(src, g, self.batch, &u, bias, relu, dst, image_stride, threads) };
        } else {
            // SAFETY: the caller's contract.
            unsafe { conv_images(src, g, self.batch, weight, bias, relu, dst, image_stride, threads) };
        }
    }
}

/// `relu(conv2d(x, weight) + bias)` (see [`Conv`]) as a new tensor; `None` when the tensors
/// are not burn-flex f32 without autodiff.
pub fn conv2d(x: &Tensor<4>, weight: &Tensor<4>, bias: Option<&Tensor<1>>, stride: [usize; 2], pad: [usize; 4], relu: bool) -> Option<Tensor<4>> {
    Some(Conv::new(x, weight, bias, stride, pad)?.output(relu))
}

/// One output tensor that several convolutions write their own channels of, at once (an
/// Inception block's four branches, without a concatenation copy).
pub struct Concat {
    buf: Vec<f32>,
    ptr: Out,
    dims: [usize; 4],
    /// Channel ranges written so far: a second writer of a channel is refused.
    claimed: std::sync::Mutex<Vec<std::ops::Range<usize>>>,
}

impl Concat {
    pub fn new(dims: [usize; 4]) -> Concat {
        let mut buf = vec![0f32; dims.iter().product()];
        let ptr = Out(buf.as_mut_ptr());
        Concat { buf, ptr, dims, claimed: std::sync::Mutex::new(Vec::new()) }
    }

    /// Runs `conv` into channels `offset..offset + cout` of every image.
    ///
    /// # Panics
    /// When the output does not fit there, or those channels were already written.
    pub fn write(&self, conv: &Conv, offset: usize, relu: bool) {
        let [b, c, h, w] = self.dims;
        let [cb, cc, ch, cw] = conv.out_dims();
        assert!(cb == b && ch == h && cw == w && offset + cc <= c, "a {:?} output does not fit channel {offset} of {:?}", conv.out_dims(), self.dims);
        let range = offset..offset + cc;
        {
            let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
            assert!(claimed.iter().all(|r| r.end <= range.start || range.end <= r.start), "channels {range:?} were already written");
            claimed.push(range);
        }
        // SAFETY: the channels are in bounds and claimed by this call alone; `buf` is not
        // otherwise touched until `into_tensor` takes `self`.
        unsafe { conv.run(relu, Out(self.ptr.at(offset * h * w)), c * h * w) };
    }

    pub fn into_tensor(self) -> Tensor<4> {
        from_vec(self.buf, self.dims)
    }
}

/// ReLU where the layer has one, else the value as it is.
#[inline(always)]
fn activate(v: f32, relu: bool) -> f32 {
    if relu { relu_nan(v) } else { v }
}

/// ReLU that keeps a NaN, as burn's `relu` and PyTorch do (`f32::max(NaN, 0)` is 0, which would
/// hide a broken model behind plausible numbers).
#[inline(always)]
fn relu_nan(v: f32) -> f32 {
    if v > 0.0 || v.is_nan() { v } else { 0.0 }
}

/// The larger of two values, as one `maxps` (`f32::max`'s NaN rule costs a blend). The inputs
/// are finite: the weights are checked at load and images are 8-bit.
#[inline(always)]
fn max(a: f32, b: f32) -> f32 {
    if a > b { a } else { b }
}

/// Max pool with window `k`, stride `s`, padding `p`, output `oh × ow` (the caller's rounding).
/// Windows are clipped to the input, as Caffe does (the padding never wins a maximum).
/// `None` when `x` is not a burn-flex tensor without autodiff.
pub fn max_pool(x: &Tensor<4>, k: usize, s: usize, p: usize, oh: usize, ow: usize) -> Option<Tensor<4>> {
    let t = flex_f32(x)?;
    let src = t.as_slice::<f32>()?;
    let [b, c, h, w] = x.dims();
    let mut out = vec![0f32; b * c * oh * ow];
    // Output columns whose window lies wholly inside the row: no clipping, fixed offsets.
    let inner_lo = p.div_ceil(s).min(ow);
    let inner_hi = if w + p >= k { ((w + p - k) / s + 1).min(ow) } else { 0 }.max(inner_lo);
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
                    *m = max(*m, v);
                }
            }
            let out = &mut dst[oy * ow..oy * ow + ow];
            let clipped = |ox: usize| {
                let x0 = (ox * s).saturating_sub(p);
                let x1 = (ox * s + k).saturating_sub(p).min(w);
                row[x0..x1].iter().fold(f32::NEG_INFINITY, |m, &v| max(m, v))
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
        // Separate loops per case, so each one vectorises (sqrt and div have SIMD forms,
        // powf does not).
        if three_quarters {
            // d^0.75 = sqrt(d) · sqrt(sqrt(d)), far cheaper than powf.
            for ((o, &v), &s2) in dst.iter_mut().zip(own).zip(&sum) {
                let d = k + scale * s2;
                let r = d.sqrt();
                *o = v / (r * r.sqrt());
            }
        } else {
            for ((o, &v), &s2) in dst.iter_mut().zip(own).zip(&sum) {
                *o = v / (k + scale * s2).powf(beta);
            }
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
    fn conv_kernel_equals_burns_conv2d() {
        use burn::tensor::module::conv2d as burn_conv2d;
        use burn::tensor::ops::ConvOptions;
        let device = Device::flex();
        // (cin, h, w, cout, k, stride, pad, bias): GoogLeNet's shapes and awkward ones (odd
        // sizes, padding wider than a row, more outputs than 16-row chunks, tiny images).
        let cases = [
            (3, 37, 29, 64, 7, 2, 3, true),
            (64, 14, 14, 192, 3, 1, 1, true),
            (16, 9, 11, 33, 5, 1, 2, false),
            (32, 7, 7, 128, 1, 1, 0, true),
            (5, 3, 2, 7, 3, 2, 1, true),
            (4, 1, 40, 6, 3, 1, 1, true),
            (8, 600, 3, 5, 1, 1, 0, false),
            (3, 2, 2, 4, 5, 1, 2, true),
            // Winograd (3×3, stride 1, pad 1, planes of 14×14 and more): odd sides (clipped
            // edge blocks), one row, no bias, more tiles than one chunk.
            (24, 15, 17, 40, 3, 1, 1, false),
            (3, 1, 300, 5, 3, 1, 1, true),
            (17, 29, 28, 19, 3, 1, 1, true),
            (64, 56, 56, 24, 3, 1, 1, true),
            // Small planes, whose tiles span the images of a batch: 1×1 on 14×14 and 7×7, a
            // direct 3×3 on 7×7, a Winograd 3×3 whose chunks end mid-image.
            (480, 14, 14, 40, 1, 1, 0, true),
            (40, 7, 7, 48, 1, 1, 0, true),
            (32, 7, 7, 20, 3, 1, 1, true),
            (96, 14, 14, 20, 3, 1, 1, true),
        ];
        for ((cin, h, w, cout, k, s, p, with_bias), batch) in cases.into_iter().flat_map(|c| [(c, 1), (c, 2), (c, 5)]) {
            let x = Tensor::<4>::random([batch, cin, h, w], Distribution::Normal(0.0, 1.0), &device);
            let weight = Tensor::<4>::random([cout, cin, k, k], Distribution::Normal(0.0, 0.3), &device);
            let bias = with_bias.then(|| Tensor::<1>::random([cout], Distribution::Normal(0.0, 1.0), &device));
            let reference = burn_conv2d(x.clone(), weight.clone(), bias.clone(), ConvOptions::new([s, s], [p, p], [1, 1], 1));
            for relu in [false, true] {
                let fast = conv2d(&x, &weight, bias.as_ref(), [s, s], [p; 4], relu).expect("flex tensors");
                let expected = if relu { burn::tensor::activation::relu(reference.clone()) } else { reference.clone() };
                assert_eq!(fast.dims(), expected.dims(), "{batch}×{cin}x{h}x{w} -> {cout} k{k} s{s} p{p}");
                let d = max_abs(fast, expected);
                assert!(d < 1e-4, "{batch}×{cin}x{h}x{w} -> {cout} k{k} s{s} p{p} relu {relu}: {d}");
            }
        }
    }

    #[test]
    fn a_nan_input_stays_nan() {
        use burn::tensor::module::conv2d as burn_conv2d;
        use burn::tensor::ops::ConvOptions;
        let device = Device::flex();
        // (batch, cin, side, k, pad): one image, direct; a 1×1 whose tiles span the images of a
        // batch; a Winograd 3×3. A NaN in one input must come out as NaN (never −∞ or 0)
        // wherever burn's convolution, and its ReLU, have one.
        for (batch, cin, side, k, p) in [(1, 3, 9, 3, 0), (5, 40, 7, 1, 0), (2, 24, 14, 3, 1)] {
            let x = Tensor::<4>::random([batch, cin, side, side], Distribution::Normal(0.0, 1.0), &device);
            let mut values = x.to_data().to_vec::<f32>().unwrap();
            values[(batch - 1) * cin * side * side + 3 * side + 3] = f32::NAN;
            let x = Tensor::<4>::from_data(burn::tensor::TensorData::new(values, [batch, cin, side, side]), &device);
            let w = Tensor::<4>::random([8, cin, k, k], Distribution::Normal(0.0, 0.3), &device);
            let conv = burn_conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [p, p], [1, 1], 1));
            for relu in [false, true] {
                let reference = if relu { burn::tensor::activation::relu(conv.clone()) } else { conv.clone() };
                let fast = conv2d(&x, &w, None, [1, 1], [p; 4], relu).unwrap();
                let (fast, reference) = (fast.to_data().to_vec::<f32>().unwrap(), reference.to_data().to_vec::<f32>().unwrap());
                let nans = reference.iter().filter(|v| v.is_nan()).count();
                assert!(nans > 0, "the reference has no NaN");
                assert!(fast.iter().all(|v| !v.is_infinite()), "batch {batch} k{k} relu {relu}: a NaN became ±∞");
                for (i, (f, r)) in fast.iter().zip(&reference).enumerate() {
                    assert!(!r.is_nan() || f.is_nan(), "batch {batch} k{k} relu {relu}: output {i} is {f}, burn's is NaN");
                }
            }
        }
    }

    #[test]
    fn winograd_weights_follow_the_weights() {
        use burn::tensor::module::conv2d as burn_conv2d;
        use burn::tensor::ops::ConvOptions;
        let device = Device::flex();
        let x = Tensor::<4>::random([1, 8, 16, 16], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<4>::random([12, 8, 3, 3], Distribution::Normal(0.0, 0.3), &device);
        let reference = |w: &Tensor<4>| burn_conv2d(x.clone(), w.clone(), None, ConvOptions::new([1, 1], [1, 1], [1, 1], 1));
        let first = conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap();
        assert!(max_abs(first.clone(), reference(&w)) < 1e-4);
        // Same weights again: the cached transform, the same output.
        assert_eq!(max_abs(conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap(), first), 0.0);
        // New weights made from the old tensor (an update that could reuse its buffer in
        // place if nothing else held it): the new weights' output, never the cached one.
        let w = w.mul_scalar(-2.0);
        let d = max_abs(conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap(), reference(&w));
        assert!(d < 1e-4, "stale Winograd weights: {d}");
        let w = w.add_scalar(0.5);
        let d = max_abs(conv2d(&x, &w, None, [1, 1], [1; 4], false).unwrap(), reference(&w));
        assert!(d < 1e-4, "stale Winograd weights: {d}");
    }

    #[test]
    fn the_network_on_kernels_equals_the_compositions() {
        use crate::model::config::{GoogLeNetConfig, Variant};
        let device = Device::flex();
        let model = GoogLeNetConfig::new().with_num_classes(10).with_variant(Variant::Bvlc).init(&device);
        // Batch 2 at an odd size: every stage, ragged tiles, both images in one call.
        let x = Tensor::<4>::random([2, 3, 99, 99], Distribution::Normal(0.0, 40.0), &device);
        let mut fast = x.clone();
        let mut slow = x.clone().autodiff();
        let close = |fast: &Tensor<4>, slow: &Tensor<4>, what: &str| {
            let reference = Tensor::<4>::from_data(slow.clone().into_data(), &device);
            let scale: f32 = reference.clone().abs().max().into_scalar();
            let d = max_abs(fast.clone(), reference) / scale.max(1e-6);
            assert!(d < 1e-5, "{what}: relative difference {d}");
        };
        for stage in model.stages() {
            let (f, fast_branches) = model.stage(stage, fast);
            let (s, slow_branches) = model.stage(stage, slow);
            close(&f, &s, stage.name());
            // A block's branches (views of its output on the kernel path) for the explorer.
            for (i, (a, b)) in fast_branches.iter().flatten().zip(slow_branches.iter().flatten()).enumerate() {
                close(a, b, &format!("{} branch {i}", stage.name()));
            }
            (fast, slow) = (f, s);
        }
    }

    #[test]
    fn a_block_output_refuses_a_second_writer() {
        let device = Device::flex();
        let x = Tensor::<4>::random([1, 4, 5, 5], Distribution::Normal(0.0, 1.0), &device);
        let w = Tensor::<4>::random([3, 4, 1, 1], Distribution::Normal(0.0, 1.0), &device);
        let conv = Conv::new(&x, &w, None, [1, 1], [0; 4]).unwrap();
        let out = Concat::new([1, 6, 5, 5]);
        out.write(&conv, 0, false);
        out.write(&conv, 3, false);
        let twice = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| out.write(&conv, 2, false)));
        assert!(twice.is_err(), "channels 2..5 overlap 0..3 and 3..6");
        let too_far = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| Concat::new([1, 6, 5, 5]).write(&conv, 4, false)));
        assert!(too_far.is_err(), "channels 4..7 of 6");
        let y = out.into_tensor();
        let direct = conv2d(&x, &w, None, [1, 1], [0; 4], false).unwrap();
        assert_eq!(max_abs(y.clone().narrow(1, 0, 3), direct.clone()), 0.0);
        assert_eq!(max_abs(y.narrow(1, 3, 3), direct), 0.0);
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
        let w = Tensor::<4>::random([3, 2, 3, 3], Distribution::Normal(0.0, 1.0), &Device::flex());
        assert!(conv2d(&x, &w, None, [1, 1], [1; 4], true).is_none());
    }
}

