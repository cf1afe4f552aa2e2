//! `mmap-analyze events`: one line per recorded call.

use std::{
    io::{self, IsTerminal as _, Write},
    process::ExitCode,
};

use anyhow::{Context as _, anyhow};
use clap::{ValueEnum, builder::PossibleValue};
use mmap_format::{
    event::{Event, RowKind, Syscall},
    names,
    reader::CaptureReader,
};
use serde::Serialize;

// `csv_row` and `JsonRow` are being rewritten on another branch (columns from the format's column
// table); until that merge they keep calling the labels by their old module name.
use crate::labels as fmt;
use crate::{
    cli::{self, Inputs},
    input, labels,
    output::{self, csv_to_io},
    replay::MREMAP_FIXED,
    table::{Column, StreamingTable},
    timespec::{self, Span, TimeSpec},
};

/// List the recorded calls and process events, one per line, in time order.
///
/// Each line shows when the call entered the kernel, who made it (pid, tid, comm), its arguments
/// (addr, len, prot, flags, fd, off) with prot and flags decoded into their PROT_* and MAP_* (for
/// mremap MREMAP_*) names, its result (an address, or the error name such as -ENOMEM), how long
/// it took, and the mapped file (full path when recorded, else the name; marked (deleted) or
/// (memfd); device major:minor, inode). mremap shows its old and new address and length as
/// OLD->NEW; brk shows the requested break as ADDR and the new break as RESULT.
///
/// Format 1.1 captures also hold process events, shown with their kind in the SYSCALL column:
/// fork (RESULT: the child's pid), exec (FILE: the program), exit (RESULT: the exit status, e.g.
/// `exit status 1` or `killed by SIGSEGV`), lost (RESULT: how many records the kernel could not
/// deliver on which CPU between TIME and TIME + DUR_NS), and snapshot (one /proc/PID/maps line per
/// row). Snapshot rows are hidden unless `--kind snapshot` is given.
///
/// A single file is printed in its recording order as it is read, without loading it whole.
/// Several files (for example the segments of one recording, or recordings from several
/// machines) are merged by time.
///
/// Filters combine: a row is printed when it matches every option given, and for an option given
/// several times, any of its values (`--pid 1 --pid 2 --failed` shows the failed calls of pid 1
/// and of pid 2). A fork row matches --pid of the parent and of the child. Filters that match
/// nothing are not an error: the output is empty (CSV keeps its header line), the exit status 0,
/// and on a terminal a note on stderr says so.
#[derive(Debug, clap::Args)]
#[command(after_long_help = after_long_help())]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// Only calls made by this process id (repeat for several).
    #[arg(long, value_name = "PID")]
    pid: Vec<u32>,

    /// Only calls made by this thread id (repeat for several).
    #[arg(long, value_name = "TID")]
    tid: Vec<u32>,

    /// Only calls made by threads with exactly this name (repeat for several). The kernel keeps
    /// 15 bytes of a thread name: a longer NAME is cut to 15 bytes (a note says so).
    #[arg(long, value_name = "NAME")]
    comm: Vec<String>,

    /// Only calls of this system call (repeat for several).
    #[arg(long, value_name = "NAME", value_parser = cli::one_of::<Syscall>(syscall_values()))]
    syscall: Vec<Syscall>,

    /// Only calls that failed (returned -errno).
    #[arg(long)]
    failed: bool,

    /// Only rows of this kind (repeat for several). Without it every kind but snapshot is shown.
    #[arg(long, value_name = "KIND", value_parser = cli::one_of::<RowKind>(kind_values()))]
    kind: Vec<RowKind>,

    /// Only rows at or after this time (TIME: see below; a row's time is when it entered the
    /// kernel).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    since: Option<TimeSpec>,

    /// Only rows at or before this time (TIME: see below).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<TimeSpec>,

    /// Stop after printing this many lines.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = EventsFormat::Table)]
    format: EventsFormat,
}

