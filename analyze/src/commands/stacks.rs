//! `mmap-analyze stacks`: the user call stacks that made the calls, heaviest first, as a table,
//! as flame-graph input (folded stacks) or as JSON.

use std::{
    io::{self, IsTerminal as _, Write},
    process::ExitCode,
};

use anyhow::Context as _;
use arrow::array::{Array as _, ArrayRef};
use datafusion::scalar::ScalarValue;
use serde_json::{Map, Value};

use super::{calls::Calls, top::SUM_BYTES_MAPPED};
use crate::{
    cli::Inputs,
    engine::{
        EngineError,
        filter::RowFilter,
        stacks::{FRAMES, FRAMES_MISSING, STACKS, folded_name, text_column, u64_column},
    },
    input, labels, output,
    table::visible,
};

/// Show the user call stacks that made the calls: calls and bytes mapped per stack, heaviest
/// first.
///
/// A capture holds call stacks when it was recorded with `mmap-recorder record --stacks fp` or
/// `--stacks dwarf` (format 1.4): each call of the system calls it took stacks for refers to its
/// stack, whose frames were named (function, else module+offset) while the binaries were there.
///
/// - `calls`: the calls made from the stack (failed ones too).
///
/// - `bytes`: the bytes they added to address spaces: the length of every successful mmap, plus
///   the growth (new_len - old_len) of every successful mremap that grew a mapping (as `top
///   --by bytes` counts them). Shrinking, unmapping, mprotect and brk count 0.
///
/// Stacks with the same frames (by name) are merged, also across processes and recordings: that
/// is what a flame graph wants. --by-process keeps each process's stacks apart; JSON output
/// always does, and keeps the stack ids.
///
/// Formats:
///
/// - `table`: one block per stack: its counts, then its frames innermost first (the system-call
///   wrapper, then its callers out to the root), as perf report shows callees.
///
/// - `folded`: the input of flame-graph tools (inferno-flamegraph, flamegraph.pl): one line per
///   stack, frames root first, separated by `;`, then a space and the count (calls, or bytes with
///   --by bytes): `main;outer;inner;mmap 123`. With --by-process the root frame is `COMM-PID`. A
///   `;` in a name is written `\u{3b}` and control characters as visible escapes (`\n`), so each
///   stack stays one line of frames. Stacks whose count is 0 are left out.
///
/// - `json`: JSON Lines, one object per stack of one process: capture_id, stack_id, pid, comm,
///   calls, bytes, folded (root first, as above) and frames (innermost first: index, addr,
///   module, build_id, offset, function, file, line, symbol_source, name).
///
/// A frame's name is its function, else `MODULE+0xOFFSET` (the module's file name and the
/// offset in it: `mmap-analyze symbolize` can name it later), else `0xADDRESS`. A call whose
/// stack has no frame rows in the inputs (a recording killed before its segment's frames were
/// written) counts under the one frame `[frames missing]` (JSON: `frames` empty, `folded` null).
/// Frames of a stack no selected call used are not shown.
///
/// Exit status: 0 on success, also when no call matched, and when the inputs hold no call stacks
/// (the output is empty and a note on stderr says to record with --stacks: a script gets an
/// empty flame graph, not an error); 1 when --where is not a valid predicate; 2 on a usage error
/// or an unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    #[command(flatten)]
    filter: RowFilter,

    /// What to count per stack and rank by (the count of folded lines).
    #[arg(long, value_enum, default_value_t = By::Calls)]
    by: By,

    /// Keep the stacks of each process apart (folded: a root frame COMM-PID).
    #[arg(long)]
    by_process: bool,

    /// Show this many stacks (0: all of them). Default: 20 in a table, all in folded and JSON
    /// output.
    #[arg(long, value_name = "N")]
    limit: Option<u64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = StacksFormat::Table)]
    format: StacksFormat,
}

/// What `stacks` counts and ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum By {
    /// The number of calls.
    Calls,
    /// The bytes mapped (successful mmap, mremap growth).
    Bytes,
}

