//! AWS Signature Version 2 verification of S3 requests, sans-IO: the `Authorization: AWS
//! AKID:signature` header form and presigned URLs (`?AWSAccessKeyId=&Expires=&Signature=`), as
//! aws-cli v1 (`aws s3 presign`), boto2, s3cmd and older SDKs still produce them.
//!
//! Owns: telling a SigV2 request apart ([`is_v2`]), S3's SigV2 string to sign (S3 "Signing and
//! authenticating REST requests"), the clock-skew and expiry rules, and the constant-time
//! HMAC-SHA1 comparison. It takes the same [`Request`] as [`super::sigv4`] and answers with its
//! [`Verified`] and [`AuthError`], so the caller handles both versions alike.
//!
//! The string to sign is
//! `Method\nContent-MD5\nContent-Type\nDate\nCanonicalizedAmzHeaders CanonicalizedResource`:
//! - `Date`: the `Date` header, or empty when there is an `x-amz-date` header (which then
//!   reaches the string through the amz headers, as boto, the Java SDK v1 and Ceph RGW sign
//!   it); for a presigned URL, the `Expires` value.
//! - CanonicalizedAmzHeaders: every `x-amz-*` header, lower-cased name, trimmed values (repeated
//!   names joined with `,`), sorted by name, each `name:value\n`. For a presigned URL the
//!   `x-amz-*` query parameters count too: botocore and the Java SDK v1 sign the request's
//!   `x-amz-*` headers and then move them into the URL's query.
//! - CanonicalizedResource: `/bucket` when the bucket is in the `Host` (virtual-hosted style,
//!   [`verify_with_host_bucket`]), then the path exactly as sent (still percent-encoded), then
//!   the sub-resources of [`SUB_RESOURCES`] present in the query, sorted by name, as
//!   `?name&name=value` with decoded values.
//!
//! What the caller still does with a [`Verified`]: nothing about the body — SigV2 does not sign
//! it ([`PayloadMode::Unsigned`]; a `Content-MD5`, when sent, is signed and is for the caller
//! to check against the body). The signing fields (`signing_key`, `seed_signature`,
//! `amz_date`, `scope`) are zero/empty: SigV2 has no chunk signatures.
//!
//! Not verified here: `x-amz-security-token` (no temporary credentials; when present it is
//! signed like any amz header), POST policy uploads.

use super::sigv4::{AuthError, PayloadMode, Request, Verified, MAX_SKEW_SECS};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha1::Sha1;

type HmacSha1 = Hmac<Sha1>;

