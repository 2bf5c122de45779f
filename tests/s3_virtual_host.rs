//! Virtual-hosted-style S3 requests (`Host: <bucket>.<s3_domain>`), signed by curl's
//! `--aws-sigv4` (which signs the Host it sends), beside path-style ones on the same listener.

mod common;

use common::*;
use serde_json::json;
use std::process::Command;

const AK: &str = "AKVHOST";
const SK: &str = "vhost-secret";

/// A signed curl call to `url`, resolving every name to 127.0.0.1; (status, body).
fn s3(port: u16, method: &str, url: &str, body: Option<&std::path::Path>) -> (u16, Vec<u8>) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "--max-time", "20", "-o", "-", "-w", "\n%{http_code}"])
        .args(["-X", method])
        .args([
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &format!("{AK}:{SK}"),
        ])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .args(["--resolve", &format!("photos.s3.test:{port}:127.0.0.1")])
        .args(["--resolve", &format!("s3.test:{port}:127.0.0.1")]);
    if let Some(f) = body {
        cmd.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    let out = cmd.arg(url).output().expect("curl runs");
    let mut bytes = out.stdout;
    let nl = bytes.iter().rposition(|&b| b == b'\n').unwrap_or(0);
    let status = String::from_utf8_lossy(&bytes[nl + 1..])
        .trim()
        .parse()
        .unwrap_or(0);
    bytes.truncate(nl);
    (status, bytes)
}

#[test]
fn a_bucket_named_in_the_host_is_the_same_bucket_as_in_the_path() {
    if Command::new("curl").arg("--version").output().is_err() {
        skip("s3 virtual host", "curl is not installed");
        return;
    }
    let port = free_port("127.0.0.1");
    let s = Server::start(json!({
        "s3_addr": format!("127.0.0.1:{port}"),
        "s3_domain": "s3.test",
        "s3_keys": [{"access_key_id": AK, "secret_access_key": SK, "buckets": ["*"]}],
    }));
    let (status, body) = s3(port, "PUT", &format!("http://photos.s3.test:{port}/"), None);
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("cat.txt");
    std::fs::write(&f, b"meow").unwrap();
    let (status, body) = s3(
        port,
        "PUT",
        &format!("http://photos.s3.test:{port}/2026/cat.txt"),
        Some(&f),
    );
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    // Path style on the same listener names the same object.
    let (status, body) = s3(
        port,
        "GET",
        &format!("http://s3.test:{port}/photos/2026/cat.txt"),
        None,
    );
    assert_eq!((status, body.as_slice()), (200, &b"meow"[..]));
    let (status, body) = s3(
        port,
        "GET",
        &format!("http://photos.s3.test:{port}/?list-type=2"),
        None,
    );
    assert_eq!(status, 200);
    assert!(String::from_utf8_lossy(&body).contains("<Key>2026/cat.txt</Key>"));
    assert_eq!(
        std::fs::read(s.dir.join("files/photos/2026/cat.txt")).unwrap(),
        b"meow"
    );
}
