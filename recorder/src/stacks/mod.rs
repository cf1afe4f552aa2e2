//! User call stacks of recorded calls: from the raw stack a record carries to an id per
//! distinct stack, and, at segment end, the `frame` rows naming its frames (format 1.4).
//!
//! Runs on the writer thread, one call per row in the order rows are written:
//! - [`Stacks::observe`] follows every row to keep each process's executable file mappings
//!   ([`maps`]): `snapshot` rows, successful `mmap`/`munmap`/`mremap`, `exec`, `exit`;
//! - [`Stacks::intern`] turns a call's raw stack into addresses (fp: as the kernel walked them,
//!   plus the caller of a leaf syscall wrapper; dwarf: unwound with framehop, [`unwind`]) and
//!   returns the id of that (pid, addresses) list. A known stack costs one hash and one lookup,
//!   no allocation. A new one is normalized at once (module path, build id, file offset of each
//!   address, the module file opened while the process lives, [`elf`]);
//! - [`Stacks::take_frame_rows`] names the frames of the stacks used in the segment with
//!   blazesym ([`symbolize`]) and returns their `frame` rows.

mod elf;
mod maps;
mod symbolize;
mod unwind;

use std::{borrow::Cow, collections::HashMap, hash::BuildHasher, sync::Arc};

use mmap_format::event::{Event, RowKind, sources};

use self::{
    elf::ModuleFile,
    maps::{Mapping, Processes},
    symbolize::Name,
    unwind::{Ended, MAX_FRAMES, Unwinders},
};

/// `source` of frame rows from a frame-pointer walk.
pub const SOURCE_FP: &str = sources::STACK_FP;
/// `source` of frame rows from a DWARF unwind.
pub const SOURCE_DWARF: &str = sources::STACK_DWARF;

/// Module files kept open at once to symbolize from (beyond, frames in further modules keep
/// module, build id and offset but stay unnamed).
const MAX_OPEN_MODULES: usize = 1024;
/// Module files whose build id and segments are remembered.
const MAX_MODULES: usize = 16_384;
/// Names remembered per (file, offset) across segments; cleared beyond.
const MAX_NAMES: usize = 1 << 20;

/// How stacks were obtained.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackMode {
    /// Frame pointers, walked by the kernel.
    Fp,
    /// DWARF CFI, unwound here from registers and a copy of the stack.
    Dwarf,
}

/// The raw stack of one call.
#[derive(Clone, Copy, Debug)]
pub enum RawStack<'a> {
    /// Frame-pointer walk by the kernel (bpf_get_stack, BPF_F_USER_STACK): frame 0 = the user
    /// ip at the syscall, then return addresses. `leaf_ret`: the 8 bytes at the user stack
    /// pointer at syscall entry (the return address into the caller of a leaf syscall wrapper
    /// such as glibc's mmap, which a frame-pointer walk skips), 0 when unreadable.
    Fp { frames: &'a [u64], leaf_ret: u64 },
    /// User registers at the syscall and a copy of the top of the user stack from sp upward.
    Dwarf {
        ip: u64,
        sp: u64,
        bp: u64,
        stack: &'a [u8],
    },
}

/// Counts for the recorder's report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackStats {
    /// Distinct stacks (ids handed out).
    pub stacks: u64,
    /// `frame` rows returned.
    pub frame_rows: u64,
    /// Calls whose raw stack gave no address (no stack id).
    pub empty: u64,
    /// DWARF unwinds that stopped on an error before the root (their frames are kept).
    pub unwind_failures: u64,
    /// Frame rows named (function known) and not.
    pub named: u64,
    pub unnamed: u64,
    /// Fallback reads of /proc/PID/maps.
    pub maps_reads: u64,
}

/// (st_dev, inode) of a module file.
type ModKey = (u64, u64);

/// One frame, normalized when its stack was first seen.
#[derive(Debug)]
struct Frame {
    addr: u64,
    /// Path as mapped, and the file; None when no known file maps the address.
    module: Option<(Arc<str>, ModKey)>,
    offset: u64,
}

