//! Per-CPU batches of header-only records (recorder-common's `BATCH_RECORDS`), checked on this
//! test binary's own calls: the records of a CPU reach the ring as one item when user space
//! flushes it, a record that cannot wait sends the waiting ones first, and what is left at the
//! end is read from the batches. Also the kernel side's per-CPU cache of its target lookups,
//! which a target added by user space must invalidate.
use std::{os::fd::AsRawFd as _, path::Path};

use recorder_common::{Config, EventKind, RecordRef, filter, record_flags};

use super::{AttachMode, Probes};
use crate::{btf, ring::Ring};

/// munmap of these addresses (nothing is mapped there) marks this test's calls.
const MARK: u64 = 0x7e57_ba70_0000;

fn skip_without_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF needs root");
        return true;
    }
    false
}

/// Keeps the calling thread on its current CPU, so that its records share one batch; returns
/// that CPU.
fn stay_on_this_cpu() -> u32 {
    // SAFETY: sched_getcpu has no preconditions; the set is a local, and 0 is this thread.
    unsafe {
        let cpu = libc::sched_getcpu();
        assert!(cpu >= 0, "sched_getcpu");
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu as usize, &mut set);
        assert_eq!(
            libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &set),
            0,
            "sched_setaffinity"
        );
        cpu as u32
    }
}

/// munmap of the `i`th marked page (nothing is there: the call succeeds and changes nothing).
fn marked_call(i: u64) {
    // SAFETY: nothing is mapped at the marked addresses (they lie in no mapping of this
    // process), so unmapping them changes nothing.
    let ret = unsafe { libc::munmap((MARK + i * 4096) as *mut libc::c_void, 4096) };
    assert_eq!(ret, 0, "munmap of page {i}");
}

/// This thread's marked calls in the ring so far, as (mark number, came in a batch), in ring
/// order; an mmap of `len` bytes as (u64::MAX, came in a batch).
fn read_marks(ring: &mut Ring, len: u64) -> Vec<(u64, bool)> {
    let mut seen = Vec::new();
    while let Some(item) = ring.next() {
        seen.extend(marks_in(item, len));
    }
    seen
}

/// This thread's marked calls (and mmaps of `len` bytes) in one ring item, as [`read_marks`].
fn marks_in(item: &[u8], len: u64) -> Vec<(u64, bool)> {
    let tid = nix::unistd::gettid().as_raw() as u32;
    recorder_common::batch_items(item)
        .filter_map(|bytes| {
            let rec = RecordRef::decode(bytes).expect("a record the kernel wrote decodes");
            let head = rec.head;
            if head.tid != tid {
                return None;
            }
            let batched = head.flags & record_flags::BATCHED != 0;
            if head.event == EventKind::Munmap as u16 && head.args[0] >= MARK {
                Some(((head.args[0] - MARK) / 4096, batched))
            } else if head.event == EventKind::Mmap as u16 && head.args[1] == len {
                Some((u64::MAX, batched))
            } else {
                None
            }
        })
        .collect()
}

/// The programs loaded to record processes by tgid (with this one a target when `target`) and
/// attached to the syscall tracepoints, and their ring.
fn attached(target: bool) -> (Probes, Ring) {
    let offsets = btf::kernel_offsets(Path::new(btf::VMLINUX_BTF)).expect("kernel offsets");
    let config = Config {
        own_tgid: 0,
        filter: filter::BY_TGID,
        wakeup_bytes: 1 << 20,
        ..Default::default()
    };
    let mut probes = Probes::load(&config, &offsets, 4 << 20, None).expect("load");
    if target {
        probes.add_target(std::process::id()).expect("target");
    }
    let ring = probes.take_ring().expect("ring");
    probes.attach(AttachMode::Tracepoint).expect("attach");
    (probes, ring)
}

