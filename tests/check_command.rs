//! `fastdfs check [--repair]` (server stopped): reports missing, truncated and corrupted files
//! with exit code 2; `--repair` drops records of missing files, quarantines corrupted ones and
//! indexes files without records; a second check is then clean (exit 0).
mod common;
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

fn run_check(dir: &std::path::Path, repair: bool) -> (i32, String) {
    let mut cmd = Command::new(BIN);
    cmd.arg("check").arg("--dir").arg(dir);
    if repair {
        cmd.arg("--repair");
    }
    let out = cmd.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn check_reports_damage_and_repair_fixes_the_index() {
    let mut s = Server::start(json!({}));
    let fine = upload_json(&s, "fine.txt", b"all good");
    let gone = upload_json(&s, "gone.txt", b"will be deleted by hand");
    let short = upload_json(&s, "short.txt", b"will be truncated");
    let flipped = upload_json(&s, "flipped.txt", b"will be corrupted");
    let dir = s.dir.clone();
    s.stop();
    let on_disk = |r: &serde_json::Value| {
        dir.join("files")
            .join(r["path"].as_str().unwrap().trim_start_matches("/group1/"))
    };
    std::fs::remove_file(on_disk(&gone)).unwrap();
    std::fs::write(on_disk(&short), b"will be").unwrap();
    std::fs::write(on_disk(&flipped), b"WILL be corrupted").unwrap();
    std::fs::create_dir_all(dir.join("files/extra")).unwrap();
    std::fs::write(dir.join("files/extra/unindexed.txt"), b"no record yet").unwrap();

    let (code, out) = run_check(&dir, false);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("missing") && out.contains("gone.txt"), "{out}");
    assert!(
        out.contains("size mismatch") && out.contains("short.txt"),
        "{out}"
    );
    assert!(
        out.contains("digest mismatch") && out.contains("flipped.txt"),
        "{out}"
    );
    assert!(out.contains("checked 4 files: 1 ok"), "{out}");

    let (code, out) = run_check(&dir, true);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("repaired 3 records, indexed 1"), "{out}");
    assert!(dir.join("data/quarantine").read_dir().unwrap().count() == 2);
    let (code, out) = run_check(&dir, false);
    assert_eq!(code, 0, "{out}");
    assert!(out.contains("checked 2 files: 2 ok"), "{out}");

    s.spawn();
    let (code, _) = call(agent().get(&s.url(&format!(
        "/group1/get_file_info?md5={}",
        fine["md5"].as_str().unwrap()
    ))));
    assert_eq!(code, 200);
    let (code, _) = call(agent().get(&s.url(&format!(
        "/group1/get_file_info?md5={}",
        gone["md5"].as_str().unwrap()
    ))));
    assert_eq!(code, 404);
    let (code, _) =
        call(agent().get(&s.url("/group1/get_file_info?path=/group1/extra/unindexed.txt")));
    assert_eq!(code, 200);
}

#[test]
fn check_refuses_while_the_server_runs() {
    let s = Server::start(json!({}));
    let (code, _) = run_check(&s.dir, false);
    assert_eq!(code, 1, "the runtime dir is locked by the running server");
}

/// Every entry under `dir` (relative paths), to prove a failed command created nothing.
fn tree(dir: &std::path::Path) -> Vec<String> {
    let mut out: Vec<String> = walk(dir)
        .into_iter()
        .map(|p| p.strip_prefix(dir).unwrap().display().to_string())
        .collect();
    out.sort();
    out
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        }
        out.push(p);
    }
    out
}

#[test]
fn check_and_compact_refuse_a_dir_that_is_not_a_runtime_dir() {
    for cmd in ["check", "compact"] {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("unrelated.txt"), b"not a runtime dir").unwrap();
        // In the working directory (the default runtime dir), as an operator would.
        let (code, out) = run_to_exit(tmp.path(), &[cmd], Duration::from_secs(30));
        assert_eq!(code, Some(1), "{cmd}: {out}");
        assert!(
            out.contains("is not a fastdfs runtime dir (no conf/cfg.json)")
                && out.contains("GO_FASTDFS_DIR"),
            "{cmd}: {out}"
        );
        let real = tmp.path().canonicalize().unwrap();
        assert!(out.contains(&real.display().to_string()), "{cmd}: {out}");
        assert_eq!(out.lines().count(), 1, "{cmd}: one line: {out}");
        assert_eq!(
            tree(tmp.path()),
            ["run.out", "unrelated.txt"],
            "{cmd} created nothing"
        );
    }
}

#[test]
fn check_and_compact_refuse_a_runtime_dir_that_never_ran() {
    for cmd in ["check", "compact"] {
        let tmp = tempfile::tempdir().unwrap();
        let conf = tmp.path().join("conf");
        std::fs::create_dir_all(&conf).unwrap();
        let cfg = base_config("127.0.0.1", free_port("127.0.0.1"), &json!({}));
        std::fs::write(conf.join("cfg.json"), cfg.to_string()).unwrap();
        let dir = tmp.path().display().to_string();
        let (code, out) = run_to_exit(tmp.path(), &["--dir", &dir, cmd], Duration::from_secs(30));
        assert_eq!(code, Some(1), "{cmd}: {out}");
        assert!(
            out.contains(&dir) && out.contains("has no data/") && out.contains("never run"),
            "{cmd}: {out}"
        );
        assert_eq!(
            tree(tmp.path()),
            ["conf", "conf/cfg.json", "run.out"],
            "{cmd} created nothing"
        );
    }
}
