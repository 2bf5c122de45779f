//! Per-executor state (`Worker`) and the state shared by all executors (`Shared`): the one
//! place every layer above the HTTP layer reads configuration, metadata, caches, metrics and
//! replication state from. It depends only on modules below it (config, store, metrics,
//! admission, client, http types); the runtime (`server`) builds it, handlers receive it.

use crate::config::Config;
use crate::guesses::Refusal;
use crate::store::cache::FileCache;
use crate::store::meta::Meta;
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};
use std::task::Waker;
use std::time::{Duration, Instant};

/// Access-log bytes kept in memory between flushes (excess lines are dropped, not blocking).
const ACCESS_BUFFER_BYTES_MAX: usize = 4 << 20;
/// Access-log bytes that wake the flusher before its timer: the kernel's copy of a flush runs
/// on the blocking pool, which shares the executor's core when the server is pinned to one,
/// and small flushes keep that from stalling requests (8 MB every 500 ms at 80,000 GETs/s
/// had doubled the GET p99).
pub const ACCESS_FLUSH_BYTES: usize = 64 * 1024;

/// Progress of migration and parallel run (`migrate.rs`), for `/metrics` and the log.
#[derive(Debug, Default)]
pub struct Migration {
    pub running: AtomicBool,
    pub passes: AtomicU64,
    /// Files looked at by migration passes (indexed or not).
    pub seen: AtomicU64,
    /// Files indexed (migration and fsnotify).
    pub indexed: AtomicU64,
    pub indexed_bytes: AtomicU64,
    /// Bumped by `G/repair_fileinfo`; the migration duty runs a pass when it moves.
    requests: AtomicU64,
}

impl Migration {
    /// Asks the migration duty for a pass.
    pub fn request(&self) {
        self.requests.fetch_add(1, Ordering::SeqCst);
    }

    /// How many passes were asked for so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::SeqCst)
    }
}

/// State shared by all executors.
pub struct Shared {
    pub dir: PathBuf,
    config: RwLock<Arc<Config>>,
    /// Bumped by every reload: executors refresh their own copy of the config when it moves.
    config_generation: AtomicU64,
    pub meta: Arc<Meta>,
    shutdown: AtomicBool,
    /// A background duty panicked: the server stops and exits non-zero.
    failed: AtomicBool,
    /// Open connections over all executors, per client and in total (drained before exit).
    pub admission: Arc<crate::admission::Admission>,
    /// Wrong guesses of `admin_key`, and of Google codes, per client and in all (all
    /// executors; one secret's guesses do not lock the other out).
    pub admin_key_guesses: crate::guesses::Guesses,
    pub code_guesses: crate::guesses::Guesses,
    /// The soft open-files limit at start (the connection caps stay under it).
    nofile: u64,
    pub started: std::time::Instant,
    pub workers: usize,
    /// CPUs the process may run on, read when the server starts (before any executor pins
    /// its thread to one).
    pub cpus: usize,
    /// One block per executor (each writes only its own).
    pub metrics: Vec<crate::metrics::Metrics>,
    /// How busy each executor's thread was over its last sample, in permille of a core (each
    /// writes only its own; `server` samples them where idle cores take lone md5s).
    pub busy: Vec<std::sync::atomic::AtomicU32>,
    /// Executors whose listener is bound; the last one tells systemd READY=1.
    bound: AtomicUsize,
    /// Reachability of peers, as the replication tasks saw it last.
    pub peer_health: PeerHealth,
    /// Bumped by `G/compact`; each executor's compaction duty runs a pass when it moves.
    compact_requests: AtomicU64,
    /// Small-file containers as the last compaction pass of their executor measured them:
    /// number -> (length, live bytes).
    containers: std::sync::Mutex<std::collections::BTreeMap<u64, (u64, u64)>>,
    /// Migration and parallel-run progress.
    pub migration: Migration,
    /// Bytes in the resized-image cache (`files/_cache/`), kept under `resize_cache_bytes`.
    pub variants: crate::store::variants::Variants,
    /// This process's random id, answered by `G/status` (`X-Fastdfs-Node`): a peer URL that
    /// answers it is this node under another name (docs/CONFIG.md §4).
    pub node_id: String,
    /// Entries of `peers` found to be this node itself: left out of the running
    /// configuration, at every reload too.
    self_aliases: std::sync::Mutex<Vec<String>>,
    /// tus `callback_url` notices waiting to be sent, and their sender threads.
    pub callbacks: crate::tus::callback::Callbacks,
    /// With `enable_https`: where the executors listen for the TLS front's relays, and the
    /// clients of those connections (`tls`).
    pub tls: Option<TlsInner>,
}

