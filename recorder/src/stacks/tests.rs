use std::{borrow::Cow, hint::black_box, time::Instant};

use mmap_format::event::{Event, RowKind, Syscall};

use super::*;

fn own_pid() -> u32 {
    std::process::id()
}

/// This process's /proc/self/maps as snapshot rows (what the recorder writes at start).
fn own_snapshot() -> Vec<Event<'static>> {
    let text = std::fs::read_to_string("/proc/self/maps").expect("read own maps");
    text.lines()
        .filter_map(maps::parse_maps_line)
        .map(|((path, (start, end, off, dev, ino)), prot)| Event {
            kind: RowKind::Snapshot,
            pid: own_pid(),
            tid: own_pid(),
            addr: Some(start),
            len: Some(end - start),
            off: Some(off),
            prot: Some(prot | 1),
            file_dev: Some(dev),
            file_ino: Some(ino),
            file_path: (!path.is_empty()).then_some(Cow::Owned(path)),
            ..Default::default()
        })
        .collect()
}

fn call(pid: u32) -> Event<'static> {
    Event {
        kind: RowKind::Syscall,
        syscall: Some(Syscall::Mmap),
        pid,
        tid: pid,
        comm: Cow::Borrowed("test"),
        ts_ns: 42,
        ret: Some(0x1000),
        ..Default::default()
    }
}

fn stacks_of_self(mode: StackMode) -> Stacks {
    let mut stacks = Stacks::new(mode);
    for row in own_snapshot() {
        stacks.observe(&row);
    }
    stacks
}

#[inline(never)]
fn fp_marker_function_for_symbolization(x: u64) -> u64 {
    black_box(x).wrapping_mul(3)
}

fn fn_addr(f: fn(u64) -> u64) -> u64 {
    f as usize as u64
}

#[test]
fn leaf_fix_inserts_the_wrapper_caller_once() {
    let exec = |a: u64| (0x1000..0x2000).contains(&a);
    // The caller is missing: inserted as frame 1.
    assert_eq!(leaf_fix(&[0x1010, 0x1800], 0x1100, exec), Some(1));
    // Already frame 1 (the wrapper had a frame): nothing.
    assert_eq!(leaf_fix(&[0x1010, 0x1100], 0x1100, exec), None);
    // Not code (e.g. a saved register on the stack): nothing.
    assert_eq!(leaf_fix(&[0x1010, 0x1800], 0x7fff_0000, exec), None);
    // Unreadable: nothing.
    assert_eq!(leaf_fix(&[0x1010, 0x1800], 0, exec), None);
    // A single-frame walk gets its caller as frame 1.
    assert_eq!(leaf_fix(&[0x1010], 0x1100, exec), Some(1));
    assert_eq!(leaf_fix(&[], 0x1100, exec), None);
}

#[test]
fn fp_stacks_are_deduplicated_per_pid_and_listed_once_per_segment() {
    let mut stacks = stacks_of_self(StackMode::Fp);
    let f = fn_addr(fp_marker_function_for_symbolization);
    let leaf_ret = fn_addr(leaf_fix_caller_marker);
    let frames = [f + 1, f + 2];
    let me = call(own_pid());
    let a = stacks.intern(
        &me,
        RawStack::Fp {
            frames: &frames,
            leaf_ret,
        },
    );
    let b = stacks.intern(
        &me,
        RawStack::Fp {
            frames: &frames,
            leaf_ret,
        },
    );
    assert!(a.is_some());
    assert_eq!(a, b, "same pid and frames: same id");
    // Another pid, same addresses: another stack (and no module known there).
    let other = stacks.intern(
        &call(1),
        RawStack::Fp {
            frames: &frames,
            leaf_ret: 0,
        },
    );
    assert_ne!(a, other);
    assert_eq!(
        stacks.intern(
            &me,
            RawStack::Fp {
                frames: &[],
                leaf_ret
            }
        ),
        None,
        "no frames: no stack"
    );

    let rows = stacks.take_frame_rows();
    let of_a: Vec<_> = rows.iter().filter(|r| r.stack_id == a).collect();
    // The leaf fix put leaf_ret (code of this binary) at frame 1.
    assert_eq!(of_a.len(), 3);
    assert_eq!(
        of_a.iter().map(|r| r.frame_addr).collect::<Vec<_>>(),
        vec![Some(f + 1), Some(leaf_ret), Some(f + 2)]
    );
    assert_eq!(
        of_a.iter().map(|r| r.frame_index).collect::<Vec<_>>(),
        vec![Some(0), Some(1), Some(2)]
    );
    for r in &of_a {
        assert_eq!(r.kind, RowKind::Frame);
        assert_eq!((r.pid, r.ts_ns, &*r.comm), (own_pid(), 42, "test"));
        assert_eq!(r.source.as_deref(), Some(SOURCE_FP));
        assert!(r.frame_module.is_some() && r.frame_offset.is_some());
    }
    let of_other: Vec<_> = rows.iter().filter(|r| r.stack_id == other).collect();
    assert_eq!(of_other.len(), 2);
    assert!(
        of_other
            .iter()
            .all(|r| r.frame_module.is_none() && r.symbol_source.is_none())
    );

    // Nothing interned since: nothing to write. Used again in the next segment: written again,
    // same id.
    assert!(stacks.take_frame_rows().is_empty());
    let again = stacks.intern(
        &me,
        RawStack::Fp {
            frames: &frames,
            leaf_ret,
        },
    );
    assert_eq!(again, a);
    let rows = stacks.take_frame_rows();
    assert_eq!(rows.len(), 3);
    assert!(rows.iter().all(|r| r.stack_id == a));
    let stats = stacks.stats();
    assert_eq!((stats.stacks, stats.empty, stats.frame_rows), (2, 1, 8));
}

