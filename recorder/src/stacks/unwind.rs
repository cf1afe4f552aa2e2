//! DWARF CFI unwinding of a copied user stack with `framehop`, one unwinder per process whose
//! modules are the process's executable file mappings (rebuilt when they change).

use std::{collections::HashMap, sync::Arc};

use framehop::{
    ExplicitModuleSectionInfo, Module, Unwinder,
    x86_64::{CacheX86_64, UnwindRegsX86_64, UnwinderX86_64},
};

use super::{elf::UnwindSections, maps::Mapping};

/// At most this many frames (as `bpf_get_stack` in fp mode).
pub(crate) const MAX_FRAMES: usize = 127;
/// Unwinders kept (one per process); beyond that the table is cleared.
const MAX_UNWINDERS: usize = 4096;

type Data = Arc<[u8]>;

/// The unwinders of the processes seen, and framehop's rule cache.
pub(crate) struct Unwinders {
    by_pid: HashMap<u32, (u64, UnwinderX86_64<Data>)>,
    cache: CacheX86_64,
}

impl Default for Unwinders {
    fn default() -> Self {
        Self {
            by_pid: HashMap::new(),
            cache: CacheX86_64::new(),
        }
    }
}

/// A framehop module for mapping `m` of a file whose unwind sections are `sections` and whose
/// address (svma) at the mapping's start is `svma_at_start`.
fn module(m: &Mapping, svma_at_start: u64, sections: &UnwindSections) -> Module<Data> {
    let base_avma = m.start.wrapping_sub(svma_at_start);
    let info = ExplicitModuleSectionInfo {
        base_svma: 0,
        text_svma: sections.text.as_ref().map(|(r, _)| r.clone()),
        text: sections.text.as_ref().map(|(_, d)| d.clone()),
        got_svma: sections.got.clone(),
        eh_frame_svma: sections.eh_frame.as_ref().map(|(r, _)| r.clone()),
        eh_frame: sections.eh_frame.as_ref().map(|(_, d)| d.clone()),
        eh_frame_hdr_svma: sections.eh_frame_hdr.as_ref().map(|(r, _)| r.clone()),
        eh_frame_hdr: sections.eh_frame_hdr.as_ref().map(|(_, d)| d.clone()),
        ..Default::default()
    };
    Module::new(m.path.to_string(), m.start..m.end, base_avma, info)
}

/// How an unwind ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ended {
    /// The root was reached (or the frame limit).
    Complete,
    /// framehop stopped with an error (frames so far are kept).
    Failed,
}

impl Unwinders {
    /// Unwinds from the registers at the syscall over a copy of the stack from `sp` upward,
    /// into `out` (cleared first). `modules` yields, when the process's mappings changed since
    /// the last call (`generation`), each mapping with its svma at start and unwind sections.
    pub fn unwind<'m>(
        &mut self,
        pid: u32,
        generation: u64,
        modules: impl FnOnce() -> Vec<(&'m Mapping, u64, Arc<UnwindSections>)>,
        regs: (u64, u64, u64),
        stack: &[u8],
        out: &mut Vec<u64>,
    ) -> Ended {
        out.clear();
        let stale = self.by_pid.get(&pid).is_none_or(|(g, _)| *g != generation);
        if stale {
            if self.by_pid.len() >= MAX_UNWINDERS {
                self.by_pid.clear();
            }
            let mut unwinder = UnwinderX86_64::new();
            for (m, svma, sections) in modules() {
                unwinder.add_module(module(m, svma, &sections));
            }
            self.by_pid.insert(pid, (generation, unwinder));
        }
        let Some((_, unwinder)) = self.by_pid.get(&pid) else {
            return Ended::Failed;
        };
        let (ip, sp, bp) = regs;
        let mut read_stack = |addr: u64| -> Result<u64, ()> {
            let off = usize::try_from(addr.checked_sub(sp).ok_or(())?).map_err(|_| ())?;
            let bytes = stack.get(off..off.checked_add(8).ok_or(())?).ok_or(())?;
            Ok(u64::from_le_bytes(bytes.try_into().map_err(|_| ())?))
        };
        let mut frames = unwinder.iter_frames(
            ip,
            UnwindRegsX86_64::new(ip, sp, bp),
            &mut self.cache,
            &mut read_stack,
        );
        while out.len() < MAX_FRAMES {
            match frames.next() {
                Ok(Some(frame)) => out.push(frame.address()),
                Ok(None) => return Ended::Complete,
                Err(_) => return Ended::Failed,
            }
        }
        Ended::Complete
    }

    /// Forgets a process (exec, exit).
    pub fn forget(&mut self, pid: u32) {
        self.by_pid.remove(&pid);
    }
}
