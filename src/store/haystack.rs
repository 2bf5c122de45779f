//! Small-file containers ("haystack", `enable_merge_small_file`): uploads below
//! [`SMALL_FILE_BYTES_MAX`] are appended to `files/haystack/<peer_id>/<N>` exactly as
//! go-fastdfs lays them out: a marker byte `'1'`, then the content. The record's `offset` is
//! the marker's position, its `size` the content + 1 and its `rename` the locator
//! `<N>,<offset>,<size>,<ext>`, so the URL is `/group1/haystack/<peer_id>/<N>,<offset>,<size>,<ext>`.
//!
//! Group commit: appends of concurrent uploads on one executor form one batch, written with
//! one `pwrite` (on the blocking pool) and, when one of them asks, made durable with one
//! `fdatasync` before any of them is indexed. Uploads from clients do not ask: their bytes
//! are written to the metadata journal too, whose fdatasync makes them durable, and the
//! container is fdatasynced before those records are committed to LMDB and the journal
//! emptied (`store::meta::journal`). Each executor appends only to its own containers (`N ≡ 100 + id` modulo the
//! executor count), so a container never has two writers.
//!
//! Storage contract: a merged file's bytes are durable (in the container, or in the journal
//! until the container is fdatasynced) before the record pointing at them is acknowledged. A crash in between leaves dead bytes at a container's end: never served (reads go
//! through records, and check the marker) and never overwritten (appends start at the end).

use bytes::Bytes;
use futures_channel::oneshot;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Uploads smaller than this are merged (go-fastdfs' limit).
pub const SMALL_FILE_BYTES_MAX: u64 = 1 << 20;
/// The byte before every merged file's content.
pub const MARKER: u8 = b'1';
/// A container that reaches this size is not appended to any more.
const CONTAINER_BYTES_MAX: u64 = 1 << 32;
/// The first container number (go-fastdfs uses 100..=299).
const CONTAINER_FIRST: u64 = 100;

/// Bytes of small uploads one executor may hold in memory while they are received and merged
/// (or, with merging off, until they are written whole: `write::Gathered`); past it, uploads
/// go to temp files like large ones (merging degrades, memory stays bounded).
pub const MEMORY_BYTES_MAX: u64 = 64 << 20;

/// One executor's budget of memory for small uploads being received.
#[derive(Debug, Default)]
pub struct MemoryBudget {
    held: std::cell::Cell<u64>,
}

impl MemoryBudget {
    /// Reserves `bytes` more for `r`; false (nothing reserved) when the budget is spent.
    pub fn reserve(&self, r: &mut Reservation<'_>, bytes: u64) -> bool {
        assert!(std::ptr::eq(r.budget, self), "a reservation of this budget");
        let held = self.held.get();
        if held + bytes > MEMORY_BYTES_MAX {
            return false;
        }
        self.held.set(held + bytes);
        r.bytes += bytes;
        true
    }

    /// An empty reservation, released (whatever it grew to) when dropped.
    pub fn start(&self) -> Reservation<'_> {
        Reservation {
            budget: self,
            bytes: 0,
        }
    }

    pub fn held(&self) -> u64 {
        self.held.get()
    }
}

/// Memory held for one small upload; given back on drop.
#[derive(Debug)]
pub struct Reservation<'b> {
    budget: &'b MemoryBudget,
    bytes: u64,
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        let held = self.budget.held.get();
        assert!(
            held >= self.bytes,
            "a reservation gives back only its own bytes"
        );
        self.budget.held.set(held - self.bytes);
    }
}

/// Where an append landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Appended {
    /// The container number `N`.
    pub container: u64,
    /// The marker byte's position.
    pub offset: u64,
}

/// The container directory of a node: `files/haystack/<peer_id>` (relative to the runtime dir).
pub fn dir_of(peer_id: &str) -> String {
    format!("files/haystack/{peer_id}")
}

/// Whether `rel` (relative to the runtime dir) lies in the containers' tree, `files/haystack`.
pub fn is_under(rel: &str) -> bool {
    rel.strip_prefix("files/haystack")
        .is_some_and(|r| r.is_empty() || r.starts_with('/'))
}

