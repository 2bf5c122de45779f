//! A full disk (issue 13, item 7): the runtime dir, or only its metadata, on a small tmpfs.
//! Every write refused for lack of space is a 507 with a JSON message that names no server
//! path, leaves nothing half-written (no temp file, no record, no file without a record), and
//! once space returns the same uploads succeed. Needs root (mount); skipped otherwise.
mod common;
use common::*;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A tmpfs of `size` mounted at `at`, unmounted on drop.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(at).unwrap();
        let ok = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(at)
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip("disk-full tests", "cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Tmpfs(at.to_path_buf()))
    }

    fn resize(&self, size: &str) {
        let ok = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap();
        assert!(ok.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the filesystem of `dir` up to its last byte; returns the filler to remove later.
fn fill(dir: &Path) -> PathBuf {
    let filler = dir.join("filler");
    let _ = Command::new("dd")
        .args(["if=/dev/zero", "bs=4k"])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status();
    filler
}

fn post(s: &Server, name: &str, data: &[u8]) -> (u16, Value) {
    let (code, body) = upload(s, name, data, &[("output", "json")]);
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn assert_refused_for_space(code: u16, v: &Value, dir: &Path) {
    assert_eq!(code, 507, "{v}");
    assert_eq!(v["status"], "fail", "{v}");
    let msg = v["message"].as_str().unwrap_or_default();
    assert!(msg.contains("disk is full"), "{v}");
    assert!(
        !msg.contains(&*dir.to_string_lossy()) && !msg.contains("/tmp"),
        "path leaked: {v}"
    );
}

/// Files in the upload temp dir of the runtime dir `root`.
fn temp_files(root: &Path) -> usize {
    std::fs::read_dir(root.join("files/_tmp")).map_or(0, |d| d.count())
}

/// A server whose runtime dir is an 8 MiB tmpfs, a disk a test can fill, started with `cfg`.
/// Dropped, the server stops before the tmpfs is unmounted.
struct FullDisk {
    s: Server,
    root: PathBuf,
    _fs: Tmpfs,
    _tmp: tempfile::TempDir,
}

impl FullDisk {
    /// None: no tmpfs can be mounted (the test is skipped).
    fn start(cfg: Value) -> Option<FullDisk> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rt");
        let fs = Tmpfs::mount(&root, "8m")?;
        let s = Server::start_in(&root, "127.0.0.1", cfg);
        Some(FullDisk {
            s,
            root,
            _fs: fs,
            _tmp: tmp,
        })
    }
}

/// Stops `s`, then checks its store at `root` clean: every record has its file, every file
/// its record.
fn stop_and_check(s: &mut Server, root: &Path) {
    s.stop();
    let (code, out) = run_to_exit(root, &["check"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
}

#[test]
fn a_full_disk_refuses_uploads_with_507_and_nothing_half_written_then_recovers() {
    let Some(disk) = FullDisk::start(json!({"enable_tus": true, "enable_merge_small_file": false}))
    else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let (code, first) = post(s, "kept.bin", &noise(1_000_000, 1));
    assert_eq!(code, 200, "{first}");
    let before = files_under(root);
    let filler = fill(root);
    // A multipart upload, large and small.
    for (name, size) in [("big.bin", 500_000), ("small.txt", 3_000)] {
        let (code, v) = post(s, name, &noise(size, size as u64));
        assert_refused_for_space(code, &v, root);
    }
    // A tus upload: creation may fit, its data does not.
    let create = agent()
        .post(&s.url("/group1/big/upload/"))
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Length", "400000")
        .call();
    if let Ok(r) = create {
        let url = r.header("location").unwrap().to_string();
        let r = agent()
            .request("PATCH", &url)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Offset", "0")
            .set("Content-Type", "application/offset+octet-stream")
            .send_bytes(&noise(400_000, 9));
        let (code, body) = match r {
            Ok(r) => (r.status(), r.into_string().unwrap()),
            Err(ureq::Error::Status(c, r)) => (c, r.into_string().unwrap()),
            Err(e) => panic!("{e}"),
        };
        assert_eq!(code, 507, "{body}");
        assert!(!body.contains("/tmp"), "{body}");
    }
    // Nothing half-written: no temp file, no new stored file, the count unchanged.
    // (A refused upload's temp file is removed in the background right after the answer.)
    assert!(
        eventually(Duration::from_secs(5), || temp_files(root) == 0),
        "temp files left"
    );
    let now: Vec<PathBuf> = files_under(root)
        .into_iter()
        .filter(|p| !p.starts_with(root.join("files/_big")))
        .collect();
    assert_eq!(now, before);
    // Space returns: the same upload goes through, and the first file still reads back.
    std::fs::remove_file(&filler).unwrap();
    let (code, v) = post(s, "small.txt", &noise(3_000, 3_000));
    assert_eq!(code, 200, "{v}");
    let url = first["path"].as_str().unwrap();
    let (code, got) = common::cluster::get_bytes(&s.base(), url, &[]);
    assert_eq!((code, got.len()), (200, 1_000_000));
}

/// A full disk refuses every upload until space returns: the server's log says so once per
/// period and thread, with the count of refusals since, not once per refusal (a busy node
/// would fill its log with them).
#[test]
fn a_full_disk_is_logged_once_per_period_not_once_per_refusal() {
    let Some(disk) = FullDisk::start(json!({"enable_merge_small_file": false})) else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let _filler = fill(root);
    for i in 0..24u64 {
        let (code, v) = post(s, &format!("f{i}.txt"), &noise(3_000, i));
        assert_refused_for_space(code, &v, root);
    }
    let log = s.stderr();
    let lines = log
        .lines()
        .filter(|l| l.contains("No space left") || l.contains("disk is full"))
        .count();
    assert!(
        (1..=2).contains(&lines),
        "{lines} log lines about the full disk for 24 refusals:\n{log}"
    );
}

#[test]
fn a_full_metadata_disk_refuses_with_507_undoes_the_placed_file_and_recovers() {
    // Metadata on its own small volume (as on a separate SSD), files with room to spare.
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("rt");
    std::fs::create_dir_all(root.join("data")).unwrap();
    let Some(meta_fs) = Tmpfs::mount(&root.join("data"), "1m") else {
        return;
    };
    let mut s = Server::start_in(
        &root,
        "127.0.0.1",
        json!({"enable_merge_small_file": false}),
    );
    let mut refused = None;
    let mut stored = 0;
    for i in 0..5_000u64 {
        let (code, v) = post(
            &s,
            &format!("f{i}.txt"),
            format!("small file {i}").as_bytes(),
        );
        if code != 200 {
            refused = Some((i, code, v));
            break;
        }
        stored += 1;
    }
    let (i, code, v) = refused.expect("the metadata volume never filled");
    assert_refused_for_space(code, &v, &root);
    // The refused file is not left in files/ without a record.
    let leftover = files_under(&root).into_iter().any(|p| {
        p.file_name()
            .is_some_and(|n| n == format!("f{i}.txt").as_str())
    });
    assert!(
        !leftover,
        "f{i}.txt was left in files/ though its upload was refused"
    );
    meta_fs.resize("64m");
    let (code, v) = post(
        &s,
        &format!("f{i}.txt"),
        format!("small file {i}").as_bytes(),
    );
    assert_eq!(code, 200, "{v}");
    assert!(stored > 0);
    stop_and_check(&mut s, &root);
}

#[test]
fn a_full_disk_refuses_merged_small_files_with_507_and_the_container_stays_readable() {
    let Some(disk) = FullDisk::start(json!({"enable_merge_small_file": true})) else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let (code, kept) = post(s, "kept.txt", b"merged before the disk filled");
    assert_eq!(code, 200, "{kept}");
    assert!(
        kept["path"].as_str().unwrap().contains("/haystack/"),
        "{kept}"
    );
    let filler = fill(root);
    let (code, v) = post(s, "late.txt", &noise(20_000, 5));
    assert_refused_for_space(code, &v, root);
    std::fs::remove_file(&filler).unwrap();
    let (code, v) = post(s, "late.txt", &noise(20_000, 5));
    assert_eq!(code, 200, "{v}");
    for (r, want) in [
        (&kept, b"merged before the disk filled".to_vec()),
        (&v, noise(20_000, 5)),
    ] {
        let (code, got) = common::cluster::get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]);
        assert_eq!((code, got), (200, want));
    }
}

/// The admin jobs that write, `repair_stat` (the day's counters in LMDB) and `backup` (the
/// day's export in `data/<date>/`), on a full disk: an answer in the JSON envelope (507 when
/// the disk refused), the counters and the previous export intact, nothing half-written left
/// to hold the space; once space returns both work again and the store checks clean.
#[test]
fn admin_jobs_on_a_full_disk_answer_507_leave_nothing_corrupt_and_recover() {
    let Some(mut disk) = FullDisk::start(json!({"enable_merge_small_file": false})) else {
        return;
    };
    let (s, root) = (&mut disk.s, &disk.root);
    let day = common::cluster::today();
    let admin = |route: &str| -> (u16, Value) {
        let (code, body) = call(agent().get(&s.url(&format!("/group1/{route}?date={day}"))));
        let v = serde_json::from_str(&body).unwrap_or_else(|_| panic!("not JSON: {body}"));
        (code, v)
    };
    for i in 0..30u64 {
        let (code, v) = post(s, &format!("f{i}.txt"), &noise(2_000, 100 + i));
        assert_eq!(code, 200, "{v}");
    }
    let export = root.join("data").join(&day);
    let (code, v) = admin("backup");
    assert_eq!(code, 200, "{v}");
    // (go-fastdfs answered before writing; the export is there once the answer is.)
    assert!(
        eventually(Duration::from_secs(5), || export.join("files.md5").exists()),
        "no export"
    );
    let first = std::fs::read_to_string(export.join("files.md5")).unwrap();
    assert_eq!(first.lines().count(), 30);
    for i in 30..40u64 {
        let (code, v) = post(s, &format!("f{i}.txt"), &noise(2_000, 100 + i));
        assert_eq!(code, 200, "{v}");
    }
    let filler = fill(root);
    let (code, v) = admin("repair_stat");
    if code == 200 {
        assert_eq!(v["data"]["fileCount"], 40, "{v}");
    } else {
        assert_refused_for_space(code, &v, root);
    }
    let (code, v) = admin("backup");
    assert_refused_for_space(code, &v, root);
    let left: Vec<_> = std::fs::read_dir(&export)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    assert!(
        left.iter().all(|n| n == "files.md5" || n == "meta.data"),
        "half-written export files left: {left:?}"
    );
    let kept = std::fs::read_to_string(export.join("files.md5")).unwrap();
    assert_eq!(kept, first, "the previous export was damaged");
    // (It is logged too, but the log is on the full disk here.)
    // Space returns: both jobs work, and the export holds every record.
    std::fs::remove_file(&filler).unwrap();
    let (code, v) = admin("repair_stat");
    assert_eq!((code, &v["data"]["fileCount"]), (200, &json!(40)), "{v}");
    let (code, v) = admin("backup");
    assert_eq!(code, 200, "{v}");
    let md5s = std::fs::read_to_string(export.join("files.md5")).unwrap();
    assert_eq!(md5s.lines().count(), 40);
    let meta = std::fs::read_to_string(export.join("meta.data")).unwrap();
    assert_eq!(
        meta.lines().count(),
        80,
        "each record under its md5 and its path key"
    );
    stop_and_check(s, root);
}

/// `repair` with a peer while this node's metadata volume is full: it stops with a logged
/// error, never reporting itself done (a change it cannot queue stops it too, rather than
/// asking the peer for files this node could not record either); nothing is lost, and once
/// space returns a repair brings both nodes to the same files and the store checks clean.
#[test]
fn a_repair_on_a_full_metadata_disk_stops_with_a_logged_error_and_recovers() {
    use common::cluster::{has_md5, write_config, Addresses};
    let tmp = tempfile::tempdir().unwrap();
    let (a_root, b_root) = (tmp.path().join("a"), tmp.path().join("b"));
    std::fs::create_dir_all(a_root.join("data")).unwrap();
    let Some(meta_fs) = Tmpfs::mount(&a_root.join("data"), "1m") else {
        return;
    };
    let Addresses { ips, ports, bases } = Addresses::pick(32, 2);
    for (i, root) in [&a_root, &b_root].into_iter().enumerate() {
        let o = json!({"peer_id": format!("{}", i + 1), "enable_merge_small_file": false});
        write_config(root, &ips[i], ports[i], &o);
    }
    let mut a = Server::start_in(&a_root, &ips[0], json!({}));
    let b = Server::start_in(&b_root, &ips[1], json!({}));
    let only_b: Vec<String> = (0..20u64)
        .map(|i| {
            let (code, v) = post(&b, &format!("b{i}.txt"), &noise(3_000, 500 + i));
            assert_eq!(code, 200, "{v}");
            v["md5"].as_str().unwrap().to_string()
        })
        .collect();
    // A fills its metadata volume with files only it has.
    let mut only_a = Vec::new();
    for i in 0..5_000u64 {
        let (code, v) = post(
            &a,
            &format!("a{i}.txt"),
            format!("only on a {i}").as_bytes(),
        );
        if code != 200 {
            assert_refused_for_space(code, &v, &a_root);
            break;
        }
        only_a.push(v["md5"].as_str().unwrap().to_string());
    }
    assert!(!only_a.is_empty());
    // The nodes become peers: A's reload starts a repair with B at once.
    for (root, base, other) in [
        (&a_root, &bases[0], &bases[1]),
        (&b_root, &bases[1], &bases[0]),
    ] {
        let conf = root.join("conf/cfg.json");
        let mut v: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
        v["peers"] = json!([other]);
        std::fs::write(&conf, v.to_string()).unwrap();
        let url = format!("{base}/group1/reload?action=reload&key=test-admin-key");
        assert_eq!(call(agent().get(&url)).0, 200);
    }
    assert!(
        eventually(Duration::from_secs(30), || a
            .stderr()
            .contains("repair with peer failed")),
        "the repair did not report its failure: {}",
        a.stderr()
    );
    assert!(
        !a.stderr().contains("repair with peer done"),
        "a repair that could not queue its changes said it was done"
    );
    // Space returns: a repair makes both nodes hold every file.
    meta_fs.resize("64m");
    let url = format!("{}/group1/repair?force=1", bases[0]);
    assert_eq!(call(agent().get(&url)).0, 200);
    let synced = || {
        only_b.iter().all(|m| has_md5(&bases[0], m)) && only_a.iter().all(|m| has_md5(&bases[1], m))
    };
    assert!(
        eventually(Duration::from_secs(90), synced),
        "not reconciled after space returned: {}",
        a.stderr()
    );
    stop_and_check(&mut a, &a_root);
}

/// Free bytes of the filesystem holding `dir` (`stat -f`: available blocks times their size).
fn free_bytes(dir: &Path) -> u64 {
    let out = Command::new("stat")
        .args(["-f", "-c", "%a %S"])
        .arg(dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut n = text.split_whitespace().map(|v| v.parse::<u64>().unwrap());
    n.next().unwrap() * n.next().unwrap()
}

/// Takes all but `left` bytes of the filesystem of `dir`; returns the filler.
fn fill_leaving(dir: &Path, left: u64) -> PathBuf {
    let filler = dir.join("filler");
    let mib = (free_bytes(dir).saturating_sub(left)) >> 20;
    let ok = Command::new("dd")
        .args(["if=/dev/zero", "bs=1M", &format!("count={mib}")])
        .arg(format!("of={}", filler.display()))
        .stderr(std::process::Stdio::null())
        .status()
        .unwrap();
    assert!(ok.success());
    filler
}

/// curl with `Expect: 100-continue` (it waits up to 5 s for the interim answer before sending
/// the body); returns (status, body, bytes of the request body it sent).
fn curl(args: &[&str], url: &str) -> (u16, String, u64) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "60", "--expect100-timeout", "5"])
        .args([
            "-H",
            "Expect: 100-continue",
            "-w",
            "\n%{http_code} %{size_upload}",
        ])
        .args(args)
        .arg(url)
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let (body, tail) = text.rsplit_once('\n').unwrap();
    let mut n = tail
        .split_whitespace()
        .map(|v| v.parse::<u64>().unwrap_or(0));
    (
        n.next().unwrap() as u16,
        body.to_string(),
        n.next().unwrap(),
    )
}

