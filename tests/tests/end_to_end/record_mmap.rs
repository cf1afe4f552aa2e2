//! End to end with the real binaries and the real kernel: `mmap-recorder record -- mmap-workload`
//! captures the workload's known mmap calls, and the capture is checked call by call against the
//! workload's own report.
//!
//! These tests load eBPF programs: they are ignored without root, and as root (CI,
//! `--include-ignored`) any failure to load or attach fails them.
use std::{
    io::Write as _,
    path::Path,
    process::{Command, Stdio},
};

use mmap_capture_tests::{
    Report, check_workload_capture, is_root, require_root, start_recorder, workspace_bin,
};
use mmap_format::{event::Event, reader::CaptureReader};

/// Runs `mmap-recorder record -q -o OUT -- mmap-workload --report REPORT` in `dir`.
fn record_workload(dir: &Path) -> (std::process::Output, Report, CaptureReader) {
    let (out, report, capture) = record_workload_with(dir, &[]);
    let reader = CaptureReader::open(&capture).expect("open capture");
    (out, report, reader)
}

/// Runs `mmap-recorder record -q -o DIR/capture.parquet -- mmap-workload --report REPORT --dir
/// DIR EXTRA...` and returns the recorder's output, the workload's report and the capture's path.
pub fn record_workload_with(
    dir: &Path,
    extra: &[&str],
) -> (std::process::Output, Report, std::path::PathBuf) {
    let capture = dir.join("capture.parquet");
    let report_path = dir.join("report.json");
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "-o"])
        .arg(&capture)
        .arg("--")
        .arg(workspace_bin("mmap-workload"))
        .arg("--report")
        .arg(&report_path)
        .arg("--dir")
        .arg(dir)
        .args(extra)
        .output()
        .expect("run mmap-recorder");
    assert!(
        out.status.success(),
        "mmap-recorder failed: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Report =
        serde_json::from_slice(&std::fs::read(&report_path).expect("workload report"))
            .expect("parse report");
    (out, report, capture)
}

#[test]
#[ignore = "needs root"]
fn every_workload_call_is_recorded_once_with_the_right_fields() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (out, report, reader) = record_workload(dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("records written to"),
        "final report missing: {stderr}"
    );

    let meta = reader.metadata().clone();
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode rows");

    assert_eq!(meta.attach_mode, "tracepoint");
    assert!(!meta.targets.system_wide);
    let command = meta.targets.command.as_ref().expect("command in targets");
    assert!(command[0].ends_with("mmap-workload"), "{command:?}");
    assert_eq!(report.calls.len(), 8);
    check_workload_capture(&meta, &events, &report);
    let errnos: Vec<_> = report.calls.iter().filter_map(|c| c.errno).collect();
    assert_eq!(errnos, vec![libc::EBADF, libc::EINVAL]);
}

