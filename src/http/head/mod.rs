//! HTTP/1.x request head parsing and message-body framing (RFC 9112 §2–§7).
//!
//! Owns: turning the bytes at the front of a connection buffer into a [`RequestHead`]
//! (request line + header fields) and deciding how the body that follows is framed
//! ([`BodyKind`]), whether the connection may be kept alive, and whether the client waits
//! for `100 Continue`. Tokenising is done by `httparse` (strict defaults: no obs-fold, no
//! whitespace before the colon, no bare CR); this module adds the RFC 9112 semantics on top:
//! Host rules, Content-Length / Transfer-Encoding validation (request-smuggling guards),
//! Connection tokens, and size limits that map onto 400/414/431/501/505.
//!
//! Zero-copy: a parsed head owns the raw head bytes (`Bytes`, split off the read buffer)
//! and keeps only small offset ranges into them; the only per-request allocation is one
//! `Vec` of header ranges.
//!
//! Limits / non-goals:
//! - Only HTTP/1.0 and HTTP/1.1; anything else (incl. the HTTP/2 preface) is 505.
//! - Leading empty lines before the request line are skipped (any number, counted against
//!   `head_bytes_max`); bare LF line endings inside the head are accepted, as httparse does
//!   (RFC 9112 §2.2 allows this for the head; the chunked decoder is strict).
//! - The request-target is not normalised or percent-decoded. Origin-form (`/a?b`) and
//!   absolute-form (`http://host/a?b`, RFC 9112 §3.2.2: a server must accept it) are
//!   accepted, and asterisk-form (`*`); anything else is malformed (400). [`RequestHead::path`]
//!   is the raw path up to `?` (of an absolute-form target: after its authority, which
//!   [`RequestHead::host`] gives instead of the Host header).
//! - Transfer codings other than a single final `chunked` are refused (501); a
//!   Transfer-Encoding header in an HTTP/1.0 request is refused as malformed (400).
//! - An explicit `Content-Length: 0` is reported as `BodyKind::Length(0)`, not `None`.
//! - Only up to 128 header slots live on the stack; a larger `headers_count_max` falls back
//!   to one heap buffer per parse.

use crate::codec::{is_ows, trim_ows};
use bytes::{Bytes, BytesMut};
use std::mem::MaybeUninit;

/// Size limits applied while parsing a request head.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of the whole head (leading empty lines, request line, fields, final
    /// CRLF). Exceeding it is `HeadTooLarge` (431). At most [`HEAD_BYTES_LIMIT`].
    pub head_bytes_max: usize,
    /// Maximum number of header fields. Exceeding it is `TooManyHeaders` (431).
    pub headers_count_max: usize,
    /// Maximum length of the request-target. Exceeding it is `UriTooLong` (414).
    pub uri_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            head_bytes_max: 16 * 1024,
            headers_count_max: 100,
            uri_bytes_max: 8 * 1024,
        }
    }
}

/// HTTP protocol version of a request.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
}

/// How the message body following the head is framed (RFC 9112 §6.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BodyKind {
    /// No Content-Length and no Transfer-Encoding: the request has no body.
    None,
    /// `Content-Length: n` (possibly 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`.
    Chunked,
}

