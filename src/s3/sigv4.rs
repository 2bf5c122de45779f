//! AWS Signature Version 4 verification of S3 requests, sans-IO: the `Authorization` header
//! form and presigned URLs (`X-Amz-Algorithm=AWS4-HMAC-SHA256` in the query).
//!
//! Owns: parsing the credentials of a request, the canonical request exactly as S3 builds it,
//! the clock-skew and presigned-expiry rules, the constant-time signature comparison, the
//! `x-amz-content-sha256` payload modes, and the S3 error codes of every refusal
//! ([`AuthError::code`], [`AuthError::status`]). Nothing here touches the network or disk: the
//! HTTP layer hands over what it already parsed ([`Request`]), the time and the configured
//! region, and gets back who signed and how the body is to be checked ([`Verified`]).
//!
//! What the caller still does with a [`Verified`]:
//! - [`PayloadMode::Sha256`]: hash the body as it arrives ([`PayloadCheck`]) and refuse the
//!   request when it does not match (`XAmzContentSHA256Mismatch`) before committing anything.
//! - `PayloadMode::Streaming*`: decode the body with [`super::chunked::ChunkDecoder`], which
//!   checks every chunk signature chained from [`Verified::seed_signature`].
//! - [`PayloadMode::Unsigned`]: the body is not covered by the signature (as on S3).
//!
//! Not verified here: `x-amz-security-token` (there are no temporary credentials; a token is
//! covered by the signature when signed, and otherwise ignored), SigV4a (`AWS4-ECDSA-P256-SHA256`)
//! (refused with [`AuthError::UnsupportedMechanism`]), POST policy uploads. SigV2 requests
//! are `super::sigv2`'s (here they are refused the same way).

use std::borrow::Cow;
use std::rc::Rc;

use hmac::{Hmac, Mac};
use sha2::{Digest, Sha256};

pub(crate) type HmacSha256 = Hmac<Sha256>;

/// The only signing algorithm accepted.
pub const ALGORITHM: &str = "AWS4-HMAC-SHA256";
/// How far a header-signed request's date may be from our clock, either way (S3: 15 minutes).
/// A presigned URL may be dated at most this far in the future.
pub const MAX_SKEW_SECS: i64 = 15 * 60;
/// The longest lifetime of a presigned URL (`X-Amz-Expires`, seven days).
pub const MAX_PRESIGNED_EXPIRES: i64 = 7 * 24 * 3600;
/// `x-amz-content-sha256` of a body not covered by the signature.
pub const UNSIGNED_PAYLOAD: &str = "UNSIGNED-PAYLOAD";
/// `x-amz-content-sha256` of an aws-chunked body with a signature on every chunk.
pub const STREAMING_SIGNED: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD";
/// Signed chunks followed by trailers and a trailer signature.
pub const STREAMING_SIGNED_TRAILER: &str = "STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER";
/// Unsigned chunks followed by trailers (typically a checksum).
pub const STREAMING_UNSIGNED_TRAILER: &str = "STREAMING-UNSIGNED-PAYLOAD-TRAILER";
/// The sha256 of the empty string, lower-case hex.
pub const EMPTY_SHA256: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";
/// Most names in `SignedHeaders` (SDKs sign a dozen; metadata headers add some).
const MAX_SIGNED_HEADERS: usize = 128;

/// What the HTTP layer already has of a request.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    /// The method as sent (`GET`, `PUT`, ...).
    pub method: &'a str,
    /// The request path exactly as sent, still percent-encoded, without the query.
    pub path: &'a str,
    /// The raw query string, without the `?` (empty when there is none).
    pub query: &'a str,
    /// Every header as sent, in order; names are compared case-insensitively. Repeated
    /// headers appear once per occurrence.
    pub headers: &'a [(&'a str, &'a str)],
}

impl<'a> Request<'a> {
    /// The values of every header called `name` (case-insensitive), in order.
    fn values<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a str> + 's {
        self.headers
            .iter()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
            .map(|&(_, v)| v)
    }

    /// The value of a header that may appear at most once: `Err(())` when repeated.
    fn single(&self, name: &str) -> Result<Option<&'a str>, ()> {
        let mut values = self.values(name);
        let first = values.next();
        match values.next() {
            Some(_) => Err(()),
            None => Ok(first),
        }
    }
}

