//! One row of a capture, as Rust values: [`Event`] (declared by the column table,
//! format/src/columns.rs), and the values of its enum and string columns.

use std::{fmt, str::FromStr};

pub use crate::columns::Event;

/// The highest `ret` value that encodes an error: the kernel returns `-errno` with
/// `1 <= errno <= 4095` (`MAX_ERRNO`).
pub const MAX_ERRNO: i64 = 4095;

/// Declares an enum stored by name (the `kind` and `syscall` columns), each variant with its
/// stored name, once, and adds the variant `Other`. Yields `ALL` (every variant but `Other`, in dictionary order), `as_str`,
/// `index`, `from_name`, `FromStr` and `Display`. A name this version does not know reads as
/// `Other`, which is never written.
macro_rules! stored_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident ($what:literal) {
            $( $(#[$variant_meta:meta])* $variant:ident = $stored:literal, )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$variant_meta])* $variant, )*
            #[doc = concat!("A ", $what, " this version does not know (read only).")]
            Other,
        }

        impl $name {
            /// Every value this version knows and writes, in dictionary order (`Other`
            /// excluded).
            pub const ALL: [Self; [$($stored),*].len()] = [$(Self::$variant),*];

            /// The value stored in the column; `"other"` for `Other`, which is only ever read,
            /// never stored.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $stored,)*
                    Self::Other => "other",
                }
            }

            /// The position in [`Self::ALL`]; `None` for `Other`.
            pub(crate) const fn index(self) -> Option<usize> {
                match self {
                    Self::Other => None,
                    known => Some(known as usize),
                }
            }

            /// Parses a stored name: a known value, or `Other` for any other string.
            pub fn from_name(name: &str) -> Self {
                name.parse().unwrap_or(Self::Other)
            }
        }

        impl FromStr for $name {
            type Err = UnknownName;

            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Self::ALL
                    .into_iter()
                    .find(|value| value.as_str() == s)
                    .ok_or_else(|| UnknownName {
                        what: $what,
                        value: s.to_owned(),
                    })
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

stored_enum! {
    /// What a row describes (`kind` column).
    ///
    /// A name this crate does not know (a kind added by a later minor version) decodes as
    /// [`RowKind::Other`] instead of failing, so that older readers keep reading newer minors.
    /// `Other` is never written: [`crate::writer::CaptureWriter::push`] refuses it.
    ///
    /// The default is [`RowKind::Syscall`] (as in [`Event::default`]).
    #[derive(Default)]
    pub enum RowKind ("row kind") {
        /// One system call, entry and exit.
        #[default]
        Syscall = "syscall",
        /// One line of `/proc/PID/maps`, read at capture start or after an exec.
        Snapshot = "snapshot",
        /// A new process (not a thread).
        Fork = "fork",
        /// A successful exec.
        Exec = "exec",
        /// A whole process ended.
        Exit = "exit",
        /// Records the kernel could not deliver.
        Lost = "lost",
        /// One frame of a user call stack (1.4).
        Frame = "frame",
    }
}

stored_enum! {
    /// The system call of a `syscall` row (`syscall` column).
    ///
    /// Like [`RowKind`], a name this crate does not know decodes as [`Syscall::Other`], which is
    /// never written.
    pub enum Syscall ("syscall") {
        Mmap = "mmap",
        Munmap = "munmap",
        Mremap = "mremap",
        Mprotect = "mprotect",
        Brk = "brk",
    }
}

impl Syscall {
    /// Whether a successful call returns an address (mmap, mremap, brk) rather than 0: what a
    /// reader shows in hex. A new system call must answer here (the match is exhaustive).
    pub const fn returns_address(self) -> bool {
        match self {
            Self::Mmap | Self::Mremap | Self::Brk => true,
            Self::Munmap | Self::Mprotect | Self::Other => false,
        }
    }
}

/// Values of the `source` column: how a row was obtained.
pub mod sources {
    /// Rows from eBPF programs attached to tracepoints.
    pub const TRACEPOINT: &str = "tracepoint";
    /// Rows from an eBPF program attached to the exit tracepoints only: the call's time is its
    /// exit, `ts_exit_ns` is null and its duration is not known.
    pub const TRACEPOINT_EXIT: &str = "tracepoint_exit";
    /// Rows from eBPF programs attached to raw tracepoints.
    pub const RAW_TRACEPOINT: &str = "raw_tracepoint";
    /// Rows from eBPF programs attached to the BTF-typed `sys_enter`/`sys_exit` tracepoints
    /// (tp_btf) (1.6).
    pub const TP_BTF: &str = "tp_btf";
    /// Rows from an eBPF program attached to the BTF-typed `sys_exit` tracepoint only: as
    /// [`TRACEPOINT_EXIT`], the call's time is its exit and `ts_exit_ns` is null (1.6).
    pub const TP_BTF_EXIT: &str = "tp_btf_exit";

    /// Whether rows of this `source` (or a capture of this `attach_mode`) are calls recorded at
    /// their exit only: no entry time, no duration.
    pub fn exit_only(source: &str) -> bool {
        source == TRACEPOINT_EXIT || source == TP_BTF_EXIT
    }
    /// Rows from eBPF programs attached to kprobes.
    pub const KPROBE: &str = "kprobe";
    /// Rows from eBPF programs attached with fentry/fexit.
    pub const FENTRY: &str = "fentry";
    /// Snapshot rows read from `/proc/PID/maps` at capture start.
    pub const PROC_MAPS_START: &str = "proc_maps:start";
    /// Snapshot rows read from `/proc/PID/maps` after an exec.
    pub const PROC_MAPS_EXEC: &str = "proc_maps:exec";
    /// Lost rows, counted by the kernel side.
    pub const KERNEL: &str = "kernel";
    /// Frame rows of a stack the kernel walked by frame pointers (1.4).
    pub const STACK_FP: &str = "stack_fp";
    /// Frame rows of a stack unwound in user space from DWARF call-frame information over a
    /// copy of the top of the user stack (1.4).
    pub const STACK_DWARF: &str = "stack_dwarf";
}

/// Values of the `symbol_source` column (1.4): how a frame was named.
pub mod symbol_sources {
    /// The module was read through `/proc/PID/map_files/...` while the process lived.
    pub const MAP_FILES: &str = "map_files";
    /// The module was read from its path after the process was gone, the file's device and inode
    /// checked against those of the mapping.
    pub const PATH: &str = "path";
    /// Named afterwards by `mmap-analyze symbolize` from a debug directory, by build id.
    pub const DEBUG_DIR: &str = "debug_dir";
}

/// Values of the `path_source` column: where `file_path` came from.
pub mod path_sources {
    /// A bounded walk of the dentry chain in the kernel at syscall entry.
    pub const KERNEL_DENTRY_WALK: &str = "kernel_dentry_walk";
    /// readlink of `/proc/PID/map_files/...` in user space after the call (may be stale).
    pub const PROC_MAP_FILES: &str = "proc_map_files";
    /// readlink of `/proc/PID/fd/N` in user space after the call (may be stale).
    pub const PROC_FD: &str = "proc_fd";
    /// The pathname column of `/proc/PID/maps` (snapshot rows).
    pub const PROC_MAPS: &str = "proc_maps";
    /// The file name passed to exec.
    pub const EXEC_FILENAME: &str = "exec_filename";
}

/// A string that is not a known [`RowKind`] or [`Syscall`].
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown {what} {value:?}")]
pub struct UnknownName {
    /// "row kind" or "syscall".
    pub what: &'static str,
    /// The string that did not match.
    pub value: String,
}

impl Event<'_> {
    /// `-ret` when `-4095 <= ret <= -1`, else `None`.
    #[inline]
    pub fn errno(&self) -> Option<i32> {
        errno_from_ret(self.ret?)
    }
}

