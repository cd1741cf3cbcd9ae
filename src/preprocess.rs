//! Image → input tensor, the only copy (the CLI and the page both call it): decode (JPEG,
//! PNG, GIF, WebP, BMP; EXIF orientation applied; cut-off files and decompression bombs
//! refused), resize the shorter side to 256 and centre-crop 224 exactly as Pillow does it for
//! torchvision's evaluation transform, normalise per variant.
//!
//! # Memory per image
//!
//! Decoding ([`decode`]) holds, besides the file's bytes (the `image` crate copies a JPEG's
//! bytes once more):
//! - the decoded image: at most [`MAX_DECODED_BYTES`] = 160 MB. Both limits are checked from
//!   the header, before any pixel is decoded: at most [`MAX_PIXELS`] pixels, and at most
//!   160 MB in the colour type the decoder will produce (8-bit RGBA: 4 bytes a pixel, so
//!   40 megapixels exactly; 16-bit RGB or RGBA PNGs count 6 or 8 bytes a pixel, so 26 or 20
//!   megapixels).
//!   Anything larger is [`ImageError::TooLarge`].
//! - the decoder's own working memory: small row or block buffers for PNG, GIF, BMP, WebP and
//!   baseline JPEG; a progressive JPEG keeps every DCT coefficient until its last scan, 2 bytes a
//!   sample: 3 bytes a pixel more for 4:2:0 chroma, 6 for 4:4:4 (measured with the CLI on a
//!   36-megapixel JPEG, whose pixels are 108 MB: the progressive 4:4:4 file peaks 210 MB higher
//!   than the baseline one).
//! - during a 90° or 270° EXIF rotation, a second, rotated copy of the decoded image.
//!
//! Resizing ([`resize_shorter_and_center_crop`], [`resize_crop`]) never materialises the
//! resized image: it computes only the crop's pixels, reading only the source rows and columns
//! they depend on. Beyond the decoded image it holds O(crop × source span) bytes: one band of
//! `crop` columns × `s·crop + 2·max(s, 1) + 2` source rows at 3 bytes a pixel (the horizontally
//! resampled rows), where `s` = (shorter source side) / `shorter`, plus the output crop. Under
//! [`MAX_PIXELS`] that band is at most about 4 MB for a 224 crop from 256 (5 MB for 256 from
//! 256), whatever the aspect ratio: a 40000×1 panorama costs as little as a square photo.
//!
//! So one image costs at most: its file (twice for a JPEG) + 160 MB of pixels (twice during a
//! 90° rotation) + a progressive JPEG's coefficients (up to 240 MB) + about 5 MB.

use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::model::Variant;

/// Side of the square the network sees.
pub const INPUT_SIZE: usize = 224;
/// Shorter side after resizing, before the centre crop (the ImageNet evaluation protocol).
pub const RESIZE_TO: u32 = 256;
/// Largest image accepted, checked from the header before any pixel is decoded: a 40
/// megapixel photo decodes to 160 MB of RGBA, which a browser tab can still afford.
pub const MAX_PIXELS: u64 = 40_000_000;
/// Largest decoded image accepted, in bytes of the colour type the decoder produces (checked
/// before decoding): [`MAX_PIXELS`] of 8-bit RGBA.
pub const MAX_DECODED_BYTES: u64 = MAX_PIXELS * 4;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("not an image this app can read (expected JPEG, PNG, GIF, WebP or BMP)")]
    UnknownFormat,
    #[error("{}", too_large_message(*width, *height))]
    TooLarge { width: u32, height: u32 },
    #[error("the image has zero width or height")]
    ZeroSize,
    #[error("the image file is damaged or truncated: {0}")]
    Corrupt(String),
}