/// An upload whose size is announced up front (a multipart body's Content-Length, a tus
/// `Upload-Length` at creation or declared later, an S3 PUT's length) and that would not fit
/// in the free space left is refused at once with the 507 of a full disk, before any of its
/// body is read: curl's `Expect: 100-continue` gets the answer instead of `100 Continue` and
/// sends none of it, and no temp file appears. A body without a length (chunked) is still
/// refused once written as far as the space goes, its temp file removed. Uploads that fit
/// go through.
#[test]
fn an_upload_announced_larger_than_the_free_space_is_refused_before_its_body_is_read() {
    let Some(disk) = SmallDisk::start() else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let (big, fits) = (disk.file("big.bin", 12 << 20, 1), 1_500_000);
    let filler = fill_leaving(root, 8 << 20);
    let upload_url = s.url("/group1/upload?output=json");

    // Multipart: refused before the body.
    let (code, body, sent) = curl(&["-F", &format!("file=@{big}")], &upload_url);
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_refused_for_space(code, &v, root);
    assert_eq!(sent, 0, "the body was sent though refused: {body}");

    // tus: an Upload-Length at creation, and a deferred one declared by a PATCH.
    let tus = s.url("/group1/big/upload/");
    let create = |length: (&str, &str)| {
        call(
            agent()
                .post(&tus)
                .set("Tus-Resumable", "1.0.0")
                .set(length.0, length.1),
        )
    };
    let (code, body) = create(("Upload-Length", &(12u64 << 20).to_string()));
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_refused_for_space(code, &v, root);
    let r = agent()
        .post(&tus)
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Defer-Length", "1")
        .call()
        .unwrap();
    assert_eq!(r.status(), 201);
    let deferred = r.header("location").unwrap().to_string();
    let (code, body) = call(
        agent()
            .request("PATCH", &deferred)
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Offset", "0")
            .set("Upload-Length", &(12u64 << 20).to_string())
            .set("Content-Type", "application/offset+octet-stream"),
    );
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_refused_for_space(code, &v, root);

    // S3 PutObject: S3's error for a full store, before the body.
    let (code, body, sent) = disk.s3_curl(&["-T", &big], "/space/big.bin");
    assert_s3_refused_for_space(code, &body);
    assert_eq!(sent, 0, "the body was sent though refused: {body}");
    // S3 UploadPart likewise.
    let id = disk.s3_multipart("/space/parts.bin");
    let part = format!("/space/parts.bin?partNumber=1&uploadId={id}");
    let (code, body, sent) = disk.s3_curl(&["-T", &big], &part);
    assert_s3_refused_for_space(code, &body);
    assert_eq!(sent, 0, "the part was sent though refused: {body}");
    assert_eq!(disk.temps(), 0, "a refused upload made a temp file");

    // Without a length (chunked), the body is written as far as the space goes: still a
    // 507, and its temp file is removed.
    let (code, body, _) = curl(
        &[
            "-H",
            "Transfer-Encoding: chunked",
            "-F",
            &format!("file=@{big}"),
        ],
        &upload_url,
    );
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_refused_for_space(code, &v, root);
    assert!(
        eventually(Duration::from_secs(5), || disk.temps() == 0),
        "temp files left"
    );

    // What fits goes through, by each route.
    let small = disk.file("fits.bin", fits, 2);
    let (code, body, sent) = curl(&["-F", &format!("file=@{small}")], &upload_url);
    assert_eq!(code, 200, "{body}");
    assert!(sent > fits as u64);
    let length = fits.to_string();
    let r = agent()
        .post(&tus)
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Length", &length)
        .call()
        .unwrap();
    assert_eq!(r.status(), 201);
    let patched = agent()
        .request("PATCH", r.header("location").unwrap())
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Offset", "0")
        .set("Content-Type", "application/offset+octet-stream")
        .send_bytes(&noise(fits, 3))
        .unwrap();
    assert_eq!(patched.status(), 204);
    assert!(patched.header("x-fastdfs-url").is_some());
    let (code, body, _) = disk.s3_curl(&["-T", &small], "/space/fits.bin");
    assert_eq!(code, 200, "{body}");
    let kept = std::fs::metadata(root.join("files/space/fits.bin")).unwrap();
    assert_eq!(kept.len(), fits as u64);
    std::fs::remove_file(filler).unwrap();
}

