//! `enable_https` (docs/CONFIG.md): the node serves TLS with `conf/server.crt` and
//! `conf/server.key`, as go-fastdfs does, and everything else works through it as over plain
//! HTTP: curl and wget check the certificate, upload, download, resume; the access rules and
//! logs see the real client, not the relay. The S3 listener serves TLS with the same pair
//! (the AWS CLI and the JS SDK check it). A reload, or a change of the files, puts a renewed
//! pair in service for new connections; a broken one is refused and the old one serves on.

mod common;
use common::s3::{have_aws, S3};
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn have(tool: &str) -> bool {
    let ok = Command::new(tool).arg("--version").output().is_ok()
        || Command::new(tool).arg("version").output().is_ok();
    if !ok {
        skip("https tests", &format!("{tool} is not installed"));
    }
    ok
}

/// A self-signed certificate for 127.0.0.1 in `dir/conf` (server.crt, server.key).
fn make_certificate(dir: &Path) {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let out = Command::new("openssl")
        .args([
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
        ])
        .args([
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
        ])
        .arg("-keyout")
        .arg(dir.join("conf/server.key"))
        .arg("-out")
        .arg(dir.join("conf/server.crt"))
        .output()
        .expect("openssl");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A new temporary dir holding a self-signed certificate pair made for it (`cert`).
fn certified_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert");
    make_certificate(&cert);
    (tmp, cert)
}

/// A node serving TLS (two executors: the relays reach both) and its runtime dir's owner.
fn https_server() -> (Server, tempfile::TempDir) {
    let (tmp, cert) = certified_dir();
    let s = tls_node_with(
        &tmp.path().join("node"),
        free_port("127.0.0.1"),
        &cert,
        json!({"workers": 2}),
    );
    (s, tmp)
}

fn https(s: &Server, path: &str) -> String {
    format!("https://127.0.0.1:{}{path}", s.port)
}

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().expect("client");
    assert!(
        out.status.success(),
        "{:?}: {}{}",
        cmd,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn curl(s: &Server) -> Command {
    let mut c = Command::new("curl");
    c.args(["-sS", "--fail", "--max-time", "60", "--cacert"])
        .arg(s.dir.join("conf/server.crt"));
    c
}

#[test]
fn curl_and_wget_upload_download_and_resume_over_tls_checking_the_certificate() {
    if !have("openssl") || !have("curl") || !have("wget") {
        return;
    }
    let (s, _tmp) = https_server();
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 + i / 977) as u8).collect();
    let file = s.dir.join("payload.bin");
    std::fs::write(&file, &data).unwrap();

    let out = run(curl(&s)
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .args(["-F", "output=json"])
        .arg(https(&s, "/group1/upload")));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["md5"], md5_hex(&data));
    let url = answer["url"].as_str().unwrap().to_string();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    let out = run(curl(&s).arg(&url));
    assert!(out.stdout == data, "curl's download differs");
    // A Range resume and wget -c finishing a half-written file.
    let out = run(curl(&s).args(["-r", "1000000-"]).arg(&url));
    assert!(out.stdout == data[1_000_000..], "Range over TLS");
    let partial = s.dir.join("partial.bin");
    std::fs::write(&partial, &data[..1_234_567]).unwrap();
    run(Command::new("wget")
        .args(["-q", "-c", "--ca-certificate"])
        .arg(s.dir.join("conf/server.crt"))
        .arg("-O")
        .arg(&partial)
        .arg(&url));
    assert!(std::fs::read(&partial).unwrap() == data, "wget -c over TLS");

    // Several requests on one kept-alive TLS connection.
    let out = run(curl(&s)
        .args([
            "-o",
            "/dev/null",
            "-o",
            "/dev/null",
            "-w",
            "%{num_connects} ",
        ])
        .arg(https(&s, "/group1/status"))
        .arg(https(&s, "/group1/status")));
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1 0 ");

    // Plain HTTP on the TLS port: a 400 that says to use https:// (as go-fastdfs' Go TLS
    // server answers), in the JSON envelope, and the connection closed.
    let plain = Command::new("curl")
        .args(["-s", "--max-time", "10", "-w", "\n%{http_code}"])
        .arg(s.url("/group1/status"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&plain.stdout);
    let (body, code) = text.rsplit_once('\n').unwrap();
    assert_eq!(code, "400", "{text}");
    let v: serde_json::Value = serde_json::from_str(body).unwrap();
    assert_eq!(v["status"], "fail");
    assert!(
        v["message"].as_str().unwrap().contains("https://"),
        "{body}"
    );
}