/// The executors' side of the TLS front (`tls`).
pub struct TlsInner {
    /// The internal loopback address the executors listen on instead of `addr`.
    pub addr: std::net::SocketAddr,
    /// The one they listen on instead of `s3_addr`, when the S3 listener is on.
    pub s3_addr: Option<std::net::SocketAddr>,
    pub clients: Arc<crate::tls::Clients>,
    /// The certificate pair both listeners serve.
    pub cert: Arc<crate::tls::Certificate>,
    /// Hold the internal ports for the process's life.
    pub _reserved: Vec<socket2::Socket>,
}

impl Shared {
    pub fn new(dir: &Path, config: Config, meta: Arc<Meta>, workers: usize) -> Shared {
        Shared {
            cpus: crate::sys::allowed_cpus().len().max(1),
            dir: dir.to_path_buf(),
            config: RwLock::new(Arc::new(config)),
            config_generation: AtomicU64::new(0),
            meta,
            shutdown: AtomicBool::new(false),
            failed: AtomicBool::new(false),
            admission: Default::default(),
            admin_key_guesses: crate::guesses::Guesses::new(crate::guesses::Secret::AdminKey),
            code_guesses: crate::guesses::Guesses::new(crate::guesses::Secret::GoogleCode),
            nofile: crate::sys::nofile_limit(),
            started: Instant::now(),
            workers,
            busy: (0..workers)
                .map(|_| std::sync::atomic::AtomicU32::new(1000))
                .collect(),
            metrics: (0..workers)
                .map(|_| crate::metrics::Metrics::default())
                .collect(),
            bound: AtomicUsize::new(0),
            peer_health: Default::default(),
            compact_requests: AtomicU64::new(0),
            containers: Default::default(),
            migration: Default::default(),
            variants: Default::default(),
            node_id: crate::codec::random_hex(8),
            self_aliases: Default::default(),
            callbacks: Default::default(),
            tls: None,
        }
    }

    /// Starts the shutdown; false when it had started already.
    pub fn begin_shutdown(&self) -> bool {
        !self.shutdown.swap(true, Ordering::SeqCst)
    }

    /// Asks every executor for a compaction pass of its small-file containers.
    pub fn request_compaction(&self) {
        self.compact_requests.fetch_add(1, Ordering::SeqCst);
    }

    /// Records what a compaction pass measured of a container (None: it is gone).
    pub fn set_container_gauge(&self, n: u64, measured: Option<(u64, u64)>) {
        let mut m = self.containers.lock().expect("containers lock");
        match measured {
            Some(v) => m.insert(n, v),
            None => m.remove(&n),
        };
    }

    /// (number, length, live bytes) of every container last measured.
    pub fn container_gauges(&self) -> Vec<(u64, u64, u64)> {
        let m = self.containers.lock().expect("containers lock");
        m.iter().map(|(n, (len, live))| (*n, *len, *live)).collect()
    }

    /// How many compaction passes were asked for so far.
    pub fn compact_requests(&self) -> u64 {
        self.compact_requests.load(Ordering::SeqCst)
    }

    /// Whether a background duty panicked (the process then exits non-zero).
    pub fn failed(&self) -> bool {
        self.failed.load(Ordering::SeqCst)
    }

