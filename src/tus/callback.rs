//! tus `callback_url` (docs/PROTOCOL.md §6): once an upload has become a stored file (durable
//! and recorded), the URL the client named in its metadata gets go-fastdfs' notice, a POST
//! form `info=<pretty FileInfo JSON>&id=<upload id>`; its answer is ignored.
//!
//! The URL is the client's choice, so it is a way to make this server call anything it can
//! reach (SSRF): `enable_tus_callback` turns callbacks off and `tus_callback_hosts` limits
//! them to listed hosts (docs/CONFIG.md). A URL that will not be called is refused at
//! creation (400), so a client never waits for a notice that cannot come.
//!
//! Delivery never touches an upload: notices go into a bounded queue drained by a few threads
//! of their own (a name lookup blocks, and must not hold an executor or the blocking pool that
//! commits metadata). Each notice has [`TIMEOUT`] to connect and as long again to be sent and
//! answered; redirects are not followed; a full queue drops the notice with a warning.
//! Notices still queued at exit are lost (go-fastdfs keeps none either).
//!
//! The queue is bounded per client too (the client that created the upload, an IPv6 client
//! per /64): one client finishing many uploads whose callback server is slow or unreachable
//! has at most [`QUEUE_PER_CLIENT_MAX`] notices waiting (its next are dropped with a warning)
//! and [`SENDING_PER_CLIENT_MAX`] being sent, and the clients' notices are sent in turn: it
//! neither fills the queue nor holds every sender, and the others' notices still go out.

use crate::config::Config;
use std::collections::{HashMap, VecDeque};
use std::io::{self, Read, Write};
use std::net::{IpAddr, TcpStream, ToSocketAddrs};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// The header that marks a notice. A fastdfs node refuses it on its API routes: a
/// `callback_url` naming this node or a peer would otherwise reach them from an admin
/// address (`G/delete?md5=...`).
pub const MARK_HEADER: &str = "x-fastdfs-callback";

/// Time to connect, and then to send the notice and read the answer's status line
/// (go-fastdfs: 10 s and 10 s).
pub const TIMEOUT: Duration = Duration::from_secs(10);
/// Notices waiting for a sender; more are dropped.
pub const QUEUE_MAX: usize = 1024;
/// Notices of one client waiting for a sender; more of its are dropped.
pub const QUEUE_PER_CLIENT_MAX: usize = 64;
/// Threads sending notices (so one hanging callback server does not hold up the others).
const SENDERS: usize = 4;
/// Senders one client's notices may hold at once: one is always left for the others.
pub const SENDING_PER_CLIENT_MAX: usize = SENDERS - 1;
/// Longest accepted `callback_url`.
const URL_BYTES_MAX: usize = 2048;
/// Bytes of an answer read at most (only its status line is of interest).
const ANSWER_BYTES_MAX: usize = 4096;

/// One notice to send.
#[derive(Debug, Clone)]
pub struct Notice {
    /// The client that created the upload (its notices are bounded together).
    pub client: IpAddr,
    pub url: String,
    /// The upload id.
    pub id: String,
    /// The stored file's record, go-fastdfs' pretty JSON.
    pub info: String,
}

/// Why a notice was dropped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dropped {
    /// [`QUEUE_MAX`] notices wait.
    QueueFull,
    /// [`QUEUE_PER_CLIENT_MAX`] notices of its client wait.
    ClientFull,
}

/// One client's notices: waiting, and being sent.
#[derive(Debug, Default)]
struct Waiting {
    notices: VecDeque<Notice>,
    sending: usize,
    /// In `Queue::turns`.
    in_turn: bool,
}

/// The notices waiting, per client, and whose turn is next.
#[derive(Debug, Default)]
struct Queue {
    clients: HashMap<IpAddr, Waiting>,
    /// Clients with a notice waiting and a sender to spare, in the order they are served.
    turns: VecDeque<IpAddr>,
    /// Notices waiting, over all clients.
    waiting: usize,
    /// No more notices are sent (the `Callbacks` is gone).
    closed: bool,
}

impl Queue {
    /// Puts `client` in turn if it has a notice waiting and a sender to spare.
    fn take_turn(&mut self, client: IpAddr) -> bool {
        let Some(w) = self.clients.get_mut(&client) else {
            return false;
        };
        if w.in_turn || w.notices.is_empty() || w.sending >= SENDING_PER_CLIENT_MAX {
            return false;
        }
        w.in_turn = true;
        self.turns.push_back(client);
        true
    }

