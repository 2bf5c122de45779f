//! The aws-chunked request body (`x-amz-content-sha256: STREAMING-*`), sans-IO and streaming:
//! a push decoder that accepts the body in arbitrary pieces (down to one byte) and yields the
//! decoded object bytes.
//!
//! Owns: the chunk framing of the three streaming modes, the chunk-signature chain
//! (`STREAMING-AWS4-HMAC-SHA256-PAYLOAD[-TRAILER]`, seeded by the request signature that
//! [`super::sigv4::verify`] checked), the trailer section and its signature, the
//! `x-amz-checksum-*` checks (trailers here, headers through [`ChecksumCheck`]) and
//! `x-amz-decoded-content-length`.
//!
//! Wire format, per chunk: `hex-size[;chunk-signature=<64 hex>]\r\n<data>\r\n`; the last chunk
//! has size 0 and no data. Without trailers the body then ends with `\r\n`. With trailers,
//! `name:value\r\n` lines follow the final chunk, then `x-amz-trailer-signature:<hex>\r\n`
//! (signed mode) and an empty line. Also accepted in the signed-trailer mode: an empty line
//! between the final chunk and the trailers and none after the trailer signature (the layout
//! of the AWS documentation's example).
//!
//! Guarantees and bounds:
//! - Signed modes: no byte of a chunk reaches `out` before that chunk's signature checked out
//!   (constant-time comparison). The chunk is held meanwhile, so the decoder holds at most one
//!   chunk: [`MAX_CHUNK_SIZE`] (16 MiB) plus a [`MAX_LINE`] line; the held buffer grows with
//!   the bytes that actually arrive, not with the size a chunk header claims.
//! - Unsigned-trailer mode: data is released as it arrives, before the trailer checksum is
//!   compared at the end: the caller must treat what it wrote as tentative until
//!   [`ChunkDecoder::finish`] (or the `push` that completes the body) succeeds.
//! - Trailers: at most [`MAX_TRAILER_BYTES`]; a trailer must have been declared
//!   ([`ChunkDecoder::declare_trailers`], from `x-amz-trailer`) and every declared one must
//!   arrive. `x-amz-checksum-{crc32,crc32c,crc64nvme,sha1,sha256}` are verified against the
//!   decoded data; other names are returned unverified.
//! - After an error the decoder is poisoned: every later call returns the same error.

use base64::Engine;
use hmac::Mac;
use sha2::{Digest, Sha256};

use super::sigv4::{self, PayloadMode, Verified};

/// The largest chunk accepted (SDKs send 64 KiB to 1 MiB chunks).
pub const MAX_CHUNK_SIZE: u64 = 16 << 20;
/// The longest chunk-size line, CRLF included (a signed one is about 90 bytes).
pub const MAX_LINE: usize = 256;
/// The largest trailer section, CRLFs and the trailer signature included.
pub const MAX_TRAILER_BYTES: usize = 16 << 10;
/// Most trailers `x-amz-trailer` may declare.
const MAX_DECLARED_TRAILERS: usize = 8;
/// The trailer that carries the trailer signature.
const TRAILER_SIGNATURE: &str = "x-amz-trailer-signature";

/// What chunk and trailer signatures are computed with, from a verified request.
#[derive(Clone, PartialEq, Eq)]
pub struct SigningContext {
    /// The request's derived SigV4 key. Secret.
    pub signing_key: [u8; 32],
    /// The request time, `yyyymmddThhmmssZ`.
    pub amz_date: String,
    /// The credential scope, `yyyymmdd/region/s3/aws4_request`.
    pub scope: String,
    /// The request's signature: the "previous signature" of the first chunk.
    pub seed_signature: [u8; 32],
}

impl std::fmt::Debug for SigningContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SigningContext")
            .field("signing_key", &"<secret>")
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .field("seed_signature", &sigv4::hex(&self.seed_signature))
            .finish()
    }
}

impl SigningContext {
    /// The HMAC of one link of the streaming signature chain, to verify against the link's
    /// signature: `algorithm` (`AWS4-HMAC-SHA256-PAYLOAD` for a chunk, `-TRAILER` for the
    /// trailers), the request time, the scope, the previous signature (hex), then `hashes`,
    /// newline-separated.
    fn chain_mac(
        &self,
        algorithm: &str,
        previous: &[u8; 32],
        hashes: &[&str],
    ) -> sigv4::HmacSha256 {
        let mut mac = sigv4::hmac(&self.signing_key);
        mac.update(algorithm.as_bytes());
        for part in [
            self.amz_date.as_str(),
            self.scope.as_str(),
            &sigv4::hex(previous),
        ] {
            mac.update(b"\n");
            mac.update(part.as_bytes());
        }
        for h in hashes {
            mac.update(b"\n");
            mac.update(h.as_bytes());
        }
        mac
    }

    /// The context of a verified request (`None` only if its seed signature is not 64 hex
    /// digits, which [`sigv4::verify`] never returns).
    pub fn from_verified(v: &Verified) -> Option<SigningContext> {
        Some(SigningContext {
            signing_key: v.signing_key,
            amz_date: v.amz_date.clone(),
            scope: v.scope.clone(),
            seed_signature: sigv4::parse_hex32(&v.seed_signature)?,
        })
    }
}

/// The streaming mode of a body, with the signing context the signed ones need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Framing {
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`.
    Signed(SigningContext),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`.
    SignedTrailer(SigningContext),
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (also on anonymous requests).
    UnsignedTrailer,
}

impl Framing {
    /// The framing of a verified request's body; `None` unless it is `STREAMING-*`.
    pub fn from_verified(v: &Verified) -> Option<Framing> {
        match v.payload {
            PayloadMode::StreamingSigned => {
                Some(Framing::Signed(SigningContext::from_verified(v)?))
            }
            PayloadMode::StreamingSignedTrailer => {
                Some(Framing::SignedTrailer(SigningContext::from_verified(v)?))
            }
            PayloadMode::StreamingUnsignedTrailer => Some(Framing::UnsignedTrailer),
            PayloadMode::Unsigned | PayloadMode::Sha256(_) => None,
        }
    }

    fn context(&self) -> Option<&SigningContext> {
        match self {
            Framing::Signed(c) | Framing::SignedTrailer(c) => Some(c),
            Framing::UnsignedTrailer => None,
        }
    }

    fn has_trailers(&self) -> bool {
        !matches!(self, Framing::Signed(_))
    }
}

/// Why a body was refused; [`ChunkError::code`] and [`ChunkError::status`] are S3's answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChunkError {
    /// Framing that does not parse: a bad size line, missing CRLF, a missing signature.
    #[error("malformed aws-chunked body: {0}")]
    Malformed(&'static str),
    #[error("a chunk of {size} bytes is larger than the {max} bytes allowed")]
    ChunkTooLarge { size: u64, max: u64 },
    /// The chunk at `index` (0-based) does not carry the signature it should.
    #[error(
        "The request signature we calculated does not match the signature you provided \
         (chunk {index})."
    )]
    ChunkSignature { index: u64 },
    #[error("The trailer signature we calculated does not match the signature you provided.")]
    TrailerSignature,
    /// A trailer section that does not parse, or does not match `x-amz-trailer`.
    #[error("malformed trailer: {0}")]
    Trailer(String),
    /// The data does not hash to the `x-amz-checksum-*` value (the header name).
    #[error("The {0} you specified did not match the calculated checksum.")]
    ChecksumMismatch(&'static str),
    /// An `x-amz-checksum-*` value that is not the base64 of a digest of the right size.
    #[error("Value for {0} header is invalid.")]
    InvalidChecksum(String),
    /// The decoded data is not `x-amz-decoded-content-length` bytes (`actual`: how many it
    /// came to, or would have with the chunk that overflowed).
    #[error("x-amz-decoded-content-length is {expected} but the body decodes to {actual} bytes")]
    DecodedLength { expected: u64, actual: u64 },
    /// The body ended before its final chunk, or before its trailers.
    #[error("The request body terminated unexpectedly")]
    Truncated,
    #[error("x-amz-decoded-content-length is required with an aws-chunked body")]
    MissingDecodedLength,
    /// Signed chunks on a request that is not signed.
    #[error("signed chunks require a signed request")]
    Unauthenticated,
    #[error("{0}")]
    InvalidRequest(String),
}

impl ChunkError {
    /// S3's error code.
    pub fn code(&self) -> &'static str {
        match self {
            ChunkError::Malformed(_) | ChunkError::InvalidRequest(_) => "InvalidRequest",
            ChunkError::ChunkTooLarge { .. } => "EntityTooLarge",
            ChunkError::ChunkSignature { .. } | ChunkError::TrailerSignature => {
                "SignatureDoesNotMatch"
            }
            ChunkError::Trailer(_) => "MalformedTrailerError",
            ChunkError::ChecksumMismatch(_) => "BadDigest",
            ChunkError::InvalidChecksum(_) => "InvalidRequest",
            ChunkError::DecodedLength { .. } | ChunkError::Truncated => "IncompleteBody",
            ChunkError::MissingDecodedLength => "MissingContentLength",
            ChunkError::Unauthenticated => "AccessDenied",
        }
    }

    /// The HTTP status S3 answers with.
    pub fn status(&self) -> u16 {
        match self {
            ChunkError::ChunkSignature { .. }
            | ChunkError::TrailerSignature
            | ChunkError::Unauthenticated => 403,
            ChunkError::MissingDecodedLength => 411,
            _ => 400,
        }
    }
}