/// Why a request head was rejected. [`HeadError::status`] gives the response status.
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone)]
pub enum HeadError {
    #[error("request head too large")]
    HeadTooLarge,
    #[error("too many header fields")]
    TooManyHeaders,
    #[error("request-target too long")]
    UriTooLong,
    #[error("malformed request: {0}")]
    Malformed(&'static str),
    #[error("missing Host header in HTTP/1.1 request")]
    MissingHost,
    #[error("both Transfer-Encoding and Content-Length present")]
    ConflictingFraming,
    #[error("invalid Content-Length")]
    BadContentLength,
    #[error("unsupported transfer coding")]
    UnsupportedTransferEncoding,
    #[error("unsupported HTTP version")]
    UnsupportedVersion,
    /// Not a parse result: the head did not arrive within `read_header_timeout`.
    #[error("request head not received in time")]
    Timeout,
}

impl HeadError {
    /// The HTTP status code to answer with (the connection should be closed afterwards).
    pub fn status(&self) -> u16 {
        match self {
            HeadError::HeadTooLarge | HeadError::TooManyHeaders => 431,
            HeadError::UriTooLong => 414,
            HeadError::Malformed(_)
            | HeadError::MissingHost
            | HeadError::ConflictingFraming
            | HeadError::BadContentLength => 400,
            HeadError::UnsupportedTransferEncoding => 501,
            HeadError::UnsupportedVersion => 505,
            HeadError::Timeout => 408,
        }
    }
}

/// The largest head any [`Limits`] may allow: spans inside it are 16-bit offsets, which keeps
/// a parsed head (moved from the parser to the handler and on) small.
pub const HEAD_BYTES_LIMIT: usize = u16::MAX as usize;

/// A byte range `start..end` inside the raw head.
#[derive(Clone, Copy, Debug)]
struct Span {
    start: u16,
    end: u16,
}

impl Span {
    #[inline]
    fn get(self, raw: &[u8]) -> &[u8] {
        &raw[self.start as usize..self.end as usize]
    }
}

#[derive(Clone, Copy, Debug)]
struct FieldSpan {
    name: Span,
    value: Span,
}

/// A parsed request head.
///
/// Zero-copy: owns the raw head bytes; method/target/headers are ranges into them.
#[derive(Clone, Debug)]
pub struct RequestHead {
    raw: Bytes,
    method: Span,
    target: Span,
    /// Index of the `?` in `raw`, or `target.end` when there is no query.
    query_mark: u16,
    /// Where the path begins: `target.start`, or after an absolute-form target's authority.
    path_start: u16,
    /// The authority of an absolute-form target.
    authority: Option<Span>,
    version: Version,
    fields: Fields,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
}

/// Two heads are equal when their raw bytes are equal (everything else derives from them).
impl PartialEq for RequestHead {
    fn eq(&self, other: &Self) -> bool {
        self.raw == other.raw
    }
}

impl Eq for RequestHead {}

/// Returns `s` as `&str`. Only called on ranges that httparse validated as UTF-8 (method
/// and header names are ASCII tokens, the target was checked with `str::from_utf8`).
#[inline]
fn validated_str(s: &[u8]) -> &str {
    debug_assert!(std::str::from_utf8(s).is_ok());
    // SAFETY: every caller passes a sub-range of the immutable raw head that httparse
    // returned as `&str` (or sliced at an ASCII `?` boundary inside such a range).
    unsafe { std::str::from_utf8_unchecked(s) }
}

impl RequestHead {
    /// The request method as sent, e.g. `"GET"` (case-sensitive per RFC 9110 §9.1).
    pub fn method(&self) -> &str {
        validated_str(self.method.get(&self.raw))
    }

    /// The raw request-target, e.g. `"/group1/a.txt?x=1"`.
    pub fn target(&self) -> &str {
        validated_str(self.target.get(&self.raw))
    }

    /// The request-target's path: up to (not including) the first `?`, and of an
    /// absolute-form target only what follows its authority (`http://h/a?b` -> `/a`; empty
    /// when nothing does).
    pub fn path(&self) -> &str {
        validated_str(&self.raw[self.path_start as usize..self.query_mark as usize])
    }

    /// The request-target in origin form: path and query (`http://h/a?b` -> `/a?b`), what a
    /// request forwarded to another server names.
    pub fn origin_form(&self) -> &str {
        validated_str(&self.raw[self.path_start as usize..self.target.end as usize])
    }

    /// The host the request is for: an absolute-form target's authority, which replaces the
    /// Host header (RFC 9112 §3.2.2), else the Host header (when UTF-8).
    pub fn host(&self) -> Option<&str> {
        match self.authority {
            Some(a) => Some(validated_str(a.get(&self.raw))),
            None => self.header_str("host"),
        }
    }

    /// The request-target after the first `?`, or `""` if there is none.
    pub fn query(&self) -> &str {
        if self.query_mark == self.target.end {
            ""
        } else {
            validated_str(&self.raw[self.query_mark as usize + 1..self.target.end as usize])
        }
    }

    pub fn version(&self) -> Version {
        self.version
    }

    /// Value of the first header field named `name` (ASCII case-insensitive).
    pub fn header(&self, name: &str) -> Option<&[u8]> {
        let name = name.as_bytes();
        self.fields.iter().find_map(|f| {
            let n = f.name.get(&self.raw);
            if n.len() == name.len() && n.eq_ignore_ascii_case(name) {
                Some(f.value.get(&self.raw))
            } else {
                None
            }
        })
    }

