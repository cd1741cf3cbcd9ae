//! Reading PyTorch `.pth` state dicts (native only: burn-store's reader needs a file), with a
//! repair for the zip64 records torch.save writes that the zip reader underneath misreads.

use super::{FloatDtype, RawTensor, TensorMap, WeightsError};

/// Read a PyTorch `.pth` state dict (native only: the reader needs a file).
pub fn read_pytorch(path: &std::path::Path) -> Result<TensorMap, WeightsError> {
    let reader = match burn_store::pytorch::PytorchReader::new(path) {
        Ok(r) => r,
        Err(e) => {
            // zip 9.8 (under burn-store's reader) rejects some archives written by
            // torch.save: torch always appends zip64 end records, and with those present the
            // reader looks for the central directory at the wrong place. When the classic end
            // record is complete, the same archive without the zip64 records is standard.
            let bytes = crate::files::read(path, crate::files::WEIGHTS)?;
            let Some(fixed) = without_zip64_trailer(&bytes) else {
                return Err(WeightsError::Pytorch(e.to_string()));
            };
            // A name of this call's own: two reads at once (tests run in threads, one process)
            // must never write, read or remove each other's copy.
            static CALLS: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let call = CALLS.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let tmp =
                std::env::temp_dir().join(format!("googlenet-{}-{call}.pth", std::process::id()));
            std::fs::write(&tmp, fixed).map_err(|e| WeightsError::Io {
                path: tmp.display().to_string(),
                message: e.to_string(),
            })?;
            let r = burn_store::pytorch::PytorchReader::new(&tmp)
                .map_err(|e| WeightsError::Pytorch(e.to_string()));
            std::fs::remove_file(&tmp).ok();
            r?
        }
    };
    let mut map = TensorMap::default();
    for (key, t) in reader.into_tensors() {
        let dtype = match FloatDtype::from_pytorch(t.dtype()) {
            Some(d) => d,
            // BatchNorm's step counter: not a parameter of inference or of our training.
            None if key.ends_with("num_batches_tracked") => continue,
            None => {
                return Err(WeightsError::DType {
                    key,
                    dtype: format!("{:?}", t.dtype()),
                });
            }
        };
        let raw = t.read().map_err(|e| WeightsError::Pytorch(e.to_string()))?;
        let shape = t.shape().to_vec();
        let numel = shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
        if numel.and_then(|n| n.checked_mul(dtype.size())) != Some(raw.len()) {
            return Err(WeightsError::Pytorch(format!(
                "tensor `{key}` ({} {shape:?}) has {} bytes of data, not the size its shape needs",
                dtype.name(),
                raw.len()
            )));
        }
        let data = dtype.decode(&raw, &key)?;
        map.tensors.insert(key, RawTensor { shape, data });
    }
    if map.tensors.is_empty() {
        return Err(WeightsError::Empty);
    }
    Ok(map)
}

/// The archive with its zip64 end-of-central-directory record and locator removed, when the
/// classic end record alone describes it completely (no field saturated).
fn without_zip64_trailer(bytes: &[u8]) -> Option<Vec<u8>> {
    let rfind = |hay: &[u8], sig: &[u8]| hay.windows(sig.len()).rposition(|w| w == sig);
    let tail_start = bytes.len().saturating_sub(64 * 1024 + 22);
    let eocd = tail_start + rfind(&bytes[tail_start..], b"PK\x05\x06")?;
    let z64 = tail_start + rfind(&bytes[tail_start..eocd], b"PK\x06\x06")?;
    let rec = bytes.get(eocd..eocd + 22)?;
    let u16_at = |o: usize| u16::from_le_bytes([rec[o], rec[o + 1]]);
    let u32_at = |o: usize| u32::from_le_bytes(rec[o..o + 4].try_into().expect("4 bytes"));
    if u16_at(10) == 0xFFFF || u32_at(12) == 0xFFFF_FFFF || u32_at(16) == 0xFFFF_FFFF {
        return None;
    }
    Some([&bytes[..z64], &bytes[eocd..]].concat())
}
