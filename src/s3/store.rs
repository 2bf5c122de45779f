//! The store as S3 operations see it: a bucket's existence, an object's place (through the
//! `policy` gate), record and validators, and the durable write path of a payload: streamed
//! from the request (decoded from aws-chunked framing, checked against its signature,
//! declared SHA-256, checksums and Content-MD5) into a temp file, then moved into place over
//! the old version and committed (md5 = the path key, so two keys are always two objects)
//! before the answer, and replicated to the peers.

use super::chunked::{Checksum, ChecksumAlgorithm, ChecksumCheck, ChunkDecoder};
use super::error::S3Error;
use super::policy;
use super::request::S3Request;
use super::sigv4::PayloadCheck;
use crate::http::{Request, Response};
use crate::json::{FileInfo, S3Attrs};
use crate::store::buckets::{self, Bucket};
use crate::store::meta::{self, Conditional, Expect, Origin, Staged};
use crate::store::write::{self, Sink, TempFile, Written};
use crate::worker::Worker;

/// The condition a write's headers put on the object it replaces (S3's conditional writes:
/// PutObject, CompleteMultipartUpload, CopyObject): `If-None-Match: *` (create only) or
/// `If-Match: <ETag>`. Other forms are not served (501), never ignored.
pub fn write_condition(req: &Request<'_>) -> Result<Expect, S3Error> {
    let none_match = req.head.header_str("if-none-match").map(str::trim);
    let if_match = req.head.header_str("if-match").map(str::trim);
    match (none_match, if_match) {
        (None, None) => Ok(Expect::Nothing),
        (Some("*"), None) => Ok(Expect::Absent),
        (None, Some(tag)) if tag != "*" && !tag.contains(',') => Ok(Expect::Etag(
            tag.trim_start_matches("W/").trim_matches('"').to_string(),
        )),
        _ => Err(S3Error::not_implemented(
            "A conditional write other than If-None-Match: * or one If-Match ETag",
        )),
    }
}

/// A write's condition not met (S3's answer).
fn precondition_failed() -> S3Error {
    S3Error::new(
        412,
        "PreconditionFailed",
        "At least one of the pre-conditions you specified did not hold",
    )
}

/// Largest single PUT (S3's limit; larger objects are multipart uploads).
pub const PUT_BYTES_MAX: u64 = 5 << 30;

/// Where the request's object is stored: (directory, file name); refused keys are
/// InvalidArgument (KeyTooLongError past 1024 bytes).
pub fn place(r: &S3Request, key: &str) -> Result<(String, String), S3Error> {
    policy::object_path(&r.bucket, key, &r.cfg.peer_id).map_err(|e| match e {
        policy::KeyError::TooLong => {
            S3Error::new(400, "KeyTooLongError", "Your key is too long.").on(r.resource())
        }
        e => S3Error::invalid_argument(e.to_string()).on(r.resource()),
    })
}

/// Runs blocking file-system work on the executor's blocking pool.
pub async fn blocking<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    glommio::executor().spawn_blocking(f).await
}

/// Appends the whole file at `path` to `tmp` through io_uring, 1 MiB at a time (a copy's
/// source, a multipart upload's parts).
pub async fn append_file(path: &std::path::Path, tmp: &mut TempFile) -> std::io::Result<()> {
    append_range(path, 0, u64::MAX, tmp).await
}

/// Appends `len` bytes of the file at `path` from `offset` (or up to its end) to `tmp`, 1 MiB
/// at a time (UploadPartCopy's source range).
pub async fn append_range(
    path: &std::path::Path,
    offset: u64,
    len: u64,
    tmp: &mut TempFile,
) -> std::io::Result<()> {
    const STEP: u64 = 1 << 20;
    let file = glommio::io::BufferedFile::open(path).await?;
    let (mut pos, end) = (offset, offset.saturating_add(len));
    let copied = async {
        while pos < end {
            let got = file.read_at(pos, STEP.min(end - pos) as usize).await?;
            if got.is_empty() {
                break;
            }
            pos += got.len() as u64;
            tmp.write(&got).await?;
        }
        Ok::<(), std::io::Error>(())
    }
    .await;
    let _ = file.close().await;
    copied
}

