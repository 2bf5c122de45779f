//! The server's log file (`log/fileserver.log`): a tracing writer whose file can be reopened,
//! so that logrotate can rename it and send SIGHUP (systemd/fastdfs.logrotate) instead of
//! copying and truncating it. A leaf module: one process-wide handle. And the access log's
//! appends ([`append_rolled`]). Both are bounded between two rotations (`log_bytes_max`,
//! [`set_cap`]): a log that would pass the cap is moved to `<name>.old` and started afresh.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

/// A log file that writes through one handle and can be reopened at its path.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<Open>,
    /// `log_bytes_max` (0: no cap), set from the configuration ([`set_cap`]).
    cap: AtomicU64,
}

/// The open file and its length.
struct Open {
    file: File,
    len: u64,
}

static CURRENT: OnceLock<Arc<LogFile>> = OnceLock::new();

/// Caps the installed server log at `bytes` (0: no cap) from its next write on.
pub fn set_cap(bytes: u64) {
    if let Some(log) = CURRENT.get() {
        log.cap.store(bytes, Ordering::Relaxed);
    }
}

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

fn open_counted(path: &Path) -> io::Result<Open> {
    let file = open(path)?;
    let len = file.metadata()?.len();
    Ok(Open { file, len })
}

/// `<path>.old`, where a log that reached its cap goes.
fn old_path(path: &Path) -> PathBuf {
    let mut old = path.as_os_str().to_owned();
    old.push(".old");
    PathBuf::from(old)
}

impl LogFile {
    /// Opens (creating) `path` for appending and makes it the file `reopen` acts on.
    pub fn install(path: &Path) -> io::Result<Handle> {
        let log = Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open_counted(path)?),
            cap: AtomicU64::new(0),
        });
        let _ = CURRENT.set(log.clone());
        Ok(Handle(log))
    }

    fn reopen_here(&self) -> io::Result<()> {
        let fresh = open_counted(&self.path)?;
        *self.file.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
        Ok(())
    }
}

/// Reopens the installed log file at its path (after a rotation renamed it); a no-op when
/// none is installed.
pub fn reopen() -> io::Result<()> {
    match CURRENT.get() {
        Some(log) => log.reopen_here(),
        None => Ok(()),
    }
}

/// One write of the log's lines, through the current handle.
pub struct Writer<'a>(&'a LogFile);

impl Write for Writer<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut o = self.0.file.lock().unwrap_or_else(|e| e.into_inner());
        let cap = self.0.cap.load(Ordering::Relaxed);
        if cap > 0 && o.len > 0 && o.len + buf.len() as u64 > cap {
            // Rolled; if the rename or the new file fails, the lines go on where they went.
            let path = &self.0.path;
            if std::fs::rename(path, old_path(path)).is_ok() {
                if let Ok(fresh) = open_counted(path) {
                    *o = fresh;
                }
            }
        }
        o.file.write_all(buf)?;
        o.len += buf.len() as u64;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Appends `lines` (whole lines) to the log at `path`. With a cap (`max` bytes, 0: none) the
/// log never holds more: one that would pass it is first moved to `<path>.old`, replacing
/// the one there (a flood between two rotations by logrotate keeps at most twice the cap on
/// disk, and the newest lines), and of more lines than the cap holds only the newest whole
/// lines that fit are written. Blocking; one append at a time in the process (every
/// executor flushes its own lines).
pub fn append_rolled(path: &Path, lines: &[u8], max: u64) -> io::Result<()> {
    static APPENDING: Mutex<()> = Mutex::new(());
    let _one = APPENDING.lock().unwrap_or_else(|e| e.into_inner());
    let mut lines = lines;
    if max > 0 {
        lines = newest_lines(lines, max);
        let len = std::fs::metadata(path).map_or(0, |m| m.len());
        if len > 0 && len + lines.len() as u64 > max {
            std::fs::rename(path, old_path(path))?;
        }
    }
    if lines.is_empty() {
        return Ok(());
    }
    open(path)?.write_all(lines)
}

/// The newest whole lines of `lines` that fit in `max` bytes.
fn newest_lines(lines: &[u8], max: u64) -> &[u8] {
    let Some(cut) = (lines.len() as u64).checked_sub(max).filter(|&c| c > 0) else {
        return lines;
    };
    let cut = cut as usize;
    // The first line that starts at or after `cut`.
    match lines[cut - 1..].iter().position(|&b| b == b'\n') {
        Some(p) => &lines[cut + p..],
        None => &[],
    }
}

/// The installed log file, as tracing's writer factory.
pub struct Handle(Arc<LogFile>);

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Handle {
    type Writer = Writer<'a>;

    fn make_writer(&'a self) -> Writer<'a> {
        Writer(&self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_reopen_after_a_rename_writes_to_a_new_file_at_the_path() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("x.log");
        let Handle(log) = LogFile::install(&path).unwrap();
        Writer(&log).write_all(b"one\n").unwrap();
        std::fs::rename(&path, d.path().join("x.log.1")).unwrap();
        Writer(&log).write_all(b"two\n").unwrap();
        log.reopen_here().unwrap();
        Writer(&log).write_all(b"three\n").unwrap();
        assert_eq!(
            std::fs::read(d.path().join("x.log.1")).unwrap(),
            b"one\ntwo\n"
        );
        assert_eq!(std::fs::read(&path).unwrap(), b"three\n");
    }

    #[test]
    fn the_server_log_rolls_at_its_cap() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("s.log");
        let Handle(log) = LogFile::install(&path).unwrap();
        log.cap.store(10, Ordering::Relaxed);
        Writer(&log).write_all(b"one\ntwo\n").unwrap();
        Writer(&log).write_all(b"three\n").unwrap();
        log.cap.store(0, Ordering::Relaxed);
        Writer(&log).write_all(b"four\n").unwrap();
        assert_eq!(std::fs::read(old_path(&path)).unwrap(), b"one\ntwo\n");
        assert_eq!(std::fs::read(&path).unwrap(), b"three\nfour\n");
    }

    #[test]
    fn a_capped_log_rolls_to_old_before_it_would_pass_the_cap() {
        let d = tempfile::tempdir().unwrap();
        let path = d.path().join("access.log");
        let old = d.path().join("access.log.old");
        append_rolled(&path, b"aaaa\nbbbb\n", 12).unwrap();
        append_rolled(&path, b"cccc\n", 12).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"cccc\n");
        assert_eq!(std::fs::read(&old).unwrap(), b"aaaa\nbbbb\n");
        // More than the cap at once: the newest whole lines that fit.
        append_rolled(&path, b"dddd\neeee\nffff\n", 12).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"eeee\nffff\n");
        assert_eq!(std::fs::read(&old).unwrap(), b"cccc\n");
        append_rolled(&path, &[b'g'; 20], 12).unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"eeee\nffff\n",
            "no whole line fits"
        );
        // No cap: appended.
        append_rolled(&path, b"hhhh\n", 0).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"eeee\nffff\nhhhh\n");
    }

    #[test]
    fn the_newest_lines_start_at_a_line() {
        assert_eq!(newest_lines(b"ab\ncd\n", 6), b"ab\ncd\n");
        assert_eq!(newest_lines(b"ab\ncd\n", 5), b"cd\n");
        assert_eq!(newest_lines(b"ab\ncd\n", 3), b"cd\n");
        assert_eq!(newest_lines(b"ab\ncd\n", 2), b"");
    }
}
