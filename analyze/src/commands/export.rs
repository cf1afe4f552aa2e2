//! `mmap-analyze export`: the rows to a file for other tools: a Chrome/Perfetto trace, JSON Lines
//! or CSV.

use std::{
    collections::{HashMap, hash_map::Entry},
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use mmap_format::{
    event::{Event, RowKind, Syscall},
    names,
};
use serde::Serialize;

use super::rows::{self, Opened, Order, Sorted};
use crate::{
    engine::filter::RowFilter,
    events::{EventsFormat, RowSink as Sink},
    labels,
    replay::{MREMAP_FIXED, Replay},
};

/// Export the rows to a file: a trace for Perfetto UI and chrome://tracing, JSON Lines or CSV.
///
/// chrome-trace writes one JSON document in the Trace Event Format: a `traceEvents` array in
/// which every process (pid) is a process track and every thread (tid) a thread track, named
/// after the thread (`process_name` and `thread_name` metadata events). Each system call is a
/// complete event ("ph":"X") from its entry to its exit, its arguments in `args` (addr, len,
/// prot, flags, fd, off, result, file); a call whose exit was not seen is an instant event. Fork,
/// exec and exit are process-wide instant events ("ph":"i"), lost records global ones. The
/// bytes each process has mapped are a counter ("ph":"C", `mapped bytes`): the address-space
/// replay of `maps` runs over every row (the /proc/PID/maps snapshots included), and the counter
/// gets a point at each exported row that changes it (a successful mmap, munmap, mremap or brk,
/// a fork, exec or exit), at the first exported row of each process, and after a snapshot of a
/// process already on the counter. Times ("ts", "dur") are
/// microseconds (with the nanoseconds as decimals) since the first row of the capture;
/// `otherData.time_origin` says when that is. The file is written as the rows come, in the
/// order they take effect (a call at its exit).
///
/// jsonl and csv write what `events --format json` and `events --format csv` print, in entry
/// time order (without snapshot rows).
///
/// The filter options pick the exported rows (they combine with AND).
///
/// Exit status: 0 on success, 1 when the --where predicate is wrong, 2 on a usage error, an
/// unreadable input or an output file that cannot be written.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Captures written by mmap-recorder: files, directories of segments or quoted globs; also
    /// s3:// and file:// URLs.
    #[arg(value_name = "INPUT", required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,

    #[command(flatten)]
    remote: crate::cli::Remote,

    /// What to write.
    #[arg(long, value_enum)]
    format: ExportFormat,

    /// The file to write (replaced if it exists).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    #[command(flatten)]
    filter: RowFilter,
}

const EXAMPLES: &str = "\
Examples:
  # A trace to open in https://ui.perfetto.dev or chrome://tracing
  mmap-analyze export rec/ --format chrome-trace -o trace.json

  # One process's first ten seconds
  mmap-analyze export build.parquet --pid 1234 --until +10s --format chrome-trace -o java.json

  # Every failed call as CSV for a spreadsheet
  mmap-analyze export rec/ --where 'errno IS NOT NULL' --format csv -o failed.csv";

/// What `export` writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// One JSON document in the Trace Event Format (Perfetto UI, chrome://tracing).
    ChromeTrace,
    /// JSON Lines: one object per row, as `events --format json`.
    Jsonl,
    /// CSV with a header line, as `events --format csv`.
    Csv,
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opened = Opened::new(&args.inputs, &args.remote)?;
    export(&opened, &args)?;
    Ok(ExitCode::SUCCESS)
}

