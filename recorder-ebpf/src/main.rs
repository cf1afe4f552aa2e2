//! Kernel side of mmap-recorder.
//!
//! One record per completed system call of the mmap family (mmap, munmap, mprotect, mremap,
//! brk): the entry program stores arguments, identity and (for a file-backed mmap) the file's
//! device, inode and path in the thread's task-local storage (the path in a per-thread map); the
//! exit program adds the return value and exit time and submits the record to the ring buffer
//! without a wakeup; a record with no path and no stack waits in a per-CPU batch that goes to the
//! ring as one item when full (or when user space flushes it, at each drain tick, or that CPU
//! sends any other record). User space drains the ring on a short timer; once more than `wakeup_bytes`
//! are waiting (or after an exec, so user space can snapshot the new address space at once) the
//! program forces a wakeup.
//!
//! Process lifecycle (fork of a new process, exec, exit of a whole process) comes from the sched
//! raw tracepoints. Records that do not fit in the ring are counted per CPU with the time window
//! they fell in, and that window is reported in-band, before the next record of that CPU.
//!
//! The attach modes share the entry/exit logic: syscall tracepoints, raw and BTF-typed (tp_btf)
//! `sys_enter`/`sys_exit` tracepoints, and a kprobe or fentry pair on `do_mmap` (the last two see
//! mappings the kernel makes itself too, such as the ELF segments at exec; they need kernel
//! features some kernels lack, and user space says which). The exit-only modes (syscall
//! tracepoints or tp_btf `sys_exit`) record each call at its exit alone, its arguments read from
//! the user registers.
//!
//! Nothing is recorded until user space turns recording on (the `RECORDING` map), once every
//! program is attached; it turns it off before detaching them. Target-set upkeep (following a
//! fork, forgetting an exited process) runs from attach to detach regardless.
//!
//! Every tracepoint program returns 1: a tracepoint program that returns 0 tells the kernel to drop
//! the event for every perf user of the tracepoint.
#![no_std]
#![no_main]
// atomic_xadd (see targets_changed).
#![feature(core_intrinsics)]
#![allow(internal_features)]

use core::ffi::c_void;

use aya_ebpf::{
    EbpfContext as _,
    bindings::{
        BPF_ANY, BPF_F_NO_PREALLOC, BPF_F_USER_STACK, BPF_LOCAL_STORAGE_GET_F_CREATE,
        BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP, bpf_map_type,
    },
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{
            bpf_get_current_ancestor_cgroup_id, bpf_get_current_comm, bpf_get_current_task,
            bpf_get_current_task_btf, bpf_get_smp_processor_id, bpf_get_stack,
            bpf_ktime_get_boot_ns, bpf_probe_read_kernel as generated_read_kernel,
            bpf_probe_read_kernel_str, bpf_probe_read_user, bpf_task_pt_regs, bpf_task_storage_get,
        },
    },
    macros::{btf_map, fentry, fexit, kprobe, kretprobe, map, raw_tracepoint},
    maps::{Array, HashMap, PerCpuArray, RingBuf},
    programs::{
        BtfTracePointContext, FEntryContext, FExitContext, ProbeContext, RawTracePointContext,
        RetProbeContext, TracePointContext,
    },
};
use recorder_common::{
    BATCH_RECORDS, COMM_LEN, COMPONENT_LEN, Config, DEFAULT_STACK_BYTES, EventKind, KernelOffsets,
    LossWindow, MAX_CGROUPS, MAX_COMPONENTS, MAX_STACK_BYTES, MAX_STACK_FRAMES, PATH_BUF, PATH_CAP,
    RECORD_HEADER, Record, RecordHeader, STACK_AREA, STACK_HEADER, StackHeader, counters, filter,
    record_flags, recording, stack_mode,
};

// ---- configuration, set by user space with EbpfLoader::override_global -------------------------

#[unsafe(no_mangle)]
static CONFIG: Config = Config {
    own_tgid: 0,
    filter: 0,
    wakeup_bytes: 1 << 20,
    cgroup_count: 0,
    _pad: 0,
    cgroups: [recorder_common::CgroupTarget {
        id: 0,
        level: 0,
        _pad: 0,
    }; MAX_CGROUPS],
    stack_mode: stack_mode::NONE,
    stack_syscalls: 0,
    stack_bytes: DEFAULT_STACK_BYTES as u32,
    _pad2: 0,
};

/// Kernel struct offsets read from BTF by user space.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
    task_files: 0,
    task_real_parent: 0,
    task_tgid: 0,
    task_pid: 0,
    task_exit_code: 0,
    task_group_leader: 0,
    task_thread_pid: 0,
    pid_level: 0,
    pid_numbers: 0,
    upid_size: 0,
    upid_ns: 0,
    pidns_inum: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_vfsmount: 0,
    file_dentry: 0,
    file_inode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    dentry_name: 0,
    dentry_parent: 0,
    dentry_hash_pprev: 0,
    vfsmount_root: 0,
    mount_mnt: 0,
    mount_parent: 0,
    mount_mountpoint: 0,
    binprm_filename: 0,
    task_ti_status: 0,
    task_cred: 0,
    cred_uid: 0,
    cred_gid: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    kernfs_node_id: 0,
};

/// Reads a field of a configuration global. The volatile read keeps the compiler from folding
/// the compile-time value, so the value user space wrote at load time is seen.
macro_rules! global {
    ($global:ident . $($field:tt)+) => {
        // SAFETY: the address of a field of a static in .rodata.
        unsafe { core::ptr::read_volatile(&raw const $global.$($field)+) }
    };
}

// ---- maps ----------------------------------------------------------------------------------

/// Records for user space. Its size is set by user space (`--ring-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Per-thread state, in task-local storage (`BPF_MAP_TYPE_TASK_STORAGE`): the call in flight and
/// the thread's cached identity. A lookup is a pointer walk from the current task, where a hash
/// map cost an insert at entry and a lookup and a delete at exit; the kernel frees a thread's
/// state with the thread, and there is no table to fill.
#[btf_map]
static TASKS: TaskStorage<TaskState> = TaskStorage::new();

/// What a thread keeps between the entry and the exit of a call, and across calls.
#[derive(Clone, Copy)]
#[repr(C)]
struct TaskState {
    /// The record's header of the call in flight (valid when `in_flight` is 1).
    head: RecordHeader,
    in_flight: u32,
    _pad: u32,
    identity: Identity,
}

/// A task-local storage map, declared the way aya-ebpf declares its other local-storage maps
/// (a BTF map definition in `.maps`); aya-ebpf 0.2 has inode, socket and cgroup storage but not
/// task storage. Storage maps take no size: `max_entries` 0 and no preallocation.
#[repr(C)]
struct TaskStorage<T> {
    r#type: *const [i32; bpf_map_type::BPF_MAP_TYPE_TASK_STORAGE as usize],
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; BPF_F_NO_PREALLOC as usize],
}

// SAFETY: the fields are placeholders that only describe the map in BTF; they are never read.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    const fn new() -> Self {
        Self {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    /// The current thread's value; with `create`, a zeroed one is made when it has none (which
    /// fails only when the kernel cannot allocate it).
    #[inline(always)]
    fn current(&self, create: bool) -> Option<&'static mut T> {
        let flags = if create {
            BPF_LOCAL_STORAGE_GET_F_CREATE as u64
        } else {
            0
        };
        // SAFETY: the map pointer is this map's own; the task is the current one (a trusted BTF
        // pointer); the value lives until the task is freed, and only the current thread (which
        // runs one program of ours at a time) uses it.
        unsafe {
            let p = bpf_task_storage_get(
                (self as *const Self).cast_mut().cast(),
                bpf_get_current_task_btf(),
                core::ptr::null_mut(),
                flags,
            );
            p.cast::<T>().as_mut()
        }
    }
}

/// The file path of an mmap call in flight, by thread id (only file-backed mmaps have one).
#[map]
static PATHS: HashMap<u32, [u8; PATH_BUF]> = HashMap::with_max_entries(4096, 0);

/// Identity facts that cost several kernel reads, kept per thread and reused for a second.
#[derive(Clone, Copy)]
#[repr(C)]
struct Identity {
    ppid: u32,
    pidns_ino: u32,
    ns_pid: u32,
    ns_tid: u32,
    /// When these were read (boot ns); 0: not read yet, or dropped (at exec).
    read_ns: u64,
    comm: [u8; COMM_LEN],
}

