//! The runtime: one glommio executor per CPU of the process affinity mask, each with its own
//! SO_REUSEPORT listener, its own connections and file cache, and the LMDB shards it owns;
//! graceful shutdown on SIGTERM/SIGINT (stop accepting, finish in-flight requests within
//! `shutdown_grace`, then cut the request bodies still arriving and give their handlers
//! [`CUT_SETTLE`] to answer, exit 0). Builds the state (`worker`), starts each executor's duties,
//! accepts connections under the caps (`admission`) and hands each to the HTTP layer with the
//! worker as its handler (`router` implements `http::Handler` for it).
//!
//! Architecture invariant: no blocking syscall on an executor thread except `fstat` of an
//! open file, LMDB reads and appends to the application log; LMDB commits, directory fsyncs
//! and directory creation run on the executor's blocking pool.

use crate::config::Config;
use crate::store::meta::Meta;
use crate::sys;
use crate::worker::{Shared, Worker};
use glommio::{CpuSet, LocalExecutorPoolBuilder, PoolPlacement};
use std::path::Path;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

/// Blocking-pool threads per executor. They mostly sleep in fsync: LMDB commits of different
/// shards and directory fsyncs proceed in parallel, so the filesystem can merge their flushes.
const BLOCKING_THREADS: usize = 16;
// Small files' fdatasyncs leave at least four pool threads free for the metadata commits.
const _: () = assert!(crate::store::write::WHOLE_JOBS_MAX + 4 <= BLOCKING_THREADS as u64);

const ACCESS_FLUSH_EVERY: Duration = Duration::from_millis(500);

/// After `shutdown_grace`, the time the handlers of the bodies cut then have to finish (a tus
/// PATCH syncs what arrived and saves its offset, a multipart upload removes its temp file
/// and answers 503). Connections still open after it are dropped with the executor.
const CUT_SETTLE: Duration = Duration::from_secs(3);

/// The sockets of this executor's open connections, so that shutdown can cut the request
/// bodies still arriving when the grace is over.
#[derive(Default)]
struct LiveSockets(std::cell::RefCell<std::collections::HashSet<std::os::fd::RawFd>>);

/// One connection's entry in [`LiveSockets`], removed when the connection's task ends.
struct LiveSocket(Rc<LiveSockets>, std::os::fd::RawFd);

impl LiveSockets {
    fn add(self: &Rc<Self>, fd: std::os::fd::RawFd) -> LiveSocket {
        self.0.borrow_mut().insert(fd);
        LiveSocket(self.clone(), fd)
    }

    /// Shuts the reading side of every open connection: a handler waiting for body bytes
    /// sees the body end at once (as when the client goes) and answers; the writing side
    /// stays, so the answer still reaches a client that reads it. Returns how many.
    fn cut_bodies(&self) -> usize {
        let fds = self.0.borrow();
        for &fd in fds.iter() {
            // SAFETY: `fd` is the socket of a connection whose task is alive on this thread:
            // its entry leaves the set when the task ends, on this thread, before its
            // number could be handed out again here. shutdown(2) closes nothing.
            unsafe { libc::shutdown(fd, libc::SHUT_RD) };
        }
        fds.len()
    }
}

