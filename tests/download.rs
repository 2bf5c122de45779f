//! Downloads (docs/PROTOCOL.md §5, docs/DEFECTS.md #12, #40): GET/HEAD, Range in all its forms,
//! conditional requests, inline vs attachment, safe Content-Disposition, directory listings,
//! the small-file cache, and real resuming clients (wget -c, curl -C -).
mod common;
use common::*;
use serde_json::json;
use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

// ---------------------------------------------------------------------------------------------
// Helpers
// ---------------------------------------------------------------------------------------------

/// Sends `method target` with extra header lines and `Connection: close`; reads to EOF.
fn request(s: &Server, method: &str, target: &str, extra: &[(&str, &str)]) -> Resp {
    let mut req = format!("{method} {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in extra {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let bytes = raw(&s.addr(), req.as_bytes(), Duration::from_secs(20));
    let (head, body_start) = parse_head(&bytes).unwrap_or_else(|| {
        panic!(
            "no response head for {method} {target}: {:?}",
            String::from_utf8_lossy(&bytes)
        )
    });
    // Every byte after the head, whatever the framing says (the server closes).
    Resp {
        body: bytes[body_start..].to_vec(),
        ..head
    }
}

fn get(s: &Server, target: &str, extra: &[(&str, &str)]) -> Resp {
    request(s, "GET", target, extra)
}

/// md5 of a file by coreutils' md5sum (fast even when the tests are built without
/// optimisation).
fn file_md5(path: &Path) -> String {
    let out = Command::new("md5sum").arg(path).output().expect("md5sum");
    assert!(out.status.success(), "md5sum failed");
    String::from_utf8_lossy(&out.stdout)[..32].to_string()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Runs a command we started to completion (bounded); returns (exit code, stdout, stderr).
fn run(cmd: &mut Command, limit: Duration) -> (Option<i32>, String, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut out = child.stdout.take().unwrap();
    let mut err = child.stderr.take().unwrap();
    let t_out = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        s
    });
    let t_err = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = err.read_to_string(&mut s);
        s
    });
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break st.code();
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, t_out.join().unwrap(), t_err.join().unwrap())
}

/// The parts of a multipart/byteranges body: (Content-Range value, bytes).
fn byteranges(body: &[u8], boundary: &str) -> Vec<(String, Vec<u8>)> {
    let delim = format!("\r\n--{boundary}");
    let mut parts = Vec::new();
    let mut pos = find(body, delim.as_bytes()).expect("first delimiter");
    loop {
        pos += delim.len();
        if body[pos..].starts_with(b"--") {
            break;
        }
        let rest = &body[pos..];
        let head_end = find(rest, b"\r\n\r\n").expect("part head");
        let head = String::from_utf8_lossy(&rest[..head_end]).into_owned();
        let range = head
            .split("\r\n")
            .find_map(|l| {
                l.split_once(':')
                    .filter(|(n, _)| n.eq_ignore_ascii_case("content-range"))
                    .map(|(_, v)| v.trim().to_string())
            })
            .expect("part Content-Range");
        let data_start = head_end + 4;
        let next = find(&rest[data_start..], delim.as_bytes()).expect("next delimiter");
        parts.push((range, rest[data_start..data_start + next].to_vec()));
        pos += data_start + next;
    }
    parts
}

const HELLO: &[u8] = b"hello world\n";

/// `put_file`, with the file's mtime a minute back: its Last-Modified date is a strong
/// validator (its second is over), which a date condition needs to be honoured.
fn put_old_file(s: &Server, rel: &str, data: &[u8]) -> String {
    let url = put_file(s, rel, data);
    let minute_ago = std::time::SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options()
        .write(true)
        .open(s.dir.join("files").join(rel))
        .and_then(|f| f.set_modified(minute_ago))
        .expect("set the file's mtime");
    url
}

// ---------------------------------------------------------------------------------------------
// GET / HEAD / 404
// ---------------------------------------------------------------------------------------------

#[test]
fn get_serves_the_bytes_with_content_length_and_head_sends_the_same_headers_without_a_body() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "dl/hello.txt", HELLO);
    let g = get(&s, &p, &[]);
    assert_eq!(g.status, 200);
    assert_eq!(g.body, HELLO);
    assert_eq!(g.header("content-length"), Some("12"));
    assert_eq!(g.header("accept-ranges"), Some("bytes"));
    assert!(g.header("last-modified").is_some());
    let h = request(&s, "HEAD", &p, &[]);
    assert_eq!(h.status, 200);
    assert!(h.body.is_empty(), "HEAD sent a body: {:?}", h.text());
    assert_eq!(h.stable_headers(), g.stable_headers());
}

#[test]
fn head_of_a_large_uncached_file_also_has_its_content_length_and_no_body() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "dl/large.bin", &noise(300_000, 1));
    let h = request(&s, "HEAD", &p, &[]);
    assert_eq!(h.status, 200);
    assert_eq!(h.header("content-length"), Some("300000"));
    assert!(h.body.is_empty(), "HEAD sent {} body bytes", h.body.len());
}

#[test]
fn a_missing_file_is_404_with_an_empty_body() {
    let s = Server::start(json!({}));
    let r = get(&s, "/group1/default/20260101/00/00/1/nope.txt", &[]);
    assert_eq!(r.status, 404);
    assert!(r.body.is_empty(), "body: {:?}", r.text());
    assert_eq!(r.header("content-length"), Some("0"));
    // Outside the group prefix: go-fastdfs' catch-all download handler, an empty 404 too.
    for target in ["/nope", "/favicon.ico", "/upload", "/group2/x.txt"] {
        let r = get(&s, target, &[]);
        assert_eq!(r.status, 404, "{target}");
        assert!(r.body.is_empty(), "{target}: body {:?}", r.text());
        assert_eq!(r.header("content-type"), None, "{target}");
    }
}

