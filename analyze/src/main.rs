//! `mmap-analyze`: replay and query mmap-capture files offline.
//!
//! This file only wires things together: the command line is parsed here and each subcommand lives
//! in its own module with a `run(args) -> anyhow::Result<ExitCode>`.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod commands;
mod engine;
mod events;
mod fmt;
mod input;
mod loss;
mod maps;
mod output;
mod recover;
mod replay;
mod summary;
mod table;

/// Replay and query mmap-capture files offline.
///
/// mmap-capture records Linux mmap-family system calls with eBPF (`mmap-recorder`) into
/// zstd-compressed Parquet capture files. `mmap-analyze` reads those files; it never needs root.
///
/// Exit status: 0 on success (also when the reader of stdout goes away, as in `| head`), 2 on a
/// usage error or an input that is missing or not a readable capture file.
#[derive(Debug, Parser)]
#[command(name = "mmap-analyze", version, propagate_version = true, after_long_help = EXAMPLES)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze summary capture-000.parquet
  mmap-analyze summary capture-*.parquet --format json --top 5
  mmap-analyze events capture-000.parquet --pid 1234 --failed
  mmap-analyze events capture-*.parquet --format csv > calls.csv
  mmap-analyze maps capture-*.parquet --pid 1234 --at +1.5s
  mmap-analyze recover capture-000.parquet";

#[derive(Debug, Subcommand)]
enum Command {
    Summary(summary::Args),
    Events(events::Args),
    Maps(maps::Args),
    Recover(recover::Args),
    Sql(commands::sql::Args),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Summary(args) => summary::run(args),
        Command::Events(args) => events::run(args),
        Command::Maps(args) => maps::run(args),
        Command::Recover(args) => recover::run(args),
        Command::Sql(args) => commands::sql::run(args),
    };
    match result {
        Ok(code) => code,
        Err(err) => output::report_error(&err),
    }
}
