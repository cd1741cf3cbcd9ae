//! Preprocessing: Pillow-exact resize + centre crop (against crops made by Pillow itself, see
//! scripts/make_pillow_fixtures.py), bounded work for any aspect ratio, cut-off files and
//! decompression bombs refused.

mod common;

use std::io::Cursor;
use std::path::PathBuf;

use googlenet::Variant;
use googlenet::preprocess::{self, ImageError};
use image::{ImageFormat, RgbImage};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn read_rgb(path: &std::path::Path) -> RgbImage {
    image::open(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .to_rgb8()
}

/// (max |a − b| over all samples, number of differing samples).
fn diff(a: &RgbImage, b: &RgbImage) -> (u8, usize) {
    assert_eq!(a.dimensions(), b.dimensions());
    a.as_raw()
        .iter()
        .zip(b.as_raw())
        .fold((0, 0), |(m, n), (&x, &y)| {
            (m.max(x.abs_diff(y)), n + (x != y) as usize)
        })
}

fn encode(img: &RgbImage, format: ImageFormat) -> Vec<u8> {
    let mut out = Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

fn noise(w: u32, h: u32, seed: u64) -> RgbImage {
    let mut s = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    RgbImage::from_fn(w, h, |_, _| {
        let mut c = [0u8; 3];
        for v in &mut c {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            *v = (s >> 24) as u8;
        }
        image::Rgb(c)
    })
}

// ---------------------------------------------------------------------------------------------
// Pillow equality

const SYNTHETIC: [&str; 5] = [
    "synth_517x301",
    "synth_90x700",
    "synth_100x60",
    "synth_256x391",
    "synth_403x256",
];

#[test]
fn synthetic_pngs_equal_pillow_exactly() {
    for name in SYNTHETIC {
        let bytes = std::fs::read(fixture(&format!("{name}.png"))).unwrap();
        let expected = read_rgb(&fixture(&format!("{name}.pillow224.png")));
        let img = preprocess::decode(&bytes).unwrap();
        let ours = preprocess::resize_crop(&img);
        let (max, n) = diff(&ours, &expected);
        println!("{name}: max diff {max}, {n} samples differ");
        assert_eq!((max, n), (0, 0), "{name}: our crop differs from Pillow's");
        // The public RgbImage entry point, and prepare(), give the same crop.
        assert_eq!(
            preprocess::resize_shorter_and_center_crop(&img.to_rgb8(), 256, 224),
            ours,
            "{name}"
        );
        assert_eq!(
            preprocess::prepare(&bytes, Variant::Bvlc).unwrap().crop,
            ours,
            "{name}"
        );
    }
}

#[test]
fn non_rgb8_images_are_converted_like_to_rgb8() {
    // Grey, grey+alpha, RGBA and 16-bit sources go through the row-wise conversion.
    let rgb = read_rgb(&fixture("synth_517x301.png"));
    let rgba = image::DynamicImage::ImageRgb8(rgb.clone()).to_rgba8();
    let cases = [
        image::DynamicImage::ImageRgba8(rgba.clone()),
        image::DynamicImage::ImageLuma8(image::DynamicImage::ImageRgb8(rgb.clone()).to_luma8()),
        image::DynamicImage::ImageLumaA8(
            image::DynamicImage::ImageRgb8(rgb.clone()).to_luma_alpha8(),
        ),
        image::DynamicImage::ImageRgb16(image::DynamicImage::ImageRgb8(rgb.clone()).to_rgb16()),
    ];
    for img in cases {
        let expected = preprocess::resize_shorter_and_center_crop(&img.to_rgb8(), 256, 224);
        assert_eq!(preprocess::resize_crop(&img), expected, "{:?}", img.color());
        let expected = preprocess::resize_shorter_and_center_crop(&img.to_rgb8(), 300, 256);
        assert_eq!(
            preprocess::resize_shorter_and_center_crop_dynamic(&img, 300, 256),
            expected
        );
    }
}

/// The photos: JPEG decoded as libjpeg-turbo does (Pillow's decoder), then the Pillow-exact
/// resize: every pixel of the crop within 1 grey level of Pillow's (measured: equal). With
/// `image`'s zune-jpeg decoder instead, cat.jpg was 4 grey levels off (4:2:0 chroma upsampling).
#[test]
fn photos_match_pillow_within_one_grey_level() {
    let Some(shared) = common::shared() else {
        return;
    };
    for stem in ["cat", "dog"] {
        let bytes = std::fs::read(shared.join(format!("images/{stem}.jpg"))).unwrap();
        let expected = read_rgb(&fixture(&format!("{stem}.pillow224.png")));
        let ours = preprocess::prepare(&bytes, Variant::Bvlc).unwrap().crop;
        let (max, n) = diff(&ours, &expected);
        println!("{stem}.jpg: max diff {max}, {n} samples differ");
        assert!(
            max <= 1,
            "{stem}.jpg: max diff {max} from Pillow's crop ({n} samples differ)"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Any aspect ratio

/// An independent, whole-image implementation of Pillow's bilinear resample (Resample.c's
/// `ImagingResampleInner`, every output pixel), for checking that computing only the crop
/// gives the same pixels.
fn pillow_resize_full(img: &RgbImage, nw: usize, nh: usize) -> RgbImage {
    fn coeffs(in_size: usize, out_size: usize) -> Vec<(usize, Vec<i32>)> {
        let scale = in_size as f32 as f64 / out_size as f64;
        let fs = scale.max(1.0);
        (0..out_size)
            .map(|xx| {
                let center = (xx as f64 + 0.5) * scale;
                let xmin = ((center - fs + 0.5) as i64).max(0);
                let xmax = ((center + fs + 0.5) as i64).min(in_size as i64);
                let w: Vec<f64> = (xmin..xmax)
                    .map(|x| {
                        let t = ((x as f64 - center + 0.5) * (1.0 / fs)).abs();
                        if t < 1.0 { 1.0 - t } else { 0.0 }
                    })
                    .collect();
                let sum: f64 = w.iter().sum();
                let k = w
                    .iter()
                    .map(|&v| {
                        let v = if sum != 0.0 { v / sum } else { v };
                        (0.5 + v * (1 << 22) as f64) as i32
                    })
                    .collect();
                (xmin as usize, k)
            })
            .collect()
    }
    let clip = |a: i32| (a >> 22).clamp(0, 255) as u8;
    let (w, h) = (img.width() as usize, img.height() as usize);
    let mut cur: Vec<u8> = img.as_raw().clone();
    let mut cw = w;
    if nw != w {
        let k = coeffs(w, nw);
        let mut out = vec![0u8; nw * h * 3];
        for y in 0..h {
            for (x, (xmin, kk)) in k.iter().enumerate() {
                for c in 0..3 {
                    let acc = kk.iter().enumerate().fold(1 << 21, |a, (t, &kt)| {
                        a + cur[(y * w + xmin + t) * 3 + c] as i32 * kt
                    });
                    out[(y * nw + x) * 3 + c] = clip(acc);
                }
            }
        }
        cur = out;
        cw = nw;
    }
    if nh != h {
        let k = coeffs(h, nh);
        let mut out = vec![0u8; cw * nh * 3];
        for (y, (ymin, kk)) in k.iter().enumerate() {
            for x in 0..cw * 3 {
                let acc = kk.iter().enumerate().fold(1 << 21, |a, (t, &kt)| {
                    a + cur[(ymin + t) * cw * 3 + x] as i32 * kt
                });
                out[y * cw * 3 + x] = clip(acc);
            }
        }
        cur = out;
    }
    RgbImage::from_raw(nw as u32, nh as u32, cur).unwrap()
}

/// torchvision's Resize(shorter) + CenterCrop(crop) the slow way: the whole resized image.
fn reference_crop(img: &RgbImage, shorter: u32, crop: u32) -> RgbImage {
    let (w, h) = (img.width() as u64, img.height() as u64);
    let s = shorter as u64;
    let (nw, nh) = if w <= h {
        (s, s * h / w)
    } else {
        (s * w / h, s)
    };
    let full = pillow_resize_full(img, nw as usize, nh as usize);
    let left = ((nw - crop as u64) as f64 / 2.0).round_ties_even() as u32;
    let top = ((nh - crop as u64) as f64 / 2.0).round_ties_even() as u32;
    image::imageops::crop_imm(&full, left, top, crop, crop).to_image()
}

#[test]
fn computing_only_the_crop_equals_resizing_everything() {
    // Extreme strips (huge upscales), tiny images, plain upscales and real downscales, with
    // both the classifier's (256, 224) and the fine-tuning's (256, 256) crops.
    let shapes = [
        (211, 1),
        (1, 211),
        (517, 3),
        (5, 1033),
        (1, 1),
        (2, 3),
        (100, 60),
        (2600, 1300),
        (700, 3000),
        (256, 999),
        (1234, 256),
    ];
    for (i, &(w, h)) in shapes.iter().enumerate() {
        let img = noise(w, h, i as u64);
        for (shorter, crop) in [(256, 224), (256, 256), (300, 7)] {
            let ours = preprocess::resize_shorter_and_center_crop(&img, shorter, crop);
            let reference = reference_crop(&img, shorter, crop);
            assert_eq!(ours.dimensions(), (crop, crop));
            let (max, n) = diff(&ours, &reference);
            assert_eq!((max, n), (0, 0), "{w}×{h} → {shorter}, crop {crop}");
        }
    }
}

/// A strip whose middle is a linear ramp (slope 10 grey levels a source pixel), so that the
/// crop's values tell where in the virtual resized image it was taken.
fn ramp_strip(len: u32, horizontal: bool) -> RgbImage {
    let v = |i: u32| ((i as f64 - (len / 2) as f64) * 10.0 + 128.0).clamp(0.0, 255.0) as u8;
    let (w, h) = if horizontal { (len, 1) } else { (1, len) };
    RgbImage::from_fn(w, h, |x, y| {
        let g = v(if horizontal { x } else { y });
        image::Rgb([g, 255 - g, 7])
    })
}

#[test]
fn extreme_shapes_give_the_middle_of_the_virtual_resize() {
    for (len, horizontal) in [
        (40_000, true),
        (40_000, false),
        (16_000, true),
        (16_000, false),
        (2001, true),
    ] {
        let img = ramp_strip(len, horizontal);
        let crop = preprocess::resize_crop(&image::DynamicImage::ImageRgb8(img));
        assert_eq!(crop.dimensions(), (224, 224));
        // The resized strip is (256·len)×256; the crop starts at round((256·len − 224)/2).
        // Crop position i along the strip sits at source coordinate (offset + i + 0.5)/256 − 0.5,
        // where the ramp's value is 128 + 10·(that − len/2).
        let offset = ((256 * len as u64 - 224) as f64 / 2.0).round_ties_even();
        for y in 0..224 {
            for x in 0..224 {
                let (along, across) = if horizontal { (x, y) } else { (y, x) };
                let p = crop.get_pixel(x, y).0;
                let src = (offset + along as f64 + 0.5) / 256.0 - 0.5;
                let expected = 128.0 + 10.0 * (src - (len / 2) as f64);
                let what = format!("{len} long, horizontal {horizontal}, at {along}");
                assert!(
                    (p[0] as f64 - expected).abs() <= 1.0,
                    "{what}: got {} expected {expected:.2}",
                    p[0]
                );
                assert_eq!(p[0] as u16 + p[1] as u16, 255);
                assert_eq!(p[2], 7);
                // Across the strip, nothing changes.
                let first = if horizontal {
                    crop.get_pixel(x, 0)
                } else {
                    crop.get_pixel(0, y)
                };
                assert_eq!(&p, &first.0, "{len} {horizontal}: across {across}");
            }
        }
    }
}

#[test]
fn tiny_and_extreme_images_are_classified() {
    for (w, h) in [(40_000, 1), (1, 40_000), (16_000, 1), (1, 1), (2, 3)] {
        let png = encode(&noise(w, h, 7), ImageFormat::Png);
        let p = preprocess::prepare(&png, Variant::Torchvision).unwrap();
        assert_eq!(p.original, (w, h));
        assert_eq!(p.crop.dimensions(), (224, 224));
        assert_eq!(p.chw.len(), 3 * 224 * 224);
    }
    // 1×1: every output pixel is the one input pixel.
    let one = RgbImage::from_pixel(1, 1, image::Rgb([9, 200, 77]));
    assert!(
        preprocess::resize_shorter_and_center_crop(&one, 256, 224)
            .pixels()
            .all(|p| p.0 == [9, 200, 77])
    );
}

// ---------------------------------------------------------------------------------------------
// Cut-off files

fn assert_cut_off(bytes: &[u8], what: &str) {
    match preprocess::decode(bytes) {
        Err(ImageError::Corrupt(msg)) => {
            assert!(
                msg.contains("ends early") && msg.contains("cut off"),
                "{what}: {msg}"
            );
            assert!(
                msg.contains(&format!("after {} bytes", bytes.len())),
                "{what}: {msg}"
            );
        }
        Err(e) => panic!("{what}: expected a cut-off error, got {e}"),
        Ok(_) => panic!("{what}: a cut-off file decoded without an error"),
    }
}

#[test]
fn truncated_jpegs_are_refused() {
    let Some(shared) = common::shared() else {
        return;
    };
    let cat = std::fs::read(shared.join("images/cat.jpg")).unwrap();
    assert!(preprocess::decode(&cat).is_ok());
    assert_cut_off(&cat[..3000], "cat.jpg cut at 3000 bytes");
    assert_cut_off(&cat[..cat.len() / 2], "cat.jpg cut at half");
    assert_cut_off(&cat[..cat.len() - 1], "cat.jpg without the last byte");
    assert_cut_off(&cat[..cat.len() - 2], "cat.jpg without its EOI");
    let err = preprocess::prepare(&cat[..3000], Variant::Bvlc)
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("the image file is damaged or truncated: the JPEG data ends early"),
        "{err}"
    );
    // Bytes after the end-of-image marker are fine.
    let mut junk = cat.clone();
    junk.extend((0..100u8).map(|i| i.wrapping_mul(37)));
    assert!(preprocess::decode(&junk).is_ok());
    junk.extend_from_slice(&[0xFF, 0xD8, 0xFF, 0xE0]);
    assert!(preprocess::decode(&junk).is_ok());

    // An EXIF thumbnail (its own SOI … EOI) inside APP1 does not count as the end.
    let mut thumb = vec![
        0xFF, 0xD8, 0xFF, 0xDB, 0x00, 0x04, 1, 2, 0xFF, 0xDA, 0x00, 0x02, 5, 0xFF, 0x00, 6, 0xFF,
        0xD9,
    ];
    let mut payload = b"Exif\0\0".to_vec();
    payload.append(&mut thumb);
    let mut with_thumb = cat[..2].to_vec();
    with_thumb.extend_from_slice(&[0xFF, 0xE1]);
    with_thumb.extend_from_slice(&((payload.len() + 2) as u16).to_be_bytes());
    with_thumb.extend_from_slice(&payload);
    with_thumb.extend_from_slice(&cat[2..]);
    assert!(preprocess::decode(&with_thumb).is_ok());
    assert_cut_off(
        &with_thumb[..with_thumb.len() / 2],
        "cat.jpg with a thumbnail, cut at half",
    );
}

#[test]
fn every_cut_of_a_jpeg_is_refused() {
    // Baseline (our encoder) and progressive (Pillow's, several SOS) JPEGs, cut everywhere.
    let baseline = encode(&noise(40, 24, 3), ImageFormat::Jpeg);
    let progressive = std::fs::read(fixture("progressive.jpg")).unwrap();
    for (name, jpeg) in [("baseline", baseline), ("progressive", progressive)] {
        assert!(preprocess::decode(&jpeg).is_ok(), "{name}");
        assert!(jpeg.windows(2).filter(|w| w == &[0xFF, 0xDA]).count() >= 1);
        for cut in 3..jpeg.len() {
            assert_cut_off(&jpeg[..cut], &format!("{name} cut at {cut}"));
        }
    }
}

/// Every proper prefix of `bytes` (from `from` bytes on) is refused as damaged, none panics.
fn assert_every_cut_refused(bytes: &[u8], from: usize, what: &str) {
    assert!(preprocess::decode(bytes).is_ok(), "{what}: the whole file");
    for cut in from..bytes.len() {
        match preprocess::decode(&bytes[..cut]) {
            Err(ImageError::Corrupt(_)) => {}
            Err(e) => panic!("{what} cut at {cut} of {}: {e}", bytes.len()),
            Ok(_) => panic!(
                "{what} cut at {cut} of {}: decoded without an error",
                bytes.len()
            ),
        }
    }
}

#[test]
fn truncated_png_gif_webp_bmp_are_refused() {
    let img = noise(23, 17, 11);
    // From 16 bytes on: a shorter prefix is not recognisable as its format at all.
    for format in [
        ImageFormat::Png,
        ImageFormat::Gif,
        ImageFormat::WebP,
        ImageFormat::Bmp,
    ] {
        let bytes = encode(&img, format);
        assert_every_cut_refused(&bytes, 16, &format!("{format:?}"));
        // Trailing bytes after a complete file are fine.
        let mut longer = bytes.clone();
        longer.extend_from_slice(&[0u8; 50]);
        assert!(
            preprocess::decode(&longer).is_ok(),
            "{format:?} with trailing bytes"
        );
    }
    // An odd width: BMP rows padded to 4 bytes, the last row's padding included.
    let bmp = encode(&noise(5, 3, 1), ImageFormat::Bmp);
    assert_every_cut_refused(&bmp, 16, "5×3 BMP");
}

#[test]
fn truncated_rle_bmps_are_refused() {
    // A 5×2 BMP, RLE8-compressed: the walk follows its codes to the end-of-bitmap code.
    let palette = [0u8, 0, 0, 0, 255, 255, 255, 0];
    // Bottom row: an absolute run of 3 (padded to even), then a run of 2; end of line.
    // Top row: a run of 5; end of line; end of bitmap.
    let rle = [0u8, 3, 1, 0, 1, 0, 2, 1, 0, 0, 5, 0, 0, 0, 0, 1];
    let offset = 14 + 40 + palette.len() as u32;
    let mut bmp = b"BM".to_vec();
    bmp.extend_from_slice(&(offset + rle.len() as u32).to_le_bytes());
    bmp.extend_from_slice(&0u32.to_le_bytes());
    bmp.extend_from_slice(&offset.to_le_bytes());
    for v in [40u32, 5, 2] {
        bmp.extend_from_slice(&v.to_le_bytes());
    }
    bmp.extend_from_slice(&1u16.to_le_bytes());
    bmp.extend_from_slice(&8u16.to_le_bytes());
    for v in [1u32, rle.len() as u32, 2835, 2835, 2, 0] {
        bmp.extend_from_slice(&v.to_le_bytes());
    }
    bmp.extend_from_slice(&palette);
    bmp.extend_from_slice(&rle);
    let img = preprocess::decode(&bmp).unwrap().to_rgb8();
    let row = |y: u32| (0..5).map(|x| img.get_pixel(x, y).0[0]).collect::<Vec<_>>();
    assert_eq!((row(1), row(0)), (vec![255, 0, 255, 255, 255], vec![0; 5]));
    assert_every_cut_refused(&bmp, 16, "RLE8 BMP");
}

// ---------------------------------------------------------------------------------------------
// Decompression bombs

#[test]
fn bombs_are_refused_from_the_header() {
    let err = preprocess::decode(&common::png_header(60_000, 60_000)).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 60_000,
                height: 60_000
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the image is 60000×60000 = 3,600,000,000 pixels; the limit is 40,000,000 pixels"
    );
    // Just over the limit: exact counts, so one pixel too many reads as such (not "40.0
    // megapixels; the limit is 40").
    let err = preprocess::decode(&common::png_header(6400, 6300)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the image is 6400×6300 = 40,320,000 pixels; the limit is 40,000,000 pixels"
    );
    let err = preprocess::decode(&common::png_header(40_000_001, 1)).unwrap_err();
    assert_eq!(
        err.to_string(),
        "the image is 40000001×1 = 40,000,001 pixels; the limit is 40,000,000 pixels"
    );
    assert!(
        preprocess::decode(&common::png_header(40_000_000, 1))
            .is_err_and(|e| !matches!(e, ImageError::TooLarge { .. }))
    );
    // Other formats' headers.
    let mut bmp = encode(&noise(4, 4, 0), ImageFormat::Bmp);
    bmp[18..22].copy_from_slice(&50_000i32.to_le_bytes());
    bmp[22..26].copy_from_slice(&50_000i32.to_le_bytes());
    let err = preprocess::decode(&bmp).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 50_000,
                height: 50_000
            }
        ),
        "{err}"
    );
    let mut gif = encode(&noise(4, 4, 0), ImageFormat::Gif);
    gif[6..8].copy_from_slice(&65_535u16.to_le_bytes());
    gif[8..10].copy_from_slice(&65_535u16.to_le_bytes());
    let err = preprocess::decode(&gif).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 65_535,
                height: 65_535
            }
        ),
        "{err}"
    );
}