/// Whether a path in the containers' tree names a merged file (its last segment a locator).
/// Nothing else there is ever served: a container holds every merged file's bytes, deleted
/// ones too until compaction.
pub fn names_a_locator(rel: &str) -> bool {
    is_under(rel) && Locator::parse(rel.rsplit('/').next().unwrap_or("")).is_some()
}

/// The locator of a merged file, its stored name: `<N>,<offset>,<size>,<ext>`.
pub fn locator(at: Appended, size_with_marker: u64, ext: &str) -> String {
    format!("{},{},{size_with_marker},{ext}", at.container, at.offset)
}

/// The container number of a locator (`159,0,13,.txt` -> 159).
pub fn container_of(locator: &str) -> Option<u64> {
    locator.split(',').next()?.parse().ok()
}

/// A parsed locator `<N>,<offset>,<size>[,<ext>...]`: its container, the marker's offset and
/// the size with the marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Locator {
    pub container: u64,
    pub offset: u64,
    pub size: u64,
}

impl Locator {
    pub fn parse(locator: &str) -> Option<Locator> {
        let mut parts = locator.split(',');
        let mut number = || parts.next()?.parse::<u64>().ok();
        Some(Locator {
            container: number()?,
            offset: number()?,
            size: number()?,
        })
    }
}

struct Pending {
    content: Bytes,
    /// Whether the batch must be fdatasynced before this append is answered.
    sync: bool,
    done: oneshot::Sender<io::Result<(Appended, Hold)>>,
}

/// An append whose record is not inserted yet: while it is held, compaction does not
/// conclude that nothing points into its container. Dropped once the record is in the
/// metadata (or the upload failed).
#[must_use = "hold it until the record of the appended bytes is inserted"]
pub struct Hold {
    count: Rc<Cell<usize>>,
}

impl Hold {
    fn new(count: &Rc<Cell<usize>>) -> Hold {
        count.set(count.get() + 1);
        Hold {
            count: count.clone(),
        }
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        debug_assert!(self.count.get() > 0, "held appends are counted");
        self.count.set(self.count.get() - 1);
    }
}

/// Whether an append is durable when answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// fdatasynced with its batch.
    Synced,
    /// Written only: the caller makes the bytes durable another way (the journal) and has
    /// the container fdatasynced before it forgets them.
    Written,
}

#[derive(Default)]
struct State {
    queue: Vec<Pending>,
    /// A batch is being written (its writer takes the next batch when done).
    writing: bool,
    /// The container this executor appends to, and its length.
    current: Option<(u64, u64)>,
    /// The open container `current` names (kept across batches: no open, stat or mkdir per
    /// batch).
    file: Option<(u64, std::sync::Arc<std::fs::File>)>,
    /// Containers compaction took out of use: no batch is placed in them again.
    sealed: HashSet<u64>,
    /// Per container, the appends placed in it whose [`Hold`]s are still alive.
    held: HashMap<u64, Rc<Cell<usize>>>,
}

/// One executor's appender.
#[derive(Default)]
pub struct Appender {
    state: RefCell<State>,
}

impl Appender {
    /// Stops appending to container `n` (retired by compaction): no batch is placed in it
    /// afterwards. Batches placed in it before are counted by [`Appender::held`] until their
    /// callers drop their [`Hold`]s, i.e. until their records are inserted.
    pub fn seal(&self, n: u64) {
        let mut st = self.state.borrow_mut();
        st.sealed.insert(n);
        if st.current.is_some_and(|(c, _)| c == n) {
            st.current = None;
        }
        if st.file.as_ref().is_some_and(|(c, _)| *c == n) {
            st.file = None;
        }
    }

    /// How many appends placed in container `n` are still held (their records not inserted).
    pub fn held(&self, n: u64) -> usize {
        self.state.borrow().held.get(&n).map_or(0, |c| c.get())
    }