#[test]
#[ignore = "needs root"]
fn capture_opens_in_pyarrow_duckdb_and_polars() {
    require_root!();
    let python = std::env::var_os("MMAP_CAPTURE_PYTHON")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| {
            let home = std::env::var_os("HOME").expect("HOME");
            Path::new(&home).join(".cache/mmap-capture/venv/bin/python")
        });
    assert!(
        python.exists(),
        "{} missing: run `make venv` (make test does) to install pyarrow, duckdb and polars",
        python.display()
    );
    let dir = tempfile::tempdir().expect("tempdir");
    let (_, _, reader) = record_workload(dir.path());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("interop/check_capture.py");
    let out = Command::new(&python)
        .arg(&script)
        .arg(reader.path())
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "check_capture.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let rows = reader.num_rows();
    assert!(rows >= 8);
    for tool in ["pyarrow", "duckdb", "polars"] {
        assert_eq!(seen[tool]["rows"], rows, "{tool} row count");
    }
    let pa = &seen["pyarrow"]["types"];
    const DICT: &str = "dictionary<values=string, indices=int32, ordered=0>";
    const TS: &str = "timestamp[ns, tz=UTC]";
    let expect_pa = [
        ("kind", DICT),
        ("syscall", DICT),
        ("ts", TS),
        ("ts_exit", TS),
        ("cpu", "uint32"),
        ("pid", "uint32"),
        ("tid", "uint32"),
        ("ppid", "uint32"),
        ("uid", "uint32"),
        ("gid", "uint32"),
        ("comm", DICT),
        ("cgroup_id", "uint64"),
        ("addr", "uint64"),
        ("len", "uint64"),
        ("prot", "uint64"),
        ("flags", "uint64"),
        ("fd", "int32"),
        ("off", "uint64"),
        ("ret", "int64"),
        ("errno", "int32"),
        ("file_dev", "uint64"),
        ("file_ino", "uint64"),
        ("file_name", DICT),
        // Added by format 1.1.
        ("source", DICT),
        ("new_addr", "uint64"),
        ("new_len", "uint64"),
        ("child_pid", "uint32"),
        ("exit_code", "int32"),
        ("file_path", DICT),
        ("path_source", DICT),
        ("path_truncated", "bool"),
        ("file_deleted", "bool"),
        ("file_memfd", "bool"),
        ("cgroup_path", DICT),
        ("pidns_ino", "uint32"),
        ("ns_pid", "uint32"),
        ("ns_tid", "uint32"),
        ("lost_count", "uint64"),
        // Added by format 1.2.
        ("path_lossy", "bool"),
        // Added by format 1.4 (call stacks).
        ("stack_id", "uint64"),
        ("frame_index", "uint32"),
        ("frame_addr", "uint64"),
        ("frame_module", DICT),
        ("frame_build_id", DICT),
        ("frame_offset", "uint64"),
        ("frame_function", DICT),
        ("frame_file", DICT),
        ("frame_line", "uint32"),
        ("symbol_source", DICT),
    ];
    assert_eq!(
        pa.as_object().expect("types").len(),
        expect_pa.len(),
        "pyarrow columns: {pa}"
    );
    for (col, ty) in expect_pa {
        assert_eq!(pa[col], ty, "pyarrow type of {col}");
    }
    let duck = &seen["duckdb"]["types"];
    for (col, ty) in [
        ("ts", "TIMESTAMPTZ_NS"),
        ("pid", "UINTEGER"),
        ("addr", "UBIGINT"),
        ("ret", "BIGINT"),
        ("fd", "INTEGER"),
        ("comm", "VARCHAR"),
        ("file_name", "VARCHAR"),
    ] {
        assert_eq!(duck[col], ty, "duckdb type of {col}: {duck}");
    }
    let polars = &seen["polars"]["types"];
    assert_eq!(
        polars["ts"], "Datetime(time_unit='ns', time_zone='UTC')",
        "{polars}"
    );
    assert_eq!(polars["comm"], "Categorical", "{polars}");
    assert_eq!(polars["addr"], "UInt64", "{polars}");
    let meta = &seen["pyarrow"]["metadata"];
    assert_eq!(meta["mmap_capture.format_major"], "1");
    assert_eq!(meta["mmap_capture.attach_mode"], "tracepoint");
}

#[test]
#[ignore = "needs root"]
fn command_exit_status_is_passed_through() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "-o"])
        .arg(dir.path().join("c.parquet"))
        .args(["--", "sh", "-c", "exit 7"])
        .output()
        .expect("run");
    assert_eq!(
        out.status.code(),
        Some(7),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn refuses_to_overwrite_without_force() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exists.parquet");
    std::fs::write(&path, b"keep me").expect("write");
    if !is_root() {
        // Without root the privilege check comes first; still a clean exit 2.
        let out = Command::new(workspace_bin("mmap-recorder"))
            .args(["record", "-o"])
            .arg(&path)
            .output()
            .expect("run");
        assert_eq!(out.status.code(), Some(2));
        return;
    }
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "--duration", "1s", "-o"])
        .arg(&path)
        .output()
        .expect("run");
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("already exists") && stderr.contains("--force"),
        "{stderr}"
    );
    assert_eq!(stderr.lines().count(), 1, "one line: {stderr}");
    assert_eq!(
        std::fs::read(&path).expect("read"),
        b"keep me",
        "existing file untouched"
    );
}

