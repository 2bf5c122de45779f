//! This process and its host, as the kernel sees them: allowed CPUs, resource limits
//! (open files, locked memory), io_uring availability, who listens on a port, the runtime-dir
//! lock, systemd notifications, allocator tuning, buffers mapped apart from the allocator. A
//! leaf module: plain syscalls, no server state; errors are messages for the operator.

use std::net::IpAddr;
use std::path::Path;

/// `recv(2)` as a plain system call: `recvfrom(fd, buf, len, flags, NULL, NULL)`. glibc's
/// `recv` is a thread-cancellation point and, in a multi-threaded process, turns asynchronous
/// cancellation on and off around the call (two atomic read-modify-writes of the thread's
/// state per call, about 1 % of a small GET's CPU); this process never cancels threads.
/// Returns what the call returns: the bytes read, or -1 with `errno` set.
///
/// # Safety
/// `buf` must be writable for `len` bytes.
pub unsafe fn recv(
    fd: libc::c_int,
    buf: *mut libc::c_void,
    len: usize,
    flags: libc::c_int,
) -> isize {
    let null = std::ptr::null_mut::<libc::c_void>();
    // SAFETY: the caller's contract on `buf`; recvfrom with no address to fill.
    unsafe { libc::syscall(libc::SYS_recvfrom, fd, buf, len, flags, null, null) as isize }
}

/// [`recv`] without waiting, into `room` (memory that may be uninitialised: the kernel
/// writes it). None: nothing to read now.
pub fn recv_now(
    fd: libc::c_int,
    room: &mut [std::mem::MaybeUninit<u8>],
) -> Option<std::io::Result<usize>> {
    // SAFETY: `room` is writable memory of its length; recv writes at most that many bytes.
    let n = unsafe { recv(fd, room.as_mut_ptr().cast(), room.len(), libc::MSG_DONTWAIT) };
    if n >= 0 {
        return Some(Ok(n as usize));
    }
    let e = std::io::Error::last_os_error();
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::Interrupted => None,
        _ => Some(Err(e)),
    }
}

/// `sendmsg(2)` as a plain system call (the reason: [`recv`]). Returns the bytes sent, or -1
/// with `errno` set.
///
/// # Safety
/// `msg` must describe readable memory (its iovecs) for the call's duration.
pub unsafe fn sendmsg(fd: libc::c_int, msg: &libc::msghdr, flags: libc::c_int) -> isize {
    // SAFETY: the caller's contract on `msg`.
    unsafe { libc::syscall(libc::SYS_sendmsg, fd, msg as *const libc::msghdr, flags) as isize }
}

/// CPUs this process may run on (taskset, systemd CPUAffinity=, cpusets).
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: a zeroed cpu_set_t is valid; sched_getaffinity fills it for this process.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return vec![0];
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// The CPU the calling thread runs on (an executor's own, as it is pinned).
pub fn current_cpu() -> Option<usize> {
    // SAFETY: no arguments; -1 on failure.
    let c = unsafe { libc::sched_getcpu() };
    usize::try_from(c).ok()
}

/// Keeps the calling thread off `cpu` while it may run on another one (a helper thread of an
/// executor pinned there, whose work should run beside it, not take turns with it).
pub fn avoid_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is valid; both calls read or fill it for this thread.
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, size, &mut set) != 0 || !libc::CPU_ISSET(cpu, &set) {
            return;
        }
        libc::CPU_CLR(cpu, &mut set);
        if libc::CPU_COUNT(&set) > 0 {
            libc::sched_setaffinity(0, size, &set);
        }
    }
}

/// Lets the calling thread run on every CPU the process's main thread may (a thread started
/// by a pinned executor inherits its one CPU).
pub fn unpin() {
    // SAFETY: a zeroed cpu_set_t is valid; the calls read or fill it (the process id names
    // the main thread, 0 the calling one).
    unsafe {
        let size = std::mem::size_of::<libc::cpu_set_t>();
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(libc::getpid(), size, &mut set) == 0 && libc::CPU_COUNT(&set) > 0
        {
            libc::sched_setaffinity(0, size, &set);
        }
    }
}

