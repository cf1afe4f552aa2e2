//! `mmap-analyze replay`: the rows in time order as strace-like lines, as fast as possible or
//! paced like the original.

use std::{
    fmt::{self, Write as _},
    io::{self, IsTerminal as _, LineWriter, Write},
    path::PathBuf,
    process::ExitCode,
    thread,
    time::{Duration, Instant},
};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    names,
};

use super::rows::{self, Opened, Order, Sorted};
use crate::{
    engine::filter::RowFilter,
    events::{EventsFormat, RowSink as Sink},
    labels, output,
    replay::MREMAP_FIXED,
    table::visible,
};

/// Play the rows back in time order, as strace-like lines.
///
/// Each system call is one line: when it entered the kernel (HH:MM:SS.nnnnnnnnn, UTC), pid/tid,
/// the thread's name, the call with its arguments decoded (PROT_* and MAP_* names, a mapped
/// file's path after its descriptor as in `strace -y`), its result (an address, or `-1 ENOMEM`)
/// and how long it took in seconds:
///
///   06:01:13.123456789 1234/1235 java mmap(NULL, 4096, PROT_READ|PROT_WRITE,
///   MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f3a2c000000 <0.000012>
///
/// A result `?` is a call whose exit was not seen. Process events are `+++ ... +++` lines (fork,
/// exec, exit with the wait status: `+++ exited with 1 +++`, `+++ killed by SIGSEGV +++`); records
/// the kernel could not deliver are a `!!! ... !!!` warning line where they went missing. Names
/// and paths are untrusted: control characters in them are shown escaped (`\u{1b}`).
///
/// Without --speed the rows are printed as fast as they are read; with --speed X the replay
/// keeps the original pace divided by X (it sleeps until each row's time comes): `--speed 10`
/// plays ten seconds of capture in about one second, `--speed 0.5` at half speed.
///
/// The filter options pick the rows (they combine with AND); when they match nothing, the output
/// is empty and, on a terminal, a note on stderr says so. Rows are sorted by entry time across
/// every input, by the engine, one time slice of about half a million rows at a time (so memory
/// stays bounded and the first lines come out early).
///
/// Exit status: 0 (also when the reader of stdout goes away, as in `| head`, and when nothing
/// matches), 1 when the --where predicate is wrong, 2 on a usage error or an unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Captures written by mmap-recorder: files, directories of segments or quoted globs; also
    /// s3:// and file:// URLs.
    #[arg(value_name = "INPUT", required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,

    #[command(flatten)]
    remote: crate::cli::Remote,

    /// Play at X times the original pace (X > 0; 10 plays a 10 s capture in about 1 s). Without
    /// it, as fast as possible.
    #[arg(long, value_name = "X", value_parser = parse_speed)]
    speed: Option<f64>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ReplayFormat::Text)]
    format: ReplayFormat,

    #[command(flatten)]
    filter: RowFilter,
}

const EXAMPLES: &str = "\
Examples:
  # Everything, as fast as it can be read
  mmap-analyze replay rec/ | less

  # One process at ten times its original speed
  mmap-analyze replay rec/ --pid 1234 --speed 10

  # The failed calls of the last five seconds
  mmap-analyze replay build.parquet --since -5s --where 'errno IS NOT NULL'

  # JSON Lines (the objects of `events --format json`) for jq
  mmap-analyze replay build.parquet --syscall mmap --format json | jq .len";

/// How the rows are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReplayFormat {
    /// strace-like lines.
    Text,
    /// JSON Lines: one object per row, the same objects as `events --format json`.
    Json,
}

