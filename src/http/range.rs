//! `Range` and `If-Range` request header evaluation (RFC 9110 §13.1.5, §14).
//!
//! Owns: deciding, for a representation of known length, whether a `Range` header asks for
//! the full representation (200), some byte ranges (206) or nothing satisfiable (416), and
//! whether an `If-Range` validator still matches the current representation.
//!
//! Limits / choices:
//! - Only the `bytes` unit (case-insensitive); any other unit or any syntax error makes the
//!   whole header ignored (`Full`), as RFC 9110 §14.2 permits.
//! - DoS guards: more than [`RANGES_COUNT_MAX`] range-specs, or a set whose summed lengths
//!   (before merging) exceed the representation length, is answered with `Full`.
//! - Overlapping or adjacent ranges are merged; the result keeps request order (a merged
//!   range sits where its earliest part was requested).
//! - Positions that overflow u64 saturate: an enormous first-pos is unsatisfiable, an
//!   enormous last-pos or suffix-length covers to the end.
//! - On a zero-length representation a suffix range (`-n`, n > 0) is satisfiable but empty,
//!   which is reported as `Full`; every other range is `Unsatisfiable`.
//! - `If-Range` with a date compares whole seconds for equality; it does not check that the
//!   Last-Modified date is a strong validator.

use crate::codec::trim_ows;
use std::ops::RangeInclusive;
use std::time::UNIX_EPOCH;

/// What to serve for a request with a `Range` header.
#[derive(Debug, PartialEq, Eq, Clone)]
pub enum RangeAnswer {
    /// Ignore the header and serve the whole representation (200).
    Full,
    /// Serve these inclusive byte ranges (206); never empty, each within `0..len`.
    Partial(Vec<RangeInclusive<u64>>),
    /// Valid header but no range overlaps the representation (416).
    Unsatisfiable,
}

/// More range-specs than this in one header are ignored (`Full`).
pub const RANGES_COUNT_MAX: usize = 16;

/// `1*DIGIT`, saturating at u64::MAX; None if empty or not all digits.
fn digits(s: &[u8]) -> Option<u64> {
    if s.is_empty() {
        return None;
    }
    let mut n: u64 = 0;
    for &b in s {
        if !b.is_ascii_digit() {
            return None;
        }
        n = n.saturating_mul(10).saturating_add(u64::from(b - b'0'));
    }
    Some(n)
}

/// Parses `bytes=a-b, c-, -n` against a representation of `len` bytes.
///
/// Syntactically invalid or unknown unit → `Full` (ignore the header, serve 200). Valid but
/// none satisfiable → `Unsatisfiable` (416). Ends past `len` are clamped; suffix `-n` with
/// `n > len` means the whole representation; `-0` is unsatisfiable. More than
/// [`RANGES_COUNT_MAX`] ranges, or sets whose total length exceeds `len`, → `Full`.
/// Satisfiable ranges are returned in request order, overlapping/adjacent ones merged.
pub fn parse_range(value: &[u8], len: u64) -> RangeAnswer {
    let value = trim_ows(value);
    let Some(eq) = value.iter().position(|&b| b == b'=') else {
        return RangeAnswer::Full;
    };
    if !value[..eq].eq_ignore_ascii_case(b"bytes") {
        return RangeAnswer::Full;
    }
    let mut specs = 0usize;
    let mut total: u128 = 0;
    let mut empty_suffix = false;
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for elem in value[eq + 1..].split(|&b| b == b',') {
        let elem = trim_ows(elem);
        if elem.is_empty() {
            continue; // empty list elements are allowed (RFC 9110 §5.6.1)
        }
        specs += 1;
        if specs > RANGES_COUNT_MAX {
            return RangeAnswer::Full;
        }
        match parse_spec(elem, len) {
            Spec::Invalid => return RangeAnswer::Full,
            Spec::Satisfiable(s, e) => {
                total += u128::from(e - s) + 1;
                ranges.push((s, e));
            }
            Spec::Unsatisfiable => {}
            Spec::EmptySuffix => empty_suffix = true,
        }
    }
    if specs == 0 {
        return RangeAnswer::Full;
    }
    if ranges.is_empty() {
        return if empty_suffix {
            RangeAnswer::Full
        } else {
            RangeAnswer::Unsatisfiable
        };
    }
    if total > u128::from(len) {
        return RangeAnswer::Full;
    }
    RangeAnswer::Partial(
        merge_in_order(&ranges)
            .into_iter()
            .map(|(s, e)| s..=e)
            .collect(),
    )
}

