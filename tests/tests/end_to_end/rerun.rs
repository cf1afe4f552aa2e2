//! `mmap-analyze rerun` for real: the workload's `--rerun-set` is recorded, rerun while the
//! recorder records the rerun too, and the two captures are compared call by call (same calls,
//! same order per thread, same arguments up to address translation and file substitution, same
//! outcomes). Also: `--same-addresses`, a forced failure (exit 1), pacing with `--speed`, and bad
//! input (exit 2).
//!
//! These tests load eBPF programs: they are ignored without root, and as root (CI,
//! `--include-ignored`) any failure fails them.
use std::{
    collections::{BTreeMap, HashMap, HashSet},
    ffi::OsStr,
    path::{Path, PathBuf},
    process::{Command, Output},
    time::{Duration, Instant},
};

use mmap_capture_tests::{
    RerunSet, analyze, check_family_call, read_capture, require_root, workspace_bin,
};
use mmap_format::event::{Event, RowKind, Syscall};
use serde_json::Value;

/// The child's markers around the replayed calls: `mmap(START or END, 0, ...)`, which fail with
/// EINVAL.
const START: u64 = 0x6d6d_6170_0000;
const END: u64 = 0x6d6d_6170_1000;
const PAGE: u64 = 4096;
/// Where rerun issues a failed call on memory the replay does not have (see `check_pairs`).
const HOLE: u64 = 0x1000;
/// Where the workload places two regions itself (see mmap-workload's `rerun_set`).
const HINT_ADDR: u64 = 0x5a5a_0000_0000;
const NOREPLACE_ADDR: u64 = 0x5a5b_0000_0000;

/// Records `mmap-workload --rerun-set EXTRA...` in `dir`; returns the capture and the report.
fn record_workload(dir: &Path, extra: &[&str]) -> (PathBuf, RerunSet) {
    let capture = dir.join("workload.parquet");
    let report = dir.join("workload.json");
    let data = dir.join("data");
    std::fs::create_dir_all(&data).expect("mkdir data");
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "-o"])
        .arg(&capture)
        .arg("--")
        .arg(workspace_bin("mmap-workload"))
        .args(["--rerun-set", "--dir"])
        .arg(&data)
        .arg("--report")
        .arg(&report)
        .args(extra)
        .output()
        .expect("run mmap-recorder");
    assert!(
        out.status.success(),
        "recording the workload: {}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let set: RerunSet =
        serde_json::from_slice(&std::fs::read(&report).expect("workload report")).expect("parse");
    (capture, set)
}

