//! The one call into the `gemm` crate (the GEMM burn-flex uses, so its microkernels and
//! features are burn-flex's), with its operands named: both convolution algorithms multiply
//! row-major f32 matrices on the calling thread (they split the work over the pool themselves).

/// A row-major matrix the product reads: element `(r, c)` at `ptr + r · row_stride + c`.
#[derive(Clone, Copy)]
pub(super) struct Operand {
    pub ptr: *const f32,
    pub row_stride: usize,
}

/// Where the product goes, row-major as in [`Operand`]. With `accumulate` the product is added
/// to what is there (the bias the caller wrote first); without, it replaces it, unread.
#[derive(Clone, Copy)]
pub(super) struct Product {
    pub ptr: *mut f32,
    pub row_stride: usize,
    pub accumulate: bool,
}

/// `dst = lhs · rhs` (or `dst += lhs · rhs`, see [`Product`]) for an `m × k` left operand and a
/// `k × n` right one.
pub(super) struct Gemm {
    /// Rows of `lhs` and `dst`.
    pub m: usize,
    /// Columns of `rhs` and `dst`.
    pub n: usize,
    /// Columns of `lhs`, rows of `rhs`: the length of each dot product.
    pub k: usize,
    pub lhs: Operand,
    pub rhs: Operand,
    pub dst: Product,
}

impl Gemm {
    /// # Safety
    /// `lhs` must be valid for reads of its `m × k` elements, `rhs` of its `k × n`, and `dst`
    /// for writes (and, when it accumulates, reads) of its `m × n`, which nothing else reads or
    /// writes meanwhile.
    #[inline]
    pub unsafe fn run(self) {
        let Gemm {
            m,
            n,
            k,
            lhs,
            rhs,
            dst,
        } = self;
        // SAFETY: the caller's contract. Column strides are 1 (row-major); the crate computes
        // `dst = alpha·dst + beta·lhs·rhs` with `dst` read only when asked, so alpha = beta = 1;
        // nothing to conjugate in real numbers; one thread.
        unsafe {
            ::gemm::gemm(
                m,
                n,
                k,
                dst.ptr,
                1,
                dst.row_stride as isize,
                dst.accumulate,
                lhs.ptr,
                1,
                lhs.row_stride as isize,
                rhs.ptr,
                1,
                rhs.row_stride as isize,
                1.0,
                1.0,
                false,
                false,
                false,
                ::gemm::Parallelism::None,
            )
        }
    }
}
