//! Image resize (issue 6, item 2): `?width=&height=` on JPEG, PNG, WebP, BMP gives an image of the
//! asked size in the source format (0 keeps the aspect ratio), clamped to image_max_*;
//! GIF and non-images come back unchanged (never an empty 200); negative or absurd sizes are
//! 400; a decompression bomb is refused from its headers; variants are cached on disk and a
//! deleted original is not served from the cache.
mod common;
use common::*;
use serde_json::{json, Value};
use zune_core::bytestream::ZCursor;
use zune_core::colorspace::ColorSpace;
use zune_core::options::DecoderOptions;
use zune_image::codecs::ImageFormat;
use zune_image::image::Image;

fn make(w: usize, h: usize, format: ImageFormat) -> Vec<u8> {
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    Image::from_u8(&pixels, w, h, ColorSpace::RGB)
        .write_to_vec(format)
        .unwrap()
}

fn dims(bytes: &[u8]) -> (usize, usize) {
    Image::read(ZCursor::new(bytes), DecoderOptions::default())
        .unwrap()
        .dimensions()
}

fn get_bytes(s: &Server, path: &str) -> (u16, String, Vec<u8>) {
    match agent().get(&s.url(path)).call() {
        Ok(r) => {
            let ct = r.content_type().to_string();
            let status = r.status();
            let mut b = Vec::new();
            std::io::Read::read_to_end(&mut r.into_reader(), &mut b).unwrap();
            (status, ct, b)
        }
        Err(ureq::Error::Status(c, r)) => (
            c,
            r.content_type().to_string(),
            r.into_string().unwrap_or_default().into_bytes(),
        ),
        Err(e) => panic!("{e}"),
    }
}

fn path_of(r: &Value) -> String {
    r["path"].as_str().unwrap().to_string()
}

#[test]
fn png_and_jpeg_are_resized_in_their_own_format() {
    let s = Server::start(json!({}));
    let png = path_of(&upload_json(&s, "red.png", &make(40, 20, ImageFormat::PNG)));
    let (code, ct, body) = get_bytes(&s, &format!("{png}?width=10&download=0"));
    assert_eq!((code, ct.as_str()), (200, "image/png"));
    assert_eq!(dims(&body), (10, 5), "height keeps the aspect ratio");
    let jpg = path_of(&upload_json(
        &s,
        "photo.jpg",
        &make(64, 32, ImageFormat::JPEG),
    ));
    let (code, ct, body) = get_bytes(&s, &format!("{jpg}?height=16&download=0"));
    assert_eq!((code, ct.as_str()), (200, "image/jpeg"));
    assert_eq!(dims(&body), (32, 16));
    let (_, _, body) = get_bytes(&s, &format!("{jpg}?width=20&height=30&download=0"));
    assert_eq!(dims(&body), (20, 30));
}

#[test]
fn a_thumbnail_of_a_large_jpeg_keeps_its_colours_where_they_were() {
    // 1600x1200: red on the left, blue on the right, a green band at the bottom. A 100 px
    // thumbnail is made from the 1/8-scale decode (each 8x8 block's average).
    let (w, h) = (1600, 1200);
    let mut pixels = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let rgb = match (y >= 1000, x < w / 2) {
                (true, _) => [20, 200, 40],
                (false, true) => [220, 30, 30],
                (false, false) => [30, 40, 210],
            };
            pixels.extend_from_slice(&rgb);
        }
    }
    let jpeg = Image::from_u8(&pixels, w, h, ColorSpace::RGB)
        .write_to_vec(ImageFormat::JPEG)
        .unwrap();
    let s = Server::start(json!({}));
    let path = path_of(&upload_json(&s, "halves.jpg", &jpeg));
    let (code, ct, body) = get_bytes(&s, &format!("{path}?width=100&download=0"));
    assert_eq!((code, ct.as_str()), (200, "image/jpeg"));
    let mut thumb = Image::read(ZCursor::new(&body[..]), DecoderOptions::default()).unwrap();
    assert_eq!(thumb.dimensions(), (100, 75));
    thumb.convert_color(ColorSpace::RGB).unwrap();
    let rgb = &thumb.flatten_to_u8()[0];
    let at = |x: usize, y: usize| -> Vec<i32> {
        rgb[(y * 100 + x) * 3..(y * 100 + x) * 3 + 3]
            .iter()
            .map(|&v| i32::from(v))
            .collect()
    };
    let near = |got: Vec<i32>, want: [i32; 3], place: &str| {
        assert!(
            got.iter().zip(want).all(|(g, w)| (g - w).abs() <= 24),
            "{place}: {got:?}, expected about {want:?}"
        );
    };
    near(at(20, 30), [220, 30, 30], "left");
    near(at(80, 30), [30, 40, 210], "right");
    near(at(50, 70), [20, 200, 40], "bottom");
}

