//! Google Authenticator codes (RFC 6238 TOTP: HMAC-SHA1, 30 s steps, 6 digits) and the base32
//! secrets they use (RFC 4648, no padding).

use sha1::{Digest, Sha1};

const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
/// TOTP time step in seconds.
pub const STEP_SECONDS: u64 = 30;

pub fn base32_encode(data: &[u8]) -> String {
    let mut out = String::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for &b in data {
        buf = (buf << 8) | b as u32;
        bits += 8;
        while bits >= 5 {
            out.push(ALPHABET[((buf >> (bits - 5)) & 31) as usize] as char);
            bits -= 5;
        }
    }
    if bits > 0 {
        out.push(ALPHABET[((buf << (5 - bits)) & 31) as usize] as char);
    }
    out
}

/// Decodes base32 (case-insensitive, spaces and `=` padding ignored); None on other characters.
pub fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    let (mut buf, mut bits) = (0u32, 0u32);
    for c in s.chars().filter(|c| !c.is_whitespace() && *c != '=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a as char == c.to_ascii_uppercase())? as u32;
        buf = (buf << 5) | v;
        bits += 5;
        if bits >= 8 {
            out.push((buf >> (bits - 8)) as u8);
            bits -= 8;
        }
    }
    Some(out)
}

/// Why Go's base32 decoder refused a secret: the byte offset it reports
/// (`illegal base32 data at input byte N`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Base32Error(pub usize);

impl std::fmt::Display for Base32Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "illegal base32 data at input byte {}", self.0)
    }
}

/// Decodes a secret as go-fastdfs' `gen_google_code` does: upper-cased, then Go's
/// `base32.StdEncoding.DecodeString` (CR and LF dropped; padding to a multiple of 8 required;
/// no other white space), with the offset Go reports for the first bad byte.
pub fn go_base32_decode(secret: &str) -> Result<Vec<u8>, Base32Error> {
    const PAD: u8 = b'=';
    let src: Vec<u8> = secret
        .to_uppercase()
        .bytes()
        .filter(|&b| b != b'\r' && b != b'\n')
        .collect();
    let olen = src.len();
    let value = |b: u8| ALPHABET.iter().position(|&a| a == b).map(|v| v as u8);
    let (mut out, mut i, mut end) = (Vec::new(), 0usize, false);
    while i < olen && !end {
        let mut quantum = [0u8; 8];
        let mut dlen = 8;
        let mut j = 0;
        while j < 8 {
            if i == olen {
                // The end without the padding Go's StdEncoding requires.
                return Err(Base32Error(olen - j));
            }
            let b = src[i];
            i += 1;
            let left = olen - i;
            if b == PAD && j >= 2 && left < 8 {
                if left + j < 7 {
                    return Err(Base32Error(olen));
                }
                if let Some(k) = (0..7 - j).find(|&k| left > k && src[i + k] != PAD) {
                    return Err(Base32Error(i + k - 1));
                }
                // 1, 3 and 6 symbols do not make a whole byte (RFC 4648 section 6).
                if matches!(j, 1 | 3 | 6) {
                    return Err(Base32Error(i - 1));
                }
                (dlen, end) = (j, true);
                break;
            }
            quantum[j] = value(b).ok_or(Base32Error(i - 1))?;
            j += 1;
        }
        let bits = quantum.iter().fold(0u64, |acc, &v| (acc << 5) | v as u64);
        let bytes = match dlen {
            8 => 5,
            7 => 4,
            5 => 3,
            4 => 2,
            _ => 1,
        };
        out.extend_from_slice(&bits.to_be_bytes()[3..3 + bytes]);
    }
    Ok(out)
}

