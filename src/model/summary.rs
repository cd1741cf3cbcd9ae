//! Output shapes, parameter counts and multiply-adds of every layer, computed from a built
//! model (kernel sizes and channel counts are read back from its weights, not typed in).

use burn::module::Module;
use burn::nn::Linear;
use serde::Serialize;

use super::basic_conv::BasicConv2d;
use super::config::{INCEPTION_TABLE, Stage};
use super::googlenet::{GoogLeNet, StageModule};
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

/// One row of the network map the page draws, from input to softmax, in order.
#[derive(Debug, Clone, Serialize)]
pub struct MapRow {
    pub name: String,
    /// `input`, `conv`, `maxpool`, `lrn`, `block`, `aux`, `avgpool` or `fc`.
    pub kind: &'static str,
    /// Output `[channels, height, width]`.
    pub output: [usize; 3],
    pub params: usize,
    /// What the layer does, read from the built model (`max pool 2×2 / 2, ceil`, …).
    pub detail: String,
    /// Index into `blocks` for an Inception block.
    pub block: Option<usize>,
    /// 1 or 2 for an aux head (training only).
    pub aux: Option<usize>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub variant: String,
    pub input: [usize; 3],
    pub num_classes: usize,
    pub layers: Vec<LayerStats>,
    pub blocks: Vec<BlockStats>,
    /// The network map: every stage, the aux heads where they tap in, and the head.
    pub map: Vec<MapRow>,
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
        kind: if c.bn.is_some() {
            "conv+bn+relu"
        } else {
            "conv+relu"
        },
        output: [out, h, w],
        // Learned parameters as PyTorch counts them: BatchNorm's running statistics are
        // state, not parameters (burn's `num_params` would count them).
        params: out * c.in_channels() * k * k
            + if c.conv.bias.is_some() { out } else { 0 }
            + if c.bn.is_some() { 2 * out } else { 0 },
        macs: (out * c.in_channels() * k * k * h * w) as u64,
    }
}

fn pool_stats(name: String, p: &MaxPool, input: [usize; 3]) -> LayerStats {
    let (k, s, pad) = (p.kernel, p.stride, p.padding);
    LayerStats {
        name,
        kind: "maxpool",
        output: [
            input[0],
            pool_out(input[1], k, s, pad, p.ceil),
            pool_out(input[2], k, s, pad, p.ceil),
        ],
        params: 0,
        macs: 0,
    }
}

fn linear_stats(name: String, l: &Linear) -> LayerStats {
    let [i, o] = l.weight.shape().dims::<2>();
    LayerStats {
        name,
        kind: "linear",
        output: [o, 1, 1],
        params: l.num_params(),
        macs: (i * o) as u64,
    }
}

