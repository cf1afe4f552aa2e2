//! `mmap-analyze summary`: what one or more captures hold, in one screen.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::Write,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::ValueEnum;
use mmap_format::{
    event::{Event, RowKind},
    metadata::{Counters, Targets},
    reader::CaptureReader,
};
use serde::Serialize;

use crate::{
    cli::Inputs,
    input, labels,
    loss::{self, LossWindow},
    output,
    table::{Column, Table},
};

/// Summarize captures: hosts, time span, completeness, counts by row kind, system call, process
/// and error, bytes mapped, records lost.
///
/// Several INPUT files (for example the segments of one recording) are merged into one summary;
/// each file is listed too. "Events" counts every row in the files; "By kind" splits them into
/// syscall, snapshot, fork, exec, exit and lost rows (format 1.1). "By system call", "By process",
/// "Failed" and "Bytes mapped" count system call rows only.
///
/// "Lost" adds up what the recorder counted as dropped (ring buffer full, entry map full, decode
/// errors): calls that happened but are not in the files. "Orphan exits" are syscall exits whose
/// entry was not seen (typically calls already in progress when recording started); they are not
/// lost calls and are shown apart. "Completeness" lists the loss windows (format 1.1 `lost`
/// rows: on which CPU, from when to when, how many records), or says "complete: no records lost".
///
/// "Bytes mapped" is the sum of the length argument of successful mmap calls (what was asked
/// for, before rounding up to pages; unmapping is not subtracted).
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    format: SummaryFormat,

    /// How many processes to list, most active first (0 lists all).
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,
}

const EXAMPLES: &str = "\
Examples:
  # One capture
  mmap-analyze summary capture-000.parquet

  # All segments of a recording, the 3 busiest processes
  mmap-analyze summary capture-*.parquet --top 3

  # For scripts: total failures by errno
  mmap-analyze summary capture-000.parquet --format json | jq .errors

  # Was anything lost, and when?
  mmap-analyze summary capture-000.parquet --format json | jq .loss_windows";

/// How the summary is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SummaryFormat {
    /// Aligned plain text for reading.
    Table,
    /// One JSON object; times are RFC 3339 with nanoseconds, UTC.
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open_all(&args.inputs.paths)?;
    let summary = Summary::collect(&readers, args.top)?;
    let mut out = output::stdout();
    match args.format {
        SummaryFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &summary).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        SummaryFormat::Table => summary.write_table(&mut out)?,
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// The summary as printed in JSON; the table shows the same.
#[derive(Debug, Serialize)]
struct Summary {
    files: Vec<FileSummary>,
    hosts: Vec<String>,
    kernels: Vec<String>,
    /// Earliest capture start and latest capture end over the files' metadata.
    capture_start: Option<String>,
    capture_end: Option<String>,
    /// Times of the earliest and latest row.
    first_ts: Option<String>,
    last_ts: Option<String>,
    events: u64,
    failed: u64,
    bytes_mapped: u64,
    /// Counters summed over the files.
    counters: Counters,
    lost: u64,
    orphan_exits: u64,
    /// No loss window and no lost record counted.
    complete: bool,
    /// `lost` rows, by start time.
    loss_windows: Vec<LossWindow>,
    /// Rows by kind (syscall, snapshot, fork, exec, exit, lost).
    by_kind: BTreeMap<String, u64>,
    /// System call rows by system call.
    by_syscall: BTreeMap<String, u64>,
    processes: usize,
    top: usize,
    by_process: Vec<ProcessSummary>,
    errors: BTreeMap<String, u64>,
}

#[derive(Debug, Serialize)]
struct FileSummary {
    path: String,
    format_version: String,
    recorder_version: String,
    hostname: String,
    kernel_release: String,
    boot_id: String,
    attach_mode: String,
    targets: Targets,
    capture_start: String,
    capture_end: String,
    rows: u64,
    counters: Counters,
    lost: u64,
    /// Completed by `mmap-analyze recover` (or the recorder's own recovery).
    recovered: bool,
    capture_id: Option<String>,
    segment_index: Option<u32>,
    page_size: Option<u32>,
}

#[derive(Debug, Serialize)]
struct ProcessSummary {
    pid: u32,
    comm: String,
    events: u64,
    bytes_mapped: u64,
}

/// Running totals of one process.
#[derive(Debug, Default)]
struct ProcessTotals {
    events: u64,
    bytes_mapped: u64,
    comms: HashMap<String, u64>,
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
    loss_windows: Vec<LossWindow>,
}

