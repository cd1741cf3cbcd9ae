//! Image → input tensor, the only copy (the CLI and the page both call it): decode (JPEG,
//! PNG, GIF, WebP, BMP; EXIF orientation applied; cut-off files, unsupported formats and
//! decompression bombs refused), resize the shorter side to 256 and centre-crop 224 exactly as
//! Pillow does it for torchvision's evaluation transform, normalise per variant.
//!
//! # Memory and work per image
//!
//! Decoding ([`decode`]) holds, besides the file's bytes (at most [`MAX_FILE_BYTES`] where the
//! CLI reads them; a PNG with colour-profile or text chunks is copied once without them, and
//! the `image` crate copies a JPEG's bytes once more when it is the decoder):
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
//!   than the baseline one). libjpeg-turbo-rs's own estimate, from the header, is held to
//!   [`JPEG_DECODE_BYTES`] (20 bytes a pixel at 40 megapixels, above its largest estimate for any
//!   JPEG within [`MAX_PIXELS`]).
//! - nothing for a PNG's `iCCP`, `zTXt`, `iTXt` and `tEXt` chunks: they are dropped before the
//!   decoder sees the file (the compressed ones could inflate a thousandfold).
//! - during a 90° or 270° EXIF rotation, a second, rotated copy of the decoded image.
//!
//! The work is bounded too: a JPEG may have at most [`MAX_JPEG_SCANS`] scans, which together
//! may decode each 8×8 block at most [`MAX_JPEG_PASSES`] times, both counted from its markers
//! before decoding ([`ImageError::TooManyScans`], [`ImageError::ScanWork`]); every other
//! format's decoders do work proportional to the pixels and the file.
//!
//! Resizing ([`resize_shorter_and_center_crop`], [`resize_crop`]) never materialises the
//! resized image: it computes only the crop's pixels, reading only the source rows and columns
//! they depend on. Beyond the decoded image it holds O(crop × source span) bytes: one band of
//! `crop` columns × `s·crop + 2·max(s, 1) + 2` source rows at 3 bytes a pixel (the horizontally
//! resampled rows), where `s` = (shorter source side) / `shorter`, plus the output crop. Under
//! [`MAX_PIXELS`] that band is at most about 4 MB for a 224 crop from 256 (5 MB for 256 from
//! 256), whatever the aspect ratio: a 40000×1 panorama costs as little as a square photo.
//!
//! So one image costs at most: its file (twice for a JPEG or a PNG with dropped chunks) + 160 MB
//! of pixels (twice during a 90° rotation) + a progressive JPEG's coefficients (up to 240 MB
//! more) + about 5 MB.

use std::borrow::Cow;
use std::io::Cursor;

use image::{DynamicImage, ImageDecoder, ImageFormat, ImageReader, RgbImage};

use crate::model::Variant;
use crate::text::thousands;

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
/// Largest image file read (the CLI checks it before reading; see `files`): an uncompressed
/// 40-megapixel BMP at 32 bits a pixel is 160 MB, and any real photo is far smaller.
pub const MAX_FILE_BYTES: u64 = 200_000_000;
/// Most scans a JPEG may have: libjpeg-turbo's own "unreasonably large number of scans"
/// (`tjbench -limitscans`). Ordinary progressive files have about 10; each scan is a pass of
/// the decoder over the blocks of its components, so thousands of them cost seconds however
/// small the file.
pub const MAX_JPEG_SCANS: usize = 500;
/// The decoding work a JPEG may ask for, proportional to its pixels: its scans together may
/// decode each 8×8 block of the image at most this many times. An ordinary progressive file
/// does about 5 (libjpeg's default script: 5.3 for 4:2:0, 4.7 for 4:4:4); a baseline one, 1.
pub const MAX_JPEG_PASSES: u64 = 100;
/// The ceiling on libjpeg-turbo-rs's own estimate of a decode's memory (its `max_memory`),
/// which it computes from the header before allocating: per pixel, the RGB output (3 bytes),
/// one plane per component (up to 4), an upsampled plane per subsampled component (up to 4)
/// and, progressive, 2 bytes of coefficient per component (up to 8) plus a byte per block: at
/// most 19.1 bytes a pixel (14.05 for an ordinary progressive 4:2:0 photo), so every image
/// within [`MAX_PIXELS`] passes, and the estimate (an over-estimate: a progressive 4:4:4
/// 36-megapixel file measured 210 MB above a baseline one) stays within 800 MB.
pub const JPEG_DECODE_BYTES: u64 = MAX_PIXELS * 20;

