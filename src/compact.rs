//! Online compaction of this executor's small-file containers: a container whose dead bytes
//! (deleted merged files, unindexed tails) reach `compact_dead_percent` is rewritten.
//!
//! Steps, each durable before the next, so a kill or power cut at any point loses nothing:
//! 1. the container number is retired (`<N>.retired`, fsynced): nothing appends to it again and
//!    the number is never reused, since a reused number would give an old URL to a new file;
//! 2. each live file's bytes are re-appended through the executor's appender (group commit,
//!    fdatasync), then its new place is committed in the `moved` table (`Meta::relocate`; the
//!    URL, locator and path key never change, reads look the place up);
//! 3. once no record points into it, the container is unlinked.
//!
//! A pass interrupted after step 1 is finished by the next pass (retired containers that still
//! exist are always compacted). I/O is paced so that serving latency holds.

use crate::store::haystack;
use crate::worker::Worker;
use std::io;
use std::rc::Rc;
use std::time::Duration;

/// How often each executor looks at its containers.
const CHECK_EVERY: Duration = Duration::from_secs(600);
/// Granularity at which a requested pass or shutdown is noticed.
const TICK: Duration = Duration::from_secs(1);
/// Files moved together (one append batch, one group commit).
const GROUP_FILES: usize = 64;
/// Bytes copied between two pauses, and the pause (bounded compaction I/O).
const PACE_BYTES: u64 = 1 << 20;
const PACE_PAUSE: Duration = Duration::from_millis(20);
/// Longest wait for uploads into a just-sealed container to insert their records.
const HELD_WAIT_MAX: Duration = Duration::from_secs(60);

/// What a pass did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Report {
    pub containers: usize,
    pub files_moved: usize,
    pub bytes_moved: u64,
    pub bytes_reclaimed: u64,
}

/// A live merged file in a container: (md5, offset, size with the marker).
type Live = (String, u64, u64);

/// The background duty: a pass every `CHECK_EVERY`, or at once when `G/compact` asks.
pub async fn duty(w: Rc<Worker>) {
    let mut seen = w.shared.compact_requests();
    let mut next = std::time::Instant::now() + CHECK_EVERY;
    while !w.shutting_down() {
        glommio::timer::sleep(TICK).await;
        let asked = w.shared.compact_requests();
        let due = std::time::Instant::now() >= next;
        if asked == seen && !due {
            continue;
        }
        let percent = w.config().compact_dead_percent;
        if asked == seen && percent == 0 {
            next = std::time::Instant::now() + CHECK_EVERY;
            continue;
        }
        // Asked for: every container with any dead byte.
        let threshold = if asked != seen { 0 } else { percent };
        seen = asked;
        next = std::time::Instant::now() + CHECK_EVERY;
        match pass(&w, threshold).await {
            Ok(r) if r.containers > 0 => tracing::info!(?r, "small-file containers compacted"),
            Ok(_) => {}
            Err(e) => tracing::warn!(cause = %e, "compaction failed; it is retried later"),
        }
    }
}

/// One pass over this executor's containers: those with at least `threshold_percent` dead
/// bytes (and any retired one still on disk) are compacted.
pub async fn pass(w: &Rc<Worker>, threshold_percent: u64) -> io::Result<Report> {
    let cfg = w.config();
    let rel_dir = haystack::dir_of(&cfg.peer_id);
    let dir = w.dir().join(&rel_dir);
    if !dir.is_dir() {
        return Ok(Report::default());
    }
    // Every acknowledged merged upload is in the container index before it is read.
    w.shared.meta.settle().await.map_err(io::Error::other)?;
    let usage = {
        let (meta, rel_dir) = (w.shared.meta.clone(), rel_dir.clone());
        glommio::executor()
            .spawn_blocking(move || meta.container_usage(&rel_dir))
            .await
            .map_err(io::Error::other)?
    };
    let mine = |n: u64| n >= 100 && (n - 100) % w.shared.workers.max(1) as u64 == w.id as u64;
    let lens = {
        let dir = dir.clone();
        glommio::executor()
            .spawn_blocking(move || container_lengths(&dir))
            .await?
    };
    let mut report = Report::default();
    for (n, len) in lens {
        if !mine(n) || len == 0 {
            continue;
        }
        let live_bytes = usage.get(&n).map_or(0, |(_, bytes)| *bytes);
        let dead = len.saturating_sub(live_bytes);
        w.shared.set_container_gauge(n, Some((len, live_bytes)));
        let retired = haystack::is_retired(&dir, n);
        if !retired && (dead == 0 || dead * 100 < threshold_percent * len) {
            continue;
        }
        compact_one(w, &dir, n, &mut report).await?;
        w.shared.set_container_gauge(n, None);
        report.containers += 1;
        report.bytes_reclaimed += dead;
    }
    Ok(report)
}

/// The live merged files of container `n` of `rel_dir`, in offset order (an index range scan
/// on the blocking pool).
async fn live_files(w: &Worker, rel_dir: &str, n: u64) -> io::Result<Vec<Live>> {
    w.shared.meta.settle().await.map_err(io::Error::other)?;
    let (meta, rel_dir) = (w.shared.meta.clone(), rel_dir.to_string());
    glommio::executor()
        .spawn_blocking(move || meta.merged_in(&rel_dir, n))
        .await
        .map_err(io::Error::other)
}