#[derive(Debug)]
struct Entry {
    pid: u32,
    addrs: Box<[u64]>,
    frames: Box<[Frame]>,
    /// The frame rows' required columns: those of the first call with this stack.
    first: Event<'static>,
    /// The last segment whose frame rows include this stack.
    segment: u64,
}

/// Stack interning and symbolization for one recording.
pub struct Stacks {
    mode: StackMode,
    procs: Processes,
    modules: HashMap<ModKey, ModuleFile>,
    open_modules: usize,
    unwinders: Unwinders,
    hasher: foldhash::fast::RandomState,
    /// Ids by the hash of (pid, addresses), looked up with the borrowed addresses.
    index: hashbrown::HashTable<u32>,
    /// By id.
    entries: Vec<Entry>,
    /// The current segment (starts at 1; entries not yet listed have 0).
    segment: u64,
    /// Ids interned in the current segment, each once.
    in_segment: Vec<u32>,
    scratch: Vec<u64>,
    names: HashMap<(ModKey, u64), Option<Name>>,
    stats: StackStats,
}

impl Stacks {
    pub fn new(mode: StackMode) -> Self {
        Self {
            mode,
            procs: Processes::default(),
            modules: HashMap::new(),
            open_modules: 0,
            unwinders: Unwinders::default(),
            hasher: foldhash::fast::RandomState::default(),
            index: hashbrown::HashTable::new(),
            entries: Vec::new(),
            segment: 1,
            in_segment: Vec::new(),
            scratch: Vec::with_capacity(MAX_FRAMES + 1),
            names: HashMap::new(),
            stats: StackStats::default(),
        }
    }

    /// Every row the writer writes, in order.
    pub fn observe(&mut self, event: &Event<'_>) {
        if matches!(event.kind, RowKind::Exec | RowKind::Exit) {
            self.unwinders.forget(event.pid);
        }
        self.procs.observe(event);
    }

    /// The stack of a call (the syscall row being written): its id (None: nothing usable).
    pub fn intern(&mut self, event: &Event<'_>, raw: RawStack<'_>) -> Option<u64> {
        let pid = event.pid;
        let mut scratch = std::mem::take(&mut self.scratch);
        match raw {
            RawStack::Fp { frames, leaf_ret } => {
                self.fp_addresses(pid, frames, leaf_ret, &mut scratch)
            }
            RawStack::Dwarf { ip, sp, bp, stack } => {
                self.dwarf_addresses(pid, (ip, sp, bp), stack, &mut scratch)
            }
        }
        let id = if scratch.is_empty() {
            self.stats.empty += 1;
            None
        } else {
            Some(self.id_of(event, &scratch))
        };
        self.scratch = scratch;
        let id = id?;
        if let Some(entry) = self.entries.get_mut(id as usize)
            && entry.segment != self.segment
        {
            entry.segment = self.segment;
            self.in_segment.push(id);
        }
        Some(u64::from(id))
    }

    /// fp: the frames as given, with the caller of a leaf wrapper inserted as frame 1.
    fn fp_addresses(&mut self, pid: u32, frames: &[u64], leaf_ret: u64, out: &mut Vec<u64>) {
        out.clear();
        out.extend(frames.iter().take(MAX_FRAMES));
        if let Some(fixed) = leaf_fix(frames, leaf_ret, |a| {
            self.procs.lookup_or_read(pid, a).is_some()
        }) {
            out.insert(fixed, leaf_ret);
            out.truncate(MAX_FRAMES);
        }
    }

    fn dwarf_addresses(
        &mut self,
        pid: u32,
        regs: (u64, u64, u64),
        stack: &[u8],
        out: &mut Vec<u64>,
    ) {
        // The ip's module must be known for the unwind to start well.
        let _ = self.procs.lookup_or_read(pid, regs.0);
        let generation = self.procs.get(pid).map_or(0, |p| p.generation);
        let Self {
            procs,
            modules,
            open_modules,
            unwinders,
            ..
        } = self;
        let modules_of = || {
            let mut list = Vec::new();
            if let Some(p) = procs.get(pid) {
                for m in p.mappings() {
                    let module = module_file(modules, open_modules, pid, m, true);
                    let (Some(svma), Some(unwind)) =
                        (module.svma_of_offset(m.off), module.unwind.clone())
                    else {
                        continue;
                    };
                    list.push((m, svma, unwind));
                }
            }
            list
        };
        let ended = unwinders.unwind(pid, generation, modules_of, regs, stack, out);
        if ended == Ended::Failed {
            self.stats.unwind_failures += 1;
        }
    }

