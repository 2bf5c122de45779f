//! Downloads: `GET|HEAD /{group}/<path>` (docs/PROTOCOL.md §5) with Range (RFC 9110: single, suffix,
//! open-ended, multiple as multipart/byteranges, 416 with `bytes */len` and an empty body),
//! If-Range, ETag / Last-Modified validators, conditional GET, inline vs attachment and a safe
//! Content-Disposition; small hot files come from the executor's cache.
//!
//! Architecture invariant: the path served is decoded, checked segment by segment and always
//! under `files/` (never `_tmp`, `_big` or other internal directories).

use crate::config::Config;
use crate::error::ApiError;
use crate::http::disposition::content_disposition;
use crate::http::range::{self, RangeAnswer};
use crate::http::response::FileBody;
use crate::http::{content, query, Body, Request, Response};
use crate::store::cache::{CachedFile, OpenFile, Version, CACHED_FILE_BYTES_MAX};
use crate::web;
use crate::worker::Worker;
use bytes::Bytes;
use std::rc::Rc;

/// Where a download URL points.
enum Target {
    Index,
    File(RelPath),
    NotFound,
    /// A path outside the group prefix, as `files/...`: go-fastdfs looks it up there
    /// without the prefix (see [`outside_prefix`]).
    Outside(RelPath),
}

/// The `files/...` path a download names, built per request in memory its thread keeps for
/// the next one (as the connection's buffers are kept): a cached download allocates nothing
/// for it.
struct RelPath(String);

/// Paths' memory kept per thread, and the longest kept.
const REL_PATHS_KEPT: usize = 16;
const REL_PATH_KEPT_BYTES: usize = 1024;

thread_local! {
    static REL_PATHS: std::cell::RefCell<Vec<String>> = const { std::cell::RefCell::new(Vec::new()) };
}

impl RelPath {
    fn with_capacity(n: usize) -> RelPath {
        let kept = REL_PATHS.with(|p| p.borrow_mut().pop());
        let mut s = kept.unwrap_or_default();
        debug_assert!(s.is_empty());
        s.reserve(n);
        RelPath(s)
    }
}

impl std::ops::Deref for RelPath {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl Drop for RelPath {
    fn drop(&mut self) {
        let mut s = std::mem::take(&mut self.0);
        if s.capacity() == 0 || s.capacity() > REL_PATH_KEPT_BYTES {
            return;
        }
        s.clear();
        let _ = REL_PATHS.try_with(|p| {
            let mut p = p.borrow_mut();
            if p.len() < REL_PATHS_KEPT {
                p.push(s);
            }
        });
    }
}

/// What follows `/<group>` (empty or from a `/`), without allocating: this runs for every
/// download.
fn after_group<'a>(p: &'a str, group: &str) -> Option<&'a str> {
    let rest = p.strip_prefix('/')?.strip_prefix(group)?;
    (rest.is_empty() || rest.starts_with('/')).then_some(rest)
}

/// Whether a download path is the index page's: `/`, `/<group>` or `/<group>/`, with or
/// without group management (go-fastdfs checks these before anything else).
pub fn is_index(cfg: &Config, path: &str) -> bool {
    let group = cfg.group.as_str();
    path == "/"
        || path.is_empty()
        || (!group.is_empty() && matches!(after_group(path, group), Some("" | "/")))
}

fn resolve(w: &Worker, path: &str) -> Result<Target, ApiError> {
    let cfg = w.config();
    let group = cfg.group.as_str();
    let under_group = |p| after_group(p, group);
    if is_index(&cfg, path) {
        return Ok(Target::Index);
    }
    let grouped = cfg.support_group_manage && !group.is_empty();
    let rest = if !grouped {
        if let Some(r) = under_group(path).filter(|_| !group.is_empty()) {
            return Ok(outside(r));
        }
        &path[1..]
    } else {
        match under_group(path).and_then(|r| r.strip_prefix('/')) {
            Some(r) => r,
            None => return Ok(outside(path)),
        }
    };
    let decoded = query::percent_decode_path(rest)
        .ok_or_else(|| ApiError::fail(400, "invalid path encoding"))?;
    let Some((rel, internal)) = files_rel(&decoded) else {
        return Err(ApiError::fail(400, "invalid path"));
    };
    if rel.len() == "files".len() {
        return Ok(Target::Index);
    }
    if internal {
        return Ok(Target::NotFound);
    }
    Ok(Target::File(rel))
}

/// A path outside the prefix (with the group's name taken off when it starts with it, as
/// go-fastdfs does) as the `files/...` it names, or NotFound when it names nothing a client
/// may see.
fn outside(path: &str) -> Target {
    match query::percent_decode_path(path)
        .as_deref()
        .and_then(files_rel)
    {
        Some((rel, false)) => Target::Outside(rel),
        _ => Target::NotFound,
    }
}

