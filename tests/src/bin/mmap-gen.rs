//! mmap-gen: writes a large synthetic capture for benchmarks, deterministically (same seed, same
//! bytes), with the format crate's `CaptureWriter`: several hundred processes over about ten
//! minutes, every row kind, realistic paths, sizes, durations and errors.
//!
//! The processes behave plausibly: each keeps the mappings it made, unmaps, mprotects and
//! mremaps those, grows its heap with brk, and new processes fork, exec (with a
//! `/proc/PID/maps` snapshot) and exit during the capture; `maps --pid P --at T` rebuilds a real
//! looking address space. A few things a responder looks for are planted: JIT memory that is
//! writable and executable, a memfd, a deleted file, an ENOMEM storm.
use std::{
    borrow::Cow,
    fs::{self, File},
    io::BufWriter,
    path::{Path, PathBuf},
};

use anyhow::{Context as _, bail};
use clap::Parser;
use mmap_format::{
    event::{Event, RowKind, Syscall, path_sources, sources},
    metadata::{CaptureMetadata, ClockAnchor, Counters, Targets},
    writer::{CaptureWriter, WriterConfig},
};

/// Write a synthetic capture of ROWS rows (default 10 million) as one file and/or as a directory
/// of segments like `mmap-recorder record -o DIR/` writes.
///
/// Examples:
///   mmap-gen --file target/bench/gen.parquet --dir target/bench/gen/
///   mmap-gen --rows 100000 --seed 7 --file small.parquet
#[derive(Debug, Parser)]
struct Args {
    /// How many rows to write (snapshot, lifecycle and lost rows included).
    #[arg(long, default_value_t = 10_000_000)]
    rows: u64,
    /// Seed of the generator: the same seed writes the same rows.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the whole capture as this one file.
    #[arg(long, value_name = "FILE")]
    file: Option<PathBuf>,
    /// Write the capture as segments into this directory (created; existing segments replaced).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
    /// How many segments the directory gets (cut by time, like --rotate-time).
    #[arg(long, default_value_t = 10)]
    segments: u32,
    /// Length of the capture in seconds.
    #[arg(long, default_value_t = 600)]
    seconds: u64,
    /// Processes alive at capture start (more are forked during it).
    #[arg(long, default_value_t = 300)]
    processes: u32,
}

/// 2027-01-01T00:00:00Z.
const START_NS: i64 = 1_798_761_600_000_000_000;
const PAGE: u64 = 4096;
const PROT_READ: u64 = 1;
const PROT_WRITE: u64 = 2;
const PROT_EXEC: u64 = 4;
const MAP_SHARED: u64 = 0x01;
const MAP_PRIVATE: u64 = 0x02;
const MAP_FIXED: u64 = 0x10;
const MAP_ANONYMOUS: u64 = 0x20;
const MAP_DENYWRITE: u64 = 0x800;
const MAP_NORESERVE: u64 = 0x4000;
const MAP_STACK: u64 = 0x20000;
const MREMAP_MAYMOVE: u64 = 1;
const ENOMEM: i64 = 12;
const EACCES: i64 = 13;
const EINVAL: i64 = 22;
const EAGAIN: i64 = 11;
/// The process that runs into a storm of ENOMEM half way through.
const STORM_SECONDS: std::ops::Range<i64> = 300..303;

/// A program: its name, executable and the libraries it maps.
struct Program {
    comm: &'static str,
    exe: &'static str,
    libs: &'static [usize],
    /// How busy its processes are, relative to each other.
    weight: u32,
    cgroup: &'static str,
    uid: u32,
}

