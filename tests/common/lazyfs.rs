//! LazyFS (a FUSE filesystem that keeps un-fsynced data only in its own cache, and drops it on
//! `lazyfs::clear-cache`: the power cut) for the durability and crash tests. Needs root,
//! /dev/fuse and fusermount3 (scripts/test-all.sh installs fuse3); LazyFS is found through env
//! LAZYFS_DIR (default ../shared/lazyfs).
use super::*;
use std::path::{Path, PathBuf};
use std::process::Command;

pub struct LazyFs {
    dir: PathBuf,
    pub mnt: PathBuf,
    root: PathBuf,
    fifo: PathBuf,
    mounted: bool,
}

fn lazyfs_dir() -> PathBuf {
    std::env::var("LAZYFS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/lazyfs"))
}

pub fn available() -> bool {
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
    pub fn new(base: &Path) -> LazyFs {
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

    pub fn mount(&mut self) {
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

    pub fn umount(&mut self) {
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
    pub fn power_cut(&self) {
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
