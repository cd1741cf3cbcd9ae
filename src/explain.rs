//! Grad-CAM (Selvaraju et al. 2017, <https://arxiv.org/abs/1610.02391>): where in the image the
//! network found the evidence for a class. For a chosen Inception block with output `A`
//! (`[1, C, h, w]`) and a class score `y` (the logit, before softmax):
//! `α_c = mean over h×w of ∂y/∂A_c`, `cam = ReLU(Σ_c α_c · A_c)`, an `h × w` grid over the
//! 224×224 crop the network saw.
//!
//! The stages up to the block run without autodiff; only the block's output is a leaf that
//! records a graph, and the model's parameters enter that graph as constants (burn treats a
//! tensor without autodiff as a constant when it meets one with it). So one backward pass
//! yields exactly `∂y/∂A`, with no parameter gradients computed. The CLI (`googlenet explain`)
//! and the page (through `web.rs`) both call [`grad_cam`].

use burn::tensor::{Tensor, activation::relu};
use serde::Serialize;

use crate::error::Error;
use crate::inference::read;
use crate::model::googlenet::no_dropout;
use crate::model::{AUX_TAPS, GoogLeNet, INCEPTION_TABLE, STAGES, Stage};

/// Which classifier's score is explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Head {
    Main,
    /// The auxiliary classifier after 4a (only with trained aux heads, after a fine-tune).
    Aux1,
    /// The auxiliary classifier after 4d.
    Aux2,
}

impl Head {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "main" => Some(Self::Main),
            "aux1" => Some(Self::Aux1),
            "aux2" => Some(Self::Aux2),
            _ => None,
        }
    }

    fn aux(self) -> Option<usize> {
        match self {
            Self::Main => None,
            Self::Aux1 => Some(0),
            Self::Aux2 => Some(1),
        }
    }

    /// The last block whose output this head's score depends on.
    pub fn last_block(self) -> usize {
        match self.aux().map(|h| AUX_TAPS[h]) {
            Some(Stage::Block(b)) => b,
            Some(_) => unreachable!("aux heads read Inception blocks"),
            None => INCEPTION_TABLE.len() - 1,
        }
    }

    /// The block explained when none is chosen: the last block at 14×14 for the main head
    /// (`inception_4e`; 5a and 5b are 7×7, too coarse to point at an object), the tap itself
    /// for an aux head.
    pub fn default_block(self) -> usize {
        match self {
            Self::Main => DEFAULT_BLOCK,
            _ => self.last_block(),
        }
    }
}

/// `inception_4e`, the main head's default.
pub const DEFAULT_BLOCK: usize = 6;

/// The index of a block named `inception_4e` (or `4e`), or an error listing the names.
pub fn block_index(name: &str) -> Result<usize, Error> {
    let name = name.trim().to_ascii_lowercase();
    INCEPTION_TABLE
        .iter()
        .position(|s| s.name == name || s.name.strip_prefix("inception_") == Some(name.as_str()))
        .ok_or_else(|| {
            let names: Vec<_> = INCEPTION_TABLE.iter().map(|s| s.name).collect();
            Error::Request(format!(
                "no Inception block `{name}`; expected one of {}",
                names.join(", ")
            ))
        })
}

/// One explanation.
#[derive(Debug, Clone, Serialize)]
pub struct Explanation {
    pub class: usize,
    pub label: String,
    /// The block explained (`inception_4e`).
    pub layer: &'static str,
    pub head: Head,
    /// The class's logit under this head.
    pub score: f32,
    /// `h × w` non-negative values, rows top to bottom over the 224×224 crop.
    pub grid: Vec<Vec<f32>>,
    /// Forward, backward and reads.
    pub ms: f64,
}

impl Explanation {
    /// The largest value (0 when the class has no positive evidence in this block).
    pub fn max(&self) -> f32 {
        self.grid.iter().flatten().fold(0f32, |m, &v| m.max(v))
    }
}

