//! The ordered name index (table `listing`), kept in the same transaction as the records it
//! mirrors: every file stored as its own file under `files/` (not a merged one, not under a
//! server-internal directory) by its relative path, so that a directory's files are one range
//! scan in byte order (S3's ListObjectsV2 pages over it without reading any record).
//! - `<listing key of rel_path>` -> md5: the listing key is the path itself, or for a path
//!   longer than `KEY_PATH_BYTES_MAX` (LMDB keys are at most 511 bytes) its first bytes at a
//!   character boundary, `\xff` and the md5 of the whole path: such paths sort by their first
//!   `KEY_PATH_BYTES_MAX` bytes and then by hash;
//! - `<listing key of files/<bucket>/<dirs>/>` -> `dir <ms> <that path>`: an S3 folder marker
//!   (docs/S3.md), S3's empty object of key `<dirs>/`, put at unix milliseconds `<ms>`. It is no
//!   record: written and removed by the marker's PUT and DELETE (`Meta::put_folder`,
//!   `Meta::remove_folder`, which queue the change for fastdfs-rs peers in the same
//!   transaction, and `Meta::folder_from_peer` for theirs) in the shard of its path key, it
//!   sorts where S3 sorts its key (a file's path never ends in `/`), and no go-fastdfs read
//!   (records, stats, days, repair) sees it;
//! - A removed marker leaves a tombstone in the shard's `tombs` table, under
//!   `dir:<path key>` (never an md5) -> `<ms> <path>`: when it was removed, so that a peer's
//!   older put does not bring it back and a repair can tell the peers (`folder_tomb_key`);
//! - `\0version` -> `1`: the index is complete. A store from before this table (or a crash in
//!   the middle of building it) is indexed from its records when it is opened: it holds no
//!   marker yet (markers are written only once the store is open, the table complete).

use super::*;

/// Longest path kept whole in a listing key.
pub const KEY_PATH_BYTES_MAX: usize = 400;

/// The listing key of a relative path (`files/...`).
pub fn listing_key(rel_path: &str) -> Vec<u8> {
    if rel_path.len() <= KEY_PATH_BYTES_MAX {
        return rel_path.as_bytes().to_vec();
    }
    let mut cut = KEY_PATH_BYTES_MAX;
    while !rel_path.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut k = Vec::with_capacity(cut + 33);
    k.extend_from_slice(&rel_path.as_bytes()[..cut]);
    k.push(0xff);
    k.extend_from_slice(md5_hex(rel_path).as_bytes());
    k
}

/// What a listing entry names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Listed {
    /// A stored file: the md5 of its record.
    File(String),
    /// A folder marker: its path (`files/<bucket>/<dirs>/`) and when it was put, unix ms.
    Folder { rel: String, modified_ms: i64 },
}

/// The start of a folder marker's value (an md5 never holds a space).
const FOLDER_TAG: &str = "dir ";

impl Listed {
    fn decode(v: &[u8]) -> Listed {
        let v = String::from_utf8_lossy(v);
        let folder = v.strip_prefix(FOLDER_TAG).and_then(|rest| {
            let (ms, rel) = rest.split_once(' ')?;
            Some(Listed::Folder {
                rel: rel.to_string(),
                modified_ms: ms.parse().ok()?,
            })
        });
        folder.unwrap_or_else(|| Listed::File(v.into_owned()))
    }
}

/// Whether `rel` is a folder marker's path: a directory under `files/`, its trailing `/` kept.
fn is_folder_path(rel: &str) -> bool {
    rel.starts_with("files/") && rel.ends_with('/') && !rel.ends_with("//")
}

/// Where a folder marker's tombstone is kept in `tombs`: `dir:` and its path key (a file's
/// tombstone is keyed by a bare md5).
pub(super) fn folder_tomb_key(rel: &str) -> Vec<u8> {
    let mut k = b"dir:".to_vec();
    k.extend_from_slice(path_key(rel).as_bytes());
    k
}

/// A marker's tombstone value: `<ms> <rel>`; its time.
fn tomb_time(v: &[u8]) -> Option<i64> {
    std::str::from_utf8(v).ok()?.split_once(' ')?.0.parse().ok()
}

