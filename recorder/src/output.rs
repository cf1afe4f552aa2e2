//! Where a capture goes: one file or a directory of segments, their names, creating them safely
//! from a privileged process, and completing what a killed recorder left there.
use std::{
    ffi::{OsStr, OsString},
    fs::File,
    io::ErrorKind,
    os::{
        fd::{AsFd as _, AsRawFd as _, BorrowedFd, OwnedFd},
        unix::fs::MetadataExt as _,
    },
    path::{Component, Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use anyhow::{Context as _, bail};
use mmap_format::{
    journal::{JOURNAL_MAGIC, journal_path},
    metadata::CaptureMetadata,
    partition::{self, PartitionKey},
    reader::CaptureReader,
    recover,
};
use nix::{
    errno::Errno,
    fcntl::{AtFlags, OFlag, open, openat},
    sys::stat::{Mode, SFlag, fstatat, mkdirat},
    unistd::{Gid, Uid, UnlinkatFlags, fchown, unlinkat},
};

use crate::launch::InvokingUser;

/// The first file of a capture, created at set-up: its path, the open file and the directory it
/// is in.
pub type FirstFile = (PathBuf, File, OutDir);

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
        /// `--partition`: each segment goes in `key=value` directories under `dir`, in this
        /// order.
        partition: Partitioning,
    },
}

/// How a directory capture is partitioned (`--partition host,date`).
#[derive(Clone, Debug, Default)]
pub struct Partitioning {
    /// The keys, outermost directory first; empty: segments go in the directory itself.
    pub keys: Vec<PartitionKey>,
    /// Testing only: added to the clock when the `date` of a segment or a row is decided, so
    /// that a test can cross midnight in seconds.
    pub clock_offset_ns: i64,
}

impl Partitioning {
    /// Whether segments are partitioned by day (and so rotated at midnight UTC).
    pub fn by_date(&self) -> bool {
        self.keys.contains(&PartitionKey::Date)
    }

    /// The UTC day of the wall-clock time `ns`, as the partitioning sees it.
    pub fn day_of(&self, ns: i64) -> String {
        partition::date_of(ns.saturating_add(self.clock_offset_ns))
    }

    /// The partition directories of a segment of `template` that starts at `start_ns`,
    /// outermost first.
    pub fn dirs(&self, template: &CaptureMetadata, start_ns: i64) -> Vec<String> {
        self.keys
            .iter()
            .map(|&key| {
                let value = match key {
                    PartitionKey::Host => template.hostname.clone(),
                    PartitionKey::Date => self.day_of(start_ns),
                };
                partition::dir_name(key, &value)
            })
            .collect()
    }
}

impl Output {
    /// The file or directory as given.
    pub fn path(&self) -> &Path {
        match self {
            Self::File(path) => path,
            Self::Dir { dir, .. } => dir,
        }
    }

    /// The file of segment `index` (the file itself for a single-file capture), which starts
    /// at `start_ns`, and its partition directories (below the capture's directory).
    pub fn segment_path(
        &self,
        template: &CaptureMetadata,
        index: u32,
        start_ns: i64,
    ) -> (PathBuf, Vec<String>) {
        match self {
            Self::File(path) => (path.clone(), Vec::new()),
            Self::Dir { dir, partition, .. } => {
                let parts = partition.dirs(template, start_ns);
                let mut path = dir.clone();
                path.extend(&parts);
                (path.join(segment_name(template, index)), parts)
            }
        }
    }

