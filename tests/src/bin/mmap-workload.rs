//! mmap-workload: makes a known set of mmap calls and reports each one (arguments, result, thread
//! and its own clock readings around the call) as JSON, so tests can check a capture against it.
//! With --duration it repeats the set until the time is up (the `make demo` workload).
use std::{
    fs::File,
    io::Write as _,
    os::fd::AsRawFd as _,
    path::PathBuf,
    time::{Duration, Instant},
};

use anyhow::Context as _;
use clap::Parser;
use mmap_capture_tests::{Call, ExecChild, FamilyCall, FileId, ForkInfo, Report};

/// Make a known set of mmap calls: anonymous, with an address hint, file-backed MAP_SHARED at an
/// offset, MAP_PRIVATE of a file, a failing EBADF and EINVAL call, and two calls from a second
/// thread.
#[derive(Debug, Parser)]
struct Args {
    /// Write the JSON report of every call here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// Repeat the set of calls (unmapping each mapping again) until this much time has passed.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
    /// Directory for the temporary data file.
    #[arg(long, default_value_os_t = std::env::temp_dir())]
    dir: PathBuf,
    /// Also make munmap, mprotect, mremap and brk calls, then fork a child that execs this
    /// program with --exec-child, which makes its own calls and reads its /proc/self/maps.
    #[arg(long)]
    family: bool,
    /// Only make this many pairs of anonymous 4 KiB mmap + munmap calls, as fast as possible, and
    /// exit (a steady load for measuring overhead).
    #[arg(long, value_name = "N")]
    pairs: Option<u64>,
    /// With --pairs: then as many pairs again with the first byte of each mapping written (a
    /// page fault, a zeroed page and its freeing in each pair), timed apart.
    #[arg(long, requires = "pairs")]
    touched: bool,
    /// With --pairs: first warm up (a tenth of the pairs, each loop), then wait until stdin has
    /// a line or is closed before the timed loops, so a recorder can attach in between.
    #[arg(long, requires = "pairs")]
    wait_stdin: bool,
    /// With --pairs: then as many getppid calls (a system call outside the mmap family), timed
    /// apart: what a recorder costs the calls it does not record.
    #[arg(long, requires = "pairs")]
    other: bool,
    /// Only fork this many children as fast as possible, each making one anonymous mmap of
    /// `FORK_CHILD_LEN` bytes and its munmap before it exits, then wait for them all and print
    /// `{"pid":..,"children":[..]}` on stdout (a fork storm).
    #[arg(long, value_name = "N")]
    forks: Option<u32>,
    /// Only make N pairs of anonymous `FLOOD_LEN`-byte mmap + munmap calls in each of two
    /// threads at full rate, wait a second, then make `AFTER_CALLS` pairs of `AFTER_LEN` bytes
    /// 1 ms apart, and print `{"pid":..,"flood_calls":..,"after_calls":..}` on stdout (a flood,
    /// then calls that must be recorded again).
    #[arg(long, value_name = "N")]
    flood: Option<u64>,
    /// Run as the exec'd child: make the child's calls and write its report (JSON) here.
    #[arg(long, value_name = "REPORT")]
    exec_child: Option<PathBuf>,
    /// After the calls, plant what `mmap-analyze findings` looks for (repeat, or separate with
    /// commas; `all` for every one). See `Plant` for what each does.
    #[arg(long, value_enum, value_delimiter = ',', value_name = "WHAT")]
    plant: Vec<Plant>,
    /// Only make the set of calls `mmap-analyze rerun` is tested with, and write their report
    /// (a `RerunSet`) to --report: anonymous, hinted (0x5a5a00000000) and MAP_FIXED_NOREPLACE
    /// (0x5a5b00000000) mappings, a data file in --dir mapped shared at an offset and private,
    /// mprotect of part of a region, mremap grow in place, move and shrink, MAP_FIXED over a
    /// mapping, munmap of a middle page, brk up and back, a second thread that unmaps and
    /// protects regions the main thread mapped, and failing calls (EINVAL, ENOMEM, EBADF). The
    /// anonymous, hinted, file and a few other mappings stay mapped to the end.
    #[arg(long)]
    rerun_set: bool,
    /// With --rerun-set: lower RLIMIT_AS to the current VmSize + 64 MiB, then map 1 GiB
    /// (MAP_NORESERVE), which fails with ENOMEM (the last call of the set).
    #[arg(long, requires = "rerun_set")]
    rlimit_as_fail: bool,
    /// With --rerun-set: sleep between calls so that the first and the last call of the set are
    /// about this far apart (e.g. 10s).
    #[arg(long, requires = "rerun_set", value_parser = humantime::parse_duration)]
    spread: Option<Duration>,
}

/// Suspicious behaviour to plant, one per question of `mmap-analyze findings`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
enum Plant {
    /// Every plant below.
    All,
    /// mmap of anonymous memory with PROT_READ|PROT_WRITE|PROT_EXEC (wx-mapping).
    Wx,
    /// Anonymous read-write memory written, then made read-execute with mprotect
    /// (exec-after-write).
    MprotectExec,
    /// A read-execute mapping of a memfd (deleted-exec-mapping).
    MemfdExec,
    /// Read-only mappings of a memfd and of a deleted file (deleted-mapping).
    DeletedMap,
    /// A child that execs a copy of /bin/sleep through /proc/self/fd/N after the copy was
    /// deleted (deleted-exec).
    DeletedExec,
    /// 20 mmaps failing with ENOMEM at once (failure-storm).
    EnomemStorm,
    /// A child that maps 300 MiB of anonymous memory (never touched) and is still alive, with
    /// it mapped, 2 s after this program exits (leak-candidate, fast-anon).
    Leak,
    /// 1.1 GiB of anonymous memory mapped (never touched) and unmapped (big-anon, fast-anon).
    BigAnon,
}

impl Plant {
    const EACH: [Self; 8] = [
        Self::Wx,
        Self::MprotectExec,
        Self::MemfdExec,
        Self::DeletedMap,
        Self::DeletedExec,
        Self::EnomemStorm,
        Self::Leak,
        Self::BigAnon,
    ];
}

