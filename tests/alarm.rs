//! Self-monitoring alarms (docs/CONFIG.md §alarms): a peer that is down, changes waiting for
//! it too long and a full disk are told by mail through a real SMTP server (aiosmtpd, AUTH
//! required) and by a POST to alarm_url with the real subject and message (go-fastdfs posted an
//! empty form, docs/DEFECTS.md #24); a standing alarm is not repeated before
//! alarm_repeat_seconds, and its end is told once the peer is back.
mod common;
use common::cluster::{write_config, Addresses};
use common::*;
use serde_json::json;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// The SMTP sink process, killed on drop.
struct Sink {
    child: Child,
    dir: PathBuf,
}

impl Drop for Sink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sink {
    fn start(port: u16, dir: &Path) -> Option<Sink> {
        let ok = Command::new("python3")
            .args(["-c", "import aiosmtpd"])
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip(
                "alarm mail test",
                "python3 module aiosmtpd missing (pip install aiosmtpd)",
            );
            return None;
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtp_sink.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir)
            .args(["alarm@example.com", "s3cret"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(line.trim(), "ready");
        Some(Sink {
            child,
            dir: dir.to_path_buf(),
        })
    }

    /// Every message received so far.
    fn mails(&self) -> Vec<String> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }

    fn with_subject(&self, start: &str) -> Vec<String> {
        self.mails()
            .into_iter()
            .filter(|m| {
                m.lines()
                    .any(|l| l.starts_with(&format!("Subject: {start}")))
            })
            .collect()
    }
}

/// The form fields of an urlencoded body, decoded.
fn form(body: &str) -> Vec<(String, String)> {
    body.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| {
            let v = v.replace('+', " ");
            let v = percent_decode(&v);
            (k.to_string(), v)
        })
        .collect()
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' && i + 2 < b.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[test]
fn a_down_peer_a_late_queue_and_a_full_disk_are_mailed_and_posted_once_and_recovery_too() {
    let tmp = tempfile::tempdir().unwrap();
    let smtp_port = free_port("127.0.0.1");
    let Some(mail) = Sink::start(smtp_port, &tmp.path().join("mail")) else {
        return;
    };
    let (alarm_url, posts) = common::sink("/alarm", |_| (String::new(), "ok".into()));
    let addrs = Addresses::pick(17, 2);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    let alarms = json!({
        "mail": {"user": "alarm@example.com", "password": "s3cret", "host": format!("127.0.0.1:{smtp_port}")},
        "alarm_receivers": ["ops@example.com; dev@example.com"],
        "alarm_url": alarm_url,
        "status_check_interval": 1,
        "alarm_sync_lag_seconds": 2,
        "alarm_disk_used_percent": 1,
        "alarm_repeat_seconds": 3600,
    });
    for (i, dir) in dirs.iter().enumerate() {
        let mut o = alarms.clone();
        o["peers"] = json!([addrs.bases[1 - i]]);
        o["peer_id"] = json!(format!("{}", i + 1));
        write_config(dir.path(), &addrs.ips[i], addrs.ports[i], &o);
    }
    let a = Server::start_in(dirs[0].path(), &addrs.ips[0], json!({}));
    let peer = addrs.bases[1].clone();
    upload_json(&a, "queued.txt", b"waits for the peer");
    let down = format!("fastdfs alarm: peer {peer} is down");
    let late = format!("fastdfs alarm: replication to {peer} is");
    let told = eventually(Duration::from_secs(30), || {
        !mail.with_subject(&down).is_empty()
            && !mail.with_subject(&late).is_empty()
            && !mail.with_subject("fastdfs alarm: disk of").is_empty()
    });
    assert!(told, "mails: {:?}\n{}", mail.mails(), a.stderr());
    let first = &mail.with_subject(&down)[0];
    assert!(
        first.contains("X-Envelope-To: ops@example.com,dev@example.com"),
        "{first}"
    );
    assert!(first.contains("X-Authenticated: True"), "{first}");
    assert!(first.contains("From: <alarm@example.com>"), "{first}");
    assert!(
        first.contains("Content-Type: text/plain; charset=UTF-8"),
        "{first}"
    );
    assert!(first.contains("fastdfs server error"), "{first}");
    assert!(first.contains(&format!("server:{peer}")), "{first}");
    // alarm_url got the same subject and message (never an empty form).
    let posted: Vec<String> = posts
        .lock()
        .unwrap()
        .iter()
        .map(|(_, b)| b.clone())
        .collect();
    let down_post = posted
        .iter()
        .map(|b| form(b))
        .find(|f| f.iter().any(|(k, v)| k == "subject" && v == &down))
        .unwrap_or_else(|| panic!("no alarm_url post for {down}: {posted:?}"));
    let message = &down_post.iter().find(|(k, _)| k == "message").unwrap().1;
    assert!(message.contains(&format!("server:{peer}")), "{message}");
    // A standing alarm is not repeated before alarm_repeat_seconds.
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(mail.with_subject(&down).len(), 1, "{:?}", mail.mails());
    // The peer comes up: the queue drains and both ends are told.
    let _b = Server::start_in(dirs[1].path(), &addrs.ips[1], json!({}));
    let recovered = eventually(Duration::from_secs(30), || {
        !mail
            .with_subject(&format!("fastdfs recovered: peer {peer} is down"))
            .is_empty()
            && !mail
                .with_subject(&format!("fastdfs recovered: replication to {peer}"))
                .is_empty()
    });
    assert!(recovered, "mails: {:?}", mail.mails());
    assert_eq!(mail.with_subject(&down).len(), 1);
}

#[test]
fn an_alarm_url_and_a_shorter_interval_set_by_reload_count_at_once() {
    let (alarm_url, posts) = common::sink("/alarm", |_| (String::new(), "ok".into()));
    let dead = format!("http://127.0.0.1:{}", free_port("127.0.0.1"));
    let s = Server::start(json!({"peers": [dead], "status_check_interval": 600}));
    let conf = s.dir.join("conf/cfg.json");
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    cfg["alarm_url"] = json!(alarm_url);
    cfg["status_check_interval"] = json!(1);
    let set_form = format!(
        "key=test-admin-key&action=set&cfg={}",
        urlencode(&cfg.to_string())
    );
    let set = agent()
        .post(&s.url("/group1/reload"))
        .set("Content-Type", "application/x-www-form-urlencoded")
        .send_string(&set_form);
    assert!(set.is_ok(), "{set:?}");
    let (code, body) = call(agent().get(&s.url("/group1/reload?key=test-admin-key&action=reload")));
    assert_eq!(code, 200, "{body}");
    // Not the old interval's ten minutes: a few checks of the new one.
    let down = format!("fastdfs alarm: peer {dead} is down");
    let told = eventually(Duration::from_secs(15), || {
        posts
            .lock()
            .unwrap()
            .iter()
            .any(|(_, b)| form(b).iter().any(|(k, v)| k == "subject" && v == &down))
    });
    assert!(told, "posts: {:?}\n{}", posts.lock().unwrap(), s.stderr());
}
