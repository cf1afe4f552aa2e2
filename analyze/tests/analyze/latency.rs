//! `mmap-analyze latency`: exact percentiles and log2 histograms of call durations, checked
//! against the durations the test wrote. Also the workload `top` and `errors` are tested on.

use std::{borrow::Cow, ffi::OsStr, path::PathBuf};

use mmap_format::{
    event::{Event, Syscall},
    metadata::Counters,
};
use serde_json::{Value, json};

use crate::common::{
    MAP_PRIVATE, PROT_READ, PROT_WRITE, json_lines, metadata, run, run_ok,
    v11::{call, mmap_anon},
    write_capture_with,
};

pub const EACCES: i64 = 13;
pub const EINVAL: i64 = 22;
pub const ENOMEM: i64 = 12;

/// A capture whose durations, sizes and failures the tests know:
///
/// - pid 10 `alpha`: 100 anonymous mmaps, the i-th taking 1000 + 37·i² mod 90,001 ns (spread
///   over several log2 buckets), of 4096·(i mod 4 + 1) bytes; every tenth fails with ENOMEM.
/// - pid 20 `beta`: 50 munmaps of 300 + 11·i ns; mremaps: 5 grow 4 KiB -> 12 KiB, 1 shrinks,
///   1 fails with EINVAL (15 us each).
/// - pid 30 `gamma`: 3 mmaps of 64 KiB of /lib/libz.so.1 (5 ms each; the last exit not seen),
///   2 mprotects failing with EACCES.
/// - pid 40 `alpha` (another process with the same name): 1 mmap of 1 MiB, 3 ms.
pub fn workload() -> Vec<Event<'static>> {
    let mut events = Vec::new();
    let mut at = 0;
    let mut next = || {
        at += 100_000;
        at
    };
    for i in 0..100i64 {
        let len = 4096 * (i as u64 % 4 + 1);
        let mut event = mmap_anon(next(), 10, "alpha", len, 0x7f00_0000_0000);
        if i % 10 == 9 {
            event.ret = Some(-ENOMEM);
        }
        event.ts_exit_ns = Some(event.ts_ns + 1000 + (37 * i * i) % 90_001);
        events.push(event);
    }
    for i in 0..50i64 {
        let mut event = Event {
            addr: Some(0x7f00_0000_0000),
            len: Some(4096),
            ..call(Syscall::Munmap, next(), 20, "beta", 0)
        };
        event.ts_exit_ns = Some(event.ts_ns + 300 + 11 * i);
        events.push(event);
    }
    let mremap = |offset, len, new_len, ret| {
        let mut event = Event {
            addr: Some(0x7f00_0000_0000),
            len: Some(len),
            new_len: Some(new_len),
            flags: Some(1),
            ..call(Syscall::Mremap, offset, 20, "beta", ret)
        };
        event.ts_exit_ns = Some(event.ts_ns + 15_000);
        event
    };
    for _ in 0..5 {
        events.push(mremap(next(), 4096, 12288, 0x7f00_0100_0000));
    }
    events.push(mremap(next(), 8192, 4096, 0x7f00_0000_0000));
    events.push(mremap(next(), 4096, 1 << 30, -EINVAL));
    for i in 0..3 {
        let mut event = mmap_anon(next(), 30, "gamma", 65536, 0x7f00_0200_0000);
        event.prot = Some(PROT_READ);
        event.flags = Some(MAP_PRIVATE);
        event.fd = Some(3);
        event.file_path = Some(Cow::Borrowed("/lib/libz.so.1"));
        event.file_name = Some(Cow::Borrowed("libz.so.1"));
        event.file_ino = Some(77);
        event.ts_exit_ns = Some(event.ts_ns + 5_000_000);
        if i == 2 {
            event.ts_exit_ns = None;
            event.ret = None;
        }
        events.push(event);
    }
    for _ in 0..2 {
        let mut event = Event {
            addr: Some(0x7f00_0200_0000),
            len: Some(4096),
            prot: Some(PROT_READ | PROT_WRITE | 0x4),
            ..call(Syscall::Mprotect, next(), 30, "gamma", -EACCES)
        };
        event.ts_exit_ns = Some(event.ts_ns + 700);
        events.push(event);
    }
    let mut big = mmap_anon(next(), 40, "alpha", 1 << 20, 0x7f00_0300_0000);
    big.ts_exit_ns = Some(big.ts_ns + 3_000_000);
    events.push(big);
    events
}

