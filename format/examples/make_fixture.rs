//! Writes the committed synthetic fixture `fixtures/v1/synthetic-v1.0.parquet`.
//!
//! ```text
//! cargo run -p mmap-format --example make_fixture [OUTPUT]
//! ```
//!
//! Everything is fixed (no clock, no host, no randomness): the same code writes the same rows
//! and metadata. The committed file is never regenerated once released; `format/tests` asserts
//! its contents so that every future reader still reads it.

use std::{
    borrow::Cow,
    error::Error,
    fs::File,
    io::{BufWriter, Write},
    path::PathBuf,
};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, ClockAnchor, Counters, FormatVersion, Targets},
    names::makedev,
    writer::{CaptureWriter, WriterConfig},
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
        },
    }
}

fn main() -> Result<(), Box<dyn Error>> {
    let output = std::env::args_os().nth(1).map_or_else(
        || PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../fixtures/v1/synthetic-v1.0.parquet"),
        PathBuf::from,
    );
    let file = File::create(&output).map_err(|e| format!("{}: {e}", output.display()))?;
    let config = WriterConfig {
        // Two row groups (8 + 4 rows), so that readers of the fixture meet more than one.
        row_group_rows: 8,
        zstd_level: 3,
    };
    let mut writer = CaptureWriter::new(BufWriter::new(file), config)?;
    for (i, row) in (0_i64..).zip(rows()) {
        // One call per millisecond; each takes 2 µs plus 100 ns per row before it.
        let ts_ns = START_NS + i * 1_000_000;
        let (comm, tid) = if row.tid == PID {
            ("fixture-app", PID)
        } else {
            ("worker-1", WORKER_TID)
        };
        writer.push(&Event {
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
        })?;
    }
    let rows = writer.rows_written();
    let mut sink = writer.finish(&metadata(rows))?;
    sink.flush()?;
    let output = output.canonicalize().unwrap_or(output);
    println!("wrote {rows} rows to {}", output.display());
    Ok(())
}