/// The query parameters that are part of the resource signed (S3's list). Any other query
/// parameter (`prefix`, `max-keys`, ...) is not signed in SigV2.
pub const SUB_RESOURCES: [&str; 25] = [
    "acl",
    "cors",
    "delete",
    "lifecycle",
    "location",
    "logging",
    "notification",
    "partNumber",
    "policy",
    "requestPayment",
    "response-cache-control",
    "response-content-disposition",
    "response-content-encoding",
    "response-content-language",
    "response-content-type",
    "response-expires",
    "restore",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// The length of an HMAC-SHA1 digest, the decoded `Signature`.
const SIGNATURE_LEN: usize = 20;

/// Whether a request is signed with SigV2 and should go to [`verify`] rather than
/// [`super::sigv4::verify`]: an `Authorization` header whose scheme is `AWS` (`AWS AKID:sig`;
/// a malformed rest is then [`verify`]'s to refuse with S3's message), or, without an
/// `Authorization` header and without SigV4's `X-Amz-Algorithm`, an `AWSAccessKeyId` or
/// `Signature` query parameter (a presigned URL; the missing ones are [`verify`]'s to report).
pub fn is_v2(req: &Request<'_>) -> bool {
    if let Some(value) = header_values(req, "authorization").next() {
        return scheme(value).0 == "AWS";
    }
    let mut v2 = false;
    for param in query_params(req.query) {
        match &param.name[..] {
            b"X-Amz-Algorithm" => return false,
            b"AWSAccessKeyId" | b"Signature" => v2 = true,
            _ => {}
        }
    }
    v2
}

/// Verifies a path-style request's SigV2 signature (the bucket, if any, is the path's first
/// segment): see [`verify_with_host_bucket`].
pub fn verify(
    req: &Request<'_>,
    now: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Verified, AuthError> {
    verify_with_host_bucket(req, None, now, secret_of)
}

/// Verifies a request's SigV2 signature.
///
/// `host_bucket` is the bucket named by the `Host` header of a virtual-hosted-style request
/// (`None` for path style): SigV2 signs `/bucket` + path either way. `now` is the current unix
/// time in seconds, `secret_of` maps an access key id to its secret.
///
/// On success the request was signed by that key's owner: within [`MAX_SKEW_SECS`] of `now`
/// (header form; `Date` or `x-amz-date`), or before its `Expires` (presigned; no upper bound on
/// the lifetime, as S3 allows for SigV2). Refusals: `InvalidAccessKeyId` (unknown key),
/// `SignatureDoesNotMatch`, `RequestTimeTooSkewed`, `AccessDenied` (expired, no date, missing
/// query parameters, no credentials), `InvalidArgument` (malformed header, repeated fields,
/// two mechanisms at once).
pub fn verify_with_host_bucket(
    req: &Request<'_>,
    host_bucket: Option<&str>,
    now: i64,
    secret_of: impl Fn(&str) -> Option<String>,
) -> Result<Verified, AuthError> {
    let mut authorizations = header_values(req, "authorization");
    let authorization = authorizations.next();
    if authorizations.next().is_some() {
        return Err(AuthError::InvalidArgument(
            "only one Authorization header is allowed".into(),
        ));
    }
    let query = query_params(req.query);
    let query_credentials = query.iter().any(|p| {
        matches!(
            &p.name[..],
            b"AWSAccessKeyId" | b"Signature" | b"X-Amz-Algorithm"
        )
    });
    let (presigned, parsed) = match (authorization, query_credentials) {
        (Some(_), true) => {
            return Err(AuthError::InvalidArgument(
                "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
                 Signature query string parameter or the Authorization header should be specified"
                    .into(),
            ))
        }
        (Some(value), false) => (false, parse_header_auth(req, value, now)?),
        (None, true) => (true, parse_presigned(&query, now)?),
        (None, false) => {
            return Err(AuthError::AccessDenied(
                "The request carries no credentials.",
            ))
        }
    };
    let secret = secret_of(&parsed.access_key_id).ok_or(AuthError::InvalidAccessKeyId)?;
    let string_to_sign = string_to_sign(req, host_bucket, &query, presigned, &parsed.date)?;
    let mut mac = match HmacSha1::new_from_slice(secret.as_bytes()) {
        Ok(mac) => mac,
        // HMAC takes a key of any length; this arm is never taken.
        Err(_) => return Err(AuthError::SignatureDoesNotMatch),
    };
    mac.update(&string_to_sign);
    // verify_slice compares in constant time (and refuses any other length).
    mac.verify_slice(&parsed.signature)
        .map_err(|_| AuthError::SignatureDoesNotMatch)?;
    Ok(Verified {
        access_key_id: parsed.access_key_id,
        payload: PayloadMode::Unsigned,
        presigned,
        signing_key: [0; 32],
        seed_signature: String::new(),
        amz_date: String::new(),
        scope: String::new(),
    })
}

/// What both forms yield before the key lookup.
struct Parsed {
    access_key_id: String,
    /// The decoded signature (any length; a wrong one fails the comparison).
    signature: Vec<u8>,
    /// The string to sign's date line: the `Date` header, empty, or `Expires`.
    date: String,
}

/// Parses `Authorization: AWS AKID:signature` and checks the request time.
fn parse_header_auth(req: &Request<'_>, value: &str, now: i64) -> Result<Parsed, AuthError> {
    let (scheme, rest) = scheme(value);
    if scheme != "AWS" {
        return Err(AuthError::InvalidArgument(
            "Unsupported Authorization Type".into(),
        ));
    }
    let invalid = || {
        AuthError::InvalidArgument(
            "AWS authorization header is invalid.  Expected AwsAccessKeyId:signature".into(),
        )
    };
    let (access_key_id, signature) = rest.trim().rsplit_once(':').ok_or_else(invalid)?;
    if access_key_id.is_empty()
        || signature.is_empty()
        || access_key_id.contains(char::is_whitespace)
    {
        return Err(invalid());
    }
    // A signature that does not decode cannot match; S3 answers SignatureDoesNotMatch.
    let signature = decode_signature(signature);

    // The request time: x-amz-date (the date line is then empty), else Date.
    let no_date =
        || AuthError::AccessDenied("AWS authentication requires a valid Date or x-amz-date header");
    let amz_date = single(req, "x-amz-date").map_err(|()| no_date())?;
    let (time, date) = match amz_date {
        Some(v) => (v, String::new()),
        None => {
            let v = single(req, "date")
                .map_err(|()| no_date())?
                .ok_or_else(no_date)?;
            (v, v.trim().to_owned())
        }
    };
    let time = parse_http_time(time.trim()).ok_or_else(no_date)?;
    if now.abs_diff(time) > MAX_SKEW_SECS.unsigned_abs() {
        return Err(AuthError::RequestTimeTooSkewed);
    }
    Ok(Parsed {
        access_key_id: access_key_id.to_owned(),
        signature,
        date,
    })
}

/// Parses the presigned query parameters and checks the expiry.
fn parse_presigned(query: &[Param], now: i64) -> Result<Parsed, AuthError> {
    if query.iter().any(|p| p.name == b"X-Amz-Algorithm") {
        return Err(AuthError::InvalidArgument(
            "Only one auth mechanism allowed; only the X-Amz-Algorithm query parameter, \
             Signature query string parameter or the Authorization header should be specified"
                .into(),
        ));
    }
    let param = |name: &str| -> Result<Option<&str>, AuthError> {
        let mut found = None;
        for p in query.iter().filter(|p| p.name == name.as_bytes()) {
            if found.is_some() {
                return Err(AuthError::InvalidArgument(format!(
                    "the query parameter {name} is repeated"
                )));
            }
            found = Some(std::str::from_utf8(&p.value).map_err(|_| {
                AuthError::InvalidArgument(format!("the query parameter {name} is not UTF-8"))
            })?);
        }
        Ok(found)
    };
    let missing = || {
        AuthError::AccessDenied(
            "Query-string authentication requires the Signature, Expires and AWSAccessKeyId \
             parameters",
        )
    };
    let access_key_id = param("AWSAccessKeyId")?
        .filter(|v| !v.is_empty())
        .ok_or_else(missing)?;
    let signature = param("Signature")?.ok_or_else(missing)?;
    let expires = param("Expires")?.ok_or_else(missing)?;
    let expires_at = parse_digits(expires).ok_or(AuthError::AccessDenied(
        "Invalid date (should be seconds since epoch)",
    ))?;
    if now > expires_at {
        return Err(AuthError::Expired);
    }
    // A `+` sent unencoded reads as a space; no base64 signature holds a space.
    let signature = decode_signature(&signature.replace(' ', "+"));
    Ok(Parsed {
        access_key_id: access_key_id.to_owned(),
        signature,
        date: expires.to_owned(),
    })
}

/// S3's SigV2 string to sign of a request (bytes: header values and the path are signed as
/// sent, whatever their encoding).
fn string_to_sign(
    req: &Request<'_>,
    host_bucket: Option<&str>,
    query: &[Param],
    presigned: bool,
    date: &str,
) -> Result<Vec<u8>, AuthError> {
    let mut out = Vec::with_capacity(128 + req.path.len() + req.query.len());
    out.extend_from_slice(req.method.as_bytes());
    out.push(b'\n');
    for name in ["content-md5", "content-type"] {
        let value = single(req, name)
            .map_err(|()| AuthError::InvalidArgument(format!("the {name} header is repeated")))?;
        out.extend_from_slice(value.unwrap_or("").trim().as_bytes());
        out.push(b'\n');
    }
    out.extend_from_slice(date.as_bytes());
    out.push(b'\n');

    // CanonicalizedAmzHeaders.
    let mut amz: Vec<(Vec<u8>, &[u8])> = req
        .headers
        .iter()
        .map(|&(name, value)| (name.as_bytes().to_ascii_lowercase(), value.as_bytes()))
        .filter(|(name, _)| name.starts_with(b"x-amz-"))
        .collect();
    if presigned {
        amz.extend(
            query
                .iter()
                .map(|p| (p.name.to_ascii_lowercase(), &p.value[..]))
                .filter(|(name, _)| name.starts_with(b"x-amz-")),
        );
    }
    // Stable: repeated names keep their order.
    amz.sort_by(|a, b| a.0.cmp(&b.0));
    for (i, (name, value)) in amz.iter().enumerate() {
        let first = i == 0 || amz[i - 1].0 != *name;
        if first {
            if i > 0 {
                out.push(b'\n');
            }
            out.extend_from_slice(name);
            out.push(b':');
        } else {
            out.push(b',');
        }
        out.extend_from_slice(value.trim_ascii());
    }
    if !amz.is_empty() {
        out.push(b'\n');
    }

    // CanonicalizedResource.
    if let Some(bucket) = host_bucket {
        out.push(b'/');
        out.extend_from_slice(bucket.as_bytes());
    }
    out.extend_from_slice(req.path.as_bytes());
    let mut sub: Vec<&Param> = query
        .iter()
        .filter(|p| SUB_RESOURCES.iter().any(|s| s.as_bytes() == &p.name[..]))
        .collect();
    sub.sort_by(|a, b| a.name.cmp(&b.name));
    for (i, p) in sub.iter().enumerate() {
        out.push(if i == 0 { b'?' } else { b'&' });
        out.extend_from_slice(&p.name);
        if p.has_value {
            out.push(b'=');
            out.extend_from_slice(&p.value);
        }
    }
    Ok(out)
}

/// A query parameter, percent-decoded (`+` is a space, as S3 reads query strings).
struct Param {
    name: Vec<u8>,
    value: Vec<u8>,
    /// Written `name=value` (possibly empty) rather than a bare `name`.
    has_value: bool,
}

fn query_params(query: &str) -> Vec<Param> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            Param {
                name: query_decode(name),
                value: query_decode(value),
                has_value: pair.contains('='),
            }
        })
        .collect()
}

