//! The group committer: ops are sent to the owner executor of their shard, queue up while a
//! commit runs, and form the next batch: one transaction per touched environment (an executor's
//! shards share one when the executor count did not change since the store was created; the
//! committing thread takes the first, a scoped thread each further one), one durability step
//! for all renames of the batch, then the commits.

use super::apply::{purge_peer, unlink_files};
use super::journal::{self, Deferred, Journal};
use super::place::Placed;
use super::*;
use crate::store::haystack;

/// One committer's state between batches.
struct Committer {
    owner: usize,
    /// None when journaling is off (or the journal could not be opened).
    journal: Option<Journal>,
    /// Journaled records not yet in LMDB (nor being drained), in sequence order.
    pending: Vec<Deferred>,
    /// When the oldest of `pending` was acknowledged.
    oldest: Option<std::time::Instant>,
    /// When the last op arrived.
    last_op: std::time::Instant,
    /// A drain running behind the committer.
    inflight: Option<glommio::Task<Drained>>,
    /// The journal's encoding buffer, kept between batches up to `SCRATCH_KEPT_BYTES`.
    scratch: Vec<u8>,
}

/// A journal buffer larger than this (a batch of big merged files) is not kept.
const SCRATCH_KEPT_BYTES: usize = 4 << 20;

/// What a drain behind the committer did.
struct Drained {
    /// The journal file it drained (emptied when it succeeded).
    file_index: usize,
    records: Vec<Deferred>,
    error: Option<MetaError>,
}

/// Per deferrable op: the entry journaled, or the existing record dedup answers with.
type Decided = Vec<Result<Deferred, FileInfo>>;

enum Next {
    Op(Option<Pending>),
    Drained(Drained),
    Timeout,
}

/// The next batch: `first` and whatever else is queued, up to `BATCH_OPS_MAX`; the ops
/// with their shards, and the replies in the same order.
fn take_batch(
    first: Pending,
    rx: &mut mpsc::Receiver<Pending>,
) -> (Vec<(usize, Op)>, Vec<oneshot::Sender<OpReply>>) {
    let mut batch = vec![first];
    while batch.len() < BATCH_OPS_MAX {
        match rx.try_recv() {
            Ok(p) => batch.push(p),
            _ => break,
        }
    }
    batch
        .into_iter()
        .map(|p| ((p.shard, p.op), p.reply))
        .unzip()
}

/// Sends each op its result (a submitter that went away is no error).
fn answer(replies: Vec<oneshot::Sender<OpReply>>, results: Vec<OpReply>) {
    assert_eq!(results.len(), replies.len(), "one result per op");
    for (reply, result) in replies.into_iter().zip(results) {
        let _ = reply.send(result);
    }
}

