//! Admission of uploads against free disk space: a body whose size is announced before it is
//! read (a request's Content-Length, a tus `Upload-Length`, an S3 payload's decoded length,
//! a multipart completion's total, a copy's or a peer's file's size) and that would not fit
//! on the filesystem holding `files/` (its `_tmp/`, `_big/` and `_s3/` are on it: temp files
//! are renamed into place) is refused at once, as a full disk (507), instead of being
//! written until the disk fills, for everyone, and only then refused.
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
//! A body without a size up front (chunked) cannot be refused before it is read, but it is
//! metered ([`Claim::metered`]): its writer takes free space for it in steps of
//! [`METER_STEP_BYTES`] as it goes, on the same terms, and it is refused with 507 (its temp
//! file removed) when the next step would take the reserve, instead of filling the disk.
//!
//! A reserve is kept free for the metadata and the other writers: 1/64 of the filesystem, at
//! most 64 MiB. Small announced sizes are not checked (one `statvfs` per request would cost
//! more than a refusal saves) nor claimed: a write that finds the disk full is still refused
//! with 507 and its temp file removed (`store::write`), and the reserve absorbs them.

use std::io;
use std::path::{Path, PathBuf};
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

    /// Promises `n` more bytes if they fit in `space` beside the promised bytes and the
    /// reserve; else the bytes promised now.
    fn take(&self, n: u64, space: Space) -> Result<(), u64> {
        let landed = self.written.load(Ordering::SeqCst) - space.written_before;
        let free = space.free.saturating_sub(landed);
        self.promised
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                fits(n.saturating_add(p), free, space.total).then(|| p + n)
            })
            .map(drop)
    }

    /// Claims `announced` bytes if they fit in `space` ([`Ledger::take`]).
    fn claim(&'static self, announced: u64, space: Space) -> Result<Claim, u64> {
        self.take(announced, space).map(|()| Claim {
            ledger: Some(self),
            left: announced,
            meter: None,
        })
    }

    /// The filesystem of `files` asked (on the blocking pool: on a network filesystem
    /// `statvfs` may wait on a server, and the executor must not). None when it cannot
    /// tell: it cannot be asked, or reports no size at all (a FUSE one without `statfs`).
    async fn ask(&self, files: PathBuf) -> Option<Space> {
        let written_before = self.written.load(Ordering::SeqCst);
        let (free, total) = glommio::executor()
            .spawn_blocking(move || crate::sys::free_and_total_bytes(&files))
            .await
            .filter(|&(_, total)| total > 0)?;
        Some(Space {
            free,
            total,
            written_before,
        })
    }
}

/// What a `statvfs` said: `free` bytes of `total`, when the ledger's `written` was
/// `written_before` (claimed writes that landed since are in neither `free` nor the promised
/// bytes any more: not counted free twice).
#[derive(Debug, Clone, Copy)]
struct Space {
    free: u64,
    total: u64,
    written_before: u64,
}

/// The refusal of `n` bytes on a filesystem that had `space`, `promised` of it to others.
fn refused(n: u64, space: Space, promised: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::StorageFull,
        format!(
            "{n} bytes refused: {} bytes free, {promised} of them promised to uploads in flight and {} kept in reserve",
            space.free,
            reserve_bytes(space.total)
        ),
    )
}

/// A metered claim (a body of unknown length) takes free space this much at a time: one
/// `statvfs` per step.
pub const METER_STEP_BYTES: u64 = 8 << 20;

/// The free space promised to one upload in flight: what it was admitted for and has not
/// yet written. Each write that landed gives its bytes back ([`Claim::wrote`]); dropping the
/// claim gives back the rest. A default claim holds nothing (a small upload); a metered one
/// ([`Claim::metered`], a body of unknown length) takes space as its writes need it.
#[derive(Debug, Default)]
#[must_use = "a claim dropped at once gives its bytes back at once"]
pub struct Claim {
    ledger: Option<&'static Ledger>,
    left: u64,
    /// Metered: the `files/` whose filesystem is asked for more (boxed: every writer holds
    /// a claim, few are metered).
    meter: Option<Box<PathBuf>>,
}

