//! Multipart uploads: CreateMultipartUpload, UploadPart, CompleteMultipartUpload,
//! AbortMultipartUpload, ListParts, ListMultipartUploads. An upload lives in the internal
//! directory `files/_s3/uploads/<upload id>/` (never served; kept across restarts so a client
//! can resume): `upload.json` (bucket, key, attributes) and one durable file per part,
//! `<part number:05>-<md5 hex>` (the part's ETag is in its name, so a part and its ETag appear
//! together with one rename). Completion concatenates the parts into a temp file through the
//! durable write path and stores it like a PUT; the ETag is S3's `<md5 of the parts' md5s>-N`.
//! An upload created with a checksum algorithm keeps each part's checksum in the part's name
//! too (`<number:05>-<md5 hex>-<digest hex>`), and its object gets S3's composite or
//! full-object checksum (`composite.rs`).

use super::chunked::{Checksum, ChecksumAlgorithm};
use super::composite::{self, ChecksumType};
use super::error::S3Error;
use super::policy::Action;
use super::request::{iso_time, xml_response, S3Request, XMLNS};
use super::store::{
    append_file, attrs_of, blocking, etag_of, existing, place, read_small_body, receive,
    refuse_unknown_checksums, set_checksum_headers, store, KeptPart, PUT_BYTES_MAX,
};
use super::xml::escape;
use crate::http::{Request, Response};
use crate::json::S3Attrs;
use crate::store::write::{TempFile, Written};
use crate::worker::Worker;
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Part numbers are 1..=10000; every part but the last holds at least 5 MiB (S3's rules).
const PARTS_MAX: u32 = 10_000;
const PART_BYTES_MIN: u64 = 5 << 20;
/// Largest CompleteMultipartUpload document.
const COMPLETE_BODY_BYTES_MAX: u64 = 4 << 20;
/// Uploads listed per ListMultipartUploads page, parts per ListParts page.
const LIST_MAX: usize = 1000;
/// Pending uploads one credential may hold; more creations are refused until some finish.
pub const UPLOADS_PER_KEY_MAX: usize = 1000;
/// Per access key, held by a creation while it counts the key's pending uploads and puts its
/// own record in place (never across an fsync; one key's creations never wait on
/// another's). Keys are the configured ones: the map stays small.
static CREATING: std::sync::Mutex<BTreeMap<String, Arc<std::sync::Mutex<()>>>> =
    std::sync::Mutex::new(BTreeMap::new());

/// The creation lock of the key `owner` ([`CREATING`]).
fn creating(owner: &str) -> Arc<std::sync::Mutex<()>> {
    let mut locks = CREATING.lock().unwrap_or_else(|p| p.into_inner());
    locks.entry(owner.to_string()).or_default().clone()
}
/// A pending upload untouched this long is removed by the sweep (S3's lifecycle rule
/// AbortIncompleteMultipartUpload, fixed here): seven days.
pub const UPLOAD_LIFETIME_S: i64 = 7 * 24 * 3600;
/// How often the sweep runs.
const SWEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Upload {
    bucket: String,
    key: String,
    initiated_ms: i64,
    attrs: S3Attrs,
    /// The access key that created it (its uploads are bounded).
    #[serde(default)]
    owner: String,
    /// The checksum algorithm it was created with (S3's name) and the type of its object's
    /// checksum (`COMPOSITE`, `FULL_OBJECT`); empty for none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    checksum_algorithm: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    checksum_type: String,
}

impl Upload {
    /// The checksum its parts and its object get, if it was created with one.
    fn checksum(&self) -> Option<(ChecksumAlgorithm, ChecksumType)> {
        Some((
            ChecksumAlgorithm::from_name(&self.checksum_algorithm)?,
            ChecksumType::from_name(&self.checksum_type)?,
        ))
    }
}

/// The checksum CreateMultipartUpload asks for (`x-amz-checksum-algorithm`, and
/// `x-amz-checksum-type`, by default COMPOSITE, FULL_OBJECT for CRC64NVME): a type without an
/// algorithm, or one S3 does not make with it, is `InvalidRequest`.
fn checksum_asked(req: &Request<'_>) -> Result<Option<(ChecksumAlgorithm, ChecksumType)>, S3Error> {
    let header = |name: &str| req.head.header_str(name).map(str::trim);
    let algorithm = match header("x-amz-checksum-algorithm") {
        None => None,
        Some(v) => Some(ChecksumAlgorithm::from_name(v).ok_or_else(|| {
            S3Error::invalid_request("Checksum algorithm provided is unsupported.")
        })?),
    };
    let kind = match header("x-amz-checksum-type") {
        None => None,
        Some(v) => Some(ChecksumType::from_name(v).ok_or_else(|| {
            S3Error::invalid_request("Value for x-amz-checksum-type header is invalid.")
        })?),
    };
    match (algorithm, kind) {
        (None, None) => Ok(None),
        (None, Some(_)) => Err(S3Error::invalid_request(
            "The x-amz-checksum-type header can only be used with the x-amz-checksum-algorithm header.",
        )),
        (Some(a), kind) => {
            let kind = kind.unwrap_or_else(|| ChecksumType::default_for(a));
            if !kind.works_with(a) {
                return Err(S3Error::invalid_request(format!(
                    "The {} checksum type cannot be used with the {} checksum algorithm.",
                    kind.name(),
                    a.name().to_ascii_lowercase()
                )));
            }
            Ok(Some((a, kind)))
        }
    }
}

fn uploads_dir(root: &Path) -> PathBuf {
    root.join("files").join("_s3").join("uploads")
}

/// An upload id is 32 hex digits (checked before it names a directory).
fn upload_dir(root: &Path, id: &str) -> Option<PathBuf> {
    (id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| uploads_dir(root).join(id))
}

fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

/// The upload named by `uploadId`, which must be for this bucket and key.
async fn load(w: &Worker, r: &S3Request) -> Result<(PathBuf, Upload), S3Error> {
    let id = r.param("uploadId").unwrap_or("");
    let dir = upload_dir(w.dir(), id).ok_or_else(|| S3Error::no_such_upload().on(r.resource()))?;
    let file = dir.join("upload.json");
    let text = blocking(move || std::fs::read(file)).await;
    let up: Upload = text
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .ok_or_else(|| S3Error::no_such_upload().on(r.resource()))?;
    if up.bucket != r.bucket || up.key != r.key {
        return Err(S3Error::no_such_upload().on(r.resource()));
    }
    Ok((dir, up))
}

/// CreateMultipartUpload with the request's headers (content type, `x-amz-meta-*`).
pub async fn create(w: &Worker, req: &Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    let bucket = existing(w, r).await?;
    r.require(Action::Write, false)?;
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    super::store::refuse_unkept(req, &bucket)?;
    place(r, &r.key)?;
    refuse_unknown_checksums(req)?;
    let checksum = checksum_asked(req)?;
    let owner = r
        .key_used()
        .map(|k| k.access_key_id.clone())
        .unwrap_or_default();
    let id = crate::codec::random_hex(16);
    let up = Upload {
        bucket: r.bucket.clone(),
        key: r.key.clone(),
        initiated_ms: chrono::Utc::now().timestamp_millis(),
        attrs: attrs_of(req)?,
        owner,
        checksum_algorithm: checksum.map_or(String::new(), |(a, _)| a.name().to_string()),
        checksum_type: checksum.map_or(String::new(), |(_, t)| t.name().to_string()),
    };
    let dir = upload_dir(w.dir(), &id).expect("a generated id is valid");
    let text = serde_json::to_vec(&up).expect("plain data serializes");
    let root = w.dir().to_path_buf();
    let created = blocking(move || -> std::io::Result<bool> {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join("upload.json.tmp");
        {
            use std::io::Write;
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_all()?;
        }
        {
            // Counted and put in place together: creations sent at once cannot each see
            // room for one more and all take it (a directory without its record yet is
            // no pending upload).
            let lock = creating(&up.owner);
            let creating = lock.lock().unwrap_or_else(|p| p.into_inner());
            let all = all_uploads(&root)?;
            if all.iter().filter(|(_, u)| u.owner == up.owner).count() >= UPLOADS_PER_KEY_MAX {
                drop(creating);
                std::fs::remove_dir_all(&dir)?;
                return Ok(false);
            }
            std::fs::rename(&tmp, dir.join("upload.json"))?;
        }
        sync_dir(&dir)?;
        let parent = dir.parent().expect("uploads dir");
        sync_dir(parent)?;
        sync_dir(parent.parent().expect("_s3"))?;
        Ok(true)
    })
    .await?;
    if !created {
        return Err(S3Error::invalid_request(format!(
            "This access key has {UPLOADS_PER_KEY_MAX} multipart uploads pending: complete or abort some first."
        )));
    }
    let mut resp = xml_response(
        200,
        format!(
            "<InitiateMultipartUploadResult xmlns=\"{XMLNS}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{id}</UploadId></InitiateMultipartUploadResult>",
            escape(&r.bucket),
            escape(&r.key)
        ),
    );
    if let Some((algorithm, kind)) = checksum {
        resp.set("x-amz-checksum-algorithm", algorithm.name());
        resp.set("x-amz-checksum-type", kind.name());
    }
    Ok(resp)
}

/// A stored part: number, ETag (md5 hex), size, path, and the hex digest of its checksum
/// (of its upload's algorithm) when it was kept with one.
#[derive(Debug, Clone)]
struct Part {
    number: u32,
    etag: String,
    size: u64,
    modified: i64,
    path: PathBuf,
    checksum_hex: Option<String>,
}

impl Part {
    /// Its checksum of `algorithm`, if it was kept with one.
    fn checksum(&self, algorithm: ChecksumAlgorithm) -> Option<Checksum> {
        composite::from_hex(algorithm, self.checksum_hex.as_deref()?)
    }
}

/// Every part file of an upload, by number (the newest file of a number first).
fn parts_of(dir: &Path) -> std::io::Result<Vec<Part>> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        let Some((n, rest)) = name.split_once('-') else {
            continue;
        };
        let (etag, checksum_hex) = match rest.split_once('-') {
            Some((etag, sum)) => (etag, Some(sum.to_string())),
            None => (rest, None),
        };
        let (Ok(number), true) = (n.parse::<u32>(), etag.len() == 32) else {
            continue;
        };
        let m = match entry.metadata() {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue, // replaced meanwhile
            m => m?,
        };
        out.push(Part {
            number,
            etag: etag.to_string(),
            size: m.len(),
            modified: crate::store::mtime_secs(&m),
            path: entry.path(),
            checksum_hex,
        });
    }
    out.sort_by(|a, b| a.number.cmp(&b.number).then(b.modified.cmp(&a.modified)));
    Ok(out)
}

