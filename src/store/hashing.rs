//! The MD5 digests of an executor's concurrent writes, computed together. A write gathers
//! its bytes in a [`Buffer`] before they go to the disk; once a buffer holds
//! [`BATCH_BYTES_MIN`] bytes not yet hashed it is queued, and one task hashes every queued
//! buffer in one pass of `md5x::update_many` (up to sixteen streams in the lanes of one vector
//! register). The writer of a queued buffer waits for that pass ([`Buffer::hashed`]). The
//! task runs in a task queue of low shares, so it runs when the executor's other tasks wait
//! (on their sockets, or for it), or at the latest when the preemption timer expires. Before a
//! pass it also waits, at most [`GATHER_MAX`], until as many buffers are queued as the last
//! pass took: the buffers of the uploads being received gather meanwhile, and a writer that
//! stopped, or a slow one, is not waited for twice. A buffer taken for its write, or finished,
//! hashes what is left itself.
//!
//! A lone writer (fewer than [`crate::md5x::LANES_MIN`] alive: no lanes to share) on an
//! executor whose process has a core no executor runs on ([`offload_lone_writers`]) hashes
//! beside the executor instead: what it has gathered is copied out into its [`Relay`] (bytes
//! it was given shared, a peer's response body, go there as they are:
//! [`Buffer::extend_shared`]) and hashed on the blocking pool while it receives the next
//! bytes. One job hashes the relay's
//! chunks in order for as long as there are any, so the hash never waits for the executor to
//! hand over the next chunk (handing over per chunk, through the executor, left the hash idle
//! a quarter of the time: 170-420 µs between 1 MiB jobs). A single large upload or
//! replicated file is then bounded by the slower of receiving and hashing, not by their sum.
//! The writer waits only while more than [`BACKLOG_BYTES_MAX`] wait for the hash when its
//! buffer is taken ([`Buffer::settle`]); the job wakes it (from its thread) as soon as they
//! are fewer.

use crate::md5x::Md5;
use crate::sys::MappedBytes;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// A buffer is queued once it holds this many bytes not hashed yet; smaller writes are
/// hashed by their owner when the buffer is taken.
pub const BATCH_BYTES_MIN: usize = 32 << 10;
/// A buffer taken for its write with at least this many bytes not hashed has them hashed in
/// a pass first ([`Buffer::settle`]).
pub const SETTLE_BYTES_MIN: usize = 4 << 10;
/// At most this many bytes of one buffer are hashed per pass (as many as a buffer is queued
/// with: the lanes of a pass then run out together); the task yields between
/// passes when the executor asks.
const PASS_BYTES_MAX: usize = 32 << 10;
/// The longest a pass waits for more writers' buffers.
const GATHER_MAX: std::time::Duration = std::time::Duration::from_micros(400);
/// Bytes of a lone writer that may wait in its relay when its buffer is taken (more, and the
/// writer waits): the hash always has the next chunk queued, and a writer that receives
/// faster than the pool hashes holds at most this and one buffer in copies.
pub const BACKLOG_BYTES_MAX: usize = 2 << 20;
/// Shared bytes queued as they are in a lone writer's relay from this size on; smaller ones
/// are gathered and copied with the bytes around them (a job and a lock per few bytes would
/// cost more than the copy).
const SHARED_BYTES_MIN: usize = BATCH_BYTES_MIN;
/// The batch task's shares against the default queue's 1,000.
const SHARES: usize = 100;

/// A buffer's memory: the heap, or DMA memory (aligned, for direct writes) filled up to
/// `len`.
pub enum Memory {
    Heap(Vec<u8>),
    Dma { buf: super::dma::Pooled, len: usize },
}

impl Default for Memory {
    fn default() -> Memory {
        Memory::Heap(Vec::new())
    }
}

impl Memory {
    /// The bytes held.
    pub fn bytes(&self) -> &[u8] {
        match self {
            Memory::Heap(v) => v,
            Memory::Dma { buf, len } => &buf.as_bytes()[..*len],
        }
    }