#[test]
fn webp_and_bmp_are_resized_in_their_own_format() {
    let s = Server::start(json!({}));
    let rgb: Vec<u8> = (0..40 * 20 * 3).map(|i| (i * 7 % 251) as u8).collect();
    let mut webp_bytes = Vec::new();
    image_webp::WebPEncoder::new(&mut webp_bytes)
        .encode(&rgb, 40, 20, image_webp::ColorType::Rgb8)
        .unwrap();
    let webp = path_of(&upload_json(&s, "a.webp", &webp_bytes));
    let (code, ct, body) = get_bytes(&s, &format!("{webp}?width=10&download=0"));
    assert_eq!((code, ct.as_str()), (200, "image/webp"));
    let decoded = image_webp::WebPDecoder::new(std::io::Cursor::new(&body)).expect("a WebP");
    assert_eq!(decoded.dimensions(), (10, 5));
    let pixels: Vec<u8> = (0..30 * 12 * 3).map(|i| (i * 13 % 253) as u8).collect();
    let bmp = path_of(&upload_json(
        &s,
        "a.bmp",
        &fastdfs::image::bmp_from_rgb(30, 12, &pixels),
    ));
    let (code, ct, body) = get_bytes(&s, &format!("{bmp}?height=6&download=0"));
    assert_eq!((code, ct.as_str()), (200, "image/bmp"));
    assert_eq!(
        ImageFormat::guess_format(ZCursor::new(&body[..])).map(|f| f.0),
        Some(ImageFormat::BMP)
    );
    assert_eq!(dims(&body), (15, 6));
    // A BMP that is cut short is served as stored, never as an empty 200.
    let broken = fastdfs::image::bmp_from_rgb(30, 12, &pixels)[..100].to_vec();
    let p = path_of(&upload_json(&s, "cut.bmp", &broken));
    let (code, _, body) = get_bytes(&s, &format!("{p}?width=10"));
    assert!(code == 200 && body == broken || code == 422, "{code}");
}

#[test]
fn sizes_are_clamped_and_bad_sizes_refused() {
    let s = Server::start(json!({"image_max_width": 20, "image_max_height": 20}));
    let png = path_of(&upload_json(&s, "a.png", &make(40, 40, ImageFormat::PNG)));
    let (_, _, body) = get_bytes(&s, &format!("{png}?width=500&download=0"));
    assert_eq!(dims(&body), (20, 20));
    let (code, _, _) = get_bytes(&s, &format!("{png}?width=-5"));
    assert_eq!(code, 400);
    let (code, _, _) = get_bytes(&s, &format!("{png}?width=99999999"));
    assert_eq!(code, 400);
}

