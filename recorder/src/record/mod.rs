//! `mmap-recorder record`: load, attach, snapshot, drain, write, report.
use std::{
    collections::VecDeque,
    ffi::OsString,
    io::IsTerminal as _,
    os::{
        fd::{FromRawFd as _, OwnedFd},
        unix::fs::DirBuilderExt as _,
    },
    path::{Path, PathBuf},
    process::ExitCode,
    sync::atomic::Ordering,
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail};
use aya::maps::{MapData, RingBuf};
use clap::{Args, ValueEnum};
use mmap_format::{
    FORMAT_MAJOR, FORMAT_MINOR,
    journal::journal_path,
    metadata::{CaptureMetadata, Counters, FormatVersion, Targets},
    recover,
    writer::WriterConfig,
};
use recorder_common::{
    CgroupTarget, Config, EventKind, MAX_CGROUPS, RECORD_HEADER, RecordHeader, RecordRef, filter,
};
use tokio::{
    io::{Interest, unix::AsyncFd},
    signal::unix::{SignalKind, signal},
};

use crate::{
    btf, cgroups, clock,
    host::HostInfo,
    launch::{self, InvokingUser},
    output, preflight,
    probes::{AttachMode, KernelCounters, Probes},
    sink::{self, Output, Sink, SinkMsg, SinkSetup},
    snapshot,
};

/// How often the drain reads the ring buffer when the kernel has not forced a wakeup.
const DRAIN_INTERVAL: Duration = Duration::from_millis(50);
/// Bytes of records held in user space while the writer is behind before the drain stops
/// reading and lets the kernel count further records as lost.
const MAX_PENDING_BYTES: usize = 64 << 20;

/// `--attach`: how the programs hook the system calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttachArg {
    /// The best mode that works on this kernel: tracepoint, else raw-tracepoint.
    Auto,
    /// syscalls/sys_{enter,exit}_* tracepoints of the five calls (needs tracefs).
    Tracepoint,
    /// Raw sys_enter/sys_exit tracepoints (no tracefs; runs for every system call).
    RawTracepoint,
    /// kprobe + kretprobe on do_mmap: mmap only, including mappings the kernel makes itself
    /// (needs CONFIG_KPROBES).
    Kprobe,
    /// fentry + fexit on do_mmap: as kprobe, through BPF trampolines (needs BTF, BPF JIT and a
    /// kernel without lockdown).
    Fentry,
}

impl From<AttachArg> for Option<AttachMode> {
    fn from(arg: AttachArg) -> Self {
        match arg {
            AttachArg::Auto => None,
            AttachArg::Tracepoint => Some(AttachMode::Tracepoint),
            AttachArg::RawTracepoint => Some(AttachMode::RawTracepoint),
            AttachArg::Kprobe => Some(AttachMode::Kprobe),
            AttachArg::Fentry => Some(AttachMode::Fentry),
        }
    }
}

#[derive(Debug, Args)]
#[command(after_long_help = "\
What is recorded: one row per mmap, munmap, mprotect, mremap and brk call of the targets
(arguments, result, thread, file and its full path), the targets' process lifecycle (fork of a
new process, exec, exit), a snapshot of every target's mappings (/proc/PID/maps) at the start and
after each exec, and the time windows in which records were lost.

Examples:
  sudo mmap-recorder record -o build.parquet -- make -j8
      Start `make -j8` as the invoking user; record it and every process it starts until it exits.
  sudo mmap-recorder record -o db.parquet --pid 1234 --duration 5m
      Record process 1234 (and its new children) for five minutes, or until it exits.
  sudo mmap-recorder record -o web/ --cgroup system.slice/nginx.service --rotate-size 256MiB --keep 8
      Record a service's cgroup into rotating 256 MiB segments, keeping the newest eight.
  sudo mmap-recorder record -o host.parquet
      Record every process on the host until Ctrl-C.

If the recorder is killed, the next start on the same output (or `mmap-analyze recover PATH`)
completes the interrupted capture; at most the last --flush-interval of records is lost.
Then, without root: mmap-analyze summary host.parquet")]
pub struct RecordArgs {
    /// Capture file to write (Parquet, zstd), or a directory (ending in `/`, or existing) for a
    /// capture of rotating segments. Files are created mode 0600, never over an existing file
    /// unless --force.
    #[arg(short, long, value_name = "PATH")]
    pub output: PathBuf,

