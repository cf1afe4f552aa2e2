//! Building the [`Report`]: the rows that matter, replayed up to the time, then what the answer is
//! known from and why it may not be complete.

use std::collections::HashSet;

use anyhow::{Context as _, anyhow};
use arrow::{
    array::{RecordBatch, UInt32Array},
    compute::take_record_batch,
};
use mmap_format::{
    event::{Event, RowKind},
    reader::{BatchRows, CaptureReader},
    schema::col,
};

use super::{Args, BaselineJson, ExecJson, ForkJson, RegionJson, Report, State, scan::Scan};
use crate::{
    engine::{
        Engine,
        filter::{literal, timestamp},
    },
    input, labels,
    loss::{LossWindow, LossWindows},
    output,
    replay::{self, Baseline, Exit, Process, Region, Replay},
    segments,
    timespec::TimeSpec,
};

/// What is asked, with the time and page size resolved.
#[derive(Debug)]
pub struct Query {
    pub pid: u32,
    /// ns since the Unix epoch.
    pub at: i64,
    pub page_size: u64,
    pub merge: bool,
}

impl Query {
    pub fn new(readers: &[CaptureReader], scan: &Scan, args: &Args) -> anyhow::Result<Self> {
        let at = if args.before_exit {
            let exit = scan.exit_ts.with_context(|| {
                format!(
                    "--before-exit: pid {} has no exit row in the capture (it had not exited \
                     when the capture ended)",
                    args.pid
                )
            })?;
            exit.saturating_sub(1)
        } else {
            let spec = args.at.unwrap_or(TimeSpec::BeforeEnd(0));
            let resolved = spec
                .resolve(&scan.span)
                .map_err(|err| anyhow!("--at {err}"))?;
            if let Some(warning) = resolved.warning {
                output::warn(&format!("--at {warning}"));
            }
            resolved.ns
        };
        let page_size = readers
            .iter()
            .find_map(|r| r.metadata().page_size)
            .map_or(replay::DEFAULT_PAGE_SIZE, u64::from);
        Ok(Self {
            pid: args.pid,
            at,
            page_size,
            merge: !(args.no_merge || args.stacks),
        })
    }
}

impl Report {
    /// Replays the rows of the pid and its ancestors up to the time and describes the result.
    pub fn build(
        engine: &Engine,
        readers: &[CaptureReader],
        scan: &Scan,
        query: &Query,
    ) -> anyhow::Result<Self> {
        let (rows, loss_windows) = rows_until(engine, readers, &scan.lineage(query.pid), query.at)?;
        let (replay, comm) = replay_rows(&rows, query)?;
        let mut report = Self::new(scan, query, comm, loss_windows);
        report.untimed = Untimed::sum(readers, scan);
        report.lost_without_time = report.untimed.records();
        report.unfollowed_processes = report.untimed.follow_map_full;
        report.missing_segments = segments::missing(readers)
            .into_iter()
            .filter(|gap| gap.before(query.at))
            .collect();
        // A process seen at or before the time exists then, even when none of its rows changed
        // a map (a shell that predates the capture and only forked): nothing of its map is known.
        let unknown = Process::new(Baseline::Unknown);
        let live = match (replay.process(query.pid), replay.exit(query.pid)) {
            (Some(process), _) => Some(process),
            (None, Some(exit)) => {
                report.describe_exit(exit);
                None
            }
            (None, None) if scan.first_seen.is_some_and(|first| first.ts <= query.at) => {
                Some(&unknown)
            }
            (None, None) => {
                report.describe_not_seen(scan);
                None
            }
        };
        if let Some(process) = live {
            report.describe_live(process, query.merge);
        }
        if matches!(report.state, State::Live | State::NotSeen) {
            report.note_gaps();
        }
        if report.state == State::Live {
            report.note_old_formats(readers);
        }
        Ok(report)
    }