    /// Runs a long-lived background duty of this executor (committer, replication loops,
    /// sweeps). A panic in it stops the whole server, which exits non-zero for systemd to
    /// restart, rather than leaving an executor without its committer or replication.
    pub fn spawn_duty(
        self: &Arc<Self>,
        name: &'static str,
        duty: impl std::future::Future<Output = ()> + 'static,
    ) {
        let shared = self.clone();
        glommio::spawn_local(async move {
            use futures_lite::FutureExt;
            if std::panic::AssertUnwindSafe(duty)
                .catch_unwind()
                .await
                .is_err()
            {
                tracing::error!(
                    duty = name,
                    "a background task panicked: stopping the server"
                );
                shared.failed.store(true, Ordering::SeqCst);
                shared.begin_shutdown();
            }
        })
        .detach();
    }

    /// An executor's listener is bound; true for the last of them.
    pub fn listener_bound(&self) -> bool {
        self.bound.fetch_add(1, Ordering::SeqCst) + 1 == self.workers
    }

    /// How many executors have bound their listener (all of them once started).
    pub fn listeners_bound(&self) -> usize {
        self.bound.load(Ordering::SeqCst)
    }

    /// Stops the server, which then exits non-zero: it cannot serve as configured.
    pub fn fail(&self) {
        self.failed.store(true, Ordering::SeqCst);
        self.begin_shutdown();
    }

    /// The Google Authenticator code of a request for a scene with a secret: refused when wrong,
    /// or without a look when too many wrong ones came lately (`guesses`).
    pub fn google_code(&self, client: IpAddr, scene: &str, code: &str) -> Result<(), Refusal> {
        let cfg = self.config();
        if !cfg.enable_google_auth || cfg.scene_secret(scene).is_none() {
            return Ok(());
        }
        judged(&self.code_guesses, client, &cfg, || {
            cfg.google_code_ok(scene, code)
        })
    }

    /// An `admin_key` sent by `client` (non-empty): refused when wrong or when there is none,
    /// or without a look when too many wrong ones came lately (`guesses`).
    pub fn admin_key(&self, client: IpAddr, sent: &str) -> Result<(), Refusal> {
        let cfg = self.config();
        judged(&self.admin_key_guesses, client, &cfg, || {
            !cfg.admin_key.is_empty()
                && crate::codec::same_secret(cfg.admin_key.as_bytes(), sent.as_bytes())
        })
    }

    /// The connection caps in force now (the configuration's, under the open-files limit).
    pub fn connection_caps(&self, cfg: &Config) -> crate::admission::Caps {
        crate::admission::Caps::new(
            cfg.connections_per_client_max,
            cfg.connections_max,
            self.nofile,
        )
    }

    pub fn config(&self) -> Arc<Config> {
        self.config.read().expect("config lock").clone()
    }

    pub fn shutting_down(&self) -> bool {
        self.shutdown.load(Ordering::Relaxed)
    }

    /// Re-reads cfg.json and swaps the live config; the restart keys (`config::restart_keys`)
    /// keep their running values.
    pub fn reload_config(&self) -> Result<Vec<String>, crate::config::ConfigError> {
        let loaded = crate::config::load_or_create(&self.dir)?;
        let mut next = loaded.config;
        let aliases = self.self_aliases.lock().expect("self aliases lock").clone();
        next.peers.retain(|p| !aliases.contains(p));
        let mut guard = self.config.write().expect("config lock");
        let old = guard.clone();
        crate::config::keep_restart_keys(&mut next, &old);
        *guard = Arc::new(next);
        self.config_generation.fetch_add(1, Ordering::Release);
        Ok(loaded.warnings)
    }

    /// Reads the node's certificate again (`conf/server.crt`, `conf/server.key`): at every
    /// reload, and when the files change (`tls::watch`). With `enable_https`, a sound new
    /// pair serves the next handshakes and the outgoing client believes it as the node's own;
    /// a refused pair is logged as an error, the old one keeps serving, and the error is
    /// returned (for the reload's answer). Without it, the outgoing client reads
    /// `conf/server.crt` again. `by` names the trigger in the log.
    pub fn reload_certificate(&self, by: &str) -> Result<(), String> {
        let Some(tls) = &self.tls else {
            crate::client::tls::reload();
            return Ok(());
        };
        let put_in_service = |pair: &crate::tls::Pair| {
            crate::client::tls::trust_own(&pair.chain);
            tracing::info!(
                sha256 = %pair.fingerprint(),
                by,
                "tls: new certificate loaded; new connections use it"
            );
        };
        match tls.cert.reload(put_in_service) {
            Ok(_) => Ok(()),
            Err(e) => {
                let e = format!("new certificate refused, the previous one keeps serving: {e}");
                tracing::error!(by, "tls: {e}");
                Err(e)
            }
        }
    }

