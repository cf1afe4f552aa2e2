//! `findings`: each saved question against a capture that plants it and one that does not (near
//! misses of every question), the predicates checked with `sql`, the filter, the thresholds and
//! the exit status.

use std::{borrow::Cow, path::PathBuf};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    names,
};
use serde_json::Value;

use crate::common::{
    self, BASE_NS, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, metadata,
    v11::{PROT_EXEC, call, mmap_anon, row, snapshot},
};

const MIB: u64 = 1 << 20;
const SECOND: i64 = 1_000_000_000;
const ENOMEM: i64 = 12;
const EAGAIN: i64 = 11;

/// Every question, by id.
const ALL: [&str; 10] = [
    "wx-mapping",
    "exec-after-write",
    "deleted-exec",
    "deleted-exec-mapping",
    "deleted-mapping",
    "big-anon",
    "fast-anon",
    "failure-storm",
    "leak-candidate",
    "records-lost",
];

fn mprotect(
    offset_ns: i64,
    pid: u32,
    comm: &str,
    addr: u64,
    len: u64,
    prot: u64,
) -> Event<'static> {
    Event {
        addr: Some(addr),
        len: Some(len),
        prot: Some(prot),
        ..call(Syscall::Mprotect, offset_ns, pid, comm, 0)
    }
}

fn munmap(offset_ns: i64, pid: u32, comm: &str, addr: u64, len: u64) -> Event<'static> {
    Event {
        addr: Some(addr),
        len: Some(len),
        ..call(Syscall::Munmap, offset_ns, pid, comm, 0)
    }
}

fn failed_mmap(offset_ns: i64, pid: u32, comm: &str, errno: i64) -> Event<'static> {
    Event {
        ret: Some(-errno),
        ..mmap_anon(offset_ns, pid, comm, 64 * MIB, 0)
    }
}

/// A successful mmap of a file (`deleted` or a memfd) with `prot`.
fn mmap_file(
    offset_ns: i64,
    pid: u32,
    comm: &str,
    (path, ino): (&str, u64),
    prot: u64,
    (deleted, memfd): (bool, bool),
    ret: u64,
) -> Event<'static> {
    Event {
        prot: Some(prot),
        flags: Some(if memfd { MAP_SHARED } else { MAP_PRIVATE }),
        fd: Some(3),
        file_dev: Some(names::makedev(8, 1)),
        file_ino: Some(ino),
        file_name: path.rsplit('/').next().map(|n| Cow::Owned(n.to_owned())),
        file_path: Some(Cow::Owned(path.to_owned())),
        file_deleted: Some(deleted),
        file_memfd: Some(memfd),
        ..mmap_anon(offset_ns, pid, comm, 64 * 1024, ret)
    }
}

fn exec(offset_ns: i64, pid: u32, comm: &str, path: &str) -> Event<'static> {
    Event {
        file_path: Some(Cow::Owned(path.to_owned())),
        file_name: path.rsplit('/').next().map(|n| Cow::Owned(n.to_owned())),
        path_source: Some(Cow::Borrowed("exec_filename")),
        ..row(RowKind::Exec, offset_ns, pid, comm)
    }
}

/// `count` anonymous mmaps of `len` by `pid`, `every` ns apart from `start`, at consecutive
/// addresses from `base`.
fn anon_series(
    start: i64,
    every: i64,
    pid: u32,
    comm: &str,
    (count, len): (u64, u64),
    base: u64,
) -> Vec<Event<'static>> {
    (0..count)
        .map(|i| mmap_anon(start + every * i as i64, pid, comm, len, base + i * len))
        .collect()
}

const JIT: u64 = 0x7f00_0000_0000;
const RWX: u64 = 0x7f00_1000_0000;
const LIB: u64 = 0x7f00_2000_0000;
const MEMFD: u64 = 0x7f00_3000_0000;
const DELETED: u64 = 0x7f00_4000_0000;
const HOG: u64 = 0x7e00_0000_0000;
const BURST: u64 = 0x7d00_0000_0000;
const LEAKY: u64 = 0x7c00_0000_0000;

