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
    if let Some(n) = args.forks {
        return fork_storm(n);
    }
    if let Some(n) = args.flood {
        return flood(n);
    }
    if let Some(n) = args.pairs {
        let start = Instant::now();
        for _ in 0..n {
            map_unmap(4096)?;
        }
        let ns = start.elapsed().as_nanos() as f64;
        eprintln!(
            "mmap-workload: {n} pairs, {:.0} ns per pair",
            ns / n.max(1) as f64
        );
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
