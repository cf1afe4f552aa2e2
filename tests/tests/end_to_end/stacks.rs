//! Call stacks for real (issue 14): `tests/workloads/stackchain.c` calls mmap through a known chain
//! (main -> mmapcap_outer -> mmapcap_inner -> the C library's wrapper), built with and without
//! frame pointers; recorded with `--stacks fp` (frame-pointer build) and `--stacks dwarf` (both
//! builds). After the recording the workload's binary is deleted, and the capture alone must name
//! the whole chain for every call: in the rows (frame rows joined on `stack_id`) and in
//! `mmap-analyze stacks --format folded`.
//!
//! These tests load eBPF programs: they are ignored without root, and as root (CI,
//! `--include-ignored`) any failure fails them.
use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    process::Command,
};

use mmap_capture_tests::{analyze, read_capture, require_root, workspace_bin};
use mmap_format::event::{Event, RowKind, Syscall};

/// Calls the workload makes through the chain.
const CALLS: usize = 200;
/// The length the chain maps (`mmapcap_outer(13 pages)` asks `mmapcap_inner` for twice that).
const CHAIN_LEN: u64 = 26 * 4096;
/// Names glibc gives its mmap wrapper (one function, three symbols).
const WRAPPERS: [&str; 3] = ["mmap", "mmap64", "__mmap"];

/// Compiles the workload into `dir` with or without frame pointers; returns the binary.
fn build(dir: &Path, frame_pointers: bool) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("workloads/stackchain.c");
    let name = if frame_pointers {
        "stackchain-fp"
    } else {
        "stackchain-nofp"
    };
    let binary = dir.join(name);
    let fp = if frame_pointers {
        "-fno-omit-frame-pointer"
    } else {
        "-fomit-frame-pointer"
    };
    let out = Command::new("cc")
        .args(["-O2", "-g", fp, "-o"])
        .arg(&binary)
        .arg(&source)
        .output()
        .expect("run cc (the C compiler the Rust toolchain links with)");
    assert!(
        out.status.success(),
        "cc {}: {}",
        source.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    binary
}

/// Records the workload with `--stacks MODE`, then deletes its binary; returns the capture.
fn record(dir: &Path, frame_pointers: bool, mode: &str) -> PathBuf {
    let bin_dir = dir.join("bin");
    std::fs::create_dir_all(&bin_dir).expect("mkdir bin");
    let binary = build(&bin_dir, frame_pointers);
    let capture = dir.join(format!("stacks-{mode}.parquet"));
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "--stacks", mode, "-o"])
        .arg(&capture)
        .arg("--")
        .arg(&binary)
        .arg(CALLS.to_string())
        .output()
        .expect("run mmap-recorder");
    assert!(
        out.status.success(),
        "recording with --stacks {mode}: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    // The capture must not need the binary any more.
    std::fs::remove_dir_all(&bin_dir).expect("delete the workload binary");
    capture
}

/// The frames of each stack of `pid`, innermost first.
fn frames_by_stack<'a>(
    events: &'a [Event<'static>],
    pid: u32,
) -> BTreeMap<u64, Vec<&'a Event<'static>>> {
    let mut stacks: BTreeMap<u64, Vec<&Event<'static>>> = BTreeMap::new();
    for event in events
        .iter()
        .filter(|e| e.kind == RowKind::Frame && e.pid == pid)
    {
        let id = event.stack_id.expect("a frame row has a stack_id");
        stacks.entry(id).or_default().push(event);
    }
    for frames in stacks.values_mut() {
        frames.sort_by_key(|f| f.frame_index);
    }
    stacks
}