/// `mmap-analyze rerun CAPTURE --pid PID --format json --calls EXTRA...`, recorded by
/// mmap-recorder (which follows the rerun's child) into `dir/rerun.parquet`.
fn record_rerun(dir: &Path, capture: &Path, pid: u32, extra: &[&str]) -> (Output, PathBuf) {
    let out_capture = dir.join(format!("rerun{}.parquet", extra.join("")));
    let out = Command::new(workspace_bin("mmap-recorder"))
        .args(["record", "-q", "-o"])
        .arg(&out_capture)
        .arg("--")
        .arg(workspace_bin("mmap-analyze"))
        .arg("rerun")
        .arg(capture)
        .args(["--pid", &pid.to_string(), "--format", "json", "--calls"])
        .args(extra)
        .output()
        .expect("run mmap-recorder");
    (out, out_capture)
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "rerun's JSON ({e}): {}\nstderr: {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

/// An address in the JSON report: a number, or a hex string ("0x6d6d61700000").
fn address(value: &Value) -> Option<u64> {
    value.as_u64().or_else(|| {
        value
            .as_str()?
            .strip_prefix("0x")
            .and_then(|hex| u64::from_str_radix(hex, 16).ok())
    })
}

/// The syscall rows of `pid`, in entry order.
fn syscall_rows(events: &[Event<'static>], pid: u32) -> Vec<Event<'static>> {
    let mut rows: Vec<Event<'static>> = events
        .iter()
        .filter(|e| e.kind == RowKind::Syscall && e.pid == pid)
        .cloned()
        .collect();
    rows.sort_by_key(|e| (e.ts_ns, e.ts_exit_ns));
    rows
}

fn is_marker(e: &Event<'_>, at: u64) -> bool {
    e.syscall == Some(Syscall::Mmap) && e.addr == Some(at) && e.len == Some(0)
}

/// The child's rows strictly between its START and END markers (both found, each failing with
/// EINVAL), in entry order.
fn between_markers(events: &[Event<'static>], child: u32) -> Vec<Event<'static>> {
    let rows = syscall_rows(events, child);
    let marker = |at: u64| {
        let found: Vec<&Event<'_>> = rows.iter().filter(|e| is_marker(e, at)).collect();
        assert_eq!(found.len(), 1, "one marker mmap({at:#x}, 0) in the child");
        assert_eq!(found[0].errno(), Some(libc::EINVAL), "the marker fails");
        found[0].ts_ns
    };
    let (start, end) = (marker(START), marker(END));
    assert!(start < end, "START before END");
    rows.into_iter()
        .filter(|e| e.ts_ns > start && e.ts_ns < end)
        .collect()
}

/// Every call of the set is in the workload's capture once, as the workload reported it; returns
/// the entry times of the set's rows.
fn check_set_recorded(capture: &Path, set: &RerunSet) -> Vec<i64> {
    let (meta, events) = read_capture(capture);
    assert_eq!(meta.counters.lost(), 0, "{:?}", meta.counters);
    let slack = meta.clock_anchors[0].uncertainty_ns as i64 + 1_000;
    set.calls
        .iter()
        .map(|call| check_family_call(&events, call, slack).ts_ns)
        .collect()
}

/// Recorded address ranges -> where the rerun has them, built from the calls' results.
#[derive(Default)]
struct Translation {
    /// (recorded start, length, rerun start), the latest last.
    regions: Vec<(u64, u64, u64)>,
    /// rerun break - recorded break, from the first brk.
    brk_delta: Option<i64>,
}

impl Translation {
    fn add(&mut self, recorded: u64, len: u64, rerun: u64) {
        let len = len.div_ceil(PAGE) * PAGE;
        self.regions.push((recorded, len, rerun));
    }

    /// Where the rerun has the recorded address `addr` (the latest region that holds it).
    fn get(&self, addr: u64) -> Option<u64> {
        self.regions
            .iter()
            .rev()
            .find(|&&(start, len, _)| addr >= start && addr - start < len)
            .map(|&(start, _, rerun)| rerun + (addr - start))
    }
}

fn hex(value: Option<u64>) -> String {
    value.map_or_else(|| "-".to_owned(), |v| format!("{v:#x}"))
}

/// One recorded call and the rerun's row for it.
struct Pair<'a> {
    recorded: &'a Event<'static>,
    rerun: &'a Event<'static>,
    /// The rerun's `call_list` entry for it.
    entry: &'a Value,
}

/// Compares `pairs` (in recorded entry order): same syscall, lengths, protection, flags, file
/// offset and outcome, addresses consistent with the translation built from earlier results,
/// and a one-to-one substitution of files. `what` names the rerun in messages.
fn check_pairs(pairs: &[Pair<'_>], what: &str) {
    let mut tr = Translation::default();
    // Recorded pages a replayed call mapped and no call unmapped since.
    let mut live: HashSet<u64> = HashSet::new();
    let mut files: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    let mut substitutes: HashMap<(u64, u64), (u64, u64)> = HashMap::new();
    for (
        i,
        Pair {
            recorded: o,
            rerun: r,
            entry,
        },
    ) in pairs.iter().enumerate()
    {
        let at = format!(
            "{what}: call {i} ({:?} addr {} len {:?}, recorded ret {}; rerun addr {} ret {})",
            o.syscall,
            hex(o.addr),
            o.len,
            hex(o.ret.map(|r| r as u64)),
            hex(r.addr),
            hex(r.ret.map(|r| r as u64)),
        );
        assert_eq!(r.syscall, o.syscall, "{at}: syscall");
        // What the report says was issued is what the child did.
        let issued = &entry["issued"];
        assert_eq!(
            issued["addr"].as_u64(),
            r.addr,
            "{at}: issued addr: {entry}"
        );
        if r.len.is_some() {
            assert_eq!(issued["len"].as_u64(), r.len, "{at}: issued len: {entry}");
        }
        assert_eq!(entry["ret"].as_i64(), r.ret, "{at}: ret: {entry}");
        assert_eq!(r.len, o.len, "{at}: len");
        assert_eq!(r.prot, o.prot, "{at}: prot");
        assert_eq!(r.new_len, o.new_len, "{at}: new_len");
        assert_eq!(r.flags, o.flags, "{at}: flags");
        assert_eq!(r.errno(), o.errno(), "{at}: outcome (errno)");
        let ok = o.errno().is_none();
        let (oa, ra) = (o.addr.unwrap_or(0), r.addr.unwrap_or(0));
        match o.syscall {
            Some(Syscall::Mmap) => {
                assert_eq!(r.off, o.off, "{at}: offset");
                let flags = o.flags.unwrap_or(0);
                let fixed = flags & libc::MAP_FIXED as u64 != 0;
                match tr.get(oa) {
                    // MAP_FIXED into a region of the process: the translated address.
                    Some(want) if fixed => assert_eq!(ra, want, "{at}: MAP_FIXED address"),
                    None if fixed => panic!("{at}: MAP_FIXED at an address nothing mapped"),
                    // A hint or MAP_FIXED_NOREPLACE the process chose itself: as recorded.
                    _ => assert_eq!(ra, oa, "{at}: address hint"),
                }
                match (o.file_ino, r.file_ino) {
                    (None, None) => {}
                    (Some(ino), Some(rino)) => {
                        let from = (o.file_dev.unwrap_or(0), ino);
                        let to = (r.file_dev.unwrap_or(0), rino);
                        assert_ne!(from, to, "{at}: the rerun maps a substitute, not the file");
                        let prev = files.insert(from, to);
                        assert!(
                            prev.is_none_or(|p| p == to),
                            "{at}: file {from:?} mapped from {to:?} and before from {prev:?}"
                        );
                        let prev = substitutes.insert(to, from);
                        assert!(
                            prev.is_none_or(|p| p == from),
                            "{at}: substitute {to:?} stands for {from:?} and {prev:?}"
                        );
                    }
                    _ => panic!(
                        "{at}: file {:?} {:?} vs {:?} {:?}",
                        o.file_ino, o.file_name, r.file_ino, r.file_name
                    ),
                }
                if ok {
                    let (oret, rret) = (o.ret.unwrap_or(0) as u64, r.ret.unwrap_or(0) as u64);
                    if fixed {
                        assert_eq!(rret, ra, "{at}: MAP_FIXED result");
                    }
                    tr.add(oret, o.len.unwrap_or(0), rret);
                    live.extend(oret / PAGE..oret / PAGE + o.len.unwrap_or(0).div_ceil(PAGE));
                }
            }
            Some(Syscall::Munmap | Syscall::Mprotect | Syscall::Mremap) => {
                let on_hole = entry["why"]
                    .as_str()
                    .is_some_and(|why| why.contains("never maps"));
                if live.contains(&(oa / PAGE)) {
                    // Memory a replayed call made and still has: the translated address.
                    assert_eq!(Some(ra), tr.get(oa), "{at}: translated address: {entry}");
                } else if on_hole {
                    // As rerun documents it: a call that failed on memory the replay does not
                    // have (any more) is issued at the bottom of the address space, which the
                    // child never maps, with the recorded offset in the page; it fails there
                    // as recorded whatever the child has mapped where the translation points.
                    assert!(!ok, "{at}: only a failed call goes to the hole: {entry}");
                    assert_eq!(ra, HOLE + oa % PAGE, "{at}: the hole: {entry}");
                } else if let Some(want) = tr.get(oa) {
                    assert_eq!(ra, want, "{at}: translated address: {entry}");
                }
                if ok {
                    let old_len = o.len.unwrap_or(0).div_ceil(PAGE);
                    for page in oa / PAGE..oa / PAGE + old_len {
                        live.remove(&page);
                    }
                    if o.syscall == Some(Syscall::Mprotect) {
                        live.extend(oa / PAGE..oa / PAGE + old_len);
                    }
                }
                if ok && o.syscall == Some(Syscall::Mremap) {
                    let (oret, rret) = (o.ret.unwrap_or(0) as u64, r.ret.unwrap_or(0) as u64);
                    assert_eq!(
                        rret == ra,
                        oret == oa,
                        "{at}: resized in place, or moved, as recorded"
                    );
                    tr.add(oret, o.new_len.unwrap_or(0), rret);
                    live.extend(oret / PAGE..oret / PAGE + o.new_len.unwrap_or(0).div_ceil(PAGE));
                } else {
                    assert_eq!(r.ret, o.ret, "{at}: result");
                }
            }
            Some(Syscall::Brk) => {
                if ok {
                    let delta = r.ret.unwrap_or(0) - o.ret.unwrap_or(0);
                    let first = *tr.brk_delta.get_or_insert(delta);
                    assert_eq!(delta, first, "{at}: the break moved by the same amount");
                }
                if oa == 0 {
                    assert_eq!(ra, 0, "{at}: brk(0)");
                } else if let Some(delta) = tr.brk_delta {
                    assert_eq!(ra as i64, oa as i64 + delta, "{at}: brk address");
                }
            }
            other => panic!("{at}: unexpected syscall {other:?}"),
        }
    }
    assert!(!files.is_empty(), "{what}: file-backed calls were compared");
}

/// The recorded rows the rerun issued (the rows of `call_list` with an `issued` value), checked
/// against `call_list` one by one; skipped rows are the process's calls on regions it did not
/// map itself (kernel-made: the program, the stack, the vDSO; or ld.so as the kernel mapped it),
/// each with a reason.
fn issued_rows<'a>(
    original: &'a [Event<'static>],
    report: &'a Value,
    set_times: &[i64],
) -> (Vec<&'a Event<'static>>, Vec<&'a Value>) {
    let list = report["call_list"].as_array().expect("call_list");
    assert_eq!(
        list.len(),
        original.len(),
        "call_list has every recorded call"
    );
    let (mut issued, mut entries) = (Vec::new(), Vec::new());
    let mut tr = Translation::default();
    for (o, c) in original.iter().zip(list) {
        let rec = &c["recorded"];
        let at = format!("call_list seq {}: {c}", c["seq"]);
        assert_eq!(c["syscall"].as_str(), o.syscall.map(|s| s.as_str()), "{at}");
        assert_eq!(c["tid"].as_u64(), Some(u64::from(o.tid)), "{at}");
        assert_eq!(rec["len"].as_u64(), o.len, "{at}: len");
        assert_eq!(rec["ret"].as_i64(), o.ret, "{at}: ret");
        if c["issued"].is_null() {
            assert!(
                !set_times.contains(&o.ts_ns),
                "{at}: a call of the workload's set was skipped"
            );
            assert!(
                c["why"].as_str().is_some_and(|w| !w.is_empty()),
                "{at}: skipped without a reason"
            );
            if let Some(addr) = o.addr.filter(|&a| a != 0) {
                assert!(
                    tr.get(addr).is_none(),
                    "{at}: skipped, though the process mapped {addr:#x} itself"
                );
            }
        } else {
            issued.push(o);
            entries.push(c);
        }
        if o.errno().is_none() {
            match o.syscall {
                Some(Syscall::Mmap) => {
                    tr.add(o.ret.unwrap_or(0) as u64, o.len.unwrap_or(0), 0);
                }
                Some(Syscall::Mremap) => {
                    tr.add(o.ret.unwrap_or(0) as u64, o.new_len.unwrap_or(0), 0);
                }
                _ => {}
            }
        }
    }
    (issued, entries)
}

/// Rerun of the recorded workload while recording it, compared call by call.
fn round_trip(threads: bool) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, set) = record_workload(dir.path(), &[]);
    let set_times = check_set_recorded(&capture, &set);
    let (_, events) = read_capture(&capture);
    let original = syscall_rows(&events, set.pid);
    let extra: &[&str] = if threads { &["--threads"] } else { &[] };
    let (out, rerun_capture) = record_rerun(dir.path(), &capture, set.pid, extra);
    let report = json(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "rerun: every outcome matches\n{report:#}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(address(&report["markers"]["start"]), Some(START));
    assert_eq!(address(&report["markers"]["end"]), Some(END));
    let child = u32::try_from(report["child_pid"].as_u64().expect("child_pid")).expect("pid");
    assert_ne!(child, set.pid);

    let (issued, entries) = issued_rows(&original, &report, &set_times);
    let calls = &report["calls"];
    assert_eq!(calls["recorded"].as_u64(), Some(original.len() as u64));
    assert_eq!(calls["issued"].as_u64(), Some(issued.len() as u64));
    assert_eq!(
        calls["skipped"].as_u64(),
        Some((original.len() - issued.len()) as u64)
    );
    assert_eq!(calls["differ"].as_u64(), Some(0));
    assert_eq!(report["differences"].as_array().map(Vec::len), Some(0));
    // The recorder's snapshot after the exec gives stand-ins for what the kernel mapped (the
    // program, ld.so, the stack): the loader's calls on them are re-issued too.
    assert_eq!(calls["skipped"].as_u64(), Some(0), "{report:#}");
    assert_eq!(
        report["address_space"]["matched"].as_bool(),
        Some(true),
        "{report:#}"
    );

    let (_, rerun_events) = read_capture(&rerun_capture);
    let replayed = between_markers(&rerun_events, child);
    assert_eq!(
        replayed.len(),
        issued.len(),
        "the child made exactly the issued calls between its markers; it made:\n{}",
        replayed
            .iter()
            .map(|e| format!(
                "tid {} {:?} addr {} len {:?} ret {}",
                e.tid,
                e.syscall,
                hex(e.addr),
                e.len,
                hex(e.ret.map(|r| r as u64))
            ))
            .collect::<Vec<_>>()
            .join("\n")
    );
    let what = if threads { "rerun --threads" } else { "rerun" };
    let pairs: Vec<Pair<'_>> = if threads {
        // Each recorded thread is one thread of the child, one to one, in the same order.
        let mut recorded_by_tid: BTreeMap<u32, Vec<&Event<'static>>> = BTreeMap::new();
        for &o in &issued {
            recorded_by_tid.entry(o.tid).or_default().push(o);
        }
        let mut rerun_by_tid: BTreeMap<u32, Vec<&Event<'static>>> = BTreeMap::new();
        for r in &replayed {
            rerun_by_tid.entry(r.tid).or_default().push(r);
        }
        assert_eq!(
            rerun_by_tid.len(),
            recorded_by_tid.len(),
            "one child thread per recorded thread"
        );
        let mut tid_map: HashMap<u32, u32> = HashMap::new();
        for (&tid, calls) in &recorded_by_tid {
            // The child thread whose first call is this thread's first call's counterpart.
            let first = calls[0];
            let index = issued
                .iter()
                .position(|o| std::ptr::eq(*o, first))
                .expect("in issued");
            let child_tid = replayed[index].tid;
            assert_eq!(
                rerun_by_tid.get(&child_tid).map(Vec::len),
                Some(calls.len()),
                "recorded thread {tid} -> child thread {child_tid}: as many calls"
            );
            assert!(
                tid_map.insert(tid, child_tid).is_none(),
                "thread {tid} mapped once"
            );
        }
        let mut distinct: Vec<u32> = tid_map.values().copied().collect();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), tid_map.len(), "one to one: {tid_map:?}");
        let mut next: HashMap<u32, usize> = HashMap::new();
        issued
            .iter()
            .zip(&entries)
            .map(|(&o, &entry)| {
                let child_tid = tid_map[&o.tid];
                let i = next.entry(child_tid).or_default();
                let r = rerun_by_tid[&child_tid][*i];
                *i += 1;
                Pair {
                    recorded: o,
                    rerun: r,
                    entry,
                }
            })
            .collect()
    } else {
        // One child thread; the global order is the recorded entry order.
        let tids: std::collections::BTreeSet<u32> = replayed.iter().map(|r| r.tid).collect();
        assert_eq!(tids.len(), 1, "{what}: one child thread: {tids:?}");
        issued
            .iter()
            .zip(&replayed)
            .zip(&entries)
            .map(|((&o, r), &entry)| Pair {
                recorded: o,
                rerun: r,
                entry,
            })
            .collect()
    };
    let recorded_tids: std::collections::BTreeSet<u32> = issued.iter().map(|o| o.tid).collect();
    assert!(
        recorded_tids.len() >= 2,
        "the workload's calls come from two threads"
    );
    check_pairs(&pairs, what);
}

