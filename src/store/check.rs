//! `fastdfs check [--repair]`: verifies every indexed file against its record (exists, size,
//! content digest) with the server stopped; a merged small file is checked inside its
//! container (its bytes there, the marker, the digest). `--repair` drops records of missing
//! files, moves files whose content no longer matches to `data/quarantine/` (and drops their
//! records; a damaged merged file's record is dropped, its bytes stay dead in the container),
//! and indexes files under `files/` that have no record (as the go-fastdfs import does).

use crate::json::FileInfo;
use crate::store::meta::Meta;
use crate::store::progress::Progress;
use std::path::Path;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CheckReport {
    pub checked: usize,
    pub ok: usize,
    pub missing: Vec<String>,
    pub size_mismatch: Vec<String>,
    pub digest_mismatch: Vec<String>,
    pub repaired: usize,
    pub indexed: usize,
}

impl CheckReport {
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.size_mismatch.is_empty() && self.digest_mismatch.is_empty()
    }
}

/// Checks (and with `repair` fixes) the store of runtime dir `dir`; progress is logged at most
/// every 5 s.
pub fn check(
    dir: &Path,
    meta: &Meta,
    sha1: bool,
    dedup: bool,
    host: &str,
    repair: bool,
) -> std::io::Result<CheckReport> {
    let records = read_records(meta)?;
    // Records of migrated files (offset -2) are not checked.
    let total = records
        .iter()
        .filter(|i| i.is_merged() || i.offset == crate::json::OFFSET_PLAIN)
        .count();
    tracing::info!(files = total, "checking files against their records");
    let mut report = CheckReport::default();
    let mut drop_records = Vec::new();
    let mut progress = Progress::new();
    let mut log_progress = |report: &CheckReport| {
        if progress.tick() {
            tracing::info!(
                checked = report.checked,
                total,
                ok = report.ok,
                missing = report.missing.len(),
                mismatch = report.size_mismatch.len() + report.digest_mismatch.len(),
                "check progress"
            );
        }
    };
    for info in records.iter().filter(|i| i.is_merged()) {
        log_progress(&report);
        report.checked += 1;
        let at = meta.location(info).map_err(std::io::Error::other)?;
        check_merged(dir, info, at, sha1, dedup, &mut report, &mut drop_records)?;
    }
    for info in records
        .iter()
        .filter(|i| i.offset == crate::json::OFFSET_PLAIN)
    {
        log_progress(&report);
        report.checked += 1;
        check_plain(
            dir,
            info,
            sha1,
            dedup,
            repair,
            &mut report,
            &mut drop_records,
        )?;
    }
    if repair {
        report.repaired = drop_records.len();
        meta.remove_records(&drop_records)
            .map_err(std::io::Error::other)?;
        tracing::info!(
            dropped = drop_records.len(),
            "records dropped; indexing files without records"
        );
        let imported = crate::store::import::import(dir, dir, meta, sha1, host)?;
        report.indexed = imported.from_files;
    }
    Ok(report)
}

/// Every record, read with progress logged.
fn read_records(meta: &Meta) -> std::io::Result<Vec<FileInfo>> {
    let mut records: Vec<FileInfo> = Vec::new();
    let mut progress = Progress::new();
    meta.for_each(|info| {
        records.push(info);
        if progress.tick() {
            tracing::info!(records = records.len(), "check progress (reading records)");
        }
        true
    })
    .map_err(std::io::Error::other)?;
    Ok(records)
}

/// One plain file: it exists with the recorded size and (with dedup; without it the id is a
/// hash of the path, not of the content) the recorded digest.
fn check_plain(
    dir: &Path,
    info: &FileInfo,
    sha1: bool,
    dedup: bool,
    repair: bool,
    report: &mut CheckReport,
    drop_records: &mut Vec<String>,
) -> std::io::Result<()> {
    let rel = info.rel_path();
    let full = dir.join(&rel);
    let Ok(m) = std::fs::metadata(&full) else {
        report.missing.push(rel);
        drop_records.push(info.md5.clone());
        return Ok(());
    };
    if m.len() as i64 != info.size {
        report.size_mismatch.push(rel);
        return quarantine(dir, &full, info, repair, drop_records);
    }
    if dedup && crate::store::import::hash_file(&full, sha1)? != info.md5 {
        report.digest_mismatch.push(rel);
        return quarantine(dir, &full, info, repair, drop_records);
    }
    report.ok += 1;
    Ok(())
}

/// One merged file: its container holds `size` bytes at `offset`, starting with the marker, and
/// (with dedup, unless the id is a path key) the rest has the recorded digest.
fn check_merged(
    dir: &Path,
    info: &FileInfo,
    at: Option<(u64, u64)>,
    sha1: bool,
    dedup: bool,
    report: &mut CheckReport,
    drop: &mut Vec<String>,
) -> std::io::Result<()> {
    use crate::store::haystack;
    let rel = info.rel_path();
    let size = info.size.max(0) as u64;
    let located = at.map(|(n, offset)| (dir.join(&info.path).join(n.to_string()), offset));
    let bytes = match located.map(|(c, offset)| haystack::read_blocking(&c, offset, size)) {
        Some(Ok(Some(b))) => b,
        Some(Err(e)) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        _ => {
            report.missing.push(rel);
            drop.push(info.md5.clone());
            return Ok(());
        }
    };
    let path_named = info.md5 == crate::store::meta::path_key(&rel);
    if dedup && !path_named {
        let mut h = crate::store::write::Hasher::new(sha1);
        h.update(&bytes);
        if h.hex() != info.md5 {
            report.digest_mismatch.push(rel);
            drop.push(info.md5.clone());
            return Ok(());
        }
    }
    report.ok += 1;
    Ok(())
}

fn quarantine(
    dir: &Path,
    full: &Path,
    info: &FileInfo,
    repair: bool,
    drop: &mut Vec<String>,
) -> std::io::Result<()> {
    if !repair {
        return Ok(());
    }
    let q = dir.join("data").join("quarantine");
    std::fs::create_dir_all(&q)?;
    std::fs::rename(full, q.join(format!("{}-{}", info.md5, info.stored_name())))?;
    drop.push(info.md5.clone());
    Ok(())
}