#[inline(never)]
fn leaf_fix_caller_marker(x: u64) -> u64 {
    black_box(x) ^ 5
}

#[test]
fn fp_frames_are_named_from_this_binary() {
    let mut stacks = stacks_of_self(StackMode::Fp);
    let f = fn_addr(fp_marker_function_for_symbolization);
    let g = fn_addr(leaf_fix_caller_marker);
    // Frame 0 is looked up as is, frame 1 (a return address) at address − 1: give it the
    // address just past g's first byte so g is found either way.
    let id = stacks.intern(
        &call(own_pid()),
        RawStack::Fp {
            frames: &[f, g + 1],
            leaf_ret: 0,
        },
    );
    let rows = stacks.take_frame_rows();
    assert_eq!(rows.len(), 2);
    assert!(rows.iter().all(|r| r.stack_id == id));
    let names: Vec<_> = rows.iter().map(|r| r.frame_function.as_deref()).collect();
    assert!(
        names[0].is_some_and(|n| n.contains("fp_marker_function_for_symbolization")),
        "{names:?}"
    );
    assert!(
        names[1].is_some_and(|n| n.contains("leaf_fix_caller_marker")),
        "{names:?}"
    );
    for r in &rows {
        assert_eq!(r.symbol_source.as_deref(), Some("map_files"));
        assert!(r.frame_build_id.as_deref().is_some_and(|b| {
            !b.is_empty()
                && b.bytes()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())
        }));
        let exe = std::fs::read_link("/proc/self/exe").expect("own exe");
        assert_eq!(r.frame_module.as_deref(), exe.to_str());
    }
    // Line tables are on in test builds: file:line of this file.
    assert!(
        rows[0]
            .frame_file
            .as_deref()
            .is_some_and(|f| f.ends_with("tests.rs")),
        "{rows:?}"
    );
    assert!(rows[0].frame_line.is_some());
    assert_eq!(stacks.stats().named, 2);
}

/// Registers and a copy of the stack at this point, as the kernel side copies them.
struct Captured {
    ip: u64,
    sp: u64,
    bp: u64,
    stack: Vec<u8>,
}

#[inline(never)]
fn dwarf_capture_marker() -> Captured {
    let (ip, sp, bp): (u64, u64, u64);
    // SAFETY: reads rip (address of the next instruction), rsp and rbp into registers; no
    // memory is touched.
    unsafe {
        std::arch::asm!(
            "lea {ip}, [rip]",
            "mov {sp}, rsp",
            "mov {bp}, rbp",
            ip = out(reg) ip,
            sp = out(reg) sp,
            bp = out(reg) bp,
            options(nomem, nostack, preserves_flags),
        );
    }
    // The stack copy stops at the end of this thread's stack mapping.
    let maps = std::fs::read_to_string("/proc/self/maps").expect("maps");
    let top = maps
        .lines()
        .filter_map(maps::parse_maps_line)
        .map(|((_, (start, end, ..)), _)| (start, end))
        .find(|&(start, end)| (start..end).contains(&sp))
        .map(|(_, end)| end)
        .expect("the stack is mapped");
    let len = (top - sp).min(16 * 1024) as usize;
    let mut stack = vec![0u8; len];
    // SAFETY: [sp, sp + len) lies in this thread's stack mapping (found above), below its end;
    // the frames of this function and its callers there are live while we copy.
    unsafe { std::ptr::copy_nonoverlapping(sp as *const u8, stack.as_mut_ptr(), len) };
    Captured { ip, sp, bp, stack }
}