    /// A report of nothing known yet: no map, no baseline, not complete.
    fn new(scan: &Scan, query: &Query, comm: Option<String>, loss_windows: LossWindows) -> Self {
        Self {
            pid: query.pid,
            comm,
            at: labels::rfc3339_ns(query.at),
            at_ns: query.at,
            first_row: scan.span.first_row.map(labels::rfc3339_ns),
            first_row_ns: scan.span.first_row,
            state: State::Live,
            exited_at: None,
            exit_code: None,
            exit_status: None,
            first_seen: None,
            forked_from: None,
            exec: None,
            baseline: BaselineJson::new(&Baseline::Unknown),
            complete: false,
            notes: Vec::new(),
            loss_windows,
            lost_without_time: 0,
            untimed: Untimed::default(),
            unfollowed_processes: 0,
            missing_segments: Vec::new(),
            merged: query.merge,
            pieces: 0,
            bytes: 0,
            regions: Vec::new(),
            table_regions: Vec::new(),
            table_stacks: Vec::new(),
        }
    }

    fn describe_live(&mut self, process: &Process, merge: bool) {
        self.forked_from = process.forked.map(|(parent, ts)| ForkJson {
            parent,
            time: labels::rfc3339_ns(ts),
        });
        self.exec = process.exec.as_ref().map(|(ts, path)| ExecJson {
            path: path.clone(),
            time: labels::rfc3339_ns(*ts),
        });
        self.describe_baseline(&process.baseline);
        self.note_misses(process);
        let regions: Vec<Region> = if merge {
            process.map.merged()
        } else {
            process.map.regions().cloned().collect()
        };
        self.pieces = process.map.regions().count();
        self.bytes = regions.iter().map(Region::len).sum();
        self.regions = regions.iter().map(RegionJson::new).collect();
        self.table_regions = regions;
    }

    /// Only a snapshot makes the map complete; without one, a note says what is not known.
    fn describe_baseline(&mut self, baseline: &Baseline) {
        self.baseline = BaselineJson::new(baseline);
        match baseline {
            Baseline::Snapshot { .. } => self.complete = true,
            Baseline::Exec { ts } => self.notes.push(format!(
                "no snapshot of pid {} after its exec at {}: the mappings the kernel made for the \
                 new program (program, interpreter, stack, vdso) are not known",
                self.pid,
                labels::rfc3339_ns(*ts)
            )),
            Baseline::Unknown => self.notes.push(format!(
                "no snapshot of pid {} before {}: mappings made before the capture started are \
                 not known",
                self.pid, self.at
            )),
        }
    }

    fn note_misses(&mut self, process: &Process) {
        let Some((ts, what)) = process.misses.first() else {
            return;
        };
        self.complete = false;
        let count = process.misses.len();
        self.notes.push(format!(
            "{count} successful call{} changed memory missing from the replayed map (the map is \
             incomplete there); the first, at {}: {what}",
            labels::plural(count as u64),
            labels::rfc3339_ns(*ts)
        ));
    }

    /// A process whose first row comes after the time: not started yet when that row is the fork
    /// that created it; otherwise it may have existed already, with a map nobody saw.
    fn describe_not_seen(&mut self, scan: &Scan) {
        let Some(first) = scan.first_seen else {
            return;
        };
        let first_seen = labels::rfc3339_ns(first.ts);
        match first.forked_from {
            Some(parent) => {
                self.state = State::NotStarted;
                self.forked_from = Some(ForkJson {
                    parent,
                    time: first_seen.clone(),
                });
                self.complete = true;
            }
            None => {
                self.state = State::NotSeen;
                self.notes.push(format!(
                    "pid {} has no row at or before {}; its first row, at {first_seen}, is not \
                     its creation (no fork of it is in the capture): it may already have existed, \
                     with mappings that are not known",
                    self.pid, self.at
                ));
            }
        }
        self.first_seen = Some(first_seen);
    }

    fn describe_exit(&mut self, exit: &Exit) {
        self.state = State::Exited;
        self.exited_at = Some(labels::rfc3339_ns(exit.ts));
        self.exit_code = exit.code;
        self.exit_status = exit.code.map(labels::exit_status_label);
        self.complete = true;
    }

