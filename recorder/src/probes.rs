//! Loading the eBPF object, attaching its programs and reading its maps.
use aya::{
    Ebpf, EbpfLoader,
    maps::{HashMap, MapData, PerCpuArray, RingBuf},
    programs::TracePoint,
};
use recorder_common::{KernelOffsets, counters, filter_mode};

/// The eBPF object built by build.rs.
static EBPF_OBJECT: &[u8] =
    aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/mmap-recorder-ebpf"));

/// Tracepoint programs: (program name, category, tracepoint).
const TRACEPOINTS: &[(&str, &str, &str)] = &[
    ("sys_enter_mmap", "syscalls", "sys_enter_mmap"),
    ("sys_exit_mmap", "syscalls", "sys_exit_mmap"),
];

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("loading the eBPF object failed: {0}")]
    Load(#[source] Box<aya::EbpfError>),
    #[error("eBPF object has no program {0}")]
    MissingProgram(&'static str),
    #[error("eBPF object has no map {0}")]
    MissingMap(&'static str),
    #[error("loading program {program} into the kernel failed: {source}")]
    ProgramLoad {
        program: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("attaching program {program} to tracepoint {category}/{name} failed: {source}")]
    Attach {
        program: &'static str,
        category: &'static str,
        name: &'static str,
        #[source]
        source: Box<aya::programs::ProgramError>,
    },
    #[error("eBPF map {map}: {source}")]
    Map {
        map: &'static str,
        #[source]
        source: Box<aya::maps::MapError>,
    },
}

/// What the kernel side needs to know before loading.
pub struct ProbeConfig {
    pub own_tgid: u32,
    pub targets_only: bool,
    pub ring_bytes: u32,
    pub wakeup_bytes: u64,
    pub offsets: KernelOffsets,
}

/// Loaded and attached programs with their maps.
pub struct Probes {
    ebpf: Ebpf,
}

/// Sums of the kernel's per-CPU counters.
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelCounters {
    pub emitted: u64,
    pub lost_ringbuf_full: u64,
    pub orphan_exits: u64,
    pub entry_map_full: u64,
}

impl Probes {
    /// Loads the object with `config` baked into its globals and map sizes.
    pub fn load(config: &ProbeConfig) -> Result<Self, ProbeError> {
        let mode = if config.targets_only {
            filter_mode::TARGETS
        } else {
            filter_mode::ALL
        };
        let ebpf = EbpfLoader::new()
            .override_global("OWN_TGID", &config.own_tgid, true)
            .override_global("FILTER_MODE", &mode, true)
            .override_global("WAKEUP_BYTES", &config.wakeup_bytes, true)
            .override_global("OFFSETS", &config.offsets, true)
            .map_max_entries("EVENTS", config.ring_bytes)
            .load(EBPF_OBJECT)
            .map_err(|e| ProbeError::Load(Box::new(e)))?;
        Ok(Self { ebpf })
    }

    /// Adds a process to the target set (only consulted when loaded with `targets_only`).
    pub fn add_target(&mut self, tgid: u32) -> Result<(), ProbeError> {
        const MAP: &str = "TARGET_TGIDS";
        let map = self.ebpf.map_mut(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let mut targets: HashMap<_, u32, u8> =
            HashMap::try_from(map).map_err(|source| ProbeError::Map {
                map: MAP,
                source: Box::new(source),
            })?;
        targets
            .insert(tgid, 1, 0)
            .map_err(|source| ProbeError::Map {
                map: MAP,
                source: Box::new(source),
            })
    }

    /// Takes the ring buffer out of the object (once).
    pub fn take_ring(&mut self) -> Result<RingBuf<MapData>, ProbeError> {
        const MAP: &str = "EVENTS";
        let map = self.ebpf.take_map(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        RingBuf::try_from(map).map_err(|source| ProbeError::Map {
            map: MAP,
            source: Box::new(source),
        })
    }

    /// Loads and attaches every tracepoint program.
    pub fn attach(&mut self) -> Result<(), ProbeError> {
        for &(program, category, name) in TRACEPOINTS {
            let prog: &mut TracePoint = self
                .ebpf
                .program_mut(program)
                .ok_or(ProbeError::MissingProgram(program))?
                .try_into()
                .map_err(|source| ProbeError::ProgramLoad {
                    program,
                    source: Box::new(source),
                })?;
            prog.load().map_err(|source| ProbeError::ProgramLoad {
                program,
                source: Box::new(source),
            })?;
            prog.attach(category, name)
                .map_err(|source| ProbeError::Attach {
                    program,
                    category,
                    name,
                    source: Box::new(source),
                })?;
        }
        Ok(())
    }

    /// Detaches every program: no new records are produced after this returns.
    pub fn detach(&mut self) {
        for &(program, _, _) in TRACEPOINTS {
            if let Some(prog) = self.ebpf.program_mut(program)
                && let Ok(prog) = <&mut TracePoint>::try_from(prog)
            {
                // Unloading drops every link of the program.
                let _ = prog.unload();
            }
        }
    }

    /// Current sums of the per-CPU counters.
    pub fn counters(&self) -> Result<KernelCounters, ProbeError> {
        const MAP: &str = "COUNTERS";
        let map = self.ebpf.map(MAP).ok_or(ProbeError::MissingMap(MAP))?;
        let array: PerCpuArray<_, u64> =
            PerCpuArray::try_from(map).map_err(|source| ProbeError::Map {
                map: MAP,
                source: Box::new(source),
            })?;
        let sum = |index: u32| -> Result<u64, ProbeError> {
            let values = array.get(&index, 0).map_err(|source| ProbeError::Map {
                map: MAP,
                source: Box::new(source),
            })?;
            Ok(values.iter().sum())
        };
        Ok(KernelCounters {
            emitted: sum(counters::EMITTED)?,
            lost_ringbuf_full: sum(counters::LOST_RINGBUF_FULL)?,
            orphan_exits: sum(counters::ORPHAN_EXIT)?,
            entry_map_full: sum(counters::ENTRY_MAP_FULL)?,
        })
    }
}
