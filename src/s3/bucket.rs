//! Bucket operations: ListBuckets, CreateBucket, HeadBucket, DeleteBucket, GetBucketLocation,
//! ListObjects (V1 and V2, over the store's ordered name index of files and folder markers:
//! one range scan per page, and a skip over each common prefix instead of reading what it
//! rolls up) and DeleteObjects.

use super::error::S3Error;
use super::folder::EMPTY_MD5;
use super::policy::{self, Action};
use super::request::{iso_time, xml_response, S3Request, XMLNS};
use super::store::{blocking, delete_key, etag_of, existing, modified_ms, read_small_body};
use super::xml::escape;
use crate::http::{Request, Response};
use crate::store::buckets;
use crate::store::meta::listing::{listing_key, Listed};
use crate::worker::Worker;
use std::rc::Rc;

/// Largest page of a listing (S3's limit).
const MAX_KEYS: usize = 1000;
/// Largest DeleteObjects request document, bytes, and keys in it (S3's limit).
const DELETE_BODY_BYTES_MAX: u64 = 2 << 20;
const DELETE_KEYS_MAX: usize = 1000;

pub async fn list_buckets(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    let Some(k) = r.key_used() else {
        return Err(S3Error::access_denied(
            "Anonymous users cannot list buckets.",
        ));
    };
    let root = w.dir().to_path_buf();
    let all = blocking(move || buckets::list(&root)).await?;
    let mut body = format!(
        "<ListAllMyBucketsResult xmlns=\"{XMLNS}\"><Owner><ID>{0}</ID><DisplayName>{0}</DisplayName></Owner><Buckets>",
        escape(&k.access_key_id)
    );
    for (name, b) in all.iter().filter(|(n, _)| policy::visible(k, n)) {
        body.push_str(&format!(
            "<Bucket><Name>{}</Name><CreationDate>{}</CreationDate></Bucket>",
            escape(name),
            iso_time(b.created * 1000)
        ));
    }
    body.push_str("</Buckets></ListAllMyBucketsResult>");
    Ok(xml_response(200, body))
}

pub async fn dispatch(
    w: &Rc<Worker>,
    req: &mut Request<'_>,
    r: &S3Request,
) -> Result<Response, S3Error> {
    super::request::check_operation(
        r,
        &["location", "uploads", "versioning", "delete", "tagging"],
    )?;
    match r.method.as_str() {
        // Tags are not kept here: a bucket has none (S3's answer for a bucket without tags),
        // deleting them is done, setting them is refused.
        "GET" if r.has("tagging") => {
            let b = existing(w, r).await?;
            r.require(Action::Read, b.public_read)?;
            Err(S3Error::new(404, "NoSuchTagSet", "The TagSet does not exist").on(r.resource()))
        }
        "DELETE" if r.has("tagging") => {
            existing(w, r).await?;
            r.require(Action::Write, false)?;
            Ok(Response::new(204))
        }
        "PUT" if r.has("tagging") => Err(S3Error::not_implemented(
            "Bucket tags (this server keeps no tags)",
        )),
        "PUT" if r.query.is_empty() => create(w, req, r).await,
        "PUT" => Err(S3Error::not_implemented("This bucket sub-resource")),
        "HEAD" => {
            let b = existing(w, r).await?;
            r.require(Action::Read, b.public_read)?;
            let mut resp = Response::new(200);
            resp.set("x-amz-bucket-region", r.cfg.s3_region.clone());
            Ok(resp)
        }
        "DELETE" if r.query.is_empty() => delete(w, r).await,
        "POST" if r.has("delete") => delete_objects(w, req, r).await,
        "GET" if r.has("location") => {
            let b = existing(w, r).await?;
            r.require(Action::Read, b.public_read)?;
            // us-east-1 is written as an empty constraint, as S3 does.
            let region = if r.cfg.s3_region == "us-east-1" {
                String::new()
            } else {
                escape(&r.cfg.s3_region)
            };
            Ok(xml_response(
                200,
                format!("<LocationConstraint xmlns=\"{XMLNS}\">{region}</LocationConstraint>"),
            ))
        }
        "GET" if r.has("uploads") => super::multipart::list_uploads(w, r).await,
        "GET" if r.has("versioning") => {
            let b = existing(w, r).await?;
            r.require(Action::Read, b.public_read)?;
            Ok(xml_response(
                200,
                format!("<VersioningConfiguration xmlns=\"{XMLNS}\"/>"),
            ))
        }
        "GET" => list_objects(w, r).await,
        _ => Err(S3Error::new(
            405,
            "MethodNotAllowed",
            "The specified method is not allowed against this resource.",
        )),
    }
}

