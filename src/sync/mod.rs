//! Replication between peers (docs/PROTOCOL.md §8), run by every executor for the shards it owns.
//!
//! * **Push**: every committed upload or delete left an entry per peer in its shard's
//!   durable outbox (same LMDB transaction). One task per (executor, peer) drains it with
//!   bounded concurrency: a put is go-fastdfs' `check_file_exist` + `syncfile_info`
//!   announcement, a delete is `delete?inner=1`. An entry leaves the outbox only when the
//!   peer acknowledged it; failures back off exponentially (capped) and retry forever, so
//!   nothing is lost across restarts or outages of either side.
//! * **Pull**: an announcement from a peer (`syncfile_info`) is stored in the inbox before it
//!   is acknowledged; one task per executor fetches inbox files from the announcing peer,
//!   streamed into a hashed, fdatasynced temp file, verifies size and md5, and commits it
//!   (tombstones refuse files deleted here).
//! * **Repair** (`repair`): per-day md5 set comparison with each peer.
//! * **Failures** (`failure`): a failed fetch is a `FetchError` and `Retries::after` alone
//!   decides drop or retry; a failed delivery is a `PushError`, the peer's or this node's.
//!
//! Data flows one way: handlers and the committer wake these tasks; they talk to peers through
//! `client::peer::Pool` and write through `Meta::submit`.

pub mod batch;
mod failure;
mod merged;
pub mod read_through;
pub mod repair;

use crate::json::FileInfo;
use crate::store::checkpoints::Broken;
use crate::store::meta::{Inboxed, Inserted, MetaError, OutboxEntry, SyncKind};
use crate::store::{meta::Origin, meta::Staged, names, write};
use crate::worker::Worker;
use failure::{FetchError, Next, PushError, RetryMap};
use std::cell::RefCell;
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Outbox entries one push task takes per shard and round.
const PUSH_PAGE: usize = 64;
/// Messages in flight to one peer from one executor.
const PUSH_IN_FLIGHT: usize = 32;
/// Inbox entries one pull task takes per shard and round.
const PULL_PAGE: usize = 32;
/// Fetches in flight per executor.
const PULL_IN_FLIGHT: usize = 16;
/// First and largest delay after a failed round.
const RETRY_DELAY_MIN: Duration = Duration::from_millis(200);
const RETRY_DELAY_MAX: Duration = Duration::from_secs(10);
/// How often a push task backing off from an unreachable peer checks whether it is back.
const PROBE_EVERY: Duration = Duration::from_millis(500);
/// How often idle tasks look again without a wake-up (new peers, retries).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Timeout of one announcement or delete call.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often, and with which timeout, peers' `status` is checked.
const HEALTH_CHECK_TIMEOUT: Duration = Duration::from_secs(5);
/// Announced files up to this size are fetched inside the announcement call.
const INLINE_FETCH_BYTES_MAX: i64 = 256 * 1024;
/// Time allowed for such an inline fetch (then it is queued instead).
const INLINE_FETCH_TIMEOUT: Duration = Duration::from_secs(5);
/// Lengths of an md5 a peer may name (announcing a file, asking for its checkpoints): a
/// digest's hex (md5 32, sha1 40) with room to spare, far below what the metadata store can
/// key (LMDB: 511 bytes with the peer's URL).
pub const ANNOUNCED_MD5_CHARS: std::ops::RangeInclusive<usize> = 32..=64;
/// Sources tried per announced file besides the configured peers it names (`sources`).
const OTHER_SOURCES_MAX: usize = 3;
/// A source that sends nothing for this long (its answer's head, or the next bytes of its
/// body) is given up for this attempt, whatever is left of the fetch's budget: the budget
/// grows with the announced size (a second per MiB), which a peer chooses, so a silent
/// source could otherwise hold a fetch slot for days. The attempt fails as a transfer
/// failure: retried, from the next source first.
const FETCH_STALL_MAX: Duration = Duration::from_secs(30);
/// The longest a fetch waits for a source's md5 checkpoints before it goes without them.
const CHECKPOINTS_WAIT: Duration = Duration::from_secs(5);
/// Files remembered to have failed their checkpoints (`SyncState::unchained`).
const UNCHAINED_MAX: usize = 1024;
/// Header marking our own read-through requests (a peer never reads through again).
pub const READ_THROUGH_HEADER: &str = "X-Fastdfs-Read-Through";

/// Pages through a per-shard queue (a peer's outbox, the inbox) over the shards this executor
/// owns: each call reads the next page of every shard after the last key seen there; when all
/// are exhausted it answers None and the next call starts a new pass from the beginning.
struct ShardPager {
    shards: Vec<usize>,
    after: Vec<String>,
}

impl ShardPager {
    fn new(w: &Worker) -> ShardPager {
        let shards: Vec<usize> = (0..w.meta().shard_count())
            .filter(|s| s % w.shared.workers == w.id)
            .collect();
        let after = vec![String::new(); shards.len()];
        ShardPager { shards, after }
    }

    /// True before the first page of a pass.
    fn at_start(&self) -> bool {
        self.after.iter().all(String::is_empty)
    }

    fn next<T>(
        &mut self,
        what: &str,
        mut read: impl FnMut(usize, &str) -> Result<Vec<T>, crate::store::meta::MetaError>,
        key: impl Fn(&T) -> &str,
    ) -> Option<Vec<T>> {
        let mut out = Vec::new();
        for (i, &shard) in self.shards.iter().enumerate() {
            match read(shard, &self.after[i]) {
                Ok(page) => {
                    if let Some(last) = page.last() {
                        self.after[i] = key(last).to_string();
                    }
                    out.extend(page);
                }
                Err(e) => tracing::error!(cause = %e, "reading the {what} failed"),
            }
        }
        if out.is_empty() {
            self.after.iter_mut().for_each(String::clear);
            return None;
        }
        Some(out)
    }
}

