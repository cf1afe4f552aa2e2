//! `mmap-analyze rerun`: re-issue one recorded process's mapping calls in a fresh child process,
//! and say what came out differently.
//!
//! In phases: [`plan::prepare`] reads the process's calls and makes the files that stand for the
//! mapped ones; the child (`child.rs`, the hidden `rerun-child` command of this same binary)
//! makes the calls, translating recorded addresses to its own (`translate.rs`); [`compare`]
//! sets each call's outcome, the latency and the final address space beside the recording.

mod child;
mod compare;
mod plan;
mod protocol;
mod translate;

use std::{
    io::{Read as _, Write},
    process::{Command, ExitCode, Stdio},
};

use anyhow::{Context as _, anyhow, bail};
use clap::ValueEnum;
use serde::Serialize;

use self::{
    compare::{CallJson, Counts, Difference, Latency, SameAddresses, Space},
    plan::{FileUse, Options},
    protocol::{MARKER_END, MARKER_START},
};
use crate::{
    cli::{self, Inputs},
    engine::Engine,
    input, labels, output, replay,
    table::{Column, Table, visible},
    timespec::{self, TimeSpec},
};

/// Re-issue the mmap, munmap, mprotect, mremap and brk calls that process PID made, in recorded
/// order, from a fresh child process on this machine, and report what differs.
///
/// The child maps its own memory and files: it keeps a translation from recorded addresses to
/// its own, so that a later munmap, mprotect or mremap of a recorded region acts on the region
/// the rerun made for it. Each recorded file becomes a sparse temporary file big enough for every
/// recorded offset and length (--files real uses the recorded path when it is there); the rerun
/// never writes to a real file unless --allow-shared-write. Calls the recording saw fail are
/// re-issued too. Calls on memory the rerun did not make (mapped before the capture started, or
/// by the kernel at exec) are skipped, and the report says so.
///
/// The report lists the calls whose outcome differs (succeeded vs failed, another errno, another
/// break), latency per system call here beside the recorded latency (p50/p99), and the regions
/// the replayed calls left, compared with what `maps` rebuilds from the same calls. Exit status:
/// 0 when every outcome and the address space matched, 1 when something differed, 2 for bad
/// input. No root is needed.
///
/// To record the rerun itself: `mmap-recorder record -o rerun.parquet -- mmap-analyze rerun ...`;
/// the child's replayed calls lie between two marker calls, mmap(0x6d6d61700000, 0) before and
/// mmap(0x6d6d61701000, 0) after (both fail with EINVAL).
#[derive(Debug, clap::Args)]
#[command(after_long_help = after_long_help())]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The process (kernel tgid) whose calls are re-issued.
    #[arg(long, value_name = "PID")]
    pid: u32,

    /// Re-issue each recorded thread's calls on a thread of its own, keeping the order of calls
    /// across threads (default: all on one thread, in recorded order).
    #[arg(long)]
    threads: bool,

    /// Ask for each mapping at its recorded address (MAP_FIXED_NOREPLACE); where something of
    /// the child's own is there, the mapping goes elsewhere and the report lists it.
    #[arg(long)]
    same_addresses: bool,

    /// What stands for a recorded file: `temp` (a sparse temporary file per file) or `real`
    /// (the recorded path, when it is a regular file big enough; else a temporary file).
    #[arg(long, value_enum, default_value_t = FilesFrom::Temp)]
    files: FilesFrom,

    /// With --files real: let the rerun map real files shared and writable (it may write to
    /// them). Without it such files get a temporary stand-in.
    #[arg(long)]
    allow_shared_write: bool,

    /// `max` (back to back) or X: keep the recorded gaps between calls divided by X (`1` is the
    /// recorded pace, `10` ten times faster).
    #[arg(long, value_name = "max|X", default_value = "max", value_parser = parse_speed)]
    speed: Speed,

    /// Stop at this time of the capture (TIME: see below): calls made after it are not
    /// re-issued, and the address space is compared there.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    until: Option<TimeSpec>,

    /// The most bytes MAP_POPULATE and MAP_LOCKED mappings may populate or lock in all, e.g.
    /// 2GiB (default: a quarter of the memory available when the rerun starts); past it those
    /// flags are left out of the calls, and the report says how many. A capture cannot make the
    /// rerun take all the memory.
    #[arg(long, value_name = "SIZE")]
    populate_limit: Option<bytesize::ByteSize>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = RerunFormat::Table)]
    format: RerunFormat,

    /// Also list every call with its recorded and rerun arguments and result.
    #[arg(long)]
    calls: bool,
}

