//! Damaged or inconsistent weight files are refused with a specific error: non-finite values,
//! a wrong header length, byte ranges that do not tile the data section, shape/size
//! mismatches and invalid `googlenet.*` metadata. Each case starts from a valid file saved
//! from a small fresh model and changes a few bytes.

mod common;

use burn::tensor::Device;
use googlenet::labels::LabelError;
use googlenet::weights::{self, LoadOptions, SaveInfo, TensorMap, WeightsError};
use googlenet::{GoogLeNetConfig, Variant};
use serde_json::{Map, Value, json};

const CONV1: &str = "conv1.conv.weight";

/// A valid 5-class seed-variant file, with labels.
fn valid_file() -> Vec<u8> {
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(5)
        .init(&Device::flex());
    let labels = ["a", "b", "c", "d", "e"].map(String::from).to_vec();
    weights::save_model(
        &model,
        &SaveInfo {
            labels: Some(labels),
            aux_trained: false,
        },
    )
    .unwrap()
}

/// A safetensors file taken apart: its JSON header and its data section.
#[derive(Clone)]
struct Parts {
    header: Map<String, Value>,
    data: Vec<u8>,
}

impl Parts {
    fn of(bytes: &[u8]) -> Parts {
        let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
        let header = serde_json::from_slice(&bytes[8..8 + n]).unwrap();
        Parts {
            header,
            data: bytes[8 + n..].to_vec(),
        }
    }

    /// Reassemble with the header padded by at least `pad` trailing spaces (to a multiple
    /// of 8, as safetensors writers do), so that a header length off by one still frames
    /// valid JSON.
    fn bytes(&self, pad: usize) -> Vec<u8> {
        let mut h = serde_json::to_vec(&self.header).unwrap();
        h.extend(std::iter::repeat_n(b' ', pad));
        while !h.len().is_multiple_of(8) {
            h.push(b' ');
        }
        let mut out = (h.len() as u64).to_le_bytes().to_vec();
        out.extend_from_slice(&h);
        out.extend_from_slice(&self.data);
        out
    }

    fn offsets(&self, key: &str) -> (usize, usize) {
        let o = &self.header[key]["data_offsets"];
        (
            o[0].as_u64().unwrap() as usize,
            o[1].as_u64().unwrap() as usize,
        )
    }

    fn set_offsets(&mut self, key: &str, (s, e): (usize, usize)) {
        self.header[key]["data_offsets"] = json!([s, e]);
    }

    /// Keys in data order.
    fn keys_by_offset(&self) -> Vec<String> {
        let mut k: Vec<String> = self
            .header
            .keys()
            .filter(|k| *k != "__metadata__")
            .cloned()
            .collect();
        k.sort_by_key(|k| self.offsets(k));
        k
    }

    fn set_meta(&mut self, key: &str, value: &str) {
        self.header["__metadata__"][key] = Value::String(value.into());
    }

    /// Overwrite element `index` of an F32 tensor.
    fn poke_f32(&mut self, key: &str, index: usize, v: f32) {
        let at = self.offsets(key).0 + 4 * index;
        self.data[at..at + 4].copy_from_slice(&v.to_le_bytes());
    }

    /// Re-encode every tensor in `dtype` (F32, F64, F16 or BF16), the file's values kept.
    fn reencode(&self, dtype: &str, edit: impl Fn(&str, usize, f64) -> f64) -> Parts {
        let mut out = Parts {
            header: Map::new(),
            data: Vec::new(),
        };
        out.header
            .insert("__metadata__".into(), self.header["__metadata__"].clone());
        for key in self.keys_by_offset() {
            let (s, e) = self.offsets(&key);
            let start = out.data.len();
            for (i, c) in self.data[s..e].chunks_exact(4).enumerate() {
                let v = edit(&key, i, f32::from_le_bytes(c.try_into().unwrap()) as f64);
                match dtype {
                    "F32" => out.data.extend_from_slice(&(v as f32).to_le_bytes()),
                    "F64" => out.data.extend_from_slice(&v.to_le_bytes()),
                    "F16" => out
                        .data
                        .extend_from_slice(&half::f16::from_f64(v).to_le_bytes()),
                    "BF16" => out
                        .data
                        .extend_from_slice(&half::bf16::from_f64(v).to_le_bytes()),
                    _ => unreachable!(),
                }
            }
            let mut entry = self.header[&key].clone();
            entry["dtype"] = json!(dtype);
            entry["data_offsets"] = json!([start, out.data.len()]);
            out.header.insert(key, entry);
        }
        out
    }
}