    /// Notes what the capture does not hold before the time: loss windows, lost records without
    /// a time, missing segments.
    fn note_gaps(&mut self) {
        for gap in &self.missing_segments {
            self.complete = false;
            self.notes.push(format!(
                "{}: changes in that time may be missing",
                gap.sentence()
            ));
        }
        if !self.loss_windows.is_empty() {
            self.complete = false;
            self.notes.push(format!(
                "the capture lost {} in {} before {}: changes in them may be missing",
                self.loss_windows.records_in_words(),
                self.loss_windows.windows_in_words(),
                self.at
            ));
        }
        let untimed = self.untimed;
        if untimed.ringbuf_full > 0 {
            self.complete = false;
            self.notes.push(format!(
                "the recorder counted {} lost record{} (the capture does not say when): changes \
                 may be missing",
                labels::thousands(untimed.ringbuf_full),
                labels::plural(untimed.ringbuf_full),
            ));
        }
        if untimed.entry_map_full > 0 {
            self.complete = false;
            self.notes.push(format!(
                "{} system call{} dropped by the recorder, which had no room for {} state in \
                 the kernel (the capture does not say when nor whose): those calls have no row, \
                 changes may be missing",
                labels::thousands(untimed.entry_map_full),
                labels::plural(untimed.entry_map_full),
                if untimed.entry_map_full == 1 {
                    "its"
                } else {
                    "their"
                },
            ));
        }
        if untimed.decode_errors > 0 {
            self.complete = false;
            self.notes.push(format!(
                "{} kernel record{} the recorder could not decode (the capture does not say when \
                 nor whose): changes may be missing",
                labels::thousands(untimed.decode_errors),
                labels::plural(untimed.decode_errors),
            ));
        }
        // A process not followed has its fork row and nothing after it: only a process forked
        // during the capture can be one.
        if untimed.follow_map_full > 0 && self.forked_from.is_some() {
            self.complete = false;
            self.notes.push(format!(
                "{} new process{} not followed (the recorder's map of followed processes was \
                 full): if pid {} is one of them, its calls after its fork are missing",
                labels::thousands(untimed.follow_map_full),
                if untimed.follow_map_full == 1 {
                    " was"
                } else {
                    "es were"
                },
                self.pid,
            ));
        }
    }

    fn note_old_formats(&mut self, readers: &[CaptureReader]) {
        for reader in readers {
            let version = reader.metadata().format_version;
            if (version.major, version.minor) == (1, 0) {
                self.complete = false;
                self.notes.push(format!(
                    "{} is a format 1.0 capture: it has no snapshots and no process events, and \
                     the recorder that wrote it recorded mmap calls only (no munmap, mprotect, \
                     mremap or brk): regions may have changed or gone since",
                    reader.path().display()
                ));
            }
        }
    }
}

/// The batches the rows were read in, and the order in which the rows that change a map take
/// effect. The rows stay in their columns, decoded again when replayed: an owned `Event` is
/// hundreds of bytes and a string allocation per text column, which on a 40 K-row recording
/// cost more (allocation, copies, fresh pages) than the replay itself.
struct TimedRows {
    /// Only the batches that hold such a row.
    batches: Vec<RecordBatch>,
    /// (time the row takes effect, batch, row in it), sorted: equal times keep the order the
    /// rows were read in.
    order: Vec<(i64, u32, u32)>,
}

/// The rows that can change the map of a process in `lineage`, at or before `at`, and when
/// each takes effect; and the loss windows before `at`, by start time. Only the rows of those
/// processes, forks of them and lost rows are read (the predicate reaches the Parquet reader),
/// up to `at`.
fn rows_until(
    engine: &Engine,
    readers: &[CaptureReader],
    lineage: &HashSet<u32>,
    at: i64,
) -> anyhow::Result<(TimedRows, LossWindows)> {
    let mut pids: Vec<String> = lineage.iter().map(u32::to_string).collect();
    pids.sort_unstable();
    let pids = pids.join(", ");
    // A row takes effect at or after its entry time, so none entered after `at` is needed.
    let predicate = format!(
        "({kind} = {lost} OR {pid} IN ({pids}) OR ({kind} = {fork} AND {child} IN ({pids}))) \
         AND {ts} <= {at}",
        kind = col::KIND,
        lost = literal(RowKind::Lost.as_str()),
        pid = col::PID,
        fork = literal(RowKind::Fork.as_str()),
        child = col::CHILD_PID,
        ts = col::TS,
        at = timestamp(at),
    );
    let mut batches = Vec::new();
    let mut order = Vec::new();
    let mut loss_windows = LossWindows::default();
    for reader in readers {
        let read = input::file_batches(engine, reader, Some(&predicate), replay::UNUSED_COLUMNS)?;
        for batch in read {
            let batch = batch?;
            let index = u32::try_from(batches.len()).context("too many batches")?;
            let mut kept = Vec::new();
            let mut times = Vec::new();
            let rows = BatchRows::new(&batch)?;
            for row in 0..rows.len() {
                let event = rows.row(row)?;
                let Some(time) = replay::effect_time(&event).filter(|time| *time <= at) else {
                    continue;
                };
                if event.kind == RowKind::Lost {
                    loss_windows.push(LossWindow::from_event(&event));
                } else if changes_map_of(&event, lineage) {
                    kept.push(u32::try_from(row).context("a batch of too many rows")?);
                    times.push(time);
                }
            }
            if kept.len() * 2 >= batch.num_rows() && batch.num_rows() >= FULL_BATCH {
                // Kept as it is: its buffers hold at most four times the rows it keeps.
                order.extend(times.into_iter().zip(kept).map(|(t, row)| (t, index, row)));
                batches.push(batch);
            } else if !kept.is_empty() {
                // The kept rows copied out: a batch of a hundred rows filtered out of the scan
                // can hold its columns' buffers of thousands (on the 10 M-row capture in
                // segments, 80 MiB more at the peak).
                batches.push(take_record_batch(&batch, &UInt32Array::from(kept))?);
                order.extend((0..).zip(times).map(|(row, t)| (t, index, row)));
            }
        }
    }
    // The (batch, row) numbers make every key distinct, so an unstable sort keeps the reading
    // order.
    order.sort_unstable();
    Ok((TimedRows { batches, order }, loss_windows.finish()))
}