#[derive(Debug, thiserror::Error)]
pub enum ImageError {
    #[error("the image is empty (0 bytes)")]
    Empty,
    #[error("not an image this app can read (expected JPEG, PNG, GIF, WebP or BMP)")]
    UnknownFormat,
    /// A valid file of a kind the app does not decode (TIFF, AVIF, HEIC, …): not damage.
    #[error(
        "unsupported image format: {0} (this app reads JPEG, PNG, GIF, WebP and BMP; convert it to one of those)"
    )]
    Unsupported(String),
    #[error("{}", too_large_message(*width, *height))]
    TooLarge { width: u32, height: u32 },
    #[error("the image has zero width or height")]
    ZeroSize,
    #[error(
        "the JPEG has {} scans; the limit is {MAX_JPEG_SCANS} (an ordinary progressive JPEG has about 10): \
         re-save it as an ordinary JPEG or a PNG",
        thousands(*scans as u64)
    )]
    TooManyScans { scans: usize },
    #[error("{}", scan_work_message(*visits, *blocks))]
    ScanWork { visits: u64, blocks: u64 },
    #[error("the image file is damaged or truncated: {0}")]
    Corrupt(String),
}

fn too_large_message(width: u32, height: u32) -> String {
    let pixels = width as u64 * height as u64;
    // Exact counts: "40.0 megapixels; the limit is 40" explains nothing when one pixel over.
    if pixels > MAX_PIXELS {
        format!(
            "the image is {width}×{height} = {} pixels; the limit is {} pixels",
            thousands(pixels),
            thousands(MAX_PIXELS)
        )
    } else {
        // Within the pixel limit, but its decoded form is larger than the memory budget
        // (16 bits per channel).
        format!(
            "the image is {width}×{height} = {} pixels at more than 8 bits per channel, which needs more than \
             {} bytes to decode; the limit is {} bytes ({} pixels at 8 bits per channel)",
            thousands(pixels),
            thousands(MAX_DECODED_BYTES),
            thousands(MAX_DECODED_BYTES),
            thousands(MAX_PIXELS)
        )
    }
}

fn scan_work_message(visits: u64, blocks: u64) -> String {
    format!(
        "the JPEG's scans decode its {} blocks {} times in all, {:.1} times each; the limit is {MAX_JPEG_PASSES} \
         times each (an ordinary progressive JPEG: about 5): re-save it as an ordinary JPEG or a PNG",
        thousands(blocks),
        thousands(visits),
        visits as f64 / blocks.max(1) as f64
    )
}

/// A PNG chunk the app skips before decoding: colour profiles and text, which it never uses,
/// and of which `iCCP`, `zTXt` and `iTXt` are deflate-compressed: a 1 MB chunk of zeros would
/// inflate to 1 GB. Pixels are decoded as Pillow decodes them for torchvision, without colour
/// management, so no pixel changes.
const SKIPPED_PNG_CHUNKS: [&[u8; 4]; 4] = [b"iCCP", b"zTXt", b"iTXt", b"tEXt"];