const EXAMPLES: &str = "\
Examples:
  # The first calls of a recording
  mmap-analyze events build.parquet | head

  # The failed calls of two processes
  mmap-analyze events build.parquet --pid 1234 --pid 1240 --failed

  # All segments of a recording to rec/ as CSV for a spreadsheet
  mmap-analyze events rec/ --format csv > calls.csv

  # One segment; the last second of the recording
  mmap-analyze events rec/mmap-20261127T060113Z-1a2b3c4d-00002.parquet
  mmap-analyze events rec/ --since -1s

  # Process lifecycle: forks, execs and exits, between two times the table printed
  mmap-analyze events rec/ --kind fork --kind exec --kind exit \\
    --since 06:01:13.000000000 --until 06:01:14.500000000

  # The /proc/PID/maps snapshots taken at capture start
  mmap-analyze events build.parquet --kind snapshot --pid 1234

  # JSON Lines for jq: the 20 largest mappings of `java`
  mmap-analyze events build.parquet --comm java --format json \\
    | jq -s 'sort_by(-.len) | .[:20]'";

fn after_long_help() -> String {
    format!("{}\n\n{EXAMPLES}", cli::reflow(timespec::HELP))
}

/// How the rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum EventsFormat {
    /// Aligned columns for reading; the time is shown as HH:MM:SS.nnnnnnnnn (UTC).
    Table,
    /// JSON Lines: one object per call with raw numbers and decoded names side by side.
    Json,
    /// Comma-separated values with a header line.
    Csv,
}

/// The `--syscall` values: every system call of the format.
fn syscall_values() -> [PossibleValue; Syscall::ALL.len()] {
    Syscall::ALL.map(|syscall| PossibleValue::new(syscall.as_str()))
}

/// The `--kind` values: every row kind of the format, each with a line of help.
fn kind_values() -> [PossibleValue; RowKind::ALL.len()] {
    RowKind::ALL.map(|kind| PossibleValue::new(kind.as_str()).help(kind_help(kind)))
}

fn kind_help(kind: RowKind) -> &'static str {
    match kind {
        RowKind::Syscall => "A system call",
        RowKind::Snapshot => "One /proc/PID/maps line (hidden unless asked for)",
        RowKind::Fork => "A new process",
        RowKind::Exec => "A new program",
        RowKind::Exit => "The end of a process",
        RowKind::Lost => "Records the kernel could not deliver",
        // Never offered: it only stands for kinds a newer format adds.
        RowKind::Other => "",
    }
}

/// Which rows are printed.
#[derive(Debug, Default)]
struct Filter {
    pids: Vec<u32>,
    tids: Vec<u32>,
    comms: Vec<String>,
    syscalls: Vec<Syscall>,
    failed: bool,
    /// Empty: every kind but snapshot.
    kinds: Vec<RowKind>,
    /// Entry times, ns since the epoch, inclusive.
    since: Option<i64>,
    until: Option<i64>,
}

impl Filter {
    fn matches(&self, event: &Event<'_>) -> bool {
        let kind_matches = if self.kinds.is_empty() {
            event.kind != RowKind::Snapshot
        } else {
            self.kinds.contains(&event.kind)
        };
        let pid_matches = self.pids.contains(&event.pid)
            || (event.kind == RowKind::Fork
                && event
                    .child_pid
                    .is_some_and(|child| self.pids.contains(&child)));
        kind_matches
            && (self.pids.is_empty() || pid_matches)
            && (self.tids.is_empty() || self.tids.contains(&event.tid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| *c == event.comm))
            && (self.syscalls.is_empty()
                || event.syscall.is_some_and(|s| self.syscalls.contains(&s)))
            && (!self.failed || labels::failed(event))
            && self.since.is_none_or(|since| event.ts_ns >= since)
            && self.until.is_none_or(|until| event.ts_ns <= until)
    }

