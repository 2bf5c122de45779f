//! Image resize for downloads with `?width=&height=` (SPEC.md §10.1): JPEG and PNG are decoded,
//! resized (Lanczos3; a 0 dimension keeps the aspect ratio) and re-encoded in the source format.
//! Limits: sizes are clamped to image_max_width/height, negative or absurd sizes are 400, the
//! decoded pixel count is checked from the headers before decoding (decompression bombs get
//! 413), sources over `SOURCE_BYTES_MAX` are refused. Other formats (GIF, WebP, BMP, non-images)
//! are served unchanged, never as an empty 200 (§15 item 32). The work runs on the blocking
//! pool, at most `RESIZES_IN_FLIGHT` per executor; results are cached under `files/_cache/`.

use zune_core::bytestream::ZCursor;
use zune_core::options::DecoderOptions;
use zune_image::codecs::ImageFormat;
use zune_image::traits::OperationsTrait;

/// Largest width or height accepted in a request (beyond: 400).
pub const DIMENSION_MAX: i64 = 100_000;
/// Largest decoded image (width x height) accepted.
pub const PIXELS_MAX: usize = 40_000_000;
/// Largest source file resized.
pub const SOURCE_BYTES_MAX: u64 = 64 << 20;
/// Concurrent resizes per executor.
pub const RESIZES_IN_FLIGHT: u64 = 2;

#[derive(Debug, PartialEq, Eq)]
pub enum ResizeError {
    /// Not JPEG/PNG: serve the original.
    Unsupported,
    /// Decoded size over PIXELS_MAX.
    TooLarge,
    /// Corrupt image.
    Decode(String),
}

/// `width`/`height` parameters: None when both are absent or 0 (no resize). Non-numbers count
/// as 0 like go-fastdfs; negative or absurd values are an error.
pub fn requested_size(
    width: &str,
    height: &str,
    max_w: i64,
    max_h: i64,
) -> Result<Option<(usize, usize)>, &'static str> {
    let parse = |v: &str| -> Result<i64, &'static str> {
        let n = v.trim().parse::<i64>().unwrap_or(0);
        if n < 0 {
            return Err("width and height must not be negative");
        }
        if n > DIMENSION_MAX {
            return Err("width or height too large");
        }
        Ok(n)
    };
    let (w, h) = (parse(width)?, parse(height)?);
    if w == 0 && h == 0 {
        return Ok(None);
    }
    Ok(Some((
        w.min(max_w.max(1)) as usize,
        h.min(max_h.max(1)) as usize,
    )))
}

/// Content-Type of a format we resize.
pub fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::JPEG => "image/jpeg",
        _ => "image/png",
    }
}

/// Resizes an encoded image (blocking: run on the blocking pool). Returns the new bytes and
/// their Content-Type.
pub fn resize(
    data: &[u8],
    want_w: usize,
    want_h: usize,
) -> Result<(Vec<u8>, &'static str), ResizeError> {
    let (format, _) =
        ImageFormat::guess_format(ZCursor::new(data)).ok_or(ResizeError::Unsupported)?;
    if !matches!(format, ImageFormat::JPEG | ImageFormat::PNG) {
        return Err(ResizeError::Unsupported);
    }
    let options = DecoderOptions::default()
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut decoder = format
        .decoder_with_options(ZCursor::new(data), options)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    decoder
        .read_headers()
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| ResizeError::Decode("no dimensions".into()))?;
    if w == 0 || h == 0 {
        return Err(ResizeError::Decode("empty image".into()));
    }
    if w.saturating_mul(h) > PIXELS_MAX {
        return Err(ResizeError::TooLarge);
    }
    let mut image = decoder
        .decode()
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let (tw, th) = match (want_w, want_h) {
        (0, th) => (((w * th) as f64 / h as f64).round().max(1.0) as usize, th),
        (tw, 0) => (tw, ((h * tw) as f64 / w as f64).round().max(1.0) as usize),
        both => both,
    };
    zune_imageprocs::resize::Resize::new(tw, th, zune_imageprocs::resize::ResizeMethod::Lanczos3)
        .execute(&mut image)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let out = image
        .write_to_vec(format)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    Ok((out, content_type(format)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_like_go_fastdfs_but_safe() {
        assert_eq!(requested_size("", "", 2000, 2000), Ok(None));
        assert_eq!(requested_size("0", "0", 2000, 2000), Ok(None));
        assert_eq!(requested_size("abc", "10", 2000, 2000), Ok(Some((0, 10))));
        assert_eq!(requested_size("5000", "0", 2000, 1000), Ok(Some((2000, 0))));
        assert!(requested_size("-1", "0", 2000, 2000).is_err());
        assert!(requested_size("99999999", "0", 2000, 2000).is_err());
    }

    #[test]
    fn non_images_are_unsupported() {
        assert_eq!(resize(b"GIF89a....", 10, 0), Err(ResizeError::Unsupported));
        assert_eq!(resize(b"hello", 10, 0), Err(ResizeError::Unsupported));
    }
}
