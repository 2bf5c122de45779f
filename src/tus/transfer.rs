//! Moving bytes: a PATCH (or creation-with-upload) body streamed into `<id>.bin` at the
//! upload's offset, 1 MiB io_uring writes, fdatasynced before the new offset is saved; and the
//! completion that turns a finished upload into an ordinary stored file through the same
//! `api::upload::{Target::place, commit}` as a multipart upload (dedup, record, rename into
//! the scene's directory).
//!
//! Memory per PATCH is bounded by the write buffer whatever the upload's size; the caller
//! holds the upload's `state::Lock`.

use super::protocol::{BodyDigest, Checksum};
use super::state::{self, Completed, Info};
use super::TusError;
use crate::json::FileInfo;
use crate::store::checkpoints::Checkpoints;
use crate::store::write::{Appender, Hasher, Written};
use crate::worker::Worker;
use std::io;
use std::path::Path;

/// The digest of a whole upload, and its md5 checkpoints when it is large enough to keep
/// them (`store::checkpoints`: kept with the stored file, so that peers check it in
/// segments).
pub struct WholeDigest {
    pub hex: String,
    pub checkpoints: Option<Checkpoints>,
}

impl WholeDigest {
    fn of(h: Hasher, size: u64) -> WholeDigest {
        let (hex, checkpoints) = h.finish(size);
        WholeDigest { hex, checkpoints }
    }
}

/// What one body brought.
pub struct Received {
    /// Position after the last durable byte of this body.
    pub end: u64,
    /// Digest of the whole upload, when this body carried all of it from offset 0.
    pub whole_digest: Option<WholeDigest>,
    /// Why the body ended early, if it did (the bytes up to `end` were kept, as tus asks).
    pub cut: Option<TusError>,
}

/// Most bytes the next body may carry: up to the upload's length, or (deferred length) up to
/// the tus size limit.
fn room(w: &Worker, info: &Info) -> u64 {
    match info.length {
        Some(length) => length - info.offset,
        None => w.config().tus_size_max().saturating_sub(info.offset),
    }
}

/// Streams the request body to the upload's data file at `info.offset`. With a checksum, a
/// body that does not match (or does not arrive whole) is discarded: nothing new is kept.
pub async fn receive(
    w: &Worker,
    req: &mut crate::http::Request<'_>,
    info: &Info,
    checksum: Option<Checksum>,
) -> Result<Received, TusError> {
    let room = room(w, info);
    if req.content_length().is_some_and(|n| n > room) {
        return Err(TusError::TooLarge);
    }
    let share = w.space_share(req);
    let claim = match req.content_length() {
        Some(n) => crate::store::space::admit_as(w.dir(), n, share).await?,
        None => crate::store::space::Claim::metered_as(w.dir(), share),
    };
    if room > 0 {
        // A chunk announced beyond the room is refused at once (`Request::chunk`).
        req.body_max = room;
    }
    let file = open_data(w, info).await?;
    let mut out = Appender::new(file, info.offset);
    out.claim(claim);
    let mut body_digest = checksum.as_ref().map(|c| BodyDigest::new(c.algorithm));
    let mut whole = (info.offset == 0).then(|| Hasher::new(w.config().use_sha1()));
    let (cut, received) = match write_body(req, &mut out, &mut body_digest, &mut whole, room).await
    {
        Ok(ended) => ended,
        Err(e) => {
            out.abandon().await;
            return Err(e);
        }
    };
    if let (Some(expected), Some(digest)) = (checksum, body_digest) {
        if let Some(cut) = cut {
            out.abandon().await;
            return Err(cut);
        }
        if !digest.matches(&expected) {
            out.abandon().await;
            return Err(TusError::ChecksumMismatch);
        }
    }
    let end = out.finish().await?;
    assert_eq!(
        end,
        info.offset + received,
        "every received byte was written"
    );
    let whole_digest = match whole {
        Some(h) if cut.is_none() && info.length == Some(end) => Some(WholeDigest::of(h, end)),
        _ => None,
    };
    Ok(Received {
        end,
        whole_digest,
        cut,
    })
}

