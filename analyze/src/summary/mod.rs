//! `mmap-analyze summary`: what one or more captures hold, in one screen.
//!
//! In phases: [`collect`] reads every row once into the [`Summary`] (which is also the JSON
//! output); [`render`] prints it as a table. What each count counts is said once, in [`COUNTS`]:
//! `--help` lists it, and the table's labels and phrases come from it.

mod collect;
mod render;

use std::{collections::BTreeMap, io::Write, process::ExitCode};

use anyhow::Context as _;
use clap::ValueEnum;
use mmap_format::{
    metadata::{Counters, Targets},
    reader::CaptureReader,
};
use serde::Serialize;

use crate::{cli::Inputs, input, loss::LossWindows, output, segments::MissingSegments};

/// Summarize captures: hosts, time span, completeness, counts by row kind, system call, process,
/// command name and error, bytes mapped, records lost.
///
/// Several INPUT files (for example the segments of one recording) are merged into one summary;
/// each file is listed too. "By kind" splits the rows by row kind (the kinds `events --kind`
/// takes; format 1.0 captures hold syscall rows only). "By system call", the process and command
/// lists, "Failed calls" and "Bytes mapped" count system call rows only.
///
/// "Completeness" names the segments of a recording that are not among the inputs (deleted by
/// `--keep`, or left out: what happened in them is unknown), lists the loss windows (format 1.1
/// `lost` rows: on which CPU, from when to when, how many records), or says "complete: no records
/// lost, no segment missing".
#[derive(Debug, clap::Args)]
#[command(after_long_help = after_long_help())]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// Output format.
    #[arg(long, value_enum, default_value_t = SummaryFormat::Table)]
    format: SummaryFormat,

    /// How many processes and command names to list in each top list (0 lists all).
    #[arg(long, value_name = "N", default_value_t = 10)]
    top: usize,

    /// Count only the rows for which this SQL predicate is true, e.g. "comm = 'java'" or
    /// "errno_name = 'ENOMEM'" (as `events --where`: the columns of the capture and the decoded
    /// columns of the `calls` view). The files, their counters and what was lost are listed
    /// whatever it says. A predicate that is not valid SQL exits with status 1.
    #[arg(long = "where", value_name = "SQL")]
    predicate: Option<String>,
}

const EXAMPLES: &str = "\
Examples:
  # One capture
  mmap-analyze summary build.parquet

  # A recording to a directory (all its segments), the 3 busiest processes
  mmap-analyze summary rec/ --top 3

  # Some segments, by a pattern the shell leaves alone
  mmap-analyze summary 'rec/mmap-20261127T060113Z-1a2b3c4d-0000[0-4].parquet'

  # For scripts: total failures by errno
  mmap-analyze summary rec/ --format json | jq .errors

  # Only the anonymous mappings of 1 MiB or more
  mmap-analyze summary rec/ --where \"fd = -1 AND len >= 1048576\"

  # Was anything lost or left out, and when?
  mmap-analyze summary rec/ --format json | jq '.loss_windows, .missing_segments'";

/// One count of the overview: the label it has in the table, its key in the JSON output, the
/// words printed after its value, what it counts (for `--help`) and where its value is.
#[derive(Clone, Copy, Debug)]
struct Count {
    label: &'static str,
    /// The key in the JSON output, `outer.inner` for a nested one.
    json: &'static str,
    unit: &'static str,
    help: &'static str,
    value: fn(&Summary) -> u64,
    /// Shown in binary units too.
    bytes: bool,
}