    /// The next notice to send, from the client whose turn it is.
    fn next(&mut self) -> Option<Notice> {
        let client = self.turns.pop_front()?;
        let w = self
            .clients
            .get_mut(&client)
            .expect("a client in turn waits");
        w.in_turn = false;
        let notice = w
            .notices
            .pop_front()
            .expect("a client in turn has a notice");
        w.sending += 1;
        self.waiting -= 1;
        self.take_turn(client);
        Some(notice)
    }

    /// A notice of `client` was sent (or failed): its sender is free again. True when the
    /// client is back in turn.
    fn sent(&mut self, client: IpAddr) -> bool {
        let w = self
            .clients
            .get_mut(&client)
            .expect("a client sending waits");
        w.sending -= 1;
        if w.sending == 0 && w.notices.is_empty() {
            self.clients.remove(&client);
            return false;
        }
        self.take_turn(client)
    }
}

/// The queue and the senders' wake-up.
#[derive(Debug, Default)]
struct Shared {
    queue: Mutex<Queue>,
    ready: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        self.queue.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// The queue of notices and its sender threads (one per process, in `Shared`).
pub struct Callbacks {
    shared: Arc<Shared>,
}

impl Default for Callbacks {
    fn default() -> Callbacks {
        Callbacks::new()
    }
}

impl Drop for Callbacks {
    fn drop(&mut self) {
        self.shared.lock().closed = true;
        self.shared.ready.notify_all();
    }
}

impl Callbacks {
    /// Starts the sender threads (before the executors pin their threads: these run on any
    /// CPU of the process).
    pub fn new() -> Callbacks {
        Callbacks::with_senders(SENDERS)
    }

    /// A queue whose threads did not start fills up (and says so).
    fn with_senders(senders: usize) -> Callbacks {
        let shared = Arc::new(Shared::default());
        for i in 0..senders {
            let shared = shared.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("tus-callback-{i}"))
                .spawn(move || sender_loop(&shared));
            if let Err(e) = spawned {
                tracing::warn!(cause = %e, "tus: a callback sender thread did not start");
            }
        }
        Callbacks { shared }
    }

    /// Queues a notice, or drops it with a warning when the queue, or its client's part of
    /// it, is full.
    pub fn post(&self, notice: Notice) -> Result<(), Dropped> {
        let client = crate::access::client_block(notice.client);
        let mut q = self.shared.lock();
        let held = q.clients.get(&client).map_or(0, |w| w.notices.len());
        let why = if q.waiting >= QUEUE_MAX {
            Some((
                Dropped::QueueFull,
                "tus: callback queue full, notice dropped",
            ))
        } else if held >= QUEUE_PER_CLIENT_MAX {
            Some((
                Dropped::ClientFull,
                "tus: callback queue holds as many of this client's notices as it may, notice dropped",
            ))
        } else {
            None
        };
        if let Some((why, text)) = why {
            drop(q);
            tracing::warn!(id = %notice.id, url = %notice.url, client = %notice.client, "{text}");
            return Err(why);
        }
        q.clients
            .entry(client)
            .or_default()
            .notices
            .push_back(notice);
        q.waiting += 1;
        if q.take_turn(client) {
            drop(q);
            self.shared.ready.notify_one();
        }
        Ok(())
    }
}

/// Sends queued notices, in turn, until the queue is closed (the process ends).
fn sender_loop(shared: &Shared) {
    loop {
        let notice = {
            let mut q = shared.lock();
            loop {
                if q.closed {
                    return;
                }
                if let Some(n) = q.next() {
                    break n;
                }
                q = shared.ready.wait(q).unwrap_or_else(|p| p.into_inner());
            }
        };
        match deliver(&notice) {
            Ok(status) => {
                tracing::info!(id = %notice.id, url = %notice.url, status, "tus: callback sent")
            }
            Err(e) => {
                tracing::warn!(id = %notice.id, url = %notice.url, cause = %e, "tus: callback failed")
            }
        }
        let client = crate::access::client_block(notice.client);
        if shared.lock().sent(client) {
            shared.ready.notify_one();
        }
    }
}

/// Whether `url` may be called back under `cfg`; the error says why not.
pub fn check(cfg: &Config, url: &str) -> Result<(), String> {
    if !cfg.enable_tus_callback {
        return Err("callback_url: callbacks are turned off on this server".into());
    }
    if url.len() > URL_BYTES_MAX {
        return Err(format!("callback_url: longer than {URL_BYTES_MAX} bytes"));
    }
    let parsed = crate::client::parse_url(url).map_err(|e| format!("callback_url: {e}"))?;
    if !host_allowed(&cfg.tus_callback_hosts, &parsed) {
        return Err(format!(
            "callback_url: host {} is not allowed (tus_callback_hosts)",
            parsed.host_header
        ));
    }
    Ok(())
}

