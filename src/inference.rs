//! One classification pass over a loaded model (main and, when trained, aux heads, with every
//! stage recorded for the block views), and where a forward's time goes: what the CLI and the
//! page both ask of a model, computed here so native tests reach it. Every tensor read is
//! `into_data_async` (the only read WebGPU allows).

use burn::tensor::Tensor;
use serde::Serialize;

use crate::error::Error;
use crate::labels::{Prediction, top_k};
use crate::model::{Activations, GoogLeNet};

pub(crate) async fn read(t: Tensor<1>) -> Result<Vec<f32>, Error> {
    crate::readback::read_f32(t)
        .await
        .map_err(|e| Error::Device(format!("reading a tensor: {e}")))
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
pub async fn classify(
    model: &GoogLeNet,
    x: Tensor<4>,
    aux: bool,
    record: bool,
    k: usize,
    labels: &[String],
) -> Result<(Classification, Option<Activations>), Error> {
    let t0 = crate::clock::now_ms();
    let (out, acts) = model.forward_all(x, aux && model.has_aux(), record);
    let mut rows = vec![out.main];
    rows.extend(out.aux1);
    rows.extend(out.aux2);
    let n = rows.len();
    let values = read(Tensor::cat(rows, 0).flatten(0, 1)).await?;
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("{v} among its outputs"),
        });
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
            let _ = h
                .clone()
                .slice([0..1, 0..1, 0..1, 0..1])
                .into_data_async()
                .await;
            times[i].push(crate::clock::now_ms() - t);
        }
        let t = crate::clock::now_ms();
        let _ = model
            .head(h, &mut crate::model::googlenet::no_dropout)
            .into_data_async()
            .await;
        times[names.len() - 1].push(crate::clock::now_ms() - t);
    }
    names
        .into_iter()
        .zip(times)
        .map(|(stage, mut v)| {
            v.sort_by(f64::total_cmp);
            StageTime {
                stage,
                ms: v[v.len() / 2],
            }
        })
        .collect()
}
