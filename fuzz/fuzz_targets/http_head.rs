//! Fuzz target for `fastdfs::http::head::parse_head` (plus body framing via the chunked
//! decoder): arbitrary bytes, fed at arbitrary split points, parsed as a stream of pipelined
//! requests. Must never panic; every parsed head must be self-consistent; feeding the same
//! stream in pieces must yield the same heads as feeding it at once (up to the first error,
//! since some limit errors are detected early on partial input).
//!
//! Input layout: byte 0 = flags (bit 0: tight limits), byte 1 = number of cuts (mod 9),
//! then 2 bytes per cut (u16 LE position), then the stream.
#![no_main]

use bytes::{Buf, Bytes, BytesMut};
use fastdfs::http::chunked::{self, Chunk, Decoder};
use fastdfs::http::head::{parse_head, BodyKind, Limits, RequestHead, Version};
use libfuzzer_sys::fuzz_target;

/// Requests parsed from one stream: (raw head, body bytes), and whether it ended in error.
#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    requests: Vec<(Bytes, Vec<u8>)>,
    failed: bool,
}

enum Phase {
    Head,
    Skip(u64, Vec<u8>),
    Chunked(Decoder, Vec<u8>),
}

fn check(h: &RequestHead) {
    assert!(!h.raw().is_empty());
    assert!(!h.method().is_empty());
    assert!(!h.target().is_empty());
    assert!(h.target().ends_with(h.origin_form()));
    assert!(h.origin_form().starts_with(h.path()));
    if !h.query().is_empty() {
        assert_eq!(h.origin_form(), format!("{}?{}", h.path(), h.query()));
    }
    assert!(h.path().is_empty() || h.path().starts_with('/') || h.path() == "*");
    for (name, value) in h.headers() {
        assert!(!name.is_empty());
        assert!(h.header(name).is_some());
        let _ = value;
    }
    assert_eq!(h.headers().count(), h.headers_len());
    if h.body() == BodyKind::Chunked {
        assert_eq!(h.version(), Version::Http11);
        assert!(h.header("content-length").is_none());
    }
    if h.version() == Version::Http11 {
        assert!(h.header("host").is_some());
    }
    let _ = (h.keep_alive(), h.expect_continue(), h.header_str("host"));
}

fn run(stream: &[u8], cuts: &[usize], limits: &Limits) -> Outcome {
    let mut out = Outcome {
        requests: Vec::new(),
        failed: false,
    };
    let mut buf = BytesMut::new();
    let mut phase = Phase::Head;
    let mut fed = 0;
    for end in cuts.iter().copied().chain(std::iter::once(stream.len())) {
        buf.extend_from_slice(&stream[fed..end]);
        fed = end;
        loop {
            match &mut phase {
                Phase::Head => match parse_head(&mut buf, limits) {
                    Ok(Some(h)) => {
                        check(&h);
                        phase = match h.body() {
                            BodyKind::None => Phase::Skip(0, Vec::new()),
                            BodyKind::Length(n) => Phase::Skip(n, Vec::new()),
                            BodyKind::Chunked => {
                                Phase::Chunked(Decoder::new(chunked::Limits::default()), Vec::new())
                            }
                        };
                        out.requests.push((h.raw().clone(), Vec::new()));
                    }
                    Ok(None) => break,
                    Err(e) => {
                        assert!([400, 414, 431, 501, 505].contains(&e.status()));
                        out.failed = true;
                        return out;
                    }
                },
                Phase::Skip(n, body) => {
                    let k = (*n).min(buf.len() as u64) as usize;
                    body.extend_from_slice(&buf[..k]);
                    buf.advance(k);
                    *n -= k as u64;
                    if *n > 0 {
                        break;
                    }
                    out.requests.last_mut().unwrap().1 = std::mem::take(body);
                    phase = Phase::Head;
                }
                Phase::Chunked(dec, body) => match dec.decode(&mut buf) {
                    Ok(Some(Chunk::Data(d))) => body.extend_from_slice(&d),
                    Ok(Some(Chunk::End)) => {
                        out.requests.last_mut().unwrap().1 = std::mem::take(body);
                        phase = Phase::Head;
                    }
                    Ok(None) => break,
                    Err(_) => {
                        out.failed = true;
                        return out;
                    }
                },
            }
            if out.requests.len() > 64 {
                return out;
            }
        }
    }
    out
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = if data[0] & 1 == 1 {
        Limits {
            head_bytes_max: 256,
            headers_count_max: 4,
            uri_bytes_max: 32,
        }
    } else {
        Limits::default()
    };
    let ncuts = (data[1] % 9) as usize;
    let Some(cut_bytes) = data.get(2..2 + 2 * ncuts) else {
        return;
    };
    let stream = &data[2 + 2 * ncuts..];
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (stream.len() + 1))
        .collect();
    cuts.sort_unstable();

    let whole = run(stream, &[], &limits);
    let split = run(stream, &cuts, &limits);
    if !whole.failed && !split.failed {
        assert_eq!(whole, split);
    } else {
        let k = whole.requests.len().min(split.requests.len());
        // The last request of the shorter list may have been cut short by the error.
        let k = k.saturating_sub(1);
        assert_eq!(whole.requests[..k], split.requests[..k]);
    }
});
