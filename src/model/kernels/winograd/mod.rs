//! The 3×3 stride-1 pad-1 convolutions on planes of 14×14 and more as Winograd F(2×2, 3×3)
//! (Lavin & Gray 2015): each 2×2 output block is `Aᵀ [Σ_ci U ⊙ (Bᵀ d B)] A` over its 4×4 input
//! block `d`, so 16 GEMMs of `[cout × cin]·[cin × tiles]` replace one of
//! `[cout × 9·cin]·[9·cin × 4·tiles]`: 2.25× fewer multiply-adds. The tiles of all images are
//! one column space, so a batch of small planes makes wider GEMMs. Each block of tiles × output
//! channels runs [`input_transform`], [`products`] and [`output_transform`] in turn; the
//! weights' transform `U` is computed once per model ([`weights::cached`]).

use super::gemm::{Gemm, Operand, Product};
use super::schedule::{Blocks, scratch};
use super::{ConvGeom, Job, activate};
use std::cell::RefCell;
use std::ops::Range;

pub(super) mod weights;

/// Whether `g` is a 3×3, stride-1 convolution that keeps the image size (pad 1): every 3×3
/// layer of GoogLeNet, run as Winograd F(2×2, 3×3) (see [`convolve`]).
pub(super) fn applies(g: &ConvGeom) -> bool {
    g.kh == 3
        && g.kw == 3
        && g.stride == [1, 1]
        && g.pad == [1, 1]
        && g.oh == g.h
        && g.ow == g.w
        && g.h * g.w >= MIN_PLANE
}

/// Smaller planes (the 7×7 blocks) keep the direct GEMM: their 2×2 tiles cover an 8×8 plane
/// and the weight transform is as large as the work it saves.
const MIN_PLANE: usize = 14 * 14;

/// Each thread's buffers, kept between calls.
struct Scratch {
    /// The 16 input matrices `V` of a block, `[16][cin][tiles]`.
    v: Vec<f32>,
    /// The 16 products `M`, `[16][rows][tiles]`.
    prod: Vec<f32>,
    /// Four zero-padded image rows, then their `Bᵀ d`.
    rows: Vec<f32>,
}

impl Scratch {
    const EMPTY: Scratch = Scratch {
        v: Vec::new(),
        prod: Vec::new(),
        rows: Vec::new(),
    };
}

thread_local! {
    static SCRATCH: RefCell<Scratch> = const { RefCell::new(Scratch::EMPTY) };
}

/// The job's convolution with the Winograd weights `u` ([`weights::transform`]); bias and ReLU
/// are applied as each block is written.
///
/// # Safety
/// The job's output must be valid for its `batch · cout · h·w` writes, which nothing else
/// reads or writes meanwhile.
pub(super) unsafe fn convolve(job: &Job, u: &[f32], threads: usize) {
    let g = &job.g;
    Blocks::winograd(g, job.batch, threads).for_each(g.cout, |tiles, rows| {
        SCRATCH.with_borrow_mut(|s| {
            let v = scratch(&mut s.v, 16 * g.cin * tiles.len());
            let prod = scratch(&mut s.prod, 16 * rows.len() * tiles.len());
            input_transform(job, &tiles, v, &mut s.rows);
            products(g, u, v, &rows, tiles.len(), prod);
            // SAFETY: the caller's contract; rows × tiles are this task's alone.
            unsafe { output_transform(job, &tiles, &rows, prod) };
        })
    });
}

/// A row of tiles within a block: tiles `cols` of tile row `row` of image `image`.
struct Segment {
    image: usize,
    row: usize,
    cols: Range<usize>,
    /// The first tile's index within the block.
    at: usize,
}

/// The tiles `tiles` (image-major, then row-major over each image's grid, `th` rows of `tw`)
/// as row segments.
fn segments(tiles: &Range<usize>, [th, tw]: [usize; 2]) -> impl Iterator<Item = Segment> {
    let (t0, t1) = (tiles.start, tiles.end);
    let mut t = t0;
    std::iter::from_fn(move || {
        if t >= t1 {
            return None;
        }
        let (image, rest) = (t / (th * tw), t % (th * tw));
        let (row, tx0) = (rest / tw, rest % tw);
        let tx1 = tw.min(tx0 + t1 - t);
        let seg = Segment {
            image,
            row,
            cols: tx0..tx1,
            at: t - t0,
        };
        t += tx1 - tx0;
        Some(seg)
    })
}

