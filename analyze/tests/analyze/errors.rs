//! `mmap-analyze errors`: failed calls grouped by errno, syscall and process, checked against
//! the failures the test wrote.

use std::collections::BTreeMap;

use mmap_format::{event::Syscall, names};
use serde_json::{Value, json};

use crate::latency::{EACCES, ENOMEM, Workload};

/// The rows `errors` gives for the workload's failures: grouped by errno, syscall and process,
/// most calls first, then by the first time.
fn expected(w: &Workload) -> Vec<Value> {
    let mut groups: BTreeMap<(i32, &str, u32, String), Vec<usize>> = BTreeMap::new();
    for (i, event) in w.events.iter().enumerate() {
        if let Some(errno) = event.errno() {
            let syscall = event.syscall.map_or("", Syscall::as_str);
            groups
                .entry((errno, syscall, event.pid, event.comm.to_string()))
                .or_default()
                .push(i);
        }
    }
    let mut rows: Vec<(usize, i64, Value)> = groups
        .into_iter()
        .map(|((errno, syscall, pid, comm), calls)| {
            let first = &w.events[calls[0]];
            let last = &w.events[*calls.last().expect("a call")];
            let flags = first.flags.map(|f| {
                if syscall == "mremap" {
                    "MREMAP_MAYMOVE".to_owned()
                } else {
                    names::map_flags_names(f)
                }
            });
            let row = json!({
                "errno_name": names::errno_name(errno),
                "syscall": syscall, "pid": pid, "comm": comm, "calls": calls.len(),
                "first_ns": first.ts_ns, "last_ns": last.ts_ns, "len": first.len,
                "prot": first.prot.map(names::prot_names), "flags": flags,
            });
            (calls.len(), first.ts_ns, row)
        })
        .collect();
    rows.sort_by_key(|(calls, first, _)| (std::cmp::Reverse(*calls), *first));
    rows.into_iter().map(|(_, _, row)| row).collect()
}

#[test]
fn failures_grouped_with_first_last_and_an_example() {
    let w = Workload::new();
    let rows = w.json("errors", &[]);
    let want = expected(&w);
    assert_eq!(want.len(), 3);
    assert_eq!(want[0]["errno_name"], "ENOMEM");
    assert_eq!(want[0]["calls"], 10);
    assert_eq!(want[0]["len"], 8192, "the 10th mmap failed first");
    assert_eq!(want[1]["prot"], "PROT_READ|PROT_WRITE|PROT_EXEC");
    assert_eq!(rows, want);
}

#[test]
fn syscall_and_where_filters() {
    let w = Workload::new();
    let rows = w.json("errors", &["--syscall", "mprotect"]);
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["errno"], json!(null), "no raw errno column");
    assert_eq!(
        rows[0]["errno_name"],
        json!(names::errno_name(EACCES as i32))
    );
    let by_errno = w.json("errors", &["--where", &format!("errno = {ENOMEM}")]);
    assert_eq!(by_errno.len(), 1);
    assert_eq!(by_errno[0]["pid"], 10);
    assert_eq!(w.json("errors", &["--pid", "40"]), Vec::<Value>::new());
}

#[test]
fn csv_keeps_exact_numbers() {
    let w = Workload::new();
    let (header, records) = w.csv("errors", &[]);
    assert_eq!(
        header,
        [
            "errno_name",
            "syscall",
            "pid",
            "comm",
            "calls",
            "first_ns",
            "last_ns",
            "len",
            "prot",
            "flags"
        ]
    );
    let want = expected(&w);
    assert_eq!(records.len(), want.len());
    for (record, row) in records.iter().zip(&want) {
        assert_eq!(record[0], row["errno_name"].as_str().expect("a name"));
        assert_eq!(record[5], row["first_ns"].to_string());
        assert_eq!(record[6], row["last_ns"].to_string());
        assert_eq!(record[7], row["len"].to_string());
    }
}

#[test]
fn table_snapshot() {
    let w = Workload::new();
    let table = w.run_ok("errors", &[]);
    insta::assert_snapshot!("errors_table", table);
}

#[test]
fn a_wrong_where_is_one_line_and_exit_1() {
    let w = Workload::new();
    let line = w.wrong_query("errors", &["--where", "errno_nam = 'x'"]);
    assert!(line.contains("errno_nam"), "{line}");
}

#[test]
fn nothing_matched_is_empty_output() {
    Workload::new().assert_empty_when_nothing_matches("errors");
}
