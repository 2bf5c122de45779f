//! HTTP responses: status line and headers serialized into one buffer, bodies from memory or
//! streamed from a file. Handlers build a `Response`; `conn` writes it.

use bytes::Bytes;
use std::borrow::Cow;
use std::rc::Rc;

/// A header value: static text and short ones (an ETag, a date: every download has both)
/// cost no allocation.
#[derive(Clone, Debug)]
pub enum HeaderValue {
    Static(&'static str),
    /// Made by [`HeaderValue::short`] only (its fields are private).
    Short(ShortValue),
    Owned(String),
}

/// Up to `SHORT_BYTES` bytes of a `str`, inline.
#[derive(Clone, Debug)]
pub struct ShortValue {
    len: u8,
    bytes: [u8; SHORT_BYTES],
}

/// The longest value kept inline (the enum is then as large as 40 bytes).
const SHORT_BYTES: usize = 38;

impl HeaderValue {
    /// `s` inline when it fits, else an owned copy.
    pub fn short(s: &str) -> HeaderValue {
        if s.len() > SHORT_BYTES {
            return HeaderValue::Owned(s.to_string());
        }
        let mut bytes = [0u8; SHORT_BYTES];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        HeaderValue::Short(ShortValue {
            len: s.len() as u8,
            bytes,
        })
    }

    pub fn as_str(&self) -> &str {
        match self {
            HeaderValue::Static(s) => s,
            // Checked on every read rather than trusted (38 bytes at most); `short` copies a
            // whole `str`, so it is always valid.
            HeaderValue::Short(v) => std::str::from_utf8(&v.bytes[..usize::from(v.len)])
                .expect("a short value is copied from a str whole"),
            HeaderValue::Owned(s) => s,
        }
    }

    /// The value's bytes, for writing a head: no UTF-8 check (the bytes go out as they are).
    pub fn as_bytes(&self) -> &[u8] {
        match self {
            HeaderValue::Static(s) => s.as_bytes(),
            HeaderValue::Short(v) => &v.bytes[..usize::from(v.len)],
            HeaderValue::Owned(s) => s.as_bytes(),
        }
    }

