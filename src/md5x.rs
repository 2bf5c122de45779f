//! MD5 of many streams at once. One MD5 stream is a chain of dependent 32-bit operations: a
//! core hashes about 0.5 GB/s however wide its vector unit. Sixteen independent streams fill
//! sixteen 32-bit lanes of an AVX-512 register (eight of AVX2) and hash 3-4x more bytes per
//! second in total (`tests::bench`: 1.5-2.5 GB/s for sixteen streams against 0.45-0.6 GB/s
//! for one), as Intel's multi-buffer hashing (isa-l_crypto) does. Where both are there,
//! eight lanes of AVX2 are taken for up to eight streams: they run about as many blocks per
//! second as sixteen of AVX-512. Concurrent uploads
//! of an executor are such streams: `store::hashing` gathers their chunks into one call of
//! [`update_many`].
//!
//! [`Md5`] is an ordinary incremental MD5 (RFC 1321) whose state the lanes can load and
//! store; a single stream goes through the scalar compression (`compress_one`: md5-asm on x86,
//! else `compress_soft`). It also keeps its state at every [`MARK_EVERY`] bytes (the marks,
//! [`Md5::finalize_marked`]): a stream can then be checked in segments on several cores at
//! once ([`Md5::resume`] from one mark must end at the next), which one MD5 chain otherwise
//! never allows (`store::checkpoints`).

/// The state of one MD5 stream.
#[derive(Clone)]
pub struct Md5 {
    state: [u32; 4],
    /// Bytes given so far.
    len: u64,
    /// The start of an unfinished block.
    tail: [u8; 64],
    tail_len: usize,
    /// The state at every [`MARK_EVERY`] bytes so far.
    marks: Vec<[u32; 4]>,
    /// Where the next mark is taken.
    next_mark: u64,
}

/// A stream's state is kept at every this many bytes (a multiple of the block size).
pub const MARK_EVERY: u64 = 8 << 20;
const _: () = assert!(MARK_EVERY.is_multiple_of(64));

const INIT: [u32; 4] = [0x6745_2301, 0xefcd_ab89, 0x98ba_dcfe, 0x1032_5476];

/// Per-step left rotations.
const S: [u32; 64] = [
    7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 7, 12, 17, 22, 5, 9, 14, 20, 5, 9, 14, 20, 5, 9,
    14, 20, 5, 9, 14, 20, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 4, 11, 16, 23, 6, 10, 15,
    21, 6, 10, 15, 21, 6, 10, 15, 21, 6, 10, 15, 21,
];

/// Per-step constants: floor(2^32 * |sin(i + 1)|).
const K: [u32; 64] = [
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
];

impl Default for Md5 {
    fn default() -> Md5 {
        Md5::new()
    }
}

impl Md5 {
    pub fn new() -> Md5 {
        Md5 {
            state: INIT,
            len: 0,
            tail: [0; 64],
            tail_len: 0,
            marks: Vec::new(),
            next_mark: MARK_EVERY,
        }
    }

    /// The stream that was in `state` after `len` bytes (a whole number of blocks): one
    /// segment of a stream checked in segments.
    pub fn resume(state: [u32; 4], len: u64) -> Md5 {
        assert!(
            len.is_multiple_of(64),
            "a stream resumes at a block boundary"
        );
        Md5 {
            state,
            len,
            next_mark: (len / MARK_EVERY + 1) * MARK_EVERY,
            ..Md5::new()
        }
    }

    /// The state after the bytes given, which are a whole number of blocks.
    pub fn state(&self) -> [u32; 4] {
        assert_eq!(self.tail_len, 0, "a state between blocks");
        self.state
    }

    /// Bytes given so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Hashes `data` on this thread, one stream.
    pub fn update(&mut self, mut data: &[u8]) {
        loop {
            let (now, later) = data.split_at(self.to_mark().min(data.len()));
            let whole = self.split(now);
            compress_one(&mut self.state, whole);
            self.mark();
            if later.is_empty() {
                return;
            }
            data = later;
        }
    }

    /// Bytes until the next mark (an update is cut there).
    fn to_mark(&self) -> usize {
        (self.next_mark - self.len) as usize
    }

