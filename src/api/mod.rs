//! Route handlers, one file per route family. Shared here: request parameters (query plus
//! urlencoded body, first value wins as in Go's FormValue), the admin gate, and the
//! FileResult builder.

pub mod admin;
pub mod cluster;
pub mod download;
pub mod manage;
pub mod upload;

use crate::config::Config;
use crate::error::ApiError;
use crate::http::{query, Request};
use crate::json::{FileInfo, FileResult};
use std::net::IpAddr;

/// Largest urlencoded body accepted by non-upload routes.
pub const FORM_BYTES_MAX: u64 = 1 << 20;

/// Request parameters: body fields first, then the query string.
#[derive(Debug, Default, Clone)]
pub struct Params(pub Vec<(String, String)>);

impl Params {
    pub fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    /// The value, or "" when absent.
    pub fn str(&self, name: &str) -> &str {
        self.get(name).unwrap_or("")
    }

    pub fn push_query(&mut self, q: &str) {
        self.0.extend(query::parse_urlencoded(q.as_bytes()));
    }
}

/// Query parameters plus an `application/x-www-form-urlencoded` body (bounded).
pub async fn read_params(req: &mut Request<'_>) -> Result<Params, ApiError> {
    let mut p = Params::default();
    let is_form = req
        .head
        .header_str("content-type")
        .map(|ct| {
            ct.to_ascii_lowercase()
                .starts_with("application/x-www-form-urlencoded")
        })
        .unwrap_or(false);
    if is_form {
        let body = req.read_to_end(FORM_BYTES_MAX).await?;
        p.0.extend(query::parse_urlencoded(&body));
    } else if crate::http::multipart::boundary_from_content_type(
        req.head.header("content-type").unwrap_or(b""),
    )
    .is_some()
    {
        read_multipart_fields(req, &mut p).await?;
    }
    p.push_query(req.head.query());
    Ok(p)
}

/// Text fields of a small multipart body (peers and scripts post forms this way too).
async fn read_multipart_fields(req: &mut Request<'_>, p: &mut Params) -> Result<(), ApiError> {
    use crate::http::multipart::{boundary_from_content_type, Event, Limits, Parser};
    let boundary = boundary_from_content_type(req.head.header("content-type").unwrap_or(b""))
        .ok_or_else(|| ApiError::fail(400, "bad multipart boundary"))?;
    let body = req.read_to_end(FORM_BYTES_MAX).await?;
    let mut buf = bytes::BytesMut::from(&body[..]);
    let mut parser = Parser::new(&boundary, Limits::default());
    let mut current: Option<(String, Vec<u8>)> = None;
    loop {
        match parser
            .next_event(&mut buf)
            .map_err(|e| ApiError::fail(400, e.to_string()))?
        {
            Some(Event::PartStart(h)) => current = Some((h.name, Vec::new())),
            Some(Event::Data(d)) => {
                if let Some((_, v)) = current.as_mut() {
                    v.extend_from_slice(&d);
                }
            }
            Some(Event::PartEnd) => {
                if let Some((k, v)) = current.take() {
                    p.0.push((k, String::from_utf8_lossy(&v).into_owned()));
                }
            }
            Some(Event::End) | None => break,
        }
    }
    Ok(())
}

/// The admin gate: Ok for admins, else the refusal produced by `refuse`.
pub fn require_admin(
    cfg: &Config,
    client: IpAddr,
    params: &Params,
    refuse: impl FnOnce(String) -> ApiError,
) -> Result<(), ApiError> {
    if cfg.access.is_admin(client) {
        return Ok(());
    }
    let key = params.get("admin_key").unwrap_or(params.str("key"));
    if !cfg.admin_key.is_empty() && key == cfg.admin_key {
        return Ok(());
    }
    Err(refuse(crate::access::not_permitted_text(client)))
}

/// The client address of a request: X-Real-IP, else X-Forwarded-For, honoured only from a
/// trusted proxy.
pub fn request_client(cfg: &Config, req: &Request<'_>) -> IpAddr {
    let forwarded = req
        .head
        .header_str("x-real-ip")
        .or_else(|| req.head.header_str("x-forwarded-for"));
    cfg.access.client_ip(req.peer.ip(), forwarded)
}

/// Go's url.PathEscape for a single segment.
pub fn path_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-_.~$&+,;=:@".contains(&b);
        if keep {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes what would change a URL path's meaning or break it: `%`, `?`, `#`,
/// spaces, controls and the other ASCII characters not allowed in a path segment. UTF-8
/// beyond ASCII stays as it is (go-fastdfs clients get the names they sent; `ascii_url`
/// encodes it for strict clients).
pub fn escape_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        let keep = !c.is_ascii() || c.is_ascii_alphanumeric() || "-._~!$&'()*+,;=:@".contains(c);
        if keep {
            out.push(c);
        } else {
            out.push_str(&format!("%{:02X}", c as u32));
        }
    }
    out
}

/// A URL path with every non-ASCII byte percent-encoded too (for HTTP clients that accept
/// only ASCII request targets).
pub fn ascii_url(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for &b in path.as_bytes() {
        if b.is_ascii() {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The download path of a record without domain: `/[group/]<path minus files/>/<name>`, each
/// segment escaped (`escape_segment`) so that the URL serves exactly this file.
pub fn download_path(cfg: &Config, info: &FileInfo) -> String {
    let rel = info
        .path
        .strip_prefix("files/")
        .unwrap_or(info.path.trim_start_matches("files"));
    let mut out = String::new();
    if cfg.support_group_manage && !cfg.group.is_empty() {
        out.push('/');
        out.push_str(&cfg.group);
    }
    for seg in rel
        .split('/')
        .filter(|s| !s.is_empty())
        .chain([info.stored_name()])
    {
        out.push('/');
        out.push_str(&escape_segment(seg));
    }
    out
}

/// The upload result of SPEC.md §4.2 for a record.
pub fn file_result(cfg: &Config, info: &FileInfo) -> FileResult {
    let path = download_path(cfg, info);
    let domain = cfg.domain().to_string();
    let mut url = format!("{domain}{path}");
    if cfg.default_download {
        url.push_str(&format!("?name={}&download=1", path_escape(&info.name)));
    }
    FileResult {
        url,
        md5: info.md5.clone(),
        path: path.clone(),
        domain,
        scene: info.scene.clone(),
        size: info.size,
        mtime: info.time_stamp,
        scenes: info.scene.clone(),
        retmsg: String::new(),
        retcode: 0,
        src: path,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returned_paths_serve_exactly_the_file() {
        assert_eq!(escape_segment("a b?c#d%41.txt"), "a%20b%3Fc%23d%2541.txt");
        assert_eq!(escape_segment("中文(1).jpg"), "中文(1).jpg");
        assert_eq!(ascii_url("/g/中"), "/g/%E4%B8%AD");
    }

    #[test]
    fn path_escape_like_go() {
        assert_eq!(path_escape("a b/c.txt"), "a%20b%2Fc.txt");
        assert_eq!(path_escape("中"), "%E4%B8%AD");
    }
}
