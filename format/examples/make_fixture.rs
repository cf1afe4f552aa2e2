//! Writes the committed synthetic fixtures of `fixtures/v1/`.
//!
//! ```text
//! cargo run -p mmap-format --example make_fixture [OUTPUT]                # synthetic-v1.0.parquet
//! cargo run -p mmap-format --example make_fixture -- --v1.1 [OUTPUT]      # synthetic-v1.1.parquet
//! cargo run -p mmap-format --example make_fixture -- --recovered [OUTPUT] # recovered-v1.1.parquet
//! cargo run -p mmap-format --example make_fixture -- --v1.2 [OUTPUT]      # synthetic-v1.2.parquet
//! cargo run -p mmap-format --example make_fixture -- --v1.3 [OUTPUT]      # synthetic-v1.3.parquet
//! cargo run -p mmap-format --example make_fixture -- --v1.4 [OUTPUT]      # synthetic-v1.4.parquet
//! ```
//!
//! Every flag but `--v1.0` goes through the current writer, which writes the latest minor: each
//! committed file was made with the writer of its version, and the generator now writes the same
//! rows and metadata as a file of the latest minor, with today's encodings (the committed files,
//! not the generator, are the reference). Its tests (`cargo test -p mmap-format --example
//! make_fixture`, part of `cargo test`) check exactly that, and the 1.0 file byte for byte.
//!
//! Without a flag (or with `--v1.0`) it writes the 1.0 fixture, as it did when that was
//! committed, to this folder or to OUTPUT.
//!
//! Everything is fixed (no clock, no host, no randomness): the same code writes the same rows
//! and metadata; the one exception is the `capture_end` of the recovered fixture, which crash
//! recovery takes from the wall clock of the writer's last journal frame. The committed files
//! are never regenerated once released; `format/tests` asserts their contents so that every
//! future reader still reads them.
//!
//! The 1.0 fixture is reproduced byte for byte (with the crate versions of the time): the rows go
//! through the current writer and reader and are then written with the 1.0 columns, Parquet
//! settings and metadata of the 1.0 writer.
//!
//! `--recovered` writes the rows of the 1.1 fixture with a journaled writer, flushing after
//! rows 16 and 24, then "crashes" (the writer is leaked without `finish`, with 7 rows still
//! buffered, garbage after the data as from a half-written row group and a torn frame after the
//! journal) and completes the file with `recover`.

use std::{
    borrow::Cow,
    error::Error,
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
    sync::Arc,
};

use arrow_array::RecordBatch;
use mmap_format::{
    event::{Event, RowKind, Syscall, path_sources, sources, symbol_sources},
    journal::{self, journal_path},
    metadata::{
        CaptureMetadata, ClockAnchor, Counters, Derivation, FormatVersion, ParentFile, Redaction,
        SegmentLink, StacksConfig, Targets, keys,
    },
    names::makedev,
    reader::CaptureReader,
    recover::recover,
    schema::col,
    writer::{CaptureWriter, WriterConfig, created_by},
};
use parquet::{
    arrow::ArrowWriter,
    basic::{Compression, ZstdLevel},
    file::{
        metadata::KeyValue,
        properties::{EnabledStatistics, WriterProperties},
    },
    schema::types::ColumnPath,
};

/// 2026-01-01T00:00:00Z in ns since the Unix epoch.
const START_NS: i64 = 1_767_225_600_000_000_000;
/// CLOCK_BOOTTIME at START_NS: the machine had been up 1000 s.
const START_BOOT_NS: u64 = 1_000_000_000_000;

const PID: u32 = 4242;
const WORKER_TID: u32 = 4243;

