//! This process and its host, as the kernel sees them: allowed CPUs, resource limits
//! (open files, locked memory), io_uring availability, who listens on a port, the runtime-dir
//! lock, systemd notifications, allocator tuning. A leaf module: plain syscalls, no server
//! state; errors are messages for the operator.

use std::net::IpAddr;
use std::path::Path;

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
pub fn check_memlock(workers: usize, io_memory: u64) {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes into the struct we pass.
    if unsafe { libc::getrlimit(libc::RLIMIT_MEMLOCK, &mut lim) } != 0 {
        return;
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
pub fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
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
