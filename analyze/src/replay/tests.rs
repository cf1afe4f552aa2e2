//! Unit tests of the replay rules, one or more per rule of `maps --help`.

use std::borrow::Cow;

use mmap_format::event::sources;

use super::*;

const PAGE: u64 = 4096;
const PID: u32 = 100;
const RW: u64 = PROT_READ | PROT_WRITE;
const RX: u64 = PROT_READ | PROT_EXEC;
const ANON: u64 = MAP_PRIVATE | MAP_ANONYMOUS;

fn syscall(syscall: Syscall, ts: i64) -> Event<'static> {
    Event {
        kind: RowKind::Syscall,
        syscall: Some(syscall),
        ts_ns: ts,
        ts_exit_ns: Some(ts + 1),
        pid: PID,
        tid: PID,
        comm: Cow::Borrowed("t"),
        ..Default::default()
    }
}

fn mmap(ts: i64, ret: u64, len: u64, prot: u64, flags: u64) -> Event<'static> {
    Event {
        addr: Some(0),
        len: Some(len),
        prot: Some(prot),
        flags: Some(flags),
        fd: Some(-1),
        off: Some(0),
        ret: Some(ret as i64),
        ..syscall(Syscall::Mmap, ts)
    }
}

fn mmap_file(ts: i64, ret: u64, len: u64, off: u64, ino: u64) -> Event<'static> {
    Event {
        fd: Some(3),
        off: Some(off),
        file_dev: Some(0x801),
        file_ino: Some(ino),
        file_path: Some(Cow::Owned(format!("/lib/f{ino}.so"))),
        file_name: Some(Cow::Owned(format!("f{ino}.so"))),
        ..mmap(ts, ret, len, RX, MAP_PRIVATE)
    }
}

fn munmap(ts: i64, addr: u64, len: u64) -> Event<'static> {
    Event {
        addr: Some(addr),
        len: Some(len),
        ret: Some(0),
        ..syscall(Syscall::Munmap, ts)
    }
}

fn mprotect(ts: i64, addr: u64, len: u64, prot: u64) -> Event<'static> {
    Event {
        addr: Some(addr),
        len: Some(len),
        prot: Some(prot),
        ret: Some(0),
        ..syscall(Syscall::Mprotect, ts)
    }
}

fn mremap(ts: i64, old: u64, old_len: u64, new_len: u64, flags: u64, ret: u64) -> Event<'static> {
    Event {
        addr: Some(old),
        len: Some(old_len),
        new_len: Some(new_len),
        flags: Some(flags),
        new_addr: Some(if flags & MREMAP_FIXED != 0 { ret } else { 0 }),
        ret: Some(ret as i64),
        ..syscall(Syscall::Mremap, ts)
    }
}

fn brk(ts: i64, addr: u64, ret: u64) -> Event<'static> {
    Event {
        addr: Some(addr),
        ret: Some(ret as i64),
        ..syscall(Syscall::Brk, ts)
    }
}

fn snap(
    ts: i64,
    pid: u32,
    start: u64,
    end: u64,
    perms: &str,
    path: Option<&str>,
    ino: Option<u64>,
) -> Event<'static> {
    let b = perms.as_bytes();
    let prot =
        u64::from(b[0] == b'r') | u64::from(b[1] == b'w') << 1 | u64::from(b[2] == b'x') << 2;
    Event {
        kind: RowKind::Snapshot,
        ts_ns: ts,
        pid,
        tid: pid,
        addr: Some(start),
        len: Some(end - start),
        prot: Some(prot),
        flags: Some(if b[3] == b's' {
            MAP_SHARED
        } else {
            MAP_PRIVATE
        }),
        off: Some(0),
        file_dev: ino.map(|_| 0x801),
        file_ino: ino,
        file_path: path.map(|p| Cow::Owned(p.to_owned())),
        source: Some(Cow::Borrowed(sources::PROC_MAPS_START)),
        ..Default::default()
    }
}

fn lifecycle(kind: RowKind, ts: i64, pid: u32) -> Event<'static> {
    Event {
        kind,
        ts_ns: ts,
        pid,
        tid: pid,
        ..Default::default()
    }
}

