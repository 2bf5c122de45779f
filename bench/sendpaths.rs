//! Benchmark tool (issue 14, item 2): which way of sending a cached file's body over a TCP
//! socket costs the sender least, measured apart from HTTP. One connection over loopback; the
//! sender (this thread, pinned to CPU 0) sends the same file again and again, for a few
//! seconds per method; a receiver thread pinned to CPU 1 reads and drops the bytes. Per method:
//! the sender thread's CPU per body (user and system, from `RUSAGE_THREAD`, which includes the
//! loopback delivery the sender runs in its softirq) and the bytes per second.
//!
//! The methods, each the data path of one option for a GET's body:
//! - `sendfile`: `sendfile(2)` from the page cache (what fastdfs-rs and nginx do);
//! - `copy`: `pread(2)` into a buffer, then `send(2)` (a read into a registered io_uring buffer
//!   and a `SEND` of it copy the same two times);
//! - `zerocopy`: `pread(2)` into a buffer, then `send(2)` with `MSG_ZEROCOPY` (the data path of
//!   io_uring's `SEND_ZC`), its completions read from the error queue;
//! - `splice`: `splice(2)` from the file into a pipe and from the pipe into the socket (the data
//!   path of io_uring's `SPLICE`, which calls the same kernel function).
//!
//! io_uring's ops reach these same kernel paths; what it saves is the system call's entry and
//! exit, which is measured here as the `sendfile` of a 1-byte body.
//!
//! usage: fastdfs-sendpaths [SIZE_BYTES] [SECONDS_PER_METHOD] [ROUNDS]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

/// From linux/errqueue.h (not in the libc crate).
const SO_EE_ORIGIN_ZEROCOPY: u8 = 5;
const SO_EE_CODE_ZEROCOPY_COPIED: u8 = 1;

fn pin(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; sched_setaffinity reads it.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set);
    }
}

/// This thread's CPU time (user, system) in microseconds.
fn thread_cpu() -> (f64, f64) {
    // SAFETY: getrusage fills the zeroed struct it is given.
    let r = unsafe {
        let mut r: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_THREAD, &mut r);
        r
    };
    let us = |t: libc::timeval| t.tv_sec as f64 * 1e6 + t.tv_usec as f64;
    (us(r.ru_utime), us(r.ru_stime))
}

fn check(r: isize, what: &str) -> usize {
    if r < 0 {
        let e = std::io::Error::last_os_error();
        panic!("{what}: {e}");
    }
    r as usize
}

#[derive(Clone, Copy, Debug)]
enum Method {
    Sendfile,
    Copy,
    Zerocopy,
    Splice,
}

struct Sender {
    file: std::fs::File,
    size: usize,
    buf: Vec<u8>,
    pipe: [i32; 2],
    zc_sent: u64,
    zc_done: u64,
    zc_copied: u64,
}

impl Sender {
    /// Sends the whole body once.
    fn body(&mut self, sock: i32, m: Method) {
        let fd = self.file.as_raw_fd();
        let mut done = 0usize;
        match m {
            Method::Sendfile => {
                let mut off: libc::off_t = 0;
                while done < self.size {
                    // SAFETY: valid descriptors; off is a valid pointer.
                    let n = unsafe { libc::sendfile(sock, fd, &mut off, self.size - done) };
                    done += check(n, "sendfile");
                }
            }
            Method::Copy | Method::Zerocopy => {
                // SAFETY: buf has size bytes of room.
                let n = unsafe { libc::pread(fd, self.buf.as_mut_ptr().cast(), self.size, 0) };
                assert_eq!(check(n, "pread"), self.size, "the whole file");
                let flags = if matches!(m, Method::Zerocopy) {
                    libc::MSG_ZEROCOPY
                } else {
                    0
                };
                while done < self.size {
                    let rest = &self.buf[done..self.size];
                    // SAFETY: rest is a valid slice.
                    let n = unsafe { libc::send(sock, rest.as_ptr().cast(), rest.len(), flags) };
                    done += check(n, "send");
                    if flags != 0 {
                        self.zc_sent += 1;
                    }
                }
                if flags != 0 {
                    self.reap(sock, false);
                }
            }
            Method::Splice => {
                let mut off: libc::loff_t = 0;
                while done < self.size {
                    // SAFETY: valid descriptors; off is a valid pointer.
                    let inp = unsafe {
                        libc::splice(
                            fd,
                            &mut off,
                            self.pipe[1],
                            std::ptr::null_mut(),
                            self.size - done,
                            libc::SPLICE_F_MOVE,
                        )
                    };
                    let mut left = check(inp, "splice in");
                    while left > 0 {
                        // SAFETY: as above.
                        let out = unsafe {
                            libc::splice(
                                self.pipe[0],
                                std::ptr::null_mut(),
                                sock,
                                std::ptr::null_mut(),
                                left,
                                libc::SPLICE_F_MOVE | libc::SPLICE_F_MORE,
                            )
                        };
                        left -= check(out, "splice out");
                    }
                    done += inp as usize;
                }
            }
        }
    }