    /// Record this process (repeatable). Recording stops when all of them have exited.
    #[arg(long = "pid", value_name = "PID")]
    pub pids: Vec<u32>,

    /// Record processes with this command name (as in /proc/PID/comm, at most 15 bytes;
    /// repeatable).
    #[arg(long = "comm", value_name = "NAME")]
    pub comms: Vec<String>,

    /// Record the processes of this cgroup v2 and its descendants, e.g. a container's or a
    /// service's: a path under the cgroup2 mount or relative to it (repeatable, up to 8).
    #[arg(long = "cgroup", value_name = "PATH")]
    pub cgroups: Vec<String>,

    /// Do not follow targets through fork: new processes started by a --pid target or by the
    /// command are not recorded.
    #[arg(long)]
    pub no_follow: bool,

    /// How to hook the system calls.
    #[arg(long, value_enum, default_value_t = AttachArg::Auto)]
    pub attach: AttachArg,

    /// Stop after this long, e.g. 30s, 5m, 1h30m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub duration: Option<Duration>,

    /// Replace PATH if it exists.
    #[arg(long)]
    pub force: bool,

    /// With a directory output: start a new segment once the current one reaches this size,
    /// e.g. 256MiB.
    #[arg(long, value_name = "SIZE")]
    pub rotate_size: Option<bytesize::ByteSize>,

    /// With a directory output: start a new segment after this long, e.g. 10m.
    #[arg(long, value_name = "DURATION", value_parser = humantime::parse_duration)]
    pub rotate_time: Option<Duration>,

    /// With a directory output: keep only the newest N segments (older ones are deleted).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u32).range(1..))]
    pub keep: Option<u32>,

    /// Kernel ring buffer size, e.g. 16MiB (rounded up to a power of two). A larger ring absorbs
    /// longer bursts before records are lost.
    #[arg(long, value_name = "SIZE", default_value = "16MiB")]
    pub ring_size: bytesize::ByteSize,

    /// Longest time records wait in memory before they are written and journaled: the most a
    /// crash of the recorder can lose.
    #[arg(long, value_name = "DURATION", default_value = "1s", value_parser = humantime::parse_duration)]
    pub flush_interval: Duration,

    /// Rows per Parquet row group (also cut at every flush).
    #[arg(long, value_name = "ROWS", default_value_t = 65536)]
    pub row_group_rows: usize,

    /// zstd compression level (1-22).
    #[arg(long, value_name = "LEVEL", default_value_t = 3, value_parser = clap::value_parser!(i32).range(1..=22))]
    pub zstd_level: i32,

    /// Measure the kernel time of each eBPF program (BPF run-time statistics, which cost two
    /// clock reads per run) and print it with the final report: what recording costs the
    /// traced processes, per call.
    #[arg(long)]
    pub prog_stats: bool,

    /// No live progress on stderr (the start line and the final report are always printed).
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

fn output_spec(args: &RecordArgs) -> anyhow::Result<Output> {
    let is_dir = args.output.as_os_str().to_string_lossy().ends_with('/') || args.output.is_dir();
    if !is_dir {
        if args.rotate_size.is_some() || args.rotate_time.is_some() || args.keep.is_some() {
            bail!(
                "--rotate-size, --rotate-time and --keep need a directory output: -o {}/",
                args.output.display()
            );
        }
        return Ok(Output::File(args.output.clone()));
    }
    Ok(Output::Dir {
        dir: args.output.clone(),
        rotate_size: args.rotate_size.map(|s| s.as_u64()),
        rotate_time: args.rotate_time,
        keep: args.keep.map(|k| k as usize),
    })
}

/// Completes captures a killed recorder left at this output (their journals are next to them).
fn recover_leftovers(output: &Output) {
    let candidates: Vec<PathBuf> = match output {
        Output::File(path) => vec![path.clone()],
        Output::Dir { dir, .. } => std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(Result::ok)
                    .map(|e| e.path())
                    .filter_map(|p| {
                        let name = p
                            .file_name()?
                            .to_str()?
                            .strip_suffix(".journal")?
                            .to_owned();
                        Some(p.with_file_name(name))
                    })
                    .collect()
            })
            .unwrap_or_default(),
    };
    for path in candidates {
        if !journal_path(&path).exists() {
            continue;
        }
        match recover::recover(&path) {
            Ok(done) => eprintln!(
                "mmap-recorder: completed the interrupted capture {} ({} rows kept, {} bytes of \
                 an unfinished row group dropped)",
                path.display(),
                done.rows,
                done.bytes_dropped
            ),
            Err(err) => eprintln!("mmap-recorder: could not recover {}: {err}", path.display()),
        }
    }
}

