//! From the INPUT arguments to capture files: a file as it is, a directory as its segments, a
//! glob pattern as what it matches (for shells that leave `'rec/*.parquet'` quoted).
//!
//! Discovery never follows a symbolic link it finds and never opens anything but a regular file,
//! so a FIFO or a device in a directory cannot make a command hang. What it leaves out and why
//! is returned as notes, for the caller to print.

use std::{
    ffi::OsStr,
    fs::{self, FileType},
    io,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, anyhow, bail};
use mmap_format::{journal::JOURNAL_SUFFIX, partition};

/// How deep `key=value` directories are read below a directory INPUT.
const MAX_PARTITION_DEPTH: usize = 16;

/// The extension of capture files in a directory.
const CAPTURE_EXTENSION: &str = "parquet";

/// The capture files that the arguments name, in order, each once.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Discovered {
    pub files: Vec<PathBuf>,
    /// Crash journals that were named or found; they are not captures.
    pub journals: Vec<PathBuf>,
    /// What else was left out, one sentence each.
    pub skipped: Vec<String>,
    /// (device, inode) of every file taken, so that a file named twice is read once.
    seen: Vec<(u64, u64)>,
}

impl Discovered {
    /// Expands every argument; the first that names nothing usable fails the whole list.
    pub fn from_args(args: &[PathBuf]) -> anyhow::Result<Self> {
        let mut found = Self::default();
        for arg in args {
            found.add_arg(arg)?;
        }
        Ok(found)
    }

    /// Adds what one argument names: a file, a directory's `*.parquet` files in name order, or
    /// the matches of a glob pattern (used only when no file has the argument's literal name).
    /// A path that does not exist is taken as a file, for the reader to say "no such file".
    pub fn add_arg(&mut self, arg: &Path) -> anyhow::Result<()> {
        match fs::metadata(arg) {
            Ok(meta) if meta.is_dir() => self.add_dir(arg),
            Ok(meta) if meta.is_file() => {
                self.add_file(arg.to_path_buf(), (meta.dev(), meta.ino()));
                Ok(())
            }
            Ok(_) => bail!(
                "{}: not a regular file or a directory (captures are files, or directories of \
                 them)",
                arg.display()
            ),
            Err(err) if err.kind() == io::ErrorKind::NotFound && is_pattern(arg) => {
                self.add_glob(arg)
            }
            Err(_) => {
                self.files.push(arg.to_path_buf());
                Ok(())
            }
        }
    }

    /// The regular `*.parquet` files of `dir`, by name, and those of its Hive-style partition
    /// directories (`key=value`, read recursively); journals are noted, symbolic links and
    /// special files with a capture's name (or a partition directory's) are skipped with a note,
    /// anything else is ignored.
    fn add_dir(&mut self, dir: &Path) -> anyhow::Result<()> {
        if self.add_dir_at(dir, 0)? == 0 {
            bail!(
                "{}: no capture files (*.{CAPTURE_EXTENSION}) in this directory",
                dir.display()
            );
        }
        Ok(())
    }