fn parts() -> Parts {
    Parts::of(&valid_file())
}

fn read_err(bytes: &[u8]) -> WeightsError {
    weights::read_safetensors(bytes).map(|_| ()).unwrap_err()
}

fn safetensors_msg(bytes: &[u8]) -> String {
    match read_err(bytes) {
        WeightsError::Safetensors(m) => m,
        other => panic!("expected WeightsError::Safetensors, got {other:?}: {other}"),
    }
}

fn load_err(map: &TensorMap) -> WeightsError {
    weights::load_model(map, &LoadOptions::default(), &Device::flex())
        .map(|_| ())
        .unwrap_err()
}

/// The load error for the valid file with one metadata entry changed.
fn meta_err(key: &str, value: &str) -> (String, String) {
    let mut p = parts();
    p.set_meta(key, value);
    let map = weights::read_safetensors(&p.bytes(0)).unwrap();
    match load_err(&map) {
        WeightsError::Metadata { key, message } => {
            let text = WeightsError::Metadata {
                key: key.clone(),
                message,
            }
            .to_string();
            (key, text)
        }
        other => panic!("{key}={value}: expected WeightsError::Metadata, got {other:?}: {other}"),
    }
}

#[test]
fn the_unmodified_test_file_loads() {
    // The baseline every corruption below starts from, with extra padding in the header.
    let p = parts();
    assert!(
        p.bytes(0).len() < p.bytes(16).len(),
        "the padding is really added"
    );
    for bytes in [p.bytes(0), p.bytes(16)] {
        let map = weights::read_safetensors(&bytes).unwrap();
        let (_, report) =
            weights::load_model(&map, &LoadOptions::default(), &Device::flex()).unwrap();
        assert_eq!(report.num_classes, 5);
        assert_eq!(report.labels.as_ref().map(Vec::len), Some(5));
    }
    // Unknown keys outside `googlenet.` (here safetensors' usual `format`) are fine.
    assert_eq!(
        weights::read_safetensors(&p.bytes(0)).unwrap().metadata["format"],
        "pt"
    );
}

#[test]
fn every_float_dtype_is_read() {
    let p = parts();
    let reference = weights::read_safetensors(&p.bytes(0)).unwrap();
    for dtype in ["F64", "F16", "BF16"] {
        let map = weights::read_safetensors(&p.reencode(dtype, |_, _, v| v).bytes(0)).unwrap();
        let (a, b) = (&map.tensors[CONV1].data, &reference.tensors[CONV1].data);
        let tol = if dtype == "F64" { 0.0 } else { 1e-2 };
        assert!(
            a.iter()
                .zip(b)
                .all(|(x, y)| (x - y).abs() <= tol * y.abs().max(1e-3)),
            "{dtype}"
        );
        weights::load_model(&map, &LoadOptions::default(), &Device::flex()).unwrap();
    }
    let mut i64 = p.clone();
    i64.header["fc.bias"]["dtype"] = json!("I32");
    let err = read_err(&i64.bytes(0));
    assert!(
        matches!(&err, WeightsError::DType { key, dtype } if key == "fc.bias" && dtype == "I32"),
        "{err}"
    );
    let mut q4 = p.clone();
    q4.header["fc.bias"]["dtype"] = json!("Q4");
    let err = read_err(&q4.bytes(0));
    assert!(
        matches!(&err, WeightsError::DType { key, dtype } if key == "fc.bias" && dtype == "Q4"),
        "{err}"
    );
}

