//! tus 1.0.0 resumable uploads at `G/big/upload/` when `enable_tus` is on (docs/PROTOCOL.md §6): the
//! core protocol (HEAD, PATCH, OPTIONS) and the creation, creation-with-upload,
//! creation-defer-length, termination, concatenation, checksum (sha1, md5) and expiration
//! extensions.
//!
//! Owns: the routes under `big/upload/`, mapping tus errors to HTTP (`TusError` ->
//! `ApiError`, one place), the tus response headers, and the periodic expiry of stale uploads.
//! `protocol` parses headers, `state` keeps uploads durable under `files/_big/`, `transfer`
//! streams bodies to disk and completes uploads.
//!
//! Unlike go-fastdfs: metadata `filename`/`scene`/`path` go through the same validation as a
//! multipart upload (`placement::Target`), read_only and the scene's
//! Google code are enforced, the completed file lands in the requested scene (item 22), GET of
//! an id serves only that upload's finished file, with the download checks (item 23), and 412 carries `Tus-Version` (item 41).

pub mod callback;
pub mod protocol;
pub mod state;
mod transfer;

use crate::config::Config;
use crate::error::ApiError;
use crate::http::params::Params;
use crate::http::{BodyError, Request, Response};
use crate::placement::Target;
use crate::worker::Worker;
use protocol::{Concat, TUS_VERSION};
use state::{Info, Lock};
use std::rc::Rc;
use std::time::Duration;

/// The path below the group prefix where tus lives.
const ROUTE: &str = "/big/upload";
/// Longest pause between two expiry sweeps.
const SWEEP_EVERY_S_MAX: u64 = 60;
/// Granularity at which the sweeper notices shutdown.
const SWEEP_TICK: Duration = Duration::from_millis(200);
/// CORS: what a browser client may read and send (the router adds the origin itself).
const EXPOSE_HEADERS: &str = "Upload-Offset, Location, Upload-Length, Tus-Version, \
    Tus-Resumable, Tus-Max-Size, Tus-Extension, Tus-Checksum-Algorithm, Upload-Metadata, \
    Upload-Defer-Length, Upload-Concat, Upload-Expires, X-Fastdfs-Url, X-Fastdfs-Md5";
const ALLOW_HEADERS: &str = "Origin, X-Requested-With, Content-Type, Upload-Length, \
    Upload-Offset, Tus-Resumable, Upload-Metadata, Upload-Defer-Length, Upload-Checksum, \
    Upload-Concat, X-HTTP-Method-Override, Auth-Token";

#[derive(Debug, thiserror::Error)]
pub enum TusError {
    #[error("unsupported version")]
    Version,
    #[error("{0}")]
    BadRequest(String),
    #[error("upload not found")]
    NotFound,
    /// The data file vanished under an existing upload (crash right after completion).
    #[error("upload not found")]
    DataMissing,
    #[error("method not allowed")]
    Method,
    /// A body for a final upload (concatenation): its bytes are its partial uploads'.
    #[error("modifying a final upload is not allowed")]
    ModifyFinal,
    /// A final upload naming a partial upload that is not whole (we do not offer
    /// concatenation-unfinished) or an upload that is not partial.
    #[error("{0}")]
    NotPartial(&'static str),
    #[error("Upload-Offset {given} does not match the upload's offset {actual}")]
    Offset { given: u64, actual: u64 },
    #[error("another request is writing this upload")]
    Locked,
    #[error("Content-Type must be application/offset+octet-stream")]
    MediaType,
    #[error("checksum mismatch")]
    ChecksumMismatch,
    #[error("upload larger than its Upload-Length or the size limit")]
    TooLarge,
    #[error(
        "too many unfinished uploads (at most {0} per client, {} in all); finish or terminate some",
        state::UPLOADS_TOTAL_MAX
    )]
    TooMany(u64),
    /// Validation, access and storage errors shared with the other routes.
    #[error(transparent)]
    Api(#[from] ApiError),
}

