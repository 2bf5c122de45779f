//! The little XML S3 speaks: escaping for the documents we write, and reading the few request
//! documents we accept (DeleteObjects' `<Delete>`), by element name, with entities decoded.
//! No DTDs, no external entities: a document is plain text to us.

/// A page of `items` (in part-number order, `number` of each) after `marker`, at most `max`,
/// and whether more follow it (ListParts, GetObjectAttributes' parts).
pub fn page_after<T>(
    items: &[T],
    number: impl Fn(&T) -> u32,
    marker: u32,
    max: usize,
) -> (Vec<&T>, bool) {
    let mut rest: Vec<&T> = items.iter().filter(|p| number(p) > marker).collect();
    let truncated = rest.len() > max;
    rest.truncate(max);
    (rest, truncated)
}

/// The paging fields of a page of parts: `NextPartNumberMarker` (the page's last part, when
/// it has one), `MaxParts`, `IsTruncated`.
pub fn push_part_paging(body: &mut String, last: Option<u32>, max: usize, truncated: bool) {
    if let Some(last) = last {
        body.push_str(&format!(
            "<NextPartNumberMarker>{last}</NextPartNumberMarker>"
        ));
    }
    body.push_str(&format!(
        "<MaxParts>{max}</MaxParts><IsTruncated>{truncated}</IsTruncated>"
    ));
}

/// Escapes text for an element's content or an attribute.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            // Characters XML 1.0 cannot carry at all are written as character references
            // (S3 does the same for keys with control characters).
            c if (c as u32) < 0x20 && !matches!(c, '\t' | '\n' | '\r') => {
                out.push_str(&format!("&#x{:X};", c as u32));
            }
            c => out.push(c),
        }
    }
    out
}

/// Decodes the five named entities and numeric character references; None for anything else
/// (an unknown entity, a reference to an invalid character).
pub fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(at) = rest.find('&') {
        out.push_str(&rest[..at]);
        let tail = &rest[at + 1..];
        let end = tail.find(';')?;
        let ent = &tail[..end];
        let c = match ent {
            "amp" => '&',
            "lt" => '<',
            "gt" => '>',
            "quot" => '"',
            "apos" => '\'',
            _ => {
                let n = if let Some(hex) = ent.strip_prefix("#x").or(ent.strip_prefix("#X")) {
                    u32::from_str_radix(hex, 16).ok()?
                } else {
                    ent.strip_prefix('#')?.parse::<u32>().ok()?
                };
                char::from_u32(n)?
            }
        };
        out.push(c);
        rest = &tail[end + 1..];
    }
    out.push_str(rest);
    Some(out)
}

/// The raw contents of every `<name>...</name>` element in `doc`, in order (no nesting of the
/// same name; attributes on the start tag are allowed).
pub fn elements<'a>(doc: &'a str, name: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{name}"), format!("</{name}>"));
    let mut out = Vec::new();
    let mut rest = doc;
    while let Some(at) = rest.find(&open) {
        let after = &rest[at + open.len()..];
        // `<Key>` but not `<KeyMarker>`; `<Key/>` is an empty element.
        match after.as_bytes().first() {
            Some(b'>') | Some(b' ') | Some(b'\t') | Some(b'\r') | Some(b'\n') => {}
            Some(b'/') if after.starts_with("/>") => {
                out.push("");
                rest = &after[2..];
                continue;
            }
            _ => {
                rest = after;
                continue;
            }
        }
        let Some(gt) = after.find('>') else { break };
        let body = &after[gt + 1..];
        let Some(end) = body.find(&close) else { break };
        out.push(&body[..end]);
        rest = &body[end + close.len()..];
    }
    out
}

/// The text of the first `<name>` element, decoded.
pub fn text_of(doc: &str, name: &str) -> Option<String> {
    elements(doc, name).first().and_then(|t| unescape(t.trim()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_through_escape_and_unescape() {
        for s in ["a<b>&\"c'", "plain", "é/日本", "tab\there"] {
            assert_eq!(unescape(&escape(s)).as_deref(), Some(s));
        }
        assert_eq!(escape("a\u{1}b"), "a&#x1;b");
        assert_eq!(unescape("&#x41;&#66;").as_deref(), Some("AB"));
        assert_eq!(unescape("&bogus;"), None);
        assert_eq!(unescape("&#xD800;"), None);
        assert_eq!(unescape("a & b"), None);
    }

    #[test]
    fn elements_are_found_by_exact_name() {
        let doc = "<Delete><Quiet>true</Quiet><Object><Key>a&amp;b</Key></Object>\
                   <Object><Key>c</Key><VersionId>v</VersionId></Object><KeyMarker>x</KeyMarker>\
                   <Object><Key/></Object></Delete>";
        let objects = elements(doc, "Object");
        assert_eq!(objects.len(), 3);
        let keys: Vec<String> = objects
            .iter()
            .map(|o| text_of(o, "Key").unwrap_or_default())
            .collect();
        assert_eq!(keys, ["a&b", "c", ""]);
        assert_eq!(text_of(doc, "Quiet").as_deref(), Some("true"));
    }
}