fn replay(events: &[Event<'_>]) -> Replay {
    let mut replay = Replay::new(PAGE);
    for event in events {
        replay.apply(event);
        // The running total of every address space stays the sum of its regions.
        for (pid, process) in replay.processes() {
            let sum: u64 = process.map.regions().map(Region::len).sum();
            assert_eq!(process.map.bytes(), sum, "pid {pid} after {event:?}");
        }
    }
    replay
}

/// `(start, end, perms)` of the raw pieces of `pid`.
fn raw(replay: &Replay, pid: u32) -> Vec<(u64, u64, String)> {
    replay
        .process(pid)
        .expect("a live process")
        .map
        .regions()
        .map(|r| (r.start, r.end, r.perms()))
        .collect()
}

/// `(start, end, perms)` of the merged regions of `pid`.
fn merged(replay: &Replay, pid: u32) -> Vec<(u64, u64, String)> {
    replay
        .process(pid)
        .expect("a live process")
        .map
        .merged()
        .into_iter()
        .map(|r| (r.start, r.end, r.perms()))
        .collect()
}

fn r(start: u64, end: u64, perms: &str) -> (u64, u64, String) {
    (start, end, perms.to_owned())
}

const A: u64 = 0x10_0000;

#[test]
fn the_unused_columns_are_columns_and_keep_the_stack_id() {
    let schema = mmap_format::schema::schema();
    for name in UNUSED_COLUMNS {
        assert!(schema.field_with_name(name).is_ok(), "{name:?}");
    }
    assert!(!UNUSED_COLUMNS.contains(&col::STACK_ID));
    assert!(UNUSED_COLUMNS.contains(&col::SYMBOL_SOURCE));
}

#[test]
fn effect_time_is_exit_for_syscalls_and_ts_otherwise() {
    let call = mmap(10, A, PAGE, RW, ANON);
    assert_eq!(effect_time(&call), Some(11));
    let no_exit = Event {
        ts_exit_ns: None,
        ret: None,
        ..call.clone()
    };
    assert_eq!(effect_time(&no_exit), None);
    // Recorded at its exit only (`tracepoint_exit`): a result, no ts_exit, `ts` is the exit.
    let exit_only = Event {
        ts_exit_ns: None,
        ..call
    };
    assert_eq!(effect_time(&exit_only), Some(10));
    assert_eq!(effect_time(&lifecycle(RowKind::Exit, 7, 1)), Some(7));
}

#[test]
fn mmap_rounds_up_to_pages_and_records_who() {
    let rp = replay(&[mmap(10, A, 100, RW, ANON)]);
    let process = rp.process(PID).expect("live");
    let regions: Vec<_> = process.map.regions().collect();
    assert_eq!(regions.len(), 1);
    let region = regions[0];
    assert_eq!((region.start, region.end), (A, A + PAGE));
    assert_eq!(region.perms(), "rw-p");
    assert_eq!(region.backing, Backing::Anon { name: None });
    assert_eq!(
        (region.since, region.set_by, region.tid),
        (11, SetBy::Mmap, PID)
    );
    assert_eq!(process.baseline, Baseline::Unknown);
}

#[test]
fn failed_and_unfinished_calls_change_nothing() {
    let failed = Event {
        ret: Some(-12),
        ..mmap(10, A, PAGE, RW, ANON)
    };
    let unfinished = Event {
        ret: None,
        ts_exit_ns: None,
        ..mmap(20, A, PAGE, RW, ANON)
    };
    let rp = replay(&[failed, unfinished]);
    assert!(rp.process(PID).is_none());
}

#[test]
fn mmap_file_and_shared_attributes() {
    let shared = Event {
        flags: Some(MAP_SHARED),
        ..mmap_file(10, A, 2 * PAGE, 0x4000, 7)
    };
    let rp = replay(&[shared]);
    let process = rp.process(PID).expect("live");
    let region = process.map.regions().next().expect("one region");
    assert_eq!(region.perms(), "r-xs");
    assert_eq!(region.off, 0x4000);
    let file = region.file().expect("file backed");
    assert_eq!((file.dev, file.ino), (Some(0x801), Some(7)));
    assert_eq!(region.path(), Some("/lib/f7.so"));
    // MAP_SHARED_VALIDATE is shared too; the anonymous flag wins over a file.
    let validate = mmap(10, A, PAGE, RW, 0x03 | MAP_ANONYMOUS);
    let rp = replay(&[validate]);
    let region = rp.process(PID).expect("live").map.merged().remove(0);
    assert_eq!(region.perms(), "rw-s");
    assert!(region.file().is_none());
}

#[test]
fn mmap_file_name_is_used_without_a_path() {
    let e = Event {
        file_path: None,
        ..mmap_file(10, A, PAGE, 0, 7)
    };
    let rp = replay(&[e]);
    let region = rp.process(PID).expect("live").map.merged().remove(0);
    assert_eq!(region.path(), Some("f7.so"));
}

#[test]
fn map_fixed_replaces_overlaps_and_splits() {
    let rp = replay(&[
        mmap(10, A, 4 * PAGE, RW, ANON),
        // MAP_FIXED over pages 1..3 with another protection.
        mmap(20, A + PAGE, 2 * PAGE, PROT_READ, ANON | 0x10),
    ]);
    assert_eq!(
        raw(&rp, PID),
        [
            r(A, A + PAGE, "rw-p"),
            r(A + PAGE, A + 3 * PAGE, "r--p"),
            r(A + 3 * PAGE, A + 4 * PAGE, "rw-p"),
        ]
    );
    // A file mapping over the middle of another one keeps the outer pieces' offsets right.
    let rp = replay(&[
        mmap_file(10, A, 4 * PAGE, 0, 7),
        mmap_file(20, A + PAGE, PAGE, 0, 8),
    ]);
    let offs: Vec<_> = rp
        .process(PID)
        .expect("live")
        .map
        .regions()
        .map(|r| (r.start, r.off, r.file().and_then(|f| f.ino)))
        .collect();
    assert_eq!(
        offs,
        [
            (A, 0, Some(7)),
            (A + PAGE, 0, Some(8)),
            (A + 2 * PAGE, 2 * PAGE, Some(7))
        ]
    );
}

#[test]
fn munmap_removes_a_range_splitting_regions() {
    let rp = replay(&[mmap(10, A, 4 * PAGE, RW, ANON), munmap(20, A + PAGE, 100)]);
    assert_eq!(
        raw(&rp, PID),
        [
            r(A, A + PAGE, "rw-p"),
            r(A + 2 * PAGE, A + 4 * PAGE, "rw-p")
        ]
    );
    // Unmapping a range that was never mapped is fine.
    let rp = replay(&[munmap(20, A, PAGE)]);
    assert!(raw(&rp, PID).is_empty());
}

#[test]
fn mprotect_splits_and_merges_back() {
    let mut rp = replay(&[
        mmap(10, A, 4 * PAGE, RW, ANON),
        mprotect(20, A + PAGE, 2 * PAGE, PROT_READ),
    ]);
    assert_eq!(
        raw(&rp, PID),
        [
            r(A, A + PAGE, "rw-p"),
            r(A + PAGE, A + 3 * PAGE, "r--p"),
            r(A + 3 * PAGE, A + 4 * PAGE, "rw-p"),
        ]
    );
    let middle = rp
        .process(PID)
        .expect("live")
        .map
        .regions()
        .nth(1)
        .cloned()
        .expect("middle");
    assert_eq!((middle.since, middle.set_by), (21, SetBy::Mprotect));
    rp.apply(&mprotect(30, A + PAGE, 2 * PAGE, RW));
    assert_eq!(raw(&rp, PID).len(), 3, "raw pieces stay split");
    let merged = rp.process(PID).expect("live").map.merged();
    assert_eq!(merged.len(), 1, "compatible neighbours merge");
    assert_eq!((merged[0].start, merged[0].end), (A, A + 4 * PAGE));
    assert_eq!(
        (merged[0].since, merged[0].set_by),
        (31, SetBy::Mprotect),
        "a merged region takes its latest change"
    );
}

#[test]
fn mprotect_of_unmapped_memory_is_noted() {
    let rp = replay(&[
        mmap(10, A, PAGE, RW, ANON),
        mprotect(20, A, 2 * PAGE, PROT_READ),
    ]);
    assert_eq!(raw(&rp, PID), [r(A, A + PAGE, "r--p")]);
    assert_eq!(rp.process(PID).expect("live").misses.len(), 1);
}

#[test]
fn merge_rules() {
    // Anonymous neighbours of one protection merge; other protection or sharing do not.
    let rp = replay(&[
        mmap(10, A, PAGE, RW, ANON),
        mmap(20, A + PAGE, PAGE, RW, ANON),
        mmap(30, A + 2 * PAGE, PAGE, PROT_READ, ANON),
        mmap(
            40,
            A + 3 * PAGE,
            PAGE,
            PROT_READ,
            MAP_SHARED | MAP_ANONYMOUS,
        ),
    ]);
    assert_eq!(
        merged(&rp, PID),
        [
            r(A, A + 2 * PAGE, "rw-p"),
            r(A + 2 * PAGE, A + 3 * PAGE, "r--p"),
            r(A + 3 * PAGE, A + 4 * PAGE, "r--s"),
        ]
    );
    // The same file merges at contiguous offsets only; another file or a gap never merges.
    let rp = replay(&[
        mmap_file(10, A, PAGE, 0, 7),
        mmap_file(20, A + PAGE, PAGE, PAGE, 7),
        mmap_file(30, A + 2 * PAGE, PAGE, 5 * PAGE, 7),
        mmap_file(40, A + 3 * PAGE, PAGE, 6 * PAGE, 8),
        mmap_file(50, A + 5 * PAGE, PAGE, 7 * PAGE, 8),
    ]);
    assert_eq!(
        merged(&rp, PID),
        [
            r(A, A + 2 * PAGE, "r-xp"),
            r(A + 2 * PAGE, A + 3 * PAGE, "r-xp"),
            r(A + 3 * PAGE, A + 4 * PAGE, "r-xp"),
            r(A + 5 * PAGE, A + 6 * PAGE, "r-xp"),
        ]
    );
    // Anonymous memory next to a file, or pseudo paths that differ, do not merge.
    let rp = replay(&[
        snap(5, PID, A, A + PAGE, "rw-p", Some("[stack]"), None),
        snap(5, PID, A + PAGE, A + 2 * PAGE, "rw-p", None, None),
        snap(5, PID, A + 2 * PAGE, A + 3 * PAGE, "rw-p", None, None),
        snap(
            5,
            PID,
            A + 3 * PAGE,
            A + 4 * PAGE,
            "rw-p",
            Some("/x"),
            Some(9),
        ),
    ]);
    assert_eq!(
        merged(&rp, PID),
        [
            r(A, A + PAGE, "rw-p"),
            r(A + PAGE, A + 3 * PAGE, "rw-p"),
            r(A + 3 * PAGE, A + 4 * PAGE, "rw-p"),
        ]
    );
}

#[test]
fn a_snapshot_after_calls_that_missed_the_map_makes_it_complete_again() {
    let rp = replay(&[
        mprotect(1, A, PAGE, 1),
        snap(10, PID, A, A + PAGE, "r--p", Some("/bin/t"), Some(5)),
    ]);
    let process = rp.process(PID).expect("live");
    assert!(process.misses.is_empty(), "{:?}", process.misses);
    let rp = replay(&[mprotect(1, A, PAGE, 1)]);
    assert_eq!(rp.process(PID).expect("live").misses.len(), 1);
}

#[test]
fn snapshot_replaces_the_whole_map() {
    let rp = replay(&[
        mmap(1, 0x9000_0000, PAGE, RW, ANON),
        snap(10, PID, A, A + PAGE, "r-xp", Some("/bin/t"), Some(5)),
        snap(
            10,
            PID,
            A + PAGE,
            A + 3 * PAGE,
            "rw-p",
            Some("[heap]"),
            None,
        ),
        snap(
            10,
            PID,
            0x7ffd_0000_0000,
            0x7ffd_0002_1000,
            "rw-p",
            Some("[stack]"),
            None,
        ),
    ]);
    let process = rp.process(PID).expect("live");
    assert_eq!(
        raw(&rp, PID),
        [
            r(A, A + PAGE, "r-xp"),
            r(A + PAGE, A + 3 * PAGE, "rw-p"),
            r(0x7ffd_0000_0000, 0x7ffd_0002_1000, "rw-p"),
        ],
        "the mmap before the snapshot is gone"
    );
    assert_eq!(
        process.baseline,
        Baseline::Snapshot {
            ts: 10,
            pid: PID,
            source: Some(sources::PROC_MAPS_START.to_owned())
        }
    );
    assert_eq!(
        process.heap,
        Some(Heap {
            start: A + PAGE,
            end: A + 3 * PAGE
        })
    );
    let file = process.map.regions().next().and_then(Region::file).cloned();
    assert_eq!(file.and_then(|f| f.ino), Some(5));

    // A later snapshot of the same process replaces the earlier one.
    let mut rp = rp;
    rp.apply(&snap(20, PID, 0x5000, 0x6000, "r--p", None, None));
    assert_eq!(raw(&rp, PID), [r(0x5000, 0x6000, "r--p")]);
    assert_eq!(rp.process(PID).expect("live").heap, None);
    // A snapshot of another process leaves this one alone.
    rp.apply(&snap(30, 7, 0x1000, 0x2000, "r--p", None, None));
    assert_eq!(raw(&rp, PID), [r(0x5000, 0x6000, "r--p")]);
    assert_eq!(raw(&rp, 7), [r(0x1000, 0x2000, "r--p")]);
}

#[test]
fn fork_copies_the_parent_at_that_time() {
    let fork = Event {
        child_pid: Some(200),
        tid: 101,
        ..lifecycle(RowKind::Fork, 20, PID)
    };
    let rp = replay(&[
        snap(5, PID, A, A + PAGE, "r-xp", Some("/bin/t"), Some(5)),
        mmap(10, A + 0x10000, PAGE, RW, ANON),
        fork,
        // After the fork the two maps are independent.
        mmap(30, A + 0x20000, PAGE, RW, ANON),
        Event {
            pid: 200,
            tid: 200,
            ..munmap(40, A, PAGE)
        },
    ]);
    assert_eq!(
        raw(&rp, PID),
        [
            r(A, A + PAGE, "r-xp"),
            r(A + 0x10000, A + 0x11000, "rw-p"),
            r(A + 0x20000, A + 0x21000, "rw-p"),
        ]
    );
    assert_eq!(raw(&rp, 200), [r(A + 0x10000, A + 0x11000, "rw-p")]);
    let child = rp.process(200).expect("child live");
    assert_eq!(child.forked, Some((PID, 20)));
    let region = child.map.regions().next().expect("region");
    assert_eq!(
        (region.since, region.set_by, region.tid),
        (20, SetBy::Fork, 101)
    );
    assert!(
        matches!(
            child.baseline,
            Baseline::Snapshot {
                pid: PID,
                ts: 5,
                ..
            }
        ),
        "the child knows what its parent knew"
    );
    // A fork from a parent never seen gives an empty child that knows nothing.
    let rp = replay(&[Event {
        child_pid: Some(300),
        ..lifecycle(RowKind::Fork, 20, 299)
    }]);
    let child = rp.process(300).expect("child live");
    assert!(child.map.regions().next().is_none());
    assert_eq!(child.baseline, Baseline::Unknown);
}

#[test]
fn exec_clears_and_the_exec_snapshot_refills() {
    let mut rp = replay(&[
        snap(5, PID, A, A + PAGE, "r-xp", Some("/bin/sh"), Some(5)),
        brk(6, 0, A + PAGE),
        Event {
            file_path: Some(Cow::Borrowed("/bin/ls")),
            ..lifecycle(RowKind::Exec, 10, PID)
        },
    ]);
    let process = rp.process(PID).expect("live");
    assert!(process.map.regions().next().is_none());
    assert_eq!(process.heap, None);
    assert_eq!(process.baseline, Baseline::Exec { ts: 10 });
    assert_eq!(process.exec, Some((10, Some("/bin/ls".to_owned()))));
    rp.apply(&Event {
        source: Some(Cow::Borrowed(sources::PROC_MAPS_EXEC)),
        ..snap(11, PID, 0x5000, 0x6000, "r-xp", Some("/bin/ls"), Some(6))
    });
    let process = rp.process(PID).expect("live");
    assert_eq!(raw(&rp, PID), [r(0x5000, 0x6000, "r-xp")]);
    assert!(matches!(
        &process.baseline,
        Baseline::Snapshot { ts: 11, source: Some(s), .. } if s == sources::PROC_MAPS_EXEC
    ));
}

#[test]
fn exit_drops_the_map_and_a_fork_reuses_the_pid() {
    let mut rp = replay(&[
        mmap(10, A, PAGE, RW, ANON),
        Event {
            exit_code: Some(0x100),
            ..lifecycle(RowKind::Exit, 20, PID)
        },
    ]);
    assert!(rp.process(PID).is_none());
    assert_eq!(
        rp.exit(PID),
        Some(&Exit {
            ts: 20,
            code: Some(0x100)
        })
    );
    rp.apply(&Event {
        child_pid: Some(PID),
        ..lifecycle(RowKind::Fork, 30, 1)
    });
    assert!(rp.exit(PID).is_none(), "a new process with the same pid");
    assert!(raw(&rp, PID).is_empty());
}

#[test]
fn mremap_shrinks_in_place() {
    let rp = replay(&[
        mmap(10, A, 4 * PAGE, RW, ANON),
        mremap(20, A, 4 * PAGE, PAGE + 1, 0, A),
    ]);
    assert_eq!(raw(&rp, PID), [r(A, A + 2 * PAGE, "rw-p")]);
    let region = rp.process(PID).expect("live").map.merged().remove(0);
    assert_eq!(region.set_by, SetBy::Mremap);
}

#[test]
fn mremap_grows_the_last_region_in_place() {
    let rp = replay(&[
        mmap_file(10, A, PAGE, 0, 7),
        mmap(11, A + PAGE, PAGE, RW, ANON),
        mprotect(12, A + PAGE, PAGE, PROT_READ),
        mremap(20, A, 2 * PAGE, 4 * PAGE, MREMAP_MAYMOVE, A),
    ]);
    assert_eq!(
        raw(&rp, PID),
        [r(A, A + PAGE, "r-xp"), r(A + PAGE, A + 4 * PAGE, "r--p")],
        "the last region of the old range grows with its attributes"
    );
    let last = rp
        .process(PID)
        .expect("live")
        .map
        .regions()
        .nth(1)
        .cloned()
        .expect("last");
    assert_eq!((last.since, last.set_by), (21, SetBy::Mremap));
    assert!(last.file().is_none());
}

#[test]
fn mremap_moves_keeping_attributes_and_offsets() {
    const B: u64 = 0x50_0000;
    let rp = replay(&[
        mmap_file(10, A, 2 * PAGE, 0x3000, 7),
        mremap(20, A, 2 * PAGE, 3 * PAGE, MREMAP_MAYMOVE, B),
    ]);
    let process = rp.process(PID).expect("live");
    let regions: Vec<_> = process.map.regions().cloned().collect();
    assert_eq!(regions.len(), 1, "the old range is gone");
    assert_eq!((regions[0].start, regions[0].end), (B, B + 3 * PAGE));
    assert_eq!(regions[0].off, 0x3000);
    assert_eq!(regions[0].perms(), "r-xp");
    assert_eq!(regions[0].set_by, SetBy::Mremap);

    // Several pieces move together; MREMAP_FIXED replaces what was at the target; a smaller
    // new size moves only the head.
    let rp = replay(&[
        mmap(10, A, 3 * PAGE, RW, ANON),
        mprotect(11, A + PAGE, PAGE, PROT_READ),
        mmap(12, B, 8 * PAGE, PROT_EXEC, ANON),
        mremap(
            20,
            A,
            3 * PAGE,
            2 * PAGE,
            MREMAP_MAYMOVE | MREMAP_FIXED,
            B + PAGE,
        ),
    ]);
    assert_eq!(
        raw(&rp, PID),
        [
            r(B, B + PAGE, "--xp"),
            r(B + PAGE, B + 2 * PAGE, "rw-p"),
            r(B + 2 * PAGE, B + 3 * PAGE, "r--p"),
            r(B + 3 * PAGE, B + 8 * PAGE, "--xp"),
        ]
    );
}

#[test]
fn mremap_dontunmap_keeps_the_old_range() {
    const B: u64 = 0x50_0000;
    let rp = replay(&[
        mmap(10, A, 2 * PAGE, RW, ANON),
        mremap(
            20,
            A,
            2 * PAGE,
            2 * PAGE,
            MREMAP_MAYMOVE | MREMAP_DONTUNMAP,
            B,
        ),
    ]);
    assert_eq!(
        raw(&rp, PID),
        [r(A, A + 2 * PAGE, "rw-p"), r(B, B + 2 * PAGE, "rw-p")]
    );
    let process = rp.process(PID).expect("live");
    let old = process.map.regions().next().expect("old range");
    assert_eq!(old.backing, Backing::Anon { name: None });
    assert_eq!((old.since, old.set_by), (21, SetBy::Mremap));
}

#[test]
fn mremap_of_memory_not_in_the_map_is_noted() {
    let rp = replay(&[mremap(20, A, PAGE, 2 * PAGE, MREMAP_MAYMOVE, A)]);
    assert!(raw(&rp, PID).is_empty());
    assert_eq!(rp.process(PID).expect("live").misses.len(), 1);
}

#[test]
fn brk_tracks_the_heap_from_the_first_brk() {
    const H: u64 = 0x55_0000;
    let rp = replay(&[
        brk(10, 0, H),                     // query: the heap starts here, empty
        brk(20, H + 0x21000, H + 0x21000), // grow
        brk(30, H + 0x50000, H + 0x21000), // failed: the break did not move
        brk(40, H + 0x1800, H + 0x1800),   // shrink (rounded up to a page)
        brk(50, H - PAGE, H + 0x1800),     // below the start: ignored
    ]);
    let process = rp.process(PID).expect("live");
    assert_eq!(raw(&rp, PID), [r(H, H + 0x2000, "rw-p")]);
    let heap = process.map.regions().next().expect("heap");
    assert_eq!(heap.path(), Some(HEAP_PATH));
    assert_eq!((heap.since, heap.set_by), (41, SetBy::Brk));
    assert_eq!(
        process.heap,
        Some(Heap {
            start: H,
            end: H + 0x2000
        })
    );
}

#[test]
fn brk_extends_the_heap_of_a_snapshot() {
    const H: u64 = 0x55_0000;
    let rp = replay(&[
        snap(5, PID, H, H + 0x21000, "rw-p", Some("[heap]"), None),
        brk(10, 0, H + 0x21000),
        brk(20, H + 0x42000, H + 0x42000),
    ]);
    assert_eq!(raw(&rp, PID), [r(H, H + 0x42000, "rw-p")]);
    let heap = rp.process(PID).expect("live").map.merged().remove(0);
    assert_eq!(heap.set_by, SetBy::Brk);
    // Shrinking to the start leaves no heap region.
    let rp = replay(&[
        snap(5, PID, H, H + 0x21000, "rw-p", Some("[heap]"), None),
        brk(20, H, H),
    ]);
    assert!(raw(&rp, PID).is_empty());
}

#[test]
fn rows_of_an_unknown_process_start_an_unknown_map() {
    let rp = replay(&[munmap(10, A, PAGE)]);
    let process = rp.process(PID).expect("live");
    assert_eq!(process.baseline, Baseline::Unknown);
    assert!(process.map.regions().next().is_none());
}

#[test]
fn page_size_comes_from_the_caller() {
    let mut rp = Replay::new(16384);
    rp.apply(&mmap(10, 0x40000, 100, RW, ANON));
    assert_eq!(raw(&rp, PID), [r(0x40000, 0x44000, "rw-p")]);
}

/// `(start, end, written)` of the raw pieces of `pid`.
fn written(replay: &Replay, pid: u32) -> Vec<(u64, u64, bool)> {
    replay
        .process(pid)
        .map(|p| {
            p.map
                .regions()
                .map(|r| (r.start, r.end, r.written))
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn a_region_remembers_it_was_writable_since_it_was_mapped() {
    const MAP_FIXED: u64 = 0x10;
    let (a, b, moved) = (0x10_000, 0x40_000, 0x80_000);
    let child = PID + 1;
    let replay = replay(&[
        snap(0, PID, a, a + PAGE, "rw-p", None, None),
        snap(0, PID, a + PAGE, a + 2 * PAGE, "r--p", None, None),
        // Read-only when mapped; its middle page writable, then read-only again.
        mmap(10, b, 3 * PAGE, PROT_READ, ANON),
        mprotect(20, b + PAGE, PAGE, RW),
        mprotect(30, b + PAGE, PAGE, PROT_READ),
        // The writable snapshot region moves, and stays one that was writable.
        mremap(40, a, PAGE, PAGE, MREMAP_MAYMOVE, moved),
        Event {
            child_pid: Some(child),
            ..lifecycle(RowKind::Fork, 50, PID)
        },
        // The middle page mapped again, read-only: what was there before does not count.
        mmap(60, b + PAGE, PAGE, PROT_READ, ANON | MAP_FIXED),
    ]);
    let at_fork = vec![
        (a + PAGE, a + 2 * PAGE, false),
        (b, b + PAGE, false),
        (b + PAGE, b + 2 * PAGE, true),
        (b + 2 * PAGE, b + 3 * PAGE, false),
        (moved, moved + PAGE, true),
    ];
    assert_eq!(written(&replay, child), at_fork);
    let mut now = at_fork;
    now[2].2 = false;
    assert_eq!(written(&replay, PID), now);
}
