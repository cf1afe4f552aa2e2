//! Loading the eBPF object, attaching its programs in one of the attach modes, and reading and
//! writing its maps.
use std::{path::Path, sync::Arc};

use aya::{
    Btf, Ebpf, EbpfLoader,
    maps::{Array, HashMap, MapData, PerCpuArray},
    programs::{
        BtfTracePoint, FEntry, FExit, KProbe, ProgramError, RawTracePoint, RawTracePointRunOptions,
        TestRun as _, TracePoint,
    },
};
use mmap_format::{event::sources, metadata::Counters};
use recorder_common::{
    BATCH_RECORDS, COMM_LEN, Config, KernelOffsets, LossWindow, RECORD_HEADER, counters, recording,
};

use crate::ring::Ring;

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mmap-recorder-ebpf"));

/// How the syscall programs are attached.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AttachMode {
    /// syscalls/sys_{enter,exit}_{mmap,munmap,mprotect,mremap,brk}: only the family's calls run
    /// the programs.
    Tracepoint,
    /// syscalls/sys_exit_* only: each call is recorded at its exit, its arguments read from the
    /// user registers; half the program runs of `Tracepoint`, but no entry time (no duration).
    TracepointExit,
    /// raw sys_enter/sys_exit: every system call runs the programs, which filter by number.
    RawTracepoint,
    /// BTF-typed sys_enter/sys_exit (tp_btf): as `RawTracepoint`, with the registers read by
    /// plain loads (needs BTF).
    TpBtf,
    /// BTF-typed sys_exit only: as `TracepointExit`, on the tp_btf sys_exit (needs BTF).
    TpBtfExit,
    /// kprobe + kretprobe on do_mmap: also mappings the kernel makes itself (exec).
    Kprobe,
    /// fentry + fexit on do_mmap (BPF trampolines): the cheapest hook, also kernel mappings.
    Fentry,
}

impl AttachMode {
    /// The name used in captures (`mmap_capture.attach_mode`), which is also the `source` of the
    /// rows the mode records.
    pub fn name(self) -> &'static str {
        match self {
            Self::Tracepoint => sources::TRACEPOINT,
            Self::TracepointExit => sources::TRACEPOINT_EXIT,
            Self::RawTracepoint => sources::RAW_TRACEPOINT,
            Self::TpBtf => sources::TP_BTF,
            Self::TpBtfExit => sources::TP_BTF_EXIT,
            Self::Kprobe => sources::KPROBE,
            Self::Fentry => sources::FENTRY,
        }
    }

    /// What `--attach auto` tries, best first: the syscall tracepoints fire only for the family's
    /// calls; the BTF-typed and raw sys_enter/sys_exit tracepoints need no tracefs but run for
    /// every system call (the BTF-typed ones read the registers with plain loads, the raw ones
    /// through probe reads). The exit-only modes record no durations, so they are chosen
    /// explicitly, as are kprobe and fentry: they hook do_mmap, a different set of events (mmap
    /// only, including mappings the kernel makes itself).
    pub const AUTO_ORDER: [Self; 3] = [Self::Tracepoint, Self::TpBtf, Self::RawTracepoint];
}

/// Syscall tracepoints (program, tracepoint) of the tracepoint mode.
const SYSCALL_TRACEPOINTS: &[(&str, &str)] = &[
    ("sys_enter_mmap", "sys_enter_mmap"),
    ("sys_enter_munmap", "sys_enter_munmap"),
    ("sys_enter_mprotect", "sys_enter_mprotect"),
    ("sys_enter_mremap", "sys_enter_mremap"),
    ("sys_enter_brk", "sys_enter_brk"),
    ("sys_exit_mm", "sys_exit_mmap"),
    ("sys_exit_mm", "sys_exit_munmap"),
    ("sys_exit_mm", "sys_exit_mprotect"),
    ("sys_exit_mm", "sys_exit_mremap"),
    ("sys_exit_mm", "sys_exit_brk"),
];

