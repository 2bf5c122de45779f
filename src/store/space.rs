//! Admission of uploads against free disk space: a body whose size is announced before it is
//! read (a request's Content-Length, a tus `Upload-Length`, an S3 payload's decoded length)
//! and that would not fit on the filesystem holding `files/` (its `_tmp/`, `_big/` and
//! `_s3/` are on it: temp files are renamed into place) is refused at once, as a full disk
//! (507), instead of being written until the disk fills, for everyone, and only then refused.
//!
//! A reserve is kept free for the metadata and the other writers: 1/64 of the filesystem, at
//! most 64 MiB. Small announced sizes are not checked (one `statvfs` per request would cost
//! more than a refusal saves), and neither are bodies without a size up front (chunked): for
//! them, and for uploads admitted together that do not fit together, a write that finds the
//! disk full is still refused with 507 and its temp file removed (`store::write`).

use std::io;
use std::path::Path;

/// Announced sizes below this are admitted without asking the filesystem.
pub const CHECKED_BYTES_MIN: u64 = 1 << 20;
/// Most free space an upload may not take.
pub const RESERVE_BYTES_MAX: u64 = 64 << 20;
/// On small filesystems the reserve is this fraction of their size (1/64).
const RESERVE_SHARE_DIVISOR: u64 = 64;

/// Free bytes an upload may not take on a filesystem of `total` bytes.
pub fn reserve_bytes(total: u64) -> u64 {
    (total / RESERVE_SHARE_DIVISOR).min(RESERVE_BYTES_MAX)
}

/// Whether `announced` bytes fit in `free` bytes with the reserve of a filesystem of `total`
/// bytes left over.
pub fn fits(announced: u64, free: u64, total: u64) -> bool {
    announced.saturating_add(reserve_bytes(total)) <= free
}

/// Refuses (`StorageFull`: a 507) an upload of `announced` bytes into the runtime dir `root`
/// that would not fit. The `statvfs` runs on the blocking pool: on a network filesystem it
/// may wait on a server, and the executor must not. A filesystem that cannot be asked, or
/// reports no size at all, admits (the writes find out).
pub async fn admit(root: &Path, announced: u64) -> io::Result<()> {
    if announced < CHECKED_BYTES_MIN {
        return Ok(());
    }
    let files = root.join("files");
    let space = glommio::executor()
        .spawn_blocking(move || crate::sys::free_and_total_bytes(&files))
        .await;
    match space {
        // A filesystem that reports no size (a FUSE one without `statfs`: all zeros) cannot
        // tell: admitted, as when it cannot be asked.
        Some((free, total)) if total > 0 && !fits(announced, free, total) => Err(io::Error::new(
            io::ErrorKind::StorageFull,
            format!(
                "an upload of {announced} bytes refused: {free} bytes free, {} of them kept in reserve",
                reserve_bytes(total)
            ),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_reserve_is_a_sixty_fourth_of_the_filesystem_up_to_64_mib() {
        assert_eq!(reserve_bytes(0), 0);
        assert_eq!(reserve_bytes(32 << 20), 512 << 10);
        assert_eq!(reserve_bytes(4 << 30), 64 << 20);
        assert_eq!(reserve_bytes(u64::MAX), RESERVE_BYTES_MAX);
    }

    #[test]
    fn an_upload_fits_when_the_reserve_is_left_over() {
        let total = 1 << 40;
        let free = 10 << 30;
        assert!(fits(free - RESERVE_BYTES_MAX, free, total));
        assert!(!fits(free - RESERVE_BYTES_MAX + 1, free, total));
        assert!(!fits(u64::MAX, free, total));
        assert!(!fits(1, 0, total));
    }
}
