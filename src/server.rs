//! The runtime: one glommio executor per CPU of the process affinity mask, each with its own
//! SO_REUSEPORT listener, its own connections and file cache, and the LMDB shards it owns;
//! graceful shutdown on SIGTERM/SIGINT (stop accepting, finish in-flight requests within
//! `shutdown_grace`, exit 0).
//!
//! Architecture invariant: no blocking syscall on an executor thread except `fstat` of an
//! open file, LMDB reads and appends to the application log; LMDB commits, directory fsyncs
//! and directory creation run on the executor's blocking pool.

use crate::config::Config;
use crate::store::cache::FileCache;
use crate::store::meta::Meta;
use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};
use std::cell::{Cell, RefCell};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::rc::Rc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

/// State shared by all executors.
pub struct Shared {
    pub dir: PathBuf,
    config: RwLock<Arc<Config>>,
    pub meta: Arc<Meta>,
    shutdown: AtomicBool,
    /// Open connections over all executors, per client and in total (drained before exit).
    pub admission: Arc<crate::admission::Admission>,
    /// The soft open-files limit at start (the connection caps stay under it).
    nofile: u64,
    /// Bumped on every delete/overwrite; executors clear their file caches when it moves.
    pub cache_epoch: AtomicU64,
    pub started: std::time::Instant,
    pub workers: usize,
    /// One block per executor (each writes only its own).
    pub metrics: Vec<crate::metrics::Metrics>,
    /// Executors whose listener is bound; the last one tells systemd READY=1.
    bound: AtomicUsize,
    /// Reachability of peers, as the replication tasks saw it last.
    pub peer_health: crate::sync::PeerHealth,
}

impl Shared {
    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Re-reads cfg.json and swaps the live config. Settings bound at start (listen address,
    /// group prefix, executors, shards, io_memory) keep their running values until restart.
    pub fn reload_config(&self) -> Result<Vec<String>, crate::config::ConfigError> {
        let loaded = crate::config::load_or_create(&self.dir)?;
        let mut next = loaded.config;
        let mut guard = self.config.write().expect("config lock");
        let old = guard.clone();
        next.addr = old.addr.clone();
        next.group = old.group.clone();
        next.support_group_manage = old.support_group_manage;
        next.workers = old.workers;
        next.shards = old.shards;
        next.io_memory = old.io_memory;
        next.enable_tus = old.enable_tus;
        *guard = Arc::new(next);
        Ok(loaded.warnings)
    }

    /// Open client connections over all executors.
    pub fn connections(&self) -> usize {
        self.admission.open()
    }

    pub fn invalidate_caches(&self) {
        self.cache_epoch.fetch_add(1, Ordering::Release);
    }
}

/// Per-executor state handed to every connection of that executor.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub id: usize,
    pub cache: RefCell<FileCache>,
    pub open_files: RefCell<crate::store::cache::FdCache>,
    pub auth_cache: RefCell<crate::auth::AuthCache>,
    /// Bounds concurrent image resizes on this executor.
    pub resize_slots: glommio::sync::Semaphore,
    /// Replication tasks' state on this executor (wake-up, peer connections, retries).
    pub sync: crate::sync::State,
    access: RefCell<Vec<u8>>,
    connections: Cell<usize>,
}

impl Worker {
    pub fn config(&self) -> Arc<Config> {
        self.shared.config()
    }

    /// This executor's metrics block.
    pub fn metrics(&self) -> &crate::metrics::Metrics {
        &self.shared.metrics[self.id]
    }

    pub fn meta(&self) -> &Meta {
        &self.shared.meta
    }

    pub fn dir(&self) -> &Path {
        &self.shared.dir
    }

    pub fn shutting_down(&self) -> bool {
        self.shared.shutting_down()
    }

    /// Appends an access-log line (flushed to log/access.log from the blocking pool).
    pub fn access_log(&self, ip: IpAddr, method: &str, status: u16, target: &str, took: Duration) {
        use std::io::Write;
        let now = log_time_now();
        let mut buf = self.access.borrow_mut();
        if buf.len() < ACCESS_BUFFER_BYTES_MAX {
            let _ = writeln!(
                buf,
                "[Access] {now} | {took:?} | {ip} | {method} | {status} | {target}"
            );
        }
    }
}

