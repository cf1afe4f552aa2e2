//! The replay engine: per-process address spaces rebuilt from a capture's rows.
//!
//! [`Replay::apply`] takes rows **in time order** (the caller sorts them with [`effect_time`]) and
//! keeps, for every process seen, its mapped regions as /proc/PID/maps would show them, plus the
//! time and the kind of row that gave each region its current state. The rules are those of the
//! `maps` command's long help (and docs/FORMAT.md); every rule has a unit test below.
//!
//! The engine only trusts what it sees: a successful system call changes the map, a failed one (or
//! one whose exit was not seen) does not; a `snapshot` replaces everything; `exec` empties the map,
//! `exit` drops it. What the capture cannot tell (mappings older than the capture, changes hidden
//! in loss windows) is reported by the caller, using [`Baseline`] and the `lost` rows.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
};

use mmap_format::event::{Event, RowKind, Syscall};

/// Page size used when the capture does not say (x86_64).
pub const DEFAULT_PAGE_SIZE: u64 = 4096;

pub const PROT_READ: u64 = 0x1;
pub const PROT_WRITE: u64 = 0x2;
pub const PROT_EXEC: u64 = 0x4;
pub const MAP_SHARED: u64 = 0x01;
pub const MAP_PRIVATE: u64 = 0x02;
/// MAP_SHARED_VALIDATE is 0x03: also a shared mapping.
pub const MAP_TYPE: u64 = 0x03;
pub const MAP_ANONYMOUS: u64 = 0x20;
pub const MREMAP_MAYMOVE: u64 = 0x1;
pub const MREMAP_FIXED: u64 = 0x2;
pub const MREMAP_DONTUNMAP: u64 = 0x4;

/// The pseudo path of the brk heap in /proc/PID/maps.
pub const HEAP_PATH: &str = "[heap]";

/// When a row takes effect: a system call when it returns (`ts_exit`, the moment its effect is
/// complete; `None` when the exit was not seen), every other kind at `ts`.
pub fn effect_time(event: &Event<'_>) -> Option<i64> {
    match event.kind {
        RowKind::Syscall => event.ts_exit_ns,
        _ => Some(event.ts_ns),
    }
}

/// Which kind of row gave a region its current state.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SetBy {
    Snapshot,
    Fork,
    Mmap,
    Mprotect,
    Mremap,
    Brk,
}

impl SetBy {
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => "snapshot",
            Self::Fork => "fork",
            Self::Mmap => "mmap",
            Self::Mprotect => "mprotect",
            Self::Mremap => "mremap",
            Self::Brk => "brk",
        }
    }
}

/// What a region maps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Backing {
    /// Anonymous memory; `name` is the pseudo path a snapshot showed (`[heap]`, `[stack]`,
    /// `[vdso]`, `[anon:NAME]`, ...), or none.
    Anon { name: Option<Arc<str>> },
    /// A file (or a memfd, or shared anonymous memory as a snapshot shows it).
    File(FileRef),
}

/// The mapped file, as far as the row that mapped it tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileRef {
    /// User-space `st_dev` encoding.
    pub dev: Option<u64>,
    pub ino: Option<u64>,
    /// `file_path` when recorded, else `file_name` (1.0 captures: the last component only).
    pub path: Option<Arc<str>>,
    pub deleted: bool,
    pub memfd: bool,
}

impl FileRef {
    /// Whether both are the same file: by device and inode when both know them, else by path.
    fn same_file(&self, other: &Self) -> bool {
        match (self.dev, self.ino, other.dev, other.ino) {
            (Some(d1), Some(i1), Some(d2), Some(i2)) => d1 == d2 && i1 == i2,
            _ => self.path.is_some() && self.path == other.path,
        }
    }
}

/// One mapped range `[start, end)` with the attributes /proc/PID/maps shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Region {
    pub start: u64,
    pub end: u64,
    /// PROT_* bits.
    pub prot: u64,
    pub shared: bool,
    /// File offset of `start` (0 for anonymous memory, as /proc shows it).
    pub off: u64,
    pub backing: Backing,
    /// When the region got its current state (ns since the epoch).
    pub since: i64,
    pub set_by: SetBy,
    /// The thread whose row set it.
    pub tid: u32,
}

impl Region {
    pub fn len(&self) -> u64 {
        self.end - self.start
    }

    /// `rw-p`, as /proc/PID/maps writes it.
    pub fn perms(&self) -> String {
        let bit = |mask: u64, c: char| if self.prot & mask != 0 { c } else { '-' };
        [
            bit(PROT_READ, 'r'),
            bit(PROT_WRITE, 'w'),
            bit(PROT_EXEC, 'x'),
            if self.shared { 's' } else { 'p' },
        ]
        .into_iter()
        .collect()
    }

    pub fn file(&self) -> Option<&FileRef> {
        match &self.backing {
            Backing::File(file) => Some(file),
            Backing::Anon { .. } => None,
        }
    }

    /// The path column: the file's path, or the anonymous region's pseudo path.
    pub fn path(&self) -> Option<&str> {
        match &self.backing {
            Backing::File(file) => file.path.as_deref(),
            Backing::Anon { name } => name.as_deref(),
        }
    }

    /// The part `[start, end)` of this region (which must overlap it); a file offset moves along.
    fn clip(&self, start: u64, end: u64) -> Self {
        let start = start.max(self.start);
        let end = end.min(self.end);
        let mut piece = self.clone();
        if let Backing::File(_) = piece.backing {
            piece.off = self.off.saturating_add(start - self.start);
        }
        piece.start = start;
        piece.end = end;
        piece
    }

    /// Moved to start at `new_start`, same contents (a file offset stays).
    fn moved_to(&self, new_start: u64) -> Self {
        let mut moved = self.clone();
        moved.end = new_start.saturating_add(self.len());
        moved.start = new_start;
        moved
    }

    fn stamp(&mut self, ts: i64, set_by: SetBy, tid: u32) {
        self.since = ts;
        self.set_by = set_by;
        self.tid = tid;
    }

    /// Whether `next`, starting where this one ends, would be merged into it by the kernel:
    /// same protection and sharing, and both anonymous with the same pseudo path (or none) or the
    /// same file at contiguous offsets.
    pub fn mergeable_with(&self, next: &Self) -> bool {
        if self.end != next.start || self.prot != next.prot || self.shared != next.shared {
            return false;
        }
        match (&self.backing, &next.backing) {
            (Backing::Anon { name: a }, Backing::Anon { name: b }) => a == b,
            (Backing::File(a), Backing::File(b)) => {
                a.same_file(b) && self.off.checked_add(self.len()) == Some(next.off)
            }
            _ => false,
        }
    }
}

