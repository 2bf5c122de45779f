//! The S3-compatible interface (docs/S3.md): a second listener (`s3_addr`) on the same
//! executors and HTTP layer, whose requests are authenticated with AWS Signature Version 4
//! (`sigv4`, bodies in `aws-chunked` framing through `chunked`) or Version 2 (`sigv2`, which
//! aws-cli v1 presigns with), checked by one gate (`policy`:
//! where a key lands, who may do what), and served over the same store: a bucket is a top
//! directory of `files/`, an object is a file with its record (`bucket`, `object`, `multipart`),
//! a folder marker (a key ending in `/`) a directory (`folder`).
//! Errors are S3's XML documents (`error`).
//!
//! Data flows down only: `Front` is the HTTP layer's handler for the S3 listener; it parses
//! the request into an `S3Request` and calls the operation, which uses the store and the
//! placement rules like any upload.

mod bucket;
pub mod chunked;
mod composite;
mod error;
mod folder;
pub mod multipart;
mod object;
pub mod policy;
mod request;
pub mod sigv2;
pub mod sigv4;
mod store;
mod xml;

pub use error::S3Error;
pub use request::S3Request;

use crate::config::Config;
use crate::http::conn::{Exchange, Handler, Limits};
use crate::http::{Request, Response};
use crate::metrics::Route;
use crate::worker::Worker;
use std::rc::Rc;

/// The S3 listener's handler: the same limits, access log and metrics as the main listener.
pub struct Front {
    w: Rc<Worker>,
}

impl Front {
    pub fn new(w: Rc<Worker>) -> Front {
        Front { w }
    }
}

impl Handler for Front {
    fn limits(&self) -> Limits {
        Handler::limits(&*self.w)
    }

    fn shutting_down(&self) -> bool {
        Worker::shutting_down(&self.w)
    }

    fn refuse(&self, e: crate::http::head::HeadError) -> Response {
        let code = match e {
            crate::http::head::HeadError::Timeout => "RequestTimeout",
            _ => "InvalidRequest",
        };
        S3Error::new(e.status(), code, e.to_string())
            .into_response(&crate::codec::random_hex(8), false)
    }

    async fn handle(self: &Rc<Self>, req: &mut Request<'_>) -> Response {
        req.tag = Route::S3.tag();
        handle(&self.w, req).await
    }

    fn answered(&self, x: &Exchange<'_>) {
        Handler::answered(&*self.w, x)
    }
}

/// A request id: unique within the process (a random start, then a per-thread count), with
/// no system call per request.
fn request_id() -> String {
    thread_local! {
        static NEXT: std::cell::Cell<u64> =
            std::cell::Cell::new(u64::from_le_bytes(crate::codec::random_bytes()));
    }
    let n = NEXT.with(|c| {
        let n = c.get();
        c.set(n.wrapping_add(1));
        n
    });
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    (0..16)
        .map(|i| char::from(HEX[(n >> (60 - 4 * i)) as usize & 15]))
        .collect()
}

/// Answers one request of the S3 listener.
pub async fn handle(w: &Rc<Worker>, req: &mut Request<'_>) -> Response {
    let id = request_id();
    let head_only = req.head.method() == "HEAD";
    let mut resp = match serve(w, req, &id).await {
        Ok(r) => r,
        Err(e) => {
            match e.status {
                // What a client asked for and this server does not do: not the server's fault.
                501 => tracing::debug!(code = e.code, message = %e.message, "S3 request refused"),
                500.. => tracing::error!(code = e.code, message = %e.message, "S3 request failed"),
                // A client's credentials refused: the operator's first clue to a misconfiguration.
                401 | 403 => {
                    tracing::info!(code = e.code, message = %e.message, "S3 request refused")
                }
                _ => {}
            }
            e.cut_by_shutdown(w.shutting_down())
                .into_response(&id, head_only)
        }
    };
    if !resp.has_header("x-amz-request-id") {
        resp.set("x-amz-request-id", id);
    }
    resp
}

