//! `mmap-analyze diff`: what changed between two captures.

use std::{
    cmp::Reverse,
    collections::BTreeMap,
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use arrow::{
    array::{Array as _, ArrayRef, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::{DataType, Int64Type},
};
use mmap_format::event::RowKind;
use serde::Serialize;

use super::rows::{self, Opened, Order, Sorted};
use crate::{
    events::spreadsheet_safe,
    labels, output,
    replay::{Process, Replay},
    table::{Column, Table},
};

/// Compare two captures: calls, bytes and failures side by side, and the mappings left at the
/// end in one and not the other.
///
/// A and B are one capture each: a file, a directory of segments or a quoted glob.
///
/// The first part compares the system calls per process name (comm), per mapped file and per
/// system call: how many calls, how many bytes they mapped (the length of successful mmap
/// calls) and how many failed, in A, in B and the change from A to B (B - A). Each part is
/// sorted by the largest change in calls first.
///
/// The second part compares what is mapped at the end of each capture: the address space of
/// every process at its end (its exit, or the end of the capture), rebuilt by the replay engine
/// of `maps` (which starts from the /proc/PID/maps snapshots when the capture has them), as
/// /proc/PID/maps would show it. Mappings are counted by file path (or pseudo path such as [heap], or [anon]),
/// permissions and size class (the length rounded up to a power of two); the rows whose counts
/// differ are listed.
///
/// Table output shows sizes readably (1.5 MiB); JSON (JSON Lines, one object per row, with a
/// `section` of "calls" or "mappings") and CSV (one header line; the columns of both sections,
/// empty when a row does not have them) give exact numbers.
///
/// Exit status: 0 on success (also when the reader of stdout goes away, as in `| head`), 2 on
/// a usage error or an unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// The capture before: a file, a directory of segments or a quoted glob.
    #[arg(value_name = "A")]
    a: PathBuf,

    /// The capture after.
    #[arg(value_name = "B")]
    b: PathBuf,

    #[command(flatten)]
    remote: crate::cli::Remote,

    /// Output format.
    #[arg(long, value_enum, default_value_t = DiffFormat::Table)]
    format: DiffFormat,
}

const EXAMPLES: &str = "\
Examples:
  # Yesterday's build against today's
  mmap-analyze diff build-monday/ build-tuesday/

  # Only what changed for libc, with jq
  mmap-analyze diff a.parquet b.parquet --format json | jq 'select(.key // .path | test(\"libc\"))'

  # Two globs of segments (quoted: the analyzer expands them)
  mmap-analyze diff 'rec1/mmap-*.parquet' 'rec2/mmap-*.parquet' --format csv > diff.csv";

/// How the comparison is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum DiffFormat {
    /// Two aligned tables for reading; sizes as 1.5 MiB.
    Table,
    /// JSON Lines: one object per row, exact numbers.
    Json,
    /// CSV with a header line, exact numbers.
    Csv,
}

/// What the calls are grouped by, in the order they are printed.
const DIMENSIONS: [&str; 3] = ["comm", "file", "syscall"];

/// Per side: calls, mapped bytes and failures per comm, file and syscall.
const STATS_QUERY: &str = "\
WITH c AS (
  SELECT CAST(comm AS VARCHAR) AS comm,
         CAST(coalesce(file_path, file_name) AS VARCHAR) AS file,
         CAST(syscall AS VARCHAR) AS syscall,
         CASE WHEN ret BETWEEN -4095 AND -1 THEN 1 ELSE 0 END AS failed,
         CASE WHEN syscall = 'mmap' AND ret IS NOT NULL AND NOT (ret BETWEEN -4095 AND -1)
              THEN CAST(len AS BIGINT) ELSE 0 END AS bytes
  FROM calls)
SELECT 'comm' AS dimension, comm AS key, count(*) AS calls, CAST(sum(bytes) AS BIGINT) AS bytes,
       CAST(sum(failed) AS BIGINT) AS failed FROM c GROUP BY comm
UNION ALL
SELECT 'file', file, count(*), CAST(sum(bytes) AS BIGINT), CAST(sum(failed) AS BIGINT)
  FROM c WHERE file IS NOT NULL GROUP BY file
UNION ALL
SELECT 'syscall', syscall, count(*), CAST(sum(bytes) AS BIGINT), CAST(sum(failed) AS BIGINT)
  FROM c GROUP BY syscall";

