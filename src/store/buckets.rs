//! S3 buckets over the store: a bucket is a top directory of `files/` whose name is a valid
//! bucket name (so a go-fastdfs scene directory is a bucket too, and a bucket's objects are
//! files that replicate like any other); what S3 adds to the directory, its creation time and
//! whether anonymous clients may read it, is kept in `data/s3/buckets.json` (written to a temp
//! file, fsynced, renamed, directory fsynced) and cached in memory after the first read, so a
//! bucket lookup costs a directory stat. `create`, `delete` and `list` block: call them from
//! the blocking pool; `get` reads the file only the first time.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, RwLock};

/// What S3 knows about a bucket beyond its directory.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Bucket {
    /// Creation time, unix seconds.
    pub created: i64,
    /// Anonymous clients may read its objects and list it (`x-amz-acl: public-read`).
    #[serde(default)]
    pub public_read: bool,
}

/// Why a bucket name is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BucketError {
    #[error("the bucket name must be 3 to 63 lower-case letters, digits, '.' and '-', starting and ending with a letter or digit, and not shaped like an IP address")]
    InvalidName,
    #[error("\"{0}\" is reserved by the server")]
    Reserved(String),
    #[error("the bucket does not exist")]
    NoSuchBucket,
    #[error("the bucket already exists")]
    AlreadyExists,
    #[error("the bucket is not empty")]
    NotEmpty,
    #[error("i/o: {0}")]
    Io(String),
}

impl From<io::Error> for BucketError {
    fn from(e: io::Error) -> Self {
        BucketError::Io(e.to_string())
    }
}

/// Serializes the registry's read-modify-write cycles within the process.
static REGISTRY: Mutex<()> = Mutex::new(());
/// The registry of the runtime dir it was read from, as last read or written here.
type Registry = BTreeMap<String, Bucket>;
static CACHED: RwLock<Option<(PathBuf, Registry)>> = RwLock::new(None);

/// S3's bucket naming rules; names of server-internal directories are refused.
pub fn check_name(name: &str) -> Result<(), BucketError> {
    let b = name.as_bytes();
    let edge_ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let ok = (3..=63).contains(&b.len())
        && b.iter().all(|&c| edge_ok(c) || c == b'.' || c == b'-')
        && edge_ok(b[0])
        && edge_ok(b[b.len() - 1])
        && !name.contains("..")
        && name.parse::<std::net::Ipv4Addr>().is_err();
    if !ok {
        return Err(BucketError::InvalidName);
    }
    if crate::store::names::RESERVED_TOP_DIRS.contains(&name) {
        return Err(BucketError::Reserved(name.to_string()));
    }
    Ok(())
}

fn registry_path(root: &Path) -> PathBuf {
    root.join("data").join("s3").join("buckets.json")
}

/// The registry (from the cache when it holds this runtime dir's).
fn read_registry(root: &Path) -> io::Result<Registry> {
    if let Some((r, reg)) = &*CACHED.read().unwrap_or_else(|p| p.into_inner()) {
        if r == root {
            return Ok(reg.clone());
        }
    }
    let reg = read_registry_file(root)?;
    *CACHED.write().unwrap_or_else(|p| p.into_inner()) = Some((root.to_path_buf(), reg.clone()));
    Ok(reg)
}

/// One entry of the registry, without copying it.
fn registry_entry(root: &Path, name: &str) -> io::Result<Option<Bucket>> {
    if let Some((r, reg)) = &*CACHED.read().unwrap_or_else(|p| p.into_inner()) {
        if r == root {
            return Ok(reg.get(name).cloned());
        }
    }
    Ok(read_registry(root)?.get(name).cloned())
}

fn read_registry_file(root: &Path) -> io::Result<Registry> {
    match std::fs::read(registry_path(root)) {
        Ok(b) => serde_json::from_slice(&b).map_err(|e| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("data/s3/buckets.json: {e}"),
            )
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(e) => Err(e),
    }
}

fn write_registry(root: &Path, reg: &BTreeMap<String, Bucket>) -> io::Result<()> {
    let path = registry_path(root);
    let dir = path.parent().expect("a parent");
    std::fs::create_dir_all(dir)?;
    let tmp = dir.join("buckets.json.tmp");
    let text = serde_json::to_vec_pretty(reg).expect("plain data serializes");
    {
        use std::io::Write;
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(&text)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, &path)?;
    std::fs::File::open(dir)?.sync_all()?;
    *CACHED.write().unwrap_or_else(|p| p.into_inner()) = Some((root.to_path_buf(), reg.clone()));
    Ok(())
}

fn bucket_dir(root: &Path, name: &str) -> PathBuf {
    root.join("files").join(name)
}

fn dir_created(dir: &Path) -> i64 {
    std::fs::metadata(dir)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map_or(0, |d| d.as_secs() as i64)
}

/// The bucket `name`, if its directory exists.
pub fn get(root: &Path, name: &str) -> Result<Bucket, BucketError> {
    check_name(name).map_err(|_| BucketError::NoSuchBucket)?;
    let dir = bucket_dir(root, name);
    if !dir.is_dir() {
        return Err(BucketError::NoSuchBucket);
    }
    Ok(registry_entry(root, name)?.unwrap_or_else(|| Bucket {
        created: dir_created(&dir),
        public_read: false,
    }))
}

