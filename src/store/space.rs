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
//! A client (an IPv4 address, an IPv6 /64) may hold claims of at most a share of the space
//! left for uploads beside the other clients' claims ([`Share`], `upload_space_per_client_percent`,
//! 90 % by default): one client announcing huge bodies and sending them slowly would
//! otherwise hold all of it, and every other upload would be refused meanwhile. Admins and
//! peers have no share (only the total applies to them).
//!
//! A reserve is kept free for the metadata and the other writers: 1/64 of the filesystem, at
//! most 64 MiB. Small announced sizes are not checked (one `statvfs` per request would cost
//! more than a refusal saves) nor claimed: a write that finds the disk full is still refused
//! with 507 and its temp file removed (`store::write`), and the reserve absorbs them.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;

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
    /// What the claims of each client with a [`Share`] still hold (part of `promised`).
    per_client: Mutex<BTreeMap<IpAddr, u64>>,
}

/// A client's part in the claims: the client (`access::client_block`), and the percentage
/// of the space left for uploads beside the other clients' claims that its own may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Share {
    pub client: IpAddr,
    pub percent: u64,
}

/// Why bytes could not be promised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Short {
    /// They do not fit beside everyone's claims and the reserve (`promised` now).
    Total(u64),
    /// They would take the client past its share: it holds `held`, and `room` is left
    /// beside the other clients' claims and the reserve.
    Share { held: u64, room: u64, percent: u64 },
}

/// The process's ledger: every executor's uploads go to the same filesystem.
static LEDGER: Ledger = Ledger {
    promised: AtomicU64::new(0),
    written: AtomicU64::new(0),
    per_client: Mutex::new(BTreeMap::new()),
};

impl Ledger {
    /// Bytes the claims in flight still promise.
    pub fn promised(&self) -> u64 {
        self.promised.load(Ordering::SeqCst)
    }

    /// Promises `n` more bytes if they fit in `space` beside the promised bytes and the
    /// reserve, and (with a `share`) within the client's share; else why not.
    fn take(&self, n: u64, space: Space, share: Option<Share>) -> Result<(), Short> {
        let landed = self.written.load(Ordering::SeqCst) - space.written_before;
        let free = space.free.saturating_sub(landed);
        let Some(share) = share else {
            return self.take_total(n, free, space.total);
        };
        let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
        let held = per_client.get(&share.client).copied().unwrap_or(0);
        let others = self.promised().saturating_sub(held);
        let room = free
            .saturating_sub(reserve_bytes(space.total))
            .saturating_sub(others);
        let percent = share.percent.min(100);
        if u128::from(held.saturating_add(n)) * 100 > u128::from(room) * u128::from(percent) {
            return Err(Short::Share {
                held,
                room,
                percent,
            });
        }
        self.take_total(n, free, space.total)?;
        *per_client.entry(share.client).or_insert(0) += n;
        Ok(())
    }