/// Calls, bytes mapped, failures.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Stats {
    calls: i64,
    bytes: i64,
    failed: i64,
}

/// A kind of mapping: its path, permissions and size class.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
struct MappingKind {
    path: String,
    perms: String,
    /// The length rounded up to a power of two.
    size_class: u64,
}

/// One side of the comparison, read.
#[derive(Debug, Default)]
struct Side {
    /// By (dimension index, key).
    stats: BTreeMap<(usize, String), Stats>,
    /// How many mappings of each kind are there at the end.
    mappings: BTreeMap<MappingKind, u64>,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let a = read_side(&args.a, &args.remote)?;
    let b = read_side(&args.b, &args.remote)?;
    let rows = compare(&a, &b);
    let mut out = output::stdout();
    match args.format {
        DiffFormat::Table => write_table(&mut out, &rows)?,
        DiffFormat::Json => {
            for row in &rows {
                serde_json::to_writer(&mut out, row).map_err(io::Error::from)?;
                out.write_all(b"\n")?;
            }
        }
        DiffFormat::Csv => {
            let mut writer = csv::Writer::from_writer(&mut out);
            for row in &rows {
                writer
                    .serialize(row.spreadsheet_safe())
                    .map_err(output::csv_to_io)?;
            }
            // A header even when there are no rows.
            if rows.is_empty() {
                writer.write_record(CSV_HEADER).map_err(output::csv_to_io)?;
            }
            writer.flush()?;
        }
    }
    out.flush()?;
    Ok(ExitCode::SUCCESS)
}

/// The column names of [`DiffRow`], for a CSV file without rows.
const CSV_HEADER: [&str; 17] = [
    "section",
    "dimension",
    "key",
    "perms",
    "size_class",
    "calls_a",
    "calls_b",
    "calls_change",
    "bytes_a",
    "bytes_b",
    "bytes_change",
    "failed_a",
    "failed_b",
    "failed_change",
    "mappings_a",
    "mappings_b",
    "mappings_change",
];

fn read_side(path: &PathBuf, remote: &crate::cli::Remote) -> anyhow::Result<Side> {
    let opened = Opened::new(std::slice::from_ref(path), remote)?;
    let mut side = Side::default();
    for batch in opened.engine.sql(STATS_QUERY)? {
        add_stats(&mut side, &batch?)?;
    }
    let mut replay = Replay::new(opened.page_size());
    Sorted::new(&opened, &rows::all_with_selected(None), Order::Effect)?.for_each(|event, _| {
        // A process that ends leaves the mappings it had then.
        if event.kind == RowKind::Exit
            && let Some(process) = replay.process(event.pid)
        {
            count_mappings(&mut side.mappings, process);
        }
        replay.apply(event);
        Ok(())
    })?;
    for (_, process) in replay.processes() {
        count_mappings(&mut side.mappings, process);
    }
    Ok(side)
}

/// Adds the mappings of `process` (merged as /proc/PID/maps shows them) to `counts`.
fn count_mappings(counts: &mut BTreeMap<MappingKind, u64>, process: &Process) {
    for region in process.map.merged() {
        let kind = MappingKind {
            path: region.path().unwrap_or("[anon]").to_owned(),
            perms: region.perms(),
            size_class: region.len().checked_next_power_of_two().unwrap_or(u64::MAX),
        };
        *counts.entry(kind).or_default() += 1;
    }
}

/// `column` as `data_type` (the engine may give strings as views).
fn column_as(batch: &RecordBatch, index: usize, data_type: &DataType) -> anyhow::Result<ArrayRef> {
    Ok(cast(batch.column(index), data_type)?)
}

fn add_stats(side: &mut Side, batch: &RecordBatch) -> anyhow::Result<()> {
    let dimension = column_as(batch, 0, &DataType::Utf8)?;
    let key = column_as(batch, 1, &DataType::Utf8)?;
    let numbers: Vec<ArrayRef> = (2..5)
        .map(|i| column_as(batch, i, &DataType::Int64))
        .collect::<anyhow::Result<_>>()?;
    let (dimension, key) = (dimension.as_string::<i32>(), key.as_string::<i32>());
    let number = |i: usize, row: usize| {
        let values = numbers[i].as_primitive::<Int64Type>();
        if values.is_valid(row) {
            values.value(row)
        } else {
            0
        }
    };
    for row in 0..batch.num_rows() {
        let Some(index) = DIMENSIONS.iter().position(|d| *d == dimension.value(row)) else {
            continue;
        };
        // A call without a comm or syscall name (never written) still counts, under "".
        let key = if key.is_valid(row) {
            key.value(row).to_owned()
        } else {
            String::new()
        };
        let stats = side.stats.entry((index, key)).or_default();
        stats.calls += number(0, row);
        stats.bytes += number(1, row);
        stats.failed += number(2, row);
    }
    Ok(())
}

