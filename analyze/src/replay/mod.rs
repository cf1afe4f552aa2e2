//! The replay engine: per-process address spaces rebuilt from a capture's rows.
//!
//! [`Replay::apply`] takes rows **in time order** (the caller sorts them with [`effect_time`]) and
//! keeps, for every process seen, its mapped regions as /proc/PID/maps would show them, plus the
//! time and the kind of row that gave each region its current state. The rules are those of
//! `maps/rules.md` (shown by `maps --help`, copied in docs/ANALYZE.md); every rule has a unit test
//! in `tests.rs`. [`AddressSpace`] (in `space.rs`) holds the regions of one process.
//!
//! The engine only trusts what it sees: a successful system call changes the map, a failed one (or
//! one whose exit was not seen) does not; a `snapshot` replaces everything; `exec` empties the map,
//! `exit` drops it. What the capture cannot tell (mappings older than the capture, changes hidden
//! in loss windows) is reported by the caller, using [`Baseline`] and the `lost` rows.

use std::sync::Arc;

use mmap_format::{
    event::{Event, RowKind, Syscall},
    names::MAP_TYPE,
    schema::col,
};
use rustc_hash::FxHashMap;

use crate::engine::stacks::FRAME_COLUMNS;

mod space;
#[cfg(test)]
mod tests;

pub use self::space::{AddressSpace, Backing, FileRef, Region, SetBy};

/// Page size used when the capture does not say (x86_64).
pub const DEFAULT_PAGE_SIZE: u64 = 4096;

pub const PROT_READ: u64 = 0x1;
pub const PROT_WRITE: u64 = 0x2;
pub const PROT_EXEC: u64 = 0x4;
pub const MAP_SHARED: u64 = 0x01;
pub const MAP_PRIVATE: u64 = 0x02;
/// MAP_SHARED_VALIDATE is 0x03 (all of [`MAP_TYPE`]): also a shared mapping.
pub const MAP_SHARED_VALIDATE: u64 = MAP_TYPE;
pub const MAP_ANONYMOUS: u64 = 0x20;
pub const MREMAP_MAYMOVE: u64 = 0x1;
pub const MREMAP_FIXED: u64 = 0x2;
pub const MREMAP_DONTUNMAP: u64 = 0x4;

/// The pseudo path of the brk heap in /proc/PID/maps.
pub const HEAP_PATH: &str = "[heap]";

/// The columns the replay never reads (who made the call beyond pid and thread, where it ran,
/// the descriptor, how the path was found): a query that feeds it can leave them undecoded
/// ([`crate::input::select_list`]).
pub const UNUSED_COLUMNS: &[&str] = &UNUSED;

/// Who made the call beyond pid and thread, where it ran, the descriptor, how the path was found.
const UNUSED_BY_CALLS: [&str; 11] = [
    col::PPID,
    col::UID,
    col::GID,
    col::CGROUP_ID,
    col::CGROUP_PATH,
    col::PIDNS_INO,
    col::NS_PID,
    col::NS_TID,
    col::FD,
    col::PATH_SOURCE,
    col::PATH_TRUNCATED,
];

/// [`UNUSED_BY_CALLS`] and the frame columns but `stack_id` (a stack's frames are rows of their
/// own, looked up by stack_id where they are shown).
const UNUSED: [&str; UNUSED_BY_CALLS.len() + FRAME_COLUMNS.len() - 1] = {
    let mut all = [""; UNUSED_BY_CALLS.len() + FRAME_COLUMNS.len() - 1];
    let mut i = 0;
    while i < UNUSED_BY_CALLS.len() {
        all[i] = UNUSED_BY_CALLS[i];
        i += 1;
    }
    let mut j = 1;
    while j < FRAME_COLUMNS.len() {
        all[i] = FRAME_COLUMNS[j];
        i += 1;
        j += 1;
    }
    all
};

/// [`effect_time`] in SQL over the `events` columns: a call when it returns, any other row at
/// its time. A call whose exit was not seen is put at its entry (and one recorded at its exit
/// only, whose `ts` is its exit, at that).
pub const EFFECT_TIME: &str = "CASE WHEN kind = 'syscall' THEN coalesce(ts_exit, ts) ELSE ts END";

