//! Snapshot rows: a process's mappings from /proc/PID/maps, taken at capture start for every
//! target and right after each exec of a target.
use std::borrow::Cow;

use mmap_format::{
    event::{Event, RowKind, path_sources, sources},
    metadata::Targets,
    names::makedev,
};

use crate::cgroups::{self, CgroupNames};

/// Why a snapshot was taken: the `source` column's value.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reason {
    Start,
    Exec,
}

impl Reason {
    pub fn source(self) -> &'static str {
        match self {
            Self::Start => sources::PROC_MAPS_START,
            Self::Exec => sources::PROC_MAPS_EXEC,
        }
    }
}

/// One line of /proc/PID/maps.
#[derive(Debug, PartialEq, Eq)]
pub struct MapsLine<'a> {
    pub start: u64,
    pub end: u64,
    pub prot: u64,
    pub shared: bool,
    pub off: u64,
    pub major: u32,
    pub minor: u32,
    pub ino: u64,
    /// The pathname column as the kernel printed it (bytes: a file name need not be UTF-8),
    /// a " (deleted)" suffix included: only [`name_of`] can tell a deleted file from one whose
    /// name really ends that way.
    pub path: Option<&'a [u8]>,
}

/// What the kernel appends to the path of an unlinked file (`d_path`).
const DELETED_SUFFIX: &[u8] = b" (deleted)";

/// Splits off the first field separated by spaces.
fn field<'a>(rest: &mut &'a [u8]) -> &'a [u8] {
    let trimmed = rest.trim_ascii_start();
    let end = trimmed
        .iter()
        .position(|&b| b == b' ')
        .unwrap_or(trimmed.len());
    let (f, r) = trimmed.split_at(end);
    *rest = r;
    f
}

/// A field as text: the fields before the pathname are ASCII.
fn text(bytes: &[u8]) -> Option<&str> {
    std::str::from_utf8(bytes).ok()
}

/// Parses one line: `start-end perms offset major:minor inode   pathname`. The pathname is
/// whatever follows the inode, up to the end of the line (the kernel escapes only `\n` in it).
pub fn parse_line(line: &[u8]) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let (range, perms, off, dev, ino) = (
        field(&mut rest),
        field(&mut rest),
        field(&mut rest),
        field(&mut rest),
        field(&mut rest),
    );
    let dash = range.iter().position(|&b| b == b'-')?;
    let colon = dev.iter().position(|&b| b == b':')?;
    if perms.len() < 4 {
        return None;
    }
    let prot = u64::from(perms[0] == b'r')
        | u64::from(perms[1] == b'w') << 1
        | u64::from(perms[2] == b'x') << 2;
    let path = rest.trim_ascii_start();
    Some(MapsLine {
        start: u64::from_str_radix(text(&range[..dash])?, 16).ok()?,
        end: u64::from_str_radix(text(&range[dash + 1..])?, 16).ok()?,
        prot,
        shared: perms[3] == b's',
        off: u64::from_str_radix(text(off)?, 16).ok()?,
        major: u32::from_str_radix(text(&dev[..colon])?, 16).ok()?,
        minor: u32::from_str_radix(text(&dev[colon + 1..])?, 16).ok()?,
        ino: text(ino)?.parse().ok()?,
        path: (!path.is_empty()).then_some(path),
    })
}

/// A line's file name as a capture stores it.
#[derive(Debug, PartialEq, Eq)]
pub struct Name {
    /// The path without a " (deleted)" suffix the kernel added, as UTF-8 (lossy).
    pub path: String,
    pub deleted: bool,
    /// The path was not valid UTF-8: `path` has U+FFFD where bytes were invalid.
    pub lossy: bool,
}

/// The name of a line's mapping. /proc appends " (deleted)" to the path of an unlinked file,
/// and prints a file really named `x (deleted)` the same way; `exists` tells them apart: it is
/// asked whether the path, suffix included, names a file with the mapping's inode number (the
/// recorder looks in the process's root, `/proc/PID/root`). Only the inode number is compared:
/// the device /proc shows is the superblock's, which is not `st_dev` on btrfs subvolumes or
/// overlayfs.
pub fn name_of(line: &MapsLine<'_>, exists: impl FnOnce(&[u8], u64) -> bool) -> Option<Name> {
    let raw = line.path?;
    let (bytes, deleted) = match raw.strip_suffix(DELETED_SUFFIX) {
        Some(stripped) if !(raw.starts_with(b"/") && line.ino != 0 && exists(raw, line.ino)) => {
            (stripped, true)
        }
        _ => (raw, false),
    };
    let path = String::from_utf8_lossy(bytes);
    Some(Name {
        lossy: matches!(path, Cow::Owned(_)),
        path: path.into_owned(),
        deleted,
    })
}

/// Whether `path` inside the root of `pid` is a file with inode number `ino`.
fn exists_in_root(pid: u32, path: &[u8], ino: u64) -> bool {
    use std::os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _};
    let mut full = format!("/proc/{pid}/root").into_bytes();
    full.extend_from_slice(path);
    std::fs::metadata(std::ffi::OsStr::from_bytes(&full)).is_ok_and(|m| m.ino() == ino)
}