    /// Keeps the state if the stream is at its next mark (every block before it compressed:
    /// a mark is a multiple of the block size).
    fn mark(&mut self) {
        if self.len == self.next_mark {
            debug_assert_eq!(self.tail_len, 0);
            self.marks.push(self.state);
            self.next_mark += MARK_EVERY;
        }
    }

    /// Takes `data` in: completes and compresses a pending partial block, keeps a new partial
    /// block, and returns the whole blocks between, which the caller must compress into
    /// `state` before the next update.
    fn split<'a>(&mut self, mut data: &'a [u8]) -> &'a [u8] {
        self.len = self.len.wrapping_add(data.len() as u64);
        if self.tail_len > 0 {
            let n = (64 - self.tail_len).min(data.len());
            self.tail[self.tail_len..self.tail_len + n].copy_from_slice(&data[..n]);
            self.tail_len += n;
            data = &data[n..];
            if self.tail_len < 64 {
                return &[];
            }
            let block = self.tail;
            compress_one(&mut self.state, &block);
            self.tail_len = 0;
        }
        let whole = data.len() / 64 * 64;
        let rest = &data[whole..];
        self.tail[..rest.len()].copy_from_slice(rest);
        self.tail_len = rest.len();
        &data[..whole]
    }

    /// The digest, and the states at every [`MARK_EVERY`] bytes before the end (a mark at
    /// the very end is the digest's own input, not a segment's start).
    pub fn finalize_marked(mut self) -> ([u8; 16], Vec<[u32; 4]>) {
        let mut marks = std::mem::take(&mut self.marks);
        marks.truncate((self.len.saturating_sub(1) / MARK_EVERY) as usize);
        (self.finalize(), marks)
    }

    /// The digest.
    pub fn finalize(mut self) -> [u8; 16] {
        let bits = self.len.wrapping_mul(8);
        let mut pad = [0u8; 64];
        pad[0] = 0x80;
        // Pad to 56 mod 64, then the length in bits, little-endian.
        let pad_len = if self.tail_len < 56 {
            56 - self.tail_len
        } else {
            120 - self.tail_len
        };
        self.update(&pad[..pad_len]);
        self.update(&bits.to_le_bytes());
        debug_assert_eq!(self.tail_len, 0);
        let mut out = [0u8; 16];
        for (o, s) in out.chunks_exact_mut(4).zip(self.state) {
            o.copy_from_slice(&s.to_le_bytes());
        }
        out
    }
}

/// Compresses whole 64-byte blocks into one state. On x86 by md5-asm, the assembly the md-5
/// crate takes: 814 MB/s against 691 for [`compress_soft`] on this project's benchmark host
/// (a Xeon with AVX-512; `examples`-style loop over 416 KiB frames, both in one run). That
/// is the rate of a single stream: a replicated file's or a lone upload's md5.
#[cfg(any(target_arch = "x86", target_arch = "x86_64"))]
fn compress_one(state: &mut [u32; 4], blocks: &[u8]) {
    let (blocks, rest) = blocks.as_chunks::<64>();
    debug_assert!(rest.is_empty());
    md5_asm::compress(state, blocks);
}

#[cfg(not(any(target_arch = "x86", target_arch = "x86_64")))]
fn compress_one(state: &mut [u32; 4], blocks: &[u8]) {
    compress_soft(state, blocks)
}

