//! The path index (table `paths`, one per environment): path key (md5 of a record's relative
//! path) -> md5 of the record stored at that path, kept in the same transaction as the records
//! it mirrors. It is one table per environment rather than one per shard because a lookup by
//! path cannot know the shard (a go-fastdfs upload's shard follows its content's md5): with one
//! table per environment a lookup asks `E` tables (the executor count at the store's first
//! start) instead of every one of the `S` shards, which an S3 PUT of a new key and a download's
//! cache miss pay on every request. Every entry of a record still lives in its record's
//! environment, so one transaction covers them all.
//! - `<path key>` -> md5;
//! - aliases, written only where no entry is (`alias`, `alias_key`): a peer's path for
//!   content this node stores under another (`<path key>` -> md5), and a finished tus
//!   upload's id (`tus:<id>` -> md5). Lookups go through the record, so an alias whose
//!   record is gone finds nothing;
//! - `\0version` -> `1`: the per-environment table is complete. A store from before it (one
//!   `paths-<shard>` table per shard) has those tables copied in when it is opened, in bounded
//!   transactions (idempotent puts: a crash during the copy copies again); the last one marks
//!   the table complete and drops the per-shard tables.

use super::*;

/// Entries copied per transaction when a store from before the per-environment table is
/// opened (bounded dirty pages for millions of records).
const BUILD_ENTRIES_PER_TXN: usize = 50_000;

/// Opens (or creates) environment `env`'s path index; for a store from before it, copies in
/// the per-shard tables `paths-<i>` of `shards` (the shards of this environment) and drops
/// them. Blocking; only while opening.
pub(super) fn open(env: &Environment, shards: &[u32]) -> Result<Database, MetaError> {
    let db = env.create_db(Some("paths"), DatabaseFlags::empty())?;
    {
        let txn = env.begin_ro_txn()?;
        match txn.get(db, &VERSION_KEY) {
            Ok(_) => return Ok(db),
            Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut old = Vec::new();
    for i in shards {
        match env.open_db(Some(&format!("paths-{i:03}"))) {
            Ok(d) => old.push(d),
            Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
    }
    let mut copied = 0u64;
    for &from in &old {
        let mut after: Option<Vec<u8>> = None;
        loop {
            let mut txn = env.begin_rw_txn()?;
            let mut entries = Vec::with_capacity(BUILD_ENTRIES_PER_TXN);
            let more = page(
                &txn,
                from,
                after.as_deref(),
                BUILD_ENTRIES_PER_TXN,
                |k, v| {
                    entries.push((k.to_vec(), v.to_vec()));
                    Ok(())
                },
            )?;
            for (k, v) in &entries {
                txn.put(db, k, v, WriteFlags::empty())?;
            }
            copied += entries.len() as u64;
            txn.commit()?;
            match more {
                Some(k) => after = Some(k),
                None => break,
            }
        }
    }
    let mut txn = env.begin_rw_txn()?;
    txn.put(db, &VERSION_KEY, &b"1", WriteFlags::empty())?;
    for from in old {
        // SAFETY: `from` is not used after this: the handles were opened here, only for the copy.
        unsafe { txn.drop_db(from)? };
    }
    txn.commit()?;
    if copied > 0 {
        tracing::info!(
            entries = copied,
            "path index moved from one table per shard to one per environment"
        );
    }
    Ok(db)
}

/// Records that the file at `info`'s path is `info` (an insert; a record of another md5 at
/// the same path, replaced in this transaction, loses the entry).
pub(super) fn index(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    info: &FileInfo,
) -> Result<(), MetaError> {
    txn.put(
        s.paths,
        &path_key(&info.rel_path()).as_bytes(),
        &info.md5.as_bytes(),
        WriteFlags::empty(),
    )?;
    Ok(())
}

/// Records that `announced`'s path (a peer's name for the same content) serves `here`, the
/// record of that content on this node, unless the path names something already (this
/// node's own file there wins). Merged files are named by their locators and never
/// aliased. The entry outlives `here` harmlessly: a lookup through it finds no record.
pub(super) fn alias(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    here: &FileInfo,
    announced: &FileInfo,
) -> Result<(), MetaError> {
    debug_assert_eq!(here.md5, announced.md5, "an alias names the same content");
    let rel = announced.rel_path();
    if here.is_merged() || announced.is_merged() || rel == here.rel_path() {
        return Ok(());
    }
    put_if_free(s, txn, &path_key(&rel), &here.md5)
}

/// `key` -> `md5` in the path index, unless `key` names something already (which wins).
fn put_if_free(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    key: &str,
    md5: &str,
) -> Result<(), MetaError> {
    match txn.put(
        s.paths,
        &key.as_bytes(),
        &md5.as_bytes(),
        WriteFlags::NO_OVERWRITE,
    ) {
        Ok(()) | Err(lmdb::Error::KeyExist) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Records that `key` (not a path's key: a tus upload's id) names the live record of `md5`,
/// unless `key` names something already; `NotFound` when there is no such record.
pub(super) fn alias_key(
    meta: &Meta,
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    md5: &str,
    key: &str,
) -> Result<OpResult, MetaError> {
    let live = match txn.get(s.files, &md5.as_bytes()) {
        Ok(b) => meta.is_live(&decode(b)?),
        Err(lmdb::Error::NotFound) => false,
        Err(e) => return Err(e.into()),
    };
    if !live {
        return Ok(OpResult::NotFound);
    }
    put_if_free(s, txn, key, md5).map(|()| OpResult::Done)
}

/// Removes `old`'s entry, if it is still its own: a record of another md5 stored at the same
/// path since (a replacing upload) keeps its entry.
pub(super) fn unindex(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    old: &FileInfo,
) -> Result<(), MetaError> {
    del_own(txn, s.paths, path_key(&old.rel_path()).as_bytes(), &old.md5)
}