/// `files` and the non-empty segments of a decoded URL path (as `names::url_segments` takes
/// them), built in place, and whether its first segment is an internal directory. None when
/// a segment is not one a URL may name.
fn files_rel(decoded: &str) -> Option<(RelPath, bool)> {
    let mut rel = RelPath::with_capacity("files/".len() + decoded.len());
    rel.0.push_str("files");
    let mut internal = false;
    let parts = crate::store::names::slash_segments(decoded).filter(|s| !s.is_empty());
    for (i, part) in parts.enumerate() {
        if !crate::store::names::url_segment_ok(part) {
            return None;
        }
        internal |= i == 0 && crate::store::names::is_internal(part);
        rel.0.push('/');
        rel.0.push_str(part);
    }
    Some((rel, internal))
}

/// go-fastdfs stats `files/<path>` for a URL outside its prefix and, when something is
/// there, hands the request to its file server, which serves only under the prefix: Go's
/// `404 page not found` (for a directory with `show_dir` off, first `list dir deny`).
/// Nothing there: an empty 404 (go-fastdfs asks its peers first: not here, docs/PROTOCOL.md
/// §10). The download checks come first, as there; an image asked for with `width`/`height`
/// is resized as under the prefix (go-fastdfs resizes before its file server refuses).
async fn outside_prefix(w: &Worker, req: &Request<'_>, rel: RelPath) -> Result<Response, ApiError> {
    let mut params = super::Params::default();
    params.push_query(req.head.query());
    check_token(w, req, &params, &rel).await?;
    let full = w.dir().join(&*rel);
    let is_dir = glommio::executor()
        .spawn_blocking(move || std::fs::metadata(full).map(|m| m.is_dir()).ok())
        .await;
    let resizable = wants_variant(&params) && !crate::store::haystack::is_under(&rel);
    Ok(match is_dir {
        None => Response::new(404),
        Some(true) if !w.config().show_dir => Response::text(403, "list dir deny"),
        Some(false) if resizable => Box::pin(resized(w, req, &params, &rel))
            .await?
            .unwrap_or_else(go_not_found),
        Some(_) => go_not_found(),
    })
}

/// Go's `http.NotFound`, as its file servers answer.
fn go_not_found() -> Response {
    Response::text(404, "404 page not found\n").header("X-Content-Type-Options", "nosniff")
}

/// Serves the request's own path (no copy of it unless both caches miss).
pub async fn handle(w: &Worker, req: &mut Request<'_>) -> Result<Response, ApiError> {
    // go-fastdfs refuses a download whose raw request URI holds `..` anywhere, its query
    // included (`?name=a..b`), before anything else, the index page too: 401, empty. (`..`
    // segments never get here: the router redirects them to the cleaned path.)
    if req.head.origin_form().contains("..") {
        return Ok(Response::new(401));
    }
    serve(w, req, None).await
}

/// Serves the download URL path `path` (as `GET|HEAD <path>` would be, with every access
/// check): also the face of other routes that resolve to a stored file (a tus upload's URL).
pub async fn serve_path(
    w: &Worker,
    req: &mut Request<'_>,
    path: &str,
) -> Result<Response, ApiError> {
    serve(w, req, Some(path)).await
}

/// `serve_path` of `path`, or of the request's own path when None.
async fn serve(
    w: &Worker,
    req: &mut Request<'_>,
    path: Option<&str>,
) -> Result<Response, ApiError> {
    let file_rel = match resolve(w, path.unwrap_or(req.head.path()))? {
        Target::Index => return Ok(Box::pin(super::manage::index_page(w)).await),
        Target::NotFound => return Ok(Response::new(404)),
        Target::Outside(rel) => return Box::pin(outside_prefix(w, req, rel)).await,
        Target::File(rel) => rel,
    };
    let mut params = super::Params::default();
    params.push_query(req.head.query());
    let asked = check_token(w, req, &params, &file_rel).await?;
    // A trailing slash asks for a directory: a file's name with one names nothing (go-fastdfs'
    // stat of it fails), so no merged file, variant or cached file answers it.
    let dir_asked = path.unwrap_or(req.head.path()).ends_with('/');
    if crate::store::haystack::is_under(&file_rel) {
        if !dir_asked {
            if let Some(r) = Box::pin(merged(w, req, &params, &file_rel)).await? {
                return Ok(r);
            }
        }
        // Containers and their directories are never served; a locator without a record
        // here may name a peer's file (read through below: no file on disk has its name).
        if dir_asked || !crate::store::haystack::names_a_locator(&file_rel) {
            return Ok(Response::new(404));
        }
    }
    if dir_asked {
        let path = path.map_or_else(|| req.head.path().to_string(), str::to_string);
        let epoch = w.shared.cache_epoch();
        return Box::pin(serve_opened(
            w, req, &path, &params, &file_rel, epoch, asked,
        ))
        .await;
    }
    if wants_variant(&params) {
        if let Some(r) = Box::pin(resized(w, req, &params, &file_rel)).await? {
            return Ok(r);
        }
    }
    let epoch = w.shared.cache_epoch();
    let cached = w.cache.borrow_mut().get(epoch, &file_rel);
    if let Some(c) = cached {
        let body = Source::Memory(c.data.clone());
        return respond(
            w,
            req,
            &params,
            &file_rel,
            c.data.len() as u64,
            c.version,
            body,
        );
    }
    let open = w.open_files.borrow_mut().get(epoch, &file_rel);
    if let Some(f) = open {
        return respond(
            w,
            req,
            &params,
            &file_rel,
            f.size,
            f.version,
            Source::File(f.file),
        );
    }
    // A miss of both caches opens the file: its futures are boxed on their own, so that the
    // hits' future (boxed per request by the connection) stays small.
    let path = path.map_or_else(|| req.head.path().to_string(), str::to_string);
    Box::pin(serve_opened(
        w, req, &path, &params, &file_rel, epoch, asked,
    ))
    .await
}

