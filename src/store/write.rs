//! The durable write path of an upload's content: a temp file under `files/_tmp/` written
//! through io_uring while its digest is computed (an md5 together with the executor's other
//! writes, `store::hashing`; a sha1 as bytes arrive), then fdatasynced. A large file is
//! written around the page cache (`O_DIRECT`, [`DIRECT_BYTES_MIN`]). Moving it into place
//! and committing metadata is `Meta::insert`.
//! A temp file that is dropped without `finish` is removed (an upload that dies half way
//! leaves nothing behind; leftovers of a crash are removed at start-up).

use crate::md5x::Md5;
use crate::store::dma::Pooled;
use crate::store::hashing::{Buffer, Memory};
use crate::store::haystack::{MemoryBudget, Reservation};
use glommio::io::{BufferedFile, DmaFile};
use glommio::task::JoinHandle;
use sha1::Digest;
use std::io;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// Bytes read per `read` when a digest is computed from a stored file.
const DIGEST_READ_BYTES: usize = 1 << 20;
/// Bytes gathered before one io_uring write (a direct write's buffer: `store::dma`).
const WRITE_BUFFER_BYTES: usize = super::dma::BUFFER_BYTES;
/// Bytes appended to a lent write buffer at most per lend: the md5 passes
/// (`store::hashing`) hash the writers' streams in the lanes of one register, which
/// stay full while the streams grow by pieces of like size.
pub const LEND_BYTES_MAX: usize = 64 << 10;
/// A large upload fdatasyncs every this many bytes, so its dirty pages stay bounded (smooth
/// writeback, and a short final fdatasync).
const FLUSH_BEHIND_BYTES: u64 = 16 << 20;

pub enum Hasher {
    Md5(Md5),
    Sha1(sha1::Sha1),
}

impl Hasher {
    pub fn new(sha1: bool) -> Hasher {
        if sha1 {
            Hasher::Sha1(sha1::Sha1::new())
        } else {
            Hasher::Md5(Md5::new())
        }
    }

    pub fn update(&mut self, data: &[u8]) {
        match self {
            Hasher::Md5(h) => h.update(data),
            Hasher::Sha1(h) => h.update(data),
        }
    }

    /// The digest of everything `reader` yields, read 1 MiB at a time (blocking: run on the
    /// blocking pool).
    pub fn of_reader(reader: impl io::Read, sha1: bool) -> io::Result<String> {
        Ok(Hasher::reading(reader, sha1)?.hex())
    }

    /// A hasher fed everything `reader` yields, read 1 MiB at a time (blocking), to
    /// [`Hasher::finish`] or [`Hasher::hex`].
    pub fn reading(mut reader: impl io::Read, sha1: bool) -> io::Result<Hasher> {
        let mut h = Hasher::new(sha1);
        let mut buf = vec![0u8; DIGEST_READ_BYTES];
        loop {
            let n = reader.read(&mut buf)?;
            if n == 0 {
                return Ok(h);
            }
            h.update(&buf[..n]);
        }
    }

    /// The md5 (hashed in the executor's lanes, `store::hashing`) or the sha1 (hashed as the
    /// bytes come) apart, as writers keep them.
    fn split(self) -> (Option<Md5>, Option<sha1::Sha1>) {
        match self {
            Hasher::Md5(md5) => (Some(md5), None),
            Hasher::Sha1(sha1) => (None, Some(sha1)),
        }
    }

    /// `split` undone (None when the writer computed no digest).
    fn join(md5: Option<Md5>, sha1: Option<sha1::Sha1>) -> Option<Hasher> {
        match (md5, sha1) {
            (Some(md5), _) => Some(Hasher::Md5(md5)),
            (None, Some(sha1)) => Some(Hasher::Sha1(sha1)),
            (None, None) => None,
        }
    }

    /// The digest's hex, and an md5's checkpoints when the `size`-byte content keeps them
    /// (`store::checkpoints`).
    pub fn finish(self, size: u64) -> (String, Option<super::checkpoints::Checkpoints>) {
        match self {
            Hasher::Md5(h) => {
                let (digest, marks) = h.finalize_marked();
                let c = super::checkpoints::Checkpoints::from_marks(size, marks);
                (crate::store::meta::hex(&digest), c)
            }
            sha1 => (sha1.hex(), None),
        }
    }

    pub fn hex(self) -> String {
        match self {
            Hasher::Md5(h) => crate::store::meta::hex(&h.finalize()),
            Hasher::Sha1(h) => crate::store::meta::hex(&h.finalize()),
        }
    }
}

pub struct TempFile {
    path: PathBuf,
    /// Hashes what it writes.
    out: Option<Appender>,
}

/// A finished, fdatasynced temp file.
pub struct Written {
    pub tmp: PathBuf,
    pub digest: String,
    pub size: u64,
}

/// A temp file's name: unique in the process (a per-thread random part and a count), so one
/// random read serves a thread's every temp file.
fn random_name() -> String {
    thread_local! {
        static NAMES: (String, std::cell::Cell<u64>) =
            (crate::codec::random_hex(8), std::cell::Cell::new(0));
    }
    NAMES.with(|(prefix, n)| {
        n.set(n.get() + 1);
        format!("{prefix}{:016x}", n.get())
    })
}

/// `<root>/files/_tmp/<random_name()>`, built in one buffer (every small upload makes one).
fn temp_path(root: &Path) -> PathBuf {
    let name = random_name();
    let mut p = std::ffi::OsString::with_capacity(root.as_os_str().len() + 12 + name.len());
    p.push(root.as_os_str());
    if !(p.is_empty() || p.as_encoded_bytes().ends_with(b"/")) {
        p.push("/");
    }
    p.push("files/_tmp/");
    p.push(&name);
    let p = PathBuf::from(p);
    debug_assert_eq!(p, root.join("files").join("_tmp").join(&name));
    p
}

