//! What a served file is declared as: its Content-Type by extension, its validators (ETag,
//! Last-Modified, conditional requests) and the headers that keep uploaded content from
//! acting on the file domain (nosniff, sandbox).

use super::response::HeaderValue;
use super::{Request, Response};

/// The HTTP-date of `secs` since the epoch (a file's `Last-Modified`, and every response's
/// `Date`), remembered per thread in a small table keyed by the second: a hot file's date is
/// formatted once, not on every download, and the current second's once per second.
pub fn http_date(secs: u64) -> HeaderValue {
    const SLOTS: usize = 64;
    thread_local! {
        static DATES: std::cell::RefCell<Vec<(u64, String)>> =
            std::cell::RefCell::new(vec![(u64::MAX, String::new()); SLOTS]);
    }
    DATES.with(|d| {
        let mut d = d.borrow_mut();
        let slot = &mut d[(secs % SLOTS as u64) as usize];
        if slot.0 != secs || slot.1.is_empty() {
            // A time httpdate cannot write (year 10000 on, or a negative mtime read as u64)
            // is the epoch, never a panic.
            const YEAR_10000: u64 = 253_402_300_800;
            let secs_ok = if secs < YEAR_10000 { secs } else { 0 };
            let t = std::time::UNIX_EPOCH + std::time::Duration::from_secs(secs_ok);
            *slot = (secs, httpdate::fmt_http_date(t));
        }
        HeaderValue::short(&slot.1)
    })
}

#[cfg(test)]
#[test]
fn http_dates_are_remembered_and_never_panic() {
    assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(1_764_720_000), "Wed, 03 Dec 2025 00:00:00 GMT");
    assert_eq!(
        http_date(1_764_720_000 + 64),
        "Wed, 03 Dec 2025 00:01:04 GMT"
    );
    assert_eq!(http_date(1_764_720_000), "Wed, 03 Dec 2025 00:00:00 GMT");
    assert_eq!(http_date(u64::MAX), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(http_date(-1i64 as u64 - 5), "Thu, 01 Jan 1970 00:00:00 GMT");
}

/// The entity tag of a file version: its mtime and size.
pub fn etag(size: u64, mtime: u64) -> HeaderValue {
    // Without the formatting machinery nor the heap: this is on every download.
    fn hex(mut v: u64, out: &mut [u8; 35], at: &mut usize) {
        let start = *at;
        loop {
            out[*at] = b"0123456789abcdef"[(v & 15) as usize];
            *at += 1;
            v >>= 4;
            if v == 0 {
                break;
            }
        }
        out[start..*at].reverse();
    }
    // `"` 16 hex digits `-` 16 hex digits `"` at most.
    let (mut out, mut at) = ([0u8; 35], 1);
    out[0] = b'"';
    hex(mtime, &mut out, &mut at);
    out[at] = b'-';
    at += 1;
    hex(size, &mut out, &mut at);
    out[at] = b'"';
    HeaderValue::short(std::str::from_utf8(&out[..=at]).expect("hex digits are ASCII"))
}

/// If-None-Match (weak comparison) or, without it, If-Modified-Since.
pub fn not_modified(req: &Request<'_>, tag: &str, mtime: u64) -> bool {
    if let Some(inm) = req.head.header_str("if-none-match") {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == tag);
    }
    match req.head.header_str("if-modified-since").and_then(http_secs) {
        Some(secs) => mtime <= secs,
        None => false,
    }
}

/// If-Match (strong comparison) or, without it, If-Unmodified-Since (RFC 9110 §13.2.2): the
/// file is not the one the client holds, so its request must fail (412), a Range above all.
pub fn precondition_failed(req: &Request<'_>, tag: &str, mtime: u64) -> bool {
    if let Some(im) = req.head.header_str("if-match") {
        return !im.split(',').map(str::trim).any(|t| t == "*" || t == tag);
    }
    match req
        .head
        .header_str("if-unmodified-since")
        .and_then(http_secs)
    {
        Some(secs) => mtime > secs,
        None => false,
    }
}