const LIBS: [&str; 16] = [
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/usr/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2",
    "/usr/lib/x86_64-linux-gnu/libm.so.6",
    "/usr/lib/x86_64-linux-gnu/libstdc++.so.6.0.30",
    "/usr/lib/x86_64-linux-gnu/libgcc_s.so.1",
    "/usr/lib/x86_64-linux-gnu/libssl.so.3",
    "/usr/lib/x86_64-linux-gnu/libcrypto.so.3",
    "/usr/lib/x86_64-linux-gnu/libz.so.1.2.13",
    "/usr/lib/x86_64-linux-gnu/libpcre2-8.so.0.11.2",
    "/usr/lib/jvm/java-17-openjdk-amd64/lib/server/libjvm.so",
    "/usr/lib/python3.11/lib-dynload/_ssl.cpython-311-x86_64-linux-gnu.so",
    "/usr/lib/x86_64-linux-gnu/libnode.so.108",
    "/usr/lib/locale/locale-archive",
    "/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1",
    "/usr/lib/x86_64-linux-gnu/libpq.so.5.15",
    "/usr/lib/x86_64-linux-gnu/libtinfo.so.6.4",
];

/// Data files that programs map (read or shared).
const DATA: [&str; 8] = [
    "/var/lib/postgresql/15/main/base/16384/2619",
    "/var/lib/postgresql/15/main/pg_wal/000000010000000000000042",
    "/var/cache/nginx/proxy/3/7a/4f2c9e1d8b7a6f5e4d3c2b1a09f8e77a",
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/home/build/target/release/deps/libserde-3f2a1b4c5d6e7f80.rlib",
    "/tmp/data.bin",
    "/var/lib/mysql/ibdata1",
    "/usr/share/zoneinfo/Europe/Berlin",
];

const PROGRAMS: [Program; 12] = [
    Program {
        comm: "nginx",
        exe: "/usr/sbin/nginx",
        libs: &[0, 1, 5, 6, 7, 8, 12],
        weight: 6,
        cgroup: "/system.slice/nginx.service",
        uid: 33,
    },
    Program {
        comm: "postgres",
        exe: "/usr/lib/postgresql/15/bin/postgres",
        libs: &[0, 1, 2, 5, 6, 7, 12, 14],
        weight: 8,
        cgroup: "/system.slice/postgresql.service",
        uid: 112,
    },
    Program {
        comm: "java",
        exe: "/usr/lib/jvm/java-17-openjdk-amd64/bin/java",
        libs: &[0, 1, 2, 3, 4, 7, 9],
        weight: 12,
        cgroup: "/kubepods/burstable/pod7c1e/4b9d2f",
        uid: 1000,
    },
    Program {
        comm: "python3",
        exe: "/usr/bin/python3.11",
        libs: &[0, 1, 2, 5, 6, 7, 10, 12],
        weight: 5,
        cgroup: "/user.slice/user-1000.slice/session-2.scope",
        uid: 1000,
    },
    Program {
        comm: "node",
        exe: "/usr/bin/node",
        libs: &[0, 1, 2, 3, 4, 5, 6, 11],
        weight: 6,
        cgroup: "/kubepods/besteffort/pod93aa/d41e",
        uid: 1000,
    },
    Program {
        comm: "bash",
        exe: "/usr/bin/bash",
        libs: &[0, 1, 12, 15],
        weight: 1,
        cgroup: "/user.slice/user-1000.slice/session-2.scope",
        uid: 1000,
    },
    Program {
        comm: "sshd",
        exe: "/usr/sbin/sshd",
        libs: &[0, 1, 6, 7],
        weight: 1,
        cgroup: "/system.slice/ssh.service",
        uid: 0,
    },
    Program {
        comm: "rustc",
        exe: "/home/build/.rustup/toolchains/stable-x86_64-unknown-linux-gnu/bin/rustc",
        libs: &[0, 1, 2, 4, 13],
        weight: 10,
        cgroup: "/user.slice/user-1000.slice/session-2.scope",
        uid: 1000,
    },
    Program {
        comm: "cc1plus",
        exe: "/usr/libexec/gcc/x86_64-linux-gnu/12/cc1plus",
        libs: &[0, 1, 2, 3, 4, 7],
        weight: 7,
        cgroup: "/user.slice/user-1000.slice/session-2.scope",
        uid: 1000,
    },
    Program {
        comm: "ld",
        exe: "/usr/bin/x86_64-linux-gnu-ld.bfd",
        libs: &[0, 1, 7],
        weight: 4,
        cgroup: "/user.slice/user-1000.slice/session-2.scope",
        uid: 1000,
    },
    Program {
        comm: "mysqld",
        exe: "/usr/sbin/mysqld",
        libs: &[0, 1, 2, 3, 4, 5, 6, 7],
        weight: 8,
        cgroup: "/system.slice/mysql.service",
        uid: 27,
    },
    Program {
        comm: "systemd-journal",
        exe: "/usr/lib/systemd/systemd-journald",
        libs: &[0, 1, 7, 8],
        weight: 1,
        cgroup: "/system.slice/systemd-journald.service",
        uid: 0,
    },
];

