//! TLS for `enable_https` (docs/CONFIG.md): go-fastdfs then serves HTTPS with the certificate
//! chain `conf/server.crt` and the key `conf/server.key` (PEM) on its address; fastdfs-rs
//! serves the S3 listener (`s3_addr`) with the same pair.
//!
//! Owns: loading the certificate and key ([`Certificate`]: read at start, read again by a
//! reload or when the files change, a refused pair leaving the old one serving), the public
//! listeners when TLS is on, and the relay of each TLS connection to the executors. The HTTP
//! layer stays plaintext (io_uring, `sendfile`): the executors listen on internal loopback
//! addresses instead (one per public listener), and every TLS connection is relayed by a
//! thread of its own (rustls, `poll(2)`) to one inner connection there. The inner
//! connection's source port is registered with its client's address before it connects
//! ([`Clients`]); the executors' accept loop takes the client from there, so access rules,
//! caps and logs see the real client. A connection to an internal address that no relay
//! registered is closed.
//!
//! Bounds: relays under the executors' connection caps, by their rule
//! (`admission::Client::of`: `connections_per_client_max` per client, IPv6 per /64, admins
//! and peers exempt; `connections_max` in total, admins and peers allowed into the reserve),
//! and at most [`RELAYS_MAX`] in all (admins and peers [`RELAYS_RESERVED`] more), over both
//! listeners; a handshake has [`HANDSHAKE`]; a relay that moves no byte for [`STALL`] ends
//! (the inner connection has the HTTP layer's own deadlines).
//! Memory per relay: one [`CHUNK`] buffer each way plus rustls' bounded buffers.

use crate::admission::{Caps, Client};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

/// Relays running at once, over all clients.
pub const RELAYS_MAX: usize = 4096;
/// Relays beyond [`RELAYS_MAX`] kept for admins and peers (a flood from the internet must not
/// lock the operator and the cluster out).
pub const RELAYS_RESERVED: usize = 256;
/// Time a client has to complete its handshake.
pub const HANDSHAKE: Duration = Duration::from_secs(10);
/// A relay that moves no byte either way for this long ends.
pub const STALL: Duration = Duration::from_secs(120);
/// Bytes moved per step each way.
const CHUNK: usize = 64 * 1024;
/// A relay thread's stack (it holds the two buffers on the heap).
const STACK: usize = 256 * 1024;
/// How often [`watch`] looks at the files' metadata (two `stat` calls).
pub const CHECK: Duration = Duration::from_secs(10);
/// How long changed files must stay unchanged before [`watch`] reads them: a renewal writes
/// or re-points the certificate and the key one after the other.
pub const SETTLE: Duration = Duration::from_secs(2);

/// A certificate pair read from `conf/`: the rustls server configuration made of it (HTTP/1.1
/// offered by ALPN) and its chain, leaf first.
pub struct Pair {
    pub config: Arc<rustls::ServerConfig>,
    pub chain: Vec<CertificateDer<'static>>,
}

impl Pair {
    /// The SHA-256 of the leaf certificate, in hex (`openssl x509 -fingerprint -sha256`
    /// prints it with colons), for the log.
    pub fn fingerprint(&self) -> String {
        use sha2::Digest;
        let leaf = self.chain.first().map(|c| c.as_ref()).unwrap_or_default();
        sha2::Sha256::digest(leaf)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }
}

