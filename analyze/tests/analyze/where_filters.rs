//! `--where SQL` on `events`, `summary`, `replay` and `export` (the rows go through the query
//! engine), a wrong one on every command, and that `events --limit` prints the same first rows as
//! a full listing.

use mmap_format::{event::Event, metadata::Counters};
use serde_json::Value;

use crate::common::{BASE_NS, Fixture, json_lines, metadata, mmap, run, run_ok, write_capture};

/// Rows whose lengths, results, processes and names differ, with what a test checks about them.
fn rows() -> Vec<Event<'static>> {
    let mut rows = Vec::new();
    for i in 0..40_i64 {
        let (pid, comm) = if i % 3 == 0 {
            (7, "java")
        } else {
            (8, "nginx")
        };
        let mut row = mmap(i * 1_000, pid, pid, comm);
        row.len = Some(4096 << (i % 6));
        if i % 7 == 3 {
            row.ret = Some(-12);
        }
        if i % 5 == 1 {
            row.ts_exit_ns = Some(row.ts_ns + 20_000);
        }
        rows.push(row);
    }
    rows
}

/// The entry times (offsets from BASE_NS) of the JSON rows.
fn offsets(rows: &[Value]) -> Vec<i64> {
    rows.iter()
        .map(|row| row["ts_ns"].as_i64().expect("ts_ns") - BASE_NS)
        .collect()
}

