//! Zero-copy transfer of large file ranges with `sendfile(2)` on a helper thread.
//!
//! Copying through user space costs a second copy per byte (page cache -> buffer -> socket);
//! for large downloads `sendfile` lets the kernel move page-cache pages to the socket, as nginx
//! does. `sendfile` can block (socket buffer full, cold pages), so it never runs on an executor
//! thread: a short-lived thread owns duplicates of both descriptors for the transfer while the
//! connection's task awaits the result; the executor does not touch the socket meanwhile.
//! Transfers are bounded (`THREADS_MAX`); over the bound the caller copies through user space.
//!
//! A range whose pages are all in the page cache (`resident`, by `cachestat(2)`, which never
//! blocks) can instead be sent at once on the executor (`send_now`): the connection's socket is
//! non-blocking, so `sendfile` then takes what the socket buffer holds and never waits, neither
//! for the disk nor for the client. The caller sends whatever is left the ordinary way.
//!
//! A range read once (a peer's replication fetch) that is not in the page cache goes around it
//! (`send_direct`, nginx's `directio`): the helper thread reads it with `O_DIRECT` into
//! reused aligned buffers and sends from them. Filling the page cache would cost a page
//! allocation and a first touch per 4 KiB for bytes nobody reads again, and evict what clients
//! do read; on virtual machines that hand freed memory back to the host, that first touch is
//! the dearest step of the transfer (about 1.5 s of CPU per GiB on the benchmark machines,
//! against 0.04 s for the direct read).

use std::io;
use std::os::fd::RawFd;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

/// Concurrent sendfile transfers in the whole process.
const THREADS_MAX: usize = 256;
/// Bytes per sendfile call (progress is checked between calls).
const CALL_BYTES_MAX: usize = 8 << 20;

static ACTIVE: AtomicUsize = AtomicUsize::new(0);

/// `cachestat(2)` (Linux 6.5; the same number on every architecture).
const SYS_CACHESTAT: libc::c_long = 451;
/// Cleared when the kernel has no `cachestat`: then nothing counts as resident.
static CACHESTAT: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);

/// Whether every page of `file[offset..offset + len]` is in the page cache, so that reading it
/// cannot block on the disk. Never blocks; false when unknown.
pub fn resident(file: RawFd, offset: u64, len: u64) -> bool {
    #[repr(C)]
    struct Range {
        off: u64,
        len: u64,
    }
    #[repr(C)]
    #[derive(Default)]
    struct Stat {
        nr_cache: u64,
        nr_dirty: u64,
        nr_writeback: u64,
        nr_evicted: u64,
        nr_recently_evicted: u64,
    }
    if len == 0 || !CACHESTAT.load(Ordering::Relaxed) {
        return false;
    }
    const PAGE: u64 = 4096;
    let pages = (offset + len).div_ceil(PAGE) - offset / PAGE;
    let range = Range { off: offset, len };
    let mut stat = Stat::default();
    // SAFETY: cachestat reads `range` and writes `stat`, both live #[repr(C)] values of the
    // kernel's layout; `file` is an open descriptor of the caller.
    let r = unsafe {
        libc::syscall(
            SYS_CACHESTAT,
            file,
            &range as *const Range,
            &mut stat as *mut Stat,
            0u32,
        )
    };
    if r != 0 {
        if io::Error::last_os_error().raw_os_error() == Some(libc::ENOSYS) {
            CACHESTAT.store(false, Ordering::Relaxed);
        }
        return false;
    }
    stat.nr_cache >= pages
}

/// Sends `file[offset..offset + len]` to the non-blocking `socket` with `sendfile` until the
/// socket is full; returns the bytes sent. On an executor only for resident ranges (it would
/// block on the disk otherwise; the helper threads use it for any range). An empty read (the
/// file is shorter than its record) is an error.
pub fn send_now(socket: RawFd, file: RawFd, offset: u64, len: u64) -> io::Result<u64> {
    let mut off = offset as libc::off_t;
    let end = (offset + len) as libc::off_t;
    while off < end {
        let want = ((end - off) as usize).min(CALL_BYTES_MAX);
        // SAFETY: both descriptors are open (the caller's); `off` is a valid in/out offset.
        let n = unsafe { libc::sendfile(socket, file, &mut off, want) };
        if n > 0 {
            continue;
        }
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its record",
            ));
        }
        let err = io::Error::last_os_error();
        match err.raw_os_error() {
            Some(libc::EAGAIN) => break,
            Some(libc::EINTR) => {}
            _ => return Err(err),
        }
    }
    Ok(off as u64 - offset)
}

