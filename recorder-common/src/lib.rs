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
const _: () = assert!(size_of::<RecordHeader>() == RECORD_HEADER);

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

/// A record read from the ring buffer: its header and the used part of its path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordRef<'a> {
    pub head: RecordHeader,
    pub path: &'a [u8],
}

impl<'a> RecordRef<'a> {
    /// Decodes ring-buffer bytes: checks the lengths, then reads the header unaligned.
    pub fn decode(bytes: &'a [u8]) -> Option<Self> {
        if bytes.len() < RECORD_HEADER {
            return None;
        }
        // SAFETY: the slice holds at least RECORD_HEADER = size_of::<RecordHeader>() bytes, every
        // bit pattern is a valid RecordHeader (integers and byte arrays), and read_unaligned has
        // no alignment requirement.
        let head = unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<RecordHeader>()) };
        let path = bytes[RECORD_HEADER..].get(..head.path_len as usize)?;
        Some(Self { head, path })
    }
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
    pub _pad: u32,
}

const _: () = assert!(size_of::<KernelOffsets>() == 30 * 4);

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
    }
}
