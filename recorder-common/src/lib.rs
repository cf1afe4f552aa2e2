//! Records and configuration shared by the kernel side (`recorder-ebpf`) and `mmap-recorder`.
//!
//! This is the kernel ABI of mmap-capture: plain `#[repr(C)]` structs with explicit padding and
//! raw integers instead of Rust enums. It knows nothing of Arrow or Parquet; the conversion into
//! capture rows lives in `mmap-recorder` (`recorder/src/convert.rs`).
#![no_std]

use core::mem::size_of;

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;
/// Longest name one path component can have (NAME_MAX) plus its NUL.
pub const COMPONENT_LEN: usize = 256;
/// Path bytes the kernel fills before it stops walking (a power of two: offsets are masked).
pub const PATH_CAP: usize = 512;
/// Size of the path area: a component that starts just below `PATH_CAP` still fits.
pub const PATH_BUF: usize = PATH_CAP + COMPONENT_LEN;
/// Most path components the kernel walks.
pub const MAX_COMPONENTS: usize = 32;

/// Declares [`EventKind`] once: the enum, its [`EventKind::ALL`] list and the raw-integer
/// conversion all come from this one list.
macro_rules! event_kinds {
    ($($(#[$doc:meta])* $variant:ident = $raw:literal,)*) => {
        /// `Record::event` values. Raw integers cross the boundary; user space converts them
        /// with [`EventKind::try_from`].
        #[repr(u16)]
        #[derive(Clone, Copy, Debug, PartialEq, Eq)]
        pub enum EventKind {
            $($(#[$doc])* $variant = $raw,)*
        }

        impl EventKind {
            /// Every kind, in declaration order.
            pub const ALL: &'static [Self] = &[$(Self::$variant),*];
        }

        impl TryFrom<u16> for EventKind {
            type Error = u16;
            fn try_from(raw: u16) -> Result<Self, u16> {
                match raw {
                    $($raw => Ok(Self::$variant),)*
                    other => Err(other),
                }
            }
        }
    };
}

event_kinds! {
    Mmap = 1,
    Munmap = 2,
    Mprotect = 3,
    Mremap = 4,
    Brk = 5,
    /// A new process: `args[0]` = its tgid.
    Fork = 16,
    /// An exec: `path` = the filename passed to exec.
    Exec = 17,
    /// A whole process exited: `args[0]` = task->exit_code.
    Exit = 18,
    /// Records lost on `cpu`: `args[0]` = how many, between `ts_enter_ns` and `ts_exit_ns`.
    Lost = 32,
}

impl EventKind {
    /// How many syscall arguments the kernel side stores for this kind.
    pub const fn syscall_args(self) -> usize {
        match self {
            Self::Mmap => 6,
            Self::Mremap => 5,
            Self::Mprotect => 3,
            Self::Munmap => 2,
            Self::Brk => 1,
            Self::Fork | Self::Exec | Self::Exit | Self::Lost => 0,
        }
    }

    /// The system call this kind records, as the kernel names it (the `syscalls/sys_enter_NAME`
    /// tracepoint, and the format's `syscall` column value); `None` for process events.
    pub const fn syscall_name(self) -> Option<&'static str> {
        match self {
            Self::Mmap => Some("mmap"),
            Self::Munmap => Some("munmap"),
            Self::Mprotect => Some("mprotect"),
            Self::Mremap => Some("mremap"),
            Self::Brk => Some("brk"),
            Self::Fork | Self::Exec | Self::Exit | Self::Lost => None,
        }
    }
}

/// Bits of [`Record::flags`].
pub mod record_flags {
    /// The kernel found a `struct file` for the call's fd; `file_dev`, `file_ino` and `path` are set.
    pub const HAS_FILE: u16 = 1 << 0;
    /// `path` holds the components of the file's path, last component first, each NUL
    /// terminated; the walk reached the root of the mount tree.
    pub const PATH_COMPLETE: u16 = 1 << 1;
    /// The walk stopped early (buffer or component limit): the path lacks its first components.
    pub const PATH_TRUNCATED: u16 = 1 << 2;
    /// The dentry was unhashed (the file was deleted).
    pub const FILE_DELETED: u16 = 1 << 3;
    /// The dentry has no parent on a mounted tree (memfd, anonymous files): `path` is its name.
    pub const PATH_PSEUDO: u16 = 1 << 4;
    /// `path` is a plain NUL-terminated string (exec filename), not components.
    pub const PATH_STRING: u16 = 1 << 5;
    /// A [`StackHeader`](super::StackHeader) and the stack it describes follow the path, at
    /// [`stack_offset`](super::stack_offset)`(path_len)`.
    pub const HAS_STACK: u16 = 1 << 6;
    /// The call was seen at its exit only (the exit-only attach mode): `ts_enter_ns` is the exit
    /// time, as is `ts_exit_ns`, and the call's duration is not known.
    pub const EXIT_ONLY: u16 = 1 << 7;
    /// The record came in a batch: the ring item holds [`BATCH_RECORDS`](super::BATCH_RECORDS)
    /// or fewer headers of [`RECORD_HEADER`](super::RECORD_HEADER) bytes each, one after another,
    /// every one with this bit (see [`batch_items`](super::batch_items)).
    pub const BATCHED: u16 = 1 << 8;
}

/// At most this many records of a CPU wait in its batch (the kernel side's `BATCH` map) before
/// they go to the ring as one item: the records of calls with no path and no stack, the common
/// case. Any other record of that CPU (a call with a path or a stack, a lifecycle event) and
/// user space's periodic flush (`flush_batches`, run on each CPU) send the waiting ones first.
pub const BATCH_RECORDS: usize = 32;

/// The records of one ring item: the item itself, or the headers of a batch
/// ([`record_flags::BATCHED`]) one by one.
pub fn batch_items(item: &[u8]) -> impl Iterator<Item = &[u8]> {
    let batched = item.len() >= RECORD_HEADER
        && u16::from_ne_bytes([item[2], item[3]]) & record_flags::BATCHED != 0;
    let (whole, headers) = if batched {
        (None, item.chunks_exact(RECORD_HEADER))
    } else {
        (Some(item), (&[] as &[u8]).chunks_exact(RECORD_HEADER))
    };
    whole.into_iter().chain(headers)
}

/// The fixed part of every record.
///
/// `args` holds the raw system-call arguments in order (mmap: `addr, len, prot, flags, fd, off`;
/// the tracepoint's `unsigned long fd` holds a truncated int, read it as `args[4] as u32 as i32`).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RecordHeader {
    /// An [`EventKind`] as a raw integer.
    pub event: u16,
    /// [`record_flags`] bits.
    pub flags: u16,
    pub cpu: u32,
    /// `bpf_ktime_get_boot_ns()` at syscall entry (or at the event).
    pub ts_enter_ns: u64,
    /// `bpf_ktime_get_boot_ns()` at syscall exit (0 for events that are not syscalls).
    pub ts_exit_ns: u64,
    pub args: [u64; 6],
    /// Return value: an address, 0, or -errno.
    pub ret: i64,
    pub cgroup_id: u64,
    /// `inode->i_ino` of the mapped file.
    pub file_ino: u64,
    pub tgid: u32,
    pub tid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// `inode->i_sb->s_dev` in the kernel's encoding (major << 20 | minor).
    pub file_dev: u32,
    /// Inode number of the task's pid namespace.
    pub pidns_ino: u32,
    /// tgid and tid as seen in that namespace.
    pub ns_pid: u32,
    pub ns_tid: u32,
    /// Bytes of `Record::path` in use.
    pub path_len: u16,
    pub _pad: u16,
    pub comm: [u8; COMM_LEN],
}

/// Bytes of [`RecordHeader`].
pub const RECORD_HEADER: usize = 152;
const _: () = assert!(
    size_of::<RecordHeader>() == RECORD_HEADER && core::mem::offset_of!(RecordHeader, flags) == 2
);

impl RecordHeader {
    /// The header as the kernel side puts it in the ring buffer (for records user space makes:
    /// the loss still pending at the end, and tests).
    pub fn to_bytes(&self) -> [u8; RECORD_HEADER] {
        let mut bytes = [0u8; RECORD_HEADER];
        // SAFETY: RecordHeader is #[repr(C)], made of integers and byte arrays with explicit
        // padding fields, and exactly RECORD_HEADER bytes long (asserted above); the destination
        // has that many bytes and does not overlap `self`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self as *const Self).cast::<u8>(),
                bytes.as_mut_ptr(),
                RECORD_HEADER,
            );
        }
        bytes
    }
}

