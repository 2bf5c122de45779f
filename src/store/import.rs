//! In-place switch from go-fastdfs: builds our metadata from a go-fastdfs runtime dir.
//!
//! Sources, in order: go-fastdfs' LevelDB (`data/fileserver.db`, read from a private copy so
//! the original is never touched), then every regular file under `files/` that no record
//! names (hashed with the configured digest, like go-fastdfs' migration). Existing files are
//! never modified, moved or deleted, so every URL go-fastdfs returned keeps working: downloads
//! are served from the same paths. Runs before the executors start (single writer).

use crate::json::FileInfo;
use crate::store::meta::{self, Meta};
use crate::store::progress::Progress;
use std::collections::HashSet;
use std::path::{Path, PathBuf};

/// Marker written once the import of a runtime dir is complete.
const DONE_MARKER: &str = "imported-from-go-fastdfs";
/// Records committed per transaction during an import.
const IMPORT_BATCH: usize = 2000;

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub from_leveldb: usize,
    pub from_files: usize,
    pub skipped: usize,
}

/// Imports `dir` itself when it holds go-fastdfs data and was not imported yet.
pub fn import_in_place(
    dir: &Path,
    meta: &Meta,
    sha1: bool,
    host: &str,
) -> std::io::Result<Option<Report>> {
    let marker = dir.join("data").join("meta").join(DONE_MARKER);
    let has_go_data = dir.join("data").join("fileserver.db").is_dir();
    if marker.exists() || !has_go_data {
        return Ok(None);
    }
    tracing::info!(dir = %dir.display(), "go-fastdfs data found: importing metadata (files are left as they are)");
    let report = import(dir, dir, meta, sha1, host)?;
    std::fs::write(&marker, format!("{report:?}\n"))?;
    std::fs::File::open(&marker)?.sync_all()?;
    Ok(Some(report))
}

/// Why `from` cannot be imported (`fastdfs import --from`): it does not exist, is not a
/// directory, or holds neither `files/` nor `data/fileserver.db`. Nothing is created.
pub fn check_source(from: &Path) -> Result<(), String> {
    let shown = from.display();
    match std::fs::metadata(from) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(format!("{shown} does not exist"))
        }
        Err(e) => return Err(format!("cannot read {shown}: {e}")),
        Ok(m) if !m.is_dir() => return Err(format!("{shown} is not a directory")),
        Ok(_) => {}
    }
    if !from.join("files").is_dir() && !from.join("data").join("fileserver.db").is_dir() {
        return Err(format!(
            "{shown} is not a go-fastdfs runtime dir: it holds neither files/ nor data/fileserver.db"
        ));
    }
    Ok(())
}

/// Imports the go-fastdfs runtime dir `from` into the runtime dir `to` (which holds `meta`).
/// When they differ, files are copied into `to/files/` at the same relative paths first.
/// Progress is logged at most every 5 s per phase (copy, LevelDB, files without records).
pub fn import(
    from: &Path,
    to: &Path,
    meta: &Meta,
    sha1: bool,
    host: &str,
) -> std::io::Result<Report> {
    if from != to {
        check_source(from).map_err(std::io::Error::other)?;
        let mut progress = Progress::new();
        copy_tree(&from.join("files"), &to.join("files"), &mut || {
            if progress.tick() {
                tracing::info!(files = progress.done(), "import progress (copying files)");
            }
        })?;
    }
    let mut report = Report::default();
    let mut known: HashSet<String> = HashSet::new();
    let ldb = from.join("data").join("fileserver.db");
    if ldb.is_dir() {
        import_leveldb(&ldb, to, meta, &mut known, &mut report)?;
    }
    index_unrecorded(to, meta, sha1, host, &known, &mut report)?;
    tracing::info!(?report, "import finished");
    Ok(report)
}

