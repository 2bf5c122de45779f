//! The typed face of the store's writes: one method per kind of change, each answering its
//! own outcome. Inside, every change is an `Op` sent to the owner executor's committer (group
//! commit); callers never see `Op` or `OpResult`.

use super::*;

/// What an insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// Stored and indexed (a staged file was moved into place).
    New(FileInfo),
    /// A live record of the same content exists (dedup): the staged file was left where it
    /// was, for the caller to remove.
    Existing(FileInfo),
    /// A tombstone not older than the file refused it (a peer's copy of a deleted file).
    Tombstoned,
}

/// What a conditional insert did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Conditional {
    /// Stored and indexed.
    Stored(FileInfo),
    /// The condition did not hold of the record there: nothing was written.
    PreconditionFailed,
}

/// What an announcement from a peer did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Announced {
    /// Queued in the inbox, to be fetched.
    Queued,
    /// The file is here already.
    Present,
    /// Deleted here: the tombstone wins.
    Tombstoned,
}

/// A change to queue for peers (re-sync, repair).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Enqueue {
    pub md5: String,
    pub peers: Vec<String>,
    pub kind: SyncKind,
}

/// An answer the committer never gives to this kind of op: a bug, reported as an error.
fn unexpected(op: &'static str, answer: OpResult) -> MetaError {
    debug_assert!(false, "{op} answered {answer:?}");
    MetaError::Corrupt(format!("{op} answered {answer:?}"))
}

impl Meta {
    /// Stores a file: `staged` is moved into place (or none, for a file already there), the
    /// record indexed, and (from `Origin::Local`) the change queued for peers, in one commit.
    pub async fn insert(
        &self,
        info: FileInfo,
        staged: Option<Staged>,
        dedup: bool,
        origin: Origin,
    ) -> Result<Inserted, MetaError> {
        let op = Op::Insert {
            info: Arc::new(info),
            staged,
            dedup,
            origin,
            unsynced: None,
            expect: Expect::Nothing,
        };
        self.inserted(op).await
    }

    /// [`Meta::insert`] of a local file (no dedup) that requires `expect` of the live record
    /// of its id, decided in the transaction that writes (S3's conditional writes).
    pub async fn insert_expecting(
        &self,
        info: FileInfo,
        staged: Option<Staged>,
        expect: Expect,
        origin: Origin,
    ) -> Result<Conditional, MetaError> {
        let op = Op::Insert {
            info: Arc::new(info),
            staged,
            dedup: false,
            origin,
            unsynced: None,
            expect,
        };
        match self.submit(op).await? {
            OpResult::Inserted(info) => Ok(Conditional::Stored(Arc::unwrap_or_clone(info))),
            OpResult::PreconditionFailed => Ok(Conditional::PreconditionFailed),
            other => Err(unexpected("conditional insert", other)),
        }
    }

    /// Stores a merged file uploaded here whose bytes were written to their container but not
    /// fdatasynced: `content` goes into the journal with the record (durable before the
    /// answer), and the container is fdatasynced before the record reaches LMDB.
    pub async fn insert_merged(
        &self,
        info: FileInfo,
        content: bytes::Bytes,
        dedup: bool,
        notify: Vec<String>,
    ) -> Result<Inserted, MetaError> {
        assert!(info.is_merged(), "a merged file");
        let op = Op::Insert {
            info: Arc::new(info),
            staged: None,
            dedup,
            origin: Origin::Local { notify },
            unsynced: Some(content),
            expect: Expect::Nothing,
        };
        self.inserted(op).await
    }

    async fn inserted(&self, op: Op) -> Result<Inserted, MetaError> {
        match self.submit(op).await? {
            OpResult::Inserted(info) => Ok(Inserted::New(Arc::unwrap_or_clone(info))),
            OpResult::Existing(info) => Ok(Inserted::Existing(info)),
            OpResult::Tombstoned => Ok(Inserted::Tombstoned),
            other => Err(unexpected("insert", other)),
        }
    }

    /// Deletes a record and then its file, leaving a tombstone (also for an unknown md5 when
    /// `tomb_missing`: a delete forwarded by a peer) and queueing the delete for `notify`.
    /// The deleted record, or None when there was none.
    pub async fn delete(
        &self,
        md5: String,
        notify: Vec<String>,
        tomb_missing: bool,
    ) -> Result<Option<FileInfo>, MetaError> {
        let op = Op::Delete {
            md5,
            notify,
            tomb_missing,
        };
        match self.submit(op).await? {
            OpResult::Deleted(info) => Ok(Some(info)),
            OpResult::NotFound => Ok(None),
            other => Err(unexpected("delete", other)),
        }
    }

    /// A peer announced a file: queue it in the inbox unless it is here or tombstoned.
    pub async fn announce(&self, info: FileInfo) -> Result<Announced, MetaError> {
        let op = Op::Announce {
            info: Box::new(info),
        };
        match self.submit(op).await? {
            OpResult::Queued => Ok(Announced::Queued),
            OpResult::Existing(_) => Ok(Announced::Present),
            OpResult::Tombstoned => Ok(Announced::Tombstoned),
            other => Err(unexpected("announce", other)),
        }
    }