/// The admission tests' setup: a server with tus and an S3 endpoint (bucket `space` made) on
/// a 32 MiB tmpfs, and a directory beside it for the files its clients send. Dropped, the
/// server stops before the tmpfs is unmounted.
struct SmallDisk {
    s: Server,
    /// The S3 endpoint's base URL.
    s3: String,
    /// curl's arguments to sign as the server's S3 key.
    signed: Vec<String>,
    /// The runtime dir: the tmpfs.
    root: PathBuf,
    data: PathBuf,
    _fs: Tmpfs,
    _tmp: tempfile::TempDir,
}

impl SmallDisk {
    /// None: no tmpfs can be mounted (the test is skipped).
    fn start() -> Option<SmallDisk> {
        SmallDisk::start_with(json!({}))
    }

    /// [`SmallDisk::start`] with more configuration keys.
    fn start_with(extra: serde_json::Value) -> Option<SmallDisk> {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("rt");
        let fs = Tmpfs::mount(&root, "32m")?;
        let data = tmp.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let s3_port = free_port("127.0.0.1");
        let (ak, sk) = ("AKSPACE", "space-secret");
        let s = Server::start_in(&root, "127.0.0.1", {
            let mut cfg = json!({
                "enable_tus": true,
                "enable_merge_small_file": false,
                "s3_addr": format!("127.0.0.1:{s3_port}"),
                "s3_region": "us-east-1",
                "s3_keys": [{"access_key_id": ak, "secret_access_key": sk, "buckets": ["*"]}],
            });
            for (k, v) in extra.as_object().expect("keys") {
                cfg[k] = v.clone();
            }
            cfg
        });
        let signed: Vec<String> = [
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
            "--user",
            &format!("{ak}:{sk}"),
            "-H",
            "x-amz-content-sha256: UNSIGNED-PAYLOAD",
        ]
        .map(String::from)
        .into();
        let disk = SmallDisk {
            s,
            s3: format!("http://127.0.0.1:{s3_port}"),
            signed,
            root,
            data,
            _fs: fs,
            _tmp: tmp,
        };
        let (code, body, _) = disk.s3_curl(&["-X", "PUT"], "/space");
        assert_eq!(code, 200, "{body}");
        Some(disk)
    }

