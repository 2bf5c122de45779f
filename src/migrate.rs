//! Files that appear under `files/` without an upload, indexed as go-fastdfs indexes them:
//! - one-click migration (`enable_migrate`): at start and on `G/repair_fileinfo`, the tree is
//!   walked and every file without a record is indexed (a copied FastDFS storage dir, files put
//!   there by hand);
//! - parallel run (`enable_fsnotify`): inotify watches the tree; a file another system wrote is
//!   indexed once it was closed (or renamed into place) and untouched for `sync_delay` seconds.
//!
//! Both write go-fastdfs' migration record (offset -2, id = the path key, no content hash, so
//! a tree of millions of files is indexed at the speed of `stat`) through the committer, and
//! queue it for every peer, which fetches it by path. A file that has a record (by its path
//! key) is skipped without being read, so an interrupted migration resumes where it stopped.
//! Runs on executor 0; commits go in groups (group commit), with a pause between groups so
//! that serving goes on.

use crate::json::FileInfo;
use crate::store::meta::{self, Inserted, Origin};
use crate::worker::Worker;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

/// Records inserted together (their commits share group commits).
const GROUP: usize = 256;
/// Pause between two groups (bounds the metadata write rate under a big migration).
const GROUP_PAUSE: Duration = Duration::from_millis(5);
/// How often progress is logged during a pass.
const PROGRESS_EVERY: Duration = Duration::from_secs(5);
/// A file is indexed at the earliest this long after its last change, even with
/// `sync_delay` 0 (a writer's close and our own uploads' commits have settled by then).
const SETTLE_MIN: Duration = Duration::from_secs(1);
/// Paths waiting for their quiet time, at most (an inotify flood is bounded).
const PENDING_MAX: usize = 1 << 20;

/// go-fastdfs' record for a file found at `rel` (`files/...`), or None when it is not one to
/// index: internal directories, not a regular file, empty.
pub fn record_for(root: &Path, rel: &str, host: &str) -> io::Result<Option<FileInfo>> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() < 3
        || parts[0] != "files"
        || crate::store::names::RESERVED_TOP_DIRS.contains(&parts[1])
        || crate::store::names::is_internal(parts[1])
        || parts
            .iter()
            .any(|p| p.is_empty() || *p == "." || *p == "..")
    {
        return Ok(None);
    }
    let m = match std::fs::symlink_metadata(root.join(rel)) {
        Ok(m) => m,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if !m.is_file() || m.len() == 0 || being_written(&root.join(rel)) == Some(true) {
        return Ok(None);
    }
    let md5 = meta::path_key(rel);
    let offset = crate::json::OFFSET_MIGRATED;
    Ok(Some(crate::store::found_record(rel, &m, md5, host, offset)))
}

/// Whether some process has the file open for writing: a read lease (`F_SETLEASE`) is refused
/// exactly then. None when the kernel cannot tell us (not our file and no CAP_LEASE, leases
/// disabled); callers then go by the mtime alone.
pub fn being_written(path: &Path) -> Option<bool> {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).ok()?;
    // SAFETY: fcntl on our own open fd; the lease is released before the fd closes.
    let r = unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_RDLCK) };
    if r == 0 {
        // SAFETY: as above.
        unsafe { libc::fcntl(f.as_raw_fd(), libc::F_SETLEASE, libc::F_UNLCK) };
        return Some(false);
    }
    match io::Error::last_os_error().raw_os_error() {
        Some(libc::EAGAIN) => Some(true),
        _ => None,
    }
}

/// Indexes the files at `rels` that have no record yet; returns how many were indexed.
async fn index(w: &Worker, rels: Vec<String>) -> io::Result<u64> {
    let (root, meta, host) = (
        w.dir().to_path_buf(),
        w.shared.meta.clone(),
        w.config().host.clone(),
    );
    let records = glommio::executor()
        .spawn_blocking(move || -> io::Result<Vec<FileInfo>> {
            let mut out = Vec::new();
            for rel in rels {
                let known = meta
                    .get_by_path_key(&meta::path_key(&rel))
                    .map_err(io::Error::other)?;
                if known.is_none() {
                    out.extend(record_for(&root, &rel, &host)?);
                }
            }
            Ok(out)
        })
        .await?;
    let notify = w.config().peers.clone();
    let inserts = records.into_iter().map(|info| {
        let origin = Origin::Local {
            notify: notify.clone(),
        };
        let meta = w.shared.meta.clone();
        async move { meta.insert(info, None, true, origin).await }
    });
    let mut n = 0;
    for r in crate::sync::futures_join_all(inserts).await {
        if let Inserted::New(info) = r.map_err(io::Error::other)? {
            n += 1;
            let p = &w.shared.migration;
            p.indexed.fetch_add(1, Ordering::Relaxed);
            p.indexed_bytes
                .fetch_add(info.size.max(0) as u64, Ordering::Relaxed);
        }
    }
    Ok(n)
}

