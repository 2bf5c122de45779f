//! Moving staged files into place and taking the move back: RENAME_NOREPLACE with `<i>_name`
//! on collisions, RENAME_EXCHANGE for dedup-off overwrites (or, where a swap could not be
//! undone after a crash, RENAME_NOREPLACE at the exact name and a refusal when it is taken),
//! directories created one level at a time with their parents recorded for fsync.

use super::*;

/// A file moved into place by an insert, and how to take the move back.
#[derive(Debug)]
pub(super) struct Placed {
    tmp: PathBuf,
    at: PathBuf,
    /// The move swapped with an existing file (dedup off): `tmp` now holds the old content.
    swapped: bool,
}

impl Placed {
    pub(super) fn name(&self) -> &str {
        self.at
            .file_name()
            .and_then(|n| n.to_str())
            .expect("placed under a UTF-8 name")
    }

    /// Restores the state before the move: the staged content back at `tmp`, a replaced file
    /// back at its place.
    pub(super) fn undo(self) {
        let r = if self.swapped {
            rename_exchange(&self.tmp, &self.at)
        } else {
            std::fs::rename(&self.at, &self.tmp)
        };
        if let Err(e) = r {
            tracing::error!(at = %self.at.display(), cause = %e, "cannot undo a placement");
        }
    }

    /// After the commit: the replaced file's old content, to remove.
    pub(super) fn displaced(self) -> Option<PathBuf> {
        self.swapped.then_some(self.tmp)
    }
}

/// How a staged file takes its name when the name is taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Naming {
    /// `<i>_<name>`, the first free one (go-fastdfs' rule for uploads).
    Collide,
    /// Swapped with the file there (RENAME_EXCHANGE), which is removed after the commit.
    Swap,
    /// The exact name or nothing (`MetaError::Placing` with EEXIST): for the journal's
    /// placements, whose intents can take back a move but not a swap.
    Exact,
}

impl Naming {
    /// The synchronous commit's naming of `st`.
    pub(super) fn of(st: &Staged) -> Naming {
        if st.replace {
            Naming::Swap
        } else {
            Naming::Collide
        }
    }
}

/// Moves the staged file `st` into place (its directory created, recorded in `dirs` for the
/// batch's fsync; the move in `placed`, to undo) and makes `info` name it as placed: `name`
/// or `<i>_<name>` in `st.dir`. The record names what is on disk, never the pre-collision name
/// (docs/DEFECTS.md #20). Shared by the synchronous commit and the journal's placement, which
/// names a replacing upload `Naming::Exact`.
pub(super) fn place_staged(
    root: &Path,
    st: &Staged,
    naming: Naming,
    info: &mut FileInfo,
    dirs: &mut BTreeSet<PathBuf>,
    placed: &mut Vec<Placed>,
) -> Result<(), MetaError> {
    // Conflicts name the place relative to the runtime dir (never a host path).
    let rel = |e: MetaError| match e {
        MetaError::PathConflict(_) => MetaError::PathConflict(format!("{}/{}", st.dir, st.name)),
        e => e,
    };
    let dir = root.join(&st.dir);
    // A directory that an earlier file of the batch went to is there.
    if !dirs.contains(&dir) {
        create_dirs(root, &dir, dirs).map_err(|e| rel(MetaError::placing(e, &dir)))?;
    }
    let p = match place_file(&st.tmp, &dir, &st.name, naming) {
        // The directory went between its creation and the move (`G/remove_empty_dir` removes
        // empty directories while uploads run): made again, once.
        Err(MetaError::Io(e)) if e.kind() == std::io::ErrorKind::NotFound && !dir.is_dir() => {
            create_dirs(root, &dir, dirs).map_err(|e| rel(MetaError::placing(e, &dir)))?;
            place_file(&st.tmp, &dir, &st.name, naming)
        }
        r => r,
    }
    .map_err(rel)?;
    let name = p.name().to_string();
    dirs.insert(dir);
    placed.push(p);
    if st.name != info.stored_name() {
        return Err(MetaError::Corrupt(
            "staged name differs from the record".into(),
        ));
    }
    if info.rename.is_empty() {
        info.name = name;
    } else {
        info.rename = name;
    }
    info.path = st.dir.clone();
    Ok(())
}