    /// A file of `size` noise bytes in the data dir; its path.
    fn file(&self, name: &str, size: usize, seed: u64) -> String {
        let p = self.data.join(name);
        std::fs::write(&p, noise(size, seed)).unwrap();
        p.display().to_string()
    }

    /// [`curl`] signed as the S3 key, with `extra` arguments, at `path` of the S3 endpoint.
    fn s3_curl(&self, extra: &[&str], path: &str) -> (u16, String, u64) {
        curl(
            &[&args(&self.signed)[..], extra].concat(),
            &format!("{}{path}", self.s3),
        )
    }

    /// A new multipart upload of the object at `path`: its upload id.
    fn s3_multipart(&self, path: &str) -> String {
        let (code, body, _) = self.s3_curl(&["-X", "POST"], &format!("{path}?uploads="));
        assert_eq!(code, 200, "{body}");
        let id = body.split("<UploadId>").nth(1).unwrap();
        id.split("</UploadId>").next().unwrap().to_string()
    }

    /// Files in its upload temp dir.
    fn temps(&self) -> usize {
        temp_files(&self.root)
    }
}

/// S3's refusal of a write for a full store: 507 `InsufficientStorage`, naming no path.
fn assert_s3_refused_for_space(code: u16, body: &str) {
    assert_eq!(code, 507, "{body}");
    assert!(body.contains("<Code>InsufficientStorage</Code>"), "{body}");
    assert!(!body.contains("/tmp"), "{body}");
}

