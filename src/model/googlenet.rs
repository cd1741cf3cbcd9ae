//! GoogLeNet: stem, nine Inception blocks, average pool, classifier, and two auxiliary
//! classifiers used only in training. One walk over [`STAGES`] serves every forward.

use burn::module::Module;
use burn::nn::{Linear, LinearConfig};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};

use super::aux_head::{InceptionAux, inception_aux};
use super::basic_conv::{BasicConv2d, BasicConv2dConfig};
use super::config::{
    AUX_TAPS, GoogLeNetConfig, INCEPTION_TABLE, STAGES, Stage, Variant, VariantSpec,
};
use super::inception::{Inception, inception};
use super::lrn::Lrn;
use super::pool::MaxPool;

/// The network. Field names follow torchvision's module names (the nine blocks are
/// `inception3a` … `inception5b` there; here `blocks[0]` … `blocks[8]`).
#[derive(Module, Debug)]
pub struct GoogLeNet {
    pub conv1: BasicConv2d,
    pub maxpool1: MaxPool,
    /// Caffe's `pool1/norm1`; absent in torchvision and the seed model.
    pub lrn1: Option<Lrn>,
    pub conv2: BasicConv2d,
    pub conv3: BasicConv2d,
    /// Caffe's `conv2/norm2`.
    pub lrn2: Option<Lrn>,
    pub maxpool2: MaxPool,
    /// The nine Inception blocks, in [`INCEPTION_TABLE`]'s order.
    pub blocks: Vec<Inception>,
    pub maxpool3: MaxPool,
    pub maxpool4: MaxPool,
    pub aux1: Option<InceptionAux>,
    pub aux2: Option<InceptionAux>,
    pub fc: Linear,
    /// Dropout probability before the classifier (applied only by the trainer, see
    /// [`Dropout`]).
    #[module(skip)]
    pub dropout: f64,
    #[module(skip)]
    pub variant: Variant,
    #[module(skip)]
    pub transform_input: bool,
}

/// How dropout is applied: the trainer passes seeded masks; evaluation passes [`no_dropout`].
/// (burn's `Dropout` module draws from a process-global generator, which would make
/// fine-tuning depend on whatever else draws from it.)
pub type Dropout<'a> = &'a mut dyn FnMut(Tensor<2>, f64) -> Tensor<2>;

/// Evaluation: dropout is the identity.
pub fn no_dropout(x: Tensor<2>, _p: f64) -> Tensor<2> {
    x
}

/// What the training forward returns, in the seed code's order (main, aux2, aux1). The aux
/// outputs are `None` when the network was built without aux heads.
#[derive(Debug, Clone)]
pub struct HeadLogits {
    pub main: Tensor<2>,
    pub aux2: Option<Tensor<2>>,
    pub aux1: Option<Tensor<2>>,
}

/// Every intermediate output the activation views and the reference tests look at.
#[derive(Debug, Clone, Default)]
pub struct Activations {
    /// Stem and pooling layers by name (`conv1`, `maxpool1`, `lrn1`, …, `avgpool`).
    pub layers: Vec<(&'static str, Tensor<4>)>,
    /// Per Inception block (3a … 5b), the four branch outputs before concatenation.
    pub blocks: Vec<[Tensor<4>; 4]>,
}

/// One stage's result as a tap sees it: the output, and for a block its four branches.
pub struct StageOutput<'a> {
    pub stage: Stage,
    pub output: &'a Tensor<4>,
    pub branches: Option<&'a [Tensor<4>; 4]>,
}

/// The field of [`GoogLeNet`] that runs a stage: what [`GoogLeNet::stage_module`] (shared) and
/// [`GoogLeNet::stage_module_mut`] (mutable) return, so that the forward, freezing, the weight
/// names and the summary all follow one mapping from [`STAGES`] to the model's fields.
#[derive(Debug)]
pub enum StageModule<Conv, Pool, Norm, Block> {
    /// `conv1`, `conv2`, `conv3`.
    Conv(Conv),
    /// `maxpool1` … `maxpool4`.
    MaxPool(Pool),
    /// `lrn1`, `lrn2`: `None` where the variant has no LRN (the stage is then the identity).
    Lrn(Norm),
    /// `blocks[i]`.
    Block(Block),
}

