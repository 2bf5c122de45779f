//! The outgoing HTTP client: every request the server makes itself (to peers, to the
//! auth_url server). `peer` holds the connections (hyper over glommio sockets, a per-executor
//! keep-alive pool); here: `http://` URLs split into host, port and path, name resolution off
//! the executor, urlencoded forms. Knows nothing of the rest of the server.

pub mod peer;

use std::io;

/// `http://host[:port][/path]` split into (host, port, path).
pub(crate) fn split_url(url: &str) -> io::Result<(String, u16, String)> {
    let rest = url.strip_prefix("http://").ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            "only http:// URLs are supported",
        )
    })?;
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (host, port) = match authority.rsplit_once(':') {
        Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => {
            let port = p
                .parse()
                .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "bad port"))?;
            (h.trim_matches(|c| c == '[' || c == ']').to_string(), port)
        }
        _ => (authority.to_string(), 80),
    };
    if host.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "URL without host",
        ));
    }
    Ok((host, port, path.to_string()))
}

/// The first address of `host:port` (DNS on the blocking pool: getaddrinfo blocks).
pub(crate) async fn resolve(host: &str, port: u16) -> io::Result<std::net::SocketAddr> {
    let lookup = format!("{host}:{port}");
    glommio::executor()
        .spawn_blocking(move || {
            use std::net::ToSocketAddrs;
            lookup.to_socket_addrs().map(|mut a| a.next())
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

    #[test]
    fn urls_split() {
        assert_eq!(
            split_url("http://127.0.0.1:9000/auth").unwrap(),
            ("127.0.0.1".into(), 9000, "/auth".into())
        );
        assert_eq!(
            split_url("http://auth.example").unwrap(),
            ("auth.example".into(), 80, "/".into())
        );
        assert!(split_url("https://x/").is_err());
    }

    #[test]
    fn form_encoding() {
        let f = vec![("auth_token".to_string(), "a b&c".to_string())];
        assert_eq!(encode_form(&f), "auth_token=a%20b%26c");
    }
}
