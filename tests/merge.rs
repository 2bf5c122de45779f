//! Small-file merge (`enable_merge_small_file`, issue 11): uploads below 1 MiB are appended to
//! `files/haystack/<peer_id>/<N>` with go-fastdfs' layout and URLs
//! (`/group1/haystack/<peer_id>/<N>,<offset>,<size>,<ext>`), served with Range/HEAD like any
//! file, deletable, durable across kill -9, and containers go-fastdfs wrote are served after
//! an in-place switch.
mod common;
use common::cluster::get_bytes;
use common::go::*;
use common::*;
use serde_json::{json, Value};
use std::time::Duration;

fn merging() -> Server {
    Server::start(json!({"enable_merge_small_file": true}))
}

/// The locator part of a merged URL path: (container, offset, size, ext).
fn locator(path: &str) -> (u64, u64, u64, String) {
    let last = path.rsplit('/').next().unwrap();
    let parts: Vec<&str> = last.split(',').collect();
    assert_eq!(parts.len(), 4, "{path}");
    (
        parts[0].parse().unwrap(),
        parts[1].parse().unwrap(),
        parts[2].parse().unwrap(),
        parts[3].to_string(),
    )
}

#[test]
fn a_small_upload_lands_in_a_container_with_go_fastdfs_urls() {
    let s = merging();
    let data = noise(1000, 1);
    let r = upload_json(&s, "hello.txt", &data);
    let path = r["path"].as_str().unwrap();
    assert!(path.starts_with("/group1/haystack/1/"), "{r}");
    let (n, offset, size, ext) = locator(path);
    assert_eq!(
        (size, ext.as_str()),
        (1001, ".txt"),
        "size counts the marker byte"
    );
    assert!(r["size"].as_i64() == Some(1001), "{r}");
    let container = std::fs::read(s.dir.join(format!("files/haystack/1/{n}"))).unwrap();
    assert_eq!(
        container[offset as usize], b'1',
        "marker byte before the content"
    );
    assert_eq!(
        &container[offset as usize + 1..offset as usize + 1001],
        &data[..]
    );
    // Downloads: whole, Range, HEAD.
    let (status, body) = get_bytes(&s.base(), path, &[]);
    assert_eq!((status, body.as_slice()), (200, &data[..]));
    let (status, body) = get_bytes(&s.base(), path, &[("Range", "bytes=10-19")]);
    assert_eq!((status, body.as_slice()), (206, &data[10..20]));
    let head = agent().head(&s.url(path)).call().unwrap();
    assert_eq!(head.header("Content-Length"), Some("1000"));
    // No file of its own anywhere in the dated tree.
    assert!(!s.dir.join("files/default").exists());
}

