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
use mmap_capture_tests::{Call, FileId, Report};

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
        Ok(Report {
            pid: std::process::id(),
            calls,
        })
    })();
    let _ = std::fs::remove_file(&path);
    let report = result?;
    if let Some(out) = args.report {
        let json = serde_json::to_vec_pretty(&report)?;
        std::fs::write(&out, json).with_context(|| format!("writing {}", out.display()))?;
    }
    Ok(())
}
