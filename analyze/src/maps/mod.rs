//! `mmap-analyze maps`: the address space of one process at one time, rebuilt from a capture.
//!
//! In phases: [`scan`] reads the rows once (where the capture starts and ends, whether the pid is
//! there, which processes it was forked from); [`build`] replays the rows that matter up to the
//! time with [`crate::replay`] and says what the answer is known from; [`render`] prints the
//! [`Report`] as a table (the JSON output is the report itself).

mod build;
mod render;
mod scan;

use std::{io::Write, process::ExitCode};

use anyhow::Context as _;
use clap::ValueEnum;
use mmap_format::reader::CaptureReader;
use serde::Serialize;

use self::{build::Query, scan::Scan};
use crate::{
    cli::{self, Inputs},
    engine::{
        Engine,
        stacks::{self, FRAMES_MISSING, Frame, StackFrames},
    },
    input, labels,
    loss::LossWindows,
    output,
    replay::{Baseline, Region},
    segments::MissingSegments,
    timespec::{self, TimeSpec},
};

/// Rebuild the address space of process PID at time TIME: what was mapped where, since when,
/// set by which row, and from which file.
///
/// The rows of the INPUT files (for example the segments of one recording) are replayed in time
/// order, and the result is printed like /proc/PID/maps (start-end, perms, offset, major:minor,
/// inode, path) with, for each region, when it got its current state, the kind of row that set it
/// and the thread of that row. The output says when the result cannot be complete: no snapshot of
/// the process before TIME (mappings made before the capture started are not known), records
/// lost before TIME (the loss windows are listed: changes in them may be missing), segments of
/// the recording missing before TIME, or a process that had already exited at TIME. A process
/// that has a row at or before TIME exists then; one whose first row comes later is "not
/// started" when that row is the fork that creates it, else "not seen" (it may have existed).
/// The forms of TIME and the rules of the replay follow the options.

#[derive(Debug, clap::Args)]
#[command(after_long_help = after_long_help())]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The process (kernel tgid) whose address space is rebuilt.
    #[arg(long, value_name = "PID")]
    pid: u32,

    /// The time to rebuild it at (TIME: see below; e.g. 06:01:13.5, +1.5s, -1s,
    /// 2026-11-27T06:01:13.5Z). Default: the end of the capture.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    at: Option<TimeSpec>,

    /// Rebuild it just before the process's exit row (1 ns before it): its last address space.
    #[arg(long, conflicts_with = "at")]
    before_exit: bool,

    /// Output format.
    #[arg(long, value_enum, default_value_t = MapsFormat::Table)]
    format: MapsFormat,

    /// Show the regions as the rows left them, without merging compatible neighbours.
    #[arg(long)]
    no_merge: bool,

    /// Show under each region the user call stack of the call that created it (captures
    /// recorded with --stacks fp|dwarf): one line per frame, innermost first; in JSON a `stack`
    /// array of frames (index, addr, module, build_id, offset, function, file, line,
    /// symbol_source, name). Regions from a snapshot, the heap (brk) and calls without a stack
    /// have none; a stack whose frame rows are not in the inputs shows `[frames missing]`.
    /// Implies --no-merge (merged pieces may come from different calls).
    #[arg(long)]
    stacks: bool,
}

const EXAMPLES: &str = "\
Examples:
  # The address space of pid 1234 when the recording ended
  mmap-analyze maps build.parquet --pid 1234

  # All segments of a recording to rec/, 1.5 s after the first row, region by region
  mmap-analyze maps rec/ --pid 1234 --at +1.5s --no-merge

  # At a time that `events` printed, and just before the process exited
  mmap-analyze maps rec/ --pid 1234 --at 06:39:28.238300000
  mmap-analyze maps rec/ --pid 1234 --before-exit

  # At a wall-clock time, as JSON: the file-backed regions
  mmap-analyze maps rec/mmap-20261127T063900Z-1a2b3c4d-00003.parquet --pid 1234 \\
    --at 2026-11-27T06:39:28.2383Z --format json | jq '.regions[] | select(.ino != 0)'";

/// The replay rules in Markdown: `maps --help` shows them reflowed to the terminal's width, and
/// docs/ANALYZE.md holds them verbatim between markers (a test below checks that it does).
const RULES: &str = include_str!("rules.md");

fn after_long_help() -> String {
    format!(
        "{}\n\nReplay rules:\n\n{}\n\n{EXAMPLES}",
        cli::reflow(timespec::HELP),
        cli::reflow(RULES)
    )
}

/// How the map is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum MapsFormat {
    /// A header, then one line per region like /proc/PID/maps with SINCE, SET BY and TID.
    Table,
    /// One JSON object; times are RFC 3339 with nanoseconds, UTC.
    Json,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open(&args.inputs)?;
    let engine = Engine::open(&readers)?;
    let scan = Scan::read(&engine, &readers, args.pid)?;
    let query = Query::new(&readers, &scan, &args)?;
    let mut report = Report::build(&engine, &readers, &scan, &query)?;
    if args.stacks {
        report.attach_stacks(&stacks::frames(&engine)?, &readers);
    }

    let mut out = output::stdout();
    match args.format {
        MapsFormat::Json => output::write_json_pretty(&mut out, &report)?,
        MapsFormat::Table => report.write_table(&mut out)?,
    }
    out.flush().context("writing to stdout")?;
    Ok(ExitCode::SUCCESS)
}