/// The relay registers each connection's client: admin rights and the access log go by the
/// real address (127.0.0.7 here), not by the relay's loopback one (127.0.0.1, an admin).
#[test]
fn the_client_behind_the_tls_relay_is_the_real_one_for_access_rules_and_logs() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let (s, _tmp) = https_server();
    let admin = run(curl(&s).arg(https(&s, "/group1/stat")));
    assert!(String::from_utf8_lossy(&admin.stdout).contains("\"ok\""));
    let other = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "30",
            "--interface",
            "127.0.0.7",
            "--cacert",
        ])
        .arg(s.dir.join("conf/server.crt"))
        .args(["-o", "/dev/null", "-w", "%{http_code}"])
        .arg(https(&s, "/group1/stat"))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&other.stdout), "403");
    let logged = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(s.dir.join("log/access.log"))
            .unwrap_or_default()
            .contains("127.0.0.7")
    });
    assert!(logged, "the access log names the real client");
}

/// A TLS client that connects and never says hello is closed within the handshake's 10 s;
/// the node keeps serving meanwhile.
#[test]
fn a_connection_that_never_completes_its_handshake_is_closed() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let (s, _tmp) = https_server();
    let mut silent = TcpStream::connect(s.addr()).unwrap();
    silent
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    run(curl(&s).arg(https(&s, "/group1/status")));
    let t = Instant::now();
    let mut buf = [0u8; 64];
    let n = silent.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "closed without an answer");
    assert!(t.elapsed() < Duration::from_secs(15), "{:?}", t.elapsed());
    // Garbage instead of a hello: closed at once.
    let mut junk = TcpStream::connect(s.addr()).unwrap();
    junk.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    junk.set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    let mut got = Vec::new();
    let _ = junk.read_to_end(&mut got);
    assert!(!String::from_utf8_lossy(&got).contains("200 OK"));
}

#[test]
fn enable_https_without_its_certificate_refuses_to_start_and_says_why() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    std::fs::create_dir_all(tmp.path().join("conf")).unwrap();
    let cfg = base_config(
        "127.0.0.1",
        port,
        &json!({"enable_https": true, "host": format!("https://127.0.0.1:{port}")}),
    );
    std::fs::write(
        tmp.path().join("conf/cfg.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    let out = Command::new(BIN)
        .arg("server")
        .current_dir(tmp.path())
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("server.crt"), "{err}");
}

/// A node of a TLS cluster: `dir/conf` holds `cert` (server.crt and server.key, copied),
/// its peers are `peers` (https:// URLs), `verify` is `tls_verify_peers`.
fn tls_node(dir: &Path, port: u16, cert: &Path, peers: &[String], verify: bool) -> Server {
    tls_node_with(
        dir,
        port,
        cert,
        json!({"peers": peers, "tls_verify_peers": verify}),
    )
}