/// The regions of one address space, by start address, never overlapping.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressSpace {
    regions: BTreeMap<u64, Region>,
}

impl AddressSpace {
    /// The regions as they were set, in address order ("raw pieces").
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// The regions in address order with neighbours merged as the kernel merges VMAs; a merged
    /// region takes the most recent `since` (and its `set_by`, `tid`) of its pieces.
    pub fn merged(&self) -> Vec<Region> {
        let mut out: Vec<Region> = Vec::with_capacity(self.regions.len());
        for region in self.regions.values() {
            if let Some(last) = out.last_mut()
                && last.mergeable_with(region)
            {
                last.end = region.end;
                if region.since > last.since {
                    last.stamp(region.since, region.set_by, region.tid);
                }
                continue;
            }
            out.push(region.clone());
        }
        out
    }

    fn clear(&mut self) {
        self.regions.clear();
    }

    /// Splits the region that strictly contains `at`, if any, so that a region starts at `at`.
    fn split_at(&mut self, at: u64) {
        let Some((_, region)) = self.regions.range(..at).next_back() else {
            return;
        };
        if region.end <= at {
            return;
        }
        let left = region.clip(region.start, at);
        let right = region.clip(at, region.end);
        self.regions.insert(left.start, left);
        self.regions.insert(right.start, right);
    }

    /// Splits at `start` and `end` and returns the start addresses of the regions inside.
    fn isolate(&mut self, start: u64, end: u64) -> Vec<u64> {
        if start >= end {
            return Vec::new();
        }
        self.split_at(start);
        self.split_at(end);
        self.regions.range(start..end).map(|(k, _)| *k).collect()
    }

    /// Removes `[start, end)` and returns what was there, in address order.
    fn remove(&mut self, start: u64, end: u64) -> Vec<Region> {
        self.isolate(start, end)
            .into_iter()
            .filter_map(|key| self.regions.remove(&key))
            .collect()
    }

    /// Copies of the parts of `[start, end)` that are mapped, in address order.
    fn pieces(&self, start: u64, end: u64) -> Vec<Region> {
        let first = match self.regions.range(..=start).next_back() {
            Some((key, region)) if region.end > start => *key,
            _ => start,
        };
        self.regions
            .range(first..end)
            .map(|(_, region)| region.clip(start, end))
            .collect()
    }

    /// The region that contains `addr`.
    fn containing(&self, addr: u64) -> Option<&Region> {
        self.regions
            .range(..=addr)
            .next_back()
            .map(|(_, region)| region)
            .filter(|region| region.end > addr)
    }

    /// Maps `region`, replacing whatever overlapped it (as MAP_FIXED does).
    fn insert(&mut self, region: Region) {
        if region.start >= region.end {
            return;
        }
        self.remove(region.start, region.end);
        self.regions.insert(region.start, region);
    }

    /// Applies `change` to the mapped parts of `[start, end)`; returns how many bytes it touched.
    fn update(&mut self, start: u64, end: u64, mut change: impl FnMut(&mut Region)) -> u64 {
        let mut touched = 0;
        for key in self.isolate(start, end) {
            if let Some(region) = self.regions.get_mut(&key) {
                change(region);
                touched += region.len();
            }
        }
        touched
    }
}

/// What the replayed map is known from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Baseline {
    /// No snapshot (and no exec) seen: mappings made before the capture started are not known.
    Unknown,
    /// An exec emptied the map and no snapshot followed: the mappings the kernel made for the new
    /// program (program, interpreter, stack, vdso) are not known.
    Exec { ts: i64 },
    /// A snapshot of /proc/`pid`/maps (taken of this process or of the parent it was forked from).
    Snapshot {
        ts: i64,
        pid: u32,
        source: Option<String>,
    },
}

/// The brk heap: `[start, end)`, end page-aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Heap {
    pub start: u64,
    pub end: u64,
}

/// The replayed state of one live process.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Process {
    pub map: AddressSpace,
    pub heap: Option<Heap>,
    pub baseline: Baseline,
    /// The fork that created it: (parent pid, time).
    pub forked: Option<(u32, i64)>,
    /// The last exec: (time, path).
    pub exec: Option<(i64, Option<String>)>,
    /// Successful calls that changed memory the replayed map did not have (a sign that it is
    /// incomplete there): (time, what).
    pub misses: Vec<(i64, String)>,
    /// The `ts` of the snapshot whose rows are being applied.
    snapshot_ts: Option<i64>,
}

impl Process {
    fn new(baseline: Baseline) -> Self {
        Self {
            map: AddressSpace::default(),
            heap: None,
            baseline,
            forked: None,
            exec: None,
            misses: Vec::new(),
            snapshot_ts: None,
        }
    }
}

/// How a process ended.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exit {
    pub ts: i64,
    /// wait(2) status.
    pub code: Option<i32>,
}

/// All processes' address spaces, advanced row by row.
#[derive(Debug)]
pub struct Replay {
    page_size: u64,
    processes: HashMap<u32, Process>,
    exits: HashMap<u32, Exit>,
}

impl Replay {
    pub fn new(page_size: u64) -> Self {
        Self {
            page_size: page_size.max(1),
            processes: HashMap::new(),
            exits: HashMap::new(),
        }
    }