#[test]
fn gif_and_non_images_come_back_unchanged() {
    let s = Server::start(json!({}));
    let gif_bytes = b"GIF89a\x01\x00\x01\x00\x80\x00\x00\xff\xff\xff\x00\x00\x00!\xf9\x04\x00\x00\x00\x00\x00,\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;";
    let gif = path_of(&upload_json(&s, "a.gif", gif_bytes));
    let (code, _, body) = get_bytes(&s, &format!("{gif}?width=10"));
    assert_eq!((code, body.as_slice()), (200, &gif_bytes[..]));
    let txt = path_of(&upload_json(&s, "a.txt", b"not an image"));
    let (code, _, body) = get_bytes(&s, &format!("{txt}?width=10"));
    assert_eq!((code, body.as_slice()), (200, &b"not an image"[..]));
}

#[test]
fn a_decompression_bomb_is_refused_from_its_headers() {
    let s = Server::start(json!({}));
    // A PNG whose header claims 30000 x 30000 pixels (900 M) followed by garbage.
    let mut bomb = make(8, 8, ImageFormat::PNG);
    bomb[16..20].copy_from_slice(&30000u32.to_be_bytes());
    bomb[20..24].copy_from_slice(&30000u32.to_be_bytes());
    let p = path_of(&upload_json(&s, "bomb.png", &bomb));
    let (code, _, _) = get_bytes(&s, &format!("{p}?width=10"));
    assert!(code == 413 || code == 422, "{code}");
}

#[test]
fn variants_are_cached_and_a_deleted_original_is_not_served_from_the_cache() {
    let s = Server::start(json!({}));
    let r = upload_json(&s, "c.png", &make(30, 30, ImageFormat::PNG));
    let p = path_of(&r);
    let (_, _, first) = get_bytes(&s, &format!("{p}?width=15&download=0"));
    let cached = std::fs::read_dir(s.dir.join("files/_cache"))
        .map(|d| d.count())
        .unwrap_or(0);
    assert_eq!(cached, 1, "the variant is on disk");
    let (_, _, second) = get_bytes(&s, &format!("{p}?width=15&download=0"));
    assert_eq!(first, second);
    let (code, _) = call(agent().get(&s.url(&format!(
        "/group1/delete?md5={}",
        r["md5"].as_str().unwrap()
    ))));
    assert_eq!(code, 200);
    let (code, _, _) = get_bytes(&s, &format!("{p}?width=15&download=0"));
    assert_eq!(code, 404);
}

/// Bytes of the variants under `files/_cache/` (temp files of writes in progress too).
fn cache_bytes(s: &Server) -> u64 {
    let Ok(dirs) = std::fs::read_dir(s.dir.join("files/_cache")) else {
        return 0;
    };
    dirs.flatten()
        .flat_map(|d| std::fs::read_dir(d.path()).unwrap().flatten())
        .map(|f| f.metadata().unwrap().len())
        .sum()
}

#[test]
fn the_resize_cache_stays_under_resize_cache_bytes() {
    // Any client may ask for every size of every image: without a bound the cache grew
    // until the disk was full.
    let cap = 64 * 1024;
    let s = Server::start(json!({ "resize_cache_bytes": cap }));
    let p = path_of(&upload_json(
        &s,
        "big.png",
        &make(400, 400, ImageFormat::PNG),
    ));
    let mut made = 0;
    for w in 30..90 {
        let (code, _, body) = get_bytes(&s, &format!("{p}?width={w}&download=0"));
        assert_eq!(code, 200);
        made += body.len() as u64;
    }
    assert!(
        made > 3 * cap,
        "the variants ({made} B) are well over the bound"
    );
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while cache_bytes(&s) > cap && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let held = cache_bytes(&s);
    assert!(
        held <= cap && held > 0,
        "the cache holds {held} B, bound {cap}"
    );
    let (code, _, body) = get_bytes(&s, &format!("{p}?width=89&download=0"));
    assert_eq!(
        (code, dims(&body)),
        (200, (89, 89)),
        "the newest stays usable"
    );

    let off = Server::start(json!({ "resize_cache_bytes": 0 }));
    let p = path_of(&upload_json(&off, "o.png", &make(40, 40, ImageFormat::PNG)));
    let (code, _, _) = get_bytes(&off, &format!("{p}?width=20&download=0"));
    assert_eq!(code, 200);
    assert_eq!(cache_bytes(&off), 0, "0: nothing cached");
}

