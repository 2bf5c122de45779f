//! Admission of uploads against free disk space: a body whose size is announced before it is
//! read (a request's Content-Length, a tus `Upload-Length`, an S3 payload's decoded length,
//! a multipart completion's total) and that would not fit on the filesystem holding `files/`
//! (its `_tmp/`, `_big/` and `_s3/` are on it: temp files are renamed into place) is refused
//! at once, as a full disk (507), instead of being written until the disk fills, for
//! everyone, and only then refused.
//!
//! Uploads admitted together are counted together: an admitted upload holds a [`Claim`] on
//! the bytes it was admitted for, and the next one is admitted only if it fits in the free
//! space less what the claims still promise. A claim shrinks as its bytes land on the
//! filesystem (its writer, `write::Appender`, gives back each write once it is done: from
//! then on `statvfs` sees it) and gives back the rest when dropped, whether the upload
//! completed, failed, was refused later or its connection died. One process-wide ledger of
//! two atomics, touched only by uploads from [`CHECKED_BYTES_MIN`] (once at admission, once
//! per 1 MiB write): the filesystem is shared by every executor, and nothing else pays.
//!
//! A reserve is kept free for the metadata and the other writers: 1/64 of the filesystem, at
//! most 64 MiB. Small announced sizes are not checked (one `statvfs` per request would cost
//! more than a refusal saves) nor claimed, and neither are bodies without a size up front
//! (chunked): for them, a write that finds the disk full is still refused with 507 and its
//! temp file removed (`store::write`), and the reserve absorbs them meanwhile.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};

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

/// Bytes promised to the uploads in flight, and bytes their writers have put on the
/// filesystem since the start.
#[derive(Debug, Default)]
pub struct Ledger {
    /// What the claims still hold: admitted, not yet written.
    promised: AtomicU64,
    /// Monotonic: lets an admission tell how much of what it reads as free was taken by
    /// claimed writes while its `statvfs` ran (they left the promised total meanwhile).
    written: AtomicU64,
}

/// The process's ledger: every executor's uploads go to the same filesystem.
static LEDGER: Ledger = Ledger {
    promised: AtomicU64::new(0),
    written: AtomicU64::new(0),
};

impl Ledger {
    /// Bytes the claims in flight still promise.
    pub fn promised(&self) -> u64 {
        self.promised.load(Ordering::SeqCst)
    }

    /// Claims `announced` bytes if they fit in `free` (read from a filesystem of `total`
    /// bytes when `written` was `written_before`) beside the promised bytes and the
    /// reserve; else the bytes promised now.
    fn claim(
        &'static self,
        announced: u64,
        free: u64,
        total: u64,
        written_before: u64,
    ) -> Result<Claim, u64> {
        let landed = self.written.load(Ordering::SeqCst) - written_before;
        let free = free.saturating_sub(landed);
        self.promised
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                fits(announced.saturating_add(p), free, total).then(|| p + announced)
            })
            .map(|_| Claim {
                ledger: Some(self),
                left: announced,
            })
    }
}

/// The free space promised to one upload in flight: what it was admitted for and has not
/// yet written. Each write that landed gives its bytes back ([`Claim::wrote`]); dropping the
/// claim gives back the rest. A default claim holds nothing (a small or unannounced upload).
#[derive(Debug, Default)]
#[must_use = "a claim dropped at once gives its bytes back at once"]
pub struct Claim {
    ledger: Option<&'static Ledger>,
    left: u64,
}

impl Claim {
    /// Bytes still promised.
    pub fn left(&self) -> u64 {
        self.left
    }

    /// `n` bytes of the upload are on the filesystem now (its free space shows them): they
    /// are no longer promised. Bytes beyond the claim were never promised.
    pub fn wrote(&mut self, n: u64) {
        let n = n.min(self.left);
        let Some(ledger) = self.ledger.filter(|_| n > 0) else {
            return;
        };
        self.left -= n;
        ledger.written.fetch_add(n, Ordering::SeqCst);
        let before = ledger.promised.fetch_sub(n, Ordering::SeqCst);
        assert!(before >= n, "a claim gives back only its own bytes");
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let (Some(ledger), n @ 1..) = (self.ledger, self.left) {
            let before = ledger.promised.fetch_sub(n, Ordering::SeqCst);
            assert!(before >= n, "a claim gives back only its own bytes");
        }
    }
}