/// One event as the kernel builds it. Only the header and the used part of `path` (rounded up
/// to 8 bytes) go into the ring buffer.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct Record {
    pub head: RecordHeader,
    pub path: [u8; PATH_BUF],
}

const _: () = assert!(size_of::<Record>() == RECORD_HEADER + PATH_BUF);
const _: () = assert!(size_of::<Record>().is_multiple_of(8));

// ---- call stacks ------------------------------------------------------------------------------
//
// A syscall record may carry the user call stack of its call (`--stacks fp|dwarf`). The layout of
// such a ring-buffer item, all integers native-endian (little-endian on the BPF targets):
//
//   offset 0                              RecordHeader (RECORD_HEADER bytes), flags has HAS_STACK
//   RECORD_HEADER                         path: path_len bytes, zero-padded to a multiple of 8
//   stack_offset(path_len)                StackHeader (STACK_HEADER bytes)
//   stack_offset(path_len) + STACK_HEADER `StackHeader::len` bytes:
//       mode FP:    return addresses (u64 each; frame 0 = the user ip at the syscall), as
//                   bpf_get_stack(BPF_F_USER_STACK) walked them by frame pointers; at most
//                   MAX_STACK_FRAMES
//       mode DWARF: a copy of the user stack from `sp` upward (at most MAX_STACK_BYTES; shorter
//                   when the stack ends sooner), for unwinding in user space
//
// `ip`, `sp`, `bp` are the user registers at the call (the same at entry and exit for these
// calls); `leaf_ret` is the 8 bytes at `sp` (the return address into the caller of a leaf
// syscall wrapper, which a frame-pointer walk skips), 0 when they could not be read.