/// A stage's module, shared.
pub type StageRef<'a> = StageModule<&'a BasicConv2d, &'a MaxPool, &'a Option<Lrn>, &'a Inception>;
/// A stage's module, mutable (to load parameters into it, or to freeze it).
pub type StageMut<'a> =
    StageModule<&'a mut BasicConv2d, &'a mut MaxPool, &'a mut Option<Lrn>, &'a mut Inception>;

/// The one match from a stage to its field, for both [`StageRef`] (`$($mut)?` empty) and
/// [`StageMut`] (`mut`).
macro_rules! stage_field {
    ($net:expr, $stage:expr $(, $mut:tt)?) => {
        match $stage {
            Stage::Conv1 => StageModule::Conv(&$($mut)? $net.conv1),
            Stage::MaxPool1 => StageModule::MaxPool(&$($mut)? $net.maxpool1),
            Stage::Lrn1 => StageModule::Lrn(&$($mut)? $net.lrn1),
            Stage::Conv2 => StageModule::Conv(&$($mut)? $net.conv2),
            Stage::Conv3 => StageModule::Conv(&$($mut)? $net.conv3),
            Stage::Lrn2 => StageModule::Lrn(&$($mut)? $net.lrn2),
            Stage::MaxPool2 => StageModule::MaxPool(&$($mut)? $net.maxpool2),
            Stage::MaxPool3 => StageModule::MaxPool(&$($mut)? $net.maxpool3),
            Stage::MaxPool4 => StageModule::MaxPool(&$($mut)? $net.maxpool4),
            Stage::Block(i) => StageModule::Block(&$($mut)? $net.blocks[i]),
        }
    };
}

fn max_pool(kernel: usize, stride: usize) -> MaxPool {
    // Caffe rounds pooled sizes up, and torchvision sets ceil_mode=True to match.
    MaxPool::new(kernel, stride, 0, true)
}

impl GoogLeNetConfig {
    pub fn init(&self, device: &Device) -> GoogLeNet {
        let v: VariantSpec = self.variant.spec();
        let conv = |cin, cout, k: usize, stride: usize| {
            BasicConv2dConfig::new(cin, cout, k)
                .with_stride(stride)
                .with_padding(k / 2)
                .with_bias(v.conv_bias)
                .with_batch_norm_eps(v.batch_norm_eps)
                .init(device)
        };
        let aux = |head: usize| {
            let Stage::Block(after) = AUX_TAPS[head] else {
                unreachable!("aux heads read Inception blocks")
            };
            self.aux_logits.then(|| {
                inception_aux(
                    INCEPTION_TABLE[after].out_channels(),
                    self.num_classes,
                    &v,
                    device,
                )
            })
        };
        // Caffe LRN across channels: x / (1 + alpha/5 * sum of 5 neighbours' x²)^0.75.
        let lrn = || v.lrn.then(Lrn::caffe);
        GoogLeNet {
            conv1: conv(3, 64, 7, 2),
            maxpool1: max_pool(3, 2),
            lrn1: lrn(),
            conv2: conv(64, 64, 1, 1),
            conv3: conv(64, 192, 3, 1),
            lrn2: lrn(),
            maxpool2: max_pool(3, 2),
            blocks: INCEPTION_TABLE
                .iter()
                .map(|spec| inception(spec, &v, device))
                .collect(),
            maxpool3: max_pool(3, 2),
            maxpool4: max_pool(v.maxpool4_kernel, 2),
            aux1: aux(0),
            aux2: aux(1),
            fc: LinearConfig::new(1024, self.num_classes).init(device),
            dropout: v.dropout,
            variant: self.variant,
            transform_input: self.transform_input,
        }
    }
}

