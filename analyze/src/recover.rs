//! `mmap-analyze recover`: complete the captures a killed recorder left without a footer.

use std::{
    io::{self, Write},
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use clap::ValueEnum;
use mmap_format::{FormatError, recover::Recovered};
use serde::Serialize;

use crate::{
    input::{self, Discovered},
    labels, output,
};

/// Complete captures left by a recorder that was killed (or crashed, or lost power) before it
/// closed them.
///
/// A capture being written has a journal next to it (`<capture>.journal`) that says, after every
/// row group made durable, how to finish the file. `recover` reads the journal's intact frames,
/// cuts the capture after the last journaled row group (the rows after it, never made durable,
/// are dropped), writes the footer with the last metadata the recorder gave (marked
/// `recovered`, capture end = the time of the last frame) and removes the journal. The file is
/// then an ordinary capture for every other command.
///
/// A capture that is already complete is left as it is (a stale journal next to it is removed).
/// A file with neither a footer nor a journal cannot be recovered.
///
/// A directory stands for its regular *.parquet files, a quoted glob pattern for what it matches.
/// Files are handled one by one; each result is printed as it is known. Each error is one line on
/// stderr; the exit status is 2 when any file failed.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Capture files to complete (the journal is found next to each, PATH.journal), or
    /// directories of segments, or glob patterns.
    #[arg(value_name = "PATH", required = true)]
    paths: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = RecoverFormat::Table)]
    format: RecoverFormat,
}

const EXAMPLES: &str = "\
Examples:
  # After `kill -9` of the recorder
  mmap-analyze recover build.parquet
  mmap-analyze summary build.parquet

  # Every segment of a recording; complete ones are left alone
  mmap-analyze recover rec/ --format json";

/// How the results are printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum RecoverFormat {
    /// One sentence per file.
    Table,
    /// JSON Lines: one object per file.
    Json,
}

/// What happened to one file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
enum Status {
    Recovered,
    AlreadyComplete,
}

/// The outcome of one file, as printed in JSON.
#[derive(Debug, Serialize)]
struct Outcome {
    path: String,
    status: Status,
    rows: Option<u64>,
    row_groups: Option<usize>,
    bytes_dropped: Option<u64>,
    capture_start: Option<String>,
    capture_end: Option<String>,
}

impl Outcome {
    fn recovered(path: String, recovered: &Recovered) -> Self {
        Self {
            path,
            status: Status::Recovered,
            rows: Some(recovered.rows),
            row_groups: Some(recovered.row_groups),
            bytes_dropped: Some(recovered.bytes_dropped),
            capture_start: Some(labels::rfc3339_ns(recovered.metadata.capture_start_ns)),
            capture_end: Some(labels::rfc3339_ns(recovered.metadata.capture_end_ns)),
        }
    }

    fn already_complete(path: String) -> Self {
        Self {
            path,
            status: Status::AlreadyComplete,
            rows: None,
            row_groups: None,
            bytes_dropped: None,
            capture_start: None,
            capture_end: None,
        }
    }

    fn sentence(&self) -> String {
        match self.status {
            Status::Recovered => format!(
                "recovered {}: {} row{} in {} row group{}, {} byte{} dropped",
                self.path,
                labels::thousands(self.rows.unwrap_or(0)),
                labels::plural(self.rows.unwrap_or(0)),
                self.row_groups.unwrap_or(0),
                labels::plural(self.row_groups.unwrap_or(0) as u64),
                labels::thousands(self.bytes_dropped.unwrap_or(0)),
                labels::plural(self.bytes_dropped.unwrap_or(0)),
            ),
            Status::AlreadyComplete => {
                format!("{}: already complete, nothing to recover", self.path)
            }
        }
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    input::remote::refuse(&args.paths, "recover")?;
    let mut out = output::stdout();
    let mut failed = false;
    let mut found = Discovered::default();
    for arg in &args.paths {
        let before = found.files.len();
        if let Err(err) = found.add_arg(arg) {
            failed = true;
            report_in_order(&mut out, &err)?;
            continue;
        }
        for path in found.files.get(before..).unwrap_or_default() {
            let shown = path.display().to_string();
            let outcome = match mmap_format::recover::recover(path) {
                Ok(recovered) => Outcome::recovered(shown, &recovered),
                Err(FormatError::AlreadyComplete { .. }) => Outcome::already_complete(shown),
                Err(err) => {
                    failed = true;
                    report_in_order(&mut out, &anyhow::Error::new(err))?;
                    continue;
                }
            };
            match args.format {
                RecoverFormat::Table => writeln!(out, "{}", outcome.sentence())?,
                RecoverFormat::Json => {
                    serde_json::to_writer(&mut out, &outcome).map_err(io::Error::from)?;
                    out.write_all(b"\n")?;
                }
            }
        }
    }
    // Results go out before the notes.
    out.flush().context("writing to stdout")?;
    input::note_skipped(&found);
    Ok(if failed {
        ExitCode::from(output::EXIT_ERROR)
    } else {
        ExitCode::SUCCESS
    })
}

/// Reports one error, after the results so far.
fn report_in_order(out: &mut impl Write, err: &anyhow::Error) -> anyhow::Result<()> {
    out.flush().context("writing to stdout")?;
    output::report_error(err);
    Ok(())
}
