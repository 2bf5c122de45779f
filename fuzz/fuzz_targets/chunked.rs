//! Fuzz target for `fastdfs::http::chunked::Decoder`: arbitrary input split at arbitrary
//! points must decode exactly like one-shot decoding (same data, same end / error, same
//! leftover bytes after the terminator), and must never panic.
//!
//! Input layout: byte 0 = flags (bit 0: tight limits), byte 1 = number of cuts (mod 17),
//! then 2 bytes per cut (u16 LE position), then the body.
#![no_main]

use bytes::BytesMut;
use fastdfs::http::chunked::{Chunk, ChunkedError, Decoder, Limits};
use libfuzzer_sys::fuzz_target;

#[derive(Debug, PartialEq, Eq)]
enum End {
    Incomplete,
    Done(Vec<u8>),
    Failed(ChunkedError),
}

fn run(input: &[u8], cuts: &[usize], limits: &Limits) -> (Vec<u8>, End) {
    let mut dec = Decoder::new(limits.clone());
    let mut buf = BytesMut::new();
    let mut data = Vec::new();
    let mut fed = 0;
    for end in cuts.iter().copied().chain(std::iter::once(input.len())) {
        buf.extend_from_slice(&input[fed..end]);
        fed = end;
        loop {
            let before = buf.len();
            match dec.decode(&mut buf) {
                Ok(Some(Chunk::Data(d))) => {
                    assert!(!d.is_empty());
                    assert!(
                        buf.len() + d.len() <= before,
                        "data comes out of the buffer"
                    );
                    data.extend_from_slice(&d);
                }
                Ok(Some(Chunk::End)) => {
                    assert!(dec.is_done());
                    // End is sticky and leaves the buffer alone.
                    let left = buf.len();
                    assert!(matches!(dec.decode(&mut buf), Ok(Some(Chunk::End))));
                    assert_eq!(buf.len(), left);
                    buf.extend_from_slice(&input[fed..]);
                    return (data, End::Done(buf.to_vec()));
                }
                Ok(None) => {
                    assert!(buf.is_empty(), "None only when all input was consumed");
                    break;
                }
                Err(e) => {
                    assert_eq!(dec.decode(&mut buf), Err(e), "errors are sticky");
                    return (data, End::Failed(e));
                }
            }
        }
    }
    (data, End::Incomplete)
}

fuzz_target!(|data: &[u8]| {
    if data.len() < 2 {
        return;
    }
    let limits = if data[0] & 1 == 1 {
        Limits {
            chunk_line_bytes_max: 12,
            trailer_bytes_max: 24,
        }
    } else {
        Limits::default()
    };
    let ncuts = (data[1] % 17) as usize;
    let Some(cut_bytes) = data.get(2..2 + 2 * ncuts) else {
        return;
    };
    let input = &data[2 + 2 * ncuts..];
    let mut cuts: Vec<usize> = cut_bytes
        .chunks_exact(2)
        .map(|c| u16::from_le_bytes([c[0], c[1]]) as usize % (input.len() + 1))
        .collect();
    cuts.sort_unstable();

    let whole = run(input, &[], &limits);
    let split = run(input, &cuts, &limits);
    assert_eq!(whole, split);
    // Byte-at-a-time feeding too, for short inputs.
    if input.len() <= 256 {
        let every: Vec<usize> = (1..input.len()).collect();
        assert_eq!(whole, run(input, &every, &limits));
    }
});