/// The counts of the overview, in the order they are printed.
const COUNTS: [Count; 10] = [
    Count {
        label: "Rows",
        json: "events",
        unit: "in the files, of every kind",
        help: "every row of the files: system calls, snapshot lines, forks, execs, exits and \
               loss records (\"By kind\" splits them).",
        value: |s| s.events,
        bytes: false,
    },
    Count {
        label: "Failed calls",
        json: "failed",
        unit: "returned -errno",
        help: "system calls that returned an error (\"Failures by errno\" splits them).",
        value: |s| s.failed,
        bytes: false,
    },
    Count {
        label: "Bytes mapped",
        json: "bytes_mapped",
        unit: "asked for by successful mmap calls",
        help: "the sum of the length argument of successful mmap calls: what was asked for, \
               before rounding up to pages; unmapping is not subtracted.",
        value: |s| s.bytes_mapped,
        bytes: true,
    },
    Count {
        label: "Lost records",
        json: "lost",
        unit: "not in the files, though they happened",
        help: "records of calls and process events that the recorder counted as dropped: the sum \
               of the next three. A capture with lost records is incomplete.",
        value: |s| s.lost,
        bytes: false,
    },
    Count {
        label: "  ring buffer full",
        json: "counters.lost_ringbuf_full",
        unit: "dropped by the kernel side",
        help: "records the eBPF programs dropped because the ring buffer to the recorder was \
               full.",
        value: |s| s.counters.lost_ringbuf_full,
        bytes: false,
    },
    Count {
        label: "  no room for call",
        json: "counters.entry_map_full",
        unit: "calls the kernel side could not keep",
        help: "system calls the kernel side dropped because it had no room for their state: its \
               map of calls in progress was full, or the kernel could not allocate a thread's \
               task-local storage (the only case with --attach tracepoint-exit). Those calls \
               have no row.",
        value: |s| s.counters.entry_map_full,
        bytes: false,
    },
    Count {
        label: "  decode errors",
        json: "counters.decode_errors",
        unit: "records the recorder could not read",
        help: "ring buffer records that the recorder could not decode.",
        value: |s| s.counters.decode_errors,
        bytes: false,
    },
    Count {
        label: "Unfollowed",
        json: "counters.follow_map_full",
        unit: "new processes not recorded",
        help: "new processes of the targets that the kernel side could not follow because its \
               map of followed processes (16,384 entries) was full: their fork is a row, \
               nothing after it is. A capture with unfollowed processes is incomplete for them \
               (`maps` says so for every process forked during the capture). Format 1.2.",
        value: |s| s.counters.follow_map_full,
        bytes: false,
    },
    Count {
        label: "Orphan exits",
        json: "orphan_exits",
        unit: "calls in progress at the start, not lost",
        help: "system calls that were already in progress when recording started (at most one \
               per thread): their exit was seen, their entry was not, so they have no row. They \
               are not lost calls. An entry dropped because the map of calls in progress was \
               full also ends as an orphan exit (and is counted there). Each segment of a \
               recording to a directory counts its own.",
        value: |s| s.orphan_exits,
        bytes: false,
    },
    Count {
        label: "Kernel records",
        json: "counters.emitted",
        unit: "delivered by the eBPF programs",
        help: "records from the eBPF programs written to the file: system calls and process \
               events (fork, exec, exit), and any the recorder could not decode. Snapshot rows \
               (read from /proc by the recorder) and lost rows are not among them.",
        value: |s| s.counters.emitted,
        bytes: false,
    },
];

/// The counts explained, then the examples.
fn after_long_help() -> String {
    let mut help = String::from("Counts (table label, JSON key: what it counts):\n");
    for count in COUNTS {
        help.push_str(&format!(
            "  - {} ({}): {}\n",
            count.label.trim(),
            count.json,
            count.help
        ));
    }
    help.push('\n');
    help.push_str(EXAMPLES);
    help
}

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
    let summary = Summary::collect(&readers, args.top, args.predicate.as_deref())?;
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
    /// Rows of every kind.
    events: u64,
    failed: u64,
    bytes_mapped: u64,
    /// Counters summed over the files.
    counters: Counters,
    lost: u64,
    orphan_exits: u64,
    /// No loss window, no lost record counted, no segment missing.
    complete: bool,
    /// Segments of a recording that are not among the inputs.
    missing_segments: Vec<MissingSegments>,
    /// `lost` rows, the first by start time (`loss_windows`), counted (`loss_window_count`) and
    /// summed (`lost_in_windows`).
    #[serde(flatten)]
    loss_windows: LossWindows,
    /// Rows by kind (the names of `RowKind`).
    by_kind: BTreeMap<String, u64>,
    /// System call rows by system call.
    by_syscall: BTreeMap<String, u64>,
    processes: usize,
    top: usize,
    /// The `top` processes with the most system call rows.
    by_process: Vec<ProcessSummary>,
    /// How many processes mapped bytes.
    processes_that_mapped: usize,
    /// The `top` processes that mapped the most bytes (those that mapped none are left out).
    by_process_bytes: Vec<ProcessSummary>,
    /// How many thread names (comm) made system calls.
    comms: usize,
    /// The `top` thread names with the most system call rows, with their totals.
    by_comm: Vec<CommSummary>,
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

