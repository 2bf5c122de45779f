//! Batched announcements between fastdfs-rs peers (docs/PROTOCOL.md §8, "Batches"): one
//! `POST G/syncfile_batch` carries up to [`FILES_MAX`] announcements, each small file with
//! its content, where go-fastdfs' protocol makes three calls per file (`check_file_exist`,
//! `syncfile_info`, and the peer's GET of the file). A peer that does not know the route
//! (go-fastdfs, or an older fastdfs-rs) answers 404; the push task then speaks go-fastdfs'
//! protocol with it for [`UNBATCHED_RECHECK`].
//!
//! Owns the wire format (the sender's encoding, the receiver's decoding, the answers) and
//! what one side does with it: the sender's batches of an outbox page, the receiver's
//! handling of each announcement. The route is `api::cluster::syncfile_batch`; the push
//! loop (`sync`) decides when to batch.
//!
//! The body is a sequence of frames: one line of compact JSON
//! `{"fileInfo":{…},"bytes":N}` and a newline, followed by exactly `N` bytes of the file's
//! content (for a merged file, the content without its marker, as its URL serves it). A frame
//! without `bytes` is an announcement only: the receiver queues it and fetches the file as
//! after `syncfile_info`. Contents travel with the announcements that the uploads queued; a
//! file announced again later (`OutboxEntry::again`) goes without. A frame may instead carry
//! an S3 folder marker's change, `{"folder":{"path":"files/<bucket>/<dirs>/","time":<unix
//! ms>,"deleted":<bool>}}` and no content: the receiver makes or removes the marker unless
//! its own is newer (`store::folders::apply_from_peer`); its answer's `md5` is the path key
//! of `path`. Markers travel only this way: go-fastdfs has none. The answer is
//! `{"status":"ok","data":[{"md5":…,"result":…}, …]}`, one entry per frame in order, sent only
//! when every stored file is durable and every queued announcement committed.

use super::failure::PushError;
use super::futures_join_all;
use crate::json::{Content, FileInfo};
use crate::store::meta::{OutboxEntry, QueuedFolder, SyncKind};
use crate::worker::Worker;
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::io;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Announcements in one batch.
pub const FILES_MAX: usize = 64;
/// Files up to this size travel with their announcement.
pub const INLINE_BYTES_MAX: u64 = super::INLINE_FETCH_BYTES_MAX as u64;
/// The sender closes a batch once its body reaches this size.
const SEND_BYTES: usize = 4 << 20;
/// Largest body the receiver reads (a batch closed at [`SEND_BYTES`] plus one more file and
/// the frames' JSON lines).
pub const BODY_BYTES_MAX: u64 = 8 << 20;
/// Longest JSON line of a frame.
const LINE_BYTES_MAX: usize = 64 << 10;
/// Announcements of one batch the receiver stores at once.
const STORES_IN_FLIGHT: usize = 16;
/// Batches one push task has in flight to one peer.
pub const BATCHES_IN_FLIGHT: usize = 2;
/// How long a peer that answered 404 is spoken to in go-fastdfs' protocol before batches
/// are tried again (it may have been upgraded meanwhile).
pub const UNBATCHED_RECHECK: Duration = Duration::from_secs(600);
/// Largest answer to a batch the sender reads.
const ANSWER_BYTES_MAX: usize = 1 << 20;
/// Time allowed for one batch (sending, storing, answering).
const CALL_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Serialize, Deserialize)]
struct Header {
    #[serde(rename = "fileInfo", default, skip_serializing_if = "Option::is_none")]
    info: Option<FileInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    bytes: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    folder: Option<FolderChange>,
}

/// An S3 folder marker put (or removed: `deleted`) on the sender at `time` (unix ms); `path`
/// is `files/<bucket>/<dirs>/`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FolderChange {
    pub path: String,
    pub time: i64,
    #[serde(default)]
    pub deleted: bool,
}

/// One frame as the receiver decoded it: a file's announcement, or a folder marker's change.
#[derive(Debug)]
pub enum Frame {
    File {
        info: FileInfo,
        content: Option<Bytes>,
    },
    Folder(FolderChange),
}

