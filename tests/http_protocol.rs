//! HTTP/1.x on the wire (docs/PROTOCOL.md §1, docs/DEFECTS.md #38, #39): keep-alive, pipelining, HTTP/1.0,
//! chunked and `Expect: 100-continue` uploads, malformed or hostile heads, body limits,
//! slowloris deadlines, graceful shutdown, path canonicalization and CORS.
//! Most tests speak raw HTTP over a `TcpStream` so that framing is observed byte for byte.
mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Raw HTTP client helpers
// ---------------------------------------------------------------------------------------------

/// Parses one response from the front of `buf`: Some((response, bytes used)) when complete.
/// `head_only`: the request was HEAD (no body follows whatever Content-Length says).
/// `eof`: no more bytes will come (a body without a length ends here).
fn parse_response(buf: &[u8], head_only: bool, eof: bool) -> Option<(Resp, usize)> {
    let (r, body_start) = parse_head(buf)?;
    let status = r.status;
    if head_only || (100..200).contains(&status) || status == 204 || status == 304 {
        return Some((r, body_start));
    }
    if let Some(cl) = r.header("content-length") {
        let n: usize = cl.parse().expect("numeric Content-Length");
        if buf.len() < body_start + n {
            return None;
        }
        let body = buf[body_start..body_start + n].to_vec();
        return Some((Resp { body, ..r }, body_start + n));
    }
    if eof {
        let body = buf[body_start..].to_vec();
        return Some((Resp { body, ..r }, buf.len()));
    }
    None
}

/// Every complete response in `bytes` (read until the server closed).
fn parse_all(bytes: &[u8]) -> Vec<Resp> {
    let mut out = Vec::new();
    let mut pos = 0;
    while pos < bytes.len() {
        match parse_response(&bytes[pos..], false, true) {
            Some((r, n)) => {
                out.push(r);
                pos += n;
            }
            None => break,
        }
    }
    out
}

/// Sends `bytes` on a new connection and parses every response until the server closes.
fn exchange(addr: &str, bytes: &[u8]) -> Vec<Resp> {
    parse_all(&raw(addr, bytes, Duration::from_secs(10)))
}

/// A persistent raw connection.
struct RawConn {
    s: TcpStream,
    buf: Vec<u8>,
}

impl RawConn {
    fn open(addr: &str) -> RawConn {
        let s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        RawConn { s, buf: Vec::new() }
    }

    fn send(&mut self, bytes: &[u8]) {
        self.s.write_all(bytes).unwrap();
    }

    /// Reads more bytes; false on EOF, reset or timeout.
    fn fill(&mut self) -> bool {
        let mut b = [0u8; 65536];
        match self.s.read(&mut b) {
            Ok(0) | Err(_) => false,
            Ok(n) => {
                self.buf.extend_from_slice(&b[..n]);
                true
            }
        }
    }

    /// The next response; panics when the connection ends (or stays silent 10 s) before it.
    fn response(&mut self, head_only: bool) -> Resp {
        loop {
            if let Some((r, n)) = parse_response(&self.buf, head_only, false) {
                self.buf.drain(..n);
                return r;
            }
            if !self.fill() {
                if let Some((r, n)) = parse_response(&self.buf, head_only, true) {
                    self.buf.drain(..n);
                    return r;
                }
                panic!(
                    "connection ended without a full response; got {:?}",
                    String::from_utf8_lossy(&self.buf)
                );
            }
        }
    }

    /// True when the server closes the connection (EOF or reset) within `within`, having
    /// sent no further bytes.
    fn closes_within(&mut self, within: Duration) -> bool {
        let deadline = Instant::now() + within;
        let mut b = [0u8; 4096];
        while Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(10))))
                .unwrap();
            match self.s.read(&mut b) {
                Ok(0) => return self.buf.is_empty(),
                Ok(n) => self.buf.extend_from_slice(&b[..n]),
                Err(e)
                    if e.kind() == std::io::ErrorKind::WouldBlock
                        || e.kind() == std::io::ErrorKind::TimedOut =>
                {
                    return false
                }
                Err(_) => return self.buf.is_empty(),
            }
        }
        false
    }
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n").into_bytes()
}

/// A complete upload request (multipart, Content-Length framing) for `data` named `name`.
fn upload_request(name: &str, data: &[u8]) -> Vec<u8> {
    let (ct, body) = multipart(&[("output", "json")], Some((name, data)));
    let mut req = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(&body);
    req
}

/// `body` in chunked transfer coding, `piece` bytes per chunk.
fn chunk_encode(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for c in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", c.len()).as_bytes());
        out.extend_from_slice(c);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

fn is_timeout(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
    )
}

/// A plain request from another client succeeds (the server is not blocked by a slow one).
fn assert_other_clients_served(s: &Server, path: &str, expect: &str) {
    let started = Instant::now();
    let (code, body) = call(agent().get(&s.url(path)).timeout(Duration::from_secs(3)));
    assert_eq!((code, body.as_str()), (200, expect));
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "another client waited {:?}",
        started.elapsed()
    );
}

// ---------------------------------------------------------------------------------------------
// Connection management
// ---------------------------------------------------------------------------------------------

#[test]
fn two_requests_on_one_keep_alive_connection_both_get_answers() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "ka/a.txt", b"first file\n");
    let b = put_file(&s, "ka/b.txt", b"second file\n");
    let mut c = RawConn::open(&s.addr());
    c.send(&get(&a));
    let r1 = c.response(false);
    assert_eq!((r1.status, r1.text().as_str()), (200, "first file\n"));
    assert_ne!(
        r1.header("connection").map(|v| v.to_ascii_lowercase()),
        Some("close".into())
    );
    c.send(&get(&b));
    let r2 = c.response(false);
    assert_eq!((r2.status, r2.text().as_str()), (200, "second file\n"));
}

