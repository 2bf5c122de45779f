//! tus 1.0.0 at `G/big/upload/` (docs/PROTOCOL.md §6, docs/DEFECTS.md #3, #22, #23, #41), black-box against the
//! real binary: a real tus client (tuspy, `tusclient`) for uploads and resumes, curl for the
//! 1 GiB upload, and raw requests for each protocol rule (412, 409, 415, 460, 423, expiry...).
//! Tests that need tuspy or curl say so and skip when they are missing
//! (scripts/test-all.sh installs them).
mod common;
use common::*;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

const CREATE: &str = "/group1/big/upload/";

fn tus_server(overrides: Value) -> Server {
    let mut cfg = json!({"enable_tus": true});
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            cfg[k] = v;
        }
    }
    Server::start(cfg)
}

/// A response: status, lower-cased headers, body.
struct Resp {
    status: u16,
    headers: HashMap<String, String>,
    body: String,
}

impl Resp {
    fn h(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(String::as_str)
    }
}

fn into_resp(r: ureq::Response) -> Resp {
    let status = r.status();
    let headers = r
        .headers_names()
        .into_iter()
        .map(|n| {
            let v = r.header(&n).unwrap_or("").to_string();
            (n.to_ascii_lowercase(), v)
        })
        .collect();
    let body = r.into_string().unwrap_or_default();
    Resp {
        status,
        headers,
        body,
    }
}

/// One request; `headers` are added as given (no Tus-Resumable unless listed).
fn request(method: &str, url: &str, headers: &[(&str, &str)], body: Option<&[u8]>) -> Resp {
    let mut req = agent().request(method, url);
    for (k, v) in headers {
        req = req.set(k, v);
    }
    let sent = match body {
        Some(b) => req.send_bytes(b),
        None => req.call(),
    };
    match sent {
        Ok(r) => into_resp(r),
        Err(ureq::Error::Status(_, r)) => into_resp(r),
        Err(e) => panic!("transport error: {e}"),
    }
}

const V: (&str, &str) = ("Tus-Resumable", "1.0.0");
const OCTETS: (&str, &str) = ("Content-Type", "application/offset+octet-stream");

fn b64(s: &str) -> String {
    fastdfs::tus::protocol::base64_encode(s.as_bytes())
}

/// `Upload-Metadata` from pairs.
fn metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| format!("{k} {}", b64(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates an upload of `length` bytes; returns its absolute URL.
fn create(s: &Server, length: usize, meta: &[(&str, &str)]) -> String {
    let len = length.to_string();
    let m = metadata(meta);
    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Length", &len), ("Upload-Metadata", &m)],
        None,
    );
    assert_eq!(r.status, 201, "creation failed: {}", r.body);
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"));
    r.h("location").expect("Location").to_string()
}

fn patch(url: &str, offset: u64, data: &[u8], extra: &[(&str, &str)]) -> Resp {
    let off = offset.to_string();
    let mut headers = vec![V, OCTETS, ("Upload-Offset", off.as_str())];
    headers.extend_from_slice(extra);
    request("PATCH", url, &headers, Some(data))
}

fn head(url: &str) -> Resp {
    request("HEAD", url, &[V], None)
}

fn offset_of(url: &str) -> u64 {
    let r = head(url);
    assert_eq!(r.status, 200, "HEAD {url}");
    r.h("upload-offset").unwrap().parse().unwrap()
}

fn id_of(url: &str) -> &str {
    url.rsplit('/').next().unwrap()
}

/// Files of an upload in `files/_big/`.
fn big_files(s: &Server, id: &str) -> Vec<PathBuf> {
    let dir = s.dir.join("files/_big");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.file_name().unwrap().to_string_lossy().starts_with(id))
        .collect()
}

/// Path of the stored file of a completed upload, from its record.
fn stored_path(s: &Server, md5: &str) -> PathBuf {
    let r = request(
        "GET",
        &s.url(&format!("/group1/get_file_info?md5={md5}")),
        &[],
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let v: Value = serde_json::from_str(&r.body).unwrap();
    let data = &v["data"];
    let name = match data["rename"].as_str().unwrap() {
        "" => data["name"].as_str().unwrap(),
        n => n,
    };
    s.dir.join(data["path"].as_str().unwrap()).join(name)
}

fn tuspy_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import tusclient"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(
            "tus client tests",
            "python3 with tuspy (module tusclient) is not installed: pip install tuspy",
        );
    }
    ok
}

fn curl_available() -> bool {
    let ok = Command::new("curl").arg("--version").output().is_ok();
    if !ok {
        skip("tus curl tests", "curl is not installed");
    }
    ok
}

/// Runs a tuspy script (Python source) with arguments; returns its stdout lines.
fn tuspy(script: &str, args: &[&str]) -> Vec<String> {
    let out = Command::new("python3")
        .arg("-c")
        .arg(script)
        .args(args)
        .output()
        .expect("python3");
    assert!(
        out.status.success(),
        "tuspy failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_string)
        .collect()
}

/// argv: endpoint, file, url-store db, stop_at (0 = all), checksum (0/1), then metadata
/// key=value pairs. Prints the offset it started from, then the upload URL.
const TUSPY_UPLOAD: &str = r#"
import sys
from tusclient import client
from tusclient.storage import filestorage
endpoint, path, db, stop_at, checksum = sys.argv[1:6]
meta = dict(kv.split("=", 1) for kv in sys.argv[6:])
c = client.TusClient(endpoint)
up = c.uploader(path, chunk_size=256 * 1024, metadata=meta, store_url=True,
                url_storage=filestorage.FileStorage(db), upload_checksum=checksum == "1")
print(up.offset)
up.upload(stop_at=int(stop_at) or None)
print(up.url)
"#;

#[test]
fn options_advertises_version_extensions_checksums_and_max_size() {
    let s = tus_server(json!({"upload_max_bytes": 123456}));
    let r = request("OPTIONS", &s.url(CREATE), &[], None);
    // 200 like go-fastdfs' tusd (SPEC §12); tus allows 204 too, but clients written
    // against go-fastdfs may check for 200.
    assert_eq!(r.status, 200);
    assert_eq!(r.h("content-length"), Some("0"));
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"));
    assert_eq!(r.h("tus-version"), Some("1.0.0"));
    let ext = r.h("tus-extension").unwrap();
    for e in [
        "creation",
        "creation-with-upload",
        "creation-defer-length",
        "termination",
        "concatenation",
        "checksum",
        "expiration",
    ] {
        assert!(ext.split(',').any(|x| x == e), "{e} missing in {ext}");
    }
    assert_eq!(r.h("tus-checksum-algorithm"), Some("sha1,md5"));
    assert_eq!(r.h("tus-max-size"), Some("123456"));
}

#[test]
fn tuspy_upload_becomes_a_stored_file_in_its_scene_downloadable_with_range() {
    if !tuspy_available() {
        return;
    }
    let s = tus_server(json!({}));
    let data = noise(700_000, 1);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("report.bin");
    std::fs::write(&file, &data).unwrap();
    let db = tmp.path().join("urls.json");
    let out = tuspy(
        TUSPY_UPLOAD,
        &[
            &s.url(CREATE),
            file.to_str().unwrap(),
            db.to_str().unwrap(),
            "0",
            "0",
            "filename=report.bin",
            "scene=photos",
        ],
    );
    let url = out.last().unwrap();
    assert!(url.starts_with(&s.url(CREATE)), "{url}");
    // HEAD of a completed upload: offset == length, and where the file went.
    let h = head(url);
    assert_eq!(h.status, 200);
    assert_eq!(h.h("upload-offset"), Some("700000"));
    assert_eq!(h.h("upload-length"), Some("700000"));
    assert_eq!(h.h("cache-control"), Some("no-store"));
    assert!(h.h("upload-expires").is_some());
    let md5 = md5_hex(&data);
    assert_eq!(h.h("x-fastdfs-md5"), Some(md5.as_str()));
    // An ordinary file: in the requested scene (not default_scene: docs/DEFECTS.md #22), found by the
    // md5 second pass, downloadable with Range.
    let path = stored_path(&s, &md5);
    let rel = path.strip_prefix(s.dir.join("files")).unwrap();
    assert!(rel.starts_with("photos"), "{}", rel.display());
    assert!(rel.ends_with("report.bin"), "{}", rel.display());
    assert_eq!(std::fs::read(&path).unwrap(), data);
    let second = request(
        "GET",
        &s.url(&format!("/group1/upload?md5={md5}")),
        &[],
        None,
    );
    assert_eq!(second.status, 200, "{}", second.body);
    let download = h.h("x-fastdfs-url").unwrap();
    assert_eq!(second.body, download);
    let ranged = agent()
        .get(download)
        .set("Range", "bytes=1000-1999")
        .call()
        .unwrap();
    assert_eq!(ranged.status(), 206);
    let mut got = Vec::new();
    ranged.into_reader().read_to_end(&mut got).unwrap();
    assert_eq!(got, &data[1000..2000]);
    assert!(big_files(&s, id_of(url))
        .iter()
        .all(|p| p.extension().unwrap() == "info"));
}

#[test]
fn tuspy_resumes_an_interrupted_upload_from_another_process_after_a_server_restart() {
    if !tuspy_available() {
        return;
    }
    let mut s = tus_server(json!({}));
    let data = noise(1_000_000, 2);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("movie.bin");
    std::fs::write(&file, &data).unwrap();
    let db = tmp.path().join("urls.json");
    let create_url = s.url(CREATE);
    let args = |stop: &'static str| {
        vec![
            create_url.clone(),
            file.to_str().unwrap().to_string(),
            db.to_str().unwrap().to_string(),
            stop.to_string(),
            "1".to_string(),
            "filename=movie.bin".to_string(),
        ]
    };
    let first_args = args("524288");
    let first = tuspy(
        TUSPY_UPLOAD,
        &first_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(first[0], "0");
    let url = first.last().unwrap().clone();
    assert_eq!(offset_of(&url), 524_288);
    // The server restarts between the two client processes.
    s.stop();
    s.respawn();
    assert_eq!(offset_of(&url), 524_288);
    let second_args = args("0");
    let second = tuspy(
        TUSPY_UPLOAD,
        &second_args.iter().map(String::as_str).collect::<Vec<_>>(),
    );
    assert_eq!(
        second[0], "524288",
        "the second process resumed at the offset"
    );
    assert_eq!(second.last().unwrap(), &url, "same upload");
    let h = head(&url);
    assert_eq!(h.h("upload-offset"), Some("1000000"));
    let md5 = md5_hex(&data);
    assert_eq!(h.h("x-fastdfs-md5"), Some(md5.as_str()));
    assert_eq!(std::fs::read(stored_path(&s, &md5)).unwrap(), data);
}

#[test]
fn a_partial_upload_survives_a_server_restart_and_a_crash() {
    let mut s = tus_server(json!({}));
    let data = noise(300_000, 3);
    let url = create(&s, data.len(), &[("filename", "restart.bin")]);
    let r = patch(&url, 0, &data[..100_000], &[]);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("100000"));
    assert!(r.h("upload-expires").is_some());
    s.stop();
    s.respawn();
    assert_eq!(offset_of(&url), 100_000);
    // An acknowledged offset also survives a crash.
    assert_eq!(
        patch(&url, 100_000, &data[100_000..200_000], &[]).status,
        204
    );
    s.kill();
    s.respawn();
    assert_eq!(offset_of(&url), 200_000);
    let r = patch(&url, 200_000, &data[200_000..], &[]);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("300000"));
    let md5 = md5_hex(&data);
    assert_eq!(r.h("x-fastdfs-md5"), Some(md5.as_str()));
    assert_eq!(std::fs::read(stored_path(&s, &md5)).unwrap(), data);
}

