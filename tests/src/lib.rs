//! Shared pieces of the end-to-end tests: the report the `mmap-workload` program writes, and
//! helpers to find and run the workspace's binaries.
use std::{
    path::{Path, PathBuf},
    process::Command,
    sync::{Condvar, Mutex, MutexGuard, PoisonError},
    time::Duration,
};

use mmap_format::{
    event::{Event, RowKind, Syscall, sources},
    metadata::CaptureMetadata,
};
use serde::{Deserialize, Serialize};

/// A file-backed mapping's identity as `fstat` saw it in the workload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub name: String,
}

/// One mmap call the workload made, with its own clock readings around it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    pub label: String,
    pub tid: u32,
    pub addr: u64,
    pub len: u64,
    pub prot: u64,
    pub flags: u64,
    pub fd: i32,
    pub off: u64,
    /// What the call returned: an address, or -errno.
    pub ret: i64,
    pub errno: Option<i32>,
    pub file: Option<FileId>,
    /// CLOCK_REALTIME (ns since the epoch) just before and just after the call.
    pub before_ns: i64,
    pub after_ns: i64,
}

/// One munmap, mprotect, mremap or brk call (or an mmap of the family scenario).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct FamilyCall {
    pub label: String,
    /// "mmap", "munmap", "mprotect", "mremap" or "brk".
    pub syscall: String,
    pub tid: u32,
    pub addr: u64,
    pub len: Option<u64>,
    pub prot: Option<u64>,
    pub flags: Option<u64>,
    pub new_len: Option<u64>,
    pub new_addr: Option<u64>,
    pub ret: i64,
    pub before_ns: i64,
    pub after_ns: i64,
    /// For mmaps of special files: the path the capture must show, and whether the file is a
    /// memfd or was deleted.
    #[serde(default)]
    pub file_path: Option<String>,
    #[serde(default)]
    pub memfd: Option<bool>,
    #[serde(default)]
    pub deleted: Option<bool>,
    /// mmap's `fd` and `offset` arguments (the --rerun-set calls fill them in).
    #[serde(default)]
    pub fd: Option<i32>,
    #[serde(default)]
    pub off: Option<u64>,
}

/// What `mmap-workload --rerun-set` did: every call of the set, in the order they were made
/// (both threads), and the data file it mapped.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct RerunSet {
    pub pid: u32,
    pub calls: Vec<FamilyCall>,
    /// The data file's identity as `fstat` saw it.
    pub file: Option<FileId>,
}

impl RerunSet {
    /// The call labelled `label`.
    pub fn call(&self, label: &str) -> &FamilyCall {
        self.calls
            .iter()
            .find(|c| c.label == label)
            .unwrap_or_else(|| panic!("no call labelled {label:?} in the workload's report"))
    }
}

/// The fork of the exec child.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ForkInfo {
    pub child_pid: u32,
    pub before_ns: i64,
    pub after_ns: i64,
    /// The child's wait status.
    pub status: i32,
}

/// What the exec'd child did, and its own reading of /proc/self/maps.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ExecChild {
    pub pid: u32,
    /// The path passed to execv.
    pub exe: String,
    pub calls: Vec<FamilyCall>,
    /// /proc/self/maps as the child read it, and the clock around the read.
    pub maps: String,
    pub maps_before_ns: i64,
    pub maps_after_ns: i64,
}

/// Everything the workload did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub pid: u32,
    pub calls: Vec<Call>,
    /// With --family: munmap/mprotect/mremap/brk calls of the main thread.
    #[serde(default)]
    pub family: Vec<FamilyCall>,
    #[serde(default)]
    pub fork: Option<ForkInfo>,
    #[serde(default)]
    pub exec_child: Option<ExecChild>,
}

/// Whether the tests run as root (CI does; loading eBPF needs it).
pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// Fails the test with a clear message when not root. eBPF tests are marked
/// `#[ignore = "needs root"]`: a run without root reports them as ignored, and `make test` runs
/// them with `--include-ignored` as root (CI is root), where any load or attach error fails them.
#[macro_export]
macro_rules! require_root {
    () => {
        assert!(
            $crate::is_root(),
            "{} loads eBPF and needs root: run it as root (make test does, with --include-ignored)",
            module_path!()
        );
    };
}

