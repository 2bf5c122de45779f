//! One HTTP/1.1 connection: reads request heads under deadlines, gives handlers a streaming
//! body reader, writes responses, keeps the connection alive or closes it.
//!
//! Deadlines (slowloris guard): a new connection must send its first byte within
//! `first_byte_timeout`, a keep-alive connection may stay idle for `idle_timeout`; once the
//! first byte of a head arrived the whole head must arrive within `read_header_timeout` (else
//! 408 and close); inside a body every read must bring bytes within `body_stall_timeout`, the
//! body must average at least `body_min_rate` bytes/s after a grace period (Apache
//! mod_reqtimeout's MinRate), and the whole request must be read within `read_timeout`;
//! every write must make progress within `write_timeout`.
//! A body the handler did not consume closes the connection (never parsed as a request).

use super::chunked;
use super::head::{self, BodyKind, RequestHead};
use super::response::{self, Body, Persist, Response};
use bytes::{Bytes, BytesMut};
use futures_lite::AsyncWriteExt;
use glommio::net::TcpStream;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Bytes asked from the socket per read of a request head.
const HEAD_READ_BYTES: usize = 4 * 1024;
/// Bytes asked from the socket per read of a request body.
const BODY_READ_BYTES: usize = 64 * 1024;
/// Bytes read from a file per io_uring read when streaming a download.
const FILE_CHUNK_BYTES: usize = 512 * 1024;
/// Bodies up to this size are copied into the head buffer (one write).
const INLINE_BODY_BYTES_MAX: u64 = 64 * 1024;
/// How long an idle connection is watched for a request already on its way at shutdown.
const SHUTDOWN_LOOK: Duration = Duration::from_millis(50);
/// After an error response, unread request bytes are drained for this long before closing
/// (so the client reads our response instead of a reset).
const LINGER: Duration = Duration::from_secs(2);
const LINGER_BYTES_MAX: usize = 8 * 1024 * 1024;
/// A body the handler left unread, up to this size, is read and dropped before its answer,
/// so the connection carries the next request: a proxy forwarding the body as it arrives
/// (nginx with `proxy_request_buffering off`) otherwise drops its own client's connection
/// after an early answer. As much as the linger would drain after the answer anyway (Go's
/// server reads 256 KiB so; go-fastdfs reads whole uploads before answering). Larger ones
/// are answered at once, then the connection closes.
const UNREAD_BODY_DISCARD_BYTES_MAX: u64 = LINGER_BYTES_MAX as u64;

/// Deadlines and bounds of a connection, read by `serve` before each request (a reloaded
/// configuration applies from the next one).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Silence allowed before the first byte of a connection's first request.
    pub first_byte: Duration,
    /// Silence allowed between requests of a keep-alive connection.
    pub idle: Duration,
    /// Time for a whole request head once its first byte arrived.
    pub read_header: Duration,
    /// Longest pause inside a body.
    pub body_stall: Duration,
    /// Slowest average body rate after the grace, bytes per second.
    pub body_min_rate: u64,
    /// Time for the whole request, head and body.
    pub read: Duration,
    /// Longest time a write may make no progress.
    pub write_stall: Duration,
}

/// One answered request, as the access log and the metrics see it.
#[derive(Debug)]
pub struct Exchange<'a> {
    pub peer: std::net::IpAddr,
    /// The request's head (None for a refused one): the client a proxy names in it is
    /// believed only from a trusted proxy, which the handler decides.
    pub head: Option<&'a RequestHead>,
    pub method: &'a str,
    pub target: &'a str,
    /// The request's `tag` as the handler left it.
    pub tag: usize,
    pub status: u16,
    pub took: Duration,
    pub received_bytes: u64,
    pub sent_bytes: u64,
    /// The body was cut for its pace (too slow, or past the read deadline).
    pub pace_cut: bool,
}

