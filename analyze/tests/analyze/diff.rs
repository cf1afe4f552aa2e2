//! `mmap-analyze diff`: two captures that differ in known ways.

use std::{borrow::Cow, ffi::OsStr, path::PathBuf};

use mmap_format::event::{Event, RowKind};
use serde_json::{Value, json};

use crate::common::{
    MAP_PRIVATE, PROT_READ, json_lines, metadata, mmap, run_ok, v11::row, write_capture,
};

/// A successful read-only private mapping of `len` bytes of `path` at `addr`.
fn file_mmap(
    offset_ns: i64,
    pid: u32,
    comm: &str,
    path: &'static str,
    len: u64,
    addr: u64,
) -> Event<'static> {
    let mut event = mmap(offset_ns, pid, pid, comm);
    event.len = Some(len);
    event.prot = Some(PROT_READ);
    event.flags = Some(MAP_PRIVATE);
    event.fd = Some(3);
    event.file_path = Some(Cow::Borrowed(path));
    event.ret = Some(addr as i64);
    event
}

/// An anonymous read-write 4 KiB mapping at `addr`.
fn anon(offset_ns: i64, pid: u32, comm: &str, addr: u64) -> Event<'static> {
    let mut event = mmap(offset_ns, pid, pid, comm);
    event.ret = Some(addr as i64);
    event
}

/// A: `app` (pid 10) maps 4 KiB anonymous, 8 KiB of /lib/a.so, fails once with ENOMEM, exits.
/// B: `app` (pid 20) maps 4 KiB anonymous twice (far apart) and 16 KiB of /lib/b.so; `new`
/// (pid 30) maps 4 KiB anonymous.
struct Pair {
    _dir: tempfile::TempDir,
    a: PathBuf,
    b: PathBuf,
}

fn pair() -> Pair {
    let dir = tempfile::tempdir().expect("temp dir");
    let a = dir.path().join("a.parquet");
    let b = dir.path().join("b.parquet");
    let mut failed = anon(3000, 10, "app", 0);
    failed.ret = Some(-12);
    let exit = Event {
        exit_code: Some(0),
        ..row(RowKind::Exit, 9000, 10, "app")
    };
    write_capture(
        &a,
        &metadata("a", Default::default()),
        &[
            anon(1000, 10, "app", 0x7f00_0000_0000),
            file_mmap(2000, 10, "app", "/lib/a.so", 8192, 0x7f10_0000_0000),
            failed,
            exit,
        ],
    );
    write_capture(
        &b,
        &metadata("b", Default::default()),
        &[
            anon(1000, 20, "app", 0x7f00_0000_0000),
            anon(1500, 20, "app", 0x7f00_1000_0000),
            file_mmap(2000, 20, "app", "/lib/b.so", 16384, 0x7f20_0000_0000),
            anon(2500, 30, "new", 0x7f00_0000_0000),
        ],
    );
    Pair { _dir: dir, a, b }
}

fn diff(pair: &Pair, format: &str) -> String {
    run_ok([
        "diff".as_ref(),
        pair.a.as_os_str(),
        pair.b.as_os_str(),
        OsStr::new("--format"),
        OsStr::new(format),
    ])
}

/// The JSON row of `section` whose key is `key` (and, for calls, whose dimension is `dimension`).
fn find<'a>(rows: &'a [Value], section: &str, dimension: Option<&str>, key: &str) -> &'a Value {
    rows.iter()
        .find(|r| {
            r["section"] == section
                && r["key"] == key
                && dimension.is_none_or(|d| r["dimension"] == d)
        })
        .unwrap_or_else(|| panic!("no {section} row {dimension:?} {key} in {rows:#?}"))
}

#[test]
fn calls_bytes_and_failures_side_by_side() {
    let pair = pair();
    let rows = json_lines(&diff(&pair, "json"));
    let calls = |dimension: &str, key: &str| {
        let r = find(&rows, "calls", Some(dimension), key);
        [
            &r["calls_a"],
            &r["calls_b"],
            &r["calls_change"],
            &r["bytes_a"],
            &r["bytes_b"],
            &r["bytes_change"],
            &r["failed_a"],
            &r["failed_b"],
            &r["failed_change"],
        ]
        .map(Clone::clone)
    };
    let n = |values: [i64; 9]| values.map(|v| json!(v));
    assert_eq!(
        calls("comm", "app"),
        n([3, 3, 0, 12288, 24576, 12288, 1, 0, -1])
    );
    assert_eq!(calls("comm", "new"), n([0, 1, 1, 0, 4096, 4096, 0, 0, 0]));
    assert_eq!(
        calls("file", "/lib/a.so"),
        n([1, 0, -1, 8192, 0, -8192, 0, 0, 0])
    );
    assert_eq!(
        calls("file", "/lib/b.so"),
        n([0, 1, 1, 0, 16384, 16384, 0, 0, 0])
    );
    assert_eq!(
        calls("syscall", "mmap"),
        n([3, 4, 1, 12288, 28672, 16384, 1, 0, -1])
    );
    let sections: Vec<&str> = rows.iter().filter_map(|r| r["section"].as_str()).collect();
    assert_eq!(sections.iter().filter(|s| **s == "calls").count(), 5);
}

#[test]
fn mappings_left_in_one_and_not_the_other() {
    let pair = pair();
    let rows = json_lines(&diff(&pair, "json"));
    let mappings: Vec<Value> = rows
        .iter()
        .filter(|r| r["section"] == "mappings")
        .map(|r| {
            json!([
                r["key"],
                r["perms"],
                r["size_class"],
                r["mappings_a"],
                r["mappings_b"],
                r["mappings_change"]
            ])
        })
        .collect();
    // A's process exited: its mappings at the exit count. 4 KiB anonymous: 1 in A, 3 in B.
    assert_eq!(
        mappings,
        [
            json!(["/lib/a.so", "r--p", 8192, 1, 0, -1]),
            json!(["/lib/b.so", "r--p", 16384, 0, 1, 1]),
            json!(["[anon]", "rw-p", 4096, 1, 3, 2]),
        ]
    );
}

#[test]
fn table_and_csv_show_the_same() {
    let pair = pair();
    let table = diff(&pair, "table");
    assert!(table.starts_with("Calls (B - A):\n"), "{table}");
    let app = table
        .lines()
        .find(|l| l.trim_start().starts_with("comm") && l.contains(" app "))
        .expect("the app line");
    let cells: Vec<&str> = app.split_whitespace().collect();
    assert_eq!(
        cells,
        [
            "comm", "app", "3", "3", "0", "12.0", "KiB", "24.0", "KiB", "+12.0", "KiB", "1", "0",
            "-1"
        ]
    );
    assert!(table.contains("Mappings at the end in one capture and not the other:"));

    let csv = diff(&pair, "csv");
    let mut lines = csv.lines();
    assert_eq!(
        lines.next(),
        Some(
            "section,dimension,key,perms,size_class,calls_a,calls_b,calls_change,bytes_a,\
             bytes_b,bytes_change,failed_a,failed_b,failed_change,mappings_a,mappings_b,\
             mappings_change"
        )
    );
    assert_eq!(lines.count(), json_lines(&diff(&pair, "json")).len());
}
