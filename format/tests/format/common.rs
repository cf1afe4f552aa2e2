//! Sample rows and metadata, and a raw Parquet writer for files the capture writer would not
//! write.

use std::{borrow::Cow, sync::Arc};

use arrow_array::RecordBatch;
use mmap_format::{
    event::{Event, RowKind, Syscall, path_sources, sources},
    metadata::{CaptureMetadata, ClockAnchor, Counters, FormatVersion, Targets},
    reader::CaptureReader,
    writer::{CaptureWriter, WriterConfig},
};
use parquet::{arrow::ArrowWriter, file::metadata::KeyValue};

/// A row with every nullable column set.
pub fn full_event(i: u32) -> Event<'static> {
    let ts = 1_767_225_600_000_000_000 + i64::from(i) * 1_000;
    Event {
        kind: RowKind::Syscall,
        syscall: Some(Syscall::Mmap),
        ts_ns: ts,
        ts_exit_ns: Some(ts + 500),
        cpu: i % 4,
        pid: 100 + i % 3,
        tid: 1000 + i,
        ppid: 1,
        uid: 1000,
        gid: 100,
        comm: Cow::Owned(format!("comm-{}", i % 5)),
        cgroup_id: 0xabc,
        addr: Some(0x7f00_0000_0000 + u64::from(i) * 4096),
        len: Some(4096 * u64::from(i + 1)),
        prot: Some(3),
        flags: Some(0x02),
        fd: Some(3),
        off: Some(u64::from(i) * 4096),
        ret: Some(0x7f00_0000_0000 + i64::from(i) * 4096),
        file_dev: Some(0x10302),
        file_ino: Some(u64::from(i) + 7),
        file_name: Some(Cow::Owned(format!("file-{}.so", i % 7))),
        source: Some(Cow::Borrowed(sources::TRACEPOINT)),
        new_addr: Some(0x7e00_0000_0000 + u64::from(i)),
        new_len: Some(8192 * u64::from(i + 1)),
        child_pid: Some(5000 + i),
        exit_code: Some(i32::try_from(i).expect("small") << 8),
        file_path: Some(Cow::Owned(format!("/usr/lib/file-{}.so", i % 7))),
        path_source: Some(Cow::Borrowed(path_sources::KERNEL_DENTRY_WALK)),
        path_truncated: Some(i.is_multiple_of(2)),
        file_deleted: Some(i.is_multiple_of(3)),
        file_memfd: Some(false),
        cgroup_path: Some(Cow::Borrowed("/system.slice/test.service")),
        pidns_ino: Some(4_026_531_836),
        ns_pid: Some(1 + i % 3),
        ns_tid: Some(1 + i),
        lost_count: Some(u64::from(i) * 3),
        path_lossy: Some(i.is_multiple_of(5)),
        stack_id: Some(u64::from(i % 4)),
        frame_index: Some(i % 9),
        frame_addr: Some(0x55d4_a000_2000 + u64::from(i)),
        frame_module: Some(Cow::Owned(format!("/usr/bin/app-{}", i % 2))),
        frame_build_id: Some(Cow::Borrowed("5a1b2c3d4e5f60718293a4b5c6d7e8f901234567")),
        frame_offset: Some(0x2000 + u64::from(i)),
        frame_function: Some(Cow::Owned(format!("fn_{}", i % 6))),
        frame_file: Some(Cow::Borrowed("/src/main.c")),
        frame_line: Some(10 + i),
        symbol_source: Some(Cow::Borrowed("map_files")),
    }
}

