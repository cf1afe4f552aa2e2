//! `mmap-analyze`: replay and query mmap-capture files offline.
//!
//! This file only wires things together: the command line is parsed here and each subcommand lives
//! in its own module with a `run(args) -> anyhow::Result<ExitCode>`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod cli;
mod commands;
mod derive;
mod engine;
mod events;
mod findings;
mod input;
mod labels;
mod loss;
mod maps;
mod output;
mod progress;
mod recover;
mod replay;
mod report;
mod rerun;
mod segments;
mod summary;
mod symbolize;
mod table;
mod timespec;
#[cfg(zstd_contexts)]
mod zstd_contexts;

/// Replay and query mmap-capture files offline.
///
/// mmap-capture records Linux mmap-family system calls with eBPF (`mmap-recorder`) into
/// zstd-compressed Parquet capture files. `mmap-analyze` reads those files; it never needs root.
///
/// Every command reads INPUTs: capture files, directories of segments (a recording to `-o DIR/`)
/// or quoted glob patterns.
///
/// Exit status: 0 on success (also when the reader of stdout goes away, as in `| head`, and when
/// a filter matches nothing), 1 when an `sql` query or a `--where` predicate is wrong, 2 on a
/// usage error, an input that is missing or not a readable capture file, or a process that a
/// command must name (`maps --pid`) and that is not there; `findings --fail-on` exits 3 when it
/// finds something that severe.
#[derive(Debug, Parser)]
#[command(name = "mmap-analyze", version, propagate_version = true, after_long_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze summary build.parquet
  mmap-analyze summary rec/ --format json --top 5
  mmap-analyze events rec/mmap-20261127T060113Z-1a2b3c4d-00000.parquet --pid 1234 --failed
  mmap-analyze events 'rec/mmap-*.parquet' --format csv > calls.csv
  mmap-analyze maps rec/ --pid 1234 --at +1.5s
  mmap-analyze findings rec/
  mmap-analyze top rec/ --by bytes --group file
  mmap-analyze events rec/ --where \"len > 1048576 AND prot_names(prot) LIKE '%EXEC%'\"
  mmap-analyze report rec/ -o report.html
  mmap-analyze recover rec/
  mmap-analyze info rec/
  mmap-analyze verify rec/
  mmap-analyze redact rec/ -o shared.parquet --key-file incident.key
  mmap-analyze extract rec/ -o pid1234.parquet --pid 1234 --until +10s
  mmap-analyze pack rec/ -o rec.parquet
  mmap-analyze symbolize rec/ --debug-dir /usr/lib/debug -o named.parquet
  mmap-analyze rerun rec/ --pid 1234
  mmap-analyze stacks rec/ --format folded --by bytes";

#[derive(Debug, Subcommand)]
enum Command {
    Summary(summary::Args),
    Events(events::Args),
    Maps(maps::Args),
    Top(commands::top::Args),
    Latency(commands::latency::Args),
    Errors(commands::errors::Args),
    Findings(commands::findings::Args),
    Replay(commands::replay::Args),
    Diff(commands::diff::Args),
    Sql(commands::sql::Args),
    Export(commands::export::Args),
    Report(commands::report::Args),
    Recover(recover::Args),
    Info(commands::info::Args),
    Verify(commands::verify::Args),
    Redact(commands::redact::Args),
    Extract(commands::extract::Args),
    Pack(commands::pack::Args),
    Symbolize(commands::symbolize::Args),
    Rerun(rerun::Args),
    Stacks(commands::stacks::Args),
    #[command(hide = true)]
    RerunChild(rerun::ChildArgs),
}

fn main() -> ExitCode {
    // A library panic on a hostile file is caught and reported as an error; any other panic
    // prints one line.
    mmap_format::guard::install_quiet_hook("mmap-analyze");
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary(args) => summary::run(args),
        Command::Events(args) => events::run(args),
        Command::Maps(args) => maps::run(args),
        Command::Recover(args) => recover::run(args),
        Command::Sql(args) => commands::sql::run(args),
        Command::Top(args) => commands::top::run(args),
        Command::Latency(args) => commands::latency::run(args),
        Command::Errors(args) => commands::errors::run(args),
        Command::Findings(args) => commands::findings::run(args),
        Command::Report(args) => commands::report::run(args),
        Command::Replay(args) => commands::replay::run(args),
        Command::Export(args) => commands::export::run(args),
        Command::Diff(args) => commands::diff::run(args),
        Command::Info(args) => commands::info::run(args),
        Command::Verify(args) => commands::verify::run(args),
        Command::Redact(args) => commands::redact::run(args),
        Command::Extract(args) => commands::extract::run(args),
        Command::Pack(args) => commands::pack::run(args),
        Command::Symbolize(args) => commands::symbolize::run(args),
        Command::Rerun(args) => rerun::run(args),
        Command::Stacks(args) => commands::stacks::run(args),
        Command::RerunChild(args) => rerun::run_child(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => output::report_error(&err),
    }
}