#[test]
#[ignore = "needs root"]
fn records_wait_in_their_cpus_batch_until_flushed_and_keep_their_order() {
    if skip_without_root() {
        return;
    }
    let (mut probes, mut ring) = attached(true);
    assert!(
        probes.enable_batches(),
        "the flush program runs on every CPU of this kernel"
    );
    probes.set_recording(true).expect("recording on");
    let cpu = stay_on_this_cpu();

    // Flushed: the five calls arrive, each in a batch item, and this CPU was flushed because
    // its batch was marked waiting.
    for i in 0..5 {
        marked_call(i);
    }
    let ran = probes.flush_batches().expect("flush");
    assert!(ran.contains(&cpu), "flushed {ran:?}, not CPU {cpu}");
    let flushed = read_marks(&mut ring, 0);
    assert_eq!(flushed, (0..5).map(|i| (i, true)).collect::<Vec<_>>());

    // A file-backed mmap has a path: it cannot wait, and sends the waiting calls first.
    for i in 5..8 {
        marked_call(i);
    }
    let exe = std::fs::File::open("/proc/self/exe").expect("open /proc/self/exe");
    const FILE_LEN: u64 = 0x5000;
    // SAFETY: a new private read-only mapping of an open file, unmapped below.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            FILE_LEN as usize,
            libc::PROT_READ,
            libc::MAP_PRIVATE,
            exe.as_raw_fd(),
            0,
        )
    };
    assert_ne!(addr, libc::MAP_FAILED);
    let in_order = read_marks(&mut ring, FILE_LEN);
    assert_eq!(
        in_order,
        [(5, true), (6, true), (7, true), (u64::MAX, false)],
        "the waiting calls, then the mmap with a path"
    );

    // Left in the batch at the end: read from the map once the programs are detached.
    for i in 8..10 {
        marked_call(i);
    }
    probes.set_recording(false).expect("recording off");
    probes.detach();
    // SAFETY: the mapping made above, not used.
    unsafe { libc::munmap(addr, FILE_LEN as usize) };
    let mut left = read_marks(&mut ring, FILE_LEN);
    for item in probes.waiting_batches().expect("waiting batches") {
        left.extend(marks_in(&item, FILE_LEN));
    }
    assert_eq!(left, [(8, true), (9, true)]);
}

/// A process added to the target set while it runs is recorded from then on: the kernel side's
/// cached "not a target" answers for it (its calls were seen before, on this CPU) are dropped
/// when user space adds it.
#[test]
#[ignore = "needs root"]
fn a_target_added_while_it_runs_is_recorded_at_once() {
    if skip_without_root() {
        return;
    }
    let (mut probes, mut ring) = attached(false);
    probes.set_recording(true).expect("recording on");
    let _ = stay_on_this_cpu();
    // Not a target yet: asked, and answered "no", on this CPU.
    for i in 0..3 {
        marked_call(i);
    }
    probes.add_target(std::process::id()).expect("target");
    for i in 3..6 {
        marked_call(i);
    }
    probes.set_recording(false).expect("recording off");
    probes.detach();
    let marks: Vec<u64> = read_marks(&mut ring, 0)
        .into_iter()
        .map(|(mark, _)| mark)
        .collect();
    assert_eq!(
        marks,
        [3, 4, 5],
        "only the calls made after it became a target"
    );
}

/// The periodic flush runs only on CPUs whose batch holds records: with nothing recorded, no
/// CPU gets the flush's IPI (the set-up's flush, which checks that the program runs at all,
/// still runs on every CPU).
#[test]
#[ignore = "needs root"]
fn quiet_cpus_are_not_flushed() {
    if skip_without_root() {
        return;
    }
    let (mut probes, _ring) = attached(false);
    assert!(
        probes.enable_batches(),
        "the flush program runs on every CPU of this kernel"
    );
    probes.set_recording(true).expect("recording on");
    for i in 0..3 {
        marked_call(i);
    }
    for _ in 0..2 {
        assert_eq!(probes.flush_batches().expect("flush"), Vec::<u32>::new());
    }
    probes.set_recording(false).expect("recording off");
    probes.detach();
}
