//! Fuzz target for `fastdfs::http::query`: query-string / form parsing and URL-path escaping.
//!
//! Properties (beyond "never panics"):
//! - `parse_urlencoded` on arbitrary bytes equals an independent model of its documented
//!   behaviour (split on `&`, skip empty pairs, split at the first `=`, `+` -> space, valid
//!   `%XX` -> byte, invalid escapes kept, lossy UTF-8, at most `PAIRS_COUNT_MAX` pairs);
//!   every output string is at most 3x its input (U+FFFD per invalid byte).
//! - Round trip: arbitrary (name, value) pairs, form-encoded (spaces as `+` or `%20`, upper-
//!   or lower-case hex, `name` alone for an empty value), parse back to exactly those pairs.
//! - `percent_decode_path` equals an independent model (valid `%XX` -> byte, the rest
//!   literal, `+` kept, `None` for non-UTF-8 or NUL) and never grows its input.
//! - `path_escape`, `escape_segment` and `ascii_url` produce what they document (ASCII only /
//!   only the kept characters plus upper-case `%XX`; at most 3x longer) and decode back with
//!   `percent_decode_path` to their input (`ascii_url`: when the input holds no `%`);
//!   `path_escape` is Go's `url.PathEscape`, `ascii_url` is idempotent; decoding an arbitrary
//!   path and re-escaping it decodes to the same path again.
//! - `query_escape` is Go's `url.QueryEscape`, and the `?name=<query_escape(name)>&download=1`
//!   of an upload answer parses back to exactly `name`; a directory listing's `href`
//!   (`listing_href`) decodes to the name and never starts with a scheme.
//!
//! Input layout: byte 0 = flags (bit 0: encode spaces as `%20`, bit 1: lower-case hex,
//! bit 2: write `name` without `=` for empty values, bit 3: insert empty pairs), rest = the
//! raw input; for the round trip the rest is split at 0xFF bytes into name, value, name, ...
#![no_main]

use fastdfs::http::query::{
    ascii_url, escape_segment, listing_href, parse_urlencoded, path_escape, percent_decode_path,
    query_escape, PAIRS_COUNT_MAX,
};
use libfuzzer_sys::fuzz_target;

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

/// Independent model: decodes valid `%XX` escapes (and `+` when `plus` is set), keeping
/// everything else literally.
fn decode_bytes(s: &[u8], plus: bool) -> Vec<u8> {
    let mut out = Vec::new();
    let mut rest = s;
    while let Some((&b, tail)) = rest.split_first() {
        if b == b'%' && tail.len() >= 2 {
            if let (Some(h), Some(l)) = (hex(tail[0]), hex(tail[1])) {
                out.push(h * 16 + l);
                rest = &tail[2..];
                continue;
            }
        }
        out.push(if plus && b == b'+' { b' ' } else { b });
        rest = tail;
    }
    out
}

fn model_urlencoded(s: &[u8]) -> Vec<(String, String)> {
    let text = |b: &[u8]| String::from_utf8_lossy(&decode_bytes(b, true)).into_owned();
    s.split(|&b| b == b'&')
        .filter(|p| !p.is_empty())
        .take(PAIRS_COUNT_MAX)
        .map(|p| {
            let mut it = p.splitn(2, |&b| b == b'=');
            let name = it.next().unwrap();
            let value = it.next().unwrap_or(b"");
            (text(name), text(value))
        })
        .collect()
}

fn model_path(s: &str) -> Option<String> {
    let d = String::from_utf8(decode_bytes(s.as_bytes(), false)).ok()?;
    (!d.contains('\0')).then_some(d)
}

/// Go's url.PathEscape (net/url shouldEscape, encodePathSegment); `keep_semicolon_comma`
/// gives the variant that fastdfs implements (known finding Q1).
fn go_path_escape(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        let keep = match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => true,
            b'$' | b'&' | b'+' | b':' | b'=' | b'@' => true,
            _ => false,
        };
        if keep {
            out.push(b as char);
        } else {
            push_escape(&mut out, b, false);
        }
    }
    out
}

/// Go's `url.QueryEscape`, written from its documentation: unreserved bytes stay, a space is
/// `+`, everything else `%XX` (upper-case).
fn go_query_escape(s: &str) -> String {
    let mut out = String::new();
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' => out.push('+'),
            _ => push_escape(&mut out, b, false),
        }
    }
    out
}

/// Appends `%XX` (upper- or lower-case hex).
fn push_escape(out: &mut String, b: u8, lower: bool) {
    let digits: &[u8; 16] = if lower {
        b"0123456789abcdef"
    } else {
        b"0123456789ABCDEF"
    };
    out.push('%');
    out.push(digits[usize::from(b >> 4)] as char);
    out.push(digits[usize::from(b & 15)] as char);
}

/// Form-encodes one component; keeps only unreserved characters.
fn form_encode(s: &str, space_as_pct: bool, lower: bool, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            b' ' if !space_as_pct => out.push('+'),
            _ => push_escape(out, b, lower),
        }
    }
}

/// Checks that `e` is ASCII made of `keep` characters and upper-case `%XX` escapes of bytes
/// that `keep` does not keep.
fn assert_escaped(e: &str, keep: impl Fn(u8) -> bool, what: &str) {
    let b = e.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            assert!(i + 2 < b.len(), "{what}: truncated escape in {e:?}");
            let (h, l) = (b[i + 1], b[i + 2]);
            assert!(
                h.is_ascii_hexdigit() && !h.is_ascii_lowercase(),
                "{what}: {e:?}"
            );
            assert!(
                l.is_ascii_hexdigit() && !l.is_ascii_lowercase(),
                "{what}: {e:?}"
            );
            assert!(
                !keep(hex(h).unwrap() * 16 + hex(l).unwrap()),
                "{what}: {e:?}"
            );
            i += 3;
        } else {
            assert!(b[i].is_ascii() && keep(b[i]), "{what}: {e:?}");
            i += 1;
        }
    }
}

