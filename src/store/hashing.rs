//! The MD5 digests of an executor's concurrent writes, computed together. A write gathers
//! its bytes in a [`Buffer`] before they go to the disk; once a buffer holds
//! [`BATCH_BYTES_MIN`] bytes not yet hashed it is queued, and one task hashes every queued
//! buffer in one pass of `md5x::update_many` (up to sixteen streams in the lanes of one vector
//! register). The writer of a queued buffer waits for that pass ([`Buffer::hashed`]); the
//! task runs in a task queue of low shares, that is when the executor's other tasks wait (on
//! their sockets, or for it) or at the latest when the executor's preemption timer expires, so
//! the buffers of all the uploads being received gather meanwhile. A buffer taken for its
//! write, or finished, hashes what is left itself.

use crate::md5x::Md5;
use std::cell::RefCell;
use std::rc::{Rc, Weak};
use std::task::{Poll, Waker};

/// A buffer is queued once it holds this many bytes not hashed yet; smaller writes are
/// hashed by their owner when the buffer is taken.
pub const BATCH_BYTES_MIN: usize = 32 << 10;
/// At most this many bytes of one buffer are hashed per pass; the task yields between
/// passes when the executor asks.
const PASS_BYTES_MAX: usize = 256 << 10;
/// The longest a pass waits for more writers' buffers.
const GATHER_MAX: std::time::Duration = std::time::Duration::from_micros(400);
/// The batch task's shares against the default queue's 1,000.
const SHARES: usize = 100;

struct Inner {
    data: Vec<u8>,
    md5: Option<Md5>,
    /// `data[..hashed]` is in `md5`.
    hashed: usize,
    queued: bool,
    /// The writer waiting for the pass that takes this buffer.
    waiter: Option<Waker>,
    /// Counted in `Queue::writers`.
    counted: bool,
}

impl Inner {
    fn catch_up(&mut self) {
        if let Some(md5) = self.md5.as_mut() {
            md5.update(&self.data[self.hashed..]);
        }
        self.hashed = self.data.len();
    }
}

/// Bytes gathered for a write, and (when made with an md5) their digest so far.
pub struct Buffer(Rc<RefCell<Inner>>);

#[derive(Default)]
struct Queue {
    buffers: Vec<Weak<RefCell<Inner>>>,
    /// Buffers alive that compute an md5: the writers a pass may wait for.
    writers: usize,
    scheduled: bool,
    tasks: Option<glommio::TaskQueueHandle>,
}

thread_local! {
    static QUEUE: RefCell<Queue> = RefCell::new(Queue::default());
}

