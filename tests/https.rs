//! `enable_https` (docs/CONFIG.md): the node serves TLS with `conf/server.crt` and
//! `conf/server.key`, as go-fastdfs does, and everything else works through it as over plain
//! HTTP: curl and wget check the certificate, upload, download, resume; the access rules and
//! logs see the real client, not the relay.

mod common;
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

/// A node serving TLS (two executors: the relays reach both) and its runtime dir's owner.
fn https_server() -> (Server, tempfile::TempDir) {
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert");
    make_certificate(&cert);
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

    // Plain HTTP on the TLS port gets no answer of ours.
    let plain = Command::new("curl")
        .args([
            "-s",
            "--max-time",
            "10",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .arg(s.url("/group1/status"))
        .output()
        .unwrap();
    assert_ne!(String::from_utf8_lossy(&plain.stdout), "200");
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

/// A tus `callback_url` may be `https://`: the notice is POSTed over TLS to a server whose
/// certificate passes the node's check (here the target's certificate is in the sender's
/// `conf/server.crt`: trusted as its own).
#[test]
fn a_tus_callback_to_an_https_url_is_delivered_over_tls() {
    if !have("openssl") || !have("curl") {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let cert = tmp.path().join("cert");
    make_certificate(&cert);
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
