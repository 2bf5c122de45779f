//! The peer-facing routes of docs/PROTOCOL.md §3: `syncfile_info` (a peer
//! announces a file), `receive_md5s` (a peer asks for files), `folder_markers` (a peer's
//! repair asks for S3 folder markers), `md5_checkpoints` (a peer about to fetch a large file
//! asks for its md5 checkpoints), `sync` (re-announce a day),
//! `repair` (reconcile now), `repair_fileinfo` (index files placed by hand, then announce).
//! Bodies as go-fastdfs; validation happens before anything is forwarded (docs/DEFECTS.md #34).

use super::{refuse_envelope, refuse_text, require_admin, Params};
use crate::error::ApiError;
use crate::http::{Request, Response};
use crate::json::{self, FileInfo};
use crate::worker::Worker;
use std::net::IpAddr;
use std::rc::Rc;

/// md5s accepted by one `receive_md5s` call.
const RECEIVE_MD5S_MAX: usize = 100_000;

/// `G/syncfile_info`: stores the announcement durably (inbox) before acknowledging it with
/// the file's URL here; the pull task fetches it. Not from a peer or admin: empty 200 as
/// go-fastdfs (the announcement is ignored).
pub async fn syncfile_info(
    w: &Worker,
    req: &Request<'_>,
    client: IpAddr,
    p: &Params,
) -> Result<Response, ApiError> {
    let cfg = w.config();
    if require_admin(w, client, p, refuse_text).is_err() {
        return Ok(Response::new(200));
    }
    let mut info: FileInfo = serde_json::from_str(p.str("fileInfo"))
        .map_err(|e| ApiError::fail(400, format!("fileInfo is not valid JSON: {e}")))?;
    info.md5 = info.md5.to_ascii_lowercase();
    crate::sync::validate_announced(&info)
        .map_err(|e| ApiError::fail(400, format!("fileInfo refused: {e}")))?;
    use crate::sync::Needless;
    match crate::sync::needless(w, &info)? {
        // Here already, or deleted here (the tombstone wins).
        Some(Needless::Present | Needless::Deleted) => {}
        // The content is here under another path: the announcement records this one.
        Some(Needless::Elsewhere) => {
            w.meta().announce(info.clone()).await?;
        }
        // Fetched and stored just now.
        None if crate::sync::fetch_inline(w, &info).await => {}
        None => {
            // The sender's own URL goes first among the sources when it is a peer we know.
            w.meta().announce(info.clone()).await?;
        }
    }
    let host = req.head.host().unwrap_or("");
    let rel = info.path.strip_prefix("files/").unwrap_or(&info.path);
    let group = if cfg.group.is_empty() {
        String::new()
    } else {
        format!("/{}", cfg.group)
    };
    Ok(Response::text(
        200,
        format!("http://{host}{group}/{rel}/{}", info.stored_name()),
    ))
}

/// `G/syncfile_batch` (fastdfs-rs peers only, `sync::batch`): announcements with the
/// content of small files, answered per file once each is stored or queued durably. Only
/// from a peer or admin (403). Each executor holds a few such bodies at once; more wait.
pub async fn syncfile_batch(
    w: &Rc<Worker>,
    req: &mut Request<'_>,
    client: IpAddr,
) -> Result<Response, ApiError> {
    use crate::sync::batch;
    let mut p = Params::default();
    p.push_query(req.head.query());
    require_admin(w, client, &p, refuse_envelope("fail"))?;
    if req.head.method() != "POST" {
        return Err(ApiError::fail(405, "syncfile_batch takes a POST"));
    }
    let _slot = w
        .sync
        .batch_slots
        .acquire_permit(1)
        .await
        .map_err(|_| ApiError::fail(503, "shutting down"))?;
    let body = req.read_to_end(batch::BODY_BYTES_MAX).await?;
    let frames = batch::decode(body).map_err(|e| ApiError::fail(400, e))?;
    let answers = batch::receive(w, frames).await;
    let mut r = Response::text(200, batch::encode_answers(answers));
    r.set("Content-Type", "application/json");
    Ok(r)
}

/// `G/receive_md5s?md5s=a,b`: queues every known md5 for all peers. Empty 200. Each id is
/// looked up as go-fastdfs' LevelDB key: an md5, or a path key or finished tus upload's id
/// naming a live record, whose md5 is queued.
pub async fn receive_md5s(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_text)?;
    let mut md5s: Vec<String> = p
        .str("md5s")
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .filter(|m| !m.is_empty())
        .take(RECEIVE_MD5S_MAX)
        .collect();
    for id in &mut md5s {
        if w.meta().get(id)?.is_none() {
            if let Some(info) = super::record_by_id(w, id)? {
                *id = info.md5;
            }
        }
    }
    crate::sync::repair::push_all(w, &md5s).await;
    Ok(Response::new(200))
}