/// Sequential writes into an open file from a position, gathered into 1 MiB io_uring writes,
/// with flush-behind (direct writes: 1 MiB writes at aligned positions, the last one padded
/// and the file cut back to its length before the sync). Used by temp files and by tus uploads (which resume at their offset).
/// One write is in flight while the next buffer fills (the kernel copies one chunk while the
/// caller hashes the next; a direct write, which waits for the device, may have more:
/// [`DIRECT_WRITES_IN_FLIGHT`]), and the flush-behind fdatasync runs beside the writes (at
/// most one at a time, so dirty data stays under two flush intervals); `finish` waits for
/// both.
pub struct Appender {
    file: Out,
    pos: u64,
    /// The next write's bytes, and their md5 when one is computed (`hashing`).
    buf: Buffer,
    /// The sha1 when one is computed: hashed as bytes arrive.
    sha1: Option<sha1::Sha1>,
    /// The writes in flight, oldest first; each ends with its byte count.
    writing: Vec<JoinHandle<io::Result<u64>>>,
    syncing: Option<JoinHandle<io::Result<()>>>,
    /// The write buffer is lent (`lend`), holding this many bytes when it was (at most
    /// [`WRITE_BUFFER_BYTES`]; 32 bits keep the appender, which upload parts hold by value,
    /// as small as it was with one write in flight).
    lent: Option<u32>,
    /// The last write was padded to the direct-I/O alignment: the file is cut back to `pos`
    /// before its sync, and nothing more may be written.
    padded: bool,
    /// The free space promised to this upload: each write gives its bytes back once done.
    claim: super::space::Claim,
}

/// Direct writes in flight per appender while its executor has few writers
/// ([`super::hashing::few_writers`]; else one). A direct write returns when the device has
/// the bytes (about 1.5 ms per MiB here while the disk also serves the sender's reads), so
/// with one in flight a fast sender waits for each in turn: a 1 GiB replication spent 1.1-1.7
/// of its 1.6-2.1 s waiting for writes with one, 0.4-1.1 s with two and 0.13-0.15 s with four,
/// where the md5 beside the executor became the bound. Many writers keep the disk busy
/// together; one in flight each bounds their memory (a MiB per write) as before.
const DIRECT_WRITES_IN_FLIGHT: usize = 4;

/// The file an appender writes: through the page cache, or around it (`O_DIRECT`).
#[derive(Clone)]
enum Out {
    Buffered(Rc<BufferedFile>),
    Direct(Rc<DmaFile>),
}

impl Out {
    async fn fdatasync(&self) -> io::Result<()> {
        match self {
            Out::Buffered(f) => f.fdatasync().await,
            Out::Direct(f) => f.fdatasync().await,
        }
        .map_err(io::Error::from)
    }

    async fn close(self) -> io::Result<()> {
        let shared = || io::Error::other("file still shared");
        match self {
            Out::Buffered(f) => Rc::try_unwrap(f).map_err(|_| shared())?.close().await,
            Out::Direct(f) => Rc::try_unwrap(f).map_err(|_| shared())?.close().await,
        }
        .map_err(io::Error::from)
    }

    /// Writes `chunk` at `at`, whole or not at all (a short write, a full disk, is an
    /// error). A direct write goes from DMA memory, padded with zeros to the alignment
    /// (heap memory is copied into DMA memory first).
    async fn write_at(&self, chunk: Memory, at: u64) -> io::Result<()> {
        let (n, want) = match (self, chunk) {
            (Out::Buffered(f), Memory::Heap(v)) => {
                let len = v.len();
                (f.write_at(v, at).await, len)
            }
            (Out::Buffered(f), dma) => {
                let v = dma.bytes().to_vec();
                let len = v.len();
                (f.write_at(v, at).await, len)
            }
            (Out::Direct(f), chunk) => {
                let align = f.alignment() as usize;
                assert!(
                    at.is_multiple_of(align as u64),
                    "a direct write starts aligned"
                );
                let len = chunk.len();
                let size = len.next_multiple_of(align);
                let buf = match chunk {
                    Memory::Dma { buf, .. } if buf.len() >= size => buf,
                    heap => {
                        let mut buf = Pooled::take(f, size);
                        buf.as_bytes_mut()[..len].copy_from_slice(heap.bytes());
                        buf
                    }
                };
                let mut buf = buf.into_inner();
                buf.as_bytes_mut()[len..size].fill(0);
                buf.trim_to_size(size);
                // Written from a shared reference, so that the buffer goes back to the pool
                // once the ring has let go of it.
                let buf = Rc::new(buf);
                let n = f.write_rc_at(buf.clone(), at).await;
                if let Ok(buf) = Rc::try_unwrap(buf) {
                    super::dma::give_back(buf);
                }
                (n, size)
            }
        };
        whole(n, want)
    }
}

/// A write's outcome, whole or an error: regular files write short only when the disk is
/// full, and partial data is never kept.
fn whole(n: glommio::Result<usize, ()>, want: usize) -> io::Result<()> {
    if n.map_err(io::Error::from)? != want {
        return Err(io::Error::new(
            io::ErrorKind::StorageFull,
            "short write: disk full?",
        ));
    }
    Ok(())
}

/// Writes `data` (aligned, whole: [`Appender::takes_as_is`]) at `at` of `f`, from where it
/// is, whole or not at all.
async fn direct_write_shared(f: &DmaFile, data: bytes::Bytes, at: u64) -> io::Result<()> {
    assert!(
        at.is_multiple_of(f.alignment()),
        "a direct write starts aligned"
    );
    let want = data.len();
    whole(f.write_foreign_at(data, at).await, want)
}

