//! Who is calling: the client address (socket address, or X-Real-IP / X-Forwarded-For only
//! from a configured trusted proxy) and the admin check done safely: exact addresses or CIDR
//! blocks, never string prefixes.
//!
//! Owns `Rules`: `admin_ips`, `trusted_proxies`, the peers' and this node's own addresses,
//! parsed once when the configuration is loaded (a leaf module: it knows nothing of `Config`).

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

/// The client of a request that a proxy not in `trusted_proxies` forwarded (it says so with
/// `X-Real-IP` or `X-Forwarded-For`): someone behind that proxy, unknown, and never the proxy's
/// own address (nginx on the same host is loopback, an admin: go-fastdfs made everyone admin
/// so, docs/DEFECTS.md #8). Named by RFC 6666's discard prefix with the proxy's address in its
/// low bits, which no admin rule matches and the per-client bounds still tell apart.
pub fn behind_untrusted_proxy(proxy: IpAddr) -> IpAddr {
    let low: u128 = match canonical(proxy) {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6) & u128::from(u64::MAX),
    };
    IpAddr::V6(std::net::Ipv6Addr::from((0x0100u128 << 112) | low))
}

/// Whether a field may make a request's client another than its socket's address: a proxy's
/// (`X-Real-IP`, `X-Forwarded-For`) or a browser's (`Origin`, `Sec-Fetch-*`).
fn names_someone_else(name: &str) -> bool {
    let n = name.as_bytes();
    n.len() >= 6
        && (n.eq_ignore_ascii_case(b"x-real-ip")
            || n.eq_ignore_ascii_case(b"x-forwarded-for")
            || n.eq_ignore_ascii_case(b"origin")
            || n.get(..10)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"sec-fetch-")))
}

/// Whether a request names a client behind a proxy (`X-Real-IP`, `X-Forwarded-For`).
pub fn forwarded<'a>(mut fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> bool {
    fields.any(|(name, _)| {
        name.eq_ignore_ascii_case("x-real-ip") || name.eq_ignore_ascii_case("x-forwarded-for")
    })
}

/// Whether a browser sent this request for a page of another site (Fetch Metadata,
/// `Sec-Fetch-Site: cross-site` or `same-site`; without it, an `Origin` whose host and port
/// are not the request's `Host`, or `null`). Requests of this server's own pages
/// (`same-origin`), typed addresses and bookmarks (`none`), and clients that are no browser
/// (no such header) are not.
pub fn from_another_site<'a>(fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> bool {
    let (mut site, mut origin, mut host) = (None, None, None);
    for (name, value) in fields {
        if name.eq_ignore_ascii_case("sec-fetch-site") {
            site = Some(value);
        } else if name.eq_ignore_ascii_case("origin") {
            origin = Some(value);
        } else if name.eq_ignore_ascii_case("host") {
            host = Some(value);
        }
    }
    if let Some(site) = site {
        let site = crate::codec::trim_ows(site);
        return !(site.eq_ignore_ascii_case(b"same-origin") || site.eq_ignore_ascii_case(b"none"));
    }
    let Some(origin) = origin.map(crate::codec::trim_ows) else {
        return false;
    };
    // `<scheme>://<host>[:<port>]`; anything else (`null`) is an opaque origin: elsewhere.
    let Some(colon) = origin.windows(3).position(|w| w == b"://") else {
        return true;
    };
    let scheme = &origin[..colon];
    let authority = without_default_port(scheme, &origin[colon + 3..]);
    let host = without_default_port(scheme, host.map(crate::codec::trim_ows).unwrap_or_default());
    !authority.eq_ignore_ascii_case(host)
}

/// The host of an authority (`name[:port]`, `[v6]:port`), lower case, without a final dot;
/// an IPv6 literal without its brackets.
fn host_name(authority: &[u8]) -> String {
    let authority = String::from_utf8_lossy(crate::codec::trim_ows(authority)).to_ascii_lowercase();
    if let Some(rest) = authority.strip_prefix('[') {
        return rest.split(']').next().unwrap_or("").to_string();
    }
    let name = match authority.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => authority.as_str(),
    };
    name.trim_end_matches('.').to_string()
}

