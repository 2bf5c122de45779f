//! Hostile clients: what a probe from non-admin addresses found, each fixed and held here.
//! (1) client-chosen names can never block the server's dated tree, and a failing tus
//! completion keeps the upload's data; (2) `path` cannot bypass a scene's Google code;
//! (3) connection floods are capped per client and in total, silent connections are cut,
//! memory comes back; (4) trickled bodies are cut (minimum rate, read_timeout); (5) returned
//! URLs are percent-encoded, uploaded HTML is sandboxed, redirects stay on the origin, tus
//! uploads are bounded in size and per client, and this node's own address is an admin.
mod common;
use common::*;
use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::os::fd::FromRawFd;
use std::time::{Duration, Instant};

const SECRET: &str = "JBSWY3DPEHPK3PXP";

/// A TCP connection to `to` from the local address `from` (loopback aliases 127.0.0.x, or
/// IPv6 addresses put on the loopback of a network namespace of the test's own).
fn connect_from(from: &str, to: &str) -> std::io::Result<TcpStream> {
    let from: IpAddr = from.parse().unwrap();
    let to: SocketAddr = to.parse().unwrap();
    match (from, to) {
        (IpAddr::V4(src), SocketAddr::V4(dst)) => {
            let sin = |ip: std::net::Ipv4Addr, port: u16| libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from(ip).to_be(),
                },
                sin_zero: [0; 8],
            };
            bind_connect(libc::AF_INET, &sin(src, 0), &sin(*dst.ip(), dst.port()))
        }
        (IpAddr::V6(src), SocketAddr::V6(dst)) => {
            let sin6 = |ip: std::net::Ipv6Addr, port: u16| libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: ip.octets(),
                },
                sin6_scope_id: 0,
            };
            bind_connect(libc::AF_INET6, &sin6(src, 0), &sin6(*dst.ip(), dst.port()))
        }
        _ => panic!("{from} and {to} are of different families"),
    }
}

/// A socket of `family` bound to `from`, connected to `to`.
fn bind_connect<A>(family: libc::c_int, from: &A, to: &A) -> std::io::Result<TcpStream> {
    let len = std::mem::size_of::<A>() as libc::socklen_t;
    // SAFETY: plain socket calls on a descriptor owned here; the sockaddrs (of `family`)
    // outlive the calls; on success the descriptor is handed to TcpStream, which owns it from
    // then on.
    unsafe {
        let fd = libc::socket(family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if libc::bind(fd, from as *const A as *const libc::sockaddr, len) != 0
            || libc::connect(fd, to as *const A as *const libc::sockaddr, len) != 0
        {
            let e = std::io::Error::last_os_error();
            libc::close(fd);
            return Err(e);
        }
        Ok(TcpStream::from_raw_fd(fd))
    }
}

/// Whether the server closed `s` (EOF or reset) within `wait`.
fn closed_within(mut s: &TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut b = [0u8; 256];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return false,
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => return false,
            Err(_) => return true,
        }
    }
}

/// One GET on a connection from `from`; the status, or None when the server refused.
fn get_from(from: &str, s: &Server, path: &str) -> Option<u16> {
    let mut c = connect_from(from, &s.addr()).ok()?;
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    c.write_all(req.as_bytes()).ok()?;
    let mut out = Vec::new();
    let _ = c.read_to_end(&mut out);
    parse_head(&out).map(|(r, _)| r.status)
}