/// A node serving TLS in `dir` with the certificate of `cert` (copied) and `overrides`.
fn tls_node_with(dir: &Path, port: u16, cert: &Path, overrides: serde_json::Value) -> Server {
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    for f in ["server.crt", "server.key"] {
        std::fs::copy(cert.join("conf").join(f), dir.join("conf").join(f)).unwrap();
    }
    // The harness writes `host` as http://; an operator of a TLS node names it https://.
    let mut settings = json!({"enable_https": true, "host": format!("https://127.0.0.1:{port}")});
    for (k, v) in overrides.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let cfg = base_config("127.0.0.1", port, &settings);
    std::fs::write(
        dir.join("conf/cfg.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    Server::start_in(dir, "127.0.0.1", json!({}))
}

/// Two nodes serving TLS replicate over https:// with the certificate they share (a
/// self-signed one, trusted because it is the node's own); a peer presenting another
/// certificate gets nothing unless `tls_verify_peers` is off (go-fastdfs clusters with one
/// self-signed certificate per node).
#[test]
fn nodes_serving_tls_replicate_over_https_and_check_each_others_certificate() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (shared, other) = (tmp.path().join("cert-a"), tmp.path().join("cert-b"));
    make_certificate(&shared);
    make_certificate(&other);
    let (pa, pb, pc) = (
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
        free_port("127.0.0.1"),
    );
    let url = |p: u16| format!("https://127.0.0.1:{p}");
    let a = tls_node(
        &tmp.path().join("a"),
        pa,
        &shared,
        &[url(pb), url(pc)],
        true,
    );
    let b = tls_node(&tmp.path().join("b"), pb, &shared, &[url(pa)], true);
    // c has a certificate of its own: a refuses to send it anything.
    let c = tls_node(&tmp.path().join("c"), pc, &other, &[url(pa)], true);
    let file = tmp.path().join("replicated.txt");
    std::fs::write(&file, b"over tls to a peer").unwrap();
    let out = run(curl(&a)
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .args(["-F", "output=json"])
        .arg(https(&a, "/group1/upload")));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let path = answer["path"].as_str().unwrap().to_string();
    let on = |s: &Server| {
        Command::new("curl")
            .args(["-sk", "--max-time", "10"])
            .arg(https(s, &path))
            .output()
            .map(|o| o.stdout)
            .unwrap_or_default()
    };
    let arrived = eventually(Duration::from_secs(30), || on(&b) == b"over tls to a peer");
    assert!(arrived, "b never got the file: {}", a.stderr_tail(3000));
    std::thread::sleep(Duration::from_secs(3));
    assert_ne!(
        on(&c),
        b"over tls to a peer",
        "c's certificate was not checked"
    );
    drop(c);

    // With verification off, a node sends to a peer with a certificate of its own.
    let pe = free_port("127.0.0.1");
    let e = tls_node(&tmp.path().join("e"), pe, &other, &[], true);
    let lax = tls_node(
        &tmp.path().join("f"),
        free_port("127.0.0.1"),
        &shared,
        &[url(pe)],
        false,
    );
    std::fs::write(&file, b"to a node with its own certificate").unwrap();
    let path2 = {
        let out = run(curl(&lax)
            .arg("-F")
            .arg(format!("file=@{}", file.display()))
            .args(["-F", "output=json"])
            .arg(https(&lax, "/group1/upload")));
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["path"].as_str().unwrap().to_string()
    };
    let got = eventually(Duration::from_secs(30), || {
        Command::new("curl")
            .args(["-sk", "--max-time", "10"])
            .arg(https(&e, &path2))
            .output()
            .map(|o| o.stdout == b"to a node with its own certificate")
            .unwrap_or(false)
    });
    assert!(
        got,
        "tls_verify_peers: false sends anyway: {}",
        lax.stderr_tail(3000)
    );
}

/// A file too large to travel inside a batched announcement (over 256 KiB) is fetched by the
/// receiver from its sender at the sender's https:// URL, as from an http:// one, and stored
/// (not only read through).
#[test]
fn a_file_fetched_from_an_https_peer_replicates() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let (tmp, cert) = certified_dir();
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let url = |p: u16| format!("https://127.0.0.1:{p}");
    let a = tls_node(&tmp.path().join("a"), pa, &cert, &[url(pb)], true);
    let b = tls_node(&tmp.path().join("b"), pb, &cert, &[url(pa)], true);
    let data = noise(300 << 10, 371);
    let file = tmp.path().join("large.bin");
    std::fs::write(&file, &data).unwrap();
    let out = run(curl(&a)
        .arg("-F")
        .arg(format!("file=@{}", file.display()))
        .args(["-F", "output=json"])
        .arg(https(&a, "/group1/upload")));
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(answer["size"], data.len(), "{answer}");
    let md5 = answer["md5"].as_str().unwrap().to_string();
    let stored_on_b = || {
        let url = https(&b, &format!("/group1/check_file_exist?md5={md5}"));
        Command::new("curl")
            .args(["-sk", "--max-time", "10"])
            .arg(url)
            .output()
            .ok()
            .and_then(|o| serde_json::from_slice::<serde_json::Value>(&o.stdout).ok())
            .is_some_and(|v| v["md5"] == md5.as_str())
    };
    let arrived = eventually(Duration::from_secs(60), stored_on_b);
    assert!(arrived, "b never stored the file: {}", b.stderr_tail(3000));
}

/// A tus `callback_url` may be `https://`: the notice is POSTed over TLS to a server whose
/// certificate passes the node's check (here the target's certificate is in the sender's
/// `conf/server.crt`: trusted as its own).
#[test]
fn a_tus_callback_to_an_https_url_is_delivered_over_tls() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let (tmp, cert) = certified_dir();
    let target = tls_node(
        &tmp.path().join("target"),
        free_port("127.0.0.1"),
        &cert,
        &[],
        true,
    );
    let sender_dir = tmp.path().join("sender");
    std::fs::create_dir_all(sender_dir.join("conf")).unwrap();
    std::fs::copy(
        cert.join("conf/server.crt"),
        sender_dir.join("conf/server.crt"),
    )
    .unwrap();
    let sender = Server::start_in(&sender_dir, "127.0.0.1", json!({"enable_tus": true}));
    let b64 = |v: &str| fastdfs::tus::protocol::base64_encode(v.as_bytes());
    let hook = https(&target, "/tls-callback/notice");
    let metadata = format!("filename {},callback_url {}", b64("n.txt"), b64(&hook));
    let created = agent()
        .post(&sender.url("/group1/big/upload/"))
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Length", "5")
        .set("Upload-Metadata", &metadata)
        .call()
        .unwrap();
    assert_eq!(created.status(), 201);
    let upload = created.header("location").unwrap().to_string();
    let patched = agent()
        .request("PATCH", &upload)
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Offset", "0")
        .set("Content-Type", "application/offset+octet-stream")
        .send_bytes(b"hello")
        .unwrap();
    assert_eq!(patched.status(), 204);
    let delivered = eventually(Duration::from_secs(20), || {
        std::fs::read_to_string(target.dir.join("log/access.log"))
            .unwrap_or_default()
            .contains("/tls-callback/notice")
    });
    assert!(delivered, "no notice arrived: {}", sender.stderr_tail(2000));
}