impl Identity {
    const UNREAD: Self = Self {
        ppid: 0,
        pidns_ino: 0,
        ns_pid: 0,
        ns_tid: 0,
        read_ns: 0,
        comm: [0; COMM_LEN],
    };
}

/// How long a cached identity is used: a reparented process shows its old ppid, and a thread
/// renamed with prctl(PR_SET_NAME) its old comm, at most this long. An exec drops the entry.
const IDENTITY_TTL_NS: u64 = 1_000_000_000;

/// Per-CPU scratch space to build a record in (too large for the 512-byte stack), with room
/// after it for a call stack (which starts right after the used part of the path).
#[map]
static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
struct Scratch {
    rec: Record,
    stack: [u8; STACK_AREA],
}

/// Loss and health counters, indexed by `recorder_common::counters`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

/// Whether recording is on (element 0 is `recorder_common::recording::ON`): user space turns it
/// on once every program is attached and off before it detaches them. Programs attach and detach
/// one by one, over a second or so; without this switch every call made while the exit programs
/// were attached and the entry programs were not (at the end, as they are detached in order) was
/// an orphan exit: hundreds of thousands under a busy mmap loop.
#[map]
static RECORDING: Array<u32> = Array::with_max_entries(1, 0);

/// Records of calls (no path, no stack) of this CPU waiting to go to the ring together: a ring
/// reservation (a spinlock taken with interrupts off, the producer position moved, a commit)
/// for every `BATCH_RECORDS` records instead of each one. User space flushes the batches that
/// hold records (`WAITING`) at each drain tick (running `flush_batches` on their CPUs) and reads
/// what is left after detaching.
#[map]
static BATCH: PerCpuArray<Batch> = PerCpuArray::with_max_entries(1, 0);

/// 1 while this CPU's batch holds records. Set by the program that puts the first record in the
/// batch and cleared by the one that sends it; user space reads every CPU's value at each tick
/// (a few bytes each, where `BATCH` is kilobytes) and runs the flush only on the CPUs marked, so
/// that quiet CPUs get no IPI. Per CPU, so no two CPUs write the same cache line.
#[map]
static WAITING: PerCpuArray<u32> = PerCpuArray::with_max_entries(1, 0);

#[repr(C)]
struct Batch {
    /// Records waiting (at most BATCH_RECORDS).
    n: u32,
    /// Set while a program changes the batch: a flush that interrupts it (`flush_batches` runs
    /// in an IPI on that CPU) leaves it alone, and so does a program that finds it set.
    busy: u32,
    /// `n` record headers, RECORD_HEADER bytes each, as u64 words.
    words: [u64; BATCH_RECORDS * RECORD_HEADER / 8],
}

/// Records lost on this CPU and not yet reported in-band.
#[map]
static LOSS: PerCpuArray<LossWindow> = PerCpuArray::with_max_entries(1, 0);

/// Target processes (filter::BY_TGID).
#[map]
static TARGET_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(16384, 0);

/// How often the target set (`TARGET_TGIDS`) changed: element 0 counts the kernel side's
/// changes (a followed fork, an exit; added atomically), element 1 user space's
/// (`Probes::add_target`, its only writer). Both only grow, so their sum never comes back to a
/// value it had: an answer of `target_tgid` cached at one sum holds while the sum stays.
#[map]
static TARGETS_CHANGED: Array<u64> = Array::with_max_entries(2, 0);

/// Per CPU, the last answer of `target_tgid`, one word read and written whole: the low 31 bits
/// of the change count (bits 33-63), the tgid (bits 1-32) and the answer (bit 0).
#[map]
static TARGET_CACHE: PerCpuArray<u64> = PerCpuArray::with_max_entries(1, 0);

/// Target command names (filter::BY_COMM), NUL padded to 16 bytes.
#[map]
static TARGET_COMMS: HashMap<[u8; COMM_LEN], u8> = HashMap::with_max_entries(64, 0);

#[inline(always)]
fn count(index: u32) {
    count_n(index, 1);
}

#[inline(always)]
fn count_n(index: u32, n: u64) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot of this CPU; programs do not migrate while they run.
        unsafe { *counter += n };
    }
}

/// Is recording on? An array lookup, inlined by the verifier: a few instructions.
#[inline(always)]
fn recording() -> bool {
    RECORDING.get(0).is_some_and(|on| *on & recording::ON != 0)
}

/// Do the records of calls wait in this CPU's batch (`recording::BATCHES`)?
#[inline(always)]
fn batching() -> bool {
    RECORDING
        .get(0)
        .is_some_and(|on| *on & recording::BATCHES != 0)
}

#[inline(always)]
fn now() -> u64 {
    // SAFETY: helper without preconditions.
    unsafe { bpf_ktime_get_boot_ns() }
}

/// Is this process recorded?
#[inline(always)]
fn wanted(tgid: u32) -> bool {
    if tgid == global!(CONFIG.own_tgid) {
        return false;
    }
    let mode = global!(CONFIG.filter);
    if mode & (filter::BY_TGID | filter::BY_COMM | filter::BY_CGROUP) == 0 {
        return true;
    }
    if mode & filter::BY_TGID != 0 && target_tgid(tgid) {
        return true;
    }
    if mode & filter::BY_COMM != 0
        && let Some(comm) = current_comm()
        // SAFETY: as above.
        && unsafe { TARGET_COMMS.get(comm) }.is_some()
    {
        return true;
    }
    if mode & filter::BY_CGROUP != 0 {
        let n = global!(CONFIG.cgroup_count) as usize;
        for i in 0..MAX_CGROUPS {
            if i >= n {
                break;
            }
            let level = global!(CONFIG.cgroups[i].level);
            // SAFETY: helper without memory preconditions.
            let id = unsafe { bpf_get_current_ancestor_cgroup_id(level as i32) };
            if id != 0 && id == global!(CONFIG.cgroups[i].id) {
                return true;
            }
        }
    }
    false
}

/// Is `tgid` in the target set? A process's calls on a CPU ask again and again: the answer is
/// kept per CPU, with the change count read before the lookup, until the set changes (a
/// hash lookup was a tenth of an entry program's time).
#[inline(always)]
fn target_tgid(tgid: u32) -> bool {
    let changes = |i: u32| {
        TARGETS_CHANGED
            .get_ptr(i)
            // SAFETY: an element of an array map, read once.
            .map_or(0, |p| unsafe { core::ptr::read_volatile(p) })
    };
    let key = ((changes(0).wrapping_add(changes(1)) & 0x7fff_ffff) << 33) | (u64::from(tgid) << 1);
    let cache = TARGET_CACHE.get_ptr_mut(0);
    if let Some(cache) = cache {
        // SAFETY: this CPU's slot, one aligned word.
        let cached = unsafe { core::ptr::read_volatile(cache) };
        if cached & !1 == key {
            return cached & 1 != 0;
        }
    }
    // SAFETY: map values are only tested for presence.
    let found = unsafe { TARGET_TGIDS.get(tgid) }.is_some();
    if let Some(cache) = cache {
        // SAFETY: as above.
        unsafe { core::ptr::write_volatile(cache, key | u64::from(found)) };
    }
    found
}

/// Counts a change of the target set made here (see `TARGETS_CHANGED`).
#[inline(always)]
fn targets_changed() {
    if let Some(p) = TARGETS_CHANGED.get_ptr_mut(0) {
        // SAFETY: an aligned u64 of an array map, changed only by atomic adds on this side.
        // (The BPF target has no atomic types: the intrinsic is a BPF atomic add.)
        unsafe {
            core::intrinsics::atomic_xadd::<u64, u64, { core::intrinsics::AtomicOrdering::Relaxed }>(
                p, 1,
            )
        };
    }
}

/// The current thread's command name, NUL padded (aya's helper zeroes its buffer first, which
/// is a byte-by-byte memset call in BPF; the kernel helper pads the name itself).
#[inline(always)]
fn current_comm() -> Option<[u8; COMM_LEN]> {
    let mut comm = core::mem::MaybeUninit::<[u8; COMM_LEN]>::uninit();
    // SAFETY: the helper writes all COMM_LEN bytes (the name, then NULs; zeroes on failure).
    unsafe {
        (bpf_get_current_comm(comm.as_mut_ptr().cast(), COMM_LEN as u32) == 0)
            .then(|| comm.assume_init())
    }
}

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
fn kread<T>(base: *const u8, offset: u32) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly on a bad pointer.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()) }
        .map_err(i64::from)
}

