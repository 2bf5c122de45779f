//! S3 errors: every failure of an S3 request is one `S3Error` (status, S3's error code, a
//! message), written as S3's XML error document in one place (`into_response`).

use super::xml::escape;
use crate::http::conn::BodyError;
use crate::http::Response;
use crate::store::buckets::BucketError;
use crate::store::meta::MetaError;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Error {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
    /// The bucket or key the error is about (`<Resource>`), if any.
    pub resource: String,
}

impl S3Error {
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> S3Error {
        S3Error {
            status,
            code,
            message: message.into(),
            resource: String::new(),
        }
    }

    /// While the server is shutting down, a body that ended early was cut by the shutdown
    /// (`server::drain`), not by the client: `503 ServiceUnavailable`, which S3 clients retry.
    pub fn cut_by_shutdown(self, shutting_down: bool) -> S3Error {
        if shutting_down && self.code == "IncompleteBody" {
            return S3Error::new(
                503,
                "ServiceUnavailable",
                "the server is shutting down: send the request again",
            );
        }
        self
    }

    pub fn on(mut self, resource: impl Into<String>) -> S3Error {
        self.resource = resource.into();
        self
    }

    pub fn no_such_key() -> S3Error {
        S3Error::new(404, "NoSuchKey", "The specified key does not exist.")
    }

    pub fn no_such_bucket() -> S3Error {
        S3Error::new(404, "NoSuchBucket", "The specified bucket does not exist.")
    }

    pub fn no_such_upload() -> S3Error {
        S3Error::new(
            404,
            "NoSuchUpload",
            "The specified multipart upload does not exist.",
        )
    }

    pub fn access_denied(message: impl Into<String>) -> S3Error {
        S3Error::new(403, "AccessDenied", message)
    }

    pub fn invalid_argument(message: impl Into<String>) -> S3Error {
        S3Error::new(400, "InvalidArgument", message)
    }

    pub fn invalid_request(message: impl Into<String>) -> S3Error {
        S3Error::new(400, "InvalidRequest", message)
    }

    pub fn malformed_xml() -> S3Error {
        S3Error::new(
            400,
            "MalformedXML",
            "The XML you provided was not well-formed or did not validate against our published schema.",
        )
    }

    pub fn not_implemented(what: &str) -> S3Error {
        S3Error::new(
            501,
            "NotImplemented",
            format!("{what} is not implemented by this server."),
        )
    }

    pub fn internal(message: impl Into<String>) -> S3Error {
        S3Error::new(500, "InternalError", message)
    }

    /// The XML error document; `request_id` also goes into `x-amz-request-id`.
    pub fn into_response(self, request_id: &str, head_only: bool) -> Response {
        let mut r = Response::new(self.status);
        r.set("x-amz-request-id", request_id.to_string());
        if head_only {
            // A HEAD answer has no body: S3 gives the status alone.
            return r;
        }
        let body = format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{}</Code><Message>{}</Message><Resource>{}</Resource><RequestId>{}</RequestId></Error>",
            self.code,
            escape(&self.message),
            escape(&self.resource),
            request_id
        );
        r.set("Content-Type", "application/xml");
        r.body = crate::http::response::Body::Bytes(body.into());
        r
    }
}

impl From<BucketError> for S3Error {
    fn from(e: BucketError) -> Self {
        match e {
            BucketError::InvalidName | BucketError::Reserved(_) => {
                S3Error::new(400, "InvalidBucketName", e.to_string())
            }
            BucketError::NoSuchBucket => S3Error::no_such_bucket(),
            BucketError::AlreadyExists => S3Error::new(
                409,
                "BucketAlreadyOwnedByYou",
                "Your previous request to create the named bucket succeeded and you already own it.",
            ),
            BucketError::NotEmpty => S3Error::new(
                409,
                "BucketNotEmpty",
                "The bucket you tried to delete is not empty.",
            ),
            BucketError::Io(m) => S3Error::internal(m),
        }
    }
}

impl From<MetaError> for S3Error {
    fn from(e: MetaError) -> Self {
        match e {
            MetaError::PathConflict(p) => S3Error::new(
                409,
                "InvalidRequest",
                format!("the key collides with an existing object or directory: {p}"),
            ),
            MetaError::Full(_) => {
                S3Error::new(507, "InsufficientStorage", "the server's storage is full")
            }
            e => S3Error::internal(e.to_string()),
        }
    }
}

impl From<BodyError> for S3Error {
    fn from(e: BodyError) -> Self {
        match e {
            BodyError::TooLarge(_) => S3Error::new(400, "EntityTooLarge", e.to_string()),
            BodyError::Timeout | BodyError::TooSlow(_) | BodyError::Deadline => {
                S3Error::new(400, "RequestTimeout", e.to_string())
            }
            BodyError::Closed | BodyError::Chunked(_) => {
                S3Error::new(400, "IncompleteBody", e.to_string())
            }
            BodyError::Io(e) => S3Error::internal(e.to_string()),
        }
    }
}

impl From<std::io::Error> for S3Error {
    fn from(e: std::io::Error) -> Self {
        let full = matches!(
            e.kind(),
            std::io::ErrorKind::StorageFull | std::io::ErrorKind::QuotaExceeded
        ) || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT));
        if full {
            return S3Error::new(507, "InsufficientStorage", "no space left on the device");
        }
        S3Error::internal(e.to_string())
    }
}
