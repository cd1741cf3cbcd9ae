//! GoogLeNet: stem, nine Inception blocks, average pool, classifier, and two auxiliary
//! classifiers used only in training.

use burn::module::Module;
use burn::nn::{Dropout, DropoutConfig, Linear, LinearConfig};
use burn::tensor::module::adaptive_avg_pool2d;
use burn::tensor::{Device, Tensor};

use super::aux_head::{InceptionAux, inception_aux};
use super::basic_conv::{BasicConv2d, BasicConv2dConfig};
use super::config::{AUX1_AFTER, AUX2_AFTER, GoogLeNetConfig, INCEPTION_TABLE, POOL_AFTER, Variant, VariantSpec};
use super::inception::{Inception, inception};
use super::lrn::Lrn;
use super::pool::MaxPool;

/// The network. Field names follow torchvision's module names.
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
    pub inception3a: Inception,
    pub inception3b: Inception,
    pub maxpool3: MaxPool,
    pub inception4a: Inception,
    pub inception4b: Inception,
    pub inception4c: Inception,
    pub inception4d: Inception,
    pub inception4e: Inception,
    pub maxpool4: MaxPool,
    pub inception5a: Inception,
    pub inception5b: Inception,
    pub aux1: Option<InceptionAux>,
    pub aux2: Option<InceptionAux>,
    pub dropout: Dropout,
    pub fc: Linear,
    #[module(skip)]
    pub variant: Variant,
    #[module(skip)]
    pub transform_input: bool,
}

/// What the training forward returns, in the seed code's order (main, aux2, aux1). The aux
/// outputs are `None` when the network was built without aux heads.
#[derive(Debug, Clone)]
pub struct TrainOutput {
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

fn max_pool(kernel: usize, stride: usize) -> MaxPool {
    // Caffe rounds pooled sizes up, and torchvision sets ceil_mode=True to match.
    MaxPool::new(kernel, stride, 0, true)
}

fn lrn() -> Lrn {
    // Caffe LRN across channels: x / (1 + alpha/5 * sum of 5 neighbours' x²)^0.75.
    Lrn::caffe()
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
        let block = |i: usize| inception(&INCEPTION_TABLE[i], &v, device);
        let aux = |after: usize| {
            self.aux_logits
                .then(|| inception_aux(INCEPTION_TABLE[after].out_channels(), self.num_classes, &v, device))
        };
        GoogLeNet {
            conv1: conv(3, 64, 7, 2),
            maxpool1: max_pool(3, 2),
            lrn1: v.lrn.then(lrn),
            conv2: conv(64, 64, 1, 1),
            conv3: conv(64, 192, 3, 1),
            lrn2: v.lrn.then(lrn),
            maxpool2: max_pool(3, 2),
            inception3a: block(0),
            inception3b: block(1),
            maxpool3: max_pool(3, 2),
            inception4a: block(2),
            inception4b: block(3),
            inception4c: block(4),
            inception4d: block(5),
            inception4e: block(6),
            maxpool4: max_pool(v.maxpool4_kernel, 2),
            inception5a: block(7),
            inception5b: block(8),
            aux1: aux(AUX1_AFTER),
            aux2: aux(AUX2_AFTER),
            dropout: DropoutConfig::new(v.dropout).init(),
            fc: LinearConfig::new(1024, self.num_classes).init(device),
            variant: self.variant,
            transform_input: self.transform_input,
        }
    }
}

impl GoogLeNet {
    /// The nine blocks in order (3a … 5b).
    pub fn blocks(&self) -> [&Inception; 9] {
        [
            &self.inception3a, &self.inception3b, &self.inception4a, &self.inception4b,
            &self.inception4c, &self.inception4d, &self.inception4e, &self.inception5a,
            &self.inception5b,
        ]
    }

    pub fn num_classes(&self) -> usize {
        self.fc.weight.shape().dims::<2>()[1]
    }

    pub fn has_aux(&self) -> bool {
        self.aux1.is_some() && self.aux2.is_some()
    }

