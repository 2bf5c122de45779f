//! Per-executor caches of stored files: the bytes of small files (served without any
//! syscall but the socket write), open descriptors of larger ones (served without
//! open/close; nginx's open_file_cache), and decoded records by path (S3 GETs, which need a
//! file's record, read no LMDB page for a hot one). Files are immutable once committed; a
//! delete or overwrite anywhere moves `Meta::files_epoch` (before a delete's commit is
//! visible, and again after it: a lookup between the two may have cached what the commit
//! removes) and every executor drops its caches on the next lookup.

use bytes::Bytes;
use std::collections::VecDeque;

/// A cache's map by path. Paths are client-chosen, so the hash is keyed with per-process
/// random keys (no collisions to be crafted), as std's SipHash is; aHash does that in a
/// fraction of SipHash's time (a lookup per GET).
type HashMap<V> = std::collections::HashMap<String, V, ahash::RandomState>;

/// Files larger than this are never cached in memory (their descriptors are).
pub const CACHED_FILE_BYTES_MAX: u64 = 16 * 1024;
/// Open descriptors kept per executor when nothing says otherwise (tests).
pub const OPEN_FILES_MAX: usize = 256;
/// Bounds of an executor's open-descriptor cache (`open_files_cap`).
const OPEN_FILES_CAP_MIN: usize = 64;
const OPEN_FILES_CAP_MAX: usize = 4096;

/// Open descriptors an executor keeps: a sixteenth of the process's descriptor limit shared
/// by the executors (connections take up to three quarters of it, `admission::Caps`),
/// between 64 and 4096. nginx as deployed for static files keeps 20,000 (`open_file_cache`);
/// a working set larger than the cache opens a file per request.
pub fn open_files_cap(nofile: u64, executors: usize) -> usize {
    let share = nofile / 16 / executors.max(1) as u64;
    (share.min(OPEN_FILES_CAP_MAX as u64) as usize).max(OPEN_FILES_CAP_MIN)
}
/// The first `size` bytes of an open file (fewer if it is shorter), for the byte cache.
pub async fn read_whole(file: &glommio::io::BufferedFile, size: u64) -> std::io::Result<Bytes> {
    crate::failpoint::io("read.eio")?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let got = file
            .read_at(out.len() as u64, size as usize - out.len())
            .await
            .map_err(std::io::Error::from)?;
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    Ok(Bytes::from(out))
}

/// Decoded records kept per executor.
pub const RECORDS_MAX: usize = 4096;

/// Records by relative path (FIFO, emptied when the epoch moves).
#[derive(Default)]
pub struct RecordCache {
    epoch: u64,
    map: HashMap<std::rc::Rc<crate::json::FileInfo>>,
    order: VecDeque<String>,
}

impl RecordCache {
    fn sync_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.map.clear();
            self.order.clear();
            self.epoch = epoch;
        }
    }

    pub fn get(&mut self, epoch: u64, rel: &str) -> Option<std::rc::Rc<crate::json::FileInfo>> {
        self.sync_epoch(epoch);
        self.map.get(rel).cloned()
    }

    pub fn insert(&mut self, epoch: u64, rel: &str, info: std::rc::Rc<crate::json::FileInfo>) {
        self.sync_epoch(epoch);
        if self.map.len() >= RECORDS_MAX {
            if let Some(old) = self.order.pop_front() {
                self.map.remove(&old);
            }
        }
        if self.map.insert(rel.to_string(), info).is_none() {
            self.order.push_back(rel.to_string());
        }
        debug_assert!(self.map.len() <= RECORDS_MAX, "bounded");
    }
}

/// What tells one version of a served content from another at the same path: the second of
/// its mtime (its `Last-Modified`) and what tells apart two versions of one second and one
/// size (in its `ETag`), so that a client's validator of an overwritten file never matches the
/// new content.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Version {
    /// Unix seconds.
    pub secs: u64,
    /// A file's inode and mtime nanoseconds, or 64 bits of a record's content digest.
    pub within: u64,
}

impl Version {
    /// A file's version: its mtime and inode (a file replaced by a rename is a new inode even
    /// when the clock's tick gave both the same nanoseconds; an inode's bits above the 34th are
    /// dropped).
    pub fn of_file(secs: u64, nanos: u32, ino: u64) -> Version {
        debug_assert!(nanos < 1 << 30, "nanoseconds are below 10^9 < 2^30");
        Version {
            secs,
            within: (ino << 30) | u64::from(nanos),
        }
    }

    /// A record's version, served from a merged file: its time stamp and the first 16 hex
    /// digits of its content md5 (0 when they are not hex).
    pub fn of_digest(secs: u64, md5_hex: &str) -> Version {
        let head = md5_hex.get(..16).unwrap_or(md5_hex);
        Version {
            secs,
            within: u64::from_str_radix(head, 16).unwrap_or(0),
        }
    }
}

#[derive(Clone)]
pub struct CachedFile {
    pub data: Bytes,
    pub version: Version,
}

pub struct FileCache {
    bytes_max: usize,
    bytes: usize,
    epoch: u64,
    map: HashMap<CachedFile>,
    /// Insertion order for FIFO eviction.
    order: VecDeque<String>,
}