    /// Promises `n` more bytes if they fit in `free` bytes of a filesystem of `total` beside
    /// the promised bytes and the reserve.
    fn take_total(&self, n: u64, free: u64, total: u64) -> Result<(), Short> {
        self.promised
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |p| {
                fits(n.saturating_add(p), free, total).then(|| p + n)
            })
            .map(drop)
            .map_err(Short::Total)
    }

    /// Gives back `n` bytes promised (to `share`'s client, if any).
    fn give_back(&self, n: u64, share: Option<Share>) {
        if let Some(share) = share {
            let mut per_client = self.per_client.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(held) = per_client.get_mut(&share.client) {
                assert!(*held >= n, "a claim gives back only its client's bytes");
                *held -= n;
                if *held == 0 {
                    per_client.remove(&share.client);
                }
            }
        }
        let before = self.promised.fetch_sub(n, Ordering::SeqCst);
        assert!(before >= n, "a claim gives back only its own bytes");
    }

    /// Claims `announced` bytes if they fit in `space` ([`Ledger::take`]).
    fn claim(
        &'static self,
        announced: u64,
        space: Space,
        share: Option<Share>,
    ) -> Result<Claim, Short> {
        self.take(announced, space, share).map(|()| Claim {
            ledger: Some(self),
            left: announced,
            more: share.map(|share| {
                Box::new(More {
                    meter: None,
                    share: Some(share),
                })
            }),
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

/// The refusal of `n` bytes on a filesystem that had `space`, and why.
fn refused(n: u64, space: Space, why: Short) -> io::Error {
    let text = match why {
        Short::Total(promised) => format!(
            "{n} bytes refused: {} bytes free, {promised} of them promised to uploads in flight and {} kept in reserve",
            space.free,
            reserve_bytes(space.total)
        ),
        Short::Share { held, room, percent } => format!(
            "{n} bytes refused: the client's uploads in flight hold {held} bytes, and one client may hold {percent}% of the {room} bytes left for uploads (upload_space_per_client_percent)"
        ),
    };
    io::Error::new(io::ErrorKind::StorageFull, text)
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
    /// Boxed: every writer holds a claim, few are metered or a client's.
    more: Option<Box<More>>,
}

/// What a claim may be besides bytes.
#[derive(Debug)]
struct More {
    /// Metered: the `files/` whose filesystem is asked for more.
    meter: Option<PathBuf>,
    /// The client whose share holds these bytes (none: an admin's, a peer's).
    share: Option<Share>,
}

impl Claim {
    /// A claim of nothing yet for a body of unknown length (chunked) into the runtime dir
    /// `root`: its writer takes space for it step by step ([`Claim::cover`]).
    pub fn metered(root: &Path) -> Claim {
        Claim::metered_as(root, None)
    }

    /// [`Claim::metered`] within `share`'s client's share (none: only the total applies).
    pub fn metered_as(root: &Path, share: Option<Share>) -> Claim {
        Claim {
            ledger: Some(&LEDGER),
            left: 0,
            more: Some(Box::new(More {
                meter: Some(root.join("files")),
                share,
            })),
        }
    }

    /// Makes sure the next `n` bytes to write are claimed. A metered claim short of them
    /// takes more free space, [`METER_STEP_BYTES`] at a time (just what it lacks when a step
    /// does not fit), beside the uploads in flight and the reserve, or fails with
    /// `StorageFull` (a 507) when not even that fits; a filesystem that cannot tell lets
    /// the writes find out. Other claims cover what they cover.
    pub async fn cover(&mut self, n: u64) -> io::Result<()> {
        let share = self.share();
        let (Some(ledger), Some(files)) = (
            self.ledger,
            self.more.as_ref().and_then(|m| m.meter.as_ref()),
        ) else {
            return Ok(());
        };
        if self.left >= n {
            return Ok(());
        }
        let lacking = n - self.left;
        let Some(space) = ledger.ask(files.to_path_buf()).await else {
            if let Some(more) = self.more.as_mut() {
                more.meter = None; // it will not tell later either
            }
            return Ok(());
        };
        let mut why = Short::Total(0);
        for step in [lacking.max(METER_STEP_BYTES), lacking] {
            match ledger.take(step, space, share) {
                Ok(()) => {
                    self.left += step;
                    return Ok(());
                }
                Err(short) => why = short,
            }
        }
        Err(refused(lacking, space, why))
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
        ledger.give_back(n, self.share());
    }

    /// The client whose share holds these bytes, if any.
    fn share(&self) -> Option<Share> {
        self.more.as_ref().and_then(|m| m.share)
    }
}

impl Drop for Claim {
    fn drop(&mut self) {
        if let (Some(ledger), n @ 1..) = (self.ledger, self.left) {
            ledger.give_back(n, self.share());
        }
    }
}

/// Admits an upload of `announced` bytes into the runtime dir `root` and claims them, or
/// refuses it (`StorageFull`: a 507) when they do not fit in the free space less the claims
/// in flight and the reserve. The `statvfs` runs on the blocking pool: on a network
/// filesystem it may wait on a server, and the executor must not. A filesystem that cannot
/// be asked, or reports no size at all, admits without a claim (the writes find out).
pub async fn admit(root: &Path, announced: u64) -> io::Result<Claim> {
    admit_as(root, announced, None).await
}

/// [`admit`] within `share`'s client's share too (none: only the total applies).
pub async fn admit_as(root: &Path, announced: u64, share: Option<Share>) -> io::Result<Claim> {
    if announced < CHECKED_BYTES_MIN {
        return Ok(Claim::default());
    }
    let Some(space) = LEDGER.ask(root.join("files")).await else {
        return Ok(Claim::default());
    };
    LEDGER
        .claim(announced, space, share)
        .map_err(|why| refused(announced, space, why))
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
        let a = l.claim(30 << 20, space(free, total, 0), None).unwrap();
        let _b = l.claim(30 << 20, space(free, total, 0), None).unwrap();
        assert_eq!(l.promised(), 60 << 20);
        let left = free - reserve - (60 << 20);
        assert_eq!(
            l.claim(left + 1, space(free, total, 0), None).unwrap_err(),
            Short::Total(60 << 20)
        );
        drop(a);
        assert_eq!(
            l.promised(),
            30 << 20,
            "a dropped claim gives its bytes back"
        );
        let c = l.claim(left + 1, space(free, total, 0), None).unwrap();
        assert_eq!(c.left(), left + 1);
    }

    #[test]
    fn a_claim_shrinks_as_its_bytes_land_and_gives_back_the_rest_when_dropped() {
        let l = ledger();
        let (total, free) = (1 << 40, 100 << 20);
        let mut a = l.claim(10 << 20, space(free, total, 0), None).unwrap();
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
        let mut a = l.claim(room / 2, space(free, total, 0), None).unwrap();
        let before = l.written.load(Ordering::SeqCst);
        // `free` was read before these bytes landed; they left the promised total since.
        a.wrote(room / 2);
        assert!(l
            .claim(room / 2 + 1, space(free, total, before), None)
            .is_err());
        assert!(l.claim(room / 2, space(free, total, before), None).is_ok());
    }

    #[test]
    fn a_client_holds_at_most_its_share_of_the_room_beside_the_others() {
        let l = ledger();
        let (total, free) = (1 << 40, 100 << 20);
        let room = free - reserve_bytes(total);
        let share = |last: u8| {
            Some(Share {
                client: IpAddr::from([127, 0, 0, last]),
                percent: 50,
            })
        };
        let a1 = l.claim(room / 2, space(free, total, 0), share(90)).unwrap();
        let short = l
            .claim(1 << 20, space(free, total, 0), share(90))
            .unwrap_err();
        assert!(
            matches!(short, Short::Share { held, .. } if held == room / 2),
            "{short:?}"
        );
        // Another client gets half of what is left beside the first one's claim.
        let left = room - room / 2;
        assert!(l
            .claim(left / 2 + 1, space(free, total, 0), share(91))
            .is_err());
        let b = l.claim(left / 2, space(free, total, 0), share(91)).unwrap();
        // An admin (no share) may take the rest.
        let rest = room - l.promised();
        let c = l.claim(rest, space(free, total, 0), None).unwrap();
        drop((a1, b, c));
        assert_eq!(l.promised(), 0);
        assert!(
            l.per_client.lock().unwrap().is_empty(),
            "no entry left behind"
        );
        // A share of 100% is the total alone.
        let all = Some(Share {
            client: IpAddr::from([127, 0, 0, 92]),
            percent: 100,
        });
        let mut d = l.claim(room, space(free, total, 0), all).unwrap();
        d.wrote(room);
        assert!(l.per_client.lock().unwrap().is_empty());
    }
}
