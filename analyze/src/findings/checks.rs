//! The questions an SQL predicate answers: over single rows (a writable and executable mapping,
//! a mapping of a deleted file, an exec of one) or over the rows of each process in a time
//! window (large or fast-growing anonymous memory, failure storms).

use super::{
    Example, Finding, Severity, Thresholds,
    query::{Columns, PROCESSES, RowCheck, Scope},
};
use crate::labels;

/// `PROT_WRITE | PROT_EXEC`.
const PROT_WX: u64 = 0x2 | 0x4;
/// `PROT_EXEC`.
const PROT_EXEC: u64 = 0x4;
/// `MAP_ANONYMOUS`.
const MAP_ANONYMOUS: u64 = 0x20;
/// EAGAIN and ENOMEM.
const STORM_ERRNOS: &str = "11, 12";

/// Processes listed in a per-process predicate before it gives up on listing them.
const MAX_LISTED_PIDS: usize = 50;

/// Successful anonymous mmaps (the rows the anonymous-memory questions add up).
pub fn anon_mmap() -> String {
    format!(
        "syscall = 'mmap' AND (flags & {MAP_ANONYMOUS}) <> 0 AND errno IS NULL AND ret IS NOT NULL"
    )
}

/// Successful mmaps of a deleted file or a memfd, executable (`exec`) or not.
fn deleted_mmap(exec: bool) -> String {
    let op = if exec { "<>" } else { "=" };
    format!(
        "syscall = 'mmap' AND errno IS NULL AND (file_deleted OR file_memfd) AND \
         (prot & {PROT_EXEC}) {op} 0"
    )
}

/// Every question of this module.
pub fn evaluate(scope: &Scope<'_>, options: &Thresholds) -> anyhow::Result<Vec<Finding>> {
    let mut findings = scope.row_findings(vec![
        RowCheck {
            id: "wx-mapping",
            severity: Severity::High,
            title: "mmap or mprotect asking for writable and executable memory \
                    (PROT_WRITE|PROT_EXEC)"
                .to_owned(),
            view: "calls",
            predicate: format!(
                "syscall IN ('mmap', 'mprotect') AND (prot & {PROT_WX}) = {PROT_WX}"
            ),
            note: Some(
                "failed attempts count too: a refused W+X request is a sign as well".to_owned(),
            ),
        },
        RowCheck {
            id: "deleted-exec",
            severity: Severity::High,
            title: "exec of a deleted file, a memfd or a file descriptor".to_owned(),
            view: "events",
            predicate: format!(
                "(kind = 'exec' AND (file_deleted OR file_memfd OR file_path LIKE '/proc/%/fd/%' \
                 OR file_path LIKE '/dev/fd/%')) OR (kind = 'snapshot' AND \
                 source = 'proc_maps:exec' AND (prot & {PROT_EXEC}) <> 0 AND \
                 (file_deleted OR file_memfd))"
            ),
            note: Some(
                "exec rows name the path given to execve; the /proc/PID/maps snapshot taken \
                 after the exec shows whether the program's file was deleted or a memfd"
                    .to_owned(),
            ),
        },
        RowCheck {
            id: "deleted-exec-mapping",
            severity: Severity::High,
            title: "executable mappings of deleted files or memfds".to_owned(),
            view: "calls",
            predicate: deleted_mmap(true),
            note: None,
        },
        RowCheck {
            id: "deleted-mapping",
            severity: Severity::Medium,
            title: "mappings (not executable) of deleted files or memfds".to_owned(),
            view: "calls",
            predicate: deleted_mmap(false),
            note: None,
        },
    ])?;
    let window = |ns: i64| Frame::Window(ns);
    findings.extend([
        per_process(
            scope,
            &PerProcess {
                id: "big-anon",
                severity: Severity::Medium,
                title: format!(
                    "processes that mapped more than {} of anonymous memory in all",
                    options.big_anon
                ),
                predicate: anon_mmap(),
                value: "len",
                frame: Frame::Running,
                at_least: options.big_anon.0.saturating_add(1),
                note: "anonymous mmaps add up, munmap is not subtracted (leak-candidate says \
                       what stayed mapped); the example's time is the first anonymous mmap",
            },
        )?,
        per_process(
            scope,
            &PerProcess {
                id: "fast-anon",
                severity: Severity::Medium,
                title: format!(
                    "processes that mapped more than {} of anonymous memory within {}",
                    options.fast_anon, options.fast_anon_window
                ),
                predicate: anon_mmap(),
                value: "len",
                frame: window(options.fast_anon_window.0),
                at_least: options.fast_anon.0.saturating_add(1),
                note: "the example's time is when the window first went over the threshold",
            },
        )?,
        per_process(
            scope,
            &PerProcess {
                id: "failure-storm",
                severity: Severity::Medium,
                title: format!(
                    "processes with at least {} calls failing with ENOMEM or EAGAIN within {}",
                    options.storm, options.storm_window
                ),
                predicate: format!("errno IN ({STORM_ERRNOS})"),
                value: "1",
                frame: window(options.storm_window.0),
                at_least: options.storm.max(1),
                note: "the example's time is when the burst first reached the threshold",
            },
        )?,
    ]);
    findings.push(lost(scope)?);
    Ok(findings)
}

