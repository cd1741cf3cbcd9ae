//! Direct CPU kernels for the inference path on burn-flex: the convolutions (im2col tiles and
//! `gemm`, bias and ReLU fused, an Inception block's branches writing into one output; the
//! 3×3 layers on 14×14 and larger planes as Winograd F(2×2, 3×3), their transformed weights
//! computed once per model), Caffe's max pool and LRN (one pass over memory each), all spread
//! over the rayon pool.
//!
//! The layers keep their tensor-op compositions (`model/basic_conv.rs`, `model/pool.rs`,
//! `model/lrn.rs`): those work under autodiff (the fine-tune, Grad-CAM's tail) and on WebGPU.
//! Here, when the input lives on burn-flex without autodiff, the layer runs on the tensor's host
//! buffer instead: burn's `extension` feature hands out the primitive
//! (`try_into_primitive::<Flex>`, an `Arc` clone, no copy and no read of a device) and takes a
//! new one back (`from_primitive`).
//! BENCHMARKS.md has what each step saved.
//!
//! This file is that bridge and the convolutions' API ([`Conv`], [`Concat`], [`conv2d`]);
//! `im2col` and `winograd` are the two ways a convolution runs, `gemm` their one call into the
//! GEMM crate, `schedule` how the work is split over the threads, `pool` and `lrn` the other
//! two layers.

mod gemm;
mod im2col;
mod lrn;
mod pool;
mod schedule;
#[cfg(test)]
mod tests;
mod winograd;

pub use lrn::lrn;
pub use pool::max_pool;

use burn::backend::flex::{FlexTensor, Layout};
use burn::backend::{DispatchDevice, Flex};
use burn::tensor::{Bytes, DType, Shape, Tensor};
use schedule::Out;
use std::ops::Range;
use std::sync::Mutex;

/// The tensor's burn-flex primitive, contiguous f32, when `x` is on burn-flex without autodiff.
fn flex_f32<const D: usize>(x: &Tensor<D>) -> Option<FlexTensor> {
    if !flex_inference(x) {
        return None;
    }
    let t = x.clone().try_into_primitive::<Flex>().ok()?;
    if t.dtype() != DType::F32 {
        return None;
    }
    Some(if t.as_slice::<f32>().is_some() {
        t
    } else {
        t.to_contiguous()
    })
}

/// Whether `x` is on burn-flex without autodiff, where these kernels run.
pub fn flex_inference<const D: usize>(x: &Tensor<D>) -> bool {
    !x.is_autodiff() && matches!(x.device().as_dispatch(), DispatchDevice::Flex(_))
}

/// A kernel's output handed back to burn: every tensor the kernels make ends here.
fn from_vec(v: Vec<f32>, shape: [usize; 4]) -> Tensor<4> {
    #[cfg(test)]
    TAKEN.set(TAKEN.get() + 1);
    let t = FlexTensor::new(
        Bytes::from_elems(v),
        Layout::contiguous(Shape::from(shape.to_vec())),
        DType::F32,
    );
    Tensor::from_primitive::<Flex>(t)
}

#[cfg(test)]
thread_local! {
    /// Kernel outputs handed back on this thread (tests check that a forward took the kernels,
    /// as `train/adam.rs` counts its fused steps). Per thread, so that a test can also check
    /// that its reference side took none while other tests run kernels: a layer's or a block's
    /// output is made on the thread that called it (an Inception block's branches run on the
    /// pool, but their shared output is handed back on the caller's).
    static TAKEN: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
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
        self.kh == 1
            && self.kw == 1
            && self.stride == [1, 1]
            && self.pad == [0, 0]
            && self.oh == self.h
            && self.ow == self.w
    }
}

/// One run of a convolution over a batch, for either algorithm: the input, the epilogue, and
/// where the output goes (image `i`'s output channel `co` at `dst + i · image_stride + co ·
/// oh·ow`, so `dst` may point into a larger tensor, e.g. one branch of a block).
struct Job<'a> {
    /// `[batch, cin, h, w]`.
    src: &'a [f32],
    g: ConvGeom,
    batch: usize,
    bias: Option<&'a [f32]>,
    relu: bool,
    dst: Out,
    image_stride: usize,
}

