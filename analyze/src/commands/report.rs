//! `mmap-analyze report`: one self-contained HTML page to attach to an incident.

use std::{fs, path::PathBuf, process::ExitCode};

use anyhow::Context as _;

use crate::{
    cli::Inputs,
    engine::filter::RowFilter,
    findings::Thresholds,
    input,
    report::{Options, Report},
    timespec::TimeSpec,
};

/// Write an incident report: one self-contained HTML page to attach to a ticket.
///
/// The page has inline CSS and SVG, no script and nothing fetched from the network: it opens in
/// any browser, offline. It holds: the capture's metadata (hosts, capture ids, start, end, duration, files,
/// segments) and completeness (counters, lost records, loss windows, missing segments), as
/// `summary` computes them; the findings (as `findings` answers them, with the same thresholds
/// options); summary tables (top processes, system calls, mapped files, errors); and charts: mapped bytes over time for the top processes, calls per second per
/// system call, a histogram of call durations in log2 buckets, and the address space of one
/// process at one time, as `maps` rebuilds it (by default the process with the most mapped bytes
/// at the end, at the end; when every process exited, the one with the highest peak, at its
/// peak).
///
/// When the capture has call stacks (recorded with `--stacks`), a flame graph of mapped bytes
/// (successful mmap, and mremap growth) by call stack, root at the bottom: the 2,000 heaviest
/// stacks, the others summed as `[other]`. Hover a box for its function, bytes and share; it
/// has no zoom or search (they would need a script).
///
/// The row options (--pid, --comm, --syscall, --since, --until, --where) choose the calls that
/// the findings, tables and charts count; the capture and completeness sections always cover every row.
/// Every number is an aggregate computed by the query engine, so memory is bounded by the size
/// of the page, not by the capture; tables are cut at --rows rows and charts at --series series,
/// and the page says where it left rows out. Text from the capture (thread names, paths, host
/// names) is escaped.
///
/// Exit status: 0 when the file is written, 1 when --where is not a valid SQL predicate, 2 on a
/// usage error, an input that is missing or not a readable capture file, or a --map-pid that is
/// not in the capture.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The HTML file to write (an existing file is replaced).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    #[command(flatten)]
    filter: RowFilter,

    /// The process whose address space is drawn (default: the one --pid names when it names one,
    /// else the one with the most mapped bytes at the end of the capture).
    #[arg(long, value_name = "PID")]
    map_pid: Option<u32>,

    /// When its address space is drawn (RFC 3339, a time of day, +DURATION from the start,
    /// -DURATION before the end; default: the end of the capture).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    at: Option<TimeSpec>,

    /// The most rows in each table.
    #[arg(long, value_name = "N", default_value_t = 15)]
    rows: usize,

    /// The most series (processes, system calls) in each chart.
    #[arg(long, value_name = "N", default_value_t = 8)]
    series: usize,

    #[command(flatten)]
    thresholds: Thresholds,
}

const EXAMPLES: &str = "\
Examples:
  # The whole capture
  mmap-analyze report rec/ -o report.html

  # Only the calls of one program, and its address space 2 s after the start
  mmap-analyze report build.parquet --comm cc1plus --map-pid 4242 --at +2s -o cc1plus.html

  # The last minute, big mappings only
  mmap-analyze report rec/ --since -1m --where \"len >= 1048576\" -o big.html";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open(&args.inputs)?;
    let options = Options {
        rows: args.rows.max(1),
        series: args.series.max(1),
        // One --pid is also the process to draw.
        pid: args.map_pid.or(match args.filter.pid.as_slice() {
            [one] => Some(*one),
            _ => None,
        }),
        at: args.at,
        filter: args.filter,
        thresholds: args.thresholds,
    };
    let report = Report::collect(&readers, options)?;
    fs::write(&args.output, report.write_html())
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(ExitCode::SUCCESS)
}
