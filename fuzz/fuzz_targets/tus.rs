//! Fuzz target for `fastdfs::tus::protocol` (the tus 1.0.0 header grammar) and `tus::route`.
//!
//! Properties (beyond "never panics"):
//! - `parse_metadata` on arbitrary text: an `Ok` has at most 64 pairs with unique, non-empty
//!   printable-ASCII keys free of spaces and commas, one per comma-separated item, in order;
//!   a value holding a character outside the base64 alphabet is refused, never panicked on;
//!   blank headers give no pairs.
//! - Round trip: arbitrary unique keys with arbitrary byte values, base64-encoded (padded or
//!   not, with or without spaces after the commas, `key` alone for empty values), parse back
//!   to exactly those pairs (lossy UTF-8, except that non-UTF-8 values of the text keys
//!   `filename`/`scene`/`path`/`code`/`auth_token` are refused); more than 64 pairs are
//!   refused. Corrupting one value with a non-base64 character makes the header refused.
//! - `valid_id` accepts exactly 32 lower-case hex digits.
//! - `parse_u64` accepts exactly 1 to 19 ASCII digits and returns their value; every u64
//!   below 10^19 round-trips through its decimal form.
//! - `parse_checksum`: an `Ok` names sha1 with a 20-byte or md5 with a 16-byte digest;
//!   `<algorithm in any case> <base64 of a digest of the right length>` round-trips, a wrong
//!   length or a non-base64 digest is refused.
//! - `is_offset_octet_stream` matches its media type case-insensitively, parameters ignored.
//! - `base64_encode` is standard padded base64; `route` recognises exactly `/big/upload` and
//!   `/big/upload/<rest>`.
//!
//! Input layout: byte 0 = flags (bit 0: unpadded base64, bit 1: a space after each comma,
//! bit 2: `key` alone for empty values, bits 3..5: use text key number n (0..4) for the first
//! pair, bit 6: md5 instead of sha1, bit 7: upper-case algorithm), rest = raw input; for the
//! round trips the rest is split at 0xFF bytes into key, value, key, value, ...
#![no_main]

use fastdfs::tus::protocol::{
    base64_encode, is_offset_octet_stream, parse_checksum, parse_metadata, parse_u64, valid_id,
    ChecksumAlgorithm, ID_HEX_LEN, OFFSET_OCTET_STREAM,
};
use libfuzzer_sys::fuzz_target;

/// Keys whose values must be UTF-8 (`TEXT_KEYS` in src/tus/protocol.rs).
const TEXT_KEYS: &[&str] = &["filename", "scene", "path", "code", "auth_token"];
const METADATA_PAIRS_MAX: usize = 64;
const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64, written independently of the `base64` crate.
fn b64(data: &[u8], pad: bool) -> String {
    let mut out = String::new();
    for c in data.chunks(3) {
        let n = (u32::from(c[0]) << 16)
            | (u32::from(*c.get(1).unwrap_or(&0)) << 8)
            | u32::from(*c.get(2).unwrap_or(&0));
        for i in 0..=c.len() {
            out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
        }
        if pad {
            for _ in c.len()..3 {
                out.push('=');
            }
        }
    }
    out
}

fn key_char_ok(b: u8) -> bool {
    b.is_ascii_graphic() && b != b','
}

fn check_metadata_shape(header: &str) {
    let got = parse_metadata(header);
    assert_eq!(
        format!("{got:?}"),
        format!("{:?}", parse_metadata(header)),
        "not deterministic"
    );
    if header.trim().is_empty() {
        assert!(got.unwrap().is_empty());
        return;
    }
    let items: Vec<&str> = header.split(',').map(str::trim).collect();
    // A value (second space-separated part) with a non-base64 character must be refused.
    let bad_value = items.iter().any(|item| {
        item.split(' ')
            .filter(|p| !p.is_empty())
            .nth(1)
            .is_some_and(|v| !v.bytes().all(|b| ALPHABET.contains(&b) || b == b'='))
    });
    let Ok(pairs) = got else {
        return;
    };
    assert!(!bad_value, "{header:?} accepted with a non-base64 value");
    assert!(pairs.len() <= METADATA_PAIRS_MAX);
    assert_eq!(pairs.len(), items.len(), "{header:?}");
    for (i, (k, _)) in pairs.iter().enumerate() {
        assert!(!k.is_empty() && k.bytes().all(key_char_ok), "{k:?}");
        assert!(
            !pairs[..i].iter().any(|(other, _)| other == k),
            "duplicate {k:?}"
        );
        assert_eq!(
            items[i].split(' ').find(|p| !p.is_empty()),
            Some(k.as_str())
        );
    }
}

