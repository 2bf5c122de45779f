//! Reconciliation with peers (docs/PROTOCOL.md §8, without its blind spot): for every day either
//! side has, the two md5 *sets* are compared (go-fastdfs compared counts, so a day with
//! equal counts but different files was never repaired). Files only here are queued for the
//! peer; files only there are fetched from it (described by its `check_files_exist`, queued in
//! the inbox), or requested with `receive_md5s` when it does not describe them (the peer then
//! announces them), unless a tombstone here says they were deleted: then the delete is queued
//! for the peer.
//! S3 folder markers are no records (no day, no md5): every marker here and every marker
//! removal (its tombstone) that the peer lacks, or has an older change of (it lists its own,
//! `G/folder_markers`), is queued for the peer with its time, and the peer keeps the later
//! change of each (`store::folders::apply_from_peer`); the peer's own repair does the same the
//! other way, so both converge on the last change of every marker.

use super::batch::FolderChange;
use crate::client::peer::Reply;
use crate::store::meta::{Enqueue, MetaError, SyncKind};
use crate::worker::Worker;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;
use std::time::Duration;

/// First automatic run after start, and the period after that (go-fastdfs: 3 min, ~63 min).
const FIRST_RUN: Duration = Duration::from_secs(180);
const PERIOD: Duration = Duration::from_secs(3600);
/// Timeout of one listing call to a peer.
const LIST_TIMEOUT: Duration = Duration::from_secs(60);
/// Queue operations outstanding at once (they share group commits).
const SUBMITS_IN_FLIGHT: usize = 256;
/// md5s per `receive_md5s` call.
const RECEIVE_BATCH: usize = 500;

/// Runs the reconciliation on a schedule while `auto_repair` is on.
pub async fn schedule(w: Rc<Worker>) {
    let mut next = std::time::Instant::now() + FIRST_RUN;
    while !w.shutting_down() {
        glommio::timer::sleep(Duration::from_secs(1)).await;
        if std::time::Instant::now() < next {
            continue;
        }
        next = std::time::Instant::now() + PERIOD;
        if w.config().auto_repair {
            run(&w).await;
        }
    }
}

/// One reconciliation with every peer. Never fails: problems are logged per peer.
pub async fn run(w: &Worker) {
    let peers = w.config().peers.clone();
    for peer in peers {
        with_peer_logged(w, &peer).await;
    }
}

/// Reconciles with one peer and logs the outcome.
pub async fn with_peer_logged(w: &Worker, peer: &str) {
    match with_peer(w, peer).await {
        Ok(n) => tracing::info!(peer, queued = n.0, requested = n.1, "repair with peer done"),
        Err(e) => tracing::warn!(peer, cause = %e, "repair with peer failed"),
    }
}

/// Reconciles every day with one peer; returns (files queued for it, files requested).
async fn with_peer(w: &Worker, peer: &str) -> std::io::Result<(usize, usize)> {
    if !super::known_other(w, peer).await {
        return Err(std::io::Error::other(
            "the peer's status is not ok (down, or this node itself)",
        ));
    }
    let prefix = w.config().prefix();
    let form = [("inner".to_string(), "1".to_string())];
    let r = w
        .sync
        .pool
        .post_form(peer, &format!("{prefix}/stat"), &form, LIST_TIMEOUT)
        .await?;
    let mut days: BTreeSet<String> = remote_days(&r)?;
    w.meta().settle().await.map_err(std::io::Error::other)?;
    let local = w.meta().day_stats().map_err(std::io::Error::other)?;
    days.extend(
        local
            .into_iter()
            .filter(|(_, (n, _))| *n > 0)
            .map(|(d, _)| d),
    );
    let (mut queued, mut requested) = (0, 0);
    for day in days.iter().filter(|d| d.len() == 8) {
        let (q, r) = day_with_peer(w, peer, day).await?;
        queued += q;
        requested += r;
    }
    queued += folders_for_peer(w, peer).await?;
    Ok((queued, requested))
}

/// Queues for `peer` every S3 folder marker here and every marker removal that it does not
/// have as it is here (each read again in the queueing transaction); how many. A peer that
/// lists its markers (`G/folder_markers`) is sent only the changes later than its own of the
/// same path (it keeps the later change of each, so the rest would change nothing there);
/// one that does not (go-fastdfs, which takes none; an older fastdfs-rs) is sent them all.
async fn folders_for_peer(w: &Worker, peer: &str) -> std::io::Result<usize> {
    let theirs = peer_folders(w, peer).await;
    let ours = folder_changes(w).await.map_err(std::io::Error::other)?;
    let paths: Vec<String> = ours
        .into_iter()
        .filter(|c| {
            let has = |t: &BTreeMap<String, i64>| t.get(&c.path).is_some_and(|&t| t >= c.time);
            !theirs.as_ref().is_some_and(has)
        })
        .map(|c| c.path)
        .collect();
    let mut queued = 0;
    for window in paths.chunks(SUBMITS_IN_FLIGHT) {
        let calls = window.iter().map(|rel| {
            let (meta, rel, peer) = (w.shared.meta.clone(), rel.clone(), peer.to_string());
            async move { meta.requeue_folder(rel, peer).await }
        });
        for r in super::futures_join_all(calls).await {
            queued += usize::from(r.map_err(std::io::Error::other)?);
        }
    }
    Ok(queued)
}

