//! The tus 1.0.0 header grammar, sans-IO: numbers, `Upload-Metadata`, `Upload-Checksum`,
//! `Upload-Concat`, upload ids and the PATCH media type. Unit-tested here; nothing touches the network or disk.

use super::TusError;
use base64::Engine;

/// The protocol version we speak (`Tus-Resumable`, `Tus-Version`).
pub const TUS_VERSION: &str = "1.0.0";
/// `Tus-Extension` of OPTIONS.
pub const EXTENSIONS: &str = "creation,creation-with-upload,creation-defer-length,termination,\
    concatenation,checksum,expiration";
/// `Tus-Checksum-Algorithm` of OPTIONS.
pub const CHECKSUM_ALGORITHMS: &str = "sha1,md5";
/// Media type of PATCH bodies (and of creation-with-upload bodies).
pub const OFFSET_OCTET_STREAM: &str = "application/offset+octet-stream";
/// Most key/value pairs accepted in `Upload-Metadata`.
const METADATA_PAIRS_MAX: usize = 64;
/// Hex digits of an upload id (16 random bytes).
pub const ID_HEX_LEN: usize = 32;
/// Keys whose values we use as text: they must decode to UTF-8.
const TEXT_KEYS: &[&str] = &["filename", "scene", "path", "code", "auth_token"];

/// Base64 as tus clients send it: standard alphabet, padding optional.
const B64: base64::engine::GeneralPurpose = base64::engine::GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    base64::engine::GeneralPurposeConfig::new()
        .with_decode_padding_mode(base64::engine::DecodePaddingMode::Indifferent),
);

/// Most partial uploads one final upload may name.
pub const CONCAT_PARTS_MAX: usize = 1024;

/// `Upload-Concat` (the concatenation extension): a partial upload (its bytes wait to become
/// part of a final upload, never a file of their own), or the final upload made of the
/// partial uploads it names (their ids, in order).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Concat {
    Partial,
    Final(Vec<String>),
}

/// `Upload-Concat: partial` or `final;<URL> <URL> ...`. Each URL (absolute, or its path alone)
/// must name an upload of this endpoint (`endpoint` is its path, e.g. `/group1/big/upload`):
/// `<endpoint>/<id>`; the host is not compared (proxies rewrite it). An id named twice is
/// refused (the bytes of one partial upload are used once).
pub fn parse_concat(header: &str, endpoint: &str) -> Result<Concat, TusError> {
    let bad = |why: &str| TusError::BadRequest(format!("invalid Upload-Concat: {why}"));
    let header = header.trim();
    if header == "partial" {
        return Ok(Concat::Partial);
    }
    let Some(list) = header.strip_prefix("final;") else {
        return Err(bad("expected partial or final;<upload URLs>"));
    };
    let mut ids: Vec<String> = Vec::new();
    for url in list.split_ascii_whitespace() {
        let path = match url.split_once("://") {
            Some((_, rest)) => rest.find('/').map_or("", |at| &rest[at..]),
            None => url,
        };
        let id = path
            .strip_prefix(endpoint)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|id| valid_id(id))
            .ok_or_else(|| bad("a URL is not an upload of this endpoint"))?;
        if ids.iter().any(|known| known == id) {
            return Err(bad("an upload is named twice"));
        }
        if ids.len() == CONCAT_PARTS_MAX {
            return Err(bad("too many partial uploads"));
        }
        ids.push(id.to_string());
    }
    if ids.is_empty() {
        return Err(bad("a final upload names its partial uploads"));
    }
    Ok(Concat::Final(ids))
}

/// The `Upload-Concat` value HEAD echoes (URLs as paths below `endpoint`).
pub fn concat_header(concat: &Concat, endpoint: &str) -> String {
    match concat {
        Concat::Partial => "partial".to_string(),
        Concat::Final(ids) => {
            let urls: Vec<String> = ids.iter().map(|id| format!("{endpoint}/{id}")).collect();
            format!("final;{}", urls.join(" "))
        }
    }
}