    /// Appends `content` (marker first) to this executor's container under `dir`, together
    /// with the appends queued meanwhile, durably or not (`durability`). `id`/`workers`
    /// select the executor's containers.
    pub async fn append(
        &self,
        dir: &Path,
        id: usize,
        workers: usize,
        content: Bytes,
        durability: Durability,
    ) -> io::Result<(Appended, Hold)> {
        assert!(
            (content.len() as u64) < SMALL_FILE_BYTES_MAX,
            "only small files are merged"
        );
        let (done, answer) = oneshot::channel();
        let lead = {
            let mut st = self.state.borrow_mut();
            st.queue.push(Pending {
                content,
                sync: durability == Durability::Synced,
                done,
            });
            !std::mem::replace(&mut st.writing, true)
        };
        if lead {
            // This task writes batches until the queue is empty; later callers only wait.
            loop {
                let batch = std::mem::take(&mut self.state.borrow_mut().queue);
                if batch.is_empty() {
                    self.state.borrow_mut().writing = false;
                    break;
                }
                self.write_batch(dir, id, workers, batch).await;
            }
        }
        answer
            .await
            .unwrap_or_else(|_| Err(io::Error::other("haystack writer stopped")))
    }

    async fn write_batch(&self, dir: &Path, id: usize, workers: usize, batch: Vec<Pending>) {
        let bytes: u64 = batch.iter().map(|p| p.content.len() as u64 + 1).sum();
        let sync = batch.iter().any(|p| p.sync);
        let mut skip = None;
        let (n, start) = loop {
            let current = self.state.borrow().current;
            let placed = match current {
                Some((n, len)) if len + bytes <= CONTAINER_BYTES_MAX => Ok((n, len)),
                _ => {
                    let dir = dir.to_path_buf();
                    let after = current.map(|(n, _)| n).max(skip);
                    glommio::executor()
                        .spawn_blocking(move || pick_container(&dir, id, workers, after, bytes))
                        .await
                }
            };
            match placed {
                // Sealed while it was being picked: pick again, past it.
                Ok((n, _)) if self.state.borrow().sealed.contains(&n) => skip = Some(n),
                Ok(p) => break p,
                Err(e) => return fail(batch, e),
            }
        };
        // Counted now, in the same step as the placement: a compaction that seals `n` from
        // here on waits for these appends' records.
        let holds: Vec<Hold> = {
            let mut st = self.state.borrow_mut();
            st.held.retain(|&c, count| c == n || count.get() > 0);
            let count = st.held.entry(n).or_default().clone();
            batch.iter().map(|_| Hold::new(&count)).collect()
        };
        let mut buf = Vec::with_capacity(bytes as usize);
        let mut offsets = Vec::with_capacity(batch.len());
        for p in &batch {
            offsets.push(start + buf.len() as u64);
            buf.push(MARKER);
            buf.extend_from_slice(&p.content);
        }
        let path = dir.join(n.to_string());
        let open = self.state.borrow().file.clone();
        let open = open.filter(|(m, _)| *m == n).map(|(_, f)| f);
        let written = glommio::executor()
            .spawn_blocking(move || write_container_in(&path, open, start, &buf, sync))
            .await;
        match written {
            Ok(file) => {
                let mut st = self.state.borrow_mut();
                // A container sealed meanwhile takes no further batch.
                if !st.sealed.contains(&n) {
                    st.current = Some((n, start + bytes));
                    st.file = Some((n, file));
                }
                drop(st);
                for ((p, offset), hold) in batch.into_iter().zip(offsets).zip(holds) {
                    let at = Appended {
                        container: n,
                        offset,
                    };
                    // An append whose caller is gone drops its hold with the message.
                    let _ = p.done.send(Ok((at, hold)));
                }
            }
            Err(e) => {
                // The length on disk is unknown now: look again before the next append.
                let mut st = self.state.borrow_mut();
                st.current = None;
                st.file = None;
                drop(st);
                fail(batch, e)
            }
        }
    }
}

fn fail(batch: Vec<Pending>, e: io::Error) {
    for p in batch {
        let _ = p.done.send(Err(io::Error::new(e.kind(), e.to_string())));
    }
}