/// An anonymous private read-write mmap of `len` bytes, its first byte written when `touch`,
/// then its munmap: the steady load of the workload, the bench and the soak.
#[inline]
pub fn map_unmap(len: usize, touch: bool) -> std::io::Result<()> {
    // SAFETY: a fresh anonymous mapping of `len` bytes, written (at most its first byte) only
    // while mapped, then unmapped; nothing else refers to it.
    unsafe {
        let p = libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        );
        if p == libc::MAP_FAILED {
            return Err(std::io::Error::last_os_error());
        }
        if touch {
            p.cast::<u8>().write_volatile(1);
        }
        libc::munmap(p, len);
    }
    Ok(())
}

/// Tests run side by side in one process. A test that floods the machine with calls runs alone
/// among the system-wide recordings ([`heavy_load`]): a system-wide recording ([`light_load`],
/// taken by [`start_recorder`] until the recorder exits) would otherwise record another test's
/// flood, which makes it, and its shutdown, as long as the flood. Waits are bounded (two
/// minutes): a failed test can leave its recorder running, and the others then go on rather
/// than hang.
#[derive(Default)]
struct Load {
    system_wide: usize,
    heavy: bool,
}

static LOAD: Mutex<Load> = Mutex::new(Load {
    system_wide: 0,
    heavy: false,
});
static LOAD_CHANGED: Condvar = Condvar::new();
const LOAD_WAIT: Duration = Duration::from_secs(120);

fn load() -> MutexGuard<'static, Load> {
    LOAD.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Held while a test floods the machine with calls.
pub struct HeavyLoad(());

impl Drop for HeavyLoad {
    fn drop(&mut self) {
        load().heavy = false;
        LOAD_CHANGED.notify_all();
    }
}

/// Waits until no system-wide recording runs, then holds them off until dropped.
pub fn heavy_load() -> HeavyLoad {
    let guard = load();
    let (mut guard, _) = LOAD_CHANGED
        .wait_timeout_while(guard, LOAD_WAIT, |l| l.system_wide > 0 || l.heavy)
        .unwrap_or_else(PoisonError::into_inner);
    guard.heavy = true;
    HeavyLoad(())
}

/// Held while a system-wide recording runs.
pub struct LightLoad(());

impl Drop for LightLoad {
    fn drop(&mut self) {
        let mut guard = load();
        guard.system_wide = guard.system_wide.saturating_sub(1);
        LOAD_CHANGED.notify_all();
    }
}

/// For a recorder run with `record ARGS` (`--` and a command in ARGS, or none): when it records
/// every process, waits for any flood to end and holds floods off until dropped.
pub fn recording_load(args: &[&str]) -> Option<LightLoad> {
    (!args.contains(&"--") && system_wide(args)).then(light_load)
}

fn light_load() -> LightLoad {
    let guard = load();
    let (mut guard, _) = LOAD_CHANGED
        .wait_timeout_while(guard, LOAD_WAIT, |l| l.heavy)
        .unwrap_or_else(PoisonError::into_inner);
    guard.system_wide += 1;
    LightLoad(())
}

/// Whether `record ARGS` (without a command) records every process.
fn system_wide(args: &[&str]) -> bool {
    !args
        .iter()
        .any(|a| matches!(*a, "--pid" | "--comm" | "--cgroup") || a.starts_with("--pid="))
}

/// Starts `mmap-recorder record ARGS -o OUT` and waits for its start line on stderr; the handle
/// yields the rest of its stderr. A system-wide recording waits for any flood to end and holds
/// others off until the recorder's stderr closes (it exits).
pub fn start_recorder(
    args: &[&str],
    out: &Path,
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    start_recorder_command(args, out, &[])
}

/// [`start_recorder`] with `-- COMMAND` (when `command` is not empty).
pub fn start_recorder_command(
    args: &[&str],
    out: &Path,
    command: &[&str],
) -> (std::process::Child, std::thread::JoinHandle<String>) {
    use std::io::{BufRead as _, BufReader};
    let mut cmd = Command::new(workspace_bin("mmap-recorder"));
    cmd.arg("record").args(args).arg("-o").arg(out);
    if !command.is_empty() {
        cmd.arg("--").args(command);
    }
    let guard = (command.is_empty() && system_wide(args)).then(light_load);
    let mut child = cmd
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("start recorder");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Lines before the start line (recovery notes, attach notes) are kept for the caller.
    let mut before = Vec::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("no start line; stderr: {before:?}"))
            .expect("read");
        if line.starts_with("mmap-recorder: recording ") {
            break;
        }
        before.push(line);
    }
    let rest = std::thread::spawn(move || {
        let _guard = guard;
        before
            .into_iter()
            .chain(lines.map_while(Result::ok))
            .collect::<Vec<_>>()
            .join("\n")
    });
    (child, rest)
}

