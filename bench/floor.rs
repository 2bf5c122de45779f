//! Benchmark tool (issue 14, item 1): the floor of a small GET over loopback TCP. The least
//! work any HTTP/1.1 server on this kernel can do per request: one thread, `epoll`, and per
//! request one `recv` of the head and one `send` of an answer held in memory (a head of the
//! size ours has, then the body). No parsing beyond finding the head's end, no file, no log,
//! no timers. What a real server spends above this floor (nginx, fastdfs-rs) is its own work;
//! the floor is the kernel's: the loopback send that delivers to the client in the sender's
//! softirq, the receive, and the readiness wake-up.
//!
//! Keep-alive connections; pipelined heads are answered in order (what the socket does not
//! take waits for `EPOLLOUT`); a connection that sends more than 64 KiB without a head's end
//! is closed. Serves every path alike. With BODIES > 1 the answers rotate over that many
//! distinct bodies (as many files as a benchmark's data set: their bytes are not all in the
//! CPU's caches), else one body is sent again and again.
//!
//! With a directory instead of BODIES, the bodies are its files of BODY_BYTES bytes (their
//! pages in the page cache), sent with `sendfile(2)` after the head (`MSG_MORE`), as nginx
//! and fastdfs-rs send them: the same floor by another data path. Bodies of 1 MiB or more keep
//! at most 1 MiB unsent in the socket (`TCP_NOTSENT_LOWAT`, as fastdfs-rs sends them; nginx
//! corks them instead); bench/run.sh serves its big file so, the limit of a single-stream
//! download.
//!
//! usage: fastdfs-floor PORT BODY_BYTES [BODIES | DIR]

use std::collections::HashMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::{AsRawFd, RawFd};

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: fastdfs-floor PORT BODY_BYTES");
    let body_len: usize = args
        .next()
        .and_then(|a| a.parse().ok())
        .expect("usage: fastdfs-floor PORT BODY_BYTES");
    let bodies = match args.next() {
        Some(dir) if std::path::Path::new(&dir).is_dir() => {
            let files = files_of(std::path::Path::new(&dir), body_len as u64);
            assert!(!files.is_empty(), "no files of {body_len} bytes");
            Bodies::Files {
                head: head(body_len),
                files,
                len: body_len,
            }
        }
        n => {
            let n: usize = n.and_then(|a| a.parse().ok()).unwrap_or(1).max(1);
            Bodies::Memory((0..n).map(|i| answer(body_len, i)).collect())
        }
    };
    let mut next = 0usize;
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    // SAFETY: plain system calls on descriptors this function owns.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1");
    add(ep, listener.as_raw_fd());
    let mut conns: HashMap<RawFd, Conn> = HashMap::new();
    let mut events = vec![libc::epoll_event { events: 0, u64: 0 }; 512];
    let mut buf = vec![0u8; 16384];
    loop {
        // SAFETY: `events` has room for its length.
        let n = unsafe { libc::epoll_wait(ep, events.as_mut_ptr(), events.len() as i32, -1) };
        if n < 0 {
            continue; // EINTR
        }
        for ev in &events[..n as usize] {
            let fd = ev.u64 as RawFd;
            if fd == listener.as_raw_fd() {
                while let Ok((s, _)) = listener.accept() {
                    s.set_nonblocking(true).expect("nonblocking");
                    s.set_nodelay(true).expect("nodelay");
                    add(ep, s.as_raw_fd());
                    conns.insert(
                        s.as_raw_fd(),
                        Conn {
                            s,
                            input: Vec::new(),
                            output: Vec::new(),
                            sent: 0,
                        },
                    );
                }
                continue;
            }
            if !serve(conns.get_mut(&fd), &mut buf, &bodies, &mut next) {
                conns.remove(&fd); // closing the socket removes it from the epoll set
            }
        }
    }
}

/// What the floor answers with.
enum Bodies {
    /// Whole answers held in memory, taken in turn.
    Memory(Vec<Vec<u8>>),
    /// A head, then one of `files` in turn by `sendfile`.
    Files {
        head: Vec<u8>,
        files: Vec<std::fs::File>,
        len: usize,
    },
}

impl Bodies {
    fn count(&self) -> usize {
        match self {
            Bodies::Memory(a) => a.len(),
            Bodies::Files { files, .. } => files.len(),
        }
    }
}

struct Conn {
    s: TcpStream,
    /// Bytes of heads not answered yet.
    input: Vec<u8>,
    /// Answers the socket has not taken yet (from `sent` on).
    output: Vec<u8>,
    sent: usize,
}

