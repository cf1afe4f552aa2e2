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
    /// The pathname column, without a " (deleted)" suffix.
    pub path: Option<&'a str>,
    pub deleted: bool,
}

/// Parses one line: `start-end perms offset major:minor inode   pathname`.
pub fn parse_line(line: &str) -> Option<MapsLine<'_>> {
    let mut rest = line;
    let mut field = || {
        let trimmed = rest.trim_start();
        let end = trimmed.find(' ').unwrap_or(trimmed.len());
        let (f, r) = trimmed.split_at(end);
        rest = r;
        f
    };
    let (range, perms, off, dev, ino) = (field(), field(), field(), field(), field());
    let (start, end) = range.split_once('-')?;
    let (major, minor) = dev.split_once(':')?;
    let perms = perms.as_bytes();
    if perms.len() < 4 {
        return None;
    }
    let prot = u64::from(perms[0] == b'r')
        | u64::from(perms[1] == b'w') << 1
        | u64::from(perms[2] == b'x') << 2;
    let path = rest.trim_start();
    let (path, deleted) = match path.strip_suffix(" (deleted)") {
        Some(p) => (p, true),
        None => (path, false),
    };
    Some(MapsLine {
        start: u64::from_str_radix(start, 16).ok()?,
        end: u64::from_str_radix(end, 16).ok()?,
        prot,
        shared: perms[3] == b's',
        off: u64::from_str_radix(off, 16).ok()?,
        major: u32::from_str_radix(major, 16).ok()?,
        minor: u32::from_str_radix(minor, 16).ok()?,
        ino: ino.parse().ok()?,
        path: (!path.is_empty()).then_some(path),
        deleted,
    })
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
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps"))?;
    let info = proc_info(pid);
    let cgroup_path = cgroups::of_pid(pid);
    let cgroup_id = cgroup_path
        .as_deref()
        .and_then(|p| cgroups.id_of(p))
        .unwrap_or(0);
    let cgroup_path: Option<Cow<'static, str>> = cgroup_path.map(Cow::Owned);
    let comm: Cow<'static, str> = Cow::Owned(info.comm);
    Ok(maps
        .lines()
        .filter_map(parse_line)
        .map(|l| {
            let real_file = l.ino != 0 && l.path.is_some_and(|p| p.starts_with('/'));
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
                file_path: l.path.map(|p| Cow::Owned(p.to_owned())),
                file_name: l
                    .path
                    .filter(|_| real_file)
                    .and_then(|p| p.rsplit('/').next())
                    .map(|n| Cow::Owned(n.to_owned())),
                // A memfd always shows " (deleted)" in /proc: it never had a name to lose.
                file_deleted: l.path.map(|p| l.deleted && !p.starts_with("/memfd:")),
                file_memfd: l.path.map(|p| p.starts_with("/memfd:")),
                path_source: l.path.map(|_| Cow::Borrowed(path_sources::PROC_MAPS)),
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
            "7f3a1c000000-7f3a1c021000 r-xp 00002000 fe:00 247282                     /usr/bin/head",
        )
        .expect("line");
        assert_eq!(
            (l.start, l.end, l.prot, l.shared),
            (0x7f3a1c000000, 0x7f3a1c021000, 5, false)
        );
        assert_eq!((l.off, l.major, l.minor, l.ino), (0x2000, 0xfe, 0, 247282));
        assert_eq!((l.path, l.deleted), (Some("/usr/bin/head"), false));

        let l =
            parse_line("7ffd1000-7ffd2000 rw-p 00000000 00:00 0                          [stack]")
                .expect("line");
        assert_eq!((l.prot, l.path, l.ino), (3, Some("[stack]"), 0));

        let l = parse_line("1000-2000 rw-s 00000000 00:01 1055 /memfd:jit code (deleted)")
            .expect("line");
        assert_eq!(
            (l.shared, l.path, l.deleted),
            (true, Some("/memfd:jit code"), true)
        );

        let l = parse_line("1000-2000 ---p 00000000 00:00 0").expect("anonymous line");
        assert_eq!((l.prot, l.path), (0, None));
        assert_eq!(parse_line("garbage"), None);
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