/// The upload's data file, open for writing (gone: [`TusError::DataMissing`]).
async fn open_data(w: &Worker, info: &Info) -> Result<glommio::io::BufferedFile, TusError> {
    let path = state::data_path(w.dir(), &info.id);
    glommio::io::OpenOptions::new()
        .write(true)
        .buffered_open(&path)
        .await
        .map_err(|e| match io::Error::from(e) {
            e if e.kind() == io::ErrorKind::NotFound => TusError::DataMissing,
            e => e.into(),
        })
}

/// Writes the body's pieces to `out` (at most `room` bytes, else TooLarge), through the
/// body's and the whole upload's digests. Returns why the body ended early, if it did, and
/// how many bytes it brought; on an error the caller abandons `out` (nothing new is kept).
async fn write_body(
    req: &mut crate::http::Request<'_>,
    out: &mut Appender,
    body_digest: &mut Option<BodyDigest>,
    whole: &mut Option<Hasher>,
    room: u64,
) -> Result<(Option<TusError>, u64), TusError> {
    let mut received = 0u64;
    let cut = loop {
        let piece = match req.chunk().await {
            Ok(Some(piece)) => piece,
            Ok(None) => break None,
            Err(crate::http::BodyError::TooLarge(_)) => return Err(TusError::TooLarge),
            Err(e) => break Some(TusError::from(e)),
        };
        received += piece.len() as u64;
        if received > room {
            return Err(TusError::TooLarge);
        }
        if let Some(d) = body_digest.as_mut() {
            d.update(&piece);
        }
        if let Some(h) = whole.as_mut() {
            h.update(&piece);
        }
        out.write(&piece).await?;
    };
    Ok((cut, received))
}

/// Records what a body brought: completes the upload when it reached its length, else saves
/// the new offset. The offset is saved only after the data is durable (`receive` synced it)
/// and, at the end, only together with the completion: a failed completion leaves the
/// previous offset, so the client sends the last piece again.
pub async fn advance(
    w: &Worker,
    info: &mut Info,
    received: Received,
    length_declared: bool,
) -> Result<(), TusError> {
    assert!(received.end >= info.offset);
    // A partial upload, once whole, waits for the final upload that names it.
    let complete = info.completed.is_none()
        && info.length == Some(received.end)
        && info.concat != Some(super::protocol::Concat::Partial);
    if received.end == info.offset && !length_declared && !complete {
        return Ok(());
    }
    let mut next = info.clone();
    next.offset = received.end;
    next.expires = state::now() + super::lifetime_s(&w.config());
    let mut record = None;
    if complete {
        let (done, stored) = self::complete(w, &next, received.whole_digest).await?;
        next.completed = Some(done);
        record = Some(stored);
        crate::failpoint::hit("tus.completed");
    } else {
        crate::failpoint::hit("tus.data_synced");
    }
    state::save(w.dir(), &next).await?;
    *info = next;
    if let Some(record) = record {
        super::notify(w, info, &record);
    }
    Ok(())
}

