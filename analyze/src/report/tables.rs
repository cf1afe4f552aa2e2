//! The summary tables of the report: each is one aggregate query over the `calls` view, limited
//! to the first rows, with the number of rows there would be without the limit.

use super::collect::{Cell, rows, where_all};
use crate::engine::{Engine, EngineError};

/// How a column's values read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Text,
    Int,
    Count,
    Bytes,
    /// Nanoseconds.
    Duration,
    /// ns since the Unix epoch.
    Time,
}

/// A summary table: what it shows and the query that computes it.
pub struct Spec {
    pub id: &'static str,
    pub title: &'static str,
    /// What the rows are and how they are ordered.
    pub what: &'static str,
    pub columns: &'static [(&'static str, Kind)],
    /// The query's `SELECT ... FROM calls` part, before `WHERE`.
    select: &'static str,
    /// Terms that the rows must also meet.
    also: Option<&'static str>,
    /// `GROUP BY ... ORDER BY ...`.
    rest: &'static str,
}

/// Bytes asked for by successful mmap calls.
const BYTES_MAPPED: &str = "CAST(sum(CASE WHEN syscall = 'mmap' AND errno IS NULL AND ret IS NOT \
                            NULL THEN len ELSE 0 END) AS BIGINT)";

/// Every summary table, in page order.
pub fn specs() -> [Spec; 4] {
    [
        Spec {
            id: "processes",
            title: "Top processes",
            what: "processes with the most system calls (name: the last thread name seen)",
            columns: &[
                ("pid", Kind::Int),
                ("name", Kind::Text),
                ("calls", Kind::Count),
                ("failed", Kind::Count),
                ("bytes mapped", Kind::Bytes),
                ("time in calls", Kind::Duration),
            ],
            select: "SELECT pid, last_value(comm ORDER BY ts), count(*) AS n, count(errno), \
                     {BYTES}, CAST(sum(dur_ns) AS BIGINT), count(*) OVER () FROM calls",
            also: None,
            rest: " GROUP BY pid ORDER BY n DESC, pid",
        },
        Spec {
            id: "syscalls",
            title: "System calls",
            what: "each system call: how often, how often it failed, how long it took",
            columns: &[
                ("system call", Kind::Text),
                ("calls", Kind::Count),
                ("failed", Kind::Count),
                ("bytes mapped", Kind::Bytes),
                ("mean time", Kind::Duration),
                ("max time", Kind::Duration),
            ],
            select: "SELECT syscall, count(*) AS n, count(errno), {BYTES}, \
                     CAST(avg(dur_ns) AS BIGINT), max(dur_ns), count(*) OVER () FROM calls",
            also: None,
            rest: " GROUP BY syscall ORDER BY n DESC, syscall",
        },
        Spec {
            id: "files",
            title: "Top mapped files",
            what: "what mmap calls mapped (the file's path, else its name, else [anonymous]), \
                   most bytes first",
            columns: &[
                ("file", Kind::Text),
                ("mmap calls", Kind::Count),
                ("processes", Kind::Count),
                ("failed", Kind::Count),
                ("bytes mapped", Kind::Bytes),
            ],
            select: "SELECT coalesce(file_path, file_name, '[anonymous]') AS f, count(*) AS n, \
                     count(DISTINCT pid), count(errno), {BYTES} AS bytes, count(*) OVER () \
                     FROM calls",
            also: Some("syscall = 'mmap'"),
            rest: " GROUP BY f ORDER BY bytes DESC, n DESC, f",
        },
        Spec {
            id: "errors",
            title: "Errors",
            what: "failed calls by error and system call, most first",
            columns: &[
                ("error", Kind::Text),
                ("system call", Kind::Text),
                ("calls", Kind::Count),
                ("processes", Kind::Count),
                ("first", Kind::Time),
                ("last", Kind::Time),
            ],
            select: "SELECT coalesce(errno_name, concat('errno ', CAST(errno AS VARCHAR))) AS e, \
                     syscall, count(*) AS n, count(DISTINCT pid), min(ts), max(ts), \
                     count(*) OVER () FROM calls",
            also: Some("errno IS NOT NULL"),
            rest: " GROUP BY e, syscall ORDER BY n DESC, e, syscall",
        },
    ]
}

/// The first rows of a table and how many there are in all.
pub struct Filled {
    pub spec: Spec,
    pub rows: Vec<Vec<Cell>>,
    pub total: u64,
}

impl Spec {
    /// Runs the table's query over the calls that `calls` (a predicate) selects, keeping the
    /// first `limit` rows.
    pub fn fill(
        self,
        engine: &Engine,
        calls: Option<&str>,
        limit: usize,
    ) -> Result<Filled, EngineError> {
        let query = format!(
            "{}{}{} LIMIT {limit}",
            self.select.replace("{BYTES}", BYTES_MAPPED),
            where_all(&[self.also, calls]),
            self.rest
        );
        let mut rows = rows(engine, &query)?;
        let total = rows
            .first()
            .and_then(|row| row.last())
            .map_or(0, |cell| u64::try_from(cell.int()).unwrap_or(0));
        for row in &mut rows {
            row.pop();
        }
        Ok(Filled {
            spec: self,
            rows,
            total,
        })
    }
}
