//! `mmap-analyze top`: groups ranked by calls, bytes mapped or time in calls, checked against
//! figures computed here from the rows the test wrote.

use std::collections::BTreeMap;

use mmap_format::event::{Event, Syscall};
use serde_json::{Value, json};

use crate::latency::{Workload, duration, percentile};

/// Bytes a call added: a successful mmap's length, a successful mremap's growth.
fn bytes_added(event: &Event<'_>) -> u64 {
    let succeeded = event.ret.is_some() && event.errno().is_none();
    match event.syscall {
        Some(Syscall::Mmap) if succeeded => event.len.unwrap_or(0),
        Some(Syscall::Mremap) if succeeded => event
            .new_len
            .unwrap_or(0)
            .saturating_sub(event.len.unwrap_or(0)),
        _ => 0,
    }
}

/// The `top` rows for the groups `key` makes, ranked by `rank` (largest first, then by key),
/// each with the key's fields (`key_names`) first.
fn expected(
    events: &[Event<'_>],
    key_names: &[&str],
    key: impl Fn(&Event<'_>) -> Vec<Value>,
    rank: &str,
) -> Vec<Value> {
    let mut groups: BTreeMap<String, (Vec<Value>, Vec<&Event<'_>>)> = BTreeMap::new();
    for event in events {
        let k = key(event);
        groups
            .entry(serde_json::to_string(&k).expect("a key"))
            .or_insert_with(|| (k, Vec::new()))
            .1
            .push(event);
    }
    let mut rows: Vec<Value> = groups
        .into_values()
        .map(|(k, calls)| {
            let mut row = serde_json::Map::new();
            for (name, value) in key_names.iter().zip(k) {
                row.insert((*name).to_owned(), value);
            }
            let durations: Vec<i64> = calls.iter().copied().filter_map(duration).collect();
            row.insert("calls".into(), json!(calls.len()));
            row.insert(
                "failures".into(),
                json!(calls.iter().filter(|e| e.errno().is_some()).count()),
            );
            row.insert(
                "bytes".into(),
                json!(calls.iter().map(|e| bytes_added(e)).sum::<u64>()),
            );
            row.insert("total_ns".into(), json!(durations.iter().sum::<i64>()));
            if rank == "total_ns" {
                let mut sorted = durations.clone();
                sorted.sort_unstable();
                row.insert("p99_ns".into(), json!(percentile(&sorted, 9_900)));
            }
            Value::Object(row)
        })
        .collect();
    // The workload has no ties in the figures ranked: the key order does not matter.
    rows.sort_by_key(|row| std::cmp::Reverse(row[rank].as_u64().expect("a count")));
    rows
}

#[test]
fn by_calls_per_process() {
    let w = Workload::new();
    let rows = w.json("top", &[]);
    let want = expected(
        &w.events,
        &["pid", "comm"],
        |e| vec![json!(e.pid), json!(e.comm)],
        "calls",
    );
    assert_eq!(want.len(), 4, "two processes are named alpha");
    assert_eq!(rows, want);
    // Without a cgroup path, the cgroup id names the group.
    let cgroups = w.json("top", &["--group", "cgroup"]);
    let want = expected(
        &w.events,
        &["cgroup"],
        |e| vec![json!(e.cgroup_id.to_string())],
        "calls",
    );
    assert_eq!(cgroups, want);
}

#[test]
fn by_bytes_per_file_with_a_limit() {
    let w = Workload::new();
    let rows = w.json("top", &["--by", "bytes", "--group", "file", "--limit", "1"]);
    let want = expected(
        &w.events,
        &["file"],
        |e| {
            let file = e.file_path.as_deref().or(e.file_name.as_deref());
            vec![json!(file.unwrap_or("[anon]"))]
        },
        "bytes",
    );
    assert_eq!(want[1]["file"], "/lib/libz.so.1");
    assert_eq!(
        want[1]["bytes"],
        2 * 65536,
        "the unfinished mmap is not counted"
    );
    assert_eq!(rows, want[..1]);
}

#[test]
fn by_latency_per_syscall_has_the_99th_percentile() {
    let w = Workload::new();
    let rows = w.json("top", &["--by", "latency", "--group", "syscall"]);
    let want = expected(
        &w.events,
        &["syscall"],
        |e| vec![json!(e.syscall.map(Syscall::as_str))],
        "total_ns",
    );
    assert_eq!(rows, want);
}

#[test]
fn pid_and_where_narrow_the_calls() {
    let w = Workload::new();
    let rows = w.json(
        "top",
        &[
            "--group",
            "syscall",
            "--pid",
            "20",
            "--where",
            "new_len > len",
        ],
    );
    assert_eq!(
        rows,
        [
            json!({"syscall": "mremap", "calls": 6, "failures": 1, "bytes": 5 * 8192,
                "total_ns": 6 * 15_000})
        ]
    );
}

#[test]
fn csv_per_comm() {
    let w = Workload::new();
    let (header, records) = w.csv("top", &["--group", "comm", "--by", "bytes"]);
    assert_eq!(header, ["comm", "calls", "failures", "bytes", "total_ns"]);
    let want = expected(&w.events, &["comm"], |e| vec![json!(e.comm)], "bytes");
    let got: Vec<Value> = records
        .iter()
        .map(|r| {
            let n = |i: usize| r[i].parse::<u64>().expect("a number");
            json!({"comm": r[0], "calls": n(1), "failures": n(2), "bytes": n(3),
                   "total_ns": n(4)})
        })
        .collect();
    assert_eq!(got, want);
}

#[test]
fn table_snapshot() {
    let w = Workload::new();
    let table = w.run_ok("top", &["--by", "latency"]);
    insta::assert_snapshot!("top_table", table);
}

#[test]
fn a_wrong_where_is_one_line_and_exit_1() {
    let w = Workload::new();
    let line = w.wrong_query("top", &["--where", "pid = 'x' AND"]);
    assert!(line.contains("mmap-analyze: "), "{line}");
}

#[test]
fn nothing_matched_is_empty_output() {
    Workload::new().assert_empty_when_nothing_matches("top");
}

#[test]
fn help_snapshots() {
    for command in ["top", "latency", "errors"] {
        let output = crate::common::run([command, "--help"]);
        assert!(output.status.success(), "{command} --help");
        let help = String::from_utf8(output.stdout).expect("UTF-8 help");
        insta::assert_snapshot!(format!("{command}_help"), help);
    }
}

/// Output longer than a pipe holds, from a capture of 3000 processes that each failed once.
#[test]
fn closed_stdout_exits_0_silently() {
    let dir = tempfile::tempdir().expect("create temp dir");
    let path = dir.path().join("many.parquet");
    let events: Vec<_> = (0..3000u32)
        .map(|i| {
            let mut event = crate::common::mmap(i64::from(i) * 1000, 1000 + i, 1000 + i, "worker");
            event.ret = Some(-12);
            event
        })
        .collect();
    crate::common::write_capture_with(
        &path,
        &crate::common::metadata("host", mmap_format::metadata::Counters::default()),
        &events,
        1000,
    );
    let path = path.as_os_str();
    for args in [
        &["top".as_ref(), path, "--limit".as_ref(), "0".as_ref()][..],
        &[
            "latency".as_ref(),
            path,
            "--per".as_ref(),
            "process".as_ref(),
        ],
        &["errors".as_ref(), path, "--format".as_ref(), "csv".as_ref()],
    ] {
        crate::common::assert_quiet_when_the_reader_goes_away(args, &format!("{args:?}"));
    }
}
