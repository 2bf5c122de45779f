//! Query-string / `application/x-www-form-urlencoded` parsing and URL-path percent-decoding.
//!
//! Owns: splitting `a=1&b=x+y` into decoded (name, value) pairs, and decoding `%XX`
//! escapes in a request path.
//!
//! Behaviour / limits:
//! - Pairs are separated by `&` only (`;` is kept literally); empty pairs (`a=1&&b=2`) are
//!   skipped; a pair without `=` gets an empty value; an empty name (`=v`) is kept as `""`,
//!   like Go's `url.ParseQuery`, which go-fastdfs clients rely on.
//! - `+` decodes to a space, `%XX` to the byte; an invalid escape (`%zz`, a trailing `%`) is
//!   kept literally instead of dropping the pair; invalid UTF-8 is replaced lossily.
//! - At most [`PAIRS_COUNT_MAX`] pairs are returned; the rest of the input is ignored.
//! - [`percent_decode_path`] does not turn `+` into a space, does not normalise `.`/`..`
//!   segments, and refuses results that are not UTF-8 or that contain NUL.

use percent_encoding::percent_decode_str;

/// Maximum number of pairs returned by [`parse_urlencoded`].
pub const PAIRS_COUNT_MAX: usize = 256;

/// Decodes one form component: `+` → space, `%XX` → byte, invalid escapes kept.
fn decode_component(s: &[u8]) -> String {
    if memchr::memchr2(b'+', b'%', s).is_none() {
        return String::from_utf8_lossy(s).into_owned();
    }
    let mut out = Vec::with_capacity(s.len());
    crate::codec::form_decode_into(s, &mut out);
    match String::from_utf8(out) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

/// Parses a query string or urlencoded form body into decoded (name, value) pairs, in
/// order, at most [`PAIRS_COUNT_MAX`] of them.
pub fn parse_urlencoded(s: &[u8]) -> Vec<(String, String)> {
    parse_urlencoded_except(s, |_| false)
}

/// [`parse_urlencoded`] without the pairs whose raw (still encoded) name `skip` matches:
/// those are neither decoded nor counted.
pub fn parse_urlencoded_except(s: &[u8], skip: impl Fn(&[u8]) -> bool) -> Vec<(String, String)> {
    let mut out = Vec::new();
    // memchr rather than `split`: an S3 listener's presigned GET passes its whole
    // 450-byte query here, to skip every pair of it.
    let mut rest = s;
    while !rest.is_empty() {
        let end = memchr::memchr(b'&', rest).unwrap_or(rest.len());
        let pair = &rest[..end];
        rest = rest.get(end + 1..).unwrap_or_default();
        if pair.is_empty() {
            continue;
        }
        let (name, value) = match memchr::memchr(b'=', pair) {
            Some(i) => (&pair[..i], &pair[i + 1..]),
            None => (pair, &b""[..]),
        };
        if skip(name) {
            continue;
        }
        if out.len() == PAIRS_COUNT_MAX {
            break;
        }
        out.push((decode_component(name), decode_component(value)));
    }
    out
}

/// Decodes `%XX` escapes in a URL path, borrowing `s` when it has none. `None` if the result
/// is not valid UTF-8 or contains a NUL byte. Invalid escapes are kept literally; `+` stays
/// `+`.
pub fn percent_decode_path(s: &str) -> Option<std::borrow::Cow<'_, str>> {
    // The common path has no escape: nothing to decode, and it is UTF-8 already.
    if !s.bytes().any(|b| b == b'%' || b == 0) {
        return Some(std::borrow::Cow::Borrowed(s));
    }
    let decoded = percent_decode_str(s).decode_utf8().ok()?;
    if decoded.contains('\0') {
        return None;
    }
    Some(decoded)
}

/// Appends `%XX` (upper-case hex) for `b`, without the formatting machinery.
fn push_pct(out: &mut String, b: u8) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    out.push('%');
    out.push(HEX[usize::from(b >> 4)] as char);
    out.push(HEX[usize::from(b & 15)] as char);
}

/// Go's url.PathEscape for a single segment: letters, digits, `-_.~` and `$&+:=@` stay, every
/// other byte (`,` and `;` included) is `%XX`.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_kept(&mut out, s, b"-_.~$&+:=@");
    out
}

/// A decoded URL path as Go's `url.URL{Path: path}.String()` writes it (`EscapedPath` in its
/// path mode): letters, digits, `-_.~`, `/` and `$&+,:;=@` stay, every other byte is `%XX`
/// (a backslash too, non-ASCII bytes too).
pub fn go_escaped_path(path: &str) -> String {
    let mut out = String::with_capacity(path.len() + 8);
    push_kept(&mut out, path, b"-_.~/$&+,:;=@");
    out
}

