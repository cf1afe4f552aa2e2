//! `mmap-analyze extract`: a smaller capture of the selected rows, with the rows `maps` needs to
//! rebuild the selected processes' address spaces.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    process::ExitCode,
};

use arrow::{
    array::{Array as _, AsArray as _},
    datatypes::{Int64Type, UInt32Type, UInt64Type},
};
use mmap_format::{event::RowKind, reader::CaptureReader, schema::col};

use crate::{
    cli::Inputs,
    derive::{self, Output, Parents, WrittenFormat},
    engine::{
        Engine,
        filter::{RowFilter, literal, timestamp},
    },
    input, output,
    replay::EFFECT_TIME,
    timespec::{Span, TimeSpec},
};

/// Write the selected rows of captures into a smaller capture.
///
/// The rows that match every option given (as in `events`: --pid, --comm, --syscall, --since,
/// --until, --where) are written, in the order of the inputs, with what `maps` needs to rebuild
/// the address space of each selected process up to its last selected row: its snapshot, fork,
/// exec and exit rows and the fork rows that created it, up to the last selected row; every row
/// of the processes it was forked from, up to the fork; and every `lost` row (of every CPU: a
/// loss anywhere may hide a change, and they place the recorder's loss counters in time). Rows
/// of several captures are merged by time.
///
/// Call stacks (format 1.4): the `frame` rows of every stack that a written call refers to are
/// written too, and no other `frame` row.
///
/// `maps --pid P --at T` on the extract then gives what it gives on the inputs when the
/// selection keeps every system call of P up to T (--pid and --until do); --comm selects
/// threads by name (a process's threads can have other names), and with --since, --syscall or
/// a --where that drops calls of P, mappings made by the dropped calls are missing.
///
/// The extract's metadata is the inputs' (time range, counters, which describe the whole
/// recording), with the extract step added to its provenance: each input's capture id, segment
/// index, rows, size and SHA-256, and the selection as given.
///
/// The output is written to a temporary file next to OUT and renamed when complete; an existing
/// OUT is replaced only with --force, and never when it is an input, a directory or a symbolic
/// link.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The capture file to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,

    #[command(flatten)]
    filter: RowFilter,

    /// Replace OUT if it exists (a regular file that is not an input).
    #[arg(long)]
    force: bool,

    /// How what was written is printed.
    #[arg(long, value_enum, default_value_t = WrittenFormat::Text)]
    format: WrittenFormat,
}

const EXAMPLES: &str = "\
Examples:
  # One process's rows (and what maps needs for it) from a recording
  mmap-analyze extract rec/ -o pid1234.parquet --pid 1234

  # The first 10 s of everything java did
  mmap-analyze extract rec/ -o java.parquet --comm java --until +10s

  # Large mappings only, in any SQL
  mmap-analyze extract build.parquet -o big.parquet --where \"len >= 1048576\"";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    input::remote::refuse(&args.inputs.paths, "extract")?;
    let readers = derive::order(input::open(&args.inputs)?);
    let output = Output::check(&args.output, args.force, &readers, &args.inputs.paths)?;
    let engine = Engine::open(&readers)?;
    let needs_rows = [args.filter.since, args.filter.until]
        .iter()
        .any(|spec| spec.is_some_and(|spec| !matches!(spec, TimeSpec::Absolute(_))));
    let span = if needs_rows {
        engine.span(&readers)?
    } else {
        Span::of_files(&readers)
    };
    let relation = input::rows();
    let predicate = match args.filter.sql(&engine, &relation, &span)? {
        Some(selected) => {
            let context = Context::read(&engine, &relation, &selected)?;
            if context.is_empty() {
                output::note("no row matches the selection: the extract has no rows");
            }
            Some(with_frames(
                &engine,
                &relation,
                &context.predicate(&selected),
            )?)
        }
        None => None,
    };
    let parents = Parents::hash(&readers)?;
    let mut metadata = derive::merge(&readers)?;
    metadata.provenance.push(derive::derivation(
        "extract",
        parents.files.clone(),
        selection(&args.filter),
    ));
    let rows = derive::rows_in_order(&readers, |reader: &CaptureReader| {
        Ok(Box::new(
            input::file_rows(&engine, reader, predicate.as_deref(), &[])?
                .map(|row| row.map_err(anyhow::Error::new)),
        ))
    })?;
    let written = derive::write(
        &output,
        &readers,
        &parents,
        rows,
        &metadata,
        "extracting",
        Some,
    )?;
    derive::print(&written, args.format)?;
    Ok(ExitCode::SUCCESS)
}

