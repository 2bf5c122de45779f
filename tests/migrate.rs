//! Files that reach `files/` without an upload (docs/PROTOCOL.md §11): one-click migration
//! (`enable_migrate`: a copied FastDFS storage tree of tens of thousands of files is indexed
//! at start, pushed to a peer, and a restart indexes only what is new) and parallel run
//! (`enable_fsnotify`: files another program writes are indexed after `sync_delay`, never
//! while still being written). Two real fastdfs-rs nodes each time.
mod common;
use common::cluster::{get_bytes, write_config, Addresses};
use common::*;
use serde_json::{json, Value};
use std::io::Write;
use std::path::Path;
use std::time::Duration;

/// The migration figures a node's /metrics shows: (passes, seen, indexed).
fn migration(base: &str) -> (u64, u64, u64) {
    let (_, text) = call(agent().get(&format!("{base}/group1/metrics")));
    let value = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (
        value("fastdfs_migration_passes_total"),
        value("fastdfs_migration_seen_files_total"),
        value("fastdfs_migration_indexed_files_total"),
    )
}

/// The file count of the `all` row of `/stat`.
fn stat_count(base: &str) -> i64 {
    let (_, text) = call(agent().get(&format!("{base}/group1/stat")));
    let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
    v["data"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["date"] == "all"))
        .and_then(|r| r["fileCount"].as_i64())
        .unwrap_or(-1)
}

/// The record a node holds for the file at `rel` (`files/...`), by its path key.
fn record(base: &str, rel: &str) -> Option<Value> {
    let url = format!(
        "{base}/group1/get_file_info?md5={}",
        md5_hex(rel.as_bytes())
    );
    let (_, text) = call(agent().get(&url));
    let v: Value = serde_json::from_str(&text).ok()?;
    (v["status"] == "ok").then(|| v["data"].clone())
}

/// A FastDFS-like storage tree: `files/M00/<a>/<b>/<i>.dat`, `n` files starting at `from`.
fn plant_tree(dir: &Path, from: usize, n: usize) {
    for i in from..from + n {
        let sub = dir.join(format!("files/M00/{:02X}/{:02X}", i % 256, (i / 256) % 256));
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join(format!("{i}.dat")), format!("file {i}\n")).unwrap();
    }
}

fn rel_of(i: usize) -> String {
    format!("files/M00/{:02X}/{:02X}/{i}.dat", i % 256, (i / 256) % 256)
}

#[test]
fn migration_indexes_a_copied_tree_pushes_it_to_the_peer_and_a_restart_indexes_only_the_new() {
    let addrs = Addresses::pick(15, 2);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let peer = &addrs.bases[1 - i];
        let o = json!({"peers": [peer], "peer_id": format!("{}", i + 1), "enable_migrate": i == 0});
        write_config(dir.path(), &addrs.ips[i], addrs.ports[i], &o);
    }
    const FIRST: usize = 20_000;
    plant_tree(dirs[0].path(), 0, FIRST);
    let b = Server::start_in(dirs[1].path(), &addrs.ips[1], json!({}));
    let mut a = Server::start_in(dirs[0].path(), &addrs.ips[0], json!({}));
    let done = eventually(Duration::from_secs(120), || migration(&a.base()).0 >= 1);
    assert!(
        done,
        "no migration pass finished: {:?}",
        migration(&a.base())
    );
    assert_eq!(migration(&a.base()), (1, FIRST as u64, FIRST as u64));
    assert_eq!(stat_count(&a.base()), FIRST as i64);
    // go-fastdfs' migration record: offset -2, the id is the path key.
    let r = record(&a.base(), &rel_of(7)).expect("indexed");
    assert_eq!(r["offset"], -2, "{r}");
    assert_eq!(r["size"], 7, "{r}");
    // The peer fetches every file by its path.
    let all_there = eventually(Duration::from_secs(180), || {
        stat_count(&b.base()) == FIRST as i64
    });
    assert!(all_there, "peer has {} of {FIRST}", stat_count(&b.base()));
    for i in [0, 4_321, FIRST - 1] {
        let url = format!("/group1/{}", rel_of(i).trim_start_matches("files/"));
        let (code, body) = get_bytes(&b.base(), &url, &[]);
        assert_eq!(
            (code, body),
            (200, format!("file {i}\n").into_bytes()),
            "{url}"
        );
    }
    // Stopped, more files are copied in; the next start indexes those only (the rest are
    // found by their path key without being read), and /repair_fileinfo runs another pass.
    a.stop();
    plant_tree(dirs[0].path(), FIRST, 1_000);
    a.spawn();
    let done = eventually(Duration::from_secs(60), || migration(&a.base()).0 >= 1);
    assert!(done);
    assert_eq!(migration(&a.base()), (1, FIRST as u64 + 1_000, 1_000));
    assert_eq!(stat_count(&a.base()), FIRST as i64 + 1_000);
    let (code, body) = call(agent().get(&a.url("/group1/repair_fileinfo")));
    assert_eq!(code, 200, "{body}");
    // Without enable_migrate: go-fastdfs' text alone, no envelope.
    let (code, body) = call(agent().get(&b.url("/group1/repair_fileinfo")));
    assert_eq!(
        (code, body.as_str()),
        (400, "please set enable_migrate=true")
    );
    let again = eventually(Duration::from_secs(60), || migration(&a.base()).0 >= 2);
    assert!(again);
    assert_eq!(migration(&a.base()).2, 1_000, "nothing indexed twice");
    assert!(eventually(Duration::from_secs(60), || {
        stat_count(&b.base()) == FIRST as i64 + 1_000
    }));
}

