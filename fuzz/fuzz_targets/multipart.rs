//! Fuzzes the streaming `multipart/form-data` parser (`fastdfs::http::multipart`).
//!
//! Input layout (missing bytes read as 0):
//! * byte 0: boundary length - 1 (mod 70), then that many bytes mapped onto RFC 2046
//!   `bchars` (the boundary never ends with a space);
//! * 4 bytes: chunk-size seeds, cycled, deciding where the body is split between reads
//!   (sizes from 1 byte up to ~4 KiB);
//! * 1 byte: limits (small ones, to reach every limit error) and layout knobs;
//! * the rest: the payload.
//!
//! Checks:
//! 1. the payload as a raw body (arbitrary limits): no panic; every event consumes
//!    input (so no endless loop); events follow `(PartStart Data* PartEnd)* End`; data
//!    events are non-empty; buffering stays bounded; errors are sticky; `finish()` is
//!    `Ok` iff `End` was seen; and the outcome does not depend on how the input was
//!    split (same parts, same data, same error as when fed in one piece);
//! 2. a well-formed body whose part contents are slices of the payload: it parses to
//!    exactly those parts and contents, whatever the split, and leaves the epilogue
//!    untouched;
//! 3. `boundary_from_content_type` on the payload: no panic, and any boundary it
//!    returns is 1..=70 bytes without CR/LF.
#![no_main]

use fastdfs::http::multipart::*;
use libfuzzer_sys::fuzz_target;

/// RFC 2046 `bchars`.
const BCHARS: &[u8] =
    b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ'()+_,-./:=? ";

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
struct Outcome {
    parts: Vec<(PartHead, Vec<u8>)>,
    result: Result<(), MultipartError>,
    /// Bytes left unconsumed after `End` (buffer + input never fed).
    leftover: Vec<u8>,
}

/// Feeds `body` in chunks whose sizes cycle through `chunks`, draining events after
/// each read, checking the invariants listed in the module docs.
fn feed(boundary: &[u8], body: &[u8], limits: Limits, chunks: &[usize]) -> Outcome {
    let mut parser = Parser::new(boundary, limits);
    let mut buf = BytesMut::new();
    let mut input = body;
    let mut parts: Vec<(PartHead, Vec<u8>)> = Vec::new();
    let (mut in_part, mut ended, mut data_total) = (false, false, 0usize);
    let mut k = 0;
    loop {
        loop {
            let before = buf.len();
            match parser.next_event(&mut buf) {
                Ok(None) => break,
                Err(e) => {
                    assert!(!ended, "error after End: {e:?}");
                    assert!(buf.len() <= before, "an error must not grow the buffer");
                    assert_eq!(parser.next_event(&mut buf), Err(e.clone()), "sticky");
                    assert_eq!(parser.finish(), Err(e.clone()), "sticky finish");
                    return Outcome {
                        parts,
                        result: Err(e),
                        leftover: Vec::new(),
                    };
                }
                Ok(Some(event)) => {
                    assert!(buf.len() < before, "event without progress: {event:?}");
                    assert!(!ended, "event after End: {event:?}");
                    match event {
                        Event::PartStart(head) => {
                            assert!(!in_part, "PartStart inside a part");
                            in_part = true;
                            parts.push((head, Vec::new()));
                        }
                        Event::Data(data) => {
                            assert!(in_part, "Data outside a part");
                            assert!(!data.is_empty(), "empty Data event");
                            data_total += data.len();
                            assert!(data_total <= body.len());
                            if let Some((_, content)) = parts.last_mut() {
                                content.extend_from_slice(&data);
                            }
                        }
                        Event::PartEnd => {
                            assert!(in_part, "PartEnd outside a part");
                            in_part = false;
                        }
                        Event::End => {
                            assert!(!in_part, "End inside a part");
                            ended = true;
                        }
                    }
                }
            }
        }
        if !ended {
            let bound = limits.part_head_bytes_max.max(boundary.len() + 4);
            assert!(buf.len() <= bound, "buffered {} > {bound}", buf.len());
        }
        if input.is_empty() {
            break;
        }
        let n = chunks[k % chunks.len()].clamp(1, input.len());
        k += 1;
        buf.extend_from_slice(&input[..n]);
        input = &input[n..];
    }
    let result = parser.finish();
    assert_eq!(
        result.is_ok(),
        ended,
        "finish() must be Ok iff End was seen"
    );
    assert!(parts.len() <= limits.parts_count_max);
    let leftover = if ended {
        [&buf[..], input].concat()
    } else {
        Vec::new()
    };
    Outcome {
        parts,
        result,
        leftover,
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

/// Builds a well-formed body from slices of `payload` and checks the parse.
fn well_formed(boundary: &[u8], payload: &[u8], knobs: u8, chunks: &[usize]) {
    let delimiter = [&b"\r\n--"[..], boundary].concat();
    let count = usize::from(knobs % 5);
    let len = payload.len() / (count + 1);
    // Contents are `count` slices of the payload; what remains is the epilogue.
    let contents: Vec<&[u8]> = (0..count)
        .map(|i| &payload[i * len..(i + 1) * len])
        .collect();
    let epilogue = &payload[count * len..];
    if contents.iter().any(|c| contains(c, &delimiter)) {
        return; // Not well-formed: a boundary may not appear inside a part.
    }
    let mut body = Vec::new();
    if knobs & 0x20 != 0 {
        body.extend_from_slice(b"preamble -- text\r\n");
    }
    let mut expected = Vec::new();
    for (i, content) in contents.iter().enumerate() {
        body.extend_from_slice(if i == 0 && knobs & 0x20 == 0 {
            &delimiter[2..]
        } else {
            &delimiter
        });
        body.extend_from_slice(if knobs & 0x40 != 0 {
            b" \t\r\n"
        } else {
            b"\r\n"
        });
        let head = match (i + usize::from(knobs >> 3)) % 4 {
            0 => {
                body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"f{i}\"\r\n\r\n").as_bytes(),
                );
                PartHead {
                    name: format!("f{i}"),
                    filename: None,
                    content_type: None,
                }
            }
            1 => {
                body.extend_from_slice(
                    "Content-Disposition: form-data; name=\"file\"; filename=\"r\u{e9}sum\u{e9} \\\"1\\\".txt\"\r\n\
                     Content-Type: application/octet-stream\r\n\r\n"
                        .as_bytes(),
                );
                PartHead {
                    name: "file".into(),
                    filename: Some("r\u{e9}sum\u{e9} \"1\".txt".into()),
                    content_type: Some("application/octet-stream".into()),
                }
            }
            2 => {
                body.extend_from_slice(
                    b"CONTENT-TYPE: text/plain\r\nX-Ignored: 1\r\n\
                      content-disposition: FORM-DATA; FileName*=UTF-8''a%20b.txt; filename=x; NAME=up\r\n\r\n",
                );
                PartHead {
                    name: "up".into(),
                    filename: Some("a b.txt".into()),
                    content_type: Some("text/plain".into()),
                }
            }
            _ => {
                body.extend_from_slice(
                    b"Content-Disposition: form-data; name=\"\"; filename=\"\"\r\n\r\n",
                );
                PartHead {
                    name: String::new(),
                    filename: Some(String::new()),
                    content_type: None,
                }
            }
        };
        body.extend_from_slice(content);
        expected.push((head, content.to_vec()));
    }
    body.extend_from_slice(if contents.is_empty() && knobs & 0x20 == 0 {
        &delimiter[2..]
    } else {
        &delimiter
    });
    body.extend_from_slice(b"--");
    body.extend_from_slice(epilogue);

    let limits = Limits::default();
    let want = Outcome {
        parts: expected,
        result: Ok(()),
        leftover: epilogue.to_vec(),
    };
    assert_eq!(feed(boundary, &body, limits, chunks), want);
    assert_eq!(feed(boundary, &body, limits, &[usize::MAX]), want);
}