/// `serve_path` for a file in neither cache: opens it (or reads it through from a peer, or
/// lists a directory), caches it, and answers.
async fn serve_opened(
    w: &Worker,
    req: &mut Request<'_>,
    path: &str,
    params: &super::Params,
    file_rel: &str,
    epoch: u64,
    asked: crate::sync::read_through::PeerCopy,
) -> Result<Response, ApiError> {
    let full = w.dir().join(file_rel);
    let opened = match glommio::io::BufferedFile::open(&full).await {
        Ok(f) => Some(f),
        Err(_) => match stored_as(w, file_rel)? {
            Some(rel) => glommio::io::BufferedFile::open(w.dir().join(rel))
                .await
                .ok(),
            None => None,
        },
    };
    let Some(file) = opened else {
        return crate::sync::read_through::read_through(w, req, file_rel, asked).await;
    };
    let (size, version, is_dir) = fstat(&file)?;
    if is_dir {
        let _ = file.close().await;
        if let Some(r) = directory_index(w, req, path, params, file_rel).await? {
            return Ok(r);
        }
        return super::manage::list_dir_page(w, path, &full).await;
    }
    if path.ends_with('/') {
        let _ = file.close().await;
        return Ok(Response::new(404));
    }
    let file = Rc::new(file);
    if size <= CACHED_FILE_BYTES_MAX && w.config().file_cache_bytes > 0 {
        let data = read_all(&file, size).await?;
        let cached = CachedFile {
            data: data.clone(),
            version,
        };
        w.cache.borrow_mut().insert(epoch, file_rel, cached);
        close_rc(file).await;
        return respond(
            w,
            req,
            params,
            file_rel,
            size,
            version,
            Source::Memory(data),
        );
    }
    let open = OpenFile {
        file: file.clone(),
        size,
        version,
    };
    w.open_files.borrow_mut().insert(epoch, file_rel, open);
    respond(w, req, params, file_rel, size, version, Source::File(file))
}

/// A directory asked for with its trailing slash, with `show_dir` on, answered as Go's file
/// server (go-fastdfs' download handler) does: with its `index.html` when that is a file,
/// served like any download of it. None: no such file (the listing, or `list dir deny`).
async fn directory_index(
    w: &Worker,
    req: &Request<'_>,
    path: &str,
    params: &super::Params,
    dir_rel: &str,
) -> Result<Option<Response>, ApiError> {
    if !w.config().show_dir || !path.ends_with('/') {
        return Ok(None);
    }
    let rel = format!("{}/index.html", dir_rel.trim_end_matches('/'));
    let Ok(file) = glommio::io::BufferedFile::open(w.dir().join(&rel)).await else {
        return Ok(None);
    };
    let (size, version, is_dir) = fstat(&file)?;
    if is_dir {
        let _ = file.close().await;
        return Ok(None);
    }
    let source = Source::File(Rc::new(file));
    respond(w, req, params, &rel, size, version, source).map(Some)
}

/// Where the content a peer named `rel` is stored here under another name (the same bytes
/// were uploaded on two nodes at once; sync records the peer's name, `Meta::announce`).
fn stored_as(w: &Worker, rel: &str) -> Result<Option<String>, ApiError> {
    let key = crate::store::meta::path_key(rel);
    Ok(w.meta()
        .get_by_path_key(&key)?
        .filter(|info| !info.is_merged())
        .map(|info| info.rel_path())
        .filter(|stored| stored != rel))
}

