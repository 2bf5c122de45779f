//! The S3 interface (`s3_addr`), black-box against the real binary with real S3 clients:
//! boto3 (tests/support/s3_boto3.py runs one scenario and prints what it observed as JSON,
//! asserted here), the SigV4 payload forms that boto3 does not send over plain HTTP
//! (tests/support/s3_sigv4.py: aws-chunked bodies with signed chunks or checksum trailers,
//! UNSIGNED-PAYLOAD), the AWS CLI (`aws s3`, `aws s3api`), rclone, and go-fastdfs' own API on
//! the same files (bucket `B` is the directory `files/B/`, key `K` the file `files/B/K`).
//!
//! Each test starts its own server with three keys: a read-write key on every bucket, a key
//! restricted to the bucket `allowed`, and a read-only key. A test whose client is missing says
//! so through `common::skip` and returns (scripts/test-all.sh installs boto3, the AWS CLI and
//! rclone; under CI a skip is a failure). Every client runs under a time limit, with HOME, the
//! AWS config and rclone's config in a temp dir of its own, and talks only to 127.0.0.1.
//! The slowest test is the 1 GiB upload under a memory bound (about 30 s).
mod common;
use common::s3::{available, have_aws, have_rclone, run, Output, S3};
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::io::Read;
use std::net::TcpStream;
use std::os::unix::process::ExitStatusExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

const MIB: usize = 1 << 20;

struct Key {
    id: &'static str,
    secret: &'static str,
}

/// Read-write on every bucket. Secrets have the `/` and `+` that real ones have.
const FULL: Key = Key {
    id: "AKIAFASTDFSFULL00001",
    secret: "full/Secret+Key0123456789abcdefghijklmnop",
};
/// Read-write on the bucket `allowed` only.
const LIMITED: Key = Key {
    id: "AKIAFASTDFSLIMITED01",
    secret: "limited/Secret+Key0123456789abcdefghijklm",
};
/// Reads every bucket, writes none.
const READ_ONLY: Key = Key {
    id: "AKIAFASTDFSREADONLY1",
    secret: "readonly/Secret+Key0123456789abcdefghijkl",
};
const ALLOWED: &str = "allowed";

fn script(name: &str) -> String {
    format!("{}/tests/support/{name}", env!("CARGO_MANIFEST_DIR"))
}

fn have_boto3(test: &str) -> bool {
    available(
        test,
        "python3",
        &["-c", "import boto3"],
        "python3 with boto3 is not installed: pip install boto3",
    )
}

fn have_python(test: &str) -> bool {
    available(test, "python3", &["--version"], "python3 is not installed")
}

/// The S3 tests' server: three keys, and the AWS CLI's and rclone's settings in the clients'
/// home directory.
impl S3 {
    fn start() -> S3 {
        let s3 = S3::with_keys(json!([
            {"access_key_id": FULL.id, "secret_access_key": FULL.secret,
             "buckets": ["*"], "read_only": false},
            {"access_key_id": LIMITED.id, "secret_access_key": LIMITED.secret,
             "buckets": [ALLOWED], "read_only": false},
            {"access_key_id": READ_ONLY.id, "secret_access_key": READ_ONLY.secret,
             "buckets": ["*"], "read_only": true},
        ]));
        let home = s3.home.path();
        std::fs::write(
            home.join("aws-config"),
            "[default]\nregion = us-east-1\noutput = json\ns3 =\n  addressing_style = path\n  \
             signature_version = s3v4\n  multipart_threshold = 8MB\n  multipart_chunksize = 8MB\n",
        )
        .unwrap();
        s3
    }

    /// [`S3::command`] with the AWS settings of the home directory, for boto3 (no
    /// credentials file, no instance metadata, no pager, no retries).
    fn client(&self, program: &str) -> Command {
        let mut cmd = self.command(program);
        let home = self.home.path();
        cmd.env("AWS_CONFIG_FILE", home.join("aws-config"))
            .env("AWS_SHARED_CREDENTIALS_FILE", home.join("no-credentials"))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env("AWS_PAGER", "")
            .env("AWS_MAX_ATTEMPTS", "1");
        cmd
    }

    /// Runs an s3_boto3.py scenario with the three keys; its JSON result.
    fn boto3(&self, scenario: &str, extra: &[&str], limit_secs: u64) -> Value {
        let mut cmd = self.client("python3");
        cmd.arg(script("s3_boto3.py"))
            .arg(scenario)
            .args(["--endpoint", &self.endpoint()])
            .args(["--key", &format!("{}:{}", FULL.id, FULL.secret)])
            .args(["--limited", &format!("{}:{}", LIMITED.id, LIMITED.secret)])
            .args(["--allowed", ALLOWED])
            .args([
                "--readonly",
                &format!("{}:{}", READ_ONLY.id, READ_ONLY.secret),
            ])
            .args(["--timeout", &(limit_secs - 10).to_string()])
            .args(extra);
        let out = run(cmd, Duration::from_secs(limit_secs));
        assert!(
            out.ok(),
            "s3_boto3.py {scenario} failed: {}\n--- server log:\n{}",
            out.text(),
            self.log_tail()
        );
        let last = out.stdout.lines().last().unwrap_or("");
        serde_json::from_str(last)
            .unwrap_or_else(|e| panic!("s3_boto3.py {scenario}: not JSON ({e}): {}", out.text()))
    }

    /// The AWS CLI as `key`, against this server; `line` is split at whitespace.
    fn aws(&self, key: &Key, line: &str, limit_secs: u64) -> Output {
        let mut cmd = self.aws_command(key.id, key.secret);
        cmd.args(line.split_whitespace());
        run(cmd, Duration::from_secs(limit_secs))
    }

    /// The AWS CLI with the full key; the test fails unless it succeeds.
    fn aws_ok(&self, line: &str, limit_secs: u64) -> Output {
        let out = self.aws(&FULL, line, limit_secs);
        assert!(
            out.ok(),
            "aws {line} failed: {}\n--- server log:\n{}",
            out.text(),
            self.log_tail()
        );
        out
    }

    /// rclone with the remote `s3t:` configured for this server (environment only).
    fn rclone(&self, args: &[&str]) -> Output {
        let mut cmd = self.rclone_command(FULL.id, FULL.secret, &[("LIST_VERSION", "2")]);
        cmd.args(args);
        run(cmd, Duration::from_secs(120))
    }
}

/// `path -> md5` of every file under `dir`, paths relative with `/`.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                stack.push(p);
            } else {
                let rel = p.strip_prefix(dir).unwrap().to_string_lossy().to_string();
                out.insert(rel, md5_hex(&std::fs::read(&p).unwrap()));
            }
        }
    }
    out
}

/// Writes `files` under `dir`, dated an hour ago (sync tools compare dates by the second).
fn write_tree(dir: &Path, files: &[(String, Vec<u8>)]) {
    let hour_ago = SystemTime::now() - Duration::from_secs(3600);
    for (rel, data) in files {
        let p = dir.join(rel);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(&p, data).unwrap();
        std::fs::File::options()
            .write(true)
            .open(&p)
            .unwrap()
            .set_modified(hour_ago)
            .unwrap();
    }
}

/// S3's ETag of `data` uploaded in parts of `part` bytes.
fn multipart_etag(data: &[u8], part: usize) -> String {
    use md5::Digest;
    let mut digests = Vec::new();
    for p in data.chunks(part) {
        digests.extend_from_slice(&md5::Md5::digest(p));
    }
    format!("\"{}-{}\"", md5_hex(&digests), data.len().div_ceil(part))
}

/// The body of a GET of the go-fastdfs download URL `path`.
fn download(s3: &S3, path: &str) -> (u16, Vec<u8>) {
    let r = match agent().get(&s3.server.url(path)).call() {
        Ok(r) => r,
        Err(ureq::Error::Status(_, r)) => r,
        Err(e) => panic!("transport error: {e}"),
    };
    let status = r.status();
    let mut body = Vec::new();
    r.into_reader().read_to_end(&mut body).unwrap();
    (status, body)
}

/// (status, body) of an unsigned GET to the S3 listener.
fn anonymous_get(s3: &S3, path: &str) -> (u16, String) {
    call(agent().get(&format!("{}{path}", s3.endpoint())))
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect()
}

// ------------------------------------------------------------------------------- boto3 ----

#[test]
fn a_bucket_is_a_directory_created_under_s3_naming_rules_and_deleted_only_when_empty() {
    if !have_boto3("s3 buckets") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("buckets", &[], 120);
    assert_eq!(r["create"], json!([200, null]));
    // us-east-1 (this server's region here) answers a repeated creation with success.
    assert_eq!(r["create_again"], json!([200, null]));
    assert_eq!(r["create_dotted"], json!([200, null]));
    for (name, got) in r["invalid"].as_object().unwrap() {
        assert_eq!(
            got,
            &json!([400, "InvalidBucketName"]),
            "bucket name {name:?}"
        );
        assert!(!s3.bucket_dir(name).exists(), "{name:?} was created");
    }
    assert_eq!(r["head"], json!([200, null]));
    assert_eq!(r["head_missing"], json!([404, "404"]));
    let listed = strings(&r["listed"]);
    assert!(
        listed.contains(&"alpha-bucket".into()) && listed.contains(&"beta.bucket-2".into()),
        "{listed:?}"
    );
    assert_eq!(r["delete_not_empty"], json!([409, "BucketNotEmpty"]));
    assert_eq!(r["delete_missing"], json!([404, "NoSuchBucket"]));
    assert_eq!(
        r["delete_emptied"],
        json!([204, null]),
        "a bucket whose last object was deleted is empty, whatever directories it had"
    );
    assert_eq!(r["head_deleted"], json!([404, "404"]));
    assert_eq!(r["put_into_deleted"], json!([404, "NoSuchBucket"]));
    let after = strings(&r["listed_after"]);
    assert!(!after.contains(&"alpha-bucket".into()), "{after:?}");
    assert!(after.contains(&"beta.bucket-2".into()), "{after:?}");
    assert!(s3.bucket_dir("beta.bucket-2").is_dir());
    assert!(!s3.bucket_dir("alpha-bucket").exists());
}