/// What is known here of the folder marker `rel`: put (`true`) or removed, and when (unix
/// ms); None when neither.
pub(super) fn folder_state(
    s: &Shard,
    txn: &impl Transaction,
    rel: &str,
) -> Result<Option<(bool, i64)>, MetaError> {
    match txn.get(s.listing, &listing_key(rel)) {
        Ok(v) => {
            if let Listed::Folder { modified_ms, .. } = Listed::decode(v) {
                return Ok(Some((true, modified_ms)));
            }
        }
        Err(lmdb::Error::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    match txn.get(s.tombs, &folder_tomb_key(rel)) {
        Ok(v) => Ok(tomb_time(v).map(|ms| (false, ms))),
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Puts (`put`) or removes the folder marker `rel` at `time` (unix ms); a removal leaves a
/// tombstone of that time, a put clears it. A peer's change (`from_peer`) is last-writer-wins:
/// applied only over no marker, or a marker put or removed here before `time` (else
/// NotFound); a peer's removal of a marker not here still records its tombstone. A local
/// removal of no marker is NotFound.
pub(super) fn apply_folder(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    rel: &str,
    put: bool,
    time: i64,
    from_peer: bool,
) -> Result<OpResult, MetaError> {
    assert!(is_folder_path(rel), "a folder marker's path: {rel}");
    let state = folder_state(s, txn, rel)?;
    let tomb_key = folder_tomb_key(rel);
    let write_tomb = |txn: &mut lmdb::RwTransaction<'_>| {
        let value = format!("{time} {rel}");
        txn.put(s.tombs, &tomb_key, &value.as_bytes(), WriteFlags::empty())
    };
    if from_peer && state.is_some_and(|(_, here)| here >= time) {
        return Ok(OpResult::NotFound);
    }
    let key = listing_key(rel);
    if put {
        let value = format!("{FOLDER_TAG}{time} {rel}");
        txn.put(s.listing, &key, &value.as_bytes(), WriteFlags::empty())?;
        del_ok(txn.del(s.tombs, &tomb_key, None))?;
        return Ok(OpResult::Done);
    }
    if !matches!(state, Some((true, _))) {
        if from_peer {
            write_tomb(txn)?;
        }
        return Ok(OpResult::NotFound);
    }
    txn.del(s.listing, &key, None)?;
    write_tomb(txn)?;
    Ok(OpResult::Done)
}

/// The paths of every folder marker and marker tombstone of the shards, for a repair.
pub(super) fn folder_paths(shards: &[Shard]) -> Result<Vec<String>, MetaError> {
    let mut out = Vec::new();
    for s in shards {
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.listing)?;
        for item in cur.iter_from(b"\x01") {
            let (_, v) = item?;
            if v.starts_with(FOLDER_TAG.as_bytes()) {
                if let Listed::Folder { rel, .. } = Listed::decode(v) {
                    out.push(rel);
                }
            }
        }
        let mut cur = txn.open_ro_cursor(s.tombs)?;
        for item in cur.iter_from(b"dir:") {
            let (k, v) = item?;
            if !k.starts_with(b"dir:") {
                break;
            }
            let rel = std::str::from_utf8(v).ok().and_then(|v| v.split_once(' '));
            if let Some((_, rel)) = rel.filter(|(_, r)| is_folder_path(r)) {
                out.push(rel.to_string());
            }
        }
    }
    Ok(out)
}

/// When the folder marker `rel` was put (unix ms), if it is there.
pub(super) fn folder(s: &Shard, rel: &str) -> Result<Option<i64>, MetaError> {
    let txn = s.env.begin_ro_txn()?;
    match txn.get(s.listing, &listing_key(rel)) {
        Ok(v) => match Listed::decode(v) {
            Listed::Folder { modified_ms, .. } => Ok(Some(modified_ms)),
            Listed::File(_) => Ok(None),
        },
        Err(lmdb::Error::NotFound) => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Whether a record belongs in the index, and under which path.
fn listed_path(info: &FileInfo) -> Option<String> {
    if info.is_merged() {
        return None;
    }
    let rel = info.rel_path();
    let first = rel.strip_prefix("files/")?.split('/').next()?;
    if crate::store::names::RESERVED_TOP_DIRS.contains(&first) {
        return None;
    }
    Some(rel)
}

/// Adds a record to the index (insert).
pub(super) fn index(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    info: &FileInfo,
) -> Result<(), MetaError> {
    if let Some(rel) = listed_path(info) {
        txn.put(
            s.listing,
            &listing_key(&rel),
            &info.md5.as_bytes(),
            WriteFlags::empty(),
        )?;
    }
    Ok(())
}

/// Removes a record from the index, if the entry is still its own (a replacing record of
/// another md5 at the same path may have taken it over in the same transaction).
pub(super) fn unindex(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    info: &FileInfo,
) -> Result<(), MetaError> {
    match listed_path(info) {
        Some(rel) => del_own(txn, s.listing, &listing_key(&rel), &info.md5),
        None => Ok(()),
    }
}

/// Records indexed per transaction while the index is built.
const BUILD_RECORDS_PER_TXN: usize = 10_000;

/// Builds the index of a shard from its records unless it is complete: in transactions of
/// `BUILD_RECORDS_PER_TXN` records (memory stays bounded for millions of records), the
/// version key last; a crash in the middle starts over at the next open.
pub(super) fn ensure_built(s: &Shard) -> Result<(), MetaError> {
    {
        let txn = s.env.begin_ro_txn()?;
        match txn.get(s.listing, &VERSION_KEY) {
            Ok(_) => return Ok(()),
            Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    rebuild_from_records(s, s.listing, b"1", BUILD_RECORDS_PER_TXN, |txn, info| {
        index(s, txn, info)
    })?;
    Ok(())
}

/// Up to `limit` entries `(listing key, what it names)` whose key starts with `prefix` and is at least
/// `from`, in byte order, over every shard (each shard gives at most `limit`; they are merged).
pub(super) fn page(
    shards: &[Shard],
    prefix: &[u8],
    from: &[u8],
    limit: usize,
) -> Result<Vec<(Vec<u8>, Listed)>, MetaError> {
    let start: &[u8] = if from > prefix { from } else { prefix };
    let mut out: Vec<(Vec<u8>, Listed)> = Vec::new();
    for s in shards {
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.listing)?;
        // An empty start would position before `\0version`: skip that key.
        let first: &[u8] = if start.is_empty() { b"\x01" } else { start };
        for (taken, item) in cur.iter_from(first).enumerate() {
            let (k, v) = item?;
            if !k.starts_with(prefix) || taken == limit {
                break;
            }
            out.push((k.to_vec(), Listed::decode(v)));
        }
    }
    out.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    out.truncate(limit);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_old_store_is_indexed_on_open_in_bounded_transactions() {
        let d = tempfile::tempdir().unwrap();
        let n = BUILD_RECORDS_PER_TXN * 2 + 7;
        {
            let meta = Meta::open(d.path(), 1, 1).unwrap();
            let records: Vec<FileInfo> = (0..n)
                .map(|i| FileInfo {
                    name: format!("f{i:06}"),
                    path: "files/b/d".into(),
                    md5: md5_hex(&i.to_string()),
                    size: 1,
                    offset: crate::json::OFFSET_PLAIN,
                    ..Default::default()
                })
                .collect();
            meta.insert_records(0, records).unwrap();
            // Forget the index, as a store from before it.
            let s = &meta.shards[0];
            let mut txn = s.env.begin_rw_txn().unwrap();
            txn.clear_db(s.listing).unwrap();
            txn.commit().unwrap();
        }
        let meta = Meta::open(d.path(), 1, 1).unwrap();
        let prefix = listing_key("files/b/d/");
        let all = meta.list_page(&prefix, &prefix, n + 10).unwrap();
        assert_eq!(all.len(), n, "every record indexed");
        assert_eq!(all[0].0, b"files/b/d/f000000".to_vec());
        assert!(all.windows(2).all(|w| w[0].0 < w[1].0), "in byte order");
    }

    #[test]
    fn short_paths_are_their_own_keys_and_long_ones_keep_their_order_prefix() {
        assert_eq!(listing_key("files/b/k.txt"), b"files/b/k.txt".to_vec());
        let long = format!("files/b/{}", "é".repeat(300));
        let k = listing_key(&long);
        assert!(k.len() <= 511, "fits an LMDB key");
        assert!(long.as_bytes().starts_with(&k[..KEY_PATH_BYTES_MAX - 1]));
        assert_ne!(
            listing_key(&format!("{long}x")),
            k,
            "distinct paths, distinct keys"
        );
    }
}