/// The planted capture, one process per question:
///
/// | pid | comm     | plants |
/// |-----|----------|--------|
/// | 100 | jit      | anonymous RW mmap made RX (exec-after-write), an RWX mmap (wx-mapping) |
/// | 101 | textrel  | a read-only library page made RW, then RX (exec-after-write, was writable) |
/// | 102 | fileless | exec of /proc/self/fd/3 (deleted-exec), RX mmap of a memfd (deleted-exec-mapping), R mmap of a deleted file (deleted-mapping) |
/// | 103 | hog      | 5 x 250 MiB anonymous, 2 s apart (big-anon), all unmapped at the end |
/// | 104 | burst    | 2 x 200 MiB within 100 ms (fast-anon), unmapped |
/// | 105 | leaky    | 3 x 100 MiB, 2 s apart, never unmapped, alive at the end (leak-candidate) |
/// | 106 | oom      | 12 mmaps failing with ENOMEM or EAGAIN within 110 ms (failure-storm) |
/// | -   | -        | a lost row: 7 records (records-lost) |
fn planted() -> Vec<Event<'static>> {
    let rw = PROT_READ | PROT_WRITE;
    let mut rows = vec![
        mmap_anon(1_000, 100, "jit", 64 * 1024, JIT),
        mprotect(2_000, 100, "jit", JIT, 64 * 1024, PROT_READ | PROT_EXEC),
        Event {
            prot: Some(rw | PROT_EXEC),
            ..mmap_anon(3_000, 100, "jit", 4096, RWX)
        },
        snapshot(
            500,
            101,
            "textrel",
            "proc_maps:start",
            (LIB, LIB + 0x2000),
            PROT_READ,
            0,
            Some(("/usr/lib/libold.so", 9)),
        ),
        mprotect(4_000, 101, "textrel", LIB, 0x2000, rw),
        mprotect(5_000, 101, "textrel", LIB, 0x2000, PROT_READ | PROT_EXEC),
        exec(6_000, 102, "fileless", "/proc/self/fd/3"),
        mmap_file(
            7_000,
            102,
            "fileless",
            ("/memfd:payload", 77),
            PROT_READ | PROT_EXEC,
            (true, true),
            MEMFD,
        ),
        mmap_file(
            8_000,
            102,
            "fileless",
            ("/tmp/gone.dat", 78),
            PROT_READ,
            (true, false),
            DELETED,
        ),
    ];
    rows.extend(anon_series(
        SECOND,
        2 * SECOND,
        103,
        "hog",
        (5, 250 * MIB),
        HOG,
    ));
    rows.push(munmap(12 * SECOND, 103, "hog", HOG, 5 * 250 * MIB));
    rows.extend(anon_series(
        SECOND,
        SECOND / 10,
        104,
        "burst",
        (2, 200 * MIB),
        BURST,
    ));
    rows.push(munmap(3 * SECOND, 104, "burst", BURST, 400 * MIB));
    rows.extend(anon_series(
        SECOND,
        2 * SECOND,
        105,
        "leaky",
        (3, 100 * MIB),
        LEAKY,
    ));
    for i in 0..12 {
        let errno = if i % 2 == 0 { ENOMEM } else { EAGAIN };
        rows.push(failed_mmap(2 * SECOND + i * 10_000_000, 106, "oom", errno));
    }
    rows.push(Event {
        ts_exit_ns: Some(BASE_NS + 9_500),
        lost_count: Some(7),
        cpu: 3,
        source: Some(Cow::Borrowed("kernel")),
        pid: 0,
        tid: 0,
        comm: Cow::Borrowed(""),
        ..row(RowKind::Lost, 9_000, 0, "")
    });
    rows.sort_by_key(|e| e.ts_ns);
    rows
}

