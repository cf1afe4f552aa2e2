//! `mmap-analyze export`: a Chrome/Perfetto trace checked against the Trace Event Format, and
//! JSON Lines and CSV files that are what `events` prints.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsStr,
    path::Path,
};

use mmap_format::event::{Event, RowKind};
use serde_json::Value;

use crate::common::{
    BASE_NS, run, run_ok,
    v11::{FixtureC, events_c},
};

/// Runs `export INPUT --format FORMAT -o OUT EXTRA...` and returns what it wrote.
fn export(input: &Path, format: &str, out: &Path, extra: &[&str]) -> String {
    let mut args: Vec<&OsStr> = vec![
        "export".as_ref(),
        input.as_os_str(),
        "--format".as_ref(),
        format.as_ref(),
        "-o".as_ref(),
        out.as_os_str(),
    ];
    args.extend(extra.iter().map(OsStr::new));
    assert_eq!(run_ok(args), "", "nothing on stdout");
    std::fs::read_to_string(out).expect("the exported file")
}

fn trace(fx: &FixtureC, extra: &[&str]) -> (Value, Vec<Value>) {
    let out = fx.dir.path().join("trace.json");
    let text = export(&fx.c, "chrome-trace", &out, extra);
    let document: Value = serde_json::from_str(&text).expect("one JSON document");
    let events = document["traceEvents"]
        .as_array()
        .expect("a traceEvents array")
        .clone();
    (document, events)
}

fn of_phase<'a>(events: &'a [Value], ph: &str) -> Vec<&'a Value> {
    events.iter().filter(|e| e["ph"] == ph).collect()
}

/// Microseconds after the capture's first row (the snapshot at +100 ns).
fn micros_after_first(offset_ns: i64) -> f64 {
    (offset_ns - 100) as f64 / 1e3
}

