//! `mmap-analyze sql`: the tables, views and functions of the query engine, its output formats,
//! its errors, and that filters reach the Parquet reader.

use std::{
    ffi::OsStr,
    fs::File,
    path::{Path, PathBuf},
};

use mmap_format::metadata::Counters;
use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use serde_json::{Value, json};

use crate::common::{
    BASE_NS, Fixture, assert_quiet_when_the_reader_goes_away, json_lines, metadata, mmap, run,
    run_ok, v11::FixtureC, write_capture_with,
};

/// The fixtures every reader must read, in the repository.
fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/v1")
        .join(name)
}

/// Runs `sql INPUTS... QUERY --format json` and returns the rows.
fn query(inputs: &[&Path], sql: &str) -> Vec<Value> {
    let mut args: Vec<&OsStr> = vec!["sql".as_ref()];
    args.extend(inputs.iter().map(|path| path.as_os_str()));
    args.extend::<[&OsStr; 3]>([sql.as_ref(), "--format".as_ref(), "json".as_ref()]);
    json_lines(&run_ok(args))
}

/// The values of `column` in `rows`.
fn column(rows: &[Value], column: &str) -> Vec<Value> {
    rows.iter().map(|row| row[column].clone()).collect()
}

#[test]
fn calls_decode_names_and_durations() {
    let fx = Fixture::new();
    let rows = query(
        &[&fx.a],
        "SELECT pid, syscall, prot_names, flags_names, errno, errno_name, dur_ns \
         FROM calls ORDER BY ts",
    );
    assert_eq!(rows.len(), 8);
    assert_eq!(
        rows[0],
        json!({
            "pid": 100, "syscall": "mmap", "prot_names": "PROT_READ|PROT_WRITE",
            "flags_names": "MAP_PRIVATE|MAP_ANONYMOUS", "errno": null, "errno_name": null,
            "dur_ns": 500
        })
    );
    assert_eq!(
        column(&rows, "errno_name"),
        [
            json!(null),
            json!(null),
            json!("EBADF"),
            json!(null),
            json!(null),
            json!("ENOMEM"),
            json!(null),
            json!(null)
        ]
    );
    assert_eq!(rows[2]["flags_names"], "MAP_SHARED");
    assert_eq!(rows[4]["syscall"], "munmap");
    assert_eq!(rows[4]["prot_names"], json!(null));
    // The exit of the last call was not seen.
    assert_eq!(rows[7]["dur_ns"], json!(null));
}

#[test]
fn events_tell_inputs_apart() {
    let fx = Fixture::new();
    let rows = query(
        &[&fx.a, &fx.b],
        "SELECT host, file, capture_id, count(*) AS n FROM events GROUP BY host, file, capture_id \
         ORDER BY host",
    );
    assert_eq!(
        rows,
        [
            json!({"host": "host-a", "file": fx.a.display().to_string(), "capture_id": null, "n": 8}),
            json!({"host": "host-b", "file": fx.b.display().to_string(), "capture_id": null, "n": 3}),
        ]
    );
    // A filter on an input's constant column selects that input's rows only.
    let rows = query(
        &[&fx.a, &fx.b],
        "SELECT DISTINCT pid FROM calls WHERE host = 'host-b'",
    );
    assert_eq!(column(&rows, "pid"), [json!(400)]);
}