/// Starts this executor's replication: a supervisor that keeps one push task per configured
/// peer, the pull task, and (executor 0) the repair schedule.
pub fn start(w: Rc<Worker>) {
    let shared = w.shared.clone();
    shared.spawn_duty("replication supervisor", supervise(w.clone()));
    shared.spawn_duty("replication pull", pull_loop(w.clone()));
    if w.id == 0 {
        shared.spawn_duty("repair schedule", repair::schedule(w));
    }
}

async fn supervise(w: Rc<Worker>) {
    let mut next_check = Instant::now();
    let mut known: Option<Vec<String>> = None;
    while !w.shutting_down() {
        let peers = w.config().peers.clone();
        for peer in peers.iter() {
            if w.sync.pushers.borrow_mut().insert(peer.clone()) {
                w.shared
                    .spawn_duty("replication push", push_loop(w.clone(), peer.clone()));
            }
        }
        if known.is_none() {
            // The configured peers are kept in the pool whatever other servers it meets.
            w.sync.pool.keep_only(&peers);
        }
        if let Some(before) = known.replace(peers.clone()) {
            if before != peers {
                // This executor's connections to removed peers close now.
                w.sync.pool.keep_only(&peers);
                w.sync
                    .unbatched
                    .borrow_mut()
                    .retain(|p, _| peers.contains(p));
                w.shared.peer_health.keep_only(&peers);
            }
            peers_changed(&w, &before, &peers);
        }
        // Health check (docs/PROTOCOL.md §8), from executor 0 only: keeps `fastdfs_peer_up` true
        // to the minute even when nothing is replicated.
        if w.id == 0 && Instant::now() >= next_check {
            let period = Duration::from_secs(w.config().status_check_interval.max(1));
            next_check = Instant::now() + period;
            for peer in w.config().peers.clone() {
                let me = w.clone();
                glommio::spawn_local(async move { check_health(&me, &peer).await }).detach();
            }
        }
        glommio::timer::sleep(IDLE_POLL).await;
    }
}

/// After a reload: a new peer gets this node's history by a repair with it (the outbox holds
/// only changes made while it was configured); a removed peer's queue is dropped (executor 0
/// does both once, for all shards).
fn peers_changed(w: &Rc<Worker>, before: &[String], now: &[String]) {
    if w.id != 0 {
        return;
    }
    for peer in now.iter().filter(|p| !before.contains(p)) {
        let (me, peer) = (w.clone(), peer.clone());
        glommio::spawn_local(async move {
            tracing::info!(peer, "new peer: reconciling with it");
            repair::with_peer_logged(&me, &peer).await;
        })
        .detach();
    }
    for peer in before.iter().filter(|p| !now.contains(p)) {
        let (me, peer) = (w.clone(), peer.clone());
        glommio::spawn_local(async move {
            match me.meta().purge_peer(&peer).await {
                Ok(n) => tracing::info!(peer, dropped = n, "peer removed: its queue was dropped"),
                Err(e) => {
                    tracing::error!(peer, cause = %e, "dropping a removed peer's queue failed")
                }
            }
        })
        .detach();
    }
}

/// What a peer's `G/status` says of who answers there.
enum Identity {
    /// Another process, up (`status` ok, not this node's id).
    Other,
    /// This node itself under another name (its own `X-Fastdfs-Node` came back).
    Myself,
    /// No answer, or not an ok one: down or unhealthy, identity not known.
    Unknown,
}

async fn ask_status(w: &Worker, peer: &str) -> Identity {
    let path = format!("{}/status", w.config().prefix());
    match w.sync.pool.get(peer, &path, HEALTH_CHECK_TIMEOUT).await {
        Ok(r) if r.header(crate::worker::NODE_ID_HEADER) == Some(&w.shared.node_id) => {
            if w.shared.found_self_as_peer(peer) {
                tracing::warn!(
                    peer,
                    "peer is this node itself under another name: left out of the peers \
                     (remove it from peers in cfg.json)"
                );
            }
            Identity::Myself
        }
        Ok(r)
            if r.status == 200
                && serde_json::from_slice::<serde_json::Value>(&r.body)
                    .is_ok_and(|v| v["status"] == "ok") =>
        {
            w.shared.peer_health.set_other(peer);
            Identity::Other
        }
        _ => Identity::Unknown,
    }
}

/// Whether `peer` is another process, asking its `G/status` once when that is not known yet.
/// Nothing is pushed to or reconciled with a peer before: a peer URL that names this node
/// (a second address, `localhost`) must be found out before the first push, not after.
pub(crate) async fn known_other(w: &Worker, peer: &str) -> bool {
    w.shared.peer_health.is_other(peer) || matches!(ask_status(w, peer).await, Identity::Other)
}

async fn check_health(w: &Worker, peer: &str) {
    let up = match ask_status(w, peer).await {
        Identity::Myself => return,
        Identity::Other => true,
        Identity::Unknown => false,
    };
    if w.shared.peer_health.get(peer) != Some(up) {
        if up {
            tracing::info!(peer, "peer is up");
        } else {
            tracing::warn!(peer, "peer is down or unhealthy (status check failed)");
        }
    }
    w.shared.peer_health.set(peer, up);
}

