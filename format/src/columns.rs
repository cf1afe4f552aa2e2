//! Every column of a capture, described once.
//!
//! The table below gives each column, in schema order: its name constant and name, the
//! [`Event`] field that holds it (with the field's docs) or, for a derived column, the `Event`
//! method that computes it, its Rust type (`Option<_>` makes it nullable) and its Arrow type
//! (one of the storages of [`cell`]). Columns come in groups, one per minor version of format
//! 1: a group's minor is the version that added its columns.
//!
//! `define_columns!` ([`define`]) turns the table into `col::*`, [`COLUMNS`], the [`Event`]
//! struct, the writer's builders and the reader's decoder; [`crate::schema`],
//! [`crate::event`], [`crate::writer`] and [`crate::reader`] use those.
//!
//! Adding a column (say a u64 `pgoff_pages` in format 1.3): bump [`crate::FORMAT_MINOR`], add
//! a group `ADDED_IN_1_3 = minor 3, Sparse { PGOFF_PAGES "pgoff_pages" => /// docs pub
//! pgoff_pages: Option<u64> as UInt64; }` at the end, and describe the column in
//! docs/FORMAT.md. Columns added by a minor must be nullable (older files read as nulls
//! there); the writer builds them as [`cell::Sparse`] columns, cheap while they are null.

mod cell;
#[macro_use]
mod define;

use std::borrow::Cow;

use arrow_array::{ArrayRef, RecordBatch};

use self::cell::{
    Boolean, Cell, Dense, Int32, Int64, IntoStatic, Names, NullArrays, Read, Sparse, Storage, Text,
    Timestamp, UInt32, UInt64, read_column,
};
use crate::{
    FormatError,
    event::{RowKind, Syscall},
    schema::{Column, Value},
};

