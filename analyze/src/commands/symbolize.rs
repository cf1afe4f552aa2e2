//! `mmap-analyze symbolize`: a copy of captures whose unnamed frames are named from ELF files
//! found by build id in debug directories.

use std::{
    borrow::Cow,
    collections::{BTreeMap, BTreeSet},
    io::Write as _,
    path::PathBuf,
    process::ExitCode,
};

use anyhow::Context as _;
use arrow::{
    array::{Array as _, AsArray as _},
    compute::cast,
    datatypes::{DataType, UInt32Type, UInt64Type},
};
use mmap_format::event::{RowKind, symbol_sources::DEBUG_DIR};
use serde::Serialize;

use crate::{
    cli::Inputs,
    derive::{self, Output, Parents, Written, WrittenFormat},
    engine::Engine,
    input, output,
    symbolize::{
        Named, Wanted,
        debug_dirs::{DebugDirs, Skipped},
        name_offsets, symbolizer,
    },
    table::visible,
};

/// Name the frames of call stacks that the recording could not name, from debug files.
///
/// A recording with `--stacks` names each frame while the program is there; a frame it could
/// not name (no symbols in the mapped file, a file gone before the end of the segment) keeps
/// its module's GNU build id and the file offset of its address. This command finds each such
/// module by build id in the --debug-dir directories: first in the `.build-id` layout that gdb
/// and debuginfod use (`DIR/.build-id/ab/cdef0123....debug`, the debug file, and
/// `DIR/.build-id/ab/cdef0123...`, the executable, for build id `abcdef0123...`), then any
/// regular file below DIR whose build id is the same. The executable or library places the file
/// offset (a debug file alone cannot: it holds no code); the function name (demangled) and, when
/// a file has DWARF line tables, the source file and line are written into the frame rows, with
/// `symbol_source = debug_dir`. Frames that were already named stay as they are.
///
/// The directories are read with care: a symbolic link is followed only when it ends inside
/// the directory it was found in, only regular files are opened, and the walk stops at 12
/// levels, 200,000 entries and files of 4 GiB.
///
/// The copy is ONE capture file (the INPUTs' rows, segments in order) with their metadata
/// merged and a provenance step `symbolize`. On stderr: how many frames were named, and each
/// module still unnamed with its build id (with `--format json`: all of it in one object on
/// stdout).
///
/// Exit status: 0 when the copy is written (also when no frame could be named), 2 on a usage
/// error, an input that is missing or not a readable capture file, or a --debug-dir that is not
/// a directory.
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    #[command(flatten)]
    inputs: Inputs,

    /// A directory of ELF files (executables, libraries, debug files); give it more than once to
    /// look in several, in order.
    #[arg(long = "debug-dir", value_name = "DIR", required = true)]
    debug_dirs: Vec<PathBuf>,

    /// The capture file to write.
    #[arg(short, long, value_name = "OUT")]
    output: PathBuf,

    /// Replace OUT if it exists (a regular file that is not an input).
    #[arg(long)]
    force: bool,

    /// How what was done is printed.
    #[arg(long, value_enum, default_value_t = WrittenFormat::Text)]
    format: WrittenFormat,
}

const EXAMPLES: &str = "\
Examples:
  # Frames of programs built elsewhere, with their debug files in a .build-id tree
  mmap-analyze symbolize rec/ --debug-dir /usr/lib/debug -o named.parquet

  # The build output of the program that was traced, and the system's debug files
  mmap-analyze symbolize incident.parquet --debug-dir ./target/debug \\
    --debug-dir /usr/lib/debug -o named.parquet

  # What is left unnamed, for a script
  mmap-analyze symbolize rec/ --debug-dir dbg/ -o named.parquet --format json";

/// What was named and what was not.
#[derive(Debug, Default, Serialize)]
pub struct Outcome {
    /// Frame rows named by this run.
    pub frames_named: u64,
    /// Frame rows left without a name: no build id or offset, or not found.
    pub frames_unnamed: u64,
    /// The modules of the frames left unnamed, most frames first.
    pub unnamed: Vec<Unnamed>,
    /// What the walk of the debug directories left out.
    pub skipped: Skipped,
}