fn export(opened: &Opened, args: &Args) -> anyhow::Result<()> {
    // The filter is checked before the output is created: a wrong --where leaves an existing
    // file as it was.
    let query = match args.format {
        ExportFormat::ChromeTrace => {
            rows::all_with_selected(opened.predicate(&args.filter)?.as_deref())
        }
        ExportFormat::Jsonl | ExportFormat::Csv => rows::shown(&opened.where_clause(&args.filter)?),
    };
    let file = File::create(&args.output)
        .with_context(|| format!("creating {}", args.output.display()))?;
    let mut out = BufWriter::with_capacity(1 << 20, file);
    match args.format {
        ExportFormat::ChromeTrace => {
            let origin = opened.span.start();
            let mut trace = Trace::new(&mut out, origin, opened.page_size())?;
            Sorted::new(opened, &query, Order::Effect)?
                .for_each(|event, selected| trace.row(event, selected))?;
            trace.finish()?;
        }
        ExportFormat::Jsonl | ExportFormat::Csv => {
            let format = if args.format == ExportFormat::Csv {
                EventsFormat::Csv
            } else {
                EventsFormat::Json
            };
            let mut sink = Sink::new(format, &mut out)?;
            Sorted::new(opened, &query, Order::Entry)?.for_each(|event, _| {
                sink.write(event)?;
                Ok(())
            })?;
            sink.finish()?;
        }
    }
    let file = out
        .into_inner()
        .map_err(|err| err.into_error())
        .with_context(|| format!("writing {}", args.output.display()))?;
    file.sync_all()
        .with_context(|| format!("writing {}", args.output.display()))?;
    Ok(())
}

/// The name of the counter of mapped bytes.
const MAPPED_BYTES: &str = "mapped bytes";

/// A trace being written: the events so far, the names given to tracks and the replayed
/// address spaces behind the counter.
struct Trace<'w, W: Write> {
    out: &'w mut W,
    /// ns since the epoch of `ts` 0.
    origin: i64,
    /// Whether an event was written (the next one needs a comma before it).
    started: bool,
    /// The name given to each process and thread track.
    process_names: HashMap<u32, String>,
    thread_names: HashMap<(u32, u32), String>,
    /// The counter's last value of each process (the processes on the counter).
    mapped: HashMap<u32, u64>,
    /// The snapshot being applied (pid, ts), whose counter point is written after its last line.
    snapshot: Option<(u32, i64)>,
    replay: Replay,
}

impl<'w, W: Write> Trace<'w, W> {
    fn new(out: &'w mut W, origin: i64, page_size: u64) -> anyhow::Result<Self> {
        out.write_all(b"{\"traceEvents\":[")?;
        Ok(Self {
            out,
            origin,
            started: false,
            process_names: HashMap::new(),
            thread_names: HashMap::new(),
            mapped: HashMap::new(),
            snapshot: None,
            replay: Replay::new(page_size),
        })
    }

    /// Applies `event` to the replayed address spaces and, when it is `selected`, writes it.
    fn row(&mut self, event: &Event<'_>, selected: bool) -> anyhow::Result<()> {
        if let Some((pid, ts)) = self.snapshot
            && (event.kind != RowKind::Snapshot || event.pid != pid || event.ts_ns != ts)
        {
            self.snapshot = None;
            self.count(pid, ts, true)?;
        }
        self.replay.apply(event);
        // A snapshot of a process on the counter moves it once all its lines are applied.
        if event.kind == RowKind::Snapshot && self.mapped.contains_key(&event.pid) {
            self.snapshot = Some((event.pid, event.ts_ns));
        }
        if !selected {
            return Ok(());
        }
        if event.kind != RowKind::Lost {
            self.name_tracks(event)?;
        }
        let ts = self.micros(event.ts_ns);
        let tid = event.tid;
        let pid = event.pid;
        match event.kind {
            RowKind::Syscall => {
                let args = CallArgs::of(event);
                let name = labels::syscall_label(event);
                match labels::duration_ns(event) {
                    Some(dur) => self.event(format_args!(
                        "\"ph\":\"X\",\"cat\":\"syscall\",\"name\":\"{name}\",\"pid\":{pid},\
                         \"tid\":{tid},\"ts\":{ts},\"dur\":{}",
                        micros(dur)
                    ))?,
                    // No duration: the exit was not seen, or the call was recorded at its exit
                    // only (it has a result; `ts` is its exit).
                    None => self.event(format_args!(
                        "\"ph\":\"i\",\"s\":\"t\",\"cat\":\"syscall\",\
                         \"name\":\"{name}{}\",\"pid\":{pid},\"tid\":{tid},\
                         \"ts\":{ts}",
                        if event.ret.is_some() {
                            ""
                        } else {
                            " (exit not seen)"
                        }
                    ))?,
                }
                self.args(&args)?;
            }
            RowKind::Fork | RowKind::Exec | RowKind::Exit => {
                let name = event.kind.as_str();
                self.event(format_args!(
                    "\"ph\":\"i\",\"s\":\"p\",\"cat\":\"lifecycle\",\"name\":\"{name}\",\
                     \"pid\":{pid},\"tid\":{tid},\"ts\":{ts}"
                ))?;
                self.args(&LifecycleArgs {
                    child_pid: event.child_pid,
                    file: labels::file_path_label(event),
                    exit_status: event.exit_code.map(labels::exit_status_label),
                })?;
            }
            RowKind::Lost => {
                self.event(format_args!(
                    "\"ph\":\"i\",\"s\":\"g\",\"cat\":\"lost\",\"name\":\"lost records\",\
                     \"pid\":0,\"tid\":0,\"ts\":{ts}"
                ))?;
                self.args(&LostArgs {
                    count: event.lost_count,
                    cpu: event.cpu,
                    window_us: labels::duration_ns(event).map(|ns| ns as f64 / 1e3),
                })?;
            }
            RowKind::Snapshot | RowKind::Frame | RowKind::Other => return Ok(()),
        }
        self.count_mapped(event)
    }