    /// Reads `MSG_ZEROCOPY` completions from the error queue (all of them when `all`).
    fn reap(&mut self, sock: i32, all: bool) {
        loop {
            let mut control = [0u8; 128];
            // SAFETY: a zeroed msghdr with a valid control buffer.
            let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = control.len();
            let flags = libc::MSG_ERRQUEUE | if all { 0 } else { libc::MSG_DONTWAIT };
            if all && self.zc_done >= self.zc_sent {
                return;
            }
            // SAFETY: msg points at valid memory for the call.
            let r = unsafe { libc::recvmsg(sock, &mut msg, flags) };
            if r < 0 {
                let e = std::io::Error::last_os_error();
                if e.kind() == std::io::ErrorKind::WouldBlock && !all {
                    return;
                }
                if e.kind() == std::io::ErrorKind::WouldBlock {
                    std::thread::sleep(Duration::from_millis(1));
                    continue;
                }
                panic!("recvmsg errqueue: {e}");
            }
            // SAFETY: the kernel filled msg's control buffer; CMSG_* walk it.
            unsafe {
                let mut c = libc::CMSG_FIRSTHDR(&msg);
                while !c.is_null() {
                    let ee = libc::CMSG_DATA(c) as *const libc::sock_extended_err;
                    if (*ee).ee_origin == SO_EE_ORIGIN_ZEROCOPY {
                        let (lo, hi) = ((*ee).ee_info, (*ee).ee_data);
                        self.zc_done += u64::from(hi - lo) + 1;
                        if (*ee).ee_code & SO_EE_CODE_ZEROCOPY_COPIED != 0 {
                            self.zc_copied += u64::from(hi - lo) + 1;
                        }
                    }
                    c = libc::CMSG_NXTHDR(&msg, c);
                }
            }
        }
    }
}

/// What one method did in one round.
struct Outcome {
    bodies: u64,
    /// `MSG_ZEROCOPY` sends the kernel copied after all, of those completed.
    zc_copied: (u64, u64),
    bytes_per_s: f64,
    user_us: f64,
    system_us: f64,
}

