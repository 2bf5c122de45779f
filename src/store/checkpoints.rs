//! MD5 checkpoints: a stored file's MD5 state at every `every` bytes, kept beside its content
//! in an extended attribute ([`ATTRIBUTE`]), and the check of a stream against them on
//! several cores at once ([`Chain`]).
//!
//! One MD5 is one chain of dependent steps: a core hashes a single stream at 0.7-0.8 GB/s here,
//! whatever else is idle, and that bounded a replicated file. Its writer had the states
//! anyway (`md5x::Md5::finalize_marked`); a peer that fetches the file asks for them
//! (`G/md5_checkpoints`) and hashes each segment from its start state on its own thread:
//! segment i must end in checkpoint i (the next segment's start) and the last one in the
//! file's md5. With every link checked, the chain proves the file's md5 as one pass would; a
//! wrong checkpoint fails its link and never lets other content pass.
//!
//! Only files of at least [`CHECKPOINTS_MIN`] bytes keep them. They are an optimization: a
//! filesystem without user attributes or a file stored before them has none, and a peer
//! checks those in one pass (as it does S3 objects, whose records are keyed by their path:
//! it never asks for theirs).

use crate::md5x::{Md5, MARK_EVERY};
use bytes::Bytes;
use std::collections::VecDeque;
use std::io;
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex};
use std::task::{Poll, Waker};

/// The extended attribute that holds a file's checkpoints ([`Checkpoints::encode`]).
pub const ATTRIBUTE: &std::ffi::CStr = c"user.fastdfs.md5";

/// Files from this size on keep their checkpoints (smaller ones hash in a few milliseconds).
pub const CHECKPOINTS_MIN: u64 = 4 * MARK_EVERY;

/// The most checkpoints kept per file: the attribute then fits the one 4 KiB block ext4 gives
/// a file's attributes. A larger file keeps every second (fourth, …) mark: its segments are
/// longer.
pub const STATES_MAX: usize = 224;

/// The encoding's first bytes (and its version).
const MAGIC: &[u8; 4] = b"md5\x01";
/// The encoding's bytes before the states: [`MAGIC`] and `every`.
const HEAD_BYTES: usize = MAGIC.len() + 8;

/// A stream's MD5 states at `every`, 2 x `every`, … bytes, before its end.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Checkpoints {
    pub every: u64,
    pub states: Vec<[u32; 4]>,
}

impl Checkpoints {
    /// The checkpoints of a file of `size` bytes from its writer's marks (None for a file
    /// smaller than [`CHECKPOINTS_MIN`]).
    pub fn from_marks(size: u64, marks: Vec<[u32; 4]>) -> Option<Checkpoints> {
        if size < CHECKPOINTS_MIN {
            return None;
        }
        let mut c = Checkpoints {
            every: MARK_EVERY,
            states: marks,
        };
        assert!(c.fits(size), "the marks of a {size}-byte stream: {c:?}");
        while c.states.len() > STATES_MAX {
            c.every *= 2;
            c.states = c.states.into_iter().skip(1).step_by(2).collect();
        }
        debug_assert!(c.fits(size));
        Some(c)
    }

    /// They can be a `size`-byte file's: whole blocks apart, at most [`STATES_MAX`], and one
    /// per `every` bytes before the end.
    pub fn fits(&self, size: u64) -> bool {
        self.every >= 64
            && self.every.is_multiple_of(64)
            && size > 0
            && self.states.len() as u64 == (size - 1) / self.every
    }

    /// How many segments their stream has.
    fn segments(&self) -> usize {
        self.states.len() + 1
    }

    /// The attribute's value: [`MAGIC`], `every` (u64), then each state's four words, all
    /// little-endian.
    pub fn encode(&self) -> Vec<u8> {
        let mut v = Vec::with_capacity(HEAD_BYTES + 16 * self.states.len());
        v.extend_from_slice(MAGIC);
        v.extend_from_slice(&self.every.to_le_bytes());
        for s in &self.states {
            for w in s {
                v.extend_from_slice(&w.to_le_bytes());
            }
        }
        v
    }

    /// [`Checkpoints::encode`] undone (None for anything else).
    pub fn decode(v: &[u8]) -> Option<Checkpoints> {
        let rest = v.strip_prefix(MAGIC)?;
        let (every, rest) = rest.split_first_chunk::<8>()?;
        let (states, tail) = rest.as_chunks::<16>();
        if !tail.is_empty() || states.len() > STATES_MAX {
            return None;
        }
        let states = states
            .iter()
            .map(|s| {
                let (words, _) = s.as_chunks::<4>();
                std::array::from_fn(|i| u32::from_le_bytes(words[i]))
            })
            .collect();
        Some(Checkpoints {
            every: u64::from_le_bytes(*every),
            states,
        })
    }

