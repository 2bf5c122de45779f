//! The container image and the log rotation, checked without a Docker engine: the Dockerfile's
//! runtime stage (non-root numeric USER, GO_FASTDFS_DIR=/data, the default port exposed, a
//! health check that needs nothing beyond the base image), the binary's shared libraries, and
//! the image's entrypoint run the way Docker runs it — as uid 10001, in its own network
//! namespace, with the image's environment, in an empty /data — writing its default config and
//! passing the Dockerfile's own HEALTHCHECK command. Then systemd/fastdfs.logrotate: `logrotate
//! -d` accepts it, and a real rotation of a running server's logs makes it write new files.
mod common;
use serde_json::Value;
use std::ffi::{CStr, CString};
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const DOCKERFILE: &str = include_str!("../Dockerfile");
const DOCKERIGNORE: &str = include_str!("../.dockerignore");
const LOGROTATE: &str = include_str!("../systemd/fastdfs.logrotate");
const UNIT: &str = include_str!("../systemd/fastdfs.service");

/// One Dockerfile instruction: keyword (upper case) and its arguments, continuations joined.
#[derive(Debug)]
struct Instr {
    key: String,
    args: String,
}

/// The instructions of each stage (a stage starts at FROM), in order.
fn stages() -> Vec<Vec<Instr>> {
    let mut logical = Vec::new();
    let mut cur = String::new();
    for line in DOCKERFILE.lines() {
        let t = line.trim();
        // Comment lines are dropped, also inside a continued instruction (as Docker does).
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                logical.push(std::mem::take(&mut cur));
            }
        }
    }
    assert!(cur.is_empty(), "Dockerfile ends inside a continued line");
    let mut out: Vec<Vec<Instr>> = Vec::new();
    for l in logical {
        let l = l.trim();
        if l.is_empty() {
            continue;
        }
        let (key, args) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
        let i = Instr {
            key: key.to_uppercase(),
            args: args.trim().to_string(),
        };
        if i.key == "FROM" {
            out.push(Vec::new());
        }
        out.last_mut()
            .expect("the first instruction is FROM (ARG before FROM is not used)")
            .push(i);
    }
    out
}

fn runtime_stage() -> Vec<Instr> {
    stages().pop().unwrap()
}

/// Arguments of the last `key` instruction of a stage (the one in force).
fn last<'a>(stage: &'a [Instr], key: &str) -> Option<&'a str> {
    stage
        .iter()
        .rev()
        .find(|i| i.key == key)
        .map(|i| i.args.as_str())
}

/// The stage's ENV pairs (`ENV K=V [K=V...]`, values without spaces, or `ENV K V`).
fn envs(stage: &[Instr]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for i in stage.iter().filter(|i| i.key == "ENV") {
        if i.args.split_whitespace().all(|w| w.contains('=')) {
            for w in i.args.split_whitespace() {
                let (k, v) = w.split_once('=').unwrap();
                out.push((k.to_string(), v.trim_matches('"').to_string()));
            }
        } else {
            let (k, v) = i.args.split_once(char::is_whitespace).unwrap();
            out.push((k.to_string(), v.trim().to_string()));
        }
    }
    out
}

/// An exec-form (JSON array) argument list, or a shell form run by /bin/sh -c.
fn command_of(args: &str) -> Vec<String> {
    if args.starts_with('[') {
        serde_json::from_str(args).unwrap_or_else(|e| panic!("bad JSON array {args}: {e}"))
    } else {
        vec!["/bin/sh".into(), "-c".into(), args.into()]
    }
}

/// HEALTHCHECK options (`--timeout=5s` ...) and its command.
fn healthcheck(stage: &[Instr]) -> (Vec<(String, String)>, Vec<String>) {
    let args = last(stage, "HEALTHCHECK").expect("the runtime stage has a HEALTHCHECK");
    let mut rest = args;
    let mut opts = Vec::new();
    while let Some(r) = rest.strip_prefix("--") {
        let (opt, tail) = r.split_once(char::is_whitespace).unwrap();
        let (k, v) = opt.split_once('=').unwrap();
        opts.push((k.to_string(), v.to_string()));
        rest = tail.trim_start();
    }
    let cmd = rest
        .strip_prefix("CMD")
        .unwrap_or_else(|| panic!("HEALTHCHECK {args}: not CMD (NONE disables it)"));
    (opts, command_of(cmd.trim()))
}