/// One row of the comparison (JSON and CSV: exact numbers; `None` is null, or an empty field).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
struct DiffRow {
    /// "calls" or "mappings".
    section: &'static str,
    /// calls: "comm", "file" or "syscall".
    dimension: Option<&'static str>,
    /// calls: the comm, file path or syscall; mappings: the path.
    key: String,
    /// mappings: `r-xp`.
    perms: Option<String>,
    /// mappings: the length rounded up to a power of two.
    size_class: Option<u64>,
    calls_a: Option<i64>,
    calls_b: Option<i64>,
    calls_change: Option<i64>,
    bytes_a: Option<i64>,
    bytes_b: Option<i64>,
    bytes_change: Option<i64>,
    failed_a: Option<i64>,
    failed_b: Option<i64>,
    failed_change: Option<i64>,
    mappings_a: Option<u64>,
    mappings_b: Option<u64>,
    mappings_change: Option<i64>,
}

impl DiffRow {
    /// The row with its text made safe to open in a spreadsheet.
    fn spreadsheet_safe(&self) -> Self {
        Self {
            key: spreadsheet_safe(&self.key),
            ..self.clone()
        }
    }
}

/// Every key of the calls of A and B side by side (biggest change in calls first within each
/// dimension), then the mapping kinds whose counts differ.
fn compare(a: &Side, b: &Side) -> Vec<DiffRow> {
    let mut keys: Vec<&(usize, String)> = a.stats.keys().chain(b.stats.keys()).collect();
    keys.sort();
    keys.dedup();
    let mut calls: Vec<(usize, &str, Stats, Stats)> = keys
        .into_iter()
        .map(|key| {
            let side = |s: &Side| s.stats.get(key).copied().unwrap_or_default();
            (key.0, key.1.as_str(), side(a), side(b))
        })
        .collect();
    calls.sort_by_key(|(dimension, key, a, b)| {
        (
            *dimension,
            Reverse((b.calls - a.calls).abs()),
            Reverse((b.bytes - a.bytes).abs()),
            *key,
        )
    });
    let mut rows: Vec<DiffRow> = calls
        .into_iter()
        .map(|(dimension, key, a, b)| DiffRow {
            section: "calls",
            dimension: DIMENSIONS.get(dimension).copied(),
            key: key.to_owned(),
            calls_a: Some(a.calls),
            calls_b: Some(b.calls),
            calls_change: Some(b.calls - a.calls),
            bytes_a: Some(a.bytes),
            bytes_b: Some(b.bytes),
            bytes_change: Some(b.bytes - a.bytes),
            failed_a: Some(a.failed),
            failed_b: Some(b.failed),
            failed_change: Some(b.failed - a.failed),
            ..DiffRow::default()
        })
        .collect();
    let mut kinds: Vec<&MappingKind> = a.mappings.keys().chain(b.mappings.keys()).collect();
    kinds.sort();
    kinds.dedup();
    for kind in kinds {
        let count = |s: &Side| s.mappings.get(kind).copied().unwrap_or(0);
        let (in_a, in_b) = (count(a), count(b));
        if in_a == in_b {
            continue;
        }
        rows.push(DiffRow {
            section: "mappings",
            key: kind.path.clone(),
            perms: Some(kind.perms.clone()),
            size_class: Some(kind.size_class),
            mappings_a: Some(in_a),
            mappings_b: Some(in_b),
            mappings_change: Some(
                i64::try_from(in_b).unwrap_or(i64::MAX) - i64::try_from(in_a).unwrap_or(i64::MAX),
            ),
            ..DiffRow::default()
        });
    }
    rows
}

/// `+3`, `-1`, `0`.
fn signed(change: i64) -> String {
    if change > 0 {
        format!("+{}", labels::thousands(change.unsigned_abs()))
    } else if change < 0 {
        format!("-{}", labels::thousands(change.unsigned_abs()))
    } else {
        "0".to_owned()
    }
}

