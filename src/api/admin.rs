//! The remaining single-node routes of docs/PROTOCOL.md §3: `/stat`, `/list_dir`, `/search`,
//! `/check_files_exist`, `/get_md5s_by_date`, `/remove_empty_dir`, `/repair_stat`,
//! `/backup`, `/report`, `/gen_google_secret`, `/gen_google_code`. Bodies as go-fastdfs;
//! refusals carry 403 (go-fastdfs said 200, sometimes with `status:"ok"`: docs/DEFECTS.md #31).

use super::{refuse_envelope, refuse_text, require_admin, Params};
use crate::error::ApiError;
use crate::http::Response;
use crate::json::{self, FileInfo};
use crate::store::meta;
use crate::store::names;
use crate::worker::Worker;
use serde_json::{json, Value};
use std::net::IpAddr;
use std::rc::Rc;

/// Largest number of results of `/search` (as go-fastdfs).
const SEARCH_RESULTS_MAX: usize = 100;
/// Largest number of md5s accepted by `/check_files_exist`.
const CHECK_MD5S_MAX: usize = 10_000;

fn ok<T: serde::Serialize>(data: Option<T>) -> Response {
    Response::text(200, json::pretty(&json::envelope("ok", "", data)))
}

fn today() -> String {
    crate::store::names::day_stamp(&chrono::Local::now())
}

/// `YYYYMMDD` from a parameter: 8 consecutive digits somewhere in it (go-fastdfs' check), or
/// today when absent (go-fastdfs rejected an absent date by mistake: docs/DEFECTS.md #29).
fn date_param(p: &Params) -> Result<String, ApiError> {
    let raw = p.str("date");
    if raw.is_empty() {
        return Ok(today());
    }
    let digits: Vec<char> = raw.chars().collect();
    for w in digits.windows(8) {
        if w.iter().all(|c| c.is_ascii_digit()) {
            return Ok(w.iter().collect());
        }
    }
    Err(ApiError::Envelope {
        http: 400,
        status: "",
        message: "invalid date".into(),
    })
}

/// `G/stat`: per-day counters plus the total row (docs/PROTOCOL.md §3).
pub fn stat(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope(""))?;
    let rows = super::manage::stat_rows(w)?;
    if p.str("inner") == "1" {
        return Ok(Response::text(200, json::pretty(&rows)));
    }
    if p.str("echart") == "1" {
        let category: Vec<Value> = rows.iter().map(|r| r["date"].clone()).collect();
        let count: Vec<Value> = rows.iter().map(|r| r["fileCount"].clone()).collect();
        let size: Vec<Value> = rows.iter().map(|r| r["totalSize"].clone()).collect();
        return Ok(ok(Some(
            json!({"category": category, "barCount": count, "barSize": size}),
        )));
    }
    Ok(ok(Some(rows)))
}

/// `G/list_dir?dir=`: one level of `files/<dir>` (docs/PROTOCOL.md §3), never outside `files/`.
pub async fn list_dir(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope(""))?;
    let dir: String = p.str("dir").chars().filter(|&c| c != '.').collect();
    let mut parts = Vec::new();
    for seg in dir.split('/').filter(|s| !s.is_empty()) {
        names::check_component(seg).map_err(|e| ApiError::Envelope {
            http: 400,
            status: "",
            message: e.to_string(),
        })?;
        parts.push(seg.to_string());
    }
    let rel = if parts.is_empty() {
        "files".to_string()
    } else {
        format!("files/{}", parts.join("/"))
    };
    // go-fastdfs names the directory `files/` + `dir` as given (`files//etc` for `/etc`) in
    // its errors and digests; the directory read is the checked one.
    let shown = format!("files/{dir}");
    let full = w.dir().join(&rel);
    let listed = glommio::executor()
        .spawn_blocking(move || -> std::io::Result<Vec<(String, u64, i64, bool)>> {
            let mut out = Vec::new();
            for e in std::fs::read_dir(full)? {
                let e = e?;
                let m = e.metadata()?;
                let mtime = crate::store::mtime_secs(&m);
                out.push((
                    e.file_name().to_string_lossy().into_owned(),
                    m.len(),
                    mtime,
                    m.is_dir(),
                ));
            }
            out.sort();
            Ok(out)
        })
        .await
        .map_err(|e| ApiError::Envelope {
            http: 404,
            status: "",
            message: go_dir_error(&shown, &e),
        })?;
    let data: Vec<Value> = listed
        .into_iter()
        .map(|(name, size, mtime, is_dir)| {
            let key = format!("{shown}/{name}").replacen("//", "/", 1);
            json!({"name": name, "md5": meta::md5_hex(&key), "path": dir, "size": size,
                   "mtime": mtime, "is_dir": is_dir})
        })
        .collect();
    Ok(ok((!data.is_empty()).then_some(data)))
}