/// Fails fast with the fix when the kernel or a seccomp profile refuses io_uring.
pub fn probe_io_uring() -> Result<(), String> {
    #[repr(C)]
    struct Params([u32; 30]);
    let mut params = Params([0; 30]);
    // SAFETY: io_uring_setup reads/writes a struct io_uring_params (120 bytes) we own.
    let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 4u32, &mut params as *mut Params) };
    if fd >= 0 {
        // SAFETY: fd is a ring we just created and own.
        unsafe { libc::close(fd as i32) };
        return Ok(());
    }
    let err = std::io::Error::last_os_error();
    let why = match err.raw_os_error() {
        Some(libc::ENOSYS) => "the kernel has no io_uring (Linux 5.8 or newer is required)",
        Some(libc::EPERM) => {
            "io_uring is blocked: in Docker 25+ and Kubernetes RuntimeDefault the default \
             seccomp profile forbids it. Run with a seccomp profile that allows io_uring_setup, \
             io_uring_enter and io_uring_register (Docker's default profile plus those three; \
             see docs/DEPLOYMENT.md), or, on hosts with kernel.io_uring_disabled set, set it to 0"
        }
        _ => "io_uring_setup failed",
    };
    Err(format!("cannot start: {why} ({err})"))
}

/// Warns when RLIMIT_MEMLOCK cannot hold the rings' registered buffers.
pub fn check_memlock(workers: usize, io_memory: u64) -> Result<(), String> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return Ok(());
    }
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < MEMLOCK_BYTES_MIN {
        return Err(format!(
            "the locked-memory limit ({} KiB) is below the {} KiB an io_uring executor needs: \
             raise it (ulimit -l, systemd LimitMEMLOCK=)",
            lim.rlim_cur / 1024,
            MEMLOCK_BYTES_MIN / 1024
        ));
    }
    let need = workers as u64 * (io_memory.max(65536) + 512 * 1024);
    if lim.rlim_cur != libc::RLIM_INFINITY && lim.rlim_cur < need {
        tracing::warn!(
            memlock_limit_bytes = lim.rlim_cur,
            needed_bytes = need,
            "RLIMIT_MEMLOCK is low for {workers} executors with io_memory={io_memory}: io_uring \
             buffers may not be registered (slower I/O). Raise it (systemd LimitMEMLOCK=, \
             ulimit -l) or lower io_memory / workers in cfg.json"
        );
    }
    Ok(())
}

/// The locked memory glommio requires before it makes an executor's rings.
pub const MEMLOCK_BYTES_MIN: u64 = 512 * 1024;

/// The locked-memory limit in bytes (None: unlimited or unknown), for messages.
pub fn memlock_limit() -> Option<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    let ok = unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } == 0;
    (ok && lim.rlim_cur != libc::RLIM_INFINITY).then_some(lim.rlim_cur)
}

/// Holds an exclusive lock on `data/fastdfs.lock` for the life of the process: two servers on one
/// runtime dir would corrupt each other's state (go-fastdfs got this from LevelDB's lock).
pub fn lock_runtime_dir(dir: &Path) -> Result<std::fs::File, String> {
    use std::os::fd::AsRawFd;
    let path = dir.join("data").join("fastdfs.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(format!(
            "another fastdfs server is running in {} ({} is locked)",
            dir.display(),
            path.display()
        ));
    }
    Ok(f)
}

/// Whether a socket is listening on `addr`'s port at an overlapping address, from
/// /proc/net/tcp{,6}. SO_REUSEPORT would let a second server share the port silently (the
/// kernel then splits connections between them), so this is checked before binding.
fn port_has_listener(addr: std::net::SocketAddr) -> bool {
    let port = format!("{:04X}", addr.port());
    let ours = addr.ip();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let Ok(text) = std::fs::read_to_string(table) else {
            continue;
        };
        for line in text.lines().skip(1) {
            let cols: Vec<&str> = line.split_whitespace().collect();
            if cols.len() < 4 || cols[3] != "0A" {
                continue;
            }
            let Some((ip_hex, port_hex)) = cols[1].split_once(':') else {
                continue;
            };
            if port_hex != port {
                continue;
            }
            let theirs = parse_proc_ip(ip_hex);
            let overlap = match theirs {
                Some(t) => t.is_unspecified() || ours.is_unspecified() || t == ours,
                None => true,
            };
            if overlap {
                return true;
            }
        }
    }
    false
}

/// An address of /proc/net/tcp{,6} (hex, little-endian 32-bit words).
fn parse_proc_ip(hex: &str) -> Option<IpAddr> {
    let words: Vec<u32> = (0..hex.len() / 8)
        .map(|i| u32::from_str_radix(&hex[i * 8..i * 8 + 8], 16).ok())
        .collect::<Option<_>>()?;
    match words.as_slice() {
        [w] => Some(IpAddr::from(w.to_le_bytes())),
        [a, b, c, d] => {
            let mut bytes = [0u8; 16];
            for (i, w) in [a, b, c, d].iter().enumerate() {
                bytes[i * 4..i * 4 + 4].copy_from_slice(&w.to_le_bytes());
            }
            let v6 = std::net::Ipv6Addr::from(bytes);
            Some(
                v6.to_ipv4_mapped()
                    .map(IpAddr::V4)
                    .unwrap_or(IpAddr::V6(v6)),
            )
        }
        _ => None,
    }
}

