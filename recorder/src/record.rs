//! `mmap-recorder record`: load, attach, drain, write, report.
use std::{
    ffi::OsString,
    io::IsTerminal as _,
    os::fd::{FromRawFd as _, OwnedFd},
    path::{Path, PathBuf},
    process::ExitCode,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::maps::{MapData, RingBuf};
use clap::Args;
use mmap_format::{
    FORMAT_MAJOR, FORMAT_MINOR,
    metadata::{CaptureMetadata, Counters, FormatVersion, Targets},
    writer::WriterConfig,
};
use recorder_common::SyscallRecord;
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    btf, clock,
    host::HostInfo,
    launch::{self, InvokingUser},
    output, preflight,
    probes::{ProbeConfig, Probes},
    sink::Sink,
};

/// How often the drain reads the ring buffer when the kernel has not forced a wakeup.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// Records held in user space while the writer is behind before the drain stops reading and lets
/// the kernel count further records as lost.
const MAX_PENDING: usize = 1 << 16;

#[derive(Debug, Args)]
#[command(after_long_help = "\
Examples:
  sudo mmap-recorder record -o build.parquet -- make -j8
      Start `make -j8` as the invoking user and record its mmap calls until it exits.
  sudo mmap-recorder record -o db.parquet --pid 1234 --duration 5m
      Record process 1234 for five minutes (or until it exits).
  sudo mmap-recorder record -o host.parquet
      Record every process on the host until Ctrl-C.

Then, without root: mmap-analyze summary host.parquet")]
pub struct RecordArgs {
    /// Capture file to write (Parquet, zstd). Created mode 0600, never over an existing file
    /// unless --force.
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,

    /// Record only this process (repeatable). Recording stops when all of them have exited.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Stop after this long, e.g. 30s, 5m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Replace PATH if it exists.
    #[arg(long)]
    pub force: bool,

    /// Kernel ring buffer size, e.g. 16MiB (rounded up to a power of two). A larger ring absorbs
    /// longer bursts before records are lost.
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub ring_size: bytesize::ByteSize,

    /// Longest time records wait in memory before they are written to the file.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,

    /// Rows per Parquet row group (also cut at every flush).
    #[arg(long, value_name = "ROWS", default_value_t = 65536)]
    pub row_group_rows: usize,

    /// zstd compression level (1-22).
    #[arg(long, value_name = "LEVEL", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,

    /// No live progress on stderr (the final report is always printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Command to start and record until it exits (after `--`); runs as the invoking user under
    /// sudo. Its exit status becomes the recorder's.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}

/// Why recording stopped.
enum Stop {
    Signal(&'static str),
    Duration,
    TargetsExited,
    CommandExited(std::process::ExitStatus),
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    preflight::check_privileges()?;
    preflight::check_btf(Path::new(btf::VMLINUX_BTF))?;
    preflight::ensure_tracefs()?;
    for &pid in &args.pids {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("--pid {pid}: no such process");
        }
    }
    let ring_bytes = ring_size(args.ring_size.as_u64())?;

    let user = InvokingUser::from_sudo_env();
    let file = output::create_capture(&args.output, args.force, user.as_ref())?;
    let offsets = btf::kernel_offsets(Path::new(btf::VMLINUX_BTF))?;
    let host = HostInfo::read();
    let own_tgid = std::process::id();
    let targets_only = !args.pids.is_empty() || !args.command.is_empty();

