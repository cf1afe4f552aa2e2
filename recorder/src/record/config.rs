//! The checked plan of a recording, built from the command line before any work (as ripgrep turns
//! its flags into a high-level config): every option is validated here, and nothing after this
//! reads the raw arguments.
use std::{ffi::OsString, io::IsTerminal as _, path::Path, time::Duration};

use anyhow::{Context as _, bail};
use mmap_format::{
    FORMAT_MAJOR, FORMAT_MINOR,
    metadata::{CaptureMetadata, FormatVersion, StacksConfig, Targets},
    writer::WriterConfig,
};
use recorder_common::{
    CgroupTarget, Config as KernelConfig, DEFAULT_STACK_BYTES, EventKind, MAX_CGROUPS,
    MAX_STACK_BYTES, MAX_STACK_FRAMES, MIN_STACK_BYTES, filter, stack_mode,
};

use super::args::{RecordArgs, StacksArg};
use crate::{
    btf, cgroups, clock,
    host::HostInfo,
    launch::{self, InvokingUser},
    output::{Output, Partitioning},
    preflight,
    probes::AttachMode,
    stacks::StackMode,
};

/// `--stacks fp|dwarf`, checked.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StackPlan {
    pub mode: StackModeArg,
    /// The calls that get a stack, in the order of [`EventKind::ALL`].
    pub syscalls: Vec<EventKind>,
    /// Dwarf: bytes of user stack copied per call.
    pub stack_bytes: u32,
}

/// How stacks are taken (`--stacks` without `none`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackModeArg {
    Fp,
    Dwarf,
}

impl StackModeArg {
    /// The name in the capture (`mmap_capture.stacks.mode`).
    pub fn name(self) -> &'static str {
        match self {
            Self::Fp => "fp",
            Self::Dwarf => "dwarf",
        }
    }
}

impl From<StackModeArg> for StackMode {
    fn from(mode: StackModeArg) -> Self {
        match mode {
            StackModeArg::Fp => Self::Fp,
            StackModeArg::Dwarf => Self::Dwarf,
        }
    }
}

impl StackPlan {
    /// The kernel's `stack_syscalls` bits.
    pub fn syscall_bits(&self) -> u32 {
        self.syscalls
            .iter()
            .fold(0, |bits, &kind| bits | KernelConfig::stack_bit(kind))
    }

    /// What the capture's metadata says of the plan (`mmap_capture.stacks`).
    pub fn metadata(&self) -> StacksConfig {
        StacksConfig {
            mode: self.mode.name().to_owned(),
            syscalls: self
                .syscalls
                .iter()
                .filter_map(|kind| kind.syscall_name())
                .map(str::to_owned)
                .collect(),
            // fp: what the kernel walks; dwarf: the frames the unwinder takes, the same bound.
            max_frames: MAX_STACK_FRAMES as u32,
            stack_bytes: match self.mode {
                StackModeArg::Fp => 0,
                StackModeArg::Dwarf => self.stack_bytes,
            },
        }
    }
}

/// What a recording will do, checked.
pub struct RecordConfig {
    /// Where the capture goes.
    pub output: Output,
    /// Replace an existing single-file output.
    pub force: bool,
    /// `-- COMMAND`: the program and its arguments (empty: none).
    pub command: Vec<OsString>,
    /// The kernel's side of the --cgroup targets, in the order of `template.targets.cgroups`.
    pub cgroups: Vec<CgroupTarget>,
    /// The attach mode asked for (`None`: auto).
    pub attach: Option<AttachMode>,
    /// Whether tracefs is there for the tracepoint mode.
    pub tracefs: bool,
    /// Kernel ring buffer size in bytes: a power of two, at least a page.
    pub ring_bytes: u32,
    /// Entries of the map of followed processes, when not the compiled-in 16384 (testing).
    pub follow_map_size: Option<u32>,
    pub writer: WriterConfig,
    pub flush_interval: Duration,
    pub duration: Option<Duration>,
    /// Measure and report the programs' kernel run time.
    pub prog_stats: bool,
    /// --no-batches: each record goes to the ring on its own.
    pub no_batches: bool,
    /// `--stacks`: the calls that get a user call stack, and how (`None`: no stacks).
    pub stacks: Option<StackPlan>,
    /// Live progress on stderr (not --quiet, and stderr is a terminal).
    pub progress: bool,
    /// The user behind sudo, doas or pkexec, who owns the files (`None`: root).
    pub user: Option<InvokingUser>,
    /// The user `-- COMMAND` runs as: --user, else `user` (`None`: root).
    pub command_user: Option<InvokingUser>,
    /// The metadata every segment starts from (host, targets, command line, ...); the attach
    /// mode and the clock anchor are filled in once known.
    pub template: CaptureMetadata,
}

