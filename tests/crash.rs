//! Crash points (issue 13, item 6): the server is built with the `failpoints` feature
//! (scripts/test-all.sh) and started with `FASTDFS_FAILPOINTS=<point>`; the process ends at
//! that point as a kill -9 there would. After a restart: every acknowledged file is present and
//! byte-exact, the interrupted change is all or nothing (never a file without a record or a
//! record without its file), and `fastdfs check` is clean. One test per kind of change, each
//! over every point that change passes (src/failpoint.rs lists them).
#![cfg(feature = "failpoints")]
#![allow(clippy::result_large_err)] // ureq::Error, in a test closure
mod common;
use common::cluster::{get_bytes, has_md5, served_path, upload_to, write_config, Addresses};
use common::*;
use serde_json::{json, Value};
use std::path::Path;
use std::time::Duration;

const EXIT: i32 = 86;

/// Arms `point`, starts the server, runs `op` (which must not expect an answer), and waits
/// for the process to end at the point.
fn crash_at(s: &mut Server, point: &str, op: impl FnOnce(&Server)) {
    s.stop();
    s.env = vec![("FASTDFS_FAILPOINTS".into(), point.into())];
    s.respawn();
    op(s);
    let mut child = s.child.take().expect("running");
    let code = wait_child(&mut child, Duration::from_secs(20));
    assert_eq!(
        code,
        Some(EXIT),
        "{point}: the process did not stop there: {}",
        s.stderr()
    );
    assert!(s.stderr().contains(&format!("failpoint {point}: exiting")));
    s.env.clear();
    s.respawn();
}

/// Stops the server, runs `fastdfs check` (clean: exit 0) and starts it again.
fn check_clean(s: &mut Server, point: &str) {
    s.stop();
    let (code, out) = run_to_exit(&s.dir, &["check"], Duration::from_secs(60));
    assert_eq!(
        code,
        Some(0),
        "{point}: fastdfs check after the crash: {out}"
    );
    s.respawn();
}

/// An upload whose answer may never come (the server dies while serving it).
fn upload_blind(s: &Server, name: &str, data: &[u8]) {
    let (ct, body) = multipart(&[("output", "json")], Some((name, data)));
    let _ = ureq::AgentBuilder::new()
        .timeout(Duration::from_secs(20))
        .build()
        .post(&s.url("/group1/upload"))
        .set("Content-Type", &ct)
        .send_bytes(&body);
}

/// Every regular file under `files/` (internal directories included) named `name`.
fn files_named(dir: &Path, name: &str) -> Vec<std::path::PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|p| p.file_name().is_some_and(|n| n == name))
        .collect()
}

fn assert_serves(s: &Server, r: &Value, want: &[u8], point: &str) {
    let (code, got) = get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]);
    assert_eq!(code, 200, "{point}: acknowledged {} lost", r["path"]);
    assert!(got == want, "{point}: {} changed", r["path"]);
}

/// The interrupted upload of `data` as `name`: all (indexed, served, one copy) or nothing (no
/// record, no file outside the temp dir).
fn all_or_nothing(s: &Server, name: &str, data: &[u8], point: &str) {
    let md5 = md5_hex(data);
    let stored: Vec<_> = files_named(&s.dir, name)
        .into_iter()
        .filter(|p| !p.starts_with(s.dir.join("files/_tmp")))
        .collect();
    if has_md5(&s.base(), &md5) {
        let path = served_path(&s.base(), &md5);
        let (code, got) = get_bytes(&s.base(), &path, &[]);
        assert!(
            code == 200 && got == data,
            "{point}: indexed but not served: {path} {code}"
        );
    } else {
        assert!(
            stored.is_empty(),
            "{point}: {stored:?} stored without a record"
        );
    }
}