/// The tile grid of one image: `[rows, columns]` of 2×2 blocks.
fn grid(g: &ConvGeom) -> [usize; 2] {
    [g.h.div_ceil(2), g.w.div_ceil(2)]
}

/// `V = Bᵀ d B` for every (ci, tile) of the block: matrix 4ξ+ν, row ci, column tile, with
/// `Bᵀ = [[1,0,−1,0],[0,1,1,0],[0,−1,1,0],[0,1,0,−1]]`. A segment of tiles at a time: first
/// `Bᵀ d` down the columns of its four image rows (elementwise over the row, vectorised), then
/// `· B` across each tile's four columns.
fn input_transform(job: &Job, tiles: &Range<usize>, v: &mut [f32], rowbuf: &mut Vec<f32>) {
    let g = &job.g;
    let [_, tw] = grid(g);
    // Four image rows, zero-padded: column xx is image column xx − 1; the borders stay 0.
    let span = 2 * tw + 2;
    rowbuf.clear();
    rowbuf.resize(8 * span, 0.0);
    let (pad, bd) = rowbuf.split_at_mut(4 * span);
    let plane = g.h * g.w;
    for ci in 0..g.cin {
        for seg in segments(tiles, grid(g)) {
            let src = job.image(seg.image);
            pad_rows(&src[ci * plane..(ci + 1) * plane], g, seg.row, pad, span);
            down_columns(pad, bd, span, 2 * seg.cols.start..2 * seg.cols.end + 2);
            across_rows(bd, span, &seg, v, [ci, g.cin, tiles.len()]);
        }
    }
}

/// Image rows `2·row − 1 .. 2·row + 3` of `plane` (`[h, w]`) into the four `span`-long rows of
/// `pad` from column 1, zeros above and below the image.
fn pad_rows(plane: &[f32], g: &ConvGeom, row: usize, pad: &mut [f32], span: usize) {
    let (h, w) = (g.h, g.w);
    for r in 0..4 {
        let dst = &mut pad[r * span + 1..r * span + 1 + w];
        match (2 * row + r).checked_sub(1) {
            Some(y) if y < h => dst.copy_from_slice(&plane[y * w..(y + 1) * w]),
            _ => dst.fill(0.0),
        }
    }
}

/// `Bᵀ d` down each padded column `xs` of the four rows of `pad` into the four rows of `bd`
/// (elementwise, vectorised).
fn down_columns(pad: &[f32], bd: &mut [f32], span: usize, xs: Range<usize>) {
    let (p0, rest) = pad.split_at(span);
    let (p1, rest) = rest.split_at(span);
    let (p2, p3) = rest.split_at(span);
    let (b0, rest) = bd.split_at_mut(span);
    let (b1, rest) = rest.split_at_mut(span);
    let (b2, b3) = rest.split_at_mut(span);
    for xx in xs {
        let (d0, d1, d2, d3) = (p0[xx], p1[xx], p2[xx], p3[xx]);
        b0[xx] = d0 - d2;
        b1[xx] = d1 + d2;
        b2[xx] = d2 - d1;
        b3[xx] = d1 - d3;
    }
}

/// `· B` across each tile's four columns of the rows of `bd`, into row `ci` of matrices
/// `4r..4r+3` for row `r` (`[16][cin][n]`, `n` tiles in the block).
fn across_rows(bd: &[f32], span: usize, seg: &Segment, v: &mut [f32], [ci, cin, n]: [usize; 3]) {
    let (tx0, tx1) = (seg.cols.start, seg.cols.end);
    let len = tx1 - tx0;
    for (r, b) in bd.chunks_exact(span).enumerate() {
        let at = (4 * r * cin + ci) * n + seg.at;
        let step = cin * n;
        assert!(at + 3 * step + len <= v.len() && 2 * tx1 + 2 <= b.len());
        // SAFETY: the four row segments and the columns read are in bounds (checked just
        // above), and the four segments are disjoint.
        unsafe {
            let (v0, b) = (v.as_mut_ptr().add(at), b.as_ptr().add(2 * tx0));
            for k in 0..len {
                let (e0, o0, e1, o1) = (
                    *b.add(2 * k),
                    *b.add(2 * k + 1),
                    *b.add(2 * k + 2),
                    *b.add(2 * k + 3),
                );
                *v0.add(k) = e0 - e1;
                *v0.add(step + k) = o0 + e1;
                *v0.add(2 * step + k) = e1 - o0;
                *v0.add(3 * step + k) = o0 - o1;
            }
        }
    }
}

