//! Object operations: PutObject, GetObject/HeadObject (Range, conditional requests, response
//! overrides), DeleteObject (also for DeleteObjects) and CopyObject. An object is the file
//! `files/<bucket>/<key>` with its record (md5 = the path key, so two keys are always two
//! objects), written like any upload: streamed into a temp file with its md5, fdatasynced,
//! renamed over the old version and committed before the answer, then replicated to peers.

use super::chunked::ChecksumAlgorithm;
use super::error::S3Error;
use super::policy::{self, Action};
use super::request::{iso_time, xml_response, S3Request, XMLNS};
use super::store::{
    attrs_of, blocking, copy_to_temp, delete_key, etag_of, etag_ref, existing, keep_checksum,
    kept_parts, modified_ms, object_rel, place, receive, record_at, record_of, refuse_unkept,
    refuse_unknown_checksums, set_checksum_headers, set_stored_checksum_headers, store,
    stored_checksum, write_condition, KeptPart, PUT_BYTES_MAX,
};
use super::xml::escape;
use crate::http::content::{http_secs, if_range_holds, modified_since, unmodified_since};
use crate::http::range::{parse_range, RangeAnswer};
use crate::http::response::{Body, FileBody};
use crate::http::{Request, Response};
use crate::json::{FileInfo, S3Attrs};
use crate::worker::Worker;
use std::rc::Rc;

fn writable(r: &S3Request) -> Result<(), S3Error> {
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    Ok(())
}

pub async fn put(w: &Worker, req: &mut Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    let bucket = existing(w, r).await?;
    r.require(Action::Write, false)?;
    writable(r)?;
    refuse_unkept(req, &bucket)?;
    let (dir, name) = place(r, &r.key)?;
    let mut attrs = attrs_of(req)?;
    let limit = match r.cfg.upload_max_bytes {
        0 => PUT_BYTES_MAX,
        n => n.min(PUT_BYTES_MAX),
    };
    let expect = write_condition(req)?;
    let (written, checksum) = receive(w, req, r, limit).await?;
    attrs.etag = written.digest.clone();
    keep_checksum(&mut attrs, checksum.as_ref());
    let info = store(w, r, dir, name, written, attrs, expect).await?;
    let mut resp = Response::new(200);
    resp.set("ETag", format!("\"{}\"", etag_of(&info)));
    if let Some(c) = &checksum {
        set_checksum_headers(&mut resp, c, true);
    }
    Ok(resp)
}

/// A stored file's content as GETs serve it: small files from the executor's byte cache,
/// others from its open-file cache (both shared with the go-fastdfs downloads, and emptied
/// when a file is replaced or deleted).
enum Content {
    Memory(bytes::Bytes),
    File(Rc<glommio::io::BufferedFile>),
}

/// The content of `rel` and its size, None when there is no such file.
async fn open_content(w: &Worker, rel: &str) -> Result<Option<(Content, u64)>, S3Error> {
    use crate::store::cache::{CachedFile, OpenFile, CACHED_FILE_BYTES_MAX};
    let epoch = w.shared.cache_epoch();
    if let Some(c) = w.cache.borrow_mut().get(epoch, rel) {
        let size = c.data.len() as u64;
        return Ok(Some((Content::Memory(c.data), size)));
    }
    if let Some(f) = w.open_files.borrow_mut().get(epoch, rel) {
        return Ok(Some((Content::File(f.file), f.size)));
    }
    let Ok(file) = glommio::io::BufferedFile::open(w.dir().join(rel)).await else {
        return Ok(None);
    };
    let st = crate::sys::file_stat(&file)?;
    let (size, is_dir) = (st.size, st.is_dir);
    let version = crate::store::cache::Version::of_file(st.mtime_secs, st.mtime_nanos, st.ino);
    if is_dir {
        let _ = file.close().await;
        return Ok(None);
    }
    if size <= CACHED_FILE_BYTES_MAX && w.config().file_cache_bytes > 0 {
        let data = crate::store::cache::read_whole(&file, size).await;
        let _ = file.close().await;
        let data = data?;
        let size = data.len() as u64;
        let cached = CachedFile {
            data: data.clone(),
            version,
        };
        w.cache.borrow_mut().insert(epoch, rel, cached);
        return Ok(Some((Content::Memory(data), size)));
    }
    let file = Rc::new(file);
    let open = OpenFile {
        file: file.clone(),
        size,
        version,
    };
    w.open_files.borrow_mut().insert(epoch, rel, open);
    Ok(Some((Content::File(file), size)))
}