/// Checks the rows and the folded output of one recording.
fn check(capture: &Path, mode: &str) {
    let (meta, events) = read_capture(capture);
    let stacks = meta
        .stacks
        .as_ref()
        .expect("the capture says it has stacks");
    assert_eq!(stacks.mode, mode);

    // The workload's process: the one whose exec'd file is the workload.
    let pid = events
        .iter()
        .find(|e| {
            e.kind == RowKind::Exec
                && e.file_path
                    .as_deref()
                    .is_some_and(|p| p.contains("stackchain"))
        })
        .map(|e| e.pid)
        .expect("the workload's exec row");
    let frames = frames_by_stack(&events, pid);
    let chain_calls: Vec<&Event<'static>> = events
        .iter()
        .filter(|e| {
            e.kind == RowKind::Syscall
                && e.pid == pid
                && e.syscall == Some(Syscall::Mmap)
                && e.len == Some(CHAIN_LEN)
                && e.fd == Some(-1)
        })
        .collect();
    assert_eq!(chain_calls.len(), CALLS, "the workload's mmap calls");
    for call in &chain_calls {
        let id = call
            .stack_id
            .unwrap_or_else(|| panic!("--stacks {mode}: a call without a stack: {call:?}"));
        let stack = frames
            .get(&id)
            .unwrap_or_else(|| panic!("--stacks {mode}: stack {id} has no frame rows"));
        let names: Vec<&str> = stack
            .iter()
            .map(|f| f.frame_function.as_deref().unwrap_or("?"))
            .collect();
        assert!(
            names.len() >= 4
                && WRAPPERS.contains(&names[0])
                && names[1..4] == ["mmapcap_inner", "mmapcap_outer", "main"],
            "--stacks {mode}: stack {id} is {names:?}, not the wrapper, mmapcap_inner, \
             mmapcap_outer, main"
        );
        // The program's frames were named from the binary, with source lines (it has -g),
        // while it existed; the row says how.
        for frame in &stack[1..4] {
            assert!(
                frame.frame_module.as_deref().is_some_and(
                    |m| m.ends_with("/stackchain-fp") || m.ends_with("/stackchain-nofp")
                ),
                "{frame:?}"
            );
            assert!(
                frame
                    .frame_build_id
                    .as_deref()
                    .is_some_and(|b| b.len() >= 16),
                "{frame:?}"
            );
            assert!(
                frame
                    .frame_file
                    .as_deref()
                    .is_some_and(|f| f.ends_with("stackchain.c")),
                "{frame:?}"
            );
            assert!(frame.frame_line.is_some_and(|l| l > 0), "{frame:?}");
            assert!(
                matches!(frame.symbol_source.as_deref(), Some("map_files" | "path")),
                "{frame:?}"
            );
        }
    }

    // The folded output names the whole chain, root first, with every call counted once.
    let out = analyze([
        "stacks".as_ref(),
        capture.as_os_str(),
        "--pid".as_ref(),
        pid.to_string().as_ref(),
        "--syscall".as_ref(),
        "mmap".as_ref(),
        "--format".as_ref(),
        "folded".as_ref(),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "mmap-analyze stacks: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let chain: Vec<(&str, u64)> = stdout
        .lines()
        .filter(|l| l.contains("mmapcap_inner"))
        .map(|l| {
            let (stack, count) = l.rsplit_once(' ').expect("folded: STACK COUNT");
            (stack, count.parse().expect("a count"))
        })
        .collect();
    let total: u64 = chain.iter().map(|(_, n)| n).sum();
    assert_eq!(total, CALLS as u64, "folded lines:\n{stdout}");
    for (stack, _) in &chain {
        assert!(
            WRAPPERS
                .iter()
                .any(|w| stack.ends_with(&format!("main;mmapcap_outer;mmapcap_inner;{w}"))),
            "--stacks {mode}: folded stack {stack}"
        );
    }
}

#[test]
#[ignore = "needs root"]
fn stacks_fp_name_the_chain_of_a_frame_pointer_build() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = record(dir.path(), true, "fp");
    check(&capture, "fp");
}

#[test]
#[ignore = "needs root"]
fn stacks_dwarf_name_the_chain_of_a_frame_pointer_build() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = record(dir.path(), true, "dwarf");
    check(&capture, "dwarf");
}

#[test]
#[ignore = "needs root"]
fn stacks_dwarf_name_the_chain_of_a_build_without_frame_pointers() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let capture = record(dir.path(), false, "dwarf");
    check(&capture, "dwarf");
}
