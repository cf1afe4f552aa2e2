//! mmap-recorder: records the mmap family of system calls with eBPF into Parquet captures.
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod btf;
mod clock;
mod convert;
mod host;
mod launch;
mod output;
mod preflight;
mod probes;
mod record;
mod sink;

/// Record Linux memory-mapping system calls (mmap) with eBPF into a Parquet capture file.
///
/// One row per call: arguments at entry, result at exit, who made it (pid, tid, comm, uid,
/// cgroup) and, for file mappings, the file's device, inode and name. Loss is counted in the
/// capture. Read captures with `mmap-analyze` (no root needed), DuckDB, pyarrow or Polars.
#[derive(Debug, Parser)]
#[command(name = "mmap-recorder", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Record mmap calls of a command, of given processes, or of the whole system (needs root
    /// or CAP_BPF + CAP_PERFMON).
    Record(record::RecordArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Record(args) => record::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("mmap-recorder: {err:#}");
            ExitCode::from(2)
        }
    }
}
