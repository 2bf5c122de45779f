//! Typed errors of the request path and their one mapping to HTTP: go-fastdfs' bodies (JSON
//! envelope or plain text), with honest status codes where go-fastdfs answered 200
//! (docs/DEFECTS.md #31).

use crate::http::head::HeadError;
use crate::http::params::ParamsError;
use crate::http::{BodyError, Response};
use crate::store::meta::MetaError;
use std::cell::Cell;
use std::time::{Duration, Instant};

/// How often a thread logs that the disk is full while its requests are refused for it.
const FULL_DISK_LOG_EVERY: Duration = Duration::from_secs(10);

thread_local! {
    static FULL_DISK_LOG: LogEvery = const { LogEvery::new(FULL_DISK_LOG_EVERY) };
}

/// A log line of one kind at most once per period: the first event logs, the events within
/// the period after it are counted, and the next line says how many there were.
pub struct LogEvery {
    period: Duration,
    last: Cell<Option<Instant>>,
    quiet: Cell<u64>,
}

impl LogEvery {
    pub const fn new(period: Duration) -> LogEvery {
        LogEvery {
            period,
            last: Cell::new(None),
            quiet: Cell::new(0),
        }
    }

    /// An event at `now`: Some(events not logged since the last line) when this one is to be
    /// logged, None when it only counts.
    pub fn tick(&self, now: Instant) -> Option<u64> {
        match self.last.get() {
            Some(t) if now.saturating_duration_since(t) < self.period => {
                self.quiet.set(self.quiet.get() + 1);
                None
            }
            _ => {
                self.last.set(Some(now));
                Some(self.quiet.replace(0))
            }
        }
    }
}