const S3_KEY: &str = "AKIATLSCLIENTS000001";
const S3_SECRET: &str = "tls/Secret+Key0123456789abcdefghijklmno";

/// A TLS node (two executors) with its S3 listener on, the certificate of `cert`.
fn https_s3_node(dir: &Path, cert: &Path) -> S3 {
    https_s3_node_with(dir, cert, json!({}))
}

/// [`https_s3_node`] with the settings `overrides` too.
fn https_s3_node_with(dir: &Path, cert: &Path, overrides: serde_json::Value) -> S3 {
    let s3_port = free_port("127.0.0.1");
    let mut settings = json!({
        "workers": 2,
        "s3_addr": format!("127.0.0.1:{s3_port}"),
        "s3_region": "us-east-1",
        "s3_keys": [{"access_key_id": S3_KEY, "secret_access_key": S3_SECRET,
                     "buckets": ["*"], "read_only": false}],
    });
    for (k, v) in overrides.as_object().unwrap() {
        settings[k] = v.clone();
    }
    let server = tls_node_with(dir, free_port("127.0.0.1"), cert, settings);
    let up = eventually(Duration::from_secs(10), || {
        TcpStream::connect(("127.0.0.1", s3_port)).is_ok()
    });
    assert!(up, "the S3 listener never accepted: {}", server.stderr());
    S3 {
        server,
        port: s3_port,
        home: tempfile::tempdir().unwrap(),
    }
}

fn s3_https(s3: &S3) -> String {
    format!("https://127.0.0.1:{}", s3.port)
}

/// The AWS CLI against `https://127.0.0.1:<s3 port>`, believing the CA bundle `ca` only:
/// path-style, SigV4, multipart above 8 MB in 8 MB parts, no retries.
fn aws_tls(s3: &S3, ca: &Path, args: &[&str]) -> common::s3::Output {
    let mut cmd = s3.aws_command_at(&s3_https(s3), S3_KEY, S3_SECRET);
    cmd.env("AWS_CA_BUNDLE", ca).args(args);
    common::s3::run(cmd, Duration::from_secs(180))
}

fn aws_tls_ok(s3: &S3, ca: &Path, args: &[&str]) -> common::s3::Output {
    let out = aws_tls(s3, ca, args);
    assert!(
        out.ok(),
        "aws {args:?}: {}\n--- server log:\n{}",
        out.text(),
        s3.log_tail()
    );
    out
}

