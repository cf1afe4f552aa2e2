//! The command line of `record`: the raw options as clap parses them (their doc comments are the
//! help text). [`super::config`] checks them and turns them into a plan.
use std::{ffi::OsString, path::PathBuf, time::Duration};

use clap::{Args, ValueEnum};
use mmap_format::partition::PartitionKey;
use recorder_common::EventKind;

use crate::probes::AttachMode;

/// `--attach`: how the programs hook the system calls.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum AttachArg {
    /// The best mode that works on this kernel: tracepoint, else tp-btf, else raw-tracepoint.
    Auto,
    /// syscalls/sys_{enter,exit}_* tracepoints of the five calls (needs tracefs).
    Tracepoint,
    /// The sys_exit_* tracepoints only: each call is recorded at its exit, its arguments read
    /// from the registers. One program run a call instead of two: measured 40-60 % less cost
    /// than tracepoint for the processes not recorded and about a fifth less for recorded ones,
    /// but the calls have no duration (ts_exit and dur_ns are null) and their time is their
    /// exit (needs tracefs).
    TracepointExit,
    /// Raw sys_enter/sys_exit tracepoints (no tracefs; runs for every system call).
    RawTracepoint,
    /// BTF-typed sys_enter/sys_exit tracepoints (tp_btf; needs BTF, no tracefs): the registers
    /// read with plain loads and no perf trace buffer per call. Measured: a recorded mmap+munmap
    /// pair ~115 ns cheaper than tracepoint, but they run for every system call of the host, so
    /// every other call pays ~30 ns more than under tracepoint.
    TpBtf,
    /// The BTF-typed sys_exit tracepoint only: as tracepoint-exit (no durations), on the tp_btf
    /// sys_exit: the cheapest mode for a recorded process (a pair ~50 ns cheaper than
    /// tracepoint-exit), but every other system call of the host pays ~20 ns more.
    TpBtfExit,
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
            AttachArg::TracepointExit => Some(AttachMode::TracepointExit),
            AttachArg::RawTracepoint => Some(AttachMode::RawTracepoint),
            AttachArg::TpBtf => Some(AttachMode::TpBtf),
            AttachArg::TpBtfExit => Some(AttachMode::TpBtfExit),
            AttachArg::Kprobe => Some(AttachMode::Kprobe),
            AttachArg::Fentry => Some(AttachMode::Fentry),
        }
    }
}

/// `--stacks`: whether and how each recorded call's user call stack is taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum StacksArg {
    /// No stacks (the cheapest).
    None,
    /// The kernel walks the user stack by frame pointers (bpf_get_stack), up to 127 frames:
    /// about 1 µs more kernel time per call than none, and 40 + 8 bytes per frame in the ring,
    /// but frames of code built without frame pointers (most distribution libraries; build
    /// yours with -C force-frame-pointers=yes or -fno-omit-frame-pointer) are skipped or wrong.
    /// The caller of the libc wrapper, which a frame-pointer walk misses, is recovered.
    Fp,
    /// The kernel copies the registers and the top of the user stack (--stack-bytes, 8 KiB by
    /// default) with each call, and the recorder unwinds it from the binaries' .eh_frame, as
    /// `perf record --call-graph dwarf` does: works without frame pointers, but costs the
    /// traced process about 1-2 µs more kernel time per call, each record grows by that many
    /// bytes (hundreds of MB/s under a tight loop of calls: see --ring-size, --stacks-for), and
    /// the recorder spends CPU unwinding.
    Dwarf,
}

/// A system call of the family, as `--stacks-for` names it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum SyscallArg {
    Mmap,
    Munmap,
    Mprotect,
    Mremap,
    Brk,
}

