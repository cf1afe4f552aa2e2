//! User call stacks (format 1.4): `stacks`, `events --stacks`, `maps --stacks` and the SQL views
//! `frames` and `stacks`, over captures written with the format library.

use std::{ffi::OsStr, path::Path};

use mmap_format::event::{Event, Syscall};
use serde_json::Value;

use crate::common::{
    BASE_NS, Fixture, frame_row, json_lines, mmap, run, run_ok, stack_frames, stacks_metadata,
    write_capture,
};

/// The chain the tests look for, root first.
const CHAIN: [&str; 4] = ["main", "outer", "inner", "mmap"];
/// Another chain of the same process.
const OTHER: [&str; 3] = ["main", "other", "mmap"];

/// A call of pid `pid` at `BASE_NS + offset_ns` from stack `stack_id`.
fn call(offset_ns: i64, pid: u32, stack_id: u64, len: u64) -> Event<'static> {
    let mut event = mmap(offset_ns, pid, pid, "app");
    event.len = Some(len);
    event.stack_id = Some(stack_id);
    event
}

/// One recording ("rec-1"):
///
/// | stack | pid | frames (root first)       | calls                                  |
/// |-------|-----|---------------------------|----------------------------------------|
/// | 1     | 100 | main;outer;inner;mmap     | 3 mmap of 4 KiB                        |
/// | 2     | 100 | main;other;mmap           | 1 mmap of 1 MiB, 1 munmap              |
/// | 5     | 200 | main;outer;inner;mmap     | 1 mmap of 8 KiB (the chain of stack 1) |
/// | 9     | 100 | main;unused               | none (frame rows only)                 |
/// | 8     | 100 | (no frame rows)           | 1 mmap of 4 KiB                        |
///
/// and a call without a stack.
fn recording() -> Vec<Event<'static>> {
    let mut events = Vec::new();
    events.extend(stack_frames(1, 100, &CHAIN));
    events.extend(stack_frames(2, 100, &OTHER));
    events.extend(stack_frames(5, 200, &CHAIN));
    events.extend(stack_frames(9, 100, &["main", "unused"]));
    events.push(call(1000, 100, 1, 4096));
    events.push(call(2000, 100, 1, 4096));
    events.push(call(3000, 100, 2, 1 << 20));
    events.push(call(4000, 100, 1, 4096));
    let mut munmap = call(5000, 100, 2, 1 << 20);
    munmap.syscall = Some(Syscall::Munmap);
    munmap.ret = Some(0);
    events.push(munmap);
    events.push(call(6000, 200, 5, 8192));
    events.push(call(7000, 100, 8, 4096));
    let mut without = mmap(8000, 100, 100, "app");
    without.stack_id = None;
    events.push(without);
    events
}

fn write(dir: &Path, name: &str, events: &[Event<'_>]) -> std::path::PathBuf {
    let path = dir.join(name);
    write_capture(&path, &stacks_metadata("rec-1"), events);
    path
}

fn stacks(args: &[&str], input: &Path) -> String {
    let mut all: Vec<&OsStr> = vec!["stacks".as_ref(), input.as_os_str()];
    all.extend(args.iter().map(OsStr::new));
    run_ok(all)
}

#[test]
fn folded_output_names_the_chain_root_first_heaviest_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = write(dir.path(), "rec.parquet", &recording());
    let folded = stacks(&["--format", "folded"], &capture);
    // Stack 1 (3 calls) and stack 5 (1 call, another process) have the same names: merged.
    assert_eq!(
        folded,
        "main;outer;inner;mmap 4\nmain;other;mmap 2\n[frames missing] 1\n"
    );
    let bytes = stacks(&["--format", "folded", "--by", "bytes"], &capture);
    // The munmap maps nothing; stack 8's mmap counts under [frames missing].
    assert_eq!(
        bytes,
        format!(
            "main;other;mmap {}\nmain;outer;inner;mmap {}\n[frames missing] 4096\n",
            1 << 20,
            3 * 4096 + 8192
        )
    );
}