    /// Creates the first file of the capture (and the missing directories of a segment
    /// directory, mode 0700, given to `owner`), so that a bad path fails before anything is
    /// loaded. `force` replaces an existing single file that is a capture. What it created is
    /// [`Provisional`] until the recording keeps it; the [`OutDir`] is where every later file of
    /// the capture is created.
    pub fn create_first(
        &self,
        template: &CaptureMetadata,
        force: bool,
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<(FirstFile, Provisional, OutDir)> {
        let (dir, mut dirs) = match self {
            Self::Dir { dir, .. } => OutDir::open_or_create(dir, owner)?,
            Self::File(path) => {
                let parent = match path.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p,
                    _ => Path::new("."),
                };
                (OutDir::open_existing(parent)?, Vec::new())
            }
        };
        let (path, parts) = self.segment_path(template, 0, template.capture_start_ns);
        let (in_dir, mut made) = dir.subdir(&parts, owner)?;
        made.append(&mut dirs);
        let mut created = Provisional {
            dir: Some(in_dir.clone()),
            file: None,
            dirs: made,
        };
        let name = file_name(&path)?;
        let force = force && matches!(self, Self::File(_));
        let file = in_dir.create(name, force, owner)?;
        created.file = Some(name.to_owned());
        Ok(((path, file, in_dir), created, dir))
    }

    /// Completes the captures a killed recorder left here (their journals are next to them).
    /// Only its own: in a directory, files named as the recorder names segments; and only files
    /// that belong to the user the recorder gives its files to (`owner`, else the user it runs
    /// as), so a root recorder never rewrites a file someone else put there. Recovery itself
    /// opens neither file through a link and refuses special files ([`recover::recover`]).
    pub fn recover_leftovers(&self, owner: Option<&InvokingUser>) {
        let uid = owner.map_or_else(|| Uid::effective().as_raw(), |user| user.uid);
        for path in self.journaled_files() {
            match std::fs::symlink_metadata(&path) {
                Ok(meta) if meta.file_type().is_file() && meta.uid() == uid => {}
                Ok(meta) => {
                    say!(
                        "mmap-recorder: left {} as it is: it has a crash journal but is not a \
                         capture this recorder made ({}); run `mmap-analyze recover` on it \
                         yourself if it is one",
                        path.display(),
                        if meta.file_type().is_file() {
                            format!("it belongs to uid {}, not {uid}", meta.uid())
                        } else {
                            "not a regular file".to_owned()
                        }
                    );
                    continue;
                }
                Err(_) => continue,
            }
            match recover::recover(&path) {
                Ok(done) => {
                    say!(
                        "mmap-recorder: completed the interrupted capture {} ({} rows kept, {} \
                         bytes of an unfinished row group dropped)",
                        path.display(),
                        done.rows,
                        done.bytes_dropped
                    );
                    if let Err(err) = self.list_recovered(&path, &done, owner) {
                        say!(
                            "mmap-recorder: could not add {} to its capture's manifest: {err:#}",
                            path.display()
                        );
                    }
                }
                // Killed after the footer, before the journal was removed (which recovery just
                // did): the segment is whole but was never listed.
                Err(mmap_format::FormatError::AlreadyComplete { .. }) => {
                    let listed = CaptureReader::open(&path)
                        .map_err(anyhow::Error::from)
                        .and_then(|reader| {
                            let done = recover::Recovered {
                                rows: reader.num_rows(),
                                row_groups: reader.num_row_groups(),
                                bytes_dropped: 0,
                                metadata: reader.metadata().clone(),
                            };
                            self.list_recovered(&path, &done, owner)
                        });
                    if let Err(err) = listed {
                        say!(
                            "mmap-recorder: could not add {} to its capture's manifest: {err:#}",
                            path.display()
                        );
                    }
                }
                Err(err) => say!("mmap-recorder: could not recover {}: {err}", path.display()),
            }
        }
    }

