//! Reading every row once into the [`Summary`]: totals over the rows ([`Totals`]) and over the
//! files' metadata ([`FileTotals`]).

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

use mmap_format::{
    event::{Event, RowKind},
    metadata::Counters,
    reader::CaptureReader,
};

use super::{CommSummary, FileSummary, ProcessSummary, Summary};
use crate::{
    labels,
    loss::{self, LossWindow},
    segments,
};

pub fn collect(readers: &[CaptureReader], top: usize) -> anyhow::Result<Summary> {
    let mut totals = Totals::default();
    let mut files = FileTotals::default();
    for reader in readers {
        let mut rows = 0_u64;
        for event in reader.events()? {
            totals.add(&event?);
            rows += 1;
        }
        files.add(reader, rows);
    }
    let mut summary = Summary::new(totals, files, top);
    summary.missing_segments = segments::missing(readers);
    summary.complete &= summary.missing_segments.is_empty();
    Ok(summary)
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
    loss_windows: Vec<LossWindow>,
}

impl Totals {
    fn add(&mut self, event: &Event<'_>) {
        self.events += 1;
        self.first_ts = Some(self.first_ts.unwrap_or(event.ts_ns).min(event.ts_ns));
        self.last_ts = Some(self.last_ts.unwrap_or(event.ts_ns).max(event.ts_ns));
        count(&mut self.by_kind, event.kind.as_str());
        if event.kind == RowKind::Lost {
            self.loss_windows.push(LossWindow::from_event(event));
        }
        if event.kind != RowKind::Syscall {
            return;
        }
        count(&mut self.by_syscall, labels::syscall_label(event));
        if let Some(errno) = event.errno() {
            self.failed += 1;
            count(&mut self.errors, &labels::errno_label(errno));
        }
        let mapped = labels::bytes_mapped(event);
        self.bytes_mapped = self.bytes_mapped.saturating_add(mapped);

        let process = self.processes.entry(event.pid).or_default();
        process.events += 1;
        process.bytes_mapped = process.bytes_mapped.saturating_add(mapped);
        count(&mut process.comms, &event.comm);

        let comm = match self.comms.get_mut(event.comm.as_ref()) {
            Some(comm) => comm,
            None => self.comms.entry(event.comm.to_string()).or_default(),
        };
        comm.pids.insert(event.pid);
        comm.events += 1;
        comm.bytes_mapped = comm.bytes_mapped.saturating_add(mapped);
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

/// Adds one to the count of `key`.
fn count(counts: &mut BTreeMap<String, u64>, key: &str) {
    match counts.get_mut(key) {
        Some(n) => *n += 1,
        None => {
            counts.insert(key.to_owned(), 1);
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
}

impl Summary {
    fn new(totals: Totals, files: FileTotals, top: usize) -> Self {
        let processes = totals.processes_by_calls();
        let by_process_bytes = by_bytes(&processes);
        let comms = totals.comms_by_calls();
        let mut loss_windows = totals.loss_windows;
        loss::sort(&mut loss_windows);
        Self {
            complete: loss_windows.is_empty() && files.lost == 0,
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