/// The number before `what` in the recorder's final report ("..., 3 lost, 1 orphan exits, ...").
pub fn reported(stderr: &str, what: &str) -> u64 {
    let line = stderr
        .lines()
        .find(|l| l.contains(" records written"))
        .unwrap_or_else(|| panic!("no final report in {stderr}"));
    let at = line
        .find(&format!(" {what}"))
        .unwrap_or_else(|| panic!("no {what:?} in {line}"));
    let number = line[..at].rsplit([' ', ',', '(']).next().expect("a number");
    number
        .parse()
        .unwrap_or_else(|_| panic!("{number:?} before {what:?} in {line}"))
}

/// Metadata and rows of a capture file.
pub fn read_capture(path: &Path) -> (CaptureMetadata, Vec<Event<'static>>) {
    let reader = mmap_format::reader::CaptureReader::open(path).expect("open capture");
    let events = reader
        .events()
        .expect("events")
        .collect::<Result<Vec<_>, _>>()
        .expect("decode rows");
    (reader.metadata().clone(), events)
}

/// Records `mmap-workload --duration DURATION` into `dir/rec/` with a tiny rotation size (16 KiB:
/// several segments) and `extra` recorder options; returns the output directory.
pub fn record_segments(dir: &Path, extra: &[&str], duration: &str) -> PathBuf {
    let rec = dir.join("rec");
    let work = dir.join("work");
    std::fs::create_dir_all(&work).expect("mkdir");
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args([
            "record",
            "-q",
            "--rotate-size",
            "16KiB",
            "--flush-interval",
            "100ms",
        ])
        .args(extra)
        .arg("-o")
        .arg(format!("{}/", rec.display()))
        .arg("--")
        .arg(workspace_bin("mmap-workload"))
        .args(["--duration", duration, "--dir"])
        .arg(&work)
        .output()
        .expect("run mmap-recorder");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    rec
}

/// Runs this workspace's `mmap-analyze` with `args`, and waits for its output.
pub fn analyze<I, S>(args: I) -> std::process::Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<std::ffi::OsStr>,
{
    Command::new(workspace_bin("mmap-analyze"))
        .args(args)
        .output()
        .expect("run mmap-analyze")
}

/// Path of a binary built from this workspace, next to the running test executable
/// (target/<profile>/deps/test-xxxx -> target/<profile>/NAME).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through `make test` (or `cargo build --bins` first)",
        path.display()
    );
    path
}

fn matches_call(ev: &Event<'_>, call: &Call) -> bool {
    ev.tid == call.tid
        && ev.len == Some(call.len)
        && ev.addr == Some(call.addr)
        && ev.prot == Some(call.prot)
        && ev.flags == Some(call.flags)
        && ev.fd == Some(call.fd)
        && ev.off == Some(call.off)
}