/// Rows of a batch read from the scan (of at most DataFusion's 8,192) from which it is kept
/// without a copy, when at least half of them are.
const FULL_BATCH: usize = 4096;

/// Whether a row can change the map of a process in `lineage`.
fn changes_map_of(event: &Event<'_>, lineage: &HashSet<u32>) -> bool {
    match event.kind {
        RowKind::Lost | RowKind::Frame | RowKind::Other => false,
        RowKind::Syscall => {
            lineage.contains(&event.pid) && event.ret.is_some() && !labels::failed(event)
        }
        // Forks of other children would only copy maps nobody asked for.
        RowKind::Fork => event.child_pid.is_some_and(|c| lineage.contains(&c)),
        RowKind::Snapshot | RowKind::Exec | RowKind::Exit => lineage.contains(&event.pid),
    }
}

/// The replay of `rows`, and the thread name of the pid's last row.
fn replay_rows(rows: &TimedRows, query: &Query) -> anyhow::Result<(Replay, Option<String>)> {
    let batches = rows
        .batches
        .iter()
        .map(BatchRows::new)
        .collect::<Result<Vec<_>, _>>()?;
    let mut replay = Replay::new(query.page_size);
    let mut comm = None;
    for &(_, batch, row) in &rows.order {
        let event = batches[batch as usize].row(row as usize)?;
        replay.apply(&event);
        let names_pid = event.pid == query.pid
            || (event.kind == RowKind::Fork && event.child_pid == Some(query.pid));
        if names_pid {
            comm = Some(event.comm);
        }
    }
    Ok((replay, comm.map(|comm| comm.into_owned())))
}

/// What the recorder counted and the rows cannot place in time, summed over the inputs.
#[derive(Clone, Copy, Debug, Default)]
pub struct Untimed {
    /// Records lost because the ring buffer was full, when the capture has no `lost` rows to
    /// say when (else 0: the loss windows say it).
    pub ringbuf_full: u64,
    pub entry_map_full: u64,
    pub decode_errors: u64,
    pub follow_map_full: u64,
}

impl Untimed {
    fn sum(readers: &[CaptureReader], scan: &Scan) -> Self {
        let mut sum = Self::default();
        for reader in readers {
            let c = reader.metadata().counters;
            if !scan.has_lost_rows {
                sum.ringbuf_full = sum.ringbuf_full.saturating_add(c.lost_ringbuf_full);
            }
            sum.entry_map_full = sum.entry_map_full.saturating_add(c.entry_map_full);
            sum.decode_errors = sum.decode_errors.saturating_add(c.decode_errors);
            sum.follow_map_full = sum.follow_map_full.saturating_add(c.follow_map_full);
        }
        sum
    }

    /// Lost records without a time.
    fn records(&self) -> u64 {
        self.ringbuf_full
            .saturating_add(self.entry_map_full)
            .saturating_add(self.decode_errors)
    }
}