/// An HTTP date as Unix seconds; None when it does not parse (the header is then ignored).
pub fn http_secs(v: &str) -> Option<u64> {
    httpdate::parse_http_date(v.trim())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

/// Content types a browser runs script in when shown inline.
fn is_active_content(content_type: &str) -> bool {
    let essence = content_type.split(';').next().unwrap_or("").trim();
    [
        "text/html",
        "application/xhtml+xml",
        "image/svg+xml",
        "text/xml",
        "application/xml",
    ]
    .iter()
    .any(|t| t.eq_ignore_ascii_case(essence))
}

/// Uploaded files are anyone's content on the file domain: never sniffed into another type,
/// and documents that could run script are sandboxed (an opaque origin, no scripts), so an
/// uploaded page cannot act on the domain's cookies or pages (stored XSS).
pub fn guard_uploaded_content(r: &mut Response) {
    r.set("X-Content-Type-Options", "nosniff");
    let active = r
        .headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("Content-Type") && is_active_content(v));
    if active {
        r.set("Content-Security-Policy", "sandbox");
    }
}

/// Content-Type by extension for inline downloads.
pub fn mime_type(path: &str) -> &'static str {
    // The extension lower-cased on the stack: every known one is at most 4 bytes.
    let mut buf = [0u8; 4];
    let ext = path
        .rsplit('/')
        .next()
        .and_then(|n| n.rsplit_once('.'))
        .map(|(_, e)| e.as_bytes())
        .filter(|e| e.len() <= buf.len())
        .map(|e| {
            for (b, c) in buf.iter_mut().zip(e) {
                *b = c.to_ascii_lowercase();
            }
            std::str::from_utf8(&buf[..e.len()]).unwrap_or("")
        });
    match ext {
        Some("txt") | Some("log") | Some("md") => "text/plain; charset=utf-8",
        Some("html") | Some("htm") => "text/html; charset=utf-8",
        Some("css") => "text/css; charset=utf-8",
        Some("js") | Some("mjs") => "text/javascript; charset=utf-8",
        Some("json") => "application/json",
        Some("xml") => "text/xml; charset=utf-8",
        Some("csv") => "text/csv; charset=utf-8",
        Some("png") => "image/png",
        Some("jpg") | Some("jpeg") => "image/jpeg",
        Some("gif") => "image/gif",
        Some("webp") => "image/webp",
        Some("bmp") => "image/bmp",
        Some("svg") => "image/svg+xml",
        Some("ico") => "image/x-icon",
        Some("pdf") => "application/pdf",
        Some("zip") => "application/zip",
        Some("gz") => "application/gzip",
        Some("tar") => "application/x-tar",
        Some("mp4") => "video/mp4",
        Some("webm") => "video/webm",
        Some("mp3") => "audio/mpeg",
        Some("wav") => "audio/wav",
        Some("wasm") => "application/wasm",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn etags_are_mtime_and_size_in_hex() {
        assert_eq!(etag(0, 0), "\"0-0\"");
        assert_eq!(etag(0x10, 0xabc), "\"abc-10\"");
        assert_eq!(
            etag(u64::MAX, 1_764_720_000),
            format!("\"{:x}-{:x}\"", 1_764_720_000u64, u64::MAX).as_str()
        );
    }

    #[test]
    fn types_by_extension_ignore_case_and_unknown_ones_are_octet_streams() {
        assert_eq!(mime_type("files/a/PHOTO.JPG"), "image/jpeg");
        assert_eq!(mime_type("files/a/b.Jpeg"), "image/jpeg");
        assert_eq!(mime_type("files/a/page.HTML"), "text/html; charset=utf-8");
        assert_eq!(mime_type("files/a/x.wasm"), "application/wasm");
        assert_eq!(mime_type("files/a/x.jpegx"), "application/octet-stream");
        assert_eq!(mime_type("files/a.txt/noext"), "application/octet-stream");
        assert_eq!(mime_type("files/a/x."), "application/octet-stream");
        assert_eq!(mime_type("files/a/x.é"), "application/octet-stream");
        assert!(is_active_content("Text/HTML; charset=utf-8"));
        assert!(is_active_content(" image/svg+xml"));
        assert!(!is_active_content("text/plain"));
    }
}