/// How the stacks are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum StacksFormat {
    /// A block per stack: its counts, then its frames innermost first.
    Table,
    /// Folded stacks for flame-graph tools: `main;outer;inner;mmap 123`.
    Folded,
    /// JSON Lines: one object per stack of one process, with its ids and every frame.
    Json,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze stacks rec/
  mmap-analyze stacks rec/ --by bytes --syscall mmap --limit 5
  mmap-analyze stacks rec/ --format folded --by bytes | inferno-flamegraph > bytes.svg
  mmap-analyze stacks rec/ --pid 1234 --where \"len >= 1048576\" --format json";

/// What `stacks` prints when no input was recorded with stacks.
pub const NO_STACKS: &str = "no call stacks in this capture: record with --stacks fp|dwarf";

/// Stacks a table shows unless --limit says otherwise.
const TABLE_LIMIT: u64 = 20;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open(&args.inputs)?;
    if !readers.iter().any(|r| r.metadata().stacks.is_some()) {
        output::note(NO_STACKS);
        return Ok(ExitCode::SUCCESS);
    }
    let calls = Calls::over(&readers, &args.filter)?;
    let limit = args.limit.unwrap_or(match args.format {
        StacksFormat::Table => TABLE_LIMIT,
        StacksFormat::Folded | StacksFormat::Json => 0,
    });
    let mut out = output::stdout();
    let shown = match args.format {
        StacksFormat::Json => write_json(&calls, args.by, limit, &mut out)?,
        format => write_merged(&calls, &args, format, limit, &mut out)?,
    };
    out.flush().context("writing to stdout")?;
    if shown == 0 && calls.filtered() && io::stderr().is_terminal() {
        output::note("no call with a stack matched the filter");
    }
    Ok(ExitCode::SUCCESS)
}

/// The calls with a stack, by recording, stack and process: `capture_id, stack_id, pid, comm,
/// calls, bytes`.
fn per_stack(calls: &Calls) -> String {
    let filter = match calls.where_clause() {
        "" => " WHERE stack_id IS NOT NULL".to_owned(),
        clause => format!("{clause} AND stack_id IS NOT NULL"),
    };
    format!(
        "SELECT capture_id, stack_id, pid, min(comm) AS comm, count(*) AS calls, \
         {SUM_BYTES_MAPPED} AS bytes \
         FROM calls{filter} GROUP BY capture_id, stack_id, pid"
    )
}

/// `ORDER BY` terms ranking the rows of [`per_stack`] (prefixed `prefix`).
fn rank(by: By, prefix: &str) -> String {
    match by {
        By::Calls => format!("{prefix}calls DESC, {prefix}bytes DESC"),
        By::Bytes => format!("{prefix}bytes DESC, {prefix}calls DESC"),
    }
}

fn limit_clause(limit: u64) -> String {
    match limit {
        0 => String::new(),
        n => format!(" LIMIT {n}"),
    }
}

/// The table and folded output: stacks merged by their frames' names (and kept apart by
/// process with --by-process). Returns how many stacks were written.
fn write_merged(
    calls: &Calls,
    args: &Args,
    format: StacksFormat,
    limit: u64,
    out: &mut impl Write,
) -> Result<usize, EngineError> {
    // --by-process: one row per stack of one process (a stack id is one recording's).
    let keys = if args.by_process {
        "per.capture_id, per.stack_id, per.pid, "
    } else {
        ""
    };
    let query = format!(
        "WITH per AS ({per}), \
         names AS (SELECT capture_id, stack_id, min(folded) AS folded FROM {STACKS} \
                   GROUP BY capture_id, stack_id), \
         ranked AS (SELECT {keys}coalesce(names.folded, '{FRAMES_MISSING}') AS folded, \
                    arrow_cast(sum(per.calls), 'UInt64') AS calls, \
                    arrow_cast(sum(per.bytes), 'UInt64') AS bytes, \
                    arrow_cast(count(DISTINCT per.pid), 'UInt64') AS processes, \
                    min(per.pid) AS first_pid, min(per.comm) AS first_comm \
                    FROM per LEFT JOIN names \
                    ON (names.capture_id IS NOT DISTINCT FROM per.capture_id) \
                    AND names.stack_id = per.stack_id \
                    GROUP BY {keys}coalesce(names.folded, '{FRAMES_MISSING}')) \
         SELECT folded, calls, bytes, processes, first_pid, first_comm FROM ranked \
         ORDER BY {rank}, folded, first_pid{limit}",
        per = per_stack(calls),
        rank = rank(args.by, ""),
        limit = limit_clause(limit),
    );
    let mut shown = 0;
    for batch in calls.engine.sql(&query)? {
        let batch = batch?;
        let folded = text_column(&batch, 0)?;
        let [counts, bytes, processes] = [1, 2, 3].map(|i| u64_column(&batch, i));
        let (counts, bytes, processes) = (counts?, bytes?, processes?);
        let pids = u64_column(&batch, 4)?;
        let comms = text_column(&batch, 5)?;
        for row in 0..batch.num_rows() {
            let stack = Stack {
                folded: folded[row].as_deref().unwrap_or(FRAMES_MISSING),
                calls: counts[row].unwrap_or(0),
                bytes: bytes[row].unwrap_or(0),
                processes: processes[row].unwrap_or(0),
                pid: pids[row].unwrap_or(0),
                comm: comms[row].as_deref().unwrap_or(""),
            };
            let written = match format {
                StacksFormat::Folded => stack.write_folded(out, args.by, args.by_process),
                _ => stack.write_block(out, shown == 0).map(|()| true),
            };
            if written.map_err(EngineError::Output)? {
                shown += 1;
            }
        }
    }
    Ok(shown)
}