struct Row {
    tid: u32,
    cpu: u32,
    addr: u64,
    len: u64,
    prot: u64,
    flags: u64,
    fd: i32,
    off: u64,
    ret: Option<i64>,
    file: Option<(u64, u64, &'static str)>,
}

fn rows() -> Vec<Row> {
    let libc = Some((makedev(259, 2), 1_048_577, "libc.so.6"));
    let data = Some((makedev(8, 1), 42, "data.bin"));
    let anon = |tid, cpu, len, prot, flags, ret| Row {
        tid,
        cpu,
        addr: 0,
        len,
        prot,
        flags,
        fd: -1,
        off: 0,
        ret,
        file: None,
    };
    vec![
        // MAP_PRIVATE|MAP_ANONYMOUS, PROT_READ|PROT_WRITE.
        anon(PID, 0, 8192, 0x3, 0x22, Some(0x7f3a_1c00_0000)),
        // ld.so maps libc: MAP_PRIVATE|MAP_DENYWRITE, PROT_READ.
        Row {
            tid: PID,
            cpu: 0,
            addr: 0,
            len: 0x1d_8000,
            prot: 0x1,
            flags: 0x802,
            fd: 3,
            off: 0,
            ret: Some(0x7f3a_1b00_0000),
            file: libc,
        },
        // Its text: MAP_PRIVATE|MAP_FIXED|MAP_DENYWRITE, PROT_READ|PROT_EXEC.
        Row {
            tid: PID,
            cpu: 1,
            addr: 0x7f3a_1b02_8000,
            len: 0x15_5000,
            prot: 0x5,
            flags: 0x812,
            fd: 3,
            off: 0x2_8000,
            ret: Some(0x7f3a_1b02_8000),
            file: libc,
        },
        // A bad fd: EBADF.
        Row {
            tid: PID,
            cpu: 1,
            addr: 0,
            len: 4096,
            prot: 0x1,
            flags: 0x01,
            fd: 99,
            off: 0,
            ret: Some(-9),
            file: None,
        },
        // The worker's stack: MAP_PRIVATE|MAP_ANONYMOUS|MAP_STACK, PROT_NONE.
        anon(
            WORKER_TID,
            2,
            8_392_704,
            0x0,
            0x2_0022,
            Some(0x7f3a_1a00_0000),
        ),
        // Length 0: EINVAL.
        anon(WORKER_TID, 2, 0, 0x3, 0x22, Some(-22)),
        // A shared file mapping: MAP_SHARED, PROT_READ|PROT_WRITE.
        Row {
            tid: WORKER_TID,
            cpu: 3,
            addr: 0,
            len: 65536,
            prot: 0x3,
            flags: 0x01,
            fd: 5,
            off: 4096,
            ret: Some(0x7f3a_1900_0000),
            file: data,
        },
        // MAP_PRIVATE|MAP_ANONYMOUS|MAP_POPULATE, 2 MiB.
        anon(PID, 0, 0x20_0000, 0x3, 0x8022, Some(0x7f3a_1800_0000)),
        // MAP_PRIVATE|MAP_ANONYMOUS|MAP_HUGETLB|MAP_HUGE_2MB without huge pages: ENOMEM.
        anon(PID, 0, 0x20_0000, 0x3, 0x4_0022 | (21 << 26), Some(-12)),
        // Still in progress when the recording stopped: no exit, no return value.
        anon(WORKER_TID, 3, 4096, 0x3, 0x22, None),
        // MAP_PRIVATE|MAP_ANONYMOUS|MAP_FIXED_NOREPLACE over an existing mapping: EEXIST.
        Row {
            tid: PID,
            cpu: 1,
            addr: 0x7f3a_1c00_0000,
            len: 4096,
            prot: 0x3,
            flags: 0x10_0022,
            fd: -1,
            off: 0,
            ret: Some(-17),
            file: None,
        },
        anon(PID, 0, 4096, 0x3, 0x22, Some(0x7f3a_1c00_2000)),
    ]
}

fn metadata(rows: u64) -> CaptureMetadata {
    CaptureMetadata {
        format_version: FormatVersion::CURRENT,
        recorder_version: "0.1.0".into(),
        hostname: "fixture-host".into(),
        kernel_release: "6.1.0-fixture".into(),
        boot_id: "00000000-0000-4000-8000-000000000001".into(),
        clock_anchors: vec![
            ClockAnchor {
                boot_ns: START_BOOT_NS,
                realtime_ns: START_NS,
                uncertainty_ns: 500,
            },
            ClockAnchor {
                boot_ns: START_BOOT_NS + 10_000_000_000,
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
            ..Targets::default()
        },
        command_line: vec![
            "mmap-recorder".into(),
            "record".into(),
            "-o".into(),
            "synthetic.parquet".into(),
            "--".into(),
            "/usr/bin/fixture-app".into(),
            "--demo".into(),
        ],
        attach_mode: "tracepoint".into(),
        counters: Counters {
            emitted: rows,
            lost_ringbuf_full: 0,
            orphan_exits: 1,
            entry_map_full: 0,
            decode_errors: 0,
            follow_map_full: 0,
        },
        // A 1.3 key: the 1.0 file has none.
        read_with: None,
        ..CaptureMetadata::default()
    }
}

/// The rows of the 1.0 fixture.
fn events_v1_0() -> Vec<Event<'static>> {
    (0_i64..)
        .zip(rows())
        .map(|(i, row)| {
            // One call per millisecond; each takes 2 µs plus 100 ns per row before it.
            let ts_ns = START_NS + i * 1_000_000;
            let (comm, tid) = if row.tid == PID {
                ("fixture-app", PID)
            } else {
                ("worker-1", WORKER_TID)
            };
            Event {
                kind: RowKind::Syscall,
                syscall: Some(Syscall::Mmap),
                ts_ns,
                ts_exit_ns: row.ret.map(|_| ts_ns + 2_000 + i * 100),
                cpu: row.cpu,
                pid: PID,
                tid,
                ppid: 4000,
                uid: 1000,
                gid: 1000,
                comm: Cow::Borrowed(comm),
                cgroup_id: 0x1234,
                addr: Some(row.addr),
                len: Some(row.len),
                prot: Some(row.prot),
                flags: Some(row.flags),
                fd: Some(row.fd),
                off: Some(row.off),
                ret: row.ret,
                file_dev: row.file.map(|(dev, _, _)| dev),
                file_ino: row.file.map(|(_, ino, _)| ino),
                file_name: row.file.map(|(_, _, name)| Cow::Borrowed(name)),
                ..Default::default()
            }
        })
        .collect()
}

/// Writes the 1.0 fixture as the 1.0 writer did: the 23 columns of 1.0, the same Parquet
/// settings, format_minor 0 and the 13 keys of 1.0.
fn write_v1_0(output: File) -> Result<u64, Box<dyn Error>> {
    let events = events_v1_0();
    let row_group_rows = 8;
    // Through the current writer and reader, into record batches...
    let mut writer = CaptureWriter::new(Vec::new(), WriterConfig::default())?;
    for event in &events {
        writer.push(event)?;
    }
    let rows = writer.rows_written();
    let bytes = writer.finish(&CaptureMetadata::default())?;
    let reader = CaptureReader::from_bytes(bytes)?;
    let batches = reader.batches()?.collect::<Result<Vec<_>, _>>()?;

    // ...then out with the 1.0 columns and the 1.0 writer's settings (format/src/writer.rs of
    // format 1.0): one row group per 8 rows, `ts`, `ts_exit` and `ret` PLAIN, the rest
    // dictionary encoded.
    let v1_0 = Arc::new(reader_schema_v1_0(&batches[0])?);
    let mut props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(3)?))
        .set_dictionary_enabled(true)
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(row_group_rows))
        .set_max_row_group_bytes(None)
        .set_created_by(created_by());
    for column in [col::TS, col::TS_EXIT, col::RET] {
        props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
    }
    let mut out = ArrowWriter::try_new(
        BufWriter::new(output),
        Arc::clone(&v1_0),
        Some(props.build()),
    )?;
    for batch in &batches {
        let columns = col::V1_0
            .iter()
            .map(|name| {
                batch
                    .column_by_name(name)
                    .cloned()
                    .ok_or_else(|| format!("no column {name}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let batch = RecordBatch::try_new(Arc::clone(&v1_0), columns)?;
        let mut start = 0;
        while start < batch.num_rows() {
            let len = row_group_rows.min(batch.num_rows() - start);
            out.write(&batch.slice(start, len))?;
            out.flush()?;
            start += len;
        }
    }
    let metadata = CaptureMetadata {
        format_version: FormatVersion { major: 1, minor: 0 },
        ..metadata(rows)
    };
    for (key, mut value) in metadata.to_key_values() {
        if key == keys::TARGETS {
            // The targets object of 1.0, without the fields 1.1 added.
            let targets = &metadata.targets;
            value = serde_json::to_string(&TargetsV1_0 {
                system_wide: targets.system_wide,
                pids: &targets.pids,
                command: targets.command.as_deref(),
            })?;
        }
        if key == keys::COUNTERS {
            // The counters object of 1.0, without the field 1.2 added.
            let c = &metadata.counters;
            value = serde_json::to_string(&CountersV1_1 {
                emitted: c.emitted,
                lost_ringbuf_full: c.lost_ringbuf_full,
                orphan_exits: c.orphan_exits,
                entry_map_full: c.entry_map_full,
                decode_errors: c.decode_errors,
            })?;
        }
        out.append_key_value_metadata(KeyValue::new(key, value));
    }
    out.into_inner()?.flush()?;
    Ok(rows)
}

/// `mmap_capture.counters` as formats 1.0 and 1.1 wrote it.
#[derive(serde::Serialize)]
struct CountersV1_1 {
    emitted: u64,
    lost_ringbuf_full: u64,
    orphan_exits: u64,
    entry_map_full: u64,
    decode_errors: u64,
}

/// `mmap_capture.targets` as format 1.0 wrote it.
#[derive(serde::Serialize)]
struct TargetsV1_0<'a> {
    system_wide: bool,
    pids: &'a [u32],
    command: Option<&'a [String]>,
}

fn reader_schema_v1_0(batch: &RecordBatch) -> Result<arrow_schema::Schema, Box<dyn Error>> {
    let schema = batch.schema();
    let fields = col::V1_0
        .iter()
        .map(|name| Ok(schema.field_with_name(name)?.clone()))
        .collect::<Result<Vec<_>, Box<dyn Error>>>()?;
    Ok(arrow_schema::Schema::new(fields))
}

// ---------------------------------------------------------------------------------------------
// Format 1.1

/// The child process: pid 4250 in the initial pid namespace, 1 inside its own.
const CHILD_PID: u32 = 4250;
/// Inode of the initial pid namespace (`readlink /proc/1/ns/pid`).
const INIT_PIDNS: u32 = 4_026_531_836;
/// Inode of the child's pid namespace.
const CHILD_PIDNS: u32 = 4_026_532_512;
const CGROUP_PATH: &str = "/user.slice/user-1000.slice/session-1.scope";
const CHILD_CGROUP_ID: u64 = 0x2345;
const CHILD_CGROUP_PATH: &str = "/system.slice/fixture-helper.service";

const LIBM_PATH: &str = "/usr/lib/x86_64-linux-gnu/libm.so.6";
const MEMFD_PATH: &str = "/memfd:fixture-shm";
const SCRATCH_PATH: &str = "/tmp/fixture-scratch.bin";
const HELPER_PATH: &str = "/usr/libexec/fixture-helper";

/// /proc/4242/maps at capture start.
const START_MAPS: &str = "\
55d4a0000000-55d4a0002000 r--p 00000000 103:02 1048600  /usr/bin/fixture-app
55d4a0002000-55d4a0005000 r-xp 00002000 103:02 1048600  /usr/bin/fixture-app
55d4a1a00000-55d4a1a21000 rw-p 00000000 00:00 0        [heap]
7f3a1b028000-7f3a1b1bd000 r-xp 00028000 103:02 1048577  /usr/lib/x86_64-linux-gnu/libc.so.6
7f3a1c800000-7f3a1c810000 rw-s 00000000 00:01 2050     /memfd:fixture-shm (deleted)
7f3a1c900000-7f3a1c910000 rw-s 00000000 08:01 99       /tmp/fixture-scratch.bin (deleted)
7f3a1d000000-7f3a1d100000 rw-p 00000000 00:00 0        [anon:fixture-arena]
7f3a1d200000-7f3a1d201000 ---p 00000000 00:00 0
7ffc80000000-7ffc80021000 rw-p 00000000 00:00 0        [stack]
7ffc80100000-7ffc80104000 r--p 00000000 00:00 0        [vvar]
7ffc80104000-7ffc80106000 r-xp 00000000 00:00 0        [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0 [vsyscall]
";

/// /proc/4250/maps after the helper's exec.
const EXEC_MAPS: &str = "\
560000000000-560000003000 r-xp 00000000 103:02 1049000  /usr/libexec/fixture-helper
7ffd10000000-7ffd10021000 rw-p 00000000 00:00 0        [stack]
";

/// The next whitespace-separated field of a maps line, and the rest.
fn field(line: &str) -> (&str, &str) {
    let line = line.trim_start();
    let end = line.find(' ').unwrap_or(line.len());
    (&line[..end], &line[end..])
}

fn hex(value: &str) -> Result<u64, Box<dyn Error>> {
    Ok(u64::from_str_radix(value, 16)?)
}

/// The snapshot rows of a maps text, as the recorder's parser makes them.
fn snapshot(
    base: &Event<'static>,
    maps: &'static str,
    source: &'static str,
) -> Result<Vec<Event<'static>>, Box<dyn Error>> {
    let mut rows = Vec::new();
    for line in maps.lines() {
        let (range, rest) = field(line);
        let (perms, rest) = field(rest);
        let (off, rest) = field(rest);
        let (dev, rest) = field(rest);
        let (ino, rest) = field(rest);
        let (start, end) = range.split_once('-').ok_or("no range")?;
        let (start, end) = (hex(start)?, hex(end)?);
        let (major, minor) = dev.split_once(':').ok_or("no device")?;
        let dev = makedev(
            u32::from_str_radix(major, 16)?,
            u32::from_str_radix(minor, 16)?,
        );
        let ino: u64 = ino.parse()?;
        let perms = perms.as_bytes();
        let prot = u64::from(perms[0] == b'r')
            | u64::from(perms[1] == b'w') << 1
            | u64::from(perms[2] == b'x') << 2;
        let pathname = rest.trim();
        let (path, deleted) = match pathname.strip_suffix(" (deleted)") {
            Some(path) => (path, true),
            None => (pathname, false),
        };
        let real_file = ino != 0;
        // The path columns are set when the line has a pathname (pseudo paths included).
        let has_path = !path.is_empty();
        rows.push(Event {
            kind: RowKind::Snapshot,
            syscall: None,
            ts_exit_ns: None,
            tid: base.pid,
            addr: Some(start),
            len: Some(end - start),
            prot: Some(prot),
            flags: Some(if perms[3] == b's' { 0x01 } else { 0x02 }),
            off: Some(hex(off)?),
            file_dev: real_file.then_some(dev),
            file_ino: real_file.then_some(ino),
            file_path: has_path.then_some(Cow::Borrowed(path)),
            file_name: real_file
                .then(|| path.rsplit('/').next())
                .flatten()
                .map(Cow::Borrowed),
            file_deleted: has_path.then_some(deleted),
            file_memfd: has_path.then(|| path.starts_with("/memfd:")),
            path_source: has_path.then_some(Cow::Borrowed(path_sources::PROC_MAPS)),
            source: Some(Cow::Borrowed(source)),
            ..base.clone()
        });
    }
    Ok(rows)
}

/// The rows of the 1.1 fixture: every row kind and syscall, snapshots with pseudo paths,
/// deleted and memfd files, a truncated path, a second pid namespace, a lost row.
fn events_v1_1() -> Result<Vec<Event<'static>>, Box<dyn Error>> {
    let memfd = (makedev(0, 1), 2050);
    let scratch = (makedev(8, 1), 99);

    let app_thread = Event {
        ts_ns: START_NS,
        cpu: 0,
        pid: PID,
        tid: PID,
        ppid: 4000,
        uid: 1000,
        gid: 1000,
        comm: Cow::Borrowed("fixture-app"),
        cgroup_id: 0x1234,
        source: Some(Cow::Borrowed(sources::TRACEPOINT)),
        cgroup_path: Some(Cow::Borrowed(CGROUP_PATH)),
        pidns_ino: Some(INIT_PIDNS),
        ns_pid: Some(PID),
        ns_tid: Some(PID),
        ..Default::default()
    };
    let helper_thread = Event {
        pid: CHILD_PID,
        tid: CHILD_PID,
        ppid: PID,
        comm: Cow::Borrowed("fixture-helper"),
        cgroup_id: CHILD_CGROUP_ID,
        cgroup_path: Some(Cow::Borrowed(CHILD_CGROUP_PATH)),
        pidns_ino: Some(CHILD_PIDNS),
        ns_pid: Some(1),
        ns_tid: Some(1),
        ..app_thread.clone()
    };
    let mut events = Vec::new();

    // The snapshot at capture start: /proc/4242/maps, read at START_NS.
    events.extend(snapshot(&app_thread, START_MAPS, sources::PROC_MAPS_START)?);

    // System calls, one per millisecond after the snapshot, each taking 2 µs.
    let mut ms = 0;
    let call = |ms: &mut i64, thread: &Event<'static>, syscall, event: Event<'static>| {
        *ms += 1;
        let ts_ns = START_NS + *ms * 1_000_000;
        Event {
            kind: RowKind::Syscall,
            syscall: Some(syscall),
            ts_ns,
            ts_exit_ns: Some(ts_ns + 2_000),
            ..event.with_thread(thread)
        }
    };
    let path = |path: &'static str, source: &'static str| Event {
        file_path: Some(Cow::Borrowed(path)),
        file_name: path.rsplit('/').next().map(Cow::Borrowed),
        path_source: Some(Cow::Borrowed(source)),
        path_truncated: Some(false),
        file_deleted: Some(false),
        file_memfd: Some(false),
        ..Default::default()
    };
    let t = &app_thread;
    // An anonymous mapping: no file columns.
    events.push(call(
        &mut ms,
        t,
        Syscall::Mmap,
        Event {
            addr: Some(0),
            len: Some(0x10_0000),
            prot: Some(0x3),
            flags: Some(0x22),
            fd: Some(-1),
            off: Some(0),
            ret: Some(0x7f3a_1e00_0000),
            ..Default::default()
        },
    ));
    // libm, its path walked in the kernel.
    events.push(call(
        &mut ms,
        t,
        Syscall::Mmap,
        Event {
            addr: Some(0),
            len: Some(0x10_a000),
            prot: Some(0x1),
            flags: Some(0x802),
            fd: Some(3),
            off: Some(0),
            ret: Some(0x7f3a_1a00_0000),
            file_dev: Some(makedev(259, 2)),
            file_ino: Some(1_048_590),
            ..path(LIBM_PATH, path_sources::KERNEL_DENTRY_WALK)
        },
    ));
    // A file too deep for the walk: the path is truncated.
    events.push(call(
        &mut ms,
        t,
        Syscall::Mmap,
        Event {
            addr: Some(0),
            len: Some(0x1000),
            prot: Some(0x1),
            flags: Some(0x01),
            fd: Some(4),
            off: Some(0),
            ret: Some(0x7f3a_19f0_0000),
            file_dev: Some(makedev(8, 1)),
            file_ino: Some(4242),
            path_truncated: Some(true),
            ..path(
                "…/very/deep/tree/data.bin",
                path_sources::KERNEL_DENTRY_WALK,
            )
        },
    ));
    // A memfd, resolved from /proc/PID/map_files after the call.
    events.push(call(
        &mut ms,
        t,
        Syscall::Mmap,
        Event {
            addr: Some(0),
            len: Some(0x1_0000),
            prot: Some(0x3),
            flags: Some(0x01),
            fd: Some(5),
            off: Some(0),
            ret: Some(0x7f3a_1c80_0000),
            file_dev: Some(memfd.0),
            file_ino: Some(memfd.1),
            file_deleted: Some(true),
            file_memfd: Some(true),
            file_name: Some(Cow::Borrowed("memfd:fixture-shm")),
            ..path(MEMFD_PATH, path_sources::PROC_MAP_FILES)
        },
    ));
    // A file unlinked while open, resolved from /proc/PID/fd/6.
    events.push(call(
        &mut ms,
        t,
        Syscall::Mmap,
        Event {
            addr: Some(0),
            len: Some(0x1_0000),
            prot: Some(0x3),
            flags: Some(0x01),
            fd: Some(6),
            off: Some(0),
            ret: Some(0x7f3a_1c90_0000),
            file_dev: Some(scratch.0),
            file_ino: Some(scratch.1),
            file_deleted: Some(true),
            ..path(SCRATCH_PATH, path_sources::PROC_FD)
        },
    ));
    // mprotect(addr, len, PROT_READ).
    events.push(call(
        &mut ms,
        t,
        Syscall::Mprotect,
        Event {
            addr: Some(0x7f3a_1e00_0000),
            len: Some(0x1000),
            prot: Some(0x1),
            ret: Some(0),
            ..Default::default()
        },
    ));
    // mremap(old, old_size, new_size, MREMAP_MAYMOVE, 0): moved.
    events.push(call(
        &mut ms,
        t,
        Syscall::Mremap,
        Event {
            addr: Some(0x7f3a_1e00_0000),
            len: Some(0x10_0000),
            new_len: Some(0x20_0000),
            flags: Some(0x1),
            new_addr: Some(0),
            ret: Some(0x7f3a_1800_0000),
            ..Default::default()
        },
    ));
    // mremap(old, old_size, new_size, MREMAP_MAYMOVE|MREMAP_FIXED, new): EINVAL (overlap).
    events.push(call(
        &mut ms,
        t,
        Syscall::Mremap,
        Event {
            addr: Some(0x7f3a_1800_0000),
            len: Some(0x20_0000),
            new_len: Some(0x20_0000),
            flags: Some(0x3),
            new_addr: Some(0x7f3a_1810_0000),
            ret: Some(-22),
            ..Default::default()
        },
    ));
    // munmap(addr, len).
    events.push(call(
        &mut ms,
        t,
        Syscall::Munmap,
        Event {
            addr: Some(0x7f3a_1800_0000),
            len: Some(0x20_0000),
            ret: Some(0),
            ..Default::default()
        },
    ));
    // brk(0) asks for the break; brk(new) moves it.
    events.push(call(
        &mut ms,
        t,
        Syscall::Brk,
        Event {
            addr: Some(0),
            ret: Some(0x55d4_a1a2_1000),
            ..Default::default()
        },
    ));
    events.push(call(
        &mut ms,
        t,
        Syscall::Brk,
        Event {
            addr: Some(0x55d4_a1a4_2000),
            ret: Some(0x55d4_a1a4_2000),
            ..Default::default()
        },
    ));

    // The app forks the helper, which execs in its own pid namespace and cgroup.
    ms += 1;
    events.push(Event {
        kind: RowKind::Fork,
        ts_ns: START_NS + ms * 1_000_000,
        child_pid: Some(CHILD_PID),
        ..app_thread.clone()
    });
    ms += 1;
    let exec_ts = START_NS + ms * 1_000_000;
    events.push(Event {
        kind: RowKind::Exec,
        ts_ns: exec_ts,
        cpu: 1,
        file_path: Some(Cow::Borrowed(HELPER_PATH)),
        file_name: Some(Cow::Borrowed("fixture-helper")),
        path_source: Some(Cow::Borrowed(path_sources::EXEC_FILENAME)),
        ..helper_thread.clone()
    });
    // The snapshot after the exec.
    let after_exec = Event {
        ts_ns: exec_ts + 50_000,
        cpu: 1,
        ..helper_thread.clone()
    };
    events.extend(snapshot(&after_exec, EXEC_MAPS, sources::PROC_MAPS_EXEC)?);
    let h = &Event {
        cpu: 1,
        ..helper_thread.clone()
    };
    // The helper fails to map 1 TiB: ENOMEM.
    events.push(call(
        &mut ms,
        h,
        Syscall::Mmap,
        Event {
            addr: Some(0),
            len: Some(1 << 40),
            prot: Some(0x3),
            flags: Some(0x22),
            fd: Some(-1),
            off: Some(0),
            ret: Some(-12),
            ..Default::default()
        },
    ));
    // CPU 2's ring buffer overflowed: 5 records lost over 3 ms.
    ms += 1;
    events.push(Event {
        kind: RowKind::Lost,
        ts_ns: START_NS + ms * 1_000_000,
        ts_exit_ns: Some(START_NS + ms * 1_000_000 + 3_000_000),
        cpu: 2,
        comm: Cow::Borrowed(""),
        lost_count: Some(5),
        source: Some(Cow::Borrowed(sources::KERNEL)),
        ..Default::default()
    });
    // The helper exits with status 3, then the app with 0.
    ms += 4;
    events.push(Event {
        kind: RowKind::Exit,
        ts_ns: START_NS + ms * 1_000_000,
        exit_code: Some(3 << 8),
        ..h.clone()
    });
    ms += 1;
    events.push(Event {
        kind: RowKind::Exit,
        ts_ns: START_NS + ms * 1_000_000,
        exit_code: Some(0),
        ..app_thread.clone()
    });
    Ok(events)
}

/// The thread columns of `thread` under this row's own columns.
trait WithThread {
    fn with_thread(self, thread: &Event<'static>) -> Event<'static>;
}

impl WithThread for Event<'static> {
    fn with_thread(self, thread: &Event<'static>) -> Event<'static> {
        Event {
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
            ..self
        }
    }
}

fn metadata_v1_1(rows: u64) -> CaptureMetadata {
    let v1_0 = metadata(rows);
    CaptureMetadata {
        format_version: FormatVersion::CURRENT,
        targets: Targets {
            comms: vec!["fixture-app".into()],
            cgroups: vec![CGROUP_PATH.into()],
            follow_forks: true,
            ..v1_0.targets.clone()
        },
        command_line: vec![
            "mmap-recorder".into(),
            "record".into(),
            "--follow-forks".into(),
            "-o".into(),
            "synthetic.parquet".into(),
            "--".into(),
            "/usr/bin/fixture-app".into(),
            "--demo".into(),
        ],
        counters: Counters {
            emitted: rows,
            lost_ringbuf_full: 5,
            orphan_exits: 1,
            entry_map_full: 0,
            decode_errors: 0,
            follow_map_full: 0,
        },
        capture_id: Some("6d1f3c2a-8b7e-4c1d-9e2f-0a1b2c3d4e5f".into()),
        segment_index: Some(0),
        page_size: Some(4096),
        recovered: true,
        ..v1_0
    }
}

/// The 1.2 rows: the 1.1 rows with `path_lossy` set wherever `file_path` is (as a 1.2 writer
/// does), and two more lines in the start snapshot: a file really named `x (deleted)`, and one
/// whose name was not UTF-8 (`caf\xff.dat`, stored lossily).
fn events_v1_2() -> Result<Vec<Event<'static>>, Box<dyn Error>> {
    let mut rows = events_v1_1()?;
    for row in &mut rows {
        if row.file_path.is_some() {
            row.path_lossy = Some(false);
        }
    }
    let template = rows[3].clone();
    let line = |addr: u64, ino: u64, path: &'static str, lossy: bool| Event {
        addr: Some(addr),
        len: Some(0x2000),
        off: Some(0),
        file_ino: Some(ino),
        file_path: Some(Cow::Borrowed(path)),
        file_name: path.rsplit('/').next().map(Cow::Borrowed),
        file_deleted: Some(false),
        path_lossy: Some(lossy),
        ..template.clone()
    };
    rows.splice(
        12..12,
        [
            line(0x7f00_dead_0000, 5001, "/opt/fixture/x (deleted)", false),
            line(0x7f00_dead_2000, 5002, "/opt/fixture/caf\u{fffd}.dat", true),
        ],
    );
    Ok(rows)
}