/// With `enable_https`, `s3_addr` serves TLS with the node's certificate: the AWS CLI (and
/// the JS SDK v3 when installed) checking it against conf/server.crt make a bucket, put, get,
/// upload in parts and list; what they stored is what go-fastdfs' download URL serves. The
/// relay registers the real client (the access log names 127.0.0.7), and plain HTTP on the
/// S3 port gets no answer of ours.
#[test]
fn s3_clients_work_over_tls_on_s3_addr_checking_the_nodes_certificate() {
    if !have("openssl") || !have("curl") || !have_aws("s3 over tls") {
        return;
    }
    let (tmp, cert) = certified_dir();
    let s3 = https_s3_node(&tmp.path().join("node"), &cert);
    let ca = s3.server.dir.join("conf/server.crt");
    let work = tmp.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let small = b"small object over tls\n".to_vec();
    let big = noise(17 * 1024 * 1024 + 321, 7); // three parts of 8 MB
    std::fs::write(work.join("small.txt"), &small).unwrap();
    std::fs::write(work.join("big.bin"), &big).unwrap();
    let arg = |p: &Path| p.to_str().unwrap().to_string();

    aws_tls_ok(&s3, &ca, &["s3", "mb", "s3://tlsb"]);
    aws_tls_ok(
        &s3,
        &ca,
        &[
            "s3",
            "cp",
            &arg(&work.join("small.txt")),
            "s3://tlsb/a/small.txt",
        ],
    );
    aws_tls_ok(
        &s3,
        &ca,
        &[
            "s3",
            "cp",
            &arg(&work.join("big.bin")),
            "s3://tlsb/a/big.bin",
        ],
    );
    let head = aws_tls_ok(
        &s3,
        &ca,
        &[
            "s3api",
            "head-object",
            "--bucket",
            "tlsb",
            "--key",
            "a/big.bin",
        ],
    )
    .json();
    assert!(
        head["ETag"].as_str().unwrap().ends_with("-3\""),
        "a multipart upload of three parts: {head}"
    );
    let ls = aws_tls_ok(&s3, &ca, &["s3", "ls", "--recursive", "s3://tlsb/"]);
    let keys: Vec<&str> = ls
        .stdout
        .lines()
        .filter_map(|l| l.split_whitespace().nth(3))
        .collect();
    assert_eq!(keys, ["a/big.bin", "a/small.txt"], "{}", ls.text());
    let got = work.join("big.got");
    aws_tls_ok(&s3, &ca, &["s3", "cp", "s3://tlsb/a/big.bin", &arg(&got)]);
    assert!(
        std::fs::read(&got).unwrap() == big,
        "aws s3 cp down over tls"
    );
    let cat = aws_tls_ok(&s3, &ca, &["s3", "cp", "s3://tlsb/a/small.txt", "-"]);
    assert_eq!(cat.stdout.as_bytes(), &small[..]);
    // The same files through go-fastdfs' download URL, on the main TLS listener.
    let out = run(curl(&s3.server).arg(https(&s3.server, "/group1/tlsb/a/big.bin")));
    assert!(out.stdout == big, "the S3 object is the go-fastdfs file");

    // Another CA: the AWS CLI refuses the node's certificate.
    let other = tmp.path().join("other");
    make_certificate(&other);
    let refused = aws_tls(
        &s3,
        &other.join("conf/server.crt"),
        &["s3", "ls", "s3://tlsb/"],
    );
    assert!(
        !refused.ok(),
        "a certificate the client does not trust: {}",
        refused.text()
    );
    assert!(
        refused.stderr.contains("SSL") || refused.stderr.contains("certificate"),
        "{}",
        refused.text()
    );

    // curl's own SigV4 from 127.0.0.7: the access log names the real client.
    let listed = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "30",
            "--interface",
            "127.0.0.7",
            "--cacert",
        ])
        .arg(&ca)
        .args(["--aws-sigv4", "aws:amz:us-east-1:s3"])
        .args(["--user", &format!("{S3_KEY}:{S3_SECRET}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{}/tlsb?list-type=2", s3_https(&s3)))
        .output()
        .unwrap();
    let body = String::from_utf8_lossy(&listed.stdout);
    assert!(body.contains("<Key>a/small.txt</Key>"), "{body}");
    let logged = eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(s3.server.dir.join("log/access.log"))
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("127.0.0.7") && l.contains("list-type=2"))
    });
    assert!(
        logged,
        "the access log names the S3 client behind the relay"
    );

    // Plain HTTP on the TLS S3 port: a 400 with an S3 error saying to use https://, closed;
    // the AWS CLI pointed at http:// shows it.
    let got = raw(
        &format!("127.0.0.1:{}", s3.port),
        b"GET /tlsb HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n",
        Duration::from_secs(15),
    );
    let text = String::from_utf8_lossy(&got);
    assert!(text.starts_with("HTTP/1.1 400 "), "{text}");
    assert!(text.contains("Connection: close"), "{text}");
    assert!(text.contains("<Code>BadRequest</Code>"), "{text}");
    assert!(text.contains("use https://"), "{text}");
    let mut plain = s3.aws_command(S3_KEY, S3_SECRET);
    plain.args(["s3", "ls", "s3://tlsb/"]);
    let out = common::s3::run(plain, Duration::from_secs(60));
    assert!(
        !out.ok() && out.stderr.contains("BadRequest"),
        "{}",
        out.text()
    );
    // And the node still serves.
    aws_tls_ok(&s3, &ca, &["s3", "ls", "s3://tlsb/a/"]);

    js_sdk_over_tls(&s3, &ca, tmp.path());
}

/// A TCP connection to 127.0.0.1:`port` from the loopback alias `from` (another client).
fn connect_from(from: &str, port: u16) -> TcpStream {
    let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
    let from: std::net::Ipv4Addr = from.parse().unwrap();
    s.bind(&std::net::SocketAddr::from((from, 0)).into())
        .unwrap();
    s.connect(&std::net::SocketAddr::from(([127, 0, 0, 1], port)).into())
        .unwrap();
    s.into()
}

/// Whether a connection is still open (nothing to read yet, not closed).
fn is_open(held: &TcpStream) -> bool {
    held.set_nonblocking(true).unwrap();
    matches!(held.peek(&mut [0u8; 1]), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
}

/// Whether curl from the loopback alias `from`, believing only `cert`'s certificate, gets an
/// HTTP answer from `url`.
fn trusted_from(from: &str, cert: &Path, url: &str) -> bool {
    Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "--interface",
            from,
        ])
        .arg("--cacert")
        .arg(cert.join("conf/server.crt"))
        .arg(url)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// One client's TLS connections count against `connections_per_client_max` over both
