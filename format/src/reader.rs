//! Reads captures: validation, version fix-up, record batches and events.

use std::{
    fs::File,
    io::{ErrorKind, Read, Seek, SeekFrom},
    os::unix::fs::OpenOptionsExt as _,
    path::{Path, PathBuf},
    sync::Arc,
};

use arrow::{
    array::{ArrayRef, RecordBatch, RecordBatchOptions, new_null_array},
    compute::{can_cast_types, cast},
};
use arrow_schema::{Schema, SchemaRef};
use bytes::Bytes;
use parquet::{
    arrow::{
        ProjectionMask,
        arrow_reader::{ArrowReaderMetadata, ArrowReaderOptions, ParquetRecordBatchReaderBuilder},
    },
    errors::ParquetError,
    file::{
        metadata::{PageIndexPolicy, ParquetMetaData, ParquetMetaDataReader},
        reader::ChunkReader,
    },
};

/// One record batch read row by row, in place (its strings borrowed from the batch).
pub use crate::columns::BatchRows;
use crate::{
    FormatError,
    event::Event,
    metadata::{CaptureMetadata, keys},
    schema::{COLUMNS_ADDED_BY_MINOR, schema},
};

/// The Parquet magic at the start and at the end of every Parquet file.
pub const PARQUET_MAGIC: &[u8; 4] = b"PAR1";

/// Rows per record batch returned by [`CaptureReader::batches`].
pub const BATCH_ROWS: usize = 8192;

/// The most bytes of key-value metadata (keys and values) a capture may have. The recorder
/// writes a few KiB, the command line and the target lists being the only long values (at most
/// the kernel's 2 MiB of arguments); a footer with more is refused before anything copies it.
pub const MAX_METADATA_BYTES: usize = 16 << 20;

/// The path reported for captures read from memory.
pub const MEMORY_PATH: &str = "<memory>";

type BatchIter = Box<dyn Iterator<Item = Result<RecordBatch, FormatError>> + Send>;
type EventIter = Box<dyn Iterator<Item = Result<Event<'static>, FormatError>> + Send>;

#[derive(Clone, Debug)]
enum Source {
    File,
    Memory(Bytes),
    /// An object in a store of this many bytes, read by the query engine's own client (see
    /// [`crate::remote`]).
    Remote(u64),
}

/// When a local file's page headers are walked ([`crate::pages`]).
#[derive(Clone, Copy)]
enum Walk {
    /// When it is opened.
    Now,
    /// As its pages are read ([`CaptureReader::open_deferred`]).
    AsRead,
}

/// An open, validated capture.
#[derive(Debug)]
pub struct CaptureReader {
    path: PathBuf,
    source: Source,
    parquet: ArrowReaderMetadata,
    metadata: CaptureMetadata,
    fixup: Arc<FixUp>,
    /// The page checks still to make, for a capture opened with
    /// [`CaptureReader::open_deferred`].
    pages: Option<Arc<crate::pages::PageGuard>>,
}

impl CaptureReader {
    /// Opens and validates: exists, not empty, Parquet magic + footer readable, capture keys
    /// present, supported major version. Every failure is a FormatError naming the path.
    pub fn open(path: &Path) -> Result<Self, FormatError> {
        Self::open_file(path, &schema(), COLUMNS_ADDED_BY_MINOR, Walk::Now)
    }

    /// [`CaptureReader::open`] but for the walk of the page headers ([`crate::pages`]), made
    /// when pages are read instead: by a reader of column chunks through
    /// [`CaptureReader::page_guard`] (the analyzer's query engine), chunk by chunk as it
    /// fetches them, and by [`CaptureReader::batches`] for the whole file before its first
    /// batch. A query then walks the pages it reads, not the whole file's before it starts.
    pub fn open_deferred(path: &Path) -> Result<Self, FormatError> {
        Self::open_file(path, &schema(), COLUMNS_ADDED_BY_MINOR, Walk::AsRead)
    }

    /// The page checks a reader of column chunks must make on the bytes it fetches before it
    /// decodes them ([`crate::pages::PageGuard::check_fetched`]), for a capture opened with
    /// [`CaptureReader::open_deferred`]; `None` when they were made when it was opened.
    pub fn page_guard(&self) -> Option<&Arc<crate::pages::PageGuard>> {
        self.pages.as_ref()
    }

    /// Reads a capture held in memory (e.g. written into a `Vec<u8>`), with the same checks as
    /// [`CaptureReader::open`]; errors name the path `<memory>`.
    pub fn from_bytes(data: impl Into<Bytes>) -> Result<Self, FormatError> {
        Self::open_bytes(data.into(), &schema(), COLUMNS_ADDED_BY_MINOR)
    }

