//! Outgoing HTTP/1.1 calls (to peers, and to the auth_url server): hyper's client connection
//! over glommio TCP sockets, with a small per-executor pool of idle keep-alive connections per
//! server. Every call runs under a deadline; response bodies are either collected (bounded) or
//! handed out as a stream. What the pool keeps per server (resolved address, reachability,
//! idle connections) is kept for the configured peers, and for a bounded number of other
//! servers (sources named by peers' records, the auth_url server), the oldest forgotten first.

use bytes::Bytes;
use futures_lite::{AsyncRead, AsyncWrite};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet, VecDeque};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

/// Time allowed to open a TCP connection to a peer.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Idle connections kept per peer.
const IDLE_PER_PEER_MAX: usize = 16;
/// Servers other than the configured peers the pool keeps anything for. Their base URLs come
/// from what peers announce (a record names its sources), so they must not pile up.
const OTHER_BASES_MAX: usize = 64;
/// Largest collected response body (md5 lists of a busy day fit easily).
pub const COLLECT_BYTES_MAX: usize = 256 << 20;

/// Bytes read from a TLS peer socket per call (large: replication moves whole files).
const READ_CHUNK_BYTES: usize = 256 * 1024;

/// A connection's socket: plain, or TLS for an `https://` URL (`client::tls`).
enum Stream {
    Plain(glommio::net::TcpStream),
    Tls(Box<futures_rustls::client::TlsStream<glommio::net::TcpStream>>),
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_close(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Plain(s) => Pin::new(s).poll_close(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_close(cx),
        }
    }
}

/// A connection's socket seen through hyper's IO traits, with a scratch buffer for reads.
/// A connection's socket as hyper reads and writes it. A plain socket is read straight
/// into hyper's buffer; a TLS stream decrypts into a slice, so it reads into the scratch
/// buffer (empty for a plain socket) and copies.
struct Io(Stream, Box<[u8]>);