fn query_decode(s: &str) -> Vec<u8> {
    let plus_as_space: Vec<u8> = s
        .bytes()
        .map(|b| if b == b'+' { b' ' } else { b })
        .collect();
    percent_encoding::percent_decode(&plus_as_space).collect()
}

/// The values of every header called `name` (case-insensitive), in order.
fn header_values<'a>(req: &Request<'a>, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
    req.headers
        .iter()
        .filter(move |(n, _)| n.eq_ignore_ascii_case(name))
        .map(|&(_, v)| v)
}

/// The value of a header that may appear at most once: `Err(())` when repeated.
fn single<'a>(req: &Request<'a>, name: &'a str) -> Result<Option<&'a str>, ()> {
    let mut values = header_values(req, name);
    let first = values.next();
    match values.next() {
        Some(_) => Err(()),
        None => Ok(first),
    }
}

/// An `Authorization` value's scheme and the rest (`("AWS", "AKID:sig")`).
fn scheme(value: &str) -> (&str, &str) {
    let value = value.trim_matches(|c| c == ' ' || c == '\t');
    value.split_once([' ', '\t']).unwrap_or((value, ""))
}

/// Standard base64, padded or not; empty (never matching) when it does not decode.
fn decode_signature(s: &str) -> Vec<u8> {
    use base64::engine::{general_purpose, DecodePaddingMode, GeneralPurpose};
    const ENGINE: GeneralPurpose = GeneralPurpose::new(
        &base64::alphabet::STANDARD,
        general_purpose::PAD.with_decode_padding_mode(DecodePaddingMode::Indifferent),
    );
    match ENGINE.decode(s.trim()) {
        Ok(bytes) if bytes.len() == SIGNATURE_LEN => bytes,
        _ => Vec::new(),
    }
}

/// A non-negative decimal number of at most 18 digits (no sign, no spaces).
fn parse_digits(s: &str) -> Option<i64> {
    if s.is_empty() || s.len() > 18 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// A `Date` or `x-amz-date` value as unix seconds: RFC 1123/2822 (`Tue, 27 Mar 2007 19:36:42
/// +0000` or `... GMT`), RFC 850 or asctime (the other HTTP dates), or ISO 8601 basic
/// (`20070327T193642Z`, which some clients put in `x-amz-date`).
fn parse_http_time(s: &str) -> Option<i64> {
    if let Ok(t) = chrono::DateTime::parse_from_rfc2822(s) {
        return Some(t.timestamp());
    }
    if let Ok(t) = httpdate::parse_http_date(s) {
        return t
            .duration_since(std::time::UNIX_EPOCH)
            .ok()
            .and_then(|d| i64::try_from(d.as_secs()).ok());
    }
    chrono::NaiveDateTime::parse_from_str(s, "%Y%m%dT%H%M%SZ")
        .ok()
        .map(|t| t.and_utc().timestamp())
}
