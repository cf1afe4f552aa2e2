//! Where a capture goes: one file or a directory of segments, their names, creating them safely
//! from a privileged process, and completing what a killed recorder left there.
use std::{
    fs::{File, OpenOptions},
    io::ErrorKind,
    os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
    time::Duration,
};

use anyhow::{Context as _, bail};
use mmap_format::{journal::journal_path, metadata::CaptureMetadata, recover};

use crate::launch::InvokingUser;

/// Where rows go.
#[derive(Clone, Debug)]
pub enum Output {
    /// One capture file.
    File(PathBuf),
    /// A directory of segments, rotated by size and/or age, the newest `keep` kept.
    Dir {
        dir: PathBuf,
        rotate_size: Option<u64>,
        rotate_time: Option<Duration>,
        keep: Option<usize>,
    },
}

impl Output {
    /// The file or directory as given.
    pub fn path(&self) -> &Path {
        match self {
            Self::File(path) => path,
            Self::Dir { dir, .. } => dir,
        }
    }

    /// The file of segment `index` (the file itself for a single-file capture).
    pub fn segment_path(&self, template: &CaptureMetadata, index: u32) -> PathBuf {
        match self {
            Self::File(path) => path.clone(),
            Self::Dir { dir, .. } => dir.join(segment_name(template, index)),
        }
    }

    /// Creates the first file of the capture (and a missing segment directory, mode 0700), so
    /// that a bad path fails before anything is loaded. `force` replaces an existing single file.
    /// What it created is [`Provisional`] until the recording keeps it.
    pub fn create_first(
        &self,
        template: &CaptureMetadata,
        force: bool,
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<((PathBuf, File), Provisional)> {
        let mut created = Provisional::default();
        if let Self::Dir { dir, .. } = self
            && !dir.exists()
        {
            created.dirs = dir
                .ancestors()
                .take_while(|d| !d.as_os_str().is_empty() && !d.exists())
                .map(Path::to_path_buf)
                .collect();
            std::fs::DirBuilder::new()
                .mode(0o700)
                .recursive(true)
                .create(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
            if let Some(user) = owner {
                std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).with_context(
                    || format!("cannot give {} to uid {}", dir.display(), user.uid),
                )?;
            }
        }
        let path = self.segment_path(template, 0);
        let force = force && matches!(self, Self::File(_));
        let file = create_capture(&path, force, owner)?;
        created.file = Some(path.clone());
        Ok(((path, file), created))
    }

    /// Completes the captures a killed recorder left here (their journals are next to them).
    pub fn recover_leftovers(&self) {
        for path in self.journaled_files() {
            match recover::recover(&path) {
                Ok(done) => eprintln!(
                    "mmap-recorder: completed the interrupted capture {} ({} rows kept, {} bytes \
                     of an unfinished row group dropped)",
                    path.display(),
                    done.rows,
                    done.bytes_dropped
                ),
                Err(err) => eprintln!("mmap-recorder: could not recover {}: {err}", path.display()),
            }
        }
    }

    /// The capture files here that have a crash journal next to them.
    fn journaled_files(&self) -> Vec<PathBuf> {
        let candidates: Vec<PathBuf> = match self {
            Self::File(path) => vec![path.clone()],
            Self::Dir { dir, .. } => std::fs::read_dir(dir)
                .map(|entries| {
                    entries
                        .filter_map(Result::ok)
                        .filter_map(|entry| {
                            let path = entry.path();
                            let name = path.file_name()?.to_str()?.strip_suffix(".journal")?;
                            Some(path.with_file_name(name))
                        })
                        .collect()
                })
                .unwrap_or_default(),
        };
        candidates
            .into_iter()
            .filter(|path| journal_path(path).exists())
            .collect()
    }
}

/// `mmap-<start>-<capture id prefix>-<index>.parquet`: sorts by time, then index.
pub fn segment_name(template: &CaptureMetadata, index: u32) -> String {
    let start =
        chrono::DateTime::from_timestamp_nanos(template.capture_start_ns).format("%Y%m%dT%H%M%SZ");
    let id: String = template
        .capture_id
        .as_deref()
        .unwrap_or("capture")
        .chars()
        .take(8)
        .collect();
    format!("mmap-{start}-{id}-{index:05}.parquet")
}

/// Creates `path` new, mode 0600, never through a symlink; with `force` an existing file (or
/// symlink, which is removed, not followed) is replaced. Through sudo the file belongs to the
/// invoking user.
pub fn create_capture(
    path: &Path,
    force: bool,
    owner: Option<&InvokingUser>,
) -> anyhow::Result<File> {
    if force {
        match std::fs::symlink_metadata(path) {
            Ok(meta) if meta.is_dir() => bail!("{} is a directory", path.display()),
            Ok(_) => std::fs::remove_file(path)
                .with_context(|| format!("cannot remove existing {}", path.display()))?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
        }
    }
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.kind() {
            ErrorKind::AlreadyExists => anyhow::anyhow!(
                "{} already exists; choose another path or pass --force to replace it",
                path.display()
            ),
            _ => anyhow::Error::new(e).context(format!("cannot create {}", path.display())),
        })?;
    if let Some(user) = owner {
        std::os::unix::fs::fchown(&file, Some(user.uid), Some(user.gid))
            .with_context(|| format!("cannot give {} to uid {}", path.display(), user.uid))?;
    }
    Ok(file)
}

