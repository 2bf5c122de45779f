//! Checksums of multipart objects (S3's "Checking object integrity"): an upload created with
//! `x-amz-checksum-algorithm` keeps each part's checksum (the client's, verified, else
//! computed here from the part), and the completed object gets one of S3's two types:
//! - COMPOSITE (the default, not for CRC64NVME): the algorithm over the concatenation of the
//!   parts' digests, base64, then `-<parts>`, as S3 answers it (`abcd==-3`);
//! - FULL_OBJECT (asked for with `x-amz-checksum-type`, CRCs only, CRC64NVME's only type): the
//!   CRC of the whole object, combined from the parts' CRCs and sizes without reading the
//!   bytes again.

use super::chunked::{decode_checksum, Checksum, ChecksumAlgorithm, Hasher};
use std::io::Read;
use std::path::Path;

/// How a multipart object's checksum is made from its parts'.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumType {
    Composite,
    FullObject,
}

impl ChecksumType {
    /// S3's name (`x-amz-checksum-type`, `<ChecksumType>`).
    pub fn name(self) -> &'static str {
        match self {
            ChecksumType::Composite => "COMPOSITE",
            ChecksumType::FullObject => "FULL_OBJECT",
        }
    }

    pub fn from_name(name: &str) -> Option<ChecksumType> {
        [ChecksumType::Composite, ChecksumType::FullObject]
            .into_iter()
            .find(|t| name.trim().eq_ignore_ascii_case(t.name()))
    }

    /// S3's type when only the algorithm is given: FULL_OBJECT for CRC64NVME, else COMPOSITE.
    pub fn default_for(algorithm: ChecksumAlgorithm) -> ChecksumType {
        match algorithm {
            ChecksumAlgorithm::Crc64Nvme => ChecksumType::FullObject,
            _ => ChecksumType::Composite,
        }
    }

    /// Whether S3 makes this type with `algorithm`: a full-object checksum only of a CRC, a
    /// composite one of anything but CRC64NVME.
    pub fn works_with(self, algorithm: ChecksumAlgorithm) -> bool {
        match self {
            ChecksumType::FullObject => crc_params(algorithm).is_some(),
            ChecksumType::Composite => algorithm != ChecksumAlgorithm::Crc64Nvme,
        }
    }
}

/// A part's checksum as its file name keeps it: the digest in hex.
pub fn to_hex(c: &Checksum) -> String {
    crate::store::meta::hex(&decode_checksum(c.algorithm, &c.value).unwrap_or_default())
}

/// A part's checksum from its file name's hex digest.
pub fn from_hex(algorithm: ChecksumAlgorithm, hex: &str) -> Option<Checksum> {
    let digest = crate::codec::unhex(hex)?;
    (digest.len() == algorithm.digest_len()).then(|| Checksum::of(algorithm, &digest))
}

/// The checksum of a file's bytes (a part nobody sent one for). Blocking.
pub fn of_file(algorithm: ChecksumAlgorithm, path: &Path) -> std::io::Result<Checksum> {
    let mut f = std::fs::File::open(path)?;
    let mut hasher = Hasher::new(algorithm);
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = f.read(&mut buf)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(Checksum::of(algorithm, &hasher.finish()))
}

/// S3's composite checksum of an object made of `parts` (their checksums, in order).
pub fn composite(algorithm: ChecksumAlgorithm, parts: &[Checksum]) -> Checksum {
    let mut hasher = Hasher::new(algorithm);
    for p in parts {
        hasher.update(&decode_checksum(algorithm, &p.value).unwrap_or_default());
    }
    let whole = Checksum::of(algorithm, &hasher.finish());
    Checksum {
        algorithm,
        value: format!("{}-{}", whole.value, parts.len()),
    }
}

/// The CRC of the whole object made of `parts` (each part's CRC and size, in order); None
/// for an algorithm that is not a CRC.
pub fn full_object(algorithm: ChecksumAlgorithm, parts: &[(Checksum, u64)]) -> Option<Checksum> {
    let (poly, width) = crc_params(algorithm)?;
    let mut crc: Option<u64> = None;
    for (c, len) in parts {
        let digest = decode_checksum(algorithm, &c.value).ok()?;
        let part = digest.iter().fold(0u64, |v, &b| (v << 8) | b as u64);
        crc = Some(match crc {
            None => part,
            Some(before) => crc_combine(poly, width, before, part, *len),
        });
    }
    let bytes = crc.unwrap_or(0).to_be_bytes();
    Some(Checksum::of(algorithm, &bytes[8 - width / 8..]))
}

/// A CRC's reflected polynomial and width in bits; None for the digests that are no CRC.
fn crc_params(algorithm: ChecksumAlgorithm) -> Option<(u64, usize)> {
    match algorithm {
        ChecksumAlgorithm::Crc32 => Some((0xEDB8_8320, 32)),
        ChecksumAlgorithm::Crc32c => Some((0x82F6_3B78, 32)),
        ChecksumAlgorithm::Crc64Nvme => Some((0x9A6C_9329_AC4B_C9B5, 64)),
        ChecksumAlgorithm::Sha1 | ChecksumAlgorithm::Sha256 => None,
    }
}

