//! `mmap-analyze rerun` over captures written with the format library: the child really makes
//! the calls (no root needed), so outcomes, translation and the address space are this kernel's.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use mmap_format::{
    event::{Event, Syscall},
    metadata::Counters,
};
use serde_json::Value;

use crate::common::{
    BASE_NS, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, metadata, mmap, run,
    write_capture,
};

const PID: u32 = 4242;
const PAGE: u64 = 4096;
/// Recorded addresses, as a process on the recording machine got them.
const R1: u64 = 0x7f10_0000_0000;
const R2: u64 = 0x7f20_0000_0000;
const FILE_AT: u64 = 0x7f30_0000_0000;
const HINTED: u64 = 0x5a5a_0000_0000;
const HEAP: u64 = 0x5600_0000_0000;

fn call(offset_ms: i64, syscall: Syscall, ret: i64) -> Event<'static> {
    let mut e = mmap(offset_ms * 1_000_000, PID, PID, "app");
    e.syscall = Some(syscall);
    e.ret = Some(ret);
    e.addr = None;
    e.len = None;
    e.prot = None;
    e.flags = None;
    e.fd = None;
    e.off = None;
    e
}

fn anon(offset_ms: i64, addr: u64, len: u64, ret: i64) -> Event<'static> {
    let mut e = call(offset_ms, Syscall::Mmap, ret);
    e.addr = Some(addr);
    e.len = Some(len);
    e.prot = Some(PROT_READ | PROT_WRITE);
    e.flags = Some(MAP_PRIVATE | MAP_ANONYMOUS);
    e.fd = Some(-1);
    e.off = Some(0);
    e
}

fn range(offset_ms: i64, syscall: Syscall, addr: u64, len: u64, ret: i64) -> Event<'static> {
    let mut e = call(offset_ms, syscall, ret);
    e.addr = Some(addr);
    e.len = Some(len);
    if syscall == Syscall::Mprotect {
        e.prot = Some(PROT_READ);
    }
    e
}

/// A process's calls of every kind, each with the outcome this kernel gives it too.
fn calls() -> Vec<Event<'static>> {
    let mut file = call(8, Syscall::Mmap, FILE_AT as i64);
    file.addr = Some(0);
    file.len = Some(2 * PAGE);
    file.prot = Some(PROT_READ);
    file.flags = Some(MAP_PRIVATE);
    file.fd = Some(3);
    file.off = Some(PAGE);
    file.file_dev = Some(0x801);
    file.file_ino = Some(77);
    file.file_path = Some("/srv/data/blob.bin".into());
    let mut grow = call(5, Syscall::Mremap, R2 as i64);
    grow.addr = Some(R1);
    grow.len = Some(PAGE);
    grow.new_len = Some(4 * PAGE);
    grow.flags = Some(1); // MREMAP_MAYMOVE
    grow.new_addr = Some(0);
    let mut brk0 = call(9, Syscall::Brk, HEAP as i64);
    brk0.addr = Some(0);
    let mut brk1 = call(10, Syscall::Brk, (HEAP + 16 * PAGE) as i64);
    brk1.addr = Some(HEAP + 16 * PAGE);
    vec![
        anon(1, 0, 3 * PAGE, R1 as i64),
        range(2, Syscall::Mprotect, R1 + PAGE, PAGE, 0),
        range(3, Syscall::Munmap, R1 + 2 * PAGE, PAGE, 0),
        // Failures: too big, unaligned, on nothing.
        anon(4, 0, 1 << 62, -12),
        grow,
        range(6, Syscall::Munmap, R2 + 1, PAGE, -22),
        range(7, Syscall::Mprotect, 0x10_0000, PAGE, -12),
        file,
        brk0,
        brk1,
        anon(11, HINTED, PAGE, HINTED as i64),
    ]
}

