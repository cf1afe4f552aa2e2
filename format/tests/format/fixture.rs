//! The committed fixtures: every future reader must read them, with exactly these contents.

use std::path::PathBuf;

use arrow_array::Array;
use mmap_format::{
    event::{Event, RowKind, Syscall, sources, symbol_sources},
    metadata::{
        CaptureMetadata, ClockAnchor, Counters, Derivation, FormatVersion, ParentFile, Redaction,
        SegmentLink, StacksConfig, Targets,
    },
    names::{errno_name, makedev, map_flags_names, prot_names},
    reader::CaptureReader,
    schema::{col, schema},
};
use parquet::file::reader::{FileReader, SerializedFileReader};

fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../fixtures/v1")
        .join(name)
}

/// 2026-01-01T00:00:00Z.
const START_NS: i64 = 1_767_225_600_000_000_000;

#[test]
fn synthetic_v1_0_metadata() {
    let reader = CaptureReader::open(&fixture("synthetic-v1.0.parquet")).expect("open fixture");
    assert_eq!(reader.num_rows(), 12);
    assert_eq!(reader.num_row_groups(), 2);
    let expected = CaptureMetadata {
        format_version: FormatVersion { major: 1, minor: 0 },
        recorder_version: "0.1.0".into(),
        hostname: "fixture-host".into(),
        kernel_release: "6.1.0-fixture".into(),
        boot_id: "00000000-0000-4000-8000-000000000001".into(),
        clock_anchors: vec![
            ClockAnchor {
                boot_ns: 1_000_000_000_000,
                realtime_ns: START_NS,
                uncertainty_ns: 500,
            },
            ClockAnchor {
                boot_ns: 1_010_000_000_000,
                realtime_ns: START_NS + 10_000_000_123,
                uncertainty_ns: 600,
            },
        ],
        capture_start_ns: START_NS,
        capture_end_ns: START_NS + 10_000_000_000,
        targets: Targets {
            system_wide: false,
            pids: vec![],
            command: Some(vec!["/usr/bin/fixture-app".into(), "--demo".into()]),
            // Not in 1.0 files: the 1.1 defaults.
            comms: vec![],
            cgroups: vec![],
            follow_forks: false,
        },
        command_line: [
            "mmap-recorder",
            "record",
            "-o",
            "synthetic.parquet",
            "--",
            "/usr/bin/fixture-app",
            "--demo",
        ]
        .map(String::from)
        .to_vec(),
        attach_mode: "tracepoint".into(),
        counters: Counters {
            emitted: 12,
            lost_ringbuf_full: 0,
            orphan_exits: 1,
            entry_map_full: 0,
            decode_errors: 0,
            // Not in 1.0 and 1.1 files: 0.
            follow_map_full: 0,
        },
        // Not in 1.0 files: absent.
        capture_id: None,
        segment_index: None,
        page_size: None,
        recovered: false,
        read_with: None,
        ..Default::default()
    };
    assert_eq!(reader.metadata(), &expected);
    let anchor = reader.metadata().clock_anchors[0];
    assert_eq!(
        anchor.boot_to_wall_ns(1_000_500_000_000),
        START_NS + 500_000_000
    );
}