/// Creates `dir` and its missing ancestors below `root`, recording the parent of each new
/// directory in `dirs`: a new directory's entry is durable only once its parent is fsynced.
pub(super) fn create_dirs(
    root: &Path,
    dir: &Path,
    dirs: &mut BTreeSet<PathBuf>,
) -> std::io::Result<()> {
    if dir.is_dir() {
        return Ok(()); // the common case: one stat
    }
    let mut missing = Vec::new();
    let mut at = dir;
    while !at.is_dir() {
        if at == root || at.exists() {
            break; // an existing non-directory: create_dir below reports it
        }
        missing.push(at.to_path_buf());
        match at.parent() {
            Some(p) => at = p,
            None => break,
        }
    }
    for d in missing.into_iter().rev() {
        match std::fs::create_dir(&d) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && d.is_dir() => {}
            Err(e) => return Err(e),
        }
        if let Some(parent) = d.parent() {
            dirs.insert(parent.to_path_buf());
        }
    }
    if !dir.is_dir() {
        return Err(std::io::Error::from_raw_os_error(libc::ENOTDIR));
    }
    Ok(())
}

/// Moves `tmp` into `dir` as `name`, or as `naming` says when the name is taken. Uses
/// RENAME_NOREPLACE so a concurrent writer can never be clobbered; `Naming::Swap` exchanges
/// with the existing file (RENAME_EXCHANGE), so a failed commit can put the old one back.
pub(super) fn place_file(
    tmp: &Path,
    dir: &Path,
    name: &str,
    naming: Naming,
) -> Result<Placed, MetaError> {
    let placed = |at: PathBuf, swapped| Placed {
        tmp: tmp.to_path_buf(),
        at,
        swapped,
    };
    if naming == Naming::Exact {
        let at = dir.join(name);
        rename_noreplace(tmp, &at).map_err(|e| MetaError::placing(e, &at))?;
        return Ok(placed(at, false));
    }
    if naming == Naming::Swap {
        let at = dir.join(name);
        if at.is_dir() {
            return Err(MetaError::PathConflict(at.display().to_string()));
        }
        return match rename_exchange(tmp, &at) {
            Ok(()) => Ok(placed(at, true)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                rename_noreplace(tmp, &at).map_err(|e| MetaError::placing(e, &at))?;
                Ok(placed(at, false))
            }
            Err(e) => Err(MetaError::placing(e, &at)),
        };
    }
    const ATTEMPTS_MAX: u32 = 10_000;
    for attempt in 0..ATTEMPTS_MAX {
        let candidate = crate::store::names::collision_name(name, attempt);
        let at = dir.join(&candidate);
        match rename_noreplace(tmp, &at) {
            Ok(()) => return Ok(placed(at, false)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(MetaError::placing(e, &at)),
        }
    }
    Err(MetaError::NoFreeName(name.to_string(), ATTEMPTS_MAX))
}

/// Atomically swaps two existing paths (RENAME_EXCHANGE).
pub(super) fn rename_exchange(a: &Path, b: &Path) -> std::io::Result<()> {
    match renameat2(a, b, libc::RENAME_EXCHANGE) {
        Err(e) if unsupported(&e) => {
            // Filesystem without RENAME_EXCHANGE (some FUSE mounts): the same swap in three
            // steps through a side link (not atomic, but nothing is ever lost).
            if !b.exists() {
                return Err(std::io::Error::from(std::io::ErrorKind::NotFound));
            }
            let side = a.with_extension("swap");
            std::fs::hard_link(b, &side)?;
            std::fs::rename(a, b)?;
            std::fs::rename(&side, a)
        }
        r => r,
    }
}

pub(super) fn renameat2(from: &Path, to: &Path, flags: libc::c_uint) -> std::io::Result<()> {
    use crate::sys::with_c_path;
    with_c_path(from, |a| {
        with_c_path(to, |b| {
            // SAFETY: both pointers are valid NUL-terminated strings for the duration of the
            // call.
            let rc = unsafe {
                libc::renameat2(
                    libc::AT_FDCWD,
                    a.as_ptr(),
                    libc::AT_FDCWD,
                    b.as_ptr(),
                    flags,
                )
            };
            if rc == 0 {
                Ok(())
            } else {
                Err(std::io::Error::last_os_error())
            }
        })
    })
}

pub(super) fn rename_noreplace(from: &Path, to: &Path) -> std::io::Result<()> {
    match renameat2(from, to, libc::RENAME_NOREPLACE) {
        Err(e) if unsupported(&e) => {
            // Filesystem without RENAME_NOREPLACE (some FUSE mounts): link + unlink is atomic too.
            std::fs::hard_link(from, to)?;
            std::fs::remove_file(from)
        }
        r => r,
    }
}

pub(super) fn unsupported(e: &std::io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL) | Some(libc::ENOSYS))
}
