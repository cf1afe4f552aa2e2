//! Sample rows and metadata, and a raw Parquet writer for files the capture writer would not
//! write.

use std::{borrow::Cow, sync::Arc};

use arrow_array::RecordBatch;
use mmap_format::{
    event::{Event, RowKind, Syscall},
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
        });
    }
    // A row without a syscall.
    let mut no_syscall = full_event(9);
    no_syscall.syscall = None;
    events.push(no_syscall);
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
        },
        command_line: vec!["mmap-recorder".into(), "record".into(), "--all".into()],
        attach_mode: "tracepoint".into(),
        counters: Counters {
            emitted: 13,
            lost_ringbuf_full: 4,
            orphan_exits: 5,
            entry_map_full: 6,
            decode_errors: 7,
        },
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
