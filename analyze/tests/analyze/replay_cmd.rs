//! `mmap-analyze replay`: strace-like lines in time order, the filters, JSON, pacing, escaping.

use std::{borrow::Cow, ffi::OsStr, path::Path, time::Instant};

use mmap_format::event::{Event, RowKind};

use crate::common::{
    BASE_NS, assert_quiet_when_the_reader_goes_away, json_lines, metadata, mmap, run, run_ok,
    v11::{FixtureC, events_c},
    write_capture,
};

fn replay(input: &Path, extra: &[&str]) -> Vec<String> {
    let mut args: Vec<&OsStr> = vec!["replay".as_ref(), input.as_os_str()];
    args.extend(extra.iter().map(OsStr::new));
    run_ok(args).lines().map(str::to_owned).collect()
}

/// `HH:MM:SS.nnnnnnnnn` of `BASE_NS + offset_ns` (06:01:13 UTC).
fn time(offset_ns: i64) -> String {
    let ns = BASE_NS % 1_000_000_000 + offset_ns;
    format!(
        "06:01:{:02}.{:09}",
        13 + ns / 1_000_000_000,
        ns % 1_000_000_000
    )
}

#[test]
fn every_row_but_snapshots_in_time_order_as_strace_lines() {
    let fx = FixtureC::new();
    let lines = replay(&fx.c, &[]);
    let mut shown: Vec<Event<'static>> = events_c()
        .into_iter()
        .filter(|e| e.kind != RowKind::Snapshot)
        .collect();
    shown.sort_by_key(|e| e.ts_ns);
    assert_eq!(lines.len(), shown.len(), "{lines:#?}");
    for (line, event) in lines.iter().zip(&shown) {
        let head = format!(
            "{} {}/{} {} ",
            time(event.ts_ns - BASE_NS),
            event.pid,
            event.tid,
            event.comm
        );
        assert!(
            line.starts_with(&head),
            "{line:?} should start with {head:?}"
        );
    }
    let expected = [
        // tid 501 maps 8 KiB anonymous; 500 ns is 0.000000 s at strace's precision.
        format!(
            "{} 500/501 app-worker mmap(NULL, 8192, PROT_READ|PROT_WRITE, \
             MAP_PRIVATE|MAP_ANONYMOUS, -1, 0) = 0x7f0000000000 <0.000000>",
            time(1000)
        ),
        format!("{} 500/500 app +++ forked child 600 +++", time(8000)),
        format!("{} 600/600 child +++ exec /usr/bin/child +++", time(9000)),
        format!("{} 600/600 child +++ exited with 1 +++", time(11000)),
    ];
    for line in &expected {
        assert!(lines.contains(line), "{line:?} missing from {lines:#?}");
    }
    let failed = lines
        .iter()
        .find(|l| l.starts_with(&time(3200)))
        .expect("the failed mmap");
    assert!(failed.ends_with(" = -1 ENOMEM <0.000000>"), "{failed}");
    let mremap = lines
        .iter()
        .find(|l| l.starts_with(&time(4000)))
        .expect("the mremap");
    assert!(
        mremap.contains(" mremap(0x7f0000010000, 16384, 32768, MREMAP_MAYMOVE) = 0x7f0000100000"),
        "{mremap}"
    );
    let lost = lines
        .iter()
        .find(|l| l.starts_with(&time(6500)))
        .expect("the lost records");
    assert!(
        lost.contains("!!! 17 records lost on cpu 2 over 0.000001: rows are missing here !!!"),
        "{lost}"
    );
    let memfd = lines
        .iter()
        .find(|l| l.starts_with(&time(9500)))
        .expect("the memfd mmap");
    assert!(
        memfd.contains("</memfd:jit"),
        "the fd names its file: {memfd}"
    );
}

#[test]
fn filters_pick_the_rows() {
    let fx = FixtureC::new();
    let pid = replay(&fx.c, &["--pid", "600"]);
    assert_eq!(pid.len(), 3, "exec, mmap, exit: {pid:#?}");
    assert!(pid.iter().all(|l| l.contains(" 600/600 child ")));
    let big = replay(&fx.c, &["--syscall", "mmap", "--where", "len > 8192"]);
    // 16 KiB blob, the failed 1 TiB mmap, the 64 KiB memfd.
    assert_eq!(big.len(), 3, "{big:#?}");
    let since = replay(&fx.c, &["--since", "+10us"]);
    // exit (11000), munmap (12000), mprotect (12500); +10 µs counts from the first row (+100).
    assert_eq!(since.len(), 3, "{since:#?}");
}

#[test]
fn json_lines_are_the_objects_of_events() {
    let fx = FixtureC::new();
    let replayed = json_lines(&run_ok([
        "replay".as_ref(),
        fx.c.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    let listed = json_lines(&run_ok([
        "events".as_ref(),
        fx.c.as_os_str(),
        "--format".as_ref(),
        "json".as_ref(),
    ]));
    assert_eq!(replayed.len(), 15);
    assert_eq!(replayed, listed);
}

#[test]
fn speed_keeps_the_pace_of_the_capture() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("slow.parquet");
    // Three calls over 400 ms: at --speed 4 the replay takes about 100 ms.
    let events = [0, 200_000_000, 400_000_000].map(|at| mmap(at, 1, 1, "slow"));
    write_capture(&path, &metadata("h", Default::default()), &events);
    let fast = Instant::now();
    assert_eq!(replay(&path, &[]).len(), 3);
    let fast = fast.elapsed();
    let started = Instant::now();
    assert_eq!(replay(&path, &["--speed", "4"]).len(), 3);
    let paced = started.elapsed();
    assert!(
        paced.as_millis() >= 100 && paced < fast + std::time::Duration::from_secs(5),
        "paced {paced:?}, unpaced {fast:?}"
    );
    let output = run([
        "replay".as_ref(),
        path.as_os_str(),
        "--speed".as_ref(),
        "0".as_ref(),
    ]);
    assert_eq!(
        output.status.code(),
        Some(2),
        "a speed of 0 is a usage error"
    );
}

#[test]
fn names_and_paths_are_escaped_and_bad_predicates_exit_1() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("evil.parquet");
    let mut evil = mmap(1000, 7, 7, "evil\u{1b}[2J");
    evil.fd = Some(3);
    evil.file_path = Some(Cow::Borrowed("/tmp/a\nb"));
    write_capture(&path, &metadata("h", Default::default()), &[evil]);
    let lines = replay(&path, &[]);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(!lines[0].contains('\u{1b}'), "{lines:?}");
    assert!(lines[0].contains("evil\\u{1b}[2J mmap("), "{lines:?}");
    assert!(lines[0].contains("3</tmp/a\\nb>"), "{lines:?}");

    let output = run([
        "replay".as_ref(),
        path.as_os_str(),
        "--where".as_ref(),
        "no_such_column = 1".as_ref(),
    ]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("no_such_column"), "{stderr}");
}

#[test]
fn quiet_when_the_reader_goes_away() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("many.parquet");
    let events: Vec<_> = (0..20_000).map(|i| mmap(i * 1000, 1, 1, "many")).collect();
    write_capture(&path, &metadata("h", Default::default()), &events);
    assert_quiet_when_the_reader_goes_away(&["replay".as_ref(), path.as_os_str()], "replay");
}
