//! Kernel side of mmap-recorder.
//!
//! One record per completed system call: the entry program stores arguments, identity and (for a
//! file-backed mapping) the file's device, inode and name in a per-thread map; the exit program
//! adds the return value and exit time and submits the whole record to the ring buffer without a
//! wakeup. User space drains the ring on a short timer; once more than `WAKEUP_BYTES` are waiting,
//! the exit program forces a wakeup. Everything that cannot be recorded is counted in `COUNTERS`.
//!
//! Every program returns 1: for tracepoint programs a return of 0 tells the kernel to drop the
//! event for every perf user of the tracepoint (`perf record -e syscalls:sys_enter_mmap` would see
//! nothing while we record).
#![no_std]
#![no_main]

use aya_ebpf::{
    EbpfContext as _,
    bindings::{BPF_ANY, BPF_RB_AVAIL_DATA, BPF_RB_FORCE_WAKEUP, BPF_RB_NO_WAKEUP},
    helpers::{
        bpf_get_current_comm, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        bpf_probe_read_kernel,
        generated::{
            bpf_get_current_cgroup_id, bpf_get_current_task, bpf_get_smp_processor_id,
            bpf_ktime_get_boot_ns, bpf_probe_read_kernel_str,
        },
    },
    macros::{map, tracepoint},
    maps::{HashMap, PerCpuArray, RingBuf},
    programs::TracePointContext,
};
use recorder_common::{
    EventKind, KernelOffsets, PATH_LEN, SyscallRecord, counters, file_flags, filter_mode,
};

// ---- configuration, set by user space with EbpfLoader::override_global -------------------------

/// The recorder's own tgid: never recorded.
#[unsafe(no_mangle)]
static OWN_TGID: u32 = 0;
/// One of `recorder_common::filter_mode`.
#[unsafe(no_mangle)]
static FILTER_MODE: u32 = filter_mode::ALL;
/// Force a ring-buffer wakeup once this many bytes wait to be read.
#[unsafe(no_mangle)]
static WAKEUP_BYTES: u64 = 1 << 20;
/// Kernel struct offsets read from BTF by user space.
#[unsafe(no_mangle)]
static OFFSETS: KernelOffsets = KernelOffsets {
    task_files: 0,
    task_real_parent: 0,
    task_tgid: 0,
    files_fdt: 0,
    fdt_max_fds: 0,
    fdt_fd: 0,
    file_dentry: 0,
    file_inode: 0,
    inode_ino: 0,
    inode_sb: 0,
    sb_dev: 0,
    dentry_name: 0,
};

#[inline(always)]
fn global<T: Copy>(value: &'static T) -> T {
    // SAFETY: the reference points at a static in .rodata; the volatile read keeps the compiler
    // from folding the compile-time value, so the value user space wrote at load time is seen.
    unsafe { core::ptr::read_volatile(value) }
}

// ---- maps ----------------------------------------------------------------------------------

/// Completed records. Its size is set by user space (`--ring-size`).
#[map]
static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

/// Calls in flight, by thread id.
#[map]
static ENTRIES: HashMap<u32, SyscallRecord> = HashMap::with_max_entries(16384, 0);

/// Per-CPU scratch space to build a record in (too large for the 512-byte stack).
#[map]
static SCRATCH: PerCpuArray<SyscallRecord> = PerCpuArray::with_max_entries(1, 0);

/// Loss and health counters, indexed by `recorder_common::counters`.
#[map]
static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(counters::COUNT, 0);

/// Target processes when FILTER_MODE is TARGETS.
#[map]
static TARGET_TGIDS: HashMap<u32, u8> = HashMap::with_max_entries(8192, 0);

#[inline(always)]
fn count(index: u32) {
    if let Some(counter) = COUNTERS.get_ptr_mut(index) {
        // SAFETY: per-CPU slot of this CPU; programs do not migrate while they run.
        unsafe { *counter += 1 };
    }
}

#[inline(always)]
fn wanted(tgid: u32) -> bool {
    if tgid == global(&OWN_TGID) {
        return false;
    }
    if global(&FILTER_MODE) == filter_mode::TARGETS {
        // SAFETY: the value is only tested for presence.
        return unsafe { TARGET_TGIDS.get(&tgid) }.is_some();
    }
    true
}