/// The object `x-amz-copy-source` names (CopyObject, UploadPartCopy), readable by the caller
/// and meeting the request's `x-amz-copy-source-if-*` conditions: its request (for errors
/// and permissions) and its record.
pub(super) async fn copy_source(
    w: &Worker,
    req: &Request<'_>,
    r: &S3Request,
) -> Result<(S3Request, Rc<FileInfo>), S3Error> {
    let raw = req.head.header_str("x-amz-copy-source").unwrap_or("");
    if raw
        .split_once("?versionId=")
        .is_some_and(|(_, v)| v != "null")
    {
        return Err(S3Error::invalid_argument("Invalid version id specified"));
    }
    let raw = raw.split_once("?versionId=").map_or(raw, |(p, _)| p);
    let decoded = crate::http::query::percent_decode_path(raw)
        .ok_or_else(|| S3Error::invalid_argument("Invalid copy source encoding"))?;
    let src = decoded.trim_start_matches('/');
    let (src_bucket, src_key) = src
        .split_once('/')
        .filter(|(b, k)| !b.is_empty() && !k.is_empty())
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Copy Source must mention the source bucket and key: sourcebucket/sourcekey",
            )
        })?;
    let src_req = S3Request {
        cfg: r.cfg.clone(),
        id: r.id.clone(),
        method: "GET".into(),
        bucket: src_bucket.to_string(),
        key: src_key.to_string(),
        query: Vec::new(),
        key_index: r.key_index,
        signed: None,
    };
    let src_b = existing(w, &src_req).await?;
    src_req.require(Action::Read, src_b.public_read)?;
    let info = record_of(w, &src_req, src_key)?
        .ok_or_else(|| S3Error::no_such_key().on(src_req.resource()))?;
    copy_source_conditions(req, &info)?;
    Ok((src_req, info))
}

