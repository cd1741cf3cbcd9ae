//! Image → input tensor, the only copy (the CLI and the page both call it): decode (JPEG,
//! PNG, GIF, WebP, BMP; EXIF orientation applied), resize the shorter side to 256, centre-crop
//! 224, normalise per variant.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageReader, RgbImage, imageops::FilterType};

use crate::model::Variant;

/// Side of the square the network sees.
pub const INPUT_SIZE: usize = 224;
/// Shorter side after resizing, before the centre crop (the ImageNet evaluation protocol).
pub const RESIZE_TO: u32 = 256;
/// Largest image accepted, checked from the header before any pixel is decoded: a 40
/// megapixel photo decodes to 160 MB of RGBA, which a browser tab can still afford.
pub const MAX_PIXELS: u64 = 40_000_000;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("not an image this app can read (expected JPEG, PNG, GIF, WebP or BMP)")]
    UnknownFormat,
    #[error("the image is {width}×{height} = {} megapixels; the limit is {} megapixels", (*width as u64 * *height as u64) / 1_000_000, MAX_PIXELS / 1_000_000)]
    TooLarge { width: u32, height: u32 },
    #[error("the image has zero width or height")]
    ZeroSize,
    #[error("the image file is damaged or truncated: {0}")]
    Corrupt(String),
}

/// A preprocessed image: the normalised tensor data and the crop the network saw.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// `[3, 224, 224]`, channel-major, normalised for the variant.
    pub chw: Vec<f32>,
    /// The 224×224 RGB crop, for overlays.
    pub crop: RgbImage,
    /// The decoded image's size after EXIF rotation.
    pub original: (u32, u32),
}

/// Decode an image, refusing non-images and decompression bombs with clear errors.
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    if reader.format().is_none() {
        return Err(ImageError::UnknownFormat);
    }
    // Header first: the size is known before a single pixel is decoded.
    let (width, height) = reader.into_dimensions().map_err(|e| ImageError::Corrupt(e.to_string()))?;
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize);
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    let mut reader = ImageReader::new(Cursor::new(bytes))
        .with_guessed_format()
        .map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_PIXELS * 8);
    reader.limits(limits);
    let mut decoder = reader.into_decoder().map_err(|e| ImageError::Corrupt(e.to_string()))?;
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| ImageError::Corrupt(e.to_string()))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// Resize the shorter side to 256 (bilinear with antialiasing, as PIL) and take the centre
/// 224×224, as torchvision's `Resize(256)` + `CenterCrop(224)`.
pub fn resize_crop(img: &DynamicImage) -> RgbImage {
    let rgb = img.to_rgb8();
    let (w, h) = rgb.dimensions();
    let (nw, nh) = if w <= h {
        (RESIZE_TO, ((RESIZE_TO as u64 * h as u64) / w as u64).max(1) as u32)
    } else {
        (((RESIZE_TO as u64 * w as u64) / h as u64).max(1) as u32, RESIZE_TO)
    };
    let resized = image::imageops::resize(&rgb, nw, nh, FilterType::Triangle);
    let s = INPUT_SIZE as u32;
    // torchvision: int(round((size - crop) / 2))
    let left = ((nw - s) as f64 / 2.0).round() as u32;
    let top = ((nh - s) as f64 / 2.0).round() as u32;
    image::imageops::crop_imm(&resized, left, top, s, s).to_image()
}

/// The per-variant input normalisation of a 224×224 RGB crop, channel-major.
pub fn normalize(crop: &RgbImage, variant: Variant) -> Vec<f32> {
    let n = INPUT_SIZE * INPUT_SIZE;
    let mut out = vec![0f32; 3 * n];
    // (source RGB channel, scale, mean, std) for each output channel.
    let plan: [(usize, f32, f32, f32); 3] = match variant {
        // Caffe: BGR, 0..255, minus the per-channel mean (B 104, G 117, R 123).
        Variant::Bvlc => [(2, 1.0, 104.0, 1.0), (1, 1.0, 117.0, 1.0), (0, 1.0, 123.0, 1.0)],
        // torchvision: RGB in 0..1, ImageNet mean and std.
        Variant::Torchvision => [
            (0, 1.0 / 255.0, 0.485, 0.229),
            (1, 1.0 / 255.0, 0.456, 0.224),
            (2, 1.0 / 255.0, 0.406, 0.225),
        ],
        // The seed tutorial: RGB in 0..1, mean 0.5, std 0.5.
        Variant::Seed => [(0, 1.0 / 255.0, 0.5, 0.5), (1, 1.0 / 255.0, 0.5, 0.5), (2, 1.0 / 255.0, 0.5, 0.5)],
    };
    for (i, p) in crop.pixels().enumerate() {
        for (c, &(src, scale, mean, std)) in plan.iter().enumerate() {
            out[c * n + i] = (p.0[src] as f32 * scale - mean) / std;
        }
    }
    out
}

/// Bytes of an image file → the network's input for `variant`.
pub fn prepare(bytes: &[u8], variant: Variant) -> Result<Prepared, ImageError> {
    let img = decode(bytes)?;
    let original = (img.width(), img.height());
    let crop = resize_crop(&img);
    let chw = normalize(&crop, variant);
    Ok(Prepared { chw, crop, original })
}