/// Syscall tracepoints (program, tracepoint) of the exit-only mode: one program at every exit.
const EXIT_TRACEPOINTS: &[(&str, &str)] = &[
    ("sys_exit_only", "sys_exit_mmap"),
    ("sys_exit_only", "sys_exit_munmap"),
    ("sys_exit_only", "sys_exit_mprotect"),
    ("sys_exit_only", "sys_exit_mremap"),
    ("sys_exit_only", "sys_exit_brk"),
];

/// Process lifecycle raw tracepoints, attached in every mode.
const LIFECYCLE: &[(&str, &str)] = &[
    ("sched_process_fork", "sched_process_fork"),
    ("sched_process_exec", "sched_process_exec"),
    ("sched_process_exit", "sched_process_exit"),
];

/// The programs' task-local storage map (recorder-ebpf `TASKS`).
const TASK_STORAGE_MAP: &str = "TASKS";

/// The error of loading the object: a kernel that cannot create the task-local storage map is
/// named as such.
fn object_error(e: aya::EbpfError) -> ProbeError {
    match &e {
        aya::EbpfError::MapError(aya::maps::MapError::CreateError { name, .. })
            if name == TASK_STORAGE_MAP =>
        {
            ProbeError::NoTaskStorage(Box::new(e))
        }
        _ => ProbeError::Load(Box::new(e)),
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error(
        "this kernel cannot create the programs' per-thread state: BPF task-local storage \
         (BPF_MAP_TYPE_TASK_STORAGE, Linux 5.11 or later, with BTF) is missing: {0}"
    )]
    NoTaskStorage(#[source] Box<aya::EbpfError>),
    #[error("eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("loading program {program} into the kernel failed: {source}")]
    ProgramLoad {
        program: &'static str,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("attaching program {program} to {point} failed: {source}")]
    Attach {
        program: &'static str,
        point: String,
        #[source]
        source: Box<ProgramError>,
    },
    /// A mode this kernel cannot do, with the missing feature named (only kprobe and fentry,
    /// whose `--attach` values are their names).
    #[error("--attach {}: {reason}", mode.name())]
    Unsupported { mode: AttachMode, reason: String },
    /// `--attach auto` found no mode that works; each candidate with its failure.
    #[error("no attach mode works on this kernel: {}", failures.join("; "))]
    NoAttachMode { failures: Vec<String> },
    /// Running the flush program on a CPU (BPF_PROG_TEST_RUN) failed.
    #[error("running {FLUSH_PROGRAM} on CPU {cpu} failed: {source}")]
    Flush {
        cpu: u32,
        #[source]
        source: Box<ProgramError>,
    },
    #[error("mapping the ring buffer: {source}")]
    RingMap {
        #[source]
        source: std::io::Error,
    },
    #[error("eBPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

impl ProbeError {
    fn map(map: &'static str) -> impl FnOnce(aya::maps::MapError) -> Self {
        move |source| Self::Map {
            map,
            source: Box::new(source),
        }
    }
}

/// Loaded programs with their maps.
pub struct Probes {
    ebpf: Ebpf,
    attached: Vec<&'static str>,
    /// Taken out of the object so that the writer thread can read it too.
    counters: Arc<KernelCounters>,
    /// The CPUs whose batches [`Probes::flush_batches`] sends; empty when batches are off
    /// (the flush program could not be run, see [`Probes::enable_batches`]).
    batch_cpus: Vec<u32>,
}

/// The program that sends the waiting records of the CPU it runs on; never attached.
const FLUSH_PROGRAM: &str = "flush_batches";

/// A CPU's `BATCH` value as user space reads it: the count of waiting records and the busy
/// flag (one u64 on this little-endian target, the count in its low half), then the headers.
type BatchWords = [u64; 1 + BATCH_RECORDS * RECORD_HEADER / 8];

/// The kernel side's per-CPU counters (the `COUNTERS` map), read by the drain and by the writer
/// thread, which counts each segment's share.
pub struct KernelCounters(PerCpuArray<MapData, u64>);

impl KernelCounters {
    const MAP: &str = "COUNTERS";

    /// Current sums over the CPUs (`decode_errors` is user space's to count, and 0 here).
    pub fn read(&self) -> Result<Counters, ProbeError> {
        let sum = |index: u32| -> Result<u64, ProbeError> {
            Ok(self
                .0
                .get(&index, 0)
                .map_err(ProbeError::map(Self::MAP))?
                .iter()
                .sum())
        };
        Ok(Counters {
            emitted: sum(counters::EMITTED)?,
            lost_ringbuf_full: sum(counters::LOST_RINGBUF_FULL)?,
            orphan_exits: sum(counters::ORPHAN_EXIT)?,
            entry_map_full: sum(counters::ENTRY_MAP_FULL)?,
            decode_errors: 0,
            follow_map_full: sum(counters::FOLLOW_MAP_FULL)?,
        })
    }
}

impl Probes {
    /// Loads the object with `config` baked into its globals, the ring of `ring_bytes` and, when
    /// given, a map of followed processes of `follow_map_size` entries.
    pub fn load(
        config: &Config,
        offsets: &KernelOffsets,
        ring_bytes: u32,
        follow_map_size: Option<u32>,
    ) -> Result<Self, ProbeError> {
        let mut loader = EbpfLoader::new();
        loader
            .override_global("CONFIG", config, true)
            .override_global("OFFSETS", offsets, true)
            .map_max_entries("EVENTS", ring_bytes)
            // The programs' per-thread state (TASKS) is task-local storage, which aya 0.14 creates
            // but has no user-space type for; user space never reads it.
            .allow_unsupported_maps();
        if let Some(entries) = follow_map_size {
            loader.map_max_entries("TARGET_TGIDS", entries);
        }
        let mut ebpf = loader.load(EBPF_OBJECT).map_err(object_error)?;
        const MAP: &str = KernelCounters::MAP;
        let map = ebpf.take_map(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let counters = PerCpuArray::try_from(map).map_err(ProbeError::map(MAP))?;
        Ok(Self {
            ebpf,
            attached: Vec::new(),
            counters: Arc::new(KernelCounters(counters)),
            batch_cpus: Vec::new(),
        })
    }

    /// Turns recording on (once every program is attached) or off (before they are detached):
    /// the programs record nothing while it is off.
    pub fn set_recording(&mut self, on: bool) -> Result<(), ProbeError> {
        const MAP: &str = "RECORDING";
        let map = self.ebpf.map_mut(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let mut switch: Array<_, u32> = Array::try_from(map).map_err(ProbeError::map(MAP))?;
        let value = match (on, self.batch_cpus.is_empty()) {
            (false, _) => recording::OFF,
            (true, true) => recording::ON,
            (true, false) => recording::ON | recording::BATCHES,
        };
        switch.set(0, value, 0).map_err(ProbeError::map(MAP))
    }

    /// Turns per-CPU batches on for the next [`Probes::set_recording`]: loads the flush program
    /// and runs it once on every online CPU. Batches stay off when that fails (running a
    /// program on a chosen CPU, BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU, needs Linux 5.10):
    /// records would then wait in a quiet CPU's batch until the end. Returns whether they are on.
    pub fn enable_batches(&mut self) -> bool {
        let Ok(cpus) = aya::util::online_cpus() else {
            return false;
        };
        let loaded = self
            .program::<RawTracePoint>(FLUSH_PROGRAM)
            .and_then(|prog| prog.load().map_err(load_error(FLUSH_PROGRAM)));
        if loaded.is_err() {
            return false;
        }
        self.batch_cpus = cpus;
        if self.run_flush(true).is_err() {
            self.batch_cpus.clear();
        }
        !self.batch_cpus.is_empty()
    }

    /// Sends the records waiting in the CPUs' batches to the ring, running the flush program on
    /// each CPU whose batch holds records (an IPI to each; the `WAITING` map says which, and
    /// every CPU is flushed when it cannot be read). The drain calls it at every tick, so that
    /// the records of a CPU that went quiet wait no longer than that, and a quiet CPU is left
    /// alone. A CPU that fails (it went offline: its records wait for the end) does not stop
    /// the others; the first failure is returned. Returns the CPUs it ran on.
    pub fn flush_batches(&self) -> Result<Vec<u32>, ProbeError> {
        self.run_flush(false)
    }

    /// Runs the flush program on every CPU of `batch_cpus` (`every`), or on those marked
    /// waiting; see [`Probes::flush_batches`].
    fn run_flush(&self, every: bool) -> Result<Vec<u32>, ProbeError> {
        if self.batch_cpus.is_empty() {
            return Ok(Vec::new());
        }
        let Some(aya::programs::Program::RawTracePoint(prog)) = self.ebpf.program(FLUSH_PROGRAM)
        else {
            return Err(ProbeError::MissingProgram(FLUSH_PROGRAM));
        };
        // Which CPUs' batches hold records, as the kernel side marked them (`WAITING`); every
        // CPU when the map cannot be read.
        let marks = if every {
            None
        } else {
            self.per_cpu::<u32>("WAITING").ok()
        };
        let waiting = |cpu: u32| match &marks {
            Some(marks) => marks.get(cpu as usize).is_none_or(|&m| m != 0),
            None => true,
        };
        let mut first_failure = Ok(());
        let mut ran = Vec::new();
        for cpu in self.batch_cpus.iter().copied().filter(|&cpu| waiting(cpu)) {
            ran.push(cpu);
            let mut opts = RawTracePointRunOptions::new();
            opts.cpu = Some(cpu);
            if let Err(source) = prog.test_run(opts)
                && first_failure.is_ok()
            {
                first_failure = Err(ProbeError::Flush {
                    cpu,
                    source: Box::new(source),
                });
            }
        }
        first_failure.map(|()| ran)
    }

    /// The records still waiting in the CPUs' batches, each CPU's as one ring item (read after
    /// the programs are detached, when nothing changes them any more).
    pub fn waiting_batches(&self) -> Result<Vec<Vec<u8>>, ProbeError> {
        if self.batch_cpus.is_empty() {
            return Ok(Vec::new());
        }
        Ok(self
            .per_cpu::<BatchWords>("BATCH")?
            .iter()
            .filter_map(|words| {
                let n = (words[0] as u32 as usize).min(BATCH_RECORDS);
                let headers = words[1..].iter().take(n * RECORD_HEADER / 8);
                let item: Vec<u8> = headers.flat_map(|w| w.to_ne_bytes()).collect();
                (!item.is_empty()).then_some(item)
            })
            .collect())
    }

    /// Adds a process to the target set.
    pub fn add_target(&mut self, tgid: u32) -> Result<(), ProbeError> {
        const MAP: &str = "TARGET_TGIDS";
        let map = self.ebpf.map_mut(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let mut targets: HashMap<_, u32, u8> =
            HashMap::try_from(map).map_err(ProbeError::map(MAP))?;
        targets.insert(tgid, 1, 0).map_err(ProbeError::map(MAP))?;
        // The kernel side caches its answers per CPU until the set changes: element 1 of
        // TARGETS_CHANGED counts user space's changes (this is its only writer).
        const CHANGED: &str = "TARGETS_CHANGED";
        let map = self
            .ebpf
            .map_mut(CHANGED)
            .ok_or(ProbeError::MissingMap(CHANGED))?;
        let mut changed: Array<_, u64> = Array::try_from(map).map_err(ProbeError::map(CHANGED))?;
        let count = changed.get(&1, 0).map_err(ProbeError::map(CHANGED))?;
        changed
            .set(1, count.wrapping_add(1), 0)
            .map_err(ProbeError::map(CHANGED))
    }

    /// Adds a command name (as in /proc/PID/comm, at most 15 bytes) to the target set.
    pub fn add_comm(&mut self, comm: &str) -> Result<(), ProbeError> {
        const MAP: &str = "TARGET_COMMS";
        let map = self.ebpf.map_mut(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let mut comms: HashMap<_, [u8; COMM_LEN], u8> =
            HashMap::try_from(map).map_err(ProbeError::map(MAP))?;
        comms
            .insert(comm_key(comm), 1, 0)
            .map_err(ProbeError::map(MAP))
    }

    /// Takes the ring buffer out of the object (once), mapped for reading.
    pub fn take_ring(&mut self) -> Result<Ring, ProbeError> {
        const MAP: &str = "EVENTS";
        let map = self.ebpf.take_map(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let aya::maps::Map::RingBuf(data) = map else {
            return Err(ProbeError::RingMap {
                source: std::io::Error::other(format!("{MAP} is not a ring buffer")),
            });
        };
        Ring::new(data).map_err(|source| ProbeError::RingMap { source })
    }

    /// Loads and attaches the programs of `mode` and the lifecycle programs.
    pub fn attach(&mut self, mode: AttachMode) -> Result<(), ProbeError> {
        match mode {
            AttachMode::Tracepoint => self.attach_syscall_tracepoints(SYSCALL_TRACEPOINTS)?,
            AttachMode::TracepointExit => self.attach_syscall_tracepoints(EXIT_TRACEPOINTS)?,
            AttachMode::RawTracepoint => {
                for (program, point) in
                    [("raw_sys_enter", "sys_enter"), ("raw_sys_exit", "sys_exit")]
                {
                    let prog: &mut RawTracePoint = self.program(program)?;
                    prog.load().map_err(load_error(program))?;
                    prog.attach(point)
                        .map_err(attach_error(program, format!("raw tracepoint {point}")))?;
                    self.attached.push(program);
                }
            }
            AttachMode::TpBtf => self.attach_btf_tracepoints(
                mode,
                &[("btf_sys_enter", "sys_enter"), ("btf_sys_exit", "sys_exit")],
            )?,
            AttachMode::TpBtfExit => {
                self.attach_btf_tracepoints(mode, &[("btf_sys_exit_only", "sys_exit")])?
            }
            AttachMode::Kprobe => {
                // Load first: the verifier checks the programs even where they cannot attach.
                for program in ["kprobe_do_mmap", "kretprobe_do_mmap"] {
                    let prog: &mut KProbe = self.program(program)?;
                    prog.load().map_err(load_error(program))?;
                }
                if !kprobes_available() {
                    return Err(ProbeError::Unsupported {
                        mode: AttachMode::Kprobe,
                        reason: "this kernel has no kprobes (CONFIG_KPROBES is not set: \
                                 /sys/kernel/tracing/kprobe_events is missing); use \
                                 --attach tracepoint"
                            .to_owned(),
                    });
                }
                for program in ["kprobe_do_mmap", "kretprobe_do_mmap"] {
                    let prog: &mut KProbe = self.program(program)?;
                    prog.attach("do_mmap", 0)
                        .map_err(|source| kprobe_error(program, source))?;
                    self.attached.push(program);
                }
            }
            AttachMode::Fentry => {
                let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Unsupported {
                    mode: AttachMode::Fentry,
                    reason: format!("needs the kernel's BTF: {e}"),
                })?;
                let entry: &mut FEntry = self.program("fentry_do_mmap")?;
                entry
                    .load("do_mmap", &btf)
                    .map_err(|source| fentry_error("fentry_do_mmap", source))?;
                entry
                    .attach()
                    .map_err(|source| fentry_error("fentry_do_mmap", source))?;
                self.attached.push("fentry_do_mmap");
                let exit: &mut FExit = self.program("fexit_do_mmap")?;
                exit.load("do_mmap", &btf)
                    .map_err(|source| fentry_error("fexit_do_mmap", source))?;
                exit.attach()
                    .map_err(|source| fentry_error("fexit_do_mmap", source))?;
                self.attached.push("fexit_do_mmap");
            }
        }
        for &(program, point) in LIFECYCLE {
            let prog: &mut RawTracePoint = self.program(program)?;
            prog.load().map_err(load_error(program))?;
            prog.attach(point)
                .map_err(attach_error(program, format!("raw tracepoint {point}")))?;
            self.attached.push(program);
        }
        Ok(())
    }

    /// Loads each (program, tracepoint) pair's program once and attaches it to
    /// syscalls/tracepoint.
    fn attach_syscall_tracepoints(
        &mut self,
        pairs: &[(&'static str, &'static str)],
    ) -> Result<(), ProbeError> {
        for &(program, name) in pairs {
            let prog: &mut TracePoint = self.program(program)?;
            if prog.fd().is_err() {
                prog.load().map_err(load_error(program))?;
            }
            prog.attach("syscalls", name)
                .map_err(attach_error(program, format!("tracepoint syscalls/{name}")))?;
            self.attached.push(program);
        }
        Ok(())
    }

    /// Loads each (program, tracepoint) pair's program of `mode` as a BTF-typed tracepoint
    /// (tp_btf) of that tracepoint and attaches it.
    fn attach_btf_tracepoints(
        &mut self,
        mode: AttachMode,
        pairs: &[(&'static str, &'static str)],
    ) -> Result<(), ProbeError> {
        let btf = Btf::from_sys_fs().map_err(|e| ProbeError::Unsupported {
            mode,
            reason: format!("needs the kernel's BTF (/sys/kernel/btf/vmlinux): {e}"),
        })?;
        for &(program, point) in pairs {
            let prog: &mut BtfTracePoint = self.program(program)?;
            prog.load(point, &btf).map_err(load_error(program))?;
            prog.attach()
                .map_err(attach_error(program, format!("tp_btf {point}")))?;
            self.attached.push(program);
        }
        Ok(())
    }

    /// Attaches in the `wanted` mode, or (auto, `None`) in the first mode of
    /// [`AttachMode::AUTO_ORDER`] that works, saying why better modes did not.
    pub fn attach_chosen(
        &mut self,
        wanted: Option<AttachMode>,
        tracefs: bool,
    ) -> Result<AttachMode, ProbeError> {
        if let Some(mode) = wanted {
            self.attach(mode)?;
            return Ok(mode);
        }
        let mut failures = Vec::new();
        for mode in AttachMode::AUTO_ORDER {
            if mode == AttachMode::Tracepoint && !tracefs {
                failures.push(format!("{}: tracefs is not available", mode.name()));
                continue;
            }
            match self.attach(mode) {
                Ok(()) => {
                    for failure in &failures {
                        say!("mmap-recorder: --attach auto: not using {failure}");
                    }
                    return Ok(mode);
                }
                Err(err) => {
                    self.detach();
                    failures.push(format!("{}: {err}", mode.name()));
                }
            }
        }
        Err(ProbeError::NoAttachMode { failures })
    }

    fn program<'a, P>(&'a mut self, name: &'static str) -> Result<&'a mut P, ProbeError>
    where
        &'a mut P: TryFrom<&'a mut aya::programs::Program, Error = ProgramError>,
    {
        self.ebpf
            .program_mut(name)
            .ok_or(ProbeError::MissingProgram(name))?
            .try_into()
            .map_err(load_error(name))
    }

    /// Unloads every attached program (dropping their links): no new records are produced
    /// after this returns.
    pub fn detach(&mut self) {
        for name in std::mem::take(&mut self.attached) {
            use aya::programs::Program;
            let _ = match self.ebpf.program_mut(name) {
                Some(Program::TracePoint(p)) => p.unload(),
                Some(Program::RawTracePoint(p)) => p.unload(),
                Some(Program::BtfTracePoint(p)) => p.unload(),
                Some(Program::KProbe(p)) => p.unload(),
                Some(Program::FEntry(p)) => p.unload(),
                Some(Program::FExit(p)) => p.unload(),
                _ => Ok(()),
            };
        }
    }

    /// (program, runs, total run time in ns) of every attached program; the kernel counts run
    /// time only while statistics are enabled (see [`enable_run_time_stats`]).
    pub fn program_stats(&self) -> Vec<(&'static str, u64, u64)> {
        let mut names = self.attached.clone();
        names.dedup();
        names
            .into_iter()
            .filter_map(|name| {
                let info = self.ebpf.program(name)?.info().ok()?;
                Some((name, info.run_count(), info.run_time().as_nanos() as u64))
            })
            .collect()
    }

    /// Current sums of the kernel's per-CPU counters.
    pub fn counters(&self) -> Result<Counters, ProbeError> {
        self.counters.read()
    }

    /// The counters, for the writer thread.
    pub fn shared_counters(&self) -> Arc<KernelCounters> {
        Arc::clone(&self.counters)
    }

    /// Element 0 of the per-CPU array `map`, as every CPU has it.
    fn per_cpu<T: aya::Pod>(
        &self,
        map: &'static str,
    ) -> Result<aya::maps::PerCpuValues<T>, ProbeError> {
        let data = self.ebpf.map(map).ok_or(ProbeError::MissingMap(map))?;
        let array: PerCpuArray<_, T> = PerCpuArray::try_from(data).map_err(ProbeError::map(map))?;
        array.get(&0, 0).map_err(ProbeError::map(map))
    }

    /// Loss windows not yet reported in-band, by CPU (read after the programs are detached).
    pub fn pending_loss(&self) -> Result<Vec<(u32, LossWindow)>, ProbeError> {
        Ok(self
            .per_cpu::<LossWindow>("LOSS")?
            .iter()
            .enumerate()
            .filter(|(_, w)| w.count > 0)
            .map(|(cpu, w)| (cpu as u32, *w))
            .collect())
    }
}

/// Turns on the kernel's run-time accounting of BPF programs while the returned descriptor is
/// open (BPF_ENABLE_STATS; it costs two clock reads per program run).
pub fn enable_run_time_stats() -> Result<std::os::fd::OwnedFd, aya::sys::SyscallError> {
    aya::sys::enable_stats(aya::sys::Stats::RunTime)
}

/// A command name as the kernel stores it: at most 15 bytes, NUL padded.
pub fn comm_key(comm: &str) -> [u8; COMM_LEN] {
    let mut key = [0u8; COMM_LEN];
    let bytes = comm.as_bytes();
    let n = bytes.len().min(COMM_LEN - 1);
    key[..n].copy_from_slice(&bytes[..n]);
    key
}

fn load_error(program: &'static str) -> impl FnOnce(ProgramError) -> ProbeError {
    move |source| ProbeError::ProgramLoad {
        program,
        source: Box::new(source),
    }
}

fn attach_error(program: &'static str, point: String) -> impl FnOnce(ProgramError) -> ProbeError {
    move |source| ProbeError::Attach {
        program,
        point,
        source: Box::new(source),
    }
}

/// Kprobes exist when tracefs (or debugfs) offers kprobe_events.
pub fn kprobes_available() -> bool {
    [
        "/sys/kernel/tracing/kprobe_events",
        "/sys/kernel/debug/tracing/kprobe_events",
    ]
    .iter()
    .any(|p| Path::new(p).exists())
}

fn kprobe_error(program: &'static str, source: ProgramError) -> ProbeError {
    ProbeError::Unsupported {
        mode: AttachMode::Kprobe,
        reason: format!(
            "attaching {program} to do_mmap failed ({source}); the kernel needs CONFIG_KPROBES=y \
             and do_mmap must not be inlined or blacklisted"
        ),
    }
}

/// The errno at the bottom of an error's source chain, if any.
fn os_error(err: &(dyn std::error::Error + 'static)) -> Option<i32> {
    let mut cur: Option<&(dyn std::error::Error + 'static)> = Some(err);
    while let Some(e) = cur {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && let Some(code) = io.raw_os_error()
        {
            return Some(code);
        }
        cur = e.source();
    }
    None
}

/// The clear message for fentry/fexit failures: on locked-down kernels BPF trampolines are
/// refused with EPERM even to root.
fn fentry_error(program: &'static str, source: ProgramError) -> ProbeError {
    let text = source.to_string();
    let eperm = os_error(&source) == Some(libc::EPERM);
    let lockdown = std::fs::read_to_string("/sys/kernel/security/lockdown")
        .ok()
        .and_then(|s| {
            s.split_whitespace()
                .find(|w| w.starts_with('['))
                .map(|w| w.trim_matches(['[', ']']).to_owned())
        });
    let reason = if eperm {
        format!(
            "the kernel refused {program} (EPERM): fentry/fexit need BPF trampolines \
             (BPF_PROG_TYPE_TRACING), which kernel lockdown forbids{}; use --attach tracepoint",
            match lockdown {
                Some(mode) => format!(" (lockdown mode: {mode})"),
                None => " (lockdown state: see /sys/kernel/security/lockdown)".to_owned(),
            }
        )
    } else {
        format!(
            "{program} failed ({text}); fentry/fexit need CONFIG_DEBUG_INFO_BTF, \
             CONFIG_BPF_JIT and BPF trampolines (CONFIG_FUNCTION_TRACER) on x86_64"
        )
    };
    ProbeError::Unsupported {
        mode: AttachMode::Fentry,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use recorder_common::EventKind;

    use super::*;

    fn create_error(name: &str) -> aya::EbpfError {
        aya::EbpfError::MapError(aya::maps::MapError::CreateError {
            name: name.into(),
            io_error: std::io::Error::from_raw_os_error(libc::EINVAL),
        })
    }

    #[test]
    fn a_kernel_without_task_storage_is_told_so() {
        let err = object_error(create_error(TASK_STORAGE_MAP)).to_string();
        assert!(
            err.contains("BPF task-local storage (BPF_MAP_TYPE_TASK_STORAGE, Linux 5.11"),
            "{err}"
        );
        assert!(err.contains("failed to create map `TASKS`"), "{err}");
        let other = object_error(create_error("EVENTS")).to_string();
        assert!(
            other.starts_with("loading the eBPF object failed: ") && !other.contains("task-local"),
            "{other}"
        );
    }

    #[test]
    fn the_tracepoint_mode_hooks_entry_and_exit_of_every_recorded_system_call() {
        let mut want: Vec<String> = EventKind::ALL
            .iter()
            .filter_map(|kind| kind.syscall_name())
            .flat_map(|name| [format!("sys_enter_{name}"), format!("sys_exit_{name}")])
            .collect();
        let mut have: Vec<String> = SYSCALL_TRACEPOINTS
            .iter()
            .map(|&(_, tracepoint)| tracepoint.to_owned())
            .collect();
        want.sort();
        have.sort();
        assert_eq!(have, want);
        // The exit-only mode: every exit, and no entry.
        let exits: Vec<&str> = want
            .iter()
            .map(String::as_str)
            .filter(|t| t.starts_with("sys_exit_"))
            .collect();
        let mut have_exits: Vec<&str> = EXIT_TRACEPOINTS.iter().map(|&(_, t)| t).collect();
        have_exits.sort();
        assert_eq!(have_exits, exits);
    }

    #[test]
    fn comm_keys_are_nul_padded_and_cut_at_15_bytes() {
        assert_eq!(&comm_key("bash")[..5], b"bash\0");
        let long = comm_key("a-very-long-command-name");
        assert_eq!(&long[..15], b"a-very-long-com");
        assert_eq!(long[15], 0);
    }

    #[test]
    fn auto_order_prefers_syscall_tracepoints_and_never_picks_do_mmap_hooks() {
        assert_eq!(AttachMode::AUTO_ORDER[0], AttachMode::Tracepoint);
        // Without tracefs, the BTF-typed tracepoints before the raw ones (plain loads).
        assert_eq!(
            AttachMode::AUTO_ORDER[1..],
            [AttachMode::TpBtf, AttachMode::RawTracepoint]
        );
        // Auto never gives up durations or the system-call view.
        for mode in [
            AttachMode::TracepointExit,
            AttachMode::TpBtfExit,
            AttachMode::Kprobe,
            AttachMode::Fentry,
        ] {
            assert!(!AttachMode::AUTO_ORDER.contains(&mode), "{mode:?}");
        }
    }

    #[test]
    fn fentry_eperm_names_lockdown() {
        let err = fentry_error(
            "fentry_do_mmap",
            ProgramError::SyscallError(aya::sys::SyscallError {
                call: "bpf_prog_load",
                io_error: std::io::Error::from_raw_os_error(libc::EPERM),
            }),
        );
        let text = err.to_string();
        assert!(text.starts_with("--attach fentry: "), "{text}");
        assert!(
            text.contains("lockdown") && text.contains("BPF_PROG_TYPE_TRACING"),
            "{text}"
        );
    }
}

/// The kernel side's stacks, read straight from the ring (root).
#[cfg(test)]
mod stack_tests;

/// The per-CPU batches, read straight from the ring (root).
#[cfg(test)]
mod batch_tests;