impl FileCache {
    pub fn new(bytes_max: usize) -> FileCache {
        FileCache {
            bytes_max,
            bytes: 0,
            epoch: 0,
            map: HashMap::default(),
            order: VecDeque::new(),
        }
    }

    fn sync_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            self.map.clear();
            self.order.clear();
            self.bytes = 0;
            self.epoch = epoch;
        }
    }

    pub fn get(&mut self, epoch: u64, key: &str) -> Option<CachedFile> {
        self.sync_epoch(epoch);
        self.map.get(key).cloned()
    }

    pub fn insert(&mut self, epoch: u64, key: &str, file: CachedFile) {
        self.sync_epoch(epoch);
        let size = file.data.len() + key.len();
        if self.bytes_max == 0
            || size > self.bytes_max
            || file.data.len() as u64 > CACHED_FILE_BYTES_MAX
        {
            return;
        }
        while self.bytes + size > self.bytes_max {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            if let Some(f) = self.map.remove(&old) {
                self.bytes -= f.data.len() + old.len();
            }
        }
        if let Some(prev) = self.map.insert(key.to_string(), file) {
            self.bytes -= prev.data.len() + key.len();
        } else {
            self.order.push_back(key.to_string());
        }
        self.bytes += size;
        debug_assert!(self.bytes <= self.bytes_max);
    }
}

/// An open stored file with its validators.
#[derive(Clone)]
pub struct OpenFile {
    pub file: std::rc::Rc<glommio::io::BufferedFile>,
    pub size: u64,
    pub version: Version,
}

/// Open descriptors of recently served files (FIFO eviction, epoch invalidation).
pub struct FdCache {
    epoch: u64,
    map: HashMap<OpenFile>,
    order: VecDeque<String>,
    /// Descriptors kept at most.
    cap: usize,
}

impl Default for FdCache {
    fn default() -> Self {
        FdCache::with_capacity(OPEN_FILES_MAX)
    }
}

impl FdCache {
    pub fn with_capacity(cap: usize) -> FdCache {
        assert!(cap > 0, "an open-file cache holds something");
        FdCache {
            epoch: 0,
            map: HashMap::default(),
            order: VecDeque::new(),
            cap,
        }
    }

    fn sync_epoch(&mut self, epoch: u64) {
        if epoch != self.epoch {
            // Dropping the Rc closes each file once no response still streams from it.
            self.map.clear();
            self.order.clear();
            self.epoch = epoch;
        }
    }

    pub fn get(&mut self, epoch: u64, key: &str) -> Option<OpenFile> {
        self.sync_epoch(epoch);
        self.map.get(key).cloned()
    }

    pub fn insert(&mut self, epoch: u64, key: &str, file: OpenFile) {
        self.sync_epoch(epoch);
        if self.map.contains_key(key) {
            return;
        }
        while self.map.len() >= self.cap {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&old);
        }
        self.map.insert(key.to_string(), file);
        self.order.push_back(key.to_string());
        debug_assert!(self.map.len() <= self.cap);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_cache_takes_a_sixteenth_of_the_descriptor_limit_within_bounds() {
        assert_eq!(open_files_cap(1 << 20, 2), 4096, "capped");
        assert_eq!(open_files_cap(65_536, 2), 2048);
        assert_eq!(open_files_cap(4096, 2), 128);
        assert_eq!(open_files_cap(1024, 8), 64, "floor");
        assert_eq!(open_files_cap(1 << 20, 0), 4096, "no executor count is one");
        // Within the quarter of the limit that connections leave (admission::Caps).
        for (nofile, executors) in [(4096u64, 1usize), (4096, 4), (65_536, 64), (1 << 20, 256)] {
            let all = open_files_cap(nofile, executors) as u64 * executors as u64;
            assert!(
                all <= (nofile / 4).max(64 * executors as u64),
                "{nofile} {executors}"
            );
        }
    }

    #[test]
    fn records_are_bounded_and_dropped_when_the_epoch_moves() {
        let mut c = RecordCache::default();
        let info = std::rc::Rc::new(crate::json::FileInfo::default());
        for i in 0..RECORDS_MAX + 10 {
            c.insert(1, &format!("files/b/{i}"), info.clone());
        }
        assert_eq!(c.map.len(), RECORDS_MAX, "bounded");
        assert!(c.get(1, "files/b/0").is_none(), "the oldest went first");
        assert!(c.get(1, &format!("files/b/{}", RECORDS_MAX + 9)).is_some());
        assert!(
            c.get(2, &format!("files/b/{}", RECORDS_MAX + 9)).is_none(),
            "a new epoch"
        );
    }

    fn f(n: usize) -> CachedFile {
        CachedFile {
            data: Bytes::from(vec![7u8; n]),
            version: Version::default(),
        }
    }

    #[test]
    fn evicts_oldest_within_budget() {
        let mut c = FileCache::new(3000);
        c.insert(0, "a", f(1000));
        c.insert(0, "b", f(1000));
        c.insert(0, "c", f(1000));
        assert!(c.get(0, "a").is_none());
        assert!(c.get(0, "c").is_some());
    }

    #[test]
    fn epoch_change_clears() {
        let mut c = FileCache::new(10_000);
        c.insert(0, "a", f(10));
        assert!(c.get(1, "a").is_none());
    }
}