    /// Opens an object that is not a local file (`name`, e.g. `s3://bucket/key`, is what errors
    /// and [`CaptureReader::path`] say) from ranged reads of `source`: the footer and the page
    /// headers, with the same checks as [`CaptureReader::open`] (see [`crate::remote`]). Its rows
    /// are read by whoever holds the connection (the analyzer's query engine):
    /// [`CaptureReader::batches`] and [`CaptureReader::events`] refuse it.
    pub fn open_ranges(
        name: &str,
        source: &dyn crate::remote::RangeSource,
    ) -> Result<Self, FormatError> {
        let path = Path::new(name);
        let ranged = crate::remote::Ranged::new(source);
        let failed =
            |ranged: &crate::remote::Ranged<'_>, err: FormatError| match ranged.take_error() {
                Some(source) => FormatError::FileIo {
                    path: path.to_path_buf(),
                    source,
                },
                None => err,
            };
        let len = source.size();
        let mut head = [0; 4];
        let mut tail = [0; 4];
        let read = |at: u64, n: usize| {
            ranged.get_bytes(at, n).map_err(|_| FormatError::FileIo {
                path: path.to_path_buf(),
                source: ranged
                    .take_error()
                    .unwrap_or_else(|| std::io::Error::other("cannot read")),
            })
        };
        if len >= 4 {
            head.copy_from_slice(&read(0, 4)?);
        }
        if len >= 8 {
            // The last 8 bytes (footer length and magic) are what parquet reads first: kept.
            tail.copy_from_slice(&read(len - 8, 8)?[4..]);
        }
        check_magic(path, len, &head, &tail)?;
        let parquet = load_footer(path, &ranged, len).map_err(|e| failed(&ranged, e))?;
        crate::pages::check_pages(path, &ranged, parquet.metadata())
            .map_err(|e| failed(&ranged, e))?;
        if let Some(source) = ranged.take_error() {
            return Err(FormatError::FileIo {
                path: path.to_path_buf(),
                source,
            });
        }
        Self::validate(
            path.to_path_buf(),
            Source::Remote(len),
            parquet,
            &schema(),
            COLUMNS_ADDED_BY_MINOR,
        )
    }

    /// Whether the capture is an object read through ranged reads
    /// ([`CaptureReader::open_ranges`]), not a local file or bytes in memory.
    pub fn is_remote(&self) -> bool {
        matches!(self.source, Source::Remote(_))
    }

    /// The length of a remote object ([`CaptureReader::open_ranges`]); `None` for a local file
    /// (its length is the file system's to say) or bytes in memory.
    pub fn remote_len(&self) -> Option<u64> {
        match self.source {
            Source::Remote(len) => Some(len),
            Source::File | Source::Memory(_) => None,
        }
    }

    fn open_file(
        path: &Path,
        target: &SchemaRef,
        added: &[(u32, &[&str])],
        walk: Walk,
    ) -> Result<Self, FormatError> {
        let mut file = open_existing(path)?;
        let io = |source| FormatError::FileIo {
            path: path.to_path_buf(),
            source,
        };
        let len = file.metadata().map_err(io)?.len();
        let mut head = [0; 4];
        let mut tail = [0; 4];
        if len >= 4 {
            file.read_exact(&mut head).map_err(io)?;
            file.seek(SeekFrom::Start(len - 4)).map_err(io)?;
            file.read_exact(&mut tail).map_err(io)?;
        }
        check_magic(path, len, &head, &tail)?;
        let parquet = load_footer(path, &file, len)?;
        let pages = match walk {
            Walk::Now => {
                crate::pages::check_file_pages(path, &file, parquet.metadata())?;
                None
            }
            Walk::AsRead => Some(Arc::new(crate::pages::PageGuard::new(
                path,
                Arc::clone(parquet.metadata()),
            ))),
        };
        let reader = Self::validate(path.to_path_buf(), Source::File, parquet, target, added)?;
        Ok(Self { pages, ..reader })
    }

    fn open_bytes(
        data: Bytes,
        target: &SchemaRef,
        added: &[(u32, &[&str])],
    ) -> Result<Self, FormatError> {
        let path = Path::new(MEMORY_PATH);
        let len = data.len() as u64;
        let mut head = [0; 4];
        let mut tail = [0; 4];
        if data.len() >= 4 {
            head.copy_from_slice(&data[..4]);
            tail.copy_from_slice(&data[data.len() - 4..]);
        }
        check_magic(path, len, &head, &tail)?;
        let parquet = load_footer(path, &data, len)?;
        crate::pages::check_pages(path, &data, parquet.metadata())?;
        Self::validate(
            path.to_path_buf(),
            Source::Memory(data),
            parquet,
            target,
            added,
        )
    }

    fn validate(
        path: PathBuf,
        source: Source,
        parquet: ArrowReaderMetadata,
        target: &SchemaRef,
        added: &[(u32, &[&str])],
    ) -> Result<Self, FormatError> {
        let pairs = parquet.metadata().file_metadata().key_value_metadata();
        let size = |kv: &parquet::file::metadata::KeyValue| {
            kv.key.len() + kv.value.as_ref().map_or(0, String::len)
        };
        let total: usize = pairs.map_or(0, |kv| kv.iter().map(size).sum());
        if total > MAX_METADATA_BYTES
            && let Some(largest) = pairs.and_then(|kv| kv.iter().max_by_key(|kv| size(kv)))
        {
            return Err(FormatError::BadMetadata {
                path: Some(path),
                key: largest.key.chars().take(64).collect(),
                detail: format!(
                    "{} bytes long, in {total} bytes of key-value metadata; a capture's is at \
                     most {MAX_METADATA_BYTES}",
                    size(largest)
                ),
            });
        }
        let kv: Vec<(String, String)> = pairs
            .map(|kv| {
                kv.iter()
                    .filter_map(|kv| Some((kv.key.clone(), kv.value.clone()?)))
                    .collect()
            })
            .unwrap_or_default();
        if !kv.iter().any(|(key, _)| key == keys::FORMAT_MAJOR) {
            return Err(FormatError::NotACapture { path });
        }
        let metadata = CaptureMetadata::from_key_values(&kv).map_err(|e| e.with_path(&path))?;
        let fixup = FixUp::plan(
            parquet.schema(),
            parquet.parquet_schema(),
            metadata.format_version.minor,
            target,
            added,
        )
        .map_err(|detail| FormatError::BadSchema {
            path: path.clone(),
            detail,
        })?;
        Ok(Self {
            path,
            source,
            parquet,
            metadata,
            fixup: Arc::new(fixup),
            pages: None,
        })
    }

    /// The path the capture was opened from (`<memory>` for [`CaptureReader::from_bytes`]).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The capture's metadata; `format_version` is the file's.
    pub fn metadata(&self) -> &CaptureMetadata {
        &self.metadata
    }

    /// Rows in the file, from the footer.
    pub fn num_rows(&self) -> u64 {
        u64::try_from(self.parquet.metadata().file_metadata().num_rows()).unwrap_or(0)
    }

    /// Row groups in the file.
    pub fn num_row_groups(&self) -> usize {
        self.parquet.metadata().num_row_groups()
    }

    /// The earliest `ts` (nanoseconds) of any row of the file, from its row groups' statistics;
    /// `None` when a row group has no minimum for it (a file with no rows: `i64::MAX`). A
    /// bound a reader may use to put off reading the file; the file itself may lie.
    pub fn min_ts_ns(&self) -> Option<i64> {
        self.time_bound(crate::schema::col::TS, Bound::Min)
            .map(|min| min.unwrap_or(i64::MAX))
    }

    /// The latest time (nanoseconds) any row of the file names, its `ts` or its `ts_exit`,
    /// from its row groups' statistics: `Some(None)` for a file with no times, `None` when a
    /// row group that has times has no exact maximum for them. As [`Self::min_ts_ns`], what
    /// the file says of itself.
    pub fn max_time_ns(&self) -> Option<Option<i64>> {
        let ts = self.time_bound(crate::schema::col::TS, Bound::Max)?;
        let exit = self.time_bound(crate::schema::col::TS_EXIT, Bound::Max)?;
        Some(ts.into_iter().chain(exit).max())
    }

    /// The least or greatest value of the `Int64` (time) column `name` over the row groups,
    /// from their statistics: `Some(None)` when no row group has a value (no rows, every value
    /// null, or no such column, as `ts_exit` before 1.1), `None` when a row group with values
    /// has no exact bound for them.
    fn time_bound(&self, name: &str, bound: Bound) -> Option<Option<i64>> {
        use parquet::file::statistics::Statistics;
        let metadata = self.parquet.metadata();
        let Some(column) = metadata
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().parts() == [name])
        else {
            return Some(None);
        };
        let mut found: Option<i64> = None;
        for rg in metadata.row_groups() {
            let rows = u64::try_from(rg.num_rows()).unwrap_or(0);
            if rows == 0 {
                continue;
            }
            let Statistics::Int64(stats) = rg.column(column).statistics()? else {
                return None;
            };
            let value = match bound {
                Bound::Min => stats.min_opt().filter(|_| stats.min_is_exact()),
                Bound::Max => stats.max_opt().filter(|_| stats.max_is_exact()),
            };
            let value = match value {
                Some(value) => *value,
                // Every value of the row group null: nothing to bound.
                None if stats.null_count_opt() == Some(rows) => continue,
                None => return None,
            };
            found = Some(match (found, bound) {
                (None, _) => value,
                (Some(old), Bound::Min) => old.min(value),
                (Some(old), Bound::Max) => old.max(value),
            });
        }
        Some(found)
    }

    /// The file's Parquet footer, with its page index when it has one that decodes: what the
    /// checks at open read, for a query engine to reuse instead of parsing the footer again.
    pub fn parquet_metadata(&self) -> Arc<ParquetMetaData> {
        Arc::clone(self.parquet.metadata())
    }

    /// The Parquet `created_by` string of the file, if any.
    pub fn created_by(&self) -> Option<&str> {
        self.parquet.metadata().file_metadata().created_by()
    }

    /// Record batches in the current schema (older minors fixed up).
    pub fn batches(&self) -> Result<BatchIter, FormatError> {
        match &self.source {
            Source::File => {
                let file = open_existing(&self.path)?;
                if let Some(pages) = &self.pages {
                    pages.check_all(&file)?;
                }
                self.batches_from(file)
            }
            Source::Memory(data) => self.batches_from(data.clone()),
            Source::Remote(_) => Err(FormatError::FileIo {
                path: self.path.clone(),
                source: std::io::Error::other(
                    "a remote capture is read through the query engine, not row by row here",
                ),
            }),
        }
    }

    fn batches_from<T: ChunkReader + 'static>(&self, input: T) -> Result<BatchIter, FormatError> {
        let mut reader = guarded(&self.path, || {
            ParquetRecordBatchReaderBuilder::new_with_metadata(input, self.parquet.clone())
                .with_projection(self.fixup.projection.clone())
                .with_batch_size(BATCH_ROWS)
                .build()
                .map_err(|e| damaged(&self.path, e))
        })?;
        let path = self.path.clone();
        let fixup = Arc::clone(&self.fixup);
        let mut failed = false;
        Ok(Box::new(std::iter::from_fn(move || {
            if failed {
                return None;
            }
            let next = guarded(&path, || {
                let Some(batch) = reader.next() else {
                    return Ok(None);
                };
                let batch = batch.map_err(|e| damaged(&path, e))?;
                fixup
                    .apply(&batch)
                    .map(Some)
                    .map_err(|detail| FormatError::BadSchema {
                        path: path.clone(),
                        detail,
                    })
            });
            // After a panic the reader's state is unknown: nothing more is read from it.
            failed = next.is_err();
            next.transpose()
        })))
    }

    /// Rows as owned events, in file order.
    pub fn events(&self) -> Result<EventIter, FormatError> {
        Ok(Box::new(Events {
            path: self.path.clone(),
            batches: self.batches()?,
            current: Vec::new().into_iter(),
            done: false,
        }))
    }
}