#[test]
fn concurrent_small_uploads_share_containers_and_each_reads_back() {
    let s = merging();
    let uploads: Vec<(Vec<u8>, String)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..40)
            .map(|i| {
                let s = &s;
                scope.spawn(move || {
                    let data = noise(100 + i * 37, 100 + i as u64);
                    let r = upload_json(s, &format!("f{i}.bin"), &data);
                    (data, r["path"].as_str().unwrap().to_string())
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    for (data, path) in &uploads {
        let (status, body) = get_bytes(&s.base(), path, &[]);
        assert_eq!((status, body.len()), (200, data.len()), "{path}");
        assert_eq!(&body, data, "{path}");
    }
    let containers = std::fs::read_dir(s.dir.join("files/haystack/1"))
        .unwrap()
        .count();
    assert!(
        containers <= 2,
        "40 files, {containers} container files (one per executor)"
    );
}

#[test]
fn large_uploads_and_dedup_hits_are_not_merged_again() {
    let s = merging();
    let big = noise((1 << 20) + 5, 9);
    let r = upload_json(&s, "big.bin", &big);
    assert!(!r["path"].as_str().unwrap().contains("/haystack/"), "{r}");
    let small = noise(500, 10);
    let a = upload_json(&s, "a.bin", &small);
    let b = upload_json(&s, "b.bin", &small);
    assert_eq!(a["path"], b["path"], "same content, same URL");
}

#[test]
fn a_merged_file_can_be_deleted_and_is_gone_at_once() {
    let s = merging();
    let data = noise(700, 3);
    let r = upload_json(&s, "gone.txt", &data);
    let path = r["path"].as_str().unwrap().to_string();
    assert_eq!(get_bytes(&s.base(), &path, &[]).0, 200);
    let md5 = r["md5"].as_str().unwrap();
    let (code, body) = call(agent().get(&s.url(&format!("/group1/delete?md5={md5}"))));
    assert_eq!(code, 200, "{body}");
    assert_eq!(
        get_bytes(&s.base(), &path, &[]).0,
        404,
        "deleted: never served again"
    );
    // The same content can be uploaded again and is served at its new place.
    let again = upload_json(&s, "again.txt", &data);
    let (status, body) = get_bytes(&s.base(), again["path"].as_str().unwrap(), &[]);
    assert_eq!((status, body), (200, data));
}

#[test]
fn acknowledged_merged_uploads_survive_kill_9() {
    let mut s = merging();
    let uploads: Vec<(Vec<u8>, String)> = (0..20)
        .map(|i| {
            let data = noise(50 + i * 11, 500 + i as u64);
            let r = upload_json(&s, &format!("k{i}.bin"), &data);
            (data, r["path"].as_str().unwrap().to_string())
        })
        .collect();
    s.kill();
    s.respawn();
    for (data, path) in &uploads {
        let (status, body) = get_bytes(&s.base(), path, &[]);
        assert_eq!((status, &body), (200, data), "{path}");
    }
    // Appends go on after the restart without touching the old bytes.
    let later = upload_json(&s, "later.bin", b"after the restart");
    assert_eq!(
        get_bytes(&s.base(), later["path"].as_str().unwrap(), &[]).1,
        b"after the restart"
    );
    assert_eq!(get_bytes(&s.base(), &uploads[0].1, &[]).1, uploads[0].0);
}

#[test]
fn containers_go_fastdfs_wrote_are_served_after_an_in_place_switch() {
    let Some(bin) = go_bin() else {
        return;
    };
    let port = free_port(GO_IP);
    let merge = json!({"enable_merge_small_file": true});
    let mut go = GoNode::start_configured(&bin, GO_IP, port, &[], &merge);
    let files: Vec<(Vec<u8>, String)> = (0..5)
        .map(|i| {
            let data = noise(200 + i * 50, 900 + i as u64);
            let (ct, body) = multipart(&[("output", "json")], Some((&format!("g{i}.txt"), &data)));
            let r = agent()
                .post(&format!("{}/group1/upload", go.base()))
                .set("Content-Type", &ct)
                .send_bytes(&body)
                .unwrap();
            let v: Value = serde_json::from_str(&r.into_string().unwrap()).unwrap();
            (data, v["path"].as_str().unwrap().to_string())
        })
        .collect();
    assert!(
        files[0].1.contains("/haystack/"),
        "go-fastdfs merged: {}",
        files[0].1
    );
    go.stop();
    let dir = go.dir.path().to_path_buf();
    let conf = dir.join("conf/cfg.json");
    let mut cfg: Value = serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    cfg["addr"] = json!(format!("127.0.0.1:{}", free_port("127.0.0.1")));
    std::fs::write(&conf, serde_json::to_string_pretty(&cfg).unwrap()).unwrap();
    let s = Server::start_in(&dir, "127.0.0.1", json!({}));
    for (data, path) in &files {
        let (status, body) = get_bytes(&s.base(), path, &[]);
        assert_eq!((status, &body), (200, data), "{path}");
        let (status, body) = get_bytes(&s.base(), path, &[("Range", "bytes=1-3")]);
        assert_eq!((status, body.as_slice()), (206, &data[1..4]), "{path}");
    }
    // And new small uploads are merged next to them.
    let r = upload_json(&s, "ours.txt", b"merged by fastdfs-rs");
    assert!(r["path"].as_str().unwrap().contains("/haystack/"), "{r}");
}

#[test]
fn merged_files_replicate_at_the_same_url_and_their_deletes_too() {
    use common::cluster::*;
    let c = Cluster::start(14, 2, json!({"enable_merge_small_file": true}));
    let (a, b) = (c.nodes[0].base(), c.nodes[1].base());
    let data = noise(3000, 77);
    let r = upload_to(&a, "r.txt", &data);
    let path = r["path"].as_str().unwrap().to_string();
    assert!(path.contains("/haystack/1/"), "{r}");
    let md5 = r["md5"].as_str().unwrap().to_string();
    // B stores it as a merged file in A's container (a GET could be read through from A
    // before that, so the record is what is awaited).
    let arrived = eventually(Duration::from_secs(20), || has_md5(&b, &md5));
    assert!(arrived, "not replicated: {}", c.report(&md5));
    let container = locator(&path).0;
    assert!(c.nodes[1]
        .dir
        .join(format!("files/haystack/1/{container}"))
        .is_file());
    assert_eq!(get_bytes(&b, &path, &[]), (200, data.clone()));
    let (code, body) = call(agent().get(&format!("{a}/group1/delete?md5={md5}")));
    assert_eq!(code, 200, "{body}");
    let last = std::cell::Cell::new(0);
    let gone = eventually(Duration::from_secs(20), || {
        last.set(get_bytes(&b, &path, &[]).0);
        last.get() == 404
    });
    assert!(
        gone,
        "delete not replicated (B answers {}): {}",
        last.get(),
        c.report(&md5)
    );
}

#[test]
fn a_mixed_cluster_with_go_fastdfs_replicates_merged_files_both_ways() {
    use common::cluster::*;
    let Some(bin) = go_bin() else {
        return;
    };
    let Addresses { ips, ports, bases } = Addresses::pick(13, 2);
    let merge = json!({"enable_merge_small_file": true});
    let go = GoNode::start_configured(&bin, &ips[0], ports[0], &[bases[1].clone()], &merge);
    let d = tempfile::tempdir().unwrap();
    let o = json!({"peers": [bases[0].clone()], "peer_id": "2", "enable_merge_small_file": true});
    write_config(d.path(), &ips[1], ports[1], &o);
    let ours = Server::start_in(d.path(), &ips[1], json!({}));
    let from_go = noise(1500, 61);
    let from_us = noise(2500, 62);
    let go_path = upload_to(&bases[0], "go.txt", &from_go)["path"]
        .as_str()
        .unwrap()
        .to_string();
    let our_path = upload_to(&bases[1], "us.txt", &from_us)["path"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(go_path.contains("/haystack/1/") && our_path.contains("/haystack/2/"));
    let converged = eventually(Duration::from_secs(90), || {
        get_bytes(&bases[1], &go_path, &[]).1 == from_go
            && get_bytes(&bases[0], &our_path, &[]).1 == from_us
    });
    assert!(
        converged,
        "merged files did not cross; go-fastdfs log: {}; ours: {}",
        go.log(),
        ours.stderr()
    );
    // Each node stored the other's file in the origin's container (not only read through).
    let n = locator(&go_path).0;
    let stored = eventually(Duration::from_secs(60), || {
        ours.dir.join(format!("files/haystack/1/{n}")).is_file()
    });
    assert!(
        stored,
        "we did not store go-fastdfs' merged file: {}",
        ours.stderr()
    );
    let m = locator(&our_path).0;
    let stored = eventually(Duration::from_secs(60), || {
        go.dir
            .path()
            .join(format!("files/haystack/2/{m}"))
            .is_file()
    });
    assert!(
        stored,
        "go-fastdfs did not store our merged file: {}",
        go.log()
    );
}

#[test]
fn fastdfs_check_verifies_merged_files_in_their_containers() {
    let mut s = merging();
    let good = upload_json(&s, "good.txt", &noise(400, 5));
    let bad = upload_json(&s, "bad.txt", &noise(400, 6));
    let dir = s.dir.clone();
    s.stop();
    // Flip one content byte of `bad` inside its container.
    let (n, offset, _, _) = locator(bad["path"].as_str().unwrap());
    let container = dir.join(format!("files/haystack/1/{n}"));
    let mut bytes = std::fs::read(&container).unwrap();
    bytes[offset as usize + 10] ^= 0xff;
    std::fs::write(&container, &bytes).unwrap();
    let check = |repair: bool| {
        let mut cmd = std::process::Command::new(BIN);
        cmd.arg("check").arg("--dir").arg(&dir);
        if repair {
            cmd.arg("--repair");
        }
        let out = cmd.output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        (out.status.code(), text)
    };
    let (code, out) = check(false);
    assert_eq!(code, Some(2), "{out}");
    assert!(
        out.contains("digest mismatch") && out.contains(&format!("{n},{offset},")),
        "{out}"
    );
    assert!(out.contains("checked 2 files: 1 ok"), "{out}");
    let (code, out) = check(true);
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = check(false);
    assert_eq!(
        (code, out.contains("checked 1 files: 1 ok")),
        (Some(0), true),
        "{out}"
    );
    s.spawn();
    assert_eq!(
        get_bytes(&s.base(), good["path"].as_str().unwrap(), &[]).0,
        200
    );
    assert_eq!(
        get_bytes(&s.base(), bad["path"].as_str().unwrap(), &[]).0,
        404
    );
}

#[test]
fn compaction_reclaims_deleted_bytes_and_every_url_keeps_working() {
    let mut s = merging();
    let files: Vec<(Vec<u8>, Value)> = (0..12)
        .map(|i| {
            let data = noise(3000 + i * 100, 300 + i as u64);
            let r = upload_json(&s, &format!("c{i}.bin"), &data);
            (data, r)
        })
        .collect();
    let (n, _, _, _) = locator(files[0].1["path"].as_str().unwrap());
    let container = s.dir.join(format!("files/haystack/1/{n}"));
    let before = std::fs::metadata(&container).unwrap().len();
    for (_, r) in files.iter().step_by(2) {
        let md5 = r["md5"].as_str().unwrap();
        let (code, body) = call(agent().get(&s.url(&format!("/group1/delete?md5={md5}"))));
        assert_eq!(code, 200, "{body}");
    }
    // The container is the one being appended to: compaction seals it and moves on.
    let (code, body) = call(agent().get(&s.url("/group1/compact")));
    assert_eq!(code, 200, "{body}");
    let done = eventually(Duration::from_secs(20), || !container.exists());
    assert!(
        done,
        "container {n} ({before} bytes) not compacted: {}",
        s.stderr()
    );
    assert!(s.dir.join(format!("files/haystack/1/{n}.retired")).exists());
    for (i, (data, r)) in files.iter().enumerate() {
        let path = r["path"].as_str().unwrap();
        let (status, body) = get_bytes(&s.base(), path, &[]);
        if i % 2 == 0 {
            assert_eq!(status, 404, "deleted {path}");
        } else {
            assert_eq!((status, &body), (200, data), "moved {path}");
            let (status, body) = get_bytes(&s.base(), path, &[("Range", "bytes=5-9")]);
            assert_eq!((status, body.as_slice()), (206, &data[5..10]), "{path}");
        }
    }
    // The next pass measures the container the files moved to: nothing dead in it.
    let (code, _) = call(agent().get(&s.url("/group1/compact")));
    assert_eq!(code, 200);
    let measured = eventually(Duration::from_secs(10), || {
        let (_, m) = call(agent().get(&s.url("/group1/metrics")));
        m.lines()
            .any(|l| l.starts_with("fastdfs_haystack_bytes{") && l.contains("state=\"dead\"} 0"))
    });
    assert!(measured, "no container gauge in /metrics");
    // The number is never used again, and the moves survive a restart.
    let later = upload_json(&s, "later.bin", b"after compaction");
    assert_ne!(locator(later["path"].as_str().unwrap()).0, n);
    s.kill();
    s.respawn();
    for (data, r) in files.iter().skip(1).step_by(2) {
        assert_eq!(
            get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]).1,
            *data
        );
    }
    // fastdfs check finds every moved file at its new place.
    let dir = s.dir.clone();
    s.stop();
    let out = std::process::Command::new(BIN)
        .arg("check")
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(text.contains("checked 7 files: 7 ok"), "{text}");
}

#[test]
fn a_compaction_cut_short_after_retiring_its_container_is_finished_by_the_next_pass() {
    let mut s = merging();
    let files: Vec<(Vec<u8>, Value)> = (0..6)
        .map(|i| {
            let data = noise(2000 + i * 10, 700 + i as u64);
            (data.clone(), upload_json(&s, &format!("r{i}.bin"), &data))
        })
        .collect();
    let (n, _, _, _) = locator(files[0].1["path"].as_str().unwrap());
    s.kill();
    // The state a kill leaves right after step 1: the container is retired, nothing moved yet.
    let dir = s.dir.join("files/haystack/1");
    std::fs::write(dir.join(format!("{n}.retired")), b"").unwrap();
    s.respawn();
    for (data, r) in &files {
        assert_eq!(
            get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]).1,
            *data
        );
    }
    let new = upload_json(&s, "new.bin", b"never into a retired container");
    assert_ne!(locator(new["path"].as_str().unwrap()).0, n);
    let (code, body) = call(agent().get(&s.url("/group1/compact")));
    assert_eq!(code, 200, "{body}");
    let done = eventually(Duration::from_secs(20), || {
        !dir.join(n.to_string()).exists()
    });
    assert!(done, "retired container {n} not compacted: {}", s.stderr());
    for (data, r) in &files {
        assert_eq!(
            get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]).1,
            *data
        );
    }
}