fn check_metadata_round_trip(flags: u8, fields: &[&[u8]]) {
    let pad = flags & 1 == 0;
    let sep = if flags & 2 == 2 { ", " } else { "," };
    let key_alone = flags & 4 == 4;
    let text_key = TEXT_KEYS.get(usize::from(flags >> 3 & 7)).copied();
    let mut want: Vec<(String, Vec<u8>)> = Vec::new();
    for (i, c) in fields.chunks(2).enumerate() {
        let mut key: String = c[0]
            .iter()
            .filter(|&&b| key_char_ok(b))
            .map(|&b| b as char)
            .collect();
        if i == 0 {
            if let Some(k) = text_key {
                key = k.to_string();
            }
        }
        if key.is_empty() {
            key = format!("k{i}");
        }
        if want.iter().any(|(k, _)| *k == key) {
            continue;
        }
        want.push((key, c.get(1).copied().unwrap_or(b"").to_vec()));
    }
    let mut header = String::new();
    for (i, (k, v)) in want.iter().enumerate() {
        if i > 0 {
            header.push_str(sep);
        }
        header.push_str(k);
        if !(v.is_empty() && key_alone) {
            header.push(' ');
            header.push_str(&b64(v, pad));
        }
    }
    let got = parse_metadata(&header);
    let not_text = want
        .iter()
        .any(|(k, v)| TEXT_KEYS.contains(&k.as_str()) && std::str::from_utf8(v).is_err());
    if want.len() > METADATA_PAIRS_MAX || not_text {
        assert!(got.is_err(), "{header:?} accepted");
    } else {
        let expect: Vec<(String, String)> = want
            .iter()
            .map(|(k, v)| (k.clone(), String::from_utf8_lossy(v).into_owned()))
            .collect();
        assert_eq!(got.ok(), Some(expect), "{header:?}");
    }
    // One corrupted value: refused.
    if let Some((k, v)) = want.first() {
        let mut value = b64(v, pad);
        value.insert(value.len() / 2, '!');
        assert!(parse_metadata(&format!("{k} {value}")).is_err());
    }
}

fn check_checksum(flags: u8, s: &str, raw: &[u8]) {
    if let Ok(c) = parse_checksum(s) {
        let name = s.trim().split(' ').next().unwrap().to_ascii_lowercase();
        match c.algorithm {
            ChecksumAlgorithm::Sha1 => assert!(name == "sha1" && c.digest.len() == 20),
            ChecksumAlgorithm::Md5 => assert!(name == "md5" && c.digest.len() == 16),
        }
        let value = s.trim().split_once(' ').unwrap().1.trim();
        assert!(
            value.bytes().all(|b| ALPHABET.contains(&b) || b == b'='),
            "{s:?}"
        );
    }
    let (algorithm, name, len) = if flags & 0x40 == 0 {
        (ChecksumAlgorithm::Sha1, "sha1", 20)
    } else {
        (ChecksumAlgorithm::Md5, "md5", 16)
    };
    let name = if flags & 0x80 == 0x80 {
        name.to_ascii_uppercase()
    } else {
        name.to_string()
    };
    let pad = flags & 1 == 0;
    let sp = if flags & 2 == 2 { "  " } else { " " };
    let digest: Vec<u8> = raw
        .iter()
        .copied()
        .chain(std::iter::repeat(7))
        .take(len)
        .collect();
    let header = format!("{sp}{name}{sp}{}{sp}", b64(&digest, pad));
    let c = parse_checksum(&header).unwrap_or_else(|e| panic!("{header:?}: {e:?}"));
    assert_eq!(c.algorithm, algorithm);
    assert_eq!(c.digest, digest);
    // Wrong length: refused.
    let short = &raw[..raw.len().min(len - 1)];
    assert!(parse_checksum(&format!("{name} {}", b64(short, pad))).is_err());
    let long: Vec<u8> = digest
        .iter()
        .copied()
        .chain(raw.iter().copied())
        .chain([0])
        .collect();
    assert!(parse_checksum(&format!("{name} {}", b64(&long, pad))).is_err());
    // Not base64: refused.
    assert!(
        parse_checksum(&format!("{name} {}", b64(&digest, pad).replace('A', "*"))).is_err()
            || !b64(&digest, pad).contains('A')
    );
}

fuzz_target!(|data: &[u8]| {
    let Some((&flags, raw)) = data.split_first() else {
        return;
    };
    let s = String::from_utf8_lossy(raw);

    // Upload-Metadata.
    check_metadata_shape(&s);
    let fields: Vec<&[u8]> = raw.split(|&b| b == 0xFF).collect();
    check_metadata_round_trip(flags, &fields);

    // Upload ids.
    let ok = s.len() == ID_HEX_LEN
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
    assert_eq!(valid_id(&s), ok, "{s:?}");
    let id: String = raw.iter().take(16).map(|b| format!("{b:02x}")).collect();
    assert_eq!(valid_id(&id), raw.len() >= 16);
    if raw.len() >= 16 && id.bytes().any(|b| b.is_ascii_alphabetic()) {
        assert!(!valid_id(&id.to_ascii_uppercase()));
    }

    // Upload-Length / Upload-Offset.
    let n = parse_u64(&s);
    let digits_ok = (1..=19).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_digit());
    assert_eq!(n.is_some(), digits_ok, "{s:?}");
    if let Some(n) = n {
        let t = s.trim_start_matches('0');
        assert_eq!(n.to_string(), if t.is_empty() { "0" } else { t });
    }
    if raw.len() >= 8 {
        let v = u64::from_le_bytes(raw[..8].try_into().unwrap());
        let expect = (v < 10_000_000_000_000_000_000).then_some(v);
        assert_eq!(parse_u64(&v.to_string()), expect);
    }

    // Upload-Checksum.
    check_checksum(flags, &s, raw);

    // Content-Type of PATCH.
    let model = s
        .split(';')
        .next()
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM));
    assert_eq!(is_offset_octet_stream(Some(&s)), model);
    assert!(is_offset_octet_stream(Some(&format!(
        " Application/Offset+Octet-Stream ;{s}"
    ))));
    assert!(!is_offset_octet_stream(None));

    // base64_encode is standard padded base64.
    assert_eq!(base64_encode(raw), b64(raw, true));

    // Routes below the group prefix.
    let r = fastdfs::tus::route(&s);
    let model = if s == "/big/upload" {
        Some("")
    } else {
        s.strip_prefix("/big/upload/")
    };
    assert_eq!(r, model, "{s:?}");
});