#[test]
fn by_process_keeps_the_processes_apart() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = write(dir.path(), "rec.parquet", &recording());
    let folded = stacks(&["--format", "folded", "--by-process"], &capture);
    assert_eq!(
        folded,
        // Equal calls: more bytes first (stack 5 mapped 8 KiB, stack 8 4 KiB).
        "app-100;main;outer;inner;mmap 3\napp-100;main;other;mmap 2\n\
         app-200;main;outer;inner;mmap 1\napp-100;[frames missing] 1\n"
    );
}

#[test]
fn filters_select_the_calls_counted() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = write(dir.path(), "rec.parquet", &recording());
    assert_eq!(
        stacks(&["--format", "folded", "--pid", "200"], &capture),
        "main;outer;inner;mmap 1\n"
    );
    assert_eq!(
        stacks(&["--format", "folded", "--syscall", "munmap"], &capture),
        "main;other;mmap 1\n"
    );
    assert_eq!(
        stacks(&["--format", "folded", "--where", "len > 4096"], &capture),
        "main;other;mmap 2\nmain;outer;inner;mmap 1\n"
    );
    let wrong = run([
        "stacks".as_ref(),
        capture.as_os_str(),
        "--where".as_ref(),
        "nope > 1".as_ref(),
    ]);
    assert_eq!(wrong.status.code(), Some(1), "a wrong --where exits 1");
}

#[test]
fn unnamed_frames_show_module_and_offset_or_the_address() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = vec![
        frame_row(1, 0, 100, Some("mmap")),
        frame_row(1, 1, 100, None),
        frame_row(1, 2, 100, None),
        frame_row(1, 3, 100, Some("main")),
    ];
    events[2].frame_module = None;
    events.push(call(1000, 100, 1, 4096));
    let capture = write(dir.path(), "rec.parquet", &events);
    let addr = events[2].frame_addr.expect("an address");
    let offset = events[1].frame_offset.expect("an offset");
    assert_eq!(
        stacks(&["--format", "folded"], &capture),
        format!("main;0x{addr:x};app+0x{offset:x};mmap 1\n")
    );
}

#[test]
fn names_with_separators_or_control_characters_are_escaped() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = stack_frames(1, 100, &["main", "a;b", "x\ny\u{1b}[2J", "mmap"]);
    events.push(call(1000, 100, 1, 4096));
    let capture = write(dir.path(), "rec.parquet", &events);
    let folded = stacks(&["--format", "folded"], &capture);
    assert_eq!(folded, "main;a\\u{3b}b;x\\ny\\u{1b}[2J;mmap 1\n");
    let table = stacks(&[], &capture);
    assert!(!table.contains('\u{1b}'), "{table:?}");
    assert!(table.contains("x\\ny\\u{1b}[2J"), "{table}");
}

#[test]
fn the_table_shows_counts_then_frames_innermost_first() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = write(dir.path(), "rec.parquet", &recording());
    let table = stacks(&["--limit", "1"], &capture);
    assert_eq!(
        table,
        "4 calls, 20.0 KiB mapped, 2 processes\n    mmap\n    inner\n    outer\n    main\n"
    );
}

#[test]
fn json_keeps_the_ids_and_every_frame() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = recording();
    let capture = write(dir.path(), "rec.parquet", &events);
    let rows = json_lines(&stacks(&["--format", "json"], &capture));
    let ids: Vec<(u64, u64, u64)> = rows
        .iter()
        .map(|row| {
            (
                row["stack_id"].as_u64().expect("stack_id"),
                row["pid"].as_u64().expect("pid"),
                row["calls"].as_u64().expect("calls"),
            )
        })
        .collect();
    assert_eq!(ids, [(1, 100, 3), (2, 100, 2), (5, 200, 1), (8, 100, 1)]);
    let first = &rows[0];
    assert_eq!(first["capture_id"], "rec-1");
    assert_eq!(first["bytes"], 3 * 4096);
    assert_eq!(first["folded"], "main;outer;inner;mmap");
    let frames = first["frames"].as_array().expect("frames");
    let written: Vec<&Event<'_>> = events
        .iter()
        .filter(|e| e.stack_id == Some(1) && e.frame_index.is_some())
        .collect();
    assert_eq!(frames.len(), written.len());
    for (frame, row) in frames.iter().zip(written) {
        assert_eq!(frame["index"], Value::from(row.frame_index.expect("index")));
        assert_eq!(frame["addr"], Value::from(row.frame_addr.expect("addr")));
        assert_eq!(
            frame["offset"],
            Value::from(row.frame_offset.expect("offset"))
        );
        assert_eq!(frame["module"], "/usr/bin/app");
        assert_eq!(frame["build_id"], "0123456789abcdef");
        assert_eq!(frame["symbol_source"], "map_files");
        assert_eq!(
            frame["function"].as_str(),
            row.frame_function.as_deref(),
            "{frame}"
        );
        assert_eq!(frame["name"], frame["function"]);
    }
    // Stack 8 has no frame rows.
    assert_eq!(rows[3]["folded"], Value::Null);
    assert_eq!(rows[3]["frames"], Value::Array(Vec::new()));
}