    /// Whether the filters are why nothing was printed (not `--limit 0`, not an empty capture
    /// read without filters).
    fn matched_nothing(&self, printed: u64, limit: u64) -> bool {
        printed == 0 && limit > 0 && self.is_set()
    }

    /// Whether any option narrows the rows (snapshots, hidden by default, do not count).
    fn is_set(&self) -> bool {
        !(self.pids.is_empty()
            && self.tids.is_empty()
            && self.comms.is_empty()
            && self.syscalls.is_empty()
            && !self.failed
            && self.kinds.is_empty()
            && self.since.is_none()
            && self.until.is_none())
    }
}

/// The bytes of a thread name the kernel keeps (TASK_COMM_LEN less its NUL).
const COMM_MAX_BYTES: usize = 15;

/// `name` as the kernel would have cut it, with a note when it was longer.
fn kernel_comm(name: String) -> String {
    if name.len() <= COMM_MAX_BYTES {
        return name;
    }
    let mut end = COMM_MAX_BYTES;
    while !name.is_char_boundary(end) {
        end -= 1;
    }
    let cut = name[..end].to_owned();
    output::note(&format!(
        "--comm {name:?} is {} bytes; the kernel keeps {COMM_MAX_BYTES} bytes of a thread name: \
         matching {cut:?}",
        name.len()
    ));
    cut
}

/// `--since` and `--until` in ns, resolved against the capture (read once more first when a
/// time counts from its first row or end, or is a time of day).
fn resolve_times(
    readers: &[CaptureReader],
    times: [(&str, Option<TimeSpec>); 2],
) -> anyhow::Result<[Option<i64>; 2]> {
    let needs_rows = times
        .iter()
        .any(|(_, spec)| spec.is_some_and(|spec| !matches!(spec, TimeSpec::Absolute(_))));
    let span = if needs_rows {
        Span::read(readers)?
    } else {
        Span::of_files(readers)
    };
    let mut resolved = [None, None];
    for (slot, (option, spec)) in resolved.iter_mut().zip(times) {
        if let Some(spec) = spec {
            let time = spec
                .resolve(&span)
                .map_err(|err| anyhow!("{option} {err}"))?;
            if let Some(warning) = time.warning {
                output::warn(&format!("{option} {warning}"));
            }
            *slot = Some(time.ns);
        }
    }
    Ok(resolved)
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open(&args.inputs)?;
    let [since, until] =
        resolve_times(&readers, [("--since", args.since), ("--until", args.until)])?;
    let filter = Filter {
        pids: args.pid,
        tids: args.tid,
        comms: args.comm.into_iter().map(kernel_comm).collect(),
        syscalls: args.syscall,
        failed: args.failed,
        kinds: args.kind,
        since,
        until,
    };
    let limit = args.limit.unwrap_or(u64::MAX);

    let mut out = output::stdout();
    let mut sink = Sink::new(args.format, &mut out)?;
    let mut printed = 0_u64;
    if limit > 0 {
        for event in input::merged_events(&readers)? {
            let event = event?;
            if !filter.matches(&event) {
                continue;
            }
            sink.write(&event)?;
            printed += 1;
            if printed >= limit {
                break;
            }
        }
    }
    sink.finish()?;
    out.flush().context("writing to stdout")?;
    if filter.matched_nothing(printed, limit) && io::stderr().is_terminal() {
        output::note("no row matches the filters");
    }
    Ok(ExitCode::SUCCESS)
}

const TABLE_COLUMNS: [Column; 14] = [
    Column::left("TIME"),
    Column::right("PID"),
    Column::right("TID"),
    Column::left("COMM"),
    Column::left("SYSCALL"),
    Column::left("ADDR"),
    Column::right("LEN"),
    Column::left("PROT"),
    Column::left("FLAGS"),
    Column::right("FD"),
    Column::right("OFF"),
    Column::left("RESULT"),
    Column::right("DUR_NS"),
    Column::left("FILE"),
];

