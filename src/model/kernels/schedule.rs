//! How the kernels' work is split over the rayon pool, where the build has one: planes of an
//! output, blocks of a GEMM's output (and how wide they are), the pointer the tasks share to
//! write one output, and each thread's scratch buffers.

use super::ConvGeom;
use std::ops::Range;

/// Threads the kernels plan for: the rayon pool's, or 1 in a build without threads.
pub(super) fn threads() -> usize {
    #[cfg(thread_pool)]
    return rayon::current_num_threads();
    #[allow(unreachable_code)]
    1
}

/// `f(i, chunk)` over the `len`-element chunks of `dst` (the `i`th from element `i · len`), on
/// the rayon pool where the build has one.
pub(super) fn for_each_chunk(
    dst: &mut [f32],
    len: usize,
    f: impl Fn(usize, &mut [f32]) + Sync + Send,
) {
    #[cfg(thread_pool)]
    {
        use rayon::prelude::*;
        dst.par_chunks_mut(len)
            .enumerate()
            .for_each(|(i, d)| f(i, d));
    }
    #[cfg(not(thread_pool))]
    for (i, d) in dst.chunks_mut(len).enumerate() {
        f(i, d);
    }
}

/// A GEMM output of `columns` columns cut into tasks: the columns in chunks of `per_task`, and
/// each chunk's rows in `row_chunks` chunks.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Blocks {
    pub columns: usize,
    pub per_task: usize,
    pub row_chunks: usize,
}

impl Blocks {
    /// For a direct (im2col) conv of `batch` images (`batch · positions` output columns, `cout`
    /// rows) on `threads` threads. gemm packs the weights on every call, so tiles are as wide
    /// as the cache allows: a tile's im2col block (`depth × cols`) stays around 1 MiB. A 1×1
    /// conv reads its input in place (no im2col), one image per tile, where a plane has 512
    /// positions or more; on smaller planes (the 14×14 and 7×7 blocks) tiles span images, so a
    /// batch makes wider, faster GEMMs.
    pub fn im2col(g: &ConvGeom, batch: usize, threads: usize) -> Blocks {
        let n = g.positions();
        let target = if g.pointwise() && (batch == 1 || n >= 512) {
            n
        } else {
            (262_144 / g.depth().max(1)).clamp(128, 1024)
        };
        let total = batch * n;
        let tiles = total.div_ceil(target).max(1);
        Blocks {
            columns: total,
            per_task: total.div_ceil(tiles),
            row_chunks: row_chunks(tiles, g.cout, threads),
        }
    }

    /// For a Winograd conv of `batch` images, whose columns are tiles (2×2 output blocks): the
    /// 16 input matrices of a chunk (`16 · cin · tiles`) stay near 1 MiB; a chunk may span
    /// images.
    pub fn winograd(g: &ConvGeom, batch: usize, threads: usize) -> Blocks {
        let tiles = batch * g.h.div_ceil(2) * g.w.div_ceil(2);
        let chunk = (16_384 / g.cin.max(1)).clamp(16, 256).min(tiles);
        let chunks = tiles.div_ceil(chunk);
        Blocks {
            columns: tiles,
            per_task: tiles.div_ceil(chunks),
            row_chunks: row_chunks(chunks, g.cout, threads),
        }
    }

    /// `task(columns, rows)` over the blocks of the output, which has `m` rows (empty blocks
    /// skipped), on the rayon pool where the build has one and there is more than one block.
    pub fn for_each(&self, m: usize, task: impl Fn(Range<usize>, Range<usize>) + Sync + Send) {
        let Blocks {
            columns: n,
            per_task: cols,
            row_chunks,
        } = *self;
        let rows = m.div_ceil(row_chunks);
        let tasks = n.div_ceil(cols) * row_chunks;
        let block = |t: usize| {
            let (n0, m0) = ((t / row_chunks) * cols, (t % row_chunks) * rows);
            let (n1, m1) = ((n0 + cols).min(n), (m0 + rows).min(m));
            if m0 < m1 {
                task(n0..n1, m0..m1);
            }
        };
        #[cfg(thread_pool)]
        if tasks > 1 {
            use rayon::prelude::*;
            (0..tasks).into_par_iter().for_each(block);
            return;
        }
        (0..tasks).for_each(block);
    }
}

/// Chunks of output channels per column chunk: with too few column chunks for the threads (the
/// 7×7 and 14×14 blocks), the output channels are split too (16 at least per chunk).
fn row_chunks(column_chunks: usize, cout: usize, threads: usize) -> usize {
    let want = 2 * threads;
    if threads > 1 && column_chunks < want {
        want.div_ceil(column_chunks).min(cout / 16).max(1)
    } else {
        1
    }
}

/// A pointer rayon tasks share to write disjoint elements of one output buffer.
#[derive(Clone, Copy)]
pub(super) struct Out(pub *mut f32);
// SAFETY: every task writes its own rows × columns of the output; none reads another's.
unsafe impl Send for Out {}
unsafe impl Sync for Out {}

impl Out {
    /// The pointer `at` elements on (a method, so closures capture the `Send` wrapper).
    pub fn at(self, at: usize) -> *mut f32 {
        self.0.wrapping_add(at)
    }
}

/// The first `len` elements of a thread's scratch buffer, grown (never shrunk) to hold them.
pub(super) fn scratch(buf: &mut Vec<f32>, len: usize) -> &mut [f32] {
    if buf.len() < len {
        buf.resize(len, 0.0);
    }
    &mut buf[..len]
}