/// listeners: with two open on `addr`, a third on `s3_addr` is closed at once, and is served
/// once one of the two has gone. (The client is no admin: admins are not capped per client.)
#[test]
fn a_clients_tls_connections_are_capped_over_addr_and_s3_addr_together() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let (tmp, cert) = certified_dir();
    let s3 = https_s3_node_with(
        &tmp.path().join("node"),
        &cert,
        json!({"connections_per_client_max": 2}),
    );
    let s3_url = format!("{}/", s3_https(&s3));
    let client = "127.0.0.90";
    let answered = || trusted_from(client, &s3.server.dir, &s3_url);
    assert!(answered(), "{}", s3.server.stderr_tail(2000));
    std::thread::sleep(Duration::from_millis(500)); // curl's relay has ended
    let one = connect_from(client, s3.server.port);
    let two = connect_from(client, s3.server.port);
    std::thread::sleep(Duration::from_millis(300)); // both accepted by the front
    for held in [&one, &two] {
        assert!(is_open(held), "two connections are within the cap");
    }
    let mut third = connect_from(client, s3.port);
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let t = Instant::now();
    let n = third.read(&mut [0u8; 16]).unwrap_or(0);
    assert_eq!(n, 0, "closed");
    assert!(
        t.elapsed() < Duration::from_secs(3),
        "closed at once, not timed out"
    );
    assert!(!answered(), "the client is at its cap over both listeners");
    drop(one);
    assert!(
        eventually(Duration::from_secs(5), answered),
        "a place given back is taken"
    );
}

/// The TLS front admits by the executors' rule: non-admin clients that fill the caps (per
/// client, and `connections_max` in total) are shut out, while an admin (an `admin_ips`
/// address, 127.0.0.1) is still served, also past a client's share.
#[test]
fn admins_are_served_over_tls_while_non_admin_clients_fill_the_caps() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let (tmp, cert) = certified_dir();
    let s = tls_node_with(
        &tmp.path().join("node"),
        free_port("127.0.0.1"),
        &cert,
        json!({
            "connections_per_client_max": 2,
            "connections_max": 4,
            "admin_ips": ["127.0.0.1", "127.0.0.95"]
        }),
    );
    let url = https(&s, "/group1/status");
    let served = |from: &str| trusted_from(from, &s.dir, &url);
    assert!(served("127.0.0.92"), "{}", s.stderr_tail(2000));
    std::thread::sleep(Duration::from_millis(500)); // curl's relay has ended
                                                    // Two non-admin clients take their share each, which fills the total.
    let flood: Vec<TcpStream> = ["127.0.0.90", "127.0.0.90", "127.0.0.91", "127.0.0.91"]
        .iter()
        .map(|from| connect_from(from, s.port))
        .collect();
    std::thread::sleep(Duration::from_millis(300)); // all accepted by the front
    assert!(flood.iter().all(is_open), "the flood is within the caps");
    assert!(!served("127.0.0.92"), "another non-admin: over the total");
    assert!(!served("127.0.0.90"), "over its share");
    // An admin holding more than a client's share is still served.
    let admin_held = [
        connect_from("127.0.0.95", s.port),
        connect_from("127.0.0.95", s.port),
    ];
    std::thread::sleep(Duration::from_millis(300));
    assert!(admin_held.iter().all(is_open));
    assert!(served("127.0.0.95"), "an admin_ips address");
    assert!(served("127.0.0.1"), "127.0.0.1");
}

/// The AWS SDK for JavaScript v3 (tests/s3js) against the TLS S3 listener, trusting `ca`
/// (NODE_EXTRA_CA_CERTS): puts, gets, uploads in parts and lists. Skipped when not installed.
fn js_sdk_over_tls(s3: &S3, ca: &Path, tmp: &Path) {
    let js = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/s3js");
    if !js
        .join("node_modules/@aws-sdk/client-s3/package.json")
        .exists()
    {
        skip(
            "s3 over tls: the JS SDK",
            "not installed: cd tests/s3js && npm ci",
        );
        return;
    }
    let dir = tmp.join("js");
    std::fs::create_dir_all(&dir).unwrap();
    let small = b"hello from the JS SDK over tls\n".to_vec();
    let stream = noise(300 * 1024 + 7, 3);
    let big = noise(12 * 1024 * 1024 + 5, 4);
    for (name, data) in [
        ("small.txt", &small),
        ("stream.bin", &stream),
        ("big.bin", &big),
    ] {
        std::fs::write(dir.join(name), data).unwrap();
    }
    let mut cmd = s3.command("node");
    cmd.current_dir(&js)
        .env("NODE_EXTRA_CA_CERTS", ca)
        .arg("s3_sdk.mjs")
        .args(["--endpoint", &s3_https(s3), "--bucket", "jstls"])
        .args(["--key", &format!("{S3_KEY}:{S3_SECRET}")])
        .arg("--dir")
        .arg(&dir);
    let out = common::s3::run(cmd, Duration::from_secs(180));
    assert!(
        out.ok(),
        "s3_sdk.mjs over tls: {}\n{}",
        out.text(),
        s3.log_tail()
    );
    let r: serde_json::Value =
        serde_json::from_str(out.stdout.lines().last().unwrap_or("")).unwrap();
    for step in [
        "create_bucket",
        "put_small",
        "get_small",
        "upload",
        "get_big",
    ] {
        assert!(
            r[step].is_object() && r[step].get("message").is_none(),
            "{step} over tls: {}",
            r[step]
        );
    }
    assert_eq!(r["put_small"]["etag"], format!("\"{}\"", md5_hex(&small)));
    assert!(
        std::fs::read(dir.join("big.got")).unwrap() == big,
        "JS SDK GetObject over tls"
    );
}