/// Reads a merged file from container `n` of `dir`, keeping the container open in the
/// executor's open-file cache (compaction's removal of a container bumps the epoch, which
/// closes it everywhere).
async fn read_merged(
    w: &Worker,
    epoch: u64,
    dir: &str,
    n: u64,
    offset: u64,
    size: u64,
) -> std::io::Result<bytes::Bytes> {
    let path = format!("{dir}/{n}");
    // A key no plain file's relative path can be (those never start with NUL).
    let key = format!("\0{path}");
    let open = w.open_files.borrow_mut().get(epoch, &key);
    let file = match open {
        Some(f) => f.file,
        None => {
            let file = glommio::io::BufferedFile::open(w.dir().join(&path)).await?;
            let file = Rc::new(file);
            let open = OpenFile {
                file: file.clone(),
                size: 0,
                version: Version::default(),
            };
            w.open_files.borrow_mut().insert(epoch, &key, open);
            file
        }
    };
    crate::store::haystack::read_from(&file, offset, size).await
}

/// A merged small file, `files/haystack/<peer_id>/<N>,<offset>,<size>,<ext>`: found through
/// its record (the URL's numbers are never used as a file position, so a deleted file is gone
/// at once), read with one positioned read (marker checked), then served like any file:
/// Range, validators, HEAD, `download`/`name`. None when no record names it here.
async fn merged(
    w: &Worker,
    req: &Request<'_>,
    params: &super::Params,
    rel: &str,
) -> Result<Option<Response>, ApiError> {
    let named = merged_name(params);
    let params = named.as_ref().unwrap_or(params);
    // The cache first: its entries go when any file is deleted (the epoch), so a cached merged
    // file still has its record.
    let epoch = w.shared.cache_epoch();
    let cached = w.cache.borrow_mut().get(epoch, rel);
    let want = wanted_size(w, params)?;
    if let (Some(c), None) = (&cached, want) {
        let len = c.data.len() as u64;
        let body = Source::Memory(c.data.clone());
        return respond(w, req, params, rel, len, c.version, body).map(Some);
    }
    let Some(info) = w
        .meta()
        .get_by_path_key(&crate::store::meta::path_key(rel))?
        .filter(crate::json::FileInfo::is_merged)
    else {
        return Ok(None);
    };
    let version = Version::of_digest(info.time_stamp.max(0) as u64, &info.md5);
    let Some((n, offset)) = w.meta().location(&info)? else {
        return Ok(None);
    };
    let data = match read_merged(w, epoch, &info.path, n, offset, info.size as u64).await {
        Ok(d) => d,
        Err(e) => {
            tracing::warn!(rel, cause = %e, "merged file unreadable");
            return Ok(None);
        }
    };
    let c = CachedFile {
        data: data.clone(),
        version,
    };
    w.cache.borrow_mut().insert(epoch, rel, c);
    if let Some(want) = want {
        let stamp = Stamp {
            size: data.len() as u64,
            mtime: version.secs,
            version: &info.md5,
        };
        let source = std::future::ready(Ok(data.clone()));
        if let Some(r) = variant(w, req, params, rel, stamp, want, source).await? {
            return Ok(Some(r));
        }
    }
    let len = data.len() as u64;
    respond(w, req, params, rel, len, version, Source::Memory(data)).map(Some)
}

/// The parameters of a merged file's download with its `name` passed through go-fastdfs'
/// special-character filter, which go-fastdfs applies to these files' names whatever
/// `enable_trim_file_name_special_char` says; None when there is no `name`.
fn merged_name(params: &super::Params) -> Option<super::Params> {
    params.get("name")?;
    let mut named = params.clone();
    for (k, v) in named.0.iter_mut() {
        if k == "name" {
            *v = crate::store::names::trim_special(v);
        }
    }
    Some(named)
}

/// `G/static/<path>`: the runtime dir's `static/` as Go's `http.FileServer` serves it
/// (docs/PROTOCOL.md §5.4): files inline with Range and validators, a directory's
/// `index.html` or else its listing, and the redirects of [`web::Redirect`]. `rest` is the
/// raw (still encoded) path after `G/static/`; its segments are checked like a download's, so
/// nothing outside `static/` is named.
pub async fn serve_static(
    w: &Worker,
    req: &mut Request<'_>,
    rest: &str,
) -> Result<Response, ApiError> {
    let decoded = query::percent_decode_path(rest)
        .ok_or_else(|| ApiError::fail(400, "invalid path encoding"))?;
    let parts = crate::store::names::url_segments(&decoded)
        .ok_or_else(|| ApiError::fail(400, "invalid path"))?;
    if let Some(answer) = web::before_open(parts.last().copied()) {
        return Ok(static_redirect(req, rest, answer));
    }
    let rel = if parts.is_empty() {
        "static".to_string()
    } else {
        format!("static/{}", parts.join("/"))
    };
    let Ok(file) = glommio::io::BufferedFile::open(w.dir().join(&rel)).await else {
        // Go's `http.FileServer` answer, which go-fastdfs serves `static/` with.
        return Ok(go_not_found());
    };
    let (size, version, is_dir) = fstat(&file)?;
    let trailing_slash = rest.is_empty() || rest.ends_with('/');
    let redirect = web::after_open(is_dir, trailing_slash, parts.is_empty());
    if redirect.is_none() && !is_dir {
        return static_file(w, req, &rel, size, version, file);
    }
    let _ = file.close().await;
    match redirect {
        Some(r) => Ok(static_redirect(req, rest, r)),
        None => static_directory(w, req, rel).await,
    }
}

