//! Dispatch by path (docs/PROTOCOL.md §1, §3): Go-style path canonicalization (301 to the
//! cleaned path), the named API routes under the group prefix, everything else to downloads;
//! CORS headers when enabled; errors mapped to responses in one place (`ApiError`).
//!
//! The router is the HTTP layer's `Handler`: `impl Handler for Worker` gives connections
//! their limits, answers each request, and records each exchange (access log, metrics).

use crate::api::{self, admin, cluster, download, manage, upload};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::conn::{Exchange, Handler, Limits};
use crate::http::{Request, Response};
use crate::metrics::Route;
use crate::worker::Worker;
use std::rc::Rc;
use std::time::Duration;

/// Go's path.Clean for URL paths, keeping a trailing slash.
pub fn clean_path(p: &str) -> String {
    if p.is_empty() {
        return "/".into();
    }
    if is_clean(p) {
        return p.to_string();
    }
    clean_segments(p)
}

/// `clean_path` the long way: segment by segment.
fn clean_segments(p: &str) -> String {
    let mut out: Vec<&str> = Vec::new();
    for seg in p.split('/') {
        match seg {
            "" | "." => {}
            ".." => {
                out.pop();
            }
            s => out.push(s),
        }
    }
    let mut s = format!("/{}", out.join("/"));
    if p.ends_with('/') && s != "/" {
        s.push('/');
    }
    s
}

/// Whether `clean_path` would give `p` back unchanged (the common case, decided in one pass
/// without building anything): absolute, and no empty, `.` or `..` segment except the empty
/// one after a trailing slash.
fn is_clean(p: &str) -> bool {
    let Some(rest) = p.strip_prefix('/') else {
        return false;
    };
    let rest = rest.strip_suffix('/').unwrap_or(rest);
    p == "/" || crate::store::names::slash_segments(rest).all(|seg| !matches!(seg, "" | "." | ".."))
}

/// The canonical form of a request path when it is not canonical, else None. As Go's
/// ServeMux: the path percent-decoded (escaped dots and slashes, `%2e%2e`, count as what they
/// decode to), cleaned, and escaped again as Go's `url.URL` writes a path (`<` as `%3C`, a
/// space as `%20`, non-ASCII bytes escaped). A path that does not decode (not UTF-8) is
/// cleaned as it is, or left to the route (400) when clean.
pub fn canonical_path(raw: &str) -> Option<String> {
    let clean_raw = is_clean(raw);
    if clean_raw && !raw.contains('%') {
        return None;
    }
    let Some(decoded) = crate::http::query::percent_decode_path(raw) else {
        return (!clean_raw).then(|| clean_path(raw)).filter(|c| c != raw);
    };
    if is_clean(&decoded) {
        return None;
    }
    Some(crate::http::query::go_escaped_path(&clean_path(&decoded)))
}

/// A cleaned path as a same-origin `Location`: backslashes are encoded, since browsers read
/// `/\host` (like `//host`) as another host.
pub fn redirect_target(cleaned: &str) -> String {
    debug_assert!(cleaned.starts_with('/') && !cleaned.starts_with("//"));
    cleaned.replace('\\', "%5C")
}

/// The `Location` of the 301 to a cleaned path (`query` kept), or None when it would be longer
/// than a request-target may be (each `\` becomes three bytes): following it could only give a
/// 414, so the request is refused with a 414 at once.
pub fn redirect_location(cleaned: &str, query: &str) -> Option<String> {
    let target = redirect_target(cleaned);
    let location = if query.is_empty() {
        target
    } else {
        format!("{target}?{query}")
    };
    (location.len() <= crate::http::head::Limits::default().uri_bytes_max).then_some(location)
}

/// The mux's `301` as Go's `http.Redirect` writes it: to GET the link as a small HTML body
/// (`<a href="…">Moved Permanently</a>.` and two newlines, from its `Fprintln`), the href
/// HTML-escaped; HEAD gets the same head (Go omits its Content-Length); other methods an
/// empty body without a type.
pub fn moved_permanently(method: &str, location: String) -> Response {
    if method != "GET" && method != "HEAD" {
        return Response::new(301).header("Location", location);
    }
    let body = format!(
        "<a href=\"{}\">Moved Permanently</a>.\n\n",
        crate::web::html_escape(&location)
    );
    Response::html(301, body).header("Location", location)
}

const CORS_ALLOW_HEADERS: &str = "Authorization, Content-Type, Depth, User-Agent, X-File-Size, X-Requested-With, X-Requested-By, If-Modified-Since, X-File-Name, X-File-Type, Cache-Control, Origin";