/// A PNG without its [skipped chunks](SKIPPED_PNG_CHUNKS); the bytes themselves when it has
/// none. What cannot be walked (a length past the end) is left as it is, for the decoder and
/// the cut-off check to judge.
fn without_skipped_png_chunks(b: &[u8]) -> Cow<'_, [u8]> {
    let mut kept: Vec<std::ops::Range<usize>> = Vec::new();
    let (mut i, mut from) = (PNG_SIGNATURE.len(), 0);
    while i + 12 <= b.len() {
        let len = u32::from_be_bytes(b[i..i + 4].try_into().expect("4 bytes")) as usize;
        let Some(end) = (i + 12).checked_add(len).filter(|&e| e <= b.len()) else {
            break;
        };
        let kind = &b[i + 4..i + 8];
        if SKIPPED_PNG_CHUNKS.iter().any(|k| k.as_slice() == kind) {
            kept.push(from..i);
            from = end;
        }
        if kind == b"IEND" {
            break;
        }
        i = end;
    }
    if kept.is_empty() {
        return Cow::Borrowed(b);
    }
    kept.push(from..b.len());
    Cow::Owned(
        kept.into_iter()
            .flat_map(|r| b[r].iter().copied())
            .collect(),
    )
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
/// the size is known, whatever the target's pointer width; a format it was built without is
/// [`ImageError::Unsupported`]; anything else is damage.
fn from_image_error(e: image::ImageError, size: Option<(u32, u32)>) -> ImageError {
    match (&e, size) {
        (image::ImageError::Limits(_), Some((width, height))) => {
            ImageError::TooLarge { width, height }
        }
        (image::ImageError::Unsupported(u), _) => ImageError::Unsupported(u.to_string()),
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

/// What a file's first bytes say it is: one of the formats [`decode`] reads, or why not
/// ([`ImageError::UnknownFormat`], or [`ImageError::Unsupported`] for an image format the app
/// does not read). 16 bytes are enough; the CLI calls this on a file's first bytes before
/// reading the rest.
pub fn sniff(head: &[u8]) -> Result<ImageFormat, ImageError> {
    use image::ImageFormat as F;
    if head.is_empty() {
        return Err(ImageError::Empty);
    }
    match image::guess_format(head) {
        Ok(f @ (F::Jpeg | F::Png | F::Gif | F::WebP | F::Bmp)) => Ok(f),
        Ok(other) => Err(ImageError::Unsupported(format_name(other))),
        // HEIC/HEIF (iPhone photos): an ISO-BMFF `ftyp` box with a HEIF brand.
        Err(_)
            if head.get(4..8) == Some(b"ftyp")
                && head.get(8..12).is_some_and(|b| HEIF_BRANDS.contains(&b)) =>
        {
            Err(ImageError::Unsupported("HEIC/HEIF".into()))
        }
        Err(_) => Err(ImageError::UnknownFormat),
    }
}

const HEIF_BRANDS: [&[u8]; 6] = [b"heic", b"heix", b"heim", b"heis", b"mif1", b"msf1"];

fn format_name(f: ImageFormat) -> String {
    use image::ImageFormat as F;
    match f {
        F::Tiff => "TIFF".into(),
        F::Avif => "AVIF".into(),
        F::Ico => "ICO".into(),
        F::Tga => "TGA".into(),
        F::Dds => "DDS".into(),
        F::Hdr => "Radiance HDR".into(),
        F::OpenExr => "OpenEXR".into(),
        F::Pnm => "PNM".into(),
        F::Qoi => "QOI".into(),
        F::Farbfeld => "farbfeld".into(),
        other => format!("{other:?}"),
    }
}

/// Decode an image, refusing non-images, unsupported formats, cut-off files and decompression
/// bombs (pixels, compressed PNG chunks, JPEG scans) with clear errors, before the decoder
/// allocates for them. Memory: see the [module documentation](self).
pub fn decode(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let format = sniff(bytes)?;
    match format {
        ImageFormat::Jpeg => decode_jpeg(bytes),
        ImageFormat::Png => decode_with_image(format, &without_skipped_png_chunks(bytes)),
        _ => decode_with_image(format, bytes),
    }
}

/// JPEG: the marker structure is walked first ([`jpeg_structure`]: size, cut-off, scan count
/// and work), then libjpeg-turbo's own algorithms decode it (ISLOW IDCT, fancy upsampling,
/// its colour tables), as Pillow decodes, so the pixels equal torchvision's on PIL images
/// exactly; `image`'s zune-jpeg differs by up to 4 grey levels on 4:2:0 photos. What it cannot
/// decode falls back to `image`'s decoder, except the codings zune-jpeg lacks (arithmetic,
/// lossless, 12-bit), where libjpeg-turbo's verdict stands.
fn decode_jpeg(bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let s = jpeg_structure(bytes)?;
    let limits = libjpeg_turbo_rs::DecodeLimits {
        max_pixels: MAX_PIXELS,
        max_scans: MAX_JPEG_SCANS,
        max_memory: Some(JPEG_DECODE_BYTES),
        ..Default::default()
    };
    let turbo = libjpeg_turbo_rs::Decoder::new_with_limits(bytes, limits).and_then(|mut d| {
        d.set_output_format(libjpeg_turbo_rs::PixelFormat::Rgb);
        let orientation = d.exif_orientation();
        d.decode_image().map(|img| (img, orientation))
    });
    let (img, orientation) = match turbo {
        Ok(done) => done,
        Err(libjpeg_turbo_rs::JpegError::LimitExceeded { .. }) => {
            return Err(ImageError::TooLarge {
                width: s.width,
                height: s.height,
            });
        }
        Err(e) if s.beyond_zune => return Err(corrupt(e)),
        Err(_) => return decode_with_image(ImageFormat::Jpeg, bytes),
    };
    let Some(rgb) = RgbImage::from_raw(img.width as u32, img.height as u32, img.data)
        .filter(|r| r.dimensions() == (s.width, s.height))
    else {
        return decode_with_image(ImageFormat::Jpeg, bytes);
    };
    let mut img = DynamicImage::ImageRgb8(rgb);
    if let Some(o) = orientation.and_then(image::metadata::Orientation::from_exif) {
        img.apply_orientation(o);
    }
    Ok(img)
}

/// Every other format (and a JPEG libjpeg-turbo could not decode) through `image`, with its
/// allocation limit set to the budget.
fn decode_with_image(format: ImageFormat, bytes: &[u8]) -> Result<DynamicImage, ImageError> {
    let reader = |limits: Option<image::Limits>| -> ImageReader<Cursor<&[u8]>> {
        let mut r = ImageReader::with_format(Cursor::new(bytes), format);
        match limits {
            Some(l) => r.limits(l),
            None => r.no_limits(),
        }
        r
    };
    // Header first: the size is known before a single pixel is decoded. A PNG's size is read
    // from its IHDR directly, because the png crate refuses, on 32-bit targets (the page), to
    // even open a PNG whose pixels would not fit the address space ("Memory limit exceeded").
    let png_size = if format == ImageFormat::Png {
        png_header_size(bytes)
    } else {
        None
    };
    if let Some((width, height)) = png_size {
        check_size(width, height)?;
    }
    // The probe runs without allocation limits: it allocates nothing for pixels (the PNG
    // chunks that would inflate are skipped before this), and the default limit's arithmetic
    // would otherwise decide what a header may claim.
    let (width, height) = reader(None).into_dimensions().map_err(|e| {
        // A header cut short is reported as such.
        check_complete(format, bytes)
            .err()
            .unwrap_or_else(|| from_image_error(e, png_size))
    })?;
    check_size(width, height)?;
    check_complete(format, bytes)?;

    let mut limits = image::Limits::default();
    limits.max_image_width = Some(width);
    limits.max_image_height = Some(height);
    limits.max_alloc = Some(MAX_DECODED_BYTES);
    let size = Some((width, height));
    let mut decoder = reader(Some(limits))
        .into_decoder()
        .map_err(|e| from_image_error(e, size))?;
    if decoder.total_bytes() > MAX_DECODED_BYTES {
        return Err(ImageError::TooLarge { width, height });
    }
    let orientation = decoder
        .orientation()
        .unwrap_or(image::metadata::Orientation::NoTransforms);
    let mut img = DynamicImage::from_decoder(decoder).map_err(|e| from_image_error(e, size))?;
    img.apply_orientation(orientation);
    Ok(img)
}

/// A PNG's size from its IHDR chunk (always the first), without the png crate.
fn png_header_size(bytes: &[u8]) -> Option<(u32, u32)> {
    let be32 = |i: usize| u32::from_be_bytes(bytes[i..i + 4].try_into().unwrap());
    (bytes.len() >= 24 && bytes.starts_with(PNG_SIGNATURE) && &bytes[12..16] == b"IHDR")
        .then(|| (be32(16), be32(20)))
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
        ImageFormat::Jpeg => jpeg_structure(bytes).map(|_| ()),
        ImageFormat::Png => check_png_complete(bytes),
        ImageFormat::Gif => check_gif_complete(bytes),
        ImageFormat::WebP => check_webp_complete(bytes),
        ImageFormat::Bmp => check_bmp_complete(bytes),
        _ => Ok(()),
    }
}

/// What [`jpeg_structure`] learns from a JPEG's markers.
#[derive(Debug, Clone, Copy)]
struct JpegStructure {
    width: u32,
    height: u32,
    /// Arithmetic-coded, lossless or 12/16-bit: codings libjpeg-turbo decodes and zune-jpeg
    /// does not, so there is no fallback for them.
    beyond_zune: bool,
}

/// One component of a JPEG frame: its id and its 8×8 block count.
#[derive(Debug, Clone, Copy)]
struct JpegComponent {
    id: u8,
    blocks: u64,
}

/// Walk a JPEG's marker structure from SOI to EOI: marker segments are skipped by their
/// lengths (so an EXIF thumbnail inside APP1, with its own SOI…EOI, is skipped whole), and
/// after each SOS (progressive files have many) the entropy-coded data is scanned to the next
/// marker, `FF 00` (a stuffed `FF`) and RST0–7 being part of the data. Bytes after the EOI are
/// allowed (cameras append data there).
///
/// On the way it reads the frame header (SOFn: the size, refused at once when too large, and
/// each component's block count) and counts the scans and the blocks each decodes, so that a
/// scan bomb ([`MAX_JPEG_SCANS`], [`MAX_JPEG_PASSES`]) is refused before a decoder starts:
/// the walk itself costs one read of the bytes, whatever they claim.
fn jpeg_structure(b: &[u8]) -> Result<JpegStructure, ImageError> {
    let n = b.len();
    let cut = || cut_off("JPEG", "end-of-image marker", n);
    if !b.starts_with(&[0xFF, 0xD8]) {
        return Err(corrupt("no JPEG start-of-image marker"));
    }
    let mut frame: Option<(JpegStructure, Vec<JpegComponent>)> = None;
    let (mut scans, mut visits) = (0usize, 0u64);
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
            0xD9 => break,
            // Standalone markers (TEM, RST0–7, SOI) and a stray stuffed zero: no length.
            0x00 | 0x01 | 0xD0..=0xD8 => continue,
            _ => {}
        }
        if i + 2 > n {
            return Err(cut());
        }
        let len = u16::from_be_bytes([b[i], b[i + 1]]) as usize;
        if len < 2 {
            return Err(corrupt(format!(
                "invalid JPEG segment length {len} at byte {i}"
            )));
        }
        let segment = b.get(i + 2..i + len);
        i += len;
        if i > n {
            return Err(cut());
        }
        let segment = segment.expect("within the file");
        match marker {
            // SOF0–3, 5–7, 9–11, 13–15 (C4 is DHT, C8 JPG, CC DAC). The first frame counts.
            0xC0..=0xCF if !matches!(marker, 0xC4 | 0xC8 | 0xCC) && frame.is_none() => {
                let f = jpeg_frame(marker, segment)?;
                check_size(f.0.width, f.0.height)?;
                frame = Some(f);
            }
            0xDA => {
                scans += 1;
                // Each scan decodes every block of the components it names.
                if let (Some((_, components)), Some(&ns)) = (&frame, segment.first()) {
                    let ids = segment.iter().skip(1).step_by(2).take(ns as usize);
                    visits += ids
                        .filter_map(|id| components.iter().find(|c| c.id == *id))
                        .map(|c| c.blocks)
                        .sum::<u64>();
                }
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
            _ => {}
        }
    }
    if scans > MAX_JPEG_SCANS {
        return Err(ImageError::TooManyScans { scans });
    }
    let Some((structure, components)) = frame else {
        return Err(corrupt("the JPEG has no frame header (SOF marker)"));
    };
    let blocks: u64 = components.iter().map(|c| c.blocks).sum();
    if visits > MAX_JPEG_PASSES * blocks {
        return Err(ImageError::ScanWork { visits, blocks });
    }
    Ok(structure)
}

