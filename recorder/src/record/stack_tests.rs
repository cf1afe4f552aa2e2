//! `record --stacks fp|dwarf` (and `--stacks-for`) through the whole recorder: the calls of a
//! short command get stack ids, the capture holds the frames of those stacks and says how they
//! were taken. (The named call chain is checked end to end in tests/.)
use std::{collections::BTreeSet, ffi::OsStr, path::Path};

use clap::Parser;
use mmap_format::{
    event::{Event, RowKind, Syscall},
    reader::CaptureReader,
};
use recorder_common::EventKind;

use super::{
    RecordArgs,
    config::{StackModeArg, stack_plan},
    run,
};

#[derive(Parser)]
struct Cli {
    #[command(flatten)]
    args: RecordArgs,
}

/// Records `sh -c 'ls / >/dev/null'` (the dynamic loader and ls map, protect and unmap) with
/// `options`, and returns the capture's rows and metadata.
fn record(
    options: &[&str],
    output: &Path,
) -> (Vec<Event<'static>>, mmap_format::metadata::CaptureMetadata) {
    let mut argv: Vec<&OsStr> = ["record", "-q", "--force", "-o"].map(OsStr::new).to_vec();
    argv.push(output.as_os_str());
    argv.extend(options.iter().map(OsStr::new));
    argv.extend(["--", "/bin/sh", "-c", "ls / >/dev/null"].map(OsStr::new));
    let args = Cli::try_parse_from(argv).expect("arguments").args;
    run(args).expect("recording");
    let reader = CaptureReader::open(output).expect("a complete capture");
    let meta = reader.metadata().clone();
    let rows = reader
        .events()
        .expect("rows")
        .map(|row| row.expect("row"))
        .collect();
    (rows, meta)
}

/// Every call in `calls` of the command has a stack id, the others none, and every id has its
/// frame rows (frame 0 first) in the capture, of the source of `mode`.
fn check(rows: &[Event<'_>], calls: &[Syscall], mode: &str) {
    let syscalls: Vec<&Event> = rows.iter().filter(|r| r.kind == RowKind::Syscall).collect();
    assert!(
        syscalls.len() >= 10,
        "the command made calls: {}",
        syscalls.len()
    );
    let mut used = BTreeSet::new();
    for row in &syscalls {
        let syscall = row.syscall.expect("a syscall row names its call");
        if calls.contains(&syscall) {
            let id = row
                .stack_id
                .unwrap_or_else(|| panic!("{mode}: a {syscall:?} row without a stack: {row:?}"));
            used.insert(id);
        } else {
            assert_eq!(
                row.stack_id, None,
                "{mode}: {syscall:?} is not in --stacks-for"
            );
        }
    }
    let source = format!("stack_{mode}");
    let mut framed = BTreeSet::new();
    for row in rows.iter().filter(|r| r.kind == RowKind::Frame) {
        assert_eq!(row.source.as_deref(), Some(source.as_str()));
        let id = row.stack_id.expect("a frame row has its stack id");
        if row.frame_index == Some(0) {
            assert!(row.frame_addr.is_some_and(|a| a != 0), "frame 0 has the ip");
            framed.insert(id);
        }
    }
    assert_eq!(
        used, framed,
        "{mode}: every stack used has its frames, and no other"
    );
}

fn skip_without_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: recording needs root");
        return true;
    }
    false
}

#[test]
#[ignore = "needs root"]
fn fp_stacks_give_every_call_a_stack_and_the_capture_its_frames() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("fp.parquet");
    let (rows, meta) = record(&["--stacks", "fp"], &path);
    let all = [
        Syscall::Mmap,
        Syscall::Munmap,
        Syscall::Mprotect,
        Syscall::Mremap,
        Syscall::Brk,
    ];
    check(&rows, &all, "fp");
    let stacks = meta.stacks.expect("the metadata says stacks were recorded");
    assert_eq!(stacks.mode, "fp");
    assert_eq!(
        stacks.syscalls,
        ["mmap", "munmap", "mprotect", "mremap", "brk"]
    );
    assert_eq!(stacks.max_frames, 127);
}

#[test]
#[ignore = "needs root"]
fn dwarf_stacks_for_mmap_only_leave_the_other_calls_without() {
    if skip_without_root() {
        return;
    }
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("dwarf.parquet");
    let options = [
        "--stacks",
        "dwarf",
        "--stacks-for",
        "mmap",
        "--stack-bytes",
        "4096",
    ];
    let (rows, meta) = record(&options, &path);
    check(&rows, &[Syscall::Mmap], "dwarf");
    let stacks = meta.stacks.expect("the metadata says stacks were recorded");
    assert_eq!(stacks.mode, "dwarf");
    assert_eq!(stacks.syscalls, ["mmap"]);
    assert_eq!(stacks.stack_bytes, 4096);
}

/// `--stacks` and its options, checked before any work (no root needed).
#[test]
fn stack_options_are_checked() {
    let parse = |extra: &[&str]| {
        let mut argv = vec!["record", "-o", "/nonexistent/x.parquet"];
        argv.extend(extra);
        Cli::try_parse_from(argv).map(|cli| cli.args)
    };
    let plan = |extra: &[&str]| stack_plan(&parse(extra).expect("parses"));
    let refused = |extra: &[&str]| format!("{:#}", plan(extra).expect_err("refused"));

    assert!(parse(&["--stacks", "frames"]).is_err());
    assert!(parse(&["--stacks", "fp", "--stacks-for", "mmap,read"]).is_err());
    assert_eq!(plan(&[]).expect("no stacks"), None);

    let fp = plan(&["--stacks", "fp"]).expect("valid").expect("stacks");
    assert_eq!(fp.mode, StackModeArg::Fp);
    assert_eq!(fp.syscalls.len(), 5, "all five calls by default");
    let dwarf = plan(&[
        "--stacks",
        "dwarf",
        "--stacks-for",
        "brk,mmap",
        "--stack-bytes",
        "2048",
    ])
    .expect("valid")
    .expect("stacks");
    // In the order of the kinds, whatever the order given.
    assert_eq!(dwarf.syscalls, [EventKind::Mmap, EventKind::Brk]);
    assert_eq!(dwarf.stack_bytes, 2048);
    assert_eq!(
        dwarf.syscall_bits(),
        1 << EventKind::Mmap as u32 | 1 << EventKind::Brk as u32
    );

    assert!(refused(&["--stacks", "fp", "--attach", "kprobe"]).contains("--attach tracepoint"));
    assert!(refused(&["--stacks", "dwarf", "--attach", "fentry"]).contains("--attach tracepoint"));
    assert!(refused(&["--stacks-for", "mmap"]).contains("need --stacks"));
    assert!(refused(&["--stacks", "fp", "--stack-bytes", "4096"]).contains("dwarf"));
    for bad in ["512", "16392", "4100"] {
        let err = refused(&["--stacks", "dwarf", "--stack-bytes", bad]);
        assert!(
            err.contains("multiple of 8 from 1024 to 16384"),
            "{bad}: {err}"
        );
    }
}