/// One line of table or folded output.
struct Stack<'a> {
    /// Frame names, root first, `;` between them (escaped by `folded_name`).
    folded: &'a str,
    calls: u64,
    bytes: u64,
    /// Processes whose calls are counted; the first of them (lowest pid) and its thread name.
    processes: u64,
    pid: u64,
    comm: &'a str,
}

impl Stack<'_> {
    /// `main;outer;inner;mmap 123`; nothing for a count of 0. Returns whether a line was
    /// written.
    fn write_folded(&self, out: &mut impl Write, by: By, by_process: bool) -> io::Result<bool> {
        let count = match by {
            By::Calls => self.calls,
            By::Bytes => self.bytes,
        };
        if count == 0 {
            return Ok(false);
        }
        if by_process {
            write!(out, "{}-{};", folded_name(self.comm), self.pid)?;
        }
        writeln!(out, "{} {count}", self.folded)?;
        Ok(true)
    }

    /// The counts, then one frame per line, innermost first.
    fn write_block(&self, out: &mut impl Write, first: bool) -> io::Result<()> {
        if !first {
            writeln!(out)?;
        }
        let who = if self.processes == 1 {
            format!("pid {} ({})", self.pid, self.comm)
        } else {
            format!("{} processes", self.processes)
        };
        writeln!(
            out,
            "{} call{}, {} mapped, {}",
            labels::thousands(self.calls),
            labels::plural(self.calls),
            labels::human_bytes(self.bytes),
            visible(&who)
        )?;
        for frame in self.folded.rsplit(';') {
            writeln!(out, "    {}", visible(frame))?;
        }
        Ok(())
    }
}

