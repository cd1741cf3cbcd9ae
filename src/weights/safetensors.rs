//! Reading safetensors: the `safetensors` crate parses and validates; when it refuses a file,
//! a second look at the header says what exactly is wrong.

use super::{FloatDtype, RawTensor, TensorMap, WeightsError};

/// Decode safetensors bytes (any float dtype, converted to f32).
///
/// The container is parsed and validated by the `safetensors` crate, the format's reference
/// implementation: a well-formed header, and tensor byte ranges that tile the data section
/// exactly (no gap, no overlap, nothing after the last tensor, each range the size its shape
/// and dtype need). When it refuses a file, the header is looked at again to say precisely
/// what is wrong. Then every tensor must have a float dtype and every value must be finite.
pub fn read_safetensors(bytes: &[u8]) -> Result<TensorMap, WeightsError> {
    let (header_len, meta) = ::safetensors::SafeTensors::read_metadata(bytes)
        .map_err(|e| explain_safetensors(bytes, e))?;
    let data = &bytes[8 + header_len..];
    let mut map = TensorMap::default();
    if let Some(m) = meta.metadata() {
        map.metadata
            .extend(m.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
    // In file order, so that of several bad tensors the first in the file is named.
    for key in meta.offset_keys() {
        let info = meta
            .info(&key)
            .expect("offset_keys lists the header's tensors");
        let Some(dtype) = FloatDtype::from_safetensors(info.dtype) else {
            return Err(WeightsError::DType {
                key,
                dtype: format!("{:?}", info.dtype),
            });
        };
        let (start, end) = info.data_offsets;
        let values = dtype.decode(&data[start..end], &key)?;
        map.tensors.insert(
            key,
            RawTensor {
                shape: info.shape.clone(),
                data: values,
            },
        );
    }
    if map.tensors.is_empty() {
        return Err(WeightsError::Empty);
    }
    Ok(map)
}

/// Safetensors' own limit on the header's size.
pub(super) const MAX_HEADER: usize = 100_000_000;

/// Turn the `safetensors` crate's refusal into a message that says what was expected, by
/// reading the header again where the crate's error does not carry the details.
fn explain_safetensors(bytes: &[u8], e: ::safetensors::SafeTensorError) -> WeightsError {
    let bad = |m: String| WeightsError::Safetensors(m);
    if bytes.len() < 8 {
        return bad(format!(
            "{} bytes is too short for a header (a safetensors file starts with an 8-byte header length)",
            bytes.len()
        ));
    }
    let n = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes"));
    let room = (bytes.len() - 8) as u64;
    if n > room {
        return bad(format!(
            "header length {n} exceeds the file size {} (truncated or not safetensors)",
            bytes.len()
        ));
    }
    if n > MAX_HEADER as u64 {
        return bad(format!(
            "header length {n} exceeds safetensors' limit of {MAX_HEADER} bytes"
        ));
    }
    let header = &bytes[8..8 + n as usize];
    let data_len = bytes.len() - 8 - n as usize;
    let json = match std::str::from_utf8(header)
        .map_err(|e| e.to_string())
        .and_then(|s| {
            serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(s)
                .map_err(|e| e.to_string())
        }) {
        Ok(j) => j,
        Err(msg) => {
            return bad(format!(
                "the {n}-byte header is not a JSON object ({msg}): the header length is wrong or this is not a safetensors file"
            ));
        }
    };
    // Each entry as the crate reads it.
    let mut tensors = Vec::new();
    for (key, v) in &json {
        if key == "__metadata__" {
            let Some(obj) = v.as_object() else {
                return bad(format!(
                    "`__metadata__` must be a JSON object of strings, found {v}"
                ));
            };
            if let Some((k, v)) = obj.iter().find(|(_, v)| !v.is_string()) {
                return bad(format!("metadata `{k}` must be a string, found {v}"));
            }
            continue;
        }
        if let Some(d) = v.get("dtype").and_then(|d| d.as_str())
            && serde_json::from_value::<::safetensors::Dtype>(serde_json::Value::String(d.into()))
                .is_err()
        {
            return WeightsError::DType {
                key: key.clone(),
                dtype: d.to_string(),
            };
        }
        match serde_json::from_value::<::safetensors::tensor::TensorInfo>(v.clone()) {
            Ok(info) => tensors.push((key.clone(), info)),
            Err(err) => {
                return bad(format!(
                    "tensor `{key}` must be {{\"dtype\": ..., \"shape\": [...], \"data_offsets\": [start, end]}} ({err}), found {v}"
                ));
            }
        }
    }
    // The crate's checks, in its order: ranges sorted by offset must follow each other from
    // byte 0, each as long as its shape and dtype need, the last ending at the end of the file.
    tensors.sort_by(|(ka, a), (kb, b)| a.data_offsets.cmp(&b.data_offsets).then(ka.cmp(kb)));
    let mut end = 0usize;
    let mut prev: Option<&str> = None;
    for (key, info) in &tensors {
        let (s, e) = info.data_offsets;
        if e < s {
            return bad(format!(
                "tensor `{key}` has data_offsets [{s}, {e}]: the end is before the start"
            ));
        }
        if s != end {
            let what = if s < end { "overlap" } else { "gap" };
            let after = match prev {
                Some(p) => format!("the previous tensor `{p}` ended at {end}"),
                None => "the data section starts at 0".to_string(),
            };
            return bad(format!(
                "tensor `{key}` spans bytes {s}..{e} but {after} ({what} of {} bytes): byte ranges must tile the data section without gaps or overlaps",
                s.abs_diff(end)
            ));
        }
        let dtype = format!("{:?}", info.dtype);
        let bits = info
            .shape
            .iter()
            .try_fold(1usize, |a, &d| a.checked_mul(d))
            .and_then(|n| n.checked_mul(info.dtype.bitsize()));
        let Some(bits) = bits else {
            return bad(format!(
                "tensor `{key}` has shape {:?}: its size overflows",
                info.shape
            ));
        };
        if bits % 8 != 0 {
            return WeightsError::DType {
                key: key.clone(),
                dtype,
            };
        }
        if e - s != bits / 8 {
            return bad(format!(
                "tensor `{key}` ({dtype} {:?}) spans bytes {s}..{e}, {} bytes, but its shape and dtype need {} bytes",
                info.shape,
                e - s,
                bits / 8
            ));
        }
        end = e;
        prev = Some(key);
    }
    if end != data_len {
        return data_len_error(data_len, end);
    }
    // Not reached for any failure we know of; keep the crate's own words.
    bad(e.to_string())
}

/// Where a safetensors header says the data section ends (the largest `data_offsets` end), if
/// the header is JSON that says so; `None` leaves the judgement to [`read_safetensors`].
#[cfg(not(target_family = "wasm"))]
pub(super) fn safetensors_data_end(header: &[u8]) -> Option<u64> {
    let json: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(header).ok()?;
    json.iter()
        .filter(|(k, _)| *k != "__metadata__")
        .map(|(_, v)| v.get("data_offsets")?.get(1)?.as_u64())
        .try_fold(0u64, |m, e| Some(m.max(e?)))
}

/// The data section's length disagrees with the tensors' byte ranges.
pub(super) fn data_len_error(data_len: usize, end: usize) -> WeightsError {
    let why = if data_len == end + 1 {
        "the header length is wrong or a stray byte follows the last tensor".to_string()
    } else if data_len > end {
        format!(
            "the header length is wrong or {} stray bytes follow the last tensor",
            data_len - end
        )
    } else {
        "the header length is wrong or the file is truncated".to_string()
    };
    WeightsError::Safetensors(format!(
        "the data section has {data_len} bytes but the tensors cover {end}: {why}"
    ))
}