/// The 1.1 metadata with the 1.2 counter set, written by its writer (not recovered).
fn metadata_v1_2(rows: u64) -> CaptureMetadata {
    let v1_1 = metadata_v1_1(rows);
    CaptureMetadata {
        counters: Counters {
            entry_map_full: 1,
            follow_map_full: 3,
            ..v1_1.counters
        },
        recovered: false,
        ..v1_1
    }
}

/// 33 rows in three row groups (16 + 16 + 1, cut by size and by finish).
fn write_v1_2(output: File) -> Result<u64, Box<dyn Error>> {
    let config = WriterConfig {
        row_group_rows: 16,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(BufWriter::new(output), config)?;
    for event in &events_v1_2()? {
        writer.push(event)?;
    }
    let rows = writer.rows_written();
    let mut sink = writer.finish(&metadata_v1_2(rows))?;
    sink.flush()?;
    Ok(rows)
}

/// The 1.2 metadata with every 1.3 key set to made-up values: the file calls itself segment 1 of
/// its capture (with a link to a segment 0 that is not committed) and also a redacted extract, so
/// that one file shows every key; no real capture is both.
fn metadata_v1_3(rows: u64) -> CaptureMetadata {
    let v1_2 = metadata_v1_2(rows);
    CaptureMetadata {
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
    }
}

/// The 1.2 rows with the 1.3 metadata, 33 rows in three row groups as in 1.2.
fn write_v1_3(output: File) -> Result<u64, Box<dyn Error>> {
    let config = WriterConfig {
        row_group_rows: 16,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(BufWriter::new(output), config)?;
    for event in &events_v1_2()? {
        writer.push(event)?;
    }
    let rows = writer.rows_written();
    let mut sink = writer.finish(&metadata_v1_3(rows))?;
    sink.flush()?;
    Ok(rows)
}

/// Build ids of the fixture's made-up modules.
const APP_BUILD_ID: &str = "5a1b2c3d4e5f60718293a4b5c6d7e8f901234567";
const LIBC_BUILD_ID: &str = "0c0ffee0123456789abcdef0123456789abcdef0";

/// One frame: (address, module, build id, file offset, function, source file, line, how named).
type Frame = (
    u64,
    Option<&'static str>,
    Option<&'static str>,
    Option<u64>,
    Option<&'static str>,
    Option<&'static str>,
    Option<u32>,
    Option<&'static str>,
);

/// The fixture's two stacks, innermost frame first. Stack 1: `main` → `outer_mapper` →
/// `inner_mapper` → libc's `mmap`, named while the process lived, with source lines for the
/// program's frames. Stack 2: the same wrapper called from a frame of a module whose names were
/// not found (module, build id and offset kept), then an address in no module.
fn stacks_v1_4() -> [(u64, Vec<Frame>); 2] {
    const APP: &str = "/usr/bin/fixture-app";
    const LIBC: &str = "/usr/lib/x86_64-linux-gnu/libc.so.6";
    let libc = |addr: u64, off: u64, name: &'static str| -> Frame {
        (
            addr,
            Some(LIBC),
            Some(LIBC_BUILD_ID),
            Some(off),
            Some(name),
            None,
            None,
            Some(symbol_sources::MAP_FILES),
        )
    };
    let app = |addr: u64, off: u64, name: &'static str, line: u32| -> Frame {
        (
            addr,
            Some(APP),
            Some(APP_BUILD_ID),
            Some(off),
            Some(name),
            Some("/src/fixture-app/main.c"),
            Some(line),
            Some(symbol_sources::MAP_FILES),
        )
    };
    [
        (
            1,
            vec![
                libc(0x7f3a_1b11_8a2c, 0x118a2c, "mmap64"),
                app(0x55d4_a000_2190, 0x2190, "inner_mapper", 12),
                app(0x55d4_a000_21e4, 0x21e4, "outer_mapper", 19),
                app(0x55d4_a000_2231, 0x2231, "main", 31),
                libc(0x7f3a_1b02_9d68, 0x29d68, "__libc_start_call_main"),
            ],
        ),
        (
            2,
            vec![
                libc(0x7f3a_1b11_8a2c, 0x118a2c, "mmap64"),
                (
                    0x7f00_dead_0410,
                    Some("/opt/fixture/x (deleted)"),
                    Some("feedfacefeedfacefeedfacefeedfacefeedface"),
                    Some(0x410),
                    None,
                    None,
                    None,
                    None,
                ),
                (0x1234_5678, None, None, None, None, None, None, None),
            ],
        ),
    ]
}