#[test]
fn one_nan_in_the_first_conv_is_refused() {
    let mut p = parts();
    p.poke_f32(CONV1, 17, f32::NAN);
    let err = read_err(&p.bytes(0));
    assert!(
        matches!(&err, WeightsError::NonFinite { key, index: 17, value } if key == CONV1 && value.is_nan()),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "tensor `conv1.conv.weight` holds NaN at element 17: the file is damaged (every weight must be a finite number)"
    );
}

#[test]
fn infinities_are_refused() {
    let mut p = parts();
    p.poke_f32("fc.weight", 3, f32::INFINITY);
    let err = read_err(&p.bytes(0));
    assert!(
        matches!(&err, WeightsError::NonFinite { key, index: 3, value } if key == "fc.weight" && *value == f64::INFINITY),
        "{err:?}"
    );
    assert!(
        err.to_string()
            .contains("`fc.weight` holds +Inf at element 3"),
        "{err}"
    );

    // -Inf in an F16 file (f16's largest value is 65504; -1e6 becomes -Inf).
    let f16 = parts().reencode(
        "F16",
        |k, i, v| if k == "fc.bias" && i == 4 { -1e6 } else { v },
    );
    let err = read_err(&f16.bytes(0));
    assert!(
        matches!(&err, WeightsError::NonFinite { key, index: 4, .. } if key == "fc.bias"),
        "{err:?}"
    );
    assert!(err.to_string().contains("holds -Inf at element 4"), "{err}");
}

