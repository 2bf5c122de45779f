//! Storage: where files live (`names`), their metadata (`meta`, sharded LMDB with group
//! commit), the small-file cache (`cache`), and the durable write path (`write`); the offline
//! jobs (`import`, `check`) report their `progress`.

pub mod cache;
pub mod check;
pub mod haystack;
pub mod import;
pub mod meta;
pub mod names;
pub mod progress;
pub mod write;

/// Modification time of a file in Unix seconds (0 when unknown).
pub fn mtime_secs(m: &std::fs::Metadata) -> i64 {
    m.modified()
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}