/// What one range-spec asks of a representation of known length.
enum Spec {
    /// Not a range-spec: the whole header is ignored.
    Invalid,
    /// These inclusive bounds, within the representation.
    Satisfiable(u64, u64),
    /// Nothing of the representation (a first-pos past its end, or `-0`).
    Unsatisfiable,
    /// A suffix range (`-n`, n > 0) of a zero-length representation: satisfiable but empty.
    EmptySuffix,
}

/// Reads one non-empty range-spec (`a-b`, `a-` or `-n`) against a representation of `len`
/// bytes, its ends clamped to it.
#[inline]
fn parse_spec(elem: &[u8], len: u64) -> Spec {
    let Some(dash) = elem.iter().position(|&b| b == b'-') else {
        return Spec::Invalid;
    };
    let (first, last) = (&elem[..dash], &elem[dash + 1..]);
    if first.is_empty() {
        // suffix-range: the last n bytes.
        let Some(n) = digits(last) else {
            return Spec::Invalid;
        };
        if n == 0 {
            Spec::Unsatisfiable
        } else if len == 0 {
            Spec::EmptySuffix
        } else {
            Spec::Satisfiable(len.saturating_sub(n), len - 1)
        }
    } else {
        let Some(first) = digits(first) else {
            return Spec::Invalid;
        };
        let last = if last.is_empty() {
            u64::MAX
        } else {
            match digits(last) {
                Some(l) if l >= first => l,
                _ => return Spec::Invalid,
            }
        };
        if first < len {
            Spec::Satisfiable(first, last.min(len - 1))
        } else {
            Spec::Unsatisfiable
        }
    }
}

/// Merges overlapping or adjacent ranges, keeping each merged range at the position of its
/// earliest requested part.
///
/// Invariant: entries of `out` never touch each other, so the union of a new range with
/// every entry it touches is one contiguous range that touches nothing else.
fn merge_in_order(ranges: &[(u64, u64)]) -> Vec<(u64, u64)> {
    let touches =
        |a: (u64, u64), b: (u64, u64)| a.0 <= b.1.saturating_add(1) && b.0 <= a.1.saturating_add(1);
    let mut out: Vec<(u64, u64)> = Vec::with_capacity(ranges.len());
    for &r in ranges {
        let Some(first) = out.iter().position(|&o| touches(o, r)) else {
            out.push(r);
            continue;
        };
        let mut merged = r;
        let mut i = first;
        while i < out.len() {
            if touches(out[i], r) {
                merged = (merged.0.min(out[i].0), merged.1.max(out[i].1));
                if i == first {
                    i += 1;
                } else {
                    out.remove(i);
                }
            } else {
                i += 1;
            }
        }
        out[first] = merged;
    }
    out
}