#[test]
fn an_object_keeps_its_bytes_type_disposition_and_metadata_and_a_put_replaces_it() {
    if !have_boto3("s3 objects") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("objects", &["--bucket", "objects"], 120);
    let want = &r["want"];
    assert_eq!(r["put_etag"], want["etag"], "ETag = quoted md5");
    let stored = json!({
        "etag": want["etag"],
        "length": 100_000,
        "type": "application/pdf",
        "disposition": "attachment; filename=\"report.pdf\"",
        "metadata": {"color": "blue", "owner-name": "ann"},
    });
    assert_eq!(r["head"], stored);
    let mut got = stored.clone();
    got["status"] = json!(200);
    got["md5"] = want["md5"].clone();
    assert_eq!(r["get"], got);
    assert_eq!(
        r["replaced"],
        json!({"body": "second version\n", "etag": r["want_replaced_etag"],
               "metadata": {}, "disposition": null}),
        "a PUT replaces the bytes and the metadata"
    );
    assert_eq!(
        r["empty"],
        json!({"length": 0, "etag": "\"d41d8cd98f00b204e9800998ecf8427e\"", "body": ""})
    );
    assert_eq!(r["dup_delete"], json!([204, null]));
    assert_eq!(r["dup_deleted_get"], json!([404, "NoSuchKey"]));
    assert_eq!(
        r["dup_other"],
        json!([200, "same bytes\n"]),
        "two keys with the same bytes are two objects"
    );
    assert_eq!(r["delete_missing"], json!([204, null]));
    assert_eq!(r["get_missing"], json!([404, "NoSuchKey"]));
    assert_eq!(r["head_missing"], json!([404, "404"]));
    assert_eq!(r["get_no_bucket"], json!([404, "NoSuchBucket"]));
    assert_eq!(r["put_no_bucket"], json!([404, "NoSuchBucket"]));
    assert_eq!(r["unicode_get"], json!("unicode\n"));
    assert_eq!(r["unicode_listed"], json!([r["unicode_key"]]));
    // The objects are the files of the bucket's directory.
    let dir = s3.bucket_dir("objects");
    assert_eq!(
        std::fs::read(dir.join("docs/report.pdf")).unwrap(),
        b"second version\n"
    );
    assert_eq!(
        std::fs::read(dir.join("dup/two.txt")).unwrap(),
        b"same bytes\n"
    );
    assert!(!dir.join("dup/one.txt").exists());
    assert_eq!(std::fs::read(dir.join("empty")).unwrap(), b"");
    assert_eq!(
        std::fs::read(dir.join("unicode/résumé 2024 + 50%.txt")).unwrap(),
        b"unicode\n"
    );
}

#[test]
fn keys_that_cannot_be_file_paths_are_refused_and_never_reach_another_file() {
    if !have_boto3("s3 bad keys") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("bad_keys", &["--bucket", "keys"], 120);
    for (what, got) in r["put"].as_object().unwrap() {
        assert_eq!(
            got,
            &json!([400, "InvalidArgument"]),
            "PUT of a key with {what}"
        );
    }
    // A read of such a key is refused, or finds nothing; never the file that the key
    // would name once normalised (each of those exists, with other bytes).
    for (op, missing) in [
        ("get", json!([404, "NoSuchKey"])),
        ("head", json!([404, "404"])),
    ] {
        for (what, got) in r[op].as_object().unwrap() {
            assert!(
                *got == json!([400, "InvalidArgument"])
                    || *got == json!([400, "400"])
                    || *got == missing,
                "{op} of a key with {what}: {got}"
            );
        }
    }
    for (target, got) in r["targets"].as_object().unwrap() {
        let key = target.split_once('/').unwrap().1;
        assert_eq!(
            got,
            &json!([200, format!("target {key}")]),
            "{target} is untouched"
        );
    }
    assert_eq!(
        r["too_long"],
        json!([400, "KeyTooLongError"]),
        "1,025 bytes"
    );
    assert_eq!(r["segment_255"], json!([200, null]), "a 255-byte segment");
    assert_eq!(r["key_1024"], json!([200, null]), "a 1,024-byte key");
    assert_eq!(r["listed"], r["want_listed"]);
    assert_eq!(r["other_listed"], json!(["secret.txt"]));
    let files: Vec<String> = tree(&s3.bucket_dir("keys")).into_keys().collect();
    assert_eq!(
        json!(files),
        r["want_listed"],
        "only the accepted keys are files"
    );
    let other: Vec<String> = tree(&s3.bucket_dir("keys-other")).into_keys().collect();
    assert_eq!(other, ["secret.txt"]);
}

#[test]
fn ranges_and_each_conditional_header_are_answered_as_s3_does() {
    if !have_boto3("s3 conditionals") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("conditionals", &["--bucket", "cond"], 120);
    assert_eq!(r["etag"], r["want_etag"]);
    for (spec, range, len) in [
        ("bytes=100-199", "bytes 100-199/1000", 100),
        ("bytes=-10", "bytes 990-999/1000", 10),
        ("bytes=990-", "bytes 990-999/1000", 10),
        ("bytes=0-0", "bytes 0-0/1000", 1),
        ("bytes=995-2000", "bytes 995-999/1000", 5),
    ] {
        assert_eq!(
            r["ranges"][spec],
            json!({"status": 206, "content_range": range, "length": len, "bytes_match": true}),
            "Range: {spec}"
        );
    }
    assert_eq!(r["unsatisfiable"], json!([416, "InvalidRange"]));
    let c = &r["conditions"];
    for (case, want) in [
        ("if_match", json!([200, null])),
        ("if_match_other", json!([412, "PreconditionFailed"])),
        ("if_match_star", json!([200, null])),
        ("if_none_match", json!([304, "304"])),
        ("if_none_match_other", json!([200, null])),
        ("if_modified_since_later", json!([304, "304"])),
        // Last-Modified has whole seconds: the same date is "not modified since".
        ("if_modified_since_last_modified", json!([304, "304"])),
        ("if_modified_since_earlier", json!([200, null])),
        (
            "if_unmodified_since_earlier",
            json!([412, "PreconditionFailed"]),
        ),
        ("if_unmodified_since_last_modified", json!([200, null])),
        ("if_unmodified_since_later", json!([200, null])),
        // A true If-Match overrides If-Unmodified-Since (RFC 7232 §3.4, S3's documentation).
        ("if_match_and_unmodified_since_earlier", json!([200, null])),
        ("head_if_none_match", json!([304, "304"])),
        ("head_if_match_other", json!([412, "412"])),
        ("head_if_modified_since_later", json!([304, "304"])),
        ("head_if_unmodified_since_earlier", json!([412, "412"])),
    ] {
        assert_eq!(c[case], want, "{case}");
    }
}

/// A browser resuming a presigned URL's download of an object replaced within the second it
/// was written must not splice the two: the first version's ETag and its date (weak while its
/// second lasts) match neither a conditional GET nor an If-Range.
#[test]
fn validators_of_an_object_replaced_within_its_second_match_nothing_of_the_new_one() {
    if !have_boto3("s3 same-second validators") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("same_second", &["--bucket", "same"], 120);
    let whole = json!({"status": 200, "body": "new"});
    for (case, want) in [
        ("if_none_match_old_etag", whole.clone()),
        ("if_modified_since_weak_date", whole.clone()),
        ("if_range_old_etag", whole.clone()),
        ("if_range_weak_date", whole.clone()),
        (
            "if_range_current_etag",
            json!({"status": 206, "body": "new[:5]"}),
        ),
    ] {
        assert_eq!(r[case], want, "{case}");
    }
    let failed = &r["if_unmodified_since_weak_date"]["status"];
    assert_eq!(failed, 412, "If-Unmodified-Since: a weak date");
}

#[test]
fn sub_resources_this_server_does_not_serve_are_refused_and_leave_the_object_alone() {
    if !have_boto3("s3 sub-resources") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("subresources", &["--bucket", "subs"], 120);
    let intact = json!([200, "the data"]);
    for (call, want) in [
        ("put_acl", json!([501, "NotImplemented"])),
        ("put_tagging", json!([501, "NotImplemented"])),
        ("delete_tagging", json!([204, null])),
        ("get_tagging", json!([200, null])),
        ("put_legal_hold", json!([501, "NotImplemented"])),
        ("get_attributes", json!([200, null])),
        ("put_attributes", json!([501, "NotImplemented"])),
        ("delete_version", json!([400, "InvalidArgument"])),
        ("get_version", json!([400, "InvalidArgument"])),
        ("get_null_version", json!([200, null])),
        ("get_part_1", json!([200, null])),
        ("get_part_2", json!([416, "InvalidPartNumber"])),
    ] {
        assert_eq!(r[call], want, "{call}");
        assert_eq!(r[format!("{call}_then")], intact, "the object after {call}");
    }
    // No tags are kept: an object's set is empty, a write asking for tags is refused (not
    // stored without them), a bucket has none (S3's NoSuchTagSet).
    assert_eq!(r["tag_set"], json!([]));
    for (call, want) in [
        ("get_tagging_missing", json!([404, "NoSuchKey"])),
        ("put_with_tags", json!([501, "NotImplemented"])),
        ("put_with_tags_then", json!([404, "NoSuchKey"])),
        ("put_with_no_tags", json!([200, null])),
        ("create_with_tags", json!([501, "NotImplemented"])),
        ("bucket_tagging", json!([404, "NoSuchTagSet"])),
        ("delete_bucket_tagging", json!([204, null])),
        ("put_bucket_tagging", json!([501, "NotImplemented"])),
    ] {
        assert_eq!(r[call], want, "{call}");
    }
    assert_eq!(r["acl"], json!(["FULL_CONTROL"]));
    for call in ["encryption", "versions", "ownership"] {
        assert_eq!(r[call], json!([501, "NotImplemented"]), "{call}");
    }
}

#[test]
fn conditional_writes_create_only_or_replace_only_what_they_name() {
    if !have_boto3("s3 conditional writes") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("conditional_writes", &["--bucket", "cond-w"], 120);
    let refused = json!([412, "PreconditionFailed"]);
    let ok = json!([200, null]);
    for (call, want) in [
        ("create_over_existing", &refused),
        ("create_new", &ok),
        ("create_new_again", &refused),
        ("match_wrong", &refused),
        ("match_right", &ok),
        ("complete_over_existing", &refused),
        ("copy_if_match_wrong", &refused),
        ("copy_if_none_match_same", &refused),
        ("copy_if_modified_since_future", &refused),
        ("copy_if_unmodified_since_past", &refused),
        ("copy_if_match_right", &ok),
    ] {
        assert_eq!(&r[call], want, "{call}");
    }
    assert_eq!(r["match_missing"], json!([404, "NoSuchKey"]));
    assert_eq!(r["after_refusals"], json!([[200, "v1"], [200, "n1"]]));
    assert_eq!(r["after_match"], json!([200, "v2"]));
    assert_eq!(
        r["after_complete"],
        json!([200, "v2"]),
        "a refused completion"
    );
    // Eight writers racing to create one key: exactly one wins.
    assert_eq!(r["race"], json!([200, 412, 412, 412, 412, 412, 412, 412]));
}

