//! Progress of long offline jobs (`import`, `check`): a loop over 10^7 files calls
//! [`Progress::tick`] once per item and logs a line when it answers true, at most every
//! [`EVERY`]. The clock is read once per [`CLOCK_STRIDE`] items, so a tick is an increment
//! and a compare.

use std::time::{Duration, Instant};

/// Shortest time between two progress lines.
pub const EVERY: Duration = Duration::from_secs(5);
/// Items between two reads of the clock.
const CLOCK_STRIDE: u64 = 32;

#[derive(Debug)]
pub struct Progress {
    every: Duration,
    done: u64,
    next_clock: u64,
    last: Instant,
}

impl Default for Progress {
    fn default() -> Self {
        Progress::new()
    }
}

impl Progress {
    /// A job starting now; its first line comes after [`EVERY`].
    pub fn new() -> Self {
        Progress::with_interval(EVERY)
    }

    pub fn with_interval(every: Duration) -> Self {
        Progress {
            every,
            done: 0,
            next_clock: CLOCK_STRIDE,
            last: Instant::now(),
        }
    }

    /// Counts one item; true when a progress line is due (the caller logs it with its counts).
    pub fn tick(&mut self) -> bool {
        self.done += 1;
        if self.done < self.next_clock {
            return false;
        }
        self.next_clock = self.done + CLOCK_STRIDE;
        let now = Instant::now();
        if now.duration_since(self.last) < self.every {
            return false;
        }
        self.last = now;
        true
    }

    /// Items counted so far.
    pub fn done(&self) -> u64 {
        self.done
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_once_per_stride_when_the_interval_has_passed() {
        let mut p = Progress::with_interval(Duration::ZERO);
        let due = (0..CLOCK_STRIDE * 3).filter(|_| p.tick()).count();
        assert_eq!(due, 3);
        assert_eq!(p.done(), CLOCK_STRIDE * 3);
    }

    #[test]
    fn never_due_before_the_interval() {
        let mut p = Progress::with_interval(Duration::from_secs(3600));
        assert!((0..100_000).all(|_| !p.tick()));
    }

    #[test]
    fn due_again_only_after_the_interval() {
        let interval = Duration::from_millis(50);
        let mut p = Progress::with_interval(interval);
        std::thread::sleep(interval + Duration::from_millis(10));
        assert!(
            (0..CLOCK_STRIDE).any(|_| p.tick()),
            "due once the interval passed"
        );
        let start = Instant::now();
        let again = (0..CLOCK_STRIDE * 100).filter(|_| p.tick()).count();
        assert!(
            again == 0 || start.elapsed() >= interval,
            "{again} lines too early"
        );
    }
}
