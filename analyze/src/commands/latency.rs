//! `mmap-analyze latency`: how long calls took, per system call (or process, or name): exact
//! percentiles and a log2-scale histogram.
//!
//! One query counts the calls of each group by their exact duration (`GROUP BY key, dur_ns`,
//! sorted by key and duration; the engine spills to disk if that outgrows its memory). The walk
//! over that sorted stream gives exact nearest-rank percentiles and the histogram while holding
//! only the distinct durations of one group.

use std::{io::Write, process::ExitCode, sync::Arc};

use arrow::{
    array::{Array as _, ArrayRef, AsArray as _, Int64Array, RecordBatch, UInt64Array},
    datatypes::{DataType, Field, Int64Type, Schema, SchemaRef},
    error::ArrowError,
};
use datafusion::{error::DataFusionError, scalar::ScalarValue};
use serde::Serialize;
use serde_json::{Value, json};

use super::calls::{self, Calls, Group, group_list, key_columns, select_list};
use crate::{
    cli::Inputs,
    engine::{
        EngineError,
        filter::RowFilter,
        results::{ResultFormat, TextFormat, Unit, human_duration, write_batches},
    },
    output,
    table::{Column, Table, visible},
};

/// Show how long calls took: percentiles and a histogram of durations per system call.
///
/// For each group (each system call, unless --per says otherwise): the calls whose exit was
/// seen (`calls`) and those whose exit was not (`no_exit`, no duration), the exact 50th, 90th,
/// 99th and 99.9th percentiles of the duration (nearest rank: the shortest duration that at
/// least that share of the calls did not exceed; no interpolation, no approximation) and the
/// longest. A duration is the time from the entry of the call to its exit as the kernel saw
/// them (`dur_ns` in SQL).
///
/// The histogram has log2-scale buckets: under 1 us, 1-2 us, 2-4 us, 4-8 us and so on, from the
/// first bucket with a call to the last. A table shows it as bars under the percentiles; JSON
/// (JSON Lines, one object per group) has it as a `histogram` list of `from_ns`, `to_ns`
/// (excluded) and `calls`; CSV has one line per group and bucket, the group's figures repeated
/// on each. JSON and CSV give durations in nanoseconds.
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

    /// Group the calls by this (several, comma-separated, for a finer grouping:
    /// `--per process,syscall`).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        value_name = "GROUP",
        default_value = "syscall"
    )]
    per: Vec<Group>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TextFormat::Table)]
    format: TextFormat,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze latency rec/
  mmap-analyze latency rec/ --per process --syscall mmap
  mmap-analyze latency rec/ --per comm,syscall --where \"len >= 1048576\"
  mmap-analyze latency c.parquet --format json | jq '.p99_ns'";

/// The percentiles shown, in parts per ten thousand, with their column names.
const PERCENTILES: [(u64, &str); 4] = [
    (5_000, "p50_ns"),
    (9_000, "p90_ns"),
    (9_900, "p99_ns"),
    (9_990, "p99_9_ns"),
];

/// The columns whose numbers a table shows for people.
const UNITS: &[(&str, Unit)] = &[
    ("p50_ns", Unit::Nanoseconds),
    ("p90_ns", Unit::Nanoseconds),
    ("p99_ns", Unit::Nanoseconds),
    ("p99_9_ns", Unit::Nanoseconds),
    ("max_ns", Unit::Nanoseconds),
    ("from_ns", Unit::Nanoseconds),
    ("to_ns", Unit::Nanoseconds),
];

/// The widest histogram bar, in characters.
const BAR_WIDTH: u64 = 40;

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    calls::run(&args.inputs, &args.filter, |calls| {
        calls.note_exit_only();
        let (keys, groups) = distributions(calls, &key_columns(&args.per))?;
        let mut out = output::stdout();
        write(args.format, &keys, &groups, &mut out)?;
        out.flush().map_err(EngineError::Output)?;
        Ok(groups.len())
    })
}

