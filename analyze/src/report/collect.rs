//! What the report shows, from the engine: every number is an aggregate computed by a query
//! (time buckets by integer division of `ts`), so memory is bounded by the size of the page, not
//! by the capture.

use std::collections::BTreeMap;

use arrow::{
    array::{Array, ArrayRef, AsArray as _},
    compute::cast,
    datatypes::{DataType, Int64Type},
};
use datafusion::error::DataFusionError;

use crate::engine::{Engine, EngineError, filter::RowFilter};

/// One value of a result row: results are cast to 64-bit integers or text.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Cell {
    Null,
    Int(i64),
    Text(String),
}

impl Cell {
    pub fn int(&self) -> i64 {
        match self {
            Self::Int(value) => *value,
            Self::Null | Self::Text(_) => 0,
        }
    }

    pub fn text(&self) -> String {
        match self {
            Self::Text(text) => text.clone(),
            Self::Int(value) => value.to_string(),
            Self::Null => String::new(),
        }
    }
}

/// Runs `query` and returns its (few) rows.
pub fn rows(engine: &Engine, query: &str) -> Result<Vec<Vec<Cell>>, EngineError> {
    let mut rows = Vec::new();
    for batch in engine.sql(query)? {
        let batch = batch?;
        let columns = batch
            .columns()
            .iter()
            .map(normalise)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|err| EngineError::Query(DataFusionError::ArrowError(Box::new(err), None)))?;
        for row in 0..batch.num_rows() {
            rows.push(columns.iter().map(|column| cell(column, row)).collect());
        }
    }
    Ok(rows)
}

/// A column as Int64 or Utf8.
fn normalise(column: &ArrayRef) -> Result<ArrayRef, arrow::error::ArrowError> {
    match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View | DataType::Dictionary(..) => {
            cast(column, &DataType::Utf8)
        }
        _ => cast(column, &DataType::Int64),
    }
}

fn cell(column: &ArrayRef, row: usize) -> Cell {
    if column.is_null(row) {
        return Cell::Null;
    }
    match column.data_type() {
        DataType::Utf8 => Cell::Text(column.as_string::<i32>().value(row).to_owned()),
        _ => Cell::Int(column.as_primitive::<Int64Type>().value(row)),
    }
}

/// ` WHERE a AND b` over the terms that are there.
pub fn where_all(terms: &[Option<&str>]) -> String {
    let terms: Vec<&str> = terms.iter().flatten().copied().collect();
    if terms.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", terms.join(" AND "))
    }
}

/// The filter that applies to rows of a process that are not calls (snapshots, execs, exits):
/// its process and time options (`--syscall` and `--where` speak of calls).
pub fn process_filter(filter: &RowFilter) -> RowFilter {
    RowFilter {
        syscall: Vec::new(),
        predicate: None,
        ..filter.clone()
    }
}

/// The time axis of the charts: buckets of `width` ns from `origin`.
#[derive(Clone, Copy, Debug)]
pub struct Buckets {
    pub origin: i64,
    pub width: i64,
    pub count: i64,
}

impl Buckets {
    /// About 100 buckets of a round width (1, 2 or 5 times a power of ten ns) over `start..=end`.
    pub fn over(start: i64, end: i64) -> Self {
        let span = (end - start).max(1);
        let mut width = 1_i64;
        'find: loop {
            for m in [1, 2, 5] {
                if span / (width * m) <= 100 {
                    width *= m;
                    break 'find;
                }
            }
            width *= 10;
        }
        Self {
            origin: start,
            width,
            count: span / width + 1,
        }
    }

    /// The SQL expression of the bucket of a row.
    pub fn sql(&self) -> String {
        format!(
            "CAST((CAST(ts AS BIGINT) - {}) / {} AS BIGINT)",
            self.origin, self.width
        )
    }

    /// The time of bucket `b`'s end, in ns since the origin.
    pub fn end_of(&self, b: i64) -> f64 {
        ((b + 1) * self.width) as f64
    }
}

/// Mapped bytes of one process over time.
#[derive(Clone, Debug)]
pub struct MappedSeries {
    pub pid: u32,
    pub comm: String,
    /// Mapped bytes at the end of each bucket (in the bucket of an exit: just before it).
    pub values: Vec<i64>,
    /// When the process exited (its last exit row), if it did.
    pub exit_ns: Option<i64>,
}

