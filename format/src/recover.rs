//! Crash recovery: completes a capture whose journaled writer died before writing its footer.
//!
//! See [`crate::journal`] for the journal and docs/FORMAT.md ("Crash safety") for the steps and
//! the guarantees.

use std::{
    fs::{self, File, OpenOptions},
    io::{ErrorKind, Read as _},
    os::unix::fs::{FileExt, MetadataExt as _, OpenOptionsExt as _},
    path::Path,
};

use parquet::{
    arrow::ARROW_SCHEMA_META_KEY,
    file::metadata::{
        FileMetaData, KeyValue, ParquetMetaData, ParquetMetaDataReader, ParquetMetaDataWriter,
    },
};

use crate::{
    FormatError, guard,
    journal::{self, journal_path, sync_parent_dir},
    metadata::{CaptureMetadata, format_rfc3339_ns, keys},
    reader::PARQUET_MAGIC,
};

/// What [`recover`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recovered {
    /// Rows in the recovered file: every row of every journaled row group.
    pub rows: u64,
    /// Row groups in the recovered file.
    pub row_groups: usize,
    /// Bytes cut from the end of the file: rows written after the last journaled row group
    /// (a row group the writer did not get to journal, a partial one, a partial footer).
    pub bytes_dropped: u64,
    /// The metadata stored in the recovered file: the last journaled metadata, with
    /// `recovered = true` and `capture_end` = the time of the last frame.
    pub metadata: CaptureMetadata,
}

/// Completes `capture`, whose writer ([`crate::writer::CaptureWriter::with_journal`]) died
/// before [`crate::writer::CaptureWriter::finish`]: reads the valid frames of its journal
/// (stopping at the first torn or corrupt one, and leaving out frames that claim more data
/// than the file holds), cuts the file after the last journaled row group, appends a footer
/// for all journaled row groups with the last frame's metadata (`recovered = true`,
/// `capture_end` = that frame's time), fsyncs the file and removes the journal.
///
/// Run it only once the writer is gone: nothing stops it from cutting a file that a live
/// writer is still appending to. Running it again after it was interrupted is safe: the file is
/// cut at the same place, or is already complete.
///
/// Errors: [`FormatError::AlreadyComplete`] when the file has a valid footer (a stale journal
/// is removed); [`FormatError::NoJournal`] when it has neither footer nor journal;
/// [`FormatError::BadJournal`] when the journal has no usable frame or does not match the file.
pub fn recover(capture: &Path) -> Result<Recovered, FormatError> {
    let journal = journal_path(capture);
    let file = open_regular(capture, true)?;
    let file_len = file.metadata().map_err(io(capture))?.len();

    if has_valid_footer(&file, file_len) {
        match fs::remove_file(&journal) {
            Ok(()) => sync_parent_dir(capture)?,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io(&journal)(e)),
        }
        return Err(FormatError::AlreadyComplete {
            path: capture.to_path_buf(),
        });
    }

    let frames = usable_frames(capture, &journal, &file, file_len)?;
    let (Some(first), Some(last)) = (frames.first(), frames.last()) else {
        return Err(FormatError::BadJournal {
            path: journal,
            detail: format!("no complete frame describing data within the file's {file_len} bytes"),
        });
    };
    let data_len = last.data_len;
    let (metadata, footer) = recovered_footer(capture, &frames, first, last)?;
    let mut tail = Vec::new();
    if data_len == 0 {
        // The writer died before its first row group: the file gets its leading magic here.
        tail.extend_from_slice(PARQUET_MAGIC);
    }
    guard::catch(|| ParquetMetaDataWriter::new(&mut tail, &footer).finish()).map_err(
        |panic| FormatError::BadJournal {
            path: journal.clone(),
            detail: format!("its row groups do not make a footer: {panic}"),
        },
    )??;

    file.set_len(data_len).map_err(io(capture))?;
    file.write_all_at(&tail, data_len).map_err(io(capture))?;
    file.sync_all().map_err(io(capture))?;
    fs::remove_file(&journal).map_err(io(&journal))?;
    sync_parent_dir(capture)?;

    Ok(Recovered {
        rows: last.rows,
        row_groups: last.row_groups,
        bytes_dropped: file_len - data_len,
        metadata,
    })
}

/// The largest journal recovery reads: one frame per flushed row group (a few KiB each), so
/// far more than the 30,000 row groups a capture file holds; a bigger one is not a journal.
pub const MAX_JOURNAL_BYTES: u64 = 1 << 30;

/// Opens `path` only if it is a regular file: never through a symbolic link, never blocking on
/// a FIFO or a device (`O_NOFOLLOW | O_NONBLOCK`, then a check of what was opened).
fn open_regular(path: &Path, write: bool) -> Result<File, FormatError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => FormatError::FileIo {
                path: path.to_path_buf(),
                source: std::io::Error::other("a symbolic link: recovery does not follow links"),
            },
            _ => io(path)(e),
        })?;
    if !file.metadata().map_err(io(path))?.file_type().is_file() {
        return Err(FormatError::FileIo {
            path: path.to_path_buf(),
            source: std::io::Error::other("not a regular file"),
        });
    }
    Ok(file)
}

