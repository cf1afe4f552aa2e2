//! Captures made from captures (`redact`, `extract`, `pack`): read one or more captures, turn
//! each row into the row to keep (or none), and write ONE valid capture with the captures'
//! metadata merged and a [`Derivation`] that names every input by its SHA-256.
//!
//! In phases, each readable alone: [`Output::check`] refuses a destination that would lose
//! something (an input, a directory, a symbolic link, an existing file without `--force`)
//! before any work; [`Parents::hash`] reads every input once for its SHA-256; [`merge`] makes
//! the metadata; [`write`] streams the rows through the transformation into a temporary file
//! next to the destination and renames it into place only once it is complete.

pub mod output;
pub mod pseudonym;

use std::{
    fs::File,
    io,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::Path,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use anyhow::{Context as _, bail};
use mmap_format::{
    event::{Event, RowKind, Syscall},
    metadata::{CaptureMetadata, Counters, Derivation, ParentFile, READS_WITH, Redaction},
    reader::CaptureReader,
};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

pub use self::output::Output;
use crate::{input, labels, output as out, progress::Progress};

/// The tool that made a derived capture, as provenance and redaction name it.
pub fn tool() -> String {
    format!("mmap-analyze {}", env!("CARGO_PKG_VERSION"))
}

/// The inputs of a derived capture, in the order their rows are written: the segments of each
/// capture by `segment_index` (files without one keep the order they were given in), captures
/// in the order they first appear.
pub fn order(mut readers: Vec<CaptureReader>) -> Vec<CaptureReader> {
    let mut first_seen: Vec<Option<String>> = Vec::new();
    for reader in &readers {
        let id = reader.metadata().capture_id.clone();
        if id.is_none() || !first_seen.contains(&id) {
            first_seen.push(id);
        }
    }
    let group = |reader: &CaptureReader| {
        let id = &reader.metadata().capture_id;
        match id {
            Some(_) => first_seen.iter().position(|seen| seen == id),
            None => None,
        }
    };
    // Files without a capture id each form their own group, in the order given (stable sort).
    let keys: Vec<(usize, u32)> = readers
        .iter()
        .enumerate()
        .map(|(i, reader)| {
            let g = group(reader).unwrap_or(first_seen.len() + i);
            (g, reader.metadata().segment_index.unwrap_or(0))
        })
        .collect();
    let mut indexed: Vec<(usize, CaptureReader)> = readers.drain(..).enumerate().collect();
    indexed.sort_by_key(|(i, _)| keys.get(*i).copied().unwrap_or((usize::MAX, u32::MAX)));
    indexed.into_iter().map(|(_, reader)| reader).collect()
}

/// The captures among `readers` (same capture id, or a file alone), each as the indexes of its
/// files in `readers`, in order.
pub fn captures(readers: &[CaptureReader]) -> Vec<Vec<usize>> {
    let mut groups: Vec<(Option<&str>, Vec<usize>)> = Vec::new();
    for (i, reader) in readers.iter().enumerate() {
        let id = reader.metadata().capture_id.as_deref();
        match groups.iter_mut().find(|(g, _)| id.is_some() && *g == id) {
            Some((_, members)) => members.push(i),
            None => groups.push((id, vec![i])),
        }
    }
    groups.into_iter().map(|(_, members)| members).collect()
}

/// What is known of every input file: its [`ParentFile`] and what it looked like when it was
/// hashed, to tell when it changed while it was read.
#[derive(Debug)]
pub struct Parents {
    pub files: Vec<ParentFile>,
    stamps: Vec<Stamp>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Stamp {
    len: u64,
    mtime: i64,
    mtime_nsec: i64,
    ino: u64,
}

impl Parents {
    /// Reads every input once for its SHA-256 and size; its rows are the footer's.
    pub fn hash(readers: &[CaptureReader]) -> anyhow::Result<Self> {
        let total: u64 = readers
            .iter()
            .filter_map(|r| std::fs::metadata(r.path()).ok())
            .map(|m| m.len())
            .sum();
        let mut progress = Progress::new("hashing the inputs (MiB)", Some(total >> 20));
        let mut files = Vec::with_capacity(readers.len());
        let mut stamps = Vec::with_capacity(readers.len());
        let mut done = 0_u64;
        for reader in readers {
            let (sha256, bytes, stamp) = sha256_file(reader.path(), |n| {
                done += n;
                progress.update(done >> 20);
            })?;
            let meta = reader.metadata();
            files.push(ParentFile {
                file: file_name(reader.path()),
                capture_id: meta.capture_id.clone(),
                segment_index: meta.segment_index,
                sha256,
                bytes,
                rows: reader.num_rows(),
            });
            stamps.push(stamp);
        }
        progress.finish();
        Ok(Self { files, stamps })
    }

    /// Fails when an input changed since it was hashed (its hash would not be the hash of
    /// what was read).
    pub fn check_unchanged(&self, readers: &[CaptureReader]) -> anyhow::Result<()> {
        for (reader, stamp) in readers.iter().zip(&self.stamps) {
            let now = std::fs::metadata(reader.path())
                .map(|m| stamp_of(&m))
                .with_context(|| {
                    format!("{}: cannot read its metadata", reader.path().display())
                })?;
            if now != *stamp {
                bail!(
                    "{}: changed while it was read (a recorder still writing it?); nothing was \
                     written",
                    reader.path().display()
                );
            }
        }
        Ok(())
    }
}

fn stamp_of(meta: &std::fs::Metadata) -> Stamp {
    Stamp {
        len: meta.len(),
        mtime: meta.mtime(),
        mtime_nsec: meta.mtime_nsec(),
        ino: meta.ino(),
    }
}

/// The file name of `path` without its directory, as text.
pub fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|name| name.to_string_lossy().into_owned())
        .unwrap_or_default()
}

