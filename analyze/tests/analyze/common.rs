//! Helpers shared by the integration tests: small captures written with the format library's
//! `CaptureWriter`, and running the real `mmap-analyze` binary.

pub mod segmented;
pub mod v11;

use std::{
    borrow::Cow,
    fs::{self, File},
    io::{BufWriter, Read as _},
    os::unix::process::ExitStatusExt as _,
    path::{Path, PathBuf},
    process::{Command, ExitStatus, Output, Stdio},
    time::{Duration, Instant},
};

use mmap_format::{
    FORMAT_MAJOR, FORMAT_MINOR,
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, ClockAnchor, Counters, FormatVersion, StacksConfig, Targets},
    names,
    writer::{CaptureWriter, WriterConfig},
};

/// 2026-11-27T06:01:13Z, the time every test capture starts from.
pub const BASE_NS: i64 = 1_795_759_273_000_000_000;

pub const PROT_READ: u64 = 0x1;
pub const PROT_WRITE: u64 = 0x2;
pub const MAP_SHARED: u64 = 0x01;
pub const MAP_PRIVATE: u64 = 0x02;
pub const MAP_ANONYMOUS: u64 = 0x20;

/// The path of the binary under test.
pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mmap-analyze")
}

/// Runs `mmap-analyze` with `args` and no standard input.
pub fn run<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_in(Path::new("."), args)
}

/// Runs `mmap-analyze` in directory `dir` with `args` and no standard input.
pub fn run_in<I, S>(dir: &Path, args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(bin())
        .current_dir(dir)
        .args(args)
        .env("COLUMNS", "100")
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env_remove("MMAP_ANALYZE_LOG_QUERIES")
        .stdin(Stdio::null())
        .output()
        .expect("run mmap-analyze")
}

/// Runs `mmap-analyze`, expects success and empty stderr, returns stdout.
pub fn run_ok<I, S>(args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    run_ok_in(Path::new("."), args)
}

/// Runs `mmap-analyze` in directory `dir`, expects success and empty stderr, returns stdout.
pub fn run_ok_in<I, S>(dir: &Path, args: I) -> String
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    let output = run_in(dir, args);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "mmap-analyze failed with {}: {stderr}",
        output.status
    );
    assert!(stderr.is_empty(), "unexpected stderr: {stderr}");
    String::from_utf8(output.stdout).expect("stdout is UTF-8")
}

/// A successful anonymous private read-write mmap at `BASE_NS + offset_ns` taking 500 ns.
pub fn mmap(offset_ns: i64, pid: u32, tid: u32, comm: &str) -> Event<'static> {
    Event {
        kind: RowKind::Syscall,
        syscall: Some(Syscall::Mmap),
        ts_ns: BASE_NS + offset_ns,
        ts_exit_ns: Some(BASE_NS + offset_ns + 500),
        cpu: 1,
        pid,
        tid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: Cow::Owned(comm.to_owned()),
        cgroup_id: 4242,
        addr: Some(0),
        len: Some(4096),
        prot: Some(PROT_READ | PROT_WRITE),
        flags: Some(MAP_PRIVATE | MAP_ANONYMOUS),
        fd: Some(-1),
        off: Some(0),
        ret: Some(0x7f00_0000_0000),
        file_dev: None,
        file_ino: None,
        file_name: None,
        ..Default::default()
    }
}

/// Metadata of a capture from `host` spanning `BASE_NS .. BASE_NS + 10 ms`.
pub fn metadata(host: &str, counters: Counters) -> CaptureMetadata {
    CaptureMetadata {
        format_version: FormatVersion {
            major: FORMAT_MAJOR,
            minor: FORMAT_MINOR,
        },
        recorder_version: "0.1.0".to_owned(),
        hostname: host.to_owned(),
        kernel_release: "6.8.0-test".to_owned(),
        boot_id: "00000000-0000-4000-8000-000000000000".to_owned(),
        clock_anchors: vec![ClockAnchor {
            boot_ns: 1_000_000_000,
            realtime_ns: BASE_NS,
            uncertainty_ns: 1_000,
        }],
        capture_start_ns: BASE_NS,
        capture_end_ns: BASE_NS + 10_000_000,
        targets: Targets {
            system_wide: true,
            pids: Vec::new(),
            command: None,
            ..Targets::default()
        },
        command_line: vec!["mmap-recorder".to_owned(), "record".to_owned()],
        attach_mode: "tracepoint".to_owned(),
        counters,
        ..CaptureMetadata::default()
    }
}

