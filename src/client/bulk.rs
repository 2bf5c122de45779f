//! A large file's fetch from a plain-HTTP peer without hyper: one GET on a connection of its
//! own, the response head parsed with httparse, and the body read straight into the caller's
//! memory, one `recv(2)` per read. A replicated file is written around the page cache
//! (`O_DIRECT`), which needs aligned memory; hyper reads a body into buffers of its own, so
//! every byte was copied once more, on an executor that shares two cores with the file's md5
//! threads. Here the socket fills the direct-write buffers themselves.
//!
//! Only a `200` framed by `Content-Length` is read here. A response framed otherwise
//! (chunked, or to the connection's end) is [`Opened::Unframed`]: the caller asks again
//! through `peer`'s hyper client, as it does for a TLS peer.

use super::peer::Pool;
use std::io;
use std::time::Instant;

/// The largest response head read (a file server's answer to a GET is a few hundred bytes).
const HEAD_BYTES_MAX: usize = 16 << 10;
/// Headers parsed in a response head.
const HEADERS_MAX: usize = 64;

/// What a bulk GET found.
pub enum Opened {
    /// A `200` with its body to read.
    Body(Box<Body>),
    /// Another status: the body is not read.
    Status(u16),
    /// A `200` not framed by `Content-Length` (or a TLS peer, a target that is not plain
    /// ASCII): not read here.
    Unframed,
}

/// A response body of known length, read from its own connection (closed when dropped).
pub struct Body {
    stream: glommio::net::TcpStream,
    /// Body bytes not yet given out.
    left: u64,
    /// Body bytes that came with the head, given out first.
    early: Vec<u8>,
    taken: usize,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, why.to_string())
}

/// GETs `<base><path>` with the peer headers and `extra` ones, on a new connection, and reads
/// the response head before `deadline`.
pub async fn get(
    pool: &Pool,
    base: &str,
    path: &str,
    extra: &[(&str, &str)],
    deadline: Instant,
) -> io::Result<Opened> {
    let url = super::parse_url(base)?;
    let (target, headers) = super::peer::target(base, path)?;
    // What hyper would refuse or encode differently goes through hyper.
    if url.tls || !target.bytes().all(|b| b.is_ascii_graphic()) {
        return Ok(Opened::Unframed);
    }
    let mut head = format!("GET {target} HTTP/1.1\r\n");
    for (name, value) in headers
        .iter()
        .map(|(n, v)| (*n, v.as_str()))
        .chain(extra.iter().copied())
    {
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a header value with a line break",
            ));
        }
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("Connection: close\r\n\r\n");
    let left = deadline.saturating_duration_since(Instant::now());
    let mut stream = pool
        .connect(base, left.min(super::peer::CONNECT_TIMEOUT))
        .await?;
    stream.set_nodelay(true)?;
    super::peer::within(deadline, async {
        use futures_lite::AsyncWriteExt;
        stream.write_all(head.as_bytes()).await?;
        read_head(stream).await
    })
    .await
}

/// Reads and parses the response head.
async fn read_head(mut stream: glommio::net::TcpStream) -> io::Result<Opened> {
    let mut buf: Vec<u8> = Vec::with_capacity(HEAD_BYTES_MAX);
    loop {
        let room = buf.spare_capacity_mut();
        if room.is_empty() {
            return Err(invalid("response head too large"));
        }
        let n = recv(&mut stream, room).await?;
        if n == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the peer closed before its answer's head",
            ));
        }
        // SAFETY: recv wrote `n` bytes at the start of the spare capacity.
        unsafe { buf.set_len(buf.len() + n) };
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut resp = httparse::Response::new(&mut headers);
        let end = match resp.parse(&buf) {
            Ok(httparse::Status::Complete(end)) => end,
            Ok(httparse::Status::Partial) => continue,
            Err(e) => return Err(invalid(&format!("bad response head: {e}"))),
        };
        let code = resp.code.unwrap_or(0);
        if code != 200 {
            return Ok(Opened::Status(code));
        }
        let mut length = None;
        for h in resp.headers.iter() {
            if h.name.eq_ignore_ascii_case("transfer-encoding") {
                return Ok(Opened::Unframed);
            }
            if h.name.eq_ignore_ascii_case("content-length")
                && !crate::codec::content_length(h.value, &mut length)
            {
                return Err(invalid("bad or conflicting Content-Length"));
            }
        }
        let Some(length) = length else {
            return Ok(Opened::Unframed);
        };
        let mut early = buf.split_off(end);
        early.truncate(usize::try_from(length).unwrap_or(usize::MAX));
        return Ok(Opened::Body(Box::new(Body {
            stream,
            left: length,
            early,
            taken: 0,
        })));
    }
}