/// Without peers a plain upload is acknowledged from the metadata journal: its file moves into
/// place and its record is journaled (`journal.synced`), the LMDB commit follows after the
/// answer. With a peer to tell, the answer waits for the LMDB commit. Both paths, every step.
#[test]
fn an_upload_interrupted_at_each_durable_step_is_all_or_nothing() {
    // A peer that never answers: its replication only queues.
    let peer = format!("http://127.0.0.1:{}", free_port("127.0.0.1"));
    let cases = [
        ("write.synced", json!({})),
        ("commit.placed", json!({})),
        ("commit.durable", json!({})),
        ("journal.synced", json!({})),
        ("commit.committed", json!({})),
        ("write.synced", json!({"peers": [peer]})),
        ("commit.placed", json!({"peers": [peer]})),
        ("commit.durable", json!({"peers": [peer]})),
        ("commit.committed", json!({"peers": [peer]})),
    ];
    for (point, cfg) in cases {
        let mut s = Server::start(cfg);
        let kept = noise(70_000, 1);
        let r = upload_json(&s, "kept.bin", &kept);
        let late = noise(50_000, 2);
        crash_at(&mut s, point, |s| upload_blind(s, "late.bin", &late));
        assert_serves(&s, &r, &kept, point);
        all_or_nothing(&s, "late.bin", &late, point);
        // The same upload goes through now, exactly once.
        let again = upload_json(&s, "late.bin", &late);
        assert_serves(&s, &again, &late, point);
        check_clean(&mut s, point);
    }
}

#[test]
fn a_merged_upload_interrupted_at_each_durable_step_is_all_or_nothing() {
    for point in [
        "haystack.written",
        "journal.synced",
        "commit.durable",
        "commit.committed",
    ] {
        let mut s = Server::start(json!({"enable_merge_small_file": true}));
        let kept = noise(3_000, 3);
        let r = upload_json(&s, "kept.txt", &kept);
        let late = noise(4_000, 4);
        crash_at(&mut s, point, |s| upload_blind(s, "late.txt", &late));
        assert_serves(&s, &r, &kept, point);
        // From the journal's fdatasync on, the record is durable: the metadata's commit
        // follows later (and after the answer), replayed from the journal after a crash.
        let journaled = point != "haystack.written";
        assert!(
            !journaled || has_md5(&s.base(), &md5_hex(&late)),
            "{point}: a journaled merged upload was lost"
        );
        if has_md5(&s.base(), &md5_hex(&late)) {
            let (_, text) =
                call(agent().get(&s.url(&format!("/group1/upload?md5={}", md5_hex(&late)))));
            let (code, got) = get_bytes(&s.base(), text.trim().trim_start_matches(&s.base()), &[]);
            assert!(
                code == 200 && got == late,
                "{point}: indexed merged file not served"
            );
        }
        let again = upload_json(&s, "late.txt", &late);
        assert_serves(&s, &again, &late, point);
        check_clean(&mut s, point);
    }
}