/// Refuses a port another program (or another fastdfs) listens on, then binds once the way the
/// executors will (SO_REUSEADDR + SO_REUSEPORT), so connections of our previous run that linger
/// in TIME_WAIT/FIN_WAIT never block a restart.
pub fn probe_listen(addr: std::net::SocketAddr) -> Result<(), String> {
    let fail = |e: std::io::Error| format!("cannot listen on {addr}: {e}");
    if port_has_listener(addr) {
        return Err(fail(std::io::Error::from_raw_os_error(libc::EADDRINUSE)));
    }
    let domain = if addr.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    // SAFETY: plain socket/setsockopt/bind/close calls on a descriptor owned here; the sockaddr
    // passed to bind is built from `addr` and outlives the call.
    unsafe {
        let fd = libc::socket(domain, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(fail(std::io::Error::last_os_error()));
        }
        let one: libc::c_int = 1;
        let len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
        let p = &one as *const libc::c_int as *const libc::c_void;
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, p, len);
        libc::setsockopt(fd, libc::SOL_SOCKET, libc::SO_REUSEPORT, p, len);
        let rc = match addr {
            std::net::SocketAddr::V4(a) => {
                let sa = libc::sockaddr_in {
                    sin_family: libc::AF_INET as libc::sa_family_t,
                    sin_port: a.port().to_be(),
                    sin_addr: libc::in_addr {
                        s_addr: u32::from(*a.ip()).to_be(),
                    },
                    sin_zero: [0; 8],
                };
                libc::bind(
                    fd,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                )
            }
            std::net::SocketAddr::V6(a) => {
                let sa = libc::sockaddr_in6 {
                    sin6_family: libc::AF_INET6 as libc::sa_family_t,
                    sin6_port: a.port().to_be(),
                    sin6_flowinfo: 0,
                    sin6_addr: libc::in6_addr {
                        s6_addr: a.ip().octets(),
                    },
                    sin6_scope_id: a.scope_id(),
                };
                libc::bind(
                    fd,
                    &sa as *const _ as *const libc::sockaddr,
                    std::mem::size_of_val(&sa) as u32,
                )
            }
        };
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if rc != 0 {
            return Err(fail(err));
        }
    }
    Ok(())
}

/// systemd `Type=notify`: one datagram to $NOTIFY_SOCKET (no-op when not run by systemd).
pub fn notify_systemd(state: &str) {
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let Ok(sock) = std::os::unix::net::UnixDatagram::unbound() else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let sent = if let Some(name) = bytes.strip_prefix(b"@") {
        use std::os::linux::net::SocketAddrExt;
        std::os::unix::net::SocketAddr::from_abstract_name(name)
            .and_then(|addr| sock.send_to_addr(state.as_bytes(), &addr))
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(&path))
    };
    if let Err(e) = sent {
        tracing::warn!(cause = %e, "cannot notify systemd");
    }
}

/// Large transfer buffers (file chunks above glibc's 128 KiB mmap threshold) would otherwise be
/// mmapped and unmapped per chunk, paying page faults and zeroing on every read of a download.
/// Uploads' 1 MiB write buffers through the page cache come and go by the dozen: an arena
/// keeps 16 MiB beyond its top when it trims (`M_TOP_PAD`), or it would give pages back to the
/// kernel that the next buffers fault in again (measured: 14-26 page faults per uploaded MiB
/// without it, under 1 with it). Aligned buffers (direct writes and reads) are mapped apart
/// and kept in pools instead (`store::dma`, `http::sendfile`): an aligned allocation of a
/// MiB does not fit the hole an earlier one left, so the arena grew past them by tens of MiB.
pub fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 32 << 20);
        libc::mallopt(libc::M_TOP_PAD, 16 << 20);
    }
}

/// The time of `clock` (`clock_gettime(2)`).
fn clock_now(clock: libc::clockid_t) -> libc::timespec {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes the timespec we pass.
    unsafe { libc::clock_gettime(clock, &mut ts) };
    ts
}

/// Seconds since the epoch from the coarse real-time clock (no time-stamp counter read; up to
/// a tick behind): for the second-resolution dates of responses and log lines.
pub fn unix_secs_coarse() -> u64 {
    clock_now(libc::CLOCK_REALTIME_COARSE).tv_sec.max(0) as u64
}

