//! A format 1.1 capture with every row kind: snapshots, forks, execs, exits, lost records and all
//! five system calls.

use std::{borrow::Cow, path::PathBuf};

use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, Counters},
    names,
};

use super::{BASE_NS, MAP_ANONYMOUS, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, metadata};

pub const PROT_EXEC: u64 = 0x4;
pub const MREMAP_MAYMOVE: u64 = 0x1;

/// A row of `kind` at `BASE_NS + offset_ns` by `pid` (tid = pid) named `comm`.
pub fn row(kind: RowKind, offset_ns: i64, pid: u32, comm: &str) -> Event<'static> {
    Event {
        kind,
        ts_ns: BASE_NS + offset_ns,
        cpu: 1,
        pid,
        tid: pid,
        ppid: 1,
        uid: 1000,
        gid: 1000,
        comm: Cow::Owned(comm.to_owned()),
        cgroup_id: 4242,
        ..Default::default()
    }
}

/// A system call row that returns `ret` 500 ns after it entered.
pub fn call(syscall: Syscall, offset_ns: i64, pid: u32, comm: &str, ret: i64) -> Event<'static> {
    Event {
        syscall: Some(syscall),
        ts_exit_ns: Some(BASE_NS + offset_ns + 500),
        ret: Some(ret),
        source: Some(Cow::Borrowed("tracepoint")),
        ..row(RowKind::Syscall, offset_ns, pid, comm)
    }
}

/// An anonymous private read-write mmap of `len` bytes returning `ret`.
pub fn mmap_anon(offset_ns: i64, pid: u32, comm: &str, len: u64, ret: u64) -> Event<'static> {
    Event {
        addr: Some(0),
        len: Some(len),
        prot: Some(PROT_READ | PROT_WRITE),
        flags: Some(MAP_PRIVATE | MAP_ANONYMOUS),
        fd: Some(-1),
        off: Some(0),
        ..call(Syscall::Mmap, offset_ns, pid, comm, ret as i64)
    }
}

/// One /proc/PID/maps line read at `BASE_NS + offset_ns` from `source`.
#[expect(clippy::too_many_arguments, reason = "one argument per maps column")]
pub fn snapshot(
    offset_ns: i64,
    pid: u32,
    comm: &str,
    source: &'static str,
    range: (u64, u64),
    prot: u64,
    off: u64,
    file: Option<(&str, u64)>,
) -> Event<'static> {
    let (start, end) = range;
    let (path, ino) = match file {
        Some((path, ino)) => (Some(path), Some(ino)),
        None => (None, None),
    };
    let is_file = ino.is_some();
    Event {
        addr: Some(start),
        len: Some(end - start),
        prot: Some(prot),
        flags: Some(MAP_PRIVATE),
        off: Some(off),
        file_dev: is_file.then(|| names::makedev(8, 1)),
        file_ino: ino,
        file_path: path.map(|p| Cow::Owned(p.to_owned())),
        file_name: path
            .filter(|_| is_file)
            .and_then(|p| p.rsplit('/').next())
            .map(|n| Cow::Owned(n.to_owned())),
        file_deleted: Some(false),
        path_source: Some(Cow::Borrowed("proc_maps")),
        source: Some(Cow::Borrowed(source)),
        ..row(RowKind::Snapshot, offset_ns, pid, comm)
    }
}

pub const BIN_APP: u64 = 0x5555_5555_4000;
pub const HEAP: u64 = 0x5555_5555_8000;
pub const LD_SO: u64 = 0x7fff_f7fc_0000;
pub const STACK: u64 = 0x7fff_fffd_e000;
pub const ANON: u64 = 0x7f00_0000_0000;
pub const BLOB: u64 = 0x7f00_0001_0000;
pub const BLOB_MOVED: u64 = 0x7f00_0010_0000;
pub const LONER: u64 = 0x7e00_0000_0000;
pub const CHILD_BIN: u64 = 0x5600_0000_0000;
pub const CHILD_STACK: u64 = 0x7ffd_0000_0000;
pub const MEMFD: u64 = 0x7f10_0000_0000;