    /// `peer` answered with this node's id: it is this node under another name (a second
    /// address, `localhost` for `127.0.0.1`). It leaves the running peers, now and after
    /// every reload: no push task, no repair, no read-through with itself, and its queue is
    /// dropped like a removed peer's. False when it was known already.
    pub fn found_self_as_peer(&self, peer: &str) -> bool {
        let mut aliases = self.self_aliases.lock().expect("self aliases lock");
        if aliases.iter().any(|a| a == peer) {
            return false;
        }
        aliases.push(peer.to_string());
        let mut guard = self.config.write().expect("config lock");
        let mut next = Config::clone(&guard);
        next.peers.retain(|p| p != peer);
        *guard = Arc::new(next);
        self.config_generation.fetch_add(1, Ordering::Release);
        true
    }

    /// Open client connections over all executors.
    pub fn connections(&self) -> usize {
        self.admission.open()
    }

    /// Stored files changed: every executor drops its file caches on its next lookup.
    pub fn invalidate_caches(&self) {
        self.meta.files_changed();
    }

    /// The epoch of stored files (`Meta::files_epoch`) the file caches follow.
    pub fn cache_epoch(&self) -> u64 {
        self.meta.files_epoch()
    }
}

/// The header of `G/status` naming the answering process (`Shared::node_id`).
pub const NODE_ID_HEADER: &str = "X-Fastdfs-Node";

/// Per-executor state handed to every connection of that executor.
pub struct Worker {
    pub shared: Arc<Shared>,
    pub id: usize,
    pub cache: RefCell<FileCache>,
    pub open_files: RefCell<crate::store::cache::FdCache>,
    /// Decoded records by path (S3 GETs).
    pub records: RefCell<crate::store::cache::RecordCache>,
    pub auth_cache: RefCell<AuthCache>,
    /// Bounds concurrent image resizes on this executor.
    pub resize_slots: glommio::sync::Semaphore,
    /// Places for resizes running or waiting for a slot (more are refused with 503).
    pub resize_queue: glommio::sync::Semaphore,
    /// Replication tasks' state on this executor (wake-up, peer connections, retries).
    pub sync: SyncState,
    /// Appends of small files to this executor's haystack containers (group commit).
    pub haystack: crate::store::haystack::Appender,
    /// Memory held by small uploads being received for merging (bounded).
    pub merge_memory: crate::store::haystack::MemoryBudget,
    access: RefCell<Vec<u8>>,
    /// Told when `access` reached `ACCESS_FLUSH_BYTES`.
    pub access_full: Wake,
    connections: Cell<usize>,
    /// This executor's own copy of the live config and the generation it is of: a request
    /// reads it many times, and the shared lock and reference count would be written by every
    /// executor on every read.
    config: RefCell<(u64, std::rc::Rc<Config>)>,
}

impl Worker {
    pub fn new(shared: Arc<Shared>, id: usize) -> Worker {
        assert!(id < shared.workers, "executor index in range");
        let generation = shared.config_generation.load(Ordering::Acquire);
        let config = std::rc::Rc::new((*shared.config()).clone());
        let cache_bytes = config.file_cache_bytes as usize;
        let open_files = crate::store::cache::open_files_cap(shared.nofile, shared.workers);
        Worker {
            shared,
            id,
            cache: RefCell::new(FileCache::new(cache_bytes)),
            open_files: RefCell::new(crate::store::cache::FdCache::with_capacity(open_files)),
            records: RefCell::new(Default::default()),
            auth_cache: RefCell::new(Default::default()),
            resize_slots: glommio::sync::Semaphore::new(crate::image::RESIZES_IN_FLIGHT),
            resize_queue: glommio::sync::Semaphore::new(
                crate::image::RESIZES_IN_FLIGHT + crate::image::RESIZES_WAITING_MAX,
            ),
            sync: Default::default(),
            haystack: Default::default(),
            merge_memory: Default::default(),
            access: RefCell::new(Vec::new()),
            access_full: Wake::default(),
            connections: Cell::new(0),
            config: RefCell::new((generation, config)),
        }
    }

