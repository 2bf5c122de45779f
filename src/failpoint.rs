//! Crash points for the crash tests (cargo feature `failpoints`, which release builds leave
//! off): `hit(name)` ends the process at once, as a kill -9 there would (no destructors, no
//! flushing, no reply), when the environment variable `FASTDFS_FAILPOINTS` lists `name`
//! (comma-separated). Without the feature `hit` is empty and compiles to nothing.
//!
//! Points: `write.synced` (a temp file's content is durable), `commit.placed` (a batch's files
//! are renamed into place), `commit.durable` (their directories are fsynced, nothing is
//! committed), `commit.set_aside` (a delete's file is set aside, the delete not committed),
//! `commit.before_unlink` (a delete is committed, its file not yet unlinked),
//! `commit.committed` (a batch is committed, nobody answered), `haystack.written` (merged bytes
//! are written to a container, not synced), `haystack.synced` (merged bytes are durable in a
//! container, not indexed), `journal.synced` (merged uploads' records and bytes are durable in
//! the metadata journal, not answered), `tus.data_synced` (a PATCH's bytes are durable,
//! the new offset not saved), `tus.completed` (an upload's file is stored, the upload not
//! marked complete), `import.batch` (after an import batch), `compact.retired`,
//! `compact.moved` (after a group of relocations), `compact.unlinking` (before a compacted
//! container is removed). `io(name)` is an I/O error point instead: `read.eio` (reading a
//! stored file), `write.eio` (writing an upload) and `sync.delivered.eio` (recording that a
//! peer took a change) fail with EIO on every pass. `refused(name)`
//! is a refusal point: `write.no_direct` (the filesystem refuses direct writes).

/// The exit code of a process ended by a failpoint.
pub const EXIT_CODE: i32 = 86;

#[cfg(feature = "failpoints")]
fn armed(name: &str) -> bool {
    use std::sync::OnceLock;
    static ARMED: OnceLock<Vec<String>> = OnceLock::new();
    ARMED
        .get_or_init(|| {
            std::env::var("FASTDFS_FAILPOINTS")
                .unwrap_or_default()
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect()
        })
        .iter()
        .any(|a| a == name)
}

#[cfg(feature = "failpoints")]
pub fn hit(name: &str) {
    if armed(name) {
        eprintln!("failpoint {name}: exiting");
        // SAFETY: _exit ends the process without running anything else, as a crash would.
        unsafe { libc::_exit(EXIT_CODE) };
    }
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn hit(_name: &str) {}

/// An I/O error point: EIO, as a failing disk gives, when `FASTDFS_FAILPOINTS` lists `name`
/// (`read.eio`: reads of stored files; `write.eio`: writes of uploads), on every pass.
#[cfg(feature = "failpoints")]
pub fn io(name: &str) -> std::io::Result<()> {
    if armed(name) {
        return Err(std::io::Error::from_raw_os_error(libc::EIO));
    }
    Ok(())
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn io(_name: &str) -> std::io::Result<()> {
    Ok(())
}

/// A refusal point: true when `FASTDFS_FAILPOINTS` lists `name` (`write.no_direct`: the
/// filesystem refuses `O_DIRECT`).
#[cfg(feature = "failpoints")]
pub fn refused(name: &str) -> bool {
    armed(name)
}

#[cfg(not(feature = "failpoints"))]
#[inline(always)]
pub fn refused(_name: &str) -> bool {
    false
}
