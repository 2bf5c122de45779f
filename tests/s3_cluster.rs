//! S3 objects replicate like uploads: two fastdfs-rs nodes, each with its S3 listener; an
//! object put over S3 on one node is served over S3 (same bytes, ETag, content type and user
//! metadata) and listed on the other, a new version put over it replaces it there, and a delete
//! on one removes it on both. Folder markers (keys ending in `/`) follow too. The S3 client is
//! curl's `--aws-sigv4` signer (a real SigV4 client independent of ours).

mod common;

use common::cluster::{get_bytes, write_config, Addresses};
use common::*;
use serde_json::json;
use std::process::Command;
use std::time::Duration;

const SYNC_DEADLINE: Duration = Duration::from_secs(30);
const AK: &str = "AKCLUSTER";
const SK: &str = "cluster-secret";

/// A signed curl call; returns (status, headers + body as text).
fn s3(
    base: &str,
    method: &str,
    path: &str,
    extra: &[&str],
    body: Option<&std::path::Path>,
) -> (u16, String) {
    let mut cmd = Command::new("curl");
    cmd.args(["-sS", "-i", "--max-time", "20"]);
    // `-X HEAD` would wait for the body that Content-Length announces.
    if method == "HEAD" {
        cmd.arg("-I");
    } else {
        cmd.args(["-X", method]);
    }
    cmd.args([
        "--aws-sigv4",
        "aws:amz:us-east-1:s3",
        "--user",
        &format!("{AK}:{SK}"),
    ])
    .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"]);
    for h in extra {
        cmd.args(["-H", h]);
    }
    if let Some(f) = body {
        cmd.arg("--data-binary").arg(format!("@{}", f.display()));
    }
    let out = cmd
        .arg(format!("{base}{path}"))
        .output()
        .expect("curl runs");
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, text)
}

/// Two nodes, each the other's peer, each with its S3 listener.
struct Pair {
    dirs: Vec<tempfile::TempDir>,
    /// Running while the pair lives.
    _nodes: Vec<Server>,
    /// The go-fastdfs API's base URL and the S3 listener's, per node.
    bases: Vec<String>,
    s3: Vec<String>,
}

impl Pair {
    fn start(lane: u8) -> Pair {
        let a = Addresses::pick(lane, 2);
        let s3_ports: Vec<u16> = a.ips.iter().map(|ip| free_port(ip)).collect();
        let s3: Vec<String> = a
            .ips
            .iter()
            .zip(&s3_ports)
            .map(|(ip, p)| format!("http://{ip}:{p}"))
            .collect();
        let mut dirs = Vec::new();
        let mut nodes = Vec::new();
        for (i, s3_port) in s3_ports.iter().enumerate() {
            let dir = tempfile::tempdir().unwrap();
            let o = json!({
                "peers": [a.bases[1 - i].clone()],
                "peer_id": format!("{}", i + 1),
                "s3_addr": format!("{}:{s3_port}", a.ips[i]),
                "s3_keys": [{"access_key_id": AK, "secret_access_key": SK, "buckets": ["*"]}],
            });
            write_config(dir.path(), &a.ips[i], a.ports[i], &o);
            nodes.push(Server::start_in(dir.path(), &a.ips[i], json!({})));
            dirs.push(dir);
        }
        Pair {
            dirs,
            _nodes: nodes,
            bases: a.bases,
            s3,
        }
    }
}

fn have_curl() -> bool {
    if Command::new("curl").arg("--version").output().is_err() {
        skip("s3 cluster", "curl is not installed");
        return false;
    }
    true
}

