//! A JPEG decoded at 1/8 scale from its DC coefficients alone.
//!
//! Each 8x8 block becomes one output pixel: its average, which is exactly what a 1/8-scale
//! inverse DCT computes (libjpeg's reduced IDCT: `((dc + 4) >> 3) + 128`). The AC
//! coefficients are skipped: their Huffman codes are read but never dequantised or
//! transformed. A thumbnail of a large photo is bound by entropy decoding, so this decoder
//! resolves codes of up to 9 bits (nearly all of them) with one table lookup.
//!
//! Owns: the markers of a baseline or extended sequential Huffman JPEG (SOF0/SOF1, 8-bit
//! samples, one component or three, any sampling factors, restart intervals), the entropy
//! decoding, chroma placed on the luma grid (each chroma pixel repeated over the luma pixels
//! it covers) and YCbCr to RGB.
//!
//! Anything else returns `None`, and the caller decodes the image another way. That covers
//! progressive or arithmetic coding, 12-bit samples, CMYK, Adobe's untransformed RGB, a frame
//! split over several scans, and data that ends early or breaks the code. No input makes it
//! panic (a test feeds it thousands of corruptions).

/// A decoded image: `components` (1: grey, 3: RGB) bytes per pixel, rows top to bottom.
#[derive(Debug)]
pub struct Decoded {
    pub width: usize,
    pub height: usize,
    pub components: usize,
    pub pixels: Vec<u8>,
}

/// Bits of the first-level Huffman lookup.
const LUT_BITS: u32 = 9;
/// Bits of the AC skip lookup: a code and the bits of its value together.
const SKIP_BITS: u32 = 12;
/// In a skip entry: the end of the block.
const SKIP_EOB: u16 = 1 << 15;

/// A Huffman table: a lookup of every code up to [`LUT_BITS`] long, and JPEG's canonical
/// `maxcode`/`valptr` arrays (ITU T.81 F.2.2.3) for the longer ones.
struct Huffman {
    /// `len << 8 | symbol` for the codes starting with each `LUT_BITS`-bit prefix; 0 for a
    /// prefix of a longer code.
    lut: Vec<u16>,
    maxcode: [i32; 17],
    /// `valptr[l] - mincode[l]`: the index in `values` of a code of length `l`, less the code.
    offset: [i32; 17],
    values: Vec<u8>,
    /// For AC tables: for each `SKIP_BITS`-bit prefix that holds a whole code and its value
    /// bits, `bits | positions << 5` (or `bits | SKIP_EOB`); 0 otherwise.
    skip: Box<[u16; 1 << SKIP_BITS]>,
    /// As `skip`, with a second code and its value when they fit in the prefix too: half the
    /// lookups, for positions where two codes cannot run past the block's end.
    pairs: Box<[u16; 1 << SKIP_BITS]>,
}