/// Checks a capture of `mmap-workload` against its report: every reported call is in `events`
/// exactly once (see [`check_calls`]), only the workload is in the capture, every record the
/// kernel emitted is a row, and nothing was lost.
pub fn check_workload_capture(meta: &CaptureMetadata, events: &[Event<'_>], report: &Report) {
    use mmap_format::event::RowKind;
    assert_eq!(meta.counters.lost(), 0, "records lost: {:?}", meta.counters);
    assert_eq!(meta.counters.orphan_exits, 0, "{:?}", meta.counters);
    assert!(
        !events.iter().any(|e| e.kind == RowKind::Lost),
        "no loss windows"
    );
    // Snapshot rows come from user space; every other row is a kernel record.
    let kernel_rows = events
        .iter()
        .filter(|e| e.kind != RowKind::Snapshot)
        .count();
    assert_eq!(
        meta.counters.emitted, kernel_rows as u64,
        "emitted vs written"
    );
    assert!(
        events.iter().all(|e| e.pid == report.pid),
        "only the workload is recorded"
    );
    check_calls(meta, events, report);
}

/// Every mmap call of the report is in `events` exactly once, with the right thread, arguments,
/// result, errno, file identity, and times inside the workload's own clock readings (allowing
/// only the clock anchor's uncertainty).
pub fn check_calls(meta: &CaptureMetadata, events: &[Event<'_>], report: &Report) {
    let slack = meta.clock_anchors[0].uncertainty_ns as i64 + 1_000;
    let main_tid = report.pid;
    for call in &report.calls {
        let found: Vec<&Event<'_>> = events.iter().filter(|e| matches_call(e, call)).collect();
        assert_eq!(
            found.len(),
            1,
            "{}: {} matching rows",
            call.label,
            found.len()
        );
        let ev = found[0];
        assert_eq!(ev.ret, Some(call.ret), "{}: ret", call.label);
        assert_eq!(ev.errno(), call.errno, "{}: errno", call.label);
        assert_eq!(ev.comm, "mmap-workload", "{}: comm", call.label);
        let ts_exit = exit_time(ev);
        assert!(
            call.before_ns - slack <= ev.ts_ns
                && ev.ts_ns <= ts_exit
                && ts_exit <= call.after_ns + slack,
            "{}: times {}..{} outside the workload's {}..{} (slack {slack})",
            call.label,
            ev.ts_ns,
            ts_exit,
            call.before_ns,
            call.after_ns
        );
        match &call.file {
            Some(file) => {
                assert_eq!(ev.file_dev, Some(file.dev), "{}: dev", call.label);
                assert_eq!(ev.file_ino, Some(file.ino), "{}: ino", call.label);
                assert_eq!(
                    ev.file_name.as_deref(),
                    Some(file.name.as_str()),
                    "{}",
                    call.label
                );
            }
            None => {
                assert_eq!(ev.file_ino, None, "{}: no file expected", call.label);
                assert_eq!(ev.file_name, None, "{}: no file expected", call.label);
            }
        }
        if call.label.starts_with("thread-") {
            assert_ne!(ev.tid, main_tid, "{}: second thread", call.label);
        } else {
            assert_eq!(ev.tid, main_tid, "{}: main thread", call.label);
        }
    }
}

fn syscall_name(s: Syscall) -> &'static str {
    match s {
        Syscall::Mmap => "mmap",
        Syscall::Munmap => "munmap",
        Syscall::Mprotect => "mprotect",
        Syscall::Mremap => "mremap",
        Syscall::Brk => "brk",
        _ => "other",
    }
}

/// The exit time of a call row: `ts_exit`, or for a call recorded at its exit only (`source`
/// `tracepoint_exit`) `ts`, its `ts_exit` being null (checked).
pub fn exit_time(ev: &Event<'_>) -> i64 {
    if ev.source.as_deref().is_some_and(sources::exit_only) {
        assert_eq!(
            ev.ts_exit_ns, None,
            "an exit-only call has no ts_exit: {ev:?}"
        );
        ev.ts_ns
    } else {
        ev.ts_exit_ns.expect("ts_exit")
    }
}

/// The one row of `call`, checked field by field.
pub fn check_family_call<'a>(
    events: &'a [Event<'static>],
    call: &FamilyCall,
    slack: i64,
) -> &'a Event<'static> {
    let found: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| {
            e.kind == RowKind::Syscall
                && e.syscall.map(syscall_name) == Some(call.syscall.as_str())
                && e.tid == call.tid
                && (call.syscall == "mmap" || e.addr == Some(call.addr))
                && e.len == call.len
                && e.new_len == call.new_len
                && (call.syscall != "brk" || e.ret == Some(call.ret))
                && e.ts_ns >= call.before_ns - slack
                && e.ts_ns <= call.after_ns + slack
        })
        .collect();
    assert_eq!(
        found.len(),
        1,
        "{} ({}): {} rows",
        call.label,
        call.syscall,
        found.len()
    );
    let ev = found[0];
    assert_eq!(ev.ret, Some(call.ret), "{}: ret", call.label);
    if call.prot.is_some() {
        assert_eq!(ev.prot, call.prot, "{}: prot", call.label);
    }
    if call.flags.is_some() {
        assert_eq!(ev.flags, call.flags, "{}: flags", call.label);
    }
    if call.new_addr.is_some() {
        assert_eq!(ev.new_addr, call.new_addr, "{}: new_addr", call.label);
    }
    if let Some(path) = &call.file_path {
        assert_eq!(
            ev.file_path.as_deref(),
            Some(path.as_str()),
            "{}: path",
            call.label
        );
        assert_eq!(
            ev.path_source.as_deref(),
            Some("kernel_dentry_walk"),
            "{}",
            call.label
        );
        assert_eq!(ev.path_truncated, Some(false), "{}", call.label);
        assert_eq!(ev.file_memfd, call.memfd, "{}: memfd", call.label);
        assert_eq!(ev.file_deleted, call.deleted, "{}: deleted", call.label);
    }
    let exit = exit_time(ev);
    assert!(
        call.before_ns - slack <= ev.ts_ns && ev.ts_ns <= exit && exit <= call.after_ns + slack,
        "{}: {}..{} outside {}..{}",
        call.label,
        ev.ts_ns,
        exit,
        call.before_ns,
        call.after_ns
    );
    ev
}