/// The selection as given, for the provenance.
fn selection(filter: &RowFilter) -> Vec<String> {
    let mut words = Vec::new();
    for pid in &filter.pid {
        words.extend(["--pid".to_owned(), pid.to_string()]);
    }
    for comm in &filter.comm {
        words.extend(["--comm".to_owned(), comm.clone()]);
    }
    for syscall in &filter.syscall {
        words.extend(["--syscall".to_owned(), syscall.to_string()]);
    }
    if let Some(since) = filter.since {
        words.extend(["--since".to_owned(), since.to_string()]);
    }
    if let Some(until) = filter.until {
        words.extend(["--until".to_owned(), until.to_string()]);
    }
    if let Some(predicate) = &filter.predicate {
        words.extend(["--where".to_owned(), predicate.clone()]);
    }
    words
}

/// What `maps` needs beside the selected rows.
#[derive(Debug, Default)]
struct Context {
    /// The processes of the selected rows.
    pids: BTreeSet<u32>,
    /// The last time a selected row takes effect.
    until: Option<i64>,
    /// Processes the selected ones were forked from (transitively), each with the last fork
    /// time its rows are needed up to.
    ancestors: BTreeMap<u32, i64>,
}

impl Context {
    /// Reads which processes the selection holds and up to when, and the forks that created
    /// them.
    fn read(engine: &Engine, relation: &str, selected: &str) -> anyhow::Result<Self> {
        let mut context = Self::default();
        let query = format!(
            "SELECT {pid}, max(CAST({EFFECT_TIME} AS BIGINT)) AS until FROM {relation} WHERE \
             {selected} GROUP BY {pid}",
            pid = col::PID,
        );
        let mut selected_until: Vec<(u32, i64)> = Vec::new();
        for batch in engine.sql(&query)? {
            let batch = batch?;
            let pids = batch.column(0).as_primitive::<UInt32Type>();
            let times = batch.column(1).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                let until = times.is_valid(row).then(|| times.value(row));
                let pid = pids.value(row);
                context.pids.insert(pid);
                if let Some(until) = until {
                    context.until = Some(context.until.map_or(until, |t| t.max(until)));
                    selected_until.push((pid, until));
                }
            }
        }
        let Some(until) = context.until else {
            return Ok(context);
        };
        // child -> (parent, fork time), for the forks up to the last selected row.
        let forks = format!(
            "SELECT {pid}, {child}, CAST({ts} AS BIGINT) FROM events WHERE {kind} = {fork} AND \
             {child} IS NOT NULL AND {ts} <= {at}",
            pid = col::PID,
            child = col::CHILD_PID,
            ts = col::TS,
            kind = col::KIND,
            fork = literal(RowKind::Fork.as_str()),
            at = timestamp(until),
        );
        let mut parents: HashMap<u32, Vec<(u32, i64)>> = HashMap::new();
        for batch in engine.sql(&forks)? {
            let batch = batch?;
            let pids = batch.column(0).as_primitive::<UInt32Type>();
            let children = batch.column(1).as_primitive::<UInt32Type>();
            let times = batch.column(2).as_primitive::<Int64Type>();
            for row in 0..batch.num_rows() {
                parents
                    .entry(children.value(row))
                    .or_default()
                    .push((pids.value(row), times.value(row)));
            }
        }
        // Every ancestor, with the latest fork its rows are needed up to.
        let mut todo = selected_until;
        while let Some((child, bound)) = todo.pop() {
            for &(parent, at) in parents.get(&child).into_iter().flatten() {
                if at > bound {
                    continue;
                }
                let known = context.ancestors.entry(parent).or_insert(i64::MIN);
                if at > *known {
                    *known = at;
                    todo.push((parent, at));
                }
            }
        }
        Ok(context)
    }

    fn is_empty(&self) -> bool {
        self.pids.is_empty()
    }

    /// The selection, or a row maps needs.
    fn predicate(&self, selected: &str) -> String {
        let Some(until) = self.until else {
            return format!("({selected})");
        };
        let kinds = |kinds: &[RowKind]| {
            kinds
                .iter()
                .map(|k| literal(k.as_str()))
                .collect::<Vec<_>>()
                .join(", ")
        };
        let list = |pids: &mut dyn Iterator<Item = u32>| {
            pids.map(|p| p.to_string()).collect::<Vec<_>>().join(", ")
        };
        let at = timestamp(until);
        let pids = list(&mut self.pids.iter().copied());
        let mut terms = vec![
            format!("({selected})"),
            format!(
                "({kind} IN ({lifecycle}) AND {pid} IN ({pids}) AND {ts} <= {at})",
                kind = col::KIND,
                lifecycle = kinds(&[
                    RowKind::Snapshot,
                    RowKind::Fork,
                    RowKind::Exec,
                    RowKind::Exit
                ]),
                pid = col::PID,
                ts = col::TS,
            ),
            format!(
                "({kind} = {fork} AND {child} IN ({pids}) AND {ts} <= {at})",
                kind = col::KIND,
                fork = literal(RowKind::Fork.as_str()),
                child = col::CHILD_PID,
                ts = col::TS,
            ),
            // Every lost row: few, and without them the recorder's loss counters could not be
            // placed in time (maps would call every loss untimed).
            format!(
                "{kind} = {lost}",
                kind = col::KIND,
                lost = literal(RowKind::Lost.as_str()),
            ),
        ];
        // Ancestors grouped by the time their rows are needed up to.
        let mut by_time: BTreeMap<i64, Vec<u32>> = BTreeMap::new();
        for (&pid, &at) in &self.ancestors {
            by_time.entry(at).or_default().push(pid);
        }
        for (at, pids) in by_time {
            terms.push(format!(
                "({pid} IN ({pids}) AND {ts} <= {at})",
                pid = col::PID,
                pids = list(&mut pids.into_iter()),
                ts = col::TS,
                at = timestamp(at),
            ));
        }
        terms.join(" OR ")
    }
}

