//! The day index (table `days`, one per shard), kept in the same transaction as the records it
//! mirrors: every record under the local day of its time stamp, so that a day's md5s are one
//! range scan (go-fastdfs' `get_md5s_by_date` for a peer's repair, a day's recount).
//! - `YYYYMMDD_<time stamp: 10 digits>_<md5>` -> "": within a day in the order the records
//!   were stored. New records go to the end of the tree, where one leaf page takes many of
//!   them; keyed by day and md5 (the old form), every record of a busy day went to a random
//!   leaf of that day, a page copied and written per record (bench: a third of the LMDB
//!   drain's page writes at 2 million records of one day);
//! - `\0version` -> `2`: every key has the form above. A store from before it (keys
//!   `YYYYMMDD_<md5>`) has the table rebuilt from its records when it is opened.

use super::*;

const VERSION: &[u8] = b"2";
/// `YYYYMMDD_` and `<time stamp>_` before the md5.
const DAY_BYTES: usize = 9;
const STAMP_BYTES: usize = 11;
/// Records indexed per transaction while the table is rebuilt.
const BUILD_RECORDS_PER_TXN: usize = 10_000;

/// The key of a record whose day (`day_of(info.time_stamp)`) is `day`.
fn key(day: &str, info: &FileInfo) -> Vec<u8> {
    debug_assert_eq!(day.len(), DAY_BYTES - 1, "YYYYMMDD");
    let stamp = info.time_stamp.clamp(0, 9_999_999_999);
    let mut k = Vec::with_capacity(DAY_BYTES + STAMP_BYTES + info.md5.len());
    k.extend_from_slice(day.as_bytes());
    k.push(b'_');
    k.extend_from_slice(&crate::codec::padded_digits::<{ STAMP_BYTES - 1 }>(
        stamp as u64,
    ));
    k.push(b'_');
    k.extend_from_slice(info.md5.as_bytes());
    k
}

/// Adds a record under its day `day` (an insert).
pub(super) fn index(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    day: &str,
    info: &FileInfo,
) -> Result<(), MetaError> {
    txn.put(s.days, &key(day, info), &b"", WriteFlags::empty())?;
    Ok(())
}

/// Removes a record's entry (its day is `day`).
pub(super) fn unindex(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    day: &str,
    old: &FileInfo,
) -> Result<(), MetaError> {
    del_ok(txn.del(s.days, &key(day, old), None))
}

/// The md5s of a shard's records of day `date` (`YYYYMMDD`), in the order they were stored.
pub(super) fn md5s<T: lmdb::Transaction>(
    s: &Shard,
    txn: &T,
    date: &str,
) -> Result<Vec<Vec<u8>>, MetaError> {
    Ok(page(s, txn, date, &[], usize::MAX)?
        .into_iter()
        .map(|(_, md5)| md5)
        .collect())
}

/// A day's index entry: (index key, md5).
pub(super) type DayEntry = (Vec<u8>, Vec<u8>);

/// Up to `limit` entries of a shard's day `date` after the index key `after` (from the
/// day's start when empty), in storing order: (index key, md5). A day's records are read a
/// page per transaction, however many there are.
pub(super) fn page<T: lmdb::Transaction>(
    s: &Shard,
    txn: &T,
    date: &str,
    after: &[u8],
    limit: usize,
) -> Result<Vec<DayEntry>, MetaError> {
    let mut out = Vec::new();
    if date.len() != DAY_BYTES - 1 {
        return Ok(out);
    }
    let mut prefix = Vec::with_capacity(DAY_BYTES);
    prefix.extend_from_slice(date.as_bytes());
    prefix.push(b'_');
    let from = if after.is_empty() { &prefix[..] } else { after };
    let mut cur = txn.open_ro_cursor(s.days)?;
    for item in cur.iter_from(from) {
        let (k, _) = item?;
        if !k.starts_with(&prefix) || out.len() >= limit {
            break;
        }
        if k == after {
            continue;
        }
        // Every key has its time stamp once `ensure_ordered` ran; another form is not read.
        let stamp = k.get(DAY_BYTES..DAY_BYTES + STAMP_BYTES);
        if stamp.is_some_and(|t| {
            t[..STAMP_BYTES - 1].iter().all(u8::is_ascii_digit) && t[STAMP_BYTES - 1] == b'_'
        }) {
            out.push((k.to_vec(), k[DAY_BYTES + STAMP_BYTES..].to_vec()));
        }
    }
    Ok(out)
}