/// `StackHeader::mode`, and `Config::stack_mode` (where [`stack_mode::NONE`] turns stacks off).
pub mod stack_mode {
    pub const NONE: u32 = 0;
    /// Frame-pointer walk by the kernel.
    pub const FP: u32 = 1;
    /// Registers and a copy of the top of the user stack, unwound in user space.
    pub const DWARF: u32 = 2;
}

/// Most frames of a frame-pointer stack (what bpf_get_stack can fill, as perf's default).
pub const MAX_STACK_FRAMES: usize = 127;
/// Most bytes of user stack a dwarf record copies (`Config::stack_bytes` is at most this).
pub const MAX_STACK_BYTES: usize = 16384;
/// Fewest bytes of user stack `Config::stack_bytes` may ask for.
pub const MIN_STACK_BYTES: usize = 1024;
/// Bytes of user stack a dwarf record copies unless told otherwise.
pub const DEFAULT_STACK_BYTES: usize = 8192;

/// What precedes the stack data of a record with [`record_flags::HAS_STACK`].
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StackHeader {
    /// A [`stack_mode`] value (FP or DWARF).
    pub mode: u32,
    /// Bytes of stack data after this header (FP: 8 per frame).
    pub len: u32,
    /// User instruction pointer at the call.
    pub ip: u64,
    /// User stack pointer at the call.
    pub sp: u64,
    /// User frame pointer (rbp) at the call.
    pub bp: u64,
    /// The 8 bytes at `sp`, 0 when unreadable.
    pub leaf_ret: u64,
}

