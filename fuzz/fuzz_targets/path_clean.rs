//! Fuzz target for the request-path canonicalisation of `fastdfs::router`: `clean_path` (Go's
//! path.Clean for URL paths, keeping a trailing slash) and `redirect_target` (the 301
//! `Location`), as `router::dispatch` uses them.
//!
//! Properties (beyond "never panics"):
//! - `clean_path` equals an independent port of Go's `net/http` `cleanPath` (`path.Clean`
//!   with a leading `/` added and the trailing slash kept).
//! - A cleaned path starts with exactly one `/`, has no empty, `.` or `..` segment (so no
//!   `//`), keeps the trailing slash iff the input had one (or is `/`), is made of input
//!   segments only, is at most one byte longer than the input, and cleaning is idempotent.
//! - `redirect_target` keeps the path but encodes every `\`, so a `Location` never starts with
//!   `//` or `/\` (browsers read both as another host), also after a browser's URL
//!   preprocessing (tab/CR/LF removed, `\` read as `/`) when the path held no such
//!   characters; following the redirect lands on a clean path (no redirect loop).
//! - Through the real request parser (`http::head::parse_head` on `GET <target> HTTP/1.1`),
//!   the redirect `dispatch` would answer (`Location` = target of the cleaned path, plus
//!   `?query`) never leaves the origin, never holds CR/LF/NUL, and the path of the Location
//!   is answered without another redirect. `GET /./\evil.com` never redirects to
//!   `//evil.com` or `/\evil.com`.
//!
//! Input layout: byte 0 = flags (bit 0: prefix the target with `/`, bit 1: append `?q=1`),
//! rest = the path (lossy UTF-8 for the direct calls, raw bytes for the request line).
#![no_main]

use bytes::BytesMut;
use fastdfs::http::head::{parse_head, Limits};
use fastdfs::router::{clean_path, redirect_location, redirect_target};
use libfuzzer_sys::fuzz_target;

/// Go's path.Clean (lexical), ported independently.
fn go_path_clean(p: &str) -> String {
    if p.is_empty() {
        return ".".into();
    }
    let rooted = p.starts_with('/');
    let mut out: Vec<&str> = Vec::new();
    let mut dotdot = 0; // leading `..` kept in a relative path
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                if out.len() > dotdot {
                    out.pop();
                } else if !rooted {
                    out.push("..");
                    dotdot += 1;
                }
            }
            s => out.push(s),
        }
    }
    let body = out.join("/");
    match (rooted, body.is_empty()) {
        (true, _) => format!("/{body}"),
        (false, true) => ".".into(),
        (false, false) => body,
    }
}

/// Go's net/http cleanPath.
fn go_clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    let p = if p.starts_with('/') {
        p.to_string()
    } else {
        format!("/{p}")
    };
    let mut np = go_path_clean(&p);
    if p.ends_with('/') && np != "/" {
        np.push('/');
    }
    np
}

/// What a browser does to a `Location` before parsing it (WHATWG URL: leading/trailing C0
/// controls and spaces stripped, tab/CR/LF removed anywhere, `\` is `/` for http(s)).
fn browser_view(location: &str) -> String {
    location
        .trim_matches(|c: char| c <= ' ')
        .chars()
        .filter(|c| !matches!(c, '\t' | '\r' | '\n'))
        .map(|c| if c == '\\' { '/' } else { c })
        .collect()
}

fn check_clean(p: &str) -> String {
    let c = clean_path(p);
    assert_eq!(c, clean_path(p), "not deterministic");
    assert_eq!(c, go_clean_path(p), "clean_path({p:?}) differs from Go");
    assert!(c.starts_with('/'), "{p:?} -> {c:?}");
    assert!(c == "/" || !c.starts_with("//"), "{p:?} -> {c:?}");
    assert!(!c.contains("//"), "{p:?} -> {c:?}");
    let inner = c[1..].strip_suffix('/').unwrap_or(&c[1..]);
    if !inner.is_empty() {
        for seg in inner.split('/') {
            assert!(
                !seg.is_empty() && seg != "." && seg != "..",
                "{p:?} -> {c:?}"
            );
            assert!(
                p.split('/').any(|s| s == seg),
                "{p:?} -> {c:?}: new segment {seg:?}"
            );
        }
    }
    assert_eq!(
        c.ends_with('/'),
        c == "/" || p.ends_with('/'),
        "{p:?} -> {c:?}: trailing slash"
    );
    assert!(c.len() <= p.len() + 1, "{p:?} -> {c:?}");
    assert_eq!(clean_path(&c), c, "not idempotent");
    c
}

fn check_redirect(p: &str, c: &str) -> String {
    let l = redirect_target(c);
    assert!(l.starts_with('/'), "{l:?}");
    assert!(
        !l.starts_with("//") && !l.starts_with("/\\"),
        "{p:?} -> {l:?}"
    );
    assert!(!l.contains('\\'), "{l:?}");
    assert_eq!(
        l.replace("%5C", "\\"),
        c.replace("%5C", "\\"),
        "path changed: {l:?}"
    );
    assert_eq!(clean_path(&l), l, "{p:?}: Location {l:?} redirects again");
    if !p.contains(['\t', '\r', '\n']) {
        let seen = browser_view(&l);
        assert!(
            !seen.starts_with("//"),
            "{p:?}: Location {l:?} read as {seen:?}"
        );
    }
    l
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };

    // Direct calls on arbitrary text.
    let p = String::from_utf8_lossy(raw);
    let c = check_clean(&p);
    check_redirect(&p, &c);

    // As router::dispatch sees it: the raw path of a parsed request.
    let mut line = b"GET ".to_vec();
    if flags & 1 == 1 {
        line.push(b'/');
    }
    line.extend_from_slice(raw);
    if flags & 2 == 2 {
        line.extend_from_slice(b"?q=1");
    }
    line.extend_from_slice(b" HTTP/1.1\r\nHost: example.com\r\n\r\n");
    let mut buf = BytesMut::from(&line[..]);
    let Ok(Some(head)) = parse_head(&mut buf, &Limits::default()) else {
        return;
    };
    let path = head.path();
    let cleaned = check_clean(path);
    if cleaned == path {
        return;
    }
    // router::dispatch's 301 (or its 414 when the Location would be too long to follow).
    let q = head.query();
    let target = check_redirect(path, &cleaned);
    let Some(location) = redirect_location(&cleaned, q) else {
        let full = target.len() + if q.is_empty() { 0 } else { 1 + q.len() };
        assert!(full > Limits::default().uri_bytes_max, "refused a short Location");
        return;
    };
    assert!(!location.starts_with("//") && !location.starts_with("/\\"));
    let seen = browser_view(&location);
    assert!(
        !seen.starts_with("//"),
        "{path:?}: Location {location:?} read as {seen:?}"
    );
    assert!(
        !location.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0),
        "{location:?}"
    );
    // The redirect is followed: that request is not redirected again.
    let mut again =
        format!("GET {location} HTTP/1.1\r\nHost: example.com\r\n\r\n").into_bytes()[..].into();
    let head = parse_head(&mut again, &Limits::default())
        .unwrap_or_else(|e| panic!("Location {location:?} is not a valid target: {e:?}"))
        .expect("a complete head");
    assert_eq!(clean_path(head.path()), head.path(), "redirect loop");
});