#[test]
fn checksums_are_verified_and_a_mismatch_keeps_the_offset() {
    use md5::Digest;
    let s = tus_server(json!({}));
    let data = noise(20_000, 4);
    let url = create(&s, data.len(), &[("filename", "sum.bin")]);
    let sha1 = fastdfs::tus::protocol::base64_encode(&sha1::Sha1::digest(&data[..10_000]));
    let good = format!("sha1 {sha1}");
    let r = patch(&url, 0, &data[..10_000], &[("Upload-Checksum", &good)]);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("10000"));
    // A body that does not match its checksum: 460, nothing kept.
    let r = patch(&url, 10_000, &data[10_000..], &[("Upload-Checksum", &good)]);
    assert_eq!(r.status, 460, "{}", r.body);
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"));
    assert_eq!(offset_of(&url), 10_000);
    // Unsupported algorithm: 400.
    let r = patch(
        &url,
        10_000,
        &data[10_000..],
        &[("Upload-Checksum", "crc32 AAAAAA==")],
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(offset_of(&url), 10_000);
    let md5 = fastdfs::tus::protocol::base64_encode(&md5::Md5::digest(&data[10_000..]));
    let r = patch(
        &url,
        10_000,
        &data[10_000..],
        &[("Upload-Checksum", &format!("md5 {md5}"))],
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("20000"));
    let stored = stored_path(&s, &md5_hex(&data));
    assert_eq!(std::fs::read(stored).unwrap(), data);
}

#[test]
fn termination_removes_the_upload_and_its_partial_data() {
    let s = tus_server(json!({}));
    let url = create(&s, 1000, &[("filename", "gone.bin")]);
    assert_eq!(patch(&url, 0, &[7u8; 400], &[]).status, 204);
    assert!(!big_files(&s, id_of(&url)).is_empty());
    let r = request("DELETE", &url, &[V], None);
    assert_eq!(r.status, 204);
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"));
    assert!(big_files(&s, id_of(&url)).is_empty());
    assert_eq!(head(&url).status, 404);
    assert_eq!(patch(&url, 400, &[7u8; 600], &[]).status, 404);
    assert_eq!(request("DELETE", &url, &[V], None).status, 404);
}

#[test]
fn an_unsupported_version_is_412_with_tus_version() {
    let s = tus_server(json!({}));
    let r = request(
        "POST",
        &s.url(CREATE),
        &[("Tus-Resumable", "0.2.2"), ("Upload-Length", "5")],
        None,
    );
    assert_eq!(r.status, 412);
    assert_eq!(r.h("tus-version"), Some("1.0.0"));
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"));
    let url = create(&s, 5, &[]);
    let r = request("HEAD", &url, &[], None);
    assert_eq!(r.status, 412, "HEAD without Tus-Resumable");
    assert_eq!(r.h("tus-version"), Some("1.0.0"));
}

/// The `fail` envelope's message of a tus refusal, which keeps the tus headers.
fn tus_fail(r: &Resp) -> String {
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"), "{}", r.status);
    assert_eq!(r.h("x-content-type-options"), Some("nosniff"));
    let v: Value = serde_json::from_str(&r.body)
        .unwrap_or_else(|_| panic!("{} without a JSON body: {:?}", r.status, r.body));
    assert_eq!(v["status"], "fail", "{}", r.body);
    v["message"].as_str().unwrap_or_default().to_string()
}

#[test]
fn tus_refusals_are_the_json_envelope_with_the_tus_headers() {
    let s = tus_server(json!({"upload_max_bytes": 100}));
    let r = request("POST", &s.url(CREATE), &[("Tus-Resumable", "0.2.2")], None);
    assert_eq!(r.status, 412);
    assert_eq!(r.h("tus-version"), Some("1.0.0"));
    assert!(tus_fail(&r).contains("version"), "{}", r.body);
    let r = request("POST", &s.url(CREATE), &[V, ("Upload-Length", "101")], None);
    assert_eq!(r.status, 413);
    tus_fail(&r);
    let r = request("POST", &s.url(CREATE), &[V, ("Upload-Length", "x")], None);
    assert_eq!(r.status, 400);
    tus_fail(&r);
    // The upload collection itself takes OPTIONS and POST only (a GET too, which is no
    // download of anything).
    for method in ["DELETE", "GET"] {
        let r = request(method, &s.url(CREATE), &[V], None);
        assert_eq!(r.status, 405, "{method}");
        assert_eq!(r.h("allow"), Some("OPTIONS, POST"), "{method}");
        tus_fail(&r);
    }
    let gone = s.url(&format!("{CREATE}{}", "0".repeat(32)));
    let r = patch(&gone, 0, b"abc", &[]);
    assert_eq!(r.status, 404);
    tus_fail(&r);
    let url = create(&s, 10, &[("filename", "j.txt")]);
    let r = patch(&url, 3, b"abc", &[]);
    assert_eq!(r.status, 409);
    assert!(tus_fail(&r).contains("Upload-Offset"), "{}", r.body);
    let r = request("PATCH", &url, &[V, ("Upload-Offset", "0")], Some(b"abc"));
    assert_eq!(r.status, 415);
    tus_fail(&r);
    let r = patch(
        &url,
        0,
        b"abc",
        &[("Upload-Checksum", "sha1 AAAAAAAAAAAAAAAAAAAAAAAAAAA=")],
    );
    assert_eq!(r.status, 460);
    tus_fail(&r);
}