#[test]
fn every_answer_carries_the_current_date_and_a_file_its_last_modified_date() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "dated/a.txt", b"dated\n");
    let mut c = RawConn::open(&s.addr());
    let near_now = |v: &str| {
        let t = httpdate::parse_http_date(v).unwrap_or_else(|e| panic!("{v:?}: {e}"));
        let off = t
            .duration_since(std::time::SystemTime::now())
            .unwrap_or_else(|e| e.duration());
        assert!(off < Duration::from_secs(5), "{v:?} is {off:?} from now");
    };
    for path in [a.as_str(), "/group1/no/such/file.txt"] {
        c.send(&get(path));
        let r = c.response(false);
        near_now(r.header("date").expect("a Date header"));
        if r.status == 200 {
            // The file was written a moment ago: its Last-Modified date is this second's too.
            near_now(r.header("last-modified").expect("a Last-Modified header"));
        }
    }
}

#[test]
fn two_pipelined_requests_in_one_write_get_two_responses_in_order() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "pipe/a.txt", b"AAAA");
    let b = put_file(&s, "pipe/b.txt", b"BBBBBBBB");
    let mut c = RawConn::open(&s.addr());
    let mut both = get(&a);
    both.extend_from_slice(&get(&b));
    c.send(&both);
    let r1 = c.response(false);
    let r2 = c.response(false);
    assert_eq!((r1.status, r1.text().as_str()), (200, "AAAA"));
    assert_eq!((r2.status, r2.text().as_str()), (200, "BBBBBBBB"));
}

#[test]
fn bytes_left_in_the_socket_after_a_full_read_are_read_on_a_kept_alive_connection() {
    // The server's readiness poll reports arrivals, not bytes left: whatever one read did not
    // take must still be read without waiting for more to come. Each case follows a first
    // request, so that the connection is kept alive and waits as between requests.
    let s = Server::start(json!({}));
    let a = put_file(&s, "left/a.txt", b"AAAA");
    let mut c = RawConn::open(&s.addr());
    c.send(&get(&a));
    assert_eq!(c.response(false).status, 200);

    // A head longer than one read of a head, in one write.
    let mut big = format!("GET {a} HTTP/1.1\r\nHost: 127.0.0.1\r\n");
    for i in 0..60 {
        big.push_str(&format!("X-Pad-{i}: {}\r\n", "p".repeat(100)));
    }
    big.push_str("\r\n");
    assert!(big.len() > 6000);
    c.send(big.as_bytes());
    let r = c.response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "AAAA"));

    // Eight pipelined requests of 1 KiB each, in one write.
    let mut eight = Vec::new();
    for i in 0..8 {
        eight.extend_from_slice(
            format!(
                "GET {a} HTTP/1.1\r\nHost: 127.0.0.1\r\nX-N: {i}{}\r\n\r\n",
                "q".repeat(1000)
            )
            .as_bytes(),
        );
    }
    c.send(&eight);
    for _ in 0..8 {
        let r = c.response(false);
        assert_eq!((r.status, r.text().as_str()), (200, "AAAA"));
    }

    // An upload whose body ends where the next request begins, both in one write.
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let mut both = upload_request("left.bin", &data);
    both.extend_from_slice(&get(&a));
    c.send(&both);
    let up = c.response(false);
    assert_eq!(up.status, 200, "{}", up.text());
    let r = c.response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "AAAA"));
}

#[test]
fn http_1_0_request_is_answered_then_the_connection_closes() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "v10/a.txt", b"old client\n");
    let mut c = RawConn::open(&s.addr());
    c.send(format!("GET {a} HTTP/1.0\r\n\r\n").as_bytes());
    let r = c.response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "old client\n"));
    assert!(
        c.closes_within(Duration::from_secs(5)),
        "HTTP/1.0 connection stayed open"
    );
}

#[test]
fn http_1_0_with_connection_keep_alive_is_told_keep_alive_and_stays_open() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "v10ka/a.txt", b"one");
    let b = put_file(&s, "v10ka/b.txt", b"two");
    let mut c = RawConn::open(&s.addr());
    c.send(format!("GET {a} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
    let r1 = c.response(false);
    assert_eq!((r1.status, r1.text().as_str()), (200, "one"));
    c.send(format!("GET {b} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n").as_bytes());
    let r2 = c.response(false);
    assert_eq!((r2.status, r2.text().as_str()), (200, "two"));
    // An HTTP/1.0 client (ab -k, old proxies) only reuses the connection when the response
    // says keep-alive (RFC 9112 Appendix C.2.2).
    assert_eq!(
        r1.header("connection").map(|v| v.to_ascii_lowercase()),
        Some("keep-alive".into()),
        "headers: {:?}",
        r1.headers
    );
}

#[test]
fn connection_close_is_honoured_after_the_response() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "close/a.txt", b"bye");
    let mut c = RawConn::open(&s.addr());
    c.send(format!("GET {a} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes());
    let r = c.response(false);
    assert_eq!((r.status, r.text().as_str()), (200, "bye"));
    assert_eq!(r.header("connection"), Some("close"));
    assert!(c.closes_within(Duration::from_secs(5)));
}

// ---------------------------------------------------------------------------------------------
// Request bodies
// ---------------------------------------------------------------------------------------------

#[test]
fn a_chunked_multipart_upload_is_stored_intact() {
    let s = Server::start(json!({}));
    let data = noise(200_000, 1);
    let (ct, body) = multipart(&[("output", "json")], Some(("chunked.bin", &data)));
    let mut req = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(&chunk_encode(&body, 7_777));
    let mut c = RawConn::open(&s.addr());
    c.send(&req);
    let r = c.response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["md5"], md5_hex(&data));
    assert_eq!(v["size"], data.len());
    // The connection is still usable: the chunked body was consumed exactly.
    c.send(&get(v["path"].as_str().unwrap()));
    let got = c.response(false);
    assert_eq!(got.status, 200);
    assert!(got.body == data, "downloaded bytes differ");
}

