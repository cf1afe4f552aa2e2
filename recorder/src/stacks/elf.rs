//! Opening the modules of traced processes safely and reading what stacks need from them: the
//! GNU build id, the `PT_LOAD` segments (file offset ↔ address) and, for DWARF unwinding, the
//! `.eh_frame`, `.eh_frame_hdr` and `.text` sections.
//!
//! The recorder runs as root and the files belong to the traced processes: a module is opened
//! `O_RDONLY | O_NONBLOCK | O_CLOEXEC` (never blocks on a FIFO), by path also `O_NOFOLLOW`
//! (never follows a symlink the process planted), and refused unless `fstat` says it is a
//! regular file of at most [`MAX_ELF_BYTES`]. Every read is bounds-checked against the file
//! size (a lying section header cannot make it read or allocate more than the file) and
//! [`MAX_SECTION_BYTES`].

use std::{
    fs::File,
    io::Read,
    os::unix::fs::{FileExt, MetadataExt, OpenOptionsExt},
    path::Path,
    sync::Arc,
};

use mmap_format::event::symbol_sources;
use object::{Object, ObjectSection, ObjectSegment, SegmentFlags, elf::PF_X, read::ReadCache};

use super::maps::Mapping;

/// Modules larger than this are not read (no build id, no unwind info, not symbolized here).
pub(crate) const MAX_ELF_BYTES: u64 = 2 << 30;
/// A section larger than this is not read.
pub(crate) const MAX_SECTION_BYTES: u64 = 256 << 20;
/// `.text` is only read for DWARF unwinding (prologue/epilogue analysis) up to this size.
const MAX_TEXT_BYTES: u64 = 64 << 20;
/// The page size the loader aligns segment mappings to (x86_64).
const PAGE: u64 = 4096;
/// `/proc` text files are read up to this size.
const MAX_PROC_TEXT: u64 = 16 << 20;

/// How a module's bytes were reached: the value of the `symbol_source` column when it named a
/// frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Via {
    /// `/proc/PID/map_files/START-END` while the process lived.
    MapFiles,
    /// The path, with the file's dev/ino equal to the mapping's.
    Path,
}

impl Via {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::MapFiles => symbol_sources::MAP_FILES,
            Self::Path => symbol_sources::PATH,
        }
    }
}

/// Opens `path` read-only without blocking; `nofollow` refuses a symlink as the last
/// component. Refuses anything but a regular file of at most [`MAX_ELF_BYTES`].
pub(crate) fn open_regular(
    path: &Path,
    nofollow: bool,
) -> std::io::Result<(File, std::fs::Metadata)> {
    let mut flags = libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOCTTY;
    if nofollow {
        flags |= libc::O_NOFOLLOW;
    }
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(flags)
        .open(path)?;
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    if meta.len() > MAX_ELF_BYTES {
        return Err(std::io::Error::other("larger than the ELF size limit"));
    }
    Ok((file, meta))
}

/// Reads a text file of /proc (bounded, lossy UTF-8).
pub(crate) fn read_proc_text(path: &str) -> std::io::Result<String> {
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC | libc::O_NOFOLLOW)
        .open(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_PROC_TEXT).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Opens the file of `m` in process `pid`: through `/proc/PID/map_files` (the very file the
/// process mapped, even deleted or in another mount namespace), else by path when the file
/// there has the mapping's dev and inode.
pub(crate) fn open_module(pid: u32, m: &Mapping) -> Option<(File, Via)> {
    let map_files = format!("/proc/{pid}/map_files/{:x}-{:x}", m.start, m.end);
    // map_files entries are kernel magic links to the mapped file itself, not links the
    // process can plant: they are followed (O_NOFOLLOW would refuse them).
    if let Ok((file, _)) = open_regular(Path::new(&map_files), false) {
        return Some((file, Via::MapFiles));
    }
    let (file, meta) = open_regular(Path::new(&*m.path), true).ok()?;
    (meta.dev() == m.dev && meta.ino() == m.ino).then_some((file, Via::Path))
}

/// Reads `len` bytes at `offset` of `file`, refusing ranges past `file_len` or above `max`.
fn read_range(file: &File, file_len: u64, offset: u64, len: u64, max: u64) -> Option<Vec<u8>> {
    if len > max || offset.checked_add(len)? > file_len {
        return None;
    }
    let mut buf = vec![0; usize::try_from(len).ok()?];
    file.read_exact_at(&mut buf, offset).ok()?;
    Some(buf)
}

/// A loadable segment: file offset range and the address (svma) of its start.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Load {
    pub offset: u64,
    pub filesz: u64,
    pub vaddr: u64,
    /// `PF_X`.
    pub exec: bool,
}

/// The sections framehop unwinds with, and their addresses (svma).
#[derive(Debug, Default)]
pub(crate) struct UnwindSections {
    pub eh_frame: Option<(std::ops::Range<u64>, Arc<[u8]>)>,
    pub eh_frame_hdr: Option<(std::ops::Range<u64>, Arc<[u8]>)>,
    pub text: Option<(std::ops::Range<u64>, Arc<[u8]>)>,
    pub got: Option<std::ops::Range<u64>>,
}

/// What is known of one module file (per dev/inode).
#[derive(Debug)]
pub(crate) struct ModuleFile {
    /// Kept open to symbolize from at segment end (None when over the open-files budget or
    /// it could not be opened).
    pub file: Option<File>,
    pub via: Option<Via>,
    /// GNU build id, lowercase hex.
    pub build_id: Option<Arc<str>>,
    pub loads: Vec<Load>,
    /// Read on first use in dwarf mode.
    pub unwind: Option<Arc<UnwindSections>>,
}