/// Sends what waits; false on an error. What the socket does not take stays for `EPOLLOUT`.
fn flush(c: &mut Conn) -> bool {
    while c.sent < c.output.len() {
        match c.s.write(&c.output[c.sent..]) {
            Ok(n) => c.sent += n,
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
    c.output.clear();
    c.sent = 0;
    true
}

/// Sends what waits, reads what the connection has and answers every complete head (one
/// `send` of the answer when the socket takes it whole, as it does under wrk). False: close.
fn serve(conn: Option<&mut Conn>, buf: &mut [u8], bodies: &Bodies, next: &mut usize) -> bool {
    let Some(c) = conn else {
        return false;
    };
    if !flush(c) {
        return false;
    }
    loop {
        match c.s.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                c.input.extend_from_slice(&buf[..n]);
                while let Some(end) = memchr::memmem::find(&c.input, b"\r\n\r\n") {
                    c.input.drain(..end + 4);
                    *next = (*next + 1) % bodies.count();
                    let answer = match bodies {
                        Bodies::Memory(answers) => &answers[*next][..],
                        Bodies::Files { head, files, len } => {
                            if !send_one(&c.s, head, &files[*next], *len) {
                                return false;
                            }
                            continue;
                        }
                    };
                    if c.output.is_empty() {
                        match c.s.write(answer) {
                            Ok(sent) if sent == answer.len() => continue,
                            Ok(sent) => c.output.extend_from_slice(&answer[sent..]),
                            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                                c.output.extend_from_slice(answer)
                            }
                            Err(_) => return false,
                        }
                    } else {
                        c.output.extend_from_slice(answer);
                    }
                }
                if c.input.len() > 65536 || !flush(c) {
                    return false;
                }
                if n < buf.len() {
                    return true;
                }
            }
            Err(e) if e.kind() == ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

/// The files of `size` bytes below `dir`, open.
fn files_of(dir: &std::path::Path, size: u64) -> Vec<std::fs::File> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            match e.metadata() {
                Ok(m) if m.is_dir() => stack.push(p),
                Ok(m) if m.len() == size => out.extend(std::fs::File::open(&p)),
                _ => {}
            }
        }
    }
    out
}

/// Head (`MSG_MORE`) and body (`sendfile`); waits for room when the socket is full.
fn send_one(s: &TcpStream, head: &[u8], file: &std::fs::File, len: usize) -> bool {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    let wait_out = || {
        let mut p = libc::pollfd {
            fd,
            events: libc::POLLOUT,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut p, 1, 10_000) > 0 }
    };
    // A large body keeps at most 1 MiB unsent in the socket (`TCP_NOTSENT_LOWAT`, as
    // fastdfs-rs sends one): each `sendfile` hands the kernel bytes it transmits at once,
    // from this thread, where a socket whose whole buffer waits transmits most of it as
    // acknowledgements arrive, on the client's CPU over loopback (1.0-1.3 GB/s that way,
    // corked as nginx's `tcp_nopush` sends, against 2.0-2.1). A small one is one `sendfile`
    // after the head's `MSG_MORE`.
    if len >= LOWAT_BYTES_MIN {
        let v: libc::c_int = 1 << 20;
        // SAFETY: setsockopt reads one c_int that lives across the call.
        unsafe {
            libc::setsockopt(
                fd,
                libc::IPPROTO_TCP,
                libc::TCP_NOTSENT_LOWAT,
                (&v as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
    }
    let mut at = 0;
    while at < head.len() {
        // SAFETY: the slice outlives the call.
        let n = unsafe {
            libc::send(
                fd,
                head[at..].as_ptr().cast(),
                head.len() - at,
                libc::MSG_MORE | libc::MSG_NOSIGNAL,
            )
        };
        if n > 0 {
            at += n as usize;
        } else if std::io::Error::last_os_error().kind() != ErrorKind::WouldBlock || !wait_out() {
            return false;
        }
    }
    let mut off: libc::off_t = 0;
    while (off as usize) < len {
        // SAFETY: `off` is a valid offset pointer; both descriptors are open.
        let n = unsafe { libc::sendfile(fd, file.as_raw_fd(), &mut off, len - off as usize) };
        if n <= 0
            && (std::io::Error::last_os_error().kind() != ErrorKind::WouldBlock || !wait_out())
        {
            return false;
        }
    }
    true
}

/// Bodies from this size on keep little unsent in the socket.
const LOWAT_BYTES_MIN: usize = 1 << 20;

fn add(ep: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLET) as u32,
        u64: fd as u64,
    };
    // SAFETY: `ev` lives across the call.
    let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "epoll_ctl");
}

/// A 200's head with the fields a download answer carries (their lengths as ours).
fn head(body_len: usize) -> Vec<u8> {
    format!(
        "HTTP/1.1 200 OK\r\nServer: fastdfs-floor\r\nDate: Mon, 07 Dec 2026 01:00:00 GMT\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n\
         Last-Modified: Mon, 07 Dec 2026 00:59:00 GMT\r\nETag: \"6752b4e4-1000-4a3f5c1e9b2d1\"\r\n\
         Accept-Ranges: bytes\r\nAccess-Control-Allow-Origin: *\r\n\r\n"
    )
    .into_bytes()
}

/// The head, then the body (the `n`th of the distinct ones).
fn answer(body_len: usize, n: usize) -> Vec<u8> {
    let mut a = head(body_len);
    a.extend((0..body_len).map(|i| b'a' + ((i + n) % 26) as u8));
    a
}