    /// Evaluation forward: the main classifier only; the aux heads never run.
    ///
    /// # Shapes
    /// - input: `[batch, 3, 224, 224]` (any size ≥ 224 works; the head pools globally)
    /// - output: `[batch, num_classes]` logits
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        self.run(x, false, None).main
    }

    /// Evaluation forward that also records every layer's output and every block's four
    /// branches (for the activation views).
    pub fn forward_with_activations(&self, x: Tensor<4>) -> (Tensor<2>, Activations) {
        let mut acts = Activations::default();
        let out = self.run(x, false, Some(&mut acts));
        (out.main, acts)
    }

    /// Training forward: main and both aux classifiers, as in the seed code
    /// (`if self.training and self.aux_logits: return x, aux2, aux1`). Dropout and
    /// BatchNorm batch statistics apply when the tensors live on an autodiff device and the
    /// module is in training mode (burn's rule).
    pub fn forward_train(&self, x: Tensor<4>) -> TrainOutput {
        self.run(x, true, None)
    }

    fn run(&self, x: Tensor<4>, train: bool, mut acts: Option<&mut Activations>) -> TrainOutput {
        let mut x = self.stem_recorded(x, acts.as_deref_mut());
        let (mut aux1, mut aux2) = (None, None);
        for i in 0..INCEPTION_TABLE.len() {
            let branches = self.blocks()[i].forward_branches(x); // 3a: [b, 64|128|32|32, 28, 28]
            x = Tensor::cat(branches.to_vec(), 1); // 3a: [b, 256, 28, 28]
            if let Some(a) = acts.as_deref_mut() {
                a.blocks.push(branches);
            }
            x = self.pool_after(i, x);
            if let (Some(a), Some(name)) = (acts.as_deref_mut(), pool_name(i)) {
                a.layers.push((name, x.clone()));
            }
            if train && i == AUX1_AFTER {
                aux1 = self.aux1.as_ref().map(|h| h.forward(x.clone())); // [b, classes]
            }
            if train && i == AUX2_AFTER {
                aux2 = self.aux2.as_ref().map(|h| h.forward(x.clone())); // [b, classes]
            }
        }
        let pooled = self.global_pool(x); // [b, 1024, 1, 1]
        if let Some(a) = acts.as_deref_mut() {
            a.layers.push(("avgpool", pooled.clone()));
        }
        TrainOutput { main: self.classify_pooled(pooled), aux2, aux1 }
    }

    /// Input to the output of maxpool2 (`[b, 192, 28, 28]` at 224×224).
    pub fn stem(&self, x: Tensor<4>) -> Tensor<4> {
        self.stem_recorded(x, None)
    }

    fn stem_recorded(&self, x: Tensor<4>, mut acts: Option<&mut Activations>) -> Tensor<4> {
        let mut rec = |name: &'static str, t: &Tensor<4>| {
            if let Some(a) = acts.as_deref_mut() {
                a.layers.push((name, t.clone()));
            }
        };
        let x = if self.transform_input { transform_input(x) } else { x };
        let x = self.conv1.forward(x); // [b, 64, 112, 112]
        rec("conv1", &x);
        let mut x = self.maxpool1.forward(x); // [b, 64, 56, 56]
        rec("maxpool1", &x);
        if let Some(lrn) = &self.lrn1 {
            x = lrn.forward(x);
            rec("lrn1", &x);
        }
        let x = self.conv2.forward(x); // [b, 64, 56, 56]
        rec("conv2", &x);
        let mut x = self.conv3.forward(x); // [b, 192, 56, 56]
        rec("conv3", &x);
        if let Some(lrn) = &self.lrn2 {
            x = lrn.forward(x);
            rec("lrn2", &x);
        }
        let x = self.maxpool2.forward(x); // [b, 192, 28, 28]
        rec("maxpool2", &x);
        x
    }

    /// Inception block `i` (0 = 3a … 8 = 5b) followed by the max pool after 3b and 4e.
    pub fn block_at(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        let x = self.blocks()[i].forward(x);
        self.pool_after(i, x)
    }

    fn pool_after(&self, i: usize, x: Tensor<4>) -> Tensor<4> {
        if i == POOL_AFTER[0] {
            self.maxpool3.forward(x) // [b, 480, 14, 14]
        } else if i == POOL_AFTER[1] {
            self.maxpool4.forward(x) // [b, 832, 7, 7]
        } else {
            x
        }
    }

    /// Global average pool of 5b's output: `[b, 1024, 7, 7]` → `[b, 1024, 1, 1]`.
    pub fn global_pool(&self, x: Tensor<4>) -> Tensor<4> {
        adaptive_avg_pool2d(x, [1, 1])
    }

    /// Dropout and the classifier on the pooled features: `[b, 1024, 1, 1]` → `[b, classes]`.
    pub fn classify_pooled(&self, pooled: Tensor<4>) -> Tensor<2> {
        let x: Tensor<2> = pooled.flatten(1, 3); // [b, 1024]
        let x = self.dropout.forward(x);
        self.fc.forward(x) // [b, num_classes]
    }

    /// The same network with every dropout switched off (for reference comparisons of the
    /// training forward, which the fixtures made with dropout disabled).
    pub fn without_dropout(mut self) -> Self {
        let off = || DropoutConfig::new(0.0).init();
        self.dropout = off();
        for aux in [&mut self.aux1, &mut self.aux2].into_iter().flatten() {
            aux.dropout = off();
            aux.dropout_before_fc1 = off();
        }
        self
    }
}

fn pool_name(i: usize) -> Option<&'static str> {
    match i {
        _ if i == POOL_AFTER[0] => Some("maxpool3"),
        _ if i == POOL_AFTER[1] => Some("maxpool4"),
        _ => None,
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
