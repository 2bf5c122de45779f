//! The server runs as an ordinary user under the usual 8 MiB RLIMIT_MEMLOCK (io_uring
//! buffers must fit), serving an upload and its download. Needs root to switch users;
//! skipped otherwise.
mod common;
use common::*;
use serde_json::json;
use std::ffi::CString;
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const MEMLOCK: u64 = 8 * 1024 * 1024;

/// The child process, killed by PID on drop.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            unsafe { libc::kill(c.id() as i32, libc::SIGKILL) };
            let _ = c.wait();
        }
    }
}

fn ids_of(user: &str, group: &str) -> (u32, u32) {
    // getpwnam and getgrnam return records in static storage that a call on another thread
    // overwrites: the tests of this file run at once, and one chowned its directory to ids
    // read mid-overwrite (the server, as nobody, could not create `data/` in it).
    static LOOKUP: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _one_at_a_time = LOOKUP.lock().unwrap_or_else(|e| e.into_inner());
    let u = CString::new(user).unwrap();
    let g = CString::new(group).unwrap();
    // SAFETY: getpwnam/getgrnam return pointers to static records or NULL; read at once,
    // under the lock above.
    unsafe {
        let pw = libc::getpwnam(u.as_ptr());
        let gr = libc::getgrnam(g.as_ptr());
        assert!(
            !pw.is_null() && !gr.is_null(),
            "user {user} / group {group} missing"
        );
        ((*pw).pw_uid, (*gr).gr_gid)
    }
}

fn chown(p: &Path, uid: u32, gid: u32) {
    std::os::unix::fs::chown(p, Some(uid), Some(gid)).unwrap();
}

/// Whether any user can execute `bin`: it and every ancestor directory are o+x.
fn world_executable(bin: &Path) -> bool {
    let mut p = Some(bin);
    while let Some(cur) = p {
        match std::fs::metadata(cur) {
            Ok(m) if m.permissions().mode() & 0o001 != 0 => {}
            _ => return false,
        }
        p = cur.parent().filter(|x| !x.as_os_str().is_empty());
    }
    true
}

fn proc_field(pid: u32, file: &str, prefix: &str) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/{file}"))
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(prefix))
        .unwrap_or_default()
        .to_string()
}

/// A server started as nobody under `MEMLOCK`, in a runtime dir of its own.
struct Nobody {
    guard: Guard,
    dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    uid: u32,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// None (the test skipped) when not running as root.
fn spawn_as_nobody(overrides: serde_json::Value) -> Option<Nobody> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        skip(
            "unprivileged",
            "not running as root: cannot switch to nobody",
        );
        return None;
    }
    let (uid, gid) = ids_of("nobody", "nogroup");
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o755)).unwrap();
    let bin: PathBuf = if world_executable(Path::new(BIN)) {
        PathBuf::from(BIN)
    } else {
        let copy = dir.join("fastdfs");
        std::fs::copy(BIN, &copy).unwrap();
        std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).unwrap();
        copy
    };
    let port = free_port("127.0.0.1");
    std::fs::create_dir(dir.join("conf")).unwrap();
    let cfg = base_config("127.0.0.1", port, &overrides);
    std::fs::write(
        dir.join("conf/cfg.json"),
        serde_json::to_string_pretty(&cfg).unwrap(),
    )
    .unwrap();
    for p in [dir.as_path(), &dir.join("conf"), &dir.join("conf/cfg.json")] {
        chown(p, uid, gid);
    }
    let logs = tempfile::tempdir().unwrap();
    let log_path = logs.path().join("stderr.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let child = Command::new("setpriv")
        .args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .args(["prlimit", &format!("--memlock={MEMLOCK}")])
        .arg(&bin)
        .arg("server")
        .current_dir(&dir)
        .env_remove("GO_FASTDFS_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("run setpriv");
    Some(Nobody {
        guard: Guard(Some(child)),
        dir,
        log_path,
        port,
        uid,
        _dirs: (tmp, logs),
    })
}

#[test]
fn the_server_serves_an_upload_and_download_as_nobody_with_an_8_mib_memlock_limit() {
    let Some(n) = spawn_as_nobody(json!({"workers": 2})) else {
        return;
    };
    let Nobody {
        mut guard,
        dir,
        log_path,
        port,
        uid,
        _dirs,
    } = n;
    let pid = guard.0.as_ref().unwrap().id();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = guard.0.as_mut().unwrap().try_wait() {
            panic!(
                "server exited with {st}: {}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server did not listen within 20 s: {}\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default(),
            common::threads_report(pid)
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // It really is nobody under the limit (setpriv and prlimit exec, keeping the PID).
    let uid_line = proc_field(pid, "status", "Uid:");
    assert!(
        uid_line
            .split_whitespace()
            .skip(1)
            .all(|u| u == uid.to_string()),
        "{uid_line}"
    );
    let limit = proc_field(pid, "limits", "Max locked memory");
    assert!(
        limit.split_whitespace().any(|w| w == MEMLOCK.to_string()),
        "{limit}"
    );

    let base = format!("http://{addr}");
    let data: Vec<u8> = (0..3_000_000u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
        .collect();
    let (ct, body) = multipart(&[("output", "json")], Some(("nobody.bin", &data)));
    let resp = agent()
        .post(&format!("{base}/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
    let text = match resp {
        Ok(r) => r.into_string().unwrap(),
        Err(e) => panic!(
            "upload failed: {e}: {}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        ),
    };
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(v["md5"], md5_hex(&data));
    let path = v["path"].as_str().unwrap();
    let mut got = Vec::new();
    let r = agent()
        .get(&format!("{base}{path}"))
        .call()
        .expect("download");
    std::io::Read::read_to_end(&mut r.into_reader(), &mut got).unwrap();
    assert_eq!(got.len(), data.len());
    assert!(got == data, "downloaded bytes differ");
    let on_disk = dir
        .join("files")
        .join(path.strip_prefix("/group1/").unwrap());
    assert_eq!(
        std::fs::metadata(&on_disk).unwrap().uid(),
        uid,
        "file owned by nobody"
    );
    drop(guard);
}

#[test]
fn executors_that_cannot_all_start_under_the_memlock_limit_stop_the_server_with_the_cause() {
    // 16 executors do not fit 8 MiB of locked memory: some cannot make their rings. Serving
    // with the rest would leave their shards without a committer (uploads hang); the server
    // stops, non-zero, naming the limit.
    let Some(mut n) = spawn_as_nobody(json!({"workers": 16})) else {
        return;
    };
    let child = n.guard.0.as_mut().unwrap();
    let deadline = Instant::now() + Duration::from_secs(40);
    let status = loop {
        if let Ok(Some(st)) = child.try_wait() {
            break Some(st);
        }
        if Instant::now() > deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let log = std::fs::read_to_string(&n.log_path).unwrap_or_default();
    let app_log = std::fs::read_to_string(n.dir.join("log/fileserver.log")).unwrap_or_default();
    match status {
        // All started after all (a kernel that charges the rings elsewhere): it serves.
        None => {
            let addr: SocketAddr = format!("127.0.0.1:{}", n.port).parse().unwrap();
            assert!(
                TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok(),
                "running but not listening: {log}"
            );
        }
        Some(st) => {
            assert!(!st.success(), "{log}");
            let both = format!("{log}\n{app_log}");
            assert!(both.contains("executors started within"), "{both}");
            assert!(both.contains("LimitMEMLOCK"), "{both}");
        }
    }
}