/// Direct load of a u64 field of the tracepoint record (cheaper than bpf_probe_read).
#[inline(always)]
fn ctx_u64(ctx: &TracePointContext, offset: usize) -> u64 {
    // SAFETY: offsets come from the tracepoint's format file (below) and lie inside the record;
    // the verifier checks context accesses against the record size.
    unsafe { core::ptr::read(ctx.as_ptr().cast::<u8>().add(offset).cast::<u64>()) }
}

/// Reads a `T` at `base + offset` in kernel memory.
#[inline(always)]
fn kread<T>(base: *const u8, offset: u32) -> Result<T, i64> {
    // SAFETY: bpf_probe_read_kernel checks the address and fails cleanly on a bad pointer.
    unsafe { bpf_probe_read_kernel(base.wrapping_add(offset as usize).cast::<T>()) }
        .map_err(i64::from)
}

const MAP_ANONYMOUS: u64 = 0x20;

// name: sys_enter_mmap
// format:
// 	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
// 	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
// 	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
// 	field:int common_pid;	offset:4;	size:4;	signed:1;
//
// 	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
// 	field:unsigned long addr;	offset:16;	size:8;	signed:0;
// 	field:unsigned long len;	offset:24;	size:8;	signed:0;
// 	field:unsigned long prot;	offset:32;	size:8;	signed:0;
// 	field:unsigned long flags;	offset:40;	size:8;	signed:0;
// 	field:unsigned long fd;	offset:48;	size:8;	signed:0;
// 	field:unsigned long off;	offset:56;	size:8;	signed:0;
const ENTER_ARGS_OFFSET: usize = 16;

#[tracepoint(category = "syscalls", name = "sys_enter_mmap")]
pub fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    let _ = try_enter(&ctx, EventKind::Mmap);
    1
}

#[inline(always)]
fn try_enter(ctx: &TracePointContext, kind: EventKind) -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    let tid = pid_tgid as u32;
    if !wanted(tgid) {
        return Ok(());
    }
    let rec = SCRATCH.get_ptr_mut(0).ok_or(0i64)?;
    // SAFETY: this CPU's scratch slot; nothing else uses it while this program runs.
    let rec = unsafe { &mut *rec };
    // SAFETY: helpers without preconditions.
    rec.ts_enter_ns = unsafe { bpf_ktime_get_boot_ns() };
    rec.ts_exit_ns = 0;
    rec.args[0] = ctx_u64(ctx, ENTER_ARGS_OFFSET);
    rec.args[1] = ctx_u64(ctx, ENTER_ARGS_OFFSET + 8);
    rec.args[2] = ctx_u64(ctx, ENTER_ARGS_OFFSET + 16);
    rec.args[3] = ctx_u64(ctx, ENTER_ARGS_OFFSET + 24);
    rec.args[4] = ctx_u64(ctx, ENTER_ARGS_OFFSET + 32);
    rec.args[5] = ctx_u64(ctx, ENTER_ARGS_OFFSET + 40);
    rec.ret = 0;
    rec.tgid = tgid;
    rec.tid = tid;
    let uid_gid = bpf_get_current_uid_gid();
    rec.uid = uid_gid as u32;
    rec.gid = (uid_gid >> 32) as u32;
    // SAFETY: helpers without preconditions.
    unsafe {
        rec.cgroup_id = bpf_get_current_cgroup_id();
        rec.cpu = bpf_get_smp_processor_id();
    }
    rec.comm = bpf_get_current_comm().unwrap_or([0; 16]);
    rec.event = kind as u16;
    rec.file_flags = 0;
    rec.file_dev = 0;
    rec.file_ino = 0;
    rec.path[0] = 0;

    // SAFETY: helper without preconditions; the pointer is only dereferenced via probe reads.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    let offsets = global(&OFFSETS);
    rec.ppid = kread::<*const u8>(task, offsets.task_real_parent)
        .and_then(|parent| kread::<u32>(parent, offsets.task_tgid))
        .unwrap_or(0);

    if matches!(kind, EventKind::Mmap) && rec.args[3] & MAP_ANONYMOUS == 0 {
        let fd = rec.args[4] as u32 as i32;
        if fd >= 0 {
            let _ = resolve_file(task, fd as u32, &offsets, rec);
        }
    }

    if ENTRIES.insert(&tid, rec, BPF_ANY as u64).is_err() {
        count(counters::ENTRY_MAP_FULL);
    }
    Ok(())
}