    /// Connections this executor serves now.
    pub fn connections(&self) -> usize {
        self.connections.get()
    }

    /// Counts a connection of this executor while the guard lives.
    pub fn connection_opened(self: &std::rc::Rc<Self>) -> ConnectionGuard {
        self.connections.set(self.connections.get() + 1);
        ConnectionGuard(self.clone())
    }

    /// The access-log lines buffered since the last call. The lines that follow go into a
    /// buffer as large as these took (at most a flush's worth and a line): grown from
    /// nothing, it was reallocated and copied a dozen times per flush under load.
    pub fn take_access_log(&self) -> Vec<u8> {
        let mut buf = self.access.borrow_mut();
        if buf.is_empty() {
            return Vec::new();
        }
        let next = buf.len().min(ACCESS_FLUSH_BYTES) + 1024;
        std::mem::replace(&mut *buf, Vec::with_capacity(next))
    }

    /// Access-log bytes waiting for a flush.
    pub fn access_pending(&self) -> usize {
        self.access.borrow().len()
    }

    /// The client whose rights a request has: the socket's address, or the client a trusted
    /// proxy names (`access::Rules::client_ip`); never an admin for a page of another site
    /// (`access::Rules::requester`).
    pub fn client_of(&self, req: &crate::http::Request<'_>) -> IpAddr {
        self.config()
            .access
            .requester(req.peer.ip(), req.head.headers())
    }