impl Claim {
    /// A claim of nothing yet for a body of unknown length (chunked) into the runtime dir
    /// `root`: its writer takes space for it step by step ([`Claim::cover`]).
    pub fn metered(root: &Path) -> Claim {
        Claim {
            ledger: Some(&LEDGER),
            left: 0,
            meter: Some(Box::new(root.join("files"))),
        }
    }

    /// Makes sure the next `n` bytes to write are claimed. A metered claim short of them
    /// takes more free space, [`METER_STEP_BYTES`] at a time (just what it lacks when a step
    /// does not fit), beside the uploads in flight and the reserve, or fails with
    /// `StorageFull` (a 507) when not even that fits; a filesystem that cannot tell lets
    /// the writes find out. Other claims cover what they cover.
    pub async fn cover(&mut self, n: u64) -> io::Result<()> {
        let (Some(ledger), Some(files)) = (self.ledger, self.meter.as_ref()) else {
            return Ok(());
        };
        if self.left >= n {
            return Ok(());
        }
        let lacking = n - self.left;
        let Some(space) = ledger.ask(files.to_path_buf()).await else {
            self.meter = None; // it will not tell later either
            return Ok(());
        };
        let mut promised = 0;
        for step in [lacking.max(METER_STEP_BYTES), lacking] {
            match ledger.take(step, space) {
                Ok(()) => {
                    self.left += step;
                    return Ok(());
                }
                Err(p) => promised = p,
            }
        }
        Err(refused(lacking, space, promised))
    }

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

/// Admits an upload of `announced` bytes into the runtime dir `root` and claims them, or
/// refuses it (`StorageFull`: a 507) when they do not fit in the free space less the claims
/// in flight and the reserve. The `statvfs` runs on the blocking pool: on a network
/// filesystem it may wait on a server, and the executor must not. A filesystem that cannot
/// be asked, or reports no size at all, admits without a claim (the writes find out).
pub async fn admit(root: &Path, announced: u64) -> io::Result<Claim> {
    if announced < CHECKED_BYTES_MIN {
        return Ok(Claim::default());
    }
    let Some(space) = LEDGER.ask(root.join("files")).await else {
        return Ok(Claim::default());
    };
    LEDGER
        .claim(announced, space)
        .map_err(|promised| refused(announced, space, promised))
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

    fn space(free: u64, total: u64, written_before: u64) -> Space {
        Space {
            free,
            total,
            written_before,
        }
    }

    #[test]
    fn uploads_admitted_together_are_counted_together() {
        let l = ledger();
        let (total, free) = (1 << 40, 200 << 20);
        let reserve = reserve_bytes(total);
        let a = l.claim(30 << 20, space(free, total, 0)).unwrap();
        let _b = l.claim(30 << 20, space(free, total, 0)).unwrap();
        assert_eq!(l.promised(), 60 << 20);
        let left = free - reserve - (60 << 20);
        assert_eq!(
            l.claim(left + 1, space(free, total, 0)).unwrap_err(),
            60 << 20
        );
        drop(a);
        assert_eq!(
            l.promised(),
            30 << 20,
            "a dropped claim gives its bytes back"
        );
        let c = l.claim(left + 1, space(free, total, 0)).unwrap();
        assert_eq!(c.left(), left + 1);
    }

    #[test]
    fn a_claim_shrinks_as_its_bytes_land_and_gives_back_the_rest_when_dropped() {
        let l = ledger();
        let (total, free) = (1 << 40, 100 << 20);
        let mut a = l.claim(10 << 20, space(free, total, 0)).unwrap();
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
        let mut a = l.claim(room / 2, space(free, total, 0)).unwrap();
        let before = l.written.load(Ordering::SeqCst);
        // `free` was read before these bytes landed; they left the promised total since.
        a.wrote(room / 2);
        assert!(l.claim(room / 2 + 1, space(free, total, before)).is_err());
        assert!(l.claim(room / 2, space(free, total, before)).is_ok());
    }
}