/// Drains this executor's outbox entries for `peer` until the peer leaves the config.
async fn push_loop(w: Rc<Worker>, peer: String) {
    let mut pager = ShardPager::new(&w);
    let mut delay = Duration::ZERO;
    while !w.shutting_down() && w.config().peers.contains(&peer) {
        let seen = w.sync.wake.generation();
        let started = pager.at_start();
        let read = |shard: usize, after: &str| w.meta().outbox_page(shard, &peer, after, PUSH_PAGE);
        let Some(batch) = pager.next("outbox", read, |(md5, _)| md5.as_str()) else {
            // End of a pass: start over at once unless failures are backing off.
            if !started && delay.is_zero() {
                continue;
            }
            w.sync.wake.wait(seen, IDLE_POLL).await;
            continue;
        };
        if !known_other(&w, &peer).await {
            // Down, unhealthy, or this node itself (then it has left the peers by now).
            delay = (delay * 2).clamp(RETRY_DELAY_MIN, RETRY_DELAY_MAX);
            back_off(&w.sync.pool, &peer, delay).await;
            continue;
        }
        let mut failed = 0;
        let mut peer_failed = false;
        let mut last_error = String::new();
        // Puts go in batches to peers that take them; the rest one by one (go-fastdfs).
        let batched = if batch::batches_to(&w, &peer) {
            batch::push(&w, &peer, &batch).await
        } else {
            vec![None; batch.len()]
        };
        for r in batched.iter().flatten() {
            if let Err(e) = r {
                failed += 1;
                peer_failed |= matches!(e, PushError::Peer(_));
                last_error = e.to_string();
            }
        }
        let rest: Vec<_> = batch
            .iter()
            .zip(&batched)
            .filter(|(_, r)| r.is_none())
            .map(|(entry, _)| entry)
            .collect();
        // Every batched entry failed: the peer is down, the rest waits for the next round.
        let peer_down = failed > 0 && failed == batched.iter().flatten().count();
        for chunk in rest.chunks(PUSH_IN_FLIGHT).take_while(|_| !peer_down) {
            let calls = chunk
                .iter()
                .map(|(md5, e)| deliver(w.clone(), peer.clone(), md5.clone(), e.clone()));
            let results = futures_join_all(calls).await;
            for e in results.iter().filter_map(|r| r.as_ref().err()) {
                peer_failed |= matches!(e, PushError::Peer(_));
                last_error = e.to_string();
            }
            let chunk_failed = results.iter().filter(|r| r.is_err()).count();
            failed += chunk_failed;
            if chunk_failed == chunk.len() {
                break; // the peer is down: do not try the rest of the page now
            }
        }
        if failed == 0 {
            delay = Duration::ZERO;
            w.shared.peer_health.set(&peer, true);
        } else {
            if delay.is_zero() {
                tracing::warn!(peer, failed, cause = %last_error, "sync to peer failing; retrying with backoff");
            }
            // This node's own failures (its metadata) say nothing of the peer.
            if peer_failed {
                w.shared.peer_health.set(&peer, false);
            }
            delay = (delay * 2).clamp(RETRY_DELAY_MIN, RETRY_DELAY_MAX);
            back_off(&w.sync.pool, &peer, delay).await;
        }
    }
    w.sync.pushers.borrow_mut().remove(&peer);
}

/// Waits `delay` after a failed round. A peer that did not take connections (down,
/// restarting) is probed every [`PROBE_EVERY`] meanwhile, and the wait ends as soon as it
/// takes one: a restarted peer catches up at once, not after the backoff. A peer that
/// answers with errors is not pressed sooner.
async fn back_off(pool: &crate::client::peer::Pool, peer: &str, delay: Duration) {
    let until = Instant::now() + delay;
    loop {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return;
        }
        if !pool.unreachable(peer) {
            glommio::timer::sleep(left).await;
            return;
        }
        glommio::timer::sleep(left.min(PROBE_EVERY)).await;
        if pool.probe(peer, PROBE_EVERY).await {
            return;
        }
    }
}

/// Runs futures concurrently on this executor and collects their outputs in order.
pub async fn futures_join_all<F>(futs: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + 'static,
    F::Output: 'static,
{
    let handles: Vec<_> = futs.map(|f| glommio::spawn_local(f)).collect::<Vec<_>>();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await);
    }
    out
}

/// Sends one outbox entry; on success records the delivery.
async fn deliver(
    w: Rc<Worker>,
    peer: String,
    md5: String,
    entry: OutboxEntry,
) -> Result<(), PushError> {
    let (peer, md5) = (peer.as_str(), md5.as_str());
    let result = match (entry.kind, &entry.folder) {
        // Folder markers travel only in batches (`batch.rs`): a peer that takes none
        // (go-fastdfs) has no markers, so there is nothing to tell it.
        (_, Some(f)) => {
            tracing::debug!(
                peer,
                rel = f.rel,
                "folder marker not sent: the peer takes no batches"
            );
            Ok(())
        }
        (SyncKind::Put, None) => match announceable(&w, md5) {
            Ok(Some(info)) => announce(&w, peer, md5, info).await.map_err(PushError::peer),
            Ok(None) => Ok(()),
            Err(e) => Err(PushError::local(e)),
        },
        (SyncKind::Delete, None) => send_delete(&w, peer, md5).await.map_err(PushError::peer),
    };
    match result {
        Ok(()) => record_delivery(&w, peer.to_string(), md5.to_string(), entry).await,
        Err(e) => {
            tracing::debug!(peer, md5, cause = %e, "sync to peer failed; will retry");
            Err(e)
        }
    }
}

/// Records that `peer` acknowledged `entry` of `md5`: the outbox entry leaves (if it is still
/// that entry) and the peer joins the record's peers.
async fn record_delivery(
    w: &Worker,
    peer: String,
    md5: String,
    entry: OutboxEntry,
) -> Result<(), PushError> {
    let queued_at = entry.queued_at;
    if let Err(e) = crate::failpoint::io("sync.delivered.eio") {
        tracing::error!(cause = %e, "recording a delivery failed");
        return Err(PushError::local(e));
    }
    match w.meta().delivered(md5, peer, entry).await {
        Ok(()) => {
            w.metrics().sync_sent(queued_at);
            Ok(())
        }
        Err(e) => {
            tracing::error!(cause = %e, "recording a delivery failed");
            Err(PushError::local(e))
        }
    }
}

/// The record of a file queued for a peer, or None when there is nothing to announce: it was
/// deleted meanwhile (the delete entry follows), or its file is missing here (logged).
fn announceable(w: &Worker, md5: &str) -> Result<Option<FileInfo>, MetaError> {
    let Some(info) = w.meta().get(md5)? else {
        return Ok(None);
    };
    if !w.meta().is_live(&info) {
        tracing::warn!(md5, path = %info.rel_path(), "not announced: the file is missing here");
        return Ok(None);
    }
    Ok(Some(info))
}