#[test]
fn an_s3_object_reaches_the_peer_with_its_attributes_and_its_delete_follows() {
    if !have_curl() {
        return;
    }
    let pair = Pair::start(19);
    let (s3_bases, a_bases) = (&pair.s3, &pair.bases);
    let (status, text) = s3(&s3_bases[0], "PUT", "/shared", &[], None);
    assert_eq!(status, 200, "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let data = noise(300_000, 19);
    let f = tmp.path().join("obj.bin");
    std::fs::write(&f, &data).unwrap();
    let (status, text) = s3(
        &s3_bases[0],
        "PUT",
        "/shared/dir/obj.bin",
        &[
            "Content-Type: application/x-test",
            "x-amz-meta-origin: node-a",
        ],
        Some(&f),
    );
    assert_eq!(status, 200, "{text}");
    let etag = format!("\"{}\"", md5_hex(&data));
    assert!(text.contains(&etag), "ETag is the md5: {text}");

    // The peer serves it over S3 with the same bytes and attributes.
    let got = eventually(SYNC_DEADLINE, || {
        s3(&s3_bases[1], "HEAD", "/shared/dir/obj.bin", &[], None).0 == 200
    });
    assert!(got, "the object never reached the peer");
    let out = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "--aws-sigv4",
            "aws:amz:us-east-1:s3",
        ])
        .args(["--user", &format!("{AK}:{SK}")])
        .args(["-H", "x-amz-content-sha256: UNSIGNED-PAYLOAD"])
        .arg(format!("{}/shared/dir/obj.bin", s3_bases[1]))
        .output()
        .unwrap();
    assert_eq!(
        md5_hex(&out.stdout),
        md5_hex(&data),
        "same bytes on the peer"
    );
    let (_, head) = s3(&s3_bases[1], "HEAD", "/shared/dir/obj.bin", &[], None);
    let lower = head.to_ascii_lowercase();
    assert!(lower.contains(&format!("etag: {etag}")), "{head}");
    assert!(lower.contains("content-type: application/x-test"), "{head}");
    assert!(lower.contains("x-amz-meta-origin: node-a"), "{head}");
    let (status, list) = s3(&s3_bases[1], "GET", "/shared?list-type=2", &[], None);
    assert_eq!(status, 200, "{list}");
    assert!(
        list.contains("<Key>dir/obj.bin</Key>"),
        "listed on the peer: {list}"
    );
    // It is a go-fastdfs file there too.
    let (status, body) = get_bytes(&a_bases[1], "/group1/shared/dir/obj.bin", &[]);
    assert_eq!(status, 200);
    assert_eq!(md5_hex(&body), md5_hex(&data));

    // A new version of the key (a PUT over it) replaces the old one on the peer too.
    let data2 = noise(200_000, 20);
    std::fs::write(&f, &data2).unwrap();
    let (status, text) = s3(
        &s3_bases[0],
        "PUT",
        "/shared/dir/obj.bin",
        &["Content-Type: text/x-second"],
        Some(&f),
    );
    assert_eq!(status, 200, "{text}");
    let etag2 = format!("etag: \"{}\"", md5_hex(&data2));
    let replaced = eventually(SYNC_DEADLINE, || {
        let (_, head) = s3(&s3_bases[1], "HEAD", "/shared/dir/obj.bin", &[], None);
        head.to_ascii_lowercase().contains(&etag2)
    });
    assert!(replaced, "the peer kept the old version");
    let (status, body) = get_bytes(&a_bases[1], "/group1/shared/dir/obj.bin", &[]);
    assert_eq!(status, 200);
    assert_eq!(
        md5_hex(&body),
        md5_hex(&data2),
        "the peer serves the new bytes"
    );
    let (_, head) = s3(&s3_bases[1], "HEAD", "/shared/dir/obj.bin", &[], None);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/x-second"),
        "{head}"
    );

    // A delete on the origin removes it on the peer.
    let (status, text) = s3(&s3_bases[0], "DELETE", "/shared/dir/obj.bin", &[], None);
    assert_eq!(status, 204, "{text}");
    let gone = eventually(SYNC_DEADLINE, || {
        s3(&s3_bases[1], "HEAD", "/shared/dir/obj.bin", &[], None).0 == 404
    });
    assert!(gone, "the delete never reached the peer");
    let (_, list) = s3(&s3_bases[1], "GET", "/shared?list-type=2", &[], None);
    assert!(!list.contains("<Key>dir/obj.bin</Key>"), "{list}");
    drop(pair);
}

