//! `auth_url`: an external server decides whether a request may upload, delete or (with
//! `enable_download_auth`) download (docs/PROTOCOL.md §2). The request's `Auth-Token` header is
//! required; the auth server gets a POST with the request's headers (minus hop-by-hop ones) and,
//! unlike go-fastdfs (docs/DEFECTS.md #18), the request's form fields (`auth_token` included). It passes
//! iff the trimmed body is `ok`, or a JSON envelope whose `data` is `"ok"`. A pass is cached
//! only when the auth server sends `Cache-Control: max-age=N` (at most 5 minutes), and only
//! for the same question: the token with the same method, path and form fields (a pass for
//! an upload to one scene is not one for another scene, nor for a delete).

use crate::http::Request;
use crate::worker::Worker;
use std::time::{Duration, Instant};

/// Deadline of one call to the auth server.
const AUTH_TIMEOUT: Duration = Duration::from_secs(10);
/// Largest auth-server answer read.
const AUTH_BODY_BYTES_MAX: usize = 64 * 1024;
/// Longest time a pass is cached.
const CACHE_TTL_MAX: Duration = Duration::from_secs(300);
/// Cached tokens per executor (the cache is emptied when full).
const CACHE_ENTRIES_MAX: usize = 10_000;

/// Request headers never forwarded to the auth server.
const SKIPPED_HEADERS: &[&str] = &[
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "proxy-connection",
];

/// The `Auth-Token` header, if present and non-empty.
pub fn token(req: &Request<'_>) -> Option<String> {
    req.head
        .header_str("auth-token")
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
}

/// Asks the auth server about this request (its `Auth-Token` header); true when it allows it.
pub async fn allowed(w: &Worker, req: &Request<'_>, fields: &[(String, String)]) -> bool {
    match token(req) {
        Some(token) => allowed_token(w, req, token, fields).await,
        None => false,
    }
}

/// Asks the auth server about `token` (sent as the form field `auth_token`, beside `fields`
/// and the request's headers); true when it allows it.
pub async fn allowed_token(
    w: &Worker,
    req: &Request<'_>,
    token: String,
    fields: &[(String, String)],
) -> bool {
    let cfg = w.config();
    let key = cache_key(req, &token, fields);
    if let Some(until) = w.auth_cache.borrow().0.get(&key) {
        if *until > Instant::now() {
            return true;
        }
    }
    let headers: Vec<(String, String)> = req
        .head
        .headers()
        .filter(|(n, _)| !SKIPPED_HEADERS.contains(&n.to_ascii_lowercase().as_str()))
        .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v).into_owned()))
        .collect();
    let mut form: Vec<(String, String)> = fields
        .iter()
        .filter(|(k, _)| k != "auth_token")
        .cloned()
        .collect();
    form.push(("auth_token".into(), token.clone()));
    let answer = w
        .sync
        .pool
        .post_form_url(
            &cfg.auth_url,
            &headers,
            &form,
            AUTH_TIMEOUT,
            AUTH_BODY_BYTES_MAX,
        )
        .await;
    let resp = match answer {
        Ok(r) => r,
        Err(e) => {
            tracing::warn!(cause = %e, auth_url = %cfg.auth_url, "auth server unreachable: request refused");
            return false;
        }
    };
    let pass = passes(&resp.body);
    if pass {
        if let Some(ttl) = resp.header("cache-control").and_then(max_age) {
            let mut cache = w.auth_cache.borrow_mut();
            if cache.0.len() >= CACHE_ENTRIES_MAX {
                cache.0.clear();
            }
            cache.0.insert(key, Instant::now() + ttl.min(CACHE_TTL_MAX));
        }
    }
    pass
}

/// What a cached pass answers: the md5 of the token, the request's method and path and its
/// form fields (in order, `auth_token` left out: the token is first), each length-prefixed so
/// no two questions share a key.
fn cache_key(req: &Request<'_>, token: &str, fields: &[(String, String)]) -> String {
    use md5::Digest;
    let mut h = md5::Md5::new();
    let mut part = |s: &str| {
        h.update((s.len() as u64).to_le_bytes());
        h.update(s.as_bytes());
    };
    part(token);
    part(req.head.method());
    part(req.head.path());
    for (k, v) in fields.iter().filter(|(k, _)| k != "auth_token") {
        part(k);
        part(v);
    }
    crate::store::meta::hex(&h.finalize())
}

/// go-fastdfs' rule for the auth server's answer.
pub fn passes(body: &[u8]) -> bool {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    if text.starts_with('{') && text.ends_with('}') {
        return serde_json::from_str::<serde_json::Value>(text)
            .map(|v| v["data"] == "ok")
            .unwrap_or(false);
    }
    text == "ok"
}

fn max_age(cache_control: &str) -> Option<Duration> {
    let lower = cache_control.to_ascii_lowercase();
    if lower.contains("no-store") || lower.contains("no-cache") || lower.contains("private=") {
        return None;
    }
    lower
        .split(',')
        .filter_map(|d| d.trim().strip_prefix("max-age="))
        .find_map(|n| n.trim().parse::<u64>().ok())
        .filter(|&n| n > 0)
        .map(Duration::from_secs)
}

/// go-fastdfs' upload answer to a failed auth_url check (status left empty, as it does).
pub fn fail() -> crate::error::ApiError {
    crate::error::ApiError::Envelope {
        http: 401,
        status: "",
        message: "auth fail".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answer_rules() {
        assert!(passes(b" ok\n"));
        assert!(passes(br#"{"data":"ok","status":"ok"}"#));
        assert!(!passes(br#"{"data":"no"}"#));
        assert!(!passes(b"okay"));
        assert!(!passes(b""));
    }

    #[test]
    fn caching_only_when_allowed() {
        assert_eq!(max_age("max-age=60"), Some(Duration::from_secs(60)));
        assert_eq!(max_age("public, max-age=10"), Some(Duration::from_secs(10)));
        assert_eq!(max_age("no-store, max-age=60"), None);
        assert_eq!(max_age("max-age=0"), None);
        assert_eq!(max_age("public"), None);
    }
}