thread_local! {
    static LOG_TIME: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Local time for access-log lines, formatted at most once per second per thread.
fn log_time_now() -> String {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    LOG_TIME.with(|t| {
        let mut t = t.borrow_mut();
        if t.0 != secs {
            *t = (
                secs,
                chrono::Local::now()
                    .format("%Y/%m/%d - %H:%M:%S")
                    .to_string(),
            );
        }
        t.1.clone()
    })
}

/// Blocking-pool threads per executor. They mostly sleep in fsync: LMDB commits of different
/// shards and directory fsyncs proceed in parallel, so the filesystem can merge their flushes.
const BLOCKING_THREADS: usize = 16;

/// Access-log bytes kept in memory between flushes (excess lines are dropped, not blocking).
const ACCESS_BUFFER_BYTES_MAX: usize = 4 << 20;
const ACCESS_FLUSH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Startup(String),
    #[error(transparent)]
    Meta(#[from] crate::store::meta::MetaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
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

/// Fails fast with the fix when the kernel or a seccomp profile refuses io_uring.
pub fn probe_io_uring() -> Result<(), ServerError> {
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
    Err(ServerError::Startup(format!("cannot start: {why} ({err})")))
}

/// Warns when RLIMIT_MEMLOCK cannot hold the rings' registered buffers.
fn check_memlock(workers: usize, io_memory: u64) {
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
pub fn lock_runtime_dir(dir: &Path) -> Result<std::fs::File, ServerError> {
    use std::os::fd::AsRawFd;
    let path = dir.join("data").join("fastdfs.lock");
    let f = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)?;
    // SAFETY: flock on an fd we own.
    if unsafe { libc::flock(f.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
        return Err(ServerError::Startup(format!(
            "another fastdfs server is running in {} ({} is locked)",
            dir.display(),
            path.display()
        )));
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
fn probe_listen(addr: std::net::SocketAddr) -> Result<(), ServerError> {
    let fail = |e: std::io::Error| ServerError::Startup(format!("cannot listen on {addr}: {e}"));
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
fn notify_systemd(state: &str) {
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

/// Removes leftovers of uploads that died half way (files/_tmp).
fn clean_tmp(dir: &Path) -> std::io::Result<()> {
    let tmp = dir.join("files").join("_tmp");
    if tmp.exists() {
        std::fs::remove_dir_all(&tmp)?;
    }
    std::fs::create_dir_all(&tmp)?;
    Ok(())
}

/// Large transfer buffers (file chunks above glibc's 128 KiB mmap threshold) would otherwise be
/// mmapped and unmapped per chunk, paying page faults and zeroing on every read of a download.
fn tune_allocator() {
    // SAFETY: mallopt only changes allocator parameters; called before any other thread starts.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 4 << 20);
        libc::mallopt(libc::M_TRIM_THRESHOLD, 16 << 20);
    }
}

/// Raises the soft open-files limit to the hard limit (connections + cached descriptors).
fn raise_nofile() {
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

pub fn run(dir: &Path, config: Config) -> Result<(), ServerError> {
    probe_io_uring()?;
    tune_allocator();
    raise_nofile();
    for d in ["files", "data", "log", "conf", "static"] {
        std::fs::create_dir_all(dir.join(d))?;
    }
    let _lock = lock_runtime_dir(dir)?;
    clean_tmp(dir)?;
    if config.download_use_token && config.download_token_secret.is_empty() {
        tracing::warn!(
            "download_use_token is on but download_token_secret is empty: tokens use go-fastdfs' \
             secret-less formula md5(file_md5 + timestamp), which anyone who knows a file's md5 \
             can compute. Set download_token_secret in cfg.json"
        );
    }
    let cpus = allowed_cpus();
    let workers = if config.workers == 0 {
        cpus.len().max(1)
    } else {
        config.workers
    };
    check_memlock(workers, config.io_memory);
    let meta = Meta::open(dir, config.shards, workers)?;
    if let Some(report) =
        crate::store::import::import_in_place(dir, &meta, config.use_sha1(), &config.host)?
    {
        tracing::info!(
            ?report,
            "go-fastdfs runtime dir imported; every existing URL stays valid"
        );
    }
    let addr = config.listen_addr().map_err(ServerError::Startup)?;
    probe_listen(addr)?;
    let shared = Arc::new(Shared {
        dir: dir.to_path_buf(),
        config: RwLock::new(Arc::new(config.clone())),
        meta,
        shutdown: AtomicBool::new(false),
        admission: Default::default(),
        nofile: crate::admission::nofile_limit(),
        cache_epoch: AtomicU64::new(0),
        started: std::time::Instant::now(),
        workers,
        metrics: (0..workers)
            .map(|_| crate::metrics::Metrics::default())
            .collect(),
        bound: AtomicUsize::new(0),
        peer_health: Default::default(),
    });
    install_signals(shared.clone())?;
    let cpuset = CpuSet::online()
        .map_err(|e| ServerError::Startup(format!("cannot read CPU topology: {e}")))?
        .filter(|l| cpus.contains(&l.cpu));
    let placement = if workers <= cpus.len() {
        PoolPlacement::MaxSpread(workers, Some(cpuset))
    } else {
        PoolPlacement::Unbound(workers)
    };
    tracing::info!(workers, addr = %addr, dir = %dir.display(), "fastdfs-rs starting");
    println!("Listen on {addr}");
    let s = shared.clone();
    let next_id = Arc::new(AtomicUsize::new(0));
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("fastdfs")
        .io_memory(config.io_memory as usize)
        .ring_depth(256)
        .preempt_timer(Duration::from_millis(5))
        .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
        .on_all_shards(move || {
            let s = s.clone();
            let id = next_id.fetch_add(1, Ordering::SeqCst);
            async move { worker_main(s, id, workers).await }
        })
        .map_err(|e| ServerError::Startup(format!("cannot start executors: {e}")))?;
    let mut failure = None;
    for r in handles.join_all() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(format!("executor failed: {e}")),
        }
    }
    match failure {
        Some(e) => Err(ServerError::Startup(e)),
        None => {
            tracing::info!("fastdfs-rs stopped");
            Ok(())
        }
    }
}

fn install_signals(shared: Arc<Shared>) -> std::io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let mut signals = signal_hook::iterator::Signals::new([SIGTERM, SIGINT, SIGHUP])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if sig == SIGHUP {
                    match shared.reload_config() {
                        Ok(warnings) => {
                            for w in warnings {
                                tracing::warn!("{w}");
                            }
                            tracing::info!("SIGHUP: configuration reloaded");
                        }
                        Err(e) => tracing::error!("SIGHUP: configuration not reloaded: {e}"),
                    }
                    continue;
                }
                if shared.shutdown.swap(true, Ordering::SeqCst) {
                    tracing::warn!("second signal: exiting at once");
                    std::process::exit(1);
                }
                notify_systemd("STOPPING=1");
                tracing::info!(
                    signal = sig,
                    "shutting down: no new connections, draining in-flight requests"
                );
            }
        })?;
    Ok(())
}

async fn worker_main(shared: Arc<Shared>, id: usize, workers: usize) -> Result<(), String> {
    assert!(id < workers, "executor index in range");
    let cfg = shared.config();
    let addr = cfg.listen_addr()?;
    let listener = match glommio::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            // Stop the other executors too: a half-started server must not linger.
            shared.shutdown.store(true, Ordering::SeqCst);
            return Err(format!("cannot listen on {addr}: {e}"));
        }
    };
    tracing::info!(worker = id, addr = %addr, "accepting connections");
    if shared.bound.fetch_add(1, Ordering::SeqCst) + 1 == workers {
        notify_systemd("READY=1");
    }
    let cache_bytes = cfg.file_cache_bytes as usize;
    let worker = Rc::new(Worker {
        shared: shared.clone(),
        id,
        cache: RefCell::new(FileCache::new(cache_bytes)),
        open_files: RefCell::new(Default::default()),
        auth_cache: RefCell::new(Default::default()),
        resize_slots: glommio::sync::Semaphore::new(crate::image::RESIZES_IN_FLIGHT),
        sync: Default::default(),
        access: RefCell::new(Vec::new()),
        connections: Cell::new(0),
    });
    if let Some(rx) = shared.meta.take_owned(id) {
        let w = worker.clone();
        let committed = move || w.sync.wake.notify();
        glommio::spawn_local(shared.meta.clone().run_committer(rx, committed)).detach();
    }
    crate::sync::start(worker.clone());
    let flusher = glommio::spawn_local(flush_access_log(worker.clone()));
    if id == 0 {
        glommio::spawn_local(trim_after_bursts(shared.clone())).detach();
    }
    if id == 0 && cfg.enable_tus {
        glommio::spawn_local(crate::tus::expire_loop(worker.clone())).detach();
    }
    // After the shutdown signal, connections the kernel already queued on the listener are
    // still accepted and served (their clients have sent requests); then the listener closes.
    // The drain relies on glommio trying a non-blocking accept before waiting.
    // A pending accept is cancelled only at shutdown: an io_uring accept cancelled after the
    // kernel completed it would leave that connection open and unserved (glommio drops the
    // result), so the accept is never raced against a periodic timer.
    let mut draining = false;
    loop {
        draining = draining || shared.shutting_down();
        let stop = async {
            if draining {
                glommio::timer::sleep(Duration::from_millis(2)).await;
            } else {
                while !shared.shutting_down() {
                    glommio::timer::sleep(Duration::from_millis(200)).await;
                }
            }
            None
        };
        let accepted =
            futures_lite::future::or(async { Some(listener.accept().await) }, stop).await;
        let stream = match accepted {
            None if draining => break,
            None => continue,
            Some(Ok(s)) => s,
            Some(Err(e)) => {
                tracing::warn!(cause = %e, "accept failed");
                glommio::timer::sleep(Duration::from_millis(10)).await;
                continue;
            }
        };
        let Some(ticket) = admit(&worker, &stream) else {
            continue;
        };
        worker.connections.set(worker.connections.get() + 1);
        let w = worker.clone();
        glommio::spawn_local(async move {
            use futures_lite::FutureExt;
            // Safety net: a bug that panics in one request closes that connection only;
            // the executor and its other connections keep running.
            let served = std::panic::AssertUnwindSafe(crate::http::conn::serve(stream, w.clone()))
                .catch_unwind()
                .await;
            if served.is_err() {
                tracing::error!("a connection task panicked; its connection was closed");
            }
            w.connections.set(w.connections.get() - 1);
            drop(ticket);
        })
        .detach();
    }
    drop(listener);
    // Every executor waits for all connections, since an upload on any executor may need
    // a shard committer that lives here.
    let deadline = std::time::Instant::now() + Duration::from_secs(cfg.shutdown_grace);
    while shared.connections() > 0 && std::time::Instant::now() < deadline {
        glommio::timer::sleep(Duration::from_millis(20)).await;
    }
    flusher.cancel().await;
    flush_access_once(&worker).await;
    Ok(())
}