/// With dedup off (the rule of every S3 PUT), an upload replaces the file of its name. A new
/// name is placed exactly and journaled; a taken one is swapped in the synchronous commit.
/// Interrupted at any step, the name holds the old content or the new one (a new name: the
/// new one or nothing), never a `0_<name>` copy or a file without its record.
#[test]
fn a_replacing_upload_interrupted_at_each_durable_step_keeps_the_old_or_the_new_content() {
    let cases = [
        ("commit.placed", false),
        ("commit.durable", false),
        ("journal.synced", false),
        ("commit.placed", true),
        ("commit.durable", true),
        ("commit.committed", true),
    ];
    let put = |s: &Server, name: &str, data: &[u8]| {
        let (code, body) = upload(s, name, data, &[("output", "json"), ("path", "crash")]);
        assert_eq!(code, 200, "{body}");
        serde_json::from_str::<Value>(&body).unwrap()
    };
    for (point, taken) in cases {
        let mut s = Server::start(json!({"enable_distinct_file": false}));
        let kept = noise(20_000, 7);
        let rk = put(&s, "kept.bin", &kept);
        let url = rk["path"].as_str().unwrap().replace("kept.bin", "same.bin");
        let (old, new) = (noise(30_000, 8), noise(40_000, 9));
        if taken {
            put(&s, "same.bin", &old);
        }
        crash_at(&mut s, point, |s| {
            let (ct, body) = multipart(
                &[("output", "json"), ("path", "crash")],
                Some(("same.bin", &new)),
            );
            let _ = ureq::AgentBuilder::new()
                .timeout(Duration::from_secs(20))
                .build()
                .post(&s.url("/group1/upload"))
                .set("Content-Type", &ct)
                .send_bytes(&body);
        });
        assert_serves(&s, &rk, &kept, point);
        let (code, got) = get_bytes(&s.base(), &url, &[]);
        let tag = format!("{point} (name taken: {taken})");
        match (code, taken) {
            (200, _) => assert!(got == new || (taken && got == old), "{tag}: other bytes"),
            (404, false) => {}
            _ => panic!("{tag}: GET {code}"),
        }
        let mut names: Vec<String> = std::fs::read_dir(s.dir.join("files/crash"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        let want: &[&str] = if code == 200 {
            &["kept.bin", "same.bin"]
        } else {
            &["kept.bin"]
        };
        assert_eq!(names, want, "{tag}");
        let again = put(&s, "same.bin", &new);
        assert_serves(&s, &again, &new, &tag);
        check_clean(&mut s, &tag);
    }
}

#[test]
fn a_delete_interrupted_at_each_step_is_all_or_nothing() {
    for point in [
        "commit.durable",
        "commit.set_aside",
        "commit.before_unlink",
        "commit.committed",
    ] {
        let mut s = Server::start(json!({}));
        let (a, b) = (noise(30_000, 5), noise(30_000, 6));
        let ra = upload_json(&s, "a.bin", &a);
        let rb = upload_json(&s, "b.bin", &b);
        crash_at(&mut s, point, |s| {
            let _ = agent()
                .get(&s.url(&format!("/group1/delete?md5={}", md5_hex(&a))))
                .call();
        });
        assert_serves(&s, &rb, &b, point);
        let (code, _) = get_bytes(&s.base(), ra["path"].as_str().unwrap(), &[]);
        let indexed = has_md5(&s.base(), &md5_hex(&a));
        // Either the delete happened (no record, no file) or not at all (both there).
        assert_eq!(
            indexed,
            code == 200,
            "{point}: record {indexed}, GET {code}"
        );
        match point {
            "commit.durable" | "commit.set_aside" => {
                assert!(indexed, "{point}: an uncommitted delete took the file")
            }
            _ => assert!(!indexed, "{point}: a committed delete came back"),
        }
        check_clean(&mut s, point);
    }
}

#[test]
fn a_tus_upload_interrupted_in_a_patch_or_its_completion_resumes_to_the_right_file() {
    for point in ["write.synced", "tus.data_synced", "tus.completed"] {
        let mut s = Server::start(json!({"enable_tus": true}));
        let data = noise(200_000, 7);
        let create = agent()
            .post(&s.url("/group1/big/upload/"))
            .set("Tus-Resumable", "1.0.0")
            .set("Upload-Length", "200000")
            .set("Upload-Metadata", "filename dHVzLmJpbg==")
            .call()
            .unwrap();
        assert_eq!(create.status(), 201);
        let url = create.header("location").unwrap().to_string();
        let patch = |from: usize, to: usize| {
            agent()
                .request("PATCH", &url)
                .set("Tus-Resumable", "1.0.0")
                .set("Upload-Offset", &from.to_string())
                .set("Content-Type", "application/offset+octet-stream")
                .send_bytes(&data[from..to])
        };
        let first = patch(0, 100_000).unwrap();
        assert_eq!(first.status(), 204);
        // A PATCH that completes the upload passes tus.completed; one that does not,
        // tus.data_synced.
        let to = if point == "tus.completed" {
            200_000
        } else {
            150_000
        };
        crash_at(&mut s, point, |_| {
            let _ = patch(100_000, to);
        });
        // The client asks where it stands and sends the rest; the stored file is exact.
        let head = match agent().head(&url).set("Tus-Resumable", "1.0.0").call() {
            Ok(r) => r,
            Err(ureq::Error::Status(_, r)) => r,
            Err(e) => panic!("{point}: {e}"),
        };
        if head.status() == 200 {
            let offset: usize = head.header("upload-offset").unwrap().parse().unwrap();
            assert!(
                offset == 100_000 || offset == 200_000,
                "{point}: offset {offset}"
            );
            if offset < 200_000 {
                let r = patch(offset, 200_000);
                let code = match &r {
                    Ok(r) => r.status(),
                    Err(ureq::Error::Status(c, _)) => *c,
                    Err(e) => panic!("{e}"),
                };
                assert_eq!(
                    code,
                    204,
                    "{point}: {:?}\n{}",
                    r.map(|r| r.into_string()),
                    s.stderr()
                );
            }
            let (code, got) = get_bytes(&s.base(), &url.replacen(&s.base(), "", 1), &[]);
            assert!(
                code == 200 && got == data,
                "{point}: GET of the upload URL: {code}"
            );
        } else {
            // The upload's state was lost with the crash after its file was stored: the file
            // is there, whole, and a new upload of it finds it.
            assert_eq!(head.status(), 404, "{point}");
            assert!(
                has_md5(&s.base(), &md5_hex(&data)),
                "{point}: neither the upload nor its file"
            );
        }
        check_clean(&mut s, point);
    }
}

#[test]
fn a_peer_that_crashes_while_receiving_a_file_fetches_it_again_after_restart() {
    for (lane, point) in [(18u8, "write.synced"), (19, "commit.durable")] {
        let addrs = Addresses::pick(lane, 2);
        let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
        for (i, dir) in dirs.iter().enumerate() {
            let o = json!({"peers": [addrs.bases[1 - i]], "peer_id": format!("{}", i + 1)});
            write_config(dir.path(), &addrs.ips[i], addrs.ports[i], &o);
        }
        let a = Server::start_in(dirs[0].path(), &addrs.ips[0], json!({}));
        let mut b = Server::start_in(dirs[1].path(), &addrs.ips[1], json!({}));
        let data = noise(300_000, 8);
        crash_at(&mut b, point, |_| {
            upload_to(&a.base(), "sent.bin", &data);
        });
        let md5 = md5_hex(&data);
        assert!(
            eventually(Duration::from_secs(60), || has_md5(&b.base(), &md5)),
            "{point}: the peer never got the file after its restart: {}",
            b.stderr()
        );
        let r = upload_json(&a, "sent.bin", &data);
        let (code, got) = get_bytes(&b.base(), r["path"].as_str().unwrap(), &[]);
        assert!(code == 200 && got == data, "{point}: {code}");
        check_clean(&mut b, point);
    }
}

#[test]
fn compaction_interrupted_at_each_step_loses_nothing_and_finishes_later() {
    for point in ["compact.retired", "compact.moved", "compact.unlinking"] {
        let mut s =
            Server::start(json!({"enable_merge_small_file": true, "compact_dead_percent": 0}));
        let files: Vec<(Value, Vec<u8>)> = (0..40u64)
            .map(|i| {
                let d = noise(2_000 + i as usize, 100 + i);
                (upload_json(&s, &format!("m{i}.txt"), &d), d)
            })
            .collect();
        for (r, d) in files.iter().step_by(2) {
            let (code, _) =
                call(agent().get(&s.url(&format!("/group1/delete?md5={}", md5_hex(d)))));
            assert_eq!(code, 200, "{r}");
        }
        crash_at(&mut s, point, |s| {
            let _ = agent().get(&s.url("/group1/compact")).call();
        });
        let live: Vec<&(Value, Vec<u8>)> = files.iter().skip(1).step_by(2).collect();
        for (r, d) in &live {
            assert_serves(&s, r, d, point);
        }
        // The next pass finishes the job; every URL still serves, deleted ones stay gone.
        let (code, _) = call(agent().get(&s.url("/group1/compact")));
        assert_eq!(code, 200);
        std::thread::sleep(Duration::from_secs(3));
        for (r, d) in &live {
            assert_serves(&s, r, d, point);
        }
        for (r, _) in files.iter().step_by(2) {
            let (code, _) = get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]);
            assert_eq!(code, 404, "{point}: a deleted file is back");
        }
        check_clean(&mut s, point);
    }
}

