//! `mmap-analyze sql`: any SQL query over captures.

use std::{
    fs::File,
    io::{BufWriter, Write as _},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::bail;

use crate::{
    cli::Inputs,
    engine::{
        Engine, EngineError,
        results::{ResultFormat, write_parquet, write_text},
    },
    input, output,
};

/// Run a SQL query over captures.
///
/// The inputs (one or more capture files, from one recording or several) are the table
/// `events`: every row, with the columns of the capture format (older files have NULL in the
/// columns they lack) plus `capture_id`, `host` and `file`, which tell the inputs apart. The
/// views `calls`, `lifecycle`, `snapshots` and `lost` show one kind of row each, with decoded
/// names beside the raw numbers (`dur_ns`, `prot_names`, `flags_names`, `errno_name`). The
/// functions prot_names(prot), flags_names(syscall, flags) and errno_name(errno) work in any
/// query. docs/ANALYZE.md ("SQL") lists every column.
///
/// The SQL is DataFusion's (close to PostgreSQL's). Filters and the columns a query uses reach
/// the Parquet reader, which skips the row groups and pages that cannot match. Results are
/// written as they come; a table is sized from its first 1000 rows.
///
/// Exit status: 0 on success (also when the reader of stdout goes away, as in `| head`), 1 when
/// the query is wrong (one line says what and where), 2 on a usage error or an input that is
/// missing or not a readable capture file.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Captures written by mmap-recorder: files, directories of segments (their regular *.parquet
    /// files in name order) or glob patterns (expanded here when the shell left them quoted).
    /// Also `s3://bucket/key`, `s3://bucket/prefix/`, `s3://bucket/prefix/*.parquet` and
    /// `file:///abs/path`.
    #[arg(value_name = "INPUT", required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,

    #[command(flatten)]
    remote: crate::cli::Remote,

    /// The query, e.g. "SELECT comm, count(*) FROM calls GROUP BY comm".
    #[arg(value_name = "QUERY")]
    query: String,

    /// Output format.
    #[arg(long, value_enum, default_value_t = ResultFormat::Table)]
    format: ResultFormat,

    /// Write the results to FILE instead of standard output (needed for --format parquet).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

const EXAMPLES: &str = "\
Examples:
  mmap-analyze sql capture-*.parquet \"SELECT syscall, count(*) FROM calls GROUP BY syscall\"
  mmap-analyze sql c.parquet \"SELECT ts, pid, len, errno_name FROM calls WHERE errno IS NOT NULL\"
  mmap-analyze sql a.parquet b.parquet \"SELECT host, sum(lost_count) FROM lost GROUP BY host\"
  mmap-analyze sql c.parquet \"SELECT * FROM calls WHERE pid = 42\" --format parquet -o pid42.parquet";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    if args.format == ResultFormat::Parquet && args.output.is_none() {
        bail!("--format parquet writes a file: give it with -o FILE");
    }
    let inputs = input::open(&Inputs {
        paths: args.inputs.clone(),
        remote: args.remote.clone(),
    })?;
    let engine = Engine::open(&inputs)?;
    let written = engine
        .sql(&args.query)
        .and_then(|batches| match (&args.output, args.format) {
            (Some(path), ResultFormat::Parquet) => write_parquet(batches, path),
            (Some(path), format) => {
                let file = File::create(path).map_err(EngineError::Output)?;
                let mut out = BufWriter::new(file);
                let rows = write_text(format, batches, &mut out)?;
                out.flush().map_err(EngineError::Output)?;
                Ok(rows)
            }
            (None, format) => write_text(format, batches, &mut output::stdout()),
        });
    written?;
    Ok(ExitCode::SUCCESS)
}