#[test]
fn merged_small_images_are_resized_too() {
    let s = Server::start(json!({"enable_merge_small_file": true}));
    let png = make(300, 200, ImageFormat::PNG);
    assert!(png.len() < 1 << 20);
    let r = upload_json(&s, "small.png", &png);
    let path = path_of(&r);
    assert!(path.contains("/haystack/"), "{r}");
    let (status, ct, body) = get_bytes(&s, &format!("{path}?width=100&download=0"));
    assert_eq!((status, ct.as_str()), (200, "image/png"));
    assert_eq!(dims(&body), (100, 67));
    // The original is still served as it is.
    let (status, _, body) = get_bytes(&s, &format!("{path}?download=0"));
    assert_eq!((status, body), (200, png));
}

#[test]
fn the_dimension_kept_from_the_aspect_ratio_is_clamped_too() {
    // 2 x 100 asked 50 wide would be 50 x 2500 (with image_max_width 2000, a 1 x 10000 image
    // asked 2000 wide was 2000 x 20,000,000 pixels: tens of GB, the server killed).
    let s = Server::start(json!({"image_max_width": 50, "image_max_height": 50}));
    let thin = path_of(&upload_json(
        &s,
        "thin.png",
        &make(2, 100, ImageFormat::PNG),
    ));
    let (code, _, body) = get_bytes(&s, &format!("{thin}?width=50&download=0"));
    assert_eq!(code, 200);
    assert_eq!(
        dims(&body),
        (1, 50),
        "fitted in image_max_width x image_max_height"
    );
    let wide = path_of(&upload_json(
        &s,
        "wide.png",
        &make(100, 2, ImageFormat::PNG),
    ));
    let (code, _, body) = get_bytes(&s, &format!("{wide}?height=50&download=0"));
    assert_eq!(code, 200);
    assert_eq!(dims(&body), (50, 1));
}

/// `(status, ETag, Last-Modified, body length)` of a GET with optional If-None-Match.
fn validators(s: &Server, path: &str, inm: Option<&str>) -> (u16, String, String, usize) {
    let mut req = agent().get(&s.url(path));
    if let Some(tag) = inm {
        req = req.set("If-None-Match", tag);
    }
    let r = match req.call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("{e}"),
    };
    let (status, tag, lm) = (
        r.status(),
        r.header("ETag").unwrap_or("").to_string(),
        r.header("Last-Modified").unwrap_or("").to_string(),
    );
    let mut b = Vec::new();
    std::io::Read::read_to_end(&mut r.into_reader(), &mut b).unwrap();
    (status, tag, lm, b.len())
}

#[test]
fn a_variant_has_validators_of_its_own_the_same_when_served_from_the_cache() {
    let s = Server::start(json!({}));
    let p = path_of(&upload_json(&s, "v.png", &make(30, 30, ImageFormat::PNG)));
    // The source is old: a variant made now must still say when its source changed.
    let on_disk = s
        .dir
        .join("files")
        .join(p.strip_prefix("/group1/").unwrap());
    std::fs::File::options()
        .write(true)
        .open(&on_disk)
        .unwrap()
        .set_modified(std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_600_000_000))
        .unwrap();
    let (_, original_tag, original_lm, _) = validators(&s, &format!("{p}?download=0"), None);
    let q = format!("{p}?width=15&download=0");
    let (code, made_tag, made_lm, made_len) = validators(&s, &q, None);
    assert_eq!(code, 200);
    let (code, cached_tag, cached_lm, cached_len) = validators(&s, &q, None);
    assert_eq!(code, 200);
    assert_eq!(
        (&cached_tag, &cached_lm, cached_len),
        (&made_tag, &made_lm, made_len),
        "made and cached answers agree"
    );
    assert_eq!(made_lm, original_lm, "the source's Last-Modified");
    assert_ne!(made_tag, original_tag, "not the source's ETag");
    let (_, other_tag, _, _) = validators(&s, &format!("{p}?width=16&download=0"), None);
    assert_ne!(other_tag, made_tag, "each size its own ETag");
    let (code, _, _, _) = validators(&s, &q, Some(&made_tag));
    assert_eq!(code, 304);
    let (code, _, _, len) = validators(&s, &q, Some(&original_tag));
    assert_eq!(
        (code, len),
        (200, made_len),
        "the source's ETag does not match a variant"
    );
}