fn too_large_message(width: u32, height: u32) -> String {
    let pixels = width as u64 * height as u64;
    let mp = pixels as f64 / 1e6;
    // One decimal below 100 megapixels, so that 40.3 does not read as "40; the limit is 40".
    let mp = if mp < 100.0 { format!("{mp:.1}") } else { format!("{mp:.0}") };
    if pixels > MAX_PIXELS {
        format!("the image is {width}×{height} = {mp} megapixels; the limit is {} megapixels", MAX_PIXELS / 1_000_000)
    } else {
        // Within the pixel limit, but its decoded form is larger than the memory budget
        // (16 bits per channel).
        format!(
            "the image is {width}×{height} = {mp} megapixels but needs more than {} MB to decode \
             (more than 8 bits per channel); the limit is {} megapixels at 8 bits per channel",
            MAX_DECODED_BYTES / 1_000_000,
            MAX_PIXELS / 1_000_000
        )
    }
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

fn corrupt(e: impl std::fmt::Display) -> ImageError {
    ImageError::Corrupt(e.to_string())
}

/// An `image` error → ours: a limit hit (memory, dimensions) is [`ImageError::TooLarge`] when
/// the size is known, whatever the target's pointer width; anything else is damage.
fn from_image_error(e: image::ImageError, size: Option<(u32, u32)>) -> ImageError {
    match (&e, size) {
        (image::ImageError::Limits(_), Some((width, height))) => ImageError::TooLarge { width, height },
        _ => corrupt(e),
    }
}

fn check_size(width: u32, height: u32) -> Result<(), ImageError> {
    if width == 0 || height == 0 {
        return Err(ImageError::ZeroSize);
    }
    if width as u64 * height as u64 > MAX_PIXELS {
        return Err(ImageError::TooLarge { width, height });
    }
    Ok(())
}

/// Decode an image, refusing non-images, cut-off files and decompression bombs with clear
/// errors. Memory: see the [module documentation](self).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    if bytes.is_empty() {
        return Err(ImageError::Empty);
    }
    let reader = |limits: Option<image::Limits>| -> Result<ImageReader<Cursor<&[u8]>>, ImageError> {
        let mut r = ImageReader::new(Cursor::new(bytes)).with_guessed_format().map_err(corrupt)?;
        match limits {
            Some(l) => r.limits(l),
            None => r.no_limits(),
        }
        Ok(r)
    };
    let probe = reader(None)?;
    let Some(format) = probe.format() else {
        return Err(ImageError::UnknownFormat);
    };
    // Header first: the size is known before a single pixel is decoded. A PNG's size is read
    // from its IHDR directly, because the png crate refuses, on 32-bit targets (the page), to
    // even open a PNG whose pixels would not fit the address space ("Memory limit exceeded").
    let png_size = if format == ImageFormat::Png { png_header_size(bytes) } else { None };
    if let Some((width, height)) = png_size {
        check_size(width, height)?;
    }
    // The probe runs without allocation limits: it allocates nothing for pixels, and the
    // default limit's arithmetic would otherwise decide what a header may claim.
    let (width, height) = probe.into_dimensions().map_err(|e| {
        // A header cut short is reported as such.
        check_complete(format, bytes).err().unwrap_or_else(|| from_image_error(e, png_size))
    })?;
    check_size(width, height)?;
    check_complete(format, bytes)?;

    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let size = Some((width, height));
    let mut decoder = reader(Some(limits))?.into_decoder().map_err(|e| from_image_error(e, size))?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(ImageError::TooLarge { width, height });
    }
    let orientation = decoder.orientation().unwrap_or(image::metadata::Orientation::NoTransforms);
    // JPEG: libjpeg-turbo's own algorithms (ISLOW IDCT, fancy upsampling, its colour tables),
    // as Pillow decodes, so the pixels equal torchvision's on PIL images exactly; `image`'s
    // zune-jpeg differs by up to 4 grey levels on 4:2:0 photos. What it cannot decode (CMYK,
    // say) falls back to `image`'s decoder.
    let turbo = (format == ImageFormat::Jpeg).then(|| libjpeg_turbo_rs::decompress_to(bytes, libjpeg_turbo_rs::PixelFormat::Rgb).ok()).flatten();
    let mut img = match turbo.and_then(|j| RgbImage::from_raw(j.width as u32, j.height as u32, j.data)) {
        Some(rgb) if rgb.dimensions() == (width, height) => DynamicImage::ImageRgb8(rgb),
        _ => DynamicImage::from_decoder(decoder).map_err(|e| from_image_error(e, size))?,
    };
    img.apply_orientation(orientation);
    Ok(img)
}