/// Rebuilds a shard's table from its records unless every key has the current form: in
/// transactions of `BUILD_RECORDS_PER_TXN` records (memory stays bounded for millions of
/// records), the version key last; a crash in the middle starts over at the next open.
pub(super) fn ensure_ordered(s: &Shard) -> Result<(), MetaError> {
    {
        let txn = s.env.begin_ro_txn()?;
        match txn.get(s.days, &VERSION_KEY) {
            Ok(v) if v == VERSION => return Ok(()),
            Ok(_) | Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let indexed = rebuild_from_records(s, s.days, VERSION, BUILD_RECORDS_PER_TXN, |txn, info| {
        index(s, txn, &day_of(info.time_stamp), info)
    })?;
    if indexed > 0 {
        tracing::info!(records = indexed, "day index rebuilt in storing order");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(i: usize, time_stamp: i64) -> FileInfo {
        FileInfo {
            name: format!("f{i}"),
            path: "files/default/d".into(),
            md5: md5_hex(&i.to_string()),
            size: 10,
            time_stamp,
            offset: crate::json::OFFSET_PLAIN,
            ..Default::default()
        }
    }

    #[test]
    fn keys_sort_by_day_then_time_then_md5() {
        let day = "20261206";
        let a = key(day, &record(1, 1_765_000_000));
        let b = key(day, &record(2, 1_765_000_001));
        assert!(a < b, "a later record sorts after an earlier one");
        assert_eq!(&a[..DAY_BYTES + STAMP_BYTES], b"20261206_1765000000_");
        assert_eq!(&a[DAY_BYTES + STAMP_BYTES..], md5_hex("1").as_bytes());
        assert!(key("20261205", &record(3, 9_999_999_999)) < a, "days first");
        assert!(key(day, &record(4, -5)).starts_with(b"20261206_0000000000_"));
    }

    #[test]
    fn an_old_store_s_day_index_is_rebuilt_on_open_in_bounded_transactions() {
        let d = tempfile::tempdir().unwrap();
        let n = BUILD_RECORDS_PER_TXN * 2 + 7;
        let day_ts = 1_764_763_200; // 2025-12-03, noon UTC: the same local day anywhere
        let day = day_of(day_ts);
        let records: Vec<FileInfo> = (0..n).map(|i| record(i, day_ts + i as i64)).collect();
        {
            let meta = Meta::open(d.path(), 1, 1).unwrap();
            meta.insert_records(0, records.clone()).unwrap();
            // Write the index as a store from before the ordered keys had it.
            let s = &meta.shards[0];
            let mut txn = s.env.begin_rw_txn().unwrap();
            txn.clear_db(s.days).unwrap();
            for info in &records {
                let old = format!("{day}_{}", info.md5);
                txn.put(s.days, &old.as_bytes(), &b"", WriteFlags::empty())
                    .unwrap();
            }
            txn.commit().unwrap();
            assert_eq!(meta.md5s_by_date(&day).unwrap(), Vec::<String>::new());
        }
        let meta = Meta::open(d.path(), 1, 1).unwrap();
        let mut want: Vec<String> = records.iter().map(|r| r.md5.clone()).collect();
        want.sort();
        assert_eq!(meta.md5s_by_date(&day).unwrap(), want, "every record, once");
        let s = &meta.shards[0];
        let txn = s.env.begin_ro_txn().unwrap();
        let stored: Vec<Vec<u8>> = md5s(s, &txn, &day).unwrap();
        let in_order: Vec<Vec<u8>> = records.iter().map(|r| r.md5.clone().into()).collect();
        assert_eq!(stored, in_order, "in storing order");
        assert_eq!(txn.get(s.days, &VERSION_KEY).unwrap(), VERSION);
    }

    #[test]
    fn a_day_lists_only_its_own_records_and_a_delete_takes_the_entry() {
        let d = tempfile::tempdir().unwrap();
        let meta = Meta::open(d.path(), 1, 1).unwrap();
        let (t1, t2) = (1_764_763_200, 1_764_763_200 + 86_400);
        let (a, b) = (record(1, t1), record(2, t2));
        meta.insert_records(0, vec![a.clone(), b.clone()]).unwrap();
        assert_eq!(meta.md5s_by_date(&day_of(t1)).unwrap(), vec![a.md5.clone()]);
        assert_eq!(meta.md5s_by_date(&day_of(t2)).unwrap(), vec![b.md5.clone()]);
        // A prefix of a day is not a day.
        assert_eq!(
            meta.md5s_by_date(&day_of(t1)[..6]).unwrap(),
            Vec::<String>::new()
        );
        let s = &meta.shards[0];
        let mut txn = s.env.begin_rw_txn().unwrap();
        meta.unindex(s, &mut txn, &a).unwrap();
        txn.commit().unwrap();
        assert_eq!(
            meta.md5s_by_date(&day_of(t1)).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(meta.md5s_by_date(&day_of(t2)).unwrap(), vec![b.md5]);
    }
}