    /// The id of (pid, addrs), a new one normalized now if unknown.
    fn id_of(&mut self, event: &Event<'_>, addrs: &[u64]) -> u32 {
        let hash = self.hasher.hash_one((event.pid, addrs));
        let entries = &self.entries;
        let same = |id: &u32| {
            entries
                .get(*id as usize)
                .is_some_and(|e| e.pid == event.pid && *e.addrs == *addrs)
        };
        if let Some(&id) = self.index.find(hash, same) {
            return id;
        }
        let id = u32::try_from(self.entries.len()).unwrap_or(u32::MAX);
        let frames = addrs
            .iter()
            .map(|&addr| {
                let module = self.procs.lookup_or_read(event.pid, addr).cloned();
                match module {
                    Some(m) => {
                        let key = (m.dev, m.ino);
                        module_file(
                            &mut self.modules,
                            &mut self.open_modules,
                            event.pid,
                            &m,
                            self.mode == StackMode::Dwarf,
                        );
                        Frame {
                            addr,
                            offset: m.file_offset(addr),
                            module: Some((m.path.clone(), key)),
                        }
                    }
                    None => Frame {
                        addr,
                        module: None,
                        offset: 0,
                    },
                }
            })
            .collect();
        let source = match self.mode {
            StackMode::Fp => SOURCE_FP,
            StackMode::Dwarf => SOURCE_DWARF,
        };
        self.entries.push(Entry {
            pid: event.pid,
            addrs: addrs.into(),
            frames,
            first: frame_base(event, source),
            segment: 0,
        });
        let (hasher, entries) = (&self.hasher, &self.entries);
        self.index.insert_unique(hash, id, |&other| {
            entries
                .get(other as usize)
                .map_or(0, |e| hasher.hash_one((e.pid, &*e.addrs)))
        });
        self.stats.stacks += 1;
        id
    }

    /// Before a segment closes: the `frame` rows of every stack interned since the segment
    /// began (each once), symbolized now.
    pub fn take_frame_rows(&mut self) -> Vec<Event<'static>> {
        let ids = std::mem::take(&mut self.in_segment);
        self.segment += 1;
        self.name_frames(&ids);
        let mut rows = Vec::new();
        for id in ids {
            let Some(entry) = self.entries.get(id as usize) else {
                continue;
            };
            for (i, frame) in entry.frames.iter().enumerate() {
                let name = frame.module.as_ref().and_then(|(_, key)| {
                    self.names
                        .get(&(*key, lookup_offset(i, frame.offset)))
                        .cloned()
                        .flatten()
                });
                let build_id = frame
                    .module
                    .as_ref()
                    .and_then(|(_, key)| self.modules.get(key)?.build_id.clone());
                if name.is_some() {
                    self.stats.named += 1;
                } else {
                    self.stats.unnamed += 1;
                }
                let mut row = entry.first.clone();
                row.stack_id = Some(u64::from(id));
                row.frame_index = u32::try_from(i).ok();
                row.frame_addr = Some(frame.addr);
                row.frame_module = frame
                    .module
                    .as_ref()
                    .map(|(p, _)| Cow::Owned(p.to_string()));
                row.frame_build_id = build_id.map(|b| Cow::Owned(b.to_string()));
                row.frame_offset = frame.module.as_ref().map(|_| frame.offset);
                if let Some(name) = name {
                    row.frame_function = Some(Cow::Owned(name.function.to_string()));
                    row.frame_file = name.file.map(|f| Cow::Owned(f.to_string()));
                    row.frame_line = name.line;
                    row.symbol_source = Some(Cow::Borrowed(name.via.as_str()));
                }
                rows.push(row);
            }
        }
        self.stats.frame_rows += rows.len() as u64;
        rows
    }

    /// Names every (module, offset) of the stacks `ids` not named yet.
    fn name_frames(&mut self, ids: &[u32]) {
        let mut wanted: HashMap<ModKey, Vec<u64>> = HashMap::new();
        for &id in ids {
            let Some(entry) = self.entries.get(id as usize) else {
                continue;
            };
            for (i, frame) in entry.frames.iter().enumerate() {
                if let Some((_, key)) = &frame.module {
                    let off = lookup_offset(i, frame.offset);
                    if !self.names.contains_key(&(*key, off)) {
                        wanted.entry(*key).or_default().push(off);
                    }
                }
            }
        }
        if wanted.is_empty() {
            return;
        }
        if self.names.len() > MAX_NAMES {
            self.names.clear();
        }
        let symbolizer = symbolize::symbolizer();
        for (key, mut offsets) in wanted {
            offsets.sort_unstable();
            offsets.dedup();
            let names = match self.modules.get(&key) {
                Some(module) => symbolize::names(&symbolizer, module, &offsets),
                None => vec![None; offsets.len()],
            };
            for (off, name) in offsets.into_iter().zip(names) {
                self.names.insert((key, off), name);
            }
        }
    }

    /// Counts for the recorder's report.
    pub fn stats(&self) -> StackStats {
        StackStats {
            maps_reads: self.procs.maps_reads,
            ..self.stats
        }
    }
}

