//! Basic management routes (docs/PROTOCOL.md §7; docs/PROTOCOL.md §3): the index/upload page,
//! directory listings of download paths, `/check_file_exist`, `/status`, `/delete`,
//! `/get_file_info`.

use super::{require_admin, Params};
use crate::error::ApiError;
use crate::http::Response;
use crate::json::{self, FileInfo};
use crate::store::meta;
use crate::web;
use crate::worker::Worker;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::path::Path;

fn raw_refusal(text: String) -> ApiError {
    // go-fastdfs answered these refusals as raw text with status 200; the issue asks for a
    // JSON message and an honest 403 (the text is kept as the message).
    ApiError::Envelope {
        http: 403,
        status: "fail",
        message: text,
    }
}

/// The upload page (`enable_web_upload`), docs/PROTOCOL.md §7.1: the template
/// `static/uppy.html` of the runtime dir (written at start when absent, so an operator may
/// replace it; go-fastdfs pages keep working), filled by [`web::fill_upload_template`]; the
/// built-in template when the file cannot be read.
pub async fn index_page(w: &Worker) -> Response {
    let cfg = w.config();
    if !cfg.enable_web_upload {
        return Response::text(403, "web upload deny");
    }
    let g = cfg.prefix();
    let path = w.dir().join("static").join("uppy.html");
    let custom = glommio::executor()
        .spawn_blocking(move || std::fs::read_to_string(path))
        .await;
    let template = match &custom {
        Ok(t) => t.as_str(),
        Err(_) => web::UPLOAD_TEMPLATE,
    };
    Response::html(
        200,
        web::fill_upload_template(template, &g, &cfg.default_scene),
    )
}

/// Directory listing of a download path (`show_dir`), Go's `<pre>` format.
pub async fn list_dir_page(w: &Worker, url_path: &str, full: &Path) -> Result<Response, ApiError> {
    let cfg = w.config();
    if !cfg.show_dir {
        return Ok(Response::text(403, "list dir deny"));
    }
    if !url_path.ends_with('/') {
        // A backslash is data in a name, escaped: browsers read it in a URL as `/`.
        let last = url_path
            .rsplit('/')
            .next()
            .unwrap_or("")
            .replace('\\', "%5C");
        return Ok(Response::new(301).header("Location", format!("{last}/")));
    }
    let dir = full.to_path_buf();
    let entries = glommio::executor()
        .spawn_blocking(move || -> std::io::Result<Vec<(String, bool)>> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(dir)?.take(web::LISTING_ENTRIES_MAX) {
                let e = e?;
                let name = e.file_name().to_string_lossy().into_owned();
                out.push((name, e.file_type()?.is_dir()));
            }
            Ok(out)
        })
        .await?;
    Ok(Response::html(200, web::listing(entries)))
}

/// `files/...` relative path of a download path or store path given by a client, validated.
fn store_rel_path(w: &Worker, raw: &str) -> Option<String> {
    let cfg = w.config();
    let group = format!("/{}/", cfg.group);
    let rest = if let Some(r) = raw.strip_prefix(&group) {
        r
    } else if let Some(r) = raw.strip_prefix("files/") {
        r
    } else {
        raw.trim_start_matches('/')
    };
    let parts = crate::store::names::url_segments(rest)?;
    if parts.is_empty() {
        return None;
    }
    Some(format!("files/{}", parts.join("/")))
}

/// `G/check_file_exist` (public): by md5, or by a path that must lie under `files/`
/// (go-fastdfs stats any host path: docs/DEFECTS.md #4).
pub async fn check_file_exist(w: &Worker, p: &Params) -> Result<Response, ApiError> {
    let md5 = p.str("md5");
    if !md5.is_empty() {
        if let Some(info) = super::record_by_id(w, md5)? {
            return Ok(Response::text(200, json::compact(&info)));
        }
    }
    let path = p.str("path");
    if !path.is_empty() {
        if let Some(rel) = store_rel_path(w, path) {
            if let Some(info) = w.meta().get_by_path_key(&meta::path_key(&rel))? {
                return Ok(Response::text(200, json::compact(&info)));
            }
            let full = w.dir().join(&rel);
            let stat = glommio::executor()
                .spawn_blocking(move || std::fs::metadata(full))
                .await;
            if let Some(m) = stat.ok().filter(|m| m.is_file()) {
                let (dir, name) = rel.rsplit_once('/').unwrap_or(("files", &rel));
                let info = FileInfo {
                    name: name.to_string(),
                    rename: String::new(),
                    path: dir.to_string(),
                    md5: meta::md5_hex(&rel),
                    size: m.len() as i64,
                    peers: Some(vec![w.config().host.clone()]),
                    scene: String::new(),
                    time_stamp: crate::store::mtime_secs(&m),
                    offset: crate::json::OFFSET_PLAIN,
                    s3: None,
                };
                return Ok(Response::text(200, json::compact(&info)));
            }
        }
    }
    Ok(Response::text(404, json::compact(&FileInfo::default())))
}

