//! `G/upload`: multipart upload streamed to disk with its digest computed in the same pass,
//! made durable and indexed before the answer (SPEC.md §7.2, §8), and the GET "second-pass"
//! lookup by md5.

use super::{file_result, Params};
use crate::config::Config;
use crate::error::ApiError;
use crate::http::multipart::{self, Event, Parser};
use crate::http::{Request, Response};
use crate::json::{self, FileInfo};
use crate::server::Worker;
use crate::store::meta::{self, Op, OpResult, Staged};
use crate::store::names;
use crate::store::write::{self, TempFile};

/// Largest text field of an upload form.
const FIELD_BYTES_MAX: usize = 64 * 1024;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Output {
    Text,
    Json,
    Json2,
}

fn output_of(p: &Params) -> Result<Output, ApiError> {
    match p.get("output").unwrap_or("text") {
        "" | "text" => Ok(Output::Text),
        "json" => Ok(Output::Json),
        "json2" => Ok(Output::Json2),
        _ => Err(ApiError::fail(
            400,
            "output just support json or text or json2",
        )),
    }
}

pub async fn handle(w: &Worker, req: &mut Request<'_>) -> Result<Response, ApiError> {
    match req.head.method() {
        "POST" => upload(w, req).await,
        "OPTIONS" => Ok(Response::new(200)),
        _ => {
            let p = super::read_params(req).await?;
            if !w.config().auth_url.is_empty() && !crate::auth::allowed(w, req, &p.0).await {
                return Err(auth_fail());
            }
            second_pass(w, &p)
        }
    }
}

/// go-fastdfs' upload answer to a failed auth_url check (status left empty, as it does).
pub fn auth_fail() -> ApiError {
    ApiError::Envelope {
        http: 401,
        status: "",
        message: "auth fail".into(),
    }
}

/// GET `upload?md5=..`: answer from the index without any body (SPEC.md §7.2).
fn second_pass(w: &Worker, p: &Params) -> Result<Response, ApiError> {
    let cfg = w.config();
    let md5 = p.str("md5");
    if md5.is_empty() {
        return Err(ApiError::fail(
            400,
            "(error) if you want to upload fast md5 is require,and if you want to upload file,you must use post method  ",
        ));
    }
    let found = w.meta().get_live(md5)?;
    let result = found.as_ref().map(|i| file_result(&cfg, i));
    Ok(match (p.get("output").unwrap_or("text"), result) {
        ("json", r) => Response::text(
            if r.is_some() { 200 } else { 404 },
            json::compact(&r.unwrap_or_default()),
        ),
        ("json2", Some(r)) => Response::text(200, json::pretty(&json::envelope("ok", "", Some(r)))),
        ("json2", None) => {
            Response::text(404, json::pretty(&json::envelope::<()>("fail", "", None)))
        }
        (_, Some(r)) => Response::text(200, r.url),
        (_, None) => Response::text(404, ""),
    })
}

/// What the multipart body carried.
struct Form {
    fields: Params,
    file: Option<(String, write::Written)>,
}

async fn read_form(w: &Worker, req: &mut Request<'_>, boundary: &[u8]) -> Result<Form, ApiError> {
    let cfg = w.config();
    let mut parser = Parser::new(boundary, multipart::Limits::default());
    let mut buf = bytes::BytesMut::new();
    let mut fields = Params::default();
    let mut file: Option<(String, write::Written)> = None;
    let mut tmp: Option<(String, TempFile)> = None;
    let mut field: Option<(String, Vec<u8>)> = None;
    let mut skipping = false;
    loop {
        let event = parser
            .next_event(&mut buf)
            .map_err(|e| ApiError::fail(400, format!("bad multipart body: {e}")))?;
        match event {
            None => match req.chunk().await? {
                Some(b) => buf.extend_from_slice(&b),
                None => {
                    parser
                        .finish()
                        .map_err(|e| ApiError::fail(400, format!("bad multipart body: {e}")))?;
                    break;
                }
            },
            Some(Event::PartStart(h)) => {
                skipping = false;
                let is_file = h.filename.as_deref().is_some_and(|f| !f.is_empty());
                if h.name == "file" && is_file && file.is_none() && tmp.is_none() {
                    let t = TempFile::create(w.dir(), cfg.use_sha1()).await?;
                    tmp = Some((h.filename.unwrap_or_default(), t));
                } else if is_file {
                    skipping = true; // other file parts are not stored
                } else {
                    field = Some((h.name, Vec::new()));
                }
            }
            Some(Event::Data(d)) => {
                if let Some((_, t)) = tmp.as_mut() {
                    t.write(&d).await?;
                } else if let Some((_, v)) = field.as_mut() {
                    if v.len() + d.len() > FIELD_BYTES_MAX {
                        return Err(ApiError::fail(413, "form field too large"));
                    }
                    v.extend_from_slice(&d);
                } else {
                    debug_assert!(skipping);
                }
            }
            Some(Event::PartEnd) => {
                if let Some((name, t)) = tmp.take() {
                    file = Some((name, t.finish().await?));
                }
                if let Some((k, v)) = field.take() {
                    fields.0.push((k, String::from_utf8_lossy(&v).into_owned()));
                }
            }
            Some(Event::End) => {
                // The epilogue is ignored, but the request body must still be consumed.
                while req.chunk().await?.is_some() {}
                break;
            }
        }
    }
    Ok(Form { fields, file })
}