impl From<std::io::Error> for TusError {
    fn from(e: std::io::Error) -> TusError {
        TusError::Api(e.into())
    }
}

impl From<BodyError> for TusError {
    fn from(e: BodyError) -> TusError {
        TusError::Api(e.into())
    }
}

/// The one mapping of tus errors to HTTP statuses; bodies are the `fail` envelope of the other
/// routes (tusd answers a line of text; tus clients read the status and headers only).
impl From<TusError> for ApiError {
    fn from(e: TusError) -> ApiError {
        let http = match &e {
            TusError::Version => 412,
            TusError::BadRequest(_) => 400,
            TusError::NotFound | TusError::DataMissing => 404,
            TusError::Method => 405,
            TusError::ModifyFinal => 403,
            TusError::NotPartial(_) => 400,
            TusError::Offset { .. } => 409,
            TusError::Locked => 423,
            TusError::MediaType => 415,
            TusError::ChecksumMismatch => 460,
            TusError::TooLarge => 413,
            TusError::TooMany(_) => 429,
            TusError::Api(_) => 0,
        };
        match e {
            TusError::Api(api) => api,
            other => ApiError::fail(http, other.to_string()),
        }
    }
}

/// The metadata's `callback_url`, when it has a non-empty one.
fn callback_url(metadata: &[(String, String)]) -> Option<&str> {
    metadata
        .iter()
        .find(|(k, v)| k == "callback_url" && !v.trim().is_empty())
        .map(|(_, v)| v.trim())
}

/// Queues the `callback_url` notice of a completed upload (docs/PROTOCOL.md §6): `record` is
/// the stored file's, durable and recorded. A URL no longer allowed (a reload since the
/// creation) is skipped.
fn notify(w: &Worker, info: &Info, record: &crate::json::FileInfo) {
    let Ok(metadata) = protocol::parse_metadata(&info.metadata) else {
        return;
    };
    let Some(url) = callback_url(&metadata) else {
        return;
    };
    if let Err(why) = callback::check(&w.config(), url) {
        tracing::warn!(id = %info.id, %why, "tus: callback not sent");
        return;
    }
    // Dropped (a full queue) with a warning: the upload is stored all the same.
    let _ = w.shared.callbacks.post(callback::Notice {
        client: info.client.unwrap_or(std::net::IpAddr::from([0, 0, 0, 0])),
        url: url.to_string(),
        id: info.id.clone(),
        info: crate::json::pretty(record),
    });
}

fn bad(message: &str) -> TusError {
    TusError::BadRequest(message.to_string())
}

/// The upload id or "" (the creation URL) when `name` (a path below the group prefix) is a
/// tus route.
pub fn route(name: &str) -> Option<&str> {
    let rest = name.strip_prefix(ROUTE)?;
    if rest.is_empty() {
        return Some("");
    }
    rest.strip_prefix('/')
}

/// Upload lifetime in seconds (`tus_expire_seconds`).
pub fn lifetime_s(cfg: &Config) -> i64 {
    cfg.tus_expire_seconds.min(i64::MAX as u64 / 2) as i64
}

/// Answers one request to `G/big/upload/<rest>`; every answer carries `Tus-Resumable`.
pub async fn handle(w: &Worker, req: &mut Request<'_>, rest: &str) -> Response {
    let cfg = w.config();
    let method = match req.head.header_str("x-http-method-override") {
        Some(m) if req.head.method() == "POST" => m.trim().to_ascii_uppercase(),
        _ => req.head.method().to_string(),
    };
    let mut resp = dispatch(w, req, &method, rest)
        .await
        .unwrap_or_else(|e| ApiError::from(e).answer(w.shutting_down()));
    resp.set("Tus-Resumable", TUS_VERSION);
    // A finished upload's file comes with the download's own (once).
    if !resp.has_header("X-Content-Type-Options") {
        resp.set("X-Content-Type-Options", "nosniff");
    }
    match resp.status {
        412 => resp.set("Tus-Version", TUS_VERSION),
        405 if rest.is_empty() => resp.set("Allow", "OPTIONS, POST"),
        405 => resp.set("Allow", "OPTIONS, HEAD, PATCH, DELETE"),
        _ => {}
    }
    if resp.status == 204 {
        resp.no_content_length = true;
    }
    if cfg.enable_cross_origin {
        resp.set("Access-Control-Expose-Headers", EXPOSE_HEADERS);
    }
    resp
}