/// Every host when `hosts` is empty; else a listed `host` (any port) or `host:port`,
/// compared without case.
fn host_allowed(hosts: &[String], url: &crate::client::Url) -> bool {
    let with_port = format!("{}:{}", url.host, url.port);
    let bracketed = format!("[{}]:{}", url.host, url.port);
    hosts.is_empty()
        || hosts.iter().map(|h| h.trim()).any(|h| {
            let bare = h.trim_start_matches('[').trim_end_matches(']');
            bare.eq_ignore_ascii_case(&url.host)
                || h.eq_ignore_ascii_case(&with_port)
                || h.eq_ignore_ascii_case(&bracketed)
        })
}

/// The request for `notice` (HTTP/1.1, one request per connection).
fn request_bytes(url: &crate::client::Url, notice: &Notice) -> Vec<u8> {
    let form = crate::client::encode_form(&[
        ("info".to_string(), notice.info.clone()),
        ("id".to_string(), notice.id.clone()),
    ]);
    let mut head = format!(
        "POST {} HTTP/1.1\r\nHost: {}\r\nUser-Agent: Go-FastDFS\r\n\
         Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\
         X-Fastdfs-Callback: tus\r\nConnection: close\r\n",
        url.path,
        url.host_header,
        form.len()
    );
    if let Some(auth) = &url.basic_auth {
        head.push_str(&format!("Authorization: {auth}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(form.as_bytes());
    out
}

/// A connection to the callback server: plain, or TLS for an `https://` URL.
trait Socket: Read + Write {
    fn tcp(&self) -> &TcpStream;
}

impl Socket for TcpStream {
    fn tcp(&self) -> &TcpStream {
        self
    }
}

impl Socket for rustls::StreamOwned<rustls::ClientConnection, TcpStream> {
    fn tcp(&self) -> &TcpStream {
        &self.sock
    }
}

/// Sends one notice (blocking); returns the answer's status. An `https://` URL's server
/// must pass the outgoing client's certificate check (`client::tls`).
fn deliver(notice: &Notice) -> io::Result<u16> {
    let url = crate::client::parse_url(&notice.url)?;
    let tcp = connect(&url.host, url.port)?;
    let deadline = Instant::now() + TIMEOUT;
    if !url.tls {
        return exchange(tcp, &url, notice, deadline);
    }
    let name = crate::client::tls::server_name(&url.host)?;
    let conn = rustls::ClientConnection::new(crate::client::tls::config(), name)
        .map_err(io::Error::other)?;
    exchange(rustls::StreamOwned::new(conn, tcp), &url, notice, deadline)
}

/// Writes the notice on `stream` and reads the answer's status line before `deadline`.
fn exchange(
    mut stream: impl Socket,
    url: &crate::client::Url,
    notice: &Notice,
    deadline: Instant,
) -> io::Result<u16> {
    let left = || {
        let d = deadline.saturating_duration_since(Instant::now());
        (!d.is_zero())
            .then_some(d)
            .ok_or_else(|| io::Error::new(io::ErrorKind::TimedOut, "no answer in time"))
    };
    stream.tcp().set_write_timeout(Some(left()?))?;
    stream.tcp().set_read_timeout(Some(left()?))?;
    stream.write_all(&request_bytes(url, notice))?;
    stream.flush()?;
    let mut answer = Vec::new();
    let mut chunk = [0u8; 512];
    while !answer.contains(&b'\n') && answer.len() < ANSWER_BYTES_MAX {
        stream.tcp().set_read_timeout(Some(left()?))?;
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            break;
        }
        answer.extend_from_slice(&chunk[..n]);
    }
    status_of(&answer)
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status line"))
}

/// The first address of `host:port` that takes a connection within [`TIMEOUT`].
fn connect(host: &str, port: u16) -> io::Result<TcpStream> {
    let mut last = io::Error::new(io::ErrorKind::NotFound, "host has no address");
    for addr in (host, port).to_socket_addrs()? {
        match TcpStream::connect_timeout(&addr, TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = e,
        }
    }
    Err(last)
}

/// The status of an `HTTP/1.x NNN ...` line.
fn status_of(answer: &[u8]) -> Option<u16> {
    let line = answer.split(|b| *b == b'\n').next()?;
    let text = std::str::from_utf8(line).ok()?;
    let mut parts = text.split_whitespace();
    parts.next().filter(|v| v.starts_with("HTTP/"))?;
    parts.next()?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(extra: &str) -> Config {
        let text = format!(r#"{{"addr": ":8080"{extra}}}"#);
        crate::config::parse(std::path::Path::new("cfg.json"), &text)
            .expect("a valid config")
            .0
    }

    #[test]
    fn callbacks_are_on_for_any_http_host_by_default() {
        let c = cfg("");
        assert!(check(&c, "http://127.0.0.1:9/cb?x=1").is_ok());
        assert!(check(&c, "http://hooks.example").is_ok());
        for bad in ["ftp://h/x", "h:80", "", "http://"] {
            assert!(check(&c, bad).is_err(), "{bad}");
        }
        assert!(check(&c, "https://h/x").is_ok(), "https:// is called too");
        let long = format!("http://h/{}", "a".repeat(URL_BYTES_MAX));
        assert!(check(&c, &long).is_err());
    }

    #[test]
    fn the_config_turns_callbacks_off_or_limits_their_hosts() {
        let off = cfg(r#", "enable_tus_callback": false"#);
        assert!(check(&off, "http://h/x").is_err());
        let listed = cfg(r#", "tus_callback_hosts": ["Hooks.Example", "10.0.0.5:8080", "[::1]"]"#);
        for ok in [
            "http://hooks.example/x",
            "http://hooks.example:81/x",
            "http://10.0.0.5:8080/",
            "http://[::1]:9/",
        ] {
            assert!(check(&listed, ok).is_ok(), "{ok}");
        }
        for refused in [
            "http://10.0.0.5/x",
            "http://127.0.0.1/x",
            "http://hooks.example.evil/x",
            "http://x@evil/hooks.example",
        ] {
            assert!(check(&listed, refused).is_err(), "{refused}");
        }
    }

    #[test]
    fn the_notice_is_go_fastdfs_form_in_one_request() {
        let url = crate::client::parse_url("http://u:p@h:81/cb?x=1").unwrap();
        let n = Notice {
            client: IpAddr::from([10, 0, 0, 1]),
            url: String::new(),
            id: "abc".into(),
            info: "{\n  \"md5\": \"m\"\n}".into(),
        };
        let text = String::from_utf8(request_bytes(&url, &n)).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(
            head.starts_with("POST /cb?x=1 HTTP/1.1\r\nHost: h:81\r\n"),
            "{head}"
        );
        assert!(head.contains("\r\nAuthorization: Basic dTpw"), "{head}");
        assert!(head.contains(&format!("\r\nContent-Length: {}", body.len())));
        assert!(head
            .to_ascii_lowercase()
            .contains(&format!("\r\n{MARK_HEADER}: tus\r\n")));
        assert_eq!(body, "info=%7B%0A%20%20%22md5%22%3A%20%22m%22%0A%7D&id=abc");
    }

    fn notice(client: u8) -> Notice {
        Notice {
            client: IpAddr::from([10, 0, 0, client]),
            url: "http://h/".into(),
            id: "i".into(),
            info: "{}".into(),
        }
    }

    #[test]
    fn a_full_queue_drops_the_notice_instead_of_waiting() {
        // No sender threads: nothing drains the queue.
        let c = Callbacks::with_senders(0);
        for i in 0..QUEUE_MAX {
            assert_eq!(c.post(notice((i % 251) as u8)), Ok(()));
        }
        assert_eq!(c.post(notice(252)), Err(Dropped::QueueFull));
    }

    #[test]
    fn one_client_holds_at_most_its_part_of_the_queue_and_of_the_senders() {
        let c = Callbacks::with_senders(0);
        for _ in 0..QUEUE_PER_CLIENT_MAX {
            assert_eq!(c.post(notice(1)), Ok(()));
        }
        assert_eq!(c.post(notice(1)), Err(Dropped::ClientFull));
        assert_eq!(
            c.post(notice(2)),
            Ok(()),
            "another client's notice is queued"
        );
        let mut q = c.shared.lock();
        let mut sent = Vec::new();
        while let Some(n) = q.next() {
            sent.push(n.client);
        }
        // In turn, and never every sender for one client.
        let (a, b) = (IpAddr::from([10, 0, 0, 1]), IpAddr::from([10, 0, 0, 2]));
        assert_eq!(sent[..2], [a, b]);
        assert_eq!(sent.len(), SENDING_PER_CLIENT_MAX + 1);
        assert_eq!(q.clients[&a].sending, SENDING_PER_CLIENT_MAX);
        // Its notice sent, a client is served again; its last one sent, it is forgotten.
        assert!(q.sent(a));
        assert_eq!(q.next().map(|n| n.client), Some(a));
        assert!(!q.sent(b));
        assert!(!q.clients.contains_key(&b));
    }

    #[test]
    fn status_lines() {
        assert_eq!(status_of(b"HTTP/1.1 204 No Content\r\n"), Some(204));
        assert_eq!(status_of(b"HTTP/1.0 302 Found\r\nLocation: x"), Some(302));
        assert_eq!(status_of(b"garbage"), None);
        assert_eq!(status_of(b""), None);
    }
}