#[test]
fn an_import_interrupted_after_a_batch_resumes_and_ends_clean() {
    let src = tempfile::tempdir().unwrap();
    let dst = tempfile::tempdir().unwrap();
    for i in 0..30 {
        let d = src.path().join(format!("files/default/20260101/{i:02}"));
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(d.join(format!("f{i}.txt")), format!("imported {i}")).unwrap();
    }
    let import = |armed: bool| {
        let mut c = std::process::Command::new(BIN);
        c.args(["import", "--from"])
            .arg(src.path())
            .current_dir(dst.path())
            .env_remove("GO_FASTDFS_DIR");
        if armed {
            c.env("FASTDFS_FAILPOINTS", "import.batch");
        }
        c.output().unwrap()
    };
    let first = import(true);
    assert_eq!(
        first.status.code(),
        Some(EXIT),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    let second = import(false);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    let (code, out) = run_to_exit(dst.path(), &["check"], Duration::from_secs(60));
    assert_eq!(code, Some(0), "{out}");
    assert!(out.contains("checked 30 files: 30 ok"), "{out}");
}

/// A failing disk: with `read.eio` / `write.eio` armed every read of a stored file or write of
/// an upload fails with EIO.
#[test]
fn eio_on_reads_and_writes_is_a_500_and_the_server_keeps_serving() {
    let mut s = Server::start(json!({}));
    let f1 = noise(3_000, 11);
    let r1 = upload_json(&s, "f1.bin", &f1);
    let path1 = r1["path"].as_str().unwrap().to_string();
    let restart_with = |s: &mut Server, point: &str| {
        s.stop();
        s.env = vec![("FASTDFS_FAILPOINTS".into(), point.into())];
        s.respawn();
    };
    restart_with(&mut s, "read.eio");
    for _ in 0..3 {
        let (code, body) = get_bytes(&s.base(), &path1, &[]);
        assert_eq!(code, 500, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).expect("a JSON error");
        assert_eq!(v["status"], "fail");
    }
    let (code, _) = call(agent().get(&s.url("/group1/status")));
    assert_eq!(code, 200, "the executor still serves");
    let r2 = upload_json(&s, "f2.bin", &noise(2_000, 12));
    assert_eq!(r2["size"], 2_000, "writes still work");
    restart_with(&mut s, "write.eio");
    let (code, body) = upload(&s, "f3.bin", &noise(4_000, 13), &[("output", "json")]);
    assert_eq!(code, 500, "{body}");
    assert!(!has_md5(&s.base(), &md5_hex(&noise(4_000, 13))));
    // A large upload (written around the page cache) fails the same way.
    let (code, body) = upload(&s, "f4.bin", &noise(600_000, 14), &[("output", "json")]);
    assert_eq!(code, 500, "{body}");
    assert!(!has_md5(&s.base(), &md5_hex(&noise(600_000, 14))));
    // The refused upload's temp file goes right after the answer (removed in the background).
    let tmp_dir = s.dir.join("files/_tmp");
    let temps = || std::fs::read_dir(&tmp_dir).map(|d| d.count()).unwrap_or(0);
    assert!(
        eventually(Duration::from_secs(5), || temps() == 0),
        "temp file left"
    );
    let (code, got) = get_bytes(&s.base(), &path1, &[]);
    assert!(code == 200 && got == f1, "reads work again: {code}");
    assert!(
        s.child.as_mut().unwrap().try_wait().unwrap().is_none(),
        "the process lives"
    );
    s.env.clear();
    check_clean(&mut s, "eio");
}

/// A filesystem that refuses direct writes (`O_DIRECT`): large uploads are written through
/// the page cache instead, stored exactly, and the operator is told once.
#[test]
fn large_uploads_where_direct_writes_are_refused_go_through_the_page_cache() {
    let mut s = Server::start(json!({}));
    s.stop();
    s.env = vec![("FASTDFS_FAILPOINTS".into(), "write.no_direct".into())];
    s.respawn();
    for (i, size) in [300_000usize, (1 << 20) + 4097, 3 << 20]
        .into_iter()
        .enumerate()
    {
        let data = noise(size, 20 + i as u64);
        let r = upload_json(&s, &format!("big{i}.bin"), &data);
        assert_eq!(r["md5"], md5_hex(&data).as_str());
        let (code, got) = get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]);
        assert!(code == 200 && got == data, "big{i}: {code}");
    }
    let told = s
        .stderr()
        .matches("direct writes (O_DIRECT) refused")
        .count();
    assert_eq!(told, 1, "{}", s.stderr());
    s.env.clear();
    check_clean(&mut s, "no_direct");
}