/// splitmix64: small, fast, and the same everywhere.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (`n > 0`).
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }

    /// Uniform in [0, 1).
    fn unit(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with this mean.
    fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }
}

/// One mapping a process holds.
#[derive(Clone, Copy)]
struct Mapping {
    addr: u64,
    len: u64,
    prot: u64,
}

struct Process {
    pid: u32,
    ppid: u32,
    threads: u32,
    program: usize,
    cgroup_id: u64,
    live: Vec<Mapping>,
    /// The next address mmap hands out (growing down, like the kernel's top-down layout).
    next_addr: u64,
    brk: u64,
    alive: bool,
}

impl Process {
    fn new(pid: u32, ppid: u32, program: usize, rng: &mut Rng) -> Self {
        Self {
            pid,
            ppid,
            threads: 1 + rng.below(16) as u32,
            program,
            cgroup_id: 0x2000 + program as u64,
            live: Vec::new(),
            next_addr: 0x7f00_0000_0000 + (rng.below(0x00ff_0000) << 12),
            brk: 0x5600_0000_0000 + (rng.below(0x0100_0000) << 12),
            alive: true,
        }
    }

    fn program(&self) -> &'static Program {
        &PROGRAMS[self.program]
    }

    /// An address for a new mapping of `len` bytes.
    fn place(&mut self, len: u64) -> u64 {
        self.next_addr -= len.div_ceil(PAGE) * PAGE + PAGE;
        self.next_addr
    }
}

/// Where rows go: one file, a directory of segments, or both.
struct Sinks {
    file: Option<Output>,
    dir: Option<(PathBuf, Option<Output>)>,
    segment_ns: i64,
    next_segment: u32,
    meta: CaptureMetadata,
    rows: u64,
}

struct Output {
    path: PathBuf,
    writer: CaptureWriter<BufWriter<File>>,
    meta: CaptureMetadata,
    rows: u64,
    /// Records the lost rows of this output say the kernel dropped.
    lost: u64,
}

impl Output {
    fn create(path: PathBuf, meta: CaptureMetadata) -> anyhow::Result<Self> {
        let file = File::create(&path).with_context(|| format!("creating {}", path.display()))?;
        let writer = CaptureWriter::new(BufWriter::new(file), WriterConfig::default())?;
        Ok(Self {
            path,
            writer,
            meta,
            rows: 0,
            lost: 0,
        })
    }

    fn push(&mut self, event: &Event<'_>) -> anyhow::Result<()> {
        self.writer.push(event)?;
        self.rows += 1;
        self.lost += event.lost_count.unwrap_or(0);
        Ok(())
    }

    fn finish(mut self, end_ns: i64) -> anyhow::Result<()> {
        self.meta.capture_end_ns = end_ns;
        self.meta.counters.emitted = self.rows;
        self.meta.counters.lost_ringbuf_full = self.lost;
        self.writer
            .finish(&self.meta)
            .with_context(|| format!("finishing {}", self.path.display()))?;
        Ok(())
    }
}