#[test]
fn upload_part_copy_builds_parts_from_ranges_of_an_object_and_boto3s_managed_copy_works() {
    if !have_boto3("s3 upload part copy") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("part_copy", &["--bucket", "part-copy"], 180);
    assert_eq!(r["part_etags"], r["want_part_etags"]);
    assert_eq!(r["bad_range"], json!([400, "InvalidArgument"]));
    assert_eq!(r["past_end"], json!([416, "InvalidRange"]));
    assert_eq!(r["assembled"], true);
    assert_eq!(r["managed"], true);
}

#[test]
fn answers_tools_rely_on_metadata_bounds_missing_parts_and_self_copies() {
    if !have_boto3("s3 details") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("details", &["--bucket", "details"], 120);
    assert_eq!(r["meta_2k"], json!([200, null]));
    assert_eq!(r["meta_3k"], json!([400, "MetadataTooLarge"]));
    assert_eq!(r["missing_part"], json!([400, "InvalidPart"]));
    assert_eq!(r["self_copy_class"], json!([200, null]));
    assert_eq!(r["self_copy_plain"], json!([400, "InvalidRequest"]));
    assert_eq!(r["after"], json!([200, "x"]));
}

/// go-fastdfs' admin cleanup (`G/remove_empty_dir`) leaves an empty bucket made through S3:
/// CreateBucket registered it, and it is a bucket until DeleteBucket (an empty directory no
/// one registered, under it or beside it, still goes).
#[test]
fn remove_empty_dir_leaves_an_empty_bucket_created_through_s3() {
    if !have_aws("s3 remove_empty_dir and empty buckets") {
        return;
    }
    let s3 = S3::start();
    s3.aws_ok("s3 mb s3://still-here", 60);
    let stray = s3.bucket_dir("still-here").join("stray");
    std::fs::create_dir_all(&stray).unwrap();
    let unregistered = s3.bucket_dir("made-on-disk");
    std::fs::create_dir_all(&unregistered).unwrap();
    let (code, _) = download(&s3, "/group1/remove_empty_dir");
    assert_eq!(code, 200);
    let swept = eventually(Duration::from_secs(10), || {
        !stray.exists() && !unregistered.exists()
    });
    assert!(swept, "the job never removed the stray empty directories");
    assert!(
        s3.bucket_dir("still-here").is_dir(),
        "the job removed the bucket"
    );
    s3.aws_ok("s3api head-bucket --bucket still-here", 60);
    s3.aws_ok("s3 rb s3://still-here", 60);
    assert!(!s3.bucket_dir("still-here").exists());
}

/// Multipart objects' checksums as S3 computes them: an upload created with a checksum
/// algorithm says so (and its type), its parts' checksums are kept and listed, and the
/// completed object's checksum (COMPOSITE: `<b64>-<parts>`; FULL_OBJECT for a CRC when asked)
/// is answered by CompleteMultipartUpload, by HeadObject and GetObject in checksum mode, and
/// by GetObjectAttributes.
#[test]
fn multipart_objects_get_their_composite_or_full_object_checksum() {
    if !have_boto3("s3 multipart checksums") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("multipart_checksums", &["--bucket", "mpsums"], 180);
    for alg in ["CRC32", "SHA256"] {
        let c = &r[format!("composite_{alg}")];
        let want = &c["want"];
        assert!(want.as_str().is_some_and(|w| w.ends_with("-2")), "{r}");
        assert_eq!(c["create"], json!([alg, "COMPOSITE"]), "{alg}: {r}");
        assert_eq!(c["parts"], c["want_parts"], "{alg}: {r}");
        assert_eq!(c["listed"], c["want_parts"], "{alg}: {r}");
        assert_eq!(c["complete"], json!([want, "COMPOSITE"]), "{alg}: {r}");
        assert_eq!(c["head"], json!([want, "COMPOSITE"]), "{alg}: {r}");
        assert_eq!(c["get"], json!([want, "COMPOSITE", true]), "{alg}: {r}");
        // GetObjectAttributes: the ETag (unquoted), the checksum and its type, the parts.
        let part = |n: usize, size: usize| json!({"PartNumber": n, "Size": size, format!("Checksum{alg}"): c["want_parts"][n - 1]});
        assert_eq!(
            c["attributes"],
            json!({
                "ETag": c["want_etag"],
                "Checksum": {format!("Checksum{alg}"): want, "ChecksumType": "COMPOSITE"},
                "ObjectParts": {
                    "TotalPartsCount": 2, "PartNumberMarker": 0, "NextPartNumberMarker": 2,
                    "MaxParts": 1000, "IsTruncated": false,
                    "Parts": [part(1, 5 * MIB), part(2, 300_000)],
                },
                "StorageClass": "STANDARD",
                "ObjectSize": 5 * MIB + 300_000,
            }),
            "{alg}: {r}"
        );
    }
    assert_eq!(
        r["single_attributes"],
        json!({
            "ETag": r["single_want"][0],
            "Checksum": {"ChecksumSHA1": r["single_want"][1], "ChecksumType": "FULL_OBJECT"},
            "ObjectParts": null,
            "ObjectSize": 300_000,
        }),
        "{r}"
    );
    assert_eq!(r["missing_attributes"], json!([404, "NoSuchKey"]), "{r}");
    assert_eq!(r["bad_attributes"], json!([400, "InvalidArgument"]), "{r}");
    let full = &r["full"];
    assert_eq!(full["create"], json!(["CRC32", "FULL_OBJECT"]), "{r}");
    assert_eq!(
        full["complete"],
        json!([full["want"], "FULL_OBJECT"]),
        "{r}"
    );
    assert_eq!(
        full["get"],
        json!([full["want"], "FULL_OBJECT", true]),
        "{r}"
    );
    // boto3 checked the body against the whole object's CRC.
    assert_eq!(full["validated"], json!("str"), "{r}");
    assert_eq!(r["full_wrong"], json!([400, "BadDigest"]), "{r}");
    assert_eq!(r["full_wrong_stored"], json!([404, "404"]), "{r}");
    assert_eq!(r["part_wrong"], json!([400, "InvalidPart"]), "{r}");
    assert_eq!(r["part_other"], json!([400, "InvalidRequest"]), "{r}");
    // A copy keeps the source's checksum, a composite one too (as S3 documents it).
    let copied = r["copy_of_composite"].as_str().unwrap_or_default();
    assert!(copied.ends_with("-2"), "{r}");
    assert_eq!(r["log_warnings"], json!([]), "{r}");
}

#[test]
fn checksums_are_echoed_kept_and_returned_and_unknown_algorithms_refused() {
    if !have_boto3("s3 checksums") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("checksums", &["--bucket", "sums"], 120);
    for alg in ["CRC32", "SHA256", "SHA1"] {
        let want = &r["want"][alg];
        assert!(want.is_string(), "{r}");
        assert_eq!(
            r[format!("put_{alg}")],
            json!([want, "FULL_OBJECT"]),
            "{alg}: {r}"
        );
        assert_eq!(
            r[format!("get_{alg}")],
            json!([want, "FULL_OBJECT", true]),
            "{alg}: {r}"
        );
        // boto3 checked the body against the checksum, and did not note a GET without one.
        assert_eq!(
            r[format!("validated_{alg}")],
            json!(["StreamingChecksumBody", "str", want]),
            "{r}"
        );
        assert_eq!(r[format!("log_skipped_{alg}")], 0, "{r}");
        assert_eq!(r[format!("head_{alg}")], *want, "{alg}: {r}");
        assert_eq!(r[format!("head_plain_{alg}")], Value::Null, "{alg}: {r}");
    }
    // A range is not the object the checksum is of.
    assert_eq!(r["range"], json!([null, true]));
    assert_eq!(r["wrong"], json!([400, "BadDigest"]));
    assert_eq!(r["copy"], r["want"]["SHA256"]);
    assert_eq!(
        r["replaced"],
        Value::Null,
        "a PUT without one drops the old checksum"
    );
    assert!(r["part"].is_string(), "{r}");
    for case in ["unknown_header", "unknown_sdk", "unknown_multipart"] {
        assert_eq!(r[case], json!([400, "InvalidRequest"]), "{case}: {r}");
    }
    assert_eq!(r["unknown_stored"], json!([404, "NoSuchKey"]));
    assert_eq!(r["log_warnings"], json!([]));
}

#[test]
fn botocore_sigv2_signs_bucket_requests_as_it_does_and_is_let_in() {
    if !have_boto3("s3 sigv2") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("sigv2", &["--bucket", "sig-two"], 60);
    assert_eq!(r["list_v1"], json!(["v2.txt"]));
    assert_eq!(r["list_v2"], json!(["v2.txt"]));
    assert_eq!(r["location"], json!([200, null]));
    assert_eq!(r["get"], json!([200, "signed v2"]));
}

/// Entries (keys and common prefixes) of every page of a listing, each page in order.
fn entries(pages: &Value) -> Vec<String> {
    let mut out = Vec::new();
    for p in pages.as_array().unwrap() {
        let mut page = strings(&p["keys"]);
        page.extend(strings(&p["prefixes"]));
        page.sort();
        out.extend(page);
    }
    out
}

/// Checks the page structure: each page's KeyCount is its entries, at most `max`, every page
/// but the last truncated with a continuation token, listed sizes and ETags right.
fn check_pages(name: &str, pages: &Value, max: usize) {
    let pages = pages.as_array().unwrap();
    for (i, p) in pages.iter().enumerate() {
        let n = p["keys"].as_array().unwrap().len() + p["prefixes"].as_array().unwrap().len();
        assert_eq!(p["key_count"], json!(n), "{name} page {i}: KeyCount");
        assert!(n <= max, "{name} page {i}: {n} entries");
        let last = i + 1 == pages.len();
        assert_eq!(p["truncated"], json!(!last), "{name} page {i}: IsTruncated");
        assert_eq!(
            p["has_token"],
            json!(!last),
            "{name} page {i}: NextContinuationToken"
        );
        assert_eq!(
            p["mismatched"],
            json!([]),
            "{name} page {i}: listed Size/ETag"
        );
    }
}

