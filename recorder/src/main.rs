//! mmap-recorder: records the mmap family of system calls with eBPF into Parquet captures.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// `say!` that never panics: with stderr gone (a closed pipe, a hung-up terminal) the
/// recording goes on and closes its capture, and only the message is lost.
macro_rules! say {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = writeln!(std::io::stderr(), $($arg)*);
    }};
}

/// `say_part!` that never panics (see [`say!`]).
macro_rules! say_part {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        let _ = write!(std::io::stderr(), $($arg)*);
    }};
}

mod btf;
mod cgroups;
mod chain;
mod clock;
mod convert;
mod host;
mod launch;
mod output;
mod preflight;
mod probes;
mod record;
mod ring;
mod sink;
mod snapshot;
mod stacks;

/// Record Linux memory mapping (mmap, munmap, mprotect, mremap, brk) with eBPF into Parquet
/// captures.
///
/// One row per call: arguments at entry, result at exit, who made it (pid, tid, comm, uid,
/// cgroup, pid namespace) and, for file mappings, the file's device, inode and full path; plus
/// process lifecycle and address-space snapshots, so any target's mappings can be rebuilt at any
/// moment. Loss is recorded in the capture. Read captures with `mmap-analyze` (no root needed),
/// DuckDB, pyarrow or Polars.
#[derive(Debug, Parser)]
#[command(name = "mmap-recorder", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record a command, given processes, names or cgroups, or the whole system (needs root or
    /// CAP_BPF + CAP_PERFMON).
    Record(record::RecordArgs),
}

fn main() -> ExitCode {
    // A library panic on a hostile file is caught and reported as an error; any other panic
    // prints one line.
    mmap_format::guard::install_quiet_hook("mmap-recorder");
    // The drain's batches (up to 4 MiB) are freed by the writer thread: with glibc's default,
    // the mmap threshold rises past them after the first frees and they come from the heap,
    // where they stay resident; a fixed threshold maps and returns each one (10 minutes at
    // 5,000 calls a second: RSS 86 -> 62 MiB). It is 1 MiB, above the writer's page buffers
    // (a PLAIN page of 20,000 u64 values is 160 KB): at 128 KiB each of those was mapped and
    // unmapped again, twice the page faults (docs/PERFORMANCE.md, 2026-12-06).
    // SAFETY: mallopt only sets an allocator parameter; called before any other thread exists.
    unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, 1024 * 1024) };
    // One heap for every thread: the writer thread then reuses what start-up freed (the kernel
    // BTF parsed twice, the eBPF object) instead of growing an arena of its own beside it (an
    // 8 M-call flood: peak RSS 91 -> 82 MiB). The drain allocates little, so the one lock is
    // not contended.
    // SAFETY: as above.
    unsafe { libc::mallopt(libc::M_ARENA_MAX, 1) };
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(args) => record::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            say!("mmap-recorder: {err:#}");
            ExitCode::from(2)
        }
    }
}