#[test]
#[ignore = "needs root"]
fn rerun_round_trip_in_one_thread() {
    require_root!();
    round_trip(false);
}

#[test]
#[ignore = "needs root"]
fn rerun_round_trip_with_threads() {
    require_root!();
    round_trip(true);
}

#[test]
#[ignore = "needs root"]
fn rerun_same_addresses_places_the_workloads_own_regions_where_they_were() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, set) = record_workload(dir.path(), &[]);
    assert_eq!(set.call("hinted").ret, HINT_ADDR as i64);
    assert_eq!(set.call("fixed-noreplace").ret, NOREPLACE_ADDR as i64);
    let (out, rerun_capture) = record_rerun(dir.path(), &capture, set.pid, &["--same-addresses"]);
    let report = json(&out);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{report:#}\nstderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let same = &report["same_addresses"];
    let placed = same["placed"].as_u64().expect("same_addresses.placed");
    let requested = same["requested"]
        .as_u64()
        .expect("same_addresses.requested");
    assert!(placed >= 2 && placed <= requested, "{same}");
    let elsewhere = same["elsewhere"].as_array().expect("elsewhere");
    assert_eq!(
        elsewhere.len() as u64,
        requested - placed,
        "every region not placed is listed: {same}"
    );
    let listed = elsewhere.iter().map(Value::to_string).collect::<String>();
    for addr in [HINT_ADDR, NOREPLACE_ADDR] {
        assert!(
            !listed.contains(&addr.to_string()) && !listed.contains(&format!("{addr:x}")),
            "{addr:#x} was free in the child: {same}"
        );
    }
    // The child's capture: both regions mapped at the recorded addresses.
    let child = u32::try_from(report["child_pid"].as_u64().expect("child_pid")).expect("pid");
    let (_, events) = read_capture(&rerun_capture);
    let replayed = between_markers(&events, child);
    for label in ["hinted", "fixed-noreplace"] {
        let call = set.call(label);
        let addr = call.ret as u64;
        let found: Vec<&Event<'_>> = replayed
            .iter()
            .filter(|e| {
                e.syscall == Some(Syscall::Mmap) && e.ret == Some(addr as i64) && e.len == call.len
            })
            .collect();
        assert_eq!(found.len(), 1, "{label}: the child mapped {addr:#x} once");
    }
    // Every other mapping of the set is at its recorded address too, or listed as elsewhere.
    for call in set
        .calls
        .iter()
        .filter(|c| c.syscall == "mmap" && c.ret > 0)
    {
        let at_recorded = replayed.iter().any(|e| {
            e.syscall == Some(Syscall::Mmap) && e.ret == Some(call.ret) && e.len == call.len
        });
        let recorded = format!("{:#x}", call.ret);
        let listed = elsewhere
            .iter()
            .any(|e| e["recorded"].as_str() == Some(recorded.as_str()));
        // A MAP_FIXED into a region of the set that was placed elsewhere moves with that region
        // (the rerun translates its address): at the same offset in the region's new place.
        // Whether a region is placed elsewhere depends on the child's layout (ASLR).
        let address = |value: &Value| {
            value
                .as_str()
                .and_then(|hex| i64::from_str_radix(hex.trim_start_matches("0x"), 16).ok())
        };
        let fixed = call.flags.unwrap_or(0) & libc::MAP_FIXED as u64 != 0;
        let moved_to = elsewhere.iter().find_map(|e| {
            let (base, new_base) = (address(&e["recorded"])?, address(&e["rerun"])?);
            let region = set
                .calls
                .iter()
                .find(|c| c.syscall == "mmap" && c.ret == base)?;
            let end = base.checked_add(i64::try_from(region.len?).ok()?)?;
            (fixed && base <= call.ret && call.ret < end).then(|| new_base + (call.ret - base))
        });
        let moved_with_its_region = moved_to.is_some_and(|addr| {
            replayed.iter().any(|e| {
                e.syscall == Some(Syscall::Mmap) && e.ret == Some(addr) && e.len == call.len
            })
        });
        assert_eq!(
            u8::from(at_recorded) + u8::from(listed) + u8::from(moved_with_its_region),
            1,
            "{}: at its recorded address {recorded} ({at_recorded}), listed as elsewhere \
             ({listed}) or moved with the region it is in ({moved_to:?}, {moved_with_its_region}): \
             {same}",
            call.label
        );
    }
}

