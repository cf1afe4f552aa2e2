//! The committed fixtures: every future reader must read them, with exactly these contents.

use std::path::PathBuf;

use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, ClockAnchor, Counters, FormatVersion, Targets},
    names::{errno_name, makedev, map_flags_names, prot_names},
    reader::CaptureReader,
    schema::schema,
};

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
        },
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