#[test]
fn views_show_one_kind_of_row_each() {
    let fx = FixtureC::new();
    let c = fx.c.as_path();
    let counts = query(
        &[c],
        "SELECT 'calls' AS view, count(*) AS n FROM calls \
         UNION ALL SELECT 'lifecycle', count(*) FROM lifecycle \
         UNION ALL SELECT 'snapshots', count(*) FROM snapshots \
         UNION ALL SELECT 'lost', count(*) FROM lost ORDER BY view",
    );
    assert_eq!(
        counts,
        [
            json!({"view": "calls", "n": 11}),
            json!({"view": "lifecycle", "n": 3}),
            json!({"view": "lost", "n": 1}),
            json!({"view": "snapshots", "n": 7}),
        ]
    );

    let lifecycle = query(
        &[c],
        "SELECT kind, pid, child_pid, exit_code, file_path FROM lifecycle ORDER BY ts",
    );
    assert_eq!(
        lifecycle,
        [
            json!({"kind": "fork", "pid": 500, "child_pid": 600, "exit_code": null, "file_path": null}),
            json!({"kind": "exec", "pid": 600, "child_pid": null, "exit_code": null, "file_path": "/usr/bin/child"}),
            json!({"kind": "exit", "pid": 600, "child_pid": null, "exit_code": 256, "file_path": null}),
        ]
    );

    let snapshots = query(
        &[c],
        "SELECT pid, source, prot_names, flags_names, file_path FROM snapshots \
         WHERE pid = 600 ORDER BY addr",
    );
    assert_eq!(
        snapshots,
        [
            json!({"pid": 600, "source": "proc_maps:exec", "prot_names": "PROT_READ|PROT_EXEC",
                   "flags_names": "MAP_PRIVATE", "file_path": "/usr/bin/child"}),
            json!({"pid": 600, "source": "proc_maps:exec", "prot_names": "PROT_READ|PROT_WRITE",
                   "flags_names": "MAP_PRIVATE", "file_path": "[stack]"}),
        ]
    );

    let lost = query(
        &[c],
        "SELECT cpu, lost_count, source, ts, ts_exit FROM lost",
    );
    assert_eq!(
        lost,
        [json!({"cpu": 2, "lost_count": 17, "source": "kernel",
                "ts": "2026-11-27T06:01:13.000006500+00:00",
                "ts_exit": "2026-11-27T06:01:13.000007500+00:00"})]
    );

    let mremap = query(
        &[c],
        "SELECT flags_names, new_len FROM calls WHERE syscall = 'mremap'",
    );
    assert_eq!(
        mremap,
        [json!({"flags_names": "MREMAP_MAYMOVE", "new_len": 32768})]
    );
}

#[test]
fn functions_work_in_any_query() {
    let fx = Fixture::new();
    let rows = query(
        &[&fx.a],
        "SELECT prot_names(7) AS p, prot_names(0) AS none, flags_names('mremap', 3) AS mr, \
         flags_names('mmap', 34) AS mm, errno_name(22) AS e, errno_name(4000) AS unknown, \
         prot_names(NULL) AS null_prot",
    );
    assert_eq!(
        rows,
        [json!({
            "p": "PROT_READ|PROT_WRITE|PROT_EXEC", "none": "PROT_NONE",
            "mr": "MREMAP_MAYMOVE|MREMAP_FIXED", "mm": "MAP_PRIVATE|MAP_ANONYMOUS",
            "e": "EINVAL", "unknown": null, "null_prot": null
        })]
    );
    // On the columns of the table itself, grouped.
    let rows = query(
        &[&fx.a],
        "SELECT errno_name(errno) AS name, count(*) AS n FROM events \
         WHERE errno IS NOT NULL GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(
        rows,
        [
            json!({"name": "EBADF", "n": 1}),
            json!({"name": "ENOMEM", "n": 1})
        ]
    );
}

#[test]
fn grouping_by_string_id_gives_the_rows_of_grouping_by_the_strings() {
    // Two real captures: their row groups carry different dictionaries.
    let inputs = [
        fixture("recorded-v1.0.parquet"),
        fixture("recorded-v1.1.parquet"),
    ];
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    for (key, args) in [
        (
            "coalesce(file_path, file_name, '[anon]')",
            "file_path, file_name, '[anon]'",
        ),
        ("comm", "comm"),
        ("syscall", "syscall"),
    ] {
        let by_strings = query(
            &inputs,
            &format!(
                "SELECT {key} AS k, count(*) AS n, sum(len) AS bytes FROM calls \
                 GROUP BY 1 ORDER BY n DESC, 1"
            ),
        );
        let by_numbers = query(
            &inputs,
            &format!(
                "SELECT string_of(k) AS k, n, bytes FROM (SELECT string_id({args}) AS k, \
                 count(*) AS n, sum(len) AS bytes FROM calls GROUP BY 1) ORDER BY n DESC, 1"
            ),
        );
        // Files and system calls make several groups here (one thread name).
        assert!(
            by_strings.len() > usize::from(key != "comm"),
            "{key}: {by_strings:?}"
        );
        assert_eq!(by_numbers, by_strings, "{key}");
    }
    // A number string_id did not give is an error, not a string.
    let fx = Fixture::new();
    let err = expect_error(
        &[
            "sql".as_ref(),
            fx.a.as_os_str(),
            "SELECT string_of(7777777)".as_ref(),
        ],
        1,
    );
    assert!(
        err.contains("7777777 is not a number string_id gave"),
        "{err}"
    );
}