    /// The share of the space for uploads that the client of `req` may hold with its uploads
    /// in flight (`store::space::Share`); none for an admin or a peer (only the total).
    pub fn space_share(
        &self,
        req: &crate::http::Request<'_>,
    ) -> Option<crate::store::space::Share> {
        let client = self.client_of(req);
        let cfg = self.config();
        (!cfg.access.is_admin(client)).then(|| crate::store::space::Share {
            client: crate::access::client_block(client),
            percent: cfg.upload_space_per_client_percent,
        })
    }
    pub fn config(&self) -> std::rc::Rc<Config> {
        let now = self.shared.config_generation.load(Ordering::Acquire);
        let mut mine = self.config.borrow_mut();
        if mine.0 != now {
            // A private copy (not a clone of the shared Arc): its reference count is this
            // executor's alone, counted without atomics.
            *mine = (now, std::rc::Rc::new((*self.shared.config()).clone()));
        }
        mine.1.clone()
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

    /// `rel` (a path under the runtime dir) as go-fastdfs names it in answers: as is when the
    /// runtime dir is the working directory (`static/report.html`), else under the dir.
    pub fn shown_path(&self, rel: &str) -> String {
        let dir = self.dir();
        if dir.as_os_str().is_empty() || dir == Path::new(".") {
            rel.to_string()
        } else {
            dir.join(rel).display().to_string()
        }
    }

    pub fn shutting_down(&self) -> bool {
        self.shared.shutting_down()
    }

    /// Appends an access-log line (flushed to log/access.log from the blocking pool).
    /// One `[Access]` line. `method` and `target` never hold a space, a control or a line
    /// break: a parsed head's are tokens and request-target bytes (checked by httparse), a
    /// refused head's are escaped (`http::head::refused_request_line`).
    pub fn access_log(&self, ip: IpAddr, method: &str, status: u16, target: &str, took: Duration) {
        debug_assert!(
            !(method.bytes().chain(target.bytes())).any(|b| b <= b' ' || b == 0x7f),
            "unescaped access log field: {method:?} {target:?}"
        );
        let mut buf = self.access.borrow_mut();
        if buf.len() < ACCESS_BUFFER_BYTES_MAX {
            // `[Access] {now} | {took:?} | {ip} | {method} | {status} | {target}`, written
            // without the formatting machinery (this runs for every request).
            buf.extend_from_slice(b"[Access] ");
            with_log_time(|now| buf.extend_from_slice(now.as_bytes()));
            buf.extend_from_slice(b" | ");
            push_duration(&mut buf, took);
            buf.extend_from_slice(b" | ");
            match ip {
                IpAddr::V4(v4) => {
                    for (i, octet) in v4.octets().into_iter().enumerate() {
                        if i > 0 {
                            buf.push(b'.');
                        }
                        crate::codec::push_decimal(&mut buf, octet as u64);
                    }
                }
                IpAddr::V6(_) => {
                    use std::io::Write;
                    let _ = write!(buf, "{ip}");
                }
            }
            buf.extend_from_slice(b" | ");
            buf.extend_from_slice(method.as_bytes());
            buf.extend_from_slice(b" | ");
            crate::codec::push_decimal(&mut buf, status as u64);
            buf.extend_from_slice(b" | ");
            buf.extend_from_slice(target.as_bytes());
            buf.push(b'\n');
            if buf.len() >= ACCESS_FLUSH_BYTES {
                drop(buf);
                self.access_full.notify();
            }
        }
    }
}

/// Appends `d` exactly as `format!("{d:?}")` writes it (`1.5ms`, `250µs`, `2.000001s`).
fn push_duration(out: &mut Vec<u8>, d: Duration) {
    let nanos = d.subsec_nanos();
    let (int, mut frac, mut div, unit): (u64, u32, u32, &str) = if d.as_secs() > 0 {
        (d.as_secs(), nanos, 100_000_000, "s")
    } else if nanos >= 1_000_000 {
        ((nanos / 1_000_000) as u64, nanos % 1_000_000, 100_000, "ms")
    } else if nanos >= 1_000 {
        ((nanos / 1_000) as u64, nanos % 1_000, 100, "µs")
    } else {
        (nanos as u64, 0, 1, "ns")
    };
    crate::codec::push_decimal(out, int);
    if frac > 0 {
        out.push(b'.');
        while frac > 0 && div > 0 {
            out.push(b'0' + (frac / div) as u8);
            frac %= div;
            div /= 10;
        }
    }
    out.extend_from_slice(unit.as_bytes());
}

/// One open connection of an executor (see `Worker::connection_opened`).
pub struct ConnectionGuard(std::rc::Rc<Worker>);

impl Drop for ConnectionGuard {
    fn drop(&mut self) {
        let n = self.0.connections.get();
        assert!(n > 0, "a guard counts only its own connection");
        self.0.connections.set(n - 1);
    }
}

thread_local! {
    static LOG_TIME: RefCell<(u64, String)> = const { RefCell::new((0, String::new())) };
}

/// Local time for access-log lines, formatted at most once per second per thread.
/// Calls `f` with the access log's time of now (`YYYY/MM/DD - HH:MM:SS`, local time), formatted
/// at most once per second per thread.
fn with_log_time<R>(f: impl FnOnce(&str) -> R) -> R {
    let secs = crate::sys::unix_secs_coarse();
    LOG_TIME.with(|t| {
        let mut t = t.borrow_mut();
        if t.0 != secs {
            use chrono::TimeZone;
            let local = chrono::Local
                .timestamp_opt(secs as i64, 0)
                .single()
                .unwrap_or_else(chrono::Local::now);
            *t = (secs, local.format("%Y/%m/%d - %H:%M:%S").to_string());
        }
        f(&t.1)
    })
}

/// Positive answers of the auth server per token, until their expiry (used by `auth`).
#[derive(Default)]
pub struct AuthCache(pub HashMap<String, Instant>);

/// A wake-up signal for this executor's replication tasks (a generation counter).
#[derive(Default)]
pub struct Wake {
    generation: Cell<u64>,
    waiters: RefCell<Vec<Waker>>,
}

impl Wake {
    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    pub fn notify(&self) {
        self.generation.set(self.generation.get() + 1);
        for w in self.waiters.borrow_mut().drain(..) {
            w.wake();
        }
    }