/// How the request body is covered, from `x-amz-content-sha256` (or `UNSIGNED-PAYLOAD` for a
/// presigned URL that does not say).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PayloadMode {
    /// `UNSIGNED-PAYLOAD`: the body is not covered.
    Unsigned,
    /// The client's sha256 of the whole body: check it with [`PayloadCheck`].
    Sha256([u8; 32]),
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD`: aws-chunked with signed chunks.
    StreamingSigned,
    /// `STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER`: signed chunks, signed trailers.
    StreamingSignedTrailer,
    /// `STREAMING-UNSIGNED-PAYLOAD-TRAILER`: unsigned chunks, trailers (a checksum).
    StreamingUnsignedTrailer,
}

impl PayloadMode {
    /// Whether the body is aws-chunked (`STREAMING-*`).
    pub fn is_streaming(self) -> bool {
        matches!(
            self,
            PayloadMode::StreamingSigned
                | PayloadMode::StreamingSignedTrailer
                | PayloadMode::StreamingUnsignedTrailer
        )
    }
}

/// Parses an `x-amz-content-sha256` value: 64 hex digits (either case), `UNSIGNED-PAYLOAD` or
/// one of the three `STREAMING-*` values we decode. Anything else (including SigV4a's
/// `STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD*`) is `InvalidArgument`, as on S3. Also usable on
/// anonymous requests (an unsigned aws-chunked body).
pub fn parse_content_sha256(value: &str) -> Result<PayloadMode, AuthError> {
    match value {
        UNSIGNED_PAYLOAD => Ok(PayloadMode::Unsigned),
        STREAMING_SIGNED => Ok(PayloadMode::StreamingSigned),
        STREAMING_SIGNED_TRAILER => Ok(PayloadMode::StreamingSignedTrailer),
        STREAMING_UNSIGNED_TRAILER => Ok(PayloadMode::StreamingUnsignedTrailer),
        _ => parse_hex32(value).map(PayloadMode::Sha256).ok_or_else(|| {
            AuthError::InvalidArgument(
                "x-amz-content-sha256 must be UNSIGNED-PAYLOAD, \
                 STREAMING-AWS4-HMAC-SHA256-PAYLOAD, STREAMING-AWS4-HMAC-SHA256-PAYLOAD-TRAILER, \
                 STREAMING-UNSIGNED-PAYLOAD-TRAILER or a valid sha256 value"
                    .into(),
            )
        }),
    }
}

/// A request whose signature checked out.
#[derive(Clone, PartialEq, Eq)]
pub struct Verified {
    /// Who signed.
    pub access_key_id: String,
    /// How the body is to be checked.
    pub payload: PayloadMode,
    /// Signed by query parameters (a presigned URL) rather than the `Authorization` header.
    pub presigned: bool,
    /// The derived SigV4 key of the request's date, region and service: what chunk and
    /// trailer signatures are computed with. Secret: never log it.
    pub signing_key: [u8; 32],
    /// The request's (verified) signature, lower-case hex: the seed of the chunk signatures.
    pub seed_signature: String,
    /// The request time, ISO 8601 basic (`20130524T000000Z`), as in the string to sign.
    pub amz_date: String,
    /// The credential scope, `yyyymmdd/region/s3/aws4_request`.
    pub scope: String,
}

impl std::fmt::Debug for Verified {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Verified")
            .field("access_key_id", &self.access_key_id)
            .field("payload", &self.payload)
            .field("presigned", &self.presigned)
            .field("signing_key", &"<secret>")
            .field("seed_signature", &self.seed_signature)
            .field("amz_date", &self.amz_date)
            .field("scope", &self.scope)
            .finish()
    }
}

impl Verified {
    /// The body check of a [`PayloadMode::Sha256`] request; `None` for the other modes.
    pub fn payload_check(&self) -> Option<PayloadCheck> {
        match self.payload {
            PayloadMode::Sha256(expected) => Some(PayloadCheck::new(expected)),
            _ => None,
        }
    }
}

/// Why a request was refused. [`AuthError::code`] and [`AuthError::status`] are what S3 answers;
/// `Display` is the human message for the error document.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AuthError {
    #[error(
        "The request signature we calculated does not match the signature you provided. \
         Check your key and signing method."
    )]
    SignatureDoesNotMatch,
    #[error("The AWS Access Key Id you provided does not exist in our records.")]
    InvalidAccessKeyId,
    #[error("The difference between the request time and the current time is too large.")]
    RequestTimeTooSkewed,
    /// A presigned URL past `X-Amz-Date + X-Amz-Expires`.
    #[error("Request has expired")]
    Expired,
    /// Other refusals S3 answers with `AccessDenied` (no usable date, unsigned `x-amz-*`
    /// headers, a presigned URL dated in the future, no credentials at all).
    #[error("{0}")]
    AccessDenied(&'static str),
    /// The `Authorization` header does not parse or its scope is not ours.
    #[error("The authorization header is malformed; {0}")]
    HeaderMalformed(String),
    /// The presigned query parameters do not parse or their scope is not ours.
    #[error("{0}")]
    QueryMalformed(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    InvalidRequest(String),
    /// SigV2 (`Authorization: AWS AKID:sig`, `AWSAccessKeyId=` URLs), SigV4a, or another
    /// algorithm.
    #[error(
        "The authorization mechanism you have provided is not supported. \
         Please use AWS4-HMAC-SHA256."
    )]
    UnsupportedMechanism,
    /// A header-signed request without `x-amz-content-sha256`.
    #[error("Missing required header for this request: x-amz-content-sha256")]
    MissingContentSha256,
    /// The body does not hash to the declared `x-amz-content-sha256` ([`PayloadCheck`]).
    #[error("The provided 'x-amz-content-sha256' header does not match what was computed.")]
    ContentSha256Mismatch,
}

impl AuthError {
    /// S3's error code (the `<Code>` of the error document).
    pub fn code(&self) -> &'static str {
        match self {
            AuthError::SignatureDoesNotMatch => "SignatureDoesNotMatch",
            AuthError::InvalidAccessKeyId => "InvalidAccessKeyId",
            AuthError::RequestTimeTooSkewed => "RequestTimeTooSkewed",
            AuthError::Expired | AuthError::AccessDenied(_) => "AccessDenied",
            AuthError::HeaderMalformed(_) => "AuthorizationHeaderMalformed",
            AuthError::QueryMalformed(_) => "AuthorizationQueryParametersError",
            AuthError::InvalidArgument(_) => "InvalidArgument",
            AuthError::InvalidRequest(_)
            | AuthError::UnsupportedMechanism
            | AuthError::MissingContentSha256 => "InvalidRequest",
            AuthError::ContentSha256Mismatch => "XAmzContentSHA256Mismatch",
        }
    }

    /// The HTTP status S3 answers with.
    pub fn status(&self) -> u16 {
        match self {
            AuthError::SignatureDoesNotMatch
            | AuthError::InvalidAccessKeyId
            | AuthError::RequestTimeTooSkewed
            | AuthError::Expired
            | AuthError::AccessDenied(_) => 403,
            AuthError::HeaderMalformed(_)
            | AuthError::QueryMalformed(_)
            | AuthError::InvalidArgument(_)
            | AuthError::InvalidRequest(_)
            | AuthError::UnsupportedMechanism
            | AuthError::MissingContentSha256
            | AuthError::ContentSha256Mismatch => 400,
        }
    }
}

/// Whether a request carries credentials of some kind: an `Authorization` header, a SigV4
/// presigned query (`X-Amz-Algorithm`), or a SigV2 presigned query (`AWSAccessKeyId` or
/// `Signature`, which [`verify`] then refuses). Anonymous otherwise.
pub fn is_signed(req: &Request<'_>) -> bool {
    req.values("authorization").next().is_some()
        || raw_pairs(req.query).any(|(name, _)| {
            [&b"X-Amz-Algorithm"[..], b"AWSAccessKeyId", b"Signature"]
                .iter()
                .any(|want| query_decoded(name.as_bytes()).eq(want.iter().copied()))
        })
}

/// Verifies a request's SigV4 signature.
///
/// `now` is the current unix time in seconds, `region` the one region this listener serves
/// (the credential scope must name it), `secret_of` maps an access key id to its secret.
/// On success the request was signed by that key's owner, within the clock-skew window (or
/// the presigned URL's lifetime); the body is still to be checked per [`Verified::payload`].
pub fn verify<S: AsRef<str>>(
    req: &Request<'_>,
    now: i64,
    region: &str,
    secret_of: impl Fn(&str) -> Option<S>,
) -> Result<Rc<Verified>, AuthError> {
    if let Some(v) = memo::recall(req, now, region, &secret_of) {
        return Ok(v);
    }
    let (verified, window) = verify_afresh(req, now, region, &secret_of)?;
    let verified = Rc::new(verified);
    if let Some(window) = window {
        memo::remember(req, region, &verified, window, &secret_of);
    }
    Ok(verified)
}

/// [`verify`] without the memo; also returns a presigned URL's validity window.
fn verify_afresh<S: AsRef<str>>(
    req: &Request<'_>,
    now: i64,
    region: &str,
    secret_of: impl Fn(&str) -> Option<S>,
) -> Result<(Verified, Option<(i64, i64)>), AuthError> {
    let authorization = req.single("authorization").map_err(|()| {
        AuthError::InvalidArgument("only one Authorization header is allowed".into())
    })?;
    let (text, mut params) = parse_query(req.query);
    let presigned = params
        .iter()
        .any(|&(n, _)| text.bytes(n) == b"X-Amz-Algorithm");
    let parsed = parse_credentials(req, &text, &params, authorization, presigned, now)?;
    let Parsed {
        credential,
        signed_headers,
        signature,
        amz_date,
        payload_hash,
        payload,
        window,
    } = parsed;
    if credential.region != region {
        return Err(malformed(
            presigned,
            format!(
                "the region '{}' is wrong; expecting '{region}'",
                credential.region
            ),
        ));
    }
    let secret = secret_of(credential.access_key_id).ok_or(AuthError::InvalidAccessKeyId)?;
    let signing_key = signing_key(secret.as_ref(), credential.date, region);
    let scope_date = credential.date;
    let check = |params: &mut [(Span, Span)], form| {
        let canonical_hash = canonical_request(
            req,
            &text,
            params,
            form,
            presigned,
            signed_headers,
            payload_hash,
        );
        check_signature(
            &signing_key,
            &amz_date,
            scope_date,
            region,
            &canonical_hash,
            &signature,
        )
    };
    check(&mut params, QueryForm::Standard).or_else(|e| {
        // A header-signed request with a bare component may be curl's (see QueryForm).
        let bare = params.iter().any(|(_, v)| v.valueless);
        if presigned || !bare {
            return Err(e);
        }
        check(&mut params, QueryForm::Valueless)
    })?;
    let verified = Verified {
        access_key_id: credential.access_key_id.to_owned(),
        payload,
        presigned,
        signing_key,
        seed_signature: hex(&signature),
        amz_date: amz_date.into_owned(),
        scope: [credential.date, "/", region, "/s3/aws4_request"].concat(),
    };
    // Only URLs that sign the host alone are remembered: then the method, path, query and
    // Host header are everything the verification read.
    let window = window.filter(|_| signed_headers == "host");
    Ok((verified, window))
}

/// The request's credentials, from its Authorization header or its presigned query (one of
/// them, never both); a request with neither is refused, with `UnsupportedMechanism` when its
/// query holds SigV2's parameters.
fn parse_credentials<'a>(
    req: &Request<'a>,
    text: &'a QueryText<'a>,
    params: &[(Span, Span)],
    authorization: Option<&'a str>,
    presigned: bool,
    now: i64,
) -> Result<Parsed<'a>, AuthError> {
    match (authorization, presigned) {
        (Some(_), true) => Err(AuthError::InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified"
                .into(),
        )),
        (Some(value), false) => parse_header_auth(req, value, now),
        (None, true) => parse_presigned(req, text, params, now),
        (None, false) => {
            if params.iter().any(|&(n, _)| {
                let n = text.bytes(n);
                n == b"AWSAccessKeyId" || n == b"Signature"
            }) {
                return Err(AuthError::UnsupportedMechanism);
            }
            Err(AuthError::AccessDenied(
                "The request carries no credentials.",
            ))
        }
    }
}

/// Checks `signature` against the string to sign (date, scope and the canonical request's
/// hash), written straight into the HMAC keyed by `signing_key`.
fn check_signature(
    signing_key: &[u8; 32],
    amz_date: &str,
    scope_date: &str,
    region: &str,
    canonical_hash: &[u8; 32],
    signature: &[u8; 32],
) -> Result<(), AuthError> {
    let mut mac = Buffered::new(hmac(signing_key));
    for part in [
        ALGORITHM,
        "\n",
        amz_date,
        "\n",
        scope_date,
        "/",
        region,
        "/s3/aws4_request\n",
    ] {
        mac.text(part);
    }
    mac.bytes(&hex_array(canonical_hash));
    // hmac's verify_slice compares in constant time.
    mac.finish()
        .verify_slice(signature)
        .map_err(|_| AuthError::SignatureDoesNotMatch)
}

/// Presigned URLs verified recently, per thread: a URL is typically fetched many times (a
/// page's images, a player's Range requests, a CDN's refills), and verifying one costs two
/// SHA-256 passes over the canonical request plus its parsing, several times the cost of the
/// lookup that replaces them.
///
/// An entry is keyed by everything the verification depended on: the method, the raw path
/// and query (which hold the credential, date, expiry, signed headers and signature) and the
/// Host header, and it holds the secret and region it was verified with. A recall checks
/// again what may have changed since: the clock against the URL's window (when outside it
/// the request is verified afresh, which gives the precise error), the key's secret (a
/// reloaded configuration), the absence of an Authorization header. Only successes are
/// remembered, so an attacker can only fill the memo with URLs he was given; it is bounded
/// ([`MEMO_ENTRIES_MAX`] per generation, two generations).
mod memo {
    use super::{Request, Verified, MAX_SKEW_SECS};
    use std::cell::RefCell;
    use std::collections::HashMap;
    use std::hash::{BuildHasherDefault, Hasher};
    use std::rc::Rc;
    use std::sync::LazyLock;

    /// Entries per generation: when the young generation is full it becomes the old one and
    /// the previous old one is dropped, so recently used URLs survive (they are promoted).
    pub(super) const MEMO_ENTRIES_MAX: usize = 2048;
    /// Longest request (method, path, query, host) remembered, bytes.
    const KEY_BYTES_MAX: usize = 2048;

    /// One remembered URL. Everything a recall compares sits in one allocation, read front to
    /// back: the request's key (see [`parts`]), then the secret and the region it was verified
    /// with.
    struct Entry {
        text: Box<[u8]>,
        key_len: usize,
        secret_len: usize,
        verified: Rc<Verified>,
        time: i64,
        expires: i64,
    }

    impl Entry {
        fn new(
            parts: &[&str; 7],
            secret: &str,
            region: &str,
            verified: &Rc<Verified>,
            (time, expires): (i64, i64),
        ) -> Entry {
            let mut text = Vec::with_capacity(key_len(parts) + secret.len() + region.len());
            for part in parts.iter().chain([&secret, &region]) {
                text.extend_from_slice(part.as_bytes());
            }
            Entry {
                text: text.into_boxed_slice(),
                key_len: key_len(parts),
                secret_len: secret.len(),
                verified: verified.clone(),
                time,
                expires,
            }
        }

        /// Whether this entry is of the request written as `parts`, verified with `secret` in
        /// `region`.
        fn is(&self, parts: &[&str; 7], secret: &str, region: &str) -> bool {
            let (key, rest) = self.text.split_at(self.key_len);
            let (own_secret, own_region) = rest.split_at(self.secret_len);
            if key.len() != key_len(parts) || own_secret != secret.as_bytes() {
                return false;
            }
            let mut at = 0;
            for part in parts {
                if key[at..at + part.len()] != *part.as_bytes() {
                    return false;
                }
                at += part.len();
            }
            own_region == region.as_bytes()
        }
    }

    /// The slot of a signature: its first 64 bits, mixed with a per-process random value so
    /// that nobody picks which of the table's buckets an entry lands in.
    #[derive(Default)]
    struct SlotHasher(u64);

    impl Hasher for SlotHasher {
        fn finish(&self) -> u64 {
            let x = (self.0 ^ *SEED).wrapping_mul(0x9E37_79B9_7F4A_7C15);
            x ^ (x >> 29)
        }
        fn write(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = self.0.rotate_left(8) ^ u64::from(b);
            }
        }
        fn write_u64(&mut self, n: u64) {
            self.0 = n;
        }
    }

    static SEED: LazyLock<u64> = LazyLock::new(|| u64::from_le_bytes(crate::codec::random_bytes()));

    type Slots = HashMap<u64, Entry, BuildHasherDefault<SlotHasher>>;

    /// Entries by the first 64 bits of their signature (an HMAC: no attacker chooses it for
    /// an entry, since only verified URLs go in); the entry's whole key decides.
    #[derive(Default)]
    struct Memo {
        young: Slots,
        old: Slots,
    }

    thread_local! {
        static MEMO: RefCell<Memo> = RefCell::new(Memo::default());
    }

    /// The first 64 bits of the query's `X-Amz-Signature`, when it has one in hex. Searched
    /// from the end, where SDKs put it.
    fn slot_of(query: &str) -> Option<u64> {
        const NAME: &str = "X-Amz-Signature=";
        static FINDER: LazyLock<memchr::memmem::FinderRev<'static>> =
            LazyLock::new(|| memchr::memmem::FinderRev::new(NAME));
        let at = FINDER.rfind(query.as_bytes())? + NAME.len();
        let hex = query.get(at..at + 16)?;
        u64::from_str_radix(hex, 16).ok()
    }

    /// The request as the memo knows it (method, path, query and Host, with separators that
    /// none of them can hold before the Host); None when it is not one to remember (not a
    /// single Host header, an Authorization header, too long).
    fn parts<'a>(req: &Request<'a>) -> Option<[&'a str; 7]> {
        let mut hosts = req.values("host");
        let (Some(host), None) = (hosts.next(), hosts.next()) else {
            return None;
        };
        if req.values("authorization").next().is_some() {
            return None;
        }
        let parts = [req.method, " ", req.path, "?", req.query, "\n", host];
        (key_len(&parts) <= KEY_BYTES_MAX).then_some(parts)
    }

    fn key_len(parts: &[&str; 7]) -> usize {
        parts.iter().map(|p| p.len()).sum()
    }

    pub(super) fn recall<S: AsRef<str>>(
        req: &Request<'_>,
        now: i64,
        region: &str,
        secret_of: &impl Fn(&str) -> Option<S>,
    ) -> Option<Rc<Verified>> {
        let slot = slot_of(req.query)?;
        let parts = parts(req)?;
        MEMO.with(|m| {
            let m = &mut *m.borrow_mut();
            if !m.young.contains_key(&slot) {
                let entry = m.old.remove(&slot)?;
                insert(m, slot, entry);
            }
            let entry = &m.young[&slot];
            let secret = secret_of(&entry.verified.access_key_id)?;
            let in_window = entry.time <= now.saturating_add(MAX_SKEW_SECS)
                && now <= entry.time + entry.expires;
            (in_window && entry.is(&parts, secret.as_ref(), region)).then(|| entry.verified.clone())
        })
    }

    pub(super) fn remember<S: AsRef<str>>(
        req: &Request<'_>,
        region: &str,
        verified: &Rc<Verified>,
        window: (i64, i64),
        secret_of: &impl Fn(&str) -> Option<S>,
    ) {
        let (Some(secret), Some(slot), Some(parts)) = (
            secret_of(&verified.access_key_id),
            slot_of(req.query),
            parts(req),
        ) else {
            return;
        };
        let entry = Entry::new(&parts, secret.as_ref(), region, verified, window);
        MEMO.with(|m| insert(&mut m.borrow_mut(), slot, entry));
    }

    /// Inserts in the young generation, turning the generations over when it is full.
    fn insert(m: &mut Memo, slot: u64, entry: Entry) {
        if m.young.len() >= MEMO_ENTRIES_MAX {
            m.old = std::mem::take(&mut m.young);
        }
        m.young.insert(slot, entry);
    }

    /// Forgets every remembered URL of this thread (tests).
    #[cfg(test)]
    pub(super) fn clear() {
        MEMO.with(|m| *m.borrow_mut() = Memo::default());
    }

    /// Remembers `n` distinct made-up URLs verified as `v` (tests).
    #[cfg(test)]
    pub(super) fn fill(n: usize, v: &Rc<Verified>) {
        MEMO.with(|m| {
            let m = &mut *m.borrow_mut();
            for i in 0..n {
                let path = format!("/fill{i}");
                let parts = ["GET", " ", &path, "?", "", "\n", "host"];
                let entry = Entry::new(&parts, "", "", v, (0, 1));
                insert(m, 1 << 63 | i as u64, entry);
            }
        });
    }

    #[cfg(test)]
    pub(super) fn len() -> usize {
        MEMO.with(|m| {
            let m = m.borrow();
            m.young.len() + m.old.len()
        })
    }
}

/// The lower-case hex sha256 of `data`.
pub fn sha256_hex(data: &[u8]) -> String {
    hex(&Sha256::digest(data))
}

/// Incremental check of a body against its declared `x-amz-content-sha256`.
#[derive(Clone)]
pub struct PayloadCheck {
    expected: [u8; 32],
    hasher: Sha256,
}

impl PayloadCheck {
    /// A check against `expected` (from [`PayloadMode::Sha256`]).
    pub fn new(expected: [u8; 32]) -> PayloadCheck {
        PayloadCheck {
            expected,
            hasher: Sha256::new(),
        }
    }

    /// Feeds the next bytes of the body.
    pub fn update(&mut self, data: &[u8]) {
        self.hasher.update(data);
    }

    /// After the whole body: `XAmzContentSHA256Mismatch` unless it hashed to the declared value.
    pub fn finish(self) -> Result<(), AuthError> {
        if self.hasher.finalize()[..] == self.expected[..] {
            Ok(())
        } else {
            Err(AuthError::ContentSha256Mismatch)
        }
    }
}

/// The `Credential` value: `AKID/yyyymmdd/region/service/aws4_request`.
struct Credential<'a> {
    access_key_id: &'a str,
    date: &'a str,
    region: &'a str,
}

/// What both forms of signing yield before the key lookup (borrowed from the request and its
/// decoded query).
struct Parsed<'a> {
    credential: Credential<'a>,
    /// The `SignedHeaders` value as given, checked by [`parse_signed_headers`].
    signed_headers: &'a str,
    signature: [u8; 32],
    amz_date: Cow<'a, str>,
    /// The last line of the canonical request.
    payload_hash: &'a str,
    payload: PayloadMode,
    /// A presigned URL's validity: its `X-Amz-Date` (unix seconds) and `X-Amz-Expires`.
    window: Option<(i64, i64)>,
}

/// The malformed-credentials error of the form in use.
fn malformed(presigned: bool, message: String) -> AuthError {
    if presigned {
        AuthError::QueryMalformed(message)
    } else {
        AuthError::HeaderMalformed(message)
    }
}

/// Parses the `Authorization` header form and checks everything that needs no secret.
fn parse_header_auth<'a>(
    req: &Request<'a>,
    value: &'a str,
    now: i64,
) -> Result<Parsed<'a>, AuthError> {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    let (algorithm, rest) = value.split_once([' ', '\t']).unwrap_or((value, ""));
    if algorithm != ALGORITHM {
        return Err(if algorithm == "AWS" || algorithm.starts_with("AWS4-") {
            AuthError::UnsupportedMechanism
        } else {
            AuthError::InvalidArgument("Unsupported Authorization Type".into())
        });
    }
    // SDKs write `k=v, k=v` or `k=v,k=v`; no value holds a comma or white space.
    let (mut credential, mut signed, mut signature) = (None, None, None);
    for part in rest.split([',', ' ', '\t']).filter(|p| !p.is_empty()) {
        let (key, val) = part.split_once('=').ok_or_else(|| {
            AuthError::HeaderMalformed(format!("the component '{}' is not key=value", clip(part)))
        })?;
        let slot = match key {
            "Credential" => &mut credential,
            "SignedHeaders" => &mut signed,
            "Signature" => &mut signature,
            _ => {
                return Err(AuthError::HeaderMalformed(format!(
                    "unknown component '{}'",
                    clip(key)
                )))
            }
        };
        if slot.replace(val).is_some() {
            return Err(AuthError::HeaderMalformed(format!(
                "the component '{key}' is repeated"
            )));
        }
    }
    let missing = |what: &str| AuthError::HeaderMalformed(format!("missing {what}"));
    let credential = parse_credential(credential.ok_or_else(|| missing("Credential"))?, false)?;
    let signed_headers =
        parse_signed_headers(signed.ok_or_else(|| missing("SignedHeaders"))?, false)?;
    let signature = parse_hex32(signature.ok_or_else(|| missing("Signature"))?)
        .ok_or_else(|| AuthError::HeaderMalformed("the Signature is not 64 hex digits".into()))?;

    // The request time: x-amz-date, else Date; whichever is used must be signed.
    let no_date =
        AuthError::AccessDenied("AWS authentication requires a valid Date or x-amz-date header");
    let (amz_date, time) = match req.single("x-amz-date").map_err(|()| no_date.clone())? {
        Some(v) => {
            let time = parse_amz_date(v.trim()).ok_or_else(|| no_date.clone())?;
            (Cow::Borrowed(v.trim()), time)
        }
        None => {
            let v = req
                .single("date")
                .map_err(|()| no_date.clone())?
                .ok_or_else(|| no_date.clone())?;
            if !signed_headers.split(';').any(|h| h == "date") {
                return Err(AuthError::AccessDenied(
                    "The Date header must be signed when there is no x-amz-date",
                ));
            }
            let time = httpdate::parse_http_date(v.trim())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .ok_or_else(|| no_date.clone())?;
            (Cow::Owned(format_amz_date(time).ok_or(no_date)?), time)
        }
    };
    check_scope_date(&credential, &amz_date, false)?;
    if now.abs_diff(time) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(AuthError::RequestTimeTooSkewed);
    }

    let content = req
        .single("x-amz-content-sha256")
        .map_err(|()| AuthError::InvalidArgument("x-amz-content-sha256 is repeated".into()))?
        .ok_or(AuthError::MissingContentSha256)?;
    let payload = parse_content_sha256(content.trim())?;

    // As S3: every x-amz-* header present must be signed, or it could be added in transit.
    // (The signed names are lower-case, so a case-insensitive match is the lower-cased name.)
    for (name, _) in req.headers {
        if name
            .as_bytes()
            .get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"x-amz-"))
            && !signed_headers
                .split(';')
                .any(|h| h.eq_ignore_ascii_case(name))
        {
            return Err(AuthError::AccessDenied(
                "There were headers present in the request which were not signed",
            ));
        }
    }
    Ok(Parsed {
        credential,
        signed_headers,
        signature,
        amz_date,
        payload_hash: content.trim(),
        payload,
        window: None,
    })
}

/// Parses the presigned query form and checks everything that needs no secret.
fn parse_presigned<'a>(
    req: &Request<'a>,
    text: &'a QueryText<'a>,
    params: &[(Span, Span)],
    now: i64,
) -> Result<Parsed<'a>, AuthError> {
    // The presigned fields, found in one pass over the query.
    const FIELDS: [&str; 7] = [
        "X-Amz-Algorithm",
        "X-Amz-Credential",
        "X-Amz-Date",
        "X-Amz-Expires",
        "X-Amz-SignedHeaders",
        "X-Amz-Signature",
        "X-Amz-Content-Sha256",
    ];
    let mut found: [Option<&'a str>; FIELDS.len()] = [None; FIELDS.len()];
    for &(n, v) in params {
        let n = text.bytes(n);
        if !n.starts_with(b"X-Amz-") {
            continue;
        }
        if let Some(i) = FIELDS.iter().position(|f| f.as_bytes() == n) {
            let name = FIELDS[i];
            if found[i].is_some() {
                return Err(AuthError::QueryMalformed(format!("{name} is repeated")));
            }
            let v = std::str::from_utf8(text.bytes(v))
                .map_err(|_| AuthError::QueryMalformed(format!("{name} is not valid UTF-8")))?;
            found[i] = Some(v);
        }
    }
    let param = |name: &str| -> Option<&'a str> {
        let i = FIELDS.iter().position(|&f| f == name);
        debug_assert!(i.is_some(), "{name} is not a presigned field");
        i.and_then(|i| found[i])
    };
    let required = |name: &str| -> Result<&'a str, AuthError> {
        param(name).ok_or_else(|| {
            AuthError::QueryMalformed(format!(
                "Query-string authentication version 4 requires the X-Amz-Algorithm, \
                 X-Amz-Credential, X-Amz-Signature, X-Amz-Date, X-Amz-SignedHeaders, and \
                 X-Amz-Expires parameters; {name} is missing"
            ))
        })
    };
    if required("X-Amz-Algorithm")? != ALGORITHM {
        return Err(AuthError::QueryMalformed(
            "X-Amz-Algorithm only supports \"AWS4-HMAC-SHA256\"".into(),
        ));
    }
    let credential = parse_credential(required("X-Amz-Credential")?, true)?;
    let amz_date = required("X-Amz-Date")?;
    let time = parse_amz_date(amz_date).ok_or_else(|| {
        AuthError::QueryMalformed(
            "X-Amz-Date must be in the ISO8601 Long Format \"yyyyMMdd'T'HHmmss'Z'\"".into(),
        )
    })?;
    let expires = required("X-Amz-Expires")?;
    let expires = parse_digits(expires)
        .filter(|e| (1..=MAX_PRESIGNED_EXPIRES).contains(e))
        .ok_or_else(|| {
            AuthError::QueryMalformed(
                "X-Amz-Expires must be a number of seconds from 1 to 604800 (a week)".into(),
            )
        })?;
    let signed_headers = parse_signed_headers(required("X-Amz-SignedHeaders")?, true)?;
    let signature = parse_hex32(required("X-Amz-Signature")?)
        .ok_or_else(|| AuthError::QueryMalformed("X-Amz-Signature is not 64 hex digits".into()))?;
    check_scope_date(&credential, amz_date, true)?;
    if time > now.saturating_add(MAX_SKEW_SECS) {
        return Err(AuthError::AccessDenied("Request is not valid yet"));
    }
    if now > time.saturating_add(expires) {
        return Err(AuthError::Expired);
    }
    // The payload: as the query says, else a signed x-amz-content-sha256 header, else unsigned.
    let declared = match param("X-Amz-Content-Sha256") {
        Some(v) => Some(v),
        None if signed_headers
            .split(';')
            .any(|h| h == "x-amz-content-sha256") =>
        {
            req.single("x-amz-content-sha256")
                .map_err(|()| {
                    AuthError::InvalidArgument("x-amz-content-sha256 is repeated".into())
                })?
                .map(str::trim)
        }
        None => None,
    };
    let payload_hash = declared.unwrap_or(UNSIGNED_PAYLOAD);
    let payload = parse_content_sha256(payload_hash)?;
    if payload.is_streaming() {
        return Err(AuthError::InvalidRequest(
            "a presigned URL cannot carry an aws-chunked (STREAMING-*) body".into(),
        ));
    }
    Ok(Parsed {
        credential,
        signed_headers,
        signature,
        amz_date: Cow::Borrowed(amz_date),
        payload_hash,
        payload,
        window: Some((time, expires)),
    })
}

/// Parses `AKID/yyyymmdd/region/s3/aws4_request`; the region is compared later (after the
/// date), the rest here.
fn parse_credential(value: &str, presigned: bool) -> Result<Credential<'_>, AuthError> {
    let bad = |what: String| malformed(presigned, what);
    let mut parts = value.rsplitn(5, '/');
    let (terminator, service, region, date, akid) = match (
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
        parts.next(),
    ) {
        (Some(t), Some(s), Some(r), Some(d), Some(a)) => (t, s, r, d, a),
        _ => {
            return Err(bad(format!(
                "the Credential '{}' is not AKID/date/region/service/aws4_request",
                clip(value)
            )))
        }
    };
    if akid.is_empty() {
        return Err(bad("the access key id is empty".into()));
    }
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad(format!(
            "the credential date '{}' is not yyyymmdd",
            clip(date)
        )));
    }
    if service != "s3" {
        return Err(bad(format!(
            "the service '{}' is wrong; expecting 's3'",
            clip(service)
        )));
    }
    if terminator != "aws4_request" {
        return Err(bad(format!(
            "the credential terminator '{}' is wrong; expecting 'aws4_request'",
            clip(terminator)
        )));
    }
    Ok(Credential {
        access_key_id: akid,
        date,
        region,
    })
}

/// The credential's date must be the day of the request time.
fn check_scope_date(
    credential: &Credential<'_>,
    amz_date: &str,
    presigned: bool,
) -> Result<(), AuthError> {
    if amz_date.get(..8) == Some(credential.date) {
        Ok(())
    } else {
        Err(malformed(
            presigned,
            format!(
                "Invalid credential date '{}'. Date is not the same as X-Amz-Date.",
                credential.date
            ),
        ))
    }
}

/// Checks `SignedHeaders` (`host;range;x-amz-date`): distinct, lower-case token names that
/// include `host`. The value is returned as given: its `;`-separated names, in that order, are
/// the canonical request's signed headers (and the value itself their joined list).
fn parse_signed_headers(value: &str, presigned: bool) -> Result<&str, AuthError> {
    let bad = |what: String| malformed(presigned, what);
    for (count, name) in value.split(';').enumerate() {
        if name.is_empty()
            || !name.bytes().all(|b| {
                b.is_ascii_lowercase() || b.is_ascii_digit() || b"-_.!#$%&'*+^`|~".contains(&b)
            })
        {
            return Err(bad(format!(
                "the signed header name '{}' is not a lower-case header name",
                clip(name)
            )));
        }
        if value.split(';').take(count).any(|n| n == name) {
            return Err(bad(format!("the signed header '{name}' is repeated")));
        }
        if count == MAX_SIGNED_HEADERS {
            return Err(bad("too many signed headers".into()));
        }
    }
    if !value.split(';').any(|n| n == "host") {
        return Err(bad("the host header must be signed".into()));
    }
    Ok(value)
}