#[test]
#[ignore = "needs root"]
fn rerun_reports_a_recorded_enomem_that_succeeds_now_as_a_difference() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, set) = record_workload(dir.path(), &["--rlimit-as-fail"]);
    let failed = set.call("rlimit-as-enomem");
    assert_eq!(failed.ret, -i64::from(libc::ENOMEM));
    let out = analyze([
        OsStr::new("rerun"),
        capture.as_os_str(),
        OsStr::new("--pid"),
        OsStr::new(&set.pid.to_string()),
        OsStr::new("--format"),
        OsStr::new("json"),
        OsStr::new("--calls"),
    ]);
    let report = json(&out);
    assert_eq!(out.status.code(), Some(1), "outcomes differ: {report:#}");
    assert_eq!(report["calls"]["differ"].as_u64(), Some(1), "{report:#}");
    let differences = report["differences"].as_array().expect("differences");
    assert_eq!(differences.len(), 1, "{report:#}");
    let d = &differences[0];
    assert_eq!(d["syscall"], "mmap", "{d}");
    assert_eq!(
        d["recorded_ret"].as_i64(),
        Some(-i64::from(libc::ENOMEM)),
        "{d}"
    );
    assert!(
        d["rerun_ret"].as_i64().is_some_and(|r| r > 0),
        "the mapping succeeds without the limit: {d}"
    );
    assert!(d["why"].as_str().is_some_and(|w| !w.is_empty()), "{d}");
    // The difference names that call: 1 GiB, anonymous, MAP_NORESERVE.
    let seq = d["seq"].as_u64().expect("seq");
    let call = report["call_list"]
        .as_array()
        .expect("call_list")
        .iter()
        .find(|c| c["seq"].as_u64() == Some(seq))
        .expect("the call with that seq");
    assert_eq!(call["recorded"]["len"].as_u64(), failed.len, "{call}");
    assert_eq!(call["recorded"]["flags"].as_u64(), failed.flags, "{call}");
    assert_eq!(call["tid"].as_u64(), Some(u64::from(failed.tid)), "{call}");
}

