//! File metadata in sharded LMDB environments under `data/meta/`, with group commit.
//!
//! Storage contract: a write (`Op`) is acknowledged only after one LMDB transaction holding it
//! has committed (LMDB fsyncs on commit) and, for inserts, after the file was renamed into
//! place and its directory fsynced; or, for a merged file uploaded here, after its record and
//! content were fdatasynced in the committer's record journal (`journal.rs`), which a later
//! transaction drains into LMDB and a restart replays. A batch's file effects are journaled first (`intents.rs`):
//! after a crash, a file moved into place that no record names is taken back, and a file whose
//! delete committed is unlinked, before anything is served (never a record pointing at a
//! missing or partial file, never a served file without a record).
//!
//! Layout (`layout.rs`): `S` shards (fixed at first start, recorded in `data/meta/shards`) in
//! `E` LMDB environments (the executor count at first start, recorded in `data/meta/envs`;
//! shard `i` lives in environment `i % E`, so with `E` executors each one's shards share one
//! environment and a batch is one commit). Each shard has the tables `files` (md5 -> FileInfo JSON),
//! `days` (`days.rs`: `YYYYMMDD_<time stamp>_md5` -> "") and `stats` (`YYYYMMDD` -> count, bytes), and for
//! replication `outbox` (`<peer>\0<md5>` -> what to tell that peer; an S3 folder marker's
//! change is keyed by its path key and carries its path), `tombs` (md5 -> time of
//! delete; a removed S3 folder marker's is `dir:<path key>` -> `<ms> <path>`, `listing.rs`) and `inbox` (md5 -> FileInfo announced by a peer, still to be fetched, with
//! `arrived`: when that announcement came, `Inboxed`). Every entry
//! of a file lives in the shard of its md5, so one transaction covers all of them (a commit
//! that stores a file also queues it for every peer). The path index (`paths.rs`: path key ->
//! md5) is one table per environment, so a lookup by path asks `E` tables, not `S`; a
//! record's entry there is still in its own environment, in the same transaction.
//!
//! Architecture invariant: only the owner executor of a shard (`shard % workers`) writes it,
//! from its blocking pool: other executors send `Op`s through the owner's channel and await
//! the reply. Ops that queue up while a commit runs form the next batch (group commit): one
//! batch applies its ops in one transaction per touched environment (one, unless the executor
//! count changed since the store was created; then one thread per environment), makes every
//! rename durable with one fsync per touched directory, then commits the transactions.
//! Reads happen on any thread (LMDB readers are lock-free; environments use NO_TLS).

use crate::json::{Content, FileInfo};
use futures_channel::{mpsc, oneshot};
use lmdb::{
    Cursor, Database, DatabaseFlags, Environment, EnvironmentFlags, Transaction, WriteFlags,
};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Virtual size of the memory map per shard of an environment (sparse; only used pages cost
/// disk and RAM).
const MAP_BYTES: usize = 64 << 30;
/// The tables of one shard (each environment holds `<table>-<shard:03>` per shard).
const TABLES: [&str; 10] = [
    "files", "paths", "days", "stats", "outbox", "tombs", "inbox", "moved", "hay", "listing",
];
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
    /// The disk (or quota, or the metadata map) is full: nothing of the batch was stored.
    #[error("storage full: {0}")]
    Full(String),
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

/// One queued message to a peer: kind, the time it was queued (for lag), and whether it was
/// queued again after the change itself (`sync`, a repair, a new peer), when the peer may well
/// have the file already. An S3 folder marker's change (`folder`) is keyed by its path key
/// instead of an md5: a put makes the marker on the peer, a delete removes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboxEntry {
    pub kind: SyncKind,
    pub queued_at: i64,
    pub again: bool,
    pub folder: Option<QueuedFolder>,
}

/// A folder marker's change queued for a peer: its path (`files/<bucket>/<dirs>/`) and when
/// it was put or removed (unix ms), which decides against a change made on the peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QueuedFolder {
    pub rel: String,
    pub time: i64,
}

impl OutboxEntry {
    /// Nine bytes: `P` (a put queued by its upload), `p` (a put queued again), `D` or `d`
    /// (a delete), then the time queued in milliseconds, little-endian. A folder marker's:
    /// `F` (put) or `R` (removed), the time queued, the marker's time (8 bytes, little-endian)
    /// and its path.
    fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(17);
        v.push(match (self.kind, self.again, &self.folder) {
            (SyncKind::Put, _, Some(_)) => b'F',
            (SyncKind::Delete, _, Some(_)) => b'R',
            (SyncKind::Put, false, None) => b'P',
            (SyncKind::Put, true, None) => b'p',
            (SyncKind::Delete, false, None) => b'D',
            (SyncKind::Delete, true, None) => b'd',
        });
        v.extend_from_slice(&self.queued_at.to_le_bytes());
        if let Some(f) = &self.folder {
            v.extend_from_slice(&f.time.to_le_bytes());
            v.extend_from_slice(f.rel.as_bytes());
        }
        v
    }

    fn decode(v: &[u8]) -> Option<OutboxEntry> {
        let (kind, again, folder) = match v.first()? {
            b'P' => (SyncKind::Put, false, false),
            b'p' => (SyncKind::Put, true, false),
            b'D' => (SyncKind::Delete, false, false),
            b'd' => (SyncKind::Delete, true, false),
            b'F' => (SyncKind::Put, false, true),
            b'R' => (SyncKind::Delete, false, true),
            _ => return None,
        };
        let queued_at = i64::from_le_bytes(v.get(1..9)?.try_into().ok()?);
        let folder = match folder {
            false => None,
            true => Some(QueuedFolder {
                time: i64::from_le_bytes(v.get(9..17)?.try_into().ok()?),
                rel: String::from_utf8(v.get(17..)?.to_vec()).ok()?,
            }),
        };
        Some(OutboxEntry {
            kind,
            queued_at,
            again,
            folder,
        })
    }
}