/// The workload written to a capture (row groups of 64 rows), in a temporary directory.
pub struct Workload {
    _dir: tempfile::TempDir,
    pub path: PathBuf,
    pub events: Vec<Event<'static>>,
}

impl Workload {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let path = dir.path().join("workload.parquet");
        let events = workload();
        write_capture_with(&path, &metadata("host-w", Counters::default()), &events, 64);
        Self {
            _dir: dir,
            path,
            events,
        }
    }

    /// Runs `command PATH args...` and returns its stdout.
    pub fn run_ok(&self, command: &str, args: &[&str]) -> String {
        let mut all: Vec<&OsStr> = vec![command.as_ref(), self.path.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        run_ok(all)
    }

    /// Runs `command PATH args... --format json` and returns the rows.
    pub fn json(&self, command: &str, args: &[&str]) -> Vec<Value> {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        json_lines(&self.run_ok(command, &all))
    }

    /// Runs `command PATH args... --format csv` and returns the header and records.
    pub fn csv(&self, command: &str, args: &[&str]) -> (Vec<String>, Vec<Vec<String>>) {
        let mut all = args.to_vec();
        all.extend(["--format", "csv"]);
        let text = self.run_ok(command, &all);
        let mut reader = csv::Reader::from_reader(text.as_bytes());
        let header = reader
            .headers()
            .expect("a CSV header")
            .iter()
            .map(str::to_owned)
            .collect();
        let records = reader
            .records()
            .map(|record| {
                record
                    .expect("a CSV record")
                    .iter()
                    .map(str::to_owned)
                    .collect()
            })
            .collect();
        (header, records)
    }

    /// Runs `command PATH args...`, expects exit 1, nothing on stdout and one line on stderr;
    /// returns that line.
    pub fn wrong_query(&self, command: &str, args: &[&str]) -> String {
        let mut all: Vec<&OsStr> = vec![command.as_ref(), self.path.as_os_str()];
        all.extend(args.iter().map(OsStr::new));
        let output = run(&all);
        let stderr = String::from_utf8(output.stderr).expect("stderr is UTF-8");
        assert_eq!(output.status.code(), Some(1), "{all:?}: {stderr}");
        assert!(output.stdout.is_empty(), "nothing on stdout for {all:?}");
        assert_eq!(stderr.lines().count(), 1, "one line: {stderr:?}");
        assert!(stderr.starts_with("mmap-analyze: "), "{stderr}");
        stderr
    }

    /// Asserts that `command` with a filter that matches nothing prints nothing in a table or
    /// JSON, and the header line alone in CSV.
    pub fn assert_empty_when_nothing_matches(&self, command: &str) {
        for format in ["table", "json"] {
            let out = self.run_ok(command, &["--pid", "99999", "--format", format]);
            assert_eq!(out, "", "{command} --format {format}");
        }
        let (header, records) = self.csv(command, &["--pid", "99999"]);
        assert!(header.contains(&"calls".to_owned()), "{header:?}");
        assert!(records.is_empty(), "{records:?}");
    }
}

/// `ts_exit - ts` when the exit was seen.
pub fn duration(event: &Event<'_>) -> Option<i64> {
    event.ts_exit_ns.map(|exit| exit - event.ts_ns)
}

/// The nearest-rank percentile `p` (in parts per ten thousand) of `sorted`.
pub fn percentile(sorted: &[i64], per_10k: usize) -> i64 {
    let rank = (sorted.len() * per_10k).div_ceil(10_000).max(1);
    sorted[rank - 1]
}