impl Huffman {
    /// From a DHT table's 16 counts and its symbols; `None` when the counts describe more
    /// codes than exist.
    fn new(counts: &[u8], values: &[u8]) -> Option<Huffman> {
        let mut lut = vec![0u16; 1 << LUT_BITS];
        // The skip table: every code short enough, with its value bits, in one entry.
        let mut skip = Box::new([0u16; 1 << SKIP_BITS]);
        let mut maxcode = [-1i32; 17];
        let mut offset = [0i32; 17];
        let (mut code, mut k) = (0i32, 0usize);
        for len in 1..=16usize {
            let n = usize::from(counts[len - 1]);
            offset[len] = k as i32 - code;
            for _ in 0..n {
                if code >= 1 << len {
                    return None;
                }
                let symbol = *values.get(k)?;
                if len as u32 <= LUT_BITS {
                    let shift = LUT_BITS - len as u32;
                    let first = (code as usize) << shift;
                    lut[first..first + (1 << shift)].fill((len as u16) << 8 | u16::from(symbol));
                }
                let (run, size) = (u32::from(symbol >> 4), u32::from(symbol & 15));
                let total = len as u32 + size;
                if total <= SKIP_BITS {
                    let entry = match (run, size) {
                        (_, 0) if run != 15 => total as u16 | SKIP_EOB,
                        (15, 0) => total as u16 | 16 << 5,
                        _ => total as u16 | ((run + 1) as u16) << 5,
                    };
                    let shift = SKIP_BITS - len as u32;
                    let first = (code as usize) << shift;
                    skip[first..first + (1 << shift)].fill(entry);
                }
                code += 1;
                k += 1;
            }
            if n > 0 {
                maxcode[len] = code - 1;
            }
            code <<= 1;
        }
        let values = values.get(..k)?.to_vec();
        let mut pairs = Box::new([0u16; 1 << SKIP_BITS]);
        let mask = (1usize << SKIP_BITS) - 1;
        for (prefix, pair) in pairs.iter_mut().enumerate() {
            let first = skip[prefix];
            *pair = first;
            if first == 0 || first & SKIP_EOB != 0 {
                continue;
            }
            let used = u32::from(first & 31);
            let second = skip[(prefix << used) & mask];
            let len = u32::from(second & 31);
            // The second code must lie in the prefix's real bits.
            if second == 0 || used + len > SKIP_BITS {
                continue;
            }
            let positions = (first >> 5 & 63) + (second >> 5 & 63);
            *pair = (used + len) as u16 | positions << 5 | (second & SKIP_EOB);
        }
        Some(Huffman {
            lut,
            maxcode,
            offset,
            values,
            skip,
            pairs,
        })
    }
}

/// The entropy-coded bits of a scan: byte stuffing (`FF 00`) removed; at a marker it feeds
/// zeros and counts them, so a scan that needs more bits than it has is detected.
struct Bits<'a> {
    data: &'a [u8],
    pos: usize,
    /// The next bits, most significant first.
    acc: u64,
    /// How many bits of `acc` are valid.
    n: u32,
    /// Zero bytes fed past a marker or the end of the data.
    fake: u32,
}