impl Sinks {
    fn push(&mut self, event: &Event<'_>) -> anyhow::Result<()> {
        self.rows += 1;
        if let Some(out) = &mut self.file {
            out.push(event)?;
        }
        if let Some((dir, current)) = &mut self.dir {
            let segment = ((event.ts_ns - START_NS) / self.segment_ns).max(0) as u32;
            if current.is_none() || segment >= self.next_segment {
                if let Some(done) = current.take() {
                    done.finish(event.ts_ns)?;
                }
                let index = self.next_segment.max(segment);
                let mut meta = self.meta.clone();
                meta.segment_index = Some(index);
                meta.capture_start_ns = if index == 0 { START_NS } else { event.ts_ns };
                let id: String = meta
                    .capture_id
                    .iter()
                    .flat_map(|id| id.chars())
                    .take(8)
                    .collect();
                let name = format!("mmap-20270101T000000Z-{id}-{index:05}.parquet");
                *current = Some(Output::create(dir.join(name), meta)?);
                self.next_segment = index + 1;
            }
            if let Some(out) = current {
                out.push(event)?;
            }
        }
        Ok(())
    }

    /// Cuts a row group in every output, as the recorder does once a second.
    fn flush(&mut self) -> anyhow::Result<()> {
        if let Some(out) = &mut self.file {
            out.writer.flush()?;
        }
        if let Some((_, Some(out))) = &mut self.dir {
            out.writer.flush()?;
        }
        Ok(())
    }

    fn finish(self, end_ns: i64) -> anyhow::Result<()> {
        if let Some(out) = self.file {
            out.finish(end_ns)?;
        }
        if let Some((_, Some(out))) = self.dir {
            out.finish(end_ns)?;
        }
        Ok(())
    }
}

/// The row fields every row of a process shares.
fn base<'a>(process: &Process, tid: u32, ts_ns: i64, cpu: u32) -> Event<'a> {
    let program = process.program();
    Event {
        ts_ns,
        cpu,
        pid: process.pid,
        tid,
        ppid: process.ppid,
        uid: program.uid,
        gid: program.uid,
        comm: Cow::Borrowed(program.comm),
        cgroup_id: process.cgroup_id,
        source: Some(Cow::Borrowed(sources::TRACEPOINT)),
        cgroup_path: Some(Cow::Borrowed(program.cgroup)),
        pidns_ino: Some(4_026_531_836),
        ns_pid: Some(process.pid),
        ns_tid: Some(tid),
        ..Default::default()
    }
}

/// The file fields of a row that maps `path`.
fn with_file<'a>(mut event: Event<'a>, path: &'a str, source: &'static str) -> Event<'a> {
    let name = path.rsplit('/').next().unwrap_or(path);
    let hash = path.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| {
        (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
    });
    let memfd = path.starts_with("/memfd:");
    event.file_dev = Some(if memfd { 0x1 } else { 0x10302 });
    event.file_ino = Some(1000 + hash % 5_000_000);
    event.file_name = Some(Cow::Borrowed(name));
    event.file_path = Some(Cow::Borrowed(path));
    event.path_source = Some(Cow::Borrowed(source));
    event.path_truncated = Some(false);
    event.file_deleted = Some(path.ends_with(" (deleted)"));
    event.file_memfd = Some(memfd);
    event
}

/// A call's duration in ns: mostly around `typical`, with a long tail.
fn duration(rng: &mut Rng, typical: f64) -> i64 {
    let mut ns = 150.0 + rng.exp(typical);
    if rng.chance(0.001) {
        ns *= 50.0 + rng.exp(200.0);
    }
    ns as i64
}

/// An anonymous mapping's length: mostly small, sometimes huge.
fn anon_len(rng: &mut Rng) -> u64 {
    let pages = match rng.below(100) {
        0..=59 => 1 + rng.below(8),
        60..=89 => 16 + rng.below(512),
        90..=98 => 256 + rng.below(3840),
        _ if rng.chance(0.2) => 16_384 + rng.below(245_760),
        _ => 4096 + rng.below(12_288),
    };
    pages * PAGE
}