#[test]
fn a_patch_chunk_announced_beyond_the_upload_is_refused_at_once() {
    let s = tus_server(json!({"body_stall_timeout": 30}));
    let url = create(&s, 10, &[("filename", "c.txt")]);
    let path = url.splitn(4, '/').nth(3).map(|p| format!("/{p}")).unwrap();
    let req = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\nContent-Type: application/offset+octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n100000\r\nabc"
    );
    let started = Instant::now();
    let mut c = TcpStream::connect(s.addr()).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    c.write_all(req.as_bytes()).unwrap();
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 413"), "{text}");
    assert!(text.contains("\"status\": \"fail\""), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(offset_of(&url), 0, "nothing of it kept");
}

#[test]
fn a_wrong_offset_is_409_and_a_wrong_content_type_415() {
    let s = tus_server(json!({}));
    let url = create(&s, 10, &[("filename", "o.txt")]);
    let r = patch(&url, 3, b"abc", &[]);
    assert_eq!(r.status, 409, "{}", r.body);
    let r = request(
        "PATCH",
        &url,
        &[
            V,
            ("Upload-Offset", "0"),
            ("Content-Type", "application/octet-stream"),
        ],
        Some(b"abc"),
    );
    assert_eq!(r.status, 415, "{}", r.body);
    let r = request("PATCH", &url, &[V, OCTETS], Some(b"abc"));
    assert_eq!(r.status, 400, "missing Upload-Offset: {}", r.body);
    assert_eq!(offset_of(&url), 0);
    // More than the declared length: 413, nothing kept.
    assert_eq!(patch(&url, 0, &[1u8; 11], &[]).status, 413);
    assert_eq!(offset_of(&url), 0);
}

#[test]
fn creation_with_upload_and_deferred_length() {
    let s = tus_server(json!({}));
    let m = metadata(&[("filename", "with.txt")]);
    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, OCTETS, ("Upload-Length", "11"), ("Upload-Metadata", &m)],
        Some(b"hello"),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("5"));
    let url = r.h("location").unwrap().to_string();
    assert_eq!(patch(&url, 5, b" world", &[]).status, 204);
    let stored = stored_path(&s, &md5_hex(b"hello world"));
    assert!(stored.ends_with("with.txt"));

    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Defer-Length", "1")],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.h("location").unwrap().to_string();
    let h = head(&url);
    assert_eq!(h.h("upload-defer-length"), Some("1"));
    assert_eq!(h.h("upload-length"), None);
    assert_eq!(patch(&url, 0, b"deferred ", &[]).status, 204);
    let r = patch(&url, 9, b"length", &[("Upload-Length", "15")]);
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("15"));
    // No filename: stored as <md5>.
    let md5 = md5_hex(b"deferred length");
    assert!(stored_path(&s, &md5).ends_with(&md5));
}

#[test]
fn traversal_in_metadata_is_refused_and_nothing_lands_outside_files() {
    let s = tus_server(json!({}));
    let outside = s.dir.parent().unwrap().to_path_buf();
    let marker = format!("tus_pwn_{}", std::process::id());
    let bad: Vec<Vec<(&str, String)>> = vec![
        vec![("filename", format!("../../../../../../tmp/{marker}"))],
        vec![("filename", "..".to_string())],
        vec![("scene", "../../../../tmp".to_string())],
        vec![("scene", "_big".to_string())],
        vec![("path", "_big/x".to_string())],
        vec![("filename", format!("a\n{marker}"))],
    ];
    for meta in &bad {
        let pairs: Vec<(&str, &str)> = meta.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let m = metadata(&pairs);
        let r = request(
            "POST",
            &s.url(CREATE),
            &[V, ("Upload-Length", "3"), ("Upload-Metadata", &m)],
            None,
        );
        assert_eq!(r.status, 400, "{meta:?} must be refused: {}", r.body);
    }
    // A dotted custom path is cleaned like a multipart upload's (dots removed): it stays
    // under files/, in the scene's directory, as go-fastdfs places a tus upload's path.
    let url = create(&s, 3, &[("path", "../../../etc"), ("filename", "p.txt")]);
    assert_eq!(patch(&url, 0, b"pwn", &[]).status, 204);
    assert!(s.dir.join("files/default/etc/p.txt").is_file());
    assert!(!outside.join("etc/p.txt").exists());
    // A backslash is no separator (go-fastdfs keeps it in a name): `..\..\x` is one file
    // in the dated tree, named here by the template's special-character filter (backslashes,
    // then `...`, removed, as go-fastdfs does).
    let windows = format!("..\\..\\{marker}");
    let url = create(&s, 3, &[("filename", &windows)]);
    assert_eq!(patch(&url, 0, b"win", &[]).status, 204);
    let stored = stored_path(&s, &md5_hex(b"win"));
    let filtered = format!(".{marker}");
    assert_eq!(
        stored.file_name().unwrap().to_str(),
        Some(filtered.as_str())
    );
    assert!(
        stored.starts_with(s.dir.join("files/default")),
        "{stored:?}"
    );
    assert!(stored.is_file());
    assert!(!Path::new("/tmp").join(&marker).exists());
    assert!(!outside.join(&marker).exists());
    // Malformed metadata is a 400 too.
    let r = request(
        "POST",
        &s.url(CREATE),
        &[
            V,
            ("Upload-Length", "3"),
            ("Upload-Metadata", "filename ***"),
        ],
        None,
    );
    assert_eq!(r.status, 400);
}

#[test]
fn read_only_refuses_creation_patch_and_termination() {
    let s = tus_server(json!({"read_only": true}));
    let r = request("POST", &s.url(CREATE), &[V, ("Upload-Length", "3")], None);
    assert_eq!(r.status, 403, "{}", r.body);
    let fake = s.url(&format!("{CREATE}{}", "a".repeat(32)));
    assert_eq!(patch(&fake, 0, b"abc", &[]).status, 403);
    assert_eq!(request("DELETE", &fake, &[V], None).status, 403);
    assert!(!s.dir.join("files/_big").exists() || big_files(&s, "").is_empty());
}

#[test]
fn a_creation_with_a_suspend_header_is_refused_as_go_fastdfs_does() {
    let s = tus_server(json!({}));
    let m = metadata(&[("filename", "s.txt")]);
    let headers = [V, ("Upload-Length", "5"), ("Upload-Metadata", m.as_str())];
    let mut suspended = headers.to_vec();
    suspended.push(("Suspend", "1"));
    let r = request("POST", &s.url(CREATE), &suspended, None);
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(r.h("location").is_none());
    assert_eq!(request("POST", &s.url(CREATE), &headers, None).status, 201);
}

#[test]
fn whitelists_size_limit_and_google_code_apply_at_creation() {
    const SECRET: &str = "JBSWY3DPEHPK3PXP";
    let s = tus_server(json!({
        "extensions": [".txt"],
        "upload_max_bytes": 1000,
        "enable_google_auth": true,
        // A window of ±2 steps (download_token_expire / 30): a code made as a step ends counts.
        "download_token_expire": 60,
        "scenes": [format!("locked:{SECRET}"), "default"],
    }));
    let post = |len: &str, meta: &[(&str, &str)]| {
        let m = metadata(meta);
        request(
            "POST",
            &s.url(CREATE),
            &[V, ("Upload-Length", len), ("Upload-Metadata", &m)],
            None,
        )
    };
    assert_eq!(post("3", &[("filename", "x.exe")]).status, 403);
    assert_eq!(post("1001", &[("filename", "x.txt")]).status, 413);
    assert_eq!(post("0", &[("filename", "x.txt")]).status, 400);
    assert_eq!(
        post("3", &[("filename", "x.txt"), ("scene", "nope")]).status,
        400
    );
    let locked = post("3", &[("filename", "x.txt"), ("scene", "locked")]);
    assert_eq!(locked.status, 401, "{}", locked.body);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let code = fastdfs::totp::code(SECRET, now).unwrap();
    let ok = post(
        "3",
        &[("filename", "x.txt"), ("scene", "locked"), ("code", &code)],
    );
    assert_eq!(ok.status, 201, "{}", ok.body);
    assert_eq!(post("3", &[("filename", "x.txt")]).status, 201);
}

#[test]
fn expired_uploads_are_removed_by_the_sweeper() {
    let s = tus_server(json!({"tus_expire_seconds": 2}));
    let url = create(&s, 100, &[("filename", "old.bin")]);
    assert_eq!(patch(&url, 0, &[1u8; 10], &[]).status, 204);
    let h = head(&url);
    assert!(h.h("upload-expires").is_some());
    let id = id_of(&url).to_string();
    assert!(!big_files(&s, &id).is_empty());
    assert!(
        eventually(Duration::from_secs(20), || big_files(&s, &id).is_empty()),
        "expired upload still on disk: {:?}",
        big_files(&s, &id)
    );
    assert_eq!(head(&url).status, 404);
}