/// CopyObject's conditions on its source (`x-amz-copy-source-if-*`), in S3's pairs: a true
/// `if-match` overrides a false `if-unmodified-since`, a false `if-none-match` a true
/// `if-modified-since`. Not met: 412.
fn copy_source_conditions(req: &Request<'_>, source: &FileInfo) -> Result<(), S3Error> {
    let header = |n: &str| req.head.header_str(n);
    let (etag, modified) = (source.etag(), modified_secs(source));
    let now = crate::sys::unix_secs_coarse();
    let failed = || {
        S3Error::new(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
    };
    if let Some(m) = header("x-amz-copy-source-if-match") {
        if !etag_listed(m, etag) {
            return Err(failed());
        }
    } else if let Some(t) = header("x-amz-copy-source-if-unmodified-since").and_then(http_secs) {
        if !unmodified_since(modified, t, now) {
            return Err(failed());
        }
    }
    if let Some(m) = header("x-amz-copy-source-if-none-match") {
        if etag_listed(m, etag) {
            return Err(failed());
        }
    } else if let Some(t) = header("x-amz-copy-source-if-modified-since").and_then(http_secs) {
        if !modified_since(modified, t, now) {
            return Err(failed());
        }
    }
    Ok(())
}

/// An `If-Match`/`If-None-Match` list matches `etag` (`*` matches any).
fn etag_listed(list: &str, etag: &str) -> bool {
    list.split(',')
        .map(str::trim)
        .any(|t| t == "*" || t.trim_start_matches("W/").trim_matches('"') == etag)
}

/// An object's Last-Modified in Unix seconds.
fn modified_secs(info: &FileInfo) -> u64 {
    (modified_ms(info) / 1000).max(0) as u64
}

/// The bucket of an existing object whose sub-resource (ACL, tags) the caller reads or
/// writes (`action`), checked in S3's order: NoSuchBucket, the caller's right (a public-read
/// bucket lets anyone read), then NoSuchKey.
async fn object_bucket(
    w: &Worker,
    r: &S3Request,
    action: Action,
) -> Result<crate::store::buckets::Bucket, S3Error> {
    let rel = object_rel(&r.bucket, &r.key);
    let info = record_at(w, r, &rel, &r.key)?;
    let bucket = existing(w, r).await?;
    r.require(action, action == Action::Read && bucket.public_read)?;
    if info.is_none() {
        return Err(S3Error::no_such_key().on(r.resource()));
    }
    Ok(bucket)
}

/// GetObjectAcl: the ACL this server applies, written as S3 would: the owner's full control,
/// and everyone's read in a public-read bucket (s3cmd reads a source's ACL before a copy).
pub async fn get_acl(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    let bucket = object_bucket(w, r, Action::Read).await?;
    let owner = r
        .key_used()
        .map_or_else(|| "anonymous".to_string(), |k| escape(&k.access_key_id));
    let mut body = format!(
        "<AccessControlPolicy xmlns=\"{XMLNS}\"><Owner><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Owner><AccessControlList>\
<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"CanonicalUser\"><ID>{owner}</ID><DisplayName>{owner}</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
    );
    if bucket.public_read {
        body.push_str(
            "<Grant><Grantee xmlns:xsi=\"http://www.w3.org/2001/XMLSchema-instance\" xsi:type=\"Group\"><URI>http://acs.amazonaws.com/groups/global/AllUsers</URI></Grantee><Permission>READ</Permission></Grant>",
        );
    }
    body.push_str("</AccessControlList></AccessControlPolicy>");
    Ok(xml_response(200, body))
}

/// GetObjectTagging: objects here have no tags (a write asking for some is refused,
/// [`super::store::refuse_unkept`]), so an existing object's tag set is empty. The AWS CLI
/// asks for it before copying an object in parts.
pub async fn get_tagging(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    object_bucket(w, r, Action::Read).await?;
    Ok(xml_response(
        200,
        format!("<Tagging xmlns=\"{XMLNS}\"><TagSet></TagSet></Tagging>"),
    ))
}

/// DeleteObjectTagging: an existing object's (empty) tag set is removed: 204.
pub async fn delete_tagging(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    object_bucket(w, r, Action::Write).await?;
    Ok(Response::new(204))
}

/// The attributes GetObjectAttributes may ask for (`x-amz-object-attributes`), in the order
/// of its answer.
const OBJECT_ATTRIBUTES: [&str; 5] = [
    "ETag",
    "Checksum",
    "ObjectParts",
    "StorageClass",
    "ObjectSize",
];

/// Most parts GetObjectAttributes lists at once (S3's default and limit).
const ATTRIBUTE_PARTS_MAX: u32 = 1000;

/// GetObjectAttributes' `x-amz-max-parts` (at most [`ATTRIBUTE_PARTS_MAX`]) and
/// `x-amz-part-number-marker` (parts after it are listed); not numbers: `InvalidArgument`.
fn parts_paging(req: &Request<'_>) -> Result<(u32, u32), S3Error> {
    let number = |name: &str, default: u32| match req.head.header_str(name) {
        None => Ok(default),
        Some(v) => v.trim().parse::<u32>().map_err(|_| {
            S3Error::invalid_argument(format!(
                "Provided {name} not an integer or within integer range"
            ))
        }),
    };
    let max = number("x-amz-max-parts", ATTRIBUTE_PARTS_MAX)?;
    Ok((
        max.min(ATTRIBUTE_PARTS_MAX),
        number("x-amz-part-number-marker", 0)?,
    ))
}

/// The `ObjectParts` of a multipart object of `count` parts: the count, and when its parts'
/// checksums were kept (S3 lists parts only then) a page of them, `paging` (max, marker).
fn object_parts(body: &mut String, count: u32, attrs: Option<&S3Attrs>, paging: (u32, u32)) {
    body.push_str(&format!("<ObjectParts><PartsCount>{count}</PartsCount>"));
    let kept = attrs.map(kept_parts).unwrap_or_default();
    let algorithm = attrs.and_then(stored_checksum).map(|c| c.algorithm);
    if let (Some(algorithm), false) = (algorithm, kept.is_empty()) {
        let (max, marker) = paging;
        let (page, truncated) =
            super::xml::page_after(&kept, |p: &KeptPart| p.number, marker, max as usize);
        body.push_str(&format!("<PartNumberMarker>{marker}</PartNumberMarker>"));
        super::xml::push_part_paging(body, page.last().map(|p| p.number), max as usize, truncated);
        let tag = algorithm.xml_name();
        for p in page {
            body.push_str(&format!(
                "<Part><PartNumber>{}</PartNumber><Size>{}</Size><{tag}>{}</{tag}></Part>",
                p.number,
                p.size,
                escape(&p.checksum)
            ));
        }
    }
    body.push_str("</ObjectParts>");
}

/// GetObjectAttributes (`?attributes`): the attributes `x-amz-object-attributes` names, of the
/// object's record (its bytes are not read): the ETag (unquoted, as S3 gives it here), its
/// checksum and type, the parts of a multipart object (their count, and for one completed
/// with checksums a page of its parts' numbers, sizes and checksums, as S3 lists them only
/// then), STANDARD, the size. A name S3 does not know is `400 InvalidArgument`.
pub async fn attributes(w: &Worker, req: &Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    let asked: Vec<&str> = req
        .head
        .header_str("x-amz-object-attributes")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .collect();
    if asked.is_empty() {
        return Err(S3Error::invalid_argument(
            "The x-amz-object-attributes header specifying the attributes to be retrieved is either missing or empty",
        ));
    }
    if let Some(bad) = asked.iter().find(|a| !OBJECT_ATTRIBUTES.contains(a)) {
        return Err(S3Error::invalid_argument(format!(
            "Invalid attribute name specified: {bad}"
        )));
    }
    let paging = parts_paging(req)?;
    let rel = object_rel(&r.bucket, &r.key);
    let info = record_at(w, r, &rel, &r.key)?;
    if info.is_none() || !policy::allowed(r.caller(), &r.bucket, Action::Read, false) {
        let bucket = existing(w, r).await?;
        r.require(Action::Read, bucket.public_read)?;
    }
    let info = info.ok_or_else(|| S3Error::no_such_key().on(r.resource()))?;
    let etag = etag_ref(&info);
    let mut body = format!("<GetObjectAttributesResponse xmlns=\"{XMLNS}\">");
    for name in OBJECT_ATTRIBUTES.iter().filter(|n| asked.contains(n)) {
        match *name {
            "ETag" => body.push_str(&format!("<ETag>{}</ETag>", escape(etag))),
            "Checksum" => {
                if let Some(attrs) = info.s3.as_deref() {
                    if let Some(c) = stored_checksum(attrs) {
                        let kind = match attrs.checksum_type.as_str() {
                            "COMPOSITE" => "COMPOSITE",
                            _ => "FULL_OBJECT",
                        };
                        let tag = c.algorithm.xml_name();
                        body.push_str(&format!(
                            "<Checksum><{tag}>{}</{tag}><ChecksumType>{kind}</ChecksumType></Checksum>",
                            c.value
                        ));
                    }
                }
            }
            "ObjectParts" => {
                let parts = etag
                    .rsplit_once('-')
                    .and_then(|(_, n)| n.parse::<u32>().ok());
                if let Some(n) = parts {
                    object_parts(&mut body, n, info.s3.as_deref(), paging)
                }
            }
            "StorageClass" => body.push_str("<StorageClass>STANDARD</StorageClass>"),
            _ => body.push_str(&format!("<ObjectSize>{}</ObjectSize>", info.size.max(0))),
        }
    }
    body.push_str("</GetObjectAttributesResponse>");
    let mut resp = xml_response(200, body);
    resp.set(
        "Last-Modified",
        crate::http::content::http_date(modified_secs(&info)),
    );
    Ok(resp)
}

pub async fn get(w: &Worker, req: &mut Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    // An object is stored whole: it is its own part 1 and has no other.
    if r.param("partNumber").is_some_and(|n| n != "1") {
        return Err(S3Error::new(
            416,
            "InvalidPartNumber",
            "The requested partnumber is not satisfiable",
        ));
    }
    let rel = object_rel(&r.bucket, &r.key);
    let info = record_at(w, r, &rel, &r.key)?;
    // A recorded object proves its bucket: the bucket is only looked up (a directory stat)
    // when the key is missing (NoSuchBucket comes before NoSuchKey) or the caller's key alone
    // does not allow the read (its public-read flag decides).
    if info.is_none() || !policy::allowed(r.caller(), &r.bucket, Action::Read, false) {
        let bucket = existing(w, r).await?;
        r.require(Action::Read, bucket.public_read)?;
    }
    let info = info.ok_or_else(|| S3Error::no_such_key().on(r.resource()))?;
    // The record is the one stored at `rel` (record_at's promise).
    let (content, size) = open_content(w, &rel)
        .await?
        .ok_or_else(|| S3Error::no_such_key().on(r.resource()))?;
    let etag = etag_ref(&info);
    let modified = modified_secs(&info);
    // A date of this second is a weak validator (`content::date_is_strong`).
    let now = crate::sys::unix_secs_coarse();
    if evaluate_conditions(req, etag, modified, now)? {
        let mut resp = Response::new(304);
        resp.no_content_length = true;
        set_validators(&mut resp, etag, modified);
        return Ok(resp);
    }
    let (status, offset, len) = if if_range_holds(req, etag, modified, now) {
        requested_range(req, r, size)?
    } else {
        (200, 0, size)
    };
    let mut resp = Response::new(status);
    set_validators(&mut resp, etag, modified);
    resp.set("Accept-Ranges", "bytes");
    if status == 206 {
        resp.set(
            "Content-Range",
            format!("bytes {}-{}/{}", offset, offset + len - 1, size),
        );
    }
    set_content_headers(&mut resp, r, &info, &rel);
    // The stored checksum is of the whole object: not sent with a part of it.
    if status == 200 && checksum_mode(req) {
        if let Some(attrs) = info.s3.as_deref() {
            set_stored_checksum_headers(&mut resp, attrs);
        }
    }
    resp.set("X-Content-Type-Options", "nosniff");
    resp.body = match content {
        Content::Memory(data) => Body::Bytes(data.slice(offset as usize..(offset + len) as usize)),
        Content::File(file) => Body::File(FileBody {
            file,
            offset,
            len,
            once: false,
        }),
    };
    Ok(resp)
}

/// The validators of an object's answer: its ETag and Last-Modified (`modified`, in seconds).
fn set_validators(resp: &mut Response, etag: &str, modified: u64) {
    resp.set("ETag", ["\"", etag, "\""].concat());
    resp.set("Last-Modified", crate::http::content::http_date(modified));
}

/// The request's conditions on the object, in S3's (RFC 7232's) order: a failed
/// If-Match/If-Unmodified-Since is 412; `Ok(true)` when If-None-Match/If-Modified-Since
/// make the answer a 304. `now`: the answer's Date, which tells whether the Last-Modified date
/// is strong enough to decide.
fn evaluate_conditions(
    req: &Request<'_>,
    etag: &str,
    modified: u64,
    now: u64,
) -> Result<bool, S3Error> {
    let header = |n: &str| req.head.header_str(n);
    if let Some(m) = header("if-match") {
        if !etag_listed(m, etag) {
            return Err(S3Error::new(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
    } else if let Some(t) = header("if-unmodified-since").and_then(http_secs) {
        if !unmodified_since(modified, t, now) {
            return Err(S3Error::new(
                412,
                "PreconditionFailed",
                "At least one of the pre-conditions you specified did not hold",
            ));
        }
    }
    Ok(match header("if-none-match") {
        Some(m) => etag_listed(m, etag),
        None => header("if-modified-since")
            .and_then(http_secs)
            .is_some_and(|t| !modified_since(modified, t, now)),
    })
}

/// The part of a `size`-byte object the Range header asks for, as (status, offset, length):
/// one satisfiable range is a 206, no range or several the whole object, none satisfiable
/// InvalidRange.
fn requested_range(
    req: &Request<'_>,
    r: &S3Request,
    size: u64,
) -> Result<(u16, u64, u64), S3Error> {
    Ok(match req.head.header("range") {
        Some(v) => match parse_range(v, size) {
            RangeAnswer::Partial(ranges) if ranges.len() == 1 => {
                let r0 = ranges[0].clone();
                (206, *r0.start(), r0.end() - r0.start() + 1)
            }
            RangeAnswer::Unsatisfiable => {
                let mut e = S3Error::new(
                    416,
                    "InvalidRange",
                    "The requested range is not satisfiable",
                );
                e.resource = r.resource();
                return Err(e);
            }
            _ => (200, 0, size),
        },
        None => (200, 0, size),
    })
}

/// Whether a GET or HEAD asks for the object's checksum (`x-amz-checksum-mode: ENABLED`).
fn checksum_mode(req: &Request<'_>) -> bool {
    req.head
        .header_str("x-amz-checksum-mode")
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("ENABLED"))
}

/// Content-Type and the other stored headers, `x-amz-meta-*`, and the `response-*` overrides
/// of a signed request.
fn set_content_headers(resp: &mut Response, r: &S3Request, info: &FileInfo, rel: &str) {
    let none = S3Attrs::default();
    let a = info.s3.as_deref().unwrap_or(&none);
    // The response-* overrides only count in signed requests.
    let over = |name: &str| {
        r.key_index
            .and(r.param(name))
            .filter(|v| !v.is_empty())
            .map(str::to_string)
    };
    let content_type: crate::http::response::HeaderValue = match over("response-content-type") {
        Some(v) => v.into(),
        None if a.content_type.is_empty() => crate::http::content::mime_type(rel).into(),
        None => a.content_type.clone().into(),
    };
    resp.set("Content-Type", content_type);
    let pairs = [
        (
            "Content-Disposition",
            "response-content-disposition",
            &a.content_disposition,
        ),
        (
            "Content-Encoding",
            "response-content-encoding",
            &a.content_encoding,
        ),
        ("Cache-Control", "response-cache-control", &a.cache_control),
    ];
    for (header, param, stored) in pairs {
        if let Some(v) = over(param).or_else(|| (!stored.is_empty()).then(|| stored.clone())) {
            resp.set(header, v);
        }
    }
    if let Some(v) = over("response-expires") {
        resp.set("Expires", v);
    }
    if let Some(v) = over("response-content-language") {
        resp.set("Content-Language", v);
    }
    for (n, v) in &a.meta {
        resp.named_headers
            .push((format!("x-amz-meta-{n}"), v.clone()));
    }
}

pub async fn delete(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    delete_key(w, r, &r.key).await?;
    Ok(Response::new(204))
}

/// CopyObject: the source (`x-amz-copy-source: /bucket/key`, percent-encoded) is read with
/// the caller's read rights, copied into a temp file through the same durable write path, and
/// stored under the destination key with the source's attributes (`COPY`) or the request's
/// (`REPLACE`).
pub async fn copy(w: &Worker, req: &mut Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    let bucket = existing(w, r).await?;
    r.require(Action::Write, false)?;
    writable(r)?;
    refuse_unkept(req, &bucket)?;
    refuse_unknown_checksums(req)?;
    let (src_req, info) = copy_source(w, req, r).await?;
    let (src_bucket, src_key) = (src_req.bucket.as_str(), src_req.key.as_str());
    let expect = write_condition(req)?;
    let (dir, name) = place(r, &r.key)?;
    let mut attrs = match req.head.header_str("x-amz-metadata-directive") {
        None | Some("COPY") => info.s3.as_deref().cloned().unwrap_or_default(),
        Some("REPLACE") => attrs_of(req)?,
        Some(_) => return Err(S3Error::invalid_argument("Unknown metadata directive.")),
    };
    // The same bytes: the source's checksum (a composite one too, with its type) is the
    // copy's whatever the directive, unless another algorithm is asked for
    // (`x-amz-checksum-algorithm`): then that one of the whole copy, computed below.
    let asked = req
        .head
        .header_str("x-amz-checksum-algorithm")
        .and_then(ChecksumAlgorithm::from_name);
    let source = info.s3.as_deref();
    let source_checksum = source.and_then(stored_checksum);
    let kept = match (asked, &source_checksum) {
        (None, Some(_)) => true,
        (Some(a), Some(c)) => {
            c.algorithm == a && source.is_some_and(|s| s.checksum_type.is_empty())
        }
        (_, None) => false,
    };
    keep_checksum(&mut attrs, source_checksum.as_ref().filter(|_| kept));
    if kept {
        attrs.checksum_type = source.map_or(String::new(), |s| s.checksum_type.clone());
    }
    // A copy onto itself must change something; a storage class (which means nothing here)
    // counts, as `rclone settier` relies on, and so does a checksum algorithm.
    if src_bucket == r.bucket
        && src_key == r.key
        && attrs_of(req)? == S3Attrs::default()
        && req.head.header("x-amz-storage-class").is_none()
        && asked.is_none()
    {
        return Err(S3Error::invalid_request("This copy request is illegal because it is trying to copy an object to itself without changing the object's metadata, storage class, website redirect location or encryption attributes."));
    }
    // The request body of a copy is empty.
    let _ = req.read_to_end(0).await?;
    let written = copy_to_temp(w, &src_req, &info, None, w.space_share(req)).await?;
    // The copy is written as one part: its ETag is its md5 (S3 does the same).
    attrs.etag = written.digest.clone();
    if let (Some(algorithm), false) = (asked, kept) {
        let path = written.tmp.clone();
        let sum = blocking(move || super::composite::of_file(algorithm, &path)).await;
        let sum = match sum {
            Ok(sum) => sum,
            Err(e) => {
                crate::store::write::discard(written).await;
                return Err(e.into());
            }
        };
        keep_checksum(&mut attrs, Some(&sum));
    }
    let stored = store(w, r, dir, name, written, attrs, expect).await?;
    let mut checksum = String::new();
    if let Some(c) = stored.s3.as_deref().and_then(stored_checksum) {
        let kind = match stored.s3.as_deref().map(|a| a.checksum_type.as_str()) {
            Some("COMPOSITE") => "COMPOSITE",
            _ => "FULL_OBJECT",
        };
        let tag = c.algorithm.xml_name();
        checksum = format!(
            "<{tag}>{}</{tag}><ChecksumType>{kind}</ChecksumType>",
            escape(&c.value)
        );
    }
    Ok(xml_response(
        200,
        format!(
            "<CopyObjectResult xmlns=\"{XMLNS}\"><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag>{checksum}</CopyObjectResult>",
            iso_time(modified_ms(&stored)),
            etag_of(&stored)
        ),
    ))
}