// ---------------------------------------------------------------------------------------------
// Range
// ---------------------------------------------------------------------------------------------

#[test]
fn range_bytes_0_4_gets_206_with_content_range_and_five_bytes() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "r/hello.txt", HELLO);
    let r = get(&s, &format!("{p}?download=0"), &[("Range", "bytes=0-4")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 0-4/12"));
    assert_eq!(r.header("content-length"), Some("5"));
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
}

#[test]
fn suffix_range_bytes_minus_3_gets_the_last_three_bytes() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "r/hello.txt", HELLO);
    let r = get(&s, &p, &[("Range", "bytes=-3")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 9-11/12"));
    assert_eq!(r.body, b"ld\n");
}

#[test]
fn open_ended_range_bytes_5_dash_gets_the_rest_of_the_file() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "r/hello.txt", HELLO);
    let r = get(&s, &p, &[("Range", "bytes=5-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.header("content-range"), Some("bytes 5-11/12"));
    assert_eq!(r.body, b" world\n");
}

/// A cached file goes out with sendfile at once as far as the socket takes it, and the rest
/// the ordinary way: a client that reads slowly, two pipelined requests on one connection
/// (a whole file and a range), gets every byte in order.
#[test]
fn a_slow_reader_of_a_cached_file_gets_every_byte_of_pipelined_responses_in_order() {
    let s = Server::start(json!({}));
    let data = noise(6_000_000, 7);
    let p = put_file(&s, "slow/cached.bin", &data);
    let mut conn = std::net::TcpStream::connect(s.addr()).unwrap();
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let reqs = format!(
        "GET {p} HTTP/1.1\r\nHost: x\r\n\r\n\
         GET {p} HTTP/1.1\r\nHost: x\r\nRange: bytes=17-5999990\r\nConnection: close\r\n\r\n"
    );
    conn.write_all(reqs.as_bytes()).unwrap();
    std::thread::sleep(Duration::from_millis(300)); // let the server fill the socket
    let mut got = Vec::new();
    let mut buf = [0u8; 65536];
    let started = Instant::now();
    loop {
        let n = conn.read(&mut buf).unwrap();
        if n == 0 {
            break;
        }
        got.extend_from_slice(&buf[..n]);
        if got.len() < 2_000_000 {
            std::thread::sleep(Duration::from_millis(2)); // slow at first
        }
        assert!(started.elapsed() < Duration::from_secs(60), "stalled");
    }
    let (first, at) = parse_head(&got).expect("first head");
    assert_eq!(first.status, 200);
    assert_eq!(first.header("content-length"), Some("6000000"));
    let body1 = &got[at..at + data.len()];
    assert!(*body1 == data[..], "first body differs");
    let rest = &got[at + data.len()..];
    let (second, at2) = parse_head(rest).expect("second head");
    assert_eq!(second.status, 206);
    assert_eq!(
        second.header("content-range"),
        Some("bytes 17-5999990/6000000")
    );
    assert!(rest[at2..] == data[17..=5_999_990], "range body differs");
}

/// A client that stops reading a large download does not hold its connection (or a sendfile
/// thread) forever: after `write_timeout` without progress the server closes it, and keeps
/// serving others.
#[test]
fn a_download_the_client_stops_reading_is_cut_after_the_write_timeout() {
    let s = Server::start(json!({"write_timeout": 2}));
    // Far more than the socket buffers of both ends hold.
    let data = vec![b'x'; 64 << 20];
    let p = put_file(&s, "stall/big.bin", &data);
    let mut c = std::net::TcpStream::connect(s.addr()).unwrap();
    c.write_all(format!("GET {p} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
        .unwrap();
    std::thread::sleep(Duration::from_secs(6)); // not reading
    c.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut got = 0usize;
    let mut buf = vec![0u8; 1 << 20];
    let started = Instant::now();
    loop {
        match c.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got += n,
        }
        assert!(started.elapsed() < Duration::from_secs(60), "never closed");
    }
    assert!(
        got < data.len(),
        "the whole body arrived: the server did not give up"
    );
    let r = get(&s, "/group1/stat", &[]);
    assert_eq!(r.status, 200, "the server still serves");
}

#[test]
fn ranges_of_a_large_uncached_file_are_the_right_bytes() {
    let s = Server::start(json!({}));
    let data = noise(3_000_000, 2);
    let p = put_file(&s, "r/large.bin", &data);
    let r = get(&s, &p, &[("Range", "bytes=1000000-2500000")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("content-range"),
        Some("bytes 1000000-2500000/3000000")
    );
    assert!(r.body == data[1_000_000..=2_500_000], "wrong bytes");
    let r = get(&s, &p, &[("Range", "bytes=-70000")]);
    assert!(r.body == data[data.len() - 70_000..], "wrong suffix bytes");
}

/// Drops the page cache of `path` (its pages written back first).
fn evict(path: &Path) {
    assert!(Command::new("sync").arg(path).status().unwrap().success());
    let dd = Command::new("dd")
        .arg(format!("if={}", path.display()))
        .args(["iflag=nocache", "count=0", "status=none"])
        .status()
        .unwrap();
    assert!(dd.success());
}

/// Bytes of `path` in the page cache (util-linux `fincore`).
fn cached_bytes(path: &Path) -> u64 {
    let out = Command::new("fincore")
        .args(["--bytes", "--noheadings", "--output", "RES"])
        .arg(path)
        .output()
        .expect("fincore (util-linux)");
    String::from_utf8_lossy(&out.stdout).trim().parse().unwrap()
}

/// A peer's replication fetch (`X-Fastdfs-Read-Through`) of a large range (1 MiB and more)
/// of a file that is not in the page cache reads it around the cache (O_DIRECT, aligned reads
/// of 2 MiB): every range, aligned or not, is the right bytes, and the file is still not
/// cached after it. A client's download goes through the page cache.
#[test]
fn a_peers_fetch_of_an_uncached_large_file_is_read_around_the_page_cache() {
    let s = Server::start(json!({}));
    let data = noise(5_000_123, 3);
    let p = put_file(&s, "r/replica.bin", &data);
    let path = s.dir.join("files/r/replica.bin");
    let peer = [("X-Fastdfs-Read-Through", "1")];
    let ranged = |spec: &'static str| [("X-Fastdfs-Read-Through", "1"), ("Range", spec)];
    evict(&path);
    let r = get(&s, &p, &peer);
    assert_eq!(r.status, 200);
    assert!(r.body == data, "wrong bytes");
    assert_eq!(cached_bytes(&path), 0, "the fetch filled the page cache");
    for (spec, from, to) in [
        ("bytes=1234567-4567890", 1_234_567, 4_567_891),
        ("bytes=4096-2101247", 4096, 2_101_248),
        ("bytes=3000000-", 3_000_000, data.len()),
    ] {
        let r = get(&s, &p, &ranged(spec));
        assert_eq!(r.status, 206, "{spec}");
        assert!(r.body == data[from..to], "{spec}: wrong bytes");
    }
    assert_eq!(
        cached_bytes(&path),
        0,
        "a ranged fetch filled the page cache"
    );
    // A short range (under 1 MiB) is read the ordinary way.
    let r = get(&s, &p, &ranged("bytes=-5000"));
    assert!(r.body == data[data.len() - 5000..], "suffix: wrong bytes");
    evict(&path);
    let r = get(&s, &p, &[]);
    assert!(r.body == data, "a client's download: wrong bytes");
    assert!(
        cached_bytes(&path) > 0,
        "a client's download skipped the page cache"
    );
}

fn check_multiple_ranges(s: &Server, p: &str, data: &[u8], spec: &str, want: &[(u64, u64)]) {
    let r = get(s, p, &[("Range", spec)]);
    assert_eq!(r.status, 206, "{spec}");
    let ct = r.header("content-type").unwrap_or("").to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("Content-Type {ct:?}"));
    assert_eq!(
        r.header("content-length"),
        Some(r.body.len().to_string().as_str()),
        "Content-Length must cover the whole multipart body"
    );
    let parts = byteranges(&r.body, boundary);
    assert_eq!(parts.len(), want.len(), "{spec}");
    for ((range, bytes), (a, b)) in parts.iter().zip(want) {
        assert_eq!(range, &format!("bytes {a}-{b}/{}", data.len()));
        assert!(
            bytes[..] == data[*a as usize..=*b as usize],
            "part {a}-{b} has wrong bytes"
        );
    }
}

#[test]
fn multiple_ranges_give_multipart_byteranges_whose_parts_have_the_right_bytes() {
    let s = Server::start(json!({}));
    let small = b"0123456789abcdefghij".to_vec();
    let p = put_file(&s, "r/small.txt", &small);
    check_multiple_ranges(&s, &p, &small, "bytes=0-1,4-6", &[(0, 1), (4, 6)]);
    check_multiple_ranges(&s, &p, &small, "bytes=2-3, -2", &[(2, 3), (18, 19)]);
    let large = noise(200_000, 3);
    let p = put_file(&s, "r/large.bin", &large);
    check_multiple_ranges(
        &s,
        &p,
        &large,
        "bytes=0-9,100000-165535,199990-",
        &[(0, 9), (100_000, 165_535), (199_990, 199_999)],
    );
}

#[test]
fn a_file_holding_a_boundary_served_before_still_gets_a_multipart_answer_that_parses() {
    // RFC 9110 §14.6: the boundary must not occur in the parts. One that an uploader can
    // learn and write into a file (one served before for a file of the same size and
    // mtime) would split a part in two for every client.
    let s = Server::start(json!({}));
    let len = 4096;
    let first = put_file(&s, "boundary/first.bin", &vec![b'x'; len]);
    let mtime = std::fs::metadata(s.dir.join("files/boundary/first.bin"))
        .unwrap()
        .modified()
        .unwrap();
    let spec = "bytes=0-99,1000-1099";
    let r = get(&s, &first, &[("Range", spec)]);
    assert_eq!(r.status, 206);
    let ct = r.header("content-type").unwrap_or("").to_string();
    let boundary = ct
        .strip_prefix("multipart/byteranges; boundary=")
        .unwrap_or_else(|| panic!("Content-Type {ct:?}"));
    // The same size and mtime, its first range holding that delimiter line.
    let mut data = vec![b'y'; len];
    let line = format!("\r\n--{boundary}\r\nContent-Range: bytes 1-2/3\r\n\r\n");
    data[10..10 + line.len()].copy_from_slice(line.as_bytes());
    let second = put_file(&s, "boundary/second.bin", &data);
    std::fs::File::options()
        .write(true)
        .open(s.dir.join("files/boundary/second.bin"))
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    check_multiple_ranges(&s, &second, &data, spec, &[(0, 99), (1000, 1099)]);
}

#[test]
fn an_unsatisfiable_range_gets_416_with_bytes_star_len_and_an_empty_body() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "r/hello.txt", HELLO);
    let r = get(&s, &p, &[("Range", "bytes=12-")]);
    assert_eq!(r.status, 416);
    assert_eq!(r.header("content-range"), Some("bytes */12"));
    assert!(r.body.is_empty(), "416 body: {:?}", r.text());
    assert_eq!(r.header("content-length"), Some("0"));
    assert_eq!(r.header("content-disposition"), None);
    // curl -r 12- -o f must not write an error text into f (docs/DEFECTS.md #40).
    let tmp = tempfile::tempdir().unwrap();
    let f = tmp.path().join("f");
    let (code, _, err) = run(
        Command::new("curl")
            .args(["-s", "--max-time", "20", "-r", "12-", "-o"])
            .arg(&f)
            .arg(s.url(&p)),
        Duration::from_secs(30),
    );
    assert!(code.is_some(), "curl hung: {err}");
    assert_eq!(file_len(&f), 0, "curl wrote a 416 body into the file");
}

// ---------------------------------------------------------------------------------------------
// Conditional requests
// ---------------------------------------------------------------------------------------------

#[test]
fn if_range_with_the_current_etag_gets_206_and_with_a_stale_validator_the_full_200() {
    let s = Server::start(json!({}));
    let p = put_old_file(&s, "c/hello.txt", HELLO);
    let g = get(&s, &p, &[]);
    let etag = g.header("etag").expect("ETag").to_string();
    let lm = g
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let r = get(&s, &p, &[("Range", "bytes=0-4"), ("If-Range", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"hello"[..]));
    let r = get(&s, &p, &[("Range", "bytes=0-4"), ("If-Range", &lm)]);
    assert_eq!((r.status, r.body.as_slice()), (206, &b"hello"[..]));
    let r = get(
        &s,
        &p,
        &[("Range", "bytes=0-4"), ("If-Range", "\"stale-etag\"")],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    assert_eq!(r.header("content-range"), None);
    let r = get(
        &s,
        &p,
        &[
            ("Range", "bytes=0-4"),
            ("If-Range", "Thu, 01 Jan 1970 00:00:01 GMT"),
        ],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn if_none_match_with_the_etag_gets_304_without_a_body() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "c/hello.txt", HELLO);
    let etag = get(&s, &p, &[]).header("etag").expect("ETag").to_string();
    let r = get(&s, &p, &[("If-None-Match", &etag)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    assert_eq!(r.header("etag"), Some(etag.as_str()));
    let r = get(&s, &p, &[("If-None-Match", "\"something-else\"")]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn if_modified_since_the_last_modification_gets_304_and_an_older_date_gets_200() {
    let s = Server::start(json!({}));
    let p = put_old_file(&s, "c/hello.txt", HELLO);
    let lm = get(&s, &p, &[])
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let r = get(&s, &p, &[("If-Modified-Since", &lm)]);
    assert_eq!(r.status, 304);
    assert!(r.body.is_empty());
    let r = get(
        &s,
        &p,
        &[("If-Modified-Since", "Sat, 01 Jan 2000 00:00:00 GMT")],
    );
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
}

#[test]
fn a_file_changed_since_if_unmodified_since_or_not_matching_if_match_gets_412() {
    let s = Server::start(json!({}));
    let p = put_old_file(&s, "c/hello.txt", HELLO);
    let first = get(&s, &p, &[]);
    let lm = first
        .header("last-modified")
        .expect("Last-Modified")
        .to_string();
    let etag = first.header("etag").expect("ETag").to_string();
    let old = "Sat, 01 Jan 2000 00:00:00 GMT";
    // A resume guarded by the date of an older copy must not splice this file's bytes in.
    for extra in [
        vec![("If-Unmodified-Since", old)],
        vec![("If-Unmodified-Since", old), ("Range", "bytes=0-4")],
        vec![("If-Match", "\"something-else\"")],
        vec![("If-Match", "W/\"something-else\""), ("Range", "bytes=0-4")],
    ] {
        let r = get(&s, &p, &extra);
        assert_eq!(r.status, 412, "{extra:?}");
        assert!(r.body.is_empty(), "{extra:?}");
    }
    let r = get(
        &s,
        &p,
        &[("If-Unmodified-Since", &lm), ("Range", "bytes=0-4")],
    );
    assert_eq!((r.status, r.body.as_slice()), (206, &HELLO[..5]));
    let r = get(&s, &p, &[("If-Match", &etag)]);
    assert_eq!((r.status, r.body.as_slice()), (200, HELLO));
    let r = get(&s, &p, &[("If-Match", "*"), ("If-Unmodified-Since", old)]);
    assert_eq!(r.status, 200, "If-Match decides when both are sent");
    let r = get(&s, &p, &[("If-Unmodified-Since", "not a date")]);
    assert_eq!(r.status, 200, "an unparsable date is ignored");
}

// ---------------------------------------------------------------------------------------------
// Inline, attachment, Content-Disposition
// ---------------------------------------------------------------------------------------------

/// Within one second: `c/<name>` uploaded, served (`old`), then replaced by an upload of as
/// many other bytes (dedup off: an upload replaces the file at its place), then `ask`ed about
/// with the first answer's validators. Returns the first answer, the new bytes and `ask`'s
/// answers, all dated the second both versions were written in (tried again, a few times, when
/// a second ended in between: the same second is what is tested).
fn after_a_same_second_overwrite(
    s: &Server,
    ask: impl Fn(&str, &Resp) -> Vec<Resp>,
) -> (Resp, Vec<u8>, Vec<Resp>) {
    for attempt in 0..5u64 {
        let name = format!("same{attempt}.bin");
        let (old_data, new_data) = (noise(3000, 2 * attempt + 1), noise(3000, 2 * attempt + 2));
        let fields = [("path", "c"), ("output", "json")];
        let (code, body) = upload(s, &name, &old_data, &fields);
        assert_eq!(code, 200, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).unwrap();
        let url = v["path"].as_str().expect("path").to_string();
        let old = get(s, &url, &[]);
        assert_eq!((old.status, old.body.as_slice()), (200, &old_data[..]));
        let (code, body) = upload(s, &name, &new_data, &fields);
        assert_eq!(code, 200, "{body}");
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&body).unwrap()["path"],
            url
        );
        let answers = ask(&url, &old);
        let lm = old.header("last-modified").expect("Last-Modified");
        if answers.iter().all(|r| r.header("date") == Some(lm)) {
            return (old, new_data, answers);
        }
    }
    panic!("no overwrite and its questions fitted in one second in five tries");
}

/// Dedup off: a second upload of a name to one path replaces the first.
fn replacing_server() -> Server {
    Server::start(json!({"enable_distinct_file": false}))
}

#[test]
fn a_copy_replaced_within_its_second_is_never_answered_304() {
    let s = replacing_server();
    let (_, new, answers) = after_a_same_second_overwrite(&s, |url, old| {
        let tag = old.header("etag").unwrap();
        let lm = old.header("last-modified").unwrap();
        vec![
            get(&s, url, &[("If-None-Match", tag)]),
            get(&s, url, &[("If-Modified-Since", lm)]),
        ]
    });
    for r in &answers {
        assert_eq!(
            r.status, 200,
            "the old copy's validator matched the new file"
        );
        assert_eq!(r.body, new);
    }
}

#[test]
fn a_resume_validated_by_a_copy_replaced_within_its_second_gets_the_whole_new_file() {
    let s = replacing_server();
    let (old, new, answers) = after_a_same_second_overwrite(&s, |url, old| {
        let tag = old.header("etag").unwrap();
        let lm = old.header("last-modified").unwrap();
        let current = get(&s, url, &[]);
        let current_tag = current.header("etag").unwrap().to_string();
        let range = ("Range", "bytes=0-4");
        vec![
            get(&s, url, &[range, ("If-Range", tag)]),
            get(&s, url, &[range, ("If-Range", lm)]),
            get(&s, url, &[range, ("If-Unmodified-Since", lm)]),
            get(&s, url, &[range, ("If-Range", &current_tag)]),
            current,
        ]
    });
    let current = &answers[4];
    assert_eq!(current.body, new);
    assert_eq!(
        old.header("last-modified"),
        current.header("last-modified"),
        "both versions have one date"
    );
    assert_ne!(old.header("etag"), current.header("etag"));
    let by_tag = &answers[0];
    assert_eq!(
        (by_tag.status, &by_tag.body),
        (200, &new),
        "If-Range: old ETag"
    );
    assert_eq!(by_tag.header("content-range"), None);
    let by_date = &answers[1];
    assert_eq!(
        (by_date.status, &by_date.body),
        (200, &new),
        "If-Range: a weak date"
    );
    assert_eq!(answers[2].status, 412, "If-Unmodified-Since: a weak date");
    let resume = &answers[3];
    assert_eq!((resume.status, &resume.body[..]), (206, &new[..5]));
    assert_eq!(resume.header("content-range"), Some("bytes 0-4/3000"));
}

/// curl told to resume (`-C -`) with the old copy's ETag as If-Range gets the whole new file,
/// which it refuses to splice onto the old head: the partial file is left as it was. (wget -c
/// sends no validator at all, and on a whole-file answer keeps its partial head and appends
/// the rest: nothing a server does can make its resume of a replaced file correct.)
#[test]
fn curl_resuming_a_copy_replaced_within_its_second_splices_nothing() {
    let s = replacing_server();
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("part.bin");
    let (old, _, answers) = after_a_same_second_overwrite(&s, |url, old| {
        std::fs::write(&dst, &old.body[..1000]).unwrap();
        let tag = format!("If-Range: {}", old.header("etag").unwrap());
        let (code, stdout, err) = run(
            Command::new("curl")
                .args(["-sS", "--max-time", "20", "-C", "-", "-D", "-", "-o"])
                .arg(&dst)
                .args(["-H", &tag])
                .arg(s.url(url)),
            Duration::from_secs(30),
        );
        assert_eq!(code, Some(33), "curl resumed or failed otherwise: {err}");
        let (head, _) = parse_head(stdout.as_bytes()).expect("curl's dump of the head");
        vec![head]
    });
    assert_eq!(
        answers[0].status, 200,
        "the whole new file, not a range of it"
    );
    assert_eq!(std::fs::read(&dst).unwrap(), &old.body[..1000]);
}

#[test]
fn a_date_validator_is_honoured_once_its_second_is_over() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "c/now.txt", HELLO);
    let first = get(&s, &p, &[]);
    let lm = first.header("last-modified").unwrap().to_string();
    let deadline = Instant::now() + Duration::from_secs(5);
    let later = loop {
        let r = get(&s, &p, &[("Range", "bytes=0-4"), ("If-Range", &lm)]);
        if r.header("date") != Some(lm.as_str()) || Instant::now() > deadline {
            break r;
        }
        assert_eq!((r.status, r.body.as_slice()), (200, HELLO), "a weak date");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!((later.status, later.body.as_slice()), (206, &b"hello"[..]));
    assert_eq!(get(&s, &p, &[("If-Modified-Since", &lm)]).status, 304);
}

#[test]
fn download_0_is_inline_with_a_content_type_by_extension() {
    let s = Server::start(json!({}));
    let txt = put_file(&s, "i/readme.txt", b"plain text");
    let png = put_file(&s, "i/red.png", b"\x89PNG\r\n\x1a\nnot really");
    let r = get(&s, &format!("{txt}?download=0"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("text/plain; charset=utf-8"));
    assert!(
        !r.header("content-disposition")
            .unwrap_or("")
            .contains("attachment"),
        "inline download is an attachment"
    );
    let r = get(&s, &format!("{png}?download=0"), &[]);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert!(!r
        .header("content-disposition")
        .unwrap_or("")
        .contains("attachment"));
}

#[test]
fn by_default_a_download_is_an_octet_stream_attachment() {
    let s = Server::start(json!({}));
    let txt = put_file(&s, "i/readme.txt", b"plain text");
    let r = get(&s, &txt, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    assert_eq!(r.header("content-disposition"), Some("attachment"));
    let r = get(&s, &format!("{txt}?download=1"), &[]);
    assert_eq!(r.header("content-disposition"), Some("attachment"));
}

#[test]
fn a_name_parameter_gives_an_rfc_6266_filename_star() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "n/x.bin", b"named");
    let r = get(&s, &format!("{p}?name=my%20file.txt&download=1"), &[]);
    let cd = r
        .header("content-disposition")
        .expect("Content-Disposition");
    assert!(cd.starts_with("attachment"), "{cd}");
    assert!(cd.contains("filename*=UTF-8''my%20file.txt"), "{cd}");
    let r = get(&s, &format!("{p}?name=%E6%8A%A5%E5%91%8A%22.pdf"), &[]);
    let cd = r
        .header("content-disposition")
        .expect("Content-Disposition");
    assert!(
        cd.contains("filename*=UTF-8''%E6%8A%A5%E5%91%8A%22.pdf"),
        "{cd}"
    );
    assert!(
        !cd.chars().any(char::is_control) && cd.matches('"').count() <= 2,
        "unsafe header value: {cd}"
    );
}

#[test]
fn curl_remote_header_name_saves_a_download_under_its_unicode_name() {
    // curl -OJ reads only `filename=` (not `filename*`): the name an upload's URL gives
    // (`?name=<original name>`) must reach it whole, as go-fastdfs sends it, not as an
    // ASCII stand-in.
    let s = Server::start(json!({}));
    let p = put_file(&s, "cj/x.bin", b"unicode named");
    let work = tempfile::tempdir().unwrap();
    let url = format!(
        "{}?name={}&download=1",
        s.url(&p),
        urlencode("报告 wörld (1).txt")
    );
    let (code, _, err) = run(
        Command::new("curl")
            .current_dir(work.path())
            .args(["-s", "-S", "-O", "-J"])
            .arg(&url),
        Duration::from_secs(30),
    );
    assert_eq!(code, Some(0), "curl -OJ failed: {err}");
    let names: Vec<String> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["报告 wörld (1).txt"]);
    let saved = std::fs::read(work.path().join("报告 wörld (1).txt")).unwrap();
    assert_eq!(saved, b"unicode named");
}

#[test]
fn a_name_with_crlf_never_injects_a_header() {
    let s = Server::start(json!({}));
    let p = put_file(&s, "n/x.bin", b"evil");
    for q in [
        "name=a%0d%0aX-Evil:%201",
        "name=a%0aX-Evil:%201",
        "name=a%0dX-Evil:%201",
    ] {
        let r = get(&s, &format!("{p}?{q}&download=1"), &[]);
        assert_eq!(r.status, 200, "{q}");
        assert!(
            r.headers
                .iter()
                .all(|(n, _)| !n.eq_ignore_ascii_case("x-evil")),
            "{q} injected a header: {:?}",
            r.headers
        );
        assert_eq!(r.body, b"evil", "{q}");
        let cd = r
            .header("content-disposition")
            .expect("Content-Disposition");
        assert!(cd.contains("filename*=UTF-8''"), "{q}: {cd}");
        assert!(!cd.contains('\r') && !cd.contains('\n'), "{q}: {cd}");
    }
}

// ---------------------------------------------------------------------------------------------
// Directories
// ---------------------------------------------------------------------------------------------

#[test]
fn a_directory_is_listed_when_show_dir_is_true() {
    let s = Server::start(json!({"show_dir": true}));
    put_file(&s, "d/20260101/a.txt", b"a");
    put_file(&s, "d/20260101/sub/b.txt", b"b");
    let r = get(&s, "/group1/d/20260101/", &[]);
    assert_eq!(r.status, 200);
    let body = r.text();
    assert!(body.contains("<a href=\"a.txt\">a.txt</a>"), "{body}");
    assert!(body.contains("<a href=\"sub/\">sub/</a>"), "{body}");
    let r = get(&s, "/group1/d/20260101", &[]);
    assert_eq!(r.status, 301);
}

#[test]
fn a_directory_holding_an_index_html_serves_it_instead_of_a_listing_as_go_fastdfs_does() {
    // go-fastdfs hands directories to Go's file server, which answers `<dir>/` with its
    // index.html (as a download: attachment by default, inline with `download=0`).
    let s = Server::start(json!({"show_dir": true}));
    put_file(&s, "site/index.html", b"<h1>home</h1>");
    put_file(&s, "site/other.txt", b"other");
    let r = get(&s, "/group1/site/?download=0", &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, b"<h1>home</h1>");
    assert_eq!(r.header("content-type"), Some("text/html; charset=utf-8"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|v| v.contains("sandbox")),
        "uploaded HTML stays sandboxed"
    );
    let r = get(&s, "/group1/site/", &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"<h1>home</h1>");
    assert_eq!(r.header("content-disposition"), Some("attachment"));
    let r = get(&s, "/group1/site/", &[("Range", "bytes=1-2")]);
    assert_eq!((r.status, &r.body[..]), (206, &b"h1"[..]));
    // Without the slash: the redirect to it, as for any directory.
    assert_eq!(get(&s, "/group1/site", &[]).status, 301);
    // A directory without one is still listed.
    put_file(&s, "site/sub/a.txt", b"a");
    let r = get(&s, "/group1/site/sub/", &[]);
    assert!(
        r.text().contains("<a href=\"a.txt\">a.txt</a>"),
        "{}",
        r.text()
    );
}

#[test]
fn a_directory_is_refused_with_list_dir_deny_when_show_dir_is_false() {
    let s = Server::start(json!({"show_dir": false}));
    put_file(&s, "d/20260101/a.txt", b"a");
    let r = get(&s, "/group1/d/20260101/", &[]);
    assert_eq!(r.text(), "list dir deny");
    assert!(!r.text().contains("a.txt"));
    // Files inside are still served.
    let r = get(&s, "/group1/d/20260101/a.txt", &[]);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"a"[..]));
}

// ---------------------------------------------------------------------------------------------
// Cache and delete
// ---------------------------------------------------------------------------------------------

#[test]
fn small_cached_and_large_uncached_files_are_served_correctly_every_time() {
    let s = Server::start(json!({}));
    // An empty file (uploads refuse them, so it is placed directly).
    let empty = put_file(&s, "cache/empty.bin", b"");
    for _ in 0..2 {
        let g = get(&s, &empty, &[]);
        assert_eq!(g.status, 200);
        assert_eq!(g.header("content-length"), Some("0"));
        assert!(g.body.is_empty());
    }
    for (i, len) in [1usize, 1000, 65_535, 65_536, 65_537, 1 << 20, 5_000_001]
        .into_iter()
        .enumerate()
    {
        let data = noise(len, 10 + i as u64);
        let r = upload_json(&s, &format!("f{len}.bin"), &data);
        let path = r["path"].as_str().unwrap().to_string();
        for round in 0..2 {
            let g = get(&s, &path, &[]);
            assert_eq!(g.status, 200, "{len} bytes, round {round}");
            assert_eq!(
                g.header("content-length"),
                Some(len.to_string().as_str()),
                "{len}"
            );
            assert!(g.body == data, "{len} bytes, round {round}: wrong body");
        }
    }
}

#[test]
fn a_deleted_file_stops_being_served_even_after_it_was_cached() {
    let s = Server::start(json!({}));
    let r = upload_json(&s, "gone.txt", b"soon gone\n");
    let path = r["path"].as_str().unwrap().to_string();
    let md5 = r["md5"].as_str().unwrap().to_string();
    for _ in 0..2 {
        let g = get(&s, &path, &[]);
        assert_eq!((g.status, g.body.as_slice()), (200, &b"soon gone\n"[..]));
    }
    let (code, body) = call(agent().get(&s.url(&format!("/group1/delete?md5={md5}"))));
    assert_eq!(code, 200, "{body}");
    let g = get(&s, &path, &[]);
    assert_eq!(g.status, 404, "deleted file still served: {:?}", g.text());
    assert!(g.body.is_empty());
}

// ---------------------------------------------------------------------------------------------
// Resuming clients
// ---------------------------------------------------------------------------------------------

#[test]
fn wget_c_resumes_an_interrupted_1_gib_download_to_identical_bytes() {
    const BLOCK: usize = 1 << 20;
    const BLOCKS: usize = 1024;
    let s = Server::start(json!({}));
    let src = s.dir.join("files/big/big.bin");
    std::fs::create_dir_all(src.parent().unwrap()).unwrap();
    let mut f = std::fs::File::create(&src).unwrap();
    // The md5 is computed while writing, by an md5sum child fed the same blocks.
    let mut summer = Command::new("md5sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut sum_in = summer.stdin.take().unwrap();
    let mut block = noise(BLOCK, 99);
    for i in 0..BLOCKS {
        // Every block differs, so a resume at a wrong offset cannot go unnoticed.
        block[..8].copy_from_slice(&(i as u64).to_le_bytes());
        block[BLOCK / 2..BLOCK / 2 + 8].copy_from_slice(&(i as u64 ^ 0xabcdef).to_le_bytes());
        f.write_all(&block).unwrap();
        sum_in.write_all(&block).unwrap();
    }
    drop(f);
    drop(sum_in);
    let mut sum_out = String::new();
    summer
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut sum_out)
        .unwrap();
    assert!(summer.wait().unwrap().success());
    let want = sum_out[..32].to_string();
    let total = (BLOCK * BLOCKS) as u64;

    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("big.bin");
    let url = s.url("/group1/big/big.bin");
    let mut first = Command::new("wget")
        .args(["-c", "-q", "--tries=1"])
        .arg(&url)
        .current_dir(out.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started_partial = eventually(Duration::from_secs(60), || {
        file_len(&dst) > 100 << 20 || matches!(first.try_wait(), Ok(Some(_)))
    });
    let _ = first.kill();
    let _ = first.wait();
    assert!(started_partial, "wget got no 100 MiB within 60 s");
    let partial = file_len(&dst);
    assert!(
        partial > 100 << 20 && partial < total,
        "not a partial download: {partial} bytes"
    );

    let (code, _, err) = run(
        Command::new("wget")
            .args(["-c", "-S", "--tries=1", "--progress=dot:giga"])
            .arg(&url)
            .current_dir(out.path()),
        Duration::from_secs(120),
    );
    assert_eq!(code, Some(0), "wget -c failed: {err}");
    assert!(err.contains("206 Partial Content"), "did not resume: {err}");
    assert_eq!(file_len(&dst), total);
    assert_eq!(file_md5(&dst), want, "resumed download differs");
}

#[test]
fn curl_c_dash_resumes_a_partially_written_file() {
    let s = Server::start(json!({}));
    let data = noise(5_000_000, 7);
    let p = put_file(&s, "resume/five.bin", &data);
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("five.bin");
    std::fs::write(&dst, &data[..1_234_567]).unwrap();
    let (code, stdout, err) = run(
        Command::new("curl")
            .args([
                "-sS",
                "--max-time",
                "30",
                "-C",
                "-",
                "-w",
                "%{http_code}",
                "-o",
            ])
            .arg(&dst)
            .arg(s.url(&p)),
        Duration::from_secs(40),
    );
    assert_eq!(code, Some(0), "curl failed: {err}");
    assert_eq!(stdout, "206", "curl did not get a partial response");
    assert_eq!(file_md5(&dst), md5_hex(&data));
}

#[test]
fn wget_c_on_an_already_complete_file_has_nothing_to_do_and_leaves_it_unchanged() {
    let s = Server::start(json!({}));
    let data = noise(300_000, 8);
    let p = put_file(&s, "resume/done.bin", &data);
    let out = tempfile::tempdir().unwrap();
    let dst = out.path().join("done.bin");
    let wget = |extra: &[&str]| {
        run(
            Command::new("wget")
                .args(["-c", "--tries=1"])
                .args(extra)
                .arg(s.url(&p))
                .current_dir(out.path()),
            Duration::from_secs(30),
        )
    };
    let (code, _, err) = wget(&[]);
    assert_eq!(code, Some(0), "first wget failed: {err}");
    assert_eq!(file_md5(&dst), md5_hex(&data));
    let mtime = std::fs::metadata(&dst).unwrap().modified().unwrap();
    let (code, _, err) = wget(&[]);
    assert_eq!(code, Some(0), "second wget -c failed: {err}");
    assert!(
        err.contains("already fully retrieved") || err.contains("nothing to do"),
        "{err}"
    );
    assert_eq!(file_len(&dst), data.len() as u64);
    assert_eq!(file_md5(&dst), md5_hex(&data));
    assert_eq!(std::fs::metadata(&dst).unwrap().modified().unwrap(), mtime);
}

#[test]
fn a_deleted_large_file_is_not_served_from_a_cached_descriptor() {
    let s = Server::start(json!({}));
    let data: Vec<u8> = (0..100_000u32).map(|i| (i % 251) as u8).collect();
    let r = upload_json(&s, "large.bin", &data);
    let path = r["path"].as_str().unwrap();
    for _ in 0..2 {
        let resp = agent().get(&s.url(path)).call().unwrap();
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut got).unwrap();
        assert!(got == data);
    }
    let (code, _) = call(agent().get(&s.url(&format!(
        "/group1/delete?md5={}",
        r["md5"].as_str().unwrap()
    ))));
    assert_eq!(code, 200);
    let (code, _) = call(agent().get(&s.url(path)));
    assert_eq!(code, 404);
}

#[test]
fn a_directory_listing_links_every_name_as_a_relative_path_never_a_scheme() {
    // A stored file named `javascript:alert(1)` must not become a script link (stored XSS).
    let s = Server::start(serde_json::json!({"show_dir": true}));
    let dir = s.dir.join("files/listing");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("javascript:alert(1)"), b"x").unwrap();
    std::fs::write(dir.join("plain.txt"), b"y").unwrap();
    let r = get(&s, "/group1/listing/", &[]);
    assert_eq!(r.status, 200);
    let page = String::from_utf8_lossy(&r.body).into_owned();
    assert!(
        page.contains("href=\"./javascript:alert%281%29\""),
        "{page}"
    );
    // Other names as Go's `url.URL{Path: name}` writes them, without `./`.
    assert!(page.contains("href=\"plain.txt\""), "{page}");
    assert!(!page.contains("href=\"javascript:"), "{page}");
}