/// The certificate chain and key of `conf/`. An error names the file and what is wrong with
/// it (unreadable, no PEM certificate or key, or a key that is not the certificate's).
pub fn load(dir: &Path) -> Result<Pair, String> {
    let crt = dir.join("conf/server.crt");
    let key = dir.join("conf/server.key");
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&crt)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| format!("enable_https: cannot read {}: {e}", crt.display()))?;
    if certs.is_empty() {
        return Err(format!(
            "enable_https: {} holds no PEM certificate",
            crt.display()
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key).map_err(|e| {
        format!(
            "enable_https: cannot read a PEM key from {}: {e}",
            key.display()
        )
    })?;
    // ring: no build tools beyond a C compiler (aws-lc-rs needs more). rustls 0.23.48 marks
    // it deprecated for lacking post-quantum key exchange: clients agree on X25519 instead.
    #[allow(deprecated)]
    let provider = rustls::crypto::ring::default_provider();
    // with_single_cert refuses a key whose public half is not the leaf's.
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider))
        .with_safe_default_protocol_versions()
        .map_err(|e| format!("enable_https: {e}"))?
        .with_no_client_auth()
        .with_single_cert(certs.clone(), key)
        .map_err(|e| match e {
            rustls::Error::InconsistentKeys(_) => {
                "enable_https: the key in conf/server.key is not the key of the certificate in \
                 conf/server.crt (a pair renewed by halves?)"
                    .to_string()
            }
            e => format!("enable_https: conf/server.crt and conf/server.key: {e}"),
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Pair {
        config: Arc::new(config),
        chain: certs,
    })
}

/// Which version of `conf/server.crt` and `conf/server.key` is on disk: device, inode, size
/// and modification time of each, through symlinks (certbot's renewal re-points them at new
/// files; a copy rewrites them in place). None for a file that cannot be looked at.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stamp([Option<FileStamp>; 2]);

/// One file's device, inode, size, and modification time (seconds, nanoseconds).
type FileStamp = (u64, u64, u64, i64, i64);

impl Stamp {
    fn of(dir: &Path) -> Stamp {
        let one = |name: &str| {
            std::fs::metadata(dir.join("conf").join(name))
                .ok()
                .map(|m| (m.dev(), m.ino(), m.len(), m.mtime(), m.mtime_nsec()))
        };
        Stamp([one("server.crt"), one("server.key")])
    }
}

/// The pair the TLS listeners serve. Each new handshake takes the pair serving then;
/// connections keep the one they started with. [`Certificate::reload`] replaces it only with
/// a sound pair: a node never serves without a certificate.
pub struct Certificate {
    dir: PathBuf,
    serving: RwLock<Arc<Pair>>,
    /// The files' stamp when they were last read, whether their pair was taken or refused.
    read: Mutex<Stamp>,
    /// One reading at a time (a reload and the watch may meet): each new pair's users hear
    /// of the pairs in the order they were put in service.
    reading: Mutex<()>,
}

impl Certificate {
    /// The pair of `dir/conf`, for the start: an error stops it.
    pub fn load(dir: &Path) -> Result<Certificate, String> {
        let stamp = Stamp::of(dir);
        let pair = load(dir)?;
        Ok(Certificate {
            dir: dir.to_path_buf(),
            serving: RwLock::new(Arc::new(pair)),
            read: Mutex::new(stamp),
            reading: Mutex::new(()),
        })
    }

    /// The pair serving now.
    pub fn serving(&self) -> Arc<Pair> {
        self.serving.read().expect("tls pair").clone()
    }

    /// Reads the files again. Ok(true): their pair serves new handshakes from now, and
    /// `then` was called with it before any later reading; Ok(false): they hold the chain
    /// serving already (nothing changes). An error says what is wrong with them, and the
    /// pair serving stays.
    pub fn reload(&self, then: impl FnOnce(&Pair)) -> Result<bool, String> {
        let _one = self.reading.lock().expect("tls reading");
        *self.read.lock().expect("tls stamp") = Stamp::of(&self.dir);
        let pair = Arc::new(load(&self.dir)?);
        if self.serving().chain == pair.chain {
            return Ok(false);
        }
        *self.serving.write().expect("tls pair") = pair.clone();
        then(&pair);
        Ok(true)
    }

    /// Whether the files changed since they were last read (two `stat` calls).
    pub fn changed_on_disk(&self) -> bool {
        Stamp::of(&self.dir) != *self.read.lock().expect("tls stamp")
    }