    /// The wire form (`G/md5_checkpoints`): `{"every":…,"states":"<hex of the states as
    /// encoded>"}`.
    pub fn to_json(&self) -> serde_json::Value {
        let states = crate::codec::hex(&self.encode()[HEAD_BYTES..]);
        serde_json::json!({"every": self.every, "states": states})
    }

    /// [`Checkpoints::to_json`] undone, for a `size`-byte file (None when they cannot be its).
    pub fn from_json(v: &serde_json::Value, size: u64) -> Option<Checkpoints> {
        let every = v.get("every")?.as_u64()?;
        let hex = v.get("states")?.as_str()?;
        if hex.len() > 32 * STATES_MAX {
            return None;
        }
        let mut raw = Vec::with_capacity(HEAD_BYTES + hex.len() / 2);
        raw.extend_from_slice(MAGIC);
        raw.extend_from_slice(&every.to_le_bytes());
        raw.extend(crate::codec::unhex(hex)?);
        Checkpoints::decode(&raw).filter(|c| c.fits(size))
    }
}

/// Blocking: keeps `c` with the file at `path`. A filesystem without user attributes keeps
/// none (not an error: the file is checked in one pass when fetched).
pub fn save(path: &Path, c: &Checkpoints) -> io::Result<()> {
    match crate::sys::set_xattr(path, ATTRIBUTE, &c.encode()) {
        Err(e) if e.raw_os_error() == Some(libc::ENOTSUP) => Ok(()),
        r => r,
    }
}

/// Blocking: the checkpoints kept with the `size`-byte file at `path`, if any fit it.
pub fn load(path: &Path, size: u64) -> io::Result<Option<Checkpoints>> {
    let raw = crate::sys::get_xattr(path, ATTRIBUTE, HEAD_BYTES + 16 * STATES_MAX)?;
    Ok(raw
        .and_then(|v| Checkpoints::decode(&v))
        .filter(|c| c.fits(size)))
}

/// Why a stream failed its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Broken {
    /// Segment `segment` did not end in its checkpoint.
    Link { segment: usize },
    /// Every link held and the last segment did not end in the expected md5.
    Digest { got: String },
    /// The stream ended before or after the size the chain was made for.
    Size { got: u64 },
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Broken::Link { segment } => {
                write!(f, "segment {segment} does not end in its md5 checkpoint")
            }
            Broken::Digest { got } => write!(f, "content md5 {got}"),
            Broken::Size { got } => write!(f, "{got} bytes"),
        }
    }
}

/// Hash threads of one chain (at least two: the point is more than one core).
fn threads_max() -> usize {
    std::thread::available_parallelism().map_or(2, |n| n.get().clamp(2, 4))
}

/// The hash threads' nice value: they take the CPU the executors leave. At the executors'
/// own priority they took turns with them, and a replicated 1 GiB file went 10-20 % slower
/// than at this one (the receive on the executor waited, not the hash).
const NICE: libc::c_int = 19;

/// The check of a stream of known size against its checkpoints and md5. The bytes fed are
/// queued by segment (shared, never copied), and threads of the chain's own (up to
/// [`threads_max`], niced: [`NICE`]) hash different segments at once, each segment's bytes
/// in order. The feeder waits while more than [`Chain::backlog_max`] bytes wait for a thread.
/// The threads are the chain's, not the executor's blocking pool: they wait for bytes between
/// segments, and the pool's threads serve the metadata commits.
pub struct Chain {
    shared: Arc<Shared>,
    size: u64,
    fed: u64,
    expect: [u8; 16],
}

struct Shared {
    st: Mutex<ChainState>,
    /// Wakes the threads when bytes are queued or the chain ends.
    more: Condvar,
    /// The checkpoints, each the state a segment ends in and the next one starts from.
    c: Checkpoints,
}

#[derive(Default)]
struct ChainState {
    /// Bytes not hashed yet, by segment, in the order fed.
    pieces: VecDeque<(usize, Bytes)>,
    /// Each segment's md5 while no thread holds it.
    segments: Vec<Option<Md5>>,
    /// Bytes queued or being hashed.
    waiting: usize,
    /// Threads alive.
    threads: usize,
    broken: Option<Broken>,
    /// The feeder, waiting for `waiting` to fall or the threads to end.
    waker: Option<Waker>,
    /// Every byte is fed (`finish`), or the chain was dropped: the threads end once nothing
    /// is left for them.
    closed: bool,
    dropped: bool,
}

