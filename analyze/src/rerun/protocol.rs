//! What the parent sends the rerun child (the [`Plan`]) and what the child sends back
//! ([`Outcome`]): JSON over the child's stdin and stdout.
//!
//! Addresses in a plan are the *recorded* ones: only the child knows where its own mappings land,
//! so it translates them as it goes (`translate.rs`).

use serde::{Deserialize, Serialize};

/// `mmap(START, 0, ...)`, made just before the first replayed call: it fails with EINVAL and
/// marks, in a recording of the rerun, where the replayed calls begin.
pub const MARKER_START: u64 = 0x6d6d_6170_0000;
/// `mmap(END, 0, ...)`, made just after the last replayed call.
pub const MARKER_END: u64 = 0x6d6d_6170_1000;

/// Everything the child needs.
#[derive(Debug, Serialize, Deserialize)]
pub struct Plan {
    pub ops: Vec<Op>,
    /// The files to open before the first call, by index (the `file` of a mapping).
    pub files: Vec<PlanFile>,
    /// Threads to run the calls on (`Op::thread` indexes them); 1 unless `--threads`.
    pub threads: u32,
    /// Ask for the recorded address of every mapping the recording made (MAP_FIXED_NOREPLACE).
    pub same_addresses: bool,
    /// Divide recorded gaps by this; `None`: back to back.
    pub speed: Option<f64>,
    pub page_size: u64,
    /// The recorded program break before the first brk call (that call's result when it asks
    /// for the break with brk(0)).
    pub heap_base: Option<u64>,
    /// Bytes the child may populate or lock (MAP_POPULATE, MAP_LOCKED) in all: past it those
    /// flags are left out, so that a capture cannot make the rerun take all the memory.
    pub populate_budget: u64,
    /// The regions the process had before its first call (from its snapshot), made as stand-ins
    /// before the first marker so that calls on them can be re-issued.
    pub regions: Vec<Standin>,
}

/// A region of the snapshot: the child maps one like it (same size, protection, sharing, file
/// and offset) before the calls.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Standin {
    pub start: u64,
    pub end: u64,
    pub prot: u64,
    pub shared: bool,
    pub file: Option<u32>,
    pub off: u64,
}

/// A file the child opens.
#[derive(Debug, Serialize, Deserialize)]
pub struct PlanFile {
    pub path: std::path::PathBuf,
    /// Open read-write (a shared writable mapping of it was allowed), else read-only.
    pub write: bool,
}

/// One recorded call.
#[derive(Clone, Copy, Debug, Serialize, Deserialize)]
pub struct Op {
    pub thread: u32,
    /// Recorded entry time, ns after the first call's.
    pub at_ns: u64,
    pub call: Call,
    /// The recorded result (an address, 0 or -errno); `None` when its exit was not recorded.
    pub ret: Option<i64>,
}

/// The recorded arguments.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "syscall", rename_all = "snake_case")]
pub enum Call {
    Mmap {
        addr: u64,
        len: u64,
        prot: u64,
        flags: u64,
        /// Index into [`Plan::files`]; `None`: anonymous, or no file known (fd -1 is passed).
        file: Option<u32>,
        off: u64,
    },
    Munmap {
        addr: u64,
        len: u64,
    },
    Mprotect {
        addr: u64,
        len: u64,
        prot: u64,
    },
    Mremap {
        addr: u64,
        old_len: u64,
        new_len: u64,
        flags: u64,
        new_addr: u64,
    },
    Brk {
        addr: u64,
    },
}

/// The arguments the child passed (addresses translated, flags as issued).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Issued {
    pub addr: u64,
    pub len: u64,
    pub prot: u64,
    pub flags: u64,
    pub fd: i64,
    pub off: u64,
    pub new_addr: u64,
    pub new_len: u64,
}

