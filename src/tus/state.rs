//! The durable state of tus uploads under `files/_big/` (an internal directory: never served,
//! never a scene or custom path):
//!
//! - `<id>.bin`: the bytes received so far, written at their offsets and fdatasynced before
//!   an offset is acknowledged. It may hold unacknowledged bytes past `offset` (a PATCH cut
//!   short, a checksum mismatch); they are overwritten by the next PATCH at `offset`.
//! - `<id>.info`: JSON [`Info`], replaced atomically (temp file, fsync, rename, directory
//!   fsync). It is the commit point: an upload exists iff its `.info` does, and its acknowledged
//!   offset is the one in `.info`.
//!
//! Storage contract: an offset or completion answered to a client survives `kill -9` and power
//! loss. A `.bin` without `.info` (a crash during creation) is removed by the expiry sweep once
//! older than the upload lifetime.
//!
//! Also here: the per-upload lock that keeps two requests from writing one upload at once.

use crate::placement::Target;
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// What is known of an upload; the content of `<id>.info`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Info {
    pub id: String,
    /// `Upload-Length`; None while deferred (creation-defer-length).
    pub length: Option<u64>,
    /// Bytes acknowledged so far.
    pub offset: u64,
    /// The `Upload-Metadata` header as the client sent it (echoed by HEAD).
    pub metadata: String,
    /// Where the file goes once complete, validated at creation.
    pub target: Target,
    /// Unix seconds.
    pub created: i64,
    /// Unix seconds after which the upload is gone (renewed by every PATCH).
    pub expires: i64,
    /// Set once the upload became a stored file.
    pub completed: Option<Completed>,
    /// The client address that created the upload (bounds unfinished uploads per client).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<std::net::IpAddr>,
    /// Concatenation: a partial upload (never a file of its own) or a final one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub concat: Option<super::protocol::Concat>,
}

/// The stored file an upload became.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Completed {
    pub md5: String,
    pub url: String,
}

impl Info {
    /// Invariants checked before writing and after reading back.
    fn check(&self, id: &str) -> io::Result<()> {
        let ok = self.id == id
            && super::protocol::valid_id(&self.id)
            && self.length.is_none_or(|l| self.offset <= l)
            && (self.completed.is_none() || self.length == Some(self.offset))
            && !(self.concat == Some(super::protocol::Concat::Partial) && self.completed.is_some());
        if ok {
            Ok(())
        } else {
            Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("tus upload {id}: inconsistent state"),
            ))
        }
    }

    pub fn expired(&self, now: i64) -> bool {
        self.expires <= now
    }
}

/// `files/_big` under the runtime dir.
pub fn dir(root: &Path) -> PathBuf {
    root.join("files").join("_big")
}

pub fn data_path(root: &Path, id: &str) -> PathBuf {
    dir(root).join(format!("{id}.bin"))
}

fn info_path(root: &Path, id: &str) -> PathBuf {
    dir(root).join(format!("{id}.info"))
}

/// Unix seconds now.
pub fn now() -> i64 {
    chrono::Utc::now().timestamp()
}

/// A new random upload id (32 hex digits).
pub fn new_id() -> String {
    crate::codec::random_hex(16)
}

/// Reads `<id>.info`; None when the upload does not exist.
pub async fn load(root: &Path, id: &str) -> io::Result<Option<Info>> {
    let path = info_path(root, id);
    let file = match glommio::io::BufferedFile::open(&path).await {
        Ok(f) => f,
        Err(e) => {
            let e = io::Error::from(e);
            return match e.kind() {
                io::ErrorKind::NotFound => Ok(None),
                _ => Err(e),
            };
        }
    };
    let read = async {
        let size = file.file_size().await?;
        // An info file is a few hundred bytes; anything large is not ours.
        if size > INFO_BYTES_MAX {
            return Err(glommio::GlommioError::from(io::Error::new(
                io::ErrorKind::InvalidData,
                "tus info file too large",
            )));
        }
        file.read_at(0, size as usize).await
    }
    .await;
    let _ = file.close().await;
    let bytes = read.map_err(io::Error::from)?;
    let info: Info = serde_json::from_slice(&bytes)
        .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
    info.check(id)?;
    Ok(Some(info))
}