async fn dispatch(
    w: &Worker,
    req: &mut Request<'_>,
    method: &str,
    rest: &str,
) -> Result<Response, TusError> {
    match method {
        "OPTIONS" => return Ok(options(&w.config())),
        "GET" if rest.is_empty() => return Err(TusError::Method),
        "GET" => return download(w, req, rest).await,
        _ => {}
    }
    if req.head.header_str("tus-resumable").map(str::trim) != Some(TUS_VERSION) {
        return Err(TusError::Version);
    }
    if rest.is_empty() {
        return match method {
            // go-fastdfs refuses a creation that carries a `Suspend` header.
            "POST" if req.head.header("suspend").is_some() => {
                Err(ApiError::fail(403, "upload suspended").into())
            }
            "POST" => create(w, req).await,
            _ => Err(TusError::Method),
        };
    }
    if !protocol::valid_id(rest) {
        return Err(TusError::NotFound);
    }
    match method {
        "HEAD" => head(w, rest).await,
        "PATCH" => patch(w, req, rest).await,
        "DELETE" => terminate(w, rest).await,
        _ => Err(TusError::Method),
    }
}

/// go-fastdfs' answer to a tus creation without a token when auth_url is set.
const NO_AUTH_TOKEN: &str = "token auth fail,auth_token is not in http header Upload-Metadata,\
in uppy uppy.setMeta({ auth_token: '9ee60e59-cb0f-4578-aaba-29b9fc2919ca' })";

/// `GET <upload URL>` of a finished upload serves the file it became, under every check of an
/// ordinary download (token, Google code, auth_url, download auth) and with Range, also after
/// the upload's state expired (its id stays in the path index while the file lives); an
/// unknown or unfinished id, or one whose file was deleted since, is a 404. Only that upload's
/// file: the id is never read as an md5 or path key (unlike go-fastdfs, docs/DEFECTS.md).
async fn download(w: &Worker, req: &mut Request<'_>, id: &str) -> Result<Response, TusError> {
    let Some(key) = state::record_key(id) else {
        return Err(TusError::NotFound);
    };
    let meta = w.meta();
    let record = match meta.get_by_path_key(&key).map_err(ApiError::from)? {
        Some(r) => Some(r),
        // An upload finished before ids were recorded there: its state, while it lasts.
        None => match live(w, id).await {
            Ok(Info {
                completed: Some(done),
                ..
            }) => meta.get(&done.md5).map_err(ApiError::from)?,
            _ => None,
        },
    };
    let Some(record) = record.filter(|r| meta.is_live(r)) else {
        return Err(TusError::NotFound);
    };
    let path = crate::placement::download_path(&w.config(), &record);
    Ok(crate::api::download::serve_path(w, req, &path).await?)
}

/// Discovery (and CORS preflight): `200` like go-fastdfs' tusd (tus allows `204` too).
fn options(cfg: &Config) -> Response {
    let mut r = Response::new(200);
    r.set("Tus-Version", TUS_VERSION);
    r.set("Tus-Extension", protocol::EXTENSIONS);
    r.set("Tus-Checksum-Algorithm", protocol::CHECKSUM_ALGORITHMS);
    r.set("Tus-Max-Size", cfg.tus_size_max().to_string());
    if cfg.enable_cross_origin {
        r.set(
            "Access-Control-Allow-Methods",
            "POST, GET, HEAD, PATCH, DELETE, OPTIONS",
        );
        r.set("Access-Control-Allow-Headers", ALLOW_HEADERS);
        r.set("Access-Control-Max-Age", "86400");
    }
    r
}