/// A frame header (SOFn): precision, height, width, then per component its id, sampling
/// factors (4 bits each) and quantisation table.
fn jpeg_frame(marker: u8, seg: &[u8]) -> Result<(JpegStructure, Vec<JpegComponent>), ImageError> {
    let bad = || {
        corrupt(format!(
            "the JPEG frame header (SOF{}) is malformed",
            marker - 0xC0
        ))
    };
    let (&precision, rest) = seg.split_first().ok_or_else(bad)?;
    let (height, width) = match rest {
        [h0, h1, w0, w1, ..] => (
            u16::from_be_bytes([*h0, *h1]) as u32,
            u16::from_be_bytes([*w0, *w1]) as u32,
        ),
        _ => return Err(bad()),
    };
    let nf = *seg.get(5).ok_or_else(bad)? as usize;
    let specs = seg.get(6..6 + 3 * nf).ok_or_else(bad)?;
    let sampling: Vec<(u8, u64, u64)> = specs
        .chunks_exact(3)
        .map(|c| (c[0], (c[1] >> 4).max(1) as u64, (c[1] & 15).max(1) as u64))
        .collect();
    let (hmax, vmax) = sampling
        .iter()
        .fold((1, 1), |(h, v), &(_, hc, vc)| (hc.max(h), vc.max(v)));
    // A component's size is ceil(X · H / Hmax) × ceil(Y · V / Vmax), in blocks of 8 (T.81 A.1.1).
    let components = sampling
        .iter()
        .map(|&(id, h, v)| {
            let (cw, ch) = (
                (width as u64 * h).div_ceil(hmax),
                (height as u64 * v).div_ceil(vmax),
            );
            JpegComponent {
                id,
                blocks: cw.div_ceil(8) * ch.div_ceil(8),
            }
        })
        .collect();
    let beyond_zune = matches!(marker, 0xC3 | 0xC7 | 0xC9..=0xCB | 0xCD..=0xCF) || precision != 8;
    Ok((
        JpegStructure {
            width,
            height,
            beyond_zune,
        },
        components,
    ))
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
    let table = |flags: u8| {
        if flags & 0x80 != 0 {
            3 << ((flags & 7) + 1)
        } else {
            0
        }
    };
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
    let riff = b
        .get(4..8)
        .map(|s| u32::from_le_bytes(s.try_into().unwrap()) as usize);
    match riff {
        Some(len) if b.len() >= 8 + len => Ok(()),
        _ => Err(cut_off(
            "WebP",
            "end of the RIFF chunk it announces",
            b.len(),
        )),
    }
}