fn args(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// A new tus upload of `length` bytes; its URL.
fn tus_create(s: &Server, length: u64) -> String {
    let r = agent()
        .post(&s.url("/group1/big/upload/"))
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Length", &length.to_string())
        .call()
        .unwrap();
    assert_eq!(r.status(), 201);
    r.header("location").unwrap().to_string()
}

/// curl's arguments for a tus PATCH of `file` at offset 0.
fn tus_patch_args(file: &str) -> Vec<String> {
    [
        "-X",
        "PATCH",
        "-H",
        "Tus-Resumable: 1.0.0",
        "-H",
        "Upload-Offset: 0",
        "-H",
        "Content-Type: application/offset+octet-stream",
        "--data-binary",
        &format!("@{file}"),
    ]
    .map(String::from)
    .into()
}

/// Uploads admitted together are counted together: each announced size is checked against
/// the free space less what the uploads already admitted will still write. Six uploads of
/// 3 MiB each (two multipart, two tus PATCHes, two S3 PUTs), sent at once and slowly, onto
/// 8-9 MiB free: each fits alone, two fit together. Two are admitted and succeed; the four
/// others are refused with the 507 of a full disk before any of their bodies is sent; the
/// disk never fills. An upload whose connection died, and the admitted ones once done, give
/// their share back: later uploads that need it are admitted.
#[test]
fn uploads_admitted_together_are_counted_together_and_give_their_share_back() {
    let Some(disk) = SmallDisk::start() else {
        return;
    };
    let (s, s3, signed, root) = (&disk.s, &disk.s3, &disk.signed, &disk.root);
    let filler = fill_leaving(root, 8 << 20);
    let upload_url = s.url("/group1/upload?output=json");

    // An upload of 6 MiB whose client goes away midway: its share is given back.
    let dying = disk.file("dying.bin", 6 << 20, 50);
    let mut child = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--limit-rate", "1M"])
        .args(["-F", &format!("file=@{dying}"), &upload_url])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(10), || disk.temps() == 0),
        "the dead upload's temp file was left"
    );

    // Six at once, each sent at 1 MiB/s.
    let size = 3 << 20;
    let files: Vec<String> = (0..6)
        .map(|i| disk.file(&format!("f{i}.bin"), size, 60 + i))
        .collect();
    let tus_urls = [tus_create(s, size as u64), tus_create(s, size as u64)];
    let requests: Vec<(Vec<String>, String)> = files
        .iter()
        .enumerate()
        .map(|(i, f)| match i % 3 {
            0 => (vec!["-F".into(), format!("file=@{f}")], upload_url.clone()),
            1 => (tus_patch_args(f), tus_urls[i / 3].clone()),
            _ => (
                [signed.clone(), vec!["-T".into(), f.clone()]].concat(),
                format!("{s3}/space/f{i}.bin"),
            ),
        })
        .collect();
    let watch = LowestFree::watch(root);
    let answers: Vec<(u16, String, u64)> = std::thread::scope(|sc| {
        let hs: Vec<_> = requests
            .iter()
            .map(|(a, url)| {
                sc.spawn(move || curl(&[args(a), vec!["--limit-rate", "1M"]].concat(), url))
            })
            .collect();
        hs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let lowest = watch.lowest();
    let admitted: Vec<_> = answers.iter().filter(|a| a.0 != 507).collect();
    assert_eq!(admitted.len(), 2, "{answers:?}");
    for (code, body, sent) in &answers {
        if *code == 507 {
            assert!(body.contains("disk is full") || body.contains("InsufficientStorage"));
            assert_eq!(*sent, 0, "a refused upload's body was sent: {body}");
        } else {
            assert!(*code == 200 || *code == 204, "{code} {body}");
            assert!(*sent >= size as u64);
        }
    }
    assert!(
        lowest >= 1 << 20,
        "the disk filled: {lowest} bytes were left"
    );
    assert!(
        eventually(Duration::from_secs(5), || disk.temps() == 0),
        "temp files left"
    );

    // Done, the admitted uploads promise nothing more: what is left (2-3 MiB, less the
    // reserve) takes an upload of 1.1 MiB.
    let last = disk.file("last.bin", 1_100_000, 70);
    let (code, body, _) = curl(&["-F", &format!("file=@{last}")], &upload_url);
    assert_eq!(code, 200, "{body}");
    std::fs::remove_file(filler).unwrap();
}

/// The lowest free space of a filesystem seen while it runs: a thread asks `statvfs` in a
/// loop (microseconds each: a disk that fills for a moment is seen) until stopped.
struct LowestFree {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<u64>,
}

impl LowestFree {
    fn watch(dir: &Path) -> LowestFree {
        use std::os::unix::ffi::OsStrExt;
        let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).unwrap();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut lowest = u64::MAX;
            while !stopped.load(std::sync::atomic::Ordering::SeqCst) {
                // SAFETY: a zeroed statvfs is a valid out-parameter; `c` is NUL-terminated.
                let mut v: libc::statvfs = unsafe { std::mem::zeroed() };
                // SAFETY: statvfs only writes into `v`.
                if unsafe { libc::statvfs(c.as_ptr(), &mut v) } == 0 {
                    lowest = lowest.min(v.f_bavail as u64 * v.f_frsize as u64);
                }
                std::thread::yield_now();
            }
            lowest
        });
        LowestFree { stop, thread }
    }

    fn lowest(self) -> u64 {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        self.thread.join().unwrap()
    }
}

