//! `G/upload`: multipart upload streamed to disk with its digest computed in the same pass,
//! made durable and indexed before the answer (docs/PROTOCOL.md §4), and the GET "second-pass"
//! lookup by md5.

use super::Params;
use crate::error::ApiError;
use crate::http::multipart::{self, Event, Parser};
use crate::http::{Request, Response};
use crate::json;
use crate::placement::{commit, file_result, OnFailure, Target};
use crate::store::haystack::Reservation;
use crate::store::space::Claim;
use crate::store::write::{self, TempFile};
use crate::worker::Worker;

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
                return Err(crate::auth::fail());
            }
            second_pass(w, &p)
        }
    }
}

/// GET `upload?md5=..`: answer from the index without any body (docs/PROTOCOL.md §4).
fn second_pass(w: &Worker, p: &Params) -> Result<Response, ApiError> {
    let cfg = w.config();
    let md5 = p.str("md5");
    if md5.is_empty() {
        return Err(ApiError::fail(
            400,
            "(error) if you want to upload fast md5 is require,and if you want to upload file,you must use post method  ",
        ));
    }
    let found = super::record_by_id(w, md5)?;
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
struct Form<'w> {
    fields: Params,
    file: Option<(String, Content<'w>)>,
}

/// The uploaded file: durable in a temp file, or (small, with merging on) in memory until it
/// is appended to a container.
enum Content<'w> {
    Disk(write::Written),
    Memory {
        bytes: bytes::Bytes,
        digest: String,
        held: Reservation<'w>,
    },
}

/// The file part being received: in memory while it may still be merged, else in a
/// `write::Sink` (gathered and written whole when the body is small, or a temp file).
enum Receiving<'w> {
    Memory(Vec<u8>, Reservation<'w>),
    Sink(write::Sink<'w>),
}

impl<'w> Receiving<'w> {
    /// How a file part of a body of `expected` bytes (0: not known) is received. The body's
    /// `claim` on free space goes to the file written, if one is.
    async fn start(
        w: &'w Worker,
        expected: u64,
        claim: &mut Claim,
    ) -> Result<Receiving<'w>, ApiError> {
        let cfg = w.config();
        if cfg.enable_merge_small_file {
            return Ok(Receiving::Memory(Vec::new(), w.merge_memory.start()));
        }
        let mut sink =
            write::Sink::start(w.dir(), &w.merge_memory, cfg.use_sha1(), expected).await?;
        sink.claim(std::mem::take(claim));
        Ok(Receiving::Sink(sink))
    }

    /// `expected`: the request body's length (0: not known); `claim`, its claim on free
    /// space (taken by the file written if it spills out of memory here).
    async fn write(
        &mut self,
        w: &'w Worker,
        data: &[u8],
        expected: u64,
        claim: &mut Claim,
    ) -> Result<(), ApiError> {
        if let Receiving::Memory(buf, held) = self {
            let small = crate::placement::merges(&w.config(), (buf.len() + data.len()) as u64);
            if small && w.merge_memory.reserve(held, data.len() as u64) {
                buf.extend_from_slice(data);
                return Ok(());
            }
            // Too large to merge, or the executor's memory budget is spent: from here on it
            // is an ordinary upload.
            let mut t = TempFile::create(w.dir(), w.config().use_sha1(), expected).await?;
            t.claim(std::mem::take(claim));
            t.write(buf).await?;
            *self = Receiving::Sink(write::Sink::File(t));
        }
        match self {
            Receiving::Sink(s) => Ok(s.write(w.dir(), data).await?),
            Receiving::Memory(..) => unreachable!("spilled above"),
        }
    }

    async fn finish(self, w: &Worker, sha1: bool) -> Result<Content<'w>, ApiError> {
        match self {
            Receiving::Sink(s) => Ok(Content::Disk(s.finish(w.dir()).await?)),
            Receiving::Memory(buf, held) => {
                let mut h = write::Hasher::new(sha1);
                h.update(&buf);
                Ok(Content::Memory {
                    digest: h.hex(),
                    bytes: buf.into(),
                    held,
                })
            }
        }
    }
}

/// Removes what a rejected upload left (a temp file; nothing for memory).
async fn discard(content: Content<'_>) {
    if let Content::Disk(written) = content {
        write::discard(written).await;
    }
}