    /// A segment of a directory capture completed by recovery joins its capture's manifest
    /// (hashed like any finished segment); a single file has no manifest.
    fn list_recovered(
        &self,
        path: &Path,
        done: &recover::Recovered,
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<()> {
        let Self::Dir { dir, .. } = self else {
            return Ok(());
        };
        let top = OutDir::open_existing(dir)?;
        // A segment in partition directories: they are below the capture's directory, and the
        // manifest (in the capture's directory) names it by its path from there.
        let parts: Vec<String> = path
            .strip_prefix(dir)
            .ok()
            .and_then(Path::parent)
            .map(|p| {
                p.components()
                    .map(|c| c.as_os_str().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        let (in_dir, _) = top.subdir_existing(&parts)?;
        crate::chain::record_recovered(
            &top,
            &in_dir,
            file_name(path)?,
            &done.metadata,
            done.rows,
            owner,
        )
    }

    /// The capture files here that have a crash journal next to them: the output file, or in a
    /// directory the files named as segments (`mmap-*.parquet`), also in its partition
    /// directories (`key=value`, real directories: a symbolic link is not followed).
    fn journaled_files(&self) -> Vec<PathBuf> {
        let candidates: Vec<PathBuf> = match self {
            Self::File(path) => vec![path.clone()],
            Self::Dir { dir, .. } => {
                let mut found = Vec::new();
                journaled_segments(dir, 0, &mut found);
                found
            }
        };
        candidates
            .into_iter()
            .filter(|path| std::fs::symlink_metadata(journal_path(path)).is_ok())
            .collect()
    }
}

/// How deep partition directories are searched for crash journals (there are two keys).
const PARTITION_DEPTH: usize = 4;

/// The segments in `dir` that have a crash journal next to them, and those of its partition
/// directories, `depth` levels down so far.
fn journaled_segments(dir: &Path, depth: usize, found: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let path = entry.path();
        let Some(name) = path.file_name().and_then(OsStr::to_str) else {
            continue;
        };
        // The entry's own type: a symbolic link is never taken for a directory.
        let is_dir = entry.file_type().is_ok_and(|t| t.is_dir());
        if is_dir && depth < PARTITION_DEPTH && partition::parse_dir_name(name).is_some() {
            journaled_segments(&path, depth + 1, found);
        } else if let Some(segment) = name.strip_suffix(".journal")
            && is_segment_name(segment)
        {
            found.push(path.with_file_name(segment));
        }
    }
}

/// Whether `name` is a segment's name as [`segment_name`] makes them.
fn is_segment_name(name: &str) -> bool {
    name.strip_prefix("mmap-")
        .and_then(|rest| rest.strip_suffix(".parquet"))
        .is_some_and(|middle| {
            let parts: Vec<&str> = middle.split('-').collect();
            parts.len() == 3 && parts[2].len() >= 5 && parts[2].bytes().all(|b| b.is_ascii_digit())
        })
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

/// The last component of `path`, which names the file to create.
fn file_name(path: &Path) -> anyhow::Result<&OsStr> {
    path.file_name()
        .with_context(|| format!("{} does not name a file", path.display()))
}

/// The directory a capture's files are created in, held open from the start: every file is
/// created, checked and removed by name relative to it (openat, fstatat, unlinkat), so that a
/// directory renamed or replaced by a symlink later cannot redirect them.
#[derive(Clone, Debug)]
pub struct OutDir {
    fd: Arc<OwnedFd>,
    path: PathBuf,
}

/// Opens the directory `name` (relative to `at`, else to the working directory); with
/// `no_follow` a symlink there is refused instead of followed.
fn open_dir_at(at: Option<BorrowedFd<'_>>, name: &Path, no_follow: bool) -> nix::Result<OwnedFd> {
    let mut flags = OFlag::O_RDONLY | OFlag::O_DIRECTORY | OFlag::O_CLOEXEC;
    if no_follow {
        flags |= OFlag::O_NOFOLLOW;
    }
    match at {
        Some(at) => openat(at, name, flags, Mode::empty()),
        None => open(name, flags, Mode::empty()),
    }
}

impl OutDir {
    /// The existing directory `path` (following symlinks the user put in the path).
    pub fn open_existing(path: &Path) -> anyhow::Result<Self> {
        let fd = open_dir_at(None, path, false)
            .with_context(|| format!("cannot open the directory {}", path.display()))?;
        Ok(Self {
            fd: Arc::new(fd),
            path: path.to_path_buf(),
        })
    }

    /// The directory `path`, with its missing components created one by one under the last
    /// existing one (mkdirat, mode 0700), each opened without following a symlink and given to
    /// `owner` through its descriptor (fchown). Returns it and the directories created,
    /// innermost first.
    pub fn open_or_create(
        path: &Path,
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        let start = if path.is_absolute() { "/" } else { "." };
        let mut fd = open_dir_at(None, Path::new(start), false)
            .with_context(|| format!("cannot open {start}"))?;
        let mut so_far = PathBuf::new();
        let mut created = Vec::new();
        for component in path.components() {
            so_far.push(component);
            let name = match component {
                Component::RootDir | Component::CurDir => continue,
                Component::Prefix(_) => bail!("{}: unsupported path", path.display()),
                Component::ParentDir => Path::new(".."),
                Component::Normal(name) => Path::new(name),
            };
            // Created by us: nothing may stand in for it, so no symlink is followed.
            let ours = !created.is_empty();
            match open_dir_at(Some(fd.as_fd()), name, ours) {
                Ok(next) => {
                    fd = next;
                    continue;
                }
                Err(Errno::ENOENT) => {}
                Err(e) => {
                    return Err(e).with_context(|| format!("cannot open {}", so_far.display()));
                }
            }
            mkdirat(fd.as_fd(), name, Mode::from_bits_truncate(0o700))
                .with_context(|| format!("cannot create {}", so_far.display()))?;
            let next = open_dir_at(Some(fd.as_fd()), name, true).with_context(|| {
                format!(
                    "{} was replaced while it was being created",
                    so_far.display()
                )
            })?;
            if let Some(user) = owner {
                fchown(
                    &next,
                    Some(Uid::from_raw(user.uid)),
                    Some(Gid::from_raw(user.gid)),
                )
                .with_context(|| format!("cannot give {} to uid {}", so_far.display(), user.uid))?;
            }
            created.insert(0, so_far.clone());
            fd = next;
        }
        Ok((
            Self {
                fd: Arc::new(fd),
                path: path.to_path_buf(),
            },
            created,
        ))
    }

    /// The directory `parts` (partition directories, outermost first) below this one, with
    /// the missing ones created (mkdirat, mode 0700, given to `owner`); none is reached through
    /// a symbolic link (each is opened with O_NOFOLLOW relative to the one above). Returns it
    /// and the directories created, innermost first.
    pub fn subdir(
        &self,
        parts: &[String],
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        self.walk(parts, Some(owner))
    }

    /// The existing directory `parts` below this one, reached without following a symbolic
    /// link.
    pub fn subdir_existing(&self, parts: &[String]) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        self.walk(parts, None)
    }

    /// [`Self::subdir`]; with `create` `None`, nothing is created.
    fn walk(
        &self,
        parts: &[String],
        create: Option<Option<&InvokingUser>>,
    ) -> anyhow::Result<(Self, Vec<PathBuf>)> {
        let mut current = self.clone();
        let mut created = Vec::new();
        for part in parts {
            let name = Path::new(part);
            // One plain component: nothing in it can climb out or go down further.
            if name.components().count() != 1
                || !matches!(name.components().next(), Some(Component::Normal(_)))
            {
                bail!(
                    "{}: not a directory name",
                    current.path.join(name).display()
                );
            }
            let path = current.path.join(name);
            let fd = match open_dir_at(Some(current.fd.as_fd()), name, true) {
                Ok(fd) => fd,
                Err(Errno::ENOENT) if create.is_some() => {
                    mkdirat(current.fd.as_fd(), name, Mode::from_bits_truncate(0o700))
                        .or_else(|e| if e == Errno::EEXIST { Ok(()) } else { Err(e) })
                        .with_context(|| format!("cannot create {}", path.display()))?;
                    let fd =
                        open_dir_at(Some(current.fd.as_fd()), name, true).with_context(|| {
                            format!("{} was replaced while it was being created", path.display())
                        })?;
                    if let Some(Some(user)) = create {
                        fchown(
                            &fd,
                            Some(Uid::from_raw(user.uid)),
                            Some(Gid::from_raw(user.gid)),
                        )
                        .with_context(|| {
                            format!("cannot give {} to uid {}", path.display(), user.uid)
                        })?;
                    }
                    // The new directory's entry must survive a crash, like the files in it.
                    current
                        .sync()
                        .with_context(|| format!("writing {}", path.display()))?;
                    created.insert(0, path.clone());
                    fd
                }
                Err(Errno::ELOOP) => bail!(
                    "{} is a symbolic link; partition directories are never reached through one",
                    path.display()
                ),
                Err(e) => {
                    return Err(std::io::Error::from(e))
                        .with_context(|| format!("cannot open {}", path.display()));
                }
            };
            current = Self {
                fd: Arc::new(fd),
                path,
            };
        }
        Ok((current, created))
    }

    /// This directory's path, as given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The path of `name` in this directory, for messages.
    pub fn path_of(&self, name: &OsStr) -> PathBuf {
        self.path.join(name)
    }

    /// Creates `name` new, mode 0600, never through a symlink. With `force` an existing capture
    /// or crash journal (or empty file) of that name is replaced; anything else (a directory, a
    /// symlink, a device, any other file) is refused with an error that says why. Through sudo
    /// the file belongs to the invoking user.
    pub fn create(
        &self,
        name: &OsStr,
        force: bool,
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<File> {
        let path = self.path_of(name);
        if force {
            self.remove_capture(name)?;
        }
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_WRONLY | OFlag::O_CREAT | OFlag::O_EXCL | OFlag::O_NOFOLLOW | OFlag::O_CLOEXEC,
            Mode::from_bits_truncate(0o600),
        )
        .map_err(|e| match e {
            Errno::EEXIST => anyhow::anyhow!(
                "{} already exists; choose another path or pass --force to replace it",
                path.display()
            ),
            e => anyhow::Error::new(std::io::Error::from(e))
                .context(format!("cannot create {}", path.display())),
        })?;
        let file = File::from(fd);
        if let Some(user) = owner {
            fchown(
                &file,
                Some(Uid::from_raw(user.uid)),
                Some(Gid::from_raw(user.gid)),
            )
            .with_context(|| format!("cannot give {} to uid {}", path.display(), user.uid))?;
        }
        Ok(file)
    }

    /// --force: removes `name` if it is a regular file holding a capture, a crash journal, or
    /// nothing; refuses anything else. Nothing is followed: the name itself is checked (on a
    /// descriptor opened with O_NOFOLLOW) and removed (unlinkat).
    fn remove_capture(&self, name: &OsStr) -> anyhow::Result<()> {
        let path = self.path_of(name);
        let refuse = |what: &str| {
            anyhow::anyhow!(
                "{} {what}; --force replaces only an mmap-capture file or its journal",
                path.display()
            )
        };
        let stat = match fstatat(self.fd.as_fd(), name, AtFlags::AT_SYMLINK_NOFOLLOW) {
            Ok(stat) => stat,
            Err(Errno::ENOENT) => return Ok(()),
            Err(e) => return Err(e).with_context(|| format!("cannot inspect {}", path.display())),
        };
        match SFlag::from_bits_truncate(stat.st_mode & SFlag::S_IFMT.bits()) {
            SFlag::S_IFREG => {}
            SFlag::S_IFDIR => return Err(refuse("is a directory")),
            SFlag::S_IFLNK => {
                return Err(refuse(
                    "is a symbolic link (neither it nor what it points to is replaced)",
                ));
            }
            SFlag::S_IFCHR | SFlag::S_IFBLK => return Err(refuse("is a device")),
            SFlag::S_IFIFO => return Err(refuse("is a named pipe")),
            SFlag::S_IFSOCK => return Err(refuse("is a socket")),
            _ => return Err(refuse("is not a regular file")),
        }
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .with_context(|| format!("cannot open {}", path.display()))?;
        let file = File::from(fd);
        let meta = file
            .metadata()
            .with_context(|| format!("cannot inspect {}", path.display()))?;
        if !meta.is_file() || (meta.dev(), meta.ino()) != (stat.st_dev, stat.st_ino) {
            return Err(refuse("changed while it was being checked"));
        }
        if !is_capture_or_journal(&file, meta.len()) {
            return Err(refuse("is not an mmap-capture file"));
        }
        unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir)
            .with_context(|| format!("cannot remove existing {}", path.display()))
    }

    /// Opens `name` here for reading: a regular file only, never through a symlink, never
    /// blocking on a FIFO (O_NOFOLLOW | O_NONBLOCK, then a check of what was opened).
    pub fn open_read(&self, name: &OsStr) -> anyhow::Result<File> {
        let path = self.path_of(name);
        let fd = openat(
            self.fd.as_fd(),
            name,
            OFlag::O_RDONLY | OFlag::O_NOFOLLOW | OFlag::O_NONBLOCK | OFlag::O_CLOEXEC,
            Mode::empty(),
        )
        .map_err(std::io::Error::from)
        .with_context(|| format!("cannot open {}", path.display()))?;
        let file = File::from(fd);
        let meta = file
            .metadata()
            .with_context(|| format!("cannot inspect {}", path.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file", path.display());
        }
        Ok(file)
    }

    /// Reads `name` here if it exists ([`Self::open_read`]), at most `max` bytes.
    pub fn read_small(&self, name: &OsStr, max: u64) -> anyhow::Result<Option<Vec<u8>>> {
        use std::io::Read as _;
        let file = match self.open_read(name) {
            Ok(file) => file,
            Err(err)
                if err
                    .downcast_ref::<std::io::Error>()
                    .is_some_and(|e| e.kind() == ErrorKind::NotFound) =>
            {
                return Ok(None);
            }
            Err(err) => return Err(err),
        };
        let mut bytes = Vec::new();
        file.take(max.saturating_add(1))
            .read_to_end(&mut bytes)
            .with_context(|| format!("cannot read {}", self.path_of(name).display()))?;
        Ok(Some(bytes))
    }

    /// Replaces `name` here with `bytes` atomically: written to a temporary name (created new,
    /// never through a symlink, given to `owner`), made durable, then renamed over `name` (a
    /// rename replaces whatever entry has the name, a symlink too, without following it).
    pub fn write_atomic(
        &self,
        name: &OsStr,
        bytes: &[u8],
        owner: Option<&InvokingUser>,
    ) -> anyhow::Result<()> {
        use std::io::Write as _;
        let mut temp = OsString::from(".");
        temp.push(name);
        temp.push(".tmp");
        // One left by a recorder killed while writing it.
        match unlinkat(
            self.fd.as_fd(),
            temp.as_os_str(),
            UnlinkatFlags::NoRemoveDir,
        ) {
            Ok(()) | Err(Errno::ENOENT) => {}
            Err(e) => {
                return Err(e)
                    .with_context(|| format!("cannot remove {}", self.path_of(&temp).display()));
            }
        }
        let mut file = self.create(&temp, false, owner)?;
        let written = file.write_all(bytes).and_then(|()| file.sync_all());
        if let Err(err) = written {
            let _ = self.remove(&temp);
            return Err(err).with_context(|| format!("writing {}", self.path_of(&temp).display()));
        }
        drop(file);
        if let Err(err) =
            nix::fcntl::renameat(self.fd.as_fd(), temp.as_os_str(), self.fd.as_fd(), name)
        {
            let _ = self.remove(&temp);
            return Err(std::io::Error::from(err))
                .with_context(|| format!("cannot replace {}", self.path_of(name).display()));
        }
        self.sync()
            .with_context(|| format!("writing {}", self.path_of(name).display()))
    }

    /// Removes `name` from this directory (never following a symlink).
    pub fn remove(&self, name: &OsStr) -> std::io::Result<()> {
        Ok(unlinkat(self.fd.as_fd(), name, UnlinkatFlags::NoRemoveDir)?)
    }

    /// Makes the names created or removed here durable.
    pub fn sync(&self) -> std::io::Result<()> {
        Ok(nix::unistd::fsync(self.fd.as_fd())?)
    }
}

/// Whether an open regular file is a complete capture, a crash journal, or empty (a recorder
/// killed before its first row group leaves one).
fn is_capture_or_journal(file: &File, len: u64) -> bool {
    use std::io::Read as _;
    if len == 0 {
        return true;
    }
    let mut head = [0u8; 8];
    let mut reader = file;
    if reader.read_exact(&mut head).is_ok() && head == *JOURNAL_MAGIC {
        return true;
    }
    // Read through the descriptor already checked, not by name again.
    let by_fd = PathBuf::from(format!("/proc/self/fd/{}", file.as_raw_fd()));
    CaptureReader::open(&by_fd).is_ok()
}

/// What a recording created at its output: the first file (and its crash journal, once the
/// writer made it) and the directories it made. Dropped before [`Provisional::keep`], it removes
/// them, so that a recording that fails before its first row leaves nothing behind (not even a
/// journal that the next start would complete).
#[derive(Debug, Default)]
pub struct Provisional {
    dir: Option<OutDir>,
    /// The first file's name in `dir`.
    file: Option<OsString>,
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
        if let (Some(dir), Some(file)) = (&self.dir, self.file.take()) {
            if let Some(journal) = journal_path(Path::new(&file)).file_name() {
                let _ = dir.remove(journal);
            }
            let _ = dir.remove(&file);
        }
        self.dir = None;
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
    use mmap_format::writer::{CaptureWriter, WriterConfig};

    use super::*;

    /// --force replaces a capture, a crash journal or an empty file, and refuses (leaving it as
    /// it was) anything else, with the reason.
    #[test]
    fn force_replaces_only_a_capture_or_its_journal() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = OutDir::open_existing(tmp.path()).expect("open dir");
        let at = |name: &str| tmp.path().join(name);
        let capture = CaptureWriter::new(Vec::new(), WriterConfig::default())
            .expect("writer")
            .finish(&CaptureMetadata::default())
            .expect("a capture");
        std::fs::write(at("capture.parquet"), &capture).expect("write");
        std::fs::write(at("capture.parquet.journal"), b"MMCAPJNL and the rest").expect("write");
        std::fs::write(at("empty.parquet"), b"").expect("write");
        for name in [
            "capture.parquet",
            "capture.parquet.journal",
            "empty.parquet",
        ] {
            dir.create(OsStr::new(name), true, None)
                .unwrap_or_else(|e| panic!("{name} is replaced: {e:#}"));
            assert_eq!(std::fs::metadata(at(name)).expect("new").len(), 0, "{name}");
        }

        std::fs::write(at("notes.txt"), b"precious").expect("write");
        std::fs::write(at("other.parquet"), b"PAR1 but not a capture PAR1").expect("write");
        std::os::unix::fs::symlink(at("capture.parquet"), at("link.parquet")).expect("symlink");
        std::fs::create_dir(at("dir.parquet")).expect("mkdir");
        nix::unistd::mkfifo(&at("fifo.parquet"), Mode::from_bits_truncate(0o600)).expect("fifo");
        for (name, why) in [
            ("notes.txt", "is not an mmap-capture file"),
            ("other.parquet", "is not an mmap-capture file"),
            ("link.parquet", "is a symbolic link"),
            ("dir.parquet", "is a directory"),
            ("fifo.parquet", "is a named pipe"),
        ] {
            let before = std::fs::symlink_metadata(at(name)).expect("there");
            let err = dir
                .create(OsStr::new(name), true, None)
                .expect_err("refused");
            let err = format!("{err:#}");
            assert!(
                err.contains(why) && err.contains("--force replaces only"),
                "{name}: {err}"
            );
            let after = std::fs::symlink_metadata(at(name)).expect("still there");
            assert_eq!(before.ino(), after.ino(), "{name} untouched");
        }
        assert_eq!(std::fs::read(at("notes.txt")).expect("read"), b"precious");
        // Without --force nothing is replaced.
        let err = dir
            .create(OsStr::new("capture.parquet"), false, None)
            .expect_err("exists");
        assert!(format!("{err:#}").contains("already exists"), "{err:#}");
    }

    /// Missing directories are created one by one, innermost first in the list, and an
    /// existing symlink in the path the user gave is followed.
    #[test]
    fn missing_directories_are_created_under_the_existing_ones() {
        let tmp = tempfile::tempdir().expect("tempdir");
        std::fs::create_dir(tmp.path().join("real")).expect("mkdir");
        std::os::unix::fs::symlink(tmp.path().join("real"), tmp.path().join("via"))
            .expect("symlink");
        let (dir, created) =
            OutDir::open_or_create(&tmp.path().join("via/a/b"), None).expect("create");
        assert_eq!(
            created,
            [tmp.path().join("via/a/b"), tmp.path().join("via/a")]
        );
        assert!(tmp.path().join("real/a/b").is_dir());
        dir.create(OsStr::new("x"), false, None)
            .expect("a file in it");
        assert!(tmp.path().join("real/a/b/x").is_file());
        let mode = std::fs::metadata(tmp.path().join("real/a"))
            .expect("a")
            .mode();
        assert_eq!(mode & 0o777, 0o700);
    }

    /// Partition directories are created below the capture's directory, mode 0700, and never
    /// reached through a symbolic link, even one that exists already.
    #[test]
    fn partition_directories_are_created_and_never_followed() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = OutDir::open_existing(tmp.path()).expect("open dir");
        let parts = ["host=a".to_owned(), "date=2026-12-01".to_owned()];
        let (sub, created) = dir.subdir(&parts, None).expect("create");
        assert_eq!(
            created,
            [
                tmp.path().join("host=a/date=2026-12-01"),
                tmp.path().join("host=a")
            ]
        );
        sub.create(OsStr::new("x"), false, None).expect("a file");
        assert!(tmp.path().join("host=a/date=2026-12-01/x").is_file());
        let (_, again) = dir.subdir(&parts, None).expect("exists");
        assert!(again.is_empty());
        let mode = std::fs::metadata(tmp.path().join("host=a"))
            .expect("a")
            .mode();
        assert_eq!(mode & 0o777, 0o700);

        let elsewhere = tempfile::tempdir().expect("tempdir");
        std::os::unix::fs::symlink(elsewhere.path(), tmp.path().join("host=b")).expect("symlink");
        let err = dir
            .subdir(&["host=b".to_owned(), "date=x".to_owned()], None)
            .expect_err("a link is refused");
        assert!(format!("{err:#}").contains("host=b"), "{err:#}");
        assert!(!elsewhere.path().join("date=x").exists());
        for bad in ["..", "a/b", ""] {
            assert!(dir.subdir(&[bad.to_owned()], None).is_err(), "{bad:?}");
        }
    }

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
                partition: Partitioning::default(),
            };
            let ((path, _file, _), mut created, _dir) =
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
        let (_, created, _) = Output::File(path.clone())
            .create_first(&template, false, None)
            .expect("create");
        drop(created);
        assert!(!path.exists());
        assert!(tmp.path().exists());
    }

    #[test]
    fn only_names_the_recorder_gives_are_its_segments() {
        let template = CaptureMetadata {
            capture_start_ns: 1_764_226_381_000_000_000,
            capture_id: Some("1a2b3c4d-5e6f".to_owned()),
            ..Default::default()
        };
        for index in [0, 7, 123_456] {
            assert!(is_segment_name(&segment_name(&template, index)));
        }
        assert!(is_segment_name(&segment_name(
            &CaptureMetadata::default(),
            1
        )));
        for other in [
            "passwd",
            "notes.parquet",
            "mmap-.parquet",
            "mmap-20251127T065301Z-1a2b3c4d-7.parquet",
            "mmap-20251127T065301Z-1a2b3c4d-00007.parquet.bak",
            "x-mmap-20251127T065301Z-1a2b3c4d-00007.parquet",
        ] {
            assert!(!is_segment_name(other), "{other}");
        }
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
