//! Guessing a secret that a client sends: `admin_key` (admin routes, `G/reload`) and a
//! scene's Google Authenticator code (uploads, downloads). Without a bound a client tries
//! them as fast as the server answers: a 6-digit code with a window of ±k steps falls in
//! about 10^6 / (2k + 1) guesses, a short `admin_key` soon after.
//!
//! Owns [`Guesses`]: the wrong guesses of one secret per client (an IPv6 client's /64, as
//! every per-client bound: `access::client_block`) and over all clients, each counted in a
//! window that starts at its first wrong guess. A client with `per_client` wrong guesses in
//! its window, or everyone once all clients together made `total` in theirs (many addresses
//! guessing together), is refused without a look at what it sent, the right secret too,
//! until that window ends ([`Locked`]: the seconds left).
//!
//! Admins known by address (privileged) still send `/reload` its key: their guesses are
//! counted per client too, but in a total of their own, so that a flood of wrong guesses
//! from other addresses never locks them out (nor theirs the others), while many admin
//! addresses guessing together still stop at a total. A leaf module: the caller says what
//! the bounds are, whether the client is an admin and whether a guess is right.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Client entries remembered at once (expired ones go first, then all: the total bound still
/// holds while they are forgotten).
const CLIENTS_MAX: usize = 100_000;

/// Which secret a guess was of (in messages and the log).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Secret {
    AdminKey,
    GoogleCode,
}

impl Secret {
    pub fn name(self) -> &'static str {
        match self {
            Secret::AdminKey => "admin_key",
            Secret::GoogleCode => "google code",
        }
    }
}

/// How many wrong guesses, over what span.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    pub per_client: u64,
    pub total: u64,
    pub window: Duration,
}

/// Why a guess was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// Looked at, and wrong (counted).
    Wrong,
    /// Not looked at: too many wrong guesses lately.
    Locked(Locked),
}

/// A refusal without a look: this client, or every client (`everyone`), made its wrong
/// guesses of `secret` for the window; the next may be made after `retry_after`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many wrong guesses of the {} {}: try again in {} s", secret.name(), if *everyone { "from all clients" } else { "from this address" }, retry_after_s(*retry_after))]
pub struct Locked {
    pub secret: Secret,
    pub everyone: bool,
    pub retry_after: Duration,
}

/// Whole seconds to wait, rounded up (a `Retry-After` of 0 would invite a retry too soon).
pub fn retry_after_s(d: Duration) -> u64 {
    d.as_secs() + u64::from(d.subsec_nanos() > 0)
}

/// A window's start and the wrong guesses in it.
type Count = (Instant, u64);

/// The wrong guesses of one secret, per client and in all, over every executor.
#[derive(Debug)]
pub struct Guesses {
    secret: Secret,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    clients: HashMap<IpAddr, Count>,
    /// The wrong guesses of clients that are no admin.
    total: Option<Count>,
    /// The wrong guesses of admins known by address: apart, so that the others' cannot
    /// lock them out.
    admins_total: Option<Count>,
}

/// Who guesses: the client (its block) and whether it is an admin known by address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Guesser {
    block: IpAddr,
    privileged: bool,
}

impl Guesses {
    pub fn new(secret: Secret) -> Guesses {
        Guesses {
            secret,
            counts: Mutex::default(),
        }
    }

    /// Judges a guess from `client` (`privileged`: an admin by address) at `now`: refused
    /// unread while it or everyone of its kind is locked out, else `right()` says. A guess
    /// counts as wrong until `right()` has said otherwise, so that guesses made at once (from
    /// many connections and executors) cannot pass the bound together; the lock is not held while `right()` runs (a Google code with a wide
    /// window is many HMACs), so other executors never wait on it.
    pub fn judge(
        &self,
        client: IpAddr,
        privileged: bool,
        now: Instant,
        bounds: Bounds,
        right: impl FnOnce() -> bool,
    ) -> Result<(), Refusal> {
        let client = Guesser {
            block: crate::access::client_block(client),
            privileged,
        };
        let counted = {
            let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
            if let Some(l) = counts.locked(client, now, bounds, self.secret) {
                return Err(Refusal::Locked(l));
            }
            counts.wrong(client, now, bounds.window)
        };
        if !right() {
            return Err(Refusal::Wrong);
        }
        let mut counts = self.counts.lock().unwrap_or_else(|p| p.into_inner());
        counts.undo(client, counted);
        Ok(())
    }
}