/// Puts the pair of `cert` in `node`'s conf/ the way a renewal does: each file written
/// beside and renamed over the old one.
fn install_pair(cert: &Path, node: &Path) {
    for f in ["server.crt", "server.key"] {
        let to = node.join("conf").join(f);
        let tmp = node.join("conf").join(format!(".{f}.new"));
        std::fs::copy(cert.join("conf").join(f), &tmp).unwrap();
        std::fs::rename(&tmp, &to).unwrap();
    }
}

/// Whether curl believing only `cert`'s certificate gets an HTTP answer from `url`.
fn trusted_by(cert: &Path, url: &str) -> bool {
    Command::new("curl")
        .args(["-s", "--max-time", "10", "-o", "/dev/null", "--cacert"])
        .arg(cert.join("conf/server.crt"))
        .arg(url)
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// `G/reload?action=reload` (curl -k: the answer matters here, not the certificate).
fn reload(s: &Server) -> (String, String) {
    let out = Command::new("curl")
        .args(["-sk", "--max-time", "30", "-w", "\n%{http_code}"])
        .arg(https(s, "/group1/reload?action=reload&key=test-admin-key"))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap_or((&text, ""));
    (code.to_string(), body.to_string())
}

/// The SHA-256 of a certificate's DER, in hex.
fn fingerprint(cert: &Path) -> String {
    let out = run(Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(cert.join("conf/server.crt")));
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit('=')
        .next()
        .unwrap()
        .replace(':', "")
        .to_ascii_lowercase()
}

/// A kept-alive HTTPS connection (Python's http.client) believing `cert`: one request now,
/// another on the same connection after a line on stdin; prints the status and the peer
/// certificate's SHA-256 after each.
fn kept_alive(cert: &Path, port: u16) -> std::process::Child {
    let script = r#"
import hashlib, http.client, ssl, sys
ctx = ssl.create_default_context(cafile=sys.argv[1])
c = http.client.HTTPSConnection("127.0.0.1", int(sys.argv[2]), context=ctx, timeout=30)
def once():
    c.request("GET", "/group1/status")
    r = c.getresponse()
    r.read()
    print(r.status, id(c.sock), hashlib.sha256(c.sock.getpeercert(True)).hexdigest(), flush=True)
once()
sys.stdin.readline()
once()
"#;
    Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(cert.join("conf/server.crt"))
        .arg(port.to_string())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3")
}

/// A renewed certificate: after `G/reload`, new connections to both TLS listeners get the new
/// pair (curl believing only the new CA passes, only the old one fails) while a connection
/// open since before keeps the old one. A broken file or a key that is not the certificate's
/// is refused with an ERROR line and a 400 that says so, and the pair serving stays. Files
/// changed with no reload at all are taken within seconds (certbot's renewal).
#[test]
fn a_reload_serves_a_renewed_certificate_and_a_broken_one_leaves_the_old_serving() {
    if !have("openssl") || !have("curl") || !have("python3") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let [a, b, c, d] = ["a", "b", "c", "d"].map(|n| {
        let p = tmp.path().join(n);
        make_certificate(&p);
        p
    });
    let node = tmp.path().join("node");
    let s3 = https_s3_node(&node, &a);
    let s = &s3.server;
    let main_url = https(s, "/group1/status");
    let s3_url = format!("{}/", s3_https(&s3));
    let both = |cert: &Path| trusted_by(cert, &main_url) && trusted_by(cert, &s3_url);
    let neither = |cert: &Path| !trusted_by(cert, &main_url) && !trusted_by(cert, &s3_url);
    assert!(both(&a) && neither(&b), "{}", s.stderr_tail(2000));

    // A connection opened before the renewal.
    let mut old = kept_alive(&a, s.port);
    let mut lines = std::io::BufReader::new(old.stdout.take().unwrap());
    let mut first = String::new();
    std::io::BufRead::read_line(&mut lines, &mut first).unwrap();
    assert!(first.starts_with("200 "), "{first}");

    install_pair(&b, &node);
    assert_eq!(reload(s).0, "200", "{}", s.stderr_tail(2000));
    assert!(both(&b), "the renewed pair serves: {}", s.stderr_tail(2000));
    assert!(neither(&a), "the old pair no longer serves new connections");
    // The connection from before keeps its pair and goes on.
    old.stdin.as_mut().unwrap().write_all(b"go\n").unwrap();
    let mut second = String::new();
    std::io::BufRead::read_line(&mut lines, &mut second).unwrap();
    let _ = old.wait();
    let (f1, f2): (Vec<&str>, Vec<&str>) = (
        first.split_whitespace().collect(),
        second.split_whitespace().collect(),
    );
    assert_eq!(f2.first(), Some(&"200"), "{second}");
    assert_eq!(f1[1], f2[1], "the same connection");
    assert_eq!(f2[2], fingerprint(&a), "an open connection keeps its pair");

    // Broken: not PEM; then a key that is not the certificate's. Refused, B serves on.
    std::fs::write(node.join("conf/server.crt"), b"not a certificate\n").unwrap();
    let (code, body) = reload(s);
    assert_eq!(code, "400", "{body}");
    assert!(body.contains("certificate refused"), "{body}");
    assert!(both(&b), "a broken file leaves the pair serving");
    std::fs::copy(c.join("conf/server.crt"), node.join("conf/server.crt")).unwrap();
    let (code, body) = reload(s);
    assert_eq!(code, "400", "{body}");
    assert!(
        both(&b) && neither(&c),
        "a mismatched key leaves the pair serving"
    );
    let log = s.stderr();
    let refusals: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("ERROR") && l.contains("new certificate refused"))
        .collect();
    // (The periodic check may have seen the files too: each reading is logged.)
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("holds no PEM certificate")),
        "{refusals:?}"
    );
    assert!(
        refusals
            .iter()
            .any(|l| l.contains("is not the key of the certificate")),
        "{refusals:?}"
    );

    // Renewed with no reload: taken once the files have held still (checked every 10 s).
    install_pair(&d, &node);
    let taken = eventually(Duration::from_secs(30), || both(&d));
    assert!(
        taken,
        "changed files are taken without a reload: {}",
        s.stderr_tail(3000)
    );
    assert!(neither(&b));
    let loaded = |by: &str| {
        s.stderr()
            .lines()
            .any(|l| l.contains("new certificate loaded") && l.contains(by))
    };
    assert!(loaded("files changed"), "{}", s.stderr_tail(3000));

    // SIGHUP reads them too (at once: the periodic check waits 2 s for the files to settle).
    install_pair(&c, &node);
    // SAFETY: a signal to the child this test started.
    unsafe { libc::kill(s.child.as_ref().unwrap().id() as i32, libc::SIGHUP) };
    let by_signal = eventually(Duration::from_secs(10), || loaded("SIGHUP"));
    assert!(by_signal, "{}", s.stderr_tail(3000));
    assert!(both(&c) && neither(&d));
}