/// Which rows of a process a total covers.
enum Frame {
    /// Every row so far.
    Running,
    /// The rows of the last `ns` nanoseconds.
    Window(i64),
}

/// A question about processes: the rows matching `predicate` of one process whose `value`s add
/// up to at least `at_least` within `frame`.
struct PerProcess {
    id: &'static str,
    severity: Severity,
    title: String,
    predicate: String,
    /// An SQL expression: `len` adds up bytes, `1` counts rows.
    value: &'static str,
    frame: Frame,
    at_least: u64,
    note: &'static str,
}

/// The processes of `check`, by the time they reached the threshold.
fn per_process(scope: &Scope<'_>, check: &PerProcess) -> anyhow::Result<Finding> {
    let sum = format!("sum(CAST({} AS DECIMAL(38, 0)))", check.value);
    let hits = match check.frame {
        Frame::Running => {
            let query = format!(
                "SELECT pid, first_value(CAST(comm AS VARCHAR) ORDER BY ts) AS comm, \
                   CAST(min(ts) AS BIGINT) AS ts, CAST({sum} AS DOUBLE) AS total \
                 FROM calls{} GROUP BY pid HAVING {sum} >= {} ORDER BY ts, pid",
                scope.where_clause(&check.predicate),
                check.at_least,
            );
            let mut hits = Vec::new();
            for batch in scope.batches(&query)? {
                let rows = Columns::new(&batch);
                for row in 0..batch.num_rows() {
                    if let Some(pid) = rows.u32("pid", row) {
                        hits.push(Hit {
                            pid,
                            comm: rows.string("comm", row).unwrap_or_default(),
                            ts: rows.i64("ts", row).unwrap_or(0),
                            total: rows.u64("total", row).map_or(0, u128::from),
                        });
                    }
                }
            }
            hits
        }
        Frame::Window(ns) => {
            // Only a process whose rows reach the threshold in all can reach it in a window:
            // the window sums run over those processes only.
            let over = processes_over(scope, &check.predicate, &sum, check.at_least)?;
            if over.is_empty() {
                return Ok(finding(check, Vec::new(), Vec::new()));
            }
            windowed(scope, check, ns, &over)?
        }
    };
    let mut pids = Vec::new();
    let mut examples = Vec::new();
    for hit in hits {
        pids.push(hit.pid);
        if examples.len() >= scope.examples {
            continue;
        }
        let total = u64::try_from(hit.total).unwrap_or(u64::MAX);
        let amount = match check.value {
            "len" => labels::human_bytes(total),
            _ => format!("{total} call{}", labels::plural(total)),
        };
        let detail = match check.frame {
            Frame::Running => format!("{amount} in all"),
            Frame::Window(ns) => format!("{amount} within {}", super::Window(ns)),
        };
        examples.push(Example {
            pid: hit.pid,
            comm: hit.comm,
            ts_ns: hit.ts,
            what: "process".to_owned(),
            len: (check.value == "len").then_some(total),
            detail: Some(detail),
            ..Example::default()
        });
    }
    Ok(finding(check, pids, examples))
}

/// A process that reached a threshold: when it first did (and its name then), and the largest
/// total it reached.
#[derive(Debug, PartialEq, Eq)]
struct Hit {
    pid: u32,
    comm: String,
    ts: i64,
    total: u128,
}