/// Plants each of `plants` (`all`: every one).
fn plant(plants: &[Plant], dir: &std::path::Path) -> anyhow::Result<()> {
    let all = plants.contains(&Plant::All);
    for what in Plant::EACH {
        if all || plants.contains(&what) {
            plant_one(what, dir).with_context(|| format!("planting {what:?}"))?;
        }
    }
    Ok(())
}

/// An anonymous private mapping of `len` bytes with `prot` (MAP_NORESERVE: never touched, it
/// costs no memory).
fn map_anon(len: usize, prot: i32) -> anyhow::Result<*mut libc::c_void> {
    let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_NORESERVE;
    // SAFETY: a fresh anonymous mapping; the caller owns it.
    let p = unsafe { libc::mmap(std::ptr::null_mut(), len, prot, flags, -1, 0) };
    if p == libc::MAP_FAILED {
        anyhow::bail!("mmap of {len} bytes: {}", std::io::Error::last_os_error());
    }
    Ok(p)
}

fn unmap(p: *mut libc::c_void, len: usize) {
    // SAFETY: unmapping a mapping the caller made with map_anon and no longer uses.
    unsafe { libc::munmap(p, len) };
}

fn plant_one(what: Plant, dir: &std::path::Path) -> anyhow::Result<()> {
    const PAGE: usize = 4096;
    let rw = libc::PROT_READ | libc::PROT_WRITE;
    match what {
        Plant::All => {}
        Plant::Wx => unmap(map_anon(PAGE, rw | libc::PROT_EXEC)?, PAGE),
        Plant::MprotectExec => {
            let p = map_anon(PAGE, rw)?;
            // SAFETY: the page was just mapped read-write; `ret` (0xc3) is written to it.
            unsafe { p.cast::<u8>().write(0xc3) };
            // SAFETY: changing the protection of our own page.
            if unsafe { libc::mprotect(p, PAGE, libc::PROT_READ | libc::PROT_EXEC) } != 0 {
                anyhow::bail!("mprotect: {}", std::io::Error::last_os_error());
            }
            unmap(p, PAGE);
        }
        Plant::MemfdExec => {
            // SAFETY: memfd_create with a valid NUL-terminated name.
            let fd = unsafe { libc::memfd_create(c"planted-code".as_ptr(), 0) };
            if fd < 0 {
                anyhow::bail!("memfd_create: {}", std::io::Error::last_os_error());
            }
            // SAFETY: sizing, mapping and closing our own memfd; the mapping is unmapped.
            unsafe {
                libc::ftruncate(fd, PAGE as libc::off_t);
                let prot = libc::PROT_READ | libc::PROT_EXEC;
                let p = libc::mmap(std::ptr::null_mut(), PAGE, prot, libc::MAP_PRIVATE, fd, 0);
                if p != libc::MAP_FAILED {
                    libc::munmap(p, PAGE);
                }
                libc::close(fd);
            }
        }
        Plant::DeletedMap => {
            special_file_calls(dir)?;
        }
        Plant::DeletedExec => deleted_exec(dir)?,
        Plant::EnomemStorm => {
            let flags = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
            for _ in 0..20 {
                // SAFETY: a mapping larger than any address space: it fails with ENOMEM.
                let p = unsafe {
                    libc::mmap(std::ptr::null_mut(), 1 << 62, libc::PROT_READ, flags, -1, 0)
                };
                if p != libc::MAP_FAILED {
                    unmap(p, 1 << 62);
                }
            }
        }
        Plant::Leak => {
            // SAFETY: the child only maps memory and sleeps, then exits with _exit.
            let pid = unsafe { libc::fork() };
            if pid == 0 {
                let code = match map_anon(300 << 20, rw) {
                    Ok(_) => {
                        std::thread::sleep(Duration::from_secs(2));
                        0
                    }
                    Err(_) => 1,
                };
                // SAFETY: leaving the forked child without running the parent's exit code.
                unsafe { libc::_exit(code) };
            }
            if pid < 0 {
                anyhow::bail!("fork: {}", std::io::Error::last_os_error());
            }
            // Let the child map before this program goes on (and exits).
            std::thread::sleep(Duration::from_millis(100));
        }
        Plant::BigAnon => {
            let len = 1100 << 20;
            unmap(map_anon(len, rw)?, len);
        }
    }
    Ok(())
}