    let mut probes = Probes::load(&ProbeConfig {
        own_tgid,
        targets_only,
        ring_bytes,
        wakeup_bytes: u64::from(ring_bytes / 8),
        offsets,
    })?;
    for &pid in &args.pids {
        probes.add_target(pid)?;
    }
    let pending_child = if args.command.is_empty() {
        None
    } else {
        let pending = launch::spawn_held(&args.command, user.as_ref())?;
        probes.add_target(pending.pid)?;
        Some(pending)
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _runtime_guard = runtime.enter();
    let mut drain = Drain::new(probes.take_ring()?)?;
    probes.attach()?;

    let anchor = clock::anchor();
    let capture_start_ns = clock::realtime_ns();
    let sink = Sink::spawn(
        file,
        WriterConfig {
            row_group_rows: args.row_group_rows,
            zstd_level: args.zstd_level,
        },
        anchor,
        args.flush_interval,
    )?;

    let program = args
        .command
        .first()
        .map(|p| p.to_string_lossy().into_owned());
    let what = match (&program, args.pids.as_slice()) {
        (Some(program), []) => program.clone(),
        (Some(program), pids) => format!("{program} and pid {}", join(pids)),
        (None, []) => "every process".to_owned(),
        (None, pids) => format!("pid {}", join(pids)),
    };
    eprintln!(
        "mmap-recorder: recording mmap calls of {what} into {} (attach: tracepoint){}",
        args.output.display(),
        if program.is_some() {
            ""
        } else {
            "; Ctrl-C to stop"
        }
    );
    let mut child = match pending_child {
        Some(pending) => Some(pending.release(program.as_deref().unwrap_or_default())?),
        None => None,
    };
    let mut watched: Vec<u32> = args.pids.clone();
    if let Some(child) = &child {
        watched.push(child.id());
    }

    let started = Instant::now();
    let progress = !args.quiet && std::io::stderr().is_terminal();
    let stop = runtime.block_on(drive(
        &mut drain,
        &sink,
        &watched,
        child.is_some(),
        args.duration,
        progress.then_some(started),
    ))?;

    // Shutdown order: stop producing, drain what is left, read counters, close, report.
    probes.detach();
    drain.read_all(&sink, true)?;
    let kernel = probes.counters()?;
    let capture_end_ns = clock::realtime_ns();
    let exit_status = match (&stop, child.as_mut()) {
        (Stop::CommandExited(status), _) => Some(*status),
        (_, Some(child)) => {
            // Stopped by a signal or the duration while the command still runs: leave it be.
            let _ = child.try_wait();
            None
        }
        _ => None,
    };

    let metadata = CaptureMetadata {
        format_version: FormatVersion {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
        },
        recorder_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: host.hostname,
        kernel_release: host.kernel_release,
        boot_id: host.boot_id,
        clock_anchors: vec![anchor, clock::anchor()],
        capture_start_ns,
        capture_end_ns,
        targets: Targets {
            system_wide: !targets_only,
            pids: args.pids.clone(),
            command: (!args.command.is_empty()).then(|| {
                args.command
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            }),
        },
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        attach_mode: "tracepoint".to_owned(),
        counters: Counters {
            emitted: kernel.emitted,
            lost_ringbuf_full: kernel.lost_ringbuf_full,
            orphan_exits: kernel.orphan_exits,
            entry_map_full: kernel.entry_map_full,
            decode_errors: drain.decode_errors,
        },
    };
    let report = sink.finish(metadata)?;
    if progress {
        eprint!("\r\x1b[2K");
    }
    let lost = kernel.lost_ringbuf_full
        + kernel.entry_map_full
        + drain.decode_errors
        + report.decode_errors;
    eprintln!(
        "mmap-recorder: {} records written to {} ({}), {} lost, {} orphan exits, {:.1}s ({})",
        report.rows,
        args.output.display(),
        bytesize::ByteSize::b(report.bytes).display().iec(),
        lost,
        kernel.orphan_exits,
        started.elapsed().as_secs_f64(),
        match &stop {
            Stop::Signal(name) => format!("stopped by {name}"),
            Stop::Duration => "duration reached".to_owned(),
            Stop::TargetsExited => "all targets exited".to_owned(),
            Stop::CommandExited(status) => format!("command exited: {status}"),
        }
    );
    Ok(match exit_status {
        Some(status) => exit_code(status),
        None => ExitCode::SUCCESS,
    })
}

fn join(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The shell's convention: the command's code, or 128 + signal.
fn exit_code(status: std::process::ExitStatus) -> ExitCode {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => ExitCode::from(code as u8),
        (None, Some(sig)) => ExitCode::from(128u8.wrapping_add(sig as u8)),
        _ => ExitCode::FAILURE,
    }
}

/// The kernel needs a power of two that is a multiple of the page size.
fn ring_size(requested: u64) -> anyhow::Result<u32> {
    let size = requested.max(4096).next_power_of_two();
    u32::try_from(size)
        .ok()
        .filter(|&s| s <= 1 << 30)
        .with_context(|| format!("--ring-size {requested} is too large (at most 1GiB)"))
}

/// Reads the ring buffer into batches for the writer thread.
struct Drain {
    ring: AsyncFd<RingBuf<MapData>>,
    pending: Vec<SyscallRecord>,
    decode_errors: u64,
}

impl Drain {
    fn new(ring: RingBuf<MapData>) -> anyhow::Result<Self> {
        Ok(Self {
            // SAFETY: the ring buffer owns its descriptor, which stays open as long as the
            // AsyncFd (its owner) lives.
            ring: unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .context("watching the ring buffer")?,
            pending: Vec::with_capacity(4096),
            decode_errors: 0,
        })
    }