/// The file offset the symbolizer looks up for frame `index`: a return address (index ≥ 1)
/// points after the call, so the call instruction is at offset − 1.
fn lookup_offset(index: usize, offset: u64) -> u64 {
    if index == 0 {
        offset
    } else {
        offset.saturating_sub(1)
    }
}

/// fp leaf fix: where to insert `leaf_ret` (always frame 1) when it is non-zero, lies in an
/// executable mapping of the process (`executable`) and is not already frame 1.
fn leaf_fix(frames: &[u64], leaf_ret: u64, executable: impl FnOnce(u64) -> bool) -> Option<usize> {
    (!frames.is_empty()
        && leaf_ret != 0
        && frames.get(1) != Some(&leaf_ret)
        && executable(leaf_ret))
    .then_some(1)
}

/// The module file of mapping `m` (opened and read on first use; for dwarf also its unwind
/// sections).
fn module_file<'a>(
    modules: &'a mut HashMap<ModKey, ModuleFile>,
    open_modules: &mut usize,
    pid: u32,
    m: &Mapping,
    unwind: bool,
) -> &'a ModuleFile {
    let key = (m.dev, m.ino);
    if modules.len() >= MAX_MODULES && !modules.contains_key(&key) {
        // Bounded: forget every module (stacks keep their path/offset; names and build ids of
        // the forgotten ones are lost for stacks not yet symbolized).
        modules.clear();
        *open_modules = 0;
    }
    let stale = modules
        .get(&key)
        .is_none_or(|module| unwind && module.unwind.is_none() && module.via.is_some());
    if stale {
        let mut module = ModuleFile::load(pid, m, unwind);
        if module.file.is_some() {
            if *open_modules >= MAX_OPEN_MODULES {
                module.file = None;
            } else if modules.get(&key).is_none_or(|old| old.file.is_none()) {
                *open_modules += 1;
            }
        }
        modules.insert(key, module);
    }
    // Inserted just above when missing.
    modules
        .entry(key)
        .or_insert_with(|| ModuleFile::load(pid, m, unwind))
}

/// A frame row's required columns, from the first call with the stack.
fn frame_base(event: &Event<'_>, source: &'static str) -> Event<'static> {
    Event {
        kind: RowKind::Frame,
        ts_ns: event.ts_ns,
        cpu: event.cpu,
        pid: event.pid,
        tid: event.tid,
        ppid: event.ppid,
        uid: event.uid,
        gid: event.gid,
        comm: Cow::Owned(event.comm.to_string()),
        cgroup_id: event.cgroup_id,
        cgroup_path: event
            .cgroup_path
            .as_deref()
            .map(|p| Cow::Owned(p.to_owned())),
        pidns_ino: event.pidns_ino,
        ns_pid: event.ns_pid,
        ns_tid: event.ns_tid,
        source: Some(Cow::Borrowed(source)),
        ..Default::default()
    }
}

#[cfg(test)]
mod tests;