/// Splits a batch body into its frames, or says why it is malformed. Bounds: at most
/// [`FILES_MAX`] frames, lines of at most [`LINE_BYTES_MAX`], contents of at most
/// [`INLINE_BYTES_MAX`].
pub fn decode(body: Bytes) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    let mut at = 0;
    while at < body.len() {
        if frames.len() == FILES_MAX {
            return Err(format!("more than {FILES_MAX} announcements"));
        }
        let rest = &body[at..];
        let end = rest
            .iter()
            .take(LINE_BYTES_MAX + 1)
            .position(|&b| b == b'\n')
            .ok_or_else(|| {
                format!(
                    "frame {}: no JSON line of at most {LINE_BYTES_MAX} bytes",
                    frames.len()
                )
            })?;
        let header: Header = serde_json::from_slice(&rest[..end])
            .map_err(|e| format!("frame {}: {e}", frames.len()))?;
        at += end + 1;
        let info = match (header.info, header.folder) {
            (None, Some(folder)) if header.bytes.is_none() => {
                frames.push(Frame::Folder(folder));
                continue;
            }
            (Some(info), None) => info,
            _ => {
                return Err(format!(
                    "frame {}: a fileInfo (with or without bytes) or a folder alone",
                    frames.len()
                ))
            }
        };
        let content = match header.bytes {
            None => None,
            Some(n) if n > INLINE_BYTES_MAX => {
                return Err(format!(
                    "frame {}: {n} bytes of content, at most {INLINE_BYTES_MAX}",
                    frames.len()
                ))
            }
            Some(n) => {
                let n = n as usize;
                if body.len() - at < n {
                    return Err(format!("frame {}: content cut short", frames.len()));
                }
                at += n;
                Some(body.slice(at - n..at))
            }
        };
        let info = FileInfo {
            md5: info.md5.to_ascii_lowercase(),
            ..info
        };
        frames.push(Frame::File { info, content });
    }
    Ok(frames)
}

/// What the receiver did with one announcement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The content came along, was checked and is stored durably.
    Stored,
    /// The file was here already.
    Present,
    /// The file was deleted here after it was uploaded (the tombstone wins).
    Deleted,
    /// The announcement is stored (inbox); the file is fetched from the sender.
    Queued,
    /// Nothing was kept: the sender must try again.
    Failed,
}

