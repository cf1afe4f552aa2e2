//! The INPUT arguments of a command: which capture files they name ([`discover`]), opening them
//! all before anything is printed, reading the rows that pass a predicate through the query
//! engine ([`query`]), and the rows of several files as one stream in time order ([`merge`]).

mod discover;
mod merge;
mod partitions;
mod query;
pub mod remote;

use std::path::Path;

use mmap_format::{FormatError, journal::journal_path, reader::CaptureReader};

pub use self::{
    discover::Discovered,
    merge::{EventIter, Source, merge},
    query::{file_batches, file_rows, rows, select_list},
};
use crate::{cli::Inputs, output};

/// Opens every capture the arguments name, before anything is read or printed, so that a bad
/// input fails the command with nothing but its error. What discovery left out is noted on
/// stderr.
///
/// `s3://` and `file://` URLs ([`remote`]) are taken in their place among the arguments.
pub fn open(inputs: &Inputs) -> anyhow::Result<Vec<CaptureReader>> {
    open_where(inputs, None)
}

/// Like [`open`]; in a Hive-style tree, the files whose partition values (`date=`, `host=`, ...
/// of their paths) make `predicate` (a `--where`) false are not opened at all.
pub fn open_where(inputs: &Inputs, predicate: Option<&str>) -> anyhow::Result<Vec<CaptureReader>> {
    remote::set_endpoint(inputs.remote.endpoint.as_deref());
    let mut readers = Vec::new();
    let mut local = Vec::new();
    let mut urls = Vec::new();
    for arg in &inputs.paths {
        match remote::classify(arg)? {
            remote::Arg::Local(path) => local.push(path),
            remote::Arg::S3(url) => {
                readers.extend(open_local(&std::mem::take(&mut local), predicate)?);
                for reader in remote::open(&url)? {
                    // An object named twice is read once, like a file.
                    if !urls.contains(&reader.path().to_path_buf()) {
                        urls.push(reader.path().to_path_buf());
                        readers.push(reader);
                    }
                }
            }
        }
    }
    readers.extend(open_local(&local, predicate)?);
    Ok(readers)
}

/// Opens the local files `paths` name (none: nothing), leaving out those `predicate` rules out
/// by their partition directories.
fn open_local(
    paths: &[std::path::PathBuf],
    predicate: Option<&str>,
) -> anyhow::Result<Vec<CaptureReader>> {
    if paths.is_empty() {
        return Ok(Vec::new());
    }
    let mut found = Discovered::from_args(paths)?;
    note_journals(&found);
    note_skipped(&found);
    if let Some(predicate) = predicate {
        let all = found.files.len();
        let left_out = partitions::prune(&mut found.files, predicate);
        if found.files.is_empty() {
            anyhow::bail!(
                "--where rules out every one of the {all} capture files by their partition \
                 directories"
            );
        }
        if left_out > 0 {
            output::note(&format!(
                "--where: {left_out} of {all} capture files left out by their partition \
                 directories (not opened)"
            ));
        }
    }
    let readers = open_each(&found.files)?;
    partitions::check(&readers)?;
    Ok(readers)
}

/// Opens `paths` on every core, in their order. Opening a file is most of a short command's
/// time (its footer, page index and checks), so the segments of a capture open side by side.
/// The walk of their page headers ([`mmap_format::pages`]) is left to the reads
/// ([`open_one`]).
fn open_each(paths: &[std::path::PathBuf]) -> anyhow::Result<Vec<CaptureReader>> {
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    open_in_order(paths, cores, |path| open_one(path))
}

/// `open` of each of `items`, on up to `workers` threads taking the items in order; the
/// readers in `items`' order. The error is that of the first item that fails in that order, as
/// when they open one after another; once one has failed no further item is started.
pub(crate) fn open_in_order<T: Sync>(
    items: &[T],
    workers: usize,
    open: impl Fn(&T) -> anyhow::Result<CaptureReader> + Sync,
) -> anyhow::Result<Vec<CaptureReader>> {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let workers = workers.min(items.len());
    if workers <= 1 {
        return items.iter().map(open).collect();
    }
    let next = AtomicUsize::new(0);
    let failed = AtomicBool::new(false);
    let mut opened: Vec<(usize, anyhow::Result<CaptureReader>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..workers)
            .map(|_| {
                scope.spawn(|| {
                    let mut mine = Vec::new();
                    while !failed.load(Ordering::Relaxed) {
                        let i = next.fetch_add(1, Ordering::Relaxed);
                        let Some(item) = items.get(i) else { break };
                        let reader = open(item);
                        if reader.is_err() {
                            failed.store(true, Ordering::Relaxed);
                        }
                        mine.push((i, reader));
                    }
                    mine
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|handle| {
                handle.join().unwrap_or_else(|_| {
                    vec![(0, Err(anyhow::anyhow!("opening the capture files failed")))]
                })
            })
            .collect()
    });
    // Every item before the first failure was started (items are taken in order), so sorting
    // puts that failure first among the errors.
    opened.sort_by_key(|(i, _)| *i);
    opened.into_iter().map(|(_, reader)| reader).collect()
}

/// Opens one capture; a capture that cannot be read and has a crash journal next to it says
/// how to complete it. Its page headers are checked as its pages are read
/// ([`CaptureReader::open_deferred`]): by the query engine chunk by chunk
/// ([`crate::engine::pages`]), by [`CaptureReader::batches`] for the whole file.
pub fn open_one(path: &Path) -> anyhow::Result<CaptureReader> {
    CaptureReader::open_deferred(path).map_err(|err| with_recover_hint(err, path))
}

/// The error as it is, or, when a crash journal lies next to the capture, with the command that
/// completes it.
pub fn with_recover_hint(err: FormatError, path: &Path) -> anyhow::Error {
    let has_journal = journal_path(path).is_file();
    if has_journal && !matches!(err, FormatError::NotFound { .. }) {
        anyhow::anyhow!(
            "{err}; a crash journal is next to it: run `mmap-analyze recover {}` to complete it \
             (unless a recorder is still writing it)",
            path.display()
        )
    } else {
        anyhow::Error::new(err)
    }
}

/// One stderr line for each crash journal that discovery did not take.
fn note_journals(found: &Discovered) {
    for journal in &found.journals {
        let capture = journal.with_extension("");
        output::note(&format!(
            "{}: a crash journal, not a capture; skipped (when {} cannot be read, \
             `mmap-analyze recover {}` completes it)",
            journal.display(),
            capture.display(),
            capture.display()
        ));
    }
}

/// One stderr line for each symbolic link or special file that discovery skipped.
pub fn note_skipped(found: &Discovered) {
    for skipped in &found.skipped {
        output::note(skipped);
    }
}

/// `events` written with `config` and `meta` into the file `name` of `dir`, and opened: a
/// capture for tests of what reads files (the engine).
#[cfg(test)]
pub(crate) fn capture_file(
    dir: &tempfile::TempDir,
    name: &str,
    config: mmap_format::writer::WriterConfig,
    meta: &mmap_format::metadata::CaptureMetadata,
    events: &[mmap_format::event::Event<'_>],
) -> CaptureReader {
    let mut writer = mmap_format::writer::CaptureWriter::new(Vec::new(), config).expect("writer");
    for event in events {
        writer.push(event).expect("push");
    }
    let bytes = writer.finish(meta).expect("finish");
    let path = dir.path().join(name);
    std::fs::write(&path, bytes).expect("write the capture");
    CaptureReader::open(&path).expect("read back")
}