impl GoogLeNet {
    pub fn num_classes(&self) -> usize {
        self.fc.weight.shape().dims::<2>()[1]
    }

    pub fn has_aux(&self) -> bool {
        self.aux1.is_some() && self.aux2.is_some()
    }

    /// The aux heads as an array indexed like [`AUX_TAPS`].
    pub fn aux_heads(&self) -> [Option<&InceptionAux>; 2] {
        [self.aux1.as_ref(), self.aux2.as_ref()]
    }

    /// The stages this model has, in order (LRN only where the variant uses it).
    pub fn stages(&self) -> impl Iterator<Item = Stage> + '_ {
        STAGES
            .into_iter()
            .filter(|&s| !matches!(self.stage_module(s), StageModule::Lrn(None)))
    }

    /// The field that runs `stage`.
    pub fn stage_module(&self, stage: Stage) -> StageRef<'_> {
        stage_field!(self, stage)
    }

    /// The field that runs `stage`, mutable.
    pub fn stage_module_mut(&mut self, stage: Stage) -> StageMut<'_> {
        stage_field!(self, stage, mut)
    }

    /// Run one stage. A block returns its four branches too (its output is their
    /// concatenation); an absent LRN is the identity.
    ///
    /// # Shapes (224×224 input)
    /// conv1 `[b, 64, 112, 112]`, maxpool1 `[b, 64, 56, 56]`, conv2 `[b, 64, 56, 56]`, conv3
    /// `[b, 192, 56, 56]`, maxpool2 `[b, 192, 28, 28]`, 3a `[b, 256, 28, 28]`, 3b
    /// `[b, 480, 28, 28]`, maxpool3 `[b, 480, 14, 14]`, 4a … 4e `[b, 512…832, 14, 14]`,
    /// maxpool4 `[b, 832, 7, 7]`, 5a `[b, 832, 7, 7]`, 5b `[b, 1024, 7, 7]`.
    pub fn stage(&self, stage: Stage, x: Tensor<4>) -> (Tensor<4>, Option<[Tensor<4>; 4]>) {
        // torchvision's input transform belongs to the first conv's input.
        let x = if stage == Stage::Conv1 && self.transform_input {
            transform_input(x)
        } else {
            x
        };
        let out = match self.stage_module(stage) {
            StageModule::Conv(c) => c.forward(x),
            StageModule::MaxPool(p) => p.forward(x),
            StageModule::Lrn(Some(l)) => l.forward(x),
            StageModule::Lrn(None) => x,
            StageModule::Block(b) => {
                let (out, branches) = b.forward_with_branches(x);
                return (out, Some(branches));
            }
        };
        (out, None)
    }

    /// Run the stages `STAGES[range]` that this model has, showing each output to `tap`.
    pub fn trunk(
        &self,
        mut x: Tensor<4>,
        range: std::ops::Range<usize>,
        tap: &mut dyn FnMut(StageOutput<'_>),
    ) -> Tensor<4> {
        for stage in self.stages().filter(|s| range.contains(&s.index())) {
            let (out, branches) = self.stage(stage, x);
            tap(StageOutput {
                stage,
                output: &out,
                branches: branches.as_ref(),
            });
            x = out;
        }
        x
    }

    /// Evaluation forward: the main classifier only; the aux heads never run.
    ///
    /// # Shapes
    /// - input: `[batch, 3, 224, 224]` (any size ≥ 224 works; the head pools globally)
    /// - output: `[batch, num_classes]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let x = self.trunk(x, 0..STAGES.len(), &mut |_| {});
        self.head(x, &mut no_dropout)
    }

    /// Evaluation forward that also records every layer's output and every block's four
    /// branches (for the activation views).
    pub fn forward_with_activations(&self, x: Tensor<4>) -> (Tensor<2>, Activations) {
        let (out, acts) = self.forward_all(x, false, true);
        (out.main, acts.expect("recorded"))
    }

    /// Training forward: main and both aux classifiers, as in the seed code
    /// (`if self.training and self.aux_logits: return x, aux2, aux1`), without dropout (the
    /// trainer applies its own seeded dropout through [`Self::head`] and
    /// [`InceptionAux::forward_pooled`]). BatchNorm uses batch statistics when the tensors live
    /// on an autodiff device and the module is in training mode (burn's rule).
    pub fn forward_train(&self, x: Tensor<4>) -> HeadLogits {
        self.forward_all(x, true, false).0
    }

    /// One pass that serves every caller: the main logits, the aux heads' logits when `aux`
    /// (and the heads exist), and every stage's output when `record`.
    pub fn forward_all(
        &self,
        x: Tensor<4>,
        aux: bool,
        record: bool,
    ) -> (HeadLogits, Option<Activations>) {
        let mut acts = record.then(Activations::default);
        let mut aux_out: [Option<Tensor<2>>; 2] = [None, None];
        let heads = self.aux_heads();
        let x = self.trunk(x, 0..STAGES.len(), &mut |o| {
            if let Some(a) = acts.as_mut() {
                match o.branches {
                    Some(b) => a.blocks.push(b.clone()),
                    None => a.layers.push((o.stage.name(), o.output.clone())),
                }
            }
            if let (true, Some(h)) = (aux, o.stage.aux_tap()) {
                aux_out[h] = heads[h].map(|head| head.forward(o.output.clone())); // [b, classes]
            }
        });
        let pooled = self.global_pool(x); // [b, 1024, 1, 1]
        if let Some(a) = acts.as_mut() {
            a.layers.push(("avgpool", pooled.clone()));
        }
        let main = self.classify_pooled(pooled, &mut no_dropout);
        let [aux1, aux2] = aux_out;
        (HeadLogits { main, aux2, aux1 }, acts)
    }

    /// Global average pool, dropout and the classifier: `[b, 1024, h, w]` → `[b, classes]`.
    pub fn head(&self, x: Tensor<4>, dropout: Dropout<'_>) -> Tensor<2> {
        self.classify_pooled(self.global_pool(x), dropout)
    }

    /// Global average pool of 5b's output: `[b, 1024, 7, 7]` → `[b, 1024, 1, 1]`.
    pub fn global_pool(&self, x: Tensor<4>) -> Tensor<4> {
        adaptive_avg_pool2d(x, [1, 1])
    }

    /// Dropout and the classifier on the pooled features: `[b, 1024, 1, 1]` → `[b, classes]`.
    pub fn classify_pooled(&self, pooled: Tensor<4>, dropout: Dropout<'_>) -> Tensor<2> {
        let x: Tensor<2> = pooled.flatten(1, 3); // [b, 1024]
        let x = dropout(x, self.dropout);
        self.fc.forward(x) // [b, num_classes]
    }

    /// Freeze the parameters of one stage (no gradients; BatchNorm keeps running statistics).
    pub fn freeze_stage(&mut self, stage: Stage) {
        match self.stage_module_mut(stage) {
            StageModule::Conv(c) => *c = c.clone().freeze(),
            StageModule::Block(b) => *b = b.clone().freeze(),
            // Pools and LRN have no parameters.
            StageModule::MaxPool(_) | StageModule::Lrn(_) => {}
        }
    }
}

/// torchvision's `_transform_input`: from ImageNet mean/std normalisation to (x - 0.5) / 0.5.
fn transform_input(x: Tensor<4>) -> Tensor<4> {
    const MEAN: [f64; 3] = [0.485, 0.456, 0.406];
    const STD: [f64; 3] = [0.229, 0.224, 0.225];
    let [b, _, h, w] = x.dims();
    let chans = (0..3)
        .map(|c| {
            x.clone()
                .slice([0..b, c..c + 1, 0..h, 0..w])
                .mul_scalar(STD[c] / 0.5)
                .add_scalar((MEAN[c] - 0.5) / 0.5)
        })
        .collect();
    Tensor::cat(chans, 1)
}