/// A copy source's file (`source`, its record; `src` its request, for errors) into a new temp
/// file under the store, digested: all of it (CopyObject's object, whatever version is there
/// now), or `(offset, len)` of it (UploadPartCopy's part; a source gone or cut shorter
/// meanwhile is NoSuchKey). The copy's size is admitted as an upload of the client's
/// (`share`: its share of the space, none for an admin or a peer), as a PUT of it would be.
pub async fn copy_to_temp(
    w: &Worker,
    src: &S3Request,
    source: &FileInfo,
    range: Option<(u64, u64)>,
    share: Option<crate::store::space::Share>,
) -> Result<Written, S3Error> {
    let from = w.dir().join(source.rel_path());
    let expected = source.size.max(0) as u64;
    let (offset, len) = range.unwrap_or((0, u64::MAX));
    let claim = crate::store::space::admit_as(w.dir(), len.min(expected), share).await?;
    let mut tmp = TempFile::create(w.dir(), false, len.min(expected)).await?;
    tmp.claim(claim);
    if let Err(e) = append_range(&from, offset, len, &mut tmp).await {
        drop(tmp);
        return Err(if e.kind() == std::io::ErrorKind::NotFound {
            S3Error::no_such_key().on(src.resource())
        } else {
            e.into()
        });
    }
    let written = tmp.finish().await?;
    if range.is_some() && written.size != len {
        write::discard(written).await;
        return Err(S3Error::no_such_key().on(src.resource()));
    }
    Ok(written)
}

/// The live record of `key` in the request's bucket.
pub fn record_of(
    w: &Worker,
    r: &S3Request,
    key: &str,
) -> Result<Option<std::rc::Rc<FileInfo>>, S3Error> {
    record_at(w, r, &object_rel(&r.bucket, key), key)
}

/// `files/<bucket>/<key>`: where an object of a valid key is stored (see
/// [`policy::object_path`], which decides whether the key is valid).
pub fn object_rel(bucket: &str, key: &str) -> String {
    ["files/", bucket, "/", key].concat()
}

/// [`record_of`] given the key's [`object_rel`].
pub fn record_at(
    w: &Worker,
    r: &S3Request,
    rel: &str,
    key: &str,
) -> Result<Option<std::rc::Rc<FileInfo>>, S3Error> {
    let epoch = w.shared.cache_epoch();
    // The record cache only holds records found under a valid key's path, so a hit needs no
    // new check of the key.
    if let Some(info) = w.records.borrow_mut().get(epoch, rel) {
        return Ok(Some(info));
    }
    // A valid key's path is `rel` itself; any other key has no record.
    match policy::object_path(&r.bucket, key, &r.cfg.peer_id) {
        Ok((dir, name)) if rel == [dir.as_str(), "/", &name].concat() => {}
        _ => return Ok(None),
    }
    let key = meta::path_key(rel);
    let here = |i: &FileInfo| i.rel_path() == rel && !i.is_merged();
    // An object written over S3 is recorded under its path key: one shard to look in. A file
    // uploaded through the go-fastdfs API has its content's md5: every shard's path index.
    let found = match w.meta().get(&key)?.filter(here) {
        Some(info) => Some(info),
        None => w.meta().get_by_path_key(&key)?.filter(here),
    };
    Ok(found.map(|info| {
        let info = std::rc::Rc::new(info);
        w.records.borrow_mut().insert(epoch, rel, info.clone());
        info
    }))
}

/// The attributes a PUT (or a copy with `REPLACE`) sets: content headers and `x-amz-meta-*`.
/// S3's bound on an object's user metadata: names and values of `x-amz-meta-*`, in bytes.
pub const USER_METADATA_BYTES_MAX: usize = 2048;

