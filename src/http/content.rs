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

/// The entity tag of a content version: `"<mtime secs>-<size>-<within>"` in hex, `within`
/// what tells two versions of one second and one size apart (a file's mtime nanoseconds and
/// inode, a record's digest): a tag of an overwritten file never names the new content.
pub fn etag(size: u64, mtime_secs: u64, within: u64) -> HeaderValue {
    // Without the formatting machinery nor the heap: this is on every download.
    fn hex(mut v: u64, out: &mut [u8; TAG_BYTES_MAX], at: &mut usize) {
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
    // `"` three numbers of 16 hex digits at most, two `-`, `"`.
    const TAG_BYTES_MAX: usize = 3 * 16 + 4;
    let (mut out, mut at) = ([0u8; TAG_BYTES_MAX], 1);
    out[0] = b'"';
    for (i, v) in [mtime_secs, size, within].into_iter().enumerate() {
        if i > 0 {
            out[at] = b'-';
            at += 1;
        }
        hex(v, &mut out, &mut at);
    }
    out[at] = b'"';
    HeaderValue::short(std::str::from_utf8(&out[..=at]).expect("hex digits are ASCII"))
}

/// Whether a `Last-Modified` of `mtime_secs` is a strong validator in an answer dated
/// `date_secs` (RFC 9110 §8.8.2.2): its second was over before the answer, so no later
/// version can carry the same date. A date equal to a weak one (a file written this second)
/// may be an older version's, so it satisfies no condition that would let a client keep that
/// copy: no 304 by If-Modified-Since, no If-Unmodified-Since, no If-Range.
pub fn date_is_strong(mtime_secs: u64, date_secs: u64) -> bool {
    mtime_secs < date_secs
}

/// If-Modified-Since (RFC 9110 §13.1.3) with `since`: the content was modified after it, so
/// it is sent; also true when `since` is a weak `Last-Modified`'s very second
/// ([`date_is_strong`]).
pub fn modified_since(mtime_secs: u64, since: u64, date_secs: u64) -> bool {
    mtime_secs > since || (mtime_secs == since && !date_is_strong(mtime_secs, date_secs))
}

/// If-Unmodified-Since (RFC 9110 §13.1.4) with `since` holds: the content is not newer than
/// it; false when `since` is a weak `Last-Modified`'s very second ([`date_is_strong`]).
pub fn unmodified_since(mtime_secs: u64, since: u64, date_secs: u64) -> bool {
    mtime_secs < since || (mtime_secs == since && date_is_strong(mtime_secs, date_secs))
}

/// If-None-Match (weak comparison) or, without it, If-Modified-Since; `date_secs` the
/// answer's Date.
pub fn not_modified(req: &Request<'_>, tag: &str, mtime_secs: u64, date_secs: u64) -> bool {
    if let Some(inm) = req.head.header_str("if-none-match") {
        return inm
            .split(',')
            .map(|t| t.trim().trim_start_matches("W/"))
            .any(|t| t == "*" || t == tag);
    }
    match req.head.header_str("if-modified-since").and_then(http_secs) {
        Some(since) => !modified_since(mtime_secs, since, date_secs),
        None => false,
    }
}

/// Whether a request's Range stands (RFC 9110 §13.1.5): it has no If-Range, or its If-Range
/// names the content's `tag` or, when the Last-Modified of `mtime_secs` is strong in an answer
/// dated `date_secs` ([`date_is_strong`]), that date. Otherwise the whole content goes out.
pub fn if_range_holds(req: &Request<'_>, tag: &str, mtime_secs: u64, date_secs: u64) -> bool {
    let strong_date = date_is_strong(mtime_secs, date_secs).then_some(mtime_secs);
    req.head
        .header("if-range")
        .is_none_or(|v| super::range::if_range_matches(v, tag, strong_date))
}

/// If-Match (strong comparison) or, without it, If-Unmodified-Since (RFC 9110 §13.2.2): the
/// file is not the one the client holds, so its request must fail (412), a Range above all.
pub fn precondition_failed(req: &Request<'_>, tag: &str, mtime_secs: u64, date_secs: u64) -> bool {
    if let Some(im) = req.head.header_str("if-match") {
        return !im.split(',').map(str::trim).any(|t| t == "*" || t == tag);
    }
    match req
        .head
        .header_str("if-unmodified-since")
        .and_then(http_secs)
    {
        Some(since) => !unmodified_since(mtime_secs, since, date_secs),
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
    fn etags_are_mtime_size_and_version_in_hex() {
        assert_eq!(etag(0, 0, 0), "\"0-0-0\"");
        assert_eq!(etag(0x10, 0xabc, 0x5f), "\"abc-10-5f\"");
        let most = etag(u64::MAX, u64::MAX, u64::MAX);
        assert_eq!(most, format!("\"{0:x}-{0:x}-{0:x}\"", u64::MAX).as_str());
        // A common tag is kept inline: no heap on a download.
        let common = etag(1 << 30, 1_764_720_000, (1 << 50) | 999_999_999);
        assert!(matches!(common, HeaderValue::Short(_)), "{common:?}");
        assert_ne!(etag(5, 1_764_720_000, 1), etag(5, 1_764_720_000, 2));
    }

    #[test]
    fn a_date_of_the_current_second_is_weak_and_lets_no_older_copy_stand() {
        let (lm, now) = (1_764_720_000, 1_764_720_000);
        assert!(!date_is_strong(lm, now) && date_is_strong(lm, now + 1));
        // If-Modified-Since the same second: sent again while weak, 304 once strong.
        assert!(modified_since(lm, lm, now));
        assert!(!modified_since(lm, lm, now + 1));
        assert!(modified_since(lm, lm - 1, now + 1));
        assert!(
            !modified_since(lm, lm + 1, now),
            "a later date: not modified since"
        );
        // If-Unmodified-Since the same second: fails while weak, holds once strong.
        assert!(!unmodified_since(lm, lm, now));
        assert!(unmodified_since(lm, lm, now + 1));
        assert!(unmodified_since(lm, lm + 1, now));
        assert!(!unmodified_since(lm, lm - 1, now + 1));
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
