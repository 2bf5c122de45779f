//! A small HTTP/1.1 client on glommio for calls the server makes itself (auth_url today):
//! one request per connection (`Connection: close`), plain http only, every step under one
//! deadline, response bodies bounded. Responses are parsed with httparse; bodies may be
//! Content-Length, chunked (our decoder) or delimited by close.

use crate::http::chunked;
use bytes::BytesMut;
use futures_lite::{AsyncReadExt, AsyncWriteExt};
use std::io;
use std::time::{Duration, Instant};

/// Largest response head accepted.
const HEAD_BYTES_MAX: usize = 16 * 1024;

pub struct ClientResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl ClientResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

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

fn left(deadline: Instant) -> io::Result<Duration> {
    let d = deadline.saturating_duration_since(Instant::now());
    if d.is_zero() {
        Err(io::Error::new(io::ErrorKind::TimedOut, "request timed out"))
    } else {
        Ok(d)
    }
}

/// POSTs an urlencoded form; `headers` are sent as given (the caller filters them).
pub async fn post_form(
    url: &str,
    headers: &[(String, String)],
    form: &[(String, String)],
    timeout: Duration,
    body_max: usize,
) -> io::Result<ClientResponse> {
    let deadline = Instant::now() + timeout;
    let (host, port, path) = split_url(url)?;
    let addr = resolve(&host, port).await?;
    let mut stream = glommio::net::TcpStream::connect_timeout(addr, left(deadline)?).await?;
    let body = encode_form(form);
    let mut req = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: Go-FastDFS\r\nConnection: close\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        if n.contains(['\r', '\n', ':']) || v.contains(['\r', '\n']) {
            continue;
        }
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(&body);
    stream.set_write_timeout(Some(left(deadline)?))?;
    stream.write_all(req.as_bytes()).await?;
    read_response(&mut stream, deadline, body_max).await
}

async fn read_response(
    stream: &mut glommio::net::TcpStream,
    deadline: Instant,
    body_max: usize,
) -> io::Result<ClientResponse> {
    let mut buf = BytesMut::new();
    let mut chunk = vec![0u8; 16 * 1024];
    let bad = |m: &str| io::Error::new(io::ErrorKind::InvalidData, m.to_string());
    let (status, headers, head_len) = loop {
        let mut hs = [httparse::EMPTY_HEADER; 64];
        let mut resp = httparse::Response::new(&mut hs);
        match resp
            .parse(&buf)
            .map_err(|_| bad("malformed response head"))?
        {
            httparse::Status::Complete(n) => {
                let headers = resp
                    .headers
                    .iter()
                    .map(|h| {
                        (
                            h.name.to_string(),
                            String::from_utf8_lossy(h.value).into_owned(),
                        )
                    })
                    .collect::<Vec<_>>();
                break (resp.code.unwrap_or(0), headers, n);
            }
            httparse::Status::Partial => {
                if buf.len() > HEAD_BYTES_MAX {
                    return Err(bad("response head too large"));
                }
                stream.set_read_timeout(Some(left(deadline)?))?;
                let n = stream.read(&mut chunk).await?;
                if n == 0 {
                    return Err(bad("connection closed before the response head"));
                }
                buf.extend_from_slice(&chunk[..n]);
            }
        }
    };
    let _ = buf.split_to(head_len);
    let mut r = ClientResponse {
        status,
        headers,
        body: Vec::new(),
    };
    let length = r
        .header("content-length")
        .and_then(|v| v.trim().parse::<usize>().ok());
    let is_chunked = r
        .header("transfer-encoding")
        .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"));
    let mut decoder = is_chunked.then(|| chunked::Decoder::new(chunked::Limits::default()));
    loop {
        if let Some(dec) = decoder.as_mut() {
            loop {
                match dec.decode(&mut buf).map_err(|e| bad(&e.to_string()))? {
                    Some(chunked::Chunk::Data(d)) => r.body.extend_from_slice(&d),
                    Some(chunked::Chunk::End) => return Ok(r),
                    None => break,
                }
            }
        } else {
            r.body.extend_from_slice(&buf.split());
            if length.is_some_and(|n| r.body.len() >= n) {
                r.body.truncate(length.unwrap_or(0));
                return Ok(r);
            }
        }
        if r.body.len() > body_max {
            return Err(bad("response body too large"));
        }
        stream.set_read_timeout(Some(left(deadline)?))?;
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return match (length, decoder.is_some()) {
                (None, false) => Ok(r),
                _ => Err(bad("connection closed inside the response body")),
            };
        }
        buf.extend_from_slice(&chunk[..n]);
    }
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
