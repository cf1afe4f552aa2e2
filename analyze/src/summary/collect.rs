//! The [`Summary`] from two queries over the rows (counts by kind, system call, errno, process
//! and thread name; the loss windows), run by the query engine so that only
//! the columns they use are read, and from the files' metadata ([`FileTotals`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use arrow::{
    array::{Array, ArrayRef, AsArray as _, RecordBatch},
    compute::cast,
    datatypes::{DataType, Int64Type},
};
use datafusion::error::DataFusionError;
use mmap_format::{
    event::{MAX_ERRNO, RowKind, Syscall},
    metadata::Counters,
    reader::CaptureReader,
    schema::col,
};

use super::{CommSummary, FileSummary, ProcessSummary, Summary};
use crate::{
    engine::{
        Engine, EngineError,
        filter::{self, literal},
    },
    input, labels,
    loss::{LossWindow, LossWindows},
    segments,
};

/// The summary of the rows of `readers` for which `predicate` (SQL, as `events --where` takes
/// it) is true; the files' metadata is summed whatever the predicate.
pub fn collect(
    readers: &[CaptureReader],
    top: usize,
    predicate: Option<&str>,
) -> anyhow::Result<Summary> {
    let engine = Engine::open(readers)?;
    let from = match predicate {
        Some(predicate) => {
            filter::check(&engine, &input::rows(), predicate)?;
            format!("(SELECT * FROM {} WHERE ({predicate}))", input::rows())
        }
        None => "events".to_owned(),
    };
    let mut totals = Totals::default();
    totals.add_groups(&engine, &from)?;
    totals.add_loss_windows(&engine, &from)?;
    let mut files = FileTotals::default();
    for reader in readers {
        files.add(reader, reader.num_rows());
    }
    let mut summary = Summary::new(totals, files, top);
    summary.missing_segments = segments::missing(readers);
    summary.complete &= summary.missing_segments.is_empty();
    Ok(summary)
}

/// SQL: the errno of a failed call (`ret` is `-errno`), else NULL.
fn errno_sql() -> String {
    format!(
        "CASE WHEN {ret} BETWEEN -{MAX_ERRNO} AND -1 THEN -{ret} END",
        ret = col::RET
    )
}

/// SQL, an aggregate: the length of the successful calls of a group (its bytes mapped when the
/// group is of mmap calls, which [`Totals::add_groups`] checks by its keys). A `FILTER` is
/// applied as a mask; a `CASE` per row took most of the aggregation's time.
fn sum_ok_len_sql() -> String {
    format!(
        "sum(coalesce({len}, 0)) FILTER (WHERE {ret} IS NOT NULL AND NOT \
         ({ret} BETWEEN -{MAX_ERRNO} AND -1))",
        ret = col::RET,
        len = col::LEN,
    )
}

/// One result column as 64-bit integers or as text, whatever type the engine gave it.
fn column(batch: &RecordBatch, index: usize, to: &DataType) -> Result<ArrayRef, EngineError> {
    cast(batch.column(index), to)
        .map_err(|err| EngineError::Query(DataFusionError::ArrowError(Box::new(err), None)))
}

/// Runs `query` and hands each row to `row` as its columns (integers or text).
fn each_row(
    engine: &Engine,
    query: &str,
    types: &[DataType],
    mut row: impl FnMut(&[ArrayRef], usize),
) -> Result<(), EngineError> {
    for batch in engine.sql(query)? {
        let batch = batch?;
        let columns = types
            .iter()
            .enumerate()
            .map(|(index, to)| column(&batch, index, to))
            .collect::<Result<Vec<_>, _>>()?;
        for index in 0..batch.num_rows() {
            row(&columns, index);
        }
    }
    Ok(())
}

fn int(column: &ArrayRef, row: usize) -> Option<i64> {
    let values = column.as_primitive::<Int64Type>();
    values.is_valid(row).then(|| values.value(row))
}