#[test]
fn list_objects_v2_pages_a_thousand_keys_in_byte_order_with_prefixes_and_delimiters() {
    if !have_boto3("s3 listing") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("listing", &["--bucket", "listing"], 240);
    let all = strings(&r["want_keys"]);
    assert_eq!(all.len(), 1000);

    check_pages("all_by_100", &r["all_by_100"], 100);
    let sizes: Vec<usize> = r["all_by_100"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["keys"].as_array().unwrap().len())
        .collect();
    assert_eq!(sizes, vec![100; 10]);
    assert_eq!(entries(&r["all_by_100"]), all, "byte order across pages");
    check_pages("all_default", &r["all_default"], 1000);
    assert_eq!(entries(&r["all_default"]), all);

    // '-' and '.' sort before '/', '0' after it.
    let top: Vec<String> = (0..100).map(|i| format!("top-{i:03}.txt")).collect();
    let mut root = vec![
        "docs/",
        "photos-old.txt",
        "photos.txt",
        "photos/",
        "photos0.txt",
    ]
    .into_iter()
    .map(String::from)
    .collect::<Vec<_>>();
    root.extend(top.iter().cloned());
    let page = &r["root_delimited"][0];
    assert_eq!(r["root_delimited"].as_array().unwrap().len(), 1);
    assert_eq!(page["prefixes"], json!(["docs/", "photos/"]));
    let mut keys = vec!["photos-old.txt", "photos.txt", "photos0.txt"]
        .into_iter()
        .map(String::from)
        .collect::<Vec<_>>();
    keys.extend(top.iter().cloned());
    assert_eq!(strings(&page["keys"]), keys);
    assert_eq!(
        page["key_count"],
        json!(105),
        "KeyCount counts common prefixes"
    );
    check_pages("root_delimited_by_50", &r["root_delimited_by_50"], 50);
    assert_eq!(entries(&r["root_delimited_by_50"]), root);

    let page = &r["photos_slash_delimited"][0];
    assert_eq!(page["prefixes"], json!(["photos/2024/", "photos/2025/"]));
    assert_eq!(page["keys"], json!([]));
    let page = &r["photos_delimited"][0];
    assert_eq!(page["prefixes"], json!(["photos/"]));
    assert_eq!(
        page["keys"],
        json!(["photos-old.txt", "photos.txt", "photos0.txt"])
    );

    check_pages("year_2024_by_100", &r["year_2024_by_100"], 100);
    let year: Vec<String> = (0..400)
        .map(|i| format!("photos/2024/img-{i:04}.jpg"))
        .collect();
    assert_eq!(r["year_2024_by_100"].as_array().unwrap().len(), 4);
    assert_eq!(entries(&r["year_2024_by_100"]), year);
    check_pages("start_after", &r["start_after"], 1000);
    assert_eq!(entries(&r["start_after"]), year[200..].to_vec());
    check_pages("no_match", &r["no_match"], 0);
    assert_eq!(r["missing_bucket"], json!([404, "NoSuchBucket"]));
    assert_eq!(tree(&s3.bucket_dir("listing")).len(), 1000);
}

/// go-fastdfs' admin cleanup (`G/remove_empty_dir`) leaves a folder marker's directory: the
/// marker is an object until it is deleted through S3 (still listed, still answered, its
/// directory still there), while an empty directory no marker owns goes.
#[test]
fn remove_empty_dir_leaves_a_folder_marker_and_its_directory_in_place() {
    if !have_aws("s3 remove_empty_dir and folder markers") {
        return;
    }
    let s3 = S3::start();
    s3.aws_ok("s3 mb s3://kept", 60);
    s3.aws_ok("s3api put-object --bucket kept --key photos/2026/", 60);
    let marker_dir = s3.bucket_dir("kept").join("photos/2026");
    assert!(marker_dir.is_dir());
    let stray = s3.bucket_dir("kept").join("stray/empty");
    std::fs::create_dir_all(&stray).unwrap();
    let (code, _) = download(&s3, "/group1/remove_empty_dir");
    assert_eq!(code, 200);
    let swept = eventually(Duration::from_secs(10), || {
        !s3.bucket_dir("kept").join("stray").exists()
    });
    assert!(swept, "the job never removed the stray empty directory");
    assert!(
        marker_dir.is_dir(),
        "the job removed the marker's directory"
    );
    let list = s3
        .aws_ok("s3api list-objects-v2 --bucket kept --no-paginate", 60)
        .json();
    assert_eq!(list["Contents"][0]["Key"], json!("photos/2026/"), "{list}");
    s3.aws_ok("s3api head-object --bucket kept --key photos/2026/", 60);
    // Deleted through S3, the marker takes its (empty) directory with it.
    s3.aws_ok("s3api delete-object --bucket kept --key photos/2026/", 60);
    assert!(!marker_dir.exists());
    let head = s3.aws(
        &FULL,
        "s3api head-object --bucket kept --key photos/2026/",
        60,
    );
    assert!(!head.ok(), "{}", head.text());
}

#[test]
fn folder_markers_are_listed_as_empty_objects_in_byte_order_across_pages_until_deleted() {
    if !have_boto3("s3 folder markers listed") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("folders", &["--bucket", "folders"], 120);
    let empty = json!(format!("\"{}\"", md5_hex(b"")));
    let file = |k: &str| json!([k, k.len(), format!("\"{}\"", md5_hex(k.as_bytes())), true]);
    let marker = |k: &str| json!([k, 0, empty, true]);
    // '-' and '.' sort before '/', '0' after it; only the marker PUT is listed (deep/er/,
    // not deep/).
    let all = json!([
        marker("deep/er/"),
        file("e-x"),
        file("e.txt"),
        marker("e/"),
        file("e0.txt"),
        marker("full/"),
        file("full/f.txt"),
    ]);
    assert_eq!(r["all"], all, "ListObjectsV2");
    assert_eq!(r["v1_all"], all, "ListObjects (V1)");
    let keys = [
        "deep/er/",
        "e-x",
        "e.txt",
        "e/",
        "e0.txt",
        "full/",
        "full/f.txt",
    ];
    assert_eq!(r["by_1"], json!(keys.map(|k| [k])), "pages of one key");
    assert_eq!(
        r["v1_by_2"],
        json!([
            ["deep/er/", "e-x"],
            ["e.txt", "e/"],
            ["e0.txt", "full/"],
            ["full/f.txt"]
        ]),
        "V1 pages by Marker"
    );
    // Under its own prefix, a marker that ends a V1 page is a key to go on after, not a
    // common prefix to skip.
    assert_eq!(r["v1_full_by_1"], json!([["full/"], ["full/f.txt"]]));
    assert_eq!(r["full_after_marker"], json!(["full/f.txt"]));
    // With the delimiter, a marker is its folder's common prefix.
    assert_eq!(
        r["delimited"],
        json!({"keys": ["e-x", "e.txt", "e0.txt"], "prefixes": ["deep/", "e/", "full/"]})
    );
    assert_eq!(
        r["delimited_by_1"],
        json!([["deep/"], ["e-x"], ["e.txt"], ["e/"], ["e0.txt"], ["full/"]])
    );
    // Under its own prefix, the marker is a key, with or without the delimiter.
    assert_eq!(r["prefix_e"], json!([marker("e/")]));
    assert_eq!(r["prefix_e_delimited"], json!([marker("e/")]));
    assert_eq!(r["prefix_full"], json!(["full/", "full/f.txt"]));
    assert_eq!(r["prefix_deep"], json!(["deep/er/"]));
    assert_eq!(
        r["after_e_txt"],
        json!(["e/", "e0.txt", "full/", "full/f.txt"])
    );
    assert_eq!(r["after_e"], json!(["e0.txt", "full/", "full/f.txt"]));
    // A deleted marker is gone from listings; the file under full/ stays.
    assert_eq!(
        r["after_delete"],
        json!(["deep/er/", "e-x", "e.txt", "e0.txt", "full/f.txt"])
    );
    assert_eq!(r["head_e"][0], 404);
    assert_eq!(
        r["delete_bucket_with_marker"],
        json!([409, "BucketNotEmpty"])
    );
    let dir = s3.bucket_dir("folders");
    assert!(!dir.join("e").exists() && dir.join("deep/er").is_dir());
    assert!(dir.join("full/f.txt").is_file());
}

#[test]
fn delete_objects_removes_a_batch_in_verbose_and_quiet_mode() {
    if !have_boto3("s3 delete objects") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("delete_objects", &["--bucket", "batch"], 120);
    assert_eq!(r["verbose_status"], json!(200));
    assert_eq!(
        r["verbose_deleted"],
        json!([
            "batch/k00",
            "batch/k01",
            "batch/k02",
            "batch/k03",
            "batch/k04",
            "batch/missing"
        ]),
        "a missing key counts as deleted"
    );
    assert_eq!(r["verbose_errors"], json!([]));
    assert_eq!(r["quiet_status"], json!(200));
    assert_eq!(
        r["quiet_deleted"],
        json!([]),
        "quiet mode lists no deleted key"
    );
    assert_eq!(r["quiet_errors"], json!([]));
    assert_eq!(r["left"], json!(["batch/k09", "keep.txt"]));
    assert_eq!(
        r["root_prefixes"],
        json!([]),
        "no object is left under batch/"
    );
    assert_eq!(r["root_keys"], json!(["keep.txt"]));
    assert_eq!(
        tree(&s3.bucket_dir("batch"))
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["keep.txt"]
    );
}

#[test]
fn copy_object_copies_or_replaces_metadata_within_and_across_buckets() {
    if !have_boto3("s3 copy") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("copy", &["--bucket", "copies"], 120);
    let copied = |ty: &str, meta: Value| {
        json!({"etag": r["want_etag"], "length": 50_000, "type": ty, "disposition": null,
               "metadata": meta, "md5": r["want_md5"]})
    };
    assert_eq!(r["same_bucket_etag"], r["want_etag"]);
    assert_eq!(
        r["same_bucket"],
        copied("image/jpeg", json!({"camera": "x100"}))
    );
    assert_eq!(r["other_bucket_etag"], r["want_etag"]);
    assert_eq!(
        r["other_bucket"],
        copied("image/jpeg", json!({"camera": "x100"}))
    );
    assert_eq!(
        r["replaced"],
        copied("image/png", json!({"camera": "z9", "edited": "yes"}))
    );
    assert_eq!(
        r["self"],
        copied("image/jpeg", json!({"camera": "x100", "rating": "5"}))
    );
    assert_eq!(
        r["copy_after_source_replaced"], r["want_md5"],
        "a copy is independent of its source"
    );
    assert_eq!(r["missing_source"], json!([404, "NoSuchKey"]));
    assert_eq!(r["missing_source_bucket"], json!([404, "NoSuchBucket"]));
    let other = std::fs::read(s3.bucket_dir("copies-copy").join("other/photo.jpg")).unwrap();
    assert_eq!(json!(md5_hex(&other)), r["want_md5"]);
}

