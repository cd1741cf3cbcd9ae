//! Minimal `.npy` reading and writing (float32/float64, C order), for the `logits` command
//! and the reference tests.

/// The largest `.npy` file the CLI reads (checked before reading): 20 float32 images of
/// 3×1024×1024, the largest input `logits` takes, are 252 MB.
pub const MAX_FILE_BYTES: u64 = 256_000_000;

#[derive(Debug, thiserror::Error)]
pub enum NpyError {
    #[error("not a .npy file (missing the \\x93NUMPY magic)")]
    Magic,
    #[error("bad .npy header: {0}")]
    Header(String),
    #[error("unsupported .npy dtype `{0}`; expected little-endian float32 (<f4) or float64 (<f8)")]
    DType(String),
    #[error("Fortran-order arrays are not supported; save with C order")]
    FortranOrder,
    #[error("the .npy data is truncated: {expected} bytes expected, {found} present")]
    Truncated { expected: usize, found: usize },
}

/// An array: shape and row-major f32 values.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    pub shape: Vec<usize>,
    pub data: Vec<f32>,
}

fn header_field<'a>(header: &'a str, key: &str) -> Result<&'a str, NpyError> {
    let pat = format!("'{key}':");
    let start = header
        .find(&pat)
        .ok_or_else(|| NpyError::Header(format!("no `{key}`")))?
        + pat.len();
    Ok(header[start..].trim_start())
}

pub fn read(bytes: &[u8]) -> Result<Array, NpyError> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err(NpyError::Magic);
    }
    let (hlen, hstart) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (
            u32::from_le_bytes(bytes[8..12].try_into().expect("4 bytes")) as usize,
            12,
        ),
        v => return Err(NpyError::Header(format!("version {v}"))),
    };
    let header = bytes
        .get(hstart..hstart + hlen)
        .and_then(|h| std::str::from_utf8(h).ok())
        .ok_or_else(|| NpyError::Header("header truncated or not text".into()))?;
    let descr = header_field(header, "descr")?;
    let descr = descr.trim_start_matches(['\'', '"']);
    let dtype: String = descr
        .chars()
        .take_while(|c| *c != '\'' && *c != '"')
        .collect();
    let elem = match dtype.as_str() {
        "<f4" => 4,
        "<f8" => 8,
        _ => return Err(NpyError::DType(dtype)),
    };
    if header_field(header, "fortran_order")?.starts_with("True") {
        return Err(NpyError::FortranOrder);
    }
    let shape_s = header_field(header, "shape")?;
    let open = shape_s
        .find('(')
        .ok_or_else(|| NpyError::Header("shape is not a tuple".into()))?;
    let close = shape_s
        .find(')')
        .ok_or_else(|| NpyError::Header("shape is not a tuple".into()))?;
    let shape = shape_s[open + 1..close]
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            s.parse::<usize>()
                .map_err(|_| NpyError::Header(format!("bad dimension `{s}`")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let numel: usize = shape.iter().product();
    let data = &bytes[hstart + hlen..];
    if data.len() < numel * elem {
        return Err(NpyError::Truncated {
            expected: numel * elem,
            found: data.len(),
        });
    }
    let data = &data[..numel * elem];
    let values = if elem == 4 {
        data.chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().expect("4 bytes")))
            .collect()
    } else {
        data.chunks_exact(8)
            .map(|c| f64::from_le_bytes(c.try_into().expect("8 bytes")) as f32)
            .collect()
    };
    Ok(Array {
        shape,
        data: values,
    })
}

pub fn write(shape: &[usize], data: &[f32]) -> Vec<u8> {
    let dims: Vec<String> = shape.iter().map(|d| d.to_string()).collect();
    let shape_s = if dims.len() == 1 {
        format!("({},)", dims[0])
    } else {
        format!("({})", dims.join(", "))
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape_s}, }}");
    // Pad so that the data starts on a 64-byte boundary, ending with a newline.
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + data.len() * 4);
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn round_trip() {
        let bytes = super::write(&[2, 3], &[1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
        let a = super::read(&bytes).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1.0, 2.0, 3.0, 4.0, 5.0, -6.5]);
    }

    #[test]
    fn refuses_non_npy() {
        assert!(super::read(b"hello world, not numpy").is_err());
    }
}