/// The checksum algorithms verified here (`x-amz-checksum-<name>`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumAlgorithm {
    Crc32,
    Crc32c,
    /// CRC-64/NVME, the checksum S3 itself computes for new objects.
    Crc64Nvme,
    Sha1,
    Sha256,
}

impl ChecksumAlgorithm {
    /// Every algorithm verified here.
    pub const ALL: [ChecksumAlgorithm; 5] = [
        ChecksumAlgorithm::Crc32,
        ChecksumAlgorithm::Crc32c,
        ChecksumAlgorithm::Crc64Nvme,
        ChecksumAlgorithm::Sha1,
        ChecksumAlgorithm::Sha256,
    ];

    /// The header (or trailer) carrying this checksum, lower case.
    pub fn header_name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "x-amz-checksum-crc32",
            ChecksumAlgorithm::Crc32c => "x-amz-checksum-crc32c",
            ChecksumAlgorithm::Crc64Nvme => "x-amz-checksum-crc64nvme",
            ChecksumAlgorithm::Sha1 => "x-amz-checksum-sha1",
            ChecksumAlgorithm::Sha256 => "x-amz-checksum-sha256",
        }
    }

    /// The algorithm of a header name (case-insensitive); `None` for the others.
    pub fn from_header_name(name: &str) -> Option<ChecksumAlgorithm> {
        ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| name.eq_ignore_ascii_case(a.header_name()))
    }

    /// S3's name of the algorithm (`x-amz-sdk-checksum-algorithm`, `x-amz-checksum-algorithm`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumAlgorithm::Crc32 => "CRC32",
            ChecksumAlgorithm::Crc32c => "CRC32C",
            ChecksumAlgorithm::Crc64Nvme => "CRC64NVME",
            ChecksumAlgorithm::Sha1 => "SHA1",
            ChecksumAlgorithm::Sha256 => "SHA256",
        }
    }

    /// The element of this checksum in S3's XML answers (`ChecksumCRC32`).
    pub fn xml_name(self) -> String {
        format!("Checksum{}", self.name())
    }

    /// The algorithm S3 names `name` (case-insensitive); `None` for the others.
    pub fn from_name(name: &str) -> Option<ChecksumAlgorithm> {
        ChecksumAlgorithm::ALL
            .into_iter()
            .find(|a| name.trim().eq_ignore_ascii_case(a.name()))
    }

    /// Bytes of the digest.
    pub(super) fn digest_len(self) -> usize {
        match self {
            ChecksumAlgorithm::Crc32 | ChecksumAlgorithm::Crc32c => 4,
            ChecksumAlgorithm::Crc64Nvme => 8,
            ChecksumAlgorithm::Sha1 => 20,
            ChecksumAlgorithm::Sha256 => 32,
        }
    }
}

/// An incremental digest of one algorithm.
#[derive(Clone)]
pub(super) enum Hasher {
    Crc32(crc32fast::Hasher),
    Crc32c(u32),
    Crc64Nvme(u64),
    Sha1(sha1::Sha1),
    Sha256(Sha256),
}

impl Hasher {
    pub(super) fn new(algorithm: ChecksumAlgorithm) -> Hasher {
        match algorithm {
            ChecksumAlgorithm::Crc32 => Hasher::Crc32(crc32fast::Hasher::new()),
            ChecksumAlgorithm::Crc32c => Hasher::Crc32c(0),
            ChecksumAlgorithm::Crc64Nvme => Hasher::Crc64Nvme(!0),
            ChecksumAlgorithm::Sha1 => Hasher::Sha1(sha1::Sha1::new()),
            ChecksumAlgorithm::Sha256 => Hasher::Sha256(Sha256::new()),
        }
    }

    pub(super) fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Crc32(h) => h.update(data),
            Hasher::Crc32c(crc) => *crc = crc32c::crc32c_append(*crc, data),
            Hasher::Crc64Nvme(crc) => *crc = crc64_nvme_update(*crc, data),
            Hasher::Sha1(h) => sha1::Digest::update(h, data),
            Hasher::Sha256(h) => h.update(data),
        }
    }

    /// The big-endian digest, as S3 base64-encodes it.
    pub(super) fn finish(self) -> Vec<u8> {
        match self {
            Hasher::Crc32(h) => h.finalize().to_be_bytes().to_vec(),
            Hasher::Crc32c(crc) => crc.to_be_bytes().to_vec(),
            Hasher::Crc64Nvme(crc) => (!crc).to_be_bytes().to_vec(),
            Hasher::Sha1(h) => sha1::Digest::finalize(h).to_vec(),
            Hasher::Sha256(h) => h.finalize().to_vec(),
        }
    }
}

/// CRC-64/NVME (reflected polynomial 0x9a6c9329ac4bc9b5), eight bytes a step: the tables of
/// slicing-by-8, built at compile time. No crate in the tree computes it.
const CRC64_NVME: [[u64; 256]; 8] = {
    let mut t = [[0u64; 256]; 8];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut k = 0;
        while k < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x9a6c_9329_ac4b_c9b5
            } else {
                crc >> 1
            };
            k += 1;
        }
        t[0][i] = crc;
        i += 1;
    }
    let mut s = 1;
    while s < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[s - 1][i];
            t[s][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        s += 1;
    }
    t
};

/// The CRC-64/NVME register after `data` (not inverted: start from `!0`, invert at the end).
fn crc64_nvme_update(mut crc: u64, data: &[u8]) -> u64 {
    let t = &CRC64_NVME;
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let v = crc ^ u64::from_le_bytes(c.try_into().expect("eight bytes"));
        crc = t[7][(v & 0xff) as usize]
            ^ t[6][((v >> 8) & 0xff) as usize]
            ^ t[5][((v >> 16) & 0xff) as usize]
            ^ t[4][((v >> 24) & 0xff) as usize]
            ^ t[3][((v >> 32) & 0xff) as usize]
            ^ t[2][((v >> 40) & 0xff) as usize]
            ^ t[1][((v >> 48) & 0xff) as usize]
            ^ t[0][(v >> 56) as usize];
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ t[0][((crc ^ u64::from(b)) & 0xff) as usize];
    }
    crc
}

/// Decodes an `x-amz-checksum-*` value: the base64 of a digest of the algorithm's size.
pub(super) fn decode_checksum(
    algorithm: ChecksumAlgorithm,
    value: &str,
) -> Result<Vec<u8>, ChunkError> {
    base64::engine::general_purpose::STANDARD
        .decode(value.trim())
        .ok()
        .filter(|d| d.len() == algorithm.digest_len())
        .ok_or_else(|| ChunkError::InvalidChecksum(algorithm.header_name().into()))
}

/// A checksum of the data that was verified: what S3 answers with (`x-amz-checksum-<name>`)
/// and keeps with the object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checksum {
    pub algorithm: ChecksumAlgorithm,
    /// The base64 of the big-endian digest, canonically encoded.
    pub value: String,
}

impl Checksum {
    pub(super) fn of(algorithm: ChecksumAlgorithm, digest: &[u8]) -> Checksum {
        Checksum {
            algorithm,
            value: base64::engine::general_purpose::STANDARD.encode(digest),
        }
    }
}

/// `x-amz-checksum-*` request headers that are not checksums of data (the checksum type of
/// a multipart upload, the algorithm asked of CreateMultipartUpload, GET's checksum mode).
const CHECKSUM_CONTROL_HEADERS: [&str; 3] = [
    "x-amz-checksum-type",
    "x-amz-checksum-algorithm",
    "x-amz-checksum-mode",
];

/// Refuses a write whose headers name a checksum algorithm not verified here, as S3 does
/// (InvalidRequest), rather than storing data no one checked: an `x-amz-checksum-<name>`
/// header, a checksum trailer declared in `x-amz-trailer`, `x-amz-sdk-checksum-algorithm`,
/// `x-amz-checksum-algorithm`.
pub fn refuse_unknown_checksums(headers: &[(&str, &str)]) -> Result<(), ChunkError> {
    let refuse = |message: &str| Err(ChunkError::InvalidRequest(message.into()));
    let is_checksum = |name: &str| {
        name.len() > "x-amz-checksum-".len()
            && name[.."x-amz-checksum-".len()].eq_ignore_ascii_case("x-amz-checksum-")
    };
    for (name, value) in headers {
        if name.eq_ignore_ascii_case("x-amz-sdk-checksum-algorithm") {
            if ChecksumAlgorithm::from_name(value).is_none() {
                return refuse("Value for x-amz-sdk-checksum-algorithm header is invalid.");
            }
        } else if name.eq_ignore_ascii_case("x-amz-checksum-algorithm") {
            if ChecksumAlgorithm::from_name(value).is_none() {
                return refuse(
                    "Checksum algorithm provided is unsupported. Please try again with any of \
                     the valid types: [CRC32, CRC32C, CRC64NVME, SHA1, SHA256]",
                );
            }
        } else if name.eq_ignore_ascii_case("x-amz-trailer") {
            let unknown = value
                .split(',')
                .map(str::trim)
                .any(|t| is_checksum(t) && ChecksumAlgorithm::from_header_name(t).is_none());
            if unknown {
                return refuse("The value specified in the x-amz-trailer header is not supported");
            }
        } else if is_checksum(name)
            && ChecksumAlgorithm::from_header_name(name).is_none()
            && !CHECKSUM_CONTROL_HEADERS
                .iter()
                .any(|c| name.eq_ignore_ascii_case(c))
        {
            return refuse(
                "The algorithm type you specified in x-amz-checksum- header is invalid.",
            );
        }
    }
    Ok(())
}

