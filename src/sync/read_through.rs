//! Read-through: a GET for a file this node lacks is answered from the first peer that has it
//! (asked with `check_file_exist` by path key), streamed with the client's Range honoured (not
//! the whole file first), while the file is queued to be fetched and stored here. 404 when no
//! peer has it, or when the file was deleted here after the peer's upload of it (a peer that
//! missed the delete does not bring it back). A read-through request is marked, so a peer
//! never reads through again.

use crate::error::ApiError;
use crate::http::{Body, Request, Response};
use crate::worker::Worker;

/// A peer that has a file this node lacks, with its record (`ask_peers`).
pub type PeerCopy = Option<(String, crate::json::FileInfo)>;

/// Time allowed to ask one peer whether it has a file.
const PEER_ASK_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// Largest answer to a question about one file (a record's JSON) that is read.
const ASK_ANSWER_BYTES_MAX: usize = 1 << 20;
/// Longest wait for the next chunk of a file streamed from a peer.
const PEER_STALL_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// A file this node lacks: the first peer that has it serves it through this node.
/// `asked`: the peer found while checking the token, if that happened already.
pub async fn read_through(
    w: &Worker,
    req: &Request<'_>,
    rel: &str,
    asked: PeerCopy,
) -> Result<Response, ApiError> {
    let method = req.head.method();
    if w.config().peers.is_empty() || !(method == "GET" || method == "HEAD") {
        return Ok(Response::new(404));
    }
    let found = match asked {
        Some(copy) => Some(copy),
        None => ask_peers(w, req, rel).await,
    };
    let Some((peer, info)) = found else {
        return Ok(Response::new(404));
    };
    super::copy_from_peer(w, &peer, info).await;
    match stream_from_peer(w, req, &peer).await {
        Ok(r) => Ok(r),
        Err(e) => {
            tracing::warn!(peer, cause = %e, "read-through from peer failed");
            Ok(Response::new(404))
        }
    }
}

/// The first peer that has the file at `rel` (by its path key), with its record. Never asks
/// for a request that is itself a peer's read-through.
pub async fn ask_peers(
    w: &Worker,
    req: &Request<'_>,
    rel: &str,
) -> Option<(String, crate::json::FileInfo)> {
    let cfg = w.config();
    if req.head.header(super::READ_THROUGH_HEADER).is_some() {
        return None;
    }
    let key = crate::store::meta::path_key(rel);
    for peer in &cfg.peers {
        let form = [
            ("md5".to_string(), key.clone()),
            ("path".to_string(), rel.to_string()),
        ];
        let path = format!("{}/check_file_exist", cfg.prefix());
        let asked = match w
            .sync
            .pool
            .post_form(peer, &path, &form, PEER_ASK_TIMEOUT)
            .await
        {
            // A read-only question: when the pooled connection failed under it (the peer
            // closed it as the request went out, which the pool cannot take back once
            // written), ask once more on a connection of its own. Not after a timeout.
            Err(e) if e.kind() != std::io::ErrorKind::TimedOut => {
                let url = format!("{peer}{path}");
                w.sync
                    .pool
                    .post_form_url(&url, &[], &form, PEER_ASK_TIMEOUT, ASK_ANSWER_BYTES_MAX)
                    .await
            }
            r => r,
        };
        if let Some(info) = asked
            .ok()
            .and_then(|r| serde_json::from_slice::<crate::json::FileInfo>(&r.body).ok())
            .filter(|i| !i.md5.is_empty())
        {
            // Deleted here after that upload: the peer missed or refused the delete
            // (go-fastdfs cannot delete merged files), and a deleted file is not served again.
            if deleted_here(w, &info) {
                return None;
            }
            return Some((peer.clone(), info));
        }
    }
    None
}

/// Whether a tombstone here is not older than the peer's record of the file.
fn deleted_here(w: &Worker, info: &crate::json::FileInfo) -> bool {
    w.meta()
        .tombstone(&info.md5)
        .ok()
        .flatten()
        .is_some_and(|t| t >= info.time_stamp)
}

/// The peer's body as a stream of chunks; a peer that sends nothing for
/// `PEER_STALL_TIMEOUT` ends it with a timeout error.
fn peer_chunks(
    body: hyper::body::Incoming,
) -> impl futures_lite::Stream<Item = std::io::Result<bytes::Bytes>> {
    use http_body_util::BodyExt;
    futures_lite::stream::unfold(Some(body), |state| async move {
        let mut body = state?;
        loop {
            let next =
                glommio::timer::timeout(PEER_STALL_TIMEOUT, async { Ok(body.frame().await) }).await;
            match next {
                Ok(Some(Ok(frame))) => {
                    if let Ok(data) = frame.into_data() {
                        return Some((Ok(data), Some(body)));
                    }
                }
                Ok(Some(Err(e))) => return Some((Err(std::io::Error::other(e)), None)),
                Ok(None) => return None,
                Err(_) => {
                    let e = std::io::Error::new(std::io::ErrorKind::TimedOut, "peer stalled");
                    return Some((Err(e), None));
                }
            }
        }
    })
}

/// Forwards the request (target, Range, If-Range) to `peer` and streams its answer back.
async fn stream_from_peer(w: &Worker, req: &Request<'_>, peer: &str) -> std::io::Result<Response> {
    use http_body_util::Full;
    let target = crate::http::query::ascii_url(req.head.origin_form());
    let mut out = crate::client::peer::request(req.head.method(), peer, &target)?
        .header(super::READ_THROUGH_HEADER, "1");
    for name in ["range", "if-range"] {
        if let Some(v) = req.head.header_str(name) {
            out = out.header(name, v);
        }
    }
    let out = out
        .body(Full::new(bytes::Bytes::new()))
        .map_err(std::io::Error::other)?;
    let deadline = std::time::Instant::now() + PEER_ASK_TIMEOUT * 2;
    let resp = w.sync.pool.send(peer, out, deadline).await?;
    let status = resp.status().as_u16();
    if !matches!(status, 200 | 206 | 304 | 416) {
        return Err(std::io::Error::other(format!("peer answered {status}")));
    }
    let mut r = Response::new(status);
    const FORWARDED: [&str; 7] = [
        "Content-Type",
        "Content-Range",
        "Accept-Ranges",
        "Content-Disposition",
        "Last-Modified",
        "ETag",
        "Cache-Control",
    ];
    for name in FORWARDED {
        if let Some(v) = resp.headers().get(name).and_then(|v| v.to_str().ok()) {
            r.set(name, v.to_string());
        }
    }
    crate::http::content::guard_uploaded_content(&mut r);
    let len = resp
        .headers()
        .get("content-length")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .unwrap_or(0);
    if req.head.method() == "HEAD" || status == 304 {
        r.body = Body::Stream(crate::http::response::StreamBody {
            len,
            chunks: std::cell::RefCell::new(None),
        });
        return Ok(r);
    }
    let chunks = peer_chunks(resp.into_body());
    r.body = Body::Stream(crate::http::response::StreamBody {
        len,
        chunks: std::cell::RefCell::new(Some(Box::pin(chunks))),
    });
    Ok(r)
}