#[inline(always)]
fn current_task() -> *const u8 {
    // SAFETY: helper without preconditions; the pointer is only dereferenced via probe reads.
    unsafe { bpf_get_current_task() as *const u8 }
}

/// The per-CPU scratch record.
#[inline(always)]
fn scratch() -> Option<&'static mut Record> {
    // SAFETY: this CPU's slot; nothing else uses it while this program runs.
    SCRATCH.get_ptr_mut(0).map(|p| unsafe { &mut (*p).rec })
}

/// Fills the identity fields of `head` from the current task; `cache` is the thread's cached
/// identity, read again when it is older than `IDENTITY_TTL_NS` or was never read.
#[inline(always)]
fn fill_identity(head: &mut RecordHeader, kind: EventKind, pid_tgid: u64, cache: &mut Identity) {
    head.event = kind as u16;
    head.flags = 0;
    head.ts_enter_ns = now();
    head.ts_exit_ns = 0;
    head.ret = 0;
    head.tgid = (pid_tgid >> 32) as u32;
    head.tid = pid_tgid as u32;
    let task = current_task_btf();
    let cred: *const u8 = btf_load(task, global!(OFFSETS.task_cred));
    head.uid = btf_load(cred, global!(OFFSETS.cred_uid));
    head.gid = btf_load(cred, global!(OFFSETS.cred_gid));
    let css_set: *const u8 = btf_load(task, global!(OFFSETS.task_cgroups));
    let cgroup: *const u8 = btf_load(css_set, global!(OFFSETS.css_set_dfl_cgrp));
    let kn: *const u8 = btf_load(cgroup, global!(OFFSETS.cgroup_kn));
    head.cgroup_id = btf_load(kn, global!(OFFSETS.kernfs_node_id));
    // SAFETY: helper without preconditions.
    head.cpu = unsafe { bpf_get_smp_processor_id() };
    head.file_dev = 0;
    head.file_ino = 0;
    head.path_len = 0;

    if cache.read_ns == 0 || head.ts_enter_ns.wrapping_sub(cache.read_ns) >= IDENTITY_TTL_NS {
        *cache = read_identity(head.ts_enter_ns);
    }
    copy_comm(&mut head.comm, &cache.comm);
    head.ppid = cache.ppid;
    head.pidns_ino = cache.pidns_ino;
    head.ns_pid = cache.ns_pid;
    head.ns_tid = cache.ns_tid;
}

/// Copies a command name as two u64s: an array assignment can become a call to a byte-by-byte
/// memmove in BPF.
#[inline(always)]
fn copy_comm(to: &mut [u8; COMM_LEN], from: &[u8; COMM_LEN]) {
    let (to, from) = (to.as_mut_ptr().cast::<u64>(), from.as_ptr().cast::<u64>());
    // SAFETY: both arrays are COMM_LEN = 16 bytes and 8-aligned (asserted below).
    unsafe {
        to.write(from.read());
        to.add(1).write(from.add(1).read());
    }
}
const _: () = assert!(
    COMM_LEN == 16
        && core::mem::offset_of!(RecordHeader, comm).is_multiple_of(8)
        && core::mem::offset_of!(Identity, comm).is_multiple_of(8)
        && align_of::<RecordHeader>() == 8
        && align_of::<Identity>() == 8
);

/// Stores a call's arguments one by one: LLVM turns an array assignment with zeros in it into a
/// call to a byte-by-byte memset in BPF; volatile stores keep them stores.
#[inline(always)]
fn set_args(head: &mut RecordHeader, args: &[u64; 6]) {
    for (i, arg) in args.iter().enumerate() {
        // SAFETY: a write to an element of `head.args`.
        unsafe { core::ptr::write_volatile(&raw mut head.args[i], *arg) };
    }
}

/// Copies a record header 8 bytes at a time: a struct assignment becomes a call to a
/// byte-by-byte memmove in BPF (152 loads and stores and a loop).
#[inline(always)]
fn copy_header(to: &mut RecordHeader, from: &RecordHeader) {
    let (to, from) = (
        (to as *mut RecordHeader).cast::<u64>(),
        (from as *const RecordHeader).cast::<u64>(),
    );
    let mut i = 0;
    while i < RECORD_HEADER / 8 {
        // SAFETY: RecordHeader is RECORD_HEADER bytes (a multiple of 8) and 8-aligned; the
        // two headers do not overlap.
        unsafe { core::ptr::write_volatile(to.add(i), from.add(i).read()) };
        i += 1;
    }
}
const _: () = assert!(RECORD_HEADER.is_multiple_of(8));

/// The parent's tgid and the pid-namespace identity of the current thread.
#[inline(always)]
fn read_identity(now: u64) -> Identity {
    let task = current_task();
    let ppid = kread::<*const u8>(task, global!(OFFSETS.task_real_parent))
        .and_then(|parent| kread::<u32>(parent, global!(OFFSETS.task_tgid)))
        .unwrap_or(0);
    let (pidns_ino, ns_tid) = ns_ids(task);
    let ns_pid = kread::<*const u8>(task, global!(OFFSETS.task_group_leader))
        .map(|leader| ns_ids(leader).1)
        .unwrap_or(0);
    Identity {
        ppid,
        pidns_ino,
        ns_pid,
        ns_tid,
        read_ns: now,
        comm: current_comm().unwrap_or([0; COMM_LEN]),
    }
}

/// (pid namespace inode, id in that namespace) of a task.
#[inline(always)]
fn ns_ids(task: *const u8) -> (u32, u32) {
    let inner = || -> Result<(u32, u32), i64> {
        let pid: *const u8 = kread(task, global!(OFFSETS.task_thread_pid))?;
        if pid.is_null() {
            return Ok((0, 0));
        }
        let level: u32 = kread(pid, global!(OFFSETS.pid_level))?;
        let upid = global!(OFFSETS.pid_numbers) + (level & 31) * global!(OFFSETS.upid_size);
        let nr: u32 = kread(pid, upid)?;
        let ns: *const u8 = kread(pid, upid + global!(OFFSETS.upid_ns))?;
        let inum: u32 = kread(ns, global!(OFFSETS.pidns_inum))?;
        Ok((inum, nr))
    };
    inner().unwrap_or((0, 0))
}

// ---- files and paths ---------------------------------------------------------------------

/// task->files->fdt->fd[fd], or null.
#[inline(always)]
fn file_of_fd(task: *const u8, fd: u32) -> Result<*const u8, i64> {
    let files: *const u8 = kread(task, global!(OFFSETS.task_files))?;
    let fdt: *const u8 = kread(files, global!(OFFSETS.files_fdt))?;
    let max_fds: u32 = kread(fdt, global!(OFFSETS.fdt_max_fds))?;
    if fd >= max_fds {
        return Ok(core::ptr::null());
    }
    let fd_array: *const u8 = kread(fdt, global!(OFFSETS.fdt_fd))?;
    kread(fd_array, fd.wrapping_mul(8))
}

/// Appends one NUL-terminated dentry name at `*off` of `rec.path`; false when full.
#[inline(always)]
fn push_component(path: &mut [u8], off: &mut usize, dentry: *const u8) -> bool {
    if *off >= PATH_CAP {
        return false;
    }
    let Ok(name) = kread::<*const u8>(dentry, global!(OFFSETS.dentry_name)) else {
        return false;
    };
    let at = *off & (PATH_CAP - 1);
    // SAFETY: at < PATH_CAP and at most COMPONENT_LEN bytes are written, so the write stays
    // inside `path` (PATH_CAP + COMPONENT_LEN bytes); the helper NUL-terminates.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            path.as_mut_ptr().add(at).cast(),
            COMPONENT_LEN as u32,
            name.cast(),
        )
    };
    if n <= 0 {
        return false;
    }
    *off = at + n as usize;
    true
}