#[test]
fn synthetic_v1_0_rows() {
    let reader = CaptureReader::open(&fixture("synthetic-v1.0.parquet")).expect("open fixture");
    let batches: Vec<_> = reader
        .batches()
        .expect("batches")
        .collect::<Result<_, _>>()
        .expect("read batches");
    assert!(batches.iter().all(|b| b.schema() == schema()));
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(events.len(), 12);

    // Every row: one mmap per millisecond by pid 4242, ppid 4000, uid/gid 1000, cgroup 0x1234.
    for (i, event) in (0_i64..).zip(&events) {
        assert_eq!(event.kind, RowKind::Syscall);
        assert_eq!(event.syscall, Some(Syscall::Mmap));
        assert_eq!(event.ts_ns, START_NS + i * 1_000_000, "row {i}");
        let exit = event
            .ret
            .map(|_| START_NS + i * 1_000_000 + 2_000 + i * 100);
        assert_eq!(event.ts_exit_ns, exit, "row {i}");
        assert_eq!(
            (event.pid, event.ppid, event.uid, event.gid, event.cgroup_id),
            (4242, 4000, 1000, 1000, 0x1234)
        );
        let comm = if event.tid == 4242 {
            "fixture-app"
        } else {
            "worker-1"
        };
        assert_eq!(event.comm, comm, "row {i}");
    }

    let tids: Vec<u32> = events.iter().map(|e| e.tid).collect();
    assert_eq!(
        tids,
        [
            4242, 4242, 4242, 4242, 4243, 4243, 4243, 4242, 4242, 4243, 4242, 4242
        ]
    );
    let cpus: Vec<u32> = events.iter().map(|e| e.cpu).collect();
    assert_eq!(cpus, [0, 0, 1, 1, 2, 2, 3, 0, 0, 3, 1, 0]);
    let errnos: Vec<Option<&str>> = events
        .iter()
        .map(|e| e.errno().and_then(errno_name))
        .collect();
    assert_eq!(
        errnos,
        [
            None,
            None,
            None,
            Some("EBADF"),
            None,
            Some("EINVAL"),
            None,
            None,
            Some("ENOMEM"),
            None,
            Some("EEXIST"),
            None
        ]
    );
    let flags: Vec<String> = events
        .iter()
        .map(|e| map_flags_names(e.flags.expect("flags")))
        .collect();
    assert_eq!(
        flags,
        [
            "MAP_PRIVATE|MAP_ANONYMOUS",
            "MAP_PRIVATE|MAP_DENYWRITE",
            "MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE",
            "MAP_SHARED",
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK",
            "MAP_PRIVATE|MAP_ANONYMOUS",
            "MAP_SHARED",
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE",
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB",
            "MAP_PRIVATE|MAP_ANONYMOUS",
            "MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE",
            "MAP_PRIVATE|MAP_ANONYMOUS",
        ]
    );

    // Row 0: anonymous.
    let e = &events[0];
    assert_eq!(
        (e.addr, e.len, e.fd, e.off, e.ret),
        (
            Some(0),
            Some(8192),
            Some(-1),
            Some(0),
            Some(0x7f3a_1c00_0000)
        )
    );
    assert_eq!(prot_names(e.prot.expect("prot")), "PROT_READ|PROT_WRITE");
    assert_eq!(
        (e.file_dev, e.file_ino, e.file_name.as_deref()),
        (None, None, None)
    );

    // Row 2: libc's text, file-backed and fixed.
    let e = &events[2];
    assert_eq!(
        (e.addr, e.len, e.fd, e.off, e.ret),
        (
            Some(0x7f3a_1b02_8000),
            Some(0x15_5000),
            Some(3),
            Some(0x2_8000),
            Some(0x7f3a_1b02_8000)
        )
    );
    assert_eq!(prot_names(e.prot.expect("prot")), "PROT_READ|PROT_EXEC");
    assert_eq!(
        (e.file_dev, e.file_ino, e.file_name.as_deref()),
        (Some(makedev(259, 2)), Some(1_048_577), Some("libc.so.6"))
    );

    // Row 3: EBADF.
    let e = &events[3];
    assert_eq!((e.fd, e.ret, e.errno()), (Some(99), Some(-9), Some(9)));

    // Row 6: a shared data file mapped by the worker thread.
    let e = &events[6];
    assert_eq!(e.tid, 4243);
    assert_eq!(
        (e.file_dev, e.file_ino, e.file_name.as_deref()),
        (Some(makedev(8, 1)), Some(42), Some("data.bin"))
    );
    assert_eq!((e.len, e.off), (Some(65536), Some(4096)));

    // Row 9: still in progress when the recording stopped.
    let e = &events[9];
    assert_eq!((e.ts_exit_ns, e.ret, e.errno()), (None, None, None));

    // Sums a query would make: bytes mapped successfully.
    let mapped: u64 = events
        .iter()
        .filter(|e| e.ret.is_some_and(|r| r >= 0))
        .filter_map(|e| e.len)
        .sum();
    assert_eq!(
        mapped,
        8192 + 0x1d_8000 + 0x15_5000 + 8_392_704 + 65536 + 0x20_0000 + 4096
    );
}