impl MappedSeries {
    pub fn peak(&self) -> i64 {
        self.values.iter().copied().max().unwrap_or(0)
    }

    /// Mapped bytes at the end of the capture: none once exited.
    pub fn last(&self) -> i64 {
        match self.exit_ns {
            Some(_) => 0,
            None => self.values.last().copied().unwrap_or(0),
        }
    }

    /// When the most bytes were mapped: the end of the first bucket with the peak, or just
    /// before the exit when that comes first.
    pub fn peak_ns(&self, buckets: &Buckets) -> i64 {
        let peak = self.peak();
        let b = self.values.iter().position(|v| *v == peak).unwrap_or(0) as i64;
        let end = buckets.origin + (b + 1) * buckets.width - 1;
        self.exit_ns.map_or(end, |exit| end.min(exit - 1))
    }
}

/// Bytes mapped per process over time: the first snapshot of a process (what it had mapped when
/// the recording found it) plus successful mmap (`len`), minus munmap (`len`), plus mremap
/// (`new_len - len`); an exec empties it, and so does an exit (after the value of its bucket).
/// Never below zero.
pub fn mapped_bytes(
    engine: &Engine,
    buckets: &Buckets,
    calls: Option<&str>,
    process: Option<&str>,
) -> Result<Vec<MappedSeries>, EngineError> {
    let bucket = buckets.sql();
    let deltas = format!(
        "SELECT pid, {bucket} AS b, sum(CASE syscall \
           WHEN 'mmap' THEN CAST(len AS BIGINT) \
           WHEN 'munmap' THEN -CAST(len AS BIGINT) \
           WHEN 'mremap' THEN CAST(new_len AS BIGINT) - CAST(len AS BIGINT) ELSE 0 END) AS delta, \
           last_value(comm ORDER BY ts) AS comm \
         FROM calls{} GROUP BY pid, b",
        where_all(&[
            Some("errno IS NULL AND ret IS NOT NULL AND syscall IN ('mmap', 'munmap', 'mremap')"),
            calls
        ])
    );
    let snapshots = format!(
        "SELECT s.pid, {bucket} AS b, CAST(sum(len) AS BIGINT) AS delta, \
           last_value(comm ORDER BY ts) AS comm \
         FROM snapshots s JOIN (SELECT pid AS first_pid, min(ts) AS first FROM snapshots{} \
           GROUP BY pid) f ON s.pid = f.first_pid AND s.ts = f.first GROUP BY s.pid, b",
        where_all(&[process])
    );
    let resets = format!(
        "SELECT pid, {bucket} AS b, kind, CAST(ts AS BIGINT) FROM lifecycle{}",
        where_all(&[Some("kind IN ('exec', 'exit')"), process])
    );
    // Per process: the change in each bucket, and the bucket of each exec and exit.
    let mut changes: BTreeMap<u32, (String, BTreeMap<i64, i64>)> = BTreeMap::new();
    for query in [&snapshots, &deltas] {
        for row in rows(engine, query)? {
            let pid = u32::try_from(row[0].int()).unwrap_or(0);
            let entry = changes.entry(pid).or_default();
            *entry.1.entry(row[1].int()).or_default() += row[2].int();
            if entry.0.is_empty() {
                entry.0 = row[3].text();
            }
        }
    }
    let mut execs: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut exits: BTreeMap<u32, Vec<i64>> = BTreeMap::new();
    let mut exit_ns: BTreeMap<u32, i64> = BTreeMap::new();
    for row in rows(engine, &resets)? {
        let pid = u32::try_from(row[0].int()).unwrap_or(0);
        let into = if row[2].text() == "exec" {
            &mut execs
        } else {
            let ts = exit_ns.entry(pid).or_insert(i64::MIN);
            *ts = (*ts).max(row[3].int());
            &mut exits
        };
        into.entry(pid).or_default().push(row[1].int());
    }
    let count = usize::try_from(buckets.count).unwrap_or(0);
    Ok(changes
        .into_iter()
        .map(|(pid, (comm, deltas))| {
            let mut values = Vec::with_capacity(count);
            let mut mapped = 0_i64;
            for b in 0..buckets.count {
                if execs.get(&pid).is_some_and(|e| e.contains(&b)) {
                    mapped = 0;
                }
                mapped = (mapped + deltas.get(&b).copied().unwrap_or(0)).max(0);
                values.push(mapped);
                if exits.get(&pid).is_some_and(|e| e.contains(&b)) {
                    mapped = 0;
                }
            }
            MappedSeries {
                pid,
                comm,
                values,
                exit_ns: exit_ns.get(&pid).copied(),
            }
        })
        .collect())
}