fn add_cors(cfg: &Config, req: &Request<'_>, r: &mut Response) {
    match req.head.header_str("origin") {
        Some(origin) => {
            r.set("Access-Control-Allow-Origin", origin.to_string());
            r.set("Access-Control-Allow-Credentials", "true");
        }
        None => {
            r.set("Access-Control-Allow-Origin", "*");
            if cors_twice(cfg, req) {
                r.set("Access-Control-Allow-Credentials", "true");
            }
        }
    }
    r.set("Access-Control-Allow-Headers", CORS_ALLOW_HEADERS);
    r.set(
        "Access-Control-Allow-Methods",
        "GET, POST, OPTIONS, PUT, DELETE",
    );
    r.set("Access-Control-Expose-Headers", "Authorization");
}

/// go-fastdfs' upload and download handlers apply its CORS a second time, after the first
/// pass set a missing `Origin` to `*`: so without an `Origin`, `Access-Control-Allow-Credentials`
/// comes only with their answers (`G/upload`, any method; downloads, found or not), never
/// with the index page, tus, `static/`, the other API routes or the mux's redirects.
fn cors_twice(cfg: &Config, req: &Request<'_>) -> bool {
    let route = Route::from_tag(req.tag);
    let path = req.head.path();
    match route {
        Route::Upload => {
            !(cfg.enable_tus && cfg.after_prefix(path).and_then(crate::tus::route).is_some())
        }
        Route::Download => !download::is_index(cfg, path),
        _ => false,
    }
}

impl Handler for Worker {
    fn limits(&self) -> Limits {
        let cfg = self.config();
        let secs = |s: u64| Duration::from_secs(s.max(1));
        Limits {
            first_byte: secs(cfg.first_byte_timeout),
            idle: secs(cfg.idle_timeout_s()),
            read_header: secs(cfg.read_header_timeout_s()),
            body_stall: secs(cfg.body_stall_timeout),
            body_min_rate: cfg.body_min_rate,
            read: secs(cfg.read_timeout.max(1) as u64),
            write_stall: secs(cfg.write_timeout.max(1) as u64),
        }
    }

    fn shutting_down(&self) -> bool {
        Worker::shutting_down(self)
    }

    fn refuse(&self, e: crate::http::head::HeadError) -> Response {
        ApiError::from(e).into_response()
    }

    async fn handle(self: &Rc<Self>, req: &mut Request<'_>) -> Response {
        route(self, req).await
    }

    fn answered(&self, x: &Exchange<'_>) {
        // The client as the access rules see it (a trusted proxy's client, not the proxy).
        let client = match x.head {
            Some(head) if crate::access::forwarded(head.headers()) => self
                .config()
                .access
                .client_of_fields(x.peer, head.headers()),
            _ => x.peer,
        };
        self.access_log(client, x.method, x.status, x.target, x.took);
        let route = Route::from_tag(x.tag);
        self.metrics()
            .request(route, x.status, x.took, x.received_bytes, x.sent_bytes);
        if x.pace_cut {
            self.metrics().slow_body();
        }
    }
}

pub async fn route(w: &Rc<Worker>, req: &mut Request<'_>) -> Response {
    let cfg = w.config();
    let mut resp = dispatch(w, req)
        .await
        .unwrap_or_else(|e| e.answer(w.shutting_down()));
    if cfg.enable_cross_origin {
        add_cors(&cfg, req, &mut resp);
    }
    resp
}

async fn dispatch(w: &Rc<Worker>, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let cfg = w.config();
    // The head's path is borrowed, not copied: a download (the common request) needs no
    // owned copy of it; the rarer routes take one below.
    let path = req.head.path();
    if path == "*" {
        return asterisk(req.head.method());
    }
    if let Some(cleaned) = canonical_path(path) {
        return match redirect_location(&cleaned, req.head.query()) {
            Some(location) => Ok(moved_permanently(req.head.method(), location)),
            None => Err(ApiError::fail(414, "request-target too long once cleaned")),
        };
    }
    let client = w.client_of(req);
    let name = match cfg.after_prefix(path) {
        Some(n) => n,
        None => {
            req.tag = Route::Download.tag();
            return download::handle(w, req).await;
        }
    };
    if cfg.enable_tus {
        if let Some(rest) = crate::tus::route(name) {
            let rest = rest.to_string();
            req.tag = Route::Upload.tag();
            return Ok(Box::pin(crate::tus::handle(w, req, &rest)).await);
        }
    }
    let route = route_of(name);
    req.tag = route.tag();
    if name == "/static" {
        // Go's ServeMux adds the slash of a subtree pattern the same way.
        let location = format!("{}/static/", cfg.prefix());
        return match redirect_location(&location, req.head.query()) {
            Some(location) => Ok(moved_permanently(req.head.method(), location)),
            None => Err(ApiError::fail(414, "request-target too long once cleaned")),
        };
    }
    if let Some(file) = name.strip_prefix("/static/") {
        let file = file.to_string();
        return download::serve_static(w, req, &file).await;
    }
    if route == Route::Download {
        return download::handle(w, req).await;
    }
    // The other routes' futures are large (an upload's is about 5 KB) and boxed on their own,
    // so that a download's future, boxed per request by the connection, stays small.
    let name = name.to_string();
    Box::pin(api_route(w, req, &name, client)).await
}