fn check_escapes(x: &str) {
    let plain = if x.contains('\0') {
        None
    } else {
        Some(x.to_string())
    };

    // path_escape: Go's PathEscape for one segment.
    let e = path_escape(x);
    assert_eq!(e, path_escape(x), "not deterministic");
    let keep_pe = |b: u8| b.is_ascii_alphanumeric() || b"-_.~$&+=:@".contains(&b);
    assert_escaped(&e, keep_pe, "path_escape");
    assert!(e.len() <= 3 * x.len());
    assert!(!e.contains('/') && !e.contains('?') && !e.contains('#'));
    assert_eq!(percent_decode_path(&e), plain, "path_escape({x:?}) = {e:?}");
    assert_eq!(e == x, x.bytes().all(keep_pe));
    assert_eq!(e, go_path_escape(x), "{x:?}");

    // query_escape: Go's QueryEscape; the upload answer's `?name=...&download=1` parses back.
    let qe = query_escape(x);
    assert_eq!(qe, go_query_escape(x), "{x:?}");
    let q = format!("name={qe}&download=1");
    assert_eq!(
        parse_urlencoded(q.as_bytes()),
        vec![
            ("name".to_string(), x.to_string()),
            ("download".to_string(), "1".to_string())
        ],
        "{q:?}"
    );

    // A directory listing's href (web::listing): Go's form, no scheme.
    let href = listing_href(x);
    let rel = href.strip_prefix("./").unwrap_or(&href);
    assert_eq!(percent_decode_path(rel), plain, "{href:?}");
    assert!(
        !href.split('/').next().unwrap().contains(':'),
        "href {href:?} has a scheme"
    );

    // escape_segment: keeps non-ASCII and the sub-delims, escapes the rest of ASCII.
    let s = escape_segment(x);
    assert_eq!(s, escape_segment(x), "not deterministic");
    assert!(s.len() <= 3 * x.len());
    assert_eq!(
        percent_decode_path(&s),
        plain,
        "escape_segment({x:?}) = {s:?}"
    );
    let ascii_part: String = s.chars().filter(char::is_ascii).collect();
    assert_escaped(
        &ascii_part,
        |b| b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:@".contains(&b),
        "escape_segment",
    );
    let non_ascii = |t: &str| t.chars().filter(|c| !c.is_ascii()).collect::<String>();
    assert_eq!(non_ascii(&s), non_ascii(x), "non-ASCII changed");
    assert!(!s.contains(['/', '?', '#', ' ']) && !s.chars().any(|c| c.is_ascii_control()));

    // ascii_url: ASCII, idempotent, decodes back when there was no `%`.
    let a = ascii_url(x);
    assert!(a.is_ascii());
    assert!(a.len() <= 3 * x.len());
    assert_eq!(ascii_url(&a), a, "not idempotent");
    let ascii_in: String = x.chars().filter(char::is_ascii).collect();
    if !x.contains('%') {
        assert_eq!(percent_decode_path(&a), plain, "ascii_url({x:?}) = {a:?}");
    }
    if x.is_ascii() {
        assert_eq!(a, x);
    } else {
        assert!(a.len() > ascii_in.len());
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };

    // parse_urlencoded against the model.
    let pairs = parse_urlencoded(raw);
    assert_eq!(
        pairs,
        model_urlencoded(raw),
        "{:?}",
        String::from_utf8_lossy(raw)
    );
    assert!(pairs.len() <= PAIRS_COUNT_MAX);
    for (n, v) in &pairs {
        assert!(n.len() + v.len() <= 3 * raw.len());
    }

    // Round trip of arbitrary pairs.
    let fields: Vec<String> = raw
        .split(|&b| b == 0xFF)
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect();
    let want: Vec<(String, String)> = fields
        .chunks(2)
        .map(|c| (c[0].clone(), c.get(1).cloned().unwrap_or_default()))
        .collect();
    let mut q = String::new();
    for (i, (n, v)) in want.iter().enumerate() {
        if i > 0 {
            q.push('&');
            if flags & 8 == 8 {
                q.push('&');
            }
        }
        form_encode(n, flags & 1 == 1, flags & 2 == 2, &mut q);
        if !(v.is_empty() && !n.is_empty() && flags & 4 == 4) {
            q.push('=');
            form_encode(v, flags & 1 == 1, flags & 2 == 2, &mut q);
        }
    }
    let got = parse_urlencoded(q.as_bytes());
    let want = &want[..want.len().min(PAIRS_COUNT_MAX)];
    assert_eq!(got, want, "{q:?}");

    // Path decoding against the model; re-escaping what was decoded decodes the same.
    let s = String::from_utf8_lossy(raw);
    let d = percent_decode_path(&s);
    assert_eq!(d, model_path(&s), "{s:?}");
    if let Some(d) = &d {
        assert!(d.len() <= s.len() && !d.contains('\0'));
        assert_eq!(percent_decode_path(&path_escape(d)).as_ref(), Some(d));
        assert_eq!(percent_decode_path(&escape_segment(d)).as_ref(), Some(d));
    }

    // Escapers on the text and on each field.
    check_escapes(&s);
    for f in fields.iter().take(2) {
        check_escapes(f);
    }
});
