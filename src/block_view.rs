//! The analysis behind a block view of the page: a recorded Inception block's four branches as
//! energy shares, strongest channels with their maps, and where in the image the block
//! responds. Every tensor read is `into_data_async` (the only read WebGPU allows).

use burn::tensor::{Int, Tensor, TensorData};
use serde::Serialize;

use crate::error::Error;
use crate::inference::read;
use crate::labels::top_indices;
use crate::model::{Activations, BRANCH_NAMES, INCEPTION_TABLE};

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
pub async fn block_view(
    block: usize,
    branches: &[Tensor<4>; 4],
    k: usize,
) -> Result<BlockView, Error> {
    let spec = INCEPTION_TABLE
        .get(block)
        .ok_or_else(|| Error::Request(format!("no block {block}; expected 0…8")))?;
    let [_, _, h, w] = branches[0].dims();
    let energy = read(Tensor::cat(
        branches
            .iter()
            .map(|t| t.clone().square().mean().reshape([1]))
            .collect(),
        0,
    ))
    .await?;
    let mut views = Vec::with_capacity(4);
    let mut heat: Option<Tensor<2>> = None;
    let mut channels_total = 0;
    for (i, t) in branches.iter().enumerate() {
        let [_, c, _, _] = t.dims();
        channels_total += c;
        let means = read(t.clone().mean_dim(3).mean_dim(2).reshape([c])).await?;
        let idx = top_indices(&means, k.min(c));
        let sel = Tensor::<1, Int>::from_data(
            TensorData::new(
                idx.iter().map(|&i| i as i32).collect::<Vec<_>>(),
                [idx.len()],
            ),
            &t.device(),
        );
        let maps = read(t.clone().select(1, sel).flatten(0, 3)).await?;
        let sum: Tensor<2> = t.clone().sum_dim(1).reshape([h, w]);
        heat = Some(match heat {
            Some(acc) => acc + sum,
            None => sum,
        });
        views.push(BranchView {
            name: BRANCH_NAMES[i],
            count: c,
            means: idx.iter().map(|&j| means[j]).collect(),
            channels: idx,
            maps,
        });
    }
    let heatmap = read(
        heat.expect("four branches")
            .div_scalar(channels_total as f32)
            .flatten(0, 1),
    )
    .await?;
    Ok(BlockView {
        block: spec.name,
        h,
        w,
        energy: [energy[0], energy[1], energy[2], energy[3]],
        branches: views,
        heatmap,
    })
}

/// The recorded branches of block `block`, or an error saying what to do first.
pub fn recorded_block(acts: Option<&Activations>, block: usize) -> Result<&[Tensor<4>; 4], Error> {
    let acts = acts
        .ok_or_else(|| Error::NotReady("classify an image first to see its activations".into()))?;
    acts.blocks
        .get(block)
        .ok_or_else(|| Error::Request(format!("no block {block}; expected 0…8")))
}
