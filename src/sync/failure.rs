//! Why a fetch of an announced file failed (`FetchError`), and the one place that decides what
//! the pull task does next (`Retries::after`, docs/PROTOCOL.md §8.2): an announcement this
//! node will not take is dropped at once; a source that lacks the file or serves other content
//! under its name is given `retry_count` chances; everything else (the network, a source
//! answering with errors, this node's own disk or metadata) is passing trouble, retried with
//! backoff as long as it takes. On the push side, `PushError` tells the peer's failures from
//! this node's: both are retried, only the peer's mark it down.

use crate::store::meta::MetaError;
use std::io;
use std::time::Duration;

/// Why a fetch (or the store of content a peer sent along) did not store an announced file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// This node does not take the announcement at all: a record that fails validation, no
    /// source to fetch from, `read_only` on.
    #[error("{0}")]
    Refused(String),
    /// The exchange with a source failed before or while the file came: no connection, no
    /// answer in time, a body cut off.
    #[error("{src}: {cause}")]
    Transport { src: String, cause: io::Error },
    /// The source answered 404: it does not have the file.
    #[error("404 from {url}")]
    Missing { url: String },
    /// The source answered neither 200 nor 404 (a 5xx, a redirect, a refusal).
    #[error("{status} from {url}")]
    Status { status: u16, url: String },
    /// The source served content other than the announced file's (size or digest): a
    /// go-fastdfs node renames a fetched file over its own one of the same path.
    #[error("other content: {0}")]
    OtherContent(String),
    /// Storing the content here failed: space, the temp file, a write, a sync.
    #[error("storing here: {0}")]
    Disk(io::Error),
    /// Committing the record here failed: this node's metadata, or (`Blame::Place`) the
    /// file's place is taken by one of this node's.
    #[error("{0}")]
    Meta(#[from] MetaError),
}

/// Why an outbox entry was not delivered to a peer. Either is retried with backoff; only
/// the peer's failures mark it down (`fastdfs_peer_up`: the last exchange with it worked).
#[derive(Debug, Clone, thiserror::Error)]
pub enum PushError {
    /// The peer did not take it: no connection or answer, an error status, a refusal.
    #[error("{0}")]
    Peer(String),
    /// This node failed: reading the record to announce, recording the delivery.
    #[error("here: {0}")]
    Local(String),
}

impl PushError {
    pub fn peer(e: impl std::fmt::Display) -> PushError {
        PushError::Peer(e.to_string())
    }

    pub fn local(e: impl std::fmt::Display) -> PushError {
        PushError::Local(e.to_string())
    }

    /// The same failure, said of an entry held back because of it.
    pub fn held_back(&self) -> PushError {
        match self {
            PushError::Peer(m) => PushError::Peer(format!("not sent after a failure: {m}")),
            PushError::Local(m) => PushError::Local(format!("not sent after a failure: {m}")),
        }
    }
}

/// Whom a failed fetch is charged to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Blame {
    /// The announcement: it can never be stored here.
    Announcement,
    /// This node's own file or directory holds the file's place (a file where its directory
    /// goes, no free name left): ours is kept, the announced one does not fit until ours goes.
    Place,
    /// The source: it lacks the file, or serves other content under its name.
    Source,
    /// Nobody for good: the network, a source's passing state, this node.
    Passing,
}

impl FetchError {
    /// A transport failure talking to `src`.
    pub fn transport(src: &str, cause: impl Into<io::Error>) -> FetchError {
        FetchError::Transport {
            src: src.to_string(),
            cause: cause.into(),
        }
    }

    /// The error for a source's answer other than 200 to a GET of `url`.
    pub fn status(status: u16, url: String) -> FetchError {
        match status {
            404 => FetchError::Missing { url },
            status => FetchError::Status { status, url },
        }
    }

    /// Whom this failure is charged to (`Retries::after` decides by it).
    pub fn blame(&self) -> Blame {
        match self {
            FetchError::Refused(_) => Blame::Announcement,
            FetchError::Meta(MetaError::PathConflict(_) | MetaError::NoFreeName(..)) => {
                Blame::Place
            }
            FetchError::Missing { .. } | FetchError::OtherContent(_) => Blame::Source,
            FetchError::Transport { .. }
            | FetchError::Status { .. }
            | FetchError::Disk(_)
            | FetchError::Meta(_) => Blame::Passing,
        }
    }

    /// Whether this failure spends one of the file's `retry_count` chances.
    pub fn counts(&self) -> bool {
        matches!(self.blame(), Blame::Source | Blame::Place)
    }

    /// The failure a fetch from several sources ends with, given the one so far (`before`)
    /// and the next source's: the most hopeful. A source that lacks the file says nothing
    /// of another that could not be asked (down, or this node failed while it answered).
    pub fn then(before: Option<FetchError>, next: FetchError) -> FetchError {
        match before {
            Some(before) if before.blame() > next.blame() => before,
            _ => next,
        }
    }
}