/// Wall time of `mmap-analyze rerun CAPTURE --pid PID --speed SPEED`, which must succeed.
fn timed_rerun(capture: &Path, pid: u32, speed: &str) -> Duration {
    let start = Instant::now();
    let out = analyze([
        OsStr::new("rerun"),
        capture.as_os_str(),
        OsStr::new("--pid"),
        OsStr::new(&pid.to_string()),
        OsStr::new("--speed"),
        OsStr::new(speed),
    ]);
    let took = start.elapsed();
    assert_eq!(
        out.status.code(),
        Some(0),
        "rerun --speed {speed}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("rerun --speed {speed}: {:.3}s", took.as_secs_f64());
    took
}

#[test]
#[ignore = "needs root"]
fn rerun_speed_10_of_ten_seconds_takes_about_one() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, set) = record_workload(dir.path(), &["--spread", "10s"]);
    let span = set.calls.last().expect("calls").after_ns - set.calls[0].before_ns;
    assert!(
        (9_900_000_000..11_000_000_000).contains(&span),
        "the set spans about 10 s: {span} ns"
    );
    let paced = timed_rerun(&capture, set.pid, "10");
    assert!(
        paced >= Duration::from_millis(600) && paced <= Duration::from_secs(4),
        "--speed 10 of a 10 s capture took {paced:?}"
    );
    let max = timed_rerun(&capture, set.pid, "max");
    assert!(
        max < paced,
        "--speed max ({max:?}) is faster than --speed 10 ({paced:?})"
    );
}