/// Why an announced file needs nothing from this node.
pub enum Needless {
    /// Here already (and the announcement is not a later version of an S3 object).
    Present,
    /// The content is here, under another path (the same bytes uploaded on two nodes at
    /// once): only the announced path needs recording (`Meta::announce` does), so that it
    /// is served here without its origin.
    Elsewhere,
    /// Deleted here after its upload: the tombstone wins.
    Deleted,
}

/// Whether an announcement from a peer needs nothing from this node (`syncfile_info` and
/// `batch` ask before storing or queueing anything).
pub fn needless(w: &Worker, info: &FileInfo) -> Result<Option<Needless>, MetaError> {
    let meta = w.meta();
    if let Some(old) = meta
        .get_live(&info.md5)?
        .filter(|old| !info.supersedes(old))
    {
        return Ok(Some(if is_known_path(w, &old, info)? {
            Needless::Present
        } else {
            Needless::Elsewhere
        }));
    }
    if meta
        .tombstone(&info.md5)?
        .is_some_and(|t| t >= info.time_stamp)
    {
        return Ok(Some(Needless::Deleted));
    }
    Ok(None)
}

/// Whether `announced`, whose content is here as `here`, names a path this node knows:
/// the record's own, or one recorded for it before. Merged files are named by their
/// locators, which differ between nodes: their content is all that counts.
fn is_known_path(w: &Worker, here: &FileInfo, announced: &FileInfo) -> Result<bool, MetaError> {
    let rel = announced.rel_path();
    if here.is_merged() || announced.is_merged() || here.rel_path() == rel {
        return Ok(true);
    }
    let key = crate::store::meta::path_key(&rel);
    Ok(w.meta()
        .get_by_path_key(&key)?
        .is_some_and(|i| i.md5 == here.md5))
}

/// Announces a stored file (`info`, of `md5`) to a peer, go-fastdfs style (docs/PROTOCOL.md
/// §8).
async fn announce(w: &Worker, peer: &str, md5: &str, info: FileInfo) -> io::Result<()> {
    let cfg = w.config();
    let prefix = cfg.prefix();
    if cfg.enable_distinct_file && info.offset != -2 {
        let form = [("md5".to_string(), md5.to_string())];
        let r = w
            .sync
            .pool
            .post_form(
                peer,
                &format!("{prefix}/check_file_exist"),
                &form,
                CALL_TIMEOUT,
            )
            .await?;
        let theirs: Option<FileInfo> = serde_json::from_slice(&r.body).ok();
        // The peer has it at the same path, unless ours is a later version of the same S3
        // key. Under another path (uploaded there too), it learns this path from the
        // announcement.
        if theirs.is_some_and(|i| {
            i.md5 == md5
                && (i.rel_path() == info.rel_path() || i.is_merged() || info.is_merged())
                && !info.supersedes(&i)
        }) {
            return Ok(());
        }
    }
    let json = crate::json::compact(&info);
    let form = [("fileInfo".to_string(), json)];
    let r = w
        .sync
        .pool
        .post_form(
            peer,
            &format!("{prefix}/syncfile_info"),
            &form,
            CALL_TIMEOUT,
        )
        .await?;
    let text = r.text();
    if r.status == 200 && (text.starts_with("http://") || text.starts_with("https://")) {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "syncfile_info answered {}: {}",
            r.status,
            text.chars().take(200).collect::<String>()
        )))
    }
}

async fn send_delete(w: &Worker, peer: &str, md5: &str) -> io::Result<()> {
    let form = [
        ("md5".to_string(), md5.to_string()),
        ("inner".to_string(), "1".to_string()),
    ];
    let path = format!("{}/delete", w.config().prefix());
    let r = w
        .sync
        .pool
        .post_form(peer, &path, &form, CALL_TIMEOUT)
        .await?;
    // 404: the peer never had it (its tombstone is recorded all the same).
    if r.status == 200 || r.status == 404 {
        Ok(())
    } else {
        Err(io::Error::other(format!("delete answered {}", r.status)))
    }
}

/// Files whose fetch failed: their failures so far, and when to fetch them again.
type Retrying = Rc<RefCell<RetryMap>>;

/// Fetches announced files of this executor's shards.
async fn pull_loop(w: Rc<Worker>) {
    let mut pager = ShardPager::new(&w);
    let retrying = Retrying::default();
    while !w.shutting_down() {
        let seen = w.sync.wake.generation();
        let read = |shard: usize, after: &str| w.meta().inbox_page(shard, after, PULL_PAGE);
        let Some(page) = pager.next("inbox", read, |e| e.info.md5.as_str()) else {
            retrying.borrow_mut().end_pass();
            w.sync.wake.wait(seen, IDLE_POLL).await;
            continue;
        };
        // Files backing off after a failed fetch wait; the rest of the queue does not.
        let now = Instant::now();
        let batch: Vec<Inboxed> = {
            let mut retry = retrying.borrow_mut();
            page.into_iter()
                .filter(|e| retry.due(&e.info.md5, e.arrived, now))
                .collect()
        };
        for chunk in batch.chunks(PULL_IN_FLIGHT) {
            let fetches = chunk
                .iter()
                .cloned()
                .map(|entry| fetch_one(w.clone(), retrying.clone(), entry));
            futures_join_all(fetches).await;
        }
        glommio::yield_if_needed().await;
    }
}