/// The durations of one group of calls.
pub struct Distribution {
    /// The group's key, one value per key column.
    pub key: Vec<ScalarValue>,
    /// Calls with a duration.
    pub calls: u64,
    /// Calls whose exit was not seen.
    pub no_exit: u64,
    /// The value of each of [`PERCENTILES`] (`None` without calls).
    pub percentiles: [Option<i64>; PERCENTILES.len()],
    pub max: Option<i64>,
    /// Calls per log2 bucket ([`bucket`]), from `first_bucket` on.
    pub first_bucket: usize,
    pub buckets: Vec<u64>,
}

/// The log2 bucket of a duration: 0 below 1 us (negative durations too), then `i` for
/// `[1 us × 2^(i-1), 1 us × 2^i)`.
pub fn bucket(dur_ns: i64) -> usize {
    let micros = u64::try_from(dur_ns).unwrap_or(0) / 1000;
    (u64::BITS - micros.leading_zeros()) as usize
}

/// The `[from, to)` nanoseconds of bucket `i`.
pub fn bucket_bounds(i: usize) -> (u64, u64) {
    let to = 1000u64.saturating_mul(1u64.checked_shl(i as u32).unwrap_or(u64::MAX));
    let from = if i == 0 { 0 } else { to / 2 };
    (from, to)
}

/// The distribution of durations of every group of calls by `columns` (from
/// [`key_columns`]), in key order, with the schema of the key columns.
pub fn distributions(
    calls: &Calls,
    columns: &[(&str, &str)],
) -> Result<(SchemaRef, Vec<Distribution>), EngineError> {
    let order: Vec<String> = (1..=columns.len() + 1).map(|i| i.to_string()).collect();
    let query = format!(
        "SELECT {}, dur_ns, count(*) AS n FROM calls{} GROUP BY {}, dur_ns \
         ORDER BY {} NULLS LAST",
        select_list(columns),
        calls.where_clause(),
        group_list(columns),
        order.join(", "),
    );
    let batches = calls.engine.sql(&query)?;
    let schema = batches.schema();
    let keys = Arc::new(Schema::new(schema.fields()[..columns.len()].to_vec()));
    let mut groups = Vec::new();
    let mut current: Option<Walk> = None;
    for batch in batches {
        let batch = batch?;
        let int64 = |i: usize| {
            batch
                .column(i)
                .as_primitive_opt::<Int64Type>()
                .ok_or_else(|| {
                    arrow_error(ArrowError::SchemaError(format!(
                        "column {i} of the durations is not a BIGINT"
                    )))
                })
        };
        let (durations, counts) = (int64(columns.len())?, int64(columns.len() + 1)?);
        for row in 0..batch.num_rows() {
            let key = (0..columns.len())
                .map(|i| ScalarValue::try_from_array(batch.column(i), row))
                .collect::<Result<Vec<_>, DataFusionError>>()
                .map_err(EngineError::Query)?;
            if current.as_ref().is_none_or(|walk| walk.key != key) {
                groups.extend(current.take().map(Walk::finish));
                current = Some(Walk::new(key));
            }
            let n = u64::try_from(counts.value(row)).unwrap_or(0);
            if let Some(walk) = current.as_mut() {
                if durations.is_valid(row) {
                    walk.durations.push((durations.value(row), n));
                } else {
                    walk.no_exit += n;
                }
            }
        }
    }
    groups.extend(current.map(Walk::finish));
    Ok((keys, groups))
}

/// One group's distinct durations (ascending) and their counts, as they come.
struct Walk {
    key: Vec<ScalarValue>,
    durations: Vec<(i64, u64)>,
    no_exit: u64,
}

impl Walk {
    fn new(key: Vec<ScalarValue>) -> Self {
        Self {
            key,
            durations: Vec::new(),
            no_exit: 0,
        }
    }

