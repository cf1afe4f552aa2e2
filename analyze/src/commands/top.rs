//! `mmap-analyze top`: the processes, names, files, system calls or cgroups with the most calls,
//! bytes mapped or time spent in calls.

use std::{collections::HashMap, process::ExitCode, sync::Arc};

use arrow::{
    array::{ArrayRef, Int64Array, RecordBatch},
    compute::concat_batches,
    datatypes::{DataType, Field, Schema},
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
/// mremap's growth), as an aggregate: the sum of [`mapped_bytes`](crate::engine::mapped) per
/// row, 0 for a group that mapped nothing.
pub(crate) const SUM_BYTES_MAPPED: &str = "\
     coalesce(sum(mapped_bytes(syscall, len, new_len, ret, errno)), arrow_cast(0, 'UInt64'))";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    calls::run(&args.inputs, &args.filter, |calls| {
        if args.by == By::Latency {
            calls.note_exit_only();
        }
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

/// The ranked groups, with the 99th percentile of durations for --by latency.
fn top(calls: &Calls, args: &Args) -> Result<RecordBatch, EngineError> {
    let columns = key_columns(&[args.group]);
    let keys: Vec<String> = (1..=columns.len()).map(|i| i.to_string()).collect();
    let rank = match args.by {
        By::Calls => "calls DESC",
        By::Bytes => "bytes DESC",
        By::Latency => "total_ns DESC NULLS LAST",
    };
    let limit = match args.limit {
        0 => String::new(),
        n => format!(" LIMIT {n}"),
    };
    let query = format!(
        "SELECT {}, count(*) AS calls, count(errno) AS failures, \
         {SUM_BYTES_MAPPED} AS bytes, \
         sum(dur_ns) AS total_ns \
         FROM calls{} GROUP BY {} ORDER BY {rank}, {}{limit}",
        select_list(&columns),
        calls.where_clause(),
        group_list(&columns),
        keys.join(", "),
    );
    let batches = calls.engine.sql(&query)?;
    let schema = batches.schema();
    let batches = batches.collect::<Result<Vec<_>, _>>()?;
    let batch = concat_batches(&schema, &batches).map_err(arrow_error)?;
    if args.by != By::Latency {
        return Ok(batch);
    }
    let (_, groups) = distributions(calls, &columns)?;
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