/// The 1.2 rows with call stacks (1.4): the anonymous `mmap` calls of process 4242 have stack 1,
/// its file mappings stack 2; after them, the `frame` rows of both stacks (8 rows, required
/// columns from the first call of each stack). 41 rows, 1.2 metadata plus a `stacks` key.
fn events_v1_4() -> Result<Vec<Event<'static>>, Box<dyn Error>> {
    let mut rows = events_v1_2()?;
    let mut first: [Option<Event<'static>>; 2] = [None, None];
    for row in &mut rows {
        if row.kind == RowKind::Syscall && row.syscall == Some(Syscall::Mmap) && row.pid == PID {
            let stack = if row.fd == Some(-1) { 1 } else { 2 };
            row.stack_id = Some(stack);
            first[stack as usize - 1].get_or_insert_with(|| row.clone());
        }
    }
    for (id, frames) in stacks_v1_4() {
        let Some(call) = first[id as usize - 1].clone() else {
            return Err(format!("no call for stack {id}").into());
        };
        for (index, frame) in frames.into_iter().enumerate() {
            let (addr, module, build_id, offset, function, file, line, named) = frame;
            rows.push(Event {
                kind: RowKind::Frame,
                syscall: None,
                ts_ns: call.ts_ns,
                cpu: call.cpu,
                pid: call.pid,
                tid: call.tid,
                ppid: call.ppid,
                uid: call.uid,
                gid: call.gid,
                comm: call.comm.clone(),
                cgroup_id: call.cgroup_id,
                cgroup_path: call.cgroup_path.clone(),
                pidns_ino: call.pidns_ino,
                ns_pid: call.ns_pid,
                ns_tid: call.ns_tid,
                source: Some(Cow::Borrowed(sources::STACK_FP)),
                stack_id: Some(id),
                frame_index: Some(index as u32),
                frame_addr: Some(addr),
                frame_module: module.map(Cow::Borrowed),
                frame_build_id: build_id.map(Cow::Borrowed),
                frame_offset: offset,
                frame_function: function.map(Cow::Borrowed),
                frame_file: file.map(Cow::Borrowed),
                frame_line: line,
                symbol_source: named.map(Cow::Borrowed),
                ..Default::default()
            });
        }
    }
    Ok(rows)
}