/// `s` appended to `out` with every byte but letters, digits and `kept` as `%XX`.
fn push_kept(out: &mut String, s: &str, kept: &[u8]) {
    for &b in s.as_bytes() {
        if b.is_ascii_alphanumeric() || kept.contains(&b) {
            out.push(b as char);
        } else {
            push_pct(out, b);
        }
    }
}

/// The link to the directory entry `name` in a listing, as Go's `url.URL{Path: name}.String()`
/// writes it: path-escaped per segment, `./` in front only when the first segment has a `:`,
/// so a name such as `javascript:alert(1)` never reads as a scheme.
pub fn listing_href(name: &str) -> String {
    let href = path_escape(name).replace("%2F", "/");
    if name.split('/').next().is_some_and(|s| s.contains(':')) {
        format!("./{href}")
    } else {
        href
    }
}

/// A file name as a query value, `?name=<this>`: go-fastdfs' `url.PathEscape` (a space is
/// `%20`, UTF-8 bytes are escaped), except that `&`, `+` and `=`, which it leaves and which
/// change a query's meaning, are escaped too.
pub fn push_name_escaped(out: &mut String, s: &str) {
    push_kept(out, s, b"-_.~$:@");
}

/// Percent-encodes what would change a URL path's meaning or break it: `%`, `?`, `#`,
/// spaces, controls and the other ASCII characters not allowed in a path segment. UTF-8
/// beyond ASCII stays as it is (go-fastdfs clients get the names they sent; `ascii_url`
/// encodes it for strict clients).
pub fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    push_segment(&mut out, s);
    out
}

/// `escape_segment(s)` appended to `out`. Bytes, not characters: every byte of a non-ASCII
/// character is kept, and the runs between escapes are copied whole.
pub fn push_segment(out: &mut String, s: &str) {
    let keep = |b: u8| {
        !b.is_ascii()
            || b.is_ascii_alphanumeric()
            || matches!(
                b,
                b'-' | b'.'
                    | b'_'
                    | b'~'
                    | b'!'
                    | b'$'
                    | b'&'
                    | b'\''
                    | b'('
                    | b')'
                    | b'*'
                    | b'+'
                    | b','
                    | b';'
                    | b'='
                    | b':'
                    | b'@'
            )
    };
    let mut done = 0;
    for (i, b) in s.bytes().enumerate() {
        if !keep(b) {
            // An ASCII byte: a character boundary on both sides.
            out.push_str(&s[done..i]);
            push_pct(out, b);
            done = i + 1;
        }
    }
    out.push_str(&s[done..]);
}

