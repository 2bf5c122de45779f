//! The shipped systemd unit is valid (`systemd-analyze verify` finds nothing, not even an
//! unknown key) and carries what the runtime needs: a dedicated user, restart on failure,
//! LimitNOFILE and a LimitMEMLOCK large enough for the io_uring rings.
mod common;
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
    // `systemctl reload` sends the SIGHUP the server reloads and reopens its logs on.
    assert_eq!(directive("ExecReload"), Some("/bin/kill -HUP $MAINPID"));
}

#[test]
fn systemd_analyze_verify_is_clean() {
    if Command::new("systemd-analyze")
        .arg("--version")
        .output()
        .is_err()
    {
        common::skip(
            "systemd_analyze_verify_is_clean",
            "systemd-analyze not installed (scripts/test-all.sh installs systemd)",
        );
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

#[test]
fn the_unit_is_type_notify_and_the_server_sends_ready_then_stopping() {
    assert_eq!(directive("Type"), Some("notify"));
    let dir = tempfile::tempdir().unwrap();
    let sock_path = dir.path().join("notify.sock");
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(std::time::Duration::from_secs(20)))
        .unwrap();
    let rt = dir.path().join("rt");
    std::fs::create_dir_all(rt.join("conf")).unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    std::fs::write(
        rt.join("conf/cfg.json"),
        format!("{{\"addr\": \"127.0.0.1:{port}\", \"workers\": 2}}"),
    )
    .unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_fastdfs"))
        .arg("server")
        .current_dir(&rt)
        .env("NOTIFY_SOCKET", &sock_path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    /// Kills the server if an assertion fails first.
    struct Guard(u32);
    impl Drop for Guard {
        fn drop(&mut self) {
            unsafe { libc::kill(self.0 as i32, libc::SIGKILL) };
        }
    }
    let guard = Guard(child.id());
    let mut buf = [0u8; 64];
    let n = sock.recv(&mut buf).expect("READY=1 within 20 s");
    assert_eq!(&buf[..n], b"READY=1");
    // Ready means every executor listens: a connection is accepted right away.
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let n = sock.recv(&mut buf).expect("STOPPING=1 on SIGTERM");
    assert_eq!(&buf[..n], b"STOPPING=1");
    assert!(child.wait().unwrap().success());
    std::mem::forget(guard); // reaped: its PID must not be signalled again
}
