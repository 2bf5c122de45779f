//! The record journal of merged uploads and of plain uploads with no peer to tell
//! (`data/meta/journal-<executor>`), and the overlay that answers for its records until they
//! are in LMDB.
//!
//! Why: a merged 4 KiB upload writes one container append, but its LMDB commit writes about six
//! scattered pages (a record by md5, a path key and a day entry, each a random leaf) and two
//! fsyncs. Acknowledging after the LMDB commit made every upload wait for those scattered
//! writes. So a merged upload from a client is acknowledged once its record is appended to this
//! sequential journal and fdatasynced (one small append, after the container's), and its LMDB
//! insert follows in a later, larger transaction ("drain") where branch pages and day leaves are
//! shared between thousands of inserts.
//!
//! Which inserts take this path (`Meta::defers`): a local upload of a merged file, with no
//! staged file to move, or of a plain file that no peer is to be told about (its file moves
//! into place first: `Meta::place_deferred`), whose md5 LMDB does not know, while the store has one environment per
//! executor (each committer's shards are in its own environment, so a drain is one
//! transaction). Every other op drains the journal first, in the same transaction as its own
//! batch: deletes, announcements, peer copies, relocations and repairs always see every
//! acknowledged record in LMDB, and their order against the journaled inserts is kept.
//!
//! Reads by md5 or path key (`Meta::get`, `Meta::get_by_path_key`) look in LMDB, then in the
//! overlay; a drain commits LMDB before it takes the records out of the overlay and moves the
//! `epoch` while it does, so a reader whose LMDB snapshot predates the drain sees the move and
//! looks again (never a 404 for an acknowledged file). Scans (days, statistics, the container
//! index) call `Meta::settle` first, which drains every committer.
//!
//! Storage contract: an entry is `magic, length, crc32c, payload` (payload: sequence number,
//! dedup flag, JSON of the record and the peers to notify); a reply waits for its entry's
//! fdatasync. Each environment records in its `journal` table the last sequence number it
//! applied, in the same transaction as the drained inserts, so a replay on open applies exactly
//! the entries after it (a journal emptied after a drain need not be durable: a stale entry is
//! skipped by its number, and a torn or foreign tail fails its checksum and ends the replay).

use super::*;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

/// Drain when this many records wait in the overlay.
pub(super) const DRAIN_OPS: usize = 4096;
/// Past this many waiting records (a drain keeps failing, e.g. the disk is full), inserts stop
/// being deferred: they take the synchronous path and its error.
pub(super) const PENDING_MAX: usize = 65_536;
/// Drain when no op arrived for this long.
pub(super) const DRAIN_IDLE: std::time::Duration = std::time::Duration::from_millis(5);
/// Drain when the oldest waiting record is this old (replication starts from LMDB's outbox).
pub(super) const DRAIN_AGE: std::time::Duration = std::time::Duration::from_millis(500);

const MAGIC: u32 = 0x4A46_4453; // "SDFJ" little-endian
/// magic, payload length, crc32c of the payload
const HEADER: usize = 12;
/// The payload's fixed part: sequence number, flags (1 dedup, 2 content), JSON length.
const PAYLOAD_FIXED: usize = 13;
/// The key of the last applied sequence number in an environment's `journal` table.
const APPLIED: &[u8] = b"applied";

/// A journaled insert, waiting for its drain into LMDB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Deferred {
    pub seq: u64,
    /// Shared with the committer's overlay, which serves it until the drain.
    pub info: Arc<FileInfo>,
    pub dedup: bool,
    pub notify: Vec<String>,
    /// The content is in the journal entry and the container append was not fdatasynced.
    pub unsynced: bool,
}

/// An entry read back from a journal: the record, and the content when it was journaled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    pub record: Deferred,
    pub content: Option<Vec<u8>>,
}

#[derive(serde::Serialize, serde::Deserialize)]
struct Body {
    info: FileInfo,
    notify: Vec<String>,
}

/// `Body` as written (borrowed: nothing is cloned to encode an entry).
#[derive(serde::Serialize)]
struct BodyRef<'a> {
    info: &'a FileInfo,
    notify: &'a [String],
}

