//! Faults while recording, with the real binaries and kernel: the disk filling up, the output
//! removed, a target that does not exist, a command that exits at once, and signals to the
//! recorder. Each must end with a clear error and a non-zero exit, or a valid capture (or one
//! that `mmap-analyze recover` makes valid).
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use mmap_capture_tests::{
    read_capture, require_root, start_recorder, start_recorder_command, workspace_bin,
};

/// A command that ignores SIGTERM, SIGHUP and SIGINT (its sleep inherits that), and ends by
/// itself a few seconds later.
const IGNORES_SIGNALS: [&str; 3] = ["sh", "-c", "trap '' TERM HUP INT; sleep 4"];

/// A tmpfs of a given size mounted on a new directory; unmounted on drop, also when the test
/// fails.
struct SmallFs {
    dir: tempfile::TempDir,
}

impl SmallFs {
    fn mount(size: &str) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(dir.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs: {status}");
        Self { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Gives the file system more room (as a user would by freeing space).
    fn grow(&self, size: &str) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(self.path())
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -o remount: {status}");
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let done = Command::new("umount")
            .arg(self.path())
            .status()
            .is_ok_and(|s| s.success());
        if !done {
            let _ = Command::new("umount").arg("-l").arg(self.path()).status();
        }
    }
}

/// A process making anonymous mmap + munmap pairs until killed (on drop).
struct Busy(Child);

impl Busy {
    fn start() -> Self {
        Self(
            Command::new(workspace_bin("mmap-workload"))
                .args(["--pairs", "1000000000"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start mmap-workload"),
        )
    }

    fn pid(&self) -> String {
        self.0.id().to_string()
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Waits for `child` at most `limit`; kills it and fails the test when it takes longer.
fn wait_at_most(mut child: Child, limit: Duration, what: &str) -> std::process::ExitStatus {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: the recorder did not stop within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn analyze(args: &[&str], files: &[PathBuf]) -> Output {
    Command::new(workspace_bin("mmap-analyze"))
        .args(args)
        .args(files)
        .output()
        .expect("run mmap-analyze")
}

fn files_in(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .map(|entries| entries.map(|e| e.expect("entry").path()).collect())
        .unwrap_or_default();
    files.sort();
    files
}

/// The disk fills up: the recorder stops at once (its target runs on), says which file could
/// not be written and why, exits non-zero; the finished segments are valid and the last one,
/// left with its journal, is completed by `mmap-analyze recover` once there is room.
#[test]
#[ignore = "needs root"]
fn a_full_disk_stops_the_recording_with_the_io_error_and_keeps_what_was_flushed() {
    require_root!();
    let fs = SmallFs::mount("2m");
    let seg_dir = fs.path().join("cap");
    let busy = Busy::start();
    let (rec, stderr) = start_recorder(
        &[
            "-q",
            "--pid",
            &busy.pid(),
            "--rotate-size",
            "256KiB",
            "--flush-interval",
            "100ms",
            "--zstd-level",
            "1",
        ],
        Path::new(&format!("{}/", seg_dir.display())),
    );
    // The target never exits: only the error can stop the recorder.
    let status = wait_at_most(rec, Duration::from_secs(90), "disk full");
    let stderr = stderr.join().expect("stderr");
    assert_eq!(status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with(&format!("mmap-recorder: writing {}/", seg_dir.display()))
            // The I/O error, however the parquet writer wrapped it (it can quote it).
            && last.contains("No space left on device (os error 28)"),
        "the last line names the file and the I/O error: {stderr}"
    );
    assert!(!stderr.contains("writer thread"), "{stderr}");
    drop(busy);

    let files = files_in(&seg_dir);
    let journals: Vec<_> = files
        .iter()
        .filter(|f| f.to_string_lossy().ends_with(".journal"))
        .collect();
    assert_eq!(journals.len(), 1, "one unfinished segment: {files:?}");
    let unfinished = journals[0].with_extension("");
    assert!(last.contains(&unfinished.display().to_string()), "{stderr}");
    assert!(
        stderr.contains(&format!("mmap-analyze recover {}", unfinished.display())),
        "says how to complete the last segment: {stderr}"
    );
    let finished: Vec<PathBuf> = files
        .iter()
        .filter(|f| f.extension().is_some_and(|e| e == "parquet") && **f != unfinished)
        .cloned()
        .collect();
    assert!(
        finished.len() >= 2,
        "rotated before the disk was full: {files:?}"
    );
    let out = analyze(&["summary", "--format", "json"], &finished);
    assert!(
        out.status.success(),
        "finished segments read: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        !analyze(&["summary"], std::slice::from_ref(&unfinished))
            .status
            .success(),
        "the unfinished segment has no footer yet"
    );

    // While the disk is still full, recovery may lack room for the footer: then it says so,
    // and a second try once there is room completes the file.
    let out = analyze(&["recover"], std::slice::from_ref(&unfinished));
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("No space left on device"), "{stderr}");
        fs.grow("8m");
        let out = analyze(&["recover"], std::slice::from_ref(&unfinished));
        assert!(
            out.status.success(),
            "recover: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Every row decodes; there may be none, when the disk filled before the segment's first
    // flush (right after a rotation: seen under load).
    let (meta, _events) = read_capture(&unfinished);
    assert!(meta.recovered);
    let out = analyze(
        &["summary", "--format", "json"],
        std::slice::from_ref(&seg_dir),
    );
    assert!(
        out.status.success(),
        "every segment reads: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The output is removed while recording (the file, or the whole segment directory): the
/// recorder notices at its next flush, says so, exits non-zero, and leaves no journal behind.
#[test]
#[ignore = "needs root"]
fn a_removed_output_stops_the_recording_with_a_clear_error() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let busy = Busy::start();
    for (tag, out) in [
        ("file", dir.path().join("gone.parquet")),
        ("directory", dir.path().join("gone-dir/")),
    ] {
        let out = if tag == "directory" {
            PathBuf::from(format!("{}/", out.display()))
        } else {
            out
        };
        let (rec, stderr) = start_recorder(
            &["-q", "--pid", &busy.pid(), "--flush-interval", "100ms"],
            &out,
        );
        std::thread::sleep(Duration::from_millis(300));
        if tag == "directory" {
            std::fs::remove_dir_all(&out).expect("rm -r");
        } else {
            std::fs::remove_file(&out).expect("rm");
            std::fs::remove_file(mmap_format::journal::journal_path(&out)).expect("rm journal");
        }
        let removed = Instant::now();
        let status = wait_at_most(rec, Duration::from_secs(10), tag);
        let stopped_after = removed.elapsed();
        let stderr = stderr.join().expect("stderr");
        assert_eq!(status.code(), Some(2), "{tag}: {stderr}");
        assert!(
            stderr
                .lines()
                .last()
                .is_some_and(|l| l.ends_with("the file was removed while recording")),
            "{tag}: {stderr}"
        );
        assert!(
            stopped_after < Duration::from_secs(5),
            "{tag}: stopped {stopped_after:?} after the removal"
        );
        assert_eq!(
            files_in(dir.path()),
            Vec::<PathBuf>::new(),
            "{tag}: nothing recreated: {stderr}"
        );
    }
}

/// Sends `signal` to the recorder.
fn send(child: &Child, signal: libc::c_int) {
    // SAFETY: kill has no memory-safety preconditions.
    let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
    assert_eq!(rc, 0, "kill");
}

/// The capture at `path` is complete (footer, no journal) and readable by the analyzer; returns
/// its rows.
fn complete(path: &Path, context: &str) -> Vec<mmap_format::event::Event<'static>> {
    assert!(
        !mmap_format::journal::journal_path(path).exists(),
        "{context}: journal left"
    );
    let out = analyze(&["summary"], &[path.to_path_buf()]);
    assert!(
        out.status.success(),
        "{context}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    read_capture(path).1
}

/// A pid that names no process now.
fn free_pid() -> u32 {
    let max: u32 = std::fs::read_to_string("/proc/sys/kernel/pid_max")
        .expect("pid_max")
        .trim()
        .parse()
        .expect("pid_max value");
    (2..max)
        .rev()
        .find(|pid| !Path::new(&format!("/proc/{pid}")).exists())
        .expect("a free pid")
}

#[test]
#[ignore = "needs root"]
fn a_target_pid_that_does_not_exist_is_a_one_line_error_and_leaves_nothing() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let pid = free_pid().to_string();
    for out in ["x.parquet", "segs/"] {
        let output = Command::new(workspace_bin("mmap-recorder"))
            .args(["record", "-q", "--pid", &pid, "-o"])
            .arg(dir.path().join(out))
            .output()
            .expect("run mmap-recorder");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{stderr}");
        assert_eq!(
            stderr.trim_end(),
            format!("mmap-recorder: --pid {pid}: no such process")
        );
        assert_eq!(files_in(dir.path()), Vec::<PathBuf>::new(), "{out}");
    }
}

/// A command that exits at once: a complete capture with its exit, and its status passed on
/// (the code, or 128 + the signal that ended it).
#[test]
#[ignore = "needs root"]
fn a_command_that_exits_at_once_gives_a_complete_capture_and_its_status() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    for (i, (command, code)) in [
        (&["true"][..], 0),
        (&["false"][..], 1),
        (&["sh", "-c", "exit 7"][..], 7),
        (&["sh", "-c", "kill -TERM $$"][..], 128 + 15),
    ]
    .into_iter()
    .enumerate()
    {
        let capture = dir.path().join(format!("{i}.parquet"));
        let output = Command::new(workspace_bin("mmap-recorder"))
            .args(["record", "-q", "-o"])
            .arg(&capture)
            .arg("--")
            .args(command)
            .output()
            .expect("run mmap-recorder");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(code), "{command:?}: {stderr}");
        assert!(stderr.contains("(command exited: "), "{stderr}");
        let rows = complete(&capture, &format!("{command:?}"));
        assert!(
            rows.iter()
                .any(|e| e.kind == mmap_format::event::RowKind::Exit),
            "{command:?}: the command's exit is recorded"
        );
    }
}

/// SIGTERM and SIGHUP with a command: the first goes to the command, whose exit ends the
/// recording with its status (128 + the signal); a second one, when the command ignores the
/// first, stops at once (exit 0). Either way the capture is complete.
#[test]
#[ignore = "needs root"]
fn sigterm_and_sighup_go_to_the_command_first_and_a_second_one_stops() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    for (name, signal) in [("SIGTERM", libc::SIGTERM), ("SIGHUP", libc::SIGHUP)] {
        // A command the signal ends.
        let capture = dir.path().join(format!("{name}-ends.parquet"));
        let (rec, stderr) = start_recorder_command(&["-q"], &capture, &["sleep", "30"]);
        std::thread::sleep(Duration::from_millis(300));
        send(&rec, signal);
        let status = wait_at_most(rec, Duration::from_secs(10), name);
        let stderr = stderr.join().expect("stderr");
        assert_eq!(status.code(), Some(128 + signal), "{name}: {stderr}");
        assert!(
            stderr.contains(&format!("command exited: signal: {signal} ({name})")),
            "{name}: {stderr}"
        );
        complete(&capture, name);

        // A command that ignores it (and ends by itself soon after the test).
        let capture = dir.path().join(format!("{name}-twice.parquet"));
        let (rec, stderr) = start_recorder_command(&["-q"], &capture, &IGNORES_SIGNALS);
        std::thread::sleep(Duration::from_millis(300));
        send(&rec, signal);
        std::thread::sleep(Duration::from_millis(300));
        let mut rec = rec;
        assert!(
            rec.try_wait().expect("try_wait").is_none(),
            "{name}: one signal went to the command; recording goes on"
        );
        send(&rec, signal);
        let status = wait_at_most(rec, Duration::from_secs(3), name);
        let stderr = stderr.join().expect("stderr");
        assert_eq!(status.code(), Some(0), "{name}: {stderr}");
        assert!(stderr.contains(&format!("stopped by {name}")), "{stderr}");
        complete(&capture, name);
    }
}

/// SIGINT twice with a command (Ctrl-C reaches the command too, so the first one only waits for
/// it): the second stops at once with a complete capture.
#[test]
#[ignore = "needs root"]
fn a_second_sigint_stops_at_once() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("int.parquet");
    let (mut rec, stderr) = start_recorder_command(&["-q"], &capture, &IGNORES_SIGNALS);
    std::thread::sleep(Duration::from_millis(300));
    send(&rec, libc::SIGINT);
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        rec.try_wait().expect("try_wait").is_none(),
        "still recording"
    );
    send(&rec, libc::SIGINT);
    let status = wait_at_most(rec, Duration::from_secs(3), "SIGINT");
    let stderr = stderr.join().expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGINT"), "{stderr}");
    complete(&capture, "SIGINT");
}

/// Without a command, SIGHUP (a closed terminal) stops like SIGTERM: a complete capture. It
/// used to kill the recorder and leave a capture only `recover` could complete.
#[test]
#[ignore = "needs root"]
fn sighup_stops_a_recording_cleanly() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("hup.parquet");
    let (rec, stderr) = start_recorder(&["-q"], &capture);
    std::thread::sleep(Duration::from_millis(200));
    send(&rec, libc::SIGHUP);
    let status = wait_at_most(rec, Duration::from_secs(10), "SIGHUP");
    let stderr = stderr.join().expect("stderr");
    assert_eq!(status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGHUP"), "{stderr}");
    assert!(!complete(&capture, "SIGHUP").is_empty());
}

/// A signal while the programs load (before the start line): it used to kill the recorder
/// and leave an empty file that the next run refused ("already exists"); now the recording
/// stops as soon as it has started, with a complete capture.
#[test]
#[ignore = "needs root"]
fn a_sigterm_during_set_up_still_gives_a_complete_capture() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("early.parquet");
    let rec = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "-o"])
        .arg(&capture)
        .stderr(Stdio::piped())
        .spawn()
        .expect("start recorder");
    // The recorder is still loading its programs (that takes most of a second).
    std::thread::sleep(Duration::from_millis(100));
    send(&rec, libc::SIGTERM);
    let out = rec.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("stopped by SIGTERM"), "{stderr}");
    complete(&capture, "SIGTERM during set-up");
}

/// Its stderr gone (a closed pipe; a hung-up terminal is alike): the recorder records and
/// closes its capture as usual, and exits 0. It used to abort (a panic while printing).
#[test]
#[ignore = "needs root"]
fn a_closed_stderr_does_not_stop_the_recorder() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = dir.path().join("quietly.parquet");
    // A command target, not system-wide: a parallel test's flood would otherwise make this
    // recording (and its shutdown) as long as the flood.
    let mut rec = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "-o"])
        .arg(&capture)
        .args(["--", "sleep", "1"])
        .stderr(Stdio::piped())
        .spawn()
        .expect("start recorder");
    drop(rec.stderr.take());
    let status = wait_at_most(rec, Duration::from_secs(20), "closed stderr");
    assert_eq!(status.code(), Some(0), "{status}");
    assert!(!complete(&capture, "closed stderr").is_empty());
}
