//! The queries the questions are made of: a count and a few examples of the rows a predicate
//! selects, with the command line's row filter added, and typed reading of result columns.

use std::{cell::RefCell, collections::HashMap};

use arrow::{
    array::{Array, ArrayRef, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::{ArrowPrimitiveType, DataType, Int64Type, UInt32Type, UInt64Type},
};

use super::{Example, Finding, Severity};
use crate::{
    engine::{Engine, EngineError, filter::timestamp, views},
    labels,
};

/// [`Finding::unit`] of a question about rows.
pub const ROWS: &str = "rows";
/// [`Finding::unit`] of a question about processes.
pub const PROCESSES: &str = "processes";

/// What every query of one evaluation shares: the engine, the row filter as SQL, how many
/// examples to show.
pub struct Scope<'e> {
    pub engine: &'e Engine,
    /// Where the captures start and end.
    pub span: crate::timespec::Span,
    /// The command line's row filter (`None`: every row).
    pub filter: Option<String>,
    pub examples: usize,
}

/// A question that one predicate answers exactly.
pub struct RowCheck {
    pub id: &'static str,
    pub severity: Severity,
    pub title: String,
    pub view: &'static str,
    pub predicate: String,
    pub note: Option<String>,
}

impl Scope<'_> {
    /// `WHERE <filter> AND (<predicate>)`.
    pub fn where_clause(&self, predicate: &str) -> String {
        match &self.filter {
            Some(filter) => format!(" WHERE {filter} AND ({predicate})"),
            None => format!(" WHERE {predicate}"),
        }
    }

    /// Every batch of `query`.
    pub fn batches(&self, query: &str) -> Result<Vec<RecordBatch>, EngineError> {
        self.engine.sql(query)?.collect()
    }

    /// The findings of `checks`: their rows and processes counted (one scan per view for all
    /// of them), their first rows as examples.
    pub fn row_findings(&self, checks: Vec<RowCheck>) -> anyhow::Result<Vec<Finding>> {
        let mut counts = vec![(0, 0, None); checks.len()];
        let mut views: Vec<&str> = checks.iter().map(|check| check.view).collect();
        views.sort_unstable();
        views.dedup();
        for view in views {
            let of_view: Vec<usize> = (0..checks.len())
                .filter(|&i| checks.get(i).is_some_and(|check| check.view == view))
                .collect();
            let predicates: Vec<&str> = of_view
                .iter()
                .filter_map(|&i| checks.get(i).map(|check| check.predicate.as_str()))
                .collect();
            for (i, found) in of_view.into_iter().zip(self.counts(view, &predicates)?) {
                if let Some(slot) = counts.get_mut(i) {
                    *slot = found;
                }
            }
        }
        let mut findings = Vec::with_capacity(checks.len());
        for (check, (count, processes, first)) in checks.into_iter().zip(counts) {
            let examples = match first {
                Some(first) if count > 0 => self.examples(check.view, &check.predicate, first)?,
                _ => Vec::new(),
            };
            findings.push(Finding {
                id: check.id,
                severity: check.severity,
                title: check.title,
                count,
                unit: ROWS,
                processes,
                view: check.view,
                predicate: check.predicate,
                exact: true,
                note: check.note,
                examples,
            });
        }
        Ok(findings)
    }

    /// For each of `predicates`: how many rows of `view` match it (and the filter), of how
    /// many processes, and the time of the first. One scan for all.
    fn counts(
        &self,
        view: &str,
        predicates: &[&str],
    ) -> Result<Vec<(u64, u64, Option<i64>)>, EngineError> {
        let mut columns = Vec::new();
        for (i, predicate) in predicates.iter().enumerate() {
            columns.push(format!(
                "CAST(count(*) FILTER (WHERE {predicate}) AS BIGINT) AS n{i}, \
                 CAST(count(DISTINCT pid) FILTER (WHERE {predicate}) AS BIGINT) AS pids{i}, \
                 CAST(min(ts) FILTER (WHERE {predicate}) AS BIGINT) AS first{i}"
            ));
        }
        let any: Vec<String> = predicates.iter().map(|p| format!("({p})")).collect();
        let query = format!(
            "SELECT {} FROM {}{}",
            columns.join(", "),
            from(view),
            self.where_clause(&any.join(" OR "))
        );
        let mut counts = vec![(0, 0, None); predicates.len()];
        for batch in self.batches(&query)? {
            let rows = Columns::new(&batch);
            for (i, slot) in counts.iter_mut().enumerate() {
                if let (Some(n), Some(pids)) = (
                    rows.i64(&format!("n{i}"), 0),
                    rows.i64(&format!("pids{i}"), 0),
                ) {
                    *slot = (
                        n.unsigned_abs(),
                        pids.unsigned_abs(),
                        rows.i64(&format!("first{i}"), 0),
                    );
                }
            }
        }
        Ok(counts)
    }

    /// The first rows of `view` that match `predicate` (and the filter), by time; the first of
    /// them is at `first` (ns since the epoch).
    ///
    /// They are looked for in a time window from `first` that grows eightfold until it holds
    /// enough rows (or reaches the end of the captures): the reader then skips the row groups
    /// after the window. An `ORDER BY ts LIMIT` alone read the whole capture, 0.4 s a question
    /// on the 10 M-row benchmark capture.
    pub fn examples(
        &self,
        view: &str,
        predicate: &str,
        first: i64,
    ) -> Result<Vec<Example>, EngineError> {
        let what = if view == "calls" {
            "syscall"
        } else {
            "coalesce(syscall, kind)"
        };
        let mut window: i64 = 1_000_000_000;
        let batches = loop {
            let end = first.saturating_add(window);
            let last = end > self.span.end;
            let mut bounds = format!("ts >= {}", timestamp(first));
            if !last {
                bounds.push_str(&format!(" AND ts < {}", timestamp(end)));
            }
            let query = format!(
                "SELECT pid, CAST(comm AS VARCHAR) AS comm, CAST(ts AS BIGINT) AS ts, \
                 CAST({what} AS VARCHAR) AS what, addr, len, ret, prot, \
                 CAST(coalesce(file_path, file_name) AS VARCHAR) AS file, errno \
                 FROM {}{} ORDER BY ts, pid LIMIT {}",
                from(view),
                self.where_clause(&format!("({predicate}) AND {bounds}")),
                self.examples
            );
            let batches = self.batches(&query)?;
            let found: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if last || found >= self.examples {
                break batches;
            }
            window = window.saturating_mul(8);
        };
        let mut examples = Vec::new();
        for batch in batches {
            let rows = Columns::new(&batch);
            for row in 0..batch.num_rows() {
                let what = rows.string("what", row).unwrap_or_default();
                let ret = rows.i64("ret", row);
                let errno = rows.i64("errno", row);
                // An mmap's address is what it returned.
                let addr = match (what.as_str(), ret, errno) {
                    ("mmap", Some(ret), None) => Some(ret as u64),
                    _ => rows.u64("addr", row),
                };
                examples.push(Example {
                    pid: rows.u32("pid", row).unwrap_or(0),
                    comm: rows.string("comm", row).unwrap_or_default(),
                    ts_ns: rows.i64("ts", row).unwrap_or(0),
                    what,
                    addr,
                    len: rows.u64("len", row),
                    prot: rows.u64("prot", row).map(mmap_format::names::prot_names),
                    file: rows.string("file", row),
                    detail: errno
                        .and_then(|errno| i32::try_from(errno).ok())
                        .map(labels::errno_label),
                });
            }
        }
        Ok(examples)
    }
}

