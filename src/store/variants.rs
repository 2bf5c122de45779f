//! The bound of the resized-image cache (`files/_cache/<2 hex>/<32 hex>`): its files take at
//! most `resize_cache_bytes`. Any client may ask for any of the ~4 million sizes of every
//! image, so without a bound the cache grew until the disk was full. A leaf module: the
//! counter is process-wide, the trim is blocking (the caller runs it on its blocking pool).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

/// A trim removes the oldest variants until the cache holds at most this share of its bound
/// (in percent), so that it does not run again after every new variant.
const TRIM_TO_PERCENT: u64 = 75;

/// Bytes in `files/_cache/`, as counted by the last trim plus what was written since.
#[derive(Default)]
pub struct Variants {
    bytes: AtomicU64,
    /// A trim has counted the cache since the start (before it, the count is unknown).
    counted: AtomicBool,
    trimming: AtomicBool,
}

impl Variants {
    /// Counts a variant of `len` bytes just written; true when the cache may be over `cap`
    /// (or was never counted) and no trim is running: the caller then runs [`Variants::trim`].
    pub fn written(&self, len: u64, cap: u64) -> bool {
        let bytes = self.bytes.fetch_add(len, Ordering::Relaxed) + len;
        let due = bytes > cap || !self.counted.load(Ordering::Relaxed);
        due && !self.trimming.swap(true, Ordering::AcqRel)
    }

    /// Blocking: counts the cache under `cache_dir` and, when it holds more than `cap` bytes,
    /// removes the oldest variants (by modification time, that is by when they were made)
    /// until it holds at most [`TRIM_TO_PERCENT`] of `cap`; again when variants written
    /// meanwhile put it over (a few passes at most). Returns the files removed.
    pub fn trim(&self, cache_dir: &Path, cap: u64) -> usize {
        let mut removed = 0;
        for _ in 0..3 {
            removed += self.pass(cache_dir, cap);
            self.trimming.store(false, Ordering::Release);
            if self.bytes.load(Ordering::Relaxed) <= cap
                || self.trimming.swap(true, Ordering::AcqRel)
            {
                return removed;
            }
        }
        self.trimming.store(false, Ordering::Release);
        removed
    }

    /// One pass of [`Variants::trim`]; the count becomes what is left plus what was written
    /// during the pass (which the listing may have seen already: then it is counted twice,
    /// and the next trim comes a little early).
    fn pass(&self, cache_dir: &Path, cap: u64) -> usize {
        let before = self.bytes.load(Ordering::Relaxed);
        let mut files = list(cache_dir);
        let mut total: u64 = files.iter().map(|f| f.1).sum();
        let mut removed = 0;
        if total > cap {
            let goal = cap / 100 * TRIM_TO_PERCENT;
            files.sort_unstable_by_key(|f| f.0);
            for (_, len, path) in files {
                if total <= goal {
                    break;
                }
                if std::fs::remove_file(&path).is_ok() {
                    total -= len;
                    removed += 1;
                }
            }
        }
        self.bytes.fetch_add(total, Ordering::Relaxed);
        self.bytes.fetch_sub(before, Ordering::Relaxed);
        self.counted.store(true, Ordering::Relaxed);
        removed
    }
}

/// A temp file older than this is left over from a write cut short (a crash): removed.
const STALE_TMP_SECS: u64 = 60;

/// Every variant under `cache_dir`: (modification time, length, path). Temp files of writes
/// in progress (`.<key>.tmp`) are left out; those older than [`STALE_TMP_SECS`] are removed.
fn list(cache_dir: &Path) -> Vec<(std::time::SystemTime, u64, PathBuf)> {
    let now = std::time::SystemTime::now();
    let mut out = Vec::new();
    let Ok(dirs) = std::fs::read_dir(cache_dir) else {
        return out;
    };
    for dir in dirs.flatten() {
        let Ok(entries) = std::fs::read_dir(dir.path()) else {
            continue;
        };
        for e in entries.flatten() {
            let Ok(m) = e.metadata() else { continue };
            if e.file_name().as_encoded_bytes().starts_with(b".") {
                let age = m.modified().ok().and_then(|t| now.duration_since(t).ok());
                if age.is_some_and(|a| a.as_secs() > STALE_TMP_SECS) {
                    let _ = std::fs::remove_file(e.path());
                }
                continue;
            }
            if m.is_file() {
                let mtime = m.modified().unwrap_or(std::time::UNIX_EPOCH);
                out.push((mtime, m.len(), e.path()));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_trim_removes_the_oldest_variants_down_to_three_quarters_of_the_bound() {
        let d = tempfile::tempdir().unwrap();
        let sub = d.path().join("ab");
        std::fs::create_dir_all(&sub).unwrap();
        let t0 = std::time::SystemTime::now() - std::time::Duration::from_secs(1000);
        for i in 0..10u64 {
            let p = sub.join(format!("f{i}"));
            std::fs::write(&p, vec![0u8; 100]).unwrap();
            let f = std::fs::File::options().write(true).open(&p).unwrap();
            f.set_modified(t0 + std::time::Duration::from_secs(i))
                .unwrap();
        }
        std::fs::write(sub.join(".x.tmp"), vec![0u8; 5000]).unwrap();
        let v = Variants::default();
        assert!(v.written(100, 2000), "never counted: a trim is due");
        assert!(!v.written(100, 2000), "one trim at a time");
        assert_eq!(v.trim(d.path(), 2000), 0, "1000 bytes fit 2000");
        assert!(!v.written(100, 2000));
        assert_eq!(v.trim(d.path(), 800), 4, "down to 600 of 800");
        for i in 0..4 {
            assert!(!sub.join(format!("f{i}")).exists(), "the oldest go first");
        }
        for i in 4..10 {
            assert!(sub.join(format!("f{i}")).exists());
        }
        assert!(v.written(300, 800), "600 + 300 > 800");
        assert!(sub.join(".x.tmp").exists(), "a write in progress stays");
        // A temp file left by a write cut short (a crash) goes with the next pass.
        let stale = sub.join(".y.tmp");
        std::fs::write(&stale, b"x").unwrap();
        let f = std::fs::File::options().write(true).open(&stale).unwrap();
        f.set_modified(t0).unwrap();
        v.trim(d.path(), 800);
        assert!(!stale.exists());
        assert!(sub.join(".x.tmp").exists());
    }
}
