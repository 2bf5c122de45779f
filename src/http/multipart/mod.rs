//! Streaming, sans-IO `multipart/form-data` parser (RFC 7578 on top of RFC 2046).
//!
//! # What this module owns
//!
//! * [`boundary_from_content_type`]: extracting the boundary from the request's
//!   `Content-Type` header.
//! * [`Parser`]: turning the request body into a flat stream of [`Event`]s:
//!   `PartStart(head)`, any number of `Data(bytes)`, `PartEnd`, ... and finally `End`.
//!
//! It owns nothing else: no socket, no file, no async runtime. The caller reads
//! bytes from wherever it likes, appends them to a [`BytesMut`], and calls
//! [`Parser::next_event`] until it returns `Ok(None)` ("need more input").
//!
//! # Why sans-IO
//!
//! The upload route must write a multi-GiB file part straight to disk without ever
//! holding it in memory. Keeping the parser free of I/O makes that trivial for the
//! caller (each `Data` event is a zero-copy slice of the caller's read buffer, written
//! out and dropped), keeps the parser independent of the runtime (glommio, tests,
//! fuzzing), and makes every byte split of the input testable deterministically.
//!
//! # Limits and memory
//!
//! The parser never buffers input on its own: everything lives in the caller's
//! buffer, and the parser guarantees that buffer stays bounded, whatever the input:
//!
//! * preamble bytes are discarded as they are scanned (at most
//!   [`Limits::preamble_bytes_max`] of them, then [`MultipartError::PreambleTooLarge`]);
//! * a part's header section is kept in the buffer until complete, at most
//!   [`Limits::part_head_bytes_max`] bytes (else [`MultipartError::PartHeadTooLarge`]);
//! * part data is streamed out as soon as it is known not to be part of a delimiter:
//!   when `next_event` returns `Ok(None)` inside a part, at most
//!   `delimiter length - 1` bytes (`CRLF -- boundary`, i.e. at most 75) remain in the buffer;
//! * the number of parts is bounded by [`Limits::parts_count_max`].
//!
//! Each input byte is scanned O(1) times amortised (the delimiter search uses
//! `memchr::memmem`; only the up-to-delimiter-length tail kept back is re-scanned),
//! so feeding the body one byte at a time is linear, not quadratic.
//!
//! # Leniency and strictness
//!
//! * The first delimiter may sit at the very start of the body (no leading CRLF);
//!   a preamble before it is skipped; the epilogue after the close delimiter is left
//!   untouched in the buffer (see [`Parser::next_event`]).
//! * Transport padding (spaces/tabs) after a boundary is accepted; anything else
//!   after `--boundary` than `--` or padding + CRLF is [`MultipartError::MalformedDelimiter`].
//! * Header names are case-insensitive; obs-fold (continuation lines) and bare CR/LF
//!   in a header section are rejected.
//! * `Content-Disposition` must be `form-data` with a `name` parameter. Parameters may
//!   come in any order and case, as quoted strings or tokens. Inside quoted strings
//!   `\"` and `\\` are escapes; any other backslash is kept literally, so that Windows
//!   paths sent by old browsers (`filename="C:\dir\a.txt"`) survive. Raw UTF-8 (as
//!   browsers send it) is accepted; invalid UTF-8 is decoded lossily.
//!   `filename*=charset'lang'percent-encoded` (RFC 5987, UTF-8 or ISO-8859-1) takes
//!   precedence over `filename`; an unusable `filename*` is ignored.
//! * `Content-Transfer-Encoding` and all other part headers are ignored (RFC 7578 §4.7).
//!
//! The parser assumes the boundary contains no CR or LF (which
//! [`boundary_from_content_type`] guarantees); with any other boundary it still never
//! panics, it may just misparse.

use bytes::Buf;
pub use bytes::{Bytes, BytesMut};
use memchr::memmem;

/// Longest boundary allowed by RFC 2046 §5.1.1.
pub const BOUNDARY_LEN_MAX: usize = 70;

/// Input-driven resource bounds. Exceeding any of them is an error, never a reason
/// to buffer more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Maximum size of one part's header section, including the blank line ending it
    /// (and any transport padding after the boundary).
    pub part_head_bytes_max: usize,
    /// Maximum number of parts in the body.
    pub parts_count_max: usize,
    /// Maximum number of bytes before the first delimiter.
    pub preamble_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            part_head_bytes_max: 8 * 1024,
            parts_count_max: 64,
            preamble_bytes_max: 8 * 1024,
        }
    }
}

/// The interesting parts of a part's header section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartHead {
    /// `name` parameter of `Content-Disposition` (may be empty, never missing).
    pub name: String,
    /// `filename*` (decoded) if present and usable, else `filename`. `Some("")` when the
    /// client sent `filename=""` (browsers do for an empty file input).
    pub filename: Option<String>,
    /// `Content-Type` header of the part, trimmed; `None` if absent or empty.
    pub content_type: Option<String>,
}

/// One step of the body, in order: `(PartStart Data* PartEnd)* End`.
#[derive(Debug, PartialEq, Eq)]
pub enum Event {
    /// A part's header section was parsed; its data follows.
    PartStart(PartHead),
    /// A non-empty chunk of the current part's data (zero-copy split of the input).
    Data(Bytes),
    /// The current part's data is complete.
    PartEnd,
    /// The close delimiter was seen; the body is complete.
    End,
}