/// Blocking: the first of this executor's containers (`100 + id + k·workers`, after `after`)
/// with room for `bytes`, and its current length.
fn pick_container(
    dir: &Path,
    id: usize,
    workers: usize,
    after: Option<u64>,
    bytes: u64,
) -> io::Result<(u64, u64)> {
    let step = workers.max(1) as u64;
    let mut n = CONTAINER_FIRST + id as u64;
    if let Some(a) = after {
        while n <= a {
            n += step;
        }
    }
    loop {
        if is_retired(dir, n) {
            n += step;
            continue;
        }
        let len = match std::fs::metadata(dir.join(n.to_string())) {
            Ok(m) => m.len(),
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if len + bytes <= CONTAINER_BYTES_MAX {
            return Ok((n, len));
        }
        n += step;
    }
}

/// The marker of a container number compaction took out of use (never appended to or reused:
/// a reused number would give an old URL to a new file).
fn retired_marker(dir: &Path, n: u64) -> PathBuf {
    dir.join(format!("{n}.retired"))
}

/// Whether compaction took container `n` out of use.
pub fn is_retired(dir: &Path, n: u64) -> bool {
    retired_marker(dir, n).exists()
}

/// Blocking: takes container `n` out of use for good (the marker is durable before any byte
/// moves out of it).
pub fn retire(dir: &Path, n: u64) -> io::Result<()> {
    std::fs::File::create(retired_marker(dir, n))?.sync_all()?;
    std::fs::File::open(dir)?.sync_all()
}

/// Blocking: removes a retired container once nothing points into it.
pub fn remove(dir: &Path, n: u64) -> io::Result<()> {
    assert!(is_retired(dir, n), "only a retired container is removed");
    match std::fs::remove_file(dir.join(n.to_string())) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    std::fs::File::open(dir)?.sync_all()
}

/// Blocking: writes `buf` at `start` and, with `sync`, fdatasyncs; a new container's
/// directory entries (and new directories up to `files/`) are fsynced in any case (the
/// container's later fdatasync does not cover them).
fn write_container(path: &Path, start: u64, buf: &[u8], sync: bool) -> io::Result<()> {
    write_container_in(path, None, start, buf, sync).map(drop)
}

/// As [`write_container`], through `open` when the container is open already; returns the
/// open container.
fn write_container_in(
    path: &Path,
    open: Option<std::sync::Arc<std::fs::File>>,
    start: u64,
    buf: &[u8],
    sync: bool,
) -> io::Result<std::sync::Arc<std::fs::File>> {
    use std::os::unix::fs::FileExt;
    let f = match open {
        Some(f) => f,
        None => std::sync::Arc::new(open_container(path)?),
    };
    f.write_all_at(buf, start)?;
    crate::failpoint::hit("haystack.written");
    if sync {
        f.sync_data()?;
        crate::failpoint::hit("haystack.synced");
    } else {
        start_writeback(&f, start, buf.len() as u64);
    }
    Ok(f)
}

/// Blocking: opens (creating) a container; a new one's directory entries (and new
/// directories up to `files/`) are fsynced (no later fdatasync of the container covers them).
fn open_container(path: &Path) -> io::Result<std::fs::File> {
    let dir = path.parent().expect("a container has a directory");
    let mut new_dirs: Vec<PathBuf> = Vec::new();
    let mut at = dir;
    while !at.exists() {
        new_dirs.push(at.to_path_buf());
        at = at.parent().expect("under the runtime dir");
    }
    std::fs::create_dir_all(dir)?;
    let (f, created) = crate::store::open_durably(path)?;
    if created {
        for d in &new_dirs {
            std::fs::File::open(d.parent().expect("a parent"))?.sync_all()?;
        }
    }
    Ok(f)
}

/// Blocking: writes a merged file (marker, then `content`) at `offset` of `container` (a
/// peer's file at the origin's place, or a journaled one being replayed), fdatasynced with
/// `sync` (a new container's entry always).
pub fn write_at(container: &Path, offset: u64, content: &[u8], sync: bool) -> io::Result<()> {
    let mut buf = Vec::with_capacity(content.len() + 1);
    buf.push(MARKER);
    buf.extend_from_slice(content);
    write_container(container, offset, &buf, sync)
}

/// Starts writing `len` bytes at `start` back to the disk without waiting for them, so that
/// the container's fdatasync at the journal's drain finds little left to write (a drain that
/// flushed megabytes at once held every journal fdatasync behind it). Advisory: an error
/// only means the later fdatasync has more to do.
fn start_writeback(f: &std::fs::File, start: u64, len: u64) {
    use std::os::fd::AsRawFd;
    // SAFETY: sync_file_range only reads the descriptor and the range.
    unsafe {
        libc::sync_file_range(
            f.as_raw_fd(),
            start as libc::off64_t,
            len as libc::off64_t,
            libc::SYNC_FILE_RANGE_WRITE,
        );
    }
}

/// Blocking: fdatasyncs a container (its appends were `Durability::Written`).
pub fn sync(container: &Path) -> io::Result<()> {
    std::fs::File::open(container)?.sync_data()
}

/// Blocking: a merged file's content from its container, None when the container is shorter
/// or the marker is not there.
pub fn read_blocking(container: &Path, offset: u64, size: u64) -> io::Result<Option<Vec<u8>>> {
    use std::os::unix::fs::FileExt;
    if size == 0 || size > SMALL_FILE_BYTES_MAX {
        return Ok(None);
    }
    let f = std::fs::File::open(container)?;
    let mut buf = vec![0u8; size as usize];
    match f.read_exact_at(&mut buf, offset) {
        Ok(()) if buf[0] == MARKER => Ok(Some(buf.split_off(1))),
        Ok(()) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Reads a merged file's content from its container: the `size` bytes at `offset` must start
/// with the marker (checked: a record pointing at anything else is refused).
pub async fn read(container: &Path, offset: u64, size: u64) -> io::Result<Bytes> {
    let file = glommio::io::BufferedFile::open(container)
        .await
        .map_err(io::Error::from)?;
    let got = read_from(&file, offset, size).await;
    let _ = file.close().await;
    got
}

/// As [`read`], from a container that is open already (the download path keeps containers
/// open, as it keeps plain files open).
pub async fn read_from(
    file: &glommio::io::BufferedFile,
    offset: u64,
    size: u64,
) -> io::Result<Bytes> {
    if size == 0 || size > SMALL_FILE_BYTES_MAX {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "merged size out of range",
        ));
    }
    crate::failpoint::io("read.eio")?;
    let mut out = Vec::with_capacity(size as usize);
    while (out.len() as u64) < size {
        let got = file
            .read_at(
                offset + out.len() as u64,
                (size - out.len() as u64) as usize,
            )
            .await
            .map_err(io::Error::from)?;
        if got.is_empty() {
            break;
        }
        out.extend_from_slice(&got);
    }
    if out.len() as u64 != size || out.first() != Some(&MARKER) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "merged file missing from its container (no marker)",
        ));
    }
    Ok(Bytes::from(out).slice(1..))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_locators_are_served_from_the_containers_tree() {
        assert!(names_a_locator("files/haystack/1/100,0,16,.txt"));
        assert!(names_a_locator("files/haystack/1/100,7,16,"));
        for raw in [
            "files/haystack",
            "files/haystack/1",
            "files/haystack/1/100",
            "files/haystack/1/100.retired",
            "files/haystack/1/100,x,16,.txt",
        ] {
            assert!(is_under(raw) && !names_a_locator(raw), "{raw}");
        }
        assert!(!is_under("files/haystacks/1/100"));
        assert!(!is_under("files/default/haystack/1/100"));
    }

    #[test]
    fn small_uploads_held_in_memory_are_bounded_per_executor() {
        let budget = MemoryBudget::default();
        let mut a = budget.start();
        assert!(budget.reserve(&mut a, MEMORY_BYTES_MAX - 10));
        let mut b = budget.start();
        assert!(
            !budget.reserve(&mut b, 11),
            "over the budget: spill to disk instead"
        );
        assert!(budget.reserve(&mut b, 10));
        drop(a);
        assert_eq!(budget.held(), 10, "a finished upload gives its memory back");
        drop(b);
        assert_eq!(budget.held(), 0);
    }

    #[test]
    fn locators_are_go_fastdfs_ones() {
        let at = Appended {
            container: 159,
            offset: 0,
        };
        assert_eq!(locator(at, 13, ".txt"), "159,0,13,.txt");
        assert_eq!(locator(at, 5, ""), "159,0,5,");
        assert_eq!(container_of("159,0,13,.txt"), Some(159));
        assert_eq!(container_of("x,0"), None);
        let l = Locator::parse("159,7,13,.txt").unwrap();
        assert_eq!((l.container, l.offset, l.size), (159, 7, 13));
        assert_eq!(Locator::parse("159,7"), None);
    }

    /// Runs `test` on an executor of its own, given a container directory.
    fn with_containers<F: std::future::Future<Output = ()> + 'static>(
        test: impl FnOnce(PathBuf) -> F,
    ) {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().join("files/haystack/1");
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .unwrap();
        ex.run(test(dir));
    }

    #[test]
    fn a_sealed_container_takes_no_batch_and_held_appends_count_until_dropped() {
        with_containers(|dir| async move {
            let app = Rc::new(Appender::default());
            let w = Durability::Written;
            let put = |text: &'static str| {
                let (app, dir) = (app.clone(), dir.clone());
                async move {
                    app.append(&dir, 0, 1, Bytes::from_static(text.as_bytes()), w)
                        .await
                }
            };
            let (a, hold_a) = put("one").await.unwrap();
            assert_eq!((a.container, app.held(100)), (100, 1));
            // Compaction seals 100 while the upload that landed there has not inserted its
            // record: it is still counted, and nothing else lands in 100.
            app.seal(100);
            assert_eq!(app.held(100), 1);
            let (b, hold_b) = put("two").await.unwrap();
            assert_eq!(
                b.container, 101,
                "a sealed container takes no batch, room or not"
            );
            drop(hold_a);
            assert_eq!(app.held(100), 0, "the record is in: compaction may go on");
            assert_eq!(app.held(101), 1);
            drop(hold_b);
            // Sealed while another append is on its way: either it was placed in 101 before
            // the seal, and is counted there, or it goes past every sealed container.
            let queued = glommio::spawn_local(put("three"));
            app.seal(101);
            let counted_at_seal = app.held(101);
            let (c, hold_c) = queued.await.unwrap();
            assert!(
                c.container == 102 || (c.container == 101 && counted_at_seal == 1),
                "{} (counted at the seal: {counted_at_seal})",
                c.container
            );
            assert_eq!(app.held(c.container), 1);
            drop(hold_c);
            assert_eq!(app.held(c.container), 0);
            // Whatever was in flight, the next batch goes past 101.
            let (d, _hold_d) = put("four").await.unwrap();
            assert_eq!(d.container, 102);
        });
    }

    #[test]
    fn concurrent_appends_share_a_batch_and_read_back() {
        with_containers(|dir| async move {
            let app = std::rc::Rc::new(Appender::default());
            let tasks: Vec<_> = (0..20u8)
                .map(|i| {
                    let (app, dir) = (app.clone(), dir.clone());
                    glommio::spawn_local(async move {
                        let content = Bytes::from(vec![i; 10 + i as usize]);
                        let d = Durability::Synced;
                        (i, app.append(&dir, 0, 2, content, d).await.unwrap().0)
                    })
                })
                .collect();
            let mut got = Vec::new();
            for t in tasks {
                got.push(t.await);
            }
            let mut offsets: Vec<u64> = got.iter().map(|(_, a)| a.offset).collect();
            offsets.sort();
            offsets.dedup();
            assert_eq!(offsets.len(), 20, "no two appends share bytes");
            for (i, at) in got {
                assert_eq!(at.container, 100, "executor 0 of 2 appends to 100");
                let size = 10 + i as u64 + 1;
                let back = read(&dir.join("100"), at.offset, size).await.unwrap();
                assert_eq!(&back[..], &vec![i; 10 + i as usize][..]);
                // A wrong offset is refused, not served.
                if at.offset > 0 {
                    assert!(read(&dir.join("100"), at.offset + 1, size).await.is_err());
                }
            }
        });
    }
}