/// A directory of `static/` asked for with its trailing slash: its `index.html` when that is
/// a file, else the listing.
async fn static_directory(
    w: &Worker,
    req: &mut Request<'_>,
    rel: String,
) -> Result<Response, ApiError> {
    let index = format!("{rel}/index.html");
    if let Ok(file) = glommio::io::BufferedFile::open(w.dir().join(&index)).await {
        let (size, version, is_dir) = fstat(&file)?;
        if !is_dir {
            return static_file(w, req, &index, size, version, file);
        }
        let _ = file.close().await;
    }
    let dir = w.dir().join(&rel);
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

fn static_file(
    w: &Worker,
    req: &mut Request<'_>,
    rel: &str,
    size: u64,
    version: Version,
    file: glommio::io::BufferedFile,
) -> Result<Response, ApiError> {
    let mut params = super::Params::default();
    params.0.push(("download".into(), "0".into()));
    respond(
        w,
        req,
        &params,
        rel,
        size,
        version,
        Source::File(Rc::new(file)),
    )
}

/// The 301 of a directory rule, relative to the request's path, with the request's query kept.
fn static_redirect(req: &Request<'_>, rest: &str, redirect: web::Redirect) -> Response {
    let last = rest.trim_end_matches('/').rsplit('/').next().unwrap_or("");
    let mut location = redirect.location(last);
    let query = req.head.query();
    if !query.is_empty() {
        location.push('?');
        location.push_str(query);
    }
    Response::new(301).header("Location", location)
}

/// The download token of docs/PROTOCOL.md §2 with a secret: md5(file_md5 + timestamp + secret).
pub fn token_for(file_md5: &str, timestamp: &str, secret: &str) -> String {
    crate::store::meta::md5_hex(&format!("{file_md5}{timestamp}{secret}"))
}

/// Download checks for non-admin callers: a Google code for scenes with a secret
/// (`enable_google_auth`), and with `download_use_token` a `token` and `timestamp` (within
/// ±download_token_expire s) for a file that has a record; a file without a record cannot be
/// validated and is refused (go-fastdfs let it through: docs/DEFECTS.md #6). Failures are 401, empty.
async fn check_token(
    w: &Worker,
    req: &Request<'_>,
    p: &super::Params,
    rel: &str,
) -> Result<crate::sync::read_through::PeerCopy, ApiError> {
    let cfg = w.config();
    let download_auth = cfg.enable_download_auth && !cfg.auth_url.is_empty();
    if !cfg.download_use_token && !cfg.enable_google_auth && !download_auth {
        return Ok(None);
    }
    let client = w.client_of(req);
    if cfg.access.is_admin(client) {
        return Ok(None);
    }
    let key = crate::store::meta::path_key(rel);
    let mut md5 = w.meta().get_by_path_key(&key)?.map(|i| i.md5);
    let mut asked = None;
    if md5.is_none() && cfg.download_use_token && !cfg.peers.is_empty() {
        // Not here yet (replication lag): the token is checked against the peer's record,
        // and the file is then read through from that peer (asked once, used twice).
        asked = Box::pin(crate::sync::read_through::ask_peers(w, req, rel)).await;
        md5 = asked.as_ref().map(|(_, info)| info.md5.clone());
    }
    let code_ok = |scene: &str, code: &str| w.shared.google_code(client, scene, code);
    check_token_for(&cfg, p, rel, md5.as_deref(), &code_ok)?;
    if download_auth && !Box::pin(crate::auth::allowed(w, req, &p.0)).await {
        return Err(ApiError::Empty(401));
    }
    Ok(asked)
}

/// `md5`: the file's record md5, if it has a record (here or on a peer).
fn check_token_for(
    cfg: &crate::config::Config,
    p: &super::Params,
    rel: &str,
    md5: Option<&str>,
    code_ok: &dyn Fn(&str, &str) -> Result<(), crate::guesses::Refusal>,
) -> Result<(), ApiError> {
    // Google code per scene: the first directory under files/ (with or without the group
    // prefix; go-fastdfs sliced the URI blindly: docs/DEFECTS.md #16).
    let scene = rel
        .strip_prefix("files/")
        .and_then(|r| r.split('/').next())
        .unwrap_or("");
    code_ok(scene, p.str("code")).map_err(|r| ApiError::from_guess(r, ApiError::Empty(401)))?;
    if !cfg.download_use_token {
        return Ok(());
    }
    let (token, ts) = (p.str("token"), p.str("timestamp"));
    let Ok(stamp) = ts.parse::<i64>() else {
        return Err(ApiError::Empty(401));
    };
    let now = chrono::Utc::now().timestamp();
    // `abs_diff`: a timestamp near i64::MIN must not wrap the difference into the window.
    if token.is_empty() || now.abs_diff(stamp) > cfg.download_token_expire.max(0).unsigned_abs() {
        return Err(ApiError::Empty(401));
    }
    let Some(md5) = md5 else {
        return Err(ApiError::Empty(401));
    };
    let expected = token_for(md5, ts, &cfg.download_token_secret);
    if crate::codec::same_secret(expected.as_bytes(), token.as_bytes()) {
        Ok(())
    } else {
        Err(ApiError::Empty(401))
    }
}

/// `?width=&height=`: a resized variant of an image (from `files/_cache/` when made before),
/// or None when no resize was asked or the file is not here.
async fn resized(
    w: &Worker,
    req: &Request<'_>,
    p: &super::Params,
    rel: &str,
) -> Result<Option<Response>, ApiError> {
    let Some(want) = wanted_size(w, p)? else {
        return Ok(None);
    };
    let Ok(file) = glommio::io::BufferedFile::open(w.dir().join(rel)).await else {
        return Ok(None);
    };
    let st = crate::sys::file_stat(&file)?;
    let size = st.size;
    if st.is_dir || size > crate::image::SOURCE_BYTES_MAX {
        let _ = file.close().await;
        return Ok(None);
    }
    let mtime = st.mtime_secs;
    let version = format!("{}.{mtime}.{}", st.ino, st.mtime_nanos);
    let file = Rc::new(file);
    let source = async {
        let data = read_all(&file, size).await;
        close_rc(file.clone()).await;
        data
    };
    let stamp = Stamp {
        size,
        mtime,
        version: &version,
    };
    variant(w, req, p, rel, stamp, want, source).await
}

/// A resize source's identity: its size and mtime (the variant's validators) and what tells
/// its content from another at the same path (the cache's key).
struct Stamp<'a> {
    size: u64,
    /// Unix seconds.
    mtime: u64,
    /// The inode and mtime to the nanosecond of a file, a merged file's content digest.
    version: &'a str,
}

