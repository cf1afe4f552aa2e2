//! Writes captures: rows are buffered in Arrow builders and written as Parquet row groups.

use std::{fs::File, io::Write, sync::Arc};

use arrow::buffer::{BooleanBuffer, Buffer, NullBuffer, ScalarBuffer};
use arrow_array::{
    ArrayRef, ArrowPrimitiveType, BooleanArray, DictionaryArray, Int32Array, PrimitiveArray,
    RecordBatch, StringArray,
    builder::{
        ArrayBuilder, BooleanBuilder, Int32Builder, Int64Builder, PrimitiveBuilder,
        StringDictionaryBuilder, TimestampNanosecondBuilder, UInt32Builder, UInt64Builder,
    },
    new_empty_array, new_null_array,
    types::{Int32Type, UInt32Type, UInt64Type},
};
use arrow_schema::{DataType, SchemaRef};
use parquet::{
    arrow::{ARROW_SCHEMA_META_KEY, ArrowSchemaConverter, ArrowWriter, encode_arrow_schema},
    basic::{Compression, ZstdLevel},
    file::{
        metadata::KeyValue,
        properties::{DEFAULT_CREATED_BY, EnabledStatistics, WriterProperties},
    },
    schema::types::ColumnPath,
};

use crate::{
    FormatError,
    event::{Event, RowKind, Syscall},
    journal::{FileTemplate, JournalWriter},
    metadata::{CaptureMetadata, FormatVersion},
    schema::{TIMEZONE, col, dictionary_utf8, schema},
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

/// Columns written without dictionary encoding (all others use it).
pub const NO_DICTIONARY_COLUMNS: [&str; 3] = [col::TS, col::TS_EXIT, col::RET];

/// The largest `row_group_rows`: dictionary keys are `Int32`.
pub const MAX_ROW_GROUP_ROWS: usize = i32::MAX as usize;

/// Writes one capture file into a sink.
///
/// Dropping the writer without [`CaptureWriter::finish`] leaves a file without footer, which no
/// reader opens; a writer made by [`CaptureWriter::with_journal`] leaves a journal next to it
/// from which [`crate::recover::recover`] completes the file.
pub struct CaptureWriter<W: Write + Send> {
    writer: ArrowWriter<CountingWriter<W>>,
    schema: SchemaRef,
    builders: Builders,
    row_group_rows: usize,
    buffered: usize,
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
            .set_statistics_enabled(EnabledStatistics::Page)
            .set_max_row_group_row_count(Some(config.row_group_rows))
            .set_max_row_group_bytes(None)
            .set_created_by(created_by());
        // Nearly every value of these columns is distinct: a dictionary would only be built to
        // be thrown away when it outgrows its page.
        for column in NO_DICTIONARY_COLUMNS {
            props = props.set_column_dictionary_enabled(ColumnPath::from(column), false);
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
        let writer = ArrowWriter::try_new(
            CountingWriter {
                inner: sink,
                count: 0,
            },
            Arc::clone(&schema),
            Some(props),
        )?;
        let writer = Self {
            writer,
            schema,
            builders: Builders::new(config.row_group_rows.min(8192)),
            row_group_rows: config.row_group_rows,
            buffered: 0,
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
        self.rows_written += 1;
        if self.buffered >= self.row_group_rows {
            self.write_row_group()?;
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
        let batch = RecordBatch::try_new(Arc::clone(&self.schema), self.builders.finish()?)?;
        self.buffered = 0;
        self.writer.write(&batch)?;
        self.writer.flush()?;
        self.writer.sync()?;
        self.commit()
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

/// A `Dictionary(Int32, Utf8)` column over a fixed list of names (the enum columns): appending
/// is pushing an integer, with no string hashing.
struct FixedDictionary {
    keys: Int32Builder,
    values: ArrayRef,
}

impl FixedDictionary {
    fn new(rows: usize, names: &[&str]) -> Self {
        Self {
            keys: Int32Builder::with_capacity(rows),
            values: Arc::new(StringArray::from(names.to_vec())),
        }
    }

    #[inline]
    fn append(&mut self, index: usize) {
        // The enums have a handful of variants: the index always fits.
        self.keys.append_value(index as i32);
    }

    fn append_null(&mut self) {
        self.keys.append_null();
    }

    fn finish(&mut self) -> Result<DictionaryArray<Int32Type>, FormatError> {
        Ok(DictionaryArray::try_new(
            self.keys.finish(),
            Arc::clone(&self.values),
        )?)
    }
}

/// One builder per column, in schema order.
struct Builders {
    kind: FixedDictionary,
    syscall: FixedDictionary,
    ts: TimestampNanosecondBuilder,
    ts_exit: TimestampNanosecondBuilder,
    cpu: UInt32Builder,
    pid: UInt32Builder,
    tid: UInt32Builder,
    ppid: UInt32Builder,
    uid: UInt32Builder,
    gid: UInt32Builder,
    comm: StringDictionaryBuilder<Int32Type>,
    cgroup_id: UInt64Builder,
    addr: UInt64Builder,
    len: UInt64Builder,
    prot: UInt64Builder,
    flags: UInt64Builder,
    fd: Int32Builder,
    off: UInt64Builder,
    ret: Int64Builder,
    errno: Int32Builder,
    file_dev: UInt64Builder,
    file_ino: UInt64Builder,
    file_name: StringDictionaryBuilder<Int32Type>,
    v1_1: AddedIn1_1,
}

/// The builders of the columns added by format 1.1, which are null in most rows: a row with
/// none of them set costs one counter increment.
struct AddedIn1_1 {
    /// Rows with every 1.1 column null, not yet counted by the columns.
    null_rows: usize,
    nulls: NullArrays,
    source: Sparse<StringDictionaryBuilder<Int32Type>>,
    new_addr: Sparse<UInt64Builder>,
    new_len: Sparse<UInt64Builder>,
    child_pid: Sparse<UInt32Builder>,
    exit_code: Sparse<Int32Builder>,
    file_path: Sparse<StringDictionaryBuilder<Int32Type>>,
    path_source: Sparse<StringDictionaryBuilder<Int32Type>>,
    path_truncated: Sparse<BooleanBuilder>,
    file_deleted: Sparse<BooleanBuilder>,
    file_memfd: Sparse<BooleanBuilder>,
    cgroup_path: Sparse<StringDictionaryBuilder<Int32Type>>,
    pidns_ino: Sparse<UInt32Builder>,
    ns_pid: Sparse<UInt32Builder>,
    ns_tid: Sparse<UInt32Builder>,
    lost_count: Sparse<UInt64Builder>,
}

impl AddedIn1_1 {
    fn new(rows: usize) -> Self {
        Self {
            null_rows: 0,
            nulls: NullArrays::default(),
            source: Sparse::new(rows),
            new_addr: Sparse::new(rows),
            new_len: Sparse::new(rows),
            child_pid: Sparse::new(rows),
            exit_code: Sparse::new(rows),
            file_path: Sparse::new(rows),
            path_source: Sparse::new(rows),
            path_truncated: Sparse::new(rows),
            file_deleted: Sparse::new(rows),
            file_memfd: Sparse::new(rows),
            cgroup_path: Sparse::new(rows),
            pidns_ino: Sparse::new(rows),
            ns_pid: Sparse::new(rows),
            ns_tid: Sparse::new(rows),
            lost_count: Sparse::new(rows),
        }
    }

    /// Appends the 1.1 columns of one row. Fallible only in the string columns, which come
    /// first.
    #[inline]
    fn append(&mut self, e: &Event<'_>) -> Result<(), FormatError> {
        let none = e.source.is_none()
            & e.new_addr.is_none()
            & e.new_len.is_none()
            & e.child_pid.is_none()
            & e.exit_code.is_none()
            & e.file_path.is_none()
            & e.path_source.is_none()
            & e.path_truncated.is_none()
            & e.file_deleted.is_none()
            & e.file_memfd.is_none()
            & e.cgroup_path.is_none()
            & e.pidns_ino.is_none()
            & e.ns_pid.is_none()
            & e.ns_tid.is_none()
            & e.lost_count.is_none();
        if none {
            self.null_rows += 1;
            return Ok(());
        }
        self.settle();
        self.source.append_str(e.source.as_deref())?;
        self.file_path.append_str(e.file_path.as_deref())?;
        self.path_source.append_str(e.path_source.as_deref())?;
        self.cgroup_path.append_str(e.cgroup_path.as_deref())?;
        self.new_addr.append_primitive(e.new_addr);
        self.new_len.append_primitive(e.new_len);
        self.child_pid.append_primitive(e.child_pid);
        self.exit_code.append_primitive(e.exit_code);
        self.path_truncated.append_bool(e.path_truncated);
        self.file_deleted.append_bool(e.file_deleted);
        self.file_memfd.append_bool(e.file_memfd);
        self.pidns_ino.append_primitive(e.pidns_ino);
        self.ns_pid.append_primitive(e.ns_pid);
        self.ns_tid.append_primitive(e.ns_tid);
        self.lost_count.append_primitive(e.lost_count);
        Ok(())
    }

    /// Hands the all-null rows to every column.
    fn settle(&mut self) {
        let n = std::mem::take(&mut self.null_rows);
        if n == 0 {
            return;
        }
        self.source.append_nulls(n);
        self.new_addr.append_nulls(n);
        self.new_len.append_nulls(n);
        self.child_pid.append_nulls(n);
        self.exit_code.append_nulls(n);
        self.file_path.append_nulls(n);
        self.path_source.append_nulls(n);
        self.path_truncated.append_nulls(n);
        self.file_deleted.append_nulls(n);
        self.file_memfd.append_nulls(n);
        self.cgroup_path.append_nulls(n);
        self.pidns_ino.append_nulls(n);
        self.ns_pid.append_nulls(n);
        self.ns_tid.append_nulls(n);
        self.lost_count.append_nulls(n);
    }

    /// The columns, in schema order; the builders are left empty.
    fn finish(&mut self, columns: &mut Vec<ArrayRef>) -> Result<(), FormatError> {
        self.settle();
        let nulls = &mut self.nulls;
        let dict = dictionary_utf8();
        columns.extend([
            self.source.finish(&dict, nulls)?,
            self.new_addr.finish(&DataType::UInt64, nulls)?,
            self.new_len.finish(&DataType::UInt64, nulls)?,
            self.child_pid.finish(&DataType::UInt32, nulls)?,
            self.exit_code.finish(&DataType::Int32, nulls)?,
            self.file_path.finish(&dict, nulls)?,
            self.path_source.finish(&dict, nulls)?,
            self.path_truncated.finish(&DataType::Boolean, nulls)?,
            self.file_deleted.finish(&DataType::Boolean, nulls)?,
            self.file_memfd.finish(&DataType::Boolean, nulls)?,
            self.cgroup_path.finish(&dict, nulls)?,
            self.pidns_ino.finish(&DataType::UInt32, nulls)?,
            self.ns_pid.finish(&DataType::UInt32, nulls)?,
            self.ns_tid.finish(&DataType::UInt32, nulls)?,
            self.lost_count.finish(&DataType::UInt64, nulls)?,
        ]);
        Ok(())
    }
}

/// All-null arrays of the 1.1 column types, built over one shared zeroed buffer and one shared
/// null bitmap: a row group in which a column has no value allocates nothing for it.
#[derive(Default)]
struct NullArrays {
    /// 8 zero bytes per row: the values of any 1.1 column type (at most 64 bits wide).
    zeros: Buffer,
    /// All null, as long as `zeros` has rows.
    nulls: Option<NullBuffer>,
}

impl NullArrays {
    fn array(&mut self, data_type: &DataType, rows: usize) -> Result<ArrayRef, FormatError> {
        let nulls = match &self.nulls {
            Some(nulls) if nulls.len() >= rows => nulls.slice(0, rows),
            _ => {
                let capacity = rows.next_power_of_two();
                self.zeros = Buffer::from_vec(vec![0_u64; capacity]);
                let nulls = NullBuffer::new_null(capacity);
                self.nulls = Some(nulls.clone());
                nulls.slice(0, rows)
            }
        };
        let zeros = &self.zeros;
        // `zeros` holds 8 bytes per row, 8-aligned: every slice below is in bounds and aligned.
        Ok(match data_type {
            DataType::UInt64 => Arc::new(PrimitiveArray::<UInt64Type>::new(
                ScalarBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::UInt32 => Arc::new(PrimitiveArray::<UInt32Type>::new(
                ScalarBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::Int32 => Arc::new(Int32Array::new(
                ScalarBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::Boolean => Arc::new(BooleanArray::new(
                BooleanBuffer::new(zeros.clone(), 0, rows),
                Some(nulls),
            )),
            DataType::Dictionary(_, values) => Arc::new(DictionaryArray::<Int32Type>::try_new(
                Int32Array::new(ScalarBuffer::new(zeros.clone(), 0, rows), Some(nulls)),
                new_empty_array(values),
            )?),
            other => new_null_array(other, rows),
        })
    }
}

impl Builders {
    fn new(rows: usize) -> Self {
        let dict = |values: usize, bytes: usize| {
            StringDictionaryBuilder::<Int32Type>::with_capacity(rows, values, bytes)
        };
        let ts = || TimestampNanosecondBuilder::with_capacity(rows).with_timezone(TIMEZONE);
        Self {
            kind: FixedDictionary::new(rows, &RowKind::ALL.map(RowKind::as_str)),
            syscall: FixedDictionary::new(rows, &Syscall::ALL.map(Syscall::as_str)),
            ts: ts(),
            ts_exit: ts(),
            cpu: UInt32Builder::with_capacity(rows),
            pid: UInt32Builder::with_capacity(rows),
            tid: UInt32Builder::with_capacity(rows),
            ppid: UInt32Builder::with_capacity(rows),
            uid: UInt32Builder::with_capacity(rows),
            gid: UInt32Builder::with_capacity(rows),
            comm: dict(256, 4096),
            cgroup_id: UInt64Builder::with_capacity(rows),
            addr: UInt64Builder::with_capacity(rows),
            len: UInt64Builder::with_capacity(rows),
            prot: UInt64Builder::with_capacity(rows),
            flags: UInt64Builder::with_capacity(rows),
            fd: Int32Builder::with_capacity(rows),
            off: UInt64Builder::with_capacity(rows),
            ret: Int64Builder::with_capacity(rows),
            errno: Int32Builder::with_capacity(rows),
            file_dev: UInt64Builder::with_capacity(rows),
            file_ino: UInt64Builder::with_capacity(rows),
            file_name: dict(1024, 32768),
            v1_1: AddedIn1_1::new(rows),
        }
    }

    /// Appends one row. The checks and the string columns come first: they are the only
    /// fallible steps (an `Other` kind or syscall; key overflow, which `MAX_ROW_GROUP_ROWS`
    /// rules out), so a failure leaves no partial row in the other columns.
    #[inline]
    fn append(&mut self, e: &Event<'_>) -> Result<(), FormatError> {
        let kind = e.kind.index().ok_or_else(|| {
            FormatError::InvalidEvent(
                "row kind Other (a kind read from a newer file) cannot be written".to_owned(),
            )
        })?;
        let syscall = match e.syscall {
            Some(syscall) => Some(syscall.index().ok_or_else(|| {
                FormatError::InvalidEvent(
                    "syscall Other (a syscall read from a newer file) cannot be written".to_owned(),
                )
            })?),
            None => None,
        };
        self.comm.append(&*e.comm)?;
        match &e.file_name {
            Some(name) => self.file_name.append(&**name).map(drop)?,
            None => self.file_name.append_null(),
        }
        self.v1_1.append(e)?;
        self.kind.append(kind);
        match syscall {
            Some(syscall) => self.syscall.append(syscall),
            None => self.syscall.append_null(),
        }
        self.ts.append_value(e.ts_ns);
        self.ts_exit.append_option(e.ts_exit_ns);
        self.cpu.append_value(e.cpu);
        self.pid.append_value(e.pid);
        self.tid.append_value(e.tid);
        self.ppid.append_value(e.ppid);
        self.uid.append_value(e.uid);
        self.gid.append_value(e.gid);
        self.cgroup_id.append_value(e.cgroup_id);
        self.addr.append_option(e.addr);
        self.len.append_option(e.len);
        self.prot.append_option(e.prot);
        self.flags.append_option(e.flags);
        self.fd.append_option(e.fd);
        self.off.append_option(e.off);
        self.ret.append_option(e.ret);
        self.errno.append_option(e.errno());
        self.file_dev.append_option(e.file_dev);
        self.file_ino.append_option(e.file_ino);
        Ok(())
    }

    /// The buffered columns, in schema order; the builders are left empty.
    fn finish(&mut self) -> Result<Vec<ArrayRef>, FormatError> {
        let mut columns: Vec<ArrayRef> = vec![
            Arc::new(self.kind.finish()?),
            Arc::new(self.syscall.finish()?),
            Arc::new(self.ts.finish()),
            Arc::new(self.ts_exit.finish()),
            Arc::new(self.cpu.finish()),
            Arc::new(self.pid.finish()),
            Arc::new(self.tid.finish()),
            Arc::new(self.ppid.finish()),
            Arc::new(self.uid.finish()),
            Arc::new(self.gid.finish()),
            Arc::new(self.comm.finish()),
            Arc::new(self.cgroup_id.finish()),
            Arc::new(self.addr.finish()),
            Arc::new(self.len.finish()),
            Arc::new(self.prot.finish()),
            Arc::new(self.flags.finish()),
            Arc::new(self.fd.finish()),
            Arc::new(self.off.finish()),
            Arc::new(self.ret.finish()),
            Arc::new(self.errno.finish()),
            Arc::new(self.file_dev.finish()),
            Arc::new(self.file_ino.finish()),
            Arc::new(self.file_name.finish()),
        ];
        self.v1_1.finish(&mut columns)?;
        Ok(columns)
    }
}

/// A builder that can start with a run of nulls.
trait NullableBuilder: ArrayBuilder {
    fn with_rows(rows: usize) -> Self;
    fn append_nulls(&mut self, n: usize);
}

impl<T: ArrowPrimitiveType> NullableBuilder for PrimitiveBuilder<T> {
    fn with_rows(rows: usize) -> Self {
        Self::with_capacity(rows)
    }

    fn append_nulls(&mut self, n: usize) {
        PrimitiveBuilder::append_nulls(self, n);
    }
}

impl NullableBuilder for BooleanBuilder {
    fn with_rows(rows: usize) -> Self {
        Self::with_capacity(rows)
    }

    fn append_nulls(&mut self, n: usize) {
        BooleanBuilder::append_nulls(self, n);
    }
}

impl NullableBuilder for StringDictionaryBuilder<Int32Type> {
    fn with_rows(rows: usize) -> Self {
        Self::with_capacity(rows, 64, 4096)
    }

    fn append_nulls(&mut self, n: usize) {
        StringDictionaryBuilder::append_nulls(self, n);
    }
}

/// A column that is null in most rows: while it has only nulls, appending a row is counting
/// it, and the row group's array is a shared all-null one ([`NullArrays`]). The first value of
/// a row group starts a builder (with the nulls so far), which is dropped when the row group is
/// finished.
struct Sparse<B> {
    builder: Option<B>,
    /// Rows appended while `builder` is `None`.
    nulls: usize,
    /// Capacity of a new builder.
    rows: usize,
}

impl<B: NullableBuilder> Sparse<B> {
    fn new(rows: usize) -> Self {
        Self {
            builder: None,
            nulls: 0,
            rows,
        }
    }

    #[inline]
    fn append_nulls(&mut self, n: usize) {
        match &mut self.builder {
            None => self.nulls += n,
            Some(builder) => builder.append_nulls(n),
        }
    }

    #[inline]
    fn append_null(&mut self) {
        self.append_nulls(1);
    }

    /// The builder for a value: started, with the nulls so far, on the first one.
    #[inline]
    fn builder(&mut self) -> &mut B {
        let (nulls, rows) = (self.nulls, self.rows);
        self.builder.get_or_insert_with(|| {
            let mut builder = B::with_rows(rows);
            builder.append_nulls(nulls);
            builder
        })
    }

    fn finish(
        &mut self,
        data_type: &DataType,
        null_arrays: &mut NullArrays,
    ) -> Result<ArrayRef, FormatError> {
        let nulls = std::mem::take(&mut self.nulls);
        match self.builder.take() {
            Some(mut builder) => Ok(builder.finish()),
            None => null_arrays.array(data_type, nulls),
        }
    }
}

impl<T: ArrowPrimitiveType> Sparse<PrimitiveBuilder<T>> {
    #[inline]
    fn append_primitive(&mut self, value: Option<T::Native>) {
        match value {
            Some(value) => self.builder().append_value(value),
            None => self.append_null(),
        }
    }
}

impl Sparse<BooleanBuilder> {
    #[inline]
    fn append_bool(&mut self, value: Option<bool>) {
        match value {
            Some(value) => self.builder().append_value(value),
            None => self.append_null(),
        }
    }
}

impl Sparse<StringDictionaryBuilder<Int32Type>> {
    #[inline]
    fn append_str(&mut self, value: Option<&str>) -> Result<(), FormatError> {
        match value {
            Some(value) => {
                self.builder().append(value)?;
            }
            None => self.append_null(),
        }
        Ok(())
    }
}