impl hyper::rt::Read for Io {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        mut buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<io::Result<()>> {
        let this = &mut *self;
        let tls = match &mut this.0 {
            Stream::Plain(s) => return recv_plain(s, cx, buf),
            Stream::Tls(s) => s,
        };
        let want = this.1.len().min(buf.remaining());
        match Pin::new(tls.as_mut()).poll_read(cx, &mut this.1[..want]) {
            Poll::Ready(Ok(n)) => {
                buf.put_slice(&this.1[..n]);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// Reads a plain socket straight into hyper's buffer (one copy of a replicated file's bytes
/// fewer than through a scratch buffer).
fn recv_plain(
    s: &mut glommio::net::TcpStream,
    cx: &mut Context<'_>,
    mut buf: hyper::rt::ReadBufCursor<'_>,
) -> Poll<io::Result<()>> {
    // SAFETY: the room is only written by recv, and only the bytes it wrote are marked
    // filled (`advance`).
    poll_recv(s, cx, unsafe { buf.as_mut() }).map_ok(|n| {
        // SAFETY: recv wrote `n` bytes at the start of the room.
        unsafe { buf.advance(n) }
    })
}

/// One `recv(2)` from a plain socket into `room`: the bytes it wrote there (0 at the
/// stream's end). `recv` at once, since an answer is read when it is expected, and the
/// socket's readiness (a one-shot poll) only when nothing is there.
pub(super) fn poll_recv(
    s: &mut glommio::net::TcpStream,
    cx: &mut Context<'_>,
    room: &mut [std::mem::MaybeUninit<u8>],
) -> Poll<io::Result<usize>> {
    use std::os::fd::AsRawFd;
    let fd = s.as_raw_fd();
    loop {
        match crate::sys::recv_now(fd, room) {
            Some(Ok(n)) => {
                s.read_done();
                return Poll::Ready(Ok(n));
            }
            Some(Err(e)) => return Poll::Ready(Err(e)),
            // One-shot polls: a peer's answer is read as a bulk receive (a replicated file), and
            // a multishot poll would wake the executor for every packet of it.
            None => match s.poll_readable(cx, true, true) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Ready(Ok(())) => {}
            },
        }
    }
}

impl hyper::rt::Write for Io {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_close(cx)
    }
}

type Sender = SendRequest<Full<Bytes>>;

/// Idle connections to peers, per executor.
#[derive(Default)]
pub struct Pool {
    idle: RefCell<HashMap<String, Vec<Sender>>>,
    addrs: RefCell<HashMap<String, SocketAddr>>,
    /// Peers whose last connection attempt failed (until one succeeds).
    unreachable: RefCell<HashSet<String>>,
    /// The base URLs the maps above may hold.
    bases: RefCell<Bases>,
}

/// The base URLs a [`Pool`] keeps anything for.
#[derive(Default)]
struct Bases {
    /// The configured peers ([`Pool::keep_only`]): always kept.
    configured: HashSet<String>,
    /// Other bases, oldest first, at most [`OTHER_BASES_MAX`].
    others: VecDeque<String>,
}

impl Bases {
    /// Takes `base` in; answers the base forgotten to make room, if one was.
    fn admit(&mut self, base: &str) -> Option<String> {
        if self.configured.contains(base) || self.others.iter().any(|b| b == base) {
            return None;
        }
        self.others.push_back(base.to_string());
        if self.others.len() > OTHER_BASES_MAX {
            return self.others.pop_front();
        }
        None
    }
}

/// How one form post is made: extra headers, answer bound, pooled connection or not.
struct Call<'a> {
    headers: &'a [(String, String)],
    body_max: usize,
    reuse: bool,
}

/// A collected response.
pub struct Reply {
    pub status: u16,
    pub headers: hyper::HeaderMap,
    pub body: Bytes,
}

impl Reply {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

fn timed_out() -> io::Error {
    io::Error::new(io::ErrorKind::TimedOut, "peer did not answer in time")
}

fn other(e: impl std::fmt::Display) -> io::Error {
    io::Error::other(e.to_string())
}

/// A collected answer longer than the caller's bound (`Pool::call`, `Pool::get_with`, ...):
/// the peer's answer, not the exchange, is at fault ([`too_large`] finds it in an error).
#[derive(Debug, thiserror::Error)]
#[error("{status} answer of more than {bytes_max} bytes")]
pub struct TooLarge {
    /// The answer's status.
    pub status: u16,
    pub bytes_max: usize,
}

/// The [`TooLarge`] answer `e` is, if it is one.
pub fn too_large(e: &io::Error) -> Option<&TooLarge> {
    e.get_ref()?.downcast_ref::<TooLarge>()
}

pub(super) async fn within<T>(
    deadline: Instant,
    f: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(timed_out());
    }
    glommio::timer::timeout(left, async { f.await.map_err(|e| e.into()) })
        .await
        .map_err(|e| match e {
            glommio::GlommioError::TimedOut(_) => timed_out(),
            // The future's own error as it made it (kind and type kept: `too_large`).
            glommio::GlommioError::IoError(e) => e,
            e => other(e),
        })
}

impl Pool {
    /// Makes room for what is about to be kept for `base`: a base other than the configured
    /// peers past [`OTHER_BASES_MAX`] others has the oldest other one forgotten.
    fn admit(&self, base: &str) {
        let Some(gone) = self.bases.borrow_mut().admit(base) else {
            return;
        };
        self.idle.borrow_mut().remove(&gone);
        self.addrs.borrow_mut().remove(&gone);
        self.unreachable.borrow_mut().remove(&gone);
    }

    /// How many base URLs the pool keeps anything for.
    pub fn bases_held(&self) -> usize {
        let mut held: HashSet<&String> = HashSet::new();
        let (idle, addrs, unreachable) = (
            self.idle.borrow(),
            self.addrs.borrow(),
            self.unreachable.borrow(),
        );
        held.extend(idle.keys());
        held.extend(addrs.keys());
        held.extend(unreachable.iter());
        held.len()
    }

