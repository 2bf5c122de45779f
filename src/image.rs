//! Image resize for downloads with `?width=&height=` (docs/PROTOCOL.md §5): JPEG, PNG, WebP and BMP
//! are decoded (a JPEG at the smallest DCT scale, 1/8 to 1, still at least the target size;
//! at 1/8 by `jpeg_dc` from the DC coefficients alone when it takes the file),
//! resized (Lanczos3; a 0 dimension keeps the aspect ratio) and re-encoded in the
//! source format (WebP lossless; BMP as 24-bit by `encode_bmp`, zune has no BMP encoder).
//! Limits: sizes are clamped to image_max_width/height, negative or absurd sizes are 400, the
//! decoded pixel count is checked from the headers before decoding (decompression bombs get
//! 413), sources over `SOURCE_BYTES_MAX` are refused. Other formats (GIF, non-images)
//! are served unchanged, never as an empty 200 (docs/DEFECTS.md #32). The work runs on the blocking
//! pool, at most `RESIZES_IN_FLIGHT` per executor with `RESIZES_WAITING_MAX` waiting; results are cached under `files/_cache/`
//! (bounded by `store::variants`).

use zune_core::bytestream::ZCursor;
use zune_core::options::DecoderOptions;
use zune_image::codecs::ImageFormat;
use zune_image::traits::OperationsTrait;

/// Largest width or height accepted in a request (beyond: 400).
pub const DIMENSION_MAX: i64 = 100_000;
/// Largest decoded image (width x height) accepted.
pub const PIXELS_MAX: usize = 40_000_000;
/// Largest decoded image in bytes: `PIXELS_MAX` pixels of 8-bit RGBA (a 16-bit RGBA PNG may
/// have half as many pixels). A resize peaks at about 2.5 times this.
pub const DECODED_BYTES_MAX: usize = PIXELS_MAX * 4;
/// Largest source file resized.
pub const SOURCE_BYTES_MAX: u64 = 64 << 20;
/// Concurrent resizes per executor.
pub const RESIZES_IN_FLIGHT: u64 = 2;
/// Resizes waiting for one of those per executor; more are refused (503) at once. A wait
/// holds no image, only its connection; the bound keeps a flood of resize requests from
/// queueing minutes of work behind each other.
pub const RESIZES_WAITING_MAX: u64 = 32;

#[derive(Debug, PartialEq, Eq)]
pub enum ResizeError {
    /// Not JPEG/PNG/WebP/BMP: serve the original.
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
) -> Result<Option<Wanted>, &'static str> {
    let parse = |v: &str| -> Result<i64, &'static str> {
        let v = v.trim();
        let n = match v.parse::<i64>() {
            Ok(n) => n,
            // A number too long for i64 is still a number: too large (or negative), not 0.
            Err(_)
                if !v.is_empty()
                    && v.trim_start_matches(['-', '+'])
                        .bytes()
                        .all(|b| b.is_ascii_digit())
                    && v.len() > 1 =>
            {
                if v.starts_with('-') {
                    -1
                } else {
                    i64::MAX
                }
            }
            Err(_) => 0,
        };
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
    let (max_w, max_h) = (max_w.clamp(1, DIMENSION_MAX), max_h.clamp(1, DIMENSION_MAX));
    Ok(Some(Wanted {
        width: w.min(max_w) as usize,
        height: h.min(max_h) as usize,
        max: (max_w as usize, max_h as usize),
    }))
}

/// A resize asked for: `width`/`height` already clamped (0 keeps the aspect ratio), and the
/// box the result must fit in (image_max_width/height), which bounds the dimension derived
/// from the aspect ratio too.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wanted {
    pub width: usize,
    pub height: usize,
    pub max: (usize, usize),
}

/// Content-Type of a format we resize.
pub fn content_type(format: ImageFormat) -> &'static str {
    match format {
        ImageFormat::JPEG => "image/jpeg",
        ImageFormat::WEBP => "image/webp",
        ImageFormat::BMP => "image/bmp",
        _ => "image/png",
    }
}

