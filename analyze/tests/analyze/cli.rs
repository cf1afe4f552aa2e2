//! Command-line behaviour: bad inputs, usage errors, a closed stdout, help text.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow_array::{Int32Array, RecordBatch};
use arrow_schema::{DataType, Field, Schema};
use mmap_format::metadata::Counters;
use parquet::arrow::ArrowWriter;

use crate::common::{
    Fixture, assert_quiet_when_the_reader_goes_away, metadata, mmap, run, write_capture_with,
};

/// Asserts a failure with exit status 2, nothing on stdout and exactly one stderr line; returns it.
fn expect_one_line_error(args: &[&std::ffi::OsStr]) -> String {
    let output = run(args);
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(
        output.status.code(),
        Some(2),
        "exit status of {args:?}; stderr: {stderr}"
    );
    assert!(
        output.stdout.is_empty(),
        "nothing on stdout for {args:?}, got: {}",
        String::from_utf8_lossy(&output.stdout)
    );
    assert_eq!(
        stderr.lines().count(),
        1,
        "one stderr line for {args:?}, got: {stderr:?}"
    );
    assert!(stderr.ends_with('\n'));
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_owned()
}

/// Runs every subcommand over `bad` (alone, and after a good input) and checks the error line.
fn check_bad_input(fx: &Fixture, bad: &Path, expected_message: &str) {
    let bad = bad.as_os_str();
    let good = fx.a.as_os_str();
    let cases: [Vec<&std::ffi::OsStr>; 7] = [
        vec!["summary".as_ref(), bad],
        vec![
            "summary".as_ref(),
            good,
            bad,
            "--format".as_ref(),
            "json".as_ref(),
        ],
        vec!["events".as_ref(), bad],
        vec![
            "events".as_ref(),
            good,
            bad,
            "--format".as_ref(),
            "csv".as_ref(),
        ],
        vec!["events".as_ref(), bad, "--format".as_ref(), "json".as_ref()],
        vec!["maps".as_ref(), bad, "--pid".as_ref(), "1".as_ref()],
        vec![
            "maps".as_ref(),
            good,
            bad,
            "--pid".as_ref(),
            "100".as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ],
    ];
    for args in cases {
        let line = expect_one_line_error(&args);
        let expected = format!("mmap-analyze: {expected_message}");
        assert!(
            line.starts_with(&expected),
            "for {args:?}:\n  got      {line:?}\n  expected {expected:?}"
        );
    }
}

#[test]
fn missing_input() {
    let fx = Fixture::new();
    let path = fx.path("does-not-exist.parquet");
    check_bad_input(&fx, &path, &format!("{}: no such file", path.display()));
}

#[test]
fn empty_input() {
    let fx = Fixture::new();
    let path = fx.path("empty.parquet");
    fs::write(&path, b"").expect("write empty file");
    check_bad_input(
        &fx,
        &path,
        &format!("{}: empty file (0 bytes), not a capture", path.display()),
    );
}

#[test]
fn text_input() {
    let fx = Fixture::new();
    let path = fx.path("notes.txt");
    fs::write(&path, "this is a text file, not a capture\n").expect("write text file");
    check_bad_input(
        &fx,
        &path,
        &format!("{}: not a Parquet file (no PAR1 magic)", path.display()),
    );
}

#[test]
fn truncated_capture() {
    let fx = Fixture::new();
    let bytes = fs::read(&fx.a).expect("read capture A");
    let path = fx.path("truncated.parquet");
    fs::write(&path, &bytes[..bytes.len() / 2]).expect("write first half of capture A");
    check_bad_input(
        &fx,
        &path,
        &format!("{}: truncated or damaged Parquet file: ", path.display()),
    );
}

#[test]
fn plain_parquet_without_capture_metadata() {
    let fx = Fixture::new();
    let path = fx.path("plain.parquet");
    write_plain_parquet(&path);
    check_bad_input(
        &fx,
        &path,
        &format!(
            "{}: Parquet file without mmap-capture metadata (not a capture)",
            path.display()
        ),
    );
}