/// Where a query component's bytes are: in the raw query (nothing to decode) or in
/// [`QueryText::decoded`].
#[derive(Debug, Clone, Copy)]
struct Span {
    start: usize,
    end: usize,
    decoded: bool,
    /// A value span of a component without `=` (`?uploads`): empty, and signed as `uploads`
    /// by the clients of [`QueryForm::Valueless`].
    valueless: bool,
}

/// The raw query and the decoded copies of those components that needed decoding.
struct QueryText<'q> {
    raw: &'q str,
    decoded: Vec<u8>,
}

impl QueryText<'_> {
    fn bytes(&self, span: Span) -> &[u8] {
        let all = if span.decoded {
            &self.decoded[..]
        } else {
            self.raw.as_bytes()
        };
        &all[span.start..span.end]
    }

    /// The span of `raw[start..end]` decoded, copying it only if it holds `%` or `+`.
    fn span(&mut self, start: usize, end: usize) -> Span {
        let component = &self.raw.as_bytes()[start..end];
        if memchr::memchr2(b'%', b'+', component).is_none() {
            return Span {
                start,
                end,
                decoded: false,
                valueless: false,
            };
        }
        if self.decoded.capacity() == 0 {
            self.decoded.reserve(self.raw.len());
        }
        let from = self.decoded.len();
        crate::codec::form_decode_into(component, &mut self.decoded);
        Span {
            start: from,
            end: self.decoded.len(),
            decoded: true,
            valueless: false,
        }
    }
}