/// The upload, if it exists and has not expired.
async fn live(w: &Worker, id: &str) -> Result<Info, TusError> {
    match state::load(w.dir(), id).await? {
        Some(info) if !info.expired(state::now()) => Ok(info),
        _ => Err(TusError::NotFound),
    }
}

fn read_only(cfg: &Config) -> Result<(), TusError> {
    if cfg.read_only {
        return Err(ApiError::fail(403, "(error) readonly").into());
    }
    Ok(())
}

/// A declared length: not zero (like an empty multipart upload), within `upload_max_bytes`.
fn check_length(cfg: &Config, length: u64) -> Result<u64, TusError> {
    if length == 0 {
        return Err(ApiError::fail(400, "file size is zero").into());
    }
    if length > cfg.tus_size_max() {
        return Err(TusError::TooLarge);
    }
    Ok(length)
}

fn header<'r>(req: &'r Request<'_>, name: &str) -> Option<&'r str> {
    req.head.header_str(name).map(str::trim)
}

fn checksum_of(req: &Request<'_>) -> Result<Option<protocol::Checksum>, TusError> {
    header(req, "upload-checksum")
        .map(protocol::parse_checksum)
        .transpose()
}

/// Where the upload's bytes go, from its metadata, by the rules of multipart uploads:
/// `filename` is the client's file name (a single path component: a path is refused, not
/// reduced to its last part), `scene`, `path` and `code` are the form fields of the same names.
fn target_of(
    w: &Worker,
    client: std::net::IpAddr,
    metadata: &[(String, String)],
) -> Result<Target, TusError> {
    let cfg = &*w.config();
    let get = |key: &str| {
        metadata
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    };
    let filename = get("filename").unwrap_or("");
    if !filename.is_empty() {
        crate::store::names::check_name(filename)
            .map_err(|e| ApiError::fail(400, format!("invalid file name: {e}")))?;
    }
    let mut fields = Params::default();
    for key in ["scene", "path", "code"] {
        if let Some(v) = get(key) {
            fields.0.push((key.to_string(), v.to_string()));
        }
    }
    let code_ok = |scene: &str, code: &str| w.shared.google_code(client, scene, code);
    let target = Target::check(cfg, &fields, filename, &code_ok)?;
    Ok(target.path_under_scene(cfg)?)
}

/// `Upload-Length` xor `Upload-Defer-Length: 1`.
fn length_of(cfg: &Config, req: &Request<'_>) -> Result<Option<u64>, TusError> {
    match (
        header(req, "upload-length"),
        header(req, "upload-defer-length"),
    ) {
        (Some(l), None) => {
            let l = protocol::parse_u64(l).ok_or_else(|| bad("invalid Upload-Length"))?;
            check_length(cfg, l).map(Some)
        }
        (None, Some("1")) => Ok(None),
        (None, Some(_)) => Err(bad("Upload-Defer-Length must be 1")),
        (None, None) => Err(bad("Upload-Length or Upload-Defer-Length: 1 is required")),
        (Some(_), Some(_)) => Err(bad(
            "Upload-Length and Upload-Defer-Length are mutually exclusive",
        )),
    }
}

/// A new upload's id, counted among `client`'s unfinished uploads (`state::claim`), or
/// `TooMany` when it holds its share (or all clients the total).
fn new_claimed_id(cfg: &Config, client: std::net::IpAddr) -> Result<String, TusError> {
    let id = state::new_id();
    let max = cfg.tus_uploads_per_client_max;
    if !state::claim(&id, client, max, cfg.access.is_admin(client)) {
        return Err(TusError::TooMany(max));
    }
    Ok(id)
}