/// The 1.0 fixtures read with every 1.1 column null and the 1.1 metadata absent.
#[test]
fn v1_0_fixtures_read_with_1_1_columns_null() {
    for (name, rows) in [
        ("synthetic-v1.0.parquet", 12),
        ("recorded-v1.0.parquet", 24),
    ] {
        let reader = CaptureReader::open(&fixture(name)).expect("open fixture");
        let metadata = reader.metadata();
        assert_eq!(
            metadata.format_version,
            FormatVersion { major: 1, minor: 0 }
        );
        assert_eq!(
            (
                &metadata.capture_id,
                metadata.segment_index,
                metadata.page_size,
                metadata.recovered
            ),
            (&None, None, None, false),
            "{name}"
        );
        assert_eq!(
            (
                metadata.targets.comms.len(),
                metadata.targets.cgroups.len(),
                metadata.targets.follow_forks
            ),
            (0, 0, false),
            "{name}"
        );
        let mut seen = 0;
        for batch in reader.batches().expect("batches") {
            let batch = batch.expect("read");
            assert_eq!(batch.schema(), schema());
            for column in col::ADDED_IN_1_1 {
                let array = batch.column_by_name(column).expect("filled in");
                assert_eq!(array.null_count(), batch.num_rows(), "{name}: {column}");
            }
            seen += batch.num_rows();
        }
        assert_eq!(seen, rows, "{name}");
        for event in reader.events().expect("events") {
            let event = event.expect("decode");
            assert_eq!(event.kind, RowKind::Syscall);
            assert_eq!(event.syscall, Some(Syscall::Mmap));
            // Every 1.1 field is None: the row equals its 1.0 fields over the defaults.
            let v1_0_only = Event {
                kind: event.kind,
                syscall: event.syscall,
                ts_ns: event.ts_ns,
                ts_exit_ns: event.ts_exit_ns,
                cpu: event.cpu,
                pid: event.pid,
                tid: event.tid,
                ppid: event.ppid,
                uid: event.uid,
                gid: event.gid,
                comm: event.comm.clone(),
                cgroup_id: event.cgroup_id,
                addr: event.addr,
                len: event.len,
                prot: event.prot,
                flags: event.flags,
                fd: event.fd,
                off: event.off,
                ret: event.ret,
                file_dev: event.file_dev,
                file_ino: event.file_ino,
                file_name: event.file_name.clone(),
                ..Default::default()
            };
            assert_eq!(event, v1_0_only, "{name}");
        }
    }
}

const FIXTURE_CGROUP: &str = "/user.slice/user-1000.slice/session-1.scope";
const HELPER_CGROUP: &str = "/system.slice/fixture-helper.service";

/// The fixture app's main thread, as every one of its rows has it.
fn app() -> Event<'static> {
    Event {
        ts_ns: START_NS,
        cpu: 0,
        pid: 4242,
        tid: 4242,
        ppid: 4000,
        uid: 1000,
        gid: 1000,
        comm: "fixture-app".into(),
        cgroup_id: 0x1234,
        source: Some("tracepoint".into()),
        cgroup_path: Some(FIXTURE_CGROUP.into()),
        pidns_ino: Some(4_026_531_836),
        ns_pid: Some(4242),
        ns_tid: Some(4242),
        ..Default::default()
    }
}

/// The helper, forked by the app, pid 1 in its own pid namespace.
fn helper() -> Event<'static> {
    Event {
        cpu: 1,
        pid: 4250,
        tid: 4250,
        ppid: 4242,
        comm: "fixture-helper".into(),
        cgroup_id: 0x2345,
        cgroup_path: Some(HELPER_CGROUP.into()),
        pidns_ino: Some(4_026_532_512),
        ns_pid: Some(1),
        ns_tid: Some(1),
        ..app()
    }
}

/// A snapshot row: (start, len, prot, flags, off), file (dev, ino), path, name, deleted, memfd.
#[expect(clippy::too_many_arguments, reason = "one row of a table")]
fn snap(
    thread: &Event<'static>,
    source: &str,
    (addr, len, prot, flags, off): (u64, u64, u64, u64, u64),
    file: Option<(u64, u64)>,
    path: Option<&str>,
    name: Option<&str>,
    deleted: bool,
    memfd: Option<bool>,
) -> Event<'static> {
    Event {
        kind: RowKind::Snapshot,
        addr: Some(addr),
        len: Some(len),
        prot: Some(prot),
        flags: Some(flags),
        off: Some(off),
        file_dev: file.map(|(dev, _)| dev),
        file_ino: file.map(|(_, ino)| ino),
        file_path: path.map(|p| p.to_owned().into()),
        file_name: name.map(|n| n.to_owned().into()),
        file_deleted: path.map(|_| deleted),
        file_memfd: memfd,
        path_source: path.map(|_| "proc_maps".into()),
        source: Some(source.to_owned().into()),
        ..thread.clone()
    }
}

/// A syscall row `ms` milliseconds after the start, taking 2 µs.
fn call(thread: &Event<'static>, ms: i64, syscall: Syscall, row: Event<'static>) -> Event<'static> {
    let ts_ns = START_NS + ms * 1_000_000;
    Event {
        kind: RowKind::Syscall,
        syscall: Some(syscall),
        ts_ns,
        ts_exit_ns: Some(ts_ns + 2_000),
        cpu: thread.cpu,
        pid: thread.pid,
        tid: thread.tid,
        ppid: thread.ppid,
        uid: thread.uid,
        gid: thread.gid,
        comm: thread.comm.clone(),
        cgroup_id: thread.cgroup_id,
        source: thread.source.clone(),
        cgroup_path: thread.cgroup_path.clone(),
        pidns_ino: thread.pidns_ino,
        ns_pid: thread.ns_pid,
        ns_tid: thread.ns_tid,
        ..row
    }
}