/// Why a body was rejected. Errors are sticky: once returned, every further call to
/// [`Parser::next_event`] returns the same error.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum MultipartError {
    /// The request's Content-Type has no usable boundary (for callers of
    /// [`boundary_from_content_type`]; the parser itself never returns it).
    #[error("multipart/form-data boundary missing or invalid")]
    MissingBoundary,
    /// More than `preamble_bytes_max` bytes before the first delimiter.
    #[error("multipart preamble exceeds the size limit")]
    PreambleTooLarge,
    /// A boundary was followed by something other than `--` or padding + CRLF.
    #[error("malformed multipart delimiter line")]
    MalformedDelimiter,
    /// A part's header section exceeds `part_head_bytes_max` bytes.
    #[error("multipart part header section exceeds the size limit")]
    PartHeadTooLarge,
    /// The body has more than `parts_count_max` parts.
    #[error("too many parts in multipart body")]
    TooManyParts,
    /// A part's header section could not be parsed.
    #[error("malformed multipart part header: {0}")]
    MalformedPartHead(&'static str),
    /// A part has no `Content-Disposition` header.
    #[error("multipart part has no Content-Disposition header")]
    MissingContentDisposition,
    /// A part's `Content-Disposition` has no `name` parameter.
    #[error("multipart part has no name")]
    MissingName,
    /// The body ended before the close delimiter.
    #[error("multipart body ended before the closing boundary")]
    UnexpectedEof,
}

/// Extracts the boundary from a Content-Type header value such as
/// `multipart/form-data; boundary="----x"` (quoted or token, case-insensitive type and
/// parameter name, max 70 chars per RFC 2046). None if the type is not
/// multipart/form-data or no valid boundary is present.
///
/// Accepted boundary characters are printable ASCII and space (a superset of RFC 2046
/// `bchars`, as real clients are not always strict), not ending with a space.
#[must_use]
pub fn boundary_from_content_type(value: &[u8]) -> Option<Vec<u8>> {
    let value = trim_ows(value);
    let end = value
        .iter()
        .position(|&b| matches!(b, b';' | b' ' | b'\t'))
        .unwrap_or(value.len());
    if !value[..end].eq_ignore_ascii_case(b"multipart/form-data") {
        return None;
    }
    let params = parse_params(&value[end..]).ok()?;
    let (_, boundary) = params
        .into_iter()
        .find(|(name, _)| name.eq_ignore_ascii_case(b"boundary"))?;
    let valid = !boundary.is_empty()
        && boundary.len() <= BOUNDARY_LEN_MAX
        && boundary.iter().all(|&b| (b' '..=b'~').contains(&b))
        && boundary.last() != Some(&b' ');
    valid.then_some(boundary)
}

#[derive(Debug)]
enum State {
    /// Nothing consumed yet: the body may start with `--boundary` (no CRLF).
    Start,
    /// Skipping the preamble; `discarded` bytes dropped so far.
    Preamble {
        discarded: usize,
    },
    /// Just after `--boundary`: expecting `--`, or padding then CRLF.
    DelimiterTail {
        padding: usize,
    },
    /// Inside a header section; `scanned` bytes of `buf` hold no terminator.
    Head {
        scanned: usize,
    },
    /// Inside a part's data.
    Body,
    /// Close delimiter seen.
    Done,
    Failed(MultipartError),
}

/// Sans-IO `multipart/form-data` parser; see the [module docs](self).
pub struct Parser {
    /// `CRLF -- boundary`.
    delimiter: Vec<u8>,
    delimiter_finder: memmem::Finder<'static>,
    head_end_finder: memmem::Finder<'static>,
    limits: Limits,
    state: State,
    parts: usize,
}

impl std::fmt::Debug for Parser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Parser")
            .field("delimiter", &String::from_utf8_lossy(&self.delimiter))
            .field("limits", &self.limits)
            .field("state", &self.state)
            .field("parts", &self.parts)
            .finish_non_exhaustive()
    }
}

impl Parser {
    /// A parser for a body whose boundary is `boundary` (without the leading `--`),
    /// typically from [`boundary_from_content_type`].
    #[must_use]
    pub fn new(boundary: &[u8], limits: Limits) -> Parser {
        let mut delimiter = Vec::with_capacity(boundary.len() + 4);
        delimiter.extend_from_slice(b"\r\n--");
        delimiter.extend_from_slice(boundary);
        let delimiter_finder = memmem::Finder::new(&delimiter).into_owned();
        Parser {
            delimiter,
            delimiter_finder,
            head_end_finder: memmem::Finder::new(b"\r\n\r\n"),
            limits,
            state: State::Start,
            parts: 0,
        }
    }