impl From<SyscallArg> for EventKind {
    fn from(arg: SyscallArg) -> Self {
        match arg {
            SyscallArg::Mmap => Self::Mmap,
            SyscallArg::Munmap => Self::Munmap,
            SyscallArg::Mprotect => Self::Mprotect,
            SyscallArg::Mremap => Self::Mremap,
            SyscallArg::Brk => Self::Brk,
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
    /// capture of rotating segments, each linked to the one before by its SHA-256 and listed in
    /// the capture's manifest (`mmap-START-ID.manifest.json`), so that `mmap-analyze verify DIR`
    /// can prove the capture whole. Files are created mode 0600, never over an existing file
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

    /// Replace PATH if it is an existing capture file (or its journal, or an empty file); a
    /// directory, symlink, device or any other file is never replaced.
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

    /// With a directory output: write each segment in Hive-style partition directories,
    /// `DIR/host=H/date=YYYY-MM-DD/`, for the keys given, in that order (host, date, or both,
    /// comma-separated). `host` is the host name the capture records (characters that cannot
    /// be in a directory name, and `=`, `%` and a leading `.`, are written %XX, as Hive does);
    /// `date` is the UTC day the segment starts. With `date`, a new segment also starts at
    /// midnight UTC, so that no segment holds two days. The manifest stays in DIR.
    /// mmap-analyze reads such a tree as one capture, with the keys as columns.
    #[arg(long, value_name = "KEYS", value_delimiter = ',')]
    pub partition: Vec<PartitionKey>,

    /// Testing only: seconds added to the clock when --partition decides a day, so that a test
    /// crosses midnight in seconds.
    #[arg(long, value_name = "SECONDS", hide = true, allow_hyphen_values = true)]
    pub partition_clock_offset: Option<i64>,

    /// Record each call's user call stack (which code made it), stored once per distinct stack
    /// and named (function, file:line) while the binaries are there. Needs a syscall attach
    /// mode (tracepoint, tracepoint-exit, tp-btf, tp-btf-exit, raw-tracepoint; auto picks one).
    #[arg(long, value_enum, default_value_t = StacksArg::None)]
    pub stacks: StacksArg,

    /// With --stacks: only these calls get a stack (comma-separated; default all five).
    #[arg(long, value_name = "CALLS", value_delimiter = ',', value_enum)]
    pub stacks_for: Vec<SyscallArg>,

    /// With --stacks dwarf: bytes of user stack copied per call, a multiple of 8 from 1024 to
    /// 16384 (default 8192). Deep call chains with large frames need more; a copy that reaches
    /// past the end of the stack is retried at half the size, a few times.
    #[arg(long, value_name = "BYTES")]
    pub stack_bytes: Option<u32>,

    /// Kernel ring buffer size, e.g. 16MiB (rounded up to a power of two). A larger ring absorbs
    /// longer bursts before records are lost; it counts in the recorder's resident memory (about
    /// 35 MiB besides it at full rate). Default 16MiB, 64MiB with --stacks dwarf (whose records
    /// carry --stack-bytes each).
    #[arg(long, value_name = "SIZE")]
    pub ring_size: Option<bytesize::ByteSize>,

    /// Testing only: entries of the kernel map of followed processes (the targets and their
    /// live descendants), normally 16384. A small map lets a test fill it with a few processes
    /// to check that the children it cannot take are counted (`follow_map_full`).
    #[arg(long, value_name = "N", hide = true, value_parser = clap::value_parser!(u32).range(1..))]
    pub follow_map_size: Option<u32>,

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

    /// Send every record to the ring buffer on its own. By default the records of calls with no
    /// path and no stack wait in a batch per CPU (32 at most) that goes to the ring as one item,
    /// flushed at every drain tick (50 ms): one ring reservation per batch instead of per call.
    #[arg(long)]
    pub no_batches: bool,

    /// No live progress on stderr (the start line and the final report are always printed).
    #[arg(short, long)]
    pub quiet: bool,

    /// Run COMMAND as this user (a name or uid of the passwd database), with its groups and its
    /// HOME, USER, LOGNAME, SHELL and MAIL. Default: the user who started the recorder through
    /// sudo (SUDO_UID), doas (DOAS_USER) or pkexec (PKEXEC_UID), else root. The capture files
    /// still belong to the user who started the recorder.
    #[arg(long, value_name = "NAME|UID")]
    pub user: Option<String>,

    /// Command to start and record until it exits (after `--`); runs as the invoking user under
    /// sudo, doas or pkexec (see --user), never with their SUDO_*, DOAS_USER or PKEXEC_UID
    /// variables; the recorder says which user runs it. Its exit status becomes the recorder's.
    #[arg(last = true, value_name = "COMMAND")]
    pub command: Vec<OsString>,
}