/// POST: creation (and creation-with-upload). Everything is validated before anything is
/// stored.
async fn create(w: &Worker, req: &mut Request<'_>) -> Result<Response, TusError> {
    let cfg = w.config();
    read_only(&cfg)?;
    let concat = header(req, "upload-concat")
        .map(|v| protocol::parse_concat(v, &endpoint(&cfg)))
        .transpose()?;
    let with_upload = req.content_length() != Some(0);
    let length = match concat {
        // Its length is its partial uploads', and it takes no bytes of its own.
        Some(Concat::Final(_)) if with_upload => return Err(TusError::ModifyFinal),
        Some(Concat::Final(_)) => None,
        _ => length_of(&cfg, req)?,
    };
    let raw_metadata = header(req, "upload-metadata").unwrap_or("").to_string();
    let metadata = protocol::parse_metadata(&raw_metadata)?;
    if let Some(url) = callback_url(&metadata) {
        callback::check(&cfg, url).map_err(|why| ApiError::fail(400, why))?;
    }
    if with_upload && !protocol::is_offset_octet_stream(header(req, "content-type")) {
        return Err(TusError::MediaType);
    }
    if !cfg.auth_url.is_empty() {
        // The `auth_token` metadata key (Uppy's `setMeta({auth_token})`), else the header.
        let token = metadata
            .iter()
            .find(|(k, v)| k == "auth_token" && !v.trim().is_empty())
            .map(|(_, v)| v.trim().to_string())
            .or_else(|| crate::auth::token(req));
        let Some(token) = token else {
            return Err(ApiError::fail(401, NO_AUTH_TOKEN).into());
        };
        if !crate::auth::allowed_token(w, req, token, &metadata).await {
            return Err(crate::auth::fail().into());
        }
    }
    let checksum = checksum_of(req)?;
    let client = w.client_of(req);
    let target = target_of(w, client, &metadata)?;
    if let Some(Concat::Final(parts)) = concat {
        return create_final(w, req, parts, raw_metadata, target).await;
    }
    if let Some(length) = length {
        // Checked, not claimed: its bytes are claimed by the PATCHes that bring them.
        crate::store::space::check(w.dir(), length).await?;
    }
    let id = new_claimed_id(&cfg, client)?;
    let fresh = Info {
        id: id.clone(),
        length,
        offset: 0,
        metadata: raw_metadata,
        target,
        created: state::now(),
        expires: state::now() + lifetime_s(&cfg),
        completed: None,
        client: Some(client),
        concat,
    };
    let created = create_state(w, req, fresh, checksum).await;
    if created.as_ref().is_ok_and(|i| i.completed.is_some()) || created.is_err() {
        state::release(&id);
    }
    let info = created?;
    let mut r = Response::new(201);
    r.set("Location", location(&cfg, req, &info.id));
    if with_upload {
        r.set("Upload-Offset", info.offset.to_string());
    }
    progress_headers(&mut r, &info);
    Ok(r)
}

/// Concatenation: the final upload of the whole partial uploads `parts`, in their order. It
/// is complete (a stored file, like any finished upload) when the 201 answers; the partial
/// uploads are gone then (their bytes are the final upload's).
async fn create_final(
    w: &Worker,
    req: &Request<'_>,
    parts: Vec<String>,
    metadata: String,
    target: Target,
) -> Result<Response, TusError> {
    let cfg = w.config();
    // Each partial upload held until it is removed: no PATCH, termination or other final
    // upload uses it meanwhile.
    let mut locks = Vec::with_capacity(parts.len());
    let mut sized = Vec::with_capacity(parts.len());
    let mut length = 0u64;
    for id in &parts {
        locks.push(Lock::try_take(id).ok_or(TusError::Locked)?);
        let info = live(w, id).await?;
        if info.concat != Some(Concat::Partial) {
            return Err(TusError::NotPartial(
                "an upload named is not a partial upload",
            ));
        }
        let part = match info.length {
            Some(l) if l == info.offset => l,
            _ => return Err(TusError::NotPartial("a partial upload is not finished")),
        };
        length = length.checked_add(part).ok_or(TusError::TooLarge)?;
        sized.push((id.clone(), part));
    }
    let length = check_length(&cfg, length)?;
    if let Some(declared) = header(req, "upload-length") {
        if protocol::parse_u64(declared) != Some(length) {
            return Err(bad("Upload-Length is not the total of the partial uploads"));
        }
    }
    // Held until the parts are joined and stored (the copy's writes are not metered: the
    // claim is given back whole when the final upload is done), within the client's share.
    let _claim = crate::store::space::admit_as(w.dir(), length, w.space_share(req)).await?;
    let client = w.client_of(req);
    let id = new_claimed_id(&cfg, client)?;
    let _lock = Lock::try_take(&id).expect("a new random id is free");
    let mut info = Info {
        id,
        length: Some(length),
        offset: 0,
        metadata,
        target,
        created: state::now(),
        expires: state::now() + lifetime_s(&cfg),
        completed: None,
        client: Some(client),
        concat: Some(Concat::Final(parts)),
    };
    let made = transfer::concatenate(w, &mut info, &sized).await;
    state::release(&info.id);
    made?;
    for (id, _) in &sized {
        if let Err(e) = state::remove(w.dir(), id).await {
            tracing::warn!(%id, cause = %e, "tus: a concatenated partial upload stays until it expires");
        }
        state::release(id);
    }
    drop(locks);
    let mut r = Response::new(201);
    r.set("Location", location(&cfg, req, &info.id));
    progress_headers(&mut r, &info);
    Ok(r)
}