/// What a connection needs from the server above it: the HTTP layer calls down into no
/// other module, the server passes itself in.
// Connections live on one executor (thread-per-core): the futures need not be Send.
#[allow(async_fn_in_trait)]
pub trait Handler {
    fn limits(&self) -> Limits;
    fn shutting_down(&self) -> bool;
    /// The answer to a request head that could not be parsed (the connection then closes).
    fn refuse(&self, e: super::head::HeadError) -> Response;
    /// Answers one request; may read its body.
    async fn handle(self: &Rc<Self>, req: &mut Request<'_>) -> Response;
    /// Called after each response was written (or failed to be).
    fn answered(&self, exchange: &Exchange<'_>);
}

/// Time a body is given before `body_min_rate` applies.
const BODY_RATE_GRACE: Duration = Duration::from_secs(10);

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body stalled")]
    Timeout,
    #[error("request body too slow: below {0} bytes/s on average")]
    TooSlow(u64),
    #[error("request not read within read_timeout")]
    Deadline,
    #[error("connection closed in the middle of the request body")]
    Closed,
    #[error("invalid chunked body: {0}")]
    Chunked(#[from] chunked::ChunkedError),
    #[error("request body larger than {0} bytes")]
    TooLarge(u64),
    #[error("i/o: {0}")]
    Io(#[from] io::Error),
}

pub struct Conn {
    stream: TcpStream,
    rbuf: BytesMut,
    /// The socket is non-blocking: resident file ranges may go out with `sendfile` at once.
    zero_copy: bool,
    /// The last read filled all the room it was given: more bytes may wait in the socket.
    /// The readiness poll is edge-triggered (an event per arrival, not per byte left), so
    /// the next read tries the socket before it waits for an event.
    maybe_more: bool,
    /// The connection waited between requests: the server can end such waits at shutdown.
    idle: Option<IdleEntry>,
}

/// How a read of the socket waits for bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Wait {
    /// Bytes are likely waiting (a body being received): the socket is read at once.
    Body,
    /// The socket's readiness is asked first (the rest of a head, a drain, a look at shutdown).
    Event,
    /// Between requests, like `Event`; the wait ends early (as a timeout) once the server
    /// closes its idle connections.
    Idle,
}

/// This thread's connections that have waited between requests, so that shutdown can wake
/// them: an idle keep-alive connection sleeps until its idle deadline with no periodic wake
/// (thousands of idle connections cost no CPU), and at shutdown
/// [`close_idle_connections`] ends the waits of all of them at once.
#[derive(Default)]
struct IdleConnections {
    closed: std::cell::Cell<bool>,
    /// A waker per connection (its task's, which does not change), by key; `free`: unused keys.
    wakers: std::cell::RefCell<(Vec<Option<std::task::Waker>>, Vec<usize>)>,
}

thread_local! {
    static IDLE_CONNECTIONS: IdleConnections = IdleConnections::default();
}

/// One connection's entry in [`IdleConnections`], registered at its first wait between
/// requests and removed when the connection goes.
struct IdleEntry(usize);

impl IdleEntry {
    fn new(waker: &std::task::Waker) -> IdleEntry {
        IDLE_CONNECTIONS.with(|c| {
            let (wakers, free) = &mut *c.wakers.borrow_mut();
            match free.pop() {
                Some(k) => {
                    debug_assert!(wakers[k].is_none());
                    wakers[k] = Some(waker.clone());
                    IdleEntry(k)
                }
                None => {
                    wakers.push(Some(waker.clone()));
                    IdleEntry(wakers.len() - 1)
                }
            }
        })
    }
}

impl Drop for IdleEntry {
    fn drop(&mut self) {
        // A connection dropped while the thread ends (its locals gone) has nothing to remove.
        let _ = IDLE_CONNECTIONS.try_with(|c| {
            let (wakers, free) = &mut *c.wakers.borrow_mut();
            wakers[self.0] = None;
            free.push(self.0);
        });
    }
}

/// Whether this thread's idle connections were told to close.
fn idle_closed() -> bool {
    IDLE_CONNECTIONS.with(|c| c.closed.get())
}

/// Shutdown: every connection of this thread waiting between requests stops waiting (it takes
/// a short look for a request already on its way, then closes); connections busy with a
/// request finish it. Called on each executor's thread once its listener stops accepting.
pub fn close_idle_connections() {
    let wakers: Vec<std::task::Waker> = IDLE_CONNECTIONS.with(|c| {
        c.closed.set(true);
        c.wakers.borrow().0.iter().flatten().cloned().collect()
    });
    for w in wakers {
        w.wake();
    }
}

/// Memory that bytes are received into in place: its spare capacity, then its length grows.
/// Nothing is zeroed first (`recv(2)` writes through a raw pointer).
pub trait Room {
    /// At least `want` bytes of spare capacity after the bytes held.
    fn room(&mut self, want: usize) -> &mut [std::mem::MaybeUninit<u8>];
    /// # Safety
    /// The first `n` bytes of the last `room` were written.
    unsafe fn grow(&mut self, n: usize);
    fn put(&mut self, bytes: &[u8]);
    /// Called while the read waits: an empty buffer may let go of its memory.
    fn waiting(&mut self) {}
}

impl Room for Vec<u8> {
    fn room(&mut self, want: usize) -> &mut [std::mem::MaybeUninit<u8>] {
        self.reserve(want);
        &mut self.spare_capacity_mut()[..want]
    }
    unsafe fn grow(&mut self, n: usize) {
        debug_assert!(self.len() + n <= self.capacity());
        // SAFETY: the caller wrote these bytes of the spare capacity.
        unsafe { self.set_len(self.len() + n) }
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes)
    }
}

/// Read buffers kept per thread for connections that wait between requests, and the largest
/// kept: a keep-alive connection gives its empty buffer back while it waits and takes one
/// again when bytes arrive, so a busy connection allocates no buffer per request.
const READ_BUFFERS_KEPT: usize = 32;
const READ_BUFFER_KEPT_BYTES: usize = 16 * 1024;

thread_local! {
    static READ_BUFFERS: std::cell::RefCell<Vec<BytesMut>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl Room for BytesMut {
    fn room(&mut self, want: usize) -> &mut [std::mem::MaybeUninit<u8>] {
        if self.capacity() == 0 {
            if let Some(kept) = READ_BUFFERS.with(|p| p.borrow_mut().pop()) {
                debug_assert!(kept.is_empty());
                *self = kept;
            }
        }
        // A kept buffer whose memory a body's piece still shares is not written over: the
        // reserve moves to new memory then.
        self.reserve(want);
        &mut self.spare_capacity_mut()[..want]
    }
    unsafe fn grow(&mut self, n: usize) {
        debug_assert!(self.len() + n <= self.capacity());
        // SAFETY: the caller wrote these bytes of the spare capacity.
        unsafe { self.set_len(self.len() + n) }
    }
    fn put(&mut self, bytes: &[u8]) {
        self.extend_from_slice(bytes)
    }
    /// An idle keep-alive connection holds no read buffer: the thread keeps it for the next
    /// connection that reads.
    fn waiting(&mut self) {
        if self.is_empty() && self.capacity() > 0 {
            let buf = std::mem::take(self);
            if buf.capacity() <= READ_BUFFER_KEPT_BYTES {
                READ_BUFFERS.with(|p| {
                    let mut p = p.borrow_mut();
                    if p.len() < READ_BUFFERS_KEPT {
                        p.push(buf);
                    }
                });
            }
        }
    }
}

impl Conn {
    /// Reads up to `want` more bytes into `dst`, waiting at most `wait`. Ok(0) = peer closed.
    ///
    /// The bytes go from the socket straight into `dst`'s spare capacity (`recv(2)`).
    /// `ready`: bytes are likely waiting (a body being received), so the socket is read at
    /// once; so it is when the last read filled its room (bytes may be left). Otherwise the
    /// socket's readiness is asked first: the stream's multishot poll, armed once per
    /// connection, says whether anything arrived since the last read, so a keep-alive
    /// connection waiting for its next request makes no system call and arms no poll per
    /// request.
    async fn recv_into<R: Room>(
        &mut self,
        (now, wait): (Instant, Duration),
        dst: &mut R,
        want: usize,
        how: Wait,
    ) -> io::Result<usize> {
        use std::os::fd::AsRawFd;
        use std::task::Poll;
        debug_assert!(want > 0);
        let wait = wait.max(Duration::from_millis(1));
        // The deadline from the caller's clock reading: the wait's timer needs none of its own.
        self.stream.set_read_timeout_until(wait, now + wait)?;
        let fd = self.stream.as_raw_fd();
        let Conn {
            stream,
            maybe_more,
            idle,
            ..
        } = self;
        // A read found nothing: only a readiness event makes the next one worth trying.
        let mut tried = false;
        std::future::poll_fn(|cx| {
            let mut read_now = (how == Wait::Body || *maybe_more) && !tried;
            loop {
                if !read_now {
                    match stream.poll_readable(cx, tried, false) {
                        Poll::Pending => {
                            if how == Wait::Idle {
                                if idle_closed() {
                                    return Poll::Ready(Err(io::ErrorKind::TimedOut.into()));
                                }
                                idle.get_or_insert_with(|| IdleEntry::new(cx.waker()));
                            }
                            dst.waiting();
                            return Poll::Pending;
                        }
                        Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                        Poll::Ready(Ok(())) => {}
                    }
                }
                read_now = false;
                match crate::sys::recv_now(fd, dst.room(want)) {
                    Some(r) => {
                        if let Ok(n) = r {
                            // SAFETY: recv wrote `n` bytes at the start of the room.
                            unsafe { dst.grow(n) };
                            stream.read_done();
                            *maybe_more = n == want;
                        }
                        return Poll::Ready(r);
                    }
                    None => {
                        tried = true;
                        *maybe_more = false;
                    }
                }
            }
        })
        .await
    }

    /// Reads up to `want` more bytes into the read buffer, waiting at most `wait` from `now`
    /// (the caller's latest clock reading). Ok(0) = peer closed. An empty buffer owns no
    /// memory while it waits.
    async fn fill(
        &mut self,
        until: (Instant, Duration),
        want: usize,
        how: Wait,
    ) -> io::Result<usize> {
        let mut rbuf = std::mem::take(&mut self.rbuf);
        let r = self.recv_into(until, &mut rbuf, want, how).await;
        rbuf.waiting();
        self.rbuf = rbuf;
        r
    }
}

enum BodyState {
    Length(u64),
    Chunked(chunked::Decoder),
    Done,
}

impl BodyState {
    /// The state before a body of this framing is read.
    fn of(kind: BodyKind) -> BodyState {
        match kind {
            BodyKind::None | BodyKind::Length(0) => BodyState::Done,
            BodyKind::Length(n) => BodyState::Length(n),
            BodyKind::Chunked => {
                BodyState::Chunked(chunked::Decoder::new(chunked::Limits::default()))
            }
        }
    }
}

/// A request as handlers see it: the parsed head plus a streaming body.
pub struct Request<'c> {
    pub head: RequestHead,
    pub peer: SocketAddr,
    conn: &'c mut Conn,
    body: BodyState,
    continue_pending: bool,
    stall: Duration,
    /// Bounds on the body's pace: when it began, its minimum average rate (bytes/s), and when
    /// the whole request must have been read.
    body_started: Option<Instant>,
    body_min_rate: u64,
    read_deadline: Instant,
    /// The body was cut for its pace (counted in the metrics).
    pace_cut: bool,
    pub body_read: u64,
    /// Largest body the handler accepts (set by the router per route); 0 = unlimited.
    pub body_max: u64,
    /// An opaque tag the handler may set (the router's route family); `usize::MAX` until set.
    pub tag: usize,
}

fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::TimedOut | io::ErrorKind::WouldBlock
    )
}

