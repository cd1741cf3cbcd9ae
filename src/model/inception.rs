//! The Inception module: four parallel branches concatenated along channels.

use burn::module::Module;
use burn::tensor::{Device, Tensor};

use super::basic_conv::{BasicConv2d, BasicConv2dConfig};
use super::config::{InceptionSpec, VariantSpec};
use super::pool::MaxPool;

/// Branch names in the paper's order, as the activation views label them.
pub const BRANCH_NAMES: [&str; 4] = ["1x1", "3x3", "5x5", "pool"];

/// One Inception block (paper Fig. 2b). Field names mirror torchvision's module names;
/// `weights/` maps them to Caffe's and PyTorch's keys.
#[derive(Module, Debug)]
pub struct Inception {
    /// 1x1 conv.
    pub branch1: BasicConv2d,
    /// 1x1 reduction, then 3x3.
    pub branch2_reduce: BasicConv2d,
    pub branch2: BasicConv2d,
    /// 1x1 reduction, then 5x5 (3x3 in torchvision).
    pub branch3_reduce: BasicConv2d,
    pub branch3: BasicConv2d,
    /// 3x3 max pool (stride 1), then 1x1 projection.
    pub branch4_pool: MaxPool,
    pub branch4: BasicConv2d,
}

/// Build one block from its row of the table.
pub fn inception(spec: &InceptionSpec, v: &VariantSpec, device: &Device) -> Inception {
    let conv = |cin, cout, k: usize| {
        BasicConv2dConfig::new(cin, cout, k)
            .with_padding(k / 2)
            .with_bias(v.conv_bias)
            .with_batch_norm_eps(v.batch_norm_eps)
            .init(device)
    };
    let s = spec;
    Inception {
        branch1: conv(s.in_channels, s.c1x1, 1),
        branch2_reduce: conv(s.in_channels, s.c3x3_reduce, 1),
        branch2: conv(s.c3x3_reduce, s.c3x3, 3),
        branch3_reduce: conv(s.in_channels, s.c5x5_reduce, 1),
        branch3: conv(s.c5x5_reduce, s.c5x5, v.branch3_kernel),
        // torchvision: MaxPool2d(3, stride=1, padding=1, ceil_mode=True); Caffe likewise.
        branch4_pool: MaxPool::new(3, 1, 1, true),
        branch4: conv(s.in_channels, s.pool_proj, 1),
    }
}

impl Inception {
    /// The four branch outputs before concatenation, in the paper's order.
    ///
    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, c1x1 | c3x3 | c5x5 | pool_proj, h, w]`
    pub fn forward_branches(&self, x: Tensor<4>) -> [Tensor<4>; 4] {
        let b1 = || self.branch1.forward(x.clone()); // [batch, c1x1, h, w]
        let b2 = || self.branch2.forward(self.branch2_reduce.forward(x.clone())); // [batch, c3x3, h, w]
        let b3 = || self.branch3.forward(self.branch3_reduce.forward(x.clone())); // [batch, c5x5, h, w]
        let b4 = || self.branch4.forward(self.branch4_pool.forward(x.clone())); // [batch, pool_proj, h, w]
        // With threads and no autodiff graph (inference), the branches run at once: the large
        // GEMMs use every thread anyway, but im2col, bias, ReLU and pooling run on one thread
        // per op; side by side they overlap. (Under autodiff, one thread records the graph.)
        #[cfg(thread_pool)]
        if !x.is_autodiff() {
            let ((b1, b2), (b3, b4)) = rayon::join(|| rayon::join(b1, b2), || rayon::join(b3, b4));
            return [b1, b2, b3, b4];
        }
        [b1(), b2(), b3(), b4()]
    }

    /// # Shapes
    /// - input: `[batch, in_channels, h, w]`
    /// - output: `[batch, c1x1 + c3x3 + c5x5 + pool_proj, h, w]`
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.forward_with_branches(x).0
    }

    /// The block output and its four branches (views of it where the kernels ran).
    pub fn forward_with_branches(&self, x: Tensor<4>) -> (Tensor<4>, [Tensor<4>; 4]) {
        #[cfg(cpu_kernels)]
        if let Some(y) = self.forward_kernel(&x) {
            let [c1, _, c3, _, c5, cp] = self.channels();
            let view = |from, n| y.clone().narrow(1, from, n);
            let branches = [
                view(0, c1),
                view(c1, c3),
                view(c1 + c3, c5),
                view(c1 + c3 + c5, cp),
            ];
            return (y, branches);
        }
        let branches = self.forward_branches(x);
        (Tensor::cat(branches.to_vec(), 1), branches)
    }

    /// Inference on burn-flex: each branch's last conv writes its channels of one block output
    /// (no concatenation copy), the four branches at once. `None` where the kernels do not
    /// apply (autodiff, WebGPU, BatchNorm).
    #[cfg(cpu_kernels)]
    fn forward_kernel(&self, x: &Tensor<4>) -> Option<Tensor<4>> {
        use super::kernels::Concat;
        // Every conv must take the kernel path, or the block output would be left half written.
        let last = [&self.branch1, &self.branch2, &self.branch3, &self.branch4];
        if !super::kernels::flex_inference(x) || !last.iter().all(|c| c.kernel_applies()) {
            return None;
        }
        let [b, _, h, w] = x.dims();
        let [c1, _, c3, _, c5, cp] = self.channels();
        let out = Concat::new([b, c1 + c3 + c5 + cp, h, w]);
        let write = |conv: &BasicConv2d, input: Tensor<4>, offset: usize| match conv.direct(&input)
        {
            Some(k) => {
                out.write(&k, offset, true);
                true
            }
            None => false,
        };
        let b1 = || write(&self.branch1, x.clone(), 0);
        let b2 = || write(&self.branch2, self.branch2_reduce.forward(x.clone()), c1);
        let b3 = || {
            write(
                &self.branch3,
                self.branch3_reduce.forward(x.clone()),
                c1 + c3,
            )
        };
        let b4 = || {
            write(
                &self.branch4,
                self.branch4_pool.forward(x.clone()),
                c1 + c3 + c5,
            )
        };
        #[cfg(thread_pool)]
        let ((b1, b2), (b3, b4)) = rayon::join(|| rayon::join(b1, b2), || rayon::join(b3, b4));
        #[cfg(not(thread_pool))]
        let (b1, b2, b3, b4) = (b1(), b2(), b3(), b4());
        // (A branch input off burn-flex cannot happen once `x` is on it; were it to, the
        // composition below recomputes the block.)
        (b1 && b2 && b3 && b4).then(|| out.into_tensor())
    }

    /// The block's row of the table, read back from the layers.
    pub fn channels(&self) -> [usize; 6] {
        [
            self.branch1.out_channels(),
            self.branch2_reduce.out_channels(),
            self.branch2.out_channels(),
            self.branch3_reduce.out_channels(),
            self.branch3.out_channels(),
            self.branch4.out_channels(),
        ]
    }
}