#[test]
fn the_compact_command_compacts_with_the_server_stopped() {
    let mut s = merging();
    let files: Vec<(Vec<u8>, Value)> = (0..8)
        .map(|i| {
            let data = noise(1500 + i * 20, 800 + i as u64);
            (data.clone(), upload_json(&s, &format!("o{i}.bin"), &data))
        })
        .collect();
    let (n, _, _, _) = locator(files[0].1["path"].as_str().unwrap());
    for (_, r) in files.iter().take(4) {
        let md5 = r["md5"].as_str().unwrap();
        assert_eq!(
            call(agent().get(&s.url(&format!("/group1/delete?md5={md5}")))).0,
            200
        );
    }
    let dir = s.dir.clone();
    s.stop();
    let out = std::process::Command::new(BIN)
        .arg("compact")
        .arg("--dir")
        .arg(&dir)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("compacted 1 containers: 4 files"), "{text}");
    assert!(!dir.join(format!("files/haystack/1/{n}")).exists());
    s.spawn();
    for (i, (data, r)) in files.iter().enumerate() {
        let (status, body) = get_bytes(&s.base(), r["path"].as_str().unwrap(), &[]);
        if i < 4 {
            assert_eq!(status, 404);
        } else {
            assert_eq!((status, &body), (200, data));
        }
    }
}