    pub fn len(&self) -> usize {
        match self {
            Memory::Heap(v) => v.len(),
            Memory::Dma { len, .. } => *len,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bytes it holds without growing (DMA memory never grows).
    pub fn capacity(&self) -> usize {
        match self {
            Memory::Heap(v) => v.capacity(),
            Memory::Dma { buf, .. } => buf.len(),
        }
    }

    pub fn truncate(&mut self, n: usize) {
        match self {
            Memory::Heap(v) => v.truncate(n),
            Memory::Dma { len, .. } => *len = (*len).min(n),
        }
    }

    fn extend(&mut self, bytes: &[u8]) {
        match self {
            Memory::Heap(v) => v.extend_from_slice(bytes),
            Memory::Dma { buf, len } => {
                assert!(*len + bytes.len() <= buf.len(), "DMA memory does not grow");
                buf.as_bytes_mut()[*len..*len + bytes.len()].copy_from_slice(bytes);
                *len += bytes.len();
            }
        }
    }
}

impl crate::http::conn::Room for Memory {
    fn room(&mut self, want: usize) -> &mut [std::mem::MaybeUninit<u8>] {
        match self {
            Memory::Heap(v) => v.room(want),
            Memory::Dma { buf, len } => {
                assert!(*len + want <= buf.len(), "DMA memory does not grow");
                let room = &mut buf.as_bytes_mut()[*len..*len + want];
                // SAFETY: the same memory seen as possibly uninitialised bytes; only
                // initialised bytes are ever written through it.
                unsafe { std::slice::from_raw_parts_mut(room.as_mut_ptr().cast(), room.len()) }
            }
        }
    }

    unsafe fn grow(&mut self, n: usize) {
        match self {
            // SAFETY: the caller wrote the first `n` bytes of the last room.
            Memory::Heap(v) => unsafe { v.grow(n) },
            Memory::Dma { buf, len } => {
                assert!(*len + n <= buf.len());
                *len += n;
            }
        }
    }

    fn put(&mut self, bytes: &[u8]) {
        self.extend(bytes)
    }
}

/// Where a buffer's next memory comes from.
enum Fresh {
    Heap,
    /// DMA memory for the file written (`store::dma`).
    Dma(Box<dyn Fn(usize) -> Option<super::dma::Pooled>>),
}

struct Inner {
    /// Allocated at `capacity` when the first byte comes (a buffer taken for its write is
    /// not replaced until then: an upload's last write leaves no unused buffer behind).
    data: Memory,
    capacity: usize,
    fresh: Fresh,
    md5: Option<Md5>,
    /// `data[..hashed]` is in `md5`.
    hashed: usize,
    queued: bool,
    /// The writer waiting for the pass that takes this buffer.
    waiter: Option<Waker>,
    /// Counted in `WRITERS` (made with an md5; `into_md5` takes the md5 out).
    counted: bool,
    /// The md5 is in the relay, hashing the bytes before `data[hashed..]` (`offload`); `md5`
    /// is None until the relay's job has ended and the buffer has taken it back (`reclaim`).
    inflight: bool,
    /// Where a lone writer's bytes are hashed beside the executor (made at its first offload).
    relay: Option<std::sync::Arc<Relay>>,
    /// `data` is lent ([`Buffer::lend`]): the bytes before `hashed` are out there.
    lent: bool,
}

impl Inner {
    /// Not queued, with an md5, and [`BATCH_BYTES_MIN`] bytes not hashed yet.
    fn due(&self) -> bool {
        self.md5.is_some()
            && !self.queued
            && !self.inflight
            && !self.lent
            && self.data.len() - self.hashed >= BATCH_BYTES_MIN
    }

    fn catch_up(&mut self) {
        assert!(
            !self.inflight,
            "caught up while the md5 is beside the executor"
        );
        if let Some(md5) = self.md5.as_mut() {
            md5.update(&self.data.bytes()[self.hashed..]);
        }
        self.hashed = self.data.len();
    }

    /// Memory of `capacity` bytes, if the buffer has none (or heap memory that is too small
    /// for `more`).
    fn ready(&mut self, more: usize) {
        if self.data.capacity() != 0 {
            return;
        }
        debug_assert!(self.data.is_empty());
        self.data = match &self.fresh {
            Fresh::Dma(alloc) if more <= self.capacity => match alloc(self.capacity) {
                Some(buf) => Memory::Dma { buf, len: 0 },
                None => Memory::Heap(Vec::with_capacity(self.capacity)),
            },
            _ => Memory::Heap(Vec::with_capacity(self.capacity.max(more))),
        };
    }
}

/// Bytes gathered for a write, and (when made with an md5) their digest so far.
pub struct Buffer(Rc<RefCell<Inner>>);

#[derive(Default)]
struct Queue {
    buffers: Vec<Weak<RefCell<Inner>>>,
    /// Buffers in the last pass: how many the next one waits for (writers that have just
    /// queued are likely to queue again; a slow writer, or one that ended, is not waited for
    /// twice).
    last_pass: usize,
    scheduled: bool,
    tasks: Option<glommio::TaskQueueHandle>,
    /// The batch task waiting in `gather` for a lone writer: woken by each buffer queued.
    gatherer: Option<Waker>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
    /// Buffers that compute an md5 and are alive: the executor's writers.
    static WRITERS: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    /// Memory of jobs beside the executor, for the next ones (`chunk_memory`).
    static CHUNKS: RefCell<Vec<MappedBytes>> = const { RefCell::new(Vec::new()) };
    /// Lone writers hash on the blocking pool (`offload_lone_writers`).
    static OFFLOAD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Whether this executor's lone writers hash beside it, on the blocking pool: worth it only
/// where a core runs no executor or another executor's core idles (else the pool takes an
/// executor's time, and the copy out and the hand-over cost more than they save). Set at the
/// executor's start, then every 100 ms where the executors have no spare core
/// (`server::idle_cores`).
pub fn offload_lone_writers(on: bool) {
    OFFLOAD.set(on);
}

/// The executor's writers are too few to share the lanes (one or two large uploads or
/// replicated files at a time).
pub fn few_writers() -> bool {
    WRITERS.get() < crate::md5x::LANES_MIN
}

/// The executor's writers are too few to share the lanes and may hash beside it.
fn lone() -> bool {
    OFFLOAD.get() && few_writers()
}

/// The hashing of a lone writer's bytes beside the executor: copies of its bytes queue here
/// in order, and one job on the blocking pool hashes them for as long as any are queued.
#[derive(Default)]
struct Relay(std::sync::Mutex<RelayState>);

/// Bytes of a writer queued in its relay.
enum Chunk {
    /// A copy of the bytes gathered in the writer's buffer.
    Copy(MappedBytes),
    /// Bytes the writer was given shared ([`Buffer::extend_shared`]): no copy.
    Shared(bytes::Bytes),
}

impl Chunk {
    fn bytes(&self) -> &[u8] {
        match self {
            Chunk::Copy(v) => v,
            Chunk::Shared(b) => b,
        }
    }
}

#[derive(Default)]
struct RelayState {
    /// The writer's bytes, in order, not hashed yet.
    chunks: std::collections::VecDeque<Chunk>,
    /// Bytes queued or being hashed.
    waiting: usize,
    /// The writer's md5 while it is out of the buffer and no job hashes with it.
    md5: Option<Md5>,
    /// A job is on the pool (it ends when it finds no chunk).
    running: bool,
    /// Memory of hashed chunks, for the next copies.
    spent: Vec<MappedBytes>,
    /// The writer waiting for `waiting` to fall ([`Buffer::settle`]).
    waker: Option<Waker>,
}

impl Relay {
    fn state(&self) -> std::sync::MutexGuard<'_, RelayState> {
        // A job that panicked left a consistent queue (it panics only in md5, never mid-edit).
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Spent chunks a relay keeps for the executor to reuse: as many as can be out at once (the
/// backlog and a buffer), so that no copy goes to fresh memory, whose first touch costs more
/// than the copy itself where a virtual machine's freed memory went back to its host.
const RELAY_SPENT_KEPT: usize = 4;

/// Blocking: hashes the relay's chunks in order until none is queued, then leaves the md5 in
/// the relay and wakes the writer. Off the executor's CPU (`executor_cpu`): on it, the hash
/// would take turns with the receive it is meant to run beside (a pool thread woken by the
/// executor is placed next to it).
fn hash_relayed(relay: &Relay, executor_cpu: Option<usize>) {
    if let Some(cpu) = executor_cpu {
        crate::sys::avoid_cpu(cpu);
    }
    let mut md5 = relay.state().md5.take().expect("a job starts with the md5");
    loop {
        let chunk = {
            let mut st = relay.state();
            match st.chunks.pop_front() {
                Some(c) => c,
                None => {
                    st.md5 = Some(md5);
                    st.running = false;
                    let waker = st.waker.take();
                    drop(st);
                    if let Some(w) = waker {
                        w.wake();
                    }
                    return;
                }
            }
        };
        md5.update(chunk.bytes());
        let n = chunk.bytes().len();
        let mut st = relay.state();
        st.waiting -= n;
        if let Chunk::Copy(mut v) = chunk {
            if st.spent.len() < RELAY_SPENT_KEPT {
                v.clear();
                st.spent.push(v);
            }
        }
        let waker = if st.waiting <= BACKLOG_BYTES_MAX {
            st.waker.take()
        } else {
            None
        };
        drop(st);
        if let Some(w) = waker {
            w.wake();
        }
    }
}

/// Queues the bytes of `b` not hashed yet (none while they are lent) in its relay, the md5
/// with them, and starts the relay's job unless it runs. `shared`: the buffer's last bytes,
/// queued as given; the bytes before them are copied.
fn offload(
    rc: &Rc<RefCell<Inner>>,
    mut b: std::cell::RefMut<'_, Inner>,
    shared: Option<bytes::Bytes>,
) {
    let relay = b.relay.get_or_insert_with(Default::default).clone();
    let mut chunk = relay.state().spent.pop().unwrap_or_else(chunk_memory);
    if !b.lent {
        let (hashed, copied) = (
            b.hashed,
            b.data.len() - shared.as_ref().map_or(0, |s| s.len()),
        );
        chunk.extend_from_slice(&b.data.bytes()[hashed..copied]);
        b.hashed = b.data.len();
    }
    let start = {
        let mut st = relay.state();
        if !b.inflight {
            st.md5 = Some(b.md5.take().expect("a buffer to hash has an md5"));
            b.inflight = true;
        }
        if chunk.is_empty() {
            give_back(chunk);
        } else {
            st.waiting += chunk.len();
            st.chunks.push_back(Chunk::Copy(chunk));
        }
        if let Some(shared) = shared {
            st.waiting += shared.len();
            st.chunks.push_back(Chunk::Shared(shared));
        }
        let start = !st.running && !st.chunks.is_empty();
        st.running |= start;
        start
    };
    drop(b);
    if !start {
        return;
    }
    let weak = Rc::downgrade(rc);
    let cpu = crate::sys::current_cpu();
    glommio::spawn_local(async move {
        let job = relay.clone();
        glommio::executor()
            .spawn_blocking(move || hash_relayed(&job, cpu))
            .await;
        // A writer dropped meanwhile (a client gone) has nothing left to do.
        let Some(rc) = weak.upgrade() else { return };
        let mut b = rc.borrow_mut();
        reclaim(&mut b);
        // The writer may wait for the end (`hashed`): it looks again.
        if let Some(w) = b.waiter.take() {
            w.wake();
        }
        if b.due() && lone() {
            offload(&rc, b, None);
        }
    })
    .detach();
}

/// Takes the md5 back from the relay once its job has ended with nothing queued.
fn reclaim(b: &mut Inner) {
    if !b.inflight {
        return;
    }
    let relay = b.relay.clone().expect("an md5 out is in the relay");
    let mut st = relay.state();
    if st.running || !st.chunks.is_empty() {
        return;
    }
    b.md5 = Some(st.md5.take().expect("an ended job leaves the md5"));
    b.inflight = false;
    for c in st.spent.drain(..) {
        give_back(c);
    }
}

impl Drop for Inner {
    fn drop(&mut self) {
        if self.counted {
            WRITERS.with(|w| w.set(w.get() - 1));
        }
    }
}

/// Memory for a copy of a lone writer's bytes (a buffer's rest: at most a write buffer,
/// `store::write`'s 1 MiB, as a rule). Mapped apart from the executor's arena
/// ([`MappedBytes`]): carved from the arena, whose top the allocator keeps padded, the
/// chunks of two 1 GiB parts received at once moved through it and left it 47 MiB resident
/// with 30 MiB live (a size at the allocator's mmap threshold did not keep them out: the
/// padded top served them first). Kept per executor ([`CHUNKS_KEPT`]).
const CHUNK_BYTES: usize = 1 << 20;
const CHUNKS_KEPT: usize = 4;

fn chunk_memory() -> MappedBytes {
    CHUNKS
        .with(|c| c.borrow_mut().pop())
        .unwrap_or_else(|| MappedBytes::with_capacity(CHUNK_BYTES))
}

fn give_back(mut chunk: MappedBytes) {
    if chunk.capacity() != CHUNK_BYTES {
        return; // none, or grown past the size kept
    }
    chunk.clear();
    CHUNKS.with(|c| {
        let mut c = c.borrow_mut();
        if c.len() < CHUNKS_KEPT {
            c.push(chunk);
        }
    });
}

impl Buffer {
    pub fn new(capacity: usize, md5: Option<Md5>) -> Buffer {
        Buffer::with(capacity, md5, Fresh::Heap)
    }

    /// A buffer in DMA memory from `alloc` (None: heap memory, which the direct writer
    /// copies).
    pub fn dma(
        capacity: usize,
        md5: Option<Md5>,
        alloc: impl Fn(usize) -> Option<super::dma::Pooled> + 'static,
    ) -> Buffer {
        Buffer::with(capacity, md5, Fresh::Dma(Box::new(alloc)))
    }

    fn with(capacity: usize, md5: Option<Md5>, fresh: Fresh) -> Buffer {
        let counted = md5.is_some();
        if counted {
            WRITERS.with(|w| w.set(w.get() + 1));
        }
        Buffer(Rc::new(RefCell::new(Inner {
            data: Memory::default(),
            capacity,
            fresh,
            md5,
            counted,
            hashed: 0,
            queued: false,
            waiter: None,
            inflight: false,
            relay: None,
            lent: false,
        })))
    }

    pub fn len(&self) -> usize {
        self.0.borrow().data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `bytes`; true when the buffer is now queued for a pass, which the writer
    /// should then wait for ([`Buffer::hashed`]).
    pub fn extend(&self, bytes: &[u8]) -> bool {
        let mut b = self.0.borrow_mut();
        b.ready(bytes.len());
        b.data.extend(bytes);
        self.queue_if_due(b)
    }

    /// `extend`, for bytes the caller holds shared (a peer's response body): a lone writer
    /// hashing beside the executor queues them in its relay as they are, where `extend`
    /// would copy them a second time.
    pub fn extend_shared(&self, bytes: &bytes::Bytes) -> bool {
        let mut b = self.0.borrow_mut();
        b.ready(bytes.len());
        b.data.extend(bytes);
        let hashing = b.md5.is_some() || b.inflight;
        if hashing && !b.queued && !b.lent && bytes.len() >= SHARED_BYTES_MIN && lone() {
            offload(&self.0, b, Some(bytes.clone()));
            return false;
        }
        self.queue_if_due(b)
    }

    /// Queues the buffer for a pass if it holds [`BATCH_BYTES_MIN`] bytes not hashed yet;
    /// true when it did. A lone writer's bytes are hashed beside the executor instead
    /// (`offload`), which it does not wait for: false.
    fn queue_if_due(&self, mut b: std::cell::RefMut<'_, Inner>) -> bool {
        if !b.due() {
            return false;
        }
        if lone() {
            offload(&self.0, b, None);
            return false;
        }
        b.queued = true;
        drop(b);
        queue(Rc::downgrade(&self.0));
        true
    }

    /// The bytes gathered, lent out so that more can be received straight into them (with
    /// room up to the buffer's capacity); the buffer is empty until [`Buffer::restore`]. A
    /// queued buffer is not lent (its writer waits for the pass first).
    pub fn lend(&self) -> Memory {
        let mut b = self.0.borrow_mut();
        assert!(!b.queued, "a buffer queued for a pass is lent");
        b.ready(0);
        let capacity = b.capacity;
        let mut data = std::mem::take(&mut b.data);
        if let Memory::Heap(v) = &mut data {
            v.reserve_exact(capacity.saturating_sub(v.len()));
        }
        b.lent = true;
        data
    }

    /// Takes back what [`Buffer::lend`] gave, with bytes appended; like `extend`, true when
    /// the buffer is now queued for a pass.
    pub fn restore(&self, data: Memory) -> bool {
        let mut b = self.0.borrow_mut();
        assert!(
            b.lent && b.data.is_empty() && data.len() >= b.hashed,
            "restored a buffer not lent"
        );
        b.data = data;
        b.lent = false;
        self.queue_if_due(b)
    }

    /// Hashes what is left in the next pass, with the other writers' bytes, rather than
    /// alone when the buffer is taken (a write, the end): at least [`SETTLE_BYTES_MIN`] left.
    /// Beside the executor (a lone writer), `take` queues the rest in the relay instead;
    /// this waits only while the bytes waiting there exceed [`BACKLOG_BYTES_MAX`] (a writer
    /// that receives faster than the pool hashes is held back to the hash's pace).
    pub async fn settle(&self) {
        if lone() {
            return std::future::poll_fn(|cx| {
                let mut b = self.0.borrow_mut();
                reclaim(&mut b);
                if !b.inflight {
                    return Poll::Ready(());
                }
                let relay = b.relay.clone().expect("an md5 out is in the relay");
                let mut st = relay.state();
                if st.waiting <= BACKLOG_BYTES_MAX {
                    return Poll::Ready(());
                }
                st.waker = Some(cx.waker().clone());
                Poll::Pending
            })
            .await;
        }
        loop {
            self.hashed().await;
            {
                let mut b = self.0.borrow_mut();
                if b.md5.is_none() || b.data.len() - b.hashed < SETTLE_BYTES_MIN {
                    return;
                }
                b.queued = true;
            }
            queue(Rc::downgrade(&self.0));
        }
    }

    /// Waits until the buffer is neither queued for a pass nor being hashed beside the
    /// executor.
    pub async fn hashed(&self) {
        std::future::poll_fn(|cx| {
            let mut b = self.0.borrow_mut();
            reclaim(&mut b);
            if !b.queued && !b.inflight {
                return Poll::Ready(());
            }
            b.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The bytes gathered, all of them hashed, or (beside the executor) copied for their
    /// hash; the buffer starts again empty.
    pub fn take(&self) -> Memory {
        let mut b = self.0.borrow_mut();
        assert!(!b.lent, "a lent buffer is taken");
        reclaim(&mut b);
        if b.inflight || (b.md5.is_some() && b.data.len() > b.hashed && lone()) {
            offload(&self.0, b, None);
            b = self.0.borrow_mut();
        } else {
            b.catch_up();
        }
        b.hashed = 0;
        b.queued = false;
        std::mem::take(&mut b.data)
    }

    /// Whether this buffer computes a digest of its bytes.
    pub fn hashes(&self) -> bool {
        let b = self.0.borrow();
        b.md5.is_some() || b.inflight
    }

    /// The digest of every byte given to `extend` (None when made without one). Hashing
    /// beside the executor must be over ([`Buffer::hashed`]).
    pub fn into_md5(self) -> Option<Md5> {
        let mut b = self.0.borrow_mut();
        b.catch_up();
        b.md5.take()
    }
}

fn queue(buffer: Weak<RefCell<Inner>>) {
    let spawn_into = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.buffers.push(buffer);
        if let Some(w) = q.gatherer.take() {
            w.wake();
        }
        if std::mem::replace(&mut q.scheduled, true) {
            return None;
        }
        Some(*q.tasks.get_or_insert_with(|| {
            glommio::executor().create_task_queue(
                glommio::Shares::Static(SHARES),
                glommio::Latency::NotImportant,
                "digests",
            )
        }))
    });
    if let Some(tasks) = spawn_into {
        match glommio::spawn_local_into(run(), tasks) {
            Ok(task) => task.detach(),
            Err(_) => glommio::spawn_local(run()).detach(),
        };
    }
}

/// The batch task: passes over the queued buffers until none is queued.
async fn run() {
    // Behind the tasks ready now: the buffers they fill join this pass.
    futures_lite::future::yield_now().await;
    loop {
        gather().await;
        let buffers: Option<Vec<Rc<RefCell<Inner>>>> = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            if q.buffers.is_empty() {
                q.scheduled = false;
                return None;
            }
            Some(q.buffers.drain(..).filter_map(|w| w.upgrade()).collect())
        });
        let Some(buffers) = buffers else { return };
        pass(&buffers);
        glommio::yield_if_needed().await;
    }
}

/// Waits, at most [`GATHER_MAX`], until as many buffers are queued as the last pass took
/// (up to the lanes there are). The writers of queued buffers wait for the pass, so the core
/// only idles here when the others' data is not in yet. True when it gave up waiting.
///
/// With writers enough to share the lanes, the queue is looked at every quarter of the
/// wait, so that more than the last pass's may join. With fewer (a lone upload, a file
/// replicated alone) there are no lanes to fill: the next buffer queued ends the wait at
/// once (polling, every pass of a lone 1 GiB upload slept, a quarter of its time).
async fn gather() -> bool {
    let (queued, want) = QUEUE.with(|q| {
        let q = q.borrow();
        (q.buffers.len(), q.last_pass.min(crate::md5x::LANES_MAX))
    });
    if queued >= want {
        return false;
    }
    if WRITERS.with(|w| w.get()) >= crate::md5x::LANES_MIN {
        let start = std::time::Instant::now();
        loop {
            glommio::timer::sleep(GATHER_MAX / 4).await;
            if QUEUE.with(|q| q.borrow().buffers.len()) >= want {
                return false;
            }
            if start.elapsed() >= GATHER_MAX {
                return true;
            }
        }
    }
    let queued = std::future::poll_fn(|cx| {
        QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            if q.buffers.len() >= want {
                return Poll::Ready(false);
            }
            q.gatherer = Some(cx.waker().clone());
            Poll::Pending
        })
    });
    let gave_up = async {
        glommio::timer::sleep(GATHER_MAX).await;
        true
    };
    let gave_up = futures_lite::future::or(queued, gave_up).await;
    QUEUE.with(|q| q.borrow_mut().gatherer = None);
    gave_up
}

/// Hashes the whole blocks not hashed yet of every buffer (at most [`PASS_BYTES_MAX`] each
/// when they are enough to share the lanes) together; a buffer with more left is queued
/// again.
fn pass(buffers: &[Rc<RefCell<Inner>>]) {
    // A buffer taken since it was queued (or lent) is not; a buffer taken and queued again
    // is listed twice: its second entry is skipped.
    let (mut held, buffers): (Vec<std::cell::RefMut<'_, Inner>>, Vec<&Rc<RefCell<Inner>>>) =
        buffers
            .iter()
            .filter_map(|b| Some((b.try_borrow_mut().ok().filter(|b| b.queued)?, b)))
            .unzip();
    // Streams too few to share the lanes are hashed one by one, as far as they go: a lone
    // writer is not held up a pass per 32 KiB.
    let cap = if held.len() < crate::md5x::LANES_MIN {
        usize::MAX
    } else {
        PASS_BYTES_MAX
    };
    let mut jobs: Vec<(&mut Md5, &[u8])> = Vec::with_capacity(held.len());
    for b in held.iter_mut() {
        let Inner {
            data,
            md5,
            hashed,
            queued,
            ..
        } = &mut **b;
        *queued = false;
        let Some(md5) = md5.as_mut() else { continue };
        let blocks = ((data.len() - *hashed) / 64 * 64).min(cap);
        jobs.push((md5, &data.bytes()[*hashed..*hashed + blocks]));
        *hashed += blocks;
    }
    QUEUE.with(|q| q.borrow_mut().last_pass = jobs.len());
    crate::md5x::update_many(&mut jobs);
    drop(jobs);
    for (b, rc) in held.iter_mut().zip(buffers) {
        if b.due() {
            b.queued = true;
            queue(Rc::downgrade(rc)); // the batch task runs: only listed
        } else if let Some(w) = b.waiter.take() {
            w.wake();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    #[test]
    fn a_pass_waits_for_as_many_writers_as_the_last_one_took() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let buffers: Vec<Buffer> = (0..3)
                    .map(|_| Buffer::new(1 << 20, Some(Md5::new())))
                    .collect();
                let fill = |b: &Buffer| b.extend(&[5; BATCH_BYTES_MIN]);
                // Three writers queue and are hashed in one pass.
                assert!(buffers.iter().all(fill));
                while buffers.iter().any(|b| b.0.borrow().queued) {
                    futures_lite::future::yield_now().await;
                }
                assert_eq!(QUEUE.with(|q| q.borrow().last_pass), 3);
                // Now one writer goes on alone: its first pass waits for the two others in
                // vain, once; the next starts at once.
                for _ in 0..100 {
                    if !QUEUE.with(|q| q.borrow().scheduled) {
                        break;
                    }
                    glommio::timer::sleep(std::time::Duration::from_millis(1)).await;
                }
                // The batch task has ended; this test plays its part from here.
                QUEUE.with(|q| q.borrow_mut().scheduled = true);
                assert!(fill(&buffers[0]));
                assert!(gather().await, "waited for the last pass's three");
                let taken: Vec<_> = QUEUE.with(|q| q.borrow_mut().buffers.drain(..).collect());
                let taken: Vec<_> = taken.iter().filter_map(|w| w.upgrade()).collect();
                pass(&taken);
                assert_eq!(QUEUE.with(|q| q.borrow().last_pass), 1);
                assert!(!buffers[0].0.borrow().queued);
                assert!(fill(&buffers[0]));
                assert!(!gather().await, "one queued, as in the last pass");
                let want: [u8; 16] = md5::Md5::digest([5u8; BATCH_BYTES_MIN * 3]).into();
                let first = buffers.into_iter().next().unwrap();
                assert_eq!(first.into_md5().unwrap().finalize(), want);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_lone_writers_next_buffer_ends_the_gather_at_once() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                let lone = Buffer::new(1 << 20, Some(Md5::new()));
                QUEUE.with(|q| {
                    let mut q = q.borrow_mut();
                    q.last_pass = 1;
                    q.scheduled = true; // this test plays the batch task
                });
                let waiting = glommio::spawn_local(gather());
                futures_lite::future::yield_now().await; // the gather waits
                assert!(QUEUE.with(|q| q.borrow().gatherer.is_some()), "on a waker");
                assert!(lone.extend(&[1; BATCH_BYTES_MIN]));
                assert!(!waiting.await, "woken by the buffer, not given up");
                let taken: Vec<_> = QUEUE.with(|q| q.borrow_mut().buffers.drain(..).collect());
                let taken: Vec<_> = taken.iter().filter_map(|w| w.upgrade()).collect();
                pass(&taken);
                let want: [u8; 16] = md5::Md5::digest([1u8; BATCH_BYTES_MIN]).into();
                assert_eq!(lone.into_md5().unwrap().finalize(), want);
                drop(taken);
                assert_eq!(WRITERS.with(|w| w.get()), 0, "the writer is gone");
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn concurrent_writers_get_the_digest_of_their_own_bytes_however_they_fill() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                // Writers of different lengths and piece sizes, interleaved; buffers taken
                // at different fills, some settled first, some lent and restored; one writer
                // dropped half way.
                let mut tasks = Vec::new();
                for s in 0..20usize {
                    tasks.push(glommio::spawn_local(async move {
                        let data: Vec<u8> = (0..(s * 97_003 + 5_000))
                            .map(|i| (i * 31 + s * 7) as u8)
                            .collect();
                        let buffer = Buffer::new(1 << 20, Some(Md5::new()));
                        let mut taken = Vec::new();
                        let unhashed = |b: &Buffer| {
                            let b = b.0.borrow();
                            b.data.len() - b.hashed
                        };
                        for piece in data.chunks(7_000 + s * 1_999) {
                            if s % 4 == 1 {
                                // Received in place into the lent buffer.
                                let mut v = buffer.lend();
                                crate::http::conn::Room::put(&mut v, piece);
                                if buffer.restore(v) {
                                    buffer.hashed().await;
                                }
                            } else if buffer.extend(piece) && s % 2 == 0 {
                                buffer.hashed().await;
                            }
                            if buffer.len() >= 300_000 + s * 10_000 {
                                if s % 3 == 0 {
                                    buffer.settle().await;
                                    assert!(unhashed(&buffer) < SETTLE_BYTES_MIN);
                                }
                                taken.extend_from_slice(buffer.take().bytes());
                            }
                            glommio::yield_if_needed().await;
                            futures_lite::future::yield_now().await;
                        }
                        if s == 3 {
                            return; // dropped with bytes queued
                        }
                        taken.extend_from_slice(buffer.take().bytes());
                        assert_eq!(taken, data, "writer {s}: bytes");
                        let want: [u8; 16] = md5::Md5::digest(&data).into();
                        assert_eq!(buffer.into_md5().unwrap().finalize(), want, "writer {s}");
                    }));
                }
                for t in tasks {
                    t.await;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(20)).await;
                assert!(
                    !QUEUE.with(|q| q.borrow().scheduled),
                    "the batch task ended"
                );
                // A buffer without a digest is never queued.
                let plain = Buffer::new(0, None);
                plain.extend(&[7; BATCH_BYTES_MIN * 2]);
                assert!(!plain.0.borrow().queued);
                assert!(plain.into_md5().is_none());
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_lone_writer_with_a_spare_core_hashes_beside_the_executor_and_never_waits() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                offload_lone_writers(true);
                // Two writers (under the three that share lanes): both lone. Pieces of odd
                // sizes, through `extend`, `extend_shared` and lent buffers, taken for their write while a job
                // is out and while lent data waits; one writer dropped with a job out.
                assert_eq!(crate::md5x::LANES_MIN, 3);
                let mut tasks = Vec::new();
                for s in 0..2usize {
                    tasks.push(glommio::spawn_local(async move {
                        let data: Vec<u8> = (0..(s * 700_001 + 3_000_000))
                            .map(|i| (i * 17 + s) as u8)
                            .collect();
                        let buffer = Buffer::new(1 << 20, Some(Md5::new()));
                        let mut taken = Vec::new();
                        let mut jobs_seen = 0;
                        for (k, piece) in data.chunks(40_000 + s * 9_999).enumerate() {
                            let queued = match k % 3 {
                                0 => {
                                    let mut v = buffer.lend();
                                    crate::http::conn::Room::put(&mut v, piece);
                                    // The job may come back while the bytes are lent.
                                    futures_lite::future::yield_now().await;
                                    buffer.restore(v)
                                }
                                1 => buffer.extend(piece),
                                _ => buffer.extend_shared(&bytes::Bytes::copy_from_slice(piece)),
                            };
                            assert!(!queued, "writer {s}: a lone writer never waits for a pass");
                            jobs_seen += buffer.0.borrow().inflight as usize;
                            if buffer.len() >= 500_000 {
                                // As a write does: the bytes waiting for the hash stay
                                // bounded.
                                buffer.settle().await;
                                let relay = buffer.0.borrow().relay.clone();
                                let waiting = relay.map_or(0, |r| r.state().waiting);
                                assert!(waiting <= BACKLOG_BYTES_MAX, "{waiting}");
                                taken.extend_from_slice(buffer.take().bytes());
                            }
                            futures_lite::future::yield_now().await;
                        }
                        assert!(jobs_seen > 0, "writer {s}: hashed beside the executor");
                        if s == 1 {
                            return; // dropped, maybe with a job out
                        }
                        taken.extend_from_slice(buffer.take().bytes());
                        assert_eq!(taken, data, "writer {s}: bytes");
                        buffer.hashed().await;
                        let want: [u8; 16] = md5::Md5::digest(&data).into();
                        assert_eq!(buffer.into_md5().unwrap().finalize(), want, "writer {s}");
                    }));
                }
                for t in tasks {
                    t.await;
                }
                glommio::timer::sleep(std::time::Duration::from_millis(50)).await;
                assert_eq!(WRITERS.get(), 0, "every writer is gone");
                offload_lone_writers(false);
            })
            .unwrap()
            .join()
            .unwrap();
    }

    #[test]
    fn a_lone_writers_shared_bytes_are_hashed_where_they_are_not_copied() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                offload_lone_writers(true);
                let data: Vec<u8> = (0..4_000_000u32).map(|i| ((i * 31) >> 3) as u8).collect();
                let buffer = Buffer::new(1 << 20, Some(Md5::new()));
                let (mut seen_in_relay, mut taken) = (0, Vec::new());
                // Pieces under and over the size queued as given, as a peer's frames come.
                for (k, piece) in data.chunks(100_000).enumerate() {
                    let piece = bytes::Bytes::copy_from_slice(piece);
                    let piece = if k % 4 == 3 {
                        piece.slice(..1_000)
                    } else {
                        piece
                    };
                    let pending =
                        (k % 4 == 3).then(|| data[k * 100_000 + 1_000..(k + 1) * 100_000].to_vec());
                    assert!(
                        !buffer.extend_shared(&piece),
                        "a lone writer never waits for a pass"
                    );
                    if piece.len() >= SHARED_BYTES_MIN {
                        let b = buffer.0.borrow();
                        let st = b.relay.as_ref().map(|r| r.state());
                        if let Some(Chunk::Shared(s)) = st.as_ref().and_then(|st| st.chunks.back())
                        {
                            assert_eq!(s.as_ptr(), piece.as_ptr(), "the bytes given, not a copy");
                            seen_in_relay += 1;
                        }
                    }
                    if let Some(rest) = pending {
                        assert!(!buffer.extend(&rest));
                    }
                    if buffer.len() >= 700_000 {
                        buffer.settle().await;
                        taken.extend_from_slice(buffer.take().bytes());
                    }
                }
                assert!(seen_in_relay > 0, "shared bytes queued as they are");
                taken.extend_from_slice(buffer.take().bytes());
                assert_eq!(taken, data);
                buffer.hashed().await;
                let want: [u8; 16] = md5::Md5::digest(&data).into();
                assert_eq!(buffer.into_md5().unwrap().finalize(), want);
                offload_lone_writers(false);
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