/// What a question over `view` reads: `events` with the decoded columns of `calls` added, so
/// that a `--where` written for `calls` (`dur_ns > 1000`, `errno_name = 'ENOMEM'`) works on it.
fn from(view: &str) -> String {
    if view != "events" {
        return view.to_owned();
    }
    format!(
        "(SELECT *, CAST(ts_exit AS BIGINT) - CAST(ts AS BIGINT) AS {dur}, prot_names(prot) AS \
         {prot}, flags_names(syscall, flags) AS {flags}, errno_name(errno) AS {errno} \
         FROM events) AS events",
        dur = views::DUR_NS,
        prot = views::PROT_NAMES,
        flags = views::FLAGS_NAMES,
        errno = views::ERRNO_NAME,
    )
}

/// The columns of a result batch, read by name as the type asked for (NULL, a missing column or
/// a value that does not fit read as `None`).
pub struct Columns {
    batch: RecordBatch,
    /// Each column as each type it was read as, cast once.
    cast: RefCell<HashMap<(String, DataType), Option<ArrayRef>>>,
}

impl Columns {
    pub fn new(batch: &RecordBatch) -> Self {
        Self {
            batch: batch.clone(),
            cast: RefCell::default(),
        }
    }

    fn cast(&self, name: &str, to: &DataType) -> Option<ArrayRef> {
        self.cast
            .borrow_mut()
            .entry((name.to_owned(), to.clone()))
            .or_insert_with(|| {
                let column = self.batch.column_by_name(name)?;
                cast(column, to).ok()
            })
            .clone()
    }

    /// The value of column `name` at `row`, cast to `T`.
    fn primitive<T: ArrowPrimitiveType>(&self, name: &str, row: usize) -> Option<T::Native> {
        let column = self.cast(name, &T::DATA_TYPE)?;
        let values = column.as_primitive::<T>();
        (row < values.len() && values.is_valid(row)).then(|| values.value(row))
    }

    pub fn i64(&self, name: &str, row: usize) -> Option<i64> {
        self.primitive::<Int64Type>(name, row)
    }

    pub fn u64(&self, name: &str, row: usize) -> Option<u64> {
        self.primitive::<UInt64Type>(name, row)
    }

    pub fn u32(&self, name: &str, row: usize) -> Option<u32> {
        self.primitive::<UInt32Type>(name, row)
    }

    pub fn string(&self, name: &str, row: usize) -> Option<String> {
        let column = self.cast(name, &DataType::Utf8)?;
        let values = column.as_string::<i32>();
        (row < values.len() && values.is_valid(row)).then(|| values.value(row).to_owned())
    }
}