/// Bytes the uploads in flight in this process still promise.
pub fn promised() -> u64 {
    LEDGER.promised()
}

/// Admits an upload of `announced` bytes into the runtime dir `root` and claims them, or
/// refuses it (`StorageFull`: a 507) when they do not fit in the free space less the claims
/// in flight and the reserve. The `statvfs` runs on the blocking pool: on a network
/// filesystem it may wait on a server, and the executor must not. A filesystem that cannot
/// be asked, or reports no size at all, admits without a claim (the writes find out).
pub async fn admit(root: &Path, announced: u64) -> io::Result<Claim> {
    if announced < CHECKED_BYTES_MIN {
        return Ok(Claim::default());
    }
    let files = root.join("files");
    let written_before = LEDGER.written.load(Ordering::SeqCst);
    let space = glommio::executor()
        .spawn_blocking(move || crate::sys::free_and_total_bytes(&files))
        .await;
    // A filesystem that reports no size (a FUSE one without `statfs`: all zeros) cannot
    // tell: admitted, as when it cannot be asked.
    let Some((free, total)) = space.filter(|&(_, total)| total > 0) else {
        return Ok(Claim::default());
    };
    LEDGER
        .claim(announced, free, total, written_before)
        .map_err(|promised| {
            io::Error::new(
                io::ErrorKind::StorageFull,
                format!(
                    "an upload of {announced} bytes refused: {free} bytes free, {promised} of them promised to uploads in flight and {} kept in reserve",
                    reserve_bytes(total)
                ),
            )
        })
}

/// [`admit`] without keeping the claim: the announced size fits now, beside the uploads in
/// flight, but nothing is promised to it (a tus upload's whole length at creation: its
/// bytes come later, claimed by each PATCH that brings them).
pub async fn check(root: &Path, announced: u64) -> io::Result<()> {
    admit(root, announced).await.map(drop)
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

    fn ledger() -> &'static Ledger {
        Box::leak(Box::default())
    }

    #[test]
    fn uploads_admitted_together_are_counted_together() {
        let l = ledger();
        let (total, free) = (1 << 40, 200 << 20);
        let reserve = reserve_bytes(total);
        let a = l.claim(30 << 20, free, total, 0).unwrap();
        let _b = l.claim(30 << 20, free, total, 0).unwrap();
        assert_eq!(l.promised(), 60 << 20);
        let left = free - reserve - (60 << 20);
        assert_eq!(l.claim(left + 1, free, total, 0).unwrap_err(), 60 << 20);
        drop(a);
        assert_eq!(
            l.promised(),
            30 << 20,
            "a dropped claim gives its bytes back"
        );
        let c = l.claim(left + 1, free, total, 0).unwrap();
        assert_eq!(c.left(), left + 1);
    }

    #[test]
    fn a_claim_shrinks_as_its_bytes_land_and_gives_back_the_rest_when_dropped() {
        let l = ledger();
        let (total, free) = (1 << 40, 100 << 20);
        let mut a = l.claim(10 << 20, free, total, 0).unwrap();
        a.wrote(4 << 20);
        assert_eq!((a.left(), l.promised()), (6 << 20, 6 << 20));
        a.wrote(100 << 20);
        assert_eq!(
            (a.left(), l.promised()),
            (0, 0),
            "bytes beyond it were never promised"
        );
        drop(a);
        assert_eq!(l.promised(), 0);
        let mut none = Claim::default();
        none.wrote(5);
        assert_eq!(none.left(), 0);
    }

    #[test]
    fn writes_that_landed_while_the_filesystem_was_asked_are_not_counted_free() {
        let l = ledger();
        let (total, free) = (1 << 40, 100 << 20);
        let room = free - reserve_bytes(total);
        let mut a = l.claim(room / 2, free, total, 0).unwrap();
        let before = l.written.load(Ordering::SeqCst);
        // `free` was read before these bytes landed; they left the promised total since.
        a.wrote(room / 2);
        assert!(l.claim(room / 2 + 1, free, total, before).is_err());
        assert!(l.claim(room / 2, free, total, before).is_ok());
    }
}
