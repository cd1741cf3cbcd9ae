//! GoogLeNet, mirrored module by module: `config` (the table and the variants),
//! `basic_conv`, `inception`, `aux_head`, `googlenet`, and `summary` (shapes, parameters and
//! multiply-adds computed from a built model).

pub mod aux_head;
pub mod basic_conv;
pub mod config;
pub mod googlenet;
pub mod inception;
#[cfg(cpu_kernels)]
pub mod kernels;
pub mod lrn;
pub mod pool;
pub mod summary;

pub use config::{
    AUX_TAPS, GoogLeNetConfig, INCEPTION_TABLE, InceptionSpec, STAGES, Stage, Variant,
};
pub use googlenet::{Activations, GoogLeNet, HeadLogits, StageOutput};
pub use inception::{BRANCH_NAMES, Inception};