#[inline(never)]
fn dwarf_middle_marker() -> Captured {
    black_box(dwarf_capture_marker())
}

#[inline(never)]
fn dwarf_outer_marker() -> Captured {
    black_box(dwarf_middle_marker())
}

#[test]
fn dwarf_unwinds_and_names_this_stack() {
    let captured = dwarf_outer_marker();
    let mut stacks = stacks_of_self(StackMode::Dwarf);
    let raw = RawStack::Dwarf {
        ip: captured.ip,
        sp: captured.sp,
        bp: captured.bp,
        stack: &captured.stack,
    };
    let id = stacks.intern(&call(own_pid()), raw).expect("a stack");
    assert_eq!(
        stacks.intern(&call(own_pid()), raw),
        Some(id),
        "unwound again: same id"
    );
    let rows = stacks.take_frame_rows();
    let names: Vec<&str> = rows
        .iter()
        .filter_map(|r| r.frame_function.as_deref())
        .collect();
    let at = |name: &str| {
        names
            .iter()
            .position(|n| n.contains(name))
            .unwrap_or_else(|| panic!("{name} not among {names:?}"))
    };
    let (capture, middle, outer) = (
        at("dwarf_capture_marker"),
        at("dwarf_middle_marker"),
        at("dwarf_outer_marker"),
    );
    assert_eq!(capture, 0);
    assert!(capture < middle && middle < outer, "{names:?}");
    assert!(at("dwarf_unwinds_and_names_this_stack") > outer);
    assert!(
        rows.iter()
            .all(|r| r.source.as_deref() == Some(SOURCE_DWARF))
    );
    eprintln!("dwarf: {} frames, stats {:?}", rows.len(), stacks.stats());
}

#[test]
fn exec_and_munmap_forget_modules() {
    let mut stacks = stacks_of_self(StackMode::Fp);
    let f = fn_addr(fp_marker_function_for_symbolization);
    let pid = own_pid();
    assert!(stacks.procs.lookup(pid, f).is_some());
    let m = stacks.procs.lookup(pid, f).cloned().expect("mapped");
    stacks.observe(&Event {
        syscall: Some(Syscall::Munmap),
        addr: Some(m.start),
        len: Some(m.end - m.start),
        ret: Some(0),
        ..call(pid)
    });
    assert!(stacks.procs.lookup(pid, f).is_none());
    stacks.observe(&Event {
        syscall: Some(Syscall::Mmap),
        ret: Some(m.start as i64),
        len: Some(m.end - m.start),
        off: Some(m.off),
        prot: Some(5),
        file_path: Some(Cow::Owned(m.path.to_string())),
        file_dev: Some(m.dev),
        file_ino: Some(m.ino),
        ..call(pid)
    });
    assert_eq!(stacks.procs.lookup(pid, f), Some(&m));
    stacks.observe(&Event {
        kind: RowKind::Exec,
        ..call(pid)
    });
    assert!(stacks.procs.lookup(pid, f).is_none());
}