#[test]
fn expect_100_continue_gets_100_before_the_body_is_sent() {
    let s = Server::start(json!({}));
    let data = noise(50_000, 2);
    let (ct, body) = multipart(&[("output", "json")], Some(("expect.bin", &data)));
    let mut c = RawConn::open(&s.addr());
    c.s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    c.send(
        format!(
            "POST /group1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nExpect: 100-continue\r\n\r\n",
            body.len()
        )
        .as_bytes(),
    );
    let interim = c.response(false);
    assert_eq!(interim.status, 100, "expected 100 Continue before the body");
    c.send(&body);
    let r = c.response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["md5"], md5_hex(&data));
}

/// botocore waits for the interim answer even when the body is empty, and misreads the next
/// response on a kept-alive connection when a final answer came without it.
#[test]
fn expect_100_continue_with_an_empty_body_still_gets_the_interim_answer_first() {
    let s = Server::start(json!({}));
    let mut c = RawConn::open(&s.addr());
    c.send(b"GET /group1/status HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nExpect: 100-continue\r\n\r\n");
    assert_eq!(
        c.response(false).status,
        100,
        "the interim answer comes first"
    );
    assert_eq!(c.response(false).status, 200);
    // The connection stays usable: the next request gets its own answer.
    c.send(b"GET /group1/status HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(c.response(false).status, 200);
}

#[test]
fn curl_uploads_a_2_mib_file_with_expect_100_continue() {
    let s = Server::start(json!({}));
    let tmp = tempfile::tempdir().unwrap();
    let data = noise(2 << 20, 3);
    let f = tmp.path().join("two_mib.bin");
    std::fs::write(&f, &data).unwrap();
    let mut child = Command::new("curl")
        .args(["-sS", "-v", "--max-time", "30", "-F"])
        .arg(format!("file=@{}", f.display()))
        .args(["-F", "output=json"])
        .arg(s.url("/group1/upload"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let code = wait_child(&mut child, Duration::from_secs(40));
    let mut out = String::new();
    let mut err = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert_eq!(code, Some(0), "curl failed: {err}");
    assert!(
        err.contains("> Expect: 100-continue"),
        "curl did not ask: {err}"
    );
    assert!(
        err.contains("< HTTP/1.1 100 Continue"),
        "no 100 Continue: {err}"
    );
    let v: Value = serde_json::from_str(&out).unwrap_or_else(|_| panic!("not json: {out}"));
    assert_eq!(v["md5"], md5_hex(&data));
    assert_eq!(v["size"], data.len());
}

// ---------------------------------------------------------------------------------------------
// Malformed or hostile heads
// ---------------------------------------------------------------------------------------------

fn first_status(addr: &str, bytes: &[u8]) -> u16 {
    let rs = exchange(addr, bytes);
    assert!(!rs.is_empty(), "no response at all");
    rs[0].status
}

#[test]
fn a_20_kib_header_field_gets_431() {
    let s = Server::start(json!({}));
    let big = "b".repeat(20 * 1024);
    let req = format!("GET /group1/x.txt HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    assert_eq!(first_status(&s.addr(), req.as_bytes()), 431);
}

#[test]
fn a_10_kib_request_uri_gets_414() {
    let s = Server::start(json!({}));
    let long = "u".repeat(10 * 1024);
    let req = format!("GET /group1/{long} HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(first_status(&s.addr(), req.as_bytes()), 414);
}

#[test]
fn garbage_instead_of_a_request_gets_400() {
    let s = Server::start(json!({}));
    let req = b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 garbage \x00\r\n\r\n";
    assert_eq!(first_status(&s.addr(), req), 400);
}

#[test]
fn http_1_1_without_host_gets_400() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "nohost/a.txt", b"x");
    let req = format!("GET {a} HTTP/1.1\r\nUser-Agent: t\r\n\r\n");
    assert_eq!(first_status(&s.addr(), req.as_bytes()), 400);
}

#[test]
fn a_host_header_that_is_no_host_gets_400_and_an_empty_one_is_served() {
    // RFC 9112 §3.2: an invalid Host field value is a 400 (as go-fastdfs' Go server answers);
    // an empty one is allowed (the target names no authority).
    let s = Server::start(json!({}));
    let a = put_file(&s, "host/a.txt", b"x");
    for bad in ["a b", "a\"b", "a<b>", "a/b", "u@h", "a\\b"] {
        let req = format!("GET {a} HTTP/1.1\r\nHost: {bad}\r\n\r\n");
        let rs = exchange(&s.addr(), req.as_bytes());
        assert_eq!(rs.len(), 1, "{bad:?}");
        assert_eq!(rs[0].status, 400, "{bad:?}: {}", rs[0].text());
        fail_message(&rs[0]);
    }
    for good in [
        "",
        "example.com:8080 \t",
        "[::1]:80",
        "127.0.0.1",
        "xn--bcher-kva.example",
        "a_b",
    ] {
        let req = format!("GET {a} HTTP/1.1\r\nHost: {good}\r\nConnection: close\r\n\r\n");
        assert_eq!(first_status(&s.addr(), req.as_bytes()), 200, "{good:?}");
    }
}

#[test]
fn content_length_with_transfer_encoding_gets_400_and_the_smuggled_request_is_never_answered() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "smuggle/a.txt", b"front");
    let b = put_file(&s, "smuggle/b.txt", b"SMUGGLED-SECRET");
    let smuggled = format!("0\r\n\r\nGET {b} HTTP/1.1\r\nHost: x\r\n\r\n");
    let req = format!(
        "GET {a} HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n{smuggled}",
        smuggled.len()
    );
    let bytes = raw(&s.addr(), req.as_bytes(), Duration::from_secs(10));
    let text = String::from_utf8_lossy(&bytes);
    let rs = parse_all(&bytes);
    assert_eq!(rs.len(), 1, "expected exactly one response: {text}");
    assert_eq!(rs[0].status, 400, "{text}");
    assert!(!text.contains("SMUGGLED-SECRET"), "smuggled request served");
}

#[test]
fn differing_duplicate_content_lengths_get_400() {
    let s = Server::start(json!({}));
    let req = b"POST /group1/upload HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!";
    assert_eq!(first_status(&s.addr(), req), 400);
}

#[test]
fn transfer_encoding_gzip_gets_501() {
    let s = Server::start(json!({}));
    let req = b"POST /group1/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n";
    assert_eq!(first_status(&s.addr(), req), 501);
}

#[test]
fn an_http_2_0_request_line_gets_505() {
    let s = Server::start(json!({}));
    let req = b"GET /group1/x.txt HTTP/2.0\r\nHost: x\r\n\r\n";
    assert_eq!(first_status(&s.addr(), req), 505);
}

/// A refused upload (not multipart: answered before its body is read) announcing `len`
/// bytes and sending `sent` of them, then a GET of `path`, on one connection.
fn refused_upload_then_get(s: &Server, path: &str, len: usize, sent: usize) -> Vec<Resp> {
    let mut req = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: text/plain\r\nContent-Length: {len}\r\n\r\n"
    )
    .into_bytes();
    req.extend(std::iter::repeat_n(b'b', sent));
    req.extend_from_slice(
        format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
    );
    exchange(&s.addr(), &req)
}

