//! The executor's direct-write buffers: DMA memory (aligned for `O_DIRECT`) of
//! [`BUFFER_BYTES`], which uploads receive into and write from (`store::write`,
//! `store::hashing`). glommio maps a buffer of this size apart from the heap; each executor
//! keeps the buffers its writes give back in a pool, so that a buffer's pages are faulted in
//! once and not again for every upload; when the server goes quiet after a spell of work,
//! every executor unmaps its pool ([`release_all`]).
//!
//! Why not the heap: a MiB aligned to a page does not fit the hole an earlier one left in an
//! allocator arena, so the arena grew past the freed buffers and kept every page it had
//! touched resident. One S3 upload of 1 GiB (two parts at a time) left 43-86 MiB resident in
//! one arena while the heap's live bytes never passed 11 MiB; with this pool the whole server
//! stays at 36-37 MiB.
//!
//! A replicated file's bytes take a second kind of buffer, [`Shareable`]: the same length and
//! alignment, but `Send`, so that the md5 chain's threads hash the bytes where the socket put
//! them while the same memory is written (`DmaFile::write_foreign_at`), with no copy. Those
//! come back, from whichever thread lets go last, to a pool of the process's.

use crate::sys::MappedBytes;
use glommio::io::{DmaBuffer, DmaFile};
use std::cell::{Cell, RefCell};
use std::sync::atomic::{AtomicU64, Ordering};

/// The length of a direct-write buffer.
pub const BUFFER_BYTES: usize = 1 << 20;

/// Buffers an executor keeps: 16 uploads at once (bench: 16 clients of 1 MiB uploads), each
/// with a buffer filling and one being written. Beyond these, a buffer is unmapped when it
/// is given back, and the next one is faulted in anew (256 page faults per MiB).
const KEPT: usize = 32;

thread_local! {
    /// This executor's spare buffers, each [`BUFFER_BYTES`] long.
    static SPARE: RefCell<Vec<DmaBuffer>> = const { RefCell::new(Vec::new()) };
    /// Buffers this executor has made (not taken from the pool).
    static MADE: Cell<u64> = const { Cell::new(0) };
    /// Buffers this executor has taken ([`Pooled::take`]), made or spare.
    static TAKEN: Cell<u64> = const { Cell::new(0) };
    /// The last [`RELEASES`] this executor has acted on.
    static RELEASED: Cell<u64> = const { Cell::new(0) };
}

/// How many times every executor has been asked to drop its spare buffers ([`release_all`]).
static RELEASES: AtomicU64 = AtomicU64::new(0);

/// A direct-write buffer: back in its executor's pool when dropped (buffers are not `Send`,
/// so the pool is the executor's own).
pub struct Pooled(Option<DmaBuffer>);

impl Pooled {
    /// A buffer of at least `size` bytes for writes to `file`: a spare one, or a new one.
    /// [`BUFFER_BYTES`] long up to that size, `size` long beyond it (never kept).
    pub fn take(file: &DmaFile, size: usize) -> Pooled {
        TAKEN.set(TAKEN.get() + 1);
        let spare = if size <= BUFFER_BYTES {
            SPARE.with(|s| s.borrow_mut().pop())
        } else {
            None
        };
        let buf = spare.unwrap_or_else(|| {
            MADE.set(MADE.get() + 1);
            file.alloc_dma_buffer(size.max(BUFFER_BYTES))
        });
        assert!(buf.len() >= size, "a buffer holds what it was taken for");
        Pooled(Some(buf))
    }

    /// The buffer itself, to be written (`DmaFile::write_rc_at`); it goes back to the pool
    /// by [`give_back`] once its write has let go of it.
    pub fn into_inner(mut self) -> DmaBuffer {
        self.0.take().expect("a pooled buffer is taken out once")
    }
}

impl std::ops::Deref for Pooled {
    type Target = DmaBuffer;

    fn deref(&self) -> &DmaBuffer {
        self.0.as_ref().expect("a pooled buffer until taken out")
    }
}

impl std::ops::DerefMut for Pooled {
    fn deref_mut(&mut self) -> &mut DmaBuffer {
        self.0.as_mut().expect("a pooled buffer until taken out")
    }
}

impl Drop for Pooled {
    fn drop(&mut self) {
        if let Some(buf) = self.0.take() {
            give_back(buf);
        }
    }
}

/// Keeps `buf` for a later write when it is a whole buffer (a write trims its last buffer
/// to the bytes it writes: restored here) and the pool has room; else unmaps it.
pub fn give_back(mut buf: DmaBuffer) {
    buf.untrim();
    if buf.len() != BUFFER_BYTES {
        return;
    }
    // The pool is gone while the thread exits: the buffer is simply freed.
    let _ = SPARE.try_with(|s| {
        let mut s = s.borrow_mut();
        if s.len() < KEPT {
            s.push(buf);
        }
    });
}

/// Spare [`Shareable`] buffers the process keeps: a replicated file holds as many as its md5
/// chain's backlog (at most 64 MiB) and its writes in flight.
const SHAREABLE_KEPT: usize = 64;

static SHAREABLE_SPARES: std::sync::Mutex<Vec<MappedBytes>> = std::sync::Mutex::new(Vec::new());