/// SHA-256 (64 lowercase hex digits) and size of the regular file at `path`, without blocking
/// on it if it is a FIFO (O_NONBLOCK); `read` is told the bytes of each block.
pub fn sha256_file(path: &Path, read: impl FnMut(u64)) -> anyhow::Result<(String, u64, Stamp)> {
    let cannot = |err: io::Error| anyhow::anyhow!("{}: cannot read it: {err}", path.display());
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(cannot)?;
    let meta = file.metadata().map_err(cannot)?;
    if !meta.is_file() {
        bail!("{}: not a regular file", path.display());
    }
    let (sha256, bytes) = mmap_format::manifest::sha256_of(&mut file, read).map_err(cannot)?;
    Ok((sha256, bytes, stamp_of(&meta)))
}

/// Reads a file that was just written for its SHA-256 and size.
fn sha256_written(file: &mut File) -> io::Result<(String, u64)> {
    use std::io::Seek as _;
    file.seek(io::SeekFrom::Start(0))?;
    mmap_format::manifest::sha256_of(file, |_| ())
}

/// The metadata of a capture made of `readers` (at least one): the first's, with the time range
/// of all, their counters summed (each segment's are the deltas of its own time), the capture
/// id when they are one capture (else one made from their ids), segment index 0 and no
/// previous segment (the result is a capture of one file), `recovered` when any was, the
/// provenance of all (each step once), and their redaction, which must be the same for all.
pub fn merge(readers: &[CaptureReader]) -> anyhow::Result<CaptureMetadata> {
    let Some(first) = readers.first() else {
        bail!("no input");
    };
    let metas: Vec<&CaptureMetadata> = readers.iter().map(CaptureReader::metadata).collect();
    let mut merged = first.metadata().clone();
    merged.format_version = mmap_format::metadata::FormatVersion::CURRENT;
    merged.read_with = Some(READS_WITH.to_owned());
    merged.capture_start_ns = metas.iter().map(|m| m.capture_start_ns).min().unwrap_or(0);
    merged.capture_end_ns = metas.iter().map(|m| m.capture_end_ns).max().unwrap_or(0);
    merged.counters = metas
        .iter()
        .fold(Counters::default(), |sum, m| add(sum, m.counters));
    merged.recovered = metas.iter().any(|m| m.recovered);
    merged.segment_index = Some(0);
    merged.previous_segment = None;
    merged.hostname = joined(metas.iter().map(|m| m.hostname.as_str()), 192);
    merged.kernel_release = joined(metas.iter().map(|m| m.kernel_release.as_str()), 192);
    if metas.iter().any(|m| m.boot_id != first.metadata().boot_id) {
        merged.boot_id = String::new();
    }
    for meta in &metas[1..] {
        for anchor in &meta.clock_anchors {
            if !merged.clock_anchors.contains(anchor) {
                merged.clock_anchors.push(*anchor);
            }
        }
        let targets = &mut merged.targets;
        targets.system_wide |= meta.targets.system_wide;
        targets.follow_forks |= meta.targets.follow_forks;
        union(&mut targets.pids, &meta.targets.pids);
        union(&mut targets.comms, &meta.targets.comms);
        union(&mut targets.cgroups, &meta.targets.cgroups);
        if merged.page_size.is_none() {
            merged.page_size = meta.page_size;
        }
        for step in &meta.provenance {
            if !merged.provenance.contains(step) {
                merged.provenance.push(step.clone());
            }
        }
    }
    let ids: Vec<Option<&str>> = metas.iter().map(|m| m.capture_id.as_deref()).collect();
    merged.capture_id = match ids.as_slice() {
        [Some(id), rest @ ..] if rest.iter().all(|other| *other == Some(*id)) => {
            Some((*id).to_owned())
        }
        _ => Some(capture_id_of(readers)),
    };
    merged.redaction = same_redaction(readers)?;
    Ok(merged)
}

