//! `mmap-analyze verify`: is a capture whole and unchanged? Recomputes every file's SHA-256 and
//! checks it against the segment chain (`previous_segment`) and the capture's manifest, decodes
//! every page, and checks the footers' row counts, versions and the segments' continuity.
//!
//! docs/FORMAT.md ("Integrity: the segment chain and the manifest") says what is checked.

use std::{
    collections::{BTreeMap, BTreeSet},
    ffi::OsStr,
    fs::{self, File},
    io::{Read as _, Write},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use clap::ValueEnum;
use mmap_format::{
    FORMAT_MINOR,
    manifest::{MANIFEST_SUFFIX, MAX_MANIFEST_BYTES, Manifest, manifest_name},
    metadata::CaptureMetadata,
    partition,
    reader::CaptureReader,
};
use serde::Serialize;

use crate::{
    input::{self, Discovered},
    labels, output,
    progress::Progress,
    table,
};

/// Check that captures are whole and unchanged.
///
/// For every capture file: its SHA-256 is computed over the whole file, its footer is read
/// (format version, schema, metadata), every page of every column is decoded, and the rows
/// decoded are compared with the footer's count.
///
/// For the segments of a directory capture (`mmap-recorder -o DIR/`), two records made while
/// recording are checked against the files as they are now: each segment after the first
/// carries the SHA-256, size, rows and name of the segment before it (the chain), and the
/// capture's manifest (`mmap-START-ID.manifest.json`, next to the segments) lists every
/// finished segment with the same. A changed byte, a truncated, missing, added, renamed or
/// swapped segment, or an edited metadata value, is reported naming the segment. The indices
/// must run 0, 1, 2, ... (from the first that `--keep` did not remove), all with one capture
/// id, their times in order.
///
/// A single-file capture (`-o FILE.parquet`) has no chain and no manifest: its footer and pages
/// are checked. A file made by `extract` or `pack` names its parents with their SHA-256:
/// `--parent` checks that the given files are those parents, unchanged.
///
/// Exit status: 0 when everything is whole, 1 when a problem was found (each is listed), 2 when
/// an INPUT cannot be read at all (missing, not a capture, not a regular file).
#[derive(Debug, clap::Args)]
#[command(after_long_help = EXAMPLES)]
pub struct Args {
    /// Capture files or directories of segments (a directory's manifests are read too).
    #[arg(value_name = "INPUT", required = true)]
    paths: Vec<PathBuf>,

    /// Files an extract or a pack was made from: each must be one of the parents that an INPUT's
    /// provenance names, with the SHA-256, size and rows recorded there.
    #[arg(long = "parent", value_name = "FILE", num_args = 1..)]
    parents: Vec<PathBuf>,

    /// Output format.
    #[arg(long, value_enum, default_value_t = VerifyFormat::Table)]
    format: VerifyFormat,
}

const EXAMPLES: &str = "\
Examples:
  # A recording to a directory: every segment, the chain and the manifest
  mmap-analyze verify rec/

  # One file, for a script
  mmap-analyze verify build.parquet --format json

  # An extract and the capture it was made from
  mmap-analyze verify incident.parquet --parent rec/mmap-20261127T060113Z-1a2b3c4d-00003.parquet";

/// How the result is printed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum VerifyFormat {
    /// A line per file, then a line per problem.
    Table,
    /// One JSON object: files, manifests, problems, notes.
    Json,
}

/// The longest text from a file that is shown (names, ids): a crafted file cannot print pages.
const SHOWN_CHARS: usize = 160;

/// Text from a file as printed: at most [`SHOWN_CHARS`] characters (JSON escapes the rest
/// itself; the table shows control characters escaped).
pub fn bounded(text: &str) -> String {
    let mut out: String = text.chars().take(SHOWN_CHARS).collect();
    if text.chars().nth(SHOWN_CHARS).is_some() {
        out.push('…');
    }
    out
}

/// Opens `path` for reading if it is a regular file, without blocking on a FIFO or a device.
fn open_regular(path: &Path) -> std::io::Result<File> {
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(std::io::Error::other("not a regular file"));
    }
    Ok(file)
}

/// SHA-256 (64 lowercase hex digits) and length of the file at `path`.
pub fn sha256_file(path: &Path) -> std::io::Result<(String, u64)> {
    mmap_format::manifest::sha256_of(open_regular(path)?, |_| ())
}

/// A manifest found in a directory.
#[derive(Debug)]
pub struct FoundManifest {
    pub path: PathBuf,
    pub manifest: Manifest,
}