/// A directory listing's failure as go-fastdfs' message shows it (Go's `*PathError`):
/// `open files/x: no such file or directory`, `readdirent files/x: not a directory`.
fn go_dir_error(rel: &str, e: &std::io::Error) -> String {
    let op = if e.raw_os_error() == Some(libc::ENOTDIR) {
        "readdirent"
    } else {
        "open"
    };
    let text = e.to_string();
    // Rust appends " (os error N)" to strerror's text; Go's errno texts are lower case.
    let cause = text
        .split(" (os error")
        .next()
        .unwrap_or(&text)
        .to_lowercase();
    format!("{op} {rel}: {cause}")
}

/// `G/search?kw=`: records whose name contains `kw`, at most 100, unique by md5, in
/// go-fastdfs' order. The scan reads every record: it runs on the blocking pool, not on the
/// executor whose connections it would stall (seconds at millions of records).
pub async fn search(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope(""))?;
    let kw = p.str("kw").to_string();
    let meta = w.shared.meta.clone();
    let found = glommio::executor()
        .spawn_blocking(move || search_records(&meta, &kw))
        .await?;
    Ok(ok((!found.is_empty()).then_some(found)))
}

/// The records `G/search` answers with, for `kw`.
fn search_records(meta: &meta::Meta, kw: &str) -> Result<Vec<FileInfo>, meta::MetaError> {
    // go-fastdfs walks its LevelDB in key order, where both a record's md5 and its path key
    // lead to it, and keeps the first 100 md5s it meets: a record's place is the smaller of
    // its two keys. The best 100 by that place are kept (bounded), one per md5.
    let mut kept: std::collections::BTreeMap<(String, String), FileInfo> = Default::default();
    let mut place_of_md5: std::collections::HashMap<String, String> = Default::default();
    meta.for_each(|info| {
        if !info.name.contains(kw) {
            return true;
        }
        let place = info.md5.clone().min(meta::path_key(&info.rel_path()));
        if let Some(had) = place_of_md5.get(&info.md5) {
            if *had <= place {
                return true;
            }
            kept.remove(&(had.clone(), info.md5.clone()));
        } else if kept.len() == SEARCH_RESULTS_MAX {
            let last = kept.keys().next_back().cloned().expect("a full map");
            if last.0 <= place {
                return true;
            }
            kept.remove(&last);
            place_of_md5.remove(&last.1);
        }
        place_of_md5.insert(info.md5.clone(), place.clone());
        kept.insert((place, info.md5.clone()), info);
        true
    })?;
    debug_assert!(kept.len() <= SEARCH_RESULTS_MAX && kept.len() == place_of_md5.len());
    Ok(kept.into_values().collect())
}

/// `G/check_files_exist?md5s=a,b`: live records of the md5s (public; compact envelope with
/// an empty status, as go-fastdfs).
pub fn check_files_exist(w: &Worker, p: &Params) -> Result<Response, ApiError> {
    let mut found = Vec::new();
    for md5 in p
        .str("md5s")
        .split(',')
        .filter(|m| !m.is_empty())
        .take(CHECK_MD5S_MAX)
    {
        found.extend(super::record_by_id(w, md5)?);
    }
    let env = json::envelope("", "", (!found.is_empty()).then_some(found));
    Ok(Response::text(200, json::compact(&env)))
}

/// `G/get_md5s_by_date?date=`: comma-separated md5s of a day (peers use it for repair). The
/// date is a key prefix in go-fastdfs, taken as given: anything but exactly `YYYYMMDD`
/// (absent included) names no day, an empty answer (neither today's list nor an error).
pub fn get_md5s_by_date(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_text)?;
    let date = p.str("date");
    let md5s = if date.len() == 8 && date.bytes().all(|b| b.is_ascii_digit()) {
        w.meta().md5s_by_date(date)?
    } else {
        Vec::new()
    };
    // No md5s: an empty body without a type, as Go's server sends an empty 200.
    if md5s.is_empty() {
        return Ok(Response::new(200));
    }
    Ok(Response::text(200, md5s.join(",")))
}