async fn joined(task: Option<JoinHandle<io::Result<()>>>) -> io::Result<()> {
    match task {
        None => Ok(()),
        Some(t) => t
            .await
            .unwrap_or_else(|| Err(io::Error::other("file write task was cancelled"))),
    }
}

impl Appender {
    /// Writes will start at `pos`.
    pub fn new(file: BufferedFile, pos: u64) -> Appender {
        Appender::to(Out::Buffered(Rc::new(file)), pos)
    }

    fn to(file: Out, pos: u64) -> Appender {
        Appender {
            file,
            pos,
            buf: Buffer::new(WRITE_BUFFER_BYTES, None),
            sha1: None,
            writing: Default::default(),
            syncing: None,
            lent: None,
            padded: false,
            claim: super::space::Claim::default(),
        }
    }

    /// An appender that also computes the digest of what it writes (`finish_hashed`). An
    /// md5 is computed together with the executor's other writes (`store::hashing`).
    pub fn hashing(file: BufferedFile, pos: u64, hasher: Hasher) -> Appender {
        Appender::to(Out::Buffered(Rc::new(file)), pos).with(hasher)
    }

    /// `hashing`, writing a new file around the page cache (`O_DIRECT`, [`direct_open`]):
    /// the bytes go from the write buffer to the device, with no copy into the page cache.
    fn direct(file: DmaFile, hasher: Option<Hasher>) -> Appender {
        let file = Rc::new(file);
        let weak = Rc::downgrade(&file);
        let mut a = Appender::to(Out::Direct(file), 0);
        if let Some(hasher) = hasher {
            a = a.with(hasher);
        }
        // The write buffers are DMA memory of the file: written without a copy.
        let md5 = a.buf.into_md5();
        a.buf = Buffer::dma(WRITE_BUFFER_BYTES, md5, move |n| {
            weak.upgrade().map(|f| Pooled::take(&f, n))
        });
        a
    }

    fn with(self, hasher: Hasher) -> Appender {
        let (md5, sha1) = hasher.split();
        Appender {
            buf: Buffer::new(WRITE_BUFFER_BYTES, md5),
            sha1,
            ..self
        }
    }

    /// The position after the last byte given to `write`.
    pub fn size(&self) -> u64 {
        self.pos + self.buf.len() as u64
    }

    /// Holds `claim`, the free space promised to what is written here: given back as the
    /// writes land, the rest when the appender is done or dropped.
    pub fn claim(&mut self, claim: super::space::Claim) {
        self.claim = claim;
    }