#[test]
fn a_small_body_the_handler_did_not_read_is_dropped_and_the_connection_carries_the_next_request() {
    // What would be drained after the answer anyway (up to 8 MiB) is read first: answering
    // before the body was read must not cost the connection. Behind nginx
    // (`proxy_request_buffering off`, the shipped config) an early answer made nginx drop
    // its client's connection after answering it keep-alive, and the client's next request
    // on it was lost. (Go's server reads up to 256 KiB so; go-fastdfs reads whole uploads.)
    let s = Server::start(json!({}));
    let a = put_file(&s, "early/a.txt", b"next one");
    for len in [200 * 1024, 3 << 20] {
        let rs = refused_upload_then_get(&s, &a, len, len);
        let statuses: Vec<u16> = rs.iter().map(|r| r.status).collect();
        assert_eq!(
            statuses,
            [400, 200],
            "{len}: {:?}",
            rs.iter().map(Resp::text).collect::<Vec<_>>()
        );
        assert_eq!(rs[0].header("connection"), None, "kept alive");
        assert_eq!(rs[1].body, b"next one");
    }
    // A larger body is not read for nothing: answered at once, then the connection closes.
    let rs = refused_upload_then_get(&s, &a, 9 << 20, 64 * 1024);
    assert_eq!(rs.len(), 1);
    assert_eq!(rs[0].status, 400);
    assert_eq!(rs[0].header("connection"), Some("close"));
}

#[test]
fn options_asterisk_gets_200_with_no_body_and_other_methods_on_asterisk_get_400() {
    // RFC 9110 §9.3.7: `OPTIONS *` asks about the server itself (load balancers and
    // Apache's proxy ping with it); go-fastdfs' Go server answers `200`, `Content-Length: 0`.
    // It is not a path to redirect.
    let s = Server::start(json!({}));
    let rs = exchange(
        &s.addr(),
        b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\nGET * HTTP/1.1\r\nHost: x\r\n\r\n",
    );
    assert_eq!(rs.len(), 2, "two answers");
    assert_eq!(rs[0].status, 200, "{}", rs[0].text());
    assert_eq!(rs[0].header("content-length"), Some("0"));
    assert_eq!(rs[0].header("location"), None);
    assert!(rs[0].body.is_empty());
    assert_eq!(rs[1].status, 400, "{}", rs[1].text());
    fail_message(&rs[1]);
}

/// The `fail` envelope's message of a refusal (panics when the body is not one).
fn fail_message(r: &Resp) -> String {
    let v: Value = serde_json::from_slice(&r.body)
        .unwrap_or_else(|_| panic!("{} without a JSON body: {:?}", r.status, r.text()));
    assert_eq!(v["status"], "fail", "{}", r.text());
    assert_eq!(v["data"], Value::Null, "{}", r.text());
    let message = v["message"].as_str().unwrap_or_default().to_string();
    assert!(!message.is_empty(), "{}", r.text());
    message
}

