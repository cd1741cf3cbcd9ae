//! Output shapes, parameter counts and multiply-adds of every layer, computed from a built
//! model (kernel sizes and channel counts are read back from its weights, not typed in).

use burn::module::Module;
use burn::nn::Linear;
use serde::Serialize;

use super::basic_conv::BasicConv2d;
use super::config::{AUX1_AFTER, AUX2_AFTER, BLOCK_NAMES, POOL_AFTER};
use super::googlenet::GoogLeNet;
use super::inception::Inception;
use super::pool::{MaxPool, pool_out};

/// One layer's row.
#[derive(Debug, Clone, Serialize)]
pub struct LayerStats {
    pub name: String,
    pub kind: &'static str,
    /// Output `[channels, height, width]` for one image.
    pub output: [usize; 3],
    pub params: usize,
    /// Multiply-adds for one image.
    pub macs: u64,
}

/// Cost of one branch with and without its 1x1 reduction.
#[derive(Debug, Clone, Serialize)]
pub struct ReductionSaving {
    pub branch: &'static str,
    pub kernel: usize,
    pub in_channels: usize,
    pub reduce_to: usize,
    pub out_channels: usize,
    pub params_with_reduction: usize,
    pub params_without_reduction: usize,
    pub macs_with_reduction: u64,
    pub macs_without_reduction: u64,
}

/// One Inception block: shapes, the channel split, and what the 1x1 reductions save.
#[derive(Debug, Clone, Serialize)]
pub struct BlockStats {
    pub name: &'static str,
    pub input: [usize; 3],
    pub output: [usize; 3],
    /// Output channels of the four branches (1x1, 3x3, 5x5, pool proj).
    pub split: [usize; 4],
    /// The block's row of the paper's table read back from the layers: 1x1, 3x3 reduce, 3x3,
    /// 5x5 reduce, 5x5, pool proj.
    pub table: [usize; 6],
    pub params: usize,
    pub macs: u64,
    /// Parameters and multiply-adds of each branch (1x1, 3x3, 5x5, pool).
    pub branch_params: [usize; 4],
    pub branch_macs: [u64; 4],
    pub savings: [ReductionSaving; 2],
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub variant: String,
    pub input: [usize; 3],
    pub num_classes: usize,
    pub layers: Vec<LayerStats>,
    pub blocks: Vec<BlockStats>,
    /// Totals of the path used at inference (no aux heads).
    pub main_params: usize,
    pub main_macs: u64,
    /// The two aux heads together (0 when absent).
    pub aux_params: usize,
    pub aux_macs: u64,
}

fn conv_out(size: usize, k: usize, s: usize, p: usize) -> usize {
    (size + 2 * p - k) / s + 1
}

fn conv_stats(name: String, c: &BasicConv2d, input: [usize; 3]) -> LayerStats {
    let k = c.kernel();
    let s = c.conv.stride[0];
    let p = k / 2;
    let h = conv_out(input[1], k, s, p);
    let w = conv_out(input[2], k, s, p);
    let out = c.out_channels();
    LayerStats {
        name,
        kind: if c.bn.is_some() { "conv+bn+relu" } else { "conv+relu" },
        output: [out, h, w],
        // Learned parameters as PyTorch counts them: BatchNorm's running statistics are
        // state, not parameters (burn's `num_params` would count them).
        params: out * c.in_channels() * k * k + if c.conv.bias.is_some() { out } else { 0 } + if c.bn.is_some() { 2 * out } else { 0 },
        macs: (out * c.in_channels() * k * k * h * w) as u64,
    }
}

fn pool_stats(name: String, p: &MaxPool, input: [usize; 3]) -> LayerStats {
    let (k, s, pad) = (p.kernel, p.stride, p.padding);
    LayerStats {
        name,
        kind: "maxpool",
        output: [input[0], pool_out(input[1], k, s, pad, p.ceil), pool_out(input[2], k, s, pad, p.ceil)],
        params: 0,
        macs: 0,
    }
}

fn linear_stats(name: String, l: &Linear) -> LayerStats {
    let [i, o] = l.weight.shape().dims::<2>();
    LayerStats { name, kind: "linear", output: [o, 1, 1], params: l.num_params(), macs: (i * o) as u64 }
}

