//! `mmap-analyze summary` over captures written with the format library.

use serde_json::{Value, json};

use crate::common::{self, Fixture, counters_a, metadata, run_ok, run_ok_in, write_capture};

fn summary_json(args: &[&std::path::Path], extra: &[&str]) -> Value {
    let mut cmd: Vec<std::ffi::OsString> = vec!["summary".into()];
    cmd.extend(args.iter().map(|p| p.as_os_str().to_owned()));
    cmd.extend(["--format".into(), "json".into()]);
    cmd.extend(extra.iter().map(Into::into));
    let stdout = run_ok(cmd);
    serde_json::from_str(&stdout).expect("summary --format json prints one JSON object")
}

#[test]
fn json_counts_equal_what_was_written() {
    let fx = Fixture::new();
    let s = summary_json(&[&fx.a], &[]);

    assert_eq!(s["events"], 8);
    assert_eq!(s["failed"], 2);
    assert_eq!(
        s["by_syscall"],
        json!({"mmap": 6, "munmap": 1, "mprotect": 1})
    );
    assert_eq!(s["errors"], json!({"EBADF": 1, "ENOMEM": 1}));
    // Successful mmap calls only: 8192 + 4096 + 1 MiB (the failed 1 TiB call and the call whose
    // exit was not seen do not count).
    assert_eq!(s["bytes_mapped"], 8192 + 4096 + (1 << 20));
    assert_eq!(
        s["by_process"],
        json!([
            {"pid": 200, "comm": "java", "events": 4, "bytes_mapped": 1 << 20},
            {"pid": 100, "comm": "cat", "events": 3, "bytes_mapped": 8192 + 4096},
            {"pid": 300, "comm": "sh", "events": 1, "bytes_mapped": 0},
        ])
    );
    assert_eq!(s["processes"], 3);
    // lost = ring buffer full 2 + no room for call 1 + decode errors 0; orphan exits apart.
    assert_eq!(s["lost"], 3);
    assert_eq!(s["orphan_exits"], 1);
    assert_eq!(
        s["counters"],
        json!({"emitted": 9, "lost_ringbuf_full": 2, "orphan_exits": 1,
               "entry_map_full": 1, "decode_errors": 0, "follow_map_full": 0})
    );
    assert_eq!(s["first_ts"], "2026-11-27T06:01:13.000001000Z");
    assert_eq!(s["last_ts"], "2026-11-27T06:01:13.000008000Z");
    assert_eq!(s["capture_start"], "2026-11-27T06:01:13.000000000Z");
    assert_eq!(s["capture_end"], "2026-11-27T06:01:13.010000000Z");
    assert_eq!(s["hosts"], json!(["host-a"]));
    assert_eq!(s["kernels"], json!(["6.8.0-test"]));

    let files = s["files"].as_array().expect("files is an array");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["path"], fx.a.display().to_string());
    assert_eq!(files[0]["rows"], 8);
    // Test captures are written by the current writer.
    assert_eq!(
        files[0]["format_version"],
        format!(
            "{}.{}",
            mmap_format::FORMAT_MAJOR,
            mmap_format::FORMAT_MINOR
        )
    );
    assert_eq!(files[0]["hostname"], "host-a");
    assert_eq!(files[0]["lost"], 3);
}