/// One method for `secs`; CPU figures are per body.
fn run(size: usize, path: &std::path::Path, m: Method, secs: f64) -> Outcome {
    let listener = TcpListener::bind("127.0.0.1:0").expect("listen");
    let addr = listener.local_addr().expect("address");
    let reader = std::thread::spawn(move || {
        pin(1);
        let mut s = TcpStream::connect(addr).expect("connect");
        let mut buf = vec![0u8; 1 << 20];
        let mut total = 0u64;
        loop {
            match s.read(&mut buf) {
                Ok(0) => return total,
                Ok(n) => total += n as u64,
                Err(e) => panic!("read: {e}"),
            }
        }
    });
    let (mut stream, _) = listener.accept().expect("accept");
    let sock = stream.as_raw_fd();
    let one: libc::c_int = 1;
    if matches!(m, Method::Zerocopy) {
        // SAFETY: a valid socket and option value.
        let r = unsafe {
            libc::setsockopt(
                sock,
                libc::SOL_SOCKET,
                libc::SO_ZEROCOPY,
                (&one as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as u32,
            )
        };
        check(r as isize, "SO_ZEROCOPY");
    }
    let mut pipe = [0i32; 2];
    // SAFETY: pipe fills the two descriptors.
    check(unsafe { libc::pipe(pipe.as_mut_ptr()) } as isize, "pipe");
    // SAFETY: a valid pipe descriptor.
    unsafe { libc::fcntl(pipe[1], libc::F_SETPIPE_SZ, 1 << 20) };
    let mut s = Sender {
        file: std::fs::File::open(path).expect("file"),
        size,
        buf: vec![0u8; size.max(1)],
        pipe,
        zc_sent: 0,
        zc_done: 0,
        zc_copied: 0,
    };
    let (u0, k0) = thread_cpu();
    let t0 = Instant::now();
    let mut bodies = 0u64;
    while t0.elapsed().as_secs_f64() < secs {
        for _ in 0..16 {
            s.body(sock, m);
        }
        bodies += 16;
    }
    if matches!(m, Method::Zerocopy) {
        s.reap(sock, true);
    }
    let (u1, k1) = thread_cpu();
    let took = t0.elapsed().as_secs_f64();
    stream.flush().expect("flush");
    drop(stream);
    let received = reader.join().expect("reader");
    assert_eq!(received, bodies * size as u64, "every byte arrived");
    // SAFETY: closing the pipe's descriptors once.
    unsafe {
        libc::close(pipe[0]);
        libc::close(pipe[1]);
    }
    let b = bodies as f64;
    Outcome {
        bodies,
        zc_copied: (s.zc_copied, s.zc_done),
        bytes_per_s: b * size as f64 / took,
        user_us: (u1 - u0) / b,
        system_us: (k1 - k0) / b,
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let size: usize = args.get(1).map_or(65536, |s| s.parse().expect("size"));
    let secs: f64 = args.get(2).map_or(3.0, |s| s.parse().expect("seconds"));
    let rounds: usize = args.get(3).map_or(2, |s| s.parse().expect("rounds"));
    pin(0);
    let path = std::env::temp_dir().join(format!("fastdfs-sendpaths-{}", std::process::id()));
    let mut data = vec![0u8; size];
    for (i, b) in data.iter_mut().enumerate() {
        *b = (i.wrapping_mul(2_654_435_761) >> 13) as u8;
    }
    std::fs::File::create(&path)
        .and_then(|mut f| f.write_all(&data))
        .expect("body file");
    let _ = std::fs::read(&path); // in the page cache
    let methods = [
        Method::Sendfile,
        Method::Copy,
        Method::Zerocopy,
        Method::Splice,
    ];
    println!("body {size} bytes, {secs} s per method and round, sender on CPU 0, reader on CPU 1");
    println!("| round | method | bodies/s | GB/s | sender CPU µs/body (user + system) |");
    println!("|---:|---|---:|---:|---:|");
    let mut copied = (0, 0);
    for r in 0..rounds {
        // Alternate the order between rounds so drift does not favour one method.
        let order: Vec<Method> = if r % 2 == 0 {
            methods.to_vec()
        } else {
            methods.iter().rev().copied().collect()
        };
        for m in order {
            let o = run(size, &path, m, secs);
            copied = (copied.0 + o.zc_copied.0, copied.1 + o.zc_copied.1);
            println!(
                "| {} | {:?} | {:.0} | {:.2} | {:.2} ({:.2} + {:.2}) |",
                r + 1,
                m,
                o.bodies as f64 / secs,
                o.bytes_per_s / 1e9,
                o.user_us + o.system_us,
                o.user_us,
                o.system_us
            );
        }
    }
    println!(
        "\nMSG_ZEROCOPY sends the kernel copied after all: {} of {}",
        copied.0, copied.1
    );
    let _ = std::fs::remove_file(&path);
}
