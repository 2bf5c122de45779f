//! S3 folder markers on disk (docs/S3.md, "Folder markers"): a marker `files/<bucket>/<dirs>/`
//! is the directory `files/<bucket>/<dirs>` plus its entry in the listing index
//! (`meta::listing`, written with `Meta::put_folder` and `Meta::remove_folder`, which also
//! queue the change for the peers). This module owns the directory side of both the local
//! changes and a peer's (`apply_from_peer`), and the admin cleanup of empty directories,
//! which leaves a marker's directory where it is (the marker owns it). The functions that
//! touch the disk block: call them from the blocking pool.

use super::meta::{Meta, MetaError};
use std::io;
use std::path::Path;

/// Creates `dir` and its missing ancestors; each new entry is durable once its parent is
/// fsynced. A file in the way is `ENOTDIR`. Blocking.
pub fn make_dir(dir: &Path) -> io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        if at.exists() {
            return Err(io::Error::from_raw_os_error(libc::ENOTDIR));
        }
        missing.push(at);
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(d) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists && d.is_dir() => continue,
            Err(e) => return Err(e),
        }
        if let Some(parent) = d.parent() {
            std::fs::File::open(parent)?.sync_all()?;
        }
    }
    Ok(())
}

/// Removes `dir` if it is an empty directory (its parent fsynced); anything else (missing,
/// not empty, not a directory) is left as it is, a success. Blocking.
pub fn remove_empty_dir(dir: &Path) -> io::Result<()> {
    match std::fs::remove_dir(dir) {
        Ok(()) => match dir.parent() {
            Some(parent) => std::fs::File::open(parent)?.sync_all(),
            None => Ok(()),
        },
        Err(e)
            if matches!(
                e.raw_os_error(),
                Some(libc::ENOENT | libc::ENOTEMPTY | libc::EEXIST | libc::ENOTDIR)
            ) =>
        {
            Ok(())
        }
        Err(e) => Err(e),
    }
}

/// Whether `rel` can be a marker a peer sent: `files/<bucket>/<dirs>/`, the bucket a valid
/// bucket name, every segment a plain name (not empty, `.`, `..`, no NUL).
pub fn valid_rel(rel: &str) -> bool {
    let Some(inner) = rel.strip_prefix("files/").and_then(|r| r.strip_suffix('/')) else {
        return false;
    };
    let mut segments = inner.split('/');
    let bucket_ok = segments
        .next()
        .is_some_and(|b| super::buckets::check_name(b).is_ok());
    let rest: Vec<&str> = segments.collect();
    bucket_ok
        && !rest.is_empty()
        && rest
            .iter()
            .all(|s| !s.is_empty() && *s != "." && *s != ".." && !s.contains('\0'))
}

/// What a peer's change to a marker did here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// Put or removed as the peer did.
    Done,
    /// Nothing to do: the marker here is newer than the change, already as the peer has it,
    /// or a file holds its place.
    Unchanged,
}

/// Applies a peer's change to the marker `rel`: put at `time` (unix ms), or removed at
/// `time` when `deleted`. A marker put or removed here after `time` wins (the removal's
/// tombstone, `meta::listing`). Not queued again for this
/// node's peers (the origin sends it to each of its own).
pub async fn apply_from_peer(
    meta: &Meta,
    root: &Path,
    rel: &str,
    time: i64,
    deleted: bool,
) -> Result<Applied, String> {
    if !valid_rel(rel) {
        return Err(format!("not a folder marker's path: {rel:?}"));
    }
    let dir = root.join(rel.trim_end_matches('/'));
    if deleted {
        let removed = meta
            .folder_from_peer(rel.to_string(), false, time)
            .await
            .map_err(|e| e.to_string())?;
        if !removed {
            return Ok(Applied::Unchanged);
        }
        glommio::executor()
            .spawn_blocking(move || remove_empty_dir(&dir))
            .await
            .map_err(|e| e.to_string())?;
        return Ok(Applied::Done);
    }
    // Put or removed here since: the later change wins (no directory made for nothing).
    if matches!(meta.folder_state(rel), Ok(Some((_, ms))) if ms >= time) {
        return Ok(Applied::Unchanged);
    }
    let made = glommio::executor()
        .spawn_blocking(move || make_dir(&dir))
        .await;
    match made {
        Ok(()) => {}
        Err(e) if matches!(e.raw_os_error(), Some(libc::ENOTDIR | libc::EEXIST)) => {
            tracing::warn!(
                rel,
                "a peer's folder marker not kept: a file holds its place here"
            );
            return Ok(Applied::Unchanged);
        }
        Err(e) => return Err(e.to_string()),
    }
    let applied = meta
        .folder_from_peer(rel.to_string(), true, time)
        .await
        .map_err(|e: MetaError| e.to_string())?;
    Ok(match applied {
        true => Applied::Done,
        false => Applied::Unchanged,
    })
}