impl StackHeader {
    /// The header as the kernel side writes it (for tests and records user space makes).
    pub fn to_bytes(&self) -> [u8; STACK_HEADER] {
        let mut bytes = [0u8; STACK_HEADER];
        // SAFETY: StackHeader is #[repr(C)], made of integers without padding, and exactly
        // STACK_HEADER bytes long (asserted below); the destination has that many bytes and
        // does not overlap `self`.
        unsafe {
            core::ptr::copy_nonoverlapping(
                (self as *const Self).cast::<u8>(),
                bytes.as_mut_ptr(),
                STACK_HEADER,
            );
        }
        bytes
    }
}

/// Bytes of [`StackHeader`].
pub const STACK_HEADER: usize = 40;
const _: () = assert!(size_of::<StackHeader>() == STACK_HEADER);

/// Room the kernel side keeps after a record for its stack: the header and the largest stack.
pub const STACK_AREA: usize = STACK_HEADER + MAX_STACK_BYTES;
const _: () = assert!(MAX_STACK_FRAMES * 8 <= MAX_STACK_BYTES);

/// Where the stack header of a record whose path has `path_len` bytes starts.
pub const fn stack_offset(path_len: usize) -> usize {
    RECORD_HEADER + ((path_len + 7) & !7)
}

/// The stack of a decoded record: its header and its data, borrowed from the ring-buffer item.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StackRef<'a> {
    pub head: StackHeader,
    /// `head.len` bytes: frames (FP) or the stack copy (DWARF).
    pub data: &'a [u8],
}

impl StackRef<'_> {
    /// The frames of an FP stack, innermost first (none for a DWARF stack).
    pub fn frames(&self) -> impl Iterator<Item = u64> + '_ {
        let data = if self.head.mode == stack_mode::FP {
            self.data
        } else {
            &[]
        };
        data.chunks_exact(8).map(|chunk| {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            u64::from_ne_bytes(word)
        })
    }
}

/// A record read from the ring buffer: its header, the used part of its path and its stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub head: RecordHeader,
    pub path: &'a [u8],
    /// The call stack, when the record has [`record_flags::HAS_STACK`].
    pub stack: Option<StackRef<'a>>,
}

impl<'a> RecordRef<'a> {
    /// Decodes ring-buffer bytes: checks the lengths, then reads the headers unaligned. `None`
    /// when the item is shorter than its headers say, or its stack header is not one the kernel
    /// side writes (unknown mode, a length that is too long or, for FP, not whole frames).
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < RECORD_HEADER {
            return None;
        }
        // SAFETY: the slice holds at least RECORD_HEADER = size_of::<RecordHeader>() bytes, every
        // bit pattern is a valid RecordHeader (integers and byte arrays), and read_unaligned has
        // no alignment requirement.
        let head = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<RecordHeader>()) };
        let path = bytes[RECORD_HEADER..].get(..head.path_len as usize)?;
        let stack = if head.flags & record_flags::HAS_STACK != 0 {
            Some(decode_stack(bytes, head.path_len as usize)?)
        } else {
            None
        };
        Some(Self { head, path, stack })
    }
}