pub async fn upload_part(
    w: &Worker,
    req: &mut Request<'_>,
    r: &S3Request,
) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    let number: u32 = r
        .param("partNumber")
        .and_then(|n| n.parse().ok())
        .filter(|n| (1..=PARTS_MAX).contains(n))
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "Part number must be an integer between 1 and 10000, inclusive",
            )
        })?;
    let (dir, up) = load(w, r).await?;
    if req.head.header("x-amz-copy-source").is_some() {
        return upload_part_copy(w, req, r, &dir, number, &up).await;
    }
    let (written, sent) = receive(w, req, r, PUT_BYTES_MAX).await?;
    let kept = match part_checksum(&up, sent.as_ref(), &written).await {
        Ok(kept) => kept,
        Err(e) => {
            crate::store::write::discard(written).await;
            return Err(e);
        }
    };
    let etag = written.digest.clone();
    keep_part(&dir, number, written, kept.as_ref()).await?;
    let mut resp = Response::new(200);
    resp.set("ETag", format!("\"{etag}\""));
    if let Some(c) = kept.as_ref().or(sent.as_ref()) {
        set_checksum_headers(&mut resp, c, false);
    }
    Ok(resp)
}

/// The checksum a part is kept with, in an upload created with an algorithm: the one the
/// client sent (verified), else computed here from the received bytes; a checksum of another
/// algorithm is `InvalidRequest`, as S3 answers. None in an upload created without one.
async fn part_checksum(
    up: &Upload,
    sent: Option<&Checksum>,
    written: &Written,
) -> Result<Option<Checksum>, S3Error> {
    let Some((algorithm, _)) = up.checksum() else {
        return Ok(None);
    };
    match sent {
        Some(c) if c.algorithm == algorithm => Ok(Some(c.clone())),
        Some(c) => Err(S3Error::invalid_request(format!(
            "Checksum Type mismatch occurred, expected checksum Type: {}, actual checksum Type: {}",
            algorithm.name().to_ascii_lowercase(),
            c.algorithm.name().to_ascii_lowercase()
        ))),
        None => {
            let path = written.tmp.clone();
            Ok(Some(
                blocking(move || composite::of_file(algorithm, &path)).await?,
            ))
        }
    }
}