impl RecordConfig {
    /// Checks the options and the machine, in the order a user fixes them: privileges, kernel
    /// features, targets (the command among them), sizes, output.
    pub fn check(args: RecordArgs) -> anyhow::Result<Self> {
        preflight::check_privileges()?;
        preflight::check_btf(Path::new(btf::VMLINUX_BTF))?;
        let attach: Option<AttachMode> = args.attach.into();
        let tracefs = tracefs_for(attach)?;
        check_pids_and_comms(&args)?;
        let user = InvokingUser::from_launcher_env()?;
        let command_user = match &args.user {
            None => user.clone(),
            Some(_) if args.command.is_empty() => bail!("--user needs a command after --"),
            Some(name) => {
                let named = InvokingUser::named(name).with_context(|| format!("--user {name}"))?;
                (named.uid != 0).then_some(named)
            }
        };
        launch::check_command(&args.command, command_user.as_ref())?;
        let stacks = stack_plan(&args)?;
        let ring_default = match stacks.as_ref().map(|plan| plan.mode) {
            Some(StackModeArg::Dwarf) => 64 << 20,
            _ => 16 << 20,
        };
        let ring_bytes = ring_size(args.ring_size.map_or(ring_default, |size| size.as_u64()))?;
        let output = output(&args)?;
        let (cgroups, cgroup_names) = cgroup_targets(&args.cgroups)?;
        let template = template(&args, cgroup_names, stacks.as_ref());
        Ok(Self {
            output,
            force: args.force,
            command: args.command,
            cgroups,
            attach,
            tracefs,
            ring_bytes,
            follow_map_size: args.follow_map_size,
            writer: WriterConfig {
                row_group_rows: args.row_group_rows,
                zstd_level: args.zstd_level,
            },
            flush_interval: args.flush_interval,
            duration: args.duration,
            prog_stats: args.prog_stats,
            no_batches: args.no_batches,
            stacks,
            progress: !args.quiet && std::io::stderr().is_terminal(),
            user,
            command_user,
            template,
        })
    }

    pub fn targets(&self) -> &Targets {
        &self.template.targets
    }

    /// The program of `-- COMMAND`, as messages name it.
    pub fn program(&self) -> Option<String> {
        self.command
            .first()
            .map(|p| p.to_string_lossy().into_owned())
    }

    /// What the eBPF programs are told: our own tgid (never recorded), which filters apply, when
    /// to wake the drain, and the cgroup targets.
    pub fn kernel_config(&self) -> KernelConfig {
        let targets = self.targets();
        let mut bits = 0;
        if !targets.pids.is_empty() || !self.command.is_empty() {
            bits |= filter::BY_TGID;
        }
        if !targets.comms.is_empty() {
            bits |= filter::BY_COMM;
        }
        if !self.cgroups.is_empty() {
            bits |= filter::BY_CGROUP;
        }
        if targets.follow_forks {
            bits |= filter::FOLLOW_FORKS;
        }
        let mut config = KernelConfig {
            own_tgid: std::process::id(),
            filter: bits,
            wakeup_bytes: u64::from(self.ring_bytes / 8),
            cgroup_count: self.cgroups.len() as u32,
            ..Default::default()
        };
        for (slot, target) in config.cgroups.iter_mut().zip(&self.cgroups) {
            *slot = CgroupTarget { ..*target };
        }
        config.stack_bytes = DEFAULT_STACK_BYTES as u32;
        if let Some(plan) = &self.stacks {
            config.stack_mode = match plan.mode {
                StackModeArg::Fp => stack_mode::FP,
                StackModeArg::Dwarf => stack_mode::DWARF,
            };
            config.stack_syscalls = plan.syscall_bits();
            config.stack_bytes = plan.stack_bytes;
        }
        config
    }
}

/// Whether tracefs can be used: the tracepoint and kprobe modes need it (mounted if it is not),
/// auto uses it when it can.
fn tracefs_for(attach: Option<AttachMode>) -> anyhow::Result<bool> {
    Ok(match attach {
        Some(AttachMode::Tracepoint | AttachMode::TracepointExit | AttachMode::Kprobe) => {
            preflight::ensure_tracefs()?;
            true
        }
        None => preflight::ensure_tracefs().is_ok(),
        Some(
            AttachMode::RawTracepoint
            | AttachMode::TpBtf
            | AttachMode::TpBtfExit
            | AttachMode::Fentry,
        ) => false,
    })
}