/// S3 CompleteMultipartUpload copies the parts into the object: when their total would not
/// fit in the free space it is refused up front with S3's error for a full store (507,
/// `InsufficientStorage`), without writing anything (the disk never fills, no temp file);
/// the upload and its parts stay, and once space returns the same completion succeeds.
#[test]
fn a_multipart_completion_larger_than_the_free_space_is_refused_up_front() {
    let Some(disk) = SmallDisk::start() else {
        return;
    };
    let (root, signed) = (&disk.root, args(&disk.signed));
    let object = "/space/joined.bin";
    let id = disk.s3_multipart(object);
    let parts: Vec<Vec<u8>> = vec![noise(5 << 20, 81), noise(5 << 20, 82)];
    let mut complete = String::from("<CompleteMultipartUpload>");
    for (i, part) in parts.iter().enumerate() {
        let f = disk.data.join(format!("part{i}"));
        std::fs::write(&f, part).unwrap();
        let (code, body, _) = disk.s3_curl(
            &["-T", &f.display().to_string()],
            &format!("{object}?partNumber={}&uploadId={id}", i + 1),
        );
        assert_eq!(code, 200, "{body}");
        let md5 = Command::new("md5sum").arg(&f).output().unwrap().stdout;
        let md5 = String::from_utf8_lossy(&md5[..32]).into_owned();
        complete.push_str(&format!(
            "<Part><PartNumber>{}</PartNumber><ETag>\"{md5}\"</ETag></Part>",
            i + 1
        ));
    }
    complete.push_str("</CompleteMultipartUpload>");
    let complete_file = disk.data.join("complete.xml");
    std::fs::write(&complete_file, &complete).unwrap();
    let complete_arg = format!("@{}", complete_file.display());
    let completion = ["-X", "POST", "--data-binary", &complete_arg];
    let upload = format!("{object}?uploadId={id}");
    let filler = fill_leaving(root, 6 << 20);
    let watch = LowestFree::watch(root);
    let (code, body, _) = disk.s3_curl(&completion, &upload);
    let lowest = watch.lowest();
    assert_s3_refused_for_space(code, &body);
    assert!(
        lowest >= 512 << 10,
        "the completion was started: the disk filled ({lowest} bytes left)"
    );
    assert_eq!(disk.temps(), 0);
    // The upload is still there; with space back, the same completion makes the object.
    let (code, body, _) = disk.s3_curl(&[], &upload);
    assert_eq!(code, 200, "ListParts: {body}");
    assert_eq!(body.matches("<Part>").count(), 2, "{body}");
    std::fs::remove_file(filler).unwrap();
    let (code, body, _) = disk.s3_curl(&completion, &upload);
    assert_eq!(code, 200, "{body}");
    let got = Command::new("curl")
        .args(["-sS", "--fail"])
        .args(&signed)
        .arg(format!("{}{object}", disk.s3))
        .output()
        .unwrap();
    assert!(got.status.success());
    assert_eq!(got.stdout, parts.concat());
}

/// S3 copies (CopyObject, UploadPartCopy) write a new file of the source's size: one that
/// would not fit in the free space is refused up front with `InsufficientStorage` (507), the
/// disk never filled, nothing left; with space back the same copy succeeds.
#[test]
fn an_s3_copy_larger_than_the_free_space_is_refused_up_front() {
    let Some(disk) = SmallDisk::start() else {
        return;
    };
    let source = disk.file("source.bin", 6 << 20, 91);
    let (code, body, _) = disk.s3_curl(&["-T", &source], "/space/source.bin");
    assert_eq!(code, 200, "{body}");
    let id = disk.s3_multipart("/space/parts.bin");
    let copy = ["-X", "PUT", "-H", "x-amz-copy-source: /space/source.bin"];
    let copy_object = "/space/copy.bin".to_string();
    let part_copy = format!("/space/parts.bin?partNumber=1&uploadId={id}");
    let filler = fill_leaving(&disk.root, 4 << 20);
    for url in [&copy_object, &part_copy] {
        let watch = LowestFree::watch(&disk.root);
        let (code, body, _) = disk.s3_curl(&copy, url);
        let lowest = watch.lowest();
        assert_s3_refused_for_space(code, &body);
        assert!(
            lowest >= 512 << 10,
            "{url}: the copy was started: the disk filled ({lowest} bytes left)"
        );
    }
    assert_eq!(disk.temps(), 0);
    std::fs::remove_file(filler).unwrap();
    for url in [&copy_object, &part_copy] {
        let (code, body, _) = disk.s3_curl(&copy, url);
        assert_eq!(code, 200, "{url}: {body}");
    }
}

/// A file a peer announces is fetched only when it fits: a node whose disk cannot take it
/// does not start the transfer (its disk never fills, its own uploads are not starved), and
/// fetches it once space returns.
#[test]
fn a_peer_file_larger_than_the_free_space_is_not_fetched_until_it_fits() {
    use common::cluster::{has_md5, upload_to, write_config, Addresses};
    let tmp = tempfile::tempdir().unwrap();
    let (a_root, b_root) = (tmp.path().join("a"), tmp.path().join("b"));
    let Some(_fs) = Tmpfs::mount(&a_root, "32m") else {
        return;
    };
    let Addresses { ips, ports, bases } = Addresses::pick(33, 2);
    for (i, root) in [&a_root, &b_root].into_iter().enumerate() {
        let o = json!({
            "peer_id": format!("{}", i + 1),
            "peers": [&bases[1 - i]],
            "enable_merge_small_file": false,
        });
        write_config(root, &ips[i], ports[i], &o);
    }
    let a = Server::start_in(&a_root, &ips[0], json!({}));
    let _b = Server::start_in(&b_root, &ips[1], json!({}));
    let filler = fill_leaving(&a_root, 4 << 20);
    let watch = LowestFree::watch(&a_root);
    let v = upload_to(&bases[1], "big.bin", &noise(6 << 20, 95));
    let md5 = v["md5"].as_str().unwrap().to_string();
    std::thread::sleep(Duration::from_secs(4));
    let lowest = watch.lowest();
    assert!(
        lowest >= 512 << 10,
        "the fetch was started: the disk filled ({lowest} bytes left): {}",
        a.stderr()
    );
    assert!(!has_md5(&bases[0], &md5));
    std::fs::remove_file(filler).unwrap();
    assert!(
        eventually(Duration::from_secs(60), || has_md5(&bases[0], &md5)),
        "not fetched once space returned: {}",
        a.stderr()
    );
}