/// The format of an encoded image, if it is one we resize.
fn format_of(data: &[u8]) -> Option<ImageFormat> {
    if data.len() >= 12 && &data[..4] == b"RIFF" && &data[8..12] == b"WEBP" {
        return Some(ImageFormat::WEBP);
    }
    let (format, _) = ImageFormat::guess_format(ZCursor::new(data))?;
    matches!(
        format,
        ImageFormat::JPEG | ImageFormat::PNG | ImageFormat::BMP
    )
    .then_some(format)
}

/// Resizes an encoded image (blocking: run on the blocking pool). Returns the new bytes and
/// their Content-Type.
pub fn resize(data: &[u8], want: Wanted) -> Result<(Vec<u8>, &'static str), ResizeError> {
    let format = format_of(data).ok_or(ResizeError::Unsupported)?;
    let mut target = None;
    let mut image = match format {
        ImageFormat::WEBP => decode_webp(data)?,
        ImageFormat::JPEG => match decode_jpeg_scaled(data, want)? {
            Some((image, full)) => {
                target = Some(target_size(full, want)?);
                image
            }
            None => decode_zune(format, data)?,
        },
        _ => decode_zune(format, data)?,
    };
    let (tw, th) = match target {
        Some(t) => t,
        None => target_size(image.dimensions(), want)?,
    };
    zune_imageprocs::resize::Resize::new(tw, th, zune_imageprocs::resize::ResizeMethod::Lanczos3)
        .execute(&mut image)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let out = match format {
        ImageFormat::BMP => encode_bmp(&mut image)?,
        ImageFormat::WEBP => encode_webp(&mut image)?,
        _ => image
            .write_to_vec(format)
            .map_err(|e| ResizeError::Decode(format!("{e:?}")))?,
    };
    Ok((out, content_type(format)))
}

/// The output size for a source of `(w, h)`: a 0 dimension keeps the aspect ratio, and the
/// result fits in `want.max` (a 1x10000 image asked 2000 wide would otherwise be 2000 x
/// 20,000,000: one request of a tiny file would allocate tens of gigabytes).
fn target_size((w, h): (usize, usize), want: Wanted) -> Result<(usize, usize), ResizeError> {
    check_dimensions(w, h)?;
    let (max_w, max_h) = (want.max.0.max(1) as f64, want.max.1.max(1) as f64);
    let scaled = |a: usize, by: f64| (a as f64 * by).round().clamp(1.0, f64::from(u32::MAX));
    let (tw, th) = match (want.width, want.height) {
        (0, th) => {
            let th = (th as f64).min(h as f64 * max_w / w as f64).max(1.0);
            (scaled(w, th / h as f64).min(max_w), th.round().min(max_h))
        }
        (tw, 0) => {
            let tw = (tw as f64).min(w as f64 * max_h / h as f64).max(1.0);
            (tw.round().min(max_w), scaled(h, tw / w as f64).min(max_h))
        }
        (tw, th) => ((tw as f64).min(max_w), (th as f64).min(max_h)),
    };
    let (tw, th) = (tw.max(1.0) as usize, th.max(1.0) as usize);
    if tw.saturating_mul(th) > PIXELS_MAX {
        return Err(ResizeError::TooLarge);
    }
    Ok((tw, th))
}

/// A JPEG decoded at a reduced scale, and its full size.
type Scaled = (zune_image::image::Image, (usize, usize));