/// The processes among `over` whose rows matching the check's predicate (and the filter) add up
/// to at least `at_least` within `ns`: the window of a row holds the process's rows from `ns`
/// before it up to its time, those at the same time included (SQL's `RANGE BETWEEN ns
/// PRECEDING AND CURRENT ROW`). The engine sorts the rows by process and time; the windows
/// slide here, exact in `u128` (a window function over hundreds of processes took seconds,
/// most of it in the engine's window operator).
fn windowed(
    scope: &Scope<'_>,
    check: &PerProcess,
    ns: i64,
    over: &[u32],
) -> anyhow::Result<Vec<Hit>> {
    let (narrowed, _, _) = pid_predicate(&check.predicate, over, "");
    let query = format!(
        "SELECT pid, CAST(comm AS VARCHAR) AS comm, CAST(ts AS BIGINT) AS ts, \
           CAST({} AS BIGINT UNSIGNED) AS value FROM calls{} ORDER BY pid, ts",
        check.value,
        scope.where_clause(&narrowed),
    );
    let mut slide = Slide::new(ns, u128::from(check.at_least));
    for batch in scope.engine.sql(&query)? {
        let batch = batch?;
        let rows = Columns::new(&batch);
        for row in 0..batch.num_rows() {
            let (Some(pid), Some(ts)) = (rows.u32("pid", row), rows.i64("ts", row)) else {
                continue;
            };
            let value = rows.u64("value", row).unwrap_or(0);
            slide.push(pid, ts, value, || {
                rows.string("comm", row).unwrap_or_default()
            });
        }
    }
    let mut hits = slide.finish();
    hits.sort_by_key(|hit| (hit.ts, hit.pid));
    Ok(hits)
}

/// Sliding sums over rows in (pid, time) order; see [`windowed`].
struct Slide {
    ns: i64,
    at_least: u128,
    /// The rows of the current process within the window: (time, value).
    window: std::collections::VecDeque<(i64, u64)>,
    sum: u128,
    /// The current group of rows: its process and time, and the name of its first row while
    /// the process has not reached the threshold.
    group: Option<(u32, i64, Option<String>)>,
    /// The current process's hit, once it reached the threshold.
    hit: Option<Hit>,
    hits: Vec<Hit>,
}

impl Slide {
    fn new(ns: i64, at_least: u128) -> Self {
        Self {
            ns,
            at_least,
            window: std::collections::VecDeque::new(),
            sum: 0,
            group: None,
            hit: None,
            hits: Vec::new(),
        }
    }

    fn push(&mut self, pid: u32, ts: i64, value: u64, comm: impl FnOnce() -> String) {
        if self
            .group
            .as_ref()
            .is_none_or(|&(p, t, _)| (p, t) != (pid, ts))
        {
            self.close_group();
            if self.group.as_ref().is_some_and(|&(p, _, _)| p != pid) {
                self.hits.extend(self.hit.take());
                self.window.clear();
                self.sum = 0;
            }
            let name = self.hit.is_none().then(comm);
            self.group = Some((pid, ts, name));
        }
        self.window.push_back((ts, value));
        self.sum += u128::from(value);
    }

    /// The group's rows are all in: the window is the rows from `ns` before it up to it.
    fn close_group(&mut self) {
        let Some((pid, ts, name)) = self.group.as_mut() else {
            return;
        };
        let from = ts.saturating_sub(self.ns);
        while let Some(&(t, value)) = self.window.front()
            && t < from
        {
            self.sum -= u128::from(value);
            self.window.pop_front();
        }
        if self.sum < self.at_least {
            return;
        }
        match &mut self.hit {
            Some(hit) => hit.total = hit.total.max(self.sum),
            None => {
                self.hit = Some(Hit {
                    pid: *pid,
                    comm: name.take().unwrap_or_default(),
                    ts: *ts,
                    total: self.sum,
                });
            }
        }
    }

    fn finish(mut self) -> Vec<Hit> {
        self.close_group();
        self.hits.extend(self.hit.take());
        self.hits
    }
}

/// The finding of `check` for the processes `pids`.
fn finding(check: &PerProcess, pids: Vec<u32>, examples: Vec<Example>) -> Finding {
    let count = pids.len() as u64;
    let (predicate, exact, note) = pid_predicate(&check.predicate, &pids, check.note);
    Finding {
        id: check.id,
        severity: check.severity,
        title: check.title.clone(),
        count,
        unit: PROCESSES,
        processes: count,
        view: "calls",
        predicate,
        exact,
        note: Some(note),
        examples,
    }
}

/// The processes whose rows matching `predicate` (and the filter) have `sum` at least
/// `at_least`.
fn processes_over(
    scope: &Scope<'_>,
    predicate: &str,
    sum: &str,
    at_least: u64,
) -> anyhow::Result<Vec<u32>> {
    let query = format!(
        "SELECT pid FROM calls{} GROUP BY pid HAVING {sum} >= {at_least}",
        scope.where_clause(predicate)
    );
    let mut pids = Vec::new();
    for batch in scope.batches(&query)? {
        let rows = Columns::new(&batch);
        pids.extend((0..batch.num_rows()).filter_map(|row| rows.u32("pid", row)));
    }
    pids.sort_unstable();
    Ok(pids)
}

