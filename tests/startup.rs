//! The process life cycle that operators see: `version`, a first start (runtime layout and a
//! busy port), a broken or unknown configuration, a refused io_uring (Docker 25+ seccomp) that
//! stops the server at once with the reason and the fix, and a second server on the same
//! directory or port; and what a hung start would report.
mod common;
use common::{eventually, free_port, run_to_exit, threads_report, upload_json, Server};
use serde_json::{json, Value};
use std::process::Command;
use std::time::{Duration, Instant};

/// Builds tests/support/noring.c: runs a program with io_uring_setup refused (EPERM).
fn noring() -> Option<std::path::PathBuf> {
    let out = std::env::temp_dir().join(format!("fastdfs-noring-{}", std::process::id()));
    let src = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/noring.c");
    let ok = Command::new("cc")
        .args(["-O1", "-o"])
        .arg(&out)
        .arg(src)
        .status()
        .map(|s| s.success());
    match ok {
        Ok(true) => Some(out),
        _ => {
            common::skip("seccomp launcher", "no C compiler to build it");
            None
        }
    }
}

#[test]
fn io_uring_blocked_by_seccomp_exits_at_once_with_the_fix() {
    let Some(launcher) = noring() else { return };
    let dir = tempfile::tempdir().unwrap();
    let started = Instant::now();
    let out = Command::new(&launcher)
        .arg(common::BIN)
        .arg("server")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let _ = std::fs::remove_file(&launcher);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "must exit at once"
    );
    assert!(stderr.contains("io_uring is blocked"), "{stderr}");
    assert!(
        stderr.contains("seccomp") && stderr.contains("io_uring_setup"),
        "{stderr}"
    );
}

#[test]
fn version_prints_four_lines_like_go_fastdfs() {
    let out = Command::new(common::BIN).arg("version").output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.starts_with("Version   : fastdfs-rs"), "{text}");
    assert_eq!(text.lines().count(), 4, "{text}");
    // The real commit (when built from a checkout) and a UTC build time.
    let line = |k: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(k))
            .map(|v| v.trim().to_string())
            .unwrap_or_default()
    };
    let head = Command::new("git")
        .args(["rev-parse", "--short=12", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output();
    if let Some(h) = head.ok().filter(|h| h.status.success()) {
        let head = String::from_utf8_lossy(&h.stdout).trim().to_string();
        assert_eq!(line("GIT_COMMIT:"), head, "{text}");
    }
    let built = line("BUILD_TIME:");
    assert!(
        built.len() == 20 && built.starts_with("20") && built.ends_with('Z'),
        "{text}"
    );
}

#[test]
fn sighup_reopens_the_log_file_after_logrotate_renamed_it_and_no_log_has_colour_codes() {
    let s = Server::start(json!({}));
    let log = s.dir.join("log/fileserver.log");
    assert!(eventually(Duration::from_secs(5), || log.exists()));
    let rotated = s.dir.join("log/fileserver.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let pid = s.child.as_ref().unwrap().id().to_string();
    assert!(Command::new("kill")
        .args(["-HUP", &pid])
        .status()
        .unwrap()
        .success());
    let reopened = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("log file reopened")
    });
    assert!(reopened, "no new log at {}", log.display());
    let old = std::fs::read_to_string(&rotated).unwrap();
    assert!(!old.contains("log file reopened"), "{old}");
    // stderr goes to a file here (as under systemd): plain text, like the log file.
    for text in [s.stderr(), old, std::fs::read_to_string(&log).unwrap()] {
        assert!(!text.contains('\u{1b}'), "ANSI escape in a log: {text:?}");
    }
    let r = upload_json(&s, "after.txt", b"still serving");
    assert_eq!(r["size"], 13);
}

#[test]
fn a_second_server_in_the_same_runtime_dir_refuses_to_start() {
    let first = common::Server::start(serde_json::json!({}));
    let out = Command::new(common::BIN)
        .arg("server")
        .current_dir(&first.dir)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another fastdfs server is running"),
        "{stderr}"
    );
    // The first one is untouched and still serves, and its log is its own.
    let (code, _) = common::call(common::agent().get(&first.url("/group1/status")));
    assert_eq!(code, 200);
    let log = std::fs::read_to_string(first.dir.join("log/fileserver.log")).unwrap();
    assert!(!log.contains("another fastdfs server"), "{log}");
}

#[test]
fn a_second_server_on_the_same_port_refuses_to_start_instead_of_sharing_it() {
    // SO_REUSEPORT would let two servers split one port's connections silently.
    let first = common::Server::start(serde_json::json!({}));
    let other = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(other.path().join("conf")).unwrap();
    let cfg = common::base_config("127.0.0.1", first.port, &serde_json::json!({}));
    std::fs::write(other.path().join("conf/cfg.json"), cfg.to_string()).unwrap();
    let out = Command::new(common::BIN)
        .arg("server")
        .current_dir(other.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot listen") && stderr.contains("in use"),
        "{stderr}"
    );
}

#[test]
fn a_first_start_writes_the_runtime_layout_and_a_busy_port_exits_1_with_a_clear_message() {
    // Hold :8080 (the generated addr) so the outcome does not depend on who else uses it.
    let _hold = std::net::TcpListener::bind("0.0.0.0:8080");
    let d = tempfile::tempdir().unwrap();
    let dir = d.path().join("fresh");
    std::fs::create_dir(&dir).unwrap();
    let (code, out) = run_to_exit(&dir, &["server"], Duration::from_secs(20));
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("8080") && out.to_lowercase().contains("address already in use"),
        "{out}"
    );
    for p in ["conf/cfg.json", "files", "data", "log"] {
        assert!(dir.join(p).exists(), "{p} missing after first start");
    }
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("conf/cfg.json")).unwrap()).unwrap();
    assert_eq!(cfg["addr"], ":8080");
    assert_eq!(cfg["group"], "group1");
    assert!(
        cfg["admin_key"].as_str().is_some_and(|k| k.len() == 36),
        "{cfg}"
    );
}

