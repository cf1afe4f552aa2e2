//! `mmap-analyze maps`: the address space of one process at one time, rebuilt from a capture.

use std::{
    collections::{HashMap, HashSet},
    io::Write,
    process::ExitCode,
};

use anyhow::{Context as _, bail};
use chrono::DateTime;
use clap::ValueEnum;
use mmap_format::{
    event::{Event, RowKind},
    names,
    reader::CaptureReader,
};
use serde::Serialize;

use crate::{
    cli::Inputs,
    input, labels,
    loss::{self, LossWindow, write_loss_windows},
    output,
    replay::{self, Baseline, Region, Replay},
    table::{Column, Table},
};

/// Rebuild the address space of process PID at time TIME: what was mapped where, since when,
/// set by which row, and from which file.
///
/// The rows of the INPUT files (for example the segments of one recording) are replayed in time
/// order, and the result is printed like /proc/PID/maps (start-end, perms, offset, major:minor,
/// inode, path) with, for each region, when it got its current state, the kind of row that set it
/// and the thread of that row. The output says when the result cannot be complete: no snapshot of
/// the process before TIME (mappings made before the capture started are not known), records
/// lost before TIME (the loss windows are listed: changes in them may be missing), or a process
/// that had already exited at TIME.
///
/// Replay rules:
///
///  - Rows apply in time order: a system call at its exit time (ts_exit, when its effect is
///    complete), every other row at its ts. Only rows at or before TIME count. Only rows of PID
///    and of the processes it was forked from are replayed.
///
///  - snapshot: the rows of one snapshot (one pid, one ts; the lines of /proc/PID/maps the
///    recorder read at capture start or after an exec) replace the process's whole map.
///
///  - fork: the child's map is a copy of the parent's at that time (its regions are shown as set
///    by the fork). exec: the map is emptied (the snapshot that follows an exec refills it).
///    exit: the map is dropped; asking for a later time reports the exit.
///
///  - Only successful system calls count (ret present and not -errno). mmap maps [ret, ret + len
///    rounded up to pages), replacing whatever overlapped it (as MAP_FIXED does), with its prot,
///    shared or private (flags & 3), and its file (device, inode, path or name) and offset;
///    MAP_ANONYMOUS (0x20) makes it anonymous. munmap removes [addr, addr + len). mprotect sets
///    prot on the mapped parts of [addr, addr + len), splitting regions.
///
///  - mremap(old, old_len, new_len, flags, new_addr) returning ret: when ret is old, in place (a
///    shrink drops the tail; a growth extends the last region of the old range with its
///    attributes); otherwise the old range moves to [ret, ret + new_len) with its attributes and
///    file offsets (growing the last piece when new_len is larger) and is unmapped, unless
///    MREMAP_DONTUNMAP (4) is set: then the old range stays mapped with the same attributes and
///    no pages (anonymous memory reads as zeros).
///
///  - brk: the heap starts at a snapshot's [heap] region, or at the first brk's result when
///    there is no heap yet. A successful brk (the result equals the requested break, or the
///    request is 0, a query) sets the heap to [start, result rounded up to a page); requests
///    below the start are ignored.
///
///  - Page size: the capture's page_size, else 4096.
///
///  - Output merges neighbouring regions as the kernel merges VMAs when they are compatible: same
///    prot, same sharing, and both anonymous with the same pseudo path (or none) or the same file
///    at contiguous offsets; a merged region shows its latest change. --no-merge shows the raw
///    pieces.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The process (kernel tgid) whose address space is rebuilt.
    #[arg(long, value_name = "PID")]
    pid: u32,

    /// The time to rebuild it at: RFC 3339 (2026-11-27T06:39:28.2383Z) or an offset from the
    /// capture's first row (+1.5s, +250ms, +2m). Default: the end of the capture.
    #[arg(long, value_name = "TIME", value_parser = parse_at)]
    at: Option<At>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = MapsFormat::Table)]
    format: MapsFormat,

    /// Show the regions as the rows left them, without merging compatible neighbours.
    #[arg(long)]
    no_merge: bool,
}