struct Generator {
    rng: Rng,
    processes: Vec<Process>,
    /// Cumulative weights of `processes` (rebuilt when they change).
    cumulative: Vec<u64>,
    next_pid: u32,
    now: i64,
    end: i64,
    gap_mean: f64,
}

impl Generator {
    fn rebuild_weights(&mut self) {
        let mut total = 0;
        self.cumulative = self
            .processes
            .iter()
            .map(|p| {
                if p.alive {
                    total += u64::from(p.program().weight);
                }
                total
            })
            .collect();
    }

    fn pick(&mut self) -> usize {
        let total = self.cumulative.last().copied().unwrap_or(0);
        let target = self.rng.below(total);
        self.cumulative.partition_point(|&c| c <= target)
    }

    fn tick(&mut self) -> i64 {
        self.now += self.rng.exp(self.gap_mean).max(1.0) as i64;
        self.now
    }

    /// The `/proc/PID/maps` lines of a process: its executable, its libraries (four mappings
    /// each, as ld.so maps them), heap and stack.
    fn snapshot(
        &mut self,
        index: usize,
        ts_ns: i64,
        source: &'static str,
        sinks: &mut Sinks,
    ) -> anyhow::Result<()> {
        let program = self.processes[index].program();
        let paths = std::iter::once(program.exe).chain(program.libs.iter().map(|&l| LIBS[l]));
        for (n, path) in paths.enumerate() {
            let image = (64 + self.rng.below(2048)) * PAGE;
            for (part, prot) in [
                (0, PROT_READ),
                (1, PROT_READ | PROT_EXEC),
                (2, PROT_READ),
                (3, PROT_READ | PROT_WRITE),
            ] {
                let process = &mut self.processes[index];
                let len = if part == 1 {
                    image
                } else {
                    (1 + n as u64 % 4) * 4 * PAGE
                };
                let addr = if n == 0 {
                    0x5555_5555_4000 + part * 0x10_0000
                } else {
                    process.place(len)
                };
                process.live.push(Mapping { addr, len, prot });
                let mut event = with_file(
                    base(process, process.pid, ts_ns, 0),
                    path,
                    path_sources::PROC_MAPS,
                );
                event.kind = RowKind::Snapshot;
                event.source = Some(Cow::Borrowed(source));
                event.addr = Some(addr);
                event.len = Some(len);
                event.prot = Some(prot);
                event.flags = Some(MAP_PRIVATE);
                event.off = Some(if part == 0 { 0 } else { part * 0x1000 });
                sinks.push(&event)?;
            }
        }
        let process = &self.processes[index];
        for (path, addr, len) in [
            ("[heap]", process.brk - 0x21000, 0x21000),
            ("[stack]", 0x7ffd_0000_0000, 0x21000),
        ] {
            let mut event = base(process, process.pid, ts_ns, 0);
            event.kind = RowKind::Snapshot;
            event.source = Some(Cow::Borrowed(source));
            event.addr = Some(addr);
            event.len = Some(len);
            event.prot = Some(PROT_READ | PROT_WRITE);
            event.flags = Some(MAP_PRIVATE);
            event.off = Some(0);
            event.file_path = Some(Cow::Borrowed(path));
            event.path_source = Some(Cow::Borrowed(path_sources::PROC_MAPS));
            sinks.push(&event)?;
        }
        Ok(())
    }

    /// A fork of a busy parent, the exec of a program in the child, its snapshot.
    fn spawn(&mut self, sinks: &mut Sinks) -> anyhow::Result<()> {
        let parent = self.pick();
        let pid = self.next_pid;
        self.next_pid += 1 + self.rng.below(7) as u32;
        let program = self.rng.below(PROGRAMS.len() as u64) as usize;
        let ts = self.tick();
        let parent_process = &self.processes[parent];
        let mut fork = base(parent_process, parent_process.pid, ts, 0);
        fork.kind = RowKind::Fork;
        fork.child_pid = Some(pid);
        sinks.push(&fork)?;
        let child = Process::new(pid, parent_process.pid, program, &mut self.rng);
        let ts = self.tick();
        let mut exec = with_file(
            base(&child, pid, ts, 1),
            child.program().exe,
            path_sources::EXEC_FILENAME,
        );
        exec.kind = RowKind::Exec;
        sinks.push(&exec)?;
        self.processes.push(child);
        let index = self.processes.len() - 1;
        let ts = self.tick();
        self.snapshot(index, ts, sources::PROC_MAPS_EXEC, sinks)?;
        self.rebuild_weights();
        Ok(())
    }