#[test]
fn every_refusal_while_reading_a_head_is_the_json_envelope_and_closes() {
    let s = Server::start(json!({"read_header_timeout": 1}));
    let big = format!(
        "GET /group1/x.txt HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
        "b".repeat(20 * 1024)
    );
    let long = format!(
        "GET /group1/{} HTTP/1.1\r\nHost: x\r\n\r\n",
        "u".repeat(10 * 1024)
    );
    let cases: [(&[u8], u16); 7] = [
        (b"\x16\x03\x01 garbage \x00\r\n\r\n", 400),
        (b"GET /group1/x.txt HTTP/1.1\r\n\r\n", 400),
        (big.as_bytes(), 431),
        (long.as_bytes(), 414),
        (
            b"POST /group1/upload HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n",
            501,
        ),
        (b"GET /group1/x.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        // Half a head, then silence past read_header_timeout.
        (b"GET /group1/x.txt HTTP/1.1\r\nHost: x\r\n", 408),
    ];
    for (request, status) in cases {
        let rs = exchange(&s.addr(), request);
        assert_eq!(
            rs.len(),
            1,
            "{status}: one answer, then the connection closes"
        );
        assert_eq!(rs[0].status, status, "{}", rs[0].text());
        assert_eq!(rs[0].header("connection"), Some("close"), "{status}");
        let message = fail_message(&rs[0]);
        if status == 408 {
            assert!(message.contains("in time"), "{message}");
        }
    }
}

#[test]
fn a_chunk_announced_beyond_the_body_limit_is_refused_at_once_not_after_a_stall() {
    let s = Server::start(json!({"upload_max_bytes": 10_000, "body_stall_timeout": 30}));
    let chunked_post = |path: &str, size_line: &str| {
        format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nContent-Type: multipart/form-data; boundary=XX\r\nTransfer-Encoding: chunked\r\n\r\n{size_line}\r\n--XX\r\n"
        )
        .into_bytes()
    };
    for (path, size_line, status) in [
        // Above upload_max_bytes: 413 before any of its bytes.
        ("/group1/upload", "100000", 413),
        ("/group1/upload", "7fffffffffffffff", 413),
        // Above the 1 MiB a parameter body may have.
        ("/group1/stat", "200000", 413),
        // No body can be longer than 2^63-1 bytes, nor have a size of more than 16 digits.
        ("/group1/upload", "8000000000000000", 400),
        ("/group1/upload", "ffffffffffffffffffffffff", 400),
    ] {
        let started = Instant::now();
        let rs = exchange(&s.addr(), &chunked_post(path, size_line));
        let took = started.elapsed();
        assert_eq!(rs.len(), 1, "{path} {size_line}: no answer");
        assert_eq!(rs[0].status, status, "{path} {size_line}: {}", rs[0].text());
        assert_eq!(rs[0].header("connection"), Some("close"));
        fail_message(&rs[0]);
        assert!(
            took < Duration::from_secs(5),
            "{path} {size_line}: answered after {took:?}"
        );
    }
    // With no limit configured, only the 2^63-1 bound applies.
    let s = Server::start(json!({"body_stall_timeout": 30}));
    let started = Instant::now();
    let rs = exchange(
        &s.addr(),
        &chunked_post("/group1/upload", "ffffffffffffffff"),
    );
    assert_eq!(rs[0].status, 400, "{}", rs[0].text());
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[test]
fn an_absolute_form_target_is_served_by_its_path_through_the_same_gates() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "abs/a.txt", b"absolute");
    let origin = format!("http://{}", s.addr());
    let get = |target: &str| {
        let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let rs = exchange(&s.addr(), req.as_bytes());
        assert_eq!(rs.len(), 1, "{target}: no answer");
        rs.into_iter().next().unwrap()
    };
    let r = get(&format!("{origin}{a}"));
    assert_eq!((r.status, r.text().as_str()), (200, "absolute"));
    let r = get(&format!("HTTP://{}{a}?download=0", s.addr()));
    assert_eq!((r.status, r.text().as_str()), (200, "absolute"));
    let r = get(&format!("{origin}/group1/stat"));
    assert_eq!(r.status, 200, "an API route: {}", r.text());
    // Traversal is cleaned as in origin form: a same-origin 301 to the cleaned path.
    for (target, location) in [
        ("http://evil.example/group1/../../etc/passwd", "/etc/passwd"),
        (
            "http://x/group1/%2e%2e/%2e%2e/etc/passwd?q=1",
            "/etc/passwd?q=1",
        ),
        ("http://x", "/"),
    ] {
        let r = get(target);
        assert_eq!(r.status, 301, "{target}: {}", r.text());
        assert_eq!(r.header("location"), Some(location), "{target}");
    }
    let r = get("http://x/group1/files/../conf/cfg.json");
    assert!(!r.text().contains("admin_key"), "served the config");
    // Not a request-target at all: 400 with a message.
    for target in [
        "ftp://x/group1/abs/a.txt",
        "http://user@x/group1/abs/a.txt",
        "abs/a.txt",
    ] {
        let r = get(target);
        assert_eq!(r.status, 400, "{target}: {}", r.text());
        fail_message(&r);
    }
}

#[test]
fn an_upload_larger_than_upload_max_bytes_gets_413_by_content_length() {
    let s = Server::start(json!({"upload_max_bytes": 10_000}));
    let r = exchange(&s.addr(), &upload_request("big.bin", &noise(50_000, 4)));
    assert!(!r.is_empty(), "no response");
    assert_eq!(r[0].status, 413, "{}", r[0].text());
    // Within the limit still works.
    let small = upload_json(&s, "small.bin", &noise(1_000, 5));
    assert_eq!(small["size"], 1_000);
}