fn seconds(v: &str) -> Duration {
    let n = |s: &str| s.parse::<u64>().unwrap();
    match (
        v.strip_suffix("ms"),
        v.strip_suffix('s'),
        v.strip_suffix('m'),
    ) {
        (Some(ms), _, _) => Duration::from_millis(n(ms)),
        (_, Some(s), _) => Duration::from_secs(n(s)),
        (_, _, Some(m)) => Duration::from_secs(60 * n(m)),
        _ => panic!("duration {v}"),
    }
}

/// The cfg.json a first start writes (`fastdfs default-config`).
fn default_config() -> Value {
    let out = Command::new(common::BIN)
        .arg("default-config")
        .output()
        .unwrap();
    assert!(out.status.success());
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The port and the status path of the default config.
fn default_port_and_status_path() -> (u16, String) {
    let cfg = default_config();
    let port = cfg["addr"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    let path = if cfg["support_group_manage"] == true {
        format!("/{}/status", cfg["group"].as_str().unwrap())
    } else {
        "/status".into()
    };
    (port, path)
}

#[test]
fn the_image_is_built_locked_from_the_rust_image_onto_bookworm_slim() {
    let st = stages();
    assert!(st.len() >= 2, "a multi-stage build");
    let build = &st[0];
    let from = last(build, "FROM").unwrap();
    assert!(from.starts_with("rust:1-bookworm"), "{from}");
    let name = from.split_whitespace().last().unwrap();
    assert!(
        build
            .iter()
            .any(|i| i.key == "RUN" && i.args.contains("cargo build --release --locked")),
        "the build stage runs cargo build --release --locked"
    );
    let rt = runtime_stage();
    // Same Debian release on both sides: the glibc the binary was linked against is there.
    assert_eq!(last(&rt, "FROM"), Some("debian:bookworm-slim"));
    let copy = rt
        .iter()
        .find(|i| i.key == "COPY" && i.args.starts_with(&format!("--from={name} ")))
        .expect("the runtime stage copies the binary from the build stage");
    assert!(copy.args.ends_with(" /usr/local/bin/fastdfs"), "{copy:?}");
}

#[test]
fn the_runtime_stage_runs_as_a_numeric_non_root_user_in_data_with_the_default_port() {
    let rt = runtime_stage();
    let user = last(&rt, "USER").expect("USER in the runtime stage");
    let (uid, gid) = user.split_once(':').unwrap_or((user, user));
    let uid: u32 = uid
        .parse()
        .unwrap_or_else(|_| panic!("USER {user}: numeric, so runAsNonRoot can verify it"));
    let gid: u32 = gid.parse().unwrap();
    assert!(uid != 0 && gid != 0, "USER {user} is root");
    // The image creates that user (a passwd entry: HOME, ls -l names).
    assert!(
        rt.iter().any(|i| i.key == "RUN"
            && i.args.contains(&format!("--uid {uid}"))
            && i.args.contains(&format!("--gid {gid}"))),
        "no useradd --uid {uid} --gid {gid}"
    );
    let env = envs(&rt);
    assert!(
        env.iter()
            .any(|(k, v)| k == "GO_FASTDFS_DIR" && v == "/data"),
        "{env:?}"
    );
    assert_eq!(last(&rt, "WORKDIR"), Some("/data"));
    let volume = last(&rt, "VOLUME").expect("VOLUME");
    assert!(
        volume == "/data"
            || (volume.starts_with('[') && command_of(volume).contains(&"/data".into())),
        "VOLUME {volume}"
    );
    let (port, status) = default_port_and_status_path();
    let exposed = last(&rt, "EXPOSE").expect("EXPOSE");
    assert!(
        exposed
            .split_whitespace()
            .any(|p| p.trim_end_matches("/tcp") == port.to_string()),
        "EXPOSE {exposed}, default addr port {port}"
    );
    assert_eq!(
        command_of(last(&rt, "ENTRYPOINT").unwrap()),
        ["/usr/local/bin/fastdfs"]
    );
    assert_eq!(command_of(last(&rt, "CMD").unwrap()), ["server"]);

    let (opts, cmd) = healthcheck(&rt);
    let line = cmd.join(" ");
    assert!(
        line.contains(&status) && line.contains(&port.to_string()),
        "the health check asks {status} on port {port}: {line}"
    );
    let timeout = opts.iter().find(|(k, _)| k == "timeout").map(|(_, v)| v);
    assert!(timeout.is_some_and(|t| seconds(t) <= Duration::from_secs(30)));
    // Its program is in the base image (bash, sh) or the binary, or installed on purpose.
    let prog = Path::new(&cmd[0]).file_name().unwrap().to_str().unwrap();
    let in_base = ["bash", "sh", "dash", "fastdfs"].contains(&prog);
    let installed = rt
        .iter()
        .any(|i| i.key == "RUN" && i.args.contains("apt-get install") && i.args.contains(prog));
    assert!(
        in_base || installed,
        "HEALTHCHECK runs {prog}, not in the image"
    );
}

#[test]
fn the_binary_needs_no_library_beyond_what_bookworm_slim_has() {
    let out = match Command::new("ldd").arg(common::BIN).output() {
        Ok(o) => o,
        Err(_) => {
            common::skip("docker_image ldd", "ldd not installed");
            return;
        }
    };
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    // glibc (libc, libm, the loader, the vDSO) and libgcc_s (libgcc-s1, required priority).
    let base = [
        "linux-vdso",
        "libc.so",
        "libm.so",
        "ld-linux",
        "libgcc_s.so",
    ];
    for lib in text.lines().filter_map(|l| l.split_whitespace().next()) {
        let name = Path::new(lib).file_name().unwrap().to_string_lossy();
        assert!(
            base.iter().any(|b| name.starts_with(b)),
            "{name} is not in debian:bookworm-slim: install it in the runtime stage ({text})"
        );
    }
}

#[test]
fn dockerignore_keeps_the_build_inputs_and_leaves_out_target_and_git() {
    let patterns: Vec<&str> = DOCKERIGNORE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .map(|l| l.trim_start_matches('/').trim_end_matches('/'))
        .collect();
    let ignored = |p: &str| {
        patterns
            .iter()
            .any(|pat| p == *pat || p.starts_with(&format!("{pat}/")))
    };
    for p in [
        "target",
        ".git",
        "tests/browser/node_modules",
        "fuzz/target",
        "bench/results",
    ] {
        assert!(ignored(p), "{p} is sent to the build context");
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for p in [
        "Cargo.toml",
        "Cargo.lock",
        "build.rs",
        "src/main.rs",
        "src/lib.rs",
        "config/cfg.json",
        "bench/fill.rs",
    ] {
        assert!(!ignored(p), "{p} is needed by cargo build but ignored");
        assert!(root.join(p).exists(), "{p}");
    }
}

/// Runs `cmd`, killed after `limit`: its output, or None when it overran.
fn run_bounded(cmd: &mut Command, limit: Duration) -> Option<Output> {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    let deadline = Instant::now() + limit;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Some(child.wait_with_output().unwrap())
}

/// Kills the child by PID if an assertion fails first.
struct Guard(Option<Child>);

impl Drop for Guard {
    fn drop(&mut self) {
        if let Some(mut c) = self.0.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Moves the calling thread (and the processes it starts) into a new network namespace with
/// its loopback up, as a container has. Needs CAP_SYS_ADMIN.
fn enter_own_network_namespace() -> std::io::Result<()> {
    // SAFETY: unshare(CLONE_NEWNET) affects only the calling thread's namespace set.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    /// struct ifreq: name, then a union whose flags member is a short (40 bytes in all).
    #[repr(C)]
    struct IfReq {
        name: [u8; 16],
        flags: libc::c_short,
        _pad: [u8; 22],
    }
    let mut req = IfReq {
        name: [0; 16],
        flags: 0,
        _pad: [0; 22],
    };
    req.name[..2].copy_from_slice(b"lo");
    // SAFETY: a socket we close below; SIOC[GS]IFFLAGS read and write the ifreq we pass.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0);
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        let ok = libc::ioctl(fd, libc::SIOCGIFFLAGS as _, &mut req as *mut IfReq) == 0 && {
            req.flags |= libc::IFF_UP as libc::c_short;
            libc::ioctl(fd, libc::SIOCSIFFLAGS as _, &mut req as *mut IfReq) == 0
        };
        let err = std::io::Error::last_os_error();
        libc::close(fd);
        if !ok {
            return Err(err);
        }
    }
    Ok(())
}

/// Docker's environment for the image's USER: PATH of the base image, HOME from passwd
/// (/data), then the Dockerfile's ENV, with /data standing for `data`.
fn image_env(stage: &[Instr], data: &Path) -> Vec<(String, String)> {
    let map = |v: &str| match v.strip_prefix("/data") {
        Some(rest) if rest.is_empty() || rest.starts_with('/') => {
            format!("{}{rest}", data.display())
        }
        _ => v.to_string(),
    };
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin".to_string(),
        ),
        ("HOME".to_string(), data.display().to_string()),
        ("HOSTNAME".to_string(), "fastdfs-test".to_string()),
    ];
    for (k, v) in envs(stage) {
        env.push((k, map(&v)));
    }
    env
}

/// A command as the image's user: setpriv to uid:gid, no supplementary groups, no
/// capabilities, only the image's environment, in its WORKDIR.
fn as_image_user(
    argv: &[String],
    ids: (u32, u32),
    env: &[(String, String)],
    cwd: &Path,
) -> Command {
    let mut c = Command::new("setpriv");
    c.arg(format!("--reuid={}", ids.0))
        .arg(format!("--regid={}", ids.1))
        .args(["--clear-groups", "--inh-caps=-all", "--"])
        .args(argv)
        .current_dir(cwd)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k, v)));
    c
}

