//! Self-monitoring alarms: every `status_check_interval` seconds (executor 0) the conditions
//! are evaluated (a peer down, the files' filesystem over `alarm_disk_used_percent` in space or
//! inodes, a change waiting for a peer longer than `alarm_sync_lag_seconds`); a condition that
//! starts is announced at once, one that stays is repeated at most every `alarm_repeat_seconds`,
//! one that ends gets a recovery message. Each notice goes by mail (`mail` + `alarm_receivers`,
//! plain SMTP with AUTH PLAIN when a user is set) and to `alarm_url` (a POST form with the real
//! `subject` and `message`, unlike go-fastdfs whose form was empty, docs/DEFECTS.md #24-25).
//!
//! The rules (`Conditions`, `Alarms::step`) are plain functions of what was measured, so unit
//! tests reach them; `duty` measures and delivers.

use crate::config::{Config, Mail};
use crate::worker::Worker;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::net::TcpStream;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// Network timeout of one delivery (SMTP step, alarm_url POST).
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(10);
/// Notices sent per check at most (many peers going down at once make one burst, not a flood).
const NOTICES_PER_CHECK_MAX: usize = 20;

/// A condition that holds now: a stable key (what it is about) and what to tell.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Condition {
    pub key: String,
    pub summary: String,
    pub detail: String,
}

/// What was measured at one check.
#[derive(Debug, Default, Clone)]
pub struct Measured {
    /// Each peer and whether it answered its last status check (None: not checked yet).
    pub peers: Vec<(String, Option<bool>)>,
    pub disk: Option<crate::sys::DiskUsage>,
    /// Each peer and the age in seconds of the oldest change waiting for it.
    pub lags: Vec<(String, Option<u64>)>,
}

/// The conditions that hold given `m` and the thresholds of `cfg`.
pub fn conditions(cfg: &Config, m: &Measured) -> Vec<Condition> {
    let mut out = Vec::new();
    for (peer, up) in &m.peers {
        if *up == Some(false) {
            out.push(Condition {
                key: format!("peer-down {peer}"),
                summary: format!("peer {peer} is down"),
                detail: format!("server:{peer}\nerror:\nits /status did not answer ok"),
            });
        }
    }
    if let (Some(d), limit) = (&m.disk, cfg.alarm_disk_used_percent) {
        if limit > 0 {
            let limit = limit as f64;
            if d.used_percent >= limit || d.inodes_used_percent >= limit {
                out.push(Condition {
                    key: "disk".into(),
                    summary: format!("disk of {} is {:.0}% full", d.path, d.used_percent.max(d.inodes_used_percent)),
                    detail: format!(
                        "filesystem of {}: {:.1}% of space used ({} of {} bytes free), {:.1}% of inodes used; alarm at {limit}%",
                        d.path, d.used_percent, d.free, d.total, d.inodes_used_percent
                    ),
                });
            }
        }
    }
    let lag_max = cfg.alarm_sync_lag_seconds;
    for (peer, age) in &m.lags {
        if let Some(age) = age.filter(|a| lag_max > 0 && *a >= lag_max) {
            out.push(Condition {
                key: format!("sync-lag {peer}"),
                summary: format!("replication to {peer} is {age} s behind"),
                detail: format!(
                    "server:{peer}\nthe oldest change queued for it waits since {age} s (alarm at {lag_max} s)"
                ),
            });
        }
    }
    out
}

/// One message to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    pub subject: String,
    pub body: String,
}

/// Standing alarms: what is active and when it was last told.
#[derive(Debug, Default)]
pub struct Alarms {
    active: BTreeMap<String, (Condition, Instant)>,
}