const EXAMPLES: &str = "\
Examples:
  # The address space of pid 1234 when the recording ended
  mmap-analyze maps capture-000.parquet --pid 1234

  # 1.5 s after the first row, region by region as the calls left it
  mmap-analyze maps capture-*.parquet --pid 1234 --at +1.5s --no-merge

  # At a wall-clock time, as JSON: the file-backed regions
  mmap-analyze maps capture-000.parquet --pid 1234 --at 2026-11-27T06:39:28.2383Z \\
    --format json | jq '.regions[] | select(.ino != 0)'";

/// How the map is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MapsFormat {
    /// A header, then one line per region like /proc/PID/maps with SINCE, SET BY and TID.
    Table,
    /// One JSON object; times are RFC 3339 with nanoseconds, UTC.
    Json,
}

/// A point in time given on the command line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum At {
    /// ns since the Unix epoch.
    Wall(i64),
    /// ns after the capture's first row.
    AfterFirstRow(i64),
}

pub fn parse_at(value: &str) -> Result<At, String> {
    let expected = "expected an RFC 3339 time (2026-11-27T06:39:28.2383Z) or +DURATION (+1.5s)";
    if let Some(offset) = value.strip_prefix('+') {
        let duration = humantime::parse_duration(offset.trim())
            .map_err(|e| format!("{value:?}: {e}; {expected}"))?;
        let ns = i64::try_from(duration.as_nanos())
            .map_err(|_| format!("{value:?}: too long; {expected}"))?;
        return Ok(At::AfterFirstRow(ns));
    }
    let time =
        DateTime::parse_from_rfc3339(value).map_err(|e| format!("{value:?}: {e}; {expected}"))?;
    time.timestamp_nanos_opt()
        .map(At::Wall)
        .ok_or_else(|| format!("{value:?}: out of range; {expected}"))
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open_all(&args.inputs.paths)?;
    let scan = Scan::read(&readers, args.pid)?;
    if scan.first_seen.is_none() {
        let inputs = match readers.as_slice() {
            [one] => one.path().display().to_string(),
            many => format!("the {} captures", many.len()),
        };
        bail!(
            "pid {} does not appear in {inputs} (no row has it as process id or as a forked child)",
            args.pid
        );
    }
    let first_row = scan.first_ts.unwrap_or_default();
    let at = match args.at {
        None => scan.end,
        Some(At::Wall(ns)) => ns,
        Some(At::AfterFirstRow(offset)) => first_row.saturating_add(offset),
    };
    let page_size = readers
        .iter()
        .find_map(|r| r.metadata().page_size)
        .map_or(replay::DEFAULT_PAGE_SIZE, u64::from);
    let report = Report::build(&readers, &scan, args.pid, at, page_size, !args.no_merge)?;

    let mut out = output::stdout();
    match args.format {
        MapsFormat::Json => {
            serde_json::to_writer_pretty(&mut out, &report).map_err(std::io::Error::from)?;
            out.write_all(b"\n")?;
        }
        MapsFormat::Table => report.write_table(&mut out)?,
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// What a first pass over the rows tells: where the capture starts and ends, whether the pid is
/// there, and which processes it descends from.
#[derive(Debug, Default)]
struct Scan {
    first_ts: Option<i64>,
    /// The end of the capture: the later of the last row and the files' capture_end.
    end: i64,
    /// When the pid first appears (as pid, or as a forked child).
    first_seen: Option<i64>,
    /// Parents of each forked child.
    parents: HashMap<u32, Vec<u32>>,
    /// Whether the capture has `lost` rows at all.
    has_lost_rows: bool,
}

impl Scan {
    fn read(readers: &[CaptureReader], pid: u32) -> anyhow::Result<Self> {
        let mut scan = Self {
            end: i64::MIN,
            ..Self::default()
        };
        for reader in readers {
            scan.end = scan.end.max(reader.metadata().capture_end_ns);
            for event in reader.events()? {
                let event = event?;
                let time = replay::effect_time(&event).unwrap_or(event.ts_ns);
                scan.first_ts = Some(scan.first_ts.map_or(event.ts_ns, |t| t.min(event.ts_ns)));
                scan.end = scan.end.max(time);
                match event.kind {
                    RowKind::Lost => {
                        scan.has_lost_rows = true;
                        continue;
                    }
                    RowKind::Fork => {
                        if let Some(child) = event.child_pid {
                            scan.parents.entry(child).or_default().push(event.pid);
                            if child == pid {
                                scan.seen(time);
                            }
                        }
                    }
                    _ => {}
                }
                if event.pid == pid {
                    scan.seen(time);
                }
            }
        }
        Ok(scan)
    }

    fn seen(&mut self, time: i64) {
        self.first_seen = Some(self.first_seen.map_or(time, |t| t.min(time)));
    }

    /// `pid` and every process it may have been forked from, transitively.
    fn lineage(&self, pid: u32) -> HashSet<u32> {
        let mut pids = HashSet::from([pid]);
        let mut todo = vec![pid];
        while let Some(next) = todo.pop() {
            for parent in self.parents.get(&next).into_iter().flatten() {
                if pids.insert(*parent) {
                    todo.push(*parent);
                }
            }
        }
        pids
    }
}

/// What the map is known from, in JSON.
#[derive(Debug, Serialize)]
struct BaselineJson {
    /// `snapshot`, `exec` (emptied by an exec, no snapshot since) or `none`.
    kind: &'static str,
    time: Option<String>,
    /// The process the snapshot was taken of (the pid, or an ancestor it was forked from).
    snapshot_pid: Option<u32>,
    source: Option<String>,
}

#[derive(Debug, Serialize)]
struct ForkJson {
    parent: u32,
    time: String,
}

#[derive(Debug, Serialize)]
struct ExecJson {
    path: Option<String>,
    time: String,
}

#[derive(Debug, Serialize)]
struct RegionJson {
    start: u64,
    end: u64,
    start_hex: String,
    end_hex: String,
    size: u64,
    perms: String,
    prot: u64,
    shared: bool,
    off: u64,
    dev: u64,
    dev_major_minor: String,
    ino: u64,
    path: Option<String>,
    deleted: bool,
    memfd: bool,
    since: String,
    since_ns: i64,
    set_by: &'static str,
    tid: u32,
}

impl RegionJson {
    fn new(r: &Region) -> Self {
        let file = r.file();
        let dev = file.and_then(|f| f.dev).unwrap_or(0);
        Self {
            start: r.start,
            end: r.end,
            start_hex: labels::hex(r.start),
            end_hex: labels::hex(r.end),
            size: r.len(),
            perms: r.perms(),
            prot: r.prot,
            shared: r.shared,
            off: r.off,
            dev,
            dev_major_minor: labels::dev_label(dev),
            ino: file.and_then(|f| f.ino).unwrap_or(0),
            path: r.path().map(str::to_owned),
            deleted: file.is_some_and(|f| f.deleted),
            memfd: file.is_some_and(|f| f.memfd),
            since: labels::rfc3339_ns(r.since),
            since_ns: r.since,
            set_by: r.set_by.as_str(),
            tid: r.tid,
        }
    }
}

/// The answer, as printed in JSON; the table shows the same.
#[derive(Debug, Serialize)]
struct Report {
    pid: u32,
    /// The thread name of the pid's last row at or before the time.
    comm: Option<String>,
    at: String,
    at_ns: i64,
    /// The capture's first row (the origin of `--at +DURATION`).
    first_row: Option<String>,
    #[serde(skip)]
    first_row_ns: Option<i64>,
    /// `live`, `exited` (an exit row at or before the time), or `not_started` (the pid's first
    /// row comes later).
    state: &'static str,
    exited_at: Option<String>,
    exit_code: Option<i32>,
    exit_status: Option<String>,
    /// When the pid first appears, for `not_started`.
    first_seen: Option<String>,
    forked_from: Option<ForkJson>,
    exec: Option<ExecJson>,
    baseline: BaselineJson,
    /// The map shows everything: a snapshot is its baseline, nothing was lost before the time and
    /// every change found its memory in the map.
    complete: bool,
    /// Why the map may not be complete, in words.
    notes: Vec<String>,
    /// `lost` rows before the time (all CPUs: a loss anywhere may hide a change of this pid).
    loss_windows: Vec<LossWindow>,
    /// Records the recorder counted as lost without saying when (captures without `lost` rows).
    lost_without_time: u64,
    merged: bool,
    /// How many raw pieces the regions were merged from.
    pieces: usize,
    bytes: u64,
    regions: Vec<RegionJson>,
    #[serde(skip)]
    table_regions: Vec<Region>,
}

impl Report {
    fn build(
        readers: &[CaptureReader],
        scan: &Scan,
        pid: u32,
        at: i64,
        page_size: u64,
        merge: bool,
    ) -> anyhow::Result<Self> {
        let lineage = scan.lineage(pid);
        let mut rows: Vec<(i64, u64, Event<'static>)> = Vec::new();
        let mut loss_windows = Vec::new();
        let mut seq = 0_u64;
        for reader in readers {
            for event in reader.events()? {
                let event = event?;
                seq += 1;
                let Some(time) = replay::effect_time(&event) else {
                    continue;
                };
                if time > at {
                    continue;
                }
                let keep = match event.kind {
                    RowKind::Lost => {
                        loss_windows.push(LossWindow::from_event(&event));
                        false
                    }
                    RowKind::Other => false,
                    RowKind::Syscall => {
                        lineage.contains(&event.pid)
                            && event.ret.is_some()
                            && event.errno().is_none()
                    }
                    // Forks of other children would only copy maps nobody asked for.
                    RowKind::Fork => event.child_pid.is_some_and(|c| lineage.contains(&c)),
                    RowKind::Snapshot | RowKind::Exec | RowKind::Exit => {
                        lineage.contains(&event.pid)
                    }
                };
                if keep {
                    rows.push((time, seq, event));
                }
            }
        }
        rows.sort_by_key(|(time, seq, _)| (*time, *seq));
        loss::sort(&mut loss_windows);

        let mut replay = Replay::new(page_size);
        let mut comm = None;
        for (_, _, event) in &rows {
            replay.apply(event);
            if event.pid == pid || (event.kind == RowKind::Fork && event.child_pid == Some(pid)) {
                comm = Some(event.comm.to_string());
            }
        }

        let lost_without_time = if scan.has_lost_rows {
            0
        } else {
            readers
                .iter()
                .map(|r| r.metadata().counters.lost())
                .fold(0_u64, u64::saturating_add)
        };
        let mut report = Self {
            pid,
            comm,
            at: labels::rfc3339_ns(at),
            at_ns: at,
            first_row: scan.first_ts.map(labels::rfc3339_ns),
            first_row_ns: scan.first_ts,
            state: "live",
            exited_at: None,
            exit_code: None,
            exit_status: None,
            first_seen: None,
            forked_from: None,
            exec: None,
            baseline: BaselineJson {
                kind: "none",
                time: None,
                snapshot_pid: None,
                source: None,
            },
            complete: false,
            notes: Vec::new(),
            loss_windows,
            lost_without_time,
            merged: merge,
            pieces: 0,
            bytes: 0,
            regions: Vec::new(),
            table_regions: Vec::new(),
        };

        if let Some(process) = replay.process(pid) {
            report.describe_process(process, pid, at);
            let regions: Vec<Region> = if merge {
                process.map.merged()
            } else {
                process.map.regions().cloned().collect()
            };
            report.pieces = process.map.regions().count();
            report.bytes = regions.iter().map(Region::len).sum();
            report.regions = regions.iter().map(RegionJson::new).collect();
            report.table_regions = regions;
        } else if let Some(exit) = replay.exit(pid) {
            report.state = "exited";
            report.exited_at = Some(labels::rfc3339_ns(exit.ts));
            report.exit_code = exit.code;
            report.exit_status = exit.code.map(labels::exit_status_label);
            report.complete = true;
        } else {
            report.state = "not_started";
            report.first_seen = scan.first_seen.map(labels::rfc3339_ns);
            report.complete = true;
        }
        report.note_losses();
        if report.state == "live" {
            for reader in readers {
                let version = reader.metadata().format_version;
                if (version.major, version.minor) == (1, 0) {
                    report.complete = false;
                    report.notes.push(format!(
                        "{} is a format 1.0 capture: it has no snapshots and no process events, \
                         and the recorder that wrote it recorded mmap calls only (no munmap, \
                         mprotect, mremap or brk): regions may have changed or gone since",
                        reader.path().display()
                    ));
                }
            }
        }
        Ok(report)
    }

    fn describe_process(&mut self, process: &replay::Process, pid: u32, at: i64) {
        let at_label = labels::rfc3339_ns(at);
        self.forked_from = process.forked.map(|(parent, ts)| ForkJson {
            parent,
            time: labels::rfc3339_ns(ts),
        });
        self.exec = process.exec.as_ref().map(|(ts, path)| ExecJson {
            path: path.clone(),
            time: labels::rfc3339_ns(*ts),
        });
        match &process.baseline {
            Baseline::Snapshot {
                ts,
                pid: of,
                source,
            } => {
                self.baseline = BaselineJson {
                    kind: "snapshot",
                    time: Some(labels::rfc3339_ns(*ts)),
                    snapshot_pid: Some(*of),
                    source: source.clone(),
                };
                self.complete = true;
            }
            Baseline::Exec { ts } => {
                self.baseline = BaselineJson {
                    kind: "exec",
                    time: Some(labels::rfc3339_ns(*ts)),
                    snapshot_pid: None,
                    source: None,
                };
                self.notes.push(format!(
                    "no snapshot of pid {pid} after its exec at {}: the mappings the kernel made \
                     for the new program (program, interpreter, stack, vdso) are not known",
                    labels::rfc3339_ns(*ts)
                ));
            }
            Baseline::Unknown => {
                self.notes.push(format!(
                    "no snapshot of pid {pid} before {at_label}: mappings made before the capture \
                     started are not known"
                ));
            }
        }
        if let Some((ts, what)) = process.misses.first() {
            self.complete = false;
            let count = process.misses.len();
            self.notes.push(format!(
                "{count} successful call{} changed memory missing from the replayed map (the map \
                 is incomplete there); the first, at {}: {what}",
                if count == 1 { "" } else { "s" },
                labels::rfc3339_ns(*ts)
            ));
        }
    }

    fn note_losses(&mut self) {
        if self.state != "live" {
            return;
        }
        if !self.loss_windows.is_empty() {
            self.complete = false;
            let lost = loss::total(&self.loss_windows);
            self.notes.push(format!(
                "the capture lost {} record{} in {} loss window{} before {}: changes in them may \
                 be missing",
                labels::thousands(lost),
                if lost == 1 { "" } else { "s" },
                self.loss_windows.len(),
                if self.loss_windows.len() == 1 {
                    ""
                } else {
                    "s"
                },
                self.at
            ));
        }
        if self.lost_without_time > 0 {
            self.complete = false;
            self.notes.push(format!(
                "the recorder counted {} lost record{} (the capture does not say when): changes \
                 may be missing",
                labels::thousands(self.lost_without_time),
                if self.lost_without_time == 1 { "" } else { "s" },
            ));
        }
    }

    fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let mut lines: Vec<(&str, String)> = Vec::new();
        let mut process = format!("{}", self.pid);
        if let Some(comm) = &self.comm {
            process.push_str(&format!(" ({comm})"));
        }
        if let Some(fork) = &self.forked_from {
            process.push_str(&format!(", forked from {} at {}", fork.parent, fork.time));
        }
        lines.push(("Process", process));
        if let Some(exec) = &self.exec {
            lines.push((
                "Program",
                format!(
                    "{} (exec at {})",
                    exec.path.as_deref().unwrap_or("?"),
                    exec.time
                ),
            ));
        }
        let mut at = self.at.clone();
        if let (Some(first), Some(first_ns)) = (&self.first_row, self.first_row_ns) {
            if self.at_ns >= first_ns {
                let after = std::time::Duration::from_nanos(
                    u64::try_from(self.at_ns - first_ns).unwrap_or(0),
                );
                at.push_str(&format!(
                    " (+{} after the first row)",
                    humantime::format_duration(after)
                ));
            } else {
                at.push_str(&format!(" (before the first row, {first})"));
            }
        }
        lines.push(("At", at));
        match self.state {
            "exited" => lines.push((
                "State",
                format!(
                    "exited at {}{}: no address space at this time",
                    self.exited_at.as_deref().unwrap_or("?"),
                    self.exit_status
                        .as_deref()
                        .map(|s| format!(" ({s})"))
                        .unwrap_or_default()
                ),
            )),
            "not_started" => lines.push((
                "State",
                format!(
                    "not seen yet: the first row of pid {} is at {}",
                    self.pid,
                    self.first_seen.as_deref().unwrap_or("?")
                ),
            )),
            _ => {
                let baseline = match self.baseline.kind {
                    "snapshot" => {
                        let mut text = format!(
                            "snapshot of /proc/{}/maps at {}",
                            self.baseline.snapshot_pid.unwrap_or(self.pid),
                            self.baseline.time.as_deref().unwrap_or("?")
                        );
                        if let Some(source) = &self.baseline.source {
                            text.push_str(&format!(" ({source})"));
                        }
                        text
                    }
                    "exec" => format!(
                        "none: emptied by the exec at {}",
                        self.baseline.time.as_deref().unwrap_or("?")
                    ),
                    _ => "none: no snapshot".to_owned(),
                };
                lines.push(("Baseline", baseline));
                let regions = if self.merged && self.pieces != self.regions.len() {
                    format!(
                        "{} (merged from {} pieces), {}",
                        self.regions.len(),
                        self.pieces,
                        labels::human_bytes(self.bytes)
                    )
                } else {
                    format!(
                        "{}, {}",
                        self.regions.len(),
                        labels::human_bytes(self.bytes)
                    )
                };
                lines.push(("Regions", regions));
                lines.push((
                    "Complete",
                    if self.complete {
                        "yes".to_owned()
                    } else {
                        "no (see the notes)".to_owned()
                    },
                ));
            }
        }
        for note in &self.notes {
            lines.push(("Note", note.clone()));
        }
        let width = lines.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (label, value) in &lines {
            writeln!(out, "{label:<width$}  {value}")?;
        }
        if self.state == "live" && !self.loss_windows.is_empty() {
            writeln!(out)?;
            writeln!(out, "Loss windows before {}", self.at)?;
            write_loss_windows(out, &self.loss_windows)?;
        }
        if self.state != "live" {
            return Ok(());
        }
        writeln!(out)?;
        let mut table = Table::new(&[
            Column::left("ADDRESS"),
            Column::left("PERMS"),
            Column::left("OFFSET"),
            Column::left("DEV"),
            Column::right("INODE"),
            Column::left("SINCE"),
            Column::left("SET BY"),
            Column::right("TID"),
            Column::left("PATH"),
        ]);
        for r in &self.table_regions {
            let file = r.file();
            let dev = file.and_then(|f| f.dev).unwrap_or(0);
            let mut path = r.path().unwrap_or_default().to_owned();
            if file.is_some_and(|f| f.deleted) {
                path.push_str(" (deleted)");
            }
            if file.is_some() && r.path().is_none() {
                path.push_str("(file, name not recorded)");
            }
            table.push(vec![
                format!("{:08x}-{:08x}", r.start, r.end),
                r.perms(),
                format!("{:08x}", r.off),
                format!(
                    "{:02x}:{:02x}",
                    names::dev_major(dev),
                    names::dev_minor(dev)
                ),
                file.and_then(|f| f.ino).unwrap_or(0).to_string(),
                labels::time_of_day_ns(r.since),
                r.set_by.as_str().to_owned(),
                r.tid.to_string(),
                path,
            ]);
        }
        table.write(out, "")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse_as_rfc3339_or_offsets() {
        assert_eq!(
            parse_at("2026-11-27T06:01:13.5Z"),
            Ok(At::Wall(1_795_759_273_500_000_000))
        );
        assert_eq!(
            parse_at("2026-11-27T07:01:13.5+01:00"),
            Ok(At::Wall(1_795_759_273_500_000_000))
        );
        assert_eq!(parse_at("+1.5s"), Ok(At::AfterFirstRow(1_500_000_000)));
        assert_eq!(parse_at("+250ms"), Ok(At::AfterFirstRow(250_000_000)));
        assert_eq!(parse_at("+0"), Ok(At::AfterFirstRow(0)));
        assert_eq!(parse_at("+2m 3s"), Ok(At::AfterFirstRow(123_000_000_000)));
        for bad in ["1.5s", "+", "+1.5 parsecs", "yesterday", "2026-11-27"] {
            let err = parse_at(bad).expect_err(bad);
            assert!(err.contains("RFC 3339"), "{bad}: {err}");
        }
    }
}
