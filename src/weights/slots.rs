//! Walking the model's parameters by PyTorch key: which parameter each key names, and the
//! layout conversion at this boundary (burn's `Linear` stores (in, out), files (out, in)).

use burn::module::{Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};

use super::RawTensor;
use super::names::CAFFE_BRANCH;
use crate::model::basic_conv::BasicConv2d;
use crate::model::googlenet::StageModule;
use crate::model::{GoogLeNet, Inception, STAGES};

/// A parameter slot of the model.
pub(super) enum Slot<'a> {
    Conv(&'a mut Param<Tensor<4>>),
    /// burn layout (in, out); files hold (out, in).
    Linear(&'a mut Param<Tensor<2>>),
    Vector(&'a mut Param<Tensor<1>>),
    Running(&'a mut RunningState<Tensor<1>>),
}

impl Slot<'_> {
    /// Shape as the files store it. Read without initialising a lazy parameter: a fresh model's
    /// random initial values (7M for BVLC, 6M more for new aux heads) would be drawn only to be
    /// replaced by the file's, which was most of a page start's weight loading.
    pub(super) fn file_shape(&self) -> Vec<usize> {
        match self {
            Slot::Conv(p) => p.lazy_shape().dims::<4>().to_vec(),
            Slot::Linear(p) => {
                let [i, o] = p.lazy_shape().dims::<2>();
                vec![o, i]
            }
            Slot::Vector(p) => p.lazy_shape().dims::<1>().to_vec(),
            Slot::Running(r) => r.value().dims().to_vec(),
        }
    }

    pub(super) fn set(self, t: &RawTensor, device: &Device) {
        let data = |shape: Vec<usize>| TensorData::new(t.data.clone(), shape);
        match self {
            Slot::Conv(p) => {
                *p = Param::from_tensor(Tensor::from_data(data(t.shape.clone()), device))
            }
            Slot::Linear(p) => {
                // Transpose on the host: a contiguous (in, out) matrix, as burn's own init
                // makes, so a saved and reloaded model computes bit for bit the same.
                let (o, i) = (t.shape[0], t.shape[1]);
                let mut w = vec![0f32; o * i];
                for r in 0..o {
                    for c in 0..i {
                        w[c * o + r] = t.data[r * i + c];
                    }
                }
                *p = Param::from_tensor(Tensor::from_data(TensorData::new(w, [i, o]), device));
            }
            Slot::Vector(p) => {
                *p = Param::from_tensor(Tensor::from_data(data(t.shape.clone()), device))
            }
            Slot::Running(r) => {
                *r = RunningState::new(Tensor::from_data(data(t.shape.clone()), device))
            }
        }
    }

    /// The value in file layout, flattened (read it with `into_data` / `into_data_async`).
    fn flat(self) -> Tensor<1> {
        match self {
            Slot::Conv(p) => p.val().flatten(0, 3),
            Slot::Linear(p) => p.val().transpose().flatten(0, 1),
            Slot::Vector(p) => p.val(),
            Slot::Running(r) => r.value(),
        }
    }
}

fn visit_conv(prefix: &str, c: &mut BasicConv2d, f: &mut dyn FnMut(String, Slot<'_>)) {
    f(
        format!("{prefix}.conv.weight"),
        Slot::Conv(&mut c.conv.weight),
    );
    if let Some(b) = &mut c.conv.bias {
        f(format!("{prefix}.conv.bias"), Slot::Vector(b));
    }
    if let Some(bn) = &mut c.bn {
        f(format!("{prefix}.bn.weight"), Slot::Vector(&mut bn.gamma));
        f(format!("{prefix}.bn.bias"), Slot::Vector(&mut bn.beta));
        f(
            format!("{prefix}.bn.running_mean"),
            Slot::Running(&mut bn.running_mean),
        );
        f(
            format!("{prefix}.bn.running_var"),
            Slot::Running(&mut bn.running_var),
        );
    }
}

fn visit_linear(prefix: &str, l: &mut burn::nn::Linear, f: &mut dyn FnMut(String, Slot<'_>)) {
    f(format!("{prefix}.weight"), Slot::Linear(&mut l.weight));
    if let Some(b) = &mut l.bias {
        f(format!("{prefix}.bias"), Slot::Vector(b));
    }
}

fn visit_block(prefix: &str, b: &mut Inception, f: &mut dyn FnMut(String, Slot<'_>)) {
    let convs = [
        &mut b.branch1,
        &mut b.branch2_reduce,
        &mut b.branch2,
        &mut b.branch3_reduce,
        &mut b.branch3,
        &mut b.branch4,
    ];
    for ((name, _), c) in CAFFE_BRANCH.iter().zip(convs) {
        visit_conv(&format!("{prefix}.{name}"), c, f);
    }
}

/// Every parameter (and BatchNorm running statistic) of the model, by PyTorch key, in
/// stage order.
pub(super) fn visit(model: &mut GoogLeNet, f: &mut dyn FnMut(String, Slot<'_>)) {
    for stage in STAGES {
        let name = stage.name();
        match model.stage_module_mut(stage) {
            StageModule::Conv(c) => visit_conv(name, c, f),
            // PyTorch's module is `inception3a` where Caffe's layer is `inception_3a`.
            StageModule::Block(b) => visit_block(&name.replace('_', ""), b, f),
            // Pools and LRN have no parameters.
            StageModule::MaxPool(_) | StageModule::Lrn(_) => {}
        }
    }
    for (name, aux) in [("aux1", &mut model.aux1), ("aux2", &mut model.aux2)] {
        if let Some(a) = aux {
            visit_conv(&format!("{name}.conv"), &mut a.conv, f);
            visit_linear(&format!("{name}.fc1"), &mut a.fc1, f);
            visit_linear(&format!("{name}.fc2"), &mut a.fc2, f);
        }
    }
    visit_linear("fc", &mut model.fc, f);
}

/// The model's keys and file-layout shapes, in walk order.
pub fn expected_keys(model: &GoogLeNet) -> Vec<(String, Vec<usize>)> {
    let mut out = Vec::new();
    visit(&mut model.clone(), &mut |k, s| {
        out.push((k, s.file_shape()))
    });
    out
}

/// The model's tensors in file layout, flattened, by PyTorch key. Read each with
/// `into_data()` natively or `into_data_async()` on wasm, then [`write_safetensors`](super::write_safetensors).
pub fn named_tensors(model: &GoogLeNet) -> Vec<(String, Vec<usize>, Tensor<1>)> {
    let mut out = Vec::new();
    visit(&mut model.clone(), &mut |k, s| {
        let shape = s.file_shape();
        out.push((k, shape, s.flat()))
    });
    out
}