/// The clean capture: near misses of every question.
///
/// | pid | comm     | near miss |
/// |-----|----------|-----------|
/// | 200 | loader   | anonymous RW made read-only; a library mapped RX and mprotected RX again (never writable); a RW mapping unmapped and the range mapped again from a file RX, then mprotected RX |
/// | 201 | worker   | exec of /usr/bin/worker; RW and RX mmaps of files not deleted |
/// | 202 | big      | 4 x 250 MiB (1000 MiB, under 1 GiB), 2 s apart, unmapped |
/// | 203 | steady   | 2 x 150 MiB, 2 s apart, then exit (not alive at the end) |
/// | 204 | small    | 200 MiB never unmapped (under the leak threshold) |
/// | 205 | retry    | 9 ENOMEM within 1 s, and 10 more spread over 10 s |
fn clean() -> Vec<Event<'static>> {
    let rw = PROT_READ | PROT_WRITE;
    let rx = PROT_READ | PROT_EXEC;
    let mut rows = vec![
        mmap_anon(1_000, 200, "loader", 8192, JIT),
        mprotect(2_000, 200, "loader", JIT, 8192, PROT_READ),
        mmap_file(
            3_000,
            200,
            "loader",
            ("/usr/lib/libc.so.6", 5),
            rx,
            (false, false),
            LIB,
        ),
        mprotect(4_000, 200, "loader", LIB, 0x2000, rx),
        mmap_anon(5_000, 200, "loader", 8192, RWX),
        munmap(6_000, 200, "loader", RWX, 8192),
        mmap_file(
            7_000,
            200,
            "loader",
            ("/usr/lib/libm.so.6", 6),
            rx,
            (false, false),
            RWX,
        ),
        mprotect(8_000, 200, "loader", RWX, 8192, rx),
        exec(9_000, 201, "worker", "/usr/bin/worker"),
        mmap_file(
            10_000,
            201,
            "worker",
            ("/data/db", 7),
            rw,
            (false, false),
            MEMFD,
        ),
        mmap_file(
            11_000,
            201,
            "worker",
            ("/usr/lib/libz.so", 8),
            rx,
            (false, false),
            DELETED,
        ),
    ];
    rows.extend(anon_series(
        SECOND,
        2 * SECOND,
        202,
        "big",
        (4, 250 * MIB),
        HOG,
    ));
    rows.push(munmap(10 * SECOND, 202, "big", HOG, 1000 * MIB));
    rows.extend(anon_series(
        SECOND,
        2 * SECOND,
        203,
        "steady",
        (2, 150 * MIB),
        BURST,
    ));
    rows.push(row(RowKind::Exit, 4 * SECOND, 203, "steady"));
    rows.extend(anon_series(
        SECOND,
        SECOND,
        204,
        "small",
        (1, 200 * MIB),
        LEAKY,
    ));
    for i in 0..9 {
        rows.push(failed_mmap(SECOND + i * 100_000_000, 205, "retry", ENOMEM));
    }
    for i in 0..10 {
        rows.push(failed_mmap(
            3 * SECOND + i * 1_100_000_000,
            205,
            "retry",
            EAGAIN,
        ));
    }
    rows.sort_by_key(|e| e.ts_ns);
    rows
}

struct Capture {
    _dir: tempfile::TempDir,
    path: PathBuf,
}

fn capture(events: &[Event<'_>]) -> Capture {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("capture.parquet");
    let mut meta = metadata("host-f", Default::default());
    meta.capture_end_ns = BASE_NS + 20 * SECOND;
    meta.page_size = Some(4096);
    common::write_capture(&path, &meta, events);
    Capture { _dir: dir, path }
}

/// `findings --format json` (and `extra` options): one object per question.
fn findings(capture: &Capture, extra: &[&str]) -> Vec<Value> {
    let mut args = vec!["findings", path(capture), "--format", "json"];
    args.extend(extra);
    common::run_ok(args)
        .lines()
        .map(|line| serde_json::from_str(line).expect("a JSON line"))
        .collect()
}

fn path(capture: &Capture) -> &str {
    capture.path.to_str().expect("UTF-8 path")
}

fn by_id<'f>(findings: &'f [Value], id: &str) -> &'f Value {
    findings
        .iter()
        .find(|f| f["id"] == id)
        .unwrap_or_else(|| panic!("no finding {id} in {findings:?}"))
}

fn count(findings: &[Value], id: &str) -> u64 {
    by_id(findings, id)["count"].as_u64().expect("count")
}