#[test]
fn chrome_trace_follows_the_trace_event_format() {
    let fx = FixtureC::new();
    let (document, events) = trace(&fx, &[]);
    assert_eq!(document["displayTimeUnit"], "ns");
    assert_eq!(document["otherData"]["time_origin_ns"], BASE_NS + 100);
    // Every event: a known phase, a name, integer pid and tid; all but metadata a time.
    for event in &events {
        let ph = event["ph"].as_str().expect("ph is a string");
        assert!(["X", "i", "C", "M"].contains(&ph), "{event}");
        assert!(event["name"].is_string(), "{event}");
        assert!(event["pid"].is_u64() && event["tid"].is_u64(), "{event}");
        assert!(event["args"].is_object(), "{event}");
        if ph != "M" {
            assert!(event["ts"].as_f64().is_some_and(|ts| ts >= 0.0), "{event}");
        }
        if ph == "X" {
            assert!(event["dur"].as_f64().is_some_and(|d| d >= 0.0), "{event}");
        }
        if ph == "i" {
            assert!(
                ["t", "p", "g"].contains(&event["s"].as_str().unwrap_or("")),
                "{event}"
            );
        }
    }
    // Expectations from the rows themselves.
    let rows = events_c();
    let calls: Vec<&Event<'_>> = rows.iter().filter(|e| e.kind == RowKind::Syscall).collect();
    let complete = of_phase(&events, "X");
    assert_eq!(complete.len(), calls.len(), "every call has its exit");
    let instants = of_phase(&events, "i");
    let lifecycle = rows
        .iter()
        .filter(|e| {
            matches!(
                e.kind,
                RowKind::Fork | RowKind::Exec | RowKind::Exit | RowKind::Lost
            )
        })
        .count();
    assert_eq!(instants.len(), lifecycle);
    let threads: BTreeSet<(u64, u64)> = rows
        .iter()
        .filter(|e| !matches!(e.kind, RowKind::Snapshot | RowKind::Lost))
        .map(|e| (u64::from(e.pid), u64::from(e.tid)))
        .collect();
    let named: BTreeSet<(u64, u64)> = of_phase(&events, "M")
        .iter()
        .filter(|e| e["name"] == "thread_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap_or(0),
                e["tid"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(named, threads, "one named track per thread");
    let processes: BTreeMap<u64, &str> = of_phase(&events, "M")
        .iter()
        .filter(|e| e["name"] == "process_name")
        .map(|e| {
            (
                e["pid"].as_u64().unwrap_or(0),
                e["args"]["name"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        processes,
        BTreeMap::from([(500, "app"), (600, "child"), (700, "loner")])
    );

    // The 8 KiB mmap of tid 501: ts and dur exact to the nanosecond, its arguments by name.
    let anon = complete
        .iter()
        .find(|e| e["tid"] == 501)
        .expect("the call of tid 501");
    assert_eq!(anon["name"], "mmap");
    assert_eq!(anon["ts"].as_f64(), Some(micros_after_first(1000)));
    assert_eq!(anon["dur"].as_f64(), Some(0.5));
    assert_eq!(anon["args"]["len"], 8192);
    assert_eq!(anon["args"]["prot"], "PROT_READ|PROT_WRITE");
    assert_eq!(anon["args"]["flags"], "MAP_PRIVATE|MAP_ANONYMOUS");
    assert_eq!(anon["args"]["result"], "0x7f0000000000");
    let exit = instants
        .iter()
        .find(|e| e["name"] == "exit")
        .expect("the exit");
    assert_eq!(exit["pid"], 600);
    assert_eq!(exit["args"]["exit_status"], "exit status 1");
}

#[test]
fn the_counter_follows_the_replayed_address_space() {
    let fx = FixtureC::new();
    let (_, events) = trace(&fx, &[]);
    let counter = |pid: u64| -> Vec<(f64, u64)> {
        of_phase(&events, "C")
            .iter()
            .filter(|e| e["pid"] == pid && e["name"] == "mapped bytes")
            .map(|e| {
                (
                    e["ts"].as_f64().unwrap_or(-1.0),
                    e["args"]["bytes"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    // pid 700 has no snapshot: its one 4 KiB mapping, at the call's exit.
    assert_eq!(counter(700), [(micros_after_first(1000), 4096)]);
    // pid 600: the parent's map at the fork, the exec snapshot (child binary 12 KiB + stack
    // 132 KiB) at the first row after it, 64 KiB more for the memfd, nothing at its exit.
    let child = counter(600);
    let bytes: Vec<u64> = child.iter().map(|(_, b)| *b).collect();
    let after_exec = 0x3000 + 0x21000;
    assert!(
        bytes
            .windows(2)
            .any(|w| w == [after_exec, after_exec + 65536]),
        "{child:?}"
    );
    assert_eq!(bytes.last(), Some(&0), "{child:?}");
    assert_eq!(
        child.last().map(|(ts, _)| *ts),
        Some(micros_after_first(11000))
    );
    // With a filter the counter still counts every row: pid 600 alone, its memfd point the same.
    let (_, only) = trace(&fx, &["--pid", "600", "--syscall", "mmap"]);
    let points: Vec<u64> = of_phase(&only, "C")
        .iter()
        .map(|e| e["args"]["bytes"].as_u64().unwrap_or(0))
        .collect();
    assert_eq!(points, [after_exec + 65536]);
    assert_eq!(of_phase(&only, "X").len(), 1);
}

#[test]
fn jsonl_and_csv_are_what_events_prints() {
    let fx = FixtureC::new();
    for (format, events_format) in [("jsonl", "json"), ("csv", "csv")] {
        for extra in [&[][..], &["--pid", "500"][..]] {
            let out = fx.dir.path().join(format!("out.{format}"));
            let written = export(&fx.c, format, &out, extra);
            let mut args: Vec<&OsStr> = vec![
                "events".as_ref(),
                fx.c.as_os_str(),
                "--format".as_ref(),
                events_format.as_ref(),
            ];
            args.extend(extra.iter().map(OsStr::new));
            assert_eq!(written, run_ok(args), "{format} {extra:?}");
        }
    }
}

#[test]
fn the_output_file_is_required() {
    let fx = FixtureC::new();
    let output = run([
        "export".as_ref(),
        fx.c.as_os_str(),
        "--format".as_ref(),
        "jsonl".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(2));
}
