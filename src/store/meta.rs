//! File metadata in sharded LMDB environments under `data/meta/`, with group commit.
//!
//! Storage contract: a write (`Op`) is acknowledged only after one LMDB transaction holding it
//! has committed (LMDB fsyncs on commit) and, for inserts, after the file was renamed into
//! place and its directory fsynced. A crash before the ack may leave an orphan file under
//! `files/` (never a record pointing at a missing or partial file).
//!
//! Layout: `S` shards (fixed at first start, recorded in `data/meta/shards`), each an LMDB
//! environment with tables `files` (md5 -> FileInfo JSON), `paths` (path key -> md5),
//! `days` (`YYYYMMDD_md5` -> "") and `stats` (`YYYYMMDD` -> count, bytes), and for
//! replication `outbox` (`<peer>\0<md5>` -> what to tell that peer), `tombs` (md5 -> time of
//! delete) and `inbox` (md5 -> FileInfo announced by a peer, still to be fetched). Every entry
//! of a file lives in the shard of its md5, so one transaction covers all of them (a commit
//! that stores a file also queues it for every peer); a lookup by path key asks every shard
//! (S point reads, microseconds).
//!
//! Architecture invariant: only the owner executor of a shard (`shard % workers`) writes it,
//! from its blocking pool: other executors send `Op`s through the owner's channel and await
//! the reply. Ops that queue up while a commit runs form the next batch (group commit): one
//! batch applies its ops in one transaction per touched shard (in parallel, one thread per
//! shard), makes every rename durable with one fsync per touched directory, then commits the
//! transactions (in parallel).
//! Reads happen on any thread (LMDB readers are lock-free; environments use NO_TLS).