#[test]
fn a_capture_without_stacks_says_how_to_record_them() {
    let fixture = Fixture::new();
    for format in ["table", "folded", "json"] {
        let output = run([
            "stacks".as_ref(),
            fixture.a.as_os_str(),
            "--format".as_ref(),
            format.as_ref(),
        ]);
        assert_eq!(output.status.code(), Some(0));
        assert!(output.stdout.is_empty(), "{format}: nothing on stdout");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            stderr.contains("no call stacks in this capture: record with --stacks fp|dwarf"),
            "{stderr}"
        );
    }
}

#[test]
fn the_sql_views_join_calls_to_their_stacks() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = write(dir.path(), "rec.parquet", &recording());
    let sql = |query: &str| {
        json_lines(&run_ok([
            "sql".as_ref(),
            capture.as_os_str(),
            query.as_ref(),
            "--format".as_ref(),
            "json".as_ref(),
        ]))
    };
    // Every stack with frame rows, the one no call used too.
    let rows = sql(
        "SELECT stack_id, pid, frames, leaf_function, caller_function, folded FROM stacks \
         ORDER BY stack_id",
    );
    let stacks: Vec<(u64, u64, &str, &str, &str)> = rows
        .iter()
        .map(|row| {
            (
                row["stack_id"].as_u64().expect("id"),
                row["frames"].as_u64().expect("frames"),
                row["leaf_function"].as_str().expect("leaf"),
                row["caller_function"].as_str().expect("caller"),
                row["folded"].as_str().expect("folded"),
            )
        })
        .collect();
    assert_eq!(
        stacks,
        [
            (1, 4, "mmap", "inner", "main;outer;inner;mmap"),
            (2, 3, "mmap", "other", "main;other;mmap"),
            (5, 4, "mmap", "inner", "main;outer;inner;mmap"),
            (9, 2, "unused", "main", "main;unused"),
        ]
    );
    // The cookbook query of docs/ANALYZE.md: which function mapped the most bytes.
    let rows = sql(
        "SELECT f.name AS function, sum(c.len) AS bytes FROM calls c \
         JOIN frames f ON f.capture_id = c.capture_id AND f.file = c.file \
         AND f.stack_id = c.stack_id AND f.frame_index = 1 \
         WHERE c.syscall = 'mmap' AND c.errno IS NULL \
         GROUP BY f.name ORDER BY bytes DESC",
    );
    assert_eq!(rows[0]["function"], "other");
    assert_eq!(rows[0]["bytes"], 1 << 20);
    assert_eq!(rows[1]["function"], "inner");
    assert_eq!(rows[1]["bytes"], 3 * 4096 + 8192);
}

