//! The file a derived capture is written to: checked before any work, written as a temporary
//! file in the same directory, renamed into place only when complete.

use std::{
    fs, io,
    os::unix::fs::MetadataExt as _,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use mmap_format::reader::CaptureReader;
use tempfile::NamedTempFile;

/// The destination of a derived capture.
#[derive(Debug)]
pub struct Output {
    path: PathBuf,
    dir: PathBuf,
    /// Replace an existing regular file.
    force: bool,
}

impl Output {
    /// Checks that `path` may be written: its directory exists and is not a directory given as
    /// an input (`args`: the file would be read as one more segment of it); it is not a
    /// directory or a symbolic link (never replaced, even with `force`); an existing file is
    /// replaced only with `force`, and never when it is one of the `inputs` (the same file by
    /// device and inode, whatever its name).
    pub fn check(
        path: &Path,
        force: bool,
        inputs: &[CaptureReader],
        args: &[PathBuf],
    ) -> anyhow::Result<Self> {
        let shown = path.display();
        if path.file_name().is_none() {
            bail!("{shown}: not a file name to write a capture to");
        }
        let dir = match path.parent() {
            Some(parent) if !parent.as_os_str().is_empty() => parent.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let dir_meta = fs::metadata(&dir).map_err(|err| {
            anyhow::anyhow!("{shown}: cannot write there: {}: {err}", dir.display())
        })?;
        if !dir_meta.is_dir() {
            bail!(
                "{shown}: cannot write there: {} is not a directory",
                dir.display()
            );
        }
        let same_dir = |arg: &PathBuf| {
            fs::metadata(arg)
                .is_ok_and(|m| m.is_dir() && m.dev() == dir_meta.dev() && m.ino() == dir_meta.ino())
        };
        if let Some(arg) = args.iter().find(|arg| same_dir(arg)) {
            bail!(
                "{shown}: is in {}, a directory given as input: commands reading it would take \
                 the new file for one more segment; write it elsewhere",
                arg.display()
            );
        }
        match fs::symlink_metadata(path) {
            Ok(meta) if meta.file_type().is_symlink() => bail!(
                "{shown}: is a symbolic link; a capture is never written through one (remove it, \
                 or choose another name)"
            ),
            Ok(meta) if meta.is_dir() => bail!(
                "{shown}: is a directory; give the name of the file to write (e.g. {}/{})",
                shown,
                "capture.parquet"
            ),
            Ok(meta) if !meta.is_file() => {
                bail!("{shown}: exists and is not a regular file; it is never replaced")
            }
            Ok(meta) => {
                let same = inputs.iter().any(|reader| {
                    fs::metadata(reader.path())
                        .is_ok_and(|m| m.dev() == meta.dev() && m.ino() == meta.ino())
                });
                if same {
                    bail!("{shown}: is one of the inputs; it is never overwritten");
                }
                if !force {
                    bail!("{shown}: exists; give --force to replace it");
                }
            }
            Err(err) if err.kind() == io::ErrorKind::NotFound => {}
            Err(err) => bail!("{shown}: cannot check it: {err}"),
        }
        Ok(Self {
            path: path.to_path_buf(),
            dir,
            force,
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// A new temporary file next to the destination (created exclusively, mode 0600), with a
    /// name that no command takes for a capture (`.NAME.XXXXXX.tmp`, not `*.parquet`). It is
    /// removed if it is dropped before [`Output::commit`].
    pub fn temporary(&self) -> anyhow::Result<NamedTempFile> {
        let name = self
            .path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        tempfile::Builder::new()
            .prefix(&format!(".{name}."))
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .with_context(|| {
                format!(
                    "{}: cannot create a temporary file in {}",
                    self.path.display(),
                    self.dir.display()
                )
            })
    }

    /// Syncs the complete file and renames it into place (replacing an existing regular file
    /// only with `force`, checked again now), then syncs the directory.
    pub fn commit(&self, temp: NamedTempFile) -> anyhow::Result<()> {
        let shown = self.path.display();
        temp.as_file()
            .sync_all()
            .with_context(|| format!("{shown}: cannot sync it"))?;
        if self.force {
            if let Ok(meta) = fs::symlink_metadata(&self.path)
                && !meta.is_file()
            {
                bail!("{shown}: is no longer a regular file; it is not replaced");
            }
            temp.persist(&self.path).map_err(|err| {
                anyhow::anyhow!("{shown}: cannot rename it into place: {}", err.error)
            })?;
        } else {
            temp.persist_noclobber(&self.path).map_err(|err| {
                if err.error.kind() == io::ErrorKind::AlreadyExists {
                    anyhow::anyhow!(
                        "{shown}: appeared while it was written; give --force to replace it"
                    )
                } else {
                    anyhow::anyhow!("{shown}: cannot rename it into place: {}", err.error)
                }
            })?;
        }
        // The rename is durable once the directory is.
        if let Ok(dir) = fs::File::open(&self.dir) {
            let _ = dir.sync_all();
        }
        Ok(())
    }
}