/// The manifests in `dir` (regular `*.manifest.json` files, symbolic links not followed), and
/// one sentence per file that is not a manifest.
pub fn manifests_in(dir: &Path) -> (Vec<FoundManifest>, Vec<(PathBuf, String)>) {
    let mut found = Vec::new();
    let mut bad = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return (found, bad);
    };
    let mut paths: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(OsStr::to_str)
                .is_some_and(|n| n.ends_with(MANIFEST_SUFFIX) && !n.starts_with('.'))
        })
        .collect();
    paths.sort();
    for path in paths {
        match read_manifest(&path) {
            Ok(manifest) => found.push(FoundManifest { path, manifest }),
            Err(err) => bad.push((path, format!("{err:#}"))),
        }
    }
    (found, bad)
}

fn read_manifest(path: &Path) -> anyhow::Result<Manifest> {
    let file = open_regular(path)?;
    let mut bytes = Vec::new();
    file.take(MAX_MANIFEST_BYTES + 1).read_to_end(&mut bytes)?;
    Ok(Manifest::parse(&bytes)?)
}

/// One file examined.
#[derive(Debug, Serialize)]
struct Examined {
    path: String,
    #[serde(skip)]
    path_buf: PathBuf,
    /// The file name, as a chain link or a manifest names it.
    #[serde(skip)]
    name: String,
    #[serde(skip)]
    dir: PathBuf,
    capture_id: Option<String>,
    segment_index: Option<u32>,
    format_version: Option<String>,
    bytes: Option<u64>,
    sha256: Option<String>,
    footer_rows: Option<u64>,
    decoded_rows: Option<u64>,
    ok: bool,
    #[serde(skip)]
    meta: Option<CaptureMetadata>,
    /// Why it did not open as a capture.
    #[serde(skip)]
    open_error: Option<String>,
    /// Named by a directory INPUT (rather than given itself).
    #[serde(skip)]
    in_dir_input: bool,
}

/// Something wrong, naming the file (and the segment, when known).
#[derive(Debug, Serialize)]
struct Problem {
    file: String,
    segment_index: Option<u32>,
    /// changed, truncated, grown, missing, extra, reordered, damaged, rows, chain, continuity,
    /// manifest, version, parent.
    problem: &'static str,
    detail: String,
}

#[derive(Debug, Serialize)]
struct ManifestOut {
    path: String,
    capture_id: String,
    complete: bool,
    removed_by_keep: u64,
    segments: usize,
}

#[derive(Debug, Default, Serialize)]
struct Report {
    ok: bool,
    files: Vec<Examined>,
    manifests: Vec<ManifestOut>,
    problems: Vec<Problem>,
    notes: Vec<String>,
}

impl Report {
    fn problem(
        &mut self,
        file: &str,
        segment_index: Option<u32>,
        problem: &'static str,
        detail: String,
    ) {
        self.problems.push(Problem {
            file: file.to_owned(),
            segment_index,
            problem,
            detail,
        });
    }
}

