//! Who may hold a connection: a cap per client and a cap in total, checked at accept. The
//! caller names the client (`server` passes `access::client_block`: an IPv6 client's /64).
//!
//! Owns the live connection counts of the whole process (all executors). A flood from one
//! address stops at `connections_per_client_max`; a flood from many stops at the total cap,
//! which stays below the open-files limit so that admins and peers (privileged: exempt from
//! the per-client cap, allowed into the reserve above the total cap) and the files being
//! served always have descriptors left. A leaf module: the caller says who is privileged.

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
    /// Admits a connection from `ip` or says why not. Privileged clients (admins, peers) are
    /// not counted per address and may use the reserve; trusted proxies (`counted == false`)
    /// carry many clients, so only the total applies to them.
    pub fn admit(
        self: &Arc<Self>,
        ip: IpAddr,
        privileged: bool,
        per_client_counted: bool,
        caps: Caps,
    ) -> Result<Ticket, Refusal> {
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

    #[test]
    fn one_address_stops_at_its_cap_others_still_get_in() {
        let a = Arc::new(Admission::default());
        let caps = Caps::new(2, 100, 1000);
        let t1 = a.admit(ip(2), false, true, caps).unwrap();
        let _t2 = a.admit(ip(2), false, true, caps).unwrap();
        assert_eq!(
            a.admit(ip(2), false, true, caps).unwrap_err(),
            Refusal::PerClient
        );
        assert!(a.admit(ip(3), false, true, caps).is_ok());
        assert_eq!(
            a.open(),
            2,
            "refused and dropped tickets give their place back"
        );
        drop(t1);
        assert!(a.admit(ip(2), false, true, caps).is_ok());
    }

    #[test]
    fn the_total_cap_leaves_a_reserve_for_admins_and_peers() {
        let a = Arc::new(Admission::default());
        let caps = Caps::new(10, 3, 1000);
        let held: Vec<_> = (0..3)
            .map(|i| a.admit(ip(10 + i), false, true, caps).unwrap())
            .collect();
        assert_eq!(
            a.admit(ip(20), false, true, caps).unwrap_err(),
            Refusal::Total
        );
        assert!(a.admit(ip(1), true, true, caps).is_ok(), "an admin gets in");
        drop(held);
        assert_eq!(a.clients(), 0, "no entry left behind");
    }

    #[test]
    fn trusted_proxies_count_only_in_the_total() {
        let a = Arc::new(Admission::default());
        let caps = Caps::new(1, 10, 1000);
        let _held: Vec<_> = (0..5)
            .map(|_| a.admit(ip(5), false, false, caps).unwrap())
            .collect();
        assert_eq!(a.clients(), 0);
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
