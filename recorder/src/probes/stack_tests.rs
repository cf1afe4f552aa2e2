//! The raw call stacks the kernel side attaches to records (`--stacks fp|dwarf`), checked
//! against this test binary's own calls: the programs are loaded for this process only, it maps
//! memory from functions whose address ranges its symbol table gives, and the record of that
//! call is read straight from the ring buffer.
use std::{ops::Range, path::Path};

use object::{Object as _, ObjectSymbol as _};
use recorder_common::{
    Config, EventKind, MAX_STACK_FRAMES, RecordRef, StackHeader, filter, stack_mode,
};

use super::{AttachMode, Probes};
use crate::btf;

/// A length nothing else in this process maps.
const LEN: usize = 0x13_000;

/// Calls mmap itself: the libc wrapper returns here (`leaf_ret`).
#[inline(never)]
fn stack_probe_inner(len: usize) -> usize {
    // SAFETY: an anonymous private mapping at an address of the kernel's choosing; unmapped by
    // the caller.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            std::hint::black_box(len),
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    std::hint::black_box(addr as usize)
}

/// Calls [`stack_probe_inner`]: its return address is on the stack above the wrapper's.
#[inline(never)]
fn stack_probe_outer(len: usize) -> usize {
    let addr = stack_probe_inner(std::hint::black_box(len));
    std::hint::black_box(addr)
}

/// Runtime address range of a function of this binary, from its symbol table.
fn range_of(function: usize, name: &str) -> Range<u64> {
    let data = std::fs::read("/proc/self/exe").expect("read /proc/self/exe");
    let file = object::File::parse(&*data).expect("parse /proc/self/exe");
    let symbol = file
        .symbols()
        .find(|s| s.name().is_ok_and(|n| n.contains(name)) && s.size() > 0)
        .unwrap_or_else(|| panic!("{name} is not in the symbol table"));
    let start = function as u64;
    assert_eq!(
        start.wrapping_sub(symbol.address()) & 0xfff,
        0,
        "{name}: the load bias is page aligned"
    );
    start..start + symbol.size()
}

/// The attach modes that hook the system calls (and take user stacks).
const SYSCALL_MODES: [AttachMode; 5] = [
    AttachMode::Tracepoint,
    AttachMode::TracepointExit,
    AttachMode::RawTracepoint,
    AttachMode::TpBtf,
    AttachMode::TpBtfExit,
];

/// Records this thread's `stack_probe_outer` mmap with stacks in `mode` through `attach`, and
/// returns the record's bytes.
fn record_own_call(mode: u32, attach: AttachMode) -> Vec<u8> {
    let offsets = btf::kernel_offsets(Path::new(btf::VMLINUX_BTF)).expect("kernel offsets");
    let config = Config {
        // Pid 0 makes no calls: this process is recorded.
        own_tgid: 0,
        filter: filter::BY_TGID,
        wakeup_bytes: 1 << 20,
        stack_mode: mode,
        stack_syscalls: Config::stack_bit(EventKind::Mmap),
        stack_bytes: 8192,
        ..Default::default()
    };
    let mut probes = Probes::load(&config, &offsets, 4 << 20, None).expect("load");
    probes.add_target(std::process::id()).expect("target");
    let mut ring = probes.take_ring().expect("ring");
    probes.attach(attach).expect("attach");
    probes.set_recording(true).expect("recording on");
    let addr = stack_probe_outer(LEN);
    probes.set_recording(false).expect("recording off");
    probes.detach();
    assert_ne!(addr as *mut libc::c_void, libc::MAP_FAILED);
    // SAFETY: the mapping made above, of LEN bytes, is not used.
    unsafe { libc::munmap(addr as *mut libc::c_void, LEN) };
    let tid = nix::unistd::gettid().as_raw() as u32;
    let mut found = None;
    while let Some(item) = ring.next() {
        let rec = RecordRef::decode(item).expect("a record the kernel wrote decodes");
        if rec.head.event == EventKind::Mmap as u16
            && rec.head.tid == tid
            && rec.head.args[1] == LEN as u64
        {
            found = Some(item.to_vec());
        }
    }
    found.expect("the call was recorded")
}

