//! Fuzz target for `fastdfs::http::range`: `parse_range` on arbitrary header values and
//! lengths must never panic and must only return ranges that are in bounds, non-empty,
//! non-touching, at most RANGES_COUNT_MAX, and no larger in total than the representation;
//! `if_range_matches` must never panic.
//!
//! Input layout: bytes 0..8 = representation length (u64 LE; byte 8 bit 0 picks a small
//! length instead), rest = header value.
#![no_main]

use fastdfs::http::range::{if_range_matches, parse_range, RangeAnswer, RANGES_COUNT_MAX};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if data.len() < 9 {
        return;
    }
    let mut len = u64::from_le_bytes(data[..8].try_into().unwrap());
    if data[8] & 1 == 1 {
        len %= 1024;
    }
    let value = &data[9..];
    match parse_range(value, len) {
        RangeAnswer::Full | RangeAnswer::Unsatisfiable => {}
        RangeAnswer::Partial(ranges) => {
            assert!(!ranges.is_empty());
            assert!(ranges.len() <= RANGES_COUNT_MAX);
            let mut total: u128 = 0;
            for (i, r) in ranges.iter().enumerate() {
                assert!(r.start() <= r.end());
                assert!(*r.end() < len);
                total += u128::from(r.end() - r.start()) + 1;
                for other in &ranges[i + 1..] {
                    let apart = r.end().saturating_add(1) < *other.start()
                        || other.end().saturating_add(1) < *r.start();
                    assert!(apart, "{r:?} touches {other:?}");
                }
            }
            assert!(total <= u128::from(len));
        }
    }
    let etag = std::str::from_utf8(value).unwrap_or("\"x\"");
    let _ = if_range_matches(value, etag, len);
    let _ = if_range_matches(value, "\"abc\"", len);
});