/// Device and inode of `file` into `head`, and its path into `path`: the path as its components,
/// last first, each NUL terminated, walking dentries and crossing mounts up to the root of the
/// mount tree.
#[inline(always)]
fn describe_file(head: &mut RecordHeader, path: &mut [u8], file: *const u8) -> Result<(), i64> {
    let inode: *const u8 = kread(file, global!(OFFSETS.file_inode))?;
    head.file_ino = kread(inode, global!(OFFSETS.inode_ino))?;
    let sb: *const u8 = kread(inode, global!(OFFSETS.inode_sb))?;
    head.file_dev = kread(sb, global!(OFFSETS.sb_dev))?;
    head.flags |= record_flags::HAS_FILE;

    let mut dentry: *const u8 = kread(file, global!(OFFSETS.file_dentry))?;
    let mut vfsmnt: *const u8 = kread(file, global!(OFFSETS.file_vfsmount))?;
    let mount_mnt = global!(OFFSETS.mount_mnt) as usize;
    let mut mnt = vfsmnt.wrapping_sub(mount_mnt);
    let pprev: u64 = kread(dentry, global!(OFFSETS.dentry_hash_pprev))?;
    let parent: *const u8 = kread(dentry, global!(OFFSETS.dentry_parent))?;
    if pprev == 0 && parent != dentry {
        head.flags |= record_flags::FILE_DELETED;
    }
    let mut off = 0usize;
    let mut done = 0u16;
    for _ in 0..MAX_COMPONENTS {
        let root: *const u8 = kread(vfsmnt, global!(OFFSETS.vfsmount_root))?;
        if dentry == root {
            let mnt_parent: *const u8 = kread(mnt, global!(OFFSETS.mount_parent))?;
            if mnt_parent == mnt {
                done = record_flags::PATH_COMPLETE;
                break;
            }
            dentry = kread(mnt, global!(OFFSETS.mount_mountpoint))?;
            mnt = mnt_parent;
            vfsmnt = mnt.wrapping_add(mount_mnt);
            continue;
        }
        let parent: *const u8 = kread(dentry, global!(OFFSETS.dentry_parent))?;
        if !push_component(path, &mut off, dentry) {
            break;
        }
        if parent == dentry {
            // Not under a mounted tree: memfd and other pseudo files.
            done = record_flags::PATH_PSEUDO;
            break;
        }
        dentry = parent;
    }
    head.flags |= if done == 0 {
        record_flags::PATH_TRUNCATED
    } else {
        done
    };
    head.path_len = (off & (PATH_BUF - 1)) as u16;
    Ok(())
}

// ---- entry and exit ------------------------------------------------------------------------

/// Stores a call in flight: `args` of `kind`, and the file of `fd` when given.
#[inline(always)]
fn enter(kind: EventKind, args: [u64; 6], file: FileArg) {
    if !recording() {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted((pid_tgid >> 32) as u32) {
        return;
    }
    let Some(state) = TASKS.current(true) else {
        // No task-local storage could be allocated: the call is lost, and its exit will be an
        // orphan.
        count(counters::ENTRY_MAP_FULL);
        return;
    };
    let head = &mut state.head;
    fill_identity(head, kind, pid_tgid, &mut state.identity);
    set_args(head, &args);
    state.in_flight = 1;
    let file = match file {
        FileArg::None => return,
        FileArg::Fd(fd) => file_of_fd(current_task(), fd).unwrap_or_default(),
        FileArg::Ptr(file) => file,
    };
    if file.is_null() {
        return;
    }
    // The path is built in the per-CPU scratch record (too large for the 512-byte stack) and
    // kept by thread id until the exit.
    let Some(rec) = scratch() else { return };
    let _ = describe_file(head, &mut rec.path, file);
    if head.path_len != 0 {
        #[expect(
            clippy::needless_borrows_for_generic_args,
            reason = "by value, the path would be copied onto the 512-byte BPF stack"
        )]
        let stored = PATHS
            .insert(pid_tgid as u32, &rec.path, BPF_ANY as u64)
            .is_ok();
        if !stored {
            // No room for the path: keep the call, without its path.
            head.path_len = 0;
            head.flags |= record_flags::PATH_TRUNCATED;
        }
    }
}

enum FileArg {
    None,
    Fd(u32),
    Ptr(*const u8),
}

/// The file argument of an mmap call: its fd unless the mapping is anonymous.
#[inline(always)]
fn mmap_file(flags: u64, fd: u64) -> FileArg {
    const MAP_ANONYMOUS: u64 = 0x20;
    let fd = fd as u32 as i32;
    if flags & MAP_ANONYMOUS == 0 && fd >= 0 {
        FileArg::Fd(fd as u32)
    } else {
        FileArg::None
    }
}

/// The file argument of a call of `kind` with `args`: an mmap's fd, for the others none.
#[inline(always)]
fn file_arg(kind: EventKind, args: &[u64; 6]) -> FileArg {
    match kind {
        EventKind::Mmap => mmap_file(args[3], args[4]),
        _ => FileArg::None,
    }
}

/// What the exit of a call needs to take its user stack: the program's context (for
/// bpf_get_stack) and where the user registers are.
#[derive(Clone, Copy)]
struct StackCtx {
    ctx: *mut c_void,
    regs: Regs,
}

#[derive(Clone, Copy)]
enum Regs {
    /// bpf_task_pt_regs of the current task (syscall tracepoints).
    Task,
    /// The `struct pt_regs *` the raw sys_exit tracepoint gets (read through probe reads).
    Raw(*const u8),
    /// The same pointer as a BTF-typed tracepoint (tp_btf) gets it: the verifier knows its
    /// type, so its fields are read with plain loads.
    Btf(*const u8),
}

impl Regs {
    /// The u64 of struct pt_regs at `offset` (0 when it cannot be read).
    #[inline(always)]
    fn get(self, offset: u32) -> u64 {
        match self {
            Self::Btf(regs) => btf_load(regs, offset),
            Self::Raw(regs) => kread(regs, offset).unwrap_or(0),
            // SAFETY: helpers without preconditions; the pointer is only read through a probe
            // read.
            Self::Task => kread(
                unsafe { bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u8 },
                offset,
            )
            .unwrap_or(0),
        }
    }
}

/// The six argument registers of the current call: di, si, dx, r10, r8, r9. They hold at the
/// exit what they held at the entry for the calls of the family (only `ax` takes the result).
#[inline(always)]
fn user_args(regs: Regs) -> [u64; 6] {
    match regs {
        Regs::Btf(_) | Regs::Raw(_) => PT_REGS_ARGS.map(|off| regs.get(off)),
        Regs::Task => {
            // r10, r9, r8, ax, cx, dx, si, di: one read of struct pt_regs from offset 56, into
            // a local left uninitialised (zeroing it costs a byte-by-byte memset call in BPF).
            let mut window = core::mem::MaybeUninit::<[u64; 8]>::uninit();
            // SAFETY: reads 64 bytes of the current task's pt_regs into a local of that size;
            // the helper fails cleanly, and then zeroes the destination, on a bad address:
            // either way all 64 bytes are written.
            let window = unsafe {
                let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u8;
                generated_read_kernel(
                    window.as_mut_ptr().cast(),
                    64,
                    regs.wrapping_add(PT_REGS_R10 as usize).cast(),
                );
                window.assume_init()
            };
            [
                window[7], window[6], window[5], window[0], window[2], window[1],
            ]
        }
    }
}

/// A field of a BTF-typed kernel pointer, as a plain load: the verifier checks the access
/// against the type, and turns it into a checked load that reads 0 from a bad address. The
/// offset must be known to the verifier: a constant, or a value of the read-only globals.
#[inline(always)]
fn btf_load<T>(base: *const u8, offset: u32) -> T {
    // SAFETY: `base` is a kernel pointer the verifier knows the type of (a tp_btf argument,
    // the BTF-typed current task, or a pointer loaded from one of their fields), and `offset`
    // that of a member of type `T` in it.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) }
}

/// The current task, as a pointer the verifier knows the type of (`struct task_struct`).
#[inline(always)]
fn current_task_btf() -> *const u8 {
    // SAFETY: helper without preconditions; the pointer is only read through `btf_load`.
    unsafe { bpf_get_current_task_btf() as *const u8 }
}

/// Does this call get a stack? The configuration is read-only after load, so the verifier
/// knows the answer and drops the stack code when stacks are off.
#[inline(always)]
fn wants_stack(event: u16) -> bool {
    global!(CONFIG.stack_mode) != stack_mode::NONE
        && global!(CONFIG.stack_syscalls) & (1u32 << (event & 31)) != 0
}