/// The score of `class` under `head` as a function of block `block`'s output `a`: the rest of
/// the network from just after the block. (Public so tests can check its gradient against
/// finite differences.)
pub fn score_from_block(
    model: &GoogLeNet,
    a: Tensor<4>,
    block: usize,
    head: Head,
    class: usize,
) -> Tensor<1> {
    let from = Stage::Block(block).index() + 1;
    let logits = match head.aux() {
        None => {
            let x = model.trunk(a, from..STAGES.len(), &mut |_| {});
            model.head(x, &mut no_dropout)
        }
        Some(h) => {
            let x = model.trunk(a, from..AUX_TAPS[h].index() + 1, &mut |_| {});
            model.aux_heads()[h]
                .expect("checked by the caller")
                .forward(x)
        }
    }; // [1, classes]
    logits.slice([0..1, class..class + 1]).reshape([1])
}

/// Block `block`'s output `A` (`[1, C, h, w]`), the gradient `∂y/∂A` of the class score `y`
/// under `head`, and `y` itself, from one forward and one backward pass (no reads).
pub fn block_gradient(
    model: &GoogLeNet,
    x: Tensor<4>,
    block: usize,
    head: Head,
    class: usize,
) -> Result<(Tensor<4>, Tensor<4>, Tensor<1>), Error> {
    let [n, ..] = x.dims();
    if n != 1 {
        return Err(Error::Request(format!(
            "Grad-CAM explains one image at a time, got a batch of {n}"
        )));
    }
    let classes = model.num_classes();
    if class >= classes {
        return Err(Error::Request(format!(
            "no class {class}; this model has classes 0…{}",
            classes - 1
        )));
    }
    let spec = INCEPTION_TABLE
        .get(block)
        .ok_or_else(|| Error::Request(format!("no block {block}; expected 0…8")))?;
    if let Some(h) = head.aux() {
        if model.aux_heads()[h].is_none() {
            return Err(Error::NotReady(format!(
                "this model has no aux{} head; fine-tune with the aux losses on first",
                h + 1
            )));
        }
        if block > head.last_block() {
            return Err(Error::Request(format!(
                "aux{} reads {}, so it cannot be explained from {}, which comes after it; pick a block up to {}",
                h + 1,
                INCEPTION_TABLE[head.last_block()].name,
                spec.name,
                INCEPTION_TABLE[head.last_block()].name
            )));
        }
    }
    // No graph up to the block: the input and the early stages are constants here.
    let x = x.without_autodiff();
    let a = model.trunk(x, 0..Stage::Block(block).index() + 1, &mut |_| {}); // [1, C, h, w]
    let leaf = a.clone().autodiff().require_grad();
    let score = score_from_block(model, leaf.clone(), block, head, class); // [1]
    let grads = score.backward();
    let g = leaf.grad(&grads).ok_or_else(|| {
        Error::Device(format!(
            "no gradient reached {} (the autodiff graph is broken)",
            spec.name
        ))
    })?; // [1, C, h, w]
    Ok((a, g, score.without_autodiff()))
}

/// Grad-CAM of `class` on block `block` for the image `x` (`[1, 3, 224, 224]`, as
/// preprocessed for the model). `labels` names the class in the result (may be empty).
pub async fn grad_cam(
    model: &GoogLeNet,
    x: Tensor<4>,
    class: usize,
    block: usize,
    head: Head,
    labels: &[String],
) -> Result<Explanation, Error> {
    let t0 = crate::clock::now_ms();
    let (a, g, score) = block_gradient(model, x, block, head, class)?;
    let [_, _, h, w] = a.dims();
    let layer = INCEPTION_TABLE[block].name;
    let alpha = g.mean_dim(3).mean_dim(2); // [1, C, 1, 1]
    let cam = relu((a * alpha).sum_dim(1)); // [1, 1, h, w]
    let values = read(Tensor::cat(vec![cam.reshape([h * w]), score], 0)).await?;
    if let Some(v) = values.iter().find(|v| !v.is_finite()) {
        return Err(Error::NonFinite {
            what: format!("{v} in the explanation"),
        });
    }
    let grid = values[..h * w].chunks(w).map(|r| r.to_vec()).collect();
    Ok(Explanation {
        class,
        label: labels
            .get(class)
            .cloned()
            .unwrap_or_else(|| format!("class {class}")),
        layer,
        head,
        score: values[h * w],
        grid,
        ms: crate::clock::now_ms() - t0,
    })
}

