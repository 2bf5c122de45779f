//! Storage: where files live (`names`), their metadata (`meta`, sharded LMDB with group
//! commit), the small-file cache (`cache`), the durable write path (`write`), and the md5
//! checkpoints kept with large files (`checkpoints`); the offline jobs (`import`, `check`)
//! report their `progress`; a day's export (`backup`); S3 buckets over the top directories
//! (`buckets`); the bound of the resized-image cache (`variants`); uploads' admission against
//! free disk space (`space`).

pub mod backup;
pub mod buckets;
pub mod cache;
pub mod check;
pub mod checkpoints;
pub mod dma;
pub mod folders;
pub mod hashing;
pub mod haystack;
pub mod import;
pub mod meta;
pub mod names;
pub mod progress;
pub mod space;
pub mod variants;
pub mod write;

/// Blocking: opens `path` to read and write, creating it when missing; a new file's
/// directory entry is made durable (its directory fsynced). Also says whether it was created.
pub fn open_durably(path: &std::path::Path) -> std::io::Result<(std::fs::File, bool)> {
    let created = !path.exists();
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .read(true)
        .write(true)
        .open(path)?;
    if created {
        let dir = path.parent().expect("a file in a directory");
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok((file, created))
}

/// Modification time of a file in Unix seconds (0 when unknown).
pub fn mtime_secs(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

/// The record of a file found under `files/` without one (import, migration): `rel` is
/// `files/...`; `files/<scene>/<YYYYMMDD>/...` is the default layout (its scene is kept),
/// anything else a custom path.
pub fn found_record(
    rel: &str,
    m: &std::fs::Metadata,
    md5: String,
    host: &str,
    offset: i64,
) -> crate::json::FileInfo {
    let parts: Vec<&str> = rel.split('/').collect();
    let (dir, name) = rel.rsplit_once('/').expect("rel has a directory");
    let scene = match parts.get(2) {
        Some(d) if d.len() == 8 && d.bytes().all(|b| b.is_ascii_digit()) => parts[1].to_string(),
        _ => String::new(),
    };
    crate::json::FileInfo {
        name: name.to_string(),
        rename: String::new(),
        path: dir.to_string(),
        md5,
        size: m.len() as i64,
        peers: Some(vec![host.to_string()]),
        scene,
        time_stamp: mtime_secs(m),
        offset,
        s3: None,
    }
}