/// Fetches one announced file; after a failure, `Retries::after` decides whether it is
/// fetched again (when) or dropped. Failures that spend a chance are logged at the drop,
/// once, not on each retry.
async fn fetch_one(w: Rc<Worker>, retrying: Retrying, entry: Inboxed) {
    let Inboxed { info, arrived } = entry;
    let md5 = info.md5.clone();
    let Err(e) = fetch(&w, info, None).await else {
        retrying.borrow_mut().succeeded(&md5);
        return;
    };
    let retry_count = failure::chances(w.config().retry_count);
    let (next, retries) =
        retrying
            .borrow_mut()
            .failed(&md5, arrived, &e, retry_count, Instant::now());
    let attempts = retries.attempts;
    match next {
        Next::RetryIn(_) if attempts >= failure::WARN_AFTER && !e.counts() => {
            tracing::warn!(md5, attempts, cause = %e, "fetch from peer failed; will retry");
        }
        Next::RetryIn(_) => {
            tracing::debug!(md5, attempts, cause = %e, "fetch from peer failed; will retry");
        }
        Next::Drop if e.blame() == failure::Blame::Place => {
            tracing::warn!(
                md5,
                attempts,
                cause = %e,
                "announced file dropped: its place here is taken by a file or directory of \
                 this node's, which is kept (a repair offers the file again)"
            );
            let _ = w.meta().drop_announced(md5, arrived).await;
        }
        Next::Drop => {
            tracing::warn!(md5, attempts, cause = %e, "announced file dropped");
            let _ = w.meta().drop_announced(md5, arrived).await;
        }
    }
}

/// Announces a file `peer` has (its record as the peer describes it) to this node, with the
/// peer first among the sources, so the pull task stores a copy here (read-through, repair).
/// False when the record is refused (`validate_announced`) or could not be queued.
pub async fn copy_from_peer(w: &Worker, peer: &str, mut info: FileInfo) -> bool {
    let peers = info.peers.get_or_insert_with(Vec::new);
    peers.retain(|p| p != peer);
    peers.insert(0, peer.to_string());
    if let Err(why) = validate_announced(&info) {
        tracing::warn!(peer, md5 = %info.md5, cause = %why, "a peer's record refused");
        return false;
    }
    match w.meta().announce(info).await {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(cause = %e, "queueing a copy of a peer's file failed");
            false
        }
    }
}

/// Checks an announcement from a peer: paths stay under `files/`, names are single safe
/// components (a peer is trusted with content, not with our filesystem).
pub fn validate_announced(info: &FileInfo) -> Result<(), String> {
    if !ANNOUNCED_MD5_CHARS.contains(&info.md5.len())
        || !info.md5.bytes().all(|b| b.is_ascii_alphanumeric())
    {
        return Err("bad md5".into());
    }
    let rest = info
        .path
        .strip_prefix("files/")
        .ok_or("path outside files/")?;
    for seg in rest.split('/') {
        names::check_component(seg).map_err(|e| format!("bad path: {e}"))?;
    }
    // Internal directories (temp files, tus state, caches) never take a peer's file; merged
    // files come under `haystack/` and are checked by their own path.
    let first = rest.split('/').next().unwrap_or("");
    if names::is_internal(first) || first.starts_with("_tmp") || first.starts_with("_tus") {
        return Err("reserved directory".into());
    }
    names::check_name(info.stored_name()).map_err(|e| format!("bad name: {e}"))?;
    // A file in the place of one of our dated directories would block our uploads there.
    names::check_landing(&info.path, info.stored_name(), "").map_err(|e| e.to_string())?;
    if info.size < 0 {
        return Err("negative size".into());
    }
    Ok(())
}

/// The peers to fetch an announced file from: its `peers` minus this node, those that are
/// http:// or https:// URLs one can ask (a port out of range is none: it would keep a
/// fetch going forever as if it were down), each once. The record is the announcing peer's
/// word and each source may take the sync timeout: the configured peers among them come
/// first, then at most [`OTHER_SOURCES_MAX`] others, in the record's order.
fn sources(w: &Worker, info: &FileInfo) -> Vec<String> {
    let cfg = w.config();
    pick_sources(&cfg.host, &cfg.peers, info.peers.iter().flatten())
}

/// [`sources`] of a record naming `named`, on the node `host` with `configured` peers.
fn pick_sources<'a>(
    host: &str,
    configured: &[String],
    named: impl Iterator<Item = &'a String>,
) -> Vec<String> {
    let is_configured = |p: &str| configured.iter().any(|c| c.trim_end_matches('/') == p);
    let (mut ours, mut others) = (Vec::new(), Vec::new());
    for p in named {
        let p = p.trim_end_matches('/');
        if p == host.trim_end_matches('/') || ours.iter().chain(&others).any(|q| q == p) {
            continue;
        }
        if is_configured(p) {
            ours.push(p.to_string());
        } else if others.len() < OTHER_SOURCES_MAX && crate::client::parse_url(p).is_ok() {
            others.push(p.to_string());
        }
    }
    ours.retain(|p| crate::client::parse_url(p).is_ok());
    ours.extend(others);
    ours
}

/// Fetches a small announced file right away, inside the announcement call: the file is
/// stored before the peer gets its acknowledgement, which saves the inbox commit (lag) and
/// is just as durable. Returns false when it did not work; the caller then queues it.
pub async fn fetch_inline(w: &Worker, info: &FileInfo) -> bool {
    if info.size > INLINE_FETCH_BYTES_MAX {
        return false;
    }
    fetch(w, info.clone(), Some(INLINE_FETCH_TIMEOUT))
        .await
        .is_ok()
}

/// Fetches an announced file from the first of its sources that serves it, and stores it.
async fn fetch(w: &Worker, info: FileInfo, budget: Option<Duration>) -> Result<(), FetchError> {
    validate_announced(&info).map_err(FetchError::Refused)?;
    if w.config().read_only {
        return Err(FetchError::Refused("read_only is on".into()));
    }
    let sources = sources(w, &info);
    if sources.is_empty() {
        return Err(FetchError::Refused("no peer to fetch from".into()));
    }
    if let crate::json::Content::Merged(offset) = info.content() {
        return merged::fetch(w, info, offset, &sources, budget).await;
    }
    let mut failed = None;
    for src in &sources {
        match download(w, src, &info, budget).await {
            Ok(written) => return commit(w, info, written).await,
            Err(e) => failed = Some(FetchError::then(failed, e)),
        }
    }
    Err(failed.unwrap_or_else(|| FetchError::Refused("no peer to fetch from".into())))
}