/// Opens a capture for reading: a regular file only, without blocking on a FIFO or a device
/// (`O_NONBLOCK`, then a check of what was opened).
pub(crate) fn open_existing(path: &Path) -> Result<File, FormatError> {
    let io = |source: std::io::Error| match source.kind() {
        ErrorKind::NotFound => FormatError::NotFound {
            path: path.to_path_buf(),
        },
        _ => FormatError::FileIo {
            path: path.to_path_buf(),
            source,
        },
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    if !file.metadata().map_err(io)?.file_type().is_file() {
        return Err(io(std::io::Error::other("not a regular file")));
    }
    Ok(file)
}

fn check_magic(path: &Path, len: u64, head: &[u8; 4], tail: &[u8; 4]) -> Result<(), FormatError> {
    if len == 0 {
        return Err(FormatError::Empty {
            path: path.to_path_buf(),
        });
    }
    if len < 4 || head != PARQUET_MAGIC {
        return Err(FormatError::NotParquet {
            path: path.to_path_buf(),
        });
    }
    // Starts as Parquet: what is missing is the end.
    if len < 12 || tail != PARQUET_MAGIC {
        return Err(FormatError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "no PAR1 magic at the end of its {len} bytes: the file was cut short or its \
                 writer never finished"
            ),
        });
    }
    Ok(())
}