/// Every `GROUP BY` of a capture string is grouped by number (the optimizer rule of
/// analyze/src/engine/intern.rs): the same rows, columns and types as grouping by the strings.
#[test]
fn group_by_a_capture_string_is_grouped_by_number_with_the_same_results() {
    let inputs = [
        fixture("recorded-v1.0.parquet"),
        fixture("recorded-v1.1.parquet"),
    ];
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let numbered = |sql: &str| {
        query(&inputs, &format!("EXPLAIN {sql}"))
            .iter()
            .any(|row| row["plan"].to_string().contains("string_id("))
    };
    for key in [
        "file_path",
        "CAST(comm AS VARCHAR)",
        "coalesce(file_path, file_name, '[anon]')",
        "syscall",
    ] {
        let grouped = format!(
            "SELECT {key} AS k, count(*) AS n FROM calls GROUP BY {key} ORDER BY n DESC, k"
        );
        assert!(numbered(&grouped), "{key}");
        // `substr(key, 1)` hides the column from the rule: grouped by the strings themselves.
        let by_strings = format!(
            "SELECT substr({key}, 1) AS k, count(*) AS n FROM calls GROUP BY substr({key}, 1) \
             ORDER BY n DESC, k"
        );
        assert!(!numbered(&by_strings), "{key}");
        let rows = query(&inputs, &grouped);
        assert!(
            rows.len() > usize::from(!key.contains("comm")),
            "{key}: {rows:?}"
        );
        assert_eq!(rows, query(&inputs, &by_strings), "{key}");
    }
    // The key keeps its type: a dictionary column stays one above the aggregate.
    let types = query(
        &inputs,
        "SELECT arrow_typeof(comm) AS t FROM (SELECT comm FROM calls GROUP BY comm) LIMIT 1",
    );
    assert_eq!(types, [json!({"t": "Dictionary(Int32, Utf8)"})]);
    // ROLLUP is left as it is, and works: its total row has no system call.
    let rollup = "SELECT syscall, count(*) AS n FROM calls GROUP BY ROLLUP(syscall) \
                  ORDER BY n DESC LIMIT 1";
    assert!(!numbered(rollup));
    assert_eq!(query(&inputs, rollup)[0]["syscall"], json!(null));
}