impl Bits<'_> {
    #[inline]
    fn refill(&mut self) {
        // Eight bytes at once when none of them is 0xFF (no stuffing, no marker).
        if let Some(chunk) = self.data.get(self.pos..self.pos + 8) {
            let word = u64::from_be_bytes(chunk.try_into().expect("8 bytes"));
            let inverted = !word;
            let has_ff =
                inverted.wrapping_sub(0x0101_0101_0101_0101) & !inverted & 0x8080_8080_8080_8080;
            if has_ff == 0 {
                let whole = (64 - self.n) / 8;
                let kept = if whole == 8 {
                    word
                } else {
                    word & !(u64::MAX >> (8 * whole))
                };
                self.acc |= kept >> self.n;
                self.n += 8 * whole;
                self.pos += whole as usize;
                return;
            }
        }
        while self.n <= 56 {
            let b = match self.data.get(self.pos) {
                Some(&0xFF) if self.data.get(self.pos + 1) == Some(&0) => {
                    self.pos += 2;
                    0xFF
                }
                Some(&0xFF) | None => {
                    self.fake += 1;
                    0
                }
                Some(&b) => {
                    self.pos += 1;
                    b
                }
            };
            self.acc |= u64::from(b) << (56 - self.n);
            self.n += 8;
        }
    }

    #[inline]
    fn consume(&mut self, len: u32) {
        debug_assert!(len <= self.n);
        self.acc <<= len;
        self.n -= len;
    }

    #[inline]
    fn decode(&mut self, h: &Huffman) -> Option<u8> {
        if self.n < 16 {
            self.refill();
        }
        let entry = h.lut[(self.acc >> (64 - LUT_BITS)) as usize];
        if entry != 0 {
            self.consume(u32::from(entry >> 8));
            return Some(entry as u8);
        }
        for len in LUT_BITS as usize + 1..=16 {
            let code = (self.acc >> (64 - len)) as i32;
            if code <= h.maxcode[len] {
                self.consume(len as u32);
                return h.values.get((code + h.offset[len]) as usize).copied();
            }
        }
        None
    }

    /// The next `len` (at most 16) bits as a number.
    #[inline]
    fn take(&mut self, len: u32) -> u32 {
        if len == 0 {
            return 0;
        }
        if self.n < len {
            self.refill();
        }
        let v = (self.acc >> (64 - len)) as u32;
        self.consume(len);
        v
    }

    /// Reads past a block's 63 AC coefficients. The bit buffer is kept in locals (registers)
    /// over the loop, whose speed is the speed of a thumbnail.
    fn skip_ac(&mut self, table: &Huffman) -> Option<()> {
        let (mut acc, mut n) = (self.acc, self.n);
        let mut k = 1;
        while k < 64 {
            if n < 16 {
                (self.acc, self.n) = (acc, n);
                self.refill();
                (acc, n) = (self.acc, self.n);
            }
            let prefix = (acc >> (64 - SKIP_BITS)) as usize & ((1 << SKIP_BITS) - 1);
            // A code advances at most 16 positions: below 48, a second one is still this
            // block's.
            let entry = if k < 48 {
                table.pairs[prefix]
            } else {
                table.skip[prefix]
            };
            if entry != 0 {
                let len = u32::from(entry & 31);
                acc <<= len;
                n -= len;
                if entry & SKIP_EOB != 0 {
                    break;
                }
                k += u32::from(entry >> 5 & 63);
                continue;
            }
            // A long code, or a code with a long value: the general way.
            (self.acc, self.n) = (acc, n);
            let rs = self.decode(table)?;
            let (run, size) = (u32::from(rs >> 4), u32::from(rs & 15));
            if size == 0 {
                if run != 15 {
                    return Some(());
                }
                k += 16;
            } else {
                k += run + 1;
                self.take(size);
            }
            (acc, n) = (self.acc, self.n);
        }
        (self.acc, self.n) = (acc, n);
        Some(())
    }

    /// Whether bits fed as padding past the data were used as data.
    fn overran(&self) -> bool {
        self.fake * 8 > self.n
    }

    /// At a restart interval's end: drops the padding bits and steps over the `RSTn` marker.
    fn restart(&mut self) -> Option<()> {
        if self.overran() {
            return None;
        }
        self.acc = 0;
        self.n = 0;
        self.fake = 0;
        loop {
            match (self.data.get(self.pos)?, self.data.get(self.pos + 1)?) {
                (0xFF, 0xD0..=0xD7) => {
                    self.pos += 2;
                    return Some(());
                }
                (0xFF, 0x00) => self.pos += 2,
                (0xFF, 0xFF) => self.pos += 1,
                (0xFF, _) => return None,
                _ => self.pos += 1,
            }
        }
    }
}

/// `value` of `len` bits as a signed coefficient difference (T.81 F.2.2.1 EXTEND).
#[inline]
fn extend(value: u32, len: u32) -> i32 {
    if len == 0 {
        0
    } else if value < 1 << (len - 1) {
        value as i32 - (1 << len) + 1
    } else {
        value as i32
    }
}

struct Component {
    id: u8,
    h: usize,
    v: usize,
    quant: usize,
    dc: usize,
    ac: usize,
}

fn be16(b: &[u8]) -> Option<usize> {
    Some(usize::from(*b.first()?) << 8 | usize::from(*b.get(1)?))
}

/// A baseline frame header (SOF0/SOF1): width, height and the components, or None for
/// what this decoder does not take (not 8-bit, not 1 or 3 components, too many pixels).
fn parse_frame(seg: &[u8], max_pixels: usize) -> Option<(usize, usize, Vec<Component>)> {
    if *seg.first()? != 8 {
        return None;
    }
    let height = be16(seg.get(1..)?)?;
    let width = be16(seg.get(3..)?)?;
    let count = usize::from(*seg.get(5)?);
    if width == 0 || height == 0 || width.checked_mul(height)? > max_pixels {
        return None;
    }
    if count != 1 && count != 3 {
        return None;
    }
    let mut comps = Vec::with_capacity(count);
    for c in 0..count {
        let b = seg.get(6 + 3 * c..9 + 3 * c)?;
        let (h, v) = (usize::from(b[1] >> 4), usize::from(b[1] & 15));
        if !(1..=4).contains(&h) || !(1..=4).contains(&v) || b[2] > 3 {
            return None;
        }
        comps.push(Component {
            id: b[0],
            h,
            v,
            quant: usize::from(b[2]),
            dc: 0,
            ac: 0,
        });
    }
    Some((width, height, comps))
}