    /// Waits until a notify after `seen`, or `max`.
    pub async fn wait(&self, seen: u64, max: Duration) {
        let changed = std::future::poll_fn(|cx| {
            if self.generation.get() != seen {
                std::task::Poll::Ready(())
            } else {
                // One entry per waiting task (a task polled again must not add another).
                let mut waiters = self.waiters.borrow_mut();
                if !waiters.iter().any(|w| w.will_wake(cx.waker())) {
                    waiters.push(cx.waker().clone());
                }
                std::task::Poll::Pending
            }
        });
        futures_lite::future::or(changed, glommio::timer::sleep(max)).await;
    }
}

/// Batches from peers (`syncfile_batch`) one executor receives at once; more wait.
pub const SYNC_BATCHES_RECEIVED_MAX: usize = 4;

/// Replication state of one executor (used by `sync`).
pub struct SyncState {
    pub wake: Wake,
    pub pool: crate::client::peer::Pool,
    /// Peers with a running push task on this executor.
    pub(crate) pushers: RefCell<HashSet<String>>,
    /// Peers that do not take batched announcements (go-fastdfs): until when this executor
    /// speaks go-fastdfs' protocol with them.
    pub(crate) unbatched: RefCell<HashMap<String, Instant>>,
    /// Bounds the batches being received (each holds its body in memory).
    pub(crate) batch_slots: glommio::sync::Semaphore,
    /// Files whose content failed their md5 checkpoints here: fetched again without them,
    /// checked in one pass (`store::checkpoints`; at most `UNCHAINED_MAX`, then forgotten).
    pub(crate) unchained: RefCell<HashSet<String>>,
}

impl Default for SyncState {
    fn default() -> SyncState {
        SyncState {
            wake: Wake::default(),
            pool: Default::default(),
            pushers: Default::default(),
            unbatched: Default::default(),
            batch_slots: glommio::sync::Semaphore::new(SYNC_BATCHES_RECEIVED_MAX as u64),
            unchained: Default::default(),
        }
    }
}

/// Reachability of peers as seen by push tasks (shared by executors, read by metrics).
#[derive(Default)]
pub struct PeerHealth {
    up: std::sync::Mutex<HashMap<String, bool>>,
    /// Peers whose `G/status` answered without this node's id: another process, not this
    /// one under a second name. Nothing is pushed to a peer before it is in here.
    others: std::sync::Mutex<HashSet<String>>,
}

impl PeerHealth {
    pub fn set(&self, peer: &str, up: bool) {
        let mut m = self.up.lock().expect("peer health lock");
        m.insert(peer.to_string(), up);
    }

    pub fn get(&self, peer: &str) -> Option<bool> {
        self.up.lock().expect("peer health lock").get(peer).copied()
    }

    /// Forgets every peer but `peers` (a peer removed by a reload, and added back later, is
    /// unknown until its next check instead of showing its old state).
    pub fn keep_only(&self, peers: &[String]) {
        let mut m = self.up.lock().expect("peer health lock");
        m.retain(|peer, _| peers.contains(peer));
        let mut o = self.others.lock().expect("peer identity lock");
        o.retain(|peer| peers.contains(peer));
    }

    /// `peer` answered `G/status` as another process.
    pub fn set_other(&self, peer: &str) {
        let mut o = self.others.lock().expect("peer identity lock");
        if !o.contains(peer) {
            o.insert(peer.to_string());
        }
    }