/// Whether the process exists at the time.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum State {
    Live,
    /// An exit row at or before the time.
    Exited,
    /// The pid's first row comes later, and it is the fork that created the process.
    NotStarted,
    /// The pid's first row comes later and is not its creation: it may have existed already.
    NotSeen,
}

/// What the map is known from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum BaselineKind {
    Snapshot,
    /// Emptied by an exec, no snapshot since.
    Exec,
    #[serde(rename = "none")]
    Unknown,
}

/// What the map is known from, in JSON.
#[derive(Debug, Serialize)]
struct BaselineJson {
    kind: BaselineKind,
    time: Option<String>,
    /// The process the snapshot was taken of (the pid, or an ancestor it was forked from).
    snapshot_pid: Option<u32>,
    source: Option<String>,
}

impl BaselineJson {
    fn new(baseline: &Baseline) -> Self {
        let (kind, ts, snapshot_pid, source) = match baseline {
            Baseline::Snapshot { ts, pid, source } => (
                BaselineKind::Snapshot,
                Some(*ts),
                Some(*pid),
                source.clone(),
            ),
            Baseline::Exec { ts } => (BaselineKind::Exec, Some(*ts), None, None),
            Baseline::Unknown => (BaselineKind::Unknown, None, None, None),
        };
        Self {
            kind,
            time: ts.map(labels::rfc3339_ns),
            snapshot_pid,
            source,
        }
    }
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
    /// The recorded path was not valid UTF-8: `path` has U+FFFD where its bytes were invalid.
    path_lossy: bool,
    since: String,
    since_ns: i64,
    set_by: &'static str,
    tid: u32,
    /// The user call stack of the call that created the region (format 1.4).
    #[serde(skip_serializing_if = "Option::is_none")]
    stack_id: Option<u64>,
    /// With --stacks: its frames, innermost first (empty: no stack, or its frames are missing).
    #[serde(skip_serializing_if = "Option::is_none")]
    stack: Option<Vec<Frame>>,
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
            path_lossy: file.is_some_and(|f| f.lossy),
            since: labels::rfc3339_ns(r.since),
            since_ns: r.since,
            set_by: r.set_by.as_str(),
            tid: r.tid,
            stack_id: r.stack_id,
            stack: None,
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
    state: State,
    exited_at: Option<String>,
    exit_code: Option<i32>,
    exit_status: Option<String>,
    /// When the pid first appears, for `not_started` and `not_seen`.
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
    #[serde(flatten)]
    loss_windows: LossWindows,
    /// Records the recorder counted as lost without saying when: entries dropped for want of room
    /// for the call in flight, records it could not decode, and, in captures without `lost`
    /// rows, records the ring buffer could not take.
    lost_without_time: u64,
    #[serde(skip)]
    untimed: build::Untimed,
    /// New processes the recorder could not follow (its map of followed processes was full);
    /// when non-zero, the answer for a process forked during the capture is incomplete.
    unfollowed_processes: u64,
    /// Segments of the capture missing from the inputs whose time starts before the time.
    missing_segments: Vec<MissingSegments>,
    merged: bool,
    /// How many raw pieces the regions were merged from.
    pieces: usize,
    bytes: u64,
    regions: Vec<RegionJson>,
    #[serde(skip)]
    table_regions: Vec<Region>,
    /// With --stacks: the lines under each region of the table, by region.
    #[serde(skip)]
    table_stacks: Vec<Vec<String>>,
}

impl Report {
    /// Gives each region the frames of the stack of the call that created it.
    fn attach_stacks(&mut self, frames: &StackFrames, readers: &[CaptureReader]) {
        let captures: Vec<Option<String>> = readers
            .iter()
            .map(|reader| reader.metadata().capture_id.clone())
            .collect();
        self.table_stacks = Vec::with_capacity(self.regions.len());
        for region in &mut self.regions {
            // A stack id is one recording's: the first input's recording that has it.
            let stack = region.stack_id.map(|id| {
                captures
                    .iter()
                    .find_map(|capture| frames.get(&(capture.clone(), id)))
                    .cloned()
                    .unwrap_or_default()
            });
            self.table_stacks.push(match &stack {
                None => Vec::new(),
                Some(stack) if stack.is_empty() => vec![format!("    {FRAMES_MISSING}")],
                Some(stack) => stack.iter().map(|f| format!("    {}", f.line())).collect(),
            });
            region.stack = Some(stack.unwrap_or_default());
        }
    }
}

/// The merged address space of `pid` at `at` (default: the end of the capture) as `maps --format
/// json` prints it (the documented JSON keys), for commands that show it another way (the HTML
/// report).
pub fn collect_json(
    engine: &Engine,
    readers: &[CaptureReader],
    pid: u32,
    at: Option<TimeSpec>,
) -> anyhow::Result<serde_json::Value> {
    let args = Args {
        inputs: Inputs {
            paths: Vec::new(),
            remote: cli::Remote::default(),
        },
        pid,
        at,
        before_exit: false,
        format: MapsFormat::Json,
        no_merge: false,
        stacks: false,
    };
    let scan = Scan::read(engine, readers, pid)?;
    let query = Query::new(readers, &scan, &args)?;
    Ok(serde_json::to_value(Report::build(
        engine, readers, &scan, &query,
    )?)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn docs_hold_the_replay_rules_of_the_help_verbatim() {
        assert_eq!(
            cli::copy_in_docs("analyze/src/maps/rules.md"),
            Some(RULES),
            "docs/ANALYZE.md must hold analyze/src/maps/rules.md between its markers: copy it there"
        );
    }
}
