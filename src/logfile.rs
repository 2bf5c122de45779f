//! The server's log file (`log/fileserver.log`): a tracing writer whose file can be reopened,
//! so that logrotate can rename it and send SIGHUP (systemd/fastdfs.logrotate) instead of
//! copying and truncating it. A leaf module: one process-wide handle.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// A log file that writes through one handle and can be reopened at its path.
pub struct LogFile {
    path: PathBuf,
    file: Mutex<File>,
}

static CURRENT: OnceLock<Arc<LogFile>> = OnceLock::new();

fn open(path: &Path) -> io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl LogFile {
    /// Opens (creating) `path` for appending and makes it the file `reopen` acts on.
    pub fn install(path: &Path) -> io::Result<Handle> {
        let log = Arc::new(LogFile {
            path: path.to_path_buf(),
            file: Mutex::new(open(path)?),
        });
        let _ = CURRENT.set(log.clone());
        Ok(Handle(log))
    }

    fn reopen_here(&self) -> io::Result<()> {
        let fresh = open(&self.path)?;
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
        let mut f = self.0.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
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
}