use crate::json::FileInfo;
use futures_channel::{mpsc, oneshot};
use lmdb::{
    Cursor, Database, DatabaseFlags, Environment, EnvironmentFlags, Transaction, WriteFlags,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Virtual size of each shard's memory map (sparse; only used pages cost disk and RAM).
const MAP_BYTES: usize = 64 << 30;
/// Ops taken into one transaction at most.
const BATCH_OPS_MAX: usize = 1024;
/// Queue depth per shard channel (per sender).
const QUEUE_DEPTH: usize = 256;

#[derive(Debug, thiserror::Error)]
pub enum MetaError {
    #[error("metadata store: {0}")]
    Lmdb(#[from] lmdb::Error),
    #[error("metadata store: {0}")]
    Io(#[from] std::io::Error),
    #[error("metadata record is corrupt: {0}")]
    Corrupt(String),
    #[error("metadata writer stopped")]
    Stopped,
    #[error("no free name for {0} after {1} attempts")]
    NoFreeName(String, u32),
    /// The wanted place is taken by something of the other kind (a file where a directory is
    /// needed, a directory where the file goes): the client's choice, not a server fault.
    #[error("{0} conflicts with an existing file or directory")]
    PathConflict(String),
}

impl MetaError {
    /// `io` with the conflicts a client's path can cause told apart from server faults.
    fn placing(e: std::io::Error, place: &Path) -> MetaError {
        match e.raw_os_error() {
            Some(libc::ENOTDIR) | Some(libc::EISDIR) | Some(libc::EEXIST) => {
                MetaError::PathConflict(place.display().to_string())
            }
            _ => MetaError::Io(e),
        }
    }
}

/// A staged file to move into place as part of an insert.
#[derive(Debug)]
pub struct Staged {
    /// Temp file under `files/_tmp/` holding the fsynced content.
    pub tmp: PathBuf,
    /// Final directory relative to the runtime dir (`files/...`).
    pub dir: String,
    /// Wanted name; on a collision `<i>_<name>` is tried (when `replace` is false).
    pub name: String,
    /// Replace an existing file of the same name (dedup off, docs/PROTOCOL.md §4).
    pub replace: bool,
}

/// Where an insert comes from: decides replication and whether a tombstone can refuse it.
#[derive(Debug, Clone)]
pub enum Origin {
    /// Uploaded here: queued for `notify` (the peers), clears a tombstone of the md5.
    Local { notify: Vec<String> },
    /// Fetched from a peer: refused when a tombstone is not older than the file; clears the
    /// inbox entry of the md5 whatever the outcome.
    Peer,
}

/// What an outbox entry asks a peer to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// Announce the file (`syncfile_info`) so the peer fetches it.
    Put,
    /// Delete the file on the peer (`delete` with `inner=1`).
    Delete,
}

/// One queued message to a peer: kind and the time it was queued (for lag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutboxEntry {
    pub kind: SyncKind,
    pub queued_at: i64,
}

impl OutboxEntry {
    fn encode(&self) -> [u8; 9] {
        let mut v = [0u8; 9];
        v[0] = match self.kind {
            SyncKind::Put => b'P',
            SyncKind::Delete => b'D',
        };
        v[1..].copy_from_slice(&self.queued_at.to_le_bytes());
        v
    }

    fn decode(v: &[u8]) -> Option<OutboxEntry> {
        let kind = match v.first()? {
            b'P' => SyncKind::Put,
            b'D' => SyncKind::Delete,
            _ => return None,
        };
        let queued_at = i64::from_le_bytes(v.get(1..9)?.try_into().ok()?);
        Some(OutboxEntry { kind, queued_at })
    }
}

#[derive(Debug)]
pub enum Op {
    /// Store a new file. With `dedup`, an existing live record of the same md5 wins and is
    /// returned instead (the staged file is then left for the caller to remove).
    Insert {
        info: Box<FileInfo>,
        staged: Option<Staged>,
        dedup: bool,
        origin: Origin,
    },
    /// Remove a record (and its path key, day entry, counters) and then its file; leaves a
    /// tombstone (also for an unknown md5 when `tomb_missing`, i.e. a delete from a peer)
    /// and queues the delete for `notify`.
    Delete {
        md5: String,
        notify: Vec<String>,
        tomb_missing: bool,
    },
    /// Recount one day (`YYYYMMDD`) of one shard from its index and the files on disk.
    RepairDay { date: String },
    /// A peer announced a file: queue it in the inbox unless it is here or tombstoned.
    Announce { info: Box<FileInfo> },
    /// Give up fetching an announced file.
    InboxDrop { md5: String },
    /// Queue `kind` of the md5 for `peers` (re-sync, repair). A put of an unknown or
    /// tombstoned md5 is skipped.
    Enqueue {
        md5: String,
        peers: Vec<String>,
        kind: SyncKind,
    },
    /// Drop every outbox entry of a peer that left the configuration (one shard per op).
    PurgePeer { peer: String },
    /// A peer acknowledged `sent`: remove the entry unless it changed meanwhile; a delivered
    /// put adds the peer to the record's `peers` (as go-fastdfs does).
    Delivered {
        md5: String,
        peer: String,
        sent: OutboxEntry,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpResult {
    Inserted(FileInfo),
    Existing(FileInfo),
    Deleted(FileInfo),
    NotFound,
    Counted {
        files: i64,
        bytes: i64,
    },
    /// A tombstone refused an insert or announcement.
    Tombstoned,
    /// An announcement was queued for fetching.
    Queued,
    /// A bookkeeping op (enqueue, delivered, inbox drop) was applied.
    Done,
}

pub struct Pending {
    shard: usize,
    op: Op,
    reply: oneshot::Sender<Result<OpResult, MetaError>>,
}

struct Shard {
    env: Environment,
    files: Database,
    paths: Database,
    days: Database,
    stats: Database,
    outbox: Database,
    tombs: Database,
    inbox: Database,
}

pub struct Meta {
    root: PathBuf,
    shards: Vec<Shard>,
    /// One channel per executor: ops for the shards it owns.
    senders: Vec<mpsc::Sender<Pending>>,
    receivers: Mutex<Vec<Option<mpsc::Receiver<Pending>>>>,
}

/// Result of one op, and the undo list of one shard's part of a batch.
type OpReply = Result<OpResult, MetaError>;

/// MD5 hex of a string (go-fastdfs' path key and dedup-off id).
pub fn md5_hex(s: &str) -> String {
    use md5::{Digest, Md5};
    hex(&Md5::digest(s.as_bytes()))
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

/// The path key of a stored file (docs/PROTOCOL.md §7): MD5 of `files/.../name`.
pub fn path_key(rel_path: &str) -> String {
    md5_hex(rel_path)
}

/// The shard of an md5 (or any id): its first 8 hex digits, else FNV-1a of the bytes.
pub fn shard_of(id: &str, shards: usize) -> usize {
    let n = id
        .get(..8)
        .and_then(|p| u32::from_str_radix(p, 16).ok())
        .unwrap_or_else(|| {
            id.bytes().fold(0x811c9dc5u32, |h, b| {
                (h ^ b as u32).wrapping_mul(0x01000193)
            })
        });
    n as usize % shards
}

fn day_of(ts: i64) -> String {
    use chrono::TimeZone;
    chrono::Local
        .timestamp_opt(ts, 0)
        .single()
        .map(|d| d.format("%Y%m%d").to_string())
        .unwrap_or_else(|| "19700101".into())
}

fn decode(bytes: &[u8]) -> Result<FileInfo, MetaError> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))
}

impl Meta {
    /// Opens (creating on first start) the shards under `<dir>/data/meta`.
    pub fn open(dir: &Path, shards_wanted: u32, workers: usize) -> Result<Arc<Meta>, MetaError> {
        assert!(workers >= 1, "at least one executor");
        let root = dir.to_path_buf();
        let meta_dir = dir.join("data").join("meta");
        std::fs::create_dir_all(&meta_dir)?;
        let count_file = meta_dir.join("shards");
        let count: u32 = match std::fs::read_to_string(&count_file) {
            Ok(s) => s.trim().parse().map_err(|_| {
                MetaError::Corrupt(format!("{} is not a number", count_file.display()))
            })?,
            Err(_) => {
                std::fs::write(&count_file, format!("{shards_wanted}\n"))?;
                std::fs::File::open(&count_file)?.sync_all()?;
                std::fs::File::open(&meta_dir)?.sync_all()?;
                shards_wanted
            }
        };
        assert!(count >= 1, "shard count is positive");
        let mut shards = Vec::with_capacity(count as usize);
        let mut senders = Vec::new();
        let mut receivers = Vec::new();
        for i in 0..count {
            let path = meta_dir.join(format!("shard-{i:03}"));
            std::fs::create_dir_all(&path)?;
            let env = Environment::new()
                .set_flags(EnvironmentFlags::NO_TLS)
                .set_max_dbs(8)
                .set_max_readers(1022)
                .set_map_size(MAP_BYTES)
                .open(&path)?;
            let files = env.create_db(Some("files"), DatabaseFlags::empty())?;
            let paths = env.create_db(Some("paths"), DatabaseFlags::empty())?;
            let days = env.create_db(Some("days"), DatabaseFlags::empty())?;
            let stats = env.create_db(Some("stats"), DatabaseFlags::empty())?;
            let outbox = env.create_db(Some("outbox"), DatabaseFlags::empty())?;
            let tombs = env.create_db(Some("tombs"), DatabaseFlags::empty())?;
            let inbox = env.create_db(Some("inbox"), DatabaseFlags::empty())?;
            shards.push(Shard {
                env,
                files,
                paths,
                days,
                stats,
                outbox,
                tombs,
                inbox,
            });
        }
        for _ in 0..workers {
            let (tx, rx) = mpsc::channel(QUEUE_DEPTH);
            senders.push(tx);
            receivers.push(Some(rx));
        }
        Ok(Arc::new(Meta {
            root,
            shards,
            senders,
            receivers: Mutex::new(receivers),
        }))
    }

    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// Takes the op channel of executor `worker` (it owns shards `s % workers == worker`).
    pub fn take_owned(&self, worker: usize) -> Option<mpsc::Receiver<Pending>> {
        self.receivers
            .lock()
            .expect("receivers lock")
            .get_mut(worker)?
            .take()
    }

    // ---------- reads (any thread) ----------

    pub fn get(&self, md5: &str) -> Result<Option<FileInfo>, MetaError> {
        if md5.is_empty() {
            return Ok(None);
        }
        let shard = &self.shards[shard_of(md5, self.shards.len())];
        let txn = shard.env.begin_ro_txn()?;
        match txn.get(shard.files, &md5.as_bytes()) {
            Ok(bytes) => decode(bytes).map(Some),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The record of an md5 whose content is here (`is_live`).
    pub fn get_live(&self, md5: &str) -> Result<Option<FileInfo>, MetaError> {
        Ok(self.get(md5)?.filter(|i| self.is_live(i)))
    }

    /// Looks up a record by its path key (MD5 of `files/.../name`).
    pub fn get_by_path_key(&self, key: &str) -> Result<Option<FileInfo>, MetaError> {
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            let md5 = match txn.get(shard.paths, &key.as_bytes()) {
                Ok(m) => m.to_vec(),
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            match txn.get(shard.files, &md5) {
                Ok(bytes) => return decode(bytes).map(Some),
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            }
        }
        Ok(None)
    }

    /// md5s of files of day `YYYYMMDD` (sorted).
    pub fn md5s_by_date(&self, date: &str) -> Result<Vec<String>, MetaError> {
        let prefix = format!("{date}_");
        let mut out = Vec::new();
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(shard.days)?;
            for item in cur.iter_from(prefix.as_bytes()) {
                let (k, _) = item?;
                if !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                out.push(String::from_utf8_lossy(&k[prefix.len()..]).into_owned());
            }
        }
        out.sort();
        Ok(out)
    }

    /// Up to `limit` outbox entries of `peer` in `shard` whose md5 sorts after `after`.
    pub fn outbox_page(
        &self,
        shard: usize,
        peer: &str,
        after: &str,
        limit: usize,
    ) -> Result<Vec<(String, OutboxEntry)>, MetaError> {
        let s = &self.shards[shard];
        let prefix = outbox_key(peer, "");
        let start = outbox_key(peer, after);
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.outbox)?;
        let mut out = Vec::new();
        for item in cur.iter_from(&start) {
            let (k, v) = item?;
            if !k.starts_with(&prefix) || out.len() >= limit {
                break;
            }
            let md5 = String::from_utf8_lossy(&k[prefix.len()..]).into_owned();
            if md5.as_str() <= after {
                continue;
            }
            if let Some(e) = OutboxEntry::decode(v) {
                out.push((md5, e));
            }
        }
        Ok(out)
    }

    /// Entries queued for `peer` over all shards, and the oldest one's queue time (ms).
    pub fn outbox_depth(&self, peer: &str) -> Result<(u64, Option<i64>), MetaError> {
        let prefix = outbox_key(peer, "");
        let (mut n, mut oldest) = (0u64, None::<i64>);
        for s in &self.shards {
            let txn = s.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(s.outbox)?;
            for item in cur.iter_from(&prefix) {
                let (k, v) = item?;
                if !k.starts_with(&prefix) {
                    break;
                }
                n += 1;
                if let Some(e) = OutboxEntry::decode(v) {
                    oldest = Some(oldest.map_or(e.queued_at, |o| o.min(e.queued_at)));
                }
            }
        }
        Ok((n, oldest))
    }

    /// Up to `limit` announced files of `shard` still to fetch, md5 after `after`.
    pub fn inbox_page(
        &self,
        shard: usize,
        after: &str,
        limit: usize,
    ) -> Result<Vec<FileInfo>, MetaError> {
        let s = &self.shards[shard];
        let txn = s.env.begin_ro_txn()?;
        let mut cur = txn.open_ro_cursor(s.inbox)?;
        let mut out = Vec::new();
        // LMDB refuses an empty key for a positioned cursor.
        let iter = if after.is_empty() {
            cur.iter_start()
        } else {
            cur.iter_from(after.as_bytes())
        };
        for item in iter {
            let (k, v) = item?;
            if out.len() >= limit {
                break;
            }
            if k <= after.as_bytes() {
                continue;
            }
            out.push(decode(v)?);
        }
        Ok(out)
    }

    /// Announced files not fetched yet, over all shards.
    pub fn inbox_depth(&self) -> Result<u64, MetaError> {
        let mut n = 0;
        for s in &self.shards {
            let txn = s.env.begin_ro_txn()?;
            n += txn.stat(s.inbox)?.entries() as u64;
        }
        Ok(n)
    }

    /// When the md5 was deleted here (seconds), if it was.
    pub fn tombstone(&self, md5: &str) -> Result<Option<i64>, MetaError> {
        if md5.is_empty() {
            return Ok(None);
        }
        let s = &self.shards[shard_of(md5, self.shards.len())];
        let txn = s.env.begin_ro_txn()?;
        match txn.get(s.tombs, &md5.as_bytes()) {
            Ok(v) => Ok(Some(v.try_into().map(i64::from_le_bytes).unwrap_or(0))),
            Err(lmdb::Error::NotFound) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Per-day (count, bytes) summed over shards.
    pub fn day_stats(&self) -> Result<BTreeMap<String, (i64, i64)>, MetaError> {
        let mut out: BTreeMap<String, (i64, i64)> = BTreeMap::new();
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(shard.stats)?;
            for item in cur.iter_start() {
                let (k, v) = item?;
                let (c, b) = decode_stat(v);
                let e = out
                    .entry(String::from_utf8_lossy(k).into_owned())
                    .or_default();
                e.0 += c;
                e.1 += b;
            }
        }
        Ok(out)
    }

    /// Every record, in shard then key order, for scans (search, check).
    pub fn for_each(&self, mut f: impl FnMut(FileInfo) -> bool) -> Result<(), MetaError> {
        for shard in &self.shards {
            let txn = shard.env.begin_ro_txn()?;
            let mut cur = txn.open_ro_cursor(shard.files)?;
            for item in cur.iter_start() {
                let (_, v) = item?;
                if !f(decode(v)?) {
                    return Ok(());
                }
            }
        }
        Ok(())
    }

    // ---------- writes ----------

    /// Synchronously removes records by md5 (`fastdfs check --repair`; server stopped).
    pub fn remove_records(&self, md5s: &[String]) -> Result<(), MetaError> {
        for md5 in md5s {
            let s = &self.shards[shard_of(md5, self.shards.len())];
            let mut txn = s.env.begin_rw_txn()?;
            let old = match txn.get(s.files, &md5.as_bytes()) {
                Ok(b) => decode(b)?,
                Err(lmdb::Error::NotFound) => continue,
                Err(e) => return Err(e.into()),
            };
            self.unindex(s, &mut txn, &old)?;
            txn.commit()?;
        }
        Ok(())
    }

    /// One synchronous transaction inserting records without files to move (import). Only
    /// for use before the executors start; records whose md5 is already live are skipped.
    pub fn insert_records(&self, shard: usize, records: Vec<FileInfo>) -> Result<(), MetaError> {
        let s = &self.shards[shard];
        let mut txn = s.env.begin_rw_txn()?;
        let (mut dirs, mut placed) = (BTreeSet::new(), Vec::new());
        for info in records {
            assert_eq!(
                shard_of(&info.md5, self.shards.len()),
                shard,
                "record in its shard"
            );
            let origin = Origin::Local { notify: Vec::new() };
            let put = Put {
                info,
                staged: None,
                dedup: true,
                origin,
            };
            self.apply_insert(s, &mut txn, put, &mut dirs, &mut placed)?;
        }
        txn.commit()?;
        Ok(())
    }

    /// Submits an op to its shard's owner and waits for the commit.
    pub async fn submit(&self, op: Op) -> Result<OpResult, MetaError> {
        let md5 = match &op {
            Op::Insert { info, .. } | Op::Announce { info } => info.md5.as_str(),
            Op::Delete { md5, .. }
            | Op::InboxDrop { md5 }
            | Op::Enqueue { md5, .. }
            | Op::Delivered { md5, .. } => md5.as_str(),
            Op::RepairDay { .. } | Op::PurgePeer { .. } => "",
        };
        let shard = shard_of(md5, self.shards.len());
        self.submit_to(shard, op).await
    }

    /// Recounts a day over every shard; returns (files, bytes).
    pub async fn repair_day(&self, date: &str) -> Result<(i64, i64), MetaError> {
        let (mut files_sum, mut bytes_sum) = (0, 0);
        for shard in 0..self.shards.len() {
            match self
                .submit_to(
                    shard,
                    Op::RepairDay {
                        date: date.to_string(),
                    },
                )
                .await?
            {
                OpResult::Counted { files, bytes } => {
                    files_sum += files;
                    bytes_sum += bytes;
                }
                other => unreachable!("repair answered {other:?}"),
            }
        }
        Ok((files_sum, bytes_sum))
    }

    /// Drops every queued change for `peer` (it left the configuration); returns how many.
    pub async fn purge_peer(&self, peer: &str) -> Result<u64, MetaError> {
        let mut n = 0;
        for shard in 0..self.shards.len() {
            let op = Op::PurgePeer {
                peer: peer.to_string(),
            };
            if let OpResult::Counted { files, .. } = self.submit_to(shard, op).await? {
                n += files as u64;
            }
        }
        Ok(n)
    }

    async fn submit_to(&self, shard: usize, op: Op) -> Result<OpResult, MetaError> {
        use futures_lite::FutureExt;
        assert!(shard < self.shards.len(), "shard in range");
        let owner = shard % self.senders.len();
        let (tx, rx) = oneshot::channel();
        let mut sender = self.senders[owner].clone();
        let pending = Pending {
            shard,
            op,
            reply: tx,
        };
        std::future::poll_fn(|cx| sender.poll_ready(cx))
            .await
            .map_err(|_| MetaError::Stopped)?;
        sender.start_send(pending).map_err(|_| MetaError::Stopped)?;
        rx.boxed_local().await.map_err(|_| MetaError::Stopped)?
    }

    /// The commit loop of one executor's shards; runs on that executor until the channel closes.
    /// `committed` runs after every batch (it wakes the replication tasks of this executor).
    pub async fn run_committer(
        self: Arc<Self>,
        mut rx: mpsc::Receiver<Pending>,
        committed: impl Fn(),
    ) {
        use futures_lite::StreamExt;
        while let Some(first) = rx.next().await {
            let mut batch = vec![first];
            while batch.len() < BATCH_OPS_MAX {
                match rx.try_recv() {
                    Ok(p) => batch.push(p),
                    _ => break,
                }
            }
            let mut ops = Vec::with_capacity(batch.len());
            let mut replies = Vec::with_capacity(batch.len());
            for p in batch {
                ops.push((p.shard, p.op));
                replies.push(p.reply);
            }
            let me = self.clone();
            let started = std::time::Instant::now();
            let n = ops.len();
            let results = glommio::executor()
                .spawn_blocking(move || me.commit_batch(ops))
                .await;
            tracing::debug!(
                ops = n,
                took_us = started.elapsed().as_micros() as u64,
                "group commit"
            );
            assert_eq!(results.len(), replies.len(), "one result per op");
            for (reply, result) in replies.into_iter().zip(results) {
                let _ = reply.send(result);
            }
            committed();
        }
    }

    /// Commits a batch: per touched shard one thread applies its ops in a transaction (dedup
    /// checks, renames into place); then one durability step for all renames and contents;
    /// then every shard commits. Blocking. Results are in op order.
    fn commit_batch(&self, ops: Vec<(usize, Op)>) -> Vec<OpReply> {
        let n = ops.len();
        let mut by_shard: BTreeMap<usize, Vec<(usize, Op)>> = BTreeMap::new();
        for (i, (shard, op)) in ops.into_iter().enumerate() {
            by_shard.entry(shard).or_default().push((i, op));
        }
        let groups = by_shard.len();
        let applied = std::sync::Barrier::new(groups + 1);
        let decided = std::sync::Barrier::new(groups + 1);
        let dirs: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
        let durable: Mutex<Option<String>> = Mutex::new(None);
        let mut results: Vec<Option<OpReply>> = (0..n).map(|_| None).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = by_shard
                .into_iter()
                .map(|(shard, ops)| {
                    let (applied, decided, dirs, durable) = (&applied, &decided, &dirs, &durable);
                    scope.spawn(move || {
                        self.commit_shard(shard, ops, dirs, || {
                            applied.wait();
                            decided.wait();
                            durable.lock().expect("durable lock").clone()
                        })
                    })
                })
                .collect();
            let t0 = std::time::Instant::now();
            applied.wait();
            let t1 = std::time::Instant::now();
            let set = std::mem::take(&mut *dirs.lock().expect("dirs lock"));
            if let Err(e) = self.make_durable(&set) {
                *durable.lock().expect("durable lock") = Some(e.to_string());
            }
            let t2 = std::time::Instant::now();
            decided.wait();
            tracing::debug!(
                groups,
                apply_us = (t1 - t0).as_micros() as u64,
                durable_us = (t2 - t1).as_micros() as u64,
                "batch phases"
            );
            for h in handles {
                for (i, r) in h.join().expect("shard commit thread") {
                    results[i] = Some(r);
                }
            }
            tracing::debug!(
                commit_us = t2.elapsed().as_micros() as u64,
                "batch commit phase"
            );
        });
        results
            .into_iter()
            .map(|r| r.expect("every op answered"))
            .collect()
    }

    /// One shard's part of a batch. `barrier` is called between applying and committing; it
    /// returns an error text when the durability step failed (then nothing commits).
    fn commit_shard(
        &self,
        shard: usize,
        ops: Vec<(usize, Op)>,
        dirs: &Mutex<BTreeSet<PathBuf>>,
        barrier: impl FnOnce() -> Option<String>,
    ) -> Vec<(usize, OpReply)> {
        let s = &self.shards[shard];
        let mut txn = match s.env.begin_rw_txn() {
            Ok(t) => t,
            Err(e) => {
                barrier();
                let msg = e.to_string();
                return ops
                    .into_iter()
                    .map(|(i, _)| (i, Err(MetaError::Corrupt(msg.clone()))))
                    .collect();
            }
        };
        let mut out = Vec::with_capacity(ops.len());
        let mut my_dirs = BTreeSet::new();
        let mut placed: Vec<Placed> = Vec::new();
        let mut unlink_after: Vec<PathBuf> = Vec::new();
        for (i, op) in ops {
            let r = match op {
                Op::Insert {
                    info,
                    staged,
                    dedup,
                    origin,
                } => {
                    let put = Put {
                        info: *info,
                        staged,
                        dedup,
                        origin,
                    };
                    self.apply_insert(s, &mut txn, put, &mut my_dirs, &mut placed)
                }
                Op::Delete {
                    md5,
                    notify,
                    tomb_missing,
                } => {
                    let d = DeleteOp {
                        md5: &md5,
                        notify: &notify,
                        tomb_missing,
                    };
                    self.apply_delete(s, &mut txn, d, &mut unlink_after)
                }
                Op::RepairDay { date } => self.apply_repair_day(s, &mut txn, &date),
                Op::Announce { info } => self.apply_announce(s, &mut txn, *info),
                Op::InboxDrop { md5 } => {
                    del_ok(txn.del(s.inbox, &md5.as_bytes(), None)).map(|()| OpResult::Done)
                }
                Op::Enqueue { md5, peers, kind } => {
                    self.apply_enqueue(s, &mut txn, &md5, &peers, kind)
                }
                Op::Delivered { md5, peer, sent } => {
                    self.apply_delivered(s, &mut txn, &md5, &peer, sent)
                }
                Op::PurgePeer { peer } => purge_peer(s, &mut txn, &peer),
            };
            out.push((i, r));
        }
        dirs.lock().expect("dirs lock").extend(my_dirs);
        let failure = match barrier() {
            Some(e) => Some(e),
            None => txn.commit().err().map(|e| e.to_string()),
        };
        if let Some(msg) = failure {
            // Nothing of this shard committed: undo its renames, so nothing unindexed stays,
            // a replaced file is back, and the staged content is back where its owner keeps
            // it (a tus upload's data survives a failed completion).
            for p in placed.into_iter().rev() {
                p.undo();
            }
            return out
                .into_iter()
                .map(|(i, _)| (i, Err(MetaError::Corrupt(format!("commit failed: {msg}")))))
                .collect();
        }
        unlink_after.extend(placed.into_iter().filter_map(|p| p.displaced()));
        unlink_files(unlink_after);
        out
    }

    /// Makes the batch's renames durable before the metadata commit: one fsync per touched
    /// directory for the whole batch (file contents were fdatasynced by their writers).
    fn make_durable(&self, dirs: &BTreeSet<PathBuf>) -> std::io::Result<()> {
        for d in dirs {
            std::fs::File::open(d)?.sync_all()?;
        }
        Ok(())
    }

    fn apply_insert(
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
        } = put;
        if let Origin::Peer = origin {
            del_ok(txn.del(s.inbox, &info.md5.as_bytes(), None))?;
            if tomb_refuses(s, txn, &info)? {
                return Ok(OpResult::Tombstoned);
            }
        }
        let existing = match txn.get(s.files, &info.md5.as_bytes()) {
            Ok(b) => Some(decode(b)?),
            Err(lmdb::Error::NotFound) => None,
            Err(e) => return Err(e.into()),
        };
        if let (true, Some(old)) = (dedup, &existing) {
            if self.is_live(old) {
                return Ok(OpResult::Existing(old.clone()));
            }
        }
        if let Some(st) = staged {
            let dir = self.root.join(&st.dir);
            // Conflicts name the place relative to the runtime dir (never a host path).
            let rel = |e: MetaError| match e {
                MetaError::PathConflict(_) => {
                    MetaError::PathConflict(format!("{}/{}", st.dir, st.name))
                }
                e => e,
            };
            create_dirs(&self.root, &dir, dirs).map_err(|e| rel(MetaError::placing(e, &dir)))?;
            let p = place_file(&st.tmp, &dir, &st.name, st.replace).map_err(rel)?;
            let name = p.name().to_string();
            dirs.insert(dir.clone());
            placed.push(p);
            // The record names what is on disk (never the pre-collision name: docs/DEFECTS.md #20).
            if st.name != info.stored_name() {
                return Err(MetaError::Corrupt(
                    "staged name differs from the record".into(),
                ));
            }
            if info.rename.is_empty() {
                info.name = name;
            } else {
                info.rename = name;
            }
            info.path = st.dir;
        }
        if let Some(old) = existing {
            self.unindex(s, txn, &old)?;
        }
        let json = serde_json::to_vec(&info).expect("FileInfo serializes");
        txn.put(s.files, &info.md5.as_bytes(), &json, WriteFlags::empty())?;
        txn.put(
            s.paths,
            &path_key(&info.rel_path()).as_bytes(),
            &info.md5.as_bytes(),
            WriteFlags::empty(),
        )?;
        let day = day_of(info.time_stamp);
        txn.put(
            s.days,
            &format!("{day}_{}", info.md5).as_bytes(),
            &b"",
            WriteFlags::empty(),
        )?;
        add_stat(s, txn, &day, 1, info.size)?;
        if let Origin::Local { notify } = &origin {
            del_ok(txn.del(s.tombs, &info.md5.as_bytes(), None))?;
            queue(s, txn, &info.md5, notify, SyncKind::Put)?;
        }
        Ok(OpResult::Inserted(info))
    }

    /// A record whose content is here (merged small files are trusted to their container).
    pub fn is_live(&self, info: &FileInfo) -> bool {
        info.offset != -1 || self.root.join(info.rel_path()).is_file()
    }

    fn apply_announce(
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
                if self.is_live(&old) {
                    return Ok(OpResult::Existing(old));
                }
            }
            Err(lmdb::Error::NotFound) => {}
            Err(e) => return Err(e.into()),
        }
        let json = serde_json::to_vec(&info).expect("FileInfo serializes");
        txn.put(s.inbox, &info.md5.as_bytes(), &json, WriteFlags::empty())?;
        Ok(OpResult::Queued)
    }

    fn apply_enqueue(
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
        queue(s, txn, md5, peers, kind)?;
        Ok(OpResult::Done)
    }

    fn apply_delivered(
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
        if current == Some(sent) {
            del_ok(txn.del(s.outbox, &key, None))?;
        }
        if sent.kind == SyncKind::Put {
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

    fn apply_repair_day(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        date: &str,
    ) -> Result<OpResult, MetaError> {
        let prefix = format!("{date}_");
        let mut md5s = Vec::new();
        {
            let mut cur = txn.open_ro_cursor(s.days)?;
            for item in cur.iter_from(prefix.as_bytes()) {
                let (k, _) = item?;
                if !k.starts_with(prefix.as_bytes()) {
                    break;
                }
                md5s.push(k[prefix.len()..].to_vec());
            }
        }
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

    fn unindex(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        old: &FileInfo,
    ) -> Result<(), MetaError> {
        del_ok(txn.del(s.files, &old.md5.as_bytes(), None))?;
        del_ok(txn.del(s.paths, &path_key(&old.rel_path()).as_bytes(), None))?;
        let day = day_of(old.time_stamp);
        del_ok(txn.del(s.days, &format!("{day}_{}", old.md5).as_bytes(), None))?;
        add_stat(s, txn, &day, -1, -old.size)
    }

    fn apply_delete(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        d: DeleteOp<'_>,
        unlink_after: &mut Vec<PathBuf>,
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
            queue(s, txn, md5, d.notify, SyncKind::Delete)?;
        }
        let Some(old) = found else {
            return Ok(OpResult::NotFound);
        };
        self.unindex(s, txn, &old)?;
        if old.offset == -1 || old.offset == -2 {
            unlink_after.push(self.root.join(old.rel_path()));
        }
        Ok(OpResult::Deleted(old))
    }
}

/// The insert part of `Op::Insert`, unpacked.
struct Put {
    info: FileInfo,
    staged: Option<Staged>,
    dedup: bool,
    origin: Origin,
}

/// The fields of `Op::Delete`, borrowed.
struct DeleteOp<'a> {
    md5: &'a str,
    notify: &'a [String],
    tomb_missing: bool,
}