    /// The live process `pid`, if it has been seen and has not exited since.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid)
    }

    /// How `pid` ended, if its last lifecycle row is an exit.
    pub fn exit(&self, pid: u32) -> Option<&Exit> {
        self.exits.get(&pid)
    }

    fn page_up(&self, value: u64) -> u64 {
        value
            .checked_next_multiple_of(self.page_size)
            .unwrap_or(u64::MAX - (u64::MAX % self.page_size))
    }

    /// `[addr, addr + len rounded up to pages)`, clamped at the top of the address space.
    fn range(&self, addr: u64, len: u64) -> (u64, u64) {
        (addr, addr.saturating_add(self.page_up(len)))
    }

    /// The live process `pid`, created (knowing nothing) when it was not seen yet or had exited.
    fn live(&mut self, pid: u32) -> &mut Process {
        self.exits.remove(&pid);
        self.processes
            .entry(pid)
            .or_insert_with(|| Process::new(Baseline::Unknown))
    }

    /// Applies one row. Rows must come in [`effect_time`] order.
    pub fn apply(&mut self, event: &Event<'_>) {
        match event.kind {
            RowKind::Snapshot => self.snapshot(event),
            RowKind::Fork => self.fork(event),
            RowKind::Exec => self.exec(event),
            RowKind::Exit => self.exit_row(event),
            RowKind::Syscall => self.syscall(event),
            RowKind::Lost | RowKind::Other => {}
        }
    }

    /// A /proc/PID/maps line. The rows of one snapshot share `(pid, ts)`; the first of them
    /// replaces the whole map.
    fn snapshot(&mut self, e: &Event<'_>) {
        let (Some(start), Some(len)) = (e.addr, e.len) else {
            return;
        };
        let process = self.live(e.pid);
        if process.snapshot_ts != Some(e.ts_ns) {
            process.snapshot_ts = Some(e.ts_ns);
            process.map.clear();
            process.heap = None;
            // The snapshot is the real state: calls that found the old map wanting (typically
            // the loader's, between an exec and the snapshot taken after it) no longer matter.
            process.misses.clear();
            process.baseline = Baseline::Snapshot {
                ts: e.ts_ns,
                pid: e.pid,
                source: e.source.as_deref().map(str::to_owned),
            };
        }
        let path: Option<Arc<str>> = e.file_path.as_deref().map(Arc::from);
        let is_file = e.file_ino.is_some_and(|ino| ino != 0)
            || path.as_deref().is_some_and(|p| !p.starts_with('['));
        let backing = if is_file {
            Backing::File(FileRef {
                dev: e.file_dev,
                ino: e.file_ino,
                path: path.or_else(|| e.file_name.as_deref().map(Arc::from)),
                deleted: e.file_deleted.unwrap_or(false),
                memfd: e.file_memfd.unwrap_or(false),
            })
        } else {
            Backing::Anon { name: path }
        };
        let region = Region {
            start,
            end: start.saturating_add(len),
            prot: e.prot.unwrap_or(0),
            shared: is_shared(e.flags.unwrap_or(MAP_PRIVATE)),
            off: if is_file { e.off.unwrap_or(0) } else { 0 },
            backing,
            since: e.ts_ns,
            set_by: SetBy::Snapshot,
            tid: e.tid,
        };
        if region.path() == Some(HEAP_PATH) {
            process.heap = Some(match process.heap {
                Some(heap) => Heap {
                    start: heap.start.min(region.start),
                    end: heap.end.max(region.end),
                },
                None => Heap {
                    start: region.start,
                    end: region.end,
                },
            });
        }
        process.map.insert(region);
    }

    /// A new process: a copy of its parent's map at that time.
    fn fork(&mut self, e: &Event<'_>) {
        let Some(child) = e.child_pid else {
            return;
        };
        let mut process = match self.processes.get(&e.pid) {
            Some(parent) => {
                let mut copy = Process::new(parent.baseline.clone());
                copy.map = parent.map.clone();
                copy.heap = parent.heap;
                copy.exec = parent.exec.clone();
                copy
            }
            None => Process::new(Baseline::Unknown),
        };
        for region in process.map.regions.values_mut() {
            region.stamp(e.ts_ns, SetBy::Fork, e.tid);
        }
        process.forked = Some((e.pid, e.ts_ns));
        self.exits.remove(&child);
        self.processes.insert(child, process);
    }

    /// A new program: the map is emptied (the snapshot that follows an exec refills it).
    fn exec(&mut self, e: &Event<'_>) {
        let process = self.live(e.pid);
        process.map.clear();
        process.heap = None;
        process.snapshot_ts = None;
        process.baseline = Baseline::Exec { ts: e.ts_ns };
        process.exec = Some((
            e.ts_ns,
            e.file_path
                .as_deref()
                .or(e.file_name.as_deref())
                .map(str::to_owned),
        ));
    }

    fn exit_row(&mut self, e: &Event<'_>) {
        self.processes.remove(&e.pid);
        self.exits.insert(
            e.pid,
            Exit {
                ts: e.ts_ns,
                code: e.exit_code,
            },
        );
    }

    fn syscall(&mut self, e: &Event<'_>) {
        // Only calls that returned, successfully, changed anything.
        let Some(ret) = e.ret else {
            return;
        };
        if e.errno().is_some() {
            return;
        }
        let ts = effect_time(e).unwrap_or(e.ts_ns);
        match e.syscall {
            Some(Syscall::Mmap) => self.mmap(e, ret as u64, ts),
            Some(Syscall::Munmap) => {
                if let (Some(addr), Some(len)) = (e.addr, e.len) {
                    let (start, end) = self.range(addr, len);
                    self.live(e.pid).map.remove(start, end);
                }
            }
            Some(Syscall::Mprotect) => self.mprotect(e, ts),
            Some(Syscall::Mremap) => self.mremap(e, ret as u64, ts),
            Some(Syscall::Brk) => self.brk(e, ret as u64, ts),
            Some(Syscall::Other) | None => {}
        }
    }

    fn mmap(&mut self, e: &Event<'_>, addr: u64, ts: i64) {
        let (Some(len), Some(flags)) = (e.len, e.flags) else {
            return;
        };
        let (start, end) = self.range(addr, len);
        let anonymous = flags & MAP_ANONYMOUS != 0;
        let backing = if anonymous {
            Backing::Anon { name: None }
        } else {
            Backing::File(FileRef {
                dev: e.file_dev,
                ino: e.file_ino,
                path: e
                    .file_path
                    .as_deref()
                    .or(e.file_name.as_deref())
                    .map(Arc::from),
                deleted: e.file_deleted.unwrap_or(false),
                memfd: e.file_memfd.unwrap_or(false),
            })
        };
        let region = Region {
            start,
            end,
            prot: e.prot.unwrap_or(0),
            shared: is_shared(flags),
            off: if anonymous { 0 } else { e.off.unwrap_or(0) },
            backing,
            since: ts,
            set_by: SetBy::Mmap,
            tid: e.tid,
        };
        self.live(e.pid).map.insert(region);
    }

    fn mprotect(&mut self, e: &Event<'_>, ts: i64) {
        let (Some(addr), Some(len), Some(prot)) = (e.addr, e.len, e.prot) else {
            return;
        };
        let (start, end) = self.range(addr, len);
        let tid = e.tid;
        let process = self.live(e.pid);
        let touched = process.map.update(start, end, |region| {
            region.prot = prot;
            region.stamp(ts, SetBy::Mprotect, tid);
        });
        if touched < end - start {
            process.misses.push((
                ts,
                format!("mprotect of {start:#x}-{end:#x} reached memory not in the map"),
            ));
        }
    }

    fn mremap(&mut self, e: &Event<'_>, new: u64, ts: i64) {
        let (Some(old), Some(old_len), Some(new_len)) = (e.addr, e.len, e.new_len) else {
            return;
        };
        let old_len = self.page_up(old_len);
        let new_len = self.page_up(new_len);
        let flags = e.flags.unwrap_or(0);
        let tid = e.tid;
        let old_end = old.saturating_add(old_len);
        let process = self.live(e.pid);

        if new == old && old_len > 0 {
            let new_end = old.saturating_add(new_len);
            if new_len <= old_len {
                // Shrink in place: the tail goes; the region cut at the new end changed.
                let cut = process
                    .map
                    .containing(new_end.saturating_sub(1))
                    .is_some_and(|r| r.end > new_end && new_len > 0);
                process.map.remove(new_end, old_end);
                if cut
                    && let Some((_, region)) = process.map.regions.range_mut(..new_end).next_back()
                {
                    region.stamp(ts, SetBy::Mremap, tid);
                }
            } else {
                // Grow in place: the last region of the old range extends.
                let Some(last) = process.map.containing(old_end - 1).map(|r| r.start) else {
                    process.misses.push((
                        ts,
                        format!("mremap grew {old:#x}-{old_end:#x}, which is not in the map"),
                    ));
                    return;
                };
                process.map.remove(old_end, new_end);
                // The last region may reach past the old range (the call then moved it, not
                // grew it, but be safe): split it at the old end first.
                process.map.split_at(old_end);
                if let Some(region) = process.map.regions.get_mut(&last) {
                    region.end = new_end;
                    region.stamp(ts, SetBy::Mremap, tid);
                }
            }
            return;
        }

        // Move (or, with old_len 0, duplicate a shared mapping) to `new`.
        let moved_len = if old_len == 0 {
            new_len
        } else {
            old_len.min(new_len)
        };
        let mut pieces = process.map.pieces(old, old.saturating_add(moved_len));
        if pieces.is_empty() {
            process.misses.push((
                ts,
                format!("mremap moved {old:#x}-{old_end:#x}, which is not in the map"),
            ));
        }
        if new_len > old_len
            && old_len > 0
            && let Some(last) = pieces.last_mut()
        {
            // Grown while moving: the last piece extends.
            last.end = old.saturating_add(new_len);
        }
        let keep_old = old_len == 0 || flags & MREMAP_DONTUNMAP != 0;
        if keep_old {
            // MREMAP_DONTUNMAP: the old range stays mapped with the same attributes, its pages
            // gone (anonymous memory reads as zeros; a file mapping faults the file in again).
            process.map.update(old, old_end, |region| {
                region.stamp(ts, SetBy::Mremap, tid);
            });
        } else {
            process.map.remove(old, old_end);
        }
        let new_end = new.saturating_add(new_len);
        process.map.remove(new, new_end);
        for piece in pieces {
            let mut moved = piece.moved_to(new.saturating_add(piece.start - old));
            moved.end = moved.end.min(new_end);
            moved.stamp(ts, SetBy::Mremap, tid);
            process.map.insert(moved);
        }
    }

    fn brk(&mut self, e: &Event<'_>, ret: u64, ts: i64) {
        let requested = e.addr.unwrap_or(0);
        let tid = e.tid;
        let new_end = self.page_up(ret);
        let process = self.live(e.pid);
        let heap = *process.heap.get_or_insert(Heap {
            start: ret,
            end: new_end,
        });
        let succeeded = requested == 0 || requested == ret;
        if !succeeded || (requested != 0 && requested < heap.start) {
            return;
        }
        let new_end = new_end.max(heap.start);
        if new_end > heap.end {
            // Grow: extend the heap region that ends at the old end, or map a new one.
            let extend = process
                .map
                .containing(heap.end.wrapping_sub(1))
                .filter(|r| {
                    heap.end > heap.start
                        && r.end == heap.end
                        && r.path() == Some(HEAP_PATH)
                        && matches!(r.backing, Backing::Anon { .. })
                })
                .map(|r| r.start);
            process.map.remove(heap.end, new_end);
            match extend.and_then(|key| process.map.regions.get_mut(&key)) {
                Some(region) => {
                    region.end = new_end;
                    region.stamp(ts, SetBy::Brk, tid);
                }
                None => process.map.insert(Region {
                    start: heap.end,
                    end: new_end,
                    prot: PROT_READ | PROT_WRITE,
                    shared: false,
                    off: 0,
                    backing: Backing::Anon {
                        name: Some(Arc::from(HEAP_PATH)),
                    },
                    since: ts,
                    set_by: SetBy::Brk,
                    tid,
                }),
            }
        } else if new_end < heap.end {
            process.map.remove(new_end, heap.end);
            if let Some((_, region)) = process.map.regions.range_mut(..new_end).next_back()
                && region.end == new_end
                && region.path() == Some(HEAP_PATH)
            {
                region.stamp(ts, SetBy::Brk, tid);
            }
        }
        process.heap = Some(Heap {
            start: heap.start,
            end: new_end,
        });
    }
}