impl Shared {
    fn state(&self) -> std::sync::MutexGuard<'_, ChainState> {
        // A thread that panicked (only inside md5) left the queue consistent.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// A hash thread: hashes queued pieces whose segment no other thread holds, and waits
    /// for more, until the chain is closed and nothing is left, broken, or dropped.
    fn run(&self) {
        crate::sys::unpin();
        // SAFETY: PRIO_PROCESS with 0 is the calling thread; a failure leaves its priority.
        unsafe { libc::setpriority(libc::PRIO_PROCESS, 0, NICE) };
        let mut st = self.state();
        loop {
            let found = if st.dropped || st.broken.is_some() {
                None
            } else {
                let ChainState {
                    pieces, segments, ..
                } = &mut *st;
                pieces.iter().position(|(seg, _)| segments[*seg].is_some())
            };
            let Some(at) = found else {
                let ends = st.dropped || st.broken.is_some() || (st.closed && st.pieces.is_empty());
                if !ends {
                    st = self.more.wait(st).unwrap_or_else(|e| e.into_inner());
                    continue;
                }
                st.threads -= 1;
                let waker = st.waker.take();
                drop(st);
                // The others look again (they may wait for a segment this one held).
                self.more.notify_all();
                if let Some(w) = waker {
                    w.wake();
                }
                return;
            };
            let (seg, bytes) = st.pieces.remove(at).expect("found");
            let mut md5 = st.segments[seg].take().expect("a free segment");
            drop(st);
            md5.update(&bytes);
            let Checkpoints { every, states } = &self.c;
            let ended = (seg < states.len() && md5.len() == (seg as u64 + 1) * every)
                .then(|| md5.state() == states[seg]);
            st = self.state();
            st.segments[seg] = Some(md5);
            st.waiting -= bytes.len();
            if ended == Some(false) {
                st.broken.get_or_insert(Broken::Link { segment: seg });
            }
            if st.pieces.iter().any(|(s, _)| *s == seg) {
                // A thread waiting for this segment's next bytes may take them now.
                self.more.notify_one();
            }
            if let Some(w) = st.waker.take() {
                // The feeder looks again (it waits for less backlog or for the end).
                drop(st);
                w.wake();
                st = self.state();
            }
        }
    }
}

impl Chain {
    /// A chain for a `size`-byte stream whose md5 must be `expect`, its threads started;
    /// None when `checkpoints` cannot be its, or no thread starts.
    pub fn new(c: Checkpoints, size: u64, expect: [u8; 16]) -> Option<Chain> {
        if !c.fits(size) {
            return None;
        }
        let n = c.segments();
        let segments = (0..n)
            .map(|i| {
                Some(match i {
                    0 => Md5::new(),
                    _ => Md5::resume(c.states[i - 1], i as u64 * c.every),
                })
            })
            .collect();
        let chain = Chain {
            shared: Arc::new(Shared {
                st: Mutex::new(ChainState {
                    segments,
                    ..Default::default()
                }),
                more: Condvar::new(),
                c,
            }),
            size,
            fed: 0,
            expect,
        };
        for _ in 0..threads_max().min(n) {
            let shared = chain.shared.clone();
            chain.shared.state().threads += 1;
            let spawned = std::thread::Builder::new()
                .name("md5-chain".into())
                .spawn(move || shared.run());
            if let Err(e) = spawned {
                chain.shared.state().threads -= 1;
                tracing::warn!(cause = %e, "md5 checkpoint thread not started");
                break;
            }
        }
        let started = chain.shared.state().threads > 0;
        started.then_some(chain)
    }

    /// Bytes that may wait for a thread before the feeder waits: two segments' worth (one
    /// thread may still be on the segment before the one arriving), within 64 MiB.
    fn backlog_max(&self) -> usize {
        (2 * self.shared.c.every + (4 << 20)).min(64 << 20) as usize
    }