/// The asterisk-form target (RFC 9112 §3.2.4) names the server, not a path: `OPTIONS *`
/// (a proxy's or load balancer's ping) gets an empty `200`, as Go's server answers it; any
/// other method on `*` is a `400`.
fn asterisk(method: &str) -> Result<Response, ApiError> {
    if method == "OPTIONS" {
        return Ok(Response::new(200));
    }
    Err(ApiError::fail(
        400,
        "the request-target * is only for OPTIONS",
    ))
}

/// The API routes under the group prefix (everything but downloads and `/static/`).
async fn api_route(
    w: &Rc<Worker>,
    req: &mut Request<'_>,
    name: &str,
    client: std::net::IpAddr,
) -> Result<Response, ApiError> {
    let cfg = w.config();
    // A tus callback notice sent here (its `callback_url` named this node or a peer) comes
    // from an admin address: it must not act as one.
    if req.head.header(crate::tus::callback::MARK_HEADER).is_some() {
        return Err(ApiError::fail(
            403,
            "a tus callback notice is not a request to fastdfs",
        ));
    }
    if scans_records(name) {
        // Merged uploads acknowledged from the metadata journal reach LMDB's scans first.
        w.meta().settle().await?;
    }
    match name {
        "/upload" => {
            req.body_max = cfg.upload_max_bytes;
            upload::handle(w, req).await
        }
        "/upload.html" => Ok(manage::index_page(w).await),
        "/check_file_exist" => {
            let p = api::read_params(req).await?;
            manage::check_file_exist(w, &p).await
        }
        "/status" => {
            let p = api::read_params(req).await?;
            manage::status(w, client, &p)
        }
        "/delete" => {
            let p = api::read_params(req).await?;
            manage::delete(w, req, client, &p).await
        }
        "/get_file_info" => {
            let p = api::read_params(req).await?;
            manage::get_file_info(w, client, &p).await
        }
        "/stat" => admin::stat(w, client, &api::read_params(req).await?),
        "/list_dir" => admin::list_dir(w, client, &api::read_params(req).await?).await,
        "/search" => admin::search(w, client, &api::read_params(req).await?).await,
        "/check_files_exist" => admin::check_files_exist(w, &api::read_params(req).await?),
        "/get_md5s_by_date" => admin::get_md5s_by_date(w, client, &api::read_params(req).await?),
        "/remove_empty_dir" => admin::remove_empty_dir(w, client, &api::read_params(req).await?),
        "/repair_stat" => admin::repair_stat(w, client, &api::read_params(req).await?).await,
        "/backup" => admin::backup(w, client, &api::read_params(req).await?).await,
        "/report" => admin::report(w, client, &api::read_params(req).await?).await,
        "/reload" => admin::reload(w, client, &api::read_params(req).await?).await,
        "/gen_google_secret" => admin::gen_google_secret(w, client, &api::read_params(req).await?),
        "/gen_google_code" => admin::gen_google_code(w, client, &api::read_params(req).await?),
        "/metrics" => admin::metrics(w, client, &api::read_params(req).await?),
        "/compact" => admin::compact(w, client, &api::read_params(req).await?),
        "/syncfile_info" => {
            let p = api::read_params(req).await?;
            cluster::syncfile_info(w, req, client, &p).await
        }
        "/syncfile_batch" => cluster::syncfile_batch(w, req, client).await,
        "/receive_md5s" => cluster::receive_md5s(w, client, &api::read_params(req).await?).await,
        "/folder_markers" => {
            cluster::folder_markers(w, client, &api::read_params(req).await?).await
        }
        "/md5_checkpoints" => {
            cluster::md5_checkpoints(w, client, &api::read_params(req).await?).await
        }
        "/sync" => cluster::sync(w, client, &api::read_params(req).await?).await,
        "/repair" => cluster::repair(w, client, &api::read_params(req).await?).await,
        "/repair_fileinfo" => {
            cluster::repair_fileinfo(w, client, &api::read_params(req).await?).await
        }
        _ => download::handle(w, req).await,
    }
}