    /// [`Self::add_dir`] at `depth` partition directories below the INPUT: how many capture
    /// files it took.
    fn add_dir_at(&mut self, dir: &Path, depth: usize) -> anyhow::Result<usize> {
        let read = |err| anyhow!("{}: cannot read the directory: {err}", dir.display());
        let mut entries = Vec::new();
        for entry in fs::read_dir(dir).map_err(read)? {
            let entry = entry.map_err(read)?;
            let file_type = entry.file_type().map_err(read)?;
            entries.push((entry.path(), file_type));
        }
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        let mut captures = 0;
        for (path, file_type) in entries {
            let partition = path
                .file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|name| partition::parse_dir_name(name).is_some());
            if partition && file_type.is_dir() {
                if depth >= MAX_PARTITION_DEPTH {
                    bail!(
                        "{}: partition directories nested more than {MAX_PARTITION_DEPTH} deep",
                        path.display()
                    );
                }
                captures += self.add_dir_at(&path, depth + 1)?;
            } else if partition && !file_type.is_file() {
                self.skipped.push(format!(
                    "{}: skipped, not a partition directory ({})",
                    path.display(),
                    type_name(file_type)
                ));
            } else if self.add_found(path, file_type)? {
                captures += 1;
            }
        }
        Ok(captures)
    }

    /// What a directory listing found; whether it is a capture file.
    fn add_found(&mut self, path: PathBuf, file_type: FileType) -> anyhow::Result<bool> {
        if file_type.is_file() && is_journal(&path) {
            self.journals.push(path);
        } else if !has_capture_extension(&path) {
            // Notes, checksums, subdirectories: not part of a capture.
        } else if file_type.is_file() {
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("{}: cannot read its metadata", path.display()))?;
            self.add_file(path, (meta.dev(), meta.ino()));
            return Ok(true);
        } else {
            self.skipped.push(format!(
                "{}: skipped, not a regular file ({})",
                path.display(),
                type_name(file_type)
            ));
        }
        Ok(false)
    }

    /// The matches of a glob pattern, in name order: files, and the captures of directories;
    /// symbolic links and special files are skipped with a note.
    fn add_glob(&mut self, pattern: &Path) -> anyhow::Result<()> {
        let text = pattern
            .to_str()
            .with_context(|| format!("{}: a pattern must be UTF-8", pattern.display()))?;
        let matches = glob::glob(text).map_err(|err| anyhow!("{text}: bad pattern: {err}"))?;
        let mut any = false;
        for found in matches {
            let path = found.map_err(|err| anyhow!("{text}: {err}"))?;
            let meta = fs::symlink_metadata(&path)
                .with_context(|| format!("{}: cannot read its metadata", path.display()))?;
            any = true;
            if meta.is_dir() {
                self.add_dir(&path)?;
            } else if meta.is_file() && is_journal(&path) {
                self.journals.push(path);
            } else if meta.is_file() {
                self.add_file(path, (meta.dev(), meta.ino()));
            } else {
                self.skipped.push(format!(
                    "{}: skipped, not a regular file ({})",
                    path.display(),
                    type_name(meta.file_type())
                ));
            }
        }
        if !any {
            bail!("{text}: no file matches this pattern");
        }
        Ok(())
    }

    fn add_file(&mut self, path: PathBuf, id: (u64, u64)) {
        if is_journal(&path) {
            self.journals.push(path);
        } else if !self.seen.contains(&id) {
            self.seen.push(id);
            self.files.push(path);
        }
    }
}

/// Whether an argument is meant as a glob pattern.
fn is_pattern(path: &Path) -> bool {
    path.to_str()
        .is_some_and(|text| text.contains(['*', '?', '[']))
}

fn is_journal(path: &Path) -> bool {
    path.file_name()
        .and_then(OsStr::to_str)
        .is_some_and(|name| name.ends_with(JOURNAL_SUFFIX))
}

fn has_capture_extension(path: &Path) -> bool {
    path.extension() == Some(OsStr::new(CAPTURE_EXTENSION))
}