impl Deferred {
    /// Appends the entry: the record, and `content` when the record is `unsynced`.
    pub(super) fn encode_into(&self, content: &[u8], out: &mut Vec<u8>) {
        assert_eq!(
            self.unsynced,
            !content.is_empty(),
            "the content is journaled exactly when the container was not synced"
        );
        let at = out.len();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[0; 8]); // length and crc, filled in below
        out.extend_from_slice(&self.seq.to_le_bytes());
        out.push(u8::from(self.dedup) | u8::from(self.unsynced) << 1);
        out.extend_from_slice(&[0; 4]); // the JSON's length
        let json_at = out.len();
        let body = BodyRef {
            info: &self.info,
            notify: &self.notify,
        };
        serde_json::to_writer(&mut *out, &body).expect("a record serializes");
        let json_len = (out.len() - json_at) as u32;
        out[json_at - 4..json_at].copy_from_slice(&json_len.to_le_bytes());
        out.extend_from_slice(content);
        let len = (out.len() - at - HEADER) as u32;
        out[at + 4..at + 8].copy_from_slice(&len.to_le_bytes());
        let crc = crc32c::crc32c(&out[at + HEADER..]);
        out[at + 8..at + HEADER].copy_from_slice(&crc.to_le_bytes());
    }

    /// The entries of a journal's bytes, up to the first one that is torn or not an entry.
    pub(super) fn decode_all(mut bytes: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        while bytes.len() >= HEADER {
            let word = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().expect("4 bytes"));
            let (magic, len, crc) = (word(0), word(4) as usize, word(8));
            if magic != MAGIC || bytes.len() - HEADER < len || len < PAYLOAD_FIXED {
                break;
            }
            let payload = &bytes[HEADER..HEADER + len];
            if crc32c::crc32c(payload) != crc {
                break;
            }
            let seq = u64::from_le_bytes(payload[..8].try_into().expect("8 bytes"));
            let flags = payload[8];
            let body_len = u32::from_le_bytes(payload[9..13].try_into().expect("4 bytes")) as usize;
            let Some(body) = payload.get(PAYLOAD_FIXED..PAYLOAD_FIXED + body_len) else {
                break;
            };
            let Ok(body) = serde_json::from_slice::<Body>(body) else {
                break;
            };
            let unsynced = flags & 2 != 0;
            out.push(Entry {
                record: Deferred {
                    seq,
                    info: Arc::new(body.info),
                    dedup: flags & 1 != 0,
                    notify: body.notify,
                    unsynced,
                },
                content: unsynced.then(|| payload[PAYLOAD_FIXED + body_len..].to_vec()),
            });
            bytes = &bytes[HEADER + len..];
        }
        out
    }

    /// The insert op this entry stands for.
    pub(super) fn op(&self) -> Op {
        Op::Insert {
            info: Arc::clone(&self.info),
            staged: None,
            dedup: self.dedup,
            origin: Origin::Local {
                notify: self.notify.clone(),
            },
            unsynced: self.unsynced.then(bytes::Bytes::new),
            expect: Expect::Nothing,
        }
    }
}

/// Acknowledged records of one committer that LMDB does not hold yet.
#[derive(Debug, Default)]
pub(super) struct Overlay {
    /// md5 -> the record and its path key
    by_md5: HashMap<String, (Arc<FileInfo>, String)>,
    /// path key -> md5
    by_path: HashMap<String, String>,
}

/// Every committer's overlay, readable from any thread.
#[derive(Debug, Default)]
pub(super) struct Overlays {
    each: Vec<Mutex<Overlay>>,
    /// Records in all overlays (a reader skips the locks when there are none).
    len: AtomicUsize,
    /// Moved by every drain while it takes records out (see the module doc).
    epoch: AtomicU64,
}

impl Overlays {
    pub(super) fn new(committers: usize) -> Overlays {
        Overlays {
            each: (0..committers).map(|_| Mutex::default()).collect(),
            ..Default::default()
        }
    }