/// What stands for a recorded file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum FilesFrom {
    Temp,
    Real,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RerunFormat {
    Table,
    Json,
}

/// `--speed`: back to back, or recorded gaps divided by a factor.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Speed(Option<f64>);

fn parse_speed(value: &str) -> Result<Speed, String> {
    if value == "max" {
        return Ok(Speed(None));
    }
    match value.parse::<f64>() {
        Ok(x) if x.is_finite() && x > 0.0 => Ok(Speed(Some(x))),
        _ => Err(format!(
            "{value:?}: expected `max` or a number above 0, like 1 or 10"
        )),
    }
}

const EXAMPLES: &str = "\
Examples:
  # Re-issue pid 1234's calls back to back and compare
  mmap-analyze rerun rec/ --pid 1234

  # At the recorded pace, ten times faster, one thread per recorded thread
  mmap-analyze rerun rec/ --pid 1234 --speed 10 --threads

  # The first 2 seconds only, at the recorded addresses, as JSON with every call
  mmap-analyze rerun rec/ --pid 1234 --until +2s --same-addresses --format json --calls

  # Record the rerun too, to compare two kernels or two settings call by call
  sudo mmap-recorder record -o rerun.parquet -- mmap-analyze rerun rec/ --pid 1234";

fn after_long_help() -> String {
    format!("{}\n\n{EXAMPLES}", cli::reflow(timespec::HELP))
}

/// The hidden `rerun-child` command: the fresh process that makes the calls.
#[derive(Debug, clap::Args)]
pub struct ChildArgs {}

pub fn run_child(_args: ChildArgs) -> anyhow::Result<ExitCode> {
    child::run()
}

#[derive(Debug, Serialize)]
struct Report {
    pid: u32,
    comm: Option<String>,
    child_pid: u32,
    markers: Markers,
    calls: Counts,
    elapsed_s: f64,
    recorded_s: f64,
    differences: Vec<Difference>,
    latency: Vec<Latency>,
    address_space: Space,
    #[serde(skip_serializing_if = "Option::is_none")]
    same_addresses: Option<SameAddresses>,
    files: Vec<FileUse>,
    /// What the rerun cannot reproduce.
    notes: Vec<String>,
    loss_windows: crate::loss::LossWindows,
    /// Calls not issued, by reason.
    skipped: Vec<Skipped>,
    #[serde(skip_serializing_if = "Option::is_none")]
    call_list: Option<Vec<CallJson>>,
}

#[derive(Debug, Serialize)]
struct Markers {
    start: String,
    end: String,
}

#[derive(Debug, Serialize)]
struct Skipped {
    why: String,
    calls: usize,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let readers = input::open(&args.inputs)?;
    let engine = Engine::open(&readers)?;
    let page_size = readers
        .iter()
        .find_map(|r| r.metadata().page_size)
        .map_or(replay::DEFAULT_PAGE_SIZE, u64::from);
    let until = match args.until {
        Some(spec) => {
            let span = engine.span(&readers)?;
            let resolved = spec
                .resolve(&span)
                .map_err(|err| anyhow!("--until {err}"))?;
            if let Some(warning) = resolved.warning {
                output::warn(&format!("--until {warning}"));
            }
            Some(resolved.ns)
        }
        None => None,
    };
    let options = Options {
        pid: args.pid,
        until,
        threads: args.threads,
        same_addresses: args.same_addresses,
        speed: args.speed.0,
        files: args.files,
        allow_shared_write: args.allow_shared_write,
        page_size,
        populate_limit: args.populate_limit.map(|size| size.as_u64()),
    };
    let prepared = plan::prepare(&engine, &readers, &options)?;
    drop(engine);
    let outcome = spawn(&prepared.plan)?;