/// Whether the directory `rel` (`files/<...>/`) of the runtime dir `root` is S3's: a folder
/// marker's (it has an entry in the listing index) or a bucket CreateBucket registered
/// (`files/<bucket>/`). A marker that cannot be read now counts as one. Blocking.
pub fn owned_by_s3(meta: &Meta, root: &Path, rel: &str) -> bool {
    let bucket = rel
        .strip_prefix("files/")
        .and_then(|r| r.strip_suffix('/'))
        .filter(|b| !b.contains('/'));
    match bucket {
        Some(b) => super::buckets::check_name(b).is_ok() && super::buckets::registered(root, b),
        None => !matches!(meta.folder(rel), Ok(None)),
    }
}

/// `G/remove_empty_dir`'s job: removes empty directories below `root` (`files/`), depth
/// first, never `root` itself, its internal directories (`_tmp`, `_big`, ...), nor a
/// directory `keep` says is S3's ([`owned_by_s3`] of its path `files/<...>/`: a folder
/// marker is an object until it is deleted through S3, a bucket is one until DeleteBucket).
/// Returns how many it removed. Blocking.
pub fn remove_empty_dirs(root: &Path, keep: impl Fn(&str) -> bool) -> usize {
    fn walk(dir: &Path, rel: &str, top: bool, keep: &dyn Fn(&str) -> bool) -> (usize, bool) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return (0, false);
        };
        let mut removed = 0;
        let mut empty = true;
        for e in entries.flatten() {
            let path = e.path();
            let is_dir = e.file_type().map(|t| t.is_dir()).unwrap_or(false);
            let name = e.file_name();
            if top && name.to_str().is_some_and(super::names::is_internal) {
                empty = false;
                continue;
            }
            if is_dir {
                let sub_rel = format!("{rel}{}/", name.to_string_lossy());
                let (r, sub_empty) = walk(&path, &sub_rel, false, keep);
                removed += r;
                if sub_empty && !keep(&sub_rel) && std::fs::remove_dir(&path).is_ok() {
                    removed += 1;
                    continue;
                }
            }
            empty = false;
        }
        (removed, empty)
    }
    walk(root, "files/", true, &keep).0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_marker_is_created_with_its_ancestors_and_removed_only_when_empty() {
        let t = tempfile::tempdir().unwrap();
        let dir = t.path().join("b/x/y");
        std::fs::create_dir(t.path().join("b")).unwrap();
        make_dir(&dir).unwrap();
        assert!(dir.is_dir());
        make_dir(&dir).unwrap(); // again: nothing to do
        std::fs::write(t.path().join("b/x/file"), b"1").unwrap();
        remove_empty_dir(&t.path().join("b/x")).unwrap(); // holds files: left
        assert!(t.path().join("b/x").is_dir());
        remove_empty_dir(&dir).unwrap();
        assert!(!dir.exists());
        remove_empty_dir(&dir).unwrap(); // missing: a success
        let taken = make_dir(&t.path().join("b/x/file/z")).unwrap_err();
        assert_eq!(taken.raw_os_error(), Some(libc::ENOTDIR));
    }

    #[test]
    fn only_plain_marker_paths_are_taken_from_peers() {
        assert!(valid_rel("files/photos/2026/"));
        assert!(valid_rel("files/photos/a b/c/"));
        for bad in [
            "files/photos/",
            "files/photos/2026",
            "photos/2026/",
            "files/Photos/2026/",
            "files/_s3/x/",
            "files/photos//x/",
            "files/photos/../x/",
            "files/photos/./",
        ] {
            assert!(!valid_rel(bad), "{bad}");
        }
    }

    #[test]
    fn the_cleanup_keeps_marker_directories_and_their_ancestors() {
        let t = tempfile::tempdir().unwrap();
        let files = t.path();
        for d in ["b/kept/inner", "b/gone/deeper", "_tmp"] {
            std::fs::create_dir_all(files.join(d)).unwrap();
        }
        let removed = remove_empty_dirs(files, |rel| rel == "files/b/kept/inner/");
        assert_eq!(removed, 2, "gone/deeper and gone");
        assert!(files.join("b/kept/inner").is_dir());
        assert!(!files.join("b/gone").exists());
        assert!(files.join("_tmp").is_dir());
    }
}
