//! Small codecs used across layers, each defined once: secrets compared in constant time,
//! hex, MD5 hex of a string, decimal
//! digits, random ids, HTTP optional whitespace, Content-Length values, strict
//! percent-decoding, form (query string) decoding. A leaf module.

/// Whether a secret a client sent equals the expected one, compared without an early exit:
/// the time taken does not tell how long a prefix of the secret a guess got right.
pub fn same_secret(expected: &[u8], sent: &[u8]) -> bool {
    expected.len() == sent.len()
        && expected
            .iter()
            .zip(sent)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b))
            == 0
}

/// Appends `n` in decimal (response heads and log lines, without `fmt`).
pub fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    // Byte by byte: a copy of a few bytes of unknown length is a call to `memmove`, which
    // costs more than the digits (this runs several times per request).
    out.reserve(digits.len() - i);
    for &d in &digits[i..] {
        out.push(d);
    }
}

/// The lowest `N` decimal digits of `n`, zero-padded (dates and fixed-width keys, without
/// `fmt`).
pub fn padded_digits<const N: usize>(mut n: u64) -> [u8; N] {
    let mut digits = [b'0'; N];
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
    }
    digits
}

/// Lower-case hex of bytes.
pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for &b in bytes {
        out.push(DIGITS[(b >> 4) as usize] as char);
        out.push(DIGITS[(b & 15) as usize] as char);
    }
    out
}

/// Lower-case hex MD5 of a string (go-fastdfs' path key and dedup-off id).
pub fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(s.as_bytes()))
}

/// Bytes of a hex string (either case); None for an odd length or a non-hex character.
pub fn unhex(s: &str) -> Option<Vec<u8>> {
    let (pairs, odd) = s.as_bytes().as_chunks::<2>();
    if !odd.is_empty() {
        return None;
    }
    pairs
        .iter()
        .map(|p| Some(hex_value(p[0])? << 4 | hex_value(p[1])?))
        .collect()
}

/// The value of one hex digit.
#[inline]
pub fn hex_value(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `N` bytes from the OS random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    let mut b = [0u8; N];
    getrandom::getrandom(&mut b).expect("the OS random source is available");
    b
}

/// `bytes` random bytes as lower-case hex (ids, secrets).
pub fn random_hex(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    getrandom::getrandom(&mut buf).expect("the OS random source is available");
    hex(&buf)
}

/// HTTP optional whitespace: a space or a tab.
#[inline]
pub fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

/// Trims HTTP optional whitespace (spaces and tabs, RFC 9110 §5.6.3) from both ends.
pub fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

/// Largest Content-Length accepted: what a signed 64-bit length holds, as Go's server
/// takes it and as the chunked decoder bounds a chunk (no file can be longer).
pub const CONTENT_LENGTH_MAX: u64 = i64::MAX as u64;

/// Takes a Content-Length field's value into `acc` (the length of the fields before it):
/// every element of every Content-Length field must be the same valid `1*DIGIT` of at most
/// [`CONTENT_LENGTH_MAX`] (RFC 9110 §8.6). False when one is not (`acc` is then not to be
/// used). Requests' heads and peers' answers alike.
pub fn content_length(value: &[u8], acc: &mut Option<u64>) -> bool {
    for elem in value.split(|&b| b == b',') {
        let elem = trim_ows(elem);
        if elem.is_empty() {
            return false;
        }
        let mut n: u64 = 0;
        for &b in elem {
            if !b.is_ascii_digit() {
                return false;
            }
            match n
                .checked_mul(10)
                .and_then(|n| n.checked_add(u64::from(b - b'0')))
                .filter(|&n| n <= CONTENT_LENGTH_MAX)
            {
                Some(v) => n = v,
                None => return false,
            }
        }
        match *acc {
            Some(prev) if prev != n => return false,
            _ => *acc = Some(n),
        }
    }
    true
}

/// Decodes `%XX` escapes; None on an invalid or truncated escape (strict, for header
/// parameters such as RFC 8187 `filename*=`).
pub fn percent_decode_strict(s: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hi = hex_value(*s.get(i + 1)?)?;
            let lo = hex_value(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

/// Appends one `application/x-www-form-urlencoded` component decoded as browsers, Go's
/// `url.ParseQuery` and S3 read query strings: `+` is a space, `%XX` a byte, and an invalid
/// or truncated escape stays as it is. The runs between escapes are copied whole.
pub fn form_decode_into(raw: &[u8], out: &mut Vec<u8>) {
    let mut rest = raw;
    while let Some(i) = memchr::memchr2(b'%', b'+', rest) {
        out.extend_from_slice(&rest[..i]);
        if rest[i] == b'+' {
            out.push(b' ');
            rest = &rest[i + 1..];
            continue;
        }
        let digit = |at: usize| rest.get(at).copied().and_then(hex_value);
        match (digit(i + 1), digit(i + 2)) {
            (Some(hi), Some(lo)) => {
                out.push(hi << 4 | lo);
                rest = &rest[i + 3..];
            }
            _ => {
                out.push(b'%');
                rest = &rest[i + 1..];
            }
        }
    }
    out.extend_from_slice(rest);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_equal_only_when_every_byte_and_the_length_are() {
        assert!(same_secret(b"k3y", b"k3y"));
        assert!(!same_secret(b"k3y", b"k3z"));
        assert!(!same_secret(b"k3y", b"k3"));
        assert!(!same_secret(b"k3y", b"k3yy"));
        assert!(!same_secret(b"k3y", b""));
        assert!(same_secret(b"", b""));
    }

    #[test]
    fn padded_digits_keep_the_lowest_digits_zero_padded() {
        assert_eq!(&padded_digits::<4>(7), b"0007");
        assert_eq!(&padded_digits::<2>(2026), b"26");
        assert_eq!(&padded_digits::<10>(1_796_562_181), b"1796562181");
        assert_eq!(&padded_digits::<3>(0), b"000");
    }

    #[test]
    fn decimal_numbers_are_written_whole() {
        for n in [0u64, 7, 10, 200, 404, 65_535, u64::MAX] {
            let mut out = Vec::new();
            push_decimal(&mut out, n);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn codecs() {
        assert_eq!(hex(&[0x00, 0xab, 0xff]), "00abff");
        assert_eq!(random_hex(16).len(), 32);
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(
            percent_decode_strict(b"a%20b%C3%A9"),
            Some("a bé".as_bytes().to_vec())
        );
        assert_eq!(percent_decode_strict(b"a%2"), None);
        assert_eq!(percent_decode_strict(b"%zz"), None);
        let form = |s: &[u8]| {
            let mut out = Vec::new();
            form_decode_into(s, &mut out);
            out
        };
        assert_eq!(form(b"a+b%2Fc%2f"), b"a b/c/");
        assert_eq!(form(b"100%"), b"100%");
        assert_eq!(form(b"%zz%4"), b"%zz%4");
        assert_eq!(form(b"%%41"), b"%A");
    }
}