/// struct pt_regs (x86_64): bp, ip and sp.
const PT_REGS_BP: u32 = 32;
const PT_REGS_IP: u32 = 128;
const PT_REGS_SP: u32 = 152;

/// Completes the current thread's call in flight with `ret` and submits it; with `stack`, and
/// when stacks are on for this call, with the user call stack.
///
/// Every caller passes only calls of the family (the raw and BTF-typed `sys_exit` programs check
/// the number first). When the targets are processes (`--pid`, a command), a process that is
/// not a target returns before the task-local storage lookup, which costs ~48 ns a run even
/// for a thread that has none (`--prog-stats` of a filtered recording, stop 55: `sys_exit_mm`
/// 121 -> 73 ns a run, `btf_sys_exit` 85 -> 64; a recorded exit pays ~10 ns more for the
/// target check, a hit in the per-CPU cache). A process leaves that set only once it has
/// exited, after the exits of its calls. A thread's command name or cgroup can change while
/// one of its calls is in flight, so with `--comm` or `--cgroup` targets the exit looks up the
/// storage first: a call whose entry was recorded is completed whatever its exit's target
/// check would say.
#[inline(always)]
fn exit(ret: i64, stack: Option<StackCtx>) {
    if !recording() {
        return;
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    // The configuration is read-only: the verifier keeps one of the two paths.
    let by_process = global!(CONFIG.filter) & (filter::BY_COMM | filter::BY_CGROUP) == 0;
    if by_process && !wanted((pid_tgid >> 32) as u32) {
        return;
    }
    // The call in flight, if its entry was recorded.
    let Some(state) = TASKS.current(false).filter(|s| s.in_flight != 0) else {
        // An ia32 call's entry was skipped (see in_compat_syscall): not an orphan.
        if (by_process || wanted((pid_tgid >> 32) as u32)) && !in_compat_syscall() {
            count(counters::ORPHAN_EXIT);
        }
        return;
    };
    let tid = pid_tgid as u32;
    state.in_flight = 0;
    let head = &mut state.head;
    head.ret = ret;
    head.ts_exit_ns = now();
    if let Some(stack) = stack
        && wants_stack(head.event)
        && let Some(s) = SCRATCH.get_ptr_mut(0)
    {
        // SAFETY: this CPU's slot; nothing else uses it while this program runs.
        submit_with_stack(unsafe { &mut *s }, head, tid, stack);
    } else if head.path_len == 0 {
        submit_header(head);
    } else if let (Some(rec), Some(path)) = (scratch(), PATHS.get_ptr(tid)) {
        copy_header(&mut rec.head, head);
        let len = (head.path_len as usize).min(PATH_BUF);
        // SAFETY: copies len <= PATH_BUF bytes between two PATH_BUF-byte map values.
        let copied =
            unsafe { generated_read_kernel(rec.path.as_mut_ptr().cast(), len as u32, path.cast()) };
        if copied != 0 {
            rec.head.path_len = 0;
        }
        submit(rec, false);
        let _ = PATHS.remove(tid);
    } else {
        head.path_len = 0;
        submit_header(head);
    }
}

/// Records a call at its exit only (the exit-only mode): the arguments are read from the user
/// registers, which hold them at exit as at entry for these calls (only `ax` takes the result);
/// an mmap's file is its fd's file at exit. There is no entry time: the record carries
/// `record_flags::EXIT_ONLY` and the exit time in both times.
#[inline(always)]
fn exit_only(nr: u64, ret: i64, ctx: *mut c_void, regs: Regs) {
    if !recording() {
        return;
    }
    let Some(kind) = family_call(nr) else { return };
    let pid_tgid = bpf_get_current_pid_tgid();
    if !wanted((pid_tgid >> 32) as u32) {
        return;
    }
    // The syscall tracepoints never run for an ia32 call; sys_exit runs for every call.
    if !matches!(regs, Regs::Task) && in_compat_syscall() {
        return;
    }
    let (Some(state), Some(s)) = (TASKS.current(true), SCRATCH.get_ptr_mut(0)) else {
        count(counters::ENTRY_MAP_FULL);
        return;
    };
    // SAFETY: this CPU's slot; nothing else uses it while this program runs.
    let s = unsafe { &mut *s };
    let head = &mut s.rec.head;
    fill_identity(head, kind, pid_tgid, &mut state.identity);
    head.flags = record_flags::EXIT_ONLY;
    head.ts_exit_ns = head.ts_enter_ns;
    head.ret = ret;
    set_args(head, &user_args(regs));
    if let FileArg::Fd(fd) = file_arg(kind, &head.args) {
        let file = file_of_fd(current_task(), fd).unwrap_or_default();
        if !file.is_null() {
            let _ = describe_file(head, &mut s.rec.path, file);
        }
    }
    if wants_stack(s.rec.head.event) {
        send_with_stack(s, StackCtx { ctx, regs });
    } else {
        submit(&s.rec, false);
    }
}

/// Builds the record of a completed call in `s` (header, path, stack header, stack) and sends
/// it. See recorder-common for the layout.
#[inline(always)]
fn submit_with_stack(s: &mut Scratch, head: &RecordHeader, tid: u32, stack: StackCtx) {
    copy_header(&mut s.rec.head, head);
    if head.path_len != 0 {
        let len = (head.path_len as usize).min(PATH_BUF);
        let copied = match PATHS.get_ptr(tid) {
            // SAFETY: copies len <= PATH_BUF bytes between two PATH_BUF-byte map values.
            Some(path) => unsafe {
                generated_read_kernel(s.rec.path.as_mut_ptr().cast(), len as u32, path.cast())
            },
            None => -1,
        };
        if copied != 0 {
            s.rec.head.path_len = 0;
        }
        let _ = PATHS.remove(tid);
    }
    send_with_stack(s, stack);
}

/// Adds the user call stack to the record in `s` (its header and path complete) and sends it.
#[inline(always)]
fn send_with_stack(s: &mut Scratch, stack: StackCtx) {
    s.rec.head.flags |= record_flags::HAS_STACK;
    // Where the stack header goes: after the path rounded up to 8 bytes (at most PATH_BUF, which
    // is a multiple of 8; the bound is said again for the verifier).
    let mut at = (s.rec.head.path_len as usize + 7) & !7;
    if at > PATH_BUF {
        at = PATH_BUF;
    }
    let base = (s as *mut Scratch).cast::<u8>();
    // SAFETY: RECORD_HEADER + at <= size_of::<Record>(), and STACK_AREA bytes follow the record
    // in Scratch: the header and up to MAX_STACK_BYTES of data lie inside `s`.
    let (sh, data) = unsafe {
        let sh = base.add(RECORD_HEADER + at);
        (sh.cast::<StackHeader>(), sh.add(STACK_HEADER))
    };
    // The user registers: the same at exit as at entry for these calls.
    let ip = stack.regs.get(PT_REGS_IP);
    let sp = stack.regs.get(PT_REGS_SP);
    let bp = stack.regs.get(PT_REGS_BP);
    let mut leaf_ret = 0u64;
    // SAFETY: reads 8 bytes of user memory into a local; the helper fails cleanly (and zeroes
    // the destination) when they are not mapped.
    let _ = unsafe { bpf_probe_read_user((&raw mut leaf_ret).cast(), 8, sp as *const c_void) };
    let mode = global!(CONFIG.stack_mode);
    let len: u32 = if mode == stack_mode::FP {
        // SAFETY: `data` has room for MAX_STACK_BYTES >= MAX_STACK_FRAMES * 8 bytes; the ctx is
        // the program's own.
        let n = unsafe {
            bpf_get_stack(
                stack.ctx,
                data.cast(),
                (MAX_STACK_FRAMES * 8) as u32,
                BPF_F_USER_STACK as u64,
            )
        };
        if n > 0 { (n as u32) & !7 } else { 0 }
    } else {
        // The read fails whole if any byte is unmapped: when the stack ends sooner than asked,
        // try half as much, a few times.
        let mut want = global!(CONFIG.stack_bytes) & !7;
        if want as usize > MAX_STACK_BYTES {
            want = MAX_STACK_BYTES as u32;
        }
        let mut got = 0u32;
        for _ in 0..5 {
            if want == 0 {
                break;
            }
            // SAFETY: `data` has room for MAX_STACK_BYTES >= want bytes; the helper checks the
            // user address and fails cleanly.
            let r = unsafe { bpf_probe_read_user(data.cast(), want, sp as *const c_void) };
            if r == 0 {
                got = want;
                break;
            }
            want = (want >> 1) & !7;
        }
        got
    };
    // SAFETY: `sh` points at STACK_HEADER bytes inside `s` (above); unaligned-safe writes.
    unsafe {
        sh.write_unaligned(StackHeader {
            mode,
            len,
            ip,
            sp,
            bp,
            leaf_ret,
        });
    }
    let mut total = RECORD_HEADER + at + STACK_HEADER + len as usize;
    if total > size_of::<Scratch>() {
        total = size_of::<Scratch>();
    }
    // SAFETY: `base` points at a whole Scratch and total <= size_of::<Scratch>().
    let bytes = unsafe { core::slice::from_raw_parts(base.cast_const(), total) };
    output(bytes, s.rec.head.cpu, false);
}

/// Sends `rec` (its header and the used part of its path) to user space.
#[inline(always)]
fn submit(rec: &Record, urgent: bool) {
    let len = RECORD_HEADER + ((rec.head.path_len as usize + 7) & !7);
    let len = if len > size_of::<Record>() {
        size_of::<Record>()
    } else {
        len
    };
    // SAFETY: `rec` points at a whole Record and len <= size_of::<Record>().
    let bytes = unsafe { core::slice::from_raw_parts((rec as *const Record).cast::<u8>(), len) };
    output(bytes, rec.head.cpu, urgent);
}

/// Sends a record without a path: its header only.
#[inline(always)]
fn submit_header(head: &RecordHeader) {
    // SAFETY: `head` points at a whole RecordHeader of RECORD_HEADER bytes.
    let bytes = unsafe {
        core::slice::from_raw_parts((head as *const RecordHeader).cast::<u8>(), RECORD_HEADER)
    };
    output(bytes, head.cpu, false);
}

/// Puts `bytes` in the ring, after reporting any loss of this CPU not yet reported; wakes user
/// space only when `urgent` or when the ring fills. With batches on, the record of a call with
/// no path and no stack waits in this CPU's batch, which goes to the ring when full; any other record
/// sends the batch first, so that a CPU's records reach the ring in the order they were made.
#[inline(always)]
fn output(bytes: &[u8], cpu: u32, urgent: bool) {
    // SAFETY: this CPU's slot. A program that interrupts this one on the same CPU (the flush,
    // in an IPI) sees `busy` and leaves the batch, and the loss window, alone.
    let batch = BATCH
        .get_ptr_mut(0)
        .filter(|_| batching())
        .map(|b| unsafe { &mut *b })
        .filter(|b| b.busy == 0);
    if let Some(b) = batch {
        // SAFETY: a store to this CPU's slot, kept a store before the changes below.
        unsafe { core::ptr::write_volatile(&raw mut b.busy, 1) };
        report_loss(cpu);
        let waits = !urgent && is_plain_call(bytes) && append(b, bytes);
        if !waits {
            flush(b);
            send(bytes, urgent);
        }
        // SAFETY: as above, after the changes.
        unsafe { core::ptr::write_volatile(&raw mut b.busy, 0) };
    } else {
        report_loss(cpu);
        send(bytes, urgent);
    }
}

/// Is this the record of a call with no path and no stack (a header alone)? Lifecycle events
/// do not wait: a process's exit stays after its calls of other CPUs that were sent already.
#[inline(always)]
fn is_plain_call(bytes: &[u8]) -> bool {
    bytes.len() == RECORD_HEADER
        && u16::from_ne_bytes([bytes[0], bytes[1]]) < EventKind::Fork as u16
}

/// Adds the record of a call to the batch, and sends the batch when that fills it; false when
/// the batch was already full (not left so: a full batch is sent at once).
#[inline(always)]
fn append(b: &mut Batch, bytes: &[u8]) -> bool {
    const WORDS: usize = RECORD_HEADER / 8;
    let n = b.n as usize;
    if n >= BATCH_RECORDS || bytes.len() < RECORD_HEADER {
        return false;
    }
    let from = bytes.as_ptr().cast::<u64>();
    // SAFETY: n < BATCH_RECORDS, so the WORDS words from n * WORDS lie inside `words`; `bytes`
    // holds RECORD_HEADER = 8 * WORDS bytes, 8-aligned (a record header in a map value).
    unsafe {
        let to = b.words.as_mut_ptr().add(n * WORDS);
        let mut i = 0;
        while i < WORDS {
            core::ptr::write_volatile(to.add(i), from.add(i).read());
            i += 1;
        }
        // The flags (bytes 2-3 of the first word): one of a batch.
        let first = to.read() | (u64::from(record_flags::BATCHED) << 16);
        core::ptr::write_volatile(to, first);
    }
    b.n = (n + 1) as u32;
    if n == 0 {
        mark_waiting(1);
    }
    if n + 1 == BATCH_RECORDS {
        flush(b);
    }
    true
}

/// Sends the waiting records of a batch as one ring item (they are counted emitted, or lost,
/// together).
#[inline(always)]
fn flush(b: &mut Batch) {
    let n = b.n as usize;
    if n == 0 || n > BATCH_RECORDS {
        b.n = 0;
        return;
    }
    b.n = 0;
    mark_waiting(0);
    let len = n * RECORD_HEADER;
    // SAFETY: `words` holds BATCH_RECORDS * RECORD_HEADER bytes and len is at most that.
    let bytes = unsafe { core::slice::from_raw_parts(b.words.as_ptr().cast::<u8>(), len) };
    if EVENTS.output::<[u8]>(bytes, wakeup(false) as u64).is_ok() {
        count_n(counters::EMITTED, n as u64);
        return;
    }
    // No room for the whole batch (a small ring under a flood): as many of its records as fit,
    // one by one, as they would have gone without batches; the rest are counted lost.
    let mut sent = 0usize;
    for i in 0..BATCH_RECORDS {
        if i >= n {
            break;
        }
        // SAFETY: record i < n <= BATCH_RECORDS lies inside `words`.
        let one = unsafe {
            core::slice::from_raw_parts(
                b.words.as_ptr().add(i * (RECORD_HEADER / 8)).cast::<u8>(),
                RECORD_HEADER,
            )
        };
        if EVENTS.output::<[u8]>(one, BPF_RB_NO_WAKEUP as u64).is_err() {
            break;
        }
        sent += 1;
    }
    count_n(counters::EMITTED, sent as u64);
    if sent < n {
        lost_n((n - sent) as u64);
    }
}

/// Marks whether this CPU's batch holds records (`WAITING`).
#[inline(always)]
fn mark_waiting(waiting: u32) {
    if let Some(mark) = WAITING.get_ptr_mut(0) {
        // SAFETY: this CPU's slot, one aligned u32.
        unsafe { core::ptr::write_volatile(mark, waiting) };
    }
}

/// The wakeup flag of a record put in the ring: user space is woken when `urgent` or when the
/// ring fills past `wakeup_bytes`; otherwise it reads at its next tick.
#[inline(always)]
fn wakeup(urgent: bool) -> u32 {
    if urgent || EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= global!(CONFIG.wakeup_bytes) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    }
}

