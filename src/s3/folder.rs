//! Folder markers: a key ending in `/` (`photos/2026/`), the empty object s3fs-fuse writes
//! for `mkdir` (and S3 consoles for "Create folder"). Here a bucket is a directory tree, so
//! a marker is what it stands for: the directory `files/<bucket>/photos/2026`, plus an entry
//! `files/<bucket>/photos/2026/` in the store's listing index (`store::meta::listing`), so
//! that listings show it where S3 lists its key (size 0, the empty ETag, the time of its
//! PUT). PutObject creates the directory (durably: each new entry's parent fsynced), then
//! commits the entry; Get/HeadObject answer an empty object while the entry or the directory
//! exists; DeleteObject (and DeleteObjects) removes the entry, then the directory when it is
//! empty. A directory that holds files is theirs too, so deleting its marker leaves it, as
//! deleting a marker in S3 leaves the keys under it. Only a marker's PUT makes an entry: any
//! other empty directory (one a go-fastdfs delete left, one made on disk) is not an S3
//! object, and is not listed.

use super::error::S3Error;
use super::policy::{self, Action};
use super::request::S3Request;
use super::store::{
    blocking, existing, receive, refuse_unkept, set_checksum_headers, write_condition,
};
use crate::http::{Request, Response};
use crate::store::folders::{make_dir, remove_empty_dir};
use crate::store::meta::Expect;
use crate::store::write;
use crate::worker::Worker;
use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

/// A marker's ETag: the md5 of no bytes, as S3 gives any empty object.
pub(super) const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";
/// A marker's Content-Type (the one s3fs-fuse writes markers with).
const FOLDER_CONTENT_TYPE: &str = "application/x-directory";

/// Where a marker lives: its directory and its listing entry's path.
struct Marker {
    /// The directory, absolute.
    dir: PathBuf,
    /// `files/<bucket>/<dirs>/`: the directory's relative path and a `/`.
    rel: String,
}

impl Marker {
    fn of(w: &Worker, bucket: &str, key: &str) -> Result<Marker, policy::KeyError> {
        let dir = policy::folder_path(bucket, key)?;
        Ok(Marker {
            dir: w.dir().join(&dir),
            rel: format!("{dir}/"),
        })
    }

    /// When the marker was put (its entry's time, else its directory's mtime), unix ms; None
    /// when it is not there.
    async fn modified_ms(&self, w: &Worker) -> Result<Option<i64>, S3Error> {
        if let Some(ms) = w.meta().folder(&self.rel)? {
            return Ok(Some(ms));
        }
        let dir = self.dir.clone();
        Ok(blocking(move || {
            std::fs::metadata(&dir)
                .ok()
                .filter(|m| m.is_dir())
                .map(|m| m.mtime().max(0) * 1000)
        })
        .await)
    }
}

/// The request's marker, or the key's refusal (as for an object's key).
fn marker(w: &Worker, r: &S3Request) -> Result<Marker, S3Error> {
    match Marker::of(w, &r.bucket, &r.key) {
        Ok(m) => Ok(m),
        Err(policy::KeyError::TooLong) => {
            Err(S3Error::new(400, "KeyTooLongError", "Your key is too long.").on(r.resource()))
        }
        Err(e) => Err(S3Error::invalid_argument(e.to_string()).on(r.resource())),
    }
}

/// PutObject of a marker: its (empty) payload is checked like any other, then the directory
/// is made.
pub async fn put(w: &Worker, req: &mut Request<'_>, r: &S3Request) -> Result<Response, S3Error> {
    let bucket = existing(w, r).await?;
    r.require(Action::Write, false)?;
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    refuse_unkept(req, &bucket)?;
    let m = marker(w, r)?;
    let declared = req
        .head
        .header_str("x-amz-decoded-content-length")
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(req.content_length())
        .unwrap_or(0);
    if declared > 0 {
        return Err(S3Error::invalid_argument(
            "A key ending in '/' is a folder marker, a directory here: it holds no data.",
        )
        .on(r.resource()));
    }
    let expect = write_condition(req)?;
    let (written, checksum) = receive(w, req, r, 0).await?;
    write::discard(written).await;
    let existed = m.modified_ms(w).await?.is_some();
    check_condition(&expect, existed).map_err(|e| e.on(r.resource()))?;
    let dir = m.dir.clone();
    blocking(move || make_dir(&dir))
        .await
        .map_err(|e| refused_dir(e).on(r.resource()))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    w.meta()
        .put_folder(m.rel, now_ms, r.cfg.peers.clone())
        .await?;
    let mut resp = Response::new(200);
    resp.set("ETag", format!("\"{EMPTY_MD5}\""));
    if let Some(c) = &checksum {
        set_checksum_headers(&mut resp, c, true);
    }
    Ok(resp)
}