/// Relative paths (`files/...`) of the regular files under `dir`, sorted, internal
/// directories left out (blocking).
fn list_dir(root: &Path, dir: &Path) -> io::Result<(Vec<String>, Vec<PathBuf>)> {
    let mut files = Vec::new();
    let mut dirs = Vec::new();
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let path = e.path();
        let Ok(rel) = path.strip_prefix(root) else {
            continue;
        };
        let rel = rel.to_string_lossy().into_owned();
        let ft = e.file_type()?;
        if ft.is_dir() {
            let top = rel.split('/').nth(1).unwrap_or("");
            if rel.split('/').count() == 2
                && (crate::store::names::RESERVED_TOP_DIRS.contains(&top)
                    || crate::store::names::is_internal(top))
            {
                continue;
            }
            dirs.push(path);
        } else if ft.is_file() {
            files.push(rel);
        }
    }
    Ok((files, dirs))
}

/// One migration pass over `files/`: every file without a record is indexed and queued for
/// the peers. Returns (files seen, files indexed).
pub async fn pass(w: &Worker) -> io::Result<(u64, u64)> {
    let p = &w.shared.migration;
    if p.running.swap(true, Ordering::SeqCst) {
        return Ok((0, 0));
    }
    let out = walk(w).await;
    p.running.store(false, Ordering::SeqCst);
    p.passes.fetch_add(1, Ordering::Relaxed);
    out
}

