//! `mmap-analyze events`: filters, formats and the merge of several files.

use std::{ffi::OsString, path::Path};

use mmap_format::metadata::Counters;
use serde_json::json;

use crate::common::{self, Fixture, json_lines, metadata, mmap, offsets, run_ok, write_capture};

fn events_json(inputs: &[&Path], extra: &[&str]) -> Vec<serde_json::Value> {
    let mut args: Vec<OsString> = vec!["events".into()];
    args.extend(inputs.iter().map(|p| p.as_os_str().to_owned()));
    args.extend(["--format".into(), "json".into()]);
    args.extend(extra.iter().map(Into::into));
    json_lines(&run_ok(args))
}

/// Offsets (ns after `BASE_NS`) of the rows that `extra` selects from capture A.
fn selected(fx: &Fixture, extra: &[&str]) -> Vec<i64> {
    offsets(&events_json(&[&fx.a], extra))
}

#[test]
fn without_filters_every_row_in_recording_order() {
    let fx = Fixture::new();
    assert_eq!(
        selected(&fx, &[]),
        [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000]
    );
}

#[test]
fn filters_select_exactly_the_expected_rows() {
    let fx = Fixture::new();
    assert_eq!(selected(&fx, &["--pid", "100"]), [1000, 2000, 3000]);
    assert_eq!(
        selected(&fx, &["--pid", "100", "--pid", "300"]),
        [1000, 2000, 3000, 7000]
    );
    assert_eq!(selected(&fx, &["--tid", "100"]), [1000, 3000]);
    assert_eq!(
        selected(&fx, &["--tid", "101", "--tid", "202"]),
        [2000, 8000]
    );
    assert_eq!(selected(&fx, &["--comm", "java"]), [4000, 5000, 6000, 8000]);
    assert_eq!(
        selected(&fx, &["--comm", "cat", "--comm", "sh"]),
        [1000, 3000, 7000]
    );
    assert_eq!(
        selected(&fx, &["--comm", "ca"]),
        [] as [i64; 0],
        "exact match"
    );
    assert_eq!(selected(&fx, &["--failed"]), [3000, 6000]);
    assert_eq!(selected(&fx, &["--pid", "200", "--failed"]), [6000]);
    assert_eq!(selected(&fx, &["--syscall", "munmap"]), [5000]);
    assert_eq!(
        selected(&fx, &["--syscall", "munmap", "--syscall", "mprotect"]),
        [5000, 7000]
    );
    assert_eq!(selected(&fx, &["--limit", "2"]), [1000, 2000]);
    assert_eq!(selected(&fx, &["--limit", "0"]), [] as [i64; 0]);
    assert_eq!(
        selected(&fx, &["--comm", "java", "--limit", "3"]),
        [4000, 5000, 6000]
    );
}

#[test]
fn json_lines_carry_raw_numbers_and_names() {
    let fx = Fixture::new();
    let rows = events_json(&[&fx.a], &[]);
    assert_eq!(rows.len(), 8);

    let file_row = &rows[1];
    assert_eq!(file_row["time"], "2026-11-27T06:01:13.000002000Z");
    assert_eq!(file_row["pid"], 100);
    assert_eq!(file_row["tid"], 101);
    assert_eq!(file_row["comm"], "cat-worker");
    assert_eq!(file_row["syscall"], "mmap");
    assert_eq!(file_row["prot"], 1);
    assert_eq!(file_row["prot_names"], "PROT_READ");
    assert_eq!(file_row["flags"], 2);
    assert_eq!(file_row["flags_names"], "MAP_PRIVATE");
    assert_eq!(file_row["fd"], 3);
    assert_eq!(file_row["ret"], 0x7f00_0001_0000_u64);
    assert_eq!(file_row["result"], "0x7f0000010000");
    assert_eq!(file_row["errno"], json!(null));
    assert_eq!(file_row["duration_ns"], 500);
    assert_eq!(file_row["file_name"], "libc.so.6");
    assert_eq!(file_row["file_dev_major_minor"], "8:1");
    assert_eq!(file_row["file_ino"], 1234);

    let anon = &rows[0];
    assert_eq!(anon["prot_names"], "PROT_READ|PROT_WRITE");
    assert_eq!(anon["flags_names"], "MAP_PRIVATE|MAP_ANONYMOUS");
    assert_eq!(anon["fd"], -1);
    assert_eq!(anon["file_name"], json!(null));

    let failed = &rows[2];
    assert_eq!(failed["ret"], -9);
    assert_eq!(failed["errno"], 9);
    assert_eq!(failed["errno_name"], "EBADF");
    assert_eq!(failed["result"], "-EBADF");

    let munmap = &rows[4];
    assert_eq!(munmap["syscall"], "munmap");
    assert_eq!(munmap["result"], "0");
    assert_eq!(munmap["prot"], json!(null));

    let no_exit = &rows[7];
    assert_eq!(no_exit["ret"], json!(null));
    assert_eq!(no_exit["result"], json!(null));
    assert_eq!(no_exit["duration_ns"], json!(null));
}