#[test]
fn a_finished_uploads_id_names_its_file_after_the_upload_expired() {
    // go-fastdfs keeps an upload's id for good: its URL and `get_file_info?md5=<id>` go on
    // naming the file the upload became.
    let s = tus_server(json!({"tus_expire_seconds": 2}));
    let data = noise(50_000, 21);
    let url = create(&s, data.len(), &[("filename", "kept.bin")]);
    assert_eq!(patch(&url, 0, &data, &[]).status, 204);
    let id = id_of(&url).to_string();
    assert!(
        eventually(Duration::from_secs(20), || big_files(&s, &id).is_empty()),
        "the finished upload's state still on disk: {:?}",
        big_files(&s, &id)
    );
    let got = agent().get(&url).call().unwrap();
    assert_eq!(got.status(), 200);
    let mut body = Vec::new();
    got.into_reader().read_to_end(&mut body).unwrap();
    assert!(body == data, "the file's bytes");
    let info = request(
        "GET",
        &s.url(&format!("/group1/get_file_info?md5={id}")),
        &[],
        None,
    );
    assert_eq!(info.status, 200, "{}", info.body);
    assert!(info.body.contains(&md5_hex(&data)), "{}", info.body);
    // Deleted by its id (go-fastdfs' LevelDB key, as for get_file_info), the file is gone
    // under its id too.
    let del = request(
        "POST",
        &s.url(&format!("/group1/delete?md5={id}")),
        &[],
        None,
    );
    assert_eq!(del.status, 200, "{}", del.body);
    assert!(del.body.contains("remove success"), "{}", del.body);
    assert!(
        !files_under(&s.dir).iter().any(|f| f.ends_with("kept.bin")),
        "the file is gone"
    );
    assert_eq!(request("GET", &url, &[], None).status, 404);
    let info = request(
        "GET",
        &s.url(&format!("/group1/get_file_info?md5={id}")),
        &[],
        None,
    );
    assert_eq!(info.status, 404, "{}", info.body);
}

#[test]
fn a_second_patch_while_one_is_in_flight_is_refused() {
    // Two executors: the two connections may be served by different ones.
    let s = tus_server(json!({"workers": 2}));
    let url = create(&s, 200, &[("filename", "lock.bin")]);
    let path = url.strip_prefix(&s.base()).unwrap().to_string();
    // The first PATCH sends its head and waits for `100 Continue`, which the server sends
    // when it starts reading the body: by then it holds the upload. Then half the body.
    let mut first = TcpStream::connect(s.addr()).unwrap();
    first
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head_text = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 200\r\n\
         Expect: 100-continue\r\n\r\n"
    );
    first.write_all(head_text.as_bytes()).unwrap();
    let mut interim = [0u8; 25];
    first.read_exact(&mut interim).unwrap();
    assert_eq!(&interim, b"HTTP/1.1 100 Continue\r\n\r\n");
    first.write_all(&[1u8; 100]).unwrap();
    let second = patch(&url, 0, &[2u8; 200], &[]);
    assert_eq!(second.status, 423, "{}", second.body);
    assert_eq!(offset_of(&url), 0);
    first.write_all(&[1u8; 100]).unwrap();
    let mut answer = [0u8; 512];
    let n = first.read(&mut answer).unwrap();
    let answer = String::from_utf8_lossy(&answer[..n]);
    assert!(answer.starts_with("HTTP/1.1 204"), "{answer}");
    let stored = stored_path(&s, &md5_hex(&[1u8; 200]));
    assert_eq!(std::fs::read(stored).unwrap(), vec![1u8; 200]);
}

#[test]
fn get_of_a_finished_upload_url_serves_that_file_with_range_and_the_download_checks() {
    // go-fastdfs' README and its Test_main fetch an upload by its Location URL.
    let s = tus_server(json!({"download_use_token": true, "download_token_secret": "k"}));
    let data = noise(300_000, 7);
    let url = create(&s, data.len(), &[("filename", "fetched.bin")]);
    let unfinished = create(&s, 10, &[("filename", "half.bin")]);
    assert_eq!(patch(&unfinished, 0, b"12345", &[]).status, 204);
    assert_eq!(patch(&url, 0, &data, &[]).status, 204);
    let got = agent().get(&url).call().unwrap();
    assert_eq!(got.status(), 200);
    assert_eq!(got.header("content-length"), Some("300000"));
    assert_eq!(
        got.all("x-content-type-options"),
        vec!["nosniff"],
        "sent once"
    );
    let mut body = Vec::new();
    got.into_reader().read_to_end(&mut body).unwrap();
    assert_eq!(body, data);
    let ranged = agent().get(&url).set("Range", "bytes=-100").call().unwrap();
    assert_eq!(ranged.status(), 206);
    let mut tail = Vec::new();
    ranged.into_reader().read_to_end(&mut tail).unwrap();
    assert_eq!(tail, &data[data.len() - 100..]);
    // get_file_info takes the upload's id for an md5 (go-fastdfs clients find the file so);
    // an unfinished upload's id names nothing yet.
    let id = url.rsplit('/').next().unwrap();
    let info = request(
        "GET",
        &s.url(&format!("/group1/get_file_info?md5={id}")),
        &[],
        None,
    );
    assert_eq!(info.status, 200, "{}", info.body);
    let v: serde_json::Value = serde_json::from_str(&info.body).unwrap();
    assert_eq!(v["data"]["md5"], md5_hex(&data));
    assert_eq!(v["data"]["name"], "fetched.bin");
    // go-fastdfs kept the record under the upload's id like any md5 key, so every lookup by
    // `md5` takes it (SPEC §5.2): check_file_exist, check_files_exist, the second-pass GET.
    let by_id = |path: &str| request("GET", &s.url(&path.replace("ID", id)), &[], None);
    let r = by_id("/group1/check_file_exist?md5=ID");
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.body.contains(&format!("\"md5\":\"{}\"", md5_hex(&data))),
        "{}",
        r.body
    );
    let r = by_id("/group1/check_files_exist?md5s=ID");
    assert!(r.body.contains(&md5_hex(&data)), "{}", r.body);
    let r = by_id("/group1/upload?md5=ID&output=json");
    assert_eq!(r.status, 200, "{}", r.body);
    let v: serde_json::Value = serde_json::from_str(&r.body).unwrap();
    assert_eq!(v["md5"], md5_hex(&data));
    let half = unfinished.rsplit('/').next().unwrap();
    let info = request(
        "GET",
        &s.url(&format!("/group1/get_file_info?md5={half}")),
        &[],
        None,
    );
    assert_eq!(info.status, 404, "{}", info.body);
    // The download checks hold: a non-admin caller without a token is refused.
    assert_eq!(status_from_non_admin(&url, &[]), 401);
    // An unfinished, an unknown or a malformed id is a 404, and never an md5 or path key.
    assert_eq!(request("GET", &unfinished, &[], None).status, 404);
    let unknown = s.url(&format!("{CREATE}{}", "a".repeat(32)));
    assert_eq!(request("GET", &unknown, &[], None).status, 404);
    assert_eq!(
        request("GET", &s.url(&format!("{CREATE}x/../y")), &[], None).status,
        404
    );
    let stored = upload_json(&s, "secret.txt", b"top secret content");
    let md5 = stored["md5"].as_str().unwrap();
    let r = request("GET", &s.url(&format!("{CREATE}{md5}")), &[], None);
    assert_eq!(r.status, 404);
    assert!(!r.body.contains("top secret"), "{}", r.body);
    // Once its file is deleted, the upload URL serves nothing.
    let del = request(
        "POST",
        &s.url(&format!("/group1/delete?md5={}", md5_hex(&data))),
        &[],
        None,
    );
    assert_eq!(del.status, 200, "{}", del.body);
    assert_eq!(request("GET", &url, &[], None).status, 404);
}