/// A child that execs a deleted copy of /bin/sleep through /proc/self/fd/N; waits for it.
fn deleted_exec(dir: &std::path::Path) -> anyhow::Result<()> {
    use std::os::unix::ffi::OsStrExt as _;
    let copy = dir.join(format!("mmap-workload-{}-sleep", std::process::id()));
    std::fs::copy("/bin/sleep", &copy).context("copying /bin/sleep")?;
    let path = std::ffi::CString::new(copy.as_os_str().as_bytes())?;
    // SAFETY: open with a valid path; without O_CLOEXEC, so that the exec can use it.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY) };
    if fd < 0 {
        anyhow::bail!(
            "open {}: {}",
            copy.display(),
            std::io::Error::last_os_error()
        );
    }
    std::fs::remove_file(&copy)?;
    let program = std::ffi::CString::new(format!("/proc/self/fd/{fd}"))?;
    // Long enough for the recorder's snapshot after the exec.
    let args = [c"sleep".to_owned(), c"0.3".to_owned()];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    // SAFETY: the child only calls execv (with memory prepared above) and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::execv(program.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
    if pid < 0 {
        anyhow::bail!("fork: {}", std::io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waiting for our own child into a local.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    if status != 0 {
        anyhow::bail!("the deleted copy of /bin/sleep failed: wait status {status}");
    }
    Ok(())
}

/// A system call of the family, recorded with the clock around it.
fn family_call(
    label: &str,
    syscall: &str,
    f: impl FnOnce() -> i64,
    fill: impl FnOnce(&mut FamilyCall),
) -> FamilyCall {
    let before_ns = realtime_ns();
    let ret = f();
    let after_ns = realtime_ns();
    let mut call = FamilyCall {
        label: label.to_owned(),
        syscall: syscall.to_owned(),
        tid: gettid(),
        ret,
        before_ns,
        after_ns,
        ..Default::default()
    };
    fill(&mut call);
    call
}

/// The raw syscall's result: the value, or -errno.
fn raw(ret: libc::c_long) -> i64 {
    if ret == -1 {
        -i64::from(std::io::Error::last_os_error().raw_os_error().unwrap_or(0))
    } else {
        ret
    }
}

/// mmap, mprotect part of it, grow it with mremap (it may move), unmap it; move the break up
/// and back. `base` makes the lengths of this process's calls unique.
fn family_calls(label: &str, base: u64) -> Vec<FamilyCall> {
    let mut calls = Vec::new();
    let len = base;
    let prot = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    let flags = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;
    // SAFETY (every call below): raw system calls on mappings this function creates and owns;
    // every variadic argument is passed as a 64-bit integer, as syscall(2) reads them.
    let m = family_call(
        &format!("{label}mmap"),
        "mmap",
        // SAFETY: as above: a raw call on a mapping this function made and owns.
        || raw(unsafe { libc::syscall(libc::SYS_mmap, 0u64, len, prot, flags, -1i64, 0u64) }),
        |c| {
            c.len = Some(len);
            c.prot = Some(prot);
            c.flags = Some(flags);
        },
    );
    let p = m.ret as u64;
    calls.push(m);
    calls.push(family_call(
        &format!("{label}mprotect"),
        "mprotect",
        // SAFETY: as above: a raw call on a mapping this function made and owns.
        || raw(unsafe { libc::syscall(libc::SYS_mprotect, p, 0x2000u64, libc::PROT_READ as u64) }),
        |c| {
            c.addr = p;
            c.len = Some(0x2000);
            c.prot = Some(libc::PROT_READ as u64);
        },
    ));
    // Grow the part mprotect left writable (one VMA), letting it move.
    let (tail, tail_len, new_len) = (p + 0x2000, len - 0x2000, len * 2);
    let r = family_call(
        &format!("{label}mremap"),
        "mremap",
        || {
            // SAFETY: as above: a raw call on a mapping this function made and owns.
            raw(unsafe {
                libc::syscall(
                    libc::SYS_mremap,
                    tail,
                    tail_len,
                    new_len,
                    libc::MREMAP_MAYMOVE as u64,
                    0u64,
                )
            })
        },
        |c| {
            c.addr = tail;
            c.len = Some(tail_len);
            c.new_len = Some(new_len);
            c.flags = Some(libc::MREMAP_MAYMOVE as u64);
            c.new_addr = Some(0);
        },
    );
    let q = r.ret as u64;
    calls.push(r);
    calls.push(family_call(
        &format!("{label}munmap"),
        "munmap",
        // SAFETY: as above: a raw call on a mapping this function made and owns.
        || raw(unsafe { libc::syscall(libc::SYS_munmap, q, new_len) }),
        |c| {
            c.addr = q;
            c.len = Some(new_len);
        },
    ));
    // The read-only head stays mapped: the child's maps show it.
    let cur = family_call(
        &format!("{label}brk-query"),
        "brk",
        // SAFETY: brk(0) only reads the current break.
        || raw(unsafe { libc::syscall(libc::SYS_brk, 0u64) }),
        |_| {},
    );
    let start = cur.ret as u64;
    calls.push(cur);
    let up = start + base * 4;
    calls.push(family_call(
        &format!("{label}brk-up"),
        "brk",
        // SAFETY: the heap above the break read before is unused: nothing points into it.
        || raw(unsafe { libc::syscall(libc::SYS_brk, up) }),
        |c| c.addr = up,
    ));
    calls.push(family_call(
        &format!("{label}brk-down"),
        "brk",
        // SAFETY: the heap above the break read before is unused: nothing points into it.
        || raw(unsafe { libc::syscall(libc::SYS_brk, start) }),
        |c| c.addr = start,
    ));
    calls
}

/// mmaps of a memfd and of a file that was deleted while open.
fn special_file_calls(dir: &std::path::Path) -> anyhow::Result<Vec<FamilyCall>> {
    let mut calls = Vec::new();
    let name = c"mmap-capture-test";
    // SAFETY: memfd_create with a valid NUL-terminated name.
    let memfd = unsafe { libc::memfd_create(name.as_ptr(), 0) };
    if memfd < 0 {
        anyhow::bail!("memfd_create: {}", std::io::Error::last_os_error());
    }
    // SAFETY: ftruncate on our own memfd.
    unsafe { libc::ftruncate(memfd, 0x4000) };
    let deleted_path = dir.join(format!("mmap-workload-{}-deleted.dat", std::process::id()));
    std::fs::write(&deleted_path, [0u8; 0x4000])?;
    let deleted = File::open(&deleted_path)?;
    std::fs::remove_file(&deleted_path)?;
    let shared = libc::MAP_SHARED as u64;
    let private = libc::MAP_PRIVATE as u64;
    for (label, fd, len, prot, flags, path, memfd_flag, deleted_flag) in [
        (
            "memfd",
            memfd,
            0x4000u64,
            (libc::PROT_READ | libc::PROT_WRITE) as u64,
            shared,
            "/memfd:mmap-capture-test".to_owned(),
            true,
            false,
        ),
        (
            "deleted-file",
            deleted.as_raw_fd(),
            0x3000u64,
            libc::PROT_READ as u64,
            private,
            deleted_path.display().to_string(),
            false,
            true,
        ),
    ] {
        let call = family_call(
            label,
            "mmap",
            || {
                // SAFETY: mapping our own open files; unmapped at once.
                let r = raw(unsafe {
                    libc::syscall(libc::SYS_mmap, 0u64, len, prot, flags, fd as i64, 0u64)
                });
                if r > 0 {
                    // SAFETY: unmapping exactly the mapping created above.
                    unsafe { libc::munmap(r as *mut libc::c_void, len as usize) };
                }
                r
            },
            |c| {
                c.len = Some(len);
                c.prot = Some(prot);
                c.flags = Some(flags);
                c.file_path = Some(path);
                c.memfd = Some(memfd_flag);
                c.deleted = Some(deleted_flag);
            },
        );
        calls.push(call);
    }
    // SAFETY: closing our own memfd.
    unsafe { libc::close(memfd) };
    Ok(calls)
}

/// The exec'd child: its own calls, then /proc/self/maps read without allocating.
fn exec_child(report: &std::path::Path) -> anyhow::Result<()> {
    let calls = family_calls("child-", 0xb000);
    // Live a little, as real programs do, so that the recorder's snapshot after the exec (taken
    // when it reads the exec record) comes before the read below.
    std::thread::sleep(Duration::from_millis(300));
    // Room for the maps text reserved before the read, so that reading maps changes none.
    let mut buf: Vec<u8> = Vec::with_capacity(1 << 20);
    let path = c"/proc/self/maps";
    let before = realtime_ns();
    // SAFETY: open/read/close into the spare capacity of `buf`; set_len only covers bytes read.
    unsafe {
        let fd = libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC);
        if fd < 0 {
            anyhow::bail!("open /proc/self/maps: {}", std::io::Error::last_os_error());
        }
        loop {
            let spare = buf.capacity() - buf.len();
            let n = libc::read(fd, buf.as_mut_ptr().add(buf.len()).cast(), spare);
            if n <= 0 {
                break;
            }
            buf.set_len(buf.len() + n as usize);
        }
        libc::close(fd);
    }
    let after = realtime_ns();
    let child = ExecChild {
        pid: std::process::id(),
        exe: std::env::args().next().unwrap_or_default(),
        calls,
        maps: String::from_utf8_lossy(&buf).into_owned(),
        maps_before_ns: before,
        maps_after_ns: after,
    };
    std::fs::write(report, serde_json::to_vec_pretty(&child)?)
        .with_context(|| format!("writing {}", report.display()))
}

/// Forks a child that execs this program with --exec-child; waits for it.
fn fork_exec_child(child_report: &std::path::Path) -> anyhow::Result<ForkInfo> {
    use std::os::unix::ffi::OsStrExt as _;
    let exe = std::env::current_exe()?;
    // Everything the child needs is made before fork: after fork only execv and _exit run.
    let exe_c = std::ffi::CString::new(exe.as_os_str().as_bytes())?;
    let args = [
        exe_c.clone(),
        std::ffi::CString::new("--exec-child")?,
        std::ffi::CString::new(child_report.as_os_str().as_bytes())?,
    ];
    let argv: Vec<*const libc::c_char> = args
        .iter()
        .map(|a| a.as_ptr())
        .chain(std::iter::once(std::ptr::null()))
        .collect();
    let before_ns = realtime_ns();
    // SAFETY: the child only calls execv (with memory prepared above) and _exit.
    let pid = unsafe { libc::fork() };
    if pid == 0 {
        // SAFETY: as above.
        unsafe {
            libc::execv(exe_c.as_ptr(), argv.as_ptr());
            libc::_exit(127);
        }
    }
    let after_ns = realtime_ns();
    if pid < 0 {
        anyhow::bail!("fork: {}", std::io::Error::last_os_error());
    }
    let mut status = 0;
    // SAFETY: waiting for our own child into a local.
    unsafe { libc::waitpid(pid, &mut status, 0) };
    Ok(ForkInfo {
        child_pid: pid as u32,
        before_ns,
        after_ns,
        status,
    })
}

fn realtime_ns() -> i64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into a valid local timespec.
    unsafe { libc::clock_gettime(libc::CLOCK_REALTIME, &mut ts) };
    ts.tv_sec * 1_000_000_000 + ts.tv_nsec
}