/// The 16 products `M_e = U_e[rows] · V_e` of the block (`n` tiles), into `prod`
/// (`[16][rows][n]`).
fn products(g: &ConvGeom, u: &[f32], v: &[f32], rows: &Range<usize>, n: usize, prod: &mut [f32]) {
    let (m, cin) = (rows.len(), g.cin);
    assert!(16 * g.cout * cin <= u.len() && 16 * cin * n <= v.len() && 16 * m * n <= prod.len());
    for e in 0..16 {
        // SAFETY: the matrices are in bounds of `u`, `v` and `prod` (asserted above).
        unsafe {
            Gemm {
                m,
                n,
                k: cin,
                lhs: Operand {
                    ptr: u.as_ptr().add((e * g.cout + rows.start) * cin),
                    row_stride: cin,
                },
                rhs: Operand {
                    ptr: v.as_ptr().add(e * cin * n),
                    row_stride: n,
                },
                dst: Product {
                    ptr: prod.as_mut_ptr().add(e * m * n),
                    row_stride: n,
                    accumulate: false,
                },
            }
            .run()
        };
    }
}

/// `Y = Aᵀ M A` with `Aᵀ = [[1,1,1,0],[0,1,−1,−1]]`, + bias, ReLU, written straight into the
/// output channels `rows`; the last column and row of an odd-sized image are clipped.
///
/// # Safety
/// As [`convolve`]'s, for the block's tiles × rows.
unsafe fn output_transform(job: &Job, tiles: &Range<usize>, rows: &Range<usize>, prod: &[f32]) {
    let (n, m) = (tiles.len(), rows.len());
    assert!(16 * m * n <= prod.len());
    for co in 0..m {
        let bias = job.bias.map_or(0.0, |b| b[rows.start + co]);
        for seg in segments(tiles, grid(&job.g)) {
            // SAFETY: products 16·m·n are in bounds (asserted), so is row co, column seg.at of
            // each; the caller's contract.
            unsafe {
                write_segment(
                    job,
                    &seg,
                    rows.start + co,
                    prod.as_ptr().add(co * n + seg.at),
                    m * n,
                    bias,
                )
            };
        }
    }
}

/// The 2×2 output blocks of one segment in channel `co`, from its products at `pr` (the 16
/// matrices `mn` apart).
///
/// # Safety
/// `pr` must be valid for those reads; the output columns `2·tx0 ≤ x < min(2·tx1, w)` of rows
/// `y` and `y+1 < h` of channel `co` are this task's alone, inside the output (as
/// [`convolve`]'s).
#[inline(always)]
unsafe fn write_segment(job: &Job, seg: &Segment, co: usize, pr: *const f32, mn: usize, bias: f32) {
    let (h, w) = (job.g.h, job.g.w);
    let len = seg.cols.len();
    // Tiles with both columns inside the image; the last one may have one.
    let full = if 2 * seg.cols.end <= w { len } else { len - 1 };
    let (y, second) = (2 * seg.row, 2 * seg.row + 1 < h);
    let top = job
        .dst
        .at(seg.image * job.image_stride + co * h * w + y * w + 2 * seg.cols.start);
    let bottom = top.wrapping_add(w);
    // SAFETY: the caller's contract.
    let tile = |k: usize| unsafe { output_tile(pr, mn, k, bias, job.relu) };
    // SAFETY: the caller's contract.
    unsafe {
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

/// Tile `k`'s 2×2 block `Aᵀ M A + bias`, activated: `[y00, y01, y10, y11]`.
///
/// # Safety
/// `pr + e·mn + k` must be valid for reads, for `e` in `0..16`.
#[inline(always)]
unsafe fn output_tile(pr: *const f32, mn: usize, k: usize, bias: f32, relu: bool) -> [f32; 4] {
    // SAFETY: the caller's contract.
    let q = |e: usize| unsafe { *pr.add(e * mn + k) };
    let (a0, a1, a2, a3) = (
        q(0) + q(4) + q(8),
        q(1) + q(5) + q(9),
        q(2) + q(6) + q(10),
        q(3) + q(7) + q(11),
    );
    let (c0, c1, c2, c3) = (
        q(4) - q(8) - q(12),
        q(5) - q(9) - q(13),
        q(6) - q(10) - q(14),
        q(7) - q(11) - q(15),
    );
    [
        a0 + a1 + a2 + bias,
        a1 - a2 - a3 + bias,
        c0 + c1 + c2 + bias,
        c1 - c2 - c3 + bias,
    ]
    .map(|v| activate(v, relu))
}