/// A power cut at each crash point: the runtime dir on LazyFS, the process ends at the point,
/// then every un-fsynced byte is dropped. Acknowledged files survive byte-exact, the
/// interrupted change is all or nothing, and the store checks clean.
#[test]
fn a_power_cut_at_each_crash_point_keeps_every_acknowledged_file() {
    use common::lazyfs::{available, LazyFs};
    if !available() {
        return;
    }
    let cases: [(&str, bool, bool); 10] = [
        ("write.synced", false, false),
        ("commit.placed", false, false),
        ("commit.durable", false, false),
        // A plain upload's record journaled, its file in place, not answered: both survive
        // (the journal is replayed before the intents, which would take the file back).
        ("journal.synced", false, false),
        ("commit.committed", false, false),
        // A delete's file set aside, not committed: it comes back under its name.
        ("commit.set_aside", false, true),
        ("commit.before_unlink", false, true),
        // Merged: the container append (not synced), the journal's fdatasync (the bytes and
        // the record durable, not answered), the drain into LMDB (answered before).
        ("haystack.written", true, false),
        ("journal.synced", true, false),
        ("commit.durable", true, false),
    ];
    for (point, merge, delete) in cases {
        let tmp = tempfile::tempdir().unwrap();
        let mut fs = LazyFs::new(tmp.path());
        fs.mount();
        let rt = fs.mnt.join("rt");
        std::fs::create_dir_all(&rt).unwrap();
        let mut s = Server::start_in(&rt, "127.0.0.1", json!({"enable_merge_small_file": merge}));
        let acked: Vec<(Value, Vec<u8>)> = (0..4u64)
            .map(|i| {
                let d = noise([900, 5_000, 70_000, 300_000][i as usize], 40 + i);
                (upload_json(&s, &format!("a{i}.bin"), &d), d)
            })
            .collect();
        let late = noise(6_000, 50);
        s.stop();
        s.env = vec![("FASTDFS_FAILPOINTS".into(), point.into())];
        s.respawn();
        if delete {
            let md5 = acked[0].0["md5"].as_str().unwrap().to_string();
            let _ = agent()
                .get(&s.url(&format!("/group1/delete?md5={md5}")))
                .call();
        } else {
            upload_blind(&s, "late.bin", &late);
        }
        let mut child = s.child.take().unwrap();
        assert_eq!(
            wait_child(&mut child, Duration::from_secs(20)),
            Some(EXIT),
            "{point}"
        );
        fs.power_cut();
        fs.umount();
        fs.mount();
        s.env.clear();
        s.respawn();
        let tag = format!("{point} (merge {merge}) + power cut");
        for (i, (r, d)) in acked.iter().enumerate() {
            if delete && i == 0 && point != "commit.set_aside" {
                // The delete committed: gone, and not served again.
                let (code, _) = get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]);
                let indexed = has_md5(&s.base(), r["md5"].as_str().unwrap());
                assert!(
                    !indexed && code == 404,
                    "{tag}: record {indexed}, GET {code}"
                );
                continue;
            }
            assert_serves(&s, r, d, &tag);
        }
        if !delete && !merge {
            all_or_nothing(&s, "late.bin", &late, &tag);
        }
        if merge && point != "haystack.written" {
            // Journaled: its bytes and record survive the power cut (replayed on start).
            let md5 = md5_hex(&late);
            assert!(
                has_md5(&s.base(), &md5),
                "{tag}: a journaled upload was lost"
            );
            let again = upload_json(&s, "late.bin", &late);
            assert_serves(&s, &again, &late, &tag);
        }
        check_clean(&mut s, &tag);
        s.stop();
        drop(fs);
    }
}