/// The raw query's `name=value` pairs, percent-decoded (`+` is a space, as S3 reads query
/// strings); empty components skipped, a missing `=` is an empty value. Only the components
/// holding `%` or `+` are copied (decoded).
fn parse_query(raw: &str) -> (QueryText<'_>, Vec<(Span, Span)>) {
    let mut text = QueryText {
        raw,
        decoded: Vec::new(),
    };
    let bytes = raw.as_bytes();
    let mut params = Vec::with_capacity(8);
    let mut start = 0;
    while start < bytes.len() {
        let end = memchr::memchr(b'&', &bytes[start..]).map_or(bytes.len(), |i| start + i);
        if end > start {
            let (name_end, value_start) = memchr::memchr(b'=', &bytes[start..end])
                .map_or((end, end), |i| (start + i, start + i + 1));
            let name = text.span(start, name_end);
            let mut value = text.span(value_start, end);
            value.valueless = name_end == end;
            params.push((name, value));
        }
        start = end + 1;
    }
    (text, params)
}

/// The raw query's non-empty `name=value` components, still encoded.
fn raw_pairs(query: &str) -> impl Iterator<Item = (&str, &str)> + '_ {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| pair.split_once('=').unwrap_or((pair, "")))
}

/// The bytes of a raw query component decoded: `+` is a space, then `%XX` a byte (an invalid
/// `%` stays itself), as `percent_decode` of the component with `+` replaced by a space.
fn query_decoded(raw: &[u8]) -> impl Iterator<Item = u8> + '_ {
    let mut i = 0;
    std::iter::from_fn(move || {
        let b = *raw.get(i)?;
        i += 1;
        Some(match b {
            b'+' => b' ',
            b'%' => {
                let digit = |at: usize| raw.get(at).and_then(|&c| char::from(c).to_digit(16));
                match (digit(i), digit(i + 1)) {
                    (Some(hi), Some(lo)) => {
                        i += 2;
                        // Two hex digits: at most 255.
                        (hi * 16 + lo) as u8
                    }
                    _ => b'%',
                }
            }
            b => b,
        })
    })
}

/// The raw query's pairs decoded into owned bytes (what [`parse_query`] yields, copied).
#[cfg(test)]
fn query_pairs(query: &str) -> impl Iterator<Item = (Vec<u8>, Vec<u8>)> + '_ {
    raw_pairs(query).map(|(name, value)| {
        (
            query_decoded(name.as_bytes()).collect(),
            query_decoded(value.as_bytes()).collect(),
        )
    })
}

/// Where the canonical request is written: a [`Buffered`] hasher, or a `String` (tests).
trait Canon {
    /// One ASCII byte.
    fn byte(&mut self, b: u8);
    /// ASCII bytes.
    fn ascii(&mut self, bytes: &[u8]);
    fn text(&mut self, s: &str);
}

impl Canon for String {
    fn byte(&mut self, b: u8) {
        debug_assert!(b.is_ascii());
        self.push(char::from(b));
    }

    fn ascii(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.byte(b);
        }
    }

    fn text(&mut self, s: &str) {
        self.push_str(s);
    }
}

/// A hasher (or HMAC) fed through a small stack buffer, so that the canonical request can be
/// written a byte at a time without the cost of an `update` per byte.
struct Buffered<D: sha2::digest::Update> {
    inner: D,
    buf: [u8; 256],
    len: usize,
}

impl<D: sha2::digest::Update> Buffered<D> {
    fn new(inner: D) -> Self {
        Buffered {
            inner,
            buf: [0; 256],
            len: 0,
        }
    }