async fn upload(w: &Worker, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let cfg = w.config();
    // Without a token the auth server is not even asked, and no byte of the body is stored.
    if !cfg.auth_url.is_empty() && crate::auth::token(req).is_none() {
        return Err(auth_fail());
    }
    if cfg.read_only {
        return Err(ApiError::fail(403, "(error) readonly"));
    }
    let boundary =
        multipart::boundary_from_content_type(req.head.header("content-type").unwrap_or(b""))
            .ok_or_else(|| ApiError::fail(400, "request Content-Type isn't multipart/form-data"))?;
    if cfg.upload_max_bytes > 0 {
        if let Some(n) = req.content_length() {
            if n > cfg.upload_max_bytes {
                return Err(ApiError::fail(
                    413,
                    format!("request body larger than {} bytes", cfg.upload_max_bytes),
                ));
            }
        }
        req.body_max = cfg.upload_max_bytes;
    }
    let form = read_form(w, req, &boundary).await?;
    let mut p = form.fields;
    p.push_query(req.head.query());
    if !cfg.auth_url.is_empty() && !crate::auth::allowed(w, req, &p.0).await {
        if let Some((_, written)) = form.file {
            write::discard(written).await;
        }
        return Err(auth_fail());
    }
    let Some((client_name, written)) = form.file else {
        return Err(ApiError::fail(400, "http: no such file"));
    };
    let planned = output_of(&p).and_then(|output| {
        let target = Target::check(&cfg, &p, &client_name)?;
        let plan = target.place(&cfg, &written.digest, written.size, p.str("md5"))?;
        Ok((output, plan))
    });
    let (output, plan) = match planned {
        Ok(planned) => planned,
        Err(e) => {
            write::discard(written).await;
            return Err(e);
        }
    };
    let info = commit(w, plan, written, OnFailure::Discard).await?;
    let result = file_result(&cfg, &info);
    Ok(match output {
        Output::Text => Response::text(200, result.url),
        Output::Json => Response::text(200, json::pretty(&result)),
        Output::Json2 => Response::text(200, json::pretty(&json::envelope("ok", "", Some(result)))),
    })
}

/// Where an upload goes, decided from the client's fields before its content is known: scene,
/// custom directory, file name and `filename` are validated (`names`), the scene whitelist,
/// Google code and extension whitelist checked. The same rules serve multipart uploads and tus
/// uploads (whose metadata is checked at creation and this kept in the upload's state).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Target {
    pub scene: String,
    /// `files/...` from the `path` field (with `enable_custom_path`), else the dated layout.
    pub custom_dir: Option<String>,
    /// The client's file name after trimming; empty = `<digest><extension>`.
    pub name: String,
    /// Extension of the client's file name, for the digest-named fallback.
    pub extension: String,
    /// The `filename` field: the stored name when set.
    pub rename: String,
}

/// A digest long enough for any algorithm, to validate digest-derived names before the digest
/// is known (names are checked for length and characters; hex digits never fail).
const DIGEST_PLACEHOLDER: &str = "0000000000000000000000000000000000000000";

impl Target {
    /// Validates the fields `scene`/`scenes`, `path`, `code`, `filename` and the client's file
    /// name against the configuration.
    pub fn check(cfg: &Config, p: &Params, client_name: &str) -> Result<Target, ApiError> {
        let custom_dir = if cfg.enable_custom_path {
            names::custom_dir(p.str("path"))
                .map_err(|e| ApiError::fail(400, format!("invalid path: {e}")))?
        } else {
            None
        };
        let scene = p
            .get("scene")
            .filter(|s| !s.is_empty())
            .or(p.get("scenes").filter(|s| !s.is_empty()));
        let scene = scene.unwrap_or(&cfg.default_scene).to_string();
        names::check_scene(&scene)
            .map_err(|e| ApiError::fail(400, format!("not valid scene: {e}")))?;
        if !cfg.scene_allowed(&scene) {
            return Err(ApiError::fail(400, "not valid scene"));
        }
        // Checked for the scene actually used, also when `scene` was omitted and the default
        // scene has a secret (go-fastdfs skipped it then: SPEC.md §15 item 15).
        if !cfg.google_code_ok(&scene, p.str("code")) {
            return Err(ApiError::fail(401, "invalid request,error google code"));
        }
        // A custom path writes into the namespace of its first directory: when that is a scene
        // with a secret, its code is needed whatever the `scene` field says.
        let namespace = custom_dir.as_deref().and_then(names::namespace_of);
        if let Some(ns) = namespace.filter(|ns| *ns != scene) {
            if !cfg.google_code_ok(ns, p.str("code")) {
                return Err(ApiError::fail(401, "invalid request,error google code"));
            }
        }
        let target = Target {
            scene,
            custom_dir,
            name: names::upload_name(client_name, cfg.enable_trim_file_name_special_char),
            extension: names::extension(client_name),
            rename: p.str("filename").to_string(),
        };
        let name = target.name_for(DIGEST_PLACEHOLDER);
        names::check_component(&name)
            .map_err(|e| ApiError::fail(400, format!("invalid file name: {e}")))?;
        if !extension_allowed(cfg, &name) {
            return Err(ApiError::fail(403, "(error)file extension mismatch"));
        }
        if !target.rename.is_empty() {
            names::check_component(&target.rename)
                .map_err(|e| ApiError::fail(400, format!("invalid filename: {e}")))?;
            if !extension_allowed(cfg, &target.rename) {
                return Err(ApiError::fail(403, "(error)file extension mismatch"));
            }
        }
        if let Some(dir) = &target.custom_dir {
            for stored in [&name, &target.rename]
                .into_iter()
                .filter(|n| !n.is_empty())
            {
                names::check_landing(dir, stored, &cfg.peer_id)
                    .map_err(|e| ApiError::fail(400, format!("invalid path: {e}")))?;
            }
        }
        Ok(target)
    }

