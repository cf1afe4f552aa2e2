//! The address space of one process: non-overlapping regions by start address, and the
//! operations the replay rules are made of (split, remove, copy out, update a range).

use std::{collections::BTreeMap, sync::Arc};

use mmap_format::event::{Event, RowKind, Syscall};

use super::{PROT_EXEC, PROT_READ, PROT_WRITE, path_or_name};

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
    /// The name of the row kind or system call, as the format spells it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Snapshot => RowKind::Snapshot.as_str(),
            Self::Fork => RowKind::Fork.as_str(),
            Self::Mmap => Syscall::Mmap.as_str(),
            Self::Mprotect => Syscall::Mprotect.as_str(),
            Self::Mremap => Syscall::Mremap.as_str(),
            Self::Brk => Syscall::Brk.as_str(),
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
    /// The path was not valid UTF-8 and was converted lossily (`path_lossy`, format 1.2).
    pub lossy: bool,
}

impl FileRef {
    /// The file a row names.
    pub(super) fn of(e: &Event<'_>) -> Self {
        Self {
            dev: e.file_dev,
            ino: e.file_ino,
            path: path_or_name(e).map(Arc::from),
            deleted: e.file_deleted.unwrap_or(false),
            memfd: e.file_memfd.unwrap_or(false),
            lossy: e.path_lossy.unwrap_or(false),
        }
    }

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
    /// The user call stack of the call that created it (format 1.4 captures with stacks; kept
    /// through later changes of the region, such as mprotect, a split or a move).
    pub stack_id: Option<u64>,
    /// Whether it was writable (PROT_WRITE) at any time since it was mapped, as far as the
    /// replay knows: since the row that mapped it, or the snapshot it is known from (kept
    /// through mprotect, a split, a move or a fork's copy; `findings`' exec-after-write).
    pub written: bool,
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
    pub(super) fn clip(&self, start: u64, end: u64) -> Self {
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
    pub(super) fn moved_to(&self, new_start: u64) -> Self {
        let mut moved = self.clone();
        moved.end = new_start.saturating_add(self.len());
        moved.start = new_start;
        moved
    }

    pub(super) fn stamp(&mut self, ts: i64, set_by: SetBy, tid: u32) {
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
///
/// Code outside this file may change a region's attributes in place (`regions`), but never its
/// bounds: those change through the methods here, which keep `bytes` the sum of the lengths.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AddressSpace {
    pub(super) regions: BTreeMap<u64, Region>,
    /// The bytes mapped: the sum of the regions' lengths, kept as they change, so that asking
    /// costs nothing however many regions there are.
    bytes: u64,
}

impl AddressSpace {
    /// The regions as they were set, in address order ("raw pieces").
    pub fn regions(&self) -> impl Iterator<Item = &Region> {
        self.regions.values()
    }

    /// The bytes mapped (the sum of the regions' lengths).
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The regions that overlap `[start, end)`, in address order.
    pub fn overlapping(&self, start: u64, end: u64) -> impl Iterator<Item = &Region> {
        let first = match self.regions.range(..=start).next_back() {
            Some((key, region)) if region.end > start => *key,
            _ => start,
        };
        self.regions
            .range(first..end.max(first))
            .map(|(_, region)| region)
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
                // Pieces made by different calls: no one stack made the merged region.
                if last.stack_id != region.stack_id {
                    last.stack_id = None;
                }
                last.written |= region.written;
                if region.since > last.since {
                    last.stamp(region.since, region.set_by, region.tid);
                }
                continue;
            }
            out.push(region.clone());
        }
        out
    }

    pub(super) fn clear(&mut self) {
        self.regions.clear();
        self.bytes = 0;
    }

    /// Splits the region that strictly contains `at`, if any, so that a region starts at `at`.
    pub(super) fn split_at(&mut self, at: u64) {
        let Some((_, region)) = self.regions.range_mut(..at).next_back() else {
            return;
        };
        if region.end <= at {
            return;
        }
        // The left part keeps its key (and its file offset): it is cut in place.
        let right = region.clip(at, region.end);
        region.end = at;
        self.regions.insert(at, right);
    }

    /// Whether any region overlaps `[start, end)` (one lookup).
    fn overlaps(&self, start: u64, end: u64) -> bool {
        start < end
            && self
                .regions
                .range(..end)
                .next_back()
                .is_some_and(|(_, region)| region.end > start)
    }

    /// Removes whatever is mapped in `[start, end)`.
    pub(super) fn remove(&mut self, start: u64, end: u64) {
        // Most calls that clear a range (every mmap in free memory) find nothing there.
        if !self.overlaps(start, end) {
            return;
        }
        self.split_at(start);
        self.split_at(end);
        let removed: u64 = self
            .regions
            .extract_if(start..end, |_, _| true)
            .map(|(_, region)| region.len())
            .sum();
        self.bytes -= removed;
    }

    /// Copies of the parts of `[start, end)` that are mapped, in address order.
    pub(super) fn pieces(&self, start: u64, end: u64) -> Vec<Region> {
        self.overlapping(start, end)
            .map(|region| region.clip(start, end))
            .collect()
    }

    /// The region that contains `addr`.
    pub(super) fn containing(&self, addr: u64) -> Option<&Region> {
        self.regions
            .range(..=addr)
            .next_back()
            .map(|(_, region)| region)
            .filter(|region| region.end > addr)
    }

    /// Maps `region`, replacing whatever overlapped it (as MAP_FIXED does).
    pub(super) fn insert(&mut self, region: Region) {
        if region.start >= region.end {
            return;
        }
        self.remove(region.start, region.end);
        self.bytes += region.len();
        self.regions.insert(region.start, region);
    }

    /// Moves the end of the region that starts at `start` to `new_end` (the caller has emptied
    /// `[end, new_end)`) and returns it, to be stamped.
    pub(super) fn extend(&mut self, start: u64, new_end: u64) -> Option<&mut Region> {
        let region = self.regions.get_mut(&start)?;
        self.bytes -= region.len();
        region.end = new_end.max(region.start);
        self.bytes += region.len();
        Some(region)
    }

    /// Applies `change` to the mapped parts of `[start, end)`; returns how many bytes it touched.
    pub(super) fn update(
        &mut self,
        start: u64,
        end: u64,
        mut change: impl FnMut(&mut Region),
    ) -> u64 {
        if !self.overlaps(start, end) {
            return 0;
        }
        self.split_at(start);
        self.split_at(end);
        let mut touched = 0;
        for region in self.regions.range_mut(start..end).map(|(_, region)| region) {
            change(region);
            touched += region.len();
        }
        touched
    }
}