/// Rows held back to size the table's columns before the first line is written.
const TABLE_BLOCK: usize = 1024;

const CSV_HEADER: [&str; 33] = [
    "time",
    "pid",
    "tid",
    "ppid",
    "uid",
    "comm",
    "syscall",
    "addr",
    "len",
    "prot",
    "flags",
    "fd",
    "off",
    "ret",
    "result",
    "duration_ns",
    "file_name",
    "file_dev",
    "file_ino",
    "cpu",
    "kind",
    "source",
    "file_path",
    "file_deleted",
    "file_memfd",
    "new_addr",
    "new_len",
    "child_pid",
    "exit_code",
    "lost_count",
    "cgroup_path",
    "ns_pid",
    "ns_tid",
];

enum Sink<'w, W: Write> {
    Table {
        table: StreamingTable,
        out: &'w mut W,
    },
    Json {
        out: &'w mut W,
    },
    Csv {
        writer: Box<csv::Writer<&'w mut W>>,
    },
}

impl<'w, W: Write> Sink<'w, W> {
    fn new(format: EventsFormat, out: &'w mut W) -> io::Result<Self> {
        Ok(match format {
            EventsFormat::Table => Self::Table {
                table: StreamingTable::new(&TABLE_COLUMNS, TABLE_BLOCK),
                out,
            },
            EventsFormat::Json => Self::Json { out },
            EventsFormat::Csv => {
                let mut writer = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                writer.write_record(CSV_HEADER).map_err(csv_to_io)?;
                Self::Csv {
                    writer: Box::new(writer),
                }
            }
        })
    }

    fn write(&mut self, event: &Event<'_>) -> io::Result<()> {
        match self {
            Self::Table { table, out } => table.push(*out, table_row(event)),
            Self::Json { out } => {
                serde_json::to_writer(&mut **out, &JsonRow::new(event))?;
                out.write_all(b"\n")
            }
            Self::Csv { writer } => writer.write_record(csv_row(event)).map_err(csv_to_io),
        }
    }

    /// Writes what is held back; the caller flushes the output after.
    fn finish(self) -> io::Result<()> {
        match self {
            Self::Table { mut table, out } => table.finish(out),
            Self::Json { .. } => Ok(()),
            Self::Csv { mut writer } => writer.flush(),
        }
    }
}

fn or_dash(value: Option<String>) -> String {
    value.unwrap_or_else(|| "-".to_owned())
}

fn opt_string<T: ToString>(value: Option<T>) -> Option<String> {
    value.map(|v| v.to_string())
}

/// The ADDR cell: for mremap `OLD->NEW` when a new address was given (MREMAP_FIXED).
fn addr_cell(event: &Event<'_>) -> Option<String> {
    let addr = event.addr.map(labels::hex)?;
    Some(match (event.syscall, event.new_addr) {
        (Some(Syscall::Mremap), Some(new)) if event.flags.unwrap_or(0) & MREMAP_FIXED != 0 => {
            format!("{addr}->{}", labels::hex(new))
        }
        _ => addr,
    })
}

/// The LEN cell: for mremap `OLD->NEW`.
fn len_cell(event: &Event<'_>) -> Option<String> {
    let len = event.len?;
    Some(match (event.syscall, event.new_len) {
        (Some(Syscall::Mremap), Some(new)) => format!("{len}->{new}"),
        _ => len.to_string(),
    })
}

