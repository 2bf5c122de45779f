//! HTTP responses: status line and headers serialized into one buffer, bodies from memory or
//! streamed from a file. Handlers build a `Response`; `conn` writes it.

use bytes::Bytes;
use std::borrow::Cow;
use std::rc::Rc;

/// A header value: static text costs no allocation.
pub type HeaderValue = Cow<'static, str>;

/// A body streamed from an open file: `len` bytes starting at `offset`.
pub struct FileBody {
    pub file: Rc<glommio::io::BufferedFile>,
    pub offset: u64,
    pub len: u64,
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

impl Response {
    pub fn new(status: u16) -> Response {
        Response {
            status,
            // A download sets seven or eight.
            headers: Vec::with_capacity(8),
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
    use std::io::Write;
    let _ = write!(out, "HTTP/1.1 {} {}\r\n", r.status, reason(r.status));
    out.extend_from_slice(b"Server: fastdfs-rs\r\nDate: ");
    out.extend_from_slice(date.as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in &r.headers {
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        // Header injection guard: a value never carries CR or LF.
        for &b in value.as_bytes() {
            out.push(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        out.extend_from_slice(b"\r\n");
    }
    for (name, value) in &r.named_headers {
        let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
        if name.is_empty() || !name.bytes().all(token) {
            continue;
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        for &b in value.as_bytes() {
            out.push(if b == b'\r' || b == b'\n' { b' ' } else { b });
        }
        out.extend_from_slice(b"\r\n");
    }
    if !r.no_content_length {
        let _ = write!(out, "Content-Length: {}\r\n", r.body.len());
    }
    match persist {
        Persist::KeepAlive => {}
        Persist::KeepAlive10 => out.extend_from_slice(b"Connection: keep-alive\r\n"),
        Persist::Close => out.extend_from_slice(b"Connection: close\r\n"),
    }
    out.extend_from_slice(b"\r\n");
}