async fn create(w: &Worker, req: &mut Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    // A bucket is made by a credential allowed to write it.
    if r.key_used().is_none() {
        return Err(S3Error::access_denied(
            "Anonymous users cannot create buckets.",
        ));
    }
    r.require(Action::Write, false)?;
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    let public_read = match req.head.header_str("x-amz-acl") {
        None | Some("private") => false,
        Some("public-read") => true,
        Some(other) => {
            return Err(S3Error::not_implemented(&format!(
                "The canned ACL \"{other}\""
            )))
        }
    };
    // The optional CreateBucketConfiguration: its LocationConstraint must be ours.
    let body = req.read_to_end(64 * 1024).await?;
    let doc = String::from_utf8_lossy(&body);
    if let Some(loc) = super::xml::text_of(&doc, "LocationConstraint") {
        if !loc.is_empty() && loc != r.cfg.s3_region {
            return Err(S3Error::new(
                400,
                "InvalidLocationConstraint",
                format!("This server serves region {}.", r.cfg.s3_region),
            ));
        }
    }
    let (root, name) = (w.dir().to_path_buf(), r.bucket.clone());
    match blocking(move || buckets::create(&root, &name, public_read)).await {
        Ok(()) => {}
        // us-east-1 answers a creation of a bucket its caller may write with success, for
        // scripts written against it (other regions: 409 BucketAlreadyOwnedByYou).
        Err(buckets::BucketError::AlreadyExists) if r.cfg.s3_region == "us-east-1" => {}
        Err(e) => return Err(S3Error::from(e).on(format!("/{}", r.bucket))),
    }
    let mut resp = Response::new(200);
    resp.set("Location", format!("/{}", r.bucket));
    Ok(resp)
}

async fn delete(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    let prefix = listing_key(&format!("files/{}/", r.bucket));
    // Uploads acknowledged from the metadata journal reach LMDB's listing first.
    w.meta().settle().await?;
    let any = w.meta().list_page(&prefix, &prefix, 1)?;
    let (root, name) = (w.dir().to_path_buf(), r.bucket.clone());
    let uploads_pending = super::multipart::pending_in(w, &r.bucket).await?;
    blocking(move || buckets::delete(&root, &name, || Ok(!any.is_empty() || uploads_pending)))
        .await
        .map_err(|e| S3Error::from(e).on(format!("/{}", r.bucket)))?;
    Ok(Response::new(204))
}

/// One entry of a listing: an object or a common prefix.
enum Entry {
    Object(Object),
    Prefix(String),
}

/// A listed object: a stored file, or a folder marker (S3's empty object of its key).
struct Object {
    key: String,
    etag: String,
    size: i64,
    modified_ms: i64,
}

impl Object {
    /// The object a listing entry stands for, if it is still there and in `bucket`.
    fn of(w: &Worker, bucket: &str, listed: &Listed) -> Result<Option<Object>, S3Error> {
        match listed {
            Listed::File(md5) => {
                let Some(info) = w.meta().get(md5)? else {
                    return Ok(None);
                };
                Ok(policy::key_of(bucket, &info.rel_path()).map(|key| Object {
                    key,
                    etag: etag_of(&info),
                    size: info.size.max(0),
                    modified_ms: modified_ms(&info),
                }))
            }
            Listed::Folder { rel, modified_ms } => {
                Ok(policy::key_of(bucket, rel).map(|key| Object {
                    key,
                    etag: EMPTY_MD5.to_string(),
                    size: 0,
                    modified_ms: *modified_ms,
                }))
            }
        }
    }
}

/// What a listing asks.
struct ListQuery<'a> {
    prefix: &'a str,
    delimiter: &'a str,
    /// List keys strictly after this one.
    after: String,
    /// `after` is a common prefix: skip every key under it.
    after_is_prefix: bool,
    max: usize,
}