fn table_row(event: &Event<'_>) -> Vec<String> {
    let file = if event.kind == RowKind::Syscall {
        labels::file_label(event)
    } else {
        // Snapshot lines, exec'd programs: the path says it.
        labels::file_path_label(event).or_else(|| labels::file_label(event))
    };
    vec![
        labels::time_of_day_ns(event.ts_ns),
        event.pid.to_string(),
        event.tid.to_string(),
        event.comm.to_string(),
        labels::syscall_label(event).to_owned(),
        or_dash(addr_cell(event)),
        or_dash(len_cell(event)),
        or_dash(event.prot.map(names::prot_names)),
        or_dash(labels::flags_label(event)),
        or_dash(opt_string(event.fd)),
        or_dash(opt_string(event.off)),
        or_dash(labels::result_label(event)),
        or_dash(opt_string(labels::duration_ns(event))),
        file.unwrap_or_default(),
    ]
}

fn csv_row(event: &Event<'_>) -> [String; 33] {
    let empty = Option::unwrap_or_default;
    [
        fmt::rfc3339_ns(event.ts_ns),
        event.pid.to_string(),
        event.tid.to_string(),
        event.ppid.to_string(),
        event.uid.to_string(),
        event.comm.to_string(),
        fmt::syscall_label(event).to_owned(),
        empty(event.addr.map(fmt::hex)),
        empty(opt_string(event.len)),
        empty(event.prot.map(names::prot_names)),
        empty(fmt::flags_label(event)),
        empty(opt_string(event.fd)),
        empty(opt_string(event.off)),
        empty(opt_string(event.ret)),
        empty(fmt::result_label(event)),
        empty(opt_string(fmt::duration_ns(event))),
        empty(event.file_name.as_deref().map(str::to_owned)),
        empty(event.file_dev.map(fmt::dev_label)),
        empty(opt_string(event.file_ino)),
        event.cpu.to_string(),
        event.kind.as_str().to_owned(),
        empty(event.source.as_deref().map(str::to_owned)),
        empty(event.file_path.as_deref().map(str::to_owned)),
        empty(opt_string(event.file_deleted)),
        empty(opt_string(event.file_memfd)),
        empty(event.new_addr.map(fmt::hex)),
        empty(opt_string(event.new_len)),
        empty(opt_string(event.child_pid)),
        empty(opt_string(event.exit_code)),
        empty(opt_string(event.lost_count)),
        empty(event.cgroup_path.as_deref().map(str::to_owned)),
        empty(opt_string(event.ns_pid)),
        empty(opt_string(event.ns_tid)),
    ]
}

/// One JSON Lines object: raw numbers, and decoded names beside them.
#[derive(Debug, Serialize)]
struct JsonRow<'a> {
    time: String,
    ts_ns: i64,
    ts_exit_ns: Option<i64>,
    duration_ns: Option<i64>,
    kind: &'static str,
    syscall: Option<&'static str>,
    cpu: u32,
    pid: u32,
    tid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    comm: &'a str,
    cgroup_id: u64,
    addr: Option<u64>,
    addr_hex: Option<String>,
    len: Option<u64>,
    prot: Option<u64>,
    prot_names: Option<String>,
    flags: Option<u64>,
    flags_names: Option<String>,
    fd: Option<i32>,
    off: Option<u64>,
    ret: Option<i64>,
    errno: Option<i32>,
    errno_name: Option<&'static str>,
    result: Option<String>,
    file_name: Option<&'a str>,
    file_dev: Option<u64>,
    file_dev_major_minor: Option<String>,
    file_ino: Option<u64>,
    file_path: Option<&'a str>,
    path_source: Option<&'a str>,
    path_truncated: Option<bool>,
    file_deleted: Option<bool>,
    file_memfd: Option<bool>,
    source: Option<&'a str>,
    new_addr: Option<u64>,
    new_len: Option<u64>,
    child_pid: Option<u32>,
    exit_code: Option<i32>,
    exit_status: Option<String>,
    lost_count: Option<u64>,
    cgroup_path: Option<&'a str>,
    pidns_ino: Option<u32>,
    ns_pid: Option<u32>,
    ns_tid: Option<u32>,
}