/// The Huffman tables of a DHT segment, into their slots.
fn parse_huffman_tables(
    seg: &[u8],
    dc_tables: &mut [Option<Huffman>; 4],
    ac_tables: &mut [Option<Huffman>; 4],
) -> Option<()> {
    let mut i = 0;
    while i < seg.len() {
        let (class, id) = (seg[i] >> 4, usize::from(seg[i] & 15));
        let counts = seg.get(i + 1..i + 17)?;
        let total: usize = counts.iter().map(|&c| usize::from(c)).sum();
        let values = seg.get(i + 17..i + 17 + total)?;
        if id > 3 || class > 1 || total > 256 {
            return None;
        }
        let table = Some(Huffman::new(counts, values)?);
        if class == 0 {
            dc_tables[id] = table;
        } else {
            ac_tables[id] = table;
        }
        i += 17 + total;
    }
    Some(())
}

/// The DC quantizers of a DQT segment's tables (the 1/8 scale needs no other coefficient).
fn parse_quant_tables(seg: &[u8], quant_dc: &mut [Option<i32>; 4]) -> Option<()> {
    let mut i = 0;
    while i < seg.len() {
        let (precision, id) = (seg[i] >> 4, usize::from(seg[i] & 15));
        if id > 3 || precision > 1 {
            return None;
        }
        let first = if precision == 0 {
            usize::from(*seg.get(i + 1)?)
        } else {
            be16(seg.get(i + 1..)?)?
        };
        seg.get(i + 64 * (1 + usize::from(precision)))?;
        quant_dc[id] = Some(first as i32);
        i += 1 + 64 * (1 + usize::from(precision));
    }
    Some(())
}

/// A sequential scan header (SOS) over every frame component, in frame order: each
/// component's DC and AC table ids.
fn parse_scan_header(seg: &[u8], comps: &mut [Component]) -> Option<()> {
    let count = usize::from(*seg.first()?);
    if count != comps.len() {
        return None;
    }
    for (i, c) in comps.iter_mut().enumerate() {
        let b = seg.get(1 + 2 * i..3 + 2 * i)?;
        // Scan components are in frame order (T.81 B.2.3).
        if c.id != b[0] {
            return None;
        }
        c.dc = usize::from(b[1] >> 4);
        c.ac = usize::from(b[1] & 15);
    }
    if seg.get(1 + 2 * count..4 + 2 * count)? != [0, 63, 0] {
        return None;
    }
    Some(())
}

/// Decodes `data` at 1/8 scale: `ceil(width / 8)` by `ceil(height / 8)` pixels. `None` when
/// this decoder does not take the image (see the module's documentation) or the image has
/// more than `max_pixels` pixels at full size.
pub fn decode_eighth(data: &[u8], max_pixels: usize) -> Option<Decoded> {
    if data.get(..2)? != [0xFF, 0xD8] {
        return None;
    }
    let mut pos = 2;
    let mut quant_dc = [None::<i32>; 4];
    let mut dc_tables: [Option<Huffman>; 4] = Default::default();
    let mut ac_tables: [Option<Huffman>; 4] = Default::default();
    let mut restart_interval = 0usize;
    let mut frame: Option<(usize, usize, Vec<Component>)> = None;
    let mut adobe_rgb = false;
    loop {
        if *data.get(pos)? != 0xFF {
            return None;
        }
        while *data.get(pos)? == 0xFF {
            pos += 1;
        }
        let marker = data[pos];
        pos += 1;
        if matches!(marker, 0x01 | 0xD0..=0xD7) {
            continue;
        }
        if matches!(marker, 0xD8 | 0xD9) {
            return None;
        }
        let len = be16(data.get(pos..)?)?;
        let seg = data.get(pos + 2..pos + len.checked_sub(2)? + 2)?;
        pos += len;
        match marker {
            0xC0 | 0xC1 if frame.is_none() => frame = Some(parse_frame(seg, max_pixels)?),
            0xC0 | 0xC1 => return None,
            // Progressive, lossless, hierarchical or arithmetic coding.
            0xC2 | 0xC3 | 0xC5..=0xC7 | 0xC8..=0xCB | 0xCC..=0xCF => return None,
            0xC4 => parse_huffman_tables(seg, &mut dc_tables, &mut ac_tables)?,
            0xDB => parse_quant_tables(seg, &mut quant_dc)?,
            0xDD => restart_interval = be16(seg)?,
            0xEE if seg.starts_with(b"Adobe") => adobe_rgb = seg.get(11) == Some(&0),
            0xDA => {
                let (width, height, mut comps) = frame?;
                if comps.len() == 3 && (adobe_rgb || comps.iter().map(|c| c.id).eq(*b"RGB")) {
                    return None;
                }
                parse_scan_header(seg, &mut comps)?;
                let tables = Tables {
                    quant_dc: &quant_dc,
                    dc: &dc_tables,
                    ac: &ac_tables,
                };
                return decode_scan(
                    data.get(pos..)?,
                    width,
                    height,
                    &comps,
                    &tables,
                    restart_interval,
                );
            }
            _ => {}
        }
    }
}