/// Calls per bucket, per system call: `(syscall, counts per bucket)`.
pub fn call_rates(
    engine: &Engine,
    buckets: &Buckets,
    calls: Option<&str>,
) -> Result<Vec<(String, Vec<u64>)>, EngineError> {
    let query = format!(
        "SELECT syscall, {} AS b, count(*) FROM calls{} GROUP BY syscall, b",
        buckets.sql(),
        where_all(&[calls])
    );
    let mut by_syscall: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    let count = usize::try_from(buckets.count).unwrap_or(0);
    for row in rows(engine, &query)? {
        let counts = by_syscall
            .entry(row[0].text())
            .or_insert_with(|| vec![0; count]);
        if let Some(slot) = usize::try_from(row[1].int())
            .ok()
            .and_then(|b| counts.get_mut(b))
        {
            *slot += u64::try_from(row[2].int()).unwrap_or(0);
        }
    }
    let mut rates: Vec<(String, Vec<u64>)> = by_syscall.into_iter().collect();
    rates.sort_by_key(|(name, counts)| {
        (std::cmp::Reverse(counts.iter().sum::<u64>()), name.clone())
    });
    Ok(rates)
}

/// Call durations in log2 buckets, per system call.
#[derive(Clone, Debug, Default)]
pub struct Histogram {
    /// Bucket `k` holds durations in `2^k .. 2^(k+1)` ns; the first bucket shown.
    pub first: i64,
    pub syscalls: Vec<String>,
    /// `counts[syscall][k - first]`.
    pub counts: Vec<Vec<u64>>,
}

/// The [`Histogram`] of the durations of the calls that `calls` selects.
pub fn latency_histogram(engine: &Engine, calls: Option<&str>) -> Result<Histogram, EngineError> {
    let query = format!(
        "SELECT syscall, CAST(floor(log2(CAST(greatest(dur_ns, 1) AS DOUBLE))) AS BIGINT) AS k, \
           count(*) FROM calls{} GROUP BY syscall, k",
        where_all(&[Some("dur_ns IS NOT NULL"), calls])
    );
    let rows = rows(engine, &query)?;
    let first = rows.iter().map(|r| r[1].int()).min().unwrap_or(0);
    let last = rows.iter().map(|r| r[1].int()).max().unwrap_or(0);
    let width = usize::try_from(last - first + 1).unwrap_or(1);
    let mut by_syscall: BTreeMap<String, Vec<u64>> = BTreeMap::new();
    for row in &rows {
        let counts = by_syscall
            .entry(row[0].text())
            .or_insert_with(|| vec![0; width]);
        if let Some(slot) = usize::try_from(row[1].int() - first)
            .ok()
            .and_then(|k| counts.get_mut(k))
        {
            *slot += u64::try_from(row[2].int()).unwrap_or(0);
        }
    }
    let (syscalls, counts) = by_syscall.into_iter().unzip();
    Ok(Histogram {
        first,
        syscalls,
        counts,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn about_a_hundred_round_buckets() {
        let b = Buckets::over(1_000, 1_000 + 10_000_000);
        assert_eq!(b.width, 100_000);
        assert_eq!(b.count, 101);
        let b = Buckets::over(0, 3_000_000_000);
        assert_eq!(b.width, 50_000_000);
        assert_eq!(Buckets::over(5, 5).width, 1);
    }

    #[test]
    fn where_joins_the_terms_there_are() {
        assert_eq!(where_all(&[None, None]), "");
        assert_eq!(where_all(&[Some("a"), None, Some("b")]), " WHERE a AND b");
    }
}
