//! The S3 listener driven by S3 clients as users run them, each the real program against the
//! real binary: the AWS SDK for JavaScript v3 (tests/s3js/s3_sdk.mjs with
//! `@aws-sdk/client-s3`, `lib-storage` and `s3-request-presigner`, on node: CRC32 checksums
//! and aws-chunked trailers by default), s3cmd (Signature V4 and V2), s3fs-fuse (a bucket
//! mounted as a file system), and rclone and the AWS CLI syncing a tree with a multipart file
//! (tests/s3.rs drives boto3 and more of rclone's and the AWS CLI's commands). What a client reports is checked against what the server holds,
//! through curl's own SigV4 signing (`--aws-sigv4`) and go-fastdfs' download URLs: bytes,
//! ETags (the md5, or S3's multipart form), listings and error codes, never the exit status
//! alone.
//!
//! A missing client is a skip with a clear message (`common::skip`); scripts/test-all.sh
//! installs them (`npm ci` in tests/s3js, `pip install s3cmd`, `apt-get install s3fs rclone
//! awscli`, or `pip install awscli`).
//! Every client runs under a time limit, with a HOME of its own, and talks only to 127.0.0.1.
mod common;
use common::s3::{available, have_aws, have_rclone, run, Output, S3};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const MIB: usize = 1 << 20;
const KEY_ID: &str = "AKIAFASTDFSCLIENTS01";
/// With the `/` and `+` real secrets have (s3fs' passwd file and s3cmd's config keep them).
const SECRET: &str = "clients/Secret+Key0123456789abcdefghijklm";
/// The ETag of an empty object (and of a folder marker).
const EMPTY_MD5: &str = "d41d8cd98f00b204e9800998ecf8427e";

/// The clients' server: one read-write key.
impl S3 {
    fn start() -> S3 {
        S3::with_keys(json!([
            {"access_key_id": KEY_ID, "secret_access_key": SECRET,
             "buckets": ["*"], "read_only": false}
        ]))
    }

    /// A request signed by curl's own SigV4 (`--aws-sigv4`), a client independent of the
    /// ones under test: (status, response head, body).
    fn signed(&self, method: &str, path: &str) -> (u16, String, Vec<u8>) {
        self.signed_with(method, path, None)
    }

    /// [`S3::signed`] with the body in the file `data` when given.
    fn signed_with(&self, method: &str, path: &str, data: Option<&Path>) -> (u16, String, Vec<u8>) {
        let tmp = tempfile::tempdir().unwrap();
        let (head, body) = (tmp.path().join("head"), tmp.path().join("body"));
        let mut cmd = self.command("curl");
        cmd.args(["-s", "--max-time", "30", "-o"])
            .arg(&body)
            .arg("-D")
            .arg(&head)
            .args(["-w", "%{http_code}", "--aws-sigv4", "aws:amz:us-east-1:s3"])
            .args(["--user", &format!("{KEY_ID}:{SECRET}")])
            .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
        match (method, data) {
            ("HEAD", _) => cmd.arg("-I"),
            (m, Some(file)) => cmd
                .args(["-X", m, "--data-binary"])
                .arg(format!("@{}", file.display())),
            ("PUT", None) => cmd.args(["-X", "PUT", "--data-binary", ""]),
            (m, None) => cmd.args(["-X", m]),
        };
        cmd.arg(format!("{}{path}", self.endpoint()));
        let out = run(cmd, Duration::from_secs(40));
        let status = out.stdout.trim().parse().unwrap_or(0);
        let head = std::fs::read_to_string(&head).unwrap_or_default();
        (status, head, std::fs::read(&body).unwrap_or_default())
    }

    /// (status, ETag without quotes) of a signed HEAD of `/bucket/key`.
    fn head(&self, path: &str) -> (u16, String) {
        let (status, head, _) = self.signed("HEAD", path);
        let etag = head
            .lines()
            .find_map(|l| {
                let (n, v) = l.split_once(':')?;
                n.eq_ignore_ascii_case("etag")
                    .then(|| v.trim().trim_matches('"').to_string())
            })
            .unwrap_or_default();
        (status, etag)
    }

    /// The keys of a bucket, from a signed ListObjectsV2 (at most 1000).
    fn keys(&self, bucket: &str) -> Vec<String> {
        let (status, _, body) = self.signed("GET", &format!("/{bucket}?list-type=2"));
        let body = String::from_utf8_lossy(&body).into_owned();
        assert_eq!(status, 200, "listing {bucket}: {body}");
        body.split("<Key>")
            .skip(1)
            .map(|s| s.split("</Key>").next().unwrap().replace("&amp;", "&"))
            .collect()
    }

    /// The body of a GET of the go-fastdfs download URL of `bucket/key`.
    fn download(&self, bucket: &str, key: &str) -> (u16, Vec<u8>) {
        let path = format!("/group1/{bucket}/{}", key.replace(' ', "%20"));
        let r = match agent().get(&self.server.url(&path)).call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("transport error: {e}"),
        };
        let status = r.status();
        let mut body = Vec::new();
        r.into_reader().read_to_end(&mut body).unwrap();
        (status, body)
    }

    /// Asserts the object `bucket/key` holds `data`: signed HEAD's ETag `etag`, and the same
    /// bytes through go-fastdfs' download URL.
    fn assert_object(&self, bucket: &str, key: &str, data: &[u8], etag: &str) {
        let path = format!("/{bucket}/{}", urlencode_path(key));
        assert_eq!(self.head(&path), (200, etag.to_string()), "HEAD {path}");
        let (status, body) = self.download(bucket, key);
        assert_eq!(status, 200, "go-fastdfs download of {bucket}/{key}");
        assert!(
            body == data,
            "{bucket}/{key}: other bytes ({} of {})",
            body.len(),
            data.len()
        );
    }
}

/// `key` percent-encoded for a path, `/` kept.
fn urlencode_path(key: &str) -> String {
    key.split('/').map(urlencode).collect::<Vec<_>>().join("/")
}

/// S3's ETag of `data` uploaded in parts of `part` bytes (no quotes).
fn multipart_etag(data: &[u8], part: usize) -> String {
    parts_etag(&data.chunks(part).collect::<Vec<_>>())
}

/// S3's ETag of an object uploaded as `parts` (no quotes).
fn parts_etag(parts: &[&[u8]]) -> String {
    use md5::Digest;
    let mut digests = Vec::new();
    for p in parts {
        digests.extend_from_slice(&md5::Md5::digest(p));
    }
    format!("{}-{}", md5_hex(&digests), parts.len())
}

/// The base64 CRC32 S3 gives as `x-amz-checksum-crc32`.
fn crc32_b64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(crc32fast::hash(data).to_be_bytes())
}

/// `path -> bytes` of every file under `dir`, paths relative with `/`.
fn tree(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.insert(rel, std::fs::read(&p).unwrap());
            }
        }
    }
    out
}

// ------------------------------------------------------------------ curl --aws-sigv4 ----