#[test]
fn a_multipart_upload_completes_with_the_s3_multipart_etag_and_can_be_listed_or_aborted() {
    if !have_boto3("s3 multipart") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("multipart", &["--bucket", "parts"], 180);
    assert_eq!(r["parts_count"], json!(5));
    assert_eq!(
        r["part_etags"], r["want_part_etags"],
        "part ETag = quoted md5"
    );
    assert_eq!(
        r["listed_parts"], r["want_listed_parts"],
        "ListParts: numbers, sizes, ETags (part 3 as sent the second time)"
    );
    assert!(
        r["uploads"]
            .as_array()
            .unwrap()
            .contains(&json!(["mp/big.bin", r["upload_id"]])),
        "ListMultipartUploads: {}",
        r["uploads"]
    );
    assert_eq!(
        r["before_complete_get"],
        json!([404, "NoSuchKey"]),
        "no object before Complete"
    );
    assert_eq!(r["complete_wrong_etag"], json!([400, "InvalidPart"]));
    assert_eq!(r["etag"], r["want_etag"]);
    assert!(
        r["etag"].as_str().unwrap().ends_with("-5\""),
        "{}",
        r["etag"]
    );
    assert_eq!(
        r["head"],
        json!({"etag": r["want_etag"], "length": r["want_length"], "type": "application/x-test",
               "disposition": null, "metadata": {"kind": "mp"}})
    );
    assert_eq!(r["md5"], r["want_md5"]);
    assert_eq!(r["uploads_after"], json!([]));
    assert_eq!(r["list_parts_after"], json!([404, "NoSuchUpload"]));
    assert_eq!(r["abort"], json!([204, null]));
    for case in [
        "aborted_list_parts",
        "aborted_upload_part",
        "aborted_complete",
        "unknown_upload",
    ] {
        assert_eq!(r[case], json!([404, "NoSuchUpload"]), "{case}");
    }
    assert_eq!(r["aborted_head"], json!([404, "404"]));
    assert_eq!(r["keys"], json!(["mp/big.bin"]), "no part is an object");
    let file = std::fs::read(s3.bucket_dir("parts").join("mp/big.bin")).unwrap();
    assert_eq!(json!(file.len()), r["want_length"]);
    assert_eq!(json!(md5_hex(&file)), r["want_md5"]);
}

#[test]
fn a_multipart_upload_resumes_after_its_client_is_killed_in_the_middle_of_a_part() {
    if !have_boto3("s3 multipart resume") {
        return;
    }
    let s3 = S3::start();
    // Phase 1 sends parts 1 and 2, then kills itself 1 MiB into part 3.
    let mut cmd = s3.client("python3");
    cmd.arg(script("s3_boto3.py"))
        .args(["resume", "--phase", "1", "--bucket", "resume"])
        .args(["--endpoint", &s3.endpoint()])
        .args(["--key", &format!("{}:{}", FULL.id, FULL.secret)]);
    let first = run(cmd, Duration::from_secs(120));
    assert_eq!(first.status.signal(), Some(9), "{}", first.text());
    let started: Value = serde_json::from_str(first.stdout.trim()).unwrap();
    // Phase 2, a new process, finds the upload, its two parts, and finishes it.
    let r = s3.boto3("resume", &["--phase", "2", "--bucket", "resume"], 120);
    assert_eq!(
        r["uploads"],
        json!([["resume/movie.bin", started["upload_id"]]])
    );
    assert_eq!(
        r["listed_parts"], r["want_listed_parts"],
        "parts 1-2, and nothing of the interrupted part 3"
    );
    assert_eq!(r["etag"], r["want_etag"]);
    assert_eq!(r["md5"], r["want_md5"]);
    assert_eq!(r["uploads_after"], json!([]));
}

#[test]
fn presigned_urls_get_and_put_until_they_expire_and_only_for_what_they_sign() {
    if !have_boto3("s3 presigned") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("presigned", &["--bucket", "presigned"], 120);
    assert_eq!(r["get"], json!([200, "presigned report\n"]));
    assert_eq!(r["unsigned_get"], json!([403, "AccessDenied"]));
    assert_eq!(r["put"], json!([200, r["want_put_etag"]]));
    assert_eq!(r["put_read_back"], r["want_put_md5"]);
    assert_eq!(r["other_key"], json!([403, "SignatureDoesNotMatch"]));
    assert_eq!(r["bad_signature"], json!([403, "SignatureDoesNotMatch"]));
    assert_eq!(r["expired_get"], json!([403, "AccessDenied"]));
    assert_eq!(r["expired_put"], json!([403, "AccessDenied"]));
    assert_eq!(r["expired_put_head"], json!([404, "404"]));
    // Bucket operations through presigned URLs: the X-Amz-* parameters are not sub-resources.
    assert_eq!(r["presigned_create"], json!([200, ""]));
    assert_eq!(r["presigned_create_head"], json!([200, null]));
    assert_eq!(r["presigned_delete"], json!([204, ""]));
    assert_eq!(r["presigned_delete_head"], json!([404, "404"]));
}

#[test]
fn wrong_secrets_unknown_keys_other_buckets_and_read_only_writes_are_refused() {
    if !have_boto3("s3 keys") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("auth", &["--bucket", "private"], 120);
    let denied = json!([403, "AccessDenied"]);
    for case in [
        "wrong_secret_list_buckets",
        "wrong_secret_get",
        "wrong_secret_put",
    ] {
        assert_eq!(r[case], json!([403, "SignatureDoesNotMatch"]), "{case}");
    }
    assert_eq!(r["forged_head"], json!([404, "404"]), "nothing was written");
    for case in ["unknown_key_list_buckets", "unknown_key_get"] {
        assert_eq!(r[case], json!([403, "InvalidAccessKeyId"]), "{case}");
    }
    // The key restricted to `allowed`.
    assert_eq!(r["limited_own_put"], json!([200, null]));
    assert_eq!(r["limited_own_get"], json!([200, "mine"]));
    assert_eq!(r["limited_own_list"], json!(["mine.txt", "new.txt"]));
    assert_eq!(r["limited_own_head_bucket"], json!([200, null]));
    assert_eq!(r["limited_own_delete"], json!([204, null]));
    for case in [
        "limited_other_get",
        "limited_other_put",
        "limited_other_list",
        "limited_other_delete",
        "limited_other_create",
        "limited_other_copy_out",
        "limited_other_presigned",
    ] {
        assert_eq!(r[case], denied, "{case}");
    }
    assert_eq!(r["limited_other_head"], json!([403, "403"]));
    // The read-only key.
    assert_eq!(r["readonly_get"], json!([200, "private"]));
    assert_eq!(r["readonly_list"], json!(["private.txt"]));
    for case in [
        "readonly_put",
        "readonly_delete",
        "readonly_copy",
        "readonly_create_bucket",
        "readonly_multipart",
    ] {
        assert_eq!(r[case], denied, "{case}");
    }
    let batch = &r["readonly_delete_objects"];
    assert!(
        *batch == json!({"status": 403, "code": "AccessDenied"})
            || *batch
                == json!({"status": 200, "deleted": [],
                          "errors": [["private.txt", "AccessDenied"]]}),
        "DeleteObjects with the read-only key: {batch}"
    );
    assert_eq!(r["after_refusals"], json!(["private.txt"]));
    assert_eq!(
        tree(&s3.bucket_dir("private"))
            .into_keys()
            .collect::<Vec<_>>(),
        vec!["private.txt"]
    );
}

#[test]
fn anonymous_requests_are_refused_except_reads_of_a_public_read_bucket_even_after_a_restart() {
    if !have_boto3("s3 anonymous") {
        return;
    }
    let mut s3 = S3::start();
    let r = s3.boto3("anonymous", &["--bucket", "closed"], 120);
    let denied = json!([403, "AccessDenied"]);
    for case in [
        "list_buckets",
        "private_get",
        "private_list",
        "private_put",
        "private_plain_get",
        "create_bucket",
        "public_put",
        "public_delete",
        "public_multipart",
        "public_delete_bucket",
    ] {
        assert_eq!(r[case], denied, "{case}");
    }
    assert_eq!(r["private_head"], json!([403, "403"]));
    assert_eq!(r["public_get"], json!([200, "hello, world\n"]));
    assert_eq!(r["public_head"], json!([200, null]));
    assert_eq!(r["public_list"], json!(["pub/hello.txt"]));
    assert_eq!(r["public_plain_get"], json!([200, "hello, world\n"]));
    assert_eq!(r["public_get_missing"], json!([404, "NoSuchKey"]));
    assert_eq!(r["public_after"], json!(["pub/hello.txt"]));
    // The bucket's ACL is kept across a restart.
    s3.server.stop();
    s3.server.respawn();
    assert!(
        eventually(Duration::from_secs(10), || {
            TcpStream::connect(("127.0.0.1", s3.port)).is_ok()
        }),
        "the S3 listener is back"
    );
    assert_eq!(
        anonymous_get(&s3, "/closed-public/pub/hello.txt"),
        (200, "hello, world\n".to_string())
    );
    let (code, body) = anonymous_get(&s3, "/closed/secret.txt");
    assert_eq!(code, 403);
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");
}