/// A module whose frames were left unnamed.
#[derive(Debug, Serialize)]
pub struct Unnamed {
    pub module: Option<String>,
    pub build_id: Option<String>,
    pub frames: u64,
    /// Why: no build id recorded, no file with that build id, or the file did not name them.
    pub why: &'static str,
}

/// The command's JSON: what was written and what was named.
#[derive(Debug, Serialize)]
struct Report<'a> {
    #[serde(flatten)]
    written: &'a Written,
    #[serde(flatten)]
    outcome: &'a Outcome,
}

/// Modules listed on stderr and in the JSON (the rest are counted).
const MAX_LISTED: usize = 100;

/// What is known about one module while naming.
type Key = (Option<String>, Option<String>);

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    input::remote::refuse(&args.inputs.paths, "symbolize")?;
    let readers = derive::order(input::open(&args.inputs)?);
    let output = Output::check(&args.output, args.force, &readers, &args.inputs.paths)?;
    let mut dirs = DebugDirs::open(&args.debug_dirs)?;
    let engine = Engine::open(&readers)?;
    let wanted = unnamed_frames(&engine)?;
    let names = name_all(&mut dirs, &wanted);

    let parents = Parents::hash(&readers)?;
    let mut metadata = derive::merge(&readers)?;
    let selection = args
        .debug_dirs
        .iter()
        .flat_map(|d| ["--debug-dir".to_owned(), d.display().to_string()])
        .collect();
    metadata.provenance.push(derive::derivation(
        "symbolize",
        parents.files.clone(),
        selection,
    ));
    let mut outcome = Outcome::default();
    let mut unnamed: BTreeMap<Key, (u64, &'static str)> = BTreeMap::new();
    let rows = derive::all_rows(&readers)?;
    let written = derive::write(
        &output,
        &readers,
        &parents,
        rows,
        &metadata,
        "symbolizing",
        |mut row| {
            if row.kind != RowKind::Frame || row.symbol_source.is_some() {
                return Some(row);
            }
            let key: Key = (
                row.frame_module.as_deref().map(str::to_owned),
                row.frame_build_id.as_deref().map(str::to_owned),
            );
            let found = match (&key.1, row.frame_offset) {
                (Some(build_id), Some(offset)) => match names.get(&build_id.to_ascii_lowercase()) {
                    Some(Ok(named)) => named
                        .get(&Wanted {
                            offset,
                            is_return: row.frame_index.unwrap_or(0) > 0,
                        })
                        .ok_or("the files with this build id have no symbol for the offset"),
                    Some(Err(why)) => Err(*why),
                    None => Err("no file with this build id in the debug directories"),
                },
                _ => Err("no build id or offset recorded"),
            };
            match found {
                Ok(named) => {
                    outcome.frames_named += 1;
                    row.frame_function = Some(Cow::Owned(named.function.clone()));
                    row.frame_file = named.file.clone().map(Cow::Owned);
                    row.frame_line = named.line;
                    row.symbol_source = Some(Cow::Borrowed(DEBUG_DIR));
                }
                Err(why) => {
                    outcome.frames_unnamed += 1;
                    let entry = unnamed.entry(key).or_insert((0, why));
                    entry.0 += 1;
                }
            }
            Some(row)
        },
    )?;
    let mut listed: Vec<Unnamed> = unnamed
        .into_iter()
        .map(|((module, build_id), (frames, why))| Unnamed {
            module,
            build_id,
            frames,
            why,
        })
        .collect();
    listed.sort_by_key(|u| std::cmp::Reverse(u.frames));
    outcome.unnamed = listed;
    outcome.skipped = dirs.skipped;
    print(&written, &mut outcome, args.format)?;
    Ok(ExitCode::SUCCESS)
}