/// curl's (major, minor) version.
fn curl_version() -> (u32, u32) {
    let out = Command::new("curl").arg("--version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let v = text.split_whitespace().nth(1).unwrap_or("0.0");
    let mut n = v.split('.').map(|p| p.parse().unwrap_or(0));
    (n.next().unwrap_or(0), n.next().unwrap_or(0))
}

/// The text of the first `<tag>` element of an XML body.
fn xml_text(body: &[u8], tag: &str) -> String {
    let body = String::from_utf8_lossy(body);
    let open = format!("<{tag}>");
    let from = body.find(&open).map(|i| i + open.len());
    let to = body.find(&format!("</{tag}>"));
    match (from, to) {
        (Some(a), Some(b)) if a <= b => body[a..b].to_string(),
        _ => panic!("no <{tag}> in {body}"),
    }
}

/// An ETag header's value, without quotes.
fn etag_of(head: &str) -> String {
    head.lines()
        .find_map(|l| {
            let (n, v) = l.split_once(':')?;
            n.eq_ignore_ascii_case("etag")
                .then(|| v.trim().trim_matches('"').to_string())
        })
        .unwrap_or_default()
}

#[test]
fn curl_aws_sigv4_uploads_in_parts_lists_and_tags_with_the_query_forms_it_signs() {
    let s3 = S3::start();
    let work = tempfile::tempdir().unwrap();
    let b = "crl";
    assert_eq!(s3.signed("PUT", &format!("/{b}")).0, 200, "CreateBucket");
    // A key with a space, a plus and a non-ASCII letter, written in canonical form (upper-case
    // escapes): curl before 8.3 signs the path as written.
    let key = "dir one/caf\u{e9}+x y.bin";
    let path = format!("/{b}/{}", urlencode_path(key));
    // CreateMultipartUpload as `?uploads`: curl before 8.5 signs it without `=`.
    let (status, _, body) = s3.signed("POST", &format!("{path}?uploads"));
    assert_eq!(status, 200, "?uploads: {}", String::from_utf8_lossy(&body));
    let id = xml_text(&body, "UploadId");
    let (status, _, body) = s3.signed("GET", &format!("/{b}?uploads"));
    assert_eq!(
        status,
        200,
        "ListMultipartUploads: {}",
        String::from_utf8_lossy(&body)
    );
    assert_eq!(xml_text(&body, "UploadId"), id);
    // UploadPart with its parameters in S3's order (sorted, as SigV4 wants them).
    let parts = [noise(5 * MIB, 21), noise(1000, 22)];
    let mut etags = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let file = work.path().join(format!("part{i}"));
        std::fs::write(&file, part).unwrap();
        let q = format!("partNumber={}&uploadId={}", i + 1, urlencode(&id));
        let (status, head, body) = s3.signed_with("PUT", &format!("{path}?{q}"), Some(&file));
        assert_eq!(
            status,
            200,
            "UploadPart {q}: {}",
            String::from_utf8_lossy(&body)
        );
        etags.push(etag_of(&head));
    }
    // Unsorted, `uploadId` first: curl sorts the query only from 8.3 on; before, it signs
    // what S3 (and we) do not, and the request is refused whole.
    let file = work.path().join("part1");
    let unsorted = format!("{path}?uploadId={}&partNumber=2", urlencode(&id));
    let (status, _, body) = s3.signed_with("PUT", &unsorted, Some(&file));
    if curl_version() >= (8, 3) {
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    } else {
        assert_eq!(status, 403, "{}", String::from_utf8_lossy(&body));
        assert_eq!(xml_text(&body, "Code"), "SignatureDoesNotMatch");
    }
    let complete = work.path().join("complete.xml");
    let list: String = etags
        .iter()
        .enumerate()
        .map(|(i, e)| {
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{e}\"</ETag></Part>",
                i + 1
            )
        })
        .collect();
    let xml = format!("<CompleteMultipartUpload>{list}</CompleteMultipartUpload>");
    std::fs::write(&complete, xml).unwrap();
    let q = format!("uploadId={}", urlencode(&id));
    let (status, _, body) = s3.signed_with("POST", &format!("{path}?{q}"), Some(&complete));
    assert_eq!(status, 200, "Complete: {}", String::from_utf8_lossy(&body));
    let all: Vec<u8> = parts.concat();
    let refs: Vec<&[u8]> = parts.iter().map(|p| &p[..]).collect();
    s3.assert_object(b, key, &all, &parts_etag(&refs));
    // ListObjectsV2 with an encoded prefix, and the bare subresources curl signs bare.
    let q = format!("list-type=2&prefix={}", urlencode("dir one/"));
    let (status, _, body) = s3.signed("GET", &format!("/{b}?{q}"));
    assert_eq!(status, 200, "{q}: {}", String::from_utf8_lossy(&body));
    assert_eq!(xml_text(&body, "Key"), key);
    for sub in ["location", "versioning", "tagging"] {
        let target = if sub == "tagging" {
            path.clone()
        } else {
            format!("/{b}")
        };
        let (status, _, body) = s3.signed("GET", &format!("{target}?{sub}"));
        assert_eq!(status, 200, "?{sub}: {}", String::from_utf8_lossy(&body));
    }
    let (status, _, _) = s3.signed("DELETE", &path);
    assert_eq!(status, 204, "DeleteObject");
    assert_eq!(s3.keys(b), Vec::<String>::new());
}

// ------------------------------------------------------------- AWS SDK for JavaScript v3 ----

fn js_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3js")
}

fn have_js_sdk(test: &str) -> bool {
    if !available(test, "node", &["--version"], "node is not installed") {
        return false;
    }
    let installed = js_dir()
        .join("node_modules/@aws-sdk/client-s3/package.json")
        .exists();
    if !installed {
        skip(
            test,
            "the AWS SDK for JavaScript is not installed: cd tests/s3js && npm ci",
        );
    }
    installed
}

/// The JSON object s3_sdk.mjs printed; a step that failed is `{error, status, message}`.
fn js_step<'v>(r: &'v Value, name: &str) -> &'v Value {
    let v = &r[name];
    assert!(v.is_object(), "step {name} missing: {r}");
    assert!(
        v.get("message").is_none(),
        "step {name} failed with the JS SDK: {v}"
    );
    v
}