/// Every S3 folder marker here and every marker removal (its tombstone), each with the time
/// of its change: what `G/folder_markers` answers a peer's repair.
pub async fn folder_changes(w: &Worker) -> Result<Vec<FolderChange>, MetaError> {
    let meta = w.shared.meta.clone();
    glommio::executor()
        .spawn_blocking(move || {
            let mut out = Vec::new();
            for rel in meta.folder_paths()? {
                if let Some((put, time)) = meta.folder_state(&rel)? {
                    out.push(FolderChange {
                        path: rel,
                        time,
                        deleted: !put,
                    });
                }
            }
            Ok(out)
        })
        .await
}

/// A repair call of `route` to `peer` with `form`: its answer when it is a 200, else why not
/// (for the log: a peer that does not answer a route is left to the rest of the repair).
async fn ask(
    w: &Worker,
    peer: &str,
    route: &str,
    form: &[(String, String)],
) -> Result<Reply, String> {
    let path = format!("{}/{route}", w.config().prefix());
    match w.sync.pool.post_form(peer, &path, form, LIST_TIMEOUT).await {
        Ok(r) if r.status == 200 => Ok(r),
        Ok(r) => Err(format!("status {}", r.status)),
        Err(e) => Err(e.to_string()),
    }
}

/// The time of each folder marker change `peer` has (`G/folder_markers`), or None when it
/// does not list them.
async fn peer_folders(w: &Worker, peer: &str) -> Option<BTreeMap<String, i64>> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Vec<FolderChange>,
    }
    let form = [("inner".to_string(), "1".to_string())];
    let r = match ask(w, peer, "folder_markers", &form).await {
        Ok(r) => r,
        Err(cause) => {
            tracing::debug!(peer, cause, "folder_markers not answered");
            return None;
        }
    };
    let answer: Answer = serde_json::from_slice(&r.body).ok()?;
    Some(answer.data.into_iter().map(|c| (c.path, c.time)).collect())
}

/// Dates of a peer's `stat?inner=1` answer (a JSON array, or go's envelope around it).
fn remote_days(r: &Reply) -> std::io::Result<BTreeSet<String>> {
    let v: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| std::io::Error::other(format!("stat answer: {e}")))?;
    let rows = v.get("data").unwrap_or(&v);
    Ok(rows
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|row| row.get("date").and_then(|d| d.as_str()))
        .filter(|d| *d != "all")
        .map(str::to_string)
        .collect())
}

async fn day_with_peer(w: &Worker, peer: &str, day: &str) -> std::io::Result<(usize, usize)> {
    let prefix = w.config().prefix();
    let form = [("date".to_string(), day.to_string())];
    let r = w
        .sync
        .pool
        .post_form(
            peer,
            &format!("{prefix}/get_md5s_by_date"),
            &form,
            LIST_TIMEOUT,
        )
        .await?;
    if r.status != 200 {
        return Err(std::io::Error::other(format!(
            "get_md5s_by_date answered {}",
            r.status
        )));
    }
    let text = r.text();
    let theirs: BTreeSet<&str> = text
        .split(',')
        .map(str::trim)
        .filter(|m| m.len() >= 32)
        .collect();
    w.meta().settle().await.map_err(std::io::Error::other)?;
    let ours_list = w.meta().md5s_by_date(day).map_err(std::io::Error::other)?;
    let ours: BTreeSet<&str> = ours_list.iter().map(String::as_str).collect();
    let op = |md5: &str, kind| Enqueue {
        md5: md5.to_string(),
        peers: vec![peer.to_string()],
        kind,
    };
    let mut ops: Vec<Enqueue> = ours
        .difference(&theirs)
        .map(|md5| op(md5, SyncKind::Put))
        .collect();
    let mut wanted = Vec::new();
    for md5 in theirs.difference(&ours) {
        if w.meta().tombstone(md5).ok().flatten().is_some() {
            ops.push(op(md5, SyncKind::Delete));
        } else if w.meta().get(md5).ok().flatten().is_none() {
            wanted.push(md5.to_string());
        }
    }
    let queued = ops.len();
    // A change that cannot be queued (a full disk) stops the repair: asking the peer for
    // files would only have it send what cannot be stored either. The next run redoes it.
    submit_all(w, ops).await.map_err(std::io::Error::other)?;
    for batch in wanted.chunks(RECEIVE_BATCH) {
        let copied = copy_described(w, peer, batch).await;
        let rest: Vec<&str> = batch
            .iter()
            .map(String::as_str)
            .filter(|m| !copied.contains(*m))
            .collect();
        if rest.is_empty() {
            continue;
        }
        let form = [("md5s".to_string(), rest.join(","))];
        w.sync
            .pool
            .post_form(peer, &format!("{prefix}/receive_md5s"), &form, LIST_TIMEOUT)
            .await?;
    }
    Ok((queued, wanted.len()))
}

