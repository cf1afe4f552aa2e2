//! `mmap-analyze top`: the processes, names, files, system calls or cgroups with the most calls,
//! bytes mapped or time spent in calls.

use std::{collections::HashMap, process::ExitCode, sync::Arc};

use arrow::{
    array::{ArrayRef, AsArray, Int64Array, RecordBatch, StringArray},
    compute::{SortColumn, SortOptions, concat_batches, lexsort_to_indices, take_record_batch},
    datatypes::{DataType, Field, Schema, UInt32Type},
};
use datafusion::{error::DataFusionError, scalar::ScalarValue};

use super::{
    calls::{self, Calls, Group, group_list, key_columns, select_list},
    latency::{arrow_error, distributions},
};
use crate::{
    cli::Inputs,
    engine::{
        EngineError,
        filter::RowFilter,
        intern,
        results::{TextFormat, Unit, write_batches},
    },
    output,
};

/// Show the groups of calls with the most calls, bytes mapped or time spent in calls.
///
/// One row per group (--group: process, thread name, mapped file, system call or cgroup), the
/// largest first, with the figures that answer "who is doing this" at a glance:
///
/// - `calls`: the calls made; `failures`: those that returned an error.
///
/// - `bytes`: the bytes the group's calls added to address spaces: the length of every
///   successful mmap, plus the growth (new_len - old_len) of every successful mremap that grew a
///   mapping. Shrinking, unmapping and brk are not counted.
///
/// - `total`: the time spent in the calls, entry to exit, summed (calls whose exit was not seen
///   count as 0).
///
/// - `p99` (with --by latency only): the exact 99th percentile (nearest rank) of the durations
///   of the group's calls, as `latency` computes it.
///
/// In a table, sizes and durations are human-readable; JSON (JSON Lines, one object per row)
/// and CSV give bytes and nanoseconds (`total_ns`, `p99_ns`).
///
/// Exit status: 0 on success (also when no call matched, and when the reader of stdout goes
/// away), 1 when --where is not a valid predicate, 2 on a usage error or an unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    #[command(flatten)]
    filter: RowFilter,

    /// What to rank by.
    #[arg(long, value_enum, default_value_t = By::Calls)]
    by: By,

    /// What to group the calls by.
    #[arg(long, value_enum, default_value_t = Group::Process)]
    group: Group,

    /// Show this many groups (0: all of them).
    #[arg(long, value_name = "N", default_value_t = 10)]
    limit: u64,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TextFormat::Table)]
    format: TextFormat,
}

/// What `top` ranks by.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum By {
    /// The number of calls.
    Calls,
    /// The bytes mapped (successful mmap, mremap growth).
    Bytes,
    /// The total time spent in calls (and show the 99th percentile).
    Latency,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze top rec/
  mmap-analyze top rec/ --by bytes --group file --limit 20
  mmap-analyze top rec/ --by latency --group syscall --pid 1234
  mmap-analyze top c.parquet --group cgroup --where \"errno IS NOT NULL\" --format csv";

/// The columns whose numbers a table shows for people.
const UNITS: &[(&str, Unit)] = &[
    ("bytes", Unit::Bytes),
    ("total_ns", Unit::Nanoseconds),
    ("p99_ns", Unit::Nanoseconds),
];

/// The bytes a group's successful calls added to the address space (an mmap's length, an
/// mremap's growth), as an aggregate: two sums with `FILTER`, which DataFusion applies as masks.
/// The same total as `sum(CASE ... END)` per row, in 38% of the time over 10 million calls.
pub(crate) const SUM_BYTES_MAPPED: &str = "\
     coalesce(sum(len) FILTER (WHERE syscall = 'mmap' AND errno IS NULL AND ret IS NOT NULL), \
     arrow_cast(0, 'UInt64')) + \
     coalesce(sum(new_len - len) FILTER (WHERE syscall = 'mremap' AND new_len > len \
     AND errno IS NULL AND ret IS NOT NULL), arrow_cast(0, 'UInt64'))";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    calls::run(&args.inputs, &args.filter, |calls| {
        let batch = top(calls, &args)?;
        let schema = batch.schema();
        write_batches(
            args.format.into(),
            &schema,
            [Ok(batch)],
            &mut output::stdout(),
            UNITS,
        )
    })
}