/// Creates the upload's durable state and takes in the body of a creation-with-upload.
async fn create_state(
    w: &Worker,
    req: &mut Request<'_>,
    mut info: Info,
    checksum: Option<protocol::Checksum>,
) -> Result<Info, TusError> {
    let with_upload = req.content_length() != Some(0);
    let _lock = Lock::try_take(&info.id).expect("a new random id is free");
    state::create_data(w.dir(), &info.id).await?;
    if let Err(e) = state::save(w.dir(), &info).await {
        let _ = state::remove(w.dir(), &info.id).await;
        return Err(e.into());
    }
    if with_upload {
        if let Err(e) = receive_and_advance(w, req, &mut info, checksum, false).await {
            // The client never learns this upload's URL: nobody could resume it.
            let _ = state::remove(w.dir(), &info.id).await;
            return Err(e);
        }
    }
    Ok(info)
}

/// Streams the body into the upload and records the new offset (or completion). A body cut
/// short keeps what arrived, then reports why it ended.
async fn receive_and_advance(
    w: &Worker,
    req: &mut Request<'_>,
    info: &mut Info,
    checksum: Option<protocol::Checksum>,
    length_declared: bool,
) -> Result<(), TusError> {
    let mut received = transfer::receive(w, req, info, checksum).await?;
    let cut = received.cut.take();
    transfer::advance(w, info, received, length_declared).await?;
    match cut {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// `Upload-Expires` and, once complete, where the stored file is.
fn progress_headers(r: &mut Response, info: &Info) {
    let expires = std::time::UNIX_EPOCH + Duration::from_secs(info.expires.max(0) as u64);
    r.set("Upload-Expires", httpdate::fmt_http_date(expires));
    if let Some(done) = &info.completed {
        r.set("X-Fastdfs-Md5", done.md5.clone());
        r.set("X-Fastdfs-Url", done.url.clone());
    }
}

async fn head(w: &Worker, id: &str) -> Result<Response, TusError> {
    let info = live(w, id).await?;
    // Unfinished, with its data gone: a crash right after the completion stored the file
    // (it is indexed; a new upload of it is a dedup hit). Gone for HEAD as for PATCH, so a
    // client starts over instead of resuming into a 404.
    if info.completed.is_none() && !state::data_path(w.dir(), id).exists() {
        if let Some(_lock) = Lock::try_take(id) {
            let _ = state::remove(w.dir(), id).await;
            state::release(id);
        }
        return Err(TusError::DataMissing);
    }
    let mut r = Response::new(200);
    r.set("Upload-Offset", info.offset.to_string());
    match info.length {
        Some(l) => r.set("Upload-Length", l.to_string()),
        None => r.set("Upload-Defer-Length", "1"),
    }
    if !info.metadata.is_empty() {
        r.set("Upload-Metadata", info.metadata.clone());
    }
    if let Some(concat) = &info.concat {
        r.set(
            "Upload-Concat",
            protocol::concat_header(concat, &endpoint(&w.config())),
        );
    }
    r.set("Cache-Control", "no-store");
    progress_headers(&mut r, &info);
    Ok(r)
}

async fn patch(w: &Worker, req: &mut Request<'_>, id: &str) -> Result<Response, TusError> {
    let cfg = w.config();
    if !protocol::is_offset_octet_stream(header(req, "content-type")) {
        return Err(TusError::MediaType);
    }
    let given = header(req, "upload-offset")
        .and_then(protocol::parse_u64)
        .ok_or_else(|| bad("missing or invalid Upload-Offset"))?;
    let checksum = checksum_of(req)?;
    read_only(&cfg)?;
    let _lock = Lock::try_take(id).ok_or(TusError::Locked)?;
    // Read under the lock: a PATCH that just finished has saved its offset.
    let mut info = live(w, id).await?;
    if matches!(info.concat, Some(Concat::Final(_))) {
        return Err(TusError::ModifyFinal);
    }
    if given != info.offset {
        return Err(TusError::Offset {
            given,
            actual: info.offset,
        });
    }
    let declared = declare_length(&cfg, req, &mut info)?;
    if let (true, Some(length)) = (declared, info.length) {
        crate::store::space::check(w.dir(), length - info.offset).await?;
    }
    if info.completed.is_some() {
        if req.content_length() != Some(0) {
            return Err(TusError::TooLarge);
        }
    } else {
        let result = receive_and_advance(w, req, &mut info, checksum, declared).await;
        if let Err(TusError::DataMissing) = result {
            let _ = state::remove(w.dir(), id).await;
            state::release(id);
        }
        result?;
        if info.completed.is_some() {
            state::release(id);
        }
    }
    let mut r = Response::new(204);
    r.set("Upload-Offset", info.offset.to_string());
    progress_headers(&mut r, &info);
    Ok(r)
}

/// creation-defer-length: a PATCH may carry the `Upload-Length` that creation deferred.
/// True when it set the length now.
fn declare_length(cfg: &Config, req: &Request<'_>, info: &mut Info) -> Result<bool, TusError> {
    let Some(value) = header(req, "upload-length") else {
        return Ok(false);
    };
    let length = protocol::parse_u64(value).ok_or_else(|| bad("invalid Upload-Length"))?;
    match info.length {
        Some(known) if known == length => Ok(false),
        Some(_) => Err(bad("Upload-Length cannot change")),
        None if length < info.offset => Err(bad("Upload-Length is below the upload's offset")),
        None => {
            info.length = Some(check_length(cfg, length)?);
            Ok(true)
        }
    }
}

/// DELETE (termination): the upload and its partial data are removed. The stored file of a
/// completed upload stays (deleting stored files is `G/delete`).
async fn terminate(w: &Worker, id: &str) -> Result<Response, TusError> {
    read_only(&w.config())?;
    let _lock = Lock::try_take(id).ok_or(TusError::Locked)?;
    live(w, id).await?;
    state::remove(w.dir(), id).await?;
    state::release(id);
    Ok(Response::new(204))
}

/// The endpoint's path (`/group1/big/upload`): what upload URLs start with.
fn endpoint(cfg: &Config) -> String {
    format!("{}{ROUTE}", cfg.prefix())
}

/// Absolute URL of an upload from the request's Host, as tusd builds it; `X-Forwarded-Host`,
/// `X-Forwarded-Proto` and `Forwarded` count only from a trusted proxy. A missing or odd Host
/// falls back to this node's `host`.
fn location(cfg: &Config, req: &Request<'_>, id: &str) -> String {
    let path = format!("{}/{id}", endpoint(cfg));
    let trusted = cfg.access.is_trusted_proxy(req.peer.ip());
    let forwarded = header(req, "forwarded").filter(|_| trusted);
    let param = |name: &str| {
        forwarded?
            .split(',')
            .next()?
            .split(';')
            .filter_map(|kv| kv.trim().split_once('='))
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.trim_matches('"'))
    };
    let host = header(req, "x-forwarded-host")
        .filter(|_| trusted)
        .or_else(|| param("host"))
        .or_else(|| req.head.host().map(str::trim))
        .filter(|h| valid_host(h));
    let proto = header(req, "x-forwarded-proto")
        .filter(|_| trusted)
        .or_else(|| param("proto"))
        .filter(|p| *p == "http" || *p == "https")
        .unwrap_or(if cfg.enable_https { "https" } else { "http" });
    match host {
        Some(h) => format!("{proto}://{h}{path}"),
        None => format!("{}{path}", cfg.host),
    }
}

/// A Host value made of host-name/IP literal characters and a port only.
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 255
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
}