    /// Whether `peer` is known to be another process (`set_other`).
    pub fn is_other(&self, peer: &str) -> bool {
        self.others
            .lock()
            .expect("peer identity lock")
            .contains(peer)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_access_log_wakes_its_flusher_once_a_flush_worth_of_lines_waits() {
        let dir = tempfile::tempdir().unwrap();
        let meta = Meta::open(dir.path(), 4, 1).unwrap();
        let cfg = crate::config::parse(&dir.path().join("cfg.json"), "{}")
            .unwrap()
            .0;
        let w = Worker::new(Arc::new(Shared::new(dir.path(), cfg, meta, 1)), 0);
        let ip = IpAddr::from([127, 0, 0, 1]);
        let target = "/group1/default/20261204/22/01/1/a.bin?download=0".repeat(4);
        let line = |w: &Worker| w.access_log(ip, "GET", 200, &target, Duration::from_micros(7));
        while w.access_pending() + 1024 < ACCESS_FLUSH_BYTES {
            line(&w);
            assert_eq!(
                w.access_full.generation(),
                0,
                "woken before a flush's worth"
            );
        }
        while w.access_pending() < ACCESS_FLUSH_BYTES {
            line(&w);
        }
        assert!(
            w.access_full.generation() > 0,
            "not woken at {}",
            w.access_pending()
        );
        let text = String::from_utf8(w.take_access_log()).unwrap();
        assert!(text.lines().all(|l| l.starts_with("[Access] ")
            && l.ends_with(&format!(" | 7µs | 127.0.0.1 | GET | 200 | {target}"))));
        assert_eq!(w.access_pending(), 0);
    }

    #[test]
    fn access_log_durations_read_exactly_like_debug_formatting() {
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut cases = vec![
            Duration::ZERO,
            Duration::from_nanos(1),
            Duration::from_nanos(999),
            Duration::from_nanos(1_000),
            Duration::from_nanos(1_500),
            Duration::from_micros(250),
            Duration::from_nanos(1_000_001),
            Duration::from_millis(1),
            Duration::from_nanos(999_999_999),
            Duration::from_secs(1),
            Duration::new(2, 1),
            Duration::new(86_400, 500_000_000),
        ];
        for _ in 0..10_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            cases.push(Duration::from_nanos(seed % 5_000_000_000));
        }
        for d in cases {
            let mut out = Vec::new();
            push_duration(&mut out, d);
            assert_eq!(String::from_utf8(out).unwrap(), format!("{d:?}"));
        }
    }

    #[test]
    fn a_waiting_task_leaves_one_waker_however_often_it_times_out() {
        let ex = glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .expect("executor");
        ex.run(async {
            let wake = Wake::default();
            for _ in 0..20 {
                wake.wait(wake.generation(), Duration::from_millis(1)).await;
            }
            assert!(wake.waiters.borrow().len() <= 1, "waker list grows");
            let seen = wake.generation();
            wake.notify();
            assert!(wake.waiters.borrow().is_empty());
            // A notify before the wait is not lost.
            let t = Instant::now();
            wake.wait(seen, Duration::from_secs(5)).await;
            assert!(t.elapsed() < Duration::from_secs(1));
        });
    }
}

/// How often a thread logs that it refused guesses of a secret unread.
const LOCKED_LOG_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    static LOCKED_LOG: crate::error::LogEvery = const { crate::error::LogEvery::new(LOCKED_LOG_EVERY) };
}

/// A guess judged by `guesses` under `cfg`'s bounds (an admin's by address counted apart from
/// the others', `guesses`); refusals without a look are logged one line per
/// [`LOCKED_LOG_EVERY`] per thread, with how many the lines between would be.
fn judged(
    guesses: &crate::guesses::Guesses,
    client: IpAddr,
    cfg: &Config,
    right: impl FnOnce() -> bool,
) -> Result<(), Refusal> {
    let now = Instant::now();
    let admin = cfg.access.is_admin(client);
    let judged = guesses.judge(client, admin, now, cfg.secret_guess_bounds(), right);
    if let Err(Refusal::Locked(l)) = judged {
        if let Some(more) = LOCKED_LOG.with(|log| log.tick(now)) {
            tracing::warn!(
                %client,
                secret = l.secret.name(),
                everyone = l.everyone,
                refused_since_last_line = more,
                "refused a guess unread: too many wrong ones (secret_guesses_*; one line per {}s per thread)",
                LOCKED_LOG_EVERY.as_secs()
            );
        }
    }
    judged
}
