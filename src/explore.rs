//! What the page asks of a loaded model, computed here so native tests reach it: one
//! classification pass (main and, when trained, aux heads, with every stage recorded) and the
//! analysis behind a block view (energy shares, strongest channels, where the block responds).
//! Every tensor read is `into_data_async` (the only read WebGPU allows).

use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

use crate::error::Error;
use crate::labels::{Prediction, top_k, top_indices};
use crate::model::{Activations, BRANCH_NAMES, GoogLeNet, INCEPTION_TABLE};

pub(crate) async fn read(t: Tensor<1>) -> Result<Vec<f32>, Error> {
    let d = t.into_data_async().await.map_err(|e| Error::Device(format!("reading a tensor: {e:?}")))?;
    d.try_to_vec::<f32>().map_err(|e| Error::Device(format!("reading a tensor: {e:?}")))
}

/// One image's classification.
#[derive(Debug, Clone, Serialize)]
pub struct Classification {
    pub top: Vec<Prediction>,
    /// The aux heads' top classes, when they hold trained weights.
    pub aux1: Option<Vec<Prediction>>,
    pub aux2: Option<Vec<Prediction>>,
    /// The forward pass and the reads of its outputs.
    pub ms_forward: f64,
}

/// Classify `x` (`[1, 3, 224, 224]`) in one pass that also records every stage when `record`
/// (the page's block views), and runs the aux heads when `aux`. Non-finite outputs are an
/// error, never a "NaN%" result. The CLI and the page both call this.
pub async fn classify(model: &GoogLeNet, x: Tensor<4>, aux: bool, record: bool, k: usize, labels: &[String]) -> Result<(Classification, Option<Activations>), Error> {
    let t0 = crate::clock::now_ms();
    let (out, acts) = model.forward_all(x, aux && model.has_aux(), record);
    let mut rows = vec![out.main];
    rows.extend(out.aux1);
    rows.extend(out.aux2);
    let n = rows.len();
    let values = read(Tensor::cat(rows, 0).flatten(0, 1)).await?;
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::NonFinite { what: format!("{v} among its outputs") });
    }
    let per = values.len() / n;
    let row = |i: usize| top_k(&values[i * per..(i + 1) * per], k, labels);
    let c = Classification {
        top: row(0),
        aux1: (n == 3).then(|| row(1)),
        aux2: (n == 3).then(|| row(2)),
        ms_forward: crate::clock::now_ms() - t0,
    };
    Ok((c, acts))
}

/// One stage's median time (`bench --layers`, the page's `?bench=1`).
#[derive(Debug, Clone, Serialize)]
pub struct StageTime {
    pub stage: &'static str,
    pub ms: f64,
}

/// Where a forward's time goes: each stage's median over `iters` forwards of `x` (the head
/// last). Each stage's output is read before the clock stops (one element: that waits for a
/// GPU; the CPU engines have computed it already), so each time is the stage's own.
pub async fn stage_times(model: &GoogLeNet, x: Tensor<4>, iters: usize) -> Vec<StageTime> {
    let names: Vec<&'static str> = model.stages().map(|s| s.name()).chain(["head"]).collect();
    let mut times = vec![Vec::new(); names.len()];
    for _ in 0..iters.max(1) {
        let mut h = x.clone();
        for (i, stage) in model.stages().enumerate() {
            let t = crate::clock::now_ms();
            h = model.stage(stage, h).0;
            let _ = h.clone().slice([0..1, 0..1, 0..1, 0..1]).into_data_async().await;
            times[i].push(crate::clock::now_ms() - t);
        }
        let t = crate::clock::now_ms();
        let _ = model.head(h, &mut crate::model::googlenet::no_dropout).into_data_async().await;
        times[names.len() - 1].push(crate::clock::now_ms() - t);
    }
    names
        .into_iter()
        .zip(times)
        .map(|(stage, mut v)| {
            v.sort_by(f64::total_cmp);
            StageTime { stage, ms: v[v.len() / 2] }
        })
        .collect()
}

/// One branch of a block view.
#[derive(Debug, Clone, Serialize)]
pub struct BranchView {
    pub name: &'static str,
    /// Channels in the branch.
    pub count: usize,
    /// The `k` channels with the highest mean activation, strongest first.
    pub channels: Vec<usize>,
    /// Their mean activations.
    pub means: Vec<f32>,
    /// Their feature maps, `channels.len() × h × w`.
    pub maps: Vec<f32>,
}

/// A block's four branches on the last image.
#[derive(Debug, Clone, Serialize)]
pub struct BlockView {
    pub block: &'static str,
    pub h: usize,
    pub w: usize,
    /// Each branch's mean squared activation: its share of the block's activation energy.
    pub energy: [f32; 4],
    pub branches: Vec<BranchView>,
    /// The block output's mean over all channels (`h × w`): where in the image it responds.
    pub heatmap: Vec<f32>,
}

/// The view of block `block` from its four recorded branch outputs (batch 1), with the `k`
/// strongest channels of each branch.
pub async fn block_view(block: usize, branches: &[Tensor<4>; 4], k: usize) -> Result<BlockView, Error> {
    let spec = INCEPTION_TABLE.get(block).ok_or_else(|| Error::Request(format!("no block {block}; expected 0…8")))?;
    let [_, _, h, w] = branches[0].dims();
    let energy = read(Tensor::cat(branches.iter().map(|t| t.clone().square().mean().reshape([1])).collect(), 0)).await?;
    let mut views = Vec::with_capacity(4);
    let mut heat: Option<Tensor<2>> = None;
    let mut channels_total = 0;
    for (i, t) in branches.iter().enumerate() {
        let [_, c, _, _] = t.dims();
        channels_total += c;
        let means = read(t.clone().mean_dim(3).mean_dim(2).reshape([c])).await?;
        let idx = top_indices(&means, k.min(c));
        let sel = Tensor::<1, Int>::from_data(TensorData::new(idx.iter().map(|&i| i as i32).collect::<Vec<_>>(), [idx.len()]), &t.device());
        let maps = read(t.clone().select(1, sel).flatten(0, 3)).await?;
        let sum: Tensor<2> = t.clone().sum_dim(1).reshape([h, w]);
        heat = Some(match heat {
            Some(acc) => acc + sum,
            None => sum,
        });
        views.push(BranchView { name: BRANCH_NAMES[i], count: c, means: idx.iter().map(|&j| means[j]).collect(), channels: idx, maps });
    }
    let heatmap = read(heat.expect("four branches").div_scalar(channels_total as f32).flatten(0, 1)).await?;
    Ok(BlockView { block: spec.name, h, w, energy: [energy[0], energy[1], energy[2], energy[3]], branches: views, heatmap })
}

/// The recorded branches of block `block`, or an error saying what to do first.
pub fn recorded_block(acts: Option<&Activations>, block: usize) -> Result<&[Tensor<4>; 4], Error> {
    let acts = acts.ok_or_else(|| Error::NotReady("classify an image first to see its activations".into()))?;
    acts.blocks.get(block).ok_or_else(|| Error::Request(format!("no block {block}; expected 0…8")))
}