/// The grid bilinearly resampled to `size × size` over the crop, scaled to 0…1 by its maximum
/// (all zeros when there is no positive evidence). Pixel centres are aligned as in
/// `align_corners = false`.
pub fn upsample(grid: &[Vec<f32>], size: usize) -> Vec<f32> {
    let h = grid.len();
    let w = grid.first().map_or(0, Vec::len);
    let max = grid.iter().flatten().fold(0f32, |m, &v| m.max(v));
    if h == 0 || w == 0 || max <= 0.0 {
        return vec![0.0; size * size];
    }
    let coord = |i: usize, n: usize| -> (usize, usize, f32) {
        let f = ((i as f32 + 0.5) * n as f32 / size as f32 - 0.5).clamp(0.0, (n - 1) as f32);
        let lo = f.floor() as usize;
        (lo, (lo + 1).min(n - 1), f - lo as f32)
    };
    let mut out = Vec::with_capacity(size * size);
    for y in 0..size {
        let (y0, y1, fy) = coord(y, h);
        for x in 0..size {
            let (x0, x1, fx) = coord(x, w);
            let top = grid[y0][x0] * (1.0 - fx) + grid[y0][x1] * fx;
            let bottom = grid[y1][x0] * (1.0 - fx) + grid[y1][x1] * fx;
            out.push((top * (1.0 - fy) + bottom * fy) / max);
        }
    }
    out
}

/// A colour for a 0…1 heat value (a perceptually ordered dark-blue → red → yellow ramp, like
/// the page's; `inferno`-like, readable on a projector).
pub fn heat_colour(v: f32) -> [u8; 3] {
    const STOPS: [(f32, [f32; 3]); 5] = [
        (0.0, [0.0, 0.0, 4.0]),
        (0.25, [87.0, 16.0, 110.0]),
        (0.5, [188.0, 55.0, 84.0]),
        (0.75, [249.0, 142.0, 9.0]),
        (1.0, [252.0, 255.0, 164.0]),
    ];
    let v = v.clamp(0.0, 1.0);
    let i = STOPS
        .iter()
        .position(|&(t, _)| t >= v)
        .unwrap_or(STOPS.len() - 1)
        .max(1);
    let ((t0, c0), (t1, c1)) = (STOPS[i - 1], STOPS[i]);
    let f = (v - t0) / (t1 - t0);
    [0, 1, 2].map(|k| (c0[k] + (c1[k] - c0[k]) * f).round() as u8)
}

/// The heat drawn over the crop: the crop dimmed where there is no evidence, coloured by
/// strength where there is (`crop` is the 224×224 RGB image the network saw).
pub fn overlay(crop: &image::RgbImage, grid: &[Vec<f32>]) -> image::RgbImage {
    let size = crop.width() as usize;
    let heat = upsample(grid, size);
    let mut out = crop.clone();
    for (i, p) in out.pixels_mut().enumerate() {
        let v = heat[i];
        let c = heat_colour(v);
        // Opacity grows with the heat: where there is no evidence the photo shows unchanged.
        let a = 0.7 * v;
        for (channel, &colour) in p.0.iter_mut().zip(&c).take(3) {
            *channel = (*channel as f32 * (1.0 - a) + colour as f32 * a).round() as u8;
        }
    }
    out
}