/// A PNG's size from its IHDR chunk (always the first), without the png crate.
fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (bytes.len() >= 24 && bytes.starts_with(PNG_SIGNATURE) && &bytes[12..16] == b"IHDR").then(|| (be32(16), be32(20)))
}

const PNG_SIGNATURE: &[u8] = b"\x89PNG\r\n\x1a\n";

fn cut_off(what: &str, end: &str, len: usize) -> ImageError {
    ImageError::Corrupt(format!(
        "the {what} data ends early (no {end} after {len} bytes): the file was cut off, e.g. by an \
         interrupted download or copy; use the complete file"
    ))
}

/// Refuse a file that was cut off, from its structure, with one wording for every format. The
/// decoders do not all notice: `image` decodes a JPEG cut anywhere in its image data, the
/// missing part grey, and a GIF, PNG or BMP missing only its last bytes. These checks stop at
/// the format's end marker (or stated length), so bytes after it are allowed; what they cannot
/// judge (unknown structures) they leave to the decoder.
fn check_complete(format: ImageFormat, bytes: &[u8]) -> Result<(), ImageError> {
    match format {
        ImageFormat::Jpeg => check_jpeg_complete(bytes),
        ImageFormat::Png => check_png_complete(bytes),
        ImageFormat::Gif => check_gif_complete(bytes),
        ImageFormat::WebP => check_webp_complete(bytes),
        ImageFormat::Bmp => check_bmp_complete(bytes),
        _ => Ok(()),
    }
}

/// Walk a JPEG's marker structure from SOI to EOI: marker segments are skipped by their
/// lengths (so an EXIF thumbnail inside APP1, with its own SOI…EOI, is skipped whole), and
/// after each SOS (progressive files have many) the entropy-coded data is scanned to the next
/// marker, `FF 00` (a stuffed `FF`) and RST0–7 being part of the data. Bytes after the EOI are
/// allowed (cameras append data there).
fn check_jpeg_complete(b: &[u8]) -> Result<(), ImageError> {
    let n = b.len();
    let cut = || cut_off("JPEG", "end-of-image marker", n);
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(corrupt("no JPEG start-of-image marker"));
    }
    let mut i = 2;
    loop {
        // The next marker: FF, optional FF fill bytes, the code. Bytes before it that are not
        // FF are skipped, as libjpeg does ("extraneous bytes before marker").
        while i < n && b[i] != 0xFF {
            i += 1;
        }
        while i < n && b[i] == 0xFF {
            i += 1;
        }
        if i >= n {
            return Err(cut());
        }
        let marker = b[i];
        i += 1;
        match marker {
            0xD9 => return Ok(()),
            // Standalone markers (TEM, RST0–7, SOI) and a stray stuffed zero: no length.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        if i + 2 > n {
            return Err(cut());
        }
        let len = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        if len < 2 {
            return Err(corrupt(format!("invalid JPEG segment length {len} at byte {i}")));
        }
        i += len;
        if i > n {
            return Err(cut());
        }
        if marker == 0xDA {
            // Entropy-coded data up to the next marker that is not FF00 or RSTn.
            loop {
                match b[i..].iter().position(|&x| x == 0xFF) {
                    None => return Err(cut()),
                    Some(p) => i += p,
                }
                match b.get(i + 1) {
                    None => return Err(cut()),
                    Some(0x00 | 0xD0..=0xD7) => i += 2,
                    Some(0xFF) => i += 1,
                    Some(_) => break,
                }
            }
        }
    }
}

/// Walk a PNG's chunks (length, type, data, CRC) to the end of IEND.
fn check_png_complete(b: &[u8]) -> Result<(), ImageError> {
    let n = b.len();
    let mut i = PNG_SIGNATURE.len();
    while i + 12 <= n {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().unwrap()) as usize;
        let end = (i + 12).saturating_add(len);
        if end > n {
            break;
        }
        if &b[i + 4..i + 8] == b"IEND" {
            return Ok(());
        }
        i = end;
    }
    Err(cut_off("PNG", "IEND chunk", n))
}