fn text(column: &ArrayRef, row: usize) -> Option<&str> {
    let values = column.as_string::<i32>();
    values.is_valid(row).then(|| values.value(row))
}

/// A count as u64 (counts and sums are never negative).
fn count_of(column: &ArrayRef, row: usize) -> u64 {
    int(column, row)
        .and_then(|n| u64::try_from(n).ok())
        .unwrap_or(0)
}

/// Running totals of one process.
#[derive(Debug, Default)]
struct ProcessTotals {
    events: u64,
    bytes_mapped: u64,
    comms: BTreeMap<String, u64>,
}

impl ProcessTotals {
    /// The thread name seen most often (ties: the smallest), to name the process.
    fn comm(&self) -> String {
        self.comms
            .iter()
            .max_by(|a, b| a.1.cmp(b.1).then_with(|| b.0.cmp(a.0)))
            .map(|(comm, _)| comm.clone())
            .unwrap_or_default()
    }
}

/// Running totals of one thread name.
#[derive(Debug, Default)]
struct CommTotals {
    pids: HashSet<u32>,
    events: u64,
    bytes_mapped: u64,
}

/// Counts over the rows.
#[derive(Debug, Default)]
struct Totals {
    events: u64,
    failed: u64,
    bytes_mapped: u64,
    first_ts: Option<i64>,
    last_ts: Option<i64>,
    by_kind: BTreeMap<String, u64>,
    by_syscall: BTreeMap<String, u64>,
    errors: BTreeMap<String, u64>,
    processes: HashMap<u32, ProcessTotals>,
    comms: HashMap<String, CommTotals>,
    loss_windows: LossWindows,
}

impl Totals {
    /// Counts by kind, system call and errno, bytes mapped, first and last row, and the system
    /// call rows and bytes of each process and thread name: one scan, grouped by all five.
    fn add_groups(&mut self, engine: &Engine, from: &str) -> Result<(), EngineError> {
        let query = format!(
            "SELECT {kind}, {syscall}, {errno} AS errno_of_ret, {pid}, {comm}, count(*), \
             {mapped}, min({ts}), max({ts}) FROM {from} \
             GROUP BY {kind}, {syscall}, errno_of_ret, {pid}, {comm}",
            kind = col::KIND,
            syscall = col::SYSCALL,
            errno = errno_sql(),
            pid = col::PID,
            comm = col::COMM,
            mapped = sum_ok_len_sql(),
            ts = col::TS,
        );
        let types = [
            DataType::Utf8,
            DataType::Utf8,
            DataType::Int64,
            DataType::Int64,
            DataType::Utf8,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
            DataType::Int64,
        ];
        each_row(engine, &query, &types, |columns, row| {
            let kind = RowKind::from_name(text(&columns[0], row).unwrap_or_default());
            let syscall = text(&columns[1], row).map(Syscall::from_name);
            let rows = count_of(&columns[5], row);
            let mapped = if kind == RowKind::Syscall && syscall == Some(Syscall::Mmap) {
                count_of(&columns[6], row)
            } else {
                0
            };
            self.events += rows;
            for ts in [int(&columns[7], row), int(&columns[8], row)]
                .into_iter()
                .flatten()
            {
                self.first_ts = Some(self.first_ts.unwrap_or(ts).min(ts));
                self.last_ts = Some(self.last_ts.unwrap_or(ts).max(ts));
            }
            add(&mut self.by_kind, kind.as_str(), rows);
            if kind != RowKind::Syscall {
                return;
            }
            let label = syscall.map_or(kind.as_str(), Syscall::as_str);
            add(&mut self.by_syscall, label, rows);
            let errno = int(&columns[2], row).and_then(|errno| i32::try_from(errno).ok());
            if let Some(errno) = errno {
                self.failed += rows;
                add(&mut self.errors, &labels::errno_label(errno), rows);
            }
            self.bytes_mapped = self.bytes_mapped.saturating_add(mapped);
            let Some(pid) = int(&columns[3], row).and_then(|pid| u32::try_from(pid).ok()) else {
                return;
            };
            let comm = text(&columns[4], row).unwrap_or_default();
            let process = self.processes.entry(pid).or_default();
            process.events += rows;
            process.bytes_mapped = process.bytes_mapped.saturating_add(mapped);
            add(&mut process.comms, comm, rows);
            let totals = self.comms.entry(comm.to_owned()).or_default();
            totals.pids.insert(pid);
            totals.events += rows;
            totals.bytes_mapped = totals.bytes_mapped.saturating_add(mapped);
        })
    }