/// Puts one record in the ring.
#[inline(always)]
fn send(bytes: &[u8], urgent: bool) {
    match EVENTS.output::<[u8]>(bytes, wakeup(urgent) as u64) {
        Ok(()) => count(counters::EMITTED),
        Err(_) => lost(),
    }
}

/// Sends this CPU's waiting records. Never attached: user space runs it on each CPU in turn
/// (BPF_PROG_TEST_RUN with BPF_F_TEST_RUN_ON_CPU, in an IPI there) at every drain tick, so that
/// the records of a CPU that went quiet wait no longer than that.
#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn flush_batches(_ctx: RawTracePointContext) -> i32 {
    if let Some(b) = BATCH.get_ptr_mut(0) {
        // SAFETY: this CPU's slot; a program it interrupted has set `busy`.
        let b = unsafe { &mut *b };
        if b.busy == 0 {
            flush(b);
        }
    }
    0
}

/// Counts a record that did not fit, in this CPU's loss window.
#[inline(always)]
fn lost() {
    lost_n(1);
}

/// Counts `n` records that did not fit, in this CPU's loss window.
#[inline(always)]
fn lost_n(n: u64) {
    count_n(counters::LOST_RINGBUF_FULL, n);
    if let Some(w) = LOSS.get_ptr_mut(0) {
        // SAFETY: this CPU's slot.
        let w = unsafe { &mut *w };
        let t = now();
        if w.count == 0 {
            w.first_ns = t;
        }
        w.count += n;
        w.last_ns = t;
    }
}