impl Drop for LiveSocket {
    fn drop(&mut self) {
        self.0 .0.borrow_mut().remove(&self.1);
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error("{0}")]
    Startup(String),
    #[error(transparent)]
    Meta(#[from] crate::store::meta::MetaError),
    #[error(transparent)]
    Io(#[from] std::io::Error),
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

/// Makes the runtime dir's directories, empties `files/_tmp/`, writes the default web pages
/// on a fresh node, and warns of a token secret left empty.
fn prepare_dir(dir: &Path, config: &Config) -> Result<(), ServerError> {
    for d in ["files", "data", "log", "conf", "static"] {
        let at = dir.join(d);
        std::fs::create_dir_all(&at).map_err(|e| {
            ServerError::Startup(format!("cannot create directory {}: {e}", at.display()))
        })?;
    }
    clean_tmp(dir).map_err(|e| {
        ServerError::Startup(format!(
            "cannot empty {} (uploads cut by a restart): {e}",
            dir.join("files").join("_tmp").display()
        ))
    })?;
    // A fresh node has its upload page template and report page (an operator's stay).
    match crate::web::install_defaults(&dir.join("static")) {
        Ok(written) if !written.is_empty() => tracing::info!(?written, "static/ pages written"),
        Ok(_) => {}
        // Not fatal: the upload page falls back to the built-in template; the report is 404.
        Err(e) => tracing::warn!(cause = %e, "cannot write the default pages into static/"),
    }
    if config.download_use_token && config.download_token_secret.is_empty() {
        tracing::warn!(
            "download_use_token is on but download_token_secret is empty: tokens use go-fastdfs' \
             secret-less formula md5(file_md5 + timestamp), which anyone who knows a file's md5 \
             can compute. Set download_token_secret in cfg.json"
        );
    }
    Ok(())
}

/// Waits for every executor to end; the first failure, if any (an executor's error, its
/// panic, or a background task's panic).
fn joined(
    handles: glommio::PoolThreadHandles<Result<(), String>>,
    shared: &Shared,
) -> Result<(), ServerError> {
    let mut failure = None;
    for r in handles.join_all() {
        match r {
            Ok(Ok(())) => {}
            Ok(Err(e)) => failure = Some(e),
            Err(e) => failure = Some(format!("executor failed: {e}")),
        }
    }
    if shared.failed() && failure.is_none() {
        failure = Some("stopped: a background task panicked (see the log)".to_string());
    }
    match failure {
        Some(e) => Err(ServerError::Startup(e)),
        None => {
            tracing::info!("fastdfs-rs stopped");
            Ok(())
        }
    }
}

/// Serves the runtime dir `dir`, whose lock (`sys::lock_runtime_dir`) the caller holds and
/// hands over for the life of the server.
pub fn run(dir: &Path, config: Config, _lock: std::fs::File) -> Result<(), ServerError> {
    sys::probe_io_uring().map_err(ServerError::Startup)?;
    sys::tune_allocator();
    sys::raise_nofile();
    prepare_dir(dir, &config)?;
    let cpus = sys::allowed_cpus();
    let workers = if config.workers == 0 {
        cpus.len().max(1)
    } else {
        config.workers
    };
    sys::check_memlock(workers, config.io_memory).map_err(ServerError::Startup)?;
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
    sys::probe_listen(addr).map_err(ServerError::Startup)?;
    if let Some(s3) = config.s3_listen_addr() {
        sys::probe_listen(s3.map_err(ServerError::Startup)?).map_err(ServerError::Startup)?;
    }
    crate::client::tls::init(dir, config.tls_verify_peers);
    let mut shared = Shared::new(dir, config.clone(), meta, workers);
    // enable_https: this thread owns the public addresses; the executors listen inside.
    let tls_fronts = if config.enable_https {
        let (inner, fronts) = tls_setup(dir, &config, addr)?;
        shared.tls = Some(inner);
        fronts
    } else {
        Vec::new()
    };
    let shared = Arc::new(shared);
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
    // The process may run on cores no executor is pinned to (read here: an executor's
    // thread sees only its own core).
    let spare_cores = cpus.len() > workers;
    let handles = LocalExecutorPoolBuilder::new(placement)
        .name("fastdfs")
        .io_memory(config.io_memory as usize)
        .ring_depth(256)
        .preempt_timer(Duration::from_millis(5))
        .blocking_thread_pool_placement(PoolPlacement::Unbound(BLOCKING_THREADS))
        .on_all_shards(move || {
            let s = s.clone();
            let id = next_id.fetch_add(1, Ordering::SeqCst);
            async move { worker_main(s, id, workers, spare_cores).await }
        })
        .map_err(|e| ServerError::Startup(format!("cannot start executors: {e}")))?;
    watch_start(shared.clone(), workers, config.io_memory);
    if !tls_fronts.is_empty() {
        start_tls_front(&shared, tls_fronts)?;
    }
    joined(handles, &shared)
}

/// With `enable_https`: the certificate pair, the public listeners (`addr`, and `s3_addr`
/// when on) with the internal address each relays to, and the executors' side of them.
fn tls_setup(
    dir: &Path,
    config: &Config,
    addr: std::net::SocketAddr,
) -> Result<(crate::worker::TlsInner, TlsFronts), ServerError> {
    let cert = crate::tls::Certificate::load(dir).map_err(ServerError::Startup)?;
    let bind = |a: std::net::SocketAddr, key: &str| {
        std::net::TcpListener::bind(a)
            .map_err(|e| ServerError::Startup(format!("cannot listen on {a}{key}: {e}")))
    };
    let mut reserved = Vec::new();
    let mut inner = || {
        let (socket, at) = crate::tls::reserve_inner()
            .map_err(|e| ServerError::Startup(format!("tls: no internal address: {e}")))?;
        reserved.push(socket);
        Ok::<_, ServerError>(at)
    };
    // A plain HTTP request gets a 400 in the listener's own form of error.
    let message = "this port serves HTTPS only: use https://";
    let json = crate::json::pretty(&crate::json::envelope::<()>("fail", message, None));
    let main = inner()?;
    let mut fronts = vec![(
        bind(addr, "")?,
        crate::tls::Door {
            inner: main,
            plain_http: crate::tls::plain_http_answer("application/json; charset=utf-8", &json),
        },
    )];
    let s3_addr = match config.s3_listen_addr() {
        None => None,
        Some(a) => {
            let a = a.map_err(ServerError::Startup)?;
            let at = inner()?;
            let xml = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>BadRequest</Code>\
                 <Message>{message}</Message><Resource></Resource><RequestId></RequestId></Error>"
            );
            let plain_http = crate::tls::plain_http_answer("application/xml", &xml);
            fronts.push((
                bind(a, " (s3_addr)")?,
                crate::tls::Door {
                    inner: at,
                    plain_http,
                },
            ));
            Some(at)
        }
    };
    tracing::info!(sha256 = %cert.serving().fingerprint(), "tls: certificate loaded");
    let side = crate::worker::TlsInner {
        addr: main,
        s3_addr,
        clients: Arc::default(),
        cert: Arc::new(cert),
        _reserved: reserved,
    };
    Ok((side, fronts))
}

/// The TLS front's public listeners, each with the internal address it relays to.
type TlsFronts = Vec<(std::net::TcpListener, crate::tls::Door)>;

/// Starts the TLS front's accept threads (`tls`), one per public listener, once every
/// executor listens inside; and the thread that reads the certificate again when its files
/// change (`tls::watch`).
fn start_tls_front(shared: &Arc<Shared>, fronts: TlsFronts) -> Result<(), ServerError> {
    let tls = shared
        .tls
        .as_ref()
        .expect("enable_https sets up the TLS side");
    let (s1, s2) = (shared.clone(), shared.clone());
    // The executors' rule and caps (read per connection: a reload moves them).
    let terms = move |ip| {
        let cfg = s1.config();
        (
            crate::admission::Client::of(&cfg.access, ip),
            s1.connection_caps(&cfg),
        )
    };
    let front = Arc::new(crate::tls::Front::new(
        tls.cert.clone(),
        tls.clients.clone(),
        Box::new(terms),
        Box::new(move || s2.shutting_down()),
    ));
    let start = |name: &str, run: Box<dyn FnOnce() + Send>| {
        std::thread::Builder::new()
            .name(name.into())
            .spawn(run)
            .map(drop)
            .map_err(|e| ServerError::Startup(format!("cannot start the TLS front: {e}")))
    };
    for (listener, door) in fronts {
        tracing::info!(addr = ?listener.local_addr().ok(), "serving TLS (enable_https)");
        let (s, front) = (shared.clone(), front.clone());
        start(
            "fastdfs-tls-accept",
            Box::new(move || {
                // Connections wait in the listen backlog until the executors listen inside.
                while s.listeners_bound() < s.workers && !s.shutting_down() {
                    std::thread::sleep(Duration::from_millis(10));
                }
                crate::tls::accept_loop(listener, door, front)
            }),
        )?;
    }
    let s = shared.clone();
    start(
        "fastdfs-tls-watch",
        Box::new(move || {
            let cert = s.tls.as_ref().expect("TLS side").cert.clone();
            crate::tls::watch(
                &cert,
                || s.shutting_down(),
                || {
                    let _ = s.reload_certificate("files changed"); // logged there
                },
            )
        }),
    )
}

/// How long every executor has to bind its listener after the pool is made.
const EXECUTOR_START_DEADLINE: Duration = Duration::from_secs(20);

/// Stops a server whose executors did not all start (one that could not make its rings, for
/// want of locked memory, never runs): half of them would leave the shards of the others
/// without a committer, and uploads to those would hang. The error names the likely cause.
fn watch_start(shared: Arc<Shared>, workers: usize, io_memory: u64) {
    let spawned = std::thread::Builder::new()
        .name("start-watch".into())
        .spawn(move || {
            let deadline = std::time::Instant::now() + EXECUTOR_START_DEADLINE;
            while std::time::Instant::now() < deadline {
                if shared.listeners_bound() >= workers || shared.shutting_down() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let limit = sys::memlock_limit()
                .map_or_else(|| "unlimited".to_string(), |b| format!("{} KiB", b / 1024));
            tracing::error!(
                started = shared.listeners_bound(),
                workers,
                "only {} of {workers} executors started within {} s: stopping. The usual \
                 cause is locked memory (limit {limit}; each executor pins 3 io_uring rings \
                 and io_memory={io_memory} bytes): raise LimitMEMLOCK / ulimit -l, or lower \
                 workers or io_memory in cfg.json",
                shared.listeners_bound(),
                EXECUTOR_START_DEADLINE.as_secs()
            );
            shared.fail();
        });
    if let Err(e) = spawned {
        tracing::warn!("cannot watch the executors' start: {e}");
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
                    // logrotate renamed the log: write to a fresh file at its path.
                    if let Err(e) = crate::logfile::reopen() {
                        tracing::error!("SIGHUP: log file not reopened: {e}");
                    }
                    match shared.reload_config() {
                        Ok(warnings) => {
                            for w in warnings {
                                tracing::warn!("{w}");
                            }
                            tracing::info!("SIGHUP: configuration reloaded, log file reopened");
                        }
                        Err(e) => tracing::error!("SIGHUP: configuration not reloaded: {e}"),
                    }
                    // The certificate too (a refusal is logged there).
                    let _ = shared.reload_certificate("SIGHUP");
                    continue;
                }
                if !shared.begin_shutdown() {
                    tracing::warn!("second signal: exiting at once");
                    std::process::exit(1);
                }
                sys::notify_systemd("STOPPING=1");
                tracing::info!(
                    signal = sig,
                    "shutting down: no new connections, draining in-flight requests"
                );
            }
        })?;
    Ok(())
}