    /// Waits for the writes in flight until at most `left` are: their bytes are on the
    /// filesystem, no longer promised.
    async fn landed(&mut self, left: usize) -> io::Result<()> {
        while self.writing.len() > left {
            let bytes = self
                .writing
                .remove(0)
                .await
                .unwrap_or_else(|| Err(io::Error::other("file write task was cancelled")))?;
            self.claim.wrote(bytes);
        }
        Ok(())
    }

    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.append(data, |buf, r| buf.extend(&data[r])).await
    }

    /// `write`, for bytes held shared (a peer's response body): a lone writer's md5 beside
    /// the executor reads them where they are ([`Buffer::extend_shared`]).
    /// Bytes that can go to the disk from where they are ([`Appender::takes_as_is`]) are
    /// written so, with no copy.
    pub async fn write_shared(&mut self, data: &bytes::Bytes) -> io::Result<()> {
        if let Some(f) = self.takes_as_is(data) {
            debug_assert!(self.lent.is_none(), "write while the write buffer is lent");
            crate::failpoint::io("write.eio")?;
            let len = data.len();
            self.ready_to_write(len).await?;
            let (data, at) = (data.clone(), self.pos);
            return self
                .started(len, async move { direct_write_shared(&f, data, at).await })
                .await;
        }
        self.append(data, |buf, r| buf.extend_shared(&data.slice(r)))
            .await
    }

    /// The file to write `data` to from where it is, when it can be: one whole direct write
    /// (memory aligned for it, [`WRITE_BUFFER_BYTES`] long: a `dma::Shareable` filled), with
    /// nothing gathered before it and no digest computed here (the caller checks the
    /// bytes: a replicated file's md5 chain reads the same memory).
    fn takes_as_is(&self, data: &bytes::Bytes) -> Option<Rc<DmaFile>> {
        let Out::Direct(f) = &self.file else {
            return None;
        };
        let as_is = data.len() == WRITE_BUFFER_BYTES
            && (data.as_ptr() as usize).is_multiple_of(f.alignment() as usize)
            && self.buf.is_empty()
            && !self.buf.hashes()
            && self.sha1.is_none()
            && !self.padded;
        as_is.then(|| f.clone())
    }

    /// Appends `data` to the write buffer by `extend` (a range of `data` at a time, as much
    /// as the buffer has room for), writing each buffer filled.
    async fn append(
        &mut self,
        data: &[u8],
        extend: impl Fn(&Buffer, std::ops::Range<usize>) -> bool,
    ) -> io::Result<()> {
        debug_assert!(self.lent.is_none(), "write while the write buffer is lent");
        crate::failpoint::io("write.eio")?;
        if let Some(h) = self.sha1.as_mut() {
            h.update(data);
        }
        let mut at = 0;
        while at < data.len() {
            let room = WRITE_BUFFER_BYTES - self.buf.len();
            let n = room.min(data.len() - at);
            if extend(&self.buf, at..at + n) {
                self.buf.hashed().await;
            }
            at += n;
            if self.buf.len() == WRITE_BUFFER_BYTES {
                self.flush().await?;
            }
        }
        Ok(())
    }

    /// The write buffer, lent so that the next bytes of the file are received straight into
    /// it (no copy): it has room for at least one byte after the bytes it holds, and at most
    /// `room_max()` are to be appended. Give it back with [`Appender::commit`]; until then
    /// the appender holds nothing (dropping the buffer drops the bytes gathered: abandon
    /// the file then).
    pub fn lend(&mut self) -> Memory {
        assert!(
            self.lent.is_none(),
            "the write buffer is lent once at a time"
        );
        let v = self.buf.lend();
        self.lent = Some(u32::try_from(v.len()).expect("a write buffer's length fits"));
        v
    }

    /// How many bytes to append to a lent buffer at most: what is left of it, and no more
    /// than [`LEND_BYTES_MAX`].
    pub fn room_max(v: &Memory) -> usize {
        debug_assert!(v.len() < WRITE_BUFFER_BYTES);
        (WRITE_BUFFER_BYTES - v.len()).min(LEND_BYTES_MAX)
    }

    /// Takes back the buffer of [`Appender::lend`]: the bytes appended to it since are the
    /// file's next bytes, written like `write`'s.
    pub async fn commit(&mut self, v: Memory) -> io::Result<()> {
        let from = self.lent.take().expect("commit of a buffer lent") as usize;
        crate::failpoint::io("write.eio")?;
        assert!(from <= v.len() && v.len() <= WRITE_BUFFER_BYTES);
        if let Some(h) = self.sha1.as_mut() {
            h.update(&v.bytes()[from..]);
        }
        if self.buf.restore(v) {
            self.buf.hashed().await;
        }
        if self.buf.len() == WRITE_BUFFER_BYTES {
            self.flush().await?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.ready_to_write(self.buf.len()).await?;
        self.buf.settle().await;
        let chunk = self.buf.take();
        let (len, at) = (chunk.len(), self.pos);
        let file = self.file.clone();
        self.started(len, async move { file.write_at(chunk, at).await })
            .await
    }

    /// Waits until a write of `len` bytes may start: few enough writes in flight, and the
    /// free space for it covered.
    async fn ready_to_write(&mut self, len: usize) -> io::Result<()> {
        assert!(!self.padded, "a write after the padded last one");
        let in_flight = match self.file {
            Out::Direct(_) if super::hashing::few_writers() => DIRECT_WRITES_IN_FLIGHT,
            _ => 1,
        };
        self.landed(in_flight - 1).await?;
        self.claim.cover(len as u64).await
    }

    /// Runs `write`, of the file's next `len` bytes, beside the caller.
    async fn started(
        &mut self,
        len: usize,
        write: impl std::future::Future<Output = io::Result<()>> + 'static,
    ) -> io::Result<()> {
        let write = async move { write.await.map(|()| len as u64) };
        self.writing.push(glommio::spawn_local(write).detach());
        // A direct write is padded when it is not whole: only the last one is not.
        self.padded = matches!(self.file, Out::Direct(_)) && len != WRITE_BUFFER_BYTES;
        self.pos += len as u64;
        if matches!(self.file, Out::Buffered(_))
            && self.pos % FLUSH_BEHIND_BYTES < len as u64
            && self.pos >= FLUSH_BEHIND_BYTES
        {
            // Dirty page-cache pages stay bounded (direct writes leave none).
            joined(self.syncing.take()).await?;
            let file = self.file.clone();
            self.syncing =
                Some(glommio::spawn_local(async move { file.fdatasync().await }).detach());
        }
        glommio::yield_if_needed().await;
        Ok(())
    }

    /// Flushes, fdatasyncs (through io_uring, so many uploads sync in parallel and the
    /// filesystem can merge their flushes) and closes: every byte written is durable.
    /// `syncfs` per batch would flush fewer times, but it does not reach every filesystem
    /// (FUSE ignores it: the LazyFS power-cut test catches that), so each file is fdatasynced.
    /// Returns the position after the last byte.
    pub async fn finish(self) -> io::Result<u64> {
        Ok(self.finish_hashed().await?.0)
    }

    /// `finish`, and the digest of everything written (None unless made by `hashing`).
    pub async fn finish_hashed(mut self) -> io::Result<(u64, Option<Hasher>)> {
        if self.lent.is_some() {
            return Err(io::Error::other(
                "the write buffer was lent and not given back",
            ));
        }
        self.flush().await?;
        self.landed(0).await?;
        joined(self.syncing.take()).await?;
        if let (true, Out::Direct(f)) = (self.padded, &self.file) {
            f.truncate(self.pos).await.map_err(io::Error::from)?;
        }
        self.file.fdatasync().await?;
        crate::failpoint::hit("write.synced");
        let pos = self.pos;
        self.file.close().await?;
        self.buf.hashed().await; // a lone writer's md5 may still be beside the executor
        Ok((pos, Hasher::join(self.buf.into_md5(), self.sha1)))
    }

    /// Closes without syncing (the bytes written are abandoned by the caller).
    pub async fn abandon(mut self) {
        for task in std::mem::take(&mut self.writing) {
            let _ = task.await;
        }
        let _ = joined(self.syncing.take()).await;
        let _ = self.file.close().await;
    }
}

/// Files expected to be at least this large are written around the page cache: their
/// bytes go from the write buffer to the device (`O_DIRECT`, as MinIO writes objects),
/// instead of being copied into the page cache and written back at the `fdatasync`. On a
/// virtual machine that copy costs more CPU than the md5 of the same bytes (measured with
/// `dd`: 2.0 ms of system time per MiB buffered, 0.27 direct). Smaller files keep the page
/// cache: they are often read again soon, and one padded block would gain little.
pub const DIRECT_BYTES_MIN: u64 = 256 << 10;

thread_local! {
    /// Direct writes work on this executor's filesystem (false after one was refused).
    static DIRECT: std::cell::Cell<bool> = const { std::cell::Cell::new(true) };
}