    pub(super) fn add<'a>(
        &self,
        committer: usize,
        records: impl IntoIterator<Item = &'a Deferred>,
    ) {
        let mut o = self.each[committer].lock().expect("overlay lock");
        let mut n = 0;
        for d in records {
            let key = path_key(&d.info.rel_path());
            o.by_path.insert(key.clone(), d.info.md5.clone());
            o.by_md5
                .insert(d.info.md5.clone(), (Arc::clone(&d.info), key));
            n += 1;
        }
        self.len.fetch_add(n, Ordering::Release);
    }

    /// Takes drained records out (they are in LMDB now).
    pub(super) fn remove(&self, committer: usize, records: &[Deferred]) {
        let mut o = self.each[committer].lock().expect("overlay lock");
        for d in records {
            if let Some((_, key)) = o.by_md5.remove(&d.info.md5) {
                o.by_path.remove(&key);
            }
        }
        self.epoch.fetch_add(1, Ordering::AcqRel);
        self.len.fetch_sub(records.len(), Ordering::AcqRel);
    }

    /// Whether `committer` has no journaled record outside LMDB.
    pub(super) fn is_empty(&self, committer: usize) -> bool {
        self.each[committer]
            .lock()
            .expect("overlay lock")
            .by_md5
            .is_empty()
    }

    pub(super) fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::Acquire)
    }

    /// A record of `committer`'s overlay by md5 (the committer deciding dedup).
    pub(super) fn get_own(&self, committer: usize, md5: &str) -> Option<FileInfo> {
        let o = self.each[committer].lock().expect("overlay lock");
        o.by_md5.get(md5).map(|(i, _)| FileInfo::clone(i))
    }

    /// Looks a record up in LMDB (`lmdb`), then in the overlays (`find`), again when a drain
    /// moved records meanwhile.
    pub(super) fn read_through(
        &self,
        mut lmdb: impl FnMut() -> Result<Option<FileInfo>, MetaError>,
        find: impl Fn(&Overlay) -> Option<FileInfo>,
    ) -> Result<Option<FileInfo>, MetaError> {
        loop {
            let epoch = self.epoch.load(Ordering::Acquire);
            if let Some(info) = lmdb()? {
                return Ok(Some(info));
            }
            if self.len.load(Ordering::Acquire) > 0 {
                for o in &self.each {
                    if let Some(info) = find(&o.lock().expect("overlay lock")) {
                        return Ok(Some(info));
                    }
                }
            }
            if self.epoch.load(Ordering::Acquire) == epoch {
                return Ok(None);
            }
        }
    }
}

impl Overlay {
    pub(super) fn by_md5(&self, md5: &str) -> Option<FileInfo> {
        self.by_md5.get(md5).map(|(i, _)| FileInfo::clone(i))
    }

    pub(super) fn by_path_key(&self, key: &str) -> Option<FileInfo> {
        self.by_md5
            .get(self.by_path.get(key)?)
            .map(|(i, _)| FileInfo::clone(i))
    }
}

/// One committer's journal: two files, appended to in turn. While the records of one are
/// drained into LMDB in the background, new records go to the other; a file is emptied once
/// everything in it is in LMDB.
#[derive(Debug)]
pub(super) struct Journal {
    files: [Arc<std::fs::File>; 2],
    ends: [u64; 2],
    /// The file appended to.
    active: usize,
    pub next_seq: u64,
}

pub(super) fn journal_path(root: &Path, committer: usize, file: usize) -> PathBuf {
    root.join("data")
        .join("meta")
        .join(format!("journal-{committer}.{file}"))
}

impl Journal {
    /// Opens committer `k`'s journal. `Meta::open` replayed and emptied its files, so every
    /// entry is in LMDB and numbering goes on after the environment's applied number.
    /// Blocking.
    pub(super) fn open(meta: &Meta, k: usize) -> Result<Journal, MetaError> {
        let open = |i: usize| -> Result<(Arc<std::fs::File>, u64), MetaError> {
            let (file, _) = crate::store::open_durably(&journal_path(&meta.root, k, i))?;
            let end = file.metadata()?.len();
            Ok((Arc::new(file), end))
        };
        let (a, a_end) = open(0)?;
        let (b, b_end) = open(1)?;
        let applied = meta.applied_seq(k)?;
        Ok(Journal {
            files: [a, b],
            ends: [a_end, b_end],
            active: 0,
            next_seq: applied + 1,
        })
    }

    /// The active file and where the next append goes.
    pub(super) fn tail(&self) -> (Arc<std::fs::File>, u64) {
        (self.files[self.active].clone(), self.ends[self.active])
    }

    /// Records that an append to the active file ended at `end`.
    pub(super) fn appended(&mut self, end: u64, next_seq: u64) {
        assert!(end >= self.ends[self.active], "appends only grow a file");
        self.ends[self.active] = end;
        self.next_seq = next_seq;
    }