/// Writes `events` with `metadata` to `path` (row groups of `row_group_rows`).
pub fn write_capture_with(
    path: &Path,
    metadata: &CaptureMetadata,
    events: &[Event<'_>],
    row_group_rows: usize,
) {
    let file = File::create(path).expect("create capture file");
    let config = WriterConfig {
        row_group_rows,
        ..WriterConfig::default()
    };
    let mut writer = CaptureWriter::new(BufWriter::new(file), config).expect("new CaptureWriter");
    for event in events {
        writer.push(event).expect("push event");
    }
    let sink = writer.finish(metadata).expect("finish capture");
    sink.into_inner()
        .expect("flush capture file")
        .sync_all()
        .expect("sync capture file");
}

pub fn write_capture(path: &Path, metadata: &CaptureMetadata, events: &[Event<'_>]) {
    write_capture_with(path, metadata, events, 3);
}

/// The counters of capture A: 2 + 1 + 0 = 3 lost records, 1 orphan exit.
pub fn counters_a() -> Counters {
    Counters {
        emitted: 9,
        lost_ringbuf_full: 2,
        orphan_exits: 1,
        entry_map_full: 1,
        decode_errors: 0,
        follow_map_full: 0,
    }
}

/// The counters of capture B: 1 lost record (a decode error).
pub fn counters_b() -> Counters {
    Counters {
        emitted: 3,
        lost_ringbuf_full: 0,
        orphan_exits: 0,
        entry_map_full: 0,
        decode_errors: 1,
        follow_map_full: 0,
    }
}

/// Capture A (host-a), 8 calls of 3 processes:
///
/// | # | +ns  | pid | tid | comm       | call     | outcome                                 |
/// |---|------|-----|-----|------------|----------|-----------------------------------------|
/// | 1 | 1000 | 100 | 100 | cat        | mmap     | 8192 bytes anonymous                    |
/// | 2 | 2000 | 100 | 101 | cat-worker | mmap     | 4096 bytes of libc.so.6 (8:1, ino 1234) |
/// | 3 | 3000 | 100 | 100 | cat        | mmap     | -EBADF                                  |
/// | 4 | 4000 | 200 | 200 | java       | mmap     | 1 MiB anonymous                         |
/// | 5 | 5000 | 200 | 201 | java       | munmap   | 0                                       |
/// | 6 | 6000 | 200 | 200 | java       | mmap     | -ENOMEM                                 |
/// | 7 | 7000 | 300 | 300 | sh         | mprotect | 0                                       |
/// | 8 | 8000 | 200 | 202 | java       | mmap     | exit not seen                           |
pub fn events_a() -> Vec<Event<'static>> {
    let mut e1 = mmap(1000, 100, 100, "cat");
    e1.len = Some(8192);

    let mut e2 = mmap(2000, 100, 101, "cat-worker");
    e2.prot = Some(PROT_READ);
    e2.flags = Some(MAP_PRIVATE);
    e2.fd = Some(3);
    e2.ret = Some(0x7f00_0001_0000);
    e2.file_dev = Some(names::makedev(8, 1));
    e2.file_ino = Some(1234);
    e2.file_name = Some(Cow::Borrowed("libc.so.6"));

    let mut e3 = mmap(3000, 100, 100, "cat");
    e3.prot = Some(PROT_READ);
    e3.flags = Some(MAP_SHARED);
    e3.fd = Some(99);
    e3.ret = Some(-9);

    let mut e4 = mmap(4000, 200, 200, "java");
    e4.len = Some(1 << 20);
    e4.ret = Some(0x7f00_0010_0000);

    let mut e5 = mmap(5000, 200, 201, "java");
    e5.syscall = Some(Syscall::Munmap);
    e5.addr = Some(0x7f00_0010_0000);
    e5.prot = None;
    e5.flags = None;
    e5.fd = None;
    e5.off = None;
    e5.ret = Some(0);

    let mut e6 = mmap(6000, 200, 200, "java");
    e6.len = Some(1 << 40);
    e6.ret = Some(-12);

    let mut e7 = mmap(7000, 300, 300, "sh");
    e7.syscall = Some(Syscall::Mprotect);
    e7.addr = Some(0x5555_0000_0000);
    e7.prot = Some(PROT_READ);
    e7.flags = None;
    e7.fd = None;
    e7.off = None;
    e7.ret = Some(0);

    let mut e8 = mmap(8000, 200, 202, "java");
    e8.ts_exit_ns = None;
    e8.ret = None;

    vec![e1, e2, e3, e4, e5, e6, e7, e8]
}

/// Capture B (host-b), 3 calls of python3 (pid 400) interleaved in time with A.
pub fn events_b() -> Vec<Event<'static>> {
    let mut e1 = mmap(1500, 400, 400, "python3");
    e1.len = Some(65536);
    let e2 = mmap(4500, 400, 401, "python3");
    let mut e3 = mmap(9000, 400, 400, "python3");
    e3.ret = Some(-22);
    vec![e1, e2, e3]
}

