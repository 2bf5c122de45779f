//! Who may hold a connection: a cap per client and a cap in total, checked at accept, by the
//! executors (`server`) and the TLS front (`tls`, its relays) alike: [`Client::of`] is the one
//! rule of who a connection's client is for the caps (an IPv6 client's /64, an admin or peer
//! privileged, a trusted proxy counted only in the total).
//!
//! Owns the live connection counts of the whole process (all executors). A flood from one
//! address stops at `connections_per_client_max`; a flood from many stops at the total cap,
//! which stays below the open-files limit so that admins and peers (privileged: exempt from
//! the per-client cap, allowed into the reserve above the total cap) and the files being
//! served always have descriptors left. Depends on `access` only (its rules say who is an admin).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

/// Descriptors kept free under the open-files limit whatever the configuration says (files
/// being served, LMDB, logs, outgoing peer connections).
pub const DESCRIPTORS_RESERVED_MIN: u64 = 256;

/// Why a connection was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// This address already holds its share.
    PerClient,
    /// The server holds as many connections as it may.
    Total,
}

/// The caps in force (from the configuration and the process's open-files limit).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Caps {
    pub per_client: u64,
    /// Connections anyone may open.
    pub total: u64,
    /// Connections admins and peers may open (total plus the reserve).
    pub privileged: u64,
}

impl Caps {
    /// `total` 0 means three quarters of `nofile`; the privileged cap is `nofile` less a
    /// minimum reserve for files, never below `total`.
    pub fn new(per_client: u64, total: u64, nofile: u64) -> Caps {
        let hard = nofile.saturating_sub(DESCRIPTORS_RESERVED_MIN).max(1);
        let total = if total == 0 { nofile / 4 * 3 } else { total };
        let total = total.clamp(1, hard);
        Caps {
            per_client: per_client.max(1),
            total,
            privileged: hard.max(total),
        }
    }
}

/// A connection's client as the caps see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Client {
    /// What the per-client cap counts (`access::client_block`: an IPv6 client's /64).
    pub block: IpAddr,
    /// An admin or a peer: exempt from the per-client cap, allowed into the reserve.
    pub privileged: bool,
    /// False for a trusted proxy, which carries many clients: only the total applies.
    pub per_client_counted: bool,
}

impl Client {
    /// The client of a connection from `ip` under `rules`.
    pub fn of(rules: &crate::access::Rules, ip: IpAddr) -> Client {
        Client {
            block: crate::access::client_block(ip),
            privileged: rules.is_admin(ip),
            per_client_counted: !rules.is_trusted_proxy(ip),
        }
    }
}

impl Caps {
    /// These caps with the total and the privileged cap no higher than `total` and
    /// `privileged` (the TLS front's own bounds on its relay threads).
    pub fn at_most(self, total: u64, privileged: u64) -> Caps {
        Caps {
            per_client: self.per_client,
            total: self.total.min(total),
            privileged: self.privileged.min(privileged).max(self.total.min(total)),
        }
    }
}

#[derive(Debug, Default)]
pub struct Admission {
    per_client: Mutex<HashMap<IpAddr, u64>>,
    total: AtomicUsize,
    /// Highest total since the last `take_peak`.
    peak: AtomicUsize,
}

/// One admitted connection; dropping it gives its place back.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    ip: Option<IpAddr>,
}

impl Admission {
    /// Admits a connection from `client` or says why not. Privileged clients (admins, peers)
    /// are not counted per address and may use the reserve; trusted proxies carry many
    /// clients, so only the total applies to them.
    pub fn admit(self: &Arc<Self>, client: Client, caps: Caps) -> Result<Ticket, Refusal> {
        let Client {
            block: ip,
            privileged,
            per_client_counted,
        } = client;
        let cap = if privileged {
            caps.privileged
        } else {
            caps.total
        };
        let before = self.total.fetch_add(1, Ordering::SeqCst);
        if before as u64 >= cap {
            self.total.fetch_sub(1, Ordering::SeqCst);
            return Err(Refusal::Total);
        }
        self.peak.fetch_max(before + 1, Ordering::Relaxed);
        let mut ticket = Ticket {
            admission: self.clone(),
            ip: None,
        };
        if privileged || !per_client_counted {
            return Ok(ticket);
        }
        let mut map = self.per_client.lock().expect("admission lock");
        let held = map.entry(ip).or_insert(0);
        if *held >= caps.per_client {
            drop(map);
            return Err(Refusal::PerClient); // the ticket's drop gives the total back
        }
        *held += 1;
        ticket.ip = Some(ip);
        Ok(ticket)
    }