/// The CPU time the calling thread has used.
pub fn thread_cpu_time() -> std::time::Duration {
    let ts = clock_now(libc::CLOCK_THREAD_CPUTIME_ID);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// The CPU time the whole process (every thread) has used.
pub fn process_cpu_time() -> std::time::Duration {
    let ts = clock_now(libc::CLOCK_PROCESS_CPUTIME_ID);
    std::time::Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Raises the soft open-files limit to the hard limit (connections + cached descriptors).
pub fn raise_nofile() {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit read and write the struct we pass.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) == 0 && lim.rlim_cur < lim.rlim_max {
            lim.rlim_cur = lim.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &lim);
        }
    }
}

/// The soft open-files limit of this process.
pub fn nofile_limit() -> u64 {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0
        || lim.rlim_cur == libc::RLIM_INFINITY
    {
        return 1 << 20;
    }
    lim.rlim_cur
}

/// A filesystem's space and inodes (statvfs) and type (statfs), as go-fastdfs' `/status`
/// reports them in `Sys.DiskInfo` (gopsutil's key names).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct DiskUsage {
    pub path: String,
    pub fstype: String,
    pub total: u64,
    pub free: u64,
    pub used: u64,
    pub used_percent: f64,
    pub inodes_total: u64,
    pub inodes_used: u64,
    pub inodes_free: u64,
    pub inodes_used_percent: f64,
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        part as f64 * 100.0 / whole as f64
    }
}

/// `statvfs(2)` of the filesystem holding `path`; None when it cannot be asked.
fn statvfs(path: &Path) -> Option<libc::statvfs> {
    with_c_path(path, |c| {
        // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is NUL-terminated.
        let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
        // SAFETY: statvfs only writes into `v`.
        if unsafe { libc::statvfs(c.as_ptr(), &mut v) } == 0 {
            Ok(v)
        } else {
            Err(std::io::Error::last_os_error())
        }
    })
    .ok()
}

/// Bytes that a non-root user can still write on the filesystem holding `path`.
// The statvfs field types differ between targets: the casts are not all no-ops.
#[allow(clippy::unnecessary_cast)]
pub fn free_bytes(path: &Path) -> Option<u64> {
    statvfs(path).map(|v| v.f_bavail as u64 * v.f_frsize as u64)
}

/// Bytes that a non-root user can still write, and the size in bytes, of the filesystem
/// holding `path`; None when it cannot be asked.
// The statvfs field types differ between targets: the casts are not all no-ops.
#[allow(clippy::unnecessary_cast)]
pub fn free_and_total_bytes(path: &Path) -> Option<(u64, u64)> {
    let v = statvfs(path)?;
    let frsize = v.f_frsize as u64;
    Some((v.f_bavail as u64 * frsize, v.f_blocks as u64 * frsize))
}

/// Space and inodes of the filesystem holding `path`; None when it cannot be asked.
// The statvfs/statfs field types differ between targets: the casts are not all no-ops.
#[allow(clippy::unnecessary_cast)]
pub fn disk_usage(path: &Path) -> Option<DiskUsage> {
    let v = statvfs(path)?;
    let fstype = with_c_path(path, |c| {
        // SAFETY: a zeroed statfs is a valid out-parameter; `c` is NUL-terminated.
        let mut f: libc::statfs = unsafe { std::mem::zeroed() };
        // SAFETY: statfs only writes into `f`.
        if unsafe { libc::statfs(c.as_ptr(), &mut f) } == 0 {
            Ok(fs_type_name(f.f_type as i64))
        } else {
            Err(std::io::Error::last_os_error())
        }
    })
    .unwrap_or_default();
    let frsize = v.f_frsize as u64;
    let total = v.f_blocks as u64 * frsize;
    let free = v.f_bavail as u64 * frsize;
    let used = total.saturating_sub(v.f_bfree as u64 * frsize);
    let inodes_total = v.f_files as u64;
    let inodes_free = v.f_ffree as u64;
    let inodes_used = inodes_total.saturating_sub(inodes_free);
    Some(DiskUsage {
        path: path.display().to_string(),
        fstype,
        total,
        free,
        used,
        // As df: used over what non-root users can have (used + available).
        used_percent: percent(used, used + free),
        inodes_total,
        inodes_used,
        inodes_free,
        inodes_used_percent: percent(inodes_used, inodes_total),
    })
}

/// The name gopsutil gives a statfs magic number (the common ones; else the number in hex).
fn fs_type_name(magic: i64) -> String {
    let name = match magic {
        0xEF53 => "ext2/ext3",
        0x5846_5342 => "xfs",
        0x0102_1994 => "tmpfs",
        0x9123_683E => "btrfs",
        0x794C_7630 => "overlayfs",
        0x6969 => "nfs",
        0x2FC1_2FC1 => "zfs",
        0x6573_5546 => "fuseblk",
        0x5346_544E => "ntfs",
        0x4d44 => "msdos",
        0xF15F => "ecryptfs",
        0x0000_9fa0 => "proc",
        _ => return format!("{magic:#x}"),
    };
    name.to_string()
}