#[test]
fn json_merges_several_files() {
    let fx = Fixture::new();
    let s = summary_json(&[&fx.a, &fx.b], &[]);

    assert_eq!(s["events"], 11);
    assert_eq!(
        s["by_syscall"],
        json!({"mmap": 9, "munmap": 1, "mprotect": 1})
    );
    assert_eq!(s["errors"], json!({"EBADF": 1, "EINVAL": 1, "ENOMEM": 1}));
    assert_eq!(s["bytes_mapped"], 8192 + 4096 + (1 << 20) + 65536 + 4096);
    assert_eq!(s["lost"], 3 + 1);
    assert_eq!(s["orphan_exits"], 1);
    assert_eq!(s["counters"]["decode_errors"], 1);
    assert_eq!(s["counters"]["emitted"], 12);
    assert_eq!(s["hosts"], json!(["host-a", "host-b"]));
    assert_eq!(s["first_ts"], "2026-11-27T06:01:13.000001000Z");
    assert_eq!(s["last_ts"], "2026-11-27T06:01:13.000009000Z");
    assert_eq!(s["capture_start"], "2026-11-27T06:01:13.000000000Z");
    assert_eq!(s["capture_end"], "2026-11-27T06:01:13.020000000Z");
    // Ties (pid 100 and pid 400 both have 3 calls) are listed by pid.
    let pids: Vec<u64> = s["by_process"]
        .as_array()
        .expect("by_process is an array")
        .iter()
        .map(|p| p["pid"].as_u64().expect("pid"))
        .collect();
    assert_eq!(pids, [200, 100, 400, 300]);
    assert_eq!(s["files"].as_array().map(Vec::len), Some(2));
}

#[test]
fn top_limits_the_process_list() {
    let fx = Fixture::new();
    let s = summary_json(&[&fx.a, &fx.b], &["--top", "2"]);
    let procs = s["by_process"].as_array().expect("by_process is an array");
    assert_eq!(procs.len(), 2);
    assert_eq!(procs[0]["pid"], 200);
    assert_eq!(procs[1]["pid"], 100);
    assert_eq!(s["processes"], 4, "the total still counts every process");

    let all = summary_json(&[&fx.a, &fx.b], &["--top", "0"]);
    assert_eq!(all["by_process"].as_array().map(Vec::len), Some(4));
}

#[test]
fn empty_capture_has_no_time_span() {
    let fx = Fixture::new();
    let path = fx.path("empty-capture.parquet");
    write_capture(&path, &metadata("host-a", counters_a()), &[]);
    let s = summary_json(&[&path], &[]);
    assert_eq!(s["events"], 0);
    assert_eq!(s["first_ts"], Value::Null);
    assert_eq!(s["last_ts"], Value::Null);
    assert_eq!(s["by_process"], json!([]));
    assert_eq!(s["lost"], 3);

    let table = run_ok(["summary".as_ref(), path.as_os_str()]);
    assert!(
        table.contains("Rows                0 in the files"),
        "{table}"
    );
}

#[test]
fn table_output_snapshot() {
    let fx = Fixture::new();
    // Relative paths (run inside the temp dir) keep the file list the same on every run; every
    // other value shown comes from the test data, so no filter is needed.
    let stdout = run_ok_in(
        fx.dir.path(),
        ["summary", "a.parquet", "b.parquet", "--top", "3"],
    );
    insta::assert_snapshot!("summary_table_two_files", stdout);
}