/// The message of a 507 (the detailed cause goes to the log only).
pub const STORAGE_FULL: &str = "insufficient storage: the server's disk is full, or this client's uploads in flight hold their share of its free space; nothing was stored; retry later";

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// Pretty envelope `{data:null, message, status}` with this HTTP status.
    #[error("{message}")]
    Envelope {
        http: u16,
        status: &'static str,
        message: String,
    },
    /// A plain text body.
    #[error("{body}")]
    Text { http: u16, body: String },
    /// No body at all (401 of downloads, 404 of a missing file, 416).
    #[error("status {0}")]
    Empty(u16),
    #[error("{0}")]
    Head(#[from] HeadError),
    #[error("{0}")]
    Body(#[from] BodyError),
    #[error("{0}")]
    Params(#[from] crate::http::params::ParamsError),
    #[error("{0}")]
    Meta(#[from] MetaError),
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A secret refused unread: too many wrong guesses lately (`guesses`); 429 with
    /// `Retry-After`.
    #[error("{0}")]
    Locked(#[from] crate::guesses::Locked),
    /// The request's body was cut because the server is stopping (`shutdown_grace` was over).
    #[error("the server is shutting down: send the request again")]
    ShuttingDown,
}

/// The status of a request whose body could not be read.
fn body_status(e: &BodyError) -> u16 {
    match e {
        BodyError::Timeout | BodyError::TooSlow(_) | BodyError::Deadline => 408,
        BodyError::TooLarge(_) => 413,
        _ => 400,
    }
}

impl ApiError {
    pub fn fail(http: u16, message: impl Into<String>) -> ApiError {
        ApiError::Envelope {
            http,
            status: "fail",
            message: message.into(),
        }
    }

    /// The answer to a refused secret: `wrong` when it was looked at and wrong, else the
    /// lock-out's 429.
    pub fn from_guess(refusal: crate::guesses::Refusal, wrong: ApiError) -> ApiError {
        match refusal {
            crate::guesses::Refusal::Wrong => wrong,
            crate::guesses::Refusal::Locked(l) => ApiError::Locked(l),
        }
    }

    /// Whether the request failed because the disk (or a quota, or the metadata map) is full:
    /// the client may retry later, elsewhere (507).
    pub fn is_storage_full(&self) -> bool {
        fn io_full(e: &std::io::Error) -> bool {
            e.kind() == std::io::ErrorKind::StorageFull
                || e.kind() == std::io::ErrorKind::QuotaExceeded
                || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
        }
        match self {
            ApiError::Io(e) | ApiError::Meta(MetaError::Io(e)) => io_full(e),
            ApiError::Meta(MetaError::Full(_)) => true,
            ApiError::Meta(MetaError::Lmdb(e)) => matches!(
                e,
                lmdb::Error::MapFull
                    | lmdb::Error::Other(libc::ENOSPC)
                    | lmdb::Error::Other(libc::EDQUOT)
            ),
            _ => false,
        }
    }

    /// The response to this error; while the server is `shutting_down`, a body that ended
    /// early was cut by the shutdown (`server::drain`), not by the client: a 503.
    pub fn answer(self, shutting_down: bool) -> Response {
        match self {
            ApiError::Body(BodyError::Closed)
            | ApiError::Params(ParamsError::Body(BodyError::Closed))
                if shutting_down =>
            {
                ApiError::ShuttingDown.into_response()
            }
            other => other.into_response(),
        }
    }

    pub fn status(&self) -> u16 {
        if self.is_storage_full() {
            return 507;
        }
        match self {
            ApiError::Envelope { http, .. } | ApiError::Text { http, .. } => *http,
            ApiError::Empty(s) => *s,
            ApiError::Head(e) => e.status(),
            ApiError::Body(e) | ApiError::Params(ParamsError::Body(e)) => body_status(e),
            ApiError::Params(ParamsError::Form(_)) => 400,
            ApiError::Meta(MetaError::PathConflict(_)) => 409,
            ApiError::Meta(_) => 500,
            ApiError::Io(_) => 500,
            ApiError::Locked(_) => 429,
            ApiError::ShuttingDown => 503,
        }
    }

    pub fn into_response(self) -> Response {
        let status = self.status();
        let framing = matches!(
            self,
            ApiError::Head(_)
                | ApiError::Body(_)
                | ApiError::Params(ParamsError::Body(_))
                | ApiError::ShuttingDown
        );
        let mut r = match self {
            ApiError::Locked(l) => Response::text(
                status,
                crate::json::pretty(&crate::json::envelope::<()>("fail", &l.to_string(), None)),
            )
            .header(
                "Retry-After",
                crate::guesses::retry_after_s(l.retry_after).to_string(),
            ),
            ApiError::Envelope {
                status: s, message, ..
            } => Response::text(
                status,
                crate::json::pretty(&crate::json::envelope::<()>(s, &message, None)),
            ),
            ApiError::Text { body, .. } => Response::text(status, body),
            ApiError::Empty(_) => Response::new(status),
            other => {
                // 501/505 are what a client asked for and this server does not speak (an
                // unknown transfer coding, HTTP/2 in a head): the client's, not a failure
                // here; any client could fill the error log with them.
                match status {
                    501 | 505 => tracing::debug!(cause = %other, "request refused"),
                    // A body cut by the shutdown: `server::drain` logged it once.
                    503 => {}
                    // A full disk refuses every write until space returns: one line per
                    // period says so, with how many refusals the lines in between would be.
                    507 => {
                        if let Some(more) = FULL_DISK_LOG.with(|l| l.tick(Instant::now())) {
                            tracing::error!(
                                cause = %other,
                                refused_since_last_line = more,
                                "request refused: the disk is full (one line per {}s per thread)",
                                FULL_DISK_LOG_EVERY.as_secs()
                            );
                        }
                    }
                    500.. => tracing::error!(cause = %other, "request failed"),
                    _ => {}
                }
                // The cause (with server paths) is in the log; the client learns what to do.
                let msg = if status == 507 {
                    STORAGE_FULL.to_string()
                } else {
                    other.to_string()
                };
                Response::text(
                    status,
                    crate::json::pretty(&crate::json::envelope::<()>("fail", &msg, None)),
                )
            }
        };
        // A request whose head or body could not be read leaves the stream unusable.
        r.close = framing;
        r
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_line_per_period_counts_the_events_between() {
        let l = LogEvery::new(Duration::from_secs(10));
        let t0 = Instant::now();
        assert_eq!(l.tick(t0), Some(0), "the first event logs");
        for i in 1..=5 {
            assert_eq!(l.tick(t0 + Duration::from_secs(i)), None);
        }
        assert_eq!(
            l.tick(t0 + Duration::from_secs(10)),
            Some(5),
            "then says how many"
        );
        assert_eq!(l.tick(t0 + Duration::from_secs(11)), None);
        assert_eq!(l.tick(t0 + Duration::from_secs(60)), Some(1));
        // A clock read before the last line's (another thread's Instant) counts, never panics.
        assert_eq!(l.tick(t0), None);
    }
}