/// `predicate` narrowed to the processes `pids` (when there are not too many to list), whether
/// that is exact, and `note` with what the predicate shows.
pub fn pid_predicate(predicate: &str, pids: &[u32], note: &str) -> (String, bool, String) {
    if pids.is_empty() || pids.len() > MAX_LISTED_PIDS {
        let why = if pids.is_empty() {
            String::new()
        } else {
            format!("; the predicate does not list the {} processes", pids.len())
        };
        return (
            predicate.to_owned(),
            pids.is_empty(),
            format!("{note}{why}"),
        );
    }
    let list: Vec<String> = pids.iter().map(u32::to_string).collect();
    (
        format!("{predicate} AND pid IN ({})", list.join(", ")),
        true,
        note.to_owned(),
    )
}

/// Records the recorder lost (the other findings may miss rows there). The row filter does not
/// apply: lost records belong to no process.
fn lost(scope: &Scope<'_>) -> anyhow::Result<Finding> {
    // The window sums every row before LIMIT keeps the first few.
    let query = format!(
        "SELECT CAST(ts AS BIGINT) AS ts, cpu, lost_count, \
         CAST(sum(lost_count) OVER () AS BIGINT) AS total \
         FROM lost WHERE lost_count > 0 ORDER BY ts LIMIT {}",
        scope.examples.max(1)
    );
    let mut total = 0;
    let mut examples = Vec::new();
    for batch in scope.batches(&query)? {
        let rows = Columns::new(&batch);
        for row in 0..batch.num_rows() {
            total = rows.u64("total", row).unwrap_or(total);
            if examples.len() >= scope.examples {
                continue;
            }
            let count = rows.u64("lost_count", row).unwrap_or(0);
            let cpu = rows.u32("cpu", row).unwrap_or(0);
            examples.push(Example {
                ts_ns: rows.i64("ts", row).unwrap_or(0),
                what: "lost".to_owned(),
                detail: Some(format!(
                    "{} record{} lost on CPU {cpu}",
                    labels::thousands(count),
                    labels::plural(count)
                )),
                ..Example::default()
            });
        }
    }
    Ok(Finding {
        id: "records-lost",
        severity: Severity::Info,
        title: "records the recorder lost: every finding may miss rows there".to_owned(),
        count: total,
        unit: "records",
        processes: 0,
        view: "lost",
        predicate: "lost_count > 0".to_owned(),
        exact: true,
        note: Some("lost records belong to no process: the row filter does not apply".to_owned()),
        examples,
    })
}

#[cfg(test)]
mod tests {
    use super::{Hit, Slide};

    fn slide(ns: i64, at_least: u128, rows: &[(u32, i64, u64, &str)]) -> Vec<Hit> {
        let mut slide = Slide::new(ns, at_least);
        for &(pid, ts, value, comm) in rows {
            slide.push(pid, ts, value, || comm.to_owned());
        }
        slide.finish()
    }

    fn hit(pid: u32, comm: &str, ts: i64, total: u128) -> Hit {
        Hit {
            pid,
            comm: comm.to_owned(),
            ts,
            total,
        }
    }

    /// `RANGE BETWEEN 10 PRECEDING AND CURRENT ROW`: the row 10 before is in, 11 before is out.
    #[test]
    fn the_window_reaches_back_ns_inclusive() {
        let rows = [
            (1, 0, 5, "a"),
            (1, 10, 5, "b"),
            (2, 0, 5, "c"),
            (2, 11, 5, "d"),
        ];
        assert_eq!(slide(10, 10, &rows), [hit(1, "b", 10, 10)]);
    }

    /// Rows at the same time are peers: each one's window holds all of them, the later ones
    /// too, so the first of them is when the threshold was reached.
    #[test]
    fn rows_at_the_same_time_count_together() {
        let rows = [(1, 5, 4, "first"), (1, 5, 4, "second"), (1, 5, 4, "third")];
        assert_eq!(slide(0, 12, &rows), [hit(1, "first", 5, 12)]);
        assert_eq!(slide(0, 13, &rows), []);
    }

    /// A process's first hit is kept with its name then; the total is the largest window; the
    /// next process starts with an empty window.
    #[test]
    fn each_process_keeps_its_first_hit_and_largest_total() {
        let rows = [
            (1, 0, 6, "old"),
            (1, 1, 6, "new"),
            (1, 2, 6, "new"),
            (1, 100, 1, "new"),
            (2, 101, 6, "other"),
        ];
        assert_eq!(slide(5, 12, &rows), [hit(1, "new", 1, 18)]);
        // Totals past u64 stay exact.
        let big = [(3, 0, u64::MAX, "x"), (3, 1, u64::MAX, "x")];
        assert_eq!(
            slide(5, 1, &big),
            [hit(3, "x", 0, 2 * u128::from(u64::MAX))]
        );
    }
}