/// A non-negative decimal integer header value (`Upload-Length`, `Upload-Offset`): digits
/// only, no sign, no spaces, at most 19 digits (fits i64 and u64).
pub fn parse_u64(value: &str) -> Option<u64> {
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// A well-formed upload id: 32 lower-case hex digits (anything else is no upload of ours).
pub fn valid_id(id: &str) -> bool {
    id.len() == ID_HEX_LEN && id.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Whether a Content-Type names `application/offset+octet-stream` (parameters ignored).
pub fn is_offset_octet_stream(content_type: Option<&str>) -> bool {
    content_type
        .and_then(|ct| ct.split(';').next())
        .is_some_and(|t| t.trim().eq_ignore_ascii_case(OFFSET_OCTET_STREAM))
}

/// `Upload-Metadata`: comma-separated `key[ base64value]` pairs, keys unique and free of
/// spaces and commas. Values of keys we use as text must be UTF-8; others are kept lossily.
pub fn parse_metadata(header: &str) -> Result<Vec<(String, String)>, TusError> {
    let bad = |why: &str| TusError::BadRequest(format!("invalid Upload-Metadata: {why}"));
    let mut pairs: Vec<(String, String)> = Vec::new();
    if header.trim().is_empty() {
        return Ok(pairs);
    }
    for item in header.split(',') {
        let item = item.trim();
        let mut parts = item.split(' ').filter(|p| !p.is_empty());
        let key = parts.next().ok_or_else(|| bad("empty key"))?;
        let value = parts.next().unwrap_or("");
        if parts.next().is_some() {
            return Err(bad("a pair has more than a key and a value"));
        }
        if key.bytes().any(|b| b.is_ascii_control() || b >= 0x80) {
            return Err(bad("keys must be printable ASCII"));
        }
        if pairs.iter().any(|(k, _)| k == key) {
            return Err(bad("duplicate key"));
        }
        if pairs.len() == METADATA_PAIRS_MAX {
            return Err(bad("too many pairs"));
        }
        let bytes = B64
            .decode(value)
            .map_err(|_| bad("values must be base64"))?;
        let text = match String::from_utf8(bytes) {
            Ok(t) => t,
            Err(_) if TEXT_KEYS.contains(&key) => return Err(bad("value is not UTF-8")),
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        };
        pairs.push((key.to_string(), text));
    }
    Ok(pairs)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Sha1,
    Md5,
}

/// An `Upload-Checksum` header: the algorithm and the expected digest of the PATCH body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    pub digest: Vec<u8>,
}

/// `Upload-Checksum: <algorithm> <base64 digest>`; an unsupported algorithm or a malformed
/// value is a 400 (tus checksum extension).
pub fn parse_checksum(header: &str) -> Result<Checksum, TusError> {
    let bad = |why: &str| TusError::BadRequest(format!("invalid Upload-Checksum: {why}"));
    let (name, value) = header
        .trim()
        .split_once(' ')
        .ok_or_else(|| bad("expected '<algorithm> <base64>'"))?;
    let (algorithm, len) = match name.to_ascii_lowercase().as_str() {
        "sha1" => (ChecksumAlgorithm::Sha1, 20),
        "md5" => (ChecksumAlgorithm::Md5, 16),
        _ => return Err(bad("unsupported algorithm (sha1, md5)")),
    };
    let digest = B64
        .decode(value.trim())
        .map_err(|_| bad("digest is not base64"))?;
    if digest.len() != len {
        return Err(bad("digest has the wrong length"));
    }
    Ok(Checksum { algorithm, digest })
}

/// The running digest of one PATCH body for `Upload-Checksum`.
pub enum BodyDigest {
    Sha1(sha1::Sha1),
    Md5(md5::Md5),
}

impl BodyDigest {
    pub fn new(algorithm: ChecksumAlgorithm) -> BodyDigest {
        use md5::Digest;
        match algorithm {
            ChecksumAlgorithm::Sha1 => BodyDigest::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Md5 => BodyDigest::Md5(md5::Md5::new()),
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        use md5::Digest;
        match self {
            BodyDigest::Sha1(h) => h.update(data),
            BodyDigest::Md5(h) => h.update(data),
        }
    }

    pub fn matches(self, expected: &Checksum) -> bool {
        use md5::Digest;
        let got: Vec<u8> = match self {
            BodyDigest::Sha1(h) => h.finalize().to_vec(),
            BodyDigest::Md5(h) => h.finalize().to_vec(),
        };
        got == expected.digest
    }
}

/// Base64 (standard, padded) as tus clients expect in `Upload-Checksum` examples and tests.
pub fn base64_encode(data: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(data)
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: &str = "0123456789abcdef0123456789abcdef";
    const B: &str = "fedcba9876543210fedcba9876543210";

    #[test]
    fn upload_concat_partial_and_final() {
        let e = "/group1/big/upload";
        assert_eq!(parse_concat(" partial ", e).unwrap(), Concat::Partial);
        let header = format!("final;http://h:8080{e}/{A} {e}/{B}");
        let c = parse_concat(&header, e).unwrap();
        assert_eq!(c, Concat::Final(vec![A.to_string(), B.to_string()]));
        assert_eq!(concat_header(&c, e), format!("final;{e}/{A} {e}/{B}"));
        assert_eq!(concat_header(&Concat::Partial, e), "partial");
    }

    #[test]
    fn upload_concat_refuses_what_names_no_upload_of_this_endpoint() {
        let e = "/group1/big/upload";
        for header in [
            "".to_string(),
            "final".to_string(),
            "final;".to_string(),
            "partial;x".to_string(),
            format!("final;/group2/big/upload/{A}"),
            format!("final;{e}/{A}/../{B}"),
            format!("final;{e}/{A}?x=1"),
            format!("final;{e}/ABCDEF0123456789ABCDEF0123456789"),
            format!("final;{e}/{A} {e}/{A}"),
            format!("final;http://h{e}"),
        ] {
            assert!(parse_concat(&header, e).is_err(), "{header:?}");
        }
        let many: Vec<String> = (0..=CONCAT_PARTS_MAX)
            .map(|i| format!("{e}/{i:032x}"))
            .collect();
        assert!(parse_concat(&format!("final;{}", many.join(" ")), e).is_err());
    }

    #[test]
    fn numbers_are_plain_digits() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("1073741824"), Some(1 << 30));
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64(" 1"), None);
        assert_eq!(parse_u64("1e3"), None);
        assert_eq!(parse_u64("99999999999999999999"), None);
    }

    #[test]
    fn ids_are_32_lower_hex() {
        assert!(valid_id("0123456789abcdef0123456789abcdef"));
        assert!(!valid_id("0123456789ABCDEF0123456789abcdef"));
        assert!(!valid_id("../../etc/passwd"));
        assert!(!valid_id(""));
    }

    #[test]
    fn media_type() {
        assert!(is_offset_octet_stream(Some(
            "application/offset+octet-stream"
        )));
        assert!(is_offset_octet_stream(Some(
            "Application/Offset+Octet-Stream; x=1"
        )));
        assert!(!is_offset_octet_stream(Some("application/octet-stream")));
        assert!(!is_offset_octet_stream(None));
    }

    #[test]
    fn metadata_pairs() {
        let m = parse_metadata("filename dGVzdC50eHQ=,scene ZGVmYXVsdA, flag").unwrap();
        assert_eq!(
            m,
            vec![
                ("filename".into(), "test.txt".into()),
                ("scene".into(), "default".into()),
                ("flag".into(), "".into()),
            ]
        );
        assert!(parse_metadata("").unwrap().is_empty());
        assert!(parse_metadata("a x,a y").is_err(), "duplicate key");
        assert!(parse_metadata("a !!!").is_err(), "not base64");
        assert!(parse_metadata("a b c").is_err(), "three parts");
        assert!(
            parse_metadata("filename /w==").is_err(),
            "filename must be UTF-8"
        );
        assert_eq!(parse_metadata("blob /w==").unwrap()[0].1, "\u{fffd}");
    }

    #[test]
    fn checksum_header() {
        let c = parse_checksum("sha1 Kq5sNclPz7QV2+lfQIuc6R7oRu0=").unwrap();
        assert_eq!(c.algorithm, ChecksumAlgorithm::Sha1);
        assert_eq!(c.digest.len(), 20);
        let mut d = BodyDigest::new(ChecksumAlgorithm::Sha1);
        d.update(b"hello world");
        assert!(d.matches(&c));
        let m = parse_checksum(&format!("md5 {}", base64_encode(&[0u8; 16]))).unwrap();
        assert_eq!(m.algorithm, ChecksumAlgorithm::Md5);
        assert!(parse_checksum("crc32 AAAAAA==").is_err());
        assert!(parse_checksum("sha1").is_err());
        assert!(parse_checksum("sha1 AAAA").is_err(), "wrong length");
    }
}