    /// Like [`RequestHead::header`], but `None` also when the value is not UTF-8.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.header(name).and_then(|v| std::str::from_utf8(v).ok())
    }

    /// All header fields in order of appearance: (name as sent, value).
    pub fn headers(&self) -> impl Iterator<Item = (&str, &[u8])> + Clone + '_ {
        self.fields
            .iter()
            .map(|f| (validated_str(f.name.get(&self.raw)), f.value.get(&self.raw)))
    }

    /// Number of header fields.
    pub fn headers_len(&self) -> usize {
        self.fields.len()
    }

    /// How the body that follows this head is framed.
    pub fn body(&self) -> BodyKind {
        self.body
    }

    /// Whether the connection may be reused after this exchange: HTTP/1.1 unless a
    /// `close` connection option is present; HTTP/1.0 only with a `keep-alive` option (and
    /// no `close`).
    pub fn keep_alive(&self) -> bool {
        self.keep_alive
    }

    /// `Expect: 100-continue` on an HTTP/1.1 request.
    pub fn expect_continue(&self) -> bool {
        self.expect_continue
    }

    /// The raw head bytes (including leading empty lines and the final empty line).
    pub fn raw(&self) -> &Bytes {
        &self.raw
    }
}

/// Number of header slots kept on the stack.
const STACK_HEADERS: usize = 128;

/// A request's header spans: inline up to 16 fields (a browser sends about a dozen), so a
/// request does not allocate for them.
type Fields = smallvec::SmallVec<[FieldSpan; 16]>;

/// Result of a successful parse, without borrowing the buffer.
struct Parsed {
    len: usize,
    method: Span,
    target: Span,
    query_mark: u16,
    path_start: u16,
    authority: Option<Span>,
    version: Version,
    fields: Fields,
    body: BodyKind,
    keep_alive: bool,
    expect_continue: bool,
}