fn parse_speed(value: &str) -> Result<f64, String> {
    match value.parse::<f64>() {
        Ok(speed) if speed.is_finite() && speed > 0.0 => Ok(speed),
        Ok(_) => Err(format!("{value:?}: the speed must be a number above 0")),
        Err(err) => Err(format!("{value:?}: {err}")),
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    let opened = Opened::new(&args.inputs, &args.remote)?;
    play(&opened, &args)?;
    Ok(ExitCode::SUCCESS)
}

fn play(opened: &Opened, args: &Args) -> anyhow::Result<()> {
    let where_clause = opened.where_clause(&args.filter)?;
    let rows = Sorted::new(opened, &rows::shown(&where_clause), Order::Entry)?;
    let printed = match args.speed {
        None => {
            let mut out = output::stdout();
            let printed = print(rows, args.format, None, &mut out)?;
            out.flush()?;
            printed
        }
        // Paced lines are seen as they are due: each is flushed at its end.
        Some(speed) => {
            let mut out = LineWriter::new(io::stdout().lock());
            let printed = print(rows, args.format, Some(Pace::new(speed)), &mut out)?;
            out.flush()?;
            printed
        }
    };
    if printed == 0 && args.filter.is_set() && io::stderr().is_terminal() {
        output::note("no row matches the filters");
    }
    Ok(())
}

/// Where the rows go: strace-like lines, or the JSON objects of `events` (the caller flushes).
enum Printer<'w, W: Write> {
    Text(&'w mut W),
    Json(Sink<'w, W>),
}

fn print<W: Write>(
    rows: Sorted<'_>,
    format: ReplayFormat,
    mut pace: Option<Pace>,
    out: &mut W,
) -> anyhow::Result<u64> {
    let mut printed = 0;
    let mut printer = match format {
        ReplayFormat::Text => Printer::Text(&mut *out),
        ReplayFormat::Json => Printer::Json(Sink::new(EventsFormat::Json, &mut *out)?),
    };
    let mut text = String::new();
    rows.for_each(|event, _| {
        if let Some(pace) = &mut pace {
            pace.wait(event.ts_ns);
        }
        match &mut printer {
            Printer::Text(out) => {
                text.clear();
                push_line(&mut text, event);
                text.push('\n');
                out.write_all(text.as_bytes())?;
            }
            Printer::Json(sink) => sink.write(event)?,
        }
        printed += 1;
        Ok(())
    })?;
    if let Printer::Json(sink) = printer {
        sink.finish()?;
    }
    Ok(printed)
}

/// Keeps the original pace, divided by the speed: the first row is printed at once, every
/// later one when its time since the first (divided by the speed) has passed.
struct Pace {
    speed: f64,
    start: Option<(i64, Instant)>,
}

impl Pace {
    fn new(speed: f64) -> Self {
        Self { speed, start: None }
    }

    /// Sleeps until the row at `ts_ns` is due.
    fn wait(&mut self, ts_ns: i64) {
        let (first_ns, started) = *self.start.get_or_insert_with(|| (ts_ns, Instant::now()));
        let after_ns = ts_ns.saturating_sub(first_ns).max(0) as f64 / self.speed;
        // Beyond what a Duration holds (a tiny speed): never due.
        let Ok(after) = Duration::try_from_secs_f64(after_ns / 1e9) else {
            return;
        };
        let Some(due) = started.checked_add(after) else {
            return;
        };
        let now = Instant::now();
        if due > now {
            thread::sleep(due - now);
        }
    }
}

/// One row as a line: time, pid/tid, name, then what happened.
#[cfg(test)]
fn line(event: &Event<'_>) -> String {
    let mut line = String::new();
    push_line(&mut line, event);
    line
}

/// Appends one row as a line to `out`: time, pid/tid, name, then what happened.
fn push_line(out: &mut String, event: &Event<'_>) {
    // Writing into a String cannot fail.
    let _ = write_line(out, event);
}

fn write_line(out: &mut String, event: &Event<'_>) -> fmt::Result {
    write!(
        out,
        "{} {}/{} {} ",
        labels::TimeOfDay(event.ts_ns),
        event.pid,
        event.tid,
        visible(&event.comm)
    )?;
    match event.kind {
        RowKind::Syscall => write_call(out, event),
        RowKind::Fork => write!(out, "+++ forked child {} +++", Unknown(event.child_pid)),
        RowKind::Exec => match labels::file_path_label(event) {
            Some(path) => write!(out, "+++ exec {} +++", visible(&path)),
            None => out.write_str("+++ exec ? +++"),
        },
        RowKind::Exit => match event.exit_code {
            Some(status) => write!(out, "+++ {} +++", exit_words(status)),
            None => out.write_str("+++ exited +++"),
        },
        RowKind::Lost => {
            write!(
                out,
                "!!! {} records lost on cpu {}",
                Unknown(event.lost_count),
                event.cpu
            )?;
            if let Some(ns) = labels::duration_ns(event) {
                write!(out, " over {}", Seconds(ns))?;
            }
            out.write_str(": rows are missing here !!!")
        }
        RowKind::Snapshot | RowKind::Frame | RowKind::Other => {
            write!(out, "--- {} ---", event.kind.as_str())
        }
    }
}

/// `exited with 1`, `killed by SIGSEGV (core dumped)`: strace's words for a wait status.
fn exit_words(status: i32) -> String {
    let label = labels::exit_status_label(status);
    match label.strip_prefix("exit status ") {
        Some(code) => format!("exited with {code}"),
        None => label,
    }
}

/// A value, or `?` when it is not known.
struct Unknown<T>(Option<T>);

impl<T: fmt::Display> fmt::Display for Unknown<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.0 {
            Some(value) => value.fmt(f),
            None => f.write_str("?"),
        }
    }
}

/// An address argument: `NULL` for 0, else hex.
struct Address(Option<u64>);

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(0) => f.write_str("NULL"),
            Some(addr) => write!(f, "{addr:#x}"),
            None => f.write_str("?"),
        }
    }
}

/// A descriptor argument with the mapped file's path after it (`3</usr/lib/libc.so.6>`).
fn write_descriptor(out: &mut String, event: &Event<'_>) -> fmt::Result {
    match (event.fd, labels::file_path_label(event)) {
        (Some(fd), Some(path)) if fd >= 0 => write!(out, "{fd}<{}>", visible(&path)),
        (fd, _) => write!(out, "{}", Unknown(fd)),
    }
}