fn gettid() -> u32 {
    // SAFETY: gettid has no preconditions.
    unsafe { libc::gettid() as u32 }
}

struct Mapper {
    file: File,
    file_id: FileId,
}

impl Mapper {
    /// Calls mmap and records it; successful mappings are unmapped again.
    #[expect(
        clippy::too_many_arguments,
        reason = "mmap's six arguments plus a label, in mmap's order"
    )]
    fn call(
        &self,
        label: &str,
        addr: u64,
        len: u64,
        prot: i32,
        flags: i32,
        fd: i32,
        off: u64,
    ) -> Call {
        let before_ns = realtime_ns();
        // SAFETY: a plain mmap call; the result is only used as a number and unmapped below.
        let ptr = unsafe {
            libc::mmap(
                addr as *mut libc::c_void,
                len as usize,
                prot,
                flags,
                fd,
                off as libc::off_t,
            )
        };
        let after_ns = realtime_ns();
        let (ret, errno) = if ptr == libc::MAP_FAILED {
            let errno = std::io::Error::last_os_error().raw_os_error().unwrap_or(0);
            (-i64::from(errno), Some(errno))
        } else {
            // SAFETY: unmapping exactly the mapping created above.
            unsafe { libc::munmap(ptr, len as usize) };
            (ptr as i64, None)
        };
        let file = (fd == self.file.as_raw_fd() && flags & libc::MAP_ANONYMOUS == 0)
            .then(|| self.file_id.clone());
        Call {
            label: label.to_owned(),
            tid: gettid(),
            addr,
            len,
            prot: prot as u64,
            flags: flags as u64,
            fd,
            off,
            ret,
            errno,
            file,
            before_ns,
            after_ns,
        }
    }

    fn main_thread_calls(&self) -> Vec<Call> {
        let fd = self.file.as_raw_fd();
        let rw = libc::PROT_READ | libc::PROT_WRITE;
        let anon = libc::MAP_PRIVATE | libc::MAP_ANONYMOUS;
        vec![
            self.call("anonymous", 0, 0x5000, rw, anon, -1, 0),
            self.call(
                "hinted-address",
                0x6000_0000_0000,
                0x6000,
                libc::PROT_READ,
                anon,
                -1,
                0,
            ),
            self.call(
                "file-shared-offset",
                0,
                0x2000,
                rw,
                libc::MAP_SHARED,
                fd,
                0x4000,
            ),
            self.call(
                "file-private",
                0,
                0x3000,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0,
            ),
            // An fd number this process has not opened.
            self.call(
                "ebadf",
                0,
                0x1000,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                987,
                0,
            ),
            // Zero length.
            self.call("einval", 0, 0, libc::PROT_READ, anon, -1, 0),
        ]
    }

    fn second_thread_calls(&self) -> Vec<Call> {
        let fd = self.file.as_raw_fd();
        vec![
            self.call(
                "thread-anonymous",
                0,
                0x9000,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
                -1,
                0,
            ),
            self.call(
                "thread-file",
                0,
                0xa000,
                libc::PROT_READ,
                libc::MAP_PRIVATE,
                fd,
                0x1000,
            ),
        ]
    }

    fn round(&self) -> anyhow::Result<Vec<Call>> {
        let mut calls = self.main_thread_calls();
        let second = std::thread::scope(|s| s.spawn(|| self.second_thread_calls()).join())
            .map_err(|_| anyhow::anyhow!("second thread panicked"))?;
        calls.extend(second);
        Ok(calls)
    }
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    if let Some(report) = &args.exec_child {
        return exec_child(report);
    }
    if args.rerun_set {
        return rerun_set::run(
            &args.dir,
            args.report.as_deref(),
            args.spread,
            args.rlimit_as_fail,
        );
    }
    if let Some(n) = args.forks {
        return fork_storm(n);
    }
    if let Some(n) = args.flood {
        return flood(n);
    }
    if let Some(n) = args.pairs {
        if args.wait_stdin {
            timed_pairs(n / 10 + 1, false)?;
            if args.touched {
                timed_pairs(n / 10 + 1, true)?;
            }
            std::io::stdin().read_line(&mut String::new())?;
        }
        let ns = timed_pairs(n, false)?;
        eprintln!("mmap-workload: {n} pairs, {ns:.0} ns per pair");
        if args.touched {
            let ns = timed_pairs(n, true)?;
            eprintln!("mmap-workload: {n} pairs touched, {ns:.0} ns per pair");
        }
        if args.other {
            let start = Instant::now();
            for _ in 0..n {
                // SAFETY: getppid has no arguments and cannot fail.
                unsafe { libc::syscall(libc::SYS_getppid) };
            }
            let ns = start.elapsed().as_nanos() as f64 / n.max(1) as f64;
            eprintln!("mmap-workload: {n} other calls (getppid), {ns:.1} ns per call");
        }
        if let Some(out) = &args.report {
            let report = Report {
                pid: std::process::id(),
                calls: Vec::new(),
                family: Vec::new(),
                fork: None,
                exec_child: None,
            };
            std::fs::write(out, serde_json::to_vec_pretty(&report)?)?;
        }
        return Ok(());
    }
    let path = args
        .dir
        .join(format!("mmap-workload-{}.dat", std::process::id()));
    let mut file = File::options()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(&[0x5a; 64 * 1024])?;
    // SAFETY: libc::stat is plain integers; all-zero is a valid value.
    let mut st: libc::stat = unsafe { std::mem::zeroed() };
    // SAFETY: fstat on an open descriptor into a valid buffer.
    if unsafe { libc::fstat(file.as_raw_fd(), &mut st) } != 0 {
        anyhow::bail!(
            "fstat {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    let mapper = Mapper {
        file_id: FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            name: path
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default(),
        },
        file,
    };

    let result = (|| -> anyhow::Result<Report> {
        let mut calls = mapper.round()?;
        if let Some(duration) = args.duration {
            let start = Instant::now();
            let mut rounds = 1u64;
            while start.elapsed() < duration {
                std::thread::sleep(Duration::from_millis(2));
                calls.extend(mapper.round()?);
                rounds += 1;
            }
            eprintln!(
                "mmap-workload: {rounds} rounds, {} mmap calls in {:.1}s",
                calls.len(),
                start.elapsed().as_secs_f64()
            );
        }
        let mut report = Report {
            pid: std::process::id(),
            calls,
            family: Vec::new(),
            fork: None,
            exec_child: None,
        };
        if args.family {
            report.family = family_calls("", 0x7000);
            report.family.extend(special_file_calls(&args.dir)?);
            let child_report = args
                .dir
                .join(format!("mmap-workload-{}-child.json", report.pid));
            let fork = fork_exec_child(&child_report)?;
            let text = std::fs::read(&child_report)
                .with_context(|| format!("the exec child wrote no report ({fork:?})"))?;
            let _ = std::fs::remove_file(&child_report);
            report.exec_child = Some(serde_json::from_slice(&text)?);
            report.fork = Some(fork);
        }
        plant(&args.plant, &args.dir)?;
        Ok(report)
    })();
    let _ = std::fs::remove_file(&path);
    let report = result?;
    if let Some(out) = args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}

