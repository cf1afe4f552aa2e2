//! `mmap-analyze events`: one line per recorded call.

use std::{
    io::{self, IsTerminal as _, Write},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::{ValueEnum, builder::PossibleValue};
use mmap_format::{
    event::{Event, MAX_ERRNO, RowKind, Syscall},
    names,
    reader::CaptureReader,
    schema::{self, Value, col},
};
use serde::{Serialize, ser::SerializeMap as _};

use crate::{
    cli::{self, Inputs},
    engine::{
        Engine, EngineError,
        filter::{RowFilter, literal},
        stacks::{self, FRAMES_MISSING, Frame, StackFrames},
    },
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
/// it took, and the mapped file (full path when recorded, else the name; marked (deleted),
/// (memfd) or (name not UTF-8); device major:minor, inode). mremap shows its old and new address and length as
/// OLD->NEW; brk shows the requested break as ADDR and the new break as RESULT.
///
/// Format 1.1 captures also hold process events, shown with their kind in the SYSCALL column:
/// fork (RESULT: the child's pid), exec (FILE: the program), exit (RESULT: the exit status, e.g.
/// `exit status 1` or `killed by SIGSEGV`), lost (RESULT: how many records the kernel could not
/// deliver on which CPU between TIME and TIME + DUR_NS), and snapshot (one /proc/PID/maps line per
/// row). Snapshot and frame rows are hidden unless `--kind snapshot` / `--kind frame` is given.
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

    /// Only rows for which this SQL predicate is true, e.g. "len >= 1048576 AND fd = -1" or
    /// "prot_names LIKE '%PROT_EXEC%'". It may use every column of the capture (docs/FORMAT.md),
    /// capture_id, host and file, the decoded columns of the `calls` view (dur_ns, prot_names,
    /// flags_names, errno_name) and any SQL function; a column a row kind does not use is NULL
    /// there. A predicate that is not valid SQL exits with status 1.
    #[arg(long = "where", value_name = "SQL")]
    predicate: Option<String>,

    /// Stop after printing this many lines (the rest of the capture is not read).
    #[arg(long, value_name = "N")]
    limit: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = EventsFormat::Table)]
    format: EventsFormat,

    /// Print each call's user call stack under it (captures recorded with --stacks fp|dwarf):
    /// in a table one indented line per frame, innermost first (`#1 inner (app.c:12)`; a
    /// frame not named shows MODULE+0xOFFSET); in JSON a `stack` array of frames (index, addr,
    /// module, build_id, offset, function, file, line, symbol_source, name), null for a row
    /// without a stack. A stack whose frame rows are not in the inputs (a recording killed
    /// before they were written) shows `[frames missing]` (JSON: an empty array). Not with
    /// --format csv. The frames of the inputs are held in memory while the rows are printed.
    #[arg(long)]
    stacks: bool,
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

  # Executable mappings of more than 1 MiB, in any SQL (--where: columns of the capture
  # and of the `calls` view)
  mmap-analyze events rec/ --where \"prot_names LIKE '%PROT_EXEC%' AND len > 1048576\"

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
    /// Comma-separated values with a header line: the same columns as JSON, numbers in decimal;
    /// text that a spreadsheet would run as a formula (=, +, -, @) starts with a quote.
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
        RowKind::Frame => "One frame of a call stack (hidden unless asked for)",
        // Never offered: it only stands for kinds a newer format adds.
        RowKind::Other => "",
    }
}

/// Which rows are printed, as one SQL predicate over the rows (pushed down to the Parquet
/// reader, so that a narrow filter reads a fraction of a large capture).
#[derive(Debug, Default)]
struct Filter {
    pids: Vec<u32>,
    tids: Vec<u32>,
    failed: bool,
    /// Empty: every kind but snapshot.
    kinds: Vec<RowKind>,
    /// `--comm`, `--syscall`, `--since`, `--until` and `--where`, as every command on the
    /// engine has them.
    rows: RowFilter,
}