impl Alarms {
    /// The notices due now, given the conditions that hold: new ones, repeats of standing ones
    /// older than `repeat`, recoveries of those that ended.
    pub fn step(
        &mut self,
        host: &str,
        now_holding: Vec<Condition>,
        now: Instant,
        repeat: Duration,
    ) -> Vec<Notice> {
        let mut out = Vec::new();
        let holding: BTreeMap<String, Condition> = now_holding
            .into_iter()
            .map(|c| (c.key.clone(), c))
            .collect();
        let ended: Vec<String> = self
            .active
            .keys()
            .filter(|k| !holding.contains_key(*k))
            .cloned()
            .collect();
        for key in ended {
            let (c, _) = self.active.remove(&key).expect("listed above");
            out.push(Notice {
                subject: format!("fastdfs recovered: {}", c.summary),
                body: format!(
                    "fastdfs server recovered\nserver:{host}\n{} no longer holds\n",
                    c.summary
                ),
            });
        }
        for (key, c) in holding {
            let due = match self.active.get(&key) {
                None => true,
                Some((_, last)) => now.duration_since(*last) >= repeat,
            };
            if due {
                out.push(Notice {
                    subject: format!("fastdfs alarm: {}", c.summary),
                    body: format!("fastdfs server error\nserver:{host}\n{}\n", c.detail),
                });
                self.active.insert(key, (c, now));
            } else if let Some(entry) = self.active.get_mut(&key) {
                entry.0 = c;
            }
        }
        out
    }
}

// ---------- delivery ----------

/// Reads one SMTP reply (multi-line replies continue with `NNN-`); Ok(code).
fn smtp_reply(r: &mut impl BufRead) -> io::Result<u16> {
    loop {
        let mut line = String::new();
        if r.read_line(&mut line)? == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "SMTP server closed",
            ));
        }
        let code: u16 = line
            .get(..3)
            .and_then(|c| c.parse().ok())
            .ok_or_else(|| io::Error::other(format!("bad SMTP reply {line:?}")))?;
        if line.as_bytes().get(3) != Some(&b'-') {
            return Ok(code);
        }
    }
}

fn smtp_step(
    w: &mut impl Write,
    r: &mut impl BufRead,
    line: &str,
    want: impl Fn(u16) -> bool,
) -> io::Result<()> {
    w.write_all(line.as_bytes())?;
    w.write_all(b"\r\n")?;
    w.flush()?;
    let code = smtp_reply(r)?;
    if want(code) {
        Ok(())
    } else {
        let shown = if line.starts_with("AUTH") {
            "AUTH PLAIN ..."
        } else {
            line
        };
        Err(io::Error::other(format!("SMTP {shown}: answered {code}")))
    }
}

/// A header value without line breaks (no header injection from a peer URL or path).
fn one_line(s: &str) -> String {
    s.chars()
        .map(|c| if c == '\r' || c == '\n' { ' ' } else { c })
        .collect()
}