/// Incremental check of data against an `x-amz-checksum-*` value: for a checksum sent as a
/// request header (with a plain body, or with an aws-chunked body fed the decoded bytes).
#[derive(Clone)]
pub struct ChecksumCheck {
    algorithm: ChecksumAlgorithm,
    expected: Vec<u8>,
    hasher: Hasher,
}

impl ChecksumCheck {
    /// A check of `value` (base64 of the big-endian digest).
    pub fn new(algorithm: ChecksumAlgorithm, value: &str) -> Result<ChecksumCheck, ChunkError> {
        Ok(ChecksumCheck {
            algorithm,
            expected: decode_checksum(algorithm, value)?,
            hasher: Hasher::new(algorithm),
        })
    }

    /// The check a request's headers ask for: `Ok(None)` without an `x-amz-checksum-*` header
    /// of a verified algorithm; an error when there are two, or the value is not valid.
    /// (`x-amz-checksum-type`, `-algorithm` and unverified algorithms are not looked at.)
    pub fn from_headers(headers: &[(&str, &str)]) -> Result<Option<ChecksumCheck>, ChunkError> {
        let mut found = None;
        for (name, value) in headers {
            if let Some(algorithm) = ChecksumAlgorithm::from_header_name(name) {
                if found.is_some() {
                    return Err(ChunkError::InvalidRequest(
                        "Expecting a single x-amz-checksum- header. \
                         Multiple checksum Types are not allowed."
                            .into(),
                    ));
                }
                found = Some(ChecksumCheck::new(algorithm, value)?);
            }
        }
        Ok(found)
    }

    /// The algorithm checked.
    pub fn algorithm(&self) -> ChecksumAlgorithm {
        self.algorithm
    }

    /// Feeds the next bytes of the data.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// After all the data: the checksum verified, or `BadDigest` unless it matched.
    pub fn finish(self) -> Result<Checksum, ChunkError> {
        if self.hasher.finish() == self.expected {
            Ok(Checksum::of(self.algorithm, &self.expected))
        } else {
            Err(ChunkError::ChecksumMismatch(self.algorithm.header_name()))
        }
    }
}

/// `x-amz-decoded-content-length` of a request: `Ok(None)` when absent; an error unless it is
/// one plain decimal number.
pub fn decoded_length_from_headers(headers: &[(&str, &str)]) -> Result<Option<u64>, ChunkError> {
    let mut values = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case("x-amz-decoded-content-length"))
        .map(|(_, v)| v.trim());
    let value = match (values.next(), values.next()) {
        (None, _) => return Ok(None),
        (Some(value), None) => value,
        (Some(_), Some(_)) => {
            return Err(ChunkError::InvalidRequest(
                "x-amz-decoded-content-length is repeated".into(),
            ))
        }
    };
    let not_a_number =
        || ChunkError::InvalidRequest("x-amz-decoded-content-length is not a number".into());
    if value.is_empty() || value.len() > 19 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(not_a_number());
    }
    value.parse().map(Some).map_err(|_| not_a_number())
}

/// One trailer of the body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Trailer {
    /// The name, lower case.
    pub name: String,
    /// The value, trimmed.
    pub value: String,
    /// A checksum verified against the decoded data (`false` for names not verified here).
    pub verified: bool,
}

/// The trailers of a body (the trailer signature itself is not among them).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Trailers {
    pub entries: Vec<Trailer>,
    /// Covered by a verified `x-amz-trailer-signature` (signed-trailer mode).
    pub signed: bool,
}

impl Trailers {
    /// The value of trailer `name` (case-insensitive).
    pub fn get(&self, name: &str) -> Option<&str> {
        self.entries
            .iter()
            .find(|t| t.name.eq_ignore_ascii_case(name))
            .map(|t| t.value.as_str())
    }

    /// The first checksum trailer verified against the data.
    pub fn checksum(&self) -> Option<Checksum> {
        self.entries.iter().filter(|t| t.verified).find_map(|t| {
            let algorithm = ChecksumAlgorithm::from_header_name(&t.name)?;
            let digest = decode_checksum(algorithm, &t.value).ok()?;
            Some(Checksum::of(algorithm, &digest))
        })
    }
}

/// Where the decoder is in the body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading a chunk-size line.
    Size,
    /// Inside a chunk's data.
    Data {
        remaining: u64,
        signature: Option<[u8; 32]>,
    },
    /// After a chunk's data: `\r\n` expected (`cr`: the `\r` was seen).
    DataEnd { cr: bool },
    /// After the final chunk of a body without trailers: the closing `\r\n`.
    Closing { cr: bool },
    /// Reading trailer lines.
    Trailers,
    /// After a verified trailer signature: an optional closing `\r\n`.
    AfterTrailerSignature { cr: bool },
    /// The body is complete; nothing more is consumed.
    Done,
}

/// The push decoder of one aws-chunked body.
pub struct ChunkDecoder {
    framing: Framing,
    state: State,
    failed: Option<ChunkError>,
    started: bool,
    /// The signature of the previous chunk (the seed before the first).
    previous: [u8; 32],
    /// Chunks verified so far (the index of the current one).
    chunks: u64,
    /// The partial line being read (chunk size or trailer).
    line: Vec<u8>,
    /// Signed modes: sha256 and bytes of the current chunk, held until its signature checks.
    chunk_hash: Sha256,
    held: Vec<u8>,
    decoded: u64,
    expected_len: Option<u64>,
    /// Declared trailer names, with the digest of the data for the checksums verified here.
    declared: Vec<(String, Option<Hasher>)>,
    trailers: Vec<Trailer>,
    /// Signed-trailer mode: sha256 of the `name:value\n` lines so far.
    trailer_hash: Sha256,
    trailer_bytes: usize,
    blank_skipped: bool,
    trailer_signed: bool,
}

impl std::fmt::Debug for ChunkDecoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChunkDecoder")
            .field("framing", &self.framing)
            .field("state", &self.state)
            .field("failed", &self.failed)
            .field("chunks", &self.chunks)
            .field("decoded", &self.decoded)
            .finish_non_exhaustive()
    }
}

impl ChunkDecoder {
    /// A decoder of a body in `framing`. Declare its trailers and decoded length (if known)
    /// before the first [`push`](Self::push).
    pub fn new(framing: Framing) -> ChunkDecoder {
        let previous = framing.context().map_or([0; 32], |c| c.seed_signature);
        ChunkDecoder {
            framing,
            state: State::Size,
            failed: None,
            started: false,
            previous,
            chunks: 0,
            line: Vec::new(),
            chunk_hash: Sha256::new(),
            held: Vec::new(),
            decoded: 0,
            expected_len: None,
            declared: Vec::new(),
            trailers: Vec::new(),
            trailer_hash: Sha256::new(),
            trailer_bytes: 0,
            blank_skipped: false,
            trailer_signed: false,
        }
    }

    /// The decoder a request needs, set up from its headers (`x-amz-trailer`,
    /// `x-amz-decoded-content-length`, which is required): `Ok(None)` when the body is not
    /// aws-chunked. `verified` is `None` for an anonymous request, whose
    /// `x-amz-content-sha256` may still announce `STREAMING-UNSIGNED-PAYLOAD-TRAILER` (signed
    /// chunks on it are refused).
    pub fn for_request(
        verified: Option<&Verified>,
        headers: &[(&str, &str)],
    ) -> Result<Option<ChunkDecoder>, ChunkError> {
        let framing = match verified {
            Some(v) => Framing::from_verified(v),
            None => {
                let mut declared = headers
                    .iter()
                    .filter(|(n, _)| n.eq_ignore_ascii_case("x-amz-content-sha256"));
                match (declared.next(), declared.next()) {
                    (Some((_, value)), None) => match sigv4::parse_content_sha256(value.trim()) {
                        Ok(PayloadMode::StreamingUnsignedTrailer) => Some(Framing::UnsignedTrailer),
                        Ok(PayloadMode::StreamingSigned | PayloadMode::StreamingSignedTrailer) => {
                            return Err(ChunkError::Unauthenticated)
                        }
                        Ok(PayloadMode::Unsigned | PayloadMode::Sha256(_)) | Err(_) => None,
                    },
                    _ => None,
                }
            }
        };
        let Some(framing) = framing else {
            return Ok(None);
        };
        let mut decoder = ChunkDecoder::new(framing);
        let length =
            decoded_length_from_headers(headers)?.ok_or(ChunkError::MissingDecodedLength)?;
        decoder.expect_decoded_length(length)?;
        let mut trailer = headers
            .iter()
            .filter(|(n, _)| n.eq_ignore_ascii_case("x-amz-trailer"));
        match (trailer.next(), trailer.next()) {
            (Some((_, value)), None) => decoder.declare_trailers(value)?,
            (None, _) => {}
            (Some(_), Some(_)) => {
                return Err(ChunkError::InvalidRequest(
                    "x-amz-trailer is repeated".into(),
                ))
            }
        }
        Ok(Some(decoder))
    }