#[test]
fn location_follows_the_request_host_and_disabled_tus_is_a_download_path() {
    let s = tus_server(json!({}));
    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Length", "3"), ("Host", "files.example:8443")],
        None,
    );
    assert_eq!(r.status, 201);
    let loc = r.h("location").unwrap();
    assert!(
        loc.starts_with("http://files.example:8443/group1/big/upload/"),
        "{loc}"
    );
    // Forwarded headers count only from trusted proxies.
    let r = request(
        "POST",
        &s.url(CREATE),
        &[
            V,
            ("Upload-Length", "3"),
            ("X-Forwarded-Host", "evil.example"),
        ],
        None,
    );
    assert!(!r.h("location").unwrap().contains("evil"));

    let off = Server::start(json!({"enable_tus": false}));
    let r = request("POST", &off.url(CREATE), &[V, ("Upload-Length", "3")], None);
    assert_ne!(r.status, 201);
    assert!(r.h("tus-resumable").is_none());
}

/// VmHWM (peak resident set) of a process in KiB.
fn peak_rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

#[test]
fn a_one_gib_upload_streams_with_bounded_memory() {
    if !curl_available() {
        return;
    }
    const GIB: u64 = 1 << 30;
    let s = tus_server(json!({}));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("big.bin");
    // Sparse: costs no disk on the client side and reads fast.
    std::fs::File::create(&file).unwrap().set_len(GIB).unwrap();
    let url = create(&s, GIB as usize, &[("filename", "big.bin")]);
    let started = Instant::now();
    let out = Command::new("curl")
        .args([
            "-s",
            "-S",
            "--max-time",
            "300",
            "-D",
            "-",
            "-o",
            "/dev/null",
        ])
        .args([
            "-X",
            "PATCH",
            "-H",
            "Tus-Resumable: 1.0.0",
            "-H",
            "Upload-Offset: 0",
        ])
        .args(["-H", "Content-Type: application/offset+octet-stream", "-T"])
        .arg(&file)
        .arg(&url)
        .output()
        .expect("curl");
    let heads = String::from_utf8_lossy(&out.stdout).to_ascii_lowercase();
    assert!(out.status.success(), "{heads}");
    assert!(heads.contains("204 no content"), "{heads}");
    assert!(heads.contains(&format!("upload-offset: {GIB}")), "{heads}");
    eprintln!("1 GiB tus PATCH took {:?}", started.elapsed());
    let pid = s.child.as_ref().unwrap().id();
    let peak_mib = peak_rss_kib(pid) / 1024;
    eprintln!("server peak RSS {peak_mib} MiB");
    assert!(peak_mib < 200, "server peak RSS {peak_mib} MiB");
    let md5 = heads
        .lines()
        .find_map(|l| l.strip_prefix("x-fastdfs-md5: "))
        .unwrap()
        .trim()
        .to_string();
    let zeros_md5 = {
        use md5::Digest;
        let mut h = md5::Md5::new();
        let block = vec![0u8; 1 << 20];
        for _ in 0..1024 {
            h.update(&block);
        }
        h.finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    assert_eq!(md5, zeros_md5);
    let stored = stored_path(&s, &md5);
    assert_eq!(std::fs::metadata(&stored).unwrap().len(), GIB);
    let download = head(&url).h("x-fastdfs-url").unwrap().to_string();
    let r = agent()
        .get(&download)
        .set("Range", &format!("bytes={}-", GIB - 10))
        .call()
        .unwrap();
    assert_eq!(r.status(), 206);
    let mut tail = Vec::new();
    r.into_reader().read_to_end(&mut tail).unwrap();
    assert_eq!(tail, vec![0u8; 10]);
}

#[test]
fn an_interrupted_patch_keeps_the_bytes_that_arrived() {
    let s = tus_server(json!({}));
    let data = noise(5000, 5);
    let url = create(&s, data.len(), &[("filename", "cut.bin")]);
    let path = url.strip_prefix(&s.base()).unwrap().to_string();
    let mut conn = TcpStream::connect(s.addr()).unwrap();
    let head_text = format!(
        "PATCH {path} HTTP/1.1\r\nHost: x\r\nTus-Resumable: 1.0.0\r\nUpload-Offset: 0\r\n\
         Content-Type: application/offset+octet-stream\r\nContent-Length: 5000\r\n\r\n"
    );
    conn.write_all(head_text.as_bytes()).unwrap();
    conn.write_all(&data[..3000]).unwrap();
    drop(conn);
    assert!(
        eventually(Duration::from_secs(10), || offset_of(&url) == 3000),
        "offset {}",
        offset_of(&url)
    );
    // The interrupted request may still hold the upload for a moment after its bytes are
    // saved (423 Locked, which tus clients retry): retry the same way.
    let mut r = patch(&url, 3000, &data[3000..], &[]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while r.status == 423 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
        r = patch(&url, 3000, &data[3000..], &[]);
    }
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(
        std::fs::read(stored_path(&s, &md5_hex(&data))).unwrap(),
        data
    );
}

#[test]
fn x_http_method_override_turns_a_post_into_a_patch() {
    let s = tus_server(json!({}));
    let url = create(&s, 4, &[("filename", "o.txt")]);
    let r = request(
        "POST",
        &url,
        &[
            V,
            OCTETS,
            ("Upload-Offset", "0"),
            ("X-HTTP-Method-Override", "PATCH"),
        ],
        Some(b"abcd"),
    );
    assert_eq!(r.status, 204, "{}", r.body);
    assert_eq!(r.h("upload-offset"), Some("4"));
}

/// An auth server that allows exactly the requests whose form has `auth_token=good`.
fn auth_server() -> (String, Calls) {
    sink("/auth", |body| {
        let good = body.split('&').any(|kv| kv == "auth_token=good");
        (String::new(), if good { "ok" } else { "fail" }.into())
    })
}

#[test]
fn auth_url_decides_creation_with_the_auth_token_metadata_key() {
    let (auth, seen) = auth_server();
    let s = tus_server(json!({"auth_url": auth}));
    let post = |meta_token: Option<&str>, header: Option<&str>| {
        let mut pairs = vec![("filename", "auth.txt")];
        if let Some(t) = meta_token {
            pairs.push(("auth_token", t));
        }
        let m = metadata(&pairs);
        let mut headers = vec![V, ("Upload-Length", "3"), ("Upload-Metadata", m.as_str())];
        if let Some(t) = header {
            headers.push(("Auth-Token", t));
        }
        request("POST", &s.url(CREATE), &headers, None)
    };
    let none = post(None, None);
    assert_eq!(none.status, 401);
    assert!(none.body.contains("auth_token"), "{}", none.body);
    assert!(seen.lock().unwrap().is_empty(), "no token: not even asked");
    assert_eq!(post(Some("bad"), None).status, 401);
    let big = s.dir.join("files/_big");
    let entries = || big.read_dir().map(|d| d.count()).unwrap_or(0);
    assert_eq!(entries(), 0, "refused creations leave no state behind");
    // Uppy's setMeta({auth_token}): the metadata key, sent as the form field auth_token.
    let ok = post(Some("good"), None);
    assert_eq!(ok.status, 201, "{}", ok.body);
    // The Auth-Token header (as for multipart uploads) is taken when the key is absent.
    assert_eq!(post(None, Some("good")).status, 201);
    let bodies: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    assert!(
        bodies.iter().all(|b| b.contains("filename=auth.txt")),
        "the auth server sees the metadata: {bodies:?}"
    );
    assert_eq!(
        bodies
            .iter()
            .filter(|b| b.contains("auth_token=good"))
            .count(),
        2
    );
    assert!(
        !bodies.iter().any(|b| b.matches("auth_token=").count() > 1),
        "one auth_token field: {bodies:?}"
    );
    // The upload's id is its capability afterwards: PATCH needs no new check.
    let url = ok.h("location").unwrap().to_string();
    assert_eq!(patch(&url, 0, b"abc", &[]).status, 204);
}

#[test]
fn without_the_group_prefix_the_endpoint_is_big_upload() {
    let s = tus_server(json!({"support_group_manage": false}));
    let r = request(
        "POST",
        &s.url("/big/upload/"),
        &[V, ("Upload-Length", "2")],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.h("location").unwrap().to_string();
    assert!(url.starts_with(&s.url("/big/upload/")), "{url}");
    let r = patch(&url, 0, b"ok", &[]);
    assert_eq!(r.status, 204, "{}", r.body);
    let download = r.h("x-fastdfs-url").unwrap();
    assert!(!download.contains("/group1/"), "{download}");
    let (code, body) = call(agent().get(download));
    assert_eq!((code, body.as_str()), (200, "ok"));
    // The prefixed form is not a tus route then.
    let r = request("POST", &s.url(CREATE), &[V, ("Upload-Length", "2")], None);
    assert_ne!(r.status, 201);
}

/// The fields of an urlencoded form (`+` is a space).
fn form_fields(body: &str) -> HashMap<String, String> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let v = percent_encoding::percent_decode_str(&v).decode_utf8_lossy();
            (k.to_string(), v.into_owned())
        })
        .collect()
}