/// Makes a connection's socket non-blocking for good (glommio's stream only ever uses
/// `MSG_DONTWAIT` calls and readiness polls, so it is unaffected), so that `send_now` never
/// waits for the client.
pub fn set_nonblocking(socket: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on the caller's open descriptor.
    let flags = unsafe { libc::fcntl(socket, libc::F_GETFL) };
    // SAFETY: as above.
    if flags < 0 || unsafe { libc::fcntl(socket, libc::F_SETFL, flags | libc::O_NONBLOCK) } < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

/// Closes a descriptor when dropped.
struct Fd(RawFd);

impl Drop for Fd {
    fn drop(&mut self) {
        // SAFETY: the descriptor was dup'ed for this owner and is closed exactly once.
        unsafe { libc::close(self.0) };
    }
}

fn dup(fd: RawFd) -> io::Result<Fd> {
    // SAFETY: F_DUPFD_CLOEXEC on a descriptor the caller keeps open during the call.
    let d = unsafe { libc::fcntl(fd, libc::F_DUPFD_CLOEXEC, 0) };
    if d < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(Fd(d))
    }
}

/// How a helper thread reads the file it sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// `sendfile` from the page cache.
    Cached,
    /// `O_DIRECT` reads into reused buffers (`sendfile` where the filesystem refuses them).
    Direct,
}

/// Sends `len` bytes of `file` from `offset` to `socket`, read as `how` says. None when no
/// transfer slot is free (copy through user space instead). `stall` bounds the wait for the
/// socket to accept bytes.
pub async fn send(
    socket: RawFd,
    file: RawFd,
    offset: u64,
    len: u64,
    stall: Duration,
    how: Read,
) -> Option<io::Result<()>> {
    if ACTIVE.fetch_add(1, Ordering::AcqRel) >= THREADS_MAX {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        return None;
    }
    let fds = dup(socket).and_then(|s| dup(file).map(|f| (s, f)));
    let (sock, src) = match fds {
        Ok(p) => p,
        Err(e) => {
            ACTIVE.fetch_sub(1, Ordering::AcqRel);
            return Some(Err(e));
        }
    };
    let (tx, rx) = futures_channel::oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name("sendfile".into())
        .spawn(move || {
            let r = transfer(&sock, &src, offset, len, stall, how);
            ACTIVE.fetch_sub(1, Ordering::AcqRel);
            let _ = tx.send(r);
        });
    if let Err(e) = spawned {
        ACTIVE.fetch_sub(1, Ordering::AcqRel);
        return Some(Err(e));
    }
    Some(
        rx.await
            .unwrap_or_else(|_| Err(io::Error::other("sendfile thread vanished"))),
    )
}