impl ModuleFile {
    /// Opens and reads the module of mapping `m` of `pid` (build id and segments); with
    /// `unwind`, also the unwind sections.
    pub fn load(pid: u32, m: &Mapping, unwind: bool) -> Self {
        let Some((file, via)) = open_module(pid, m) else {
            return Self {
                file: None,
                via: None,
                build_id: None,
                loads: Vec::new(),
                unwind: None,
            };
        };
        let mut module = Self {
            file: None,
            via: Some(via),
            build_id: None,
            loads: Vec::new(),
            unwind: None,
        };
        if let Ok(len) = file.metadata().map(|meta| meta.len()) {
            module.read_elf(&file, len, unwind);
        }
        module.file = Some(file);
        module
    }

    fn read_elf(&mut self, file: &File, len: u64, unwind: bool) {
        let cache = ReadCache::new(file);
        let Ok(obj) = object::File::parse(&cache) else {
            return;
        };
        if let Ok(Some(id)) = obj.build_id() {
            self.build_id = Some(Arc::from(hex(id)));
        }
        self.loads = obj
            .segments()
            .map(|s| {
                let (offset, filesz) = s.file_range();
                Load {
                    offset,
                    filesz,
                    vaddr: s.address(),
                    exec: matches!(s.flags(), SegmentFlags::Elf { p_flags } if p_flags & PF_X != 0),
                }
            })
            .collect();
        if !unwind {
            return;
        }
        let section = |name: &str, max: u64| {
            let s = obj.section_by_name(name)?;
            let range = s.address()..s.address().checked_add(s.size())?;
            let (offset, size) = s.file_range()?;
            let bytes = read_range(file, len, offset, size, max)?;
            Some((range, Arc::<[u8]>::from(bytes)))
        };
        self.unwind = Some(Arc::new(UnwindSections {
            eh_frame: section(".eh_frame", MAX_SECTION_BYTES),
            eh_frame_hdr: section(".eh_frame_hdr", MAX_SECTION_BYTES),
            text: section(".text", MAX_TEXT_BYTES),
            got: obj
                .section_by_name(".got")
                .and_then(|s| Some(s.address()..s.address().checked_add(s.size())?)),
        }));
    }

    /// The address (svma) of file offset `off`, the start of an executable mapping: from the
    /// `PT_LOAD` segment holding it (its page-aligned start is what the loader maps; an
    /// executable segment wins over the read-only one whose end shares that page).
    pub fn svma_of_offset(&self, off: u64) -> Option<u64> {
        let holds =
            |l: &&Load| off >= l.offset & !(PAGE - 1) && off < l.offset.saturating_add(l.filesz);
        self.loads
            .iter()
            .filter(holds)
            .max_by_key(|l| l.exec)
            .map(|l| off.wrapping_add(l.vaddr.wrapping_sub(l.offset)))
    }
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::symlink;

    use super::*;

    #[test]
    fn refuses_symlinks_and_fifos_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("real.so");
        std::fs::write(&target, b"\x7fELF").expect("write");
        let link = dir.path().join("link.so");
        symlink(&target, &link).expect("symlink");
        assert!(open_regular(&link, true).is_err(), "a symlink is refused");
        assert!(open_regular(&target, true).is_ok());
        let fifo = dir.path().join("fifo.so");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        // Would block forever without O_NONBLOCK (no writer); refused as not regular.
        assert!(open_regular(&fifo, true).is_err(), "a FIFO is refused");
        // Not through a mapping either: the path is a FIFO, the dev/ino never match.
        let m = Mapping {
            start: 1,
            end: 2,
            off: 0,
            dev: 0,
            ino: 0,
            path: Arc::from(fifo.to_str().expect("utf-8")),
        };
        assert!(open_module(u32::MAX, &m).is_none());
    }

    #[test]
    fn lying_section_sizes_do_not_read_past_the_file() {
        // This test binary, with the size of every section header set to ~2^63.
        let exe = std::fs::read("/proc/self/exe").expect("read own exe");
        let mut bytes = exe.clone();
        let shoff = u64::from_le_bytes(bytes[0x28..0x30].try_into().expect("8 bytes")) as usize;
        let shentsize = u16::from_le_bytes([bytes[0x3a], bytes[0x3b]]) as usize;
        let shnum = u16::from_le_bytes([bytes[0x3c], bytes[0x3d]]) as usize;
        for i in 0..shnum {
            let size_at = shoff + i * shentsize + 0x20;
            bytes[size_at..size_at + 8].copy_from_slice(&(u64::MAX / 2).to_le_bytes());
        }
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("liar");
        std::fs::write(&path, &bytes).expect("write");
        let (file, meta) = open_regular(&path, true).expect("open");
        let mut module = ModuleFile {
            file: None,
            via: None,
            build_id: None,
            loads: Vec::new(),
            unwind: None,
        };
        // Either the headers do not parse or no section with a lying size is read.
        module.read_elf(&file, meta.len(), true);
        assert!(
            module
                .unwind
                .is_none_or(|u| u.eh_frame.is_none() && u.text.is_none())
        );
        assert!(read_range(&file, meta.len(), 0, u64::MAX / 2, u64::MAX).is_none());
    }
}