/// The stored headers and user metadata a write's request gives its object (refused past
/// [`USER_METADATA_BYTES_MAX`], as S3 does).
pub fn attrs_of(req: &Request<'_>) -> Result<S3Attrs, S3Error> {
    let h = |n: &str| req.head.header_str(n).unwrap_or("").trim().to_string();
    // `aws-chunked` is the transfer framing, not the object's encoding.
    let encoding: Vec<&str> = req
        .head
        .header_str("content-encoding")
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|e| !e.is_empty() && !e.eq_ignore_ascii_case("aws-chunked"))
        .collect();
    let mut meta = Vec::new();
    for (name, value) in req.head.headers() {
        let lower = name.to_ascii_lowercase();
        if let Some(n) = lower.strip_prefix("x-amz-meta-") {
            if let Ok(v) = std::str::from_utf8(value) {
                meta.push((n.to_string(), v.trim().to_string()));
            }
        }
    }
    if meta.iter().map(|(n, v)| n.len() + v.len()).sum::<usize>() > USER_METADATA_BYTES_MAX {
        return Err(S3Error::new(
            400,
            "MetadataTooLarge",
            "Your metadata headers exceed the maximum allowed metadata size.",
        ));
    }
    Ok(S3Attrs {
        etag: String::new(),
        content_type: h("content-type"),
        content_disposition: h("content-disposition"),
        content_encoding: encoding.join(", "),
        cache_control: h("cache-control"),
        meta,
        modified_ms: 0,
        checksum_algorithm: String::new(),
        checksum: String::new(),
        checksum_type: String::new(),
        parts: String::new(),
    })
}