/// Creates a new file at `path` for direct writes (`O_DIRECT`). Ok(None) where the
/// filesystem does not take them (or glommio cannot read the device's queue limits): the
/// executor then writes through the page cache, and says so once.
async fn direct_open(path: &Path) -> io::Result<Option<DmaFile>> {
    use futures_lite::FutureExt;
    if !DIRECT.get() {
        return Ok(None);
    }
    let mut options = glommio::io::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    let open = async {
        if crate::failpoint::refused("write.no_direct") {
            return Err(io::Error::from_raw_os_error(libc::EINVAL).into());
        }
        options.dma_open(path).await
    };
    let refused = match std::panic::AssertUnwindSafe(open).catch_unwind().await {
        Ok(Ok(file)) => return Ok(Some(file)),
        Ok(Err(e)) => {
            let e = io::Error::from(e);
            if e.raw_os_error() != Some(libc::EINVAL) {
                return Err(e);
            }
            e.to_string()
        }
        Err(_) => "glommio could not read the device's limits".to_string(),
    };
    DIRECT.set(false);
    tracing::warn!(
        dir = %path.parent().unwrap_or(path).display(),
        cause = %refused,
        "direct writes (O_DIRECT) refused: large uploads are written through the page cache"
    );
    Ok(None)
}

impl TempFile {
    /// Creates `<root>/files/_tmp/<random>`, for about `expected` bytes (0: not known).
    /// From [`DIRECT_BYTES_MIN`] on, the file is written around the page cache where the
    /// filesystem allows it ([`direct_open`]).
    pub async fn create(root: &Path, sha1: bool, expected: u64) -> io::Result<TempFile> {
        TempFile::create_with(root, Some(Hasher::new(sha1)), expected).await
    }

    /// [`TempFile::create`] of a file whose digest its writer checks itself (a fetched file
    /// checked against its checkpoints): `finish` gives an empty digest.
    pub async fn create_unhashed(root: &Path, expected: u64) -> io::Result<TempFile> {
        TempFile::create_with(root, None, expected).await
    }

    async fn create_with(
        root: &Path,
        hasher: Option<Hasher>,
        expected: u64,
    ) -> io::Result<TempFile> {
        let path = temp_path(root);
        if expected >= DIRECT_BYTES_MIN {
            if let Some(file) = direct_open(&path).await? {
                return Ok(TempFile {
                    path,
                    out: Some(Appender::direct(file, hasher)),
                });
            }
        }
        let file = BufferedFile::create(&path).await.map_err(io::Error::from)?;
        Ok(TempFile {
            path,
            out: Some(match hasher {
                Some(hasher) => Appender::hashing(file, 0, hasher),
                None => Appender::new(file, 0),
            }),
        })
    }

    pub fn size(&self) -> u64 {
        self.out.as_ref().map_or(0, Appender::size)
    }

    /// [`Appender::claim`] of the temp file's writer.
    pub fn claim(&mut self, claim: super::space::Claim) {
        self.out.as_mut().expect("file until finish").claim(claim);
    }

    pub async fn write(&mut self, data: &[u8]) -> io::Result<()> {
        self.out
            .as_mut()
            .expect("file until finish")
            .write(data)
            .await
    }

    /// [`Appender::write_shared`] of the temp file's writer.
    pub async fn write_shared(&mut self, data: &bytes::Bytes) -> io::Result<()> {
        self.out
            .as_mut()
            .expect("file until finish")
            .write_shared(data)
            .await
    }

    /// [`Appender::lend`] of the temp file's writer.
    pub fn lend(&mut self) -> Memory {
        self.out.as_mut().expect("file until finish").lend()
    }

    /// [`Appender::commit`] of the temp file's writer.
    pub async fn commit(&mut self, v: Memory) -> io::Result<()> {
        self.out
            .as_mut()
            .expect("file until finish")
            .commit(v)
            .await
    }

    /// Flushes, fdatasyncs and closes (`Appender::finish`): the content is durable in the
    /// temp file. A large file's md5 checkpoints are kept with it
    /// ([`super::checkpoints::save`]).
    pub async fn finish(mut self) -> io::Result<Written> {
        let out = self.out.take().expect("file until finish");
        let (size, hasher) = out.finish_hashed().await?;
        let (digest, checkpoints) = match hasher {
            Some(h) => h.finish(size),
            None => (String::new(), None),
        };
        let tmp = std::mem::take(&mut self.path);
        if let Some(c) = checkpoints {
            save_checkpoints(&tmp, c).await;
        }
        Ok(Written { tmp, digest, size })
    }
}

/// Keeps `c` with the file at `path` (on the blocking pool); a failure only costs the
/// file's fetchers their checkpoints, so it is logged, not returned.
pub async fn save_checkpoints(path: &Path, c: super::checkpoints::Checkpoints) {
    let at = path.to_path_buf();
    let saved = glommio::executor()
        .spawn_blocking(move || super::checkpoints::save(&at, &c))
        .await;
    if let Err(e) = saved {
        tracing::warn!(path = %path.display(), cause = %e, "md5 checkpoints not kept");
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        if self.path.as_os_str().is_empty() {
            return;
        }
        let path = std::mem::take(&mut self.path);
        let out = self.out.take();
        glommio::spawn_local(async move {
            if let Some(out) = out {
                out.abandon().await;
            }
            let _ = glommio::io::remove(&path).await;
        })
        .detach();
    }
}

impl Written {
    /// The temp file was moved into place by the metadata commit: nothing to remove.
    pub fn moved(mut self) {
        self.tmp = PathBuf::new();
    }

    /// The content stays where it is, owned by someone else (a tus upload's data file).
    pub fn release(self) {
        self.moved()
    }
}

impl Drop for Written {
    fn drop(&mut self) {
        if self.tmp.as_os_str().is_empty() {
            return;
        }
        let path = std::mem::take(&mut self.tmp);
        glommio::spawn_local(async move {
            let _ = glommio::io::remove(&path).await;
        })
        .detach();
    }
}

