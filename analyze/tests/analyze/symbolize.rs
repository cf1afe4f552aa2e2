//! `mmap-analyze symbolize`: frames without a name get one from an ELF file found by build id in
//! a debug directory (the `.build-id` layout, or a walk of the directory that follows no link out
//! of it); `extract --pid` keeps the frames of the stacks its calls use.

use std::{
    borrow::Cow,
    path::{Path, PathBuf},
    process::Command,
};

use mmap_format::{
    event::{Event, RowKind},
    reader::CaptureReader,
};
use object::{Object as _, ObjectSegment as _, ObjectSymbol as _};
use serde_json::Value;

use crate::common::{metadata, mmap, run, run_ok};

const PROGRAM: &str = r#"
#include <stdio.h>
__attribute__((noinline)) int distinctive_inner(int x) { return x * 3 + 1; }
__attribute__((noinline)) int distinctive_outer(int x) { return distinctive_inner(x) + 2; }
int main(int argc, char **argv) { (void)argv; printf("%d\n", distinctive_outer(argc)); return 0; }
"#;

/// A build id that no file has.
const UNKNOWN_ID: &str = "0123456789abcdef0123456789abcdef01234567";

/// A program compiled with `cc -g` in `dir`: its path, build id, and the file offsets of its
/// functions `distinctive_inner` and `distinctive_outer`.
struct Program {
    path: PathBuf,
    build_id: String,
    inner: u64,
    outer: u64,
}

fn compile(dir: &Path) -> Program {
    let source = dir.join("prog.c");
    std::fs::write(&source, PROGRAM).expect("write the program");
    let path = dir.join("prog");
    let status = Command::new("cc")
        .args(["-g", "-O1", "-fno-inline", "-Wl,--build-id=sha1", "-o"])
        .arg(&path)
        .arg(&source)
        .status()
        .expect("run cc");
    assert!(status.success(), "cc failed");
    let bytes = std::fs::read(&path).expect("read the program");
    let elf = object::File::parse(&*bytes).expect("an ELF file");
    let build_id = hex::encode(elf.build_id().expect("readable").expect("a build id"));
    let offset_of = |name: &str| {
        let symbol = elf
            .symbols()
            .find(|s| s.name() == Ok(name))
            .unwrap_or_else(|| panic!("symbol {name}"));
        let addr = symbol.address();
        let segment = elf
            .segments()
            .find(|s| s.address() <= addr && addr < s.address() + s.size())
            .expect("a segment holds it");
        let (file_start, _) = segment.file_range();
        addr - segment.address() + file_start
    };
    Program {
        build_id,
        inner: offset_of("distinctive_inner"),
        outer: offset_of("distinctive_outer"),
        path,
    }
}

/// A frame row of stack `stack`, as the recorder writes one it could not name.
fn frame(stack: u64, index: u32, pid: u32, build_id: &str, offset: u64) -> Event<'static> {
    let mut row = mmap(1_000, pid, pid, "prog");
    row.kind = RowKind::Frame;
    row.syscall = None;
    row.ts_exit_ns = None;
    row.addr = None;
    row.len = None;
    row.prot = None;
    row.flags = None;
    row.fd = None;
    row.off = None;
    row.ret = None;
    row.source = Some(Cow::Borrowed("stack_fp"));
    row.stack_id = Some(stack);
    row.frame_index = Some(index);
    row.frame_addr = Some(0x5555_0000_0000 + offset);
    row.frame_module = Some(Cow::Borrowed("/tmp/gone/prog"));
    row.frame_build_id = Some(Cow::Owned(build_id.to_owned()));
    row.frame_offset = Some(offset);
    row
}

/// A successful mmap of pid `pid` with stack `stack`.
fn call(offset_ns: i64, pid: u32, stack: u64) -> Event<'static> {
    let mut row = mmap(offset_ns, pid, pid, "prog");
    row.stack_id = Some(stack);
    row
}

/// Stack 1 (pid 100): inner (the syscall site, offset inside it), outer (a return address just
/// after a call in it), a frame of an unknown build id, and a frame named at recording time.
/// Stack 2 (pid 200): one frame of inner. Stack 3: used by pid 100 first, then by pid 200.
fn capture(path: &Path, p: &Program) {
    let mut named = frame(1, 3, 100, &p.build_id, 0x10);
    named.frame_function = Some(Cow::Borrowed("main"));
    named.symbol_source = Some(Cow::Borrowed("map_files"));
    let rows = vec![
        call(1_000, 100, 1),
        frame(1, 0, 100, &p.build_id, p.inner + 4),
        frame(1, 1, 100, &p.build_id, p.outer + 5),
        frame(1, 2, 100, UNKNOWN_ID, 0x20),
        named,
        call(2_000, 200, 2),
        frame(2, 0, 200, &p.build_id, p.inner + 2),
        call(3_000, 100, 3),
        frame(3, 0, 100, &p.build_id, p.outer + 1),
        call(4_000, 200, 3),
    ];
    crate::common::write_capture(path, &metadata("host", Default::default()), &rows);
}