/// One executor: its listener, its duties (metadata committer of its shards, replication,
/// executor 0's singletons), the accept loop, then the drain.
async fn worker_main(
    shared: Arc<Shared>,
    id: usize,
    workers: usize,
    spare_cores: bool,
) -> Result<(), String> {
    assert!(id < workers, "executor index in range");
    // A core no executor runs on takes a lone upload's md5 (store::hashing); without one,
    // an idle executor's core does, while there is one (`idle_cores`).
    crate::store::hashing::offload_lone_writers(spare_cores);
    let cfg = shared.config();
    let addr = match &shared.tls {
        Some(tls) => tls.addr,
        None => cfg.listen_addr()?,
    };
    let listener = match glommio::net::TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            // Stop the other executors too: a half-started server must not linger.
            shared.begin_shutdown();
            return Err(format!("cannot listen on {addr}: {e}"));
        }
    };
    tracing::info!(worker = id, addr = %addr, "accepting connections");
    // With enable_https, the TLS front owns s3_addr and relays to an internal address.
    let s3_addr = match (&shared.tls, cfg.s3_listen_addr()) {
        (_, None) => None,
        (Some(tls), Some(_)) => tls.s3_addr.map(Ok),
        (None, Some(a)) => Some(a),
    };
    let s3_listener = match s3_addr {
        None => None,
        Some(a) => {
            let a = a?;
            match glommio::net::TcpListener::bind(a) {
                Ok(l) => {
                    tracing::info!(worker = id, addr = %a, "accepting S3 connections");
                    Some(l)
                }
                Err(e) => {
                    shared.begin_shutdown();
                    return Err(format!("cannot listen on {a} (s3_addr): {e}"));
                }
            }
        }
    };
    if shared.listener_bound() {
        sys::notify_systemd("READY=1");
    }
    let worker = Rc::new(Worker::new(shared.clone(), id));
    start_duties(&worker);
    if !spare_cores && workers > 1 {
        shared.spawn_duty("idle cores", idle_cores(shared.clone(), id));
    }
    let flusher = glommio::spawn_local(flush_access_log(worker.clone()));
    let sockets = Rc::new(LiveSockets::default());
    let relayed = shared.tls.as_ref().map(|t| t.clients.clone());
    let s3_accepts = s3_listener.map(|l| {
        let front = Rc::new(crate::s3::Front::new(worker.clone()));
        let (w, sockets, relayed) = (worker.clone(), sockets.clone(), relayed.clone());
        glommio::spawn_local(async move { accept_loop(&w, l, front, &sockets, relayed).await })
    });
    accept_loop(&worker, listener, worker.clone(), &sockets, relayed).await;
    if let Some(task) = s3_accepts {
        task.await;
    }
    drain(&worker, &sockets, Duration::from_secs(cfg.shutdown_grace)).await;
    flusher.cancel().await;
    flush_access_once(&worker).await;
    Ok(())
}