/// Walk a GIF's blocks (extensions, images with their LZW sub-blocks) to the trailer `3B`.
fn check_gif_complete(b: &[u8]) -> Result<(), ImageError> {
    let n = b.len();
    let cut = || cut_off("GIF", "trailer", n);
    // Header (6) and logical screen descriptor (7), then the global colour table if any.
    let table = |flags: u8| if flags & 0x80 != 0 { 3 << ((flags & 7) + 1) } else { 0 };
    let mut i = 13 + table(*b.get(10).ok_or_else(cut)?);
    // Data sub-blocks: a length byte, that many bytes, … up to a zero length.
    let sub_blocks = |mut i: usize| -> Option<usize> {
        loop {
            let len = *b.get(i)? as usize;
            i += 1 + len;
            if len == 0 {
                return Some(i);
            }
        }
    };
    loop {
        match b.get(i) {
            None => return Err(cut()),
            Some(0x3B) => return Ok(()),
            // Extension: introducer, label, sub-blocks.
            Some(0x21) => i = sub_blocks(i + 2).ok_or_else(cut)?,
            // Image: separator, 9-byte descriptor, local colour table, LZW code size, sub-blocks.
            Some(0x2C) => {
                let flags = *b.get(i + 9).ok_or_else(cut)?;
                i = sub_blocks(i + 10 + table(flags) + 1).ok_or_else(cut)?;
            }
            Some(_) => return Ok(()), // not ours to judge: the decoder reports it
        }
    }
}

/// A WebP's RIFF header states the file's length.
fn check_webp_complete(b: &[u8]) -> Result<(), ImageError> {
    let riff = b.get(4..8).map(|s| u32::from_le_bytes(s.try_into().unwrap()) as usize);
    match riff {
        Some(len) if b.len() >= 8 + len => Ok(()),
        _ => Err(cut_off("WebP", "end of the RIFF chunk it announces", b.len())),
    }
}

/// A BMP's pixel array: rows padded to 4 bytes when uncompressed, or RLE8/RLE4 codes up to the
/// end-of-bitmap code.
fn check_bmp_complete(b: &[u8]) -> Result<(), ImageError> {
    let n = b.len();
    let cut = || cut_off("BMP", "end of the pixel data", n);
    let u16_at = |i: usize| b.get(i..i + 2).map(|s| u16::from_le_bytes(s.try_into().unwrap()) as u64);
    let u32_at = |i: usize| b.get(i..i + 4).map(|s| u32::from_le_bytes(s.try_into().unwrap()) as u64);
    let offset = u32_at(10).ok_or_else(cut)?;
    let header = u32_at(14).ok_or_else(cut)?;
    let (width, height, bpp, compression) = if header == 12 {
        (u16_at(18).ok_or_else(cut)?, u16_at(20).ok_or_else(cut)?, u16_at(24).ok_or_else(cut)?, 0)
    } else {
        let w = u32_at(18).ok_or_else(cut)? as u32 as i32;
        let h = u32_at(22).ok_or_else(cut)? as u32 as i32;
        (w.unsigned_abs() as u64, h.unsigned_abs() as u64, u16_at(28).ok_or_else(cut)?, u32_at(30).ok_or_else(cut)?)
    };
    match compression {
        // BI_RGB, BI_BITFIELDS, BI_ALPHABITFIELDS: rows of width × bpp bits, padded to 32.
        0 | 3 | 6 => {
            // (Saturating: this also runs on headers not yet checked against MAX_PIXELS.)
            let end = offset.saturating_add((width * bpp).div_ceil(32).saturating_mul(4 * height));
            if (n as u64) < end { Err(cut()) } else { Ok(()) }
        }
        // BI_RLE8, BI_RLE4: (count, value) pairs; 0,0 end of line; 0,1 end of bitmap;
        // 0,2,dx,dy delta; 0,k followed by k absolute pixels (padded to 2 bytes).
        1 | 2 => {
            let mut i = offset as usize;
            loop {
                let (count, value) = (*b.get(i).ok_or_else(cut)?, *b.get(i + 1).ok_or_else(cut)? as usize);
                i += 2;
                match (count, value) {
                    (0, 1) => return Ok(()),
                    (0, 2) => i += 2,
                    (0, k) if k >= 3 => i += if compression == 1 { k } else { k.div_ceil(2) }.next_multiple_of(2),
                    _ => {}
                }
            }
        }
        _ => Ok(()), // JPEG or PNG inside a BMP, and unknown codes: the decoder decides
    }
}