/// Contents up to this size that are whole in memory are written by [`Gathered::write`].
pub const WHOLE_BYTES_MAX: usize = 64 << 10;

/// [`Gathered::write`] jobs on one executor's blocking pool at once. Each holds a thread
/// through its fdatasync; the pool also runs the metadata commits, which must not queue
/// behind a slow disk's fsyncs, so some of its threads stay free for them (the server
/// checks this bound against the pool's size). More writes wait on the executor.
pub const WHOLE_JOBS_MAX: u64 = 12;

thread_local! {
    static WHOLE_JOBS: Rc<glommio::sync::Semaphore> =
        Rc::new(glommio::sync::Semaphore::new(WHOLE_JOBS_MAX));
}

/// A small content gathered in memory (at most [`WHOLE_BYTES_MAX`]) and then written whole:
/// its md5 is computed with the executor's other writes (`store::hashing`), and the create,
/// the write, the fdatasync and the close of its temp file are one job on the blocking pool,
/// one thread hop where io_uring takes four (on ext4 the create, the open's statx, the
/// buffered write to a new file and the fdatasync each go to io_uring's worker threads).
pub struct Gathered {
    buf: Buffer,
    sha1: Option<sha1::Sha1>,
    capacity: usize,
}

impl Gathered {
    pub fn new(capacity: usize, sha1: bool) -> Gathered {
        assert!(capacity <= WHOLE_BYTES_MAX, "large contents are streamed");
        let (md5, sha1) = Hasher::new(sha1).split();
        Gathered {
            buf: Buffer::new(capacity, md5),
            sha1,
            capacity,
        }
    }

    /// Whether `n` more bytes fit.
    pub fn fits(&self, n: usize) -> bool {
        self.buf.len() + n <= self.capacity
    }

    pub async fn extend(&mut self, data: &[u8]) {
        assert!(self.fits(data.len()), "gathered beyond its capacity");
        if let Some(h) = &mut self.sha1 {
            h.update(data);
        }
        if self.buf.extend(data) {
            self.buf.hashed().await;
        }
    }

    /// The bytes gathered, for a temp file after all (their digest is computed again there).
    pub fn into_bytes(self) -> Vec<u8> {
        self.buf.take().bytes().to_vec()
    }

    /// Writes what was gathered to a new temp file under `<root>/files/_tmp/` and
    /// fdatasyncs it, as `TempFile` does. A caller that goes away before the job ends leaves
    /// no file behind.
    pub async fn write(self, root: &Path) -> io::Result<Written> {
        use std::sync::{Arc, Mutex};
        self.buf.settle().await;
        let data = self.buf.take();
        self.buf.hashed().await; // a lone writer's md5 may still be beside the executor
        let digest = Hasher::join(self.buf.into_md5(), self.sha1)
            .expect("a gathered content has a digest")
            .hex();
        let data = match data {
            Memory::Heap(v) => v,
            Memory::Dma { .. } => unreachable!("gathered on the heap"),
        };
        let size = data.len() as u64;
        let slot = WHOLE_JOBS
            .with(Rc::clone)
            .acquire_static_permit(1)
            .await
            .map_err(|e| io::Error::other(e.to_string()))?;
        let tmp = temp_path(root);
        let fate = Arc::new(Mutex::new(Job::Running));
        let mut waiting = Waiting {
            fate: fate.clone(),
            tmp: Some(tmp.clone()),
        };
        let at = tmp.clone();
        let done = glommio::executor()
            .spawn_blocking(move || {
                let written = write_synced(&at, &data);
                let mut fate = fate.lock().unwrap_or_else(|e| e.into_inner());
                if *fate == Job::Abandoned {
                    let _ = std::fs::remove_file(&at);
                } else {
                    *fate = Job::Done;
                }
                written
            })
            .await;
        waiting.tmp = None;
        drop(slot);
        done?;
        Ok(Written { tmp, digest, size })
    }
}

/// Where a content is received: gathered in memory and written whole ([`Gathered`]) when its
/// expected length is at most [`WHOLE_BYTES_MAX`] and the executor's memory budget for small
/// uploads holds it, else streamed into a [`TempFile`].
pub enum Sink<'b> {
    Whole(Gathered, Reservation<'b>),
    File(TempFile),
}

impl<'b> Sink<'b> {
    /// For a content of `expected` bytes (0: not known).
    pub async fn start(
        root: &Path,
        budget: &'b MemoryBudget,
        sha1: bool,
        expected: u64,
    ) -> io::Result<Sink<'b>> {
        if expected > 0 && expected <= WHOLE_BYTES_MAX as u64 {
            let mut held = budget.start();
            if budget.reserve(&mut held, expected) {
                return Ok(Sink::Whole(Gathered::new(expected as usize, sha1), held));
            }
        }
        Ok(Sink::File(TempFile::create(root, sha1, expected).await?))
    }

    /// Holds `claim` while the content is written ([`Appender::claim`]). A content gathered
    /// in memory is small (a claim starts at 1 MiB): its claim is given back at once.
    pub fn claim(&mut self, claim: super::space::Claim) {
        if let Sink::File(t) = self {
            t.claim(claim);
        }
    }

    /// Appends `data`. More than the expected length goes on in a temp file (the caller's
    /// length checks refuse it at the end).
    pub async fn write(&mut self, root: &Path, data: &[u8]) -> io::Result<()> {
        if let Sink::Whole(gathered, _) = self {
            if gathered.fits(data.len()) {
                gathered.extend(data).await;
                return Ok(());
            }
            let sha1 = gathered.sha1.is_some();
            let t = TempFile::create(root, sha1, gathered.capacity as u64).await?;
            let Sink::Whole(gathered, _) = std::mem::replace(self, Sink::File(t)) else {
                unreachable!("matched above")
            };
            let Sink::File(t) = self else {
                unreachable!("replaced above")
            };
            t.write(&gathered.into_bytes()).await?;
        }
        let Sink::File(t) = self else {
            unreachable!("spilled above")
        };
        t.write(data).await
    }

    /// Everything written, durable in its temp file.
    pub async fn finish(self, root: &Path) -> io::Result<Written> {
        match self {
            Sink::File(t) => t.finish().await,
            Sink::Whole(gathered, held) => {
                let written = gathered.write(root).await;
                drop(held);
                written
            }
        }
    }
}

