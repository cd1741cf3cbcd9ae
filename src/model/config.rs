//! The network's shape, as data: the paper's Table 1 and the three variants.

use burn::config::Config;
use serde::{Deserialize, Serialize};

/// One Inception block's channel counts, in the paper's column order (Table 1 of
/// "Going deeper with convolutions", Szegedy et al. 2014).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InceptionSpec {
    /// Name as in Caffe (`inception_3a` … `inception_5b`); PyTorch drops the underscore.
    pub name: &'static str,
    /// Input channels (the previous layer's output).
    pub in_channels: usize,
    /// `#1x1`
    pub c1x1: usize,
    /// `#3x3 reduce`
    pub c3x3_reduce: usize,
    /// `#3x3`
    pub c3x3: usize,
    /// `#5x5 reduce`
    pub c5x5_reduce: usize,
    /// `#5x5`
    pub c5x5: usize,
    /// `pool proj`
    pub pool_proj: usize,
}

impl InceptionSpec {
    /// Output channels: the four branches concatenated.
    pub const fn out_channels(&self) -> usize {
        self.c1x1 + self.c3x3 + self.c5x5 + self.pool_proj
    }
}

const fn spec(
    name: &'static str,
    in_channels: usize,
    [c1x1, c3x3_reduce, c3x3, c5x5_reduce, c5x5, pool_proj]: [usize; 6],
) -> InceptionSpec {
    InceptionSpec {
        name,
        in_channels,
        c1x1,
        c3x3_reduce,
        c3x3,
        c5x5_reduce,
        c5x5,
        pool_proj,
    }
}

/// The nine Inception blocks (paper Table 1), columns: 1x1, 3x3 reduce, 3x3, 5x5 reduce,
/// 5x5, pool proj.
pub const INCEPTION_TABLE: [InceptionSpec; 9] = [
    spec("inception_3a", 192, [64, 96, 128, 16, 32, 32]),
    spec("inception_3b", 256, [128, 128, 192, 32, 96, 64]),
    spec("inception_4a", 480, [192, 96, 208, 16, 48, 64]),
    spec("inception_4b", 512, [160, 112, 224, 24, 64, 64]),
    spec("inception_4c", 512, [128, 128, 256, 24, 64, 64]),
    spec("inception_4d", 512, [112, 144, 288, 32, 64, 64]),
    spec("inception_4e", 528, [256, 160, 320, 32, 128, 128]),
    spec("inception_5a", 832, [256, 160, 320, 32, 128, 128]),
    spec("inception_5b", 832, [384, 192, 384, 48, 128, 128]),
];

/// One step of the trunk, input to the last Inception block. [`STAGES`] lists them in order;
/// everything that walks the network (the forwards, the trainer's frozen/trainable split,
/// the summary, the weight names, the timings, the page's map) walks that list.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Stage {
    Conv1,
    MaxPool1,
    /// Caffe's `pool1/norm1`; absent in torchvision and the seed model.
    Lrn1,
    /// `conv2/3x3_reduce` (1x1).
    Conv2,
    /// `conv2/3x3`.
    Conv3,
    /// Caffe's `conv2/norm2`.
    Lrn2,
    MaxPool2,
    /// Inception block `i` of [`INCEPTION_TABLE`] (0 = 3a … 8 = 5b).
    Block(usize),
    /// After 3b: 28×28 → 14×14.
    MaxPool3,
    /// After 4e: 14×14 → 7×7.
    MaxPool4,
}

/// The trunk in order (paper Table 1): stem, 3a 3b, pool, 4a … 4e, pool, 5a 5b. The global
/// average pool, dropout and classifier follow (`GoogLeNet::head`).
pub const STAGES: [Stage; 18] = [
    Stage::Conv1,
    Stage::MaxPool1,
    Stage::Lrn1,
    Stage::Conv2,
    Stage::Conv3,
    Stage::Lrn2,
    Stage::MaxPool2,
    Stage::Block(0),
    Stage::Block(1),
    Stage::MaxPool3,
    Stage::Block(2),
    Stage::Block(3),
    Stage::Block(4),
    Stage::Block(5),
    Stage::Block(6),
    Stage::MaxPool4,
    Stage::Block(7),
    Stage::Block(8),
];

/// The two auxiliary classifiers and the stage whose output each reads (paper §5: after 4a
/// and after 4d). Index 0 is aux1, index 1 aux2.
pub const AUX_TAPS: [Stage; 2] = [Stage::Block(2), Stage::Block(5)];

impl Stage {
    /// The name the summary, the timings and the page use (`conv1`, `inception_4c`, …).
    pub fn name(self) -> &'static str {
        match self {
            Stage::Conv1 => "conv1",
            Stage::MaxPool1 => "maxpool1",
            Stage::Lrn1 => "lrn1",
            Stage::Conv2 => "conv2",
            Stage::Conv3 => "conv3",
            Stage::Lrn2 => "lrn2",
            Stage::MaxPool2 => "maxpool2",
            Stage::Block(i) => INCEPTION_TABLE[i].name,
            Stage::MaxPool3 => "maxpool3",
            Stage::MaxPool4 => "maxpool4",
        }
    }

    /// Position in [`STAGES`].
    pub fn index(self) -> usize {
        STAGES
            .iter()
            .position(|&s| s == self)
            .expect("every stage is listed in STAGES")
    }

    /// Which aux head (0 = aux1, 1 = aux2) reads this stage's output, if any.
    pub fn aux_tap(self) -> Option<usize> {
        AUX_TAPS.iter().position(|&s| s == self)
    }
}