define_columns! {
    /// The columns of format 1.0, in schema order.
    V1_0 = minor 0, Dense {
        KIND "kind" =>
            /// What the row describes.
            pub kind: RowKind as Names<RowKind>;
        SYSCALL "syscall" =>
            /// The system call of a `syscall` row.
            pub syscall: Option<Syscall> as Names<Syscall>;
        TS "ts" =>
            /// Wall-clock time of syscall entry (or of the event), ns since the Unix epoch (UTC).
            pub ts_ns: i64 as Timestamp;
        TS_EXIT "ts_exit" =>
            /// Wall-clock time of syscall exit, ns since the Unix epoch (UTC).
            pub ts_exit_ns: Option<i64> as Timestamp;
        CPU "cpu" =>
            /// The CPU the call entered on.
            pub cpu: u32 as UInt32;
        PID "pid" =>
            /// Process id (kernel tgid).
            pub pid: u32 as UInt32;
        TID "tid" =>
            /// Thread id (kernel pid).
            pub tid: u32 as UInt32;
        PPID "ppid" =>
            /// Parent's process id (`real_parent->tgid`).
            pub ppid: u32 as UInt32;
        UID "uid" =>
            /// User id of the thread.
            pub uid: u32 as UInt32;
        GID "gid" =>
            /// Group id of the thread.
            pub gid: u32 as UInt32;
        COMM "comm" =>
            /// Thread name (`task->comm`), lossy UTF-8.
            pub comm: Cow<'a, str> as Text;
        CGROUP_ID "cgroup_id" =>
            /// cgroup v2 id.
            pub cgroup_id: u64 as UInt64;
        ADDR "addr" =>
            /// The `addr` argument.
            pub addr: Option<u64> as UInt64;
        LEN "len" =>
            /// The `length` argument, bytes.
            pub len: Option<u64> as UInt64;
        PROT "prot" =>
            /// The `prot` argument, `PROT_*` bits.
            pub prot: Option<u64> as UInt64;
        FLAGS "flags" =>
            /// The `flags` argument, `MAP_*` (mremap: `MREMAP_*`) bits.
            pub flags: Option<u64> as UInt64;
        FD "fd" =>
            /// The `fd` argument.
            pub fd: Option<i32> as Int32;
        OFF "off" =>
            /// The `offset` argument, bytes.
            pub off: Option<u64> as UInt64;
        RET "ret" =>
            /// Return value: an address, 0, or `-errno`.
            pub ret: Option<i64> as Int64;
        ERRNO "errno" => fn errno: Option<i32> as Int32;
        FILE_DEV "file_dev" =>
            /// Device of the mapped file, user-space `st_dev` encoding (see
            /// [`crate::names::makedev`]).
            pub file_dev: Option<u64> as UInt64;
        FILE_INO "file_ino" =>
            /// Inode number of the mapped file.
            pub file_ino: Option<u64> as UInt64;
        FILE_NAME "file_name" =>
            /// The mapped file's name (last path component only).
            pub file_name: Option<Cow<'a, str>> as Text;
    }

    /// The columns added by format 1.1, in schema order (after [`V1_0`]).
    ADDED_IN_1_1 = minor 1, Sparse {
        SOURCE "source" =>
            /// How the row was obtained (1.1), one of [`sources`](crate::event::sources).
            pub source: Option<Cow<'a, str>> as Text;
        NEW_ADDR "new_addr" =>
            /// mremap: the `new_address` argument (1.1).
            pub new_addr: Option<u64> as UInt64;
        NEW_LEN "new_len" =>
            /// mremap: the `new_len` argument (1.1).
            pub new_len: Option<u64> as UInt64;
        CHILD_PID "child_pid" =>
            /// fork: process id of the new process (1.1).
            pub child_pid: Option<u32> as UInt32;
        EXIT_CODE "exit_code" =>
            /// exit: the exit status as wait(2) encodes it, `task->exit_code` (1.1).
            pub exit_code: Option<i32> as Int32;
        FILE_PATH "file_path" =>
            /// Full path of the mapped or exec'd file, or a pseudo path such as `[heap]` (1.1).
            pub file_path: Option<Cow<'a, str>> as Text;
        PATH_SOURCE "path_source" =>
            /// Where `file_path` came from (1.1), one of
            /// [`path_sources`](crate::event::path_sources).
            pub path_source: Option<Cow<'a, str>> as Text;
        PATH_TRUNCATED "path_truncated" =>
            /// `file_path` is incomplete and starts with `…/` (1.1).
            pub path_truncated: Option<bool> as Boolean;
        FILE_DELETED "file_deleted" =>
            /// The file had been unlinked (1.1).
            pub file_deleted: Option<bool> as Boolean;
        FILE_MEMFD "file_memfd" =>
            /// The file is a memfd; `file_path` is `/memfd:NAME` (1.1).
            pub file_memfd: Option<bool> as Boolean;
        CGROUP_PATH "cgroup_path" =>
            /// cgroup v2 path of `cgroup_id`, relative to the cgroup2 mount (1.1).
            pub cgroup_path: Option<Cow<'a, str>> as Text;
        PIDNS_INO "pidns_ino" =>
            /// Inode number of the thread's pid namespace (1.1).
            pub pidns_ino: Option<u32> as UInt32;
        NS_PID "ns_pid" =>
            /// Process id inside that pid namespace (1.1).
            pub ns_pid: Option<u32> as UInt32;
        NS_TID "ns_tid" =>
            /// Thread id inside that pid namespace (1.1).
            pub ns_tid: Option<u32> as UInt32;
        LOST_COUNT "lost_count" =>
            /// lost rows: records the kernel could not deliver on `cpu` between `ts` and
            /// `ts_exit` (1.1).
            pub lost_count: Option<u64> as UInt64;
    }

    /// The columns added by format 1.2, in schema order (after [`ADDED_IN_1_1`]).
    ADDED_IN_1_2 = minor 2, Sparse {
        PATH_LOSSY "path_lossy" =>
            /// `file_path` (and `file_name`) were not valid UTF-8: each invalid byte sequence was
            /// replaced by U+FFFD, so the text is not the exact name (1.2). Set wherever
            /// `file_path` is; null in older files.
            pub path_lossy: Option<bool> as Boolean;
    }

    /// The columns added by format 1.4 (user call stacks), in schema order (after
    /// [`ADDED_IN_1_2`]; 1.3 added no column).
    ADDED_IN_1_4 = minor 4, Sparse {
        STACK_ID "stack_id" =>
            /// `syscall` rows: the id of the call's user call stack (null: none recorded);
            /// `frame` rows: the stack the frame belongs to. Unique within one recording (1.4).
            pub stack_id: Option<u64> as UInt64;
        FRAME_INDEX "frame_index" =>
            /// `frame` rows: 0 = the innermost frame (the instruction in the system-call
            /// wrapper), then its callers outward (1.4).
            pub frame_index: Option<u32> as UInt32;
        FRAME_ADDR "frame_addr" =>
            /// `frame` rows: the address in the process: the user instruction pointer at the
            /// call for frame 0, a return address for the others (1.4).
            pub frame_addr: Option<u64> as UInt64;
        FRAME_MODULE "frame_module" =>
            /// `frame` rows: path of the mapped file holding the address, as the process mapped
            /// it (null: no file maps it) (1.4).
            pub frame_module: Option<Cow<'a, str>> as Text;
        FRAME_BUILD_ID "frame_build_id" =>
            /// `frame` rows: the module's GNU build id, lowercase hex (1.4).
            pub frame_build_id: Option<Cow<'a, str>> as Text;
        FRAME_OFFSET "frame_offset" =>
            /// `frame` rows: the file offset of `frame_addr` in the module (1.4).
            pub frame_offset: Option<u64> as UInt64;
        FRAME_FUNCTION "frame_function" =>
            /// `frame` rows: the demangled name of the function holding the frame (1.4).
            pub frame_function: Option<Cow<'a, str>> as Text;
        FRAME_FILE "frame_file" =>
            /// `frame` rows: the source file, when debug information was there (1.4).
            pub frame_file: Option<Cow<'a, str>> as Text;
        FRAME_LINE "frame_line" =>
            /// `frame` rows: the source line, when debug information was there (1.4).
            pub frame_line: Option<u32> as UInt32;
        SYMBOL_SOURCE "symbol_source" =>
            /// `frame` rows: how the frame was named, one of
            /// [`symbol_sources`](crate::event::symbol_sources); null: not named (1.4).
            pub symbol_source: Option<Cow<'a, str>> as Text;
    }
}