    /// Switches appends to the other file, when it is empty; returns the file to drain.
    pub(super) fn rotate(&mut self) -> Option<(usize, Arc<std::fs::File>)> {
        let other = 1 - self.active;
        if self.ends[other] != 0 {
            return None;
        }
        let full = self.active;
        self.active = other;
        Some((full, self.files[full].clone()))
    }

    /// File `i` was emptied.
    pub(super) fn emptied(&mut self, i: usize) {
        self.ends[i] = 0;
    }

    /// Every file, for emptying them all after a drain of everything.
    pub(super) fn files(&self) -> [Arc<std::fs::File>; 2] {
        self.files.clone()
    }
}

/// Appends `records` at `end` of `file` and makes them durable; the new end. Blocking.
/// `buf` is scratch space, kept between appends (emptied here).
pub(super) fn append_at(
    file: &std::fs::File,
    end: u64,
    records: &[(&Deferred, &[u8])],
    buf: &mut Vec<u8>,
) -> std::io::Result<u64> {
    use std::os::unix::fs::FileExt;
    buf.clear();
    for (d, content) in records {
        d.encode_into(content, buf);
    }
    file.write_all_at(buf, end)?;
    file.sync_data()?;
    crate::failpoint::hit("journal.synced");
    Ok(end + buf.len() as u64)
}

/// Empties a journal file whose records are all in LMDB (not synced: see the module doc).
pub(super) fn empty(file: &std::fs::File) -> bool {
    file.set_len(0).is_ok()
}

impl Meta {
    /// Whether merged local uploads are journaled (one environment per committer).
    pub(super) fn journals(&self) -> bool {
        self.envs.len() == self.senders.len()
    }

    /// The last journal sequence number environment `env` applied.
    pub(super) fn applied_seq(&self, env: usize) -> Result<u64, MetaError> {
        let txn = self.envs[env].begin_ro_txn()?;
        match txn.get(self.journal_dbs[env], &APPLIED) {
            Ok(v) => Ok(u64::from_le_bytes(v.try_into().map_err(|_| {
                MetaError::Corrupt("journal sequence number".into())
            })?)),
            Err(lmdb::Error::NotFound) => Ok(0),
            Err(e) => Err(e.into()),
        }
    }

    pub(super) fn put_applied(
        &self,
        env: usize,
        txn: &mut lmdb::RwTransaction<'_>,
        seq: u64,
    ) -> Result<(), MetaError> {
        txn.put(
            self.journal_dbs[env],
            &APPLIED,
            &seq.to_le_bytes(),
            WriteFlags::empty(),
        )?;
        Ok(())
    }

    /// Whether `op` may be acknowledged from the journal (see the module doc); the md5 check
    /// against LMDB is `decide`'s.
    pub(super) fn defers(op: &Op) -> bool {
        match op {
            // A condition is decided against LMDB, in the writing transaction.
            Op::Insert { expect, .. } if *expect != Expect::Nothing => false,
            Op::Insert {
                info,
                staged: None,
                origin: Origin::Local { .. },
                ..
            } => info.is_merged(),
            // A plain upload with no peer to tell: its file moves into place as its record
            // is journaled (`Meta::place_deferred`; a replacing one only to a free name, else
            // the batch takes the synchronous path). With peers, it waits for LMDB: its
            // replication starts from the outbox, which a drain would write only later.
            Op::Insert {
                info,
                staged: Some(_),
                origin: Origin::Local { notify },
                unsynced: None,
                ..
            } => !info.is_merged() && notify.is_empty(),
            _ => false,
        }
    }

    /// Blocking: the journal's answer for a batch of deferrable inserts of committer `k`, or
    /// None when one of them must take the synchronous path (LMDB holds a record of its md5
    /// that dedup does not answer with: a replaced or missing file). `Some` lists per op
    /// either the existing record (dedup) or the entry to journal.
    pub(super) fn decide(
        &self,
        k: usize,
        ops: &[(usize, Op)],
        next_seq: u64,
    ) -> Result<Option<Vec<Result<Deferred, FileInfo>>>, MetaError> {
        // A drain running beside this may commit records and take them out of the overlay
        // between this snapshot and the overlay lookups: decided again when it did.
        loop {
            let epoch = self.overlays.epoch();
            let decided = self.decide_once(k, ops, next_seq)?;
            if self.overlays.epoch() == epoch {
                return Ok(decided);
            }
        }
    }

