//! Loading: which format a file is (safetensors or a PyTorch checkpoint), and building a model
//! from its tensors, checking the metadata, every key and every shape before the model is
//! touched.

use std::collections::BTreeSet;

use burn::tensor::Device;

#[cfg(not(target_family = "wasm"))]
use super::MAX_FILE_BYTES;
use super::names::{
    META_AUX, META_CLASSES, META_KEYS, META_LABELS, META_TRANSFORM, META_VARIANT, caffe_key,
    is_aux_key,
};
#[cfg(not(target_family = "wasm"))]
use super::pytorch::read_pytorch;
#[cfg(not(target_family = "wasm"))]
use super::safetensors::{MAX_HEADER, data_len_error, safetensors_data_end};
use super::slots::{expected_keys, visit};
use super::{KeyScheme, TensorMap, WeightsError, read_safetensors};
use crate::labels::check_labels;
use crate::model::{GoogLeNet, GoogLeNetConfig, Variant};
use crate::rng::SplitMix64;
use crate::text::count;

/// What loading reports besides the model.
#[derive(Debug, Clone)]
pub struct LoadReport {
    pub variant: Variant,
    pub num_classes: usize,
    pub scheme: KeyScheme,
    /// Tensors copied into the model.
    pub loaded: usize,
    /// True when the file had no aux heads and they were freshly initialised.
    pub aux_fresh: bool,
    /// Class names stored in the file's metadata (fine-tuned files), if any.
    pub labels: Option<Vec<String>>,
}

/// Options for [`load_model`].
#[derive(Debug, Clone, Default)]
pub struct LoadOptions {
    /// The variant the caller wants; `None` accepts what the file says or implies.
    pub variant: Option<Variant>,
    /// A class count the caller insists on; `None` takes it from the classifier's shape.
    pub num_classes: Option<usize>,
    /// Override torchvision's `transform_input` (otherwise from metadata, else false).
    pub transform_input: Option<bool>,
}

/// A PyTorch checkpoint is a zip (PK\x03\x04) or a legacy pickle (0x80, protocol 2…5). A
/// safetensors file can start with 0x80 too (the low byte of its header length), so the pickle
/// test applies only to bytes that are not valid safetensors.
fn is_pytorch(bytes: &[u8]) -> bool {
    bytes.starts_with(b"PK\x03\x04")
        || (bytes.first() == Some(&0x80)
            && matches!(bytes.get(1), Some(2..=5))
            && read_safetensors(bytes).is_err())
}

/// Read weights from bytes (the page): safetensors. A PyTorch checkpoint is recognised and
/// refused with what to do, since its reader needs a file.
pub fn read_bytes(bytes: &[u8]) -> Result<TensorMap, WeightsError> {
    if is_pytorch(bytes) {
        return Err(WeightsError::NeedsConversion);
    }
    read_safetensors(bytes)
}