/// Every column chunk and page index the footer places must lie within the file's `len` bytes:
/// readers allocate what a range claims before reading it (a claim of 86 TB aborted the
/// analyzer's engine on an allocation failure, which no guard catches).
fn check_ranges(path: &Path, parquet: &ParquetMetaData, len: u64) -> Result<(), FormatError> {
    let len = i64::try_from(len).unwrap_or(i64::MAX);
    let outside = |what: &str, name: &str, start: i64, size: i64| {
        let end = start.checked_add(size);
        (start < 0 || size < 0 || end.is_none_or(|end| end > len)).then(|| FormatError::Truncated {
            path: path.to_path_buf(),
            detail: format!(
                "the footer places {what} {name} at {start} + {size} bytes, outside the file's \
                 {len}"
            ),
        })
    };
    for rg in parquet.row_groups() {
        for column in rg.columns() {
            let name = column.column_descr().name();
            let start = column
                .dictionary_page_offset()
                .unwrap_or_else(|| column.data_page_offset());
            let checks = [
                ("column chunk", Some(start), Some(column.compressed_size())),
                (
                    "the offset index of",
                    column.offset_index_offset(),
                    column.offset_index_length().map(i64::from),
                ),
                (
                    "the column index of",
                    column.column_index_offset(),
                    column.column_index_length().map(i64::from),
                ),
            ];
            for (what, start, size) in checks {
                if let (Some(start), Some(size)) = (start, size)
                    && let Some(err) = outside(what, name, start, size)
                {
                    return Err(err);
                }
            }
        }
    }
    Ok(())
}