    /// A process (not one of the first ten, which run throughout) exits.
    fn reap(&mut self, sinks: &mut Sinks) -> anyhow::Result<()> {
        let index = self.pick();
        if index < 10 {
            return Ok(());
        }
        let ts = self.tick();
        let process = &mut self.processes[index];
        process.alive = false;
        process.live = Vec::new();
        let mut exit = base(process, process.pid, ts, 0);
        exit.kind = RowKind::Exit;
        exit.exit_code = Some(if self.rng.chance(0.1) { 0x8b } else { 0 });
        sinks.push(&exit)?;
        self.rebuild_weights();
        Ok(())
    }

    fn lost(&mut self, sinks: &mut Sinks) -> anyhow::Result<()> {
        let ts = self.tick();
        let event = Event {
            kind: RowKind::Lost,
            ts_ns: ts,
            ts_exit_ns: Some(ts + 1_000_000),
            cpu: self.rng.below(2) as u32,
            comm: Cow::Borrowed(""),
            source: Some(Cow::Borrowed(sources::KERNEL)),
            lost_count: Some(1 + self.rng.below(500)),
            ..Default::default()
        };
        sinks.push(&event)?;
        Ok(())
    }

    /// One system call of a busy process.
    fn call(&mut self, sinks: &mut Sinks) -> anyhow::Result<()> {
        let index = self.pick();
        let ts = self.tick();
        let second = (ts - START_NS) / 1_000_000_000;
        let rng = &mut self.rng;
        let process = &mut self.processes[index];
        let tid = process.pid + rng.below(u64::from(process.threads)) as u32;
        let cpu = rng.below(2) as u32;
        let mut event = base(process, tid, ts, cpu);
        event.kind = RowKind::Syscall;
        let storm = index == 3 && STORM_SECONDS.contains(&second);
        let roll = if storm { 0 } else { rng.below(100) };
        let roll = if process.live.len() > 3000 && roll < 40 {
            40
        } else if process.live.is_empty() && roll >= 40 {
            0
        } else {
            roll
        };
        let mut event = match roll {
            0..=39 => {
                event.syscall = Some(Syscall::Mmap);
                let file = rng.chance(0.3);
                let (len, prot, flags, mut event) = if file {
                    let program = process.program();
                    let path: &'static str = match rng.below(100) {
                        0..=59 => LIBS[program.libs[rng.below(program.libs.len() as u64) as usize]],
                        60..=97 => DATA[rng.below(DATA.len() as u64) as usize],
                        98 => "/memfd:jit-cache (deleted)",
                        _ => "/dev/shm/sem.build-cache (deleted)",
                    };
                    let len = (1 + rng.below(256)) * PAGE;
                    let (prot, flags) = if path.starts_with("/usr/lib") {
                        (PROT_READ | PROT_EXEC, MAP_PRIVATE | MAP_DENYWRITE)
                    } else if rng.chance(0.5) {
                        (PROT_READ | PROT_WRITE, MAP_SHARED)
                    } else {
                        (PROT_READ, MAP_PRIVATE)
                    };
                    let event = with_file(event, path, path_sources::KERNEL_DENTRY_WALK);
                    (len, prot, flags, event)
                } else {
                    let len = anon_len(rng);
                    let jit = process.program().comm == "java" && rng.chance(0.02);
                    let prot = if jit {
                        PROT_READ | PROT_WRITE | PROT_EXEC
                    } else {
                        PROT_READ | PROT_WRITE
                    };
                    let mut flags = MAP_PRIVATE | MAP_ANONYMOUS;
                    if rng.chance(0.05) {
                        flags |= MAP_NORESERVE;
                    }
                    if rng.chance(0.02) {
                        flags |= MAP_STACK;
                    }
                    (len, prot, flags, event)
                };
                event.len = Some(len);
                event.prot = Some(prot);
                event.flags = Some(flags);
                event.fd = Some(if file { 3 + rng.below(60) as i32 } else { -1 });
                event.off = Some(if file { rng.below(16) * PAGE } else { 0 });
                let fixed = rng.chance(0.03);
                let errno = if storm {
                    Some(if rng.chance(0.8) { ENOMEM } else { EAGAIN })
                } else if len > 512 * 1024 * 1024 && rng.chance(0.3) || rng.chance(0.003) {
                    Some(ENOMEM)
                } else if file && rng.chance(0.004) {
                    Some(EACCES)
                } else {
                    None
                };
                if let Some(errno) = errno {
                    event.addr = Some(0);
                    event.ret = Some(-errno);
                } else {
                    let addr = process.place(len);
                    event.addr = Some(if fixed { addr } else { 0 });
                    if fixed {
                        event.flags = Some(flags | MAP_FIXED);
                    }
                    event.ret = Some(addr as i64);
                    process.live.push(Mapping { addr, len, prot });
                }
                event.ts_exit_ns = Some(ts + duration(rng, if file { 2500.0 } else { 900.0 }));
                event
            }
            40..=69 => {
                event.syscall = Some(Syscall::Munmap);
                let at = rng.below(process.live.len() as u64) as usize;
                let mapping = process.live.swap_remove(at);
                event.addr = Some(mapping.addr);
                event.len = Some(mapping.len);
                event.ret = Some(if rng.chance(0.001) { -EINVAL } else { 0 });
                event.ts_exit_ns = Some(ts + duration(rng, 1800.0 + (mapping.len / 65536) as f64));
                event
            }
            70..=84 => {
                event.syscall = Some(Syscall::Mprotect);
                let at = rng.below(process.live.len() as u64) as usize;
                let mapping = &mut process.live[at];
                let prot = match rng.below(10) {
                    0..=5 => PROT_READ,
                    6..=8 => PROT_READ | PROT_WRITE,
                    _ => PROT_READ | PROT_EXEC,
                };
                event.addr = Some(mapping.addr);
                event.len = Some(mapping.len);
                event.prot = Some(prot);
                if rng.chance(0.003) {
                    event.ret = Some(-EACCES);
                } else {
                    mapping.prot = prot;
                    event.ret = Some(0);
                }
                event.ts_exit_ns = Some(ts + duration(rng, 1100.0));
                event
            }
            85..=94 => {
                event.syscall = Some(Syscall::Brk);
                let grow = rng.below(33) * PAGE;
                event.addr = Some(process.brk + grow);
                process.brk += grow;
                event.ret = Some(process.brk as i64);
                event.ts_exit_ns = Some(ts + duration(rng, 600.0));
                event
            }
            _ => {
                event.syscall = Some(Syscall::Mremap);
                let at = rng.below(process.live.len() as u64) as usize;
                let old = process.live[at];
                let new_len = old.len + (1 + rng.below(64)) * PAGE;
                event.addr = Some(old.addr);
                event.len = Some(old.len);
                event.new_len = Some(new_len);
                event.flags = Some(MREMAP_MAYMOVE);
                if rng.chance(0.02) {
                    event.ret = Some(-ENOMEM);
                } else {
                    let addr = process.place(new_len);
                    process.live[at] = Mapping {
                        addr,
                        len: new_len,
                        prot: old.prot,
                    };
                    event.ret = Some(addr as i64);
                }
                event.ts_exit_ns = Some(ts + duration(rng, 2000.0));
                event
            }
        };
        if event.ts_exit_ns.is_none() {
            event.ts_exit_ns = Some(ts + 1000);
        }
        sinks.push(&event)
    }
}

