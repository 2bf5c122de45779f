//! Placement, the domain rules of storing an upload: where a file lands and who may write
//! there (`Target::check`: names, the dated tree, scenes, Google codes, extensions), under which
//! name and record (`Target::place`), how it is committed (`commit`: rename into place and
//! index in one durable step, or the dedup hit), and what the client is told (`file_result`,
//! `download_path`). Multipart uploads (`api::upload`), tus completions and replication use
//! these rules; HTTP handlers only translate.

use crate::config::Config;
use crate::error::ApiError;
use crate::guesses::Refusal;
use crate::http::params::Params;
use crate::http::query::push_segment;
use crate::json::{FileInfo, FileResult};
use crate::store::meta::{self, Inserted, Staged};
use crate::store::write;
use crate::store::{haystack, names};
use crate::worker::Worker;

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
    /// name against the configuration; `code_ok` judges a scene's Google code
    /// (`Shared::google_code`, which bounds a client's wrong guesses).
    pub fn check(
        cfg: &Config,
        p: &Params,
        client_name: &str,
        code_ok: &dyn Fn(&str, &str) -> Result<(), Refusal>,
    ) -> Result<Target, ApiError> {
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
        // scene has a secret (go-fastdfs skipped it then: docs/DEFECTS.md #15).
        let wrong_code = || ApiError::fail(401, "invalid request,error google code");
        code_ok(&scene, p.str("code")).map_err(|r| ApiError::from_guess(r, wrong_code()))?;
        // A custom path writes into the namespace of its first directory: when that is a scene
        // with a secret, its code is needed whatever the `scene` field says.
        let namespace = custom_dir.as_deref().and_then(names::namespace_of);
        if let Some(ns) = namespace.filter(|ns| *ns != scene) {
            code_ok(ns, p.str("code")).map_err(|r| ApiError::from_guess(r, wrong_code()))?;
        }
        let target = Target {
            scene,
            custom_dir,
            name: names::upload_name(client_name, cfg.enable_trim_file_name_special_char),
            extension: names::extension(client_name),
            rename: p.str("filename").to_string(),
        };
        let name = target.name_for(DIGEST_PLACEHOLDER);
        names::check_name(&name)
            .map_err(|e| ApiError::fail(400, format!("invalid file name: {e}")))?;
        if !extension_allowed(cfg, &name) {
            return Err(ApiError::fail(403, "(error)file extension mismatch"));
        }
        if !target.rename.is_empty() {
            names::check_name(&target.rename)
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

    /// A tus upload's target: go-fastdfs places its `path` under the upload's scene,
    /// `files/<scene>/<path>` (a multipart upload's is `files/<path>`); the landing checks are
    /// redone for that directory.
    pub fn path_under_scene(mut self, cfg: &Config) -> Result<Target, ApiError> {
        let Some(dir) = self.custom_dir.take() else {
            return Ok(self);
        };
        let rest = dir
            .strip_prefix("files/")
            .expect("a custom dir is under files/");
        let dir = format!("files/{}/{rest}", self.scene);
        let name = self.name_for(DIGEST_PLACEHOLDER);
        for stored in [&name, &self.rename].into_iter().filter(|n| !n.is_empty()) {
            names::check_landing(&dir, stored, &cfg.peer_id)
                .map_err(|e| ApiError::fail(400, format!("invalid path: {e}")))?;
        }
        self.custom_dir = Some(dir);
        Ok(self)
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
            rename = format!(
                "{}{}",
                meta::md5_hex(&crate::codec::random_hex(16)),
                names::extension(&name)
            );
        }
        expect_md5(expected_md5, digest)?;
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
            offset: crate::json::OFFSET_PLAIN,
            s3: None,
        };
        let dedup = cfg.enable_distinct_file;
        if !dedup {
            info.md5 = meta::md5_hex(&info.rel_path());
        }
        Ok(Plan { info, dir, dedup })
    }
}

/// The client's `md5` field, when given, must name the content (go-fastdfs' message).
fn expect_md5(expected: &str, digest: &str) -> Result<(), ApiError> {
    if !expected.is_empty() && !expected.eq_ignore_ascii_case(digest) {
        return Err(ApiError::fail(400, " fileInfo.Md5 and md5sum !="));
    }
    Ok(())
}

/// Whether an upload of `size` bytes is merged into a small-file container.
pub fn merges(cfg: &Config, size: u64) -> bool {
    cfg.enable_merge_small_file && size > 0 && size < haystack::SMALL_FILE_BYTES_MAX
}