/// The footer of the file of `len` bytes, its ranges checked ([`check_ranges`]), with the page
/// index it points at (offset and column indexes: the page walk checks the offset index, and
/// the query engine is handed this metadata instead of parsing the footer again). A page index
/// that does not decode is left out, as a reader that does not ask for it would.
fn load_footer<T: ChunkReader>(
    path: &Path,
    input: &T,
    len: u64,
) -> Result<ArrowReaderMetadata, FormatError> {
    let footer = guarded(path, || {
        ParquetMetaDataReader::new()
            .parse_and_finish(input)
            .map_err(|e| damaged(path, e))
    })?;
    check_ranges(path, &footer, len)?;
    let has_index = footer.row_groups().iter().any(|rg| {
        rg.columns()
            .iter()
            .any(|c| c.offset_index_offset().is_some() || c.column_index_offset().is_some())
    });
    let metadata = if has_index {
        let with_index = crate::guard::catch(|| {
            let mut reader = ParquetMetaDataReader::new_with_metadata(footer)
                .with_page_index_policy(PageIndexPolicy::Optional);
            reader.read_page_indexes(input)?;
            reader.finish()
        });
        match with_index {
            Ok(Ok(metadata)) => metadata,
            // Rare (a damaged index): the footer is read again, without it.
            _ => guarded(path, || {
                ParquetMetaDataReader::new()
                    .parse_and_finish(input)
                    .map_err(|e| damaged(path, e))
            })?,
        }
    } else {
        footer
    };
    guarded(path, || {
        ArrowReaderMetadata::try_new(Arc::new(metadata), ArrowReaderOptions::new())
            .map_err(|e| damaged(path, e))
    })
}

/// Runs a library call on the file's bytes; a panic in it (arrow and parquet assert on some
/// malformed input) is a damaged-file error naming the path.
fn guarded<T>(path: &Path, f: impl FnOnce() -> Result<T, FormatError>) -> Result<T, FormatError> {
    crate::guard::catch(f).unwrap_or_else(|panic| Err(damaged(path, ReadError(panic))))
}

fn damaged(path: &Path, error: impl Into<ReadError>) -> FormatError {
    FormatError::Truncated {
        path: path.to_path_buf(),
        detail: crate::error::one_line(&error.into().0),
    }
}

struct ReadError(String);

impl From<ParquetError> for ReadError {
    fn from(e: ParquetError) -> Self {
        Self(e.to_string())
    }
}

impl From<arrow_schema::ArrowError> for ReadError {
    fn from(e: arrow_schema::ArrowError) -> Self {
        Self(e.to_string())
    }
}

/// Where each column of the current schema comes from in a file of some version.
#[derive(Debug)]
struct FixUp {
    target: SchemaRef,
    /// The file's columns to read (all columns this reader knows, unknown ones left out).
    projection: ProjectionMask,
    /// One per target column, in target order.
    columns: Vec<ColumnSource>,
}

/// Which end of a column's values [`CaptureReader::time_bound`] reads.
#[derive(Clone, Copy)]
enum Bound {
    Min,
    Max,
}

#[derive(Debug)]
enum ColumnSource {
    /// Column `index` of the projected batch, cast to the target type when `cast`.
    File { index: usize, cast: bool },
    /// Added by a later minor than the file's: all nulls.
    Null,
}

impl FixUp {
    /// Matches the file's columns to `target` by name. A target column the file lacks is filled
    /// with nulls when `added` says a minor newer than `file_minor` added it, and is an error
    /// otherwise. Columns the file has and `target` lacks (from newer minors) are not read.
    fn plan(
        file_schema: &Schema,
        parquet_schema: &parquet::schema::types::SchemaDescriptor,
        file_minor: u32,
        target: &SchemaRef,
        added: &[(u32, &[&str])],
    ) -> Result<Self, String> {
        let file_indices: Vec<Option<usize>> = target
            .fields()
            .iter()
            .map(|field| file_schema.index_of(field.name()).ok())
            .collect();
        let mut wanted: Vec<usize> = file_indices.iter().flatten().copied().collect();
        wanted.sort_unstable();
        wanted.dedup();

        let mut columns = Vec::with_capacity(target.fields().len());
        for (field, file_index) in target.fields().iter().zip(&file_indices) {
            let source = match file_index {
                Some(file_index) => {
                    let file_type = file_schema.field(*file_index).data_type();
                    let cast = file_type != field.data_type();
                    if cast && !can_cast_types(file_type, field.data_type()) {
                        return Err(format!(
                            "column {} has type {file_type}, expected {}",
                            field.name(),
                            field.data_type()
                        ));
                    }
                    // The projected batch holds the wanted columns in file order.
                    let index = wanted.partition_point(|i| i < file_index);
                    ColumnSource::File { index, cast }
                }
                None => {
                    let added_later = added.iter().any(|(minor, names)| {
                        *minor > file_minor && names.contains(&field.name().as_str())
                    });
                    if !added_later || !field.is_nullable() {
                        return Err(format!(
                            "no column {} (a column of format 1.{file_minor})",
                            field.name()
                        ));
                    }
                    ColumnSource::Null
                }
            };
            columns.push(source);
        }
        Ok(Self {
            target: Arc::clone(target),
            projection: ProjectionMask::roots(parquet_schema, wanted),
            columns,
        })
    }

    fn apply(&self, batch: &RecordBatch) -> Result<RecordBatch, String> {
        let rows = batch.num_rows();
        let mut columns: Vec<ArrayRef> = Vec::with_capacity(self.columns.len());
        for (field, source) in self.target.fields().iter().zip(&self.columns) {
            let column = match source {
                ColumnSource::File { index, cast: false } => Arc::clone(batch.column(*index)),
                ColumnSource::File { index, cast: true } => {
                    cast(batch.column(*index), field.data_type())
                        .map_err(|e| format!("column {}: {e}", field.name()))?
                }
                ColumnSource::Null => new_null_array(field.data_type(), rows),
            };
            columns.push(column);
        }
        RecordBatch::try_new_with_options(
            Arc::clone(&self.target),
            columns,
            &RecordBatchOptions::new().with_row_count(Some(rows)),
        )
        .map_err(|e| e.to_string())
    }
}