impl Totals {
    fn add(&mut self, event: &Event<'_>) {
        self.events += 1;
        self.first_ts = Some(self.first_ts.map_or(event.ts_ns, |t| t.min(event.ts_ns)));
        self.last_ts = Some(self.last_ts.map_or(event.ts_ns, |t| t.max(event.ts_ns)));
        *self
            .by_kind
            .entry(event.kind.as_str().to_owned())
            .or_default() += 1;
        if event.kind == RowKind::Lost {
            self.loss_windows.push(LossWindow::from_event(event));
        }
        if event.kind != RowKind::Syscall {
            return;
        }
        *self
            .by_syscall
            .entry(labels::syscall_label(event).to_owned())
            .or_default() += 1;
        if let Some(errno) = event.errno() {
            self.failed += 1;
            *self.errors.entry(labels::errno_label(errno)).or_default() += 1;
        }
        let mapped = labels::bytes_mapped(event);
        self.bytes_mapped = self.bytes_mapped.saturating_add(mapped);

        let process = self.processes.entry(event.pid).or_default();
        process.events += 1;
        process.bytes_mapped = process.bytes_mapped.saturating_add(mapped);
        match process.comms.get_mut(event.comm.as_ref()) {
            Some(count) => *count += 1,
            None => {
                process.comms.insert(event.comm.to_string(), 1);
            }
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
    fn collect(readers: &[CaptureReader], top: usize) -> anyhow::Result<Self> {
        let mut totals = Totals::default();
        let mut files = Vec::with_capacity(readers.len());
        let mut counters = Counters::default();
        let mut lost = 0_u64;
        let mut hosts = BTreeSet::new();
        let mut kernels = BTreeSet::new();
        let mut capture_start: Option<i64> = None;
        let mut capture_end: Option<i64> = None;

        for reader in readers {
            let mut rows = 0_u64;
            for event in reader.events()? {
                totals.add(&event?);
                rows += 1;
            }
            let meta = reader.metadata();
            add_counters(&mut counters, &meta.counters);
            lost = lost.saturating_add(meta.counters.lost());
            hosts.insert(meta.hostname.clone());
            kernels.insert(meta.kernel_release.clone());
            capture_start =
                Some(capture_start.map_or(meta.capture_start_ns, |t| t.min(meta.capture_start_ns)));
            capture_end =
                Some(capture_end.map_or(meta.capture_end_ns, |t| t.max(meta.capture_end_ns)));
            files.push(FileSummary {
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
            });
        }

        let processes = totals.processes.len();
        let mut by_process: Vec<ProcessSummary> = totals
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
        if top > 0 {
            by_process.truncate(top);
        }

        let mut loss_windows = totals.loss_windows;
        loss::sort(&mut loss_windows);
        Ok(Self {
            complete: loss_windows.is_empty() && lost == 0,
            loss_windows,
            by_kind: totals.by_kind,
            files,
            hosts: hosts.into_iter().collect(),
            kernels: kernels.into_iter().collect(),
            capture_start: capture_start.map(labels::rfc3339_ns),
            capture_end: capture_end.map(labels::rfc3339_ns),
            first_ts: totals.first_ts.map(labels::rfc3339_ns),
            last_ts: totals.last_ts.map(labels::rfc3339_ns),
            events: totals.events,
            failed: totals.failed,
            bytes_mapped: totals.bytes_mapped,
            counters,
            lost,
            orphan_exits: counters.orphan_exits,
            by_syscall: totals.by_syscall,
            processes,
            top,
            by_process,
            errors: totals.errors,
        })
    }

    fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let dash = || "-".to_owned();
        let span = |from: &Option<String>, to: &Option<String>| match (from, to) {
            (Some(from), Some(to)) => format!("{from} .. {to}"),
            _ => dash(),
        };
        let c = &self.counters;
        let overview: [(&str, String); 10] = [
            (
                if self.hosts.len() > 1 {
                    "Hosts"
                } else {
                    "Host"
                },
                join_or_dash(&self.hosts),
            ),
            (
                if self.kernels.len() > 1 {
                    "Kernels"
                } else {
                    "Kernel"
                },
                join_or_dash(&self.kernels),
            ),
            ("Capture", span(&self.capture_start, &self.capture_end)),
            ("Row times", span(&self.first_ts, &self.last_ts)),
            ("Events", labels::thousands(self.events)),
            ("Failed", labels::thousands(self.failed)),
            (
                "Bytes mapped",
                format!(
                    "{} ({})",
                    labels::thousands(self.bytes_mapped),
                    labels::human_bytes(self.bytes_mapped)
                ),
            ),
            (
                "Lost records",
                format!(
                    "{} (ring buffer full {}, entry map full {}, decode errors {})",
                    labels::thousands(self.lost),
                    labels::thousands(c.lost_ringbuf_full),
                    labels::thousands(c.entry_map_full),
                    labels::thousands(c.decode_errors)
                ),
            ),
            ("Orphan exits", labels::thousands(self.orphan_exits)),
            ("Emitted", labels::thousands(c.emitted)),
        ];
        let label_width = overview.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (label, value) in &overview {
            writeln!(out, "{label:<label_width$}  {value}")?;
        }

        writeln!(out)?;
        writeln!(out, "Files ({})", self.files.len())?;
        let mut files = Table::new(&[
            Column::left("PATH"),
            Column::left("HOST"),
            Column::left("FORMAT"),
            Column::left("RECORDER"),
            Column::left("START"),
            Column::left("END"),
            Column::right("ROWS"),
            Column::right("LOST"),
        ]);
        for f in &self.files {
            files.push(vec![
                f.path.clone(),
                f.hostname.clone(),
                if f.recovered {
                    format!("{} (recovered)", f.format_version)
                } else {
                    f.format_version.clone()
                },
                f.recorder_version.clone(),
                f.capture_start.clone(),
                f.capture_end.clone(),
                labels::thousands(f.rows),
                labels::thousands(f.lost),
            ]);
        }
        files.write(out, "  ")?;

        writeln!(out)?;
        writeln!(out, "Completeness")?;
        if self.complete {
            writeln!(out, "  complete: no records lost")?;
        } else if self.loss_windows.is_empty() {
            writeln!(
                out,
                "  {} record{} lost (counted by the recorder; the capture does not say when)",
                labels::thousands(self.lost),
                if self.lost == 1 { "" } else { "s" }
            )?;
        } else {
            let lost = loss::total(&self.loss_windows);
            writeln!(
                out,
                "  {} record{} lost in {} loss window{} (changes in them are missing):",
                labels::thousands(lost),
                if lost == 1 { "" } else { "s" },
                self.loss_windows.len(),
                if self.loss_windows.len() == 1 {
                    ""
                } else {
                    "s"
                },
            )?;
            loss::write_loss_windows(out, &self.loss_windows)?;
        }

        writeln!(out)?;
        writeln!(out, "By kind")?;
        let mut kinds: Vec<(&String, &u64)> = self.by_kind.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut table = Table::new(&[Column::left("KIND"), Column::right("ROWS")]);
        for (name, count) in kinds {
            table.push(vec![name.clone(), labels::thousands(*count)]);
        }
        table.write(out, "  ")?;

        writeln!(out)?;
        writeln!(out, "By system call")?;
        let mut syscalls: Vec<(&String, &u64)> = self.by_syscall.iter().collect();
        syscalls.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
        let mut table = Table::new(&[Column::left("SYSCALL"), Column::right("EVENTS")]);
        for (name, count) in syscalls {
            table.push(vec![name.clone(), labels::thousands(*count)]);
        }
        table.write(out, "  ")?;

        writeln!(out)?;
        if self.by_process.len() < self.processes {
            writeln!(
                out,
                "By process (top {} of {})",
                self.by_process.len(),
                self.processes
            )?;
        } else {
            writeln!(out, "By process ({})", self.processes)?;
        }
        let mut table = Table::new(&[
            Column::right("PID"),
            Column::left("COMM"),
            Column::right("EVENTS"),
            Column::right("BYTES MAPPED"),
        ]);
        for p in &self.by_process {
            table.push(vec![
                p.pid.to_string(),
                p.comm.clone(),
                labels::thousands(p.events),
                labels::thousands(p.bytes_mapped),
            ]);
        }
        table.write(out, "  ")?;

        writeln!(out)?;
        writeln!(
            out,
            "Failures by errno ({})",
            labels::thousands(self.failed)
        )?;
        if self.errors.is_empty() {
            writeln!(out, "  none")?;
        } else {
            let mut errors: Vec<(&String, &u64)> = self.errors.iter().collect();
            errors.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
            let mut table = Table::new(&[Column::left("ERRNO"), Column::right("COUNT")]);
            for (name, count) in errors {
                table.push(vec![name.clone(), labels::thousands(*count)]);
            }
            table.write(out, "  ")?;
        }
        Ok(())
    }
}

fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}