/// Containers (numbered files) of a directory with their lengths.
fn container_lengths(dir: &std::path::Path) -> io::Result<Vec<(u64, u64)>> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir)? {
        let e = e?;
        let Some(n) = e.file_name().to_str().and_then(|s| s.parse::<u64>().ok()) else {
            continue;
        };
        out.push((n, e.metadata()?.len()));
    }
    out.sort_unstable();
    Ok(out)
}

/// Moves one live file out of container `n`: its size when moved, None when it was gone.
async fn move_one(
    w: &Worker,
    container: &std::path::Path,
    dir: &std::path::Path,
    n: u64,
    md5: String,
    offset: u64,
    size: u64,
) -> io::Result<Option<u64>> {
    let content = match haystack::read(container, offset, size).await {
        Ok(c) => c,
        Err(e) => {
            // Not readable where its record says: nothing to move (check reports it).
            tracing::warn!(md5, cause = %e, "merged file unreadable during compaction");
            return Ok(None);
        }
    };
    let (at, _hold) = w
        .haystack
        .append(
            dir,
            w.id,
            w.shared.workers,
            content,
            haystack::Durability::Synced,
        )
        .await?;
    let moved = w
        .meta()
        .relocate(md5, (n, offset), (at.container, at.offset))
        .await
        .map_err(io::Error::other)?;
    Ok(moved.then_some(size))
}

async fn compact_one(
    w: &Rc<Worker>,
    dir: &std::path::Path,
    n: u64,
    report: &mut Report,
) -> io::Result<()> {
    {
        let dir = dir.to_path_buf();
        glommio::executor()
            .spawn_blocking(move || haystack::retire(&dir, n))
            .await?;
    }
    crate::failpoint::hit("compact.retired");
    w.haystack.seal(n);
    // Uploads whose bytes landed in `n` before the seal are inserting their records: wait
    // for them, then list the files again, so that none is left behind (or unlinked).
    let since = std::time::Instant::now();
    while w.haystack.held(n) > 0 {
        if since.elapsed() > HELD_WAIT_MAX {
            return Err(io::Error::other(format!(
                "uploads into container {n} still pending; kept for the next pass"
            )));
        }
        glommio::timer::sleep(Duration::from_millis(5)).await;
    }
    let rel_dir = haystack::dir_of(&w.config().peer_id);
    let files = live_files(w, &rel_dir, n).await?;
    let container = dir.join(n.to_string());
    // Files move in groups whose appends share one batch (one write, one fdatasync) and whose
    // relocations share a group commit; a pause between groups bounds the I/O.
    let mut moved_since_pause = 0u64;
    for group in files.chunks(GROUP_FILES) {
        let moves = group.iter().cloned().map(|(md5, offset, size)| {
            let (w, container, dir) = (w.clone(), container.clone(), dir.to_path_buf());
            async move { move_one(&w, &container, &dir, n, md5, offset, size).await }
        });
        for moved in crate::sync::futures_join_all(moves).await {
            if let Some(size) = moved? {
                report.files_moved += 1;
                report.bytes_moved += size;
                moved_since_pause += size;
            }
        }
        crate::failpoint::hit("compact.moved");
        if moved_since_pause >= PACE_BYTES {
            moved_since_pause = 0;
            glommio::timer::sleep(PACE_PAUSE).await;
        }
    }
    // Every record that pointed into `n` points elsewhere now (or its file was deleted).
    if !live_files(w, &rel_dir, n).await?.is_empty() {
        return Err(io::Error::other(format!(
            "container {n} still referenced after compaction; kept for the next pass"
        )));
    }
    crate::failpoint::hit("compact.unlinking");
    let dir = dir.to_path_buf();
    glommio::executor()
        .spawn_blocking(move || haystack::remove(&dir, n))
        .await?;
    // Executors that keep the container open close it (its space is freed when the last does).
    w.shared.invalidate_caches();
    Ok(())
}

/// `fastdfs compact` (server stopped): one pass over every container of this node with any
/// dead bytes, on a private executor that owns every shard.
pub fn offline(dir: &std::path::Path, cfg: crate::config::Config) -> Result<Report, String> {
    let _lock = crate::sys::lock_runtime_dir(dir)?;
    let meta = crate::store::meta::Meta::open(dir, cfg.shards, 1).map_err(|e| e.to_string())?;
    let io_memory = cfg.io_memory as usize;
    let shared = std::sync::Arc::new(crate::worker::Shared::new(dir, cfg, meta, 1));
    let ex = glommio::LocalExecutorBuilder::default()
        .io_memory(io_memory)
        .make()
        .map_err(|e| format!("cannot start an executor: {e}"))?;
    ex.run(async move {
        let w = Rc::new(Worker::new(shared.clone(), 0));
        let rx = shared
            .meta
            .take_owned(0)
            .expect("one executor owns every shard");
        glommio::spawn_local(shared.meta.clone().run_committer(0, rx, || {})).detach();
        pass(&w, 0).await.map_err(|e| e.to_string())
    })
}