    fn decide_once(
        &self,
        k: usize,
        ops: &[(usize, Op)],
        next_seq: u64,
    ) -> Result<Option<Vec<Result<Deferred, FileInfo>>>, MetaError> {
        let txn = self.read_txn(k)?;
        let mut fresh: HashMap<&str, &FileInfo> = HashMap::new();
        let mut out = Vec::with_capacity(ops.len());
        let mut seq = next_seq;
        for (shard, op) in ops {
            let Op::Insert {
                info,
                dedup,
                origin: Origin::Local { notify },
                unsynced,
                staged,
                expect: _,
            } = op
            else {
                unreachable!("only deferrable ops are decided")
            };
            let s = &self.shards[*shard];
            assert_eq!(
                s.env_index, k,
                "a committer's shards are in its environment"
            );
            match txn.get(s.files, &info.md5.as_bytes()) {
                Ok(b) => {
                    let old = decode(b)?;
                    if *dedup && self.is_live(&old) {
                        out.push(Err(old));
                        continue;
                    }
                    return Ok(None);
                }
                Err(lmdb::Error::NotFound) => {}
                Err(e) => return Err(e.into()),
            }
            let known = fresh
                .get(info.md5.as_str())
                .map(|i| (*i).clone())
                .or_else(|| self.overlays.get_own(k, &info.md5));
            match known {
                // The same content twice in one batch of placed files: the first's final
                // name is known only once it is placed (the synchronous path answers).
                Some(_) if staged.is_some() && fresh.contains_key(info.md5.as_str()) => {
                    return Ok(None)
                }
                // A plain file gone from the disk since is stored again (synchronously).
                Some(old) if *dedup && self.is_live(&old) => out.push(Err(old)),
                Some(_) => return Ok(None),
                None => {
                    fresh.insert(&info.md5, info);
                    out.push(Ok(Deferred {
                        seq,
                        // A staged file's record is renamed as it is placed: its own copy.
                        info: if staged.is_some() {
                            Arc::new(FileInfo::clone(info))
                        } else {
                            Arc::clone(info)
                        },
                        dedup: *dedup,
                        notify: notify.clone(),
                        unsynced: unsynced.is_some(),
                    }));
                    seq += 1;
                }
            }
        }
        Ok(Some(out))
    }

    /// On open: applies every journal's entries after its environment's applied number, then
    /// empties the journal. Returns how many were applied.
    pub(super) fn replay_journals(&self) -> Result<usize, MetaError> {
        let mut applied_total = 0;
        for k in 0..self.envs.len() {
            let paths = [
                journal_path(&self.root, k, 0),
                journal_path(&self.root, k, 1),
            ];
            let applied = self.applied_seq(k)?;
            let mut todo: Vec<Entry> = Vec::new();
            for path in &paths {
                match std::fs::read(path) {
                    Ok(b) => todo.extend(
                        Deferred::decode_all(&b)
                            .into_iter()
                            .filter(|e| e.record.seq > applied),
                    ),
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
                    Err(e) => return Err(e.into()),
                }
            }
            todo.sort_by_key(|e| e.record.seq);
            if let Some(last) = todo.last().map(|e| e.record.seq) {
                for chunk in todo.chunks(10_000) {
                    self.apply_replayed(k, chunk)?;
                }
                applied_total += todo.len();
                tracing::info!(
                    committer = k,
                    records = todo.len(),
                    last,
                    "replayed acknowledged merged uploads into the metadata"
                );
            }
            for path in paths.iter().filter(|p| p.exists()) {
                std::fs::OpenOptions::new()
                    .write(true)
                    .open(path)?
                    .set_len(0)?;
            }
        }
        Ok(applied_total)
    }