/// Waits up to `grace` for every connection to end; then cuts the request bodies still
/// arriving on this executor and waits up to [`CUT_SETTLE`] more. Every executor waits for
/// the connections of all, since an upload on any executor may need a shard committer that
/// lives here. Bounded whatever the clients do: a slow client never holds the exit.
async fn drain(worker: &Worker, sockets: &LiveSockets, grace: Duration) {
    let shared = &worker.shared;
    // Connections waiting between requests sleep until their idle deadline: wake them to close.
    crate::http::conn::close_idle_connections();
    let until = |deadline: std::time::Instant| async move {
        while shared.connections() > 0 && std::time::Instant::now() < deadline {
            glommio::timer::sleep(Duration::from_millis(20)).await;
        }
    };
    until(std::time::Instant::now() + grace).await;
    if shared.connections() == 0 {
        return;
    }
    let cut = sockets.cut_bodies();
    if cut > 0 {
        tracing::warn!(
            worker = worker.id,
            connections = cut,
            "shutdown_grace is over: request bodies still arriving are cut (tus uploads keep \
             what arrived; other uploads are refused with 503 and must be sent again)"
        );
    }
    until(std::time::Instant::now() + CUT_SETTLE).await;
}

/// Every [`BUSY_SAMPLE`], how busy this executor's thread was; its lone writers hash beside it
/// while another executor's core is mostly idle (under half busy): the blocking pool's thread
/// then runs there. Where every executor is busy, each hashes its own (the pool would take an
/// executor's time).
async fn idle_cores(shared: Arc<Shared>, id: usize) {
    const BUSY_SAMPLE: Duration = Duration::from_millis(100);
    const IDLE_PERMILLE: u32 = 500;
    let mut last = (std::time::Instant::now(), sys::thread_cpu_time());
    while !shared.shutting_down() {
        glommio::timer::sleep(BUSY_SAMPLE).await;
        let now = (std::time::Instant::now(), sys::thread_cpu_time());
        let wall = now.0.duration_since(last.0).as_micros().max(1);
        let busy = (now.1.saturating_sub(last.1).as_micros() * 1000 / wall).min(1000) as u32;
        last = now;
        shared.busy[id].store(busy, Ordering::Relaxed);
        let idle_other = shared
            .busy
            .iter()
            .enumerate()
            .any(|(i, b)| i != id && b.load(Ordering::Relaxed) < IDLE_PERMILLE);
        crate::store::hashing::offload_lone_writers(idle_other);
    }
}

