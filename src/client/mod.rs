//! The outgoing HTTP client: every request the server makes itself (to peers, to the
//! auth_url server). `peer` holds the connections (hyper over glommio sockets, a per-executor
//! keep-alive pool, `tls` for `https://`); here: URLs parsed (`parse_url`), name resolution off
//! the executor, urlencoded forms. Knows nothing of the rest of the server.

pub mod bulk;
pub mod peer;
pub mod tls;

use std::io;

/// A parsed `http://[user[:password]@]host[:port][/path][?query]` URL (the `http` crate's
/// `Uri` parser: IPv6 literals, a query without a path, userinfo).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Url {
    /// The host to resolve (IPv6 without brackets).
    pub host: String,
    pub port: u16,
    /// The `Host` header: the host as written (IPv6 in brackets) and a non-default port.
    pub host_header: String,
    /// Path and query, `/` when the URL has none.
    pub path: String,
    /// `Authorization: Basic ...` from the URL's userinfo.
    pub basic_auth: Option<String>,
    /// `https://`: TLS to the server (`tls`).
    pub tls: bool,
}

fn invalid(why: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why.to_string())
}

/// Parses an `http://` or `https://` URL (peers, auth_url); other schemes and URLs without a
/// host are refused.
pub(crate) fn parse_url(url: &str) -> io::Result<Url> {
    use base64::Engine;
    let uri: hyper::http::Uri = url.trim().parse().map_err(|_| invalid("not a URL"))?;
    let tls = match uri.scheme_str() {
        Some("http") => false,
        Some("https") => true,
        _ => return Err(invalid("only http:// and https:// URLs are supported")),
    };
    let authority = uri.authority().ok_or_else(|| invalid("URL without host"))?;
    let host_raw = authority.host();
    let host = host_raw.trim_start_matches('[').trim_end_matches(']');
    if host.is_empty() {
        return Err(invalid("URL without host"));
    }
    // `h:` is the default port; a port that is not a number up to 65535 is refused.
    let port_text = authority
        .as_str()
        .rsplit_once(host_raw)
        .map_or("", |(_, rest)| rest.trim_start_matches(':'));
    let port = match port_text {
        "" if tls => 443,
        "" => 80,
        _ => authority.port_u16().ok_or_else(|| invalid("bad port"))?,
    };
    let host_header = match authority.port_u16() {
        Some(p) => format!("{host_raw}:{p}"),
        None => host_raw.to_string(),
    };
    let basic_auth = authority.as_str().rsplit_once('@').map(|(userinfo, _)| {
        let decoded = percent_encoding::percent_decode_str(userinfo).decode_utf8_lossy();
        format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD.encode(decoded.as_bytes())
        )
    });
    let mut path = match uri.path() {
        "" => "/".to_string(),
        p => p.to_string(),
    };
    if let Some(q) = uri.query() {
        path.push('?');
        path.push_str(q);
    }
    Ok(Url {
        host: host.to_string(),
        port,
        host_header,
        path,
        basic_auth,
        tls,
    })
}

/// The first address of `host:port` (DNS on the blocking pool: getaddrinfo blocks).
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<std::net::SocketAddr> {
    let host = host.to_string();
    glommio::executor()
        .spawn_blocking(move || {
            use std::net::ToSocketAddrs;
            (host.as_str(), port)
                .to_socket_addrs()
                .map(|mut a| a.next())
        })
        .await?
        .ok_or_else(|| io::Error::new(io::ErrorKind::NotFound, "host has no address"))
}

/// application/x-www-form-urlencoded (unreserved characters stay literal).
pub fn encode_form(form: &[(String, String)]) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const FORM: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    form.iter()
        .map(|(k, v)| {
            format!(
                "{}={}",
                utf8_percent_encode(k, FORM),
                utf8_percent_encode(v, FORM)
            )
        })
        .collect::<Vec<_>>()
        .join("&")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn url(s: &str) -> (String, u16, String, String) {
        let u = parse_url(s).unwrap();
        (u.host, u.port, u.host_header, u.path)
    }

    #[test]
    fn urls_parse_with_ipv6_queries_and_userinfo() {
        let t = |h: &str, p: u16, hh: &str, path: &str| (h.into(), p, hh.into(), path.into());
        assert_eq!(
            url("http://127.0.0.1:9000/auth"),
            t("127.0.0.1", 9000, "127.0.0.1:9000", "/auth")
        );
        assert_eq!(
            url("http://auth.example"),
            t("auth.example", 80, "auth.example", "/")
        );
        assert_eq!(url("http://[::1]/x"), t("::1", 80, "[::1]", "/x"));
        assert_eq!(
            url("http://[::1]:8080/x?a=1"),
            t("::1", 8080, "[::1]:8080", "/x?a=1")
        );
        assert_eq!(url("http://h:8080?x=1"), t("h", 8080, "h:8080", "/?x=1"));
        let u = parse_url("http://us%40er:p%3Ass@h:81/a").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.host_header.as_str()),
            ("h", 81, "h:81")
        );
        // base64("us@er:p:ss")
        assert_eq!(u.basic_auth.as_deref(), Some("Basic dXNAZXI6cDpzcw=="));
        assert_eq!(parse_url("http://h/").unwrap().basic_auth, None);
        let secure = parse_url("https://h/x").unwrap();
        assert_eq!((secure.port, secure.tls), (443, true));
        assert!(!parse_url("http://h/").unwrap().tls);
        for bad in ["ftp://x", "http://", "x:80", "http://h:99999/", ""] {
            assert!(parse_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn form_encoding() {
        let f = vec![("auth_token".to_string(), "a b&c".to_string())];
        assert_eq!(encode_form(&f), "auth_token=a%20b%26c");
    }
}