/// Evaluates an `If-Range` value against the current validators.
///
/// A strong entity-tag (`"..."`) matches iff it equals `etag` exactly (`etag` may be given
/// with or without its quotes; a weak `etag` never matches). Weak tags (`W/"..."`) never
/// match. Anything else is parsed as an HTTP-date and matches iff it equals
/// `strong_last_modified_secs` (seconds since the Unix epoch); None when the Last-Modified is
/// weak (RFC 9110 §13.1.5: a date matches only a strong one; see `content::date_is_strong`).
pub fn if_range_matches(
    if_range: &[u8],
    etag: &str,
    strong_last_modified_secs: Option<u64>,
) -> bool {
    let v = trim_ows(if_range);
    if v.starts_with(b"W/") {
        return false;
    }
    if v.first() == Some(&b'"') {
        if v.len() < 2 || v[v.len() - 1] != b'"' || etag.starts_with("W/") {
            return false;
        }
        let etag = etag.as_bytes();
        return if etag.first() == Some(&b'"') {
            v == etag
        } else {
            &v[1..v.len() - 1] == etag
        };
    }
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    match httpdate::parse_http_date(s) {
        Ok(t) => t
            .duration_since(UNIX_EPOCH)
            .is_ok_and(|d| Some(d.as_secs()) == strong_last_modified_secs),
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use RangeAnswer::*;

    fn p(v: &str, len: u64) -> RangeAnswer {
        parse_range(v.as_bytes(), len)
    }

    fn part(r: &[(u64, u64)]) -> RangeAnswer {
        Partial(r.iter().map(|&(s, e)| s..=e).collect())
    }

    #[test]
    fn int_range() {
        assert_eq!(p("bytes=0-499", 10_000), part(&[(0, 499)]));
        assert_eq!(p("bytes=500-999", 10_000), part(&[(500, 999)]));
        assert_eq!(p("bytes=5-5", 10), part(&[(5, 5)]));
        assert_eq!(
            p("BYTES=1-2", 10),
            part(&[(1, 2)]),
            "unit is case-insensitive"
        );
    }

    #[test]
    fn open_ended_range() {
        assert_eq!(p("bytes=9500-", 10_000), part(&[(9500, 9999)]));
        assert_eq!(p("bytes=0-", 10), part(&[(0, 9)]));
    }

    #[test]
    fn suffix_range() {
        assert_eq!(p("bytes=-500", 10_000), part(&[(9500, 9999)]));
        assert_eq!(p("bytes=-1", 10), part(&[(9, 9)]));
    }

    #[test]
    fn suffix_longer_than_representation_is_whole() {
        assert_eq!(p("bytes=-500", 100), part(&[(0, 99)]));
        assert_eq!(p("bytes=-99999999999999999999999", 100), part(&[(0, 99)]));
    }

    #[test]
    fn end_past_len_is_clamped() {
        assert_eq!(p("bytes=90-200", 100), part(&[(90, 99)]));
        assert_eq!(p("bytes=0-99999999999999999999999", 100), part(&[(0, 99)]));
    }

    #[test]
    fn unsatisfiable_is_416() {
        assert_eq!(p("bytes=100-", 100), Unsatisfiable);
        assert_eq!(p("bytes=100-200", 100), Unsatisfiable);
        assert_eq!(p("bytes=-0", 100), Unsatisfiable);
        assert_eq!(p("bytes=99999999999999999999999-", 100), Unsatisfiable);
        assert_eq!(p("bytes=100-150, 200-", 100), Unsatisfiable);
        assert_eq!(p("bytes=0-0", 0), Unsatisfiable);
        assert_eq!(p("bytes=0-", 0), Unsatisfiable);
        assert_eq!(p("bytes=-0", 0), Unsatisfiable);
    }

    #[test]
    fn unsatisfiable_parts_are_dropped() {
        assert_eq!(p("bytes=200-300, 0-1", 100), part(&[(0, 1)]));
        assert_eq!(p("bytes=-0, 5-6", 100), part(&[(5, 6)]));
    }

    #[test]
    fn empty_representation_with_suffix_is_full() {
        assert_eq!(p("bytes=-5", 0), Full);
    }

    #[test]
    fn invalid_syntax_is_full() {
        for v in [
            "",
            "bytes",
            "bytes=",
            "bytes= ",
            "bytes=,",
            "bytes=abc",
            "bytes=5",
            "bytes=-",
            "bytes=--5",
            "bytes=1-2-3",
            "bytes=5-4",
            "bytes=+1-2",
            "bytes=0x1-2",
            "bytes=1 -2",
            "bytes =1-2",
            "items=0-1",
            "bytes=0-1;x",
            "bytes=0-1, oops",
        ] {
            assert_eq!(p(v, 100), Full, "{v:?}");
        }
        assert_eq!(parse_range(b"bytes=\xff-1", 100), Full);
    }

    #[test]
    fn whitespace_around_list_elements() {
        assert_eq!(p(" bytes=0-1 ,\t5-6 ", 100), part(&[(0, 1), (5, 6)]));
        assert_eq!(p("bytes=0-1,,5-6,", 100), part(&[(0, 1), (5, 6)]));
    }

    #[test]
    fn multiple_ranges_in_request_order() {
        assert_eq!(p("bytes=0-0,-1", 10_000), part(&[(0, 0), (9999, 9999)]));
        assert_eq!(p("bytes=90-99, 0-9", 100), part(&[(90, 99), (0, 9)]));
        // A later range that swallows an earlier one takes the earlier one's place.
        assert_eq!(p("bytes=50-59, 0-9, 20-", 100), part(&[(20, 99), (0, 9)]));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        assert_eq!(p("bytes=0-4, 5-9", 100), part(&[(0, 9)]));
        assert_eq!(p("bytes=10-19, 0-4, 3-12", 100), part(&[(0, 19)]));
        assert_eq!(p("bytes=50-60, 0-4, 55-70", 100), part(&[(50, 70), (0, 4)]));
        assert_eq!(p("bytes=30-39, 0-9, 10-29", 100), part(&[(0, 39)]));
        assert_eq!(
            p("bytes=0-1, 7-8, 3-4", 100),
            part(&[(0, 1), (7, 8), (3, 4)])
        );
    }

    #[test]
    fn too_many_ranges_is_full() {
        let sixteen: Vec<String> = (0..16).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let v = format!("bytes={}", sixteen.join(","));
        assert!(matches!(p(&v, 1000), Partial(r) if r.len() == 16));
        let seventeen: Vec<String> = (0..17).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        let v = format!("bytes={}", seventeen.join(","));
        assert_eq!(p(&v, 1000), Full);
    }

    #[test]
    fn overlapping_sets_larger_than_representation_are_full() {
        assert_eq!(p("bytes=0-,0-", 100), Full);
        assert_eq!(p("bytes=0-59, 40-99", 100), Full);
        assert_eq!(p("bytes=-60, 0-59", 100), Full);
        // Overlap whose total still fits is merged.
        assert_eq!(p("bytes=0-49, 40-49", 100), part(&[(0, 49)]));
    }

    #[test]
    fn if_range_strong_etag() {
        assert!(if_range_matches(b"\"abc\"", "\"abc\"", Some(0)));
        assert!(
            if_range_matches(b" \"abc\" ", "abc", Some(0)),
            "etag given without quotes"
        );
        assert!(!if_range_matches(b"\"abd\"", "\"abc\"", Some(0)));
        assert!(!if_range_matches(b"\"abc", "\"abc\"", Some(0)));
        assert!(!if_range_matches(b"\"", "\"\"", Some(0)));
    }

    #[test]
    fn if_range_weak_etag_never_matches() {
        assert!(!if_range_matches(b"W/\"abc\"", "W/\"abc\"", Some(0)));
        assert!(!if_range_matches(b"W/\"abc\"", "\"abc\"", Some(0)));
        assert!(!if_range_matches(b"\"abc\"", "W/\"abc\"", Some(0)));
    }

    #[test]
    fn if_range_date() {
        // Sun, 06 Nov 1994 08:49:37 GMT = 784111777
        assert!(if_range_matches(
            b"Sun, 06 Nov 1994 08:49:37 GMT",
            "\"x\"",
            Some(784_111_777)
        ));
        assert!(if_range_matches(
            b"Sunday, 06-Nov-94 08:49:37 GMT",
            "\"x\"",
            Some(784_111_777)
        ));
        assert!(if_range_matches(
            b"Sun Nov  6 08:49:37 1994",
            "\"x\"",
            Some(784_111_777)
        ));
        assert!(!if_range_matches(
            b"Sun, 06 Nov 1994 08:49:38 GMT",
            "\"x\"",
            Some(784_111_777)
        ));
        assert!(!if_range_matches(b"not a date", "\"x\"", Some(784_111_777)));
        assert!(!if_range_matches(b"\xff\xfe", "\"x\"", Some(0)));
        assert!(!if_range_matches(b"", "\"x\"", Some(0)));
        assert!(
            !if_range_matches(b"Sun, 06 Nov 1994 08:49:37 GMT", "\"x\"", None),
            "a weak Last-Modified matches no date"
        );
    }
}