pub fn run(args: Args) -> anyhow::Result<ExitCode> {
    input::remote::refuse(&args.paths, "verify")?;
    let mut unreadable = false;
    let mut found = Discovered::default();
    let mut dir_inputs: BTreeSet<PathBuf> = BTreeSet::new();
    let mut from_dirs: BTreeSet<PathBuf> = BTreeSet::new();
    for arg in &args.paths {
        let before = found.files.len();
        if let Err(err) = found.add_arg(arg) {
            unreadable = true;
            output::report_error(&err);
            continue;
        }
        let is_dir = fs::metadata(arg).is_ok_and(|m| m.is_dir());
        if is_dir {
            dir_inputs.insert(arg.clone());
            from_dirs.extend(
                found
                    .files
                    .get(before..)
                    .unwrap_or_default()
                    .iter()
                    .cloned(),
            );
        }
    }
    input::note_skipped(&found);

    let mut report = Report::default();
    // The manifests of every directory read: those given, and those of the files given.
    let mut dirs: BTreeSet<PathBuf> = dir_inputs.clone();
    for path in &found.files {
        dirs.insert(capture_dir(path).0);
    }
    let mut manifests: Vec<FoundManifest> = Vec::new();
    for dir in &dirs {
        let (good, bad) = manifests_in(dir);
        for (path, why) in bad {
            let shown = path.display().to_string();
            report.problem(&shown, None, "manifest", bounded(&why));
        }
        manifests.extend(good);
    }
    // Which names the manifests list, per directory.
    let listed: BTreeSet<(PathBuf, String)> = manifests
        .iter()
        .flat_map(|m| {
            let dir = parent_of(&m.path);
            m.manifest
                .segments
                .iter()
                .map(move |s| (dir.clone(), s.file.clone()))
        })
        .collect();

    let mut progress = Progress::new(format!("verifying {} files", found.files.len()), None);
    let mut decoded_so_far = 0u64;
    for path in &found.files {
        let examined = examine(
            path,
            from_dirs.contains(path),
            &mut report,
            &mut progress,
            &mut decoded_so_far,
        );
        if let Some(error) = &examined.open_error {
            let vouched = listed.contains(&(examined.dir.clone(), examined.name.clone()))
                || examined.in_dir_input;
            if !vouched {
                // Not a capture, and nothing says it should be one: an unreadable input.
                unreadable = true;
                output::report_error(&anyhow::anyhow!("{error}"));
                continue;
            }
            let shown = examined.path.clone();
            report.problem(
                &shown,
                name_index(&examined.name),
                "damaged",
                bounded(error),
            );
        }
        report.files.push(examined);
    }
    progress.finish();

    for found_manifest in &manifests {
        let whole_dir = dir_inputs
            .iter()
            .any(|d| *d == parent_of(&found_manifest.path));
        check_manifest(found_manifest, whole_dir, &mut report);
    }
    check_chains(&manifests, &dir_inputs, &mut report);
    if !args.parents.is_empty() {
        unreadable |= check_parents(&args.parents, &mut report);
    }

    // A file is ok when no problem names it.
    let named: BTreeSet<String> = report.problems.iter().map(|p| p.file.clone()).collect();
    for file in &mut report.files {
        file.ok = !named.contains(&file.path);
    }
    report.ok = report.problems.is_empty();
    report.manifests = manifests
        .iter()
        .map(|m| ManifestOut {
            path: m.path.display().to_string(),
            capture_id: bounded(&m.manifest.capture_id),
            complete: m.manifest.complete,
            removed_by_keep: m.manifest.removed_by_keep,
            segments: m.manifest.segments.len(),
        })
        .collect();

    let mut out = output::stdout();
    match args.format {
        VerifyFormat::Json => output::write_json_pretty(&mut out, &report)?,
        VerifyFormat::Table => write_table(&mut out, &report, unreadable)?,
    }
    out.flush().context("writing to stdout")?;
    Ok(if unreadable {
        ExitCode::from(output::EXIT_ERROR)
    } else if report.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    })
}

/// The directory of the capture a file belongs to, where its manifest is: the directory it is
/// in, or, in a Hive-style tree (`record --partition`), the one above its `key=value`
/// directories; and its name from there (as the manifest and the chain name it).
fn capture_dir(path: &Path) -> (PathBuf, String) {
    let (_, root) = partition::of_path(path);
    let root = if root.as_os_str().is_empty() {
        PathBuf::from(".")
    } else {
        root.to_path_buf()
    };
    let name = path
        .strip_prefix(&root)
        .ok()
        .filter(|rel| !rel.as_os_str().is_empty())
        .or_else(|| path.file_name().map(Path::new))
        .map(|rel| {
            rel.components()
                .map(|c| c.as_os_str().to_string_lossy())
                .collect::<Vec<_>>()
                .join("/")
        })
        .unwrap_or_default();
    (root, name)
}

/// The file name at the end of a name a manifest lists (`host=h/date=d/mmap-...parquet`).
fn base(name: &str) -> &str {
    name.rsplit('/').next().unwrap_or(name)
}

/// Whether a manifest's `file` stays in its capture's directory: a file name, or one below
/// `key=value` partition directories (no `.`, `..` or empty component).
fn stays_inside(file: &str) -> bool {
    let mut parts: Vec<&str> = file.split('/').collect();
    let Some(name) = parts.pop() else {
        return false;
    };
    !matches!(name, "" | "." | "..")
        && parts
            .iter()
            .all(|dir| partition::parse_dir_name(dir).is_some())
}