#[derive(Debug)]
enum Op {
    /// Store a new file. With `dedup`, an existing live record of the same md5 wins and is
    /// returned instead (the staged file is then left for the caller to remove).
    Insert {
        /// Shared with a journaled record's overlay entry while it is drained.
        info: Arc<FileInfo>,
        staged: Option<Staged>,
        dedup: bool,
        origin: Origin,
        /// A merged file whose container append was not fdatasynced: its content, for the
        /// journal (empty once journaled). Its container is fdatasynced before the record
        /// commits.
        unsynced: Option<bytes::Bytes>,
        /// What must hold of the live record of this id, checked in the commit's
        /// transaction (S3's conditional writes).
        expect: Expect,
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
    /// Name the live record of `md5` by `key` too in the path index (a tus upload's id), unless
    /// `key` names something already.
    Alias { md5: String, key: String },
    /// Give up fetching an announced file: the announcement that `arrived` then (a later one
    /// stays).
    InboxDrop { md5: String, arrived: u64 },
    /// Queue `kind` of the md5 for `peers` (re-sync, repair). A put of an unknown or
    /// tombstoned md5 is skipped.
    Enqueue {
        md5: String,
        peers: Vec<String>,
        kind: SyncKind,
    },
    /// Drop every outbox entry of a peer that left the configuration (one shard per op).
    PurgePeer { peer: String },
    /// Compaction copied a merged file from `from` to `to` (container, offset): record it,
    /// unless the file is gone or was moved meanwhile.
    Relocate {
        md5: String,
        from: (u64, u64),
        to: (u64, u64),
    },
    /// A peer acknowledged `sent`: remove the entry unless it changed meanwhile; a delivered
    /// put adds the peer to the record's `peers` (as go-fastdfs does).
    Delivered {
        md5: String,
        peer: String,
        sent: OutboxEntry,
    },
    /// Put (`modified_ms`: when, unix ms) or remove (None) the S3 folder marker `rel`
    /// (`files/<bucket>/<dirs>/`) in the listing index (`listing.rs`), and queue the change
    /// for `notify`; `id` is `rel`'s path key, which picks its shard (and keys its outbox
    /// entries). A removal leaves the marker's tombstone. A peer's change (`peer_time`: when
    /// it was made there) applies only over a marker put or removed here before it.
    Folder {
        id: String,
        rel: String,
        modified_ms: Option<i64>,
        notify: Vec<String>,
        peer_time: Option<i64>,
    },
    /// Queue for `peer` what is known here of the folder marker `rel` (put or removed, and
    /// when), read in the op's transaction (a repair); `id` is `rel`'s path key. NotFound when
    /// nothing is.
    RequeueFolder {
        id: String,
        rel: String,
        peer: String,
    },
    /// Nothing of its own: drains the committer's journal into LMDB (`journal.rs`), so that
    /// scans see every acknowledged record.
    Settle,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum OpResult {
    Inserted(Arc<FileInfo>),
    /// An insert's `Expect` did not hold: nothing was written.
    PreconditionFailed,
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
    /// The environment holding this shard's tables (shared with the other shards of the same
    /// environment), and its index in `Meta::envs`.
    env: Arc<Environment>,
    env_index: usize,
    files: Database,
    paths: Database,
    days: Database,
    stats: Database,
    outbox: Database,
    tombs: Database,
    inbox: Database,
    /// Merged files moved by compaction: md5 -> `<N>,<offset>` of their bytes now (their URL,
    /// locator and path key never change).
    moved: Database,
    /// The container index of merged files (`hay.rs`).
    hay: Database,
    /// The ordered name index of files under `files/` (`listing.rs`).
    listing: Database,
}

pub struct Meta {
    root: PathBuf,
    /// Idle read transactions per environment (`txns.rs`). Declared before `envs`: fields
    /// drop in order, and no transaction may outlive its environment.
    txn_pools: Vec<txns::Pool>,
    /// The LMDB environments; shard `i` lives in `envs[i % envs.len()]`.
    envs: Vec<Arc<Environment>>,
    shards: Vec<Shard>,
    /// One channel per executor: ops for the shards it owns.
    senders: Vec<mpsc::Sender<Pending>>,
    receivers: Mutex<Vec<Option<mpsc::Receiver<Pending>>>>,
    /// Per environment: its path index (`paths.rs`; each of its shards' `paths` is this one).
    path_dbs: Vec<Database>,
    /// Per environment: its `journal` table (the last applied journal entry, `journal.rs`).
    journal_dbs: Vec<Database>,
    /// Journaled records not in LMDB yet, per committer.
    overlays: journal::Overlays,
    /// The committers' intent journals (`intents.rs`).
    intent_files: intents::Files,
    /// Moves whenever a stored file goes or is replaced (`files_epoch`).
    files_epoch: std::sync::atomic::AtomicU64,
    /// Tests: no drain on the idle and age timers (only before other ops and at 4,096).
    #[cfg(test)]
    hold_drains: std::sync::atomic::AtomicBool,
}

/// Result of one op, and the undo list of one shard's part of a batch.
type OpReply = Result<OpResult, MetaError>;

pub use crate::codec::{hex, md5_hex};

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
        .map(|d| crate::store::names::day_stamp(&d))
        .unwrap_or_else(|| "19700101".into())
}

/// `<N>,<offset>` as stored in the `moved` table.
fn parse_location(v: &[u8]) -> Option<(u64, u64)> {
    let (n, off) = std::str::from_utf8(v).ok()?.split_once(',')?;
    Some((n.parse().ok()?, off.parse().ok()?))
}

/// A delete that finds nothing to delete is fine.
fn del_ok(r: Result<(), lmdb::Error>) -> Result<(), MetaError> {
    match r {
        Ok(()) | Err(lmdb::Error::NotFound) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

/// Deletes `key` from `db` if it still maps to `md5`: an index entry that a record of another
/// md5 at the same path has taken over since (a replacing upload) stays.
fn del_own(
    txn: &mut lmdb::RwTransaction<'_>,
    db: Database,
    key: &[u8],
    md5: &str,
) -> Result<(), MetaError> {
    match txn.get(db, &key) {
        Ok(v) if v == md5.as_bytes() => txn.del(db, &key, None)?,
        Ok(_) | Err(lmdb::Error::NotFound) => {}
        Err(e) => return Err(e.into()),
    }
    Ok(())
}

fn decode(bytes: &[u8]) -> Result<FileInfo, MetaError> {
    serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))
}

/// An announced file still to be fetched (an `inbox` entry): the record as announced, and
/// when that announcement came (unix ns; 0 for entries older than the field). Announced again,
/// the file gets a new `arrived`: the pull task tells a fresh announcement by it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Inboxed {
    #[serde(flatten)]
    pub info: FileInfo,
    #[serde(default)]
    pub arrived: u64,
}

impl Inboxed {
    fn decode(bytes: &[u8]) -> Result<Inboxed, MetaError> {
        serde_json::from_slice(bytes).map_err(|e| MetaError::Corrupt(e.to_string()))
    }
}

/// Calls `f` on at most `n` entries of `db` in key order: the first ones, or those after the
/// key `after`. Returns the last key given when the page was full (more may follow), None
/// when the table ended. For work over a whole table in bounded transactions.
fn page<T: lmdb::Transaction>(
    txn: &T,
    db: Database,
    after: Option<&[u8]>,
    n: usize,
    mut f: impl FnMut(&[u8], &[u8]) -> Result<(), MetaError>,
) -> Result<Option<Vec<u8>>, MetaError> {
    let mut cur = txn.open_ro_cursor(db)?;
    let iter = match after {
        Some(k) => cur.iter_from(k),
        None => cur.iter_start(),
    };
    let mut taken = 0;
    for item in iter {
        let (k, v) = item?;
        if after == Some(k) {
            continue;
        }
        f(k, v)?;
        taken += 1;
        if taken == n {
            return Ok(Some(k.to_vec()));
        }
    }
    Ok(None)
}