/// What a recording created at its output: the first file (and its crash journal, once the
/// writer made it) and the directories it made. Dropped before [`Provisional::keep`], it removes
/// them, so that a recording that fails before its first row leaves nothing behind (not even a
/// journal that the next start would complete).
#[derive(Debug, Default)]
pub struct Provisional {
    file: Option<PathBuf>,
    /// Directories the recorder created, innermost first.
    dirs: Vec<PathBuf>,
}

impl Provisional {
    /// The capture has rows worth keeping.
    pub fn keep(&mut self) {
        self.file = None;
        self.dirs.clear();
    }
}

impl Drop for Provisional {
    fn drop(&mut self) {
        if let Some(file) = self.file.take() {
            let _ = std::fs::remove_file(journal_path(&file));
            let _ = std::fs::remove_file(file);
        }
        for dir in &self.dirs {
            // Only while empty: whatever else is there is not ours.
            match std::fs::remove_dir(dir) {
                Err(e) if e.kind() != ErrorKind::NotFound => break,
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provisional_outputs_are_removed_unless_kept() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let template = CaptureMetadata::default();
        for keep in [false, true] {
            let dir = tmp.path().join(format!("keep-{keep}/a/b"));
            let output = Output::Dir {
                dir: dir.clone(),
                rotate_size: None,
                rotate_time: None,
                keep: None,
            };
            let ((path, _file), mut created) =
                output.create_first(&template, false, None).expect("create");
            std::fs::write(journal_path(&path), b"journal").expect("journal");
            if keep {
                created.keep();
            }
            drop(created);
            assert_eq!(path.exists(), keep);
            assert_eq!(journal_path(&path).exists(), keep);
            // Every directory the recorder made, and only those.
            assert_eq!(tmp.path().join(format!("keep-{keep}")).exists(), keep);
            assert!(tmp.path().exists());
        }
        // A file in a directory that existed already: the directory stays.
        let path = tmp.path().join("single.parquet");
        let (_, created) = Output::File(path.clone())
            .create_first(&template, false, None)
            .expect("create");
        drop(created);
        assert!(!path.exists());
        assert!(tmp.path().exists());
    }

    #[test]
    fn segment_names_sort_by_start_then_index() {
        let template = CaptureMetadata {
            capture_start_ns: 1_764_226_381_000_000_000,
            capture_id: Some("1a2b3c4d-5e6f".to_owned()),
            ..Default::default()
        };
        assert_eq!(
            segment_name(&template, 7),
            "mmap-20251127T065301Z-1a2b3c4d-00007.parquet"
        );
        assert!(segment_name(&template, 9) < segment_name(&template, 10));
    }
}