    fn bytes(&mut self, data: &[u8]) {
        if self.len + data.len() > self.buf.len() {
            self.inner.update(&self.buf[..self.len]);
            self.len = 0;
            if data.len() >= self.buf.len() {
                self.inner.update(data);
                return;
            }
        }
        self.buf[self.len..self.len + data.len()].copy_from_slice(data);
        self.len += data.len();
    }

    /// The inner hasher, fed everything written.
    fn finish(mut self) -> D {
        self.inner.update(&self.buf[..self.len]);
        self.inner
    }
}

impl<D: sha2::digest::Update> Canon for Buffered<D> {
    #[inline]
    fn byte(&mut self, b: u8) {
        if self.len == self.buf.len() {
            self.inner.update(&self.buf);
            self.len = 0;
        }
        self.buf[self.len] = b;
        self.len += 1;
    }

    fn ascii(&mut self, bytes: &[u8]) {
        self.bytes(bytes);
    }

    fn text(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }
}

/// How a byte sorts once URI-encoded: an encoded byte (`%XX`, `%` being below every
/// unreserved character) before any unreserved one, and among each kind by value (upper-case
/// hex digits sort as the byte they encode). Comparing two byte strings by this key compares
/// their encodings, without encoding them.
fn encoded_order(b: u8) -> (bool, u8) {
    (is_unreserved(b), b)
}

fn encoded_cmp(a: &[u8], b: &[u8]) -> std::cmp::Ordering {
    // Equal bytes have equal keys: the first differing byte decides, else the length.
    match a.iter().zip(b).position(|(x, y)| x != y) {
        Some(i) => encoded_order(a[i]).cmp(&encoded_order(b[i])),
        None => a.len().cmp(&b.len()),
    }
}

/// How a query component without `=` (`?uploads`) is written in the canonical query.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum QueryForm {
    /// `uploads=`, as SigV4 specifies and S3 and the SDKs sign it.
    Standard,
    /// `uploads`, as curl's `--aws-sigv4` signs it before curl 8.5 (Debian 12's 7.88.1).
    /// Accepting it authorises no other request: a canonical query of this form differs from
    /// every standard one (the component has no `=`, and encoded names and values never hold
    /// `=` or `&`), and only requests with the same parameters, values and bare components
    /// produce it.
    Valueless,
}

/// The sha256 of the canonical request, as S3 builds it, hashed as it is produced. Sorts
/// `params` (the canonical query order).
fn canonical_request(
    req: &Request<'_>,
    text: &QueryText<'_>,
    params: &mut [(Span, Span)],
    form: QueryForm,
    presigned: bool,
    signed_headers: &str,
    payload_hash: &str,
) -> [u8; 32] {
    let mut out = Buffered::new(Sha256::new());
    out.text(req.method);
    out.byte(b'\n');
    canonical_uri(req.path, &mut out);
    out.byte(b'\n');
    params.sort_unstable_by(|&(an, av), &(bn, bv)| {
        encoded_cmp(text.bytes(an), text.bytes(bn))
            .then_with(|| encoded_cmp(text.bytes(av), text.bytes(bv)))
    });
    let mut first = true;
    for &(name, value) in params.iter() {
        let name = text.bytes(name);
        if presigned && name == b"X-Amz-Signature" {
            continue;
        }
        if !first {
            out.byte(b'&');
        }
        first = false;
        uri_encode(name, true, &mut out);
        if !(value.valueless && form == QueryForm::Valueless) {
            out.byte(b'=');
        }
        uri_encode(text.bytes(value), true, &mut out);
    }
    out.byte(b'\n');
    for name in signed_headers.split(';') {
        out.text(name);
        out.byte(b':');
        for (i, value) in req.values(name).enumerate() {
            if i > 0 {
                out.byte(b',');
            }
            trim_all(value, &mut out);
        }
        out.byte(b'\n');
    }
    out.byte(b'\n');
    out.text(signed_headers);
    out.byte(b'\n');
    out.text(payload_hash);
    out.finish().finalize().into()
}

/// The canonical URI: each `/`-separated segment of the raw path percent-decoded, then
/// encoded once per AWS rules. No `.`/`..` or `//` normalisation (S3 keeps keys verbatim);
/// `%2F` inside a segment stays `%2F`.
fn canonical_uri(path: &str, out: &mut impl Canon) {
    if !path.starts_with('/') {
        out.byte(b'/');
    }
    for (i, segment) in path.split('/').enumerate() {
        if i > 0 {
            out.byte(b'/');
        }
        if segment.contains('%') {
            for b in percent_encoding::percent_decode_str(segment) {
                uri_encode_byte(b, true, out);
            }
        } else {
            uri_encode(segment.as_bytes(), true, out);
        }
    }
}

/// AWS `UriEncode`'s unreserved characters, `A-Za-z0-9-._~`.
fn is_unreserved(b: u8) -> bool {
    UNRESERVED[usize::from(b)]
}

/// [`is_unreserved`] as a table: the canonical request tests every byte of the query.
static UNRESERVED: [bool; 256] = {
    let mut t = [false; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        t[b] = c.is_ascii_alphanumeric() || matches!(c, b'-' | b'.' | b'_' | b'~');
        b += 1;
    }
    t
};

/// AWS `UriEncode`: unreserved `A-Za-z0-9-._~` kept, every other byte `%XX` upper-case
/// (`/` too when `encode_slash`).
fn uri_encode(bytes: &[u8], encode_slash: bool, out: &mut impl Canon) {
    let keep = |b: u8| is_unreserved(b) || (b == b'/' && !encode_slash);
    let mut rest = bytes;
    // Runs of kept bytes are copied whole.
    while let Some(i) = rest.iter().position(|&b| !keep(b)) {
        out.ascii(&rest[..i]);
        uri_encode_byte(rest[i], encode_slash, out);
        rest = &rest[i + 1..];
    }
    out.ascii(rest);
}

#[inline]
fn uri_encode_byte(b: u8, encode_slash: bool, out: &mut impl Canon) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    if is_unreserved(b) || (b == b'/' && !encode_slash) {
        out.byte(b);
    } else {
        out.ascii(&[b'%', HEX[usize::from(b >> 4)], HEX[usize::from(b & 15)]]);
    }
}

/// A header value for the canonical request: leading and trailing white space removed, runs
/// of spaces inside collapsed to one.
fn trim_all(value: &str, out: &mut impl Canon) {
    let trimmed = value.trim_matches(|c| c == ' ' || c == '\t');
    // The trimmed value neither starts nor ends with a space: its words, one space apart.
    for (i, word) in trimmed.split(' ').filter(|w| !w.is_empty()).enumerate() {
        if i > 0 {
            out.byte(b' ');
        }
        out.text(word);
    }
}

/// The SigV4 signing key of a day and region for S3, remembered per thread for the last few
/// (secret, day, region): a key is the same for every request of a credential on a day, and
/// deriving it costs four HMACs.
fn signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    /// Keys remembered per thread.
    const REMEMBERED: usize = 8;
    type Entry = (String, String, String, [u8; 32]);
    thread_local! {
        static KEYS: std::cell::RefCell<Vec<Entry>> = const { std::cell::RefCell::new(Vec::new()) };
    }
    let hit = KEYS.with(|k| {
        k.borrow()
            .iter()
            .find(|(s, d, r, _)| s == secret && d == date && r == region)
            .map(|e| e.3)
    });
    if let Some(key) = hit {
        return key;
    }
    let key = derive_signing_key(secret, date, region);
    KEYS.with(|k| {
        let mut k = k.borrow_mut();
        if k.len() == REMEMBERED {
            k.remove(0);
        }
        k.push((
            secret.to_string(),
            date.to_string(),
            region.to_string(),
            key,
        ));
    });
    key
}

fn derive_signing_key(secret: &str, date: &str, region: &str) -> [u8; 32] {
    let mut key = format!("AWS4{secret}").into_bytes();
    for part in [date, region, "s3", "aws4_request"] {
        let mut mac = hmac(&key);
        mac.update(part.as_bytes());
        key = mac.finalize().into_bytes().to_vec();
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(&key);
    out
}

/// HMAC-SHA256 keyed with `key` (any length is a valid HMAC key).
pub(crate) fn hmac(key: &[u8]) -> HmacSha256 {
    match HmacSha256::new_from_slice(key) {
        Ok(mac) => mac,
        // new_from_slice never fails for HMAC; an empty-key MAC keeps this total.
        Err(_) => HmacSha256::new(&Default::default()),
    }
}

/// Lower-case hex of a sha256, on the stack.
fn hex_array(bytes: &[u8; 32]) -> [u8; 64] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = [0u8; 64];
    for (pair, &b) in out.chunks_exact_mut(2).zip(bytes) {
        pair[0] = HEX[usize::from(b >> 4)];
        pair[1] = HEX[usize::from(b & 15)];
    }
    out
}

/// Lower-case hex (as every SigV4 string writes it).
pub(crate) use crate::codec::hex;

/// 64 hex digits (either case) as 32 bytes.
pub(crate) fn parse_hex32(s: &str) -> Option<[u8; 32]> {
    crate::codec::unhex(s)?.try_into().ok()
}