/// Pillow's fixed-point precision for 8-bit resampling (`PRECISION_BITS` in Resample.c).
const PRECISION_BITS: u32 = 32 - 8 - 2;

/// Pillow's `clip8`: the accumulator's integer part, clamped to 0..=255.
#[inline]
fn clip8(acc: i32) -> u8 {
    (acc >> PRECISION_BITS).clamp(0, 255) as u8
}

/// One axis of Pillow's bilinear (triangle filter, antialiased) resample of `in_size` samples to
/// `out_size`, for the output positions `first .. first + n` only: Resample.c's
/// `precompute_coeffs` followed by `normalize_coeffs_8bpc`, line by line.
struct Axis {
    /// Per output position: the first input sample and the number of taps.
    bounds: Vec<(u64, usize)>,
    /// `ksize` fixed-point weights per output position (the first `taps` used).
    weights: Vec<i32>,
    ksize: usize,
}

impl Axis {
    fn new(in_size: u64, out_size: u64, first: u64, n: usize) -> Axis {
        // Pillow passes the box (0, 0, width, height) to C as `float`s:
        // scale = (double)(in1 - in0) / outSize.
        let scale = (in_size as f32) as f64 / out_size as f64;
        let filterscale = scale.max(1.0);
        let support = 1.0 * filterscale; // BILINEAR.support
        let ksize = support.ceil() as usize * 2 + 1;
        let inv_filterscale = 1.0 / filterscale;
        let mut bounds = Vec::with_capacity(n);
        let mut weights = vec![0i32; n * ksize];
        let mut k = vec![0f64; ksize];
        for (j, xx) in (first..first + n as u64).enumerate() {
            let center = 0.0 + (xx as f64 + 0.5) * scale;
            // C's (int) truncates toward zero, as `as` does.
            let xmin = ((center - support + 0.5) as i64).max(0);
            let xmax = ((center + support + 0.5) as i64).min(in_size as i64);
            let taps = (xmax - xmin).max(0) as usize;
            let mut ww = 0.0;
            for (x, kx) in k.iter_mut().enumerate().take(taps) {
                let w = bilinear(((x as i64 + xmin) as f64 - center + 0.5) * inv_filterscale);
                *kx = w;
                ww += w;
            }
            if ww != 0.0 {
                for kx in &mut k[..taps] {
                    *kx /= ww;
                }
            }
            for (dst, &kx) in weights[j * ksize..j * ksize + taps].iter_mut().zip(&k) {
                // normalize_coeffs_8bpc: round half away from zero.
                let f = kx * (1u32 << PRECISION_BITS) as f64;
                *dst = if kx < 0.0 { (-0.5 + f) as i32 } else { (0.5 + f) as i32 };
            }
            bounds.push((xmin.min(in_size as i64) as u64, taps));
        }
        Axis { bounds, weights, ksize }
    }

    /// Output position `j`'s first input sample and weights.
    fn taps(&self, j: usize) -> (u64, &[i32]) {
        let (start, taps) = self.bounds[j];
        (start, &self.weights[j * self.ksize..j * self.ksize + taps])
    }

    /// The input samples `[start, end)` that the computed positions read.
    fn span(&self) -> (u64, u64) {
        let first = self.bounds[0].0;
        let end = self.bounds.iter().map(|&(s, t)| s + t as u64).max().unwrap_or(first);
        (first, end.max(first))
    }
}

fn bilinear(x: f64) -> f64 {
    let x = x.abs();
    if x < 1.0 { 1.0 - x } else { 0.0 }
}

/// torchvision's `Resize(shorter)` output size: the shorter side `shorter`, the longer
/// `int(shorter * long / short)` (Python's true division, then truncation).
fn resized_size(width: u32, height: u32, shorter: u32) -> (u64, u64) {
    let (short, long) = if width <= height { (width, height) } else { (height, width) };
    let new_long = ((shorter as u64 * long as u64) as f64 / short as f64) as u64;
    if width <= height { (shorter as u64, new_long) } else { (new_long, shorter as u64) }
}

/// torchvision's `CenterCrop` offset: `int(round((size - crop) / 2.0))`, Python's round
/// being half-to-even.
fn center_offset(size: u64, crop: u32) -> u64 {
    ((size - crop as u64) as f64 / 2.0).round_ties_even() as u64
}