/// Host memory from /proc/meminfo in bytes, keyed as gopsutil's VirtualMemoryStat (what
/// go-fastdfs' `/status` reports as `Sys.MemInfo`).
pub fn mem_info() -> serde_json::Map<String, serde_json::Value> {
    let text = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    parse_meminfo(&text)
}

fn parse_meminfo(text: &str) -> serde_json::Map<String, serde_json::Value> {
    let mut kb = std::collections::HashMap::new();
    for line in text.lines() {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let mut parts = v.split_whitespace();
        let Some(n) = parts.next().and_then(|n| n.parse::<u64>().ok()) else {
            continue;
        };
        let unit = if parts.next() == Some("kB") { 1024 } else { 1 };
        kb.insert(k.trim().to_string(), n * unit);
    }
    let get = |k: &str| kb.get(k).copied().unwrap_or(0);
    let total = get("MemTotal");
    let free = get("MemFree");
    let buffers = get("Buffers");
    let cached = get("Cached") + get("SReclaimable");
    let available = kb
        .get("MemAvailable")
        .copied()
        .unwrap_or(free + buffers + cached);
    let used = total.saturating_sub(free + buffers + cached);
    let mut m = serde_json::Map::new();
    let mut put = |k: &str, v: serde_json::Value| {
        m.insert(k.to_string(), v);
    };
    put("total", total.into());
    put("available", available.into());
    put("used", used.into());
    put("usedPercent", percent(used, total).into());
    put("free", free.into());
    for (key, proc_key) in [
        ("active", "Active"),
        ("inactive", "Inactive"),
        ("wired", ""),
        ("laundry", ""),
        ("buffers", "Buffers"),
        ("cached", ""),
        ("writeBack", "Writeback"),
        ("dirty", "Dirty"),
        ("writeBackTmp", "WritebackTmp"),
        ("shared", "Shmem"),
        ("slab", "Slab"),
        ("sreclaimable", "SReclaimable"),
        ("sunreclaim", "SUnreclaim"),
        ("pageTables", "PageTables"),
        ("swapCached", "SwapCached"),
        ("commitLimit", "CommitLimit"),
        ("committedAS", "Committed_AS"),
        ("highTotal", "HighTotal"),
        ("highFree", "HighFree"),
        ("lowTotal", "LowTotal"),
        ("lowFree", "LowFree"),
        ("swapTotal", "SwapTotal"),
        ("swapFree", "SwapFree"),
        ("mapped", "Mapped"),
        ("vmallocTotal", "VmallocTotal"),
        ("vmallocUsed", "VmallocUsed"),
        ("vmallocChunk", "VmallocChunk"),
        ("hugePagesTotal", "HugePages_Total"),
        ("hugePagesFree", "HugePages_Free"),
        ("hugePagesRsvd", "HugePages_Rsvd"),
        ("hugePagesSurp", "HugePages_Surp"),
        ("hugePageSize", "Hugepagesize"),
    ] {
        let v = match key {
            "cached" => cached,
            _ => get(proc_key),
        };
        put(key, v.into());
    }
    m
}

#[cfg(test)]
mod status_tests {
    use super::*;

    #[test]
    fn meminfo_is_read_in_bytes_with_gopsutil_keys() {
        let m = parse_meminfo(
            "MemTotal:       1000 kB\nMemFree:         100 kB\nMemAvailable:    600 kB\n\
             Buffers:          50 kB\nCached:          300 kB\nSReclaimable:    50 kB\n\
             HugePages_Total:   0\nActive:          200 kB\n",
        );
        assert_eq!(m["total"], 1_024_000);
        assert_eq!(m["available"], 614_400);
        assert_eq!(m["cached"], 358_400, "page cache and reclaimable slab");
        assert_eq!(m["used"], 1024 * (1000 - 100 - 50 - 350));
        assert_eq!(m["usedPercent"], 50.0);
        assert_eq!(m["active"], 204_800);
        assert_eq!(m["hugePagesTotal"], 0);
        assert_eq!(m["hugePagesRsvd"], 0, "absent lines count 0, the key stays");
    }

    #[test]
    fn the_heap_in_use_counts_a_live_allocation() {
        // Other tests allocate and free meanwhile: only a lower bound is certain.
        let held = vec![1u8; 8 << 20];
        let during = heap_in_use_bytes();
        assert!(
            during >= 8 << 20,
            "{during} bytes in use while 8 MiB are held"
        );
        drop(held);
    }

    #[test]
    fn free_bytes_are_what_disk_usage_calls_free_and_none_for_a_missing_path() {
        let root = Path::new("/");
        let free = free_bytes(root).expect("statvfs of /");
        assert!(free <= disk_usage(root).expect("statvfs of /").total);
        assert_eq!(free_bytes(Path::new("/no/such/directory/here")), None);
    }