/// A JPEG decoded at the smallest of 1/8, 1/4, 1/2 or full scale that is still at least the
/// target size (the inverse DCT computes fewer pixels; libjpeg's "draft" mode, which Pillow and
/// libvips use for thumbnails), with the full size. None when this decoder cannot take the
/// image (another colour model, or it gave up): the caller decodes it the ordinary way.
fn decode_jpeg_scaled(data: &[u8], want: Wanted) -> Result<Option<Scaled>, ResizeError> {
    use zune_core::colorspace::ColorSpace;
    // A panic inside the decoder (it has `panic!` on shapes it does not expect) must not take
    // the blocking thread down: it only means "decode the ordinary way".
    let decoded = std::panic::catch_unwind(|| -> Result<_, ResizeError> {
        let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(data));
        if d.read_info().is_err() {
            return Ok(None);
        }
        let Some(info) = d.info() else {
            return Ok(None);
        };
        let full = (info.width as usize, info.height as usize);
        check_dimensions(full.0, full.1)?;
        let colour = match info.pixel_format {
            jpeg_decoder::PixelFormat::RGB24 => ColorSpace::RGB,
            jpeg_decoder::PixelFormat::L8 => ColorSpace::Luma,
            _ => return Ok(None),
        };
        let (tw, th) = target_size(full, want)?;
        // At 1/8 scale only the DC coefficients count: the faster decoder, when it takes
        // the image.
        if full.0.div_ceil(8) >= tw && full.1.div_ceil(8) >= th {
            if let Some(e) = crate::jpeg_dc::decode_eighth(data, PIXELS_MAX) {
                let colour = match e.components {
                    1 => ColorSpace::Luma,
                    _ => ColorSpace::RGB,
                };
                let image = zune_image::image::Image::from_u8(&e.pixels, e.width, e.height, colour);
                return Ok(Some((image, full)));
            }
        }
        let (sw, sh) = match d.scale(
            tw.min(u16::MAX as usize) as u16,
            th.min(u16::MAX as usize) as u16,
        ) {
            Ok(size) => size,
            Err(_) => return Ok(None),
        };
        let Ok(pixels) = d.decode() else {
            return Ok(None);
        };
        let (sw, sh) = (sw as usize, sh as usize);
        if pixels.len() != sw * sh * colour.num_components() {
            return Ok(None);
        }
        Ok(Some((
            zune_image::image::Image::from_u8(&pixels, sw, sh, colour),
            full,
        )))
    });
    decoded.unwrap_or(Ok(None))
}

/// Checks the stated size of an image before its pixels are decoded.
fn check_dimensions(w: usize, h: usize) -> Result<(), ResizeError> {
    if w == 0 || h == 0 {
        return Err(ResizeError::Decode("empty image".into()));
    }
    if w.saturating_mul(h) > PIXELS_MAX {
        return Err(ResizeError::TooLarge);
    }
    Ok(())
}

fn decode_zune(format: ImageFormat, data: &[u8]) -> Result<zune_image::image::Image, ResizeError> {
    let options = DecoderOptions::default()
        .set_max_width(1 << 16)
        .set_max_height(1 << 16);
    let mut decoder = format
        .decoder_with_options(ZCursor::new(data), options)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let metadata = decoder
        .read_headers()
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let (w, h) = decoder
        .dimensions()
        .ok_or_else(|| ResizeError::Decode("no dimensions".into()))?;
    check_dimensions(w, h)?;
    // 16-bit samples (PNG) take twice the memory of 8-bit ones: the bound is on bytes.
    let sample = metadata.map_or(1, |m| m.depth().size_of());
    let decoded = (w * h)
        .saturating_mul(decoder.out_colorspace().num_components())
        .saturating_mul(sample);
    if decoded > DECODED_BYTES_MAX {
        return Err(ResizeError::TooLarge);
    }
    decoder
        .decode()
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))
}

/// WebP (still images; an animation is served unchanged).
fn decode_webp(data: &[u8]) -> Result<zune_image::image::Image, ResizeError> {
    use zune_core::colorspace::ColorSpace;
    let bad = |e: image_webp::DecodingError| ResizeError::Decode(e.to_string());
    let mut decoder = image_webp::WebPDecoder::new(std::io::Cursor::new(data)).map_err(bad)?;
    if decoder.is_animated() {
        return Err(ResizeError::Unsupported);
    }
    let (w, h) = decoder.dimensions();
    check_dimensions(w as usize, h as usize)?;
    let size = decoder
        .output_buffer_size()
        .ok_or_else(|| ResizeError::Decode("image too large".into()))?;
    let mut pixels = vec![0u8; size];
    decoder.read_image(&mut pixels).map_err(bad)?;
    let colors = if decoder.has_alpha() {
        ColorSpace::RGBA
    } else {
        ColorSpace::RGB
    };
    Ok(zune_image::image::Image::from_u8(
        &pixels, w as usize, h as usize, colors,
    ))
}