#[test]
fn the_image_entrypoint_as_its_user_in_an_empty_data_writes_its_config_and_passes_the_healthcheck()
{
    const NAME: &str = "docker_image entrypoint";
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        common::skip(
            NAME,
            "not running as root: cannot switch to the image's user",
        );
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        common::skip(NAME, "setpriv not installed (util-linux)");
        return;
    }
    // A thread of its own: the network namespace is per thread, and the processes it starts
    // inherit it. The default config listens on :8080, like in the container, whoever holds
    // 8080 on this machine.
    let t = std::thread::spawn(|| {
        if let Err(e) = enter_own_network_namespace() {
            common::skip(NAME, &format!("cannot make a network namespace: {e}"));
            return;
        }
        entrypoint_in_this_namespace();
    });
    if let Err(p) = t.join() {
        std::panic::resume_unwind(p);
    }
}

fn entrypoint_in_this_namespace() {
    let rt = runtime_stage();
    let user = last(&rt, "USER").unwrap();
    let (u, g) = user.split_once(':').unwrap_or((user, user));
    let ids: (u32, u32) = (u.parse().unwrap(), g.parse().unwrap());

    // The image's file system, as far as the server sees it: the binary at its path and an
    // empty /data owned by the user (the Dockerfile's install -d, or a chowned volume).
    let root = tempfile::tempdir().unwrap();
    let r = root.path();
    std::fs::set_permissions(r, std::fs::Permissions::from_mode(0o755)).unwrap();
    let entry = command_of(last(&rt, "ENTRYPOINT").unwrap());
    let bin = r.join(entry[0].trim_start_matches('/'));
    std::fs::create_dir_all(bin.parent().unwrap()).unwrap();
    for d in bin.ancestors().skip(1).take_while(|d| d.starts_with(r)) {
        std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    std::fs::copy(common::BIN, &bin).unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let data = r.join("data");
    std::fs::create_dir(&data).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o750)).unwrap();
    std::os::unix::fs::chown(&data, Some(ids.0), Some(ids.1)).unwrap();
    let workdir = match last(&rt, "WORKDIR").unwrap() {
        "/data" => data.clone(),
        other => panic!("WORKDIR {other}"),
    };
    let env = image_env(&rt, &data);

    let (opts, check) = healthcheck(&rt);
    let limit = opts
        .iter()
        .find(|(k, _)| k == "timeout")
        .map_or(Duration::from_secs(30), |(_, v)| seconds(v));
    let health = || {
        run_bounded(&mut as_image_user(&check, ids, &env, &workdir), limit).map(|o| {
            (
                o.status.success(),
                String::from_utf8_lossy(&o.stderr).into_owned(),
            )
        })
    };
    let before = health().expect("the health check overran with nothing listening");
    assert!(
        !before.0,
        "healthy with no server: the check proves nothing"
    );

    let mut argv: Vec<String> = vec![bin.display().to_string()];
    argv.extend(entry[1..].iter().cloned());
    argv.extend(command_of(last(&rt, "CMD").unwrap()));
    let log_path = root.path().join("stderr.log");
    let mut cmd = as_image_user(&argv, ids, &env, &workdir);
    cmd.stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log_path).unwrap());
    let mut guard = Guard(Some(cmd.spawn().unwrap()));
    let stderr = || std::fs::read_to_string(&log_path).unwrap_or_default();

    // Healthy within the start period (polled like Docker does, only faster).
    let start_period = opts
        .iter()
        .find(|(k, _)| k == "start-period")
        .map_or(Duration::from_secs(30), |(_, v)| seconds(v));
    let deadline = Instant::now() + start_period;
    let healthy = loop {
        if let Ok(Some(st)) = guard.0.as_mut().unwrap().try_wait() {
            panic!("the server exited with {st}: {}", stderr());
        }
        match health() {
            Some((true, _)) => break true,
            _ if Instant::now() > deadline => break false,
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    };
    assert!(healthy, "HEALTHCHECK never passed: {}", stderr());

    // It wrote the go-fastdfs runtime layout in /data, as the image's user.
    for p in ["conf/cfg.json", "files", "data", "log/fileserver.log"] {
        let m = std::fs::metadata(data.join(p))
            .unwrap_or_else(|e| panic!("/data/{p}: {e}: {}", stderr()));
        assert_eq!((m.uid(), m.gid()), ids, "/data/{p} owner");
    }
    let cfg: Value =
        serde_json::from_str(&std::fs::read_to_string(data.join("conf/cfg.json")).unwrap())
            .unwrap();
    let (port, status) = default_port_and_status_path();
    assert_eq!(cfg["addr"], format!(":{port}"));

    // What the health check asks, answered for an admin (127.0.0.1) with the node's status.
    let base = format!("http://127.0.0.1:{port}");
    let (code, body) = common::call(common::agent().get(&format!("{base}{status}")));
    assert_eq!(code, 200, "{body}");
    let v: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(v["status"], "ok", "{body}");
    assert!(v["data"]["Fs.FileStats"].is_array(), "{body}");

    // An upload lands in the volume, owned by the image's user.
    let (ct, form) = common::multipart(&[("output", "json")], Some(("hello.txt", b"in a box")));
    let resp = common::agent()
        .post(&format!("{base}/{}/upload", cfg["group"].as_str().unwrap()))
        .set("Content-Type", &ct)
        .send_bytes(&form);
    let body = match resp {
        Ok(r) => r.into_string().unwrap(),
        Err(e) => panic!("upload: {e}: {}", stderr()),
    };
    let v: Value = serde_json::from_str(&body).unwrap();
    let group_prefix = format!("/{}/", cfg["group"].as_str().unwrap());
    let rel = v["path"]
        .as_str()
        .unwrap()
        .strip_prefix(&group_prefix)
        .unwrap();
    let m = std::fs::metadata(data.join("files").join(rel)).unwrap();
    assert_eq!(m.uid(), ids.0);

    // `docker stop`: SIGTERM, exit 0 well within the documented --stop-timeout 30.
    let pid = guard.0.as_ref().unwrap().id();
    // SAFETY: kill on the PID of our own unreaped child.
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let code = common::wait_child(guard.0.as_mut().unwrap(), Duration::from_secs(30));
    guard.0 = None;
    assert_eq!(code, Some(0), "{}", stderr());
    let after = health().expect("the health check overran after the stop");
    assert!(!after.0, "healthy after the server stopped");
}