/// Admits an accepted connection under the caps (per executor, per client address, in total),
/// or answers 503 and closes it.
fn admit(
    worker: &Rc<Worker>,
    stream: &glommio::net::TcpStream,
) -> Option<crate::admission::Ticket> {
    let cfg = worker.config();
    let ip = stream.peer_addr().ok()?.ip();
    let privileged = cfg.access.is_admin(ip);
    let refusal = if worker.connections.get() >= cfg.connections_per_worker_max && !privileged {
        Err(crate::admission::Refusal::Total)
    } else {
        let caps = crate::admission::Caps::new(
            cfg.connections_per_client_max,
            cfg.connections_max,
            worker.shared.nofile,
        );
        let counted = !cfg.access.is_trusted_proxy(ip);
        worker.shared.admission.admit(ip, privileged, counted, caps)
    };
    match refusal {
        Ok(ticket) => Some(ticket),
        Err(why) => {
            worker.metrics().connection_refused(why);
            None
        }
    }
}

/// Gives memory back to the system after a burst of connections (a flood's buffers would
/// otherwise stay in the allocator's arenas).
async fn trim_after_bursts(shared: Arc<Shared>) {
    /// Connections above which a burst counts.
    const BURST_CONNECTIONS_MIN: usize = 512;
    loop {
        glommio::timer::sleep(Duration::from_secs(2)).await;
        let peak = shared.admission.take_peak();
        if peak >= BURST_CONNECTIONS_MIN && shared.connections() < peak / 2 {
            glommio::executor()
                .spawn_blocking(|| {
                    // SAFETY: malloc_trim only returns free memory of the allocator's arenas.
                    unsafe { libc::malloc_trim(0) };
                })
                .await;
        }
    }
}

async fn flush_access_log(worker: Rc<Worker>) {
    loop {
        glommio::timer::sleep(ACCESS_FLUSH_EVERY).await;
        flush_access_once(&worker).await;
    }
}

async fn flush_access_once(worker: &Worker) {
    let buf = std::mem::take(&mut *worker.access.borrow_mut());
    if buf.is_empty() {
        return;
    }
    let path = worker.dir().join("log").join("access.log");
    glommio::executor()
        .spawn_blocking(move || {
            use std::io::Write;
            if let Ok(mut f) = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
            {
                let _ = f.write_all(&buf);
            }
        })
        .await;
}