    /// Names the process and thread tracks of `event` when they are new or renamed (an exec
    /// renames). A process is named after its main thread (tid = pid) when that was seen.
    fn name_tracks(&mut self, event: &Event<'_>) -> anyhow::Result<()> {
        let (pid, tid) = (event.pid, event.tid);
        let comm = event.comm.as_ref();
        let rename_process = match self.process_names.entry(pid) {
            Entry::Vacant(entry) => {
                entry.insert(comm.to_owned());
                true
            }
            Entry::Occupied(mut entry) => {
                let renamed = tid == pid && entry.get() != comm;
                if renamed {
                    entry.insert(comm.to_owned());
                }
                renamed
            }
        };
        if rename_process {
            self.metadata("process_name", pid, pid, comm)?;
        }
        let rename_thread = match self.thread_names.entry((pid, tid)) {
            Entry::Vacant(entry) => {
                entry.insert(comm.to_owned());
                true
            }
            Entry::Occupied(mut entry) => {
                let renamed = entry.get() != comm;
                if renamed {
                    entry.insert(comm.to_owned());
                }
                renamed
            }
        };
        if rename_thread {
            self.metadata("thread_name", pid, tid, comm)?;
        }
        Ok(())
    }

    fn metadata(&mut self, what: &str, pid: u32, tid: u32, name: &str) -> anyhow::Result<()> {
        self.event(format_args!(
            "\"ph\":\"M\",\"name\":\"{what}\",\"pid\":{pid},\"tid\":{tid}"
        ))?;
        self.args(&NameArgs { name })
    }

    /// A point of the counter of mapped bytes of the process(es) `event` changed, at the time
    /// it took effect, when the value changed (or is the first of its process).
    fn count_mapped(&mut self, event: &Event<'_>) -> anyhow::Result<()> {
        let changes = match event.kind {
            RowKind::Syscall => {
                event.syscall.is_some_and(|s| s != Syscall::Mprotect) && !labels::failed(event)
            }
            RowKind::Fork | RowKind::Exec | RowKind::Exit => true,
            _ => false,
        };
        let mut pids = vec![event.pid];
        if let (RowKind::Fork, Some(child)) = (event.kind, event.child_pid) {
            pids.push(child);
        }
        let Some(at) = crate::replay::effect_time(event) else {
            return Ok(());
        };
        for pid in pids {
            self.count(pid, at, changes)?;
        }
        Ok(())
    }