/// File columns of a syscall row.
fn path(
    (dev, ino): (u64, u64),
    path: &str,
    name: &str,
    source: &str,
    (truncated, deleted, memfd): (bool, bool, bool),
) -> Event<'static> {
    Event {
        file_dev: Some(dev),
        file_ino: Some(ino),
        file_path: Some(path.to_owned().into()),
        file_name: Some(name.to_owned().into()),
        path_source: Some(source.to_owned().into()),
        path_truncated: Some(truncated),
        file_deleted: Some(deleted),
        file_memfd: Some(memfd),
        ..Default::default()
    }
}

#[rustfmt::skip]
fn synthetic_v1_1_expected() -> Vec<Event<'static>> {
    let app = app();
    let helper = helper();
    let app_bin = Some((makedev(259, 2), 1_048_600));
    let libc = Some((makedev(259, 2), 1_048_577));
    let memfd = (makedev(0, 1), 2050);
    let scratch = (makedev(8, 1), 99);
    let start = "proc_maps:start";
    let (r, rw, rx, x) = (1, 3, 5, 4);
    let (shared, private) = (0x01, 0x02);
    let mut rows = vec![
        snap(&app, start, (0x55d4_a000_0000, 0x2000, r, private, 0), app_bin, Some("/usr/bin/fixture-app"), Some("fixture-app"), false, Some(false)),
        snap(&app, start, (0x55d4_a000_2000, 0x3000, rx, private, 0x2000), app_bin, Some("/usr/bin/fixture-app"), Some("fixture-app"), false, Some(false)),
        snap(&app, start, (0x55d4_a1a0_0000, 0x2_1000, rw, private, 0), None, Some("[heap]"), None, false, Some(false)),
        snap(&app, start, (0x7f3a_1b02_8000, 0x19_5000, rx, private, 0x2_8000), libc, Some("/usr/lib/x86_64-linux-gnu/libc.so.6"), Some("libc.so.6"), false, Some(false)),
        snap(&app, start, (0x7f3a_1c80_0000, 0x1_0000, rw, shared, 0), Some(memfd), Some("/memfd:fixture-shm"), Some("memfd:fixture-shm"), true, Some(true)),
        snap(&app, start, (0x7f3a_1c90_0000, 0x1_0000, rw, shared, 0), Some(scratch), Some("/tmp/fixture-scratch.bin"), Some("fixture-scratch.bin"), true, Some(false)),
        snap(&app, start, (0x7f3a_1d00_0000, 0x10_0000, rw, private, 0), None, Some("[anon:fixture-arena]"), None, false, Some(false)),
        snap(&app, start, (0x7f3a_1d20_0000, 0x1000, 0, private, 0), None, None, None, false, None),
        snap(&app, start, (0x7ffc_8000_0000, 0x2_1000, rw, private, 0), None, Some("[stack]"), None, false, Some(false)),
        snap(&app, start, (0x7ffc_8010_0000, 0x4000, r, private, 0), None, Some("[vvar]"), None, false, Some(false)),
        snap(&app, start, (0x7ffc_8010_4000, 0x2000, rx, private, 0), None, Some("[vdso]"), None, false, Some(false)),
        snap(&app, start, (0xffff_ffff_ff60_0000, 0x1000, x, private, 0), None, Some("[vsyscall]"), None, false, Some(false)),
    ];
    let mmap = |len, prot, flags, fd, ret| Event {
        addr: Some(0),
        len: Some(len),
        prot: Some(prot),
        flags: Some(flags),
        fd: Some(fd),
        off: Some(0),
        ret: Some(ret),
        ..Default::default()
    };
    let with_file = |row: Event<'static>, file: Event<'static>| Event {
        addr: row.addr,
        len: row.len,
        prot: row.prot,
        flags: row.flags,
        fd: row.fd,
        off: row.off,
        ret: row.ret,
        ..file
    };
    let libm = (makedev(259, 2), 1_048_590);
    let deep = (makedev(8, 1), 4242);
    rows.extend([
        call(&app, 1, Syscall::Mmap, mmap(0x10_0000, rw, 0x22, -1, 0x7f3a_1e00_0000)),
        call(&app, 2, Syscall::Mmap, with_file(mmap(0x10_a000, r, 0x802, 3, 0x7f3a_1a00_0000), path(libm, "/usr/lib/x86_64-linux-gnu/libm.so.6", "libm.so.6", "kernel_dentry_walk", (false, false, false)))),
        call(&app, 3, Syscall::Mmap, with_file(mmap(0x1000, r, shared, 4, 0x7f3a_19f0_0000), path(deep, "…/very/deep/tree/data.bin", "data.bin", "kernel_dentry_walk", (true, false, false)))),
        call(&app, 4, Syscall::Mmap, with_file(mmap(0x1_0000, rw, shared, 5, 0x7f3a_1c80_0000), path(memfd, "/memfd:fixture-shm", "memfd:fixture-shm", "proc_map_files", (false, true, true)))),
        call(&app, 5, Syscall::Mmap, with_file(mmap(0x1_0000, rw, shared, 6, 0x7f3a_1c90_0000), path(scratch, "/tmp/fixture-scratch.bin", "fixture-scratch.bin", "proc_fd", (false, true, false)))),
        call(&app, 6, Syscall::Mprotect, Event { addr: Some(0x7f3a_1e00_0000), len: Some(0x1000), prot: Some(r), ret: Some(0), ..Default::default() }),
        call(&app, 7, Syscall::Mremap, Event { addr: Some(0x7f3a_1e00_0000), len: Some(0x10_0000), new_len: Some(0x20_0000), flags: Some(1), new_addr: Some(0), ret: Some(0x7f3a_1800_0000), ..Default::default() }),
        call(&app, 8, Syscall::Mremap, Event { addr: Some(0x7f3a_1800_0000), len: Some(0x20_0000), new_len: Some(0x20_0000), flags: Some(3), new_addr: Some(0x7f3a_1810_0000), ret: Some(-22), ..Default::default() }),
        call(&app, 9, Syscall::Munmap, Event { addr: Some(0x7f3a_1800_0000), len: Some(0x20_0000), ret: Some(0), ..Default::default() }),
        call(&app, 10, Syscall::Brk, Event { addr: Some(0), ret: Some(0x55d4_a1a2_1000), ..Default::default() }),
        call(&app, 11, Syscall::Brk, Event { addr: Some(0x55d4_a1a4_2000), ret: Some(0x55d4_a1a4_2000), ..Default::default() }),
        Event { kind: RowKind::Fork, ts_ns: START_NS + 12_000_000, child_pid: Some(4250), ..app.clone() },
        Event {
            kind: RowKind::Exec,
            ts_ns: START_NS + 13_000_000,
            file_path: Some("/usr/libexec/fixture-helper".into()),
            file_name: Some("fixture-helper".into()),
            path_source: Some("exec_filename".into()),
            ..helper.clone()
        },
    ]);
    let after_exec = Event { ts_ns: START_NS + 13_050_000, ..helper.clone() };
    let helper_bin = Some((makedev(259, 2), 1_049_000));
    rows.extend([
        snap(&after_exec, "proc_maps:exec", (0x5600_0000_0000, 0x3000, rx, private, 0), helper_bin, Some("/usr/libexec/fixture-helper"), Some("fixture-helper"), false, Some(false)),
        snap(&after_exec, "proc_maps:exec", (0x7ffd_1000_0000, 0x2_1000, rw, private, 0), None, Some("[stack]"), None, false, Some(false)),
        call(&helper, 14, Syscall::Mmap, mmap(1 << 40, rw, 0x22, -1, -12)),
        Event {
            kind: RowKind::Lost,
            ts_ns: START_NS + 15_000_000,
            ts_exit_ns: Some(START_NS + 18_000_000),
            cpu: 2,
            lost_count: Some(5),
            source: Some("kernel".into()),
        ..Default::default()
        },
        Event { kind: RowKind::Exit, ts_ns: START_NS + 19_000_000, exit_code: Some(768), ..helper.clone() },
        Event { kind: RowKind::Exit, ts_ns: START_NS + 20_000_000, exit_code: Some(0), ..app.clone() },
    ]);
    rows
}