    /// Names the live record of `md5` by `key` too (lookups by path key find it), unless `key`
    /// names something already; false when there is no such record. The entry outlives the
    /// record harmlessly: a lookup through it then finds nothing.
    pub async fn alias(&self, md5: String, key: String) -> Result<bool, MetaError> {
        match self.submit(Op::Alias { md5, key }).await? {
            OpResult::Done => Ok(true),
            OpResult::NotFound => Ok(false),
            other => Err(unexpected("alias", other)),
        }
    }

    /// Gives up fetching an announced file: the announcement that `arrived` then
    /// (`Inboxed::arrived`); one that came later stays.
    pub async fn drop_announced(&self, md5: String, arrived: u64) -> Result<(), MetaError> {
        match self.submit(Op::InboxDrop { md5, arrived }).await? {
            OpResult::Done => Ok(()),
            other => Err(unexpected("inbox drop", other)),
        }
    }

    /// Queues a change for peers; false when skipped (a put of an unknown or tombstoned md5).
    pub async fn enqueue(&self, e: Enqueue) -> Result<bool, MetaError> {
        let op = Op::Enqueue {
            md5: e.md5,
            peers: e.peers,
            kind: e.kind,
        };
        match self.submit(op).await? {
            OpResult::Done => Ok(true),
            OpResult::NotFound => Ok(false),
            other => Err(unexpected("enqueue", other)),
        }
    }

    /// Compaction copied a merged file's bytes from `from` to `to` (container, offset); false
    /// when the file is gone or no longer at `from` (then the copy is dead bytes).
    pub async fn relocate(
        &self,
        md5: String,
        from: (u64, u64),
        to: (u64, u64),
    ) -> Result<bool, MetaError> {
        match self.submit(Op::Relocate { md5, from, to }).await? {
            OpResult::Done => Ok(true),
            OpResult::NotFound => Ok(false),
            other => Err(unexpected("relocate", other)),
        }
    }

    /// Puts the S3 folder marker `rel` (`files/<bucket>/<dirs>/`, its directory made by the
    /// caller) in the listing index, put at `modified_ms` (unix ms), and queues it for
    /// `notify` (the peers); durable on return.
    pub async fn put_folder(
        &self,
        rel: String,
        modified_ms: i64,
        notify: Vec<String>,
    ) -> Result<(), MetaError> {
        match self
            .submit(folder_op(rel, Some(modified_ms), notify, None))
            .await?
        {
            OpResult::Done => Ok(()),
            other => Err(unexpected("put folder", other)),
        }
    }

    /// Removes the S3 folder marker `rel` from the listing index, and queues its removal for
    /// `notify` (the peers) if there was one; whether there was one.
    pub async fn remove_folder(&self, rel: String, notify: Vec<String>) -> Result<bool, MetaError> {
        match self.submit(folder_op(rel, None, notify, None)).await? {
            OpResult::Done => Ok(true),
            OpResult::NotFound => Ok(false),
            other => Err(unexpected("remove folder", other)),
        }
    }

    /// A peer put (`Some` time, unix ms) or removed (None, at `time`) the folder marker
    /// `rel`: applied here unless the marker here was put or removed at `time` or later (the
    /// later change wins); not queued again. Whether it was applied (a removal of a marker
    /// not here is not, but its tombstone is kept).
    pub async fn folder_from_peer(
        &self,
        rel: String,
        put: bool,
        time: i64,
    ) -> Result<bool, MetaError> {
        let modified_ms = put.then_some(time);
        match self
            .submit(folder_op(rel, modified_ms, Vec::new(), Some(time)))
            .await?
        {
            OpResult::Done => Ok(true),
            OpResult::NotFound => Ok(false),
            other => Err(unexpected("folder from peer", other)),
        }
    }

    /// Queues for `peer` the folder marker `rel` as it is here: its put, or its removal (its
    /// tombstone), with its time (a repair). Whether anything is known of it.
    pub async fn requeue_folder(&self, rel: String, peer: String) -> Result<bool, MetaError> {
        let op = Op::RequeueFolder {
            id: path_key(&rel),
            rel,
            peer,
        };
        match self.submit(op).await? {
            OpResult::Done => Ok(true),
            OpResult::NotFound => Ok(false),
            other => Err(unexpected("requeue folder", other)),
        }
    }

    /// A peer acknowledged `sent`: its outbox entry goes unless it changed meanwhile.
    pub async fn delivered(
        &self,
        md5: String,
        peer: String,
        sent: OutboxEntry,
    ) -> Result<(), MetaError> {
        match self.submit(Op::Delivered { md5, peer, sent }).await? {
            OpResult::Done => Ok(()),
            other => Err(unexpected("delivered", other)),
        }
    }
}

fn folder_op(
    rel: String,
    modified_ms: Option<i64>,
    notify: Vec<String>,
    peer_time: Option<i64>,
) -> Op {
    Op::Folder {
        id: path_key(&rel),
        rel,
        modified_ms,
        notify,
        peer_time,
    }
}