/// `authority` without the port that is its `scheme`'s default (`:80` for http, `:443` for
/// https), as browsers write an origin.
fn without_default_port<'a>(scheme: &[u8], authority: &'a [u8]) -> &'a [u8] {
    let default: &[u8] = if scheme.eq_ignore_ascii_case(b"https") {
        b":443"
    } else {
        b":80"
    };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// The host part of a peer base URL (`http://10.0.0.15:8080/x` -> 10.0.0.15), if an IP.
pub fn peer_ip(url: &str) -> Option<IpAddr> {
    let full = if url.contains("://") {
        url.to_string()
    } else {
        format!("http://{url}")
    };
    let uri: hyper::http::Uri = full.trim().parse().ok()?;
    let host = uri.host()?;
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// The access rules of one configuration, parsed once at load.
#[derive(Debug, Clone, Default)]
pub struct Rules {
    admin: Vec<AddrRule>,
    /// `admin_ips` holds `0.0.0.0`: any private IPv4 address is an admin (go-fastdfs' meaning).
    admin_private: bool,
    proxies: Vec<AddrRule>,
    /// This node's own addresses (from `host` and the outgoing interface) and the peers'.
    known: Vec<IpAddr>,
    /// Host names this node is reached by (`host`, `download_domain`, peers, lower case;
    /// `.<s3_domain>` matches its subdomains), besides IP literals and `localhost`.
    names: Vec<String>,
}

impl Rules {
    /// Entries that do not parse are left out (`config::validate` refuses them first).
    pub fn new(
        admin_ips: &[String],
        trusted_proxies: &[String],
        peers: &[String],
        own: &[IpAddr],
    ) -> Rules {
        let parse = |list: &[String]| list.iter().filter_map(|s| AddrRule::parse(s)).collect();
        let known = own
            .iter()
            .copied()
            .filter(|ip| !ip.is_unspecified())
            .chain(peers.iter().filter_map(|p| peer_ip(p)))
            .map(canonical)
            .collect();
        Rules {
            admin: parse(admin_ips),
            admin_private: admin_ips.iter().any(|e| e.trim() == "0.0.0.0"),
            proxies: parse(trusted_proxies),
            known,
            names: Vec::new(),
        }
    }

    /// These rules knowing the host names this node is reached by: each of `urls` (a URL or
    /// a bare host) names one; an entry starting with `.` names every subdomain of the rest.
    pub fn with_names<'a>(mut self, urls: impl IntoIterator<Item = &'a str>) -> Rules {
        for url in urls {
            let url = url.trim();
            let (suffix, url) = match url.strip_prefix('.') {
                Some(rest) => (".", rest),
                None => ("", url),
            };
            let rest = url.split_once("://").map_or(url, |(_, r)| r);
            let authority = rest.split(['/', '?']).next().unwrap_or("");
            let authority = authority.rsplit_once('@').map_or(authority, |(_, a)| a);
            let name = host_name(authority.as_bytes());
            if !name.is_empty() {
                self.names.push(format!("{suffix}{name}"));
            }
        }
        self
    }

    /// Whether a Host header value names this node: an IP literal, `localhost`, or one of its
    /// names ([`Rules::with_names`]).
    fn names_this_node(&self, host: &[u8]) -> bool {
        let name = host_name(host);
        if name.parse::<IpAddr>().is_ok() || name == "localhost" || name.ends_with(".localhost") {
            return true;
        }
        self.names.iter().any(|n| match n.strip_prefix('.') {
            Some(domain) => name
                .strip_suffix(domain)
                .is_some_and(|sub| sub.ends_with('.')),
            None => *n == name,
        })
    }

    /// Whether `socket` is a configured trusted proxy (whose forwarded headers count).
    pub fn is_trusted_proxy(&self, socket: IpAddr) -> bool {
        self.proxies.iter().any(|r| r.matches(socket))
    }

    /// The client address of a request from `socket` whose head holds `fields` (name, value):
    /// the socket's own, or, from a trusted proxy only, the client it names (see
    /// [`Rules::client_ip`]). One pass over the fields; nothing is allocated for a request
    /// without forwarding headers.
    pub fn client_of_fields<'a>(
        &self,
        socket: IpAddr,
        fields: impl Iterator<Item = (&'a str, &'a [u8])>,
    ) -> IpAddr {
        let mut real_ip: Vec<&[u8]> = Vec::new();
        let mut forwarded_for: Vec<&[u8]> = Vec::new();
        for (name, value) in fields {
            if name.eq_ignore_ascii_case("x-real-ip") {
                real_ip.push(value);
            } else if name.eq_ignore_ascii_case("x-forwarded-for") {
                forwarded_for.push(value);
            }
        }
        self.client_ip(socket, &real_ip, &forwarded_for)
    }

    /// The client whose rights a request has: [`Rules::client_of_fields`], except that a
    /// request a browser sent for a page of another site ([`from_another_site`]) never has
    /// an admin's rights. Admins are known by address, and a browser on an admin's host (or
    /// in `admin_ips`) sends the requests of every page it shows from that address: without
    /// this, any web page the operator opened could delete files or read the admin routes'
    /// answers (CORS lets it). Such a request is the unknown client [`behind_untrusted_proxy`]
    /// of that address.
    pub fn requester<'a>(
        &self,
        socket: IpAddr,
        fields: impl Iterator<Item = (&'a str, &'a [u8])> + Clone,
    ) -> IpAddr {
        if !fields.clone().any(|(name, _)| names_someone_else(name)) {
            // Most requests: no proxy, no browser; the socket's address.
            return canonical(socket);
        }
        let client = self.client_of_fields(socket, fields.clone());
        if self.is_admin(client) && (from_another_site(fields.clone()) || self.rebound(fields)) {
            return behind_untrusted_proxy(client);
        }
        client
    }

    /// Whether a browser sent this request to a host name that is not this node's (DNS
    /// rebinding: a page of `evil.example` whose name now resolves to this node is, to the
    /// browser, the same origin as its own page, and sends no sign of another site).
    /// Browsers are known by Fetch Metadata (`Sec-Fetch-*`) or an `Origin`; other clients
    /// name hosts as they like.
    fn rebound<'a>(&self, fields: impl Iterator<Item = (&'a str, &'a [u8])>) -> bool {
        let mut browser = false;
        let mut host: &[u8] = b"";
        for (name, value) in fields {
            let fetch_metadata = name
                .as_bytes()
                .get(..b"sec-fetch-".len())
                .is_some_and(|p| p.eq_ignore_ascii_case(b"sec-fetch-"));
            if fetch_metadata || name.eq_ignore_ascii_case("origin") {
                browser = true;
            } else if name.eq_ignore_ascii_case("host") {
                host = value;
            }
        }
        browser && !self.names_this_node(host)
    }

    /// The client address: the socket's, or, from a trusted proxy only, the one its
    /// forwarding headers name. `real_ip` holds the request's `X-Real-IP` fields and
    /// `forwarded_for` its `X-Forwarded-For` fields, in order.
    ///
    /// A proxy sets `X-Real-IP` (nginx's `proxy_set_header` replaces the client's) but appends
    /// to `X-Forwarded-For` (nginx's `$proxy_add_x_forwarded_for`; HAProxy and others add a
    /// field of their own after the client's): only the entries on the right were written by
    /// trusted proxies, everything to their left is the client's to choose. So the client is
    /// the single `X-Real-IP` when there is one, else the rightmost `X-Forwarded-For` entry
    /// over all fields that is not itself a trusted proxy (the leftmost when all are). A
    /// value that does not parse as an address, or two `X-Real-IP` fields, leave the client
    /// unknown ([`behind_untrusted_proxy`]), never the proxy's own address (an admin when
    /// nginx runs on the same host).
    pub fn client_ip(&self, socket: IpAddr, real_ip: &[&[u8]], forwarded_for: &[&[u8]]) -> IpAddr {
        let blank = |v: &&[u8]| v.iter().all(|b| b.is_ascii_whitespace());
        let real_ip: Vec<&[u8]> = real_ip.iter().copied().filter(|v| !blank(v)).collect();
        let entries: Vec<&[u8]> = forwarded_for
            .iter()
            .flat_map(|v| v.split(|&b| b == b','))
            .map(crate::codec::trim_ows)
            .filter(|e| !e.is_empty())
            .collect();
        if real_ip.is_empty() && entries.is_empty() {
            return canonical(socket);
        }
        let unknown = behind_untrusted_proxy(socket);
        if !self.is_trusted_proxy(socket) {
            return unknown;
        }
        let parse = |v: &[u8]| {
            std::str::from_utf8(crate::codec::trim_ows(v))
                .ok()
                .and_then(|s| s.parse::<IpAddr>().ok())
                .map(canonical)
        };
        let forwarded_for = || {
            for entry in entries.iter().rev() {
                match parse(entry) {
                    None => return unknown,
                    Some(ip) if self.is_trusted_proxy(ip) => continue,
                    Some(ip) => return ip,
                }
            }
            entries.first().and_then(|e| parse(e)).unwrap_or(unknown)
        };
        match real_ip.as_slice() {
            [] => forwarded_for(),
            [one] => match parse(one) {
                // A proxy that only appends to X-Forwarded-For (HAProxy's `option forwardfor`)
                // passes the client's own X-Real-IP on: where the two disagree, X-Real-IP names
                // no admin.
                Some(ip) if !entries.is_empty() && self.is_admin(ip) && forwarded_for() != ip => {
                    unknown
                }
                Some(ip) => ip,
                None => unknown,
            },
            _ => unknown,
        }
    }

    /// Admins: loopback 127.0.0.1 / ::1, this node's own addresses, an exact peer address, or
    /// an `admin_ips` entry (exact, CIDR, or `0.0.0.0` = any private IPv4).
    pub fn is_admin(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        if ip == IpAddr::from([127, 0, 0, 1]) || ip == IpAddr::V6(std::net::Ipv6Addr::LOCALHOST) {
            return true;
        }
        if self.known.contains(&ip) || self.admin.iter().any(|r| r.matches(ip)) {
            return true;
        }
        self.admin_private
            && match ip {
                IpAddr::V4(v4) => v4.is_private() || v4.is_loopback() || v4.is_link_local(),
                IpAddr::V6(_) => false,
            }
    }
}

