//! `Content-Disposition` for downloads (RFC 6266 / RFC 8187): never built from raw input
//! (docs/DEFECTS.md #12). The exact name travels in `filename*=UTF-8''<percent-encoded>`;
//! `filename=` carries it too, quoted, for the clients that read only that one (curl -J),
//! with the characters that could end or bend the value replaced.

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
        .map(|c| if plain(c) { c } else { '_' })
        .collect();
    let encoded = utf8_percent_encode(&name, ATTR);
    format!("{kind}; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

/// A character `filename="..."` carries as it is. Non-ASCII text is kept as UTF-8 (an
/// obs-text field value): curl -J saves under it, as it does with go-fastdfs' raw name;
/// clients that read `filename*` never look at it. Not kept: what ends the quoted string
/// or a client's parse of it (`"`, `\`, `;`) and the invisible characters that reorder or
/// hide text (bidi controls, zero-width marks: `txt.exe` shown as `exe.txt`).
fn plain(c: char) -> bool {
    if c.is_ascii() {
        return !matches!(c, '"' | '\\' | ';');
    }
    !matches!(c, '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{206f}' | '\u{feff}')
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
        assert!(v.starts_with("inline; filename=\"报告 _x_.pdf\";"), "{v}");
        assert!(
            v.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%20%22x%22.pdf"),
            "{v}"
        );
    }

    #[test]
    fn invisible_reordering_characters_are_replaced_in_the_quoted_name() {
        let v = content_disposition("attachment", Some("a\u{202e}txt.exe\u{200b}"));
        assert!(v.starts_with("attachment; filename=\"a_txt.exe_\";"), "{v}");
        assert!(v.ends_with("UTF-8''a%E2%80%AEtxt.exe%E2%80%8B"), "{v}");
    }

    #[test]
    fn no_name() {
        assert_eq!(content_disposition("attachment", None), "attachment");
    }
}