    async fn addr(&self, base: &str) -> io::Result<SocketAddr> {
        if let Some(a) = self.addrs.borrow().get(base) {
            return Ok(*a);
        }
        let url = crate::client::parse_url(base)?;
        let addr = crate::client::resolve(&url.host, url.port).await?;
        self.admit(base);
        self.addrs.borrow_mut().insert(base.to_string(), addr);
        Ok(addr)
    }

    /// A new TCP connection to `base`; its outcome is remembered ([`Pool::unreachable`]).
    pub(super) async fn connect(
        &self,
        base: &str,
        timeout: Duration,
    ) -> io::Result<glommio::net::TcpStream> {
        let addr = self.addr(base).await?;
        let connected = glommio::net::TcpStream::connect_timeout(addr, timeout).await;
        self.admit(base);
        let mut unreachable = self.unreachable.borrow_mut();
        match connected {
            Ok(stream) => {
                unreachable.remove(base);
                Ok(stream)
            }
            Err(e) => {
                if !unreachable.contains(base) {
                    unreachable.insert(base.to_string());
                }
                Err(e.into())
            }
        }
    }

    /// Takes `bases` as the peers now configured (always kept from now on) and forgets every
    /// other base URL: their idle connections close, their resolved addresses and
    /// reachability go. A peer removed by a reload keeps nothing open here.
    pub fn keep_only(&self, bases: &[String]) {
        {
            let mut known = self.bases.borrow_mut();
            known.configured = bases.iter().cloned().collect();
            known.others.clear();
        }
        let kept = |base: &String| bases.contains(base);
        self.idle.borrow_mut().retain(|base, _| kept(base));
        self.addrs.borrow_mut().retain(|base, _| kept(base));
        self.unreachable.borrow_mut().retain(kept);
    }

    /// Whether the last attempt to connect to `base` failed (the peer is down or cut off,
    /// as opposed to answering with an error).
    pub fn unreachable(&self, base: &str) -> bool {
        self.unreachable.borrow().contains(base)
    }

    /// Tries a TCP connection to `base` (closed at once): true when the peer takes it.
    pub async fn probe(&self, base: &str, timeout: Duration) -> bool {
        self.connect(base, timeout).await.is_ok()
    }