/// The CRC of `A || B` from `crc(A)`, `crc(B)` and the length of B, for a reflected CRC whose
/// initial value and final xor are both all ones (CRC-32, CRC-32C, CRC-64/NVME): `crc(A)`
/// shifted through `len_b` zero bytes (by squaring the GF(2) matrix of one zero bit), xored
/// with `crc(B)`, as zlib's `crc32_combine` does.
fn crc_combine(poly: u64, width: usize, crc_a: u64, crc_b: u64, len_b: u64) -> u64 {
    fn times(mat: &[u64], mut vec: u64) -> u64 {
        let mut sum = 0;
        let mut i = 0;
        while vec != 0 {
            if vec & 1 != 0 {
                sum ^= mat[i];
            }
            vec >>= 1;
            i += 1;
        }
        sum
    }
    fn square(mat: &[u64]) -> Vec<u64> {
        mat.iter().map(|&row| times(mat, row)).collect()
    }
    if len_b == 0 {
        return crc_a;
    }
    // The operator of one zero bit, then of two and four.
    let mut odd = vec![0u64; width];
    odd[0] = poly;
    for (n, row) in odd.iter_mut().enumerate().skip(1) {
        *row = 1 << (n - 1);
    }
    let mut even = square(&odd);
    odd = square(&even);
    let (mut crc, mut len) = (crc_a, len_b);
    loop {
        even = square(&odd);
        if len & 1 != 0 {
            crc = times(&even, crc);
        }
        len >>= 1;
        if len == 0 {
            break;
        }
        odd = square(&even);
        if len & 1 != 0 {
            crc = times(&odd, crc);
        }
        len >>= 1;
        if len == 0 {
            break;
        }
    }
    crc ^ crc_b
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sum(algorithm: ChecksumAlgorithm, data: &[u8]) -> Checksum {
        let mut h = Hasher::new(algorithm);
        h.update(data);
        Checksum::of(algorithm, &h.finish())
    }

    #[test]
    fn combined_crcs_are_the_crc_of_the_whole() {
        let data: Vec<u8> = (0..300_007u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for algorithm in [
            ChecksumAlgorithm::Crc32,
            ChecksumAlgorithm::Crc32c,
            ChecksumAlgorithm::Crc64Nvme,
        ] {
            for cuts in [vec![0, 1], vec![100_000, 200_001], vec![5, 6, 299_000]] {
                let mut parts = Vec::new();
                let mut at = 0;
                for &cut in cuts.iter().chain([data.len()].iter()) {
                    let p = &data[at..cut];
                    parts.push((sum(algorithm, p), p.len() as u64));
                    at = cut;
                }
                assert_eq!(
                    full_object(algorithm, &parts),
                    Some(sum(algorithm, &data)),
                    "{algorithm:?} cut at {cuts:?}"
                );
            }
        }
        assert_eq!(full_object(ChecksumAlgorithm::Sha256, &[]), None);
    }

    #[test]
    fn a_composite_checksum_hashes_the_parts_digests_and_counts_them() {
        let parts = [&b"first part"[..], b"second"];
        let sums: Vec<Checksum> = parts
            .iter()
            .map(|p| sum(ChecksumAlgorithm::Sha256, p))
            .collect();
        let mut digests = Vec::new();
        for p in &parts {
            use sha2::Digest;
            digests.extend_from_slice(&sha2::Sha256::digest(p));
        }
        let want = format!("{}-2", sum(ChecksumAlgorithm::Sha256, &digests).value);
        assert_eq!(composite(ChecksumAlgorithm::Sha256, &sums).value, want);
    }

    #[test]
    fn part_checksums_survive_their_file_names() {
        let c = sum(ChecksumAlgorithm::Crc32c, b"part");
        let hex = to_hex(&c);
        assert_eq!(hex.len(), 8);
        assert_eq!(from_hex(ChecksumAlgorithm::Crc32c, &hex), Some(c));
        assert_eq!(from_hex(ChecksumAlgorithm::Crc32, "zz00aa11"), None);
        assert_eq!(from_hex(ChecksumAlgorithm::Crc32, "00aa11"), None);
    }

    #[test]
    fn types_go_with_the_algorithms_s3_allows() {
        use ChecksumAlgorithm::*;
        assert_eq!(
            ChecksumType::default_for(Crc64Nvme),
            ChecksumType::FullObject
        );
        assert_eq!(ChecksumType::default_for(Sha1), ChecksumType::Composite);
        assert!(ChecksumType::FullObject.works_with(Crc32c));
        assert!(!ChecksumType::FullObject.works_with(Sha256));
        assert!(!ChecksumType::Composite.works_with(Crc64Nvme));
        assert_eq!(
            ChecksumType::from_name("full_object"),
            Some(ChecksumType::FullObject)
        );
        assert_eq!(ChecksumType::from_name("md5"), None);
    }
}
