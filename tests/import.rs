//! In-place switch from go-fastdfs (issue 4): a runtime dir filled by the real go-fastdfs
//! binary through its own upload API (scenes, custom paths, renamed files) is served by
//! fastdfs-rs after a restart in the same dir: every URL go-fastdfs returned downloads the same
//! bytes, metadata is found by md5 and path, files without records are indexed, and no old
//! file is modified or deleted. `fastdfs import --from DIR` does the same for a dir elsewhere.
mod common;
use common::go::*;
use common::*;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// One upload made through go-fastdfs: (download path, md5, bytes).
type Uploaded = (String, String, Vec<u8>);

/// Uploads to go-fastdfs.
fn go_upload(base: &str, name: &str, data: &[u8], fields: &[(&str, &str)]) -> Uploaded {
    let mut all = vec![("output", "json")];
    all.extend_from_slice(fields);
    let (ct, body) = multipart(&all, Some((name, data)));
    let r = agent()
        .post(&format!("{base}/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body)
        .unwrap();
    let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
    (
        v["path"].as_str().unwrap().to_string(),
        v["md5"].as_str().unwrap().to_string(),
        data.to_vec(),
    )
}

/// Every file under `files/` with its bytes (to prove nothing was modified or deleted).
fn snapshot(dir: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, d: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                walk(root, &p, out);
            } else {
                out.insert(
                    p.strip_prefix(root).unwrap().display().to_string(),
                    std::fs::read(&p).unwrap(),
                );
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(&dir.join("files"), &dir.join("files"), &mut out);
    out.retain(|k, _| !k.starts_with("_tmp"));
    out
}

/// A go-fastdfs runtime dir with varied uploads, the node stopped; returns the uploads.
fn fixture() -> Option<(GoNode, Vec<Uploaded>)> {
    let bin = go_bin()?;
    let mut go = GoNode::start(&bin);
    let base = go.base();
    let uploads = vec![
        go_upload(&base, "hello.txt", b"hello from go-fastdfs\n", &[]),
        go_upload(
            &base,
            "photo.jpg",
            &[0xffu8, 0xd8, 0xff, 0xe0, 1, 2, 3],
            &[("scene", "photos")],
        ),
        go_upload(
            &base,
            "doc.pdf",
            b"%PDF-1.4 custom path",
            &[("path", "archive/2026")],
        ),
        go_upload(
            &base,
            "orig.bin",
            b"renamed content",
            &[("filename", "renamed.bin")],
        ),
        go_upload(&base, "my file-(1).txt", b"special characters", &[]),
    ];
    go.stop();
    // A file that no go-fastdfs record names (copied in by hand).
    std::fs::create_dir_all(go.dir.path().join("files/manual")).unwrap();
    std::fs::write(
        go.dir.path().join("files/manual/placed.txt"),
        b"placed by hand",
    )
    .unwrap();
    Some((go, uploads))
}

fn check_served(s: &Server, uploads: &[Uploaded]) {
    for (path, md5, data) in uploads {
        let r = agent()
            .get(&s.url(path))
            .call()
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut r.into_reader(), &mut got).unwrap();
        assert_eq!(&got, data, "{path}");
        let (code, info) = call(agent().get(&s.url(&format!("/group1/get_file_info?md5={md5}"))));
        assert_eq!(code, 200, "{path}: {info}");
        let (code, by_path) =
            call(agent().get(&s.url(&format!("/group1/get_file_info?path={path}"))));
        assert_eq!(code, 200, "{path} by path: {by_path}");
    }
    let (code, manual) =
        call(agent().get(&s.url("/group1/get_file_info?path=/group1/manual/placed.txt")));
    assert_eq!(code, 200, "{manual}");
    let v: Value = serde_json::from_str(&manual).unwrap();
    assert_eq!(v["data"]["md5"], md5_hex(b"placed by hand"));
}

#[test]
fn starting_in_a_go_fastdfs_dir_keeps_every_url_valid() {
    let Some((go, uploads)) = fixture() else {
        return;
    };
    let dir = go.dir.path().to_path_buf();
    let before = snapshot(&dir);
    // Same cfg.json (go-fastdfs' keys, comment keys and all); only the address changes.
    let conf = dir.join("conf/cfg.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    let port = free_port("127.0.0.1");
    cfg["addr"] = json!(format!("127.0.0.1:{port}"));
    std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let s = Server::start_in(&dir, "127.0.0.1", json!({}));
    check_served(&s, &uploads);
    // The scene and rename survive the import.
    let (_, photo) =
        call(agent().get(&s.url(&format!("/group1/get_file_info?md5={}", uploads[1].1))));
    assert_eq!(
        serde_json::from_str::<Value>(&photo).unwrap()["data"]["scene"],
        "photos"
    );
    let (_, renamed) =
        call(agent().get(&s.url(&format!("/group1/get_file_info?md5={}", uploads[3].1))));
    let renamed: Value = serde_json::from_str(&renamed).unwrap();
    assert_eq!(
        (
            renamed["data"]["name"].as_str(),
            renamed["data"]["rename"].as_str()
        ),
        (Some("orig.bin"), Some("renamed.bin"))
    );
    // Dedup knows the imported content: re-uploading it answers the old URL.
    let again = upload_json(&s, "again.txt", b"hello from go-fastdfs\n");
    assert_eq!(again["path"].as_str().unwrap(), uploads[0].0);
    assert!(s.stderr().contains("import"), "progress is logged");
    assert_eq!(
        snapshot(&dir),
        before,
        "no old file was modified or deleted"
    );
}

#[test]
fn import_command_copies_a_go_fastdfs_dir_from_elsewhere() {
    let Some((go, uploads)) = fixture() else {
        return;
    };
    let target = tempfile::tempdir().unwrap();
    let port = free_port("127.0.0.1");
    std::fs::create_dir_all(target.path().join("conf")).unwrap();
    let cfg = base_config("127.0.0.1", port, &json!({}));
    std::fs::write(target.path().join("conf/cfg.json"), cfg.to_string()).unwrap();
    let out = std::process::Command::new(BIN)
        .args(["import", "--from"])
        .arg(go.dir.path())
        .arg("--dir")
        .arg(target.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("imported 5 records from LevelDB and 1 files"),
        "{text}"
    );
    let s = Server::start_in(target.path(), "127.0.0.1", json!({}));
    check_served(&s, &uploads);
}

/// Every entry under `dir` (relative paths), to prove a refused import created nothing.
fn tree(dir: &Path) -> Vec<String> {
    fn walk(root: &Path, d: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(d).unwrap().flatten() {
            let p = e.path();
            out.push(p.strip_prefix(root).unwrap().display().to_string());
            if p.is_dir() {
                walk(root, &p, out);
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort();
    out
}

#[test]
fn import_refuses_a_source_that_is_not_a_go_fastdfs_dir() {
    let tmp = tempfile::tempdir().unwrap();
    let target = tmp.path().join("target");
    std::fs::create_dir_all(&target).unwrap();
    let empty = tmp.path().join("empty");
    std::fs::create_dir_all(empty.join("conf")).unwrap();
    let plain_file = tmp.path().join("plain.txt");
    std::fs::write(&plain_file, b"a file, not a dir").unwrap();
    let missing = tmp.path().join("no-such-dir");
    let cases = [
        (&missing, "does not exist"),
        (&plain_file, "is not a directory"),
        (
            &empty,
            "is not a go-fastdfs runtime dir: it holds neither files/ nor data/fileserver.db",
        ),
    ];
    for (from, why) in cases {
        let from = from.display().to_string();
        let (code, out) = run_to_exit(
            &target,
            &["import", "--from", &from],
            std::time::Duration::from_secs(30),
        );
        assert_eq!(code, Some(1), "{from}: {out}");
        assert!(out.contains(&from) && out.contains(why), "{from}: {out}");
        assert_eq!(out.lines().count(), 1, "one line: {out}");
        assert_eq!(
            tree(&target),
            ["run.out"],
            "nothing created in the target runtime dir"
        );
    }
}

#[test]
fn import_command_takes_a_dir_with_files_only() {
    let tmp = tempfile::tempdir().unwrap();
    let from = tmp.path().join("old");
    let placed = from.join("files/default/20260101/a.txt");
    std::fs::create_dir_all(placed.parent().unwrap()).unwrap();
    std::fs::write(&placed, b"no LevelDB, only files").unwrap();
    std::fs::create_dir_all(from.join("files/custom")).unwrap();
    std::fs::write(from.join("files/custom/b.txt"), b"a custom path").unwrap();
    let target = tmp.path().join("target");
    std::fs::create_dir_all(target.join("conf")).unwrap();
    let cfg = base_config("127.0.0.1", free_port("127.0.0.1"), &json!({}));
    std::fs::write(target.join("conf/cfg.json"), cfg.to_string()).unwrap();
    let (code, out) = run_to_exit(
        &target,
        &["import", "--from", &from.display().to_string()],
        std::time::Duration::from_secs(60),
    );
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("imported 0 records from LevelDB and 2 files without records"),
        "{out}"
    );
    assert_eq!(
        std::fs::read(target.join("files/default/20260101/a.txt")).unwrap(),
        b"no LevelDB, only files"
    );
}