/// `G/folder_markers` (fastdfs-rs peers, for their repair, `sync::repair`): every S3 folder
/// marker here and every removal, with the time of its change, as
/// `{"status":"ok","data":[{"path":…,"time":…,"deleted":…},…]}`.
pub async fn folder_markers(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_text)?;
    let data = crate::sync::repair::folder_changes(w).await?;
    let body = serde_json::json!({"status": "ok", "data": data});
    Ok(Response::text(200, json::compact(&body)))
}

/// `G/md5_checkpoints?md5=` (fastdfs-rs peers, before they fetch a large file,
/// `store::checkpoints`): the md5 checkpoints kept with the file of that md5 here, as
/// `{"status":"ok","data":{"every":…,"states":"<hex>"}}`; 404 when it has none (or is not
/// here, or is a merged file's).
pub async fn md5_checkpoints(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_text)?;
    let none = || ApiError::fail(404, "no md5 checkpoints for this md5");
    let md5 = p.str("md5");
    if !crate::sync::ANNOUNCED_MD5_CHARS.contains(&md5.len()) {
        return Err(ApiError::fail(400, "md5 must be 32-64 characters"));
    }
    let Some(info) = w.meta().get(md5)?.filter(|i| w.meta().is_live(i)) else {
        return Err(none());
    };
    let size = info.size.max(0) as u64;
    if info.content() != crate::json::Content::Plain
        || size < crate::store::checkpoints::CHECKPOINTS_MIN
    {
        return Err(none());
    }
    let path = w.dir().join(info.rel_path());
    let found = glommio::executor()
        .spawn_blocking(move || crate::store::checkpoints::load(&path, size))
        .await;
    match found {
        Ok(Some(c)) => {
            let body = serde_json::json!({"status": "ok", "data": c.to_json()});
            Ok(Response::text(200, json::compact(&body)))
        }
        Ok(None) => Err(none()),
        Err(e) => {
            tracing::warn!(md5, cause = %e, "md5 checkpoints unreadable");
            Err(none())
        }
    }
}

/// `G/sync?date=&force=&inner=`: re-announce a day's files (all with `force=1`, else those
/// some peer never acknowledged), and ask peers to do the same unless `inner=1`.
pub async fn sync(w: &Rc<Worker>, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, |_| {
        ApiError::fail(403, "client must be in cluster")
    })?;
    let date: String = p.str("date").chars().filter(|&c| c != '.').collect();
    if date.len() != 8 || !date.bytes().all(|b| b.is_ascii_digit()) {
        return Err(ApiError::fail(
            400,
            "require paramete date &force , ?date=20181230",
        ));
    }
    let force = p.str("force") == "1";
    if p.str("inner") != "1" {
        let form = vec![
            ("date".to_string(), date.clone()),
            ("force".to_string(), p.str("force").to_string()),
            ("inner".to_string(), "1".to_string()),
        ];
        forward_to_peers(w, "sync", form);
    }
    let me = w.clone();
    glommio::spawn_local(async move {
        let n = crate::sync::repair::sync_day(&me, &date, force).await;
        tracing::info!(date, force, queued = n, "sync job done");
    })
    .detach();
    Ok(Response::text(
        200,
        json::pretty(&json::envelope::<()>("ok", "job is running", None)),
    ))
}

/// Posts `form` to `G/<action>` of every peer in the background (errors are logged).
pub(crate) fn forward_to_peers(w: &Rc<Worker>, action: &'static str, form: Vec<(String, String)>) {
    let cfg = w.config();
    for peer in cfg.peers.clone() {
        let (me, form) = (w.clone(), form.clone());
        let path = format!("{}/{action}", cfg.prefix());
        glommio::spawn_local(async move {
            let timeout = std::time::Duration::from_secs(60);
            if let Err(e) = me.sync.pool.post_form(&peer, &path, &form, timeout).await {
                tracing::warn!(peer, action, cause = %e, "forwarding to peer failed");
            }
        })
        .detach();
    }
}

/// `G/repair?force=`: starts a reconciliation with every peer (md5 sets per day).
pub async fn repair(w: &Rc<Worker>, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope("ok"))?;
    let me = w.clone();
    glommio::spawn_local(async move { crate::sync::repair::run(&me).await }).detach();
    Ok(Response::text(
        200,
        json::pretty(&json::envelope::<()>("ok", "repair job start...", None)),
    ))
}

/// `G/repair_fileinfo`: with `enable_migrate`, a migration pass (`migrate.rs`): files under
/// `files/` that have no record are indexed as go-fastdfs does and queued for the peers.
pub async fn repair_fileinfo(
    w: &Rc<Worker>,
    client: IpAddr,
    p: &Params,
) -> Result<Response, ApiError> {
    let cfg = w.config();
    require_admin(w, client, p, refuse_text)?;
    if !cfg.enable_migrate {
        // go-fastdfs' body is this text alone, not an envelope.
        return Err(ApiError::Text {
            http: 400,
            body: "please set enable_migrate=true".into(),
        });
    }
    // The migration duty (executor 0) runs the pass: progress in the log and /metrics.
    w.shared.migration.request();
    Ok(Response::text(
        200,
        json::pretty(&json::envelope::<()>(
            "ok",
            "repair job start,don't try again,very danger ",
            None,
        )),
    ))
}
