//! `G/backup`: a day's records exported as go-fastdfs does (docs/PROTOCOL.md §7), into
//! `data/<date>/files.md5` (`md5|size|timestamp|path` per line) and `meta.data` (each record
//! as JSON under its md5 and under its path key).
//!
//! The records are streamed from the day index a page at a time into both files through
//! small buffers: memory stays bounded however many records the day has. Both files are
//! written beside their final names (`.files.md5.tmp`, `.meta.data.tmp`), fsynced, then
//! renamed over the previous export, so a failure (a full disk) leaves the previous export
//! as it was and removes what it wrote.

use super::meta::{self, Meta, MetaError};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

/// Write buffer per export file.
const BUFFER_BYTES: usize = 64 * 1024;

/// Blocking: exports day `date`'s records into `dir`; returns how many. A day without
/// records has no export (`dir` is removed).
pub fn write(meta: &Meta, dir: &Path, date: &str) -> Result<u64, MetaError> {
    std::fs::create_dir_all(dir)?;
    let export = Export::create(dir)?;
    let written = export.fill(meta, date);
    match written {
        Ok((0, export)) => {
            drop(export);
            std::fs::remove_dir_all(dir)?;
            Ok(0)
        }
        Ok((n, export)) => {
            export.publish()?;
            Ok(n)
        }
        Err(e) => {
            // Nothing half-written stays (on a full disk it would hold the space).
            let _ = std::fs::remove_file(dir.join(TMP_MD5S));
            let _ = std::fs::remove_file(dir.join(TMP_META));
            Err(e)
        }
    }
}

const TMP_MD5S: &str = ".files.md5.tmp";
const TMP_META: &str = ".meta.data.tmp";

/// The two export files being written, beside their final names.
struct Export {
    dir: PathBuf,
    md5s: BufWriter<std::fs::File>,
    meta_data: BufWriter<std::fs::File>,
}

impl Export {
    fn create(dir: &Path) -> std::io::Result<Export> {
        let open = |name: &str| -> std::io::Result<BufWriter<std::fs::File>> {
            let f = std::fs::File::create(dir.join(name))?;
            Ok(BufWriter::with_capacity(BUFFER_BYTES, f))
        };
        Ok(Export {
            dir: dir.to_path_buf(),
            md5s: open(TMP_MD5S)?,
            meta_data: open(TMP_META)?,
        })
    }

    /// Writes every record of the day; the count, and the export made durable.
    fn fill(mut self, meta: &Meta, date: &str) -> Result<(u64, Export), MetaError> {
        let mut n = 0u64;
        meta.for_each_of_day(date, |r| {
            let path = r.rel_path();
            writeln!(self.md5s, "{}|{}|{}|{}", r.md5, r.size, r.time_stamp, path)?;
            let j = crate::json::compact(&r);
            writeln!(self.meta_data, "{}\t{j}", r.md5)?;
            writeln!(self.meta_data, "{}\t{j}", meta::path_key(&path))?;
            n += 1;
            Ok(())
        })?;
        for w in [&mut self.md5s, &mut self.meta_data] {
            w.flush()?;
            w.get_ref().sync_data()?;
        }
        Ok((n, self))
    }

    /// Renames both files over the previous export and makes the renames durable.
    fn publish(self) -> std::io::Result<()> {
        let dir = self.dir.clone();
        drop(self);
        std::fs::rename(dir.join(TMP_META), dir.join("meta.data"))?;
        std::fs::rename(dir.join(TMP_MD5S), dir.join("files.md5"))?;
        std::fs::File::open(&dir)?.sync_all()
    }
}
