//! The reference go-fastdfs binary as a test peer: env GO_FASTDFS_BIN (default
//! /work/shared/go-fastdfs/fileserver), started in its own temp dir on 127.0.0.20.
use super::*;
use serde_json::{json, Value};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const GO_IP: &str = "127.0.0.20";

pub fn go_bin() -> Option<PathBuf> {
    let p = std::env::var("GO_FASTDFS_BIN")
        .unwrap_or_else(|_| "/work/shared/go-fastdfs/fileserver".into());
    let p = PathBuf::from(p);
    if p.is_file() {
        Some(p)
    } else {
        super::skip(
            "go-fastdfs tests",
            &format!(
                "reference binary {} not found (GO_FASTDFS_BIN)",
                p.display()
            ),
        );
        None
    }
}

/// A go-fastdfs node in its own temp dir, killed by PID on drop.
pub struct GoNode {
    pub dir: tempfile::TempDir,
    pub child: Option<Child>,
    pub ip: String,
    pub port: u16,
}

impl GoNode {
    pub fn spawn_in(dir: &std::path::Path, log: &str) -> Child {
        let out = std::fs::File::create(dir.join(log)).unwrap();
        Command::new("./fileserver")
            .arg("server")
            .current_dir(dir)
            .env_remove("GO_FASTDFS_DIR")
            .env_remove("GO_FASTDFS_PEERS")
            .stdin(Stdio::null())
            .stdout(out.try_clone().unwrap())
            .stderr(out)
            .spawn()
            .expect("start go-fastdfs")
    }

    pub fn start(bin: &std::path::Path) -> GoNode {
        let port = free_port(GO_IP);
        GoNode::start_at(bin, GO_IP, port, &[])
    }

    /// A node on `ip:port` with `peers` (base URLs), e.g. as a member of a mixed cluster.
    pub fn start_at(bin: &std::path::Path, ip: &str, port: u16, peers: &[String]) -> GoNode {
        GoNode::start_configured(bin, ip, port, peers, &json!({}))
    }

    /// A node whose generated cfg.json also gets the keys of `overrides`.
    pub fn start_configured(
        bin: &std::path::Path,
        ip: &str,
        port: u16,
        peers: &[String],
        overrides: &Value,
    ) -> GoNode {
        let dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(bin, dir.path().join("fileserver")).unwrap();
        // First start: let it generate conf/cfg.json, then stop it.
        let mut first = GoNode::spawn_in(dir.path(), "first.log");
        let conf = dir.path().join("conf/cfg.json");
        let generated = eventually(Duration::from_secs(20), || {
            std::fs::read_to_string(&conf).is_ok_and(|t| serde_json::from_str::<Value>(&t).is_ok())
        });
        unsafe { libc::kill(first.id() as i32, libc::SIGKILL) };
        let _ = first.wait();
        assert!(generated, "go-fastdfs wrote no conf/cfg.json");
        let mut cfg: Value =
            serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
        cfg["addr"] = json!(format!("{ip}:{port}"));
        cfg["host"] = json!(format!("http://{ip}:{port}"));
        cfg["peer_id"] = json!("1");
        cfg["peers"] = json!(peers);
        cfg["download_domain"] = json!("");
        if let Value::Object(o) = overrides {
            for (k, v) in o {
                cfg[k] = v.clone();
            }
        }
        std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
        let child = GoNode::spawn_in(dir.path(), "server.log");
        let mut node = GoNode {
            dir,
            child: Some(child),
            ip: ip.to_string(),
            port,
        };
        node.wait_ready();
        node
    }

    pub fn wait_ready(&mut self) {
        let addr: SocketAddr = format!("{}:{}", self.ip, self.port).parse().unwrap();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Some(Ok(Some(st))) = self.child.as_mut().map(|c| c.try_wait()) {
                panic!("go-fastdfs exited with {st}: {}", self.log());
            }
            if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("go-fastdfs did not listen within 20 s: {}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    pub fn base(&self) -> String {
        format!("http://{}:{}", self.ip, self.port)
    }
}

impl GoNode {
    /// Stops the node (SIGKILL: go-fastdfs installs no signal handler) and keeps its dir.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

impl Drop for GoNode {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

/// A go-fastdfs node and a fastdfs-rs node under comparison (differential tests), plus what
/// is needed to normalize their answers.
pub struct Pair {
    pub go: GoNode,
    pub rs: Server,
    /// When the pair started (Unix seconds): upload minutes and mtimes are after it.
    pub started: i64,
}

impl Pair {
    pub fn start() -> Option<Pair> {
        let bin = go_bin()?;
        let started = now();
        let go = GoNode::start(&bin);
        let rs = Server::start(json!({}));
        Some(Pair { go, rs, started })
    }

    /// Both nodes with the same configuration: go-fastdfs' generated cfg.json with the test
    /// servers' base config and `overrides` on top (go-fastdfs ignores the keys it does not
    /// know), and fastdfs-rs with that same file but its own address.
    pub fn start_same(overrides: Value) -> Option<Pair> {
        let bin = go_bin()?;
        let started = now();
        let port = free_port(GO_IP);
        let go_cfg = base_config(GO_IP, port, &overrides);
        let go = GoNode::start_configured(&bin, GO_IP, port, &[], &go_cfg);
        let text = std::fs::read_to_string(go.dir.path().join("conf/cfg.json")).unwrap();
        let mut cfg: Value = serde_json::from_str(&text).unwrap();
        let o = cfg.as_object_mut().unwrap();
        o.remove("addr");
        o.remove("host");
        let rs = Server::start(cfg);
        Some(Pair { go, rs, started })
    }

    /// Replaces the base URL, today's upload minute (which must be a local time since the
    /// pair started) and the given mtime by placeholders.
    pub fn norm(&self, base: &str, text: &str, mtime: Option<i64>) -> String {
        let mut t = text.replace(base, "<DOMAIN>");
        let mut s = self.started;
        let end = now();
        while s <= end + 60 {
            let st = local_stamp(s.min(end));
            t = t.replace(&format!("/{st}/"), "/<STAMP>/");
            s += 30;
        }
        if let Some(m) = mtime {
            t = t.replace(&m.to_string(), "<MTIME>");
        }
        t
    }

    pub fn check_mtime(&self, v: &Value) -> i64 {
        let m = v.as_i64().unwrap_or_else(|| panic!("mtime {v}"));
        assert!(self.started <= m && m <= now(), "mtime {m} is not now");
        m
    }
}