    /// The stamp of the files now.
    fn stamp(&self) -> Stamp {
        Stamp::of(&self.dir)
    }
}

/// Every [`CHECK`] until `stopping`, looks whether the certificate's files changed; once a
/// change has held still for [`SETTLE`], calls `reload` (which reads them and says what came
/// of it). A refused pair is not read again until the files change again.
pub fn watch(cert: &Certificate, stopping: impl Fn() -> bool, reload: impl Fn()) {
    const STEP: Duration = Duration::from_millis(200);
    let mut waited = Duration::ZERO;
    while !stopping() {
        std::thread::sleep(STEP);
        waited += STEP;
        if waited < CHECK {
            continue;
        }
        waited = Duration::ZERO;
        if !cert.changed_on_disk() {
            continue;
        }
        let seen = cert.stamp();
        std::thread::sleep(SETTLE);
        if cert.stamp() == seen && !stopping() {
            reload();
        }
    }
}

/// The clients of the relays' inner connections, by their source port on loopback.
#[derive(Debug, Default)]
pub struct Clients(Mutex<HashMap<u16, SocketAddr>>);

impl Clients {
    /// The client a relay registered for an inner connection from `peer`, taken out (each
    /// is used once); None for a connection no relay made.
    pub fn take(&self, peer: SocketAddr) -> Option<SocketAddr> {
        if !peer.ip().is_loopback() {
            return None;
        }
        self.0.lock().expect("tls clients").remove(&peer.port())
    }

    fn put(&self, port: u16, client: SocketAddr) {
        self.0.lock().expect("tls clients").insert(port, client);
    }

    fn forget(&self, port: u16) {
        self.0.lock().expect("tls clients").remove(&port);
    }
}

/// Reserves a loopback port for the executors' inner listeners (each binds it with
/// `SO_REUSEPORT`, like the public address): a socket bound to it, never listening, held for
/// the process's life.
pub fn reserve_inner() -> io::Result<(socket2::Socket, SocketAddr)> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.set_reuse_port(true)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let addr = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("inner address"))?;
    Ok((s, addr))
}

/// The client of a connection from an address, and the caps in force.
pub type Terms = Box<dyn Fn(IpAddr) -> (Client, Caps) + Send + Sync>;

/// What the front needs of the server, shared by its listeners (`addr`, `s3_addr`).
pub struct Front {
    pub cert: Arc<Certificate>,
    pub clients: Arc<Clients>,
    /// Relays per client (IPv6 per /64) and in all, over both listeners: the connections' own
    /// bookkeeping, a ledger of its own (the inner connections are counted again by the
    /// executors).
    relays: Arc<crate::admission::Admission>,
    /// A connection's client and the executors' caps (`admission::Client::of`), read per
    /// connection: a reload moves them.
    pub terms: Terms,
    pub stopping: Box<dyn Fn() -> bool + Send + Sync>,
}

impl Front {
    pub fn new(
        cert: Arc<Certificate>,
        clients: Arc<Clients>,
        terms: Terms,
        stopping: Box<dyn Fn() -> bool + Send + Sync>,
    ) -> Front {
        Front {
            cert,
            clients,
            relays: Arc::default(),
            terms,
            stopping,
        }
    }

    /// A relay's place for `ip`, given back when dropped; None when its client or everyone
    /// is at the cap (an admin's or a peer's: only when the reserve is used up too).
    fn admit(&self, ip: IpAddr) -> Option<crate::admission::Ticket> {
        let (client, caps) = (self.terms)(ip);
        let caps = caps.at_most(RELAYS_MAX as u64, (RELAYS_MAX + RELAYS_RESERVED) as u64);
        self.relays.admit(client, caps).ok()
    }
}

/// One public listener of the front: the executors' internal address its relays connect to,
/// and its whole answer to a plain HTTP request ([`plain_http_answer`]).
pub struct Door {
    pub inner: SocketAddr,
    pub plain_http: Vec<u8>,
}