/// RGB rows of a source image, converted on the fly where it is not 8-bit RGB already.
trait Rows {
    fn size(&self) -> (u32, u32);
    /// Calls `f` with the RGB bytes of row `y`, columns `x0 .. x1`.
    fn with_row(&self, y: u32, x0: u32, x1: u32, f: &mut dyn FnMut(&[u8]));
}

impl Rows for RgbImage {
    fn size(&self) -> (u32, u32) {
        self.dimensions()
    }
    fn with_row(&self, y: u32, x0: u32, x1: u32, f: &mut dyn FnMut(&[u8])) {
        let row = y as usize * self.width() as usize * 3;
        f(&self.as_raw()[row + x0 as usize * 3..row + x1 as usize * 3]);
    }
}

impl Rows for DynamicImage {
    fn size(&self) -> (u32, u32) {
        (self.width(), self.height())
    }
    fn with_row(&self, y: u32, x0: u32, x1: u32, f: &mut dyn FnMut(&[u8])) {
        match self.as_rgb8() {
            Some(rgb) => rgb.with_row(y, x0, x1, f),
            // Exactly `to_rgb8`'s conversion, one row segment at a time.
            None => f(self.crop_imm(x0, y, x1 - x0, 1).to_rgb8().as_raw()),
        }
    }
}

/// Pillow's `ImagingResample` (bilinear) to torchvision's `Resize(shorter)` size, then
/// `CenterCrop(crop)`, computing only the crop: Pillow's horizontal pass (into 8-bit) for the
/// source rows the crop's rows need, restricted to the crop's columns, then its vertical pass
/// for the crop's rows. Each output pixel depends only on its own coordinates, so this is
/// bit-identical to resizing the whole image and cropping, without the resized image.
fn resize_crop_rows(src: &dyn Rows, shorter: u32, crop: u32) -> RgbImage {
    let (w, h) = src.size();
    assert!(w > 0 && h > 0, "cannot resize an empty {w}×{h} image");
    assert!(crop > 0 && crop <= shorter, "the crop ({crop}) must be within the resized shorter side ({shorter})");
    let (nw, nh) = resized_size(w, h, shorter);
    let (left, top) = (center_offset(nw, crop), center_offset(nh, crop));
    let c = crop as usize;
    let row_bytes = c * 3;
    // Pillow's need_horizontal / need_vertical: a pass runs only when that side changes.
    let horizontal = (nw != w as u64).then(|| Axis::new(w as u64, nw, left, c));
    let vertical = (nh != h as u64).then(|| Axis::new(h as u64, nh, top, c));
    let (x0, x1) = horizontal.as_ref().map_or((left, left + crop as u64), Axis::span);
    let (y0, y1) = vertical.as_ref().map_or((top, top + crop as u64), Axis::span);

    // Horizontal pass: the crop's columns of source rows y0..y1, 8-bit as in Pillow.
    let mut band = vec![0u8; (y1 - y0) as usize * row_bytes];
    for (out, y) in band.chunks_exact_mut(row_bytes).zip(y0..y1) {
        src.with_row(y as u32, x0 as u32, x1 as u32, &mut |row: &[u8]| match &horizontal {
            None => out.copy_from_slice(&row[..row_bytes]),
            Some(axis) => {
                for (i, px) in out.chunks_exact_mut(3).enumerate() {
                    let (start, k) = axis.taps(i);
                    let from = (start - x0) as usize * 3;
                    let mut acc = [1i32 << (PRECISION_BITS - 1); 3];
                    for (t, &kt) in k.iter().enumerate() {
                        let s = &row[from + t * 3..from + t * 3 + 3];
                        acc[0] += s[0] as i32 * kt;
                        acc[1] += s[1] as i32 * kt;
                        acc[2] += s[2] as i32 * kt;
                    }
                    px.copy_from_slice(&acc.map(clip8));
                }
            }
        });
    }

    // Vertical pass over the band.
    let pixels = match &vertical {
        None => band,
        Some(axis) => {
            let mut out = vec![0u8; c * row_bytes];
            let mut acc = vec![0i32; row_bytes];
            for (j, out_row) in out.chunks_exact_mut(row_bytes).enumerate() {
                let (start, k) = axis.taps(j);
                acc.fill(1 << (PRECISION_BITS - 1));
                for (t, &kt) in k.iter().enumerate() {
                    let r = (start - y0) as usize + t;
                    for (a, &s) in acc.iter_mut().zip(&band[r * row_bytes..(r + 1) * row_bytes]) {
                        *a += s as i32 * kt;
                    }
                }
                for (o, &a) in out_row.iter_mut().zip(&acc) {
                    *o = clip8(a);
                }
            }
            out
        }
    };
    RgbImage::from_raw(crop, crop, pixels).expect("crop × crop RGB")
}