/// A callback server that takes connections and never answers; they stay open until the
/// test process ends.
fn hanging_server() -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hang", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        let mut held = Vec::new();
        for s in listener.incoming().flatten() {
            held.push(s);
        }
    });
    url
}

/// A callback server that answers every request with a redirect to `to`.
fn redirecting_server(to: &str) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/moved", listener.local_addr().unwrap());
    let to = to.to_string();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
            let _ = s.read(&mut [0u8; 8192]);
            let _ = write!(
                s,
                "HTTP/1.1 307 Temporary Redirect\r\nLocation: {to}\r\nContent-Length: 0\r\n\r\n"
            );
        }
    });
    url
}

/// Waits up to `limit` for `calls` to hold `n` entries.
fn wait_calls(calls: &Calls, n: usize, limit: Duration) -> Vec<(String, String)> {
    let until = Instant::now() + limit;
    while calls.lock().unwrap().len() < n && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(50));
    }
    calls.lock().unwrap().clone()
}

#[test]
fn callback_url_gets_the_stored_files_record_and_the_upload_id_as_go_fastdfs_posts_them() {
    if !tuspy_available() {
        return;
    }
    let (hook, calls) = sink("/hook?via=tus", |_| (String::new(), "ignored".into()));
    let s = tus_server(json!({}));
    let data = noise(300_000, 7);
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("notify.bin");
    std::fs::write(&file, &data).unwrap();
    let upload = |name: &str, db: &str| {
        let db = tmp.path().join(db);
        let out = tuspy(
            TUSPY_UPLOAD,
            &[
                &s.url(CREATE),
                file.to_str().unwrap(),
                db.to_str().unwrap(),
                "0",
                "0",
                &format!("filename={name}"),
                &format!("callback_url={hook}"),
            ],
        );
        id_of(out.last().unwrap()).to_string()
    };
    let first = upload("notify.bin", "a.json");
    let got = wait_calls(&calls, 1, Duration::from_secs(10));
    assert_eq!(got.len(), 1, "one notice per completed upload: {got:?}");
    let (head, body) = &got[0];
    assert!(head.starts_with("POST /hook?via=tus HTTP/1.1"), "{head}");
    let lower = head.to_ascii_lowercase();
    assert!(
        lower.contains("content-type: application/x-www-form-urlencoded"),
        "{head}"
    );
    let fields = form_fields(body);
    assert_eq!(fields["id"], first);
    // `info` is the record as get_file_info shows it: go-fastdfs' pretty FileInfo (sorted
    // keys, 2-space indent), sent only once the file is stored and recorded.
    let md5 = md5_hex(&data);
    let r = request(
        "GET",
        &s.url(&format!("/group1/get_file_info?md5={md5}")),
        &[],
        None,
    );
    let recorded: Value = serde_json::from_str(&r.body).unwrap();
    let info: Value = serde_json::from_str(&fields["info"]).unwrap();
    assert_eq!(info, recorded["data"]);
    assert!(
        fields["info"].starts_with("{\n  \"md5\": "),
        "{}",
        fields["info"]
    );
    let keys: Vec<&str> = info
        .as_object()
        .unwrap()
        .keys()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        keys,
        [
            "md5",
            "name",
            "offset",
            "path",
            "peers",
            "rename",
            "scene",
            "size",
            "timeStamp"
        ]
    );
    assert_eq!(std::fs::read(stored_path(&s, &md5)).unwrap(), data);
    // The same content again (a dedup hit): the notice carries the stored file's record
    // and the new upload's id, as go-fastdfs sends it.
    let second = upload("again.bin", "b.json");
    let got = wait_calls(&calls, 2, Duration::from_secs(10));
    assert_eq!(got.len(), 2, "{got:?}");
    let fields = form_fields(&got[1].1);
    assert_eq!(fields["id"], second);
    let info: Value = serde_json::from_str(&fields["info"]).unwrap();
    assert_eq!(info, recorded["data"]);
    // An upload without callback_url notifies nobody.
    let url = create(&s, 3, &[("filename", "quiet.txt")]);
    assert_eq!(patch(&url, 0, b"abc", &[]).status, 204);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(calls.lock().unwrap().len(), 2);
}

#[test]
fn a_hanging_refused_or_redirecting_callback_never_holds_or_fails_the_upload() {
    let (good, calls) = sink("/good", |_| (String::new(), String::new()));
    let (elsewhere, redirected) = sink("/elsewhere", |_| (String::new(), String::new()));
    let refused = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}/refused", l.local_addr().unwrap())
    };
    let hanging = hanging_server();
    let moved = redirecting_server(&elsewhere);
    let s = tus_server(json!({}));
    let upload = |content: &[u8], hook: &str| {
        let url = create(
            &s,
            content.len(),
            &[("filename", "cb.txt"), ("callback_url", hook)],
        );
        let started = Instant::now();
        let r = patch(&url, 0, content, &[]);
        assert_eq!(r.status, 204, "{}", r.body);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "the PATCH does not wait for the callback ({hook}): {:?}",
            started.elapsed()
        );
        let download = r.h("x-fastdfs-url").unwrap().to_string();
        let (code, body) = call(agent().get(&download));
        assert_eq!((code, body.as_bytes()), (200, content));
    };
    // More hanging callbacks than there are sender threads: the queue holds the rest.
    for i in 0..6 {
        upload(format!("hang {i}").as_bytes(), &hanging);
    }
    upload(b"refused", &refused);
    upload(b"moved", &moved);
    upload(b"good", &good);
    // The good notice arrives once the hanging ones time out (10 s each, 4 at a time).
    let got = wait_calls(&calls, 1, Duration::from_secs(40));
    assert_eq!(got.len(), 1, "the reachable callback server was told");
    let info = &form_fields(&got[0].1)["info"];
    assert!(info.contains("\"size\": 4"), "{info}");
    // A redirect is not followed.
    std::thread::sleep(Duration::from_millis(500));
    assert!(redirected.lock().unwrap().is_empty());
    // The server stayed healthy.
    let r = request("OPTIONS", &s.url(CREATE), &[], None);
    assert_eq!(r.status, 200);
}

/// An upload of `content` with `callback_url` `hook`, created and sent by curl from the local
/// address `ip`; true when both requests succeeded.
fn upload_from(s: &Server, ip: &str, content: &[u8], hook: &str) -> bool {
    let curl = |args: &[&str]| {
        let out = Command::new("curl")
            .args(["-sS", "-o", "/dev/null", "-D", "-", "--interface", ip])
            .args(["-H", "Tus-Resumable: 1.0.0"])
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let length = format!("Upload-Length: {}", content.len());
    let meta = format!(
        "Upload-Metadata: {}",
        metadata(&[("filename", "c.txt"), ("callback_url", hook)])
    );
    let head = curl(&["-X", "POST", "-H", &length, "-H", &meta, &s.url(CREATE)]);
    let Some(url) = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_string())
    }) else {
        return false;
    };
    let body = String::from_utf8_lossy(content).into_owned();
    let head = curl(&[
        "-X",
        "PATCH",
        "-H",
        "Upload-Offset: 0",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "--data-binary",
        &body,
        &url,
    ]);
    head.starts_with("HTTP/1.1 204")
}

/// One client cannot crowd the other clients' notices out of the callback queue: a client
/// (here 127.0.0.90) finishing many uploads whose callback server never answers has at most
/// 64 notices waiting (its next are dropped, with a warning) and never holds every sender,
/// so another client's notice is still sent at once.
#[test]
fn one_clients_hanging_callbacks_neither_fill_the_queue_nor_hold_back_anothers_notice() {
    let (good, calls) = sink("/good", |_| (String::new(), String::new()));
    let hanging = hanging_server();
    let s = tus_server(json!({}));
    for i in 0..72 {
        assert!(upload_from(
            &s,
            "127.0.0.90",
            format!("hang {i}").as_bytes(),
            &hanging
        ));
    }
    assert!(upload_from(&s, "127.0.0.91", b"another client", &good));
    let got = wait_calls(&calls, 1, Duration::from_secs(5));
    assert_eq!(got.len(), 1, "the other client's notice was held back");
    assert!(form_fields(&got[0].1)["info"].contains("\"size\": 14"));
    let dropped = "callback queue holds as many of this client's notices as it may";
    assert!(
        eventually(Duration::from_secs(2), || s.stderr().contains(dropped)),
        "its notices past its bound are dropped with a warning"
    );
}

