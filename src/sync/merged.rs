//! Receiving a merged small file from a peer (go-fastdfs' protocol: the peer serves the
//! content without its marker at the file's URL). It is written at the same offset of the same
//! container as on the origin (`files/haystack/<origin peer_id>/<N>`, a sparse file here), so
//! its URL is the same on every node; then its record is committed as announced.

use super::failure::FetchError;
use super::READ_THROUGH_HEADER;
use crate::json::FileInfo;
use crate::store::haystack;
use crate::store::meta::{Inserted, Origin};
use crate::worker::Worker;
use std::time::{Duration, Instant};

/// Largest container offset accepted from a peer (a bound on the sparse file it creates).
const OFFSET_MAX: u64 = 1 << 40;

/// Checks that a merged announcement names a container of another node, with a locator that
/// agrees with the record.
fn check(w: &Worker, info: &FileInfo, offset: u64) -> Result<u64, String> {
    let own = haystack::dir_of(&w.config().peer_id);
    let Some(origin) = info.path.strip_prefix("files/haystack/") else {
        return Err("a merged file outside files/haystack/".into());
    };
    if origin.contains('/') || info.path == own {
        return Err("merged file not in another node's container directory".into());
    }
    let l = haystack::Locator::parse(info.stored_name()).ok_or("bad locator")?;
    let agrees = l.offset == offset && i64::try_from(l.size).ok() == Some(info.size);
    if !agrees || offset > OFFSET_MAX || info.size < 1 {
        return Err("locator does not match the record".into());
    }
    if info.size as u64 > haystack::SMALL_FILE_BYTES_MAX {
        return Err("merged file too large".into());
    }
    Ok(l.container)
}

/// Fetches the content from the first source that has it, writes it into the container and
/// commits the record.
pub(super) async fn fetch(
    w: &Worker,
    info: FileInfo,
    offset: u64,
    sources: &[String],
    budget: Option<Duration>,
) -> Result<(), FetchError> {
    let n = check(w, &info, offset).map_err(FetchError::Refused)?;
    let deadline = Instant::now() + budget.unwrap_or(Duration::from_secs(30));
    let mut failed = None;
    for src in sources {
        match get(w, src, &info, deadline).await {
            Ok(content) => return store(w, info, n, offset, content).await,
            Err(e) => failed = Some(FetchError::then(failed, e)),
        }
    }
    Err(failed.unwrap_or_else(|| FetchError::Refused("no peer to fetch from".into())))
}

/// The content (without the marker) from `src`, size and digest checked.
async fn get(
    w: &Worker,
    src: &str,
    info: &FileInfo,
    deadline: Instant,
) -> Result<bytes::Bytes, FetchError> {
    let cfg = w.config();
    let path = crate::http::query::ascii_url(&crate::placement::download_path(&cfg, info));
    let timeout = deadline.saturating_duration_since(Instant::now());
    let limit = info.size as usize - 1;
    let req_path = path.clone();
    let reply = w
        .sync
        .pool
        .get_with(
            src,
            &req_path,
            &[(READ_THROUGH_HEADER, "1")],
            timeout,
            limit,
        )
        .await
        .map_err(|e| match crate::client::peer::too_large(&e) {
            // More bytes than the record's: other content, as fewer would be.
            Some(t) if t.status == 200 => {
                FetchError::OtherContent(format!("more than {limit} bytes"))
            }
            // A longer answer than the file's that is not the file (a 404 page): its status.
            Some(t) => FetchError::status(t.status, format!("{src}{path}")),
            None => FetchError::transport(src, e),
        })?;
    if reply.status != 200 {
        return Err(FetchError::status(reply.status, format!("{src}{path}")));
    }
    verify(&cfg, info, &reply.body)?;
    Ok(reply.body)
}

/// The content (without the marker) against the record: its size, and with dedup on its
/// digest.
fn verify(cfg: &crate::config::Config, info: &FileInfo, content: &[u8]) -> Result<(), FetchError> {
    let want = info.size as usize - 1;
    if content.len() != want {
        return Err(FetchError::OtherContent(format!(
            "size {} instead of {want}",
            content.len()
        )));
    }
    let mut h = crate::store::write::Hasher::new(cfg.use_sha1());
    h.update(content);
    let path_named = info.md5 == crate::store::meta::path_key(&info.rel_path());
    if cfg.enable_distinct_file && !path_named && h.hex() != info.md5 {
        return Err(FetchError::OtherContent(
            "content digest differs from the announced md5".into(),
        ));
    }
    Ok(())
}

/// Stores a merged file whose content a peer sent with its announcement (`batch`).
pub(super) async fn accept(
    w: &Worker,
    info: FileInfo,
    offset: u64,
    content: bytes::Bytes,
) -> Result<(), FetchError> {
    let n = check(w, &info, offset).map_err(FetchError::Refused)?;
    verify(&w.config(), &info, &content)?;
    store(w, info, n, offset, content).await
}

async fn store(
    w: &Worker,
    info: FileInfo,
    n: u64,
    offset: u64,
    content: bytes::Bytes,
) -> Result<(), FetchError> {
    let container = w.dir().join(&info.path).join(n.to_string());
    let written = glommio::executor()
        .spawn_blocking(move || haystack::write_at(&container, offset, &content, true))
        .await;
    written.map_err(FetchError::Disk)?;
    let dedup = w.config().enable_distinct_file;
    match w.meta().insert(info, None, dedup, Origin::Peer).await {
        Ok(Inserted::New(info)) => {
            w.metrics().sync_received(info.size as u64);
            Ok(())
        }
        Ok(_) => Ok(()),
        Err(e) => Err(e.into()),
    }
}