fn write_plain_parquet(path: &Path) {
    let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int32, false)]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![Arc::new(Int32Array::from(vec![1, 2, 3]))],
    )
    .expect("record batch");
    let file = fs::File::create(path).expect("create plain Parquet file");
    let mut writer = ArrowWriter::try_new(file, schema, None).expect("ArrowWriter");
    writer.write(&batch).expect("write batch");
    writer.close().expect("close ArrowWriter");
}

#[test]
fn usage_errors_exit_2() {
    let fx = Fixture::new();
    let a = fx.a.as_os_str();
    for args in [
        vec![],
        vec!["summary"],
        vec!["events"],
        vec!["maps"],
        vec!["recover"],
        vec!["frobnicate"],
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "exit status of {args:?}");
        assert!(output.stdout.is_empty());
    }
    for args in [
        vec!["summary".as_ref(), a, "--format".as_ref(), "csv".as_ref()],
        vec!["summary".as_ref(), a, "--top".as_ref(), "-1".as_ref()],
        vec!["events".as_ref(), a, "--pid".as_ref(), "abc".as_ref()],
        vec!["events".as_ref(), a, "--syscall".as_ref(), "read".as_ref()],
        vec!["events".as_ref(), a, "--format".as_ref(), "xml".as_ref()],
        vec!["events".as_ref(), a, "--kind".as_ref(), "fnord".as_ref()],
        vec!["maps".as_ref(), a],
        vec!["maps".as_ref(), a, "--pid".as_ref(), "x".as_ref()],
        vec![
            "maps".as_ref(),
            a,
            "--pid".as_ref(),
            "100".as_ref(),
            "--at".as_ref(),
            "soon".as_ref(),
        ],
        vec![
            "maps".as_ref(),
            a,
            "--pid".as_ref(),
            "100".as_ref(),
            "--format".as_ref(),
            "csv".as_ref(),
        ],
        vec!["recover".as_ref(), a, "--format".as_ref(), "csv".as_ref()],
    ] {
        let output = run(&args);
        assert_eq!(output.status.code(), Some(2), "exit status of {args:?}");
        assert!(output.stdout.is_empty());
    }
}

/// A capture big enough that its output cannot fit in a pipe's buffer.
fn big_capture(fx: &Fixture) -> PathBuf {
    let path = fx.path("big.parquet");
    let events: Vec<_> = (0..30_000_u32)
        .map(|i| mmap(i64::from(i) * 1000, 1000 + i % 7, 1000 + i % 13, "worker"))
        .collect();
    write_capture_with(
        &path,
        &metadata("host-a", Counters::default()),
        &events,
        4096,
    );
    path
}

#[test]
fn closed_stdout_exits_0_silently() {
    let fx = Fixture::new();
    let big = big_capture(&fx);
    for format in ["table", "json", "csv"] {
        // Like `mmap-analyze events big.parquet | head -1`.
        assert_quiet_when_the_reader_goes_away(
            &[
                "events".as_ref(),
                big.as_os_str(),
                "--format".as_ref(),
                format.as_ref(),
            ],
            format,
        );
    }
}

#[test]
fn help_and_version_snapshots() {
    let settings = {
        let mut s = insta::Settings::clone_current();
        s.add_filter(r"\b\d+\.\d+\.\d+(-[0-9A-Za-z.-]+)?\b", "[VERSION]");
        s
    };
    let text = |args: &[&str]| {
        let output = run(args);
        assert!(output.status.success(), "{args:?} exits 0");
        String::from_utf8(output.stdout).expect("UTF-8 help")
    };
    settings.bind(|| {
        insta::assert_snapshot!("version", text(&["--version"]));
        insta::assert_snapshot!("help", text(&["--help"]));
        insta::assert_snapshot!("summary_help", text(&["summary", "--help"]));
        insta::assert_snapshot!("events_help", text(&["events", "--help"]));
        insta::assert_snapshot!("maps_help", text(&["maps", "--help"]));
        insta::assert_snapshot!("recover_help", text(&["recover", "--help"]));
    });
}