/// `G/remove_empty_dir`: removes empty directories under `files/` (not `_tmp`, `_big`, nor
/// S3's: a folder marker's, a bucket's) in the background (`store::folders`).
pub fn remove_empty_dir(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope("ok"))?;
    let files = w.dir().join("files");
    let (meta, root) = (w.shared.meta.clone(), w.dir().to_path_buf());
    glommio::spawn_local(async move {
        let keep = move |rel: &str| crate::store::folders::owned_by_s3(&meta, &root, rel);
        let n = glommio::executor()
            .spawn_blocking(move || crate::store::folders::remove_empty_dirs(&files, keep))
            .await;
        tracing::info!(removed = n, "empty directory cleanup done");
    })
    .detach();
    Ok(Response::text(
        200,
        json::pretty(&json::envelope::<()>(
            "ok",
            "clean job start ..,don't try again!!!",
            None,
        )),
    ))
}

/// Forwards `date` with `inner=1` to every peer's `action`, unless this call is `inner`.
fn forward_inner(w: &Rc<Worker>, p: &Params, action: &'static str, date: &str) {
    if p.str("inner") != "1" {
        let form = vec![
            ("date".to_string(), date.to_string()),
            ("inner".to_string(), "1".to_string()),
        ];
        super::cluster::forward_to_peers(w, action, form);
    }
}

/// `G/repair_stat?date=`: recounts a day from the index (files that still exist).
/// Unless `inner=1`, peers are asked to do the same (in the background, after validation:
/// go-fastdfs forwarded synchronously and before checking the date, docs/DEFECTS.md #34).
pub async fn repair_stat(w: &Rc<Worker>, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope(""))?;
    let date = date_param(p)?;
    forward_inner(w, p, "repair_stat", &date);
    let (count, size) = w.meta().repair_day(&date).await?;
    Ok(ok(Some(
        json!({"date": date, "fileCount": count, "totalSize": size}),
    )))
}

/// `G/backup?date=`: writes `data/<date>/files.md5` and `meta.data` (docs/PROTOCOL.md §7)
/// before answering, so a failure (a full disk: 507) is answered, not only logged.
pub async fn backup(w: &Rc<Worker>, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope("ok"))?;
    let date = date_param(p)?;
    forward_inner(w, p, "backup", &date);
    w.meta().settle().await?;
    let meta = w.shared.meta.clone();
    let dir = w.dir().join("data").join(&date);
    let written = glommio::executor()
        .spawn_blocking(move || crate::store::backup::write(&meta, &dir, &date))
        .await;
    match written {
        Ok(records) => tracing::info!(records, "backup written"),
        Err(e) => {
            tracing::warn!(cause = %e, "backup failed; the previous export, if any, is kept");
            return Err(e.into());
        }
    }
    Ok(Response::text(
        200,
        json::pretty(&json::envelope::<()>("ok", "back job start...", None)),
    ))
}

/// `G/report`: static/report.html with its `{group}` placeholder filled.
pub async fn report(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_text)?;
    let path = w.dir().join("static").join("report.html");
    let shown = w.shown_path("static/report.html");
    let text = glommio::executor()
        .spawn_blocking(move || std::fs::read_to_string(path))
        .await;
    match text {
        Ok(t) => Ok(Response::html(
            200,
            t.replacen("{group}", &w.config().prefix(), 1),
        )),
        Err(_) => Ok(Response::text(404, format!("{shown} is not found"))),
    }
}

/// `G/gen_google_secret`: a fresh 16-character base32 TOTP secret.
pub fn gen_google_secret(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope("ok"))?;
    let secret = crate::totp::base32_encode(&crate::codec::random_bytes::<10>());
    Ok(Response::text(
        200,
        json::pretty(&json::envelope("ok", "ok", Some(secret))),
    ))
}

/// `G/gen_google_code?secret=`: the current TOTP code of a secret, decoded as go-fastdfs
/// decodes it (Go's strict base32). A bad secret gets go-fastdfs' body (`data:""`, Go's error
/// text, `status:"ok"`) with a 400; an empty one, which go-fastdfs took for an empty key, is
/// refused the same way (docs/PROTOCOL.md §10).
pub fn gen_google_code(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope("ok"))?;
    let refuse = |message: String| ApiError::Text {
        http: 400,
        body: json::pretty(&json::envelope("ok", &message, Some(""))),
    };
    let secret = p.str("secret");
    if secret.is_empty() {
        return Err(refuse("(error)parameter secret require".into()));
    }
    let key = crate::totp::go_base32_decode(secret).map_err(|e| refuse(e.to_string()))?;
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let code = crate::totp::code_at_step(&key, now / crate::totp::STEP_SECONDS);
    Ok(Response::text(
        200,
        json::pretty(&json::envelope("ok", "ok", Some(code))),
    ))
}

