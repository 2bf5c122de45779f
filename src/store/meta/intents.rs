//! The intent journal of a batch's file effects (`data/meta/intents-<executor>`), so that a
//! crash between a rename into `files/` and the metadata commit (or between a delete's commit
//! and its unlink) leaves nothing visible that the metadata does not say: plain files are served
//! by path, without a metadata lookup.
//!
//! Before a batch moves any file, the committer writes what it will move into place (`P`, the
//! directory, the wanted name and the staged path) and what it will delete (`U`, a deleted
//! file's path), and fdatasyncs that. A deleted file is set aside under a hidden name beside it
//! (`aside_of`) just before the commit, and unlinked after it. After the commit the journal
//! is emptied (no sync needed: replaying a stale journal is harmless). Each committer's journal
//! stays open ([`Files`]) and is written in place from its start, up to an end line (`E`):
//! its length only grows, so its fdatasync writes no inode. On open, `recover`
//! replays a journal left by a crash: a placed file that no record names goes back to where
//! it was staged (a tus upload keeps its data) or is removed; a file set aside goes back to its
//! name while its record is there (the delete did not commit), else it is unlinked. Dedup-off
//! overwrites (RENAME_EXCHANGE) are not journaled.

use super::*;
use std::io::Write;

/// One file effect of a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Intent {
    /// `tmp` moves into `dir` (relative) as `name`, or `<i>_<name>` on a collision.
    Place {
        dir: String,
        name: String,
        tmp: PathBuf,
    },
    /// The file at `rel` is set aside before the delete commits, and unlinked after.
    Unlink { rel: String },
}

impl Intent {
    /// The move of a staged file into place.
    pub(super) fn place(st: &Staged) -> Intent {
        Intent::Place {
            dir: st.dir.clone(),
            name: st.name.clone(),
            tmp: st.tmp.clone(),
        }
    }
}

fn journal_path(root: &Path, committer: usize) -> PathBuf {
    root.join("data")
        .join("meta")
        .join(format!("intents-{committer}"))
}

fn encode(intents: &[Intent]) -> Vec<u8> {
    let mut out = Vec::new();
    for i in intents {
        match i {
            Intent::Place { dir, name, tmp } => {
                let _ = writeln!(out, "P\t{dir}\t{name}\t{}", tmp.display());
            }
            Intent::Unlink { rel } => {
                let _ = writeln!(out, "U\t{rel}");
            }
        }
    }
    out
}

/// The line that ends a journal: what follows it is left from a longer one before.
const END: &str = "E";
const END_LINE: &[u8] = b"E\n";

fn decode(text: &str) -> Vec<Intent> {
    text.lines()
        .take_while(|l| *l != END)
        .filter_map(|l| {
            let mut f = l.split('\t');
            match (f.next()?, f.next(), f.next(), f.next()) {
                ("P", Some(dir), Some(name), Some(tmp)) => Some(Intent::Place {
                    dir: dir.into(),
                    name: name.into(),
                    tmp: tmp.into(),
                }),
                ("U", Some(rel), None, None) => Some(Intent::Unlink { rel: rel.into() }),
                _ => None,
            }
        })
        .collect()
}

/// The committers' intent journals, opened at first use and kept open.
#[derive(Default)]
pub(super) struct Files(std::sync::Mutex<std::collections::HashMap<usize, Arc<std::fs::File>>>);

impl Files {
    /// The journal of `committer`, created (and its directory entry made durable) the first
    /// time.
    fn of(&self, root: &Path, committer: usize) -> std::io::Result<Arc<std::fs::File>> {
        let mut open = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(f) = open.get(&committer) {
            return Ok(f.clone());
        }
        let (f, _) = crate::store::open_durably(&journal_path(root, committer))?;
        let f = Arc::new(f);
        open.insert(committer, f.clone());
        Ok(f)
    }
}

/// Writes the journal of `committer` and makes it durable. Blocking.
pub(super) fn write(
    files: &Files,
    root: &Path,
    committer: usize,
    intents: &[Intent],
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    let f = files.of(root, committer)?;
    let mut bytes = encode(intents);
    bytes.extend_from_slice(END_LINE);
    f.write_all_at(&bytes, 0)?;
    f.sync_data()
}

/// Empties the journal of `committer` after its batch committed (not synced: a stale journal
/// replays to nothing).
pub(super) fn clear(files: &Files, root: &Path, committer: usize) {
    use std::os::unix::fs::FileExt;
    if let Ok(f) = files.of(root, committer) {
        let _ = f.write_all_at(END_LINE, 0);
    }
}

/// Where a deleted file waits for its delete's commit: a hidden name of fixed length in its
/// directory (`.deleting-<md5 of the name>`).
pub(super) fn aside_of(file: &Path) -> PathBuf {
    let name = file.file_name().unwrap_or_default().to_string_lossy();
    file.with_file_name(format!(".deleting-{}", crate::codec::md5_hex(&name)))
}

/// Whether `file` is `name` or `<digits>_<name>` (a collision name of it).
fn is_candidate(file: &str, name: &str) -> bool {
    file == name
        || file.strip_suffix(name).is_some_and(|p| {
            p.len() >= 2 && p.ends_with('_') && p[..p.len() - 1].bytes().all(|b| b.is_ascii_digit())
        })
}

