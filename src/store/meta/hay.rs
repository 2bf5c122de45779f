//! The container index of merged small files (table `hay`), kept in the same transaction as
//! the records it mirrors, so that compaction never scans every record:
//! - `E<dir>\0<N:be64><offset:be64>` -> `<size:le64><md5>`: each live merged file by where its
//!   bytes are now (a container's files are one range scan, in offset order);
//! - `C<dir>\0<N:be64>` -> `<files:le64><bytes:le64>`: live files and bytes per container and
//!   shard (a pass sums these over the shards instead of reading any record);
//! - `\0version` -> `1`: the index is complete. A store from before this table (or a crash in
//!   the middle of building it) is indexed from its records when it is opened.

use super::*;

fn container_prefix(tag: u8, dir: &str, n: u64) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + dir.len() + 1 + 16);
    k.push(tag);
    k.extend_from_slice(dir.as_bytes());
    k.push(0);
    k.extend_from_slice(&n.to_be_bytes());
    k
}

fn entry_key(dir: &str, (n, offset): (u64, u64)) -> Vec<u8> {
    let mut k = container_prefix(b'E', dir, n);
    k.extend_from_slice(&offset.to_be_bytes());
    k
}

fn decode_pair(v: &[u8]) -> (u64, u64) {
    match (v.get(..8), v.get(8..16)) {
        (Some(a), Some(b)) => (
            u64::from_le_bytes(a.try_into().expect("8 bytes")),
            u64::from_le_bytes(b.try_into().expect("8 bytes")),
        ),
        _ => (0, 0),
    }
}

/// Where a merged record's bytes are, seen from inside a transaction (the `moved` table wins
/// over the locator).
pub(super) fn location_in<T: Transaction>(
    s: &Shard,
    txn: &T,
    info: &FileInfo,
) -> Result<Option<(u64, u64)>, MetaError> {
    let Content::Merged(offset) = info.content() else {
        return Ok(None);
    };
    match txn.get(s.moved, &info.md5.as_bytes()) {
        Ok(v) => Ok(parse_location(v)),
        Err(lmdb::Error::NotFound) => {
            Ok(crate::store::haystack::container_of(info.stored_name()).map(|n| (n, offset)))
        }
        Err(e) => Err(e.into()),
    }
}

/// Adds (`sign` 1) or removes (`sign` -1) a merged file at `at` to or from the index.
pub(super) fn account(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    info: &FileInfo,
    at: (u64, u64),
    sign: i64,
) -> Result<(), MetaError> {
    assert!(sign == 1 || sign == -1, "one file in or out");
    let size = info.size.max(0) as u64;
    let key = entry_key(&info.path, at);
    if sign > 0 {
        let mut v = Vec::with_capacity(8 + info.md5.len());
        v.extend_from_slice(&size.to_le_bytes());
        v.extend_from_slice(info.md5.as_bytes());
        txn.put(s.hay, &key, &v, WriteFlags::empty())?;
    } else {
        match txn.del(s.hay, &key, None) {
            Ok(()) => {}
            // Not indexed (a record whose bytes were never where it says): no counter to fix.
            Err(lmdb::Error::NotFound) => return Ok(()),
            Err(e) => return Err(e.into()),
        }
    }
    let ckey = container_prefix(b'C', &info.path, at.0);
    let (files, bytes) = match txn.get(s.hay, &ckey) {
        Ok(v) => decode_pair(v),
        Err(lmdb::Error::NotFound) => (0, 0),
        Err(e) => return Err(e.into()),
    };
    let (files, bytes) = if sign > 0 {
        (files + 1, bytes + size)
    } else {
        (files.saturating_sub(1), bytes.saturating_sub(size))
    };
    if files == 0 {
        del_ok(txn.del(s.hay, &ckey, None))?;
    } else {
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&files.to_le_bytes());
        v[8..].copy_from_slice(&bytes.to_le_bytes());
        txn.put(s.hay, &ckey, &v, WriteFlags::empty())?;
    }
    Ok(())
}

/// Indexes a record if it is a merged one (insert).
pub(super) fn index(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    info: &FileInfo,
) -> Result<(), MetaError> {
    match location_in(s, txn, info)? {
        Some(at) => account(s, txn, info, at, 1),
        None => Ok(()),
    }
}

/// Removes a record from the index if it is a merged one (before its `moved` entry goes).
pub(super) fn unindex(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    info: &FileInfo,
) -> Result<(), MetaError> {
    match location_in(s, txn, info)? {
        Some(at) => account(s, txn, info, at, -1),
        None => Ok(()),
    }
}

/// Records indexed per transaction while the index is built.
const BUILD_RECORDS_PER_TXN: usize = 10_000;

/// Builds the index of a shard from its records unless it is complete (`rebuild_from_records`:
/// bounded transactions, the version key last).
pub(super) fn ensure_built(s: &Shard) -> Result<(), MetaError> {
    {
        let txn = s.env.begin_ro_txn()?;
        match txn.get(s.hay, &VERSION_KEY) {
            Ok(_) => return Ok(()),
            Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    rebuild_from_records(s, s.hay, b"1", BUILD_RECORDS_PER_TXN, |txn, info| {
        if info.is_merged() {
            index(s, txn, info)?;
        }
        Ok(())
    })?;
    Ok(())
}

/// Live files and bytes per container of `dir`, summed over the shards.
pub(super) fn usage(shards: &[Shard], dir: &str) -> Result<BTreeMap<u64, (u64, u64)>, MetaError> {
    let mut prefix = vec![b'C'];
    prefix.extend_from_slice(dir.as_bytes());
    prefix.push(0);
    let mut out: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
    for s in shards {
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.hay)?;
        for item in cur.iter_from(&prefix) {
            let (k, v) = item?;
            let Some(n) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let n = u64::from_be_bytes(n.try_into().map_err(|_| {
                MetaError::Corrupt("container index key of the wrong length".into())
            })?);
            let (files, bytes) = decode_pair(v);
            let e = out.entry(n).or_default();
            e.0 += files;
            e.1 += bytes;
        }
    }
    Ok(out)
}

/// The live merged files of container `n` of `dir`: (md5, offset of the marker, size), in
/// offset order.
pub(super) fn files_in(
    shards: &[Shard],
    dir: &str,
    n: u64,
) -> Result<Vec<(String, u64, u64)>, MetaError> {
    let prefix = container_prefix(b'E', dir, n);
    let mut out = Vec::new();
    for s in shards {
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.hay)?;
        for item in cur.iter_from(&prefix) {
            let (k, v) = item?;
            let Some(off) = k.strip_prefix(prefix.as_slice()) else {
                break;
            };
            let off: [u8; 8] = off.try_into().map_err(|_| {
                MetaError::Corrupt("container index key of the wrong length".into())
            })?;
            let size = v
                .get(..8)
                .and_then(|b| b.try_into().ok())
                .map(u64::from_le_bytes)
                .unwrap_or(0);
            let md5 = String::from_utf8_lossy(v.get(8..).unwrap_or_default()).into_owned();
            out.push((md5, u64::from_be_bytes(off), size));
        }
    }
    out.sort_unstable_by_key(|(_, offset, _)| *offset);
    Ok(out)
}
