//! The executable file mappings of each traced process, kept from the rows the writer writes
//! (`snapshot` rows, successful `mmap`/`munmap`/`mremap` calls, `exec`, `exit`), with
//! `/proc/PID/maps` as a rate-limited fallback for addresses no row explained.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::{Duration, Instant},
};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    names::makedev,
};

/// `PROT_EXEC`.
const PROT_EXEC: u64 = 0x4;
/// The shortest time between two fallback reads of one process's `/proc/PID/maps`.
const MAPS_READ_INTERVAL: Duration = Duration::from_secs(1);
/// At most this many mappings per process are kept (a process can map many files; executable
/// file mappings beyond this are found through the fallback).
const MAX_MAPPINGS_PER_PROCESS: usize = 16_384;

/// One executable mapping of a file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Mapping {
    pub start: u64,
    pub end: u64,
    /// File offset mapped at `start`.
    pub off: u64,
    /// `st_dev` (user-space encoding) and inode of the file.
    pub dev: u64,
    pub ino: u64,
    /// The path as the process mapped it.
    pub path: Arc<str>,
}

impl Mapping {
    /// The file offset of `addr` (which must lie in the mapping).
    pub fn file_offset(&self, addr: u64) -> u64 {
        self.off.wrapping_add(addr.wrapping_sub(self.start))
    }
}

/// The mappings of one process, by start address (non-overlapping).
#[derive(Debug, Default)]
pub(crate) struct Process {
    maps: BTreeMap<u64, Mapping>,
    /// Changes whenever `maps` changes (the DWARF unwinder rebuilds its module list then).
    pub generation: u64,
    last_maps_read: Option<Instant>,
}

impl Process {
    /// The mapping holding `addr`.
    pub fn lookup(&self, addr: u64) -> Option<&Mapping> {
        let (_, m) = self.maps.range(..=addr).next_back()?;
        (addr < m.end).then_some(m)
    }

    pub fn mappings(&self) -> impl Iterator<Item = &Mapping> {
        self.maps.values()
    }

    /// Removes `[start, end)` from every mapping, splitting those partly covered.
    fn remove_range(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let overlapping: Vec<u64> = self
            .maps
            .range(..end)
            .rev()
            .take_while(|(_, m)| m.end > start)
            .map(|(&s, _)| s)
            .collect();
        if overlapping.is_empty() {
            return;
        }
        self.generation += 1;
        for s in overlapping {
            let Some(m) = self.maps.remove(&s) else {
                continue;
            };
            if m.start < start {
                let mut head = m.clone();
                head.end = start;
                self.maps.insert(head.start, head);
            }
            if m.end > end {
                let mut tail = m.clone();
                tail.off = m.file_offset(end);
                tail.start = end;
                self.maps.insert(tail.start, tail);
            }
        }
    }

    fn insert(&mut self, m: Mapping) {
        if m.start >= m.end {
            return;
        }
        self.remove_range(m.start, m.end);
        if self.maps.len() < MAX_MAPPINGS_PER_PROCESS {
            self.generation += 1;
            self.maps.insert(m.start, m);
        }
    }
}

/// The mappings of every process seen.
#[derive(Debug, Default)]
pub(crate) struct Processes {
    by_pid: HashMap<u32, Process>,
    /// Path strings shared between mappings of the same file.
    paths: HashMap<Box<str>, Arc<str>>,
    /// Fallback reads of `/proc/PID/maps` done (for the stats).
    pub maps_reads: u64,
}

fn is_exec_file(prot: Option<u64>, path: Option<&str>) -> bool {
    prot.is_some_and(|p| p & PROT_EXEC != 0)
        && path.is_some_and(|p| p.starts_with('/') && !p.starts_with("/memfd:"))
}

impl Processes {
    pub fn get(&self, pid: u32) -> Option<&Process> {
        self.by_pid.get(&pid)
    }