/// task->files->fdt->fd[fd]: the file's device, inode number and dentry name.
#[inline(always)]
fn resolve_file(
    task: *const u8,
    fd: u32,
    o: &KernelOffsets,
    rec: &mut SyscallRecord,
) -> Result<(), i64> {
    let files: *const u8 = kread(task, o.task_files)?;
    let fdt: *const u8 = kread(files, o.files_fdt)?;
    let max_fds: u32 = kread(fdt, o.fdt_max_fds)?;
    if fd >= max_fds {
        return Ok(());
    }
    let fd_array: *const u8 = kread(fdt, o.fdt_fd)?;
    let file: *const u8 = kread(fd_array, fd.wrapping_mul(8))?;
    if file.is_null() {
        return Ok(());
    }
    let inode: *const u8 = kread(file, o.file_inode)?;
    rec.file_ino = kread(inode, o.inode_ino)?;
    let sb: *const u8 = kread(inode, o.inode_sb)?;
    rec.file_dev = kread(sb, o.sb_dev)?;
    rec.file_flags = file_flags::HAS_FILE | file_flags::BASENAME_ONLY;
    let dentry: *const u8 = kread(file, o.file_dentry)?;
    let name: *const u8 = kread(dentry, o.dentry_name)?;
    // SAFETY: the destination is the record's path buffer of PATH_LEN bytes; the helper stops at
    // the buffer's end and always NUL-terminates.
    let len = unsafe {
        bpf_probe_read_kernel_str(rec.path.as_mut_ptr().cast(), PATH_LEN as u32, name.cast())
    };
    if len < 0 {
        rec.path[0] = 0;
    }
    Ok(())
}

// name: sys_exit_mmap
// format:
// 	field:unsigned short common_type;	offset:0;	size:2;	signed:0;
// 	field:unsigned char common_flags;	offset:2;	size:1;	signed:0;
// 	field:unsigned char common_preempt_count;	offset:3;	size:1;	signed:0;
// 	field:int common_pid;	offset:4;	size:4;	signed:1;
//
// 	field:int __syscall_nr;	offset:8;	size:4;	signed:1;
// 	field:long ret;	offset:16;	size:8;	signed:1;
const EXIT_RET_OFFSET: usize = 16;

#[tracepoint(category = "syscalls", name = "sys_exit_mmap")]
pub fn sys_exit_mmap(ctx: TracePointContext) -> u32 {
    try_exit(&ctx);
    1
}

#[inline(always)]
fn try_exit(ctx: &TracePointContext) {
    let pid_tgid = bpf_get_current_pid_tgid();
    // Filter first: most exits on a host belong to processes that are not recorded.
    if !wanted((pid_tgid >> 32) as u32) {
        return;
    }
    let tid = pid_tgid as u32;
    let Some(rec) = ENTRIES.get_ptr_mut(&tid) else {
        count(counters::ORPHAN_EXIT);
        return;
    };
    // SAFETY: the map value stays valid until we remove it below; only this thread uses its key.
    let rec = unsafe { &mut *rec };
    rec.ret = ctx_u64(ctx, EXIT_RET_OFFSET) as i64;
    // SAFETY: helper without preconditions.
    rec.ts_exit_ns = unsafe { bpf_ktime_get_boot_ns() };
    let wakeup = if EVENTS.query(BPF_RB_AVAIL_DATA as u64) >= global(&WAKEUP_BYTES) {
        BPF_RB_FORCE_WAKEUP
    } else {
        BPF_RB_NO_WAKEUP
    };
    match EVENTS.output::<SyscallRecord>(&*rec, wakeup as u64) {
        Ok(()) => count(counters::EMITTED),
        Err(_) => count(counters::LOST_RINGBUF_FULL),
    }
    let _ = ENTRIES.remove(&tid);
}

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    loop {}
}

#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