#[test]
fn format_1_0_and_1_1_files_query_together() {
    let v10 = fixture("synthetic-v1.0.parquet");
    let v11 = fixture("synthetic-v1.1.parquet");
    let rows = query(
        &[&v10, &v11],
        "SELECT file LIKE '%v1.0.parquet' AS old, count(*) AS n, count(source) AS with_source, \
         count(errno_name) AS failed FROM calls GROUP BY 1 ORDER BY 1",
    );
    assert_eq!(rows.len(), 2, "{rows:?}");
    let (new, old) = (&rows[0], &rows[1]);
    assert_eq!(old["old"], json!(true));
    assert_eq!(old["n"], json!(12));
    assert_eq!(
        old["with_source"],
        json!(0),
        "format 1.0 has no source column: NULL"
    );
    assert_eq!(old["failed"], json!(4), "EBADF, EINVAL, ENOMEM, EEXIST");
    assert_eq!(new["old"], json!(false));
    assert_eq!(new["with_source"], new["n"]);
    // Every view works over both.
    for view in ["calls", "lifecycle", "snapshots", "lost"] {
        let sql = format!("SELECT * FROM {view}");
        let args: [&OsStr; 4] = [
            "sql".as_ref(),
            v10.as_os_str(),
            v11.as_os_str(),
            sql.as_ref(),
        ];
        let output = run(args);
        assert!(
            output.status.success(),
            "{view}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
}

/// Asserts a failure with exit status `code`, nothing on stdout and one stderr line; returns it.
fn expect_error(args: &[&OsStr], code: i32) -> String {
    let output = run(args);
    let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
    assert_eq!(output.status.code(), Some(code), "{args:?}: {stderr}");
    assert!(output.stdout.is_empty(), "nothing on stdout for {args:?}");
    assert_eq!(
        stderr.lines().count(),
        1,
        "one line for {args:?}: {stderr:?}"
    );
    assert!(stderr.starts_with("mmap-analyze: "), "{stderr}");
    stderr.trim_end().to_owned()
}

#[test]
fn a_wrong_query_is_one_line_and_exit_1() {
    let fx = Fixture::new();
    let a = fx.a.as_os_str();
    let syntax = expect_error(&["sql".as_ref(), a, "SELEC pid FROM calls".as_ref()], 1);
    assert!(syntax.contains("SELEC"), "{syntax}");
    let column = expect_error(&["sql".as_ref(), a, "SELECT pidd FROM calls".as_ref()], 1);
    assert!(column.contains("pidd"), "{column}");
    assert!(column.contains("line 1, column 8"), "{column}");
    let table = expect_error(&["sql".as_ref(), a, "SELECT * FROM nope".as_ref()], 1);
    assert!(table.contains("nope"), "{table}");
    let function = expect_error(
        &[
            "sql".as_ref(),
            a,
            "SELECT prot_names(comm) FROM calls".as_ref(),
        ],
        1,
    );
    assert!(
        function.contains("prot_names takes an integer"),
        "{function}"
    );
}

#[test]
fn a_bad_input_is_exit_2() {
    let fx = Fixture::new();
    let missing = fx.path("missing.parquet");
    let message = expect_error(
        &[
            "sql".as_ref(),
            fx.a.as_os_str(),
            missing.as_os_str(),
            "SELECT 1".as_ref(),
        ],
        2,
    );
    assert!(message.contains("missing.parquet"), "{message}");
    let text = fx.path("notes.txt");
    std::fs::write(&text, "not a capture\n").expect("write a text file");
    expect_error(&["sql".as_ref(), text.as_os_str(), "SELECT 1".as_ref()], 2);
    // Parquet goes to a file only.
    expect_error(
        &[
            "sql".as_ref(),
            fx.a.as_os_str(),
            "SELECT 1".as_ref(),
            "--format".as_ref(),
            "parquet".as_ref(),
        ],
        2,
    );
}

#[test]
fn table_csv_and_parquet_output() {
    let fx = Fixture::new();
    let a = fx.a.as_os_str();
    let sql = "SELECT pid, comm, errno_name FROM calls WHERE pid = 100 ORDER BY ts";
    let table = run_ok(["sql".as_ref(), a, sql.as_ref()]);
    assert_eq!(
        table,
        "pid  comm        errno_name\n\
         100  cat         NULL\n\
         100  cat-worker  NULL\n\
         100  cat         EBADF\n"
    );
    let csv = run_ok([
        "sql".as_ref(),
        a,
        sql.as_ref(),
        "--format".as_ref(),
        "csv".as_ref(),
    ]);
    assert_eq!(
        csv,
        "pid,comm,errno_name\n100,cat,\n100,cat-worker,\n100,cat,EBADF\n"
    );

    let out = fx.path("out.parquet");
    let stdout = run_ok([
        "sql".as_ref(),
        a,
        sql.as_ref(),
        "--format".as_ref(),
        "parquet".as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ]);
    assert!(stdout.is_empty());
    let reader = ParquetRecordBatchReaderBuilder::try_new(File::open(&out).expect("open output"))
        .expect("a Parquet file")
        .build()
        .expect("reader");
    let rows: usize = reader.map(|batch| batch.expect("batch").num_rows()).sum();
    assert_eq!(rows, 3);

    let json_out = fx.path("out.json");
    run_ok([
        "sql".as_ref(),
        a,
        sql.as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "-o".as_ref(),
        json_out.as_os_str(),
    ]);
    let written = std::fs::read_to_string(&json_out).expect("read JSON output");
    assert_eq!(json_lines(&written).len(), 3);
}

#[test]
fn control_characters_in_a_table_are_escaped() {
    let fx = Fixture::new();
    let path = fx.path("evil.parquet");
    let evil = mmap(1000, 1, 1, "x\u{1b}]0;owned\u{7}\n");
    write_capture_with(&path, &metadata("host", Counters::default()), &[evil], 10);
    let table = run_ok([
        "sql".as_ref(),
        path.as_os_str(),
        "SELECT comm FROM calls".as_ref(),
    ]);
    assert_eq!(table, "comm\nx\\u{1b}]0;owned\\u{7}\\n\n");
    // JSON escapes by itself and keeps the value.
    let rows = query(&[&path], "SELECT comm FROM calls");
    assert_eq!(rows[0]["comm"], "x\u{1b}]0;owned\u{7}\n");
}

/// A capture of `groups` row groups of 100 rows; the rows of group `g` are all of pid 1000 + g.
fn capture_by_pid(fx: &Fixture, groups: u32) -> PathBuf {
    let path = fx.path("by-pid.parquet");
    let events: Vec<_> = (0..groups * 100)
        .map(|i| {
            mmap(
                i64::from(i) * 1000,
                1000 + i / 100,
                1000 + i / 100,
                "worker",
            )
        })
        .collect();
    write_capture_with(
        &path,
        &metadata("host-a", Counters::default()),
        &events,
        100,
    );
    path
}

/// The `(total, matched)` counts of pruning metric `name` (`name=10 total → 1 matched ...`) in the
/// plan text of `EXPLAIN ANALYZE`, summed over every scan.
fn pruning(plan: &str, name: &str) -> (u64, u64) {
    let key = format!("{name}=");
    plan.match_indices(&key)
        .map(|(at, _)| {
            let numbers: Vec<u64> = plan[at + key.len()..]
                .split([',', ']'])
                .next()
                .unwrap_or_default()
                .split_whitespace()
                .filter_map(|word| word.parse().ok())
                .collect();
            // `10 total → 1 matched`, possibly followed by `-> 1 fully matched`.
            match numbers[..] {
                [total, matched, ..] => (total, matched),
                _ => panic!("no `total → matched` after {name} in {plan}"),
            }
        })
        .fold((0, 0), |(t, m), (total, matched)| (t + total, m + matched))
}

#[test]
fn a_filter_prunes_row_groups() {
    let fx = Fixture::new();
    let path = capture_by_pid(&fx, 10);
    let rows = query(
        &[&path],
        "EXPLAIN ANALYZE SELECT count(*) FROM calls WHERE pid = 1003",
    );
    let plan: String = rows
        .iter()
        .map(|row| row["plan"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert!(plan.contains("DataSourceExec"), "{plan}");
    assert!(
        plan.contains("predicate="),
        "the filter reaches the scan: {plan}"
    );
    assert_eq!(
        pruning(&plan, "row_groups_pruned_statistics"),
        (10, 1),
        "nine of ten row groups skipped by their statistics: {plan}"
    );
    let counted = query(&[&path], "SELECT count(*) AS n FROM calls WHERE pid = 1003");
    assert_eq!(counted, [json!({"n": 100})]);
}

#[test]
fn closed_stdout_exits_0_silently() {
    let fx = Fixture::new();
    let path = capture_by_pid(&fx, 300);
    for format in ["table", "json", "csv"] {
        // Like `mmap-analyze sql big.parquet "SELECT * FROM events" | head -1`.
        assert_quiet_when_the_reader_goes_away(
            &[
                "sql".as_ref(),
                path.as_os_str(),
                "SELECT * FROM events".as_ref(),
                "--format".as_ref(),
                format.as_ref(),
            ],
            format,
        );
    }
}

#[test]
fn times_are_rfc3339_with_nanoseconds() {
    let fx = Fixture::new();
    let rows = query(&[&fx.a], "SELECT ts FROM calls ORDER BY ts LIMIT 1");
    let expected_ns = BASE_NS + 1000;
    assert_eq!(expected_ns % 1_000_000_000, 1000);
    assert_eq!(rows, [json!({"ts": "2026-11-27T06:01:13.000001000+00:00"})]);
}

#[test]
fn help_snapshot() {
    let output = run(["sql", "--help"]);
    assert!(output.status.success());
    let help = String::from_utf8(output.stdout).expect("UTF-8 help");
    insta::assert_snapshot!("sql_help", help);
}

#[test]
fn a_path_with_glob_characters_names_one_file() {
    let fx = Fixture::new();
    let weird = fx.path("seg [1]*?.parquet");
    std::fs::copy(&fx.a, &weird).expect("copy capture A");
    // `dir/../dir/b.parquet`: a path with `..` in it.
    let name = fx.dir.path().file_name().expect("the directory has a name");
    let dotted = fx.dir.path().join("..").join(name).join("b.parquet");
    let rows = query(
        &[&weird, &dotted],
        "SELECT host, count(*) AS n FROM events GROUP BY host ORDER BY host",
    );
    assert_eq!(
        rows,
        [
            json!({"host": "host-a", "n": 8}),
            json!({"host": "host-b", "n": 3})
        ]
    );
}

/// `MMAP_ANALYZE_LOG_QUERIES=1`: each query a command runs goes to stderr, on one line with its
/// time and rows (control characters escaped); the results on stdout are the same as without.
#[test]
fn queries_are_logged_to_stderr_when_asked() {
    let fx = Fixture::new();
    let sql = "SELECT pid, count(*) AS n FROM calls\nWHERE comm <> '\u{1b}[31m' GROUP BY pid ORDER BY pid";
    let logged = |value: Option<&str>| {
        let mut command = std::process::Command::new(crate::common::bin());
        command
            .args(["sql".as_ref(), fx.a.as_os_str(), sql.as_ref()])
            .args(["--format", "csv"])
            .env_remove("MMAP_ANALYZE_LOG_QUERIES");
        if let Some(value) = value {
            command.env("MMAP_ANALYZE_LOG_QUERIES", value);
        }
        let out = command.output().expect("run mmap-analyze");
        assert!(out.status.success(), "{out:?}");
        (
            String::from_utf8(out.stdout).expect("UTF-8"),
            String::from_utf8(out.stderr).expect("UTF-8"),
        )
    };
    let (quiet, none) = logged(None);
    assert_eq!(none, "");
    assert_eq!(logged(Some("0")), (quiet.clone(), String::new()));
    let (stdout, stderr) = logged(Some("1"));
    assert_eq!(stdout, quiet);
    let lines: Vec<&str> = stderr.lines().collect();
    let rows = quiet.lines().count() - 1;
    assert_eq!(lines.len(), 1, "{stderr}");
    let line = lines[0];
    assert!(
        line.starts_with("mmap-analyze: query: ") && line.contains(&format!(" s, {rows} rows: ")),
        "{line}"
    );
    assert!(
        line.ends_with(
            "rows: SELECT pid, count(*) AS n FROM calls WHERE comm <> '\\u{1b}[31m' GROUP BY pid ORDER BY pid"
        ),
        "{line}"
    );
}

/// A `min` of a column beside a `max` of an expression reads every row group. With DataFusion's
/// aggregate dynamic filter on, the `min` alone made the filter, the row groups after the
/// first were skipped, and the `max` (the end of a capture, as the commands compute it) was
/// that of the first row group.
#[test]
fn min_of_a_column_beside_max_of_an_expression_reads_every_row_group() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("groups.parquet");
    // Two row groups: the second is skipped once the first has given its rows (groups of a
    // thousand rows did not show it).
    let events: Vec<_> = (0..25_000)
        .map(|i| mmap(i * 1_000, 42, 42, "app"))
        .collect();
    let counters = Counters {
        emitted: 25_000,
        ..Counters::default()
    };
    write_capture_with(&path, &metadata("host", counters), &events, 20_000);
    // Not held while the children run (their peak RSS counts this process's at the fork).
    drop(events);
    let rows = query(
        &[&path],
        "SELECT CAST(min(ts) AS BIGINT) AS first, \
         CAST(max(coalesce(ts_exit, ts)) AS BIGINT) AS last FROM events",
    );
    assert_eq!(
        rows,
        [json!({"first": BASE_NS, "last": BASE_NS + 24_999 * 1_000 + 500})]
    );
}
