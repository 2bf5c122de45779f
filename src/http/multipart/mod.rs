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
//!   come in any order and case, as quoted strings or tokens. Inside quoted strings a
//!   backslash escapes a tspecial (`\"`, `\\`, `\/`, `\;`, ... as Go's
//!   `mime.ParseMediaType`, go-fastdfs' parser, reads them); any other backslash is kept
//!   literally, so that Windows paths sent by old browsers (`filename="C:\dir\a.txt"`)
//!   survive. Raw UTF-8 (as
//!   browsers send it) is accepted; invalid UTF-8 is decoded lossily.
//!   `filename*=charset'lang'percent-encoded` (RFC 5987, UTF-8 or ISO-8859-1) takes
//!   precedence over `filename`; an unusable `filename*` is ignored.
//! * `Content-Transfer-Encoding` and all other part headers are ignored (RFC 7578 §4.7).
//!
//! The parser assumes the boundary contains no CR or LF (which
//! [`boundary_from_content_type`] guarantees); with any other boundary it still never
//! panics, it may just misparse.

use crate::codec::{is_ows, trim_ows};
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

    /// In a part's body, with nothing left in `buf` from earlier input: how many leading
    /// bytes of `data` (the input that follows) are certainly data of this part. The caller
    /// keeps them where they are (received in place, say) as if `next_event` had returned
    /// them, and gives the rest, from the delimiter or what may be its start, to
    /// `next_event` as usual. None outside a part's body.
    #[must_use]
    pub fn body_data_len(&self, data: &[u8]) -> Option<usize> {
        if !matches!(self.state, State::Body) {
            return None;
        }
        Some(match self.delimiter_finder.find(data) {
            Some(pos) => pos,
            None => data.len() - partial_suffix_len(data, &self.delimiter),
        })
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
            let flow = match self.state {
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
                    Flow::Again
                }
                State::Preamble { discarded } => self.preamble(buf, discarded)?,
                State::DelimiterTail { padding } => self.delimiter_tail(buf, padding)?,
                State::Head { scanned } => self.part_head(buf, scanned)?,
                State::Body => self.body(buf),
                State::Done => return Ok(None),
                State::Failed(ref e) => return Err(e.clone()),
            };
            if let Flow::Out(event) = flow {
                return Ok(event);
            }
        }
    }

    /// Discards the preamble up to the first delimiter (at most `preamble_bytes_max`).
    fn preamble(&mut self, buf: &mut BytesMut, discarded: usize) -> Result<Flow, MultipartError> {
        let max = self.limits.preamble_bytes_max;
        if let Some(pos) = self.delimiter_finder.find(buf) {
            if discarded.saturating_add(pos) > max {
                return Err(MultipartError::PreambleTooLarge);
            }
            buf.advance(pos + self.delimiter.len());
            self.state = State::DelimiterTail { padding: 0 };
            return Ok(Flow::Again);
        }
        let drop = buf.len() - partial_suffix_len(buf, &self.delimiter);
        let discarded = discarded.saturating_add(drop);
        if discarded > max {
            return Err(MultipartError::PreambleTooLarge);
        }
        buf.advance(drop);
        self.state = State::Preamble { discarded };
        Ok(Flow::Out(None))
    }

    /// After a delimiter: optional padding, then CRLF (a part begins) or `--` (the end).
    fn delimiter_tail(
        &mut self,
        buf: &mut BytesMut,
        padding: usize,
    ) -> Result<Flow, MultipartError> {
        let ws = buf.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
        let padding = padding.saturating_add(ws);
        if padding > self.limits.part_head_bytes_max {
            return Err(MultipartError::PartHeadTooLarge);
        }
        buf.advance(ws);
        self.state = State::DelimiterTail { padding };
        match (buf.first(), buf.get(1)) {
            (None, _) => return Ok(Flow::Out(None)),
            // The close delimiter's `--` must follow the boundary directly.
            (Some(b'-'), _) if padding > 0 => return Err(MultipartError::MalformedDelimiter),
            (Some(b'-' | b'\r'), None) => return Ok(Flow::Out(None)),
            (Some(b'-'), Some(b'-')) => {
                buf.advance(2);
                self.state = State::Done;
                return Ok(Flow::Out(Some(Event::End)));
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
        Ok(Flow::Again)
    }

    /// A part's header section, once it is whole (at most `part_head_bytes_max`).
    fn part_head(&mut self, buf: &mut BytesMut, scanned: usize) -> Result<Flow, MultipartError> {
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
            return Ok(Flow::Out(None));
        };
        if end > max {
            return Err(MultipartError::PartHeadTooLarge);
        }
        // Header lines, each with its CRLF; without the blank line.
        let head = parse_head(&buf[..end - 2])?;
        buf.advance(end);
        self.state = State::Body;
        Ok(Flow::Out(Some(Event::PartStart(head))))
    }

    /// A part's data up to the next delimiter; bytes that may begin one are held back.
    fn body(&mut self, buf: &mut BytesMut) -> Flow {
        if let Some(pos) = self.delimiter_finder.find(buf) {
            if pos > 0 {
                return Flow::Out(Some(Event::Data(buf.split_to(pos).freeze())));
            }
            buf.advance(self.delimiter.len());
            self.state = State::DelimiterTail { padding: 0 };
            return Flow::Out(Some(Event::PartEnd));
        }
        let n = buf.len() - partial_suffix_len(buf, &self.delimiter);
        if n == 0 {
            return Flow::Out(None);
        }
        Flow::Out(Some(Event::Data(buf.split_to(n).freeze())))
    }
}

/// What a state's step did: go on with the new state, or hand this out (None: more input
/// is needed first).
enum Flow {
    Again,
    Out(Option<Event>),
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
    let mut params = Vec::with_capacity(2);
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

/// RFC 2045 tspecials: the characters a backslash escapes in a quoted string.
const TSPECIALS: &[u8] = b"()<>@,;:\\\"/[]?=";

/// Parses a quoted string whose opening quote is just before `s[i]`; returns the
/// unescaped content and the index after the closing quote. A backslash escapes a
/// tspecial (`\"`, `\\`, `\/`, `\;`, ...) and is literal before anything else (Windows
/// paths from old browsers), exactly as Go's `mime.ParseMediaType` reads it.
fn parse_quoted(s: &[u8], mut i: usize) -> Result<(Vec<u8>, usize), &'static str> {
    // The usual case, no escape before the closing quote: one copy.
    if let Some(n) = memchr::memchr2(b'"', b'\\', &s[i.min(s.len())..]) {
        if s[i + n] == b'"' {
            return Ok((s[i..i + n].to_vec(), i + n + 1));
        }
    }
    let mut out = Vec::with_capacity(s.len().saturating_sub(i));
    while let Some(&b) = s.get(i) {
        match b {
            b'"' => return Ok((out, i + 1)),
            b'\\' if s.get(i + 1).is_some_and(|c| TSPECIALS.contains(c)) => {
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
    let bytes = crate::codec::percent_decode_strict(&rest[q2 + 1..])?;
    if charset.eq_ignore_ascii_case(b"utf-8") {
        Some(String::from_utf8_lossy(&bytes).into_owned())
    } else if charset.eq_ignore_ascii_case(b"iso-8859-1") {
        Some(bytes.iter().map(|&b| char::from(b)).collect())
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
