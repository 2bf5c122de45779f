//! The S3 gate, the domain rules every S3 request passes before it touches the store: where an
//! object key lands (`object_path`: one file under the bucket's directory, or refused; a
//! folder marker's `folder_path`: a directory), who may do what (`allowed`: the credential's
//! buckets and read-only flag, anonymous reads of public-read buckets) and which object ACLs
//! a write may ask for (`object_acl_granted`: its bucket's). Kept apart from the handlers so unit tests reach every rule.

use crate::config::S3Key;
use crate::store::names;

/// Longest object key, bytes (S3's limit).
pub const KEY_BYTES_MAX: usize = 1024;

/// Why a key cannot be an object here.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    #[error("the key is longer than 1024 bytes")]
    TooLong,
    #[error("the key is empty")]
    Empty,
    #[error("the key cannot be a file here: {0}")]
    NotAPath(String),
}

/// Where object `key` of `bucket` is stored: (`files/<bucket>/<dirs>`, file name). Every
/// segment must be a safe file name (no empty, `.` or `..` segment, no control character, at
/// most 255 bytes; a backslash only in the last, the file's name, as an upload's may hold
/// one), and the file may not take a place the server's dated tree uses as a directory (a
/// scene's `YYYYMMDD/HH/MM`).
pub fn object_path(bucket: &str, key: &str, peer_id: &str) -> Result<(String, String), KeyError> {
    if key.len() > KEY_BYTES_MAX {
        return Err(KeyError::TooLong);
    }
    if key.is_empty() {
        return Err(KeyError::Empty);
    }
    let mut segments: Vec<&str> = key.split('/').collect();
    let name = segments.pop().unwrap_or_default();
    if name.is_empty() {
        return Err(KeyError::NotAPath(
            "a key ending in '/' (a folder marker) has no file name".into(),
        ));
    }
    let not_a_path = |s: &str, e| KeyError::NotAPath(format!("\"{s}\": {e}"));
    for s in &segments {
        names::check_component(s).map_err(|e| not_a_path(s, e))?;
    }
    names::check_name(name).map_err(|e| not_a_path(name, e))?;
    let mut dir = format!("files/{bucket}");
    for s in &segments {
        dir.push('/');
        dir.push_str(s);
    }
    names::check_landing(&dir, name, peer_id).map_err(|e| KeyError::NotAPath(e.to_string()))?;
    Ok((dir, name.to_string()))
}

/// Whether `key` is a folder marker: a key ending in `/`, which S3 tools (s3fs-fuse, consoles)
/// write, empty, to make a "directory".
pub fn is_folder_marker(key: &str) -> bool {
    key.ends_with('/')
}

/// The directory a folder marker `key` of `bucket` is: `files/<bucket>/<dirs>`. A marker is
/// a directory here, not a file: its key must end in `/` and every segment before it be a safe
/// file name, as in [`object_path`].
pub fn folder_path(bucket: &str, key: &str) -> Result<String, KeyError> {
    if key.len() > KEY_BYTES_MAX {
        return Err(KeyError::TooLong);
    }
    let Some(dirs) = key.strip_suffix('/') else {
        return Err(KeyError::NotAPath("a folder marker ends in '/'".into()));
    };
    let mut dir = format!("files/{bucket}");
    for s in dirs.split('/') {
        names::check_component(s).map_err(|e| KeyError::NotAPath(format!("\"{s}\": {e}")))?;
        dir.push('/');
        dir.push_str(s);
    }
    Ok(dir)
}

/// The object key of a stored file's relative path, when it is in `bucket`.
pub fn key_of(bucket: &str, rel_path: &str) -> Option<String> {
    rel_path
        .strip_prefix("files/")?
        .strip_prefix(bucket)?
        .strip_prefix('/')
        .map(str::to_string)
}

/// What a request does to a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Reading objects, listing.
    Read,
    /// Writing or deleting objects, creating or deleting the bucket.
    Write,
}

/// Who asks: a configured credential, or nobody.
#[derive(Debug, Clone, Copy)]
pub enum Caller<'a> {
    Key(&'a S3Key),
    Anonymous,
}

/// Whether `caller` may do `action` on `bucket` (`public_read`: the bucket's flag).
pub fn allowed(caller: Caller<'_>, bucket: &str, action: Action, public_read: bool) -> bool {
    match caller {
        Caller::Key(k) => {
            let bucket_ok = k.buckets.iter().any(|b| b == "*" || b == bucket);
            bucket_ok && (action == Action::Read || !k.read_only)
        }
        Caller::Anonymous => action == Action::Read && public_read,
    }
}

/// Whether the canned ACL a write asks for its object (`x-amz-acl`) is what the object gets
/// here, where an object has its bucket's ACL: the owner's (`private`, `bucket-owner-*`, or
/// none asked) always, `public-read` in a public-read bucket. Any other ACL would be a grant
/// this server does not make, so the write is refused rather than the ACL dropped.
pub fn object_acl_granted(acl: Option<&str>, bucket_public_read: bool) -> bool {
    match acl.map(str::trim) {
        None | Some("private" | "bucket-owner-full-control" | "bucket-owner-read") => true,
        Some("public-read") => bucket_public_read,
        Some(_) => false,
    }
}