/// The errno encoded in a syscall return value: `-ret` when `-4095 <= ret <= -1`, else `None`.
#[inline]
pub fn errno_from_ret(ret: i64) -> Option<i32> {
    if (-MAX_ERRNO..=-1).contains(&ret) {
        // -4095..=-1 negated fits in i32.
        i32::try_from(-ret).ok()
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for kind in RowKind::ALL {
            assert_eq!(kind.as_str().parse::<RowKind>(), Ok(kind));
            assert_eq!(RowKind::from_name(kind.as_str()), kind);
        }
        for syscall in Syscall::ALL {
            assert_eq!(syscall.as_str().parse::<Syscall>(), Ok(syscall));
            assert_eq!(Syscall::from_name(syscall.as_str()), syscall);
        }
        assert_eq!(Syscall::Mprotect.as_str(), "mprotect");
        assert_eq!(RowKind::Syscall.to_string(), "syscall");
        assert_eq!(RowKind::Lost.to_string(), "lost");
        let err = "teleport"
            .parse::<RowKind>()
            .expect_err("teleport is not a 1.1 kind");
        assert_eq!(err.to_string(), "unknown row kind \"teleport\"");
        assert!("MMAP".parse::<Syscall>().is_err());
        // Other is what unknown names decode to; its display name is not itself a known name.
        assert_eq!(RowKind::from_name("teleport"), RowKind::Other);
        assert_eq!(RowKind::from_name("other"), RowKind::Other);
        assert!("other".parse::<RowKind>().is_err());
        assert_eq!(Syscall::from_name("mseal"), Syscall::Other);
        assert_eq!(RowKind::Other.index(), None);
        assert_eq!(Syscall::Other.index(), None);
        for (i, kind) in RowKind::ALL.into_iter().enumerate() {
            assert_eq!(kind.index(), Some(i));
        }
        for (i, syscall) in Syscall::ALL.into_iter().enumerate() {
            assert_eq!(syscall.index(), Some(i));
        }
    }

    #[test]
    fn default_is_an_empty_syscall_row() {
        let event = Event::default();
        assert_eq!(event.kind, RowKind::Syscall);
        assert_eq!((event.syscall, event.ts_ns, event.pid), (None, 0, 0));
        assert_eq!(event.comm, "");
        assert_eq!((event.file_path, event.lost_count), (None, None));
        let exit = Event {
            kind: RowKind::Exit,
            exit_code: Some(256),
            ..Default::default()
        };
        assert_eq!(exit.clone().into_owned(), exit);
    }

    #[test]
    fn errno_is_derived_from_ret() {
        assert_eq!(errno_from_ret(-1), Some(1));
        assert_eq!(errno_from_ret(-9), Some(9));
        assert_eq!(errno_from_ret(-22), Some(22));
        assert_eq!(errno_from_ret(-4095), Some(4095));
        assert_eq!(errno_from_ret(-4096), None);
        assert_eq!(errno_from_ret(0), None);
        assert_eq!(errno_from_ret(1), None);
        assert_eq!(errno_from_ret(i64::MIN), None);
        // A high user-space address read as i64 stays an address.
        assert_eq!(errno_from_ret(0x7f12_3456_7000), None);
    }
}
