//! Capture D: a recording to a directory in three segments, with a shell that ran before the
//! capture started and has no snapshot.

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, Counters},
};

use super::{
    BASE_NS, metadata,
    v11::{PROT_EXEC, call, mmap_anon, row, snapshot},
    write_capture,
};

pub const CAPTURE_ID: &str = "d0d0d0d0-0000-4000-8000-000000000002";
/// Each segment spans 10 ms: segment i is `[BASE_NS + i * SEGMENT_NS, BASE_NS + (i + 1) * SEGMENT_NS)`.
pub const SEGMENT_NS: i64 = 10_000_000;

/// The shell: it predates the capture, and no snapshot of it was taken.
pub const BASH: u32 = 800;
pub const LS: u32 = 801;
pub const TOOL: u32 = 802;
pub const BASH_ANON1: u64 = 0x7f20_0000_0000;
pub const BASH_ANON2: u64 = 0x7f20_0001_0000;
pub const TOOL_BIN: u64 = 0x5700_0000_0000;

/// The rows of segment `index` (times are ns after `BASE_NS`):
///
/// | segment | +ns        | pid | row |
/// |---------|------------|-----|-----|
/// | 0       | 1000       | 800 | fork: child 801 (the shell's first row) |
/// | 0       | 2000       | 801 | exec /usr/bin/ls, snapshot at 2100, exit at 5000 |
/// | 0       | 3000       | 800 | mmap 4 KiB anonymous at BASH_ANON1 |
/// | 1       | 11_000_000 | 800 | fork: child 802; exec /usr/bin/tool at 11_500_000, snapshot at 11_600_000 |
/// | 1       | 12_000_000 | 800 | mmap 8 KiB anonymous at BASH_ANON2 |
/// | 2       | 22_000_000 | 800 | munmap BASH_ANON1 |
pub fn segment_rows(index: u32) -> Vec<Event<'static>> {
    match index {
        0 => vec![
            Event {
                child_pid: Some(LS),
                ..row(RowKind::Fork, 1000, BASH, "bash")
            },
            exec(2000, LS, "ls", "/usr/bin/ls"),
            snapshot(
                2100,
                LS,
                "ls",
                "proc_maps:exec",
                (0x5600_0000_0000, 0x5600_0000_2000),
                PROT_EXEC | 1,
                0,
                Some(("/usr/bin/ls", 900)),
            ),
            mmap_anon(3000, BASH, "bash", 4096, BASH_ANON1),
            Event {
                exit_code: Some(0),
                ..row(RowKind::Exit, 5000, LS, "ls")
            },
        ],
        1 => vec![
            Event {
                child_pid: Some(TOOL),
                ..row(RowKind::Fork, 11_000_000, BASH, "bash")
            },
            exec(11_500_000, TOOL, "tool", "/usr/bin/tool"),
            snapshot(
                11_600_000,
                TOOL,
                "tool",
                "proc_maps:exec",
                (TOOL_BIN, TOOL_BIN + 0x1000),
                PROT_EXEC | 1,
                0,
                Some(("/usr/bin/tool", 901)),
            ),
            mmap_anon(12_000_000, BASH, "bash", 8192, BASH_ANON2),
        ],
        _ => vec![Event {
            addr: Some(BASH_ANON1),
            len: Some(4096),
            ..call(Syscall::Munmap, 22_000_000, BASH, "bash", 0)
        }],
    }
}

fn exec(offset_ns: i64, pid: u32, comm: &str, path: &'static str) -> Event<'static> {
    Event {
        file_path: Some(Cow::Borrowed(path)),
        path_source: Some(Cow::Borrowed("exec_filename")),
        ppid: BASH,
        ..row(RowKind::Exec, offset_ns, pid, comm)
    }
}

/// The metadata of segment `index`.
pub fn segment_metadata(index: u32) -> CaptureMetadata {
    let mut meta = metadata("host-d", Counters::default());
    meta.capture_id = Some(CAPTURE_ID.to_owned());
    meta.segment_index = Some(index);
    meta.page_size = Some(4096);
    meta.capture_start_ns = BASE_NS + i64::from(index) * SEGMENT_NS;
    meta.capture_end_ns = meta.capture_start_ns + SEGMENT_NS;
    meta
}

/// The name the recorder gives segment `index` of capture D.
pub fn segment_name(index: u32) -> String {
    format!("mmap-20261127T060113Z-d0d0d0d0-{index:05}.parquet")
}

/// Writes the segments `indices` of capture D into `dir`; returns their paths.
pub fn write_segments(dir: &Path, indices: &[u32]) -> Vec<PathBuf> {
    indices
        .iter()
        .map(|&index| {
            let path = dir.join(segment_name(index));
            write_capture(&path, &segment_metadata(index), &segment_rows(index));
            path
        })
        .collect()
}