#[test]
fn a_chunked_upload_larger_than_upload_max_bytes_gets_413() {
    let s = Server::start(json!({"upload_max_bytes": 10_000}));
    let (ct, body) = multipart(&[("output", "json")], Some(("big.bin", &noise(50_000, 6))));
    let mut req = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    .into_bytes();
    req.extend_from_slice(&chunk_encode(&body, 4096));
    let r = exchange(&s.addr(), &req);
    assert!(!r.is_empty(), "no response");
    assert_eq!(r[0].status, 413, "{}", r[0].text());
}

// ---------------------------------------------------------------------------------------------
// Slowloris deadlines (docs/DEFECTS.md #39)
// ---------------------------------------------------------------------------------------------

/// The one timing-dependent assertion kind: the cut happened after about `limit` (not
/// immediately) and before `limit` + 3 s of slack.
fn assert_cut_near(elapsed: Duration, limit: u64, what: &str) {
    assert!(
        elapsed >= Duration::from_millis(limit * 1000 - 500),
        "{what}: cut too early, after {elapsed:?}"
    );
    assert!(
        elapsed <= Duration::from_secs(limit + 3),
        "{what}: still open after {elapsed:?}"
    );
}

#[test]
fn a_client_sending_one_header_byte_per_second_is_cut_within_read_header_timeout() {
    let s = Server::start(json!({"read_header_timeout": 2}));
    let a = put_file(&s, "slow/a.txt", b"still serving");
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    let head = format!("GET {a} HTTP/1.1\r\nHost: x\r\nX-Slow: {}", "z".repeat(64));
    let started = Instant::now();
    let mut answer = Vec::new();
    let mut cut = None;
    for (i, byte) in head.as_bytes().iter().enumerate().take(30) {
        if c.write_all(&[*byte]).is_err() {
            cut = Some(started.elapsed());
            break;
        }
        if i == 1 {
            assert_other_clients_served(&s, &a, "still serving");
        }
        let mut b = [0u8; 1024];
        // Each read waits up to 1 s: one header byte per second.
        match c.read(&mut b) {
            Ok(0) => {
                cut = Some(started.elapsed());
                break;
            }
            Ok(n) => {
                answer.extend_from_slice(&b[..n]);
                cut = Some(started.elapsed());
                break;
            }
            Err(e) if is_timeout(&e) => {}
            Err(_) => {
                cut = Some(started.elapsed());
                break;
            }
        }
    }
    let cut = cut.expect("slow header client was never cut");
    assert_cut_near(cut, 2, "slow head");
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 408"),
            "unexpected answer {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}

#[test]
fn an_idle_keep_alive_connection_is_closed_after_idle_timeout() {
    let s = Server::start(json!({"idle_timeout": 2}));
    let a = put_file(&s, "idle/a.txt", b"idle");
    let mut c = RawConn::open(&s.addr());
    c.send(&get(&a));
    let r = c.response(false);
    assert_eq!(r.status, 200);
    let started = Instant::now();
    assert!(
        c.closes_within(Duration::from_secs(6)),
        "idle connection not closed"
    );
    assert_cut_near(started.elapsed(), 2, "idle keep-alive");
}

#[test]
fn a_stalled_upload_body_is_cut_after_body_stall_timeout_while_others_are_served() {
    let s = Server::start(json!({"body_stall_timeout": 2}));
    let a = put_file(&s, "stall/a.txt", b"not blocked");
    let req = upload_request("stall.bin", &noise(100_000, 7));
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(8))).unwrap();
    c.write_all(&req[..20_000]).unwrap();
    let started = Instant::now();
    assert_other_clients_served(&s, &a, "not blocked");
    let mut answer = Vec::new();
    let mut b = [0u8; 4096];
    loop {
        match c.read(&mut b) {
            Ok(0) => break,
            Ok(n) => answer.extend_from_slice(&b[..n]),
            Err(e) if is_timeout(&e) => panic!("stalled body not cut after 8 s"),
            Err(_) => break,
        }
        if find(&answer, b"\r\n\r\n").is_some() {
            break;
        }
    }
    assert_cut_near(started.elapsed(), 2, "stalled body");
    if !answer.is_empty() {
        assert!(
            answer.starts_with(b"HTTP/1.1 408"),
            "unexpected answer {:?}",
            String::from_utf8_lossy(&answer)
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Graceful shutdown
// ---------------------------------------------------------------------------------------------

fn refuses_connections(addr: &str) -> bool {
    TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_millis(200)).is_err()
}

#[test]
fn sigterm_lets_an_in_flight_download_finish_refuses_new_connections_and_exits_0() {
    let mut s = Server::start(json!({"shutdown_grace": 10}));
    let data = noise(48 << 20, 8);
    let path = put_file(&s, "shutdown/big.bin", &data);
    let mut c = RawConn::open(&s.addr());
    c.send(&get(&path));
    // Part of the body arrives; the rest is still queued on the server side.
    while c.buf.len() < (1 << 20) {
        assert!(c.fill(), "download ended early");
    }
    let mut child = s.child.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(
        eventually(Duration::from_secs(5), || refuses_connections(&s.addr())),
        "still accepting connections after SIGTERM"
    );
    let r = c.response(false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.len(), data.len(), "download cut by shutdown");
    assert!(r.body == data, "download corrupted");
    assert_eq!(wait_child(&mut child, Duration::from_secs(15)), Some(0));
}

/// Idle keep-alive connections sleep until their idle deadline (no periodic wake): at
/// shutdown the server wakes and closes them at once, rather than waiting for them through
/// its whole grace.
#[test]
fn sigterm_closes_idle_keep_alive_connections_at_once_whatever_their_idle_timeout() {
    let mut s = Server::start(json!({"idle_timeout": 600, "shutdown_grace": 120}));
    let a = put_file(&s, "idle/b.txt", b"idle");
    let mut idle: Vec<RawConn> = (0..16)
        .map(|_| {
            let mut c = RawConn::open(&s.addr());
            c.send(&get(&a));
            assert_eq!(c.response(false).status, 200);
            c
        })
        .collect();
    let mut child = s.child.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    for c in &mut idle {
        assert!(
            c.closes_within(Duration::from_secs(10)),
            "an idle connection stayed open after SIGTERM"
        );
    }
    assert_eq!(
        wait_child(&mut child, Duration::from_secs(20)),
        Some(0),
        "the server waited for idle connections (grace 120 s) instead of closing them"
    );
}

#[test]
fn sigterm_lets_an_in_flight_upload_finish_and_its_file_is_stored() {
    let mut s = Server::start(json!({"shutdown_grace": 10}));
    let data = noise(4 << 20, 9);
    let req = upload_request("inflight.bin", &data);
    let mut c = RawConn::open(&s.addr());
    c.send(&req[..1 << 20]);
    let mut child = s.child.take().unwrap();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    assert!(
        eventually(Duration::from_secs(5), || refuses_connections(&s.addr())),
        "still accepting connections after SIGTERM"
    );
    c.send(&req[1 << 20..]);
    let r = c.response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let v: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(v["md5"], md5_hex(&data));
    assert_eq!(wait_child(&mut child, Duration::from_secs(15)), Some(0));
    let rel = v["path"]
        .as_str()
        .unwrap()
        .strip_prefix("/group1/")
        .unwrap();
    let stored = std::fs::read(s.dir.join("files").join(rel)).unwrap();
    assert!(stored == data, "stored upload differs");
}

/// The head of a tus PATCH of `len` bytes at `offset` to the upload at `path`.
fn tus_patch_head(path: &str, offset: u64, len: usize) -> Vec<u8> {
    format!(
        "PATCH {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nTus-Resumable: 1.0.0\r\n\
         Content-Type: application/offset+octet-stream\r\nUpload-Offset: {offset}\r\n\
         Content-Length: {len}\r\n\r\n"
    )
    .into_bytes()
}

/// The `Upload-Offset` a tus upload at `url` reports.
fn tus_offset(url: &str) -> u64 {
    let r = agent()
        .head(url)
        .set("Tus-Resumable", "1.0.0")
        .call()
        .expect("HEAD of the tus upload");
    r.header("Upload-Offset").unwrap().parse().unwrap()
}

/// Clients that stall in the middle of their bodies cannot hold the shutdown: when
/// `shutdown_grace` is over their bodies are cut, each gets a 503 in the JSON envelope, the
/// process exits 0 soon after, and nothing half-written is stored. A tus upload keeps the
/// bytes that arrived (synced, its offset saved) and resumes from there after the restart.
/// An upload that ends within the grace is answered 200 and served after the restart.
#[test]
fn sigterm_cuts_bodies_still_arriving_after_the_grace_with_503_and_tus_keeps_what_arrived() {
    let mut s = Server::start(json!({"shutdown_grace": 2, "enable_tus": true}));
    let data = noise(4 << 20, 21);
    let mib = 1 << 20;
    let mut multipart = RawConn::open(&s.addr());
    multipart.send(&upload_request("cut.bin", &data)[..mib]);
    let finished = noise(2 << 20, 22);
    let finishing_req = upload_request("finished.bin", &finished);
    let mut finishing = RawConn::open(&s.addr());
    finishing.send(&finishing_req[..mib]);
    let created = agent()
        .post(&s.url("/group1/big/upload/"))
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Length", &data.len().to_string())
        .call()
        .expect("tus creation");
    let url = created.header("Location").unwrap().to_string();
    let path = url.strip_prefix(&s.base()).unwrap().to_string();
    let mut patch = RawConn::open(&s.addr());
    patch.send(&tus_patch_head(&path, 0, data.len()));
    patch.send(&data[..mib]);
    // Both stall here; the server has read what they sent.
    std::thread::sleep(Duration::from_millis(500));
    let mut child = s.child.take().unwrap();
    let signalled = Instant::now();
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    std::thread::sleep(Duration::from_millis(300));
    finishing.send(&finishing_req[mib..]);
    let r = finishing.response(false);
    assert_eq!(r.status, 200, "{}", r.text());
    let done: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(done["md5"], md5_hex(&finished));
    for conn in [&mut multipart, &mut patch] {
        let r = conn.response(false);
        assert_eq!(r.status, 503, "{}", r.text());
        let v: Value = serde_json::from_slice(&r.body).expect("a JSON envelope");
        assert_eq!(v["status"], "fail", "{v}");
    }
    assert!(
        signalled.elapsed() >= Duration::from_millis(1900),
        "cut before the grace was over"
    );
    assert_eq!(wait_child(&mut child, Duration::from_secs(15)), Some(0));
    let took = signalled.elapsed();
    assert!(took < Duration::from_secs(6), "exit took {took:?}");
    let temps = std::fs::read_dir(s.dir.join("files/_tmp")).unwrap().count();
    assert_eq!(temps, 0, "the cut upload's temp file was left");
    s.respawn();
    let (code, got) = common::cluster::get_bytes(&s.base(), done["path"].as_str().unwrap(), &[]);
    assert!(
        code == 200 && got == finished,
        "an answered upload is not served"
    );
    let (_, found) =
        call(agent().get(&s.url(&format!("/group1/check_file_exist?md5={}", md5_hex(&data)))));
    assert!(
        !found.contains(&md5_hex(&data)),
        "a cut upload was stored: {found}"
    );
    // The tus upload resumes where the cut left it, and completes.
    assert_eq!(
        tus_offset(&url),
        mib as u64,
        "the bytes that arrived were not kept"
    );
    let mut resume = RawConn::open(&s.addr());
    resume.send(&tus_patch_head(&path, mib as u64, data.len() - mib));
    resume.send(&data[mib..]);
    let r = resume.response(false);
    assert_eq!(r.status, 204, "{}", r.text());
    let stored = files_under(&s.dir).into_iter().any(|p| {
        !p.starts_with(s.dir.join("files/_big")) && std::fs::read(&p).is_ok_and(|b| b == data)
    });
    assert!(stored, "the completed tus upload is not stored");
}

#[test]
fn the_server_restarts_on_its_port_right_after_a_graceful_shutdown_that_closed_connections() {
    let mut s = Server::start(json!({}));
    let a = put_file(&s, "restart/a.txt", b"again");
    // The server closes these connections first, leaving its side in TIME_WAIT.
    for _ in 0..3 {
        let rs = exchange(
            &s.addr(),
            format!("GET {a} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert_eq!(rs[0].status, 200);
    }
    assert_eq!(s.stop(), Some(0));
    s.spawn();
    let (code, body) = call(agent().get(&s.url(&a)));
    assert_eq!((code, body.as_str()), (200, "again"));
}

// ---------------------------------------------------------------------------------------------
// Paths and CORS
// ---------------------------------------------------------------------------------------------

#[test]
fn dot_dot_and_double_slash_paths_get_301_to_the_clean_path_with_the_query_kept() {
    let s = Server::start(json!({}));
    put_file(&s, "x/a.txt", b"a");
    for (target, location) in [
        (
            "/group1/../group1/x/a.txt?a=1&b=2",
            "/group1/x/a.txt?a=1&b=2",
        ),
        ("//group1/x/a.txt?a=1", "/group1/x/a.txt?a=1"),
        ("/group1/./x//a.txt", "/group1/x/a.txt"),
    ] {
        let rs = exchange(
            &s.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(!rs.is_empty(), "no response for {target}");
        assert_eq!(rs[0].status, 301, "{target}");
        assert_eq!(rs[0].header("location"), Some(location), "{target}");
    }
}

#[test]
fn percent_encoded_traversal_never_serves_files_outside_the_store() {
    let s = Server::start(json!({}));
    for target in [
        "/group1/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/group1/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/%2E%2E/etc/passwd",
        "/group1/..%2f..%2f..%2f..%2f..%2f..%2fetc/passwd",
        "/group1/%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/group1/files/%2e%2e/conf/cfg.json",
    ] {
        let rs = exchange(
            &s.addr(),
            format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        assert!(!rs.is_empty(), "no response for {target}");
        let mut r = rs[0].clone();
        // Escaped dots are cleaned like plain ones (a 301, as go-fastdfs' mux): follow it.
        if r.status == 301 {
            let location = r.header("location").expect("Location").to_string();
            assert!(
                location.starts_with('/') && !location.contains(".."),
                "{target} -> {location}"
            );
            let rs = exchange(
                &s.addr(),
                format!("GET {location} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            r = rs[0].clone();
        }
        assert!(!r.text().contains("root:"), "{target} served /etc/passwd");
        assert!(
            !r.text().contains("admin_key"),
            "{target} served the config"
        );
        assert!(
            (400..500).contains(&r.status),
            "{target} answered {}",
            r.status
        );
    }
}

#[test]
fn requests_for_the_upload_temp_dir_are_404() {
    let s = Server::start(json!({}));
    put_file(&s, "_tmp/partial-upload", b"half an upload");
    let rs = exchange(
        &s.addr(),
        b"GET /group1/_tmp/partial-upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(rs[0].status, 404);
    assert!(!rs[0].text().contains("half an upload"));
    let rs = exchange(
        &s.addr(),
        b"GET /group1/_tmp/ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(rs[0].status, 404);
    assert!(!rs[0].text().contains("partial-upload"));
}

#[test]
fn cors_headers_echo_the_origin_or_allow_any() {
    let s = Server::start(json!({}));
    let a = put_file(&s, "cors/a.txt", b"c");
    let r = agent()
        .get(&s.url(&a))
        .set("Origin", "http://app.example.com")
        .call()
        .unwrap();
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://app.example.com")
    );
    assert_eq!(r.header("Access-Control-Allow-Credentials"), Some("true"));
    assert!(r
        .header("Access-Control-Allow-Methods")
        .unwrap_or("")
        .contains("POST"));
    let r = agent().get(&s.url(&a)).call().unwrap();
    assert_eq!(r.header("Access-Control-Allow-Origin"), Some("*"));
    // Error responses carry them too.
    let r = match agent()
        .get(&s.url("/group1/cors/missing.txt"))
        .set("Origin", "http://o.example")
        .call()
    {
        Err(ureq::Error::Status(404, r)) => r,
        other => panic!("expected 404, got {other:?}"),
    };
    assert_eq!(
        r.header("Access-Control-Allow-Origin"),
        Some("http://o.example")
    );
}