/// One `recv(2)` into `room` ([`super::peer::poll_recv`]): the bytes it wrote, 0 at the
/// stream's end.
async fn recv(
    stream: &mut glommio::net::TcpStream,
    room: &mut [std::mem::MaybeUninit<u8>],
) -> io::Result<usize> {
    std::future::poll_fn(|cx| super::peer::poll_recv(stream, cx, room)).await
}

impl Body {
    /// The body's bytes not read yet.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// Reads the body's next bytes into `room` (at most its length, at most what is left):
    /// how many. 0 only when the body is whole; a connection that ends before is an
    /// `UnexpectedEof` error. The caller bounds the wait.
    pub async fn read(&mut self, room: &mut [std::mem::MaybeUninit<u8>]) -> io::Result<usize> {
        let want = room
            .len()
            .min(usize::try_from(self.left).unwrap_or(usize::MAX));
        if want == 0 {
            return Ok(0);
        }
        let n = if self.taken < self.early.len() {
            let n = want.min(self.early.len() - self.taken);
            let from = &self.early[self.taken..self.taken + n];
            for (to, b) in room[..n].iter_mut().zip(from) {
                to.write(*b);
            }
            self.taken += n;
            n
        } else {
            let n = recv(&mut self.stream, &mut room[..want]).await?;
            if n == 0 {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    format!("the peer closed {} bytes before the body's end", self.left),
                ));
            }
            n
        };
        self.left -= n as u64;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::super::peer::tests::{on_executor, read_request};
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    /// A peer that reads one request head, hands it to the test, and writes `answer` in
    /// the pieces given (pausing between them), then closes.
    fn peer(answer: Vec<Vec<u8>>) -> (String, std::thread::JoinHandle<String>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let base = format!("http://{}/prefix/", listener.local_addr().unwrap());
        let t = std::thread::spawn(move || {
            let (mut s, _) = listener.accept().unwrap();
            let got = read_request(&mut s);
            for piece in answer {
                s.write_all(&piece).unwrap();
                std::thread::sleep(Duration::from_millis(20));
            }
            String::from_utf8(got).unwrap()
        });
        (base, t)
    }

    fn soon() -> Instant {
        Instant::now() + Duration::from_secs(10)
    }

    /// Reads the whole body in reads of at most `step` bytes.
    async fn read_all(body: &mut Body, step: usize) -> io::Result<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut room = vec![std::mem::MaybeUninit::<u8>::uninit(); step];
            let n = body.read(&mut room).await?;
            if n == 0 {
                return Ok(out);
            }
            // SAFETY: `read` wrote the first `n` bytes.
            out.extend(room[..n].iter().map(|b| unsafe { b.assume_init() }));
        }
    }

    #[test]
    fn a_body_framed_by_its_length_is_read_whole_from_the_head_on_and_the_request_is_a_peers() {
        let body: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 251) as u8).collect();
        let mut first = b"HTTP/1.1 200 OK\r\nContent-Length: 300000\r\nServer: x\r\n\r\n".to_vec();
        first.extend_from_slice(&body[..1000]);
        let (base, t) = peer(vec![
            first,
            body[1000..150_000].to_vec(),
            body[150_000..].to_vec(),
        ]);
        let got = on_executor(async move {
            let pool = Pool::default();
            let Opened::Body(mut b) = get(
                &pool,
                &base,
                "/group1/a%20b.bin",
                &[("X-Extra", "1")],
                soon(),
            )
            .await
            .unwrap() else {
                panic!("a body to read");
            };
            assert_eq!(b.left(), 300_000);
            let got = read_all(&mut b, 4096 * 3 + 5).await.unwrap();
            assert_eq!(b.left(), 0);
            got
        });
        assert!(got == body, "the body read differs");
        let request = t.join().unwrap();
        assert!(
            request.starts_with("GET /prefix/group1/a%20b.bin HTTP/1.1\r\n"),
            "{request}"
        );
        for h in [
            "Host: 127.0.0.1:",
            "User-Agent: Go-FastDFS\r\n",
            "X-Extra: 1\r\n",
            "Connection: close\r\n",
        ] {
            assert!(request.contains(h), "{h:?} missing from {request}");
        }
    }

    #[test]
    fn answers_not_framed_by_content_length_and_other_statuses_are_told_apart() {
        let cases: [(&[u8], &str); 4] = [
            (
                b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                "unframed",
            ),
            (b"HTTP/1.1 200 OK\r\n\r\nto the end", "unframed"),
            (
                b"HTTP/1.1 404 Not Found\r\nContent-Length: 3\r\n\r\nno!",
                "404",
            ),
            (
                b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
                "error",
            ),
        ];
        for (answer, want) in cases {
            let (base, t) = peer(vec![answer.to_vec()]);
            let got = on_executor(async move {
                match get(&Pool::default(), &base, "/f", &[], soon()).await {
                    Ok(Opened::Unframed) => "unframed".to_string(),
                    Ok(Opened::Status(s)) => s.to_string(),
                    Ok(Opened::Body(_)) => "body".to_string(),
                    Err(_) => "error".to_string(),
                }
            });
            assert_eq!(got, want, "{}", String::from_utf8_lossy(answer));
            t.join().unwrap();
        }
    }

    #[test]
    fn a_body_cut_short_or_a_head_without_end_is_an_error_never_a_short_file() {
        let (base, t) = peer(vec![
            b"HTTP/1.1 200 OK\r\nContent-Length: 10000\r\n\r\n".to_vec(),
            vec![1; 4000],
        ]);
        let e = on_executor(async move {
            let Opened::Body(mut b) = get(&Pool::default(), &base, "/f", &[], soon())
                .await
                .unwrap()
            else {
                panic!("a body to read");
            };
            read_all(&mut b, 1 << 20).await.unwrap_err()
        });
        assert_eq!(e.kind(), io::ErrorKind::UnexpectedEof, "{e}");
        t.join().unwrap();

        let endless = vec![b'a'; HEAD_BYTES_MAX + 10];
        let mut head = b"HTTP/1.1 200 OK\r\nX-Long: ".to_vec();
        head.extend_from_slice(&endless);
        let (base, t) = peer(vec![head]);
        let e =
            on_executor(async move { get(&Pool::default(), &base, "/f", &[], soon()).await.err() });
        assert_eq!(e.expect("refused").kind(), io::ErrorKind::InvalidData);
        let _ = t.join();
    }

    #[test]
    fn a_target_hyper_would_refuse_and_a_tls_peer_are_left_to_hyper() {
        on_executor(async move {
            let pool = Pool::default();
            let tls = get(&pool, "https://127.0.0.1:1", "/f", &[], soon())
                .await
                .unwrap();
            assert!(matches!(tls, Opened::Unframed));
            let spaced = get(&pool, "http://127.0.0.1:1", "/a b", &[], soon())
                .await
                .unwrap();
            assert!(matches!(spaced, Opened::Unframed));
        });
    }
}
