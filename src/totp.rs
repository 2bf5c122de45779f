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

/// Whether `given` is the code of `secret` within ±`window` steps of `now`.
pub fn verify(secret: &str, given: &str, now: u64, window: u64) -> bool {
    let Some(key) = base32_decode(secret).filter(|k| !k.is_empty()) else {
        return false;
    };
    let step = now / STEP_SECONDS;
    (step.saturating_sub(window)..=step + window).any(|s| code_at_step(&key, s) == given)
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
    fn verify_window() {
        let secret = base32_encode(b"12345678901234567890");
        let c = code(&secret, 1000).unwrap();
        assert!(verify(&secret, &c, 1000 + 30, 1));
        assert!(!verify(&secret, &c, 1000 + 300, 1));
    }
}