/// The totals of one process (its system call rows).
#[derive(Debug, Serialize)]
struct ProcessSummary {
    pid: u32,
    /// The thread name seen most often.
    comm: String,
    /// System call rows.
    events: u64,
    bytes_mapped: u64,
}

/// The totals of one thread name (the system call rows made under it).
#[derive(Debug, Serialize)]
struct CommSummary {
    comm: String,
    /// Processes with a system call row under this name.
    processes: usize,
    events: u64,
    bytes_mapped: u64,
}

impl Summary {
    /// Aggregates the rows of every file that pass `predicate` (`None`: every row).
    fn collect(
        readers: &[CaptureReader],
        top: usize,
        predicate: Option<&str>,
    ) -> anyhow::Result<Self> {
        collect::collect(readers, top, predicate)
    }
}

/// The summary of `readers` as `summary --format json` prints it (the documented JSON keys), for
/// commands that show it another way (the HTML report).
pub fn collect_json(readers: &[CaptureReader], top: usize) -> anyhow::Result<serde_json::Value> {
    Ok(serde_json::to_value(Summary::collect(readers, top, None)?)?)
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use mmap_format::{
        event::{Event, RowKind, Syscall},
        metadata::CaptureMetadata,
        writer::WriterConfig,
    };

    use super::*;

    /// A capture of two calls (one failed) whose counters all differ, in a file (the engine
    /// reads files).
    fn capture(dir: &tempfile::TempDir) -> CaptureReader {
        let call = |ret: i64| Event {
            kind: RowKind::Syscall,
            syscall: Some(Syscall::Mmap),
            ts_ns: 1,
            ts_exit_ns: Some(2),
            pid: 7,
            comm: Cow::Borrowed("a"),
            len: Some(12_288),
            ret: Some(ret),
            ..Event::default()
        };
        let meta = CaptureMetadata {
            counters: Counters {
                emitted: 11,
                lost_ringbuf_full: 3,
                orphan_exits: 5,
                entry_map_full: 7,
                decode_errors: 9,
                follow_map_full: 13,
            },
            ..CaptureMetadata::default()
        };
        input::capture_file(
            dir,
            "two-calls.parquet",
            WriterConfig::default(),
            &meta,
            &[call(0x1000), call(-12)],
        )
    }

    #[test]
    fn every_count_is_what_its_json_key_holds_and_is_explained() {
        let dir = tempfile::tempdir().expect("temporary directory");
        let summary = Summary::collect(&[capture(&dir)], 10, None).expect("collect");
        let json = serde_json::to_value(&summary).expect("JSON");
        let mut values = Vec::new();
        for count in COUNTS {
            let in_json = count
                .json
                .split('.')
                .try_fold(&json, |value, key| value.get(key))
                .and_then(serde_json::Value::as_u64);
            assert_eq!(in_json, Some((count.value)(&summary)), "{}", count.json);
            values.push((count.value)(&summary));
        }
        assert_eq!(values, [2, 1, 12_288, 19, 3, 7, 9, 13, 5, 11]);

        let help = after_long_help();
        for count in COUNTS {
            assert!(help.contains(count.json), "{help}");
            assert!(help.contains(count.label.trim()), "{help}");
        }
    }
}