    /// Bytes of the value (without the UTF-8 check of [`HeaderValue::as_str`]).
    pub fn len(&self) -> usize {
        self.as_bytes().len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Default for HeaderValue {
    fn default() -> HeaderValue {
        HeaderValue::Static("")
    }
}

impl std::ops::Deref for HeaderValue {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for HeaderValue {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl std::fmt::Display for HeaderValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq for HeaderValue {
    fn eq(&self, other: &HeaderValue) -> bool {
        self.as_str() == other.as_str()
    }
}

impl Eq for HeaderValue {}

impl PartialEq<str> for HeaderValue {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for HeaderValue {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl From<&'static str> for HeaderValue {
    fn from(s: &'static str) -> HeaderValue {
        HeaderValue::Static(s)
    }
}

impl From<String> for HeaderValue {
    fn from(s: String) -> HeaderValue {
        HeaderValue::Owned(s)
    }
}

impl From<Cow<'static, str>> for HeaderValue {
    fn from(s: Cow<'static, str>) -> HeaderValue {
        match s {
            Cow::Borrowed(s) => HeaderValue::Static(s),
            Cow::Owned(s) => HeaderValue::Owned(s),
        }
    }
}

/// A body streamed from an open file: `len` bytes starting at `offset`.
pub struct FileBody {
    pub file: Rc<glommio::io::BufferedFile>,
    pub offset: u64,
    pub len: u64,
    /// Read once (a peer's replication fetch): a large range not in the page cache is read
    /// around it (`http::sendfile`).
    pub once: bool,
}

/// A body produced elsewhere (a peer's response streamed through): exactly `len` bytes.
pub struct StreamBody {
    pub len: u64,
    pub chunks: std::cell::RefCell<Option<ChunkStream>>,
}

/// The chunks of a `StreamBody`.
pub type ChunkStream = std::pin::Pin<Box<dyn futures_lite::Stream<Item = std::io::Result<Bytes>>>>;

pub enum Body {
    Empty,
    Stream(StreamBody),
    Bytes(Bytes),
    File(FileBody),
    /// Several byte ranges of one file as `multipart/byteranges`: (part head, range) pairs
    /// followed by the closing delimiter.
    Multi {
        file: Rc<glommio::io::BufferedFile>,
        parts: Vec<(Bytes, u64, u64)>,
        tail: Bytes,
    },
}

impl Body {
    pub fn len(&self) -> u64 {
        match self {
            Body::Empty => 0,
            Body::Stream(s) => s.len,
            Body::Bytes(b) => b.len() as u64,
            Body::File(f) => f.len,
            Body::Multi { parts, tail, .. } => {
                parts
                    .iter()
                    .map(|(h, _, l)| h.len() as u64 + l)
                    .sum::<u64>()
                    + tail.len() as u64
            }
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

pub struct Response {
    pub status: u16,
    pub headers: Vec<(&'static str, HeaderValue)>,
    /// Headers whose names are not known in advance (an S3 object's `x-amz-meta-*`); names
    /// with anything but token characters are dropped when written.
    pub named_headers: Vec<(String, String)>,
    pub body: Body,
    /// Close the connection after this response.
    pub close: bool,
    /// Omit Content-Length (only for bodies whose length is implied, e.g. 1xx/204/304).
    pub no_content_length: bool,
}

/// Header lists kept per thread for reuse (every request's answer has one).
const HEADER_LISTS_KEPT: usize = 64;
/// A download sets seven or eight headers, and the router adds five for CORS.
const HEADER_LIST_CAPACITY: usize = 13;

type HeaderList = Vec<(&'static str, HeaderValue)>;

thread_local! {
    static HEADER_LISTS: std::cell::RefCell<Vec<HeaderList>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A response's header list goes back to its thread's pool, emptied.
impl Drop for Response {
    fn drop(&mut self) {
        let mut list = std::mem::take(&mut self.headers);
        if list.capacity() == 0 || list.capacity() > 4 * HEADER_LIST_CAPACITY {
            return;
        }
        list.clear();
        let _ = HEADER_LISTS.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < HEADER_LISTS_KEPT {
                p.push(list);
            }
        });
    }
}

impl Response {
    pub fn new(status: u16) -> Response {
        let headers = HEADER_LISTS
            .try_with(|p| p.borrow_mut().pop())
            .ok()
            .flatten()
            .unwrap_or_else(|| Vec::with_capacity(HEADER_LIST_CAPACITY));
        debug_assert!(headers.is_empty());
        Response {
            status,
            headers,
            named_headers: Vec::new(),
            body: Body::Empty,
            close: false,
            no_content_length: false,
        }
    }

    /// A text body with go-fastdfs' sniffed type (`text/plain; charset=utf-8`, also for JSON).
    pub fn text(status: u16, body: impl Into<String>) -> Response {
        let mut r = Response::new(status);
        r.set("Content-Type", "text/plain; charset=utf-8");
        r.body = Body::Bytes(Bytes::from(body.into()));
        r
    }

    pub fn html(status: u16, body: impl Into<Bytes>) -> Response {
        let mut r = Response::new(status);
        r.set("Content-Type", "text/html; charset=utf-8");
        r.body = Body::Bytes(body.into());
        r
    }

    pub fn header(mut self, name: &'static str, value: impl Into<HeaderValue>) -> Response {
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a header.
    pub fn set(&mut self, name: &'static str, value: impl Into<HeaderValue>) {
        self.headers.push((name, value.into()));
    }

    /// Removes every header named `name`.
    pub fn remove(&mut self, name: &str) {
        self.headers.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
    }

    pub fn has_header(&self, name: &str) -> bool {
        self.headers
            .iter()
            .any(|(n, _)| n.eq_ignore_ascii_case(name))
    }
}

pub fn reason(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        201 => "Created",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        304 => "Not Modified",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        411 => "Length Required",
        412 => "Precondition Failed",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        416 => "Range Not Satisfiable",
        417 => "Expectation Failed",
        422 => "Unprocessable Entity",
        423 => "Locked",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        460 => "Checksum Mismatch",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        503 => "Service Unavailable",
        505 => "HTTP Version Not Supported",
        507 => "Insufficient Storage",
        _ => "Unknown",
    }
}

/// How the connection continues after a response, which decides the Connection header.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Persist {
    /// HTTP/1.1 default: no header needed.
    KeepAlive,
    /// HTTP/1.0 client that asked for keep-alive: it needs `Connection: keep-alive` to reuse.
    KeepAlive10,
    Close,
}

/// Serializes the head (status line, headers, Content-Length of the full body even for HEAD).
pub fn write_head(out: &mut Vec<u8>, r: &Response, persist: Persist, date: &str) {
    // Room for the whole head at once (the fixed lines take under 128 bytes).
    let fields: usize = r
        .headers
        .iter()
        .map(|(n, v)| n.len() + v.len() + 4)
        .sum::<usize>()
        + r.named_headers
            .iter()
            .map(|(n, v)| n.len() + v.len() + 4)
            .sum::<usize>();
    out.reserve(fields + date.len() + 128);
    out.extend_from_slice(b"HTTP/1.1 ");
    crate::codec::push_decimal(out, r.status as u64);
    out.push(b' ');
    out.extend_from_slice(reason(r.status).as_bytes());
    out.extend_from_slice(b"\r\nServer: fastdfs-rs\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &r.headers {
        push_field(out, name, value.as_bytes());
    }
    for (name, value) in &r.named_headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            continue;
        }
        push_field(out, name, value.as_bytes());
    }
    if !r.no_content_length {
        out.extend_from_slice(b"Content-Length: ");
        crate::codec::push_decimal(out, r.body.len());
        out.extend_from_slice(b"\r\n");
    }
    match persist {
        Persist::KeepAlive => {}
        Persist::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persist::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}

/// `name: value\r\n`. Header injection guard: a value never carries CR or LF (each is written
/// as a space).
fn push_field(out: &mut Vec<u8>, name: &str, value: &[u8]) {
    out.extend_from_slice(name.as_bytes());
    out.extend_from_slice(b": ");
    let start = out.len();
    out.extend_from_slice(value);
    if memchr::memchr2(b'\r', b'\n', value).is_some() {
        for b in &mut out[start..] {
            if *b == b'\r' || *b == b'\n' {
                *b = b' ';
            }
        }
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_header_values_are_inline_and_long_ones_owned() {
        assert!(std::mem::size_of::<HeaderValue>() <= 40);
        let date = "Wed, 03 Dec 2025 00:00:00 GMT";
        let v = HeaderValue::short(date);
        assert!(matches!(v, HeaderValue::Short(_)));
        assert_eq!(v, date);
        assert_eq!(v, HeaderValue::Owned(date.to_string()));
        let edge = "é".repeat(19); // 38 bytes
        assert!(matches!(HeaderValue::short(&edge), HeaderValue::Short(_)));
        assert_eq!(HeaderValue::short(&edge).as_str(), edge);
        let long = "x".repeat(39);
        assert!(matches!(HeaderValue::short(&long), HeaderValue::Owned(_)));
        assert_eq!(HeaderValue::short(&long), long.as_str());
        assert_eq!(HeaderValue::short(""), "");
    }

    fn head(r: &Response, persist: Persist) -> String {
        let mut out = Vec::new();
        write_head(&mut out, r, persist, "Fri, 04 Dec 2026 23:00:00 GMT");
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_head_has_status_date_fields_and_length_and_no_injected_line() {
        let mut r = Response::text(404, "gone");
        r.set("X-Name", "a\r\nSet-Cookie: x=1\nb");
        r.named_headers.push(("x-amz-meta-k".into(), "v\r".into()));
        r.named_headers.push(("bad name".into(), "dropped".into()));
        assert_eq!(
            head(&r, Persist::KeepAlive),
            "HTTP/1.1 404 Not Found\r\nServer: fastdfs-rs\r\nDate: Fri, 04 Dec 2026 23:00:00 GMT\r\n\
             Content-Type: text/plain; charset=utf-8\r\nX-Name: a  Set-Cookie: x=1 b\r\n\
             x-amz-meta-k: v \r\nContent-Length: 4\r\n\r\n"
        );
        let mut r = Response::new(200);
        r.no_content_length = true;
        assert_eq!(
            head(&r, Persist::Close),
            "HTTP/1.1 200 OK\r\nServer: fastdfs-rs\r\nDate: Fri, 04 Dec 2026 23:00:00 GMT\r\n\
             Connection: close\r\n\r\n"
        );
        let r = Response::new(206);
        assert!(head(&r, Persist::KeepAlive10)
            .ends_with("Content-Length: 0\r\nConnection: keep-alive\r\n\r\n"));
    }
}