/// Rows covering every column, the extremes of every type, nulls and errors.
pub fn sample_events() -> Vec<Event<'static>> {
    let mut events = vec![full_event(0)];
    // Extremes.
    events.push(Event {
        kind: RowKind::Syscall,
        syscall: Some(Syscall::Brk),
        ts_ns: i64::MIN,
        ts_exit_ns: Some(i64::MAX),
        cpu: u32::MAX,
        pid: u32::MAX,
        tid: u32::MAX,
        ppid: u32::MAX,
        uid: u32::MAX,
        gid: u32::MAX,
        comm: Cow::Borrowed(""),
        cgroup_id: u64::MAX,
        addr: Some(u64::MAX),
        len: Some(u64::MAX),
        prot: Some(u64::MAX),
        flags: Some(u64::MAX),
        fd: Some(i32::MIN),
        off: Some(u64::MAX),
        ret: Some(i64::MAX),
        file_dev: Some(u64::MAX),
        file_ino: Some(u64::MAX),
        file_name: Some(Cow::Borrowed("")),
        source: Some(Cow::Borrowed("")),
        new_addr: Some(u64::MAX),
        new_len: Some(u64::MAX),
        child_pid: Some(u32::MAX),
        exit_code: Some(i32::MIN),
        file_path: Some(Cow::Borrowed("")),
        path_source: Some(Cow::Borrowed("")),
        path_truncated: Some(true),
        file_deleted: Some(true),
        file_memfd: Some(true),
        cgroup_path: Some(Cow::Borrowed("")),
        pidns_ino: Some(u32::MAX),
        ns_pid: Some(u32::MAX),
        ns_tid: Some(u32::MAX),
        lost_count: Some(u64::MAX),
        path_lossy: Some(true),
        stack_id: Some(u64::MAX),
        frame_index: Some(u32::MAX),
        frame_addr: Some(u64::MAX),
        frame_module: Some(Cow::Borrowed("")),
        frame_build_id: Some(Cow::Borrowed("")),
        frame_offset: Some(u64::MAX),
        frame_function: Some(Cow::Borrowed("")),
        frame_file: Some(Cow::Borrowed("")),
        frame_line: Some(u32::MAX),
        symbol_source: Some(Cow::Borrowed("")),
    });
    // Every nullable column null; the other syscalls.
    for syscall in [Syscall::Munmap, Syscall::Mremap, Syscall::Mprotect] {
        events.push(Event {
            kind: RowKind::Syscall,
            syscall: Some(syscall),
            ts_ns: 0,
            ts_exit_ns: None,
            cpu: 0,
            pid: 0,
            tid: 0,
            ppid: 0,
            uid: 0,
            gid: 0,
            comm: Cow::Borrowed("näme with ünïcode ✓"),
            cgroup_id: 0,
            addr: None,
            len: None,
            prot: None,
            flags: None,
            fd: None,
            off: None,
            ret: None,
            file_dev: None,
            file_ino: None,
            file_name: None,
            ..Default::default()
        });
    }
    // A row without a syscall.
    let mut no_syscall = full_event(9);
    no_syscall.syscall = None;
    events.push(no_syscall);
    // The row kinds of 1.1, as the recorder fills them.
    events.extend(v1_1_kind_events());
    // Errors, and the edges of the errno range.
    for ret in [-1, -9, -22, -4095, -4096, i64::MIN, 0] {
        let mut event = full_event(20);
        event.ret = Some(ret);
        event.fd = Some(-1);
        event.file_name = None;
        events.push(event);
    }
    events
}

/// One row of every 1.1 row kind and syscall, with the columns docs/FORMAT.md says each fills.
pub fn v1_1_kind_events() -> Vec<Event<'static>> {
    let base = Event {
        ts_ns: 1_767_225_700_000_000_000,
        cpu: 1,
        pid: 300,
        tid: 301,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: Cow::Borrowed("app"),
        cgroup_id: 77,
        source: Some(Cow::Borrowed(sources::FENTRY)),
        cgroup_path: Some(Cow::Borrowed("/user.slice")),
        pidns_ino: Some(4_026_531_836),
        ns_pid: Some(300),
        ns_tid: Some(301),
        ..Default::default()
    };
    let syscall = |syscall| Event {
        kind: RowKind::Syscall,
        syscall: Some(syscall),
        ts_exit_ns: Some(base.ts_ns + 900),
        ..base.clone()
    };
    vec![
        Event {
            addr: Some(0x7f00_0000_0000),
            len: Some(4096),
            ret: Some(0),
            ..syscall(Syscall::Munmap)
        },
        Event {
            addr: Some(0x7f00_0000_0000),
            len: Some(4096),
            prot: Some(1),
            ret: Some(-12),
            ..syscall(Syscall::Mprotect)
        },
        Event {
            addr: Some(0x7f00_0000_0000),
            len: Some(4096),
            new_len: Some(8192),
            flags: Some(1),
            new_addr: Some(0),
            ret: Some(0x7f00_0001_0000),
            ..syscall(Syscall::Mremap)
        },
        Event {
            addr: Some(0x5555_5560_0000),
            ret: Some(0x5555_5560_0000),
            ..syscall(Syscall::Brk)
        },
        Event {
            kind: RowKind::Snapshot,
            source: Some(Cow::Borrowed(sources::PROC_MAPS_START)),
            tid: base.pid,
            addr: Some(0x7ffd_0000_0000),
            len: Some(0x2_1000),
            prot: Some(3),
            flags: Some(2),
            off: Some(0),
            file_path: Some(Cow::Borrowed("[stack]")),
            path_source: Some(Cow::Borrowed(path_sources::PROC_MAPS)),
            file_deleted: Some(false),
            ..base.clone()
        },
        Event {
            kind: RowKind::Fork,
            child_pid: Some(302),
            ..base.clone()
        },
        Event {
            kind: RowKind::Exec,
            file_path: Some(Cow::Borrowed("/usr/bin/true")),
            file_name: Some(Cow::Borrowed("true")),
            path_source: Some(Cow::Borrowed(path_sources::EXEC_FILENAME)),
            ..base.clone()
        },
        Event {
            kind: RowKind::Exit,
            exit_code: Some(256),
            ..base.clone()
        },
        Event {
            kind: RowKind::Lost,
            ts_exit_ns: Some(base.ts_ns + 5_000),
            cpu: 1,
            lost_count: Some(17),
            source: Some(Cow::Borrowed(sources::KERNEL)),
            ..Default::default()
        },
    ]
}