    /// Consumes bytes from the front of `buf` and returns the next event, or `Ok(None)`
    /// when more input is needed (the caller appends more bytes to `buf` and calls
    /// again). Data events are zero-copy splits of `buf` (`buf.split_to(n).freeze()`),
    /// as large as the input allows; bytes that might be the start of a delimiter are
    /// kept in `buf` until decided.
    ///
    /// After `End`, the parser consumes nothing more: it returns `Ok(None)` forever and
    /// leaves the remaining bytes (the epilogue, or whatever follows the body) in `buf`
    /// for the caller to discard.
    ///
    /// # Errors
    ///
    /// Any [`MultipartError`] but `MissingBoundary` and `UnexpectedEof`, when the input
    /// is malformed or exceeds the [`Limits`]. After an error, the parser returns that
    /// error forever; the caller should reject the request (400 / 413).
    pub fn next_event(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, MultipartError> {
        if let State::Failed(e) = &self.state {
            return Err(e.clone());
        }
        let result = self.step(buf);
        if let Err(e) = &result {
            self.state = State::Failed(e.clone());
        }
        result
    }

    /// Call when the body has ended (after draining `next_event` to `Ok(None)`):
    /// `Ok(())` only if `End` was reached.
    ///
    /// # Errors
    ///
    /// The sticky error if the parser failed, [`MultipartError::UnexpectedEof`] if the
    /// close delimiter was not reached.
    pub fn finish(&self) -> Result<(), MultipartError> {
        match &self.state {
            State::Done => Ok(()),
            State::Failed(e) => Err(e.clone()),
            _ => Err(MultipartError::UnexpectedEof),
        }
    }

    /// Whether the close delimiter has been seen (`End` was returned).
    #[must_use]
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    /// Number of parts started so far.
    #[must_use]
    pub fn parts_count(&self) -> usize {
        self.parts
    }

    fn step(&mut self, buf: &mut BytesMut) -> Result<Option<Event>, MultipartError> {
        loop {
            match self.state {
                State::Start => {
                    // The delimiter without its leading CRLF: `--boundary`.
                    let first = self.delimiter.get(2..).unwrap_or_default();
                    let n = buf.len().min(first.len());
                    if buf[..n] != first[..n] {
                        self.state = State::Preamble { discarded: 0 };
                        continue;
                    }
                    if n < first.len() {
                        return Ok(None);
                    }
                    buf.advance(first.len());
                    self.state = State::DelimiterTail { padding: 0 };
                }
                State::Preamble { discarded } => {
                    let max = self.limits.preamble_bytes_max;
                    if let Some(pos) = self.delimiter_finder.find(buf) {
                        if discarded.saturating_add(pos) > max {
                            return Err(MultipartError::PreambleTooLarge);
                        }
                        buf.advance(pos + self.delimiter.len());
                        self.state = State::DelimiterTail { padding: 0 };
                        continue;
                    }
                    let drop = buf.len() - partial_suffix_len(buf, &self.delimiter);
                    let discarded = discarded.saturating_add(drop);
                    if discarded > max {
                        return Err(MultipartError::PreambleTooLarge);
                    }
                    buf.advance(drop);
                    self.state = State::Preamble { discarded };
                    return Ok(None);
                }
                State::DelimiterTail { padding } => {
                    let ws = buf.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
                    let padding = padding.saturating_add(ws);
                    if padding > self.limits.part_head_bytes_max {
                        return Err(MultipartError::PartHeadTooLarge);
                    }
                    buf.advance(ws);
                    self.state = State::DelimiterTail { padding };
                    match (buf.first(), buf.get(1)) {
                        (None, _) => return Ok(None),
                        // The close delimiter's `--` must follow the boundary directly.
                        (Some(b'-'), _) if padding > 0 => {
                            return Err(MultipartError::MalformedDelimiter)
                        }
                        (Some(b'-' | b'\r'), None) => return Ok(None),
                        (Some(b'-'), Some(b'-')) => {
                            buf.advance(2);
                            self.state = State::Done;
                            return Ok(Some(Event::End));
                        }
                        (Some(b'\r'), Some(b'\n')) => {
                            if self.parts >= self.limits.parts_count_max {
                                return Err(MultipartError::TooManyParts);
                            }
                            self.parts += 1;
                            buf.advance(2);
                            self.state = State::Head { scanned: 0 };
                        }
                        _ => return Err(MultipartError::MalformedDelimiter),
                    }
                }
                State::Head { scanned } => {
                    let max = self.limits.part_head_bytes_max;
                    // End of the header section, blank line included. A section that
                    // starts with the blank line has no headers at all.
                    let end = if buf.starts_with(b"\r\n") {
                        Some(2)
                    } else {
                        let from = scanned.saturating_sub(3).min(buf.len());
                        self.head_end_finder
                            .find(&buf[from..])
                            .map(|pos| from + pos + 4)
                    };
                    let Some(end) = end else {
                        // Whatever the rest, the section would end beyond `max`.
                        if buf.len() >= max {
                            return Err(MultipartError::PartHeadTooLarge);
                        }
                        self.state = State::Head { scanned: buf.len() };
                        return Ok(None);
                    };
                    if end > max {
                        return Err(MultipartError::PartHeadTooLarge);
                    }
                    // Header lines, each with its CRLF; without the blank line.
                    let head = parse_head(&buf[..end - 2])?;
                    buf.advance(end);
                    self.state = State::Body;
                    return Ok(Some(Event::PartStart(head)));
                }
                State::Body => {
                    if let Some(pos) = self.delimiter_finder.find(buf) {
                        if pos > 0 {
                            return Ok(Some(Event::Data(buf.split_to(pos).freeze())));
                        }
                        buf.advance(self.delimiter.len());
                        self.state = State::DelimiterTail { padding: 0 };
                        return Ok(Some(Event::PartEnd));
                    }
                    let n = buf.len() - partial_suffix_len(buf, &self.delimiter);
                    if n == 0 {
                        return Ok(None);
                    }
                    return Ok(Some(Event::Data(buf.split_to(n).freeze())));
                }
                State::Done => return Ok(None),
                State::Failed(ref e) => return Err(e.clone()),
            }
        }
    }
}

/// Length of the longest suffix of `hay` that is a proper prefix of `needle`
/// (the bytes that may still turn into a match once more input arrives).
fn partial_suffix_len(hay: &[u8], needle: &[u8]) -> usize {
    let Some(&first) = needle.first() else {
        return 0;
    };
    let tail = &hay[hay.len().saturating_sub(needle.len() - 1)..];
    memchr::memchr_iter(first, tail)
        .map(|i| &tail[i..])
        .find(|suffix| needle.starts_with(suffix))
        .map_or(0, <[u8]>::len)
}

fn is_ows(b: u8) -> bool {
    b == b' ' || b == b'\t'
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = s {
        if !is_ows(*first) {
            break;
        }
        s = rest;
    }
    while let [rest @ .., last] = s {
        if !is_ows(*last) {
            break;
        }
        s = rest;
    }
    s
}

fn skip_ows(s: &[u8], mut i: usize) -> usize {
    while i < s.len() && is_ows(s[i]) {
        i += 1;
    }
    i
}

/// RFC 9110 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Parses a header section: header lines, each terminated by CRLF.
fn parse_head(head: &[u8]) -> Result<PartHead, MultipartError> {
    use MultipartError::MalformedPartHead;
    let mut disposition: Option<&[u8]> = None;
    let mut content_type: Option<&[u8]> = None;
    let mut rest = head;
    while !rest.is_empty() {
        let eol =
            memmem::find(rest, b"\r\n").ok_or(MalformedPartHead("unterminated header line"))?;
        let line = &rest[..eol];
        rest = &rest[eol + 2..];
        if line.first().is_some_and(|&b| is_ows(b)) {
            return Err(MalformedPartHead("obsolete line folding"));
        }
        if memchr::memchr2(b'\r', b'\n', line).is_some() {
            return Err(MalformedPartHead("bare CR or LF"));
        }
        let colon =
            memchr::memchr(b':', line).ok_or(MalformedPartHead("header line without colon"))?;
        let name = &line[..colon];
        if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
            return Err(MalformedPartHead("invalid header name"));
        }
        let value = trim_ows(&line[colon + 1..]);
        let slot = if name.eq_ignore_ascii_case(b"content-disposition") {
            &mut disposition
        } else if name.eq_ignore_ascii_case(b"content-type") {
            &mut content_type
        } else {
            continue;
        };
        if slot.replace(value).is_some() {
            return Err(MalformedPartHead("duplicate header"));
        }
    }
    let disposition = disposition.ok_or(MultipartError::MissingContentDisposition)?;
    let (name, filename) = parse_disposition(disposition)?;
    Ok(PartHead {
        name,
        filename,
        content_type: content_type
            .filter(|v| !v.is_empty())
            .map(|v| String::from_utf8_lossy(v).into_owned()),
    })
}