/// The groups ranked by the column `rank` (`calls` or `bytes`). String keys are grouped by
/// their [`intern`] numbers (each distinct string of a batch hashed once, not each row's), then
/// turned back into strings.
fn ranked(
    calls: &Calls,
    args: &Args,
    columns: &[(&str, &str)],
    rank: &str,
) -> Result<RecordBatch, EngineError> {
    let (function, strings) = intern::StringIds::function();
    calls.engine.register_udf(function);
    let keys: Vec<(String, &str, bool)> = columns
        .iter()
        .map(|&(expr, name)| match interned(expr) {
            Some(call) => (call, name, true),
            None => (expr.to_owned(), name, false),
        })
        .collect();
    let positions: Vec<String> = (1..=keys.len()).map(|i| i.to_string()).collect();
    // Ranked once the strings are back: ties are broken by the key, as in the query over the
    // strings, and the numbers follow the order the strings were first seen, not theirs.
    let query = format!(
        "SELECT {}, count(*) AS calls, count(errno) AS failures, \
         {SUM_BYTES_MAPPED} AS bytes, \
         sum(dur_ns) AS total_ns \
         FROM calls{} GROUP BY {}",
        keys.iter()
            .map(|(expr, name, _)| format!("{expr} AS {name}"))
            .collect::<Vec<_>>()
            .join(", "),
        calls.where_clause(),
        positions.join(", "),
    );
    let batches = calls.engine.sql(&query)?;
    let schema = batches.schema();
    let batches = batches.collect::<Result<Vec<_>, _>>()?;
    let batch = concat_batches(&schema, &batches).map_err(arrow_error)?;
    let strings = strings
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    for (i, (_, name, was_interned)) in keys.iter().enumerate() {
        if !was_interned {
            continue;
        }
        let ids = arrays[i].as_primitive::<UInt32Type>();
        let text: StringArray = ids
            .iter()
            .map(|id| id.and_then(|id| strings.get(id)))
            .collect();
        arrays[i] = Arc::new(text);
        fields[i] = Field::new(*name, DataType::Utf8, true);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(arrow_error)?;
    rank_and_cut(&batch, rank, keys.len(), args.limit)
}

/// `batch`'s rows by the column `rank` (most first), then by the key columns (the first
/// `keys`), the first `limit` of them (all for 0): what `ORDER BY rank DESC, 1, ... LIMIT` of
/// the query over the strings gave.
fn rank_and_cut(
    batch: &RecordBatch,
    rank: &str,
    keys: usize,
    limit: u64,
) -> Result<RecordBatch, EngineError> {
    let Some(rank) = batch.column_by_name(rank) else {
        return Err(EngineError::Query(DataFusionError::Internal(format!(
            "top: no column {rank}"
        ))));
    };
    let mut order = vec![SortColumn {
        values: Arc::clone(rank),
        options: Some(SortOptions {
            descending: true,
            nulls_first: true,
        }),
    }];
    order.extend(batch.columns().iter().take(keys).map(|values| SortColumn {
        values: Arc::clone(values),
        options: Some(SortOptions {
            descending: false,
            nulls_first: false,
        }),
    }));
    let limit = (limit > 0).then(|| usize::try_from(limit).unwrap_or(usize::MAX));
    let indices = lexsort_to_indices(&order, limit).map_err(arrow_error)?;
    take_record_batch(batch, &indices).map_err(arrow_error)
}

/// The [`intern::NAME`] call that stands for a string key expression of [`Group::columns`].
fn interned(expr: &str) -> Option<String> {
    let args = match expr {
        "comm" | "syscall" => expr,
        "coalesce(file_path, file_name, '[anon]')" => "file_path, file_name, '[anon]'",
        _ => return None,
    };
    Some(format!("{}({args})", intern::NAME))
}

/// The ranked groups.
fn top(calls: &Calls, args: &Args) -> Result<RecordBatch, EngineError> {
    let columns = key_columns(&[args.group]);
    match args.by {
        By::Calls => ranked(calls, args, &columns, "calls"),
        By::Bytes => ranked(calls, args, &columns, "bytes"),
        By::Latency => by_latency(calls, args, &columns),
    }
}

/// The groups ranked by time spent in calls, with the 99th percentile of their durations.
fn by_latency(
    calls: &Calls,
    args: &Args,
    columns: &[(&str, &str)],
) -> Result<RecordBatch, EngineError> {
    let keys: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
    let rank = "total_ns DESC NULLS LAST";
    let limit = match args.limit {
        0 => String::new(),
        n => format!(" LIMIT {n}"),
    };
    let query = format!(
        "SELECT {}, count(*) AS calls, count(errno) AS failures, \
         {SUM_BYTES_MAPPED} AS bytes, \
         sum(dur_ns) AS total_ns \
         FROM calls{} GROUP BY {} ORDER BY {rank}, {}{limit}",
        select_list(columns),
        calls.where_clause(),
        group_list(columns),
        keys.join(", "),
    );
    let batches = calls.engine.sql(&query)?;
    let schema = batches.schema();
    let batches = batches.collect::<Result<Vec<_>, _>>()?;
    let batch = concat_batches(&schema, &batches).map_err(arrow_error)?;
    let (_, groups) = distributions(calls, columns)?;
    let by_key: HashMap<Vec<ScalarValue>, Option<i64>> = groups
        .into_iter()
        .map(|group| {
            let [_, _, p99, _] = group.percentiles;
            (group.key, p99)
        })
        .collect();
    let mut values = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        let key = (0..columns.len())
            .map(|i| ScalarValue::try_from_array(batch.column(i), row))
            .collect::<Result<Vec<_>, DataFusionError>>()
            .map_err(EngineError::Query)?;
        values.push(by_key.get(&key).copied().flatten());
    }
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    fields.push(Field::new("p99_ns", DataType::Int64, true));
    let mut arrays: Vec<ArrayRef> = batch.columns().to_vec();
    arrays.push(Arc::new(Int64Array::from(values)));
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays).map_err(arrow_error)
}