pub fn sample_metadata() -> CaptureMetadata {
    CaptureMetadata {
        format_version: FormatVersion::CURRENT,
        recorder_version: "0.1.0-test".into(),
        hostname: "test-host".into(),
        kernel_release: "6.12.0-test".into(),
        boot_id: "4b8cd2e4-1f3c-4f53-9d7e-2f4b8a9d3c11".into(),
        clock_anchors: vec![ClockAnchor {
            boot_ns: 12_345_678_901,
            realtime_ns: 1_767_225_600_000_000_000,
            uncertainty_ns: 321,
        }],
        capture_start_ns: 1_767_225_600_123_456_789,
        capture_end_ns: 1_767_225_660_987_654_321,
        targets: Targets {
            system_wide: true,
            pids: vec![1, 2, 3],
            command: None,
            comms: vec!["nginx".into(), "postgres".into()],
            cgroups: vec!["/system.slice/nginx.service".into()],
            follow_forks: true,
        },
        command_line: vec!["mmap-recorder".into(), "record".into(), "--all".into()],
        attach_mode: "tracepoint".into(),
        counters: Counters {
            emitted: 13,
            lost_ringbuf_full: 4,
            orphan_exits: 5,
            entry_map_full: 6,
            decode_errors: 7,
            follow_map_full: 8,
        },
        capture_id: Some("5f0c2a9e-3b1d-4e8f-a7c6-0d9e8f7a6b5c".into()),
        segment_index: Some(2),
        page_size: Some(4096),
        recovered: false,
        ..Default::default()
    }
}

/// Writes `events` with the capture writer into memory.
pub fn write_capture(
    events: &[Event<'_>],
    config: WriterConfig,
    metadata: &CaptureMetadata,
) -> Vec<u8> {
    let mut writer = CaptureWriter::new(Vec::new(), config).expect("create writer");
    for event in events {
        writer.push(event).expect("push");
    }
    writer.finish(metadata).expect("finish")
}

/// Reads every event back.
pub fn read_events(reader: &CaptureReader) -> Vec<Event<'static>> {
    reader
        .events()
        .expect("events")
        .collect::<Result<Vec<_>, _>>()
        .expect("decode events")
}

/// Writes `batch` as a plain Parquet file with the given key-value metadata.
pub fn write_raw(batch: &RecordBatch, kv: &[(String, String)]) -> Vec<u8> {
    let mut writer =
        ArrowWriter::try_new(Vec::new(), Arc::clone(&batch.schema()), None).expect("raw writer");
    writer.write(batch).expect("raw write");
    for (key, value) in kv {
        writer.append_key_value_metadata(KeyValue::new(key.clone(), value.clone()));
    }
    writer.into_inner().expect("raw close")
}

/// A Python with pyarrow: MMAP_FORMAT_PYTHON, else MMAP_CAPTURE_PYTHON (what `make test`
/// exports), else python3; None (the test is skipped) when it cannot import pyarrow. Under
/// `make test` (MMAP_CAPTURE_PYTHON set) or in CI, a missing pyarrow fails the test instead: the
/// set-up installs it, so its absence there is a fault, not a reason to skip.
pub fn pyarrow_python() -> Option<String> {
    let python = std::env::var("MMAP_FORMAT_PYTHON")
        .or_else(|_| std::env::var("MMAP_CAPTURE_PYTHON"))
        .unwrap_or_else(|_| "python3".to_owned());
    let ok = std::process::Command::new(&python)
        .args(["-c", "import pyarrow.parquet"])
        .output()
        .is_ok_and(|out| out.status.success());
    if ok {
        Some(python)
    } else if std::env::var_os("MMAP_CAPTURE_PYTHON").is_some() || std::env::var_os("CI").is_some()
    {
        panic!("{python} cannot import pyarrow, which `make test` installs");
    } else {
        eprintln!(
            "skipped: {python} cannot import pyarrow (set MMAP_FORMAT_PYTHON or \
             MMAP_CAPTURE_PYTHON)"
        );
        None
    }
}
