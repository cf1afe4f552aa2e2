//! Shared pieces of the end-to-end tests: the report the `mmap-workload` program writes, and
//! helpers to find and run the workspace's binaries.
use std::path::PathBuf;

use mmap_format::{event::Event, metadata::CaptureMetadata};
use serde::{Deserialize, Serialize};

/// A file-backed mapping's identity as `fstat` saw it in the workload.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct FileId {
    pub dev: u64,
    pub ino: u64,
    pub name: String,
}

/// One mmap call the workload made, with its own clock readings around it.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Call {
    pub label: String,
    pub tid: u32,
    pub addr: u64,
    pub len: u64,
    pub prot: u64,
    pub flags: u64,
    pub fd: i32,
    pub off: u64,
    /// What the call returned: an address, or -errno.
    pub ret: i64,
    pub errno: Option<i32>,
    pub file: Option<FileId>,
    /// CLOCK_REALTIME (ns since the epoch) just before and just after the call.
    pub before_ns: i64,
    pub after_ns: i64,
}

/// Everything the workload did.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Report {
    pub pid: u32,
    pub calls: Vec<Call>,
}

/// Path of a binary built from this workspace, next to the running test executable
/// (target/<profile>/deps/test-xxxx -> target/<profile>/NAME).
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is not built; run the tests through `make test` or `cargo test --workspace`",
        path.display()
    );
    path
}

fn matches_call(ev: &Event<'_>, call: &Call) -> bool {
    ev.tid == call.tid
        && ev.len == Some(call.len)
        && ev.addr == Some(call.addr)
        && ev.prot == Some(call.prot)
        && ev.flags == Some(call.flags)
        && ev.fd == Some(call.fd)
        && ev.off == Some(call.off)
}

/// Checks a capture of `mmap-workload` against its report: every reported call is in `events`
/// exactly once, with the right thread, arguments, result, errno, file identity, and times inside
/// the workload's own clock readings (allowing only the clock anchor's uncertainty); only the
/// workload is in the capture; nothing was lost.
pub fn check_workload_capture(meta: &CaptureMetadata, events: &[Event<'_>], report: &Report) {
    assert_eq!(meta.counters.lost(), 0, "records lost: {:?}", meta.counters);
    assert_eq!(meta.counters.orphan_exits, 0, "{:?}", meta.counters);
    assert_eq!(
        meta.counters.emitted,
        events.len() as u64,
        "emitted vs written"
    );
    assert!(
        events.iter().all(|e| e.pid == report.pid),
        "only the workload is recorded"
    );

    let slack = meta.clock_anchors[0].uncertainty_ns as i64 + 1_000;
    let main_tid = report.pid;
    for call in &report.calls {
        let found: Vec<&Event<'_>> = events.iter().filter(|e| matches_call(e, call)).collect();
        assert_eq!(
            found.len(),
            1,
            "{}: {} matching rows",
            call.label,
            found.len()
        );
        let ev = found[0];
        assert_eq!(ev.ret, Some(call.ret), "{}: ret", call.label);
        assert_eq!(ev.errno(), call.errno, "{}: errno", call.label);
        assert_eq!(ev.comm, "mmap-workload", "{}: comm", call.label);
        let ts_exit = ev.ts_exit_ns.expect("ts_exit");
        assert!(
            call.before_ns - slack <= ev.ts_ns
                && ev.ts_ns <= ts_exit
                && ts_exit <= call.after_ns + slack,
            "{}: times {}..{} outside the workload's {}..{} (slack {slack})",
            call.label,
            ev.ts_ns,
            ts_exit,
            call.before_ns,
            call.after_ns
        );
        match &call.file {
            Some(file) => {
                assert_eq!(ev.file_dev, Some(file.dev), "{}: dev", call.label);
                assert_eq!(ev.file_ino, Some(file.ino), "{}: ino", call.label);
                assert_eq!(
                    ev.file_name.as_deref(),
                    Some(file.name.as_str()),
                    "{}",
                    call.label
                );
            }
            None => {
                assert_eq!(ev.file_ino, None, "{}: no file expected", call.label);
                assert_eq!(ev.file_name, None, "{}: no file expected", call.label);
            }
        }
        if call.label.starts_with("thread-") {
            assert_ne!(ev.tid, main_tid, "{}: second thread", call.label);
        } else {
            assert_eq!(ev.tid, main_tid, "{}: main thread", call.label);
        }
    }
}