    fn finish(self) -> Distribution {
        let calls: u64 = self.durations.iter().map(|(_, n)| n).sum();
        let mut percentiles = [None; PERCENTILES.len()];
        for (value, (per_10k, _)) in percentiles.iter_mut().zip(PERCENTILES) {
            // Nearest rank: the first duration at which the running count reaches
            // ceil(calls × p).
            let rank = (u128::from(calls) * u128::from(per_10k))
                .div_ceil(10_000)
                .max(1);
            let mut seen = 0u128;
            *value = self
                .durations
                .iter()
                .find(|(_, n)| {
                    seen += u128::from(*n);
                    seen >= rank
                })
                .map(|(dur, _)| *dur);
        }
        let first_bucket = self.durations.first().map_or(0, |(dur, _)| bucket(*dur));
        let last_bucket = self.durations.last().map_or(0, |(dur, _)| bucket(*dur));
        let mut buckets = if self.durations.is_empty() {
            Vec::new()
        } else {
            vec![0; last_bucket - first_bucket + 1]
        };
        for (dur, n) in &self.durations {
            if let Some(count) = buckets.get_mut(bucket(*dur) - first_bucket) {
                *count += n;
            }
        }
        Distribution {
            key: self.key,
            calls,
            no_exit: self.no_exit,
            percentiles,
            max: self.durations.last().map(|(dur, _)| *dur),
            first_bucket,
            buckets,
        }
    }
}

/// Writes the distributions as `format`.
fn write(
    format: TextFormat,
    keys: &SchemaRef,
    groups: &[Distribution],
    out: &mut impl Write,
) -> Result<(), EngineError> {
    match format {
        TextFormat::Table => {
            let batch = summary_batch(keys, groups).map_err(arrow_error)?;
            let schema = batch.schema();
            write_batches(ResultFormat::Table, &schema, [Ok(batch)], out, UNITS)?;
            write_histograms(keys, groups, out).map_err(EngineError::Output)
        }
        TextFormat::Json => {
            for group in groups {
                let line = json_line(keys, group).map_err(|err| EngineError::Output(err.into()))?;
                writeln!(out, "{line}").map_err(EngineError::Output)?;
            }
            Ok(())
        }
        TextFormat::Csv => {
            let batch = bucket_batch(keys, groups).map_err(arrow_error)?;
            let schema = batch.schema();
            write_batches(ResultFormat::Csv, &schema, [Ok(batch)], out, UNITS).map(|_| ())
        }
    }
}

/// An Arrow error while building results (a bug, reported like a query error).
pub fn arrow_error(err: ArrowError) -> EngineError {
    EngineError::Query(DataFusionError::ArrowError(Box::new(err), None))
}

/// The key columns, then `calls`, `no_exit`, the percentiles and `max_ns`, one row per group in
/// `rows` (indexes into `groups`).
fn figures(
    keys: &SchemaRef,
    groups: &[Distribution],
    rows: &[usize],
) -> Result<(Vec<Field>, Vec<ArrayRef>), ArrowError> {
    let mut fields: Vec<Field> = keys.fields().iter().map(|f| f.as_ref().clone()).collect();
    let mut arrays = Vec::new();
    for column in 0..keys.fields().len() {
        let values = rows.iter().map(|&i| groups[i].key[column].clone());
        arrays.push(if rows.is_empty() {
            arrow::array::new_empty_array(keys.field(column).data_type())
        } else {
            ScalarValue::iter_to_array(values)
                .map_err(|err| ArrowError::from_external_error(err.into()))?
        });
    }
    let count = |name: &str, value: fn(&Distribution) -> u64| {
        let array: ArrayRef = Arc::new(UInt64Array::from_iter_values(
            rows.iter().map(|&i| value(&groups[i])),
        ));
        (Field::new(name, DataType::UInt64, false), array)
    };
    let nanos = |name: &str, value: &dyn Fn(&Distribution) -> Option<i64>| {
        let array: ArrayRef = Arc::new(Int64Array::from_iter(
            rows.iter().map(|&i| value(&groups[i])),
        ));
        (Field::new(name, DataType::Int64, true), array)
    };
    let mut columns = vec![count("calls", |g| g.calls), count("no_exit", |g| g.no_exit)];
    for (i, (_, name)) in PERCENTILES.iter().enumerate() {
        columns.push(nanos(name, &|g: &Distribution| g.percentiles[i]));
    }
    columns.push(nanos("max_ns", &|g: &Distribution| g.max));
    for (field, array) in columns {
        fields.push(field);
        arrays.push(array);
    }
    Ok((fields, arrays))
}