#[test]
fn f64_values_beyond_f32_range_are_refused() {
    let p = parts().reencode(
        "F64",
        |k, i, v| if k == "fc.bias" && i == 2 { 1e300 } else { v },
    );
    let err = read_err(&p.bytes(0));
    assert!(
        matches!(&err, WeightsError::NonFinite { key, index: 2, value } if key == "fc.bias" && *value == 1e300),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(
        msg.contains("`fc.bias` holds 1e300 at element 2") && msg.contains("f32's range"),
        "{msg}"
    );
    // An f64 NaN, too.
    let p = parts().reencode(
        "F64",
        |k, i, v| if k == CONV1 && i == 0 { f64::NAN } else { v },
    );
    assert!(matches!(
        read_err(&p.bytes(0)),
        WeightsError::NonFinite { index: 0, .. }
    ));
}

/// The file with its header length changed by `delta`, the bytes themselves untouched.
fn with_header_len(bytes: &[u8], delta: i64) -> Vec<u8> {
    let mut b = bytes.to_vec();
    let n = u64::from_le_bytes(b[..8].try_into().unwrap()) as i64 + delta;
    b[..8].copy_from_slice(&(n as u64).to_le_bytes());
    b
}

#[test]
fn a_header_length_off_by_one_is_refused() {
    let p = parts();
    let bytes = p.bytes(8);
    let data_len = p.data.len();
    // One short: the header loses a padding space (still valid JSON) and the data section
    // gains it, shifting every tensor by a byte.
    let shorter = with_header_len(&bytes, -1);
    let n = u64::from_le_bytes(shorter[..8].try_into().unwrap()) as usize;
    serde_json::from_slice::<Value>(&shorter[8..8 + n])
        .expect("the shortened header is valid JSON");
    let msg = safetensors_msg(&shorter);
    assert_eq!(
        msg,
        format!(
            "the data section has {} bytes but the tensors cover {data_len}: the header length is wrong or a stray byte follows the last tensor",
            data_len + 1
        )
    );
    // One long: with the first data byte a space, the header is still valid JSON and the data
    // section is one byte short.
    let mut spaced = p.clone();
    let first = spaced.offsets(&spaced.keys_by_offset()[0]).0;
    spaced.data[first] = b' ';
    let longer = with_header_len(&spaced.bytes(8), 1);
    let n = u64::from_le_bytes(longer[..8].try_into().unwrap()) as usize;
    serde_json::from_slice::<Value>(&longer[8..8 + n])
        .expect("the lengthened header is valid JSON");
    let msg = safetensors_msg(&longer);
    assert!(
        msg.starts_with(&format!(
            "the data section has {} bytes but the tensors cover {data_len}",
            data_len - 1
        )) && msg.contains("header length is wrong or the file is truncated"),
        "{msg}"
    );
    // One long into an ordinary data byte: not JSON any more.
    let mut other = p.clone();
    other.data[first] = b'x';
    let msg = safetensors_msg(&with_header_len(&other.bytes(8), 1));
    assert!(
        msg.contains("not a JSON object") && msg.contains("header length is wrong"),
        "{msg}"
    );
}

#[test]
fn overlapping_ranges_are_refused() {
    let mut p = parts();
    let keys = p.keys_by_offset();
    let (prev, second) = (&keys[0], &keys[1]);
    let (s, e) = p.offsets(second);
    let prev_end = p.offsets(prev).1;
    // The second tensor starts 4 bytes inside the first; the sizes stay consistent.
    p.set_offsets(second, (s - 4, e - 4));
    let msg = safetensors_msg(&p.bytes(0));
    assert_eq!(
        msg,
        format!(
            "tensor `{second}` spans bytes {}..{} but the previous tensor `{prev}` ended at {prev_end} (overlap of 4 bytes): \
             byte ranges must tile the data section without gaps or overlaps",
            s - 4,
            e - 4
        )
    );
}

#[test]
fn a_gap_between_ranges_is_refused() {
    let mut p = parts();
    let keys = p.keys_by_offset();
    let last = keys.last().unwrap();
    let (s, e) = p.offsets(last);
    // Four unused bytes before the last tensor; the file's total length stays consistent.
    p.set_offsets(last, (s + 4, e + 4));
    let tail = p.data.split_off(s);
    p.data.extend_from_slice(&[0; 4]);
    p.data.extend_from_slice(&tail);
    let msg = safetensors_msg(&p.bytes(0));
    assert!(
        msg.starts_with(&format!(
            "tensor `{last}` spans bytes {}..{} but the previous tensor",
            s + 4,
            e + 4
        )),
        "{msg}"
    );
    assert!(
        msg.contains(&format!("ended at {s} (gap of 4 bytes)"))
            && msg.contains("without gaps or overlaps"),
        "{msg}"
    );
}

#[test]
fn bytes_after_the_last_tensor_are_refused() {
    let mut p = parts();
    let covered = p.data.len();
    p.data.extend_from_slice(b"trailing");
    let msg = safetensors_msg(&p.bytes(0));
    assert_eq!(
        msg,
        format!(
            "the data section has {} bytes but the tensors cover {covered}: the header length is wrong or 8 stray bytes follow the last tensor",
            covered + 8
        )
    );
}

#[test]
fn a_shape_that_does_not_match_the_byte_range_is_refused() {
    let mut p = parts();
    p.header["fc.bias"]["shape"] = json!([6]);
    let msg = safetensors_msg(&p.bytes(0));
    let (s, e) = p.offsets("fc.bias");
    assert_eq!(
        msg,
        format!(
            "tensor `fc.bias` (F32 [6]) spans bytes {s}..{e}, 20 bytes, but its shape and dtype need 24 bytes"
        )
    );
}

#[test]
fn a_file_without_tensors_is_refused() {
    let p = Parts {
        header: Map::from_iter([("__metadata__".to_string(), json!({"format": "pt"}))]),
        data: vec![],
    };
    assert!(matches!(read_err(&p.bytes(0)), WeightsError::Empty));
}

#[test]
fn non_string_metadata_is_refused() {
    let mut p = parts();
    p.header["__metadata__"]["googlenet.num_classes"] = json!(5);
    let msg = safetensors_msg(&p.bytes(0));
    assert!(
        msg.contains("`googlenet.num_classes` must be a string"),
        "{msg}"
    );
}

#[test]
fn num_classes_must_be_a_positive_integer_matching_the_classifier() {
    for bad in ["0", "5.5", "-5", "+5", "five", ""] {
        let (key, msg) = meta_err("googlenet.num_classes", bad);
        assert_eq!(key, "googlenet.num_classes");
        assert!(
            msg.contains(&format!("`{bad}` is not a positive integer")),
            "{msg}"
        );
    }
    let (key, msg) = meta_err("googlenet.num_classes", "7");
    assert_eq!(key, "googlenet.num_classes");
    assert!(
        msg.contains("says 7 classes") && msg.contains("`fc.weight` is [5, 1024], 5 classes"),
        "{msg}"
    );
}

#[test]
fn unknown_googlenet_keys_are_refused() {
    let (key, msg) = meta_err("googlenet.foo", "1");
    assert_eq!(key, "googlenet.foo");
    assert!(
        msg.contains("unknown key")
            && msg.contains("googlenet.num_classes")
            && msg.contains("googlenet.labels"),
        "{msg}"
    );
    // A typo of a real key is caught the same way.
    let (key, _) = meta_err("googlenet.num_class", "5");
    assert_eq!(key, "googlenet.num_class");
}

#[test]
fn labels_must_match_the_classes() {
    let (key, msg) = meta_err("googlenet.labels", r#"["a","b","c"]"#);
    assert_eq!(key, "googlenet.labels");
    assert!(msg.contains("3 labels for a 5-class classifier"), "{msg}");
    let mut p = parts();
    p.set_meta("googlenet.labels", r#"["a","b"," ","d","e"]"#);
    let err = load_err(&weights::read_safetensors(&p.bytes(0)).unwrap());
    assert!(
        matches!(err, WeightsError::Label(LabelError::Blank { index: 2 })),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "bad metadata `googlenet.labels`: label 2 is blank: every class needs a name"
    );
    let (_, msg) = meta_err("googlenet.labels", r#"["a","b","c","d",5]"#);
    assert!(msg.contains("JSON array of strings"), "{msg}");
}

/// The load error for the valid file with these five labels.
fn labels_err(labels: &[&str]) -> WeightsError {
    let mut p = parts();
    p.set_meta("googlenet.labels", &serde_json::to_string(labels).unwrap());
    load_err(&weights::read_safetensors(&p.bytes(0)).unwrap())
}

#[test]
fn hostile_labels_are_refused_on_load_naming_the_label() {
    // A label that forges a result line, one that recolours the terminal, one that reorders it.
    let err = labels_err(&[
        "a",
        "dog\r\nfake line 99.99% Egyptian cat (#285)",
        "c",
        "d",
        "e",
    ]);
    assert!(
        matches!(
            &err,
            WeightsError::Label(LabelError::Control {
                index: 1,
                at: 3,
                ..
            })
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "bad metadata `googlenet.labels`: label 1 (`dog\\r\\nfake line 99.99% Egyptian cat (#285)`) holds a control \
         character (at character 3): class names must be plain text"
    );
    assert!(!err.to_string().contains('\r') && !err.to_string().contains('\n'));
    let err = labels_err(&["a", "b", "\u{1b}[31mred", "d", "e"]);
    assert!(
        matches!(
            &err,
            WeightsError::Label(LabelError::Control {
                index: 2,
                at: 0,
                ..
            })
        ),
        "{err}"
    );
    assert!(!err.to_string().contains('\u{1b}'), "{err}");
    let err = labels_err(&["a", "b", "c", "abc\u{202E}fed", "e"]);
    assert!(
        matches!(
            &err,
            WeightsError::Label(LabelError::Control {
                index: 3,
                at: 3,
                ..
            })
        ),
        "{err}"
    );
    // Over-long: 10,000 characters (149,080 px wide on the page), and 5 MB.
    let err = labels_err(&["a", "b", "c", "d", &"x".repeat(10_000)]);
    assert!(
        matches!(
            err,
            WeightsError::Label(LabelError::TooLong {
                index: 4,
                chars: 10_000
            })
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "bad metadata `googlenet.labels`: label 4 is 10,000 characters long; the limit is 200"
    );
    let err = labels_err(&[&"é".repeat(2_500_000), "b", "c", "d", "e"]);
    assert!(
        matches!(
            err,
            WeightsError::Label(LabelError::TooLong {
                index: 0,
                chars: 2_500_000
            })
        ),
        "{err}"
    );
    // 200 characters (of any script) are fine.
    let ok = ["a", "b", "c", "d", &"猫".repeat(200)];
    let mut p = parts();
    p.set_meta("googlenet.labels", &serde_json::to_string(&ok).unwrap());
    let (_, report) = weights::load_model(
        &weights::read_safetensors(&p.bytes(0)).unwrap(),
        &LoadOptions::default(),
        &Device::flex(),
    )
    .unwrap();
    assert_eq!(report.labels.unwrap()[4].chars().count(), 200);
}

#[test]
fn labels_the_loader_would_refuse_are_never_saved() {
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(3)
        .init(&Device::flex());
    let save = |labels: &[&str], dtype| {
        let info = SaveInfo {
            labels: Some(labels.iter().map(|s| s.to_string()).collect()),
            aux_trained: false,
        };
        weights::save_model_as(&model, &info, dtype)
            .map(|_| ())
            .unwrap_err()
    };
    for dtype in [weights::StoreDtype::F32, weights::StoreDtype::F16] {
        assert!(matches!(
            save(&["cats", " ", "dogs"], dtype),
            WeightsError::Label(LabelError::Blank { index: 1 })
        ));
        assert!(matches!(
            save(&["cats", "dogs", "a\tb"], dtype),
            WeightsError::Label(LabelError::Control {
                index: 2,
                at: 1,
                ..
            })
        ));
        assert!(matches!(
            save(&[&"x".repeat(201), "b", "c"], dtype),
            WeightsError::Label(LabelError::TooLong {
                index: 0,
                chars: 201
            })
        ));
    }
}

#[test]
fn other_metadata_values_are_checked() {
    let (key, msg) = meta_err("googlenet.variant", "alexnet");
    assert_eq!(key, "googlenet.variant");
    assert!(msg.contains("not one of bvlc, torchvision, seed"), "{msg}");
    for flag in ["googlenet.transform_input", "googlenet.aux_trained"] {
        let (key, msg) = meta_err(flag, "yes");
        assert_eq!(key, flag);
        assert!(msg.contains("`yes` is not true/false"), "{msg}");
    }
    // Checked even when the caller overrides the value.
    let mut p = parts();
    p.set_meta("googlenet.transform_input", "1");
    let map = weights::read_safetensors(&p.bytes(0)).unwrap();
    let opts = LoadOptions {
        transform_input: Some(false),
        ..Default::default()
    };
    let err = weights::load_model(&map, &opts, &Device::flex())
        .map(|_| ())
        .unwrap_err();
    assert!(
        matches!(&err, WeightsError::Metadata { key, .. } if key == "googlenet.transform_input"),
        "{err}"
    );
}

#[test]
fn the_bvlc_release_still_loads() {
    let Some(shared) = common::shared() else {
        return;
    };
    let map = weights::read_file(&shared.join("weights/bvlc_googlenet.safetensors")).unwrap();
    let (_, report) = weights::load_model(&map, &LoadOptions::default(), &Device::flex()).unwrap();
    assert_eq!((report.variant, report.num_classes), (Variant::Bvlc, 1000));
}

#[test]
fn a_nan_in_a_pytorch_checkpoint_is_refused() {
    use std::io::{Read, Write};
    let Some(shared) = common::shared() else {
        return;
    };
    let pth = std::fs::read(shared.join("reference/googlenet_seed_variant_s0_c5.pth")).unwrap();
    // Rewrite the archive with a NaN as the first value of every tensor storage.
    let mut zin = zip::ZipArchive::new(std::io::Cursor::new(&pth)).unwrap();
    let mut zout = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let stored =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    let mut poked = 0;
    for i in 0..zin.len() {
        let mut f = zin.by_index(i).unwrap();
        let name = f.name().unwrap().to_string();
        let mut body = Vec::new();
        f.read_to_end(&mut body).unwrap();
        if name
            .rsplit_once("/data/")
            .is_some_and(|(_, n)| n.parse::<u32>().is_ok())
            && body.len() >= 4
        {
            body[..4].copy_from_slice(&f32::NAN.to_le_bytes());
            poked += 1;
        }
        zout.start_file(name, stored).unwrap();
        zout.write_all(&body).unwrap();
    }
    assert!(poked > 10, "found the tensor storages");
    let dir = std::env::temp_dir().join(format!("googlenet-wv-pth-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("nan.pth");
    std::fs::write(&path, zout.finish().unwrap().into_inner()).unwrap();
    let err = weights::read_file(&path).map(|_| ()).unwrap_err();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        matches!(&err, WeightsError::NonFinite { index: 0, value, .. } if value.is_nan()),
        "{err:?}"
    );
    assert!(err.to_string().contains("holds NaN at element 0"), "{err}");
}

#[test]
fn the_cli_refuses_a_nan_file_in_one_line() {
    let dir = std::env::temp_dir().join(format!("googlenet-wv-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let mut p = parts();
    p.poke_f32(CONV1, 17, f32::NAN);
    let bad = dir.join("nan.safetensors");
    std::fs::write(&bad, p.bytes(0)).unwrap();
    let image = match common::shared() {
        Some(s) => s.join("images/cat.jpg"),
        None => {
            let img = image::RgbImage::from_fn(32, 32, |x, y| {
                image::Rgb([(x * 8) as u8, (y * 8) as u8, 100])
            });
            let path = dir.join("img.png");
            img.save(&path).unwrap();
            path
        }
    };
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_googlenet"))
        .args(["classify", "--weights"])
        .arg(&bad)
        .arg(&image)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    assert!(
        stderr.starts_with("error: ") && !stderr.contains("panicked"),
        "{stderr}"
    );
    assert!(
        stderr.contains("`conv1.conv.weight` holds NaN at element 17"),
        "{stderr}"
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).trim().is_empty(),
        "no classification printed"
    );
}

#[test]
fn a_safetensors_file_whose_header_length_starts_with_0x80_is_not_taken_for_a_pickle() {
    // A header of 0x0280 = 640 bytes: the file's first bytes are 0x80 0x02, as a pickle's are.
    let labels: Vec<String> = (0..5).map(|i| format!("class {i}")).collect();
    let model = GoogLeNetConfig::new()
        .with_variant(Variant::Seed)
        .with_num_classes(5)
        .init(&Device::flex());
    let mut bytes = weights::save_model(
        &model,
        &SaveInfo {
            labels: Some(labels),
            aux_trained: true,
        },
    )
    .unwrap();
    let n = u64::from_le_bytes(bytes[..8].try_into().unwrap()) as usize;
    // Re-pad the header with spaces to the next length whose low byte is 0x80, second 0x02.
    let target = (n + 1..)
        .find(|l| l % 256 == 0x80 && (l >> 8) % 256 == 2)
        .unwrap();
    let mut out = (target as u64).to_le_bytes().to_vec();
    out.extend_from_slice(&bytes[8..8 + n]);
    out.extend(std::iter::repeat_n(b' ', target - n));
    out.extend_from_slice(&bytes[8 + n..]);
    bytes = out;
    assert_eq!(&bytes[..2], &[0x80, 0x02]);
    let map = weights::read_bytes(&bytes).expect("a valid safetensors file");
    assert_eq!(map.tensors.len(), weights::expected_keys(&model).len());
    // A real legacy pickle is still told apart.
    assert!(matches!(
        weights::read_bytes(b"\x80\x02}q\x00(X\x06\x00\x00\x00conv1."),
        Err(WeightsError::NeedsConversion)
    ));
}