/// A conditional write's answer for a marker whose directory exists or not.
fn check_condition(expect: &Expect, existed: bool) -> Result<(), S3Error> {
    let failed = || {
        S3Error::new(
            412,
            "PreconditionFailed",
            "At least one of the pre-conditions you specified did not hold",
        )
    };
    match expect {
        Expect::Absent if existed => Err(failed()),
        Expect::Etag(_) if !existed => Err(S3Error::no_such_key()),
        Expect::Etag(tag) if tag != EMPTY_MD5 => Err(failed()),
        _ => Ok(()),
    }
}

/// A directory that cannot be made: a file in its place is a key conflict (409, as a key
/// and its "directory" cannot both exist), anything else the server's failure.
fn refused_dir(e: std::io::Error) -> S3Error {
    match e.raw_os_error() {
        Some(libc::ENOTDIR) | Some(libc::EEXIST) => S3Error::new(
            409,
            "InvalidRequest",
            "the key collides with an existing object: a file holds the place of this folder",
        ),
        _ => S3Error::from(e),
    }
}

/// GetObject and HeadObject of a marker: an empty object while its directory exists.
pub async fn get(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    let bucket = existing(w, r).await?;
    r.require(Action::Read, bucket.public_read)?;
    // A key no directory can have names nothing: NoSuchKey, as for any missing key.
    let m = marker(w, r).map_err(|_| S3Error::no_such_key().on(r.resource()))?;
    let modified_ms = m
        .modified_ms(w)
        .await?
        .ok_or_else(|| S3Error::no_such_key().on(r.resource()))?;
    let mut resp = Response::new(200);
    resp.set("ETag", format!("\"{EMPTY_MD5}\""));
    resp.set(
        "Last-Modified",
        crate::http::content::http_date((modified_ms / 1000).max(0) as u64),
    );
    resp.set("Content-Type", FOLDER_CONTENT_TYPE);
    resp.set("Accept-Ranges", "bytes");
    Ok(resp)
}

/// DeleteObject of a marker.
pub async fn delete(w: &Worker, r: &S3Request) -> Result<Response, S3Error> {
    existing(w, r).await?;
    r.require(Action::Write, false)?;
    remove(w, r, &r.key).await?;
    Ok(Response::new(204))
}

/// Removes marker `key`: its listing entry, then its directory if it is empty. A missing
/// one, or a key no directory can have, is a success (S3 deletes what is not there).
pub async fn remove(w: &Worker, r: &S3Request, key: &str) -> Result<(), S3Error> {
    if r.cfg.read_only {
        return Err(S3Error::access_denied("The server is read-only."));
    }
    let Ok(m) = Marker::of(w, &r.bucket, key) else {
        return Ok(());
    };
    w.meta().remove_folder(m.rel, r.cfg.peers.clone()).await?;
    let dir = m.dir;
    blocking(move || remove_empty_dir(&dir)).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_in_a_markers_place_is_a_conflict() {
        let t = tempfile::tempdir().unwrap();
        std::fs::write(t.path().join("file"), b"1").unwrap();
        let taken = make_dir(&t.path().join("file/z")).unwrap_err();
        assert_eq!(refused_dir(taken).status, 409);
    }

    #[test]
    fn conditional_marker_writes_follow_the_directory() {
        assert!(check_condition(&Expect::Absent, false).is_ok());
        assert_eq!(
            check_condition(&Expect::Absent, true).unwrap_err().status,
            412
        );
        let tag = |t: &str| Expect::Etag(t.to_string());
        assert!(check_condition(&tag(EMPTY_MD5), true).is_ok());
        assert_eq!(check_condition(&tag("abc"), true).unwrap_err().status, 412);
        assert_eq!(
            check_condition(&tag(EMPTY_MD5), false).unwrap_err().status,
            404
        );
    }
}