/// `G/status`: the envelope peers rely on; host details only for admins (docs/DEFECTS.md #13).
pub fn status(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    let cfg = w.config();
    let admin = require_admin(w, client, p, raw_refusal).is_ok();
    let answer = if admin {
        status_of_admin(w, &cfg)?
    } else {
        Response::text(
            200,
            json::pretty(&json::envelope("ok", "", Some(json!({})))),
        )
    };
    // The id tells a node that a peer URL is itself (`sync::check_health`); in both answers,
    // as a peer named by host name need not be an admin.
    Ok(answer.header(crate::worker::NODE_ID_HEADER, w.shared.node_id.clone()))
}

/// `G/status` as an admin sees it.
fn status_of_admin(w: &Worker, cfg: &crate::config::Config) -> Result<Response, ApiError> {
    let stats = stat_rows(w)?;
    let mut data = serde_json::Map::new();
    data.insert("Fs.AutoRepair".into(), json!(cfg.auto_repair));
    data.insert("Fs.FileStats".into(), Value::Array(stats));
    data.insert("Fs.Local".into(), json!(cfg.host));
    // No peers is `null`, as go-fastdfs' nil slice.
    let peers = if cfg.peers.is_empty() {
        Value::Null
    } else {
        json!(cfg.peers)
    };
    data.insert("Fs.Peers".into(), peers);
    data.insert("Fs.QueueFileLog".into(), json!(0));
    data.insert("Fs.QueueFromPeers".into(), json!(0));
    data.insert("Fs.QueueToPeers".into(), json!(0));
    data.insert("Fs.QueueUpload".into(), json!(0));
    data.insert("Fs.RefreshInterval".into(), json!(cfg.refresh_interval));
    data.insert("Fs.ShowDir".into(), json!(cfg.show_dir));
    // The process's CPUs (an executor's own thread is pinned to one).
    data.insert("Sys.NumCpu".into(), json!(w.shared.cpus));
    data.insert("Sys.NumGoroutine".into(), json!(w.shared.connections()));
    data.insert("Sys.Workers".into(), json!(w.shared.workers));
    data.insert(
        "Sys.UptimeSeconds".into(),
        json!(w.shared.started.elapsed().as_secs()),
    );
    // go-fastdfs' Go runtime memory figures, for the clients that show them: the heap in use
    // is the allocator's; there is no collector (no collections, no GC memory or CPU) and no
    // running totals of allocations and frees (0).
    let heap = crate::sys::heap_in_use_bytes();
    for (key, value) in [
        ("Sys.Alloc", json!(heap)),
        ("Sys.HeapAlloc", json!(heap)),
        ("Sys.TotalAlloc", json!(0)),
        ("Sys.Frees", json!(0)),
        ("Sys.HeapObjects", json!(0)),
        ("Sys.NumGC", json!(0)),
        ("Sys.GCSys", json!(0)),
        ("Sys.GCCPUFraction", json!(0.0)),
    ] {
        data.insert(key.into(), value);
    }
    let disk = crate::sys::disk_usage(&w.dir().join("files")).map(|mut d| {
        d.path = w.shown_path("files");
        d
    });
    data.insert("Sys.DiskInfo".into(), json!(disk));
    data.insert("Sys.MemInfo".into(), Value::Object(crate::sys::mem_info()));
    Ok(Response::text(
        200,
        json::pretty(&json::envelope("ok", "", Some(Value::Object(data)))),
    ))
}

/// Rows `{date, fileCount, totalSize}` per day plus the `all` total (docs/PROTOCOL.md §3).
///
/// As go-fastdfs: today has a row even before its first upload (go-fastdfs sets the counters
/// of the day it starts to 0), and a day whose files were all deleted keeps its row of zeros.
pub fn stat_rows(w: &Worker) -> Result<Vec<Value>, ApiError> {
    let mut days = w.meta().day_stats()?;
    days.entry(crate::store::names::day_stamp(&chrono::Local::now()))
        .or_default();
    let mut rows = Vec::new();
    let (mut count, mut size) = (0i64, 0i64);
    for (date, (c, s)) in days {
        count += c;
        size += s;
        rows.push(json!({"date": date, "fileCount": c, "totalSize": s}));
    }
    rows.push(json!({"date": "all", "fileCount": count, "totalSize": size}));
    Ok(rows)
}

/// Which parameter names the file when a call gives both `md5` and `path`.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Named {
    /// `get_file_info`: the path wins.
    PathFirst,
    /// `delete`: the path counts only without an md5.
    Md5First,
}