impl Request<'_> {
    /// Declared body length, if known up front.
    pub fn content_length(&self) -> Option<u64> {
        match self.head.body() {
            BodyKind::Length(n) => Some(n),
            BodyKind::None => Some(0),
            BodyKind::Chunked => None,
        }
    }

    pub fn body_finished(&self) -> bool {
        matches!(self.body, BodyState::Done)
    }

    /// The next piece of the body, None at its end. Sends `100 Continue` on first use.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, BodyError> {
        if matches!(self.body, BodyState::Done) {
            return Ok(None);
        }
        self.send_continue().await?;
        loop {
            let piece = match &mut self.body {
                BodyState::Done => return Ok(None),
                BodyState::Length(remaining) => {
                    if self.conn.rbuf.is_empty() {
                        None
                    } else {
                        let n = (*remaining).min(self.conn.rbuf.len() as u64) as usize;
                        *remaining -= n as u64;
                        let b = self.conn.rbuf.split_to(n).freeze();
                        if *remaining == 0 {
                            self.body = BodyState::Done;
                        }
                        Some(b)
                    }
                }
                BodyState::Chunked(dec) => {
                    let piece = match dec.decode(&mut self.conn.rbuf)? {
                        Some(chunked::Chunk::Data(b)) => Some(b),
                        Some(chunked::Chunk::End) => {
                            self.body = BodyState::Done;
                            return Ok(None);
                        }
                        None => None,
                    };
                    // A chunk announced larger than the body may be is refused now, not
                    // after its bytes trickled in (or the body stalled).
                    let announced = self
                        .body_read
                        .saturating_add(piece.as_ref().map_or(0, |b| b.len() as u64))
                        .saturating_add(dec.data_left());
                    if self.body_max > 0 && announced > self.body_max {
                        return Err(BodyError::TooLarge(self.body_max));
                    }
                    piece
                }
            };
            if let Some(b) = piece {
                self.count(b.len())?;
                if b.is_empty() {
                    continue;
                }
                return Ok(Some(b));
            }
            let (now, wait) = self.body_wait()?;
            // Ask for no more than the body has left (the memory is reserved per read).
            let want = match &self.body {
                BodyState::Length(left) => (*left).clamp(1, BODY_READ_BYTES as u64) as usize,
                _ => BODY_READ_BYTES,
            };
            let got = self
                .conn
                .fill((now, wait.min(self.stall)), want, Wait::Body)
                .await;
            self.paced(got)?;
        }
    }

    /// Whether the body has a Content-Length (or is read): [`Request::body_into`] reads it.
    pub fn body_is_sized(&self) -> bool {
        !matches!(self.body, BodyState::Chunked(_))
    }

    /// Receives the next bytes of a Content-Length body ([`Request::body_is_sized`]) into
    /// `dst`, at most `want` (> 0), and returns how many; 0 at the end of the body. They go
    /// from the socket straight into `dst`'s spare capacity, not through the connection's
    /// buffer. The same bounds apply as to [`Request::chunk`].
    pub async fn body_into<R: Room>(
        &mut self,
        dst: &mut R,
        want: usize,
    ) -> Result<usize, BodyError> {
        assert!(
            want > 0,
            "a read of nothing cannot tell the end of the body"
        );
        let remaining = match self.body {
            BodyState::Length(remaining) => remaining,
            BodyState::Done => return Ok(0),
            BodyState::Chunked(_) => panic!("body_into of a chunked body"),
        };
        self.send_continue().await?;
        if remaining == 0 {
            self.body = BodyState::Done;
            return Ok(0);
        }
        let want = (remaining.min(want as u64)) as usize;
        let n = if !self.conn.rbuf.is_empty() {
            // The head's read brought the first bytes of the body.
            let n = want.min(self.conn.rbuf.len());
            dst.put(&self.conn.rbuf[..n]);
            bytes::Buf::advance(&mut self.conn.rbuf, n);
            n
        } else {
            self.receive(dst, want).await?
        };
        debug_assert!(n <= want);
        self.body = match remaining - n as u64 {
            0 => BodyState::Done,
            left => BodyState::Length(left),
        };
        self.count(n)?;
        Ok(n)
    }

    /// One read of body bytes from the socket into `dst`, under the body's pace bounds.
    async fn receive<R: Room>(&mut self, dst: &mut R, want: usize) -> Result<usize, BodyError> {
        let (now, wait) = self.body_wait()?;
        let got = self
            .conn
            .recv_into((now, wait.min(self.stall)), dst, want, Wait::Body)
            .await;
        self.paced(got)
    }

    /// A body read's result as the body sees it: the end of the stream is a cut body, a
    /// timeout a stall (or a pace bound broken while waiting).
    fn paced(&mut self, got: io::Result<usize>) -> Result<usize, BodyError> {
        match got {
            Ok(0) => Err(BodyError::Closed),
            Ok(n) => Ok(n),
            Err(e) if is_timeout(&e) => {
                self.body_wait()?; // a pace deadline passed while waiting
                Err(BodyError::Timeout)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Sends `100 Continue` if the client waits for it, once.
    async fn send_continue(&mut self) -> Result<(), BodyError> {
        if self.continue_pending {
            self.continue_pending = false;
            self.conn
                .stream
                .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
                .await?;
        }
        Ok(())
    }

    /// Counts `n` body bytes read, against the handler's bound.
    fn count(&mut self, n: usize) -> Result<(), BodyError> {
        self.body_read += n as u64;
        if self.body_max > 0 && self.body_read > self.body_max {
            return Err(BodyError::TooLarge(self.body_max));
        }
        Ok(())
    }

    /// The time now and how long the next read may wait before a pace bound is broken, or the
    /// bound broken: `read_timeout` for the whole request, and `body_min_rate` on average
    /// after the grace.
    fn body_wait(&mut self) -> Result<(Instant, Duration), BodyError> {
        let now = Instant::now();
        let started = *self.body_started.get_or_insert(now);
        if now >= self.read_deadline {
            self.pace_cut = true;
            return Err(BodyError::Deadline);
        }
        let earned =
            Duration::from_secs_f64(self.body_read as f64 / self.body_min_rate.max(1) as f64);
        let rate_deadline = started + BODY_RATE_GRACE + earned;
        if now >= rate_deadline {
            self.pace_cut = true;
            return Err(BodyError::TooSlow(self.body_min_rate));
        }
        Ok((now, (rate_deadline - now).min(self.read_deadline - now)))
    }

    /// Reads and drops what is left of the body when that is at most `max` bytes; a larger
    /// rest, or a read that fails (a deadline, a malformed chunk, the handler's bound), leaves
    /// the body unfinished (the connection then closes).
    async fn discard_small_body(&mut self, max: u64) {
        if let BodyState::Length(left) = self.body {
            if left > max {
                return;
            }
        }
        let stop = self.body_read.saturating_add(max);
        while self.body_read <= stop {
            match self.chunk().await {
                Ok(Some(_)) => {}
                Ok(None) | Err(_) => return,
            }
        }
    }

    /// Reads the whole body into memory, refusing more than `max` bytes (a chunk announced
    /// beyond it at once).
    pub async fn read_to_end(&mut self, max: u64) -> Result<Bytes, BodyError> {
        if let Some(n) = self.content_length() {
            if n > max {
                return Err(BodyError::TooLarge(max));
            }
        }
        let bound = self.body_read.saturating_add(max);
        if self.body_max == 0 || self.body_max > bound {
            self.body_max = bound;
        }
        let mut out = BytesMut::new();
        while let Some(b) = self.chunk().await? {
            if (out.len() + b.len()) as u64 > max {
                return Err(BodyError::TooLarge(max));
            }
            out.extend_from_slice(&b);
        }
        Ok(out.freeze())
    }
}

/// Serves one accepted connection until it closes.
///
/// The connection's task holds only what waits for the next head (the connection, its
/// limits, the head's read): each exchange after it (the handler, the answer, the log) is a
/// future boxed per request, so an idle keep-alive connection costs no more than that (the
/// task was 2.8 KB with the exchange inline, the handler's future alone boxed). The
/// connection is made outside the async block, which then holds it once: an `async fn`
/// keeps its arguments beside the locals made of them.
pub fn serve<H: Handler>(
    stream: TcpStream,
    handler: Rc<H>,
    peer: SocketAddr,
) -> impl std::future::Future<Output = ()> {
    let mut conn = Conn::new(stream, &handler.limits());
    async move {
        // When the previous answer had gone out (None before the first request).
        let mut answered_at = None;
        // A head refused while it was read: answered after the loop, boxed, so that neither
        // the read's result (224 bytes) nor the refusal (136) takes room in every state of
        // the task.
        let refused = loop {
            // Read once per request: a reloaded configuration applies from the next one.
            let limits = handler.limits();
            let (head, started) = match read_head(&mut conn, &*handler, &limits, answered_at).await
            {
                Ok(Some(h)) => h,
                Ok(None) => break None,
                Err(refused) => break Some(Box::new(refused)),
            };
            let next = Box::pin(exchange(&mut conn, &handler, peer, &limits, head, started));
            match next.await {
                Next::Again(at) => answered_at = Some(at),
                Next::Close => break None,
                Next::Lost => return,
            }
        };
        if let Some(refused) = refused {
            Box::pin(refuse_head(&mut conn, &*handler, peer, *refused)).await;
        }
        let _ = conn.stream.shutdown(std::net::Shutdown::Both).await;
    }
}

/// What follows an exchange on its connection.
enum Next {
    /// The answer went out at this time; the next head is awaited.
    Again(Instant),
    /// The connection ends (shut down).
    Close,
    /// The answer could not be written: the connection is gone.
    Lost,
}

/// One request of `conn` whose head was read (its last bytes at `started`): handled,
/// answered and logged.
async fn exchange<H: Handler>(
    conn: &mut Conn,
    handler: &Rc<H>,
    peer: SocketAddr,
    limits: &Limits,
    head: RequestHead,
    started: Instant,
) -> Next {
    let is_head = head.method() == "HEAD";
    let http10 = head.version() == head::Version::Http10;
    let keep_alive_wanted = head.keep_alive();
    let mut req = Request::new(head, peer, conn, limits, started);
    let resp = handler.handle(&mut req).await;
    // A client still waiting for `100 Continue` has not sent its body: nothing to drop.
    if keep_alive_wanted && !resp.close && !req.continue_pending && !handler.shutting_down() {
        req.discard_small_body(UNREAD_BODY_DISCARD_BYTES_MAX).await;
    }
    let body_done = req.body_finished();
    // The head outlives the request (its borrow of the connection ends here): the access
    // log reads the method and target from it, without copies.
    let Request {
        head,
        pace_cut,
        tag,
        body_read,
        continue_pending,
        ..
    } = req;
    let received = (head.raw().len() as u64) + body_read;
    let keep = keep_alive_wanted && !resp.close && body_done && !handler.shutting_down();
    let persist = match (keep, http10) {
        (false, _) => Persist::Close,
        (true, false) => Persist::KeepAlive,
        (true, true) => Persist::KeepAlive10,
    };
    // An `Expect: 100-continue` request whose (empty) body was never asked for still gets
    // its interim answer first: clients wait for it, and botocore misreads the next
    // response on the connection when a final answer came without it.
    let interim = continue_pending && body_done;
    let sent = send_answer(conn, &resp, persist, is_head, interim).await;
    let now = Instant::now();
    let took = now - started;
    handler.answered(&Exchange {
        peer: peer.ip(),
        head: Some(&head),
        method: head.method(),
        target: head.target(),
        tag,
        status: resp.status,
        took,
        received_bytes: received,
        sent_bytes: if is_head { 0 } else { resp.body.len() },
        pace_cut,
    });
    if sent.is_err() {
        return Next::Lost;
    }
    if !keep {
        if !body_done {
            linger(conn).await;
        }
        return Next::Close;
    }
    Next::Again(now)
}

impl Conn {
    /// A new connection's socket set up: no Nagle delay, non-blocking for `sendfile` when it
    /// can be, writes bounded by the write stall.
    fn new(stream: TcpStream, limits: &Limits) -> Conn {
        let _ = stream.set_nodelay(true);
        let zero_copy = {
            use std::os::fd::AsRawFd;
            super::sendfile::set_nonblocking(stream.as_raw_fd()).is_ok()
        };
        let _ = stream.set_write_timeout(Some(limits.write_stall.max(Duration::from_secs(1))));
        Conn {
            stream,
            rbuf: BytesMut::new(),
            zero_copy,
            maybe_more: false,
            idle: None,
        }
    }
}

impl<'c> Request<'c> {
    /// The request of `head`, whose last bytes arrived at `started`; its body unread.
    fn new(
        head: RequestHead,
        peer: SocketAddr,
        conn: &'c mut Conn,
        limits: &Limits,
        started: Instant,
    ) -> Request<'c> {
        Request {
            continue_pending: head.expect_continue(),
            body: BodyState::of(head.body()),
            head,
            peer,
            conn,
            stall: limits.body_stall,
            body_started: None,
            body_min_rate: limits.body_min_rate,
            read_deadline: started + limits.read,
            pace_cut: false,
            body_read: 0,
            body_max: 0,
            tag: usize::MAX,
        }
    }
}

/// Answers a head refused while it was read (then the connection closes), and logs it like
/// any answer, with what the head's bytes say of its request line (escaped: they were not
/// validated).
async fn refuse_head<H: Handler>(
    conn: &mut Conn,
    handler: &H,
    peer: SocketAddr,
    (resp, started): (Response, Instant),
) {
    let (method, target) = head::refused_request_line(&conn.rbuf);
    let received = conn.rbuf.len() as u64;
    let sent = write_answer(conn, &resp, Persist::Close, false).await;
    handler.answered(&Exchange {
        peer: peer.ip(),
        head: None,
        method: &method,
        target: &target,
        tag: usize::MAX,
        status: resp.status,
        took: started.elapsed(),
        received_bytes: received,
        sent_bytes: if sent.is_ok() { resp.body.len() } else { 0 },
        pace_cut: false,
    });
    linger(conn).await;
}

/// Writes a request's answer, after the interim `100 Continue` when `interim`.
async fn send_answer(
    conn: &mut Conn,
    resp: &Response,
    persist: Persist,
    is_head: bool,
    interim: bool,
) -> Result<(), ()> {
    if interim {
        conn.stream
            .write_all(b"HTTP/1.1 100 Continue\r\n\r\n")
            .await
            .map_err(|_| ())?;
    }
    write_answer(conn, resp, persist, is_head)
        .await
        .map_err(|_| ())
}

/// Writes a response. An answer held in memory (most are: errors, JSON, small files from the
/// cache) is written by a small future; the writer of file and stream bodies, whose future is
/// large, is boxed.
async fn write_answer(
    conn: &mut Conn,
    r: &Response,
    persist: Persist,
    head_only: bool,
) -> io::Result<()> {
    match memory_body(r, head_only) {
        Some(body) => write_in_memory(conn, r, persist, body).await,
        None => Box::pin(write_response(conn, r, persist)).await,
    }
}

/// Drains unread request bytes for a short while so the peer sees our response, then returns.
async fn linger(conn: &mut Conn) {
    let _ = conn.stream.shutdown(std::net::Shutdown::Write).await;
    let deadline = Instant::now() + LINGER;
    let mut drained = 0usize;
    while drained < LINGER_BYTES_MAX {
        conn.rbuf.clear();
        let now = Instant::now();
        let left = deadline.saturating_duration_since(now);
        if left.is_zero() {
            break;
        }
        match conn.fill((now, left), BODY_READ_BYTES, Wait::Event).await {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
}

/// Waits for and parses the next head, and tells when its last bytes were read. Ok(None):
/// clean end (EOF, idle timeout, shutdown). Err: the refusal to send (the connection then
/// closes) and when the refused head began; its bytes stay in the read buffer.
/// `since`: when the connection's previous answer went out; None for its first request (which
/// gets `first_byte_timeout`, not `idle_timeout`).
async fn read_head<H: Handler>(
    conn: &mut Conn,
    handler: &H,
    deadlines: &Limits,
    since: Option<Instant>,
) -> Result<Option<(RequestHead, Instant)>, (Response, Instant)> {
    let limits = head::Limits::default();
    let idle = if since.is_none() {
        deadlines.first_byte.min(deadlines.idle)
    } else {
        deadlines.idle
    };
    // One clock read per pass: the time the last read returned (at first, when the previous
    // answer had gone out, or now for a new connection).
    let mut now = since.unwrap_or_else(Instant::now);
    let idle_deadline = now + idle;
    let mut head_started: Option<Instant> = None;
    // At shutdown an idle connection is closed, but only after one short look for a request
    // already sent (a connection accepted just before or while draining has one waiting).
    let mut shutdown_looked = false;
    loop {
        if !conn.rbuf.is_empty() {
            let started = *head_started.get_or_insert(now);
            match head::parse_head(&mut conn.rbuf, &limits) {
                Ok(Some(h)) => return Ok(Some((h, now))),
                Ok(None) => {}
                Err(e) => {
                    let mut r = handler.refuse(e);
                    r.close = true;
                    return Err((r, started));
                }
            }
        }
        let (wait, how) = match head_started {
            Some(t) => {
                let deadline = t + deadlines.read_header;
                if now >= deadline {
                    let mut r = handler.refuse(head::HeadError::Timeout);
                    r.close = true;
                    return Err((r, t));
                }
                (deadline - now, Wait::Event)
            }
            None => {
                if now >= idle_deadline || (handler.shutting_down() && shutdown_looked) {
                    return Ok(None);
                }
                if handler.shutting_down() {
                    shutdown_looked = true;
                    (SHUTDOWN_LOOK.min(idle_deadline - now), Wait::Event)
                } else {
                    // No periodic wake: `close_idle_connections` ends this wait at shutdown.
                    (idle_deadline - now, Wait::Idle)
                }
            }
        };
        match conn.fill((now, wait), HEAD_READ_BYTES, how).await {
            Ok(0) => return Ok(None),
            Ok(_) => {}
            Err(e) if is_timeout(&e) => {}
            Err(_) => return Ok(None),
        }
        now = Instant::now();
    }
}

/// Response heads' buffers kept per thread for reuse (a head is built for every response).
const HEAD_BUFFERS_KEPT: usize = 64;

thread_local! {
    static HEAD_BUFFERS: std::cell::RefCell<Vec<Vec<u8>>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A head buffer from the thread's pool, given back when dropped.
struct HeadBuf(Vec<u8>);

impl HeadBuf {
    fn take() -> HeadBuf {
        let buf = HEAD_BUFFERS.with(|p| p.borrow_mut().pop());
        HeadBuf(buf.unwrap_or_else(|| Vec::with_capacity(512)))
    }
}

impl Drop for HeadBuf {
    fn drop(&mut self) {
        let mut buf = std::mem::take(&mut self.0);
        if buf.capacity() <= 4096 {
            buf.clear();
            HEAD_BUFFERS.with(|p| {
                let mut p = p.borrow_mut();
                if p.len() < HEAD_BUFFERS_KEPT {
                    p.push(buf);
                }
            });
        }
    }
}

/// The bytes sent after the head when they are all in memory and few (none for HEAD, 204
/// and 304): the answer goes out in one send.
fn memory_body(r: &Response, head_only: bool) -> Option<&[u8]> {
    if head_only || r.status == 304 || r.status == 204 {
        return Some(&[]);
    }
    match &r.body {
        Body::Empty => Some(&[]),
        Body::Bytes(b) if b.len() as u64 <= INLINE_BODY_BYTES_MAX => Some(b),
        _ => None,
    }
}

/// The response's head, with the current second's HTTP-date (formatted once per second and
/// thread: the same table as the files' Last-Modified dates).
fn format_head(buf: &mut Vec<u8>, r: &Response, persist: Persist) {
    let date = super::content::http_date(crate::sys::unix_secs_coarse());
    response::write_head(buf, r, persist, date.as_str());
}

/// Writes an answer whose body is `body` ([`memory_body`]): head and body in one send.
async fn write_in_memory(
    conn: &mut Conn,
    r: &Response,
    persist: Persist,
    body: &[u8],
) -> io::Result<()> {
    let mut head = HeadBuf::take();
    format_head(&mut head.0, r, persist);
    write_both(conn, &head.0, body).await
}

/// Writes a response whose body is not [`memory_body`]'s: a large in-memory body, a file,
/// a stream, byte ranges of a file.
async fn write_response(conn: &mut Conn, r: &Response, persist: Persist) -> io::Result<()> {
    let mut head = HeadBuf::take();
    format_head(&mut head.0, r, persist);
    let out: &[u8] = &head.0;
    match &r.body {
        Body::Empty => unreachable!("an empty body is written by write_in_memory"),
        Body::Bytes(b) => {
            conn.stream.write_all(out).await?;
            conn.stream.write_all(b).await
        }
        Body::File(f) => write_file_body(conn, out, f).await,
        Body::Stream(st) => write_stream_body(conn, out, st).await,
        Body::Multi { file, parts, tail } => {
            conn.stream.write_all(out).await?;
            for (part_head, offset, len) in parts {
                conn.stream.write_all(part_head).await?;
                stream_file(conn, file, *offset, *len, super::sendfile::Read::Cached).await?;
            }
            conn.stream.write_all(tail).await
        }
    }
}

/// The head, then a file body: from the page cache with `sendfile`, in one send with the
/// head when small, else streamed.
async fn write_file_body(conn: &mut Conn, out: &[u8], f: &response::FileBody) -> io::Result<()> {
    if let Some(done) = send_resident(conn, out, f).await {
        return done;
    }
    if f.len <= INLINE_BODY_BYTES_MAX {
        // One read into glommio's buffer and one vectored send of head and body: no
        // copy in user space.
        let got = f
            .file
            .read_at(f.offset, f.len as usize)
            .await
            .map_err(io::Error::from)?;
        if got.len() as u64 == f.len {
            return write_both(conn, out, &got).await;
        }
        let data = read_exact_at(&f.file, f.offset, f.len as usize).await?;
        return write_both(conn, out, &data).await;
    }
    conn.stream.write_all(out).await?;
    // A range read once and not in the page cache goes around it (sendfile.rs).
    use std::os::fd::AsRawFd;
    let how = if f.once && !super::sendfile::resident(f.file.as_raw_fd(), f.offset, f.len) {
        super::sendfile::Read::Direct
    } else {
        super::sendfile::Read::Cached
    };
    stream_file(conn, &f.file, f.offset, f.len, how).await
}

/// The head, then a streamed body of the announced length (a source that ends early is an
/// error: the connection closes, so the client sees a short body).
async fn write_stream_body(
    conn: &mut Conn,
    out: &[u8],
    s: &response::StreamBody,
) -> io::Result<()> {
    conn.stream.write_all(out).await?;
    let Some(mut chunks) = s.chunks.borrow_mut().take() else {
        return Err(io::Error::other("stream body written twice"));
    };
    let mut left = s.len;
    while left > 0 {
        use futures_lite::StreamExt;
        let Some(chunk) = chunks.next().await else {
            // The source ended early: close, so the client sees a short body.
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "streamed body ended early",
            ));
        };
        let chunk = chunk?;
        let n = (chunk.len() as u64).min(left) as usize;
        conn.stream.write_all(&chunk[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

/// Bodies at least this large, when all their pages are cached, go out with `sendfile` at once.
const SEND_RESIDENT_BYTES_MIN: u64 = 16 * 1024;

/// Sends the head and a file body whose pages are all in the page cache without copying it
/// through user space: the head with `MSG_MORE`, the body with `sendfile` on the executor (it
/// cannot block: the pages are cached and the socket is non-blocking), and whatever the
/// socket did not take the ordinary way. None when the range is not resident (or too small to
/// be worth it): nothing was sent then.
async fn send_resident(
    conn: &mut Conn,
    head: &[u8],
    f: &response::FileBody,
) -> Option<io::Result<()>> {
    use std::os::fd::AsRawFd;
    if !conn.zero_copy
        || f.len < SEND_RESIDENT_BYTES_MIN
        || !super::sendfile::resident(f.file.as_raw_fd(), f.offset, f.len)
    {
        return None;
    }
    let sock = conn.stream.as_raw_fd();
    let sent_head = match sendmsg_now(sock, head, &[], true) {
        Ok(n) => n,
        Err(e) => return Some(Err(e)),
    };
    if sent_head < head.len() {
        if let Err(e) = conn.stream.write_all(&head[sent_head..]).await {
            return Some(Err(e));
        }
        return Some(
            stream_file(
                conn,
                &f.file,
                f.offset,
                f.len,
                super::sendfile::Read::Cached,
            )
            .await,
        );
    }
    if f.len >= SENDFILE_BYTES_MIN {
        super::sendfile::keep_unsent_low(sock);
    }
    let sent = match super::sendfile::send_now(sock, f.file.as_raw_fd(), f.offset, f.len) {
        Ok(n) => n,
        Err(e) => return Some(Err(e)),
    };
    if sent == f.len {
        return Some(Ok(()));
    }
    Some(
        stream_file(
            conn,
            &f.file,
            f.offset + sent,
            f.len - sent,
            super::sendfile::Read::Cached,
        )
        .await,
    )
}

/// Writes `head` then `body`: first as one non-blocking `sendmsg` of both (the common case on
/// a socket with room: one syscall, no copy into a joined buffer), then whatever is left through
/// the stream (which waits for room, with the write timeout).
async fn write_both(conn: &mut Conn, head: &[u8], body: &[u8]) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let sent = sendmsg_now(conn.stream.as_raw_fd(), head, body, false)?;
    if sent < head.len() {
        conn.stream.write_all(&head[sent..]).await?;
        return conn.stream.write_all(body).await;
    }
    let done = sent - head.len();
    if done < body.len() {
        conn.stream.write_all(&body[done..]).await?;
    }
    Ok(())
}

/// One `sendmsg(MSG_DONTWAIT)` of `a` then `b`; the bytes it took (0 when the socket is full).
/// `more`: more data follows at once (`MSG_MORE`: the kernel holds a short segment back).
fn sendmsg_now(fd: std::os::fd::RawFd, a: &[u8], b: &[u8], more: bool) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: a.as_ptr() as *mut libc::c_void,
            iov_len: a.len(),
        },
        libc::iovec {
            iov_base: b.as_ptr() as *mut libc::c_void,
            iov_len: b.len(),
        },
    ];
    // SAFETY: a zeroed msghdr is valid; it points at `iov`, which outlives the call, and the
    // iovecs describe the live slices `a` and `b`, which sendmsg only reads.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = iov.as_ptr() as *mut libc::iovec;
    msg.msg_iovlen = iov.len();
    let flags = libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL | if more { libc::MSG_MORE } else { 0 };
    loop {
        // SAFETY: see above; `fd` is the connection's open socket.
        let n = unsafe { crate::sys::sendmsg(fd, &msg, flags) };
        if n >= 0 {
            return Ok(n as usize);
        }
        let e = io::Error::last_os_error();
        match e.kind() {
            io::ErrorKind::Interrupted => continue,
            io::ErrorKind::WouldBlock => return Ok(0),
            _ => return Err(e),
        }
    }
}

/// Reads `len` bytes of `file` from `offset`; a file that ends before is an error (its
/// record says otherwise).
pub async fn read_exact_at(
    file: &glommio::io::BufferedFile,
    offset: u64,
    len: usize,
) -> io::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        let got = file
            .read_at(offset + out.len() as u64, len - out.len())
            .await
            .map_err(io::Error::from)?;
        if got.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its record",
            ));
        }
        out.extend_from_slice(&got);
    }
    Ok(out)
}