impl Filter {
    /// The predicate (a `--where` checked against `engine`); times are resolved against `span`.
    fn sql(&self, engine: &Engine, span: &Span) -> anyhow::Result<String> {
        let list = |values: &[u32]| {
            let values: Vec<String> = values.iter().map(u32::to_string).collect();
            values.join(", ")
        };
        let mut terms = vec![if self.kinds.is_empty() {
            format!(
                "{} NOT IN ({}, {})",
                col::KIND,
                literal(RowKind::Snapshot.as_str()),
                literal(RowKind::Frame.as_str())
            )
        } else {
            let kinds: Vec<String> = self.kinds.iter().map(|k| literal(k.as_str())).collect();
            format!("{} IN ({})", col::KIND, kinds.join(", "))
        }];
        if !self.pids.is_empty() {
            // A fork row is also the child's.
            let pids = list(&self.pids);
            terms.push(format!(
                "({pid} IN ({pids}) OR ({kind} = {fork} AND {child} IN ({pids})))",
                pid = col::PID,
                kind = col::KIND,
                fork = literal(RowKind::Fork.as_str()),
                child = col::CHILD_PID,
            ));
        }
        if !self.tids.is_empty() {
            terms.push(format!("{} IN ({})", col::TID, list(&self.tids)));
        }
        if self.failed {
            terms.push(format!("{} BETWEEN -{MAX_ERRNO} AND -1", col::RET));
        }
        terms.extend(self.rows.sql(engine, &input::rows(), span)?);
        Ok(terms.join(" AND "))
    }

    /// Whether the filters are why nothing was printed (not `--limit 0`, not an empty capture
    /// read without filters).
    fn matched_nothing(&self, printed: u64, limit: u64) -> bool {
        printed == 0 && limit > 0 && self.is_set()
    }