fn outbox_key(peer: &str, md5: &str) -> Vec<u8> {
    let mut k = Vec::with_capacity(peer.len() + 1 + md5.len());
    k.extend_from_slice(peer.as_bytes());
    k.push(0);
    k.extend_from_slice(md5.as_bytes());
    k
}

/// Queues `kind` of `md5` for every peer (a newer entry replaces an older one: the last
/// word about a file is the one a peer needs).
fn queue(
    s: &Shard,
    txn: &mut lmdb::RwTransaction<'_>,
    md5: &str,
    peers: &[String],
    kind: SyncKind,
) -> Result<(), MetaError> {
    let entry = OutboxEntry {
        kind,
        queued_at: chrono::Utc::now().timestamp_millis(),
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

/// Removes the outbox entries of `peer` in one shard; answers their count as `files`.
fn purge_peer(
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
fn tomb_refuses(
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
fn unlink_files(paths: Vec<PathBuf>) {
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

fn del_ok(r: Result<(), lmdb::Error>) -> Result<(), MetaError> {
    match r {
        Ok(()) | Err(lmdb::Error::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

fn decode_stat(v: &[u8]) -> (i64, i64) {
    if v.len() != 16 {
        return (0, 0);
    }
    let c = i64::from_le_bytes(v[..8].try_into().expect("8 bytes"));
    let b = i64::from_le_bytes(v[8..].try_into().expect("8 bytes"));
    (c, b)
}

fn add_stat(
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

/// A file moved into place by an insert, and how to take the move back.
#[derive(Debug)]
struct Placed {
    tmp: PathBuf,
    at: PathBuf,
    /// The move swapped with an existing file (dedup off): `tmp` now holds the old content.
    swapped: bool,
}

impl Placed {
    fn name(&self) -> &str {
        self.at
            .file_name()
            .and_then(|n| n.to_str())
            .expect("placed under a UTF-8 name")
    }

    /// Restores the state before the move: the staged content back at `tmp`, a replaced file
    /// back at its place.
    fn undo(self) {
        let r = if self.swapped {
            rename_exchange(&self.tmp, &self.at)
        } else {
            std::fs::rename(&self.at, &self.tmp)
        };
        if let Err(e) = r {
            tracing::error!(at = %self.at.display(), cause = %e, "cannot undo a placement");
        }
    }

    /// After the commit: the replaced file's old content, to remove.
    fn displaced(self) -> Option<PathBuf> {
        self.swapped.then_some(self.tmp)
    }
}

/// Creates `dir` and its missing ancestors below `root`, recording the parent of each new
/// directory in `dirs`: a new directory's entry is durable only once its parent is fsynced.
fn create_dirs(root: &Path, dir: &Path, dirs: &mut BTreeSet<PathBuf>) -> std::io::Result<()> {
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        if at == root || at.exists() {
            break; // an existing non-directory: create_dir below reports it
        }
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = d.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    if !dir.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(())
}

/// Moves `tmp` into `dir` as `name` (or `<i>_<name>` on a collision unless `replace`).
/// Uses RENAME_NOREPLACE so a concurrent writer can never be clobbered; `replace` swaps with
/// the existing file (RENAME_EXCHANGE), so a failed commit can put the old one back.
fn place_file(tmp: &Path, dir: &Path, name: &str, replace: bool) -> Result<Placed, MetaError> {
    let placed = |at: PathBuf, swapped| Placed {
        tmp: tmp.to_path_buf(),
        at,
        swapped,
    };
    if replace {
        let at = dir.join(name);
        if at.is_dir() {
            return Err(MetaError::PathConflict(at.display().to_string()));
        }
        return match rename_exchange(tmp, &at) {
            Ok(()) => Ok(placed(at, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rename_noreplace(tmp, &at).map_err(|e| MetaError::placing(e, &at))?;
                Ok(placed(at, false))
            }
            Err(e) => Err(MetaError::placing(e, &at)),
        };
    }
    const ATTEMPTS_MAX: u32 = 10_000;
    for attempt in 0..ATTEMPTS_MAX {
        let candidate = crate::store::names::collision_name(name, attempt);
        let at = dir.join(&candidate);
        match rename_noreplace(tmp, &at) {
            Ok(()) => return Ok(placed(at, false)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MetaError::placing(e, &at)),
        }
    }
    Err(MetaError::NoFreeName(name.to_string(), ATTEMPTS_MAX))
}

/// Atomically swaps two existing paths (RENAME_EXCHANGE).
fn rename_exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    match renameat2(a, b, libc::RENAME_EXCHANGE) {
        Err(e) if unsupported(&e) => {
            // Filesystem without RENAME_EXCHANGE (some FUSE mounts): the same swap in three
            // steps through a side link (not atomic, but nothing is ever lost).
            if !b.exists() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            let side = a.with_extension("swap");
            std::fs::hard_link(b, &side)?;
            std::fs::rename(a, b)?;
            std::fs::rename(&side, a)
        }
        r => r,
    }
}

fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    let a = CString::new(from.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    let b = CString::new(to.as_os_str().as_bytes()).map_err(std::io::Error::other)?;
    // SAFETY: both pointers are valid NUL-terminated strings for the duration of the call.
    let rc = unsafe {
        libc::renameat2(
            libc::AT_FDCWD,
            a.as_ptr(),
            libc::AT_FDCWD,
            b.as_ptr(),
            flags,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported(&e) => {
            // Filesystem without RENAME_NOREPLACE (some FUSE mounts): link + unlink is atomic too.
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        r => r,
    }
}

fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shard_of_is_stable_and_in_range() {
        assert_eq!(shard_of("00000010aaaa", 16), 0);
        assert_eq!(shard_of("0000001faaaa", 16), 15);
        assert!(shard_of("not-hex", 7) < 7);
    }

    #[test]
    fn path_key_is_md5_of_relative_path() {
        assert_eq!(md5_hex(""), "d41d8cd98f00b204e9800998ecf8427e");
        assert_eq!(path_key("files/a/b.txt").len(), 32);
    }

    #[test]
    fn rename_noreplace_refuses_existing() {
        let d = tempfile::tempdir().unwrap();
        let a = d.path().join("a");
        let b = d.path().join("b");
        std::fs::write(&a, b"1").unwrap();
        std::fs::write(&b, b"2").unwrap();
        let e = rename_noreplace(&a, &b).unwrap_err();
        assert_eq!(e.kind(), std::io::ErrorKind::AlreadyExists);
        assert_eq!(std::fs::read(&b).unwrap(), b"2");
        let placed = place_file(&a, d.path(), "b", false).unwrap();
        assert_eq!(placed.name(), "0_b");
        assert_eq!(std::fs::read(d.path().join("0_b")).unwrap(), b"1");
        placed.undo();
        assert_eq!(
            std::fs::read(&a).unwrap(),
            b"1",
            "undo puts the content back"
        );
        assert!(!d.path().join("0_b").exists());
    }

    #[test]
    fn a_replacing_placement_can_be_undone() {
        let d = tempfile::tempdir().unwrap();
        let (new, at) = (d.path().join("new"), d.path().join("f"));
        std::fs::write(&new, b"new").unwrap();
        std::fs::write(&at, b"old").unwrap();
        let placed = place_file(&new, d.path(), "f", true).unwrap();
        assert_eq!(std::fs::read(&at).unwrap(), b"new");
        placed.undo();
        assert_eq!(
            std::fs::read(&at).unwrap(),
            b"old",
            "the committed file is back"
        );
        assert_eq!(std::fs::read(&new).unwrap(), b"new");
        // Committed: the old content is what is left to remove.
        let placed = place_file(&new, d.path(), "f", true).unwrap();
        assert_eq!(
            placed.displaced().map(|p| std::fs::read(p).unwrap()),
            Some(b"old".to_vec())
        );
    }

    #[test]
    fn new_directories_record_their_parents_for_fsync() {
        let d = tempfile::tempdir().unwrap();
        let mut dirs = BTreeSet::new();
        let leaf = d.path().join("files/s/20261202/16");
        create_dirs(d.path(), &leaf, &mut dirs).unwrap();
        assert!(leaf.is_dir());
        let want: BTreeSet<PathBuf> = [
            d.path().to_path_buf(),
            d.path().join("files"),
            d.path().join("files/s"),
            d.path().join("files/s/20261202"),
        ]
        .into();
        assert_eq!(dirs, want);
        std::fs::write(d.path().join("files/s/x"), b"").unwrap();
        let e = create_dirs(d.path(), &d.path().join("files/s/x/y"), &mut dirs).unwrap_err();
        assert_eq!(e.raw_os_error(), Some(libc::ENOTDIR));
    }
}

#[cfg(test)]
mod queue_tests {
    use super::*;

    /// Runs `f` with an open store whose committer runs on a glommio executor.
    fn with_meta(f: impl AsyncFnOnce(Arc<Meta>) + 'static) {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path(), 4, 1).unwrap();
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .expect("executor");
        ex.run(async move {
            let rx = meta.take_owned(0).expect("shard channel");
            glommio::spawn_local(meta.clone().run_committer(rx, || {})).detach();
            f(meta).await;
        });
    }

    fn record(i: u32) -> FileInfo {
        FileInfo {
            name: format!("{i}.bin"),
            path: "files/default/x".into(),
            md5: format!("{i:08x}{}", "0".repeat(24)),
            size: 1,
            time_stamp: 1_700_000_000,
            offset: -1,
            ..Default::default()
        }
    }

    #[test]
    fn commits_queue_changes_per_peer_and_a_removed_peer_is_purged() {
        with_meta(async |meta: Arc<Meta>| {
            let peers = vec!["http://a:1".to_string(), "http://b:1".to_string()];
            for i in 0..5 {
                let op = Op::Insert {
                    info: Box::new(record(i)),
                    staged: None,
                    dedup: false,
                    origin: Origin::Local {
                        notify: peers.clone(),
                    },
                };
                assert!(matches!(meta.submit(op).await, Ok(OpResult::Inserted(_))));
            }
            assert_eq!(meta.outbox_depth("http://a:1").unwrap().0, 5);
            assert_eq!(meta.purge_peer("http://a:1").await.unwrap(), 5);
            assert_eq!(meta.outbox_depth("http://a:1").unwrap().0, 0);
            assert_eq!(meta.outbox_depth("http://b:1").unwrap().0, 5);
            // A delete replaces the pending put and leaves a tombstone that refuses a copy.
            let md5 = record(0).md5;
            let del = Op::Delete {
                md5: md5.clone(),
                notify: peers.clone(),
                tomb_missing: false,
            };
            assert!(matches!(meta.submit(del).await, Ok(OpResult::Deleted(_))));
            let page = meta
                .outbox_page(shard_of(&md5, 4), "http://b:1", "", 10)
                .unwrap();
            let entry = page.iter().find(|(m, _)| *m == md5).expect("queued").1;
            assert_eq!(entry.kind, SyncKind::Delete);
            let copy = Op::Insert {
                info: Box::new(record(0)),
                staged: None,
                dedup: true,
                origin: Origin::Peer,
            };
            assert_eq!(meta.submit(copy).await.unwrap(), OpResult::Tombstoned);
            assert!(meta.get(&md5).unwrap().is_none());
        });
    }
}