fn metadata_v1_4(rows: u64) -> CaptureMetadata {
    CaptureMetadata {
        stacks: Some(StacksConfig {
            mode: "fp".into(),
            syscalls: ["mmap", "munmap", "mprotect", "mremap", "brk"]
                .map(str::to_owned)
                .into(),
            max_frames: 127,
            stack_bytes: 0,
        }),
        // Written by default since 1.3 (the 1.0-1.2 fixtures have no such key).
        read_with: Some("0.1.0".into()),
        ..metadata_v1_2(rows)
    }
}

/// The 1.4 rows in three row groups (16 + 16 + 9).
fn write_v1_4(output: File) -> Result<u64, Box<dyn Error>> {
    let config = WriterConfig {
        row_group_rows: 16,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(BufWriter::new(output), config)?;
    let events = events_v1_4()?;
    for event in &events {
        writer.push(event)?;
    }
    // The recorder counts records from the kernel as emitted; frame rows are not records.
    let records = events.iter().filter(|e| e.kind != RowKind::Frame).count();
    let mut sink = writer.finish(&metadata_v1_4(records as u64))?;
    sink.flush()?;
    Ok(events.len() as u64)
}

fn write_v1_1(output: File) -> Result<u64, Box<dyn Error>> {
    let config = WriterConfig {
        // Three row groups (16 + 8 + 7 rows), cut by size, by a flush and by finish.
        row_group_rows: 16,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(BufWriter::new(output), config)?;
    for (i, event) in events_v1_1()?.iter().enumerate() {
        writer.push(event)?;
        if i == 23 {
            writer.flush()?;
        }
    }
    let rows = writer.rows_written();
    let mut sink = writer.finish(&metadata_v1_1(rows))?;
    sink.flush()?;
    Ok(rows)
}

/// Writes the 1.1 rows with a journaled writer, crashes, recovers.
fn write_recovered(output: &std::path::Path) -> Result<u64, Box<dyn Error>> {
    let config = WriterConfig {
        row_group_rows: 16,
        zstd_level: 3,
    };
    let (file, journal) = journal::create(output)?;
    let mut writer = CaptureWriter::with_journal(file, journal, config, &metadata_v1_1(0))?;
    for (i, event) in events_v1_1()?.iter().enumerate() {
        writer.push(event)?;
        if i == 15 || i == 23 {
            let rows = writer.rows_written();
            writer.set_metadata(&CaptureMetadata {
                recovered: false,
                capture_end_ns: 0,
                ..metadata_v1_1(rows)
            });
            writer.flush()?;
        }
    }
    // The crash: no finish, the last 7 rows only in memory.
    std::mem::forget(writer);
    let append = |path: &std::path::Path, bytes: &[u8]| -> std::io::Result<()> {
        std::fs::OpenOptions::new()
            .append(true)
            .open(path)?
            .write_all(bytes)
    };
    append(output, &[0x5a; 1000])?;
    append(&journal_path(output), b"JFRM\x00\x10")?;
    let recovered = recover(output)?;
    println!(
        "recovered {} rows in {} row groups, dropped {} bytes",
        recovered.rows, recovered.row_groups, recovered.bytes_dropped
    );
    Ok(recovered.rows)
}

fn main() -> Result<(), Box<dyn Error>> {
    let mut args: Vec<_> = std::env::args_os().skip(1).collect();
    let mode = match args.first().and_then(|a| a.to_str()) {
        Some(flag @ ("--v1.0" | "--v1.1" | "--v1.2" | "--v1.3" | "--v1.4" | "--recovered")) => {
            let flag = flag.to_owned();
            args.remove(0);
            flag
        }
        _ => "--v1.0".to_owned(),
    };
    let default = match mode.as_str() {
        "--v1.1" => "synthetic-v1.1.parquet",
        "--v1.2" => "synthetic-v1.2.parquet",
        "--v1.3" => "synthetic-v1.3.parquet",
        "--v1.4" => "synthetic-v1.4.parquet",
        "--recovered" => "recovered-v1.1.parquet",
        _ => "synthetic-v1.0.parquet",
    };
    let output = args.into_iter().next().map_or_else(
        || {
            PathBuf::from(env!("CARGO_MANIFEST_DIR"))
                .join("../fixtures/v1")
                .join(default)
        },
        PathBuf::from,
    );
    let rows = if mode == "--recovered" {
        write_recovered(&output)?
    } else {
        let file = File::create(&output).map_err(|e| format!("{}: {e}", output.display()))?;
        if mode == "--v1.1" {
            write_v1_1(file)?
        } else if mode == "--v1.2" {
            write_v1_2(file)?
        } else if mode == "--v1.3" {
            write_v1_3(file)?
        } else if mode == "--v1.4" {
            write_v1_4(file)?
        } else {
            write_v1_0(file)?
        }
    };
    let output = output.canonicalize().unwrap_or(output);
    println!("wrote {rows} rows to {}", output.display());
    Ok(())
}

/// `cargo test` runs these (`test = true` for this example in format/Cargo.toml): the generator
/// still writes what is committed, so a fixture of a new minor version made with it describes
/// the files it claims to.
#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn committed(name: &str) -> PathBuf {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../fixtures/v1")
            .join(name)
    }

    fn events(path: &Path) -> Vec<Event<'static>> {
        CaptureReader::open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .events()
            .expect("events")
            .collect::<Result<_, _>>()
            .expect("decode")
    }

    fn metadata(path: &Path) -> CaptureMetadata {
        CaptureReader::open(path)
            .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
            .metadata()
            .clone()
    }

    /// One of the `write_v1_*` functions.
    type Write = fn(File) -> Result<u64, Box<dyn Error>>;

    /// Writes `name` with `write` into a temporary folder and returns its path.
    fn generate(dir: &tempfile::TempDir, name: &str, write: Write) -> PathBuf {
        let path = dir.path().join(name);
        write(File::create(&path).expect("create")).expect("write the fixture");
        path
    }

    #[test]
    fn the_1_0_fixture_is_written_byte_for_byte() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = generate(&dir, "synthetic-v1.0.parquet", write_v1_0);
        let want = std::fs::read(committed("synthetic-v1.0.parquet")).expect("committed");
        let got = std::fs::read(&ours).expect("generated");
        assert!(
            got == want,
            "make_fixture's 1.0 output ({} bytes) differs from the committed file ({} bytes)",
            got.len(),
            want.len()
        );
    }

    /// Every fixture after 1.0 goes through the current writer, which writes the latest minor
    /// (the module's comment) with the encodings of today: the rows must be the committed ones,
    /// and the metadata too, but for the version, and for the recovered file the end of the
    /// capture (crash recovery takes it from the wall clock).
    #[test]
    fn the_later_fixtures_have_the_committed_rows_and_metadata() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut written = Vec::new();
        let writers: [(&str, Write, u32); 4] = [
            ("synthetic-v1.1.parquet", write_v1_1, 1),
            ("synthetic-v1.2.parquet", write_v1_2, 2),
            ("synthetic-v1.3.parquet", write_v1_3, 3),
            ("synthetic-v1.4.parquet", write_v1_4, 4),
        ];
        for (name, write, minor) in writers {
            written.push((generate(&dir, name, write), name, minor));
        }
        let recovered = dir.path().join("recovered-v1.1.parquet");
        write_recovered(&recovered).expect("write the recovered fixture");
        written.push((recovered, "recovered-v1.1.parquet", 1));
        for (ours, name, minor) in written {
            let want = committed(name);
            assert_eq!(events(&ours), events(&want), "{name}: rows");
            let (got, want) = (metadata(&ours), metadata(&want));
            assert_eq!(got.format_version, FormatVersion::CURRENT, "{name}");
            assert_eq!(
                want.format_version,
                FormatVersion { major: 1, minor },
                "{name}"
            );
            let end = if name.starts_with("recovered") {
                want.capture_end_ns
            } else {
                got.capture_end_ns
            };
            let got = CaptureMetadata {
                format_version: want.format_version,
                capture_end_ns: end,
                ..got
            };
            assert_eq!(got, want, "{name}: metadata");
        }
    }
}