/// UploadPartCopy: part `number` is the source object's bytes, all of them or the
/// `x-amz-copy-source-range` (`bytes=first-last`, within the object).
async fn upload_part_copy(
    w: &Worker,
    req: &mut Request<'_>,
    r: &S3Request,
    dir: &Path,
    number: u32,
    up: &Upload,
) -> Result<Response, S3Error> {
    let (src_req, info) = super::object::copy_source(w, req, r).await?;
    let size = info.size.max(0) as u64;
    let (offset, len) = match req.head.header_str("x-amz-copy-source-range") {
        None => (0, size),
        Some(v) => copy_range(v, size)?,
    };
    if len > PUT_BYTES_MAX {
        return Err(S3Error::invalid_request(
            "The specified copy source is larger than the maximum allowable size for a copy source: 5368709120",
        ));
    }
    // The request body of a copy is empty.
    let _ = req.read_to_end(0).await?;
    let share = w.space_share(req);
    let written =
        super::store::copy_to_temp(w, &src_req, &info, Some((offset, len)), share).await?;
    let kept = match part_checksum(up, None, &written).await {
        Ok(kept) => kept,
        Err(e) => {
            crate::store::write::discard(written).await;
            return Err(e);
        }
    };
    let etag = written.digest.clone();
    keep_part(dir, number, written, kept.as_ref()).await?;
    let sum = kept.map_or(String::new(), |c| {
        let name = c.algorithm.xml_name();
        format!("<{name}>{}</{name}>", c.value)
    });
    Ok(xml_response(
        200,
        format!(
            "<CopyPartResult xmlns=\"{XMLNS}\"><LastModified>{}</LastModified><ETag>&quot;{etag}&quot;</ETag>{sum}</CopyPartResult>",
            iso_time(chrono::Utc::now().timestamp_millis())
        ),
    ))
}