/// Length of the mapping each child of --forks makes (9 pages: no other call of the program
/// maps that).
const FORK_CHILD_LEN: usize = 9 * 4096;
/// Length of the flood's mappings and of the calls after it (5 and 7 pages).
const FLOOD_LEN: usize = 5 * 4096;
const AFTER_LEN: usize = 7 * 4096;
const AFTER_CALLS: u64 = 100;

/// ns per pair of `n` anonymous 4 KiB mmap + munmap pairs, the page written once when `touch`.
fn timed_pairs(n: u64, touch: bool) -> anyhow::Result<f64> {
    let start = Instant::now();
    for _ in 0..n {
        mmap_capture_tests::map_unmap(4096, touch).context("mmap")?;
    }
    Ok(start.elapsed().as_nanos() as f64 / n.max(1) as f64)
}

/// An anonymous read-write mmap of `len` bytes and its munmap.
fn map_unmap(len: usize) -> anyhow::Result<()> {
    mmap_capture_tests::map_unmap(len, false).context("mmap")
}

fn fork_storm(n: u32) -> anyhow::Result<()> {
    let mut children = Vec::with_capacity(n as usize);
    for _ in 0..n {
        // SAFETY: this program is single-threaded here; the child only makes system calls and
        // leaves with _exit (no destructors, no allocation).
        let pid = unsafe { libc::fork() };
        match pid {
            -1 => anyhow::bail!("fork: {}", std::io::Error::last_os_error()),
            0 => {
                let status = i32::from(map_unmap(FORK_CHILD_LEN).is_err());
                // SAFETY: leaves the child at once.
                unsafe { libc::_exit(status) }
            }
            pid => children.push(pid as u32),
        }
    }
    for &child in &children {
        let mut status = 0;
        // SAFETY: waits for our own child into a valid int.
        if unsafe { libc::waitpid(child as i32, &mut status, 0) } < 0 || status != 0 {
            anyhow::bail!("child {child} failed (status {status})");
        }
    }
    println!(
        "{}",
        serde_json::json!({"pid": std::process::id(), "children": children})
    );
    Ok(())
}