/// Lossless WebP of the first frame (RGB, or RGBA when the image has alpha).
fn encode_webp(image: &mut zune_image::image::Image) -> Result<Vec<u8>, ResizeError> {
    use zune_core::colorspace::ColorSpace;
    let alpha = image.colorspace().has_alpha();
    let (target, color) = if alpha {
        (ColorSpace::RGBA, image_webp::ColorType::Rgba8)
    } else {
        (ColorSpace::RGB, image_webp::ColorType::Rgb8)
    };
    image
        .convert_color(target)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let (w, h) = image.dimensions();
    let frames = image.flatten_to_u8();
    let pixels = frames
        .first()
        .ok_or_else(|| ResizeError::Decode("no frame".into()))?;
    let mut out = Vec::new();
    image_webp::WebPEncoder::new(&mut out)
        .encode(pixels, w as u32, h as u32, color)
        .map_err(|e| ResizeError::Decode(e.to_string()))?;
    Ok(out)
}

/// The first frame as a BMP (see `bmp_from_rgb`).
fn encode_bmp(image: &mut zune_image::image::Image) -> Result<Vec<u8>, ResizeError> {
    image
        .convert_color(zune_core::colorspace::ColorSpace::RGB)
        .map_err(|e| ResizeError::Decode(format!("{e:?}")))?;
    let (w, h) = image.dimensions();
    let frames = image.flatten_to_u8();
    let rgb = frames
        .first()
        .ok_or_else(|| ResizeError::Decode("no frame".into()))?;
    Ok(bmp_from_rgb(w, h, rgb))
}

