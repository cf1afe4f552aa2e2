//! Views over `events` for people: one per kind of row, with the columns that kind uses and the
//! raw numbers decoded beside them.
//!
//! | view        | rows (`kind`)          | decoded columns                                     |
//! |-------------|------------------------|-----------------------------------------------------|
//! | `calls`     | `syscall`              | `dur_ns`, `prot_names`, `flags_names`, `errno_name` |
//! | `lifecycle` | `fork`, `exec`, `exit` |                                                     |
//! | `snapshots` | `snapshot`             | `prot_names`, `flags_names`                         |
//! | `lost`      | `lost`                 |                                                     |
//!
//! `calls` has `stack_id` (format 1.4), to join the call-stack views of [`super::stacks`].
//!
//! Every view ends with `capture_id`, `host`, `file`, `date` and the other partition columns of
//! the inputs (Hive-style trees). A filter on a view reaches the Parquet scans below it like a
//! filter on `events`.

use arrow::datatypes::DataType;
use datafusion::logical_expr::{Expr, cast, col, lit};
use mmap_format::{event::RowKind, schema::col::*};

use super::{
    lazy::Tables,
    tables::{CAPTURE_ID, DATE, EVENTS, FILE, HOST},
    udf::Decoder,
};

/// A column of a view.
enum Column {
    /// A column of `events`, as it is.
    Events(&'static str),
    /// A column computed from those of `events`.
    Derived(&'static str, fn() -> Expr),
}

use Column::{Derived, Events};

/// Who made the row: process, thread, parent, credentials, name, CPU.
const WHO: &[Column] = &[
    Events(PID),
    Events(TID),
    Events(PPID),
    Events(UID),
    Events(GID),
    Events(COMM),
    Events(CPU),
];

/// The file behind a mapping.
const MAPPED_FILE: &[Column] = &[
    Events(FILE_DEV),
    Events(FILE_INO),
    Events(FILE_NAME),
    Events(FILE_PATH),
    Events(PATH_SOURCE),
    Events(PATH_TRUNCATED),
    Events(PATH_LOSSY),
    Events(FILE_DELETED),
    Events(FILE_MEMFD),
];

/// Where the process runs: cgroup and pid namespace.
const CONTAINER: &[Column] = &[
    Events(CGROUP_ID),
    Events(CGROUP_PATH),
    Events(PIDNS_INO),
    Events(NS_PID),
    Events(NS_TID),
];

/// Which input the row is from (the last columns of every view).
const INPUT: &[Column] = &[Events(CAPTURE_ID), Events(HOST), Events(FILE), Events(DATE)];

/// The system call view: the call, its arguments and result, decoded.
const CALLS: &[&[Column]] = &[
    &[
        Events(TS),
        Events(TS_EXIT),
        Derived(DUR_NS, duration_ns),
        Events(SYSCALL),
    ],
    WHO,
    &[
        Events(ADDR),
        Events(LEN),
        Events(NEW_ADDR),
        Events(NEW_LEN),
        Events(PROT),
        Derived(PROT_NAMES, prot_names),
        Events(FLAGS),
        Derived(FLAGS_NAMES, flags_names),
        Events(FD),
        Events(OFF),
        Events(RET),
        Events(ERRNO),
        Derived(ERRNO_NAME, errno_name),
    ],
    MAPPED_FILE,
    &[Events(SOURCE), Events(STACK_ID)],
    CONTAINER,
    INPUT,
];

/// The process view: forks (`child_pid`), execs (the program) and exits (`exit_code`).
const LIFECYCLE: &[&[Column]] = &[
    &[Events(TS), Events(KIND)],
    WHO,
    &[
        Events(CHILD_PID),
        Events(EXIT_CODE),
        Events(FILE_NAME),
        Events(FILE_PATH),
        Events(PATH_SOURCE),
        Events(PATH_TRUNCATED),
        Events(PATH_LOSSY),
        Events(SOURCE),
    ],
    CONTAINER,
    INPUT,
];

/// The `/proc/PID/maps` snapshot view: one mapping per row.
const SNAPSHOTS: &[&[Column]] = &[
    &[Events(TS), Events(SOURCE)],
    WHO,
    &[
        Events(ADDR),
        Events(LEN),
        Events(PROT),
        Derived(PROT_NAMES, prot_names),
        Events(FLAGS),
        Derived(FLAGS_NAMES, flags_names),
        Events(OFF),
    ],
    MAPPED_FILE,
    CONTAINER,
    INPUT,
];

/// The lost-records view: `ts`..`ts_exit` is the window, `cpu` the CPU.
const LOST: &[&[Column]] = &[
    &[
        Events(TS),
        Events(TS_EXIT),
        Events(CPU),
        Events(LOST_COUNT),
        Events(SOURCE),
    ],
    INPUT,
];

/// `ts_exit - ts` in nanoseconds; NULL when the exit was not seen or the call was recorded at
/// its exit only (`source` `tracepoint_exit` or `tp_btf_exit`).
pub const DUR_NS: &str = "dur_ns";
/// `prot_names(prot)`.
pub const PROT_NAMES: &str = "prot_names";
/// `flags_names(syscall, flags)`.
pub const FLAGS_NAMES: &str = "flags_names";
/// `errno_name(errno)`.
pub const ERRNO_NAME: &str = "errno_name";

/// The computed columns of the views, and their types.
pub const DERIVED: [(&str, DataType); 4] = [
    (DUR_NS, DataType::Int64),
    (PROT_NAMES, DataType::Utf8),
    (FLAGS_NAMES, DataType::Utf8),
    (ERRNO_NAME, DataType::Utf8),
];

/// A view: its name, the kinds of rows it shows and its columns, group by group.
struct View {
    name: &'static str,
    kinds: &'static [RowKind],
    columns: &'static [&'static [Column]],
}

/// Every view.
const VIEWS: [View; 4] = [
    View {
        name: "calls",
        kinds: &[RowKind::Syscall],
        columns: CALLS,
    },
    View {
        name: "lifecycle",
        kinds: &[RowKind::Fork, RowKind::Exec, RowKind::Exit],
        columns: LIFECYCLE,
    },
    View {
        name: "snapshots",
        kinds: &[RowKind::Snapshot],
        columns: SNAPSHOTS,
    },
    View {
        name: "lost",
        kinds: &[RowKind::Lost],
        columns: LOST,
    },
];

/// Defines every view over the table `events` (registered before), which has the partition
/// columns `partitions` besides `host` and `date` (they end every view).
pub fn define(tables: &Tables, partitions: &[String]) {
    for view in &VIEWS {
        let partitions = partitions.to_vec();
        tables.define(
            view.name,
            Box::new(move |ctx| {
                let (kinds, columns) = (view.kinds(), view.columns(&partitions));
                Box::pin(async move {
                    ctx.table(EVENTS)
                        .await?
                        .filter(col(KIND).in_list(kinds, false))?
                        .select(columns)
                })
            }),
        );
    }
}

impl View {
    /// The values of `kind` of the view's rows.
    fn kinds(&self) -> Vec<Expr> {
        self.kinds.iter().map(|kind| lit(kind.as_str())).collect()
    }

    /// The view's columns, then the `partitions` columns.
    fn columns(&self, partitions: &[String]) -> Vec<Expr> {
        self.columns
            .iter()
            .copied()
            .flatten()
            .map(|column| match column {
                Events(name) => col(*name),
                Derived(name, expr) => expr().alias(*name),
            })
            .chain(partitions.iter().map(|name| col(name.as_str())))
            .collect()
    }
}

fn duration_ns() -> Expr {
    cast(col(TS_EXIT), DataType::Int64) - cast(col(TS), DataType::Int64)
}

fn prot_names() -> Expr {
    Decoder::Prot.call(vec![col(PROT)])
}

fn flags_names() -> Expr {
    Decoder::Flags.call(vec![col(SYSCALL), col(FLAGS)])
}

fn errno_name() -> Expr {
    Decoder::Errno.call(vec![col(ERRNO)])
}
