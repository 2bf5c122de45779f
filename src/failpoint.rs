//! Crash points for the crash tests (cargo feature `failpoints`, which release builds leave
//! off): `hit(name)` ends the process at once, as a kill -9 there would (no destructors, no
//! flushing, no reply), when the environment variable `FASTDFS_FAILPOINTS` lists `name`
//! (comma-separated). Without the feature `hit` is empty and compiles to nothing.
//!
//! Points: `write.synced` (a temp file's content is durable), `commit.placed` (a batch's files
//! are renamed into place), `commit.durable` (their directories are fsynced, nothing is
//! committed), `commit.before_unlink` (a delete is committed, its file not yet unlinked),
//! `commit.committed` (a batch is committed, nobody answered), `haystack.synced` (merged bytes
//! are durable in a container, not indexed), `tus.data_synced` (a PATCH's bytes are durable,
//! the new offset not saved), `tus.completed` (an upload's file is stored, the upload not
//! marked complete), `import.batch` (after an import batch), `compact.retired`,
//! `compact.moved` (after a group of relocations), `compact.unlinking` (before a compacted
//! container is removed).

/// The exit code of a process ended by a failpoint.
pub const EXIT_CODE: i32 = 86;

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    let armed = ARMED.get_or_init(|| {
        std::env::var("FASTDFS_FAILPOINTS")
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    });
    if armed.iter().any(|a| a == name) {
        eprintln!("failpoint {name}: exiting");
        // SAFETY: _exit ends the process without running anything else, as a crash would.
        unsafe { libc::_exit(EXIT_CODE) };
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}