    /// The body must decode to exactly `len` bytes (`x-amz-decoded-content-length`); a chunk
    /// that would overflow it is refused before its data is read.
    pub fn expect_decoded_length(&mut self, len: u64) -> Result<(), ChunkError> {
        self.before_start()?;
        self.expected_len = Some(len);
        Ok(())
    }

    /// Declares the trailers the body carries: the value of `x-amz-trailer`, comma-separated
    /// names. Checksums of algorithms verified here are computed over the decoded data.
    pub fn declare_trailers(&mut self, x_amz_trailer: &str) -> Result<(), ChunkError> {
        self.before_start()?;
        for name in x_amz_trailer
            .split(',')
            .map(str::trim)
            .filter(|n| !n.is_empty())
        {
            let name = name.to_ascii_lowercase();
            if name == TRAILER_SIGNATURE {
                continue;
            }
            if !self.framing.has_trailers() {
                return Err(ChunkError::InvalidRequest(
                    "x-amz-trailer requires a STREAMING-*-TRAILER x-amz-content-sha256".into(),
                ));
            }
            if !is_token(name.as_bytes()) || self.declared.iter().any(|(n, _)| *n == name) {
                return Err(ChunkError::InvalidRequest(
                    "x-amz-trailer names a trailer twice or not a header name".into(),
                ));
            }
            if self.declared.len() == MAX_DECLARED_TRAILERS {
                return Err(ChunkError::InvalidRequest(
                    "x-amz-trailer declares too many trailers".into(),
                ));
            }
            let hasher = ChecksumAlgorithm::from_header_name(&name).map(Hasher::new);
            self.declared.push((name, hasher));
        }
        Ok(())
    }

    fn before_start(&self) -> Result<(), ChunkError> {
        if self.started {
            Err(ChunkError::InvalidRequest(
                "the decoder is configured before the body".into(),
            ))
        } else {
            Ok(())
        }
    }

    /// Decodes the next piece of the body, appending the decoded (and, in signed modes,
    /// verified) bytes to `out`. Returns how many bytes of `input` were consumed: all of them,
    /// except when the body ends inside `input` (what follows is not consumed; it is not part
    /// of this body). On an error, `out` may have received the verified chunks that preceded
    /// the bad one in this `input`, never a byte of the bad chunk.
    pub fn push(&mut self, input: &[u8], out: &mut Vec<u8>) -> Result<usize, ChunkError> {
        if let Some(e) = &self.failed {
            return Err(e.clone());
        }
        self.started = true;
        let mut pos = 0;
        match self.run(input, &mut pos, out) {
            Ok(()) => Ok(pos),
            Err(e) => {
                self.held = Vec::new();
                self.failed = Some(e.clone());
                Err(e)
            }
        }
    }

    /// Whether the whole body (final chunk and trailers) has been decoded and checked.
    pub fn finished(&self) -> bool {
        self.failed.is_none()
            && matches!(
                self.state,
                State::Done | State::AfterTrailerSignature { cr: false }
            )
    }

    /// Decoded bytes so far.
    pub fn decoded_len(&self) -> u64 {
        self.decoded
    }

    /// At the end of the input: the trailers, or why the body is not complete and valid.
    pub fn finish(self) -> Result<Trailers, ChunkError> {
        if let Some(e) = self.failed {
            return Err(e);
        }
        if !self.finished() {
            return Err(ChunkError::Truncated);
        }
        Ok(Trailers {
            entries: self.trailers,
            signed: self.trailer_signed,
        })
    }

    fn run(&mut self, input: &[u8], pos: &mut usize, out: &mut Vec<u8>) -> Result<(), ChunkError> {
        while let Some(rest) = input.get(*pos..).filter(|r| !r.is_empty()) {
            match self.state {
                State::Size => self.take_size_line(rest, pos)?,
                State::Data {
                    remaining,
                    signature,
                } => self.take_data(rest, pos, out, remaining, signature)?,
                State::DataEnd { cr } | State::Closing { cr } => {
                    let byte = rest[0];
                    *pos += 1;
                    self.state = match (cr, byte, self.state) {
                        (false, b'\r', State::DataEnd { .. }) => State::DataEnd { cr: true },
                        (false, b'\r', _) => State::Closing { cr: true },
                        (true, b'\n', State::DataEnd { .. }) => State::Size,
                        (true, b'\n', _) => State::Done,
                        _ => return Err(ChunkError::Malformed("chunk data not followed by CRLF")),
                    };
                }
                State::Trailers => self.take_trailer_line(rest, pos)?,
                State::AfterTrailerSignature { cr: false } => {
                    if rest[0] != b'\r' {
                        self.state = State::Done;
                        return Ok(());
                    }
                    *pos += 1;
                    self.state = State::AfterTrailerSignature { cr: true };
                }
                State::AfterTrailerSignature { cr: true } => {
                    if rest[0] != b'\n' {
                        return Err(ChunkError::Malformed(
                            "a lone CR after the trailer signature",
                        ));
                    }
                    *pos += 1;
                    self.state = State::Done;
                }
                State::Done => return Ok(()),
            }
        }
        Ok(())
    }

    /// [`State::Size`]: takes `rest` into the chunk-size line and, once it is complete, acts
    /// on it (the line's buffer is kept for the next one).
    fn take_size_line(&mut self, rest: &[u8], pos: &mut usize) -> Result<(), ChunkError> {
        if self.take_line(rest, pos, MAX_LINE, false)? {
            let line = std::mem::take(&mut self.line);
            let result = self.on_size_line(&line);
            self.line = line;
            self.line.clear();
            result?;
        }
        Ok(())
    }

    /// [`State::Data`]: takes up to `remaining` bytes of the chunk's data from `rest` into the
    /// declared trailers' checksums and, in signed modes, the chunk's hash and the held bytes
    /// (else straight to `out`); at the chunk's end its signature is verified and the held
    /// bytes released to `out`.
    #[inline]
    fn take_data(
        &mut self,
        rest: &[u8],
        pos: &mut usize,
        out: &mut Vec<u8>,
        remaining: u64,
        signature: Option<[u8; 32]>,
    ) -> Result<(), ChunkError> {
        let n = usize::try_from(remaining).map_or(rest.len(), |r| r.min(rest.len()));
        let data = &rest[..n];
        *pos += n;
        self.decoded += n as u64;
        for (_, hasher) in &mut self.declared {
            if let Some(h) = hasher {
                h.update(data);
            }
        }
        if self.framing.context().is_some() {
            self.chunk_hash.update(data);
            self.held.extend_from_slice(data);
        } else {
            out.extend_from_slice(data);
        }
        let remaining = remaining - n as u64;
        self.state = State::Data {
            remaining,
            signature,
        };
        if remaining == 0 {
            self.verify_chunk(signature)?;
            out.append(&mut self.held);
            self.state = State::DataEnd { cr: false };
        }
        Ok(())
    }

    /// [`State::Trailers`]: takes `rest` into the next trailer line (the section's size
    /// bounded by [`MAX_TRAILER_BYTES`]) and, once it is complete, acts on it.
    fn take_trailer_line(&mut self, rest: &[u8], pos: &mut usize) -> Result<(), ChunkError> {
        let budget = MAX_TRAILER_BYTES.saturating_sub(self.trailer_bytes);
        if self.take_line(rest, pos, budget, true)? {
            let line = std::mem::take(&mut self.line);
            self.trailer_bytes += line.len();
            let result = self.on_trailer_line(&line);
            self.line = line;
            self.line.clear();
            result?;
        }
        Ok(())
    }

    /// Appends `rest` up to and including the next `\n` to `self.line` (at most `limit` bytes
    /// in all); `Ok(true)` when the line is complete. The line must end with CRLF.
    fn take_line(
        &mut self,
        rest: &[u8],
        pos: &mut usize,
        limit: usize,
        trailer: bool,
    ) -> Result<bool, ChunkError> {
        let (take, complete) = match memchr::memchr(b'\n', rest) {
            Some(i) => (i + 1, true),
            None => (rest.len(), false),
        };
        if self.line.len() + take > limit {
            return Err(if trailer {
                ChunkError::Trailer("the trailer section is too large".into())
            } else {
                ChunkError::Malformed("a chunk-size line is too long")
            });
        }
        self.line.extend_from_slice(&rest[..take]);
        *pos += take;
        if complete && !self.line.ends_with(b"\r\n") {
            return Err(ChunkError::Malformed("a line not terminated by CRLF"));
        }
        Ok(complete)
    }

    /// A complete chunk-size line (CRLF included).
    fn on_size_line(&mut self, line: &[u8]) -> Result<(), ChunkError> {
        let line = &line[..line.len().saturating_sub(2)];
        let (size, signature) = parse_size_line(line, self.framing.context().is_some())?;
        if let Some(expected) = self.expected_len {
            let actual = self.decoded.saturating_add(size);
            if actual > expected || (size == 0 && actual != expected) {
                return Err(ChunkError::DecodedLength { expected, actual });
            }
        }
        self.chunk_hash = Sha256::new();
        self.held.clear();
        if size > 0 {
            // Grows with the data that arrives, not with what the header claims.
            self.held
                .reserve(usize::try_from(size.min(64 << 10)).unwrap_or(0));
            self.state = State::Data {
                remaining: size,
                signature,
            };
            return Ok(());
        }
        self.verify_chunk(signature)?;
        self.state = if self.framing.has_trailers() {
            State::Trailers
        } else {
            State::Closing { cr: false }
        };
        Ok(())
    }