/// Parses a `Content-Disposition` value into (name, filename).
fn parse_disposition(value: &[u8]) -> Result<(String, Option<String>), MultipartError> {
    let end = value
        .iter()
        .position(|&b| b == b';' || is_ows(b))
        .unwrap_or(value.len());
    if !value[..end].eq_ignore_ascii_case(b"form-data") {
        return Err(MultipartError::MalformedPartHead(
            "Content-Disposition type is not form-data",
        ));
    }
    let params = parse_params(&value[end..]).map_err(MultipartError::MalformedPartHead)?;
    let (mut name, mut filename, mut filename_ext) = (None, None, None);
    for (key, val) in params {
        let slot = if key.eq_ignore_ascii_case(b"name") {
            &mut name
        } else if key.eq_ignore_ascii_case(b"filename") {
            &mut filename
        } else if key.eq_ignore_ascii_case(b"filename*") {
            &mut filename_ext
        } else {
            continue;
        };
        // First occurrence wins.
        slot.get_or_insert(val);
    }
    let name = name.ok_or(MultipartError::MissingName)?;
    let filename = filename_ext
        .and_then(|v| decode_ext_value(&v))
        .or_else(|| filename.map(|v| String::from_utf8_lossy(&v).into_owned()));
    Ok((String::from_utf8_lossy(&name).into_owned(), filename))
}

/// (name, unescaped value) pairs, in order.
type Params<'a> = Vec<(&'a [u8], Vec<u8>)>;

/// Parses `*( OWS ";" OWS name OWS "=" OWS value )` where value is a token or a
/// quoted string. Empty parameters (`;;`) and a trailing `;` are tolerated.
fn parse_params(s: &[u8]) -> Result<Params<'_>, &'static str> {
    let mut params = Vec::new();
    let mut i = 0;
    loop {
        i = skip_ows(s, i);
        if i == s.len() {
            return Ok(params);
        }
        if s[i] != b';' {
            return Err("expected ';' between parameters");
        }
        i = skip_ows(s, i + 1);
        if i == s.len() || s[i] == b';' {
            continue;
        }
        let start = i;
        while i < s.len() && !matches!(s[i], b'=' | b';' | b' ' | b'\t') {
            i += 1;
        }
        let name = &s[start..i];
        if name.is_empty() {
            return Err("empty parameter name");
        }
        i = skip_ows(s, i);
        if s.get(i) != Some(&b'=') {
            return Err("parameter without value");
        }
        i = skip_ows(s, i + 1);
        let value = if s.get(i) == Some(&b'"') {
            let (value, next) = parse_quoted(s, i + 1)?;
            i = next;
            value
        } else {
            let start = i;
            while i < s.len() && !matches!(s[i], b';' | b' ' | b'\t') {
                i += 1;
            }
            s[start..i].to_vec()
        };
        params.push((name, value));
    }
}

/// Parses a quoted string whose opening quote is just before `s[i]`; returns the
/// unescaped content and the index after the closing quote. Only `\"` and `\\` are
/// escapes; other backslashes are literal (Windows paths from old browsers).
fn parse_quoted(s: &[u8], mut i: usize) -> Result<(Vec<u8>, usize), &'static str> {
    let mut out = Vec::new();
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Ok((out, i + 1)),
            b'\\' if matches!(s.get(i + 1), Some(b'"' | b'\\')) => {
                out.push(s[i + 1]);
                i += 2;
            }
            _ => {
                out.push(b);
                i += 1;
            }
        }
    }
    Err("unterminated quoted string")
}