fn synthetic_v1_1_metadata_expected() -> CaptureMetadata {
    CaptureMetadata {
        format_version: FormatVersion { major: 1, minor: 1 },
        recorder_version: "0.1.0".into(),
        hostname: "fixture-host".into(),
        kernel_release: "6.1.0-fixture".into(),
        boot_id: "00000000-0000-4000-8000-000000000001".into(),
        clock_anchors: vec![
            ClockAnchor {
                boot_ns: 1_000_000_000_000,
                realtime_ns: START_NS,
                uncertainty_ns: 500,
            },
            ClockAnchor {
                boot_ns: 1_010_000_000_000,
                realtime_ns: START_NS + 10_000_000_123,
                uncertainty_ns: 600,
            },
        ],
        capture_start_ns: START_NS,
        capture_end_ns: START_NS + 10_000_000_000,
        targets: Targets {
            system_wide: false,
            pids: vec![],
            command: Some(vec!["/usr/bin/fixture-app".into(), "--demo".into()]),
            comms: vec!["fixture-app".into()],
            cgroups: vec![FIXTURE_CGROUP.into()],
            follow_forks: true,
        },
        command_line: [
            "mmap-recorder",
            "record",
            "--follow-forks",
            "-o",
            "synthetic.parquet",
            "--",
            "/usr/bin/fixture-app",
            "--demo",
        ]
        .map(String::from)
        .to_vec(),
        attach_mode: "tracepoint".into(),
        counters: Counters {
            emitted: 31,
            lost_ringbuf_full: 5,
            orphan_exits: 1,
            entry_map_full: 0,
            decode_errors: 0,
            // Not in 1.0 and 1.1 files: 0.
            follow_map_full: 0,
        },
        capture_id: Some("6d1f3c2a-8b7e-4c1d-9e2f-0a1b2c3d4e5f".into()),
        segment_index: Some(0),
        page_size: Some(4096),
        recovered: true,
        read_with: None,
        ..Default::default()
    }
}