/// A folder marker (a key ending in `/`, a directory here) replicates like an object: put on
/// one node it is listed (with its time) and served on the other, its directory made there;
/// deleted on the peer, it is gone from the origin too.
#[test]
fn a_folder_marker_reaches_the_peer_and_its_delete_follows() {
    if !have_curl() {
        return;
    }
    let pair = Pair::start(46);
    let s3_bases = &pair.s3;
    let (status, text) = s3(&s3_bases[0], "PUT", "/folders", &[], None);
    assert_eq!(status, 200, "{text}");
    let (status, text) = s3(&s3_bases[0], "PUT", "/folders/photos/2026/", &[], None);
    assert_eq!(status, 200, "{text}");
    let listed = |node: usize| {
        let (status, list) = s3(&s3_bases[node], "GET", "/folders?list-type=2", &[], None);
        assert!(status == 200 || status == 404, "{list}");
        list
    };
    let last_modified = |list: &str| {
        list.split("<LastModified>")
            .nth(1)
            .and_then(|s| s.split("</LastModified>").next())
            .map(str::to_string)
    };
    let reached = eventually(SYNC_DEADLINE, || {
        listed(1).contains("<Key>photos/2026/</Key>")
    });
    assert!(reached, "the marker never reached the peer: {}", listed(1));
    let (origin, peer) = (listed(0), listed(1));
    assert_eq!(
        last_modified(&peer),
        last_modified(&origin),
        "the peer lists the marker with the origin's time: {origin} / {peer}"
    );
    let (status, head) = s3(&s3_bases[1], "HEAD", "/folders/photos/2026/", &[], None);
    assert_eq!(status, 200, "{head}");
    assert!(pair.dirs[1]
        .path()
        .join("files/folders/photos/2026")
        .is_dir());

    // Deleted on the peer: gone from the origin's listing, and its (empty) directory too.
    let (status, text) = s3(&s3_bases[1], "DELETE", "/folders/photos/2026/", &[], None);
    assert_eq!(status, 204, "{text}");
    let gone = eventually(SYNC_DEADLINE, || {
        !listed(0).contains("<Key>photos/2026/</Key>")
    });
    assert!(
        gone,
        "the marker's delete never reached the origin: {}",
        listed(0)
    );
    let dir = pair.dirs[0].path().join("files/folders/photos/2026");
    assert!(eventually(SYNC_DEADLINE, || !dir.exists()), "{dir:?} left");
    let (status, _) = s3(&s3_bases[0], "HEAD", "/folders/photos/2026/", &[], None);
    assert_eq!(status, 404);
}

/// Restarts a node with `peers` in its cfg.json (a restart, unlike a reload, reconciles
/// with no one by itself).
fn restart_with_peers(pair: &mut Pair, node: usize, peers: &[&str]) {
    pair._nodes[node].stop();
    let conf = pair.dirs[node].path().join("conf/cfg.json");
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&conf).unwrap()).unwrap();
    v["peers"] = json!(peers);
    std::fs::write(&conf, v.to_string()).unwrap();
    pair._nodes[node].respawn();
}

/// A node that was away (down, and out of its peer's configuration meanwhile, so that
/// nothing was queued for it) catches up on folder markers by a repair once it is back: the
/// marker made meanwhile reaches it and the one removed meanwhile goes; its own repair
/// afterwards does not bring the removed one back to the other node.
#[test]
fn folder_markers_made_and_removed_while_a_node_was_away_reach_it_by_repair() {
    if !have_curl() {
        return;
    }
    let mut pair = Pair::start(61);
    let s3_bases = pair.s3.clone();
    let b = pair.bases[1].clone();
    let has = |node: usize, key: &str| {
        let (status, list) = s3(&s3_bases[node], "GET", "/away?list-type=2", &[], None);
        assert_eq!(status, 200, "{list}");
        list.contains(&format!("<Key>{key}</Key>"))
    };
    let (status, text) = s3(&s3_bases[0], "PUT", "/away", &[], None);
    assert_eq!(status, 200, "{text}");
    let (status, text) = s3(&s3_bases[0], "PUT", "/away/gone/", &[], None);
    assert_eq!(status, 200, "{text}");
    let reached = eventually(SYNC_DEADLINE, || {
        let (_, list) = s3(&s3_bases[1], "GET", "/away?list-type=2", &[], None);
        list.contains("<Key>gone/</Key>")
    });
    assert!(reached, "the marker never reached B");
    // B goes down and out of A's peers; A removes one marker and makes another.
    pair._nodes[1].stop();
    restart_with_peers(&mut pair, 0, &[]);
    let (status, text) = s3(&s3_bases[0], "DELETE", "/away/gone/", &[], None);
    assert_eq!(status, 204, "{text}");
    let (status, text) = s3(&s3_bases[0], "PUT", "/away/new/", &[], None);
    assert_eq!(status, 200, "{text}");
    // Both back, peers again, with nothing queued: A's repair brings B up to date.
    restart_with_peers(&mut pair, 0, &[&b]);
    pair._nodes[1].respawn();
    assert!(has(1, "gone/") && !has(1, "new/"), "B as it was");
    let (status, _) = get_bytes(&pair.bases[0], "/group1/repair?force=1", &[]);
    assert_eq!(status, 200);
    let converged = eventually(SYNC_DEADLINE, || has(1, "new/") && !has(1, "gone/"));
    assert!(
        converged,
        "B did not catch up: new/ {}, gone/ {}\n{}",
        has(1, "new/"),
        has(1, "gone/"),
        pair._nodes[0].stderr_tail(3000)
    );
    let files_b = pair.dirs[1].path().join("files/away");
    assert!(files_b.join("new").is_dir());
    assert!(eventually(SYNC_DEADLINE, || !files_b.join("gone").exists()));
    // B's own repair with A brings nothing back.
    let (status, _) = get_bytes(&pair.bases[1], "/group1/repair?force=1", &[]);
    assert_eq!(status, 200);
    let resurrected = eventually(Duration::from_secs(4), || {
        has(0, "gone/") || has(1, "gone/")
    });
    assert!(!resurrected, "a removed marker came back");
    assert!(has(0, "new/") && has(1, "new/"));
}

