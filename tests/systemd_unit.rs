//! The shipped systemd unit is valid (`systemd-analyze verify` finds nothing, not even an
//! unknown key) and carries what the runtime needs: a dedicated user, restart on failure,
//! LimitNOFILE and a LimitMEMLOCK large enough for the io_uring rings.
use std::process::Command;

const UNIT: &str = include_str!("../systemd/fastdfs.service");

fn directive<'a>(key: &str) -> Option<&'a str> {
    UNIT.lines()
        .find_map(|l| l.strip_prefix(&format!("{key}=")))
}

#[test]
fn unit_sets_user_restart_and_limits() {
    assert_eq!(directive("User"), Some("fastdfs"));
    assert_eq!(directive("Restart"), Some("on-failure"));
    assert!(directive("LimitNOFILE").is_some_and(|v| v.parse::<u64>().unwrap() >= 65536));
    let memlock = directive("LimitMEMLOCK").expect("LimitMEMLOCK");
    let bytes: u64 = match memlock.strip_suffix('M') {
        Some(m) => m.parse::<u64>().unwrap() << 20,
        None => memlock.parse().unwrap_or(u64::MAX),
    };
    // 32 executors x (3 rings + 512 KiB io_memory) comfortably fit.
    assert!(bytes >= 32 << 20, "LimitMEMLOCK={memlock}");
    assert!(directive("ExecStart").unwrap().ends_with("fastdfs server"));
}

#[test]
fn systemd_analyze_verify_is_clean() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("SKIPPED: systemd-analyze not installed (scripts/test-all.sh installs systemd)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // verify checks that ExecStart is executable: point it at the binary under test.
    let unit = UNIT.replace("/usr/local/bin/fastdfs", env!("CARGO_BIN_EXE_fastdfs"));
    let path = dir.path().join("fastdfs.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.trim().is_empty(), "warnings: {stderr}");
}