/// The backoff after the n-th failed fetch of a file: `FETCH_RETRY_DELAY_BASE` times 2^n
/// (400 ms, 800 ms, ...), at most `FETCH_RETRY_DELAY_MAX`.
const FETCH_RETRY_DELAY_BASE: Duration = Duration::from_millis(200);
const FETCH_RETRY_DELAY_MAX: Duration = Duration::from_secs(60);
/// Failures after which each further one is logged as a warning (before: debug).
pub const WARN_AFTER: u32 = 3;

/// What the pull task does with an announced file after a failed fetch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Next {
    /// Give it up: the inbox entry goes.
    Drop,
    /// Fetch it again after this delay.
    RetryIn(Duration),
}

/// A file's failed fetches so far (kept while it is retried).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Retries {
    /// Failed fetches of any kind: the backoff.
    pub attempts: u32,
    /// Those that count (`Blame::Source`, `Blame::Place`) since the file was last announced:
    /// `retry_count` of them drop the file.
    pub strikes: u32,
}

/// The chances a source gets (`retry_count` of the config: at least 1, and a count beyond
/// `u32` is as good as endless, not wrapped to a small one).
pub fn chances(retry_count: i64) -> u32 {
    u32::try_from(retry_count.max(1)).unwrap_or(u32::MAX)
}

impl Retries {
    /// Records failure `e` and decides what follows; `retry_count` is the config's (at
    /// least 1, [`chances`]).
    pub fn after(&mut self, e: &FetchError, retry_count: u32) -> Next {
        if e.blame() == Blame::Announcement {
            return Next::Drop;
        }
        self.attempts += 1;
        if e.counts() {
            self.strikes += 1;
            if self.strikes >= retry_count.max(1) {
                return Next::Drop;
            }
        }
        let delay = FETCH_RETRY_DELAY_BASE * 2u32.saturating_pow(self.attempts.min(10));
        Next::RetryIn(delay.min(FETCH_RETRY_DELAY_MAX))
    }
}

/// The files whose fetch failed, with their failures and when to fetch each again. An entry
/// lives while its file is in the inbox: one that a whole pass over the inbox did not meet
/// (the file arrived another way, or was deleted) is forgotten when the pass ends. So the map
/// holds at most one entry per inbox entry of this executor's shards.
///
/// A file announced again (a new `arrived`, `store::meta::Inboxed`) starts its chances afresh
/// (its strikes go) but keeps its backoff: a peer that keeps announcing a file makes it
/// retried for as long as it does so, never sooner than the backoff allows (at most once a
/// `FETCH_RETRY_DELAY_MAX` once it has failed ten times).
#[derive(Default)]
pub struct RetryMap {
    pass: u64,
    files: std::collections::HashMap<String, Retry>,
}

struct Retry {
    retries: Retries,
    at: std::time::Instant,
    /// The last pass that met the file.
    pass: u64,
    /// The announcement the strikes were counted against.
    arrived: u64,
}

impl Retry {
    /// Meets the file as announced at `arrived`: a fresh announcement gets fresh chances.
    fn meet(&mut self, pass: u64, arrived: u64) {
        self.pass = pass;
        if arrived != self.arrived {
            self.arrived = arrived;
            self.retries.strikes = 0;
        }
    }
}

impl RetryMap {
    /// Whether `md5`'s file, as announced at `arrived`, may be fetched at `now` (no failure,
    /// or its backoff is over); the pass meets it either way.
    pub fn due(&mut self, md5: &str, arrived: u64, now: std::time::Instant) -> bool {
        match self.files.get_mut(md5) {
            None => true,
            Some(r) => {
                r.meet(self.pass, arrived);
                r.at <= now
            }
        }
    }

    /// Records a failed fetch of `md5`'s file as announced at `arrived` and decides what
    /// follows ([`Retries::after`]), with the failures so far. A dropped file is forgotten.
    pub fn failed(
        &mut self,
        md5: &str,
        arrived: u64,
        e: &FetchError,
        retry_count: u32,
        now: std::time::Instant,
    ) -> (Next, Retries) {
        let pass = self.pass;
        let r = self.files.entry(md5.to_string()).or_insert_with(|| Retry {
            retries: Retries::default(),
            at: now,
            pass,
            arrived,
        });
        r.meet(pass, arrived);
        let next = r.retries.after(e, retry_count);
        let retries = r.retries;
        match next {
            Next::RetryIn(delay) => r.at = now + delay,
            Next::Drop => {
                self.files.remove(md5);
            }
        }
        (next, retries)
    }

