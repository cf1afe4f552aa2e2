//! What an INPUT can be: a file, a directory of segments, a glob pattern the shell left quoted;
//! and what a command says about crash journals beside the captures.

use std::{ffi::OsStr, fs};

use crate::{
    common::{
        json_lines, run, run_ok,
        segmented::{segment_name, write_segments},
    },
    recover::{TORN, crashed_capture},
};

#[test]
fn every_command_takes_a_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_segments(dir.path(), &[0, 1, 2]);
    let d = dir.path().as_os_str();
    let summary = run_ok(["summary".as_ref(), d]);
    assert!(summary.contains("Files (3)"), "{summary}");
    let events = json_lines(&run_ok([
        "events".as_ref(),
        d,
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    assert_eq!(events.len(), 10 - 2, "every row but the 2 snapshot rows");
    run_ok(["maps".as_ref(), d, "--pid".as_ref(), "800".as_ref()]);
    let recovered = run_ok(["recover".as_ref(), d]);
    assert_eq!(
        recovered.lines().count(),
        3,
        "each segment: already complete\n{recovered}"
    );
    assert!(recovered.contains("already complete"), "{recovered}");
}

#[test]
fn a_quoted_pattern_is_expanded_in_name_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_segments(dir.path(), &[2, 0, 1]);
    let pattern = dir.path().join("mmap-*-0000[01].parquet");
    assert_eq!(
        summary_files(pattern.as_os_str()),
        [0, 1].map(|i| dir.path().join(segment_name(i)).display().to_string())
    );
    let none = run([
        "summary".as_ref(),
        dir.path().join("nothing-*.parquet").as_os_str(),
    ]);
    assert_eq!(none.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&none.stderr);
    assert!(stderr.contains("no file matches this pattern"), "{stderr}");
}

#[test]
fn a_damaged_capture_with_a_journal_says_to_recover_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let crashed = crashed_capture(dir.path(), "crashed.parquet");
    for command in ["summary", "events", "maps"] {
        let mut args: Vec<&OsStr> = vec![command.as_ref(), crashed.as_os_str()];
        if command == "maps" {
            args.extend([OsStr::new("--pid"), OsStr::new("100")]);
        }
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "{command}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.contains(&format!(
                "run `mmap-analyze recover {}` to complete it",
                crashed.display()
            )),
            "{command}: {stderr}"
        );
    }
    // Through a directory: the journal is noted, the capture's error says the same.
    let output = run(["summary".as_ref(), dir.path().as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("crashed.parquet.journal: a crash journal, not a capture; skipped"),
        "{stderr}"
    );
    assert!(stderr.contains("run `mmap-analyze recover"), "{stderr}");

    // Recovering the directory completes it.
    let recovered = run_ok(["recover".as_ref(), dir.path().as_os_str()]);
    assert!(
        recovered.contains(&format!("{TORN} bytes dropped")),
        "{recovered}"
    );
    run_ok(["summary".as_ref(), dir.path().as_os_str()]);
}

#[test]
fn links_and_special_files_in_a_directory_are_skipped_with_a_note() {
    let dir = tempfile::tempdir().expect("temp dir");
    write_segments(dir.path(), &[0]);
    std::os::unix::fs::symlink("/dev/zero", dir.path().join("zero.parquet")).expect("symlink");
    let fifo = dir.path().join("fifo.parquet");
    let status = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("mkfifo");
    assert!(status.success());
    fs::create_dir(dir.path().join("notes")).expect("mkdir");
    let output = run(["summary".as_ref(), dir.path().as_os_str()]);
    assert!(output.status.success(), "no hang, no error");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 2, "{stderr}");
    assert!(
        stderr
            .contains("zero.parquet: skipped, not a regular file (a symbolic link, not followed)")
    );
    assert!(stderr.contains("fifo.parquet: skipped, not a regular file (a FIFO)"));
    // Named on the command line, a FIFO is an error, not a hang.
    let output = run(["summary".as_ref(), fifo.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
}

#[test]
fn of_several_damaged_segments_the_first_in_order_is_the_error() {
    // The segments open side by side; the error must still be the first damaged one in name
    // order, whichever fails first in time.
    let dir = tempfile::tempdir().expect("temp dir");
    let indices: Vec<u32> = (0..12).collect();
    let paths = write_segments(dir.path(), &indices);
    for damaged in [8, 3, 11] {
        fs::write(&paths[damaged], b"not a capture at all").expect("damage");
    }
    for _ in 0..5 {
        let output = run(["summary".as_ref(), dir.path().as_os_str()]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(&segment_name(3)), "{stderr}");
        for later in [8, 11] {
            assert!(!stderr.contains(&segment_name(later)), "{stderr}");
        }
    }
    // With the damaged ones whole again, every segment opens, in order.
    let paths = write_segments(dir.path(), &indices);
    let expected: Vec<String> = paths.iter().map(|p| p.display().to_string()).collect();
    assert_eq!(summary_files(dir.path().as_os_str()), expected);
}

/// The paths of the files `summary --format json` says it read from `input`, in its order.
fn summary_files(input: &OsStr) -> Vec<String> {
    let s: serde_json::Value = serde_json::from_str(&run_ok([
        "summary".as_ref(),
        input,
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("JSON");
    s["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| f["path"].as_str().expect("path").to_owned())
        .collect()
}