/// `name(args) = result <seconds>`.
fn write_call(out: &mut String, event: &Event<'_>) -> fmt::Result {
    let prot = |out: &mut String| match event.prot {
        Some(prot) => out.write_str(&names::prot_names(prot)),
        None => out.write_str("?"),
    };
    let flags = |out: &mut String| match labels::flags_label(event) {
        Some(flags) => out.write_str(&flags),
        None => out.write_str("?"),
    };
    let (addr, len) = (Address(event.addr), Unknown(event.len));
    write!(out, "{}(", labels::syscall_label(event))?;
    match event.syscall {
        Some(Syscall::Mmap) => {
            write!(out, "{addr}, {len}, ")?;
            prot(out)?;
            out.write_str(", ")?;
            flags(out)?;
            out.write_str(", ")?;
            write_descriptor(out, event)?;
            write!(out, ", {}", Unknown(event.off))?;
        }
        Some(Syscall::Munmap) => write!(out, "{addr}, {len}")?,
        Some(Syscall::Mprotect) => {
            write!(out, "{addr}, {len}, ")?;
            prot(out)?;
        }
        Some(Syscall::Mremap) => {
            write!(out, "{addr}, {len}, {}, ", Unknown(event.new_len))?;
            flags(out)?;
            if event.flags.unwrap_or(0) & MREMAP_FIXED != 0 {
                write!(out, ", {}", Address(event.new_addr))?;
            }
        }
        Some(Syscall::Brk) => write!(out, "{addr}")?,
        Some(Syscall::Other) | None => {}
    }
    out.write_str(") = ")?;
    match (event.ret, event.errno()) {
        (None, _) => out.write_str("?")?,
        (Some(_), Some(errno)) => write!(out, "-1 {}", labels::errno_label(errno))?,
        (Some(_), None) => match labels::result_label(event) {
            Some(result) => out.write_str(&result)?,
            None => out.write_str("?")?,
        },
    }
    if let Some(ns) = labels::duration_ns(event) {
        write!(out, " <{}>", Seconds(ns))?;
    }
    Ok(())
}

/// Nanoseconds as seconds with six decimals, as strace -T prints them: `0.000012`.
struct Seconds(i64);

impl fmt::Display for Seconds {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let ns = self.0.unsigned_abs();
        write!(
            f,
            "{sign}{}.{:06}",
            ns / 1_000_000_000,
            ns % 1_000_000_000 / 1_000
        )
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    fn mmap() -> Event<'static> {
        Event {
            kind: RowKind::Syscall,
            syscall: Some(Syscall::Mmap),
            ts_ns: 1_795_759_273_123_456_789,
            ts_exit_ns: Some(1_795_759_273_123_468_789),
            pid: 1234,
            tid: 1235,
            comm: Cow::Borrowed("java"),
            addr: Some(0),
            len: Some(4096),
            prot: Some(3),
            flags: Some(0x22),
            fd: Some(-1),
            off: Some(0),
            ret: Some(0x7f3a_2c00_0000),
            ..Default::default()
        }
    }

    #[test]
    fn a_call_reads_like_strace() {
        assert_eq!(
            line(&mmap()),
            "06:01:13.123456789 1234/1235 java mmap(NULL, 4096, PROT_READ|PROT_WRITE, \
             MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f3a2c000000 <0.000012>"
        );
        let failed = Event {
            ret: Some(-12),
            ts_exit_ns: None,
            fd: Some(3),
            file_path: Some(Cow::Borrowed("/tmp/x\u{1b}[2J")),
            comm: Cow::Borrowed("evil\n"),
            ..mmap()
        };
        assert_eq!(
            line(&failed),
            "06:01:13.123456789 1234/1235 evil\\n mmap(NULL, 4096, PROT_READ|PROT_WRITE, \
             MAP_PRIVATE|MAP_ANONYMOUS, 3</tmp/x\\u{1b}[2J>, 0) = -1 ENOMEM"
        );
    }

    #[test]
    fn process_events_and_losses_are_marked() {
        let exit = Event {
            kind: RowKind::Exit,
            syscall: None,
            exit_code: Some(1 << 8),
            ..mmap()
        };
        assert!(line(&exit).ends_with(" java +++ exited with 1 +++"));
        let killed = Event {
            exit_code: Some(11),
            ..exit.clone()
        };
        assert!(line(&killed).ends_with("+++ killed by SIGSEGV +++"));
        let lost = Event {
            kind: RowKind::Lost,
            syscall: None,
            lost_count: Some(17),
            cpu: 2,
            ts_exit_ns: Some(mmap().ts_ns + 1_500_000),
            ..mmap()
        };
        assert!(
            line(&lost)
                .ends_with("!!! 17 records lost on cpu 2 over 0.001500: rows are missing here !!!"),
            "{}",
            line(&lost)
        );
        assert_eq!(Seconds(-1_500).to_string(), "-0.000001");
    }

    #[test]
    fn speed_must_be_above_zero() {
        assert_eq!(parse_speed("10"), Ok(10.0));
        assert!(parse_speed("0").is_err());
        assert!(parse_speed("-1").is_err());
        assert!(parse_speed("inf").is_err());
        assert!(parse_speed("fast").is_err());
    }
}