    /// `md5`'s file was fetched: forgotten.
    pub fn succeeded(&mut self, md5: &str) {
        self.files.remove(md5);
    }

    /// A pass over the inbox ended: the files it did not meet are forgotten.
    pub fn end_pass(&mut self) {
        let pass = self.pass;
        self.files.retain(|_, r| r.pass == pass);
        self.pass += 1;
    }

    /// Files remembered.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.files.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failed_file_no_pass_meets_is_forgotten_and_one_still_queued_keeps_its_backoff() {
        let mut m = RetryMap::default();
        let t0 = std::time::Instant::now();
        let (next, _) = m.failed("gone", 1, &transport(), 3, t0);
        assert!(matches!(next, Next::RetryIn(_)));
        m.failed("queued", 1, &transport(), 3, t0);
        m.failed("queued", 1, &transport(), 3, t0);
        m.end_pass();
        assert_eq!(m.len(), 2, "both failed in the pass that ends");
        // The next pass meets only "queued" (its file is still in the inbox, backing off).
        assert!(!m.due("queued", 1, t0), "still backing off");
        m.end_pass();
        assert_eq!(m.len(), 1, "\"gone\" left the inbox another way: forgotten");
        let (_, retries) = m.failed("queued", 1, &transport(), 3, t0);
        assert_eq!(
            retries.attempts, 3,
            "the one still queued kept its failures"
        );
        assert!(m.due("never-failed", 1, t0));
        m.succeeded("queued");
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn retry_count_is_at_least_one_chance_and_never_wraps() {
        assert_eq!(chances(0), 1);
        assert_eq!(chances(-5), 1);
        assert_eq!(chances(3), 3);
        assert_eq!(chances(1 << 32), u32::MAX, "2^32 is not 0 chances");
        assert_eq!(chances((1 << 32) + 1), u32::MAX, "2^32 + 1 is not 1 chance");
    }

    fn missing() -> FetchError {
        FetchError::status(404, "http://b/group1/x".into())
    }

    fn transport() -> FetchError {
        let refused = io::Error::from(io::ErrorKind::ConnectionRefused);
        FetchError::transport("http://b", refused)
    }

    fn disk_full() -> FetchError {
        FetchError::Disk(io::Error::from_raw_os_error(libc::ENOSPC))
    }

    /// The decisions for a run of failures of one file.
    fn decisions(failures: &[FetchError], retry_count: u32) -> Vec<Next> {
        let mut r = Retries::default();
        failures.iter().map(|e| r.after(e, retry_count)).collect()
    }

    #[test]
    fn a_refused_announcement_is_dropped_at_once() {
        let refused = FetchError::Refused("bad md5".into());
        assert_eq!(refused.blame(), Blame::Announcement);
        assert_eq!(decisions(&[refused], 3), vec![Next::Drop]);
    }

    #[test]
    fn a_source_that_lacks_the_file_or_serves_other_content_gets_retry_count_chances() {
        let other = || FetchError::OtherContent("size 3 instead of 5".into());
        for e in [missing(), other()] {
            assert_eq!(e.blame(), Blame::Source, "{e}");
        }
        let d = decisions(&[missing(), other(), missing()], 3);
        assert!(
            matches!(d[..2], [Next::RetryIn(_), Next::RetryIn(_)]),
            "{d:?}"
        );
        assert_eq!(d[2], Next::Drop);
        assert_eq!(decisions(&[other()], 1), vec![Next::Drop]);
    }

    #[test]
    fn a_place_taken_here_spends_a_chance_as_a_source_lacking_the_file_does() {
        let taken = || FetchError::Meta(MetaError::PathConflict("files/a/b/x.bin".into()));
        let no_name = || FetchError::Meta(MetaError::NoFreeName("x.bin".into(), 10_000));
        assert_eq!(decisions(&[taken()], 1), vec![Next::Drop]);
        assert_eq!(decisions(&[no_name()], 1), vec![Next::Drop]);
        let d = decisions(&[taken(), transport(), no_name()], 2);
        assert!(
            matches!(d[..2], [Next::RetryIn(_), Next::RetryIn(_)]),
            "{d:?}"
        );
        assert_eq!(d[2], Next::Drop, "{d:?}");
    }

