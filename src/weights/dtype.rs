//! The floating-point dtypes weight files hold: each one's name, size and decoding, in one
//! table that the safetensors and PyTorch readers and the writer share.

use super::WeightsError;

/// A floating-point dtype as a file stores it (little-endian); read as f32.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FloatDtype {
    F32,
    F16,
    BF16,
    F64,
}

impl FloatDtype {
    /// Every dtype the readers accept.
    pub const ALL: [FloatDtype; 4] = [Self::F32, Self::F16, Self::BF16, Self::F64];

    /// The name safetensors headers and our messages use (`F32`, `F16`, `BF16`, `F64`).
    pub fn name(self) -> &'static str {
        match self {
            Self::F32 => "F32",
            Self::F16 => "F16",
            Self::BF16 => "BF16",
            Self::F64 => "F64",
        }
    }

    /// Bytes per value.
    pub fn size(self) -> usize {
        match self {
            Self::F64 => 8,
            Self::F32 => 4,
            Self::F16 | Self::BF16 => 2,
        }
    }

    /// A safetensors dtype, if it is one of ours (`None`: not a float the readers accept).
    pub(super) fn from_safetensors(d: ::safetensors::Dtype) -> Option<Self> {
        use ::safetensors::Dtype;
        match d {
            Dtype::F32 => Some(Self::F32),
            Dtype::F16 => Some(Self::F16),
            Dtype::BF16 => Some(Self::BF16),
            Dtype::F64 => Some(Self::F64),
            _ => None,
        }
    }

    /// A PyTorch checkpoint's dtype, if it is one of ours.
    #[cfg(not(target_family = "wasm"))]
    pub(super) fn from_pytorch(d: burn_store::pytorch_reader::DType) -> Option<Self> {
        use burn_store::pytorch_reader::DType;
        match d {
            DType::F32 => Some(Self::F32),
            DType::F16 => Some(Self::F16),
            DType::BF16 => Some(Self::BF16),
            DType::F64 => Some(Self::F64),
            _ => None,
        }
    }

    /// Convert raw little-endian values to f32 and check that every value is finite (an f64
    /// beyond f32's range counts as not finite); `key` names the tensor in the error. One pass;
    /// the failure is located only on the error path.
    pub fn decode(self, raw: &[u8], key: &str) -> Result<Vec<f32>, WeightsError> {
        fn convert<const N: usize>(raw: &[u8], f: impl Fn([u8; N]) -> f32) -> (Vec<f32>, bool) {
            let mut finite = true;
            let v = raw
                .chunks_exact(N)
                .map(|c| {
                    let x = f(c.try_into().expect("N bytes"));
                    finite &= x.is_finite();
                    x
                })
                .collect();
            (v, finite)
        }
        let (values, finite) = match self {
            Self::F32 => convert::<4>(raw, f32::from_le_bytes),
            Self::F64 => convert::<8>(raw, |b| f64::from_le_bytes(b) as f32),
            Self::F16 => convert::<2>(raw, |b| half::f16::from_le_bytes(b).to_f32()),
            Self::BF16 => convert::<2>(raw, |b| half::bf16::from_le_bytes(b).to_f32()),
        };
        if !finite {
            let index = values
                .iter()
                .position(|v| !v.is_finite())
                .expect("a non-finite value");
            // Report the value as the file holds it (an F64 overflow shows its real magnitude).
            let value = match self {
                Self::F64 => {
                    f64::from_le_bytes(raw[index * 8..index * 8 + 8].try_into().expect("8 bytes"))
                }
                _ => values[index] as f64,
            };
            return Err(WeightsError::NonFinite {
                key: key.to_string(),
                index,
                value,
            });
        }
        Ok(values)
    }
}

/// How a saved file stores its values. F16 halves the download; values are computed in f32
/// after loading either way. A subset of [`FloatDtype`]: the two the writer encodes (and the
/// CLI's `--dtype` offers).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum StoreDtype {
    #[default]
    F32,
    F16,
}

impl StoreDtype {
    pub fn parse(s: &str) -> Option<Self> {
        match s.to_ascii_lowercase().as_str() {
            "f32" | "float32" => Some(Self::F32),
            "f16" | "float16" | "half" => Some(Self::F16),
            _ => None,
        }
    }

    /// The dtype the file says (its name and size are [`FloatDtype`]'s).
    pub fn float(self) -> FloatDtype {
        match self {
            Self::F32 => FloatDtype::F32,
            Self::F16 => FloatDtype::F16,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::FloatDtype;

    /// The size is the one the safetensors crate gives the same dtype.
    #[test]
    fn sizes_agree_with_safetensors() {
        for d in FloatDtype::ALL {
            let st: ::safetensors::Dtype =
                serde_json::from_value(serde_json::Value::String(d.name().into())).unwrap();
            assert_eq!(FloatDtype::from_safetensors(st), Some(d));
            assert_eq!(st.bitsize(), d.size() * 8, "{d:?}");
        }
    }

    #[test]
    fn decodes_each_dtype() {
        let cases: [(FloatDtype, Vec<u8>); 4] = [
            (FloatDtype::F32, 1.5f32.to_le_bytes().to_vec()),
            (FloatDtype::F64, 1.5f64.to_le_bytes().to_vec()),
            (
                FloatDtype::F16,
                half::f16::from_f32(1.5).to_le_bytes().to_vec(),
            ),
            (
                FloatDtype::BF16,
                half::bf16::from_f32(1.5).to_le_bytes().to_vec(),
            ),
        ];
        for (d, raw) in cases {
            assert_eq!(d.decode(&raw, "k").unwrap(), vec![1.5], "{d:?}");
        }
        let big = FloatDtype::F64
            .decode(&1e300f64.to_le_bytes(), "k")
            .unwrap_err();
        assert!(
            matches!(big, super::WeightsError::NonFinite { index: 0, value, .. } if value == 1e300)
        );
    }
}