#[test]
fn the_js_sdk_v3_puts_gets_lists_copies_uploads_in_parts_presigns_and_deletes_with_checksums() {
    let test =
        "the_js_sdk_v3_puts_gets_lists_copies_uploads_in_parts_presigns_and_deletes_with_checksums";
    if !have_js_sdk(test) {
        return;
    }
    let s3 = S3::start();
    let dir = tempfile::tempdir().unwrap();
    let small = b"hello from the JS SDK v3\n".to_vec();
    let stream = noise(300 * 1024 + 7, 1);
    let big = noise(12 * MIB + 12345, 2);
    for (name, data) in [
        ("small.txt", &small),
        ("stream.bin", &stream),
        ("big.bin", &big),
    ] {
        std::fs::write(dir.path().join(name), data).unwrap();
    }
    let mut cmd = s3.command("node");
    cmd.current_dir(js_dir())
        .arg("s3_sdk.mjs")
        .args(["--endpoint", &s3.endpoint(), "--bucket", "jsb"])
        .args(["--key", &format!("{KEY_ID}:{SECRET}")])
        .arg("--dir")
        .arg(dir.path());
    let out = run(cmd, Duration::from_secs(180));
    assert!(
        out.status.success(),
        "s3_sdk.mjs: {}\n--- server log:\n{}",
        out.text(),
        s3.log_tail()
    );
    let last = out.stdout.lines().last().unwrap_or("");
    let r: Value =
        serde_json::from_str(last).unwrap_or_else(|e| panic!("not JSON ({e}): {}", out.text()));
    let got = |name: &str| std::fs::read(dir.path().join(name)).unwrap();
    let q = |s: String| format!("\"{s}\"");

    assert_eq!(js_step(&r, "create_bucket")["status"], 200);
    // PutObject with the SDK's default CRC32: verified and echoed.
    let put = js_step(&r, "put_small");
    assert_eq!(put["etag"], q(md5_hex(&small)));
    assert_eq!(put["crc32"], crc32_b64(&small));
    // A stream goes aws-chunked with a CRC32 trailer.
    let put = js_step(&r, "put_stream");
    assert_eq!(put["etag"], q(md5_hex(&stream)));
    assert_eq!(put["crc32"], crc32_b64(&stream));
    let get = js_step(&r, "get_small");
    assert_eq!(get["etag"], q(md5_hex(&small)));
    assert_eq!(get["length"], small.len());
    assert_eq!(get["type"], "text/plain; charset=utf-8");
    assert_eq!(get["metadata"], json!({"origin": "js-sdk"}));
    assert_eq!(
        get["crc32"],
        crc32_b64(&small),
        "checksum mode returns the stored CRC32"
    );
    assert_eq!(got("small.got"), small);
    assert_eq!(js_step(&r, "get_stream")["length"], stream.len());
    assert!(
        got("stream.got") == stream,
        "GetObject of the streamed object"
    );
    let range = js_step(&r, "get_range");
    assert_eq!(range["status"], 206);
    assert_eq!(range["range"], format!("bytes 10-19/{}", stream.len()));
    let hex: String = stream[10..20].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(range["hex"], hex);
    let head = js_step(&r, "head_small");
    assert_eq!(head["etag"], q(md5_hex(&small)));
    assert_eq!(head["metadata"], json!({"origin": "js-sdk"}));
    assert_eq!(js_step(&r, "copy")["etag"], q(md5_hex(&small)));

    // lib-storage's Upload: 5 MiB parts, three at a time, each with its CRC32.
    let big_etag = multipart_etag(&big, 5 * MIB);
    let up = js_step(&r, "upload");
    assert_eq!(up["etag"], q(big_etag.clone()));
    assert_eq!(up["key"], "big/big.bin");
    assert_eq!(js_step(&r, "get_big")["etag"], q(big_etag.clone()));
    assert!(got("big.got") == big, "GetObject of the multipart object");
    // Asked for CRC32, lib-storage's object gets S3's composite checksum of its parts, and a
    // FULL_OBJECT CRC32 upload the whole object's CRC (the SDK validated the body with it).
    let part_crcs: Vec<u8> = big
        .chunks(5 * MIB)
        .flat_map(|p| crc32fast::hash(p).to_be_bytes())
        .collect();
    let composite = format!("{}-{}", crc32_b64(&part_crcs), big.len().div_ceil(5 * MIB));
    let up = js_step(&r, "upload_crc32");
    assert_eq!(up["etag"], q(big_etag.clone()));
    assert_eq!(
        (&up["crc32"], &up["type"]),
        (&json!(composite), &json!("COMPOSITE"))
    );
    let get = js_step(&r, "get_crc32");
    assert_eq!(
        (&get["crc32"], &get["type"]),
        (&json!(composite), &json!("COMPOSITE"))
    );
    assert!(
        got("crc.got") == big,
        "GetObject of the composite-checksum object"
    );
    let full = js_step(&r, "upload_full_object");
    let whole = json!([crc32_b64(&big), "FULL_OBJECT"]);
    assert_eq!(full["create"], json!(["CRC32", "FULL_OBJECT"]), "{full}");
    assert_eq!(full["complete"], whole, "{full}");
    assert_eq!(full["get"], whole, "{full}");
    assert!(
        got("full.got") == big,
        "GetObject of the full-object-checksum object"
    );
    let presigned = js_step(&r, "presigned_get");
    assert_eq!(presigned["status"], 200);
    assert!(got("presigned.got") == stream, "the presigned GET's body");

    let folder = js_step(&r, "folder");
    assert_eq!(folder["put_etag"], q(EMPTY_MD5.into()));
    assert_eq!(folder["head_etag"], q(EMPTY_MD5.into()));
    assert_eq!(folder["head_length"], 0);

    // Listed two keys a page, in byte order, with sizes and ETags; the folder marker is an
    // empty object, and a common prefix at the top.
    let list = js_step(&r, "list");
    let entry = |k: &str, d: &[u8]| json!([k, d.len(), q(md5_hex(d))]);
    assert_eq!(
        list["keys"],
        json!([
            ["big/big.bin", big.len(), q(big_etag.clone())],
            entry("copies/small-copy.txt", &small),
            entry("docs/small.txt", &small),
            entry("docs/stream.bin", &stream),
            entry("folder/", b""),
        ])
    );
    assert_eq!(list["pages"], 3);
    assert_eq!(
        list["prefixes"],
        json!(["big/", "copies/", "docs/", "folder/"])
    );
    assert_eq!(list["top_keys"], json!([]));

    let del = js_step(&r, "delete_objects");
    assert_eq!(
        del["deleted"],
        json!(["copies/small-copy.txt", "docs/small.txt", "never/was"])
    );
    assert_eq!(del["errors"], json!([]));
    assert_eq!(js_step(&r, "delete_object")["status"], 204);
    assert_eq!(js_step(&r, "delete_object")["folder_status"], 204);
    let after = js_step(&r, "list_after");
    assert_eq!(
        after["keys"],
        json!([["big/big.bin", big.len(), q(big_etag.clone())]])
    );

    let errors = js_step(&r, "errors");
    let error = |name: &str, code: &str, status: u16| {
        assert_eq!(
            errors[name],
            json!({"error": code, "status": status}),
            "{name}"
        )
    };
    error("get_missing", "NoSuchKey", 404);
    error("head_missing", "NotFound", 404);
    error("folder_gone", "NotFound", 404);
    error("no_bucket", "NoSuchBucket", 404);
    error("bad_secret", "SignatureDoesNotMatch", 403);
    error("bad_checksum", "BadDigest", 400);

    // What the server holds, seen by other clients.
    s3.assert_object("jsb", "big/big.bin", &big, &big_etag);
    assert_eq!(
        s3.head("/jsb/bad/crc").0,
        404,
        "a PUT with a wrong CRC32 stored nothing"
    );
    assert_eq!(s3.keys("jsb"), ["big/big.bin"]);
    assert!(
        !s3.bucket_dir("jsb").join("folder").exists(),
        "the marker's directory is removed"
    );
}

// ---------------------------------------------------------------------------------- s3cmd ----

/// s3cmd with a config of its own for this server: path-style, plain HTTP, Signature V4 or
/// (`v2`) V2, one retry at most (a refused request fails the command at once).
fn s3cmd(s3: &S3, v2: bool, args: &[&str]) -> Output {
    let cfg = s3
        .home
        .path()
        .join(if v2 { "s3cfg-v2" } else { "s3cfg-v4" });
    if !cfg.exists() {
        let host = format!("127.0.0.1:{}", s3.port);
        let text = format!(
            "[default]\naccess_key = {KEY_ID}\nsecret_key = {SECRET}\nhost_base = {host}\n\
             host_bucket = {host}\nuse_https = False\nbucket_location = us-east-1\n\
             signature_v2 = {}\nmax_retries = 1\nprogress_meter = False\n",
            if v2 { "True" } else { "False" }
        );
        std::fs::write(&cfg, text).unwrap();
    }
    let mut cmd = s3.command("s3cmd");
    cmd.arg("-c").arg(&cfg).args(args);
    run(cmd, Duration::from_secs(120))
}

/// s3cmd that must succeed.
fn s3cmd_ok(s3: &S3, v2: bool, args: &[&str]) -> Output {
    let out = s3cmd(s3, v2, args);
    assert!(
        out.status.success(),
        "s3cmd {args:?} failed: {}\n--- server log:\n{}",
        out.text(),
        s3.log_tail()
    );
    out
}

fn have_s3cmd(test: &str) -> bool {
    available(
        test,
        "s3cmd",
        &["--version"],
        "s3cmd is not installed: pip install s3cmd",
    )
}