    /// A point of the counter of `pid` at `at` (ns since the epoch) when its value changed, or
    /// when it is the first: `changes` says whether it may have.
    fn count(&mut self, pid: u32, at: i64, changes: bool) -> anyhow::Result<()> {
        if !changes && self.mapped.contains_key(&pid) {
            return Ok(());
        }
        let bytes = self
            .replay
            .process(pid)
            .map_or(0, |process| process.map.bytes());
        if self.mapped.insert(pid, bytes) == Some(bytes) {
            return Ok(());
        }
        let ts = self.micros(at);
        self.event(format_args!(
            "\"ph\":\"C\",\"name\":\"{MAPPED_BYTES}\",\"pid\":{pid},\"tid\":{pid},\"ts\":{ts}"
        ))?;
        self.args(&CounterArgs { bytes })
    }

    fn micros(&self, ts_ns: i64) -> String {
        micros(ts_ns.saturating_sub(self.origin))
    }

    /// Starts an event object with `fields` (which leave it open for `args`).
    fn event(&mut self, fields: std::fmt::Arguments<'_>) -> anyhow::Result<()> {
        let comma = if self.started { "," } else { "" };
        self.started = true;
        write!(self.out, "{comma}\n{{{fields}")?;
        Ok(())
    }

    /// Ends the event object started last with its `args`.
    fn args(&mut self, args: &impl Serialize) -> anyhow::Result<()> {
        self.out.write_all(b",\"args\":")?;
        serde_json::to_writer(&mut *self.out, args)?;
        self.out.write_all(b"}")?;
        Ok(())
    }

    fn finish(mut self) -> anyhow::Result<()> {
        if let Some((pid, ts)) = self.snapshot.take() {
            self.count(pid, ts, true)?;
        }
        let other = OtherData {
            time_origin: labels::rfc3339_ns(self.origin),
            time_origin_ns: self.origin,
            generator: concat!("mmap-analyze ", env!("CARGO_PKG_VERSION")),
        };
        write!(self.out, "\n],\"displayTimeUnit\":\"ns\",\"otherData\":")?;
        serde_json::to_writer(&mut *self.out, &other)?;
        self.out.write_all(b"}\n")?;
        Ok(())
    }
}

/// Nanoseconds as microseconds with three exact decimals (a JSON number): `12.345`.
fn micros(ns: i64) -> String {
    let sign = if ns < 0 { "-" } else { "" };
    let ns = ns.unsigned_abs();
    format!("{sign}{}.{:03}", ns / 1_000, ns % 1_000)
}

#[derive(Serialize)]
struct OtherData {
    time_origin: String,
    time_origin_ns: i64,
    generator: &'static str,
}

#[derive(Serialize)]
struct NameArgs<'a> {
    name: &'a str,
}

#[derive(Serialize)]
struct CounterArgs {
    bytes: u64,
}

#[derive(Serialize)]
struct LostArgs {
    count: Option<u64>,
    cpu: u32,
    #[serde(skip_serializing_if = "Option::is_none")]
    window_us: Option<f64>,
}

#[derive(Serialize)]
struct LifecycleArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    child_pid: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_status: Option<String>,
}

/// The arguments of a call slice: addresses in hex, prot and flags by name.
#[derive(Serialize)]
struct CallArgs {
    #[serde(skip_serializing_if = "Option::is_none")]
    addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    len: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_addr: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    new_len: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    prot: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    flags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    fd: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    off: Option<u64>,
    result: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    file: Option<String>,
}

impl CallArgs {
    fn of(event: &Event<'_>) -> Self {
        let mremap = event.syscall == Some(Syscall::Mremap);
        let fixed = mremap && event.flags.unwrap_or(0) & MREMAP_FIXED != 0;
        Self {
            addr: event.addr.map(labels::hex),
            len: event.len,
            new_addr: event.new_addr.filter(|_| fixed).map(labels::hex),
            new_len: event.new_len.filter(|_| mremap),
            prot: event.prot.map(names::prot_names),
            flags: labels::flags_label(event),
            fd: event.fd,
            off: event.off,
            result: labels::result_label(event),
            file: labels::file_label(event),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn microseconds_keep_every_nanosecond() {
        assert_eq!(micros(0), "0.000");
        assert_eq!(micros(12_345), "12.345");
        assert_eq!(micros(1_000_000_007), "1000000.007");
        assert_eq!(micros(-500), "-0.500");
    }
}