    /// Connections open now.
    pub fn open(&self) -> usize {
        self.total.load(Ordering::SeqCst)
    }

    /// The highest count since the last call, and resets it to the current count.
    pub fn take_peak(&self) -> usize {
        self.peak.swap(self.open(), Ordering::Relaxed)
    }

    /// Addresses holding connections now (a flood's entries are gone once it ends).
    pub fn clients(&self) -> usize {
        self.per_client.lock().expect("admission lock").len()
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if let Some(ip) = self.ip {
            let mut map = self.admission.per_client.lock().expect("admission lock");
            if let Some(held) = map.get_mut(&ip) {
                *held -= 1;
                if *held == 0 {
                    map.remove(&ip);
                }
            }
            if map.capacity() > 64 && map.len() < map.capacity() / 8 {
                map.shrink_to_fit();
            }
        }
        let before = self.admission.total.fetch_sub(1, Ordering::SeqCst);
        assert!(before > 0, "a ticket gives back only its own place");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([127, 0, 0, last])
    }

    /// A client of the caps: `ip`, privileged or not, counted per client or not.
    fn c(ip: IpAddr, privileged: bool, per_client_counted: bool) -> Client {
        Client {
            block: ip,
            privileged,
            per_client_counted,
        }
    }

    #[test]
    fn one_address_stops_at_its_cap_others_still_get_in() {
        let a = Arc::new(Admission::default());
        let caps = Caps::new(2, 100, 1000);
        let t1 = a.admit(c(ip(2), false, true), caps).unwrap();
        let _t2 = a.admit(c(ip(2), false, true), caps).unwrap();
        assert_eq!(
            a.admit(c(ip(2), false, true), caps).unwrap_err(),
            Refusal::PerClient
        );
        assert!(a.admit(c(ip(3), false, true), caps).is_ok());
        assert_eq!(
            a.open(),
            2,
            "refused and dropped tickets give their place back"
        );
        drop(t1);
        assert!(a.admit(c(ip(2), false, true), caps).is_ok());
    }

    #[test]
    fn the_total_cap_leaves_a_reserve_for_admins_and_peers() {
        let a = Arc::new(Admission::default());
        let caps = Caps::new(10, 3, 1000);
        let held: Vec<_> = (0..3)
            .map(|i| a.admit(c(ip(10 + i), false, true), caps).unwrap())
            .collect();
        assert_eq!(
            a.admit(c(ip(20), false, true), caps).unwrap_err(),
            Refusal::Total
        );
        assert!(
            a.admit(c(ip(1), true, true), caps).is_ok(),
            "an admin gets in"
        );
        drop(held);
        assert_eq!(a.clients(), 0, "no entry left behind");
    }

    #[test]
    fn trusted_proxies_count_only_in_the_total() {
        let a = Arc::new(Admission::default());
        let caps = Caps::new(1, 10, 1000);
        let _held: Vec<_> = (0..5)
            .map(|_| a.admit(c(ip(5), false, false), caps).unwrap())
            .collect();
        assert_eq!(a.clients(), 0);
    }

    #[test]
    fn admins_and_peers_are_privileged_proxies_count_in_the_total_ipv6_per_slash_64() {
        let rules = crate::access::Rules::new(
            &["10.0.0.0/8".into()],
            &["192.0.2.7".into()],
            &["http://198.51.100.4:8080".into()],
            &[],
        );
        let of = |s: &str| Client::of(&rules, s.parse().unwrap());
        assert!(of("127.0.0.1").privileged && of("10.1.2.3").privileged);
        assert!(of("198.51.100.4").privileged, "a peer");
        assert!(!of("203.0.113.9").privileged && of("203.0.113.9").per_client_counted);
        assert!(!of("192.0.2.7").per_client_counted, "a trusted proxy");
        assert_eq!(of("2001:db8::9").block, of("2001:db8::1").block);
    }

    #[test]
    fn the_tls_fronts_bounds_lower_the_caps_and_keep_a_reserve() {
        let c = Caps::new(8, 0, 1_000_000).at_most(100, 120);
        assert_eq!((c.per_client, c.total, c.privileged), (8, 100, 120));
        let c = Caps::new(8, 50, 1_000_000).at_most(100, 120);
        assert_eq!((c.total, c.privileged), (50, 120));
    }

    #[test]
    fn caps_stay_under_the_open_files_limit() {
        let c = Caps::new(256, 0, 20_000);
        assert_eq!(c.total, 15_000);
        assert_eq!(c.privileged, 20_000 - DESCRIPTORS_RESERVED_MIN);
        let c = Caps::new(256, 1_000_000, 20_000);
        assert!(c.total < 20_000 && c.privileged >= c.total);
    }
}