    /// The mapping holding `addr` in `pid`.
    pub fn lookup(&self, pid: u32, addr: u64) -> Option<&Mapping> {
        self.by_pid.get(&pid)?.lookup(addr)
    }

    /// Like [`Self::lookup`], but when no mapping holds `addr`, reads `/proc/PID/maps` (at
    /// most once per [`MAPS_READ_INTERVAL`] per process; nothing when the process is gone).
    pub fn lookup_or_read(&mut self, pid: u32, addr: u64) -> Option<&Mapping> {
        let known = self.lookup(pid, addr).is_some();
        if !known {
            self.read_proc_maps(pid);
        }
        self.lookup(pid, addr)
    }

    fn intern_path(&mut self, path: &str) -> Arc<str> {
        if let Some(p) = self.paths.get(path) {
            return p.clone();
        }
        // Bounded by the distinct paths of live mappings in practice; cleared if it grows.
        if self.paths.len() > 65_536 {
            self.paths.clear();
        }
        let p: Arc<str> = Arc::from(path);
        self.paths.insert(Box::from(path), p.clone());
        p
    }

    /// Follows one row the writer writes.
    pub fn observe(&mut self, event: &Event<'_>) {
        match event.kind {
            RowKind::Snapshot => {
                let path = event.file_path.as_deref();
                if let (true, Some(start), Some(len), Some(dev), Some(ino), Some(path)) = (
                    is_exec_file(event.prot, path),
                    event.addr,
                    event.len,
                    event.file_dev,
                    event.file_ino,
                    path,
                ) {
                    let path = self.intern_path(path);
                    self.by_pid.entry(event.pid).or_default().insert(Mapping {
                        start,
                        end: start.saturating_add(len),
                        off: event.off.unwrap_or(0),
                        dev,
                        ino,
                        path,
                    });
                }
            }
            RowKind::Syscall => self.observe_call(event),
            RowKind::Exec | RowKind::Exit => {
                self.by_pid.remove(&event.pid);
            }
            _ => {}
        }
    }

    fn observe_call(&mut self, event: &Event<'_>) {
        let Some(ret) = event.ret else { return };
        if event.errno().is_some() {
            return;
        }
        match event.syscall {
            Some(Syscall::Mmap) => {
                let (start, Some(len)) = (ret as u64, event.len) else {
                    return;
                };
                let end = start.saturating_add(len);
                let path = event.file_path.as_deref();
                if let (true, Some(dev), Some(ino), Some(path)) = (
                    is_exec_file(event.prot, path),
                    event.file_dev,
                    event.file_ino,
                    path,
                ) {
                    let path = self.intern_path(path);
                    self.by_pid.entry(event.pid).or_default().insert(Mapping {
                        start,
                        end,
                        off: event.off.unwrap_or(0),
                        dev,
                        ino,
                        path,
                    });
                } else if let Some(p) = self.by_pid.get_mut(&event.pid) {
                    p.remove_range(start, end);
                }
            }
            Some(Syscall::Munmap) => {
                if let (Some(p), Some(addr), Some(len)) =
                    (self.by_pid.get_mut(&event.pid), event.addr, event.len)
                {
                    p.remove_range(addr, addr.saturating_add(len));
                }
            }
            Some(Syscall::Mremap) => {
                let (Some(p), Some(addr), Some(len)) =
                    (self.by_pid.get_mut(&event.pid), event.addr, event.len)
                else {
                    return;
                };
                let moved = p.lookup(addr).cloned();
                p.remove_range(addr, addr.saturating_add(len));
                if let Some(m) = moved {
                    let new_len = event.new_len.unwrap_or(len);
                    let start = ret as u64;
                    p.insert(Mapping {
                        start,
                        end: start.saturating_add(new_len),
                        off: m.file_offset(addr),
                        ..m
                    });
                }
            }
            _ => {}
        }
    }