/// The committed v1.0 fixture (written by the format crate) stays readable: the summary counts
/// what `events` lists.
#[test]
fn committed_fixture_is_readable() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/v1/synthetic-v1.0.parquet");
    let s = summary_json(&[&fixture], &[]);
    let events = s["events"].as_u64().expect("events is a number");
    assert!(events > 0, "the fixture has rows");
    let listed = run_ok([
        "events".as_ref(),
        fixture.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert_eq!(common::json_lines(&listed).len() as u64, events);
    assert_eq!(s["files"][0]["format_version"], "1.0");
}

// Format 1.1: counts by kind, completeness.

#[test]
fn json_counts_by_kind_and_loss_windows() {
    let fx = common::v11::FixtureC::new();
    let s = summary_json(&[&fx.c], &[]);
    assert_eq!(s["events"], 22, "every row");
    assert_eq!(
        s["by_kind"],
        json!({"syscall": 11, "snapshot": 7, "fork": 1, "exec": 1, "exit": 1, "lost": 1})
    );
    assert_eq!(
        s["by_syscall"],
        json!({"mmap": 5, "munmap": 1, "mprotect": 2, "mremap": 1, "brk": 2}),
        "system call rows only"
    );
    // Processes and bytes count system call rows only: no pid 0 for the lost row, no rows of
    // snapshots or lifecycle events.
    assert_eq!(
        s["by_process"],
        json!([
            {"pid": 500, "comm": "app", "events": 9, "bytes_mapped": 8192 + 16384},
            {"pid": 600, "comm": "child", "events": 1, "bytes_mapped": 65536},
            {"pid": 700, "comm": "loner", "events": 1, "bytes_mapped": 4096},
        ])
    );
    assert_eq!(s["failed"], 1);
    assert_eq!(s["errors"], json!({"ENOMEM": 1}));
    assert_eq!(s["complete"], false);
    assert_eq!(
        s["loss_windows"],
        json!([{
            "cpu": 2,
            "from": "2026-11-27T06:01:13.000006500Z",
            "to": "2026-11-27T06:01:13.000007500Z",
            "count": 17
        }])
    );
    let file = &s["files"][0];
    assert_eq!(file["format_version"], "1.6");
    assert_eq!(file["page_size"], 4096);
    assert_eq!(file["segment_index"], 0);
    assert_eq!(file["capture_id"], "c0ffee00-0000-4000-8000-000000000001");
    assert_eq!(file["recovered"], false);
}

#[test]
fn complete_when_nothing_was_lost() {
    let fx = Fixture::new();
    let path = fx.path("clean.parquet");
    write_capture(
        &path,
        &metadata("host-a", mmap_format::metadata::Counters::default()),
        &[common::mmap(1000, 1, 1, "a")],
    );
    let s = summary_json(&[&path], &[]);
    assert_eq!(s["complete"], true);
    assert_eq!(s["loss_windows"], json!([]));
    let table = run_ok(["summary".as_ref(), path.as_os_str()]);
    assert!(table.contains("complete: no records lost"), "{table}");
}

#[test]
fn table_output_snapshot_1_1() {
    let fx = common::v11::FixtureC::new();
    let stdout = run_ok_in(fx.dir.path(), ["summary", "c.parquet"]);
    insta::assert_snapshot!("summary_table_c", stdout);
}

/// The committed v1.1 fixture stays readable, with its loss window.
#[test]
fn committed_v1_1_fixture_is_readable() {
    let fixture = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/v1/synthetic-v1.1.parquet");
    let s = summary_json(&[&fixture], &[]);
    assert_eq!(s["files"][0]["format_version"], "1.1");
    assert!(s["by_kind"]["snapshot"].as_u64().is_some_and(|n| n > 0));
    assert_eq!(s["loss_windows"].as_array().map(Vec::len), Some(1));
}

#[test]
fn the_biggest_consumers_by_bytes_and_the_totals_by_command_name() {
    let fx = Fixture::new();
    let s = summary_json(&[&fx.a], &[]);
    assert_eq!(
        s["by_process_bytes"],
        json!([
            {"pid": 200, "comm": "java", "events": 4, "bytes_mapped": 1 << 20},
            {"pid": 100, "comm": "cat", "events": 3, "bytes_mapped": 8192 + 4096},
        ]),
        "most bytes first; a process that mapped nothing is left out"
    );
    assert_eq!(s["comms"], 4);
    assert_eq!(s["processes_that_mapped"], 2);
    assert_eq!(
        s["by_comm"],
        json!([
            {"comm": "java", "processes": 1, "events": 4, "bytes_mapped": 1 << 20},
            {"comm": "cat", "processes": 1, "events": 2, "bytes_mapped": 8192},
            {"comm": "cat-worker", "processes": 1, "events": 1, "bytes_mapped": 4096},
            {"comm": "sh", "processes": 1, "events": 1, "bytes_mapped": 0},
        ])
    );
    let top = summary_json(&[&fx.a, &fx.b], &["--top", "1"]);
    assert_eq!(top["by_process_bytes"].as_array().map(Vec::len), Some(1));
    assert_eq!(top["by_comm"].as_array().map(Vec::len), Some(1));

    let table = run_ok(["summary".as_ref(), fx.a.as_os_str()]);
    for title in [
        "Processes by calls (3)",
        "Processes by bytes mapped (2)",
        "By command name (comm) (4)",
    ] {
        assert!(table.contains(title), "{title}: {table}");
    }
}

#[test]
fn every_count_says_what_it_counts() {
    let fx = Fixture::new();
    let table = run_ok(["summary".as_ref(), fx.a.as_os_str()]);
    for line in [
        "Orphan exits        1 calls in progress at the start, not lost",
        "Kernel records      9 delivered by the eBPF programs",
        "Lost records        3 not in the files, though they happened",
        "  no room for call  1 calls the kernel side could not keep",
    ] {
        assert!(table.contains(line), "{line:?} in:\n{table}");
    }
    assert!(!table.contains("Emitted"), "{table}");
    let help = run_ok(["summary", "--help"]);
    assert!(
        help.contains("Orphan exits (orphan_exits): system calls that were already in progress"),
        "{help}"
    );
}

// Recordings to a directory (capture D).

mod segmented {
    use serde_json::json;

    use super::summary_json;
    use crate::common::{
        run_ok,
        segmented::{CAPTURE_ID, write_segments},
    };

    #[test]
    fn a_directory_is_its_segments() {
        let dir = tempfile::tempdir().expect("temp dir");
        let paths = write_segments(dir.path(), &[0, 1, 2]);
        let whole = summary_json(&[dir.path()], &[]);
        let files: Vec<&std::path::Path> = paths.iter().map(|p| p.as_path()).collect();
        let listed = summary_json(&files, &[]);
        assert_eq!(whole["events"], 10);
        assert_eq!(whole["events"], listed["events"]);
        assert_eq!(
            whole["files"], listed["files"],
            "the same files in the same order"
        );
        assert_eq!(whole["complete"], true);
        assert_eq!(whole["missing_segments"], json!([]));
    }

    #[test]
    fn segments_deleted_by_keep_or_left_out_are_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        write_segments(dir.path(), &[2]);
        let s = summary_json(&[dir.path()], &[]);
        assert_eq!(
            s["complete"], false,
            "no record lost, but segments 0-1 are gone"
        );
        assert_eq!(
            s["missing_segments"],
            json!([{
                "capture_id": CAPTURE_ID,
                "first_index": 0,
                "last_index": 1,
                "unknown_from": null,
                "unknown_to": "2026-11-27T06:01:13.020000000Z",
            }])
        );
        let table = run_ok(["summary".as_ref(), dir.path().as_os_str()]);
        assert!(
            table.contains(
                "  segments 0-1 of capture d0d0d0d0 are missing: what happened before \
                 2026-11-27T06:01:13.020000000Z is unknown"
            ),
            "{table}"
        );
        assert!(!table.contains("complete: no records lost"), "{table}");

        let dir = tempfile::tempdir().expect("temp dir");
        let paths = write_segments(dir.path(), &[0, 1, 2]);
        let s = summary_json(&[&paths[0], &paths[2]], &[]);
        assert_eq!(s["complete"], false);
        assert_eq!(s["missing_segments"][0]["first_index"], 1);
        assert_eq!(
            s["missing_segments"][0]["unknown_from"],
            "2026-11-27T06:01:13.010000000Z"
        );
    }
}

/// Records lost without a time (no room for a call in flight, decode errors) are named in the
/// completeness section even when the capture also has loss windows (they were left out), and
/// new processes that were not followed make the capture incomplete.
#[test]
fn completeness_names_untimed_losses_and_unfollowed_processes() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("c.parquet");
    let mut meta = common::v11::metadata_c();
    meta.counters.entry_map_full = 2;
    meta.counters.decode_errors = 1;
    meta.counters.follow_map_full = 5;
    write_capture(&path, &meta, &common::v11::events_c());
    let table = run_ok(["summary".as_ref(), path.as_os_str()]);
    for line in [
        "  5 new processes were not followed (the recorder's map of followed processes was full): \
         their calls are missing",
        "  17 records lost in 1 loss window (changes in them are missing):",
        "  and 3 records lost outside them (no room for a call in flight, decode errors; the \
         capture does not say when)",
        "Unfollowed          5 new processes not recorded",
    ] {
        assert!(table.contains(line), "{line:?} in:\n{table}");
    }
    let s = summary_json(&[&path], &[]);
    assert_eq!(s["complete"], false);
    assert_eq!(s["counters"]["follow_map_full"], 5);
}