/// Read a weights file by its content: safetensors or a PyTorch checkpoint (zip or legacy
/// pickle), within [`MAX_FILE_BYTES`] and checked before it is read (`files::open`). A
/// safetensors file's header is read first: it states how long the file must be, so a file
/// with bytes after its last tensor, or cut short, is refused having read only the header.
#[cfg(not(target_family = "wasm"))]
pub fn read_file(path: &std::path::Path) -> Result<TensorMap, WeightsError> {
    use std::io::Read;

    use crate::files::{self, FileError};
    let io = |e: std::io::Error| FileError::Read {
        path: crate::text::path(path),
        message: e.to_string(),
    };
    // The kind of file now, its size once the header has said what it should be.
    let (mut file, size) = files::open(
        path,
        files::Budget {
            max_bytes: u64::MAX,
            ..files::WEIGHTS
        },
    )?;
    let too_large = || FileError::TooLarge {
        path: crate::text::path(path),
        what: files::WEIGHTS.what,
        size,
        limit: MAX_FILE_BYTES,
    };
    if size == 0 {
        return Err(WeightsError::Io {
            path: crate::text::path(path),
            message: "the file is empty".into(),
        });
    }
    let mut bytes = Vec::with_capacity(8);
    (&mut file).take(8).read_to_end(&mut bytes).map_err(io)?;
    if bytes.starts_with(b"PK\x03\x04") {
        if size > MAX_FILE_BYTES {
            return Err(too_large().into());
        }
        return read_pytorch(path);
    }
    let header_len =
        (bytes.len() == 8).then(|| u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")));
    if let Some(n) =
        header_len.filter(|&n| n <= MAX_HEADER as u64 && n <= size - 8 && bytes[0] != 0x80)
    {
        (&mut file).take(n).read_to_end(&mut bytes).map_err(io)?;
        if let Some(end) = safetensors_data_end(&bytes[8..]) {
            let data_len = size - 8 - n;
            if data_len != end {
                return Err(data_len_error(data_len as usize, end as usize));
            }
        }
    }
    if size > MAX_FILE_BYTES {
        return Err(too_large().into());
    }
    files::read_rest(path, &mut file, files::WEIGHTS, &mut bytes)?;
    if is_pytorch(&bytes) {
        return read_pytorch(path);
    }
    read_safetensors(&bytes)
}

impl TensorMap {
    pub fn scheme(&self) -> KeyScheme {
        if self.tensors.keys().any(|k| k.contains('/')) {
            KeyScheme::Caffe
        } else {
            KeyScheme::Pytorch
        }
    }

    /// The variant the file itself implies, and why.
    fn implied_variant(&self) -> Result<Option<(Variant, String)>, WeightsError> {
        if let Some(v) = self.metadata.get(META_VARIANT) {
            let variant = Variant::parse(v).ok_or_else(|| WeightsError::Metadata {
                key: META_VARIANT.into(),
                message: format!("`{v}` is not one of bvlc, torchvision, seed"),
            })?;
            return Ok(Some((
                variant,
                format!("its metadata says {META_VARIANT}={v}"),
            )));
        }
        if self.scheme() == KeyScheme::Caffe {
            return Ok(Some((Variant::Bvlc, "Caffe layer names".into())));
        }
        if self.tensors.keys().any(|k| k.contains(".bn.")) {
            return Ok(Some((
                Variant::Torchvision,
                "it has BatchNorm layers".into(),
            )));
        }
        // conv + bias without BatchNorm: the seed model, or the BVLC network under PyTorch
        // names; both fit the same tensors.
        Ok(None)
    }

    /// The classifier's class count, from `fc.weight` / `loss3/classifier.weight`.
    fn classifier(&self) -> Result<(String, Vec<usize>), WeightsError> {
        for key in ["fc.weight", "loss3/classifier.weight"] {
            if let Some(t) = self.tensors.get(key) {
                return Ok((key.to_string(), t.shape.clone()));
            }
        }
        Err(WeightsError::NoClassifier)
    }

    /// The project's metadata, each key well-formed or absent (what can be checked without
    /// the classifier); returns the class count and the labels it states.
    fn check_metadata(&self) -> Result<(Option<usize>, Option<Vec<String>>), WeightsError> {
        let err = |key: &str, message: String| WeightsError::Metadata {
            key: key.into(),
            message,
        };
        if let Some(k) = self
            .metadata
            .keys()
            .find(|k| k.starts_with("googlenet.") && !META_KEYS.contains(&k.as_str()))
        {
            return Err(err(
                k,
                format!(
                    "unknown key; the known googlenet.* keys are {}",
                    META_KEYS.join(", ")
                ),
            ));
        }
        self.implied_variant()?;
        self.flag(META_TRANSFORM)?;
        self.flag(META_AUX)?;
        let classes = match self.metadata.get(META_CLASSES) {
            Some(v) => {
                let n = Some(v)
                    .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                    .and_then(|v| v.parse::<usize>().ok())
                    .filter(|&n| n > 0);
                Some(n.ok_or_else(|| err(META_CLASSES, format!("`{v}` is not a positive integer (the classifier's class count, e.g. \"1000\")")))?)
            }
            None => None,
        };
        let labels = match self.metadata.get(META_LABELS) {
            Some(s) => {
                let l = serde_json::from_str::<Vec<String>>(s).map_err(|e| {
                    err(
                        META_LABELS,
                        format!("expected a JSON array of strings (one class name per class): {e}"),
                    )
                })?;
                check_labels(&l)?;
                Some(l)
            }
            None => None,
        };
        Ok((classes, labels))
    }

    fn flag(&self, key: &str) -> Result<Option<bool>, WeightsError> {
        self.metadata
            .get(key)
            .map(|v| match v.as_str() {
                "true" => Ok(true),
                "false" => Ok(false),
                other => Err(WeightsError::Metadata {
                    key: key.into(),
                    message: format!("`{other}` is not true/false"),
                }),
            })
            .transpose()
    }
}

/// Build a model from a file's tensors, checking every key and shape.
pub fn load_model(
    map: &TensorMap,
    opts: &LoadOptions,
    device: &Device,
) -> Result<(GoogLeNet, LoadReport), WeightsError> {
    let (meta_classes, labels) = map.check_metadata()?;
    let implied = map.implied_variant()?;
    let variant = match (opts.variant, implied) {
        (Some(req), Some((found, why))) if req != found => {
            // The seed model and BVLC share every tensor; only explicit metadata tells them
            // apart, and a caller may knowingly run one as the other.
            let interchangeable = matches!(
                (req, found),
                (Variant::Bvlc, Variant::Seed) | (Variant::Seed, Variant::Bvlc)
            ) && map.scheme() == KeyScheme::Pytorch
                && !map.metadata.contains_key(META_VARIANT);
            if !interchangeable {
                return Err(WeightsError::WrongVariant {
                    found,
                    requested: req,
                    why,
                });
            }
            req
        }
        (Some(req), _) => req,
        (None, Some((found, _))) => found,
        (None, None) => Variant::Seed,
    };
    let (cls_key, cls_shape) = map.classifier()?;
    if cls_shape.len() != 2 || cls_shape[1] != 1024 {
        return Err(WeightsError::Shape {
            key: cls_key,
            found: cls_shape,
            expected: vec![opts.num_classes.unwrap_or(1000), 1024],
        });
    }
    let num_classes = cls_shape[0];
    if num_classes == 0 {
        return Err(WeightsError::Shape {
            key: cls_key,
            found: cls_shape,
            expected: vec![opts.num_classes.unwrap_or(1000), 1024],
        });
    }
    if let Some(n) = meta_classes
        && n != num_classes
    {
        return Err(WeightsError::Metadata {
            key: META_CLASSES.into(),
            message: format!(
                "says {} but the classifier `{cls_key}` is {cls_shape:?}, {}: the metadata and the tensors disagree",
                count(n, "class", "classes"),
                count(num_classes, "class", "classes")
            ),
        });
    }
    if let Some(l) = &labels
        && l.len() != num_classes
    {
        return Err(WeightsError::Metadata {
            key: META_LABELS.into(),
            message: format!(
                "{} for a {num_classes}-class classifier (`{cls_key}` is {cls_shape:?})",
                count(l.len(), "label", "labels")
            ),
        });
    }
    if let Some(req) = opts.num_classes
        && req != num_classes
    {
        return Err(WeightsError::ClassCount {
            key: cls_key,
            shape: cls_shape,
            found: num_classes,
            requested: req,
        });
    }
    let transform_input = match opts.transform_input {
        Some(t) => t,
        None => map.flag(META_TRANSFORM)?.unwrap_or(false),
    };
    let config = GoogLeNetConfig::new()
        .with_variant(variant)
        .with_num_classes(num_classes)
        .with_transform_input(transform_input);
    let mut model = config.init(device);
    let scheme = map.scheme();
    let source_key = |k: &str| match scheme {
        KeyScheme::Pytorch => Some(k.to_string()),
        KeyScheme::Caffe => caffe_key(k),
    };
    let is_aux = is_aux_key;
    let aux_present = expected_keys(&model)
        .iter()
        .filter(|(k, _)| is_aux(k))
        .any(|(k, _)| source_key(k).is_some_and(|s| map.tensors.contains_key(&s)));

    // Check everything before touching the model, so errors name the first real problem.
    let mut used = BTreeSet::new();
    let mut error = None;
    let mut loaded = 0;
    visit(&mut model, &mut |key, slot| {
        if error.is_some() || (is_aux(&key) && !aux_present) {
            return;
        }
        let expected = slot.file_shape();
        let Some(src) = source_key(&key) else {
            error = Some(WeightsError::Missing {
                key,
                expected,
                variant,
            });
            return;
        };
        let Some(t) = map.tensors.get(&src) else {
            error = Some(WeightsError::Missing {
                key: src,
                expected,
                variant,
            });
            return;
        };
        if t.shape != expected {
            error = Some(WeightsError::Shape {
                key: src,
                found: t.shape.clone(),
                expected,
            });
            return;
        }
        slot.set(t, device);
        used.insert(src);
        loaded += 1;
    });
    if let Some(e) = error {
        return Err(e);
    }
    let unknown: Vec<String> = map
        .tensors
        .keys()
        .filter(|k| !used.contains(*k))
        .cloned()
        .collect();
    if !unknown.is_empty() {
        return Err(WeightsError::Unknown {
            keys: unknown,
            variant,
        });
    }
    // Heads the file lacks are fresh: drawn from a fixed seed, so every load of a file gives the
    // same model (and fine-tunes from it are reproducible), and fast (burn's generator took most
    // of a page start's weight loading).
    if !aux_present {
        let mut rng = SplitMix64::new(FRESH_AUX_SEED);
        for head in [&mut model.aux1, &mut model.aux2].into_iter().flatten() {
            rng.aux_head(head, device);
        }
    }
    // A file we wrote says whether its aux heads were ever trained; otherwise, present heads
    // are taken as trained.
    let aux_fresh = !aux_present || map.flag(META_AUX)? == Some(false);
    Ok((
        model,
        LoadReport {
            variant,
            num_classes,
            scheme,
            loaded,
            aux_fresh,
            labels,
        },
    ))
}

/// The generator seed of the aux heads a loaded file lacks.
const FRESH_AUX_SEED: u64 = 0xA0C5_11EA_D5EE_D001;