/// The stack after a path of `path_len` bytes in `bytes`.
fn decode_stack(bytes: &[u8], path_len: usize) -> Option<StackRef<'_>> {
    let at = stack_offset(path_len);
    let rest = bytes.get(at..)?;
    if rest.len() < STACK_HEADER {
        return None;
    }
    // SAFETY: `rest` holds at least STACK_HEADER = size_of::<StackHeader>() bytes, every bit
    // pattern is a valid StackHeader (integers only, no padding), and read_unaligned has no
    // alignment requirement.
    let head = unsafe { core::ptr::read_unaligned(rest.as_ptr().cast::<StackHeader>()) };
    let len = head.len as usize;
    let fits = match head.mode {
        stack_mode::FP => len <= MAX_STACK_FRAMES * 8 && len.is_multiple_of(8),
        stack_mode::DWARF => len <= MAX_STACK_BYTES,
        _ => false,
    };
    if !fits {
        return None;
    }
    let data = rest[STACK_HEADER..].get(..len)?;
    Some(StackRef { head, data })
}

/// Indices into the kernel side's per-CPU `COUNTERS` array.
pub mod counters {
    /// Records the kernel could not put in the ring buffer (it was full).
    pub const LOST_RINGBUF_FULL: u32 = 0;
    /// Exits of a recorded thread without a stored entry: the call was already in progress when
    /// recording was turned on (at most one per thread), or its entry could not be stored
    /// (`ENTRY_MAP_FULL`).
    pub const ORPHAN_EXIT: u32 = 1;
    /// Entries that could not be stored because the per-thread entry map was full.
    pub const ENTRY_MAP_FULL: u32 = 2;
    /// Records submitted to the ring buffer (loss records not included).
    pub const EMITTED: u32 = 3;
    /// New processes of a target that could not be followed (added to the map of followed
    /// processes, `TARGET_TGIDS`) because that map was full: none of their calls is recorded.
    pub const FOLLOW_MAP_FULL: u32 = 4;
    /// Number of counters.
    pub const COUNT: u32 = 5;
}

/// Values of element 0 of the kernel side's `RECORDING` array: the programs record only while it
/// is [`recording::ON`], which user space sets once every program is attached and clears before
/// detaching them (programs attach and detach one by one, over about a second).
pub mod recording {
    pub const OFF: u32 = 0;
    pub const ON: u32 = 1;
    /// With [`ON`]: the records of calls wait in per-CPU batches (see
    /// [`BATCH_RECORDS`](super::BATCH_RECORDS)); user space sets it only once it has checked that
    /// it can flush them.
    pub const BATCHES: u32 = 2;
}

/// Loss not yet reported in-band, per CPU (the `LOSS` map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct LossWindow {
    pub count: u64,
    pub first_ns: u64,
    pub last_ns: u64,
}

/// Bits of [`Config::filter`] (in the `CONFIG` global).
pub mod filter {
    /// Record only tgids in the `TARGET_TGIDS` map, names in the `TARGET_COMMS` map or cgroups in
    /// [`Config::cgroups`](super::Config::cgroups); with no bit set, every process but the
    /// recorder is recorded.
    pub const BY_TGID: u32 = 1 << 0;
    pub const BY_COMM: u32 = 1 << 1;
    pub const BY_CGROUP: u32 = 1 << 2;
    /// New processes forked by a target become targets.
    pub const FOLLOW_FORKS: u32 = 1 << 3;
}

/// Most `--cgroup` targets.
pub const MAX_CGROUPS: usize = 8;

/// A cgroup target: match when the task's ancestor cgroup at `level` has id `id`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CgroupTarget {
    pub id: u64,
    pub level: u32,
    pub _pad: u32,
}

/// Configuration the programs read (the `CONFIG` global, set at load time).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Config {
    /// The recorder's own tgid: never recorded.
    pub own_tgid: u32,
    /// [`filter`] bits.
    pub filter: u32,
    /// Force a ring-buffer wakeup once this many bytes wait to be read.
    pub wakeup_bytes: u64,
    pub cgroup_count: u32,
    pub _pad: u32,
    pub cgroups: [CgroupTarget; MAX_CGROUPS],
    /// [`stack_mode`]: whether syscall records carry the user call stack, and how it is taken.
    pub stack_mode: u32,
    /// The calls that get a stack: bit `1 << kind` for each [`EventKind`] `kind` (syscall kinds
    /// are below 32).
    pub stack_syscalls: u32,
    /// DWARF mode: bytes of user stack copied per call, a multiple of 8 in
    /// [`MIN_STACK_BYTES`]`..=`[`MAX_STACK_BYTES`].
    pub stack_bytes: u32,
    pub _pad2: u32,
}