#[test]
fn sixteen_bit_images_count_their_decoded_bytes() {
    // 16-bit RGBA: 8 bytes a pixel, so the 160 MB budget admits 20 megapixels of it. A header
    // claiming 5000×5000 (25 MP, under the pixel limit) is refused before decoding.
    let mut png = common::png_header(5000, 5000);
    png[24] = 16; // bit depth
    png[25] = 6; // RGBA
    // (the IHDR CRC is now wrong; the png crate checks it, so fix it up)
    let crc = {
        let mut crc = !0u32;
        for &b in &png[12..29] {
            crc ^= b as u32;
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    (crc >> 1) ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    };
    png[29..33].copy_from_slice(&crc.to_be_bytes());
    let err = preprocess::decode(&png).unwrap_err();
    assert!(
        matches!(
            err,
            ImageError::TooLarge {
                width: 5000,
                height: 5000
            }
        ),
        "{err}"
    );
    assert_eq!(
        err.to_string(),
        "the image is 5000×5000 = 25,000,000 pixels at more than 8 bits per channel, which needs more than 160,000,000 \
         bytes to decode; the limit is 160,000,000 bytes (40,000,000 pixels at 8 bits per channel)"
    );
}

#[test]
fn pixels_decoded_elsewhere_take_the_same_path() {
    // An RGBA buffer (as the browser's decoders give it) and a PNG of the same pixels.
    let (w, h) = (517u32, 301u32);
    let rgba: Vec<u8> = (0..w * h)
        .flat_map(|i| {
            [
                (i % 251) as u8,
                (i / w * 3 % 256) as u8,
                (i * 7 % 253) as u8,
                200,
            ]
        })
        .collect();
    let img = image::RgbaImage::from_raw(w, h, rgba.clone()).unwrap();
    let mut png = std::io::Cursor::new(Vec::new());
    image::DynamicImage::ImageRgba8(img)
        .write_to(&mut png, image::ImageFormat::Png)
        .unwrap();
    let png = png.into_inner();
    assert!(preprocess::known_format(&png));
    let a = preprocess::prepare(&png, Variant::Torchvision).unwrap();
    let b = preprocess::prepare_rgba(rgba, w, h, Variant::Torchvision).unwrap();
    assert_eq!(a.chw, b.chw);
    // The size is checked first; a short buffer is named.
    assert!(matches!(
        preprocess::prepare_rgba(vec![], 60_000, 60_000, Variant::Bvlc),
        Err(ImageError::TooLarge { .. })
    ));
    let err = preprocess::prepare_rgba(vec![0; 12], 2, 2, Variant::Bvlc).unwrap_err();
    assert!(
        err.to_string().contains("12 bytes of pixels for a 2×2"),
        "{err}"
    );
    // Formats the app does not decode itself are recognised as such.
    assert!(
        !preprocess::known_format(b"\x00\x00\x01\x00\x01\x00"),
        "ICO goes to the browser"
    );
    assert!(!preprocess::known_format(b"not an image"));
}

#[test]
fn a_40_megapixel_progressive_jpeg_is_within_every_limit() {
    // The largest image accepted, as a progressive 4:2:0 JPEG (libjpeg's default script; the
    // decoder's own memory estimate is largest for it among 3-component files, 14.05 bytes a
    // pixel): the scan, work and decoder-memory limits refuse bombs, never this.
    use libjpeg_turbo_rs::{PixelFormat, Subsampling};
    let (w, h) = (8000usize, 5000usize);
    let px: Vec<u8> = (0..w * h)
        .flat_map(|i| [(i % w / 32) as u8, (i / w / 20) as u8, 128])
        .collect();
    let jpeg =
        libjpeg_turbo_rs::compress_progressive(&px, w, h, PixelFormat::Rgb, 75, Subsampling::S420)
            .unwrap();
    let img = preprocess::decode(&jpeg).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!((img.width(), img.height()), (8000, 5000));
}