/// Removes expired uploads (and a crash's orphan data files) every half lifetime, at most
/// every minute; runs on one executor until shutdown.
pub async fn expire_loop(w: Rc<Worker>) {
    // The first pass right away: it also counts the unfinished uploads per client again.
    if let Err(e) = sweep(&w, lifetime_s(&w.config())).await {
        tracing::warn!(cause = %e, "tus: expiry sweep failed");
    }
    loop {
        let lifetime = lifetime_s(&w.config());
        let every = Duration::from_secs((lifetime as u64 / 2).clamp(1, SWEEP_EVERY_S_MAX));
        let wake = std::time::Instant::now() + every;
        while std::time::Instant::now() < wake {
            if w.shutting_down() {
                return;
            }
            glommio::timer::sleep(SWEEP_TICK).await;
        }
        match sweep(&w, lifetime).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(removed = n, "tus: expired uploads removed"),
            Err(e) => tracing::warn!(cause = %e, "tus: expiry sweep failed"),
        }
    }
}

/// One pass over `files/_big/`; returns the number of uploads removed.
async fn sweep(w: &Worker, lifetime: i64) -> std::io::Result<usize> {
    let root = w.dir().to_path_buf();
    let now = state::now();
    let stale = glommio::executor()
        .spawn_blocking(move || state::scan(&root, now, lifetime))
        .await?;
    let mut removed = 0;
    for (id, orphan) in stale
        .expired
        .iter()
        .map(|id| (id, false))
        .chain(stale.orphans.iter().map(|id| (id, true)))
    {
        // An upload being written is not stale; check again under its lock.
        let Some(_lock) = Lock::try_take(id) else {
            continue;
        };
        let still_stale = match state::load(w.dir(), id).await {
            Ok(Some(info)) => !orphan && info.expired(state::now()),
            Ok(None) => true,
            Err(e) => e.kind() == std::io::ErrorKind::InvalidData,
        };
        if still_stale {
            state::remove(w.dir(), id).await?;
            state::release(id);
            removed += 1;
        }
    }
    for (id, client) in &stale.unfinished {
        state::note(id, *client);
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(route("/big/upload"), Some(""));
        assert_eq!(route("/big/upload/"), Some(""));
        assert_eq!(route("/big/upload/abc"), Some("abc"));
        assert_eq!(route("/big/uploads"), None);
        assert_eq!(route("/upload"), None);
    }

    #[test]
    fn hosts() {
        assert!(valid_host("example.com:8080"));
        assert!(valid_host("[::1]:80"));
        assert!(!valid_host("evil.com/x"));
        assert!(!valid_host("a b"));
        assert!(!valid_host(""));
    }

    #[test]
    fn error_statuses() {
        let status = |e: TusError| ApiError::from(e).status();
        assert_eq!(status(TusError::Version), 412);
        assert_eq!(
            status(TusError::Offset {
                given: 1,
                actual: 2
            }),
            409
        );
        assert_eq!(status(TusError::ChecksumMismatch), 460);
        assert_eq!(status(TusError::Locked), 423);
        assert_eq!(status(TusError::MediaType), 415);
        assert_eq!(status(ApiError::fail(403, "x").into()), 403);
    }
}