fn flood(n: u64) -> anyhow::Result<()> {
    // Both threads start (their own set-up calls made) before either floods, and both have
    // flooded before the calls after the flood.
    let barrier = std::sync::Arc::new(std::sync::Barrier::new(3));
    let threads: Vec<_> = (0..2)
        .map(|_| {
            let barrier = std::sync::Arc::clone(&barrier);
            std::thread::spawn(move || -> anyhow::Result<()> {
                barrier.wait();
                for _ in 0..n {
                    map_unmap(FLOOD_LEN)?;
                }
                barrier.wait();
                // Stay until the recorder has drained the ring: the thread's own exit calls
                // (its signal stack's munmap) must not meet a full ring.
                std::thread::sleep(Duration::from_secs(1));
                Ok(())
            })
        })
        .collect();
    barrier.wait();
    barrier.wait();
    std::thread::sleep(Duration::from_secs(1));
    for _ in 0..AFTER_CALLS {
        map_unmap(AFTER_LEN)?;
        std::thread::sleep(Duration::from_millis(1));
    }
    for thread in threads {
        thread
            .join()
            .map_err(|_| anyhow::anyhow!("flood thread panicked"))??;
    }
    println!(
        "{}",
        serde_json::json!({
            "pid": std::process::id(),
            "flood_calls": 2 * 2 * n,
            "after_calls": 2 * AFTER_CALLS,
            "flood_len": FLOOD_LEN,
            "after_len": AFTER_LEN,
        })
    );
    Ok(())
}

/// `--rerun-set`: a known set of calls of every kind `mmap-analyze rerun` re-issues, made with raw
/// system calls (the exact arguments matter), from two threads, with a few deliberate failures.
mod rerun_set {
    use std::{
        fs::File,
        io::Write as _,
        os::fd::AsRawFd as _,
        path::Path,
        sync::{Mutex, PoisonError},
        time::{Duration, Instant},
    };

    use anyhow::Context as _;
    use mmap_capture_tests::{FamilyCall, FileId, RerunSet};

    use super::{family_call, raw};

    const PAGE: u64 = 4096;
    /// Where the workload places two regions itself: with a hint, and with MAP_FIXED_NOREPLACE.
    pub const HINT_ADDR: u64 = 0x5a5a_0000_0000;
    pub const NOREPLACE_ADDR: u64 = 0x5a5b_0000_0000;
    /// The calls of the set, and with --rlimit-as-fail one more (the mmap that fails).
    const CALLS: usize = 37;
    /// An fd number the workload never opens.
    const NOT_OPEN_FD: i32 = 1000;
    /// An mremap flag Linux does not define.
    const BAD_MREMAP_FLAG: u64 = 0x80;

    const RW: u64 = (libc::PROT_READ | libc::PROT_WRITE) as u64;
    const RO: u64 = libc::PROT_READ as u64;
    const ANON: u64 = (libc::MAP_PRIVATE | libc::MAP_ANONYMOUS) as u64;

    /// Sleeps before each call (but the first) so that calls are `step` apart.
    struct Pacer {
        step: Duration,
        next: Mutex<Option<Instant>>,
    }

    impl Pacer {
        fn wait(&self) {
            let mut next = self.next.lock().unwrap_or_else(PoisonError::into_inner);
            if let Some(at) = *next {
                let now = Instant::now();
                if at > now {
                    std::thread::sleep(at - now);
                }
            }
            *next = Some(Instant::now() + self.step);
        }
    }

    /// Makes the calls and keeps their report.
    struct Caller {
        pacer: Pacer,
        calls: Mutex<Vec<FamilyCall>>,
    }

    impl Caller {
        fn call(
            &self,
            label: &str,
            syscall: &str,
            f: impl FnOnce() -> i64,
            fill: impl FnOnce(&mut FamilyCall),
        ) -> i64 {
            self.pacer.wait();
            let call = family_call(label, syscall, f, fill);
            let ret = call.ret;
            self.calls
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(call);
            ret
        }