/// Writes `data`, whole in memory, to a new fdatasynced temp file: [`Gathered::write`] up to
/// [`WHOLE_BYTES_MAX`], a [`TempFile`] above.
pub async fn write_content(root: &Path, data: &[u8], sha1: bool) -> io::Result<Written> {
    if data.len() <= WHOLE_BYTES_MAX {
        let mut g = Gathered::new(data.len(), sha1);
        g.extend(data).await;
        return g.write(root).await;
    }
    let mut t = TempFile::create(root, sha1, data.len() as u64).await?;
    t.write(data).await?;
    t.finish().await
}

/// Where a [`Gathered::write`] job stands, for its caller's drop.
#[derive(PartialEq, Eq)]
enum Job {
    Running,
    /// The caller went away: the job removes what it wrote.
    Abandoned,
    Done,
}

/// The caller's side of a [`Gathered::write`] job while it waits.
struct Waiting {
    fate: std::sync::Arc<std::sync::Mutex<Job>>,
    /// The temp file, until the caller has the job's outcome.
    tmp: Option<PathBuf>,
}

impl Drop for Waiting {
    fn drop(&mut self) {
        let Some(tmp) = self.tmp.take() else {
            return;
        };
        let mut fate = self.fate.lock().unwrap_or_else(|e| e.into_inner());
        if *fate == Job::Running {
            *fate = Job::Abandoned;
            return;
        }
        drop(fate);
        glommio::spawn_local(async move {
            let _ = glommio::io::remove(&tmp).await;
        })
        .detach();
    }
}

/// Blocking: creates `path` (it must not exist), writes `data`, fdatasyncs and closes it.
/// Nothing is left at `path` on an error.
fn write_synced(path: &Path, data: &[u8]) -> io::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o666)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)?;
    let written = crate::failpoint::io("write.eio")
        .and_then(|()| file.write_all(data))
        .and_then(|()| file.sync_data());
    drop(file);
    if let Err(e) = written {
        let _ = std::fs::remove_file(path);
        return Err(e);
    }
    crate::failpoint::hit("write.synced");
    Ok(())
}