/// Decodes an RFC 5987 `ext-value` (`charset'language'percent-encoded`). None if
/// malformed or in a charset other than UTF-8 / ISO-8859-1.
fn decode_ext_value(v: &[u8]) -> Option<String> {
    let q1 = memchr::memchr(b'\'', v)?;
    let (charset, rest) = (&v[..q1], &v[q1 + 1..]);
    let q2 = memchr::memchr(b'\'', rest)?;
    let bytes = percent_decode(&rest[q2 + 1..])?;
    if charset.eq_ignore_ascii_case(b"utf-8") {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

fn percent_decode(s: &[u8]) -> Option<Vec<u8>> {
    fn hex(b: u8) -> Option<u8> {
        char::from(b)
            .to_digit(16)
            .and_then(|d| u8::try_from(d).ok())
    }
    let mut out = Vec::with_capacity(s.len());
    let mut i = 0;
    while let Some(&b) = s.get(i) {
        if b == b'%' {
            let hi = hex(*s.get(i + 1)?)?;
            let lo = hex(*s.get(i + 2)?)?;
            out.push(hi << 4 | lo);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, PartialEq, Eq)]
    struct Part {
        head: PartHead,
        data: Vec<u8>,
    }

    fn head(name: &str, filename: Option<&str>, content_type: Option<&str>) -> PartHead {
        PartHead {
            name: name.to_owned(),
            filename: filename.map(str::to_owned),
            content_type: content_type.map(str::to_owned),
        }
    }

    fn part(name: &str, filename: Option<&str>, ct: Option<&str>, data: &[u8]) -> Part {
        Part {
            head: head(name, filename, ct),
            data: data.to_vec(),
        }
    }

    /// Feeds `body` in chunks ending at the given (increasing) split offsets, draining
    /// events after each chunk, checks the event grammar and buffering bound, and
    /// returns the reassembled parts once `finish()` succeeds.
    fn parse_split(
        boundary: &[u8],
        body: &[u8],
        limits: Limits,
        splits: &[usize],
    ) -> Result<Vec<Part>, MultipartError> {
        let mut parser = Parser::new(boundary, limits);
        let mut buf = BytesMut::new();
        let mut parts: Vec<Part> = Vec::new();
        let mut in_part = false;
        let mut ended = false;
        let mut start = 0;
        for end in splits.iter().copied().chain([body.len()]) {
            buf.extend_from_slice(&body[start..end]);
            start = end;
            while let Some(event) = parser.next_event(&mut buf)? {
                assert!(!ended, "event after End: {event:?}");
                match event {
                    Event::PartStart(h) => {
                        assert!(!in_part);
                        in_part = true;
                        parts.push(Part {
                            head: h,
                            data: Vec::new(),
                        });
                    }
                    Event::Data(d) => {
                        assert!(in_part && !d.is_empty());
                        parts.last_mut().unwrap().data.extend_from_slice(&d);
                    }
                    Event::PartEnd => {
                        assert!(in_part);
                        in_part = false;
                    }
                    Event::End => {
                        assert!(!in_part);
                        ended = true;
                    }
                }
            }
            if !ended {
                let bound = limits.part_head_bytes_max.max(boundary.len() + 4);
                assert!(buf.len() <= bound, "buffered {} > {bound}", buf.len());
            }
        }
        parser.finish()?;
        Ok(parts)
    }

    fn parse(boundary: &[u8], body: &[u8]) -> Result<Vec<Part>, MultipartError> {
        parse_split(boundary, body, Limits::default(), &[])
    }

    /// Parses with every single split and byte-at-a-time; all must agree.
    fn parse_all_splits(boundary: &[u8], body: &[u8]) -> Result<Vec<Part>, MultipartError> {
        let whole = parse(boundary, body);
        for split in 0..=body.len() {
            assert_eq!(
                parse_split(boundary, body, Limits::default(), &[split]),
                whole,
                "split at {split}"
            );
        }
        let bytewise: Vec<usize> = (1..body.len()).collect();
        assert_eq!(
            parse_split(boundary, body, Limits::default(), &bytewise),
            whole
        );
        whole
    }

    const CURL_BOUNDARY: &[u8] = b"------------------------d74496d66958873e";

    fn curl_body() -> Vec<u8> {
        // curl -F name=alice -F file=@hello.txt http://host/upload
        b"--------------------------d74496d66958873e\r\n\
          Content-Disposition: form-data; name=\"name\"\r\n\
          \r\n\
          alice\r\n\
          --------------------------d74496d66958873e\r\n\
          Content-Disposition: form-data; name=\"file\"; filename=\"hello.txt\"\r\n\
          Content-Type: text/plain\r\n\
          \r\n\
          hello world\n\r\n\
          --------------------------d74496d66958873e--\r\n"
            .to_vec()
    }

    #[test]
    fn curl_two_field_form() {
        assert_eq!(
            parse_all_splits(CURL_BOUNDARY, &curl_body()).unwrap(),
            vec![
                part("name", None, None, b"alice"),
                part(
                    "file",
                    Some("hello.txt"),
                    Some("text/plain"),
                    b"hello world\n"
                ),
            ]
        );
    }

    #[test]
    fn curl_event_sequence_and_zero_copy() {
        let mut parser = Parser::new(CURL_BOUNDARY, Limits::default());
        let mut buf = BytesMut::from(&curl_body()[..]);
        let mut events = Vec::new();
        while let Some(e) = parser.next_event(&mut buf).unwrap() {
            events.push(e);
        }
        assert_eq!(
            events,
            vec![
                Event::PartStart(head("name", None, None)),
                Event::Data(Bytes::from_static(b"alice")),
                Event::PartEnd,
                Event::PartStart(head("file", Some("hello.txt"), Some("text/plain"))),
                Event::Data(Bytes::from_static(b"hello world\n")),
                Event::PartEnd,
                Event::End,
            ]
        );
        assert_eq!(&buf[..], b"\r\n", "epilogue left to the caller");
        assert_eq!(parser.next_event(&mut buf), Ok(None));
        assert_eq!(parser.finish(), Ok(()));
        assert!(parser.is_done());
        assert_eq!(parser.parts_count(), 2);
    }

    #[test]
    fn browser_webkit_body() {
        let body = "------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
            Content-Disposition: form-data; name=\"title\"\r\n\
            \r\n\
            caf\u{e9} \u{1f600}\r\n\
            ------WebKitFormBoundary7MA4YWxkTrZu0gW\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"r\u{e9}sum\u{e9} %22x%22.pdf\"\r\n\
            Content-Type: application/pdf\r\n\
            \r\n\
            %PDF-1.4\r\n\x00\x01\x7f\r\n\
            ------WebKitFormBoundary7MA4YWxkTrZu0gW--\r\n"
            .as_bytes()
            .to_vec();
        assert_eq!(
            parse_all_splits(b"----WebKitFormBoundary7MA4YWxkTrZu0gW", &body).unwrap(),
            vec![
                part("title", None, None, "caf\u{e9} \u{1f600}".as_bytes()),
                part(
                    "file",
                    Some("r\u{e9}sum\u{e9} %22x%22.pdf"),
                    Some("application/pdf"),
                    b"%PDF-1.4\r\n\x00\x01\x7f"
                ),
            ]
        );
    }

    #[test]
    fn data_with_crlf_dashes_and_boundary_lookalikes() {
        let data: &[u8] = b"\r\n--\r\n--b\r\n--bo\r\n--boun\r\n-boundary\n--boundary\r--boundary\
            \r\r\n\r\n--bounda\r\n--boundar\r\n";
        let mut body = b"--boundary\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n--boundary--");
        assert_eq!(
            parse_all_splits(b"boundary", &body).unwrap(),
            vec![part("f", None, None, data)]
        );
    }

    #[test]
    fn data_starting_with_boundary_text_is_data() {
        // The CRLF ending the header section is not the CRLF of a delimiter.
        let body = b"--b\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n--b--x\r\n--b--";
        assert_eq!(
            parse_all_splits(b"b", body).unwrap(),
            vec![part("f", None, None, b"--b--x")]
        );
    }

    #[test]
    fn all_two_way_splits_of_multi_part_body() {
        let mut body = b"preamble\r\n--xyz\r\n".to_vec();
        for i in 0..5u8 {
            body.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"p{i}\"\r\n\r\n").as_bytes(),
            );
            body.extend_from_slice(&vec![b'a' + i; usize::from(i) * 7]);
            body.extend_from_slice(b"\r\n--xyz\r\n");
        }
        body.truncate(body.len() - 2);
        body.extend_from_slice(b"--\r\nepilogue");
        let parts = parse_all_splits(b"xyz", &body).unwrap();
        assert_eq!(parts.len(), 5);
        for (i, p) in parts.iter().enumerate() {
            assert_eq!(p.head.name, format!("p{i}"));
            assert_eq!(p.data.len(), i * 7);
        }
    }

    #[test]
    fn data_events_are_as_large_as_possible() {
        let mut parser = Parser::new(b"bnd", Limits::default());
        let mut buf =
            BytesMut::from(&b"--bnd\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n"[..]);
        assert!(matches!(
            parser.next_event(&mut buf),
            Ok(Some(Event::PartStart(_)))
        ));
        // Without a delimiter in sight, everything but a possible delimiter prefix goes out.
        buf.extend_from_slice(&vec![b'x'; 100_000]);
        buf.extend_from_slice(b"\r\n--bn");
        let Ok(Some(Event::Data(d))) = parser.next_event(&mut buf) else {
            panic!("expected data")
        };
        assert_eq!(d.len(), 100_000);
        assert_eq!(&buf[..], b"\r\n--bn");
        assert_eq!(parser.next_event(&mut buf), Ok(None));
        // Not a delimiter after all: released in one event.
        buf.extend_from_slice(b"x");
        assert_eq!(
            parser.next_event(&mut buf),
            Ok(Some(Event::Data(Bytes::from_static(b"\r\n--bnx"))))
        );
        assert!(buf.is_empty());
    }

    #[test]
    fn long_data_one_byte_at_a_time_is_fast_and_bounded() {
        let data: Vec<u8> = (0..300_000u32)
            .map(|i| if i % 5 == 0 { b'\r' } else { b'-' })
            .collect();
        let mut body = b"--q\r\nContent-Disposition: form-data; name=\"f\"\r\n\r\n".to_vec();
        body.extend_from_slice(&data);
        body.extend_from_slice(b"\r\n--q--");
        let splits: Vec<usize> = (1..body.len()).collect();
        let parts = parse_split(b"q", &body, Limits::default(), &splits).unwrap();
        assert_eq!(parts, vec![part("f", None, None, &data)]);
    }

    #[test]
    fn empty_file_part() {
        let body = b"--b\r\n\
            Content-Disposition: form-data; name=\"file\"; filename=\"\"\r\n\
            Content-Type: application/octet-stream\r\n\r\n\
            \r\n--b\r\n\
            Content-Disposition: form-data; name=\"x\"\r\n\r\n\
            \r\n--b--\r\n";
        assert_eq!(
            parse_all_splits(b"b", body).unwrap(),
            vec![
                part("file", Some(""), Some("application/octet-stream"), b""),
                part("x", None, None, b""),
            ]
        );
        let mut parser = Parser::new(b"b", Limits::default());
        let mut buf = BytesMut::from(&body[..]);
        assert!(matches!(
            parser.next_event(&mut buf),
            Ok(Some(Event::PartStart(_)))
        ));
        assert_eq!(parser.next_event(&mut buf), Ok(Some(Event::PartEnd)));
    }

    #[test]
    fn missing_final_boundary_fails_at_finish() {
        let body = curl_body();
        let cut = body.len() - b"--\r\n".len();
        for len in [cut, cut - 20, 60, 10, 0] {
            assert_eq!(
                parse(CURL_BOUNDARY, &body[..len]),
                Err(MultipartError::UnexpectedEof),
                "truncated at {len}"
            );
        }
    }

    #[test]
    fn part_head_too_large() {
        let limits = Limits {
            part_head_bytes_max: 64,
            ..Limits::default()
        };
        let head = b"Content-Disposition: form-data; name=\"f\"\r\n\r\n"; // 44 bytes
        let mut body = b"--b\r\n".to_vec();
        body.extend_from_slice(b"X-Pad: ");
        body.extend_from_slice(&[b'p'; 64 - 44 - 9]);
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(head);
        body.extend_from_slice(b"data\r\n--b--");
        // Exactly at the limit: fine.
        assert!(parse_split(b"b", &body, limits, &[]).is_ok());
        // One byte more: rejected, whether complete or still arriving.
        body.insert(12, b'p');
        assert_eq!(
            parse_split(b"b", &body, limits, &[]),
            Err(MultipartError::PartHeadTooLarge)
        );
        let endless = [&b"--b\r\nX: "[..], &[b'y'; 1000]].concat();
        let splits: Vec<usize> = (1..endless.len()).collect();
        assert_eq!(
            parse_split(b"b", &endless, limits, &splits),
            Err(MultipartError::PartHeadTooLarge)
        );
    }

    #[test]
    fn too_many_parts() {
        let limits = Limits {
            parts_count_max: 3,
            ..Limits::default()
        };
        let body = |n: usize| {
            let mut b = Vec::new();
            for i in 0..n {
                b.extend_from_slice(
                    format!("--b\r\nContent-Disposition: form-data; name=\"{i}\"\r\n\r\nv\r\n")
                        .as_bytes(),
                );
            }
            b.extend_from_slice(b"--b--");
            b
        };
        assert_eq!(parse_split(b"b", &body(3), limits, &[]).unwrap().len(), 3);
        assert_eq!(
            parse_split(b"b", &body(4), limits, &[]),
            Err(MultipartError::TooManyParts)
        );
    }

    #[test]
    fn preamble_and_epilogue_are_skipped() {
        let body = b"This is the preamble.\r\nIt has --b-like text: -b --bx\r\n\
            --b\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\n1\r\n\
            --b--\r\nThis is the epilogue. --b\r\n--b--\r\n";
        assert_eq!(
            parse_all_splits(b"b", body).unwrap(),
            vec![part("a", None, None, b"1")]
        );
    }

    #[test]
    fn preamble_too_large() {
        let limits = Limits {
            preamble_bytes_max: 16,
            ..Limits::default()
        };
        let ok = b"0123456789abcdef\r\n--b--";
        assert!(parse_split(b"b", ok, limits, &[]).is_ok());
        let long = b"0123456789abcdefg\r\n--b--";
        assert_eq!(
            parse_split(b"b", long, limits, &[]),
            Err(MultipartError::PreambleTooLarge)
        );
        // Without any delimiter, bytes are discarded, not buffered, until the limit.
        let endless = [b'z'; 1000];
        let splits: Vec<usize> = (1..endless.len()).collect();
        assert_eq!(
            parse_split(b"b", &endless, limits, &splits),
            Err(MultipartError::PreambleTooLarge)
        );
    }

    #[test]
    fn quoted_names_with_escapes() {
        let body = br#"--b
Content-Disposition: form-data; name="say \"hi\" \\ o/"; filename="C:\dir\a;b=c.txt"

x
--b--"#
            .replace_crlf();
        assert_eq!(
            parse(b"b", &body).unwrap(),
            vec![part(
                "say \"hi\" \\ o/",
                Some("C:\\dir\\a;b=c.txt"),
                None,
                b"x"
            )]
        );
    }

    #[test]
    fn filename_star_takes_precedence() {
        let body = "--b\r\n\
            Content-Disposition: form-data; filename*=UTF-8''na%C3%AFve%20file.txt; \
            filename=\"naive file.txt\"; name=upload\r\n\r\nx\r\n\
            --b\r\n\
            Content-Disposition: form-data; name=l; filename=\"fallback\"; \
            filename*=iso-8859-1'en'%E9t%E9\r\n\r\nx\r\n\
            --b\r\n\
            Content-Disposition: form-data; name=bad; filename=\"fallback\"; \
            filename*=UTF-8''%ZZ\r\n\r\nx\r\n\
            --b--"
            .as_bytes();
        assert_eq!(
            parse(b"b", body).unwrap(),
            vec![
                part("upload", Some("na\u{ef}ve file.txt"), None, b"x"),
                part("l", Some("\u{e9}t\u{e9}"), None, b"x"),
                part("bad", Some("fallback"), None, b"x"),
            ]
        );
    }

    #[test]
    fn header_names_and_params_are_case_insensitive() {
        let body = b"--b\r\n\
            CONTENT-TYPE:image/png  \r\n\
            x-other: ignored\r\n\
            content-disposition:   Form-Data ;FILENAME=pic.png;  NAME = \"img\"  ;;\r\n\
            \r\n\x89PNG\r\n--b--";
        assert_eq!(
            parse(b"b", body).unwrap(),
            vec![part("img", Some("pic.png"), Some("image/png"), b"\x89PNG")]
        );
    }

    #[test]
    fn raw_and_invalid_utf8_in_quotes_is_decoded_lossily() {
        let mut body =
            "--b\r\nContent-Disposition: form-data; name=\"\u{4f60}\u{597d}\"; filename=\""
                .as_bytes()
                .to_vec();
        body.extend_from_slice(b"a\xffb.txt\"\r\n\r\n\r\n--b--");
        assert_eq!(
            parse(b"b", &body).unwrap(),
            vec![part("\u{4f60}\u{597d}", Some("a\u{fffd}b.txt"), None, b"")]
        );
    }

    #[test]
    fn part_head_errors() {
        let cases: &[(&[u8], MultipartError)] = &[
            (b"\r\n", MultipartError::MissingContentDisposition),
            (
                b"Content-Type: text/plain\r\n\r\n",
                MultipartError::MissingContentDisposition,
            ),
            (
                b"Content-Disposition: form-data; filename=\"a\"\r\n\r\n",
                MultipartError::MissingName,
            ),
            (
                b"Content-Disposition: form-data;\r\n name=\"a\"\r\n\r\n",
                MultipartError::MalformedPartHead("obsolete line folding"),
            ),
            (
                b"Content-Disposition: attachment; name=\"a\"\r\n\r\n",
                MultipartError::MalformedPartHead("Content-Disposition type is not form-data"),
            ),
            (
                b"Content-Disposition: form-data; name=\"a\r\n\r\n",
                MultipartError::MalformedPartHead("unterminated quoted string"),
            ),
            (
                b"Content-Disposition: form-data; name=\"a\" x\r\n\r\n",
                MultipartError::MalformedPartHead("expected ';' between parameters"),
            ),
            (
                b"Content-Disposition: form-data; name\r\n\r\n",
                MultipartError::MalformedPartHead("parameter without value"),
            ),
            (
                b"Content-Disposition: form-data; name=a\nX: y\r\n\r\n",
                MultipartError::MalformedPartHead("bare CR or LF"),
            ),
            (
                b"Content-Disposition form-data; name=a\r\n\r\n",
                MultipartError::MalformedPartHead("header line without colon"),
            ),
            (
                b"Bad Name: x\r\nContent-Disposition: form-data; name=a\r\n\r\n",
                MultipartError::MalformedPartHead("invalid header name"),
            ),
            (
                b"Content-Disposition: form-data; name=a\r\n\
                  content-disposition: form-data; name=b\r\n\r\n",
                MultipartError::MalformedPartHead("duplicate header"),
            ),
        ];
        for (head, err) in cases {
            let body = [&b"--b\r\n"[..], head, b"data\r\n--b--"].concat();
            assert_eq!(
                parse(b"b", &body),
                Err(err.clone()),
                "{:?}",
                head.escape_ascii()
            );
        }
    }

    #[test]
    fn transport_padding_and_malformed_delimiters() {
        let padded = b"--b \t \r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--b\t\r\n\
            Content-Disposition: form-data; name=c\r\n\r\n2\r\n--b--";
        assert_eq!(
            parse_all_splits(b"b", padded).unwrap(),
            vec![part("a", None, None, b"1"), part("c", None, None, b"2")]
        );
        for bad in [
            &b"--bx\r\n"[..],
            b"--b\n",
            b"--b -- ",
            b"--b-x",
            b"--b\rx",
            b"--b\r\nContent-Disposition: form-data; name=a\r\n\r\n1\r\n--bb--",
        ] {
            assert_eq!(
                parse(b"b", bad),
                Err(MultipartError::MalformedDelimiter),
                "{:?}",
                bad.escape_ascii()
            );
        }
    }

    #[test]
    fn close_delimiter_without_parts() {
        assert_eq!(parse_all_splits(b"b", b"--b--").unwrap(), vec![]);
        assert_eq!(parse_all_splits(b"b", b"\r\n--b--\r\n").unwrap(), vec![]);
    }

    #[test]
    fn errors_are_sticky() {
        let mut parser = Parser::new(b"b", Limits::default());
        let mut buf = BytesMut::from(&b"--b!"[..]);
        assert_eq!(
            parser.next_event(&mut buf),
            Err(MultipartError::MalformedDelimiter)
        );
        buf.extend_from_slice(b"\r\n--b--");
        assert_eq!(
            parser.next_event(&mut buf),
            Err(MultipartError::MalformedDelimiter)
        );
        assert_eq!(parser.finish(), Err(MultipartError::MalformedDelimiter));
    }

    #[test]
    fn boundary_from_content_type_cases() {
        let ok: &[(&[u8], &[u8])] = &[
            (
                b"multipart/form-data; boundary=------------------------d74496d66958873e",
                b"------------------------d74496d66958873e",
            ),
            (
                b"multipart/form-data; boundary=----WebKitFormBoundary7MA4YWxkTrZu0gW",
                b"----WebKitFormBoundary7MA4YWxkTrZu0gW",
            ),
            (b"Multipart/Form-Data;BOUNDARY=\"a b:c\"", b"a b:c"),
            (
                b"  multipart/form-data ; charset=utf-8; Boundary = \"x\\\"y\" ",
                b"x\"y",
            ),
            (b"multipart/form-data; boundary=abc; boundary=def", b"abc"),
        ];
        for (value, boundary) in ok {
            assert_eq!(
                boundary_from_content_type(value).as_deref(),
                Some(*boundary),
                "{:?}",
                value.escape_ascii()
            );
        }
        let long = [&b"multipart/form-data; boundary="[..], &[b'a'; 71]].concat();
        let max = [&b"multipart/form-data; boundary="[..], &[b'a'; 70]].concat();
        assert!(boundary_from_content_type(&max).is_some());
        for value in [
            &long[..],
            b"multipart/mixed; boundary=abc",
            b"application/x-www-form-urlencoded",
            b"multipart/form-data",
            b"multipart/form-data; charset=utf-8",
            b"multipart/form-data; boundary=",
            b"multipart/form-data; boundary=\"\"",
            b"multipart/form-data; boundary=\"abc ",
            b"multipart/form-data; boundary=\"abc \"",
            b"multipart/form-data; boundary=\"a\rb\"",
            b"multipart/form-data; boundary=\"a\xc3\xa9\"",
            b"multipart/form-datax; boundary=abc",
            b"",
        ] {
            assert_eq!(
                boundary_from_content_type(value),
                None,
                "{:?}",
                value.escape_ascii()
            );
        }
    }

    #[test]
    fn error_messages_are_human_readable() {
        assert_eq!(
            MultipartError::MalformedPartHead("bare CR or LF").to_string(),
            "malformed multipart part header: bare CR or LF"
        );
        assert_eq!(
            MultipartError::UnexpectedEof.to_string(),
            "multipart body ended before the closing boundary"
        );
    }

    trait ReplaceCrlf {
        fn replace_crlf(&self) -> Vec<u8>;
    }

    impl ReplaceCrlf for [u8] {
        /// `\n` -> `\r\n`, to write bodies as raw strings.
        fn replace_crlf(&self) -> Vec<u8> {
            self.iter()
                .flat_map(|&b| {
                    if b == b'\n' {
                        vec![b'\r', b'\n']
                    } else {
                        vec![b]
                    }
                })
                .collect()
        }
    }
}