impl Meta {
    /// Replays the intent journals a crash left (see the module doc); returns how many files
    /// were taken back or unlinked. Run once at open, before anything is served.
    pub(super) fn recover_intents(&self) -> Result<usize, MetaError> {
        let meta_dir = self.root.join("data").join("meta");
        let mut undone = 0;
        let mut touched: BTreeSet<PathBuf> = BTreeSet::new();
        for e in std::fs::read_dir(&meta_dir)?.flatten() {
            let fname = e.file_name().to_string_lossy().into_owned();
            if !fname.starts_with("intents-") {
                continue;
            }
            let text = std::fs::read_to_string(e.path())?;
            for intent in decode(&text) {
                undone += self.replay(&intent, &mut touched)?;
            }
            for d in &touched {
                std::fs::File::open(d)?.sync_all()?;
            }
            let f = std::fs::OpenOptions::new().write(true).open(e.path())?;
            f.set_len(0)?;
            f.sync_data()?;
        }
        if undone > 0 {
            tracing::warn!(
                files = undone,
                "crash recovery: file moves the metadata never recorded were taken back"
            );
        }
        Ok(undone)
    }

    fn replay(&self, intent: &Intent, touched: &mut BTreeSet<PathBuf>) -> Result<usize, MetaError> {
        let indexed = |rel: &str| -> Result<bool, MetaError> {
            Ok(self.get_by_path_key(&path_key(rel))?.is_some())
        };
        match intent {
            Intent::Unlink { rel } => {
                let full = self.root.join(rel);
                let aside = aside_of(&full);
                let dir = full.parent().expect("under files/").to_path_buf();
                if aside.is_file() {
                    if indexed(rel)? && !full.exists() {
                        std::fs::rename(&aside, &full)?;
                    } else {
                        std::fs::remove_file(&aside)?;
                    }
                    touched.insert(dir);
                    return Ok(1);
                }
                // Left by a version that unlinked in place after the commit.
                if full.is_file() && !indexed(rel)? {
                    std::fs::remove_file(&full)?;
                    touched.insert(dir);
                    return Ok(1);
                }
                Ok(0)
            }
            Intent::Place { dir, name, tmp } => {
                let full_dir = self.root.join(dir);
                let Ok(entries) = std::fs::read_dir(&full_dir) else {
                    return Ok(0);
                };
                let mut n = 0;
                for e in entries.flatten() {
                    let file = e.file_name().to_string_lossy().into_owned();
                    if !is_candidate(&file, name) || !e.file_type()?.is_file() {
                        continue;
                    }
                    if indexed(&format!("{dir}/{file}"))? {
                        continue;
                    }
                    let at = e.path();
                    if !tmp.exists() && tmp.parent().is_some_and(Path::is_dir) {
                        std::fs::rename(&at, tmp)?;
                        touched.insert(tmp.parent().expect("a dir").to_path_buf());
                    } else {
                        std::fs::remove_file(&at)?;
                    }
                    touched.insert(full_dir.clone());
                    n += 1;
                }
                Ok(n)
            }
        }
    }

    /// The file effects `ops` will have, for the journal (deleted files' paths are read now:
    /// only this committer writes their shards).
    pub(super) fn intents_of(&self, ops: &[(usize, Op)]) -> Vec<Intent> {
        let mut out = Vec::new();
        for (_, op) in ops {
            match op {
                Op::Insert {
                    staged: Some(st), ..
                } if !st.replace => out.push(Intent::place(st)),
                Op::Delete { md5, .. } => {
                    if let Ok(Some(info)) = self.get(md5) {
                        if matches!(info.content(), Content::Plain | Content::Migrated) {
                            out.push(Intent::Unlink {
                                rel: info.rel_path(),
                            });
                        }
                    }
                }
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_reads_back_what_was_written() {
        let v = vec![
            Intent::Place {
                dir: "files/default/20261203/02/30/1".into(),
                name: "a b.txt".into(),
                tmp: "/srv/files/_tmp/x".into(),
            },
            Intent::Unlink {
                rel: "files/s/old.bin".into(),
            },
        ];
        assert_eq!(decode(&String::from_utf8(encode(&v)).unwrap()), v);
        assert!(decode("garbage\nP\tonly").is_empty());
    }

    #[test]
    fn a_journal_written_in_place_reads_as_its_last_write() {
        let d = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(d.path().join("data").join("meta")).unwrap();
        let files = Files::default();
        let place = |n: usize| Intent::Place {
            dir: "files/d".into(),
            name: format!("{n}.bin"),
            tmp: format!("files/_tmp/{n}").into(),
        };
        let read = || {
            let text = std::fs::read_to_string(journal_path(d.path(), 3)).unwrap();
            decode(&text)
        };
        let long: Vec<Intent> = (0..20).map(place).collect();
        write(&files, d.path(), 3, &long).unwrap();
        assert_eq!(read(), long);
        // A shorter journal over a longer one: the longer one's rest is past the end line.
        write(&files, d.path(), 3, &[place(99)]).unwrap();
        assert_eq!(read(), vec![place(99)]);
        clear(&files, d.path(), 3);
        assert!(read().is_empty());
        // A journal of the version that truncated it (no end line) reads whole.
        assert_eq!(decode(&String::from_utf8(encode(&long)).unwrap()), long);
    }

    #[test]
    fn collision_names_are_candidates() {
        assert!(is_candidate("a.txt", "a.txt"));
        assert!(is_candidate("0_a.txt", "a.txt"));
        assert!(is_candidate("12_a.txt", "a.txt"));
        assert!(!is_candidate("x_a.txt", "a.txt"));
        assert!(!is_candidate("_a.txt", "a.txt"));
        assert!(!is_candidate("b.txt", "a.txt"));
    }
}