/// The JSON output: one object per stack of one process, with its ids and every frame. Returns
/// how many objects were written.
fn write_json(
    calls: &Calls,
    by: By,
    limit: u64,
    out: &mut impl Write,
) -> Result<usize, EngineError> {
    let query = format!(
        "WITH per AS ({per} ORDER BY {rank}, capture_id, stack_id, pid{limit}), \
         one AS (SELECT capture_id, stack_id, min(file) AS file FROM {FRAMES} \
                 GROUP BY capture_id, stack_id), \
         folded AS (SELECT file, stack_id, folded FROM {STACKS}) \
         SELECT per.capture_id, per.stack_id, per.pid, per.comm, \
                per.calls, per.bytes, folded.folded, \
                f.frame_index AS \"index\", f.frame_addr AS \"addr\", \
                f.frame_module AS \"module\", f.frame_build_id AS \"build_id\", \
                f.frame_offset AS \"offset\", f.frame_function AS \"function\", \
                f.frame_file AS \"file\", f.frame_line AS \"line\", f.symbol_source, f.name \
         FROM per \
         LEFT JOIN one ON (one.capture_id IS NOT DISTINCT FROM per.capture_id) \
              AND one.stack_id = per.stack_id \
         LEFT JOIN folded ON folded.file = one.file AND folded.stack_id = per.stack_id \
         LEFT JOIN {FRAMES} f ON f.file = one.file AND f.stack_id = per.stack_id \
         ORDER BY {rank_per}, per.capture_id, per.stack_id, per.pid, f.frame_index",
        per = per_stack(calls),
        rank = rank(by, ""),
        rank_per = rank(by, "per."),
        limit = limit_clause(limit),
    );
    let mut current: Option<JsonStack> = None;
    let mut written = 0;
    for batch in calls.engine.sql(&query)? {
        let batch = batch?;
        let schema = batch.schema();
        let names: Vec<&str> = schema.fields().iter().map(|f| f.name().as_str()).collect();
        for row in 0..batch.num_rows() {
            let mut values = Vec::with_capacity(batch.num_columns());
            for column in batch.columns() {
                values.push(json_value(column, row)?);
            }
            let (stack_values, frame_values) = values.split_at(STACK_COLUMNS.min(values.len()));
            let (stack_names, frame_names) = names.split_at(STACK_COLUMNS.min(names.len()));
            let key: Vec<Value> = stack_values.iter().take(3).cloned().collect();
            if current.as_ref().is_none_or(|stack| stack.key != key) {
                if let Some(done) = current.take() {
                    done.write(out).map_err(EngineError::Output)?;
                    written += 1;
                }
                current = Some(JsonStack {
                    key,
                    object: object(stack_names, stack_values),
                    frames: Vec::new(),
                });
            }
            // A stack without frame rows has one row of NULL frame columns.
            if let Some(stack) = &mut current
                && frame_values.first().is_some_and(|index| !index.is_null())
            {
                let frame = object(frame_names, frame_values);
                stack.frames.push(Value::Object(frame));
            }
        }
    }
    if let Some(done) = current.take() {
        done.write(out).map_err(EngineError::Output)?;
        written += 1;
    }
    Ok(written)
}

/// The columns of the JSON query that describe the stack (`capture_id`, `stack_id`, `pid` (its
/// key), `comm`, `calls`, `bytes`, `folded`); the frame's follow.
const STACK_COLUMNS: usize = 7;

/// A stack of one process being read from the rows of the JSON query, one row per frame.
struct JsonStack {
    /// `capture_id`, `stack_id`, `pid`.
    key: Vec<Value>,
    object: Map<String, Value>,
    frames: Vec<Value>,
}

impl JsonStack {
    /// One JSON line: the stack's values and its `frames`.
    fn write(mut self, out: &mut impl Write) -> io::Result<()> {
        self.object
            .insert("frames".to_owned(), Value::Array(self.frames));
        serde_json::to_writer(&mut *out, &self.object)?;
        out.write_all(b"\n")
    }
}

/// A JSON object of `names` and `values`.
fn object(names: &[&str], values: &[Value]) -> Map<String, Value> {
    names
        .iter()
        .zip(values)
        .map(|(name, value)| ((*name).to_owned(), value.clone()))
        .collect()
}

/// The value at `row` of `array` as JSON: numbers as numbers, text as strings.
fn json_value(array: &ArrayRef, row: usize) -> Result<Value, EngineError> {
    if array.is_null(row) {
        return Ok(Value::Null);
    }
    let scalar = ScalarValue::try_from_array(array, row).map_err(EngineError::Query)?;
    Ok(scalar_json(scalar))
}

fn scalar_json(scalar: ScalarValue) -> Value {
    match scalar {
        ScalarValue::UInt64(Some(n)) => n.into(),
        ScalarValue::UInt32(Some(n)) => n.into(),
        ScalarValue::UInt16(Some(n)) => n.into(),
        ScalarValue::UInt8(Some(n)) => n.into(),
        ScalarValue::Int64(Some(n)) => n.into(),
        ScalarValue::Int32(Some(n)) => n.into(),
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => text.into(),
        ScalarValue::Dictionary(_, value) => scalar_json(*value),
        scalar if scalar.is_null() => Value::Null,
        scalar => scalar.to_string().into(),
    }
}