/// The distinct (build id, offset, return address?) of the frames without a name.
fn unnamed_frames(engine: &Engine) -> anyhow::Result<BTreeMap<String, BTreeSet<Wanted>>> {
    let query = "SELECT DISTINCT frame_build_id, frame_offset, \
                   CAST(CASE WHEN frame_index > 0 THEN 1 ELSE 0 END AS INT UNSIGNED) \
                 FROM events WHERE kind = 'frame' AND symbol_source IS NULL \
                   AND frame_build_id IS NOT NULL AND frame_offset IS NOT NULL";
    let mut wanted: BTreeMap<String, BTreeSet<Wanted>> = BTreeMap::new();
    for batch in engine.sql(query)? {
        let batch = batch?;
        let ids = cast(batch.column(0), &DataType::Utf8)?;
        let ids = ids.as_string::<i32>();
        let offsets = batch.column(1).as_primitive::<UInt64Type>();
        let returns = batch.column(2).as_primitive::<UInt32Type>();
        for row in 0..batch.num_rows() {
            wanted
                .entry(ids.value(row).to_ascii_lowercase())
                .or_default()
                .insert(Wanted {
                    offset: offsets.value(row),
                    is_return: returns.is_valid(row) && returns.value(row) == 1,
                });
        }
    }
    Ok(wanted)
}

/// For each build id: the names found for its offsets, or why none could be.
fn name_all(
    dirs: &mut DebugDirs,
    wanted: &BTreeMap<String, BTreeSet<Wanted>>,
) -> BTreeMap<String, Result<BTreeMap<Wanted, Named>, &'static str>> {
    let symbolizer = symbolizer();
    let ids: BTreeSet<String> = wanted.keys().cloned().collect();
    wanted
        .iter()
        .map(|(build_id, offsets)| {
            let offsets: Vec<Wanted> = offsets.iter().copied().collect();
            let files = dirs.find(build_id, &ids);
            let named = if files.is_empty() {
                Err("no file with this build id in the debug directories")
            } else {
                name_offsets(&symbolizer, &files, &offsets)
            };
            (build_id.clone(), named)
        })
        .collect()
}

fn print(written: &Written, outcome: &mut Outcome, format: WrittenFormat) -> anyhow::Result<()> {
    let more = outcome.unnamed.len().saturating_sub(MAX_LISTED);
    outcome.unnamed.truncate(MAX_LISTED);
    if format == WrittenFormat::Json {
        let mut stdout = output::stdout();
        output::write_json_pretty(&mut stdout, &Report { written, outcome })?;
        stdout.flush().context("writing to stdout")?;
        return Ok(());
    }
    derive::print(written, format)?;
    let mut lines = vec![format!(
        "{} frame {} named from the debug directories, {} left unnamed",
        outcome.frames_named,
        if outcome.frames_named == 1 {
            "row"
        } else {
            "rows"
        },
        outcome.frames_unnamed
    )];
    for u in &outcome.unnamed {
        lines.push(format!(
            "  unnamed: {} frame{} of {} (build id {}): {}",
            u.frames,
            if u.frames == 1 { "" } else { "s" },
            visible(u.module.as_deref().unwrap_or("[no module]")),
            visible(u.build_id.as_deref().unwrap_or("-")),
            u.why
        ));
    }
    if more > 0 {
        lines.push(format!("  and {more} more modules"));
    }
    let s = outcome.skipped;
    if s.links_outside + s.too_large + s.too_deep > 0 || s.stopped_at_max_entries {
        lines.push(format!(
            "  the debug directories' walk skipped {} symbolic links out of them, {} files too \
             large, {} directories too deep{}",
            s.links_outside,
            s.too_large,
            s.too_deep,
            if s.stopped_at_max_entries {
                ", and stopped at its limit of entries"
            } else {
                ""
            }
        ));
    }
    let mut stderr = std::io::stderr().lock();
    for line in lines {
        let _ = writeln!(stderr, "{line}");
    }
    Ok(())
}