fn hmac_sha1(key: &[u8], msg: &[u8]) -> [u8; 20] {
    let mut k = [0u8; 64];
    if key.len() > 64 {
        k[..20].copy_from_slice(&Sha1::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut inner = Sha1::new();
    inner.update(k.map(|b| b ^ 0x36));
    inner.update(msg);
    let mut outer = Sha1::new();
    outer.update(k.map(|b| b ^ 0x5c));
    outer.update(inner.finalize());
    outer.finalize().into()
}

/// The 6-digit code of `secret` for time step `counter`.
pub fn code_at_step(key: &[u8], counter: u64) -> String {
    let h = hmac_sha1(key, &counter.to_be_bytes());
    let off = (h[19] & 0x0f) as usize;
    let bin = u32::from_be_bytes([h[off] & 0x7f, h[off + 1], h[off + 2], h[off + 3]]);
    format!("{:06}", bin % 1_000_000)
}

/// The current code of a base32 secret at Unix time `now`; None for an invalid secret.
pub fn code(secret: &str, now: u64) -> Option<String> {
    let key = base32_decode(secret).filter(|k| !k.is_empty())?;
    Some(code_at_step(&key, now / STEP_SECONDS))
}

/// Whether `given` is the code of `secret` within ±`window` steps of `now` (each compared in
/// constant time: how long a comparison takes says nothing of how much of a code was right).
pub fn verify(secret: &str, given: &str, now: u64, window: u64) -> bool {
    let Some(key) = base32_decode(secret).filter(|k| !k.is_empty()) else {
        return false;
    };
    let step = now / STEP_SECONDS;
    (step.saturating_sub(window)..=step + window)
        .any(|s| crate::codec::same_secret(code_at_step(&key, s).as_bytes(), given.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vectors() {
        // RFC 6238 appendix B, secret "12345678901234567890", 8 digits truncated to 6.
        let key = b"12345678901234567890";
        assert_eq!(code_at_step(key, 59 / 30), "287082");
        assert_eq!(code_at_step(key, 1111111109 / 30), "081804");
        assert_eq!(code_at_step(key, 2000000000 / 30), "279037");
    }

    #[test]
    fn base32_round_trip() {
        let data = b"hello world!";
        assert_eq!(base32_decode(&base32_encode(data)).unwrap(), data);
        assert_eq!(base32_encode(b"foobar"), "MZXW6YTBOI");
        assert!(base32_decode("not base32!").is_none());
    }

    #[test]
    fn go_base32_errors_carry_go_offsets() {
        // Offsets as go-fastdfs' gen_google_code reports them (reference binary).
        for (secret, at) in [
            ("abc", 0),
            ("ABCDEFG", 0),
            ("A", 0),
            ("JBSWY3DP==", 8),
            ("JBSWY3D1", 7),
            ("JBSW Y3DP", 4),
            ("JBSWY3DPEHPK3PX", 8),
            ("JBSWY3DPEHPK3PXPA", 16),
            ("A=======", 1),
            ("AB=====", 7),
            ("AB====x=", 5),
            ("ABC=====", 3),
        ] {
            assert_eq!(go_base32_decode(secret), Err(Base32Error(at)), "{secret}");
        }
        assert_eq!(
            Base32Error(3).to_string(),
            "illegal base32 data at input byte 3"
        );
        assert_eq!(go_base32_decode("ab======").unwrap(), vec![0x00]);
        assert_eq!(go_base32_decode("AB======AB").unwrap(), vec![0x00]);
        assert_eq!(go_base32_decode("ABCD====").unwrap().len(), 2);
        assert_eq!(go_base32_decode("MZXW6YTBOI======").unwrap(), b"foobar");
        assert_eq!(go_base32_decode("jbswy3dp\r\nehpk3pxp").unwrap().len(), 10);
        assert_eq!(go_base32_decode("").unwrap(), Vec::<u8>::new());
        for len in 0..12usize {
            let data: Vec<u8> = (0..len as u8).collect();
            let mut text = base32_encode(&data);
            while !text.len().is_multiple_of(8) {
                text.push('=');
            }
            assert_eq!(go_base32_decode(&text).unwrap(), data, "{text}");
        }
    }

    #[test]
    fn verify_window() {
        let secret = base32_encode(b"12345678901234567890");
        let c = code(&secret, 1000).unwrap();
        assert!(verify(&secret, &c, 1000 + 30, 1));
        assert!(!verify(&secret, &c, 1000 + 300, 1));
    }
}