/// The background tasks of an executor: the committer of the metadata shards it owns, its
/// replication tasks, compaction, the release of its spare write buffers, and on executor 0
/// the singletons (memory trim after bursts, migration and
/// fsnotify, alarms, tus expiry).
fn start_duties(worker: &Rc<Worker>) {
    let shared = &worker.shared;
    if let Some(rx) = shared.meta.take_owned(worker.id) {
        let w = worker.clone();
        let committed = move || w.sync.wake.notify();
        shared.spawn_duty(
            "committer",
            shared.meta.clone().run_committer(worker.id, rx, committed),
        );
    }
    crate::sync::start(worker.clone());
    shared.spawn_duty("compaction", crate::compact::duty(worker.clone()));
    shared.spawn_duty("spare buffers", spare_buffers(shared.clone()));
    if worker.id == 0 {
        shared.spawn_duty("memory trim", trim_after_bursts(shared.clone()));
        shared.spawn_duty("migration", crate::migrate::duty(worker.clone()));
        shared.spawn_duty("alarms", crate::alarm::duty(worker.clone()));
        if shared.config().enable_fsnotify {
            shared.spawn_duty("fsnotify", crate::migrate::watch(worker.clone()));
        }
        if shared.config().enable_tus {
            shared.spawn_duty("tus expiry", crate::tus::expire_loop(worker.clone()));
        }
        if shared.config().s3_listen_addr().is_some() {
            shared.spawn_duty(
                "s3 upload expiry",
                crate::s3::multipart::expire_loop(worker.clone()),
            );
        }
    }
}