/// The bytes just past every listing key that starts with `key_bytes` (UTF-8 never holds
/// 0xff, and a truncated listing key's marker is one 0xff).
fn past_all_under(mut key_bytes: Vec<u8>) -> Vec<u8> {
    key_bytes.extend_from_slice(&[0xff, 0xff]);
    key_bytes
}

/// Lists up to `q.max` entries of the bucket, and whether more follow.
fn list(w: &Worker, bucket: &str, q: &ListQuery<'_>) -> Result<(Vec<Entry>, bool), S3Error> {
    let base = format!("files/{bucket}/");
    let prefix_key = listing_key(&format!("{base}{}", q.prefix));
    let mut from = if q.after.is_empty() {
        prefix_key.clone()
    } else {
        let k = listing_key(&format!("{base}{}", q.after));
        if q.after_is_prefix {
            past_all_under(k)
        } else {
            let mut k = k;
            k.push(0);
            k
        }
    };
    let mut out: Vec<Entry> = Vec::new();
    loop {
        let want = q.max + 1 - out.len();
        let page = w
            .meta()
            .list_page(&prefix_key, &from, want.min(MAX_KEYS + 1))?;
        if page.is_empty() {
            return Ok((out, false));
        }
        let mut skipped_to = None;
        for (k, listed) in &page {
            from = {
                let mut next = k.clone();
                next.push(0);
                next
            };
            let Some(obj) = Object::of(w, bucket, listed)? else {
                continue;
            };
            let key = obj.key.as_str();
            // A truncated listing key holds only the first bytes: check the whole key.
            if !key.starts_with(q.prefix) || (!q.after.is_empty() && key <= q.after.as_str()) {
                continue;
            }
            if !q.delimiter.is_empty() {
                if let Some(at) = key[q.prefix.len()..].find(q.delimiter) {
                    let cp = key[..q.prefix.len() + at + q.delimiter.len()].to_string();
                    if out.len() == q.max {
                        return Ok((out, true));
                    }
                    skipped_to = Some(past_all_under(listing_key(&format!("{base}{cp}"))));
                    out.push(Entry::Prefix(cp));
                    break;
                }
            }
            if out.len() == q.max {
                return Ok((out, true));
            }
            out.push(Entry::Object(obj));
        }
        if let Some(next) = skipped_to {
            from = next;
            continue;
        }
        if page.len() < want.min(MAX_KEYS + 1) {
            return Ok((out, false));
        }
    }
}

fn max_keys(r: &S3Request) -> Result<usize, S3Error> {
    match r.param("max-keys") {
        None | Some("") => Ok(MAX_KEYS),
        Some(v) => v
            .parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .map(|n| (n as usize).min(MAX_KEYS))
            .ok_or_else(|| S3Error::invalid_argument("max-keys must be a non-negative integer")),
    }
}

fn contents_xml(o: &Object, url_encode: bool, owner: bool) -> String {
    let shown = listed_key(&o.key, url_encode);
    let owner = if owner {
        "<Owner><ID>fastdfs</ID><DisplayName>fastdfs</DisplayName></Owner>"
    } else {
        ""
    };
    format!(
        "<Contents><Key>{shown}</Key><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size>{owner}<StorageClass>STANDARD</StorageClass></Contents>",
        iso_time(o.modified_ms),
        escape(&o.etag),
        o.size
    )
}

