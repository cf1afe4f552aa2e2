//! The edges of a recording: what is counted while the programs attach and detach, what each
//! segment counts, and what a start that fails leaves behind (nothing).
use std::{
    os::unix::fs::PermissionsExt as _,
    path::{Path, PathBuf},
    process::{Child, Command, Output, Stdio},
};

use mmap_capture_tests::{read_capture, reported, require_root, workspace_bin};
use mmap_format::{event::RowKind, metadata::Counters};

fn record(args: &[&str]) -> (Output, String) {
    let _load = mmap_capture_tests::recording_load(args);
    let out = Command::new(workspace_bin("mmap-recorder"))
        .arg("record")
        .args(args)
        .output()
        .expect("run mmap-recorder");
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out, stderr)
}

/// The capture files of a segment directory, in segment order.
fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("segment directory")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect();
    files.sort();
    files
}

/// Busy loops of anonymous mmap + munmap pairs, one process each, until killed.
struct BusyLoops(Vec<Child>);

impl BusyLoops {
    fn start(n: usize) -> Self {
        Self(
            (0..n)
                .map(|_| {
                    Command::new(workspace_bin("mmap-workload"))
                        .args(["--pairs", "1000000000"])
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .spawn()
                        .expect("start mmap-workload")
                })
                .collect(),
        )
    }
}

impl Drop for BusyLoops {
    fn drop(&mut self) {
        for child in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Programs attach (and detach) one by one over about a second; calls made meanwhile used to
/// end as orphan exits by the hundred thousand under a busy loop (exit programs still attached
/// after the entry programs were gone). Now recording is on only while all are attached, so
/// orphan exits are the calls in progress when it was turned on: at most one per thread in a
/// call at that moment, a few. Each segment's counters are its own, and they add up to the
/// report's totals.
#[test]
#[ignore = "needs root"]
fn orphan_exits_are_only_calls_in_progress_at_the_start_and_segments_count_their_own() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let seg_dir = dir.path().join("host");
    let busy = BusyLoops::start(2);
    std::thread::sleep(std::time::Duration::from_millis(200));
    let (out, stderr) = record(&[
        "-q",
        "--duration",
        "1200ms",
        "--rotate-time",
        "300ms",
        "-o",
        &format!("{}/", seg_dir.display()),
    ]);
    drop(busy);
    assert!(out.status.success(), "{stderr}");
    let orphans = reported(&stderr, "orphan exits");
    assert!(
        orphans <= 64,
        "{orphans} orphan exits: more than the threads in a call at the start\n{stderr}"
    );

    let files = segments(&seg_dir);
    assert!(files.len() >= 3, "{} segments: {stderr}", files.len());
    let mut sum = Counters::default();
    for file in &files {
        let (meta, events) = read_capture(file);
        let c = meta.counters;
        let kernel_rows = events
            .iter()
            .filter(|e| !matches!(e.kind, RowKind::Snapshot | RowKind::Lost))
            .count() as u64;
        assert_eq!(
            c.emitted,
            kernel_rows,
            "{}: a segment's emitted counts the kernel's records in it",
            file.display()
        );
        let lost_in_band: u64 = events.iter().filter_map(|e| e.lost_count).sum();
        assert_eq!(c.lost_ringbuf_full, lost_in_band, "{}", file.display());
        sum.emitted += c.emitted;
        sum.lost_ringbuf_full += c.lost_ringbuf_full;
        sum.orphan_exits += c.orphan_exits;
        sum.entry_map_full += c.entry_map_full;
        sum.decode_errors += c.decode_errors;
    }
    assert_eq!(sum.orphan_exits, orphans, "segments add up to the report");
    assert_eq!(sum.lost(), reported(&stderr, "lost"), "{sum:?}\n{stderr}");
}

/// A command that cannot start is found out before anything is created; one that exec alone
/// refuses fails after the writer started, before the first row, and what was created then is
/// removed: no capture, no journal, no directory, and the next run is not refused with
/// "already exists".
#[test]
#[ignore = "needs root"]
fn a_start_that_fails_leaves_nothing_behind() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("e.parquet");
    let new_dir = dir.path().join("new/segments");
    let programs = tempfile::tempdir().expect("tempdir");
    let not_executable = programs.path().join("script");
    std::fs::write(&not_executable, "#!/bin/sh\n").expect("write");
    // Executable, but exec finds no interpreter (ENOENT): found out only at the start.
    let no_interpreter = programs.path().join("no-interpreter");
    std::fs::write(&no_interpreter, "#!/no/such/interpreter\n").expect("write");
    std::fs::set_permissions(&no_interpreter, std::fs::Permissions::from_mode(0o755))
        .expect("chmod");
    let left = || -> Vec<PathBuf> {
        std::fs::read_dir(dir.path())
            .expect("read_dir")
            .map(|e| e.expect("entry").path())
            .collect()
    };
    let cases: [(&Path, Vec<&str>, &str); 5] = [
        (
            &file,
            vec!["nosuchcommand"],
            "cannot start nosuchcommand: not found in PATH",
        ),
        // Twice: the first run left nothing to refuse the second.
        (
            &file,
            vec!["nosuchcommand"],
            "cannot start nosuchcommand: not found in PATH",
        ),
        (&new_dir, vec!["nosuchcommand"], "not found in PATH"),
        (
            &file,
            vec![not_executable.to_str().expect("utf-8")],
            "is not executable by root",
        ),
        (
            &new_dir,
            vec![no_interpreter.to_str().expect("utf-8")],
            "No such file or directory",
        ),
    ];
    for (output, command, message) in cases {
        let output = if output == new_dir {
            format!("{}/", output.display())
        } else {
            output.display().to_string()
        };
        let mut args = vec!["-q", "-o", &output, "--"];
        args.extend(command.iter().copied());
        let (out, stderr) = record(&args);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains(message), "{message:?} in {stderr}");
        assert!(!stderr.contains("already exists"), "{stderr}");
        assert_eq!(
            left(),
            Vec::<PathBuf>::new(),
            "left behind by -o {output}: {stderr}"
        );
    }
}