/// A 24-bit bottom-up BMP (BITMAPINFOHEADER, no compression) of interleaved RGB pixels.
pub fn bmp_from_rgb(w: usize, h: usize, rgb: &[u8]) -> Vec<u8> {
    const HEADERS_BYTES: usize = 14 + 40;
    assert_eq!(rgb.len(), w * h * 3, "RGB frame of the stated size");
    let row = (w * 3).div_ceil(4) * 4;
    let size = HEADERS_BYTES + row * h;
    let mut out = Vec::with_capacity(size);
    out.extend_from_slice(b"BM");
    out.extend_from_slice(&(size as u32).to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&(HEADERS_BYTES as u32).to_le_bytes());
    out.extend_from_slice(&40u32.to_le_bytes());
    out.extend_from_slice(&(w as i32).to_le_bytes());
    out.extend_from_slice(&(h as i32).to_le_bytes());
    out.extend_from_slice(&1u16.to_le_bytes());
    out.extend_from_slice(&24u16.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&((row * h) as u32).to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&2835u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    out.extend_from_slice(&0u32.to_le_bytes());
    for y in (0..h).rev() {
        let line = &rgb[y * w * 3..(y + 1) * w * 3];
        for px in line.chunks_exact(3) {
            out.extend_from_slice(&[px[2], px[1], px[0]]);
        }
        out.resize(out.len() + row - w * 3, 0);
    }
    assert_eq!(out.len(), size, "BMP size as announced in its header");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn want(width: usize, height: usize) -> Wanted {
        Wanted {
            width,
            height,
            max: (2000, 2000),
        }
    }

    #[test]
    fn sizes_like_go_fastdfs_but_safe() {
        assert_eq!(requested_size("", "", 2000, 2000), Ok(None));
        assert_eq!(requested_size("0", "0", 2000, 2000), Ok(None));
        assert_eq!(
            requested_size("abc", "10", 2000, 2000),
            Ok(Some(want(0, 10)))
        );
        let clamped = requested_size("5000", "0", 2000, 1000).unwrap().unwrap();
        assert_eq!((clamped.width, clamped.height), (2000, 0));
        assert!(requested_size("-1", "0", 2000, 2000).is_err());
        assert!(requested_size("99999999", "0", 2000, 2000).is_err());
        // Past i64 a number is still too large (or negative), not "not a number".
        assert!(requested_size("100000000000000000000", "0", 2000, 2000).is_err());
        assert!(requested_size("0", "-100000000000000000000", 2000, 2000).is_err());
        assert_eq!(requested_size("+", "-", 2000, 2000), Ok(None));
        assert_eq!(requested_size("1e3", "", 2000, 2000), Ok(None));
    }

    #[test]
    fn the_dimension_kept_from_the_aspect_ratio_fits_the_maximum_too() {
        // 1 x 10000 asked 2000 wide: not 2000 x 20,000,000 (tens of GB), but fitted in the box.
        assert_eq!(target_size((1, 10_000), want(2000, 0)), Ok((1, 2000)));
        assert_eq!(target_size((10_000, 1), want(0, 2000)), Ok((2000, 1)));
        assert_eq!(target_size((8, 10_000), want(2000, 0)), Ok((2, 2000)));
        // Within the box nothing changes.
        assert_eq!(target_size((400, 300), want(100, 0)), Ok((100, 75)));
        assert_eq!(target_size((400, 300), want(0, 150)), Ok((200, 150)));
        assert_eq!(target_size((40, 30), want(2000, 0)), Ok((2000, 1500)));
        // A configured box too large for memory is refused, never allocated.
        let huge = Wanted {
            width: 100_000,
            height: 100_000,
            max: (100_000, 100_000),
        };
        assert_eq!(target_size((10, 10), huge), Err(ResizeError::TooLarge));
        let png = zune_image::image::Image::from_u8(
            &[0; 3 * 10_000],
            1,
            10_000,
            zune_core::colorspace::ColorSpace::RGB,
        )
        .write_to_vec(ImageFormat::PNG)
        .unwrap();
        let (out, _) = resize(&png, want(2000, 0)).unwrap();
        assert_eq!(
            decode_zune(ImageFormat::PNG, &out).unwrap().dimensions(),
            (1, 2000)
        );
    }

    #[test]
    fn a_16_bit_png_is_bounded_by_its_decoded_bytes() {
        // 6000 x 6000 RGBA with 16-bit samples: 36 M pixels (under PIXELS_MAX) but 288 MB
        // decoded, twice DECODED_BYTES_MAX; the header says so before any pixel is decoded.
        let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
        let mut ihdr = b"IHDR".to_vec();
        ihdr.extend_from_slice(&6000u32.to_be_bytes());
        ihdr.extend_from_slice(&6000u32.to_be_bytes());
        ihdr.extend_from_slice(&[16, 6, 0, 0, 0]);
        png.extend_from_slice(&13u32.to_be_bytes());
        png.extend_from_slice(&ihdr);
        png.extend_from_slice(&crc32(&ihdr).to_be_bytes());
        png.extend_from_slice(&[0, 0, 0, 0, b'I', b'E', b'N', b'D', 0xAE, 0x42, 0x60, 0x82]);
        assert_eq!(resize(&png, want(100, 0)), Err(ResizeError::TooLarge));
        // The same size in 8-bit grey is decoded (and found empty).
        png[24..26].copy_from_slice(&[8, 0]);
        let crc = crc32(&png[12..29]);
        png[29..33].copy_from_slice(&crc.to_be_bytes());
        assert!(matches!(
            resize(&png, want(100, 0)),
            Err(ResizeError::Decode(_))
        ));
    }

    fn crc32(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = if crc & 1 != 0 {
                    crc >> 1 ^ 0xEDB8_8320
                } else {
                    crc >> 1
                };
            }
        }
        !crc
    }

    /// A `w`x`h` JPEG of a smooth gradient (RGB or grey).
    fn jpeg(w: usize, h: usize, grey: bool) -> Vec<u8> {
        use zune_core::colorspace::ColorSpace;
        let (colour, n) = if grey {
            (ColorSpace::Luma, 1)
        } else {
            (ColorSpace::RGB, 3)
        };
        let mut px = Vec::with_capacity(w * h * n);
        for y in 0..h {
            for x in 0..w {
                for c in 0..n {
                    px.push(((x * 255 / w + y * 255 / h + c * 60) % 256) as u8);
                }
            }
        }
        zune_image::image::Image::from_u8(&px, w, h, colour)
            .write_to_vec(ImageFormat::JPEG)
            .unwrap()
    }

    #[test]
    fn a_large_jpeg_is_decoded_at_a_reduced_scale_still_above_the_target() {
        let src = jpeg(1600, 1200, false);
        let (image, full) = decode_jpeg_scaled(&src, want(100, 0))
            .unwrap()
            .expect("scaled decode");
        assert_eq!(full, (1600, 1200));
        // 1/8 is the smallest scale at least 100 wide: 200x150.
        assert_eq!(image.dimensions(), (200, 150));
        let (out, ct) = resize(&src, want(100, 0)).unwrap();
        assert_eq!(ct, "image/jpeg");
        let back = decode_zune(ImageFormat::JPEG, &out).unwrap();
        assert_eq!(back.dimensions(), (100, 75));
        // A target close to the full size decodes at full scale.
        let (image, _) = decode_jpeg_scaled(&src, want(1500, 0)).unwrap().unwrap();
        assert_eq!(image.dimensions(), (1600, 1200));
    }

    #[test]
    fn grey_jpegs_take_the_scaled_path_and_keep_their_aspect() {
        let src = jpeg(800, 400, true);
        let (image, _) = decode_jpeg_scaled(&src, want(0, 50)).unwrap().unwrap();
        assert_eq!(image.dimensions(), (100, 50));
        let (out, _) = resize(&src, want(0, 50)).unwrap();
        assert_eq!(
            decode_zune(ImageFormat::JPEG, &out).unwrap().dimensions(),
            (100, 50)
        );
    }

    #[test]
    fn a_broken_jpeg_is_a_decode_error_not_a_panic() {
        let mut src = jpeg(64, 64, false);
        src.truncate(src.len() / 3);
        assert!(matches!(
            resize(&src, want(10, 0)),
            Err(ResizeError::Decode(_)) | Ok(_)
        ));
        assert!(resize(&[0xFF, 0xD8, 0xFF, 0xC0, 0, 2], want(10, 0)).is_err());
    }

    #[test]
    fn non_images_are_unsupported() {
        assert_eq!(
            resize(b"GIF89a....", want(10, 0)),
            Err(ResizeError::Unsupported)
        );
        assert_eq!(resize(b"hello", want(10, 0)), Err(ResizeError::Unsupported));
    }
}

#[cfg(test)]
mod bench {
    /// `RESIZE_BENCH=photo.jpg cargo test --release --lib image::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_resize_to_200_wide() {
        let Ok(path) = std::env::var("RESIZE_BENCH") else {
            return;
        };
        let data = std::fs::read(path).expect("read the image");
        let n = 20;
        let start = std::time::Instant::now();
        for i in 0..n {
            std::hint::black_box(
                super::resize(
                    &data,
                    super::Wanted {
                        width: 200 + i,
                        height: 0,
                        max: (2000, 2000),
                    },
                )
                .expect("resize"),
            );
        }
        let each = start.elapsed() / n as u32;
        println!(
            "resize to ~200 wide: {each:?} each, {:.1}/s",
            1.0 / each.as_secs_f64()
        );
        let start = std::time::Instant::now();
        for _ in 0..n {
            std::hint::black_box(crate::jpeg_dc::decode_eighth(&data, super::PIXELS_MAX));
        }
        println!("of which the 1/8 decode: {:?}", start.elapsed() / n as u32);
    }
}