#[test]
fn aws_chunked_trailer_and_unsigned_payload_uploads_are_decoded_and_verified() {
    if !have_python("s3 aws-chunked") {
        return;
    }
    let s3 = S3::start();
    let mut cmd = s3.client("python3");
    cmd.arg(script("s3_sigv4.py"))
        .args(["--endpoint", &s3.endpoint(), "--bucket", "chunked"])
        .args(["--key", &format!("{}:{}", FULL.id, FULL.secret)]);
    let out = run(cmd, Duration::from_secs(120));
    assert!(
        out.ok(),
        "{}\n--- server log:\n{}",
        out.text(),
        s3.log_tail()
    );
    let r: Value = serde_json::from_str(out.stdout.lines().last().unwrap()).unwrap();
    assert_eq!(r["create_bucket"], json!([200, null]));
    for case in [
        "signed_payload",
        "unsigned_payload",
        "streaming_signed",
        "streaming_unsigned_crc32",
        "streaming_unsigned_crc32c",
        "streaming_unsigned_crc64nvme",
        "streaming_signed_trailer",
        "header_crc32",
        // Small payloads are gathered in memory and written whole: the same decoding and
        // checks.
        "small_signed_payload",
        "small_streaming_signed",
        "small_streaming_unsigned_crc32",
    ] {
        assert_eq!(
            r[case],
            json!([200, null, true]),
            "{case}: status, code, ETag = md5"
        );
    }
    for (key, got) in r["read_back"].as_object().unwrap() {
        assert_eq!(
            got,
            &json!({"status": 200, "code": null, "same_bytes": true, "content_encoding": null}),
            "{key}: the decoded bytes, without aws-chunked"
        );
        let len = std::fs::metadata(s3.bucket_dir("chunked").join(key))
            .unwrap()
            .len();
        assert_eq!(len, 150_000, "{key} on disk");
    }
    for (key, got) in r["checksums"].as_object().unwrap() {
        let want = &got["want"];
        assert!(want.is_string(), "{key}: {got}");
        assert_eq!(
            got,
            &json!({"want": want, "put": want, "get": want, "type": "FULL_OBJECT",
                    "same_bytes": true}),
            "{key}: a trailer checksum echoed, kept and returned"
        );
    }
    for (key, got) in r["read_back_small"].as_object().unwrap() {
        assert_eq!(
            got,
            &json!({"status": 200, "code": null, "same_bytes": true, "content_encoding": null}),
            "{key}"
        );
    }
    assert_eq!(
        r["small_altered_chunk"],
        json!([403, "SignatureDoesNotMatch"])
    );
    assert_eq!(r["small_wrong_trailer_crc32"], json!([400, "BadDigest"]));
    assert_eq!(r["altered_chunk"], json!([403, "SignatureDoesNotMatch"]));
    assert_eq!(r["wrong_trailer_crc32"], json!([400, "BadDigest"]));
    assert_eq!(r["wrong_trailer_crc64nvme"], json!([400, "BadDigest"]));
    assert_eq!(r["wrong_header_crc32"], json!([400, "BadDigest"]));
    assert_eq!(
        r["wrong_content_sha256"],
        json!([400, "XAmzContentSHA256Mismatch"])
    );
    assert_eq!(r["skewed_clock"], json!([403, "RequestTimeTooSkewed"]));
    for (key, status) in r["refused_left_nothing"].as_object().unwrap() {
        assert_eq!(status, &json!(404), "{key} was refused: no object");
        assert!(!s3.bucket_dir("chunked").join(key).exists(), "{key}");
    }
}

// ----------------------------------------------------------------------------- cross-API ----

#[test]
fn an_object_put_with_boto3_is_a_go_fastdfs_file() {
    if !have_boto3("s3 cross-API put") {
        return;
    }
    let s3 = S3::start();
    let data = noise(300_000, 11);
    let file = s3.home.path().join("sea.jpg");
    std::fs::write(&file, &data).unwrap();
    let r = s3.boto3(
        "put",
        &[
            "--bucket",
            "cross",
            "--object",
            "photos/2024/sea.jpg",
            "--file",
            file.to_str().unwrap(),
        ],
        60,
    );
    assert_eq!(r["etag"], json!(format!("\"{}\"", md5_hex(&data))));
    let (code, body) = download(&s3, "/group1/cross/photos/2024/sea.jpg");
    assert_eq!(code, 200);
    assert!(
        body == data,
        "the go-fastdfs download differs from the S3 object"
    );
    assert_eq!(
        std::fs::read(s3.bucket_dir("cross").join("photos/2024/sea.jpg")).unwrap(),
        data
    );
}

#[test]
fn a_file_uploaded_through_the_go_fastdfs_api_into_a_bucket_is_an_s3_object() {
    if !have_boto3("s3 cross-API upload") {
        return;
    }
    let s3 = S3::start();
    let seed = s3.home.path().join("readme.txt");
    std::fs::write(&seed, b"the shelf\n").unwrap();
    let path = seed.to_str().unwrap();
    s3.boto3(
        "put",
        &[
            "--bucket",
            "shelf",
            "--object",
            "readme.txt",
            "--file",
            path,
        ],
        60,
    );
    let data = noise(123_456, 12);
    let (code, body) = upload(
        &s3.server,
        "note.bin",
        &data,
        &[("path", "shelf/sub"), ("output", "json")],
    );
    assert_eq!(code, 200, "{body}");
    let r = s3.boto3(
        "get",
        &["--bucket", "shelf", "--object", "sub/note.bin"],
        60,
    );
    let md5 = md5_hex(&data);
    assert_eq!(r["get"], json!([200, null]));
    assert_eq!(r["md5"], json!(md5));
    assert_eq!(r["length"], json!(data.len()));
    assert_eq!(r["etag"], json!(format!("\"{md5}\"")));
    assert_eq!(r["listed"], json!(["readme.txt", "sub/note.bin"]));
}

// ------------------------------------------------------------------------------- aws-cli ----

#[test]
fn aws_cli_sync_round_trips_a_thousand_files_and_a_second_sync_uploads_nothing() {
    if !have_aws("s3 aws sync") {
        return;
    }
    let s3 = S3::start();
    let work = tempfile::tempdir().unwrap();
    let (src, down) = (work.path().join("src"), work.path().join("down"));
    let files: Vec<(String, Vec<u8>)> = (0..1000)
        .map(|i| {
            let name = format!("dir{}/sub{}/file-{i:04}.txt", i % 10, i % 7);
            (name, noise(64 + (i * 37) % 2000, 1000 + i as u64))
        })
        .collect();
    write_tree(&src, &files);
    let want = tree(&src);
    assert_eq!(want.len(), 1000);
    let (src, down) = (src.to_str().unwrap(), down.to_str().unwrap());

    let mb = s3.aws_ok("s3 mb s3://synced", 60);
    assert_eq!(mb.stdout.trim(), "make_bucket: synced");
    let up = s3.aws_ok(
        &format!("s3 sync {src} s3://synced/tree --no-progress"),
        300,
    );
    assert_eq!(up.lines_starting("upload: "), 1000, "{}", up.text());
    let on_disk = tree(&s3.bucket_dir("synced").join("tree"));
    assert!(on_disk == want, "the bucket's files are not the tree");

    let ls = s3.aws_ok("s3 ls s3://synced/tree/ --recursive", 120);
    let mut listed: Vec<String> = ls
        .stdout
        .lines()
        .map(|l| l.split_whitespace().last().unwrap().to_string())
        .collect();
    listed.sort();
    let keys: Vec<String> = want.keys().map(|k| format!("tree/{k}")).collect();
    assert_eq!(listed, keys);

    let dl = s3.aws_ok(
        &format!("s3 sync s3://synced/tree {down} --no-progress"),
        300,
    );
    assert_eq!(dl.lines_starting("download: "), 1000, "{}", dl.text());
    assert!(tree(Path::new(down)) == want, "the downloaded tree differs");

    let again = s3.aws_ok(
        &format!("s3 sync {src} s3://synced/tree --no-progress"),
        300,
    );
    assert_eq!(again.stdout.trim(), "", "a second sync uploads nothing");
}

#[test]
fn aws_cli_copies_a_64_mib_file_as_a_multipart_upload_and_reads_it_back_identical() {
    if !have_aws("s3 aws cp 64 MiB") {
        return;
    }
    let s3 = S3::start();
    let work = tempfile::tempdir().unwrap();
    let data = noise(64 * MIB, 13);
    let (file, back) = (work.path().join("big.bin"), work.path().join("back.bin"));
    std::fs::write(&file, &data).unwrap();
    let (file_arg, back_arg) = (file.to_str().unwrap(), back.to_str().unwrap());
    s3.aws_ok("s3 mb s3://large", 60);
    let up = s3.aws_ok(
        &format!("s3 cp {file_arg} s3://large/video/big.bin --no-progress"),
        300,
    );
    assert_eq!(up.lines_starting("upload: "), 1, "{}", up.text());
    let head = s3
        .aws_ok("s3api head-object --bucket large --key video/big.bin", 60)
        .json();
    assert_eq!(head["ContentLength"], json!(64 * MIB));
    assert_eq!(
        head["ETag"],
        json!(multipart_etag(&data, 8 * MIB)),
        "8 parts of 8 MiB"
    );
    s3.aws_ok(
        &format!("s3 cp s3://large/video/big.bin {back_arg} --no-progress"),
        300,
    );
    assert!(std::fs::read(&back).unwrap() == data, "read back differs");
    let (code, body) = download(&s3, "/group1/large/video/big.bin");
    assert_eq!(code, 200);
    assert!(body == data, "the go-fastdfs download differs");
    // A copy within S3: the CLI copies parts of it (UploadPartCopy).
    s3.aws_ok(
        "s3 cp s3://large/video/big.bin s3://large/copies/big.bin --no-progress",
        300,
    );
    let (code, body) = download(&s3, "/group1/large/copies/big.bin");
    assert_eq!(code, 200);
    assert!(body == data, "the server-side copy differs");
}

