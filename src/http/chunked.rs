//! Decoder for the HTTP/1.1 `chunked` transfer coding (RFC 9112 §7.1), sans-IO.
//!
//! Owns: turning the bytes of a chunked request body, as they arrive in the connection
//! buffer, into data pieces and an end marker, while consuming exactly the body (chunk
//! lines, data, trailer section, final CRLF) so that whatever follows in the buffer is the
//! next pipelined request.
//!
//! Strictness (request-smuggling guards): chunk sizes are 1 to 16 hex digits of at most
//! 2^63-1 (more digits or a larger size is `ChunkSizeOverflow`: no body can be that long, file
//! sizes and Go's lengths are signed 64-bit; no `0x`, sign or whitespace before the digits); whitespace after the
//! digits is only allowed before a `;` extension; every line and the data of each chunk must
//! end in CRLF (bare LF or CR without LF is `MissingCrlf`); extensions and trailer fields are
//! checked for control characters and then discarded. The state machine works byte by
//! byte on control data, so the result never depends on how the input was split.
//!
//! Limits: `chunk_line_bytes_max` bounds one chunk-size line including extensions and its
//! CRLF; `trailer_bytes_max` bounds the whole trailer section including the final CRLF.
//! Trailer field values are not returned. After an error the decoder stays failed and keeps
//! returning that error (the connection must be closed).

use bytes::{Buf, Bytes, BytesMut};

/// Size limits applied by the decoder.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Maximum length of one chunk-size line, including extensions and CRLF.
    pub chunk_line_bytes_max: usize,
    /// Maximum length of the trailer section, including the final CRLF.
    pub trailer_bytes_max: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            chunk_line_bytes_max: 4 * 1024,
            trailer_bytes_max: 8 * 1024,
        }
    }
}

/// Largest chunk size accepted (what a signed 64-bit length holds).
pub const CHUNK_BYTES_MAX: u64 = i64::MAX as u64;

/// A piece of decoded body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Chunk {
    /// Body bytes (never empty; may be only part of a chunk).
    Data(Bytes),
    /// The last chunk and the trailer section have been consumed.
    End,
}

/// Why a chunked body was rejected (answer 400 and close the connection).
#[derive(Debug, thiserror::Error, PartialEq, Eq, Clone, Copy)]
pub enum ChunkedError {
    #[error("invalid chunk size")]
    BadChunkSize,
    #[error("chunk size out of range (more than 2^63-1 bytes)")]
    ChunkSizeOverflow,
    #[error("expected CRLF")]
    MissingCrlf,
    #[error("chunk-size line too long")]
    LineTooLong,
    #[error("invalid chunk extension")]
    BadExtension,
    #[error("invalid trailer field")]
    BadTrailer,
    #[error("trailer section too large")]
    TrailerTooLarge,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    /// At the start of a chunk-size line: a hex digit must follow.
    SizeStart,
    /// Reading hex digits.
    Size,
    /// Whitespace after the digits: only more whitespace or `;` may follow.
    SizeWs,
    /// Inside the chunk extensions, until CR.
    Ext,
    /// CR seen at the end of the size line; LF must follow.
    SizeLf,
    /// Inside chunk data.
    Data {
        remaining: u64,
    },
    /// After chunk data: CR must follow.
    DataCr,
    /// After chunk data and CR: LF must follow.
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    /// In a trailer field name.
    TrailerName,
    /// In a trailer field value, until CR.
    TrailerValue,
    /// CR seen at the end of a trailer field line; LF must follow.
    TrailerLf,
    /// CR seen on the final empty line; LF must follow.
    EndLf,
    Done,
    Failed(ChunkedError),
}

/// Incremental chunked-body decoder. One per request body.
#[derive(Clone, Debug)]
pub struct Decoder {
    limits: Limits,
    state: State,
    /// Size of the chunk whose size line is being read.
    size: u64,
    digits: u8,
    /// Bytes of the current size line so far.
    line_bytes: usize,
    /// Bytes of the trailer section so far.
    trailer_bytes: usize,
}

#[inline]
fn hex_value(b: u8) -> Option<u64> {
    match b {
        b'0'..=b'9' => Some(u64::from(b - b'0')),
        b'a'..=b'f' => Some(u64::from(b - b'a' + 10)),
        b'A'..=b'F' => Some(u64::from(b - b'A' + 10)),
        _ => None,
    }
}