/// One row per group: its key and figures.
fn summary_batch(keys: &SchemaRef, groups: &[Distribution]) -> Result<RecordBatch, ArrowError> {
    let rows: Vec<usize> = (0..groups.len()).collect();
    let (fields, arrays) = figures(keys, groups, &rows)?;
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// One row per group and bucket: the group's key and figures, then `from_ns`, `to_ns` and
/// `bucket_calls`.
fn bucket_batch(keys: &SchemaRef, groups: &[Distribution]) -> Result<RecordBatch, ArrowError> {
    let mut rows = Vec::new();
    let mut bounds = Vec::new();
    let mut counts = Vec::new();
    for (i, group) in groups.iter().enumerate() {
        for (offset, count) in group.buckets.iter().enumerate() {
            rows.push(i);
            bounds.push(bucket_bounds(group.first_bucket + offset));
            counts.push(*count);
        }
    }
    let (mut fields, mut arrays) = figures(keys, groups, &rows)?;
    let bound = |name: &str, pick: fn(&(u64, u64)) -> u64| {
        let array: ArrayRef = Arc::new(UInt64Array::from_iter_values(bounds.iter().map(pick)));
        (Field::new(name, DataType::UInt64, false), array)
    };
    let bucket_calls: ArrayRef = Arc::new(UInt64Array::from(counts));
    for (field, array) in [
        bound("from_ns", |b| b.0),
        bound("to_ns", |b| b.1),
        (
            Field::new("bucket_calls", DataType::UInt64, false),
            bucket_calls,
        ),
    ] {
        fields.push(field);
        arrays.push(array);
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), arrays)
}