#[test]
fn aws_cli_s3api_commands_presign_rm_and_rb_work_against_the_listener() {
    if !have_aws("s3 aws s3api") {
        return;
    }
    let s3 = S3::start();
    let work = tempfile::tempdir().unwrap();
    let w = |name: &str, data: &[u8]| {
        let p = work.path().join(name);
        std::fs::write(&p, data).unwrap();
        p.to_str().unwrap().to_string()
    };
    let a = noise(5000, 21);
    let (fa, fb, fc, fo) = (
        w("a.txt", &a),
        w("b.txt", b"bee\n"),
        w("c.txt", b"sea\n"),
        w("o.txt", b"other\n"),
    );
    let got_file = w("got.txt", b"");
    s3.aws_ok("s3 mb s3://api", 60);
    let put = s3
        .aws_ok(
            &format!(
                "s3api put-object --bucket api --key notes/a.txt --body {fa} \
                 --content-type text/plain --metadata team=storage,level=3"
            ),
            60,
        )
        .json();
    let etag = format!("\"{}\"", md5_hex(&a));
    assert_eq!(put["ETag"], json!(etag));
    let head = s3
        .aws_ok("s3api head-object --bucket api --key notes/a.txt", 60)
        .json();
    assert_eq!(head["ContentLength"], json!(5000));
    assert_eq!(head["ContentType"], json!("text/plain"));
    assert_eq!(head["ETag"], json!(etag));
    assert_eq!(head["Metadata"], json!({"team": "storage", "level": "3"}));
    let got = s3
        .aws_ok(
            &format!("s3api get-object --bucket api --key notes/a.txt {got_file}"),
            60,
        )
        .json();
    assert_eq!(got["ContentLength"], json!(5000));
    assert_eq!(std::fs::read(&got_file).unwrap(), a);
    let got = s3
        .aws_ok(
            &format!(
                "s3api get-object --bucket api --key notes/a.txt --range bytes=0-4 {got_file}"
            ),
            60,
        )
        .json();
    assert_eq!(got["ContentRange"], json!("bytes 0-4/5000"));
    assert_eq!(std::fs::read(&got_file).unwrap(), &a[..5]);

    for (f, dest) in [
        (&fb, "notes/b.txt"),
        (&fc, "notes/c.txt"),
        (&fo, "other.txt"),
    ] {
        s3.aws_ok(&format!("s3 cp {f} s3://api/{dest} --no-progress"), 60);
    }
    // --no-paginate: the CLI's paginated output drops KeyCount.
    let list = s3
        .aws_ok(
            "s3api list-objects-v2 --bucket api --prefix notes/ --no-paginate",
            60,
        )
        .json();
    let keys: Vec<&Value> = list["Contents"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| &o["Key"])
        .collect();
    assert_eq!(
        json!(keys),
        json!(["notes/a.txt", "notes/b.txt", "notes/c.txt"])
    );
    assert_eq!(list["KeyCount"], json!(3));
    let list = s3
        .aws_ok("s3api list-objects-v2 --bucket api --delimiter /", 60)
        .json();
    assert_eq!(list["CommonPrefixes"], json!([{"Prefix": "notes/"}]));
    assert_eq!(list["Contents"].as_array().unwrap().len(), 1);
    assert_eq!(list["Contents"][0]["Key"], json!("other.txt"));

    let deleted = s3
        .aws_ok(
            r#"s3api delete-objects --bucket api --delete {"Objects":[{"Key":"notes/a.txt"},{"Key":"notes/b.txt"}]}"#,
            60,
        )
        .json();
    let mut gone: Vec<&str> = deleted["Deleted"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["Key"].as_str().unwrap())
        .collect();
    gone.sort();
    assert_eq!(gone, ["notes/a.txt", "notes/b.txt"]);
    let ls = s3.aws_ok("s3 ls s3://api/notes/", 60);
    assert_eq!(ls.stdout.lines().count(), 1, "{}", ls.text());
    assert!(ls.stdout.trim_end().ends_with(" c.txt"), "{}", ls.text());

    let url = s3
        .aws_ok("s3 presign s3://api/notes/c.txt --expires-in 300", 60)
        .stdout
        .trim()
        .to_string();
    assert!(
        url.starts_with(&format!("{}/api/notes/c.txt?", s3.endpoint())),
        "{url}"
    );
    assert!(url.contains("X-Amz-Signature="), "a SigV4 URL: {url}");
    assert_eq!(call(agent().get(&url)), (200, "sea\n".to_string()));
    let (code, body) = anonymous_get(&s3, "/api/notes/c.txt");
    assert_eq!(code, 403);
    assert!(body.contains("<Code>AccessDenied</Code>"), "{body}");

    let rm = s3.aws_ok("s3 rm s3://api/notes/c.txt", 60);
    assert_eq!(rm.stdout.trim(), "delete: s3://api/notes/c.txt");
    let rb = s3.aws_ok("s3 rb s3://api --force", 60);
    assert!(
        rb.stdout.contains("delete: s3://api/other.txt"),
        "{}",
        rb.text()
    );
    assert!(rb.stdout.contains("remove_bucket: api"), "{}", rb.text());
    assert!(!s3.bucket_dir("api").exists());
    let ls = s3.aws_ok("s3 ls", 60);
    assert!(
        !ls.stdout.lines().any(|l| l.ends_with(" api")),
        "{}",
        ls.text()
    );

    let bad = Key {
        id: FULL.id,
        secret: "not/the+secret0123456789abcdefghijklmnopq",
    };
    let refused = s3.aws(&bad, "s3 ls", 60);
    assert!(!refused.ok(), "{}", refused.text());
    assert!(
        refused.stderr.contains("SignatureDoesNotMatch"),
        "{}",
        refused.text()
    );
}

// -------------------------------------------------------------------------------- rclone ----

#[test]
fn rclone_copies_checks_lists_and_deletes_a_tree() {
    if !have_rclone("s3 rclone") {
        return;
    }
    let s3 = S3::start();
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    let mut files: Vec<(String, Vec<u8>)> = (0..40)
        .map(|i| {
            let name = match ["sub-a", "sub-a/deeper", "sub-b", ""][i % 4] {
                "" => format!("f{i:02}.dat"),
                dir => format!("{dir}/f{i:02}.dat"),
            };
            (name, noise(100 + i * 997, 2000 + i as u64))
        })
        .collect();
    files.push(("sub-b/empty.txt".into(), Vec::new()));
    files.push(("big.bin".into(), noise(3 * MIB, 2100)));
    write_tree(&src, &files);
    let want = tree(&src);
    let ok = |args: &[&str]| {
        let out = s3.rclone(args);
        assert!(
            out.ok(),
            "rclone {args:?} failed: {}\n--- server log:\n{}",
            out.text(),
            s3.log_tail()
        );
        out
    };
    let src_arg = src.to_str().unwrap();
    ok(&["mkdir", "s3t:rcl"]);
    ok(&["copy", src_arg, "s3t:rcl/tree"]);
    assert!(
        tree(&s3.bucket_dir("rcl").join("tree")) == want,
        "the bucket's files are not the tree"
    );
    let check = ok(&["check", src_arg, "s3t:rcl/tree"]);
    assert!(
        check.stderr.contains("0 differences found"),
        "{}",
        check.text()
    );
    let lsf = ok(&["lsf", "-R", "--files-only", "s3t:rcl/tree"]);
    let mut listed: Vec<&str> = lsf.stdout.lines().collect();
    listed.sort();
    let names: Vec<&str> = want.keys().map(String::as_str).collect();
    assert_eq!(listed, names);

    // A local change of the same size is found through the hashes.
    let changed = src.join("sub-b/f02.dat");
    let mut bytes = std::fs::read(&changed).unwrap();
    bytes[0] ^= 0xff;
    std::fs::write(&changed, &bytes).unwrap();
    let check = s3.rclone(&["check", src_arg, "s3t:rcl/tree"]);
    assert!(!check.ok(), "{}", check.text());
    assert!(
        check.stderr.contains("1 differences found"),
        "{}",
        check.text()
    );

    ok(&["delete", "s3t:rcl/tree/sub-a"]);
    let lsf = ok(&["lsf", "-R", "--files-only", "s3t:rcl/tree"]);
    let mut listed: Vec<&str> = lsf.stdout.lines().collect();
    listed.sort();
    let rest: Vec<&str> = names
        .iter()
        .copied()
        .filter(|n| !n.starts_with("sub-a/"))
        .collect();
    assert_eq!(listed, rest);
    let left = tree(&s3.bucket_dir("rcl").join("tree"));
    assert!(left.keys().all(|k| !k.starts_with("sub-a/")), "{left:?}");
}

// -------------------------------------------------------------------------------- memory ----

/// A field of /proc/<pid>/status in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| {
            v.trim_start_matches(':')
                .trim()
                .trim_end_matches("kB")
                .trim()
                .parse()
                .ok()
        })
}

/// The slowest test of this file (about 30 s): boto3 uploads 1 GiB in 64 MiB parts with two
/// threads, then reads it back streamed, while the server's RSS is sampled every 100 ms.
#[test]
fn a_one_gib_multipart_upload_and_its_download_keep_server_memory_under_96_mib() {
    if !have_boto3("s3 1 GiB memory bound") {
        return;
    }
    let s3 = S3::start();
    let pid = s3.server.child.as_ref().unwrap().id();
    let work = tempfile::tempdir().unwrap();
    let file = work.path().join("one-gib.bin");
    let stop = Arc::new(AtomicBool::new(false));
    let sampler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let (mut max, mut samples) = (0, 0);
            while !stop.load(Ordering::Relaxed) {
                if let Some(kib) = status_kib(pid, "VmRSS") {
                    max = max.max(kib);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            (max, samples)
        })
    };
    let started = Instant::now();
    let r = s3.boto3(
        "big",
        &["--bucket", "big", "--file", file.to_str().unwrap()],
        300,
    );
    stop.store(true, Ordering::Relaxed);
    let (max_rss_kib, samples) = sampler.join().unwrap();
    let max_rss_mib = max_rss_kib / 1024;
    assert!(samples >= 10, "only {samples} RSS samples of the server");
    let peak_mib = status_kib(pid, "VmHWM").unwrap() / 1024;
    eprintln!(
        "1 GiB: upload {} s, download {} s, whole test {:?}; server RSS max {max_rss_mib} MiB, \
         peak {peak_mib} MiB",
        r["upload_seconds"],
        r["download_seconds"],
        started.elapsed()
    );
    assert_eq!(r["length"], json!(1u64 << 30));
    assert_eq!(r["etag"], r["want_etag"], "16 parts of 64 MiB");
    assert_eq!(r["md5"], r["want_md5"]);
    assert!(max_rss_mib < 96, "server RSS reached {max_rss_mib} MiB");
    assert!(peak_mib < 96, "server peak RSS (VmHWM) {peak_mib} MiB");
    let stored = std::fs::metadata(s3.bucket_dir("big").join("big/one-gib.bin")).unwrap();
    assert_eq!(stored.len(), 1 << 30);
}

/// SIGTERM while a PUT's body is still arriving (its client stalls): when `shutdown_grace` is
/// over the body is cut and answered `503 ServiceUnavailable` (which S3 clients retry), the
/// process exits 0 soon after, and neither an object nor a temp file is left.
#[test]
fn a_put_still_arriving_when_the_shutdown_grace_ends_gets_503_and_stores_nothing() {
    use std::io::BufRead;
    if !have_python("s3 shutdown") {
        return;
    }
    let mut s3 = S3::start();
    let mut cmd = s3.client("python3");
    cmd.arg(script("s3_stalled_put.py"))
        .args(["--endpoint", &s3.endpoint(), "--bucket", "cut"])
        .args(["--object", "obj.bin"])
        .args(["--key", &format!("{}:{}", FULL.id, FULL.secret)])
        .stdout(Stdio::piped());
    let mut client = cmd.spawn().expect("python3");
    let mut out = std::io::BufReader::new(client.stdout.take().unwrap());
    let mut line = String::new();
    out.read_line(&mut line).unwrap();
    assert_eq!(line.trim(), "stalled", "{}", s3.log_tail());
    std::thread::sleep(Duration::from_millis(300));
    let mut server = s3.server.child.take().unwrap();
    let signalled = Instant::now();
    unsafe { libc::kill(server.id() as i32, libc::SIGTERM) };
    assert_eq!(wait_child(&mut server, Duration::from_secs(20)), Some(0));
    let took = signalled.elapsed();
    // The base config's shutdown_grace is 5 s; the cut bodies get 3 s more at most.
    assert!(took < Duration::from_secs(9), "exit took {took:?}");
    let mut answer = String::new();
    out.read_to_string(&mut answer).unwrap();
    wait_child(&mut client, Duration::from_secs(10));
    let r: Value = serde_json::from_str(answer.trim()).unwrap_or(Value::Null);
    assert_eq!(
        r,
        json!({"status": 503, "code": "ServiceUnavailable"}),
        "{answer}"
    );
    assert!(!s3.bucket_dir("cut").join("obj.bin").exists());
    let temps = std::fs::read_dir(s3.server.dir.join("files/_tmp"))
        .unwrap()
        .count();
    assert_eq!(temps, 0, "the cut PUT's temp file was left");
}

