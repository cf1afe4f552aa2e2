//! Writes captures: rows are buffered in Arrow builders (one per column, made by the column
//! table, format/src/columns.rs) and written as Parquet row groups.

use std::{fs::File, io::Write, sync::Arc};

use arrow_array::RecordBatch;
use arrow_schema::SchemaRef;
use parquet::{
    arrow::{ARROW_SCHEMA_META_KEY, ArrowSchemaConverter, encode_arrow_schema},
    basic::{Compression, Encoding, ZstdLevel},
    file::{
        metadata::KeyValue,
        properties::{DEFAULT_CREATED_BY, EnabledStatistics, WriterProperties},
    },
    schema::types::ColumnPath,
};

use crate::{
    FormatError,
    columns::Builders,
    event::Event,
    journal::{FileTemplate, JournalWriter},
    metadata::{CaptureMetadata, FormatVersion},
    page_crc::PageCrcWriter,
    schema::{col, schema},
};

/// The Parquet `created_by` string of capture files, e.g.
/// `mmap-capture version 0.1.0 (build parquet-rs version 59.3.2)`.
pub fn created_by() -> String {
    format!(
        "mmap-capture version {} (build {DEFAULT_CREATED_BY})",
        env!("CARGO_PKG_VERSION")
    )
}

/// How captures are written.
#[derive(Clone, Debug)]
pub struct WriterConfig {
    /// Rows per row group (a row group is also cut at every [`CaptureWriter::flush`]).
    pub row_group_rows: usize,
    /// zstd compression level (1..=22; default 3).
    pub zstd_level: i32,
}

impl Default for WriterConfig {
    fn default() -> Self {
        Self {
            row_group_rows: 65536,
            zstd_level: 3,
        }
    }
}

/// Columns written `PLAIN`, without dictionary encoding, where a dictionary costs a hash lookup
/// per value and saves nothing:
/// - the addresses a call returns or is given (`ret`, `addr`, `new_addr`): nearly every value is
///   distinct, so a dictionary keeps every value twice (`addr` 25 % smaller in `PLAIN` on the
///   generated benchmark capture, docs/PERFORMANCE.md);
/// - who made the call and where (`cpu`, `pid`, `tid`, `ppid`, `uid`, `gid`, `cgroup_id`,
///   `pidns_ino`, `ns_pid`, `ns_tid`), `errno` and `file_dev`: a recorder sends each CPU's
///   records in batches, so these come in long runs of one value, which zstd compresses at
///   least as well in `PLAIN` as dictionary indices. Since stop 55 (2026-12-06,
///   docs/PERFORMANCE.md): 12-16 % less writer time a row on recordings (10 lookups a row fewer
///   on the benchmark loop's), a real recording 3.3 % smaller and a compiler run's 2.8 %
///   smaller; the generated benchmark capture, whose rows come from 1,332 processes in random
///   order, about 11 % larger (221 -> 247 MB).
///
/// The call's arguments (`len`, `prot`, `flags`, `fd`, `off`) and `file_ino` keep their
/// dictionaries: their files were larger without one.
pub const NO_DICTIONARY_COLUMNS: [&str; 15] = [
    col::RET,
    col::ADDR,
    col::NEW_ADDR,
    col::CPU,
    col::PID,
    col::TID,
    col::PPID,
    col::UID,
    col::GID,
    col::CGROUP_ID,
    col::ERRNO,
    col::FILE_DEV,
    col::PIDNS_INO,
    col::NS_PID,
    col::NS_TID,
];

/// Columns written `DELTA_BINARY_PACKED`: the times, which rows carry in nearly rising order, so
/// the differences from row to row take a few bits each (a recording of the mmap+munmap loop: 28 %
/// fewer bytes per row, with a faster writer).
pub const DELTA_COLUMNS: [&str; 2] = [col::TS, col::TS_EXIT];

/// Columns with statistics per page (a column index) besides those per column chunk: the ones
/// queries select rows by, where a page's range or null count can rule it out (times, the
/// process and thread, the kind of row and call, failures, deleted files and memfds). Every other
/// column has statistics per column chunk only. A reader decodes the whole column index of a file
/// to open it; with every column's (60), that was 960 KB on the 10 M-row benchmark capture,
/// 6-15 ms of each open, against 153 KB now (opening it 8 ms faster, docs/PERFORMANCE.md). A
/// page of paths, names, addresses or lengths mixes so many processes that its range rules
/// nothing out.
pub const PAGE_STATISTICS_COLUMNS: [&str; 9] = [
    col::KIND,
    col::TS,
    col::TS_EXIT,
    col::PID,
    col::TID,
    col::SYSCALL,
    col::ERRNO,
    col::FILE_DELETED,
    col::FILE_MEMFD,
];

/// Rows held in Arrow builders before they are encoded into the row group being written: the
/// writer's memory follows this, not `row_group_rows` (65,536 rows in Arrow form took ~20 MiB).
const ENCODE_ROWS: usize = 4096;

/// The largest `row_group_rows`: dictionary keys are `Int32`.
pub const MAX_ROW_GROUP_ROWS: usize = i32::MAX as usize;