/// The current user's and group's names (for logrotate's `su`).
fn my_user_and_group() -> (String, String) {
    // SAFETY: getpwuid/getgrgid return static records or NULL; copied out at once.
    unsafe {
        let pw = libc::getpwuid(libc::geteuid());
        let gr = libc::getgrgid(libc::getegid());
        assert!(!pw.is_null() && !gr.is_null());
        (
            CStr::from_ptr((*pw).pw_name).to_string_lossy().into_owned(),
            CStr::from_ptr((*gr).gr_name).to_string_lossy().into_owned(),
        )
    }
}

fn user_exists(name: &str) -> bool {
    let c = CString::new(name).unwrap();
    // SAFETY: getpwnam returns a static record or NULL.
    unsafe { !libc::getpwnam(c.as_ptr()).is_null() }
}

/// The directive lines of the logrotate file (comments dropped).
fn logrotate_directives() -> Vec<&'static str> {
    LOGROTATE
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect()
}

/// The logrotate file with its `su` user swapped for the current one when this machine has
/// no `fastdfs` user (logrotate refuses unknown users), and `/var/lib/fastdfs` for `dir`.
fn logrotate_for_here(dir: Option<&Path>) -> String {
    let (me, my_group) = my_user_and_group();
    let su = logrotate_directives()
        .into_iter()
        .find(|l| l.starts_with("su "))
        .expect("an su directive");
    let mut text = LOGROTATE.to_string();
    let user = su.split_whitespace().nth(1).unwrap();
    if !user_exists(user) || dir.is_some() {
        text = text.replace(su, &format!("su {me} {my_group}"));
    }
    if let Some(d) = dir {
        text = text.replace("/var/lib/fastdfs", &d.display().to_string());
    }
    text
}