/// Accepts until shutdown. After the shutdown signal, connections the kernel already queued
/// on the listener are still accepted and served (their clients have sent requests); then the
/// listener closes. The drain relies on glommio trying a non-blocking accept before waiting.
/// A pending accept is cancelled only at shutdown: an io_uring accept cancelled after the
/// kernel completed it would leave that connection open and unserved (glommio drops the
/// result), so the accept is never raced against a periodic timer.
/// `relayed`: the listener is the TLS front's internal one; a connection's client is the one
/// its relay registered, and a connection no relay made is closed.
async fn accept_loop<H: crate::http::conn::Handler + 'static>(
    worker: &Rc<Worker>,
    listener: glommio::net::TcpListener,
    handler: Rc<H>,
    sockets: &Rc<LiveSockets>,
    relayed: Option<Arc<crate::tls::Clients>>,
) {
    let shared = &worker.shared;
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
        let peer = match (stream.peer_addr(), &relayed) {
            (Err(_), _) => continue,
            (Ok(p), None) => p,
            (Ok(p), Some(clients)) => match clients.take(p) {
                Some(client) => client,
                None => {
                    tracing::warn!(peer = %p, "a connection to the TLS front's internal address that no relay made: closed");
                    continue;
                }
            },
        };
        let Some(ticket) = admit(worker, peer.ip()) else {
            continue;
        };
        let counted = worker.connection_opened();
        let live = sockets.add(std::os::fd::AsRawFd::as_raw_fd(&stream));
        let w = handler.clone();
        glommio::spawn_local(async move {
            use futures_lite::FutureExt;
            // Safety net: a bug that panics in one request closes that connection only;
            // the executor and its other connections keep running.
            let served = std::panic::AssertUnwindSafe(crate::http::conn::serve(stream, w, peer))
                .catch_unwind()
                .await;
            if served.is_err() {
                tracing::error!("a connection task panicked; its connection was closed");
            }
            drop(live);
            drop(counted);
            drop(ticket);
        })
        .detach();
    }
}

/// Admits an accepted connection under the caps (per executor, per client address, in
/// total), or closes it.
fn admit(worker: &Rc<Worker>, ip: std::net::IpAddr) -> Option<crate::admission::Ticket> {
    let cfg = worker.config();
    let client = crate::admission::Client::of(&cfg.access, ip);
    let admitted = if worker.connections() >= cfg.connections_per_worker_max && !client.privileged {
        Err(crate::admission::Refusal::Total)
    } else {
        let caps = worker.shared.connection_caps(&cfg);
        worker.shared.admission.admit(client, caps)
    };
    match admitted {
        Ok(ticket) => Some(ticket),
        Err(why) => {
            worker.metrics().connection_refused(why);
            None
        }
    }
}

