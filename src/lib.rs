//! GoogLeNet (Inception v1, Szegedy et al. 2014) on burn: the model and its variants, weight
//! files, preprocessing, the fine-tune loop, the block views' analysis, and the wasm facade.

pub mod block_view;
pub mod clock;
#[cfg(not(target_family = "wasm"))]
pub mod dataset;
pub mod error;
pub mod explain;
#[cfg(not(target_family = "wasm"))]
pub mod files;
pub mod inference;
pub mod labels;
pub mod model;
pub mod npy;
#[cfg(not(target_family = "wasm"))]
pub mod paths;
pub mod preprocess;
pub mod readback;
pub mod rng;
pub mod session;
pub mod text;
pub mod train;
#[cfg(target_family = "wasm")]
pub mod web;
pub mod weights;

pub use model::{GoogLeNet, GoogLeNetConfig, Variant};
