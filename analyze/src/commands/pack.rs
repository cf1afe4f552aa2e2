//! `mmap-analyze pack`: the segments of one capture as one file.

use std::{path::PathBuf, process::ExitCode};

use anyhow::bail;

use crate::{
    cli::Inputs,
    derive::{self, Output, Parents, WrittenFormat},
    input, output, segments,
};

/// Join the segments of a capture into one file.
///
/// A recording to a directory (`mmap-recorder record -o DIR/`) is split into segments; pack
/// writes their rows, segment after segment in `segment_index` order, into ONE capture file that
/// every command reads like the directory. Its metadata is the capture's, with the time range of
/// all segments and their counters summed, and names every segment (file name, index, rows,
/// size, SHA-256) as provenance, so the packed file can be checked against the segments it was
/// made of.
///
/// The INPUTs must be the segments of one capture (the same capture id): a directory, or files.
/// Segments missing from the inputs (deleted by --keep) are noted on stderr; their rows are not
/// in the packed file either.
///
/// The output is written to a temporary file next to OUT and renamed when complete; an existing
/// OUT is replaced only with --force, and never when it is an input, a directory or a symbolic
/// link.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// The capture file to write (conventionally *.parquet).
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,

    /// Replace FILE if it exists (a regular file that is not an input).
    #[arg(long)]
    force: bool,

    /// How what was written is printed.
    #[arg(long, value_enum, default_value_t = WrittenFormat::Text)]
    format: WrittenFormat,
}

const EXAMPLES: &str = "\
Examples:
  # A recording to rec/ as one file to attach to a ticket
  mmap-analyze pack rec/ -o rec.parquet

  # The segments it was made of, from its metadata
  mmap-analyze pack rec/ -o rec.parquet --format json";

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    input::remote::refuse(&args.inputs.paths, "pack")?;
    let readers = derive::order(input::open(&args.inputs)?);
    let captures = derive::captures(&readers);
    if captures.len() > 1 {
        bail!(
            "the inputs hold {} captures (different capture ids, or files without one); pack \
             joins the segments of one capture (`extract` writes rows of several into one file)",
            captures.len()
        );
    }
    for pair in readers.windows(2) {
        if let [a, b] = pair
            && a.metadata().segment_index.is_some()
            && a.metadata().segment_index == b.metadata().segment_index
        {
            bail!(
                "{} and {} are both segment {} of the capture: pack takes each segment once",
                a.path().display(),
                b.path().display(),
                a.metadata().segment_index.unwrap_or(0)
            );
        }
    }
    for gap in segments::missing(&readers) {
        output::note(&format!(
            "{}; pack writes what the inputs hold",
            gap.sentence()
        ));
    }
    let output = Output::check(&args.output, args.force, &readers, &args.inputs.paths)?;
    let parents = Parents::hash(&readers)?;
    let mut metadata = derive::merge(&readers)?;
    metadata.provenance.push(derive::derivation(
        "pack",
        parents.files.clone(),
        Vec::new(),
    ));
    let rows = derive::all_rows(&readers)?;
    let written = derive::write(
        &output, &readers, &parents, rows, &metadata, "packing", Some,
    )?;
    derive::print(&written, args.format)?;
    Ok(ExitCode::SUCCESS)
}