/// Facts about a process for the identity columns of its snapshot rows.
#[derive(Debug, Default)]
struct ProcInfo {
    comm: String,
    ppid: u32,
    uid: u32,
    gid: u32,
    ns_pid: Option<u32>,
    pidns_ino: Option<u32>,
}

fn proc_info(pid: u32) -> ProcInfo {
    let mut info = ProcInfo {
        comm: std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .map(|s| s.trim_end_matches('\n').to_owned())
            .unwrap_or_default(),
        ..Default::default()
    };
    if let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) {
        for line in status.lines() {
            let mut words = line.split_whitespace();
            match words.next() {
                Some("PPid:") => info.ppid = words.next().and_then(|w| w.parse().ok()).unwrap_or(0),
                Some("Uid:") => info.uid = words.nth(1).and_then(|w| w.parse().ok()).unwrap_or(0),
                Some("Gid:") => info.gid = words.nth(1).and_then(|w| w.parse().ok()).unwrap_or(0),
                Some("NSpid:") => info.ns_pid = words.last().and_then(|w| w.parse().ok()),
                _ => {}
            }
        }
    }
    info.pidns_ino = std::fs::read_link(format!("/proc/{pid}/ns/pid"))
        .ok()
        .and_then(|l| {
            let l = l.to_string_lossy().into_owned();
            l.strip_prefix("pid:[")?.strip_suffix(']')?.parse().ok()
        });
    info
}

/// Reads /proc/PID/maps now and turns every line into a snapshot row stamped `ts_ns`.
pub fn take(
    pid: u32,
    reason: Reason,
    ts_ns: i64,
    cgroups: &mut CgroupNames,
) -> std::io::Result<Vec<Event<'static>>> {
    let maps = std::fs::read(format!("/proc/{pid}/maps"))?;
    let info = proc_info(pid);
    let cgroup_path = cgroups::of_pid(pid);
    let cgroup_id = cgroup_path
        .as_deref()
        .and_then(|p| cgroups.id_of(p))
        .unwrap_or(0);
    let cgroup_path: Option<Cow<'static, str>> = cgroup_path.map(Cow::Owned);
    let comm: Cow<'static, str> = Cow::Owned(info.comm);
    Ok(maps
        .split(|&b| b == b'\n')
        .filter_map(parse_line)
        .map(|l| {
            let name = name_of(&l, |path, ino| exists_in_root(pid, path, ino));
            let path = name.as_ref().map(|n| n.path.as_str());
            let real_file = l.ino != 0 && path.is_some_and(|p| p.starts_with('/'));
            let memfd = path.is_some_and(|p| p.starts_with("/memfd:"));
            Event {
                kind: RowKind::Snapshot,
                ts_ns,
                pid,
                tid: pid,
                ppid: info.ppid,
                uid: info.uid,
                gid: info.gid,
                comm: comm.clone(),
                cgroup_id,
                cgroup_path: cgroup_path.clone(),
                pidns_ino: info.pidns_ino,
                ns_pid: info.ns_pid,
                ns_tid: info.ns_pid,
                addr: Some(l.start),
                len: Some(l.end.saturating_sub(l.start)),
                prot: Some(l.prot),
                flags: Some(if l.shared { 0x01 } else { 0x02 }),
                off: Some(l.off),
                file_dev: real_file.then(|| makedev(l.major, l.minor)),
                file_ino: (l.ino != 0).then_some(l.ino),
                file_name: path
                    .filter(|_| real_file)
                    .and_then(|p| p.rsplit('/').next())
                    .map(|n| Cow::Owned(n.to_owned())),
                // A memfd always shows " (deleted)" in /proc: it never had a name to lose.
                file_deleted: name.as_ref().map(|n| n.deleted && !memfd),
                file_memfd: name.as_ref().map(|_| memfd),
                path_lossy: name.as_ref().map(|n| n.lossy),
                path_source: name
                    .as_ref()
                    .map(|_| Cow::Borrowed(path_sources::PROC_MAPS)),
                file_path: name.map(|n| Cow::Owned(n.path)),
                source: Some(Cow::Borrowed(reason.source())),
                ..Default::default()
            }
        })
        .collect())
}

/// The processes to snapshot at the start: every process when recording the whole system, else
/// the --pid targets and the running processes with a target name or in a target cgroup.
pub fn start_pids(targets: &Targets) -> Vec<u32> {
    if targets.system_wide {
        return all_pids();
    }
    let mut pids = targets.pids.clone();
    if targets.comms.is_empty() && targets.cgroups.is_empty() {
        return pids;
    }
    for pid in all_pids() {
        let comm_match = std::fs::read_to_string(format!("/proc/{pid}/comm"))
            .is_ok_and(|c| targets.comms.iter().any(|n| n == c.trim_end_matches('\n')));
        let cgroup_match = cgroups::of_pid(pid).is_some_and(|path| {
            targets
                .cgroups
                .iter()
                .any(|cgroup| cgroups::is_within(&path, cgroup))
        });
        if (comm_match || cgroup_match) && !pids.contains(&pid) {
            pids.push(pid);
        }
    }
    pids
}

