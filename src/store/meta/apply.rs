//! Applying each operation inside a shard's write transaction: inserts (dedup, placement,
//! record, indexes, outbox), deletes (tombstones), announcements, queue updates, day repairs.

use super::place::{place_staged, Naming, Placed};
use super::*;

impl Meta {
    /// An insert; one from a peer settles the file's announcement (its inbox entry goes) when
    /// it stored or refused the file, not when it failed: a failed op's writes still commit
    /// with the rest of its batch, and the pull task decides what a failure means.
    pub(super) fn apply_insert(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        put: Put,
        dirs: &mut BTreeSet<PathBuf>,
        placed: &mut Vec<Placed>,
    ) -> Result<OpResult, MetaError> {
        let announced = matches!(put.origin, Origin::Peer).then(|| put.info.md5.clone());
        let r = self.insert_record(s, txn, put, dirs, placed)?;
        if let Some(md5) = announced {
            del_ok(txn.del(s.inbox, &md5.as_bytes(), None))?;
        }
        Ok(r)
    }

    fn insert_record(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        put: Put,
        dirs: &mut BTreeSet<PathBuf>,
        placed: &mut Vec<Placed>,
    ) -> Result<OpResult, MetaError> {
        let Put {
            mut info,
            staged,
            dedup,
            origin,
            expect,
        } = put;
        if let Origin::Peer = origin {
            if tomb_refuses(s, txn, &info)? {
                return Ok(OpResult::Tombstoned);
            }
        }
        let existing = match txn.get(s.files, &info.md5.as_bytes()) {
            Ok(b) => Some(decode(b)?),
            Err(lmdb::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        let current = existing.as_ref().filter(|old| self.is_live(old));
        if !expect.holds(current) {
            return Ok(OpResult::PreconditionFailed);
        }
        if let (true, Some(old)) = (dedup, &existing) {
            if self.is_live(old) {
                // A peer's copy of content here under another name: its name is served too.
                if let Origin::Peer = origin {
                    super::paths::alias(s, txn, old, &info)?;
                }
                return Ok(OpResult::Existing(old.clone()));
            }
        }
        if let Some(st) = staged {
            let info = Arc::make_mut(&mut info);
            place_staged(&self.root, &st, Naming::of(&st), info, dirs, placed)?;
        }
        if let Some(old) = existing {
            self.unindex(s, txn, &old)?;
        }
        let json = serde_json::to_vec(&*info).expect("FileInfo serializes");
        txn.put(s.files, &info.md5.as_bytes(), &json, WriteFlags::empty())?;
        super::hay::index(s, txn, &info)?;
        super::listing::index(s, txn, &info)?;
        super::paths::index(s, txn, &info)?;
        let day = day_of(info.time_stamp);
        super::days::index(s, txn, &day, &info)?;
        add_stat(s, txn, &day, 1, info.size)?;
        if let Origin::Local { notify } = &origin {
            del_ok(txn.del(s.tombs, &info.md5.as_bytes(), None))?;
            queue(s, txn, &info.md5, notify, SyncKind::Put, false)?;
        }
        Ok(OpResult::Inserted(info))
    }

    /// A record whose content is here (merged small files are trusted to their container).
    pub fn is_live(&self, info: &FileInfo) -> bool {
        info.offset != crate::json::OFFSET_PLAIN || self.root.join(info.rel_path()).is_file()
    }

    pub(super) fn apply_announce(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        info: FileInfo,
    ) -> Result<OpResult, MetaError> {
        if tomb_refuses(s, txn, &info)? {
            return Ok(OpResult::Tombstoned);
        }
        match txn.get(s.files, &info.md5.as_bytes()) {
            Ok(b) => {
                let old = decode(b)?;
                if self.is_live(&old) && !info.supersedes(&old) {
                    super::paths::alias(s, txn, &old, &info)?;
                    return Ok(OpResult::Existing(old));
                }
            }
            Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let arrived = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX));
        let md5 = info.md5.clone();
        let json = serde_json::to_vec(&Inboxed { info, arrived }).expect("FileInfo serializes");
        txn.put(s.inbox, &md5.as_bytes(), &json, WriteFlags::empty())?;
        Ok(OpResult::Queued)
    }

    pub(super) fn apply_enqueue(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        md5: &str,
        peers: &[String],
        kind: SyncKind,
    ) -> Result<OpResult, MetaError> {
        if kind == SyncKind::Put {
            let known = match txn.get(s.files, &md5.as_bytes()) {
                Ok(_) => true,
                Err(lmdb::Error::NotFound) => false,
                Err(e) => return Err(e.into()),
            };
            if !known {
                return Ok(OpResult::NotFound);
            }
        }
        queue(s, txn, md5, peers, kind, true)?;
        Ok(OpResult::Done)
    }

    pub(super) fn apply_delivered(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        md5: &str,
        peer: &str,
        sent: OutboxEntry,
    ) -> Result<OpResult, MetaError> {
        let key = outbox_key(peer, md5);
        let current = match txn.get(s.outbox, &key) {
            Ok(v) => OutboxEntry::decode(v),
            Err(lmdb::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        if current.as_ref() == Some(&sent) {
            del_ok(txn.del(s.outbox, &key, None))?;
        }
        if sent.kind == SyncKind::Put && sent.folder.is_none() {
            if let Ok(b) = txn.get(s.files, &md5.as_bytes()) {
                let mut info = decode(b)?;
                let peers = info.peers.get_or_insert_with(Vec::new);
                if !peers.iter().any(|p| p == peer) {
                    peers.push(peer.to_string());
                    let json = serde_json::to_vec(&info).expect("FileInfo serializes");
                    txn.put(s.files, &md5.as_bytes(), &json, WriteFlags::empty())?;
                }
            }
        }
        Ok(OpResult::Done)
    }

    pub(super) fn apply_repair_day(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        date: &str,
    ) -> Result<OpResult, MetaError> {
        let md5s = super::days::md5s(s, txn, date)?;
        let (mut files, mut bytes) = (0i64, 0i64);
        for md5 in md5s {
            let info = match txn.get(s.files, &md5) {
                Ok(b) => decode(b)?,
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            if self.is_live(&info) {
                files += 1;
                bytes += info.size;
            }
        }
        let mut v = [0u8; 16];
        v[..8].copy_from_slice(&files.to_le_bytes());
        v[8..].copy_from_slice(&bytes.to_le_bytes());
        txn.put(s.stats, &date.as_bytes(), &v, WriteFlags::empty())?;
        Ok(OpResult::Counted { files, bytes })
    }

    pub(super) fn unindex(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        old: &FileInfo,
    ) -> Result<(), MetaError> {
        super::hay::unindex(s, txn, old)?;
        super::listing::unindex(s, txn, old)?;
        del_ok(txn.del(s.files, &old.md5.as_bytes(), None))?;
        del_ok(txn.del(s.moved, &old.md5.as_bytes(), None))?;
        super::paths::unindex(s, txn, old)?;
        let day = day_of(old.time_stamp);
        super::days::unindex(s, txn, &day, old)?;
        add_stat(s, txn, &day, -1, -old.size)
    }

    pub(super) fn apply_delete(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        d: DeleteOp<'_>,
        deleted: &mut Vec<PathBuf>,
    ) -> Result<OpResult, MetaError> {
        let md5 = d.md5;
        let found = match txn.get(s.files, &md5.as_bytes()) {
            Ok(b) => Some(decode(b)?),
            Err(lmdb::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        if found.is_some() || d.tomb_missing {
            let now = chrono::Utc::now().timestamp();
            txn.put(
                s.tombs,
                &md5.as_bytes(),
                &now.to_le_bytes(),
                WriteFlags::empty(),
            )?;
            del_ok(txn.del(s.inbox, &md5.as_bytes(), None))?;
            queue(s, txn, md5, d.notify, SyncKind::Delete, false)?;
        }
        let Some(old) = found else {
            return Ok(OpResult::NotFound);
        };
        self.unindex(s, txn, &old)?;
        if matches!(old.content(), Content::Plain | Content::Migrated) {
            deleted.push(self.root.join(old.rel_path()));
        }
        Ok(OpResult::Deleted(old))
    }
}

/// Records that compaction moved a merged file's bytes from `from` to `to`, if the record still
/// names them at `from` (it may have been deleted, or moved by another pass).
pub(super) fn relocate(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    md5: &str,
    from: (u64, u64),
    to: (u64, u64),
) -> Result<OpResult, MetaError> {
    let info = match txn.get(s.files, &md5.as_bytes()) {
        Ok(b) => decode(b)?,
        Err(lmdb::Error::NotFound) => return Ok(OpResult::NotFound),
        Err(e) => return Err(e.into()),
    };
    if super::hay::location_in(s, txn, &info)? != Some(from) {
        return Ok(OpResult::NotFound);
    }
    super::hay::account(s, txn, &info, from, -1)?;
    super::hay::account(s, txn, &info, to, 1)?;
    let value = format!("{},{}", to.0, to.1);
    txn.put(
        s.moved,
        &md5.as_bytes(),
        &value.as_bytes(),
        WriteFlags::empty(),
    )?;
    Ok(OpResult::Done)
}

pub(super) fn outbox_key(peer: &str, md5: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(peer.len() + 1 + md5.len());
    k.extend_from_slice(peer.as_bytes());
    k.push(0);
    k.extend_from_slice(md5.as_bytes());
    k
}

/// Queues `kind` of `md5` for every peer (a newer entry replaces an older one: the last
/// word about a file is the one a peer needs); `again` when not queued by the change itself.
pub(super) fn queue(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    md5: &str,
    peers: &[String],
    kind: SyncKind,
    again: bool,
) -> Result<(), MetaError> {
    let entry = OutboxEntry {
        kind,
        queued_at: chrono::Utc::now().timestamp_millis(),
        again,
        folder: None,
    };
    for peer in peers {
        txn.put(
            s.outbox,
            &outbox_key(peer, md5),
            &entry.encode(),
            WriteFlags::empty(),
        )?;
    }
    Ok(())
}

/// Queues the put (`kind` Put) or removal of the folder marker `rel` (changed at `time`, unix
/// ms) for every peer, keyed by its path key `id` (a newer change replaces an older one).
pub(super) fn queue_folder(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    id: &str,
    peers: &[String],
    kind: SyncKind,
    rel: String,
    time: i64,
) -> Result<(), MetaError> {
    if peers.is_empty() {
        return Ok(());
    }
    let entry = OutboxEntry {
        kind,
        queued_at: chrono::Utc::now().timestamp_millis(),
        again: false,
        folder: Some(QueuedFolder { rel, time }),
    };
    for peer in peers {
        txn.put(
            s.outbox,
            &outbox_key(peer, id),
            &entry.encode(),
            WriteFlags::empty(),
        )?;
    }
    Ok(())
}

/// Removes the outbox entries of `peer` in one shard; answers their count as `files`.
pub(super) fn purge_peer(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    peer: &str,
) -> Result<OpResult, MetaError> {
    let prefix = outbox_key(peer, "");
    let mut keys = Vec::new();
    {
        let mut cur = txn.open_ro_cursor(s.outbox)?;
        for item in cur.iter_from(&prefix) {
            let (k, _) = item?;
            if !k.starts_with(&prefix) {
                break;
            }
            keys.push(k.to_vec());
        }
    }
    for k in &keys {
        del_ok(txn.del(s.outbox, k, None))?;
    }
    Ok(OpResult::Counted {
        files: keys.len() as i64,
        bytes: 0,
    })
}

/// A tombstone wins over a copy from a peer unless the copy was uploaded after the delete
/// (a re-upload of the same content elsewhere).
pub(super) fn tomb_refuses(
    s: &Shard,
    txn: &lmdb::RwTransaction<'_>,
    info: &FileInfo,
) -> Result<bool, MetaError> {
    match txn.get(s.tombs, &info.md5.as_bytes()) {
        Ok(v) => {
            let deleted_at = v.try_into().map(i64::from_le_bytes).unwrap_or(i64::MAX);
            Ok(deleted_at >= info.time_stamp)
        }
        Err(lmdb::Error::NotFound) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Removes deleted files (after their records committed) and makes the removals durable.
pub(super) fn unlink_files(paths: Vec<PathBuf>) {
    let mut dirs = BTreeSet::new();
    for p in paths {
        if std::fs::remove_file(&p).is_ok() {
            if let Some(parent) = p.parent() {
                dirs.insert(parent.to_path_buf());
            }
        }
    }
    for d in dirs {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
    }
}

pub(super) fn decode_stat(v: &[u8]) -> (i64, i64) {
    if v.len() != 16 {
        return (0, 0);
    }
    let c = i64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    let b = i64::from_le_bytes(v[8..].try_into().expect("8 bytes"));
    (c, b)
}

pub(super) fn add_stat(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    day: &str,
    dc: i64,
    db: i64,
) -> Result<(), MetaError> {
    let (c, b) = match txn.get(s.stats, &day.as_bytes()) {
        Ok(v) => decode_stat(v),
        Err(lmdb::Error::NotFound) => (0, 0),
        Err(e) => return Err(e.into()),
    };
    let (c, b) = ((c + dc).max(0), (b + db).max(0));
    let mut v = [0u8; 16];
    v[..8].copy_from_slice(&c.to_le_bytes());
    v[8..].copy_from_slice(&b.to_le_bytes());
    txn.put(s.stats, &day.as_bytes(), &v, WriteFlags::empty())?;
    Ok(())
}

/// Gives up the announcement of `md5` that `arrived` then; a later one (the file announced
/// again while its fetch failed) stays, to be fetched with fresh chances.
pub(super) fn drop_inboxed(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    md5: &str,
    arrived: u64,
) -> Result<OpResult, MetaError> {
    let current = match txn.get(s.inbox, &md5.as_bytes()) {
        Ok(v) => Inboxed::decode(v).map(|e| e.arrived).ok(),
        Err(lmdb::Error::NotFound) => return Ok(OpResult::Done),
        Err(e) => return Err(e.into()),
    };
    // An entry that does not decode is dropped all the same: it could never be fetched.
    if current.is_none_or(|c| c == arrived) {
        del_ok(txn.del(s.inbox, &md5.as_bytes(), None))?;
    }
    Ok(OpResult::Done)
}