    #[test]
    fn disk_usage_of_a_directory_has_every_key() {
        let d = disk_usage(Path::new("/")).expect("statvfs of /");
        assert!(d.total >= d.used && d.inodes_total >= d.inodes_used);
        let v = serde_json::to_value(&d).unwrap();
        for k in [
            "path",
            "fstype",
            "total",
            "free",
            "used",
            "usedPercent",
            "inodesTotal",
            "inodesUsed",
            "inodesFree",
            "inodesUsedPercent",
        ] {
            assert!(v.get(k).is_some(), "{k} missing in {v}");
        }
    }
}

/// Bytes the allocator has handed out and not yet had back (glibc's `mallinfo2`: in-use
/// chunks of every arena plus mmapped ones); 0 where it cannot tell.
pub fn heap_in_use_bytes() -> u64 {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallinfo2 only reads the allocator's own bookkeeping (under its locks).
        let m = unsafe { libc::mallinfo2() };
        (m.uordblks + m.hblkhd) as u64
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        0
    }
}

/// This process as Prometheus' `process_*` metrics describe it (from /proc/self).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ProcessStats {
    pub start_time_seconds: f64,
    pub cpu_seconds: f64,
    pub resident_bytes: u64,
    pub virtual_bytes: u64,
    pub open_fds: u64,
    pub max_fds: u64,
}

/// Reads this process's start time, CPU time, memory and descriptors; fields it cannot read
/// stay zero.
pub fn process_stats() -> ProcessStats {
    // SAFETY: sysconf has no memory effects.
    let (tck, page) = unsafe {
        (
            libc::sysconf(libc::_SC_CLK_TCK).max(1) as f64,
            libc::sysconf(libc::_SC_PAGESIZE).max(1) as u64,
        )
    };
    let mut p = ProcessStats {
        max_fds: nofile_limit(),
        ..Default::default()
    };
    if let Ok(stat) = std::fs::read_to_string("/proc/self/stat") {
        // Fields after the command name, which is in parentheses and may hold spaces.
        if let Some((_, rest)) = stat.rsplit_once(") ") {
            let f: Vec<&str> = rest.split_whitespace().collect();
            let num = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
            // rest[0] is field 3 (state): utime 14, stime 15, starttime 22, vsize 23, rss 24.
            p.cpu_seconds = (num(11) + num(12)) / tck;
            p.virtual_bytes = num(20) as u64;
            p.resident_bytes = num(21) as u64 * page;
            let btime = std::fs::read_to_string("/proc/stat")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find_map(|l| l.strip_prefix("btime "))
                        .and_then(|v| v.trim().parse::<f64>().ok())
                })
                .unwrap_or(0.0);
            p.start_time_seconds = btime + num(19) / tck;
        }
    }
    p.open_fds = std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count() as u64)
        .unwrap_or(0);
    p
}

#[cfg(test)]
mod process_tests {
    #[test]
    fn process_stats_describe_this_process() {
        let p = super::process_stats();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs_f64();
        assert!(
            p.start_time_seconds > 1.0e9 && p.start_time_seconds <= now + 1.0,
            "{p:?}"
        );
        assert!(
            p.resident_bytes > 0 && p.virtual_bytes >= p.resident_bytes,
            "{p:?}"
        );
        assert!(p.open_fds >= 3 && p.max_fds >= p.open_fds, "{p:?}");
    }
}

/// Size, modification time (unix seconds) and whether it is a directory, of an open file.
pub fn fstat(file: &impl std::os::fd::AsRawFd) -> std::io::Result<(u64, u64, bool)> {
    let st = file_stat(file)?;
    Ok((st.size, st.mtime_secs, st.is_dir))
}

/// What one `fstat` of an open file tells: its size, its mtime to the nanosecond, its inode
/// (files are replaced by a rename, so a new content is a new inode; the mtime covers a file
/// rewritten in place) and whether it is a directory.
#[derive(Clone, Copy, Debug)]
pub struct FileStat {
    pub size: u64,
    /// Unix seconds (a time before the epoch is 0).
    pub mtime_secs: u64,
    /// The nanoseconds within `mtime_secs`, below 10^9.
    pub mtime_nanos: u32,
    pub ino: u64,
    pub is_dir: bool,
}

/// The [`FileStat`] of an open file.
pub fn file_stat(file: &impl std::os::fd::AsRawFd) -> std::io::Result<FileStat> {
    let st = fstat_raw(file)?;
    Ok(FileStat {
        size: st.st_size as u64,
        mtime_secs: st.st_mtime.max(0) as u64,
        mtime_nanos: st.st_mtime_nsec.clamp(0, 999_999_999) as u32,
        ino: st.st_ino,
        is_dir: (st.st_mode & libc::S_IFMT) == libc::S_IFDIR,
    })
}