fn logrotate() -> Option<PathBuf> {
    ["logrotate", "/usr/sbin/logrotate", "/sbin/logrotate"]
        .into_iter()
        .map(PathBuf::from)
        .find(|p| Command::new(p).arg("--version").output().is_ok())
}

#[test]
fn the_logrotate_file_renames_and_signals_the_server_and_never_copies_and_truncates() {
    let d = logrotate_directives();
    assert!(
        !d.iter().any(|l| l.contains("copytruncate")),
        "copytruncate loses lines: the server reopens on SIGHUP"
    );
    for want in [
        "daily",
        "rotate 14",
        "compress",
        "delaycompress",
        "missingok",
        "notifempty",
    ] {
        assert!(d.contains(&want), "no `{want}` in {d:?}");
    }
    // The logs of the unit's runtime dir, by their real names.
    let dir = UNIT
        .lines()
        .find_map(|l| l.strip_prefix("Environment=GO_FASTDFS_DIR="))
        .expect("the unit sets GO_FASTDFS_DIR");
    let header = d.iter().find(|l| l.ends_with('{')).unwrap();
    for log in ["log/fileserver.log", "log/access.log"] {
        assert!(header.contains(&format!("{dir}/{log}")), "{header}");
    }
    let post: Vec<&str> = d
        .iter()
        .skip_while(|l| **l != "postrotate")
        .take_while(|l| **l != "endscript")
        .copied()
        .collect();
    assert!(post.len() > 1, "a postrotate script");
    let script = post.join("\n");
    assert!(
        script.contains("kill -HUP") || script.contains("-s HUP"),
        "{script}"
    );
    assert!(script.contains("fastdfs.service"), "{script}");
}

