//! Benchmark tool (issue 14, item 1): the floor of a small GET over loopback TCP. The least
//! work any HTTP/1.1 server on this kernel can do per request: one thread, `epoll`, and per
//! request one `recv` of the head and one `send` of an answer held in memory (a head of the
//! size ours has, then the body). No parsing beyond finding the head's end, no file, no log,
//! no timers. What a real server spends above this floor (nginx, fastdfs-rs) is its own work;
//! the floor is the kernel's: the loopback send that delivers to the client in the sender's
//! softirq, the receive, and the readiness wake-up.
//!
//! Keep-alive connections; pipelined heads are answered in order; a connection that sends
//! more than 64 KiB without a head's end is closed. Serves every path alike.
//!
//! usage: fastdfs-floor PORT BODY_BYTES

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
    let answer = answer(body_len);
    let listener = TcpListener::bind(("127.0.0.1", port)).expect("bind");
    listener.set_nonblocking(true).expect("nonblocking");
    // SAFETY: plain system calls on descriptors this function owns.
    let ep = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
    assert!(ep >= 0, "epoll_create1");
    add(ep, listener.as_raw_fd());
    let mut conns: HashMap<RawFd, (TcpStream, Vec<u8>)> = HashMap::new();
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
                    conns.insert(s.as_raw_fd(), (s, Vec::new()));
                }
                continue;
            }
            if !serve(conns.get_mut(&fd), &mut buf, &answer) {
                conns.remove(&fd); // closing the socket removes it from the epoll set
            }
        }
    }
}

/// Reads what the connection has and answers every complete head. False: close it.
fn serve(conn: Option<&mut (TcpStream, Vec<u8>)>, buf: &mut [u8], answer: &[u8]) -> bool {
    let Some((s, pending)) = conn else {
        return false;
    };
    loop {
        match s.read(buf) {
            Ok(0) => return false,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                let mut answers = 0;
                while let Some(end) = memchr::memmem::find(pending, b"\r\n\r\n") {
                    pending.drain(..end + 4);
                    answers += 1;
                }
                if pending.len() > 65536 {
                    return false;
                }
                for _ in 0..answers {
                    // wrk waits for each answer, so the socket's buffer has room: one send.
                    if s.write_all(answer).is_err() {
                        return false;
                    }
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

fn add(ep: RawFd, fd: RawFd) {
    let mut ev = libc::epoll_event {
        events: (libc::EPOLLIN | libc::EPOLLET) as u32,
        u64: fd as u64,
    };
    // SAFETY: `ev` lives across the call.
    let r = unsafe { libc::epoll_ctl(ep, libc::EPOLL_CTL_ADD, fd, &mut ev) };
    assert_eq!(r, 0, "epoll_ctl");
}

/// A 200 with the fields a download answer carries (their lengths as ours), then the body.
fn answer(body_len: usize) -> Vec<u8> {
    let mut a = format!(
        "HTTP/1.1 200 OK\r\nServer: fastdfs-floor\r\nDate: Mon, 07 Dec 2026 01:00:00 GMT\r\n\
         Content-Type: application/octet-stream\r\nContent-Length: {body_len}\r\n\
         Last-Modified: Mon, 07 Dec 2026 00:59:00 GMT\r\nETag: \"6752b4e4-1000\"\r\n\
         Accept-Ranges: bytes\r\nAccess-Control-Allow-Origin: *\r\n\r\n"
    )
    .into_bytes();
    a.extend((0..body_len).map(|i| b'a' + (i % 26) as u8));
    a
}