/// Emits this CPU's pending loss window as a `Lost` record, if there is one and it fits.
#[inline(always)]
fn report_loss(cpu: u32) {
    let Some(w) = LOSS.get_ptr_mut(0) else { return };
    // SAFETY: this CPU's slot.
    let w = unsafe { &mut *w };
    if w.count == 0 {
        return;
    }
    let Some(mut entry) = EVENTS.reserve_bytes(RECORD_HEADER, 0) else {
        return;
    };
    let p = entry.as_mut_ptr().cast::<Record>();
    // SAFETY: the reservation holds RECORD_HEADER bytes, 8-aligned (the ring aligns every
    // record to 8); only header fields (all below RECORD_HEADER) are written, through raw
    // pointers, before the whole header is initialised.
    unsafe {
        // Zeroed 8 bytes at a time: write_bytes becomes a byte-by-byte memset call in BPF.
        let words = p.cast::<u64>();
        for i in 0..RECORD_HEADER / 8 {
            core::ptr::write_volatile(words.add(i), 0);
        }
        (&raw mut (*p).head.event).write(EventKind::Lost as u16);
        (&raw mut (*p).head.cpu).write(cpu);
        (&raw mut (*p).head.ts_enter_ns).write(w.first_ns);
        (&raw mut (*p).head.ts_exit_ns).write(w.last_ns);
        (&raw mut (*p).head.args[0]).write(w.count);
    }
    entry.submit(0);
    w.count = 0;
}

// ---- syscall tracepoints -----------------------------------------------------------------
//
// These programs are written without aya's #[tracepoint] macro: in aya-ebpf 0.2 it discards the
// function's result and returns 0, and a tracepoint program returning 0 makes the kernel drop the
// event for every perf user of that tracepoint. Returning 1 leaves the event to them. The section
// name ("tracepoint/<category>/<name>") is what marks a tracepoint program for the loader.

/// Direct load of a u64 field of the tracepoint record (cheaper than bpf_probe_read).
#[inline(always)]
fn tp_u64(ctx: &TracePointContext, offset: usize) -> u64 {
    // SAFETY: offsets come from the tracepoint's format file (below) and lie inside the record;
    // the verifier checks context accesses against the record size.
    unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(offset).cast::<u64>()) }
}

/// The first N arguments of a syscall tracepoint record: each `unsigned long` from offset 16.
#[inline(always)]
fn tp_args<const N: usize>(ctx: &TracePointContext) -> [u64; 6] {
    // Element by element: zeroing the array first becomes a byte-by-byte memset call in BPF.
    let arg = |i: usize| if i < N { tp_u64(ctx, 16 + 8 * i) } else { 0 };
    [arg(0), arg(1), arg(2), arg(3), arg(4), arg(5)]
}