/// Which published GoogLeNet this is. They share the table above and differ in details the
/// weights depend on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum Variant {
    /// Caffe's `bvlc_googlenet`, the network of the paper as released: conv + bias + ReLU,
    /// LRN in the stem, real 5x5 branch, BGR 0..255 input minus the mean.
    #[default]
    Bvlc,
    /// torchvision's `GoogLeNet`: conv without bias + BatchNorm, and a 3x3 conv where the
    /// paper has a 5x5 (<https://github.com/pytorch/vision/issues/906>).
    Torchvision,
    /// The widely copied PyTorch tutorial model (conv + bias + ReLU, no LRN, no BN).
    Seed,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Bvlc, Variant::Torchvision, Variant::Seed];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Bvlc => "bvlc",
            Variant::Torchvision => "torchvision",
            Variant::Seed => "seed",
        }
    }

    pub fn parse(s: &str) -> Option<Variant> {
        Variant::ALL.into_iter().find(|v| v.name() == s)
    }
}

impl std::fmt::Display for Variant {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// How an auxiliary head pools its input down to 4×4.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum AuxPool {
    /// The paper's 5×5 average pool with stride 3 (14×14 → 4×4).
    Avg5Stride3,
    /// torchvision's `adaptive_avg_pool2d(x, (4, 4))`.
    Adaptive4,
}

/// Everything that distinguishes the variants, derived from [`Variant`] and overridable.
#[derive(Config, Debug)]
pub struct GoogLeNetConfig {
    /// Which published network.
    #[config(default = "Variant::Bvlc")]
    pub variant: Variant,
    /// Classifier outputs (1000 for ImageNet).
    #[config(default = 1000)]
    pub num_classes: usize,
    /// Build the two auxiliary classifiers (used only by the training forward).
    #[config(default = true)]
    pub aux_logits: bool,
    /// torchvision's `transform_input`: re-map ImageNet-normalised RGB to the (x - 0.5) / 0.5
    /// scale its pretrained weights were trained on. False unless the weights say otherwise.
    #[config(default = false)]
    pub transform_input: bool,
}

/// The per-variant details, resolved from a [`GoogLeNetConfig`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VariantSpec {
    pub conv_bias: bool,
    /// BatchNorm epsilon after every conv (torchvision: 1e-3), or none.
    pub batch_norm_eps: Option<f64>,
    /// LRN after pool1 and after conv2/3x3 (Caffe).
    pub lrn: bool,
    /// Kernel of the "5x5" branch: 5, except torchvision's 3.
    pub branch3_kernel: usize,
    /// Kernel of maxpool4 (torchvision uses 2×2 stride 2; the paper 3×3 stride 2).
    pub maxpool4_kernel: usize,
    /// Dropout before the main classifier.
    pub dropout: f64,
    pub aux_pool: AuxPool,
    /// Dropout on the aux head's flattened conv output, before fc1 (seed only).
    pub aux_dropout_before_fc1: f64,
    /// Dropout after fc1 + ReLU, before fc2 (paper: 0.7).
    pub aux_dropout_after_fc1: f64,
}

impl Variant {
    pub fn spec(self) -> VariantSpec {
        match self {
            // deploy.prototxt / train_val.prototxt of bvlc_googlenet.
            Variant::Bvlc => VariantSpec {
                conv_bias: true,
                batch_norm_eps: None,
                lrn: true,
                branch3_kernel: 5,
                maxpool4_kernel: 3,
                dropout: 0.4,
                aux_pool: AuxPool::Avg5Stride3,
                aux_dropout_before_fc1: 0.0,
                aux_dropout_after_fc1: 0.7,
            },
            // torchvision/models/googlenet.py
            Variant::Torchvision => VariantSpec {
                conv_bias: false,
                batch_norm_eps: Some(1e-3),
                lrn: false,
                branch3_kernel: 3,
                maxpool4_kernel: 2,
                dropout: 0.2,
                aux_pool: AuxPool::Adaptive4,
                aux_dropout_before_fc1: 0.0,
                aux_dropout_after_fc1: 0.7,
            },
            // The seed note's tutorial model (shared/reference/make_seed_fixtures.py).
            Variant::Seed => VariantSpec {
                conv_bias: true,
                batch_norm_eps: None,
                lrn: false,
                branch3_kernel: 5,
                maxpool4_kernel: 3,
                dropout: 0.4,
                aux_pool: AuxPool::Avg5Stride3,
                aux_dropout_before_fc1: 0.5,
                aux_dropout_after_fc1: 0.5,
            },
        }
    }
}
