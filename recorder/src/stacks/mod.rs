//! STAND-IN for the `stacks-resolve` branch's module (issue 14): the same public signatures,
//! so that the kernel-to-writer plumbing of `stacks-kernel` compiles and can be tested. It
//! interns the raw addresses (fp: the kernel's frames, with the wrapper's caller from
//! `leaf_ret`; dwarf: the ip only, no unwinding) and writes unnamed `frame` rows. The lead
//! takes the other branch's module, which replaces this file.
use std::collections::HashMap;

use mmap_format::event::{Event, RowKind};

/// `source` of frame rows from a frame-pointer walk.
pub const SOURCE_FP: &str = "stack_fp";
/// `source` of frame rows from a DWARF unwind.
pub const SOURCE_DWARF: &str = "stack_dwarf";

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
#[expect(
    dead_code,
    reason = "the stand-in does not unwind: it reads only the ip"
)]
pub enum RawStack<'a> {
    /// Frame-pointer walk by the kernel (bpf_get_stack, BPF_F_USER_STACK): frame 0 = the user
    /// ip at the syscall, then return addresses. `leaf_ret`: the 8 bytes at the user stack
    /// pointer at syscall entry, 0 when unreadable.
    Fp { frames: &'a [u64], leaf_ret: u64 },
    /// User registers at the syscall and a copy of the top of the user stack from sp upward.
    Dwarf {
        ip: u64,
        sp: u64,
        bp: u64,
        stack: &'a [u8],
    },
}

struct Entry {
    addrs: Vec<u64>,
    first: Event<'static>,
}

/// Stack interning for one recording.
pub struct Stacks {
    mode: StackMode,
    ids: HashMap<(u32, Vec<u64>), u64>,
    entries: Vec<Entry>,
    /// Ids used in the current segment, each once.
    in_segment: Vec<u64>,
    listed: Vec<bool>,
}

impl Stacks {
    pub fn new(mode: StackMode) -> Self {
        Self {
            mode,
            ids: HashMap::new(),
            entries: Vec::new(),
            in_segment: Vec::new(),
            listed: Vec::new(),
        }
    }

    /// Every row the writer writes, in order.
    pub fn observe(&mut self, _event: &Event<'_>) {}

    /// The stack of a call (the syscall row being written): its id.
    pub fn intern(&mut self, event: &Event<'_>, raw: RawStack<'_>) -> Option<u64> {
        let addrs: Vec<u64> = match raw {
            RawStack::Fp { frames, leaf_ret } => {
                let mut addrs = frames.to_vec();
                if leaf_ret != 0 && !addrs.is_empty() {
                    addrs.insert(1, leaf_ret);
                }
                addrs
            }
            RawStack::Dwarf { ip, .. } => vec![ip],
        };
        if addrs.is_empty() {
            return None;
        }
        let key = (event.pid, addrs);
        let id = match self.ids.get(&key) {
            Some(&id) => id,
            None => {
                let id = self.entries.len() as u64;
                self.entries.push(Entry {
                    addrs: key.1.clone(),
                    first: event.clone().into_owned(),
                });
                self.listed.push(false);
                self.ids.insert(key, id);
                id
            }
        };
        if let Some(listed) = self.listed.get_mut(id as usize)
            && !*listed
        {
            *listed = true;
            self.in_segment.push(id);
        }
        Some(id)
    }

    /// Before a segment closes: the `frame` rows of every stack interned since the segment
    /// began.
    pub fn take_frame_rows(&mut self) -> Vec<Event<'static>> {
        let source = match self.mode {
            StackMode::Fp => SOURCE_FP,
            StackMode::Dwarf => SOURCE_DWARF,
        };
        let mut rows = Vec::new();
        for id in std::mem::take(&mut self.in_segment) {
            if let Some(listed) = self.listed.get_mut(id as usize) {
                *listed = false;
            }
            let Some(entry) = self.entries.get(id as usize) else {
                continue;
            };
            for (index, &addr) in entry.addrs.iter().enumerate() {
                let first = &entry.first;
                rows.push(Event {
                    kind: RowKind::Frame,
                    ts_ns: first.ts_ns,
                    cpu: first.cpu,
                    pid: first.pid,
                    tid: first.tid,
                    ppid: first.ppid,
                    uid: first.uid,
                    gid: first.gid,
                    comm: first.comm.clone(),
                    cgroup_id: first.cgroup_id,
                    source: Some(source.into()),
                    stack_id: Some(id),
                    frame_index: Some(index as u32),
                    frame_addr: Some(addr),
                    ..Default::default()
                });
            }
        }
        rows
    }
}