    /// Moves everything readable now to the writer. While the writer is behind, records stay in
    /// the ring (where the kernel counts what no longer fits) unless `wait` is set.
    fn read_all(&mut self, sink: &Sink, wait: bool) -> anyhow::Result<()> {
        loop {
            if self.pending.len() < MAX_PENDING {
                let ring = self.ring.get_mut();
                while self.pending.len() < MAX_PENDING {
                    let Some(item) = ring.next() else { break };
                    match SyscallRecord::from_bytes(&item) {
                        Some(rec) => self.pending.push(rec),
                        None => self.decode_errors += 1,
                    }
                }
            }
            if self.pending.is_empty() {
                return Ok(());
            }
            let batch = std::mem::take(&mut self.pending);
            let more = batch.len() >= MAX_PENDING;
            if wait {
                sink.send(batch)?;
            } else if let Err(back) = sink.try_send(batch) {
                self.pending = back;
                return Ok(());
            }
            if !more {
                return Ok(());
            }
        }
    }
}

/// A pidfd that becomes readable when the process exits.
fn pidfd(pid: u32) -> anyhow::Result<AsyncFd<OwnedFd>> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
    if fd < 0 {
        return Err(std::io::Error::last_os_error()).with_context(|| format!("pidfd_open({pid})"));
    }
    // SAFETY: fd is a new descriptor owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd as i32) };
    // SAFETY: the OwnedFd is moved into the AsyncFd and stays open as long as it lives.
    unsafe { AsyncFd::register_with_interest(fd, Interest::READABLE) }
        .context("watching a target process")
}

async fn drive(
    drain: &mut Drain,
    sink: &Sink,
    watched: &[u32],
    has_child: bool,
    duration: Option<Duration>,
    progress_since: Option<Instant>,
) -> anyhow::Result<Stop> {
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut progress_tick = tokio::time::interval(Duration::from_millis(500));
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut pidfds = Vec::new();
    for &pid in watched {
        pidfds.push((pid, pidfd(pid)?));
    }
    let child_pid = has_child.then(|| watched.last().copied()).flatten();
    let mut signals_seen = 0u32;

    loop {
        let all_exited = async {
            // Resolves when every watched process has exited (never when there are none).
            if pidfds.is_empty() {
                std::future::pending::<()>().await;
            }
            for (_, fd) in &pidfds {
                let _ = fd.readable().await;
            }
        };
        tokio::select! {
            _ = tick.tick() => drain.read_all(sink, false)?,
            guard = drain.ring.readable() => {
                let mut guard = guard.context("ring buffer readiness")?;
                guard.clear_ready();
                drop(guard);
                drain.read_all(sink, false)?;
            }
            _ = sigint.recv() => {
                signals_seen += 1;
                // With a command, the terminal's Ctrl-C reached it too: keep recording until it
                // exits; a second signal stops at once.
                if child_pid.is_none() || signals_seen > 1 {
                    return Ok(Stop::Signal("SIGINT"));
                }
            }
            _ = sigterm.recv() => {
                signals_seen += 1;
                match child_pid {
                    Some(pid) if signals_seen == 1 => {
                        // SAFETY: kill has no memory-safety preconditions.
                        unsafe { libc::kill(pid as libc::pid_t, libc::SIGTERM) };
                    }
                    _ => return Ok(Stop::Signal("SIGTERM")),
                }
            }
            _ = async { tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)).await }, if deadline.is_some() => {
                return Ok(Stop::Duration);
            }
            _ = all_exited => {
                if let Some(pid) = child_pid {
                    let status = reap(pid)?;
                    return Ok(Stop::CommandExited(status));
                }
                return Ok(Stop::TargetsExited);
            }
            _ = progress_tick.tick(), if progress_since.is_some() => {
                if let Some(since) = progress_since {
                    show_progress(since, sink);
                }
            }
        }
    }
}

/// Waits for an exited child and returns its status.
fn reap(pid: u32) -> anyhow::Result<std::process::ExitStatus> {
    use std::os::unix::process::ExitStatusExt as _;
    let mut status = 0;
    // SAFETY: waitpid writes the status into a valid local.
    let rc = unsafe { libc::waitpid(pid as libc::pid_t, &mut status, 0) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error()).context("waiting for the command");
    }
    Ok(std::process::ExitStatus::from_raw(status))
}

fn show_progress(since: Instant, sink: &Sink) {
    let secs = since.elapsed().as_secs_f64();
    let rows = sink.stats.rows.load(Ordering::Relaxed);
    let bytes = sink.stats.bytes.load(Ordering::Relaxed);
    eprint!(
        "\r\x1b[2Krecording {:>6.1}s  {:>10} records  {:>9.0}/s  {} written",
        secs,
        rows,
        rows as f64 / secs.max(0.001),
        bytesize::ByteSize::b(bytes).display().iec(),
    );
}