impl<'a> JsonRow<'a> {
    fn new(event: &'a Event<'_>) -> Self {
        let errno = event.errno();
        Self {
            time: fmt::rfc3339_ns(event.ts_ns),
            ts_ns: event.ts_ns,
            ts_exit_ns: event.ts_exit_ns,
            duration_ns: fmt::duration_ns(event),
            kind: event.kind.as_str(),
            syscall: event.syscall.map(Syscall::as_str),
            cpu: event.cpu,
            pid: event.pid,
            tid: event.tid,
            ppid: event.ppid,
            uid: event.uid,
            gid: event.gid,
            comm: &event.comm,
            cgroup_id: event.cgroup_id,
            addr: event.addr,
            addr_hex: event.addr.map(fmt::hex),
            len: event.len,
            prot: event.prot,
            prot_names: event.prot.map(names::prot_names),
            flags: event.flags,
            flags_names: fmt::flags_label(event),
            fd: event.fd,
            off: event.off,
            ret: event.ret,
            errno,
            errno_name: errno.and_then(names::errno_name),
            result: fmt::result_label(event),
            file_name: event.file_name.as_deref(),
            file_dev: event.file_dev,
            file_dev_major_minor: event.file_dev.map(fmt::dev_label),
            file_ino: event.file_ino,
            file_path: event.file_path.as_deref(),
            path_source: event.path_source.as_deref(),
            path_truncated: event.path_truncated,
            file_deleted: event.file_deleted,
            file_memfd: event.file_memfd,
            source: event.source.as_deref(),
            new_addr: event.new_addr,
            new_len: event.new_len,
            child_pid: event.child_pid,
            exit_code: event.exit_code,
            exit_status: event.exit_code.map(fmt::exit_status_label),
            lost_count: event.lost_count,
            cgroup_path: event.cgroup_path.as_deref(),
            pidns_ino: event.pidns_ino,
            ns_pid: event.ns_pid,
            ns_tid: event.ns_tid,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_filters_that_matched_nothing_get_a_note() {
        let pid = Filter {
            pids: vec![99_999],
            ..Filter::default()
        };
        assert!(pid.matched_nothing(0, u64::MAX));
        assert!(!pid.matched_nothing(1, u64::MAX));
        assert!(!pid.matched_nothing(0, 0), "--limit 0 asked for nothing");
        assert!(
            !Filter::default().matched_nothing(0, u64::MAX),
            "an empty capture"
        );
        let since = Filter {
            since: Some(0),
            ..Filter::default()
        };
        assert!(since.matched_nothing(0, 10));
    }

    #[test]
    fn a_comm_is_cut_where_the_kernel_cuts_it() {
        assert_eq!(kernel_comm("java".to_owned()), "java");
        assert_eq!(kernel_comm("a-fifteen-bytes".to_owned()), "a-fifteen-bytes");
        assert_eq!(
            kernel_comm("a-fifteen-bytes-and-more".to_owned()),
            "a-fifteen-bytes"
        );
        // Never inside a character: 14 bytes of ASCII and a 2-byte é.
        assert_eq!(kernel_comm("fourteen-bytesé!".to_owned()), "fourteen-bytes");
    }

    #[test]
    fn syscall_and_kind_values_are_the_formats_lists() {
        let command = <Args as clap::Args>::augment_args(clap::Command::new("events"));
        let names = |id: &str| -> Vec<String> {
            command
                .get_arguments()
                .find(|arg| arg.get_id() == id)
                .expect("the argument exists")
                .get_possible_values()
                .iter()
                .map(|value| value.get_name().to_owned())
                .collect()
        };
        assert_eq!(
            names("syscall"),
            Syscall::ALL.map(|s| s.as_str().to_owned())
        );
        assert_eq!(names("kind"), RowKind::ALL.map(|k| k.as_str().to_owned()));
        for kind in RowKind::ALL {
            assert!(!kind_help(kind).is_empty(), "{kind} has a line of help");
        }
    }
}