/// Removes a finished temp file that was not moved into place (dedup hit, rejected upload).
pub async fn discard(mut written: Written) {
    let path = std::mem::take(&mut written.tmp);
    let _ = glommio::io::remove(&path).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Runs `f` on an executor of its own, with the root of a new runtime dir.
    fn on_executor<F, Fut>(f: F)
    where
        F: FnOnce(PathBuf) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("files").join("_tmp")).unwrap();
        let root = d.path().to_path_buf();
        glommio::LocalExecutorBuilder::default()
            .spawn(move || f(root))
            .unwrap()
            .join()
            .unwrap();
    }

    fn temps(root: &Path) -> usize {
        std::fs::read_dir(root.join("files").join("_tmp"))
            .unwrap()
            .count()
    }

    #[test]
    fn a_gathered_content_is_written_whole_with_its_digest() {
        on_executor(|root| async move {
            for sha1 in [false, true] {
                let mut g = Gathered::new(10_000, sha1);
                for piece in [&b"hello "[..], b"gathered ", b"world"] {
                    assert!(g.fits(piece.len()));
                    g.extend(piece).await;
                }
                assert!(!g.fits(10_000));
                let w = g.write(&root).await.unwrap();
                let mut h = Hasher::new(sha1);
                h.update(b"hello gathered world");
                assert_eq!(w.digest, h.hex());
                assert_eq!(w.size, 20);
                assert_eq!(std::fs::read(&w.tmp).unwrap(), b"hello gathered world");
                assert!(w.tmp.starts_with(root.join("files").join("_tmp")));
                discard(w).await;
            }
            assert_eq!(temps(&root), 0);
        });
    }

    #[test]
    fn a_lone_large_file_has_several_direct_writes_in_flight_and_lands_whole() {
        on_executor(|root| async move {
            let data: Vec<u8> = (0..9_500_000u32).map(|i| (i % 251) as u8).collect();
            let mut tmp = TempFile::create(&root, false, data.len() as u64)
                .await
                .unwrap();
            let direct = matches!(tmp.out.as_ref().unwrap().file, Out::Direct(_));
            let mut most = 0;
            for piece in data.chunks(300_001) {
                tmp.write_shared(&bytes::Bytes::copy_from_slice(piece))
                    .await
                    .unwrap();
                most = most.max(tmp.out.as_ref().unwrap().writing.len());
            }
            if direct {
                assert!(super::super::hashing::few_writers());
                assert!(most > 1, "one writer: more than one direct write in flight");
                assert!(most <= DIRECT_WRITES_IN_FLIGHT);
            } else {
                assert_eq!(most, 1, "writes through the page cache: one in flight");
            }
            let w = tmp.finish().await.unwrap();
            assert_eq!(w.size, data.len() as u64);
            assert_eq!(w.digest, Hasher::of_reader(&data[..], false).unwrap());
            assert_eq!(std::fs::read(&w.tmp).unwrap(), data);
            discard(w).await;
        });
    }

    #[test]
    fn an_upload_gives_back_every_direct_write_buffer_it_took_and_the_next_takes_them() {
        use crate::store::dma::{made, spares};
        on_executor(|root| async move {
            let mut kept = None;
            for round in 0..2 {
                let made_before = made();
                let mut fewest = spares();
                // Whole buffers only (the last one lent again for nothing, as at the end of a
                // body of exactly 1 MiB), and a last write padded to the alignment.
                for len in [5u32 << 20, 5_300_000] {
                    let data: Vec<u8> = (0..len).map(|i| (i % 241) as u8).collect();
                    let mut tmp = TempFile::create(&root, false, data.len() as u64)
                        .await
                        .unwrap();
                    if !matches!(tmp.out.as_ref().unwrap().file, Out::Direct(_)) {
                        return; // no O_DIRECT on this filesystem: no buffers to keep
                    }
                    for (i, piece) in data.chunks(200_003).enumerate() {
                        if i % 2 == 0 {
                            tmp.write(piece).await.unwrap();
                        } else {
                            // Received straight into the lent buffer, as a body is.
                            let mut v = tmp.lend();
                            let n = Appender::room_max(&v).min(piece.len());
                            crate::http::conn::Room::put(&mut v, &piece[..n]);
                            tmp.commit(v).await.unwrap();
                            tmp.write(&piece[n..]).await.unwrap();
                        }
                        fewest = fewest.min(spares());
                    }
                    // Lent once more and given back empty: the end of a body that held no
                    // more of the file.
                    let v = tmp.lend();
                    tmp.commit(v).await.unwrap();
                    let w = tmp.finish().await.unwrap();
                    assert_eq!(std::fs::read(&w.tmp).unwrap(), data);
                    discard(w).await;
                }
                let now = spares();
                assert!(now >= 1, "round {round}: {now} spare buffers");
                if let Some(kept) = kept {
                    assert_eq!(made(), made_before, "the second round made no buffer");
                    assert_eq!(
                        now, kept,
                        "every buffer taken came back, the padded last too"
                    );
                    assert!(
                        fewest < kept,
                        "the second round wrote from the spare buffers"
                    );
                }
                kept = Some(now);
            }
        });
    }

    /// Whole shareable buffers (a replicated file's, received from the socket) go to the
    /// disk from where they are: no direct-write buffer is taken for them. Bytes that must be
    /// hashed here, or that follow bytes gathered before them, are copied as any others.
    #[test]
    fn whole_shared_buffers_are_written_from_where_they_are_unless_hashed_or_unaligned() {
        use crate::store::dma::{taken, Shareable, BUFFER_BYTES};
        fn shared(data: &[u8]) -> bytes::Bytes {
            let mut b = Shareable::take();
            for (to, from) in b.room().iter_mut().zip(data) {
                to.write(*from);
            }
            // SAFETY: the first `data.len()` bytes of the room were written above.
            unsafe { b.filled(data.len()) };
            b.share()
        }
        on_executor(|root| async move {
            let len = 3 * BUFFER_BYTES + 1000;
            let data: Vec<u8> = (0..len).map(|i| (i % 239) as u8).collect();
            for (hashed, lead) in [(false, 0), (false, 100), (true, 0)] {
                let mut tmp = if hashed {
                    TempFile::create(&root, false, len as u64).await
                } else {
                    TempFile::create_unhashed(&root, len as u64).await
                }
                .unwrap();
                if !matches!(tmp.out.as_ref().unwrap().file, Out::Direct(_)) {
                    return; // no O_DIRECT on this filesystem
                }
                let taken_before = taken();
                tmp.write(&data[..lead]).await.unwrap();
                let mut at = lead;
                while len - at >= BUFFER_BYTES {
                    tmp.write_shared(&shared(&data[at..at + BUFFER_BYTES]))
                        .await
                        .unwrap();
                    at += BUFFER_BYTES;
                }
                let copied = taken() != taken_before;
                let want_copied = hashed || lead > 0;
                assert_eq!(copied, want_copied, "hashed {hashed}, lead {lead}");
                tmp.write_shared(&shared(&data[at..])).await.unwrap();
                let w = tmp.finish().await.unwrap();
                assert!(std::fs::read(&w.tmp).unwrap() == data, "lead {lead}");
                if hashed {
                    assert_eq!(
                        w.digest,
                        crate::store::write::Hasher::of_reader(&data[..], false).unwrap()
                    );
                }
                discard(w).await;
            }
        });
    }

    #[test]
    fn more_writes_than_job_slots_all_complete() {
        on_executor(|root| async move {
            let n = 3 * WHOLE_JOBS_MAX as usize;
            let writes = (0..n).map(|i| {
                let root = root.clone();
                glommio::spawn_local(async move {
                    let mut g = Gathered::new(100, false);
                    g.extend(&[i as u8; 100]).await;
                    g.write(&root).await.unwrap()
                })
            });
            let handles: Vec<_> = writes.collect();
            for (i, h) in handles.into_iter().enumerate() {
                let w = h.await;
                assert_eq!(std::fs::read(&w.tmp).unwrap(), vec![i as u8; 100]);
                discard(w).await;
            }
        });
    }

    #[test]
    fn a_caller_that_goes_away_leaves_no_temp_file() {
        use futures_lite::FutureExt;
        on_executor(|root| async move {
            for rounds in 0..50u64 {
                let mut g = Gathered::new(4096, false);
                g.extend(&[7; 4096]).await;
                // Dropped while its job runs, or just after it ended, or at once.
                let write = Box::pin(g.write(&root));
                let cut = glommio::timer::sleep(std::time::Duration::from_micros(rounds * 20));
                let _ = async { Some(write.await) }
                    .or(async {
                        cut.await;
                        None
                    })
                    .await;
            }
            let gone = async {
                while temps(&root) > 0 {
                    glommio::timer::sleep(std::time::Duration::from_millis(5)).await;
                }
            };
            let late = async {
                glommio::timer::sleep(std::time::Duration::from_secs(10)).await;
                panic!("temp files left: {}", temps(&root));
            };
            gone.or(late).await;
        });
    }
}