/// Streams the file from `src` into a hashed, fdatasynced temp file and checks it. Content
/// that failed the source's md5 checkpoints is fetched again at once, checked in one pass
/// (a wrong checkpoint costs one transfer, never the file).
async fn download(
    w: &Worker,
    src: &str,
    info: &FileInfo,
    budget: Option<Duration>,
) -> Result<write::Written, FetchError> {
    let before = may_chain(w, &info.md5);
    match download_once(w, src, info, budget).await {
        Err(_) if before && !may_chain(w, &info.md5) => download_once(w, src, info, budget).await,
        done => done,
    }
}

/// One transfer of [`download`]: checked against `src`'s md5 checkpoints when it keeps
/// them ([`ask_checkpoints`]), else hashed as it is written.
async fn download_once(
    w: &Worker,
    src: &str,
    info: &FileInfo,
    budget: Option<Duration>,
) -> Result<write::Written, FetchError> {
    use http_body_util::{BodyExt, Full};
    let cfg = w.config();
    let secs = if cfg.sync_timeout > 0 {
        cfg.sync_timeout as u64
    } else {
        info.size.max(0) as u64 / (1 << 20) + 30
    };
    let deadline = Instant::now() + budget.unwrap_or(Duration::from_secs(secs));
    // Not asked for when it would not fit (retried later, as any failed fetch).
    let expected = info.size.max(0) as u64;
    let claim = crate::store::space::admit(w.dir(), expected)
        .await
        .map_err(FetchError::Disk)?;
    let mut chain = ask_checkpoints(w, src, info).await;
    let path = crate::http::query::ascii_url(&crate::placement::download_path(&cfg, info));
    let transport = |e| FetchError::transport(src, e);
    let head_by = deadline.min(Instant::now() + FETCH_STALL_MAX);
    let create = |chained: bool| async move {
        let tmp = if chained {
            write::TempFile::create_unhashed(w.dir(), expected).await
        } else {
            write::TempFile::create(w.dir(), cfg.use_sha1(), expected).await
        };
        tmp.map_err(FetchError::Disk)
    };
    // A file checked against its checkpoints is large: its bytes go from the socket to the
    // disk and the chain's threads with no copy (`client::bulk`), unless the peer frames
    // its answer otherwise than by Content-Length.
    if let Some(c) = &mut chain {
        use crate::client::bulk::{self, Opened};
        let extra = [(READ_THROUGH_HEADER, "1")];
        let opened = bulk::get(&w.sync.pool, src, &path, &extra, head_by)
            .await
            .map_err(transport)?;
        match opened {
            Opened::Status(status) => {
                return Err(FetchError::status(status, format!("{src}{path}")));
            }
            Opened::Unframed => {}
            Opened::Body(body) => {
                let mut tmp = create(true).await?;
                tmp.claim(claim);
                receive_bulk(w, src, info, *body, &mut tmp, c, deadline).await?;
                return finish_download(w, src, info, tmp, chain).await;
            }
        }
    }
    let req = crate::client::peer::request("GET", src, &path)
        .map_err(transport)?
        .header(READ_THROUGH_HEADER, "1")
        .body(Full::new(bytes::Bytes::new()))
        .map_err(|e| transport(io::Error::other(e)))?;
    let resp = w
        .sync
        .pool
        .send(src, req, head_by)
        .await
        .map_err(transport)?;
    let status = resp.status().as_u16();
    if status != 200 {
        return Err(FetchError::status(status, format!("{src}{path}")));
    }
    let mut tmp = create(chain.is_some()).await?;
    tmp.claim(claim);
    let mut body = resp.into_body();
    loop {
        let (wait, late) = stall_wait(deadline);
        let frame = glommio::timer::timeout(wait, async { Ok(body.frame().await) })
            .await
            .map_err(|_| transport(io::Error::new(io::ErrorKind::TimedOut, late)))?;
        let Some(frame) = frame else { break };
        let frame = frame.map_err(|e| transport(io::Error::other(e)))?;
        if let Ok(data) = frame.into_data() {
            if tmp.size() + data.len() as u64 > info.size as u64 {
                return Err(FetchError::OtherContent(
                    "peer sent more bytes than announced".into(),
                ));
            }
            tmp.write_shared(&data).await.map_err(FetchError::Disk)?;
            if let Some(c) = &mut chain {
                c.feed(data).await.map_err(|e| broken(w, src, info, e))?;
            }
        }
    }
    finish_download(w, src, info, tmp, chain).await
}

/// How long the next piece of a transfer may take (what is left of its time, and no more
/// than [`FETCH_STALL_MAX`]), and why a piece that takes longer failed.
fn stall_wait(deadline: Instant) -> (Duration, &'static str) {
    let left = deadline.saturating_duration_since(Instant::now());
    let wait = left.min(FETCH_STALL_MAX).max(Duration::from_millis(1));
    let why = if wait < left {
        "transfer stalled"
    } else {
        "transfer timed out"
    };
    (wait, why)
}