fn metadata(args: &Args) -> CaptureMetadata {
    CaptureMetadata {
        recorder_version: format!("mmap-gen {}", env!("CARGO_PKG_VERSION")),
        hostname: "bench-host".to_owned(),
        kernel_release: "6.1.0-27-amd64".to_owned(),
        boot_id: "0b5c3e0c-6a2d-4f5e-9d7b-1c2a3b4c5d6e".to_owned(),
        clock_anchors: vec![ClockAnchor {
            boot_ns: 3_600_000_000_000,
            realtime_ns: START_NS,
            uncertainty_ns: 1_000,
        }],
        capture_start_ns: START_NS,
        capture_end_ns: START_NS,
        targets: Targets {
            system_wide: true,
            ..Targets::default()
        },
        command_line: vec![
            "mmap-gen".to_owned(),
            format!("--rows={}", args.rows),
            format!("--seed={}", args.seed),
        ],
        attach_mode: "tracepoint".to_owned(),
        counters: Counters::default(),
        capture_id: Some({
            let mut rng = Rng(args.seed ^ args.rows.rotate_left(32));
            format!("{:016x}{:016x}", rng.next(), rng.next())
        }),
        segment_index: Some(0),
        page_size: Some(4096),
        ..CaptureMetadata::default()
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if args.file.is_none() && args.dir.is_none() {
        bail!("give --file FILE, --dir DIR or both");
    }
    let meta = metadata(&args);
    let file = match &args.file {
        Some(path) => {
            if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                fs::create_dir_all(parent)?;
            }
            Some(Output::create(path.clone(), meta.clone())?)
        }
        None => None,
    };
    let dir = match &args.dir {
        Some(dir) => {
            prepare_dir(dir)?;
            Some((dir.clone(), None))
        }
        None => None,
    };
    let span_ns = i64::try_from(args.seconds)?
        .saturating_mul(1_000_000_000)
        .max(1);
    let mut sinks = Sinks {
        file,
        dir,
        segment_ns: (span_ns / i64::from(args.segments.max(1))).max(1),
        next_segment: 0,
        meta,
        rows: 0,
    };
    let mut generator = Generator {
        rng: Rng(args.seed),
        processes: Vec::new(),
        cumulative: Vec::new(),
        next_pid: 1000,
        now: START_NS,
        end: START_NS + span_ns,
        gap_mean: span_ns as f64 / args.rows.max(1) as f64,
    };
    for _ in 0..args.processes {
        let pid = generator.next_pid;
        generator.next_pid += 1 + generator.rng.below(40) as u32;
        let program = generator.rng.below(PROGRAMS.len() as u64) as usize;
        let process = Process::new(pid, 1, program, &mut generator.rng);
        generator.processes.push(process);
    }
    generator.rebuild_weights();
    for index in 0..generator.processes.len() {
        generator.snapshot(index, START_NS, sources::PROC_MAPS_START, &mut sinks)?;
    }
    let mut last_flush = START_NS / 1_000_000_000;
    while sinks.rows < args.rows {
        match generator.rng.below(20_000) {
            0..=1 => generator.spawn(&mut sinks)?,
            2..=3 => generator.reap(&mut sinks)?,
            4 => generator.lost(&mut sinks)?,
            _ => generator.call(&mut sinks)?,
        }
        let second = generator.now / 1_000_000_000;
        if second != last_flush {
            last_flush = second;
            sinks.flush()?;
        }
    }
    let end = generator.now.max(generator.end);
    let processes = generator.processes.len();
    sinks.finish(end)?;
    eprintln!(
        "mmap-gen: {} rows, {processes} processes, {:.1} s",
        args.rows,
        (end - START_NS) as f64 / 1e9
    );
    Ok(())
}

/// Creates `dir`, removing the segments a previous run left there.
fn prepare_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    for entry in fs::read_dir(dir)? {
        let path = entry?.path();
        let is_segment = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("mmap-") && n.ends_with(".parquet"));
        if is_segment {
            fs::remove_file(&path)?;
        }
    }
    Ok(())
}