    /// The file name: the client's, or `<digest><extension>` when it had none.
    fn name_for(&self, digest: &str) -> String {
        if self.name.is_empty() {
            format!("{digest}{}", self.extension)
        } else {
            self.name.clone()
        }
    }

    /// The record and directory of content with this digest and size (`expected_md5`, when
    /// not empty, must match the digest).
    pub fn place(
        &self,
        cfg: &Config,
        digest: &str,
        size: u64,
        expected_md5: &str,
    ) -> Result<Plan, ApiError> {
        let name = self.name_for(digest);
        let mut rename = self.rename.clone();
        if cfg.rename_file {
            let mut b = [0u8; 16];
            getrandom::getrandom(&mut b).expect("random");
            rename = format!(
                "{}{}",
                meta::md5_hex(&meta::hex(&b)),
                names::extension(&name)
            );
        }
        if !expected_md5.is_empty() && !expected_md5.eq_ignore_ascii_case(digest) {
            return Err(ApiError::fail(400, " fileInfo.Md5 and md5sum !="));
        }
        if size == 0 {
            return Err(ApiError::fail(400, "file size is zero"));
        }
        let now = chrono::Local::now();
        let dir = self
            .custom_dir
            .clone()
            .unwrap_or_else(|| names::default_dir(&self.scene, &cfg.peer_id, now));
        let mut info = FileInfo {
            name,
            rename,
            path: dir.clone(),
            md5: digest.to_string(),
            size: size as i64,
            peers: Some(vec![cfg.host.clone()]),
            scene: self.scene.clone(),
            time_stamp: now.timestamp(),
            offset: -1,
        };
        let dedup = cfg.enable_distinct_file;
        if !dedup {
            info.md5 = meta::md5_hex(&info.rel_path());
        }
        Ok(Plan { info, dir, dedup })
    }
}

fn extension_allowed(cfg: &Config, name: &str) -> bool {
    cfg.extensions.is_empty() || cfg.extensions.contains(&names::extension(name))
}

/// Where and under which names an upload will be stored; validated before anything moves.
pub struct Plan {
    info: FileInfo,
    dir: String,
    dedup: bool,
}

/// What becomes of the staged content when the commit fails.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnFailure {
    /// A temp file of this request: removed.
    Discard,
    /// Data the client can still complete from (a tus upload): kept where it was.
    Keep,
}

/// Moves the fsynced content into place and commits its record (or finds the existing record
/// of the same content, and removes the content). Returns the record to answer with.
pub async fn commit(
    w: &Worker,
    plan: Plan,
    written: write::Written,
    on_failure: OnFailure,
) -> Result<FileInfo, ApiError> {
    let staged = Staged {
        tmp: written.tmp.clone(),
        dir: plan.dir,
        name: plan.info.stored_name().to_string(),
        replace: !plan.dedup,
    };
    let op = Op::Insert {
        info: Box::new(plan.info),
        staged: Some(staged),
        dedup: plan.dedup,
        origin: meta::Origin::Local {
            notify: w.config().peers.clone(),
        },
    };
    match w.meta().submit(op).await {
        Ok(OpResult::Inserted(info)) => {
            written.moved();
            w.metrics().upload(info.size as u64, false);
            if !plan.dedup {
                w.shared.invalidate_caches();
            }
            Ok(info)
        }
        Ok(OpResult::Existing(info)) => {
            write::discard(written).await;
            w.metrics().upload(info.size as u64, true);
            Ok(info)
        }
        Ok(other) => unreachable!("insert answered {other:?}"),
        Err(e) => {
            match on_failure {
                OnFailure::Discard => write::discard(written).await,
                OnFailure::Keep => written.release(),
            }
            Err(e.into())
        }
    }
}