pub fn run(args: RecordArgs) -> anyhow::Result<ExitCode> {
    preflight::check_privileges()?;
    preflight::check_btf(Path::new(btf::VMLINUX_BTF))?;
    let wanted_mode: Option<AttachMode> = args.attach.into();
    let tracefs = match wanted_mode {
        Some(AttachMode::Tracepoint) | Some(AttachMode::Kprobe) => {
            preflight::ensure_tracefs()?;
            true
        }
        None => preflight::ensure_tracefs().is_ok(),
        _ => false,
    };
    for &pid in &args.pids {
        if !Path::new(&format!("/proc/{pid}")).exists() {
            bail!("--pid {pid}: no such process");
        }
    }
    if args.cgroups.len() > MAX_CGROUPS {
        bail!("at most {MAX_CGROUPS} --cgroup targets");
    }
    for comm in &args.comms {
        if comm.is_empty() || comm.len() > 15 {
            bail!("--comm {comm:?}: a command name has 1 to 15 bytes (see /proc/PID/comm)");
        }
    }
    let ring_bytes = ring_size(args.ring_size.as_u64())?;
    let output = output_spec(&args)?;
    recover_leftovers(&output);

    let cgroup_mount = cgroups::cgroup2_mount();
    let mut cgroup_targets = Vec::new();
    for arg in &args.cgroups {
        let mount = cgroup_mount
            .as_deref()
            .context("--cgroup needs cgroup v2, and no cgroup2 file system is mounted")?;
        cgroup_targets.push(cgroups::target(arg, mount)?);
    }

    let user = InvokingUser::from_sudo_env();
    let host = HostInfo::read();
    let capture_id = uuid::Uuid::new_v4().to_string();
    let capture_start_ns = clock::realtime_ns();
    let mut template = CaptureMetadata {
        format_version: FormatVersion {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
        },
        recorder_version: env!("CARGO_PKG_VERSION").to_owned(),
        hostname: host.hostname,
        kernel_release: host.kernel_release,
        boot_id: host.boot_id,
        capture_start_ns,
        capture_end_ns: capture_start_ns,
        targets: Targets {
            system_wide: args.pids.is_empty()
                && args.comms.is_empty()
                && args.cgroups.is_empty()
                && args.command.is_empty(),
            pids: args.pids.clone(),
            command: (!args.command.is_empty()).then(|| {
                args.command
                    .iter()
                    .map(|a| a.to_string_lossy().into_owned())
                    .collect()
            }),
            comms: args.comms.clone(),
            cgroups: cgroup_targets
                .iter()
                .map(|(_, name)| name.clone())
                .collect(),
            follow_forks: !args.no_follow,
        },
        command_line: std::env::args_os()
            .map(|a| a.to_string_lossy().into_owned())
            .collect(),
        capture_id: Some(capture_id),
        segment_index: Some(0),
        page_size: Some(page_size()),
        ..Default::default()
    };

    // The first file now, so that a bad path fails before anything is loaded.
    let first = match &output {
        Output::File(path) => (
            path.clone(),
            output::create_capture(path, args.force, user.as_ref())?,
        ),
        Output::Dir { dir, .. } => {
            if !dir.exists() {
                std::fs::DirBuilder::new()
                    .mode(0o700)
                    .recursive(true)
                    .create(dir)
                    .with_context(|| format!("cannot create {}", dir.display()))?;
                if let Some(user) = &user {
                    std::os::unix::fs::chown(dir, Some(user.uid), Some(user.gid)).with_context(
                        || format!("cannot give {} to uid {}", dir.display(), user.uid),
                    )?;
                }
            }
            let path = dir.join(sink::segment_name(&template, 0));
            let file = output::create_capture(&path, false, user.as_ref())?;
            (path, file)
        }
    };

    // Until the writer owns it, an error removes the new, still empty file.
    let mut cleanup = RemoveOnError(Some(first.0.clone()));

    let own_tgid = std::process::id();
    let mut mode_bits = 0;
    if !args.pids.is_empty() || !args.command.is_empty() {
        mode_bits |= filter::BY_TGID;
    }
    if !args.comms.is_empty() {
        mode_bits |= filter::BY_COMM;
    }
    if !cgroup_targets.is_empty() {
        mode_bits |= filter::BY_CGROUP;
    }
    if !args.no_follow {
        mode_bits |= filter::FOLLOW_FORKS;
    }
    let mut config = Config {
        own_tgid,
        filter: mode_bits,
        wakeup_bytes: u64::from(ring_bytes / 8),
        cgroup_count: cgroup_targets.len() as u32,
        ..Default::default()
    };
    for (slot, (target, _)) in config.cgroups.iter_mut().zip(&cgroup_targets) {
        *slot = CgroupTarget { ..*target };
    }
    let offsets = btf::kernel_offsets(Path::new(btf::VMLINUX_BTF))?;
    let mut probes = Probes::load(&config, &offsets, ring_bytes)?;
    for &pid in &args.pids {
        probes.add_target(pid)?;
    }
    for comm in &args.comms {
        probes.add_comm(comm)?;
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let _runtime_guard = runtime.enter();
    let mut drain = Drain::new(probes.take_ring()?)?;
    let stats_fd = if args.prog_stats {
        Some(crate::probes::enable_run_time_stats().context("enabling BPF run-time statistics")?)
    } else {
        None
    };
    let mode = attach(&mut probes, wanted_mode, tracefs)?;
    template.attach_mode = mode.name().to_owned();

    let anchor = clock::anchor();
    template.clock_anchors = vec![anchor];
    let sink = Sink::spawn(SinkSetup {
        output: output.clone(),
        writer: WriterConfig {
            row_group_rows: args.row_group_rows,
            zstd_level: args.zstd_level,
        },
        flush_interval: args.flush_interval,
        anchor,
        source: mode.name(),
        template: template.clone(),
        owner: user.clone(),
        first: Some(first),
    })?;
    cleanup.0 = None;

    // Snapshots of the targets that already run, after attaching: a change made between the
    // two is both in the snapshot and a row after it, which replay handles.
    let mut cgroup_names = cgroups::CgroupNames::new();
    let snap_pids = start_snapshot_pids(&args, &template.targets, &cgroup_targets);
    let now = clock::realtime_ns();
    for pid in snap_pids {
        if let Ok(rows) = snapshot::take(pid, snapshot::Reason::Start, now, &mut cgroup_names) {
            sink.send(SinkMsg::Rows(rows))?;
        }
    }

    let program = args
        .command
        .first()
        .map(|p| p.to_string_lossy().into_owned());
    let what = describe_targets(&args, program.as_deref(), &template.targets);
    eprintln!(
        "mmap-recorder: recording {what} into {} (attach: {}){}",
        args.output.display(),
        mode.name(),
        if program.is_some() {
            ""
        } else {
            "; Ctrl-C to stop"
        }
    );
    // The command starts last, once everything that can fail has been checked: a held child is
    // never left behind by an early error.
    let child = if args.command.is_empty() {
        None
    } else {
        let pending = launch::spawn_held(&args.command, user.as_ref())?;
        probes.add_target(pending.pid)?;
        Some(pending.release(program.as_deref().unwrap_or_default())?)
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
        &probes,
        &mut cgroup_names,
        &watched,
        child.is_some(),
        args.duration,
        progress.then_some(started),
    ))?;

    let recorded_for = started.elapsed();
    // Shutdown order: stop producing, drain what is left, report pending loss, read counters,
    // close, report.
    let prog_stats = stats_fd.as_ref().map(|_| probes.program_stats());
    drop(stats_fd);
    probes.detach();
    drain.read_all(&sink, &mut cgroup_names, true)?;
    let mut tail = Vec::new();
    for (cpu, window) in probes.pending_loss()? {
        sink::push_frame(&mut tail, &loss_record(cpu, window));
    }
    if !tail.is_empty() {
        sink.send(SinkMsg::Records(tail))?;
    }
    let kernel = probes.counters()?;
    let report = sink.finish(counters(kernel, drain.decode_errors))?;
    if progress {
        eprint!("\r\x1b[2K");
    }
    let lost = kernel.lost_ringbuf_full
        + kernel.entry_map_full
        + drain.decode_errors
        + report.decode_errors;
    let files = match &output {
        Output::File(path) => path.display().to_string(),
        Output::Dir { dir, .. } => format!(
            "{} segment{} in {}{}",
            report.files.len(),
            if report.files.len() == 1 { "" } else { "s" },
            dir.display(),
            if report.removed_segments > 0 {
                format!(" ({} older removed by --keep)", report.removed_segments)
            } else {
                String::new()
            }
        ),
    };
    eprintln!(
        "mmap-recorder: {} records written to {files} ({}), {lost} lost, {} orphan exits, {:.1}s ({})",
        report.rows,
        bytesize::ByteSize::b(report.bytes).display().iec(),
        kernel.orphan_exits,
        recorded_for.as_secs_f64(),
        match &stop {
            Stop::Signal(name) => format!("stopped by {name}"),
            Stop::Duration => "duration reached".to_owned(),
            Stop::TargetsExited => "all targets exited".to_owned(),
            Stop::CommandExited(status) => format!("command exited: {status}"),
        }
    );
    for (name, runs, ns) in prog_stats.unwrap_or_default() {
        eprintln!(
            "mmap-recorder: program {name}: {runs} runs, {:.0} ns per run",
            ns as f64 / runs.max(1) as f64
        );
    }
    Ok(match stop {
        Stop::CommandExited(status) => exit_code(status),
        _ => ExitCode::SUCCESS,
    })
}