#[test]
fn callbacks_can_be_turned_off_or_limited_to_listed_hosts() {
    let create_with = |s: &Server, hook: &str| {
        let m = metadata(&[("filename", "h.txt"), ("callback_url", hook)]);
        request(
            "POST",
            &s.url(CREATE),
            &[V, ("Upload-Length", "2"), ("Upload-Metadata", &m)],
            None,
        )
    };
    let off = tus_server(json!({"enable_tus_callback": false}));
    let r = create_with(&off, "http://127.0.0.1:9/x");
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("callback"), "{}", r.body);
    assert_eq!(r.h("tus-resumable"), Some("1.0.0"));
    // Without callback_url creation is unaffected.
    let m = metadata(&[("filename", "h.txt")]);
    let plain = request(
        "POST",
        &off.url(CREATE),
        &[V, ("Upload-Length", "2"), ("Upload-Metadata", &m)],
        None,
    );
    assert_eq!(plain.status, 201);

    let (hook, calls) = sink("/hook", |_| (String::new(), String::new()));
    let port = hook
        .trim_start_matches("http://127.0.0.1:")
        .split('/')
        .next()
        .unwrap();
    let listed = tus_server(json!({"tus_callback_hosts": [format!("127.0.0.1:{port}")]}));
    for refused in [
        "http://127.0.0.1:9/x".to_string(),
        format!("http://localhost:{port}/hook"),
        "https://127.0.0.1/x".to_string(),
        "gopher://127.0.0.1/x".to_string(),
    ] {
        let r = create_with(&listed, &refused);
        assert_eq!(r.status, 400, "{refused}: {}", r.body);
    }
    let r = create_with(&listed, &hook);
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.h("location").unwrap().to_string();
    assert_eq!(patch(&url, 0, b"ok", &[]).status, 204);
    assert_eq!(wait_calls(&calls, 1, Duration::from_secs(10)).len(), 1);
    assert!(
        big_files(&listed, "").len() <= 1,
        "refused creations stored nothing"
    );
}

/// go-fastdfs answers `G/big/upload` (no slash) with a `301` to `G/big/upload/`, and the
/// POST a client then repeats as a GET is refused: tuspy given that endpoint cannot upload
/// there (seen with the binary: `405`). Here the endpoint without its slash is the tus
/// endpoint itself (docs/PROTOCOL.md §10).
#[test]
fn a_tus_client_given_the_endpoint_without_its_slash_uploads() {
    if !tuspy_available() {
        return;
    }
    let s = tus_server(json!({}));
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("slash.txt");
    std::fs::write(&file, b"no slash").unwrap();
    let db = tmp.path().join("urls.json");
    let endpoint = s.url("/group1/big/upload");
    let out = tuspy(
        TUSPY_UPLOAD,
        &[
            &endpoint,
            file.to_str().unwrap(),
            db.to_str().unwrap(),
            "0",
            "0",
            "filename=slash.txt",
        ],
    );
    let url = out.last().unwrap();
    assert!(url.starts_with(&s.url(CREATE)), "{url}");
    let h = head(url);
    assert_eq!(h.h("upload-offset"), Some("8"));
    let (code, body) = call(agent().get(h.h("x-fastdfs-url").unwrap()));
    assert_eq!((code, body.as_str()), (200, "no slash"));
}

/// A `callback_url` naming this node's own API (or a peer's) would be POSTed from this node,
/// an admin by address: `G/delete?md5=<any file>` would delete it. A fastdfs node refuses a
/// callback notice on its API routes (`403`); the file stays.
#[test]
fn a_callback_url_aimed_at_the_nodes_own_delete_route_deletes_nothing() {
    let s = tus_server(json!({}));
    let victim = upload_json(&s, "victim.txt", b"must survive");
    let md5 = victim["md5"].as_str().unwrap();
    let hook = s.url(&format!("/group1/delete?md5={md5}"));
    let url = create(&s, 4, &[("filename", "x.txt"), ("callback_url", &hook)]);
    assert_eq!(patch(&url, 0, b"evil", &[]).status, 204);
    let refused = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(s.dir.join("log/fileserver.log"))
            .unwrap_or_default()
            .contains("tus: callback sent")
    });
    assert!(refused, "the notice was sent: {}", s.stderr_tail(4000));
    let (code, body) = call(agent().get(&s.url(victim["path"].as_str().unwrap())));
    assert_eq!((code, body.as_str()), (200, "must survive"));
    let log = std::fs::read_to_string(s.dir.join("log/fileserver.log")).unwrap();
    assert!(log.contains("status=403"), "{log}");
}

/// tus-js-client (Uppy's and most web pages' tus client) is installed: `npm ci` in tests/tusjs.
fn tus_js_available() -> bool {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tusjs");
    let ok = dir.join("node_modules/tus-js-client/package.json").exists()
        && Command::new("node").arg("--version").output().is_ok();
    if !ok {
        skip(
            "tus-js-client tests",
            "node or tus-js-client is not installed: cd tests/tusjs && npm ci",
        );
    }
    ok
}