async fn serve(w: &Rc<Worker>, req: &mut Request<'_>, id: &str) -> Result<Response, S3Error> {
    let cfg = w.config();
    let (bucket, key) = address(&cfg, req)?;
    let query = request::operation_query(req.head.query());
    let (key_index, signed) = authenticate(&cfg, req)?;
    let r = S3Request {
        cfg,
        id: id.to_string(),
        method: req.head.method().to_string(),
        bucket,
        key,
        query,
        key_index,
        signed,
    };
    if r.bucket.is_empty() {
        return match r.method.as_str() {
            "GET" => bucket::list_buckets(w, &r).await,
            _ => Err(S3Error::new(
                405,
                "MethodNotAllowed",
                "The specified method is not allowed against this resource.",
            )),
        };
    }
    if r.key.is_empty() {
        return bucket::dispatch(w, req, &r).await;
    }
    request::check_operation(
        &r,
        &[
            "uploads",
            "uploadId",
            "partNumber",
            "acl",
            "attributes",
            "tagging",
        ],
    )?;
    match r.method.as_str() {
        "GET" if r.has("tagging") => object::get_tagging(w, &r).await,
        "DELETE" if r.has("tagging") => object::delete_tagging(w, &r).await,
        _ if r.has("tagging") => Err(S3Error::not_implemented(
            "Setting an object's tags (this server keeps no tags)",
        )),
        "GET" | "HEAD" if r.has("acl") => object::get_acl(w, &r).await,
        "GET" if r.has("attributes") => object::attributes(w, req, &r).await,
        // Never taken for the plain operation (a PUT would store the body as the object).
        _ if r.has("attributes") => Err(S3Error::not_implemented(
            "The ?attributes sub-resource with another method than GET",
        )),
        _ if r.has("acl") => Err(S3Error::not_implemented(
            "Setting an object's ACL (buckets have a public-read flag)",
        )),
        "POST" if r.has("uploads") => multipart::create(w, req, &r).await,
        "POST" if r.has("uploadId") => multipart::complete(w, req, &r).await,
        "PUT" if r.has("uploadId") || r.has("partNumber") => {
            multipart::upload_part(w, req, &r).await
        }
        "GET" if r.has("uploadId") => multipart::list_parts(w, &r).await,
        "DELETE" if r.has("uploadId") => multipart::abort(w, &r).await,
        "PUT" if req.head.header("x-amz-copy-source").is_some() => object::copy(w, req, &r).await,
        "PUT" if policy::is_folder_marker(&r.key) => folder::put(w, req, &r).await,
        "GET" | "HEAD" if policy::is_folder_marker(&r.key) => folder::get(w, &r).await,
        "DELETE" if policy::is_folder_marker(&r.key) => folder::delete(w, &r).await,
        "PUT" => object::put(w, req, &r).await,
        "GET" | "HEAD" => object::get(w, req, &r).await,
        "DELETE" => object::delete(w, &r).await,
        _ => Err(S3Error::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )),
    }
}

/// The bucket and key a request addresses: path-style (`/bucket/key`), or virtual-hosted style
/// (`Host: bucket.<s3_domain>`) when `s3_domain` is set. The key is percent-decoded.
fn address(cfg: &Config, req: &Request<'_>) -> Result<(String, String), S3Error> {
    let raw = req.head.path();
    let decode = |s: &str| {
        crate::http::query::percent_decode_path(s)
            .map(std::borrow::Cow::into_owned)
            .ok_or_else(|| S3Error::invalid_argument("The request path is not valid UTF-8."))
    };
    let rest = raw.strip_prefix('/').unwrap_or(raw);
    if let Some(bucket) = virtual_host_bucket(cfg, req) {
        return Ok((bucket, decode(rest)?));
    }
    let (bucket, key) = match rest.split_once('/') {
        Some((b, k)) => (b, k),
        None => (rest, ""),
    };
    Ok((decode(bucket)?, decode(key)?))
}