/// Capture C (format 1.1, host-c), 22 rows. Times are ns after `BASE_NS` (a call takes effect
/// 500 ns later, at its exit).
///
/// | +ns   | pid | kind / call | what |
/// |-------|-----|-------------|------|
/// | 100   | 500 | snapshot ×5 | proc_maps:start: /usr/bin/app r--p + r-xp (ino 100), [heap], ld.so (ino 200), [stack] |
/// | 500   | 700 | mmap        | 4 KiB anonymous at LONER (pid 700 has no snapshot) |
/// | 1000  | 500 | mmap        | tid 501: 8 KiB anonymous rw at ANON |
/// | 2000  | 500 | mmap        | 16 KiB of /data/blob.bin (ino 300), shared rw, at BLOB |
/// | 3000  | 500 | mprotect    | first page of ANON read-only |
/// | 3200  | 500 | mmap        | -ENOMEM |
/// | 4000  | 500 | mremap      | BLOB 16 KiB -> 32 KiB, MAYMOVE, moved to BLOB_MOVED |
/// | 5000  | 500 | brk(0)      | = HEAP + 0x21000 (the heap's end) |
/// | 5500  | 500 | brk         | HEAP + 0x42000, granted |
/// | 6500  | -   | lost        | cpu 2, until +7500, 17 records |
/// | 8000  | 500 | fork        | child 600 |
/// | 9000  | 600 | exec        | /usr/bin/child |
/// | 9100  | 600 | snapshot ×2 | proc_maps:exec: /usr/bin/child r-xp (ino 400), [stack] |
/// | 9500  | 600 | mmap        | 64 KiB of /memfd:jit (deleted, memfd), shared rw, at MEMFD |
/// | 11000 | 600 | exit        | exit status 1 |
/// | 12000 | 500 | munmap      | the first page of ld.so |
/// | 12500 | 500 | mprotect    | first page of ANON read-write again (merges back) |
pub fn events_c() -> Vec<Event<'static>> {
    let start = "proc_maps:start";
    let rw = PROT_READ | PROT_WRITE;
    let mut rows = vec![
        snapshot(
            100,
            500,
            "app",
            start,
            (BIN_APP, BIN_APP + 0x2000),
            PROT_READ,
            0,
            Some(("/usr/bin/app", 100)),
        ),
        snapshot(
            100,
            500,
            "app",
            start,
            (BIN_APP + 0x2000, HEAP),
            PROT_READ | PROT_EXEC,
            0x2000,
            Some(("/usr/bin/app", 100)),
        ),
        snapshot(100, 500, "app", start, (HEAP, HEAP + 0x21000), rw, 0, None),
        snapshot(
            100,
            500,
            "app",
            start,
            (LD_SO, LD_SO + 0x2000),
            PROT_READ,
            0,
            Some(("/usr/lib/ld.so", 200)),
        ),
        snapshot(
            100,
            500,
            "app",
            start,
            (STACK, 0x7fff_ffff_f000),
            rw,
            0,
            None,
        ),
    ];
    // The pseudo paths (no inode).
    rows[2].file_path = Some(Cow::Borrowed("[heap]"));
    rows[4].file_path = Some(Cow::Borrowed("[stack]"));

    rows.push(mmap_anon(500, 700, "loner", 4096, LONER));

    let mut anon = mmap_anon(1000, 500, "app-worker", 8192, ANON);
    anon.tid = 501;
    rows.push(anon);

    let mut blob = mmap_anon(2000, 500, "app", 16384, BLOB);
    blob.flags = Some(MAP_SHARED);
    blob.fd = Some(3);
    blob.file_dev = Some(names::makedev(8, 1));
    blob.file_ino = Some(300);
    blob.file_name = Some(Cow::Borrowed("blob.bin"));
    blob.file_path = Some(Cow::Borrowed("/data/blob.bin"));
    blob.path_source = Some(Cow::Borrowed("kernel_dentry_walk"));
    rows.push(blob);

    rows.push(Event {
        addr: Some(ANON),
        len: Some(4096),
        prot: Some(PROT_READ),
        ..call(Syscall::Mprotect, 3000, 500, "app", 0)
    });

    let mut failed = mmap_anon(3200, 500, "app", 1 << 40, 0);
    failed.ret = Some(-12);
    rows.push(failed);

    rows.push(Event {
        addr: Some(BLOB),
        len: Some(16384),
        new_len: Some(32768),
        flags: Some(MREMAP_MAYMOVE),
        new_addr: Some(0),
        ..call(Syscall::Mremap, 4000, 500, "app", BLOB_MOVED as i64)
    });
    rows.push(Event {
        addr: Some(0),
        ..call(Syscall::Brk, 5000, 500, "app", (HEAP + 0x21000) as i64)
    });
    rows.push(Event {
        addr: Some(HEAP + 0x42000),
        ..call(Syscall::Brk, 5500, 500, "app", (HEAP + 0x42000) as i64)
    });

    rows.push(Event {
        cpu: 2,
        ts_exit_ns: Some(BASE_NS + 7500),
        lost_count: Some(17),
        source: Some(Cow::Borrowed("kernel")),
        pid: 0,
        tid: 0,
        ppid: 0,
        uid: 0,
        gid: 0,
        cgroup_id: 0,
        comm: Cow::Borrowed(""),
        ..row(RowKind::Lost, 6500, 0, "")
    });

    rows.push(Event {
        child_pid: Some(600),
        ..row(RowKind::Fork, 8000, 500, "app")
    });
    rows.push(Event {
        file_path: Some(Cow::Borrowed("/usr/bin/child")),
        file_name: Some(Cow::Borrowed("child")),
        path_source: Some(Cow::Borrowed("exec_filename")),
        ppid: 500,
        ..row(RowKind::Exec, 9000, 600, "child")
    });
    let exec = "proc_maps:exec";
    rows.push(snapshot(
        9100,
        600,
        "child",
        exec,
        (CHILD_BIN, CHILD_BIN + 0x3000),
        PROT_READ | PROT_EXEC,
        0,
        Some(("/usr/bin/child", 400)),
    ));
    let mut stack = snapshot(
        9100,
        600,
        "child",
        exec,
        (CHILD_STACK, CHILD_STACK + 0x21000),
        rw,
        0,
        None,
    );
    stack.file_path = Some(Cow::Borrowed("[stack]"));
    rows.push(stack);

    let mut memfd = mmap_anon(9500, 600, "child", 65536, MEMFD);
    memfd.flags = Some(MAP_SHARED);
    memfd.fd = Some(5);
    memfd.file_dev = Some(names::makedev(0, 1));
    memfd.file_ino = Some(555);
    memfd.file_name = Some(Cow::Borrowed("memfd:jit"));
    memfd.file_path = Some(Cow::Borrowed("/memfd:jit"));
    memfd.file_memfd = Some(true);
    memfd.file_deleted = Some(true);
    rows.push(memfd);

    rows.push(Event {
        exit_code: Some(1 << 8),
        ..row(RowKind::Exit, 11000, 600, "child")
    });
    rows.push(Event {
        addr: Some(LD_SO),
        len: Some(4096),
        ..call(Syscall::Munmap, 12000, 500, "app", 0)
    });
    rows.push(Event {
        addr: Some(ANON),
        len: Some(4096),
        prot: Some(rw),
        ..call(Syscall::Mprotect, 12500, 500, "app", 0)
    });
    rows
}

/// Metadata of capture C: format 1.1 keys set, 17 records lost on the kernel side.
pub fn metadata_c() -> CaptureMetadata {
    let mut meta = metadata(
        "host-c",
        Counters {
            emitted: 22,
            lost_ringbuf_full: 17,
            ..Counters::default()
        },
    );
    meta.capture_id = Some("c0ffee00-0000-4000-8000-000000000001".to_owned());
    meta.segment_index = Some(0);
    meta.page_size = Some(4096);
    meta
}

/// A temporary directory with capture C as `c.parquet`.
pub struct FixtureC {
    pub dir: tempfile::TempDir,
    pub c: PathBuf,
}

impl FixtureC {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("create temp dir");
        let c = dir.path().join("c.parquet");
        super::write_capture(&c, &metadata_c(), &events_c());
        Self { dir, c }
    }
}