/// MAP_SHARED and MAP_SHARED_VALIDATE are shared; MAP_PRIVATE is not.
fn is_shared(flags: u64) -> bool {
    matches!(flags & MAP_TYPE, MAP_SHARED | MAP_TYPE)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    const PAGE: u64 = 4096;
    const PID: u32 = 100;
    const RW: u64 = PROT_READ | PROT_WRITE;
    const RX: u64 = PROT_READ | PROT_EXEC;
    const ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;

    fn syscall(syscall: Syscall, ts: i64) -> Event<'static> {
        Event {
            kind: RowKind::Syscall,
            syscall: Some(syscall),
            ts_ns: ts,
            ts_exit_ns: Some(ts + 1),
            pid: PID,
            tid: PID,
            comm: Cow::Borrowed("t"),
            ..Default::default()
        }
    }

    fn mmap(ts: i64, ret: u64, len: u64, prot: u64, flags: u64) -> Event<'static> {
        Event {
            addr: Some(0),
            len: Some(len),
            prot: Some(prot),
            flags: Some(flags),
            fd: Some(-1),
            off: Some(0),
            ret: Some(ret as i64),
            ..syscall(Syscall::Mmap, ts)
        }
    }

    fn mmap_file(ts: i64, ret: u64, len: u64, off: u64, ino: u64) -> Event<'static> {
        Event {
            fd: Some(3),
            off: Some(off),
            file_dev: Some(0x801),
            file_ino: Some(ino),
            file_path: Some(Cow::Owned(format!("/lib/f{ino}.so"))),
            file_name: Some(Cow::Owned(format!("f{ino}.so"))),
            ..mmap(ts, ret, len, RX, MAP_PRIVATE)
        }
    }

    fn munmap(ts: i64, addr: u64, len: u64) -> Event<'static> {
        Event {
            addr: Some(addr),
            len: Some(len),
            ret: Some(0),
            ..syscall(Syscall::Munmap, ts)
        }
    }

    fn mprotect(ts: i64, addr: u64, len: u64, prot: u64) -> Event<'static> {
        Event {
            addr: Some(addr),
            len: Some(len),
            prot: Some(prot),
            ret: Some(0),
            ..syscall(Syscall::Mprotect, ts)
        }
    }

    fn mremap(
        ts: i64,
        old: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        ret: u64,
    ) -> Event<'static> {
        Event {
            addr: Some(old),
            len: Some(old_len),
            new_len: Some(new_len),
            flags: Some(flags),
            new_addr: Some(if flags & MREMAP_FIXED != 0 { ret } else { 0 }),
            ret: Some(ret as i64),
            ..syscall(Syscall::Mremap, ts)
        }
    }

    fn brk(ts: i64, addr: u64, ret: u64) -> Event<'static> {
        Event {
            addr: Some(addr),
            ret: Some(ret as i64),
            ..syscall(Syscall::Brk, ts)
        }
    }

    fn snap(
        ts: i64,
        pid: u32,
        start: u64,
        end: u64,
        perms: &str,
        path: Option<&str>,
        ino: Option<u64>,
    ) -> Event<'static> {
        let b = perms.as_bytes();
        let prot =
            u64::from(b[0] == b'r') | u64::from(b[1] == b'w') << 1 | u64::from(b[2] == b'x') << 2;
        Event {
            kind: RowKind::Snapshot,
            ts_ns: ts,
            pid,
            tid: pid,
            addr: Some(start),
            len: Some(end - start),
            prot: Some(prot),
            flags: Some(if b[3] == b's' {
                MAP_SHARED
            } else {
                MAP_PRIVATE
            }),
            off: Some(0),
            file_dev: ino.map(|_| 0x801),
            file_ino: ino,
            file_path: path.map(|p| Cow::Owned(p.to_owned())),
            source: Some(Cow::Borrowed("proc_maps:start")),
            ..Default::default()
        }
    }

    fn lifecycle(kind: RowKind, ts: i64, pid: u32) -> Event<'static> {
        Event {
            kind,
            ts_ns: ts,
            pid,
            tid: pid,
            ..Default::default()
        }
    }

    fn replay(events: &[Event<'_>]) -> Replay {
        let mut replay = Replay::new(PAGE);
        for event in events {
            replay.apply(event);
        }
        replay
    }

    /// `(start, end, perms)` of the raw pieces of `pid`.
    fn raw(replay: &Replay, pid: u32) -> Vec<(u64, u64, String)> {
        replay
            .process(pid)
            .expect("a live process")
            .map
            .regions()
            .map(|r| (r.start, r.end, r.perms()))
            .collect()
    }

    /// `(start, end, perms)` of the merged regions of `pid`.
    fn merged(replay: &Replay, pid: u32) -> Vec<(u64, u64, String)> {
        replay
            .process(pid)
            .expect("a live process")
            .map
            .merged()
            .into_iter()
            .map(|r| (r.start, r.end, r.perms()))
            .collect()
    }

    fn r(start: u64, end: u64, perms: &str) -> (u64, u64, String) {
        (start, end, perms.to_owned())
    }

    const A: u64 = 0x10_0000;

    #[test]
    fn effect_time_is_exit_for_syscalls_and_ts_otherwise() {
        let call = mmap(10, A, PAGE, RW, ANON);
        assert_eq!(effect_time(&call), Some(11));
        let no_exit = Event {
            ts_exit_ns: None,
            ..call
        };
        assert_eq!(effect_time(&no_exit), None);
        assert_eq!(effect_time(&lifecycle(RowKind::Exit, 7, 1)), Some(7));
    }

    #[test]
    fn mmap_rounds_up_to_pages_and_records_who() {
        let rp = replay(&[mmap(10, A, 100, RW, ANON)]);
        let process = rp.process(PID).expect("live");
        let regions: Vec<_> = process.map.regions().collect();
        assert_eq!(regions.len(), 1);
        let region = regions[0];
        assert_eq!((region.start, region.end), (A, A + PAGE));
        assert_eq!(region.perms(), "rw-p");
        assert_eq!(region.backing, Backing::Anon { name: None });
        assert_eq!(
            (region.since, region.set_by, region.tid),
            (11, SetBy::Mmap, PID)
        );
        assert_eq!(process.baseline, Baseline::Unknown);
    }

    #[test]
    fn failed_and_unfinished_calls_change_nothing() {
        let failed = Event {
            ret: Some(-12),
            ..mmap(10, A, PAGE, RW, ANON)
        };
        let unfinished = Event {
            ret: None,
            ts_exit_ns: None,
            ..mmap(20, A, PAGE, RW, ANON)
        };
        let rp = replay(&[failed, unfinished]);
        assert!(rp.process(PID).is_none());
    }

    #[test]
    fn mmap_file_and_shared_attributes() {
        let shared = Event {
            flags: Some(MAP_SHARED),
            ..mmap_file(10, A, 2 * PAGE, 0x4000, 7)
        };
        let rp = replay(&[shared]);
        let process = rp.process(PID).expect("live");
        let region = process.map.regions().next().expect("one region");
        assert_eq!(region.perms(), "r-xs");
        assert_eq!(region.off, 0x4000);
        let file = region.file().expect("file backed");
        assert_eq!((file.dev, file.ino), (Some(0x801), Some(7)));
        assert_eq!(region.path(), Some("/lib/f7.so"));
        // MAP_SHARED_VALIDATE is shared too; the anonymous flag wins over a file.
        let validate = mmap(10, A, PAGE, RW, 0x03 | MAP_ANONYMOUS);
        let rp = replay(&[validate]);
        let region = rp.process(PID).expect("live").map.merged().remove(0);
        assert_eq!(region.perms(), "rw-s");
        assert!(region.file().is_none());
    }

    #[test]
    fn mmap_file_name_is_used_without_a_path() {
        let e = Event {
            file_path: None,
            ..mmap_file(10, A, PAGE, 0, 7)
        };
        let rp = replay(&[e]);
        let region = rp.process(PID).expect("live").map.merged().remove(0);
        assert_eq!(region.path(), Some("f7.so"));
    }

    #[test]
    fn map_fixed_replaces_overlaps_and_splits() {
        let rp = replay(&[
            mmap(10, A, 4 * PAGE, RW, ANON),
            // MAP_FIXED over pages 1..3 with another protection.
            mmap(20, A + PAGE, 2 * PAGE, PROT_READ, ANON | 0x10),
        ]);
        assert_eq!(
            raw(&rp, PID),
            [
                r(A, A + PAGE, "rw-p"),
                r(A + PAGE, A + 3 * PAGE, "r--p"),
                r(A + 3 * PAGE, A + 4 * PAGE, "rw-p"),
            ]
        );
        // A file mapping over the middle of another one keeps the outer pieces' offsets right.
        let rp = replay(&[
            mmap_file(10, A, 4 * PAGE, 0, 7),
            mmap_file(20, A + PAGE, PAGE, 0, 8),
        ]);
        let offs: Vec<_> = rp
            .process(PID)
            .expect("live")
            .map
            .regions()
            .map(|r| (r.start, r.off, r.file().and_then(|f| f.ino)))
            .collect();
        assert_eq!(
            offs,
            [
                (A, 0, Some(7)),
                (A + PAGE, 0, Some(8)),
                (A + 2 * PAGE, 2 * PAGE, Some(7))
            ]
        );
    }

    #[test]
    fn munmap_removes_a_range_splitting_regions() {
        let rp = replay(&[mmap(10, A, 4 * PAGE, RW, ANON), munmap(20, A + PAGE, 100)]);
        assert_eq!(
            raw(&rp, PID),
            [
                r(A, A + PAGE, "rw-p"),
                r(A + 2 * PAGE, A + 4 * PAGE, "rw-p")
            ]
        );
        // Unmapping a range that was never mapped is fine.
        let rp = replay(&[munmap(20, A, PAGE)]);
        assert!(raw(&rp, PID).is_empty());
    }

    #[test]
    fn mprotect_splits_and_merges_back() {
        let mut rp = replay(&[
            mmap(10, A, 4 * PAGE, RW, ANON),
            mprotect(20, A + PAGE, 2 * PAGE, PROT_READ),
        ]);
        assert_eq!(
            raw(&rp, PID),
            [
                r(A, A + PAGE, "rw-p"),
                r(A + PAGE, A + 3 * PAGE, "r--p"),
                r(A + 3 * PAGE, A + 4 * PAGE, "rw-p"),
            ]
        );
        let middle = rp
            .process(PID)
            .expect("live")
            .map
            .regions()
            .nth(1)
            .cloned()
            .expect("middle");
        assert_eq!((middle.since, middle.set_by), (21, SetBy::Mprotect));
        rp.apply(&mprotect(30, A + PAGE, 2 * PAGE, RW));
        assert_eq!(raw(&rp, PID).len(), 3, "raw pieces stay split");
        let merged = rp.process(PID).expect("live").map.merged();
        assert_eq!(merged.len(), 1, "compatible neighbours merge");
        assert_eq!((merged[0].start, merged[0].end), (A, A + 4 * PAGE));
        assert_eq!(
            (merged[0].since, merged[0].set_by),
            (31, SetBy::Mprotect),
            "a merged region takes its latest change"
        );
    }

    #[test]
    fn mprotect_of_unmapped_memory_is_noted() {
        let rp = replay(&[
            mmap(10, A, PAGE, RW, ANON),
            mprotect(20, A, 2 * PAGE, PROT_READ),
        ]);
        assert_eq!(raw(&rp, PID), [r(A, A + PAGE, "r--p")]);
        assert_eq!(rp.process(PID).expect("live").misses.len(), 1);
    }

    #[test]
    fn merge_rules() {
        // Anonymous neighbours of one protection merge; other protection or sharing do not.
        let rp = replay(&[
            mmap(10, A, PAGE, RW, ANON),
            mmap(20, A + PAGE, PAGE, RW, ANON),
            mmap(30, A + 2 * PAGE, PAGE, PROT_READ, ANON),
            mmap(
                40,
                A + 3 * PAGE,
                PAGE,
                PROT_READ,
                MAP_SHARED | MAP_ANONYMOUS,
            ),
        ]);
        assert_eq!(
            merged(&rp, PID),
            [
                r(A, A + 2 * PAGE, "rw-p"),
                r(A + 2 * PAGE, A + 3 * PAGE, "r--p"),
                r(A + 3 * PAGE, A + 4 * PAGE, "r--s"),
            ]
        );
        // The same file merges at contiguous offsets only; another file or a gap never merges.
        let rp = replay(&[
            mmap_file(10, A, PAGE, 0, 7),
            mmap_file(20, A + PAGE, PAGE, PAGE, 7),
            mmap_file(30, A + 2 * PAGE, PAGE, 5 * PAGE, 7),
            mmap_file(40, A + 3 * PAGE, PAGE, 6 * PAGE, 8),
            mmap_file(50, A + 5 * PAGE, PAGE, 7 * PAGE, 8),
        ]);
        assert_eq!(
            merged(&rp, PID),
            [
                r(A, A + 2 * PAGE, "r-xp"),
                r(A + 2 * PAGE, A + 3 * PAGE, "r-xp"),
                r(A + 3 * PAGE, A + 4 * PAGE, "r-xp"),
                r(A + 5 * PAGE, A + 6 * PAGE, "r-xp"),
            ]
        );
        // Anonymous memory next to a file, or pseudo paths that differ, do not merge.
        let rp = replay(&[
            snap(5, PID, A, A + PAGE, "rw-p", Some("[stack]"), None),
            snap(5, PID, A + PAGE, A + 2 * PAGE, "rw-p", None, None),
            snap(5, PID, A + 2 * PAGE, A + 3 * PAGE, "rw-p", None, None),
            snap(
                5,
                PID,
                A + 3 * PAGE,
                A + 4 * PAGE,
                "rw-p",
                Some("/x"),
                Some(9),
            ),
        ]);
        assert_eq!(
            merged(&rp, PID),
            [
                r(A, A + PAGE, "rw-p"),
                r(A + PAGE, A + 3 * PAGE, "rw-p"),
                r(A + 3 * PAGE, A + 4 * PAGE, "rw-p"),
            ]
        );
    }

    #[test]
    fn a_snapshot_after_calls_that_missed_the_map_makes_it_complete_again() {
        let rp = replay(&[
            mprotect(1, A, PAGE, 1),
            snap(10, PID, A, A + PAGE, "r--p", Some("/bin/t"), Some(5)),
        ]);
        let process = rp.process(PID).expect("live");
        assert!(process.misses.is_empty(), "{:?}", process.misses);
        let rp = replay(&[mprotect(1, A, PAGE, 1)]);
        assert_eq!(rp.process(PID).expect("live").misses.len(), 1);
    }

    #[test]
    fn snapshot_replaces_the_whole_map() {
        let rp = replay(&[
            mmap(1, 0x9000_0000, PAGE, RW, ANON),
            snap(10, PID, A, A + PAGE, "r-xp", Some("/bin/t"), Some(5)),
            snap(
                10,
                PID,
                A + PAGE,
                A + 3 * PAGE,
                "rw-p",
                Some("[heap]"),
                None,
            ),
            snap(
                10,
                PID,
                0x7ffd_0000_0000,
                0x7ffd_0002_1000,
                "rw-p",
                Some("[stack]"),
                None,
            ),
        ]);
        let process = rp.process(PID).expect("live");
        assert_eq!(
            raw(&rp, PID),
            [
                r(A, A + PAGE, "r-xp"),
                r(A + PAGE, A + 3 * PAGE, "rw-p"),
                r(0x7ffd_0000_0000, 0x7ffd_0002_1000, "rw-p"),
            ],
            "the mmap before the snapshot is gone"
        );
        assert_eq!(
            process.baseline,
            Baseline::Snapshot {
                ts: 10,
                pid: PID,
                source: Some("proc_maps:start".to_owned())
            }
        );
        assert_eq!(
            process.heap,
            Some(Heap {
                start: A + PAGE,
                end: A + 3 * PAGE
            })
        );
        let file = process.map.regions().next().and_then(Region::file).cloned();
        assert_eq!(file.and_then(|f| f.ino), Some(5));

        // A later snapshot of the same process replaces the earlier one.
        let mut rp = rp;
        rp.apply(&snap(20, PID, 0x5000, 0x6000, "r--p", None, None));
        assert_eq!(raw(&rp, PID), [r(0x5000, 0x6000, "r--p")]);
        assert_eq!(rp.process(PID).expect("live").heap, None);
        // A snapshot of another process leaves this one alone.
        rp.apply(&snap(30, 7, 0x1000, 0x2000, "r--p", None, None));
        assert_eq!(raw(&rp, PID), [r(0x5000, 0x6000, "r--p")]);
        assert_eq!(raw(&rp, 7), [r(0x1000, 0x2000, "r--p")]);
    }

    #[test]
    fn fork_copies_the_parent_at_that_time() {
        let fork = Event {
            child_pid: Some(200),
            tid: 101,
            ..lifecycle(RowKind::Fork, 20, PID)
        };
        let rp = replay(&[
            snap(5, PID, A, A + PAGE, "r-xp", Some("/bin/t"), Some(5)),
            mmap(10, A + 0x10000, PAGE, RW, ANON),
            fork,
            // After the fork the two maps are independent.
            mmap(30, A + 0x20000, PAGE, RW, ANON),
            Event {
                pid: 200,
                tid: 200,
                ..munmap(40, A, PAGE)
            },
        ]);
        assert_eq!(
            raw(&rp, PID),
            [
                r(A, A + PAGE, "r-xp"),
                r(A + 0x10000, A + 0x11000, "rw-p"),
                r(A + 0x20000, A + 0x21000, "rw-p"),
            ]
        );
        assert_eq!(raw(&rp, 200), [r(A + 0x10000, A + 0x11000, "rw-p")]);
        let child = rp.process(200).expect("child live");
        assert_eq!(child.forked, Some((PID, 20)));
        let region = child.map.regions().next().expect("region");
        assert_eq!(
            (region.since, region.set_by, region.tid),
            (20, SetBy::Fork, 101)
        );
        assert!(
            matches!(
                child.baseline,
                Baseline::Snapshot {
                    pid: PID,
                    ts: 5,
                    ..
                }
            ),
            "the child knows what its parent knew"
        );
        // A fork from a parent never seen gives an empty child that knows nothing.
        let rp = replay(&[Event {
            child_pid: Some(300),
            ..lifecycle(RowKind::Fork, 20, 299)
        }]);
        let child = rp.process(300).expect("child live");
        assert!(child.map.regions().next().is_none());
        assert_eq!(child.baseline, Baseline::Unknown);
    }

    #[test]
    fn exec_clears_and_the_exec_snapshot_refills() {
        let mut rp = replay(&[
            snap(5, PID, A, A + PAGE, "r-xp", Some("/bin/sh"), Some(5)),
            brk(6, 0, A + PAGE),
            Event {
                file_path: Some(Cow::Borrowed("/bin/ls")),
                ..lifecycle(RowKind::Exec, 10, PID)
            },
        ]);
        let process = rp.process(PID).expect("live");
        assert!(process.map.regions().next().is_none());
        assert_eq!(process.heap, None);
        assert_eq!(process.baseline, Baseline::Exec { ts: 10 });
        assert_eq!(process.exec, Some((10, Some("/bin/ls".to_owned()))));
        rp.apply(&Event {
            source: Some(Cow::Borrowed("proc_maps:exec")),
            ..snap(11, PID, 0x5000, 0x6000, "r-xp", Some("/bin/ls"), Some(6))
        });
        let process = rp.process(PID).expect("live");
        assert_eq!(raw(&rp, PID), [r(0x5000, 0x6000, "r-xp")]);
        assert!(matches!(
            &process.baseline,
            Baseline::Snapshot { ts: 11, source: Some(s), .. } if s == "proc_maps:exec"
        ));
    }

    #[test]
    fn exit_drops_the_map_and_a_fork_reuses_the_pid() {
        let mut rp = replay(&[
            mmap(10, A, PAGE, RW, ANON),
            Event {
                exit_code: Some(0x100),
                ..lifecycle(RowKind::Exit, 20, PID)
            },
        ]);
        assert!(rp.process(PID).is_none());
        assert_eq!(
            rp.exit(PID),
            Some(&Exit {
                ts: 20,
                code: Some(0x100)
            })
        );
        rp.apply(&Event {
            child_pid: Some(PID),
            ..lifecycle(RowKind::Fork, 30, 1)
        });
        assert!(rp.exit(PID).is_none(), "a new process with the same pid");
        assert!(raw(&rp, PID).is_empty());
    }

    #[test]
    fn mremap_shrinks_in_place() {
        let rp = replay(&[
            mmap(10, A, 4 * PAGE, RW, ANON),
            mremap(20, A, 4 * PAGE, PAGE + 1, 0, A),
        ]);
        assert_eq!(raw(&rp, PID), [r(A, A + 2 * PAGE, "rw-p")]);
        let region = rp.process(PID).expect("live").map.merged().remove(0);
        assert_eq!(region.set_by, SetBy::Mremap);
    }

    #[test]
    fn mremap_grows_the_last_region_in_place() {
        let rp = replay(&[
            mmap_file(10, A, PAGE, 0, 7),
            mmap(11, A + PAGE, PAGE, RW, ANON),
            mprotect(12, A + PAGE, PAGE, PROT_READ),
            mremap(20, A, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, A),
        ]);
        assert_eq!(
            raw(&rp, PID),
            [r(A, A + PAGE, "r-xp"), r(A + PAGE, A + 4 * PAGE, "r--p")],
            "the last region of the old range grows with its attributes"
        );
        let last = rp
            .process(PID)
            .expect("live")
            .map
            .regions()
            .nth(1)
            .cloned()
            .expect("last");
        assert_eq!((last.since, last.set_by), (21, SetBy::Mremap));
        assert!(last.file().is_none());
    }

    #[test]
    fn mremap_moves_keeping_attributes_and_offsets() {
        const B: u64 = 0x50_0000;
        let rp = replay(&[
            mmap_file(10, A, 2 * PAGE, 0x3000, 7),
            mremap(20, A, 2 * PAGE, 3 * PAGE, MREMAP_MAYMOVE, B),
        ]);
        let process = rp.process(PID).expect("live");
        let regions: Vec<_> = process.map.regions().cloned().collect();
        assert_eq!(regions.len(), 1, "the old range is gone");
        assert_eq!((regions[0].start, regions[0].end), (B, B + 3 * PAGE));
        assert_eq!(regions[0].off, 0x3000);
        assert_eq!(regions[0].perms(), "r-xp");
        assert_eq!(regions[0].set_by, SetBy::Mremap);

        // Several pieces move together; MREMAP_FIXED replaces what was at the target; a smaller
        // new size moves only the head.
        let rp = replay(&[
            mmap(10, A, 3 * PAGE, RW, ANON),
            mprotect(11, A + PAGE, PAGE, PROT_READ),
            mmap(12, B, 8 * PAGE, PROT_EXEC, ANON),
            mremap(
                20,
                A,
                3 * PAGE,
                2 * PAGE,
                MREMAP_MAYMOVE | MREMAP_FIXED,
                B + PAGE,
            ),
        ]);
        assert_eq!(
            raw(&rp, PID),
            [
                r(B, B + PAGE, "--xp"),
                r(B + PAGE, B + 2 * PAGE, "rw-p"),
                r(B + 2 * PAGE, B + 3 * PAGE, "r--p"),
                r(B + 3 * PAGE, B + 8 * PAGE, "--xp"),
            ]
        );
    }

    #[test]
    fn mremap_dontunmap_keeps_the_old_range() {
        const B: u64 = 0x50_0000;
        let rp = replay(&[
            mmap(10, A, 2 * PAGE, RW, ANON),
            mremap(
                20,
                A,
                2 * PAGE,
                2 * PAGE,
                MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
                B,
            ),
        ]);
        assert_eq!(
            raw(&rp, PID),
            [r(A, A + 2 * PAGE, "rw-p"), r(B, B + 2 * PAGE, "rw-p")]
        );
        let process = rp.process(PID).expect("live");
        let old = process.map.regions().next().expect("old range");
        assert_eq!(old.backing, Backing::Anon { name: None });
        assert_eq!((old.since, old.set_by), (21, SetBy::Mremap));
    }

    #[test]
    fn mremap_of_memory_not_in_the_map_is_noted() {
        let rp = replay(&[mremap(20, A, PAGE, 2 * PAGE, MREMAP_MAYMOVE, A)]);
        assert!(raw(&rp, PID).is_empty());
        assert_eq!(rp.process(PID).expect("live").misses.len(), 1);
    }

    #[test]
    fn brk_tracks_the_heap_from_the_first_brk() {
        const H: u64 = 0x55_0000;
        let rp = replay(&[
            brk(10, 0, H),                     // query: the heap starts here, empty
            brk(20, H + 0x21000, H + 0x21000), // grow
            brk(30, H + 0x50000, H + 0x21000), // failed: the break did not move
            brk(40, H + 0x1800, H + 0x1800),   // shrink (rounded up to a page)
            brk(50, H - PAGE, H + 0x1800),     // below the start: ignored
        ]);
        let process = rp.process(PID).expect("live");
        assert_eq!(raw(&rp, PID), [r(H, H + 0x2000, "rw-p")]);
        let heap = process.map.regions().next().expect("heap");
        assert_eq!(heap.path(), Some(HEAP_PATH));
        assert_eq!((heap.since, heap.set_by), (41, SetBy::Brk));
        assert_eq!(
            process.heap,
            Some(Heap {
                start: H,
                end: H + 0x2000
            })
        );
    }

    #[test]
    fn brk_extends_the_heap_of_a_snapshot() {
        const H: u64 = 0x55_0000;
        let rp = replay(&[
            snap(5, PID, H, H + 0x21000, "rw-p", Some("[heap]"), None),
            brk(10, 0, H + 0x21000),
            brk(20, H + 0x42000, H + 0x42000),
        ]);
        assert_eq!(raw(&rp, PID), [r(H, H + 0x42000, "rw-p")]);
        let heap = rp.process(PID).expect("live").map.merged().remove(0);
        assert_eq!(heap.set_by, SetBy::Brk);
        // Shrinking to the start leaves no heap region.
        let rp = replay(&[
            snap(5, PID, H, H + 0x21000, "rw-p", Some("[heap]"), None),
            brk(20, H, H),
        ]);
        assert!(raw(&rp, PID).is_empty());
    }

    #[test]
    fn rows_of_an_unknown_process_start_an_unknown_map() {
        let rp = replay(&[munmap(10, A, PAGE)]);
        let process = rp.process(PID).expect("live");
        assert_eq!(process.baseline, Baseline::Unknown);
        assert!(process.map.regions().next().is_none());
    }

    #[test]
    fn page_size_comes_from_the_caller() {
        let mut rp = Replay::new(16384);
        rp.apply(&mmap(10, 0x40000, 100, RW, ANON));
        assert_eq!(raw(&rp, PID), [r(0x40000, 0x44000, "rw-p")]);
    }
}