fn block_stats(name: &'static str, b: &Inception, input: [usize; 3], rows: &mut Vec<LayerStats>) -> BlockStats {
    let mut row = |suffix: &str, c: &BasicConv2d| {
        let r = conv_stats(format!("{name}/{suffix}"), c, input);
        rows.push(r.clone());
        r
    };
    let b1 = row("1x1", &b.branch1);
    let b2r = row("3x3_reduce", &b.branch2_reduce);
    let b2 = row("3x3", &b.branch2);
    let b3r = row("5x5_reduce", &b.branch3_reduce);
    let b3 = row("5x5", &b.branch3);
    let b4 = row("pool_proj", &b.branch4);
    let (h, w) = (input[1], input[2]);
    let saving = |branch, reduce: &BasicConv2d, conv: &BasicConv2d, r: &LayerStats, c: &LayerStats| {
        let k = conv.kernel();
        let (cin, mid, out) = (reduce.in_channels(), reduce.out_channels(), conv.out_channels());
        ReductionSaving {
            branch,
            kernel: k,
            in_channels: cin,
            reduce_to: mid,
            out_channels: out,
            params_with_reduction: cin * mid + mid * out * k * k,
            params_without_reduction: cin * out * k * k,
            macs_with_reduction: r.macs + c.macs,
            macs_without_reduction: (cin * out * k * k * h * w) as u64,
        }
    };
    let split = [b1.output[0], b2.output[0], b3.output[0], b4.output[0]];
    let branch_params = [b1.params, b2r.params + b2.params, b3r.params + b3.params, b4.params];
    let branch_macs = [b1.macs, b2r.macs + b2.macs, b3r.macs + b3.macs, b4.macs];
    BlockStats {
        name,
        input,
        output: [split.iter().sum(), h, w],
        split,
        table: b.channels(),
        params: branch_params.iter().sum(),
        macs: branch_macs.iter().sum(),
        branch_params,
        branch_macs,
        savings: [
            saving("3x3", &b.branch2_reduce, &b.branch2, &b2r, &b2),
            saving("5x5", &b.branch3_reduce, &b.branch3, &b3r, &b3),
        ],
    }
}

impl GoogLeNet {
    /// Shapes, parameters and multiply-adds for a `size`×`size` input.
    pub fn summary(&self, size: usize) -> Summary {
        let mut layers = Vec::new();
        let mut blocks = Vec::new();
        let push = |layers: &mut Vec<LayerStats>, r: LayerStats| {
            let out = r.output;
            layers.push(r);
            out
        };
        let mut s = push(&mut layers, conv_stats("conv1".into(), &self.conv1, [3, size, size]));
        s = push(&mut layers, pool_stats("maxpool1".into(), &self.maxpool1, s));
        if self.lrn1.is_some() {
            s = push(&mut layers, LayerStats { name: "lrn1".into(), kind: "lrn", output: s, params: 0, macs: 0 });
        }
        s = push(&mut layers, conv_stats("conv2".into(), &self.conv2, s));
        s = push(&mut layers, conv_stats("conv3".into(), &self.conv3, s));
        if self.lrn2.is_some() {
            s = push(&mut layers, LayerStats { name: "lrn2".into(), kind: "lrn", output: s, params: 0, macs: 0 });
        }
        s = push(&mut layers, pool_stats("maxpool2".into(), &self.maxpool2, s));
        let mut aux_params = 0;
        let mut aux_macs = 0;
        for (i, block) in self.blocks().into_iter().enumerate() {
            let b = block_stats(BLOCK_NAMES[i], block, s, &mut layers);
            s = b.output;
            blocks.push(b);
            if i == POOL_AFTER[0] {
                s = push(&mut layers, pool_stats("maxpool3".into(), &self.maxpool3, s));
            } else if i == POOL_AFTER[1] {
                s = push(&mut layers, pool_stats("maxpool4".into(), &self.maxpool4, s));
            }
            let head = match i {
                AUX1_AFTER => self.aux1.as_ref().map(|h| ("aux1", h)),
                AUX2_AFTER => self.aux2.as_ref().map(|h| ("aux2", h)),
                _ => None,
            };
            if let Some((name, h)) = head {
                let pooled = [s[0], 4, 4];
                let mut rows = vec![
                    LayerStats { name: format!("{name}/avgpool"), kind: "avgpool", output: pooled, params: 0, macs: 0 },
                    conv_stats(format!("{name}/conv"), &h.conv, pooled),
                    linear_stats(format!("{name}/fc1"), &h.fc1),
                    linear_stats(format!("{name}/fc2"), &h.fc2),
                ];
                for r in &mut rows {
                    r.kind = match r.kind {
                        "linear" => "aux linear",
                        "avgpool" => "aux avgpool",
                        _ => "aux conv+relu",
                    };
                    aux_params += r.params;
                    aux_macs += r.macs;
                }
                layers.extend(rows);
            }
        }
        layers.push(LayerStats { name: "avgpool".into(), kind: "avgpool", output: [s[0], 1, 1], params: 0, macs: 0 });
        layers.push(linear_stats("fc".into(), &self.fc));
        let main = layers.iter().filter(|l| !l.kind.starts_with("aux"));
        let (main_params, main_macs) = main.fold((0, 0), |(p, m), l| (p + l.params, m + l.macs));
        Summary {
            variant: self.variant.to_string(),
            input: [3, size, size],
            num_classes: self.num_classes(),
            layers,
            blocks,
            main_params,
            main_macs,
            aux_params,
            aux_macs,
        }
    }
}