#[test]
fn logrotate_d_accepts_the_file() {
    let Some(lr) = logrotate() else {
        common::skip(
            "logrotate -d",
            "logrotate not installed (scripts/test-all.sh installs it)",
        );
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let conf = tmp.path().join("fastdfs");
    std::fs::write(&conf, logrotate_for_here(None)).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = Command::new(&lr)
        .arg("-d")
        .arg("-s")
        .arg(tmp.path().join("state"))
        .arg(&conf)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(!stderr.contains("error:"), "{stderr}");
}

#[test]
fn a_logrotate_run_renames_the_logs_and_the_server_writes_new_ones() {
    let Some(lr) = logrotate() else {
        common::skip(
            "logrotate run",
            "logrotate not installed (scripts/test-all.sh installs it)",
        );
        return;
    };
    let s = common::Server::start(serde_json::json!({}));
    let log = s.dir.join("log");
    common::upload_json(&s, "before.txt", b"before the rotation");
    // access.log is flushed about once a second.
    assert!(common::eventually(Duration::from_secs(10), || {
        std::fs::metadata(log.join("access.log")).is_ok_and(|m| m.len() > 0)
    }));
    let pid = s.child.as_ref().unwrap().id();

    // systemctl as the postrotate script uses it, for a unit whose main PID is our server.
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("bin");
    std::fs::create_dir(&bin).unwrap();
    let fake = bin.join("systemctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\n\
             case \" $* \" in\n\
             *' show '*) echo {pid} ;;\n\
             *' kill '*HUP*) kill -HUP {pid} ;;\n\
             *) echo \"systemctl $*: not faked\" >&2; exit 1 ;;\n\
             esac\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
    let conf = tmp.path().join("fastdfs");
    std::fs::write(&conf, logrotate_for_here(Some(&s.dir))).unwrap();
    std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o644)).unwrap();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let rotate = || {
        let out = Command::new(&lr)
            .args(["-f", "-v", "-s"])
            .arg(tmp.path().join("state"))
            .arg(&conf)
            .env("PATH", &path)
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&out.stderr).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(!text.contains("error:"), "{text}");
    };

    rotate();
    for f in ["fileserver.log.1", "access.log.1"] {
        assert!(log.join(f).exists(), "{f} missing after the rotation");
    }
    let reopened = common::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(log.join("fileserver.log"))
            .unwrap_or_default()
            .contains("log file reopened")
    });
    assert!(
        reopened,
        "no new fileserver.log after SIGHUP: {}",
        s.stderr()
    );
    let old = std::fs::read_to_string(log.join("fileserver.log.1")).unwrap();
    assert!(!old.contains("log file reopened"), "{old}");
    common::upload_json(&s, "after.txt", b"after the rotation");
    assert!(common::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(log.join("access.log"))
            .unwrap_or_default()
            .contains("/upload")
    }));
    let old_access = std::fs::read_to_string(log.join("access.log.1")).unwrap();
    assert!(old_access.contains("/upload"), "{old_access}");

    // The next rotation compresses the previous one (delaycompress) and keeps the server's
    // current file fresh.
    rotate();
    assert!(log.join("fileserver.log.2.gz").exists());
    assert!(log.join("fileserver.log.1").exists());
    assert!(common::eventually(Duration::from_secs(10), || {
        std::fs::read_to_string(log.join("fileserver.log"))
            .unwrap_or_default()
            .contains("log file reopened")
    }));
    // The server is still the same process and still serves.
    assert!(s.child.as_ref().is_some_and(|c| c.id() == pid));
    common::upload_json(&s, "later.txt", b"after two rotations");
}