    /// Checks the signature of the chunk just read (signed modes; a no-op otherwise).
    fn verify_chunk(&mut self, signature: Option<[u8; 32]>) -> Result<(), ChunkError> {
        let Some(ctx) = self.framing.context() else {
            return Ok(());
        };
        let Some(signature) = signature else {
            return Err(ChunkError::Malformed("chunk without chunk-signature"));
        };
        let data_hash = std::mem::take(&mut self.chunk_hash).finalize();
        let data_hash = sigv4::hex(&data_hash);
        let mac = ctx.chain_mac(
            "AWS4-HMAC-SHA256-PAYLOAD",
            &self.previous,
            &[sigv4::EMPTY_SHA256, &data_hash],
        );
        // Constant-time comparison (hmac uses subtle).
        mac.verify_slice(&signature)
            .map_err(|_| ChunkError::ChunkSignature { index: self.chunks })?;
        self.previous = signature;
        self.chunks += 1;
        Ok(())
    }

    /// A complete trailer line (CRLF included).
    fn on_trailer_line(&mut self, line: &[u8]) -> Result<(), ChunkError> {
        let line = &line[..line.len().saturating_sub(2)];
        let signed = matches!(self.framing, Framing::SignedTrailer(_));
        if line.is_empty() {
            if signed && self.trailers.is_empty() && !self.blank_skipped {
                self.blank_skipped = true;
                return Ok(());
            }
            if signed {
                return Err(ChunkError::Trailer(format!(
                    "{TRAILER_SIGNATURE} is missing"
                )));
            }
            self.check_trailers()?;
            self.state = State::Done;
            return Ok(());
        }
        let text = std::str::from_utf8(line)
            .map_err(|_| ChunkError::Trailer("a trailer line is not UTF-8".into()))?;
        let (name, value) = text
            .split_once(':')
            .ok_or_else(|| ChunkError::Trailer("a trailer line without ':'".into()))?;
        let name = name.trim_matches([' ', '\t']).to_ascii_lowercase();
        let value = value.trim_matches([' ', '\t']);
        if !is_token(name.as_bytes()) || value.bytes().any(|b| b.is_ascii_control() && b != b'\t') {
            return Err(ChunkError::Trailer(
                "a trailer line is not name:value".into(),
            ));
        }
        if name == TRAILER_SIGNATURE {
            return self.on_trailer_signature(value);
        }
        if self.trailers.iter().any(|t| t.name == name) {
            return Err(ChunkError::Trailer(format!("trailer {name} is repeated")));
        }
        if signed {
            self.trailer_hash.update(name.as_bytes());
            self.trailer_hash.update(b":");
            self.trailer_hash.update(value.as_bytes());
            self.trailer_hash.update(b"\n");
        }
        self.trailers.push(Trailer {
            name,
            value: value.to_owned(),
            verified: false,
        });
        Ok(())
    }

    /// The trailer signature (`value`, its hex): checked over the trailers before it, chained
    /// from the last chunk's signature; the trailers are then complete.
    fn on_trailer_signature(&mut self, value: &str) -> Result<(), ChunkError> {
        let Framing::SignedTrailer(ctx) = &self.framing else {
            return Err(ChunkError::Trailer(format!(
                "{TRAILER_SIGNATURE} in a body with unsigned trailers"
            )));
        };
        let signature = sigv4::parse_hex32(value).ok_or_else(|| {
            ChunkError::Trailer(format!("{TRAILER_SIGNATURE} is not 64 hex digits"))
        })?;
        let hash = std::mem::take(&mut self.trailer_hash).finalize();
        let mac = ctx.chain_mac(
            "AWS4-HMAC-SHA256-TRAILER",
            &self.previous,
            &[&sigv4::hex(&hash)],
        );
        mac.verify_slice(&signature)
            .map_err(|_| ChunkError::TrailerSignature)?;
        self.trailer_signed = true;
        self.check_trailers()?;
        self.state = State::AfterTrailerSignature { cr: false };
        Ok(())
    }

    /// At the end of the trailers: each declared one arrived, each that arrived was declared,
    /// and the checksums verified here match the decoded data.
    fn check_trailers(&mut self) -> Result<(), ChunkError> {
        if let Some(t) = self
            .trailers
            .iter()
            .find(|t| !self.declared.iter().any(|(n, _)| *n == t.name))
        {
            return Err(ChunkError::Trailer(format!(
                "trailer {} was not declared in x-amz-trailer",
                t.name
            )));
        }
        for (name, hasher) in std::mem::take(&mut self.declared) {
            let Some(trailer) = self.trailers.iter_mut().find(|t| t.name == name) else {
                return Err(ChunkError::Trailer(format!(
                    "trailer {name} was declared in x-amz-trailer but not sent"
                )));
            };
            if let (Some(hasher), Some(algorithm)) =
                (hasher, ChecksumAlgorithm::from_header_name(&name))
            {
                let expected = decode_checksum(algorithm, &trailer.value)?;
                if hasher.finish() != expected {
                    return Err(ChunkError::ChecksumMismatch(algorithm.header_name()));
                }
                trailer.verified = true;
            }
        }
        Ok(())
    }
}