/// Prints the per-call cost of `intern` for a known stack and of a dwarf unwind (not
/// asserted: `cargo test -p mmap-recorder stacks::tests::cost -- --nocapture`).
#[test]
fn cost_of_intern() {
    let mut stacks = stacks_of_self(StackMode::Fp);
    let f = fn_addr(fp_marker_function_for_symbolization);
    let frames: Vec<u64> = (0..12).map(|i| f + i).collect();
    let leaf_ret = fn_addr(leaf_fix_caller_marker);
    let me = call(own_pid());
    let n = 200_000u32;
    stacks.intern(
        &me,
        RawStack::Fp {
            frames: &frames,
            leaf_ret,
        },
    );
    let t = Instant::now();
    for _ in 0..n {
        black_box(stacks.intern(
            black_box(&me),
            RawStack::Fp {
                frames: &frames,
                leaf_ret,
            },
        ));
    }
    let fp_ns = t.elapsed().as_nanos() / u128::from(n);

    let captured = dwarf_outer_marker();
    let mut stacks = stacks_of_self(StackMode::Dwarf);
    let raw = RawStack::Dwarf {
        ip: captured.ip,
        sp: captured.sp,
        bp: captured.bp,
        stack: &captured.stack,
    };
    stacks.intern(&me, raw);
    let n = 20_000u32;
    let t = Instant::now();
    for _ in 0..n {
        black_box(stacks.intern(black_box(&me), raw));
    }
    let dwarf_ns = t.elapsed().as_nanos() / u128::from(n);
    let frames = stacks.take_frame_rows().len();
    eprintln!(
        "intern cost: fp known stack (13 frames) {fp_ns} ns/call; dwarf unwind + lookup \
         ({frames} frames) {dwarf_ns} ns/call"
    );
}

/// Snapshot rows of another process (its /proc/PID/maps).
fn snapshot_of(pid: u32) -> Vec<Event<'static>> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/maps")).expect("read child's maps");
    text.lines()
        .filter_map(maps::parse_maps_line)
        .map(|((path, (start, end, off, dev, ino)), prot)| Event {
            kind: RowKind::Snapshot,
            pid,
            tid: pid,
            addr: Some(start),
            len: Some(end - start),
            off: Some(off),
            prot: Some(prot | 1),
            file_dev: Some(dev),
            file_ino: Some(ino),
            file_path: (!path.is_empty()).then_some(Cow::Owned(path)),
            ..Default::default()
        })
        .collect()
}

/// A process that exits before its segment closes is still named (through the file opened at
/// intern time, `map_files`), and one gone before its stack is interned is named from the path
/// (dev/ino checked, `path`).
#[test]
#[expect(
    clippy::zombie_processes,
    reason = "the child is killed and waited for by `stop` in both branches"
)]
fn exited_processes_get_names() {
    // getpid in this process's libc, as a file offset of libc.
    let own = stacks_of_self(StackMode::Fp);
    let getpid = libc::getpid as *const () as u64;
    let libc_map = own
        .procs
        .lookup(own_pid(), getpid)
        .cloned()
        .expect("getpid is mapped");
    assert!(libc_map.path.contains("libc"), "{libc_map:?}");
    let offset = libc_map.file_offset(getpid);

    for gone_before_intern in [false, true] {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .expect("spawn sleep");
        let pid = child.id();
        // Wait until the child has exec'd and mapped libc.
        let mut rows = Vec::new();
        for _ in 0..200 {
            rows = snapshot_of(pid);
            if rows
                .iter()
                .any(|r| r.file_ino == Some(libc_map.ino) && r.prot.is_some_and(|p| p & 4 != 0))
            {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        let mut stacks = Stacks::new(StackMode::Fp);
        for row in &rows {
            stacks.observe(row);
        }
        let in_child = stacks
            .procs
            .get(pid)
            .and_then(|p| {
                p.mappings()
                    .find(|m| {
                        m.ino == libc_map.ino && m.off <= offset && offset - m.off < m.end - m.start
                    })
                    .map(|m| m.start + (offset - m.off))
            })
            .expect("libc mapped in the child");
        let stop = |child: &mut std::process::Child| {
            child.kill().expect("kill");
            child.wait().expect("wait");
        };
        if gone_before_intern {
            stop(&mut child);
        }
        let id = stacks.intern(
            &call(pid),
            RawStack::Fp {
                frames: &[in_child],
                leaf_ret: 0,
            },
        );
        if !gone_before_intern {
            stop(&mut child);
        }
        let rows = stacks.take_frame_rows();
        assert_eq!(rows.len(), 1);
        let row = &rows[0];
        assert_eq!(row.stack_id, id);
        assert!(
            row.frame_function
                .as_deref()
                .is_some_and(|f| f.contains("getpid")),
            "{row:?}"
        );
        let via = if gone_before_intern {
            "path"
        } else {
            "map_files"
        };
        assert_eq!(row.symbol_source.as_deref(), Some(via));
        assert_eq!(row.frame_offset, Some(offset));
    }
}