/// The windows a guess was counted in (client's, total's), to take it back from them.
type Counted = (Instant, Instant);

impl Counts {
    /// The total `client` counts in: the admins' or everyone else's.
    fn total_of(&mut self, client: Guesser) -> &mut Option<Count> {
        if client.privileged {
            &mut self.admins_total
        } else {
            &mut self.total
        }
    }

    /// The lock-out `client` is under at `now`, if any: its own, else its kind's total.
    fn locked(
        &self,
        client: Guesser,
        now: Instant,
        bounds: Bounds,
        secret: Secret,
    ) -> Option<Locked> {
        let locked = |c: Option<&Count>, max: u64, everyone| {
            let (since, n) = *c?;
            let left = (since + bounds.window).checked_duration_since(now)?;
            (n >= max && !left.is_zero()).then_some(Locked {
                secret,
                everyone,
                retry_after: left,
            })
        };
        let total = if client.privileged {
            &self.admins_total
        } else {
            &self.total
        };
        locked(self.clients.get(&client.block), bounds.per_client, false)
            .or_else(|| locked(total.as_ref(), bounds.total, true))
    }

    /// Counts a wrong guess from `client`; returns the windows it went into.
    fn wrong(&mut self, client: Guesser, now: Instant, window: Duration) -> Counted {
        let bump = |c: &mut Count| {
            if now.saturating_duration_since(c.0) >= window {
                *c = (now, 0);
            }
            c.1 += 1;
            c.0
        };
        let total = bump(self.total_of(client).get_or_insert((now, 0)));
        let client = client.block;
        if self.clients.len() >= CLIENTS_MAX && !self.clients.contains_key(&client) {
            self.clients
                .retain(|_, (since, _)| now.saturating_duration_since(*since) < window);
            if self.clients.len() >= CLIENTS_MAX {
                self.clients.clear();
            }
        }
        (bump(self.clients.entry(client).or_insert((now, 0))), total)
    }