async fn walk(w: &Worker) -> io::Result<(u64, u64)> {
    let root = w.dir().to_path_buf();
    let mut stack = vec![root.join("files")];
    let (mut seen, mut indexed) = (0u64, 0u64);
    let mut batch = Vec::new();
    let mut logged = Instant::now();
    tracing::info!("migration: indexing files under files/ that have no record");
    while let Some(dir) = stack.pop() {
        if w.shutting_down() {
            break;
        }
        let listed = {
            let (root, dir) = (root.clone(), dir.clone());
            glommio::executor()
                .spawn_blocking(move || list_dir(&root, &dir))
                .await
        };
        let (files, dirs) = match listed {
            Ok(l) => l,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        stack.extend(dirs.into_iter().rev());
        for rel in files {
            seen += 1;
            w.shared.migration.seen.fetch_add(1, Ordering::Relaxed);
            batch.push(rel);
            if batch.len() >= GROUP {
                indexed += index(w, std::mem::take(&mut batch)).await?;
                glommio::timer::sleep(GROUP_PAUSE).await;
            }
            if logged.elapsed() >= PROGRESS_EVERY {
                logged = Instant::now();
                tracing::info!(seen, indexed, "migration progress");
            }
        }
    }
    indexed += index(w, batch).await?;
    tracing::info!(seen, indexed, "migration done");
    Ok((seen, indexed))
}

/// The migration duty (executor 0): a pass at start when `enable_migrate` is on, and one on
/// every `G/repair_fileinfo`.
pub async fn duty(w: Rc<Worker>) {
    let mut seen = w.shared.migration.requests();
    let mut first = w.config().enable_migrate;
    while !w.shutting_down() {
        let asked = w.shared.migration.requests();
        if first || asked != seen {
            first = false;
            seen = asked;
            if let Err(e) = pass(&w).await {
                tracing::error!(cause = %e, "migration failed; it resumes on the next start or /repair_fileinfo");
            }
        }
        glommio::timer::sleep(Duration::from_millis(200)).await;
    }
}

// ---------- parallel run: inotify ----------

/// What the watcher thread reports: a path (relative, `files/...`) that was closed after
/// writing or moved into place.
type Changed = String;

/// The inotify watcher: a thread reading events (blocking reads, never on an executor) that
/// adds a watch for every new directory and reports files closed after writing or moved in.
struct Watcher {
    fd: i32,
    root: PathBuf,
    dirs: HashMap<i32, String>,
}

const WATCH_MASK: u32 = libc::IN_CLOSE_WRITE
    | libc::IN_MOVED_TO
    | libc::IN_CREATE
    | libc::IN_DELETE_SELF
    | libc::IN_ONLYDIR;

impl Watcher {
    fn new(root: &Path) -> io::Result<Watcher> {
        // SAFETY: plain syscall; the fd is owned by the Watcher.
        let fd = unsafe { libc::inotify_init1(libc::IN_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(Watcher {
            fd,
            root: root.to_path_buf(),
            dirs: HashMap::new(),
        })
    }

    /// Watches `rel` (a directory under the root) and everything below it; files already
    /// there are reported (they may have been written before the watch existed).
    fn watch_tree(&mut self, rel: &str, found: &mut Vec<Changed>) {
        let top = rel.split('/').nth(1).unwrap_or("");
        if rel.split('/').count() >= 2
            && (crate::store::names::RESERVED_TOP_DIRS.contains(&top)
                || crate::store::names::is_internal(top))
        {
            return;
        }
        let full = self.root.join(rel);
        let Ok(c) = std::ffi::CString::new(full.as_os_str().as_encoded_bytes()) else {
            return;
        };
        let mask = WATCH_MASK;
        // SAFETY: `c` is NUL-terminated; the fd is ours.
        let wd = unsafe { libc::inotify_add_watch(self.fd, c.as_ptr(), mask) };
        if wd < 0 {
            tracing::warn!(dir = rel, cause = %io::Error::last_os_error(), "fsnotify: cannot watch");
            return;
        }
        self.dirs.insert(wd, rel.to_string());
        let Ok(entries) = std::fs::read_dir(&full) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let child = format!("{rel}/{name}");
            match e.file_type() {
                Ok(t) if t.is_dir() => self.watch_tree(&child, found),
                Ok(t) if t.is_file() => found.push(child),
                _ => {}
            }
        }
    }

    /// Blocks for the next events; reports changed files.
    fn read(&mut self, out: &mut Vec<Changed>) -> io::Result<()> {
        let mut buf = vec![0u8; 64 * 1024];
        // SAFETY: reads into our buffer.
        let n = unsafe { libc::read(self.fd, buf.as_mut_ptr().cast(), buf.len()) };
        if n < 0 {
            let e = io::Error::last_os_error();
            return if e.kind() == io::ErrorKind::Interrupted {
                Ok(())
            } else {
                Err(e)
            };
        }
        let header = std::mem::size_of::<libc::inotify_event>();
        let mut at = 0usize;
        while at + header <= n as usize {
            // SAFETY: the kernel wrote a whole event at `at`; read_unaligned copes with the
            // buffer's alignment.
            let ev: libc::inotify_event =
                unsafe { std::ptr::read_unaligned(buf.as_ptr().add(at).cast()) };
            let name_bytes = &buf[at + header..at + header + ev.len as usize];
            at += header + ev.len as usize;
            let name = name_bytes.split(|b| *b == 0).next().unwrap_or_default();
            let name = String::from_utf8_lossy(name).into_owned();
            if ev.mask & libc::IN_IGNORED != 0 {
                self.dirs.remove(&ev.wd);
                continue;
            }
            if ev.mask & libc::IN_Q_OVERFLOW != 0 {
                tracing::warn!(
                    "fsnotify: event queue overflowed; /repair_fileinfo indexes what was missed"
                );
                continue;
            }
            let Some(dir) = self.dirs.get(&ev.wd).cloned() else {
                continue;
            };
            if name.is_empty() {
                continue;
            }
            let rel = format!("{dir}/{name}");
            if ev.mask & libc::IN_ISDIR != 0 {
                if ev.mask & (libc::IN_CREATE | libc::IN_MOVED_TO) != 0 {
                    self.watch_tree(&rel, out);
                }
            } else if ev.mask & (libc::IN_CLOSE_WRITE | libc::IN_MOVED_TO) != 0 {
                out.push(rel);
            }
        }
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        // SAFETY: closing our own fd once.
        unsafe { libc::close(self.fd) };
    }
}

/// Starts the watcher thread over `root/files/`; the receiver of the changed files' paths,
/// or None (logged) when it cannot start.
fn start_watcher(
    root: std::path::PathBuf,
) -> Option<futures_channel::mpsc::UnboundedReceiver<Changed>> {
    let (tx, rx) = futures_channel::mpsc::unbounded::<Changed>();
    let started = std::thread::Builder::new()
        .name("fsnotify".into())
        .spawn(move || {
            let mut watcher = match Watcher::new(&root) {
                Ok(wt) => wt,
                Err(e) => {
                    tracing::error!(cause = %e, "fsnotify: inotify unavailable; parallel run is off");
                    return;
                }
            };
            let _ = std::fs::create_dir_all(root.join("files"));
            let mut found = Vec::new();
            watcher.watch_tree("files", &mut found);
            tracing::info!(dirs = watcher.dirs.len(), "fsnotify: watching files/");
            loop {
                for rel in found.drain(..) {
                    if tx.unbounded_send(rel).is_err() {
                        return;
                    }
                }
                if let Err(e) = watcher.read(&mut found) {
                    tracing::error!(cause = %e, "fsnotify: reading events failed; parallel run stops");
                    return;
                }
            }
        });
    match started {
        Ok(_) => Some(rx),
        Err(e) => {
            tracing::error!(cause = %e, "fsnotify: cannot start the watcher thread");
            None
        }
    }
}

/// Per file of `due` (blocking pool): whether it may be indexed now, i.e. its mtime is as
/// old as `delay` too (a writer that never closes) and nobody has it open for writing (then
/// its close, IN_CLOSE_WRITE, is awaited).
async fn quiet_files(
    root: std::path::PathBuf,
    due: Vec<String>,
    delay: Duration,
) -> Vec<(String, bool)> {
    glommio::executor()
        .spawn_blocking(move || {
            due.into_iter()
                .map(|rel| {
                    let path = root.join(&rel);
                    let old = std::fs::metadata(&path)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| t.elapsed().ok())
                        .map(|age| age >= delay);
                    let open = being_written(&path) == Some(true);
                    (rel, old.unwrap_or(true) && !open)
                })
                .collect()
        })
        .await
}

/// The parallel-run duty (executor 0, `enable_fsnotify` at start): a watcher thread reports
/// closed or moved-in files; each is indexed once nothing touched it for `sync_delay`
/// seconds (and its mtime is that old), so a file still being written is never indexed early.
pub async fn watch(w: Rc<Worker>) {
    let Some(mut rx) = start_watcher(w.dir().to_path_buf()) else {
        return;
    };
    let mut pending: HashMap<String, Instant> = HashMap::new();
    while !w.shutting_down() {
        // Take what arrived, then index what has been quiet long enough.
        while let Ok(rel) = rx.try_recv() {
            if pending.len() < PENDING_MAX || pending.contains_key(&rel) {
                pending.insert(rel, Instant::now());
            }
        }
        let delay = Duration::from_secs(w.config().sync_delay.max(0) as u64).max(SETTLE_MIN);
        let now = Instant::now();
        let due: Vec<String> = pending
            .iter()
            .filter(|(_, at)| now.duration_since(**at) >= delay)
            .map(|(rel, _)| rel.clone())
            .collect();
        if !due.is_empty() {
            let quiet = quiet_files(w.dir().to_path_buf(), due, delay).await;
            let mut ready = Vec::new();
            for (rel, old) in quiet {
                if old {
                    pending.remove(&rel);
                    ready.push(rel);
                } else {
                    pending.insert(rel, Instant::now());
                }
            }
            for group in ready.chunks(GROUP) {
                match index(&w, group.to_vec()).await {
                    Ok(n) if n > 0 => tracing::info!(indexed = n, "fsnotify: files indexed"),
                    Ok(_) => {}
                    Err(e) => tracing::warn!(cause = %e, "fsnotify: indexing failed"),
                }
            }
        }
        glommio::timer::sleep(Duration::from_millis(200)).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_open_for_writing_is_seen_as_being_written() {
        let d = tempfile::tempdir().unwrap();
        let p = d.path().join("f");
        let w = std::fs::File::create(&p).unwrap();
        assert_eq!(being_written(&p), Some(true));
        drop(w);
        assert_eq!(being_written(&p), Some(false));
    }

    #[test]
    fn a_found_file_gets_go_fastdfs_migration_record() {
        let d = tempfile::tempdir().unwrap();
        let dir = d.path().join("files/M00/00/01");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.jpg"), b"abc").unwrap();
        std::fs::write(dir.join("empty"), b"").unwrap();
        let rel = "files/M00/00/01/a.jpg";
        let r = record_for(d.path(), rel, "http://h:1").unwrap().unwrap();
        assert_eq!(r.md5, meta::path_key(rel), "the id is the path key");
        assert_eq!(r.offset, crate::json::OFFSET_MIGRATED);
        assert_eq!(
            (r.path.as_str(), r.name.as_str(), r.size),
            ("files/M00/00/01", "a.jpg", 3)
        );
        assert_eq!(r.peers, Some(vec!["http://h:1".to_string()]));
        assert!(record_for(d.path(), "files/M00/00/01/empty", "h")
            .unwrap()
            .is_none());
        assert!(record_for(d.path(), "files/M00/00/01/gone", "h")
            .unwrap()
            .is_none());
        for internal in [
            "files/_tmp/x/y",
            "files/haystack/1/100",
            "files/_big/1/x.bin",
        ] {
            let p = d.path().join(internal);
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(&p, b"x").unwrap();
            assert!(
                record_for(d.path(), internal, "h").unwrap().is_none(),
                "{internal}"
            );
        }
    }
}