/// A `400` with `body`, then close: what a client that sent plain HTTP to a TLS port gets
/// (Go's TLS server, so go-fastdfs, answers one too) instead of a bare reset.
pub fn plain_http_answer(content_type: &str, body: &str) -> Vec<u8> {
    format!(
        "HTTP/1.1 400 Bad Request\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Accepts TLS connections on `listener` until the server stops; each gets a relay thread
/// to the executors' internal address of `door`.
pub fn accept_loop(listener: TcpListener, door: Door, front: Arc<Front>) {
    let door = Arc::new(door);
    if let Err(e) = listener.set_nonblocking(true) {
        tracing::error!(cause = %e, "tls: cannot set up the listener");
        return;
    }
    while !(front.stopping)() {
        if !wait(
            listener.as_raw_fd(),
            libc::POLLIN,
            Duration::from_millis(200),
        ) {
            continue;
        }
        let (sock, client) = match listener.accept() {
            Ok(c) => c,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
            Err(e) => {
                tracing::warn!(cause = %e, "tls: accept failed");
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
        };
        let Some(ticket) = front.admit(client.ip()) else {
            continue; // closed: over a cap
        };
        let (f, d) = (front.clone(), door.clone());
        let spawned = std::thread::Builder::new()
            .name("fastdfs-tls".into())
            .stack_size(STACK)
            .spawn(move || {
                if let Err(e) = relay(&f, &d, sock, client) {
                    tracing::debug!(%client, cause = %e, "tls: connection ended");
                }
                drop(ticket);
            });
        if let Err(e) = spawned {
            tracing::warn!(cause = %e, "tls: cannot start a relay");
        }
    }
}

/// Waits until `fd` has `events` (or an error or hang-up); false on timeout.
fn wait(fd: i32, events: i16, timeout: Duration) -> bool {
    let mut p = libc::pollfd {
        fd,
        events,
        revents: 0,
    };
    // SAFETY: one valid pollfd.
    let n = unsafe { libc::poll(&mut p, 1, timeout.as_millis().min(i32::MAX as u128) as i32) };
    n > 0
}

/// One TLS connection: the handshake (with the pair serving now), then bytes both ways
/// between it and an inner connection to the `door`'s internal address until either side
/// ends or nothing moves for [`STALL`]. A plain HTTP request gets the door's answer.
fn relay(front: &Front, door: &Door, mut sock: TcpStream, client: SocketAddr) -> io::Result<()> {
    let _ = sock.set_nodelay(true);
    // The handshake, bounded as a whole.
    let deadline = Instant::now() + HANDSHAKE;
    if sent_plain_http(&sock, deadline)? {
        return refuse_plain_http(sock, &door.plain_http);
    }
    let config = front.cert.serving().config.clone();
    let mut tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
    // Room for one CHUNK of plaintext as records (each step waits until the last has left).
    tls.set_buffer_limit(Some(2 * CHUNK));
    while tls.is_handshaking() {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "handshake"));
        }
        sock.set_read_timeout(Some(left))?;
        sock.set_write_timeout(Some(left))?;
        tls.complete_io(&mut sock)?;
    }
    let mut inner = connect_inner(front, door.inner, client)?;
    sock.set_nonblocking(true)?;
    inner.set_nonblocking(true)?;
    let _ = inner.set_nodelay(true);
    pump(&mut tls, &mut sock, &mut inner)
}

/// Whether the client's first byte, awaited until `deadline`, starts a request line (an
/// ASCII capital: `GET`, `PUT`...) rather than a TLS record (22, a handshake).
fn sent_plain_http(sock: &TcpStream, deadline: Instant) -> io::Result<bool> {
    let left = deadline.saturating_duration_since(Instant::now());
    sock.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
    let mut first = [0u8; 1];
    let n = sock.peek(&mut first)?;
    Ok(n == 1 && first[0].is_ascii_uppercase())
}

