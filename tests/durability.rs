//! Acknowledged uploads survive a power cut: the runtime dir lives on LazyFS, which keeps
//! un-fsynced data only in its own cache; after `kill -9` of the server, `lazyfs::clear-cache`
//! (the power cut) and a remount, every upload that got a 200 must still download with the
//! same bytes and the server must start cleanly. A control test proves LazyFS really drops
//! un-fsynced data, so the main test can fail.
//!
//! Needs root, /dev/fuse and fusermount3 (scripts/test-all.sh installs fuse3); LazyFS is found
//! through env LAZYFS_DIR (default ../shared/lazyfs).
mod common;
use common::*;
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

struct LazyFs {
    dir: PathBuf,
    mnt: PathBuf,
    root: PathBuf,
    fifo: PathBuf,
    mounted: bool,
}

fn lazyfs_dir() -> PathBuf {
    std::env::var("LAZYFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/lazyfs"))
}

fn available() -> bool {
    let ok = unsafe { libc::geteuid() } == 0
        && Path::new("/dev/fuse").exists()
        && lazyfs_dir().join("lazyfs").exists()
        && Command::new("fusermount3").arg("-V").output().is_ok();
    if !ok {
        skip(
            "durability",
            "LazyFS tests need root, /dev/fuse, fusermount3 and LAZYFS_DIR",
        );
    }
    ok
}

impl LazyFs {
    fn new(base: &Path) -> LazyFs {
        let l = LazyFs {
            dir: lazyfs_dir(),
            mnt: base.join("mnt"),
            root: base.join("root"),
            fifo: base.join("faults.fifo"),
            mounted: false,
        };
        std::fs::create_dir_all(&l.mnt).unwrap();
        std::fs::create_dir_all(&l.root).unwrap();
        l
    }

    fn mount(&mut self) {
        let out = Command::new(self.dir.join("mount-lazyfs.sh"))
            .args([
                &self.mnt,
                &self.root,
                &self.fifo,
                &self.dir.join("default.toml"),
            ])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "mount failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        self.mounted = true;
    }

    fn umount(&mut self) {
        if self.mounted {
            let _ = Command::new(self.dir.join("umount-lazyfs.sh"))
                .args([&self.mnt, &self.fifo])
                .output();
            self.mounted = false;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(format!("{}.log", self.fifo.display())).unwrap_or_default()
    }

    /// Drops every un-fsynced byte (the simulated power cut) and waits for LazyFS to confirm.
    fn power_cut(&self) {
        let before = self.log().matches("cache is cleared").count();
        std::fs::write(&self.fifo, "lazyfs::clear-cache\n").unwrap();
        assert!(
            eventually(Duration::from_secs(20), || self
                .log()
                .matches("cache is cleared")
                .count()
                > before),
            "LazyFS did not confirm clear-cache: {}",
            self.log()
        );
    }
}

impl Drop for LazyFs {
    fn drop(&mut self) {
        self.umount();
    }
}

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
            _ => 1 << 20,
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