/// Whether the query asks for a resized variant (`width` or `height`): only then is the
/// resize path's future (large, and boxed) made.
fn wants_variant(p: &super::Params) -> bool {
    !p.str("width").is_empty() || !p.str("height").is_empty()
}

/// The `width`/`height` asked for, if any (clamped to the configured maximum).
fn wanted_size(w: &Worker, p: &super::Params) -> Result<Option<crate::image::Wanted>, ApiError> {
    let cfg = w.config();
    crate::image::requested_size(
        p.str("width"),
        p.str("height"),
        cfg.image_max_width,
        cfg.image_max_height,
    )
    .map_err(|m| ApiError::fail(400, m))
}

/// The resized variant of a source (`stamp`): from the cache under `files/_cache/` (keyed by
/// path, size, content version and target size), else made from `source` (read only then)
/// on the blocking pool and cached. None when the source is not an image we resize; 503 when
/// too many resizes wait on this executor already.
async fn variant(
    w: &Worker,
    req: &Request<'_>,
    p: &super::Params,
    rel: &str,
    stamp: Stamp<'_>,
    want: crate::image::Wanted,
    source: impl std::future::Future<Output = Result<Bytes, ApiError>>,
) -> Result<Option<Response>, ApiError> {
    use crate::image::{self, ResizeError};
    let Stamp {
        size,
        mtime,
        version,
    } = stamp;
    let key = crate::store::meta::md5_hex(&format!(
        "{rel}|{size}|{version}|{}|{}|{}|{}",
        want.width, want.height, want.max.0, want.max.1
    ));
    let cached = w
        .dir()
        .join("files")
        .join("_cache")
        .join(&key[..2])
        .join(&key);
    // The variant's validators: its source's mtime (whether it was made now or before), and
    // an entity tag of its own (never the source's, nor another size's, even when two have
    // the same length).
    let short = key[..16].to_string();
    let tag = |len: u64| {
        crate::http::response::HeaderValue::Owned(format!("\"{mtime:x}-{len:x}-{short}\""))
    };
    if let Ok(c) = glommio::io::BufferedFile::open(&cached).await {
        let (len, _, _) = fstat(&c)?;
        let source = Source::File(Rc::new(c));
        return respond_tagged(w, req, p, rel, (len, mtime, tag(len)), source).map(Some);
    }
    // A place in the executor's resize queue, then a slot, then the source: requests waiting
    // for a slot hold no image in memory (40 waiting for a 64 MiB source would otherwise
    // hold 2.5 GB), and a flood beyond the queue is told to come back.
    let Ok(_queued) = w.resize_queue.try_acquire_permit(1) else {
        return Err(ApiError::fail(503, "too many resizes waiting, retry later"));
    };
    let _slot = w
        .resize_slots
        .acquire_permit(1)
        .await
        .map_err(|e| ApiError::fail(503, e.to_string()))?;
    let data = source.await?;
    let out = glommio::executor()
        .spawn_blocking(move || image::resize(&data, want))
        .await;
    match out {
        Ok((bytes, _)) => {
            let bytes = Bytes::from(bytes);
            cache_variant(w, cached, &key, bytes.clone()).await;
            let len = bytes.len() as u64;
            let source = Source::Memory(bytes);
            respond_tagged(w, req, p, rel, (len, mtime, tag(len)), source).map(Some)
        }
        Err(ResizeError::Unsupported) => Ok(None),
        Err(ResizeError::TooLarge) => Err(ApiError::fail(413, "image too large to resize")),
        Err(ResizeError::Decode(m)) => {
            Err(ApiError::fail(422, format!("cannot decode image: {m}")))
        }
    }
}