/// Receives the next bytes of a file part straight into the temp file's write buffer; what
/// is not the file's (from its closing delimiter, or what may be its start) goes to `buf`.
/// False at the end of the request body.
async fn receive_in_place(
    req: &mut Request<'_>,
    parser: &Parser,
    t: &mut TempFile,
    buf: &mut bytes::BytesMut,
) -> Result<bool, ApiError> {
    let mut v = t.lend();
    let from = v.len();
    let room = write::Appender::room_max(&v);
    let got = req.body_into(&mut v, room).await?;
    let data = parser
        .body_data_len(&v.bytes()[from..])
        .expect("in a part's body");
    buf.extend_from_slice(&v.bytes()[from + data..]);
    v.truncate(from + data);
    t.commit(v).await?;
    Ok(got > 0)
}

/// A form as its parts arrive: the text fields read, the file part received (at most one,
/// the first `file` part with a file name), the one being received and the text field being
/// read.
struct FormReader<'w> {
    fields: Params,
    file: Option<(String, Content<'w>)>,
    tmp: Option<(String, Receiving<'w>)>,
    field: Option<(String, Vec<u8>)>,
    /// In a file part that is not stored.
    skipping: bool,
    /// The body's claim on free space, until the file part's writer takes it.
    claim: Claim,
}

impl<'w> FormReader<'w> {
    /// A part begins: the upload's file part starts being received, another file part is
    /// skipped, a text field is gathered.
    async fn part_start(
        &mut self,
        w: &'w Worker,
        h: multipart::PartHead,
        expected: u64,
    ) -> Result<(), ApiError> {
        self.skipping = false;
        let is_file = h.filename.as_deref().is_some_and(|f| !f.is_empty());
        if h.name == "file" && is_file && self.file.is_none() && self.tmp.is_none() {
            let receiving = Receiving::start(w, expected, &mut self.claim).await?;
            self.tmp = Some((h.filename.unwrap_or_default(), receiving));
        } else if is_file {
            self.skipping = true; // other file parts are not stored
        } else {
            self.field = Some((h.name, Vec::new()));
        }
        Ok(())
    }

    /// The current part's next bytes: to the file received, or the text field (at most
    /// [`FIELD_BYTES_MAX`] bytes), or nowhere when skipped.
    async fn data(&mut self, w: &'w Worker, d: &[u8], expected: u64) -> Result<(), ApiError> {
        if let Some((_, t)) = self.tmp.as_mut() {
            t.write(w, d, expected, &mut self.claim).await?;
        } else if let Some((_, v)) = self.field.as_mut() {
            if v.len() + d.len() > FIELD_BYTES_MAX {
                return Err(ApiError::fail(413, "form field too large"));
            }
            v.extend_from_slice(d);
        } else {
            debug_assert!(self.skipping);
        }
        Ok(())
    }

    /// The current part ends: a file received is finished (its digest taken), a text field
    /// kept.
    async fn part_end(&mut self, w: &Worker, sha1: bool) -> Result<(), ApiError> {
        if let Some((name, t)) = self.tmp.take() {
            self.file = Some((name, t.finish(w, sha1).await?));
        }
        if let Some((k, v)) = self.field.take() {
            self.fields
                .0
                .push((k, String::from_utf8_lossy(&v).into_owned()));
        }
        Ok(())
    }
}

/// The error of a body the multipart parser refused.
fn bad_multipart(e: multipart::MultipartError) -> ApiError {
    ApiError::fail(400, format!("bad multipart body: {e}"))
}

async fn read_form<'w>(
    w: &'w Worker,
    req: &mut Request<'_>,
    boundary: &[u8],
    claim: Claim,
) -> Result<Form<'w>, ApiError> {
    let cfg = w.config();
    let mut parser = Parser::new(boundary, multipart::Limits::default());
    let expected = req.content_length().unwrap_or(0);
    let mut buf = bytes::BytesMut::new();
    let mut form = FormReader {
        fields: Params::default(),
        file: None,
        tmp: None,
        field: None,
        skipping: false,
        claim,
    };
    loop {
        let event = parser.next_event(&mut buf).map_err(bad_multipart)?;
        match event {
            None if buf.is_empty()
                && req.body_is_sized()
                && parser.body_data_len(&[]).is_some()
                && matches!(form.tmp, Some((_, Receiving::Sink(write::Sink::File(_))))) =>
            {
                // In a file part's body with nothing pending: its bytes are received
                // straight into the temp file's write buffer, the rest through `buf`.
                let Some((_, Receiving::Sink(write::Sink::File(t)))) = form.tmp.as_mut() else {
                    unreachable!("matched above")
                };
                if !receive_in_place(req, &parser, t, &mut buf).await? {
                    parser.finish().map_err(bad_multipart)?;
                    break;
                }
            }
            None => match req.chunk().await? {
                Some(b) => buf.extend_from_slice(&b),
                None => {
                    parser.finish().map_err(bad_multipart)?;
                    break;
                }
            },
            Some(Event::PartStart(h)) => form.part_start(w, h, expected).await?,
            Some(Event::Data(d)) => form.data(w, &d, expected).await?,
            Some(Event::PartEnd) => form.part_end(w, cfg.use_sha1()).await?,
            Some(Event::End) => {
                // The epilogue is ignored, but the request body must still be consumed.
                while req.chunk().await?.is_some() {}
                break;
            }
        }
    }
    Ok(Form {
        fields: form.fields,
        file: form.file,
    })
}

