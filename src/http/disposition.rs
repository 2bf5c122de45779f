//! `Content-Disposition` for downloads (RFC 6266 / RFC 8187): never built from raw input
//! (docs/DEFECTS.md #12). The ASCII `filename=` fallback is quoted with unsafe characters
//! replaced; the exact name travels in `filename*=UTF-8''<percent-encoded>`.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

/// RFC 8187 attr-char: ALPHA / DIGIT / "!#$&+-.^_`|~" stay literal.
const ATTR: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'!')
    .remove(b'#')
    .remove(b'$')
    .remove(b'&')
    .remove(b'+')
    .remove(b'-')
    .remove(b'.')
    .remove(b'^')
    .remove(b'_')
    .remove(b'`')
    .remove(b'|')
    .remove(b'~');

/// `attachment` or `inline`, with the file name when one is given. Control characters in the
/// name are dropped (they can never reach the header).
pub fn content_disposition(kind: &str, name: Option<&str>) -> String {
    let Some(name) = name.map(|n| n.chars().filter(|c| !c.is_control()).collect::<String>()) else {
        return kind.to_string();
    };
    if name.is_empty() {
        return kind.to_string();
    }
    let fallback: String = name
        .chars()
        .map(|c| {
            if c.is_ascii() && c != '"' && c != '\\' && c != ';' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let encoded = utf8_percent_encode(&name, ATTR);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_name() {
        assert_eq!(
            content_disposition("attachment", Some("a.txt")),
            "attachment; filename=\"a.txt\"; filename*=UTF-8''a.txt"
        );
    }

    #[test]
    fn header_injection_is_impossible() {
        let v = content_disposition("attachment", Some("a\r\nX-Evil: 1"));
        assert!(!v.contains('\r') && !v.contains('\n'), "{v}");
    }

    #[test]
    fn unicode_and_quotes() {
        let v = content_disposition("inline", Some("报告 \"x\".pdf"));
        assert!(v.starts_with("inline; filename=\"_"), "{v}");
        assert!(
            v.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%22x%22.pdf"),
            "{v}"
        );
    }

    #[test]
    fn no_name() {
        assert_eq!(content_disposition("attachment", None), "attachment");
    }
}
