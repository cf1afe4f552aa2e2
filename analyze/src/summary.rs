//! `mmap-analyze summary`: what one or more captures hold, in one screen.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    io::{self, Write},
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
    table::{self, Column, Table},
};

/// Summarize captures: hosts, time span, completeness, counts by row kind, system call, process
/// and error, bytes mapped, records lost.
///
/// Several INPUT files (for example the segments of one recording) are merged into one summary;
/// each file is listed too. "Events" counts every row in the files; "By kind" splits them by row
/// kind (the kinds `events --kind` takes; format 1.0 captures hold syscall rows only). "By system
/// call", "By process", "Failed" and "Bytes mapped" count system call rows only.
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
    let readers = input::open(&args.inputs)?;
    let summary = Summary::collect(&readers, args.top)?;
    let mut out = output::stdout();
    match args.format {
        SummaryFormat::Json => {
            output::write_json_pretty(&mut out, &summary)?;
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
    /// Rows by kind (the names of `RowKind`).
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
        match process.comms.get_mut(event.comm.as_ref()) {
            Some(count) => *count += 1,
            None => {
                process.comms.insert(event.comm.to_string(), 1);
            }
        }
    }

    /// The `top` processes with the most rows (ties: the smallest pid); all of them for 0.
    fn top_processes(&self, top: usize) -> Vec<ProcessSummary> {
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
        if top > 0 {
            by_process.truncate(top);
        }
        by_process
    }
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
    /// Reads every row of every file once.
    fn collect(readers: &[CaptureReader], top: usize) -> anyhow::Result<Self> {
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
        Ok(Self::new(totals, files, top))
    }

    fn new(totals: Totals, files: FileTotals, top: usize) -> Self {
        let by_process = totals.top_processes(top);
        let mut loss_windows = totals.loss_windows;
        loss::sort(&mut loss_windows);
        Self {
            complete: loss_windows.is_empty() && files.lost == 0,
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
            processes: totals.processes.len(),
            top,
            by_process,
            errors: totals.errors,
        }
    }

    /// The table output: an overview, then one section after another.
    fn write_table(&self, out: &mut impl Write) -> io::Result<()> {
        table::write_fields(out, &self.overview())?;
        self.write_files(out)?;
        self.write_completeness(out)?;

        section(out, "By kind")?;
        write_counts(out, ["KIND", "ROWS"], &self.by_kind)?;

        section(out, "By system call")?;
        write_counts(out, ["SYSCALL", "EVENTS"], &self.by_syscall)?;

        self.write_processes(out)?;

        section(
            out,
            &format!("Failures by errno ({})", labels::thousands(self.failed)),
        )?;
        if self.errors.is_empty() {
            writeln!(out, "  none")
        } else {
            write_counts(out, ["ERRNO", "COUNT"], &self.errors)
        }
    }

    /// The lines before the first section: `Label  value`.
    fn overview(&self) -> [(&'static str, String); 10] {
        let c = &self.counters;
        let thousands = labels::thousands;
        [
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
            ("Events", thousands(self.events)),
            ("Failed", thousands(self.failed)),
            (
                "Bytes mapped",
                format!(
                    "{} ({})",
                    thousands(self.bytes_mapped),
                    labels::human_bytes(self.bytes_mapped)
                ),
            ),
            (
                "Lost records",
                format!(
                    "{} (ring buffer full {}, entry map full {}, decode errors {})",
                    thousands(self.lost),
                    thousands(c.lost_ringbuf_full),
                    thousands(c.entry_map_full),
                    thousands(c.decode_errors)
                ),
            ),
            ("Orphan exits", thousands(self.orphan_exits)),
            ("Emitted", thousands(c.emitted)),
        ]
    }

    fn write_files(&self, out: &mut impl Write) -> io::Result<()> {
        section(out, &format!("Files ({})", self.files.len()))?;
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
        files.write(out, "  ")
    }

    fn write_completeness(&self, out: &mut impl Write) -> io::Result<()> {
        section(out, "Completeness")?;
        if self.complete {
            writeln!(out, "  complete: no records lost")
        } else if self.loss_windows.is_empty() {
            writeln!(
                out,
                "  {} record{} lost (counted by the recorder; the capture does not say when)",
                labels::thousands(self.lost),
                labels::plural(self.lost),
            )
        } else {
            writeln!(
                out,
                "  {} lost in {} (changes in them are missing):",
                loss::records_in_words(&self.loss_windows),
                loss::windows_in_words(&self.loss_windows),
            )?;
            loss::write_loss_windows(out, &self.loss_windows)
        }
    }

    fn write_processes(&self, out: &mut impl Write) -> io::Result<()> {
        let title = if self.by_process.len() < self.processes {
            format!(
                "By process (top {} of {})",
                self.by_process.len(),
                self.processes
            )
        } else {
            format!("By process ({})", self.processes)
        };
        section(out, &title)?;
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
        table.write(out, "  ")
    }
}

/// A blank line and a section title.
fn section(out: &mut impl Write, title: &str) -> io::Result<()> {
    writeln!(out)?;
    writeln!(out, "{title}")
}

/// A table of counts by name, largest first (ties: by name), indented.
fn write_counts(
    out: &mut impl Write,
    [name, count]: [&'static str; 2],
    counts: &BTreeMap<String, u64>,
) -> io::Result<()> {
    let mut rows: Vec<(&String, &u64)> = counts.iter().collect();
    rows.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut table = Table::new(&[Column::left(name), Column::right(count)]);
    for (name, n) in rows {
        table.push(vec![name.clone(), labels::thousands(*n)]);
    }
    table.write(out, "  ")
}

/// `FROM .. TO`, or `-` when either is unknown.
fn span(from: &Option<String>, to: &Option<String>) -> String {
    match (from, to) {
        (Some(from), Some(to)) => format!("{from} .. {to}"),
        _ => "-".to_owned(),
    }
}

fn join_or_dash(items: &[String]) -> String {
    if items.is_empty() {
        "-".to_owned()
    } else {
        items.join(", ")
    }
}