/// The directory a file is in (`.` for a bare name).
fn parent_of(path: &Path) -> PathBuf {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Hashes, opens and decodes one file; problems found in it alone go to `report`.
fn examine(
    path: &Path,
    in_dir_input: bool,
    report: &mut Report,
    progress: &mut Progress,
    decoded_so_far: &mut u64,
) -> Examined {
    let shown = path.display().to_string();
    let mut examined = Examined {
        path: shown.clone(),
        path_buf: path.to_path_buf(),
        name: capture_dir(path).1,
        dir: capture_dir(path).0,
        capture_id: None,
        segment_index: None,
        format_version: None,
        bytes: None,
        sha256: None,
        footer_rows: None,
        decoded_rows: None,
        ok: false,
        meta: None,
        open_error: None,
        in_dir_input,
    };
    match sha256_file(path) {
        Ok((sha256, bytes)) => {
            examined.sha256 = Some(sha256);
            examined.bytes = Some(bytes);
        }
        Err(err) => {
            examined.open_error = Some(format!("{shown}: cannot read: {err}"));
            return examined;
        }
    }
    let reader = match CaptureReader::open(path) {
        Ok(reader) => reader,
        Err(err) => {
            let journal = mmap_format::journal::journal_path(path);
            examined.open_error = Some(if fs::symlink_metadata(&journal).is_ok() {
                format!(
                    "{err}; a crash journal is next to it: a recorder is writing it, or was \
                     killed (`mmap-analyze recover {shown}` completes it)"
                )
            } else {
                err.to_string()
            });
            return examined;
        }
    };
    let meta = reader.metadata().clone();
    examined.capture_id = meta.capture_id.as_deref().map(bounded);
    examined.segment_index = meta.segment_index;
    examined.format_version = Some(meta.format_version.to_string());
    examined.footer_rows = Some(reader.num_rows());
    if meta.format_version.minor > FORMAT_MINOR {
        report.notes.push(format!(
            "{shown}: format {} is newer than this reader's 1.{FORMAT_MINOR}: columns and keys \
             it added are not checked",
            meta.format_version
        ));
    }
    let index = meta.segment_index;
    let mut decoded = 0u64;
    let mut damage = None;
    match reader.batches() {
        Ok(batches) => {
            for batch in batches {
                match batch {
                    Ok(batch) => {
                        decoded += batch.num_rows() as u64;
                        *decoded_so_far += batch.num_rows() as u64;
                        progress.update(*decoded_so_far);
                    }
                    Err(err) => {
                        damage = Some(err.to_string());
                        break;
                    }
                }
            }
        }
        Err(err) => damage = Some(err.to_string()),
    }
    match damage {
        Some(why) => report.problem(
            &shown,
            index,
            "damaged",
            format!(
                "a page does not decode after {decoded} rows: {}",
                bounded(&why)
            ),
        ),
        None => {
            examined.decoded_rows = Some(decoded);
            if decoded != reader.num_rows() {
                report.problem(
                    &shown,
                    index,
                    "rows",
                    format!(
                        "the footer counts {} rows, the pages hold {decoded}",
                        reader.num_rows()
                    ),
                );
            }
        }
    }
    examined.meta = Some(meta);
    examined
}

/// The manifest against the files of its directory.
fn check_manifest(found: &FoundManifest, whole_dir: bool, report: &mut Report) {
    let (problems, notes) = manifest_problems(found, whole_dir, &report.files);
    report.problems.extend(problems);
    report.notes.extend(notes);
}

/// With `whole_dir` (the directory is an INPUT) a segment listed but not there is missing;
/// otherwise only the files given are checked against their entries.
fn manifest_problems(
    found: &FoundManifest,
    whole_dir: bool,
    files: &[Examined],
) -> (Vec<Problem>, Vec<String>) {
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    let dir = parent_of(&found.path);
    let manifest = &found.manifest;
    let shown_manifest = found.path.display().to_string();
    let id = bounded(&manifest.capture_id);
    let mut seen_index = BTreeSet::new();
    for entry in &manifest.segments {
        let in_dir = dir.join(&entry.file);
        let shown = in_dir.display().to_string();
        let index = Some(entry.segment_index);
        if !seen_index.insert(entry.segment_index) || !stays_inside(&entry.file) {
            add(
                &mut problems,
                &shown_manifest,
                index,
                "manifest",
                format!(
                    "lists segment {} twice, or a name outside its directory",
                    entry.segment_index
                ),
            );
            continue;
        }
        let Some(file) = files.iter().find(|f| f.path_buf == in_dir) else {
            if !whole_dir {
                continue;
            }
            let there = fs::symlink_metadata(&in_dir).is_ok();
            add(
                &mut problems,
                &shown,
                index,
                "missing",
                if there {
                    format!(
                        "segment {} of capture {id}, listed in {shown_manifest}, is not among \
                         the inputs (or is not a regular file)",
                        entry.segment_index
                    )
                } else {
                    format!(
                        "segment {} of capture {id}, listed in {shown_manifest}, is not there",
                        entry.segment_index
                    )
                },
            );
            continue;
        };
        let holds = file.meta.as_ref().and_then(|m| m.segment_index);
        // A renamed segment is compared with the entry of the segment it holds.
        let entry = match holds {
            Some(held) if held != entry.segment_index => {
                add(
                    &mut problems,
                    &shown,
                    holds,
                    "reordered",
                    format!(
                        "holds segment {held} but the manifest lists this name as segment {}: \
                         segments were renamed or swapped",
                        entry.segment_index
                    ),
                );
                match manifest.segments.iter().find(|s| s.segment_index == held) {
                    Some(entry) => entry,
                    None => continue,
                }
            }
            _ => entry,
        };
        let index = Some(entry.segment_index);
        let (Some(bytes), Some(sha256)) = (file.bytes, file.sha256.as_deref()) else {
            continue;
        };
        if bytes < entry.bytes {
            add(
                &mut problems,
                &shown,
                index,
                "truncated",
                format!(
                    "{bytes} bytes; the manifest recorded {} for segment {}",
                    entry.bytes, entry.segment_index
                ),
            );
        } else if bytes > entry.bytes {
            add(
                &mut problems,
                &shown,
                index,
                "grown",
                format!(
                    "{bytes} bytes; the manifest recorded {} for segment {}",
                    entry.bytes, entry.segment_index
                ),
            );
        } else if sha256 != entry.sha256 {
            add(
                &mut problems,
                &shown,
                index,
                "changed",
                format!(
                    "its SHA-256 is {sha256}; the manifest recorded {} for segment {}: bytes \
                     were changed since it was written",
                    bounded(&entry.sha256),
                    entry.segment_index
                ),
            );
        }
        if let Some(meta) = &file.meta
            && meta.capture_id.as_deref() != Some(manifest.capture_id.as_str())
        {
            add(
                &mut problems,
                &shown,
                meta.segment_index,
                "extra",
                format!(
                    "belongs to capture {}, not to capture {id} whose manifest lists it",
                    meta.capture_id.as_deref().map_or("(none)".into(), bounded)
                ),
            );
        }
    }
    // Files here of this capture, or named as its segments, that the manifest does not list.
    let prefix = manifest_stem(&found.path);
    let last_listed = manifest.segments.iter().map(|s| s.segment_index).max();
    let mut extra = Vec::new();
    for file in files {
        if file.dir != dir || manifest.segments.iter().any(|s| s.file == file.name) {
            continue;
        }
        let same_capture = file
            .meta
            .as_ref()
            .and_then(|m| m.capture_id.as_deref())
            .is_some_and(|c| c == manifest.capture_id);
        let named_as_ours = prefix.as_deref().is_some_and(|p| {
            manifest_name(base(&file.name)).as_deref()
                == Some(format!("{p}{MANIFEST_SUFFIX}").as_str())
        });
        if !same_capture && !named_as_ours {
            continue;
        }
        let index = file.meta.as_ref().and_then(|m| m.segment_index);
        // A recording that did not finish lists the segment it was writing only once recovery
        // completes it: the next index, linked to the last listed segment, is expected then.
        let next_of_unfinished = !manifest.complete
            && same_capture
            && index.is_some()
            && index == last_listed.and_then(|l| l.checked_add(1));
        if next_of_unfinished {
            notes.push(format!(
                "{}: segment {} is not in {shown_manifest} yet: the recording has not finished \
                 (or was killed); its chain link is checked",
                file.path,
                show_index(index)
            ));
            continue;
        }
        extra.push((file.path.clone(), index, same_capture));
    }
    for (path, index, same_capture) in extra {
        add(
            &mut problems,
            &path,
            index,
            "extra",
            if same_capture {
                format!("a segment of capture {id} that {shown_manifest} does not list")
            } else {
                format!(
                    "named as a segment of capture {id} but is not one, and {shown_manifest} does \
                     not list it"
                )
            },
        );
    }
    (problems, notes)
}

fn add(
    problems: &mut Vec<Problem>,
    file: &str,
    segment_index: Option<u32>,
    problem: &'static str,
    detail: String,
) {
    problems.push(Problem {
        file: file.to_owned(),
        segment_index,
        problem,
        detail,
    });
}

/// `mmap-START-ID` of `DIR/mmap-START-ID.manifest.json`.
fn manifest_stem(path: &Path) -> Option<String> {
    path.file_name()?
        .to_str()?
        .strip_suffix(MANIFEST_SUFFIX)
        .map(str::to_owned)
}

fn show_index(index: Option<u32>) -> String {
    index.map_or_else(|| "(none)".to_owned(), |i| i.to_string())
}

/// The chain and the continuity of each capture's segments among the files examined.
fn check_chains(manifests: &[FoundManifest], dir_inputs: &BTreeSet<PathBuf>, report: &mut Report) {
    // (directory, capture id) -> index -> files.
    // A file not named as a recorder's segment is a capture of its own (a copy, an extract, a
    // fixture), whatever id it shares: the key then holds its path too.
    type Key = (PathBuf, String, Option<PathBuf>);
    let mut captures: BTreeMap<Key, BTreeMap<u32, Vec<usize>>> = BTreeMap::new();
    for (i, file) in report.files.iter().enumerate() {
        let Some(meta) = &file.meta else { continue };
        if let (Some(id), Some(index)) = (&meta.capture_id, meta.segment_index) {
            captures
                .entry((
                    file.dir.clone(),
                    id.clone(),
                    name_index(&file.name)
                        .is_none()
                        .then(|| file.path_buf.clone()),
                ))
                .or_default()
                .entry(index)
                .or_default()
                .push(i);
        }
    }
    let mut problems = Vec::new();
    let mut notes = Vec::new();
    for ((dir, id, standalone), segments) in &captures {
        let shown_id = bounded(id);
        let manifest = manifests
            .iter()
            .find(|m| parent_of(&m.path) == *dir && m.manifest.capture_id == *id);
        let whole_dir = dir_inputs.iter().any(|d| d == dir);
        let removed = manifest.map_or(0, |m| m.manifest.removed_by_keep);
        let files = &report.files;
        // Named as a recorder's segment but not of this capture's: a directory capture without
        // its manifest.
        if manifest.is_none()
            && whole_dir
            && segments
                .values()
                .flatten()
                .any(|&i| manifest_name(base(&files[i].name)).is_some())
        {
            let first = segments.values().flatten().next().map(|&i| &files[i]);
            if let Some(first) = first {
                problems.push(Problem {
                    file: first.path.clone(),
                    segment_index: first.segment_index,
                    problem: "extra",
                    detail: format!(
                        "capture {shown_id} has no manifest in {}: a directory capture's \
                         manifest was removed, or this segment was added from elsewhere",
                        dir.display()
                    ),
                });
            }
        }
        let mut previous: Option<(u32, usize)> = None;
        let mut expected = u32::try_from(removed).unwrap_or(u32::MAX);
        for (&index, holders) in segments {
            let &[i] = holders.as_slice() else {
                for &i in holders {
                    problems.push(Problem {
                        file: files[i].path.clone(),
                        segment_index: Some(index),
                        problem: "reordered",
                        detail: format!(
                            "{} files hold segment {index} of capture {shown_id}",
                            holders.len()
                        ),
                    });
                }
                previous = None;
                expected = index.saturating_add(1);
                continue;
            };
            let file = &files[i];
            let Some(meta) = &file.meta else { continue };
            // The recorder's names carry the index: a renamed segment shows even alone.
            if let Some(named) = name_index(&file.name)
                && named != index
            {
                problems.push(Problem {
                    file: file.path.clone(),
                    segment_index: Some(index),
                    problem: "reordered",
                    detail: format!(
                        "named as segment {named} but holds segment {index}: segments were \
                         renamed or swapped"
                    ),
                });
            }
            // Segments there but unreadable are named by their own problems.
            let unreadable_between = files.iter().any(|f| {
                f.meta.is_none()
                    && f.dir == *dir
                    && name_index(&f.name).is_some_and(|n| n >= expected && n < index)
            });
            if whole_dir && standalone.is_none() && index > expected && !unreadable_between {
                problems.push(Problem {
                    file: file.path.clone(),
                    segment_index: Some(index),
                    problem: "missing",
                    detail: format!(
                        "segment{} {} of capture {shown_id} before this one {} not there",
                        if index - expected > 1 { "s" } else { "" },
                        if index - expected > 1 {
                            format!("{expected}-{}", index - 1)
                        } else {
                            expected.to_string()
                        },
                        if index - expected > 1 { "are" } else { "is" },
                    ),
                });
            }
            expected = index.saturating_add(1);
            let link = meta.previous_segment.as_ref();
            let chained = meta.format_version.minor >= 3;
            match (index, link) {
                (0, Some(_)) => problems.push(Problem {
                    file: file.path.clone(),
                    segment_index: Some(index),
                    problem: "chain",
                    detail: "segment 0 links to a previous segment".to_owned(),
                }),
                (0, None) => {}
                (_, None) if chained && manifest.is_some() => problems.push(Problem {
                    file: file.path.clone(),
                    segment_index: Some(index),
                    problem: "chain",
                    detail: format!(
                        "segment {index} has no previous_segment link (every later segment of a \
                         1.3 directory capture has one)"
                    ),
                }),
                (_, None) => {}
                (_, Some(link)) => {
                    if link.segment_index != index - 1 {
                        problems.push(Problem {
                            file: file.path.clone(),
                            segment_index: Some(index),
                            problem: "chain",
                            detail: format!(
                                "segment {index} links to segment {}, not {}",
                                link.segment_index,
                                index - 1
                            ),
                        });
                    }
                    // The segment before, or the file the link names (also when it no longer
                    // opens: its size and hash still show what happened to it).
                    let before = previous
                        .filter(|&(p, _)| p == index - 1)
                        .map(|(_, j)| &files[j])
                        .or_else(|| {
                            files
                                .iter()
                                .find(|f| f.dir == *dir && f.meta.is_none() && f.name == link.file)
                        });
                    match before {
                        Some(before) => {
                            check_link(file, index, link, before, &mut problems);
                        }
                        None if u64::from(index - 1) < removed => notes.push(format!(
                            "{}: segment {} before it was removed by --keep; its link is not \
                             checked",
                            file.path,
                            index - 1
                        )),
                        None if whole_dir => {
                            // Reported as missing above unless the manifest did.
                        }
                        None => notes.push(format!(
                            "{}: segment {} ({}) is not among the inputs; the link to it is not \
                             checked",
                            file.path,
                            index - 1,
                            bounded(&link.file)
                        )),
                    }
                }
            }
            if let Some((p, j)) = previous
                && p.checked_add(1) == Some(index)
                && let Some(before) = &files[j].meta
                && meta.capture_start_ns < before.capture_start_ns
            {
                problems.push(Problem {
                    file: file.path.clone(),
                    segment_index: Some(index),
                    problem: "continuity",
                    detail: format!(
                        "starts at {}, before segment {p} started ({})",
                        labels::rfc3339_ns(meta.capture_start_ns),
                        labels::rfc3339_ns(before.capture_start_ns)
                    ),
                });
            }
            previous = Some((index, i));
        }
    }
    report.problems.extend(problems);
    report.notes.extend(notes);
}

/// The index in a recorder's segment name, `mmap-START-ID-INDEX.parquet`.
fn name_index(name: &str) -> Option<u32> {
    let name = base(name);
    manifest_name(name)?;
    name.strip_suffix(".parquet")?
        .rsplit_once('-')?
        .1
        .parse()
        .ok()
}

/// `file` (segment `index`) links to `before` as `link` says?
fn check_link(
    file: &Examined,
    index: u32,
    link: &mmap_format::metadata::SegmentLink,
    before: &Examined,
    problems: &mut Vec<Problem>,
) {
    let (Some(bytes), Some(sha256)) = (before.bytes, before.sha256.as_deref()) else {
        return;
    };
    let prev = index - 1;
    let mut found = |problem, detail| {
        problems.push(Problem {
            file: before.path.clone(),
            segment_index: Some(prev),
            problem,
            detail,
        });
    };
    if link.file != before.name {
        found(
            "reordered",
            format!(
                "segment {index} ({}) was written after {}, but segment {prev} is now named {}",
                file.name,
                bounded(&link.file),
                before.name
            ),
        );
    }
    if bytes < link.bytes {
        found(
            "truncated",
            format!(
                "{bytes} bytes; segment {index} recorded {} for it",
                link.bytes
            ),
        );
    } else if bytes > link.bytes {
        found(
            "grown",
            format!(
                "{bytes} bytes; segment {index} recorded {} for it",
                link.bytes
            ),
        );
    } else if sha256 != link.sha256 {
        found(
            "changed",
            format!(
                "its SHA-256 is {sha256}; segment {index} recorded {}: bytes were changed since \
                 it was written",
                bounded(&link.sha256)
            ),
        );
    }
    if before.footer_rows.is_some_and(|rows| rows != link.rows) {
        found(
            "rows",
            format!(
                "{} rows in its footer; segment {index} recorded {}",
                before.footer_rows.unwrap_or(0),
                link.rows
            ),
        );
    }
}

/// `--parent`: each file must be a parent named by an input's provenance, unchanged. Returns
/// whether a parent could not be read.
fn check_parents(parents: &[PathBuf], report: &mut Report) -> bool {
    let named: Vec<(String, mmap_format::metadata::ParentFile)> = report
        .files
        .iter()
        .filter_map(|f| f.meta.as_ref().map(|m| (f.path.clone(), m)))
        .flat_map(|(path, meta)| {
            meta.provenance
                .iter()
                .flat_map(|d| d.parents.iter().cloned())
                .map(move |p| (path.clone(), p))
        })
        .collect();
    let mut unreadable = false;
    for parent in parents {
        let shown = parent.display().to_string();
        let (sha256, bytes) = match sha256_file(parent) {
            Ok(hashed) => hashed,
            Err(err) => {
                unreadable = true;
                output::report_error(&anyhow::anyhow!("{shown}: cannot read: {err}"));
                continue;
            }
        };
        let rows = CaptureReader::open(parent).ok().map(|r| r.num_rows());
        let name = parent
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        match named.iter().find(|(_, p)| p.sha256 == sha256) {
            Some((child, p)) => {
                if p.bytes != bytes || rows.is_some_and(|r| r != p.rows) {
                    report.problem(
                        &shown,
                        p.segment_index,
                        "parent",
                        format!(
                            "its SHA-256 matches the parent {child} names, but not its size or \
                             rows ({bytes} bytes, {} rows; recorded {} and {})",
                            rows.unwrap_or(0),
                            p.bytes,
                            p.rows
                        ),
                    );
                } else {
                    report.notes.push(format!(
                        "{shown}: the parent {child} was made from, unchanged"
                    ));
                }
            }
            None => {
                let by_name = named
                    .iter()
                    .find(|(_, p)| !p.file.is_empty() && p.file == name);
                let detail = match by_name {
                    Some((child, p)) => format!(
                        "{child} was made from a file of this name with SHA-256 {}; this one's is \
                         {sha256}: it changed since",
                        bounded(&p.sha256)
                    ),
                    None => format!(
                        "no INPUT names a parent with its SHA-256 {sha256} (the inputs name {} \
                         parent{})",
                        named.len(),
                        labels::plural(named.len() as u64)
                    ),
                };
                report.problem(&shown, None, "parent", detail);
            }
        }
    }
    unreadable
}

fn write_table(out: &mut impl Write, report: &Report, unreadable: bool) -> std::io::Result<()> {
    for file in &report.files {
        let what = match (&file.capture_id, file.segment_index) {
            (Some(id), Some(index)) => format!(
                "segment {index} of capture {}",
                id.chars().take(8).collect::<String>()
            ),
            _ => match name_index(&file.name) {
                Some(index) if file.meta.is_none() => format!("segment {index} (by its name)"),
                _ => "capture".to_owned(),
            },
        };
        let rows = file
            .decoded_rows
            .or(file.footer_rows)
            .map_or_else(|| "-".to_owned(), labels::thousands);
        let sha = file
            .sha256
            .as_deref()
            .map_or("-", |s| &s[..s.len().min(16)]);
        writeln!(
            out,
            "{:<6}{}  {}  {} rows  sha256 {sha}…",
            if file.ok { "ok" } else { "FAIL" },
            table::visible(&file.path),
            table::visible(&what),
            rows
        )?;
    }
    for manifest in &report.manifests {
        writeln!(
            out,
            "manifest {}: capture {}, {} segment{}{}{}",
            table::visible(&manifest.path),
            table::visible(&manifest.capture_id),
            manifest.segments,
            labels::plural(manifest.segments as u64),
            if manifest.complete {
                ", complete"
            } else {
                ", recording not finished"
            },
            if manifest.removed_by_keep > 0 {
                format!(", {} removed by --keep", manifest.removed_by_keep)
            } else {
                String::new()
            }
        )?;
    }
    for note in &report.notes {
        writeln!(out, "note: {}", table::visible(note))?;
    }
    for problem in &report.problems {
        let segment = problem
            .segment_index
            .map_or_else(String::new, |i| format!(" (segment {i})"));
        writeln!(
            out,
            "PROBLEM {}{segment}: {}: {}",
            table::visible(&problem.file),
            problem.problem,
            table::visible(&problem.detail)
        )?;
    }
    if unreadable {
        writeln!(
            out,
            "NOT VERIFIED: an input could not be read (see the error above); {} problem{} in \
             what could",
            report.problems.len(),
            labels::plural(report.problems.len() as u64)
        )
    } else if report.ok {
        writeln!(
            out,
            "whole: {} file{} verified",
            report.files.len(),
            labels::plural(report.files.len() as u64)
        )
    } else {
        writeln!(
            out,
            "NOT WHOLE: {} problem{}",
            report.problems.len(),
            labels::plural(report.problems.len() as u64)
        )
    }
}