/// When a row takes effect: a system call when it returns (`ts_exit`, the moment its effect is
/// complete; for a call recorded at its exit only, which has a result but no `ts_exit`, `ts`,
/// which is its exit; `None` when the exit was not seen, `ret` null), every other kind at `ts`.
pub fn effect_time(event: &Event<'_>) -> Option<i64> {
    match event.kind {
        RowKind::Syscall => event.ts_exit_ns.or_else(|| event.ret.map(|_| event.ts_ns)),
        _ => Some(event.ts_ns),
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

impl Heap {
    /// The smallest heap that holds `heap` (when there is one) and `region`.
    fn covering(heap: Option<Self>, region: &Region) -> Self {
        match heap {
            Some(heap) => Self {
                start: heap.start.min(region.start),
                end: heap.end.max(region.end),
            },
            None => Self {
                start: region.start,
                end: region.end,
            },
        }
    }
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
    /// A process with an empty map known from `baseline`.
    pub fn new(baseline: Baseline) -> Self {
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
    processes: FxHashMap<u32, Process>,
    exits: FxHashMap<u32, Exit>,
}

impl Replay {
    pub fn new(page_size: u64) -> Self {
        Self {
            page_size: page_size.max(1),
            processes: FxHashMap::default(),
            exits: FxHashMap::default(),
        }
    }

    /// The live process `pid`, if it has been seen and has not exited since.
    pub fn process(&self, pid: u32) -> Option<&Process> {
        self.processes.get(&pid)
    }

    /// Every live process (seen and not exited since), in no particular order.
    pub fn processes(&self) -> impl Iterator<Item = (u32, &Process)> {
        self.processes.iter().map(|(pid, process)| (*pid, process))
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
    pub fn range(&self, addr: u64, len: u64) -> (u64, u64) {
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
            RowKind::Lost | RowKind::Frame | RowKind::Other => {}
        }
    }

    /// A /proc/PID/maps line. The rows of one snapshot share `(pid, ts)`; the first of them
    /// replaces the whole map.
    fn snapshot(&mut self, e: &Event<'_>) {
        let Some(region) = snapshot_region(e) else {
            return;
        };
        let process = self.live(e.pid);
        if process.snapshot_ts != Some(e.ts_ns) {
            process.start_snapshot(e);
        }
        if region.path() == Some(HEAP_PATH) {
            process.heap = Some(Heap::covering(process.heap, &region));
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
        process.exec = Some((e.ts_ns, path_or_name(e).map(str::to_owned)));
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
        let (backing, off) = if anonymous {
            (Backing::Anon { name: None }, 0)
        } else {
            (Backing::File(FileRef::of(e)), e.off.unwrap_or(0))
        };
        let region = Region {
            start,
            end,
            prot: e.prot.unwrap_or(0),
            shared: is_shared(flags),
            off,
            backing,
            since: ts,
            set_by: SetBy::Mmap,
            tid: e.tid,
            stack_id: e.stack_id,
            written: e.prot.unwrap_or(0) & PROT_WRITE != 0,
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
            region.written |= prot & PROT_WRITE != 0;
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
        let call = Remap {
            old,
            old_len: self.page_up(old_len),
            new,
            new_len: self.page_up(new_len),
            flags: e.flags.unwrap_or(0),
            ts,
            tid: e.tid,
        };
        let process = self.live(e.pid);
        if call.new == call.old && call.old_len > 0 {
            if call.new_len <= call.old_len {
                call.shrink_in_place(process);
            } else {
                call.grow_in_place(process);
            }
        } else {
            call.move_pieces(process);
        }
    }

    fn brk(&mut self, e: &Event<'_>, ret: u64, ts: i64) {
        let requested = e.addr.unwrap_or(0);
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
            process.grow_heap(heap, new_end, ts, e.tid);
        } else if new_end < heap.end {
            process.shrink_heap(heap, new_end, ts, e.tid);
        }
        process.heap = Some(Heap {
            start: heap.start,
            end: new_end,
        });
    }
}

impl Process {
    /// The first row of a snapshot: the map starts over from what the snapshot shows.
    fn start_snapshot(&mut self, e: &Event<'_>) {
        self.snapshot_ts = Some(e.ts_ns);
        self.map.clear();
        self.heap = None;
        // The snapshot is the real state: calls that found the old map wanting (typically the
        // loader's, between an exec and the snapshot taken after it) no longer matter.
        self.misses.clear();
        self.baseline = Baseline::Snapshot {
            ts: e.ts_ns,
            pid: e.pid,
            source: e.source.as_deref().map(str::to_owned),
        };
    }

    /// The heap grows from `heap.end` to `new_end`: the heap region that ends at the old end
    /// extends, or a new one is mapped.
    fn grow_heap(&mut self, heap: Heap, new_end: u64, ts: i64, tid: u32) {
        let extend = self
            .map
            .containing(heap.end.wrapping_sub(1))
            .filter(|r| {
                heap.end > heap.start
                    && r.end == heap.end
                    && r.path() == Some(HEAP_PATH)
                    && matches!(r.backing, Backing::Anon { .. })
            })
            .map(|r| r.start);
        self.map.remove(heap.end, new_end);
        match extend.and_then(|key| self.map.extend(key, new_end)) {
            Some(region) => region.stamp(ts, SetBy::Brk, tid),
            None => self.map.insert(Region {
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
                // The heap's stack is not kept: brk grows one region over many calls.
                stack_id: None,
                written: true,
            }),
        }
    }

    /// The heap shrinks from `heap.end` to `new_end`: the tail goes.
    fn shrink_heap(&mut self, heap: Heap, new_end: u64, ts: i64, tid: u32) {
        self.map.remove(new_end, heap.end);
        if let Some((_, region)) = self.map.regions.range_mut(..new_end).next_back()
            && region.end == new_end
            && region.path() == Some(HEAP_PATH)
        {
            region.stamp(ts, SetBy::Brk, tid);
        }
    }
}

/// One successful mremap, its lengths rounded up to pages.
struct Remap {
    old: u64,
    old_len: u64,
    /// The result: where the mapping is now.
    new: u64,
    new_len: u64,
    flags: u64,
    ts: i64,
    tid: u32,
}

impl Remap {
    fn old_end(&self) -> u64 {
        self.old.saturating_add(self.old_len)
    }

    /// In place, smaller: the tail goes; the region cut at the new end changed.
    fn shrink_in_place(&self, process: &mut Process) {
        let new_end = self.old.saturating_add(self.new_len);
        let cut = process
            .map
            .containing(new_end.saturating_sub(1))
            .is_some_and(|r| r.end > new_end && self.new_len > 0);
        process.map.remove(new_end, self.old_end());
        if cut && let Some((_, region)) = process.map.regions.range_mut(..new_end).next_back() {
            region.stamp(self.ts, SetBy::Mremap, self.tid);
        }
    }

    /// In place, larger: the last region of the old range extends.
    fn grow_in_place(&self, process: &mut Process) {
        let (old, old_end) = (self.old, self.old_end());
        let new_end = old.saturating_add(self.new_len);
        let Some(last) = process.map.containing(old_end - 1).map(|r| r.start) else {
            process.misses.push((
                self.ts,
                format!("mremap grew {old:#x}-{old_end:#x}, which is not in the map"),
            ));
            return;
        };
        process.map.remove(old_end, new_end);
        // The last region may reach past the old range (the call then moved it, not grew it,
        // but be safe): split it at the old end first.
        process.map.split_at(old_end);
        if let Some(region) = process.map.extend(last, new_end) {
            region.stamp(self.ts, SetBy::Mremap, self.tid);
        }
    }

    /// Elsewhere: the pieces of the old range move to `new` (or, with `old_len` 0, a shared
    /// mapping is duplicated there); the old range goes unless it is kept.
    fn move_pieces(&self, process: &mut Process) {
        let (old, old_end, new_len) = (self.old, self.old_end(), self.new_len);
        let moved_len = if self.old_len == 0 {
            new_len
        } else {
            self.old_len.min(new_len)
        };
        let mut pieces = process.map.pieces(old, old.saturating_add(moved_len));
        if pieces.is_empty() {
            process.misses.push((
                self.ts,
                format!("mremap moved {old:#x}-{old_end:#x}, which is not in the map"),
            ));
        }
        if new_len > self.old_len
            && self.old_len > 0
            && let Some(last) = pieces.last_mut()
        {
            // Grown while moving: the last piece extends.
            last.end = old.saturating_add(new_len);
        }
        if self.old_len == 0 || self.flags & MREMAP_DONTUNMAP != 0 {
            // MREMAP_DONTUNMAP: the old range stays mapped with the same attributes, its pages
            // gone (anonymous memory reads as zeros; a file mapping faults the file in again).
            process.map.update(old, old_end, |region| {
                region.stamp(self.ts, SetBy::Mremap, self.tid);
            });
        } else {
            process.map.remove(old, old_end);
        }
        let new_end = self.new.saturating_add(new_len);
        process.map.remove(self.new, new_end);
        for piece in pieces {
            let mut moved = piece.moved_to(self.new.saturating_add(piece.start - old));
            moved.end = moved.end.min(new_end);
            moved.stamp(self.ts, SetBy::Mremap, self.tid);
            process.map.insert(moved);
        }
    }
}

/// The region a snapshot row shows: backed by a file when the row has an inode or a path that is
/// not a pseudo path (`[heap]`, `[stack]`, ...); else anonymous, named by its pseudo path.
pub fn snapshot_region(e: &Event<'_>) -> Option<Region> {
    let (Some(start), Some(len)) = (e.addr, e.len) else {
        return None;
    };
    let path = e.file_path.as_deref();
    let is_file =
        e.file_ino.is_some_and(|ino| ino != 0) || path.is_some_and(|p| !p.starts_with('['));
    let (backing, off) = if is_file {
        (Backing::File(FileRef::of(e)), e.off.unwrap_or(0))
    } else {
        (
            Backing::Anon {
                name: path.map(Arc::from),
            },
            0,
        )
    };
    Some(Region {
        start,
        end: start.saturating_add(len),
        prot: e.prot.unwrap_or(0),
        shared: is_shared(e.flags.unwrap_or(MAP_PRIVATE)),
        off,
        backing,
        since: e.ts_ns,
        set_by: SetBy::Snapshot,
        tid: e.tid,
        stack_id: None,
        written: e.prot.unwrap_or(0) & PROT_WRITE != 0,
    })
}

/// The file a row names: its full path when recorded, else its name.
fn path_or_name<'e>(e: &'e Event<'_>) -> Option<&'e str> {
    e.file_path.as_deref().or(e.file_name.as_deref())
}

/// MAP_SHARED and MAP_SHARED_VALIDATE are shared; MAP_PRIVATE is not.
fn is_shared(flags: u64) -> bool {
    matches!(flags & MAP_TYPE, MAP_SHARED | MAP_SHARED_VALIDATE)
}