/// Text of go-fastdfs' refusal of a non-admin.
pub fn not_permitted_text(ip: IpAddr) -> String {
    format!(
        "Can only be called by the cluster ip or 127.0.0.1 or admin_ips(cfg.json),current ip:{ip}"
    )
}

/// The client every per-client bound counts under (wrong guesses of a secret, connections,
/// unfinished tus uploads): an IPv6 client's /64 (one host or LAN commonly holds a whole
/// /64, so counting each address would give it 2^64 budgets), an IPv4 client's own address
/// (IPv4-mapped IPv6 counts as IPv4).
pub fn client_block(ip: IpAddr) -> IpAddr {
    match canonical(ip) {
        IpAddr::V6(v6) => IpAddr::V6(std::net::Ipv6Addr::from(
            u128::from(v6) & !((1u128 << 64) - 1),
        )),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_forwarded_by_an_untrusted_proxy_is_nobody_the_proxy_included() {
        let r = rules(&["0.0.0.0"], &[], &["10.9.9.9"]);
        let local = ip("127.0.0.1");
        assert_eq!(
            forwarded(&r, local, None),
            local,
            "not forwarded: the socket's address"
        );
        for value in ["203.0.113.5", "127.0.0.1", "garbage"] {
            let c = forwarded(&r, local, Some(value));
            assert!(!r.is_admin(c), "{value} -> {c}");
            assert_eq!(c.to_string(), "100::7f00:1");
        }
        assert_ne!(
            forwarded(&r, ip("10.0.0.8"), Some("x")),
            forwarded(&r, ip("10.0.0.9"), Some("x"))
        );
        // A trusted proxy names its client.
        assert_eq!(
            forwarded(&r, ip("10.9.9.9"), Some("203.0.113.5")),
            ip("203.0.113.5")
        );
    }

    /// The client of a request from `socket` with one `X-Forwarded-For` field `value`.
    fn forwarded(r: &Rules, socket: IpAddr, value: Option<&str>) -> IpAddr {
        let fields: Vec<&[u8]> = value.map(str::as_bytes).into_iter().collect();
        r.client_ip(socket, &[], &fields)
    }

    /// The client of a request from `socket` with these header fields.
    fn client(r: &Rules, socket: &str, fields: &[(&str, &str)]) -> IpAddr {
        r.client_of_fields(ip(socket), fields.iter().map(|(n, v)| (*n, v.as_bytes())))
    }

    #[test]
    fn a_request_without_proxy_or_browser_fields_is_its_sockets_canonical_address() {
        let r = rules(&["10.0.0.0/8"], &[], &["127.0.0.1"]);
        let mapped = ip("::ffff:10.0.0.9");
        let plain = [
            ("Host", "10.0.0.5"),
            ("User-Agent", "curl"),
            ("Originator", "x"),
        ];
        let fields = || plain.iter().map(|(n, v)| (*n, v.as_bytes()));
        assert_eq!(r.requester(mapped, fields()), ip("10.0.0.9"));
        assert!(!names_someone_else("Originator"));
        assert!(names_someone_else("SEC-FETCH-MODE"));
        assert!(names_someone_else("x-forwarded-for"));
        assert!(!super::forwarded(fields()));
        assert!(super::forwarded(
            [("X-Real-IP", &b"1.2.3.4"[..])].into_iter()
        ));
    }

    #[test]
    fn a_page_of_another_site_never_has_an_admins_rights() {
        let r = rules(&["10.0.0.0/8"], &[], &[]);
        let host = ("Host", "10.0.0.5:8080");
        let rights = |socket: &str, extra: &[(&str, &str)]| {
            let fields: Vec<(&str, &str)> =
                std::iter::once(host).chain(extra.iter().copied()).collect();
            r.requester(ip(socket), fields.iter().map(|(n, v)| (*n, v.as_bytes())))
        };
        let admin = ip("10.0.0.9");
        let demoted = behind_untrusted_proxy(admin);
        assert!(!r.is_admin(demoted));
        // Not a browser, the server's own pages, an address typed in: the admin.
        assert_eq!(rights("10.0.0.9", &[]), admin);
        assert_eq!(
            rights("10.0.0.9", &[("Sec-Fetch-Site", "same-origin")]),
            admin
        );
        assert_eq!(rights("10.0.0.9", &[("Sec-Fetch-Site", "none")]), admin);
        assert_eq!(
            rights("10.0.0.9", &[("Origin", "http://10.0.0.5:8080")]),
            admin
        );
        // Another site's page, by Fetch Metadata or (older browsers) by Origin.
        for h in [
            ("Sec-Fetch-Site", "cross-site"),
            ("Sec-Fetch-Site", "same-site"),
            ("Origin", "http://evil.example"),
            ("Origin", "http://10.0.0.5:8081"),
            ("Origin", "null"),
        ] {
            assert_eq!(rights("10.0.0.9", &[h]), demoted, "{h:?}");
        }
        // Fetch Metadata wins over Origin (a same-origin POST carries its Origin too).
        let same = [
            ("Sec-Fetch-Site", "same-origin"),
            ("Origin", "http://elsewhere"),
        ];
        assert_eq!(rights("10.0.0.9", &same), admin);
        // Default ports are left out of an origin.
        let r80 = |h: &str, o: &str| {
            from_another_site([("Host", h.as_bytes()), ("Origin", o.as_bytes())].into_iter())
        };
        assert!(!r80("files.example:80", "http://files.example"));
        assert!(!r80("files.example", "http://FILES.example"));
        assert!(!r80("files.example:443", "https://files.example"));
        assert!(r80("files.example:443", "http://files.example"));
        // A non-admin stays who it is.
        assert_eq!(
            rights("192.0.2.1", &[("Origin", "http://evil.example")]),
            ip("192.0.2.1")
        );
    }

    #[test]
    fn a_browser_sent_to_a_name_that_is_not_this_nodes_has_no_admin_rights() {
        let r = rules(&[], &[], &[]).with_names([
            "http://files.example:8080",
            "https://cdn.example/g",
            "s3.example",
            ".s3.example",
            "http://user:pw@peer.example:8080",
            "",
        ]);
        let local = ip("127.0.0.1");
        let rights = |host: &str, browser: bool| {
            let mut fields = vec![("Host", host)];
            if browser {
                fields.push(("Sec-Fetch-Site", "same-origin"));
            }
            r.requester(local, fields.iter().map(|(n, v)| (*n, v.as_bytes())))
        };
        for host in [
            "127.0.0.1:8080",
            "[::1]:8080",
            "localhost:8080",
            "app.localhost",
            "files.example:8080",
            "FILES.example.",
            "cdn.example",
            "s3.example",
            "bucket.s3.example:9000",
            "peer.example:8080",
        ] {
            assert_eq!(rights(host, true), local, "{host}");
        }
        for host in [
            "rebind.example:8080",
            "files.example.evil",
            "xs3.example",
            "",
            "example",
        ] {
            assert_eq!(rights(host, true), behind_untrusted_proxy(local), "{host}");
            assert_eq!(rights(host, false), local, "not a browser: {host}");
        }
    }

    #[test]
    fn the_client_is_what_the_trusted_proxies_wrote_not_what_the_client_prepended() {
        let r = rules(&[], &[], &["127.0.0.1", "10.0.0.0/8"]);
        let nobody = behind_untrusted_proxy(ip("127.0.0.1"));
        // nginx's $proxy_add_x_forwarded_for: the client's own field, then its address.
        let xff = |v: &str| client(&r, "127.0.0.1", &[("X-Forwarded-For", v)]);
        assert_eq!(xff("127.0.0.1, 203.0.113.5"), ip("203.0.113.5"));
        assert_eq!(xff("203.0.113.5"), ip("203.0.113.5"));
        // Proxies in a chain are skipped from the right; all proxies: the leftmost.
        assert_eq!(xff("127.0.0.1, 203.0.113.5, 10.1.2.3"), ip("203.0.113.5"));
        assert_eq!(xff("10.1.2.3, 10.4.5.6"), ip("10.1.2.3"));
        // Garbage where an address goes leaves the client unknown, never the proxy.
        assert_eq!(xff("203.0.113.5, garbage"), nobody);
        assert_eq!(xff("garbage"), nobody);
        // HAProxy adds a field of its own after the client's.
        let two = [
            ("X-Forwarded-For", "127.0.0.1"),
            ("x-forwarded-for", "203.0.113.5"),
        ];
        assert_eq!(client(&r, "127.0.0.1", &two), ip("203.0.113.5"));
        // X-Real-IP, set (replaced) by the proxy, comes first; two of them are ambiguous.
        let real = [("X-Real-IP", "203.0.113.7"), ("X-Forwarded-For", "8.8.8.8")];
        assert_eq!(client(&r, "127.0.0.1", &real), ip("203.0.113.7"));
        // A client's own X-Real-IP passed on by a proxy that only appends X-Forwarded-For
        // names no admin; agreeing with it, or naming a non-admin, it holds.
        let passed_on = [
            ("X-Real-IP", "127.0.0.1"),
            ("X-Forwarded-For", "203.0.113.5"),
        ];
        assert_eq!(client(&r, "127.0.0.1", &passed_on), nobody);
        let agreeing = [("X-Real-IP", "127.0.0.1"), ("X-Forwarded-For", "127.0.0.1")];
        assert_eq!(client(&r, "127.0.0.1", &agreeing), ip("127.0.0.1"));
        let plain = [
            ("X-Real-IP", "203.0.113.7"),
            ("X-Forwarded-For", "127.0.0.1"),
        ];
        assert_eq!(client(&r, "127.0.0.1", &plain), ip("203.0.113.7"));
        let two_real = [("X-Real-IP", "127.0.0.1"), ("X-Real-IP", "203.0.113.7")];
        assert_eq!(client(&r, "127.0.0.1", &two_real), nobody);
        assert_eq!(client(&r, "127.0.0.1", &[("X-Real-IP", "nope")]), nobody);
        // No forwarding header: the socket.
        assert_eq!(client(&r, "127.0.0.1", &[("Host", "x")]), ip("127.0.0.1"));
        // From an untrusted address any of them makes the request nobody's.
        assert_eq!(
            client(&r, "192.0.2.1", &two),
            behind_untrusted_proxy(ip("192.0.2.1"))
        );
    }

    fn rules(admin_ips: &[&str], peers: &[&str], trusted: &[&str]) -> Rules {
        let v = |l: &[&str]| l.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        Rules::new(&v(admin_ips), &v(trusted), &v(peers), &[ip("127.0.0.99")])
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn loopback_and_this_host_are_admin_other_loopbacks_are_not() {
        let c = rules(&[], &[], &[]);
        assert!(c.is_admin(ip("127.0.0.1")));
        assert!(c.is_admin(ip("127.0.0.99")), "this node's own address");
        assert!(!c.is_admin(ip("127.0.0.77")));
    }

    #[test]
    fn peer_match_is_exact_not_prefix() {
        let c = rules(&[], &["http://10.0.0.15:8080"], &[]);
        assert!(c.is_admin(ip("10.0.0.15")));
        assert!(!c.is_admin(ip("10.0.0.1")));
    }

    #[test]
    fn admin_ips_exact_and_cidr() {
        let c = rules(&["192.168.1.5", "10.1.0.0/16"], &[], &[]);
        assert!(c.is_admin(ip("192.168.1.5")));
        assert!(!c.is_admin(ip("192.168.1.50")));
        assert!(c.is_admin(ip("10.1.200.3")));
        assert!(!c.is_admin(ip("10.2.0.1")));
        assert!(c.is_admin(ip("::ffff:10.1.0.9")));
    }

    #[test]
    fn zero_address_means_private_ipv4_only() {
        let c = rules(&["0.0.0.0"], &[], &[]);
        assert!(c.is_admin(ip("192.168.0.9")));
        assert!(!c.is_admin(ip("8.8.8.8")));
        assert!(!c.is_admin(ip("2001:db8::1")));
    }

    #[test]
    fn forwarded_headers_only_from_trusted_proxies() {
        let c = rules(&[], &[], &["127.0.0.1"]);
        assert_eq!(
            forwarded(&c, ip("127.0.0.1"), Some("8.8.8.8, 127.0.0.1")),
            ip("8.8.8.8")
        );
        // From anyone else the header is not believed, and the request is nobody's.
        assert_eq!(
            forwarded(&c, ip("127.0.0.5"), Some("127.0.0.1")),
            behind_untrusted_proxy(ip("127.0.0.5"))
        );
        let none = rules(&[], &[], &[]);
        assert_eq!(
            forwarded(&none, ip("127.0.0.5"), Some("127.0.0.1")),
            behind_untrusted_proxy(ip("127.0.0.5"))
        );
    }

    #[test]
    fn peer_ip_parsing() {
        assert_eq!(peer_ip("http://127.0.0.30:8080"), Some(ip("127.0.0.30")));
        assert_eq!(peer_ip("http://[::1]:8080/x"), Some(ip("::1")));
        assert_eq!(
            peer_ip("http://u:p@127.0.0.30:8080"),
            Some(ip("127.0.0.30"))
        );
        assert_eq!(peer_ip("http://node.example:8080"), None);
    }
}