    /// Reads `/proc/PID/maps` into the process's table (rate limited; nothing when the
    /// process is gone).
    pub fn read_proc_maps(&mut self, pid: u32) {
        let now = Instant::now();
        if let Some(p) = self.by_pid.get(&pid)
            && p.last_maps_read
                .is_some_and(|t| now.duration_since(t) < MAPS_READ_INTERVAL)
        {
            return;
        }
        self.by_pid.entry(pid).or_default().last_maps_read = Some(now);
        let Ok(text) = super::elf::read_proc_text(&format!("/proc/{pid}/maps")) else {
            return;
        };
        self.maps_reads += 1;
        for line in text.lines() {
            let Some((m, prot)) = parse_maps_line(line) else {
                continue;
            };
            if !is_exec_file(Some(prot), Some(&m.0)) {
                continue;
            }
            let path = self.intern_path(&m.0);
            let (start, end, off, dev, ino) = m.1;
            if let Some(p) = self.by_pid.get_mut(&pid)
                && p.lookup(start).is_none_or(|known| known.ino != ino)
            {
                p.insert(Mapping {
                    start,
                    end,
                    off,
                    dev,
                    ino,
                    path,
                });
            }
        }
    }
}

/// One line of `/proc/PID/maps`: ((path, (start, end, off, dev, ino)), prot).
type MapsLine = ((String, (u64, u64, u64, u64, u64)), u64);

/// Parses `start-end perms offset major:minor inode path` (path may hold spaces; a deleted
/// file ends in ` (deleted)`, which is removed).
pub(crate) fn parse_maps_line(line: &str) -> Option<MapsLine> {
    let mut fields = line.splitn(6, ' ');
    let range = fields.next()?;
    let perms = fields.next()?;
    let off = fields.next()?;
    let dev = fields.next()?;
    let ino = fields.next()?;
    let path = fields.next()?.trim_start();
    let (start, end) = range.split_once('-')?;
    let start = u64::from_str_radix(start, 16).ok()?;
    let end = u64::from_str_radix(end, 16).ok()?;
    let off = u64::from_str_radix(off, 16).ok()?;
    let (major, minor) = dev.split_once(':')?;
    let dev = makedev(
        u32::from_str_radix(major, 16).ok()?,
        u32::from_str_radix(minor, 16).ok()?,
    );
    let ino = ino.parse().ok()?;
    let prot = if perms.as_bytes().get(2) == Some(&b'x') {
        PROT_EXEC
    } else {
        0
    };
    let path = path.strip_suffix(" (deleted)").unwrap_or(path);
    Some(((path.to_owned(), (start, end, off, dev, ino)), prot))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(start: u64, end: u64, off: u64) -> Mapping {
        Mapping {
            start,
            end,
            off,
            dev: 1,
            ino: 2,
            path: Arc::from("/lib/x.so"),
        }
    }

    #[test]
    fn munmap_splits_and_mremap_moves() {
        let mut p = Process::default();
        p.insert(mapping(0x1000, 0x5000, 0x100_000));
        p.remove_range(0x2000, 0x3000);
        assert_eq!(p.lookup(0x1800).map(|m| m.end), Some(0x2000));
        assert!(p.lookup(0x2800).is_none());
        let tail = p.lookup(0x3000).expect("tail kept");
        assert_eq!(
            (tail.start, tail.end, tail.off),
            (0x3000, 0x5000, 0x102_000)
        );
        assert_eq!(tail.file_offset(0x3010), 0x102_010);
    }

    #[test]
    fn parses_maps_lines() {
        let line = "7f00a000-7f00c000 r-xp 00002000 fd:01 1234   /usr/lib/my lib.so (deleted)";
        let ((path, (start, end, off, dev, ino)), prot) =
            parse_maps_line(line).expect("a maps line");
        assert_eq!(path, "/usr/lib/my lib.so");
        assert_eq!(
            (start, end, off, ino, prot),
            (0x7f00a000, 0x7f00c000, 0x2000, 1234, 4)
        );
        assert_eq!(dev, makedev(0xfd, 1));
        assert!(parse_maps_line("garbage").is_none());
    }
}