/// Sends one mail through `mail.host` (blocking; plain SMTP, AUTH PLAIN when a user is set).
pub fn send_mail(mail: &Mail, to: &[String], n: &Notice) -> io::Result<()> {
    use base64::Engine;
    use std::net::ToSocketAddrs;
    let addr = mail
        .host
        .to_socket_addrs()?
        .next()
        .ok_or_else(|| io::Error::other(format!("{} has no address", mail.host)))?;
    let stream = TcpStream::connect_timeout(&addr, DELIVERY_TIMEOUT)?;
    stream.set_read_timeout(Some(DELIVERY_TIMEOUT))?;
    stream.set_write_timeout(Some(DELIVERY_TIMEOUT))?;
    let mut r = BufReader::new(stream.try_clone()?);
    let mut w = stream;
    let ok2 = |c: u16| (200..300).contains(&c);
    if !ok2(smtp_reply(&mut r)?) {
        return Err(io::Error::other("SMTP greeting refused"));
    }
    let me = crate::config::local_ip();
    smtp_step(&mut w, &mut r, &format!("EHLO [{me}]"), ok2)?;
    if !mail.user.is_empty() {
        let token = base64::engine::general_purpose::STANDARD
            .encode(format!("\0{}\0{}", mail.user, mail.password));
        smtp_step(&mut w, &mut r, &format!("AUTH PLAIN {token}"), |c| c == 235)?;
    }
    let from = if mail.user.contains('@') {
        mail.user.clone()
    } else {
        format!("fastdfs@{me}")
    };
    smtp_step(
        &mut w,
        &mut r,
        &format!("MAIL FROM:<{}>", one_line(&from)),
        ok2,
    )?;
    for rcpt in to {
        smtp_step(
            &mut w,
            &mut r,
            &format!("RCPT TO:<{}>", one_line(rcpt)),
            ok2,
        )?;
    }
    smtp_step(&mut w, &mut r, "DATA", |c| c == 354)?;
    let mut msg = String::new();
    msg.push_str(&format!("From: <{}>\r\n", one_line(&from)));
    msg.push_str(&format!(
        "To: {}\r\n",
        to.iter()
            .map(|t| format!("<{}>", one_line(t)))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    msg.push_str(&format!("Subject: {}\r\n", one_line(&n.subject)));
    msg.push_str(&format!("Date: {}\r\n", chrono::Local::now().to_rfc2822()));
    msg.push_str("MIME-Version: 1.0\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\n");
    for line in n.body.lines() {
        // Dot-stuffing (RFC 5321 4.5.2).
        if line.starts_with('.') {
            msg.push('.');
        }
        msg.push_str(line);
        msg.push_str("\r\n");
    }
    w.write_all(msg.as_bytes())?;
    smtp_step(&mut w, &mut r, ".", ok2)?;
    let _ = smtp_step(&mut w, &mut r, "QUIT", |_| true);
    Ok(())
}

/// The recipients: `alarm_receivers`, each also split at `;` as go-fastdfs does.
pub fn receivers(cfg: &Config) -> Vec<String> {
    cfg.alarm_receivers
        .iter()
        .flat_map(|r| r.split(';'))
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_string)
        .collect()
}

async fn deliver(w: &Worker, n: Notice) {
    let cfg = w.config();
    let to = receivers(&cfg);
    if !to.is_empty() && !cfg.mail.host.is_empty() {
        let (mail, notice) = (cfg.mail.clone(), n.clone());
        let sent = glommio::executor()
            .spawn_blocking(move || send_mail(&mail, &to, &notice))
            .await;
        match sent {
            Ok(()) => tracing::info!(subject = %n.subject, "alarm mailed"),
            Err(e) => tracing::warn!(subject = %n.subject, cause = %e, "alarm mail not sent"),
        }
    }
    if !cfg.alarm_url.is_empty() {
        let form = vec![
            ("subject".to_string(), n.subject.clone()),
            ("message".to_string(), n.body.clone()),
        ];
        let posted = w
            .sync
            .pool
            .post_form_url(&cfg.alarm_url, &[], &form, DELIVERY_TIMEOUT, 64 << 10)
            .await;
        match posted {
            Ok(r) if (200..300).contains(&r.status) => {
                tracing::info!(subject = %n.subject, "alarm posted")
            }
            Ok(r) => {
                tracing::warn!(subject = %n.subject, status = r.status, "alarm_url refused the alarm")
            }
            Err(e) => tracing::warn!(subject = %n.subject, cause = %e, "alarm_url unreachable"),
        }
    }
}

async fn measure(w: &Worker) -> Measured {
    let cfg = w.config();
    let peers: Vec<(String, Option<bool>)> = cfg
        .peers
        .iter()
        .map(|p| (p.clone(), w.shared.peer_health.get(p)))
        .collect();
    let (meta, files, list) = (
        w.shared.meta.clone(),
        w.dir().join("files"),
        cfg.peers.clone(),
    );
    glommio::executor()
        .spawn_blocking(move || {
            let now_ms = chrono::Utc::now().timestamp_millis();
            let lags = list
                .into_iter()
                .map(|p| {
                    let age = meta
                        .outbox_depth(&p)
                        .ok()
                        .and_then(|(_, oldest)| oldest)
                        .map(|at| (now_ms - at).max(0) as u64 / 1000);
                    (p, age)
                })
                .collect();
            Measured {
                peers,
                disk: crate::sys::disk_usage(&files),
                lags,
            }
        })
        .await
}

/// The alarm duty (executor 0).
pub async fn duty(w: Rc<Worker>) {
    let mut alarms = Alarms::default();
    let mut last = Instant::now();
    while !w.shutting_down() {
        glommio::timer::sleep(Duration::from_millis(500)).await;
        // The interval as configured now: a reload that shortens it counts at once.
        let cfg = w.config();
        if last.elapsed() < Duration::from_secs(cfg.status_check_interval.max(1)) {
            continue;
        }
        last = Instant::now();
        if receivers(&cfg).is_empty() && cfg.alarm_url.is_empty() {
            continue;
        }
        let m = measure(&w).await;
        let holding = conditions(&cfg, &m);
        let repeat = Duration::from_secs(cfg.alarm_repeat_seconds);
        let notices = alarms.step(&cfg.host, holding, Instant::now(), repeat);
        for n in notices.into_iter().take(NOTICES_PER_CHECK_MAX) {
            deliver(&w, n).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> Config {
        let text =
            r#"{"addr": ":8080", "alarm_disk_used_percent": 90, "alarm_sync_lag_seconds": 600}"#;
        crate::config::parse(std::path::Path::new("cfg.json"), text)
            .expect("a valid config")
            .0
    }

    fn disk(used: f64, inodes: f64) -> crate::sys::DiskUsage {
        crate::sys::DiskUsage {
            path: "/srv/files".into(),
            fstype: "xfs".into(),
            total: 100,
            free: 100 - used as u64,
            used: used as u64,
            used_percent: used,
            inodes_total: 100,
            inodes_used: inodes as u64,
            inodes_free: 100 - inodes as u64,
            inodes_used_percent: inodes,
        }
    }

    #[test]
    fn conditions_are_a_down_peer_a_full_disk_and_a_late_peer() {
        let m = Measured {
            peers: vec![
                ("http://a".into(), Some(false)),
                ("http://b".into(), Some(true)),
                ("http://c".into(), None),
            ],
            disk: Some(disk(50.0, 95.0)),
            lags: vec![
                ("http://a".into(), Some(601)),
                ("http://b".into(), Some(10)),
                ("http://c".into(), None),
            ],
        };
        let keys: Vec<String> = conditions(&cfg(), &m).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["peer-down http://a", "disk", "sync-lag http://a"]);
        let mut off = cfg();
        off.alarm_disk_used_percent = 0;
        off.alarm_sync_lag_seconds = 0;
        let keys: Vec<String> = conditions(&off, &m).into_iter().map(|c| c.key).collect();
        assert_eq!(keys, ["peer-down http://a"], "0 turns a threshold off");
    }

    #[test]
    fn an_alarm_is_told_once_repeated_after_the_interval_and_its_end_is_told() {
        let c = Condition {
            key: "disk".into(),
            summary: "disk full".into(),
            detail: "d".into(),
        };
        let mut a = Alarms::default();
        let t0 = Instant::now();
        let hour = Duration::from_secs(3600);
        let first = a.step("http://me", vec![c.clone()], t0, hour);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].subject, "fastdfs alarm: disk full");
        assert!(first[0]
            .body
            .starts_with("fastdfs server error\nserver:http://me\n"));
        assert!(a
            .step(
                "http://me",
                vec![c.clone()],
                t0 + Duration::from_secs(60),
                hour
            )
            .is_empty());
        assert_eq!(
            a.step("http://me", vec![c.clone()], t0 + hour, hour).len(),
            1,
            "repeated"
        );
        let end = a.step(
            "http://me",
            vec![],
            t0 + hour + Duration::from_secs(1),
            hour,
        );
        assert_eq!(end.len(), 1);
        assert_eq!(end[0].subject, "fastdfs recovered: disk full");
        assert!(a.step("http://me", vec![], t0 + hour * 2, hour).is_empty());
    }

    #[test]
    fn receivers_split_at_semicolons_and_header_values_stay_on_one_line() {
        let mut c = cfg();
        c.alarm_receivers = vec!["a@x; b@y".into(), "".into(), "c@z".into()];
        assert_eq!(receivers(&c), ["a@x", "b@y", "c@z"]);
        assert_eq!(one_line("a\r\nBcc: x"), "a  Bcc: x");
    }
}