/// Every second, whether the trim after a burst (`trim_after_bursts`, on executor 0) has asked
/// the executors to drop their spare write buffers: this executor unmaps its own
/// (`store::dma`; a buffer is not `Send`, so each executor drops its pool itself).
async fn spare_buffers(shared: Arc<Shared>) {
    const LOOK_EVERY: Duration = Duration::from_secs(1);
    while !shared.shutting_down() {
        glommio::timer::sleep(LOOK_EVERY).await;
        crate::store::dma::release_if_asked();
    }
}

/// Gives memory back to the system once a busy spell ends (see [`Trim`]): a burst's buffers
/// would otherwise stay in the allocator's arenas, one per thread that freed them.
async fn trim_after_bursts(shared: Arc<Shared>) {
    let mut trim = Trim::default();
    let mut last_cpu = sys::process_cpu_time();
    loop {
        glommio::timer::sleep(Trim::EVERY).await;
        let cpu = sys::process_cpu_time();
        let spent = cpu.saturating_sub(last_cpu);
        last_cpu = cpu;
        let peak = shared.admission.take_peak();
        if trim.after(spent, peak, shared.connections()) {
            // Every executor's spare write buffers too, at its next look (`spare_buffers`).
            crate::store::dma::release_all();
            glommio::executor()
                .spawn_blocking(|| {
                    // SAFETY: malloc_trim only returns free memory of the allocator's arenas.
                    unsafe { libc::malloc_trim(0) };
                })
                .await;
        }
    }
}

/// When to give the allocator's free memory back: after a burst of connections has mostly
/// gone (a flood), or when the process goes quiet after a spell of work (an upload burst
/// leaves its buffers in the arenas of the blocking threads that freed them: about 100 MiB
/// after 16 clients' 1 MiB uploads, measured). A trim walks every arena, so it waits for the
/// quiet, and runs once per spell.
#[derive(Debug, Default)]
struct Trim {
    /// CPU the process spent since the last trim.
    worked: Duration,
}

impl Trim {
    /// How often the process is looked at.
    const EVERY: Duration = Duration::from_secs(2);
    /// Connections above which a burst counts.
    const BURST_CONNECTIONS_MIN: usize = 512;
    /// CPU since the last trim that makes a spell worth trimming after.
    const SPELL_CPU_MIN: Duration = Duration::from_secs(1);
    /// CPU per look below which the process is quiet (1 % of a core).
    const QUIET_CPU_MAX: Duration = Duration::from_millis(20);

    /// Whether to trim now, given the CPU `spent` since the last look, the peak of
    /// connections since then and the connections open now.
    fn after(&mut self, spent: Duration, peak: usize, connections: usize) -> bool {
        self.worked += spent;
        let flood_gone = peak >= Self::BURST_CONNECTIONS_MIN && connections < peak / 2;
        let quiet_after_work = spent <= Self::QUIET_CPU_MAX && self.worked >= Self::SPELL_CPU_MIN;
        if flood_gone || quiet_after_work {
            self.worked = Duration::ZERO;
            return true;
        }
        false
    }
}

/// Writes the access log every [`ACCESS_FLUSH_EVERY`], or as soon as
/// `worker::ACCESS_FLUSH_BYTES` wait; both logs capped at `log_bytes_max`.
async fn flush_access_log(worker: Rc<Worker>) {
    loop {
        // The server log's cap too, as configured now (a reload may change it).
        crate::logfile::set_cap(worker.config().log_bytes_max);
        let seen = worker.access_full.generation();
        if worker.access_pending() < crate::worker::ACCESS_FLUSH_BYTES {
            worker.access_full.wait(seen, ACCESS_FLUSH_EVERY).await;
        }
        flush_access_once(&worker).await;
    }
}