fuzz_target!(|data: &[u8]| {
    let mut r = Reader(data);
    let boundary_len = usize::from(r.byte()) % 70 + 1;
    let mut boundary: Vec<u8> = (0..boundary_len)
        .map(|_| BCHARS[usize::from(r.byte()) % BCHARS.len()])
        .collect();
    if boundary.last() == Some(&b' ') {
        boundary.pop();
        boundary.push(b'x');
    }
    let chunks: Vec<usize> = (0..4)
        .map(|_| {
            let s = usize::from(r.byte());
            1 + s * s / 16
        })
        .collect();
    let knobs = r.byte();
    let payload = r.0;

    // 1. Arbitrary bytes, with limits small enough to be hit.
    let limits = Limits {
        part_head_bytes_max: usize::from(knobs & 0x7) * 24,
        parts_count_max: usize::from((knobs >> 3) & 0x3) * 2,
        preamble_bytes_max: usize::from(knobs >> 5) * 8,
    };
    let split = feed(&boundary, payload, limits, &chunks);
    let whole = feed(&boundary, payload, limits, &[usize::MAX]);
    assert_eq!(split, whole, "outcome depends on input splits");
    let unlimited = Limits {
        part_head_bytes_max: usize::MAX,
        parts_count_max: usize::MAX,
        preamble_bytes_max: usize::MAX,
    };
    let split = feed(&boundary, payload, unlimited, &chunks);
    let whole = feed(&boundary, payload, unlimited, &[usize::MAX]);
    assert_eq!(split, whole, "outcome depends on input splits (no limits)");

    // 2. A well-formed body built around the payload.
    well_formed(&boundary, payload, knobs, &chunks);

    // 3. Content-Type parsing.
    if let Some(b) = boundary_from_content_type(payload) {
        assert!((1..=70).contains(&b.len()));
        assert!(!b.contains(&b'\r') && !b.contains(&b'\n'));
    }
    let content_type = [&b"multipart/form-data; boundary="[..], payload].concat();
    let _ = boundary_from_content_type(&content_type);
});