/// The key under which the store's path index names the file a finished upload became, for
/// as long as that file lives (an upload's own `.info` goes when it expires): never a path's
/// key (those are 32 hex digits), so an upload id is never read as a path or md5. None for
/// what is not an upload id.
pub fn record_key(id: &str) -> Option<String> {
    super::protocol::valid_id(id).then(|| format!("tus:{id}"))
}

/// The md5 of the file a finished, unexpired upload became (go-fastdfs clients find a tus
/// upload's file with `get_file_info?md5=<upload id>`); None for anything else, a malformed
/// id included.
pub async fn finished_md5(root: &Path, id: &str) -> io::Result<Option<String>> {
    if !super::protocol::valid_id(id) {
        return Ok(None);
    }
    Ok(load(root, id)
        .await?
        .filter(|info| !info.expired(now()))
        .and_then(|info| info.completed)
        .map(|done| done.md5))
}

/// Largest `.info` file read (metadata is bounded by the request head limit).
const INFO_BYTES_MAX: u64 = 64 * 1024;

/// Replaces `<id>.info` durably (temp, fsync, rename, directory fsync) on the blocking pool.
pub async fn save(root: &Path, info: &Info) -> io::Result<()> {
    info.check(&info.id)?;
    let text = serde_json::to_vec(info).expect("Info serializes");
    let path = info_path(root, &info.id);
    glommio::executor()
        .spawn_blocking(move || {
            use std::io::Write;
            let tmp = path.with_extension("info.tmp");
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&text)?;
            f.sync_data()?;
            std::fs::rename(&tmp, &path)?;
            std::fs::File::open(path.parent().expect("info has a directory"))?.sync_all()
        })
        .await
}

/// Creates an empty `<id>.bin` (and `files/_big/` the first time), durably: the directories
/// whose entries changed are fsynced.
pub async fn create_data(root: &Path, id: &str) -> io::Result<()> {
    let path = data_path(root, id);
    glommio::executor()
        .spawn_blocking(move || {
            let dir = path.parent().expect("data has a directory");
            if !dir.is_dir() {
                std::fs::create_dir_all(dir)?;
                std::fs::File::open(dir.parent().expect("files/"))?.sync_all()?;
            }
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(&path)?;
            std::fs::File::open(dir)?.sync_all()
        })
        .await
}

/// Removes an upload: its `.info` first (the commit point), then its data (and the temp file
/// of an interrupted save).
pub async fn remove(root: &Path, id: &str) -> io::Result<()> {
    let tmp = info_path(root, id).with_extension("info.tmp");
    for path in [info_path(root, id), data_path(root, id), tmp] {
        match glommio::io::remove(&path).await.map_err(io::Error::from) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
            _ => {}
        }
    }
    Ok(())
}

/// What the expiry sweep found in `files/_big/`.
#[derive(Debug, Default)]
pub struct Stale {
    /// Uploads whose `.info` says they expired.
    pub expired: Vec<String>,
    /// `.bin` files without `.info`, older than the lifetime (crash during creation).
    pub orphans: Vec<String>,
    /// Unfinished, unexpired uploads and their clients (to rebuild `Owners` after a start).
    pub unfinished: Vec<(String, std::net::IpAddr)>,
}

/// Lists stale uploads (blocking: run on the blocking pool). Files that are not ours are left
/// alone (a go-fastdfs `files/_big/<peer_id>/` keeps its content).
pub fn scan(root: &Path, now: i64, lifetime_s: i64) -> io::Result<Stale> {
    let mut stale = Stale::default();
    let entries = match std::fs::read_dir(dir(root)) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(stale),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some((id, ext)) = name.split_once('.') else {
            continue;
        };
        if !super::protocol::valid_id(id) {
            continue;
        }
        match ext {
            "info" => {
                let parsed = std::fs::read(entry.path())
                    .ok()
                    .and_then(|b| serde_json::from_slice::<Info>(&b).ok());
                let expired = match parsed {
                    Some(info) => {
                        if let (None, Some(ip), false) =
                            (&info.completed, info.client, info.expired(now))
                        {
                            stale.unfinished.push((id.to_string(), ip));
                        }
                        info.expired(now)
                    }
                    // Unreadable (never written by us: saves are atomic): judged by its age.
                    None => age_s(&entry)? >= lifetime_s,
                };
                if expired {
                    stale.expired.push(id.to_string());
                }
            }
            "bin" | "info.tmp" if age_s(&entry)? >= lifetime_s && !info_path(root, id).exists() => {
                stale.orphans.push(id.to_string());
            }
            _ => {}
        }
    }
    Ok(stale)
}