/// Imports go-fastdfs' LevelDB records whose content is under `to`; `known` gains each
/// record's path (a path seen twice keeps its first record).
fn import_leveldb(
    ldb: &Path,
    to: &Path,
    meta: &Meta,
    known: &mut HashSet<String>,
    report: &mut Report,
) -> std::io::Result<()> {
    let records = read_leveldb(ldb)?;
    let total = records.len();
    let mut progress = Progress::new();
    let mut batch = Vec::new();
    for info in records {
        if progress.tick() {
            tracing::info!(
                records = progress.done(),
                total,
                imported = report.from_leveldb,
                skipped = report.skipped,
                "import progress (LevelDB)"
            );
        }
        let rel = info.rel_path();
        if !content_present(to, &info) || !known.insert(rel) {
            report.skipped += 1;
            continue;
        }
        batch.push(info);
        report.from_leveldb += 1;
        if batch.len() == IMPORT_BATCH {
            meta.import_batch(std::mem::take(&mut batch))
                .map_err(std::io::Error::other)?;
        }
    }
    meta.import_batch(batch).map_err(std::io::Error::other)
}

/// Records every file under `to/files/` that has no record yet (neither imported from
/// LevelDB nor indexed before), hashing its content.
fn index_unrecorded(
    to: &Path,
    meta: &Meta,
    sha1: bool,
    host: &str,
    known: &HashSet<String>,
    report: &mut Report,
) -> std::io::Result<()> {
    let mut batch = Vec::new();
    let files = to.join("files");
    let mut progress = Progress::new();
    walk_files(&files, &mut |path| {
        if progress.tick() {
            tracing::info!(
                files = progress.done(),
                indexed = report.from_files,
                "import progress (files without records)"
            );
        }
        let rel = format!(
            "files/{}",
            path.strip_prefix(&files).unwrap_or(path).to_string_lossy()
        );
        if known.contains(&rel) {
            return Ok(());
        }
        // Already indexed (an earlier import or upload): no need to hash it again.
        let key = meta::path_key(&rel);
        if meta
            .get_by_path_key(&key)
            .map_err(std::io::Error::other)?
            .is_some()
        {
            return Ok(());
        }
        let Some(info) = record_for_file(to, &rel, sha1, host)? else {
            return Ok(());
        };
        batch.push(info);
        report.from_files += 1;
        if batch.len() == IMPORT_BATCH {
            meta.import_batch(std::mem::take(&mut batch))
                .map_err(std::io::Error::other)?;
        }
        Ok(())
    })?;
    meta.import_batch(batch).map_err(std::io::Error::other)
}

/// Whether a record's content is on disk: its own file, or (merged) its bytes in the
/// container its locator names.
fn content_present(root: &Path, info: &FileInfo) -> bool {
    match info.content() {
        crate::json::Content::Merged(offset) => {
            let Some(n) = crate::store::haystack::container_of(info.stored_name()) else {
                return false;
            };
            let container = root.join(&info.path).join(n.to_string());
            std::fs::metadata(container)
                .is_ok_and(|m| m.len() >= offset.saturating_add(info.size.max(0) as u64))
        }
        _ => root.join(info.rel_path()).is_file(),
    }
}

/// Records for files under `files/` that have none (`repair_fileinfo`, a running server:
/// the caller inserts them through the committer). Bounded by what is on disk.
pub fn unindexed_records(
    root: &Path,
    meta: &Meta,
    sha1: bool,
    host: &str,
) -> std::io::Result<Vec<FileInfo>> {
    let files = root.join("files");
    let mut out = Vec::new();
    walk_files(&files, &mut |path| {
        let rel = format!(
            "files/{}",
            path.strip_prefix(&files).unwrap_or(path).to_string_lossy()
        );
        let key = meta::path_key(&rel);
        if meta
            .get_by_path_key(&key)
            .map_err(std::io::Error::other)?
            .is_none()
        {
            out.extend(record_for_file(root, &rel, sha1, host)?);
        }
        Ok(())
    })?;
    Ok(out)
}