impl Job<'_> {
    /// Image `i` of the input, `[cin, h, w]`.
    fn image(&self, i: usize) -> &[f32] {
        let len = self.g.cin * self.g.h * self.g.w;
        &self.src[i * len..(i + 1) * len]
    }
}

/// A convolution ready to run on burn-flex buffers: `relu(conv2d(x, weight) + bias)` (ReLU
/// only if asked), dilation 1, one group. The weights' `[cout, cin, kh, kw]` buffer is the
/// GEMM's left operand as it is (no packing); each tile of output positions builds its im2col
/// block straight from NCHW, and the bias and ReLU are applied on the tile while it is in cache.
/// 3×3 stride-1 pad-1 layers on planes of 14×14 or more run as Winograd F(2×2, 3×3) instead.
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
    pub fn new(
        x: &Tensor<4>,
        weight: &Tensor<4>,
        bias: Option<&Tensor<1>>,
        stride: [usize; 2],
        pad: [usize; 4],
    ) -> Option<Conv> {
        let [batch, cin, h, w] = x.dims();
        let [cout, wcin, kh, kw] = weight.dims();
        if wcin != cin
            || h + pad[0] + pad[2] < kh
            || w + pad[1] + pad[3] < kw
            || stride.contains(&0)
        {
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
            g: ConvGeom {
                cin,
                h,
                w,
                cout,
                kh,
                kw,
                stride,
                pad: [pad[0], pad[1]],
                oh,
                ow,
            },
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
        let (Some(src), Some(weight)) = (self.x.as_slice::<f32>(), self.weight.as_slice::<f32>())
        else {
            unreachable!("flex_f32 made both contiguous f32");
        };
        let bias = self.bias.as_ref().and_then(|b| b.as_slice::<f32>());
        if self.batch == 0 {
            return;
        }
        let job = Job {
            src,
            g: self.g,
            batch: self.batch,
            bias,
            relu,
            dst,
            image_stride,
        };
        let threads = schedule::threads();
        if winograd::applies(&self.g) {
            let u = winograd::weights::cached(&self.weight, self.g.cout, self.g.cin);
            // SAFETY: the caller's contract.
            unsafe { winograd::convolve(&job, &u, threads) };
        } else {
            // SAFETY: the caller's contract.
            unsafe { im2col::convolve(&job, weight, threads) };
        }
    }
}

/// `relu(conv2d(x, weight) + bias)` (see [`Conv`]) as a new tensor; `None` when the tensors
/// are not burn-flex f32 without autodiff.
pub fn conv2d(
    x: &Tensor<4>,
    weight: &Tensor<4>,
    bias: Option<&Tensor<1>>,
    stride: [usize; 2],
    pad: [usize; 4],
    relu: bool,
) -> Option<Tensor<4>> {
    Some(Conv::new(x, weight, bias, stride, pad)?.output(relu))
}

/// One output tensor that several convolutions write their own channels of, at once (an
/// Inception block's four branches, without a concatenation copy).
pub struct Concat {
    buf: Vec<f32>,
    ptr: Out,
    dims: [usize; 4],
    /// Channel ranges written so far: a second writer of a channel is refused.
    claimed: Mutex<Vec<Range<usize>>>,
}

impl Concat {
    pub fn new(dims: [usize; 4]) -> Concat {
        let mut buf = vec![0f32; dims.iter().product()];
        let ptr = Out(buf.as_mut_ptr());
        Concat {
            buf,
            ptr,
            dims,
            claimed: Mutex::new(Vec::new()),
        }
    }

    /// Runs `conv` into channels `offset..offset + cout` of every image.
    ///
    /// # Panics
    /// When the output does not fit there, or those channels were already written.
    pub fn write(&self, conv: &Conv, offset: usize, relu: bool) {
        let [b, c, h, w] = self.dims;
        let [cb, cc, ch, cw] = conv.out_dims();
        assert!(
            cb == b && ch == h && cw == w && offset + cc <= c,
            "a {:?} output does not fit channel {offset} of {:?}",
            conv.out_dims(),
            self.dims
        );
        let range = offset..offset + cc;
        {
            let mut claimed = self.claimed.lock().unwrap_or_else(|e| e.into_inner());
            assert!(
                claimed
                    .iter()
                    .all(|r| r.end <= range.start || range.end <= r.start),
                "channels {range:?} were already written"
            );
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
