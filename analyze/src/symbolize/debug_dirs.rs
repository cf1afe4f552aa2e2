//! Finding an ELF file by its GNU build id in debug directories: first the `.build-id` layout
//! of gdb and debuginfod (`DIR/.build-id/ab/cdef....debug` for build id `abcdef...`), then any
//! regular file of the directory whose build id matches.
//!
//! The directories are trusted no more than captures: a symbolic link is followed only when it
//! ends inside the directory it is in, nothing but regular files is opened (never a FIFO or a
//! device), and the walk is bounded in depth, in files and in the size of the files it reads.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    io::Read as _,
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
};

/// The deepest directory the walk enters, below a debug directory.
pub const MAX_DEPTH: usize = 12;
/// The most entries the walk looks at in all the directories.
pub const MAX_ENTRIES: usize = 200_000;
/// The largest file whose build id is read (larger ones are skipped).
pub const MAX_FILE_BYTES: u64 = 4 << 30;

/// The debug directories, as given and as resolved.
#[derive(Debug)]
pub struct DebugDirs {
    /// (as given, canonical).
    dirs: Vec<(PathBuf, PathBuf)>,
    /// Build ids found by the walk, with their file (filled once, when first needed).
    walked: Option<BTreeMap<String, Vec<PathBuf>>>,
    /// What the walk left out, for the report.
    pub skipped: Skipped,
}

/// What the walk of the directories did not look at.
#[derive(Debug, Default, Clone, Copy, serde::Serialize)]
pub struct Skipped {
    /// Symbolic links that end outside their debug directory (or nowhere).
    pub links_outside: u64,
    /// Files larger than [`MAX_FILE_BYTES`].
    pub too_large: u64,
    /// Directories deeper than [`MAX_DEPTH`].
    pub too_deep: u64,
    /// True when the walk stopped at [`MAX_ENTRIES`].
    pub stopped_at_max_entries: bool,
}

/// A debug directory that cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("{}: {problem}", path.display())]
pub struct BadDir {
    pub path: PathBuf,
    pub problem: String,
}

impl DebugDirs {
    /// Checks that every path is a directory (a symbolic link to one is refused: give its
    /// target).
    pub fn open(paths: &[PathBuf]) -> Result<Self, BadDir> {
        let mut dirs = Vec::with_capacity(paths.len());
        for path in paths {
            let bad = |problem: String| BadDir {
                path: path.clone(),
                problem,
            };
            let meta =
                fs::symlink_metadata(path).map_err(|err| bad(format!("--debug-dir: {err}")))?;
            if meta.file_type().is_symlink() {
                return Err(bad(
                    "--debug-dir is a symbolic link: give the directory it points to".to_owned(),
                ));
            }
            if !meta.is_dir() {
                return Err(bad("--debug-dir is not a directory".to_owned()));
            }
            let canonical =
                fs::canonicalize(path).map_err(|err| bad(format!("--debug-dir: {err}")))?;
            dirs.push((path.clone(), canonical));
        }
        Ok(Self {
            dirs,
            walked: None,
            skipped: Skipped::default(),
        })
    }

    /// The files with build id `build_id` (lowercase hex): in the `.build-id` layout the debug
    /// file (`.debug`) and the executable (no suffix, as debuginfod lays them out); then, when
    /// that gives no executable (whose program headers place a file offset), every file of the
    /// walk of the directories (done once, for all the build ids in `wanted`).
    pub fn find(&mut self, build_id: &str, wanted: &BTreeSet<String>) -> Vec<PathBuf> {
        if build_id.len() < 3 || !build_id.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Vec::new();
        }
        let (head, rest) = build_id.split_at(2);
        let mut found = Vec::new();
        for (_, root) in &self.dirs {
            let dir = root.join(".build-id").join(head);
            for candidate in [dir.join(format!("{rest}.debug")), dir.join(rest)] {
                if let Some(file) = inside(root, &candidate)
                    && build_id_of(&file).as_deref() == Some(build_id)
                    && !found.contains(&file)
                {
                    found.push(file);
                }
            }
        }
        if found.iter().any(|f| super::segments(f).is_some()) {
            return found;
        }
        if self.walked.is_none() {
            self.walked = Some(self.walk(wanted));
        }
        for file in self.walked.iter().filter_map(|w| w.get(build_id)).flatten() {
            if !found.contains(file) {
                found.push(file.clone());
            }
        }
        found
    }

    /// Every regular file of the directories whose build id is one of `wanted`.
    fn walk(&mut self, wanted: &BTreeSet<String>) -> BTreeMap<String, Vec<PathBuf>> {
        let mut found = BTreeMap::new();
        let mut entries = 0_usize;
        let roots: Vec<PathBuf> = self.dirs.iter().map(|(_, c)| c.clone()).collect();
        for root in roots {
            let mut todo = vec![(root.clone(), 0_usize)];
            while let Some((dir, depth)) = todo.pop() {
                let Ok(listing) = fs::read_dir(&dir) else {
                    continue;
                };
                let mut names: Vec<PathBuf> = listing.flatten().map(|e| e.path()).collect();
                names.sort();
                for path in names {
                    entries += 1;
                    if entries > MAX_ENTRIES {
                        self.skipped.stopped_at_max_entries = true;
                        return found;
                    }
                    let Ok(meta) = fs::symlink_metadata(&path) else {
                        continue;
                    };
                    let file = if meta.file_type().is_symlink() {
                        match inside(&root, &path) {
                            Some(target) => target,
                            None => {
                                self.skipped.links_outside += 1;
                                continue;
                            }
                        }
                    } else if meta.is_dir() {
                        if depth < MAX_DEPTH {
                            todo.push((path, depth + 1));
                        } else {
                            self.skipped.too_deep += 1;
                        }
                        continue;
                    } else if meta.is_file() {
                        path
                    } else {
                        continue;
                    };
                    if fs::metadata(&file).is_ok_and(|m| m.len() > MAX_FILE_BYTES) {
                        self.skipped.too_large += 1;
                        continue;
                    }
                    if let Some(id) = build_id_of(&file)
                        && wanted.contains(&id)
                    {
                        let files: &mut Vec<PathBuf> = found.entry(id).or_default();
                        if !files.contains(&file) {
                            files.push(file);
                        }
                    }
                }
            }
            if wanted.iter().all(|id| found.contains_key(id)) {
                break;
            }
        }
        found
    }
}

/// `path` resolved, when it is a regular file inside `root` (itself canonical): a symbolic
/// link is followed only to a file inside `root`.
fn inside(root: &Path, path: &Path) -> Option<PathBuf> {
    let resolved = fs::canonicalize(path).ok()?;
    if !resolved.starts_with(root) {
        return None;
    }
    fs::metadata(&resolved)
        .ok()
        .filter(fs::Metadata::is_file)
        .map(|_| resolved)
}

/// The GNU build id (lowercase hex) of the ELF file at `path`, when it is a regular ELF file
/// that has one. The file is opened without following a link and without blocking (a FIFO put
/// in its place since it was looked at is not waited on).
pub fn build_id_of(path: &Path) -> Option<String> {
    let mut file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .ok()?;
    let meta = file.metadata().ok()?;
    if !meta.is_file() || meta.len() > MAX_FILE_BYTES {
        return None;
    }
    let mut magic = [0_u8; 4];
    file.read_exact(&mut magic).ok()?;
    if magic != *b"\x7fELF" {
        return None;
    }
    let id = blazesym::helper::read_elf_build_id(path).ok()??;
    Some(hex::encode(id))
}