#[test]
fn synthetic_v1_1_metadata() {
    let reader = CaptureReader::open(&fixture("synthetic-v1.1.parquet")).expect("open fixture");
    assert_eq!(reader.num_rows(), 31);
    assert_eq!(reader.num_row_groups(), 3);
    assert_eq!(reader.metadata(), &synthetic_v1_1_metadata_expected());
}

#[test]
fn synthetic_v1_1_rows() {
    let reader = CaptureReader::open(&fixture("synthetic-v1.1.parquet")).expect("open fixture");
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode");
    let expected = synthetic_v1_1_expected();
    assert_eq!(events.len(), expected.len());
    for (i, (event, expected)) in events.iter().zip(&expected).enumerate() {
        assert_eq!(event, expected, "row {i}");
    }

    // What the fixture covers.
    let kinds: std::collections::BTreeSet<&str> = events.iter().map(|e| e.kind.as_str()).collect();
    // Every kind but `frame` (added by 1.4).
    assert_eq!(kinds.len(), RowKind::ALL.len() - 1);
    assert!(!kinds.contains(RowKind::Frame.as_str()));
    let syscalls: std::collections::BTreeSet<&str> = events
        .iter()
        .filter_map(|e| e.syscall.map(Syscall::as_str))
        .collect();
    assert_eq!(syscalls.len(), Syscall::ALL.len());
    let pseudo: Vec<&str> = events
        .iter()
        .filter(|e| e.kind == RowKind::Snapshot)
        .filter_map(|e| e.file_path.as_deref())
        .filter(|p| p.starts_with('['))
        .collect();
    assert_eq!(
        pseudo,
        [
            "[heap]",
            "[anon:fixture-arena]",
            "[stack]",
            "[vvar]",
            "[vdso]",
            "[vsyscall]",
            "[stack]"
        ]
    );
    let errnos: Vec<&str> = events
        .iter()
        .filter_map(|e| e.errno().and_then(errno_name))
        .collect();
    assert_eq!(errnos, ["EINVAL", "ENOMEM"]);
    assert_eq!(
        map_flags_names(events[16].flags.expect("flags")),
        "MAP_SHARED"
    );
    assert_eq!(prot_names(events[11].prot.expect("prot")), "PROT_EXEC");
    let lost: u64 = events.iter().filter_map(|e| e.lost_count).sum();
    assert_eq!(lost, reader.metadata().counters.lost_ringbuf_full);

    // Row groups: 16 (full), 8 (cut by a flush), 7 (cut by finish).
    let file = std::fs::File::open(fixture("synthetic-v1.1.parquet")).expect("open");
    let parquet = SerializedFileReader::new(file).expect("parquet");
    let sizes: Vec<i64> = parquet
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    assert_eq!(sizes, [16, 8, 7]);
}

/// A capture completed by crash recovery: the first 24 rows of the synthetic 1.1 fixture (the
/// two journaled row groups), the last journaled metadata, `recovered`, no page index.
#[test]
fn recovered_v1_1() {
    let path = fixture("recovered-v1.1.parquet");
    let reader = CaptureReader::open(&path).expect("open fixture");
    assert_eq!(reader.num_rows(), 24);
    assert_eq!(reader.num_row_groups(), 2);
    let expected = CaptureMetadata {
        // The wall-clock time of the last journal frame, when the fixture was made.
        capture_end_ns: 1_795_763_322_574_478_578,
        counters: Counters {
            emitted: 24,
            ..synthetic_v1_1_metadata_expected().counters
        },
        ..synthetic_v1_1_metadata_expected()
    };
    assert_eq!(reader.metadata(), &expected);
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(events, synthetic_v1_1_expected()[..24]);

    let parquet =
        SerializedFileReader::new(std::fs::File::open(&path).expect("open")).expect("parquet");
    let sizes: Vec<i64> = parquet
        .metadata()
        .row_groups()
        .iter()
        .map(|rg| rg.num_rows())
        .collect();
    assert_eq!(sizes, [16, 8]);
    let column = parquet.metadata().row_group(0).column(0);
    assert_eq!(
        (column.column_index_offset(), column.offset_index_offset()),
        (None, None)
    );
}