/// Files only on `peer` are fetched from it by this node: the peer describes them
/// (`check_files_exist`) and each record goes to the inbox as an announcement would. Asking
/// the peer to announce them (`receive_md5s`) is not enough with go-fastdfs, which announces
/// a file only to peers missing from its record's `peers`: a node that acknowledged an
/// announcement but never stored the file (read_only then, a fetch given up) would never get
/// it. The md5s queued here; the caller asks for the rest with `receive_md5s`.
async fn copy_described(w: &Worker, peer: &str, md5s: &[String]) -> BTreeSet<String> {
    let mut copied = BTreeSet::new();
    let form = [("md5s".to_string(), md5s.join(","))];
    let r = match ask(w, peer, "check_files_exist", &form).await {
        Ok(r) => r,
        Err(cause) => {
            tracing::info!(peer, cause, "check_files_exist not answered");
            return copied;
        }
    };
    let wanted: BTreeSet<&str> = md5s.iter().map(String::as_str).collect();
    for info in described(&r.body) {
        if !wanted.contains(info.md5.as_str()) || copied.contains(&info.md5) {
            continue;
        }
        let md5 = info.md5.clone();
        if super::copy_from_peer(w, peer, info).await {
            copied.insert(md5);
        }
    }
    copied
}

/// The records of a `check_files_exist` answer (`{"data":[FileInfo,…]}`, `data` null when
/// none); records without an md5 are left out.
fn described(body: &[u8]) -> Vec<crate::json::FileInfo> {
    #[derive(serde::Deserialize)]
    struct Answer {
        data: Option<Vec<crate::json::FileInfo>>,
    }
    serde_json::from_slice::<Answer>(body)
        .ok()
        .and_then(|a| a.data)
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.md5.is_empty())
        .collect()
}

/// Queues every known md5 of `md5s` for all peers (`receive_md5s`, `sync?force=1`).
pub async fn push_all(w: &Worker, md5s: &[String]) -> usize {
    let peers = w.config().peers.clone();
    if peers.is_empty() {
        return 0;
    }
    let ops = md5s.iter().map(|md5| Enqueue {
        md5: md5.clone(),
        peers: peers.clone(),
        kind: SyncKind::Put,
    });
    submit_all(w, ops.collect()).await.unwrap_or_else(|e| {
        tracing::warn!(cause = %e, "files not queued for the peers");
        0
    })
}

/// `sync?date=`: re-announce a day's files to peers; without `force` only to peers missing
/// from a file's `peers` list (the ones that never acknowledged it).
pub async fn sync_day(w: &Worker, day: &str, force: bool) -> usize {
    if w.meta().settle().await.is_err() {
        return 0;
    }
    let Ok(md5s) = w.meta().md5s_by_date(day) else {
        return 0;
    };
    let peers = w.config().peers.clone();
    let mut ops = Vec::new();
    for md5 in md5s {
        let Ok(Some(info)) = w.meta().get(&md5) else {
            continue;
        };
        let known = info.peers.clone().unwrap_or_default();
        let targets: Vec<String> = peers
            .iter()
            .filter(|p| force || !known.contains(p))
            .cloned()
            .collect();
        if !targets.is_empty() {
            ops.push(Enqueue {
                md5,
                peers: targets,
                kind: SyncKind::Put,
            });
        }
    }
    submit_all(w, ops).await.unwrap_or_else(|e| {
        tracing::warn!(day, cause = %e, "the day's files not queued for the peers");
        0
    })
}

/// Submits ops with up to `SUBMITS_IN_FLIGHT` outstanding, so they share group commits.
/// Returns how many were applied, or the first failure (e.g. a full disk: no window is
/// submitted after it).
async fn submit_all(w: &Worker, ops: Vec<Enqueue>) -> Result<usize, crate::store::meta::MetaError> {
    let mut applied = 0;
    let mut ops = ops.into_iter().peekable();
    while ops.peek().is_some() {
        let window: Vec<Enqueue> = ops.by_ref().take(SUBMITS_IN_FLIGHT).collect();
        let calls = window.into_iter().map(|op| {
            let meta = w.shared.meta.clone();
            async move { meta.enqueue(op).await }
        });
        for r in super::futures_join_all(calls).await {
            if r? {
                applied += 1;
            }
        }
    }
    Ok(applied)
}