fn fstat_raw(file: &impl std::os::fd::AsRawFd) -> std::io::Result<libc::stat> {
    // SAFETY: a zeroed stat is a valid out-parameter; the fd is open for the call.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat writes into `st`, which lives across the call.
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(st)
}

/// Calls `f` with `path` as a NUL-terminated string, from a stack buffer when it fits (as the
/// standard library does for its own path calls): no allocation per syscall on a hot path.
/// A path with a NUL byte is an `InvalidInput` error.
pub fn with_c_path<T>(
    path: &Path,
    f: impl FnOnce(&std::ffi::CStr) -> std::io::Result<T>,
) -> std::io::Result<T> {
    use std::os::unix::ffi::OsStrExt;
    const STACK: usize = 512;
    let bytes = path.as_os_str().as_bytes();
    let invalid = || std::io::Error::new(std::io::ErrorKind::InvalidInput, "a NUL byte in a path");
    if bytes.len() < STACK {
        let mut buf = [0u8; STACK];
        buf[..bytes.len()].copy_from_slice(bytes);
        let c = std::ffi::CStr::from_bytes_with_nul(&buf[..=bytes.len()]).map_err(|_| invalid())?;
        f(c)
    } else {
        let c = std::ffi::CString::new(bytes).map_err(|_| invalid())?;
        f(&c)
    }
}