/// curl signed as `FULL` (SigV4, unsigned payload) with `args` at `path` of the endpoint:
/// (status, body).
fn signed_curl(s3: &S3, args: &[&str], path: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
        ])
        .args(["--user", &format!("{}:{}", FULL.id, FULL.secret)])
        .args([
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
            "-w",
            "\n%{http_code}",
        ])
        .args(args)
        .arg(format!("{}{path}", s3.endpoint()))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Two UploadParts of the same part number sent at once, with different bytes, both answered
/// 200: the part is then one of them (the last to land), never neither.
#[test]
fn the_same_part_sent_twice_at_once_keeps_one_of_them() {
    let s3 = S3::start();
    assert_eq!(signed_curl(&s3, &["-X", "PUT"], "/race").0, 200);
    let (code, body) = signed_curl(&s3, &["-X", "POST"], "/race/part.bin?uploads=");
    assert_eq!(code, 200, "{body}");
    let id = body.split("<UploadId>").nth(1).unwrap();
    let id = id.split("</UploadId>").next().unwrap().to_string();
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<Vec<u8>> = (0..2).map(|i| noise(64 << 10, 70 + i)).collect();
    let files: Vec<String> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = tmp.path().join(format!("p{i}"));
            std::fs::write(&p, d).unwrap();
            p.display().to_string()
        })
        .collect();
    let etags: Vec<String> = data
        .iter()
        .map(|d| format!("&quot;{}&quot;", md5_hex(d)))
        .collect();
    let part = format!("/race/part.bin?partNumber=1&uploadId={id}");
    for round in 0..30 {
        std::thread::scope(|sc| {
            let hs: Vec<_> = files
                .iter()
                .map(|f| sc.spawn(|| signed_curl(&s3, &["-T", f], &part)))
                .collect();
            for h in hs {
                let (code, body) = h.join().unwrap();
                assert_eq!(code, 200, "{body}");
            }
        });
        let (code, body) = signed_curl(&s3, &[], &format!("/race/part.bin?uploadId={id}"));
        assert_eq!(code, 200, "{body}");
        assert_eq!(body.matches("<Part>").count(), 1, "round {round}: {body}");
        assert!(etags.iter().any(|e| body.contains(e.as_str())), "{body}");
    }
}

/// Two CompleteMultipartUploads of one upload sent at once: each is answered as S3 does,
/// 200 (the object made) or 404 `NoSuchUpload` (the other one made it first), never a 500.
#[test]
fn two_completions_of_one_upload_at_once_are_answered_200_or_no_such_upload() {
    let s3 = S3::start();
    assert_eq!(signed_curl(&s3, &["-X", "PUT"], "/twice").0, 200);
    let tmp = tempfile::tempdir().unwrap();
    let data: Vec<Vec<u8>> = vec![noise(5 * MIB, 81), noise(MIB, 82)];
    let files: Vec<String> = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let p = tmp.path().join(format!("p{i}"));
            std::fs::write(&p, d).unwrap();
            p.display().to_string()
        })
        .collect();
    let parts: String = data
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let md5 = md5_hex(d);
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{md5}\"</ETag></Part>",
                i + 1
            )
        })
        .collect();
    let xml = tmp.path().join("complete.xml");
    std::fs::write(
        &xml,
        format!("<CompleteMultipartUpload>{parts}</CompleteMultipartUpload>"),
    )
    .unwrap();
    let xml_arg = format!("@{}", xml.display());
    let mut answers = Vec::new();
    for round in 0..12 {
        let key = format!("/twice/o{round}.bin");
        let (code, body) = signed_curl(&s3, &["-X", "POST"], &format!("{key}?uploads="));
        assert_eq!(code, 200, "{body}");
        let id = body.split("<UploadId>").nth(1).unwrap();
        let id = id.split("</UploadId>").next().unwrap().to_string();
        for (i, f) in files.iter().enumerate() {
            let part = format!("{key}?partNumber={}&uploadId={id}", i + 1);
            assert_eq!(signed_curl(&s3, &["-T", f], &part).0, 200);
        }
        let upload = format!("{key}?uploadId={id}");
        let args = ["-X", "POST", "--data-binary", xml_arg.as_str()];
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2u64)
                .map(|i| {
                    let (args, upload, s3) = (&args, &upload, &s3);
                    sc.spawn(move || {
                        std::thread::sleep(Duration::from_millis(i * round * 15));
                        signed_curl(s3, args, upload)
                    })
                })
                .collect();
            for h in hs {
                answers.push(h.join().unwrap());
            }
        });
        let (code, got) = download(&s3, &format!("/group1{key}"));
        assert_eq!((code, got == data.concat()), (200, true), "round {round}");
    }
    eprintln!(
        "CODES {:?}",
        answers.iter().map(|a| a.0).collect::<Vec<_>>()
    );
    for (code, body) in &answers {
        assert!(
            *code == 200 || (*code == 404 && body.contains("<Code>NoSuchUpload</Code>")),
            "{code}: {body}"
        );
    }
}

/// Two AbortMultipartUploads of one upload sent at once: each is 204 or 404 `NoSuchUpload`
/// (the other removed it first), never a 500, and the upload is gone.
#[test]
fn two_aborts_of_one_upload_at_once_are_answered_204_or_no_such_upload() {
    let s3 = S3::start();
    assert_eq!(signed_curl(&s3, &["-X", "PUT"], "/abort").0, 200);
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join("part");
    std::fs::write(&part, noise(64 << 10, 83)).unwrap();
    let part = part.display().to_string();
    let mut answers = Vec::new();
    for round in 0..20 {
        let key = format!("/abort/o{round}.bin");
        let (code, body) = signed_curl(&s3, &["-X", "POST"], &format!("{key}?uploads="));
        assert_eq!(code, 200, "{body}");
        let id = body.split("<UploadId>").nth(1).unwrap();
        let id = id.split("</UploadId>").next().unwrap().to_string();
        for n in 1..=3 {
            let url = format!("{key}?partNumber={n}&uploadId={id}");
            assert_eq!(signed_curl(&s3, &["-T", &part], &url).0, 200);
        }
        let upload = format!("{key}?uploadId={id}");
        std::thread::scope(|sc| {
            let hs: Vec<_> = (0..2)
                .map(|_| sc.spawn(|| signed_curl(&s3, &["-X", "DELETE"], &upload)))
                .collect();
            for h in hs {
                answers.push(h.join().unwrap());
            }
        });
        assert_eq!(signed_curl(&s3, &[], &upload).0, 404, "round {round}");
    }
    for (code, body) in &answers {
        assert!(
            *code == 204 || (*code == 404 && body.contains("<Code>NoSuchUpload</Code>")),
            "{code}: {body}"
        );
    }
}

/// One access key holds at most 1,000 pending multipart uploads, however its creations
/// arrive: at 999, of 16 sent at once exactly one is made (the others `InvalidRequest`),
/// and the next is refused.
#[test]
fn a_keys_pending_uploads_stop_at_their_bound_when_creations_arrive_at_once() {
    if !have_boto3("s3 pending uploads bound") {
        return;
    }
    let s3 = S3::start();
    let r = s3.boto3("pending_bound", &["--bucket", "pending"], 300);
    let made = r["at_once"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|o| o[0] == 200)
        .count();
    assert_eq!(made, 1, "{}", r["at_once"]);
    for o in r["at_once"].as_array().unwrap() {
        assert!(o[0] == 200 || *o == json!([400, "InvalidRequest"]), "{o}");
    }
    assert_eq!(r["pending"], json!(1000));
    assert_eq!(r["one_more"], json!([400, "InvalidRequest"]));
}

/// UploadParts sent while the upload is aborted: each is 200 (kept until the abort removed
/// the upload) or 404 `NoSuchUpload`, never a 500, and nothing of the upload is left.
#[test]
fn parts_sent_while_their_upload_is_aborted_are_answered_200_or_no_such_upload() {
    let s3 = S3::start();
    assert_eq!(signed_curl(&s3, &["-X", "PUT"], "/gone").0, 200);
    let tmp = tempfile::tempdir().unwrap();
    let part = tmp.path().join("part");
    std::fs::write(&part, noise(256 << 10, 84)).unwrap();
    let part = part.display().to_string();
    let mut answers = Vec::new();
    for round in 0..15u64 {
        let key = format!("/gone/o{round}.bin");
        let (code, body) = signed_curl(&s3, &["-X", "POST"], &format!("{key}?uploads="));
        assert_eq!(code, 200, "{body}");
        let id = body.split("<UploadId>").nth(1).unwrap();
        let id = id.split("</UploadId>").next().unwrap().to_string();
        let upload = format!("{key}?uploadId={id}");
        std::thread::scope(|sc| {
            let parts: Vec<_> = (1..=4)
                .map(|n| {
                    let url = format!("{key}?partNumber={n}&uploadId={id}");
                    let (s3, part) = (&s3, &part);
                    sc.spawn(move || signed_curl(s3, &["-T", part], &url))
                })
                .collect();
            std::thread::sleep(Duration::from_millis(round * 2));
            let (code, body) = signed_curl(&s3, &["-X", "DELETE"], &upload);
            assert_eq!(code, 204, "{body}");
            for h in parts {
                answers.push(h.join().unwrap());
            }
        });
    }
    for (code, body) in &answers {
        assert!(
            *code == 200 || (*code == 404 && body.contains("<Code>NoSuchUpload</Code>")),
            "{code}: {body}"
        );
    }
    let uploads = s3.server.dir.join("files/_s3/uploads");
    let left = || std::fs::read_dir(&uploads).map_or(0, |d| d.count());
    assert!(
        eventually(Duration::from_secs(5), || left() == 0),
        "{} left",
        left()
    );
}