/// The sorted durations of the calls of `syscall`.
fn durations_of(events: &[Event<'_>], syscall: Syscall) -> Vec<i64> {
    let mut durations: Vec<i64> = events
        .iter()
        .filter(|e| e.syscall == Some(syscall))
        .filter_map(duration)
        .collect();
    durations.sort_unstable();
    durations
}

/// The histogram of `durations` as `[from_ns, to_ns, calls]`, from the first bucket with a
/// call to the last: under 1 us, then doubling from 1 us.
fn histogram(durations: &[i64]) -> Vec<[u64; 3]> {
    let mut bounds = vec![(0u64, 1000u64)];
    while bounds.last().expect("a bucket").1 <= 10_000_000_000 {
        let to = bounds.last().expect("a bucket").1;
        bounds.push((to, to * 2));
    }
    let counts: Vec<u64> = bounds
        .iter()
        .map(|(from, to)| {
            durations
                .iter()
                .filter(|d| (*from..*to).contains(&(**d as u64)))
                .count() as u64
        })
        .collect();
    let first = counts.iter().position(|c| *c > 0).expect("a call");
    let last = counts.iter().rposition(|c| *c > 0).expect("a call");
    (first..=last)
        .map(|i| [bounds[i].0, bounds[i].1, counts[i]])
        .collect()
}

/// The JSON object `latency` gives for durations `sorted` (and `no_exit` calls without one).
fn expected(sorted: &[i64], no_exit: u64) -> Value {
    let histogram: Vec<Value> = histogram(sorted)
        .iter()
        .map(|[from, to, calls]| json!({"from_ns": from, "to_ns": to, "calls": calls}))
        .collect();
    json!({
        "calls": sorted.len(),
        "no_exit": no_exit,
        "p50_ns": percentile(sorted, 5_000),
        "p90_ns": percentile(sorted, 9_000),
        "p99_ns": percentile(sorted, 9_900),
        "p99_9_ns": percentile(sorted, 9_990),
        "max_ns": sorted.last(),
        "histogram": histogram,
    })
}

/// `object` without its key `name`.
fn without(mut object: Value, name: &str) -> Value {
    object
        .as_object_mut()
        .expect("an object")
        .remove(name)
        .expect("the key is there");
    object
}

#[test]
fn percentiles_and_histograms_per_syscall_match_the_durations_written() {
    let w = Workload::new();
    let rows = w.json("latency", &[]);
    let syscalls: Vec<&str> = rows
        .iter()
        .map(|row| row["syscall"].as_str().expect("syscall"))
        .collect();
    assert_eq!(syscalls, ["mmap", "mprotect", "mremap", "munmap"]);
    for row in rows {
        let syscall: Syscall = row["syscall"]
            .as_str()
            .expect("syscall")
            .parse()
            .expect("a syscall");
        let no_exit = w
            .events
            .iter()
            .filter(|e| e.syscall == Some(syscall) && e.ts_exit_ns.is_none())
            .count() as u64;
        assert_eq!(
            without(row, "syscall"),
            expected(&durations_of(&w.events, syscall), no_exit),
            "{syscall:?}"
        );
    }
    // The mmaps spread over several buckets (checked here so that the test means something).
    let mmaps = durations_of(&w.events, Syscall::Mmap);
    assert!(histogram(&mmaps).len() >= 7, "{:?}", histogram(&mmaps));
}

#[test]
fn per_process_with_a_pid_filter_and_a_where_predicate() {
    let w = Workload::new();
    let rows = w.json("latency", &["--per", "process", "--pid", "20"]);
    let mut beta: Vec<i64> = w
        .events
        .iter()
        .filter(|e| e.pid == 20)
        .filter_map(duration)
        .collect();
    beta.sort_unstable();
    let mut want = expected(&beta, 0);
    want["pid"] = json!(20);
    want["comm"] = json!("beta");
    assert_eq!(rows, [want]);
    // The key columns come first, in their order.
    let text = w.run_ok(
        "latency",
        &["--per", "process", "--pid", "20", "--format", "json"],
    );
    assert!(
        text.starts_with(r#"{"pid":20,"comm":"beta","calls":57,"#),
        "{text}"
    );

    // Two processes named alpha stay apart per process, together per comm; --where narrows.
    let per_process = w.json("latency", &["--per", "process", "--comm", "alpha"]);
    assert_eq!(per_process.len(), 2);
    let per_comm = w.json(
        "latency",
        &["--per", "comm,syscall", "--where", "len >= 1048576"],
    );
    assert_eq!(per_comm.len(), 1, "{per_comm:?}");
    assert_eq!(per_comm[0]["comm"], "alpha");
    assert_eq!(per_comm[0]["syscall"], "mmap");
    assert_eq!(per_comm[0]["calls"], 1);
    assert_eq!(per_comm[0]["max_ns"], 3_000_000);
}

#[test]
fn csv_has_a_line_per_group_and_bucket() {
    let w = Workload::new();
    let (header, records) = w.csv("latency", &["--syscall", "mmap"]);
    assert_eq!(
        header,
        [
            "syscall",
            "calls",
            "no_exit",
            "p50_ns",
            "p90_ns",
            "p99_ns",
            "p99_9_ns",
            "max_ns",
            "from_ns",
            "to_ns",
            "bucket_calls"
        ]
    );
    let mmaps = durations_of(&w.events, Syscall::Mmap);
    let buckets: Vec<[u64; 3]> = records
        .iter()
        .map(|r| {
            assert_eq!(r[0], "mmap");
            assert_eq!(r[1], mmaps.len().to_string());
            assert_eq!(r[5], percentile(&mmaps, 9_900).to_string());
            [&r[8], &r[9], &r[10]].map(|n| n.parse().expect("a number"))
        })
        .collect();
    assert_eq!(buckets, histogram(&mmaps));
}

#[test]
fn table_snapshot() {
    let w = Workload::new();
    let table = w.run_ok("latency", &["--syscall", "mmap", "--syscall", "mremap"]);
    insta::assert_snapshot!("latency_table", table);
}

#[test]
fn a_wrong_where_is_one_line_and_exit_1() {
    let w = Workload::new();
    let line = w.wrong_query("latency", &["--where", "len > 1 AND lenn > 1"]);
    assert!(line.contains("--where: column 'lenn' not found"), "{line}");
    assert!(
        line.contains("at column 13"),
        "points into the predicate: {line}"
    );
    // A predicate cannot close the parenthesis around it and widen the filter.
    let line = w.wrong_query("latency", &["--pid", "20", "--where", "1=1) OR (1=1"]);
    assert!(line.contains("--where: "), "{line}");
}

#[test]
fn nothing_matched_is_empty_output() {
    Workload::new().assert_empty_when_nothing_matches("latency");
}

#[test]
fn times_of_the_filter_apply() {
    let w = Workload::new();
    // The first row is at +0.1 ms, the 100 mmaps of alpha until +10 ms, the next call at
    // +10.1 ms: 9.95 ms after the first row keeps the mmaps only.
    let rows = w.json("latency", &["--until", "+9950us"]);
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["syscall"], "mmap");
    assert_eq!(rows[0]["calls"], 100);
}

/// A capture recorded with `--attach tracepoint-exit`: its calls have a result and `ts` (their
/// exit) but no `ts_exit`. `latency` counts them as `no_exit` and says why on stderr; `maps`
/// places each call at `ts`, so a mapping shows up and an unmapping removes it; `info` says the
/// calls have no durations.
#[test]
fn calls_recorded_at_their_exit_only_have_no_duration_and_still_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("exit-only.parquet");
    let mut meta = metadata("host-x", Counters::default());
    meta.attach_mode = "tracepoint_exit".to_owned();
    let exit_only = |mut e: Event<'static>| {
        e.ts_exit_ns = None;
        e.source = Some(Cow::Borrowed("tracepoint_exit"));
        e
    };
    let (a, b) = (0x7f00_0000_0000_u64, 0x7f00_0010_0000_u64);
    let events = vec![
        exit_only(mmap_anon(1_000, 10, "x", 4096, a)),
        exit_only(mmap_anon(2_000, 10, "x", 8192, b)),
        exit_only(Event {
            addr: Some(a),
            len: Some(4096),
            ..call(Syscall::Munmap, 3_000, 10, "x", 0)
        }),
    ];
    write_capture_with(&path, &meta, &events, 1024);

    let out = run([
        OsStr::new("latency"),
        path.as_os_str(),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]);
    assert!(out.status.success(), "{out:?}");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("1 input file(s) recorded with --attach tracepoint-exit"),
        "{stderr}"
    );
    let rows = json_lines(&String::from_utf8_lossy(&out.stdout));
    let no_exit: u64 = rows.iter().map(|r| r["no_exit"].as_u64().expect("n")).sum();
    let calls: u64 = rows.iter().map(|r| r["calls"].as_u64().expect("n")).sum();
    assert_eq!((calls, no_exit), (0, 3), "{rows:?}");

    let maps: Value = serde_json::from_str(&run_ok([
        OsStr::new("maps"),
        path.as_os_str(),
        OsStr::new("--pid"),
        OsStr::new("10"),
        OsStr::new("--format"),
        OsStr::new("json"),
    ]))
    .expect("json");
    let starts: Vec<u64> = maps["regions"]
        .as_array()
        .expect("regions")
        .iter()
        .map(|r| r["start"].as_u64().expect("start"))
        .collect();
    assert_eq!(starts, [b], "{maps:#}");

    // `info` says what the attach mode means for durations.
    let info = run_ok([OsStr::new("info"), path.as_os_str()]);
    assert!(
        info.contains(
            "attach mode  tracepoint_exit (calls recorded at their exit only: no durations)"
        ),
        "{info}"
    );
}
