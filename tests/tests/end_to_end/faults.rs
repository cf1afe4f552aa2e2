//! Faults while recording, with the real binaries and kernel: the disk filling up, the output
//! removed, a target that does not exist, a command that exits at once, and signals to the
//! recorder. Each must end with a clear error and a non-zero exit, or a valid capture (or one
//! that `mmap-analyze recover` makes valid).
use std::{
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
    time::{Duration, Instant},
};

use mmap_capture_tests::{read_capture, require_root, start_recorder, workspace_bin};

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
            && last.ends_with("No space left on device (os error 28)"),
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

    fs.grow("8m");
    let out = analyze(&["recover"], std::slice::from_ref(&unfinished));
    assert!(
        out.status.success(),
        "recover: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (meta, events) = read_capture(&unfinished);
    assert!(meta.recovered);
    assert!(!events.is_empty(), "the rows flushed before the error");
    let out = analyze(&["summary", "--format", "json"], &files_in(&seg_dir));
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
