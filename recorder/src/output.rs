//! Creating capture files safely from a privileged process.
use std::{
    fs::{File, OpenOptions},
    io::ErrorKind,
    os::unix::fs::OpenOptionsExt as _,
    path::Path,
};

use anyhow::{Context as _, bail};

use crate::launch::InvokingUser;

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