        #[expect(
            clippy::too_many_arguments,
            reason = "mmap's six arguments plus a label, in mmap's order"
        )]
        fn mmap(
            &self,
            label: &str,
            addr: u64,
            len: u64,
            prot: u64,
            flags: u64,
            fd: i32,
            off: u64,
        ) -> i64 {
            self.call(
                label,
                "mmap",
                || {
                    // SAFETY: a raw mmap: it only creates a mapping (or replaces one this
                    // workload made and no longer uses); every argument passed as 64 bits.
                    raw(unsafe {
                        libc::syscall(libc::SYS_mmap, addr, len, prot, flags, i64::from(fd), off)
                    })
                },
                |c| {
                    c.addr = addr;
                    c.len = Some(len);
                    c.prot = Some(prot);
                    c.flags = Some(flags);
                    c.fd = Some(fd);
                    c.off = Some(off);
                },
            )
        }

        fn munmap(&self, label: &str, addr: u64, len: u64) -> i64 {
            self.call(
                label,
                "munmap",
                // SAFETY: unmaps (part of) a mapping this workload made and no longer uses.
                || raw(unsafe { libc::syscall(libc::SYS_munmap, addr, len) }),
                |c| {
                    c.addr = addr;
                    c.len = Some(len);
                },
            )
        }

        fn mprotect(&self, label: &str, addr: u64, len: u64, prot: u64) -> i64 {
            self.call(
                label,
                "mprotect",
                // SAFETY: changes the protection of a mapping this workload made and does not
                // touch afterwards in a way the new protection forbids.
                || raw(unsafe { libc::syscall(libc::SYS_mprotect, addr, len, prot) }),
                |c| {
                    c.addr = addr;
                    c.len = Some(len);
                    c.prot = Some(prot);
                },
            )
        }

        fn mremap(&self, label: &str, addr: u64, len: u64, new_len: u64, flags: u64) -> i64 {
            self.call(
                label,
                "mremap",
                || {
                    // SAFETY: resizes or moves a mapping this workload made; it is only used
                    // through the returned address afterwards.
                    raw(unsafe { libc::syscall(libc::SYS_mremap, addr, len, new_len, flags, 0u64) })
                },
                |c| {
                    c.addr = addr;
                    c.len = Some(len);
                    c.new_len = Some(new_len);
                    c.flags = Some(flags);
                    c.new_addr = Some(0);
                },
            )
        }

        fn brk(&self, label: &str, addr: u64) -> i64 {
            self.call(
                label,
                "brk",
                // SAFETY: moves the break only within what this function added (back to where
                // it found it), never below memory malloc uses.
                || raw(unsafe { libc::syscall(libc::SYS_brk, addr) }),
                |c| c.addr = addr,
            )
        }
    }

    /// Checks that a call came out as the set needs it.
    fn expect(label: &str, ret: i64, want: Result<Option<i64>, i32>) -> anyhow::Result<u64> {
        let ok = match want {
            Ok(None) => ret >= 0,
            Ok(Some(value)) => ret == value,
            Err(errno) => ret == -i64::from(errno),
        };
        if !ok {
            anyhow::bail!("{label}: returned {ret:#x}, expected {want:?}");
        }
        Ok(ret as u64)
    }

    fn touch(addr: u64) {
        // SAFETY: the caller passes a byte of a read-write mapping this workload made.
        unsafe { (addr as *mut u8).write_volatile(0x42) };
    }

    /// The process's current VmSize, bytes.
    fn vm_size() -> anyhow::Result<u64> {
        let status = std::fs::read_to_string("/proc/self/status")?;
        let kb = status
            .lines()
            .find_map(|l| l.strip_prefix("VmSize:"))
            .and_then(|v| v.trim().strip_suffix("kB"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .context("no VmSize in /proc/self/status")?;
        Ok(kb * 1024)
    }

    /// Lowers RLIMIT_AS to VmSize + 64 MiB, maps 1 GiB (ENOMEM), restores the limit.
    fn rlimit_as_fail(c: &Caller) -> anyhow::Result<()> {
        let mut old = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit into a valid local.
        if unsafe { libc::getrlimit(libc::RLIMIT_AS, &mut old) } != 0 {
            anyhow::bail!("getrlimit: {}", std::io::Error::last_os_error());
        }
        let low = libc::rlimit {
            rlim_cur: vm_size()? + (64 << 20),
            rlim_max: old.rlim_max,
        };
        // SAFETY: setrlimit from a valid local (lowering the soft limit only).
        if unsafe { libc::setrlimit(libc::RLIMIT_AS, &low) } != 0 {
            anyhow::bail!("setrlimit: {}", std::io::Error::last_os_error());
        }
        let ret = c.mmap(
            "rlimit-as-enomem",
            0,
            1 << 30,
            RW,
            ANON | libc::MAP_NORESERVE as u64,
            -1,
            0,
        );
        // SAFETY: restores the limit read above.
        unsafe { libc::setrlimit(libc::RLIMIT_AS, &old) };
        expect("rlimit-as-enomem", ret, Err(libc::ENOMEM))?;
        Ok(())
    }

    /// Makes the set (see `Args::rerun_set`) and writes its report to `report`.
    pub fn run(
        dir: &Path,
        report: Option<&Path>,
        spread: Option<Duration>,
        rlimit: bool,
    ) -> anyhow::Result<()> {
        let pid = std::process::id();
        let path = dir.join(format!("mmap-workload-{pid}-rerun.dat"));
        let mut file = File::options()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .with_context(|| format!("creating {}", path.display()))?;
        let result = (|| {
            file.write_all(&[0x5a; 64 * 1024])?;
            let meta = file.metadata()?;
            let expected = CALLS + usize::from(rlimit);
            let step = spread.map_or(Duration::ZERO, |d| d / (expected as u32 - 1));
            let caller = Caller {
                pacer: Pacer {
                    step,
                    next: Mutex::new(None),
                },
                calls: Mutex::new(Vec::with_capacity(64)),
            };
            calls(&caller, file.as_raw_fd(), rlimit)?;
            let mut calls = caller
                .calls
                .into_inner()
                .unwrap_or_else(PoisonError::into_inner);
            calls.sort_by_key(|c| c.before_ns);
            if calls.len() != expected {
                anyhow::bail!(
                    "the set made {} calls, not {expected}: update CALLS",
                    calls.len()
                );
            }
            if let (Some(first), Some(last)) = (calls.first(), calls.last()) {
                eprintln!(
                    "mmap-workload: {} calls in {:.3}s",
                    calls.len(),
                    (last.after_ns - first.before_ns) as f64 / 1e9
                );
            }
            Ok(RerunSet {
                pid,
                calls,
                file: Some(FileId {
                    dev: std::os::unix::fs::MetadataExt::dev(&meta),
                    ino: std::os::unix::fs::MetadataExt::ino(&meta),
                    name: path
                        .file_name()
                        .map(|n| n.to_string_lossy().into_owned())
                        .unwrap_or_default(),
                }),
            })
        })();
        let _ = std::fs::remove_file(&path);
        let set = result?;
        if let Some(out) = report {
            std::fs::write(out, serde_json::to_vec_pretty(&set)?)
                .with_context(|| format!("writing {}", out.display()))?;
        }
        Ok(())
    }

    fn calls(c: &Caller, fd: i32, rlimit: bool) -> anyhow::Result<()> {
        let p = PAGE;
        // Kept to the end: anonymous (one page touched), hinted, MAP_FIXED_NOREPLACE, the file
        // shared (one byte written) and private.
        let anon = expect(
            "anonymous",
            c.mmap("anonymous", 0, 4 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        touch(anon);
        let hinted = c.mmap("hinted", HINT_ADDR, 2 * p, RW, ANON, -1, 0);
        expect("hinted", hinted, Ok(Some(HINT_ADDR as i64)))?;
        let noreplace = c.mmap(
            "fixed-noreplace",
            NOREPLACE_ADDR,
            16 * p,
            RW,
            ANON | libc::MAP_FIXED_NOREPLACE as u64,
            -1,
            0,
        );
        expect(
            "fixed-noreplace",
            noreplace,
            Ok(Some(NOREPLACE_ADDR as i64)),
        )?;
        let shared = expect(
            "file-shared",
            c.mmap("file-shared", 0, 5 * p, RW, libc::MAP_SHARED as u64, fd, p),
            Ok(None),
        )?;
        touch(shared + 7);
        expect(
            "file-private",
            c.mmap(
                "file-private",
                0,
                6 * p,
                RO,
                libc::MAP_PRIVATE as u64,
                fd,
                0,
            ),
            Ok(None),
        )?;

        // mprotect of the middle of a region.
        let prot = expect(
            "mprotect-region",
            c.mmap("mprotect-region", 0, 7 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        expect(
            "mprotect-part",
            c.mprotect("mprotect-part", prot + p, 2 * p, RO),
            Ok(Some(0)),
        )?;

        // Grow in place: the pages after the first two are unmapped just before (flags 0: it
        // must grow where it is or fail).
        let grow = expect(
            "grow-region",
            c.mmap("grow-region", 0, 8 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        expect(
            "grow-free-tail",
            c.munmap("grow-free-tail", grow + 2 * p, 6 * p),
            Ok(Some(0)),
        )?;
        expect(
            "mremap-grow",
            c.mremap("mremap-grow", grow, 2 * p, 3 * p, 0),
            Ok(Some(grow as i64)),
        )?;

        // Move: the pages after the first two are a mapping of their own (read-only), so
        // growing the first two has to move them.
        let movable = expect(
            "move-region",
            c.mmap("move-region", 0, 9 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        expect(
            "move-blocker",
            c.mprotect("move-blocker", movable + 2 * p, 7 * p, RO),
            Ok(Some(0)),
        )?;
        let moved = expect(
            "mremap-move",
            c.mremap(
                "mremap-move",
                movable,
                2 * p,
                4 * p,
                libc::MREMAP_MAYMOVE as u64,
            ),
            Ok(None),
        )?;
        if moved == movable {
            anyhow::bail!("mremap-move: did not move ({moved:#x})");
        }
        touch(moved + 3 * p);
        expect(
            "mremap-shrink",
            c.mremap("mremap-shrink", moved, 4 * p, p, 0),
            Ok(Some(moved as i64)),
        )?;

        // MAP_FIXED over the middle page of a 3-page region of this process.
        let fixed = expect(
            "fixed-region",
            c.mmap("fixed-region", 0, 3 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        expect(
            "map-fixed-over",
            c.mmap(
                "map-fixed-over",
                fixed + p,
                p,
                RO,
                ANON | libc::MAP_FIXED as u64,
                -1,
                0,
            ),
            Ok(Some((fixed + p) as i64)),
        )?;

        // munmap of the middle page (of 11), then mprotect of that hole (ENOMEM) right away.
        // (The set's mmap lengths differ from each other, so that each call is told apart.)
        let holed = expect(
            "munmap-region",
            c.mmap("munmap-region", 0, 11 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        expect(
            "munmap-middle",
            c.munmap("munmap-middle", holed + 5 * p, p),
            Ok(Some(0)),
        )?;
        expect(
            "mprotect-unmapped",
            c.mprotect("mprotect-unmapped", holed + 5 * p, p, RO),
            Err(libc::ENOMEM),
        )?;

        // The break: up 64 KiB, up again, back to where it was.
        let start = expect("brk-query", c.brk("brk-query", 0), Ok(None))?;
        let up = start + (64 << 10);
        expect("brk-grow", c.brk("brk-grow", up), Ok(Some(up as i64)))?;
        let up2 = up + (64 << 10);
        expect(
            "brk-grow-again",
            c.brk("brk-grow-again", up2),
            Ok(Some(up2 as i64)),
        )?;
        expect("brk-back", c.brk("brk-back", start), Ok(Some(start as i64)))?;

        // A second thread: its own mapping, and an mprotect and a munmap of regions the main
        // thread mapped and handed over.
        let handed = expect(
            "handed-unmap",
            c.mmap("handed-unmap", 0, 13 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        let handed_prot = expect(
            "handed-protect",
            c.mmap("handed-protect", 0, 14 * p, RW, ANON, -1, 0),
            Ok(None),
        )?;
        let (send, receive) = std::sync::mpsc::channel::<(u64, u64)>();
        std::thread::scope(|s| {
            let second = s.spawn(move || -> anyhow::Result<()> {
                let (unmap, protect) = receive.recv()?;
                let own = expect(
                    "thread-mmap",
                    c.mmap("thread-mmap", 0, 15 * p, RW, ANON, -1, 0),
                    Ok(None),
                )?;
                touch(own);
                expect(
                    "thread-mprotect",
                    c.mprotect("thread-mprotect", protect, p, RO),
                    Ok(Some(0)),
                )?;
                expect(
                    "thread-munmap",
                    c.munmap("thread-munmap", unmap, 13 * p),
                    Ok(Some(0)),
                )?;
                expect(
                    "thread-munmap-own",
                    c.munmap("thread-munmap-own", own, 15 * p),
                    Ok(Some(0)),
                )?;
                Ok(())
            });
            send.send((handed, handed_prot))?;
            second
                .join()
                .map_err(|_| anyhow::anyhow!("the second thread panicked"))?
        })?;

        // Deliberate failures.
        expect(
            "munmap-unaligned",
            c.munmap("munmap-unaligned", anon + 1, p),
            Err(libc::EINVAL),
        )?;
        expect(
            "mmap-zero-length",
            c.mmap("mmap-zero-length", 0, 0, RO, ANON, -1, 0),
            Err(libc::EINVAL),
        )?;
        expect(
            "mmap-bad-fd",
            c.mmap(
                "mmap-bad-fd",
                0,
                17 * p,
                RO,
                libc::MAP_PRIVATE as u64,
                NOT_OPEN_FD,
                0,
            ),
            Err(libc::EBADF),
        )?;
        expect(
            "mremap-bad-flag",
            c.mremap("mremap-bad-flag", anon, p, 2 * p, BAD_MREMAP_FLAG),
            Err(libc::EINVAL),
        )?;

        // Tidy up what is not kept.
        for (label, addr, len) in [
            ("unmap-mprotect-region", prot, 7 * p),
            ("unmap-grow-region", grow, 3 * p),
            ("unmap-moved", moved, p),
            ("unmap-fixed-region", fixed, 3 * p),
        ] {
            expect(label, c.munmap(label, addr, len), Ok(Some(0)))?;
        }
        if rlimit {
            rlimit_as_fail(c)?;
        }
        Ok(())
    }
}