/// A body without a length up front (chunked) cannot be admitted before it is read, but it
/// is metered as it is written: it takes the free space in steps, beside the uploads in
/// flight, and is refused with the 507 of a full disk once the next step would take the
/// reserve. The disk never fills (the other writers keep the reserve), no temp file is left,
/// and a chunked upload that fits still goes through.
#[test]
fn a_chunked_upload_is_refused_before_it_takes_the_reserve() {
    let Some(disk) = SmallDisk::start() else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let big = disk.file("big.bin", 12 << 20, 97);
    let filler = fill_leaving(root, 8 << 20);
    let upload_url = s.url("/group1/upload?output=json");
    let chunked = ["-H", "Transfer-Encoding: chunked"];

    let watch = LowestFree::watch(root);
    let (code, body, _) = curl(
        &[&chunked[..], &["-F", &format!("file=@{big}")]].concat(),
        &upload_url,
    );
    let lowest = watch.lowest();
    let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
    assert_refused_for_space(code, &v, root);
    assert!(
        lowest >= 512 << 10,
        "multipart: the disk filled ({lowest} bytes left)"
    );

    // A tus upload of deferred length, its PATCH chunked (what it wrote before the refusal
    // is kept, as tus keeps a body cut short).
    let r = agent()
        .post(&s.url("/group1/big/upload/"))
        .set("Tus-Resumable", "1.0.0")
        .set("Upload-Defer-Length", "1")
        .call()
        .unwrap();
    let url = r.header("location").unwrap().to_string();
    let watch = LowestFree::watch(root);
    let (code, body, _) = curl(&[&chunked[..], &args(&tus_patch_args(&big))].concat(), &url);
    let lowest = watch.lowest();
    assert_eq!(code, 507, "{body}");
    assert!(
        lowest >= 512 << 10,
        "tus: the disk filled ({lowest} bytes left)"
    );

    assert!(
        eventually(Duration::from_secs(5), || disk.temps() == 0),
        "temp files left"
    );
    std::fs::remove_file(filler).unwrap();
}

/// One client (an address that is no admin) may hold at most its share of the space left for
/// uploads beside the others' (`upload_space_per_client_percent`, here half): a client
/// sending a big upload slowly cannot also claim the rest with a second one, and another
/// client's upload still fits meanwhile.
#[test]
fn one_client_cannot_claim_the_space_the_others_need() {
    let Some(disk) = SmallDisk::start_with(json!({"upload_space_per_client_percent": 50})) else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let filler = fill_leaving(root, 20 << 20);
    let url = s.url("/group1/upload?output=json");
    let (a1, a2, b) = (
        disk.file("a1.bin", 9 << 20, 81),
        disk.file("a2.bin", 9 << 20, 82),
        disk.file("b.bin", 4 << 20, 83),
    );
    // Client A's first upload, sent slowly: it holds its 9 MiB meanwhile.
    let mut slow = Command::new("curl")
        .args(["-sS", "-o", "/dev/null", "--limit-rate", "200K"])
        .args([
            "--interface",
            "127.0.0.90",
            "-F",
            &format!("file=@{a1}"),
            &url,
        ])
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    // Its second would take it past half of what is left: refused before its body is sent.
    let (code, body, sent) = curl(
        &["--interface", "127.0.0.90", "-F", &format!("file=@{a2}")],
        &url,
    );
    assert_eq!((code, sent), (507, 0), "{body}");
    // Client B's upload fits beside A's.
    let (code, body, _) = curl(
        &["--interface", "127.0.0.91", "-F", &format!("file=@{b}")],
        &url,
    );
    assert_eq!(code, 200, "{body}");
    slow.kill().unwrap();
    slow.wait().unwrap();
    assert!(
        s.stderr().contains("one client may hold 50% of the"),
        "the log says why"
    );
    std::fs::remove_file(filler).unwrap();
}