/// The synthetic 1.2 fixture: the 1.1 rows with `path_lossy` set wherever `file_path` is, two
/// more start-snapshot lines (a file really named `x (deleted)`, a name that was not UTF-8), and
/// the 1.2 counter `follow_map_full`.
#[test]
fn synthetic_v1_2() {
    let path = fixture("synthetic-v1.2.parquet");
    let reader = CaptureReader::open(&path).expect("open fixture");
    assert_eq!((reader.num_rows(), reader.num_row_groups()), (33, 3));
    assert_eq!(reader.metadata(), &synthetic_v1_2_metadata_expected());
    let expected = synthetic_v1_2_expected();
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(events.len(), expected.len());
    for (i, (event, expected)) in events.iter().zip(&expected).enumerate() {
        assert_eq!(event, expected, "row {i}");
    }
    // Older fixtures read `path_lossy` as null and `follow_map_full` as 0.
    let old = CaptureReader::open(&fixture("synthetic-v1.1.parquet")).expect("open fixture");
    assert!(
        old.events()
            .expect("events")
            .all(|e| e.expect("decode").path_lossy.is_none())
    );
    assert_eq!(old.metadata().counters.follow_map_full, 0);
}

/// The metadata of the 1.2 fixture.
fn synthetic_v1_2_metadata_expected() -> CaptureMetadata {
    CaptureMetadata {
        format_version: FormatVersion { major: 1, minor: 2 },
        counters: Counters {
            emitted: 33,
            entry_map_full: 1,
            follow_map_full: 3,
            ..synthetic_v1_1_metadata_expected().counters
        },
        recovered: false,
        ..synthetic_v1_1_metadata_expected()
    }
}

/// The rows of the 1.2 fixture (the 1.3 fixture has the same).
fn synthetic_v1_2_expected() -> Vec<Event<'static>> {
    let mut expected = synthetic_v1_1_expected();
    for row in &mut expected {
        if row.file_path.is_some() {
            row.path_lossy = Some(false);
        }
    }
    let template = expected[3].clone();
    let line = |addr: u64, ino: u64, path: &'static str, name: &'static str, lossy: bool| Event {
        addr: Some(addr),
        len: Some(0x2000),
        off: Some(0),
        file_ino: Some(ino),
        file_path: Some(path.into()),
        file_name: Some(name.into()),
        file_deleted: Some(false),
        path_lossy: Some(lossy),
        ..template.clone()
    };
    expected.splice(
        12..12,
        [
            line(
                0x7f00_dead_0000,
                5001,
                "/opt/fixture/x (deleted)",
                "x (deleted)",
                false,
            ),
            line(
                0x7f00_dead_2000,
                5002,
                "/opt/fixture/caf\u{fffd}.dat",
                "caf\u{fffd}.dat",
                true,
            ),
        ],
    );
    expected
}

/// The synthetic 1.3 fixture: the rows of 1.2, and every 1.3 key set (made-up values: the file
/// calls itself both segment 1 of a capture and a redacted extract).
#[test]
fn synthetic_v1_3() {
    let path = fixture("synthetic-v1.3.parquet");
    let reader = CaptureReader::open(&path).expect("open fixture");
    assert_eq!((reader.num_rows(), reader.num_row_groups()), (33, 3));
    let v1_2 = synthetic_v1_2_metadata_expected();
    let expected_metadata = CaptureMetadata {
        format_version: FormatVersion { major: 1, minor: 3 },
        segment_index: Some(1),
        previous_segment: Some(SegmentLink {
            file: "mmap-20260101T000000-6d1f3c2a-000000.parquet".into(),
            segment_index: 0,
            sha256: "5f70bf18a086007016e948b04aed3b82103a36bea41755b6cddfaf10ace3c6ef".into(),
            bytes: 8192,
            rows: 33,
        }),
        redaction: Some(Redaction {
            method: "hmac-sha256".into(),
            key_id: "0123456789abcdef".into(),
            fields: [
                ("cgroups", "hash"),
                ("comm", "keep"),
                ("hostname", "hash"),
                ("ids", "keep"),
                ("inodes", "keep"),
                ("paths", "keep"),
            ]
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .into(),
            tool: "mmap-analyze 0.1.0".into(),
        }),
        provenance: vec![Derivation {
            operation: "extract".into(),
            tool: "mmap-analyze 0.1.0".into(),
            at: "2026-01-02T00:00:00Z".into(),
            parents: vec![ParentFile {
                file: "capture.parquet".into(),
                capture_id: v1_2.capture_id.clone(),
                segment_index: Some(0),
                sha256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855".into(),
                bytes: 16384,
                rows: 40,
            }],
            selection: vec!["--pid".into(), "4242".into()],
        }],
        read_with: Some("0.1.0".into()),
        ..v1_2
    };
    assert_eq!(reader.metadata(), &expected_metadata);
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode");
    assert_eq!(events, synthetic_v1_2_expected());
    // Older fixtures have none of the 1.3 keys.
    let old = CaptureReader::open(&fixture("synthetic-v1.2.parquet")).expect("open fixture");
    let old = old.metadata();
    assert_eq!(
        (
            &old.previous_segment,
            &old.redaction,
            old.provenance.len(),
            &old.read_with
        ),
        (&None, &None, 0, &None)
    );
}