/// A URL path with every non-ASCII byte percent-encoded too (for HTTP clients that accept
/// only ASCII request targets).
pub fn ascii_url(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            push_pct(&mut out, b);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_upper_case_percent_hex_of_every_byte_not_kept() {
        for b in 0u8..=255 {
            let reference = format!("%{b:02X}");
            let raw = [b];
            if let Ok(one) = std::str::from_utf8(&raw) {
                let kept = b.is_ascii_alphanumeric() || b"-_.~$&+:=@".contains(&b);
                let want = if kept {
                    one.to_string()
                } else {
                    reference.clone()
                };
                assert_eq!(path_escape(one), want, "{b:#x}");
            }
        }
        // Non-ASCII: each UTF-8 byte.
        assert_eq!(path_escape("é"), "%C3%A9");
        let mut name = String::new();
        push_name_escaped(&mut name, "é ~(1)");
        assert_eq!(name, "%C3%A9%20~%281%29");
        assert_eq!(ascii_url("/a é"), "/a %C3%A9");
        assert_eq!(escape_segment("a b/é\u{7f}"), "a%20b%2Fé%7F");
    }

    #[test]
    fn path_escape_is_gos_url_path_escape() {
        // Values from Go 1.22's url.PathEscape.
        assert_eq!(path_escape("a;b,c"), "a%3Bb%2Cc");
        assert_eq!(path_escape("$&+:=@-_.~"), "$&+:=@-_.~");
        assert_eq!(path_escape("a b/c?d#e"), "a%20b%2Fc%3Fd%23e");
        assert_eq!(path_escape("中"), "%E4%B8%AD");
    }

    #[test]
    fn a_name_escaped_for_a_query_parses_back_whole() {
        for name in [
            "a&b=c.txt",
            "x y+z#1.txt",
            "plain.txt",
            "中文.txt",
            "100%.txt",
        ] {
            let mut q = "name=".to_string();
            push_name_escaped(&mut q, name);
            q.push_str("&download=1");
            let pairs = parse_urlencoded(q.as_bytes());
            assert_eq!(pairs[0], ("name".to_string(), name.to_string()), "{q}");
            assert_eq!(pairs.len(), 2, "{q}");
        }
    }

    fn pairs(s: &str) -> Vec<(String, String)> {
        parse_urlencoded(s.as_bytes())
    }

    fn v(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn basic_pairs_and_decoding() {
        assert_eq!(
            pairs("a=1&b=x+y&c=%41%zz"),
            v(&[("a", "1"), ("b", "x y"), ("c", "A%zz")])
        );
    }

    #[test]
    fn empty_pairs_skipped_and_missing_values() {
        assert_eq!(pairs(""), v(&[]));
        assert_eq!(pairs("&&"), v(&[]));
        assert_eq!(pairs("a&&b=&c"), v(&[("a", ""), ("b", ""), ("c", "")]));
    }

    #[test]
    fn empty_keys_are_kept() {
        assert_eq!(pairs("=v&=&a=1"), v(&[("", "v"), ("", ""), ("a", "1")]));
    }

    #[test]
    fn values_may_contain_equals_and_semicolons() {
        assert_eq!(pairs("a=b=c&d=1;2"), v(&[("a", "b=c"), ("d", "1;2")]));
    }

    #[test]
    fn escapes_decode_in_names_and_values() {
        assert_eq!(
            pairs("na%6De=%E4%BD%A0%E5%A5%BD&p=%2Fgroup1%2Fa%20b.txt&plus=%2B"),
            v(&[
                ("name", "\u{4f60}\u{597d}"),
                ("p", "/group1/a b.txt"),
                ("plus", "+")
            ])
        );
    }

    #[test]
    fn invalid_escapes_kept_literally() {
        assert_eq!(
            pairs("a=%&b=%4&c=%%41&d=%g1&e=100%"),
            v(&[
                ("a", "%"),
                ("b", "%4"),
                ("c", "%A"),
                ("d", "%g1"),
                ("e", "100%")
            ])
        );
    }

    #[test]
    fn invalid_utf8_is_lossy() {
        assert_eq!(pairs("a=%FF%41"), v(&[("a", "\u{fffd}A")]));
        assert_eq!(parse_urlencoded(b"a\xff=1"), v(&[("a\u{fffd}", "1")]));
    }

    #[test]
    fn at_most_256_pairs() {
        let s: Vec<String> = (0..300).map(|i| format!("k{i}={i}")).collect();
        let got = pairs(&s.join("&"));
        assert_eq!(got.len(), PAIRS_COUNT_MAX);
        assert_eq!(got[255], ("k255".to_string(), "255".to_string()));
        // Empty pairs do not count.
        let s = format!("{}a=1", "&".repeat(1000));
        assert_eq!(pairs(&s), v(&[("a", "1")]));
    }

    #[test]
    fn path_decoding() {
        assert_eq!(
            percent_decode_path("/group1/a%20b.txt").as_deref(),
            Some("/group1/a b.txt")
        );
        assert_eq!(percent_decode_path("/a+b").as_deref(), Some("/a+b"));
        assert_eq!(
            percent_decode_path("/%E4%BD%A0").as_deref(),
            Some("/\u{4f60}")
        );
        assert_eq!(percent_decode_path("/100%").as_deref(), Some("/100%"));
        assert_eq!(percent_decode_path("/%zz").as_deref(), Some("/%zz"));
        assert_eq!(percent_decode_path("/%2e%2E/x").as_deref(), Some("/../x"));
        assert_eq!(percent_decode_path("/%FF"), None);
        assert_eq!(percent_decode_path("/a%00b"), None);
        assert_eq!(percent_decode_path("").as_deref(), Some(""));
    }

    #[test]
    fn returned_paths_serve_exactly_the_file() {
        assert_eq!(escape_segment("a b?c#d%41.txt"), "a%20b%3Fc%23d%2541.txt");
        assert_eq!(escape_segment("中文(1).jpg"), "中文(1).jpg");
        assert_eq!(ascii_url("/g/中"), "/g/%E4%B8%AD");
    }

    #[test]
    fn path_escape_like_go() {
        assert_eq!(path_escape("a b/c.txt"), "a%20b%2Fc.txt");
        assert_eq!(path_escape("中"), "%E4%B8%AD");
    }
}
