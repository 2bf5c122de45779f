//! Who is calling: the client address (socket address, or X-Real-IP / X-Forwarded-For only
//! from a configured trusted proxy) and the admin check of SPEC.md §9.1 done safely: exact
//! addresses or CIDR blocks, never string prefixes (§15 items 7, 8, 9, 35).

use crate::config::Config;
use std::net::IpAddr;

/// One `admin_ips` / `trusted_proxies` entry: an exact address or a CIDR block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AddrRule {
    Exact(IpAddr),
    Cidr(IpAddr, u8),
}

impl AddrRule {
    pub fn parse(s: &str) -> Option<AddrRule> {
        let s = s.trim();
        match s.split_once('/') {
            None => s.parse().ok().map(AddrRule::Exact),
            Some((ip, bits)) => {
                let ip: IpAddr = ip.parse().ok()?;
                let bits: u8 = bits.parse().ok()?;
                let max = if ip.is_ipv4() { 32 } else { 128 };
                (bits <= max).then_some(AddrRule::Cidr(ip, bits))
            }
        }
    }

    pub fn matches(&self, addr: IpAddr) -> bool {
        let addr = canonical(addr);
        match *self {
            AddrRule::Exact(ip) => canonical(ip) == addr,
            AddrRule::Cidr(net, bits) => match (canonical(net), addr) {
                (IpAddr::V4(n), IpAddr::V4(a)) => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u32::MAX << (32 - bits)
                    };
                    u32::from(n) & mask == u32::from(a) & mask
                }
                (IpAddr::V6(n), IpAddr::V6(a)) => {
                    let mask = if bits == 0 {
                        0
                    } else {
                        u128::MAX << (128 - bits)
                    };
                    u128::from(n) & mask == u128::from(a) & mask
                }
                _ => false,
            },
        }
    }
}

/// IPv4-mapped IPv6 addresses compare as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// The host part of a peer base URL (`http://10.0.0.15:8080/x` -> 10.0.0.15), if an IP.
pub fn peer_ip(url: &str) -> Option<IpAddr> {
    let rest = url.split_once("://").map(|(_, r)| r).unwrap_or(url);
    let authority = rest.split('/').next()?;
    let host = if let Some(v6) = authority.strip_prefix('[') {
        v6.split(']').next()?
    } else {
        authority
            .rsplit_once(':')
            .map(|(h, _)| h)
            .unwrap_or(authority)
    };
    host.parse().ok()
}

/// The client address used for access decisions. `forwarded` is the X-Real-IP value or the
/// first X-Forwarded-For entry, honoured only when `socket` is a trusted proxy.
pub fn client_ip(config: &Config, socket: IpAddr, forwarded: Option<&str>) -> IpAddr {
    if !is_trusted_proxy(config, socket) {
        return canonical(socket);
    }
    forwarded
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse::<IpAddr>().ok())
        .map(canonical)
        .unwrap_or(canonical(socket))
}

/// Whether `socket` is a configured trusted proxy (whose forwarded headers count).
pub fn is_trusted_proxy(config: &Config, socket: IpAddr) -> bool {
    config
        .trusted_proxies
        .iter()
        .filter_map(|s| AddrRule::parse(s))
        .any(|r| r.matches(socket))
}

/// The client address of a request: X-Real-IP, else X-Forwarded-For, honoured only from a
/// trusted proxy (see `client_ip`).
pub fn request_client(config: &Config, req: &crate::http::Request<'_>) -> IpAddr {
    let forwarded = req
        .head
        .header_str("x-real-ip")
        .or_else(|| req.head.header_str("x-forwarded-for"));
    client_ip(config, req.peer.ip(), forwarded)
}

/// SPEC.md §9.1 without its holes: loopback 127.0.0.1, this node's own IP, an exact peer
/// address, or an `admin_ips` entry (exact, CIDR, or `0.0.0.0` = any private IPv4).
pub fn is_admin(config: &Config, ip: IpAddr) -> bool {
    let ip = canonical(ip);
    if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) {
        return true;
    }
    if let Ok(own) = crate::config::local_ip().parse::<IpAddr>() {
        if canonical(own) == ip && !own.is_unspecified() {
            return true;
        }
    }
    if config
        .peers
        .iter()
        .filter_map(|p| peer_ip(p))
        .any(|p| canonical(p) == ip)
    {
        return true;
    }
    config.admin_ips.iter().any(|entry| {
        if entry.trim() == "0.0.0.0" {
            return match ip {
                IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
                IpAddr::V6(_) => false,
            };
        }
        AddrRule::parse(entry).is_some_and(|r| r.matches(ip))
    })
}

/// Text of go-fastdfs' refusal (SPEC.md §6.4).
pub fn not_permitted_text(ip: IpAddr) -> String {
    format!(
        "Can only be called by the cluster ip or 127.0.0.1 or admin_ips(cfg.json),current ip:{ip}"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(admin_ips: &[&str], peers: &[&str], trusted: &[&str]) -> Config {
        let text = serde_json::json!({
            "admin_ips": admin_ips, "peers": peers, "trusted_proxies": trusted,
            "host": "http://127.0.0.99:1"
        })
        .to_string();
        crate::config::parse(std::path::Path::new("cfg.json"), &text)
            .unwrap()
            .0
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_is_admin_other_loopbacks_are_not() {
        let c = cfg(&[], &[], &[]);
        assert!(is_admin(&c, ip("127.0.0.1")));
        assert!(!is_admin(&c, ip("127.0.0.77")));
    }

    #[test]
    fn peer_match_is_exact_not_prefix() {
        let c = cfg(&[], &["http://10.0.0.15:8080"], &[]);
        assert!(is_admin(&c, ip("10.0.0.15")));
        assert!(!is_admin(&c, ip("10.0.0.1")));
    }

    #[test]
    fn admin_ips_exact_and_cidr() {
        let c = cfg(&["192.168.1.5", "10.1.0.0/16"], &[], &[]);
        assert!(is_admin(&c, ip("192.168.1.5")));
        assert!(!is_admin(&c, ip("192.168.1.50")));
        assert!(is_admin(&c, ip("10.1.200.3")));
        assert!(!is_admin(&c, ip("10.2.0.1")));
        assert!(is_admin(&c, ip("::ffff:10.1.0.9")));
    }

    #[test]
    fn zero_address_means_private_ipv4_only() {
        let c = cfg(&["0.0.0.0"], &[], &[]);
        assert!(is_admin(&c, ip("192.168.0.9")));
        assert!(!is_admin(&c, ip("8.8.8.8")));
        assert!(!is_admin(&c, ip("2001:db8::1")));
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let c = cfg(&[], &[], &["127.0.0.1"]);
        assert_eq!(
            client_ip(&c, ip("127.0.0.1"), Some("8.8.8.8, 127.0.0.1")),
            ip("8.8.8.8")
        );
        assert_eq!(
            client_ip(&c, ip("127.0.0.5"), Some("127.0.0.1")),
            ip("127.0.0.5")
        );
        let none = cfg(&[], &[], &[]);
        assert_eq!(
            client_ip(&none, ip("127.0.0.5"), Some("127.0.0.1")),
            ip("127.0.0.5")
        );
    }

    #[test]
    fn peer_ip_parsing() {
        assert_eq!(peer_ip("http://127.0.0.30:8080"), Some(ip("127.0.0.30")));
        assert_eq!(peer_ip("http://[::1]:8080/x"), Some(ip("::1")));
        assert_eq!(peer_ip("http://node.example:8080"), None);
    }
}