fn frames_of(path: &Path) -> Vec<Event<'static>> {
    let mut frames: Vec<Event<'static>> = CaptureReader::open(path)
        .expect("open")
        .events()
        .expect("events")
        .collect::<Result<Vec<_>, _>>()
        .expect("decode")
        .into_iter()
        .filter(|row| row.kind == RowKind::Frame)
        .collect();
    frames.sort_by_key(|f| (f.stack_id, f.frame_index));
    frames
}

fn symbolize(input: &Path, dirs: &[&Path], out: &Path) -> Value {
    let mut args = vec![
        "symbolize".to_owned(),
        input.display().to_string(),
        "-o".to_owned(),
        out.display().to_string(),
        "--format".to_owned(),
        "json".to_owned(),
    ];
    for dir in dirs {
        args.extend(["--debug-dir".to_owned(), dir.display().to_string()]);
    }
    serde_json::from_str(&run_ok(&args)).expect("JSON")
}

#[test]
fn frames_are_named_from_a_debug_file_in_the_build_id_layout() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let program = compile(scratch.path());
    let debug = scratch.path().join("debug");
    let (head, rest) = program.build_id.split_at(2);
    let layout = debug.join(".build-id").join(head);
    std::fs::create_dir_all(&layout).expect("mkdir");
    // A debug file as distributions ship them: symbols and DWARF, no code.
    let status = Command::new("objcopy")
        .arg("--only-keep-debug")
        .arg(&program.path)
        .arg(layout.join(format!("{rest}.debug")))
        .status()
        .expect("run objcopy");
    assert!(status.success(), "objcopy failed");
    let input = scratch.path().join("in.parquet");
    capture(&input, &program);
    let out = scratch.path().join("named.parquet");

    // A debug file alone cannot place a file offset (its segments hold no bytes): said.
    let report = symbolize(&input, &[&debug], &scratch.path().join("alone.parquet"));
    assert_eq!(report["frames_named"], 0, "{report:#}");
    let why = report["unnamed"][0]["why"].as_str().expect("why");
    assert!(why.contains("add the executable"), "{why}");

    // With the stripped executable beside it, as debuginfod lays them out: the executable
    // places the offsets, the debug file names them.
    let status = Command::new("objcopy")
        .arg("--strip-all")
        .arg(&program.path)
        .arg(layout.join(rest))
        .status()
        .expect("run objcopy");
    assert!(status.success(), "objcopy failed");
    let report = symbolize(&input, &[&debug], &out);
    // Stack 1: two named, one unknown, one named before; stack 2 and 3: one each.
    assert_eq!(report["frames_named"], 4, "{report:#}");
    assert_eq!(report["frames_unnamed"], 1, "{report:#}");
    assert_eq!(report["unnamed"][0]["build_id"], UNKNOWN_ID);
    assert_eq!(report["unnamed"][0]["module"], "/tmp/gone/prog");

    let frames = frames_of(&out);
    let function = |i: usize| frames[i].frame_function.as_deref();
    let source = |i: usize| frames[i].symbol_source.as_deref();
    assert_eq!(function(0), Some("distinctive_inner"));
    // A return address names the call before it: still in outer.
    assert_eq!(function(1), Some("distinctive_outer"));
    assert_eq!((function(2), source(2)), (None, None), "unknown build id");
    assert_eq!((function(3), source(3)), (Some("main"), Some("map_files")));
    assert_eq!(function(4), Some("distinctive_inner"));
    assert_eq!(function(5), Some("distinctive_outer"));
    for i in [0, 1, 4, 5] {
        assert_eq!(source(i), Some("debug_dir"));
        let file = frames[i].frame_file.as_deref().expect("a source file");
        assert!(file.ends_with("prog.c"), "{file}");
        let line = frames[i].frame_line.expect("a line");
        assert!((2..=5).contains(&line), "line {line}");
    }
    let meta = CaptureReader::open(&out).expect("open").metadata().clone();
    let step = meta.provenance.last().expect("a provenance step");
    assert_eq!(step.operation, "symbolize");
}