const _: () = assert!(size_of::<Config>() == 24 + 16 * MAX_CGROUPS + 16);

impl Config {
    /// The bit of [`Config::stack_syscalls`] for `kind`.
    pub const fn stack_bit(kind: EventKind) -> u32 {
        1 << (kind as u16 & 31)
    }
}

/// Byte offsets of the kernel struct members the programs walk, read by user space from
/// /sys/kernel/btf/vmlinux and passed in through the `OFFSETS` global (aya 0.14 has no CO-RE for
/// Rust programs).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelOffsets {
    /// `task_struct.files`
    pub task_files: u32,
    /// `task_struct.real_parent`
    pub task_real_parent: u32,
    /// `task_struct.tgid`
    pub task_tgid: u32,
    /// `task_struct.pid`
    pub task_pid: u32,
    /// `task_struct.exit_code`
    pub task_exit_code: u32,
    /// `task_struct.group_leader`
    pub task_group_leader: u32,
    /// `task_struct.thread_pid`
    pub task_thread_pid: u32,
    /// `pid.level`
    pub pid_level: u32,
    /// `pid.numbers` (array of `struct upid { int nr; struct pid_namespace *ns; }`)
    pub pid_numbers: u32,
    /// `sizeof(struct upid)`
    pub upid_size: u32,
    /// `upid.ns`
    pub upid_ns: u32,
    /// `pid_namespace.ns` + `ns_common.inum`
    pub pidns_inum: u32,
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdt_max_fds: u32,
    /// `fdtable.fd`
    pub fdt_fd: u32,
    /// `file.f_path` + `path.mnt`
    pub file_vfsmount: u32,
    /// `file.f_path` + `path.dentry`
    pub file_dentry: u32,
    /// `file.f_inode`
    pub file_inode: u32,
    /// `inode.i_ino`
    pub inode_ino: u32,
    /// `inode.i_sb`
    pub inode_sb: u32,
    /// `super_block.s_dev`
    pub sb_dev: u32,
    /// `dentry.d_name` + `qstr.name`
    pub dentry_name: u32,
    /// `dentry.d_parent`
    pub dentry_parent: u32,
    /// `dentry.d_hash` + `hlist_bl_node.pprev` (NULL when unhashed)
    pub dentry_hash_pprev: u32,
    /// `vfsmount.mnt_root`
    pub vfsmount_root: u32,
    /// `mount.mnt` (the vfsmount embedded in struct mount)
    pub mount_mnt: u32,
    /// `mount.mnt_parent`
    pub mount_parent: u32,
    /// `mount.mnt_mountpoint`
    pub mount_mountpoint: u32,
    /// `linux_binprm.filename`
    pub binprm_filename: u32,
    /// `task_struct.thread_info` + `thread_info.status` (x86: `TS_COMPAT` marks an ia32
    /// system call in progress)
    pub task_ti_status: u32,
    /// `task_struct.cred`
    pub task_cred: u32,
    /// `cred.uid`
    pub cred_uid: u32,
    /// `cred.gid`
    pub cred_gid: u32,
    /// `task_struct.cgroups`
    pub task_cgroups: u32,
    /// `css_set.dfl_cgrp`
    pub css_set_dfl_cgrp: u32,
    /// `cgroup.kn`
    pub cgroup_kn: u32,
    /// `kernfs_node.id`
    pub kernfs_node_id: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 37 * 4);

#[cfg(feature = "user")]
// SAFETY: KernelOffsets is #[repr(C)] and made only of u32 fields with no padding, so every bit
// pattern is valid and it may be copied into the eBPF object's .rodata.
unsafe impl aya::Pod for KernelOffsets {}