/// A temporary directory with captures A and B written in it.
pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub a: PathBuf,
    pub b: PathBuf,
}

impl Fixture {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let a = dir.path().join("a.parquet");
        let b = dir.path().join("b.parquet");
        write_capture(&a, &metadata("host-a", counters_a()), &events_a());
        let mut meta_b = metadata("host-b", counters_b());
        meta_b.capture_start_ns = BASE_NS + 1000;
        meta_b.capture_end_ns = BASE_NS + 20_000_000;
        write_capture(&b, &meta_b, &events_b());
        Self { dir, a, b }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }
}

/// Parses JSON Lines output.
pub fn json_lines(stdout: &str) -> Vec<serde_json::Value> {
    stdout
        .lines()
        .map(|line| serde_json::from_str(line).expect("each line is a JSON object"))
        .collect()
}

/// The `ts_ns` of each JSON Lines row, as offsets from `BASE_NS`.
pub fn offsets(rows: &[serde_json::Value]) -> Vec<i64> {
    rows.iter()
        .map(|row| row["ts_ns"].as_i64().expect("ts_ns is an integer") - BASE_NS)
        .collect()
}

/// Runs mmap-analyze with `args`, reads one line of its output and closes the pipe while it is
/// still writing, as `| head -1` does: it must exit 0 with nothing on stderr.
pub fn assert_quiet_when_the_reader_goes_away(args: &[&std::ffi::OsStr], what: &str) {
    use std::io::{BufRead as _, BufReader};
    let mut child = Command::new(bin())
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn mmap-analyze");
    let stdout = child.stdout.take().expect("child stdout");
    let mut first = String::new();
    BufReader::new(stdout)
        .read_line(&mut first)
        .expect("read the first line");
    assert!(!first.is_empty(), "a first line in {what}");
    // The reader is dropped here: the pipe is closed while the child is still writing.
    let output = child.wait_with_output().expect("wait for mmap-analyze");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "{what}: exit status {}, stderr: {stderr}",
        output.status
    );
    assert!(
        stderr.is_empty(),
        "{what}: stderr must be empty, got {stderr:?}"
    );
}

/// How a command ended.
pub struct Run {
    /// None when it was killed at the deadline.
    pub status: Option<ExitStatus>,
    pub stdout: Vec<u8>,
    pub stderr: String,
    /// Peak RSS (`ru_maxrss` of the child, from `wait4`). It also counts what this process
    /// held when the child started (see [`run_bounded`]): keep this process small.
    pub peak_kib: i64,
    pub took: Duration,
}

/// Sets this process's peak RSS to what it holds now. A child's `ru_maxrss` starts at the peak
/// of the memory it ran in before its exec, which for a child spawned with `vfork` (as `Command`
/// does) is this process's: without the reset, a test that once held 400 MiB made every child
/// started after it seem to peak at 400 MiB. (Linux 4.0+; where the file cannot be written,
/// the peak stays as it was.)
pub fn reset_peak_rss() {
    let _ = fs::write("/proc/self/clear_refs", "5");
}