async fn flush_access_once(worker: &Worker) {
    let buf = worker.take_access_log();
    if buf.is_empty() {
        return;
    }
    let path = worker.dir().join("log").join("access.log");
    let max = worker.config().log_bytes_max;
    glommio::executor()
        .spawn_blocking(move || {
            let _ = crate::logfile::append_rolled(&path, &buf, max);
        })
        .await;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn memory_is_trimmed_once_when_a_spell_of_work_goes_quiet() {
        let ms = Duration::from_millis;
        let mut t = super::Trim::default();
        // Idle from the start: nothing to give back.
        assert!(!t.after(ms(1), 0, 0));
        // Uploads: busy looks never trim, however much work piles up.
        for _ in 0..10 {
            assert!(!t.after(ms(1900), 32, 32));
        }
        // The first quiet look after the spell trims, and the next quiet ones do not.
        assert!(t.after(ms(5), 0, 0));
        assert!(!t.after(ms(5), 0, 0));
        assert!(!t.after(ms(5), 0, 0));
        // A short spell (under a second of CPU) is not worth a walk of the arenas.
        assert!(!t.after(ms(400), 4, 4));
        assert!(!t.after(ms(5), 0, 0));
    }

    #[test]
    fn memory_is_trimmed_when_a_flood_of_connections_has_mostly_gone() {
        let ms = Duration::from_millis;
        let mut t = super::Trim::default();
        // Still open: no trim, even though the process is quiet (idle connections).
        assert!(!t.after(ms(5), 600, 600));
        // Most of the flood has gone, the process still busy: trim.
        assert!(t.after(ms(900), 600, 200));
        // A peak under the burst size is no flood.
        assert!(!t.after(ms(900), 300, 10));
    }

    /// The executor's scheduler (vendored glommio) runs a runnable task even when a
    /// preemption is due before its first look at the task queues. With a preemption timer
    /// of a microsecond that is nearly every turn; before the fix the executor then parked
    /// with its tasks queued and slept for good on its first turn.
    #[test]
    fn an_executor_runs_its_tasks_however_early_a_preemption_is_due() {
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::default()
                .io_memory(256 << 10)
                .preempt_timer(Duration::from_micros(1))
                .make()
                .expect("executor");
            let sum = ex.run(async {
                let mut sum = 0u64;
                for i in 0..200u64 {
                    sum += glommio::spawn_local(async move { i }).await;
                }
                sum
            });
            let _ = tx.send(sum);
        });
        let sum = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("the executor slept with its tasks runnable");
        assert_eq!(sum, (0..200).sum::<u64>());
    }

    /// An executor with nothing left to run parks, and only a remote producer's `notify`
    /// wakes it: the patched park fences where glommio issued `sys_membarrier`
    /// (`vendor/glommio/PATCHES.md`). Many short blocking jobs and wakes from another thread,
    /// each awaited alone so that the executor parks while it completes, must all wake it; a
    /// lost wake-up sleeps for good (the 60 s bound).
    #[test]
    fn a_parked_executor_wakes_for_every_blocking_job_and_every_foreign_wake() {
        use std::sync::{Arc, Mutex};
        use std::task::{Poll, Waker};
        const ROUNDS: u64 = 5_000;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let ex = glommio::LocalExecutorBuilder::default()
                .io_memory(256 << 10)
                .make()
                .expect("executor");
            let done = ex.run(async {
                let (mut jobs, mut wakes) = (0u64, 0u64);
                for i in 0..ROUNDS {
                    jobs += glommio::executor().spawn_blocking(move || i % 2).await;
                    // A wake from a plain thread, a few microseconds later.
                    type Slot = (bool, Option<Waker>);
                    let slot: Arc<Mutex<Slot>> = Arc::new(Mutex::new((false, None)));
                    let theirs = slot.clone();
                    let waker = std::thread::spawn(move || {
                        std::thread::yield_now();
                        let mut s = theirs.lock().unwrap();
                        s.0 = true;
                        if let Some(w) = s.1.take() {
                            w.wake();
                        }
                    });
                    std::future::poll_fn(|cx| {
                        let mut s = slot.lock().unwrap();
                        if s.0 {
                            return Poll::Ready(());
                        }
                        s.1 = Some(cx.waker().clone());
                        Poll::Pending
                    })
                    .await;
                    waker.join().unwrap();
                    wakes += 1;
                }
                (jobs, wakes)
            });
            let _ = tx.send(done);
        });
        let (jobs, wakes) = rx
            .recv_timeout(Duration::from_secs(60))
            .expect("a parked executor missed a wake-up and slept");
        assert_eq!((jobs, wakes), (ROUNDS / 2, ROUNDS));
    }
}