/// Receives a body of [`client::bulk`](crate::client::bulk) into `tmp` and `chain`: each
/// direct-write buffer filled from the socket is written and hashed where it is.
async fn receive_bulk(
    w: &Worker,
    src: &str,
    info: &FileInfo,
    mut body: crate::client::bulk::Body,
    tmp: &mut write::TempFile,
    chain: &mut crate::store::checkpoints::Chain,
    deadline: Instant,
) -> Result<(), FetchError> {
    use crate::store::dma::{Shareable, BUFFER_BYTES};
    if body.left() > info.size.max(0) as u64 {
        return Err(FetchError::OtherContent(
            "peer sent more bytes than announced".into(),
        ));
    }
    while body.left() > 0 {
        let mut buf = Shareable::take();
        let (wait, late) = stall_wait(deadline);
        let fill = async {
            while buf.len() < BUFFER_BYTES && body.left() > 0 {
                let n = body.read(buf.room()).await?;
                // SAFETY: `read` wrote `n` bytes at the start of the room.
                unsafe { buf.filled(n) };
            }
            Ok(())
        };
        glommio::timer::timeout(wait, fill)
            .await
            .map_err(|e| match e {
                glommio::GlommioError::IoError(e) => FetchError::transport(src, e),
                _ => FetchError::transport(src, io::Error::new(io::ErrorKind::TimedOut, late)),
            })?;
        let data = buf.share();
        tmp.write_shared(&data).await.map_err(FetchError::Disk)?;
        chain
            .feed(data)
            .await
            .map_err(|e| broken(w, src, info, e))?;
    }
    Ok(())
}

/// Ends a transfer received into `tmp`: durable, its digest from `chain` (which has its
/// checkpoints kept) or from the writer, and checked against what the peer announced.
async fn finish_download(
    w: &Worker,
    src: &str,
    info: &FileInfo,
    tmp: write::TempFile,
    chain: Option<crate::store::checkpoints::Chain>,
) -> Result<write::Written, FetchError> {
    let cfg = w.config();
    let mut written = tmp.finish().await.map_err(FetchError::Disk)?;
    if let Some(c) = chain {
        let checkpoints;
        (written.digest, checkpoints) = c.finish().await.map_err(|e| broken(w, src, info, e))?;
        w.metrics().sync_chained(true);
        write::save_checkpoints(&written.tmp, checkpoints).await;
    }
    check_written(&cfg, info, &written)?;
    Ok(written)
}

/// A fetch whose content failed its md5 checkpoints: its file is fetched again (the next
/// try) without them, checked in one pass (a wrong checkpoint never fails a file twice).
fn broken(w: &Worker, src: &str, info: &FileInfo, e: Broken) -> FetchError {
    w.metrics().sync_chained(false);
    tracing::warn!(src, md5 = %info.md5, cause = %e, "fetched content failed its md5 checkpoints: fetching it again, checked in one pass");
    let mut unchained = w.sync.unchained.borrow_mut();
    if unchained.len() >= UNCHAINED_MAX {
        unchained.clear();
    }
    unchained.insert(info.md5.clone());
    FetchError::OtherContent(format!("from {src}: {e}"))
}

/// Whether the file of `md5` may be checked against md5 checkpoints: it has not failed them
/// ([`broken`] remembers those).
fn may_chain(w: &Worker, md5: &str) -> bool {
    !w.sync.unchained.borrow().contains(md5)
}

/// The md5 checkpoints `src` keeps for the file `info` announces, when its content is
/// checked against its md5 here and it is large enough to keep them
/// (`store::checkpoints`); None from a source that keeps none (go-fastdfs, a file stored
/// before them), says nothing in time, or answers what cannot be the file's.
async fn ask_checkpoints(
    w: &Worker,
    src: &str,
    info: &FileInfo,
) -> Option<crate::store::checkpoints::Chain> {
    use crate::store::checkpoints::{Chain, Checkpoints, CHECKPOINTS_MIN};
    let cfg = w.config();
    let size = info.size.max(0) as u64;
    let checked = digest_checked(&cfg, info) && !cfg.use_sha1();
    if !checked || size < CHECKPOINTS_MIN || !may_chain(w, &info.md5) {
        return None;
    }
    let expect: [u8; 16] = crate::codec::unhex(&info.md5)?.try_into().ok()?;
    let path = format!("{}/md5_checkpoints", cfg.prefix());
    let form = [("md5".to_string(), info.md5.clone())];
    let r = w
        .sync
        .pool
        .post_form(src, &path, &form, CHECKPOINTS_WAIT)
        .await
        .ok()
        .filter(|r| r.status == 200)?;
    let v: serde_json::Value = serde_json::from_slice(&r.body).ok()?;
    Chain::new(Checkpoints::from_json(v.get("data")?, size)?, size, expect)
}

/// Whether a received file's digest must be the record's md5: with dedup on, for a plain
/// file (a merged file's content is checked in `merged`) whose record is keyed by its
/// content, not by the md5 of its path.
fn digest_checked(cfg: &crate::config::Config, info: &FileInfo) -> bool {
    cfg.enable_distinct_file && info.offset == crate::json::OFFSET_PLAIN && !info.is_path_keyed()
}

/// A received file against its announcement: its size, and with dedup on its md5 (the
/// content's). A peer with dedup off names files by the md5 of their path instead; that is
/// accepted as such (size checked).
fn check_written(
    cfg: &crate::config::Config,
    info: &FileInfo,
    written: &write::Written,
) -> Result<(), FetchError> {
    if written.size != info.size as u64 {
        return Err(FetchError::OtherContent(format!(
            "size {} instead of {}",
            written.size, info.size
        )));
    }
    if written.digest != info.md5 && digest_checked(cfg, info) {
        return Err(FetchError::OtherContent(format!(
            "content md5 {} instead of {}",
            written.digest, info.md5
        )));
    }
    Ok(())
}

/// Stores a file whose content a peer sent with its announcement (`batch`): written to a
/// hashed, fdatasynced temp file (a merged one into its container), checked as a fetched
/// file is, and committed.
async fn store_pushed(w: &Worker, info: FileInfo, content: bytes::Bytes) -> Result<(), FetchError> {
    validate_announced(&info).map_err(FetchError::Refused)?;
    if w.config().read_only {
        return Err(FetchError::Refused("read_only is on".into()));
    }
    match info.content() {
        crate::json::Content::Merged(offset) => {
            return merged::accept(w, info, offset, content).await
        }
        crate::json::Content::Plain | crate::json::Content::Migrated => {}
        crate::json::Content::Unknown => {
            return Err(FetchError::Refused("unknown content offset".into()))
        }
    }
    let cfg = w.config();
    let written = write::write_content(w.dir(), &content, cfg.use_sha1())
        .await
        .map_err(FetchError::Disk)?;
    check_written(&cfg, &info, &written)?;
    commit(w, info, written).await
}