    let (counts, differences, list) = compare::calls(&prepared, &outcome);
    let mut notes = prepared.notes.clone();
    let unpopulated = outcome.done.iter().filter(|d| d.unpopulated).count();
    if unpopulated > 0 {
        notes.push(format!(
            "{unpopulated} mmap call{} issued without MAP_POPULATE and MAP_LOCKED: with them the \
             rerun would have populated or locked more than --populate-limit ({})",
            labels::plural(unpopulated as u64),
            labels::human_bytes(prepared.plan.populate_budget)
        ));
    }
    if let Some((_, errno)) = outcome.standins_failed.first() {
        notes.push(format!(
            "{} of the snapshot's regions could not be made again here (the first: {}): calls on \
             them are skipped",
            outcome.standins_failed.len(),
            labels::errno_label((-errno) as i32)
        ));
    }
    let space = compare::space(&prepared, &outcome, page_size);
    let mut skipped: Vec<Skipped> = Vec::new();
    for call in &list {
        if call.outcome == compare::Verdict::Skipped {
            let why = call.why.clone().unwrap_or_default();
            match skipped.iter_mut().find(|s| s.why == why) {
                Some(s) => s.calls += 1,
                None => skipped.push(Skipped { why, calls: 1 }),
            }
        }
    }
    let recorded_s = match (prepared.recorded.first(), prepared.recorded.last()) {
        (Some(a), Some(b)) => (b.ts - a.ts) as f64 / 1e9,
        _ => 0.0,
    };
    let report = Report {
        pid: args.pid,
        comm: prepared.comm.clone(),
        child_pid: outcome.pid,
        markers: Markers {
            start: labels::hex(MARKER_START),
            end: labels::hex(MARKER_END),
        },
        calls: counts,
        elapsed_s: outcome.elapsed_ns as f64 / 1e9,
        recorded_s,
        differences,
        latency: compare::latency(&prepared, &outcome),
        address_space: space,
        same_addresses: args
            .same_addresses
            .then(|| compare::same_addresses(&prepared, &outcome)),
        files: prepared.files.clone(),
        notes,
        loss_windows: prepared.loss_windows.clone(),
        skipped,
        call_list: args.calls.then_some(list),
    };
    let mut out = output::stdout();
    match args.format {
        RerunFormat::Json => output::write_json_pretty(&mut out, &report)?,
        RerunFormat::Table => report.write_table(&mut out)?,
    }
    out.flush().context("writing to stdout")?;
    let matched = report.calls.differ == 0 && report.address_space.matched;
    Ok(if matched {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// Starts the child (this program again, `rerun-child`), hands it the plan and waits for its
/// outcome.
fn spawn(plan: &protocol::Plan) -> anyhow::Result<protocol::Outcome> {
    let exe = std::env::current_exe().context("finding this program to start the rerun child")?;
    let mut child = Command::new(exe)
        .arg("rerun-child")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting the rerun child")?;
    let input = serde_json::to_vec(plan).context("writing the plan")?;
    let mut stdin = child.stdin.take().context("the rerun child's stdin")?;
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let mut text = Vec::new();
    child
        .stdout
        .take()
        .context("the rerun child's stdout")?
        .read_to_end(&mut text)
        .context("reading the rerun child's outcome")?;
    let status = child.wait().context("waiting for the rerun child")?;
    let _ = writer.join();
    if !status.success() {
        bail!("the rerun child failed ({status})");
    }
    let outcome: protocol::Outcome =
        serde_json::from_slice(&text).context("reading the rerun child's outcome")?;
    if outcome.done.len() != plan.ops.len() {
        bail!(
            "the rerun child reported {} calls of {}",
            outcome.done.len(),
            plan.ops.len()
        );
    }
    Ok(outcome)
}

/// Differences listed in the table (JSON has all of them).
const LISTED: usize = 50;

fn ns_label(ns: Option<u64>) -> String {
    ns.map_or_else(|| "-".to_owned(), labels::thousands)
}

fn ret_label(ret: Option<i64>) -> String {
    match ret {
        None => "-".to_owned(),
        Some(r) if (-4095..0).contains(&r) => labels::errno_label((-r) as i32),
        Some(r) if r > 0xffff => labels::hex(r as u64),
        Some(r) => r.to_string(),
    }
}

impl Report {
    fn write_table(&self, out: &mut impl Write) -> std::io::Result<()> {
        let c = &self.calls;
        writeln!(
            out,
            "rerun of pid {}{} in child {}: {} calls recorded over {:.6} s, {} re-issued in {:.6} s",
            self.pid,
            self.comm
                .as_deref()
                .map(|c| format!(" ({})", visible(c)))
                .unwrap_or_default(),
            self.child_pid,
            labels::thousands(c.recorded as u64),
            self.recorded_s,
            labels::thousands(c.issued as u64),
            self.elapsed_s,
        )?;
        writeln!(
            out,
            "outcomes: {} same, {} differ, {} skipped, {} not comparable (no recorded result)",
            labels::thousands(c.same as u64),
            labels::thousands(c.differ as u64),
            labels::thousands(c.skipped as u64),
            labels::thousands(c.unknown as u64),
        )?;
        if !self.differences.is_empty() {
            writeln!(out, "\ndifferences:")?;
            let mut table = Table::new(&[
                Column::right("SEQ"),
                Column::left("TIME"),
                Column::right("TID"),
                Column::left("SYSCALL"),
                Column::left("RECORDED"),
                Column::left("RERUN"),
                Column::left("WHY"),
            ]);
            for d in self.differences.iter().take(LISTED) {
                table.push(vec![
                    d.seq.to_string(),
                    d.time.clone(),
                    d.tid.to_string(),
                    d.syscall.to_owned(),
                    ret_label(d.recorded_ret),
                    ret_label(Some(d.rerun_ret)),
                    d.why.clone(),
                ]);
            }
            table.write(out, "  ")?;
            if self.differences.len() > LISTED {
                writeln!(
                    out,
                    "  ... and {} more (--format json lists every one)",
                    labels::thousands((self.differences.len() - LISTED) as u64)
                )?;
            }
        }
        if !self.skipped.is_empty() {
            writeln!(out, "\nnot re-issued:")?;
            for s in &self.skipped {
                writeln!(
                    out,
                    "  {} call{}: {}",
                    s.calls,
                    labels::plural(s.calls as u64),
                    s.why
                )?;
            }
        }
        writeln!(out, "\nlatency (ns), recorded beside this machine:")?;
        let mut table = Table::new(&[
            Column::left("SYSCALL"),
            Column::right("CALLS"),
            Column::right("RECORDED P50"),
            Column::right("P99"),
            Column::right("RERUN P50"),
            Column::right("P99"),
        ]);
        for l in &self.latency {
            table.push(vec![
                l.syscall.to_owned(),
                labels::thousands(l.calls as u64),
                ns_label(l.recorded_p50_ns),
                ns_label(l.recorded_p99_ns),
                ns_label(l.rerun_p50_ns),
                ns_label(l.rerun_p99_ns),
            ]);
        }
        table.write(out, "  ")?;
        let space = &self.address_space;
        writeln!(
            out,
            "\naddress space at the end (the snapshot's stand-ins and what the calls made): {}",
            if space.matched {
                format!("{} regions, the same as recorded", space.regions)
            } else {
                format!(
                    "{} regions the same, {} only in the recording, {} only in the rerun",
                    space.regions,
                    space.only_recorded.len(),
                    space.only_rerun.len()
                )
            }
        )?;
        for (label, pieces) in [
            ("recorded", &space.only_recorded),
            ("rerun", &space.only_rerun),
        ] {
            for p in pieces {
                writeln!(
                    out,
                    "  only {label}: {}-{} {} {}",
                    p.start,
                    p.end,
                    p.perms,
                    p.file
                        .as_deref()
                        .map(|f| format!("{} @ {}", visible(f), p.off.unwrap_or(0)))
                        .unwrap_or_default()
                )?;
            }
        }
        if let Some(same) = &self.same_addresses {
            writeln!(
                out,
                "\nsame addresses: {} of {} mappings at their recorded address",
                same.placed, same.requested
            )?;
            for e in &same.elsewhere {
                writeln!(
                    out,
                    "  call {}: recorded {}, rerun {}",
                    e.seq, e.recorded, e.rerun
                )?;
            }
        }
        if !self.files.is_empty() {
            writeln!(out, "\nfiles:")?;
            for f in &self.files {
                writeln!(
                    out,
                    "  {} -> {} ({}, {} bytes){}",
                    visible(f.recorded.as_deref().unwrap_or("(no path)")),
                    visible(&f.used.display().to_string()),
                    f.kind,
                    labels::thousands(f.size),
                    f.why
                        .as_deref()
                        .map(|w| format!(": recorded path not used: {}", visible(w)))
                        .unwrap_or_default()
                )?;
            }
        }
        if !self.notes.is_empty() {
            writeln!(out, "\nwhat the rerun cannot reproduce:")?;
            for n in &self.notes {
                writeln!(out, "  - {}", visible(n))?;
            }
        }
        Ok(())
    }
}