/// How the child handled a call.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum How {
    /// Not reached (the child stopped early).
    #[default]
    NotRun,
    /// Issued with the recorded arguments, addresses translated.
    Issued,
    /// Issued at an address the child never maps: the replay does not have the recorded range
    /// (it never made it, or unmapped it since), and the recorded call failed or changed nothing
    /// there.
    IssuedOnHole,
    /// `--same-addresses`: the recorded address was taken (MAP_FIXED_NOREPLACE); the flag is in
    /// `issued.flags`.
    SameAddress,
    /// `--same-addresses`: the recorded address was taken by something else; issued again
    /// without it (two calls).
    Elsewhere,
    /// MAP_FIXED at an address the replay did not make: issued as MAP_FIXED_NOREPLACE so that
    /// it can replace nothing of the child's own.
    FixedNoReplace,
    /// MAP_FIXED_NOREPLACE refused (something of the child's own was there): issued without
    /// the flag (two calls).
    FixedElsewhere,
    /// Not issued: it acts on memory the replay did not make (mapped before the capture, by
    /// the kernel, or by a call that failed in the rerun).
    SkippedUnknownMemory,
    /// Not issued: it acts partly on memory the replay made and partly on memory it did not.
    SkippedPartly,
    /// Not issued: brk below the break the child started from (it would free the child's own
    /// heap).
    SkippedBrkBelow,
    /// Not issued: MREMAP_FIXED to memory the replay did not make (it would replace whatever
    /// is there).
    SkippedRemapTarget,
}

impl How {
    pub const fn issued(self) -> bool {
        matches!(
            self,
            Self::Issued
                | Self::IssuedOnHole
                | Self::SameAddress
                | Self::Elsewhere
                | Self::FixedNoReplace
                | Self::FixedElsewhere
        )
    }

    /// Why a call was not issued, or was issued differently.
    pub const fn why(self) -> Option<&'static str> {
        Some(match self {
            Self::Issued | Self::SameAddress => return None,
            Self::NotRun => "not reached",
            Self::IssuedOnHole => {
                "issued on an address range the rerun never maps (the replay does not have the \
                 recorded range: no replayed call made it, or one unmapped it since)"
            }
            Self::Elsewhere => "the recorded address was taken in the rerun: placed elsewhere",
            Self::FixedNoReplace => {
                "MAP_FIXED at memory the replay did not make: issued as MAP_FIXED_NOREPLACE"
            }
            Self::FixedElsewhere => {
                "MAP_FIXED at memory the replay did not make, taken in the rerun: placed elsewhere"
            }
            Self::SkippedUnknownMemory => {
                "acts on memory the replay did not make (mapped before the capture, by the kernel, \
                 or by a call that failed in the rerun)"
            }
            Self::SkippedPartly => "acts partly on memory the replay did not make",
            Self::SkippedBrkBelow => "brk below the break the rerun started from",
            Self::SkippedRemapTarget => "MREMAP_FIXED onto memory the replay did not make",
        })
    }
}

/// What happened to one call in the child.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub struct Done {
    pub how: How,
    pub issued: Issued,
    /// The raw result: an address, 0 or -errno.
    pub ret: i64,
    /// How long the system call took in the child.
    pub dur_ns: u64,
    /// MAP_POPULATE and MAP_LOCKED were left out: the mapping would have taken the rerun past
    /// [`Plan::populate_budget`].
    pub unpopulated: bool,
}

/// A range of the child's memory that stands for a recorded range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    /// Recorded `[start, end)`.
    pub start: u64,
    pub end: u64,
    /// Where `start` is in the child.
    pub child: u64,
}

/// What the child sends back.
#[derive(Debug, Serialize, Deserialize)]
pub struct Outcome {
    pub pid: u32,
    /// One per op, in plan order.
    pub done: Vec<Done>,
    /// The child's /proc/self/maps right after the last call.
    pub maps: String,
    /// The translation at the end: every recorded range the replay made, and where it is.
    pub intervals: Vec<Interval>,
    /// The child's break before the first call (the base of its replayed heap).
    pub heap_base: u64,
    /// Wall time from the first call to the last, ns.
    pub elapsed_ns: u64,
    /// Stand-ins that could not be made: (index into `Plan::regions`, -errno).
    pub standins_failed: Vec<(usize, i64)>,
}