fn run_workload(dir: &Path, duration: &str) -> Report {
    let report_path = dir.join(format!("report-{duration}.json"));
    let status = Command::new(workspace_bin("mmap-workload"))
        .args(["--duration", duration, "--report"])
        .arg(&report_path)
        .arg("--dir")
        .arg(dir)
        .status()
        .expect("workload");
    assert!(status.success());
    serde_json::from_slice(&std::fs::read(&report_path).expect("report")).expect("parse")
}

#[test]
#[ignore = "needs root"]
fn system_wide_recording_stops_cleanly_on_sigterm() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("system.parquet");
    let (child, stderr) = start_recorder(&["-q"], &capture);
    let recorder_pid = child.id();
    let report = run_workload(dir.path(), "200ms");
    // SAFETY: kill has no memory-safety preconditions.
    unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
    let out = child.wait_with_output().expect("wait");
    let stderr = stderr.join().expect("stderr");
    assert!(out.status.success(), "{}: {stderr}", out.status);
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");

    let reader = CaptureReader::open(&capture).expect("open");
    let meta = reader.metadata().clone();
    assert!(meta.targets.system_wide);
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("rows");
    let from_workload = events.iter().filter(|e| e.pid == report.pid).count();
    assert!(
        from_workload >= report.calls.len(),
        "{from_workload} rows of the workload for {} calls",
        report.calls.len()
    );
    // The recorder never records itself (other recorders, of concurrent tests, it may).
    assert!(events.iter().all(|e| e.pid != recorder_pid));
    assert!(meta.capture_start_ns < meta.capture_end_ns);
}

#[test]
#[ignore = "needs root"]
fn pid_target_stops_when_the_process_exits_and_duration_stops_alone() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let report_path = dir.path().join("report.json");
    // The workload waits (as a shell reading a line) until the recorder has started: on a busy
    // machine, as under the whole test suite, loading and attaching every program before
    // recording is turned on takes seconds. Then the shell execs it, under the same pid.
    let mut workload = Command::new("sh")
        .arg("-c")
        .arg("read go && exec \"$0\" \"$@\"")
        .arg(workspace_bin("mmap-workload"))
        .args(["--duration", "1500ms", "--report"])
        .arg(&report_path)
        .arg("--dir")
        .arg(dir.path())
        .stdin(Stdio::piped())
        .spawn()
        .expect("workload");
    let pid = workload.id();
    let capture = dir.path().join("pid.parquet");
    let (recorder, stderr) = start_recorder(&["-q", "--pid", &pid.to_string()], &capture);
    writeln!(workload.stdin.take().expect("stdin"), "go").expect("start the workload");
    assert!(workload.wait().expect("wait").success());
    let out = recorder.wait_with_output().expect("recorder");
    let stderr = stderr.join().expect("stderr");
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains("all targets exited"), "{stderr}");
    let reader = CaptureReader::open(&capture).expect("open");
    assert_eq!(reader.metadata().targets.pids, vec![pid]);
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("rows");
    assert!(events.len() > 100, "{} rows", events.len());
    assert!(events.iter().all(|e| e.pid == pid));

    // --duration ends a recording by itself.
    let capture = dir.path().join("duration.parquet");
    let (recorder, stderr) = start_recorder(&["-q", "--duration", "300ms", "--pid", "1"], &capture);
    let out = recorder.wait_with_output().expect("recorder");
    let stderr = stderr.join().expect("stderr");
    assert!(
        out.status.success() && stderr.contains("duration reached"),
        "{stderr}"
    );
    CaptureReader::open(&capture).expect("a valid capture");
}