/// The error for an I/O failure on `path`.
fn io(path: &Path) -> impl FnOnce(std::io::Error) -> FormatError {
    let path = path.to_path_buf();
    move |source| match source.kind() {
        ErrorKind::NotFound => FormatError::NotFound { path },
        _ => FormatError::FileIo { path, source },
    }
}

/// The frames of `journal` that describe data within the capture's `file_len` bytes (a frame
/// claiming more, and all after it, are left out), after checking that the journal belongs to
/// the capture.
fn usable_frames(
    capture: &Path,
    journal: &Path,
    file: &File,
    file_len: u64,
) -> Result<Vec<journal::Frame>, FormatError> {
    let bad_journal = |detail: String| FormatError::BadJournal {
        path: journal.to_path_buf(),
        detail,
    };
    let journal_file = match open_regular(journal, false) {
        Ok(journal_file) => journal_file,
        Err(FormatError::NotFound { .. }) => {
            return Err(FormatError::NoJournal {
                path: capture.to_path_buf(),
                journal: journal.to_path_buf(),
            });
        }
        Err(e) => return Err(e),
    };
    let (capture_meta, journal_meta) = (
        file.metadata().map_err(io(capture))?,
        journal_file.metadata().map_err(io(journal))?,
    );
    if (journal_meta.uid(), journal_meta.dev()) != (capture_meta.uid(), capture_meta.dev()) {
        return Err(bad_journal(
            "it belongs to another user or file system than the capture".to_owned(),
        ));
    }
    if journal_meta.len() > MAX_JOURNAL_BYTES {
        return Err(bad_journal(format!(
            "{} bytes, more than a journal can hold ({MAX_JOURNAL_BYTES})",
            journal_meta.len()
        )));
    }
    let mut bytes = Vec::new();
    journal_file
        .take(MAX_JOURNAL_BYTES)
        .read_to_end(&mut bytes)
        .map_err(io(journal))?;
    let mut frames = guard::catch(|| journal::read(&bytes))
        .map_err(|panic| bad_journal(format!("a frame does not decode: {panic}")))?
        .map_err(bad_journal)?;
    // Frames describing data the file does not hold (it was cut, or the data never reached
    // the disk) are unusable, and so are all after them.
    let usable = frames
        .iter()
        .take_while(|frame| frame.data_len <= file_len)
        .count();
    frames.truncate(usable);
    if frames.last().is_some_and(|last| last.data_len >= 4) {
        let mut head = [0; 4];
        file.read_exact_at(&mut head, 0).map_err(io(capture))?;
        if head != *PARQUET_MAGIC {
            return Err(bad_journal(format!(
                "{} does not start with PAR1: the journal does not belong to it",
                capture.display()
            )));
        }
    }
    Ok(frames)
}

/// The metadata and the footer of the recovered file: every journaled row group, and the last
/// frame's capture keys, marked recovered, ended at the frame's time.
fn recovered_footer(
    capture: &Path,
    frames: &[journal::Frame],
    first: &journal::Frame,
    last: &journal::Frame,
) -> Result<(CaptureMetadata, ParquetMetaData), FormatError> {
    let mut pairs: Vec<(String, String)> = key_values(last.footer.file_metadata())
        .into_iter()
        .filter(|(key, _)| key != ARROW_SCHEMA_META_KEY)
        .collect();
    set_value(
        &mut pairs,
        keys::CAPTURE_END,
        format_rfc3339_ns(last.time_ns),
    );
    set_value(&mut pairs, keys::RECOVERED, "true".to_owned());
    let metadata = CaptureMetadata::from_key_values(&pairs).map_err(|e| e.with_path(capture))?;
    let kv: Vec<KeyValue> = key_values(first.footer.file_metadata())
        .into_iter()
        .filter(|(key, _)| key == ARROW_SCHEMA_META_KEY)
        .chain(pairs)
        .map(|(key, value)| KeyValue::new(key, value))
        .collect();

    let first_meta = first.footer.file_metadata();
    let row_groups: Vec<_> = frames
        .iter()
        .flat_map(|frame| frame.footer.row_groups().iter().cloned())
        .collect();
    let footer = ParquetMetaData::new(
        FileMetaData::new(
            first_meta.version(),
            i64::try_from(last.rows).unwrap_or(i64::MAX),
            first_meta.created_by().map(str::to_owned),
            Some(kv),
            first_meta.schema_descr_ptr(),
            None,
        ),
        row_groups,
    );
    Ok((metadata, footer))
}

fn has_valid_footer(file: &File, len: u64) -> bool {
    let mut tail = [0; 4];
    len >= 12
        && file.read_exact_at(&mut tail, len - 4).is_ok()
        && tail == *PARQUET_MAGIC
        && ParquetMetaDataReader::new().parse_and_finish(file).is_ok()
}

fn key_values(metadata: &FileMetaData) -> Vec<(String, String)> {
    metadata
        .key_value_metadata()
        .map(|kv| {
            kv.iter()
                .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// Sets every occurrence of `key` to `value`, or appends it.
fn set_value(pairs: &mut Vec<(String, String)>, key: &str, value: String) {
    let mut found = false;
    for (_, v) in pairs.iter_mut().filter(|(k, _)| k == key) {
        v.clone_from(&value);
        found = true;
    }
    if !found {
        pairs.push((key.to_owned(), value));
    }
}