/// Runs `mmap-analyze args`, killing it after `deadline`; stdout and stderr go through files in
/// `out_dir`.
pub fn run_bounded(out_dir: &Path, args: &[&std::ffi::OsStr], deadline: Duration) -> Run {
    let out = tempfile::NamedTempFile::new_in(out_dir).expect("stdout file");
    let err = tempfile::NamedTempFile::new_in(out_dir).expect("stderr file");
    reset_peak_rss();
    let start = Instant::now();
    #[expect(
        clippy::zombie_processes,
        reason = "waited for with wait4 below, which also gives its peak RSS"
    )]
    let child = Command::new(bin())
        .args(args)
        .env("COLUMNS", "100")
        .env_remove("RUST_BACKTRACE")
        .stdin(Stdio::null())
        .stdout(out.reopen().expect("stdout"))
        .stderr(err.reopen().expect("stderr"))
        .spawn()
        .expect("spawn mmap-analyze");
    let pid = i32::try_from(child.id()).expect("pid");
    let mut status = 0;
    // SAFETY: an all-zero rusage is a valid value for wait4 to fill.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let mut timed_out = false;
    loop {
        // SAFETY: `pid` is our child, not yet waited for; both pointers are valid for the call.
        let waited = unsafe { libc::wait4(pid, &mut status, libc::WNOHANG, &mut usage) };
        assert!(waited >= 0, "wait4: {}", std::io::Error::last_os_error());
        if waited == pid {
            break;
        }
        if !timed_out && start.elapsed() > deadline {
            // SAFETY: kill(2) on our own child, which has not been waited for.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            timed_out = true;
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = start.elapsed();
    let mut stdout = Vec::new();
    File::open(out.path())
        .expect("stdout")
        .read_to_end(&mut stdout)
        .expect("read stdout");
    Run {
        status: (!timed_out).then(|| ExitStatus::from_raw(status)),
        stdout,
        stderr: String::from_utf8_lossy(&fs::read(err.path()).expect("stderr")).into_owned(),
        peak_kib: usage.ru_maxrss,
        took,
    }
}

/// Metadata of a capture of recording `capture_id` made with `--stacks fp` (format 1.4).
pub fn stacks_metadata(capture_id: &str) -> CaptureMetadata {
    CaptureMetadata {
        capture_id: Some(capture_id.to_owned()),
        stacks: Some(StacksConfig {
            mode: "fp".to_owned(),
            syscalls: ["mmap", "munmap", "mprotect", "mremap", "brk"]
                .map(str::to_owned)
                .to_vec(),
            max_frames: 127,
            stack_bytes: 0,
        }),
        ..metadata("host-a", Counters::default())
    }
}

/// Frame `index` of stack `stack_id` (0: innermost), first used by process `pid` (`comm`
/// "app"): at 0x5555_0000_1000 + 16 * index in /usr/bin/app, named `function` (None: not
/// named).
pub fn frame_row(stack_id: u64, index: u32, pid: u32, function: Option<&str>) -> Event<'static> {
    Event {
        kind: RowKind::Frame,
        ts_ns: BASE_NS,
        cpu: 1,
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: Cow::Borrowed("app"),
        cgroup_id: 4242,
        source: Some(Cow::Borrowed("stack_fp")),
        stack_id: Some(stack_id),
        frame_index: Some(index),
        frame_addr: Some(0x5555_0000_1000 + 16 * u64::from(index)),
        frame_module: Some(Cow::Borrowed("/usr/bin/app")),
        frame_build_id: Some(Cow::Borrowed("0123456789abcdef")),
        frame_offset: Some(0x1000 + 16 * u64::from(index)),
        frame_function: function.map(|f| Cow::Owned(f.to_owned())),
        symbol_source: function.map(|_| Cow::Borrowed("map_files")),
        ..Default::default()
    }
}

/// The frame rows of stack `stack_id` of process `pid`, named `names` root first (as a folded
/// line reads them).
pub fn stack_frames(stack_id: u64, pid: u32, names: &[&str]) -> Vec<Event<'static>> {
    names
        .iter()
        .rev()
        .enumerate()
        .map(|(index, name)| {
            frame_row(
                stack_id,
                u32::try_from(index).expect("few frames"),
                pid,
                Some(name),
            )
        })
        .collect()
}
