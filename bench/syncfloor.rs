//! Benchmark tool (issue 14, item 5): the floor of replicating one large file between two
//! nodes on this machine. The least work any replicating server must do per file when it
//! verifies what it fetched and makes it durable, with nothing else: the source file sent
//! with `sendfile(2)` over loopback TCP; the receiver reads the socket straight into aligned
//! 2 MiB buffers, writes each with `O_DIRECT` on a thread of its own, and has every byte
//! hashed (md5, the same code as the server: `fastdfs::md5x`) in 8 MiB segments spread over
//! one thread per CPU, as a receiver with the sender's md5 checkpoints can; then
//! `fdatasync`, rename into place and the directory's fsync. No HTTP, no metadata, no
//! checkpoint exchange, no copy the kernel does not make.
//!
//! Both ends share the machine's CPUs (and its disk where SOURCE and DIR are on one), as the
//! two nodes of `bench/sync.py` do, so the rate is what this machine allows such a
//! replication; a server's rate over it is its own overhead.
//!
//! usage: fastdfs-sync-floor SOURCE DIR  (prints the rate in MB/s, then the details)

use std::io::{ErrorKind, Read};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::sync::mpsc;
use std::sync::Arc;
use std::time::Instant;

use fastdfs::md5x::{Md5, MARK_EVERY};

const CHUNK: usize = 2 << 20;
const ALIGN: usize = 4096;
/// Buffers in flight between the socket, the writer and the hashers.
const RING: usize = 16;

struct Aligned(std::ptr::NonNull<u8>);

// SAFETY: plain memory owned by this value; shared only for reading once filled.
unsafe impl Send for Aligned {}
// SAFETY: as above.
unsafe impl Sync for Aligned {}

impl Aligned {
    fn layout() -> std::alloc::Layout {
        std::alloc::Layout::from_size_align(CHUNK, ALIGN).expect("a valid layout")
    }

    fn new() -> Aligned {
        // SAFETY: a non-zero size; zeroed so every page is touched before the clock starts.
        let p = unsafe { std::alloc::alloc_zeroed(Self::layout()) };
        Aligned(std::ptr::NonNull::new(p).expect("memory"))
    }

    fn bytes(&self, len: usize) -> &[u8] {
        assert!(len <= CHUNK);
        // SAFETY: in bounds; the memory was zeroed, then filled by recv.
        unsafe { std::slice::from_raw_parts(self.0.as_ptr(), len) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: in bounds; this value is the only one that writes.
        unsafe { std::slice::from_raw_parts_mut(self.0.as_ptr(), CHUNK) }
    }
}

impl Drop for Aligned {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with the same layout.
        unsafe { std::alloc::dealloc(self.0.as_ptr(), Self::layout()) };
    }
}

/// A filled buffer: its memory and how many bytes of it are the file's, at `offset`.
#[derive(Clone)]
struct Filled {
    buf: Arc<Aligned>,
    offset: u64,
    len: usize,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let (source, dir) = match (args.next(), args.next()) {
        (Some(s), Some(d)) => (std::path::PathBuf::from(s), std::path::PathBuf::from(d)),
        _ => panic!("usage: fastdfs-sync-floor SOURCE DIR"),
    };
    let size = std::fs::metadata(&source).expect("the source").len();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut ring: Vec<Arc<Aligned>> = (0..RING).map(|_| Arc::new(Aligned::new())).collect();
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("an address");
    let temp = dir.join(".sync-floor.tmp");
    let target = dir.join("sync-floor.bin");

    let started = Instant::now();
    let sender = std::thread::spawn(move || {
        let file = std::fs::File::open(&source).expect("open the source");
        let sock = TcpStream::connect(addr).expect("connect");
        let mut sent = 0u64;
        while sent < size {
            // SAFETY: two descriptors this thread owns; the kernel advances no offset of ours.
            let n = unsafe {
                libc::sendfile(
                    sock.as_raw_fd(),
                    file.as_raw_fd(),
                    std::ptr::null_mut(),
                    (size - sent).min(64 << 20) as usize,
                )
            };
            assert!(n > 0, "sendfile: {}", std::io::Error::last_os_error());
            sent += n as u64;
        }
    });
    let (mut sock, _) = listener.accept().expect("accept");

    let (to_writer, writes) = mpsc::channel::<Filled>();
    let writer = std::thread::spawn(move || {
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .custom_flags(libc::O_DIRECT)
            .open(&temp)
            .expect("create the temp file with O_DIRECT");
        for f in writes {
            let padded = f.len.next_multiple_of(ALIGN);
            // SAFETY: the buffer holds CHUNK bytes, `padded` <= CHUNK; aligned memory.
            let n = unsafe {
                libc::pwrite(
                    file.as_raw_fd(),
                    f.buf.0.as_ptr().cast(),
                    padded,
                    f.offset as i64,
                )
            };
            assert_eq!(
                n,
                padded as isize,
                "pwrite: {}",
                std::io::Error::last_os_error()
            );
        }
        file.set_len(size).expect("the size");
        file.sync_data().expect("fdatasync");
        drop(file);
        std::fs::rename(&temp, &target).expect("rename");
        std::fs::File::open(target.parent().expect("a directory"))
            .and_then(|d| d.sync_all())
            .expect("fsync the directory");
        target
    });

    let (to_hashers, hashers): (Vec<_>, Vec<_>) = (0..cpus)
        .map(|_| {
            let (tx, rx) = mpsc::channel::<Filled>();
            let h = std::thread::spawn(move || {
                let (mut seg, mut md5, mut digests) = (u64::MAX, Md5::new(), Vec::new());
                for f in rx {
                    let s = f.offset / MARK_EVERY;
                    if s != seg {
                        if seg != u64::MAX {
                            digests.push(std::mem::replace(&mut md5, Md5::new()).finalize());
                        }
                        seg = s;
                    }
                    md5.update(f.buf.bytes(f.len));
                }
                digests.push(md5.finalize());
                digests.len()
            });
            (tx, h)
        })
        .unzip();

    let mut offset = 0u64;
    let mut next = 0usize;
    while offset < size {
        let slot = &mut ring[next % RING];
        next += 1;
        let buf = loop {
            if let Some(b) = Arc::get_mut(slot) {
                break b;
            }
            std::thread::sleep(std::time::Duration::from_micros(50));
        };
        let want = (size - offset).min(CHUNK as u64) as usize;
        let mut got = 0;
        while got < want {
            match sock.read(&mut buf.bytes_mut()[got..want]) {
                Ok(0) => panic!("the sender closed early"),
                Ok(n) => got += n,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("recv: {e}"),
            }
        }
        let f = Filled {
            buf: slot.clone(),
            offset,
            len: got,
        };
        // 2 MiB buffers in 8 MiB segments: a buffer never straddles two.
        let seg = offset / MARK_EVERY;
        to_hashers[seg as usize % cpus]
            .send(f.clone())
            .expect("a hasher");
        to_writer.send(f).expect("the writer");
        offset += got as u64;
    }
    drop((to_writer, to_hashers));
    let target = writer.join().expect("the writer");
    let segments: usize = hashers
        .into_iter()
        .map(|h| h.join().expect("a hasher"))
        .sum();
    let secs = started.elapsed().as_secs_f64();
    sender.join().expect("the sender");
    std::fs::remove_file(&target).ok();
    println!(
        "{:.0} MB/s ({} bytes in {secs:.3} s: sendfile over loopback, O_DIRECT writes, \
         fdatasync + rename + directory fsync, md5 of {segments} segments on {cpus} threads)",
        size as f64 / secs / 1e6,
        size,
    );
}