/// Rebuilds a table derived from a shard's records: empties it, `index`es every record in
/// transactions of `per_txn` records (memory stays bounded for millions of records), and
/// marks it complete (`version` under `VERSION_KEY`) in the last one; a crash in the middle
/// starts over at the next open. Returns how many records there were.
fn rebuild_from_records(
    s: &Shard,
    table: Database,
    version: &[u8],
    per_txn: usize,
    index: impl Fn(&mut lmdb::RwTransaction<'_>, &FileInfo) -> Result<(), MetaError>,
) -> Result<u64, MetaError> {
    {
        let mut txn = s.env.begin_rw_txn()?;
        txn.clear_db(table)?;
        txn.commit()?;
    }
    let (mut after, mut count) = (None, 0u64);
    loop {
        let mut txn = s.env.begin_rw_txn()?;
        let mut records = Vec::with_capacity(per_txn);
        let more = page(&txn, s.files, after.as_deref(), per_txn, |_, v| {
            records.push(decode(v)?);
            Ok(())
        })?;
        for info in &records {
            index(&mut txn, info)?;
        }
        count += records.len() as u64;
        if more.is_none() {
            txn.put(table, &VERSION_KEY, &version, WriteFlags::empty())?;
            txn.commit()?;
            return Ok(count);
        }
        txn.commit()?;
        after = more;
    }
}

/// The key that marks a derived table (`listing`, `days`, `hay`, `paths`) complete; it sorts
/// before every other key of those tables.
const VERSION_KEY: &[u8] = b"\0version";

mod apply;
mod commit;
mod days;
mod hay;
mod intents;
mod journal;
mod layout;
pub mod listing;
mod ops;
mod paths;
mod place;
mod read;
mod txns;

pub use ops::{Announced, Conditional, Enqueue, Inserted};

/// What an insert requires of the live record of its id (S3's `If-None-Match: *` and
/// `If-Match`): decided in the transaction that writes, so two writers cannot both pass.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expect {
    /// Nothing: the insert replaces or creates.
    Nothing,
    /// No live record of the id.
    Absent,
    /// A live record of the id with this ETag (`FileInfo::etag`).
    Etag(String),
}

impl Expect {
    /// Whether the live record `current` (None: none) satisfies it.
    pub fn holds(&self, current: Option<&FileInfo>) -> bool {
        match self {
            Expect::Nothing => true,
            Expect::Absent => current.is_none(),
            Expect::Etag(e) => current.is_some_and(|c| c.etag() == e),
        }
    }
}

/// The insert part of `Op::Insert`, unpacked.
struct Put {
    info: Arc<FileInfo>,
    staged: Option<Staged>,
    dedup: bool,
    origin: Origin,
    expect: Expect,
}

/// The fields of `Op::Delete`, borrowed.
struct DeleteOp<'a> {
    md5: &'a str,
    notify: &'a [String],
    tomb_missing: bool,
}

#[cfg(test)]
mod tests {
    use super::place::*;
    use super::*;