/// The record named by the `md5` (an md5, a path key or a finished tus upload's id: the keys
/// go-fastdfs' LevelDB held it under) or `path` (a download path) parameter
/// (docs/PROTOCOL.md §3).
/// Whether a `path` parameter of `get_file_info` or `delete` has a form go-fastdfs turns
/// into a path key: a download path `/<group>/…`, a store path `files/…`, or without
/// prefixing any `/…`. Anything else was an unknown key there (not found), and must not
/// name (or delete) a file here.
fn names_a_stored_file(w: &Worker, raw: &str) -> bool {
    let cfg = w.config();
    raw.starts_with(&format!("/{}/", cfg.group))
        || raw.starts_with("files/")
        || (cfg.prefix().is_empty() && raw.starts_with('/'))
}

async fn lookup(w: &Worker, p: &Params, order: Named) -> Result<Option<FileInfo>, ApiError> {
    let (md5, path) = (p.str("md5"), p.str("path"));
    if !path.is_empty() && (md5.is_empty() || order == Named::PathFirst) {
        return by_download_path(w, path);
    }
    if let Some(info) = w.meta().get_by_id(md5)? {
        return Ok(Some(info));
    }
    // A tus upload's id names the file it became while that lives: through the path index,
    // or for an upload finished before it recorded ids there, through its state.
    if let Some(info) = super::record_by_id(w, md5)? {
        return Ok(Some(info));
    }
    match crate::tus::state::finished_md5(w.dir(), md5).await? {
        Some(content) => Ok(w.meta().get_live(&content)?),
        None => Ok(None),
    }
}

/// The record of a download path as an upload answered it (`path`, `src`: as stored), or
/// percent-encoded as in its `url`.
fn by_download_path(w: &Worker, path: &str) -> Result<Option<FileInfo>, ApiError> {
    let find = |raw: &str| -> Result<Option<FileInfo>, ApiError> {
        if !names_a_stored_file(w, raw) {
            return Ok(None);
        }
        match store_rel_path(w, raw) {
            Some(rel) => Ok(w.meta().get_by_path_key(&meta::path_key(&rel))?),
            None => Ok(None),
        }
    };
    if let Some(info) = find(path)? {
        return Ok(Some(info));
    }
    match crate::http::query::percent_decode_path(path) {
        Some(decoded) if decoded != path => find(&decoded),
        _ => Ok(None),
    }
}

/// `G/get_file_info` (admin).
pub async fn get_file_info(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, raw_refusal)?;
    match lookup(w, p, Named::PathFirst).await? {
        Some(info) => Ok(Response::text(
            200,
            json::pretty(&json::envelope("ok", "", Some(info))),
        )),
        None => Err(ApiError::fail(404, "leveldb: not found")),
    }
}

/// `G/delete` (admin): removes the record (path key, day index, counters) and the file.
pub async fn delete(
    w: &Worker,
    req: &crate::http::Request<'_>,
    client: IpAddr,
    p: &Params,
) -> Result<Response, ApiError> {
    require_admin(w, client, p, raw_refusal)?;
    // auth_url applies to admins and peers too (docs/PROTOCOL.md §3): 401 with an empty body.
    if !w.config().auth_url.is_empty() && !crate::auth::allowed(w, req, &p.0).await {
        return Err(ApiError::Empty(401));
    }
    // The path counts only without an md5 (go-fastdfs' order).
    let md5 = p.str("md5");
    if (!md5.is_empty() || p.str("path").is_empty()) && md5.len() < 32 {
        return Err(ApiError::fail(400, "md5 unvalid"));
    }
    // A delete forwarded by a peer (`inner=1`) is not forwarded again, and leaves a
    // tombstone even when the file never arrived here, so a late copy cannot revive it.
    let from_peer = p.str("inner") == "1";
    let notify = if from_peer {
        Vec::new()
    } else {
        w.config().peers.clone()
    };
    let Some(info) = lookup(w, p, Named::Md5First).await? else {
        if from_peer && md5.len() == 32 {
            w.meta()
                .delete(md5.to_ascii_lowercase(), notify, true)
                .await?;
        }
        return Err(ApiError::fail(404, "leveldb: not found"));
    };
    // A merged small file's bytes stay in its container (dead, reclaimable); its record goes.
    let existed = info.is_merged() || w.dir().join(info.rel_path()).is_file();
    match w.meta().delete(info.md5.clone(), notify, from_peer).await? {
        Some(_) => {
            w.metrics().delete();
            if existed {
                Ok(Response::text(
                    200,
                    json::pretty(&json::envelope::<()>("ok", "remove success", None)),
                ))
            } else {
                Err(ApiError::fail(404, "fail remove"))
            }
        }
        None => Err(ApiError::fail(404, "leveldb: not found")),
    }
}