impl Meta {
    /// Submits an op to its shard's owner and waits for the commit.
    pub(super) async fn submit(&self, op: Op) -> Result<OpResult, MetaError> {
        let md5 = match &op {
            Op::Insert { info, .. } => info.md5.as_str(),
            Op::Announce { info } => info.md5.as_str(),
            Op::Delete { md5, .. }
            | Op::InboxDrop { md5, .. }
            | Op::Enqueue { md5, .. }
            | Op::Delivered { md5, .. }
            | Op::Relocate { md5, .. }
            | Op::Alias { md5, .. } => md5.as_str(),
            Op::Folder { id, .. } | Op::RequeueFolder { id, .. } => id.as_str(),
            Op::RepairDay { .. } | Op::PurgePeer { .. } | Op::Settle => "",
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

    pub(super) async fn submit_to(&self, shard: usize, op: Op) -> Result<OpResult, MetaError> {
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

    /// Drains every committer's journal into LMDB, so that scans (days, statistics, the
    /// container index, every record) see each acknowledged upload.
    /// A committer whose overlay is empty has nothing waiting nor draining (a drain takes its
    /// records out only once committed): it is not asked, so a scan of a quiet store costs no
    /// commit.
    pub async fn settle(&self) -> Result<(), MetaError> {
        if !self.journals() {
            return Ok(());
        }
        for owner in 0..self.senders.len().min(self.shards.len()) {
            if !self.overlays.is_empty(owner) {
                self.submit_to(owner, Op::Settle).await?;
            }
        }
        Ok(())
    }

    /// The commit loop of executor `owner`'s shards; runs on that executor until the channel
    /// closes. `committed` runs after every LMDB commit (it wakes the replication tasks of
    /// this executor). Merged local uploads are acknowledged from the journal and drained
    /// into LMDB later, in the background (`journal.rs`).
    pub async fn run_committer(
        self: Arc<Self>,
        owner: usize,
        mut rx: mpsc::Receiver<Pending>,
        committed: impl Fn(),
    ) {
        let mut c = Committer {
            owner,
            journal: None,
            pending: Vec::new(),
            oldest: None,
            last_op: std::time::Instant::now(),
            inflight: None,
            scratch: Vec::new(),
        };
        self.open_journal(&mut c).await;
        loop {
            let first = match self.next_event(&mut c, &mut rx).await {
                Next::Op(Some(p)) => p,
                Next::Op(None) => {
                    self.drain(&mut c, Vec::new(), &committed).await;
                    break;
                }
                Next::Drained(outcome) => {
                    c.inflight = None;
                    self.drained(&mut c, outcome, &committed);
                    continue;
                }
                Next::Timeout => {
                    self.drain_behind(&mut c, &committed).await;
                    continue;
                }
            };
            c.last_op = std::time::Instant::now();
            let (ops, replies) = take_batch(first, &mut rx);
            self.commit_ops(&mut c, ops, replies, &committed).await;
        }
    }

    /// Opens the committer's record journal when journaling is on; without it, merged
    /// uploads wait for LMDB commits.
    async fn open_journal(self: &Arc<Self>, c: &mut Committer) {
        if !self.journals() || c.owner >= self.envs.len() {
            return;
        }
        let (me, owner) = (self.clone(), c.owner);
        match glommio::executor()
            .spawn_blocking(move || Journal::open(&me, owner))
            .await
        {
            Ok(j) => c.journal = Some(j),
            Err(e) => tracing::error!(
                owner,
                error = %e,
                "cannot open the metadata journal; merged uploads wait for LMDB commits"
            ),
        }
    }

    /// Waits for whichever comes first: the next op, the end of the drain running behind,
    /// or the moment the journaled records are old (or the committer idle) enough to drain.
    async fn next_event(&self, c: &mut Committer, rx: &mut mpsc::Receiver<Pending>) -> Next {
        use futures_lite::StreamExt;
        #[cfg(test)]
        let held = self.hold_drains.load(std::sync::atomic::Ordering::Relaxed);
        #[cfg(not(test))]
        let held = false;
        let wait = match (c.oldest, &c.inflight) {
            (Some(oldest), None) if !held => Some(
                journal::DRAIN_IDLE
                    .saturating_sub(c.last_op.elapsed())
                    .min(journal::DRAIN_AGE.saturating_sub(oldest.elapsed())),
            ),
            _ => None,
        };
        let recv = async { Next::Op(rx.next().await) };
        let timer = async {
            match wait {
                Some(d) => glommio::timer::sleep(d).await,
                None => std::future::pending().await,
            }
            Next::Timeout
        };
        let drained = async {
            match c.inflight.as_mut() {
                Some(t) => Next::Drained(t.await),
                None => std::future::pending().await,
            }
        };
        futures_lite::future::or(recv, futures_lite::future::or(drained, timer)).await
    }

    /// Commits one batch and answers each op: acknowledged from the journal when every op
    /// may be deferred (and the journal has room), else through LMDB at once.
    async fn commit_ops(
        self: &Arc<Self>,
        c: &mut Committer,
        ops: Vec<(usize, Op)>,
        replies: Vec<oneshot::Sender<OpReply>>,
        committed: &impl Fn(),
    ) {
        let started = std::time::Instant::now();
        let n = ops.len();
        let deferrable = c.journal.is_some()
            && c.pending.len() < journal::PENDING_MAX
            && ops.iter().all(|(_, op)| Self::defers(op));
        let ops = if deferrable {
            match self.journal_batch(c, ops).await {
                Ok(results) => {
                    answer(replies, results);
                    if c.pending.len() >= journal::DRAIN_OPS && c.inflight.is_none() {
                        self.drain_behind(c, committed).await;
                    }
                    return;
                }
                Err(ops) => ops,
            }
        } else {
            ops
        };
        let results = self.drain(c, ops, committed).await;
        tracing::debug!(
            ops = n,
            took_us = started.elapsed().as_micros() as u64,
            "group commit"
        );
        answer(replies, results);
    }

    /// Acknowledges a batch of deferrable inserts from the journal; gives the ops back when
    /// one of them needs the synchronous path.
    async fn journal_batch(
        self: &Arc<Self>,
        c: &mut Committer,
        ops: Vec<(usize, Op)>,
    ) -> Result<Vec<OpReply>, Vec<(usize, Op)>> {
        let (me, k) = (self.clone(), c.owner);
        let j = c.journal.as_mut().expect("a journal");
        let (file, end, next_seq) = {
            let (file, end) = j.tail();
            (file, end, j.next_seq)
        };
        let mut scratch = std::mem::take(&mut c.scratch);
        let (ops, outcome, mut scratch) = glommio::executor()
            .spawn_blocking(move || {
                let outcome = me.journal_blocking(k, &file, end, next_seq, &ops, &mut scratch);
                (ops, outcome, scratch)
            })
            .await;
        if scratch.capacity() <= SCRATCH_KEPT_BYTES {
            scratch.clear();
            c.scratch = scratch;
        }
        let decided = match outcome {
            Ok(Some((decided, end, next_seq))) => {
                j.appended(end, next_seq);
                decided
            }
            Ok(None) => return Err(ops),
            Err(e) => {
                let f = Failed::of_meta(e, &self.root.join("data").join("meta"));
                return Ok(ops.iter().map(|_| Err(f.error())).collect());
            }
        };
        Ok(decided
            .into_iter()
            .map(|d| match d {
                Ok(entry) => {
                    let info = Arc::clone(&entry.info);
                    c.oldest.get_or_insert_with(std::time::Instant::now);
                    c.pending.push(entry);
                    Ok(OpResult::Inserted(info))
                }
                Err(existing) => Ok(OpResult::Existing(existing)),
            })
            .collect())
    }

    /// Blocking: decides, journals durably and publishes in the overlay; with the decisions,
    /// the journal file's new end and the next sequence number.
    fn journal_blocking(
        &self,
        k: usize,
        file: &std::fs::File,
        end: u64,
        next_seq: u64,
        ops: &[(usize, Op)],
        scratch: &mut Vec<u8>,
    ) -> Result<Option<(Decided, u64, u64)>, MetaError> {
        let Some(mut decided) = self.decide(k, ops, next_seq)? else {
            return Ok(None);
        };
        let mut placed = Vec::new();
        if !self.place_deferred(k, ops, &mut decided, &mut placed) {
            return Ok(None);
        }
        let fresh: Vec<(&Deferred, &[u8])> = decided
            .iter()
            .zip(ops)
            .filter_map(|(d, (_, op))| {
                let content = match op {
                    Op::Insert {
                        unsynced: Some(c), ..
                    } => &c[..],
                    _ => &[],
                };
                Some((d.as_ref().ok()?, content))
            })
            .collect();
        let Some(last) = fresh.last().map(|(d, _)| d.seq) else {
            return Ok(Some((decided, end, next_seq)));
        };
        let new_end = match journal::append_at(file, end, &fresh, scratch) {
            Ok(e) => e,
            Err(e) => {
                // Not journaled: the placed files go back (the intents say so after a crash).
                for p in placed.into_iter().rev() {
                    p.undo();
                }
                return Err(e.into());
            }
        };
        if !placed.is_empty() {
            super::intents::clear(&self.intent_files, &self.root, k);
        }
        self.overlays.add(k, fresh.iter().map(|(d, _)| *d));
        let next = last + 1;
        Ok(Some((decided, new_end, next)))
    }

    /// Blocking: moves the staged files of the batch's new plain uploads into place before
    /// their records are journaled, in the synchronous path's order: their intents durable
    /// (`intents.rs`), the renames, the directories fsynced; each record then names the file
    /// as placed. False when a file could not be placed or made durable: everything moved is
    /// put back and the batch takes the synchronous path, which answers each op.
    fn place_deferred(
        &self,
        k: usize,
        ops: &[(usize, Op)],
        decided: &mut Decided,
        placed: &mut Vec<Placed>,
    ) -> bool {
        let staged: Vec<(usize, &Staged)> = ops
            .iter()
            .enumerate()
            .filter_map(|(i, (_, op))| match (op, &decided[i]) {
                (
                    Op::Insert {
                        staged: Some(st), ..
                    },
                    Ok(_),
                ) => Some((i, st)),
                _ => None,
            })
            .collect();
        if staged.is_empty() {
            return true;
        }
        let intents: Vec<super::intents::Intent> = staged
            .iter()
            .map(|(_, st)| super::intents::Intent::place(st))
            .collect();
        if super::intents::write(&self.intent_files, &self.root, k, &intents).is_err() {
            return false;
        }
        let mut dirs = BTreeSet::new();
        let mut place = || -> Result<(), MetaError> {
            for (i, st) in &staged {
                let Ok(d) = &mut decided[*i] else {
                    unreachable!("only new records are placed")
                };
                // A replacing upload whose name is taken waits for the synchronous path: the
                // intents can take back a move after a crash, not a swap.
                let naming = match super::place::Naming::of(st) {
                    super::place::Naming::Swap => super::place::Naming::Exact,
                    n => n,
                };
                let info = Arc::get_mut(&mut d.info).expect("not shared before it is journaled");
                super::place::place_staged(&self.root, st, naming, info, &mut dirs, placed)?;
            }
            crate::failpoint::hit("commit.placed");
            self.make_durable(&dirs)?;
            crate::failpoint::hit("commit.durable");
            Ok(())
        };
        if place().is_ok() {
            return true;
        }
        for p in placed.drain(..).rev() {
            p.undo();
        }
        super::intents::clear(&self.intent_files, &self.root, k);
        false
    }

    /// Starts draining the waiting records into LMDB behind the committer (appends go on in
    /// the journal's other file meanwhile); drains in line when that file is not empty yet.
    async fn drain_behind(self: &Arc<Self>, c: &mut Committer, committed: &impl Fn()) {
        if c.pending.is_empty() || c.inflight.is_some() {
            return;
        }
        let Some((file_index, file)) = c.journal.as_mut().and_then(Journal::rotate) else {
            self.drain(c, Vec::new(), committed).await;
            return;
        };
        let drained = std::mem::take(&mut c.pending);
        c.oldest = None;
        let (me, owner) = (self.clone(), c.owner);
        let task = glommio::spawn_local(async move {
            glommio::executor()
                .spawn_blocking(move || {
                    let applied = drained.last().map(|d| (owner, d.seq));
                    let results = me.commit_batch(me.drain_ops(&drained), applied);
                    let error = results.into_iter().find_map(Result::err);
                    if error.is_none() {
                        me.overlays.remove(owner, &drained);
                        journal::empty(&file);
                    }
                    Drained {
                        file_index,
                        records: drained,
                        error,
                    }
                })
                .await
        });
        c.inflight = Some(task);
    }

    /// The inserts of drained records, ordered by shard and md5: their record, day and
    /// container-index keys then go into each tree in key order, so consecutive inserts
    /// descend through the same (cached, already dirty) pages. The order is free: drained
    /// records have distinct md5s and path keys, and their counters add up the same.
    fn drain_ops(&self, drained: &[Deferred]) -> Vec<(usize, Op)> {
        let mut ops: Vec<(usize, &Deferred)> = drained
            .iter()
            .map(|d| (shard_of(&d.info.md5, self.shards.len()), d))
            .collect();
        ops.sort_unstable_by(|a, b| (a.0, &a.1.info.md5).cmp(&(b.0, &b.1.info.md5)));
        ops.into_iter().map(|(s, d)| (s, d.op())).collect()
    }

    /// A drain behind the committer finished.
    fn drained(&self, c: &mut Committer, d: Drained, committed: &impl Fn()) {
        match d.error {
            None => {
                if let Some(j) = c.journal.as_mut() {
                    j.emptied(d.file_index);
                }
                committed();
            }
            Some(e) => {
                tracing::error!(
                    records = d.records.len(),
                    error = %e,
                    "journaled uploads could not be committed to LMDB yet (served from memory, kept in the journal)"
                );
                let mut records = d.records;
                records.append(&mut c.pending);
                c.pending = records;
                c.oldest = Some(std::time::Instant::now());
            }
        }
    }

    /// Commits `ops` (possibly none) in one batch with every journaled record still waiting
    /// (first, in the same transaction, with the journal's applied number), after a drain
    /// running behind has finished; then the drained records leave the overlay and the
    /// journal is emptied. Results are `ops`' only.
    async fn drain(
        self: &Arc<Self>,
        c: &mut Committer,
        ops: Vec<(usize, Op)>,
        committed: &impl Fn(),
    ) -> Vec<OpReply> {
        if let Some(t) = c.inflight.take() {
            let d = t.await;
            self.drained(c, d, committed);
        }
        if ops.is_empty() && c.pending.is_empty() {
            return Vec::new();
        }
        let drained = std::mem::take(&mut c.pending);
        let skip = drained.len();
        let applied = drained.last().map(|d| (c.owner, d.seq));
        let all: Vec<(usize, Op)> = self.drain_ops(&drained).into_iter().chain(ops).collect();
        let me = self.clone();
        let files = c.journal.as_ref().map(Journal::files);
        let mut results = glommio::executor()
            .spawn_blocking(move || {
                let results = me.commit_batch(all, applied);
                if skip > 0 && results[..skip].iter().all(|r| r.is_ok()) {
                    for f in files.iter().flatten() {
                        journal::empty(f);
                    }
                }
                results
            })
            .await;
        let op_results = results.split_off(skip);
        match results.into_iter().find_map(Result::err) {
            None => {
                if skip > 0 {
                    self.overlays.remove(c.owner, &drained);
                    if let Some(j) = c.journal.as_mut() {
                        j.emptied(0);
                        j.emptied(1);
                    }
                }
                c.oldest = None;
            }
            Some(e) => {
                tracing::error!(
                    records = skip,
                    error = %e,
                    "journaled uploads could not be committed to LMDB yet (served from memory, kept in the journal)"
                );
                c.pending = drained;
                c.oldest = Some(std::time::Instant::now());
            }
        }
        committed();
        op_results
    }

    /// Commits a batch: per touched shard one thread applies its ops in a transaction (dedup
    /// checks, renames into place); then one durability step for all renames and contents;
    /// then every shard commits. Blocking. Results are in op order.
    /// `journal_seq` is the journal number to record with the batch (committer, sequence).
    pub(super) fn commit_batch(
        &self,
        ops: Vec<(usize, Op)>,
        journal_seq: Option<(usize, u64)>,
    ) -> Vec<OpReply> {
        let n = ops.len();
        // The batch's file effects are journaled (durably) before any file moves.
        let committer = ops
            .first()
            .map_or(0, |(shard, _)| shard % self.senders.len());
        let intents = self.intents_of(&ops);
        let journaled = !intents.is_empty();
        let containers = self.unsynced_containers(&ops);
        if journaled {
            if let Err(e) =
                super::intents::write(&self.intent_files, &self.root, committer, &intents)
            {
                let f = Failed::of_io(&e);
                return (0..n).map(|_| Err(f.error())).collect();
            }
        }
        let results = self.commit_groups(self.group_by_env(ops), journal_seq, &containers, n);
        crate::failpoint::hit("commit.committed");
        if journaled {
            super::intents::clear(&self.intent_files, &self.root, committer);
        }
        results
            .into_iter()
            .map(|r| r.expect("every op answered"))
            .collect()
    }

    /// Applies and commits each environment's group, one thread per environment (the
    /// calling thread takes the first), with one durability step between all applies and any
    /// commit; the results in batch order.
    fn commit_groups(
        &self,
        by_env: BTreeMap<usize, Vec<(usize, usize, Op)>>,
        journal_seq: Option<(usize, u64)>,
        containers: &BTreeSet<PathBuf>,
        n: usize,
    ) -> Vec<Option<OpReply>> {
        let groups = by_env.len();
        // One party per environment: the calling thread applies and commits the first group
        // itself (a batch in one environment starts no thread) and, between its apply and
        // commit, runs the batch's durability step for all of them.
        let applied = std::sync::Barrier::new(groups);
        let decided = std::sync::Barrier::new(groups);
        let dirs: Mutex<BTreeSet<PathBuf>> = Mutex::new(BTreeSet::new());
        let durable: Mutex<Option<Failed>> = Mutex::new(None);
        let mut results: Vec<Option<OpReply>> = (0..n).map(|_| None).collect();
        let mut by_env = by_env.into_iter();
        let (first_env, first_ops) = by_env.next().expect("a batch has ops");
        std::thread::scope(|scope| {
            let handles: Vec<_> = by_env
                .map(|(env, ops)| {
                    let (applied, decided, dirs, durable) = (&applied, &decided, &dirs, &durable);
                    let seq = journal_seq.filter(|(k, _)| *k == env).map(|(_, s)| s);
                    scope.spawn(move || {
                        self.commit_group(env, ops, seq, dirs, || {
                            applied.wait();
                            decided.wait();
                            durable.lock().expect("durable lock").clone()
                        })
                    })
                })
                .collect();
            let t0 = std::time::Instant::now();
            let first_seq = journal_seq.filter(|(k, _)| *k == first_env).map(|(_, s)| s);
            let inline = self.commit_group(first_env, first_ops, first_seq, &dirs, || {
                applied.wait();
                crate::failpoint::hit("commit.placed");
                let t1 = std::time::Instant::now();
                if let Err(e) = self.durability_step(containers, &dirs) {
                    *durable.lock().expect("durable lock") = Some(Failed::of_io(&e));
                }
                crate::failpoint::hit("commit.durable");
                tracing::debug!(
                    groups,
                    apply_us = (t1 - t0).as_micros() as u64,
                    durable_us = t1.elapsed().as_micros() as u64,
                    "batch phases"
                );
                decided.wait();
                durable.lock().expect("durable lock").clone()
            });
            for (i, r) in inline {
                results[i] = Some(r);
            }
            for h in handles {
                for (i, r) in h.join().expect("environment commit thread") {
                    results[i] = Some(r);
                }
            }
        });
        results
    }

    /// A batch's ops by environment, each as `(op index, shard, op)` in batch order.
    fn group_by_env(&self, ops: Vec<(usize, Op)>) -> BTreeMap<usize, Vec<(usize, usize, Op)>> {
        let mut by_env: BTreeMap<usize, Vec<(usize, usize, Op)>> = BTreeMap::new();
        for (i, (shard, op)) in ops.into_iter().enumerate() {
            let env = self.shards[shard].env_index;
            by_env.entry(env).or_default().push((i, shard, op));
        }
        by_env
    }

    /// The batch's one durability step, between every group's apply and any commit: the
    /// containers that took merged files are synced, then the directories that gained or lost
    /// names (collected from every group by now).
    fn durability_step(
        &self,
        containers: &BTreeSet<PathBuf>,
        dirs: &Mutex<BTreeSet<PathBuf>>,
    ) -> std::io::Result<()> {
        let set = std::mem::take(&mut *dirs.lock().expect("dirs lock"));
        containers.iter().try_for_each(|c| haystack::sync(c))?;
        self.make_durable(&set)
    }

    /// One environment's part of a batch: `(op index, shard, op)`, applied in one transaction.
    /// `barrier` is called between applying and committing; it returns an error text when the
    /// durability step failed (then nothing commits).
    pub(super) fn commit_group(
        &self,
        env: usize,
        ops: Vec<(usize, usize, Op)>,
        applied: Option<u64>,
        dirs: &Mutex<BTreeSet<PathBuf>>,
        barrier: impl FnOnce() -> Option<Failed>,
    ) -> Vec<(usize, OpReply)> {
        let mut txn = match self.envs[env].begin_rw_txn() {
            Ok(t) => t,
            Err(e) => {
                barrier();
                let msg = e.to_string();
                return ops
                    .into_iter()
                    .map(|(i, _, _)| (i, Err(MetaError::Corrupt(msg.clone()))))
                    .collect();
            }
        };
        let mut fx = Effects::default();
        let out: Vec<(usize, OpReply)> = ops
            .into_iter()
            .map(|(i, shard, op)| {
                let s = &self.shards[shard];
                assert_eq!(s.env_index, env, "a group's shards share its environment");
                (i, self.apply_op(s, &mut txn, op, &mut fx))
            })
            .collect();
        dirs.lock()
            .expect("dirs lock")
            .extend(std::mem::take(&mut fx.dirs));
        let recorded = applied.map(|seq| self.put_applied(env, &mut txn, seq));
        let failure = match barrier() {
            Some(e) => Some(e),
            None if matches!(recorded, Some(Err(_))) => Some(Failed {
                msg: "cannot record the journal's applied number".into(),
                full: false,
            }),
            None => self.commit_applied(txn, &mut fx),
        };
        let records_gone = fx.records_gone;
        match failure {
            Some(f) => {
                fx.undo();
                out.into_iter().map(|(i, _)| (i, Err(f.error()))).collect()
            }
            None => {
                // And again once the commit is visible: a GET that read the epoch after the
                // first move but the record before the commit may have cached the file
                // under the new epoch (a merged file, whose delete unlinks nothing, stayed
                // served from that cache).
                if fx.committed() || records_gone {
                    self.files_changed();
                }
                out
            }
        }
    }

    /// Commits a group's transaction once the batch is durable; the failure, if any.
    /// Deleted files leave their names before the commit is visible, and the file caches are
    /// told of every deleted record: once a reader sees a record gone, no GET serves its file.
    fn commit_applied(&self, txn: lmdb::RwTransaction<'_>, fx: &mut Effects) -> Option<Failed> {
        if let Err(e) = fx.set_aside() {
            return Some(Failed::of_io(&e));
        }
        if fx.records_gone {
            self.files_changed();
        }
        if !fx.aside.is_empty() {
            crate::failpoint::hit("commit.set_aside");
        }
        txn.commit()
            .err()
            .map(|e| Failed::of_commit(e, &self.root.join("data").join("meta")))
    }

    /// Applies one op inside the shard's transaction, collecting its file effects.
    fn apply_op(
        &self,
        s: &Shard,
        txn: &mut lmdb::RwTransaction<'_>,
        op: Op,
        fx: &mut Effects,
    ) -> OpReply {
        match op {
            Op::Insert {
                info,
                staged,
                dedup,
                origin,
                unsynced: _,
                expect,
            } => {
                let put = Put {
                    info,
                    staged,
                    dedup,
                    origin,
                    expect,
                };
                self.apply_insert(s, txn, put, &mut fx.dirs, &mut fx.placed)
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
                let r = self.apply_delete(s, txn, d, &mut fx.deleted);
                fx.records_gone |= matches!(r, Ok(OpResult::Deleted(_)));
                r
            }
            Op::RepairDay { date } => self.apply_repair_day(s, txn, &date),
            Op::Announce { info } => self.apply_announce(s, txn, *info),
            Op::InboxDrop { md5, arrived } => super::apply::drop_inboxed(s, txn, &md5, arrived),
            Op::Enqueue { md5, peers, kind } => self.apply_enqueue(s, txn, &md5, &peers, kind),
            Op::Delivered { md5, peer, sent } => self.apply_delivered(s, txn, &md5, &peer, sent),
            Op::PurgePeer { peer } => purge_peer(s, txn, &peer),
            Op::Alias { md5, key } => super::paths::alias_key(self, s, txn, &md5, &key),
            Op::Relocate { md5, from, to } => super::apply::relocate(s, txn, &md5, from, to),
            Op::Folder {
                id,
                rel,
                modified_ms,
                notify,
                peer_time,
            } => {
                let time = modified_ms
                    .or(peer_time)
                    .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
                let put = modified_ms.is_some();
                let r = super::listing::apply_folder(s, txn, &rel, put, time, peer_time.is_some())?;
                if r == OpResult::Done {
                    let kind = match put {
                        true => SyncKind::Put,
                        false => SyncKind::Delete,
                    };
                    super::apply::queue_folder(s, txn, &id, &notify, kind, rel, time)?;
                }
                Ok(r)
            }
            Op::RequeueFolder { id, rel, peer } => {
                let Some((put, time)) = super::listing::folder_state(s, txn, &rel)? else {
                    return Ok(OpResult::NotFound);
                };
                let kind = match put {
                    true => SyncKind::Put,
                    false => SyncKind::Delete,
                };
                super::apply::queue_folder(s, txn, &id, &[peer], kind, rel, time)?;
                Ok(OpResult::Done)
            }
            Op::Settle => Ok(OpResult::Done),
        }
    }

    /// The containers of merged files in `ops` whose appends were not fdatasynced.
    fn unsynced_containers(&self, ops: &[(usize, Op)]) -> BTreeSet<PathBuf> {
        ops.iter()
            .filter_map(|(_, op)| match op {
                Op::Insert {
                    info,
                    unsynced: Some(_),
                    ..
                } => haystack::container_of(info.stored_name())
                    .map(|n| self.root.join(&info.path).join(n.to_string())),
                _ => None,
            })
            .collect()
    }

    /// Makes the batch's renames durable before the metadata commit: one fsync per touched
    /// directory for the whole batch (file contents were fdatasynced by their writers).
    pub(super) fn make_durable(&self, dirs: &BTreeSet<PathBuf>) -> std::io::Result<()> {
        #[cfg(test)]
        if self.root.join("fail-durable").exists() {
            return Err(std::io::Error::other("failpoint: fail-durable"));
        }
        for d in dirs {
            std::fs::File::open(d)?.sync_all()?;
            #[cfg(test)]
            tests::SYNCED_DIRS.lock().expect("recorder").push(d.clone());
        }
        Ok(())
    }
}

/// What a shard's ops did to files, settled once the transaction's fate is known.
#[derive(Default)]
struct Effects {
    /// Directories whose entries changed (fsynced by the batch before any commit).
    dirs: BTreeSet<PathBuf>,
    /// Files moved into place, in order.
    placed: Vec<Placed>,
    /// Files of deleted records, set aside just before the commit.
    deleted: Vec<PathBuf>,
    /// Deleted files set aside: (name, hidden name beside it), unlinked once committed.
    aside: Vec<(PathBuf, PathBuf)>,
    /// Deleted files whose hidden name was taken: unlinked once committed, from their name.
    late: Vec<PathBuf>,
    /// A delete took a record (plain or merged): the file caches are told before the commit.
    records_gone: bool,
}

impl Effects {
    /// Moves the deleted files to their hidden names (`intents::aside_of`); one already gone
    /// is skipped. A hidden name that is taken (a client may store any name) is never
    /// replaced: that file is unlinked after the commit instead, as it stands. On an error
    /// the ones moved are in `aside` (for `undo`).
    fn set_aside(&mut self) -> std::io::Result<()> {
        for from in std::mem::take(&mut self.deleted) {
            let to = super::intents::aside_of(&from);
            match super::place::rename_noreplace(&from, &to) {
                Ok(()) => self.aside.push((from, to)),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => self.late.push(from),
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// Nothing of the shard committed: undo its renames, so nothing unindexed stays, a
    /// replaced file is back, a deleted file is back under its name, and the staged content
    /// is back where its owner keeps it (a tus upload's data survives a failed completion).
    fn undo(self) {
        for (name, aside) in self.aside {
            if let Err(e) = super::place::rename_noreplace(&aside, &name) {
                // The intents' recovery at the next start settles it (back under its
                // name while its record is there and the name free, else unlinked).
                tracing::error!(file = %name.display(), error = %e, "cannot restore a file whose delete failed");
            }
        }
        for p in self.placed.into_iter().rev() {
            p.undo();
        }
    }

    /// Committed: deleted files and the old content of replaced ones go. True when a file
    /// went.
    fn committed(self) -> bool {
        let mut gone: Vec<PathBuf> = self.aside.into_iter().map(|(_, a)| a).collect();
        gone.extend(self.late);
        gone.extend(self.placed.into_iter().filter_map(|p| p.displaced()));
        if gone.is_empty() {
            return false;
        }
        crate::failpoint::hit("commit.before_unlink");
        unlink_files(gone);
        true
    }
}

#[cfg(test)]
pub(super) mod tests {
    /// Every directory the committer fsynced (the storage tests read it).
    pub static SYNCED_DIRS: std::sync::Mutex<Vec<std::path::PathBuf>> =
        std::sync::Mutex::new(Vec::new());
}

/// Why a batch did not commit: its text, and whether the disk (or quota, or map) was full.
#[derive(Debug, Clone)]
pub(super) struct Failed {
    msg: String,
    full: bool,
}

/// Below this many free bytes, an LMDB write error is taken for a full disk: LMDB reports a
/// short write (the disk filled mid-write) as EIO.
const NEARLY_FULL_BYTES: u64 = 1 << 20;

fn io_full(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

impl Failed {
    fn of_io(e: &std::io::Error) -> Failed {
        Failed {
            msg: e.to_string(),
            full: io_full(e),
        }
    }

    fn of_commit(e: lmdb::Error, meta_dir: &Path) -> Failed {
        let full = match e {
            lmdb::Error::MapFull => true,
            lmdb::Error::Other(code) if code == libc::ENOSPC || code == libc::EDQUOT => true,
            lmdb::Error::Other(code) if code == libc::EIO => {
                crate::sys::free_bytes(meta_dir).is_some_and(|b| b < NEARLY_FULL_BYTES)
            }
            _ => false,
        };
        Failed {
            msg: e.to_string(),
            full,
        }
    }

    fn of_meta(e: MetaError, meta_dir: &Path) -> Failed {
        match e {
            MetaError::Io(e) => Failed::of_io(&e),
            MetaError::Lmdb(e) => Failed::of_commit(e, meta_dir),
            e => Failed {
                msg: e.to_string(),
                full: matches!(e, MetaError::Full(_)),
            },
        }
    }

    fn error(&self) -> MetaError {
        if self.full {
            MetaError::Full(self.msg.clone())
        } else {
            MetaError::Corrupt(format!("commit failed: {}", self.msg))
        }
    }
}