async fn upload(w: &Worker, req: &mut Request<'_>) -> Result<Response, ApiError> {
    let cfg = w.config();
    // Without a token the auth server is not even asked, and no byte of the body is stored.
    if !cfg.auth_url.is_empty() && crate::auth::token(req).is_none() {
        return Err(crate::auth::fail());
    }
    if cfg.read_only {
        return Err(ApiError::fail(403, "(error) readonly"));
    }
    let boundary =
        multipart::boundary_from_content_type(req.head.header("content-type").unwrap_or(b""))
            .ok_or_else(|| ApiError::fail(400, "request Content-Type isn't multipart/form-data"))?;
    bound_body(req, &cfg)?;
    let share = w.space_share(req);
    let claim = match req.content_length() {
        Some(n) => crate::store::space::admit_as(w.dir(), n, share).await?,
        None => Claim::metered_as(w.dir(), share),
    };
    let form = read_form(w, req, &boundary, claim).await?;
    let mut p = form.fields;
    p.push_query(req.head.query());
    if !cfg.auth_url.is_empty() && !crate::auth::allowed(w, req, &p.0).await {
        if let Some((_, content)) = form.file {
            discard(content).await;
        }
        return Err(crate::auth::fail());
    }
    let Some((client_name, content)) = form.file else {
        return Err(ApiError::fail(400, "http: no such file"));
    };
    let checked = output_of(&p).and_then(|output| {
        let client = w.client_of(req);
        let code_ok = |scene: &str, code: &str| w.shared.google_code(client, scene, code);
        let target = Target::check(&cfg, &p, &client_name, &code_ok)?;
        Ok((output, target))
    });
    let (output, target) = match checked {
        Ok(checked) => checked,
        Err(e) => {
            discard(content).await;
            return Err(e);
        }
    };
    let info = commit_content(w, &cfg, &target, content, p.str("md5")).await?;
    let result = file_result(&cfg, &info);
    Ok(match output {
        Output::Text => Response::text(200, result.url),
        Output::Json => Response::text(200, result.pretty()),
        Output::Json2 => Response::text(200, json::pretty(&json::envelope("ok", "", Some(result)))),
    })
}

/// With an upload limit: a body declared larger is refused before it is read, and the body
/// read is bounded by it.
fn bound_body(req: &mut Request<'_>, cfg: &crate::config::Config) -> Result<(), ApiError> {
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
    Ok(())
}

/// Commits the received file where `target` puts it (checked against the client's `md5`,
/// if given): appended to a container from memory, or its temp file moved into place
/// (discarded when it has no place).
async fn commit_content(
    w: &Worker,
    cfg: &crate::config::Config,
    target: &Target,
    content: Content<'_>,
    md5: &str,
) -> Result<json::FileInfo, ApiError> {
    Ok(match content {
        Content::Memory {
            bytes,
            digest,
            held,
        } => {
            if bytes.is_empty() {
                return Err(ApiError::fail(400, "file size is zero"));
            }
            let info = crate::placement::commit_merged(w, target, bytes, digest, md5).await?;
            drop(held); // the bytes are in the container (or were a dedup hit) now
            info
        }
        Content::Disk(written) => {
            let plan = match target.place(cfg, &written.digest, written.size, md5) {
                Ok(plan) => plan,
                Err(e) => {
                    write::discard(written).await;
                    return Err(e);
                }
            };
            commit(w, plan, written, OnFailure::Discard).await?
        }
    })
}