/// Content records of go-fastdfs' LevelDB: values that are FileInfo JSON stored under their own
/// md5 (path keys and tus ids point at the same records and are skipped).
fn read_leveldb(ldb: &Path) -> std::io::Result<Vec<FileInfo>> {
    use rusty_leveldb::LdbIterator;
    // Open a private copy: LevelDB recovery writes to the directory it opens.
    let copy = std::env::temp_dir().join(format!("fastdfs-import-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&copy);
    copy_tree(ldb, &copy, &mut || {})?;
    let _ = std::fs::remove_file(copy.join("LOCK"));
    let opts = rusty_leveldb::Options {
        create_if_missing: false,
        ..Default::default()
    };
    tracing::info!(path = %ldb.display(), "reading go-fastdfs LevelDB");
    let mut db = rusty_leveldb::DB::open(&copy, opts)
        .map_err(|e| std::io::Error::other(format!("cannot read {}: {e}", ldb.display())))?;
    let mut it = db
        .new_iter()
        .map_err(|e| std::io::Error::other(e.to_string()))?;
    let mut out = Vec::new();
    let mut progress = Progress::new();
    while it.advance() {
        if progress.tick() {
            tracing::info!(
                entries = progress.done(),
                records = out.len(),
                "import progress (reading LevelDB)"
            );
        }
        let Some((k, v)) = it.current() else { continue };
        let Ok(info) = serde_json::from_slice::<FileInfo>(&v) else {
            continue;
        };
        if info.md5.as_bytes() != &k[..] || info.md5.is_empty() || info.path.is_empty() {
            continue;
        }
        out.push(info);
    }
    drop(it);
    drop(db);
    let _ = std::fs::remove_dir_all(&copy);
    Ok(out)
}

/// A record for a file found on disk without one (go-fastdfs' migration, but with a real
/// content digest so dedup works). Internal directories are skipped.
fn record_for_file(
    root: &Path,
    rel: &str,
    sha1: bool,
    host: &str,
) -> std::io::Result<Option<FileInfo>> {
    let parts: Vec<&str> = rel.split('/').collect();
    if parts.len() < 3 || crate::store::names::RESERVED_TOP_DIRS.contains(&parts[1]) {
        return Ok(None);
    }
    let full = root.join(rel);
    let m = std::fs::metadata(&full)?;
    if m.len() == 0 {
        return Ok(None);
    }
    let digest = hash_file(&full, sha1)?;
    let offset = crate::json::OFFSET_PLAIN;
    Ok(Some(crate::store::found_record(
        rel, &m, digest, host, offset,
    )))
}

pub fn hash_file(path: &Path, sha1: bool) -> std::io::Result<String> {
    crate::store::write::Hasher::of_reader(std::fs::File::open(path)?, sha1)
}

fn walk_files(dir: &Path, f: &mut dyn FnMut(&Path) -> std::io::Result<()>) -> std::io::Result<()> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Ok(());
    };
    let mut entries: Vec<_> = entries.flatten().collect();
    entries.sort_by_key(|e| e.file_name());
    for e in entries {
        let t = e.file_type()?;
        let path: PathBuf = e.path();
        if t.is_dir() {
            walk_files(&path, f)?;
        } else if t.is_file() {
            f(&path)?;
        }
    }
    Ok(())
}

/// Copies a tree (files that already exist at the target are left alone); `on_file` is
/// called once per file.
fn copy_tree(from: &Path, to: &Path, on_file: &mut dyn FnMut()) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    let Ok(entries) = std::fs::read_dir(from) else {
        return Ok(());
    };
    for e in entries.flatten() {
        let target = to.join(e.file_name());
        let t = e.file_type()?;
        if t.is_dir() {
            copy_tree(&e.path(), &target, on_file)?;
        } else if t.is_file() {
            on_file();
            if !target.exists() {
                std::fs::copy(e.path(), &target)?;
                std::fs::File::open(&target)?.sync_all()?;
            }
        }
    }
    std::fs::File::open(to)?.sync_all()?;
    Ok(())
}

impl Meta {
    /// Direct, synchronous insert of imported records (only before the executors start).
    pub fn import_batch(&self, records: Vec<FileInfo>) -> Result<(), meta::MetaError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut by_shard: std::collections::BTreeMap<usize, Vec<FileInfo>> = Default::default();
        for r in records {
            by_shard
                .entry(meta::shard_of(&r.md5, self.shard_count()))
                .or_default()
                .push(r);
        }
        for (shard, recs) in by_shard {
            self.insert_records(shard, recs)?;
        }
        crate::failpoint::hit("import.batch");
        Ok(())
    }
}
