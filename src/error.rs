//! The library's errors as the page and the CLI see them, each with a kind that says whose
//! move it is: the user's (bad input), the device's (lost GPU, failed read), or ours (a bug).

use serde::Serialize;

use crate::preprocess::ImageError;
use crate::train::TrainError;
use crate::weights::WeightsError;

/// Who can fix it. The worker switches on this, never on message text: a device error on
/// WebGPU falls back to the CPU; an input error is shown and the model stays as it was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ErrorKind {
    Input,
    Device,
    Internal,
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot use this image: {0}")]
    Image(#[from] ImageError),
    #[error("cannot load these weights: {0}")]
    Weights(#[from] WeightsError),
    #[error("fine-tune: {0}")]
    Train(TrainError),
    /// A request that does not fit the current state (no model yet, no image classified yet).
    #[error("{0}")]
    NotReady(String),
    /// A request the page should never send (unknown block, malformed config).
    #[error("{0}")]
    Request(String),
    #[error("the device failed: {0}")]
    Device(String),
    #[error(
        "the network produced {what} for this input: the weights are not usable (load another file)"
    )]
    NonFinite { what: String },
}

impl From<TrainError> for Error {
    fn from(e: TrainError) -> Self {
        match e {
            TrainError::Device(m) => Error::Device(m),
            e => Error::Train(e),
        }
    }
}

impl Error {
    pub fn kind(&self) -> ErrorKind {
        match self {
            Error::Image(_)
            | Error::Weights(_)
            | Error::Train(_)
            | Error::NotReady(_)
            | Error::NonFinite { .. } => ErrorKind::Input,
            Error::Device(_) => ErrorKind::Device,
            Error::Request(_) => ErrorKind::Internal,
        }
    }
}