/// put/get/ls/cp/mv/signurl/sync/multipart/del/rb through s3cmd, each result checked on the
/// server with curl's SigV4 and go-fastdfs' download URLs.
fn s3cmd_round_trip(v2: bool) {
    let s3 = S3::start();
    let b = if v2 { "cmd-v2" } else { "cmd-v4" };
    let url = |k: &str| format!("s3://{b}/{k}");
    let work = tempfile::tempdir().unwrap();
    let file = |n: &str| work.path().join(n).to_string_lossy().into_owned();
    s3cmd_ok(&s3, v2, &["mb", &url("")]);
    assert!(s3.bucket_dir(b).is_dir());

    // A key with a space and a plus (signed and stored as they are).
    let small = b"s3cmd small object\n".to_vec();
    std::fs::write(file("small"), &small).unwrap();
    s3cmd_ok(&s3, v2, &["put", &file("small"), &url("docs/a b+c.txt")]);
    s3.assert_object(b, "docs/a b+c.txt", &small, &md5_hex(&small));
    let ls = s3cmd_ok(&s3, v2, &["ls", "-r", &url("")]);
    assert!(
        ls.stdout
            .contains(&format!("{}  {}", small.len(), url("docs/a b+c.txt"))),
        "{}",
        ls.text()
    );
    s3cmd_ok(
        &s3,
        v2,
        &["get", "--force", &url("docs/a b+c.txt"), &file("small.got")],
    );
    assert_eq!(std::fs::read(file("small.got")).unwrap(), small);

    // Multipart: 5 MiB parts, the S3 multipart ETag.
    let big = noise(11 * MIB + 7, if v2 { 3 } else { 4 });
    std::fs::write(file("big"), &big).unwrap();
    s3cmd_ok(
        &s3,
        v2,
        &[
            "put",
            "--multipart-chunk-size-mb=5",
            &file("big"),
            &url("big.bin"),
        ],
    );
    s3.assert_object(b, "big.bin", &big, &multipart_etag(&big, 5 * MIB));
    s3cmd_ok(
        &s3,
        v2,
        &["get", "--force", &url("big.bin"), &file("big.got")],
    );
    assert!(
        std::fs::read(file("big.got")).unwrap() == big,
        "s3cmd get of big.bin"
    );

    // Server-side copy and move; a V2 presigned URL (s3cmd signs URLs with V2 always).
    s3cmd_ok(
        &s3,
        v2,
        &["cp", &url("docs/a b+c.txt"), &url("copy/one.txt")],
    );
    s3cmd_ok(
        &s3,
        v2,
        &["mv", &url("copy/one.txt"), &url("moved/one.txt")],
    );
    s3.assert_object(b, "moved/one.txt", &small, &md5_hex(&small));
    assert_eq!(
        s3.head(&format!("/{b}/copy/one.txt")).0,
        404,
        "mv deletes its source"
    );
    let signed = s3cmd_ok(&s3, v2, &["signurl", &url("moved/one.txt"), "+300"]);
    let (status, body) = call(agent().get(signed.stdout.trim()));
    assert_eq!((status, body.into_bytes()), (200, small.clone()), "signurl");

    s3cmd_sync(&s3, v2, b, &work);

    // An object ACL the bucket does not give is refused, and nothing is stored.
    let public = s3cmd(
        &s3,
        v2,
        &["put", "--acl-public", &file("small"), &url("pub.txt")],
    );
    assert!(!public.status.success(), "{}", public.text());
    assert!(
        public.stderr.contains("501 (NotImplemented)"),
        "{}",
        public.text()
    );
    assert_eq!(s3.head(&format!("/{b}/pub.txt")).0, 404);
    // A missing key is an error, not an empty file.
    let missing = s3cmd(
        &s3,
        v2,
        &["get", "--force", &url("nothing"), &file("nothing")],
    );
    assert!(!missing.status.success(), "{}", missing.text());
    assert!(
        missing.stderr.contains("does not exist"),
        "{}",
        missing.text()
    );

    s3cmd_ok(&s3, v2, &["del", &url("docs/a b+c.txt")]);
    assert_eq!(s3.head(&format!("/{b}/docs/a%20b%2Bc.txt")).0, 404);
    s3cmd_ok(&s3, v2, &["del", "--recursive", "--force", &url("")]);
    assert_eq!(s3.keys(b), Vec::<String>::new());
    s3cmd_ok(&s3, v2, &["rb", &url("")]);
    assert!(
        !s3.bucket_dir(b).exists(),
        "rb removes the bucket's directory"
    );
    let buckets = s3cmd_ok(&s3, v2, &["ls"]);
    assert!(!buckets.stdout.contains(b), "{}", buckets.text());
}