    fn apply_replayed(&self, k: usize, entries: &[Entry]) -> Result<(), MetaError> {
        // Journaled contents go back into their containers (where the crash may have lost
        // them), durably, before their records commit.
        let mut containers = BTreeSet::new();
        for e in entries {
            let (Some(content), Some(n)) = (
                &e.content,
                crate::store::haystack::container_of(e.record.info.stored_name()),
            ) else {
                continue;
            };
            let container = self.root.join(&e.record.info.path).join(n.to_string());
            let offset = e.record.info.offset as u64;
            crate::store::haystack::write_at(&container, offset, content, false)?;
            containers.insert(container);
        }
        for c in &containers {
            crate::store::haystack::sync(c)?;
        }
        let mut txns: BTreeMap<usize, lmdb::RwTransaction<'_>> = BTreeMap::new();
        for d in entries.iter().map(|e| &e.record) {
            let s = &self.shards[shard_of(&d.info.md5, self.shards.len())];
            let txn = match txns.entry(s.env_index) {
                std::collections::btree_map::Entry::Occupied(o) => o.into_mut(),
                std::collections::btree_map::Entry::Vacant(v) => {
                    v.insert(self.envs[s.env_index].begin_rw_txn()?)
                }
            };
            let put = Put {
                info: Arc::clone(&d.info),
                staged: None,
                dedup: d.dedup,
                origin: Origin::Local {
                    notify: d.notify.clone(),
                },
                expect: Expect::Nothing,
            };
            let (mut dirs, mut placed) = (BTreeSet::new(), Vec::new());
            self.apply_insert(s, txn, put, &mut dirs, &mut placed)?;
            assert!(placed.is_empty(), "a journaled insert moves no file");
        }
        let last = entries.last().expect("a chunk has entries").record.seq;
        if let std::collections::btree_map::Entry::Vacant(v) = txns.entry(k) {
            v.insert(self.envs[k].begin_rw_txn()?);
        }
        // The other environments first: the applied number commits last.
        let mut own = None;
        for (env, mut txn) in txns {
            if env == k {
                self.put_applied(k, &mut txn, last)?;
                own = Some(txn);
            } else {
                txn.commit()?;
            }
        }
        own.expect("own environment").commit()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(seq: u64) -> Deferred {
        Deferred {
            seq,
            info: Arc::new(FileInfo {
                name: format!("100,{seq},5,.txt"),
                path: "files/haystack/p".into(),
                md5: format!("{seq:032x}"),
                size: 5,
                offset: seq as i64,
                ..Default::default()
            }),
            dedup: true,
            notify: vec!["http://peer:8080".into()],
            unsynced: seq.is_multiple_of(2),
        }
    }

    fn encode(seq: u64, out: &mut Vec<u8>) {
        let d = entry(seq);
        let content = if d.unsynced {
            vec![seq as u8; 4]
        } else {
            vec![]
        };
        d.encode_into(&content, out);
    }

    fn records(bytes: &[u8]) -> Vec<Deferred> {
        Deferred::decode_all(bytes)
            .into_iter()
            .map(|e| e.record)
            .collect()
    }

    #[test]
    fn entries_read_back_and_a_torn_or_foreign_tail_ends_the_journal() {
        let mut buf = Vec::new();
        for s in 1..=3 {
            encode(s, &mut buf);
        }
        assert_eq!(records(&buf), vec![entry(1), entry(2), entry(3)]);
        let contents: Vec<_> = Deferred::decode_all(&buf)
            .into_iter()
            .map(|e| e.content)
            .collect();
        assert_eq!(contents, vec![None, Some(vec![2u8; 4]), None]);
        let whole = buf.len();
        encode(4, &mut buf);
        assert_eq!(
            records(&buf[..buf.len() - 1]).len(),
            3,
            "a torn last entry is not an entry"
        );
        let mut flipped = buf.clone();
        let last = flipped.len() - 2;
        flipped[last] ^= 1;
        assert_eq!(records(&flipped).len(), 3, "checksum (of the content too)");
        flipped = buf.clone();
        flipped[whole + HEADER + 20] ^= 1;
        assert_eq!(records(&flipped).len(), 3, "checksum");
        // A journal emptied without a sync and rewritten from its start: the new entries,
        // then the old bytes' remains, which never parse as an entry mid-way.
        let mut rewritten = Vec::new();
        encode(9, &mut rewritten);
        rewritten.extend_from_slice(&buf[rewritten.len()..]);
        let got = records(&rewritten);
        assert_eq!(got.first(), Some(&entry(9)));
        assert!(got.iter().skip(1).all(|d| d.seq < 9));
    }
}