/// Removes a file it holds when dropped (on an early return).
struct RemoveOnError(Option<PathBuf>);

impl Drop for RemoveOnError {
    fn drop(&mut self) {
        if let Some(path) = self.0.take() {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// Attaches in the wanted mode, or (auto) in the first mode that works, saying why better
/// modes did not.
fn attach(
    probes: &mut Probes,
    wanted: Option<AttachMode>,
    tracefs: bool,
) -> anyhow::Result<AttachMode> {
    if let Some(mode) = wanted {
        probes.attach(mode)?;
        return Ok(mode);
    }
    let mut failures = Vec::new();
    for mode in AttachMode::AUTO_ORDER {
        if mode == AttachMode::Tracepoint && !tracefs {
            failures.push(format!("{}: tracefs is not available", mode.name()));
            continue;
        }
        match probes.attach(mode) {
            Ok(()) => {
                for failure in &failures {
                    eprintln!("mmap-recorder: --attach auto: not using {failure}");
                }
                return Ok(mode);
            }
            Err(err) => {
                probes.detach();
                failures.push(format!("{}: {err}", mode.name()));
            }
        }
    }
    bail!(
        "no attach mode works on this kernel: {}",
        failures.join("; ")
    )
}

/// The processes to snapshot at the start.
fn start_snapshot_pids(
    args: &RecordArgs,
    targets: &Targets,
    cgroup_targets: &[(CgroupTarget, String)],
) -> Vec<u32> {
    if targets.system_wide {
        return snapshot::all_pids();
    }
    let mut pids = args.pids.clone();
    if !args.comms.is_empty() || !cgroup_targets.is_empty() {
        for pid in snapshot::all_pids() {
            let comm_match = std::fs::read_to_string(format!("/proc/{pid}/comm"))
                .is_ok_and(|c| args.comms.iter().any(|n| n == c.trim_end_matches('\n')));
            let cgroup_match = cgroups::of_pid(pid).is_some_and(|path| {
                cgroup_targets.iter().any(|(_, name)| {
                    name == "/" || path == *name || path.starts_with(&format!("{name}/"))
                })
            });
            if (comm_match || cgroup_match) && !pids.contains(&pid) {
                pids.push(pid);
            }
        }
    }
    pids
}

fn describe_targets(args: &RecordArgs, program: Option<&str>, targets: &Targets) -> String {
    if targets.system_wide {
        return "every process".to_owned();
    }
    let mut parts = Vec::new();
    if let Some(program) = program {
        parts.push(program.to_owned());
    }
    if !args.pids.is_empty() {
        parts.push(format!("pid {}", join(&args.pids)));
    }
    if !args.comms.is_empty() {
        parts.push(format!("comm {}", args.comms.join(", ")));
    }
    if !targets.cgroups.is_empty() {
        parts.push(format!("cgroup {}", targets.cgroups.join(", ")));
    }
    let follow = match (
        targets.follow_forks,
        program.is_some() as usize + args.pids.len(),
    ) {
        (true, 1) => " and its new child processes",
        (true, 2..) => " and their new child processes",
        _ => "",
    };
    format!("{}{follow}", parts.join(" and "))
}

fn join(pids: &[u32]) -> String {
    pids.iter()
        .map(u32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

fn page_size() -> u32 {
    // SAFETY: sysconf has no memory-safety preconditions.
    let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    u32::try_from(size).unwrap_or(4096)
}

fn counters(kernel: KernelCounters, decode_errors: u64) -> Counters {
    Counters {
        emitted: kernel.emitted,
        lost_ringbuf_full: kernel.lost_ringbuf_full,
        orphan_exits: kernel.orphan_exits,
        entry_map_full: kernel.entry_map_full,
        decode_errors,
    }
}

/// A `Lost` record for a loss window still pending in the kernel at the end.
fn loss_record(cpu: u32, window: recorder_common::LossWindow) -> [u8; RECORD_HEADER] {
    let head = RecordHeader {
        event: EventKind::Lost as u16,
        cpu,
        ts_enter_ns: window.first_ns,
        ts_exit_ns: window.last_ns,
        args: [window.count, 0, 0, 0, 0, 0],
        ..Default::default()
    };
    let mut bytes = [0u8; RECORD_HEADER];
    // SAFETY: RecordHeader is #[repr(C)] plain integers of exactly RECORD_HEADER bytes; the
    // destination has that many bytes.
    unsafe {
        std::ptr::copy_nonoverlapping(
            (&raw const head).cast::<u8>(),
            bytes.as_mut_ptr(),
            RECORD_HEADER,
        );
    }
    bytes
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

/// Reads the ring buffer into batches for the writer thread, and snapshots a process as soon as
/// its exec is read.
struct Drain {
    ring: AsyncFd<RingBuf<MapData>>,
    batch: Vec<u8>,
    /// Messages the writer could not take yet, oldest first.
    waiting: VecDeque<SinkMsg>,
    waiting_bytes: usize,
    decode_errors: u64,
}

impl Drain {
    fn new(ring: RingBuf<MapData>) -> anyhow::Result<Self> {
        Ok(Self {
            // SAFETY: the ring buffer owns its descriptor, which stays open as long as the
            // AsyncFd (its owner) lives.
            ring: unsafe { AsyncFd::register_with_interest(ring, Interest::READABLE) }
                .context("watching the ring buffer")?,
            batch: Vec::with_capacity(1 << 20),
            waiting: VecDeque::new(),
            waiting_bytes: 0,
            decode_errors: 0,
        })
    }

    /// Moves everything readable now to the writer. While the writer is behind by more than
    /// MAX_PENDING_BYTES, records stay in the ring (where the kernel counts what no longer fits)
    /// unless `wait` is set.
    fn read_all(
        &mut self,
        sink: &Sink,
        cgroups: &mut cgroups::CgroupNames,
        wait: bool,
    ) -> anyhow::Result<()> {
        loop {
            self.send_waiting(sink, wait)?;
            if self.waiting_bytes >= MAX_PENDING_BYTES {
                return Ok(());
            }
            let mut execs = Vec::new();
            let ring = self.ring.get_mut();
            while self.batch.len() < MAX_PENDING_BYTES / 16 {
                let Some(item) = ring.next() else { break };
                // Only an exec needs a look inside here (the writer thread decodes the rest).
                if item.len() < RECORD_HEADER {
                    self.decode_errors += 1;
                    continue;
                }
                if u16::from_ne_bytes([item[0], item[1]]) == EventKind::Exec as u16
                    && let Some(rec) = RecordRef::decode(&item)
                {
                    execs.push(rec.head.tgid);
                }
                sink::push_frame(&mut self.batch, &item);
            }
            if self.batch.is_empty() {
                return Ok(());
            }
            let full = self.batch.len() >= MAX_PENDING_BYTES / 16;
            let batch = std::mem::replace(&mut self.batch, Vec::with_capacity(1 << 20));
            self.queue(SinkMsg::Records(batch));
            if !execs.is_empty() {
                let now = clock::realtime_ns();
                for pid in execs {
                    // A process that exited already has nothing left to snapshot.
                    if let Ok(rows) = snapshot::take(pid, snapshot::Reason::Exec, now, cgroups) {
                        self.queue(SinkMsg::Rows(rows));
                    }
                }
            }
            self.send_waiting(sink, wait)?;
            if !full {
                return Ok(());
            }
        }
    }

    fn queue(&mut self, msg: SinkMsg) {
        self.waiting_bytes += msg_bytes(&msg);
        self.waiting.push_back(msg);
    }

    fn send_waiting(&mut self, sink: &Sink, wait: bool) -> anyhow::Result<()> {
        while let Some(msg) = self.waiting.pop_front() {
            let bytes = msg_bytes(&msg);
            if wait {
                sink.send(msg)?;
            } else if let Err(msg) = sink.try_send(msg) {
                self.waiting.push_front(msg);
                return Ok(());
            }
            self.waiting_bytes -= bytes;
        }
        Ok(())
    }
}

fn msg_bytes(msg: &SinkMsg) -> usize {
    match msg {
        SinkMsg::Records(batch) => batch.len(),
        SinkMsg::Rows(rows) => rows.len() * 256,
        _ => 0,
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

#[expect(
    clippy::too_many_arguments,
    reason = "the pieces of one recording, borrowed for its loop"
)]
async fn drive(
    drain: &mut Drain,
    sink: &Sink,
    probes: &Probes,
    cgroups: &mut cgroups::CgroupNames,
    watched: &[u32],
    has_child: bool,
    duration: Option<Duration>,
    progress_since: Option<Instant>,
) -> anyhow::Result<Stop> {
    let mut sigint = signal(SignalKind::interrupt()).context("SIGINT handler")?;
    let mut sigterm = signal(SignalKind::terminate()).context("SIGTERM handler")?;
    let mut tick = tokio::time::interval(DRAIN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut status_tick = tokio::time::interval(Duration::from_millis(500));
    let deadline = duration.map(|d| tokio::time::Instant::now() + d);
    let mut pidfds = Vec::new();
    for &pid in watched {
        pidfds.push(pidfd(pid)?);
    }
    let child_pid = has_child.then(|| watched.last().copied()).flatten();
    let mut signals_seen = 0u32;

    loop {
        let all_exited = async {
            // Resolves when every watched process has exited (never when there are none).
            if pidfds.is_empty() {
                std::future::pending::<()>().await;
            }
            for fd in &pidfds {
                let _ = fd.readable().await;
            }
        };
        tokio::select! {
            _ = tick.tick() => drain.read_all(sink, cgroups, false)?,
            guard = drain.ring.readable() => {
                let mut guard = guard.context("ring buffer readiness")?;
                guard.clear_ready();
                drop(guard);
                drain.read_all(sink, cgroups, false)?;
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
            _ = status_tick.tick() => {
                let kernel = probes.counters()?;
                let _ = sink.try_send(SinkMsg::Counters(counters(kernel, drain.decode_errors)));
                if let Some(since) = progress_since {
                    show_progress(since, sink, &kernel);
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

fn show_progress(since: Instant, sink: &Sink, kernel: &KernelCounters) {
    let secs = since.elapsed().as_secs_f64();
    let rows = sink.stats.rows.load(Ordering::Relaxed);
    let bytes = sink.stats.bytes.load(Ordering::Relaxed);
    eprint!(
        "\r\x1b[2Krecording {:>6.1}s  {:>10} records  {:>9.0}/s  {} lost  {} written",
        secs,
        rows,
        rows as f64 / secs.max(0.001),
        kernel.lost_ringbuf_full + kernel.entry_map_full,
        bytesize::ByteSize::b(bytes).display().iec(),
    );
}