/// `+1.5 MiB`, `-4.0 KiB`, `0`.
fn signed_bytes(change: i64) -> String {
    let bytes = labels::human_bytes(change.unsigned_abs());
    match change.signum() {
        1 => format!("+{bytes}"),
        -1 => format!("-{bytes}"),
        _ => "0".to_owned(),
    }
}

fn count(value: Option<i64>) -> String {
    labels::thousands(value.unwrap_or(0).unsigned_abs())
}

fn size(value: Option<i64>) -> String {
    labels::human_bytes(value.unwrap_or(0).unsigned_abs())
}

fn write_table(out: &mut impl Write, rows: &[DiffRow]) -> io::Result<()> {
    let mut calls = Table::new(&[
        Column::left("BY"),
        Column::left("NAME"),
        Column::right("CALLS A"),
        Column::right("CALLS B"),
        Column::right("CHANGE"),
        Column::right("BYTES A"),
        Column::right("BYTES B"),
        Column::right("CHANGE"),
        Column::right("FAILED A"),
        Column::right("FAILED B"),
        Column::right("CHANGE"),
    ]);
    let mut mappings = Table::new(&[
        Column::left("PATH"),
        Column::left("PERMS"),
        Column::right("SIZE UP TO"),
        Column::right("IN A"),
        Column::right("IN B"),
        Column::right("CHANGE"),
    ]);
    let (mut any_calls, mut any_mappings) = (false, false);
    for row in rows {
        if row.section == "calls" {
            any_calls = true;
            calls.push(vec![
                row.dimension.unwrap_or_default().to_owned(),
                row.key.clone(),
                count(row.calls_a),
                count(row.calls_b),
                signed(row.calls_change.unwrap_or(0)),
                size(row.bytes_a),
                size(row.bytes_b),
                signed_bytes(row.bytes_change.unwrap_or(0)),
                count(row.failed_a),
                count(row.failed_b),
                signed(row.failed_change.unwrap_or(0)),
            ]);
        } else {
            any_mappings = true;
            mappings.push(vec![
                row.key.clone(),
                row.perms.clone().unwrap_or_default(),
                labels::human_bytes(row.size_class.unwrap_or(0)),
                labels::thousands(row.mappings_a.unwrap_or(0)),
                labels::thousands(row.mappings_b.unwrap_or(0)),
                signed(row.mappings_change.unwrap_or(0)),
            ]);
        }
    }
    writeln!(out, "Calls (B - A):")?;
    if any_calls {
        calls.write(out, "  ")?;
    } else {
        writeln!(out, "  no calls in either capture")?;
    }
    writeln!(out)?;
    writeln!(out, "Mappings at the end in one capture and not the other:")?;
    if any_mappings {
        mappings.write(out, "  ")?;
    } else {
        writeln!(
            out,
            "  none: the same mappings (by path, permissions and size class)"
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_are_signed() {
        assert_eq!(signed(1234), "+1,234");
        assert_eq!(signed(-3), "-3");
        assert_eq!(signed(0), "0");
        assert_eq!(signed_bytes(-4096), "-4.0 KiB");
        assert_eq!(signed_bytes(1536), "+1.5 KiB");
    }

    #[test]
    fn keys_of_either_side_are_compared() {
        let mut a = Side::default();
        let mut b = Side::default();
        let stats = |calls, bytes, failed| Stats {
            calls,
            bytes,
            failed,
        };
        a.stats.insert((0, "java".into()), stats(2, 8192, 0));
        a.stats.insert((0, "gone".into()), stats(1, 0, 1));
        b.stats.insert((0, "java".into()), stats(5, 4096, 1));
        let kind = MappingKind {
            path: "/lib/x.so".into(),
            perms: "r-xp".into(),
            size_class: 16384,
        };
        b.mappings.insert(kind.clone(), 2);
        a.mappings.insert(kind, 2);
        let rows = compare(&a, &b);
        assert_eq!(rows.len(), 2, "{rows:?}");
        assert_eq!(rows[0].key, "java");
        assert_eq!(rows[0].calls_change, Some(3));
        assert_eq!(rows[0].bytes_change, Some(-4096));
        assert_eq!(rows[1].key, "gone");
        assert_eq!(rows[1].calls_b, Some(0));
    }
}