    /// Takes back a guess counted by [`Counts::wrong`] that proved right (from the windows it
    /// went into, if they have not been started afresh since).
    fn undo(&mut self, client: Guesser, (in_client, in_total): Counted) {
        let take = |c: &mut Count, since: Instant| {
            if c.0 == since {
                c.1 = c.1.saturating_sub(1);
            }
        };
        if let Some(c) = self.clients.get_mut(&client.block) {
            take(c, in_client);
            if c.1 == 0 {
                self.clients.remove(&client.block);
            }
        }
        if let Some(c) = self.total_of(client).as_mut() {
            take(c, in_total);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOUNDS: Bounds = Bounds {
        per_client: 3,
        total: 5,
        window: Duration::from_secs(60),
    };

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn guess(g: &Guesses, who: &str, at: Instant, right: bool) -> Result<(), Refusal> {
        g.judge(ip(who), false, at, BOUNDS, || right)
    }

    fn locked(r: Result<(), Refusal>) -> Locked {
        match r {
            Err(Refusal::Locked(l)) => l,
            other => panic!("not locked out: {other:?}"),
        }
    }

    #[test]
    fn a_client_past_its_wrong_guesses_is_refused_the_right_secret_too_until_its_window_ends() {
        let g = Guesses::new(Secret::AdminKey);
        let t0 = Instant::now();
        for _ in 0..BOUNDS.per_client {
            assert_eq!(guess(&g, "10.0.0.1", t0, false), Err(Refusal::Wrong));
        }
        let l = locked(guess(&g, "10.0.0.1", t0 + Duration::from_secs(20), true));
        assert!(!l.everyone);
        assert_eq!(l.retry_after, Duration::from_secs(40));
        assert_eq!(guess(&g, "10.0.0.2", t0, true), Ok(()), "others unaffected");
        let later = t0 + BOUNDS.window;
        assert_eq!(
            guess(&g, "10.0.0.1", later, true),
            Ok(()),
            "the window ended"
        );
        assert_eq!(guess(&g, "10.0.0.1", later, false), Err(Refusal::Wrong));
        assert_eq!(
            guess(&g, "10.0.0.1", later, true),
            Ok(()),
            "counting from one"
        );
    }

    #[test]
    fn many_addresses_together_stop_at_the_total_for_everyone() {
        let g = Guesses::new(Secret::GoogleCode);
        let t0 = Instant::now();
        for i in 0..BOUNDS.total {
            let who = format!("198.51.100.{i}");
            assert_eq!(guess(&g, &who, t0, false), Err(Refusal::Wrong));
        }
        let l = locked(guess(&g, "203.0.113.1", t0, true));
        assert!(l.everyone);
        assert_eq!(l.secret, Secret::GoogleCode);
        assert!(l.to_string().contains("from all clients"), "{l}");
        assert_eq!(guess(&g, "203.0.113.1", t0 + BOUNDS.window, true), Ok(()));
    }

    #[test]
    fn admins_by_address_are_not_locked_out_by_the_others_total_but_by_their_own_bounds() {
        let g = Guesses::new(Secret::AdminKey);
        let t0 = Instant::now();
        let admin = |who: &str, right: bool| g.judge(ip(who), true, t0, BOUNDS, || right);
        for i in 0..BOUNDS.total {
            let who = format!("198.51.100.{i}");
            assert_eq!(guess(&g, &who, t0, false), Err(Refusal::Wrong));
        }
        assert!(locked(guess(&g, "203.0.113.1", t0, true)).everyone);
        assert_eq!(admin("10.0.0.1", true), Ok(()), "the others' total");
        // An admin address has its own bound...
        for _ in 0..BOUNDS.per_client {
            assert_eq!(admin("10.0.0.1", false), Err(Refusal::Wrong));
        }
        assert!(!locked(admin("10.0.0.1", true)).everyone);
        // ...and admin addresses together a total of their own.
        for i in 0..BOUNDS.total - BOUNDS.per_client {
            assert_eq!(admin(&format!("10.0.1.{i}"), false), Err(Refusal::Wrong));
        }
        assert!(locked(admin("10.0.2.1", true)).everyone);
    }

    #[test]
    fn an_ipv6_client_counts_per_slash_64_and_mapped_ipv4_as_ipv4() {
        let g = Guesses::new(Secret::GoogleCode);
        let now = Instant::now();
        for i in 0..BOUNDS.per_client {
            let _ = guess(&g, &format!("2001:db8:1:2::{:x}", i + 1), now, false);
        }
        locked(guess(&g, "2001:db8:1:2:ffff::9", now, true));
        assert_eq!(guess(&g, "2001:db8:1:3::1", now, true), Ok(()));
        let g = Guesses::new(Secret::GoogleCode);
        for _ in 0..BOUNDS.per_client {
            let _ = guess(&g, "::ffff:10.0.0.1", now, false);
        }
        locked(guess(&g, "10.0.0.1", now, true));
        assert_eq!(guess(&g, "10.0.0.2", now, true), Ok(()));
    }

    #[test]
    fn right_guesses_do_not_count_and_a_guess_counts_while_it_is_judged() {
        let g = Guesses::new(Secret::AdminKey);
        let t0 = Instant::now();
        for _ in 0..10 {
            assert_eq!(guess(&g, "10.0.0.1", t0, true), Ok(()));
        }
        assert!(g.counts.lock().unwrap().clients.is_empty());
        assert_eq!(g.counts.lock().unwrap().total.map(|c| c.1), Some(0));
        // While a guess is being judged it counts: guesses made meanwhile see it.
        let inner = g.judge(ip("10.0.0.1"), false, t0, BOUNDS, || {
            for _ in 1..BOUNDS.per_client {
                let _ = guess(&g, "10.0.0.1", t0, false);
            }
            locked(guess(&g, "10.0.0.1", t0, true));
            false
        });
        assert_eq!(inner, Err(Refusal::Wrong));
    }

    #[test]
    fn retry_after_rounds_up() {
        assert_eq!(retry_after_s(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_s(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_s(Duration::from_millis(2001)), 3);
    }
}