/// A BMP's pixel array: rows padded to 4 bytes when uncompressed, or RLE8/RLE4 codes up to the
/// end-of-bitmap code.
fn check_bmp_complete(b: &[u8]) -> Result<(), ImageError> {
    let n = b.len();
    let cut = || cut_off("BMP", "end of the pixel data", n);
    let u16_at = |i: usize| {
        b.get(i..i + 2)
            .map(|s| u16::from_le_bytes(s.try_into().unwrap()) as u64)
    };
    let u32_at = |i: usize| {
        b.get(i..i + 4)
            .map(|s| u32::from_le_bytes(s.try_into().unwrap()) as u64)
    };
    let offset = u32_at(10).ok_or_else(cut)?;
    let header = u32_at(14).ok_or_else(cut)?;
    let (width, height, bpp, compression) = if header == 12 {
        (
            u16_at(18).ok_or_else(cut)?,
            u16_at(20).ok_or_else(cut)?,
            u16_at(24).ok_or_else(cut)?,
            0,
        )
    } else {
        let w = u32_at(18).ok_or_else(cut)? as u32 as i32;
        let h = u32_at(22).ok_or_else(cut)? as u32 as i32;
        (
            w.unsigned_abs() as u64,
            h.unsigned_abs() as u64,
            u16_at(28).ok_or_else(cut)?,
            u32_at(30).ok_or_else(cut)?,
        )
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
                let (count, value) = (
                    *b.get(i).ok_or_else(cut)?,
                    *b.get(i + 1).ok_or_else(cut)? as usize,
                );
                i += 2;
                match (count, value) {
                    (0, 1) => return Ok(()),
                    (0, 2) => i += 2,
                    (0, k) if k >= 3 => {
                        i += if compression == 1 { k } else { k.div_ceil(2) }.next_multiple_of(2)
                    }
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
                *dst = if kx < 0.0 {
                    (-0.5 + f) as i32
                } else {
                    (0.5 + f) as i32
                };
            }
            bounds.push((xmin.min(in_size as i64) as u64, taps));
        }
        Axis {
            bounds,
            weights,
            ksize,
        }
    }

    /// Output position `j`'s first input sample and weights.
    fn taps(&self, j: usize) -> (u64, &[i32]) {
        let (start, taps) = self.bounds[j];
        (start, &self.weights[j * self.ksize..j * self.ksize + taps])
    }

    /// The input samples `[start, end)` that the computed positions read.
    fn span(&self) -> (u64, u64) {
        let first = self.bounds[0].0;
        let end = self
            .bounds
            .iter()
            .map(|&(s, t)| s + t as u64)
            .max()
            .unwrap_or(first);
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
    let (short, long) = if width <= height {
        (width, height)
    } else {
        (height, width)
    };
    let new_long = ((shorter as u64 * long as u64) as f64 / short as f64) as u64;
    if width <= height {
        (shorter as u64, new_long)
    } else {
        (new_long, shorter as u64)
    }
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
    assert!(
        crop > 0 && crop <= shorter,
        "the crop ({crop}) must be within the resized shorter side ({shorter})"
    );
    let (nw, nh) = resized_size(w, h, shorter);
    let (left, top) = (center_offset(nw, crop), center_offset(nh, crop));
    let c = crop as usize;
    let row_bytes = c * 3;
    // Pillow's need_horizontal / need_vertical: a pass runs only when that side changes.
    let horizontal = (nw != w as u64).then(|| Axis::new(w as u64, nw, left, c));
    let vertical = (nh != h as u64).then(|| Axis::new(h as u64, nh, top, c));
    let (x0, x1) = horizontal
        .as_ref()
        .map_or((left, left + crop as u64), Axis::span);
    let (y0, y1) = vertical
        .as_ref()
        .map_or((top, top + crop as u64), Axis::span);

    // Horizontal pass: the crop's columns of source rows y0..y1, 8-bit as in Pillow.
    let mut band = vec![0u8; (y1 - y0) as usize * row_bytes];
    for (out, y) in band.chunks_exact_mut(row_bytes).zip(y0..y1) {
        src.with_row(
            y as u32,
            x0 as u32,
            x1 as u32,
            &mut |row: &[u8]| match &horizontal {
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
            },
        );
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
                    for (a, &s) in acc
                        .iter_mut()
                        .zip(&band[r * row_bytes..(r + 1) * row_bytes])
                    {
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
pub fn resize_shorter_and_center_crop_dynamic(
    img: &DynamicImage,
    shorter: u32,
    crop: u32,
) -> RgbImage {
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
        Variant::Bvlc => [
            (2, 1.0, 104.0, 1.0),
            (1, 1.0, 117.0, 1.0),
            (0, 1.0, 123.0, 1.0),
        ],
        // torchvision: RGB in 0..1, ImageNet mean and std.
        Variant::Torchvision => [
            (0, 1.0 / 255.0, 0.485, 0.229),
            (1, 1.0 / 255.0, 0.456, 0.224),
            (2, 1.0 / 255.0, 0.406, 0.225),
        ],
        // The seed tutorial: RGB in 0..1, mean 0.5, std 0.5.
        Variant::Seed => [
            (0, 1.0 / 255.0, 0.5, 0.5),
            (1, 1.0 / 255.0, 0.5, 0.5),
            (2, 1.0 / 255.0, 0.5, 0.5),
        ],
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
    image::guess_format(bytes)
        .is_ok_and(|f| matches!(f, F::Jpeg | F::Png | F::Gif | F::WebP | F::Bmp))
}

/// Pixels decoded elsewhere (the browser's decoders: RGBA, EXIF orientation applied) → the
/// network's input, through the same resize and normalisation as [`prepare`]. The size is
/// checked before the pixels are looked at.
pub fn prepare_rgba(
    rgba: Vec<u8>,
    width: u32,
    height: u32,
    variant: Variant,
) -> Result<Prepared, ImageError> {
    Ok(finish(from_rgba(rgba, width, height)?, variant))
}

/// RGBA pixels decoded elsewhere as an image, after checking the size and the buffer.
pub fn from_rgba(rgba: Vec<u8>, width: u32, height: u32) -> Result<DynamicImage, ImageError> {
    check_size(width, height)?;
    let len = rgba.len();
    let img = image::RgbaImage::from_raw(width, height, rgba).ok_or_else(|| {
        corrupt(format!(
            "{len} bytes of pixels for a {width}×{height} RGBA image"
        ))
    })?;
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
    Prepared {
        chw,
        crop,
        original,
    }
}