/// Parses one request head from the front of `buf`.
///
/// `Ok(None)`: incomplete, read more. If `buf` already holds `head_bytes_max` bytes without a
/// complete head the result is `HeadTooLarge`; if the request line alone is longer than
/// `uri_bytes_max + 16` bytes without its line ending yet, `UriTooLong` is returned early.
/// On success the head bytes are split off `buf`, leaving any body / pipelined bytes.
/// On error `buf` is left untouched (the caller should answer and close).
pub fn parse_head(buf: &mut BytesMut, limits: &Limits) -> Result<Option<RequestHead>, HeadError> {
    if buf.is_empty() {
        return Ok(None);
    }
    let slots = limits.headers_count_max;
    let parsed = if slots <= STACK_HEADERS {
        let mut hdrs = [const { MaybeUninit::<httparse::Header<'_>>::uninit() }; STACK_HEADERS];
        parse_inner(buf, limits, &mut hdrs[..slots])?
    } else {
        let mut hdrs = Vec::with_capacity(slots);
        hdrs.resize_with(slots, MaybeUninit::uninit);
        parse_inner(buf, limits, &mut hdrs)?
    };
    Ok(parsed.map(|p| RequestHead {
        raw: buf.split_to(p.len).freeze(),
        method: p.method,
        target: p.target,
        query_mark: p.query_mark,
        path_start: p.path_start,
        authority: p.authority,
        version: p.version,
        fields: p.fields,
        body: p.body,
        keep_alive: p.keep_alive,
        expect_continue: p.expect_continue,
    }))
}

fn parse_inner<'b>(
    data: &'b [u8],
    limits: &Limits,
    hdrs: &mut [MaybeUninit<httparse::Header<'b>>],
) -> Result<Option<Parsed>, HeadError> {
    assert!(
        limits.head_bytes_max <= HEAD_BYTES_LIMIT,
        "a head's spans are 16-bit offsets"
    );
    let cap = data.len().min(limits.head_bytes_max);
    let window = &data[..cap];
    let mut req = httparse::Request::new(&mut []);
    let len = match req.parse_with_uninit_headers(window, hdrs) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return incomplete(data, req.path, limits).map(|()| None),
        Err(e) => {
            if req.path.is_some_and(|p| p.len() > limits.uri_bytes_max) {
                return Err(HeadError::UriTooLong);
            }
            return Err(map_error(e, window));
        }
    };
    let base = window.as_ptr() as usize;
    let span_of = |s: &[u8]| {
        let start = s.as_ptr() as usize - base;
        Span {
            start: start as u16,
            end: (start + s.len()) as u16,
        }
    };
    let (Some(method), Some(target), Some(minor)) = (req.method, req.path, req.version) else {
        return Err(HeadError::Malformed("incomplete request line"));
    };
    if target.len() > limits.uri_bytes_max {
        return Err(HeadError::UriTooLong);
    }
    let version = if minor == 0 {
        Version::Http10
    } else {
        Version::Http11
    };
    let target_span = span_of(target.as_bytes());
    let query_mark = match target.bytes().position(|b| b == b'?') {
        Some(i) => target_span.start + i as u16,
        None => target_span.end,
    };
    let (path_at, authority) = target_form(target.as_bytes())?;
    let at = |i: usize| target_span.start + i as u16;
    let path_start = at(path_at);
    let authority = authority.map(|(start, end)| Span {
        start: at(start),
        end: at(end),
    });
    let scan = scan_fields(req.headers, span_of)?;
    let body = framing(version, &scan)?;
    let keep_alive = match version {
        Version::Http11 => !scan.conn_close,
        Version::Http10 => scan.conn_keep_alive && !scan.conn_close,
    };
    Ok(Some(Parsed {
        len,
        method: span_of(method.as_bytes()),
        target: target_span,
        query_mark,
        path_start,
        authority,
        version,
        fields: scan.fields,
        body,
        keep_alive,
        expect_continue: scan.expect_continue && version == Version::Http11,
    }))
}

/// The form of a request-target (RFC 9112 §3.2): where its path begins, and the authority
/// (start, end) of an absolute-form target. Origin-form (`/...`) and asterisk-form (`*`) are
/// their own path; absolute-form is `http://` or `https://` (any case), a non-empty
/// authority of host characters (no userinfo: RFC 9110 §4.2.4), then the path (possibly
/// empty) and query. Anything else is malformed.
fn target_form(target: &[u8]) -> Result<(usize, Option<(usize, usize)>), HeadError> {
    const INVALID: HeadError = HeadError::Malformed("invalid request-target");
    if target.first() == Some(&b'/') || target == b"*" {
        return Ok((0, None));
    }
    let scheme_end = target.iter().position(|&b| b == b':').ok_or(INVALID)?;
    let scheme = &target[..scheme_end];
    if !(scheme.eq_ignore_ascii_case(b"http") || scheme.eq_ignore_ascii_case(b"https")) {
        return Err(INVALID);
    }
    if !target[scheme_end + 1..].starts_with(b"//") {
        return Err(INVALID);
    }
    let start = scheme_end + 3;
    let len = target[start..]
        .iter()
        .position(|&b| b == b'/' || b == b'?')
        .unwrap_or(target.len() - start);
    let authority = &target[start..start + len];
    let host_byte = |b: &u8| b.is_ascii_alphanumeric() || b"-._~:[]%".contains(b);
    if authority.is_empty() || !authority.iter().all(host_byte) {
        return Err(HeadError::Malformed("invalid authority in request-target"));
    }
    Ok((start + len, Some((start, start + len))))
}

/// A head that is not complete yet: Ok to wait for more bytes, or the limit it already broke
/// (an endless request line or head is refused before it is whole).
fn incomplete(data: &[u8], path: Option<&str>, limits: &Limits) -> Result<(), HeadError> {
    match path {
        Some(p) if p.len() > limits.uri_bytes_max => return Err(HeadError::UriTooLong),
        Some(_) => {}
        None => {
            // Request line not finished yet: refuse an endless request line early.
            let line = &data[leading_empty_lines(data)..];
            let probe = limits.uri_bytes_max.saturating_add(17).min(line.len());
            if line.len() > limits.uri_bytes_max.saturating_add(16)
                && !line[..probe].contains(&b'\n')
            {
                return Err(HeadError::UriTooLong);
            }
        }
    }
    if data.len() >= limits.head_bytes_max {
        return Err(HeadError::HeadTooLarge);
    }
    Ok(())
}

/// A byte a Host field value may hold (RFC 9112 §3.2, RFC 3986 `host [":" port]`: an IP
/// literal's brackets, a reg-name's unreserved, sub-delims and percent-encoded characters),
/// the set Go's server accepts. Anything else (a space, `/`, `@`, a quote) is a `400`.
fn is_host_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"-._~!$&'()*+,;=:[]%".contains(&b)
}