#[test]
#[ignore = "needs root"]
fn rerun_bad_input_is_one_line_and_exit_2() {
    require_root!();
    let dir = tempfile::tempdir().expect("tempdir");
    let (capture, set) = record_workload(dir.path(), &[]);
    let (_, events) = read_capture(&capture);
    // A pid the capture does not hold.
    let absent = (1..)
        .find(|p| events.iter().all(|e| e.pid != *p))
        .expect("a pid");
    assert_ne!(absent, set.pid);
    let missing = dir.path().join("missing.parquet");
    for (args, names) in [
        (
            vec![
                capture.as_os_str(),
                OsStr::new("--pid"),
                OsStr::new(&absent.to_string()),
            ],
            absent.to_string(),
        ),
        (
            vec![
                missing.as_os_str(),
                OsStr::new("--pid"),
                OsStr::new(&set.pid.to_string()),
            ],
            "missing.parquet".to_owned(),
        ),
    ] {
        let mut all = vec![OsStr::new("rerun")];
        all.extend(args);
        let out = analyze(&all);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{all:?}: {stderr}");
        assert_eq!(
            stderr.trim_end().lines().count(),
            1,
            "{all:?}: one line: {stderr}"
        );
        assert!(stderr.contains(&names), "{all:?}: names {names}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
}
