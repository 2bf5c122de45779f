//! Start-up behaviour that operators see: a refused io_uring (Docker 25+ seccomp) stops the
//! server at once with the reason and the fix, instead of hanging or crashing.
mod common;
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
    // The first one is untouched and still serves.
    let (code, _) = common::call(common::agent().get(&first.url("/group1/status")));
    assert_eq!(code, 200);
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