/// Bodies at least this large go out with sendfile (zero copy) when a slot is free.
const SENDFILE_BYTES_MIN: u64 = 1 << 20;

/// Streams `len` bytes from `offset`: on a helper thread for large ranges (read as `how`
/// says), else io_uring reads of the next chunk overlapped with sending the current one.
async fn stream_file(
    conn: &mut Conn,
    file: &glommio::io::BufferedFile,
    offset: u64,
    len: u64,
    how: super::sendfile::Read,
) -> io::Result<()> {
    if len >= SENDFILE_BYTES_MIN {
        use std::os::fd::AsRawFd;
        let stall = conn
            .stream
            .write_timeout()
            .unwrap_or(Duration::from_secs(60));
        let sent = super::sendfile::send(
            conn.stream.as_raw_fd(),
            file.as_raw_fd(),
            offset,
            len,
            stall,
            how,
        )
        .await;
        if let Some(r) = sent {
            return r;
        }
    }
    copy_file(conn, file, offset, len).await
}

/// Streams `len` bytes from `offset`, reading the next chunk while the current one is sent.
async fn copy_file(
    conn: &mut Conn,
    file: &glommio::io::BufferedFile,
    offset: u64,
    len: u64,
) -> io::Result<()> {
    let end = offset + len;
    let mut pos = offset;
    let first = (FILE_CHUNK_BYTES as u64).min(end - pos) as usize;
    let mut current = file.read_at(pos, first).await.map_err(io::Error::from)?;
    loop {
        if current.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "file shorter than its record",
            ));
        }
        pos += current.len() as u64;
        if pos >= end {
            return conn.stream.write_all(&current).await;
        }
        let want = (FILE_CHUNK_BYTES as u64).min(end - pos) as usize;
        let (written, next) =
            futures_lite::future::zip(conn.stream.write_all(&current), file.read_at(pos, want))
                .await;
        written?;
        current = next.map_err(io::Error::from)?;
    }
}
