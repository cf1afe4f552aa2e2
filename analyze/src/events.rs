//! `mmap-analyze events`: one line per recorded call.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::ValueEnum;
use mmap_format::{
    event::{Event, Syscall},
    names,
};
use serde::Serialize;

use crate::{
    fmt, input,
    output::{self, csv_to_io},
    table::{Column, StreamingTable},
};

/// List the recorded calls, one per line, in time order.
///
/// Each line shows when the call entered the kernel, who made it (pid, tid, comm), its arguments
/// (addr, len, prot, flags, fd, off) with prot and flags decoded into their PROT_* and MAP_*
/// names, its result (an address, or the error name such as -ENOMEM), how long it took, and the
/// mapped file (name, device major:minor, inode).
///
/// A single file is printed in its recording order as it is read, without loading it whole.
/// Several files (for example the segments of one recording, or recordings from several
/// machines) are merged by time.
///
/// Filters combine: a row is printed when it matches every option given, and for an option given
/// several times, any of its values (`--pid 1 --pid 2 --failed` shows the failed calls of pid 1
/// and of pid 2).
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Capture files written by mmap-recorder (Parquet).
    #[arg(value_name = "INPUT", required = true)]
    inputs: Vec<PathBuf>,

    /// Only calls made by this process id (repeat for several).
    #[arg(long, value_name = "PID")]
    pid: Vec<u32>,

    /// Only calls made by this thread id (repeat for several).
    #[arg(long, value_name = "TID")]
    tid: Vec<u32>,

    /// Only calls made by threads with exactly this name (comm, at most 15 bytes; repeat for
    /// several).
    #[arg(long, value_name = "NAME")]
    comm: Vec<String>,

    /// Only calls of this system call (repeat for several).
    #[arg(long, value_name = "NAME", value_enum)]
    syscall: Vec<SyscallArg>,

    /// Only calls that failed (returned -errno).
    #[arg(long)]
    failed: bool,

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
  mmap-analyze events capture-000.parquet | head

  # The failed calls of two processes
  mmap-analyze events capture-000.parquet --pid 1234 --pid 1240 --failed

  # All segments of a recording as CSV for a spreadsheet
  mmap-analyze events capture-*.parquet --format csv > calls.csv

  # JSON Lines for jq: the 20 largest mappings of `java`
  mmap-analyze events capture-000.parquet --comm java --format json \\
    | jq -s 'sort_by(-.len) | .[:20]'";

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

/// A system call name on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyscallArg {
    Mmap,
    Munmap,
    Mremap,
    Mprotect,
    Brk,
}

impl From<SyscallArg> for Syscall {
    fn from(arg: SyscallArg) -> Self {
        match arg {
            SyscallArg::Mmap => Self::Mmap,
            SyscallArg::Munmap => Self::Munmap,
            SyscallArg::Mremap => Self::Mremap,
            SyscallArg::Mprotect => Self::Mprotect,
            SyscallArg::Brk => Self::Brk,
        }
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
}

impl Filter {
    fn matches(&self, event: &Event<'_>) -> bool {
        (self.pids.is_empty() || self.pids.contains(&event.pid))
            && (self.tids.is_empty() || self.tids.contains(&event.tid))
            && (self.comms.is_empty() || self.comms.iter().any(|c| *c == event.comm))
            && (self.syscalls.is_empty()
                || event.syscall.is_some_and(|s| self.syscalls.contains(&s)))
            && (!self.failed || fmt::failed(event))
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open_all(&args.inputs)?;
    let filter = Filter {
        pids: args.pid,
        tids: args.tid,
        comms: args.comm,
        syscalls: args.syscall.into_iter().map(Syscall::from).collect(),
        failed: args.failed,
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

const CSV_HEADER: [&str; 20] = [
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

fn table_row(event: &Event<'_>) -> Vec<String> {
    vec![
        fmt::time_of_day_ns(event.ts_ns),
        event.pid.to_string(),
        event.tid.to_string(),
        event.comm.to_string(),
        fmt::syscall_label(event).to_owned(),
        or_dash(event.addr.map(fmt::hex)),
        or_dash(opt_string(event.len)),
        or_dash(event.prot.map(names::prot_names)),
        or_dash(event.flags.map(names::map_flags_names)),
        or_dash(opt_string(event.fd)),
        or_dash(opt_string(event.off)),
        or_dash(fmt::result_label(event)),
        or_dash(opt_string(fmt::duration_ns(event))),
        fmt::file_label(event).unwrap_or_default(),
    ]
}

fn csv_row(event: &Event<'_>) -> [String; 20] {
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
        empty(event.flags.map(names::map_flags_names)),
        empty(opt_string(event.fd)),
        empty(opt_string(event.off)),
        empty(opt_string(event.ret)),
        empty(fmt::result_label(event)),
        empty(opt_string(fmt::duration_ns(event))),
        empty(event.file_name.as_deref().map(str::to_owned)),
        empty(event.file_dev.map(fmt::dev_label)),
        empty(opt_string(event.file_ino)),
        event.cpu.to_string(),
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
            flags_names: event.flags.map(names::map_flags_names),
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
        }
    }
}