fn capture(dir: &Path, events: &[Event<'_>]) -> PathBuf {
    let path = dir.join("app.parquet");
    write_capture(&path, &metadata("host", Counters::default()), events);
    path
}

fn rerun(input: &Path, extra: &[&str]) -> (i32, Value) {
    let mut args: Vec<OsString> = vec!["rerun".into(), input.into(), "--pid".into()];
    args.push(PID.to_string().into());
    args.extend(["--format", "json", "--calls"].map(OsString::from));
    args.extend(extra.iter().map(OsString::from));
    let out = run(args);
    let code = out.status.code().expect("exit code");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report = serde_json::from_str(&stdout).unwrap_or_else(|err| {
        panic!(
            "rerun --format json (exit {code}): {err}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (code, report)
}

fn list(report: &Value) -> &Vec<Value> {
    report["call_list"].as_array().expect("call_list")
}

fn u(value: &Value) -> u64 {
    value
        .as_u64()
        .unwrap_or_else(|| panic!("{value} is a number"))
}

#[test]
fn every_kind_of_call_is_reissued_with_the_recorded_outcome_and_the_same_space() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = capture(dir.path(), &calls());
    let (code, report) = rerun(&input, &[]);
    assert_eq!(code, 0, "{report:#}");
    let counts = &report["calls"];
    assert_eq!(u(&counts["recorded"]), 11, "{report:#}");
    assert_eq!(u(&counts["issued"]), 11, "{report:#}");
    assert_eq!(u(&counts["same"]), 11, "{report:#}");
    assert_eq!(u(&counts["differ"]), 0);
    assert!(
        report["address_space"]["matched"]
            .as_bool()
            .expect("matched")
    );
    // R1's first page (grown and moved), R1's second page (read-only), the file, the heap, the
    // hinted page.
    assert_eq!(u(&report["address_space"]["regions"]), 5, "{report:#}");
    assert_ne!(u(&report["child_pid"]), u64::from(std::process::id()));

    // Later calls act on where the rerun put the recorded region.
    let calls = list(&report);
    let first = u(&calls[0]["ret"]);
    assert_eq!(u(&calls[1]["issued"]["addr"]), first + PAGE, "mprotect");
    assert_eq!(u(&calls[2]["issued"]["addr"]), first + 2 * PAGE, "munmap");
    assert_eq!(u(&calls[4]["issued"]["addr"]), first, "mremap");
    // The file is a sparse stand-in as big as the mapping needs (offset + length).
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), 1);
    assert_eq!(files[0]["kind"], "temporary");
    assert_eq!(u(&files[0]["size"]), 3 * PAGE);
    assert_eq!(calls[7]["issued"]["off"], PAGE);
    // The break moved by the recorded amount from wherever the child's started.
    assert_eq!(calls[9]["outcome"], "same");
    // The failures failed the same way.
    for i in [3, 5, 6] {
        assert!(
            calls[i]["ret"].as_i64().expect("ret") < 0,
            "call {i}: {}",
            calls[i]
        );
        assert_eq!(calls[i]["outcome"], "same", "call {i}");
    }
}

#[test]
fn one_thread_per_recorded_thread_keeps_the_order_across_threads() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = calls();
    // The mprotect and munmap of the main thread's region come from another thread.
    events[1].tid = PID + 1;
    events[2].tid = PID + 1;
    let input = capture(dir.path(), &events);
    let (code, report) = rerun(&input, &["--threads"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(u(&report["calls"]["same"]), 11, "{report:#}");
    assert!(
        report["address_space"]["matched"]
            .as_bool()
            .expect("matched")
    );
}

#[test]
fn a_call_that_failed_in_the_recording_and_succeeds_here_is_a_difference() {
    let dir = tempfile::tempdir().expect("temp dir");
    // As if RLIMIT_AS had stopped it: a page that any process can map here.
    let events = vec![anon(1, 0, PAGE, -12), anon(2, 0, PAGE, R1 as i64)];
    let input = capture(dir.path(), &events);
    let (code, report) = rerun(&input, &[]);
    assert_eq!(code, 1, "{report:#}");
    let differences = report["differences"].as_array().expect("differences");
    assert_eq!(differences.len(), 1, "{report:#}");
    assert_eq!(differences[0]["seq"], 0);
    assert_eq!(differences[0]["syscall"], "mmap");
    assert_eq!(differences[0]["why"], "recorded ENOMEM, rerun success");
    let table = run([
        "rerun".as_ref(),
        input.as_os_str(),
        "--pid".as_ref(),
        "4242".as_ref(),
    ]);
    assert_eq!(table.status.code(), Some(1));
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(text.contains("1 differ"), "{text}");
    assert!(text.contains("recorded ENOMEM, rerun success"), "{text}");
}

#[test]
fn calls_on_memory_from_before_the_capture_are_skipped_and_said() {
    let dir = tempfile::tempdir().expect("temp dir");
    let events = vec![
        range(1, Syscall::Munmap, 0x7f55_0000_0000, PAGE, 0),
        anon(2, 0, PAGE, R1 as i64),
    ];
    let input = capture(dir.path(), &events);
    let (code, report) = rerun(&input, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(u(&report["calls"]["skipped"]), 1);
    assert_eq!(list(&report)[0]["outcome"], "skipped");
    let skipped = report["skipped"].as_array().expect("skipped");
    assert!(
        skipped[0]["why"]
            .as_str()
            .expect("why")
            .contains("memory the replay did not make"),
        "{report:#}"
    );
    let notes = report["notes"].to_string();
    assert!(notes.contains("no snapshot"), "{notes}");
}

#[test]
fn same_addresses_takes_the_recorded_addresses() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = capture(dir.path(), &calls());
    let (code, report) = rerun(&input, &["--same-addresses"]);
    assert_eq!(code, 0, "{report:#}");
    let same = &report["same_addresses"];
    assert_eq!(u(&same["requested"]), 3, "{report:#}");
    assert_eq!(same["requested"], same["placed"], "{report:#}");
    let calls = list(&report);
    assert_eq!(u(&calls[0]["ret"]), R1);
    assert_eq!(u(&calls[10]["ret"]), HINTED);
}

#[test]
fn speed_divides_the_recorded_gaps() {
    let dir = tempfile::tempdir().expect("temp dir");
    // Two seconds of calls, 200 ms apart.
    let events: Vec<Event<'static>> = (0..11)
        .map(|i| anon(i * 200, 0, PAGE, (R1 + i as u64 * 0x10_0000) as i64))
        .collect();
    let input = capture(dir.path(), &events);
    let started = Instant::now();
    let (code, report) = rerun(&input, &["--speed", "10"]);
    let paced = started.elapsed();
    assert_eq!(code, 0, "{report:#}");
    let elapsed = report["elapsed_s"].as_f64().expect("elapsed_s");
    assert!(
        (0.18..1.0).contains(&elapsed),
        "2 s at --speed 10 took {elapsed} s"
    );
    assert!(paced >= Duration::from_millis(180));
    let (_, fast) = rerun(&input, &[]);
    let fast = fast["elapsed_s"].as_f64().expect("elapsed_s");
    assert!(
        fast < elapsed / 2.0,
        "--speed max {fast} s, --speed 10 {elapsed} s"
    );
}

#[test]
fn until_stops_part_way() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = capture(dir.path(), &calls());
    let until = chrono::DateTime::from_timestamp_nanos(BASE_NS + 4_500_000)
        .to_rfc3339_opts(chrono::SecondsFormat::Nanos, true);
    let (code, report) = rerun(&input, &["--until", &until]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(u(&report["calls"]["recorded"]), 4, "{report:#}");
    // R1's first two pages are left there.
    assert!(
        report["address_space"]["matched"]
            .as_bool()
            .expect("matched")
    );
}

#[test]
fn bad_input_exits_2_with_one_line() {
    let dir = tempfile::tempdir().expect("temp dir");
    let input = capture(dir.path(), &calls());
    for (args, says) in [
        (vec!["--pid", "7"], "pid 7 does not appear"),
        (vec!["--pid", "4242", "--speed", "0"], "--speed"),
        (vec!["--pid", "4242", "--speed", "fast"], "--speed"),
    ] {
        let mut all: Vec<OsString> = vec!["rerun".into(), input.clone().into()];
        all.extend(args.iter().map(OsString::from));
        let out = run(all);
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
    }
}

/// A region of the process's snapshot at `offset_ms`.
fn shown(
    offset_ms: i64,
    range: (u64, u64),
    prot: u64,
    file: Option<(&str, u64)>,
) -> Event<'static> {
    crate::common::v11::snapshot(
        offset_ms * 1_000_000,
        PID,
        "app",
        "proc_maps:start",
        range,
        prot,
        if file.is_some() { 2 * PAGE } else { 0 },
        file,
    )
}

#[test]
fn the_snapshot_is_made_again_so_calls_on_older_memory_are_reissued() {
    let dir = tempfile::tempdir().expect("temp dir");
    const PROGRAM: u64 = 0x5555_0000_0000;
    const STACK: u64 = 0x7ffd_0000_0000;
    let events = vec![
        // The program (two neighbouring file regions), an anonymous region, the stack, and the
        // vsyscall page, which no process can map.
        shown(
            0,
            (PROGRAM, PROGRAM + 4 * PAGE),
            PROT_READ,
            Some(("/usr/bin/app", 11)),
        ),
        shown(
            0,
            (PROGRAM + 4 * PAGE, PROGRAM + 6 * PAGE),
            PROT_READ | 4,
            Some(("/usr/bin/app", 11)),
        ),
        shown(0, (R2, R2 + 8 * PAGE), PROT_READ | PROT_WRITE, None),
        shown(
            0,
            (STACK, STACK + 32 * PAGE),
            PROT_READ | PROT_WRITE,
            Some(("[stack]", 0)),
        ),
        shown(
            0,
            (0xffff_ffff_ff60_0000, 0xffff_ffff_ff60_1000),
            4,
            Some(("[vsyscall]", 0)),
        ),
        // Calls on that memory: across the program's two regions, and part of the anonymous one.
        range(1, Syscall::Mprotect, PROGRAM + 3 * PAGE, 2 * PAGE, 0),
        range(2, Syscall::Munmap, R2 + 2 * PAGE, 2 * PAGE, 0),
        anon(3, 0, PAGE, R1 as i64),
    ];
    let mut events = events;
    // The program's second region follows the first in the file too.
    events[1].off = Some(6 * PAGE);
    // The snapshot's stack row is anonymous.
    events[3].file_ino = None;
    events[3].file_dev = None;
    events[3].off = Some(0);
    let input = capture(dir.path(), &events);
    let (code, report) = rerun(&input, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(u(&report["calls"]["same"]), 3, "{report:#}");
    assert_eq!(u(&report["calls"]["skipped"]), 0, "{report:#}");
    // The program r-- (the mprotect made its first r-x page r--, joining the two) and r-x; the
    // anonymous region in two with a hole; the stack; the new page.
    assert!(
        report["address_space"]["matched"]
            .as_bool()
            .expect("matched"),
        "{report:#}"
    );
    assert_eq!(u(&report["address_space"]["regions"]), 6, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("made again as stand-ins"), "{notes}");
    let files = report["files"].as_array().expect("files");
    assert_eq!(files.len(), 1, "{report:#}");
    assert_eq!(
        u(&files[0]["size"]),
        8 * PAGE,
        "up to offset 6 pages + 2 pages"
    );
}

#[test]
fn lost_records_are_said_and_the_rest_is_reissued() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut events = calls();
    let mut lost = call(6, Syscall::Mmap, 0);
    lost.kind = mmap_format::event::RowKind::Lost;
    lost.syscall = None;
    lost.ret = None;
    lost.pid = 0;
    lost.tid = 0;
    lost.ts_exit_ns = Some(lost.ts_ns + 1_000);
    lost.lost_count = Some(17);
    events.push(lost);
    let input = capture(dir.path(), &events);
    let (code, report) = rerun(&input, &[]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(u(&report["calls"]["same"]), 11, "{report:#}");
    let notes = report["notes"].to_string();
    assert!(notes.contains("lost 17 records"), "{notes}");
    assert_eq!(u(&report["loss_windows"]["lost_in_windows"]), 17);
}

/// `--files real`: the recorded path stands for itself when it is a regular file big enough,
/// never a symlink, and a shared writable mapping of it only with --allow-shared-write (and even
/// then the rerun leaves its bytes as they were).
#[test]
fn real_files_are_used_only_when_safe() {
    let dir = tempfile::tempdir().expect("temp dir");
    let real = dir.path().join("real.bin");
    std::fs::write(&real, vec![7u8; 4 * PAGE as usize]).expect("write real file");
    let link = dir.path().join("link.bin");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    let small = dir.path().join("small.bin");
    std::fs::write(&small, [1u8; 100]).expect("write small file");
    let file_call = |offset_ms: i64, path: &Path, ino: u64, flags: u64, prot: u64, ret: u64| {
        let mut e = call(offset_ms, Syscall::Mmap, ret as i64);
        e.addr = Some(0);
        e.len = Some(2 * PAGE);
        e.prot = Some(prot);
        e.flags = Some(flags);
        e.fd = Some(3);
        e.off = Some(0);
        e.file_dev = Some(0x801);
        e.file_ino = Some(ino);
        e.file_path = Some(path.display().to_string().into());
        e
    };
    let events = vec![
        file_call(1, &real, 1, MAP_PRIVATE, PROT_READ, R1),
        file_call(2, &link, 2, MAP_PRIVATE, PROT_READ, R2),
        file_call(3, &small, 3, MAP_PRIVATE, PROT_READ, FILE_AT),
        file_call(
            4,
            &dir.path().join("gone.bin"),
            4,
            MAP_PRIVATE,
            PROT_READ,
            HINTED,
        ),
    ];
    let input = capture(dir.path(), &events);
    let (code, report) = rerun(&input, &["--files", "real"]);
    assert_eq!(code, 0, "{report:#}");
    let files = report["files"].as_array().expect("files");
    let kinds: Vec<(&str, bool)> = files
        .iter()
        .map(|f| (f["kind"].as_str().expect("kind"), f["why"].is_string()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("real", false),
            ("temporary", true),
            ("temporary", true),
            ("temporary", true)
        ],
        "{report:#}"
    );
    assert_eq!(files[0]["used"], real.display().to_string());
    assert!(
        files[1]["why"]
            .as_str()
            .expect("why")
            .contains("symbolic link")
    );
    assert!(files[2]["why"].as_str().expect("why").contains("need"));

    // Shared and writable: a stand-in, unless allowed.
    let shared = vec![file_call(
        1,
        &real,
        1,
        MAP_SHARED,
        PROT_READ | PROT_WRITE,
        R1,
    )];
    let input = capture(dir.path(), &shared);
    let (code, report) = rerun(&input, &["--files", "real"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["files"][0]["kind"], "temporary", "{report:#}");
    assert!(
        report["files"][0]["why"]
            .as_str()
            .expect("why")
            .contains("--allow-shared-write")
    );
    let (code, report) = rerun(&input, &["--files", "real", "--allow-shared-write"]);
    assert_eq!(code, 0, "{report:#}");
    assert_eq!(report["files"][0]["kind"], "real", "{report:#}");
    assert_eq!(
        std::fs::read(&real).expect("read real file"),
        vec![7u8; 4 * PAGE as usize]
    );
}

/// A small deterministic generator (xorshift64*), so the hostile capture is the same every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn pick<T: Copy>(&mut self, from: &[T]) -> T {
        from[(self.next() % from.len() as u64) as usize]
    }
}

/// A crafted capture: thousands of calls with addresses where the child's own program, heap,
/// libraries and stack usually are, MAP_FIXED, MREMAP_FIXED, huge lengths, MAP_POPULATE, and a
/// snapshot of overlapping, huge regions. The child must never touch its own memory (it would
/// crash), populate past the limit, or hang: the command ends with 0 or 1 and a whole report.
#[test]
fn a_crafted_capture_cannot_make_the_child_harm_itself() {
    let dir = tempfile::tempdir().expect("temp dir");
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let near_child = |rng: &mut Rng| -> u64 {
        let base = rng.pick(&[
            0x5555_0000_0000u64,
            0x5600_0000_0000,
            0x7f00_0000_0000,
            0x7ffc_0000_0000,
        ]);
        base + (rng.next() % (1 << 36)) / PAGE * PAGE
    };
    let mut made: Vec<u64> = vec![R1];
    let mut events = Vec::new();
    for i in 0..12u32 {
        let start = near_child(&mut rng);
        let len = rng.pick(&[PAGE, 1 << 20, 1 << 32, 1 << 44]);
        events.push(shown(
            0,
            (start, start.saturating_add(len)),
            rng.next() % 8,
            None,
        ));
        if i.is_multiple_of(3) {
            made.push(start);
        }
    }
    let lens = [
        0,
        1,
        PAGE,
        3 * PAGE,
        1 << 20,
        1 << 30,
        1 << 46,
        u64::MAX - 4095,
    ];
    let flag_bits = [
        0x01u64, 0x02, 0x10, 0x20, 0x100, 0x2000, 0x4000, 0x8000, 0x4_0000, 0x10_0000,
    ];
    for i in 0..3000i64 {
        let addr = match rng.next() % 4 {
            0 => 0,
            1 => rng.pick(&made) + (rng.next() % 8) * PAGE,
            2 => near_child(&mut rng),
            _ => near_child(&mut rng) + rng.next() % PAGE,
        };
        let mut len = rng.pick(&lens);
        // Now and then a range over everything the child has: its program, heap, libraries
        // and stack lie in it, wherever address-space randomisation put them.
        let (addr, giant) = if rng.next().is_multiple_of(10) {
            len = 0x7fff_0000_0000 - 0x1_0000_0000;
            (0x1_0000_0000, true)
        } else {
            (addr, false)
        };
        let ret = if giant && rng.next().is_multiple_of(2) {
            addr as i64
        } else if rng.next().is_multiple_of(3) {
            -((rng.next() % 133 + 1) as i64)
        } else {
            let at = if addr != 0 && rng.next().is_multiple_of(2) {
                addr
            } else {
                near_child(&mut rng)
            };
            made.push(at);
            at as i64
        };
        let syscall = rng.pick(&[
            Syscall::Mmap,
            Syscall::Mmap,
            Syscall::Munmap,
            Syscall::Mprotect,
            Syscall::Mremap,
            Syscall::Brk,
        ]);
        let mut e = call(1 + i / 100, syscall, ret);
        e.ts_ns += i;
        e.addr = Some(addr);
        e.len = Some(len);
        match syscall {
            Syscall::Mmap => {
                let mut flags = 0;
                for _ in 0..3 {
                    flags |= rng.pick(&flag_bits);
                }
                if giant {
                    flags = MAP_PRIVATE | MAP_ANONYMOUS | 0x10 | 0x4000;
                }
                e.flags = Some(flags);
                e.prot = Some(rng.next() % 8);
                e.fd = Some(-1);
                e.off = Some(rng.pick(&[0, PAGE, 1 << 40]));
            }
            Syscall::Mprotect => e.prot = Some(rng.next() % 8),
            Syscall::Mremap => {
                e.flags = Some(rng.pick(&[0, 1, 2, 3, 4, 5, 7]));
                e.new_len = Some(rng.pick(&lens));
                let (near, old) = (near_child(&mut rng), rng.pick(&made));
                e.new_addr = Some(rng.pick(&[0, near, old]));
            }
            _ => {}
        }
        events.push(e);
    }
    let crafted = capture(dir.path(), &events);
    // And calls over everything with nothing of the replay's in the way.
    let (start, len) = (0x1_0000_0000u64, 0x7fff_0000_0000u64 - 0x1_0000_0000);
    let mut mremap = range(4, Syscall::Mremap, start, len, start as i64);
    mremap.new_len = Some(PAGE);
    mremap.flags = Some(0);
    let over_all = vec![
        range(1, Syscall::Munmap, start, len, 0),
        range(2, Syscall::Mprotect, start, len, 0),
        mremap,
        anon(5, 0, PAGE, R1 as i64),
    ];
    let over_all_dir = dir.path().join("over-all");
    std::fs::create_dir(&over_all_dir).expect("mkdir");
    let over_all = capture(&over_all_dir, &over_all);
    for (input, calls) in [(&crafted, 3000), (&over_all, 4)] {
        rerun_crafted(dir.path(), input, calls);
    }
}

fn rerun_crafted(dir: &Path, input: &Path, calls: u64) {
    use crate::common::run_bounded;
    let args = [
        "rerun".as_ref(),
        input.as_os_str(),
        "--pid".as_ref(),
        "4242".as_ref(),
        "--format".as_ref(),
        "json".as_ref(),
        "--populate-limit".as_ref(),
        "64MiB".as_ref(),
    ];
    for extra in [&[][..], &["--same-addresses".as_ref()][..]] {
        let all: Vec<&std::ffi::OsStr> =
            args.iter().copied().chain(extra.iter().copied()).collect();
        let run = run_bounded(dir, &all, Duration::from_secs(60));
        let status = run.status.expect("rerun ended within 60 s");
        assert!(
            matches!(status.code(), Some(0 | 1)),
            "{extra:?}: {status}: {}",
            run.stderr
        );
        let report: Value = serde_json::from_slice(&run.stdout).expect("a whole JSON report");
        let counts = &report["calls"];
        assert_eq!(u(&counts["recorded"]), calls);
        assert_eq!(
            u(&counts["same"])
                + u(&counts["differ"])
                + u(&counts["skipped"])
                + u(&counts["unknown"]),
            calls
        );
        assert!(
            run.peak_kib < 1 << 20,
            "{extra:?}: peak {} KiB",
            run.peak_kib
        );
    }
}