fn vm_rss_kib(s: &Server) -> u64 {
    let pid = s.child.as_ref().unwrap().id();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Today's and tomorrow's `YYYYMMDD`, and this minute's `HH`, `MM` (as the server names them).
fn dated_now() -> (String, String, String, String) {
    let now = local_stamp(now());
    let tomorrow = local_stamp(common::now() + 86_400);
    let mut parts = now.split('/').map(str::to_string);
    let (day, hour, minute) = (
        parts.next().unwrap(),
        parts.next().unwrap(),
        parts.next().unwrap(),
    );
    (day, tomorrow[..8].to_string(), hour, minute)
}

// ---- 1. the dated tree cannot be blocked ----

#[test]
fn a_client_cannot_plant_a_file_where_a_dated_directory_goes() {
    let s = Server::start(json!({"peer_id": ""}));
    let (day, tomorrow, hour, minute) = dated_now();
    let attempts = [
        (format!("default/{day}/{hour}"), minute.clone()),
        (format!("default/{day}"), hour.clone()),
        ("default".to_string(), tomorrow.clone()),
        (format!("other/{day}/{hour}"), minute.clone()),
    ];
    for (path, filename) in &attempts {
        let (code, body) = upload(
            &s,
            "x.txt",
            b"planted",
            &[("path", path), ("filename", filename), ("output", "json")],
        );
        assert_eq!(code, 400, "path={path} filename={filename}: {body}");
        assert!(body.contains("dated directory"), "{body}");
    }
    assert!(!s.dir.join(format!("files/default/{tomorrow}")).exists());
    // Inside a dated directory a client may still place files (e.g. to rebuild old URLs).
    let (code, body) = upload(
        &s,
        "x.txt",
        b"in a minute dir",
        &[
            ("path", &format!("default/{day}/{hour}/{minute}")),
            ("filename", "43"),
        ],
    );
    assert_eq!(code, 200, "{body}");
    // And the server's own uploads of this minute and of tomorrow still work.
    let r = upload_json(&s, "ordinary.txt", b"ordinary upload");
    assert!(r["path"].as_str().unwrap().contains(&day), "{r}");
}

#[test]
fn a_file_in_the_way_of_a_client_path_is_a_409_not_a_500() {
    let s = Server::start(json!({}));
    std::fs::create_dir_all(s.dir.join("files/mine")).unwrap();
    std::fs::write(s.dir.join("files/mine/report"), b"a file").unwrap();
    let (code, body) = upload(
        &s,
        "x.txt",
        b"blocked by a file",
        &[("path", "mine/report/2026")],
    );
    assert_eq!(code, 409, "{body}");
    assert!(
        !body.contains(&s.dir.display().to_string()),
        "no host path: {body}"
    );
    assert_eq!(
        std::fs::read(s.dir.join("files/mine/report")).unwrap(),
        b"a file"
    );
}

fn tus(method: &str, url: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, ureq::Response) {
    let mut req = agent().request(method, url).set("Tus-Resumable", "1.0.0");
    for (k, v) in headers {
        req = req.set(k, v);
    }
    match req.send_bytes(body) {
        Ok(r) => (r.status(), r),
        Err(ureq::Error::Status(c, r)) => (c, r),
        Err(e) => panic!("transport error: {e}"),
    }
}

fn tus_metadata(pairs: &[(&str, &str)]) -> String {
    pairs
        .iter()
        .map(|(k, v)| {
            format!(
                "{k} {}",
                fastdfs::tus::protocol::base64_encode(v.as_bytes())
            )
        })
        .collect::<Vec<_>>()
        .join(",")
}

/// Creates a tus upload of `len` bytes; (status, Location).
fn tus_create(s: &Server, len: u64, meta: &[(&str, &str)]) -> (u16, String) {
    let (code, r) = tus(
        "POST",
        &s.url("/group1/big/upload/"),
        &[
            ("Upload-Length", &len.to_string()),
            ("Upload-Metadata", &tus_metadata(meta)),
        ],
        b"",
    );
    let location = r.header("Location").unwrap_or("").to_string();
    (code, location)
}

fn tus_patch(url: &str, offset: u64, data: &[u8]) -> u16 {
    tus(
        "PATCH",
        url,
        &[
            ("Content-Type", "application/offset+octet-stream"),
            ("Upload-Offset", &offset.to_string()),
        ],
        data,
    )
    .0
}

#[test]
fn a_failing_tus_completion_keeps_the_uploaded_data() {
    let s = Server::start(json!({"enable_tus": true}));
    let data = noise(300_000, 7);
    let (code, url) = tus_create(
        &s,
        data.len() as u64,
        &[("filename", "keep.bin"), ("path", "blocked/here")],
    );
    assert_eq!(code, 201);
    assert_eq!(tus_patch(&url, 0, &data[..200_000]), 204);
    // Something outside the server puts a file where the upload's directory goes (a tus
    // `path` lands under the scene: files/default/blocked/here).
    std::fs::create_dir_all(s.dir.join("files/default")).unwrap();
    std::fs::write(s.dir.join("files/default/blocked"), b"in the way").unwrap();
    assert_eq!(
        tus_patch(&url, 200_000, &data[200_000..]),
        409,
        "the completion fails"
    );
    let (code, head) = tus("HEAD", &url, &[], b"");
    assert_eq!(code, 200, "the upload still exists");
    assert_eq!(head.header("Upload-Offset"), Some("200000"));
    // Once the way is clear, the client resends the last piece and the upload completes.
    std::fs::remove_file(s.dir.join("files/default/blocked")).unwrap();
    assert_eq!(tus_patch(&url, 200_000, &data[200_000..]), 204);
    let stored = std::fs::read(s.dir.join("files/default/blocked/here/keep.bin")).unwrap();
    assert_eq!(md5_hex(&stored), md5_hex(&data), "every byte kept");
}

// ---- 2. Google codes guard a scene's namespace, whichever field names it ----

#[test]
fn a_custom_path_into_a_protected_scene_needs_its_code() {
    // A window of ±2 steps (download_token_expire / 30): a code made as a step ends still counts.
    let s = Server::start(json!({
        "enable_google_auth": true,
        "download_token_expire": 60,
        "enable_tus": true,
        "scenes": ["default", format!("prot:{SECRET}")]
    }));
    let (code, body) = upload(&s, "x.txt", b"sneaky", &[("path", "prot/x")]);
    assert_eq!(code, 401, "{body}");
    assert!(!s.dir.join("files/prot").exists());
    let (code, _) = tus_create(&s, 10, &[("filename", "t.txt"), ("path", "prot/tus")]);
    assert_eq!(code, 401, "tus metadata path too");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let good = fastdfs::totp::code(SECRET, now).unwrap();
    let (code, body) = upload(
        &s,
        "x.txt",
        b"with its code",
        &[("path", "prot/x"), ("code", &good)],
    );
    assert_eq!(code, 200, "{body}");
    let (code, body) = upload(&s, "y.txt", b"unprotected", &[("path", "open/x")]);
    assert_eq!(code, 200, "{body}");
}

/// A backslash stays refused in directories (go-fastdfs on Linux accepts it; a file name keeps
/// it). The first directory is the scene whose Google code guards it, and that must be the
/// same directory for every reader of the path: browsers and every WHATWG URL parser read `\`
/// in an http URL as `/`, as does a node on Windows, so `prot\x` would be `prot`'s to them
/// and a scene of its own, with no code, to us.
#[test]
fn a_backslash_never_makes_a_directory_that_other_readers_split() {
    let s = Server::start(json!({
        "enable_google_auth": true,
        "enable_tus": true,
        "enable_trim_file_name_special_char": false,
        "scenes": ["default", format!("prot:{SECRET}")]
    }));
    for path in ["prot\\x", "open\\x", "files\\prot", "a/b\\c"] {
        let (code, body) = upload(&s, "x.txt", path.as_bytes(), &[("path", path)]);
        assert_eq!(code, 400, "{path}: {body}");
        assert!(body.contains("path separator"), "{path}: {body}");
        let (code, _) = tus_create(&s, 10, &[("filename", "t.txt"), ("path", path)]);
        assert_eq!(code, 400, "tus {path}");
    }
    let (code, body) = upload(&s, "x.txt", b"scene", &[("scene", "prot\\x")]);
    assert_eq!(code, 400, "{body}");
    let stored: Vec<_> = std::fs::read_dir(s.dir.join("files"))
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .filter(|n| n.to_string_lossy().contains('\\'))
        .collect();
    assert!(stored.is_empty(), "{stored:?}");
    // A file's own name keeps it (one component, escaped as %5C in its URL).
    let (code, body) = upload(&s, "a\\b.txt", b"named", &[("output", "json")]);
    assert_eq!(code, 200, "{body}");
    let path = serde_json::from_str::<Value>(&body).unwrap()["path"].clone();
    assert!(path.as_str().unwrap().ends_with("/a\\b.txt"), "{path}");
}

// ---- 3. connection floods ----

#[test]
fn one_address_cannot_hold_more_than_its_share_of_connections() {
    let s = Server::start(json!({"connections_per_client_max": 20}));
    let mut flood = Vec::new();
    for _ in 0..60 {
        if let Ok(c) = connect_from("127.0.0.2", &s.addr()) {
            flood.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let refused = flood
        .iter()
        .filter(|c| closed_within(c, Duration::from_millis(200)))
        .count();
    assert_eq!(refused, 40, "connections beyond 20 are closed at once");
    assert_eq!(
        get_from("127.0.0.3", &s, "/group1/status"),
        Some(200),
        "others get in"
    );
    assert_eq!(get_from("127.0.0.1", &s, "/group1/status"), Some(200));
    let (_, metrics) = call(agent().get(&s.url("/group1/metrics")));
    assert!(
        metrics.contains("fastdfs_connections_refused_per_client_total 40"),
        "{metrics}"
    );
}

/// Runs `f` on a thread of its own in a new network namespace whose loopback is up and holds
/// `addrs` too (the servers and clients it starts live there); false (skipped) without the
/// privilege to make one.
fn in_own_network_namespace(addrs: &[&str], f: impl FnOnce() + Send + 'static) -> bool {
    let addrs: Vec<String> = addrs.iter().map(|a| a.to_string()).collect();
    let entered = std::thread::spawn(move || {
        // SAFETY: unshare(CLONE_NEWNET) moves only the calling thread (and what it starts).
        if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
            return false;
        }
        let ip = |args: &[&str]| {
            let ok = std::process::Command::new("ip").args(args).status();
            assert!(ok.is_ok_and(|s| s.success()), "ip {args:?}");
        };
        ip(&["link", "set", "lo", "up"]);
        for a in &addrs {
            ip(&[
                "-6",
                "addr",
                "add",
                &format!("{a}/128"),
                "dev",
                "lo",
                "nodad",
            ]);
        }
        f();
        true
    })
    .join()
    .unwrap();
    if !entered {
        skip(
            "IPv6 client tests",
            "cannot make a network namespace (needs root)",
        );
    }
    entered
}

#[test]
fn an_ipv6_client_is_counted_per_slash_64_for_its_share_of_connections() {
    const SAME_64: [&str; 2] = ["2001:db8:1:2::a", "2001:db8:1:2:ffff::b"];
    const OTHER_64: &str = "2001:db8:1:3::a";
    in_own_network_namespace(&[SAME_64[0], SAME_64[1], OTHER_64], || {
        let dir = tempfile::tempdir().unwrap();
        let port = 18080;
        std::fs::create_dir_all(dir.path().join("conf")).unwrap();
        let mut cfg = base_config("::1", port, &json!({"connections_per_client_max": 3}));
        cfg["addr"] = json!(format!("[::]:{port}"));
        cfg["host"] = json!(format!("http://[::1]:{port}"));
        std::fs::write(dir.path().join("conf/cfg.json"), cfg.to_string()).unwrap();
        let s = Server::start_in(dir.path(), "[::1]", json!({}));
        let to = s.addr();
        // Three connections from one address of the /64, three from another: one share.
        let mut flood = Vec::new();
        for from in [
            SAME_64[0], SAME_64[0], SAME_64[0], SAME_64[1], SAME_64[1], SAME_64[1],
        ] {
            flood.push(connect_from(from, &to).expect("connect"));
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(Duration::from_millis(300));
        let closed: Vec<bool> = flood
            .iter()
            .map(|c| closed_within(c, Duration::from_millis(200)))
            .collect();
        assert_eq!(
            closed,
            [false, false, false, true, true, true],
            "the second address of the /64 had no share left"
        );
        // Another /64 is another client.
        let mut c = connect_from(OTHER_64, &to).expect("connect");
        c.write_all(b"GET /group1/status HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .unwrap();
        let mut out = Vec::new();
        c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let _ = c.read_to_end(&mut out);
        assert_eq!(parse_head(&out).map(|(r, _)| r.status), Some(200));
    });
}

#[test]
fn the_total_cap_keeps_room_for_admins() {
    let s = Server::start(json!({"connections_max": 30, "connections_per_client_max": 1000}));
    let mut flood = Vec::new();
    for i in 0..40 {
        let from = format!("127.0.1.{}", 1 + i % 4);
        if let Ok(c) = connect_from(&from, &s.addr()) {
            flood.push(c);
        }
    }
    std::thread::sleep(Duration::from_millis(300));
    let refused = flood
        .iter()
        .filter(|c| closed_within(c, Duration::from_millis(200)))
        .count();
    // 30 held (the harness's start-up probe may still hold one place for a moment).
    assert!((10..=11).contains(&refused), "{refused} refused");
    // Top up the places the start-up probe held, until the cap refuses again.
    for _ in 0..3 {
        let c = connect_from("127.0.1.9", &s.addr()).unwrap();
        let refused_now = closed_within(&c, Duration::from_millis(300));
        flood.push(c);
        if refused_now {
            break;
        }
    }
    assert_eq!(
        get_from("127.0.0.1", &s, "/group1/status"),
        Some(200),
        "an admin gets in"
    );
    assert_eq!(
        get_from("127.0.0.3", &s, "/group1/status"),
        None,
        "an outsider waits"
    );
    drop(flood);
    assert!(eventually(Duration::from_secs(5), || {
        get_from("127.0.0.3", &s, "/group1/status") == Some(200)
    }));
}

#[test]
fn a_connection_that_never_speaks_is_closed_soon() {
    let s = Server::start(json!({"first_byte_timeout": 1, "idle_timeout": 60}));
    let c = connect_from("127.0.0.2", &s.addr()).unwrap();
    let t = Instant::now();
    assert!(closed_within(&c, Duration::from_secs(10)));
    assert!(t.elapsed() < Duration::from_secs(8), "{:?}", t.elapsed());
}

#[test]
fn memory_comes_back_after_a_connection_flood() {
    let s = Server::start(json!({"connections_per_client_max": 5000}));
    // Warm up, then measure the resting size.
    for i in 0..20 {
        upload_json(&s, &format!("w{i}.txt"), format!("warm {i}").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    let rest = vm_rss_kib(&s);
    let mut flood = Vec::new();
    for i in 0..4000 {
        let from = format!("127.0.2.{}", 1 + i % 8);
        let mut c = connect_from(&from, &s.addr()).unwrap();
        // Half send a partial head, so their buffers are in use.
        if i % 2 == 0 {
            let _ = c.write_all(b"GET /group1/status HTTP/1.1\r\nHost: x\r\n");
        }
        flood.push(c);
    }
    std::thread::sleep(Duration::from_secs(1));
    let peak = vm_rss_kib(&s);
    drop(flood);
    eprintln!("RSS at rest {rest} KiB, during the flood {peak} KiB");
    let back = eventually(Duration::from_secs(15), || {
        vm_rss_kib(&s) < rest + 16 * 1024
    });
    assert!(
        back,
        "RSS rest {rest} KiB, flood {peak} KiB, after {} KiB",
        vm_rss_kib(&s)
    );
    assert_eq!(get_from("127.0.0.3", &s, "/group1/status"), Some(200));
}

/// A burst of large uploads leaves no write buffers resident once the server has gone quiet.
/// They are written around the page cache from 1 MiB buffers that each executor keeps for its
/// next writes (up to 32); the trim after a spell of work asks every executor to drop them.
#[test]
fn memory_comes_back_after_a_burst_of_large_uploads() {
    let s = Server::start(json!({}));
    for i in 0..4 {
        upload_json(&s, &format!("w{i}.txt"), format!("warm {i}").as_bytes());
    }
    std::thread::sleep(Duration::from_millis(500));
    let rest = vm_rss_kib(&s);
    std::thread::scope(|scope| {
        for t in 0..16u8 {
            let s = &s;
            scope.spawn(move || {
                for n in 0..3u8 {
                    let mut data = vec![t; 6 << 20];
                    data[..2].copy_from_slice(&[n, 0xa5]);
                    upload_json(s, "big.bin", &data);
                }
            });
        }
    });
    let after = vm_rss_kib(&s);
    eprintln!("RSS at rest {rest} KiB, after 48 uploads of 6 MiB {after} KiB");
    let back = eventually(Duration::from_secs(20), || {
        vm_rss_kib(&s) < rest + 12 * 1024
    });
    assert!(
        back,
        "RSS rest {rest} KiB, after the uploads {after} KiB, now {} KiB",
        vm_rss_kib(&s)
    );
}

// ---- 4. trickled bodies ----

/// Starts an upload whose body then trickles a byte every `every`; returns the response
/// status the server cut it with, and when.
fn trickle(s: &Server, every: Duration, limit: Duration) -> (Option<u16>, Duration) {
    let (ct, body) = multipart(&[], Some(("t.bin", &vec![b'x'; 100_000])));
    let mut c = connect_from("127.0.0.2", &s.addr()).unwrap();
    let head = format!(
        "POST /group1/upload HTTP/1.1\r\nHost: x\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&body[..200]).unwrap();
    c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
    let t = Instant::now();
    let mut out = Vec::new();
    let mut i = 200;
    while t.elapsed() < limit {
        let mut b = [0u8; 4096];
        match c.read(&mut b) {
            Ok(0) => break,
            Ok(n) => {
                out.extend_from_slice(&b[..n]);
                if parse_head(&out).is_some() {
                    break;
                }
            }
            Err(_) => {}
        }
        if c.write_all(&body[i..i + 1]).is_err() {
            break;
        }
        i += 1;
        std::thread::sleep(every);
    }
    let _ = c.read_to_end(&mut out);
    (parse_head(&out).map(|(r, _)| r.status), t.elapsed())
}

#[test]
fn a_trickled_body_is_cut_at_read_timeout() {
    let s = Server::start(json!({"read_timeout": 3, "body_stall_timeout": 60}));
    let (status, took) = trickle(&s, Duration::from_millis(500), Duration::from_secs(30));
    assert_eq!(status, Some(408));
    assert!(took < Duration::from_secs(15), "{took:?}");
    assert!(std::fs::read_dir(s.dir.join("files/_tmp"))
        .unwrap()
        .next()
        .is_none());
}

#[test]
fn a_body_below_the_minimum_rate_is_cut_after_the_grace() {
    let s = Server::start(json!({"body_min_rate": 500, "body_stall_timeout": 60}));
    let (status, took) = trickle(&s, Duration::from_millis(200), Duration::from_secs(60));
    assert_eq!(status, Some(408));
    assert!(took < Duration::from_secs(40), "{took:?}");
    let (_, metrics) = call(agent().get(&s.url("/group1/metrics")));
    assert!(
        metrics.contains("fastdfs_slow_requests_total 1"),
        "{metrics}"
    );
}

// ---- 5. the lower ones ----

#[test]
fn returned_urls_download_the_file_whatever_its_name() {
    let s = Server::start(
        json!({"enable_trim_file_name_special_char": false, "default_download": false}),
    );
    for (i, name) in ["a b.txt", "q?x.txt", "h#x.txt", "p%41.txt", "中 文.txt"]
        .iter()
        .enumerate()
    {
        let data = format!("content {i}");
        let (code, body) = upload(&s, name, data.as_bytes(), &[("output", "json")]);
        assert_eq!(code, 200, "{body}");
        let r: Value = serde_json::from_str(&body).unwrap();
        let url = r["url"].as_str().unwrap();
        assert!(
            !url.contains(' ') && !url.contains('#') && !url.contains('?'),
            "{url}"
        );
        let out = std::process::Command::new("curl")
            .args(["-s", "-g", "--fail", url])
            .output()
            .expect("curl");
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            data,
            "{name} via {url}"
        );
        // The path is the stored one as it is (what delete and get_file_info take).
        let path = r["path"].as_str().unwrap();
        assert!(path.ends_with(&format!("/{name}")), "{path}");
        assert_eq!(r["src"], r["path"]);
    }
}

#[test]
fn uploaded_html_is_sandboxed_and_never_sniffed() {
    let s = Server::start(json!({"default_download": false}));
    let r = upload_json(&s, "x.html", b"<script>alert(document.cookie)</script>");
    let resp = agent().get(r["url"].as_str().unwrap()).call().unwrap();
    assert_eq!(
        resp.header("Content-Type"),
        Some("text/html; charset=utf-8")
    );
    assert_eq!(resp.header("Content-Security-Policy"), Some("sandbox"));
    assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
    let r = upload_json(&s, "y.png", b"\x89PNG not really");
    let resp = agent().get(r["url"].as_str().unwrap()).call().unwrap();
    assert_eq!(resp.header("X-Content-Type-Options"), Some("nosniff"));
    assert_eq!(resp.header("Content-Security-Policy"), None);
}

#[test]
fn path_cleaning_never_redirects_to_another_host() {
    let s = Server::start(json!({}));
    let out = raw(
        &s.addr(),
        b"GET /./\\evil.com HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        Duration::from_secs(5),
    );
    let (r, _) = parse_head(&out).expect("a response");
    assert_eq!(r.status, 301);
    let to = r.header("location").unwrap();
    assert_eq!(to, "/%5Cevil.com");
}

#[test]
fn a_path_whose_cleaned_redirect_would_be_too_long_to_follow_is_a_414_not_a_301() {
    let s = Server::start(json!({}));
    // 3,000 backslashes fit the 8 KiB request-target; encoded as %5C they would not.
    let target = format!("/./{}", "\\".repeat(3000));
    let req = format!("GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    let out = raw(&s.addr(), req.as_bytes(), Duration::from_secs(5));
    let (r, at) = parse_head(&out).expect("a response");
    assert_eq!(r.status, 414);
    let body: serde_json::Value = serde_json::from_slice(&out[at..]).expect("a JSON message");
    assert_eq!(body["status"], "fail");
    // A short one is still redirected.
    let req = format!(
        "GET /./{} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
        "\\".repeat(10)
    );
    let out = raw(&s.addr(), req.as_bytes(), Duration::from_secs(5));
    assert_eq!(parse_head(&out).expect("a response").0.status, 301);
}

#[test]
fn tus_uploads_are_bounded_in_size_and_per_client() {
    let s = Server::start(json!({
        "enable_tus": true, "upload_max_bytes": 1_000_000, "tus_uploads_per_client_max": 2
    }));
    let (code, r) = tus("OPTIONS", &s.url("/group1/big/upload/"), &[], b"");
    assert_eq!(code, 200);
    assert_eq!(r.header("Tus-Max-Size"), Some("1000000"));
    assert_eq!(tus_create(&s, 1_000_001, &[("filename", "big.bin")]).0, 413);
    let (a, first) = tus_create(&s, 10, &[("filename", "a.bin")]);
    let (b, _) = tus_create(&s, 10, &[("filename", "b.bin")]);
    assert_eq!((a, b), (201, 201));
    assert_eq!(tus_create(&s, 10, &[("filename", "c.bin")]).0, 429);
    // A finished upload frees its place.
    assert_eq!(tus_patch(&first, 0, b"0123456789"), 204);
    assert_eq!(tus_create(&s, 10, &[("filename", "c.bin")]).0, 201);
}

#[test]
fn tus_uploads_per_client_count_an_ipv6_client_per_slash_64() {
    // Behind a trusted proxy, the client is the address it names.
    let s = Server::start(json!({
        "enable_tus": true, "tus_uploads_per_client_max": 2, "trusted_proxies": ["127.0.0.1"]
    }));
    let create = |client: &str| {
        let (code, _) = tus(
            "POST",
            &s.url("/group1/big/upload/"),
            &[("Upload-Length", "10"), ("X-Real-IP", client)],
            b"",
        );
        code
    };
    assert_eq!(create("2001:db8:1:2::1"), 201);
    assert_eq!(create("2001:db8:1:2::2"), 201);
    assert_eq!(
        create("2001:db8:1:2:ffff::3"),
        429,
        "the same /64 is one client"
    );
    assert_eq!(
        create("2001:db8:1:3::1"),
        201,
        "another /64 is another client"
    );
    // IPv4 (and IPv4-mapped) clients count per address.
    assert_eq!(create("10.0.0.1"), 201);
    assert_eq!(create("::ffff:10.0.0.1"), 201);
    assert_eq!(create("10.0.0.1"), 429);
    assert_eq!(create("10.0.0.2"), 201);
}

#[test]
fn this_nodes_own_address_is_an_admin_other_addresses_are_not() {
    let dir = tempfile::tempdir().unwrap();
    let s = Server::start_in(dir.path(), "127.0.0.66", json!({}));
    let stat = s.url("/group1/stat");
    assert_eq!(status_from("127.0.0.66", &stat, &[]), 200, "host's address");
    assert_eq!(status_from_non_admin(&stat, &[]), 403);
}

// ---- 6. refusals of a head are logged, and cannot forge log lines ----

#[test]
fn refused_heads_are_in_the_access_log_one_escaped_line_each() {
    let s = Server::start(json!({"read_header_timeout": 1}));
    let refusals: [(&[u8], u16); 4] = [
        // A bare CR in the target, then a forged entry on the next line.
        (
            b"GET /a\r[Access] 2026/01/01 - 00:00:00 | 1ms | 6.6.6.6 | GET | 200 | /forged HTTP/1.1\r\nHost: x\r\n\r\n",
            400,
        ),
        (b"GET /group1/x.txt HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"\x16\x03\x01\x00\x0a\r\n\r\n", 400),
        // Half a head, then silence past read_header_timeout.
        (b"POST /group1/slow HTTP/1.1\r\nHost: x\r\n", 408),
    ];
    for (request, status) in refusals {
        let out = raw(&s.addr(), request, Duration::from_secs(5));
        assert_eq!(parse_head(&out).map(|(r, _)| r.status), Some(status));
    }
    let log = s.dir.join("log/access.log");
    let read = || std::fs::read_to_string(&log).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || read().lines().count() >= 4),
        "refusals not logged: {:?}",
        read()
    );
    let text = read();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 4, "one line per refusal: {text}");
    assert!(lines.iter().all(|l| l.starts_with("[Access] ")), "{text}");
    assert!(
        !lines.iter().any(|l| l.contains("6.6.6.6 | GET | 200")),
        "a client wrote its own entry: {text}"
    );
    assert!(
        lines[0].ends_with("| GET | 400 | /a%0D[Access]"),
        "{}",
        lines[0]
    );
    assert!(
        lines[1].ends_with("| GET | 505 | /group1/x.txt"),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].ends_with("| %16%03%01%00 | 400 | -"),
        "{}",
        lines[2]
    );
    assert!(
        lines[3].ends_with("| POST | 408 | /group1/slow"),
        "{}",
        lines[3]
    );
}

// ---- 7. forwarded clients: only what the trusted proxies wrote is believed ----

#[test]
fn a_client_cannot_name_itself_an_admin_through_a_trusted_proxys_x_forwarded_for() {
    // nginx (`$proxy_add_x_forwarded_for`) at 127.0.0.77 appends the address of the client it
    // serves, 203.0.113.5, to the X-Forwarded-For that client sent; HAProxy adds a field of
    // its own after the client's. The admin address on the left is the client's invention.
    let s = Server::start(json!({"trusted_proxies": ["127.0.0.77"]}));
    let stat = s.url("/group1/stat");
    let appended = "X-Forwarded-For: 127.0.0.1, 203.0.113.5";
    assert_eq!(status_from("127.0.0.77", &stat, &[appended]), 403);
    let fields = ["X-Forwarded-For: 127.0.0.1", "X-Forwarded-For: 203.0.113.5"];
    assert_eq!(status_from("127.0.0.77", &stat, &fields), 403);
    // A proxy's own entry on the right is skipped; what the proxy says of an admin holds.
    let chain = "X-Forwarded-For: 203.0.113.5, 127.0.0.1, 127.0.0.77";
    assert_eq!(status_from("127.0.0.77", &stat, &[chain]), 200);
    assert_eq!(
        status_from("127.0.0.77", &stat, &["X-Forwarded-For: 127.0.0.1"]),
        200
    );
    // HAProxy's `option forwardfor` appends to X-Forwarded-For and passes a client's own
    // X-Real-IP on: where the two disagree, X-Real-IP names no admin.
    let passed_on = ["X-Real-IP: 127.0.0.1", "X-Forwarded-For: 203.0.113.5"];
    assert_eq!(status_from("127.0.0.77", &stat, &passed_on), 403);
    let agreeing = ["X-Real-IP: 127.0.0.1", "X-Forwarded-For: 127.0.0.1"];
    assert_eq!(status_from("127.0.0.77", &stat, &agreeing), 200);
    // A trusted proxy on this host (loopback, an admin address) forwarding something that is
    // no address: the client is unknown, not the proxy.
    let s = Server::start(json!({"trusted_proxies": ["127.0.0.1"]}));
    let stat = s.url("/group1/stat");
    for h in [
        "X-Forwarded-For: nonsense, 203.0.113.5",
        "X-Forwarded-For: nonsense",
        "X-Real-IP: nonsense",
    ] {
        assert_eq!(status_from("127.0.0.1", &stat, &[h]), 403, "{h}");
    }
    assert_eq!(status_from("127.0.0.1", &stat, &[]), 200, "not forwarded");
}

// ---- 8. a web page of another site, shown on an admin's host, is no admin ----

#[test]
fn a_page_of_another_site_open_in_an_admins_browser_gets_no_admin_answers() {
    // The operator's browser runs on this host (127.0.0.1, an admin address): every page it
    // shows sends its requests from there, and the answers carry CORS headers for any origin.
    let s = Server::start(json!({"download_use_token": true}));
    let r = upload_json(&s, "kept.txt", b"a page of another site must not delete me");
    let md5 = r["md5"].as_str().unwrap().to_string();
    let file = r["path"].as_str().unwrap().to_string();
    let stat = s.url("/group1/stat");
    let delete = s.url(&format!("/group1/delete?md5={md5}"));
    let cross = [
        &["Origin: http://evil.example", "Sec-Fetch-Site: cross-site"][..],
        &["Sec-Fetch-Site: same-site"],
        &["Origin: http://evil.example"], // a browser without Fetch Metadata
        &["Origin: null"],
    ];
    for headers in cross {
        assert_eq!(status_from("127.0.0.1", &stat, headers), 403, "{headers:?}");
        assert_ne!(
            status_from("127.0.0.1", &delete, headers),
            200,
            "{headers:?}"
        );
        // A file behind download tokens needs its token, as from anyone else.
        assert_eq!(
            status_from("127.0.0.1", &s.url(&file), headers),
            401,
            "{headers:?}"
        );
    }
    assert_eq!(status_from("127.0.0.1", &s.url(&file), &[]), 200, "kept");
    // The server's own pages, addresses typed in, and clients that are no browser: an admin.
    let own = format!("Origin: {}", s.base());
    for headers in [
        &["Sec-Fetch-Site: same-origin", "Origin: http://evil.example"][..],
        &["Sec-Fetch-Site: none"],
        &[own.as_str()],
        &[],
    ] {
        assert_eq!(status_from("127.0.0.1", &stat, headers), 200, "{headers:?}");
    }
}

#[test]
fn a_page_whose_name_was_rebound_to_this_node_gets_no_admin_answers() {
    // DNS rebinding: `rebind.example` first served the attacker's page, then resolves to this
    // node; to the browser its requests are same-origin, so only their Host tells.
    let s = Server::start(json!({"download_domain": "http://files.example"}));
    let stat = s.url("/group1/stat");
    let rebound = format!("Host: rebind.example:{}", s.port);
    let browser = "Sec-Fetch-Site: same-origin";
    assert_eq!(status_from("127.0.0.1", &stat, &[&rebound, browser]), 403);
    let origin = format!("Origin: http://rebind.example:{}", s.port);
    assert_eq!(status_from("127.0.0.1", &stat, &[&rebound, &origin]), 403);
    // This node's names and addresses, and clients that are no browser, keep their rights.
    for host in [
        format!("Host: files.example:{}", s.port),
        format!("Host: 127.0.0.1:{}", s.port),
        format!("Host: localhost:{}", s.port),
    ] {
        assert_eq!(
            status_from("127.0.0.1", &stat, &[&host, browser]),
            200,
            "{host}"
        );
    }
    assert_eq!(status_from("127.0.0.1", &stat, &[&rebound]), 200, "curl");
}

/// The access log does not grow without bound between two rotations by logrotate: a flood of
/// requests with long targets fills `log/access.log` up to `log_bytes_max`, which is
/// then moved to `log/access.log.old` (replacing the previous one) and started afresh; the
/// newest lines are kept.
#[test]
fn a_request_flood_rolls_the_access_log_at_its_cap() {
    let cap = 100_000u64;
    let s = Server::start(json!({"log_bytes_max": cap}));
    let long = "x".repeat(1000);
    for i in 0..400 {
        call(agent().get(&s.url(&format!("/group1/{long}/{i}"))));
    }
    call(agent().get(&s.url("/group1/the-last-request")));
    let log = s.dir.join("log/access.log");
    let old = s.dir.join("log/access.log.old");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();
    assert!(
        eventually(Duration::from_secs(5), || read(&log)
            .contains("the-last-request")),
        "the newest line was not logged"
    );
    for p in [&log, &old] {
        let len = std::fs::metadata(p).map_or(0, |m| m.len());
        assert!(len <= cap, "{} holds {len} bytes", p.display());
    }
    assert!(read(&old).ends_with('\n') && read(&log).starts_with("[Access] "));
}

/// The server's own log is bounded the same way: a flood of requests that each log a line
/// (admin `sync` jobs, each logged when done; refusals for a full disk are logged once per
/// period) fills `log/fileserver.log` up to `log_bytes_max`, then it is moved to
/// `log/fileserver.log.old` and started afresh.
#[test]
fn a_flood_of_logged_requests_rolls_the_server_log_at_its_cap() {
    let cap = 100_000u64;
    let s = Server::start(json!({"log_bytes_max": cap}));
    let a = agent();
    for _ in 0..1500 {
        let r = a.get(&s.url("/group1/sync?date=20200101")).call();
        assert_eq!(r.map(|r| r.status()).unwrap_or(0), 200);
    }
    let log = s.dir.join("log/fileserver.log");
    let old = s.dir.join("log/fileserver.log.old");
    let len = |p: &std::path::Path| std::fs::metadata(p).map_or(0, |m| m.len());
    assert!(
        eventually(Duration::from_secs(5), || len(&old) > 0),
        "never rolled: {} bytes",
        len(&log)
    );
    for p in [&log, &old] {
        assert!(len(p) <= cap, "{} holds {} bytes", p.display(), len(p));
    }
}