    /// A ready connection to `base`: an idle one (when `reuse`; then true), else a new one.
    async fn sender(
        &self,
        base: &str,
        deadline: Instant,
        reuse: bool,
    ) -> io::Result<(Sender, bool)> {
        if reuse {
            loop {
                let next = self.idle.borrow_mut().get_mut(base).and_then(|v| v.pop());
                match next {
                    Some(s) if s.is_ready() => return Ok((s, true)),
                    Some(_) => continue,
                    None => break,
                }
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        let stream = self.connect(base, left.min(CONNECT_TIMEOUT)).await?;
        stream.set_nodelay(true)?;
        let url = crate::client::parse_url(base)?;
        let stream = if url.tls {
            let name = super::tls::server_name(&url.host)?;
            let handshake = async { super::tls::connector().connect(name, stream).await };
            let until = Instant::now() + left.min(CONNECT_TIMEOUT);
            Stream::Tls(Box::new(within(until.min(deadline), handshake).await?))
        } else {
            Stream::Plain(stream)
        };
        let scratch = match stream {
            Stream::Plain(_) => Box::default(),
            Stream::Tls(_) => vec![0u8; READ_CHUNK_BYTES].into_boxed_slice(),
        };
        let io = Io(stream, scratch);
        let (sender, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(other)?;
        glommio::spawn_local(async move {
            let _ = conn.await;
        })
        .detach();
        Ok((sender, false))
    }

    /// Sends `req` on a connection to `base` (an idle one when `reuse`) and returns the
    /// connection with the response head. A request an idle connection did not write (the
    /// peer had closed it, which the pool had not seen yet) is sent once more on a new one;
    /// one that was written is never sent twice.
    async fn exchange(
        &self,
        base: &str,
        req: hyper::Request<Full<Bytes>>,
        deadline: Instant,
        reuse: bool,
    ) -> io::Result<(Sender, hyper::Response<Incoming>)> {
        let (mut sender, pooled) = self.sender(base, deadline, reuse).await?;
        let first = within(deadline, async { Ok(sender.try_send_request(req).await) }).await?;
        match first {
            Ok(resp) => Ok((sender, resp)),
            Err(mut e) => match e.take_message() {
                Some(req) if pooled => {
                    let (mut fresh, _) = self.sender(base, deadline, false).await?;
                    let resp = within(deadline, async {
                        fresh.send_request(req).await.map_err(other)
                    })
                    .await?;
                    Ok((fresh, resp))
                }
                _ => Err(other(e.into_error())),
            },
        }
    }

    fn put_back(&self, base: &str, s: Sender) {
        self.admit(base);
        let mut idle = self.idle.borrow_mut();
        let v = idle.entry(base.to_string()).or_default();
        if v.len() < IDLE_PER_PEER_MAX && !s.is_closed() {
            v.push(s);
        }
    }

    /// Sends a request and returns the response head with its streaming body. The
    /// connection is not pooled (its body may be abandoned).
    pub async fn send(
        &self,
        base: &str,
        req: hyper::Request<Full<Bytes>>,
        deadline: Instant,
    ) -> io::Result<hyper::Response<Incoming>> {
        Ok(self.exchange(base, req, deadline, true).await?.1)
    }

    /// Sends a request on a pooled connection and collects an answer of at most `body_max`
    /// bytes.
    pub async fn call(
        &self,
        base: &str,
        req: hyper::Request<Full<Bytes>>,
        timeout: Duration,
        body_max: usize,
    ) -> io::Result<Reply> {
        self.collect(base, req, Instant::now() + timeout, body_max, true)
            .await
    }

    /// POSTs an urlencoded form to `<base><path>` and collects the answer.
    pub async fn post_form(
        &self,
        base: &str,
        path: &str,
        form: &[(String, String)],
        timeout: Duration,
    ) -> io::Result<Reply> {
        let call = Call {
            headers: &[],
            body_max: COLLECT_BYTES_MAX,
            reuse: true,
        };
        self.post_form_to(base, path, form, timeout, call).await
    }

    /// POSTs an urlencoded form to the full URL `url` with extra `headers` (those that are not
    /// valid header lines are left out) on a connection of its own (`Connection: close`: a
    /// stale pooled connection must not turn into a refusal), and collects at most `body_max`
    /// bytes of answer.
    pub async fn post_form_url(
        &self,
        url: &str,
        headers: &[(String, String)],
        form: &[(String, String)],
        timeout: Duration,
        body_max: usize,
    ) -> io::Result<Reply> {
        let parsed = crate::client::parse_url(url)?;
        // The URL without its path: the connection's key, and where `request` finds the
        // Host header and the userinfo again.
        let base = match url
            .find("://")
            .and_then(|i| url[i + 3..].find(['/', '?']).map(|j| i + 3 + j))
        {
            Some(end) => &url[..end],
            None => url,
        };
        let path = parsed.path;
        let call = Call {
            headers,
            body_max,
            reuse: false,
        };
        self.post_form_to(base, &path, form, timeout, call).await
    }

    async fn post_form_to(
        &self,
        base: &str,
        path: &str,
        form: &[(String, String)],
        timeout: Duration,
        call: Call<'_>,
    ) -> io::Result<Reply> {
        let deadline = Instant::now() + timeout;
        let body = crate::client::encode_form(form);
        let mut req = request("POST", base, path)?
            .header("Content-Type", "application/x-www-form-urlencoded");
        if !call.reuse {
            req = req.header("Connection", "close");
        }
        for (n, v) in call.headers {
            let name = hyper::header::HeaderName::from_bytes(n.as_bytes());
            let value = hyper::header::HeaderValue::from_str(v);
            if let (Ok(name), Ok(value)) = (name, value) {
                req = req.header(name, value);
            }
        }
        let req = req.body(Full::new(Bytes::from(body))).map_err(other)?;
        self.collect(base, req, deadline, call.body_max, call.reuse)
            .await
    }

    /// GETs `<base><path>` and collects the answer.
    pub async fn get(&self, base: &str, path: &str, timeout: Duration) -> io::Result<Reply> {
        let deadline = Instant::now() + timeout;
        let req = request("GET", base, path)?
            .body(Full::new(Bytes::new()))
            .map_err(other)?;
        self.collect(base, req, deadline, COLLECT_BYTES_MAX, true)
            .await
    }

    /// GETs `<base><path>` with extra headers, collecting at most `body_max` bytes.
    pub async fn get_with(
        &self,
        base: &str,
        path: &str,
        headers: &[(&str, &str)],
        timeout: Duration,
        body_max: usize,
    ) -> io::Result<Reply> {
        let deadline = Instant::now() + timeout;
        let mut req = request("GET", base, path)?;
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        let req = req.body(Full::new(Bytes::new())).map_err(other)?;
        self.collect(base, req, deadline, body_max, true).await
    }

    async fn collect(
        &self,
        base: &str,
        req: hyper::Request<Full<Bytes>>,
        deadline: Instant,
        body_max: usize,
        reuse: bool,
    ) -> io::Result<Reply> {
        let (sender, resp) = self.exchange(base, req, deadline, reuse).await?;
        let reply = within(deadline, async {
            let status = resp.status().as_u16();
            let (parts, mut body) = resp.into_parts();
            let mut out = bytes::BytesMut::new();
            while let Some(frame) = body.frame().await {
                if let Ok(data) = frame.map_err(other)?.into_data() {
                    if out.len() + data.len() > body_max {
                        let too_large = TooLarge {
                            status,
                            bytes_max: body_max,
                        };
                        return Err(io::Error::other(too_large));
                    }
                    out.extend_from_slice(&data);
                }
            }
            Ok(Reply {
                status,
                headers: parts.headers,
                body: out.freeze(),
            })
        })
        .await?;
        if reuse {
            self.put_back(base, sender);
        }
        Ok(reply)
    }
}

/// A request builder for `<base><path>` with the headers every peer call carries.
pub fn request(method: &str, base: &str, path: &str) -> io::Result<hyper::http::request::Builder> {
    let (target, headers) = target(base, path)?;
    let mut b = hyper::Request::builder().method(method).uri(target);
    for (name, value) in headers {
        b = b.header(name, value);
    }
    Ok(b)
}

/// The request target of `<base><path>` and the headers every peer call carries.
pub(super) fn target(base: &str, path: &str) -> io::Result<(String, Vec<(&'static str, String)>)> {
    let url = crate::client::parse_url(base)?;
    // A base with a path (a peer behind a prefix) keeps it; its query, if any, is dropped.
    let base_path = url
        .path
        .split('?')
        .next()
        .unwrap_or("")
        .trim_end_matches('/');
    let mut headers = vec![
        ("Host", url.host_header),
        ("User-Agent", "Go-FastDFS".into()),
    ];
    if let Some(auth) = url.basic_auth {
        headers.push(("Authorization", auth));
    }
    Ok((format!("{base_path}{path}"), headers))
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// Runs `f` to its end on an executor of this thread (small io_uring memory).
    pub(in crate::client) fn on_executor<T>(f: impl std::future::Future<Output = T>) -> T {
        glommio::LocalExecutorBuilder::default()
            .io_memory(256 << 10)
            .make()
            .unwrap()
            .run(f)
    }

    /// Reads one request head (the client's requests here have no body).
    pub(in crate::client) fn read_request(s: &mut std::net::TcpStream) -> Vec<u8> {
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.windows(4).any(|w| w == b"\r\n\r\n") {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0, "the client closed");
            got.extend_from_slice(&buf[..n]);
        }
        got
    }

    /// Reads one request head and answers `body`.
    fn answer(s: &mut std::net::TcpStream, body: &str) {
        read_request(s);
        let head = format!("HTTP/1.1 200 OK\r\nContent-Length: {}\r\n\r\n", body.len());
        s.write_all(head.as_bytes()).unwrap();
        s.write_all(body.as_bytes()).unwrap();
    }

    /// Sources named by peers' records come and go: whatever many of them were tried, the
    /// pool keeps something for at most `OTHER_BASES_MAX` of them (the latest), and what it
    /// knows of a configured peer stays.
    #[test]
    fn ever_new_servers_keep_the_pool_bounded_and_the_configured_peers_known() {
        on_executor(async move {
            let pool = Pool::default();
            // Nothing listens on port 1: each base is refused at once, and remembered so.
            let peer = "http://127.0.0.1:1/peer".to_string();
            pool.keep_only(std::slice::from_ref(&peer));
            let t = Duration::from_secs(2);
            assert!(!pool.probe(&peer, t).await);
            let others: Vec<String> = (0..OTHER_BASES_MAX * 3)
                .map(|i| format!("http://127.0.0.1:1/source{i}"))
                .collect();
            for base in &others {
                assert!(!pool.probe(base, t).await);
            }
            assert_eq!(pool.bases_held(), OTHER_BASES_MAX + 1);
            assert!(pool.unreachable(&peer), "the configured peer was forgotten");
            assert!(pool.unreachable(others.last().unwrap()));
            assert!(
                !pool.unreachable(&others[0]),
                "the oldest source is forgotten"
            );
        });
    }

    #[test]
    fn an_answer_longer_than_its_bound_is_told_apart_with_its_status() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let peer = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let _ = s.read(&mut buf).unwrap();
            let page = "404 page not found";
            let head = format!(
                "HTTP/1.1 404 Not Found\r\nContent-Length: {}\r\n\r\n",
                page.len()
            );
            s.write_all(head.as_bytes()).unwrap();
            s.write_all(page.as_bytes()).unwrap();
        });
        on_executor(async move {
            let pool = Pool::default();
            let got = pool
                .get_with(&base, "/x", &[], Duration::from_secs(5), 4)
                .await;
            let e = got.err().expect("longer than 4 bytes");
            let t = too_large(&e).expect("a TooLarge answer");
            assert_eq!((t.status, t.bytes_max), (404, 4));
            let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
            assert!(too_large(&refused).is_none());
        });
        peer.join().unwrap();
    }

    #[test]
    fn a_request_an_idle_connection_closed_by_the_peer_did_not_write_goes_on_a_new_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}", listener.local_addr().unwrap());
        let (close_tx, close_rx) = std::sync::mpsc::channel::<()>();
        let peer = std::thread::spawn(move || {
            let (mut first, _) = listener.accept().unwrap();
            answer(&mut first, "one");
            close_rx.recv().unwrap();
            drop(first); // the idle connection ends, as a peer's idle timeout ends it
            let (mut second, _) = listener.accept().unwrap();
            answer(&mut second, "two");
        });
        on_executor(async move {
            let pool = Pool::default();
            let t = Duration::from_secs(5);
            assert_eq!(&pool.get(&base, "/a", t).await.unwrap().body[..], b"one");
            close_tx.send(()).unwrap();
            // The close reaches the socket while this executor is held, so the pool still
            // holds the connection as ready when the next request takes it.
            std::thread::sleep(Duration::from_millis(200));
            let second = pool.get(&base, "/b", t).await;
            assert_eq!(&second.unwrap().body[..], b"two");
        });
        peer.join().unwrap();
    }
}