/// Whether `name` was created as a bucket through S3 (CreateBucket registered it): such a
/// directory is a bucket even while empty, until DeleteBucket.
pub fn registered(root: &Path, name: &str) -> bool {
    // Unreadable, the registry keeps the directory (the caller's safe side).
    !matches!(registry_entry(root, name), Ok(None))
}

/// Every bucket, by name.
pub fn list(root: &Path) -> Result<Vec<(String, Bucket)>, BucketError> {
    let reg = read_registry(root)?;
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(root.join("files")) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e.into()),
    };
    for entry in entries {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if check_name(&name).is_err() || !entry.file_type()?.is_dir() {
            continue;
        }
        let b = reg.get(&name).cloned().unwrap_or_else(|| Bucket {
            created: dir_created(&entry.path()),
            public_read: false,
        });
        out.push((name, b));
    }
    out.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(out)
}

/// Creates a bucket: its directory (durably) and its registry entry.
pub fn create(root: &Path, name: &str, public_read: bool) -> Result<(), BucketError> {
    check_name(name)?;
    let _guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let files = root.join("files");
    std::fs::create_dir_all(&files)?;
    let dir = bucket_dir(root, name);
    match std::fs::create_dir(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            return Err(BucketError::AlreadyExists)
        }
        Err(e) => return Err(e.into()),
    }
    std::fs::File::open(&files)?.sync_all()?;
    let mut reg = read_registry(root)?;
    reg.insert(
        name.to_string(),
        Bucket {
            created: chrono::Utc::now().timestamp(),
            public_read,
        },
    );
    write_registry(root, &reg)?;
    Ok(())
}

/// Removes an empty bucket: `has_files` (asked under the registry lock) says whether any file
/// is still indexed in it; empty directories left inside are removed with it.
pub fn delete(
    root: &Path,
    name: &str,
    has_files: impl FnOnce() -> io::Result<bool>,
) -> Result<(), BucketError> {
    check_name(name).map_err(|_| BucketError::NoSuchBucket)?;
    let _guard = REGISTRY.lock().unwrap_or_else(|p| p.into_inner());
    let dir = bucket_dir(root, name);
    if !dir.is_dir() {
        return Err(BucketError::NoSuchBucket);
    }
    if has_files()? || holds_a_file(&dir)? {
        return Err(BucketError::NotEmpty);
    }
    remove_empty_tree(&dir)?;
    std::fs::File::open(root.join("files"))?.sync_all()?;
    let mut reg = read_registry(root)?;
    if reg.remove(name).is_some() {
        write_registry(root, &reg)?;
    }
    Ok(())
}

/// Whether anything but directories is under `dir`.
fn holds_a_file(dir: &Path) -> io::Result<bool> {
    for entry in std::fs::read_dir(dir)? {
        let entry = entry?;
        if !entry.file_type()?.is_dir() || holds_a_file(&entry.path())? {
            return Ok(true);
        }
    }
    Ok(false)
}

fn remove_empty_tree(dir: &Path) -> io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        remove_empty_tree(&entry?.path())?;
    }
    std::fs::remove_dir(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucket_names_follow_s3s_rules() {
        for good in [
            "abc",
            "my-bucket.1",
            "default",
            "20261203",
            "a".repeat(63).as_str(),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good}");
        }
        for bad in [
            "ab",
            "Abc",
            "a_b",
            "-ab",
            "ab-",
            "a..b",
            "192.168.1.1",
            "a/b",
            "",
            "a".repeat(64).as_str(),
        ] {
            assert_eq!(check_name(bad), Err(BucketError::InvalidName), "{bad}");
        }
        assert!(matches!(
            check_name("haystack"),
            Err(BucketError::Reserved(_))
        ));
    }

    #[test]
    fn a_bucket_is_created_listed_and_deleted_only_when_empty() {
        let d = tempfile::tempdir().unwrap();
        let root = d.path();
        create(root, "photos", true).unwrap();
        assert_eq!(
            create(root, "photos", false),
            Err(BucketError::AlreadyExists)
        );
        assert!(get(root, "photos").unwrap().public_read);
        std::fs::create_dir_all(root.join("files/_tmp")).unwrap();
        std::fs::create_dir_all(root.join("files/default")).unwrap();
        let names: Vec<String> = list(root).unwrap().into_iter().map(|b| b.0).collect();
        assert_eq!(
            names,
            ["default", "photos"],
            "a scene directory is a bucket"
        );
        std::fs::create_dir_all(root.join("files/photos/a/b")).unwrap();
        std::fs::write(root.join("files/photos/a/b/x"), b"x").unwrap();
        assert_eq!(
            delete(root, "photos", || Ok(false)),
            Err(BucketError::NotEmpty)
        );
        std::fs::remove_file(root.join("files/photos/a/b/x")).unwrap();
        assert_eq!(
            delete(root, "photos", || Ok(true)),
            Err(BucketError::NotEmpty)
        );
        delete(root, "photos", || Ok(false)).unwrap();
        assert_eq!(get(root, "photos"), Err(BucketError::NoSuchBucket));
        assert_eq!(
            delete(root, "photos", || Ok(false)),
            Err(BucketError::NoSuchBucket)
        );
    }
}