/// Writes one capture file into a sink. Every page header carries the CRC-32 of its page
/// ([`crate::page_crc`]).
///
/// Dropping the writer without [`CaptureWriter::finish`] leaves a file without footer, which no
/// reader opens; a writer made by [`CaptureWriter::with_journal`] leaves a journal next to it
/// from which [`crate::recover::recover`] completes the file.
pub struct CaptureWriter<W: Write + Send> {
    writer: PageCrcWriter<CountingWriter<W>>,
    schema: SchemaRef,
    builders: Builders,
    row_group_rows: usize,
    buffered: usize,
    /// Rows of `buffered` still in the builders (the others are encoded already).
    in_builders: usize,
    rows_written: u64,
    journal: Option<JournalWriter>,
}

impl<W: Write + Send> std::fmt::Debug for CaptureWriter<W> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CaptureWriter")
            .field("row_group_rows", &self.row_group_rows)
            .field("buffered", &self.buffered)
            .field("rows_written", &self.rows_written)
            .field("bytes_written", &self.bytes_written())
            .field("journaled", &self.journal.is_some())
            .finish_non_exhaustive()
    }
}

impl<W: Write + Send> CaptureWriter<W> {
    /// Starts a capture in `sink`. Nothing reaches the sink before the first row group (the
    /// Parquet magic goes with it).
    pub fn new(sink: W, config: WriterConfig) -> Result<Self, FormatError> {
        Ok(Self::start(sink, &config)?.0)
    }

    /// The writer, and the Parquet facts a journal needs.
    fn start(sink: W, config: &WriterConfig) -> Result<(Self, FileTemplate), FormatError> {
        if config.row_group_rows == 0 || config.row_group_rows > MAX_ROW_GROUP_ROWS {
            return Err(FormatError::InvalidConfig(format!(
                "row_group_rows must be in 1..={MAX_ROW_GROUP_ROWS}, not {}",
                config.row_group_rows
            )));
        }
        let level = ZstdLevel::try_new(config.zstd_level).map_err(|e| {
            FormatError::InvalidConfig(format!("zstd level {}: {e}", config.zstd_level))
        })?;
        let mut props = WriterProperties::builder()
            .set_compression(Compression::ZSTD(level))
            .set_dictionary_enabled(true)
            .set_statistics_enabled(EnabledStatistics::Chunk)
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_max_row_group_bytes(None)
            .set_created_by(created_by());
        for column in PAGE_STATISTICS_COLUMNS {
            props = props
                .set_column_statistics_enabled(ColumnPath::from(column), EnabledStatistics::Page);
        }
        for column in NO_DICTIONARY_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
        }
        for column in DELTA_COLUMNS {
            props = props
                .set_column_dictionary_enabled(ColumnPath::from(column), false)
                .set_column_encoding(ColumnPath::from(column), Encoding::DELTA_BINARY_PACKED);
        }
        let props = props.build();
        let schema = schema();
        // What ArrowWriter derives from `props` and `schema`, for journal frames.
        let template = FileTemplate {
            schema_descr: Arc::new(
                ArrowSchemaConverter::new()
                    .with_coerce_types(props.coerce_types())
                    .convert(&schema)?,
            ),
            created_by: props.created_by().to_owned(),
            writer_version: props.writer_version().as_num(),
            arrow_schema: KeyValue::new(
                ARROW_SCHEMA_META_KEY.to_owned(),
                encode_arrow_schema(&schema),
            ),
        };
        let writer = PageCrcWriter::try_new(
            CountingWriter {
                inner: sink,
                count: 0,
            },
            Arc::clone(&schema),
            props,
        )?;
        let writer = Self {
            writer,
            schema,
            builders: Builders::new(config.row_group_rows.min(ENCODE_ROWS)),
            row_group_rows: config.row_group_rows,
            buffered: 0,
            in_builders: 0,
            rows_written: 0,
            journal: None,
        };
        Ok((writer, template))
    }

    /// The capture metadata that later journal frames carry (see
    /// [`CaptureWriter::with_journal`]): what [`crate::recover::recover`] stores if the writer
    /// dies before [`CaptureWriter::finish`]. Typically called before each flush with the
    /// counters so far. Without a journal it has no effect; `finish` stores the metadata given
    /// to it.
    ///
    /// A journaled writer's next [`CaptureWriter::flush`] appends a frame even when it has no
    /// rows to write, so that the journal holds this metadata.
    pub fn set_metadata(&mut self, metadata: &CaptureMetadata) {
        if let Some(journal) = &mut self.journal {
            journal.set_metadata(metadata);
        }
    }

    /// Whether this writer keeps a journal ([`CaptureWriter::with_journal`]).
    pub fn is_journaled(&self) -> bool {
        self.journal.is_some()
    }

    /// Buffers one row; writes a row group when row_group_rows are buffered.
    pub fn push(&mut self, event: &Event<'_>) -> Result<(), FormatError> {
        self.builders.append(event)?;
        self.buffered += 1;
        self.in_builders += 1;
        self.rows_written += 1;
        if self.buffered >= self.row_group_rows {
            self.write_row_group()?;
        } else if self.in_builders >= ENCODE_ROWS {
            self.encode_builders()?;
        }
        Ok(())
    }

    /// Writes buffered rows (if any) as a row group and flushes it to the sink.
    ///
    /// A journaled writer then makes the row group durable (see
    /// [`CaptureWriter::with_journal`]); with no rows buffered it still appends a frame when
    /// [`CaptureWriter::set_metadata`] was called since the last one, and otherwise does
    /// nothing.
    pub fn flush(&mut self) -> Result<(), FormatError> {
        if self.buffered > 0 {
            self.write_row_group()?;
        } else {
            self.commit()?;
        }
        Ok(())
    }

    /// Rows pushed so far (written or buffered).
    pub fn rows_written(&self) -> u64 {
        self.rows_written
    }

    /// Rows pushed but not yet written as a row group.
    pub fn rows_buffered(&self) -> usize {
        self.buffered
    }

    /// Row groups written so far. Parquet allows at most 32,767 in a file (i16 ordinals).
    pub fn row_groups(&self) -> usize {
        self.writer.flushed_row_groups().len()
    }

    /// Bytes handed to the sink so far.
    pub fn bytes_written(&self) -> u64 {
        self.writer.inner().count
    }

    /// Flushes, stores the metadata as key-value pairs, writes the footer; returns the sink.
    ///
    /// The stored format version is always [`FormatVersion::CURRENT`], the version of the rows
    /// this writer wrote, whatever `metadata.format_version` says.
    ///
    /// A journaled writer also fdatasyncs the file after the footer, so that the caller may
    /// remove the journal as soon as `finish` returns.
    pub fn finish(mut self, metadata: &CaptureMetadata) -> Result<W, FormatError> {
        self.flush()?;
        let metadata = CaptureMetadata {
            format_version: FormatVersion::CURRENT,
            ..metadata.clone()
        };
        for (key, value) in metadata.to_key_values() {
            self.writer
                .append_key_value_metadata(KeyValue::new(key, value));
        }
        let mut sink = self.writer.into_inner()?;
        sink.flush()?;
        if let Some(journal) = &self.journal {
            journal.sync_data_file()?;
        }
        Ok(sink.inner)
    }

    fn write_row_group(&mut self) -> Result<(), FormatError> {
        self.encode_builders()?;
        self.buffered = 0;
        self.writer.close_row_group()?;
        self.writer.flush()?;
        self.commit()
    }

    /// Moves the rows in the builders into the row group being written (encoded and
    /// compressed, a few bytes a row, instead of tens in Arrow form).
    fn encode_builders(&mut self) -> Result<(), FormatError> {
        if self.in_builders == 0 {
            return Ok(());
        }
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), self.builders.finish()?)?;
        self.in_builders = 0;
        self.writer.write_batch(&batch)?;
        Ok(())
    }

    /// Journals the row groups written since the last frame, if this writer has a journal.
    fn commit(&mut self) -> Result<(), FormatError> {
        if let Some(journal) = &mut self.journal {
            let data_len = self.writer.inner().count;
            journal.commit(self.writer.flushed_row_groups(), data_len)?;
        }
        Ok(())
    }
}