/// The offsets of the written rows that pass `keep`.
fn expected(keep: impl Fn(&Event<'_>) -> bool) -> Vec<i64> {
    rows()
        .iter()
        .filter(|row| keep(row))
        .map(|row| row.ts_ns - BASE_NS)
        .collect()
}

fn capture(fixture: &Fixture) -> std::path::PathBuf {
    let path = fixture.path("where.parquet");
    write_capture(&path, &metadata("host-w", Counters::default()), &rows());
    path
}

#[test]
fn events_where_selects_the_rows_the_predicate_says() {
    let fixture = Fixture::new();
    let path = capture(&fixture);
    let events = |args: &[&str]| {
        let mut all = vec!["events", path.to_str().expect("UTF-8 path")];
        all.extend_from_slice(args);
        all.extend_from_slice(&["--format", "json"]);
        offsets(&json_lines(&run_ok(all)))
    };
    assert_eq!(
        events(&["--where", "len >= 65536"]),
        expected(|row| row.len.unwrap_or(0) >= 65536)
    );
    // The decoded columns of the `calls` view, and the other options, combine with AND.
    assert_eq!(
        events(&["--where", "errno_name = 'ENOMEM'", "--pid", "8"]),
        expected(|row| row.ret == Some(-12) && row.pid == 8)
    );
    assert_eq!(
        events(&["--where", "dur_ns > 10000 AND comm = 'java'"]),
        expected(|row| { row.ts_exit_ns.unwrap_or(0) - row.ts_ns > 10_000 && row.comm == "java" })
    );
    assert_eq!(events(&["--where", "false"]), Vec::<i64>::new());
}

/// `replay` and `export` read only the capture's columns, in time order; their --where may still
/// use the decoded columns of the `calls` view.
#[test]
fn replay_and_export_where_may_use_the_decoded_columns() {
    let fixture = Fixture::new();
    let path = capture(&fixture);
    let path = path.to_str().expect("UTF-8 path");
    let out = fixture.path("export.jsonl");
    let out = out.to_str().expect("UTF-8 path");
    type Keep = fn(&Event<'_>) -> bool;
    let cases: [(&str, Keep); 2] = [
        ("errno_name = 'ENOMEM' AND pid = 8", |row| {
            row.ret == Some(-12) && row.pid == 8
        }),
        ("dur_ns > 10000 AND comm = 'java'", |row| {
            row.ts_exit_ns.unwrap_or(0) - row.ts_ns > 10_000 && row.comm == "java"
        }),
    ];
    for (predicate, keep) in cases {
        let replayed = run_ok(["replay", path, "--where", predicate, "--format", "json"]);
        assert_eq!(
            offsets(&json_lines(&replayed)),
            expected(keep),
            "{predicate}"
        );
        run_ok([
            "export", path, "--where", predicate, "--format", "jsonl", "-o", out,
        ]);
        let exported = std::fs::read_to_string(out).expect("export written");
        assert_eq!(
            offsets(&json_lines(&exported)),
            expected(keep),
            "{predicate}"
        );
    }
}

#[test]
fn a_wrong_predicate_is_one_line_exit_1_and_located_in_the_where() {
    let fixture = Fixture::new();
    let path = capture(&fixture);
    let path = path.to_str().expect("UTF-8 path");
    let report = fixture.path("report.html");
    let report = report.to_str().expect("UTF-8 path");
    let export = fixture.path("export.jsonl");
    std::fs::write(&export, "kept\n").expect("write");
    // Every command that reads rows checks its --where the same way.
    let commands: [&[&str]; 9] = [
        &["events"],
        &["summary"],
        &["top"],
        &["latency"],
        &["errors"],
        &["findings"],
        &["replay"],
        &[
            "export",
            "--format",
            "jsonl",
            "-o",
            export.to_str().expect("UTF-8"),
        ],
        &["report", "-o", report],
    ];
    for command in commands {
        let mut args = vec![command[0], path];
        args.extend_from_slice(&command[1..]);
        args.extend_from_slice(&["--where", "len > 1 AND lenn > 1"]);
        let output = run(&args);
        let command = command[0];
        assert_eq!(output.status.code(), Some(1), "{command}");
        assert!(output.stdout.is_empty(), "{command}: nothing on stdout");
        let stderr = String::from_utf8(output.stderr).expect("UTF-8");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{command}: {stderr}");
        assert!(
            stderr.starts_with("mmap-analyze: --where: ")
                && stderr.contains("lenn")
                && stderr.contains("(at column 13 of --where)"),
            "{command}: {stderr}"
        );
    }
    // Nothing was written over.
    assert_eq!(std::fs::read_to_string(&export).expect("read"), "kept\n");
    assert!(!std::path::Path::new(report).exists());
}

#[test]
fn summary_where_counts_only_the_rows_that_pass() {
    let fixture = Fixture::new();
    let path = capture(&fixture);
    let summary = |args: &[&str]| -> Value {
        let mut all = vec![
            "summary",
            path.to_str().expect("UTF-8 path"),
            "--format",
            "json",
        ];
        all.extend_from_slice(args);
        serde_json::from_str(&run_ok(all)).expect("one JSON document")
    };
    let java = summary(&["--where", "comm = 'java'"]);
    let written: Vec<Event<'static>> = rows().into_iter().filter(|r| r.comm == "java").collect();
    let failed = written.iter().filter(|r| r.ret == Some(-12)).count() as u64;
    let mapped: u64 = written
        .iter()
        .filter(|r| r.ret != Some(-12))
        .map(|r| r.len.unwrap_or(0))
        .sum();
    assert_eq!(java["events"], written.len() as u64);
    assert_eq!(java["failed"], failed);
    assert_eq!(java["errors"]["ENOMEM"], failed);
    assert_eq!(java["bytes_mapped"], mapped);
    assert_eq!(java["processes"], 1);
    assert_eq!(java["by_process"][0]["pid"], 7);
    // The files are listed with all their rows whatever the predicate.
    assert_eq!(java["files"][0]["rows"], 40);
    // Without --where, every row.
    assert_eq!(summary(&[])["events"], 40);
}

#[test]
fn limit_prints_the_first_rows_of_the_full_listing() {
    let fixture = Fixture::new();
    let path = capture(&fixture);
    let inputs = [
        fixture.a.to_str().expect("UTF-8 path"),
        fixture.b.to_str().expect("UTF-8 path"),
        path.to_str().expect("UTF-8 path"),
    ];
    let listing = |extra: &[&str]| {
        let mut all = vec!["events"];
        all.extend_from_slice(&inputs);
        all.extend_from_slice(&["--format", "csv"]);
        all.extend_from_slice(extra);
        run_ok(all)
    };
    let full = listing(&[]);
    let first: Vec<&str> = full.lines().take(1 + 7).collect();
    assert_eq!(
        listing(&["--limit", "7"]).lines().collect::<Vec<_>>(),
        first
    );
}

#[test]
fn events_keep_the_order_of_the_file_across_row_groups_read_side_by_side() {
    let fixture = Fixture::new();
    let path = fixture.path("order.parquet");
    // Entry times out of order in the file, so an order by time (or by partition finishing
    // first) would show. More rows than a batch (8192), so the engine splits the file.
    let n = 20_000_i64;
    let rows: Vec<Event<'static>> = (0..n)
        .map(|i| {
            let pid = if i % 2 == 0 { 7 } else { 8 };
            mmap((i * 7919) % n * 1_000, pid, pid, "order")
        })
        .collect();
    crate::common::write_capture_with(&path, &metadata("host-o", Counters::default()), &rows, 500);
    let path = path.to_str().expect("UTF-8 path");
    let listed = |args: &[&str]| {
        let mut all = vec!["events", path, "--format", "json"];
        all.extend_from_slice(args);
        offsets(&json_lines(&run_ok(all)))
    };
    let written = |keep: &dyn Fn(&Event<'_>) -> bool| -> Vec<i64> {
        rows.iter()
            .filter(|row| keep(row))
            .map(|row| row.ts_ns - BASE_NS)
            .collect()
    };
    assert_eq!(listed(&[]), written(&|_| true));
    assert_eq!(listed(&["--pid", "8"]), written(&|row| row.pid == 8));
    assert_eq!(
        listed(&["--limit", "12000"])[..],
        written(&|_| true)[..12_000]
    );
}
