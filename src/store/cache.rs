//! Per-executor caches of stored files: the bytes of small files (served without any
//! syscall but the socket write), open descriptors of larger ones (served without
//! open/close; nginx's open_file_cache), and decoded records by path (S3 GETs, which need a
//! file's record, read no LMDB page for a hot one). Files are immutable once committed; a
//! delete or overwrite anywhere moves `Meta::files_epoch` (before a delete's commit is
//! visible) and every executor drops its caches on the next lookup.

use bytes::Bytes;
use std::collections::{HashMap, VecDeque};

/// Files larger than this are never cached in memory (their descriptors are).
pub const CACHED_FILE_BYTES_MAX: u64 = 16 * 1024;
/// Open descriptors kept per executor.
pub const OPEN_FILES_MAX: usize = 256;
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
    map: HashMap<String, std::rc::Rc<crate::json::FileInfo>>,
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

#[derive(Clone)]
pub struct CachedFile {
    pub data: Bytes,
    pub mtime: u64,
}

pub struct FileCache {
    bytes_max: usize,
    bytes: usize,
    epoch: u64,
    map: HashMap<String, CachedFile>,
    /// Insertion order for FIFO eviction.
    order: VecDeque<String>,
}

impl FileCache {
    pub fn new(bytes_max: usize) -> FileCache {
        FileCache {
            bytes_max,
            bytes: 0,
            epoch: 0,
            map: HashMap::new(),
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
    pub mtime: u64,
}

/// Open descriptors of recently served files (FIFO eviction, epoch invalidation).
#[derive(Default)]
pub struct FdCache {
    epoch: u64,
    map: HashMap<String, OpenFile>,
    order: VecDeque<String>,
}

impl FdCache {
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
        while self.map.len() >= OPEN_FILES_MAX {
            let Some(old) = self.order.pop_front() else {
                break;
            };
            self.map.remove(&old);
        }
        self.map.insert(key.to_string(), file);
        self.order.push_back(key.to_string());
        debug_assert!(self.map.len() <= OPEN_FILES_MAX);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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
            mtime: 1,
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