impl Outcome {
    /// The sender may drop its outbox entry.
    pub fn acknowledged(self) -> bool {
        self != Outcome::Failed
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub struct Answer {
    pub md5: String,
    pub result: Outcome,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub message: String,
}

#[derive(Serialize, Deserialize)]
struct Answers {
    status: String,
    data: Vec<Answer>,
}

/// The answer body of a batch.
pub fn encode_answers(answers: Vec<Answer>) -> String {
    crate::json::compact(&Answers {
        status: "ok".into(),
        data: answers,
    })
}

/// Receives the frames of one batch: each is handled as `syncfile_info` handles an
/// announcement, with the content taken from the frame instead of fetched; at most
/// [`STORES_IN_FLIGHT`] at once (each freed slot takes the next frame, so the group commits
/// keep filling). Answers in the frames' order.
pub async fn receive(w: &Rc<Worker>, frames: Vec<Frame>) -> Vec<Answer> {
    let slots = Rc::new(glommio::sync::Semaphore::new(STORES_IN_FLIGHT as u64));
    let tasks = frames.into_iter().map(|f| {
        let (w, slots) = (w.clone(), slots.clone());
        async move {
            let _slot = slots.acquire_static_permit(1).await;
            receive_one(w, f).await
        }
    });
    futures_join_all(tasks).await
}

async fn receive_one(w: Rc<Worker>, frame: Frame) -> Answer {
    let (md5, settled) = match frame {
        Frame::File { info, content } => (info.md5.clone(), settle(&w, info, content).await),
        Frame::Folder(f) => (
            crate::store::meta::path_key(&f.path),
            settle_folder(&w, f).await,
        ),
    };
    let (result, message) = match settled {
        Ok(outcome) => (outcome, String::new()),
        Err(why) => {
            tracing::warn!(md5, cause = %why, "batched announcement not kept");
            (Outcome::Failed, why)
        }
    };
    Answer {
        md5,
        result,
        message,
    }
}

/// A folder marker's change: applied (Stored, or Deleted for a removal), or nothing to do
/// (Present: the marker here is newer, or already so).
async fn settle_folder(w: &Worker, f: FolderChange) -> Result<Outcome, String> {
    use crate::store::folders::{apply_from_peer, Applied};
    match apply_from_peer(w.meta(), w.dir(), &f.path, f.time, f.deleted).await? {
        Applied::Done if f.deleted => Ok(Outcome::Deleted),
        Applied::Done => Ok(Outcome::Stored),
        Applied::Unchanged => Ok(Outcome::Present),
    }
}

async fn settle(w: &Worker, info: FileInfo, content: Option<Bytes>) -> Result<Outcome, String> {
    super::validate_announced(&info).map_err(|e| format!("fileInfo refused: {e}"))?;
    match super::needless(w, &info).map_err(|e| e.to_string())? {
        Some(super::Needless::Present) => return Ok(Outcome::Present),
        // Only the path to record: announce's answer says so.
        Some(super::Needless::Elsewhere) => {}
        Some(super::Needless::Deleted) => return Ok(Outcome::Deleted),
        None => {}
    }
    if let Some(content) = content {
        match super::store_pushed(w, info.clone(), content).await {
            Ok(()) => return Ok(Outcome::Stored),
            // As after a failed inline fetch: queued, fetched from the sender later.
            Err(why) => {
                tracing::debug!(md5 = info.md5, cause = %why, "sent content not stored; queued")
            }
        }
    }
    use crate::store::meta::Announced;
    match w.meta().announce(info).await.map_err(|e| e.to_string())? {
        Announced::Queued => Ok(Outcome::Queued),
        Announced::Present => Ok(Outcome::Present),
        Announced::Tombstoned => Ok(Outcome::Deleted),
    }
}

/// A batch being built by the sender: the body and the outbox entries it answers for.
#[derive(Default)]
struct Outgoing {
    body: Vec<u8>,
    /// Index into the page of each frame's entry.
    entries: Vec<usize>,
    /// Files planned for the batch whose frames are not written yet (with or without their
    /// content), and the bytes their contents will add.
    planned: Vec<(usize, FileInfo, bool)>,
    planned_bytes: usize,
}

impl Outgoing {
    /// Plans a file for this batch, `with_content` if it may travel with its content;
    /// [`Outgoing::fill`] writes its frame.
    fn plan(&mut self, index: usize, info: FileInfo, with_content: bool) {
        let with_content = with_content && (0..=INLINE_BYTES_MAX as i64).contains(&info.size);
        if with_content {
            self.planned_bytes += info.size as usize;
        }
        self.planned.push((index, info, with_content));
    }

    /// Writes the frames of the planned files, their contents read at once.
    async fn fill(&mut self, w: &Rc<Worker>) {
        let planned = std::mem::take(&mut self.planned);
        self.planned_bytes = 0;
        let reads = planned.iter().map(|(_, info, with_content)| {
            let (w, info, with_content) = (w.clone(), info.clone(), *with_content);
            async move {
                match with_content {
                    true => content_of(w, info).await,
                    false => None,
                }
            }
        });
        let contents = futures_join_all(reads).await;
        for ((i, info, _), content) in planned.iter().zip(contents) {
            self.push(*i, info, content.as_deref());
        }
    }

    fn push(&mut self, index: usize, info: &FileInfo, content: Option<&[u8]>) {
        let header = Header {
            info: Some(info.clone()),
            bytes: content.map(|c| c.len() as u64),
            folder: None,
        };
        self.body.extend_from_slice(
            serde_json::to_string(&header)
                .expect("plain data")
                .as_bytes(),
        );
        self.body.push(b'\n');
        if let Some(c) = content {
            self.body.extend_from_slice(c);
        }
        self.entries.push(index);
    }

    /// Writes the frame of a folder marker's change.
    fn push_folder(&mut self, index: usize, f: &QueuedFolder, deleted: bool) {
        let header = Header {
            info: None,
            bytes: None,
            folder: Some(FolderChange {
                path: f.rel.clone(),
                time: f.time,
                deleted,
            }),
        };
        self.body.extend_from_slice(
            serde_json::to_string(&header)
                .expect("plain data")
                .as_bytes(),
        );
        self.body.push(b'\n');
        self.entries.push(index);
    }

    fn full(&self) -> bool {
        self.entries.len() + self.planned.len() >= FILES_MAX
            || self.body.len() + self.planned_bytes >= SEND_BYTES
    }
}

/// The sender's content of a small file for its announcement: None when it travels without
/// (too large, or not readable here now: the receiver then fetches it).
async fn content_of(w: Rc<Worker>, info: FileInfo) -> Option<Bytes> {
    if info.size < 0 || info.size as u64 > INLINE_BYTES_MAX {
        return None;
    }
    let read = match info.content() {
        Content::Plain | Content::Migrated => {
            read_exact(&w.dir().join(info.rel_path()), info.size as u64).await
        }
        Content::Merged(offset) => {
            let n = crate::store::haystack::Locator::parse(info.stored_name())?.container;
            let container = w.dir().join(&info.path).join(n.to_string());
            crate::store::haystack::read(&container, offset, info.size as u64).await
        }
        Content::Unknown => return None,
    };
    match read {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::debug!(md5 = info.md5, cause = %e, "announced without its content");
            None
        }
    }
}

/// The whole of a file of `size` bytes (an error if it is shorter).
async fn read_exact(path: &std::path::Path, size: u64) -> io::Result<Bytes> {
    let file = glommio::io::BufferedFile::open(path)
        .await
        .map_err(io::Error::from)?;
    let read = crate::http::conn::read_exact_at(&file, 0, size as usize).await;
    let _ = file.close().await;
    read.map(Bytes::from)
}

/// How a batch call ended.
enum Sent {
    Answered(Vec<Answer>),
    /// The peer does not know batches (any answer below 500 but 200, 408 and 429).
    Unbatched(u16),
    Failed(String),
}

async fn send(w: Rc<Worker>, peer: String, body: Vec<u8>) -> Sent {
    use http_body_util::Full;
    let path = format!("{}/syncfile_batch", w.config().prefix());
    let req = match crate::client::peer::request("POST", &peer, &path) {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    let req = req
        .header("Content-Type", "application/octet-stream")
        .body(Full::new(Bytes::from(body)));
    let req = match req {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    let reply = match w
        .sync
        .pool
        .call(&peer, req, CALL_TIMEOUT, ANSWER_BYTES_MAX)
        .await
    {
        Ok(r) => r,
        Err(e) => return Sent::Failed(e.to_string()),
    };
    match reply.status {
        200 => match serde_json::from_slice::<Answers>(&reply.body) {
            Ok(a) => Sent::Answered(a.data),
            Err(_) => Sent::Unbatched(200),
        },
        s if s >= 500 || s == 408 || s == 429 => {
            Sent::Failed(format!("syncfile_batch answered {s}: {}", reply.text()))
        }
        s => Sent::Unbatched(s),
    }
}

/// Whether this executor sends batches to `peer` now.
pub fn batches_to(w: &Worker, peer: &str) -> bool {
    let mut unbatched = w.sync.unbatched.borrow_mut();
    match unbatched.get(peer) {
        Some(until) if Instant::now() < *until => false,
        Some(_) => {
            unbatched.remove(peer);
            true
        }
        None => true,
    }
}

/// Plans the next batches of `puts` (at most `BATCHES_IN_FLIGHT`, sent together), taking
/// the puts (and folder markers' changes) it plans or settles from the iterator; a put with
/// nothing to announce is settled in `results`.
fn plan_batches(
    w: &Rc<Worker>,
    page: &[(String, OutboxEntry)],
    puts: &mut impl Iterator<Item = usize>,
    results: &mut [Option<Result<(), PushError>>],
) -> Vec<Outgoing> {
    let mut batches: Vec<Outgoing> = Vec::new();
    let mut current = Outgoing::default();
    for i in puts.by_ref() {
        let (id, entry) = &page[i];
        if let Some(f) = &entry.folder {
            current.push_folder(i, f, entry.kind == SyncKind::Delete);
        } else {
            let info = match super::announceable(w, id) {
                Ok(Some(info)) => info,
                Ok(None) => {
                    results[i] = Some(Ok(()));
                    continue;
                }
                Err(e) => {
                    results[i] = Some(Err(PushError::local(e)));
                    continue;
                }
            };
            // A file announced again (`sync`, a repair, a new peer) is often there already:
            // it goes without its content, and the receiver fetches it only if it lacks it.
            current.plan(i, info, !entry.again);
        }
        if current.full() {
            batches.push(std::mem::take(&mut current));
            if batches.len() == BATCHES_IN_FLIGHT {
                break;
            }
        }
    }
    if !current.planned.is_empty() || !current.entries.is_empty() {
        batches.push(current);
    }
    batches
}

/// Reads the peer's answers to sent batches: the page entries the peer acknowledged (to be
/// recorded as delivered), and the status with which the peer refused batches, if it did.
/// Every other entry's failure is set in `results`.
fn read_answers(
    batches: &[Outgoing],
    sent: Vec<Sent>,
    page: &[(String, OutboxEntry)],
    results: &mut [Option<Result<(), PushError>>],
) -> (Vec<usize>, Option<u16>) {
    let mut unbatched = None;
    let mut delivered = Vec::new();
    for (batch, sent) in batches.iter().zip(sent) {
        match sent {
            Sent::Answered(answers) if answers.len() == batch.entries.len() => {
                for (&i, a) in batch.entries.iter().zip(answers) {
                    if a.md5 != page[i].0 {
                        results[i] = Some(Err(PushError::Peer(format!(
                            "answer for {} instead of {}",
                            a.md5, page[i].0
                        ))));
                    } else if a.result.acknowledged() {
                        delivered.push(i);
                    } else {
                        let why = format!("peer did not keep it: {}", a.message);
                        results[i] = Some(Err(PushError::Peer(why)));
                    }
                }
            }
            Sent::Answered(answers) => {
                let why = PushError::Peer(format!(
                    "{} answers to {} announcements",
                    answers.len(),
                    batch.entries.len()
                ));
                for &i in &batch.entries {
                    results[i] = Some(Err(why.clone()));
                }
            }
            Sent::Failed(why) => {
                for &i in &batch.entries {
                    results[i] = Some(Err(PushError::Peer(why.clone())));
                }
            }
            Sent::Unbatched(status) => unbatched = Some(status),
        }
    }
    (delivered, unbatched)
}

/// Pushes the puts (and folder markers' changes) of an outbox page to `peer` in batches and
/// records each acknowledged one as delivered. Per entry of `page`: None for the entries it leaves to the caller (the
/// deletes, and every put not sent once the peer turned out not to take batches), else the
/// delivery's result (an error also for the puts left for the next round after a failure).
pub async fn push(
    w: &Rc<Worker>,
    peer: &str,
    page: &[(String, OutboxEntry)],
) -> Vec<Option<Result<(), PushError>>> {
    let mut results: Vec<Option<Result<(), PushError>>> = vec![None; page.len()];
    let mut puts = page
        .iter()
        .enumerate()
        .filter(|(_, (_, e))| e.kind == SyncKind::Put || e.folder.is_some())
        .map(|(i, _)| i)
        .peekable();
    while puts.peek().is_some() {
        let batches = plan_batches(w, page, &mut puts, &mut results);
        let fills = batches.into_iter().map(|mut b| {
            let w = w.clone();
            async move {
                b.fill(&w).await;
                b
            }
        });
        let mut batches = futures_join_all(fills).await;
        let calls = batches
            .iter_mut()
            .map(|b| send(w.clone(), peer.to_string(), std::mem::take(&mut b.body)));
        let sent = futures_join_all(calls).await;
        let (delivered, unbatched) = read_answers(&batches, sent, page, &mut results);
        let records = delivered.iter().map(|&i| {
            let (w, peer, (md5, entry)) = (w.clone(), peer.to_string(), page[i].clone());
            async move { super::record_delivery(&w, peer, md5, entry).await }
        });
        for (&i, r) in delivered.iter().zip(futures_join_all(records).await) {
            results[i] = Some(r);
        }
        if let Some(status) = unbatched {
            tracing::info!(
                peer,
                status,
                "peer does not take batched announcements: using go-fastdfs' protocol with it"
            );
            w.sync
                .unbatched
                .borrow_mut()
                .insert(peer.to_string(), Instant::now() + UNBATCHED_RECHECK);
            break;
        }
        let failed = results.iter().find_map(|r| match r {
            Some(Err(e)) => Some(e.clone()),
            _ => None,
        });
        if let Some(why) = failed {
            // The caller backs off; the rest of the page waits for the next round (not sent
            // the go-fastdfs way meanwhile).
            for i in puts.by_ref() {
                results[i] = Some(Err(why.held_back()));
            }
            break;
        }
    }
    results
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(md5: &str, size: i64) -> FileInfo {
        FileInfo {
            name: "a.txt".into(),
            path: "files/default/20260101/10/00/1".into(),
            md5: md5.into(),
            size,
            ..Default::default()
        }
    }

    #[test]
    fn frames_decode_as_they_were_encoded() {
        let mut out = Outgoing::default();
        out.push(0, &info(&"A".repeat(32), 5), Some(b"hello"));
        out.push(1, &info(&"b".repeat(32), 1 << 30), None);
        out.push(2, &info(&"c".repeat(32), 0), Some(b""));
        let marker = QueuedFolder {
            rel: "files/b/photos/2026/".into(),
            time: 42,
        };
        out.push_folder(3, &marker, true);
        let frames = decode(Bytes::from(out.body)).unwrap();
        assert_eq!(frames.len(), 4);
        let file = |f: &Frame| match f {
            Frame::File { info, content } => (info.clone(), content.clone()),
            Frame::Folder(_) => panic!("a file's frame"),
        };
        let (info, content) = file(&frames[0]);
        assert_eq!(info.md5, "a".repeat(32), "md5s are lowercased");
        assert_eq!(content.as_deref(), Some(&b"hello"[..]));
        let (info, content) = file(&frames[1]);
        assert_eq!((info.size, content), (1 << 30, None));
        assert_eq!(file(&frames[2]).1.as_deref(), Some(&b""[..]));
        match &frames[3] {
            Frame::Folder(f) => assert_eq!(
                (f.path.as_str(), f.time, f.deleted),
                ("files/b/photos/2026/", 42, true)
            ),
            other => panic!("a folder's frame: {other:?}"),
        }
        assert_eq!(out.entries, vec![0, 1, 2, 3]);
        // A folder frame with bytes, or with a fileInfo too, is refused.
        for bad in [
            r#"{"folder":{"path":"files/b/x/","time":1},"bytes":0}"#,
            r#"{"folder":{"path":"files/b/x/","time":1},"fileInfo":{"md5":"a"}}"#,
            r#"{}"#,
        ] {
            assert!(decode(Bytes::from(format!("{bad}\n"))).is_err(), "{bad}");
        }
    }

    #[test]
    fn malformed_batches_are_refused_with_a_reason() {
        let line = |bytes: u64| {
            format!(
                "{}\n",
                serde_json::to_string(&Header {
                    info: Some(info(&"a".repeat(32), bytes as i64)),
                    bytes: Some(bytes),
                    folder: None,
                })
                .unwrap()
            )
        };
        // Content shorter than announced.
        let cut = format!("{}abc", line(5));
        assert!(decode(Bytes::from(cut)).unwrap_err().contains("cut short"));
        // Content larger than a batch carries.
        let big = line(INLINE_BYTES_MAX + 1);
        assert!(decode(Bytes::from(big)).unwrap_err().contains("at most"));
        // No line end within the bound.
        let long = vec![b' '; LINE_BYTES_MAX + 10];
        assert!(decode(Bytes::from(long)).unwrap_err().contains("JSON line"));
        // Not JSON.
        assert!(decode(Bytes::from_static(b"{oops\n")).is_err());
        // Too many frames.
        let many: String = (0..=FILES_MAX).map(|_| line(0)).collect();
        assert!(decode(Bytes::from(many)).unwrap_err().contains("more than"));
        // Empty: no frames, no error.
        assert!(decode(Bytes::new()).unwrap().is_empty());
    }

    #[test]
    fn a_batch_closes_at_its_file_or_byte_bound() {
        let mut out = Outgoing::default();
        for i in 0..FILES_MAX - 1 {
            out.push(i, &info(&"a".repeat(32), 0), None);
        }
        assert!(!out.full());
        out.push(FILES_MAX, &info(&"a".repeat(32), 0), None);
        assert!(out.full());
        let mut out = Outgoing::default();
        let content = vec![7u8; INLINE_BYTES_MAX as usize];
        while !out.full() {
            out.push(
                0,
                &info(&"a".repeat(32), content.len() as i64),
                Some(&content),
            );
        }
        assert!(
            out.body.len() as u64 <= BODY_BYTES_MAX,
            "a closed batch fits the receiver's bound"
        );
        // Planned files count before their frames are written: 16 of 256 KiB fill 4 MiB.
        let mut out = Outgoing::default();
        let mut planned = 0;
        while !out.full() {
            out.plan(
                planned,
                info(&"a".repeat(32), INLINE_BYTES_MAX as i64),
                true,
            );
            planned += 1;
        }
        assert_eq!(planned, SEND_BYTES / INLINE_BYTES_MAX as usize);
    }
}
