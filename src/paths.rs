//! Where the shared data lives: `$GOOGLENET_SHARED`, else `../shared` beside the project.

use std::path::PathBuf;

/// The shared data folder (weights, labels, test images), if it can be found.
pub fn shared_dir() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("GOOGLENET_SHARED") {
        return Some(PathBuf::from(p));
    }
    let candidates = [
        PathBuf::from("../shared"),
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared"),
    ];
    candidates.into_iter().find(|p| p.is_dir())
}

/// The BVLC weights in the shared folder.
pub fn shared_weights() -> Option<PathBuf> {
    shared_dir()
        .map(|d| d.join("weights/bvlc_googlenet.safetensors"))
        .filter(|p| p.is_file())
}

/// Where `googlenet fetch-weights` puts what it downloads.
pub fn fetched_weights() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("weights/googlenet_torchvision.safetensors")
}

/// The weights a command uses when given none: the shared BVLC weights, else what
/// `googlenet fetch-weights` wrote.
pub fn default_weights() -> Option<PathBuf> {
    shared_weights().or_else(|| Some(fetched_weights()).filter(|p| p.is_file()))
}

/// The 1000 ImageNet class names in the shared folder.
pub fn shared_labels() -> Option<PathBuf> {
    shared_dir()
        .map(|d| d.join("data/synset_words.txt"))
        .filter(|p| p.is_file())
}