    /// Whether any option narrows the rows (snapshots, hidden by default, do not count).
    fn is_set(&self) -> bool {
        !(self.pids.is_empty() && self.tids.is_empty() && !self.failed && self.kinds.is_empty())
            || self.rows.is_set()
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

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    // In a Hive-style tree the files that --where rules out by their partition directories are
    // not opened, unless a time counts from the capture's start or end (which all files say).
    let relative = [args.since, args.until]
        .iter()
        .any(|spec| spec.is_some_and(|spec| !matches!(spec, TimeSpec::Absolute(_))));
    let predicate = args.predicate.as_deref().filter(|_| !relative);
    let readers = input::open_where(&args.inputs, predicate)?;
    let engine = Engine::open(&readers)?;
    // Read the rows' times only when a time counts from the first row or the end, or is a time
    // of day.
    let needs_rows = [args.since, args.until]
        .iter()
        .any(|spec| spec.is_some_and(|spec| !matches!(spec, TimeSpec::Absolute(_))));
    let span = if needs_rows {
        engine.span(&readers)?
    } else {
        Span::of_files(&readers)
    };
    let filter = Filter {
        pids: args.pid,
        tids: args.tid,
        failed: args.failed,
        kinds: args.kind,
        rows: RowFilter {
            comm: args.comm.into_iter().map(kernel_comm).collect(),
            syscall: args.syscall,
            since: args.since,
            until: args.until,
            predicate: args.predicate,
            ..RowFilter::default()
        },
    };
    let predicate = filter.sql(&engine, &span)?;
    let limit = args.limit.unwrap_or(u64::MAX);
    let frames = match (args.stacks, args.format) {
        (false, _) => None,
        (true, EventsFormat::Csv) => {
            anyhow::bail!(
                "--stacks: not with --format csv (a stack is several lines: use --format json)"
            )
        }
        (true, _) => Some(stacks::frames(&engine)?),
    };

    let mut out = output::stdout();
    let mut sink = Sink::new(args.format, &mut out)?;
    let printed = print(
        &engine,
        &readers,
        &predicate,
        limit,
        frames.as_ref(),
        &mut sink,
    )?;
    sink.finish()?;
    out.flush().context("writing to stdout")?;
    if filter.matched_nothing(printed, limit) && io::stderr().is_terminal() {
        output::note("no row matches the filters");
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the first `limit` rows that pass `predicate`: each file in its order, several merged
/// by time. Stops reading at the limit.
fn print<W: Write>(
    engine: &Engine,
    readers: &[CaptureReader],
    predicate: &str,
    limit: u64,
    frames: Option<&StackFrames>,
    sink: &mut Sink<'_, W>,
) -> Result<u64, EngineError> {
    if limit == 0 {
        return Ok(0);
    }
    // Each file's query is planned and started only when the merge reaches the file's first
    // time: `--limit` over the segments of a long recording reads the first ones alone.
    let sources = readers
        .iter()
        .map(|reader| input::Source {
            start: reader.min_ts_ns(),
            open: Box::new(move || {
                let rows = input::file_rows(engine, reader, Some(predicate), &[])?;
                Ok(Box::new(rows) as input::EventIter<'_, EngineError>)
            }),
        })
        .collect();
    let mut printed = 0_u64;
    let mut rows = input::merge(sources);
    while let Some(event) = rows.next() {
        let event = event?;
        let stack = match frames {
            None => StackOf::NotAsked,
            Some(frames) => match event.stack_id {
                None => StackOf::None,
                Some(id) => {
                    let capture = readers
                        .get(rows.last_source())
                        .and_then(|reader| reader.metadata().capture_id.clone());
                    StackOf::Frames(frames.get(&(capture, id)).map_or(&[], Vec::as_slice))
                }
            },
        };
        sink.write_with_stack(&event, stack)
            .map_err(EngineError::Output)?;
        printed += 1;
        if printed >= limit {
            break;
        }
    }
    Ok(printed)
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

enum Sink<'w, W: Write> {
    Table {
        table: StreamingTable,
        out: &'w mut W,
    },
    Json {
        layout: Layout<JsonDecoder>,
        out: &'w mut W,
    },
    Csv {
        layout: Layout<JsonDecoder>,
        writer: Box<csv::Writer<&'w mut W>>,
        /// Where a number or a guarded text cell is formatted, reused from row to row.
        scratch: String,
    },
}

impl<'w, W: Write> Sink<'w, W> {
    fn new(format: EventsFormat, out: &'w mut W) -> io::Result<Self> {
        Ok(match format {
            EventsFormat::Table => Self::Table {
                table: StreamingTable::new(&TABLE_COLUMNS, TABLE_BLOCK),
                out,
            },
            EventsFormat::Json => Self::Json {
                layout: Layout::json(),
                out,
            },
            EventsFormat::Csv => {
                let layout = Layout::json();
                let mut writer = csv::WriterBuilder::new()
                    .has_headers(false)
                    .from_writer(out);
                writer.write_record(layout.names()).map_err(csv_to_io)?;
                Self::Csv {
                    layout,
                    writer: Box::new(writer),
                    scratch: String::new(),
                }
            }
        })
    }

    fn write(&mut self, event: &Event<'_>) -> io::Result<()> {
        self.write_with_stack(event, StackOf::NotAsked)
    }

    fn write_with_stack(&mut self, event: &Event<'_>, stack: StackOf<'_>) -> io::Result<()> {
        match self {
            Self::Table { table, out } => {
                let lines = match stack {
                    StackOf::NotAsked | StackOf::None => Vec::new(),
                    StackOf::Frames([]) => vec![format!("    {FRAMES_MISSING}")],
                    StackOf::Frames(frames) => {
                        frames.iter().map(|f| format!("    {}", f.line())).collect()
                    }
                };
                table.push_with_lines(*out, table_row(event), lines)
            }
            Self::Json { layout, out } => {
                serde_json::to_writer(
                    &mut **out,
                    &JsonRow {
                        layout,
                        event,
                        stack,
                    },
                )?;
                out.write_all(b"\n")
            }
            Self::Csv {
                layout,
                writer,
                scratch,
            } => layout
                .write_csv_record(event, writer, scratch)
                .map_err(csv_to_io),
        }
    }

    /// Writes what is held back; the caller flushes the output after.
    fn finish(self) -> io::Result<()> {
        match self {
            Self::Table { mut table, out } => table.finish(out),
            Self::Json { .. } => Ok(()),
            Self::Csv { mut writer, .. } => writer.flush(),
        }
    }
}

/// Rows written as `events` writes them, for the commands that print or export the same rows
/// (`replay --format json`, `export --format jsonl|csv`).
pub(crate) struct RowSink<'w, W: Write>(Sink<'w, W>);

impl<'w, W: Write> RowSink<'w, W> {
    pub(crate) fn new(format: EventsFormat, out: &'w mut W) -> io::Result<Self> {
        Sink::new(format, out).map(Self)
    }

    pub(crate) fn write(&mut self, event: &Event<'_>) -> io::Result<()> {
        self.0.write(event)
    }

    /// Writes what is held back; the caller flushes the output after.
    pub(crate) fn finish(self) -> io::Result<()> {
        self.0.finish()
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

/// One named part of a CSV record or a JSON object: a column of the capture as stored (named
/// after it: [`schema::Column::name`] in CSV, [`schema::Column::field`] in JSON), or a value
/// decoded from the row by `D`.
enum Part<D> {
    Column(&'static str),
    Decoded(&'static str, D),
}

/// A decoded value (JSON Lines and CSV).
type JsonDecoder = fn(&Event<'_>) -> Decoded;

/// A JSON object and a CSV record: every column of the capture as stored (numbers as numbers),
/// with decoded names beside some. Columns not listed here (added to the format later) follow at
/// the end. CSV has the same columns, under the same names, in the same order.
const JSON_PARTS: [Part<JsonDecoder>; 48] = {
    use Decoded::{Int, Name, Text};
    use Part::{Column as Raw, Decoded as Dec};
    [
        Dec("time", |e| Text(Some(labels::rfc3339_ns(e.ts_ns)))),
        Raw(col::TS),
        Raw(col::TS_EXIT),
        Dec("duration_ns", |e| Int(labels::duration_ns(e))),
        Raw(col::KIND),
        Raw(col::SYSCALL),
        Raw(col::CPU),
        Raw(col::PID),
        Raw(col::TID),
        Raw(col::PPID),
        Raw(col::UID),
        Raw(col::GID),
        Raw(col::COMM),
        Raw(col::CGROUP_ID),
        Raw(col::ADDR),
        Dec("addr_hex", |e| Text(e.addr.map(labels::hex))),
        Raw(col::LEN),
        Raw(col::PROT),
        Dec("prot_names", |e| Text(e.prot.map(names::prot_names))),
        Raw(col::FLAGS),
        Dec("flags_names", |e| Text(labels::flags_label(e))),
        Raw(col::FD),
        Raw(col::OFF),
        Raw(col::RET),
        Raw(col::ERRNO),
        Dec("errno_name", |e| {
            Name(e.errno().and_then(names::errno_name))
        }),
        Dec("result", |e| Text(labels::result_label(e))),
        Raw(col::FILE_NAME),
        Raw(col::FILE_DEV),
        Dec("file_dev_major_minor", |e| {
            Text(e.file_dev.map(labels::dev_label))
        }),
        Raw(col::FILE_INO),
        Raw(col::FILE_PATH),
        Raw(col::PATH_SOURCE),
        Raw(col::PATH_TRUNCATED),
        Raw(col::PATH_LOSSY),
        Raw(col::FILE_DELETED),
        Raw(col::FILE_MEMFD),
        Raw(col::SOURCE),
        Raw(col::NEW_ADDR),
        Raw(col::NEW_LEN),
        Raw(col::CHILD_PID),
        Raw(col::EXIT_CODE),
        Dec("exit_status", |e| {
            Text(e.exit_code.map(labels::exit_status_label))
        }),
        Raw(col::LOST_COUNT),
        Raw(col::CGROUP_PATH),
        Raw(col::PIDNS_INO),
        Raw(col::NS_PID),
        Raw(col::NS_TID),
    ]
};

/// A value decoded for JSON output.
enum Decoded {
    Text(Option<String>),
    Name(Option<&'static str>),
    Int(Option<i64>),
}

impl Serialize for Decoded {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Text(text) => text.serialize(serializer),
            Self::Name(name) => name.serialize(serializer),
            Self::Int(int) => int.serialize(serializer),
        }
    }
}

/// The named parts of a record, ready to write: columns looked up once.
struct Layout<D> {
    parts: Vec<(&'static str, Slot<D>)>,
}

enum Slot<D> {
    Column(&'static schema::Column),
    Decoded(D),
}

impl<D: Copy> Layout<D> {
    /// `parts`, with the columns named by `name_of`.
    fn new(parts: &[Part<D>], name_of: fn(&schema::Column) -> &'static str) -> Self {
        let parts = parts
            .iter()
            .filter_map(|part| match part {
                Part::Column(column) => {
                    let column = schema::Column::named(column)?;
                    Some((name_of(column), Slot::Column(column)))
                }
                Part::Decoded(name, decode) => Some((*name, Slot::Decoded(*decode))),
            })
            .collect();
        Self { parts }
    }

    fn names(&self) -> impl Iterator<Item = &'static str> + '_ {
        self.parts.iter().map(|(name, _)| *name)
    }
}

impl Layout<JsonDecoder> {
    fn json() -> Self {
        Self::json_from(&JSON_PARTS)
    }

    /// Writes the CSV cells of `event` as one record: numbers in decimal, `None` empty, text
    /// made safe to open in a spreadsheet ([`spreadsheet_safe`]). Text is written from where it
    /// is and numbers are formatted into `scratch`, reused from row to row: no cell is a string
    /// of its own (a row has 58 cells).
    fn write_csv_record<W: Write>(
        &self,
        event: &Event<'_>,
        writer: &mut csv::Writer<W>,
        scratch: &mut String,
    ) -> csv::Result<()> {
        for (_, slot) in &self.parts {
            match slot {
                Slot::Column(column) => match column.value(event) {
                    Value::Str(text) => write_text_cell(writer, text, scratch)?,
                    Value::Null => writer.write_field(b"")?,
                    value => write_number_cell(writer, value, scratch)?,
                },
                Slot::Decoded(decode) => match decode(event) {
                    Decoded::Text(text) => {
                        write_text_cell(writer, text.as_deref().unwrap_or_default(), scratch)?;
                    }
                    Decoded::Name(name) => {
                        write_text_cell(writer, name.unwrap_or_default(), scratch)?;
                    }
                    Decoded::Int(None) => writer.write_field(b"")?,
                    Decoded::Int(Some(int)) => write_number_cell(writer, int, scratch)?,
                },
            }
        }
        writer.write_record(None::<&[u8]>)
    }

    /// `parts`, then every column they do not list.
    fn json_from(parts: &[Part<JsonDecoder>]) -> Self {
        let mut layout = Self::new(parts, |column| column.field);
        let listed = |column: &schema::Column| {
            parts
                .iter()
                .any(|part| matches!(part, Part::Column(name) if *name == column.name))
        };
        for column in schema::COLUMNS.iter().filter(|column| !listed(column)) {
            layout.parts.push((column.field, Slot::Column(column)));
        }
        layout
    }
}

/// A text cell that a spreadsheet would run as a formula (it starts with `=`, `+`, `-`, `@`, a
/// tab or a carriage return) gets a leading `'`, as OWASP recommends for CSV; other text is as
/// recorded. Any traced process can name itself or a file so.
pub(crate) fn spreadsheet_safe(text: &str) -> String {
    if runs_in_a_spreadsheet(text) {
        format!("'{text}")
    } else {
        text.to_owned()
    }
}

/// Whether a spreadsheet would run `text` as a formula ([`spreadsheet_safe`]).
fn runs_in_a_spreadsheet(text: &str) -> bool {
    text.starts_with(['=', '+', '-', '@', '\t', '\r'])
}

/// Writes `text` as a CSV cell, made safe as [`spreadsheet_safe`] makes it (in `scratch` when
/// it needs the leading `'`).
fn write_text_cell<W: Write>(
    writer: &mut csv::Writer<W>,
    text: &str,
    scratch: &mut String,
) -> csv::Result<()> {
    if !runs_in_a_spreadsheet(text) {
        return writer.write_field(text);
    }
    scratch.clear();
    scratch.push('\'');
    scratch.push_str(text);
    writer.write_field(scratch.as_bytes())
}

/// Writes `number` as a CSV cell, formatted in `scratch`.
fn write_number_cell<W: Write>(
    writer: &mut csv::Writer<W>,
    number: impl std::fmt::Display,
    scratch: &mut String,
) -> csv::Result<()> {
    use std::fmt::Write as _;
    scratch.clear();
    write!(scratch, "{number}").expect("formatting into a String does not fail");
    writer.write_field(scratch.as_bytes())
}

/// The stack printed with a row (`--stacks`).
#[derive(Clone, Copy, Debug)]
enum StackOf<'a> {
    /// No --stacks: nothing is printed.
    NotAsked,
    /// The row has no stack.
    None,
    /// Its frames, innermost first (none: its frame rows are missing).
    Frames(&'a [Frame]),
}

/// One JSON Lines object: raw numbers, and decoded names beside them.
struct JsonRow<'a> {
    layout: &'a Layout<JsonDecoder>,
    event: &'a Event<'a>,
    stack: StackOf<'a>,
}

impl Serialize for JsonRow<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let stack = usize::from(!matches!(self.stack, StackOf::NotAsked));
        let mut map = serializer.serialize_map(Some(self.layout.parts.len() + stack))?;
        for (name, slot) in &self.layout.parts {
            match slot {
                Slot::Column(column) => map.serialize_entry(name, &column.value(self.event))?,
                Slot::Decoded(decode) => map.serialize_entry(name, &decode(self.event))?,
            }
        }
        match self.stack {
            StackOf::NotAsked => {}
            StackOf::None => map.serialize_entry("stack", &())?,
            StackOf::Frames(frames) => map.serialize_entry("stack", frames)?,
        }
        map.end()
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use mmap_format::{
        metadata::CaptureMetadata,
        reader::CaptureReader,
        schema::COLUMNS,
        writer::{CaptureWriter, WriterConfig},
    };

    use super::*;

    /// A row with every column set, each (but the three booleans) to a value no other column
    /// has. A new column is a compile error here until it gets its value.
    fn every_column_set() -> Event<'static> {
        Event {
            kind: RowKind::Exec,
            syscall: Some(Syscall::Mremap),
            ts_ns: 1_767_225_600_000_000_001,
            ts_exit_ns: Some(1_767_225_600_000_000_002),
            cpu: 3,
            pid: 4,
            tid: 5,
            ppid: 6,
            uid: 7,
            gid: 8,
            comm: Cow::Borrowed("comm"),
            cgroup_id: 9,
            addr: Some(0x7f00_0000_0010),
            len: Some(11),
            prot: Some(12),
            flags: Some(14),
            fd: Some(15),
            off: Some(16),
            ret: Some(-17),
            file_dev: Some(18),
            file_ino: Some(19),
            file_name: Some(Cow::Borrowed("name.so")),
            source: Some(Cow::Borrowed("source")),
            new_addr: Some(0x7f00_0000_0020),
            new_len: Some(21),
            child_pid: Some(22),
            exit_code: Some(23),
            file_path: Some(Cow::Borrowed("/path/name.so")),
            path_source: Some(Cow::Borrowed("path_source")),
            path_truncated: Some(true),
            file_deleted: Some(false),
            file_memfd: Some(true),
            cgroup_path: Some(Cow::Borrowed("/cgroup")),
            pidns_ino: Some(24),
            ns_pid: Some(25),
            ns_tid: Some(26),
            lost_count: Some(27),
            path_lossy: Some(true),
            stack_id: Some(28),
            frame_index: Some(29),
            frame_addr: Some(0x5555_0000_0030),
            frame_module: Some(Cow::Borrowed("/usr/lib/module.so")),
            frame_build_id: Some(Cow::Borrowed("0123abcd")),
            frame_offset: Some(31),
            frame_function: Some(Cow::Borrowed("function")),
            frame_file: Some(Cow::Borrowed("file.c")),
            frame_line: Some(32),
            symbol_source: Some(Cow::Borrowed("map_files")),
        }
    }

    /// What a sink writes for `events`.
    fn output(format: EventsFormat, events: &[Event<'_>]) -> String {
        let mut out = Vec::new();
        let mut sink = Sink::new(format, &mut out).expect("sink");
        for event in events {
            sink.write(event).expect("write");
        }
        sink.finish().expect("finish");
        String::from_utf8(out).expect("UTF-8")
    }

    /// Writer -> reader -> CSV -> JSON for every column of the format: a column that misses a
    /// step fails here.
    #[test]
    fn every_column_goes_through_writer_reader_csv_and_json() {
        let written = every_column_set();
        let values: Vec<Value<'_>> = COLUMNS.iter().map(|c| c.value(&written)).collect();
        for (column, value) in COLUMNS.iter().zip(&values) {
            assert_ne!(*value, Value::Null, "{} is set", column.name);
            let twins = values.iter().filter(|other| *other == value).count();
            assert!(
                twins == 1 || matches!(value, Value::Bool(_)),
                "{} has a value of its own",
                column.name
            );
        }

        let mut writer = CaptureWriter::new(Vec::new(), WriterConfig::default()).expect("writer");
        writer.push(&written).expect("push");
        let bytes = writer.finish(&CaptureMetadata::default()).expect("finish");
        let reader = CaptureReader::from_bytes(bytes).expect("open");
        let read: Vec<_> = reader
            .events()
            .expect("events")
            .collect::<Result<_, _>>()
            .expect("decode");
        assert_eq!(read, std::slice::from_ref(&written));
        for (column, value) in COLUMNS.iter().zip(&values) {
            assert_eq!(column.value(&read[0]), *value, "{} read back", column.name);
        }

        let csv = output(EventsFormat::Csv, &read);
        let mut records = csv::Reader::from_reader(csv.as_bytes());
        let header = records.headers().expect("header").clone();
        let names: Vec<&str> = Layout::json().names().collect();
        assert_eq!(
            header.iter().collect::<Vec<_>>(),
            names,
            "CSV and JSON columns"
        );
        let record = records.records().next().expect("a record").expect("CSV");
        for column in &COLUMNS {
            let cell = header
                .iter()
                .position(|h| h == column.field)
                .unwrap_or_else(|| panic!("{} in the CSV header", column.field));
            let expected = match column.value(&read[0]) {
                Value::Str(text) => spreadsheet_safe(text),
                value => value.to_string(),
            };
            assert_eq!(record[cell], expected, "CSV {}", column.field);
        }

        let json = output(EventsFormat::Json, &read);
        let object: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(json.trim_end()).expect("one JSON object");
        for column in &COLUMNS {
            let expected = serde_json::to_value(column.value(&written)).expect("value");
            assert_eq!(
                object.get(column.field),
                Some(&expected),
                "JSON {}",
                column.field
            );
        }
        assert_eq!(object["errno"], 17);
        assert_eq!(object["ts_ns"], 1_767_225_600_000_000_001_i64);
    }

    #[test]
    fn text_that_a_spreadsheet_would_run_gets_a_quote() {
        for formula in ["=1+1", "+1", "-ENOMEM", "@SUM(A1)", "\tx", "\rx"] {
            assert_eq!(spreadsheet_safe(formula), format!("'{formula}"));
        }
        assert_eq!(spreadsheet_safe("bash"), "bash");
        assert_eq!(spreadsheet_safe("/usr/lib/libc.so.6"), "/usr/lib/libc.so.6");
    }

    /// Every column is listed at most once; the columns JSON_PARTS does not list (added to the
    /// format after it) are appended, so JSON Lines carry every column.
    #[test]
    fn json_parts_list_each_column_at_most_once() {
        let listed: Vec<&str> = JSON_PARTS
            .iter()
            .filter_map(|part| match part {
                Part::Column(name) => Some(*name),
                Part::Decoded(..) => None,
            })
            .collect();
        let mut distinct = listed.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), listed.len());
        assert!(listed.iter().all(|name| col::ALL.contains(name)));
        let unlisted = COLUMNS.len() - listed.len();
        assert_eq!(Layout::json().parts.len(), JSON_PARTS.len() + unlisted);
    }

    /// A column the JSON parts do not list (one added to the format later) comes after them,
    /// under its field name.
    #[test]
    fn an_unlisted_column_is_appended_to_json() {
        let without_ns_tid: Vec<Part<JsonDecoder>> = JSON_PARTS
            .into_iter()
            .filter(|part| !matches!(part, Part::Column(col::NS_TID)))
            .collect();
        let layout = Layout::json_from(&without_ns_tid);
        let names: Vec<&str> = layout.names().collect();
        assert_eq!(names[without_ns_tid.len()], "ns_tid");
        let event = every_column_set();
        let line = serde_json::to_string(&JsonRow {
            layout: &layout,
            event: &event,
            stack: StackOf::NotAsked,
        })
        .expect("JSON");
        assert!(line.contains(r#","ns_tid":26"#), "{line}");
    }

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
            rows: RowFilter {
                since: Some(TimeSpec::Absolute(0)),
                ..RowFilter::default()
            },
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