/// Every process id in /proc but our own.
pub fn all_pids() -> Vec<u32> {
    let own = std::process::id();
    std::fs::read_dir("/proc")
        .map(|dir| {
            dir.filter_map(Result::ok)
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|&pid| pid != own)
                .collect()
        })
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_maps_lines() {
        let l = parse_line(
            b"7f3a1c000000-7f3a1c021000 r-xp 00002000 fe:00 247282                     /usr/bin/head",
        )
        .expect("line");
        assert_eq!(
            (l.start, l.end, l.prot, l.shared),
            (0x7f3a1c000000, 0x7f3a1c021000, 5, false)
        );
        assert_eq!((l.off, l.major, l.minor, l.ino), (0x2000, 0xfe, 0, 247282));
        assert_eq!(l.path, Some(&b"/usr/bin/head"[..]));

        let l =
            parse_line(b"7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]")
                .expect("line");
        assert_eq!((l.prot, l.path, l.ino), (3, Some(&b"[stack]"[..]), 0));

        let l = parse_line(b"1000-2000 rw-s 00000000 00:01 1055 /memfd:jit code (deleted)")
            .expect("line");
        assert_eq!(
            (l.shared, l.path),
            (true, Some(&b"/memfd:jit code (deleted)"[..]))
        );

        let l = parse_line(b"1000-2000 ---p 00000000 00:00 0").expect("anonymous line");
        assert_eq!((l.prot, l.path), (0, None));
        assert_eq!(parse_line(b"garbage"), None);
        assert_eq!(parse_line(b"zz-2000 ---p 00000000 00:00 0"), None);
    }

    /// A pathname that is not UTF-8 keeps its line: the bytes are converted lossily and marked.
    #[test]
    fn a_name_that_is_not_utf8_is_kept_lossily_and_marked() {
        let l = parse_line(b"1000-2000 r--s 00000000 fe:00 77 /tmp/bad-\xff-name").expect("line");
        let name = name_of(&l, |_, _| panic!("no suffix: nothing to check")).expect("a name");
        assert_eq!(
            name,
            Name {
                path: "/tmp/bad-\u{fffd}-name".to_owned(),
                deleted: false,
                lossy: true,
            }
        );
        let l = parse_line(b"1000-2000 r--s 00000000 fe:00 77 /tmp/good").expect("line");
        assert!(!name_of(&l, |_, _| false).expect("a name").lossy);
    }

    /// " (deleted)" is the kernel's mark only when no file of that name has the mapping's inode.
    #[test]
    fn a_deleted_suffix_is_a_mark_only_when_no_such_file_has_the_inode() {
        let l = parse_line(b"1000-2000 r--s 00000000 fe:00 77 /tmp/x (deleted)").expect("line");
        let mut asked = Vec::new();
        let deleted = name_of(&l, |path, ino| {
            asked.push((path.to_vec(), ino));
            false
        })
        .expect("a name");
        assert_eq!((deleted.path.as_str(), deleted.deleted), ("/tmp/x", true));
        assert_eq!(asked, [(b"/tmp/x (deleted)".to_vec(), 77)]);

        let real = name_of(&l, |_, ino| ino == 77).expect("a name");
        assert_eq!(
            (real.path.as_str(), real.deleted),
            ("/tmp/x (deleted)", false)
        );

        // A deleted file really named `x (deleted)`: only one suffix is the kernel's.
        let l = parse_line(b"1000-2000 r--s 00000000 fe:00 77 /tmp/x (deleted) (deleted)")
            .expect("line");
        let both = name_of(&l, |_, _| false).expect("a name");
        assert_eq!(
            (both.path.as_str(), both.deleted),
            ("/tmp/x (deleted)", true)
        );

        // Pseudo paths and inode 0 are never looked up.
        let l = parse_line(b"1000-2000 rw-s 00000000 00:01 0 /memfd:a (deleted)").expect("line");
        let memfd = name_of(&l, |_, _| panic!("inode 0 is not looked up")).expect("a name");
        assert!(memfd.deleted);
    }

    #[test]
    fn own_snapshot_matches_proc_maps() {
        let mut cgroups = CgroupNames::new();
        let rows = take(std::process::id(), Reason::Start, 123, &mut cgroups).expect("snapshot");
        assert!(rows.len() > 5);
        assert!(
            rows.iter()
                .all(|r| r.kind == RowKind::Snapshot && r.ts_ns == 123)
        );
        assert!(
            rows.iter()
                .any(|r| r.file_path.as_deref() == Some("[stack]"))
        );
        let exe = std::fs::read_link("/proc/self/exe").expect("exe");
        let exe = exe.to_string_lossy();
        let row = rows
            .iter()
            .find(|r| r.file_path.as_deref() == Some(&*exe))
            .expect("a mapping of our own executable");
        assert!(row.file_ino.is_some() && row.file_dev.is_some() && row.file_name.is_some());
        assert_eq!(row.source.as_deref(), Some(sources::PROC_MAPS_START));
    }
}