/// `rows` (an SQL predicate) without the `frame` rows it selects, and with the `frame` rows of
/// every call stack that the calls it selects refer to (a frame row carries the process of the
/// first call that had its stack, which may not be a selected one).
fn with_frames(engine: &Engine, relation: &str, rows: &str) -> anyhow::Result<String> {
    let frame = literal(RowKind::Frame.as_str());
    let query = format!(
        "SELECT DISTINCT {stack} FROM {relation} WHERE ({rows}) AND {kind} <> {frame} AND \
         {stack} IS NOT NULL",
        stack = col::STACK_ID,
        kind = col::KIND,
    );
    let mut stacks: BTreeSet<u64> = BTreeSet::new();
    for batch in engine.sql(&query)? {
        let batch = batch?;
        let ids = batch.column(0).as_primitive::<UInt64Type>();
        stacks.extend(ids.iter().flatten());
    }
    let calls = format!("(({rows}) AND {kind} <> {frame})", kind = col::KIND);
    if stacks.is_empty() {
        return Ok(calls);
    }
    let ids: Vec<String> = stacks.iter().map(u64::to_string).collect();
    Ok(format!(
        "{calls} OR ({kind} = {frame} AND {stack} IN ({}))",
        ids.join(", "),
        kind = col::KIND,
        stack = col::STACK_ID,
    ))
}