#[cfg(feature = "user")]
// SAFETY: Config and CgroupTarget are #[repr(C)] with explicit padding fields and integer
// members only: no implicit padding, every bit pattern valid.
unsafe impl aya::Pod for Config {}

#[cfg(feature = "user")]
// SAFETY: as above: #[repr(C)], integers only, explicit padding.
unsafe impl aya::Pod for LossWindow {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_round_trips_through_its_raw_value() {
        for &kind in EventKind::ALL {
            assert_eq!(EventKind::try_from(kind as u16), Ok(kind));
            // A kind records a system call exactly when it stores arguments.
            assert_eq!(
                kind.syscall_name().is_some(),
                kind.syscall_args() > 0,
                "{kind:?}"
            );
        }
        assert_eq!(EventKind::try_from(0), Err(0));
    }

    #[test]
    fn a_header_round_trips_through_its_bytes() {
        let head = RecordHeader {
            event: EventKind::Lost as u16,
            cpu: 3,
            ts_enter_ns: 10,
            ts_exit_ns: 20,
            args: [7, 0, 0, 0, 0, 0],
            comm: *b"0123456789abcde\0",
            ..Default::default()
        };
        let bytes = head.to_bytes();
        let decoded = RecordRef::decode(&bytes).expect("a whole header");
        assert_eq!(decoded.head, head);
        assert!(decoded.path.is_empty());
        assert_eq!(decoded.stack, None);
    }

    #[test]
    fn a_batch_item_yields_its_headers_and_any_other_item_itself() {
        let head = |ts: u64, flags: u16| RecordHeader {
            event: EventKind::Munmap as u16,
            flags,
            ts_enter_ns: ts,
            ..Default::default()
        };
        let mut batch = [0u8; 3 * RECORD_HEADER];
        for (ts, chunk) in (1..=3).zip(batch.chunks_exact_mut(RECORD_HEADER)) {
            chunk.copy_from_slice(&head(ts, record_flags::BATCHED).to_bytes());
        }
        let times = batch_items(&batch).map(|b| RecordRef::decode(b).expect("a header").head);
        assert!(times.map(|h| h.ts_enter_ns).eq([1, 2, 3]));
        // A record with a path, whose length happens to be two headers: one item.
        let (bytes, len) = item(&[b'x'; RECORD_HEADER], None);
        assert_eq!(len, 2 * RECORD_HEADER);
        assert!(batch_items(&bytes[..len]).eq([&bytes[..len]]));
        // Shorter than a header: passed on whole, for the decoder to refuse.
        assert_eq!(batch_items(&batch[..7]).count(), 1);
        // A torn batch yields its whole headers only.
        assert_eq!(batch_items(&batch[..2 * RECORD_HEADER + 5]).count(), 2);
    }

    /// An item as the kernel side builds it: header, path padded to 8, stack header, data.
    fn item(path: &[u8], stack: Option<(StackHeader, &[u8])>) -> ([u8; 4096], usize) {
        let mut head = RecordHeader {
            event: EventKind::Mmap as u16,
            path_len: path.len() as u16,
            ..Default::default()
        };
        if stack.is_some() {
            head.flags |= record_flags::HAS_STACK;
        }
        let mut bytes = [0u8; 4096];
        bytes[..RECORD_HEADER].copy_from_slice(&head.to_bytes());
        bytes[RECORD_HEADER..RECORD_HEADER + path.len()].copy_from_slice(path);
        let mut len = stack_offset(path.len());
        if let Some((sh, data)) = stack {
            bytes[len..len + STACK_HEADER].copy_from_slice(&sh.to_bytes());
            len += STACK_HEADER;
            bytes[len..len + data.len()].copy_from_slice(data);
            len += data.len();
        }
        (bytes, len)
    }