/// Commits a received file's record with the file moved into place (or finds it there).
async fn commit(w: &Worker, info: FileInfo, written: write::Written) -> Result<(), FetchError> {
    let cfg = w.config();
    // A later version of an S3 object here replaces the file and record of the older one.
    let replaces = match w.meta().get(&info.md5) {
        Ok(Some(old)) => info.supersedes(&old),
        Ok(None) => false,
        Err(e) => {
            write::discard(written).await;
            return Err(e.into());
        }
    };
    let staged = Staged {
        tmp: written.tmp.clone(),
        dir: info.path.clone(),
        name: info.stored_name().to_string(),
        replace: replaces,
    };
    let dedup = cfg.enable_distinct_file && !replaces;
    let inserted = w
        .meta()
        .insert(info, Some(staged), dedup, Origin::Peer)
        .await;
    match inserted {
        Ok(Inserted::New(info)) => {
            written.moved();
            if replaces {
                w.shared.invalidate_caches();
            }
            w.metrics().sync_received(info.size as u64);
            Ok(())
        }
        Ok(_) => {
            write::discard(written).await;
            Ok(())
        }
        Err(e) => {
            write::discard(written).await;
            Err(e.into())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A record's sources: this node and unusable URLs left out, each once; the configured
    /// peers first, then at most `OTHER_SOURCES_MAX` others, in the record's order.
    #[test]
    fn a_record_naming_many_sources_has_its_configured_peers_and_a_few_others_tried() {
        let host = "http://10.0.0.1:8080";
        let configured = [
            "http://10.0.0.2:8080".to_string(),
            "http://10.0.0.3:8080/".into(),
        ];
        let mut named: Vec<String> = (0..100).map(|i| format!("http://10.9.0.{i}:80")).collect();
        named.insert(1, "http://10.0.0.1:8080/".into());
        named.insert(2, "http://10.0.0.1:99999".into());
        named.insert(3, "http://10.9.0.0:80/".into());
        named.push("http://10.0.0.3:8080".into());
        named.push("http://10.0.0.3:8080".into());
        let got = pick_sources(host, &configured, named.iter());
        let want = [
            "http://10.0.0.3:8080",
            "http://10.9.0.0:80",
            "http://10.9.0.1:80",
            "http://10.9.0.2:80",
        ];
        assert_eq!(got, want);
    }

    /// Runs `f` on a small executor of its own.
    fn on_executor<T: Send + 'static>(f: impl std::future::Future<Output = T> + 'static) -> T {
        glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .expect("executor")
            .run(f)
    }

    #[test]
    fn a_backoff_from_an_unreachable_peer_ends_when_it_takes_connections_again() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let peer = format!("http://127.0.0.1:{port}");
        let (delay, waited) = std::thread::spawn(move || {
            on_executor(async move {
                let pool = crate::client::peer::Pool::default();
                assert!(!pool.probe(&peer, PROBE_EVERY).await, "nothing listens yet");
                assert!(pool.unreachable(&peer));
                // The peer comes back shortly after the backoff began.
                let listener = std::thread::spawn(move || {
                    std::thread::sleep(Duration::from_millis(300));
                    let l = std::net::TcpListener::bind(("127.0.0.1", port)).unwrap();
                    std::thread::sleep(Duration::from_secs(30));
                    drop(l);
                });
                let delay = Duration::from_secs(30);
                let started = Instant::now();
                back_off(&pool, &peer, delay).await;
                assert!(!pool.unreachable(&peer), "the probe found it back");
                drop(listener);
                (delay, started.elapsed())
            })
        })
        .join()
        .unwrap();
        assert!(
            waited < delay / 2,
            "waited {waited:?} of a {delay:?} backoff"
        );
    }

    #[test]
    fn a_peer_that_answers_with_errors_is_given_its_whole_backoff() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let peer = format!("http://{}", listener.local_addr().unwrap());
        let waited = std::thread::spawn(move || {
            on_executor(async move {
                let pool = crate::client::peer::Pool::default();
                assert!(pool.probe(&peer, PROBE_EVERY).await);
                let started = Instant::now();
                back_off(&pool, &peer, Duration::from_millis(700)).await;
                started.elapsed()
            })
        })
        .join()
        .unwrap();
        drop(listener);
        assert!(waited >= Duration::from_millis(700), "{waited:?}");
    }

    #[test]
    fn announcements_stay_under_files() {
        let ok = FileInfo {
            name: "a.txt".into(),
            path: "files/default/20260101/10/00/1".into(),
            md5: "0123456789abcdef0123456789abcdef".into(),
            size: 1,
            ..Default::default()
        };
        assert!(validate_announced(&ok).is_ok());
        for path in [
            "files/../etc",
            "/etc",
            "files/_tmp/x",
            "files/_big/1",
            "files/_cache",
            "files/a//b",
            "files",
        ] {
            let bad = FileInfo {
                path: path.into(),
                ..ok.clone()
            };
            assert!(validate_announced(&bad).is_err(), "{path}");
        }
        let bad = FileInfo {
            name: "../x".into(),
            ..ok.clone()
        };
        assert!(validate_announced(&bad).is_err());
        let bad = FileInfo {
            md5: "short".into(),
            ..ok.clone()
        };
        assert!(validate_announced(&bad).is_err());
        let sha1 = FileInfo {
            md5: "a".repeat(40),
            ..ok.clone()
        };
        assert!(validate_announced(&sha1).is_ok());
        let overlong = FileInfo {
            md5: "a".repeat(65),
            ..ok
        };
        assert!(validate_announced(&overlong).is_err());
    }
}