#[test]
fn csv_has_a_header_and_one_record_per_row() {
    let fx = Fixture::new();
    let stdout = run_ok([
        "events".as_ref(),
        fx.a.as_os_str(),
        "--format".as_ref(),
        "csv".as_ref(),
        "--pid".as_ref(),
        "100".as_ref(),
    ]);
    // The same columns as JSON Lines, in the same order: every column as stored (numbers in
    // decimal), decoded names beside some.
    let mut lines = stdout.lines();
    assert_eq!(
        lines.next(),
        Some(
            "time,ts_ns,ts_exit_ns,duration_ns,kind,syscall,cpu,pid,tid,ppid,uid,gid,comm,\
             cgroup_id,addr,addr_hex,len,prot,prot_names,flags,flags_names,fd,off,ret,errno,\
             errno_name,result,file_name,file_dev,file_dev_major_minor,file_ino,file_path,\
             path_source,path_truncated,path_lossy,file_deleted,file_memfd,source,new_addr,new_len,\
             child_pid,exit_code,exit_status,lost_count,cgroup_path,pidns_ino,ns_pid,ns_tid,\
             stack_id,frame_index,frame_addr,frame_module,frame_build_id,frame_offset,\
             frame_function,frame_file,frame_line,symbol_source"
        )
    );
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    let headers = reader.headers().expect("CSV headers").clone();
    let records: Vec<csv::StringRecord> =
        reader.records().map(|r| r.expect("a CSV record")).collect();
    assert_eq!(records.len(), 3);
    let get = |row: usize, col: &str| -> String {
        let index = headers
            .iter()
            .position(|h| h == col)
            .expect("column in header");
        records[row][index].to_owned()
    };
    assert_eq!(get(0, "time"), "2026-11-27T06:01:13.000001000Z");
    assert_eq!(get(0, "prot"), "3");
    assert_eq!(get(0, "prot_names"), "PROT_READ|PROT_WRITE");
    assert_eq!(get(0, "flags"), "34");
    assert_eq!(get(0, "flags_names"), "MAP_PRIVATE|MAP_ANONYMOUS");
    assert_eq!(get(0, "len"), "8192");
    assert_eq!(get(0, "ret"), 0x7f00_0000_0000_u64.to_string());
    assert_eq!(get(0, "result"), "0x7f0000000000");
    assert_eq!(get(0, "errno"), "");
    assert_eq!(get(0, "file_name"), "");
    assert_eq!(get(1, "comm"), "cat-worker");
    assert_eq!(get(1, "file_name"), "libc.so.6");
    assert_eq!(get(1, "file_dev_major_minor"), "8:1");
    assert_eq!(get(1, "file_ino"), "1234");
    assert_eq!(get(2, "ret"), "-9");
    assert_eq!(get(2, "errno"), "9");
    assert_eq!(get(2, "errno_name"), "EBADF");
    // Text that a spreadsheet would run as a formula starts with a quote.
    assert_eq!(get(2, "result"), "'-EBADF");
    assert_eq!(get(2, "duration_ns"), "500");
}

#[test]
fn csv_without_rows_still_has_its_header() {
    let fx = Fixture::new();
    let stdout = run_ok([
        "events".as_ref(),
        fx.a.as_os_str(),
        "--format".as_ref(),
        "csv".as_ref(),
        "--pid".as_ref(),
        "999".as_ref(),
    ]);
    assert_eq!(stdout.lines().count(), 1);
    assert!(stdout.starts_with("time,ts_ns,ts_exit_ns,"));
}

#[test]
fn two_files_merge_in_time_order() {
    let fx = Fixture::new();
    let expected = [
        1000, 1500, 2000, 3000, 4000, 4500, 5000, 6000, 7000, 8000, 9000,
    ];
    assert_eq!(offsets(&events_json(&[&fx.a, &fx.b], &[])), expected);
    assert_eq!(offsets(&events_json(&[&fx.b, &fx.a], &[])), expected);
    assert_eq!(
        offsets(&events_json(&[&fx.a, &fx.b], &["--limit", "3"])),
        [1000, 1500, 2000]
    );
    assert_eq!(
        offsets(&events_json(&[&fx.a, &fx.b], &["--failed"])),
        [3000, 6000, 9000]
    );
    let rows = events_json(&[&fx.a, &fx.b], &["--comm", "python3"]);
    assert_eq!(offsets(&rows), [1500, 4500, 9000]);
    assert_eq!(rows[2]["result"], "-EINVAL");
}