fn age_s(entry: &std::fs::DirEntry) -> io::Result<i64> {
    Ok(entry
        .metadata()?
        .modified()?
        .elapsed()
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0))
}

/// Ids of uploads a request is working on, over all executors (one process serves one
/// runtime dir: `data/fastdfs.lock`).
static BUSY: Mutex<Option<HashSet<String>>> = Mutex::new(None);

/// Exclusive right to change one upload, released on drop.
#[derive(Debug)]
pub struct Lock(String);

impl Lock {
    /// None when another request holds the upload.
    pub fn try_take(id: &str) -> Option<Lock> {
        let mut busy = BUSY.lock().expect("tus lock registry");
        busy.get_or_insert_with(HashSet::new)
            .insert(id.to_string())
            .then(|| Lock(id.to_string()))
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        let mut busy = BUSY.lock().expect("tus lock registry");
        let removed = busy.as_mut().is_some_and(|b| b.remove(&self.0));
        debug_assert!(removed, "a held lock is registered");
    }
}

/// Unfinished uploads per client address, over all executors: a client may hold at most
/// `tus_uploads_per_client_max` (each one costs a data file and an info file until it
/// completes or expires).
static OWNERS: Mutex<Option<Owners>> = Mutex::new(None);

/// Unfinished uploads over all clients (each client has `tus_uploads_per_client_max`).
pub const UPLOADS_TOTAL_MAX: u64 = 4096;
/// Unfinished uploads beyond [`UPLOADS_TOTAL_MAX`] kept for admins (the operator, an
/// application server uploading from an admin address): clients that filled the total do not
/// shut them out.
pub const UPLOADS_ADMIN_RESERVE: u64 = 256;

/// Whether one more unfinished upload fits: `held` of its client's at most `max`, and every
/// client's together (`total`) under [`UPLOADS_TOTAL_MAX`], or its reserve for an admin: many
/// addresses (IPv6, many hosts) must not hold the disk either.
fn admits(total: u64, held: u64, max: u64, admin: bool) -> bool {
    let total_max = if admin {
        UPLOADS_TOTAL_MAX + UPLOADS_ADMIN_RESERVE
    } else {
        UPLOADS_TOTAL_MAX
    };
    held < max && total < total_max
}

#[derive(Debug, Default)]
struct Owners {
    by_id: std::collections::HashMap<String, std::net::IpAddr>,
    per_client: std::collections::HashMap<std::net::IpAddr, u64>,
}

fn with_owners<T>(f: impl FnOnce(&mut Owners) -> T) -> T {
    let mut guard = OWNERS.lock().expect("tus owners registry");
    f(guard.get_or_insert_with(Owners::default))
}

/// Counts a new upload of `client` (an IPv6 client per /64, `access::client_block`); false
/// when the client already holds `max`, or all clients the total ([`admits`]).
pub fn claim(id: &str, client: std::net::IpAddr, max: u64, admin: bool) -> bool {
    let client = crate::access::client_block(client);
    with_owners(|o| {
        let total = o.by_id.len() as u64;
        let held = o.per_client.entry(client).or_insert(0);
        if !admits(total, *held, max, admin) {
            if *held == 0 {
                o.per_client.remove(&client);
            }
            return false;
        }
        *held += 1;
        o.by_id.insert(id.to_string(), client);
        true
    })
}

/// Counts an upload found on disk (after a restart), whatever the cap.
pub fn note(id: &str, client: std::net::IpAddr) {
    let client = crate::access::client_block(client);
    with_owners(|o| {
        if o.by_id.insert(id.to_string(), client).is_none() {
            *o.per_client.entry(client).or_insert(0) += 1;
        }
    })
}