/// `--stacks`, `--stacks-for` and `--stack-bytes`, checked against each other and `--attach`.
pub(super) fn stack_plan(args: &RecordArgs) -> anyhow::Result<Option<StackPlan>> {
    let mode = match args.stacks {
        StacksArg::None => {
            if !args.stacks_for.is_empty() || args.stack_bytes.is_some() {
                bail!("--stacks-for and --stack-bytes need --stacks fp or --stacks dwarf");
            }
            return Ok(None);
        }
        StacksArg::Fp => StackModeArg::Fp,
        StacksArg::Dwarf => StackModeArg::Dwarf,
    };
    if let Some(AttachMode::Kprobe | AttachMode::Fentry) = args.attach.into() {
        bail!(
            "--stacks needs --attach tracepoint, tracepoint-exit, raw-tracepoint, tp-btf or tp-btf-exit \
             (or auto): the kprobe and \
             fentry modes hook do_mmap, which the kernel also calls for itself, and take no user \
             stacks"
        );
    }
    let stack_bytes = match (mode, args.stack_bytes) {
        (StackModeArg::Fp, Some(_)) => bail!("--stack-bytes is for --stacks dwarf"),
        (_, None) => DEFAULT_STACK_BYTES as u32,
        (StackModeArg::Dwarf, Some(bytes)) => {
            let range = MIN_STACK_BYTES as u32..=MAX_STACK_BYTES as u32;
            if !range.contains(&bytes) || !bytes.is_multiple_of(8) {
                bail!(
                    "--stack-bytes {bytes}: a multiple of 8 from {MIN_STACK_BYTES} to \
                     {MAX_STACK_BYTES}"
                );
            }
            bytes
        }
    };
    let wanted: Vec<EventKind> = args.stacks_for.iter().map(|&c| c.into()).collect();
    let syscalls = EventKind::ALL
        .iter()
        .copied()
        .filter(|kind| kind.syscall_name().is_some())
        .filter(|kind| wanted.is_empty() || wanted.contains(kind))
        .collect();
    Ok(Some(StackPlan {
        mode,
        syscalls,
        stack_bytes,
    }))
}

fn check_pids_and_comms(args: &RecordArgs) -> anyhow::Result<()> {
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
    Ok(())
}

/// The kernel needs a power of two that is a multiple of the page size.
fn ring_size(requested: u64) -> anyhow::Result<u32> {
    let size = requested.max(4096).next_power_of_two();
    u32::try_from(size)
        .ok()
        .filter(|&s| s <= 1 << 30)
        .with_context(|| format!("--ring-size {requested} is too large (at most 1GiB)"))
}

/// A directory output (ending in `/`, or existing) rotates; a file output does not.
fn output(args: &RecordArgs) -> anyhow::Result<Output> {
    let is_dir = args.output.as_os_str().to_string_lossy().ends_with('/') || args.output.is_dir();
    if !is_dir {
        if args.rotate_size.is_some() || args.rotate_time.is_some() || args.keep.is_some() {
            bail!(
                "--rotate-size, --rotate-time and --keep need a directory output: -o {}/",
                args.output.display()
            );
        }
        if !args.partition.is_empty() {
            bail!(
                "--partition writes partition directories, so it needs a directory output: -o \
                 {}/",
                args.output.display()
            );
        }
        return Ok(Output::File(args.output.clone()));
    }
    let mut keys = Vec::new();
    for &key in &args.partition {
        if keys.contains(&key) {
            bail!("--partition names {} twice", key.as_str());
        }
        keys.push(key);
    }
    let clock_offset_ns = args
        .partition_clock_offset
        .unwrap_or(0)
        .checked_mul(1_000_000_000)
        .context("--partition-clock-offset is too large")?;
    Ok(Output::Dir {
        dir: args.output.clone(),
        rotate_size: args.rotate_size.map(|s| s.as_u64()),
        rotate_time: args.rotate_time,
        keep: args.keep.map(|k| k as usize),
        partition: Partitioning {
            keys,
            clock_offset_ns,
        },
    })
}

/// The --cgroup targets: the kernel's (id, level) and the path recorded in the metadata.
fn cgroup_targets(args: &[String]) -> anyhow::Result<(Vec<CgroupTarget>, Vec<String>)> {
    if args.is_empty() {
        return Ok(Default::default());
    }
    let mount = cgroups::cgroup2_mount()
        .context("--cgroup needs cgroup v2, and no cgroup2 file system is mounted")?;
    args.iter()
        .map(|arg| cgroups::target(arg, &mount))
        .collect()
}

/// The metadata common to every segment of the capture.
fn template(
    args: &RecordArgs,
    cgroups: Vec<String>,
    stacks: Option<&StackPlan>,
) -> CaptureMetadata {
    let host = HostInfo::read();
    let capture_start_ns = clock::realtime_ns();
    let lossy = |a: &OsString| a.to_string_lossy().into_owned();
    CaptureMetadata {
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
            command: (!args.command.is_empty()).then(|| args.command.iter().map(lossy).collect()),
            comms: args.comms.clone(),
            cgroups,
            follow_forks: !args.no_follow,
        },
        command_line: std::env::args_os().map(|a| lossy(&a)).collect(),
        capture_id: Some(uuid::Uuid::new_v4().to_string()),
        segment_index: Some(0),
        page_size: Some(host.page_size),
        stacks: stacks.map(StackPlan::metadata),
        ..Default::default()
    }
}