/// Streams the request's payload (decoded from aws-chunked framing and checked against its
/// signature, declared SHA-256, Content-MD5, decoded length and `x-amz-checksum-*` header or
/// trailer) into a durable temp file; with the checksum the client sent, verified.
pub async fn receive(
    w: &Worker,
    req: &mut Request<'_>,
    r: &S3Request,
    limit: u64,
) -> Result<(Written, Option<Checksum>), S3Error> {
    // The decoded length of an aws-chunked payload, else the body's.
    let announced = req
        .head
        .header_str("x-amz-decoded-content-length")
        .and_then(|v| v.trim().parse().ok())
        .or(req.content_length());
    let expected = announced.unwrap_or(0);
    let share = w.space_share(req);
    let claim = match announced {
        None => crate::store::space::Claim::metered_as(w.dir(), share),
        Some(n) if n <= limit => crate::store::space::admit_as(w.dir(), n, share).await?,
        // (Refused as too large, once its headers are checked.)
        Some(_) => crate::store::space::Claim::default(),
    };
    let mut sink = Sink::start(w.dir(), &w.merge_memory, false, expected).await?;
    sink.claim(claim);
    let checksum = match receive_into(w, req, r, limit, &mut sink).await {
        Ok(checksum) => checksum,
        Err(e) => {
            drop(sink);
            return Err(e);
        }
    };
    let written = sink.finish(w.dir()).await?;
    if let Some(want) = req.head.header_str("content-md5") {
        if !md5_matches(want, &written.digest) {
            write::discard(written).await;
            return Err(S3Error::new(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok((written, checksum))
}

fn md5_matches(b64: &str, hex: &str) -> bool {
    use base64::Engine;
    let Ok(raw) = base64::engine::general_purpose::STANDARD.decode(b64.trim()) else {
        return false;
    };
    crate::store::meta::hex(&raw) == hex
}

/// The payload's error when it exceeds the size limit.
fn too_large() -> S3Error {
    S3Error::new(
        400,
        "EntityTooLarge",
        "Your proposed upload exceeds the maximum allowed size.",
    )
}

/// The digests a payload is checked against as it arrives: the SHA-256 its signature
/// declares and the `x-amz-checksum-*` header.
struct PayloadChecks {
    sha256: Option<PayloadCheck>,
    checksum: Option<ChecksumCheck>,
}

impl PayloadChecks {
    /// Feeds `data`, the next decoded bytes of the payload, to both checks.
    fn update(&mut self, data: &[u8]) {
        if let Some(c) = self.sha256.as_mut() {
            c.update(data);
        }
        if let Some(c) = self.checksum.as_mut() {
            c.update(data);
        }
    }
}

async fn receive_into(
    w: &Worker,
    req: &mut Request<'_>,
    r: &S3Request,
    limit: u64,
    sink: &mut Sink<'_>,
) -> Result<Option<Checksum>, S3Error> {
    let PayloadHeaders {
        mut decoder,
        checksum,
        declared,
    } = payload_headers(req, r)?;
    bound_body(req, decoder.is_some(), declared, limit)?;
    let mut checks = PayloadChecks {
        sha256: r.signed.as_ref().and_then(|v| v.payload_check()),
        checksum,
    };
    if let (None, true, Sink::File(tmp)) = (&decoder, req.body_is_sized(), &mut *sink) {
        receive_sized_plain(req, tmp, &mut checks).await?;
    }
    receive_chunks(w, req, sink, decoder.as_mut(), &mut checks, limit).await?;
    finish_payload(decoder, checks)
}

/// What a request's headers say of its payload.
struct PayloadHeaders {
    /// The aws-chunked decoder the body needs, if it is framed so.
    decoder: Option<ChunkDecoder>,
    /// The check of its `x-amz-checksum-*` header.
    checksum: Option<ChecksumCheck>,
    /// Its declared decoded length (`x-amz-decoded-content-length`).
    declared: Option<u64>,
}

/// The [`PayloadHeaders`] of a request; checksum algorithms this server does not know are
/// refused first.
fn payload_headers(req: &Request<'_>, r: &S3Request) -> Result<PayloadHeaders, S3Error> {
    let headers = super::request::utf8_headers(req);
    super::chunked::refuse_unknown_checksums(&headers).map_err(chunk_error)?;
    let decoder = ChunkDecoder::for_request(r.signed.as_deref(), &headers).map_err(chunk_error)?;
    let checksum = super::chunked::ChecksumCheck::from_headers(&headers).map_err(chunk_error)?;
    let declared = super::chunked::decoded_length_from_headers(&headers).map_err(chunk_error)?;
    Ok(PayloadHeaders {
        decoder,
        checksum,
        declared,
    })
}

/// Refuses, before it is read, a payload declared longer than `limit` or of no stated length
/// (411), and bounds the body's bytes to what such a payload needs.
fn bound_body(
    req: &mut Request<'_>,
    framed: bool,
    declared: Option<u64>,
    limit: u64,
) -> Result<(), S3Error> {
    match (framed, req.content_length()) {
        (true, _) if declared.unwrap_or(0) > limit => return Err(too_large()),
        (true, _) => {}
        (false, Some(n)) if n > limit => return Err(too_large()),
        (false, Some(_)) => {}
        (false, None) if req.head.header_str("transfer-encoding").is_some() => {}
        (false, None) => {
            return Err(S3Error::new(
                411,
                "MissingContentLength",
                "You must provide the Content-Length HTTP header.",
            ))
        }
    }
    // Framing bytes on top of the payload are bounded too.
    req.body_max = if framed {
        limit.saturating_add(limit / 64 + (1 << 20))
    } else {
        limit
    };
    Ok(())
}

/// A plain payload of known length: received straight into the temp file's write buffer,
/// checked there.
async fn receive_sized_plain(
    req: &mut Request<'_>,
    tmp: &mut TempFile,
    checks: &mut PayloadChecks,
) -> Result<(), S3Error> {
    loop {
        let mut v = tmp.lend();
        let from = v.len();
        let room = crate::store::write::Appender::room_max(&v);
        let got = req.body_into(&mut v, room).await?;
        checks.update(&v.bytes()[from..]);
        tmp.commit(v).await?;
        if got == 0 {
            return Ok(());
        }
    }
}

/// The rest of the body, chunk by chunk as the connection yields it: decoded from its
/// aws-chunked framing (if any), counted against `limit`, checked and written to `sink`.
async fn receive_chunks(
    w: &Worker,
    req: &mut Request<'_>,
    sink: &mut Sink<'_>,
    mut decoder: Option<&mut ChunkDecoder>,
    checks: &mut PayloadChecks,
    limit: u64,
) -> Result<(), S3Error> {
    let mut out = Vec::new();
    let mut size = 0u64;
    while let Some(chunk) = req.chunk().await? {
        let data: &[u8] = match decoder.as_deref_mut() {
            Some(d) => {
                out.clear();
                let used = d.push(&chunk, &mut out).map_err(chunk_error)?;
                if used < chunk.len() {
                    return Err(S3Error::new(
                        400,
                        "IncompleteBody",
                        "Bytes follow the final chunk of the aws-chunked body.",
                    ));
                }
                &out
            }
            None => &chunk,
        };
        size += data.len() as u64;
        if size > limit {
            return Err(too_large());
        }
        checks.update(data);
        sink.write(w.dir(), data).await?;
    }
    Ok(())
}

/// The payload's end: the aws-chunked framing's (and its trailers'), then the signature's
/// SHA-256 and the checksum header's verdicts; the client's checksum (header, else trailer).
fn finish_payload(
    decoder: Option<ChunkDecoder>,
    checks: PayloadChecks,
) -> Result<Option<Checksum>, S3Error> {
    let trailers = match decoder {
        Some(d) => Some(d.finish().map_err(chunk_error)?),
        None => None,
    };
    if let Some(c) = checks.sha256 {
        c.finish()
            .map_err(|e| S3Error::new(e.status(), e.code(), e.to_string()))?;
    }
    let from_header = match checks.checksum {
        Some(c) => Some(c.finish().map_err(chunk_error)?),
        None => None,
    };
    Ok(from_header.or_else(|| trailers.and_then(|t| t.checksum())))
}

/// [`super::chunked::refuse_unknown_checksums`] of a request without a payload
/// (CreateMultipartUpload, CopyObject).
pub fn refuse_unknown_checksums(req: &Request<'_>) -> Result<(), S3Error> {
    let headers = super::request::utf8_headers(req);
    super::chunked::refuse_unknown_checksums(&headers).map_err(chunk_error)
}

/// The headers of an answer that carries an object's checksum: `x-amz-checksum-<name>` and,
/// for a whole object (not a part), `x-amz-checksum-type: FULL_OBJECT`.
pub fn set_checksum_headers(resp: &mut Response, checksum: &Checksum, whole_object: bool) {
    resp.set(checksum.algorithm.header_name(), checksum.value.clone());
    if whole_object {
        resp.set("x-amz-checksum-type", "FULL_OBJECT");
    }
}

/// The headers of GetObject and HeadObject in checksum mode for an object with `attrs`: its
/// kept checksum, if it has one, and its type (COMPOSITE for a multipart object's composite
/// checksum, else FULL_OBJECT).
pub fn set_stored_checksum_headers(resp: &mut Response, attrs: &S3Attrs) {
    if let Some(c) = stored_checksum(attrs) {
        resp.set(c.algorithm.header_name(), c.value);
        let kind = match attrs.checksum_type.as_str() {
            "COMPOSITE" => "COMPOSITE",
            _ => "FULL_OBJECT",
        };
        resp.set("x-amz-checksum-type", kind);
    }
}

/// The checksum kept with an object's attributes, if any (records written before checksums
/// were kept and go-fastdfs uploads have none).
pub fn stored_checksum(attrs: &S3Attrs) -> Option<Checksum> {
    let algorithm = ChecksumAlgorithm::from_name(&attrs.checksum_algorithm)?;
    (!attrs.checksum.is_empty()).then(|| Checksum {
        algorithm,
        value: attrs.checksum.clone(),
    })
}

/// A part of a multipart object, as its attributes keep it (`S3Attrs::parts`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptPart {
    pub number: u32,
    pub size: u64,
    /// Base64, of the object's checksum algorithm.
    pub checksum: String,
}

/// `S3Attrs::parts` of `parts`.
pub fn encode_parts(parts: &[KeptPart]) -> String {
    let mut out = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!("{}:{}:{}", p.number, p.size, p.checksum));
    }
    out
}

/// The parts `S3Attrs::parts` keeps (none for an object that is not a multipart one with
/// checksums); an entry that does not parse is left out.
pub fn kept_parts(attrs: &S3Attrs) -> Vec<KeptPart> {
    attrs
        .parts
        .split(',')
        .filter_map(|p| {
            let mut f = p.splitn(3, ':');
            Some(KeptPart {
                number: f.next()?.parse().ok()?,
                size: f.next()?.parse().ok()?,
                checksum: f.next()?.to_string(),
            })
        })
        .collect()
}

/// Keeps `checksum` of the whole object (or none) with an object's attributes (and no
/// parts: the object is one).
pub fn keep_checksum(attrs: &mut S3Attrs, checksum: Option<&Checksum>) {
    attrs.checksum_type.clear();
    attrs.parts.clear();
    match checksum {
        Some(c) => {
            attrs.checksum_algorithm = c.algorithm.name().to_string();
            attrs.checksum = c.value.clone();
        }
        None => {
            attrs.checksum_algorithm.clear();
            attrs.checksum.clear();
        }
    }
}

fn chunk_error(e: super::chunked::ChunkError) -> S3Error {
    S3Error::new(e.status(), e.code(), e.to_string())
}

/// Moves `written` into place as `dir/name`, replacing the object's previous version, and
/// commits its record (replicated to the peers) before returning it.
pub async fn store(
    w: &Worker,
    r: &S3Request,
    dir: String,
    name: String,
    written: Written,
    attrs: S3Attrs,
    expect: Expect,
) -> Result<FileInfo, S3Error> {
    let cfg = &r.cfg;
    let rel = format!("{dir}/{name}");
    let md5 = meta::path_key(&rel);
    // A go-fastdfs upload at this path has a record of another id (its content's md5): it is
    // replaced here, so its record goes (locally: the peers get the new version).
    let old = w.meta().get_by_path_key(&md5)?;
    // The condition holds of whatever file the key names now; for an object written over S3
    // (its id the path key) it is decided again in the insert's transaction.
    let current = old
        .as_ref()
        .filter(|o| o.rel_path() == rel && w.meta().is_live(o));
    if !expect.holds(current) {
        write::discard(written).await;
        return Err(match (&expect, current) {
            (Expect::Etag(_), None) => S3Error::no_such_key().on(r.resource()),
            _ => precondition_failed().on(r.resource()),
        });
    }
    // Met by a go-fastdfs file at this path (another id, replaced below): what is left to
    // decide atomically is that no object of this key appeared meanwhile.
    let expect = match (expect, current) {
        (Expect::Etag(_), Some(c)) if c.md5 != md5 => Expect::Absent,
        (expect, _) => expect,
    };
    if let Some(old) = &old {
        if old.md5 != md5 && old.rel_path() == rel {
            w.meta().delete(old.md5.clone(), Vec::new(), false).await?;
        }
    }
    let info = new_record(r, &dir, &name, md5, written.size, attrs);
    let staged = Staged {
        tmp: written.tmp.clone(),
        dir,
        name,
        replace: true,
    };
    let origin = Origin::Local {
        notify: cfg.peers.clone(),
    };
    let result = w
        .meta()
        .insert_expecting(info, Some(staged), expect, origin)
        .await;
    settle_insert(w, r, result, written, old.is_some()).await
}

/// The record of an object's new version, `size` bytes at `dir/name` of the request's
/// bucket, modified now and held by this node.
fn new_record(
    r: &S3Request,
    dir: &str,
    name: &str,
    md5: String,
    size: u64,
    mut attrs: S3Attrs,
) -> FileInfo {
    let now = chrono::Utc::now();
    attrs.modified_ms = now.timestamp_millis();
    FileInfo {
        name: name.to_string(),
        rename: String::new(),
        path: dir.to_string(),
        md5,
        size: size as i64,
        peers: Some(vec![r.cfg.host.clone()]),
        scene: r.bucket.clone(),
        time_stamp: now.timestamp(),
        offset: crate::json::OFFSET_PLAIN,
        s3: Some(Box::new(attrs)),
    }
}

/// Acts on the insert's outcome: the temp file moved into place (and caches of a `replaced`
/// version dropped) when it is stored, else discarded, with S3's error.
async fn settle_insert(
    w: &Worker,
    r: &S3Request,
    result: Result<Conditional, meta::MetaError>,
    written: Written,
    replaced: bool,
) -> Result<FileInfo, S3Error> {
    match result {
        Ok(Conditional::Stored(info)) => {
            written.moved();
            // Cached copies of a replaced version go (a new key has none).
            if replaced {
                w.shared.invalidate_caches();
            }
            w.metrics().upload(info.size as u64, false);
            Ok(info)
        }
        Ok(Conditional::PreconditionFailed) => {
            write::discard(written).await;
            Err(precondition_failed().on(r.resource()))
        }
        Err(e) => {
            write::discard(written).await;
            Err(S3Error::from(e).on(r.resource()))
        }
    }
}

/// Deletes `key` of the request's bucket (nothing to delete is a success, as in S3).
pub async fn delete_key(w: &Worker, r: &S3Request, key: &str) -> Result<(), S3Error> {
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    let Some(info) = record_of(w, r, key)? else {
        return Ok(());
    };
    w.meta()
        .delete(info.md5.clone(), r.cfg.peers.clone(), false)
        .await?;
    Ok(())
}

/// The whole body of a small request document (DeleteObjects, CompleteMultipartUpload),
/// decoded and checked like an object's payload.
pub async fn read_small_body(
    req: &mut Request<'_>,
    r: &S3Request,
    limit: u64,
) -> Result<Vec<u8>, S3Error> {
    let mode = r.signed.as_ref().map(|v| v.payload);
    if mode.is_some_and(|m| m.is_streaming()) {
        return Err(S3Error::invalid_request(
            "aws-chunked payloads are accepted only for object data",
        ));
    }
    if req.content_length().is_some_and(|n| n > limit) {
        return Err(S3Error::new(
            400,
            "EntityTooLarge",
            "The request document is too large.",
        ));
    }
    let body = req.read_to_end(limit).await?;
    if let Some(mut c) = r.signed.as_ref().and_then(|v| v.payload_check()) {
        c.update(&body);
        c.finish()
            .map_err(|e| S3Error::new(e.status(), e.code(), e.to_string()))?;
    }
    if let Some(want) = req.head.header_str("content-md5") {
        let digest = <md5::Md5 as md5::Digest>::digest(&body);
        if !md5_matches(want, &crate::store::meta::hex(&digest)) {
            return Err(S3Error::new(
                400,
                "BadDigest",
                "The Content-MD5 you specified did not match what we received.",
            ));
        }
    }
    Ok(body.to_vec())
}

/// Refuses a write that asks for what objects here do not keep: an object ACL other than its
/// bucket's (`x-amz-acl`, [`policy::object_acl_granted`]) or tags (a non-empty
/// `x-amz-tagging`): 501, never a success that grants or keeps nothing.
pub fn refuse_unkept(req: &Request<'_>, bucket: &Bucket) -> Result<(), S3Error> {
    if req
        .head
        .header_str("x-amz-tagging")
        .is_some_and(|t| !t.trim().is_empty())
    {
        return Err(S3Error::not_implemented(
            "Object tags (x-amz-tagging: this server keeps no tags)",
        ));
    }
    let acl = req.head.header_str("x-amz-acl");
    if policy::object_acl_granted(acl, bucket.public_read) {
        return Ok(());
    }
    Err(S3Error::not_implemented(&format!(
        "The object ACL \"{}\" (objects have their bucket's ACL: create the bucket with x-amz-acl: public-read for public objects)",
        acl.unwrap_or_default()
    )))
}

/// The bucket of the request, or NoSuchBucket.
pub async fn existing(w: &Worker, r: &S3Request) -> Result<Bucket, S3Error> {
    // The registry is cached after its first read: a lookup is a directory stat.
    buckets::get(w.dir(), &r.bucket).map_err(|e| S3Error::from(e).on(format!("/{}", r.bucket)))
}

/// The ETag of a record: the S3 one, else its md5 (the content's, with dedup on).
pub fn etag_of(info: &FileInfo) -> String {
    etag_ref(info).to_string()
}

/// [`etag_of`], borrowed.
pub fn etag_ref(info: &FileInfo) -> &str {
    info.etag()
}

/// Last-Modified of a record, unix milliseconds.
pub fn modified_ms(info: &FileInfo) -> i64 {
    match &info.s3 {
        Some(a) if a.modified_ms > 0 => a.modified_ms,
        _ => info.time_stamp * 1000,
    }
}