/// Writes a resized variant into the cache at `cached` (unless `resize_cache_bytes` is 0),
/// then, when the cache may be over its bound, starts a trim of it beside the request.
async fn cache_variant(w: &Worker, cached: std::path::PathBuf, key: &str, bytes: Bytes) {
    let cap = w.config().resize_cache_bytes;
    if cap == 0 {
        return;
    }
    let len = bytes.len() as u64;
    let tmp_name = format!(".{key}.tmp");
    let written = glommio::executor()
        .spawn_blocking(move || {
            // A cache: no fsync; a torn file is impossible (write aside, then rename).
            let dir = cached.parent().expect("cache path has a parent");
            let tmp = dir.join(tmp_name);
            std::fs::create_dir_all(dir)
                .and_then(|_| std::fs::write(&tmp, &bytes))
                .and_then(|_| std::fs::rename(&tmp, &cached))
                .is_ok()
        })
        .await;
    if !written || !w.shared.variants.written(len, cap) {
        return;
    }
    let shared = w.shared.clone();
    glommio::spawn_local(async move {
        let dir = shared.dir.join("files").join("_cache");
        let s = shared.clone();
        let removed = glommio::executor()
            .spawn_blocking(move || s.variants.trim(&dir, cap))
            .await;
        if removed > 0 {
            tracing::info!(
                removed,
                cap,
                "resize cache trimmed to its bound (resize_cache_bytes)"
            );
        }
    })
    .detach();
}

async fn close_rc(file: Rc<glommio::io::BufferedFile>) {
    if let Ok(f) = Rc::try_unwrap(file) {
        let _ = f.close().await;
    }
}

async fn read_all(file: &glommio::io::BufferedFile, size: u64) -> Result<Bytes, ApiError> {
    Ok(crate::store::cache::read_whole(file, size).await?)
}

/// Size, content version and directory flag of an open file. `fstat` on an open fd does no
/// I/O (the inode is in memory), so it is allowed on the executor thread.
fn fstat(file: &glommio::io::BufferedFile) -> Result<(u64, Version, bool), ApiError> {
    let st = crate::sys::file_stat(file)?;
    let version = Version::of_file(st.mtime_secs, st.mtime_nanos, st.ino);
    Ok((st.size, version, st.is_dir))
}

enum Source {
    Memory(Bytes),
    File(Rc<glommio::io::BufferedFile>),
}

impl Source {
    /// `once`: the bytes are read once (a peer's replication fetch, see `FileBody`).
    fn body(&self, offset: u64, len: u64, once: bool) -> Body {
        match self {
            Source::Memory(b) => Body::Bytes(b.slice(offset as usize..(offset + len) as usize)),
            Source::File(f) => Body::File(FileBody {
                file: f.clone(),
                offset,
                len,
                once,
            }),
        }
    }
}

fn respond(
    w: &Worker,
    req: &Request<'_>,
    params: &super::Params,
    rel: &str,
    size: u64,
    version: Version,
    source: Source,
) -> Result<Response, ApiError> {
    let tag = content::etag(size, version.secs, version.within);
    respond_tagged(w, req, params, rel, (size, version.secs, tag), source)
}