/// S3 copies (CopyObject, UploadPartCopy) and multipart completions write a new file as big
/// as what they copy: a client that is no admin may claim for it at most its share of the
/// space left, as for a PUT of the same size (`upload_space_per_client_percent`, here half):
/// past it the write is refused up front with `InsufficientStorage` (507) though the disk
/// could take it. An admin's copy of the same size, which only the total bounds, is taken.
#[test]
fn s3_copies_and_completions_are_held_to_the_clients_share() {
    let Some(disk) = SmallDisk::start_with(json!({"upload_space_per_client_percent": 50})) else {
        return;
    };
    let client = ["--interface", "127.0.0.90"];
    let put = |name: &str, size: usize, seed: u64, path: &str| {
        let f = disk.file(name, size, seed);
        let (code, body, _) = disk.s3_curl(&[&client[..], &["-T", &f]].concat(), path);
        assert_eq!(code, 200, "{path}: {body}");
        let md5 = Command::new("md5sum").arg(&f).output().unwrap().stdout;
        String::from_utf8_lossy(&md5[..32]).into_owned()
    };
    let filler = fill_leaving(&disk.root, 20 << 20);
    // Room for uploads: 19.5-20.5 MiB; the client's PUTs fit in half of what is left.
    put("source.bin", 5 << 20, 31, "/space/source.bin");
    let id = disk.s3_multipart("/space/joined.bin");
    let md5s = [
        put(
            "p1.bin",
            5 << 20,
            32,
            &format!("/space/joined.bin?partNumber=1&uploadId={id}"),
        ),
        put(
            "p2.bin",
            1 << 20,
            33,
            &format!("/space/joined.bin?partNumber=2&uploadId={id}"),
        ),
    ];
    let complete: String = md5s
        .iter()
        .enumerate()
        .map(|(i, md5)| {
            format!(
                "<Part><PartNumber>{}</PartNumber><ETag>\"{md5}\"</ETag></Part>",
                i + 1
            )
        })
        .collect();
    let complete_file = disk.data.join("complete.xml");
    let xml = format!("<CompleteMultipartUpload>{complete}</CompleteMultipartUpload>");
    std::fs::write(&complete_file, xml).unwrap();
    let complete_arg = format!("@{}", complete_file.display());
    let completion = ["-X", "POST", "--data-binary", &complete_arg];
    let joined = format!("/space/joined.bin?uploadId={id}");
    // Left: 8.5-9.5 MiB, so 5 MiB (a copy) and 6 MiB (the completion) fit on the disk but
    // not in the client's half. Each write taken is undone, so that each is tried alike.
    let copy = ["-X", "PUT", "-H", "x-amz-copy-source: /space/source.bin"];
    let mut codes = Vec::new();
    let (code, body, _) = disk.s3_curl(&[&client[..], &copy].concat(), "/space/copy.bin");
    if code == 200 {
        assert_eq!(disk.s3_curl(&["-X", "DELETE"], "/space/copy.bin").0, 204);
    }
    codes.push((code, body));
    let other = disk.s3_multipart("/space/parts.bin");
    let part_copy = format!("/space/parts.bin?partNumber=1&uploadId={other}");
    let (code, body, _) = disk.s3_curl(&[&client[..], &copy].concat(), &part_copy);
    let abort = format!("/space/parts.bin?uploadId={other}");
    assert_eq!(disk.s3_curl(&["-X", "DELETE"], &abort).0, 204);
    codes.push((code, body));
    let (code, body, _) = disk.s3_curl(&[&client[..], &completion].concat(), &joined);
    codes.push((code, body));
    assert!(codes.iter().all(|(code, _)| *code == 507), "{codes:?}");
    for (code, body) in &codes {
        assert_s3_refused_for_space(*code, body);
    }
    assert_eq!(disk.temps(), 0);
    // An admin's completion is bounded by the total only.
    let (code, body, _) = disk.s3_curl(&completion, &joined);
    assert_eq!(code, 200, "{body}");
    std::fs::remove_file(filler).unwrap();
}

/// A tus POST to the creation URL from the local address `ip` with `headers`: its status and
/// `Location`.
fn tus_post_from(s: &Server, ip: &str, headers: &[&str]) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-sS",
        "-o",
        "/dev/null",
        "-D",
        "-",
        "--interface",
        ip,
        "-X",
        "POST",
    ]);
    for h in [&["Tus-Resumable: 1.0.0"][..], headers].concat() {
        cmd.args(["-H", h]);
    }
    let out = cmd.arg(s.url("/group1/big/upload/")).output().unwrap();
    let head = String::from_utf8_lossy(&out.stdout).into_owned();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    let location = head.lines().find_map(|l| {
        let (name, value) = l.split_once(':')?;
        name.eq_ignore_ascii_case("location")
            .then(|| value.trim().to_string())
    });
    (code, location.unwrap_or_default())
}

/// A tus final upload (concatenation) copies its partial uploads into a new file: a client
/// that is no admin may claim for it at most its share of the space left, as for the
/// partial uploads themselves (`upload_space_per_client_percent`, here half): past it the
/// creation is refused with 507 though the disk could take it.
#[test]
fn a_tus_concatenation_is_held_to_the_clients_share() {
    let Some(disk) = SmallDisk::start_with(json!({"upload_space_per_client_percent": 50})) else {
        return;
    };
    let filler = fill_leaving(&disk.root, 20 << 20);
    let ip = "127.0.0.90";
    let mut parts = Vec::new();
    for i in 0..2 {
        let f = disk.file(&format!("part{i}.bin"), 4 << 20, 40 + i);
        let length = format!("Upload-Length: {}", 4 << 20);
        let (code, url) = tus_post_from(&disk.s, ip, &[&length, "Upload-Concat: partial"]);
        assert_eq!(code, 201);
        let (code, body, _) = curl(
            &[&["--interface", ip][..], &args(&tus_patch_args(&f))].concat(),
            &url,
        );
        assert_eq!(code, 204, "{body}");
        parts.push(url);
    }
    // Left: 11.5-12.5 MiB: the 8 MiB of the final upload fit on the disk, not in half of it.
    let concat = format!("Upload-Concat: final;{}", parts.join(" "));
    let (code, _) = tus_post_from(&disk.s, ip, &[&concat]);
    assert_eq!(code, 507);
    assert_eq!(disk.temps(), 0);
    // An admin's (the partial uploads are anyone's who knows their URLs) is taken.
    let (code, _) = tus_post_from(&disk.s, "127.0.0.1", &[&concat]);
    assert_eq!(code, 201);
    std::fs::remove_file(filler).unwrap();
}

/// By default a client's share is 90 % of the space left: one upload of more than half the
/// free space from a client that is no admin (a backup script, every client behind a proxy
/// whose address is not trusted) is taken.
#[test]
fn one_upload_of_most_of_the_free_space_is_taken_by_default() {
    let Some(disk) = SmallDisk::start() else {
        return;
    };
    let (s, root) = (&disk.s, &disk.root);
    let filler = fill_leaving(root, 20 << 20);
    let big = disk.file("big.bin", 14 << 20, 84);
    let (code, body, _) = curl(
        &["--interface", "127.0.0.90", "-F", &format!("file=@{big}")],
        &s.url("/group1/upload?output=json"),
    );
    assert_eq!(code, 200, "{body}");
    std::fs::remove_file(filler).unwrap();
}