/// Routes that scan records (days, counters, every record) rather than look one up (`/sync`
/// and `/repair` settle inside `sync::repair`, which their duties share).
fn scans_records(name: &str) -> bool {
    matches!(
        name,
        "/stat" | "/status" | "/search" | "/get_md5s_by_date" | "/metrics" | "/backup"
    )
}

/// The route family of a route name (counted in the metrics).
fn route_of(name: &str) -> Route {
    match name {
        "/upload" => Route::Upload,
        "/delete" => Route::Delete,
        "/get_file_info" => Route::GetFileInfo,
        "/check_file_exist" | "/check_files_exist" => Route::CheckFileExist,
        "/status" => Route::Status,
        "/stat" => Route::Stat,
        "/metrics" => Route::Metrics,
        "/upload.html" => Route::Page,
        n if n.starts_with("/static/") => Route::Page,
        "/list_dir" | "/search" | "/get_md5s_by_date" | "/remove_empty_dir" | "/repair_stat"
        | "/backup" | "/report" | "/reload" | "/gen_google_secret" | "/gen_google_code"
        | "/compact" => Route::Admin,
        "/syncfile_info" | "/syncfile_batch" | "/receive_md5s" | "/sync" | "/repair"
        | "/repair_fileinfo" | "/folder_markers" | "/md5_checkpoints" => Route::Sync,
        _ => Route::Download,
    }
}

#[cfg(test)]
mod tests {
    use super::{canonical_path, clean_path};

    #[test]
    fn escaped_dot_segments_are_cleaned_like_plain_ones() {
        let c = |p: &str| canonical_path(p);
        assert_eq!(c("/group1/a/b.txt"), None);
        assert_eq!(
            c("/group1/my%20doc.txt"),
            None,
            "an escape alone is canonical"
        );
        assert_eq!(c("/group1/a/../b.txt").as_deref(), Some("/group1/b.txt"));
        assert_eq!(
            c("/group1/a/%2e%2e/b.txt").as_deref(),
            Some("/group1/b.txt")
        );
        assert_eq!(c("/group1/a/%2E/b.txt").as_deref(), Some("/group1/a/b.txt"));
        assert_eq!(
            c("/group1/my%20doc/%2e%2e/x%3Fy%C3%A9.txt").as_deref(),
            Some("/group1/x%3Fy%C3%A9.txt"),
            "the other segments are escaped again"
        );
        assert_eq!(
            c("/%2e%2e/%2e%2e/etc/passwd").as_deref(),
            Some("/etc/passwd")
        );
        // Escaped again as Go writes a path, whatever the raw form was.
        assert_eq!(
            c("/a/../<x>\"&%27 é\\").as_deref(),
            Some("/%3Cx%3E%22&%27%20%C3%A9%5C")
        );
        assert_eq!(
            c("/group1/a%FF/%2e%2e"),
            None,
            "not UTF-8: the route answers"
        );
    }

    #[test]
    fn clean_like_go() {
        assert_eq!(clean_path("/a/../b"), "/b");
        assert_eq!(clean_path("//a//b/"), "/a/b/");
        assert_eq!(clean_path("/../../etc/passwd"), "/etc/passwd");
        assert_eq!(clean_path("/group1/x.txt"), "/group1/x.txt");
        assert_eq!(clean_path("/"), "/");
    }

    #[test]
    fn the_already_clean_shortcut_agrees_with_the_long_way() {
        let paths = [
            "/",
            "//",
            "///",
            "/a",
            "/a/",
            "/a//",
            "//a",
            "/a/b/c",
            "/a/./b",
            "/a/.",
            "/.",
            "/..",
            "/a/..",
            "/a/../",
            "/.a",
            "/a.",
            "/..a/b..",
            "/a/.../b",
            "a/b",
            "./a",
            "/a\\b",
            "/%2e%2e/x",
            "/a/b/",
            "/group1/default/20261203/x.bin",
        ];
        for p in paths {
            assert_eq!(clean_path(p), super::clean_segments(p), "{p:?}");
        }
    }

    #[test]
    fn redirects_never_leave_the_origin() {
        let to = super::redirect_target(&clean_path("/./\\evil.com"));
        assert_eq!(to, "/%5Cevil.com");
        assert!(!to.starts_with("//") && !to.starts_with("/\\"));
    }
}