impl Buffer {
    pub fn new(capacity: usize, md5: Option<Md5>) -> Buffer {
        let counted = md5.is_some();
        if counted {
            QUEUE.with(|q| q.borrow_mut().writers += 1);
        }
        Buffer(Rc::new(RefCell::new(Inner {
            data: Vec::with_capacity(capacity),
            md5,
            hashed: 0,
            queued: false,
            waiter: None,
            counted,
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
        b.data.extend_from_slice(bytes);
        if b.md5.is_some() && !b.queued && b.data.len() - b.hashed >= BATCH_BYTES_MIN {
            b.queued = true;
            drop(b);
            queue(Rc::downgrade(&self.0));
            return true;
        }
        false
    }

    /// Waits until the buffer is not queued for a pass.
    pub async fn hashed(&self) {
        std::future::poll_fn(|cx| {
            let mut b = self.0.borrow_mut();
            if !b.queued {
                return Poll::Ready(());
            }
            b.waiter = Some(cx.waker().clone());
            Poll::Pending
        })
        .await
    }

    /// The bytes gathered, all of them hashed; the buffer starts again empty with
    /// `capacity`.
    pub fn take(&self, capacity: usize) -> Vec<u8> {
        let mut b = self.0.borrow_mut();
        b.catch_up();
        b.hashed = 0;
        b.queued = false;
        std::mem::replace(&mut b.data, Vec::with_capacity(capacity))
    }

    /// The digest of every byte given to `extend` (None when made without one).
    pub fn into_md5(self) -> Option<Md5> {
        let mut b = self.0.borrow_mut();
        b.catch_up();
        b.md5.take()
    }
}

impl Drop for Buffer {
    fn drop(&mut self) {
        let mut b = self.0.borrow_mut();
        b.queued = false;
        if b.counted {
            b.counted = false;
            QUEUE.with(|q| q.borrow_mut().writers -= 1);
        }
    }
}

fn queue(buffer: Weak<RefCell<Inner>>) {
    let spawn_into = QUEUE.with(|q| {
        let mut q = q.borrow_mut();
        q.buffers.push(buffer);
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
        let buffers: Vec<Rc<RefCell<Inner>>> = QUEUE.with(|q| {
            let mut q = q.borrow_mut();
            if q.buffers.is_empty() {
                q.scheduled = false;
            }
            q.buffers.drain(..).filter_map(|w| w.upgrade()).collect()
        });
        if buffers.is_empty() && !QUEUE.with(|q| q.borrow().scheduled) {
            return;
        }
        pass(&buffers);
        glommio::yield_if_needed().await;
    }
}

/// Waits, at most [`GATHER_MAX`], until a buffer is queued by each writer (or as many as
/// there are lanes): when the pass starts every writer waits for it, so none is slowed.
async fn gather() {
    let start = std::time::Instant::now();
    loop {
        let (queued, writers) = QUEUE.with(|q| {
            let q = q.borrow();
            (q.buffers.len(), q.writers)
        });
        if queued >= writers.min(crate::md5x::LANES_MAX) || start.elapsed() >= GATHER_MAX {
            return;
        }
        glommio::timer::sleep(GATHER_MAX / 4).await;
    }
}

/// Hashes the whole blocks not hashed yet of every buffer (at most [`PASS_BYTES_MAX`] each)
/// together; a buffer with more left is queued again.
fn pass(buffers: &[Rc<RefCell<Inner>>]) {
    // A buffer taken and queued again is listed twice: its second entry is skipped.
    let (mut held, buffers): (Vec<std::cell::RefMut<'_, Inner>>, Vec<&Rc<RefCell<Inner>>>) =
        buffers
            .iter()
            .filter_map(|b| Some((b.try_borrow_mut().ok()?, b)))
            .unzip();
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
        let blocks = ((data.len() - *hashed) / 64 * 64).min(PASS_BYTES_MAX);
        jobs.push((md5, &data[*hashed..*hashed + blocks]));
        *hashed += blocks;
    }
    crate::md5x::update_many(&mut jobs);
    drop(jobs);
    for (b, rc) in held.iter_mut().zip(buffers) {
        if b.md5.is_some() && b.data.len() - b.hashed >= BATCH_BYTES_MIN {
            b.queued = true;
            QUEUE.with(|q| {
                let mut q = q.borrow_mut();
                q.buffers.push(Rc::downgrade(rc));
                q.scheduled = true;
            });
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
    fn concurrent_writers_get_the_digest_of_their_own_bytes() {
        glommio::LocalExecutorBuilder::default()
            .spawn(|| async {
                // Writers of different lengths and piece sizes, interleaved; buffers taken
                // at different fills; one writer dropped half way.
                let mut tasks = Vec::new();
                for s in 0..20usize {
                    tasks.push(glommio::spawn_local(async move {
                        let data: Vec<u8> = (0..(s * 97_003 + 5_000))
                            .map(|i| (i * 31 + s * 7) as u8)
                            .collect();
                        let buffer = Buffer::new(1 << 20, Some(Md5::new()));
                        let mut taken = Vec::new();
                        for piece in data.chunks(7_000 + s * 1_999) {
                            if buffer.extend(piece) && s % 2 == 0 {
                                buffer.hashed().await;
                            }
                            if buffer.len() >= 300_000 + s * 10_000 {
                                taken.extend(buffer.take(1 << 20));
                            }
                            glommio::yield_if_needed().await;
                            futures_lite::future::yield_now().await;
                        }
                        if s == 3 {
                            return; // dropped with bytes queued
                        }
                        taken.extend(buffer.take(0));
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
}