fn block_stats(
    name: &'static str,
    b: &Inception,
    input: [usize; 3],
    rows: &mut Vec<LayerStats>,
) -> BlockStats {
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
    let saving =
        |branch, reduce: &BasicConv2d, conv: &BasicConv2d, r: &LayerStats, c: &LayerStats| {
            let k = conv.kernel();
            let (cin, mid, out) = (
                reduce.in_channels(),
                reduce.out_channels(),
                conv.out_channels(),
            );
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
    let branch_params = [
        b1.params,
        b2r.params + b2.params,
        b3r.params + b3.params,
        b4.params,
    ];
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
        let mut map = Vec::new();
        let row = |name: &str, kind, output, params, detail: String| MapRow {
            name: name.to_string(),
            kind,
            output,
            params,
            detail,
            block: None,
            aux: None,
        };
        let mut s = [3, size, size];
        map.push(row(
            "input",
            "input",
            s,
            0,
            "RGB photo, resized to 256 and centre-cropped".into(),
        ));
        let (mut aux_params, mut aux_macs) = (0, 0);
        for stage in self.stages() {
            let name = stage.name();
            let r = match self.stage_module(stage) {
                StageModule::Conv(c) => {
                    let r = conv_stats(name.into(), c, s);
                    let (k, st) = (c.kernel(), c.conv.stride[0]);
                    map.push(row(
                        name,
                        "conv",
                        r.output,
                        r.params,
                        format!(
                            "{k}×{k} conv{}, {} filters",
                            if st > 1 {
                                format!(" / {st}")
                            } else {
                                String::new()
                            },
                            r.output[0]
                        ),
                    ));
                    Some(r)
                }
                StageModule::Lrn(_) => {
                    let r = LayerStats {
                        name: name.into(),
                        kind: "lrn",
                        output: s,
                        params: 0,
                        macs: 0,
                    };
                    map.push(row(
                        name,
                        "lrn",
                        s,
                        0,
                        "local response normalisation across 5 channels".into(),
                    ));
                    Some(r)
                }
                StageModule::MaxPool(p) => {
                    let r = pool_stats(name.into(), p, s);
                    map.push(row(
                        name,
                        "maxpool",
                        r.output,
                        0,
                        format!(
                            "max pool {k}×{k} / {}{}",
                            p.stride,
                            if p.ceil { ", rounding up" } else { "" },
                            k = p.kernel
                        ),
                    ));
                    Some(r)
                }
                StageModule::Block(block) => {
                    let Stage::Block(i) = stage else {
                        unreachable!("only block stages run a block")
                    };
                    let b = block_stats(INCEPTION_TABLE[i].name, block, s, &mut layers);
                    s = b.output;
                    map.push(MapRow {
                        block: Some(i),
                        ..row(name, "block", b.output, b.params, String::new())
                    });
                    blocks.push(b);
                    None // its rows were pushed by block_stats
                }
            };
            if let Some(r) = r {
                s = r.output;
                layers.push(r);
            }
            if let Some(h) = stage.aux_tap()
                && let Some(head) = self.aux_heads()[h]
            {
                let name = format!("aux{}", h + 1);
                let pooled = [s[0], 4, 4];
                let mut rows = vec![
                    LayerStats {
                        name: format!("{name}/avgpool"),
                        kind: "aux avgpool",
                        output: pooled,
                        params: 0,
                        macs: 0,
                    },
                    conv_stats(format!("{name}/conv"), &head.conv, pooled),
                    linear_stats(format!("{name}/fc1"), &head.fc1),
                    linear_stats(format!("{name}/fc2"), &head.fc2),
                ];
                rows[1].kind = "aux conv+relu";
                rows[2].kind = "aux linear";
                rows[3].kind = "aux linear";
                let params: usize = rows.iter().map(|r| r.params).sum();
                aux_params += params;
                aux_macs += rows.iter().map(|r| r.macs).sum::<u64>();
                let pool = match head.pool {
                    super::config::AuxPool::Avg5Stride3 => "5×5 / 3 average pool",
                    super::config::AuxPool::Adaptive4 => "adaptive average pool to 4×4",
                };
                let detail = format!(
                    "{pool} → 1×1 conv {} → FC {} → FC {}; training only",
                    rows[1].output[0], rows[2].output[0], rows[3].output[0]
                );
                map.push(MapRow {
                    aux: Some(h + 1),
                    ..row(&name, "aux", rows[3].output, params, detail)
                });
                layers.extend(rows);
            }
        }
        layers.push(LayerStats {
            name: "avgpool".into(),
            kind: "avgpool",
            output: [s[0], 1, 1],
            params: 0,
            macs: 0,
        });
        map.push(row(
            "avgpool",
            "avgpool",
            [s[0], 1, 1],
            0,
            "global average".into(),
        ));
        let fc = linear_stats("fc".into(), &self.fc);
        map.push(row(
            "fc → softmax",
            "fc",
            fc.output,
            fc.params,
            format!("dropout {} in training", self.dropout),
        ));
        layers.push(fc);
        let main = layers.iter().filter(|l| !l.kind.starts_with("aux"));
        let (main_params, main_macs) = main.fold((0, 0), |(p, m), l| (p + l.params, m + l.macs));
        Summary {
            variant: self.variant.to_string(),
            input: [3, size, size],
            num_classes: self.num_classes(),
            layers,
            blocks,
            map,
            main_params,
            main_macs,
            aux_params,
            aux_macs,
        }
    }
}