/// A group's key in words: `syscall mmap`, `pid 100 comm cat`.
fn key_label(keys: &SchemaRef, group: &Distribution) -> String {
    keys.fields()
        .iter()
        .zip(&group.key)
        .map(|(field, value)| format!("{} {value}", field.name()))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Each group's histogram as bars, under a line naming the group.
fn write_histograms(
    keys: &SchemaRef,
    groups: &[Distribution],
    out: &mut impl Write,
) -> std::io::Result<()> {
    for group in groups.iter().filter(|group| group.calls > 0) {
        writeln!(out)?;
        writeln!(
            out,
            "{}: {} call{}",
            visible(&key_label(keys, group)),
            group.calls,
            crate::labels::plural(group.calls)
        )?;
        let widest = group.buckets.iter().copied().max().unwrap_or(1).max(1);
        let mut table = Table::new(&[
            Column::left("duration"),
            Column::right("calls"),
            Column::left(""),
        ]);
        for (offset, count) in group.buckets.iter().enumerate() {
            let (from, to) = bucket_bounds(group.first_bucket + offset);
            let range = if from == 0 {
                format!("< {}", human_duration(to as i64))
            } else {
                format!(
                    "{} .. {}",
                    human_duration(from as i64),
                    human_duration(to as i64)
                )
            };
            let mut bar = (count * BAR_WIDTH).div_ceil(widest);
            if *count > 0 {
                bar = bar.max(1);
            }
            table.push(vec![range, count.to_string(), "#".repeat(bar as usize)]);
        }
        table.write(out, "  ")?;
    }
    Ok(())
}

/// A group's figures and histogram in JSON (after its key, which [`json_line`] writes).
#[derive(Serialize)]
struct JsonGroup {
    calls: u64,
    no_exit: u64,
    p50_ns: Option<i64>,
    p90_ns: Option<i64>,
    p99_ns: Option<i64>,
    p99_9_ns: Option<i64>,
    max_ns: Option<i64>,
    histogram: Vec<JsonBucket>,
}

/// A histogram bucket in JSON: the calls that took from `from_ns` to just under `to_ns`.
#[derive(Serialize)]
struct JsonBucket {
    from_ns: u64,
    to_ns: u64,
    calls: u64,
}

/// A group as one line of JSON: the key columns in their order, then the figures.
fn json_line(keys: &SchemaRef, group: &Distribution) -> serde_json::Result<String> {
    let mut line = String::from("{");
    for (field, value) in keys.fields().iter().zip(&group.key) {
        line.push_str(&Value::from(field.name().as_str()).to_string());
        line.push(':');
        line.push_str(&scalar_json(value).to_string());
        line.push(',');
    }
    let figures = serde_json::to_string(&json_figures(group))?;
    line.push_str(figures.strip_prefix('{').unwrap_or(&figures));
    Ok(line)
}

fn json_figures(group: &Distribution) -> JsonGroup {
    let [p50_ns, p90_ns, p99_ns, p99_9_ns] = group.percentiles;
    let histogram = group
        .buckets
        .iter()
        .enumerate()
        .map(|(offset, calls)| {
            let (from_ns, to_ns) = bucket_bounds(group.first_bucket + offset);
            JsonBucket {
                from_ns,
                to_ns,
                calls: *calls,
            }
        })
        .collect();
    JsonGroup {
        calls: group.calls,
        no_exit: group.no_exit,
        p50_ns,
        p90_ns,
        p99_ns,
        p99_9_ns,
        max_ns: group.max,
        histogram,
    }
}

/// A key value as JSON: numbers as numbers, text as text.
fn scalar_json(value: &ScalarValue) -> Value {
    if value.is_null() {
        return Value::Null;
    }
    match value {
        ScalarValue::Utf8(Some(text))
        | ScalarValue::LargeUtf8(Some(text))
        | ScalarValue::Utf8View(Some(text)) => json!(text),
        ScalarValue::UInt8(Some(n)) => json!(n),
        ScalarValue::UInt16(Some(n)) => json!(n),
        ScalarValue::UInt32(Some(n)) => json!(n),
        ScalarValue::UInt64(Some(n)) => json!(n),
        ScalarValue::Int8(Some(n)) => json!(n),
        ScalarValue::Int16(Some(n)) => json!(n),
        ScalarValue::Int32(Some(n)) => json!(n),
        ScalarValue::Int64(Some(n)) => json!(n),
        other => json!(other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_double_from_one_microsecond() {
        assert_eq!(bucket(-5), 0);
        assert_eq!(bucket(0), 0);
        assert_eq!(bucket(999), 0);
        assert_eq!(bucket(1000), 1);
        assert_eq!(bucket(1999), 1);
        assert_eq!(bucket(2000), 2);
        assert_eq!(bucket(3999), 2);
        assert_eq!(bucket(4000), 3);
        assert_eq!(bucket_bounds(0), (0, 1000));
        assert_eq!(bucket_bounds(1), (1000, 2000));
        assert_eq!(bucket_bounds(3), (4000, 8000));
        for dur in [0, 1, 999, 1000, 1500, 65_535_999, i64::MAX] {
            let (from, to) = bucket_bounds(bucket(dur));
            let dur = dur as u64;
            assert!(from <= dur && (dur < to || to == u64::MAX), "{dur}");
        }
    }

    #[test]
    fn percentiles_are_nearest_rank() {
        let mut walk = Walk::new(Vec::new());
        // 1..=1000 ns, each once.
        walk.durations = (1..=1000).map(|d| (d, 1)).collect();
        walk.no_exit = 2;
        let dist = walk.finish();
        assert_eq!(dist.calls, 1000);
        assert_eq!(dist.no_exit, 2);
        assert_eq!(
            dist.percentiles,
            [Some(500), Some(900), Some(990), Some(999)]
        );
        assert_eq!(dist.max, Some(1000));
        assert_eq!(dist.first_bucket, 0);
        assert_eq!(dist.buckets, [999, 1]);
    }
}