    /// The `lost` rows.
    fn add_loss_windows(&mut self, engine: &Engine, from: &str) -> Result<(), EngineError> {
        let query = format!(
            "SELECT {cpu}, {ts}, {exit}, {count} FROM {from} WHERE {kind} = {lost}",
            cpu = col::CPU,
            ts = col::TS,
            exit = col::TS_EXIT,
            count = col::LOST_COUNT,
            kind = col::KIND,
            lost = literal(RowKind::Lost.as_str()),
        );
        let types = [const { DataType::Int64 }; 4];
        each_row(engine, &query, &types, |columns, row| {
            let from_ns = int(&columns[1], row).unwrap_or_default();
            self.loss_windows.push(LossWindow {
                cpu: int(&columns[0], row)
                    .and_then(|cpu| u32::try_from(cpu).ok())
                    .unwrap_or(0),
                from: labels::rfc3339_ns(from_ns),
                to: labels::rfc3339_ns(int(&columns[2], row).unwrap_or(from_ns)),
                count: count_of(&columns[3], row),
                from_ns,
            });
        })
    }

    /// Every process, most system call rows first (ties: the smallest pid).
    fn processes_by_calls(&self) -> Vec<ProcessSummary> {
        let mut by_process: Vec<ProcessSummary> = self
            .processes
            .iter()
            .map(|(pid, p)| ProcessSummary {
                pid: *pid,
                comm: p.comm(),
                events: p.events,
                bytes_mapped: p.bytes_mapped,
            })
            .collect();
        by_process.sort_by(|a, b| b.events.cmp(&a.events).then(a.pid.cmp(&b.pid)));
        by_process
    }

    /// Every thread name, most system call rows first (ties: by name).
    fn comms_by_calls(&self) -> Vec<CommSummary> {
        let mut by_comm: Vec<CommSummary> = self
            .comms
            .iter()
            .map(|(comm, c)| CommSummary {
                comm: comm.clone(),
                processes: c.pids.len(),
                events: c.events,
                bytes_mapped: c.bytes_mapped,
            })
            .collect();
        by_comm.sort_by(|a, b| b.events.cmp(&a.events).then_with(|| a.comm.cmp(&b.comm)));
        by_comm
    }
}

/// The processes that mapped bytes, most bytes first (ties: most calls, then the smallest pid).
fn by_bytes(processes: &[ProcessSummary]) -> Vec<ProcessSummary> {
    let mut by_bytes: Vec<ProcessSummary> = processes
        .iter()
        .filter(|p| p.bytes_mapped > 0)
        .map(|p| ProcessSummary {
            comm: p.comm.clone(),
            ..*p
        })
        .collect();
    by_bytes.sort_by(|a, b| {
        (b.bytes_mapped, b.events)
            .cmp(&(a.bytes_mapped, a.events))
            .then(a.pid.cmp(&b.pid))
    });
    by_bytes
}

/// The first `top` items; all of them for 0.
fn first<T>(mut items: Vec<T>, top: usize) -> Vec<T> {
    if top > 0 {
        items.truncate(top);
    }
    items
}

/// Adds `n` to the count of `key`.
fn add(counts: &mut BTreeMap<String, u64>, key: &str, n: u64) {
    match counts.get_mut(key) {
        Some(count) => *count += n,
        None => {
            counts.insert(key.to_owned(), n);
        }
    }
}

