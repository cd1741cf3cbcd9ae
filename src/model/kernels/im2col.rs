//! The direct convolution: for each block of output positions, an im2col block built straight
//! from NCHW, one GEMM with the weights' `[cout, cin·kh·kw]` buffer as its left operand as it
//! is (no packing), and the bias and ReLU applied on the block while it is in cache. A 1×1
//! stride-1 conv multiplies its input in place.

use super::gemm::{Gemm, Operand, Product};
use super::schedule::{Blocks, scratch};
use super::{ConvGeom, Job, activate, relu_nan};
use std::cell::RefCell;
use std::ops::Range;

thread_local! {
    /// Each thread's im2col block, kept between calls.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// Each thread's output tile for tiles that span images, kept between calls.
    static TILE: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// The convolution of the job's images with `weight` (`[cout, cin, kh, kw]`), `+ bias`, then
/// ReLU if asked, in blocks of output positions × channels over the pool. A block inside one
/// image is written in place; one that spans images (small planes) goes through a tile buffer.
///
/// # Safety
/// The job's output must be valid for its `batch · cout · oh·ow` writes, which nothing else
/// reads or writes meanwhile.
pub(super) unsafe fn convolve(job: &Job, weight: &[f32], threads: usize) {
    let n = job.g.positions();
    Blocks::im2col(&job.g, job.batch, threads).for_each(job.g.cout, |columns, rows| {
        let block = Block {
            job,
            weight,
            columns,
            rows,
        };
        // SAFETY: the caller's contract; each block's rows × columns are its own.
        if block.columns.start % n + block.width() <= n {
            unsafe { block.in_one_image() }
        } else {
            unsafe { block.across_images() }
        }
    });
}

/// One task's part of a convolution: output channels `rows` at the global output columns
/// `columns` (image-major, `oh·ow` per image).
struct Block<'a> {
    job: &'a Job<'a>,
    weight: &'a [f32],
    columns: Range<usize>,
    rows: Range<usize>,
}

impl Block<'_> {
    fn width(&self) -> usize {
        self.columns.len()
    }

    /// `dst = weight[rows] · rhs` (`+=` onto the bias already there, where there is one) for a
    /// `depth × width` right operand.
    ///
    /// # Safety
    /// `rhs` must be valid for those reads and `dst` for the `rows × width` writes, which are
    /// this task's alone.
    unsafe fn multiply(&self, rhs: Operand, dst: *mut f32, dst_row_stride: usize) {
        let k = self.job.g.depth();
        // SAFETY: the block's rows of the `[cout, k]` weights are in bounds; the caller's
        // contract.
        unsafe {
            Gemm {
                m: self.rows.len(),
                n: self.width(),
                k,
                lhs: Operand {
                    ptr: self.weight.as_ptr().add(self.rows.start * k),
                    row_stride: k,
                },
                rhs,
                dst: Product {
                    ptr: dst,
                    row_stride: dst_row_stride,
                    accumulate: self.job.bias.is_some(),
                },
            }
            .run()
        }
    }

    /// The block's positions lie in one image: straight into the output.
    ///
    /// # Safety
    /// As [`convolve`]'s, for this block's rows × columns.
    unsafe fn in_one_image(&self) {
        let Job {
            g,
            bias,
            relu,
            dst,
            image_stride,
            ..
        } = *self.job;
        let (n, width) = (g.positions(), self.width());
        let (i, n0) = (self.columns.start / n, self.columns.start % n);
        let (src, base) = (self.job.image(i), i * image_stride);
        // SAFETY: the block's rows, columns n0..n0 + width of image i, are this task's alone.
        let out = |co: usize| unsafe {
            std::slice::from_raw_parts_mut(dst.at(base + co * n + n0), width)
        };
        if let Some(bias) = bias {
            for co in self.rows.clone() {
                out(co).fill(bias[co]);
            }
        }
        let at = dst.at(base + self.rows.start * n + n0);
        if g.pointwise() {
            let rhs = Operand {
                ptr: src.as_ptr().wrapping_add(n0),
                row_stride: n,
            };
            // SAFETY: the image's `[cin, n]` input, from column n0, is the right operand.
            unsafe { self.multiply(rhs, at, n) };
        } else {
            COLUMNS.with_borrow_mut(|col| {
                let col = scratch(col, g.depth() * width);
                im2col(src, &g, n0..n0 + width, col, width);
                let rhs = Operand {
                    ptr: col.as_ptr(),
                    row_stride: width,
                };
                // SAFETY: `col` holds the `depth × width` block.
                unsafe { self.multiply(rhs, at, n) };
            });
        }
        if relu {
            for co in self.rows.clone() {
                for v in out(co) {
                    *v = relu_nan(*v);
                }
            }
        }
    }

    /// The block's columns span several images: im2col piece by piece into one block, the
    /// product into the tile buffer, then bias and ReLU on the way out.
    ///
    /// # Safety
    /// As [`convolve`]'s, for this block's rows × columns.
    unsafe fn across_images(&self) {
        let (g, width) = (&self.job.g, self.width());
        let n = g.positions();
        COLUMNS.with_borrow_mut(|col| {
            TILE.with_borrow_mut(|tile| {
                let (col, tile) = (
                    scratch(col, g.depth() * width),
                    scratch(tile, self.rows.len() * width),
                );
                for p in pieces(&self.columns, n) {
                    im2col(
                        self.job.image(p.image),
                        g,
                        p.positions,
                        &mut col[p.at..],
                        width,
                    );
                }
                if let Some(bias) = self.job.bias {
                    for (row, b) in tile.chunks_exact_mut(width).zip(&bias[self.rows.clone()]) {
                        row.fill(*b);
                    }
                }
                let rhs = Operand {
                    ptr: col.as_ptr(),
                    row_stride: width,
                };
                // SAFETY: `col` holds the `depth × width` block, `tile` the `rows × width` product.
                unsafe { self.multiply(rhs, tile.as_mut_ptr(), width) };
                // SAFETY: the caller's contract.
                unsafe { self.scatter(tile) };
            })
        });
    }

    /// The tile (`rows × width`) out to each image's positions, activated.
    ///
    /// # Safety
    /// As [`convolve`]'s, for this block's rows × columns.
    unsafe fn scatter(&self, tile: &[f32]) {
        let Job {
            g,
            relu,
            dst,
            image_stride,
            ..
        } = *self.job;
        let (n, width) = (g.positions(), self.width());
        for p in pieces(&self.columns, n) {
            let len = p.positions.len();
            for (co, row) in self.rows.clone().zip(tile.chunks_exact(width)) {
                // SAFETY: these positions of image p.image, channel co, are this task's alone.
                let out = unsafe {
                    std::slice::from_raw_parts_mut(
                        dst.at(p.image * image_stride + co * n + p.positions.start),
                        len,
                    )
                };
                for (o, v) in out.iter_mut().zip(&row[p.at..p.at + len]) {
                    *o = activate(*v, relu);
                }
            }
        }
    }
}