#[test]
fn a_single_file_keeps_its_recording_order() {
    let fx = Fixture::new();
    let path = fx.path("unordered.parquet");
    // Events are emitted at syscall exit: a long call can come after a later, shorter one.
    let events = [
        mmap(3000, 1, 1, "a"),
        mmap(1000, 1, 2, "b"),
        mmap(2000, 1, 3, "c"),
    ];
    write_capture(&path, &metadata("host-a", Counters::default()), &events);
    assert_eq!(offsets(&events_json(&[&path], &[])), [3000, 1000, 2000]);
}

#[test]
fn table_output_snapshot() {
    let fx = Fixture::new();
    let stdout = run_ok(["events".as_ref(), fx.a.as_os_str()]);
    insta::assert_snapshot!("events_table_a", stdout);
}

/// A filter that matches nothing is not an error: empty output and exit 0 (the note on a
/// terminal is not seen here, stderr being a pipe).
#[test]
fn table_and_json_output_of_nothing_is_empty() {
    let fx = Fixture::new();
    for format in ["table", "json"] {
        let stdout = run_ok([
            "events".as_ref(),
            fx.a.as_os_str(),
            "--pid".as_ref(),
            "99999".as_ref(),
            "--format".as_ref(),
            format.as_ref(),
        ]);
        assert_eq!(stdout, "", "{format}");
    }
}

#[test]
fn a_comm_longer_than_the_kernel_keeps_is_cut_with_a_note() {
    let fx = Fixture::new();
    let path = fx.path("long-comm.parquet");
    // The kernel keeps 15 bytes of `a-fifteen-bytes-and-more`.
    write_capture(
        &path,
        &metadata("host-a", Counters::default()),
        &[
            mmap(1000, 1, 1, "a-fifteen-bytes"),
            mmap(2000, 2, 2, "other"),
        ],
    );
    let output = common::run([
        "events".as_ref(),
        path.as_os_str(),
        "--comm".as_ref(),
        "a-fifteen-bytes-and-more".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
    ]);
    assert!(output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        stderr,
        "mmap-analyze: note: --comm \"a-fifteen-bytes-and-more\" is 24 bytes; the kernel keeps \
         15 bytes of a thread name: matching \"a-fifteen-bytes\"\n"
    );
    let rows = json_lines(&String::from_utf8_lossy(&output.stdout));
    assert_eq!(offsets(&rows), [1000]);
}

#[test]
fn since_and_until_take_every_form_of_time() {
    let fx = Fixture::new();
    // The first row is at +1000, the capture ends at +10 ms.
    assert_eq!(
        selected(&fx, &["--since", "+2000ns", "--until", "+4000ns"]),
        [3000, 4000, 5000]
    );
    assert_eq!(
        selected(&fx, &["--since", "06:01:13.000007000"]),
        [7000, 8000]
    );
    assert_eq!(
        selected(&fx, &["--until", "2026-11-27T06:01:13.000002Z"]),
        [1000, 2000]
    );
    assert_eq!(
        selected(&fx, &["--until", "1795759273000002000"]),
        [1000, 2000],
        "epoch nanoseconds"
    );
    assert_eq!(
        selected(&fx, &["--since", "-9999000ns"]),
        [1000, 2000, 3000, 4000, 5000, 6000, 7000, 8000],
        "from the end (+10 ms)"
    );
    let output = common::run([
        "events".as_ref(),
        fx.a.as_os_str(),
        "--since".as_ref(),
        "2026-11-28T00:00:00Z".as_ref(),
    ]);
    assert!(output.status.success());
    assert!(output.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.starts_with(
            "mmap-analyze: warning: --since 2026-11-28T00:00:00.000000000Z: \
             2026-11-28T00:00:00.000000000Z is outside the capture"
        ),
        "{stderr}"
    );
}

// Format 1.1: row kinds, new columns.

fn kinds(rows: &[serde_json::Value]) -> Vec<String> {
    rows.iter()
        .map(|row| {
            row["syscall"]
                .as_str()
                .or(row["kind"].as_str())
                .expect("kind")
                .to_owned()
        })
        .collect()
}

#[test]
fn snapshot_rows_are_hidden_unless_asked_for() {
    let fx = common::v11::FixtureC::new();
    let all = events_json(&[&fx.c], &[]);
    assert_eq!(all.len(), 22 - 7, "every row but the 7 snapshot rows");
    assert!(all.iter().all(|row| row["kind"] != "snapshot"));
    assert_eq!(
        kinds(&all),
        [
            "mmap", "mmap", "mmap", "mprotect", "mmap", "mremap", "brk", "brk", "lost", "fork",
            "exec", "mmap", "exit", "munmap", "mprotect"
        ]
    );

    let snapshots = events_json(&[&fx.c], &["--kind", "snapshot"]);
    assert_eq!(snapshots.len(), 7);
    assert_eq!(snapshots[2]["file_path"], "[heap]");
    assert_eq!(snapshots[0]["source"], "proc_maps:start");
    assert_eq!(
        events_json(&[&fx.c], &["--kind", "snapshot", "--pid", "600"]).len(),
        2
    );
    let both = events_json(&[&fx.c], &["--kind", "snapshot", "--kind", "syscall"]);
    assert_eq!(both.len(), 7 + 11);
}