/// Runs tests/tusjs/tus_client.mjs with `args`; returns its JSON report.
fn tus_js(args: &[&str]) -> Value {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/tusjs");
    let out = Command::new("node")
        .arg(dir.join("tus_client.mjs"))
        .args(args)
        .output()
        .expect("node");
    let stdout = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(stdout.trim()).unwrap_or_else(|_| {
        panic!(
            "tus_client.mjs printed no report: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// The requests of one phase of a tus_client.mjs report: (method, status).
fn requests_of(phase: &Value) -> Vec<(String, u64)> {
    phase["requests"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| (r[0].as_str().unwrap().to_string(), r[1].as_u64().unwrap()))
        .collect()
}

/// Every file stored under `files/` but tus' own directory.
fn stored_files(s: &Server) -> Vec<PathBuf> {
    fn walk(dir: &Path, out: &mut Vec<PathBuf>) {
        for e in std::fs::read_dir(dir).into_iter().flatten() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if !p.ends_with("_big") {
                    walk(&p, out);
                }
            } else {
                out.push(p);
            }
        }
    }
    let mut out = Vec::new();
    walk(&s.dir.join("files"), &mut out);
    out
}

/// tus-js-client with `parallelUploads: 3` sends three partial uploads and then the final
/// upload that concatenates them (go-fastdfs advertises concatenation but stores each
/// partial upload as a file of its own and answers the final upload 404: docs/DEFECTS.md).
/// Here the final upload is the one stored file, its bytes the partial uploads' in order,
/// and the partial uploads are gone.
#[test]
fn tus_js_client_parallel_uploads_are_concatenated_into_one_stored_file() {
    if !tus_js_available() {
        return;
    }
    let s = tus_server(json!({}));
    let data = noise(3_000_000 + 17, 7);
    let file = s.dir.join("parallel.bin");
    std::fs::write(&file, &data).unwrap();
    let report = tus_js(&[
        "upload",
        &s.url(CREATE),
        file.to_str().unwrap(),
        "parallel.bin",
        "3",
        "400000",
    ]);
    assert_eq!(report["ok"], true, "{report}");
    let requests = requests_of(&report["phases"][0]);
    let creations: Vec<_> = requests.iter().filter(|r| r.0 == "POST").collect();
    assert_eq!(
        creations.len(),
        4,
        "three partial uploads and the final: {requests:?}"
    );
    assert!(requests.iter().all(|r| r.1 < 300), "{requests:?}");
    let url = report["url"].as_str().unwrap();
    let h = head(url);
    assert_eq!(h.status, 200);
    let total = data.len().to_string();
    assert_eq!(h.h("upload-length"), Some(total.as_str()));
    assert_eq!(h.h("upload-offset"), Some(total.as_str()));
    let concat = h.h("upload-concat").unwrap().to_string();
    let parts: Vec<&str> = concat.strip_prefix("final;").unwrap().split(' ').collect();
    assert_eq!(parts.len(), 3, "{concat}");
    for part in &parts {
        assert_eq!(
            head(&s.url(part)).status,
            404,
            "partial upload {part} is gone"
        );
        assert!(big_files(&s, id_of(part)).is_empty(), "{part}");
    }
    let md5 = h.h("x-fastdfs-md5").unwrap();
    assert_eq!(md5, md5_hex(&data));
    let stored = stored_files(&s);
    assert_eq!(stored.len(), 1, "one file, not one per part: {stored:?}");
    assert_eq!(std::fs::read(&stored[0]).unwrap(), data);
    assert_eq!(stored_path(&s, md5), stored[0]);
    let mut body = Vec::new();
    let r = agent().get(url).call().unwrap();
    assert_eq!(r.status(), 200);
    r.into_reader().read_to_end(&mut body).unwrap();
    assert!(body == data, "GET of the final upload serves its file");
}

/// tus-js-client stores an upload's URL by the file's fingerprint; stopped after its first
/// chunk, a new Upload of the same file finds it, asks HEAD for the offset and sends the
/// rest only.
#[test]
fn tus_js_client_resumes_an_interrupted_upload_from_its_stored_url() {
    if !tus_js_available() {
        return;
    }
    let s = tus_server(json!({}));
    let data = noise(1_000_000, 11);
    let file = s.dir.join("resumed.bin");
    std::fs::write(&file, &data).unwrap();
    let store = s.dir.join("tus-urls.json");
    let report = tus_js(&[
        "resume",
        &s.url(CREATE),
        file.to_str().unwrap(),
        "resumed.bin",
        "300000",
        store.to_str().unwrap(),
    ]);
    assert_eq!(report["ok"], true, "{report}");
    let first = requests_of(&report["phases"][0]);
    assert_eq!(first[..2], [("POST".into(), 201), ("PATCH".into(), 204)]);
    let second = &report["phases"][1];
    assert_eq!(second["previous"], 1, "{report}");
    let second = requests_of(second);
    assert_eq!(second[0], ("HEAD".into(), 200), "{second:?}");
    assert_eq!(report["phases"][1]["requests"][0][2], "300000");
    let patches = second.iter().filter(|r| r.0 == "PATCH").count();
    assert_eq!(patches, 3, "the rest only: {second:?}");
    let md5 = head(report["url"].as_str().unwrap())
        .h("x-fastdfs-md5")
        .unwrap()
        .to_string();
    assert_eq!(std::fs::read(stored_path(&s, &md5)).unwrap(), data);
}

/// Creates a partial upload of `data`, sent whole; returns its URL.
fn partial(s: &Server, data: &[u8]) -> String {
    let len = data.len().to_string();
    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Length", &len), ("Upload-Concat", "partial")],
        None,
    );
    assert_eq!(r.status, 201, "{}", r.body);
    let url = r.h("location").unwrap().to_string();
    assert_eq!(patch(&url, 0, data, &[]).status, 204);
    url
}

fn final_of(s: &Server, urls: &[&str], extra: &[(&str, &str)]) -> Resp {
    let concat = format!("final;{}", urls.join(" "));
    let mut headers = vec![V, ("Upload-Concat", concat.as_str())];
    headers.extend_from_slice(extra);
    request("POST", &s.url(CREATE), &headers, None)
}

/// The concatenation extension by hand: a whole partial upload is no file, HEAD says what it
/// is; a final upload names whole partial uploads of this endpoint only, takes no bytes of
/// its own, and its length is theirs.
#[test]
fn concatenation_refuses_what_it_cannot_join_and_keeps_the_partial_uploads() {
    let s = tus_server(json!({}));
    let opt = request("OPTIONS", &s.url(CREATE), &[], None);
    assert!(opt
        .h("tus-extension")
        .unwrap()
        .split(',')
        .any(|e| e == "concatenation"));
    let a = partial(&s, b"hello ");
    let b = partial(&s, b"world");
    let h = head(&a);
    assert_eq!(h.h("upload-concat"), Some("partial"));
    assert_eq!(h.h("upload-offset"), Some("6"));
    assert!(
        h.h("x-fastdfs-md5").is_none(),
        "a partial upload is no file"
    );
    assert!(stored_files(&s).is_empty());
    assert_eq!(request("GET", &a, &[], None).status, 404);

    // Unfinished partial: 400; an ordinary upload: 400; unknown: 404.
    let c = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Length", "10"), ("Upload-Concat", "partial")],
        None,
    );
    let unfinished = c.h("location").unwrap().to_string();
    let r = final_of(&s, &[&a, &unfinished], &[]);
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(r.body.contains("not finished"), "{}", r.body);
    let plain = create(&s, 3, &[]);
    assert_eq!(patch(&plain, 0, b"abc", &[]).status, 204);
    assert_eq!(final_of(&s, &[&a, &plain], &[]).status, 400);
    let unknown = s.url(&format!("{CREATE}{}", "0".repeat(32)));
    assert_eq!(final_of(&s, &[&a, &unknown], &[]).status, 404);
    // Another endpoint's URL, a malformed header: 400.
    let elsewhere = format!("http://other.example/group2/big/upload/{}", id_of(&b));
    assert_eq!(final_of(&s, &[&a, &elsewhere], &[]).status, 400);
    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Concat", "final")],
        None,
    );
    assert_eq!(r.status, 400);
    // A final upload with bytes of its own: 403; with a length that is not theirs: 400.
    let concat = format!("final;{a} {b}");
    let r = request(
        "POST",
        &s.url(CREATE),
        &[V, ("Upload-Concat", &concat), OCTETS],
        Some(b"more"),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert_eq!(
        final_of(&s, &[&a, &b], &[("Upload-Length", "12")]).status,
        400
    );
    // Nothing was joined: the one stored file is the ordinary upload's; the partial uploads
    // are all there.
    assert_eq!(stored_files(&s).len(), 1);
    for p in [&a, &b, &unfinished] {
        assert_eq!(head(p).status, 200, "{p}");
    }

    // Joined in the order named; then a PATCH of the final upload is 403.
    let r = final_of(&s, &[&b, &a], &[("Upload-Length", "11")]);
    assert_eq!(r.status, 201, "{}", r.body);
    let fin = r.h("location").unwrap().to_string();
    let (code, body) = call(agent().get(r.h("x-fastdfs-url").unwrap()));
    assert_eq!((code, body.as_str()), (200, "worldhello "));
    assert_eq!(patch(&fin, 11, b"x", &[]).status, 403);
    assert_eq!(head(&a).status, 404);
    assert_eq!(head(&b).status, 404);
    // A partial upload is used once.
    assert_eq!(final_of(&s, &[&a], &[]).status, 404);
}

/// The md5 checkpoints a stored file keeps (`G/md5_checkpoints`, asked as an admin from
/// loopback): status and the JSON answer.
fn checkpoints_of(s: &Server, md5: &str) -> (u16, Value) {
    let (status, body) = call(agent().get(&s.url(&format!("/group1/md5_checkpoints?md5={md5}"))));
    (status, serde_json::from_str(&body).unwrap_or_default())
}

/// A large tus upload keeps its md5 checkpoints as a multipart upload does, so that peers
/// check it in segments: finished in one PATCH (hashed as it came), in two (hashed again at
/// the end), or concatenated from partial uploads (hashed as they are joined).
#[test]
fn a_large_tus_upload_keeps_its_md5_checkpoints_however_it_arrived() {
    const SIZE: usize = 40 << 20;
    let s = tus_server(json!({}));
    let whole = |seed: u64| {
        let data = noise(SIZE, seed);
        let url = create(&s, SIZE, &[("filename", "one.bin")]);
        assert_eq!(patch(&url, 0, &data, &[]).status, 204);
        md5_hex(&data)
    };
    let in_two = |seed: u64| {
        let data = noise(SIZE, seed);
        let url = create(&s, SIZE, &[("filename", "two.bin")]);
        let half = SIZE / 2 + 12_345;
        assert_eq!(patch(&url, 0, &data[..half], &[]).status, 204);
        assert_eq!(patch(&url, half as u64, &data[half..], &[]).status, 204);
        md5_hex(&data)
    };
    let joined = |seed: u64| {
        let data = noise(SIZE, seed);
        let cut = 9 << 20;
        let parts = [partial(&s, &data[..cut]), partial(&s, &data[cut..])];
        let r = final_of(&s, &[&parts[0], &parts[1]], &[]);
        assert_eq!(r.status, 201, "{}", r.body);
        md5_hex(&data)
    };
    let first = whole(1);
    if checkpoints_of(&s, &first).0 == 404 && !user_attributes_work(&s.dir) {
        return; // a filesystem without user attributes keeps none
    }
    for md5 in [first, in_two(2), joined(3)] {
        let (status, kept) = checkpoints_of(&s, &md5);
        assert_eq!(status, 200, "{md5}: {kept}");
        assert_eq!(kept["data"]["every"], 8 << 20);
        assert_eq!(
            kept["data"]["states"].as_str().unwrap().len(),
            4 * 32,
            "a state at 8, 16, 24 and 32 MiB"
        );
    }
    // A small upload keeps none.
    let small = noise(1 << 20, 4);
    let url = create(&s, small.len(), &[("filename", "small.bin")]);
    assert_eq!(patch(&url, 0, &small, &[]).status, 204);
    assert_eq!(checkpoints_of(&s, &md5_hex(&small)).0, 404);
}