    #[test]
    fn outbox_entries_say_whether_they_were_queued_again_and_old_ones_read_as_not() {
        for kind in [SyncKind::Put, SyncKind::Delete] {
            for again in [false, true] {
                let e = OutboxEntry {
                    kind,
                    queued_at: 1_765_000_000_123,
                    again,
                    folder: None,
                };
                assert_eq!(OutboxEntry::decode(&e.encode()), Some(e));
            }
            let e = OutboxEntry {
                kind,
                queued_at: 1_765_000_000_123,
                again: false,
                folder: Some(QueuedFolder {
                    rel: "files/b/photos/2026/".into(),
                    time: 1_765_000_000_100,
                }),
            };
            assert_eq!(OutboxEntry::decode(&e.encode()), Some(e));
        }
        // An entry written before the flag existed.
        let mut old = [0u8; 9];
        old[0] = b'P';
        old[1..].copy_from_slice(&42i64.to_le_bytes());
        let e = OutboxEntry::decode(&old).unwrap();
        assert_eq!((e.kind, e.queued_at, e.again), (SyncKind::Put, 42, false));
        assert_eq!(OutboxEntry::decode(b"X12345678"), None);
    }

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
        let placed = place_file(&a, d.path(), "b", Naming::Collide).unwrap();
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
        let placed = place_file(&new, d.path(), "f", Naming::Swap).unwrap();
        assert_eq!(std::fs::read(&at).unwrap(), b"new");
        placed.undo();
        assert_eq!(
            std::fs::read(&at).unwrap(),
            b"old",
            "the committed file is back"
        );
        assert_eq!(std::fs::read(&new).unwrap(), b"new");
        // Committed: the old content is what is left to remove.
        let placed = place_file(&new, d.path(), "f", Naming::Swap).unwrap();
        assert_eq!(
            placed.displaced().map(|p| std::fs::read(p).unwrap()),
            Some(b"old".to_vec())
        );
    }

    #[test]
    fn an_exact_placement_takes_a_free_name_and_refuses_a_taken_one() {
        let d = tempfile::tempdir().unwrap();
        let (new, at) = (d.path().join("new"), d.path().join("f"));
        std::fs::write(&new, b"new").unwrap();
        let placed = place_file(&new, d.path(), "f", Naming::Exact).unwrap();
        assert_eq!(placed.name(), "f");
        assert_eq!(std::fs::read(&at).unwrap(), b"new");
        placed.undo();
        assert!(!at.exists(), "undone, the name is free again");
        std::fs::write(&at, b"old").unwrap();
        assert!(matches!(
            place_file(&new, d.path(), "f", Naming::Exact),
            Err(MetaError::PathConflict(_))
        ));
        assert_eq!(std::fs::read(&at).unwrap(), b"old", "never swapped");
        assert_eq!(std::fs::read(&new).unwrap(), b"new", "nor moved");
        assert!(!d.path().join("0_f").exists(), "nor renamed");
    }

    #[test]
    fn a_directory_removed_before_the_move_is_made_again() {
        // `G/remove_empty_dir` may remove the fresh, still empty directory of an upload
        // between its creation and the move; the upload failed with a 500.
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("files/_tmp")).unwrap();
        let tmp = d.path().join("files/_tmp/t");
        std::fs::write(&tmp, b"x").unwrap();
        let st = Staged {
            tmp,
            dir: "files/default/20261206/19/30/1".into(),
            name: "a.txt".into(),
            replace: false,
        };
        let dir = d.path().join(&st.dir);
        let mut dirs = BTreeSet::new();
        create_dirs(d.path(), &dir, &mut dirs).unwrap();
        dirs.insert(dir.clone());
        std::fs::remove_dir(&dir).unwrap();
        let mut info = FileInfo {
            name: "a.txt".into(),
            ..Default::default()
        };
        let mut placed = Vec::new();
        place_staged(
            d.path(),
            &st,
            Naming::Collide,
            &mut info,
            &mut dirs,
            &mut placed,
        )
        .unwrap();
        assert_eq!(std::fs::read(dir.join("a.txt")).unwrap(), b"x");
        assert_eq!(info.path, st.dir);
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
        with_meta_at(dir.path(), f);
    }

    /// As `with_meta`, on the store at `dir`. When `f` returns, the executor stops with
    /// whatever the committer had not drained (as a crash would leave it).
    fn with_meta_at(dir: &Path, f: impl AsyncFnOnce(Arc<Meta>) + 'static) {
        let meta = Meta::open(dir, 4, 1).unwrap();
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .expect("executor");
        ex.run(async move {
            let rx = meta.take_owned(0).expect("shard channel");
            glommio::spawn_local(meta.clone().run_committer(0, rx, || {})).detach();
            f(meta).await;
        });
    }

    /// Stages `content` as a temp file under the store's root, as an upload's writer would.
    fn stage(meta: &Meta, name: &str, content: &[u8]) -> PathBuf {
        let tmp = meta.root.join("files/_tmp").join(name);
        std::fs::create_dir_all(tmp.parent().unwrap()).unwrap();
        std::fs::write(&tmp, content).unwrap();
        tmp
    }

    fn staged(tmp: &Path, dir: &str, name: &str, replace: bool) -> Option<Staged> {
        Some(Staged {
            tmp: tmp.to_path_buf(),
            dir: dir.to_string(),
            name: name.to_string(),
            replace,
        })
    }

    #[test]
    fn an_insert_into_new_directories_fsyncs_each_new_entry_in_its_parent() {
        with_meta(async |meta: Arc<Meta>| {
            let dir = "files/s/20261202/16/43";
            let tmp = stage(&meta, "a", b"content");
            let mut info = record(1);
            info.path = dir.into();
            let local = Origin::Local { notify: vec![] };
            let r = meta.insert(info, staged(&tmp, dir, "1.bin", false), true, local);
            assert!(matches!(r.await, Ok(Inserted::New(_))));
            let synced = commit::tests::SYNCED_DIRS.lock().unwrap().clone();
            for d in [
                "files",
                "files/s",
                "files/s/20261202",
                "files/s/20261202/16",
                dir,
            ] {
                assert!(
                    synced.contains(&meta.root.join(d)),
                    "{d} not fsynced: a power cut could lose the new entry under it"
                );
            }
        });
    }

    #[test]
    fn a_conditional_insert_writes_only_when_its_condition_holds_of_the_live_record() {
        with_meta(async |meta: Arc<Meta>| {
            let dir = "files/b";
            let mut info = record(3);
            info.path = dir.into();
            info.md5 = path_key("files/b/k");
            info.name = "k".into();
            let local = || Origin::Local { notify: vec![] };
            let put = |body: &[u8], expect: Expect| {
                let tmp = stage(&meta, "put", body);
                let mut i = info.clone();
                i.size = body.len() as i64;
                meta.insert_expecting(i, staged(&tmp, dir, "k", true), expect, local())
            };
            let on_disk = || std::fs::read(meta.root.join("files/b/k")).ok();
            // Create-only: the first writer, then nobody.
            assert!(matches!(
                put(b"one", Expect::Absent).await,
                Ok(Conditional::Stored(_))
            ));
            let again = put(b"two", Expect::Absent).await.unwrap();
            assert_eq!(again, Conditional::PreconditionFailed);
            assert_eq!(on_disk().as_deref(), Some(&b"one"[..]));
            // Replace-only-this-version: a wrong ETag writes nothing, the right one replaces.
            let etag = meta.get(&info.md5).unwrap().unwrap().etag().to_string();
            let wrong = put(b"three", Expect::Etag("0123".into())).await.unwrap();
            assert_eq!(wrong, Conditional::PreconditionFailed);
            assert_eq!(on_disk().as_deref(), Some(&b"one"[..]));
            assert!(matches!(
                put(b"four", Expect::Etag(etag)).await,
                Ok(Conditional::Stored(_))
            ));
            assert_eq!(on_disk().as_deref(), Some(&b"four"[..]));
        });
    }

    #[test]
    fn a_failed_overwrite_puts_the_committed_file_back_under_its_record() {
        with_meta(async |meta: Arc<Meta>| {
            let dir = "files/d";
            let mut info = record(2);
            info.path = dir.into();
            info.md5 = path_key("files/d/f.bin");
            info.name = "f.bin".into();
            let local = || Origin::Local { notify: vec![] };
            let old = stage(&meta, "old", b"old");
            let first = meta.insert(
                info.clone(),
                staged(&old, dir, "f.bin", true),
                false,
                local(),
            );
            assert!(matches!(first.await, Ok(Inserted::New(_))));
            // The next batch fails at its durability step (dedup off: the file is replaced).
            std::fs::write(meta.root.join("fail-durable"), b"").unwrap();
            let new = stage(&meta, "new", b"new");
            let mut newer = info.clone();
            newer.size = 3;
            let second = meta.insert(newer, staged(&new, dir, "f.bin", true), false, local());
            assert!(second.await.is_err());
            std::fs::remove_file(meta.root.join("fail-durable")).unwrap();
            assert_eq!(
                std::fs::read(meta.root.join("files/d/f.bin")).unwrap(),
                b"old"
            );
            assert_eq!(
                meta.get(&info.md5).unwrap().map(|i| i.size),
                Some(info.size)
            );
            assert_eq!(
                std::fs::read(&new).unwrap(),
                b"new",
                "the staged content is back"
            );
        });
    }

    #[test]
    fn a_replacing_upload_is_journaled_to_a_free_name_and_swapped_synchronously_over_a_taken_one() {
        with_meta(async |meta: Arc<Meta>| {
            meta.hold_drains
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let dir = "files/b";
            let mut info = record(30);
            info.path = dir.into();
            info.md5 = path_key("files/b/k");
            info.name = "k".into();
            let local = || Origin::Local { notify: vec![] };
            let put = |content: &'static [u8], tag: &str| {
                let tmp = stage(&meta, tag, content);
                let mut i = info.clone();
                i.size = content.len() as i64;
                meta.insert(i, staged(&tmp, dir, "k", true), false, local())
            };
            assert!(matches!(put(b"one", "t1").await, Ok(Inserted::New(_))));
            let journaled = || {
                std::fs::metadata(journal::journal_path(&meta.root, 0, 0)).map_or(0, |m| m.len())
            };
            assert!(journaled() > 0, "acknowledged from the journal");
            assert_eq!(meta.applied_seq(0).unwrap(), 0, "not in LMDB yet");
            assert_eq!(meta.get(&info.md5).unwrap().map(|i| i.size), Some(3));
            assert_eq!(std::fs::read(meta.root.join("files/b/k")).unwrap(), b"one");
            // Its key again: the journal cannot swap, the synchronous path does.
            assert!(matches!(put(b"second", "t2").await, Ok(Inserted::New(_))));
            assert!(
                meta.applied_seq(0).unwrap() > 0,
                "drained by the synchronous path"
            );
            assert_eq!(meta.get(&info.md5).unwrap().map(|i| i.size), Some(6));
            assert_eq!(
                std::fs::read(meta.root.join("files/b/k")).unwrap(),
                b"second"
            );
            // A file no record names holds another key: swapped, never renamed `0_<name>`.
            std::fs::write(meta.root.join("files/b/other"), b"stray").unwrap();
            let mut j = info.clone();
            j.md5 = path_key("files/b/other");
            j.name = "other".into();
            let tmp = stage(&meta, "t3", b"third");
            let r = meta.insert(j, staged(&tmp, dir, "other", true), false, local());
            assert!(matches!(r.await, Ok(Inserted::New(_))));
            assert_eq!(
                std::fs::read(meta.root.join("files/b/other")).unwrap(),
                b"third"
            );
            let mut names: Vec<_> = std::fs::read_dir(meta.root.join("files/b"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            names.sort();
            assert_eq!(names, ["k", "other"]);
        });
    }

    /// Inserts `name` with `content` under `dir` as a local plain upload; its record.
    async fn put_plain(meta: &Meta, i: u32, dir: &str, name: &str, content: &[u8]) -> FileInfo {
        let mut info = record(i);
        info.path = dir.into();
        info.name = name.into();
        info.size = content.len() as i64;
        let tmp = stage(meta, &format!("t{i}"), content);
        let local = Origin::Local { notify: vec![] };
        let r = meta.insert(info.clone(), staged(&tmp, dir, name, false), true, local);
        assert!(matches!(r.await, Ok(Inserted::New(_))));
        info
    }

    #[test]
    fn a_deleted_file_leaves_its_name_before_the_commit_and_the_caches_are_told() {
        with_meta(async |meta: Arc<Meta>| {
            let a = put_plain(&meta, 20, "files/d", "f.bin", b"abc").await;
            let epoch = meta.files_epoch();
            assert!(meta
                .delete(a.md5.clone(), vec![], false)
                .await
                .unwrap()
                .is_some());
            assert!(meta.files_epoch() > epoch, "the file caches were not told");
            let left: Vec<_> = std::fs::read_dir(meta.root.join("files/d"))
                .unwrap()
                .map(|e| e.unwrap().file_name())
                .collect();
            assert!(left.is_empty(), "{left:?}");
        });
    }

    #[test]
    fn a_stored_file_with_the_hidden_name_of_a_deleted_one_is_not_replaced() {
        with_meta(async |meta: Arc<Meta>| {
            let victim = put_plain(&meta, 23, "files/d", "a.bin", b"deleted").await;
            let hidden = intents::aside_of(&meta.root.join("files/d/a.bin"));
            let name = hidden.file_name().unwrap().to_str().unwrap().to_string();
            put_plain(&meta, 24, "files/d", &name, b"someone's file").await;
            assert!(meta
                .delete(victim.md5.clone(), vec![], false)
                .await
                .unwrap()
                .is_some());
            assert!(!meta.root.join("files/d/a.bin").exists());
            assert_eq!(std::fs::read(&hidden).unwrap(), b"someone's file");
        });
    }

    #[test]
    fn a_file_set_aside_by_an_interrupted_delete_follows_its_record_at_the_next_open() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().to_path_buf();
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            put_plain(&meta, 21, "files/d", "kept.bin", b"kept").await;
            let gone = put_plain(&meta, 22, "files/d", "gone.bin", b"gone").await;
            assert!(meta
                .delete(gone.md5.clone(), vec![], false)
                .await
                .unwrap()
                .is_some());
            // The state two crashes leave: `kept.bin` set aside, its delete not committed;
            // `gone.bin` deleted, its file still aside.
            let kept = root.join("files/d/kept.bin");
            std::fs::rename(&kept, intents::aside_of(&kept)).unwrap();
            let gone = root.join("files/d/gone.bin");
            std::fs::write(intents::aside_of(&gone), b"gone").unwrap();
            let journal = [
                intents::Intent::Unlink {
                    rel: "files/d/kept.bin".into(),
                },
                intents::Intent::Unlink {
                    rel: "files/d/gone.bin".into(),
                },
            ];
            intents::write(&intents::Files::default(), &root, 0, &journal).unwrap();
        });
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            let mut left: Vec<_> = std::fs::read_dir(meta.root.join("files/d"))
                .unwrap()
                .map(|e| e.unwrap().file_name().into_string().unwrap())
                .collect();
            left.sort();
            assert_eq!(left, ["kept.bin"]);
            assert_eq!(
                std::fs::read(meta.root.join("files/d/kept.bin")).unwrap(),
                b"kept"
            );
        });
    }

    fn record(i: u32) -> FileInfo {
        FileInfo {
            name: format!("{i}.bin"),
            path: "files/default/x".into(),
            md5: format!("{i:08x}{}", "0".repeat(24)),
            size: 1,
            time_stamp: 1_700_000_000,
            offset: crate::json::OFFSET_PLAIN,
            ..Default::default()
        }
    }

    #[test]
    fn a_folder_marker_is_listed_among_files_in_byte_order_durably_and_is_no_record() {
        use super::listing::{listing_key, Listed};
        let dir = tempfile::tempdir().unwrap();
        let md5 = record(1).md5;
        with_meta_at(dir.path(), async |meta: Arc<Meta>| {
            let tmp = stage(&meta, "a", b"x");
            let info = FileInfo {
                name: "e.txt".into(),
                path: "files/b".into(),
                ..record(1)
            };
            let local = Origin::Local { notify: vec![] };
            let r = meta.insert(info, staged(&tmp, "files/b", "e.txt", false), true, local);
            let r = r.await;
            assert!(matches!(r, Ok(Inserted::New(_))), "{r:?}");
            meta.put_folder("files/b/e/".into(), 42, Vec::new())
                .await
                .unwrap();
        });
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            let prefix = listing_key("files/b/");
            let file = (b"files/b/e.txt".to_vec(), Listed::File(md5.clone()));
            let marker = Listed::Folder {
                rel: "files/b/e/".into(),
                modified_ms: 42,
            };
            // '.' sorts before '/': the file first, as S3 sorts `e.txt` and `e/`.
            assert_eq!(
                meta.list_page(&prefix, &prefix, 10).unwrap(),
                vec![file.clone(), (b"files/b/e/".to_vec(), marker)],
                "listed after a restart"
            );
            assert_eq!(meta.folder("files/b/e/").unwrap(), Some(42));
            assert_eq!(meta.folder("files/b/e.txt/").unwrap(), None);
            // No record, no counts: go-fastdfs sees only the file.
            let stats = meta.day_stats().unwrap();
            let files: i64 = stats.values().map(|(n, _)| n).sum();
            assert_eq!(files, 1, "{stats:?}");
            assert!(meta
                .remove_folder("files/b/e/".into(), Vec::new())
                .await
                .unwrap());
            assert!(!meta
                .remove_folder("files/b/e/".into(), Vec::new())
                .await
                .unwrap());
            assert_eq!(meta.list_page(&prefix, &prefix, 10).unwrap(), vec![file]);
            assert_eq!(meta.folder("files/b/e/").unwrap(), None);
        });
    }

    #[test]
    fn a_removed_folder_marker_leaves_a_tombstone_that_older_puts_from_peers_do_not_pass() {
        let dir = tempfile::tempdir().unwrap();
        with_meta_at(dir.path(), async |meta: Arc<Meta>| {
            let (rel, peer) = ("files/b/d/", "http://peer".to_string());
            let from_peer = |put, time| meta.folder_from_peer(rel.into(), put, time);
            meta.put_folder(rel.into(), 100, Vec::new()).await.unwrap();
            assert!(meta.remove_folder(rel.into(), Vec::new()).await.unwrap());
            // A peer's put from before the removal does not bring the marker back.
            assert!(!from_peer(true, 200).await.unwrap());
            assert_eq!(meta.folder(rel).unwrap(), None);
            assert_eq!(meta.folder_paths().unwrap(), vec![rel.to_string()]);
            // A repair queues the removal for a peer, with the removal's time.
            assert!(meta.requeue_folder(rel.into(), peer.clone()).await.unwrap());
            let queued: Vec<_> = (0..meta.shard_count())
                .flat_map(|shard| meta.outbox_page(shard, &peer, "", 10).unwrap())
                .collect();
            assert_eq!(queued.len(), 1, "{queued:?}");
            let (kind, f) = (queued[0].1.kind, queued[0].1.folder.clone().unwrap());
            assert_eq!((kind, f.rel.as_str()), (SyncKind::Delete, rel));
            assert!(
                f.time > 200,
                "removed now, after the peer's put: {}",
                f.time
            );
            // A later put from a peer passes, and clears the tombstone; a later removal from
            // a peer removes it again; one of a marker never here is kept as a tombstone.
            let later = chrono::Utc::now().timestamp_millis() + 60_000;
            assert!(from_peer(true, later).await.unwrap());
            assert_eq!(meta.folder(rel).unwrap(), Some(later));
            assert!(!from_peer(false, later - 1).await.unwrap());
            assert!(from_peer(false, later + 1).await.unwrap());
            assert!(!from_peer(true, later).await.unwrap());
            assert!(!from_peer(false, 5).await.unwrap());
            assert!(!meta
                .folder_from_peer("files/b/o/".into(), false, 7)
                .await
                .unwrap());
            assert!(!meta
                .folder_from_peer("files/b/o/".into(), true, 6)
                .await
                .unwrap());
            assert!(meta
                .folder_from_peer("files/b/o/".into(), true, 8)
                .await
                .unwrap());
            let mut paths = meta.folder_paths().unwrap();
            paths.sort();
            assert_eq!(
                paths,
                vec!["files/b/d/".to_string(), "files/b/o/".to_string()]
            );
            assert!(!meta
                .requeue_folder("files/b/x/".into(), peer)
                .await
                .unwrap());
        });
    }

    fn merged(i: u32, container: u64, offset: u64, size: i64) -> FileInfo {
        FileInfo {
            name: format!("{container},{offset},{size},.bin"),
            path: "files/haystack/p1".into(),
            md5: format!("{i:08x}{}", "1".repeat(24)),
            size,
            time_stamp: 1_700_000_000,
            offset: offset as i64,
            ..Default::default()
        }
    }

    #[test]
    fn the_container_index_follows_inserts_moves_and_deletes_and_is_rebuilt_when_missing() {
        with_meta(async |meta: Arc<Meta>| {
            let dir = "files/haystack/p1";
            let local = || Origin::Local { notify: vec![] };
            for (i, (n, off, size)) in [(100, 0, 11), (100, 11, 5), (101, 0, 7)].iter().enumerate()
            {
                let info = merged(i as u32, *n, *off, *size);
                let r = meta.insert(info, None, true, local()).await.unwrap();
                assert!(matches!(r, Inserted::New(_)));
            }
            // Scans read LMDB: the journaled inserts are drained first.
            meta.settle().await.unwrap();
            let usage = |m: &Meta| m.container_usage(dir).unwrap();
            assert_eq!(usage(&meta), [(100, (2, 16)), (101, (1, 7))].into());
            let a = merged(0, 100, 0, 11).md5;
            assert_eq!(
                meta.merged_in(dir, 100).unwrap(),
                vec![(a.clone(), 0, 11), (merged(1, 100, 11, 5).md5, 11, 5)]
            );
            // Compaction moves file 0 into container 102; a stale move is refused.
            assert!(meta.relocate(a.clone(), (100, 0), (102, 40)).await.unwrap());
            assert!(!meta.relocate(a.clone(), (100, 0), (103, 0)).await.unwrap());
            assert_eq!(
                usage(&meta),
                [(100, (1, 5)), (101, (1, 7)), (102, (1, 11))].into()
            );
            assert_eq!(meta.merged_in(dir, 102).unwrap(), vec![(a.clone(), 40, 11)]);
            // A delete takes the file out where it is now.
            assert!(meta.delete(a, vec![], false).await.unwrap().is_some());
            assert_eq!(usage(&meta), [(100, (1, 5)), (101, (1, 7))].into());
            assert!(meta.merged_in(dir, 102).unwrap().is_empty());
            let b = merged(1, 100, 11, 5).md5;
            assert!(meta.relocate(b, (100, 11), (102, 0)).await.unwrap());
            let want: BTreeMap<u64, (u64, u64)> = [(101, (1, 7)), (102, (1, 5))].into();
            assert_eq!(usage(&meta), want);
            // A store whose index is missing (older version, crash while building) rebuilds it.
            for s in &meta.shards {
                let mut txn = s.env.begin_rw_txn().unwrap();
                txn.clear_db(s.hay).unwrap();
                txn.commit().unwrap();
                hay::ensure_built(s).unwrap();
            }
            assert_eq!(
                usage(&meta),
                want,
                "moved files are indexed where they are now"
            );
        });
    }

    #[test]
    fn a_merged_upload_is_served_from_the_journal_before_its_drain_and_replayed_after_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let a = merged(7, 100, 0, 11);
        let b = merged(8, 100, 11, 5);
        let (a2, b2) = (a.clone(), b.clone());
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            meta.hold_drains
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let local = || Origin::Local {
                notify: vec!["http://peer:1".into()],
            };
            for info in [&a2, &b2] {
                let r = meta
                    .insert(info.clone(), None, true, local())
                    .await
                    .unwrap();
                assert_eq!(r, Inserted::New(info.clone()));
            }
            assert_eq!(
                meta.applied_seq(0).unwrap(),
                0,
                "acknowledged from the journal, not committed to LMDB yet"
            );
            assert_eq!(meta.get(&a2.md5).unwrap(), Some(a2.clone()));
            let key = path_key(&b2.rel_path());
            assert_eq!(meta.get_by_path_key(&key).unwrap(), Some(b2.clone()));
            // The same content again: dedup answers with the journaled record.
            let mut again = a2.clone();
            again.name = "100,16,11,.bin".into();
            again.offset = 16;
            let r = meta.insert(again, None, true, local()).await.unwrap();
            assert_eq!(r, Inserted::Existing(a2.clone()));
            // The executor stops here without draining (a crash).
        });
        assert!(
            std::fs::metadata(journal::journal_path(dir.path(), 0, 0))
                .unwrap()
                .len()
                > 0
        );
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            assert_eq!(meta.applied_seq(0).unwrap(), 2, "replayed on open");
            assert_eq!(meta.get(&a.md5).unwrap(), Some(a.clone()));
            assert_eq!(
                meta.get_by_path_key(&path_key(&b.rel_path())).unwrap(),
                Some(b.clone())
            );
            assert_eq!(
                meta.outbox_depth("http://peer:1").unwrap().0,
                2,
                "queued for the peer"
            );
            assert_eq!(
                meta.container_usage("files/haystack/p1").unwrap(),
                [(100, (2, 16))].into()
            );
        });
    }

    #[test]
    fn records_drain_behind_the_journal_while_uploads_go_on_and_dedup_holds_across_it() {
        let dir = tempfile::tempdir().unwrap();
        let n = journal::DRAIN_OPS as u32 + 1500;
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            meta.hold_drains
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // Two waves: the first fills the journal past its drain size; the second is
            // journaled while that drain runs, and repeats 500 md5s of the first.
            let mut results = Vec::new();
            for range in [0..journal::DRAIN_OPS as u32, journal::DRAIN_OPS as u32..n] {
                let tasks: Vec<_> = range
                    .map(|i| {
                        let meta = meta.clone();
                        glommio::spawn_local(async move {
                            let mut info = merged(i % (n - 500), 100, u64::from(i) * 8, 8);
                            info.name = format!("100,{},8,.bin", u64::from(i) * 8);
                            let local = Origin::Local { notify: vec![] };
                            (i, meta.insert(info, None, true, local).await.unwrap())
                        })
                    })
                    .collect();
                for t in tasks {
                    results.push(t.await);
                }
            }
            let mut new = 0;
            for (i, r) in &results {
                match r {
                    Inserted::New(info) => {
                        new += 1;
                        assert_eq!(meta.get(&info.md5).unwrap().as_ref(), Some(info));
                    }
                    Inserted::Existing(info) => {
                        assert!(*i >= n - 500, "only the repeats are known");
                        assert_eq!(info.offset, i64::from(i - (n - 500)) * 8, "the first one");
                    }
                    Inserted::Tombstoned => unreachable!(),
                }
            }
            assert_eq!(new, n - 500);
            meta.settle().await.unwrap();
            assert_eq!(meta.applied_seq(0).unwrap(), u64::from(n - 500));
            let usage = meta.container_usage("files/haystack/p1").unwrap();
            assert_eq!(usage[&100].0, u64::from(n - 500));
        });
    }

    #[test]
    fn journaled_content_is_written_back_to_a_container_that_lost_it_in_a_crash() {
        let dir = tempfile::tempdir().unwrap();
        let a = merged(11, 100, 6, 6);
        let a2 = a.clone();
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            meta.hold_drains
                .store(true, std::sync::atomic::Ordering::Relaxed);
            // The container append was written, not synced, and the power cut lost it.
            let content = bytes::Bytes::from_static(b"hello");
            let r = meta.insert_merged(a2.clone(), content, true, vec![]);
            assert_eq!(r.await.unwrap(), Inserted::New(a2.clone()));
        });
        let container = dir.path().join("files/haystack/p1/100");
        assert!(!container.exists());
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            assert_eq!(meta.get(&a.md5).unwrap(), Some(a.clone()));
            let back = crate::store::haystack::read_blocking(&container, 6, 6).unwrap();
            assert_eq!(back.as_deref(), Some(&b"hello"[..]), "replayed into place");
        });
    }

    #[test]
    fn without_one_environment_per_executor_a_merged_upload_commits_at_once() {
        let dir = tempfile::tempdir().unwrap();
        drop(Meta::open(dir.path(), 4, 2).unwrap()); // created with two executors
        let meta = Meta::open(dir.path(), 4, 1).unwrap(); // started with one
        assert!(!meta.journals());
        let container = dir.path().join("files/haystack/p1/100");
        std::fs::create_dir_all(container.parent().unwrap()).unwrap();
        std::fs::write(&container, b"1hello").unwrap();
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .unwrap();
        ex.run(async move {
            let rx = meta.take_owned(0).unwrap();
            glommio::spawn_local(meta.clone().run_committer(0, rx, || {})).detach();
            let a = merged(12, 100, 0, 6);
            let content = bytes::Bytes::from_static(b"hello");
            let r = meta.insert_merged(a.clone(), content, true, vec![]).await;
            assert_eq!(r.unwrap(), Inserted::New(a.clone()));
            let usage = meta.container_usage("files/haystack/p1").unwrap();
            assert_eq!(usage, [(100, (1, 6))].into(), "in LMDB without a drain");
        });
    }

    #[test]
    fn a_drained_journal_is_never_replayed_over_a_later_delete() {
        let dir = tempfile::tempdir().unwrap();
        let a = merged(9, 100, 0, 11);
        let (a2, root) = (a.clone(), dir.path().to_path_buf());
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            meta.hold_drains
                .store(true, std::sync::atomic::Ordering::Relaxed);
            let local = Origin::Local { notify: vec![] };
            meta.insert(a2.clone(), None, true, local).await.unwrap();
            let journal = std::fs::read(journal::journal_path(&root, 0, 0)).unwrap();
            meta.settle().await.unwrap();
            assert_eq!(meta.applied_seq(0).unwrap(), 1);
            assert_eq!(
                std::fs::metadata(journal::journal_path(&root, 0, 0))
                    .unwrap()
                    .len(),
                0,
                "emptied once drained"
            );
            // The emptying was not synced and a power cut brings the old bytes back.
            std::fs::write(journal::journal_path(&root, 0, 0), journal).unwrap();
            assert!(meta
                .delete(a2.md5.clone(), vec![], false)
                .await
                .unwrap()
                .is_some());
        });
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            assert_eq!(meta.get(&a.md5).unwrap(), None, "the delete holds");
            assert!(meta.tombstone(&a.md5).unwrap().is_some());
        });
    }

    #[test]
    fn a_delete_of_a_journaled_upload_drains_it_first() {
        with_meta(async |meta: Arc<Meta>| {
            let a = merged(10, 100, 0, 11);
            let local = Origin::Local { notify: vec![] };
            meta.insert(a.clone(), None, true, local).await.unwrap();
            let epoch = meta.files_epoch();
            let deleted = meta.delete(a.md5.clone(), vec![], false).await.unwrap();
            assert_eq!(deleted, Some(a.clone()));
            // Told before the commit is visible and again after it: a GET between the two
            // may have cached the file under the first move (a merged file's delete unlinks
            // nothing, so only the second move clears that).
            assert!(
                meta.files_epoch() >= epoch + 2,
                "the file caches were not told after the commit"
            );
            assert_eq!(meta.get(&a.md5).unwrap(), None);
            assert_eq!(meta.applied_seq(0).unwrap(), 1);
            assert!(meta
                .container_usage("files/haystack/p1")
                .unwrap()
                .is_empty());
        });
    }

    #[test]
    fn commits_queue_changes_per_peer_and_a_removed_peer_is_purged() {
        with_meta(async |meta: Arc<Meta>| {
            let peers = vec!["http://a:1".to_string(), "http://b:1".to_string()];
            for i in 0..5 {
                let op = Op::Insert {
                    info: Arc::new(record(i)),
                    staged: None,
                    unsynced: None,
                    expect: Expect::Nothing,
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
            let entry = &page.iter().find(|(m, _)| *m == md5).expect("queued").1;
            assert_eq!(entry.kind, SyncKind::Delete);
            let copy = Op::Insert {
                info: Arc::new(record(0)),
                staged: None,
                unsynced: None,
                dedup: true,
                origin: Origin::Peer,
                expect: Expect::Nothing,
            };
            assert_eq!(meta.submit(copy).await.unwrap(), OpResult::Tombstoned);
            assert!(meta.get(&md5).unwrap().is_none());
        });
    }

    /// One record at `files/default/x/<name>`.
    fn at(i: u32, name: &str) -> FileInfo {
        FileInfo {
            name: name.into(),
            ..record(i)
        }
    }

    #[test]
    fn a_path_keeps_the_entry_of_the_record_stored_there_last_when_an_older_one_goes() {
        with_meta(async |meta: Arc<Meta>| {
            let local = || Origin::Local { notify: vec![] };
            let (old, new) = (at(1, "same.bin"), at(5, "same.bin"));
            let key = path_key(&old.rel_path());
            for info in [&old, &new] {
                let r = meta.insert(info.clone(), None, true, local()).await;
                assert!(matches!(r, Ok(Inserted::New(_))));
            }
            assert_eq!(meta.get_by_path_key(&key).unwrap(), Some(new.clone()));
            meta.delete(old.md5.clone(), vec![], false).await.unwrap();
            assert_eq!(
                meta.get_by_path_key(&key).unwrap(),
                Some(new.clone()),
                "the older record's delete leaves the newer one's path entry"
            );
            meta.delete(new.md5.clone(), vec![], false).await.unwrap();
            assert_eq!(meta.get_by_path_key(&key).unwrap(), None);
        });
    }

    #[test]
    fn a_store_with_one_path_table_per_shard_is_moved_to_one_per_environment_on_open() {
        let dir = tempfile::tempdir().unwrap();
        let infos: Vec<FileInfo> = (1..=9).map(|i| at(i, &format!("f{i}.bin"))).collect();
        let put = infos.clone();
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            for info in put {
                let r = meta.insert(info, None, true, Origin::Local { notify: vec![] });
                assert!(matches!(r.await, Ok(Inserted::New(_))));
            }
        });
        // Opened again: the journal's records are replayed into LMDB.
        with_meta_at(dir.path(), async |_meta: Arc<Meta>| {});
        // Rewrite the environment as the layout before the per-environment table kept it:
        // each record's path entry in `paths-<its shard>`, no `paths` table.
        let env_dir = dir.path().join("data/meta/env-000");
        // The store's one environment, opened as LMDB itself (the store is closed meanwhile).
        let open_env = || {
            Environment::new()
                .set_flags(EnvironmentFlags::NO_TLS)
                .set_max_dbs(64)
                .set_map_size(MAP_BYTES)
                .open(&env_dir)
                .unwrap()
        };
        {
            let env = open_env();
            let db = env.open_db(Some("paths")).unwrap();
            let mut txn = env.begin_rw_txn().unwrap();
            for info in &infos {
                let key = path_key(&info.rel_path());
                assert_eq!(txn.get(db, &key.as_bytes()), Ok(info.md5.as_bytes()));
                let name = format!("paths-{:03}", shard_of(&info.md5, 4));
                // SAFETY: the handle is used only within this transaction.
                let shard = unsafe { txn.create_db(Some(&name), DatabaseFlags::empty()) }.unwrap();
                txn.put(
                    shard,
                    &key.as_bytes(),
                    &info.md5.as_bytes(),
                    WriteFlags::empty(),
                )
                .unwrap();
            }
            unsafe { txn.drop_db(db).unwrap() };
            txn.commit().unwrap();
        }
        let want = infos.clone();
        with_meta_at(dir.path(), async move |meta: Arc<Meta>| {
            for info in &want {
                let key = path_key(&info.rel_path());
                assert_eq!(meta.get_by_path_key(&key).unwrap().as_ref(), Some(info));
            }
        });
        let env = open_env();
        for shard in 0..4 {
            assert!(
                matches!(
                    env.open_db(Some(&format!("paths-{shard:03}"))),
                    Err(lmdb::Error::NotFound)
                ),
                "the per-shard table {shard} is dropped once copied"
            );
        }
    }
}