/// Concatenation: makes the new final upload `info` (not yet saved) of the whole partial
/// uploads `parts` (id and length, in order; the caller holds their locks): their bytes are
/// copied into its data file, digested on the way, made durable, and the upload completes
/// like any other (stored file, record, `.info`). On failure nothing of it is left.
pub async fn concatenate(
    w: &Worker,
    info: &mut Info,
    parts: &[(String, u64)],
) -> Result<(), TusError> {
    let length = info.length.expect("a final upload's length is its parts'");
    let root = w.dir().to_path_buf();
    let sources: Vec<(std::path::PathBuf, u64)> = parts
        .iter()
        .map(|(id, len)| (state::data_path(&root, id), *len))
        .collect();
    let target = state::data_path(&root, &info.id);
    let sha1 = w.config().use_sha1();
    let joined = glommio::executor()
        .spawn_blocking(move || join(&sources, &target, sha1))
        .await;
    let made = match joined {
        Ok((digest, written)) => {
            assert_eq!(written, length, "the parts were whole");
            let received = Received {
                end: length,
                whole_digest: Some(digest),
                cut: None,
            };
            advance(w, info, received, false).await
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => Err(TusError::DataMissing),
        Err(e) => Err(e.into()),
    };
    if made.is_err() {
        let _ = state::remove(w.dir(), &info.id).await;
    }
    made
}

/// Blocking: writes the parts one after the other into a new file `target` (fdatasynced, its
/// directory fsynced); returns the digest of the whole and its length.
fn join(
    parts: &[(std::path::PathBuf, u64)],
    target: &Path,
    sha1: bool,
) -> io::Result<(WholeDigest, u64)> {
    use std::io::{Read, Write};
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(target)?;
    let mut hasher = Hasher::new(sha1);
    let mut buf = vec![0u8; 1 << 20];
    let mut written = 0u64;
    for (path, len) in parts {
        let mut part = std::fs::File::open(path)?.take(*len);
        let mut copied = 0u64;
        loop {
            let n = part.read(&mut buf)?;
            if n == 0 {
                break;
            }
            hasher.update(&buf[..n]);
            out.write_all(&buf[..n])?;
            copied += n as u64;
        }
        if copied != *len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "tus data file {} is shorter than its offset",
                    path.display()
                ),
            ));
        }
        written += copied;
    }
    out.sync_data()?;
    std::fs::File::open(target.parent().expect("data has a directory"))?.sync_all()?;
    Ok((WholeDigest::of(hasher, written), written))
}

/// Turns the upload's data file into a stored file exactly like a multipart upload.
/// Returns the record of the stored file (an earlier one of the same content on a dedup hit).
async fn complete(
    w: &Worker,
    info: &Info,
    digest: Option<WholeDigest>,
) -> Result<(Completed, FileInfo), TusError> {
    let cfg = w.config();
    let length = info.length.expect("completion needs a known length");
    assert_eq!(info.offset, length);
    let path = state::data_path(w.dir(), &info.id);
    let sha1 = cfg.use_sha1();
    let settle_path = path.clone();
    let WholeDigest {
        hex: digest,
        checkpoints,
    } = glommio::executor()
        .spawn_blocking(move || settle(&settle_path, length, digest, sha1))
        .await?;
    if let Some(c) = checkpoints {
        // An attribute of the data file: it goes with the rename into place.
        crate::store::write::save_checkpoints(&path, c).await;
    }
    // Recorded as go-fastdfs records a tus upload: `rename` names the stored file.
    let plan = info
        .target
        .place(&cfg, &digest, length, "")?
        .renamed_as_stored();
    let written = Written {
        tmp: path,
        digest,
        size: length,
    };
    // A failed completion keeps the data: the client resends the last piece and completes.
    let record =
        crate::placement::commit(w, plan, written, crate::placement::OnFailure::Keep).await?;
    let url = crate::placement::file_result(&cfg, &record).url;
    // The id keeps naming the file after the upload's state expires (go-fastdfs keeps it).
    let key = state::record_key(&info.id).expect("an upload's own id is valid");
    if let Err(e) = w.meta().alias(record.md5.clone(), key).await {
        tracing::warn!(id = %info.id, cause = %e, "the upload's id will be forgotten when it expires");
    }
    tracing::info!(id = %info.id, md5 = %record.md5, size = length, "tus upload completed");
    let done = Completed {
        md5: record.md5.clone(),
        url,
    };
    Ok((done, record))
}

/// Blocking: cuts unacknowledged bytes past `length` (a deferred length declared shorter than
/// a discarded body) and computes the digest when the PATCHes could not.
fn settle(
    path: &Path,
    length: u64,
    digest: Option<WholeDigest>,
    sha1: bool,
) -> io::Result<WholeDigest> {
    use std::io::Read;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(path)?;
    let size = file.metadata()?.len();
    if size < length {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!(
                "tus data file {} is shorter than its offset",
                path.display()
            ),
        ));
    }
    if size > length {
        file.set_len(length)?;
        file.sync_data()?;
    }
    if let Some(d) = digest {
        return Ok(d);
    }
    Ok(WholeDigest::of(
        Hasher::reading((&file).take(length), sha1)?,
        length,
    ))
}