impl CaptureWriter<File> {
    /// Starts a crash-safe capture in `file` (which must be empty) with the journal `journal`
    /// (truncated here), normally the two files [`crate::journal::create`] makes:
    /// `capture` and [`crate::journal::journal_path`]`(capture)`.
    ///
    /// Writes the journal header and a first frame holding `metadata`. Then, after every row
    /// group written (by [`CaptureWriter::flush`], or when `row_group_rows` rows are buffered),
    /// fdatasyncs `file`, appends one frame to the journal describing the new row groups and
    /// the metadata last given to [`CaptureWriter::set_metadata`] (or `metadata`), and
    /// fdatasyncs the journal. If the process dies, [`crate::recover::recover`] completes the
    /// file with every row group a frame describes; rows not yet in such a row group are lost.
    ///
    /// Each frame costs the metadata of its new row groups, not of the whole file. After
    /// [`CaptureWriter::finish`] (which syncs `file`) the caller removes the journal.
    pub fn with_journal(
        file: File,
        journal: File,
        config: WriterConfig,
        metadata: &CaptureMetadata,
    ) -> Result<Self, FormatError> {
        let len = file.metadata()?.len();
        if len != 0 {
            return Err(FormatError::InvalidConfig(format!(
                "a journaled capture starts in an empty file, not in one of {len} bytes"
            )));
        }
        let data = file.try_clone()?;
        let (mut writer, template) = Self::start(file, &config)?;
        writer.journal = Some(JournalWriter::start(journal, data, template, metadata)?);
        Ok(writer)
    }
}

/// Counts the bytes handed to the sink.
struct CountingWriter<W> {
    inner: W,
    count: u64,
}

impl<W: Write> Write for CountingWriter<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.count += n as u64;
        Ok(n)
    }

    fn write_all(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.inner.write_all(buf)?;
        self.count += buf.len() as u64;
        Ok(())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