/// torchvision's `Resize(shorter)` + `CenterCrop(crop)` on a PIL image, bit-exact: the shorter
/// side scaled to `shorter` (the longer to `int(shorter * long / short)`) with Pillow's
/// antialiased bilinear resampler (fixed-point, 8-bit between the horizontal and vertical
/// passes), then the centre `crop`×`crop` at `int(round((size - crop) / 2))`.
///
/// Only the crop is computed (see [`resize_crop_rows`]): time O(crop² × taps) and memory
/// O(crop × source span) for any aspect ratio; a 40000×1 strip, whose resized form would be
/// 10240000×256, costs no more than a photo.
///
/// # Panics
/// If the image is empty, or `crop` is 0 or larger than `shorter`.
pub fn resize_shorter_and_center_crop(img: &RgbImage, shorter: u32, crop: u32) -> RgbImage {
    resize_crop_rows(img, shorter, crop)
}

/// [`resize_shorter_and_center_crop`] of any decoded image, converting to 8-bit RGB (as
/// `to_rgb8` does) only the rows and columns the crop reads.
pub fn resize_shorter_and_center_crop_dynamic(img: &DynamicImage, shorter: u32, crop: u32) -> RgbImage {
    resize_crop_rows(img, shorter, crop)
}

/// Resize the shorter side to 256 and take the centre 224×224, exactly as torchvision's
/// `Resize(256)` + `CenterCrop(224)` on a PIL image (see [`resize_shorter_and_center_crop`]).
pub fn resize_crop(img: &DynamicImage) -> RgbImage {
    resize_shorter_and_center_crop_dynamic(img, RESIZE_TO, INPUT_SIZE as u32)
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

/// Whether [`decode`] reads this format (told by its magic number). The page hands other
/// formats (AVIF, ICO, HEIC where the browser has it, …) to the browser's own decoders and
/// passes the pixels to [`prepare_rgba`].
pub fn known_format(bytes: &[u8]) -> bool {
    use image::ImageFormat as F;
    image::guess_format(bytes).is_ok_and(|f| matches!(f, F::Jpeg | F::Png | F::Gif | F::WebP | F::Bmp))
}

/// Pixels decoded elsewhere (the browser's decoders: RGBA, EXIF orientation applied) → the
/// network's input, through the same resize and normalisation as [`prepare`]. The size is
/// checked before the pixels are looked at.
pub fn prepare_rgba(rgba: Vec<u8>, width: u32, height: u32, variant: Variant) -> Result<Prepared, ImageError> {
    Ok(finish(from_rgba(rgba, width, height)?, variant))
}

/// RGBA pixels decoded elsewhere as an image, after checking the size and the buffer.
pub fn from_rgba(rgba: Vec<u8>, width: u32, height: u32) -> Result<DynamicImage, ImageError> {
    check_size(width, height)?;
    let len = rgba.len();
    let img = image::RgbaImage::from_raw(width, height, rgba)
        .ok_or_else(|| corrupt(format!("{len} bytes of pixels for a {width}×{height} RGBA image")))?;
    Ok(DynamicImage::ImageRgba8(img))
}

/// Bytes of an image file → the network's input for `variant`.
pub fn prepare(bytes: &[u8], variant: Variant) -> Result<Prepared, ImageError> {
    Ok(finish(decode(bytes)?, variant))
}

fn finish(img: DynamicImage, variant: Variant) -> Prepared {
    let original = (img.width(), img.height());
    let crop = resize_crop(&img);
    let chw = normalize(&crop, variant);
    Prepared { chw, crop, original }
}