/// A non-negative decimal number of at most 18 digits (no sign, no spaces).
fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// At most 64 characters of attacker-supplied text for an error message.
fn clip(s: &str) -> &str {
    match s.char_indices().nth(64) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The date of a day count since 1970-01-01.
fn civil_from_days(z: i64) -> (i64, i64, i64) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// `yyyymmddThhmmssZ` as unix seconds; `None` unless exactly that form and a real time.
fn parse_amz_date(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() != 16 || b[8] != b'T' || b[15] != b'Z' {
        return None;
    }
    let num = |range: std::ops::Range<usize>| -> Option<i64> {
        let digits = b.get(range)?;
        digits.iter().try_fold(0i64, |acc, &c| {
            if c.is_ascii_digit() {
                Some(acc * 10 + i64::from(c - b'0'))
            } else {
                None
            }
        })
    };
    let (y, mo, d) = (num(0..4)?, num(4..6)?, num(6..8)?);
    let (h, mi, sec) = (num(9..11)?, num(11..13)?, num(13..15)?);
    let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    let month_days = match mo {
        1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
        4 | 6 | 9 | 11 => 30,
        2 if leap => 29,
        2 => 28,
        _ => return None,
    };
    if d < 1 || d > month_days || h > 23 || mi > 59 || sec > 59 {
        return None;
    }
    Some(days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec)
}

/// Unix seconds as `yyyymmddThhmmssZ` (years 0..=9999 only).
fn format_amz_date(t: i64) -> Option<String> {
    let (y, m, d) = civil_from_days(t.div_euclid(86_400));
    let s = t.rem_euclid(86_400);
    (0..=9999).contains(&y).then(|| {
        format!(
            "{y:04}{m:02}{d:02}T{:02}{:02}{:02}Z",
            s / 3600,
            s / 60 % 60,
            s % 60
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const AKID: &str = "AKIAIOSFODNN7EXAMPLE";
    const SECRET: &str = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
    /// 2013-05-24T00:00:00Z, the time of every AWS example.
    const EXAMPLE_NOW: i64 = 1_369_353_600;
    const HOST: &str = "examplebucket.s3.amazonaws.com";

    fn secrets(akid: &str) -> Option<String> {
        (akid == AKID).then(|| SECRET.to_owned())
    }

    fn authorization(signed_headers: &str, signature: &str) -> String {
        format!(
            "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request,\
             SignedHeaders={signed_headers},Signature={signature}"
        )
    }

    fn check(
        method: &str,
        path: &str,
        query: &str,
        headers: &[(&str, &str)],
        now: i64,
    ) -> Result<Rc<Verified>, AuthError> {
        let req = Request {
            method,
            path,
            query,
            headers,
        };
        verify(&req, now, "us-east-1", secrets)
    }

    /// "Signature Calculations for the Authorization Header: Transferring Payload in a Single
    /// Chunk", example GET Object (Range: bytes=0-9).
    fn get_object_headers(signature: &str) -> Vec<(&'static str, String)> {
        vec![
            ("Host", HOST.to_owned()),
            ("Range", "bytes=0-9".to_owned()),
            ("x-amz-content-sha256", EMPTY_SHA256.to_owned()),
            ("x-amz-date", "20130524T000000Z".to_owned()),
            (
                "Authorization",
                authorization("host;range;x-amz-content-sha256;x-amz-date", signature),
            ),
        ]
    }

    fn borrow<'a>(headers: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
        headers.iter().map(|(n, v)| (*n, v.as_str())).collect()
    }

    const GET_OBJECT_SIGNATURE: &str =
        "f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41";

    #[test]
    fn aws_example_get_object() {
        let headers = get_object_headers(GET_OBJECT_SIGNATURE);
        let v = check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap();
        assert_eq!(v.access_key_id, AKID);
        assert!(!v.presigned);
        assert_eq!(v.scope, "20130524/us-east-1/s3/aws4_request");
        assert_eq!(v.amz_date, "20130524T000000Z");
        assert_eq!(v.seed_signature, GET_OBJECT_SIGNATURE);
        let empty = parse_hex32(EMPTY_SHA256).unwrap();
        assert_eq!(v.payload, PayloadMode::Sha256(empty));
        let mut body = v.payload_check().unwrap();
        body.update(b"");
        body.finish().unwrap();
        let mut body = v.payload_check().unwrap();
        body.update(b"x");
        assert_eq!(
            body.finish().unwrap_err().code(),
            "XAmzContentSHA256Mismatch"
        );
        // Upper-case hex in the Signature is the same signature.
        let headers = get_object_headers(&GET_OBJECT_SIGNATURE.to_uppercase());
        check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap();
    }

    #[test]
    fn aws_example_put_object() {
        let auth = authorization(
            "date;host;x-amz-content-sha256;x-amz-date;x-amz-storage-class",
            "98ad721746da40c64f1a55b78f14c238d841ea1380cd77a1b5971af0ece108bd",
        );
        let payload_sha = "44ce7dd67c959e0d3524ffac1771dfbba87d2b6b4b4e99e42034a8b803f8b072";
        assert_eq!(sha256_hex(b"Welcome to Amazon S3."), payload_sha);
        let headers = [
            ("Host", HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("Authorization", auth.as_str()),
            ("x-amz-date", "20130524T000000Z"),
            ("x-amz-storage-class", "REDUCED_REDUNDANCY"),
            ("x-amz-content-sha256", payload_sha),
        ];
        let v = check("PUT", "/test$file.text", "", &headers, EXAMPLE_NOW).unwrap();
        let mut body = v.payload_check().unwrap();
        body.update(b"Welcome to ");
        body.update(b"Amazon S3.");
        body.finish().unwrap();
        // The client may percent-encode `$` itself: the same canonical URI.
        check("PUT", "/test%24file.text", "", &headers, EXAMPLE_NOW).unwrap();
    }

    fn bucket_get(query: &str, signature: &str) -> Result<Rc<Verified>, AuthError> {
        let auth = authorization("host;x-amz-content-sha256;x-amz-date", signature);
        let headers = [
            ("Host", HOST),
            ("x-amz-date", "20130524T000000Z"),
            ("Authorization", auth.as_str()),
            ("x-amz-content-sha256", EMPTY_SHA256),
        ];
        check("GET", "/", query, &headers, EXAMPLE_NOW)
    }

    #[test]
    fn aws_example_get_bucket_lifecycle() {
        let sig = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
        bucket_get("lifecycle", sig).unwrap();
        bucket_get("lifecycle=", sig).unwrap();
    }

    #[test]
    fn a_bare_parameter_signed_without_its_equals_sign_as_curl_before_8_5_does() {
        // curl 7.88.1's `--aws-sigv4` signs `?lifecycle` as `lifecycle` (not `lifecycle=`).
        let curl = "22b86eb6bb13f2dfdc9f543f5ecb4d6d303810388bb86c1926e83515d4e9ecbd";
        bucket_get("lifecycle", curl).unwrap();
        // That form is the bare parameter's only: `lifecycle=` is another request to it, and
        // the standard signature (of AWS's example) still holds for both.
        let e = bucket_get("lifecycle=", curl).unwrap_err();
        assert_eq!(e, AuthError::SignatureDoesNotMatch);
        let standard = "fea454ca298b7da1c68078a5d1bdbfbbe0d65c699e0f91ac7a200a0136783543";
        bucket_get("lifecycle", standard).unwrap();
        // Every other parameter still counts, sorted as usual.
        let mixed = "fb2ceaa0dcf7a3e465aee51434df13cd80ae30ca1327950f96330bbe16e14130";
        bucket_get("max-keys=2&uploads", mixed).unwrap();
        bucket_get("uploads&max-keys=2", mixed).unwrap();
        for other in [
            "max-keys=3&uploads",
            "max-keys=2&uploads=",
            "max-keys=2&uploads&x",
        ] {
            let e = bucket_get(other, mixed).unwrap_err();
            assert_eq!(e, AuthError::SignatureDoesNotMatch, "{other}");
        }
    }

    #[test]
    fn aws_example_list_objects() {
        let sig = "34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7";
        bucket_get("max-keys=2&prefix=J", sig).unwrap();
        // The order of the parameters does not matter; their values do.
        bucket_get("prefix=J&max-keys=2", sig).unwrap();
        assert_eq!(
            bucket_get("max-keys=3&prefix=J", sig).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        assert_eq!(
            bucket_get("max-keys=2&prefix=J&extra", sig).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
    }

    const PRESIGNED_QUERY: &str = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
        &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
        &X-Amz-Date=20130524T000000Z&X-Amz-Expires=86400&X-Amz-SignedHeaders=host\
        &X-Amz-Signature=aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404";

    fn presigned(query: &str, now: i64) -> Result<Rc<Verified>, AuthError> {
        check("GET", "/test.txt", query, &[("Host", HOST)], now)
    }

    #[test]
    fn aws_example_presigned_url() {
        let v = presigned(PRESIGNED_QUERY, EXAMPLE_NOW).unwrap();
        assert!(v.presigned);
        assert_eq!(v.payload, PayloadMode::Unsigned);
        assert_eq!(v.access_key_id, AKID);
        // Valid through its last second, refused after.
        presigned(PRESIGNED_QUERY, EXAMPLE_NOW + 86_400).unwrap();
        assert_eq!(
            presigned(PRESIGNED_QUERY, EXAMPLE_NOW + 86_401).unwrap_err(),
            AuthError::Expired
        );
        // Dated in the future: within the skew is fine, beyond is refused.
        presigned(PRESIGNED_QUERY, EXAMPLE_NOW - MAX_SKEW_SECS).unwrap();
        let early = presigned(PRESIGNED_QUERY, EXAMPLE_NOW - MAX_SKEW_SECS - 1).unwrap_err();
        assert_eq!((early.code(), early.status()), ("AccessDenied", 403));
    }

    #[test]
    fn a_remembered_presigned_url_is_checked_again_for_time_secret_host_and_headers() {
        memo::clear();
        let first = presigned(PRESIGNED_QUERY, EXAMPLE_NOW).unwrap();
        assert_eq!(memo::len(), 1);
        // Recalled: the same answer.
        assert!(presigned(PRESIGNED_QUERY, EXAMPLE_NOW + 10).unwrap() == first);
        assert_eq!(memo::len(), 1);
        // The clock still decides.
        assert_eq!(
            presigned(PRESIGNED_QUERY, EXAMPLE_NOW + 86_401).unwrap_err(),
            AuthError::Expired
        );
        let early = presigned(PRESIGNED_QUERY, EXAMPLE_NOW - MAX_SKEW_SECS - 1).unwrap_err();
        assert_eq!(early.code(), "AccessDenied");
        let req = |headers| Request {
            method: "GET",
            path: "/test.txt",
            query: PRESIGNED_QUERY,
            headers,
        };
        // A changed secret (a reloaded configuration) or a removed key.
        let rotated = |akid: &str| (akid == AKID).then(|| "another secret".to_owned());
        assert_eq!(
            verify(&req(&[("Host", HOST)]), EXAMPLE_NOW, "us-east-1", rotated).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        assert_eq!(
            verify(
                &req(&[("Host", HOST)]),
                EXAMPLE_NOW,
                "us-east-1",
                |_| None::<String>
            )
            .unwrap_err(),
            AuthError::InvalidAccessKeyId
        );
        // Another region, another Host, or an added Authorization header.
        assert!(verify(&req(&[("Host", HOST)]), EXAMPLE_NOW, "eu-west-1", secrets).is_err());
        assert_eq!(
            verify(
                &req(&[("Host", "evil.example")]),
                EXAMPLE_NOW,
                "us-east-1",
                secrets
            )
            .unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let with_auth = [("Host", HOST), ("Authorization", "AWS4-HMAC-SHA256 x")];
        assert!(matches!(
            verify(&req(&with_auth), EXAMPLE_NOW, "us-east-1", secrets).unwrap_err(),
            AuthError::InvalidArgument(_)
        ));
        let two_hosts = [("Host", HOST), ("Host", HOST)];
        assert!(verify(&req(&two_hosts), EXAMPLE_NOW, "us-east-1", secrets).is_err());
        // A tampered URL is a different entry: verified afresh, refused, not remembered.
        let flipped = PRESIGNED_QUERY.replace("d404", "d405");
        assert_eq!(
            presigned(&flipped, EXAMPLE_NOW).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        assert_eq!(memo::len(), 1);
        // Bounded: the oldest generation goes.
        memo::fill(3 * memo::MEMO_ENTRIES_MAX, &first);
        assert!(memo::len() <= 2 * memo::MEMO_ENTRIES_MAX);
    }

    #[test]
    fn presigned_tampering_and_bad_parameters() {
        // Each change of a signed parameter breaks the signature.
        let longer = PRESIGNED_QUERY.replace("Expires=86400", "Expires=86401");
        assert_eq!(
            presigned(&longer, EXAMPLE_NOW).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let extra = format!("{PRESIGNED_QUERY}&response-content-type=text%2Fhtml");
        assert_eq!(
            presigned(&extra, EXAMPLE_NOW).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let req = Request {
            method: "GET",
            path: "/other.txt",
            query: PRESIGNED_QUERY,
            headers: &[("Host", HOST)],
        };
        assert_eq!(
            verify(&req, EXAMPLE_NOW, "us-east-1", secrets).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        let put = Request {
            method: "PUT",
            ..req
        };
        assert_eq!(
            verify(&put, EXAMPLE_NOW, "us-east-1", secrets).unwrap_err(),
            AuthError::SignatureDoesNotMatch
        );
        for (from, to) in [
            ("Expires=86400", "Expires=604801"),
            ("Expires=86400", "Expires=0"),
            ("Expires=86400", "Expires=-1"),
            ("Expires=86400", "Expires=%2B5"),
            ("SignedHeaders=host", "SignedHeaders=x-amz-date"),
            ("Date=20130524T000000Z", "Date=20130524"),
            (
                "X-Amz-Algorithm=AWS4-HMAC-SHA256",
                "X-Amz-Algorithm=AWS4-HMAC-SHA1",
            ),
            ("&X-Amz-Signature=aeeed9bb", "&X-Amz-Signature=zz"),
            ("%2Fs3%2F", "%2Fec2%2F"),
            ("%2F20130524%2F", "%2F20130525%2F"),
        ] {
            let query = PRESIGNED_QUERY.replace(from, to);
            assert_ne!(query, PRESIGNED_QUERY);
            let e = presigned(&query, EXAMPLE_NOW).unwrap_err();
            assert_eq!(
                (e.code(), e.status()),
                ("AuthorizationQueryParametersError", 400),
                "{to}: {e}"
            );
        }
        let missing = PRESIGNED_QUERY.replace("&X-Amz-Expires=86400", "");
        assert_eq!(
            presigned(&missing, EXAMPLE_NOW).unwrap_err().code(),
            "AuthorizationQueryParametersError"
        );
        let twice = format!("{PRESIGNED_QUERY}&X-Amz-Expires=86400");
        assert_eq!(
            presigned(&twice, EXAMPLE_NOW).unwrap_err().code(),
            "AuthorizationQueryParametersError"
        );
        // Another region's credential scope is a parameters error, not a mismatch.
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: PRESIGNED_QUERY,
            headers: &[("Host", HOST)],
        };
        let e = verify(&req, EXAMPLE_NOW, "eu-west-1", secrets).unwrap_err();
        assert_eq!(e.code(), "AuthorizationQueryParametersError");
        // Header and query credentials together are refused.
        let both = [
            ("Host", HOST),
            ("Authorization", "AWS4-HMAC-SHA256 Credential=x"),
        ];
        let e = check("GET", "/test.txt", PRESIGNED_QUERY, &both, EXAMPLE_NOW).unwrap_err();
        assert_eq!(e.code(), "InvalidArgument");
        // A presigned URL cannot announce an aws-chunked body.
        let streaming = format!("{PRESIGNED_QUERY}&X-Amz-Content-Sha256={STREAMING_SIGNED}");
        assert_eq!(
            presigned(&streaming, EXAMPLE_NOW).unwrap_err().code(),
            "InvalidRequest"
        );
    }

    #[test]
    fn wrong_secret_and_unknown_key() {
        let headers = get_object_headers(GET_OBJECT_SIGNATURE);
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: "",
            headers: &borrow(&headers),
        };
        let wrong = |_: &str| Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEZ".to_owned());
        let e = verify(&req, EXAMPLE_NOW, "us-east-1", wrong).unwrap_err();
        assert_eq!((e.code(), e.status()), ("SignatureDoesNotMatch", 403));
        let e = verify(&req, EXAMPLE_NOW, "us-east-1", |_| None::<String>).unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidAccessKeyId", 403));
        // Wrong region: malformed header, as S3 says.
        let e = verify(&req, EXAMPLE_NOW, "eu-west-1", secrets).unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("AuthorizationHeaderMalformed", 400)
        );
        // Any change to what was signed.
        let tampered = [
            ("GET", "/test.txt", "x=1"),
            ("GET", "/test.tx", ""),
            ("HEAD", "/test.txt", ""),
            ("GET", "/test.txt/", ""),
            ("GET", "//test.txt", ""),
        ];
        for (method, path, query) in tampered {
            let e = check(method, path, query, &borrow(&headers), EXAMPLE_NOW).unwrap_err();
            assert_eq!(
                e,
                AuthError::SignatureDoesNotMatch,
                "{method} {path}?{query}"
            );
        }
        let mut changed = headers.clone();
        changed[1].1 = "bytes=0-10".to_owned();
        let e = check("GET", "/test.txt", "", &borrow(&changed), EXAMPLE_NOW).unwrap_err();
        assert_eq!(e, AuthError::SignatureDoesNotMatch);
        // A flipped signature digit.
        let flipped =
            get_object_headers("f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb42");
        let e = check("GET", "/test.txt", "", &borrow(&flipped), EXAMPLE_NOW).unwrap_err();
        assert_eq!(e, AuthError::SignatureDoesNotMatch);
    }

    #[test]
    fn clock_skew() {
        let headers = get_object_headers(GET_OBJECT_SIGNATURE);
        let at = |now| check("GET", "/test.txt", "", &borrow(&headers), now);
        at(EXAMPLE_NOW + MAX_SKEW_SECS).unwrap();
        at(EXAMPLE_NOW - MAX_SKEW_SECS).unwrap();
        for now in [
            EXAMPLE_NOW + MAX_SKEW_SECS + 1,
            EXAMPLE_NOW - MAX_SKEW_SECS - 1,
            i64::MAX,
            i64::MIN,
        ] {
            let e = at(now).unwrap_err();
            assert_eq!((e.code(), e.status()), ("RequestTimeTooSkewed", 403));
        }
    }

    #[test]
    fn host_must_be_signed() {
        let auth = authorization("x-amz-content-sha256;x-amz-date", GET_OBJECT_SIGNATURE);
        let headers = [
            ("Host", HOST),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("x-amz-date", "20130524T000000Z"),
            ("Authorization", auth.as_str()),
        ];
        let e = check("GET", "/test.txt", "", &headers, EXAMPLE_NOW).unwrap_err();
        assert_eq!(
            (e.code(), e.status()),
            ("AuthorizationHeaderMalformed", 400)
        );
        let query = PRESIGNED_QUERY.replace("SignedHeaders=host", "SignedHeaders=range");
        let e = presigned(&query, EXAMPLE_NOW).unwrap_err();
        assert_eq!(e.code(), "AuthorizationQueryParametersError");
    }

    #[test]
    fn content_sha256_is_required_and_checked() {
        let mut headers = get_object_headers(GET_OBJECT_SIGNATURE);
        headers.remove(2);
        let e = check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap_err();
        assert_eq!(e, AuthError::MissingContentSha256);
        assert_eq!(e.status(), 400);
        let mut headers = get_object_headers(GET_OBJECT_SIGNATURE);
        headers[2].1 = "not-a-hash".to_owned();
        let e = check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap_err();
        assert_eq!((e.code(), e.status()), ("InvalidArgument", 400));
        for (value, mode) in [
            (UNSIGNED_PAYLOAD, PayloadMode::Unsigned),
            (STREAMING_SIGNED, PayloadMode::StreamingSigned),
            (
                STREAMING_SIGNED_TRAILER,
                PayloadMode::StreamingSignedTrailer,
            ),
            (
                STREAMING_UNSIGNED_TRAILER,
                PayloadMode::StreamingUnsignedTrailer,
            ),
        ] {
            assert_eq!(parse_content_sha256(value), Ok(mode));
        }
        assert!(parse_content_sha256("STREAMING-AWS4-ECDSA-P256-SHA256-PAYLOAD").is_err());
        assert!(parse_content_sha256(&"g".repeat(64)).is_err());
        assert!(parse_content_sha256(&EMPTY_SHA256.to_uppercase()).is_ok());
    }

    #[test]
    fn unsigned_amz_headers_are_refused() {
        let mut headers = get_object_headers(GET_OBJECT_SIGNATURE);
        headers.push(("X-Amz-Meta-Injected", "1".to_owned()));
        let e = check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap_err();
        assert_eq!((e.code(), e.status()), ("AccessDenied", 403));
        // Other unsigned headers are fine (the signer chooses).
        let mut headers = get_object_headers(GET_OBJECT_SIGNATURE);
        headers.push(("User-Agent", "test".to_owned()));
        check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap();
    }

    #[test]
    fn sdk_header_spacing_variants() {
        for auth in [
            format!(
                "AWS4-HMAC-SHA256 Credential={AKID}/20130524/us-east-1/s3/aws4_request, \
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, \
                 Signature={GET_OBJECT_SIGNATURE}"
            ),
            format!(
                "  AWS4-HMAC-SHA256   Credential={AKID}/20130524/us-east-1/s3/aws4_request ,\
                 SignedHeaders=host;range;x-amz-content-sha256;x-amz-date,\tSignature={GET_OBJECT_SIGNATURE} "
            ),
        ] {
            let mut headers = get_object_headers(GET_OBJECT_SIGNATURE);
            headers[4].1 = auth;
            // Header names in any case, values with extra white space.
            headers[1] = ("RANGE", "  bytes=0-9 ".to_owned());
            check("GET", "/test.txt", "", &borrow(&headers), EXAMPLE_NOW).unwrap();
        }
    }

    #[test]
    fn sigv2_and_other_mechanisms_are_refused() {
        for auth in [
            "AWS AKIAIOSFODNN7EXAMPLE:frJIUN8DYpKDtOLCwo//yllqDzg=",
            "AWS4-ECDSA-P256-SHA256 Credential=x",
        ] {
            let headers = [("Host", HOST), ("Authorization", auth)];
            let e = check("GET", "/test.txt", "", &headers, EXAMPLE_NOW).unwrap_err();
            assert_eq!(e, AuthError::UnsupportedMechanism);
            assert_eq!((e.code(), e.status()), ("InvalidRequest", 400));
        }
        let v2 = "AWSAccessKeyId=AKIAIOSFODNN7EXAMPLE&Expires=1141889120&Signature=vjbyPxybd";
        let req = Request {
            method: "GET",
            path: "/test.txt",
            query: v2,
            headers: &[("Host", HOST)],
        };
        assert!(is_signed(&req));
        assert_eq!(
            verify(&req, EXAMPLE_NOW, "us-east-1", secrets).unwrap_err(),
            AuthError::UnsupportedMechanism
        );
    }

    #[test]
    fn is_signed_detects_credentials() {
        let anonymous = Request {
            method: "GET",
            path: "/b/k",
            query: "prefix=a",
            headers: &[("Host", HOST)],
        };
        assert!(!is_signed(&anonymous));
        assert_eq!(
            verify(&anonymous, EXAMPLE_NOW, "us-east-1", secrets)
                .unwrap_err()
                .code(),
            "AccessDenied"
        );
        let query = Request {
            query: PRESIGNED_QUERY,
            ..anonymous
        };
        assert!(is_signed(&query));
        let header = Request {
            headers: &[("authorization", "x")],
            ..anonymous
        };
        assert!(is_signed(&header));
    }

    #[test]
    fn canonical_uri_and_query_encoding() {
        let uri = |path: &str| {
            let mut s = String::new();
            canonical_uri(path, &mut s);
            s
        };
        assert_eq!(uri("/test$file.text"), "/test%24file.text");
        assert_eq!(uri("/a%2Fb/c"), "/a%2Fb/c");
        assert_eq!(uri("/a b/ü"), "/a%20b/%C3%BC");
        assert_eq!(uri("/a%20b/%c3%bc"), "/a%20b/%C3%BC");
        assert_eq!(uri("/./../a//b/"), "/./../a//b/");
        assert_eq!(uri("/a+b~c"), "/a%2Bb~c");
        assert_eq!(uri(""), "/");
        assert_eq!(uri("/%zz%"), "/%25zz%25");
        let pairs: Vec<_> = query_pairs("a=%2F+x&b&&=c&d=e=f").collect();
        assert_eq!(
            pairs,
            vec![
                (b"a".to_vec(), b"/ x".to_vec()),
                (b"b".to_vec(), b"".to_vec()),
                (b"".to_vec(), b"c".to_vec()),
                (b"d".to_vec(), b"e=f".to_vec()),
            ]
        );
        let mut v = String::new();
        trim_all("  a   b \t c  ", &mut v);
        assert_eq!(v, "a b \t c");
    }

    #[test]
    fn dates() {
        assert_eq!(parse_amz_date("20130524T000000Z"), Some(EXAMPLE_NOW));
        assert_eq!(parse_amz_date("19700101T000000Z"), Some(0));
        assert_eq!(parse_amz_date("20240229T235959Z"), Some(1_709_251_199));
        for bad in [
            "20230229T000000Z",
            "20130524T240000Z",
            "20131324T000000Z",
            "20130524 000000Z",
            "2013052T000000ZZ",
            "+0130524T000000Z",
            "20130524T000000",
            "",
            "２０１３0524T00000Z",
        ] {
            assert_eq!(parse_amz_date(bad), None, "{bad}");
        }
        assert_eq!(
            format_amz_date(EXAMPLE_NOW).as_deref(),
            Some("20130524T000000Z")
        );
        assert_eq!(
            format_amz_date(1_709_251_199).as_deref(),
            Some("20240229T235959Z")
        );
        assert_eq!(format_amz_date(i64::MAX), None);
        // A Date header alone (signed) is the request time.
        let auth = authorization("date;host;x-amz-content-sha256", &"0".repeat(64));
        let headers = [
            ("Host", HOST),
            ("Date", "Fri, 24 May 2013 00:00:00 GMT"),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("Authorization", auth.as_str()),
        ];
        let e = check("GET", "/test.txt", "", &headers, EXAMPLE_NOW).unwrap_err();
        assert_eq!(e, AuthError::SignatureDoesNotMatch);
        let e = check("GET", "/test.txt", "", &headers, EXAMPLE_NOW + 3600).unwrap_err();
        assert_eq!(e, AuthError::RequestTimeTooSkewed);
        let no_date = [
            ("Host", HOST),
            ("x-amz-content-sha256", EMPTY_SHA256),
            ("Authorization", auth.as_str()),
        ];
        let e = check("GET", "/test.txt", "", &no_date, EXAMPLE_NOW).unwrap_err();
        assert_eq!((e.code(), e.status()), ("AccessDenied", 403));
    }

    /// A tiny deterministic generator for the garbage tests (no external crate).
    struct XorShift(u64);
    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    #[test]
    fn garbage_never_panics() {
        let fixed = [
            "",
            "AWS4-HMAC-SHA256",
            "AWS4-HMAC-SHA256 ",
            "AWS4-HMAC-SHA256 Credential",
            "AWS4-HMAC-SHA256 Credential=",
            "AWS4-HMAC-SHA256 Credential=/////, SignedHeaders=;;, Signature=",
            "AWS4-HMAC-SHA256 Credential=a/b/c/d/e, SignedHeaders=host, Signature=é",
            "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, \
             SignedHeaders=host, Signature=ééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééééé",
            "AWS4-HMAC-SHA256 Credential=x/20130524/us-east-1/s3/aws4_request,Credential=y",
            "AWS4-HMAC-SHA256 Signature=00,SignedHeaders=HOST",
            "\u{0}\u{ffff}",
        ];
        let mut rng = XorShift(0x5eed_1234_abcd_0042);
        let alphabet: Vec<char> =
            "AWS4-HMAC-SHA256 Credential=/,;SignedHeaders=Signature=host0af%é\t"
                .chars()
                .collect();
        let mut inputs: Vec<String> = fixed.iter().map(|s| (*s).to_owned()).collect();
        for _ in 0..2000 {
            let len = (rng.next() % 120) as usize;
            inputs.push(
                (0..len)
                    .map(|_| alphabet[(rng.next() % alphabet.len() as u64) as usize])
                    .collect(),
            );
        }
        for input in &inputs {
            let headers = [
                ("Host", HOST),
                ("Authorization", input.as_str()),
                ("x-amz-date", input.as_str()),
                ("x-amz-content-sha256", input.as_str()),
                ("Date", input.as_str()),
            ];
            assert!(check(input, input, input, &headers, EXAMPLE_NOW).is_err());
            let headers = [
                ("Host", HOST),
                ("Authorization", input.as_str()),
                ("x-amz-date", "20130524T000000Z"),
                ("x-amz-content-sha256", EMPTY_SHA256),
            ];
            assert!(check("GET", "/", "", &headers, EXAMPLE_NOW).is_err());
            let query = format!("X-Amz-Algorithm=AWS4-HMAC-SHA256&{input}");
            assert!(check("GET", input, &query, &[("Host", HOST)], EXAMPLE_NOW).is_err());
            let query = PRESIGNED_QUERY.replace("86400", input);
            let _ = check("GET", "/test.txt", &query, &[("Host", HOST)], EXAMPLE_NOW);
        }
    }

    #[test]
    fn parse_query_matches_query_pairs() {
        let alphabet = b"ab=&%2F+x";
        let mut rng = XorShift(0x0123_4567_89ab_cdef);
        for _ in 0..5000 {
            let len = (rng.next() % 24) as usize;
            let query: String = (0..len)
                .map(|_| char::from(alphabet[(rng.next() % alphabet.len() as u64) as usize]))
                .collect();
            let (text, params) = parse_query(&query);
            let parsed: Vec<(Vec<u8>, Vec<u8>)> = params
                .iter()
                .map(|&(n, v)| (text.bytes(n).to_vec(), text.bytes(v).to_vec()))
                .collect();
            let expected: Vec<(Vec<u8>, Vec<u8>)> = query
                .split('&')
                .filter(|p| !p.is_empty())
                .map(|pair| {
                    let (n, v) = pair.split_once('=').unwrap_or((pair, ""));
                    let decode = |s: &str| -> Vec<u8> {
                        percent_encoding::percent_decode(s.replace('+', " ").as_bytes()).collect()
                    };
                    (decode(n), decode(v))
                })
                .collect();
            assert_eq!(parsed, expected, "{query}");
            // Sorting by the encoded forms without encoding them.
            for (a, b) in expected.iter().zip(expected.iter().skip(1)) {
                let encode = |bytes: &[u8]| {
                    let mut s = String::new();
                    uri_encode(bytes, true, &mut s);
                    s
                };
                assert_eq!(
                    encoded_cmp(&a.0, &b.0),
                    encode(&a.0).cmp(&encode(&b.0)),
                    "{query}"
                );
            }
        }
    }

    /// A presigned GET as SDKs send them for small objects: signed by hand here (not with
    /// the module's canonical-request code), then verified over and over.
    /// `cargo test --release --lib s3::sigv4::tests::bench_presigned_verify -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench_presigned_verify() {
        let path = "/bucket/photos/2024/img%20042.jpg";
        let unsigned = "X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
            &X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
            &x-id=GetObject&response-content-type=image%2Fjpeg";
        let canonical = "GET\n/bucket/photos/2024/img%20042.jpg\n\
            X-Amz-Algorithm=AWS4-HMAC-SHA256\
            &X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20130524%2Fus-east-1%2Fs3%2Faws4_request\
            &X-Amz-Date=20130524T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host\
            &response-content-type=image%2Fjpeg&x-id=GetObject\n\
            host:localhost:9000\n\nhost\nUNSIGNED-PAYLOAD";
        let string_to_sign = format!(
            "AWS4-HMAC-SHA256\n20130524T000000Z\n20130524/us-east-1/s3/aws4_request\n{}",
            sha256_hex(canonical.as_bytes())
        );
        let mut key = format!("AWS4{SECRET}").into_bytes();
        for part in ["20130524", "us-east-1", "s3", "aws4_request"] {
            let mut mac = hmac(&key);
            mac.update(part.as_bytes());
            key = mac.finalize().into_bytes().to_vec();
        }
        let mut mac = hmac(&key);
        mac.update(string_to_sign.as_bytes());
        let signature = hex(&mac.finalize().into_bytes());
        let query = format!("{unsigned}&X-Amz-Signature={signature}");
        let headers = [
            ("Host", "localhost:9000"),
            ("User-Agent", "aws-sdk-rust/1.0 os/linux lang/rust/1.80"),
            ("Accept", "*/*"),
            ("Accept-Encoding", "gzip"),
        ];
        let req = Request {
            method: "GET",
            path,
            query: &query,
            headers: &headers,
        };
        let v = verify(&req, EXAMPLE_NOW + 60, "us-east-1", secrets).unwrap();
        assert_eq!(v.seed_signature, signature);
        assert_eq!(v.scope, "20130524/us-east-1/s3/aws4_request");
        const N: u32 = 200_000;
        for (what, remembered) in [("afresh", false), ("remembered", true)] {
            let run = |req: &Request<'_>| {
                if remembered {
                    verify(req, EXAMPLE_NOW + 60, "us-east-1", secrets).unwrap()
                } else {
                    Rc::new(
                        verify_afresh(req, EXAMPLE_NOW + 60, "us-east-1", secrets)
                            .unwrap()
                            .0,
                    )
                }
            };
            for _ in 0..N / 10 {
                std::hint::black_box(run(&req));
            }
            let start = std::time::Instant::now();
            for _ in 0..N {
                std::hint::black_box(run(std::hint::black_box(&req)));
            }
            let elapsed = start.elapsed();
            println!(
                "presigned GET verify, {what}: {:.0} ns/verify ({N} in {elapsed:?})",
                elapsed.as_nanos() as f64 / f64::from(N)
            );
        }
    }
}