/// An RFC 9110 token (header name).
fn is_token(s: &[u8]) -> bool {
    !s.is_empty()
        && s.iter()
            .all(|&b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Parses `hex-size[;chunk-signature=<64 hex>]` (without CRLF). Signed modes need exactly that
/// one extension; unsigned chunks may carry extensions, which are ignored.
fn parse_size_line(line: &[u8], signed: bool) -> Result<(u64, Option<[u8; 32]>), ChunkError> {
    let (size, extension) = match memchr::memchr(b';', line) {
        Some(i) => (&line[..i], Some(&line[i + 1..])),
        None => (line, None),
    };
    if size.is_empty() || size.len() > 16 || !size.iter().all(u8::is_ascii_hexdigit) {
        return Err(ChunkError::Malformed("the chunk size is not hexadecimal"));
    }
    let size = size
        .iter()
        .try_fold(0u64, |acc, &b| {
            let digit = u64::from(char::from(b).to_digit(16)?);
            acc.checked_mul(16)?.checked_add(digit)
        })
        .ok_or(ChunkError::Malformed("the chunk size is not hexadecimal"))?;
    if size > MAX_CHUNK_SIZE {
        return Err(ChunkError::ChunkTooLarge {
            size,
            max: MAX_CHUNK_SIZE,
        });
    }
    if !signed {
        return Ok((size, None));
    }
    let signature = extension
        .and_then(|e| e.strip_prefix(b"chunk-signature="))
        .and_then(|hex| std::str::from_utf8(hex).ok())
        .and_then(sigv4::parse_hex32)
        .ok_or(ChunkError::Malformed(
            "a signed chunk needs ;chunk-signature=<64 hex digits>",
        ))?;
    Ok((size, Some(signature)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::s3::sigv4::{verify, Request};

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    const EXAMPLE_NOW: i64 = 1_369_353_600;

    /// The seed request of "Signature Calculations for the Authorization Header: Transferring
    /// Payload in Multiple Chunks" (and, with `trailer`, of "Signature calculations for
    /// trailing headers"), verified by sigv4::verify.
    fn documented_request(trailer: bool) -> Verified {
        let (payload, signed, seed) = if trailer {
            (
                sigv4::STREAMING_SIGNED_TRAILER,
                "content-encoding;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-decoded-content-length;x-amz-storage-class;x-amz-trailer",
                "106e2a8a18243abcf37539882f36619c00e2dfc72633413f02d3b74544bfeb8e",
            )
        } else {
            (
                sigv4::STREAMING_SIGNED,
                "content-encoding;content-length;host;x-amz-content-sha256;x-amz-date;\
                 x-amz-decoded-content-length;x-amz-storage-class",
                "4f232c4386841ef735655705268965c44a0e4690baa4adea153f7db9fa80a0a9",
            )
        };
        let auth = format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders={signed},Signature={seed}"
        );
        let mut headers = vec![
            ("Host", "s3.amazonaws.com"),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("Authorization", auth.as_str()),
            ("x-amz-content-sha256", payload),
            ("Content-Encoding", "aws-chunked"),
            ("x-amz-decoded-content-length", "66560"),
        ];
        if trailer {
            headers.push(("x-amz-trailer", "x-amz-checksum-crc32c"));
        } else {
            headers.push(("Content-Length", "66824"));
        }
        let req = Request {
            method: "PUT",
            path: "/examplebucket/chunkObject.txt",
            query: "",
            headers: &headers,
        };
        let v = verify(&req, EXAMPLE_NOW, "us-east-1", |k| {
            (k == AKID).then(|| SECRET.to_owned())
        })
        .unwrap();
        assert_eq!(v.seed_signature, seed);
        std::rc::Rc::unwrap_or_clone(v)
    }

    const SIGNATURES: [&str; 3] = [
        "ad80c730a21e5b8d04586a2213dd63b9a0e99e0e2307b0ade35a65485a288648",
        "0055627c9e194cb4542bae2aa5492e3c1575bbb81b612b7d234b86a503ef5497",
        "b6c6ea8a5354eaf15b3cb7646744f4275b71ea724fed81ceb9323e279d449df9",
    ];
    const TRAILER_SIGNATURES: [&str; 3] = [
        "b474d8862b1487a5145d686f57f013e54db672cee1c953b3010fb58501ef5aa2",
        "1c1344b170168f8e65b41376b44b20fe354e373826ccbbe2c1d40a8cae51e5c7",
        "2ca2aba2005185cf7159c6277faf83795951dd77a3a99e6e65d5c9f85863f992",
    ];
    const TRAILER_SIGNATURE_VALUE: &str =
        "d81f82fc3505edab99d459891051a732e8730629a2e4a59689829ca17fe2e435";

    /// 64 KiB + 1 KiB of `a` in two chunks and the final one, with the given signatures;
    /// `tail` follows the final chunk line.
    fn documented_body(signatures: [&str; 3], tail: &str) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(format!("10000;chunk-signature={}\r\n", signatures[0]).as_bytes());
        body.extend_from_slice(&[b'a'; 65_536]);
        body.extend_from_slice(format!("\r\n400;chunk-signature={}\r\n", signatures[1]).as_bytes());
        body.extend_from_slice(&[b'a'; 1024]);
        body.extend_from_slice(format!("\r\n0;chunk-signature={}\r\n", signatures[2]).as_bytes());
        body.extend_from_slice(tail.as_bytes());
        body
    }

    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// Feeds `body` in pieces of the sizes `split` yields; the decoded bytes, or the error.
    fn feed(
        mut decoder: ChunkDecoder,
        body: &[u8],
        mut split: impl FnMut() -> usize,
    ) -> Result<(Vec<u8>, Trailers), (ChunkError, Vec<u8>)> {
        let mut out = Vec::new();
        let mut at = 0;
        while at < body.len() {
            let end = (at + split().max(1)).min(body.len());
            match decoder.push(&body[at..end], &mut out) {
                Ok(n) => {
                    assert_eq!(n, end - at, "the whole body is consumed");
                    at = end;
                }
                Err(e) => return Err((e, out)),
            }
        }
        decoder
            .finish()
            .map(|t| (out, t))
            .map_err(|e| (e, Vec::new()))
    }

    fn signed_decoder(trailer: bool) -> ChunkDecoder {
        let v = documented_request(trailer);
        let headers: &[(&str, &str)] = if trailer {
            &[
                ("x-amz-decoded-content-length", "66560"),
                ("x-amz-trailer", "x-amz-checksum-crc32c"),
            ]
        } else {
            &[("x-amz-decoded-content-length", "66560")]
        };
        ChunkDecoder::for_request(Some(&v), headers)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn aws_example_multiple_chunks() {
        let body = documented_body(SIGNATURES, "\r\n");
        assert_eq!(body.len(), 66_824, "the documented Content-Length");
        let mut rng = XorShift(0x00c0_ffee_1234_5678);
        let splits: [&mut dyn FnMut() -> usize; 5] = [
            &mut || body.len(),
            &mut || 1,
            &mut || 7,
            &mut || 65_536,
            &mut || (rng.next() % 300) as usize,
        ];
        for split in splits {
            let (data, trailers) = feed(signed_decoder(false), &body, split).unwrap();
            assert_eq!(data, vec![b'a'; 66_560]);
            assert_eq!(trailers, Trailers::default());
        }
    }

    #[test]
    fn randomized_splits_with_a_fixed_seed() {
        let body = documented_body(SIGNATURES, "\r\n");
        let mut rng = XorShift(0x5eed_0000_0000_0001);
        for round in 0..40 {
            // Mostly small pieces, sometimes big ones, sometimes single bytes.
            let mut split = || match rng.next() % 4 {
                0 => 1,
                1 => (rng.next() % 16) as usize,
                2 => (rng.next() % 4096) as usize,
                _ => (rng.next() % 70_000) as usize,
            };
            let (data, _) = feed(signed_decoder(false), &body, &mut split)
                .unwrap_or_else(|(e, _)| panic!("round {round}: {e}"));
            assert_eq!(data.len(), 66_560);
            assert!(data.iter().all(|&b| b == b'a'));
        }
    }

    #[test]
    fn aws_example_trailer() {
        let trailer = format!(
            "x-amz-checksum-crc32c:sOO8/Q==\r\n{TRAILER_SIGNATURE}:{TRAILER_SIGNATURE_VALUE}\r\n"
        );
        // As SDKs send it, and as the documentation's example lays it out.
        for tail in [format!("{trailer}\r\n"), format!("\r\n{trailer}")] {
            let body = documented_body(TRAILER_SIGNATURES, &tail);
            for piece in [1, 13, 4096, body.len()] {
                let (data, trailers) = feed(signed_decoder(true), &body, || piece).unwrap();
                assert_eq!(data, vec![b'a'; 66_560]);
                assert!(trailers.signed);
                assert_eq!(
                    trailers.entries,
                    vec![Trailer {
                        name: "x-amz-checksum-crc32c".into(),
                        value: "sOO8/Q==".into(),
                        verified: true,
                    }]
                );
                assert_eq!(trailers.get("X-Amz-Checksum-CRC32C"), Some("sOO8/Q=="));
            }
        }
        // A trailer changed after signing; a signature changed; a checksum that is wrong but
        // signed is refused by the checksum (tested with the unsigned mode below).
        let forged = documented_body(
            TRAILER_SIGNATURES,
            &format!(
                "x-amz-checksum-crc32c:AAAAAA==\r\n{TRAILER_SIGNATURE}:{TRAILER_SIGNATURE_VALUE}\r\n\r\n"
            ),
        );
        let (e, data) = feed(signed_decoder(true), &forged, || 1000).unwrap_err();
        assert_eq!(e, ChunkError::TrailerSignature);
        assert_eq!((e.code(), e.status()), ("SignatureDoesNotMatch", 403));
        assert_eq!(data.len(), 66_560, "the chunks themselves were verified");
        let missing = documented_body(TRAILER_SIGNATURES, "x-amz-checksum-crc32c:sOO8/Q==\r\n\r\n");
        let (e, _) = feed(signed_decoder(true), &missing, || 1000).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        // After the trailer signature nothing but the closing CRLF belongs to the body.
        let body = documented_body(TRAILER_SIGNATURES, &format!("{trailer}\r\nNEXT"));
        let mut decoder = signed_decoder(true);
        let mut out = Vec::new();
        let n = decoder.push(&body, &mut out).unwrap();
        assert_eq!(n, body.len() - 4);
        assert!(decoder.finished());
        assert_eq!(decoder.push(b"more", &mut out).unwrap(), 0);
        decoder.finish().unwrap();
    }

    #[test]
    fn tampered_chunk_data_is_never_released() {
        let mut body = documented_body(SIGNATURES, "\r\n");
        // A byte of the second chunk's data: after an 88-byte size line, 65,536 bytes, CRLF
        // and another 86-byte size line.
        let second = 88 + 65_536 + 2 + 86 + 10;
        body[second] = b'b';
        let (e, out) = feed(signed_decoder(false), &body, || 1).unwrap_err();
        assert_eq!(e, ChunkError::ChunkSignature { index: 1 });
        assert_eq!(out, vec![b'a'; 65_536], "only the verified first chunk");
        // A byte of the first chunk: nothing at all comes out.
        let mut body = documented_body(SIGNATURES, "\r\n");
        body[100] = b'b';
        let (e, out) = feed(signed_decoder(false), &body, || 100_000).unwrap_err();
        assert_eq!(e, ChunkError::ChunkSignature { index: 0 });
        assert!(out.is_empty());
    }

    #[test]
    fn tampered_or_reordered_signatures() {
        let mut flipped = SIGNATURES;
        let changed = SIGNATURES[0].replace("ad80", "ad81");
        flipped[0] = &changed;
        let (e, out) = feed(
            signed_decoder(false),
            &documented_body(flipped, "\r\n"),
            || 999,
        )
        .unwrap_err();
        assert_eq!(e, ChunkError::ChunkSignature { index: 0 });
        assert!(out.is_empty());
        // The final chunk's signature is checked too.
        let mut last = SIGNATURES;
        last[2] = SIGNATURES[1];
        let (e, _) = feed(
            signed_decoder(false),
            &documented_body(last, "\r\n"),
            || 999,
        )
        .unwrap_err();
        assert_eq!(e, ChunkError::ChunkSignature { index: 2 });
        // The trailer-mode signatures do not verify under the plain mode's seed.
        let (e, _) = feed(
            signed_decoder(false),
            &documented_body(TRAILER_SIGNATURES, "\r\n"),
            || 999,
        )
        .unwrap_err();
        assert_eq!(e, ChunkError::ChunkSignature { index: 0 });
        // Upper-case hex is the same signature.
        let upper: Vec<String> = SIGNATURES.iter().map(|s| s.to_uppercase()).collect();
        let upper = [upper[0].as_str(), upper[1].as_str(), upper[2].as_str()];
        feed(
            signed_decoder(false),
            &documented_body(upper, "\r\n"),
            || 999,
        )
        .unwrap();
        // A missing signature.
        let body = b"400\r\n".to_vec();
        let (e, _) = feed(signed_decoder(false), &body, || 999).unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
    }

    #[test]
    fn poisoned_after_an_error() {
        let mut decoder = signed_decoder(false);
        let mut out = Vec::new();
        let e = decoder
            .push(b"zz;chunk-signature=\r\n", &mut out)
            .unwrap_err();
        assert_eq!(decoder.push(b"", &mut out).unwrap_err(), e);
        assert_eq!(decoder.push(b"10000", &mut out).unwrap_err(), e);
        assert!(!decoder.finished());
        assert_eq!(decoder.finish().unwrap_err(), e);
    }

    #[test]
    fn truncated_bodies() {
        let body = documented_body(SIGNATURES, "\r\n");
        for cut in [
            0,
            1,
            50,
            90,
            65_536,
            66_000,
            body.len() - 90,
            body.len() - 2,
            body.len() - 1,
        ] {
            let mut decoder = signed_decoder(false);
            let mut out = Vec::new();
            assert_eq!(decoder.push(&body[..cut], &mut out), Ok(cut));
            assert!(!decoder.finished(), "cut at {cut}");
            assert_eq!(decoder.finish().unwrap_err(), ChunkError::Truncated);
            assert_eq!(ChunkError::Truncated.code(), "IncompleteBody");
        }
        // Everything but the final chunk.
        let body = documented_body(SIGNATURES, "\r\n");
        let short = &body[..body.len() - 86];
        assert!(short.ends_with(b"aaa\r\n"));
        let mut decoder = signed_decoder(false);
        let mut out = Vec::new();
        decoder.push(short, &mut out).unwrap();
        assert_eq!(out.len(), 66_560);
        assert_eq!(decoder.finish().unwrap_err(), ChunkError::Truncated);
    }

    #[test]
    fn chunk_size_lines() {
        let sig = format!(";chunk-signature={}", SIGNATURES[0]);
        for (line, code) in [
            (format!("1000001{sig}\r\n"), "EntityTooLarge"),
            (format!("ffffffffffffffff{sig}\r\n"), "EntityTooLarge"),
            (format!("10000000000000000{sig}\r\n"), "InvalidRequest"),
            (format!("zz{sig}\r\n"), "InvalidRequest"),
            (format!("+10{sig}\r\n"), "InvalidRequest"),
            (format!("{sig}\r\n"), "InvalidRequest"),
            (format!("10 {sig}\r\n"), "InvalidRequest"),
            (format!("10{sig}\n"), "InvalidRequest"),
            (format!("10{sig}x\r\n"), "InvalidRequest"),
            ("10;chunk-signature=\r\n".to_owned(), "InvalidRequest"),
            (format!("10000{}\r\n", "0".repeat(300)), "InvalidRequest"),
            ("1".repeat(MAX_LINE + 1), "InvalidRequest"),
        ] {
            let mut decoder = ChunkDecoder::new(Framing::Signed(
                SigningContext::from_verified(&documented_request(false)).unwrap(),
            ));
            let e = decoder.push(line.as_bytes(), &mut Vec::new()).unwrap_err();
            assert_eq!(e.code(), code, "{line:?}: {e}");
        }
        let e = parse_size_line(b"1000001", false).unwrap_err();
        assert_eq!(
            e,
            ChunkError::ChunkTooLarge {
                size: 0x100_0001,
                max: MAX_CHUNK_SIZE
            }
        );
        assert_eq!(
            parse_size_line(b"1000000", false),
            Ok((MAX_CHUNK_SIZE, None))
        );
        assert_eq!(parse_size_line(b"0Aa;ext=1", false), Ok((0xaa, None)));
    }

    #[test]
    fn unknown_checksum_algorithms_are_refused() {
        let refused = |headers: &[(&str, &str)]| match refuse_unknown_checksums(headers) {
            Err(e) => {
                assert_eq!((e.code(), e.status()), ("InvalidRequest", 400));
                e.to_string()
            }
            Ok(()) => panic!("{headers:?} let in"),
        };
        assert!(refused(&[("x-amz-checksum-md4", "AAAA")]).contains("x-amz-checksum-"));
        assert!(refused(&[("X-Amz-Checksum-CRC99", "AAAA")]).contains("x-amz-checksum-"));
        assert!(refused(&[("x-amz-sdk-checksum-algorithm", "MD4")])
            .contains("x-amz-sdk-checksum-algorithm"));
        assert!(refused(&[("x-amz-checksum-algorithm", "MD5")]).contains("unsupported"));
        assert!(refused(&[("x-amz-trailer", "x-amz-checksum-md4")]).contains("x-amz-trailer"));
        assert!(
            refused(&[("x-amz-trailer", "x-amz-checksum-crc32, x-amz-checksum-xx")])
                .contains("x-amz-trailer")
        );
        for ok in [
            vec![],
            vec![
                ("x-amz-checksum-crc32", "NSRBwg=="),
                ("x-amz-sdk-checksum-algorithm", "CRC32"),
            ],
            vec![
                ("X-Amz-Checksum-Sha256", "x"),
                ("x-amz-sdk-checksum-algorithm", "sha256"),
            ],
            vec![
                ("x-amz-checksum-crc64nvme", "x"),
                ("x-amz-checksum-type", "FULL_OBJECT"),
            ],
            vec![
                ("x-amz-checksum-algorithm", "CRC32C"),
                ("x-amz-checksum-type", "COMPOSITE"),
            ],
            vec![("x-amz-checksum-mode", "ENABLED")],
            vec![("x-amz-trailer", "x-amz-checksum-crc32c")],
            vec![("x-amz-trailer", "x-amz-meta-other")],
            vec![("x-amz-checksum-", "x"), ("x-amz-checksum", "x")],
        ] {
            assert_eq!(refuse_unknown_checksums(&ok), Ok(()), "{ok:?}");
        }
    }

    fn unsigned(declared: Option<&str>, length: Option<u64>) -> ChunkDecoder {
        let mut decoder = ChunkDecoder::new(Framing::UnsignedTrailer);
        if let Some(d) = declared {
            decoder.declare_trailers(d).unwrap();
        }
        if let Some(n) = length {
            decoder.expect_decoded_length(n).unwrap();
        }
        decoder
    }

    #[test]
    fn unsigned_trailer_checksums() {
        // crc32("abc") = 0x352441c2.
        let body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n";
        for piece in [1, 2, 5, body.len()] {
            let (data, trailers) = feed(
                unsigned(Some("x-amz-checksum-crc32"), Some(3)),
                body,
                || piece,
            )
            .unwrap();
            assert_eq!(data, b"abc");
            assert!(!trailers.signed);
            assert!(trailers.entries[0].verified);
            assert_eq!(
                trailers.checksum(),
                Some(Checksum {
                    algorithm: ChecksumAlgorithm::Crc32,
                    value: "NSRBwg==".into()
                })
            );
        }
        let bad = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwQ==\r\n\r\n";
        let (e, _) = feed(unsigned(Some("x-amz-checksum-crc32"), None), bad, || 4).unwrap_err();
        assert_eq!(e, ChunkError::ChecksumMismatch("x-amz-checksum-crc32"));
        assert_eq!((e.code(), e.status()), ("BadDigest", 400));
        let garbage = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRB\r\n\r\n";
        let (e, _) = feed(unsigned(Some("x-amz-checksum-crc32"), None), garbage, || 4).unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
        // Undeclared, missing, repeated, malformed trailers.
        let (e, _) = feed(unsigned(None, None), body, || 4).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        let none = b"3\r\nabc\r\n0\r\n\r\n";
        let (e, _) = feed(unsigned(Some("x-amz-checksum-crc32"), None), none, || 4).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        feed(unsigned(None, Some(3)), none, || 4).unwrap();
        let twice = b"0\r\nx-amz-checksum-crc32:AAAAAA==\r\nx-amz-checksum-crc32:AAAAAA==\r\n\r\n";
        let (e, _) = feed(unsigned(Some("x-amz-checksum-crc32"), None), twice, || 4).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        let no_colon = b"0\r\nx-amz-checksum-crc32\r\n\r\n";
        let (e, _) =
            feed(unsigned(Some("x-amz-checksum-crc32"), None), no_colon, || 4).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        let signature = format!("0\r\n{TRAILER_SIGNATURE}:{TRAILER_SIGNATURE_VALUE}\r\n\r\n");
        let (e, _) = feed(unsigned(None, None), signature.as_bytes(), || 4).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        // Unknown algorithms pass through unverified.
        let other = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc99:AAAAAAAAAAA=\r\n\r\n";
        let (_, trailers) =
            feed(unsigned(Some("x-amz-checksum-crc99"), None), other, || 4).unwrap();
        assert_eq!(trailers.get("x-amz-checksum-crc99"), Some("AAAAAAAAAAA="));
        assert!(!trailers.entries[0].verified);
        assert_eq!(trailers.checksum(), None, "not verified, not kept");
        // An oversized trailer section.
        let mut huge = b"0\r\n".to_vec();
        for i in 0..2000 {
            huge.extend_from_slice(format!("x-amz-meta-{i}:vvvvvvvv\r\n").as_bytes());
        }
        let (e, _) = feed(unsigned(None, None), &huge, || 1000).unwrap_err();
        assert_eq!(e.code(), "MalformedTrailerError");
        // Unsigned data is released as it arrives.
        let mut decoder = unsigned(None, None);
        let mut out = Vec::new();
        decoder.push(b"5\r\nhel", &mut out).unwrap();
        assert_eq!(out, b"hel");
    }

    #[test]
    fn decoded_length_is_enforced() {
        let body = b"3\r\nabc\r\n3\r\ndef\r\n0\r\n\r\n";
        feed(unsigned(None, Some(6)), body, || 3).unwrap();
        let (e, out) = feed(unsigned(None, Some(5)), body, || 100).unwrap_err();
        assert_eq!(
            e,
            ChunkError::DecodedLength {
                expected: 5,
                actual: 6
            }
        );
        assert_eq!(out, b"abc", "refused before the overflowing chunk's data");
        let (e, _) = feed(unsigned(None, Some(7)), body, || 100).unwrap_err();
        assert_eq!(
            e,
            ChunkError::DecodedLength {
                expected: 7,
                actual: 6
            }
        );
        assert_eq!(e.code(), "IncompleteBody");
        // The documented body against a wrong declared length.
        let v = documented_request(false);
        let decoder =
            ChunkDecoder::for_request(Some(&v), &[("x-amz-decoded-content-length", "66559")])
                .unwrap()
                .unwrap();
        let body = documented_body(SIGNATURES, "\r\n");
        let (e, out) = feed(decoder, &body, || 70_000).unwrap_err();
        assert_eq!(e.code(), "IncompleteBody");
        assert_eq!(out.len(), 65_536);
        // The header itself.
        assert_eq!(decoded_length_from_headers(&[]), Ok(None));
        assert_eq!(
            decoded_length_from_headers(&[("X-Amz-Decoded-Content-Length", " 12 ")]),
            Ok(Some(12))
        );
        for bad in ["", "+1", "-1", "1e3", "99999999999999999999", "0x10"] {
            assert!(
                decoded_length_from_headers(&[("x-amz-decoded-content-length", bad)]).is_err(),
                "{bad}"
            );
        }
        assert!(decoded_length_from_headers(&[
            ("x-amz-decoded-content-length", "1"),
            ("x-amz-decoded-content-length", "1"),
        ])
        .is_err());
        assert_eq!(
            ChunkDecoder::for_request(Some(&v), &[]).unwrap_err(),
            ChunkError::MissingDecodedLength
        );
    }

    #[test]
    fn for_request_modes() {
        // Not streaming.
        let anonymous = [("x-amz-content-sha256", sigv4::UNSIGNED_PAYLOAD)];
        assert!(ChunkDecoder::for_request(None, &anonymous)
            .unwrap()
            .is_none());
        assert!(ChunkDecoder::for_request(None, &[]).unwrap().is_none());
        // Anonymous unsigned-trailer bodies decode; anonymous signed chunks are refused.
        let headers = [
            ("x-amz-content-sha256", sigv4::STREAMING_UNSIGNED_TRAILER),
            ("x-amz-decoded-content-length", "3"),
            ("x-amz-trailer", "x-amz-checksum-crc32"),
        ];
        let decoder = ChunkDecoder::for_request(None, &headers).unwrap().unwrap();
        let body = b"3\r\nabc\r\n0\r\nx-amz-checksum-crc32:NSRBwg==\r\n\r\n";
        feed(decoder, body, || 2).unwrap();
        let signed = [
            ("x-amz-content-sha256", sigv4::STREAMING_SIGNED),
            ("x-amz-decoded-content-length", "3"),
        ];
        assert_eq!(
            ChunkDecoder::for_request(None, &signed).unwrap_err(),
            ChunkError::Unauthenticated
        );
        // A trailer declared for the plain signed mode is refused.
        let v = documented_request(false);
        let e = ChunkDecoder::for_request(
            Some(&v),
            &[
                ("x-amz-decoded-content-length", "3"),
                ("x-amz-trailer", "x-amz-checksum-crc32"),
            ],
        )
        .unwrap_err();
        assert_eq!(e.code(), "InvalidRequest");
        // Configuration after the body started is refused.
        let mut decoder = unsigned(None, None);
        decoder.push(b"3\r\n", &mut Vec::new()).unwrap();
        assert!(decoder.expect_decoded_length(3).is_err());
        assert!(decoder.declare_trailers("x-amz-checksum-crc32").is_err());
    }

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn crc64_nvme_eight_bytes_a_step_is_the_crc_a_byte_a_step() {
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for len in [0, 1, 7, 8, 9, 63, 64, 65, 1000] {
            let mut one = !0u64;
            for &b in &data[..len] {
                one = (one >> 8) ^ CRC64_NVME[0][((one ^ u64::from(b)) & 0xff) as usize];
            }
            assert_eq!(crc64_nvme_update(!0, &data[..len]), one, "{len} bytes");
        }
        // Fed in pieces as a body arrives.
        let whole = crc64_nvme_update(!0, &data);
        let (a, b) = data.split_at(333);
        assert_eq!(crc64_nvme_update(crc64_nvme_update(!0, a), b), whole);
    }

    #[test]
    fn header_checksums() {
        // The standard check values of "123456789" and the FIPS 180 "abc" digests.
        let b64 = |bytes: &[u8]| base64::engine::general_purpose::STANDARD.encode(bytes);
        let cases = [
            (
                ChecksumAlgorithm::Crc32,
                &b"123456789"[..],
                b64(&0xcbf4_3926_u32.to_be_bytes()),
            ),
            (
                ChecksumAlgorithm::Crc32c,
                b"123456789",
                b64(&0xe306_9283_u32.to_be_bytes()),
            ),
            (
                ChecksumAlgorithm::Crc64Nvme,
                b"123456789",
                b64(&0xae8b_1486_0a79_9888_u64.to_be_bytes()),
            ),
            (
                ChecksumAlgorithm::Sha1,
                b"abc",
                b64(&unhex("a9993e364706816aba3e25717850c26c9cd0d89d")),
            ),
            (
                ChecksumAlgorithm::Sha256,
                b"abc",
                b64(&unhex(
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad",
                )),
            ),
        ];
        for (algorithm, data, value) in cases {
            let headers = [
                ("Content-Type", "x"),
                (algorithm.header_name(), value.as_str()),
            ];
            let mut check = ChecksumCheck::from_headers(&headers).unwrap().unwrap();
            assert_eq!(check.algorithm(), algorithm);
            for byte in data {
                check.update(std::slice::from_ref(byte));
            }
            assert_eq!(
                check.finish().unwrap(),
                Checksum {
                    algorithm,
                    value: value.clone()
                }
            );
            assert_eq!(
                ChecksumAlgorithm::from_name(algorithm.name()),
                Some(algorithm)
            );
            assert_eq!(
                ChecksumAlgorithm::from_name(&algorithm.name().to_lowercase()),
                Some(algorithm)
            );
            let mut wrong = ChecksumCheck::new(algorithm, &value).unwrap();
            wrong.update(b"x");
            assert_eq!(
                wrong.finish().unwrap_err(),
                ChunkError::ChecksumMismatch(algorithm.header_name())
            );
            // The same value as a trailer of an unsigned body.
            let mut body = format!("{:x}\r\n", data.len()).into_bytes();
            body.extend_from_slice(data);
            body.extend_from_slice(
                format!("\r\n0\r\n{}:{value}\r\n\r\n", algorithm.header_name()).as_bytes(),
            );
            let (_, trailers) =
                feed(unsigned(Some(algorithm.header_name()), None), &body, || 3).unwrap();
            assert!(trailers.entries[0].verified);
        }
        assert!(
            ChecksumCheck::from_headers(&[("x-amz-checksum-type", "FULL_OBJECT")])
                .unwrap()
                .is_none()
        );
        assert!(ChecksumCheck::from_headers(&[
            ("x-amz-checksum-crc32", "AAAAAA=="),
            ("x-amz-checksum-sha1", "AAAAAA=="),
        ])
        .is_err());
        for bad in ["", "AAAA", "AAAAAAA=", "!!!!!!==", "AAAAAA==AAAAAA=="] {
            assert!(
                ChecksumCheck::new(ChecksumAlgorithm::Crc32, bad).is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn garbage_never_panics() {
        let mut rng = XorShift(0xdead_beef_0bad_f00d);
        let alphabet = b"0123456789abcdefABx;=-:\r\n chunk-signature";
        let ctx = SigningContext::from_verified(&documented_request(true)).unwrap();
        for round in 0..3000 {
            let len = (rng.next() % 400) as usize;
            let input: Vec<u8> = (0..len)
                .map(|_| {
                    if rng.next().is_multiple_of(8) {
                        rng.next() as u8
                    } else {
                        alphabet[(rng.next() % alphabet.len() as u64) as usize]
                    }
                })
                .collect();
            let framing = match round % 3 {
                0 => Framing::Signed(ctx.clone()),
                1 => Framing::SignedTrailer(ctx.clone()),
                _ => Framing::UnsignedTrailer,
            };
            let mut decoder = ChunkDecoder::new(framing);
            if round % 2 == 0 {
                let _ = decoder.declare_trailers("x-amz-checksum-sha256, x-amz-checksum-crc32");
                let _ = decoder.expect_decoded_length(rng.next() % 64);
            }
            let mut out = Vec::new();
            let mut at = 0;
            while at < input.len() {
                let end = (at + 1 + (rng.next() % 50) as usize).min(input.len());
                match decoder.push(&input[at..end], &mut out) {
                    Ok(n) if n == end - at => at = end,
                    _ => break,
                }
            }
            let _ = decoder.finish();
        }
    }
}