#[test]
fn a_walk_finds_files_inside_and_follows_no_link_out() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let program = compile(scratch.path());
    let input = scratch.path().join("in.parquet");
    capture(&input, &program);

    // Found by walking: a copy deep in a directory, under another name.
    let inside = scratch.path().join("inside");
    std::fs::create_dir_all(inside.join("a/b")).expect("mkdir");
    std::fs::copy(&program.path, inside.join("a/b/renamed")).expect("copy");
    let out = scratch.path().join("walked.parquet");
    let report = symbolize(&input, &[&inside], &out);
    assert_eq!(report["frames_named"], 4, "{report:#}");
    assert_eq!(
        frames_of(&out)[0].frame_function.as_deref(),
        Some("distinctive_inner")
    );

    // Only a link to the program outside the directory, also in the .build-id layout: not
    // followed, nothing named, and said.
    let linked = scratch.path().join("linked");
    let (head, rest) = program.build_id.split_at(2);
    std::fs::create_dir_all(linked.join(".build-id").join(head)).expect("mkdir");
    std::os::unix::fs::symlink(&program.path, linked.join("prog")).expect("link");
    std::os::unix::fs::symlink(
        &program.path,
        linked
            .join(".build-id")
            .join(head)
            .join(format!("{rest}.debug")),
    )
    .expect("link");
    let out = scratch.path().join("linked.parquet");
    let report = symbolize(&input, &[&linked], &out);
    assert_eq!(report["frames_named"], 0, "{report:#}");
    assert_eq!(report["frames_unnamed"], 5, "{report:#}");
    assert!(
        report["skipped"]["links_outside"].as_u64() >= Some(1),
        "{report:#}"
    );
    assert!(
        frames_of(&out)
            .iter()
            .all(|f| f.symbol_source.as_deref() != Some("debug_dir"))
    );

    // A link that stays inside is followed.
    std::fs::copy(&program.path, linked.join("real")).expect("copy");
    std::fs::remove_file(linked.join("prog")).expect("unlink");
    std::os::unix::fs::symlink("real", linked.join("prog")).expect("link");
    let out = scratch.path().join("linked2.parquet");
    let report = symbolize(&input, &[&linked], &out);
    assert_eq!(report["frames_named"], 4, "{report:#}");
}

#[test]
fn bad_debug_dirs_exit_2_with_one_line() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let program = compile(scratch.path());
    let input = scratch.path().join("in.parquet");
    capture(&input, &program);
    let out = scratch.path().join("out.parquet");
    for dir in [scratch.path().join("missing"), program.path.clone()] {
        let output = run([
            "symbolize".as_ref(),
            input.as_os_str(),
            "-o".as_ref(),
            out.as_os_str(),
            "--debug-dir".as_ref(),
            dir.as_os_str(),
        ]);
        assert_eq!(output.status.code(), Some(2));
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&dir.display().to_string()), "{stderr}");
        assert!(!out.exists());
    }
}

#[test]
fn extract_by_pid_keeps_the_frames_of_the_stacks_it_keeps() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let program = compile(scratch.path());
    let input = scratch.path().join("in.parquet");
    capture(&input, &program);
    let out = scratch.path().join("pid200.parquet");
    run_ok([
        "extract".as_ref(),
        input.as_os_str(),
        "-o".as_ref(),
        out.as_os_str(),
        "--pid".as_ref(),
        "200".as_ref(),
    ]);
    let stacks: Vec<(Option<u64>, Option<u32>)> = frames_of(&out)
        .iter()
        .map(|f| (f.stack_id, f.frame_index))
        .collect();
    // Stack 2 is pid 200's; stack 3's frames carry pid 100 (its first call) but pid 200 used it.
    assert_eq!(stacks, [(Some(2), Some(0)), (Some(3), Some(0))]);
}

#[test]
fn redact_hashes_frame_modules_and_keeps_function_names_unless_told() {
    let scratch = tempfile::tempdir().expect("temp dir");
    let program = compile(scratch.path());
    let input = scratch.path().join("in.parquet");
    capture(&input, &program);
    let key = scratch.path().join("key");
    std::fs::write(&key, [7_u8; 32]).expect("write key");
    let redact = |out: &Path, extra: &[&str]| {
        let mut args = vec![
            "redact".to_owned(),
            input.display().to_string(),
            "-o".to_owned(),
            out.display().to_string(),
            "--key-file".to_owned(),
            key.display().to_string(),
        ];
        args.extend(extra.iter().map(|s| (*s).to_owned()));
        run_ok(&args);
        frames_of(out)
    };
    let frames = redact(&scratch.path().join("r.parquet"), &[]);
    let named = frames
        .iter()
        .find(|f| f.frame_index == Some(3))
        .expect("the named frame");
    assert_eq!(named.frame_function.as_deref(), Some("main"));
    assert_eq!(named.symbol_source.as_deref(), Some("map_files"));
    assert_eq!(frames[0].source.as_deref(), Some("stack_fp"));
    for frame in &frames {
        let module = frame.frame_module.as_deref().expect("a module");
        assert!(
            !module.contains("gone") && !module.contains("prog"),
            "{module}"
        );
        assert_eq!(
            module.split('/').count(),
            4,
            "hashed component by component: {module}"
        );
        assert!(frame.frame_build_id.is_some() && frame.frame_offset.is_some());
    }
    let frames = redact(&scratch.path().join("h.parquet"), &["--functions", "hash"]);
    let named = frames
        .iter()
        .find(|f| f.frame_index == Some(3))
        .expect("the named frame");
    let function = named.frame_function.as_deref().expect("a pseudonym");
    assert!(
        function.starts_with("f-") && function != "main",
        "{function}"
    );
}