#[test]
fn kind_and_pid_filters_on_lifecycle_rows() {
    let fx = common::v11::FixtureC::new();
    let lifecycle = events_json(
        &[&fx.c],
        &["--kind", "fork", "--kind", "exec", "--kind", "exit"],
    );
    assert_eq!(kinds(&lifecycle), ["fork", "exec", "exit"]);
    // A fork row belongs to the parent and to the child.
    let child = events_json(&[&fx.c], &["--pid", "600"]);
    assert_eq!(kinds(&child), ["fork", "exec", "mmap", "exit"]);
    let lost = events_json(&[&fx.c], &["--kind", "lost"]);
    assert_eq!(lost.len(), 1);
    assert_eq!(lost[0]["cpu"], 2);
    assert_eq!(lost[0]["lost_count"], 17);
    assert_eq!(lost[0]["result"], "lost 17 on cpu 2");
    assert_eq!(lost[0]["duration_ns"], 1000);
    assert_eq!(
        offsets(&events_json(
            &[&fx.c],
            &["--kind", "syscall", "--syscall", "brk"]
        )),
        [5000, 5500]
    );
}

#[test]
fn json_lines_decode_the_1_1_columns() {
    let fx = common::v11::FixtureC::new();
    let rows = events_json(&[&fx.c], &[]);
    let find = |name: &str| -> &serde_json::Value {
        rows.iter()
            .find(|row| row["syscall"] == name || row["kind"] == name)
            .expect("a row of that kind")
    };
    let fork = find("fork");
    assert_eq!(fork["child_pid"], 600);
    assert_eq!(fork["result"], "child 600");
    let exec = find("exec");
    assert_eq!(exec["file_path"], "/usr/bin/child");
    assert_eq!(exec["path_source"], "exec_filename");
    let exit = find("exit");
    assert_eq!(exit["exit_code"], 256);
    assert_eq!(exit["exit_status"], "exit status 1");
    assert_eq!(exit["result"], "exit status 1");
    let mremap = find("mremap");
    assert_eq!(mremap["flags_names"], "MREMAP_MAYMOVE");
    assert_eq!(mremap["new_len"], 32768);
    assert_eq!(mremap["result"], "0x7f0000100000");
    let brk = &rows[7];
    assert_eq!(brk["syscall"], "brk");
    assert_eq!(brk["addr_hex"], "0x55555559a000");
    assert_eq!(brk["result"], "0x55555559a000");
    let blob = &rows[2];
    assert_eq!(blob["file_path"], "/data/blob.bin");
    assert_eq!(blob["file_name"], "blob.bin");
    assert_eq!(blob["path_source"], "kernel_dentry_walk");
    assert_eq!(blob["source"], "tracepoint");
    let memfd = &rows[11];
    assert_eq!(memfd["file_memfd"], true);
    assert_eq!(memfd["file_deleted"], true);
}

#[test]
fn csv_carries_the_1_1_columns_at_the_end() {
    let fx = common::v11::FixtureC::new();
    let stdout = run_ok([
        "events".as_ref(),
        fx.c.as_os_str(),
        "--format".as_ref(),
        "csv".as_ref(),
        "--pid".as_ref(),
        "600".as_ref(),
    ]);
    let mut reader = csv::Reader::from_reader(stdout.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    let get = |row: usize, col: &str| -> String {
        let index = headers.iter().position(|h| h == col).expect("column");
        records[row][index].to_owned()
    };
    assert_eq!(records.len(), 4);
    assert_eq!(get(0, "kind"), "fork");
    assert_eq!(get(0, "child_pid"), "600");
    assert_eq!(get(1, "file_path"), "/usr/bin/child");
    assert_eq!(get(2, "file_memfd"), "true");
    assert_eq!(get(3, "exit_code"), "256");
    assert_eq!(get(3, "result"), "exit status 1");
}

#[test]
fn table_output_snapshot_1_1() {
    let fx = common::v11::FixtureC::new();
    let stdout = run_ok(["events".as_ref(), fx.c.as_os_str()]);
    insta::assert_snapshot!("events_table_c", stdout);
    let stdout = run_ok([
        "events".as_ref(),
        fx.c.as_os_str(),
        "--kind".as_ref(),
        "snapshot".as_ref(),
    ]);
    insta::assert_snapshot!("events_table_c_snapshots", stdout);
}
