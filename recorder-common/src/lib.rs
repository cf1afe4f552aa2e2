//! Records and configuration shared by the kernel side (`recorder-ebpf`) and `mmap-recorder`.
//!
//! This is the kernel ABI of mmap-capture: plain `#[repr(C)]` structs with explicit padding and
//! raw integers instead of Rust enums. It knows nothing of Arrow or Parquet; the conversion into
//! capture rows lives in `mmap-recorder` (`recorder/src/convert.rs`).
#![no_std]

use core::mem::size_of;

/// Length of `task_struct::comm`.
pub const COMM_LEN: usize = 16;
/// Bytes reserved in a record for the mapped file's name or path (NUL terminated when shorter).
pub const PATH_LEN: usize = 256;

/// `SyscallRecord::event` values. Raw integers cross the boundary; user space converts them with
/// [`EventKind::try_from`].
#[repr(u16)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventKind {
    Mmap = 1,
}

impl TryFrom<u16> for EventKind {
    type Error = u16;
    fn try_from(raw: u16) -> Result<Self, u16> {
        match raw {
            1 => Ok(Self::Mmap),
            other => Err(other),
        }
    }
}

/// Bits of [`SyscallRecord::file_flags`].
pub mod file_flags {
    /// The kernel found a `struct file` for the call's fd; `file_dev`, `file_ino` and `path` are set.
    pub const HAS_FILE: u16 = 1 << 0;
    /// `path` holds only the last path component (the dentry name), not a full path.
    pub const BASENAME_ONLY: u16 = 1 << 1;
    /// The name did not fit in `path` and was cut.
    pub const TRUNCATED: u16 = 1 << 2;
}

/// One completed system call, emitted by the exit program into the ring buffer.
///
/// `args` holds the raw system-call arguments in order. For mmap they are
/// `addr, len, prot, flags, fd, off`; `fd` arrives as an unsigned long, so -1 is 0xffffffff
/// after the tracepoint's truncation and must be read as `args[4] as u32 as i32`.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct SyscallRecord {
    /// `bpf_ktime_get_boot_ns()` at syscall entry.
    pub ts_enter_ns: u64,
    /// `bpf_ktime_get_boot_ns()` at syscall exit.
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
    pub cpu: u32,
    /// `inode->i_sb->s_dev` in the kernel's encoding (major << 20 | minor).
    pub file_dev: u32,
    /// An [`EventKind`] as a raw integer.
    pub event: u16,
    /// [`file_flags`] bits.
    pub file_flags: u16,
    pub comm: [u8; COMM_LEN],
    /// File name (for now the dentry's basename), NUL terminated when shorter than the buffer.
    pub path: [u8; PATH_LEN],
}

const _: () = assert!(size_of::<SyscallRecord>() == 392);

impl SyscallRecord {
    /// An all-zero record.
    pub const ZERO: Self = Self {
        ts_enter_ns: 0,
        ts_exit_ns: 0,
        args: [0; 6],
        ret: 0,
        cgroup_id: 0,
        file_ino: 0,
        tgid: 0,
        tid: 0,
        ppid: 0,
        uid: 0,
        gid: 0,
        cpu: 0,
        file_dev: 0,
        event: 0,
        file_flags: 0,
        comm: [0; COMM_LEN],
        path: [0; PATH_LEN],
    };

    /// Decodes a record from ring-buffer bytes: checks the length, then reads unaligned.
    pub fn from_bytes(bytes: &[u8]) -> Option<Self> {
        if bytes.len() < size_of::<Self>() {
            return None;
        }
        // SAFETY: the slice holds at least size_of::<Self>() bytes, every bit pattern is a valid
        // SyscallRecord (integers and byte arrays only), and read_unaligned has no alignment need.
        Some(unsafe { core::ptr::read_unaligned(bytes.as_ptr().cast::<Self>()) })
    }
}

/// Indices into the kernel side's per-CPU `COUNTERS` array.
pub mod counters {
    /// Records the exit program could not reserve in the ring buffer (it was full).
    pub const LOST_RINGBUF_FULL: u32 = 0;
    /// Exits of a targeted thread without a stored entry (the call began before attach, or its
    /// entry could not be stored).
    pub const ORPHAN_EXIT: u32 = 1;
    /// Entries that could not be stored because the per-thread entry map was full.
    pub const ENTRY_MAP_FULL: u32 = 2;
    /// Records submitted to the ring buffer.
    pub const EMITTED: u32 = 3;
    /// Number of counters.
    pub const COUNT: u32 = 4;
}

/// Values of the `FILTER_MODE` global.
pub mod filter_mode {
    /// Record every process but the recorder itself.
    pub const ALL: u32 = 0;
    /// Record only the tgids present in the `TARGET_TGIDS` map.
    pub const TARGETS: u32 = 1;
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
    /// `files_struct.fdt`
    pub files_fdt: u32,
    /// `fdtable.max_fds`
    pub fdt_max_fds: u32,
    /// `fdtable.fd`
    pub fdt_fd: u32,
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
}

const _: () = assert!(size_of::<KernelOffsets>() == 48);

#[cfg(feature = "user")]
// SAFETY: KernelOffsets is #[repr(C)], made only of u32 fields with no padding, so every bit
// pattern is valid and it may be copied into the eBPF object's .rodata.
unsafe impl aya::Pod for KernelOffsets {}