    fn fp_header(len: usize) -> StackHeader {
        StackHeader {
            mode: stack_mode::FP,
            len: len as u32,
            ip: 0x401000,
            sp: 0x7ffc_0000_1000,
            bp: 0x7ffc_0000_1100,
            leaf_ret: 0x401234,
        }
    }

    #[test]
    fn a_whole_stack_decodes_after_a_padded_path() {
        let mut frames = [0u8; 24];
        for (i, f) in [0x401000u64, 0x402000, 0x403000].iter().enumerate() {
            frames[i * 8..i * 8 + 8].copy_from_slice(&f.to_ne_bytes());
        }
        // A 5-byte path: the stack header starts at the next multiple of 8.
        let (bytes, len) = item(b"a\0bc\0", Some((fp_header(24), &frames)));
        assert_eq!(stack_offset(5), RECORD_HEADER + 8);
        let rec = RecordRef::decode(&bytes[..len]).expect("whole");
        assert_eq!(rec.path, b"a\0bc\0");
        let stack = rec.stack.expect("a stack");
        assert_eq!(stack.head, fp_header(24));
        let got: [u64; 3] = {
            let mut out = [0u64; 3];
            for (slot, f) in out.iter_mut().zip(stack.frames()) {
                *slot = f;
            }
            out
        };
        assert_eq!(got, [0x401000, 0x402000, 0x403000]);
        assert_eq!(stack.frames().count(), 3);

        // DWARF: the data is the stack copy, and has no frames.
        let copy = [0xabu8; 64];
        let dwarf = StackHeader {
            mode: stack_mode::DWARF,
            len: 64,
            ..fp_header(0)
        };
        let (bytes, len) = item(b"", Some((dwarf, &copy)));
        let stack = RecordRef::decode(&bytes[..len])
            .expect("whole")
            .stack
            .expect("a stack");
        assert_eq!(stack.data, &copy[..]);
        assert_eq!(stack.frames().count(), 0);
    }

    #[test]
    fn a_torn_stack_is_refused_at_every_length() {
        let frames = [7u8; 16];
        let (bytes, len) = item(b"lib.so\0", Some((fp_header(16), &frames)));
        assert!(RecordRef::decode(&bytes[..len]).is_some());
        // Cut anywhere after the path: in the stack header or in the frames.
        for cut in stack_offset(7)..len {
            assert_eq!(RecordRef::decode(&bytes[..cut]), None, "cut at {cut}");
        }
    }

    #[test]
    fn lying_stack_headers_are_refused() {
        let data = [0u8; 256];
        let lies = [
            // Longer than the item.
            fp_header(264),
            // More frames than the kernel ever writes.
            fp_header((MAX_STACK_FRAMES + 1) * 8),
            // Not whole frames.
            fp_header(12),
            // Unknown modes.
            StackHeader {
                mode: stack_mode::NONE,
                ..fp_header(8)
            },
            StackHeader {
                mode: 7,
                ..fp_header(8)
            },
            // A dwarf copy larger than the most the kernel copies.
            StackHeader {
                mode: stack_mode::DWARF,
                len: u32::MAX,
                ..fp_header(0)
            },
        ];
        for lie in lies {
            let (bytes, len) = item(b"", Some((lie, &data)));
            assert_eq!(RecordRef::decode(&bytes[..len]), None, "{lie:?}");
        }
        // HAS_STACK on a record that ends after its path.
        let (mut bytes, len) = item(b"x\0", None);
        bytes[2] = record_flags::HAS_STACK as u8;
        assert_eq!(RecordRef::decode(&bytes[..len]), None);
        // A path_len pointing past the end never reaches the stack.
        let (mut bytes, len) = item(b"", Some((fp_header(0), &[])));
        bytes[RECORD_HEADER - COMM_LEN - 4] = 0xff;
        assert_eq!(RecordRef::decode(&bytes[..len]), None);
    }
}