fn transfer(
    sock: &Fd,
    src: &Fd,
    offset: u64,
    len: u64,
    stall: Duration,
    how: Read,
) -> io::Result<()> {
    // The descriptor shares its file status flags with the executor's; restore them after.
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(sock.0, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    unsafe { libc::fcntl(sock.0, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    let direct = match how {
        Read::Direct => open_direct(src.0),
        Read::Cached => None,
    };
    keep_unsent_low(sock.0);
    let r = match direct {
        Some(d) => direct_loop(sock.0, &d, offset, len, stall),
        None => send_loop(sock.0, src.0, offset, len, stall),
    };
    // SAFETY: as above.
    unsafe { libc::fcntl(sock.0, libc::F_SETFL, flags) };
    r
}

/// The unsent bytes a socket holds before it counts as full (`TCP_NOTSENT_LOWAT`) while a
/// large body goes out.
pub const UNSENT_BYTES_MAX: libc::c_int = 1 << 20;

/// Keeps at most [`UNSENT_BYTES_MAX`] bytes of a large body queued unsent in `sock`
/// (`TCP_NOTSENT_LOWAT`), so that each `sendfile` call hands the kernel bytes it transmits at
/// once, from the sending thread. A socket whose whole buffer (4 MiB) is queued transmits
/// most of it later, as acknowledgements arrive, from the receive path: over loopback that
/// is the client's CPU, which then copies the data and transmits it too. Measured with
/// curl on another CPU (1 GiB, page cache): 1.0-1.3 GB/s with a full buffer, 2.0-2.1 GB/s
/// with 1 MiB unsent at most (go-fastdfs, whose sendfile calls are 4 MiB each without a
/// cork, 2.0-2.7). Left set: a later answer on the connection queues far less than that.
pub fn keep_unsent_low(sock: RawFd) {
    let v: libc::c_int = UNSENT_BYTES_MAX;
    // SAFETY: setsockopt reads an int that lives across the call; a failure (not TCP) is
    // harmless: the socket queues as much as its buffer holds.
    unsafe {
        libc::setsockopt(
            sock,
            libc::IPPROTO_TCP,
            libc::TCP_NOTSENT_LOWAT,
            (&v as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
}

fn send_loop(sock: RawFd, src: RawFd, offset: u64, len: u64, stall: Duration) -> io::Result<()> {
    let end = offset + len;
    let mut off = offset;
    loop {
        off += send_now(sock, src, off, end - off)?;
        if off >= end {
            return Ok(());
        }
        wait_writable(sock, stall)?;
    }
}

/// Alignment of `O_DIRECT` offsets, lengths and buffers (the largest logical block size of
/// common devices).
const DIRECT_ALIGN: usize = 4096;
/// Bytes per `O_DIRECT` read.
const DIRECT_CHUNK: usize = 2 << 20;
/// Direct-read buffers one transfer reads into in turn: one being sent, one read, one
/// waiting between them.
const DIRECT_BUFFERS_USED: usize = 3;
/// Direct-read buffers kept for later transfers (each `DIRECT_CHUNK`).
const DIRECT_BUFFERS_KEPT: usize = 2 * DIRECT_BUFFERS_USED;

/// A `DIRECT_CHUNK`-byte buffer aligned for `O_DIRECT`: a mapping of its own (page-aligned),
/// out of the allocator's arenas, where an aligned buffer of MiBs would leave the pages it
/// moved through resident (see `sys::MappedBytes`).
struct AlignedBuf(crate::sys::MappedBytes);

const _: () = assert!(DIRECT_ALIGN <= 4096, "a mapping is aligned to pages");

impl AlignedBuf {
    /// One from the pool (its pages already touched), or a new one.
    fn take() -> AlignedBuf {
        if let Some(b) = DIRECT_POOL.lock().ok().and_then(|mut p| p.pop()) {
            return b;
        }
        AlignedBuf(crate::sys::MappedBytes::with_capacity(DIRECT_CHUNK))
    }

    fn as_mut_ptr(&mut self) -> *mut u8 {
        self.0.as_mut_ptr()
    }

    fn slice(&self, from: usize, to: usize) -> &[u8] {
        assert!(from <= to && to <= DIRECT_CHUNK && DIRECT_CHUNK <= self.0.capacity());
        // SAFETY: in the mapping (asserted); `pread` initialised the bytes the caller slices.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr().add(from), to - from) }
    }
}

static DIRECT_POOL: std::sync::Mutex<Vec<AlignedBuf>> = std::sync::Mutex::new(Vec::new());

fn give_back(b: AlignedBuf) {
    if let Ok(mut p) = DIRECT_POOL.lock() {
        if p.len() < DIRECT_BUFFERS_KEPT {
            p.push(b);
        }
    }
}

/// A new open file description of `fd`'s file with `O_DIRECT` (the flag on `fd` itself would
/// change the executor's descriptor too); None where the filesystem refuses it.
fn open_direct(fd: RawFd) -> Option<Fd> {
    let path = std::ffi::CString::new(format!("/proc/self/fd/{fd}")).ok()?;
    // SAFETY: a NUL-terminated path; the result is owned by `Fd`.
    let d = unsafe {
        libc::open(
            path.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECT | libc::O_CLOEXEC,
        )
    };
    (d >= 0).then_some(Fd(d))
}

/// Sends `file[offset..offset + len]` read with `O_DIRECT` (aligned reads into reused
/// buffers, the unaligned head and tail skipped). A second thread reads ahead
/// ([`DIRECT_BUFFERS_USED`] buffers in turn) while this one sends: the device's time and the
/// socket's overlap. Read then send in turn, each waited for the other, and a peer's fetch of
/// 1 GiB ran at the sum of both (about 0.95 GB/s to curl).
fn direct_loop(sock: RawFd, file: &Fd, offset: u64, len: u64, stall: Duration) -> io::Result<()> {
    use std::sync::mpsc;
    let (full_tx, full_rx) = mpsc::sync_channel::<io::Result<(AlignedBuf, usize, usize)>>(1);
    let (spent_tx, spent_rx) = mpsc::channel::<AlignedBuf>();
    for _ in 0..DIRECT_BUFFERS_USED {
        let _ = spent_tx.send(AlignedBuf::take());
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("sendfile-read".into())
            .spawn_scoped(s, move || {
                read_ahead(file, offset, offset + len, &spent_rx, &full_tx);
                // The sender stopped, or every chunk was read: the buffers back to the pool.
                drop(full_tx);
                for b in spent_rx.iter() {
                    give_back(b);
                }
            })
            .map_err(|e| io::Error::other(format!("read-ahead thread: {e}")))?;
        let mut sent = Ok(());
        for chunk in full_rx.iter() {
            let (buf, from, to) = match chunk {
                Ok(c) => c,
                Err(e) => {
                    sent = Err(e);
                    break;
                }
            };
            if let Err(e) = send_all(sock, buf.slice(from, to), stall) {
                give_back(buf);
                sent = Err(e);
                break;
            }
            if let Err(mpsc::SendError(buf)) = spent_tx.send(buf) {
                give_back(buf);
            }
        }
        // The reader stops at its next buffer (none comes) or send (nobody takes it).
        drop(spent_tx);
        drop(full_rx);
        sent
    })
}

/// The read-ahead of [`direct_loop`]: reads `file[pos..end]` (from its aligned start) into
/// each buffer `spent` gives and passes it on as (buffer, first byte, end), until the end,
/// an error (passed on), or the sender's stop (a channel closed).
fn read_ahead(
    file: &Fd,
    offset: u64,
    end: u64,
    spent: &std::sync::mpsc::Receiver<AlignedBuf>,
    full: &std::sync::mpsc::SyncSender<io::Result<(AlignedBuf, usize, usize)>>,
) {
    let mut pos = offset - offset % DIRECT_ALIGN as u64;
    let mut skip = (offset - pos) as usize;
    while pos < end {
        let Ok(mut buf) = spent.recv() else { return };
        let got = loop {
            // SAFETY: `buf` holds DIRECT_CHUNK writable bytes; `file` is open.
            let n = unsafe {
                libc::pread(
                    file.0,
                    buf.as_mut_ptr().cast(),
                    DIRECT_CHUNK,
                    pos as libc::off_t,
                )
            };
            if n >= 0 {
                break Ok(n as usize);
            }
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINTR) {
                break Err(e);
            }
        };
        // The bytes wanted from `pos` (the skipped head included); fewer is the file's end.
        let want = ((end - pos) as usize).min(DIRECT_CHUNK);
        let short = || io::Error::new(io::ErrorKind::UnexpectedEof, "file shorter than its record");
        let chunk = match got {
            Ok(got) if got.min(want) > skip => Ok((got.min(want), got < want)),
            Ok(_) => Err(short()),
            Err(e) => Err(e),
        };
        let (take, ends_short) = match chunk {
            Ok(c) => c,
            Err(e) => {
                give_back(buf);
                let _ = full.send(Err(e));
                return;
            }
        };
        if full.send(Ok((buf, skip, take))).is_err() {
            return;
        }
        if ends_short {
            let _ = full.send(Err(short()));
            return;
        }
        pos += take as u64;
        skip = 0;
    }
}

/// Sends all of `data` to the non-blocking `sock`, waiting (bounded by `stall`) while it is
/// full.
fn send_all(sock: RawFd, mut data: &[u8], stall: Duration) -> io::Result<()> {
    while !data.is_empty() {
        // SAFETY: `data` is a live slice that send only reads; `sock` is open.
        let n = unsafe {
            libc::send(
                sock,
                data.as_ptr().cast(),
                data.len(),
                libc::MSG_NOSIGNAL | libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            data = &data[n as usize..];
            continue;
        }
        let e = io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::EAGAIN) => wait_writable(sock, stall)?,
            Some(libc::EINTR) => {}
            _ => return Err(e),
        }
    }
    Ok(())
}

/// Waits (bounded by `stall`) until the socket takes bytes again.
fn wait_writable(sock: RawFd, stall: Duration) -> io::Result<()> {
    let stall_ms = stall.as_millis().min(i32::MAX as u128) as i32;
    {
        let mut pfd = libc::pollfd {
            fd: sock,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one pollfd that lives across the call.
        let ready = unsafe { libc::poll(&mut pfd, 1, stall_ms) };
        if ready == 0 {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "client stopped reading",
            ));
        }
        if ready < 0 && io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
            return Err(io::Error::last_os_error());
        }
        if pfd.revents & (libc::POLLERR | libc::POLLHUP) != 0 {
            return Err(io::Error::new(
                io::ErrorKind::BrokenPipe,
                "client went away",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::os::fd::{AsRawFd, IntoRawFd};

    /// A large body's socket keeps at most `UNSENT_BYTES_MAX` unsent (the kernel's own
    /// reading of the option, not ours).
    #[test]
    fn a_large_bodys_socket_keeps_little_unsent() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = std::net::TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let read = |fd: RawFd| {
            let mut v: libc::c_int = 0;
            let mut n = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
            // SAFETY: getsockopt writes at most `n` bytes into `v`.
            let r = unsafe {
                libc::getsockopt(
                    fd,
                    libc::IPPROTO_TCP,
                    libc::TCP_NOTSENT_LOWAT,
                    (&mut v as *mut libc::c_int).cast(),
                    &mut n,
                )
            };
            assert_eq!(r, 0);
            v
        };
        let before = read(s.as_raw_fd());
        assert_eq!(
            before, 0,
            "unset: the system's default (as a rule, no bound)"
        );
        keep_unsent_low(s.as_raw_fd());
        assert_eq!(read(s.as_raw_fd()), UNSENT_BYTES_MAX);
    }

    /// What `direct_loop` sends of `file[offset..offset + len]` through a socket pair, and
    /// its result; None where the filesystem refuses `O_DIRECT`.
    fn direct(file: &std::fs::File, offset: u64, len: u64) -> Option<(Vec<u8>, io::Result<()>)> {
        let d = open_direct(file.as_raw_fd())?;
        let (ours, mut theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        let reader = std::thread::spawn(move || {
            let mut got = Vec::new();
            theirs.read_to_end(&mut got).unwrap();
            got
        });
        let sock = Fd(ours.into_raw_fd());
        let r = direct_loop(sock.0, &d, offset, len, Duration::from_secs(10));
        drop(sock);
        Some((reader.join().unwrap(), r))
    }

    #[test]
    fn a_direct_transfer_sends_exactly_the_range_read_ahead_in_chunks() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let data: Vec<u8> = (0..3 * DIRECT_CHUNK + 12_345)
            .map(|i| (i % 251) as u8 ^ (i >> 16) as u8)
            .collect();
        std::fs::write(&path, &data).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let whole = data.len() as u64;
        // The whole file; a range with an unaligned head and tail across chunks; a short one.
        for (offset, len) in [
            (0, whole),
            (4097, 2 * DIRECT_CHUNK as u64 + 5),
            (whole - 3, 3),
        ] {
            let Some((got, r)) = direct(&file, offset, len) else {
                return; // no O_DIRECT here (tmpfs): the cached path serves instead
            };
            r.unwrap();
            assert!(
                got == data[offset as usize..(offset + len) as usize],
                "range {offset}+{len}"
            );
        }
        // A record longer than its file: what there is goes out, then the error.
        let (got, r) = direct(&file, 0, whole + 10).unwrap();
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
        assert!(got == data, "the file's bytes before the error");
    }

    #[test]
    fn a_direct_transfer_to_a_closed_socket_stops_with_its_error() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, vec![7u8; 4 * DIRECT_CHUNK]).unwrap();
        let file = std::fs::File::open(&path).unwrap();
        let Some(d) = open_direct(file.as_raw_fd()) else {
            return;
        };
        let (ours, theirs) = std::os::unix::net::UnixStream::pair().unwrap();
        drop(theirs);
        let sock = Fd(ours.into_raw_fd());
        let r = direct_loop(
            sock.0,
            &d,
            0,
            4 * DIRECT_CHUNK as u64,
            Duration::from_secs(10),
        );
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::BrokenPipe);
    }
}