#[test]
fn events_print_each_calls_frames_under_it() {
    let dir = tempfile::tempdir().expect("temp dir");
    let capture = write(dir.path(), "rec.parquet", &recording());
    let table = run_ok([
        "events".as_ref(),
        capture.as_os_str(),
        "--stacks".as_ref(),
        "--pid".as_ref(),
        "200".as_ref(),
    ]);
    let lines: Vec<&str> = table.lines().collect();
    assert_eq!(lines.len(), 2 + 4, "{table}");
    assert!(lines[1].contains(" mmap "), "{table}");
    assert_eq!(
        lines[2..],
        ["    #0 mmap", "    #1 inner", "    #2 outer", "    #3 main"]
    );
    let missing = run_ok([
        "events".as_ref(),
        capture.as_os_str(),
        "--stacks".as_ref(),
        "--where".as_ref(),
        "stack_id = 8".as_ref(),
    ]);
    assert!(missing.ends_with("\n    [frames missing]\n"), "{missing}");

    let rows = json_lines(&run_ok([
        "events".as_ref(),
        capture.as_os_str(),
        "--stacks".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    let by_time = |offset: i64| {
        rows.iter()
            .find(|row| row["ts_ns"].as_i64() == Some(BASE_NS + offset))
            .expect("the row")
    };
    let names: Vec<&str> = by_time(1000)["stack"]
        .as_array()
        .expect("a stack")
        .iter()
        .map(|frame| frame["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["mmap", "inner", "outer", "main"]);
    assert_eq!(by_time(7000)["stack"], Value::Array(Vec::new()));
    assert_eq!(by_time(8000)["stack"], Value::Null);
    // Without --stacks, no `stack` key.
    let plain = json_lines(&run_ok([
        "events".as_ref(),
        capture.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    assert!(plain.iter().all(|row| row.get("stack").is_none()));
    let csv = run([
        "events".as_ref(),
        capture.as_os_str(),
        "--stacks".as_ref(),
        "--format".as_ref(),
        "csv".as_ref(),
    ]);
    assert_eq!(csv.status.code(), Some(2));
}

#[test]
fn maps_show_the_stack_that_created_each_region() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = stack_frames(1, 100, &CHAIN);
    events.extend(stack_frames(2, 100, &OTHER));
    let mut first = call(1000, 100, 1, 4096);
    first.ret = Some(0x7f00_0000_0000);
    let mut second = call(2000, 100, 2, 8192);
    second.ret = Some(0x7f00_0010_0000);
    events.extend([first, second]);
    let capture = write(dir.path(), "rec.parquet", &events);
    let report: Value = serde_json::from_str(&run_ok([
        "maps".as_ref(),
        capture.as_os_str(),
        "--pid".as_ref(),
        "100".as_ref(),
        "--stacks".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]))
    .expect("JSON");
    let regions = report["regions"].as_array().expect("regions");
    let named: Vec<(u64, Vec<&str>)> = regions
        .iter()
        .map(|region| {
            (
                region["stack_id"].as_u64().expect("a stack"),
                region["stack"]
                    .as_array()
                    .expect("frames")
                    .iter()
                    .map(|f| f["name"].as_str().expect("name"))
                    .collect(),
            )
        })
        .collect();
    assert_eq!(
        named,
        [
            (1, vec!["mmap", "inner", "outer", "main"]),
            (2, vec!["mmap", "other", "main"])
        ]
    );
    let table = run_ok([
        "maps".as_ref(),
        capture.as_os_str(),
        "--pid".as_ref(),
        "100".as_ref(),
        "--stacks".as_ref(),
    ]);
    assert!(
        table.contains("\n    #0 mmap\n    #1 other\n    #2 main\n"),
        "{table}"
    );
}

/// Two segments of one recording: stack 1 is used in both, so both hold its frame rows; the
/// second segment also uses stack 3, whose frame rows only the first holds (a recording killed
/// before the second segment's frame rows were written).
#[test]
fn segments_of_one_recording_count_each_call_once() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut first = stack_frames(1, 100, &CHAIN);
    first.extend(stack_frames(3, 100, &OTHER));
    first.push(call(1000, 100, 1, 4096));
    first.push(call(2000, 100, 3, 4096));
    let mut second = stack_frames(1, 100, &CHAIN);
    second.push(call(3000, 100, 1, 4096));
    second.push(call(4000, 100, 3, 4096));
    write(dir.path(), "seg-00000.parquet", &first);
    write(dir.path(), "seg-00001.parquet", &second);
    let folded = stacks(&["--format", "folded"], dir.path());
    assert_eq!(folded, "main;other;mmap 2\nmain;outer;inner;mmap 2\n");
    let rows = json_lines(&stacks(&["--format", "json"], dir.path()));
    assert_eq!(rows.len(), 2, "{rows:?}");
    for row in &rows {
        assert_eq!(row["calls"], 2);
        let frames = row["frames"].as_array().expect("frames");
        assert!(
            !frames.is_empty(),
            "each stack once, with its frames: {row}"
        );
        let indexes: Vec<u64> = frames
            .iter()
            .map(|f| f["index"].as_u64().expect("index"))
            .collect();
        let expected: Vec<u64> = (0..frames.len() as u64).collect();
        assert_eq!(indexes, expected, "frames not doubled: {row}");
    }
    // events --stacks finds stack 3's frames in the other segment of the recording.
    let table = run_ok([
        "events".as_ref(),
        dir.path().as_os_str(),
        "--stacks".as_ref(),
        "--where".as_ref(),
        "stack_id = 3".as_ref(),
    ]);
    assert_eq!(table.matches("    #1 other").count(), 2, "{table}");
}

/// A crafted capture with a function name of a megabyte: the name is cut to its bound before
/// anything copies it per row, and stderr says so.
#[test]
fn a_huge_function_name_is_cut_to_its_bound() {
    let dir = tempfile::tempdir().expect("temp dir");
    let huge = "f".repeat(1 << 20);
    let mut events = stack_frames(1, 100, &["main", &huge, "mmap"]);
    events.push(call(1000, 100, 1, 4096));
    let capture = write(dir.path(), "rec.parquet", &events);
    let output = run([
        "stacks".as_ref(),
        capture.as_os_str(),
        "--format".as_ref(),
        "folded".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8(output.stdout).expect("UTF-8");
    assert!(stdout.len() < 70_000, "cut: {} bytes", stdout.len());
    assert!(stdout.starts_with("main;fff") && stdout.ends_with(";mmap 1\n"));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("frame_function"), "{stderr}");
}

/// How long `stacks` takes over 500,000 calls from 2,000 stacks of 8 frames (run by hand:
/// `cargo test -p mmap-analyze --test analyze stacks::large -- --ignored --nocapture`; with
/// STACKS_LARGE_KEEP=PATH the capture is kept there, to measure the binary's memory alone).
#[test]
#[ignore = "a measurement, run by hand"]
fn large_capture_time_and_memory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = Vec::new();
    for stack in 0..2000_u64 {
        let names: Vec<String> = (0..8).map(|i| format!("f{stack}_{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        events.extend(stack_frames(stack, 100 + (stack % 50) as u32, &names));
    }
    for i in 0..500_000_i64 {
        let stack = (i * 7919) as u64 % 2000;
        events.push(call(i * 10, 100 + (stack % 50) as u32, stack, 4096));
    }
    let capture = dir.path().join("large.parquet");
    crate::common::write_capture_with(&capture, &stacks_metadata("rec-1"), &events, 65_536);
    drop(events);
    // To measure the binary alone (this process's memory counts in the child's peak RSS).
    if let Some(keep) = std::env::var_os("STACKS_LARGE_KEEP") {
        std::fs::copy(&capture, keep).expect("keep the capture");
    }
    for format in ["folded", "json", "table"] {
        let run = crate::common::run_bounded(
            dir.path(),
            &[
                "stacks".as_ref(),
                capture.as_os_str(),
                "--format".as_ref(),
                format.as_ref(),
            ],
            std::time::Duration::from_secs(300),
        );
        assert!(run.status.is_some_and(|s| s.success()), "{}", run.stderr);
        println!(
            "stacks --format {format}: {:.2} s, peak RSS {} MiB, {} bytes out",
            run.took.as_secs_f64(),
            run.peak_kib / 1024,
            run.stdout.len()
        );
    }
}

/// A partitioned tree whose key is an SQL keyword (`order=`): the views still open, and the
/// stacks of the tree are counted.
#[test]
fn a_partition_key_named_like_a_keyword_keeps_the_views_working() {
    let dir = tempfile::tempdir().expect("temp dir");
    let part = dir.path().join("order=1");
    std::fs::create_dir(&part).expect("partition directory");
    let mut events = stack_frames(1, 100, &CHAIN);
    events.push(call(1000, 100, 1, 4096));
    write(&part, "rec.parquet", &events);
    assert_eq!(
        stacks(&["--format", "folded"], dir.path()),
        "main;outer;inner;mmap 1\n"
    );
}
