//! Test harness: starts the real `fastdfs` binary in a fresh runtime dir on a free loopback
//! port, waits until it accepts connections, and stops it (SIGTERM, then SIGKILL) on drop.
#![allow(dead_code)]

pub mod cluster;
pub mod go;
pub mod lazyfs;
pub mod s3;

use serde_json::{json, Value};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_fastdfs");
/// Logged by each executor once its listener is bound (so a successful connect is ours, never a
/// TCP self-connect to a port nothing listens on yet).
const STARTED: &str = "accepting connections";

/// A free TCP port on `ip` (bind to port 0, read it, release it).
pub fn free_port(ip: &str) -> u16 {
    // Never the same port twice in one test binary: two servers starting at once could
    // otherwise both be handed the port one probe just released, and both bind it (the
    // server's listener has SO_REUSEPORT; its check for a listener races with the other's
    // bind), and then each would get half of the other's connections.
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = std::net::TcpListener::bind((ip, 0))
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|e| e.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// The cfg.json every test server starts from; `overrides` replaces keys.
pub fn base_config(ip: &str, port: u16, overrides: &Value) -> Value {
    let mut cfg = json!({
        "addr": format!("{ip}:{port}"),
        "host": format!("http://{ip}:{port}"),
        "peer_id": "1",
        "peers": [],
        "group": "group1",
        "support_group_manage": true,
        "default_scene": "default",
        "enable_distinct_file": true,
        "default_download": true,
        "enable_cross_origin": true,
        "enable_custom_path": true,
        "enable_trim_file_name_special_char": true,
        "enable_web_upload": true,
        "show_dir": true,
        "file_sum_arithmetic": "md5",
        "admin_ips": ["127.0.0.1"],
        "admin_key": "test-admin-key",
        "enable_tus": false,
        "auto_repair": false,
        "workers": 1,
        "io_memory": 262144,
        "shutdown_grace": 5
    });
    if let Value::Object(o) = overrides {
        for (k, v) in o {
            cfg[k] = v.clone();
        }
    }
    cfg
}

pub struct Server {
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
    pub ip: String,
    pub port: u16,
    pub child: Option<Child>,
    /// Environment variables for the next starts (e.g. `FASTDFS_FAILPOINTS`).
    pub env: Vec<(String, String)>,
}

impl Server {
    /// A server with the base config plus `overrides`, in a new temp dir.
    pub fn start(overrides: Value) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let dir = tmp.path().to_path_buf();
        let mut s = Server::start_in(&dir, "127.0.0.1", overrides);
        s._tmp = Some(tmp);
        s
    }

    /// A server in `dir` (kept), listening on `ip`; writes conf/cfg.json unless it exists.
    pub fn start_in(dir: &Path, ip: &str, overrides: Value) -> Server {
        let conf = dir.join("conf/cfg.json");
        let conf_existed = conf.exists();
        let port = if conf_existed {
            let v: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
            v["addr"]
                .as_str()
                .unwrap()
                .rsplit(':')
                .next()
                .unwrap()
                .parse()
                .unwrap()
        } else {
            let port = free_port(ip);
            std::fs::create_dir_all(dir.join("conf")).unwrap();
            let cfg = base_config(ip, port, &overrides);
            std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
            // Durable like a real operator's file (the power-cut test relies on it).
            std::fs::File::open(&conf).unwrap().sync_all().unwrap();
            std::fs::File::open(dir.join("conf"))
                .unwrap()
                .sync_all()
                .unwrap();
            std::fs::File::open(dir).unwrap().sync_all().unwrap();
            port
        };
        let mut s = Server {
            dir: dir.to_path_buf(),
            _tmp: None,
            ip: ip.to_string(),
            port,
            child: None,
            env: Vec::new(),
        };
        // Parallel tests may draw the same free port: the loser sees "cannot listen" and
        // retries on a new port (only when this harness wrote the config).
        for _ in 0..5 {
            if s.try_spawn() {
                return s;
            }
            if !s.stderr().contains("cannot listen") || conf_existed {
                break;
            }
            s.port = free_port(ip);
            let cfg = base_config(ip, s.port, &overrides);
            std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
            std::fs::File::open(&conf).unwrap().sync_all().unwrap();
        }
        panic!("server did not start: {}", s.stderr());
    }

    pub fn spawn(&mut self) {
        assert!(self.try_spawn(), "server did not start: {}", self.stderr());
    }

    /// Starts the binary and waits until it listens; false if it exited first.
    pub fn try_spawn(&mut self) -> bool {
        // Never lose the handle of a running server (it would outlive the test).
        self.kill();
        let starts_before = self.stderr().matches(STARTED).count();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("stderr.log"))
            .unwrap();
        let child = Command::new(BIN)
            .arg("server")
            .current_dir(&self.dir)
            .env_remove("GO_FASTDFS_DIR")
            .envs(self.env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("start fastdfs");
        self.child = Some(child);
        self.wait_ready(starts_before)
    }

    /// Waits until this server (not another process on the same port: it must have logged
    /// its start after the port check) accepts connections; false if it exited first.
    fn wait_ready(&mut self, starts_before: usize) -> bool {
        let addr: SocketAddr = format!("{}:{}", self.ip, self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(_))) = self.child.as_mut().map(|c| c.try_wait()) {
                self.child = None;
                return false;
            }
            let started = self.stderr().matches(STARTED).count() > starts_before;
            if started && TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let pid = self.child.as_ref().map_or(0, |c| c.id());
        panic!(
            "server did not listen within 20 s: {}\n{}",
            self.stderr(),
            threads_report(pid)
        );
    }

    /// Starts this stopped server again on its port. While it was down, an outgoing connection
    /// of a parallel test may have been given that port as its ephemeral local port, which
    /// makes bind fail until that connection ends: retried until a deadline.
    pub fn respawn(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        while !self.try_spawn() {
            assert!(
                self.stderr().contains("cannot listen") && Instant::now() < deadline,
                "server did not start: {}",
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(self.dir.join("stderr.log")).unwrap_or_default()
    }

    /// The last `bytes` or so of the server's log (from a character boundary), for failure
    /// messages.
    pub fn stderr_tail(&self, bytes: usize) -> String {
        let log = self.stderr();
        let start = (log.len().saturating_sub(bytes)..log.len())
            .find(|&i| log.is_char_boundary(i))
            .unwrap_or(0);
        log[start..].to_string()
    }

    pub fn base(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{}", self.base(), path)
    }

    pub fn addr(&self) -> String {
        format!("{}:{}", self.ip, self.port)
    }

    /// SIGTERM and wait (bounded); returns the exit code.
    pub fn stop(&mut self) -> Option<i32> {
        let mut child = self.child.take()?;
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        wait_child(&mut child, Duration::from_secs(15))
    }

    /// SIGKILL (a crash) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

/// What each thread of a process is doing (name, state, kernel wait channel, current system
/// call and, as root, its kernel stack), for a start that hangs: a test that times out says
/// where the server was stuck.
pub fn threads_report(pid: u32) -> String {
    let mut out = format!("threads of {pid}:\n");
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return out + "(gone)\n";
    };
    let mut tids: Vec<_> = tasks.flatten().map(|e| e.path()).collect();
    tids.sort();
    for t in tids {
        let read = |f: &str| std::fs::read_to_string(t.join(f)).unwrap_or_default();
        let state = read("status")
            .lines()
            .find(|l| l.starts_with("State:"))
            .unwrap_or("")
            .to_string();
        out += &format!(
            "{} {} [{}] wchan={} syscall={}\n{}",
            t.file_name().unwrap().to_string_lossy(),
            read("comm").trim(),
            state.trim(),
            read("wchan"),
            read("syscall").trim(),
            read("stack")
        );
    }
    out
}

/// Waits (bounded) for a child we started; kills it if it overstays. Returns its exit code.
pub fn wait_child(child: &mut Child, limit: Duration) -> Option<i32> {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if let Ok(Some(st)) = child.try_wait() {
            return st.code();
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

/// A ureq agent that never follows redirects and treats every status as a response.
pub fn agent() -> ureq::Agent {
    ureq::AgentBuilder::new()
        .redirects(0)
        .timeout(Duration::from_secs(60))
        .build()
}

/// (status, body) of a request, never an Err for HTTP statuses.
pub fn call(req: ureq::Request) -> (u16, String) {
    match req.call() {
        Ok(r) => (r.status(), r.into_string().unwrap_or_default()),
        Err(ureq::Error::Status(code, r)) => (code, r.into_string().unwrap_or_default()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// A multipart/form-data body: text fields and one file part named `file`.
pub fn multipart(fields: &[(&str, &str)], file: Option<(&str, &[u8])>) -> (String, Vec<u8>) {
    let boundary = "----fastdfsTestBoundary7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (k, v) in fields {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{k}\"\r\n\r\n{v}\r\n")
                .as_bytes(),
        );
    }
    if let Some((name, data)) = file {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"{name}\"\r\nContent-Type: application/octet-stream\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

/// Uploads `data` as `name` with extra fields; returns (status, body).
pub fn upload(s: &Server, name: &str, data: &[u8], fields: &[(&str, &str)]) -> (u16, String) {
    let (ct, body) = multipart(fields, Some((name, data)));
    match agent()
        .post(&s.url("/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body)
    {
        Ok(r) => (r.status(), r.into_string().unwrap()),
        Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
        Err(e) => panic!("transport error: {e}"),
    }
}

/// Uploads with output=json and returns the parsed FileResult.
pub fn upload_json(s: &Server, name: &str, data: &[u8]) -> Value {
    let (code, body) = upload(s, name, data, &[("output", "json")]);
    assert_eq!(code, 200, "upload failed: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Sends raw bytes on a new connection and reads until the server closes or `wait` passes.
pub fn raw(addr: &str, bytes: &[u8], wait: Duration) -> Vec<u8> {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(wait)).unwrap();
    s.write_all(bytes).unwrap();
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    let deadline = Instant::now() + wait;
    while Instant::now() < deadline {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(_) => break,
        }
    }
    out
}

/// A response as raw-socket tests see it.
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Headers except the ones that legitimately differ between two requests.
    pub fn stable_headers(&self) -> Vec<(String, String)> {
        let mut h: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| !n.eq_ignore_ascii_case("date"))
            .cloned()
            .collect();
        h.sort();
        h
    }
}

pub fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// The status line and headers at the front of `buf` (body left empty) and where the body
/// starts; None until the head is complete. Panics on a malformed head.
pub fn parse_head(buf: &[u8]) -> Option<(Resp, usize)> {
    let end = find(buf, b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&buf[..end]).into_owned();
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or("");
    assert!(
        status_line.starts_with("HTTP/1."),
        "not a status line: {status_line:?}"
    );
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("bad status line {status_line:?}"));
    let headers = lines
        .map(|l| {
            let (n, v) = l
                .split_once(':')
                .unwrap_or_else(|| panic!("bad header line {l:?}"));
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let r = Resp {
        status,
        headers,
        body: Vec::new(),
    };
    Some((r, end + 4))
}

/// Unix time now, in seconds.
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// `YYYYMMDD/HH/MM` of a Unix time in the local time zone (as servers name their dirs).
pub fn local_stamp(t: i64) -> String {
    // SAFETY: a zeroed tm is a valid out-parameter; localtime_r only writes into it.
    let mut tm: libc::tm = unsafe { std::mem::zeroed() };
    let tt = t as libc::time_t;
    // SAFETY: both pointers are valid for the call.
    unsafe { libc::localtime_r(&tt, &mut tm) };
    format!(
        "{:04}{:02}{:02}/{:02}/{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min
    )
}

/// Every byte but letters, digits and `-_.~` as `%XX`: a query value or a path segment.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub fn md5_hex(data: &[u8]) -> String {
    use md5::Digest;
    md5::Md5::digest(data)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// Polls `f` until it returns true or `timeout` passes.
pub fn eventually(timeout: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Runs the binary with `args` in `dir` and waits (bounded) for it to exit: (code, stdout+stderr).
pub fn run_to_exit(dir: &Path, args: &[&str], limit: Duration) -> (Option<i32>, String) {
    let out_path = dir.join("run.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new(BIN)
        .args(args)
        .current_dir(dir)
        .env_remove("GO_FASTDFS_DIR")
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("start fastdfs");
    let deadline = Instant::now() + limit;
    let code = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "fastdfs {args:?} did not exit within {limit:?}: {}",
                std::fs::read_to_string(&out_path).unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    (code, std::fs::read_to_string(&out_path).unwrap_or_default())
}

/// Reports a test that cannot run here (a tool is missing): printed, and recorded in the file
/// named by FASTDFS_SKIP_LOG so `scripts/test-all.sh` lists it as skipped, not passed (and
/// fails under CI, where every tool is installed).
pub fn skip(test: &str, why: &str) {
    eprintln!("SKIPPED: {test}: {why}");
    if let Ok(path) = std::env::var("FASTDFS_SKIP_LOG") {
        if let Ok(mut f) = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
        {
            let _ = writeln!(f, "{test}: {why}");
        }
    }
}

/// Address of test clients that are not admins (not 127.0.0.1, not a peer, not in admin_ips).
pub const NON_ADMIN_IP: &str = "127.0.0.77";

/// HTTP status of a GET of `url` sent by curl from `NON_ADMIN_IP`, with extra headers.
pub fn status_from_non_admin(url: &str, headers: &[&str]) -> u16 {
    status_from(NON_ADMIN_IP, url, headers)
}

/// HTTP status of a GET of `url` sent by curl from the local address `ip`, with extra headers.
pub fn status_from(ip: &str, url: &str, headers: &[&str]) -> u16 {
    let mut cmd = std::process::Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "--interface",
        ip,
        "-w",
        "%{http_code}",
    ]);
    for h in headers {
        cmd.arg("-H").arg(h);
    }
    let out = cmd.arg(url).output().expect("curl");
    String::from_utf8_lossy(&out.stdout)
        .parse()
        .expect("an HTTP status")
}

/// A GET of `url` sent by curl from the local address `ip`: (status, body).
pub fn get_from(ip: &str, url: &str) -> (u16, String) {
    let out = std::process::Command::new("curl")
        .args(["-s", "--interface", ip, "-w", "\n%{http_code}", url])
        .output()
        .expect("curl");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, code) = text.rsplit_once('\n').unwrap();
    (code.parse().unwrap(), body.to_string())
}

/// Creates `files/<rel>` in the server's runtime dir; returns the download path.
pub fn put_file(s: &Server, rel: &str, data: &[u8]) -> String {
    let p = s.dir.join("files").join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(&p, data).unwrap();
    format!("/group1/{rel}")
}

/// Deterministic pseudo-random bytes (xorshift), different for each `seed`.
pub fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Every regular file under `<dir>/files` (internal directories included), sorted.
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.join("files")];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// What a [`sink`] received: (request head, body) per call.
pub type Calls = std::sync::Arc<std::sync::Mutex<Vec<(String, String)>>>;

/// A small HTTP server on 127.0.0.1 for the servers' outgoing calls (auth_url, alarm_url):
/// each request (head and body by Content-Length) is recorded, then answered 200 with the
/// `(extra header lines, body)` that `answer` gives for its body. Runs until the test process
/// ends. Returns the URL of `path` on it and the recorded calls.
pub fn sink(
    path: &str,
    answer: impl Fn(&str) -> (String, String) + Send + 'static,
) -> (String, Calls) {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}{path}", listener.local_addr().unwrap());
    let calls: Calls = Default::default();
    let seen = calls.clone();
    std::thread::spawn(move || {
        for mut s in listener.incoming().flatten() {
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            let (head, body) = loop {
                let n = s.read(&mut chunk).unwrap_or(0);
                if n == 0 {
                    break (String::new(), String::new());
                }
                buf.extend_from_slice(&chunk[..n]);
                let text = String::from_utf8_lossy(&buf).into_owned();
                let Some(i) = text.find("\r\n\r\n") else {
                    continue;
                };
                let len: usize = text[..i]
                    .lines()
                    .find_map(|l| {
                        l.to_ascii_lowercase()
                            .strip_prefix("content-length:")
                            .map(|v| v.trim().parse().unwrap())
                    })
                    .unwrap_or(0);
                if buf.len() >= i + 4 + len {
                    break (text[..i].to_string(), text[i + 4..i + 4 + len].to_string());
                }
            };
            let (extra, reply) = answer(&body);
            seen.lock().unwrap().push((head, body));
            let _ = write!(
                s,
                "HTTP/1.1 200 OK\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (url, calls)
}

/// Whether the filesystem under `dir` keeps user extended attributes.
pub fn user_attributes_work(dir: &Path) -> bool {
    let probe = dir.join("xattr-probe");
    std::fs::write(&probe, b"").unwrap();
    let ok = fastdfs::sys::set_xattr(&probe, c"user.probe", b"x").is_ok();
    std::fs::remove_file(&probe).unwrap();
    ok
}