/// `x-amz-copy-source-range: bytes=first-last` of an object of `size` bytes: (offset, length).
fn copy_range(v: &str, size: u64) -> Result<(u64, u64), S3Error> {
    let (first, last) = v
        .trim()
        .strip_prefix("bytes=")
        .and_then(|r| r.split_once('-'))
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .filter(|(a, b)| a <= b)
        .ok_or_else(|| {
            S3Error::invalid_argument(
                "The x-amz-copy-source-range value must be of the form bytes=first-last where first and last are the zero-based offsets of the first and last bytes to copy",
            )
        })?;
    if last >= size {
        return Err(S3Error::new(
            416,
            "InvalidRange",
            "The requested range is not satisfiable",
        ));
    }
    Ok((first, last - first + 1))
}

/// Held across a part's rename into place and the removal of the older files of its number
/// (never across an fsync).
static PART_SWAP: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Moves a received part into the upload's directory as part `number` (replacing an older
/// one of that number; of two sent at once, the last moved), durably, with its checksum in
/// its name.
async fn keep_part(
    dir: &Path,
    number: u32,
    written: Written,
    checksum: Option<&Checksum>,
) -> Result<(), S3Error> {
    let etag = written.digest.clone();
    let name = match checksum {
        Some(c) => format!("{number:05}-{etag}-{}", composite::to_hex(c)),
        None => format!("{number:05}-{etag}"),
    };
    let (tmp, target) = (written.tmp.clone(), dir.join(name));
    let moved = blocking(move || -> std::io::Result<bool> {
        let dir = target.parent().expect("upload dir");
        {
            // Older files of this part number are replaced. The rename and the removal of
            // the others go together: two parts of one number kept at once would each
            // remove the other, and both answer 200 with neither kept. An upload removed
            // meanwhile (`remove_upload` takes its record away under this lock) keeps no
            // part.
            let _swap = PART_SWAP.lock().unwrap_or_else(|p| p.into_inner());
            if !dir.join("upload.json").exists() {
                return Ok(false);
            }
            std::fs::rename(&tmp, &target)?;
            for p in parts_of(dir)? {
                if p.number == number && p.path != target {
                    let _ = std::fs::remove_file(&p.path);
                }
            }
        }
        sync_dir(dir).map(|()| true)
    })
    .await;
    match moved {
        Ok(true) => {
            written.moved();
            Ok(())
        }
        Ok(false) => {
            crate::store::write::discard(written).await;
            Err(S3Error::no_such_upload())
        }
        Err(e) => {
            crate::store::write::discard(written).await;
            Err(e.into())
        }
    }
}

pub async fn complete(
    w: &Worker,
    req: &mut Request<'_>,
    r: &S3Request,
) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    let expect = super::store::write_condition(req)?;
    let (dir, up) = load(w, r).await?;
    let body = read_small_body(req, r, COMPLETE_BODY_BYTES_MAX).await?;
    let asked = parts_asked(&body)?;
    let chosen = choose_parts(r, &dir, &asked).await;
    let (chosen, total) = or_gone(&dir, chosen).await?;
    // The object is a copy of its parts: refused up front when it would not fit, or would
    // take the client past its share of the space (as a PUT of it would).
    let claim = crate::store::space::admit_as(w.dir(), total, w.space_share(req)).await?;
    let checksum = object_checksum(req, &up, &asked, &chosen).await?;
    let (odir, name) = place(r, &up.key)?;
    let written = or_gone(&dir, concatenate(w, &chosen, total, claim).await).await?;
    let mut attrs = up.attrs.clone();
    attrs.etag = multipart_etag(&chosen);
    let mut sum = String::new();
    if let Some((c, kind, parts)) = &checksum {
        attrs.checksum_algorithm = c.algorithm.name().to_string();
        attrs.checksum = c.value.clone();
        if *kind == ChecksumType::Composite {
            attrs.checksum_type = kind.name().to_string();
        }
        attrs.parts = super::store::encode_parts(parts);
        let name = c.algorithm.xml_name();
        sum = format!(
            "<{name}>{}</{name}><ChecksumType>{}</ChecksumType>",
            c.value,
            kind.name()
        );
    }
    let info = store(w, r, odir, name, written, attrs, expect).await?;
    blocking(move || remove_upload(&dir)).await.ok();
    let location = format!("{}/{}/{}", r.cfg.host, r.bucket, r.key);
    Ok(xml_response(
        200,
        format!(
            "<CompleteMultipartUploadResult xmlns=\"{XMLNS}\"><Location>{}</Location><Bucket>{}</Bucket><Key>{}</Key><ETag>&quot;{}&quot;</ETag>{sum}</CompleteMultipartUploadResult>",
            escape(&location),
            escape(&r.bucket),
            escape(&r.key),
            escape(&etag_of(&info))
        ),
    ))
}