/// Writes `answer` and closes, after reading what the client sent (at most [`CHUNK`] bytes
/// within a second): unread bytes would make the close a reset that can destroy the answer.
fn refuse_plain_http(mut sock: TcpStream, answer: &[u8]) -> io::Result<()> {
    sock.set_write_timeout(Some(Duration::from_secs(5)))?;
    sock.write_all(answer)?;
    sock.shutdown(std::net::Shutdown::Write)?;
    let until = Instant::now() + Duration::from_secs(1);
    let (mut buf, mut read) = (vec![0u8; 4096], 0);
    while read < CHUNK {
        let left = until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        sock.set_read_timeout(Some(left))?;
        match sock.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => read += n,
        }
    }
    Ok(())
}

/// An inner connection to the executors' `inner`, its source port registered for `client`
/// first.
fn connect_inner(front: &Front, inner: SocketAddr, client: SocketAddr) -> io::Result<TcpStream> {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    s.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())?;
    let port = s
        .local_addr()?
        .as_socket()
        .ok_or_else(|| io::Error::other("inner source address"))?
        .port();
    front.clients.put(port, client);
    if let Err(e) = s.connect(&inner.into()) {
        front.clients.forget(port);
        return Err(e);
    }
    Ok(s.into())
}

/// Moves bytes both ways; returns when both directions ended, on an error, or after
/// [`STALL`] without progress.
fn pump(
    tls: &mut rustls::ServerConnection,
    sock: &mut TcpStream,
    inner: &mut TcpStream,
) -> io::Result<()> {
    let mut to_inner: Vec<u8> = Vec::with_capacity(CHUNK);
    let mut buf = vec![0u8; CHUNK];
    let (mut client_done, mut inner_done) = (false, false);
    let mut last_progress = Instant::now();
    loop {
        // What the handshake's last read brought (the first request, often) is here already.
        if !client_done {
            drain(tls, &mut to_inner, &mut buf, &mut client_done)?;
        }
        let outgoing = tls.wants_write();
        if inner_done && !outgoing {
            return Ok(()); // everything the server said has left
        }
        let mut fds = [
            libc::pollfd {
                fd: sock.as_raw_fd(),
                events: 0,
                revents: 0,
            },
            libc::pollfd {
                fd: inner.as_raw_fd(),
                events: 0,
                revents: 0,
            },
        ];
        if !client_done && to_inner.len() < CHUNK {
            fds[0].events |= libc::POLLIN;
        }
        if outgoing {
            fds[0].events |= libc::POLLOUT;
        }
        // Read the server only once what it said before has left (bounded memory).
        if !inner_done && !outgoing {
            fds[1].events |= libc::POLLIN;
        }
        if !to_inner.is_empty() {
            fds[1].events |= libc::POLLOUT;
        }
        let left = STALL.saturating_sub(last_progress.elapsed());
        if left.is_zero() {
            return Err(io::Error::new(io::ErrorKind::TimedOut, "relay stalled"));
        }
        // SAFETY: two valid pollfds.
        let n = unsafe { libc::poll(fds.as_mut_ptr(), 2, left.as_millis().max(1) as i32) };
        if n < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        if client_done && fds[0].revents & (libc::POLLHUP | libc::POLLERR) != 0 {
            return Ok(()); // the client is gone both ways: nobody to answer
        }
        let moved = step(
            tls,
            sock,
            inner,
            &fds,
            &mut to_inner,
            &mut buf,
            (&mut client_done, &mut inner_done),
        )?;
        if moved {
            last_progress = Instant::now();
        }
    }
}