fn add(a: Counters, b: Counters) -> Counters {
    Counters {
        emitted: a.emitted.saturating_add(b.emitted),
        lost_ringbuf_full: a.lost_ringbuf_full.saturating_add(b.lost_ringbuf_full),
        orphan_exits: a.orphan_exits.saturating_add(b.orphan_exits),
        entry_map_full: a.entry_map_full.saturating_add(b.entry_map_full),
        decode_errors: a.decode_errors.saturating_add(b.decode_errors),
        follow_map_full: a.follow_map_full.saturating_add(b.follow_map_full),
    }
}

fn union<T: Clone + PartialEq>(into: &mut Vec<T>, from: &[T]) {
    for value in from {
        if !into.contains(value) {
            into.push(value.clone());
        }
    }
}

/// The distinct values joined with `+`, cut to `max` bytes (the reader's limit for the key).
fn joined<'a>(values: impl Iterator<Item = &'a str>, max: usize) -> String {
    let mut distinct: Vec<&str> = Vec::new();
    for value in values {
        if !distinct.contains(&value) {
            distinct.push(value);
        }
    }
    let mut text = distinct.join("+");
    if text.len() > max {
        let mut end = max;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

/// A capture id for rows of several captures: UUID-shaped, from the SHA-256 of the inputs' ids
/// (or file names), so the same inputs give the same id.
fn capture_id_of(readers: &[CaptureReader]) -> String {
    let mut hasher = Sha256::new();
    for reader in readers {
        let meta = reader.metadata();
        match &meta.capture_id {
            Some(id) => hasher.update(id.as_bytes()),
            None => hasher.update(file_name(reader.path()).as_bytes()),
        }
        hasher.update([0]);
    }
    uuid_shaped(&hasher.finalize())
}

/// The first 16 bytes of `digest` as a version-4-shaped UUID (8-4-4-4-12 hex digits).
pub fn uuid_shaped(digest: &[u8]) -> String {
    let mut bytes = [0_u8; 16];
    for (to, from) in bytes.iter_mut().zip(digest) {
        *to = *from;
    }
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!(
        "{}-{}-{}-{}-{}",
        &hex[0..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The redaction of the inputs when they all have the same (or none has one); a capture made
/// of redacted and unredacted rows, or of rows redacted with different keys, would be neither.
fn same_redaction(readers: &[CaptureReader]) -> anyhow::Result<Option<Redaction>> {
    let Some(first) = readers.first() else {
        return Ok(None);
    };
    let redaction = &first.metadata().redaction;
    for other in &readers[1..] {
        let theirs = &other.metadata().redaction;
        let key = |r: &Option<Redaction>| r.as_ref().map(|r| (r.key_id.clone(), r.fields.clone()));
        if key(theirs) != key(redaction) {
            let says = |r: &Option<Redaction>| match r {
                Some(r) => format!("redacted with key id {}", r.key_id),
                None => "not redacted".to_owned(),
            };
            bail!(
                "{} is {} and {} is {}: a capture made of both would be neither (redact them \
                 together with one key instead)",
                first.path().display(),
                says(redaction),
                other.path().display(),
                says(theirs)
            );
        }
    }
    Ok(redaction.clone())
}

/// The step that made the output: `operation` of `parents`, now.
pub fn derivation(operation: &str, parents: Vec<ParentFile>, selection: Vec<String>) -> Derivation {
    Derivation {
        operation: operation.to_owned(),
        tool: tool(),
        at: labels::rfc3339_ns(chrono::Utc::now().timestamp_nanos_opt().unwrap_or(0)),
        parents,
        selection,
    }
}

/// The rows of one file, as a source of [`rows_in_order`].
pub type FileRows<'a> = Box<dyn Iterator<Item = anyhow::Result<Event<'static>>> + 'a>;

/// Every row of `readers` in the order of [`order`]: each capture's files one after the other,
/// several captures merged by time.
pub fn all_rows(
    readers: &[CaptureReader],
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Event<'static>>> + '_> {
    rows_in_order(readers, |reader| {
        let events = reader
            .events()
            .map_err(|err| input::with_recover_hint(err, reader.path()))?;
        Ok(Box::new(events.map(|row| row.map_err(anyhow::Error::new))))
    })
}

/// The rows that `open` gives for each of `readers`, in the order of [`order`]: each capture's
/// files one after the other, several captures merged by time (one row of each held at a time).
pub fn rows_in_order<'a>(
    readers: &'a [CaptureReader],
    mut open: impl FnMut(&'a CaptureReader) -> anyhow::Result<FileRows<'a>>,
) -> anyhow::Result<impl Iterator<Item = anyhow::Result<Event<'static>>> + 'a> {
    let mut sources: Vec<FileRows<'a>> = Vec::new();
    for members in captures(readers) {
        let mut files = Vec::with_capacity(members.len());
        for i in members {
            if let Some(reader) = readers.get(i) {
                files.push(open(reader)?);
            }
        }
        sources.push(Box::new(files.into_iter().flatten()));
    }
    let sources = sources
        .into_iter()
        .map(|rows| input::Source {
            start: None,
            open: Box::new(move || Ok(rows)),
        })
        .collect();
    Ok(input::merge(sources))
}

/// What [`write`] did, as the command prints it (`--format json`: this object).
#[derive(Debug, Serialize)]
pub struct Written {
    pub operation: String,
    pub output: String,
    pub rows: u64,
    /// Rows of a kind or system call this version does not know (from a newer format): not
    /// written, since a writer of this version cannot say what they are.
    pub skipped_unknown: u64,
    pub bytes: u64,
    pub sha256: String,
    pub inputs: usize,
    pub input_rows: u64,
    /// `redact`: the id of the key (never the key).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub key_id: Option<String>,
}

impl Written {
    /// One line for a person.
    pub fn sentence(&self) -> String {
        let key = self
            .key_id
            .as_ref()
            .map(|id| format!(", key id {id}"))
            .unwrap_or_default();
        format!(
            "{}: {} {} from {} {} ({} input {}), {}, sha256 {}{key}",
            crate::table::visible(&self.output),
            labels::thousands(self.rows),
            if self.rows == 1 { "row" } else { "rows" },
            self.inputs,
            if self.inputs == 1 { "file" } else { "files" },
            labels::thousands(self.input_rows),
            if self.input_rows == 1 { "row" } else { "rows" },
            labels::human_bytes(self.bytes),
            self.sha256
        )
    }
}

/// How a command prints what it wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum WrittenFormat {
    /// One line: the output, its rows, size and SHA-256.
    Text,
    /// One JSON object.
    Json,
}

/// Prints `written` on stdout.
pub fn print(written: &Written, format: WrittenFormat) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut stdout = out::stdout();
    match format {
        WrittenFormat::Text => writeln!(stdout, "{}", written.sentence())?,
        WrittenFormat::Json => out::write_json_pretty(&mut stdout, written)?,
    }
    stdout.flush().context("writing to stdout")?;
    Ok(())
}

/// Set when SIGINT, SIGTERM or SIGHUP arrives from now on, so that the writing loop stops and
/// its temporary file is removed rather than left behind (the default action would end the
/// process at once); a second signal ends the process at once, exit 130.
fn interrupt_flag() -> anyhow::Result<Arc<AtomicBool>> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    let flag = Arc::new(AtomicBool::new(false));
    for signal in [SIGINT, SIGTERM, SIGHUP] {
        // The shutdown first: it acts only once the flag is set, i.e. on the second signal.
        signal_hook::flag::register_conditional_shutdown(signal, 130, Arc::clone(&flag))
            .context("setting up the signal handlers")?;
        signal_hook::flag::register(signal, Arc::clone(&flag))
            .context("setting up the signal handlers")?;
    }
    Ok(flag)
}

/// Writes `rows`, each turned by `transform` into the row to write (or none), into the
/// destination of `output` with `metadata`, through a temporary file renamed into place once
/// complete. `what` names the work for the progress line (e.g. "redacting").
pub fn write(
    output: &Output,
    readers: &[CaptureReader],
    parents: &Parents,
    rows: impl Iterator<Item = anyhow::Result<Event<'static>>>,
    metadata: &CaptureMetadata,
    what: &str,
    mut transform: impl FnMut(Event<'static>) -> Option<Event<'static>>,
) -> anyhow::Result<Written> {
    let operation = metadata
        .provenance
        .last()
        .map(|step| step.operation.clone())
        .unwrap_or_default();
    let input_rows: u64 = readers.iter().map(CaptureReader::num_rows).sum();
    let mut progress = Progress::new(
        format!("{what} {}", plural_files(readers.len())),
        Some(input_rows),
    );
    // Before the temporary file exists: a signal from then on must find the handlers in place.
    let interrupted = interrupt_flag()?;
    let mut temp = output.temporary()?;
    let writing = |err: mmap_format::FormatError| {
        anyhow::anyhow!("{}: cannot write it: {err}", output.path().display())
    };
    let sink = io::BufWriter::with_capacity(1 << 20, temp.as_file().try_clone()?);
    let mut writer =
        mmap_format::writer::CaptureWriter::new(sink, Default::default()).map_err(writing)?;
    let mut read = 0_u64;
    let mut skipped_unknown = 0_u64;
    for row in rows {
        if interrupted.load(Ordering::Relaxed) {
            progress.finish();
            // Returning drops the temporary file, which removes it.
            bail!(
                "interrupted by a signal: {} was not written",
                output.path().display()
            );
        }
        let row = row?;
        read += 1;
        if read.is_multiple_of(4096) {
            progress.update(read);
        }
        if row.kind == RowKind::Other || row.syscall == Some(Syscall::Other) {
            skipped_unknown += 1;
            continue;
        }
        if let Some(row) = transform(row) {
            writer.push(&row).map_err(writing)?;
        }
    }
    progress.finish();
    let rows = writer.rows_written();
    let sink = writer.finish(metadata).map_err(writing)?;
    sink.into_inner().map_err(|err| {
        anyhow::anyhow!(
            "{}: cannot write it: {}",
            output.path().display(),
            err.error()
        )
    })?;
    parents.check_unchanged(readers)?;
    let (sha256, bytes) = sha256_written(temp.as_file_mut()).with_context(|| {
        format!(
            "{}: cannot read back what was written",
            output.path().display()
        )
    })?;
    output.commit(temp)?;
    if skipped_unknown > 0 {
        out::note(&format!(
            "{skipped_unknown} {} of a kind or system call this version does not know (from a \
             newer format) not written",
            if skipped_unknown == 1 { "row" } else { "rows" }
        ));
    }
    if let Some(newer) = readers
        .iter()
        .find(|r| r.metadata().format_version.minor > mmap_format::FORMAT_MINOR)
    {
        out::note(&format!(
            "{}: format {} is newer than this version writes ({}): its columns and keys that \
             this version does not know are not copied",
            newer.path().display(),
            newer.metadata().format_version,
            mmap_format::metadata::FormatVersion::CURRENT
        ));
    }
    Ok(Written {
        operation,
        output: output.path().display().to_string(),
        rows,
        skipped_unknown,
        bytes,
        sha256,
        inputs: readers.len(),
        input_rows,
        key_id: None,
    })
}

fn plural_files(n: usize) -> String {
    if n == 1 {
        "1 file".to_owned()
    } else {
        format!("{n} files")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joined_values_are_distinct_and_cut_on_a_character() {
        assert_eq!(joined(["a", "b", "a"].into_iter(), 192), "a+b");
        let long = "é".repeat(200);
        let cut = joined([long.as_str()].into_iter(), 192);
        assert!(cut.len() <= 192 && cut.chars().all(|c| c == 'é'));
    }

    #[test]
    fn uuid_shaped_ids_have_the_version_and_variant_bits() {
        let id = uuid_shaped(&[0xff; 32]);
        assert_eq!(id, "ffffffff-ffff-4fff-bfff-ffffffffffff");
    }
}