/// The completed object's checksum, its type and its parts (with their checksums), for an
/// upload created with an algorithm:
/// made from the parts' kept checksums (computed now for a part kept without one), each of
/// which must be the one the completion names for it, if it names one (`InvalidPart`); the
/// completion's type, if it says one, must be the upload's (`InvalidRequest`), and a
/// full-object checksum it sends (`x-amz-checksum-<name>`) the object's (`BadDigest`).
async fn object_checksum(
    req: &Request<'_>,
    up: &Upload,
    asked: &[Asked],
    chosen: &[Part],
) -> Result<Option<(Checksum, ChecksumType, Vec<KeptPart>)>, S3Error> {
    let Some((algorithm, kind)) = up.checksum() else {
        return Ok(None);
    };
    if let Some(t) = req.head.header_str("x-amz-checksum-type") {
        if ChecksumType::from_name(t) != Some(kind) {
            return Err(S3Error::invalid_request(format!(
                "The upload was created using the {} checksum mode. The complete request must use the same checksum mode.",
                kind.name()
            )));
        }
    }
    let mut sums = Vec::with_capacity(chosen.len());
    for (part, ask) in chosen.iter().zip(asked) {
        let sum = match part.checksum(algorithm) {
            Some(c) => c,
            None => {
                let path = part.path.clone();
                blocking(move || composite::of_file(algorithm, &path)).await?
            }
        };
        if ask
            .checksums
            .iter()
            .any(|(a, v)| *a != algorithm || v.trim() != sum.value)
        {
            return Err(invalid_part());
        }
        sums.push((sum, part.size));
    }
    let kept = chosen
        .iter()
        .zip(&sums)
        .map(|(part, (sum, size))| KeptPart {
            number: part.number,
            size: *size,
            checksum: sum.value.clone(),
        })
        .collect();
    let whole = match kind {
        ChecksumType::Composite => {
            let parts: Vec<Checksum> = sums.into_iter().map(|(c, _)| c).collect();
            composite::composite(algorithm, &parts)
        }
        ChecksumType::FullObject => composite::full_object(algorithm, &sums)
            .ok_or_else(|| S3Error::invalid_request("FULL_OBJECT is only made of CRCs."))?,
    };
    if let Some(sent) = req.head.header_str(algorithm.header_name()) {
        if kind == ChecksumType::FullObject && sent.trim() != whole.value {
            return Err(S3Error::new(
                400,
                "BadDigest",
                format!(
                    "The {} you specified did not match the calculated checksum.",
                    algorithm.name().to_ascii_lowercase()
                ),
            ));
        }
    }
    Ok(Some((whole, kind, kept)))
}

/// `result`, or NoSuchUpload when it is `InvalidPart` because the upload in `dir` is gone
/// meanwhile (completed or aborted by another request while this one read its parts).
async fn or_gone<T>(dir: &Path, result: Result<T, S3Error>) -> Result<T, S3Error> {
    match result {
        Err(e) if e.code == "InvalidPart" => {
            let record = dir.join("upload.json");
            if blocking(move || record.exists()).await {
                Err(e)
            } else {
                Err(S3Error::no_such_upload())
            }
        }
        other => other,
    }
}

fn invalid_part() -> S3Error {
    S3Error::new(
        400,
        "InvalidPart",
        "One or more of the specified parts could not be found. The part may not have been uploaded, or the specified entity tag may not match the part's entity tag.",
    )
}

/// A part a CompleteMultipartUpload document names: its number, ETag (unquoted, lower case)
/// and the checksums it gives for it.
struct Asked {
    number: u32,
    etag: String,
    checksums: Vec<(ChecksumAlgorithm, String)>,
}

/// The parts a CompleteMultipartUpload document names: at least one, in ascending order of
/// number.
fn parts_asked(body: &[u8]) -> Result<Vec<Asked>, S3Error> {
    let doc = std::str::from_utf8(body).map_err(|_| S3Error::malformed_xml())?;
    let mut asked: Vec<Asked> = Vec::new();
    for p in super::xml::elements(doc, "Part") {
        let number = super::xml::text_of(p, "PartNumber")
            .and_then(|n| n.parse::<u32>().ok())
            .ok_or_else(S3Error::malformed_xml)?;
        let etag = super::xml::text_of(p, "ETag").ok_or_else(S3Error::malformed_xml)?;
        let checksums = ChecksumAlgorithm::ALL
            .into_iter()
            .filter_map(|a| Some((a, super::xml::text_of(p, &a.xml_name())?)))
            .collect();
        asked.push(Asked {
            number,
            etag: etag.trim().trim_matches('"').to_ascii_lowercase(),
            checksums,
        });
    }
    if asked.is_empty() {
        return Err(S3Error::malformed_xml());
    }
    if asked.windows(2).any(|p| p[0].number >= p[1].number) {
        return Err(S3Error::new(
            400,
            "InvalidPartOrder",
            "The list of parts was not in ascending order. The parts list must be specified in order by part number.",
        ));
    }
    Ok(asked)
}

