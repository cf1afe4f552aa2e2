//! `mmap-analyze recover` on captures whose writer was "killed": a journaled writer that is
//! flushed and then forgotten, as if the process had died.

use std::{
    fs::{self, OpenOptions},
    io::Write,
    path::{Path, PathBuf},
};

use mmap_format::{
    journal::{self, journal_path},
    metadata::Counters,
    writer::{CaptureWriter, WriterConfig},
};
use serde_json::Value;

use crate::common::{
    self, metadata, mmap, run, run_ok,
    v11::{FixtureC, metadata_c},
};

/// Bytes of garbage appended after the last journaled row group (a torn write).
pub const TORN: usize = 123;

/// A capture at `dir/name` with 5 rows in 2 journaled row groups and 1 row never flushed, its
/// writer forgotten (no footer), and `TORN` bytes of a torn write at its end.
pub fn crashed_capture(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(name);
    let (file, journal) = journal::create(&path).expect("create capture and journal");
    let config = WriterConfig {
        row_group_rows: 1000,
        ..WriterConfig::default()
    };
    let mut meta = metadata_c();
    let mut writer =
        CaptureWriter::with_journal(file, journal, config, &meta).expect("journaled writer");
    for i in 0..3 {
        writer.push(&mmap(i * 1000, 100, 100, "app")).expect("push");
    }
    writer.flush().expect("flush row group 1");
    meta.counters.emitted = 5;
    writer.set_metadata(&meta);
    for i in 3..5 {
        writer
            .push(&mmap(i * 1000, 100, 101, "app-worker"))
            .expect("push");
    }
    writer.flush().expect("flush row group 2");
    writer
        .push(&mmap(9000, 100, 100, "app"))
        .expect("push a row that is never flushed");
    // The crash: no finish, no footer, no Drop.
    std::mem::forget(writer);
    OpenOptions::new()
        .append(true)
        .open(&path)
        .expect("open for append")
        .write_all(&[0xAB; TORN])
        .expect("append torn bytes");
    path
}

#[test]
fn a_crashed_capture_is_completed_and_then_readable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = crashed_capture(dir.path(), "crashed.parquet");
    assert!(journal_path(&path).exists());

    // Before recovery the file is not readable.
    let output = run(["summary".as_ref(), path.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));

    let stdout = run_ok(["recover".as_ref(), path.as_os_str()]);
    assert_eq!(
        stdout,
        format!(
            "recovered {}: 5 rows in 2 row groups, {TORN} bytes dropped\n",
            path.display()
        )
    );
    assert!(!journal_path(&path).exists(), "the journal is removed");

    let summary: Value = serde_json::from_str(&run_ok([
        "summary".as_ref(),
        path.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("summary JSON");
    assert_eq!(summary["events"], 5);
    assert_eq!(summary["files"][0]["recovered"], true);
    assert_eq!(summary["files"][0]["format_version"], "1.6");
    assert_eq!(
        summary["counters"]["emitted"], 5,
        "the last journaled metadata"
    );
    let table = run_ok(["summary".as_ref(), path.as_os_str()]);
    assert!(table.contains("1.6 (recovered)"), "{table}");

    // A second run finds it complete.
    let again = run_ok(["recover".as_ref(), path.as_os_str()]);
    assert_eq!(
        again,
        format!("{}: already complete, nothing to recover\n", path.display())
    );
}

#[test]
fn json_lines_one_object_per_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let crashed = crashed_capture(dir.path(), "crashed.parquet");
    let fx = FixtureC::new();
    let stdout = run_ok([
        "recover".as_ref(),
        crashed.as_os_str(),
        fx.c.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    let rows = common::json_lines(&stdout);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0]["path"], crashed.display().to_string());
    assert_eq!(rows[0]["status"], "recovered");
    assert_eq!(rows[0]["rows"], 5);
    assert_eq!(rows[0]["row_groups"], 2);
    assert_eq!(rows[0]["bytes_dropped"], TORN);
    let end = rows[0]["capture_end"].as_str().expect("capture_end");
    assert!(end > "2026", "the time of the last frame: {end}");
    assert_eq!(rows[1]["status"], "already_complete");
    assert_eq!(rows[1]["rows"], Value::Null);
}

/// Asserts exit status 2, `stdout` as given and exactly one stderr line starting with `prefix`.
fn expect_error(args: &[&std::ffi::OsStr], stdout: &str, prefix: &str) {
    let output = run(args);
    let stderr = String::from_utf8(output.stderr).expect("UTF-8");
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    assert_eq!(String::from_utf8_lossy(&output.stdout), stdout);
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with(&format!("mmap-analyze: {prefix}")),
        "got {stderr:?}, expected {prefix:?}"
    );
}

#[test]
fn errors_are_one_line_each_and_exit_2() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Cut short without a journal: nothing to recover from.
    let complete = dir.path().join("complete.parquet");
    common::write_capture(
        &complete,
        &metadata("host-a", Counters::default()),
        &[mmap(0, 1, 1, "a")],
    );
    let bytes = fs::read(&complete).expect("read");
    let cut = dir.path().join("cut.parquet");
    fs::write(&cut, &bytes[..bytes.len() / 2]).expect("write half");
    expect_error(
        &["recover".as_ref(), cut.as_os_str()],
        "",
        &format!("{}: no footer, and no journal", cut.display()),
    );

    let missing = dir.path().join("missing.parquet");
    expect_error(
        &["recover".as_ref(), missing.as_os_str()],
        "",
        &format!("{}: no such file", missing.display()),
    );

    let text = dir.path().join("notes.txt");
    fs::write(&text, "not a capture\n").expect("write text");
    let output = run(["recover".as_ref(), text.as_os_str()]);
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(String::from_utf8_lossy(&output.stderr).lines().count(), 1);

    // A good file before a bad one: its result is printed, the bad one fails the command.
    let crashed = crashed_capture(dir.path(), "crashed.parquet");
    expect_error(
        &["recover".as_ref(), crashed.as_os_str(), missing.as_os_str()],
        &format!(
            "recovered {}: 5 rows in 2 row groups, {TORN} bytes dropped\n",
            crashed.display()
        ),
        &format!("{}: no such file", missing.display()),
    );
}