#[test]
fn synthetic_v1_4() {
    let path = fixture("synthetic-v1.4.parquet");
    let reader = CaptureReader::open(&path).expect("open fixture");
    assert_eq!((reader.num_rows(), reader.num_row_groups()), (41, 3));
    let expected_metadata = CaptureMetadata {
        format_version: FormatVersion { major: 1, minor: 4 },
        stacks: Some(StacksConfig {
            mode: "fp".into(),
            syscalls: ["mmap", "munmap", "mprotect", "mremap", "brk"]
                .map(str::to_owned)
                .into(),
            max_frames: 127,
            stack_bytes: 0,
        }),
        read_with: Some("0.1.0".into()),
        ..synthetic_v1_2_metadata_expected()
    };
    assert_eq!(reader.metadata(), &expected_metadata);
    let events: Vec<Event<'static>> = reader
        .events()
        .expect("events")
        .collect::<Result<_, _>>()
        .expect("decode");
    // The 1.2 rows come first, unchanged but for the stack ids of the mmap calls of 4242.
    let v1_2 = synthetic_v1_2_expected();
    for (i, (event, old)) in events.iter().zip(&v1_2).enumerate() {
        let stack =
            (old.kind == RowKind::Syscall && old.syscall == Some(Syscall::Mmap) && old.pid == 4242)
                .then(|| if old.fd == Some(-1) { 1 } else { 2 });
        assert_eq!(event.stack_id, stack, "row {i}");
        assert_eq!(
            &Event {
                stack_id: None,
                ..event.clone()
            },
            old,
            "row {i}"
        );
    }
    let frames = &events[v1_2.len()..];
    assert_eq!(frames.len(), 8);
    let described: Vec<_> = frames
        .iter()
        .map(|f| {
            assert_eq!(f.kind, RowKind::Frame);
            assert_eq!(f.source.as_deref(), Some(sources::STACK_FP));
            (
                f.stack_id,
                f.frame_index,
                f.frame_function.as_deref(),
                f.frame_module.as_deref(),
                f.symbol_source.as_deref(),
            )
        })
        .collect();
    let libc = Some("/usr/lib/x86_64-linux-gnu/libc.so.6");
    let app = Some("/usr/bin/fixture-app");
    let named = Some(symbol_sources::MAP_FILES);
    assert_eq!(
        described,
        [
            (Some(1), Some(0), Some("mmap64"), libc, named),
            (Some(1), Some(1), Some("inner_mapper"), app, named),
            (Some(1), Some(2), Some("outer_mapper"), app, named),
            (Some(1), Some(3), Some("main"), app, named),
            (
                Some(1),
                Some(4),
                Some("__libc_start_call_main"),
                libc,
                named
            ),
            (Some(2), Some(0), Some("mmap64"), libc, named),
            (
                Some(2),
                Some(1),
                None,
                Some("/opt/fixture/x (deleted)"),
                None
            ),
            (Some(2), Some(2), None, None, None),
        ]
    );
    // A frame row takes its process and time from the first call with its stack.
    let first_call = events
        .iter()
        .find(|e| e.stack_id == Some(2) && e.kind == RowKind::Syscall)
        .expect("a call with stack 2");
    assert_eq!(
        (frames[5].ts_ns, frames[5].tid),
        (first_call.ts_ns, first_call.tid)
    );
    assert_eq!(frames[6].frame_offset, Some(0x410));
    assert_eq!(
        frames[6].frame_build_id.as_deref(),
        Some("feedfacefeedfacefeedfacefeedfacefeedface")
    );
    assert_eq!(
        (frames[1].frame_file.as_deref(), frames[1].frame_line),
        (Some("/src/fixture-app/main.c"), Some(12))
    );
    // Older fixtures have no stacks.
    let old = CaptureReader::open(&fixture("synthetic-v1.3.parquet")).expect("open fixture");
    assert_eq!(old.metadata().stacks, None);
}