/// The stored parts of the upload in `dir` that `asked` names, and their total size: each
/// must exist with its ETag, all but the last be at least [`PART_BYTES_MIN`] and the whole
/// fit the upload limit.
async fn choose_parts(
    r: &S3Request,
    dir: &Path,
    asked: &[Asked],
) -> Result<(Vec<Part>, u64), S3Error> {
    let d = dir.to_path_buf();
    // A directory gone meanwhile has none of the parts (`or_gone` tells why).
    let stored = match blocking(move || parts_of(&d)).await {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(invalid_part()),
        stored => stored?,
    };
    // Every part named must exist before sizes count (S3 reports a missing one first).
    let chosen = match_parts(&stored, asked)?;
    if chosen[..chosen.len() - 1]
        .iter()
        .any(|p| p.size < PART_BYTES_MIN)
    {
        return Err(S3Error::new(
            400,
            "EntityTooSmall",
            "Your proposed upload is smaller than the minimum allowed object size.",
        ));
    }
    let total: u64 = chosen.iter().map(|p| p.size).sum();
    if r.cfg.upload_max_bytes > 0 && total > r.cfg.upload_max_bytes {
        return Err(S3Error::new(
            400,
            "EntityTooLarge",
            "Your proposed upload exceeds the maximum allowed size.",
        ));
    }
    Ok((chosen, total))
}

/// The stored part each of `asked` names, in `asked`'s order: the newest file of its number
/// with its ETag (`stored` is ordered as `parts_of` orders it), else `InvalidPart`. One
/// lookup per part named (an upload may have 10,000 parts).
fn match_parts(stored: &[Part], asked: &[Asked]) -> Result<Vec<Part>, S3Error> {
    let mut by_key: HashMap<(u32, &str), &Part> = HashMap::with_capacity(stored.len());
    for p in stored {
        by_key.entry((p.number, p.etag.as_str())).or_insert(p);
    }
    asked
        .iter()
        .map(|a| {
            by_key
                .get(&(a.number, a.etag.as_str()))
                .map(|p| (*p).clone())
                .ok_or_else(invalid_part)
        })
        .collect()
}

/// The `chosen` parts (`total` bytes, `claim`ed) copied in order into one durable temp file.
async fn concatenate(
    w: &Worker,
    chosen: &[Part],
    total: u64,
    claim: crate::store::space::Claim,
) -> Result<Written, S3Error> {
    let mut tmp = TempFile::create(w.dir(), false, total).await?;
    tmp.claim(claim);
    for p in chosen {
        if let Err(e) = append_file(&p.path, &mut tmp).await {
            drop(tmp);
            // Replaced, or its upload completed or aborted, since it was chosen.
            return Err(match e.kind() {
                std::io::ErrorKind::NotFound => invalid_part(),
                _ => e.into(),
            });
        }
    }
    Ok(tmp.finish().await?)
}

/// A multipart object's ETag, as S3 makes it: the md5 of its parts' md5s, then `-` and the
/// number of parts.
fn multipart_etag(chosen: &[Part]) -> String {
    let mut md5s = Vec::with_capacity(chosen.len() * 16);
    for p in chosen {
        md5s.extend_from_slice(&hex_bytes(&p.etag));
    }
    format!(
        "{}-{}",
        crate::store::meta::hex(&<md5::Md5 as md5::Digest>::digest(&md5s)),
        chosen.len()
    )
}