/// Moves the plaintext rustls has received into `to_inner`, up to [`CHUNK`] in all; sets
/// `client_done` at the client's `close_notify`.
fn drain(
    tls: &mut rustls::ServerConnection,
    to_inner: &mut Vec<u8>,
    buf: &mut [u8],
    client_done: &mut bool,
) -> io::Result<()> {
    loop {
        let room = CHUNK.saturating_sub(to_inner.len()).min(buf.len());
        if room == 0 {
            return Ok(());
        }
        match tls.reader().read(&mut buf[..room]) {
            Ok(0) => {
                *client_done = true; // close_notify
                return Ok(());
            }
            Ok(n) => to_inner.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
            Err(e) => return Err(e),
        }
    }
}

/// One round of the relay after `poll`; true when any byte moved.
fn step(
    tls: &mut rustls::ServerConnection,
    sock: &mut TcpStream,
    inner: &mut TcpStream,
    fds: &[libc::pollfd; 2],
    to_inner: &mut Vec<u8>,
    buf: &mut [u8],
    (client_done, inner_done): (&mut bool, &mut bool),
) -> io::Result<bool> {
    let ready = |i: usize, ev: i16| fds[i].revents & (ev | libc::POLLERR | libc::POLLHUP) != 0;
    let mut moved = false;
    // Client -> TLS -> plaintext for the server. The plaintext is drained every round: the
    // handshake's last read may have brought the first request with it.
    if ready(0, libc::POLLIN) && !*client_done {
        match tls.read_tls(sock) {
            Ok(0) => *client_done = true,
            Ok(_) => {
                moved = true;
                tls.process_new_packets().map_err(io::Error::other)?;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    if !*client_done {
        drain(tls, to_inner, buf, client_done)?;
    }
    if !to_inner.is_empty() {
        match inner.write(to_inner) {
            Ok(n) => {
                to_inner.drain(..n);
                moved |= n > 0;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    if *client_done && to_inner.is_empty() {
        let _ = inner.shutdown(std::net::Shutdown::Write);
    }
    // Server -> TLS -> client.
    if ready(1, libc::POLLIN) && !*inner_done && !tls.wants_write() {
        match inner.read(buf) {
            Ok(0) => {
                *inner_done = true;
                tls.send_close_notify();
            }
            Ok(n) => {
                tls.writer().write_all(&buf[..n])?;
                moved = true;
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
    }
    while tls.wants_write() {
        match tls.write_tls(sock) {
            Ok(0) => break,
            Ok(_) => moved = true,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) => return Err(e),
        }
    }
    Ok(moved)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn front(per_client: u64) -> Front {
        let config = rustls::ServerConfig::builder_with_provider(Arc::new({
            #[allow(deprecated)]
            rustls::crypto::ring::default_provider()
        }))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(NoCert));
        let cert = Certificate {
            dir: PathBuf::new(),
            serving: RwLock::new(Arc::new(Pair {
                config: Arc::new(config),
                chain: Vec::new(),
            })),
            read: Mutex::default(),
            reading: Mutex::default(),
        };
        Front {
            cert: Arc::new(cert),
            clients: Arc::default(),
            relays: Arc::default(),
            terms: Box::new(move |ip| {
                let rules = crate::access::Rules::new(&[], &[], &[], &[]);
                (Client::of(&rules, ip), Caps::new(per_client, 0, 100_000))
            }),
            stopping: Box::new(|| false),
        }
    }

    #[derive(Debug)]
    struct NoCert;
    impl rustls::server::ResolvesServerCert for NoCert {
        fn resolve(
            &self,
            _: rustls::server::ClientHello<'_>,
        ) -> Option<Arc<rustls::sign::CertifiedKey>> {
            None
        }
    }

    /// A self-signed pair made by openssl in `to/conf`; false (the test skips) without it.
    fn make_pair(to: &Path) -> bool {
        std::fs::create_dir_all(to.join("conf")).unwrap();
        std::process::Command::new("openssl")
            .args(["req", "-x509", "-newkey", "ec", "-pkeyopt"])
            .args(["ec_paramgen_curve:prime256v1", "-nodes", "-days", "2"])
            .args(["-subj", "/CN=127.0.0.1", "-keyout"])
            .arg(to.join("conf/server.key"))
            .arg("-out")
            .arg(to.join("conf/server.crt"))
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    }

    fn copy(from: &Path, to: &Path, file: &str) {
        std::fs::copy(from.join("conf").join(file), to.join("conf").join(file)).unwrap();
    }

    #[test]
    fn a_reload_takes_a_sound_new_pair_and_keeps_the_old_one_otherwise() {
        let tmp = tempfile::tempdir().unwrap();
        let (node, other) = (tmp.path().join("node"), tmp.path().join("other"));
        if !make_pair(&node) || !make_pair(&other) {
            eprintln!("skipped: openssl cannot make a certificate");
            return;
        }
        let cert = Certificate::load(&node).unwrap();
        let first = cert.serving().fingerprint();
        assert!(!cert.changed_on_disk());
        let mut told = Vec::new();
        assert_eq!(cert.reload(|p| told.push(p.fingerprint())), Ok(false));
        assert!(told.is_empty(), "the same files: nothing new");

        // The other certificate with the old key: refused, the old pair serves on, and the
        // files are not looked at again until they change.
        copy(&other, &node, "server.crt");
        assert!(cert.changed_on_disk());
        let e = cert.reload(|_| panic!("refused")).unwrap_err();
        assert!(e.contains("is not the key of the certificate"), "{e}");
        assert_eq!(cert.serving().fingerprint(), first);
        assert!(!cert.changed_on_disk());
        // No certificate at all, or no key: the same.
        std::fs::write(node.join("conf/server.crt"), b"").unwrap();
        let e = cert.reload(|_| panic!("refused")).unwrap_err();
        assert!(e.contains("holds no PEM certificate"), "{e}");
        std::fs::remove_file(node.join("conf/server.key")).unwrap();
        assert!(cert.reload(|_| panic!("refused")).is_err());
        assert_eq!(cert.serving().fingerprint(), first);

        // The whole new pair: taken, and its user told once.
        copy(&other, &node, "server.crt");
        copy(&other, &node, "server.key");
        assert_eq!(cert.reload(|p| told.push(p.fingerprint())), Ok(true));
        let second = cert.serving().fingerprint();
        assert_ne!(second, first);
        assert_eq!(told, [second]);
    }

    #[test]
    fn an_inner_connection_names_its_client_once_and_only_from_loopback() {
        let clients = Clients::default();
        let client: SocketAddr = "203.0.113.9:5555".parse().unwrap();
        clients.put(40000, client);
        let from = |ip: [u8; 4], port| SocketAddr::from((ip, port));
        assert_eq!(clients.take(from([10, 0, 0, 1], 40000)), None);
        assert_eq!(clients.take(from([127, 0, 0, 1], 40001)), None);
        assert_eq!(clients.take(from([127, 0, 0, 1], 40000)), Some(client));
        assert_eq!(clients.take(from([127, 0, 0, 1], 40000)), None);
    }

    #[test]
    fn relays_are_capped_per_client_and_given_back() {
        let f = front(2);
        let a: IpAddr = "198.51.100.1".parse().unwrap();
        let b: IpAddr = "198.51.100.2".parse().unwrap();
        let (a1, a2) = (f.admit(a), f.admit(a));
        assert!(a1.is_some() && a2.is_some());
        assert!(f.admit(a).is_none(), "a third relay for one client");
        let _b1 = f.admit(b).expect("another client");
        drop(a1);
        assert!(f.admit(a).is_some());
        // An IPv6 client counts per /64.
        let v6 = |s: &str| s.parse::<IpAddr>().unwrap();
        let (c1, c2) = (f.admit(v6("2001:db8::1")), f.admit(v6("2001:db8::2")));
        assert!(c1.is_some() && c2.is_some());
        assert!(f.admit(v6("2001:db8::3")).is_none());
    }
}