struct Tables<'a> {
    quant_dc: &'a [Option<i32>; 4],
    dc: &'a [Option<Huffman>; 4],
    ac: &'a [Option<Huffman>; 4],
}

fn decode_scan(
    data: &[u8],
    width: usize,
    height: usize,
    comps: &[Component],
    tables: &Tables<'_>,
    restart_interval: usize,
) -> Option<Decoded> {
    // One-component scans are not interleaved: an MCU is one block, whatever the factors.
    let single = comps.len() == 1;
    let hmax = comps.iter().map(|c| c.h).max()?;
    let vmax = comps.iter().map(|c| c.v).max()?;
    let (mcu_w, mcu_h) = if single {
        (width.div_ceil(8), height.div_ceil(8))
    } else {
        (width.div_ceil(8 * hmax), height.div_ceil(8 * vmax))
    };
    let factors = |c: &Component| if single { (1, 1) } else { (c.h, c.v) };
    let mut planes: Vec<Vec<u8>> = comps
        .iter()
        .map(|c| {
            let (h, v) = factors(c);
            vec![0u8; mcu_w * h * mcu_h * v]
        })
        .collect();
    let mut units = Vec::with_capacity(comps.len());
    for c in comps {
        units.push((
            tables.dc.get(c.dc)?.as_ref()?,
            tables.ac.get(c.ac)?.as_ref()?,
            (*tables.quant_dc.get(c.quant)?)?,
        ));
    }
    let mut bits = Bits {
        data,
        pos: 0,
        acc: 0,
        n: 0,
        fake: 0,
    };
    let mut pred = [0i32; 3];
    let mcus = mcu_w * mcu_h;
    for m in 0..mcus {
        if restart_interval > 0 && m > 0 && m % restart_interval == 0 {
            bits.restart()?;
            pred = [0; 3];
        }
        let (mx, my) = (m % mcu_w, m / mcu_w);
        for (ci, c) in comps.iter().enumerate() {
            let (dc_table, ac_table, q) = units[ci];
            let (h, v) = factors(c);
            let stride = mcu_w * h;
            for by in 0..v {
                for bx in 0..h {
                    let s = u32::from(bits.decode(dc_table)?);
                    if s > 16 {
                        return None;
                    }
                    let diff = extend(bits.take(s), s);
                    pred[ci] = pred[ci].wrapping_add(diff);
                    // The AC coefficients: read past, never used.
                    bits.skip_ac(ac_table)?;
                    let dc = pred[ci].wrapping_mul(q);
                    let value = ((dc.wrapping_add(4) >> 3) + 128).clamp(0, 255) as u8;
                    planes[ci][(my * v + by) * stride + mx * h + bx] = value;
                }
            }
        }
    }
    if bits.overran() {
        return None;
    }
    let grid = Grid {
        mcu_w,
        hmax,
        vmax,
        single,
    };
    Some(assemble(&planes, comps, width, height, &grid))
}