#[test]
fn fsnotify_indexes_dropped_files_after_sync_delay_and_never_one_still_being_written() {
    let addrs = Addresses::pick(16, 2);
    let dirs: Vec<tempfile::TempDir> = (0..2).map(|_| tempfile::tempdir().unwrap()).collect();
    for (i, dir) in dirs.iter().enumerate() {
        let peer = &addrs.bases[1 - i];
        let o = json!({"peers": [peer], "peer_id": format!("{}", i + 1),
                       "enable_fsnotify": i == 0, "sync_delay": 2});
        write_config(dir.path(), &addrs.ips[i], addrs.ports[i], &o);
    }
    let b = Server::start_in(dirs[1].path(), &addrs.ips[1], json!({}));
    let a = Server::start_in(dirs[0].path(), &addrs.ips[0], json!({}));
    let files = a.dir.join("files");
    // Written and closed at once (cp), in a directory made after the start (mkdir -p).
    let dropped = "files/other/2026/a.txt";
    std::fs::create_dir_all(files.join("other/2026")).unwrap();
    std::fs::write(a.dir.join(dropped), b"dropped in").unwrap();
    // Written through a temp name and renamed into place (rsync).
    std::fs::write(files.join("other/.b.txt.tmp"), b"renamed in").unwrap();
    std::fs::rename(files.join("other/.b.txt.tmp"), files.join("other/b.txt")).unwrap();
    // Still being written: half of it, the file kept open, for longer than sync_delay.
    let slow_rel = "files/other/slow.bin";
    let mut slow = std::fs::File::create(a.dir.join(slow_rel)).unwrap();
    slow.write_all(&[1u8; 1000]).unwrap();
    assert!(
        record(&a.base(), dropped).is_none(),
        "not before sync_delay"
    );
    let indexed = eventually(Duration::from_secs(20), || {
        record(&a.base(), dropped).is_some() && record(&a.base(), "files/other/b.txt").is_some()
    });
    assert!(indexed, "{}", a.stderr());
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        record(&a.base(), slow_rel).is_none(),
        "indexed while still open for writing"
    );
    slow.write_all(&[2u8; 1000]).unwrap();
    drop(slow);
    let whole = eventually(Duration::from_secs(20), || {
        record(&a.base(), slow_rel).is_some_and(|r| r["size"] == 2000)
    });
    assert!(whole, "{:?}", record(&a.base(), slow_rel));
    assert!(record(&a.base(), "files/other/.b.txt.tmp").is_none());
    // Uploads are not indexed a second time, and the peer gets the dropped files.
    let up = upload_json(&a, "up.txt", b"uploaded");
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(stat_count(&a.base()), 4, "3 dropped + 1 upload: {}", up);
    let replicated = eventually(Duration::from_secs(30), || {
        get_bytes(&b.base(), "/group1/other/2026/a.txt", &[]) == (200, b"dropped in".to_vec())
            && get_bytes(&b.base(), "/group1/other/slow.bin", &[]).1.len() == 2000
    });
    assert!(replicated, "{}", b.stderr());
}