fn hex_bytes(hex: &str) -> Vec<u8> {
    (0..hex.len() / 2)
        .filter_map(|i| u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

pub async fn abort(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    let (dir, _) = load(w, r).await?;
    if !blocking(move || remove_upload(&dir)).await? {
        return Err(S3Error::no_such_upload().on(r.resource()));
    }
    Ok(Response::new(204))
}

/// Removes the upload in `dir`: its record first (from then on it is gone for every request,
/// and a completion still reading its parts answers NoSuchUpload, `or_gone`), then the rest.
/// False when another request removed the record first.
fn remove_upload(dir: &Path) -> std::io::Result<bool> {
    let gone = |e: &std::io::Error| e.kind() == std::io::ErrorKind::NotFound;
    {
        // Parts being kept check the record under this lock: none is renamed in after it.
        let _swap = PART_SWAP.lock().unwrap_or_else(|p| p.into_inner());
        match std::fs::remove_file(dir.join("upload.json")) {
            Err(e) if gone(&e) => return Ok(false),
            removed => removed?,
        }
    }
    match std::fs::remove_dir_all(dir) {
        Err(e) if gone(&e) => Ok(true),
        removed => removed.map(|()| true),
    }
}

pub async fn list_parts(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    let (dir, up) = load(w, r).await?;
    let after: u32 = r
        .param("part-number-marker")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let max = r
        .param("max-parts")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(LIST_MAX)
        .min(LIST_MAX);
    let mut parts = blocking(move || parts_of(&dir)).await?;
    parts.dedup_by_key(|p| p.number);
    let (page, truncated) = super::xml::page_after(&parts, |p: &Part| p.number, after, max);
    let mut body = format!(
        "<ListPartsResult xmlns=\"{XMLNS}\"><Bucket>{}</Bucket><Key>{}</Key><UploadId>{}</UploadId><PartNumberMarker>{after}</PartNumberMarker>",
        escape(&r.bucket),
        escape(&r.key),
        escape(r.param("uploadId").unwrap_or(""))
    );
    super::xml::push_part_paging(&mut body, page.last().map(|p| p.number), max, truncated);
    body.push_str("<StorageClass>STANDARD</StorageClass>");
    let checksum = up.checksum();
    if let Some((algorithm, kind)) = checksum {
        body.push_str(&format!(
            "<ChecksumAlgorithm>{}</ChecksumAlgorithm><ChecksumType>{}</ChecksumType>",
            algorithm.name(),
            kind.name()
        ));
    }
    for p in page {
        let sum = checksum
            .and_then(|(algorithm, _)| p.checksum(algorithm))
            .map_or(String::new(), |c| {
                let name = c.algorithm.xml_name();
                format!("<{name}>{}</{name}>", c.value)
            });
        body.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><LastModified>{}</LastModified><ETag>&quot;{}&quot;</ETag><Size>{}</Size>{sum}</Part>",
            p.number,
            iso_time(p.modified * 1000),
            p.etag,
            p.size
        ));
    }
    body.push_str("</ListPartsResult>");
    Ok(xml_response(200, body))
}

/// Every pending upload: (id, upload).
fn all_uploads(root: &Path) -> std::io::Result<Vec<(String, Upload)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(uploads_dir(root)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(id) = entry.file_name().into_string() else {
            continue;
        };
        let Ok(text) = std::fs::read(entry.path().join("upload.json")) else {
            continue;
        };
        if let Ok(up) = serde_json::from_slice::<Upload>(&text) {
            out.push((id, up));
        }
    }
    Ok(out)
}

/// Whether an upload into `bucket` is pending.
pub async fn pending_in(w: &Worker, bucket: &str) -> Result<bool, S3Error> {
    let (root, bucket) = (w.dir().to_path_buf(), bucket.to_string());
    let all = blocking(move || all_uploads(&root)).await?;
    Ok(all.iter().any(|(_, u)| u.bucket == bucket))
}

pub async fn list_uploads(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    let root = w.dir().to_path_buf();
    let mut all = blocking(move || all_uploads(&root)).await?;
    let prefix = r.param("prefix").unwrap_or("").to_string();
    all.retain(|(_, u)| u.bucket == r.bucket && u.key.starts_with(&prefix));
    all.sort_by(|a, b| (&a.1.key, a.1.initiated_ms).cmp(&(&b.1.key, b.1.initiated_ms)));
    let key_marker = r.param("key-marker").unwrap_or("");
    all.retain(|(_, u)| u.key.as_str() > key_marker || key_marker.is_empty());
    let max = r
        .param("max-uploads")
        .and_then(|n| n.parse::<usize>().ok())
        .unwrap_or(LIST_MAX)
        .min(LIST_MAX);
    let truncated = all.len() > max;
    all.truncate(max);
    let mut body = format!(
        "<ListMultipartUploadsResult xmlns=\"{XMLNS}\"><Bucket>{}</Bucket><KeyMarker>{}</KeyMarker><UploadIdMarker></UploadIdMarker><Prefix>{}</Prefix><MaxUploads>{max}</MaxUploads><IsTruncated>{truncated}</IsTruncated>",
        escape(&r.bucket),
        escape(key_marker),
        escape(&prefix)
    );
    if truncated {
        if let Some((id, u)) = all.last() {
            body.push_str(&format!(
                "<NextKeyMarker>{}</NextKeyMarker><NextUploadIdMarker>{id}</NextUploadIdMarker>",
                escape(&u.key)
            ));
        }
    }
    for (id, u) in &all {
        body.push_str(&format!(
            "<Upload><Key>{}</Key><UploadId>{id}</UploadId><Initiated>{}</Initiated><StorageClass>STANDARD</StorageClass></Upload>",
            escape(&u.key),
            iso_time(u.initiated_ms)
        ));
    }
    body.push_str("</ListMultipartUploadsResult>");
    Ok(xml_response(200, body))
}