fn example_pids(finding: &Value) -> Vec<u64> {
    finding["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| e["pid"].as_u64().expect("pid"))
        .collect()
}

/// The rows the predicate of `finding` selects, counted with `sql`.
fn rows_of_predicate(capture: &Capture, finding: &Value) -> u64 {
    let query = format!(
        "SELECT count(*) AS n FROM {} WHERE {}",
        finding["view"].as_str().expect("view"),
        finding["predicate"].as_str().expect("predicate")
    );
    let out = common::run_ok(["sql", path(capture), &query, "--format", "json"]);
    let line: Value = serde_json::from_str(out.trim()).expect("one JSON line");
    line["n"].as_u64().expect("n")
}

#[test]
fn every_question_is_answered_once_most_severe_first() {
    let found = findings(&capture(&planted()), &[]);
    let ids: Vec<&str> = found
        .iter()
        .map(|f| f["id"].as_str().expect("id"))
        .collect();
    let mut expected: Vec<&str> = ALL.to_vec();
    expected.sort_unstable();
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    assert_eq!(sorted, expected);
    let rank = |s: &Value| match s.as_str() {
        Some("high") => 0,
        Some("medium") => 1,
        Some("low") => 2,
        _ => 3,
    };
    let ranks: Vec<u8> = found.iter().map(|f| rank(&f["severity"])).collect();
    assert!(ranks.is_sorted(), "{ids:?}");
}

#[test]
fn the_planted_capture_has_every_finding_in_the_planted_process() {
    let capture = capture(&planted());
    let found = findings(&capture, &[]);
    // (id, count, the processes of its examples)
    let expected: [(&str, u64, &[u64]); 10] = [
        ("wx-mapping", 1, &[100]),
        ("exec-after-write", 2, &[100, 101]),
        ("deleted-exec", 1, &[102]),
        ("deleted-exec-mapping", 1, &[102]),
        ("deleted-mapping", 1, &[102]),
        ("big-anon", 1, &[103]),
        ("fast-anon", 1, &[104]),
        ("failure-storm", 1, &[106]),
        ("leak-candidate", 1, &[105]),
        ("records-lost", 7, &[0]),
    ];
    for (id, n, pids) in expected {
        let finding = by_id(&found, id);
        assert_eq!(count(&found, id), n, "{id}: {finding}");
        assert_eq!(example_pids(finding), pids, "{id}: {finding}");
    }
    // The reasons of the two mprotect calls.
    let details: Vec<&str> = by_id(&found, "exec-after-write")["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| e["detail"].as_str().expect("detail"))
        .collect();
    assert_eq!(details, ["anonymous memory", "was writable"]);
    // Amounts: 1250 MiB in all, 400 MiB within 1 s, 300 MiB left mapped, 12 failures.
    let len = |id: &str| by_id(&found, id)["examples"][0]["len"].as_u64();
    assert_eq!(len("big-anon"), Some(1250 * MIB));
    assert_eq!(len("fast-anon"), Some(400 * MIB));
    assert_eq!(len("leak-candidate"), Some(300 * MIB));
    assert_eq!(
        by_id(&found, "failure-storm")["examples"][0]["detail"],
        "12 calls within 1s"
    );
}

#[test]
fn the_clean_capture_has_no_finding() {
    let found = findings(&capture(&clean()), &[]);
    for finding in &found {
        assert_eq!(finding["count"], 0, "{finding}");
        assert_eq!(finding["examples"], Value::Array(Vec::new()), "{finding}");
    }
    let table = common::run_ok(["findings", path(&capture(&clean()))]);
    assert_eq!(table, "Nothing found (10 questions asked).\n");
}

#[test]
fn each_predicate_shows_the_rows_of_its_finding() {
    let capture = capture(&planted());
    let found = findings(&capture, &[]);
    // Row findings: exactly their rows.
    for id in [
        "wx-mapping",
        "exec-after-write",
        "deleted-exec",
        "deleted-exec-mapping",
        "deleted-mapping",
    ] {
        let finding = by_id(&found, id);
        assert_eq!(finding["exact"], true, "{finding}");
        assert_eq!(
            rows_of_predicate(&capture, finding),
            count(&found, id),
            "{id}"
        );
    }
    // Process findings: the rows of those processes (5 mmaps of hog, 2 of burst, 3 of
    // leaky, 12 failures of oom).
    for (id, rows) in [
        ("big-anon", 5),
        ("fast-anon", 2),
        ("leak-candidate", 3),
        ("failure-storm", 12),
    ] {
        assert_eq!(rows_of_predicate(&capture, by_id(&found, id)), rows, "{id}");
    }
    // In the clean capture the predicates without a process list still run and find nothing
    // the findings did not count.
    let clean = self::capture(&clean());
    let found = findings(&clean, &[]);
    for id in [
        "wx-mapping",
        "deleted-exec",
        "deleted-exec-mapping",
        "deleted-mapping",
    ] {
        assert_eq!(rows_of_predicate(&clean, by_id(&found, id)), 0, "{id}");
    }
}

#[test]
fn thresholds_are_options() {
    let capture = capture(&planted());
    let found = findings(
        &capture,
        &[
            "--big-anon",
            "2GiB",
            "--fast-anon",
            "512MiB",
            "--leak",
            "1GiB",
            "--storm",
            "13",
        ],
    );
    for id in ["big-anon", "fast-anon", "leak-candidate", "failure-storm"] {
        assert_eq!(count(&found, id), 0, "{id}");
    }
    // Lower ones find the near misses of the clean capture.
    let clean = self::capture(&clean());
    let found = findings(
        &clean,
        &[
            "--big-anon",
            "900MiB",
            "--leak",
            "100MiB",
            "--storm",
            "9",
            "--fast-anon",
            "100MiB",
            "--fast-anon-window",
            "3s",
        ],
    );
    assert_eq!(example_pids(by_id(&found, "big-anon")), [202]);
    assert_eq!(example_pids(by_id(&found, "leak-candidate")), [204]);
    assert_eq!(example_pids(by_id(&found, "failure-storm")), [205]);
    // 202: 2 x 250 MiB within 3 s; 203: 2 x 150 MiB within 3 s; 204: 200 MiB.
    assert_eq!(example_pids(by_id(&found, "fast-anon")), [202, 203, 204]);
}

/// A leak is judged at the end of the capture: a process that exited has nothing mapped, a pid
/// reused after an exit is judged by its new life only, and a start address mapped again with
/// another length counts with the newest length.
#[test]
fn leak_candidates_are_the_live_processes_at_the_end() {
    let fork = |offset_ns: i64, parent: u32, child: u32| Event {
        child_pid: Some(child),
        ..row(RowKind::Fork, offset_ns, parent, "shell")
    };
    let mut rows = vec![
        // 300: 300 MiB, exits, then pid 300 comes back from a fork and maps 400 MiB.
        mmap_anon(SECOND, 300, "first", 300 * MIB, LEAKY),
        row(RowKind::Exit, 2 * SECOND, 300, "first"),
        fork(3 * SECOND, 1, 300),
        mmap_anon(4 * SECOND, 300, "second", 400 * MIB, HOG),
        // 301: 300 MiB, exits, then pid 301 comes back and maps nothing.
        mmap_anon(SECOND, 301, "gone", 300 * MIB, BURST),
        row(RowKind::Exit, 2 * SECOND, 301, "gone"),
        fork(3 * SECOND, 1, 301),
        // 302: 1 GiB unmapped, then 100 MiB mapped at the same address and kept.
        mmap_anon(SECOND, 302, "shrunk", 1024 * MIB, JIT),
        munmap(2 * SECOND, 302, "shrunk", JIT, 1024 * MIB),
        mmap_anon(3 * SECOND, 302, "shrunk", 100 * MIB, JIT),
        // 303: 1 MiB mapped, then grown by mremap to 400 MiB (moved) and kept: the mremap's
        // new length counts; 304: the same grown 1 MiB at a time (2 MiB in all), under any
        // threshold here.
        mmap_anon(SECOND, 303, "grower", MIB, LEAKY),
        Event {
            addr: Some(LEAKY),
            len: Some(MIB),
            new_len: Some(400 * MIB),
            flags: Some(1), // MREMAP_MAYMOVE
            ..call(Syscall::Mremap, 5 * SECOND, 303, "grower", HOG as i64)
        },
        mmap_anon(SECOND, 304, "small", MIB, BURST),
        Event {
            addr: Some(BURST),
            len: Some(MIB),
            new_len: Some(2 * MIB),
            ..call(Syscall::Mremap, 2 * SECOND, 304, "small", BURST as i64)
        },
    ];
    rows.sort_by_key(|e| e.ts_ns);
    let capture = capture(&rows);
    let found = findings(&capture, &[]);
    let leaks = by_id(&found, "leak-candidate");
    assert_eq!(example_pids(leaks), [300, 303], "{leaks}");
    assert_eq!(leaks["examples"][0]["comm"], "second", "{leaks}");
    assert_eq!(leaks["examples"][0]["len"], 400 * MIB, "{leaks}");
    // Under a lower threshold 302's 100 MiB counts (first, mapped before 300's), and 301's
    // earlier life and 304's 2 MiB still do not.
    let found = findings(&capture, &["--leak", "50MiB"]);
    assert_eq!(
        example_pids(by_id(&found, "leak-candidate")),
        [302, 300, 303],
        "{found:?}"
    );
}

#[test]
fn the_row_filter_narrows_every_question() {
    let capture = capture(&planted());
    let found = findings(&capture, &["--pid", "100"]);
    assert_eq!(count(&found, "wx-mapping"), 1);
    assert_eq!(count(&found, "exec-after-write"), 1);
    for id in [
        "deleted-exec",
        "deleted-mapping",
        "big-anon",
        "leak-candidate",
    ] {
        assert_eq!(count(&found, id), 0, "{id}");
    }
    let found = findings(&capture, &["--where", "comm = 'textrel'"]);
    assert_eq!(example_pids(by_id(&found, "exec-after-write")), [101]);
    assert_eq!(count(&found, "wx-mapping"), 0);
    // A --where written for `calls` works for the questions over `events` too (exec rows have
    // no duration and no errno: they pass neither).
    let found = findings(&capture, &["--where", "dur_ns > 0 AND errno_name IS NULL"]);
    assert_eq!(count(&found, "wx-mapping"), 1);
    assert_eq!(count(&found, "deleted-exec"), 0);
    let found = findings(&capture, &["--where", "errno_name = 'ENOMEM'"]);
    assert_eq!(
        example_pids(by_id(&found, "failure-storm")),
        Vec::<u64>::new()
    );
    assert_eq!(count(&found, "deleted-exec"), 0);
}

#[test]
fn exit_status_is_0_unless_fail_on_finds_that_severity() {
    let planted = capture(&planted());
    let clean = capture(&clean());
    let status = |capture: &Capture, extra: &[&str]| {
        let mut args = vec!["findings", path(capture), "--format", "csv"];
        args.extend(extra);
        common::run(args).status.code()
    };
    assert_eq!(status(&planted, &[]), Some(0));
    assert_eq!(status(&planted, &["--fail-on", "high"]), Some(3));
    assert_eq!(status(&clean, &["--fail-on", "info"]), Some(0));
    // Only a medium finding: --fail-on high passes, --fail-on medium does not.
    let storm = capture(&planted_only(106));
    assert_eq!(status(&storm, &["--fail-on", "high"]), Some(0));
    assert_eq!(status(&storm, &["--fail-on", "medium"]), Some(3));
    // A wrong --where is a wrong query.
    let output = common::run(["findings", path(&planted), "--where", "nosuch > 1"]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("nosuch"), "{stderr}");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
}

/// The planted rows of one process.
fn planted_only(pid: u32) -> Vec<Event<'static>> {
    planted()
        .into_iter()
        .filter(|e| e.pid == pid && e.kind != RowKind::Lost)
        .collect()
}

#[test]
fn csv_has_one_line_per_question() {
    let out = common::run_ok(["findings", path(&capture(&planted())), "--format", "csv"]);
    let mut lines = out.lines();
    assert_eq!(
        lines.next(),
        Some("id,severity,count,unit,processes,title,view,predicate,exact,note,first,first_pid")
    );
    assert_eq!(lines.count(), 10);
}

#[test]
fn table_of_the_planted_capture() {
    let capture = capture(&planted());
    let out = common::run_ok(["findings", path(&capture)]);
    insta::assert_snapshot!("findings_table_planted", out);
}

#[test]
fn untrusted_names_are_escaped_in_the_table() {
    let mut rows = planted_only(100);
    for row in &mut rows {
        row.comm = Cow::Borrowed("evil\u{1b}[31m");
    }
    let out = common::run_ok(["findings", path(&capture(&rows))]);
    assert!(!out.contains('\u{1b}'), "{out}");
    assert!(out.contains("evil\\u{1b}[31m"), "{out}");
}

#[test]
fn closed_pipe_is_quiet() {
    // 3000 W+X mmaps shown as examples: more output than a pipe holds.
    let rows: Vec<Event<'static>> = (0..3000)
        .map(|i| Event {
            prot: Some(PROT_READ | PROT_WRITE | PROT_EXEC),
            ..mmap_anon(1_000 * i, 100, "jit", 4096, RWX + 4096 * i as u64)
        })
        .collect();
    let capture = capture(&rows);
    let args = ["findings", path(&capture), "--examples", "5000"];
    let args: Vec<&std::ffi::OsStr> = args.iter().map(std::ffi::OsStr::new).collect();
    common::assert_quiet_when_the_reader_goes_away(&args, "findings");
}

#[test]
fn map_anonymous_is_what_anonymous_means() {
    // A file mapping of 2 GiB is not anonymous memory.
    let rows = vec![Event {
        flags: Some(MAP_PRIVATE),
        fd: Some(3),
        ..mmap_anon(1_000, 300, "files", 2048 * MIB, HOG)
    }];
    let found = findings(&capture(&rows), &[]);
    assert_eq!(count(&found, "big-anon"), 0);
    let rows = vec![Event {
        flags: Some(MAP_PRIVATE | MAP_ANONYMOUS),
        ..mmap_anon(1_000, 300, "anon", 2048 * MIB, HOG)
    }];
    let found = findings(&capture(&rows), &[]);
    assert_eq!(count(&found, "big-anon"), 1);
}

#[test]
fn an_exec_whose_program_shows_deleted_in_the_snapshot_after_it() {
    let program = |deleted: bool, memfd: bool| {
        let mut snapshot = snapshot(
            1_100,
            400,
            "payload",
            "proc_maps:exec",
            (0x5600_0000_0000, 0x5600_0000_3000),
            PROT_READ | PROT_EXEC,
            0,
            Some(("/tmp/payload", 99)),
        );
        snapshot.file_deleted = Some(deleted);
        snapshot.file_memfd = Some(memfd);
        vec![exec(1_000, 400, "payload", "/tmp/payload"), snapshot]
    };
    for (deleted, memfd, found) in [(true, false, 1), (false, true, 1), (false, false, 0)] {
        let capture = capture(&program(deleted, memfd));
        let findings = findings(&capture, &[]);
        let finding = by_id(&findings, "deleted-exec");
        assert_eq!(count(&findings, "deleted-exec"), found, "{finding}");
        assert_eq!(rows_of_predicate(&capture, finding), found);
        if found > 0 {
            assert_eq!(finding["examples"][0]["what"], "snapshot");
        }
    }
}

#[test]
fn help() {
    let output = common::run(["findings", "--help"]);
    assert!(output.status.success());
    insta::assert_snapshot!(
        "findings_help",
        String::from_utf8(output.stdout).expect("UTF-8 help")
    );
}

/// The examples are the first rows by time (then pid), however far apart they are: the search
/// for them starts with a short window after the first and widens it until it holds enough.
#[test]
fn examples_are_the_first_rows_however_far_apart() {
    let wx = |offset_ns: i64, pid: u32, at: u64| Event {
        prot: Some(PROT_READ | PROT_WRITE | PROT_EXEC),
        ..mmap_anon(offset_ns, pid, "jit", 4096, at)
    };
    let rows = vec![
        wx(SECOND / 2, 201, RWX),
        wx(5 * SECOND, 202, RWX + 0x1000),
        wx(5 * SECOND, 199, RWX + 0x2000),
        wx(12 * SECOND, 203, RWX + 0x3000),
        wx(15 * SECOND, 204, RWX + 0x4000),
    ];
    let capture = capture(&rows);
    for (examples, pids) in [
        ("1", vec![201]),
        ("2", vec![201, 199]),
        ("3", vec![201, 199, 202]),
        ("4", vec![201, 199, 202, 203]),
        ("9", vec![201, 199, 202, 203, 204]),
    ] {
        let found = findings(&capture, &["--examples", examples]);
        let wx = by_id(&found, "wx-mapping");
        assert_eq!(wx["count"], 5, "{wx}");
        assert_eq!(example_pids(wx), pids, "--examples {examples}: {wx}");
    }
}