/// A 30x30 RGB image whose pixels depend on `seed`: images of one size and format, of the
/// same byte length (BMP is not compressed), with different pictures.
fn bmp_seeded(seed: usize) -> Vec<u8> {
    let pixels: Vec<u8> = (0..30 * 30 * 3).map(|i| (i * seed % 251) as u8).collect();
    fastdfs::image::bmp_from_rgb(30, 30, &pixels)
}

#[test]
fn a_file_replaced_by_one_of_the_same_size_and_second_gets_a_variant_of_its_own() {
    let s = Server::start(json!({}));
    let before = bmp_seeded(7);
    let after = bmp_seeded(13);
    assert_eq!(before.len(), after.len());
    assert_ne!(before, after);
    let p = path_of(&upload_json(&s, "r.bmp", &before));
    let (code, _, old_variant) = get_bytes(&s, &format!("{p}?width=15&download=0"));
    assert_eq!(code, 200);

    // The file replaced on disk (as a rename does) with the same length and mtime second.
    let on_disk = s.dir.join("files").join(p.trim_start_matches("/group1/"));
    let mtime = std::fs::metadata(&on_disk).unwrap().modified().unwrap();
    let tmp = on_disk.with_extension("new");
    std::fs::write(&tmp, &after).unwrap();
    let f = std::fs::File::options().write(true).open(&tmp).unwrap();
    f.set_modified(mtime).unwrap();
    drop(f);
    std::fs::rename(&tmp, &on_disk).unwrap();

    let (code, _, new_variant) = get_bytes(&s, &format!("{p}?width=15&download=0"));
    assert_eq!(code, 200);
    assert_ne!(
        new_variant, old_variant,
        "the variant of the replaced content, not the cached one of the old"
    );
    assert_eq!(dims(&new_variant), (15, 15));
}

#[test]
fn resizes_beyond_the_queue_are_refused_at_once_and_the_rest_are_served() {
    let s = Server::start(json!({ "workers": 1 }));
    let p = path_of(&upload_json(
        &s,
        "slow.png",
        &make(2000, 2000, ImageFormat::PNG),
    ));
    // Distinct widths: none is served from the cache, every one is a resize of its own.
    let asked = 80;
    let codes: Vec<(u16, String)> = std::thread::scope(|sc| {
        let hs: Vec<_> = (0..asked)
            .map(|i| {
                let (s, p) = (&s, &p);
                sc.spawn(move || {
                    let (code, _, body) =
                        get_bytes(s, &format!("{p}?width={}&download=0", 100 + i));
                    (code, String::from_utf8_lossy(&body).into_owned())
                })
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let refused: Vec<_> = codes.iter().filter(|(c, _)| *c == 503).collect();
    let served = codes.iter().filter(|(c, _)| *c == 200).count();
    assert_eq!(refused.len() + served, asked, "only 200 or 503: {codes:?}");
    assert!(
        !refused.is_empty(),
        "{asked} resizes at once overflow a queue of 34"
    );
    assert!(served >= 34, "the queue's places are served: {served}");
    let v: Value = serde_json::from_str(&refused[0].1).unwrap();
    assert_eq!(v["status"], "fail");
    // The places are given back.
    let (code, _, body) = get_bytes(&s, &format!("{p}?width=64&download=0"));
    assert_eq!((code, dims(&body)), (200, (64, 64)));
}