/// Whether a credential may see `bucket` in ListBuckets.
pub fn visible(key: &S3Key, bucket: &str) -> bool {
    key.buckets.iter().any(|b| b == "*" || b == bucket)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(buckets: &[&str], read_only: bool) -> S3Key {
        S3Key {
            access_key_id: "AK".into(),
            secret_access_key: "SK".into(),
            buckets: buckets.iter().map(|s| s.to_string()).collect(),
            read_only,
        }
    }

    #[test]
    fn an_object_acl_is_granted_only_when_its_bucket_gives_it() {
        for owners in [None, Some("private"), Some("bucket-owner-full-control")] {
            assert!(object_acl_granted(owners, false), "{owners:?}");
            assert!(object_acl_granted(owners, true), "{owners:?}");
        }
        assert!(object_acl_granted(Some("public-read"), true));
        assert!(!object_acl_granted(Some("public-read"), false));
        for wider in ["public-read-write", "authenticated-read", "aws-exec-read"] {
            assert!(!object_acl_granted(Some(wider), true), "{wider}");
        }
    }

    #[test]
    fn a_folder_marker_is_a_directory_of_its_bucket_with_safe_segments() {
        assert!(is_folder_marker("photos/2026/"));
        assert!(!is_folder_marker("photos/2026"));
        assert_eq!(
            folder_path("b", "photos/"),
            Ok("files/b/photos".to_string())
        );
        assert_eq!(folder_path("b", "a/b c/"), Ok("files/b/a/b c".to_string()));
        for bad in ["/", "a//", "a/../", "./", "a", "a\\b/", &"x/".repeat(513)] {
            assert!(folder_path("b", bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn a_key_is_a_file_under_its_buckets_directory() {
        assert_eq!(
            object_path("photos", "2026/cat.jpg", "1"),
            Ok(("files/photos/2026".to_string(), "cat.jpg".to_string()))
        );
        assert_eq!(
            object_path("photos", "cat.jpg", "1"),
            Ok(("files/photos".to_string(), "cat.jpg".to_string()))
        );
        assert_eq!(
            object_path("b", "a b+c%41é?#.txt", "1").unwrap().1,
            "a b+c%41é?#.txt"
        );
        // A file name may hold a backslash (one byte of one component), as an upload's.
        assert_eq!(
            object_path("b", "d/a\\b.txt", "1"),
            Ok(("files/b/d".to_string(), "a\\b.txt".to_string()))
        );
    }

    #[test]
    fn keys_that_are_not_safe_paths_are_refused() {
        for bad in [
            "../etc/passwd",
            "a/../../b",
            "./a",
            "a//b",
            "/a",
            "a/",
            "a\\b/c",
            "a\0b",
            "a\nb",
        ] {
            assert!(
                matches!(object_path("b", bad, "1"), Err(KeyError::NotAPath(_))),
                "{bad:?}"
            );
        }
        assert_eq!(object_path("b", "", "1"), Err(KeyError::Empty));
        let long = "a/".repeat(600);
        assert_eq!(object_path("b", &long, "1"), Err(KeyError::TooLong));
        let seg = "x".repeat(256);
        assert!(
            object_path("b", &seg, "1").is_err(),
            "segment over NAME_MAX"
        );
    }

    #[test]
    fn a_key_cannot_plant_a_file_where_the_dated_tree_goes() {
        assert!(object_path("default", "20261203", "1").is_err());
        assert!(object_path("default", "20261203/16", "1").is_err());
        assert!(object_path("default", "20261203/16/43", "1").is_err());
        assert!(object_path("default", "20261203/16/43/x.txt", "1").is_ok());
    }

    #[test]
    fn keys_map_back_from_their_paths() {
        assert_eq!(key_of("b", "files/b/x/y.txt").as_deref(), Some("x/y.txt"));
        assert_eq!(key_of("b", "files/bb/x"), None);
        assert_eq!(key_of("b", "files/b"), None);
    }

    #[test]
    fn credentials_reach_only_their_buckets_and_read_only_ones_never_write() {
        let all = key(&["*"], false);
        let one = key(&["allowed"], false);
        let ro = key(&["*"], true);
        assert!(allowed(Caller::Key(&all), "x", Action::Write, false));
        assert!(allowed(Caller::Key(&one), "allowed", Action::Write, false));
        assert!(!allowed(Caller::Key(&one), "other", Action::Read, true));
        assert!(allowed(Caller::Key(&ro), "x", Action::Read, false));
        assert!(!allowed(Caller::Key(&ro), "x", Action::Write, false));
        assert!(!allowed(Caller::Anonymous, "x", Action::Read, false));
        assert!(allowed(Caller::Anonymous, "x", Action::Read, true));
        assert!(!allowed(Caller::Anonymous, "x", Action::Write, true));
        assert!(visible(&one, "allowed") && !visible(&one, "other"));
    }
}