/// RFC 9110 `tchar`.
#[inline]
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// HTAB, SP, VCHAR, obs-text: what may appear inside a field value or an extension.
#[inline]
fn is_text(b: u8) -> bool {
    b == b'\t' || (b' '..=b'~').contains(&b) || b >= 0x80
}

impl Decoder {
    pub fn new(limits: Limits) -> Decoder {
        Decoder {
            limits,
            state: State::SizeStart,
            size: 0,
            digits: 0,
            line_bytes: 0,
            trailer_bytes: 0,
        }
    }

    /// Next piece of body from the front of `buf`; `Ok(None)` = need more input.
    ///
    /// `Data` is a zero-copy split of `buf`, as large as available (may be part of a
    /// chunk). After `End` the decoder has consumed exactly the body including trailers and
    /// the final CRLF: bytes left in `buf` are the next pipelined request. Calling again
    /// after `End` returns `End` without touching `buf`.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Chunk>, ChunkedError> {
        loop {
            match self.state {
                State::Done => return Ok(Some(Chunk::End)),
                State::Failed(e) => return Err(e),
                State::Data { remaining } => {
                    if buf.is_empty() {
                        return Ok(None);
                    }
                    let n = usize::try_from(remaining)
                        .unwrap_or(usize::MAX)
                        .min(buf.len());
                    let left = remaining - n as u64;
                    self.state = if left == 0 {
                        State::DataCr
                    } else {
                        State::Data { remaining: left }
                    };
                    return Ok(Some(Chunk::Data(buf.split_to(n).freeze())));
                }
                _ => {
                    let mut used = 0;
                    let mut result = Ok(());
                    for &b in buf.iter() {
                        used += 1;
                        result = self.step(b);
                        if result.is_err() || matches!(self.state, State::Data { .. } | State::Done)
                        {
                            break;
                        }
                    }
                    buf.advance(used);
                    if let Err(e) = result {
                        self.state = State::Failed(e);
                        return Err(e);
                    }
                    if !matches!(self.state, State::Data { .. } | State::Done) {
                        return Ok(None);
                    }
                }
            }
        }
    }

    /// Data bytes of the current chunk not returned yet: what its size line announced and
    /// has still to arrive (0 outside chunk data). A caller holds it against a body limit at
    /// once, before the bytes come.
    pub fn data_left(&self) -> u64 {
        match self.state {
            State::Data { remaining } => remaining,
            _ => 0,
        }
    }

    /// True once the whole body (including trailers) has been consumed.
    pub fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Advances the control-data state machine by one byte.
    fn step(&mut self, b: u8) -> Result<(), ChunkedError> {
        use ChunkedError::*;
        self.state = match (self.state, b) {
            (State::SizeStart | State::Size | State::SizeWs | State::Ext | State::SizeLf, _) => {
                self.size_line_step(b)?
            }
            (State::DataCr, b'\r') => State::DataLf,
            (State::DataCr, _) => return Err(MissingCrlf),
            (State::DataLf, b'\n') => State::SizeStart,
            (State::DataLf, _) => return Err(MissingCrlf),
            (
                State::TrailerStart
                | State::TrailerName
                | State::TrailerValue
                | State::TrailerLf
                | State::EndLf,
                _,
            ) => self.trailer_step(b)?,
            (State::Data { .. } | State::Done | State::Failed(_), _) => {
                unreachable!("step() is only called on control states")
            }
        };
        Ok(())
    }

    /// [`step`](Self::step) in a chunk-size line (digits, whitespace, extensions, CRLF),
    /// whose length is bounded by `chunk_line_bytes_max`: the next state.
    #[inline(always)]
    fn size_line_step(&mut self, b: u8) -> Result<State, ChunkedError> {
        use ChunkedError::*;
        self.line_bytes += 1;
        if self.line_bytes > self.limits.chunk_line_bytes_max {
            return Err(LineTooLong);
        }
        Ok(match (self.state, b) {
            (State::SizeStart, _) => match hex_value(b) {
                Some(v) => {
                    self.size = v;
                    self.digits = 1;
                    State::Size
                }
                None => return Err(BadChunkSize),
            },
            (State::Size, b'\r') => State::SizeLf,
            (State::Size, b';') => State::Ext,
            (State::Size, b' ' | b'\t') => State::SizeWs,
            (State::Size, b'\n') => return Err(MissingCrlf),
            (State::Size, _) => match hex_value(b) {
                Some(v) => {
                    self.digits += 1;
                    if self.digits > 16 {
                        return Err(ChunkSizeOverflow);
                    }
                    self.size = (self.size << 4) | v;
                    if self.size > CHUNK_BYTES_MAX {
                        return Err(ChunkSizeOverflow);
                    }
                    State::Size
                }
                None => return Err(BadChunkSize),
            },
            (State::SizeWs, b' ' | b'\t') => State::SizeWs,
            (State::SizeWs, b';') => State::Ext,
            (State::SizeWs, b'\n') => return Err(MissingCrlf),
            (State::SizeWs, _) => return Err(BadChunkSize),
            (State::Ext, b'\r') => State::SizeLf,
            (State::Ext, b'\n') => return Err(MissingCrlf),
            (State::Ext, _) if is_text(b) => State::Ext,
            (State::Ext, _) => return Err(BadExtension),
            (State::SizeLf, b'\n') => {
                self.line_bytes = 0;
                if self.size == 0 {
                    State::TrailerStart
                } else {
                    State::Data {
                        remaining: self.size,
                    }
                }
            }
            (State::SizeLf, _) => return Err(MissingCrlf),
            _ => unreachable!("size_line_step() is only called in a chunk-size line"),
        })
    }

    /// [`step`](Self::step) in the trailer section (fields and the final CRLF), whose length
    /// is bounded by `trailer_bytes_max`: the next state. Cold: a body reaches it only at its
    /// end, for its final CRLF and any trailer fields.
    #[cold]
    fn trailer_step(&mut self, b: u8) -> Result<State, ChunkedError> {
        use ChunkedError::*;
        self.trailer_bytes += 1;
        if self.trailer_bytes > self.limits.trailer_bytes_max {
            return Err(TrailerTooLarge);
        }
        Ok(match (self.state, b) {
            (State::TrailerStart, b'\r') => State::EndLf,
            (State::TrailerStart, b'\n') => return Err(MissingCrlf),
            (State::TrailerStart, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerStart, _) => return Err(BadTrailer),
            (State::TrailerName, b':') => State::TrailerValue,
            (State::TrailerName, b'\n') => return Err(MissingCrlf),
            (State::TrailerName, _) if is_tchar(b) => State::TrailerName,
            (State::TrailerName, _) => return Err(BadTrailer),
            (State::TrailerValue, b'\r') => State::TrailerLf,
            (State::TrailerValue, b'\n') => return Err(MissingCrlf),
            (State::TrailerValue, _) if is_text(b) => State::TrailerValue,
            (State::TrailerValue, _) => return Err(BadTrailer),
            (State::TrailerLf, b'\n') => State::TrailerStart,
            (State::TrailerLf, _) => return Err(MissingCrlf),
            (State::EndLf, b'\n') => State::Done,
            (State::EndLf, _) => return Err(MissingCrlf),
            _ => unreachable!("trailer_step() is only called in the trailer section"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Decodes `input` fed in pieces cut at `cuts`; returns (data, Ok(done) / Err, leftover).
    fn run(input: &[u8], cuts: &[usize]) -> (Vec<u8>, Result<bool, ChunkedError>, Vec<u8>) {
        let mut dec = Decoder::new(Limits::default());
        run_with(&mut dec, input, cuts)
    }

    fn run_with(
        dec: &mut Decoder,
        input: &[u8],
        cuts: &[usize],
    ) -> (Vec<u8>, Result<bool, ChunkedError>, Vec<u8>) {
        let mut buf = BytesMut::new();
        let mut data = Vec::new();
        let mut fed = 0;
        let mut bounds: Vec<usize> = cuts.to_vec();
        bounds.push(input.len());
        for end in bounds {
            buf.extend_from_slice(&input[fed..end]);
            fed = end;
            loop {
                match dec.decode(&mut buf) {
                    Ok(Some(Chunk::Data(d))) => {
                        assert!(!d.is_empty());
                        data.extend_from_slice(&d);
                    }
                    Ok(Some(Chunk::End)) => {
                        assert!(dec.is_done());
                        buf.extend_from_slice(&input[fed..]);
                        return (data, Ok(true), buf.to_vec());
                    }
                    Ok(None) => break,
                    Err(e) => return (data, Err(e), Vec::new()),
                }
            }
        }
        (data, Ok(false), buf.to_vec())
    }

    #[test]
    fn simple_body() {
        let (data, res, rest) = run(b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n", &[]);
        assert_eq!(data, b"hello world");
        assert_eq!(res, Ok(true));
        assert!(rest.is_empty());
    }

    #[test]
    fn data_is_zero_copy_and_as_large_as_available() {
        let mut dec = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"a\r\n0123"[..]);
        let ptr = buf[3..].as_ptr();
        match dec.decode(&mut buf).unwrap() {
            Some(Chunk::Data(d)) => {
                assert_eq!(&d[..], b"0123");
                assert_eq!(d.as_ptr(), ptr);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(dec.decode(&mut buf), Ok(None));
        buf.extend_from_slice(b"456789\r\n0\r\n\r\n");
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(Chunk::Data(Bytes::from_static(b"456789"))))
        );
        assert_eq!(dec.decode(&mut buf), Ok(Some(Chunk::End)));
        assert_eq!(dec.decode(&mut buf), Ok(Some(Chunk::End)), "End is sticky");
    }

    #[test]
    fn hex_sizes_any_case_and_leading_zeros() {
        let mut body = b"A\r\n".to_vec();
        body.extend_from_slice(&[b'x'; 10]);
        body.extend_from_slice(b"\r\n00f\r\n");
        body.extend_from_slice(&[b'y'; 15]);
        body.extend_from_slice(b"\r\n000\r\n\r\n");
        let (data, res, _) = run(&body, &[]);
        assert_eq!(res, Ok(true));
        assert_eq!(data.len(), 25);
    }

    #[test]
    fn extensions_are_skipped() {
        let (data, res, _) = run(
            b"5;name=value;flag\r\nhello\r\n3 ; q=\"a b\"\r\nabc\r\n0;last\r\n\r\n",
            &[],
        );
        assert_eq!((data.as_slice(), res), (&b"helloabc"[..], Ok(true)));
        assert_eq!(
            run(b"5;a\0b\r\nhello\r\n0\r\n\r\n", &[]).1,
            Err(ChunkedError::BadExtension)
        );
    }

    #[test]
    fn trailers_are_discarded() {
        let (data, res, rest) = run(
            b"3\r\nabc\r\n0\r\nX-Checksum: 123\r\nX-Other:\tv v\r\n\r\nNEXT",
            &[],
        );
        assert_eq!((data.as_slice(), res), (&b"abc"[..], Ok(true)));
        assert_eq!(rest, b"NEXT");
        for bad in [
            &b"0\r\n bad: folded\r\n\r\n"[..],
            b"0\r\nno colon\r\n\r\n",
            b"0\r\n: empty name\r\n\r\n",
            b"0\r\nX: a\x01b\r\n\r\n",
        ] {
            assert_eq!(run(bad, &[]).1, Err(ChunkedError::BadTrailer), "{bad:?}");
        }
    }

    #[test]
    fn every_split_point_decodes_identically() {
        let input: &[u8] = b"5;e=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nT: v\r\n\r\nGET / HTTP/1.1\r\n";
        let whole = run(input, &[]);
        assert_eq!(whole.1, Ok(true));
        assert_eq!(whole.0, b"helloabcdefghijklmnopqrstuvwxyz");
        assert_eq!(whole.2, b"GET / HTTP/1.1\r\n");
        for i in 0..=input.len() {
            assert_eq!(run(input, &[i]), whole, "split at {i}");
            for j in i..=input.len() {
                assert_eq!(run(input, &[i, j]), whole, "split at {i},{j}");
            }
        }
        // Byte by byte.
        let cuts: Vec<usize> = (1..input.len()).collect();
        assert_eq!(run(input, &cuts), whole);
    }

    #[test]
    fn incomplete_body_needs_more() {
        let input = b"5\r\nhello\r\n0\r\n\r\n";
        for i in 0..input.len() {
            let (_, res, _) = run(&input[..i], &[]);
            assert_eq!(res, Ok(false), "prefix {i}");
        }
    }

    #[test]
    fn bare_lf_is_rejected() {
        for bad in [
            &b"5\nhello\r\n0\r\n\r\n"[..],
            b"5\r\nhello\n0\r\n\r\n",
            b"5\r\nhello\r\n0\n\r\n",
            b"5\r\nhello\r\n0\r\n\n",
            b"5\r\nhello\r\n0\r\nX: y\n\r\n",
            b"5;ext\nhello\r\n0\r\n\r\n",
            b"5 \nhello\r\n0\r\n\r\n",
            b"5\rhello\r\n0\r\n\r\n",
            b"5\r\nhelloX\r\n0\r\n\r\n",
            b"5\r\nhello\rX0\r\n\r\n",
        ] {
            assert_eq!(run(bad, &[]).1, Err(ChunkedError::MissingCrlf), "{bad:?}");
        }
    }

    #[test]
    fn bad_sizes() {
        for bad in [
            &b"\r\n"[..],
            b"x\r\n",
            b"-1\r\n",
            b"+1\r\n",
            b"0x5\r\n",
            b" 5\r\n",
            b"5 \r\n",
            b";ext\r\n",
            b"5g\r\n",
        ] {
            assert_eq!(run(bad, &[]).1, Err(ChunkedError::BadChunkSize), "{bad:?}");
        }
        // Whitespace before an extension is allowed (BWS).
        assert_eq!(run(b"1 \t;x\r\na\r\n0\r\n\r\n", &[]).1, Ok(true));
    }

    #[test]
    fn size_overflow() {
        assert_eq!(
            run(b"10000000000000000\r\n", &[]).1,
            Err(ChunkedError::ChunkSizeOverflow)
        );
        assert_eq!(
            run(b"00000000000000005\r\nhello\r\n0\r\n\r\n", &[]).1,
            Err(ChunkedError::ChunkSizeOverflow),
            "more than 16 digits even with leading zeros"
        );
        assert_eq!(
            run(b"8000000000000000\r\n", &[]).1,
            Err(ChunkedError::ChunkSizeOverflow),
            "16 digits above 2^63-1: no body is that long"
        );
        assert_eq!(
            run(b"ffffffffffffffffffffffff\r\n", &[]).1,
            Err(ChunkedError::ChunkSizeOverflow)
        );
        // 2^63-1 bytes announced: data streams, and what is left of it is known at once.
        let mut dec = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"7fffffffffffffff\r\nabc"[..]);
        assert_eq!(
            dec.decode(&mut buf),
            Ok(Some(Chunk::Data(Bytes::from_static(b"abc"))))
        );
        assert_eq!(dec.data_left(), CHUNK_BYTES_MAX - 3);
        assert_eq!(dec.decode(&mut buf), Ok(None));
    }

    #[test]
    fn bytes_after_terminator_untouched() {
        let mut dec = Decoder::new(Limits::default());
        let mut buf = BytesMut::from(&b"0\r\n\r\nPOST /next HTTP/1.1\r\n"[..]);
        assert_eq!(dec.decode(&mut buf), Ok(Some(Chunk::End)));
        assert_eq!(&buf[..], b"POST /next HTTP/1.1\r\n");
        assert_eq!(dec.decode(&mut buf), Ok(Some(Chunk::End)));
        assert_eq!(&buf[..], b"POST /next HTTP/1.1\r\n");
    }

    #[test]
    fn line_too_long() {
        let limits = Limits {
            chunk_line_bytes_max: 16,
            ..Limits::default()
        };
        // 16 bytes including CRLF is accepted.
        let mut dec = Decoder::new(limits.clone());
        assert_eq!(
            run_with(&mut dec, b"1;aaaaaaaaaaaa\r\nx\r\n0\r\n\r\n", &[]).1,
            Ok(true)
        );
        let mut dec = Decoder::new(limits.clone());
        assert_eq!(
            run_with(&mut dec, b"1;aaaaaaaaaaaaa\r\nx\r\n0\r\n\r\n", &[]).1,
            Err(ChunkedError::LineTooLong)
        );
        // An endless extension is cut off without waiting for CRLF.
        let mut dec = Decoder::new(limits);
        let mut buf = BytesMut::from(&b"1;"[..]);
        buf.extend_from_slice(&[b'a'; 100]);
        assert_eq!(dec.decode(&mut buf), Err(ChunkedError::LineTooLong));
        assert_eq!(
            dec.decode(&mut buf),
            Err(ChunkedError::LineTooLong),
            "error is sticky"
        );
    }

    #[test]
    fn trailer_too_large() {
        let limits = Limits {
            trailer_bytes_max: 12,
            ..Limits::default()
        };
        let mut dec = Decoder::new(limits.clone());
        // "X: 1234567\r\n" is 12 bytes, plus the final CRLF = 14 > 12.
        assert_eq!(
            run_with(&mut dec, b"0\r\nX: 1234567\r\n\r\n", &[]).1,
            Err(ChunkedError::TrailerTooLarge)
        );
        let mut dec = Decoder::new(limits);
        assert_eq!(
            run_with(&mut dec, b"0\r\nX: 12345\r\n\r\n", &[]).1,
            Ok(true)
        );
    }
}