/// One image's share of a block of global output columns.
struct Piece {
    image: usize,
    /// Output positions within the image.
    positions: Range<usize>,
    /// Where they start within the block.
    at: usize,
}

/// The pieces of global output columns `columns` (image-major, `n` per image), by image.
fn pieces(columns: &Range<usize>, n: usize) -> impl Iterator<Item = Piece> {
    let (c0, c1) = (columns.start, columns.end);
    (c0 / n..c1.div_ceil(n)).map(move |i| {
        let (a, b) = (c0.max(i * n) - i * n, c1.min((i + 1) * n) - i * n);
        Piece {
            image: i,
            positions: a..b,
            at: i * n + a - c0,
        }
    })
}

/// im2col for output `positions` of one image (`src`, `[cin, h, w]`): row `(ci, ky, kx)` of
/// `col` (row `r` starts at `r · ld`) holds, in its first `positions.len()` elements, the input
/// value each position's window reads there, 0 in the padding.
fn im2col(src: &[f32], g: &ConvGeom, positions: Range<usize>, col: &mut [f32], ld: usize) {
    let cols = positions.len();
    let mut row = 0;
    for ci in 0..g.cin {
        let plane = &src[ci * g.h * g.w..(ci + 1) * g.h * g.w];
        for ky in 0..g.kh {
            for kx in 0..g.kw {
                im2col_row(
                    plane,
                    g,
                    [ky, kx],
                    positions.clone(),
                    &mut col[row * ld..row * ld + cols],
                );
                row += 1;
            }
        }
    }
}

/// One row of the im2col block: what tap `(ky, kx)` of each position's window reads in `plane`.
#[inline]
fn im2col_row(
    plane: &[f32],
    g: &ConvGeom,
    [ky, kx]: [usize; 2],
    positions: Range<usize>,
    dst: &mut [f32],
) {
    let [sy, sx] = g.stride;
    let [py, px] = g.pad;
    // Output columns whose input column `ox·sx + kx − px` is inside the image.
    let lo = px.saturating_sub(kx).div_ceil(sx).min(g.ow);
    let hi = if g.w + px > kx {
        (g.w + px - kx).div_ceil(sx).min(g.ow)
    } else {
        0
    }
    .max(lo);
    let (n0, n1) = (positions.start, positions.end);
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