/// Blocking: sets the extended attribute `name` of the file at `path` to `value`
/// (`setxattr(2)`; a filesystem without user attributes answers `ENOTSUP`).
pub fn set_xattr(path: &Path, name: &std::ffi::CStr, value: &[u8]) -> std::io::Result<()> {
    with_c_path(path, |p| {
        // SAFETY: both strings are NUL-terminated; `value` is readable for its length.
        let r = unsafe {
            libc::setxattr(
                p.as_ptr(),
                name.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        if r == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    })
}

/// Blocking: the extended attribute `name` of the file at `path` if it has one of at most
/// `max` bytes (`getxattr(2)`); None when it has none or the filesystem keeps none.
pub fn get_xattr(
    path: &Path,
    name: &std::ffi::CStr,
    max: usize,
) -> std::io::Result<Option<Vec<u8>>> {
    with_c_path(path, |p| {
        let mut buf = vec![0u8; max];
        // SAFETY: both strings are NUL-terminated; `buf` is writable for its length.
        let r = unsafe {
            libc::getxattr(
                p.as_ptr(),
                name.as_ptr(),
                buf.as_mut_ptr().cast(),
                buf.len(),
            )
        };
        if r >= 0 {
            buf.truncate(r as usize);
            return Ok(Some(buf));
        }
        let e = std::io::Error::last_os_error();
        match e.raw_os_error() {
            Some(libc::ENODATA) | Some(libc::ENOTSUP) => Ok(None),
            // Larger than any we write: not ours.
            Some(libc::ERANGE) => Ok(None),
            _ => Err(e),
        }
    })
}

/// Bytes in an anonymous mapping of their own (`mmap(2)`), never in an allocator's arena.
/// For transient buffers that come and go in bursts beside the arenas' own use: carved from
/// an arena (whose top the allocator keeps padded, `tune_allocator`), they touch its pages
/// in turn as they move, and the arena's resident size rises to its high water whatever is
/// live; here only the pages filled are resident, and they go back to the kernel when the
/// value is dropped. Grows (`mremap(2)`) when a copy does not fit.
pub struct MappedBytes {
    ptr: std::ptr::NonNull<u8>,
    cap: usize,
    len: usize,
}

// SAFETY: plain memory owned by this value alone.
unsafe impl Send for MappedBytes {}
// SAFETY: shared access only reads.
unsafe impl Sync for MappedBytes {}

impl MappedBytes {
    /// A mapping of `capacity` bytes (rounded up to pages), none of them resident yet.
    pub fn with_capacity(capacity: usize) -> MappedBytes {
        let cap = round_to_pages(capacity.max(1));
        // SAFETY: a new private anonymous mapping; no existing memory is touched.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                cap,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE,
                -1,
                0,
            )
        };
        if p == libc::MAP_FAILED {
            mapping_failed(cap);
        }
        MappedBytes {
            ptr: std::ptr::NonNull::new(p.cast()).expect("mmap returns no null mapping"),
            cap,
            len: 0,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn capacity(&self) -> usize {
        self.cap
    }

    /// The mapping's first byte (page-aligned), for a caller that fills the mapping itself
    /// (`pread(2)` into it: aligned for `O_DIRECT`).
    pub fn as_mut_ptr(&mut self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub fn as_ptr(&self) -> *const u8 {
        self.ptr.as_ptr()
    }

    /// The room after the bytes held, to be filled by the caller (a socket's `recv`), who
    /// then marks what it filled ([`MappedBytes::filled`]).
    pub fn room(&mut self) -> &mut [std::mem::MaybeUninit<u8>] {
        // SAFETY: `len <= cap`; the room is this value's own mapping, writable, and handed
        // out as possibly uninitialized memory.
        unsafe {
            std::slice::from_raw_parts_mut(
                self.ptr.as_ptr().add(self.len).cast(),
                self.cap - self.len,
            )
        }
    }

    /// Marks the first `n` bytes of the room as held.
    ///
    /// # Safety
    /// Those bytes must have been written (through [`MappedBytes::room`]).
    pub unsafe fn filled(&mut self, n: usize) {
        assert!(n <= self.cap - self.len, "filled within the room");
        self.len += n;
    }

    /// Forgets the bytes; their pages stay resident for the next fill.
    pub fn clear(&mut self) {
        self.len = 0;
    }

    pub fn extend_from_slice(&mut self, bytes: &[u8]) {
        let want = self
            .len
            .checked_add(bytes.len())
            .expect("a length in range");
        if want > self.cap {
            self.grow(want.max(self.cap.saturating_mul(2)));
        }
        // SAFETY: `len + bytes.len() <= cap` (grown above); `bytes` cannot overlap a mapping
        // only this value can write.
        unsafe {
            std::ptr::copy_nonoverlapping(
                bytes.as_ptr(),
                self.ptr.as_ptr().add(self.len),
                bytes.len(),
            )
        };
        self.len = want;
    }

    fn grow(&mut self, to: usize) {
        let cap = round_to_pages(to);
        // SAFETY: remaps this value's own mapping; the old address is not used after.
        let p = unsafe {
            libc::mremap(
                self.ptr.as_ptr().cast(),
                self.cap,
                cap,
                libc::MREMAP_MAYMOVE,
            )
        };
        if p == libc::MAP_FAILED {
            mapping_failed(cap);
        }
        self.ptr = std::ptr::NonNull::new(p.cast()).expect("mremap returns no null mapping");
        self.cap = cap;
    }
}

impl std::ops::Deref for MappedBytes {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        // SAFETY: the first `len` bytes were written by `extend_from_slice`.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

impl Drop for MappedBytes {
    fn drop(&mut self) {
        // SAFETY: unmaps the mapping this value owns, once.
        unsafe { libc::munmap(self.ptr.as_ptr().cast(), self.cap) };
    }
}

fn round_to_pages(n: usize) -> usize {
    const PAGE: usize = 4096;
    n.checked_next_multiple_of(PAGE).expect("a size in range")
}

/// Out of address space or memory: as the allocator's own failure does.
fn mapping_failed(bytes: usize) -> ! {
    std::alloc::handle_alloc_error(
        std::alloc::Layout::from_size_align(bytes, 4096).expect("a valid layout"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mapped_bytes_fill_clear_and_grow_past_their_mapping() {
        let mut m = MappedBytes::with_capacity(10);
        assert_eq!((m.len(), m.capacity()), (0, 4096), "a page at least");
        m.extend_from_slice(b"hello");
        m.extend_from_slice(&[7u8; 4091]);
        assert_eq!(m.len(), 4096);
        assert_eq!(&m[..5], b"hello");
        let big: Vec<u8> = (0..20_000u32).map(|i| i as u8).collect();
        m.extend_from_slice(&big);
        assert_eq!(m.len(), 4096 + 20_000);
        assert!(m.capacity() >= m.len() && m.capacity().is_multiple_of(4096));
        assert_eq!(&m[..5], b"hello", "the bytes survive the move");
        assert_eq!(&m[4096..], &big[..]);
        m.clear();
        assert!(m.is_empty());
        m.extend_from_slice(b"again");
        assert_eq!(&m[..], b"again");
        let sent = std::thread::spawn(move || m.to_vec()).join().unwrap();
        assert_eq!(sent, b"again");
    }

    #[test]
    fn c_paths_short_and_long_and_with_a_nul() {
        let long = "d/".repeat(400) + "f";
        for p in ["/a/b", "", long.as_str()] {
            let got = with_c_path(Path::new(p), |c| Ok(c.to_bytes().to_vec())).unwrap();
            assert_eq!(got, p.as_bytes());
        }
        for p in ["a\0b".to_string(), "x".repeat(600) + "\0"] {
            let e = with_c_path(Path::new(&p), |_| Ok(())).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput);
        }
    }
}