fn skip_without_root() -> bool {
    if !nix::unistd::geteuid().is_root() {
        eprintln!("skipped: loading eBPF needs root");
        return true;
    }
    false
}

/// fp: frame 0 is the user ip (in the libc wrapper), the 8 bytes at sp are the return address
/// into the function that called the wrapper (the frame a frame-pointer walk skips), and the
/// frames are whole u64 return addresses, at most 127.
#[test]
#[ignore = "needs root"]
fn fp_stacks_start_at_the_wrapper_and_name_its_caller() {
    if skip_without_root() {
        return;
    }
    let inner = range_of(stack_probe_inner as *const () as usize, "stack_probe_inner");
    for attach in SYSCALL_MODES {
        let item = record_own_call(stack_mode::FP, attach);
        let rec = RecordRef::decode(&item).expect("decodes");
        let stack = rec.stack.expect("the record has a stack");
        let StackHeader {
            mode,
            len,
            ip,
            sp,
            leaf_ret,
            ..
        } = stack.head;
        assert_eq!(mode, stack_mode::FP, "{attach:?}");
        let frames: Vec<u64> = stack.frames().collect();
        assert!(
            !frames.is_empty() && frames.len() <= MAX_STACK_FRAMES,
            "{attach:?}: {frames:x?}"
        );
        assert_eq!(len as usize, frames.len() * 8);
        assert_eq!(frames[0], ip, "{attach:?}: frame 0 is the user ip");
        assert!(!inner.contains(&ip), "{attach:?}: the ip is in the wrapper");
        assert!(sp != 0 && sp % 8 == 0, "{attach:?}: sp {sp:#x}");
        assert!(
            inner.contains(&leaf_ret),
            "{attach:?}: leaf_ret {leaf_ret:#x} is a return address into stack_probe_inner \
             {inner:x?}"
        );
    }
}

/// dwarf: the copy starts at sp (its first word is `leaf_ret`, inside the function that called
/// the wrapper), holds the return address into that function's caller, and is as long as asked
/// (or a halving of it, when the stack ends sooner).
#[test]
#[ignore = "needs root"]
fn dwarf_stacks_copy_the_stack_from_sp_with_the_callers_return_addresses() {
    if skip_without_root() {
        return;
    }
    let inner = range_of(stack_probe_inner as *const () as usize, "stack_probe_inner");
    let outer = range_of(stack_probe_outer as *const () as usize, "stack_probe_outer");
    for attach in SYSCALL_MODES {
        let item = record_own_call(stack_mode::DWARF, attach);
        let rec = RecordRef::decode(&item).expect("decodes");
        let stack = rec.stack.expect("the record has a stack");
        assert_eq!(stack.head.mode, stack_mode::DWARF, "{attach:?}");
        assert_eq!(stack.frames().count(), 0);
        assert!(
            [8192, 4096, 2048, 1024, 512].contains(&stack.data.len()),
            "{attach:?}: {} bytes",
            stack.data.len()
        );
        let words: Vec<u64> = stack
            .data
            .chunks_exact(8)
            .map(|w| u64::from_ne_bytes(w.try_into().expect("8 bytes")))
            .collect();
        assert_eq!(
            words[0], stack.head.leaf_ret,
            "{attach:?}: the copy starts at sp"
        );
        assert!(
            inner.contains(&words[0]),
            "{attach:?}: {:#x} is a return address into stack_probe_inner {inner:x?}",
            words[0]
        );
        assert!(
            words.iter().any(|w| outer.contains(w)),
            "{attach:?}: the copy holds a return address into stack_probe_outer {outer:x?}"
        );
        assert!(stack.head.ip != 0 && !inner.contains(&stack.head.ip));
    }
}
