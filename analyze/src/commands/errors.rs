//! `mmap-analyze errors`: failed calls grouped by errno, system call and process.

use std::process::ExitCode;

use super::calls;
use crate::{
    cli::Inputs,
    engine::{
        filter::RowFilter,
        results::{TextFormat, Unit, write_text_with},
    },
    output,
};

/// Show the calls that failed, grouped by error, system call and process.
///
/// One row per errno name (`errno 4000` for a number without a name), system call and process
/// (pid and thread name): how many calls failed that way, the time of the first and the last,
/// and the arguments of the first (its length, protection and flags, decoded) as an example.
/// The most frequent failures come first. `events --failed --pid PID` lists the calls
/// themselves.
///
/// In a table, times are UTC times of day and lengths human-readable; JSON (JSON Lines, one
/// object per row) and CSV give times as nanoseconds since the Unix epoch (`first_ns`,
/// `last_ns`) and lengths in bytes.
///
/// Exit status: 0 on success (also when no call failed, and when the reader of stdout goes
/// away), 1 when --where is not a valid predicate, 2 on a usage error or an unreadable input.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    #[command(flatten)]
    filter: RowFilter,

    /// Output format.
    #[arg(long, value_enum, default_value_t = TextFormat::Table)]
    format: TextFormat,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze errors rec/
  mmap-analyze errors rec/ --syscall mmap --where \"errno_name = 'ENOMEM'\"
  mmap-analyze errors c.parquet --pid 1234 --since +2s --format json";

/// The columns whose numbers a table shows for people.
const UNITS: &[(&str, Unit)] = &[
    ("first_ns", Unit::Time),
    ("last_ns", Unit::Time),
    ("len", Unit::Bytes),
];

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    calls::run(&args.inputs, &args.filter, |calls| {
        let query = format!(
            "SELECT coalesce(errno_name, concat('errno ', CAST(errno AS VARCHAR))) AS errno_name, \
         syscall, pid, comm, count(*) AS calls, \
         CAST(min(ts) AS BIGINT) AS first_ns, CAST(max(ts) AS BIGINT) AS last_ns, \
         first_value(len ORDER BY ts) AS len, first_value(prot_names ORDER BY ts) AS prot, \
         first_value(flags_names ORDER BY ts) AS flags \
         FROM (SELECT * FROM calls WHERE errno IS NOT NULL) AS failed{} \
         GROUP BY errno_name, errno, syscall, pid, comm \
         ORDER BY 5 DESC, 6, 1, 2, 3, 4",
            calls.where_clause()
        );
        let batches = calls.engine.sql(&query)?;
        write_text_with(args.format.into(), batches, &mut output::stdout(), UNITS)
    })
}