/// `encoding-type=url`: keys percent-encoded as S3 does (everything but unreserved and `/`).
fn encode_key(key: &str) -> String {
    let mut out = String::with_capacity(key.len());
    for b in key.bytes() {
        if b.is_ascii_alphanumeric() || b"-_.~/".contains(&b) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

async fn list_objects(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    let b = existing(w, r).await?;
    r.require(Action::Read, b.public_read)?;
    let v2 = r.param("list-type") == Some("2");
    let url = url_encoded(r)?;
    let q = list_query(r, v2)?;
    // Uploads acknowledged from the metadata journal reach LMDB's listing first.
    w.meta().settle().await?;
    let (entries, truncated) = list(w, &r.bucket, &q)?;
    Ok(xml_response(
        200,
        listing_xml(r, v2, url, &q, &entries, truncated),
    ))
}

/// Whether the listing's keys are to be percent-encoded (`encoding-type=url`; any other
/// encoding is refused).
fn url_encoded(r: &S3Request) -> Result<bool, S3Error> {
    match r.param("encoding-type") {
        None | Some("") => Ok(false),
        Some("url") => Ok(true),
        Some(_) => Err(S3Error::invalid_argument(
            "Invalid Encoding Method specified in Request",
        )),
    }
}

/// The listing a ListObjects (V1) or ListObjectsV2 request asks for: its prefix, delimiter,
/// page size and where the page starts (V1's marker, V2's continuation token or
/// start-after).
fn list_query(r: &S3Request, v2: bool) -> Result<ListQuery<'_>, S3Error> {
    let prefix = r.param("prefix").unwrap_or("");
    let delimiter = r.param("delimiter").unwrap_or("");
    let max = max_keys(r)?;
    let (after, after_is_prefix) = if v2 {
        match r.param("continuation-token").filter(|t| !t.is_empty()) {
            Some(t) => decode_token(t)?,
            None => (r.param("start-after").unwrap_or("").to_string(), false),
        }
    } else {
        (r.param("marker").unwrap_or("").to_string(), false)
    };
    // A marker that is itself a common prefix skips all under it (V1's NextMarker).
    let after_is_prefix = after_is_prefix || is_common_prefix(&after, prefix, delimiter);
    Ok(ListQuery {
        prefix,
        delimiter,
        after,
        after_is_prefix,
        max,
    })
}

/// Whether `key` is one of the common prefixes a listing of `prefix` rolls keys up into:
/// the prefix, then a part holding the delimiter only at its end. A folder marker under its
/// own prefix (`full/` listed with prefix `full/`) is a key, not one.
fn is_common_prefix(key: &str, prefix: &str, delimiter: &str) -> bool {
    let rest = key.strip_prefix(prefix).unwrap_or("");
    !delimiter.is_empty() && rest.find(delimiter).map(|at| at + delimiter.len()) == Some(rest.len())
}

/// A key or prefix as the listing writes it: percent-encoded when `url`, else XML-escaped.
fn listed_key(s: &str, url: bool) -> String {
    if url {
        encode_key(s)
    } else {
        escape(s)
    }
}

/// The ListBucketResult document of one page of `entries` (`truncated`: more follow).
fn listing_xml(
    r: &S3Request,
    v2: bool,
    url: bool,
    q: &ListQuery<'_>,
    entries: &[Entry],
    truncated: bool,
) -> String {
    let enc = |s: &str| listed_key(s, url);
    let mut body = String::new();
    let root = "ListBucketResult";
    body.push_str(&format!(
        "<{root} xmlns=\"{XMLNS}\"><Name>{}</Name><Prefix>{}</Prefix>",
        escape(&r.bucket),
        enc(q.prefix)
    ));
    push_page_params(&mut body, r, v2, url, q, entries.len());
    body.push_str(&format!("<IsTruncated>{truncated}</IsTruncated>"));
    let last = entries.last().map(|e| match e {
        Entry::Object(o) => (o.key.clone(), false),
        Entry::Prefix(p) => (p.clone(), true),
    });
    if truncated {
        if let Some((k, is_prefix)) = &last {
            if v2 {
                body.push_str(&format!(
                    "<NextContinuationToken>{}</NextContinuationToken>",
                    encode_token(k, *is_prefix)
                ));
            } else if !q.delimiter.is_empty() {
                body.push_str(&format!("<NextMarker>{}</NextMarker>", enc(k)));
            }
        }
    }
    let fetch_owner = !v2 || r.param("fetch-owner") == Some("true");
    for e in entries {
        match e {
            Entry::Object(o) => body.push_str(&contents_xml(o, url, fetch_owner)),
            Entry::Prefix(p) => body.push_str(&format!(
                "<CommonPrefixes><Prefix>{}</Prefix></CommonPrefixes>",
                enc(p)
            )),
        }
    }
    body.push_str(&format!("</{root}>"));
    body
}

/// The listing's echo of the request's paging parameters (V2: StartAfter,
/// ContinuationToken and the page's KeyCount; V1: Marker), MaxKeys, Delimiter and
/// EncodingType.
fn push_page_params(
    body: &mut String,
    r: &S3Request,
    v2: bool,
    url: bool,
    q: &ListQuery<'_>,
    key_count: usize,
) {
    let enc = |s: &str| listed_key(s, url);
    if v2 {
        if let Some(sa) = r.param("start-after") {
            body.push_str(&format!("<StartAfter>{}</StartAfter>", enc(sa)));
        }
        if let Some(t) = r.param("continuation-token") {
            body.push_str(&format!(
                "<ContinuationToken>{}</ContinuationToken>",
                escape(t)
            ));
        }
        body.push_str(&format!("<KeyCount>{key_count}</KeyCount>"));
    } else {
        body.push_str(&format!(
            "<Marker>{}</Marker>",
            enc(r.param("marker").unwrap_or(""))
        ));
    }
    body.push_str(&format!("<MaxKeys>{}</MaxKeys>", q.max));
    if !q.delimiter.is_empty() {
        body.push_str(&format!("<Delimiter>{}</Delimiter>", enc(q.delimiter)));
    }
    if url {
        body.push_str("<EncodingType>url</EncodingType>");
    }
}

/// A V2 continuation token: opaque to clients; the last key (or common prefix) of the page.
fn encode_token(key: &str, is_prefix: bool) -> String {
    use base64::Engine;
    let raw = format!("{}{key}", if is_prefix { 'p' } else { 'k' });
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_token(t: &str) -> Result<(String, bool), S3Error> {
    use base64::Engine;
    let bad = || S3Error::invalid_argument("The continuation token provided is incorrect");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(t)
        .map_err(|_| bad())?;
    let s = String::from_utf8(raw).map_err(|_| bad())?;
    match s.split_at_checked(1) {
        Some(("k", k)) => Ok((k.to_string(), false)),
        Some(("p", p)) => Ok((p.to_string(), true)),
        _ => Err(bad()),
    }
}

async fn delete_objects(
    w: &Rc<Worker>,
    req: &mut Request<'_>,
    r: &S3Request,
) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    let body = read_small_body(req, r, DELETE_BODY_BYTES_MAX).await?;
    let doc = std::str::from_utf8(&body).map_err(|_| S3Error::malformed_xml())?;
    if super::xml::elements(doc, "Delete").is_empty() {
        return Err(S3Error::malformed_xml());
    }
    let quiet = super::xml::text_of(doc, "Quiet").is_some_and(|q| q == "true");
    let objects = super::xml::elements(doc, "Object");
    if objects.len() > DELETE_KEYS_MAX {
        return Err(S3Error::malformed_xml());
    }
    let mut keys = Vec::with_capacity(objects.len());
    for o in objects {
        let key = super::xml::text_of(o, "Key").ok_or_else(S3Error::malformed_xml)?;
        keys.push(key);
    }
    let mut out = format!("<DeleteResult xmlns=\"{XMLNS}\">");
    for key in keys {
        let deleted = if super::policy::is_folder_marker(&key) {
            super::folder::remove(w, r, &key).await
        } else {
            delete_key(w, r, &key).await
        };
        match deleted {
            Ok(()) => {
                if !quiet {
                    out.push_str(&format!("<Deleted><Key>{}</Key></Deleted>", escape(&key)));
                }
            }
            Err(e) => out.push_str(&format!(
                "<Error><Key>{}</Key><Code>{}</Code><Message>{}</Message></Error>",
                escape(&key),
                e.code,
                escape(&e.message)
            )),
        }
    }
    out.push_str("</DeleteResult>");
    Ok(xml_response(200, out))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_a_common_prefix_only_where_the_listing_rolls_it_up() {
        assert!(is_common_prefix("e/", "", "/"));
        assert!(is_common_prefix("e/", "e", "/"));
        assert!(is_common_prefix("a/b/", "a/", "/"));
        assert!(
            !is_common_prefix("e/", "e/", "/"),
            "a key under its own prefix"
        );
        assert!(
            !is_common_prefix("a/b/", "", "/"),
            "no prefix rolls up past a/"
        );
        assert!(!is_common_prefix("e/", "", ""), "no delimiter, no prefixes");
        assert!(!is_common_prefix("e.txt", "", "/"));
        assert!(!is_common_prefix("x/", "e", "/"), "not under the prefix");
    }
}