    #[test]
    fn a_fresh_announcement_gets_fresh_chances_but_no_shorter_backoff() {
        let mut m = RetryMap::default();
        let t0 = std::time::Instant::now();
        m.failed("f", 1, &missing(), 3, t0);
        let (_, r) = m.failed("f", 1, &missing(), 3, t0);
        assert_eq!(r.strikes, 2, "two of three chances spent");
        // Announced again (a new `arrived`): the next 404 is its first strike, not the third,
        // and the backoff goes on from the earlier failures (0.4 s, 0.8 s, now 1.6 s).
        let (next, r) = m.failed("f", 2, &missing(), 3, t0);
        assert_eq!(next, Next::RetryIn(Duration::from_millis(1600)));
        assert_eq!((r.attempts, r.strikes), (3, 1));
        // A source that announces the file again before every fetch keeps it fetched, but
        // never sooner than the backoff allows, which grows to its cap as before.
        let (mut now, mut last) = (t0, Duration::ZERO);
        for arrived in 3..30 {
            let (next, _) = m.failed("f", arrived, &missing(), 3, now);
            let Next::RetryIn(delay) = next else {
                panic!("dropped though announced again")
            };
            assert!(delay >= last, "{delay:?} after {last:?}");
            last = delay;
            let early = now + delay - Duration::from_millis(1);
            assert!(
                !m.due("f", arrived + 1, early),
                "announced again: still waits"
            );
            now += delay;
            assert!(m.due("f", arrived + 1, now));
        }
        assert_eq!(last, FETCH_RETRY_DELAY_MAX);
        // Not announced again: its three chances end it.
        m.failed("f", 30, &missing(), 3, now);
        m.failed("f", 30, &missing(), 3, now);
        assert_eq!(m.failed("f", 30, &missing(), 3, now).0, Next::Drop);
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn transport_status_and_local_failures_are_retried_as_long_as_it_takes() {
        let all = [
            transport(),
            FetchError::transport("http://b", io::Error::from(io::ErrorKind::TimedOut)),
            FetchError::status(500, "http://b/x".into()),
            FetchError::status(503, "http://b/x".into()),
            FetchError::status(301, "http://b/x".into()),
            FetchError::status(403, "http://b/x".into()),
            disk_full(),
            FetchError::Meta(MetaError::Full("no space".into())),
        ];
        for e in &all {
            assert_eq!(e.blame(), Blame::Passing, "{e}");
        }
        let many: Vec<FetchError> = (0..50).map(|_| transport()).collect();
        assert!(decisions(&many, 1)
            .iter()
            .all(|d| matches!(d, Next::RetryIn(_))));
    }

    #[test]
    fn only_the_sources_failures_count_against_retry_count() {
        // A full disk here, a source that was down: retried for as long as it takes, and
        // none of it spends the chances of a source that then answers 404.
        let d = decisions(&[disk_full(), disk_full(), transport(), missing()], 3);
        assert!(d.iter().all(|n| matches!(n, Next::RetryIn(_))), "{d:?}");
        let d = decisions(
            &[missing(), disk_full(), missing(), transport(), missing()],
            3,
        );
        assert_eq!(d.last(), Some(&Next::Drop), "{d:?}");
        assert!(
            d[..4].iter().all(|n| matches!(n, Next::RetryIn(_))),
            "{d:?}"
        );
    }

    #[test]
    fn a_fetch_from_several_sources_fails_as_its_most_hopeful_source() {
        let of = |errors: Vec<FetchError>| {
            errors
                .into_iter()
                .fold(None, |before, e| Some(FetchError::then(before, e)))
                .map(|e| e.blame())
        };
        // One source lacks the file, another is down: it may have it when it is back.
        assert_eq!(of(vec![transport(), missing()]), Some(Blame::Passing));
        assert_eq!(of(vec![missing(), transport()]), Some(Blame::Passing));
        assert_eq!(of(vec![disk_full(), missing()]), Some(Blame::Passing));
        // Every source lacks it, or serves other content.
        let other = FetchError::OtherContent("size 1 instead of 2".into());
        assert_eq!(of(vec![missing(), other]), Some(Blame::Source));
    }

    #[test]
    fn the_backoff_doubles_from_400_ms_up_to_a_minute() {
        let d = decisions(&(0..12).map(|_| transport()).collect::<Vec<_>>(), 3);
        let ms = |n: &Next| match n {
            Next::RetryIn(d) => d.as_millis(),
            Next::Drop => panic!("retried"),
        };
        assert_eq!(ms(&d[0]), 400);
        assert_eq!(ms(&d[1]), 800);
        assert_eq!(ms(&d[7]), 51_200);
        assert_eq!(ms(&d[8]), 60_000);
        assert_eq!(ms(&d[11]), 60_000);
    }

    #[test]
    fn failures_read_as_the_log_shows_them() {
        assert_eq!(missing().to_string(), "404 from http://b/group1/x");
        assert_eq!(
            FetchError::status(502, "http://b/x".into()).to_string(),
            "502 from http://b/x"
        );
        assert_eq!(
            FetchError::OtherContent("size 3 instead of 5".into()).to_string(),
            "other content: size 3 instead of 5"
        );
        assert!(transport().to_string().starts_with("http://b: "));
        assert!(disk_full().to_string().starts_with("storing here: "));
    }
}