/// What the header fields say about the request's framing and connection.
struct FieldScan {
    fields: Fields,
    hosts: usize,
    content_length: Option<u64>,
    te: TeState,
    conn_close: bool,
    conn_keep_alive: bool,
    expect_continue: bool,
}

/// One pass over the header fields: their spans, and the few fields the HTTP layer acts on.
fn scan_fields(
    headers: &[httparse::Header<'_>],
    span_of: impl Fn(&[u8]) -> Span,
) -> Result<FieldScan, HeadError> {
    let mut scan = FieldScan {
        fields: Fields::with_capacity(headers.len()),
        hosts: 0,
        content_length: None,
        te: TeState::default(),
        conn_close: false,
        conn_keep_alive: false,
        expect_continue: false,
    };
    for h in headers {
        scan.fields.push(FieldSpan {
            name: span_of(h.name.as_bytes()),
            value: span_of(h.value),
        });
        let name = h.name.as_bytes();
        match name.len() {
            4 if name.eq_ignore_ascii_case(b"host") => {
                scan.hosts += 1;
                if !h.value.iter().all(|&b| is_host_byte(b)) {
                    return Err(HeadError::Malformed("invalid Host header"));
                }
            }
            6 if name.eq_ignore_ascii_case(b"expect")
                && list_elements(h.value).any(|e| e.eq_ignore_ascii_case(b"100-continue")) =>
            {
                scan.expect_continue = true
            }
            10 if name.eq_ignore_ascii_case(b"connection") => {
                for e in list_elements(h.value) {
                    if e.eq_ignore_ascii_case(b"close") {
                        scan.conn_close = true;
                    } else if e.eq_ignore_ascii_case(b"keep-alive") {
                        scan.conn_keep_alive = true;
                    }
                }
            }
            14 if name.eq_ignore_ascii_case(b"content-length") => {
                parse_content_length(h.value, &mut scan.content_length)?
            }
            17 if name.eq_ignore_ascii_case(b"transfer-encoding") => scan.te.add(h.value)?,
            _ => {}
        }
    }
    Ok(scan)
}

/// The body's framing from Host, Content-Length and Transfer-Encoding (RFC 9112 §6), refusing
/// every ambiguity a smuggling attack would need.
fn framing(version: Version, scan: &FieldScan) -> Result<BodyKind, HeadError> {
    if scan.hosts > 1 {
        return Err(HeadError::Malformed("more than one Host header"));
    }
    if scan.hosts == 0 && version == Version::Http11 {
        return Err(HeadError::MissingHost);
    }
    if !scan.te.present {
        return Ok(match scan.content_length {
            Some(n) => BodyKind::Length(n),
            None => BodyKind::None,
        });
    }
    if scan.content_length.is_some() {
        return Err(HeadError::ConflictingFraming);
    }
    if version == Version::Http10 {
        return Err(HeadError::Malformed(
            "Transfer-Encoding in HTTP/1.0 request",
        ));
    }
    scan.te.finish()?;
    Ok(BodyKind::Chunked)
}

/// Bytes of a refused head's method kept for the access log.
const REFUSED_METHOD_BYTES_MAX: usize = 32;
/// Bytes of a refused head's request-target kept for the access log.
const REFUSED_TARGET_BYTES_MAX: usize = 1024;

/// What the bytes of a head that was refused (malformed, too large, too slow) say of its
/// request line, for the access log: the method and the target as far as they came (`-` for
/// none), each cut to a bound (`...` marks a cut), every byte outside visible ASCII
/// percent-escaped (`%0D`, `%20`, `%FF`) so that no client can write a line break, a field
/// separator or a fake entry into the log.
pub fn refused_request_line(data: &[u8]) -> (String, String) {
    let line = &data[leading_empty_lines(data)..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let (method, rest) = match line.iter().position(|&b| b == b' ') {
        Some(i) => (&line[..i], &line[i + 1..]),
        None => (line, &b""[..]),
    };
    let target = match rest.iter().position(|&b| b == b' ') {
        Some(i) => &rest[..i],
        None => rest,
    };
    (
        log_escaped(method, REFUSED_METHOD_BYTES_MAX),
        log_escaped(target, REFUSED_TARGET_BYTES_MAX),
    )
}

/// `bytes` (at most `max` of them) with every byte outside `!`..=`~` as `%XX`; `-` if empty.
fn log_escaped(bytes: &[u8], max: usize) -> String {
    if bytes.is_empty() {
        return "-".to_string();
    }
    let mut out = String::with_capacity(bytes.len().min(max) + 3);
    for &b in bytes.iter().take(max) {
        if (b'!'..=b'~').contains(&b) {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    if bytes.len() > max {
        out.push_str("...");
    }
    out
}

fn leading_empty_lines(data: &[u8]) -> usize {
    let mut i = 0;
    loop {
        match data.get(i..) {
            Some([b'\r', b'\n', ..]) => i += 2,
            Some([b'\n', ..]) => i += 1,
            _ => return i,
        }
    }
}

fn map_error(e: httparse::Error, window: &[u8]) -> HeadError {
    match e {
        httparse::Error::TooManyHeaders => HeadError::TooManyHeaders,
        httparse::Error::Version => classify_version(window),
        httparse::Error::HeaderName => HeadError::Malformed("invalid header name"),
        httparse::Error::HeaderValue => HeadError::Malformed("invalid header value"),
        httparse::Error::NewLine => HeadError::Malformed("invalid line ending"),
        httparse::Error::Token => HeadError::Malformed("invalid request line"),
        httparse::Error::Status => HeadError::Malformed("invalid status"),
    }
}

/// httparse reports any unexpected text in the version slot as a version error. Only a
/// well-formed `HTTP/<digit>...` other than 1.0/1.1 is a 505; anything else is a 400.
fn classify_version(window: &[u8]) -> HeadError {
    let line = &window[leading_empty_lines(window)..];
    let line = match line.iter().position(|&b| b == b'\n') {
        Some(i) => &line[..i],
        None => line,
    };
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut parts = line.splitn(3, |&b| b == b' ');
    let (_method, _target) = (parts.next(), parts.next());
    match parts.next() {
        Some(v)
            if v.len() > 5
                && v.starts_with(b"HTTP/")
                && v[5].is_ascii_digit()
                && v[5..].iter().all(|b| b.is_ascii_digit() || *b == b'.') =>
        {
            HeadError::UnsupportedVersion
        }
        _ => HeadError::Malformed("invalid HTTP version"),
    }
}

/// Non-empty, OWS-trimmed elements of a comma-separated list (RFC 9110 §5.6.1).
fn list_elements(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|e| !e.is_empty())
}

pub use crate::codec::CONTENT_LENGTH_MAX;

/// Every element of every Content-Length field must be the same valid `1*DIGIT` of at most
/// [`CONTENT_LENGTH_MAX`] (`codec::content_length`).
fn parse_content_length(value: &[u8], acc: &mut Option<u64>) -> Result<(), HeadError> {
    match crate::codec::content_length(value, acc) {
        true => Ok(()),
        false => Err(HeadError::BadContentLength),
    }
}

/// Accumulates the transfer codings of all Transfer-Encoding fields, in order.
#[derive(Default)]
struct TeState {
    present: bool,
    codings: usize,
    chunked: usize,
    last_is_chunked: bool,
    other: bool,
}

impl TeState {
    fn add(&mut self, value: &[u8]) -> Result<(), HeadError> {
        self.present = true;
        for elem in list_elements(value) {
            self.codings += 1;
            if elem.eq_ignore_ascii_case(b"chunked") {
                self.chunked += 1;
                self.last_is_chunked = true;
            } else {
                if !elem
                    .iter()
                    .all(|&b| httparse_token(b) || is_ows(b) || b == b';' || b == b'=' || b == b'"')
                {
                    return Err(HeadError::Malformed("invalid transfer coding"));
                }
                self.other = true;
                self.last_is_chunked = false;
            }
        }
        Ok(())
    }

    fn finish(&self) -> Result<(), HeadError> {
        if self.codings == 0 {
            return Err(HeadError::Malformed("empty Transfer-Encoding"));
        }
        if self.chunked > 1 {
            return Err(HeadError::Malformed("chunked applied more than once"));
        }
        if self.chunked == 1 && !self.last_is_chunked {
            return Err(HeadError::Malformed(
                "chunked is not the final transfer coding",
            ));
        }
        if self.other {
            return Err(HeadError::UnsupportedTransferEncoding);
        }
        Ok(())
    }
}

/// RFC 9110 `tchar`.
fn httparse_token(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests;
