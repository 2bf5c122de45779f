//! What every S3 operation is given: the request after addressing and authentication
//! (`S3Request`, with the access check of its caller), and how answers are written (XML,
//! S3's time format).

use super::error::S3Error;
use super::policy::{self, Action, Caller};
use super::sigv4;
use crate::config::{Config, S3Key};
use crate::http::{Request, Response};

/// An S3 request after addressing and authentication.
pub struct S3Request {
    pub cfg: std::rc::Rc<Config>,
    /// `x-amz-request-id` of the answer.
    pub id: String,
    pub method: String,
    /// Empty for the service (ListBuckets).
    pub bucket: String,
    /// Empty for bucket operations.
    pub key: String,
    /// The decoded query parameters, in order, without those of authentication (see
    /// [`operation_query`]).
    pub query: Vec<(String, String)>,
    /// The credential that signed the request, as an index into `cfg.s3_keys` (None:
    /// anonymous).
    pub key_index: Option<usize>,
    /// What the signature says about the body (None: anonymous, body unsigned).
    pub signed: Option<std::rc::Rc<sigv4::Verified>>,
}

impl S3Request {
    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.query.iter().any(|(k, _)| k == name)
    }

    /// The credential that signed the request (None: anonymous).
    pub fn key_used(&self) -> Option<&S3Key> {
        self.key_index.map(|i| &self.cfg.s3_keys[i])
    }

    pub fn caller(&self) -> Caller<'_> {
        match self.key_used() {
            Some(k) => Caller::Key(k),
            None => Caller::Anonymous,
        }
    }

    /// Refuses unless the caller may do `action` on this request's bucket (`public_read`: the
    /// bucket's flag, when it exists).
    pub fn require(&self, action: Action, public_read: bool) -> Result<(), S3Error> {
        if policy::allowed(self.caller(), &self.bucket, action, public_read) {
            return Ok(());
        }
        Err(match (self.key_used(), action) {
            (None, _) => S3Error::access_denied("Anonymous access is not allowed here."),
            (Some(k), Action::Write) if k.read_only => {
                S3Error::access_denied("This access key is read-only.")
            }
            _ => S3Error::access_denied("This access key may not use this bucket."),
        }
        .on(format!("/{}", self.bucket)))
    }

    /// The resource named in errors: `/bucket/key`.
    pub fn resource(&self) -> String {
        if self.key.is_empty() {
            format!("/{}", self.bucket)
        } else {
            format!("/{}/{}", self.bucket, self.key)
        }
    }
}

/// The query parameters an operation reads: all but those of authentication (the presigned
/// URL's `X-Amz-*` and SigV2's `AWSAccessKeyId`, `Signature`, `Expires`), which `sigv4` and
/// `sigv2` parse themselves. A presigned `PUT /bucket` is then a CreateBucket like any other.
pub fn operation_query(raw: &str) -> Vec<(String, String)> {
    crate::http::query::parse_urlencoded_except(raw.as_bytes(), |name| {
        name.get(..6)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"x-amz-"))
            || matches!(name, b"AWSAccessKeyId" | b"Signature" | b"Expires")
    })
}

/// S3's sub-resources: query keys that select another operation than the plain one on a
/// bucket or an object (an ACL, tags, versions...). A request naming one this server does
/// not implement is refused (`NotImplemented`), never taken for the plain operation: a PUT
/// of `?tagging` must not overwrite the object with the tags' XML.
pub const SUB_RESOURCES: &[&str] = &[
    "accelerate",
    "acl",
    "analytics",
    "attributes",
    "cors",
    "delete",
    "encryption",
    "intelligent-tiering",
    "inventory",
    "legal-hold",
    "lifecycle",
    "location",
    "logging",
    "metadataTable",
    "metrics",
    "notification",
    "object-lock",
    "ownershipControls",
    "partNumber",
    "policy",
    "policyStatus",
    "publicAccessBlock",
    "renameObject",
    "replication",
    "requestPayment",
    "restore",
    "retention",
    "select",
    "select-type",
    "session",
    "tagging",
    "torrent",
    "uploadId",
    "uploads",
    "versionId",
    "versioning",
    "versions",
    "website",
];

/// Query keys that are not operations: SDKs' operation names (`x-id`), GET's answer
/// overrides (`response-*`) and ListObjects' parameters.
fn is_plain_parameter(name: &str) -> bool {
    name == "x-id" || name.starts_with("response-") || !SUB_RESOURCES.contains(&name)
}

/// Refuses a request whose query names an operation this server does not serve: a
/// sub-resource outside `served`, or, for a write (anything but GET/HEAD), any key outside
/// `served` but `x-id` (an unknown key might select an operation newer than this list).
/// `versionId` other than `null` is an invalid version: there is no versioning here.
pub fn check_operation(r: &S3Request, served: &[&str]) -> Result<(), super::error::S3Error> {
    use super::error::S3Error;
    if r.param("versionId").is_some_and(|v| v != "null") {
        return Err(S3Error::invalid_argument("Invalid version id specified"));
    }
    let read = matches!(r.method.as_str(), "GET" | "HEAD");
    for (name, _) in &r.query {
        let name = name.as_str();
        if served.contains(&name) || name == "versionId" {
            continue;
        }
        let plain = if read {
            is_plain_parameter(name)
        } else {
            name == "x-id"
        };
        if !plain {
            return Err(S3Error::not_implemented(&format!(
                "The ?{name} sub-resource"
            )));
        }
    }
    Ok(())
}

/// The current time as S3 writes it in XML (`2026-12-03T10:15:00.000Z`).
pub fn iso_time(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .format("%Y-%m-%dT%H:%M:%S%.3fZ")
        .to_string()
}

/// An XML answer.
pub fn xml_response(status: u16, body: String) -> Response {
    let mut r = Response::new(status);
    r.set("Content-Type", "application/xml");
    r.body = crate::http::response::Body::Bytes(
        format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{body}").into(),
    );
    r
}

/// The S3 namespace attribute of every answer document.
pub const XMLNS: &str = "http://s3.amazonaws.com/doc/2006-03-01/";

/// The request's header fields whose values are UTF-8 (the others left out), as the
/// signature, checksum and payload checks read them.
pub fn utf8_headers<'r>(req: &'r Request<'_>) -> Vec<(&'r str, &'r str)> {
    req.head
        .headers()
        .filter_map(|(n, v)| std::str::from_utf8(v).ok().map(|v| (n, v)))
        .collect()
}