// The syscall tracepoints' records (from /sys/kernel/tracing/events/syscalls/*/format) all start
// with the common header and `int __syscall_nr` at offset 8, then the arguments from offset 16:
//   sys_enter_mmap:     addr, len, prot, flags, fd, off     (unsigned long each)
//   sys_enter_munmap:   addr, len
//   sys_enter_mprotect: start, len, prot
//   sys_enter_mremap:   addr, old_len, new_len, flags, new_addr
//   sys_enter_brk:      brk
//   sys_exit_*:         long ret at offset 16

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_mmap")]
pub fn sys_enter_mmap(ctx: *mut c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    let args = tp_args::<6>(&ctx);
    enter(EventKind::Mmap, args, mmap_file(args[3], args[4]));
    1
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_munmap")]
pub fn sys_enter_munmap(ctx: *mut c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    enter(EventKind::Munmap, tp_args::<2>(&ctx), FileArg::None);
    1
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_mprotect")]
pub fn sys_enter_mprotect(ctx: *mut c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    enter(EventKind::Mprotect, tp_args::<3>(&ctx), FileArg::None);
    1
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_mremap")]
pub fn sys_enter_mremap(ctx: *mut c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    enter(EventKind::Mremap, tp_args::<5>(&ctx), FileArg::None);
    1
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_enter_brk")]
pub fn sys_enter_brk(ctx: *mut c_void) -> u32 {
    let ctx = TracePointContext::new(ctx);
    enter(EventKind::Brk, tp_args::<1>(&ctx), FileArg::None);
    1
}

/// The exit-only program (`--attach tracepoint-exit`), attached to every sys_exit_* tracepoint of
/// the family and to no sys_enter_*: half the program runs of the tracepoint mode. The call is
/// told by the record's `__syscall_nr` (an int at offset 8).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_mmap")]
pub fn sys_exit_only(ctx: *mut c_void) -> u32 {
    let tp = TracePointContext::new(ctx);
    let nr = tp_u64(&tp, 8) & 0xffff_ffff;
    exit_only(nr, tp_u64(&tp, 16) as i64, ctx, Regs::Task);
    1
}

/// One exit program, attached to every sys_exit_* tracepoint of the family: the entry map says
/// which call is completing.
#[unsafe(no_mangle)]
#[unsafe(link_section = "tracepoint/syscalls/sys_exit_mmap")]
pub fn sys_exit_mm(ctx: *mut c_void) -> u32 {
    let stack = StackCtx {
        ctx,
        regs: Regs::Task,
    };
    let ctx = TracePointContext::new(ctx);
    exit(tp_u64(&ctx, 16) as i64, Some(stack));
    1
}

// ---- raw sys_enter / sys_exit ------------------------------------------------------------

/// x86_64 syscall numbers of the family.
const NR_MMAP: u64 = 9;
const NR_MPROTECT: u64 = 10;
const NR_MUNMAP: u64 = 11;
const NR_BRK: u64 = 12;
const NR_MREMAP: u64 = 25;

/// struct pt_regs (x86_64): argument registers di, si, dx, r10, r8, r9 and orig_ax.
const PT_REGS_ARGS: [u32; 6] = [112, 104, 96, 56, 72, 64];
/// The lowest of them, r10: r10, r9, r8, ax, cx, dx, si, di lie in that order from there.
const PT_REGS_R10: u32 = 56;
const PT_REGS_ORIG_AX: u32 = 120;

/// `thread_info.status` bit of a task in an ia32 system call (arch/x86/include/asm/thread_info.h).
const TS_COMPAT: u32 = 0x0002;

/// Is the current thread in an ia32 system call (a 32-bit process, or `int $0x80` from a 64-bit
/// one)? Its number is then an ia32 one: 9 to 12 and 25 are link, unlink, execve, chdir and
/// stime there, not calls of the family. The syscall tracepoints skip such calls in the kernel;
/// the raw and BTF-typed sys_enter/sys_exit, which see every call, must skip them here.
#[inline(always)]
fn in_compat_syscall() -> bool {
    btf_load::<u32>(current_task_btf(), global!(OFFSETS.task_ti_status)) & TS_COMPAT != 0
}

/// The call of the family that x86_64 syscall number `nr` is, if any.
#[inline(always)]
fn family_call(nr: u64) -> Option<EventKind> {
    match nr {
        NR_MMAP => Some(EventKind::Mmap),
        NR_MUNMAP => Some(EventKind::Munmap),
        NR_MPROTECT => Some(EventKind::Mprotect),
        NR_MREMAP => Some(EventKind::Mremap),
        NR_BRK => Some(EventKind::Brk),
        _ => None,
    }
}

/// sys_enter(struct pt_regs *regs, long id), raw or BTF-typed: every system call's entry.
#[inline(always)]
fn any_sys_enter(id: u64, regs: Regs) {
    let Some(kind) = family_call(id) else { return };
    if in_compat_syscall() {
        return;
    }
    let args = user_args(regs);
    enter(kind, args, file_arg(kind, &args));
}

/// sys_exit(struct pt_regs *regs, long ret), raw or BTF-typed: every system call's exit.
#[inline(always)]
fn any_sys_exit(ctx: *mut c_void, regs: Regs, ret: i64) {
    if family_call(regs.get(PT_REGS_ORIG_AX)).is_some() {
        exit(ret, Some(StackCtx { ctx, regs }));
    }
}

#[raw_tracepoint(tracepoint = "sys_enter")]
pub fn raw_sys_enter(ctx: RawTracePointContext) -> i32 {
    any_sys_enter(ctx.arg(1), Regs::Raw(ctx.arg(0)));
    0
}

#[raw_tracepoint(tracepoint = "sys_exit")]
pub fn raw_sys_exit(ctx: RawTracePointContext) -> i32 {
    any_sys_exit(ctx.as_ptr(), Regs::Raw(ctx.arg(0)), ctx.arg(1));
    0
}

// ---- BTF-typed sys_enter / sys_exit (tp_btf) ---------------------------------------------
//
// The same two tracepoints as the raw ones, attached as BPF_TRACE_RAW_TP tracing programs: the
// verifier knows `regs` is a `struct pt_regs *`, so the registers are plain loads, where a raw
// tracepoint reads each through bpf_probe_read_kernel. They run for every system call of the
// host, as the raw ones do, and skip the syscall tracepoints' per-call work (the perf trace
// buffer and the copy of the arguments into it). Their return value is ignored.

#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sys_enter")]
pub fn btf_sys_enter(ctx: *mut c_void) -> i32 {
    let tp = BtfTracePointContext::new(ctx);
    any_sys_enter(tp.arg(1), Regs::Btf(tp.arg(0)));
    0
}

#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sys_exit")]
pub fn btf_sys_exit(ctx: *mut c_void) -> i32 {
    let tp = BtfTracePointContext::new(ctx);
    any_sys_exit(ctx, Regs::Btf(tp.arg(0)), tp.arg(1));
    0
}

/// The exit-only program on the BTF-typed sys_exit (`--attach tp-btf-exit`).
#[unsafe(no_mangle)]
#[unsafe(link_section = "tp_btf/sys_exit")]
pub fn btf_sys_exit_only(ctx: *mut c_void) -> i32 {
    let tp = BtfTracePointContext::new(ctx);
    let regs = Regs::Btf(tp.arg(0));
    exit_only(regs.get(PT_REGS_ORIG_AX), tp.arg(1), ctx, regs);
    0
}

// ---- do_mmap: kprobe and fentry ------------------------------------------------------------

// unsigned long do_mmap(struct file *file, unsigned long addr, unsigned long len,
//     unsigned long prot, unsigned long flags, vm_flags_t vm_flags, unsigned long pgoff,
//     unsigned long *populate, struct list_head *uf);
// Recorded as mmap(addr, len, prot, flags, fd = -1, off = pgoff << 12): do_mmap has no fd, it
// has the file itself.

#[inline(always)]
fn do_mmap_args(addr: u64, len: u64, prot: u64, flags: u64, pgoff: u64) -> [u64; 6] {
    [addr, len, prot, flags, u32::MAX as u64, pgoff << 12]
}

#[kprobe(function = "do_mmap")]
pub fn kprobe_do_mmap(ctx: ProbeContext) -> u32 {
    let arg = |n| ctx.arg::<u64>(n).unwrap_or(0);
    let file: *const u8 = ctx.arg(0).unwrap_or_default();
    // The 7th argument (pgoff) is on the stack, out of reach of ProbeContext::arg.
    enter(
        EventKind::Mmap,
        do_mmap_args(arg(1), arg(2), arg(3), arg(4), 0),
        FileArg::Ptr(file),
    );
    0
}

#[kretprobe(function = "do_mmap")]
pub fn kretprobe_do_mmap(ctx: RetProbeContext) -> u32 {
    // No stacks through do_mmap (user space refuses --stacks with this mode).
    exit(ctx.ret::<i64>(), None);
    0
}

#[fentry(function = "do_mmap")]
pub fn fentry_do_mmap(ctx: FEntryContext) -> i32 {
    let file: *const u8 = ctx.arg(0);
    enter(
        EventKind::Mmap,
        do_mmap_args(ctx.arg(1), ctx.arg(2), ctx.arg(3), ctx.arg(4), ctx.arg(6)),
        FileArg::Ptr(file),
    );
    0
}

#[fexit(function = "do_mmap")]
pub fn fexit_do_mmap(ctx: FExitContext) -> i32 {
    exit(ctx.arg::<i64>(9), None);
    0
}

// ---- process lifecycle (sched raw tracepoints) ------------------------------------------

/// Emits a lifecycle record built in the scratch record.
#[inline(always)]
fn lifecycle(kind: EventKind, arg0: u64) -> Option<&'static mut Record> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let rec = scratch()?;
    match TASKS.current(true) {
        Some(state) => fill_identity(&mut rec.head, kind, pid_tgid, &mut state.identity),
        // An exiting task gets no new storage: read its identity afresh.
        None => {
            let mut fresh = Identity::UNREAD;
            fill_identity(&mut rec.head, kind, pid_tgid, &mut fresh);
        }
    }
    rec.head.args = [arg0, 0, 0, 0, 0, 0];
    Some(rec)
}

/// sched_process_fork(struct task_struct *parent, struct task_struct *child): current is the
/// parent. Only new processes are recorded (a new thread shares its parent's address space).
#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let child: *const u8 = ctx.arg(1);
    let (Ok(child_tgid), Ok(child_pid)) = (
        kread::<u32>(child, global!(OFFSETS.task_tgid)),
        kread::<u32>(child, global!(OFFSETS.task_pid)),
    ) else {
        return 0;
    };
    if child_tgid != child_pid {
        return 0;
    }
    let parent_tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(parent_tgid) {
        return 0;
    }
    let mode = global!(CONFIG.filter);
    if mode & filter::FOLLOW_FORKS != 0 && mode & filter::BY_TGID != 0 {
        if TARGET_TGIDS.insert(child_tgid, 1, BPF_ANY as u64).is_ok() {
            targets_changed();
        } else {
            // The map of followed processes is full: this child is not recorded. Counted, so
            // that the capture says so (counted whether or not recording is on yet: a child
            // missed before the start is missed all the same).
            count(counters::FOLLOW_MAP_FULL);
        }
    }
    if recording()
        && let Some(rec) = lifecycle(EventKind::Fork, child_tgid as u64)
    {
        submit(rec, false);
    }
    0
}

/// sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm): the new
/// image is in place; the wakeup is forced so user space snapshots the new mappings at once.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(tgid) {
        return 0;
    }
    let bprm: *const u8 = ctx.arg(2);
    // The new program has a new comm: read the identity again at the next call.
    if let Some(state) = TASKS.current(false) {
        state.identity.read_ns = 0;
    }
    if !recording() {
        return 0;
    }
    let Some(rec) = lifecycle(EventKind::Exec, 0) else {
        return 0;
    };
    if let Ok(name) = kread::<*const u8>(bprm, global!(OFFSETS.binprm_filename)) {
        // SAFETY: at most PATH_CAP bytes into the path buffer; the helper NUL-terminates.
        let n = unsafe {
            bpf_probe_read_kernel_str(rec.path.as_mut_ptr().cast(), PATH_CAP as u32, name.cast())
        };
        if n > 0 {
            rec.head.path_len = (n as usize & (PATH_CAP - 1)) as u16;
            rec.head.flags |= record_flags::PATH_STRING;
            if n as usize >= PATH_CAP {
                rec.head.flags |= record_flags::PATH_TRUNCATED;
            }
        }
    }
    submit(rec, true);
    0
}

/// sched_process_exit(struct task_struct *p, bool group_dead): recorded when the whole process
/// is gone (group_dead); the process leaves the target set.
#[raw_tracepoint(tracepoint = "sched_process_exit")]
pub fn sched_process_exit(ctx: RawTracePointContext) -> i32 {
    let group_dead: u64 = ctx.arg(1);
    if group_dead & 0xff == 0 {
        return 0;
    }
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !wanted(tgid) {
        return 0;
    }
    if recording() {
        let code = kread::<i32>(current_task(), global!(OFFSETS.task_exit_code)).unwrap_or(0);
        if let Some(rec) = lifecycle(EventKind::Exit, code as u32 as u64) {
            submit(rec, false);
        }
    }
    if global!(CONFIG.filter) & filter::BY_TGID != 0 {
        // The pid may be reused by an unrelated process.
        if TARGET_TGIDS.remove(tgid).is_ok() {
            targets_changed();
        }
    }
    0
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