/// A cluster sharing one self-signed certificate renews it: after the reload, a node believes
/// the new one as its own, so it replicates to a peer presenting it.
#[test]
fn after_a_renewal_a_node_believes_its_new_certificate_in_its_peers() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let (old, new) = (tmp.path().join("old"), tmp.path().join("new"));
    make_certificate(&old);
    make_certificate(&new);
    let (pa, pb) = (free_port("127.0.0.1"), free_port("127.0.0.1"));
    let url = |p: u16| format!("https://127.0.0.1:{p}");
    let (da, db) = (tmp.path().join("a"), tmp.path().join("b"));
    let a = tls_node(&da, pa, &old, &[url(pb)], true);
    let mut b = tls_node(&db, pb, &old, &[url(pa)], true);
    let send = |name: &str, body: &[u8]| {
        let file = tmp.path().join(name);
        std::fs::write(&file, body).unwrap();
        let out = Command::new("curl")
            .args(["-sk", "--fail", "--max-time", "30", "-F"])
            .arg(format!("file=@{}", file.display()))
            .args(["-F", "output=json"])
            .arg(https(&a, "/group1/upload"))
            .output()
            .unwrap();
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        v["path"].as_str().unwrap().to_string()
    };
    let on_b = |path: &str, want: &[u8]| {
        eventually(Duration::from_secs(30), || {
            Command::new("curl")
                .args(["-sk", "--max-time", "10"])
                .arg(format!("{}{path}", url(pb)))
                .output()
                .map(|o| o.stdout == want)
                .unwrap_or(false)
        })
    };
    let p1 = send("one.txt", b"before the renewal");
    assert!(on_b(&p1, b"before the renewal"), "{}", a.stderr_tail(2000));

    // Both renewed: a reloads; b restarts with the new pair (a's pooled connections end).
    install_pair(&new, &da);
    install_pair(&new, &db);
    assert_eq!(reload(&a).0, "200");
    b.kill();
    b.spawn();
    let p2 = send("two.txt", b"after the renewal");
    assert!(
        on_b(&p2, b"after the renewal"),
        "a believes its renewed certificate in b: {}",
        a.stderr_tail(3000)
    );
}