/// What the files' metadata says, over all files.
#[derive(Debug, Default)]
struct FileTotals {
    files: Vec<FileSummary>,
    /// Counters summed over the files.
    counters: Counters,
    lost: u64,
    hosts: BTreeSet<String>,
    kernels: BTreeSet<String>,
    capture_start: Option<i64>,
    capture_end: Option<i64>,
}

impl FileTotals {
    fn add(&mut self, reader: &CaptureReader, rows: u64) {
        let meta = reader.metadata();
        add_counters(&mut self.counters, &meta.counters);
        self.lost = self.lost.saturating_add(meta.counters.lost());
        self.hosts.insert(meta.hostname.clone());
        self.kernels.insert(meta.kernel_release.clone());
        let (start, end) = (meta.capture_start_ns, meta.capture_end_ns);
        self.capture_start = Some(self.capture_start.unwrap_or(start).min(start));
        self.capture_end = Some(self.capture_end.unwrap_or(end).max(end));
        self.files.push(FileSummary::new(reader, rows));
    }
}

impl FileSummary {
    fn new(reader: &CaptureReader, rows: u64) -> Self {
        let meta = reader.metadata();
        Self {
            path: reader.path().display().to_string(),
            format_version: format!(
                "{}.{}",
                meta.format_version.major, meta.format_version.minor
            ),
            recorder_version: meta.recorder_version.clone(),
            hostname: meta.hostname.clone(),
            kernel_release: meta.kernel_release.clone(),
            boot_id: meta.boot_id.clone(),
            attach_mode: meta.attach_mode.clone(),
            targets: meta.targets.clone(),
            capture_start: labels::rfc3339_ns(meta.capture_start_ns),
            capture_end: labels::rfc3339_ns(meta.capture_end_ns),
            rows,
            counters: meta.counters,
            lost: meta.counters.lost(),
            recovered: meta.recovered,
            capture_id: meta.capture_id.clone(),
            segment_index: meta.segment_index,
            page_size: meta.page_size,
        }
    }
}

fn add_counters(sum: &mut Counters, c: &Counters) {
    sum.emitted = sum.emitted.saturating_add(c.emitted);
    sum.lost_ringbuf_full = sum.lost_ringbuf_full.saturating_add(c.lost_ringbuf_full);
    sum.orphan_exits = sum.orphan_exits.saturating_add(c.orphan_exits);
    sum.entry_map_full = sum.entry_map_full.saturating_add(c.entry_map_full);
    sum.decode_errors = sum.decode_errors.saturating_add(c.decode_errors);
    sum.follow_map_full = sum.follow_map_full.saturating_add(c.follow_map_full);
}

impl Summary {
    fn new(totals: Totals, files: FileTotals, top: usize) -> Self {
        let processes = totals.processes_by_calls();
        let by_process_bytes = by_bytes(&processes);
        let comms = totals.comms_by_calls();
        let loss_windows = totals.loss_windows.finish();
        Self {
            complete: loss_windows.is_empty()
                && files.lost == 0
                && files.counters.follow_map_full == 0,
            missing_segments: Vec::new(),
            loss_windows,
            by_kind: totals.by_kind,
            files: files.files,
            hosts: files.hosts.into_iter().collect(),
            kernels: files.kernels.into_iter().collect(),
            capture_start: files.capture_start.map(labels::rfc3339_ns),
            capture_end: files.capture_end.map(labels::rfc3339_ns),
            first_ts: totals.first_ts.map(labels::rfc3339_ns),
            last_ts: totals.last_ts.map(labels::rfc3339_ns),
            events: totals.events,
            failed: totals.failed,
            bytes_mapped: totals.bytes_mapped,
            counters: files.counters,
            lost: files.lost,
            orphan_exits: files.counters.orphan_exits,
            by_syscall: totals.by_syscall,
            processes: processes.len(),
            top,
            by_process: first(processes, top),
            processes_that_mapped: by_process_bytes.len(),
            by_process_bytes: first(by_process_bytes, top),
            comms: comms.len(),
            by_comm: first(comms, top),
            errors: totals.errors,
        }
    }
}