/// `s3cmd sync` up, again (nothing to send), and back down: the same tree.
fn s3cmd_sync(s3: &S3, v2: bool, b: &str, work: &tempfile::TempDir) {
    let up = work.path().join("tree");
    let files = [
        ("a.txt", b"a\n".to_vec()),
        ("sp ace+plus.txt", b"x y".to_vec()),
        ("sub/deeper/b.bin", noise(70_000, 5)),
    ];
    for (rel, data) in &files {
        let p = up.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    let src = format!("{}/", up.display());
    let dst = format!("s3://{b}/tree/");
    let first = s3cmd_ok(s3, v2, &["sync", &src, &dst]);
    assert_eq!(
        first.stdout.matches("upload:").count(),
        3,
        "{}",
        first.text()
    );
    for (rel, data) in &files {
        s3.assert_object(b, &format!("tree/{rel}"), data, &md5_hex(data));
    }
    let again = s3cmd_ok(s3, v2, &["sync", &src, &dst]);
    assert_eq!(
        again.stdout.matches("upload:").count(),
        0,
        "{}",
        again.text()
    );
    let down = work.path().join("back");
    std::fs::create_dir_all(&down).unwrap();
    s3cmd_ok(s3, v2, &["sync", &dst, &format!("{}/", down.display())]);
    assert_eq!(tree(&down), tree(&up), "the tree synced back down");
}

#[test]
fn s3cmd_with_signature_v4_round_trips_objects_multipart_uploads_and_syncs() {
    if have_s3cmd("s3cmd_with_signature_v4_round_trips_objects_multipart_uploads_and_syncs") {
        s3cmd_round_trip(false);
    }
}

#[test]
fn s3cmd_with_signature_v2_round_trips_objects_multipart_uploads_and_syncs() {
    if have_s3cmd("s3cmd_with_signature_v2_round_trips_objects_multipart_uploads_and_syncs") {
        s3cmd_round_trip(true);
    }
}

// ------------------------------------------------------------------------------ s3fs-fuse ----

/// A bucket mounted with s3fs-fuse (in the foreground, our child); unmounted on drop.
struct Mount {
    child: Child,
    dir: tempfile::TempDir,
    log: PathBuf,
}

impl Mount {
    fn start(s3: &S3, bucket: &str) -> Mount {
        let dir = tempfile::tempdir().unwrap();
        let passwd = s3.home.path().join("passwd-s3fs");
        std::fs::write(&passwd, format!("{KEY_ID}:{SECRET}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&passwd, std::fs::Permissions::from_mode(0o600)).unwrap();
        let log = s3.home.path().join("s3fs.log");
        let options = [
            format!("url={}", s3.endpoint()),
            "use_path_request_style".into(),
            format!("passwd_file={}", passwd.display()),
            "endpoint=us-east-1".into(),
            "sigv4".into(),
            "retries=1".into(),
            "dbglevel=info".into(),
        ];
        let mut cmd = s3.command("s3fs");
        cmd.arg(bucket)
            .arg(dir.path())
            .arg("-f")
            .args(["-o", &options.join(",")])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap());
        let child = cmd.spawn().expect("start s3fs");
        let mut m = Mount { child, dir, log };
        let mounted = eventually(Duration::from_secs(15), || {
            m.is_mounted() || matches!(m.child.try_wait(), Ok(Some(_)))
        });
        assert!(
            mounted && m.is_mounted(),
            "s3fs did not mount:\n{}",
            m.log()
        );
        m
    }

    fn is_mounted(&self) -> bool {
        let at = self.dir.path().to_string_lossy().into_owned();
        std::fs::read_to_string("/proc/mounts")
            .unwrap_or_default()
            .lines()
            .any(|l| l.split(' ').nth(1) == Some(at.as_str()))
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn log(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let start = (log.len().saturating_sub(4000)..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(0);
        log[start..].to_string()
    }

    /// The names in directory `rel` of the mount, sorted.
    fn ls(&self, rel: &str) -> Vec<String> {
        let mut names: Vec<String> = std::fs::read_dir(self.path(rel))
            .unwrap_or_else(|e| panic!("ls {rel}: {e}\n{}", self.log()))
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}

impl Drop for Mount {
    fn drop(&mut self) {
        let dir = self.dir.path();
        for unmount in [
            &["fusermount3", "-u"][..],
            &["fusermount", "-u"],
            &["umount", "-l"],
        ] {
            if !self.is_mounted() {
                break;
            }
            let _ = Command::new(unmount[0])
                .args(&unmount[1..])
                .arg(dir)
                .stderr(Stdio::null())
                .status();
        }
        // Unmounted, the foreground s3fs exits; one that does not is ours to stop.
        if wait_child(&mut self.child, Duration::from_secs(10)).is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn have_s3fs(test: &str) -> bool {
    if !available(
        test,
        "s3fs",
        &["--version"],
        "s3fs is not installed: apt-get install s3fs",
    ) {
        return false;
    }
    let fuse = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/fuse")
        .is_ok();
    if !fuse {
        skip(
            test,
            "/dev/fuse is not available (s3fs-fuse mounts through FUSE)",
        );
    }
    fuse
}

/// Writes `data` to `path` of the mount; s3fs uploads it on close.
fn write_through(m: &Mount, rel: &str, data: &[u8]) {
    std::fs::write(m.path(rel), data).unwrap_or_else(|e| panic!("write {rel}: {e}\n{}", m.log()));
}

#[test]
fn s3fs_fuse_lists_an_empty_folder_it_made_until_it_is_removed() {
    if !have_s3fs("s3fs_fuse_lists_an_empty_folder_it_made_until_it_is_removed") {
        return;
    }
    let s3 = S3::start();
    let b = "fse";
    assert_eq!(s3.signed("PUT", &format!("/{b}")).0, 200, "CreateBucket");
    let m = Mount::start(&s3, b);
    std::fs::create_dir(m.path("e")).unwrap_or_else(|e| panic!("mkdir e: {e}\n{}", m.log()));
    assert_eq!(m.ls(""), ["e"], "ls after mkdir e");
    assert_eq!(m.ls("e"), Vec::<String>::new());
    drop(m);
    // A fresh mount knows only what the server lists.
    let m = Mount::start(&s3, b);
    assert_eq!(m.ls(""), ["e"], "ls on a fresh mount");
    assert_eq!(s3.keys(b), ["e/"], "the marker is a key");
    std::fs::remove_dir(m.path("e")).unwrap_or_else(|e| panic!("rmdir e: {e}\n{}", m.log()));
    assert_eq!(m.ls(""), Vec::<String>::new());
    assert_eq!(s3.keys(b), Vec::<String>::new());
    assert!(!s3.bucket_dir(b).join("e").exists());
    drop(m);
}

#[test]
fn s3fs_fuse_mounts_a_bucket_writes_reads_renames_lists_and_removes_files_and_folders() {
    if !have_s3fs(
        "s3fs_fuse_mounts_a_bucket_writes_reads_renames_lists_and_removes_files_and_folders",
    ) {
        return;
    }
    let s3 = S3::start();
    let b = "fsb";
    assert_eq!(s3.signed("PUT", &format!("/{b}")).0, 200, "CreateBucket");
    let m = Mount::start(&s3, b);
    let fail = |what: &str, e: std::io::Error| -> ! {
        panic!(
            "{what}: {e}\n--- s3fs:\n{}\n--- server:\n{}",
            m.log(),
            s3.log_tail()
        )
    };

    // A file written through the mount is an object and a go-fastdfs file.
    let note = b"written through s3fs\n".to_vec();
    write_through(&m, "note.txt", &note);
    assert_eq!(std::fs::read(m.path("note.txt")).unwrap(), note);
    s3.assert_object(b, "note.txt", &note, &md5_hex(&note));
    // Past s3fs' 20 MiB threshold: a multipart upload. Its parts are s3fs' choice (10 + 13
    // MiB most often, other splits when its buffering flushes elsewhere), so the ETag is
    // checked for a multipart ETag of two parts or more, and the bytes for being the file's.
    let big = noise(23 * MIB, 6);
    write_through(&m, "big.bin", &big);
    let (status, etag) = s3.head(&format!("/{b}/big.bin"));
    let parts = etag
        .split_once('-')
        .filter(|(md5, _)| md5.len() == 32 && md5.bytes().all(|c| c.is_ascii_hexdigit()))
        .and_then(|(_, n)| n.parse::<usize>().ok());
    assert!(
        status == 200 && parts.is_some_and(|n| n >= 2),
        "HEAD big.bin: {status} {etag}: a multipart ETag"
    );
    s3.assert_object(b, "big.bin", &big, &etag);
    assert!(
        std::fs::read(m.path("big.bin")).unwrap() == big,
        "big.bin read back"
    );

    // mkdir writes the folder marker `docs/`: a directory of the bucket.
    std::fs::create_dir(m.path("docs")).unwrap_or_else(|e| fail("mkdir docs", e));
    assert!(s3.bucket_dir(b).join("docs").is_dir());
    assert_eq!(
        s3.head(&format!("/{b}/docs/")),
        (200, EMPTY_MD5.to_string())
    );
    // A rename is a copy and a delete.
    std::fs::rename(m.path("note.txt"), m.path("docs/note.txt"))
        .unwrap_or_else(|e| fail("mv note.txt docs/", e));
    assert_eq!(std::fs::read(m.path("docs/note.txt")).unwrap(), note);
    assert_eq!(
        s3.head(&format!("/{b}/note.txt")).0,
        404,
        "the rename's source is gone"
    );
    s3.assert_object(b, "docs/note.txt", &note, &md5_hex(&note));
    assert_eq!(m.ls(""), ["big.bin", "docs"]);
    assert_eq!(m.ls("docs"), ["note.txt"]);

    // A folder's rename: its marker, then each file copied and deleted.
    std::fs::rename(m.path("docs"), m.path("papers")).unwrap_or_else(|e| fail("mv docs papers", e));
    assert_eq!(m.ls(""), ["big.bin", "papers"]);
    s3.assert_object(b, "papers/note.txt", &note, &md5_hex(&note));
    assert_eq!(s3.head(&format!("/{b}/docs/note.txt")).0, 404);
    assert_eq!(
        s3.head(&format!("/{b}/docs/")).0,
        404,
        "the old folder is removed"
    );
    assert_eq!(
        s3.keys(b),
        ["big.bin", "papers/", "papers/note.txt"],
        "the new folder's marker is a key"
    );

    // rm and rmdir: nothing left in the bucket, nor in its directory.
    std::fs::remove_file(m.path("papers/note.txt")).unwrap_or_else(|e| fail("rm", e));
    std::fs::remove_dir(m.path("papers")).unwrap_or_else(|e| fail("rmdir papers", e));
    std::fs::remove_file(m.path("big.bin")).unwrap_or_else(|e| fail("rm big.bin", e));
    assert_eq!(m.ls(""), Vec::<String>::new());
    assert_eq!(s3.keys(b), Vec::<String>::new());
    assert_eq!(s3.head(&format!("/{b}/papers/")).0, 404);
    assert_eq!(s3.download(b, "big.bin").0, 404);
    assert!(!s3.bucket_dir(b).join("papers").exists());
    drop(m);
}

// ------------------------------------------------------------- rclone and the AWS CLI ----

/// A tree with nested directories, names with a space and a plus, an empty file and a
/// `big` file of 21 MiB (multipart for both clients as configured below): (path, bytes).
fn client_tree(seed: u64) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<(String, Vec<u8>)> = (0..12)
        .map(|i| {
            let dir = ["", "a", "a/b", "a/b/c deep", "x+y"][i % 5];
            let name = format!("f{i:02} {}.dat", ["plain", "sp+ce"][i % 2]);
            let path = match dir {
                "" => name,
                d => format!("{d}/{name}"),
            };
            (path, noise(50 + i * 7919, seed + i as u64))
        })
        .collect();
    files.push(("a/empty.txt".into(), Vec::new()));
    files.push(("notes.txt".into(), b"plain text notes\n".to_vec()));
    files.push(("video/big.bin".into(), noise(21 * MIB + 333, seed + 100)));
    files
}

/// [`client_tree`] written under `src/` of a new temp dir: the dir, `src` and the tree.
fn client_tree_on_disk(seed: u64) -> (tempfile::TempDir, PathBuf, Vec<(String, Vec<u8>)>) {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let files = client_tree(seed);
    for (rel, data) in &files {
        let p = src.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, data).unwrap();
    }
    (work, src, files)
}

/// Asserts the object `key` of `bucket` is gone: to a signed HEAD and to go-fastdfs'
/// download URL.
fn assert_gone(s3: &S3, bucket: &str, key: &str) {
    let head = format!("/{bucket}/{}", urlencode_path(key));
    assert_eq!(s3.head(&head).0, 404, "{bucket}/{key} is still there");
    assert_eq!(s3.download(bucket, key).0, 404, "{bucket}/{key} downloads");
}

/// Asserts `bucket` holds keys, none under `prefix`.
fn assert_no_keys_under(s3: &S3, bucket: &str, prefix: &str) {
    let keys = s3.keys(bucket);
    assert!(
        keys.iter().all(|k| !k.starts_with(prefix)) && !keys.is_empty(),
        "{keys:?}"
    );
}

/// Asserts every file of `files` is the object `<prefix><path>` of `bucket` (signed HEAD's
/// ETag, and the bytes through go-fastdfs' download URL); `big_part` is the part size the
/// client uploaded files above it with.
fn assert_tree_on_server(
    s3: &S3,
    bucket: &str,
    prefix: &str,
    files: &[(String, Vec<u8>)],
    big_part: usize,
) {
    for (rel, data) in files {
        let etag = match data.len() > big_part {
            true => multipart_etag(data, big_part),
            false => md5_hex(data),
        };
        s3.assert_object(bucket, &format!("{prefix}{rel}"), data, &etag);
    }
}

/// rclone with the remote `s3t:` for this server, configured through the environment only
/// (no config file of the user's), multipart above 5 MiB in 5 MiB parts, no retries.
fn rclone(s3: &S3, args: &[&str]) -> Output {
    let mut cmd = s3.rclone_command(
        KEY_ID,
        SECRET,
        &[("UPLOAD_CUTOFF", "5M"), ("CHUNK_SIZE", "5M")],
    );
    cmd.args(args);
    run(cmd, Duration::from_secs(180))
}

fn rclone_ok(s3: &S3, args: &[&str]) -> Output {
    let out = rclone(s3, args);
    assert!(
        out.status.success(),
        "rclone {args:?} failed: {}\n--- server log:\n{}",
        out.text(),
        s3.log_tail()
    );
    out
}

/// rclone's sync up (a 21 MiB file in 5 MiB parts), check, lsf, cat, link (a presigned URL),
/// a changed and a removed file synced again, copy back down, delete and purge, each result
/// checked on the server's side.
#[test]
fn rclone_syncs_a_tree_with_a_multipart_file_checks_cats_links_and_purges() {
    if !have_rclone("rclone_syncs_a_tree_with_a_multipart_file_checks_cats_links_and_purges") {
        return;
    }
    let s3 = S3::start();
    let (work, src, mut files) = client_tree_on_disk(700);
    let src_arg = src.to_str().unwrap();
    rclone_ok(&s3, &["mkdir", "s3t:rcb"]);
    assert!(s3.bucket_dir("rcb").is_dir());
    rclone_ok(&s3, &["sync", src_arg, "s3t:rcb/tree"]);
    assert_tree_on_server(&s3, "rcb", "tree/", &files, 5 * MIB);

    let check = rclone_ok(&s3, &["check", src_arg, "s3t:rcb/tree"]);
    assert!(
        check.stderr.contains("0 differences found"),
        "{}",
        check.text()
    );
    let lsf = rclone_ok(&s3, &["lsf", "-R", "--files-only", "s3t:rcb/tree"]);
    let mut listed: Vec<&str> = lsf.stdout.lines().collect();
    listed.sort();
    let mut names: Vec<&str> = files.iter().map(|(n, _)| n.as_str()).collect();
    names.sort();
    assert_eq!(listed, names);
    // Every object's md5 as rclone reads it (the ETag, or for a multipart object the md5
    // rclone kept in its metadata) is the file's.
    let sums = rclone_ok(&s3, &["md5sum", "s3t:rcb/tree"]);
    let mut got: Vec<(String, String)> = sums
        .stdout
        .lines()
        .map(|l| {
            let (sum, name) = l.split_once("  ").unwrap();
            (name.to_string(), sum.to_string())
        })
        .collect();
    got.sort();
    let mut want_sums: Vec<(String, String)> =
        files.iter().map(|(n, d)| (n.clone(), md5_hex(d))).collect();
    want_sums.sort();
    assert_eq!(got, want_sums, "{}", sums.text());
    // Server-side copy and move of the multipart object (CopyObject, then a delete).
    let big = files
        .iter()
        .find(|(n, _)| n == "video/big.bin")
        .unwrap()
        .1
        .clone();
    rclone_ok(
        &s3,
        &[
            "copyto",
            "s3t:rcb/tree/video/big.bin",
            "s3t:rcb/copies/big.bin",
        ],
    );
    rclone_ok(
        &s3,
        &["moveto", "s3t:rcb/copies/big.bin", "s3t:rcb/moved/big.bin"],
    );
    s3.assert_object("rcb", "moved/big.bin", &big, &md5_hex(&big));
    assert_eq!(
        s3.head("/rcb/copies/big.bin").0,
        404,
        "moveto deletes its source"
    );
    let size = rclone_ok(&s3, &["size", "--json", "s3t:rcb/tree"]);
    let size: Value = serde_json::from_str(&size.stdout).unwrap();
    let total: usize = files.iter().map(|(_, d)| d.len()).sum();
    assert_eq!(
        (&size["count"], &size["bytes"]),
        (&json!(files.len()), &json!(total)),
        "{size}"
    );
    let cat = rclone_ok(&s3, &["cat", "s3t:rcb/tree/notes.txt"]);
    assert_eq!(cat.stdout, "plain text notes\n");
    let link = rclone_ok(
        &s3,
        &["link", "--expire", "5m", "s3t:rcb/tree/x+y/f04 plain.dat"],
    );
    let url = link.stdout.trim();
    assert!(url.contains("X-Amz-Signature="), "a presigned URL: {url}");
    let got = agent().get(url).call().map(|r| {
        let mut body = Vec::new();
        r.into_reader().read_to_end(&mut body).unwrap();
        body
    });
    let want = &files
        .iter()
        .find(|(n, _)| n == "x+y/f04 plain.dat")
        .unwrap()
        .1;
    assert!(
        got.as_ref().is_ok_and(|b| b == want),
        "GET of rclone's link {url}: {:?}",
        got.map(|b| b.len())
    );

    // A changed file (same size) and a removed one: sync sends the one, deletes the other.
    let changed = "a/b/f02 plain.dat";
    let entry = files.iter_mut().find(|(n, _)| n == changed).unwrap();
    entry.1[0] ^= 0xff;
    std::fs::write(src.join(changed), &entry.1).unwrap();
    let removed = "a/f01 sp+ce.dat";
    std::fs::remove_file(src.join(removed)).unwrap();
    files.retain(|(n, _)| n != removed);
    rclone_ok(&s3, &["sync", src_arg, "s3t:rcb/tree"]);
    assert_tree_on_server(&s3, "rcb", "tree/", &files, 5 * MIB);
    assert_gone(&s3, "rcb", &format!("tree/{removed}"));
    let check = rclone_ok(&s3, &["check", src_arg, "s3t:rcb/tree"]);
    assert!(
        check.stderr.contains("0 differences found"),
        "{}",
        check.text()
    );

    let back = work.path().join("back");
    rclone_ok(&s3, &["copy", "s3t:rcb/tree", back.to_str().unwrap()]);
    assert!(tree(&back) == tree(&src), "the tree copied back down");

    rclone_ok(&s3, &["delete", "s3t:rcb/tree/a"]);
    assert_no_keys_under(&s3, "rcb", "tree/a/");
    assert!(!s3.bucket_dir("rcb").join("tree/a/b/f02 plain.dat").exists());
    rclone_ok(&s3, &["purge", "s3t:rcb"]);
    assert!(!s3.bucket_dir("rcb").exists(), "purge removes the bucket");
}

/// The AWS CLI against this server (`line` split at whitespace): path style, multipart above
/// 8 MiB in 8 MiB parts, no credentials file, no instance metadata, no pager, no retries.
fn aws(s3: &S3, args: &[&str]) -> Output {
    let mut cmd = s3.aws_command(KEY_ID, SECRET);
    cmd.args(args);
    run(cmd, Duration::from_secs(180))
}

fn aws_ok(s3: &S3, args: &[&str]) -> Output {
    let out = aws(s3, args);
    assert!(
        out.status.success(),
        "aws {args:?} failed: {}\n--- server log:\n{}",
        out.text(),
        s3.log_tail()
    );
    out
}

/// `aws s3 sync` up (a 21 MiB file in 8 MiB parts), again (nothing sent), ls, cp to stdout
/// and to a file, presign, sync back down, `sync --delete`, rm and rb; `aws s3api` reads the
/// multipart object's checksum. Each result checked on the server's side.
#[test]
fn aws_cli_syncs_a_tree_with_a_multipart_file_lists_gets_presigns_and_removes() {
    if !have_aws("aws_cli_syncs_a_tree_with_a_multipart_file_lists_gets_presigns_and_removes") {
        return;
    }
    let s3 = S3::start();
    let (work, src, mut files) = client_tree_on_disk(800);
    let src_arg = src.to_str().unwrap();
    aws_ok(&s3, &["s3", "mb", "s3://awsc"]);
    let up = aws_ok(
        &s3,
        &["s3", "sync", src_arg, "s3://awsc/tree", "--no-progress"],
    );
    assert_eq!(
        up.stdout.matches("upload:").count(),
        files.len(),
        "{}",
        up.text()
    );
    assert_tree_on_server(&s3, "awsc", "tree/", &files, 8 * MIB);
    let again = aws_ok(
        &s3,
        &["s3", "sync", src_arg, "s3://awsc/tree", "--no-progress"],
    );
    assert_eq!(again.stdout.trim(), "", "nothing to send: {}", again.text());

    let ls = aws_ok(&s3, &["s3", "ls", "--recursive", "s3://awsc/tree/"]);
    let mut listed: Vec<(u64, String)> = ls
        .stdout
        .lines()
        .map(|l| {
            // `<date> <time> <size> <key>`; keys hold spaces.
            let size = l.split_whitespace().nth(2).unwrap().parse().unwrap();
            (size, l[l.find(" tree/").unwrap() + 1..].to_string())
        })
        .collect();
    listed.sort();
    let mut want: Vec<(u64, String)> = files
        .iter()
        .map(|(n, d)| (d.len() as u64, format!("tree/{n}")))
        .collect();
    want.sort();
    assert_eq!(listed, want, "{}", ls.text());

    let cat = aws_ok(&s3, &["s3", "cp", "s3://awsc/tree/notes.txt", "-"]);
    assert_eq!(cat.stdout, "plain text notes\n");
    let big = work.path().join("big.got");
    aws_ok(
        &s3,
        &[
            "s3",
            "cp",
            "s3://awsc/tree/video/big.bin",
            big.to_str().unwrap(),
            "--no-progress",
        ],
    );
    let big_data = &files.iter().find(|(n, _)| n == "video/big.bin").unwrap().1;
    assert!(
        std::fs::read(&big).unwrap() == *big_data,
        "aws s3 cp of big.bin"
    );
    // Whatever checksum the CLI sent with the parts, the object's is consistent with them.
    let head = head_with_checksum(&s3, "awsc", "tree/video/big.bin");
    assert_eq!(
        head["ETag"],
        json!(format!("\"{}\"", multipart_etag(big_data, 8 * MIB)))
    );
    if let Some(crc) = head["ChecksumCRC32"].as_str() {
        let parts: Vec<Vec<u8>> = big_data
            .chunks(8 * MIB)
            .map(|p| crc32fast::hash(p).to_be_bytes().to_vec())
            .collect();
        let composite = format!("{}-{}", crc32_b64_of_digests(&parts), parts.len());
        match head["ChecksumType"].as_str() {
            Some("COMPOSITE") => assert_eq!(crc, composite, "{head}"),
            _ => assert_eq!(crc, crc32_b64(big_data), "{head}"),
        }
    }

    let url = aws_ok(
        &s3,
        &[
            "s3",
            "presign",
            "s3://awsc/tree/notes.txt",
            "--expires-in",
            "300",
        ],
    );
    assert_eq!(
        call(agent().get(url.stdout.trim())),
        (200, "plain text notes\n".to_string())
    );

    let back = work.path().join("back");
    aws_ok(
        &s3,
        &[
            "s3",
            "sync",
            "s3://awsc/tree",
            back.to_str().unwrap(),
            "--no-progress",
        ],
    );
    assert!(tree(&back) == tree(&src), "the tree synced back down");

    let removed = "a/b/c deep/f03 sp+ce.dat";
    std::fs::remove_file(src.join(removed)).unwrap();
    files.retain(|(n, _)| n != removed);
    let del = aws_ok(
        &s3,
        &[
            "s3",
            "sync",
            src_arg,
            "s3://awsc/tree",
            "--delete",
            "--no-progress",
        ],
    );
    assert!(
        del.stdout
            .contains(&format!("delete: s3://awsc/tree/{removed}")),
        "{}",
        del.text()
    );
    assert_gone(&s3, "awsc", &format!("tree/{removed}"));
    assert_tree_on_server(&s3, "awsc", "tree/", &files, 8 * MIB);

    aws_ok(&s3, &["s3", "rm", "--recursive", "s3://awsc/tree/a"]);
    assert_no_keys_under(&s3, "awsc", "tree/a/");
    aws_ok(&s3, &["s3", "rb", "--force", "s3://awsc"]);
    assert!(!s3.bucket_dir("awsc").exists(), "rb removes the bucket");
}

/// `aws s3api` with JSON output, parsed.
fn aws_json(s3: &S3, args: &[&str]) -> Value {
    let out = aws_ok(s3, args);
    serde_json::from_str(&out.stdout).unwrap_or_else(|e| panic!("{args:?}: {e}: {}", out.text()))
}

/// `aws s3api head-object` of `bucket`/`key` with its checksum (`--checksum-mode ENABLED`).
fn head_with_checksum(s3: &S3, bucket: &str, key: &str) -> Value {
    let args = ["s3api", "head-object", "--bucket", bucket, "--key", key];
    aws_json(s3, &[&args[..], &["--checksum-mode", "ENABLED"]].concat())
}

/// A JSON number or string as text (the CLI prints part number markers as either).
fn as_text(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), str::to_string)
}

/// A multipart upload with CRC32 checksums through `aws s3api`: GetObjectAttributes lists its
/// parts (size, checksum) a page at a time with `--max-parts` / `--part-number-marker`; a
/// CopyObject keeps its composite checksum, and one asking for another algorithm gets that
/// algorithm's checksum of the whole copy.
#[test]
fn aws_cli_lists_a_multipart_objects_parts_and_a_copy_keeps_its_composite_checksum() {
    if !have_aws("aws_cli_lists_a_multipart_objects_parts_and_a_copy_keeps_its_composite_checksum")
    {
        return;
    }
    let s3 = S3::start();
    let work = tempfile::tempdir().unwrap();
    aws_ok(&s3, &["s3", "mb", "s3://attr"]);
    let obj = ["--bucket", "attr", "--key", "big.bin"];
    let created = aws_json(
        &s3,
        &[
            &["s3api", "create-multipart-upload"],
            &obj[..],
            &["--checksum-algorithm", "CRC32"],
        ]
        .concat(),
    );
    let id = created["UploadId"].as_str().unwrap().to_string();
    let parts = [noise(5 * MIB, 31), noise(5 * MIB + 7, 32), noise(1000, 33)];
    let mut listed = Vec::new();
    for (i, part) in parts.iter().enumerate() {
        let file = work.path().join(format!("part{i}"));
        std::fs::write(&file, part).unwrap();
        let n = (i + 1).to_string();
        let up = aws_json(
            &s3,
            &[
                &["s3api", "upload-part"],
                &obj[..],
                &[
                    "--upload-id",
                    &id,
                    "--part-number",
                    &n,
                    "--checksum-algorithm",
                    "CRC32",
                ],
                &["--body", file.to_str().unwrap()],
            ]
            .concat(),
        );
        assert_eq!(up["ChecksumCRC32"], json!(crc32_b64(part)), "{up}");
        listed.push(
            json!({"PartNumber": i + 1, "ETag": up["ETag"], "ChecksumCRC32": up["ChecksumCRC32"]}),
        );
    }
    let complete = work.path().join("complete.json");
    std::fs::write(&complete, json!({ "Parts": listed }).to_string()).unwrap();
    let arg = format!("file://{}", complete.display());
    aws_ok(
        &s3,
        &[
            &["s3api", "complete-multipart-upload"],
            &obj[..],
            &["--upload-id", &id, "--multipart-upload", &arg],
        ]
        .concat(),
    );
    let digests: Vec<Vec<u8>> = parts
        .iter()
        .map(|p| crc32fast::hash(p).to_be_bytes().to_vec())
        .collect();
    let composite = format!("{}-3", crc32_b64_of_digests(&digests));
    let attributes = |key: &str, extra: &[&str]| {
        let args = [
            &[
                "s3api",
                "get-object-attributes",
                "--bucket",
                "attr",
                "--key",
                key,
            ][..],
            &[
                "--object-attributes",
                "ObjectParts",
                "Checksum",
                "ObjectSize",
            ],
            extra,
        ]
        .concat();
        aws_json(&s3, &args)
    };
    let first = attributes("big.bin", &["--max-parts", "2"]);
    let p = &first["ObjectParts"];
    assert_eq!(p["TotalPartsCount"], json!(3), "{first}");
    assert_eq!(p["IsTruncated"], json!(true), "{first}");
    assert_eq!(as_text(&p["NextPartNumberMarker"]), "2", "{first}");
    assert_eq!(p["MaxParts"], json!(2), "{first}");
    let page = |v: &Value| -> Vec<(u64, u64, String)> {
        v["ObjectParts"]["Parts"]
            .as_array()
            .unwrap_or(&Vec::new())
            .iter()
            .map(|p| {
                let n = p["PartNumber"].as_u64().unwrap();
                (
                    n,
                    p["Size"].as_u64().unwrap(),
                    p["ChecksumCRC32"].as_str().unwrap().to_string(),
                )
            })
            .collect()
    };
    let want = |i: usize| ((i + 1) as u64, parts[i].len() as u64, crc32_b64(&parts[i]));
    assert_eq!(page(&first), vec![want(0), want(1)], "{first}");
    assert_eq!(
        first["Checksum"]["ChecksumCRC32"],
        json!(composite),
        "{first}"
    );
    assert_eq!(
        first["Checksum"]["ChecksumType"],
        json!("COMPOSITE"),
        "{first}"
    );
    assert_eq!(
        first["ObjectSize"],
        json!(parts.iter().map(Vec::len).sum::<usize>())
    );
    let rest = attributes("big.bin", &["--part-number-marker", "2"]);
    assert_eq!(page(&rest), vec![want(2)], "{rest}");
    assert_eq!(rest["ObjectParts"]["IsTruncated"], json!(false), "{rest}");
    assert_eq!(
        as_text(&rest["ObjectParts"]["PartNumberMarker"]),
        "2",
        "{rest}"
    );

    // A copy (one part now, its ETag the md5) keeps the composite checksum and its type.
    let all = parts.concat();
    let copy = |key: &str, extra: &[&str]| {
        let args = [
            &["s3api", "copy-object", "--copy-source", "attr/big.bin"][..],
            &["--bucket", "attr", "--key", key],
            extra,
        ]
        .concat();
        aws_json(&s3, &args)
    };
    let copied = copy("copy.bin", &[]);
    assert_eq!(
        copied["CopyObjectResult"]["ChecksumCRC32"],
        json!(composite),
        "{copied}"
    );
    let h = head_with_checksum(&s3, "attr", "copy.bin");
    assert_eq!(h["ETag"], json!(format!("\"{}\"", md5_hex(&all))), "{h}");
    assert_eq!(h["ChecksumCRC32"], json!(composite), "{h}");
    assert_eq!(h["ChecksumType"], json!("COMPOSITE"), "{h}");
    let a = attributes("copy.bin", &[]);
    assert_eq!(a["Checksum"]["ChecksumCRC32"], json!(composite), "{a}");
    assert!(
        a.get("ObjectParts").is_none(),
        "a copy is no multipart object: {a}"
    );
    // Asked for SHA-256: that checksum of the whole copy.
    copy("sha.bin", &["--checksum-algorithm", "SHA256"]);
    let h = head_with_checksum(&s3, "attr", "sha.bin");
    let sha = {
        use base64::Engine;
        use sha2::Digest;
        base64::engine::general_purpose::STANDARD.encode(sha2::Sha256::digest(&all))
    };
    assert_eq!(h["ChecksumSHA256"], json!(sha), "{h}");
    assert_eq!(h["ChecksumType"], json!("FULL_OBJECT"), "{h}");
    assert!(h.get("ChecksumCRC32").is_none(), "{h}");
    s3.assert_object("attr", "sha.bin", &all, &md5_hex(&all));
}

/// The base64 CRC32 of the concatenation of `digests` (S3's composite checksum, without
/// its part count).
fn crc32_b64_of_digests(digests: &[Vec<u8>]) -> String {
    crc32_b64(&digests.concat())
}
