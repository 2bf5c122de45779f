//! go-fastdfs' own black-box test `Test_main` (server/fileserver_test.go), ported to Python in
//! tests/support/go_test_main.py: tus uploads downloaded again by their upload URL, multipart
//! uploads, check_file_exist, reload get/set/reload and the admin routes Test_main calls. It
//! runs against fastdfs-rs configured as Test_main expects (go-fastdfs' generated defaults:
//! tus on, routes under the group, 127.0.0.1 admin), and, to show that the port itself is
//! faithful, against the reference go-fastdfs binary (env GO_FASTDFS_BIN).
//! Needs python3 with tuspy (module tusclient); skipped without it (scripts/test-all.sh
//! installs it). Run one: `cargo test --test go_test_main`.
mod common;
use common::go::*;
use common::*;
use serde_json::{json, Value};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

const GROUP: &str = "group1";
const ADMIN_KEY: &str = "test-admin-key";

/// The keys of go-fastdfs' generated cfg.json that Test_main relies on.
fn test_main_config() -> Value {
    json!({
        "group": GROUP,
        "support_group_manage": true,
        "enable_tus": true,
        "admin_ips": ["127.0.0.1"],
        "enable_merge_small_file": false,
        "enable_migrate": false,
        "enable_web_upload": true,
        "enable_distinct_file": true,
        "default_download": true,
        "default_scene": "default",
        "show_dir": true,
        "peers": []
    })
}

fn script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/support/go_test_main.py")
}

fn tuspy_available(test: &str) -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import tusclient"])
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false);
    if !ok {
        skip(
            test,
            "python3 with tuspy (module tusclient) is not installed: pip install tuspy",
        );
    }
    ok
}

/// Runs the port against `base`; returns (exit code, its output).
fn run_test_main(base: &str, admin_key: &str) -> (Option<i32>, String) {
    let out_dir = tempfile::tempdir().unwrap();
    let out_path = out_dir.path().join("go_test_main.out");
    let out = std::fs::File::create(&out_path).unwrap();
    let mut child = Command::new("python3")
        .arg(script())
        .args([base, GROUP, "--admin-key", admin_key])
        .stdin(Stdio::null())
        .stdout(out.try_clone().unwrap())
        .stderr(out)
        .spawn()
        .expect("python3");
    let code = wait_child(&mut child, Duration::from_secs(600));
    let text = std::fs::read_to_string(&out_path).unwrap_or_default();
    println!("{text}");
    (code, text)
}

/// The last `n` bytes of a log (at a char boundary).
fn tail(s: &str, n: usize) -> &str {
    let mut i = s.len().saturating_sub(n);
    while !s.is_char_boundary(i) {
        i += 1;
    }
    &s[i..]
}

#[test]
fn go_fastdfs_own_test_main_passes_against_fastdfs_rs() {
    if !tuspy_available("go_fastdfs_own_test_main_passes_against_fastdfs_rs") {
        return;
    }
    let mut cfg = test_main_config();
    cfg["admin_key"] = json!(ADMIN_KEY);
    let s = Server::start(cfg);
    let (code, out) = run_test_main(&s.base(), ADMIN_KEY);
    assert_eq!(
        code,
        Some(0),
        "go-fastdfs' Test_main (tests/support/go_test_main.py) failed against fastdfs-rs:\n{out}\n\
         --- fastdfs-rs stderr (tail) ---\n{}",
        tail(&s.stderr(), 6000)
    );
}

#[test]
fn the_harness_passes_against_go_fastdfs_itself() {
    let Some(bin) = go_bin() else {
        return;
    };
    if !tuspy_available("the_harness_passes_against_go_fastdfs_itself") {
        return;
    }
    let node = GoNode::start_configured(&bin, GO_IP, free_port(GO_IP), &[], &test_main_config());
    // Test_main reads the key from the running server's Config(); here from its cfg.json.
    let conf: Value = serde_json::from_str(
        &std::fs::read_to_string(node.dir.path().join("conf/cfg.json")).unwrap(),
    )
    .unwrap();
    let key = conf["admin_key"].as_str().unwrap_or("").to_string();
    let (code, out) = run_test_main(&node.base(), &key);
    assert_eq!(
        code,
        Some(0),
        "the Test_main port (tests/support/go_test_main.py) fails against go-fastdfs itself, \
         so the port is wrong there:\n{out}\n--- go-fastdfs log (tail) ---\n{}",
        tail(&node.log(), 6000)
    );
}