/// `respond` with the entity tag given (a resized variant's, which is not its source's) and
/// the content's mtime in seconds (its Last-Modified).
fn respond_tagged(
    w: &Worker,
    req: &Request<'_>,
    params: &super::Params,
    rel: &str,
    (size, mtime, tag): (u64, u64, crate::http::response::HeaderValue),
    source: Source,
) -> Result<Response, ApiError> {
    let cfg = w.config();
    let last_modified = content::http_date(mtime);
    let attachment = match params.get("download") {
        None => cfg.default_download,
        Some(v) => v != "0",
    };
    // What the validators decide, before the ETag moves into the head. A date of this
    // second is a weak validator (`content::date_is_strong`).
    let now = crate::sys::unix_secs_coarse();
    if content::precondition_failed(req, &tag, mtime, now) {
        return Ok(Response::new(412));
    }
    let not_modified = content::not_modified(req, &tag, mtime, now);
    let range_header = req
        .head
        .header("range")
        .filter(|_| content::if_range_holds(req, &tag, mtime, now));
    let mut r = Response::new(200);
    r.set("ETag", tag);
    r.set("Last-Modified", last_modified);
    set_content_type(&mut r, params, rel, attachment);
    if not_modified {
        // As Go's file server (go-fastdfs) answers it: no Content-Type (RFC 9110 §15.4.5: a
        // 304 carries no representation metadata), no Accept-Ranges; a download's
        // Content-Disposition stays.
        r.remove("Content-Type");
        r.status = 304;
        r.no_content_length = true;
        return Ok(r);
    }
    r.set("Accept-Ranges", "bytes");
    let answer = match range_header {
        Some(v) => range::parse_range(v, size),
        None => RangeAnswer::Full,
    };
    let once = req.head.header(crate::sync::READ_THROUGH_HEADER).is_some();
    Ok(with_ranges(r, &source, answer, size, once))
}

/// The answer's Content-Type and, for an attachment, Content-Disposition (`name` the file
/// name offered); uploaded content (all but `static/`) is guarded against being run as a
/// page.
fn set_content_type(r: &mut Response, params: &super::Params, rel: &str, attachment: bool) {
    if attachment {
        r.set("Content-Type", "application/octet-stream");
        match params.get("name").filter(|n| !n.is_empty()) {
            // The common answer (`default_download` without `name`) is a constant.
            None => r.set("Content-Disposition", "attachment"),
            name => r.set(
                "Content-Disposition",
                content_disposition("attachment", name),
            ),
        }
    } else {
        r.set("Content-Type", content::mime_type(rel));
    }
    if !rel.starts_with("static/") {
        content::guard_uploaded_content(r);
    }
}

/// Random bytes of a multipart/byteranges boundary (written as hex): 64 bits, which no
/// file's bytes can be made to hold in advance.
const BOUNDARY_RANDOM_BYTES: usize = 8;

/// `r` with the body the range answer asks for: the whole file, one range (206), several
/// as multipart/byteranges (206), or instead a 416 when none is satisfiable. `once`: the
/// bytes are read once (see [`Source::body`]).
#[inline]
fn with_ranges(
    mut r: Response,
    source: &Source,
    answer: RangeAnswer,
    size: u64,
    once: bool,
) -> Response {
    match answer {
        RangeAnswer::Full => r.body = source.body(0, size, once),
        RangeAnswer::Unsatisfiable => {
            // Empty body: old curl appends a 416 body to the file (docs/DEFECTS.md #40).
            let mut e = Response::new(416);
            e.set("Content-Range", format!("bytes */{size}"));
            return e;
        }
        RangeAnswer::Partial(ranges) if ranges.len() == 1 => {
            let (a, b) = (*ranges[0].start(), *ranges[0].end());
            r.status = 206;
            r.set("Content-Range", format!("bytes {a}-{b}/{size}"));
            r.body = source.body(a, b - a + 1, once);
        }
        RangeAnswer::Partial(ranges) => {
            r.status = 206;
            let content_type = r
                .headers
                .iter()
                .find(|(n, _)| *n == "Content-Type")
                .map(|(_, v)| v.clone())
                .unwrap_or_default();
            r.headers.retain(|(n, _)| *n != "Content-Type");
            // Random per answer (RFC 9110 §14.6: it must not occur in the parts): one made
            // from the file's size and mtime could be written into the file itself.
            let boundary = crate::codec::random_hex(BOUNDARY_RANDOM_BYTES);
            r.set(
                "Content-Type",
                format!("multipart/byteranges; boundary={boundary}"),
            );
            r.body = multi_body(source, &ranges, size, &content_type, &boundary);
        }
    }
    r
}

fn multi_body(
    source: &Source,
    ranges: &[std::ops::RangeInclusive<u64>],
    size: u64,
    ct: &str,
    boundary: &str,
) -> Body {
    let heads: Vec<(Bytes, u64, u64)> = ranges
        .iter()
        .map(|r| {
            let h = format!("\r\n--{boundary}\r\nContent-Type: {ct}\r\nContent-Range: bytes {}-{}/{size}\r\n\r\n", r.start(), r.end());
            (Bytes::from(h), *r.start(), r.end() - r.start() + 1)
        })
        .collect();
    let tail = Bytes::from(format!("\r\n--{boundary}--\r\n"));
    match source {
        Source::File(f) => Body::Multi {
            file: f.clone(),
            parts: heads,
            tail,
        },
        Source::Memory(b) => {
            let mut out = Vec::new();
            for (h, off, len) in heads {
                out.extend_from_slice(&h);
                out.extend_from_slice(&b[off as usize..(off + len) as usize]);
            }
            out.extend_from_slice(&tail);
            Body::Bytes(Bytes::from(out))
        }
    }
}