/// `G/reload?key=&action=get|set|reload[&cfg=]` (admin + admin_key, docs/PROTOCOL.md §3).
pub async fn reload(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    let cfg = w.config();
    if !cfg.access.is_admin(client) {
        return Err(refuse_text(crate::access::not_permitted_text(client)));
    }
    let key = p.str("key");
    if key.is_empty() {
        return Err(ApiError::fail(401, "(error)parameter key require"));
    }
    w.shared
        .admin_key(client, key)
        .map_err(|r| ApiError::from_guess(r, ApiError::fail(401, "(error)key is not correct")))?;
    match p.get("action") {
        None | Some("") => Err(ApiError::Text {
            http: 400,
            body: "(error)action support set(json) get reload".into(),
        }),
        Some("get") => Ok(ok(Some(cfg.as_shown()))),
        Some("set") => {
            let text = p.str("cfg");
            if text.is_empty() {
                return Err(ApiError::fail(400, "(error)parameter cfg(json) require"));
            }
            // Errors name the parameter the text came from (go-fastdfs answers its JSON
            // parser's message, which names nothing).
            let source = std::path::Path::new("parameter cfg");
            crate::config::parse(source, text).map_err(|e| ApiError::fail(400, e.to_string()))?;
            let value: Value = serde_json::from_str(text).expect("parsed above");
            let pretty = serde_json::to_string_pretty(&value).expect("a Value serializes") + "\n";
            let dir = w.dir().to_path_buf();
            glommio::executor()
                .spawn_blocking(move || crate::config::write_file(&dir, &pretty))
                .await
                .map_err(|e| ApiError::fail(500, e.to_string()))?;
            Ok(ok::<()>(None))
        }
        Some("reload") => {
            // The certificate is read again too (enable_https); its files are the operator's
            // input like cfg.json, so a refused pair is a 400 that says what was applied.
            let shared = w.shared.clone();
            let (config, cert) = glommio::executor()
                .spawn_blocking(move || {
                    (
                        shared.reload_config(),
                        shared.reload_certificate("G/reload"),
                    )
                })
                .await;
            config.map_err(|e| ApiError::fail(400, e.to_string()))?;
            cert.map_err(|e| ApiError::fail(400, format!("configuration reloaded; {e}")))?;
            Ok(ok::<()>(None))
        }
        Some(_) => Err(ApiError::Empty(400)),
    }
}

/// `G/metrics`: Prometheus text exposition (admin only).
pub fn metrics(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_text)?;
    let (objects, stored_bytes) = w
        .meta()
        .day_stats()?
        .values()
        .fold((0, 0), |(c, b), (dc, db)| (c + dc, b + db));
    let gauges = crate::metrics::Gauges {
        objects,
        stored_bytes,
        connections: w.shared.connections() as u64,
        workers: w.shared.workers,
        uptime_seconds: w.shared.started.elapsed().as_secs(),
        peers: peer_gauges(w),
        inbox: w.meta().inbox_depth().unwrap_or(0),
        containers: w.shared.container_gauges(),
        process: crate::sys::process_stats(),
        migration: {
            use std::sync::atomic::Ordering::Relaxed;
            let m = &w.shared.migration;
            crate::metrics::MigrationGauge {
                running: m.running.load(Relaxed),
                passes: m.passes.load(Relaxed),
                seen: m.seen.load(Relaxed),
                indexed: m.indexed.load(Relaxed),
                indexed_bytes: m.indexed_bytes.load(Relaxed),
            }
        },
    };
    let mut r = Response::text(200, crate::metrics::render(&w.shared.metrics, &gauges));
    r.headers.retain(|(n, _)| *n != "Content-Type");
    r.set("Content-Type", "text/plain; version=0.0.4; charset=utf-8");
    Ok(r)
}

/// Per-peer replication gauges: queued changes, age of the oldest, reachability.
fn peer_gauges(w: &Worker) -> Vec<crate::metrics::PeerGauge> {
    let now_ms = chrono::Utc::now().timestamp_millis();
    w.config()
        .peers
        .iter()
        .map(|peer| {
            let (queued, oldest) = w.meta().outbox_depth(peer).unwrap_or((0, None));
            crate::metrics::PeerGauge {
                peer: peer.clone(),
                queued,
                oldest_age_seconds: oldest.map_or(0.0, |t| (now_ms - t).max(0) as f64 / 1e3),
                up: w.shared.peer_health.get(peer),
            }
        })
        .collect()
}

/// `G/compact`: asks every executor for a compaction pass of its small-file containers now
/// (every container with dead bytes; the background pass uses `compact_dead_percent`).
pub fn compact(w: &Worker, client: IpAddr, p: &Params) -> Result<Response, ApiError> {
    require_admin(w, client, p, refuse_envelope("fail"))?;
    w.shared.request_compaction();
    let body = json::envelope::<()>("ok", "compaction started", None);
    Ok(Response::text(200, json::pretty(&body)))
}