/// The upload completed, was terminated or expired: its client may create another.
pub fn release(id: &str) {
    with_owners(|o| {
        let Some(client) = o.by_id.remove(id) else {
            return;
        };
        if let Some(held) = o.per_client.get_mut(&client) {
            *held -= 1;
            if *held == 0 {
                o.per_client.remove(&client);
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str) -> Info {
        Info {
            id: id.to_string(),
            length: Some(10),
            offset: 4,
            metadata: String::new(),
            target: Target {
                scene: "default".into(),
                custom_dir: None,
                name: "a.txt".into(),
                extension: ".txt".into(),
                rename: String::new(),
            },
            created: 1,
            expires: 2,
            completed: None,
            client: None,
            concat: None,
        }
    }

    #[test]
    fn unfinished_uploads_are_bounded_in_all_too() {
        assert!(admits(0, 0, 64, false));
        assert!(!admits(0, 64, 64, false), "per client");
        assert!(admits(UPLOADS_TOTAL_MAX - 1, 0, 64, false));
        assert!(
            !admits(UPLOADS_TOTAL_MAX, 0, 64, false),
            "a new client, but all are held"
        );
    }

    #[test]
    fn clients_that_fill_the_total_leave_admins_a_reserve() {
        assert!(admits(UPLOADS_TOTAL_MAX, 0, 64, true));
        assert!(admits(
            UPLOADS_TOTAL_MAX + UPLOADS_ADMIN_RESERVE - 1,
            0,
            64,
            true
        ));
        assert!(
            !admits(UPLOADS_TOTAL_MAX + UPLOADS_ADMIN_RESERVE, 0, 64, true),
            "the reserve is bounded too"
        );
        assert!(!admits(0, 64, 64, true), "an admin has the per-client cap");
    }

    #[test]
    fn unfinished_uploads_are_bounded_per_client() {
        let ip: std::net::IpAddr = "127.0.0.55".parse().unwrap();
        let (a, b, c) = (new_id(), new_id(), new_id());
        assert!(claim(&a, ip, 2, false));
        assert!(claim(&b, ip, 2, false));
        assert!(
            !claim(&c, ip, 2, false),
            "a third unfinished upload is refused"
        );
        release(&a);
        release(&a); // idempotent
        assert!(claim(&c, ip, 2, false));
        release(&b);
        release(&c);
        note(&a, ip);
        note(&a, ip);
        assert!(claim(&b, ip, 2, false));
        assert!(!claim(&c, ip, 2, false), "a noted upload counts once");
        release(&a);
        release(&b);
    }

    #[test]
    fn locks_exclude_and_release() {
        let id = new_id();
        let a = Lock::try_take(&id).expect("free");
        assert!(Lock::try_take(&id).is_none());
        drop(a);
        assert!(Lock::try_take(&id).is_some());
    }

    #[test]
    fn invariants() {
        let id = new_id();
        assert!(info(&id).check(&id).is_ok());
        assert!(
            info(&id).check(&new_id()).is_err(),
            "id must match its file"
        );
        let mut over = info(&id);
        over.offset = 11;
        assert!(over.check(&id).is_err());
        let mut done = info(&id);
        done.completed = Some(Completed {
            md5: "x".into(),
            url: "y".into(),
        });
        assert!(done.check(&id).is_err(), "completed needs offset == length");
        done.offset = 10;
        assert!(done.check(&id).is_ok());
    }

    #[test]
    fn scan_finds_expired_and_orphans_only() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path();
        std::fs::create_dir_all(dir(root)).unwrap();
        let (old, fresh, orphan) = (new_id(), new_id(), new_id());
        let mut i = info(&old);
        i.expires = 100;
        std::fs::write(info_path(root, &old), serde_json::to_vec(&i).unwrap()).unwrap();
        let mut j = info(&fresh);
        j.expires = 300;
        std::fs::write(info_path(root, &fresh), serde_json::to_vec(&j).unwrap()).unwrap();
        std::fs::write(data_path(root, &fresh), b"abcd").unwrap();
        std::fs::write(data_path(root, &orphan), b"x").unwrap();
        std::fs::create_dir_all(dir(root).join("1")).unwrap();
        let s = scan(root, 200, 0).unwrap();
        assert_eq!(s.expired, vec![old]);
        assert_eq!(s.orphans, vec![orphan]);
    }
}