/// The MCU grid of a scan: MCUs per row, the largest sampling factors, and whether the scan
/// is one component (not interleaved).
#[derive(Clone, Copy)]
struct Grid {
    mcu_w: usize,
    hmax: usize,
    vmax: usize,
    single: bool,
}

/// The picture at 1/8 scale from the component planes of DC values: gray, or the chroma
/// planes upsampled to the luma's and converted from JFIF's YCbCr to RGB.
fn assemble(
    planes: &[Vec<u8>],
    comps: &[Component],
    width: usize,
    height: usize,
    grid: &Grid,
) -> Decoded {
    let Grid {
        mcu_w,
        hmax,
        vmax,
        single,
    } = *grid;
    let (out_w, out_h) = (width.div_ceil(8), height.div_ceil(8));
    if single {
        let stride = mcu_w;
        let mut pixels = Vec::with_capacity(out_w * out_h);
        for y in 0..out_h {
            pixels.extend_from_slice(&planes[0][y * stride..y * stride + out_w]);
        }
        return Decoded {
            width: out_w,
            height: out_h,
            components: 1,
            pixels,
        };
    }
    let mut pixels = Vec::with_capacity(out_w * out_h * 3);
    let at = |ci: usize, x: usize, y: usize| {
        let c = &comps[ci];
        planes[ci][(y * c.v / vmax) * mcu_w * c.h + x * c.h / hmax]
    };
    for y in 0..out_h {
        for x in 0..out_w {
            let luma = i32::from(at(0, x, y));
            let cb = i32::from(at(1, x, y)) - 128;
            let cr = i32::from(at(2, x, y)) - 128;
            // JFIF's YCbCr, in 16.16 fixed point.
            let r = luma + ((91_881 * cr + 32_768) >> 16);
            let g = luma - ((22_554 * cb + 46_802 * cr - 32_768) >> 16);
            let b = luma + ((116_130 * cb + 32_768) >> 16);
            for value in [r, g, b] {
                pixels.push(value.clamp(0, 255) as u8);
            }
        }
    }
    Decoded {
        width: out_w,
        height: out_h,
        components: 3,
        pixels,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use jpeg_encoder::{ColorType, Encoder, SamplingFactor};

    /// A photo-like test image: gradients, a few shapes, and some deterministic noise.
    fn picture(w: usize, h: usize, channels: usize) -> Vec<u8> {
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let mut out = Vec::with_capacity(w * h * channels);
        for y in 0..h {
            for x in 0..w {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let noise = (seed % 24) as i32 - 12;
                let disc = ((x as i32 - 70).pow(2) + (y as i32 - 40).pow(2) < 900) as i32 * 90;
                for c in 0..channels {
                    let v = (x * (2 + c) + y * (3 - c.min(2))) as i32 / 3 + disc + noise;
                    out.push(v.clamp(0, 255) as u8);
                }
            }
        }
        out
    }

    fn encode(
        w: usize,
        h: usize,
        grey: bool,
        sampling: SamplingFactor,
        restart: u16,
        progressive: bool,
    ) -> Vec<u8> {
        let (channels, colour) = if grey {
            (1, ColorType::Luma)
        } else {
            (3, ColorType::Rgb)
        };
        let mut out = Vec::new();
        let mut e = Encoder::new(&mut out, 90);
        e.set_sampling_factor(sampling);
        e.set_restart_interval(restart);
        e.set_progressive(progressive);
        e.encode(&picture(w, h, channels), w as u16, h as u16, colour)
            .expect("encode");
        out
    }

    /// jpeg-decoder's own 1/8-scale decode of the same file.
    fn reference(data: &[u8]) -> (usize, usize, Vec<u8>) {
        let mut d = jpeg_decoder::Decoder::new(std::io::Cursor::new(data));
        d.read_info().unwrap();
        let info = d.info().unwrap();
        let (w, h) = (usize::from(info.width), usize::from(info.height));
        let (sw, sh) = d.scale(w.div_ceil(8) as u16, h.div_ceil(8) as u16).unwrap();
        let pixels = d.decode().unwrap();
        (usize::from(sw), usize::from(sh), pixels)
    }

    #[test]
    fn every_block_becomes_the_pixel_a_one_eighth_inverse_dct_gives() {
        use SamplingFactor::*;
        let shapes = [(203, 117), (160, 96), (8, 8), (9, 17), (640, 24)];
        let cases = [
            (true, F_1_1, 0),
            (true, F_1_1, 5),
            (false, F_1_1, 0),
            (false, F_2_2, 0),
            (false, F_2_2, 3),
            (false, F_2_1, 1),
            (false, F_1_2, 0),
        ];
        for (w, h) in shapes {
            for (grey, sampling, restart) in cases {
                let what = format!("{w}x{h} grey={grey} {sampling:?} restart={restart}");
                let data = encode(w, h, grey, sampling, restart, false);
                let ours = decode_eighth(&data, 1 << 30).unwrap_or_else(|| panic!("{what}"));
                let (rw, rh, theirs) = reference(&data);
                assert_eq!((ours.width, ours.height), (rw, rh), "{what}");
                assert_eq!(ours.components, if grey { 1 } else { 3 }, "{what}");
                assert_eq!(ours.pixels.len(), theirs.len(), "{what}");
                let diffs: Vec<u32> = ours
                    .pixels
                    .iter()
                    .zip(&theirs)
                    .map(|(&a, &b)| u32::from(a.abs_diff(b)))
                    .collect();
                let max = diffs.iter().copied().max().unwrap_or(0);
                let mean = f64::from(diffs.iter().sum::<u32>()) / diffs.len() as f64;
                // Grey and full-resolution chroma: the same numbers but for rounding.
                // Subsampled chroma: jpeg-decoder interpolates it, we repeat it.
                let (max_allowed, mean_allowed) = match (grey, sampling) {
                    (true, _) => (1, 1.0),
                    // Rounding: jpeg-decoder truncates the DC average, libjpeg (and we) round.
                    (false, F_1_1) => (4, 1.5),
                    _ => (48, 3.0),
                };
                assert!(
                    max <= max_allowed && mean <= mean_allowed,
                    "{what}: max {max}, mean {mean:.2}"
                );
            }
        }
    }

    #[test]
    fn what_it_does_not_decode_is_left_to_the_caller() {
        let progressive = encode(64, 48, false, SamplingFactor::F_2_2, 0, true);
        assert!(decode_eighth(&progressive, 1 << 30).is_none());
        let fine = encode(64, 48, false, SamplingFactor::F_2_2, 0, false);
        assert!(decode_eighth(&fine, 1 << 30).is_some());
        // Too many pixels for the caller's limit.
        assert!(decode_eighth(&fine, 64 * 48 - 1).is_none());
        // Cut short: the scan runs out of data.
        assert!(decode_eighth(&fine[..fine.len() / 2], 1 << 30).is_none());
        assert!(decode_eighth(b"", 1 << 30).is_none());
        assert!(decode_eighth(b"\xFF\xD8", 1 << 30).is_none());
    }

    #[test]
    fn corrupt_files_never_panic() {
        let sources = [
            encode(40, 24, false, SamplingFactor::F_2_2, 2, false),
            encode(33, 17, true, SamplingFactor::F_1_1, 0, false),
            encode(48, 16, false, SamplingFactor::F_2_1, 0, false),
        ];
        let mut seed = 0x2545_F491_4F6C_DD1Du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        for round in 0..3000 {
            let mut data = sources[round % sources.len()].clone();
            for _ in 0..1 + next() % 4 {
                let at = (next() % data.len() as u64) as usize;
                data[at] = match next() % 3 {
                    0 => next() as u8,
                    1 => 0xFF,
                    _ => data[at] ^ 1 << (next() % 8),
                };
            }
            if next() % 4 == 0 {
                data.truncate((next() % data.len() as u64) as usize);
            }
            if let Some(d) = decode_eighth(&data, 1 << 20) {
                assert_eq!(d.pixels.len(), d.width * d.height * d.components);
            }
        }
    }
}