#[test]
fn containers_and_their_directories_are_never_served_only_live_locators() {
    let s = Server::start(json!({"enable_merge_small_file": true, "show_dir": true}));
    let data = noise(700, 9);
    let r = upload_json(&s, "kept.txt", &data);
    let gone = upload_json(&s, "gone.txt", &noise(500, 10));
    let path = r["path"].as_str().unwrap();
    let (n, ..) = locator(path);
    assert!(s.dir.join(format!("files/haystack/1/{n}")).is_file());
    for raw in [
        format!("/group1/haystack/1/{n}"),
        "/group1/haystack/1/".to_string(),
        "/group1/haystack/".to_string(),
        "/group1/haystack".to_string(),
    ] {
        let (status, body) = get_bytes(&s.base(), &raw, &[]);
        assert_eq!(status, 404, "{raw}: {}", String::from_utf8_lossy(&body));
        assert!(body.is_empty(), "{raw}");
    }
    let (status, body) = get_bytes(&s.base(), path, &[]);
    assert_eq!((status, body.as_slice()), (200, &data[..]));
    // A deleted merged file's bytes stay in its container until compaction: not readable.
    let (code, body) = call(agent().get(&s.url(&format!(
        "/group1/delete?md5={}",
        gone["md5"].as_str().unwrap()
    ))));
    assert_eq!(code, 200, "{body}");
    let (status, _) = get_bytes(&s.base(), gone["path"].as_str().unwrap(), &[]);
    assert_eq!(status, 404);
}