#[test]
fn a_cfg_json_syntax_error_exits_1_and_names_the_line() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("conf")).unwrap();
    let port = free_port("127.0.0.1");
    let text = format!("{{\n  \"addr\": \"127.0.0.1:{port}\",\n  \"peer_id\" \"1\",\n  \"group\": \"group1\"\n}}\n");
    std::fs::write(d.path().join("conf/cfg.json"), text).unwrap();
    let (code, out) = run_to_exit(d.path(), &["server"], Duration::from_secs(20));
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("line 3"), "{out}");
}

#[test]
fn a_runtime_path_that_is_a_file_instead_of_a_directory_exits_1_and_names_it() {
    let d = tempfile::tempdir().unwrap();
    std::fs::create_dir(d.path().join("conf")).unwrap();
    let port = free_port("127.0.0.1");
    let cfg = json!({"addr": format!("127.0.0.1:{port}"), "peers": []});
    std::fs::write(d.path().join("conf/cfg.json"), cfg.to_string()).unwrap();
    std::fs::write(d.path().join("static"), b"not a directory").unwrap();
    let (code, out) = run_to_exit(d.path(), &["server"], Duration::from_secs(20));
    assert_eq!(code, Some(1), "{out}");
    // The runtime dir is the working directory: the path is relative to it.
    assert!(out.contains("cannot create directory ./static: "), "{out}");
}

#[test]
fn an_unknown_cfg_key_is_logged_as_a_warning_and_the_server_starts() {
    let s = Server::start(json!({"bogus_setting_xyz": 42}));
    let r = upload_json(&s, "w.txt", b"warned");
    assert_eq!(r["size"], 6);
    let log = s.dir.join("log/fileserver.log");
    let warned = eventually(Duration::from_secs(5), || {
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .any(|l| l.contains("WARN") && l.contains("bogus_setting_xyz"))
    });
    assert!(
        warned,
        "no warning in {}: {}",
        log.display(),
        std::fs::read_to_string(&log).unwrap_or_default()
    );
}

#[test]
fn a_start_that_hangs_would_be_reported_with_what_each_server_thread_is_doing() {
    let s = Server::start(json!({}));
    let pid = s.child.as_ref().unwrap().id();
    let report = threads_report(pid);
    // The executor threads are named after the pool; each line names a state.
    assert!(report.contains("fastdfs-"), "{report}");
    assert!(report.contains("State:"), "{report}");
    assert!(threads_report(u32::MAX).contains("(gone)"));
}

/// go-fastdfs' access log: one line per request in `log/access.log`,
/// `[Access] YYYY/MM/DD - HH:MM:SS | <duration> | <client ip> | <method> | <status> | <target>`;
/// a burst bigger than one flush loses no line.
#[test]
fn every_request_is_one_line_of_the_access_log() {
    let s = Server::start(json!({}));
    let agent = common::agent();
    let n = 1_500;
    let pad = "p".repeat(200);
    for i in 0..n {
        let url = s.url(&format!("/group1/no/such/file.bin?i={i}&pad={pad}"));
        let status = match agent.get(&url).call() {
            Ok(r) => r.status(),
            Err(ureq::Error::Status(code, _)) => code,
            Err(e) => panic!("{e}"),
        };
        assert_eq!(status, 404);
    }
    let path = s.dir.join("log/access.log");
    let ours = || -> Vec<String> {
        std::fs::read_to_string(&path)
            .unwrap_or_default()
            .lines()
            .filter(|l| l.contains(&pad))
            .map(str::to_string)
            .collect()
    };
    assert!(
        eventually(Duration::from_secs(10), || ours().len() == n),
        "{} of {n} lines",
        ours().len()
    );
    for (i, line) in ours().iter().enumerate() {
        let f: Vec<&str> = line.split(" | ").collect();
        assert_eq!(f.len(), 6, "{line}");
        let stamp = f[0].strip_prefix("[Access] ").expect(line);
        let b = stamp.as_bytes();
        assert!(
            stamp.len() == 21
                && b[4] == b'/'
                && b[7] == b'/'
                && &stamp[10..13] == " - "
                && b[15] == b':'
                && b[18] == b':',
            "{line}"
        );
        assert!(
            f[1].ends_with("µs") || f[1].ends_with("ms") || f[1].ends_with('s'),
            "{line}"
        );
        assert_eq!(&f[2..5], ["127.0.0.1", "GET", "404"], "{line}");
        assert_eq!(
            f[5],
            format!("/group1/no/such/file.bin?i={i}&pad={pad}"),
            "in request order"
        );
    }
}

#[test]
fn a_fresh_node_that_serves_an_upload_logs_no_error() {
    // An operator reads ERROR as a fault: a normal first upload (large enough for direct I/O,
    // where glommio probes the disk) must not print one.
    let s = common::Server::start(serde_json::json!({}));
    let data = common::noise(3 << 20, 5);
    let r = common::upload_json(&s, "first.bin", &data);
    assert_eq!(r["md5"], common::md5_hex(&data));
    let (code, _) = common::call(common::agent().get(&s.url(r["path"].as_str().unwrap())));
    assert_eq!(code, 200);
    let log = std::fs::read_to_string(s.dir.join("log/fileserver.log")).unwrap();
    let errors: Vec<&str> = log.lines().filter(|l| l.contains(" ERROR ")).collect();
    assert!(errors.is_empty(), "{errors:#?}");
}