/// A mapped range: start, end, perms, file offset, inode, path.
type Region = (u64, u64, String, u64, u64, String);

/// Joins neighbours that map the same thing the same way (same perms, same file at contiguous
/// offsets, or the same kind of anonymous memory), so that two maps can be compared for what is
/// mapped where, independently of where the kernel happened to split or merge its VMAs. The
/// [stack] start is dropped: the stack grows without a system call.
fn canonical(mut regions: Vec<Region>) -> Vec<Region> {
    regions.sort();
    let mut out: Vec<Region> = Vec::new();
    for r in regions {
        if let Some(last) = out.last_mut() {
            let contiguous_offset = r.4 == 0 || last.3 + (last.1 - last.0) == r.3;
            if last.1 == r.0 && last.2 == r.2 && last.4 == r.4 && last.5 == r.5 && contiguous_offset
            {
                last.1 = r.1;
                continue;
            }
        }
        out.push(r);
    }
    for r in &mut out {
        if r.5 == "[stack]" {
            r.0 = 0;
        }
    }
    out
}

/// `mmap-analyze maps` at `at_ns` must show what `maps` (a /proc/PID/maps text) shows: the same
/// bytes mapped with the same permissions from the same file offsets.
pub fn check_replay_matches_maps(dir: &Path, capture: &str, pid: u32, at_ns: i64, maps: &str) {
    let at = chrono::DateTime::from_timestamp_nanos(at_ns)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let out = Command::new(workspace_bin("mmap-analyze"))
        .current_dir(dir)
        .args([
            "maps",
            capture,
            "--pid",
            &pid.to_string(),
            "--at",
            &at,
            "--format",
            "json",
        ])
        .output()
        .expect("mmap-analyze maps");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let replay: serde_json::Value = serde_json::from_slice(&out.stdout).expect("maps json");
    assert_eq!(
        replay["complete"], true,
        "replay says it is incomplete: {}",
        replay["notes"]
    );
    let got: Vec<Region> = replay["regions"]
        .as_array()
        .expect("regions array")
        .iter()
        .map(|r| {
            (
                r["start"].as_u64().expect("start"),
                r["end"].as_u64().expect("end"),
                r["perms"].as_str().expect("perms").to_owned(),
                r["off"].as_u64().unwrap_or(0),
                r["ino"].as_u64().unwrap_or(0),
                r["path"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want: Vec<Region> = maps
        .lines()
        .filter_map(|line| {
            let f: Vec<&str> = line.split_whitespace().collect();
            let (start, end) = f.first()?.split_once('-')?;
            Some((
                u64::from_str_radix(start, 16).ok()?,
                u64::from_str_radix(end, 16).ok()?,
                f.get(1)?.to_string(),
                u64::from_str_radix(f.get(2)?, 16).ok()?,
                f.get(4)?.parse().ok()?,
                f.get(5..).map(|p| p.join(" ")).unwrap_or_default(),
            ))
        })
        .collect();
    assert_eq!(
        canonical(got),
        canonical(want),
        "replayed map differs from the child's /proc/self/maps\nreplay: {}\nmaps:\n{maps}",
        String::from_utf8_lossy(&out.stdout)
    );
}