/// The `fastdfs_sync_queue_depth` of `peer` in a node's `G/metrics`.
fn queue_depth(base: &str, peer: &str) -> Option<u64> {
    let (status, body) = get_bytes(base, "/group1/metrics", &[]);
    let text = String::from_utf8_lossy(&body);
    let want = format!("fastdfs_sync_queue_depth{{peer=\"{peer}\"}} ");
    (status == 200)
        .then(|| {
            text.lines()
                .find_map(|l| l.strip_prefix(want.as_str())?.parse().ok())
        })
        .flatten()
}

/// A go-fastdfs peer has no folder markers: their changes are not sent to it, and never hold
/// up what is (an object put under a marker reaches it, and the queue to it drains).
#[test]
fn folder_markers_do_not_hold_up_replication_to_a_go_fastdfs_peer() {
    if !have_curl() {
        return;
    }
    let Some(bin) = common::go::go_bin() else {
        return;
    };
    let a = Addresses::pick(47, 2);
    let go = common::go::GoNode::start_at(&bin, &a.ips[0], a.ports[0], &[a.bases[1].clone()]);
    let s3_port = free_port(&a.ips[1]);
    let s3_base = format!("http://{}:{s3_port}", a.ips[1]);
    let dir = tempfile::tempdir().unwrap();
    let o = json!({
        "peers": [a.bases[0].clone()],
        "peer_id": "2",
        "s3_addr": format!("{}:{s3_port}", a.ips[1]),
        "s3_keys": [{"access_key_id": AK, "secret_access_key": SK, "buckets": ["*"]}],
    });
    write_config(dir.path(), &a.ips[1], a.ports[1], &o);
    let node = Server::start_in(dir.path(), &a.ips[1], json!({}));
    let (status, text) = s3(&s3_base, "PUT", "/mixed", &[], None);
    assert_eq!(status, 200, "{text}");
    let (status, text) = s3(&s3_base, "PUT", "/mixed/photos/2026/", &[], None);
    assert_eq!(status, 200, "{text}");
    let tmp = tempfile::tempdir().unwrap();
    let data = noise(40_000, 47);
    let f = tmp.path().join("a.jpg");
    std::fs::write(&f, &data).unwrap();
    let (status, text) = s3(&s3_base, "PUT", "/mixed/photos/2026/a.jpg", &[], Some(&f));
    assert_eq!(status, 200, "{text}");
    let (status, text) = s3(&s3_base, "DELETE", "/mixed/photos/2026/", &[], None);
    assert_eq!(status, 204, "{text}");
    let on_go = go.dir.path().join("files/mixed/photos/2026/a.jpg");
    let reached = eventually(SYNC_DEADLINE, || {
        std::fs::read(&on_go).is_ok_and(|b| b == data)
    });
    assert!(reached, "the object never reached go-fastdfs: {}", go.log());
    let drained = eventually(SYNC_DEADLINE, || {
        queue_depth(&a.bases[1], &a.bases[0]) == Some(0)
    });
    assert!(
        drained,
        "the queue to go-fastdfs did not drain: {:?}\n{}",
        queue_depth(&a.bases[1], &a.bases[0]),
        node.stderr_tail(3000)
    );
    // The marker stays a marker here (deleted, it is gone; its directory holds the object).
    let (_, list) = s3(&s3_base, "GET", "/mixed?list-type=2", &[], None);
    assert!(list.contains("<Key>photos/2026/a.jpg</Key>"), "{list}");
    assert!(!list.contains("<Key>photos/2026/</Key>"), "{list}");
}