/// Stores a small upload inside this executor's container (`store::haystack`): checked like
/// any upload, answered by dedup when the content is known, else appended (fdatasynced with
/// the batch it joined) and then indexed. The record is go-fastdfs' merged record: `path`
/// `files/haystack/<peer_id>`, `rename` the locator, `size` the content + 1, `offset` the
/// marker's position.
pub async fn commit_merged(
    w: &Worker,
    target: &Target,
    content: bytes::Bytes,
    digest: String,
    expected_md5: &str,
) -> Result<FileInfo, ApiError> {
    let cfg = w.config();
    expect_md5(expected_md5, &digest)?;
    assert!(merges(&cfg, content.len() as u64), "a small file");
    let dedup = cfg.enable_distinct_file;
    if dedup {
        if let Some(existing) = w.meta().get_live(&digest)? {
            w.metrics().upload(existing.size as u64, true);
            return Ok(existing);
        }
    }
    let name = target.name_for(&digest);
    let ext = name.rfind('.').map_or("", |i| &name[i..]).to_string();
    let size = content.len() as u64 + 1;
    let dir = haystack::dir_of(&cfg.peer_id);
    // Written, not fdatasynced: the metadata journal holds the bytes durably with the record
    // (store::meta::journal) until the container is fdatasynced.
    // Held until the record is inserted: compaction waits for it before it decides that
    // nothing points into the container any more.
    let (at, _hold) = w
        .haystack
        .append(
            &w.dir().join(&dir),
            w.id,
            w.shared.workers,
            content.clone(),
            haystack::Durability::Written,
        )
        .await?;
    let mut info = FileInfo {
        name,
        rename: haystack::locator(at, size, &ext),
        path: dir,
        md5: digest,
        size: size as i64,
        peers: Some(vec![cfg.host.clone()]),
        scene: target.scene.clone(),
        time_stamp: chrono::Local::now().timestamp(),
        offset: at.offset as i64,
        s3: None,
    };
    if !dedup {
        info.md5 = meta::md5_hex(&info.rel_path());
    }
    let notify = cfg.peers.clone();
    match w.meta().insert_merged(info, content, dedup, notify).await? {
        // A concurrent upload of the same content won: these bytes stay dead.
        Inserted::New(info) | Inserted::Existing(info) => {
            w.metrics().upload(info.size as u64, false);
            Ok(info)
        }
        Inserted::Tombstoned => {
            Err(meta::MetaError::Corrupt("a local upload was refused by a tombstone".into()).into())
        }
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

impl Plan {
    /// The plan with the stored name in `rename` too (when no `filename` set it): go-fastdfs
    /// records a tus upload so, its `name` the client's and `rename` the file's.
    pub fn renamed_as_stored(mut self) -> Plan {
        if self.info.rename.is_empty() {
            self.info.rename = self.info.name.clone();
        }
        self
    }
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
    let origin = meta::Origin::Local {
        notify: w.config().peers.clone(),
    };
    let inserted = w
        .meta()
        .insert(plan.info, Some(staged), plan.dedup, origin)
        .await;
    match inserted {
        Ok(Inserted::New(info)) => {
            written.moved();
            w.metrics().upload(info.size as u64, false);
            if !plan.dedup {
                w.shared.invalidate_caches();
            }
            Ok(info)
        }
        Ok(Inserted::Existing(info)) => {
            write::discard(written).await;
            w.metrics().upload(info.size as u64, true);
            Ok(info)
        }
        failed => {
            match on_failure {
                OnFailure::Discard => write::discard(written).await,
                OnFailure::Keep => written.release(),
            }
            Err(match failed {
                Err(e) => e.into(),
                // Tombstones refuse only copies from peers (Origin::Peer), never an upload.
                _ => meta::MetaError::Corrupt("a local upload was refused by a tombstone".into())
                    .into(),
            })
        }
    }
}

/// The download path of a record without domain: `/[group/]<path minus files/>/<name>`, each
/// segment escaped (`escape_segment`) so that the URL serves exactly this file.
pub fn download_path(cfg: &Config, info: &FileInfo) -> String {
    record_path(cfg, info, true)
}

/// `download_path`, escaped or as stored. The upload answer's `path` and `src` are as stored
/// (as go-fastdfs gives them: clients pass them back as `path=` parameters); its `url` is
/// escaped.
fn record_path(cfg: &Config, info: &FileInfo, escaped: bool) -> String {
    let rel = info
        .path
        .strip_prefix("files/")
        .unwrap_or(info.path.trim_start_matches("files"));
    let mut out = String::with_capacity(rel.len() + info.name.len() + cfg.group.len() + 16);
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
        if escaped {
            push_segment(&mut out, seg);
        } else {
            out.push_str(seg);
        }
    }
    out
}

/// The upload answer (FileResult, docs/PROTOCOL.md §1) for a record.
pub fn file_result(cfg: &Config, info: &FileInfo) -> FileResult {
    let path = record_path(cfg, info, false);
    let domain = cfg.domain().to_string();
    let mut url = String::with_capacity(domain.len() + path.len() + info.name.len() + 24);
    url.push_str(&domain);
    url.push_str(&download_path(cfg, info));
    if cfg.default_download {
        url.push_str("?name=");
        crate::http::query::push_name_escaped(&mut url, &info.name);
        url.push_str("&download=1");
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