/// A `w`×`h` PNG.
fn png(w: usize, h: usize) -> Vec<u8> {
    use zune_core::colorspace::ColorSpace;
    let pixels: Vec<u8> = (0..w * h * 3).map(|i| (i * 7 % 251) as u8).collect();
    zune_image::image::Image::from_u8(&pixels, w, h, ColorSpace::RGB)
        .write_to_vec(zune_image::codecs::ImageFormat::PNG)
        .unwrap()
}

fn png_dims(bytes: &[u8]) -> (usize, usize) {
    let cursor = zune_core::bytestream::ZCursor::new(bytes);
    zune_image::image::Image::read(cursor, zune_core::options::DecoderOptions::default())
        .unwrap()
        .dimensions()
}

/// go-fastdfs (seen with its binary) resizes an image asked for without the group prefix
/// (`/default/.../red.png?width=10`): its handler resizes before the file server that
/// answers the unprefixed original with `404 page not found`. Same here, under the same
/// download checks; anything that is not an image stays Go's 404 page (not go-fastdfs'
/// empty 200, docs/DEFECTS.md #32).
#[test]
fn an_unprefixed_image_url_with_a_size_is_resized_as_go_fastdfs_does() {
    // An upload's path without its group prefix.
    let unprefixed = |v: &serde_json::Value| {
        v["path"]
            .as_str()
            .unwrap()
            .strip_prefix("/group1")
            .unwrap()
            .to_string()
    };
    let s = Server::start(json!({}));
    let v = upload_json(&s, "red.png", &png(40, 20));
    let path = unprefixed(&v);
    let r = get(&s, &format!("{path}?width=10&download=0"), &[]);
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.header("Content-Type"), Some("image/png"));
    assert_eq!(png_dims(&r.body), (10, 5));
    // The attachment form, as for the prefixed URL.
    let r = get(&s, &format!("{path}?height=5"), &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Disposition"), Some("attachment"));
    assert_eq!(png_dims(&r.body), (10, 5));
    // Without a size, and for a non-image, the unprefixed URL stays Go's 404 page.
    let r = get(&s, &path, &[]);
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    let t = upload_json(&s, "t.txt", b"not an image");
    let tpath = unprefixed(&t);
    let r = get(&s, &format!("{tpath}?width=10"), &[]);
    assert_eq!((r.status, r.text().as_str()), (404, "404 page not found\n"));
    let r = get(&s, "/default/nope.png?width=10", &[]);
    assert_eq!((r.status, r.body.len()), (404, 0));
    // Under the download checks: with tokens on, a non-admin without a token gets no image.
    let tokens = Server::start(json!({"download_use_token": true}));
    let v = upload_json(&tokens, "red.png", &png(40, 20));
    let path = unprefixed(&v);
    let url = tokens.url(&format!("{path}?width=10"));
    assert_eq!(status_from_non_admin(&url, &[]), 401);
}