    /// Queues the stream's next bytes (refused past its size) for the threads; waits while
    /// the backlog is over its bound.
    pub async fn feed(&mut self, mut data: Bytes) -> Result<(), Broken> {
        if self.fed + data.len() as u64 > self.size {
            return Err(Broken::Size {
                got: self.fed + data.len() as u64,
            });
        }
        let every = self.shared.c.every;
        let last = (self.size - 1) / every;
        {
            let mut st = self.shared.state();
            while !data.is_empty() {
                let seg = (self.fed / every).min(last);
                let end = if seg == last {
                    self.size
                } else {
                    (seg + 1) * every
                };
                let piece = data.split_to(((end - self.fed) as usize).min(data.len()));
                self.fed += piece.len() as u64;
                st.waiting += piece.len();
                st.pieces.push_back((seg as usize, piece));
            }
        }
        self.shared.more.notify_one();
        let max = self.backlog_max();
        std::future::poll_fn(|cx| {
            let mut st = self.shared.state();
            if st.waiting <= max || st.broken.is_some() || st.threads == 0 {
                return Poll::Ready(());
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        match self.shared.state().broken.clone() {
            Some(b) => Err(b),
            None => Ok(()),
        }
    }

    /// Waits for the threads to hash what is queued and end, then checks the whole: every
    /// link, the size and the md5. Returns the md5's hex and the checkpoints it checked.
    pub async fn finish(self) -> Result<(String, Checkpoints), Broken> {
        if self.fed != self.size {
            return Err(Broken::Size { got: self.fed });
        }
        self.shared.state().closed = true;
        self.shared.more.notify_all();
        std::future::poll_fn(|cx| {
            let mut st = self.shared.state();
            if st.threads == 0 {
                return Poll::Ready(());
            }
            st.waker = Some(cx.waker().clone());
            Poll::Pending
        })
        .await;
        let mut st = self.shared.state();
        if let Some(b) = st.broken.take() {
            return Err(b);
        }
        assert!(st.pieces.is_empty(), "the threads end with nothing queued");
        let last = st.segments.pop().flatten().expect("the threads ended");
        drop(st);
        let got = last.finalize();
        let hex = crate::codec::hex(&got);
        if got != self.expect {
            return Err(Broken::Digest { got: hex });
        }
        Ok((hex, self.shared.c.clone()))
    }
}

impl Drop for Chain {
    fn drop(&mut self) {
        self.shared.state().dropped = true;
        self.shared.more.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed) ^ (i >> 12) as u8)
            .collect()
    }

    /// The checkpoints of `d` at every `every` bytes, computed one prefix at a time.
    fn checkpoints_of(d: &[u8], every: u64) -> Checkpoints {
        let states = (1..)
            .map(|i| i * every as usize)
            .take_while(|&at| at < d.len())
            .map(|at| {
                let mut m = Md5::new();
                m.update(&d[..at]);
                m.state()
            })
            .collect();
        Checkpoints { every, states }
    }

    fn digest(d: &[u8]) -> [u8; 16] {
        md5::Md5::digest(d).into()
    }

    /// Feeds `d` to a chain in pieces of `step` bytes; the chain's verdict.
    fn check(d: &[u8], c: Checkpoints, expect: [u8; 16], step: usize) -> Result<String, Broken> {
        let d = Bytes::copy_from_slice(d);
        let size = d.len() as u64;
        glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .expect("executor")
            .run(async move {
                let mut chain = Chain::new(c, size, expect).expect("checkpoints that fit");
                for at in (0..d.len()).step_by(step) {
                    chain.feed(d.slice(at..(at + step).min(d.len()))).await?;
                }
                chain.finish().await.map(|(md5, _)| md5)
            })
    }

    const EVERY: u64 = 1 << 20;

    #[test]
    fn a_stream_fed_in_pieces_passes_its_chain() {
        let d = data(5 * EVERY as usize + 123, 1);
        for step in [4096 + 7, 300_001, 2 << 20] {
            let got = check(&d, checkpoints_of(&d, EVERY), digest(&d), step);
            assert_eq!(got, Ok(crate::codec::hex(&digest(&d))), "pieces of {step}");
        }
    }

    #[test]
    fn a_changed_byte_fails_the_link_of_its_segment_or_the_digest_in_the_last() {
        let d = data(5 * EVERY as usize + 123, 2);
        let (c, expect) = (checkpoints_of(&d, EVERY), digest(&d));
        let mut bad = d.clone();
        bad[EVERY as usize + 10] ^= 1;
        assert_eq!(
            check(&bad, c.clone(), expect, 65536),
            Err(Broken::Link { segment: 1 })
        );
        let mut bad = d.clone();
        *bad.last_mut().unwrap() ^= 1;
        assert!(matches!(
            check(&bad, c, expect, 65536),
            Err(Broken::Digest { .. })
        ));
    }

    #[test]
    fn a_wrong_checkpoint_fails_a_link_and_never_passes() {
        let d = data(5 * EVERY as usize + 123, 3);
        let mut c = checkpoints_of(&d, EVERY);
        c.states[2][0] ^= 1;
        // Segment 2 does not end in it, and segment 3 starts from it and ends elsewhere.
        let got = check(&d, c, digest(&d), 100_000);
        assert!(
            matches!(got, Err(Broken::Link { segment: 2 | 3 })),
            "{got:?}"
        );
        // Right checkpoints and another md5: the digest fails.
        let got = check(&d, checkpoints_of(&d, EVERY), [0; 16], 100_000);
        assert!(matches!(got, Err(Broken::Digest { .. })), "{got:?}");
    }

    #[test]
    fn a_stream_longer_or_shorter_than_its_size_fails() {
        let d = data(3 * EVERY as usize, 4);
        let (c, expect) = (checkpoints_of(&d, EVERY), digest(&d));
        let size = d.len() as u64;
        let d = Bytes::from(d);
        let got = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .unwrap()
            .run(async move {
                let mut long = Chain::new(c.clone(), size, expect).unwrap();
                long.feed(d.clone()).await.unwrap();
                let more = long.feed(Bytes::from_static(b"x")).await;
                let mut short = Chain::new(c, size, expect).unwrap();
                short.feed(d.slice(..100)).await.unwrap();
                (more, short.finish().await.map(|(md5, _)| md5))
            });
        assert_eq!(got.0, Err(Broken::Size { got: size + 1 }));
        assert_eq!(got.1, Err(Broken::Size { got: 100 }));
    }

    #[test]
    fn checkpoints_that_cannot_be_the_files_make_no_chain() {
        let d = data(3 * EVERY as usize + 1, 5);
        let c = checkpoints_of(&d, EVERY);
        assert!(c.fits(d.len() as u64));
        // One state too many or too few for the size; a step not of whole blocks.
        assert!(Chain::new(c.clone(), d.len() as u64 - 1, [0; 16]).is_none());
        assert!(Chain::new(c.clone(), d.len() as u64 + EVERY, [0; 16]).is_none());
        let odd = Checkpoints {
            every: EVERY + 1,
            ..c
        };
        assert!(!odd.fits(d.len() as u64));
    }

    #[test]
    fn a_large_files_marks_are_thinned_to_fit_the_attribute() {
        assert_eq!(
            Checkpoints::from_marks(CHECKPOINTS_MIN - 1, vec![[0; 4]; 3]),
            None
        );
        let size = 300 * MARK_EVERY + 5;
        let marks: Vec<[u32; 4]> = (0..300u32).map(|i| [i, 0, 0, 0]).collect();
        let c = Checkpoints::from_marks(size, marks).unwrap();
        assert_eq!(c.every, 2 * MARK_EVERY);
        assert_eq!(c.states.len(), 150);
        assert!(c.fits(size));
        // Every second mark: the states at 2, 4, 6, ... x MARK_EVERY.
        assert_eq!(c.states[0], [1, 0, 0, 0]);
        assert_eq!(c.states[149], [299, 0, 0, 0]);
        assert!(c.encode().len() <= HEAD_BYTES + 16 * STATES_MAX);
    }

    #[test]
    fn the_attribute_and_the_wire_form_give_back_what_was_kept() {
        let d = data(3 * EVERY as usize + 9, 6);
        let c = checkpoints_of(&d, EVERY);
        let size = d.len() as u64;
        assert_eq!(Checkpoints::decode(&c.encode()), Some(c.clone()));
        assert_eq!(Checkpoints::from_json(&c.to_json(), size), Some(c.clone()));
        // Not the file's (another size), not hex, cut short, another version.
        assert_eq!(Checkpoints::from_json(&c.to_json(), size + EVERY), None);
        let mut j = c.to_json();
        j["states"] = "zz".repeat(48).into();
        assert_eq!(Checkpoints::from_json(&j, size), None);
        assert_eq!(Checkpoints::decode(&c.encode()[..40]), None);
        let mut v = c.encode();
        v[3] = 2;
        assert_eq!(Checkpoints::decode(&v), None);

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"content").unwrap();
        assert_eq!(load(&path, size).unwrap(), None, "none kept yet");
        save(&path, &c).unwrap();
        if crate::sys::get_xattr(&path, ATTRIBUTE, 8192)
            .unwrap()
            .is_none()
        {
            return; // a filesystem without user attributes keeps none (and says so quietly)
        }
        assert_eq!(load(&path, size).unwrap(), Some(c));
        assert_eq!(load(&path, size + EVERY).unwrap(), None, "not this size's");
    }
}