/// `bucket` of `Host: bucket.<s3_domain>[:port]`.
fn virtual_host_bucket(cfg: &Config, req: &Request<'_>) -> Option<String> {
    bucket_of_host(&cfg.s3_domain, req.head.host()?)
}

/// The bucket a `Host` header names under `s3_domain` (`bucket.<domain>[:port]`, any case).
fn bucket_of_host(s3_domain: &str, host: &str) -> Option<String> {
    let domain = s3_domain.trim().trim_start_matches('.');
    if domain.is_empty() {
        return None;
    }
    let host = host.rsplit_once(':').map_or(host, |(h, p)| {
        if p.bytes().all(|b| b.is_ascii_digit()) {
            h
        } else {
            host
        }
    });
    // Host names compare without case.
    let cut = host.len().checked_sub(domain.len())?;
    let (bucket, suffix) = (host.get(..cut)?, host.get(cut..)?);
    if !suffix.eq_ignore_ascii_case(domain) {
        return None;
    }
    let bucket = bucket.strip_suffix('.')?;
    (!bucket.is_empty()).then(|| bucket.to_ascii_lowercase())
}

/// Verifies the request's signature (if it carries one) against the configured keys.
fn authenticate(
    cfg: &Config,
    req: &Request<'_>,
) -> Result<(Option<usize>, Option<Rc<sigv4::Verified>>), S3Error> {
    let headers = request::utf8_headers(req);
    let sreq = sigv4::Request {
        method: req.head.method(),
        path: req.head.path(),
        query: req.head.query(),
        headers: &headers,
    };
    let now = chrono::Utc::now().timestamp();
    let secret_of = |id: &str| {
        cfg.s3_keys
            .iter()
            .find(|k| k.access_key_id == id)
            .map(|k| k.secret_access_key.as_str())
    };
    // Signature Version 2 (aws-cli v1's `s3 presign`, older tools), else Version 4.
    let verified = if sigv2::is_v2(&sreq) {
        let host_bucket = virtual_host_bucket(cfg, req);
        sigv2::verify_with_host_bucket(&sreq, host_bucket.as_deref(), now, secret_of).map(Rc::new)
    } else if sigv4::is_signed(&sreq) {
        sigv4::verify(&sreq, now, &cfg.s3_region, secret_of)
    } else {
        return Ok((None, None));
    }
    .map_err(|e| S3Error::new(e.status(), e.code(), e.to_string()))?;
    let key = cfg
        .s3_keys
        .iter()
        .position(|k| k.access_key_id == verified.access_key_id)
        .ok_or_else(|| S3Error::new(403, "InvalidAccessKeyId", "unknown access key"))?;
    Ok((Some(key), Some(verified)))
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_virtual_host_names_its_bucket_whatever_the_case_of_the_domain() {
        let b = |host: &str| super::bucket_of_host("s3.local", host);
        assert_eq!(b("photos.s3.local").as_deref(), Some("photos"));
        assert_eq!(b("photos.S3.LOCAL:9000").as_deref(), Some("photos"));
        assert_eq!(b("Photos.s3.local").as_deref(), Some("photos"));
        assert_eq!(
            b("a.b.s3.local").as_deref(),
            Some("a.b"),
            "dotted bucket names"
        );
        for other in [
            "s3.local",
            ".s3.local",
            "photos.s3.localhost",
            "photoss3.local",
            "é.s3",
        ] {
            assert_eq!(b(other), None, "{other}");
        }
        assert_eq!(super::bucket_of_host("", "photos.s3.local"), None);
    }

    #[test]
    fn request_ids_are_sixteen_upper_hex_digits_and_count_up() {
        let (a, b) = (super::request_id(), super::request_id());
        for id in [&a, &b] {
            assert_eq!(id.len(), 16);
            assert!(
                id.bytes().all(|c| matches!(c, b'0'..=b'9' | b'A'..=b'F')),
                "{id}"
            );
        }
        let n = |id: &str| u64::from_str_radix(id, 16).unwrap();
        assert_eq!(n(&b), n(&a).wrapping_add(1));
    }
}