/// Removes pending uploads whose newest file (the upload or a part) is older than `lifetime`
/// seconds; returns how many. Blocking.
pub fn sweep(root: &Path, now: i64, lifetime: i64) -> std::io::Result<usize> {
    let mut removed = 0;
    let entries = match std::fs::read_dir(uploads_dir(root)) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let dir = entry?.path();
        let mut newest = std::fs::metadata(&dir).map_or(0, |m| crate::store::mtime_secs(&m));
        for f in std::fs::read_dir(&dir)?.flatten() {
            if let Ok(m) = f.metadata() {
                newest = newest.max(crate::store::mtime_secs(&m));
            }
        }
        if now - newest > lifetime {
            std::fs::remove_dir_all(&dir)?;
            removed += 1;
        }
    }
    Ok(removed)
}

/// The expiry duty (executor 0): sweeps pending uploads every hour.
pub async fn expire_loop(w: std::rc::Rc<Worker>) {
    loop {
        let root = w.dir().to_path_buf();
        let now = chrono::Utc::now().timestamp();
        match blocking(move || sweep(&root, now, UPLOAD_LIFETIME_S)).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "s3: expired multipart uploads removed"),
            Err(e) => tracing::warn!(cause = %e, "s3: multipart expiry sweep failed"),
        }
        let wake = std::time::Instant::now() + SWEEP_EVERY;
        while std::time::Instant::now() < wake {
            if w.shutting_down() {
                return;
            }
            glommio::timer::sleep(std::time::Duration::from_secs(1)).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(number: u32, etag: &str, modified: i64) -> Part {
        Part {
            number,
            etag: etag.repeat(32),
            size: 1,
            modified,
            path: PathBuf::from(format!("{number}-{etag}-{modified}")),
            checksum_hex: None,
        }
    }

    fn ask(number: u32, etag: &str) -> Asked {
        Asked {
            number,
            etag: etag.repeat(32),
            checksums: Vec::new(),
        }
    }

    fn paths(chosen: Result<Vec<Part>, S3Error>) -> Vec<String> {
        let chosen = chosen.map_err(|e| e.code).unwrap();
        chosen
            .iter()
            .map(|p| p.path.display().to_string())
            .collect()
    }

    /// Each part named is the newest stored file of its number with its ETag, in the order
    /// named; a number not stored, or stored under another ETag, is `InvalidPart`.
    #[test]
    fn the_parts_a_completion_names_are_matched_by_number_and_etag() {
        // As `parts_of` orders them: by number, the newest file of a number first.
        let stored = [
            part(1, "a", 20),
            part(1, "a", 10),
            part(2, "c", 30),
            part(2, "b", 10),
            part(3, "d", 10),
        ];
        let asked = [ask(1, "a"), ask(2, "b"), ask(3, "d")];
        assert_eq!(
            paths(match_parts(&stored, &asked)),
            ["1-a-20", "2-b-10", "3-d-10"]
        );
        // Out of order or twice (which `parts_asked` refuses before): as named.
        let asked = [ask(3, "d"), ask(2, "c"), ask(3, "d")];
        assert_eq!(
            paths(match_parts(&stored, &asked)),
            ["3-d-10", "2-c-30", "3-d-10"]
        );
        for wrong in [ask(4, "d"), ask(1, "b"), ask(2, "d")] {
            let asked = [ask(1, "a"), wrong];
            let e = match_parts(&stored, &asked).expect_err("refused");
            assert_eq!(e.code, "InvalidPart");
        }
        assert!(match_parts(&[], &[ask(1, "a")]).is_err());
    }

    /// A completion must name its parts once each, in ascending order.
    #[test]
    fn a_completion_naming_parts_out_of_order_or_twice_is_refused() {
        let doc = |numbers: &[u32]| {
            let parts: String = numbers
                .iter()
                .map(|n| format!("<Part><PartNumber>{n}</PartNumber><ETag>\"x\"</ETag></Part>"))
                .collect();
            format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>")
        };
        assert_eq!(parts_asked(doc(&[1, 2, 5]).as_bytes()).unwrap().len(), 3);
        for bad in [&[2, 1][..], &[1, 1]] {
            let e = parts_asked(doc(bad).as_bytes()).err().expect("refused");
            assert_eq!(e.code, "InvalidPartOrder");
        }
    }

    #[test]
    fn the_sweep_removes_only_uploads_untouched_for_their_lifetime() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        for id in ["a", "b"] {
            let dir = uploads_dir(root).join(id);
            std::fs::create_dir_all(&dir).unwrap();
            std::fs::write(dir.join("upload.json"), b"{}").unwrap();
        }
        let now = chrono::Utc::now().timestamp();
        assert_eq!(sweep(root, now, 3600).unwrap(), 0, "fresh uploads stay");
        assert_eq!(sweep(root, now + 7200, 3600).unwrap(), 2, "old ones go");
        assert_eq!(std::fs::read_dir(uploads_dir(root)).unwrap().count(), 0);
        assert_eq!(sweep(&root.join("none"), now, 1).unwrap(), 0);
    }
}