struct Events {
    path: PathBuf,
    batches: BatchIter,
    current: std::vec::IntoIter<Event<'static>>,
    done: bool,
}

impl Iterator for Events {
    type Item = Result<Event<'static>, FormatError>;

    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if let Some(event) = self.current.next() {
                return Some(Ok(event));
            }
            if self.done {
                return None;
            }
            let decoded = match self.batches.next() {
                None => {
                    self.done = true;
                    return None;
                }
                Some(batch) => batch.and_then(|batch| {
                    guarded(&self.path, || {
                        events_from_batch(&batch).map_err(|e| e.with_path(&self.path))
                    })
                }),
            };
            match decoded {
                Ok(events) => self.current = events.into_iter(),
                Err(e) => {
                    self.done = true;
                    return Some(Err(e));
                }
            }
        }
    }
}

/// Decodes one batch (current schema) into events that own their strings ([`BatchRows`] reads
/// them in place).
///
/// A `kind` or `syscall` name this version does not know (from a newer minor) decodes as
/// `Other`.
pub fn events_from_batch(batch: &RecordBatch) -> Result<Vec<Event<'static>>, FormatError> {
    events_in_rows(batch, 0..batch.num_rows())
}

/// [`events_from_batch`] for the rows `rows` of `batch` only (cut to the batch's), for a
/// reader that may stop before the end of a batch.
pub fn events_in_rows(
    batch: &RecordBatch,
    rows: std::ops::Range<usize>,
) -> Result<Vec<Event<'static>>, FormatError> {
    let decoded = BatchRows::new(batch)?;
    let end = rows.end.min(decoded.len());
    (rows.start.min(end)..end)
        .map(|row| decoded.row(row).map(Event::into_owned))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use arrow::{
        array::{
            Array, AsArray, BooleanArray, DictionaryArray, Int64Array, StringArray, UInt64Array,
        },
        datatypes::Int32Type,
    };
    use arrow_schema::{DataType, Field};
    use parquet::{arrow::ArrowWriter, file::metadata::KeyValue};

    use super::*;
    use crate::{
        event::{RowKind, Syscall},
        metadata::FormatVersion,
        schema::col,
        writer::{CaptureWriter, WriterConfig},
    };

    fn event(i: u32, file_name: Option<&'static str>) -> Event<'static> {
        Event {
            kind: RowKind::Syscall,
            syscall: Some(Syscall::Mmap),
            ts_ns: 1_000 + i64::from(i),
            ts_exit_ns: Some(2_000 + i64::from(i)),
            cpu: 1,
            pid: 10,
            tid: 10 + i,
            ppid: 1,
            uid: 0,
            gid: 0,
            comm: Cow::Borrowed("t"),
            cgroup_id: 5,
            addr: Some(0),
            len: Some(4096),
            prot: Some(3),
            flags: Some(0x22),
            fd: Some(-1),
            off: Some(0),
            ret: Some(-22),
            file_dev: Some(1),
            file_ino: Some(2),
            file_name: file_name.map(Cow::Borrowed),
            source: Some(Cow::Borrowed("tracepoint")),
            ..Default::default()
        }
    }

    fn metadata_kv(minor: u32) -> Vec<(String, String)> {
        let mut kv = CaptureMetadata::default().to_key_values();
        for (key, value) in &mut kv {
            if key == keys::FORMAT_MINOR {
                *value = minor.to_string();
            }
        }
        kv
    }

    /// The rows of a capture written by this crate, as one batch of the current schema.
    fn current_batch(events: &[Event<'_>]) -> RecordBatch {
        let mut writer = CaptureWriter::new(Vec::new(), WriterConfig::default()).expect("writer");
        for event in events {
            writer.push(event).expect("push");
        }
        let bytes = writer.finish(&CaptureMetadata::default()).expect("finish");
        let reader = CaptureReader::from_bytes(bytes).expect("open");
        let mut batches: Vec<_> = reader
            .batches()
            .expect("batches")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(batches.len(), 1);
        batches.remove(0)
    }

    /// Writes `batch` as a capture claiming format 1.`minor`.
    fn write_as_minor(batch: &RecordBatch, minor: u32) -> Bytes {
        let mut writer =
            ArrowWriter::try_new(Vec::new(), batch.schema(), None).expect("raw writer");
        writer.write(batch).expect("write");
        for (key, value) in metadata_kv(minor) {
            writer.append_key_value_metadata(KeyValue::new(key, value));
        }
        Bytes::from(writer.into_inner().expect("close"))
    }

    fn without_column(batch: &RecordBatch, name: &str) -> RecordBatch {
        let index = batch.schema().index_of(name).expect("column");
        let mut batch = batch.clone();
        batch.remove_column(index);
        batch
    }

    /// A hypothetical format 1.1 that added `file_name`, read by a 1.1 reader: a 1.0 file
    /// lacks the column and reads with nulls there.
    #[test]
    fn older_minor_missing_a_later_column_reads_with_nulls() {
        let events = [event(0, Some("a.so")), event(1, Some("b.so"))];
        let old = without_column(&current_batch(&events), col::FILE_NAME);
        let bytes = write_as_minor(&old, 0);
        let added: &[(u32, &[&str])] = &[(1, &[col::FILE_NAME])];

        let reader = CaptureReader::open_bytes(bytes.clone(), &schema(), added).expect("open");
        assert_eq!(
            reader.metadata().format_version,
            FormatVersion { major: 1, minor: 0 }
        );
        let batches: Vec<_> = reader
            .batches()
            .expect("batches")
            .collect::<Result<_, _>>()
            .expect("read");
        assert_eq!(batches[0].schema(), schema());
        let file_name = batches[0].column_by_name(col::FILE_NAME).expect("filled");
        assert_eq!(file_name.null_count(), 2);
        let read: Vec<_> = reader
            .events()
            .expect("events")
            .collect::<Result<_, _>>()
            .expect("decode");
        let expected: Vec<_> = events
            .iter()
            .map(|e| Event {
                file_name: None,
                ..e.clone()
            })
            .collect();
        assert_eq!(read, expected);

        // The same file claiming minor 1 (which would have the column) is refused, and so is
        // a 1.0 file lacking a 1.0 column under the real, empty, table.
        let err = CaptureReader::open_bytes(write_as_minor(&old, 1), &schema(), added)
            .expect_err("1.1 must have file_name");
        assert_eq!(
            err.to_string(),
            "<memory>: bad capture schema: no column file_name (a column of format 1.1)"
        );
        let err = CaptureReader::from_bytes(bytes).expect_err("1.0 must have file_name");
        assert!(matches!(err, FormatError::BadSchema { .. }), "{err:?}");
    }

    /// A hypothetical 1.1 reader whose schema has one more column: a 1.0 file reads with
    /// that column all null.
    #[test]
    fn newer_reader_schema_fills_its_new_column() {
        let mut fields: Vec<Field> = schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        fields.push(Field::new("pgoff_pages", DataType::UInt64, true));
        let target = Arc::new(Schema::new(fields));
        let added: &[(u32, &[&str])] = &[(1, &["pgoff_pages"])];

        let bytes = write_as_minor(&current_batch(&[event(0, None)]), 0);
        let reader = CaptureReader::open_bytes(bytes, &target, added).expect("open");
        let batch = reader
            .batches()
            .expect("batches")
            .next()
            .expect("one batch")
            .expect("read");
        assert_eq!(batch.schema(), target);
        let pgoff = batch
            .column_by_name("pgoff_pages")
            .expect("column")
            .as_any()
            .downcast_ref::<UInt64Array>()
            .expect("UInt64");
        assert_eq!(pgoff.len(), 1);
        assert_eq!(pgoff.null_count(), 1);
    }

    /// A file of a later minor: unknown columns are not read, known ones of another Arrow type
    /// (here plain Utf8 instead of a dictionary) are cast to the current type.
    #[test]
    fn newer_minor_extra_columns_ignored_and_types_cast() {
        let events = [event(0, Some("x.so")), event(1, None)];
        let batch = current_batch(&events);
        let mut fields: Vec<Field> = Vec::new();
        let mut columns: Vec<ArrayRef> = Vec::new();
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            if field.name() == col::COMM {
                fields.push(Field::new(col::COMM, DataType::Utf8, false));
                columns.push(cast(column, &DataType::Utf8).expect("cast to Utf8"));
            } else {
                fields.push(field.as_ref().clone());
                columns.push(Arc::clone(column));
            }
            if field.name() == col::TS {
                // A column this reader does not know, in the middle.
                fields.push(Field::new("future", DataType::Int64, true));
                columns.push(Arc::new(Int64Array::from(vec![Some(7), None])));
            }
        }
        let future = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
        let reader = CaptureReader::from_bytes(write_as_minor(&future, 4)).expect("open");
        assert_eq!(reader.metadata().format_version.minor, 4);
        let read: Vec<_> = reader
            .events()
            .expect("events")
            .collect::<Result<_, _>>()
            .expect("decode");
        assert_eq!(read, events);
        let batch = reader
            .batches()
            .expect("batches")
            .next()
            .expect("batch")
            .expect("read");
        assert_eq!(batch.schema(), schema());
    }

    #[test]
    fn uncastable_type_is_a_bad_schema() {
        let batch = current_batch(&[event(0, None)]);
        let index = batch.schema().index_of(col::TS).expect("ts");
        let mut fields: Vec<Field> = batch
            .schema()
            .fields()
            .iter()
            .map(|f| f.as_ref().clone())
            .collect();
        let mut columns = batch.columns().to_vec();
        fields[index] = Field::new(col::TS, DataType::Boolean, false);
        columns[index] = Arc::new(BooleanArray::from(vec![true]));
        let odd = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns).expect("batch");
        let err = CaptureReader::from_bytes(write_as_minor(&odd, 0)).expect_err("bool ts");
        assert!(
            err.to_string().contains("column ts has type Boolean"),
            "{err}"
        );
    }

    /// Rows read in place borrow their strings from the batch and equal the owned decode.
    #[test]
    fn rows_read_in_place_borrow_their_strings() {
        let events = [event(0, Some("libc.so.6")), event(1, None)];
        let batch = current_batch(&events);
        let rows = BatchRows::new(&batch).expect("columns");
        assert_eq!(rows.len(), 2);
        let owned = events_from_batch(&batch).expect("decode");
        for (i, owned) in owned.iter().enumerate() {
            let row = rows.row(i).expect("row");
            assert!(matches!(row.comm, Cow::Borrowed(_)), "comm copied");
            assert!(
                row.file_name
                    .iter()
                    .all(|name| matches!(name, Cow::Borrowed(_)))
            );
            assert_eq!(&row, owned);
            assert_eq!(row, events[i]);
        }
    }

    #[test]
    fn rows_of_a_batch_decode_in_parts() {
        let events: Vec<_> = (0..5).map(|i| event(i, Some("libc.so.6"))).collect();
        let batch = current_batch(&events);
        let whole = events_from_batch(&batch).expect("decode");
        assert_eq!(whole, events);
        assert_eq!(events_in_rows(&batch, 1..3).expect("part"), events[1..3]);
        assert_eq!(events_in_rows(&batch, 3..99).expect("cut"), events[3..]);
        assert!(events_in_rows(&batch, 7..9).expect("past").is_empty());
    }

    /// Replaces the dictionary column `name` of `batch` by one holding `values`.
    fn with_names(batch: &RecordBatch, name: &str, values: Vec<&str>) -> RecordBatch {
        let index = batch.schema().index_of(name).expect("column");
        let mut columns = batch.columns().to_vec();
        let names: DictionaryArray<Int32Type> = values.into_iter().collect();
        columns[index] = Arc::new(names);
        RecordBatch::try_new(batch.schema(), columns).expect("batch")
    }

    /// A kind or syscall of a later minor decodes as Other, in a batch and in a file.
    #[test]
    fn unknown_kind_and_syscall_decode_as_other() {
        let batch = current_batch(&[event(0, None), event(1, None)]);
        let odd = with_names(&batch, col::KIND, vec!["teleport", "syscall"]);
        let odd = with_names(&odd, col::SYSCALL, vec!["mmap", "mseal"]);
        let events = events_from_batch(&odd).expect("unknown names are not errors");
        assert_eq!(
            events
                .iter()
                .map(|e| (e.kind, e.syscall))
                .collect::<Vec<_>>(),
            [
                (RowKind::Other, Some(Syscall::Mmap)),
                (RowKind::Syscall, Some(Syscall::Other))
            ]
        );
        // Everything else of the row is read as usual.
        assert_eq!(
            Event {
                kind: RowKind::Syscall,
                ..events[0].clone()
            },
            event(0, None)
        );

        // In a file: batches carry the name unchanged, events say Other.
        let reader = CaptureReader::from_bytes(write_as_minor(&odd, 2)).expect("open");
        let batch = reader
            .batches()
            .expect("batches")
            .next()
            .expect("batch")
            .expect("read");
        let kinds = batch
            .column_by_name(col::KIND)
            .expect("kind")
            .as_dictionary::<Int32Type>()
            .downcast_dict::<StringArray>()
            .expect("strings")
            .into_iter()
            .collect::<Vec<_>>();
        assert_eq!(kinds, [Some("teleport"), Some("syscall")]);
        let read: Vec<_> = reader
            .events()
            .expect("events")
            .collect::<Result<_, _>>()
            .expect("decode");
        assert_eq!(read, events);

        // Other is never written back.
        let mut writer = CaptureWriter::new(Vec::new(), WriterConfig::default()).expect("writer");
        let err = writer.push(&read[0]).expect_err("Other kind");
        assert_eq!(
            err.to_string(),
            "cannot write event: row kind Other (a kind read from a newer file) cannot be written"
        );
        let err = writer.push(&read[1]).expect_err("Other syscall");
        assert!(matches!(err, FormatError::InvalidEvent(_)), "{err:?}");
        // Nothing of the refused rows was buffered.
        assert_eq!(writer.rows_buffered(), 0);
        writer
            .push(&event(2, None))
            .expect("a known row still writes");
        let bytes = writer.finish(&CaptureMetadata::default()).expect("finish");
        let reader = CaptureReader::from_bytes(bytes).expect("open");
        assert_eq!(reader.num_rows(), 1);
    }

    #[test]
    fn null_kind_and_missing_columns_are_decode_errors() {
        let batch = current_batch(&[event(0, None)]);
        let err = events_from_batch(&without_column(&batch, col::COMM)).expect_err("no comm");
        assert_eq!(
            err.to_string(),
            "cannot decode column comm: missing from the batch"
        );
        let err =
            events_from_batch(&without_column(&batch, col::LOST_COUNT)).expect_err("no 1.1 col");
        assert_eq!(
            err.to_string(),
            "cannot decode column lost_count: missing from the batch"
        );
    }
}
