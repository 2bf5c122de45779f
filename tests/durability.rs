//! Acknowledged uploads survive a power cut: the runtime dir lives on LazyFS, which keeps
//! un-fsynced data only in its own cache; after `kill -9` of the server, `lazyfs::clear-cache`
//! (the power cut) and a remount, every upload that got a 200 must still download with the
//! same bytes and the server must start cleanly. A control test proves LazyFS really drops
//! un-fsynced data, so the main test can fail.
//!
//! Needs root, /dev/fuse and fusermount3 (scripts/test-all.sh installs fuse3); LazyFS is found
//! through env LAZYFS_DIR (default ../shared/lazyfs).
mod common;
use common::lazyfs::{available, LazyFs};
use common::*;
use serde_json::json;

#[test]
fn lazyfs_really_drops_unsynced_data() {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fs = LazyFs::new(tmp.path());
    fs.mount();
    std::fs::write(fs.mnt.join("unsynced.txt"), b"gone after the power cut").unwrap();
    {
        use std::io::Write;
        let mut f = std::fs::File::create(fs.mnt.join("synced.txt")).unwrap();
        f.write_all(b"kept").unwrap();
        f.sync_all().unwrap();
    }
    fs.power_cut();
    let lost = std::fs::read(fs.mnt.join("unsynced.txt")).unwrap_or_default();
    assert!(
        lost.is_empty(),
        "un-fsynced data survived: LazyFS is not simulating power loss"
    );
    assert_eq!(std::fs::read(fs.mnt.join("synced.txt")).unwrap(), b"kept");
}

#[test]
fn acknowledged_uploads_survive_kill_and_power_cut() {
    survive_kill_and_power_cut(json!({"workers": 2}));
}

/// With small-file merge on: the files under 1 MiB (three quarters of them) live in
/// containers, appended by group commit.
#[test]
fn acknowledged_merged_uploads_survive_kill_and_power_cut() {
    survive_kill_and_power_cut(json!({"workers": 2, "enable_merge_small_file": true}));
}

/// Uploads of mixed sizes (each answer an acknowledgement), then kill -9 and a power cut that
/// drops every unsynced byte: every acknowledged file is served byte-exact with its record.
fn survive_kill_and_power_cut(config: serde_json::Value) {
    if !available() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let mut fs = LazyFs::new(tmp.path());
    fs.mount();
    let rt = fs.mnt.join("rt");
    std::fs::create_dir_all(&rt).unwrap();
    let mut server = Server::start_in(&rt, "127.0.0.1", config);

    // Mixed sizes, custom paths and scenes; each answer is an acknowledgement.
    let mut acked = Vec::new();
    for i in 0..24u32 {
        let size = match i % 4 {
            0 => 10,
            1 => 4096,
            2 => 70_000,
            // Whole and odd multiples of the write buffer: direct writes, the last one
            // padded and cut back.
            _ => (1 << 20) + 4097 * (i as usize % 3),
        };
        let data: Vec<u8> = (0..size)
            .map(|j| (j as u32).wrapping_mul(2654435761).wrapping_add(i) as u8)
            .collect();
        let fields: Vec<(&str, &str)> = match i % 3 {
            0 => vec![("output", "json")],
            1 => vec![("output", "json"), ("path", "custom/dir")],
            _ => vec![("output", "json"), ("scene", "photos")],
        };
        let (code, body) = upload(&server, &format!("f{i}.bin"), &data, &fields);
        assert_eq!(code, 200, "{body}");
        let r: serde_json::Value = serde_json::from_str(&body).unwrap();
        acked.push((
            r["path"].as_str().unwrap().to_string(),
            r["md5"].as_str().unwrap().to_string(),
            data,
        ));
    }

    server.kill();
    fs.power_cut();
    fs.umount();
    fs.mount();

    let mut server = Server::start_in(&rt, "127.0.0.1", json!({}));
    for (path, md5, data) in &acked {
        let resp = agent()
            .get(&server.url(path))
            .call()
            .expect("acknowledged upload is served");
        let mut got = Vec::new();
        std::io::Read::read_to_end(&mut resp.into_reader(), &mut got).unwrap();
        assert_eq!(got.len(), data.len(), "{path}");
        assert!(got == *data, "{path}: content differs after the power cut");
        let (code, info) =
            call(agent().get(&server.url(&format!("/group1/get_file_info?md5={md5}"))));
        assert_eq!(code, 200, "{path}: metadata lost: {info}");
    }
    assert_eq!(
        server.stop(),
        Some(0),
        "clean shutdown after recovery: {}",
        server.stderr()
    );
}