fn type_name(file_type: FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt as _;
    if file_type.is_symlink() {
        "a symbolic link, not followed"
    } else if file_type.is_dir() {
        "a directory"
    } else if file_type.is_fifo() {
        "a FIFO"
    } else if file_type.is_socket() {
        "a socket"
    } else if file_type.is_block_device() || file_type.is_char_device() {
        "a device"
    } else {
        "a special file"
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    fn touch(path: &Path) {
        fs::write(path, b"x").expect("write a file");
    }

    fn names(paths: &[PathBuf]) -> Vec<String> {
        paths
            .iter()
            .map(|p| {
                p.file_name()
                    .and_then(OsStr::to_str)
                    .unwrap_or_default()
                    .to_owned()
            })
            .collect()
    }

    /// A recording directory: two segments, a journal, a note, a subdirectory, a symlink and a
    /// FIFO with capture names.
    fn recording() -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        touch(&d.join("mmap-20261127T060113Z-c0ffee00-00001.parquet"));
        touch(&d.join("mmap-20261127T060113Z-c0ffee00-00000.parquet"));
        touch(&d.join("mmap-20261127T060113Z-c0ffee00-00001.parquet.journal"));
        touch(&d.join("README.txt"));
        fs::create_dir(d.join("old.parquet")).expect("mkdir");
        symlink("/etc/passwd", d.join("link.parquet")).expect("symlink");
        let fifo = d.join("fifo.parquet");
        let status = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("run mkfifo");
        assert!(status.success());
        dir
    }

    #[test]
    fn a_directory_is_its_regular_capture_files_in_name_order() {
        let dir = recording();
        let found = Discovered::from_args(&[dir.path().to_path_buf()]).expect("discover");
        assert_eq!(
            names(&found.files),
            [
                "mmap-20261127T060113Z-c0ffee00-00000.parquet",
                "mmap-20261127T060113Z-c0ffee00-00001.parquet"
            ]
        );
        assert_eq!(
            names(&found.journals),
            ["mmap-20261127T060113Z-c0ffee00-00001.parquet.journal"]
        );
        assert_eq!(found.skipped.len(), 3, "{:?}", found.skipped);
        let skipped = found.skipped.join("\n");
        for what in ["a symbolic link, not followed", "a FIFO", "a directory"] {
            assert!(skipped.contains(what), "{skipped}");
        }
    }

    /// `key=value` subdirectories are read recursively, in path order; other subdirectories
    /// are not, and a partition directory that is a symbolic link is skipped with a note.
    #[test]
    fn partition_directories_are_read_recursively_without_following_links() {
        let dir = recording();
        let d = dir.path();
        for sub in ["host=a/date=2026-12-02", "host=a/date=2026-12-01", "plain"] {
            fs::create_dir_all(d.join(sub)).expect("mkdir");
            touch(&d.join(sub).join("x.parquet"));
        }
        let elsewhere = tempfile::tempdir().expect("temp dir");
        touch(&elsewhere.path().join("y.parquet"));
        symlink(elsewhere.path(), d.join("host=b")).expect("symlink");
        let found = Discovered::from_args(&[d.to_path_buf()]).expect("discover");
        let relative: Vec<_> = found
            .files
            .iter()
            .map(|p| p.strip_prefix(d).expect("below").to_path_buf())
            .collect();
        assert_eq!(
            relative,
            [
                PathBuf::from("host=a/date=2026-12-01/x.parquet"),
                PathBuf::from("host=a/date=2026-12-02/x.parquet"),
                PathBuf::from("mmap-20261127T060113Z-c0ffee00-00000.parquet"),
                PathBuf::from("mmap-20261127T060113Z-c0ffee00-00001.parquet"),
            ]
        );
        assert!(
            found
                .skipped
                .iter()
                .any(|s| s.contains("host=b: skipped") && s.contains("not followed")),
            "{:?}",
            found.skipped
        );
        // A tree with nothing but partition directories is not "empty".
        let tree = tempfile::tempdir().expect("temp dir");
        fs::create_dir_all(tree.path().join("date=2026-12-01")).expect("mkdir");
        touch(&tree.path().join("date=2026-12-01/z.parquet"));
        let found = Discovered::from_args(&[tree.path().to_path_buf()]).expect("discover");
        assert_eq!(found.files.len(), 1);
    }

    #[test]
    fn a_pattern_is_expanded_when_no_file_has_its_name() {
        let dir = recording();
        let pattern = dir.path().join("mmap-*.parquet");
        let found = Discovered::from_args(&[pattern]).expect("discover");
        assert_eq!(found.files.len(), 2);
        assert!(found.files.windows(2).all(|w| w[0] < w[1]), "name order");

        // A directory that a pattern matches is read as a directory: an empty one is an error.
        let err = Discovered::from_args(&[dir.path().join("*")]).expect_err("empty directory");
        assert!(
            err.to_string().contains("old.parquet: no capture files"),
            "{err}"
        );
        fs::remove_dir(dir.path().join("old.parquet")).expect("rmdir");
        let everything = Discovered::from_args(&[dir.path().join("*")]).expect("discover");
        assert_eq!(
            names(&everything.files),
            [
                "README.txt",
                "mmap-20261127T060113Z-c0ffee00-00000.parquet",
                "mmap-20261127T060113Z-c0ffee00-00001.parquet"
            ],
            "what the shell would pass, but no journal, link or FIFO"
        );
        assert_eq!(everything.journals.len(), 1);

        let none =
            Discovered::from_args(&[dir.path().join("nothing-*.parquet")]).expect_err("no match");
        assert!(none.to_string().contains("no file matches"), "{none}");
    }

    #[test]
    fn a_file_named_twice_is_read_once_and_a_missing_one_is_left_to_the_reader() {
        let dir = recording();
        let first = dir
            .path()
            .join("mmap-20261127T060113Z-c0ffee00-00000.parquet");
        let missing = dir.path().join("missing.parquet");
        let found =
            Discovered::from_args(&[first.clone(), dir.path().to_path_buf(), missing.clone()])
                .expect("discover");
        assert_eq!(found.files.len(), 3);
        assert_eq!(found.files[0], first);
        assert_eq!(found.files[2], missing);
    }

    #[test]
    fn special_files_and_empty_directories_are_errors() {
        let dir = recording();
        let fifo = Discovered::from_args(&[dir.path().join("fifo.parquet")]).expect_err("FIFO");
        assert!(fifo.to_string().contains("not a regular file"), "{fifo}");
        let empty = tempfile::tempdir().expect("temp dir");
        let err = Discovered::from_args(&[empty.path().to_path_buf()]).expect_err("empty");
        assert!(err.to_string().contains("no capture files"), "{err}");
    }
}