/// The scalar compression in Rust, arranged for a short dependency chain (an earlier host
/// ran it about 6 % faster than md5-asm; the benchmark host of today 15 % slower): in each
/// step everything that does not depend on the previous step's result (`b`) is added first
/// (the message word, the constant, and in rounds 2 and 4 the part of the round function that
/// needs only `c` and `d`: `G = (b & d) + (c & !d)`, the two terms being disjoint, and
/// `I = c ^ (b | !d)` with `!d` ready), so that only two or three operations wait on `b`.
#[cfg_attr(any(target_arch = "x86", target_arch = "x86_64"), allow(dead_code))]
fn compress_soft(state: &mut [u32; 4], blocks: &[u8]) {
    macro_rules! step {
        (F, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr) => {
            $a = $a.wrapping_add($m).wrapping_add(K[$i]);
            $a = $a.wrapping_add((($c ^ $d) & $b) ^ $d);
            $a = $a.rotate_left(S[$i]).wrapping_add($b);
        };
        (G, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr) => {
            $a = $a
                .wrapping_add($m)
                .wrapping_add(K[$i])
                .wrapping_add($c & !$d);
            $a = $a.wrapping_add($b & $d);
            $a = $a.rotate_left(S[$i]).wrapping_add($b);
        };
        (H, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr) => {
            $a = $a.wrapping_add($m).wrapping_add(K[$i]);
            $a = $a.wrapping_add(($c ^ $d) ^ $b);
            $a = $a.rotate_left(S[$i]).wrapping_add($b);
        };
        (I, $a:ident, $b:ident, $c:ident, $d:ident, $m:expr, $i:expr) => {
            $a = $a.wrapping_add($m).wrapping_add(K[$i]);
            $a = $a.wrapping_add($c ^ ($b | !$d));
            $a = $a.rotate_left(S[$i]).wrapping_add($b);
        };
    }
    macro_rules! round {
        ($f:ident, $a:ident, $b:ident, $c:ident, $d:ident, $m:ident, $i:expr, $g:expr, $step:expr) => {
            step!($f, $a, $b, $c, $d, $m[($g) % 16], $i);
            step!($f, $d, $a, $b, $c, $m[($g + $step) % 16], $i + 1);
            step!($f, $c, $d, $a, $b, $m[($g + 2 * $step) % 16], $i + 2);
            step!($f, $b, $c, $d, $a, $m[($g + 3 * $step) % 16], $i + 3);
        };
    }
    debug_assert_eq!(blocks.len() % 64, 0);
    let [mut sa, mut sb, mut sc, mut sd] = *state;
    for block in blocks.chunks_exact(64) {
        let mut m = [0u32; 16];
        for (w, b) in m.iter_mut().zip(block.chunks_exact(4)) {
            *w = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
        let (mut a, mut b, mut c, mut d) = (sa, sb, sc, sd);
        round!(F, a, b, c, d, m, 0, 0, 1);
        round!(F, a, b, c, d, m, 4, 4, 1);
        round!(F, a, b, c, d, m, 8, 8, 1);
        round!(F, a, b, c, d, m, 12, 12, 1);
        round!(G, a, b, c, d, m, 16, 1, 5);
        round!(G, a, b, c, d, m, 20, 5 * 4 + 1, 5);
        round!(G, a, b, c, d, m, 24, 5 * 8 + 1, 5);
        round!(G, a, b, c, d, m, 28, 5 * 12 + 1, 5);
        round!(H, a, b, c, d, m, 32, 5, 3);
        round!(H, a, b, c, d, m, 36, 3 * 4 + 5, 3);
        round!(H, a, b, c, d, m, 40, 3 * 8 + 5, 3);
        round!(H, a, b, c, d, m, 44, 3 * 12 + 5, 3);
        round!(I, a, b, c, d, m, 48, 0, 7);
        round!(I, a, b, c, d, m, 52, 7 * 4, 7);
        round!(I, a, b, c, d, m, 56, 7 * 8, 7);
        round!(I, a, b, c, d, m, 60, 7 * 12, 7);
        sa = sa.wrapping_add(a);
        sb = sb.wrapping_add(b);
        sc = sc.wrapping_add(c);
        sd = sd.wrapping_add(d);
    }
    *state = [sa, sb, sc, sd];
}

/// Hashes each job's data into its stream, `update` for each in effect, using as many vector
/// lanes as there are streams with whole blocks to hash.
pub fn update_many(jobs: &mut [(&mut Md5, &[u8])]) {
    // In rounds cut at the streams' marks (most calls take one round: a pass hashes at most
    // a few tens of KiB per stream).
    loop {
        let mut more = false;
        let mut bodies: Vec<(&mut [u32; 4], &[u8])> = jobs
            .iter_mut()
            .map(|(md5, data)| {
                let (now, later) = data.split_at(md5.to_mark().min(data.len()));
                *data = later;
                more |= !later.is_empty();
                let whole = md5.split(now);
                (&mut md5.state, whole)
            })
            .filter(|(_, whole)| !whole.is_empty())
            .collect();
        compress_many(&mut bodies);
        drop(bodies);
        for (md5, _) in jobs.iter_mut() {
            md5.mark();
        }
        if !more {
            return;
        }
    }
}

/// Compresses each body's whole blocks into its state, in vector lanes where they pay.
fn compress_many(bodies: &mut [(&mut [u32; 4], &[u8])]) {
    match lanes_available() {
        // Eight lanes of AVX2 run about as many blocks per second as sixteen of AVX-512
        // (`tests::bench`: 8 streams 2.4 GB/s in eight lanes, 1.3 in sixteen; 16 streams
        // 2.4 and 2.5): sixteen only when more than eight streams fill them.
        #[cfg(target_arch = "x86_64")]
        Lanes::Sixteen if bodies.len() > 8 => {
            run_lanes::<16>(bodies, |state, blocks, steps| {
                // SAFETY: `lanes_available` saw the CPU support AVX-512F and AVX-512VL.
                unsafe { lanes16(state, blocks, steps) }
            })
        }
        #[cfg(target_arch = "x86_64")]
        Lanes::Eight | Lanes::Sixteen => run_lanes::<8>(bodies, |state, blocks, steps| {
            // SAFETY: `lanes_available` saw the CPU support AVX2 (Sixteen includes it).
            unsafe { lanes8(state, blocks, steps) }
        }),
        Lanes::One => {
            for (state, whole) in bodies.iter_mut() {
                compress_one(state, whole);
            }
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Lanes {
    #[cfg(target_arch = "x86_64")]
    Sixteen,
    #[cfg(target_arch = "x86_64")]
    Eight,
    One,
}

fn lanes_available() -> Lanes {
    #[cfg(target_arch = "x86_64")]
    {
        static LANES: std::sync::OnceLock<Lanes> = std::sync::OnceLock::new();
        *LANES.get_or_init(|| {
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx2")
            {
                Lanes::Sixteen
            } else if std::arch::is_x86_feature_detected!("avx2") {
                Lanes::Eight
            } else {
                Lanes::One
            }
        })
    }
    #[cfg(not(target_arch = "x86_64"))]
    Lanes::One
}

/// The most streams hashed in one vector pass.
pub const LANES_MAX: usize = 16;

/// Below this many busy lanes the scalar code is faster than a vector pass.
const fn lanes_min(lanes: usize) -> usize {
    lanes / 4 + 1
}

/// Fewer streams than this are hashed one at a time (the narrowest lanes' minimum).
pub const LANES_MIN: usize = lanes_min(8);

/// A block an idle lane hashes (its result is dropped).
static IDLE_BLOCK: [u8; 64] = [0; 64];

/// Feeds the bodies through `L` lanes: each lane takes the next body when its own is done,
/// and a pass runs as many blocks as the shortest busy lane has left. When fewer than
/// [`lanes_min`] lanes would be busy, the rest is hashed one stream at a time.
fn run_lanes<const L: usize>(
    bodies: &mut [(&mut [u32; 4], &[u8])],
    pass: impl Fn(&mut [[u32; L]; 4], &[&[u8]; L], usize),
) {
    // Longest first, so that lanes run out together.
    bodies.sort_by_key(|(_, whole)| std::cmp::Reverse(whole.len()));
    let mut next = 0;
    // Per lane: the body it hashes and how far it is.
    let mut lane: [Option<(usize, usize)>; L] = [None; L];
    loop {
        for l in lane.iter_mut().filter(|l| l.is_none()) {
            if next < bodies.len() {
                *l = Some((next, 0));
                next += 1;
            }
        }
        let busy = lane.iter().flatten().count();
        if busy < lanes_min(L) {
            for &(i, at) in lane.iter().flatten() {
                let (state, whole) = &mut bodies[i];
                compress_one(state, &whole[at..]);
            }
            for (state, whole) in &mut bodies[next..] {
                compress_one(state, whole);
            }
            return;
        }
        let steps = lane
            .iter()
            .flatten()
            .map(|&(i, at)| (bodies[i].1.len() - at) / 64)
            .min()
            .unwrap_or(0);
        let mut state = [[0u32; L]; 4];
        let mut blocks: [&[u8]; L] = [&IDLE_BLOCK[..]; L];
        for (l, slot) in lane.iter().enumerate() {
            if let Some((i, at)) = *slot {
                for (w, s) in bodies[i].0.iter().enumerate() {
                    state[w][l] = *s;
                }
                blocks[l] = &bodies[i].1[at..at + steps * 64];
            }
        }
        pass(&mut state, &blocks, steps);
        for (l, slot) in lane.iter_mut().enumerate() {
            if let Some((i, at)) = *slot {
                for (w, s) in bodies[i].0.iter_mut().enumerate() {
                    *s = state[w][l];
                }
                let at = at + steps * 64;
                *slot = (at < bodies[i].1.len()).then_some((i, at));
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vl")]
unsafe fn lanes16(state: &mut [[u32; 16]; 4], blocks: &[&[u8]; 16], steps: usize) {
    compress_lanes::<16>(state, blocks, steps);
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn lanes8(state: &mut [[u32; 8]; 4], blocks: &[&[u8]; 8], steps: usize) {
    compress_lanes::<8>(state, blocks, steps);
}

/// `steps` blocks of each lane's stream (a lane whose slice is one block long, an idle one,
/// hashes that block again and again). Written lane by lane for the compiler to vectorize.
#[inline(always)]
fn compress_lanes<const L: usize>(state: &mut [[u32; L]; 4], blocks: &[&[u8]; L], steps: usize) {
    for step in 0..steps {
        let block: [&[u8; 64]; L] = std::array::from_fn(|l| {
            let at = if blocks[l].len() == 64 { 0 } else { step * 64 };
            blocks[l][at..at + 64].try_into().expect("a whole block")
        });
        compress_block(state, &block);
    }
}

#[inline(always)]
fn compress_block<const L: usize>(state: &mut [[u32; L]; 4], block: &[&[u8; 64]; L]) {
    let mut m = [[0u32; L]; 16];
    for (w, word) in m.iter_mut().enumerate() {
        for l in 0..L {
            let b = &block[l][w * 4..w * 4 + 4];
            word[l] = u32::from_le_bytes([b[0], b[1], b[2], b[3]]);
        }
    }
    let [mut a, mut b, mut c, mut d] = *state;
    for i in 0..64 {
        let g = match i / 16 {
            0 => i,
            1 => (5 * i + 1) % 16,
            2 => (3 * i + 5) % 16,
            _ => (7 * i) % 16,
        };
        let mut f = [0u32; L];
        for l in 0..L {
            f[l] = match i / 16 {
                0 => (b[l] & c[l]) | (!b[l] & d[l]),
                1 => (d[l] & b[l]) | (!d[l] & c[l]),
                2 => b[l] ^ c[l] ^ d[l],
                _ => c[l] ^ (b[l] | !d[l]),
            };
        }
        let mut next = [0u32; L];
        for l in 0..L {
            next[l] = b[l].wrapping_add(
                a[l].wrapping_add(f[l])
                    .wrapping_add(K[i])
                    .wrapping_add(m[g][l])
                    .rotate_left(S[i]),
            );
        }
        a = d;
        d = c;
        c = b;
        b = next;
    }
    for l in 0..L {
        state[0][l] = state[0][l].wrapping_add(a[l]);
        state[1][l] = state[1][l].wrapping_add(b[l]);
        state[2][l] = state[2][l].wrapping_add(c[l]);
        state[3][l] = state[3][l].wrapping_add(d[l]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use md5::Digest;

    fn reference(data: &[u8]) -> [u8; 16] {
        md5::Md5::digest(data).into()
    }

    fn data(len: usize, seed: u64) -> Vec<u8> {
        let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn rfc_1321_test_suite() {
        let cases: [(&str, &str); 7] = [
            ("", "d41d8cd98f00b204e9800998ecf8427e"),
            ("a", "0cc175b9c0f1b6a831c399e269772661"),
            ("abc", "900150983cd24fb0d6963f7d28e17f72"),
            ("message digest", "f96b697d7cb7938d525a2f31aaf161d0"),
            (
                "abcdefghijklmnopqrstuvwxyz",
                "c3fcd3d76192e4007dfb496cca67e13b",
            ),
            (
                "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789",
                "d174ab98d277d9f5a5611c2c9f419d9f",
            ),
            (
                "12345678901234567890123456789012345678901234567890123456789012345678901234567890",
                "57edf4a22be3c955ac49da2e2107b67a",
            ),
        ];
        for (input, want) in cases {
            let mut m = Md5::new();
            m.update(input.as_bytes());
            assert_eq!(crate::codec::hex(&m.finalize()), want, "{input:?}");
        }
    }

    #[test]
    fn every_length_around_the_padding_edges_matches_the_reference() {
        for len in 0..300 {
            let d = data(len, len as u64);
            let mut m = Md5::new();
            m.update(&d);
            assert_eq!(m.finalize(), reference(&d), "length {len}");
        }
    }

    #[test]
    fn streams_hashed_together_match_each_hashed_alone() {
        // Stream counts around every lane width, pieces of odd sizes, lanes refilled as
        // shorter streams end, a stream given nothing in some rounds.
        for streams in [1, 2, 3, 5, 8, 9, 16, 17, 33] {
            let whole: Vec<Vec<u8>> = (0..streams)
                .map(|s| data(1000 + s * 4_099 + (s % 3) * 70_000, s as u64 + 7))
                .collect();
            let mut states: Vec<Md5> = vec![Md5::new(); streams];
            let mut at = vec![0usize; streams];
            for round in 0..40 {
                let mut jobs: Vec<(&mut Md5, &[u8])> = Vec::new();
                for (s, (md5, d)) in states.iter_mut().zip(&whole).enumerate() {
                    let piece = if (round + s) % 5 == 0 {
                        0
                    } else {
                        1 + (round * 7_919 + s * 104_729) % 9_000
                    };
                    let end = (at[s] + piece).min(d.len());
                    jobs.push((md5, &d[at[s]..end]));
                    at[s] = end;
                }
                update_many(&mut jobs);
            }
            for (s, (md5, d)) in states.into_iter().zip(&whole).enumerate() {
                let mut rest = md5;
                rest.update(&d[at[s]..]);
                assert_eq!(
                    rest.finalize(),
                    reference(d),
                    "{streams} streams, stream {s}"
                );
            }
        }
    }

    /// The state of a fresh stream after `data` (whole blocks).
    fn state_after(data: &[u8]) -> [u32; 4] {
        let mut m = Md5::new();
        m.update(data);
        m.state()
    }

    #[test]
    fn a_stream_keeps_its_state_at_every_mark_and_resumes_from_each() {
        let e = MARK_EVERY as usize;
        let d = data(3 * e + 100, 7);
        let mut m = Md5::new();
        // Updates of odd sizes, so that marks fall inside them and inside partial blocks.
        for piece in d.chunks(1_000_003) {
            m.update(piece);
        }
        let (digest, marks) = m.finalize_marked();
        assert_eq!(digest, reference(&d));
        assert_eq!(marks.len(), 3, "one mark per MARK_EVERY before the end");
        for (i, mark) in marks.iter().enumerate() {
            let at = (i + 1) * e;
            assert_eq!(*mark, state_after(&d[..at]), "mark {i}");
            let mut rest = Md5::resume(*mark, at as u64);
            rest.update(&d[at..]);
            assert_eq!(rest.finalize(), digest, "resumed from mark {i}");
        }
        // A stream that ends on a mark keeps no mark at its very end.
        let mut m = Md5::new();
        m.update(&d[..e]);
        assert!(m.finalize_marked().1.is_empty());
    }

    #[test]
    fn streams_hashed_together_keep_the_marks_each_keeps_alone() {
        let e = MARK_EVERY as usize;
        let inputs: Vec<Vec<u8>> = (0..3)
            .map(|i| data(e + 4096 * (i + 1), 20 + i as u64))
            .collect();
        let mut md5s: Vec<Md5> = (0..3).map(|_| Md5::new()).collect();
        let mut at = 0;
        while inputs.iter().any(|d| at < d.len()) {
            let mut jobs: Vec<(&mut Md5, &[u8])> = md5s
                .iter_mut()
                .zip(&inputs)
                .map(|(m, d)| (m, &d[at.min(d.len())..(at + 48 * 1024 + 5).min(d.len())]))
                .collect();
            update_many(&mut jobs);
            at += 48 * 1024 + 5;
        }
        for (m, d) in md5s.into_iter().zip(&inputs) {
            let (digest, marks) = m.finalize_marked();
            assert_eq!(digest, reference(d));
            assert_eq!(marks, vec![state_after(&d[..e])]);
        }
    }

    #[test]
    fn the_rust_compression_matches_the_one_single_streams_take() {
        let d = data(64 * 1000, 7);
        let (mut soft, mut one) = (INIT, INIT);
        compress_soft(&mut soft, &d);
        compress_one(&mut one, &d);
        assert_eq!(soft, one);
        assert_ne!(soft, INIT);
    }

    #[test]
    fn each_lane_width_matches_the_scalar_code() {
        let d: Vec<Vec<u8>> = (0..16).map(|s| data(64 * (3 + s), s as u64)).collect();
        type Bodies<'a, 'b> = [(&'a mut [u32; 4], &'b [u8])];
        let check = |lanes: usize, pass: &dyn Fn(&mut Bodies)| {
            let mut states = vec![INIT; d.len()];
            let mut bodies: Vec<(&mut [u32; 4], &[u8])> = states
                .iter_mut()
                .zip(&d)
                .map(|(s, d)| (s, &d[..]))
                .collect();
            pass(&mut bodies);
            for (s, d) in states.iter().zip(&d) {
                let mut want = INIT;
                compress_one(&mut want, d);
                assert_eq!(*s, want, "{lanes} lanes");
            }
        };
        check(1, &|b| run_lanes::<1>(b, compress_lanes::<1>));
        check(4, &|b| run_lanes::<4>(b, compress_lanes::<4>));
        check(16, &|b| run_lanes::<16>(b, compress_lanes::<16>));
        // The vector functions this CPU can run, whichever `update_many` picks here (a CPU
        // with AVX-512 never takes the AVX2 path on its own).
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") {
                check(8, &|b| {
                    // SAFETY: the CPU supports AVX2 (checked above).
                    run_lanes::<8>(b, |s, blocks, steps| unsafe { lanes8(s, blocks, steps) })
                });
            }
            if std::arch::is_x86_feature_detected!("avx512f")
                && std::arch::is_x86_feature_detected!("avx512vl")
                && std::arch::is_x86_feature_detected!("avx2")
            {
                check(16, &|b| {
                    // SAFETY: the CPU supports AVX-512F and VL (checked above).
                    run_lanes::<16>(b, |s, blocks, steps| unsafe { lanes16(s, blocks, steps) })
                });
            }
        }
    }

    /// `cargo test --release --lib md5x::tests::bench -- --ignored --nocapture`
    #[test]
    #[ignore]
    fn bench() {
        let d: Vec<Vec<u8>> = (0..16).map(|s| data(4 << 20, s)).collect();
        for streams in [1, 3, 4, 6, 8, 12, 16] {
            let soft = std::time::Instant::now();
            let mut states = vec![Md5::new(); streams];
            for (m, d) in states.iter_mut().zip(&d) {
                compress_soft(&mut m.state, d);
            }
            let soft = (streams << 22) as f64 / soft.elapsed().as_secs_f64() / 1e6;
            let mut rates = vec![format!("rust scalar: {soft:.0}")];
            for width in [0usize, 8, 16] {
                let mut states = vec![Md5::new(); streams];
                let mut bodies: Vec<(&mut [u32; 4], &[u8])> = states
                    .iter_mut()
                    .zip(&d)
                    .map(|(m, d)| (&mut m.state, &d[..]))
                    .collect();
                let t = std::time::Instant::now();
                match (width, lanes_available()) {
                    (0, _) => bodies.iter_mut().for_each(|(s, b)| compress_one(s, b)),
                    #[cfg(target_arch = "x86_64")]
                    (8, Lanes::Eight | Lanes::Sixteen) => {
                        // SAFETY: AVX2 is present (checked by lanes_available).
                        run_lanes::<8>(&mut bodies, |s, b, n| unsafe { lanes8(s, b, n) })
                    }
                    #[cfg(target_arch = "x86_64")]
                    (16, Lanes::Sixteen) => {
                        // SAFETY: AVX-512F and VL are present (checked by lanes_available).
                        run_lanes::<16>(&mut bodies, |s, b, n| unsafe { lanes16(s, b, n) })
                    }
                    _ => continue,
                }
                let secs = t.elapsed().as_secs_f64();
                rates.push(format!(
                    "{}: {:.0}",
                    if width == 0 {
                        "scalar".into()
                    } else {
                        format!("{width} lanes")
                    },
                    (streams << 22) as f64 / secs / 1e6
                ));
            }
            println!("{streams:2} streams, MB/s in total: {}", rates.join(", "));
        }
    }
}