fn shareable_spares() -> std::sync::MutexGuard<'static, Vec<MappedBytes>> {
    SHAREABLE_SPARES
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// A direct-write buffer of [`BUFFER_BYTES`] that other threads may read (it is `Send`):
/// filled by its executor ([`Shareable::room`]), then shared as `bytes::Bytes`
/// ([`Shareable::share`]) with the threads that hash it and the write that takes it to the
/// disk. Back in the process's pool when the last share goes, on whichever thread.
pub struct Shareable(Option<MappedBytes>);

impl Shareable {
    /// An empty buffer: a spare one, or a new mapping (page-aligned, as direct I/O needs).
    pub fn take() -> Shareable {
        let spare = shareable_spares().pop();
        Shareable(Some(
            spare.unwrap_or_else(|| MappedBytes::with_capacity(BUFFER_BYTES)),
        ))
    }

    fn bytes(&self) -> &MappedBytes {
        self.0.as_ref().expect("a shareable buffer until dropped")
    }

    pub fn len(&self) -> usize {
        self.bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The room left, to be filled (a socket's `recv`) and marked ([`Shareable::filled`]).
    pub fn room(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        self.0
            .as_mut()
            .expect("a shareable buffer until dropped")
            .room()
    }

    /// Marks the first `n` bytes of the room as held.
    ///
    /// # Safety
    /// Those bytes must have been written (through [`Shareable::room`]).
    pub unsafe fn filled(&mut self, n: usize) {
        // SAFETY: the caller's contract.
        unsafe {
            self.0
                .as_mut()
                .expect("a shareable buffer until dropped")
                .filled(n)
        }
    }

    /// The bytes held, shared from now on (read-only).
    pub fn share(self) -> bytes::Bytes {
        bytes::Bytes::from_owner(self)
    }
}

impl AsRef<[u8]> for Shareable {
    fn as_ref(&self) -> &[u8] {
        self.bytes()
    }
}

impl Drop for Shareable {
    fn drop(&mut self) {
        let Some(mut buf) = self.0.take() else { return };
        if buf.capacity() != BUFFER_BYTES {
            return;
        }
        buf.clear();
        let mut spares = shareable_spares();
        if spares.len() < SHAREABLE_KEPT {
            spares.push(buf);
        }
    }
}

/// Asks every executor to unmap its spare buffers at its next look ([`release_if_asked`]):
/// the process has gone quiet after a spell of work (`server`'s trim after bursts), and the
/// pools would otherwise keep up to [`KEPT`] MiB per executor resident for good.
pub fn release_all() {
    RELEASES.fetch_add(1, Ordering::Relaxed);
    drop(std::mem::take(&mut *shareable_spares()));
}

/// Unmaps this executor's spare buffers if [`release_all`] has asked since its last look
/// (each executor looks every second: `server`'s `spare_buffers` duty); how many it unmapped.
pub fn release_if_asked() -> usize {
    let asked = RELEASES.load(Ordering::Relaxed);
    if RELEASED.get() == asked {
        return 0;
    }
    RELEASED.set(asked);
    SPARE.with(|s| std::mem::take(&mut *s.borrow_mut()).len())
}

/// How many spare buffers this executor holds.
#[cfg(test)]
pub fn spares() -> usize {
    SPARE.with(|s| s.borrow().len())
}

/// How many buffers this executor has made so far (the others came from its pool).
#[cfg(test)]
pub fn made() -> u64 {
    MADE.get()
}

/// How many direct-write buffers this executor has taken so far.
#[cfg(test)]
pub fn taken() -> u64 {
    TAKEN.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buffers_come_back_whole_when_dropped_or_given_back_and_the_pool_is_bounded() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("f");
        glommio::LocalExecutorBuilder::default()
            .spawn(move || async move {
                let file = DmaFile::create(&path).await.unwrap();
                let a = Pooled::take(&file, 100);
                assert_eq!(a.len(), BUFFER_BYTES);
                assert_eq!((spares(), made()), (0, 1));
                drop(a);
                assert_eq!(spares(), 1, "dropped: kept");
                let mut b = Pooled::take(&file, BUFFER_BYTES).into_inner();
                assert_eq!((spares(), made()), (0, 1), "the spare one was taken");
                b.trim_to_size(4096);
                give_back(b);
                assert_eq!(spares(), 1, "a trimmed buffer is kept whole");
                assert_eq!(Pooled::take(&file, 1).len(), BUFFER_BYTES);
                let big = Pooled::take(&file, BUFFER_BYTES + 4096);
                assert_eq!(big.len(), BUFFER_BYTES + 4096);
                drop(big);
                assert_eq!(spares(), 1, "a buffer of another length is not kept");
                let many: Vec<Pooled> = (0..KEPT + 5).map(|_| Pooled::take(&file, 1)).collect();
                drop(many);
                assert_eq!(spares(), KEPT, "the pool keeps at most KEPT");
                // Released when asked, once per asking.
                release_if_asked();
                drop(Pooled::take(&file, 1));
                assert_eq!(release_if_asked(), 0, "not asked");
                release_all();
                assert_eq!(release_if_asked(), KEPT);
                assert_eq!(spares(), 0);
                drop(Pooled::take(&file, 1));
                assert_eq!(release_if_asked(), 0, "asked once, released once");
                assert_eq!(spares(), 1);
                file.close().await.unwrap();
            })
            .unwrap()
            .join()
            .unwrap();
    }
}
