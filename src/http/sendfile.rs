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

/// Sends `len` bytes of `file` from `offset` to `socket`. None when no transfer slot is free
/// (copy through user space instead). `stall` bounds the wait for the socket to accept bytes.
pub async fn send(
    socket: RawFd,
    file: RawFd,
    offset: u64,
    len: u64,
    stall: Duration,
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
            let r = transfer(&sock, &src, offset, len, stall);
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

fn transfer(sock: &Fd, src: &Fd, offset: u64, len: u64, stall: Duration) -> io::Result<()> {
    // The descriptor shares its file status flags with the executor's; restore them after.
    // SAFETY: fcntl on a descriptor we own.
    let flags = unsafe { libc::fcntl(sock.0, libc::F_GETFL) };
    if flags < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: as above.
    unsafe { libc::fcntl(sock.0, libc::F_SETFL, flags | libc::O_NONBLOCK) };
    let r = send_loop(sock.0, src.0, offset, len, stall);
    // SAFETY: as above.
    unsafe { libc::fcntl(sock.0, libc::F_SETFL, flags) };
    r
}

fn send_loop(sock: RawFd, src: RawFd, offset: u64, len: u64, stall: Duration) -> io::Result<()> {
    let end = offset + len;
    let mut off = offset;
    let stall_ms = stall.as_millis().min(i32::MAX as u128) as i32;
    loop {
        off += send_now(sock, src, off, end - off)?;
        if off >= end {
            return Ok(());
        }
        // The socket is full: wait (bounded) until it takes bytes again.
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
}
